"""The dry-run simulator on hand-built bars: every expectation below is worked out by hand from the bars."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_rotation.config import CostsConfig, SimConfig
from apex_rotation.exec import sim
from apex_rotation.exec.sim import FrameMarket, TradeTemplate
from apex_rotation.signals.score import EntryPlan, ScoredSignal, signal_id

T0 = pd.Timestamp("2024-01-01", tz="UTC")
H = pd.Timedelta("1h")
ZERO = CostsConfig(
    spot_fee_pct=0, spot_slippage_pct=0, perps_taker_fee_pct=0, perps_maker_fee_pct=0, include_funding=False
)
LIMIT = {"rotation": TradeTemplate("limit", expiry_bars=3, max_hold_bars=10)}
MARKET = {"td13_exhaustion": TradeTemplate("market", max_hold_bars=10)}


def bars(rows, tf: str = "1h", start: pd.Timestamp = T0) -> pd.DataFrame:
    """Bars (open, high, low, close) from `start`, one every `tf`."""
    index = pd.date_range(start, periods=len(rows), freq=tf, name="open_time")
    return pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)


def signal(
    entry: float = 100,
    stop: float = 95,
    target: float = 110,
    *,
    side: str = "long",
    archetype: str = "rotation",
    symbol: str = "SOL",
    tf: str = "1h",
    at: pd.Timestamp = T0,
    plan: bool = True,
) -> ScoredSignal:
    the_plan = EntryPlan(
        entry_low=entry * 0.99,
        entry_high=entry * 1.01,
        entry=entry,
        stop=stop,
        stop_source="tdst",
        target=target,
        rr=abs(target - entry) / abs(entry - stop),
        atr=2.0,
        invalidation=stop,
        invalidation_kind="TDST",
    )
    return ScoredSignal(
        signal_id=signal_id(symbol, tf, at, archetype),
        symbol=symbol,
        timeframe=tf,
        bar_time=at.to_pydatetime(),
        archetype=archetype,
        direction=side,
        score=7.0,
        fired=True,
        reasons=[],
        plan=the_plan if plan else None,
    )


def one(signals, templates, market, cfg, costs=ZERO) -> pd.Series:
    report = sim.run(
        signals if isinstance(signals, list) else [signals], templates, market, costs=costs, cfg=cfg
    )
    assert len(report.trades) == 1
    return report.trades.iloc[0]


def test_limit_fills_only_after_the_signal_bar_then_takes_profit(default_config):
    # the signal bar dips to 99 (below the 100 limit): no fill there; bar 2 fills at 100; bar 3 hits 110
    b = bars([(101, 102, 99, 101), (101, 103, 100.5, 102), (102, 102, 99.5, 101), (101, 111, 100, 108)])
    t = one(signal(), LIMIT, {("SOL", "1h"): b}, default_config)
    assert (t.order_type, t.order_price, t.entry_time, t.entry_price) == ("limit", 100, T0 + 2 * H, 100)
    assert (t.exit_reason, t.exit_time, t.exit_price, t.target_hit, t.stop_hit) == (
        "target",
        T0 + 3 * H,
        110,
        True,
        False,
    )
    assert t.pnl_pct == pytest.approx(10) and t.risk_pct == pytest.approx(5) and t.pnl_r == pytest.approx(2)
    # MFE: the target (110); MAE: the fill bar's low 99.5 (the target bar's low 100 is no worse)
    assert t.mfe_pct == pytest.approx(10) and t.mfe_r == pytest.approx(2)
    assert t.mae_pct == pytest.approx(0.5) and t.mae_r == pytest.approx(0.1)
    assert t.bars_held == 2 and t.alert_id == signal_id("SOL", "1h", T0, "rotation")
    # size: 10 000 equity × 0.75 % risk / 5 per unit
    assert t["size"] == pytest.approx(15)


def test_unfilled_limit_expires_after_entry_expiry_bars(default_config):
    rows = [(102, 103, 101, 102)] * 4 + [(102, 102, 99, 100)]  # only bar 4 reaches the 100 limit
    expired = one(signal(), LIMIT, {("SOL", "1h"): bars(rows)}, default_config)  # works bars 1..3
    assert expired.exit_reason == "expired" and pd.isna(expired.entry_time) and pd.isna(expired.entry_price)
    assert expired.exit_time == T0 + 4 * H and expired.bars_held == 0 and pd.isna(expired.pnl_r)
    longer = {"rotation": TradeTemplate("limit", expiry_bars=4, max_hold_bars=10)}
    filled = one(signal(), longer, {("SOL", "1h"): bars(rows)}, default_config)
    assert (filled.entry_time, filled.entry_price, filled.exit_reason) == (T0 + 4 * H, 100, "open_at_end")


def _hours_of_4h_signal(second_hour) -> pd.DataFrame:
    """1h bars: the 4h signal bar's four hours, a market fill at 04:00 (open 100), then `second_hour`."""
    return bars([(100, 101, 99, 100)] * 5 + [second_hour, (100, 100.5, 99.5, 100)])


