"""The rotation scanner: hand-built trigger days, the vectorised history against the per-bar scan, scoring."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apex_rotation.config import ApexConfig, load_config
from apex_rotation.research.scanner_quality import precision_recall
from apex_rotation.signals import rotation
from apex_rotation.signals.rotation import (
    CONTEXT_COLUMNS,
    HISTORY_COLUMNS,
    INSUFFICIENT_DATA,
    RotationCandidate,
    candidates_from_history,
    format_move,
    infer_timeframe,
    scan,
    scan_history,
    strength,
)

CFG = ApexConfig()  # move ≥ 4 %, alt ≤ 1.5 %, corr ≥ 0.7, beta ≥ 1.5; catch-up HIGH ≥ 10 %, MEDIUM ≥ 6 %
NAN = math.nan
DAY0 = pd.Timestamp("2024-03-03", tz="UTC")
DAY1 = pd.Timestamp("2024-03-04", tz="UTC")  # the trigger bar
GATES = [f"{k}_{a}_{w}" for k in ("corr", "beta") for a in ("btc", "eth") for w in (14, 30)]


def features(index: pd.DatetimeIndex, ret: list[float], **columns: list[float]) -> pd.DataFrame:
    """A features frame with neutral defaults; gate columns not given are 0 (never pass)."""
    n = len(index)
    frame = pd.DataFrame(
        {
            "open": 100.0,
            "high": 101.0,
            "low": 99.0,
            "close": 100.0,
            "volume": 1000.0,
            "filled": False,
            "ret": ret,
            "vol_ema20": 800.0,
            "hh_prev": 100.5,
            "atr": 2.0,
            "oi": 5e6,
            "oi_chg": 0.01,
            "funding": 0.0001,
            "funding_prev": 0.0001,
            **{g: [0.0] * n for g in GATES},
        },
        index=index,
    )
    for name, values in columns.items():
        frame[name] = values
    frame.index.name = "open_time"
    return frame


def alt_day(ret: float, corr_eth: float, beta_eth: float, **extra: list[float]) -> pd.DataFrame:
    """A two-day alt: the ETH gate (14 days) on DAY0 as given, on DAY1 deliberately contradictory."""
    index = pd.DatetimeIndex([DAY0, DAY1])
    return features(
        index,
        [0.002, ret],
        corr_eth_14=[corr_eth, 0.1],
        beta_eth_14=[beta_eth, 0.2],
        **extra,
    )


def eth_day(eth_ret: float = 0.05, btc_ret: float = 0.01) -> dict[str, pd.DataFrame]:
    index = pd.DatetimeIndex([DAY0, DAY1])
    return {"BTC": features(index, [0.0, btc_ret]), "ETH": features(index, [0.0, eth_ret])}


# ---------------------------------------------------------------- acceptance: an ETH +5 % day on 1d bars


def test_eth_plus_5_day_flags_exactly_the_lagging_followers() -> None:
    apex = eth_day()
    basket = {
        **apex,  # apex assets in the basket are skipped
        "APT": alt_day(0.01, 0.84, 1.87, close=[100.0, 101.0]),
        "CORR_EDGE": alt_day(0.0, 0.7, 1.6),  # corr exactly 0.7 passes
        "COIN_EDGE": alt_day(0.015, 0.9, 1.5),  # coin exactly +1.5 % and beta exactly 1.5 pass
        "DIP": alt_day(-0.02, 0.8, 1.8),  # fell: still lagging
        "LOW_BETA": alt_day(0.0, 0.9, 1.49),
        "LOW_CORR": alt_day(0.0, 0.69, 2.0),
        "RALLIED": alt_day(0.03, 0.9, 2.0),
        "NAN_CORR": alt_day(0.0, NAN, 2.0),
        "NAN_MOVE": alt_day(NAN, 0.9, 2.0),
        "BTC_ONLY": alt_day(
            0.0, 0.3, 0.5, corr_btc_14=[0.95, 0.95], beta_btc_14=[2.0, 2.0]
        ),  # BTC did not fire
    }
    got = scan(apex, basket, CFG, timeframe="1d")
    # catch-up = beta × 5 − coin: DIP 1.8·5+2 = 11, APT 1.87·5−1 = 8.35, CORR_EDGE 8.0, COIN_EDGE 7.5−1.5 = 6
    assert [c.symbol for c in got] == ["DIP", "APT", "CORR_EDGE", "COIN_EDGE"]
    assert [c.expected_catchup_pct for c in got] == pytest.approx([11.0, 8.35, 8.0, 6.0])
    assert {c.apex_asset for c in got} == {"ETH"}
    # ≥ 10 % HIGH, ≥ 6 % MEDIUM: COIN_EDGE sits exactly on the MEDIUM cut-off
    assert [c.signal_strength for c in got] == ["HIGH", "MEDIUM", "MEDIUM", "MEDIUM"]
    apt = got[1]
    assert apt.to_record() == {
        "symbol": "APT",
        "apex_asset": "ETH",
        "apex_move": "+5.0%",
        "coin_move": "+1.0%",
        "correlation": 0.84,
        "beta": 1.87,
        "signal_strength": "MEDIUM",
        "status": "LAGGING_ROTATION",
        "bar_time": "2024-03-04T00:00:00+00:00",
        "timeframe": "1d",
    }
    assert apt.context["close"] == 101.0 and apt.context["oi_chg"] == 0.01
    assert set(apt.context) == set(CONTEXT_COLUMNS)

    history = scan_history(apex, basket, CFG, timeframe="1d")
    assert list(history["symbol"]) == ["DIP", "APT", "CORR_EDGE", "COIN_EDGE"]
    assert candidates_from_history(history) == got
    # NAN_CORR and NAN_MOVE could not be judged against the triggering ETH; the others could.
    counts = history.attrs[INSUFFICIENT_DATA]
    assert counts["NAN_CORR"] == 1 and counts["NAN_MOVE"] == 1
    assert sum(counts.values()) == 2


def test_apex_threshold_is_inclusive_and_nan_never_triggers() -> None:
    basket = {"APT": alt_day(0.0, 0.9, 2.0)}
    assert [c.apex_move_pct for c in scan(eth_day(0.04), basket, CFG, timeframe="1d")] == [4.0]
    assert scan(eth_day(0.0399), basket, CFG, timeframe="1d") == []
    assert scan(eth_day(NAN), basket, CFG, timeframe="1d") == []


def test_gate_is_read_at_the_previous_bar() -> None:
    apex = eth_day()
    index = pd.DatetimeIndex([DAY0, DAY1])
    good_then = features(index, [0.0, 0.0], corr_eth_14=[0.8, 0.2], beta_eth_14=[2.0, 0.5])
    good_now = features(index, [0.0, 0.0], corr_eth_14=[0.2, 0.8], beta_eth_14=[0.5, 2.0])
    got = scan(apex, {"THEN": good_then, "NOW": good_now}, CFG, timeframe="1d")
    assert [(c.symbol, c.correlation, c.beta) for c in got] == [("THEN", 0.8, 2.0)]


def test_corr_window_selects_the_gate_columns() -> None:
    alt = alt_day(0.0, 0.2, 0.2, corr_eth_30=[0.9, 0.0], beta_eth_30=[1.6, 0.0])
    assert scan(eth_day(), {"X": alt}, CFG, timeframe="1d", corr_window_days=14) == []
    assert [c.beta for c in scan(eth_day(), {"X": alt}, CFG, timeframe="1d", corr_window_days=30)] == [1.6]
    with pytest.raises(KeyError, match="corr_eth_7"):
        scan(eth_day(), {"X": alt}, CFG, timeframe="1d", corr_window_days=7)


def test_filled_bars_are_missing_returns() -> None:
    filled_alt = alt_day(0.0, 0.9, 2.0, filled=[False, True])
    assert scan(eth_day(), {"F": filled_alt}, CFG, timeframe="1d") == []
    apex = eth_day()
    apex["ETH"]["filled"] = [False, True]
    assert scan(apex, {"A": alt_day(0.0, 0.9, 2.0)}, CFG, timeframe="1d") == []


def test_both_apexes_trigger_one_candidate_with_the_larger_catchup() -> None:
    apex = eth_day(eth_ret=0.05, btc_ret=0.06)
    both = dict(corr_btc_14=[0.8, 0.0], corr_eth_14=[0.9, 0.0])
    x = features(apex["ETH"].index, [0.0, 0.005], **both, beta_btc_14=[1.6, 0.0], beta_eth_14=[2.0, 0.0])
    y = features(apex["ETH"].index, [0.0, 0.005], **both, beta_btc_14=[2.0, 0.0], beta_eth_14=[1.5, 0.0])
    got = scan(apex, {"X": x, "Y": y}, CFG, timeframe="1d")
    # X: BTC 1.6·6−0.5 = 9.1 vs ETH 2·5−0.5 = 9.5 → ETH; Y: BTC 2·6−0.5 = 11.5 vs ETH 1.5·5−0.5 = 7 → BTC
    assert [(c.symbol, c.apex_asset, round(c.expected_catchup_pct, 6)) for c in got] == [
        ("Y", "BTC", 11.5),
        ("X", "ETH", 9.5),
    ]
    history = scan_history(apex, {"X": x, "Y": y}, CFG, timeframe="1d")
    assert list(zip(history["symbol"], history["apex_asset"], strict=True)) == [("Y", "BTC"), ("X", "ETH")]


def test_equal_catchup_goes_to_the_apex_listed_first() -> None:
    apex = eth_day(eth_ret=0.05, btc_ret=0.05)
    gate = dict(
        corr_btc_14=[0.8, 0.0], corr_eth_14=[0.8, 0.0], beta_btc_14=[2.0, 0.0], beta_eth_14=[2.0, 0.0]
    )
    basket = {"Z": features(apex["ETH"].index, [0.0, 0.0], **gate)}
    for order in (["BTC", "ETH"], ["ETH", "BTC"]):
        ordered = {name: apex[name] for name in order}
        assert [c.apex_asset for c in scan(ordered, basket, CFG, timeframe="1d")] == [order[0]]
        assert list(scan_history(ordered, basket, CFG, timeframe="1d")["apex_asset"]) == [order[0]]


def test_default_bar_is_the_last_common_apex_bar() -> None:
    apex = eth_day()
    day2 = DAY1 + pd.Timedelta(days=1)
    apex["BTC"] = features(pd.DatetimeIndex([DAY0, DAY1, day2]), [0.0, 0.0, 0.0])
    got = scan(apex, {"APT": alt_day(0.0, 0.9, 2.0)}, CFG, timeframe="1d")
    assert [c.bar_time for c in got] == [DAY1.to_pydatetime()]
    with pytest.raises(ValueError, match="timezone"):
        scan(apex, {}, CFG, timeframe="1d", at="2024-03-04")


# ---------------------------------------------------------------- the issue's API: scan(apex_assets, basket, cfg)


def test_scan_as_written_in_the_issue_with_the_app_config() -> None:
    cfg = load_config()  # the whole AppConfig: scan reads cfg.apex and its corr_window_days
    apex_assets = eth_day()  # daily bars: the timeframe is inferred as 1d
    basket = {
        **apex_assets,
        "APT": alt_day(0.01, 0.84, 1.87, corr_eth_30=[0.84, 0.1], beta_eth_30=[1.87, 0.2]),
    }
    got = rotation.scan(apex_assets, basket, cfg)
    assert [(c.symbol, c.apex_asset, c.timeframe, c.bar_time) for c in got] == [
        ("APT", "ETH", "1d", DAY1.to_pydatetime())
    ]
    assert got == scan(
        apex_assets, basket, cfg.apex, timeframe="1d", corr_window_days=cfg.apex.corr_window_days
    )
    assert candidates_from_history(rotation.scan_history(apex_assets, basket, cfg)) == got


def test_scan_as_written_in_the_issue_with_the_apex_config() -> None:
    apex_assets = eth_day()
    basket = {**apex_assets, "APT": alt_day(0.01, 0.84, 1.87)}
    got = rotation.scan(apex_assets, basket, CFG)
    assert [(c.symbol, c.timeframe, c.expected_catchup_pct) for c in got] == [
        ("APT", "1d", pytest.approx(8.35))
    ]
    assert candidates_from_history(rotation.scan_history(apex_assets, basket, CFG)) == got
    with pytest.raises(TypeError, match="ApexConfig or an AppConfig"):
        rotation.scan(apex_assets, basket, {"move_threshold_pct": 4.0})  # type: ignore[arg-type]


def test_the_config_picks_the_gate_window() -> None:
    alt = alt_day(0.0, 0.2, 0.2, corr_eth_30=[0.9, 0.0], beta_eth_30=[1.6, 0.0])  # passes on 30 days only
    assert rotation.scan(eth_day(), {"X": alt}, ApexConfig(corr_window_days=14)) == []
    assert [c.beta for c in rotation.scan(eth_day(), {"X": alt}, ApexConfig(corr_window_days=30))] == [1.6]
    app30 = load_config(overrides={"apex": {"corr_window_days": 30}})
    assert [c.beta for c in rotation.scan(eth_day(), {"X": alt}, app30)] == [1.6]
    assert list(rotation.scan_history(eth_day(), {"X": alt}, app30)["beta"]) == [1.6]
    assert rotation.scan(eth_day(), {"X": alt}, app30, corr_window_days=14) == []  # explicit wins
    app14 = load_config(overrides={"apex": {"corr_window_days": 14}})
    assert rotation.scan_history(eth_day(), {"X": alt}, app14).empty


def test_inferred_hourly_timeframe_reads_the_gate_one_hour_back() -> None:
    t0 = pd.Timestamp("2024-03-04T10:00Z")
    index = pd.DatetimeIndex([t0, t0 + pd.Timedelta(hours=1)])
    apex = {"ETH": features(index, [0.0, 0.05])}
    # the gate passes at t − 1h only; a 4h or 1d step would look up a missing bar and flag nothing
    alt = features(index, [0.0, 0.0], corr_eth_14=[0.8, 0.0], beta_eth_14=[2.0, 0.0])
    got = rotation.scan(apex, {"A": alt}, CFG)
    assert [(c.symbol, c.timeframe, c.beta) for c in got] == [("A", "1h", 2.0)]
    history = rotation.scan_history(apex, {"A": alt}, CFG)
    assert list(zip(history["symbol"], history["timeframe"], strict=True)) == [("A", "1h")]


def test_infer_timeframe_takes_the_most_common_step() -> None:
    hourly = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    four = pd.date_range("2024-01-01", periods=50, freq="4h", tz="UTC")
    days = pd.date_range("2024-01-01", periods=10, freq="1D", tz="UTC")
    assert infer_timeframe({"BTC": features(hourly.delete([5, 6, 20]), [0.0] * 47)}) == "1h"  # gaps
    assert infer_timeframe({"BTC": features(four[::-1], [0.0] * 50)}) == "4h"  # order does not matter
    assert infer_timeframe({"BTC": features(days.delete(4), [0.0] * 9)}) == "1d"
    # steps pooled over the apex frames: 1 × 1d in one, 3 × 4h in the other → 4h
    assert (
        infer_timeframe({"BTC": features(days[:2], [0.0] * 2), "ETH": features(four[:4], [0.0] * 4)}) == "4h"
    )
    # a tie (one 1h step, one 4h step) goes to the shorter step
    assert (
        infer_timeframe({"BTC": features(hourly[:2], [0.0] * 2), "ETH": features(four[:2], [0.0] * 2)})
        == "1h"
    )
    two_hourly = pd.date_range("2024-01-01", periods=5, freq="2h", tz="UTC")
    with pytest.raises(ValueError, match="most common bar step 0 days 02:00:00 is none of"):
        infer_timeframe({"BTC": features(two_hourly, [0.0] * 5)})
    with pytest.raises(ValueError, match="no apex frame has two bars"):
        rotation.scan({"BTC": features(days[:1], [0.05])}, {}, CFG)
    with pytest.raises(ValueError, match="not a DatetimeIndex"):
        infer_timeframe({"BTC": pd.DataFrame({"ret": [0.0, 0.0]})})


def test_strength_cutoffs_come_from_the_config() -> None:
    grades = [strength(x, CFG) for x in (10.0, 9.99, 6.0, 5.99, 4.5)]
    assert grades == ["HIGH", "MEDIUM", "MEDIUM", "LOW", "LOW"]
    custom = ApexConfig(strength_high_pct=8.0, strength_medium_pct=5.0)
    assert [strength(x, custom) for x in (8.0, 7.99, 5.0, 4.99)] == ["HIGH", "MEDIUM", "MEDIUM", "LOW"]
    assert strength(9.0, load_config(overrides={"apex": {"strength_high_pct": 9.0}})) == "HIGH"


def test_every_grade_is_reachable_with_the_default_gates() -> None:
    basket = {
        "H": alt_day(0.0, 0.8, 2.0),  # beta 2 sat out ETH +5 %: 2·5 − 0 = 10 → HIGH
        "M": alt_day(0.0, 0.8, 1.5),  # beta 1.5, flat: 1.5·5 = 7.5 → MEDIUM
        "L": alt_day(0.015, 0.8, 1.5),  # beta 1.5, coin +1.5 % after ETH +4 %: the gate minimum 4.5 → LOW
    }
    got = scan(eth_day(0.05), {k: basket[k] for k in ("H", "M")}, CFG, timeframe="1d")
    assert [(c.symbol, c.expected_catchup_pct, c.signal_strength) for c in got] == [
        ("H", pytest.approx(10.0), "HIGH"),
        ("M", pytest.approx(7.5), "MEDIUM"),
    ]
    [low] = scan(eth_day(0.04), {"L": basket["L"]}, CFG, timeframe="1d")
    assert (low.expected_catchup_pct, low.signal_strength) == (pytest.approx(4.5), "LOW")
    history = scan_history(eth_day(0.05), {k: basket[k] for k in ("H", "M")}, CFG, timeframe="1d")
    assert list(history["signal_strength"]) == ["HIGH", "MEDIUM"]


def test_format_move_rounds_before_signing() -> None:
    assert [format_move(x) for x in (5.2, 0.04, -0.04, -0.0, 0.0, -0.06, -1.25)] == [
        "+5.2%",
        "+0.0%",
        "+0.0%",  # not "-0.0%"
        "+0.0%",
        "+0.0%",
        "-0.1%",
        "-1.2%",  # -1.25 is -1.25 exactly: round half to even
    ]


def test_record_matches_the_seed_example_shape() -> None:
    candidate = RotationCandidate(
        symbol="APT",
        apex_asset="ETH",
        timeframe="4h",
        bar_time=pd.Timestamp("2024-03-04T09:00:00+01:00").to_pydatetime(),
        apex_move_pct=5.2,
        coin_move_pct=-0.04,
        correlation=0.8412,
        beta=1.8689,
        expected_catchup_pct=9.76,
        signal_strength="HIGH",
        context={c: None for c in CONTEXT_COLUMNS},
    )
    assert candidate.to_record() == {
        "symbol": "APT",
        "apex_asset": "ETH",
        "apex_move": "+5.2%",
        "coin_move": "+0.0%",
        "correlation": 0.84,
        "beta": 1.87,
        "signal_strength": "HIGH",
        "status": "LAGGING_ROTATION",
        "bar_time": "2024-03-04T08:00:00+00:00",
        "timeframe": "4h",
    }


# ---------------------------------------------------------------- history == per-bar scan, no lookahead


def random_market(seed: int, n: int = 160) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Two apexes and five alts on 4h bars with frequent triggers, NaNs, filled bars and ragged starts."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="4h", tz="UTC", name="open_time")

    def frame(idx: pd.DatetimeIndex, ret_sd: float) -> pd.DataFrame:
        m = len(idx)
        ret = rng.normal(0.0, ret_sd, m)
        ret[rng.random(m) < 0.05] = NAN
        gates = {g: rng.uniform(*((0.5, 1.0) if g[0] == "c" else (1.0, 2.5)), m) for g in GATES}
        for g in gates.values():
            g[rng.random(m) < 0.05] = NAN
        out = features(idx, list(ret), **{k: list(v) for k, v in gates.items()})
        out["filled"] = rng.random(m) < 0.03
        out["oi_chg"] = np.where(rng.random(m) < 0.2, NAN, rng.normal(0, 0.05, m))
        out["close"] = 100 + rng.normal(0, 1, m).cumsum()
        return out

    apex = {"BTC": frame(index, 0.05), "ETH": frame(index[3:], 0.05)}
    basket = {f"ALT{i}": frame(index, 0.015) for i in range(4)}
    basket["LATE"] = frame(index[40:].delete(10), 0.015)  # listed late, with a hole in its grid
    return apex, basket


@pytest.mark.parametrize("seed", [1, 2])
def test_history_equals_scan_at_every_bar(seed: int) -> None:
    apex, basket = random_market(seed)
    history = scan_history(apex, basket, CFG, timeframe="4h")
    assert list(history.columns) == list(HISTORY_COLUMNS)
    assert len(history) > 20  # the market is built to trigger often
    assert history["bar_time"].is_monotonic_increasing
    for t in apex["BTC"].index:
        expected = scan(apex, basket, CFG, timeframe="4h", at=t)
        assert candidates_from_history(history[history["bar_time"] == t]) == expected, t
        if expected:
            assert scan(apex, basket, CFG, at=t) == expected  # the timeframe inferred as 4h
    pd.testing.assert_frame_equal(scan_history(apex, basket, CFG), history)


def test_no_lookahead_truncating_after_t_keeps_bar_t() -> None:
    apex, basket = random_market(3)
    full = scan_history(apex, basket, CFG, timeframe="4h")
    for t in full["bar_time"].drop_duplicates().iloc[::3]:
        cut_apex = {k: v.loc[:t] for k, v in apex.items()}
        cut_basket = {k: v.loc[:t] for k, v in basket.items()}
        assert scan(cut_apex, cut_basket, CFG, timeframe="4h") == scan(
            apex, basket, CFG, timeframe="4h", at=t
        )
        assert scan(cut_apex, cut_basket, CFG) == scan(apex, basket, CFG, timeframe="4h", at=t)  # inferred
        cut = scan_history(cut_apex, cut_basket, CFG, timeframe="4h")
        pd.testing.assert_frame_equal(cut, full[full["bar_time"] <= t].reset_index(drop=True))


def test_history_is_fast_on_two_years_of_hourly_bars() -> None:
    n = 17_520
    rng = np.random.default_rng(0)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="open_time")

    def frame(sd: float) -> pd.DataFrame:
        data = {c: rng.uniform(0.5, 2.5, n) for c in GATES}
        data |= {c: rng.uniform(1, 2, n) for c in CONTEXT_COLUMNS}
        data |= {"ret": rng.normal(0, sd, n), "filled": np.zeros(n, dtype=bool)}
        return pd.DataFrame(data, index=index)

    apex = {"BTC": frame(0.02), "ETH": frame(0.02)}
    basket = {**apex, **{f"ALT{i}": frame(0.01) for i in range(15)}}
    history = scan_history(apex, basket, CFG, timeframe="1h")  # its speed: benchmarks/bench_scanner.py
    assert len(history) > 1000 and set(history["symbol"]) <= {f"ALT{i}" for i in range(15)}


def test_empty_history_has_the_columns() -> None:
    apex = eth_day(eth_ret=0.0)
    history = scan_history(apex, {"APT": alt_day(0.0, 0.9, 2.0)}, CFG, timeframe="1d")
    assert history.empty and list(history.columns) == list(HISTORY_COLUMNS)
    assert precision_recall(history, pd.DataFrame(columns=["time", "timeframe", "kind", "symbol"]), "1d") == {
        "tp": 0,
        "fp": 0,
        "fn": 0,
        "precision": None,
        "recall": None,
    }


# ---------------------------------------------------------------- scoring


def test_precision_recall_matches_on_time_timeframe_symbol() -> None:
    t1, t2 = pd.Timestamp("2024-03-04T08:00Z"), pd.Timestamp("2024-03-04T12:00Z")
    candidates = pd.DataFrame(
        {
            "bar_time": [t1, t1, t2, t2],
            "timeframe": ["4h", "4h", "4h", "1d"],
            "symbol": ["APT", "SOL", "ARB", "APT"],
            "apex_asset": ["ETH", "ETH", "BTC", "ETH"],
        }
    )
    truth = pd.DataFrame(
        {
            "time": [t1, t1, t2, t2, t1, t2],
            "timeframe": ["4h", "4h", "4h", "4h", "4h", "1d"],
            "kind": ["laggard", "laggard", "laggard", "apex_move", "laggard", "laggard"],
            "symbol": ["APT", "SOL", "OP", "ARB", "APT", "APT"],
            "apex_asset": ["ETH", "ETH", "BTC", "BTC", "BTC", "ETH"],  # APT t1 is listed for both apexes
            "value": 0.0,
            "detail": "",
        }
    )
    # 4h positives {APT t1, SOL t1, OP t2}; flagged {APT t1, SOL t1, ARB t2} (ARB's truth row is no laggard)
    got = precision_recall(candidates, truth, "4h")
    assert got == {"tp": 2, "fp": 1, "fn": 1, "precision": 2 / 3, "recall": 2 / 3}
    assert precision_recall(candidates, truth, "1d") == {
        "tp": 1,
        "fp": 0,
        "fn": 0,
        "precision": 1.0,
        "recall": 1.0,
    }


def test_a_timeframe_that_does_not_trigger_writes_the_profile_of_the_joined_frames(tmp_path):
    """1h does not trigger by default: the scan reads only the profile's corr/beta columns, and writes the
    same profile and `data_through` as from the full joined frames the trigger timeframes load."""
    from apex_rotation.features.compute import compute_feature_partitions
    from apex_rotation.ingest.synthetic import SyntheticSource
    from apex_rotation.signals.scanning import PROFILE_COLUMNS, basket_profile, load_frames, scan_timeframe
    from apex_rotation.store.parquet import ParquetStore
    from apex_rotation.store.refresh import StoreRefresher
    from apex_rotation.store.tables import BASKET_KEY, BASKET_PROFILE, ROTATION_CANDIDATES

    cfg = load_config(
        overrides={"basket": {"symbols": ["BTC", "ETH", "SOL", "APT"]}, "synthetic": {"days": 40}}
    )
    assert "1h" not in cfg.apex.trigger_timeframes
    store = ParquetStore(tmp_path)
    with StoreRefresher(cfg, store, SyntheticSource(cfg)) as refresher:
        assert refresher.refresh({s: ["1h"] for s in cfg.basket.names}, audit=True).ok
    assert compute_feature_partitions(cfg, store, [(s, "1h") for s in cfg.basket.names]) == {}

    result = scan_timeframe(cfg, store, "1h")
    joined = load_frames(cfg, store, "1h")
    assert len(PROFILE_COLUMNS) == 8 and all(c in joined["SOL"] for c in PROFILE_COLUMNS)
    expected = basket_profile(joined)
    pd.testing.assert_frame_equal(result.profile, expected, check_exact=True)
    pd.testing.assert_frame_equal(store.read(BASKET_PROFILE, "1h", BASKET_KEY), expected, check_exact=True)
    meta = store.meta(ROTATION_CANDIDATES, "1h", BASKET_KEY)
    assert meta["data_through"] == joined["BTC"].index[-1].isoformat() and not meta["triggers"]
    assert result.candidates.empty