def test_stop_first_when_one_1h_bar_touches_both(default_config):
    s = signal(archetype="td13_exhaustion", tf="4h")
    t = one(s, MARKET, {("SOL", "1h"): _hours_of_4h_signal((100, 111, 94, 100))}, default_config)
    assert (t.entry_time, t.entry_price) == (T0 + 4 * H, 100)
    assert (t.exit_reason, t.exit_time, t.exit_price, t.pnl_r) == ("stop", T0 + 5 * H, 95, -1)


def test_1h_bars_decide_target_first_inside_a_4h_bar(default_config):
    # 05:00 reaches 110, 06:00 falls through 95: the 4h bar 04:00-08:00 touches both, the hours say target
    hours = bars([(100, 101, 99, 100)] * 5 + [(100, 111, 99, 110), (110, 110, 94, 95), (95, 96, 94, 95)])
    s = signal(archetype="td13_exhaustion", tf="4h")
    t = one(s, MARKET, {("SOL", "1h"): hours}, default_config)
    assert (t.exit_reason, t.exit_time, t.exit_price, t.pnl_r) == ("target", T0 + 5 * H, 110, 2)
    assert t.bars_held == 1  # inside the 4h bar that opened at 04:00
    # with 4h bars only, that bar cannot tell: the stop first
    four = bars([(100, 101, 99, 100), (100, 111, 94, 95)], tf="4h")
    t4 = one(s, MARKET, {("SOL", "4h"): four}, default_config)
    assert (t4.exit_reason, t4.exit_time, t4.exit_price) == ("stop", T0 + 4 * H, 95)


def test_market_entry_fees_and_slippage_on_spot(default_config):
    costs = CostsConfig(spot_fee_pct=0.1, spot_slippage_pct=0.05, include_funding=True)
    b = bars([(100, 101, 99, 100), (100, 101, 99, 100), (99, 99.5, 94, 95)])
    s = signal(archetype="td13_exhaustion")
    t = one(s, MARKET, {("SOL", "1h"): b}, default_config, costs=costs)
    # entry 100 + 0.05 % slippage; the stop at 95 − 0.05 %; a 0.1 % fee on each fill's notional
    e, x = 100 * 1.0005, 95 * 0.9995
    assert (t.instrument, t.entry_price, t.exit_price) == ("spot", pytest.approx(e), pytest.approx(x))
    assert t.fees_pct == pytest.approx(0.1 + 0.1 * x / e)
    assert t.slippage_pct == pytest.approx((0.05 + 0.0475) / e * 100)
    assert t.risk_pct == pytest.approx((e - 95) / e * 100)
    assert t.pnl_pct == pytest.approx((x - e) / e * 100 - (0.1 + 0.1 * x / e))
    assert t.pnl_r == pytest.approx(t.pnl_pct / ((e - 95) / e * 100))
    assert t.funding_pct == 0  # spot pays no funding


def test_perps_limit_and_target_pay_maker_fees_without_slippage(default_config):
    costs = CostsConfig(perps_maker_fee_pct=0.02, perps_taker_fee_pct=0.04, spot_slippage_pct=0.05)
    b = bars([(101, 102, 101, 101), (101, 101, 99, 101), (101, 111, 100, 110)])
    market = FrameMarket({("SOL", "1h"): b}, instruments={"SOL": "perps"})
    t = one(signal(), LIMIT, market, default_config, costs=costs)
    assert (t.instrument, t.entry_price, t.exit_price, t.slippage_pct) == ("perps", 100, 110, 0)
    assert t.fees_pct == pytest.approx(0.02 + 0.02 * 1.1)
    assert t.pnl_pct == pytest.approx(10 - 0.042) and t.pnl_r == pytest.approx((10 - 0.042) / 5)


@pytest.mark.parametrize(("side", "stop", "target", "sign"), [("long", 95, 110, -1), ("short", 105, 90, 1)])
def test_funding_is_paid_by_longs_and_received_by_shorts(default_config, side, stop, target, sign):
    flat = bars([(100, 100.5, 99.5, 100)] * 6)
    rates = pd.Series(0.0001, index=T0 + H * np.arange(1, 8))  # per hour, stamped at each close
    market = FrameMarket({("SOL", "1h"): flat}, {"SOL": rates}, {"SOL": "perps"})
    s = signal(100, stop, target, side=side, archetype="td13_exhaustion")
    hold3 = {"td13_exhaustion": TradeTemplate("market", max_hold_bars=3)}
    with_funding = ZERO.model_copy(update={"include_funding": True})
    t = one(s, hold3, market, default_config, costs=with_funding)
    # filled at 01:00, closed at 04:00 (3 bars): the rates stamped 02:00, 03:00, 04:00
    assert (t.entry_time, t.exit_time, t.exit_reason) == (T0 + H, T0 + 4 * H, "max_hold")
    assert t.funding_pct == pytest.approx(sign * 3 * 0.01) and t.pnl_pct == pytest.approx(t.funding_pct)
    assert one(s, hold3, market, default_config, costs=ZERO).funding_pct == 0  # include_funding off
    spot = FrameMarket({("SOL", "1h"): flat}, {"SOL": rates})
    assert one(s, hold3, spot, default_config, costs=with_funding).funding_pct == 0


def test_short_limit_fill_and_target(default_config):
    # the signal bar reaches 101 (above the 100 limit): no fill there; bar 1 fills at 100, bar 2 hits 90
    b = bars([(99, 101, 98, 99), (99, 100.5, 98.5, 99.5), (99.5, 101, 89, 90)])
    t = one(signal(100, 105, 90, side="short"), LIMIT, {("SOL", "1h"): b}, default_config)
    assert (t.side, t.entry_time, t.entry_price) == ("short", T0 + H, 100)
    assert (t.exit_reason, t.exit_time, t.exit_price) == ("target", T0 + 2 * H, 90)
    assert t.pnl_pct == pytest.approx(10) and t.pnl_r == pytest.approx(2)
    # MFE: the target 90; MAE: the highs 100.5 (fill bar) and 101 (target bar) above 100
    assert t.mfe_r == pytest.approx(2) and t.mae_pct == pytest.approx(1) and t.mae_r == pytest.approx(0.2)


def test_mfe_mae_and_r_of_a_max_hold_exit(default_config):
    b = bars([(100, 100, 100, 100), (100, 104, 98, 103), (103, 106, 101, 102), (102, 103, 97, 99), (99,) * 4])
    hold3 = {"td13_exhaustion": TradeTemplate("market", max_hold_bars=3)}
    t = one(signal(100, 90, 120, archetype="td13_exhaustion"), hold3, {("SOL", "1h"): b}, default_config)
    assert (t.exit_reason, t.exit_time, t.exit_price, t.bars_held) == ("max_hold", T0 + 4 * H, 99, 3)
    assert t.pnl_pct == pytest.approx(-1) and t.pnl_r == pytest.approx(-0.1)
    assert (t.mfe_pct, t.mae_pct) == (pytest.approx(6), pytest.approx(3))
    assert (t.mfe_r, t.mae_r) == (pytest.approx(0.6), pytest.approx(0.3))


def test_a_gap_through_the_stop_fills_at_the_open(default_config):
    b = bars([(100, 100, 100, 100), (100, 101, 99, 100), (93, 94, 92, 93)])
    t = one(signal(archetype="td13_exhaustion"), MARKET, {("SOL", "1h"): b}, default_config)
    assert (t.exit_reason, t.exit_price, t.pnl_r) == ("stop", 93, pytest.approx(-1.4))


def test_orders_that_never_trade_say_why(default_config):
    base = [(100, 100, 100, 100)]
    cases = {
        "invalidated": (signal(), bars([*base, (94, 96, 93, 95)])),  # opens below the stop before filling
        "missed": (signal(archetype="td13_exhaustion"), bars([*base, (111, 112, 110, 111)])),
        "pending_at_end": (signal(), bars(base)),  # the signal bar is the last bar
        "no_plan": (signal(plan=False), bars(base)),
    }
    for reason, (s, b) in cases.items():
        t = one(s, LIMIT | MARKET, {("SOL", "1h"): b}, default_config)
        assert t.exit_reason == reason and pd.isna(t.entry_price) and t.fees_pct == 0, reason
    assert (
        one(
            *cases["invalidated"][:1], LIMIT, {("SOL", "1h"): cases["invalidated"][1]}, default_config
        ).exit_time
        == T0 + H
    )
    assert pd.isna(
        one(cases["pending_at_end"][0], LIMIT, {("SOL", "1h"): bars(base)}, default_config).exit_time
    )


def test_open_at_end_is_marked_at_the_last_close(default_config):
    b = bars([(100, 100, 100, 100), (100, 101, 99.5, 100), (100, 103, 100, 102)])
    t = one(signal(archetype="td13_exhaustion"), MARKET, {("SOL", "1h"): b}, default_config)
    assert (t.exit_reason, t.exit_time, t.exit_price, t.pnl_r) == ("open_at_end", T0 + 3 * H, 102, 0.4)


def test_structure_take_profit_uses_the_swing_high_beyond_entry(default_config):
    # the three bars up to the signal bar (at 02:00) top at 108; then a fill at 100 and a run to 109
    rows = [
        (104, 108, 103, 104),
        (104, 105, 102, 103),
        (103, 104, 101, 102),
        (101, 102, 99, 101),
        (101, 109, 100, 108),
    ]
    at = T0 + 2 * H
    swing = {"rotation": TradeTemplate("limit", take_profit="structure", structure_lookback_bars=3)}
    t = one(signal(at=at), swing, {("SOL", "1h"): bars(rows)}, default_config)
    assert (t.take_profit, t.target_source, t.exit_reason, t.exit_price) == (108, "structure", "target", 108)
    # a swing high below the entry is no take-profit: the plan's (ATR) target stays
    low = [(r[0] - 10, r[1] - 10, r[2] - 10, r[3] - 10) for r in rows[:3]] + rows[3:]
    t = one(signal(at=at), swing, {("SOL", "1h"): bars(low)}, default_config)
    assert (t.take_profit, t.target_source) == (110, "atr")


def test_templates_from_config_follow_the_knobs():
    templates = sim.templates_from_config(SimConfig(td13_order="limit", rotation_take_profit="structure"))
    assert templates["rotation"] == TradeTemplate("limit", "structure", 6, 48, 20)
    assert templates["td13_exhaustion"].order_type == "limit"
    assert sim.templates_from_config(SimConfig())["td13_exhaustion"].order_type == "market"


def test_summary_recomputed_by_hand(default_config):
    win = bars([(101, 102, 101, 101), (101, 101, 99, 101), (101, 111, 100, 110)])  # +10 %, +2 R
    loss = bars([(101, 102, 101, 101), (101, 101, 99, 101), (101, 101, 94, 95)])  # −5 %, −1 R
    never = bars([(101, 102, 101, 101)] * 5)  # expires
    td = bars([(100, 100, 100, 100), (100, 104, 99, 103), (103, 104, 102, 103)])  # open at end, +3 %, +0.6 R
    market = {("SOL", "1h"): win, ("APT", "1h"): loss, ("ARB", "1h"): never, ("OP", "1h"): td}
    signals = [
        signal(symbol="SOL"),
        signal(symbol="APT"),
        signal(symbol="ARB"),
        signal(symbol="OP", archetype="td13_exhaustion"),
    ]
    report = sim.run(signals, LIMIT | MARKET, market, costs=ZERO, cfg=default_config)
    assert list(report.trades["alert_id"]) == [s.signal_id for s in signals]  # one row each, in order
    summary = report.summary
    rot, td13, every = summary.loc["rotation"], summary.loc["td13_exhaustion"], summary.loc["all"]
    assert (rot.alerts, rot.filled, rot.wins) == (3, 2, 1)
    assert rot.win_rate == 0.5 and rot.mean_r == pytest.approx(0.5) and rot.total_pnl_pct == pytest.approx(5)
    assert rot.profit_factor == pytest.approx(2)  # 2 R won / 1 R lost
    assert (td13.filled, td13.total_r, td13.profit_factor) == (1, pytest.approx(0.6), math.inf)
    assert (every.alerts, every.filled, every.wins) == (4, 3, 2)
    assert every.mean_r == pytest.approx((2 - 1 + 0.6) / 3) and every.profit_factor == pytest.approx(2.6)


def test_records_and_exports_round_trip(default_config, tmp_path):
    b = bars([(101, 102, 99, 101), (101, 103, 100.5, 102), (102, 102, 99.5, 101), (101, 111, 100, 108)])
    report = sim.run(
        [signal(), signal(plan=False, symbol="APT")], LIMIT, {("SOL", "1h"): b}, cfg=default_config
    )
    records = report.records()
    assert [r.exit_reason for r in records] == ["target", "no_plan"] and records[1].entry_time is None
    back = pd.read_parquet(report.to_parquet(tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back, report.trades.reset_index(drop=True))
    csv = pd.read_csv(report.to_csv(tmp_path / "t.csv"))
    assert list(csv.columns) == list(report.trades.columns) and len(csv) == 2


def test_duplicate_or_unfired_signals(default_config):
    b = {("SOL", "1h"): bars([(100,) * 4] * 3)}
    with pytest.raises(ValueError, match="repeat a signal_id"):
        sim.run([signal(), signal()], LIMIT, b, cfg=default_config)
    quiet = signal().model_copy(update={"fired": False})
    assert sim.run([quiet], LIMIT, b, cfg=default_config).trades.empty


@st.composite
def paths(draw):
    """A gapless path (each bar opens at the previous close), a plan around its first price, random costs."""
    n = draw(st.integers(3, 30))
    steps = draw(st.lists(st.floats(-0.04, 0.04), min_size=n, max_size=n))
    wicks = draw(st.lists(st.tuples(st.floats(0, 0.03), st.floats(0, 0.03)), min_size=n, max_size=n))
    close = 100 * np.cumprod(1 + np.array(steps))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.array([w[0] for w in wicks]))
    low = np.minimum(open_, close) * (1 - np.array([w[1] for w in wicks]))
    side = draw(st.sampled_from(["long", "short"]))
    sign = 1 if side == "long" else -1
    entry = 100 * (1 - sign * draw(st.floats(0, 0.03)))
    stop = entry * (1 - sign * draw(st.floats(0.005, 0.08)))
    target = entry * (1 + sign * draw(st.floats(0.005, 0.15)))
    costs = CostsConfig(
        spot_fee_pct=draw(st.floats(0, 0.2)),
        spot_slippage_pct=draw(st.floats(0, 0.2)),
        perps_taker_fee_pct=draw(st.floats(0, 0.1)),
        perps_maker_fee_pct=draw(st.floats(0, 0.05)),
    )
    rates = draw(st.lists(st.floats(-0.001, 0.001), min_size=n, max_size=n))
    return {
        "bars": pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close}, index=T0 + H * np.arange(n)
        ),
        "signal": signal(
            entry, stop, target, side=side, archetype=draw(st.sampled_from(["rotation", "td13_exhaustion"]))
        ),
        "costs": costs,
        "instrument": draw(st.sampled_from(["spot", "perps"])),
        "rates": pd.Series(rates, index=T0 + H * np.arange(1, n + 1)),
    }


@settings(max_examples=150, deadline=None)
@given(case=paths())
def test_a_stop_filled_at_its_level_loses_at_most_one_r_plus_costs(default_config, case):
    """Without gaps the stop fills at its level, so PnL ≥ −1 R − costs in R (fees, slippage, funding paid).
    (A gap beyond the stop fills at the open and may lose more: `test_a_gap_through_the_stop_fills_at_the_open`.)"""
    market = FrameMarket({("SOL", "1h"): case["bars"]}, {"SOL": case["rates"]}, {"SOL": case["instrument"]})
    templates = {
        "rotation": TradeTemplate("limit", max_hold_bars=40),
        "td13_exhaustion": TradeTemplate("market", max_hold_bars=40),
    }
    t = one(case["signal"], templates, market, default_config, costs=case["costs"])
    if not t.stop_hit:
        return
    sign = 1 if t.side == "long" else -1
    slip = case["costs"].spot_slippage_pct
    assert t.exit_price == pytest.approx(t.stop_price * (1 - sign * slip / 100))
    costs_r = (t.fees_pct + t.slippage_pct + max(0.0, -t.funding_pct)) / t.risk_pct
    assert t.pnl_r >= -1 - costs_r - 1e-9
