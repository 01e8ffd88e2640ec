"""The composer (`signals/score.py`): hand-built contexts with hand-derived blocks, score, reasons and plan;
determinism, the HTF/LTF conflict, the cool-down and the regime weighting of TD fades."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apex_rotation.config import AppConfig
from apex_rotation.signals.score import (
    EVIDENCE_FREE,
    BarValues,
    PreviousFire,
    ScoredSignal,
    SignalContext,
    TDEvent,
    TDView,
    Watch,
    compose,
    evidence,
    signal_id,
)
from apex_rotation.signals.scoring import compose_in_order

T = datetime(2025, 6, 2, 8, tzinfo=UTC)
ROTATION_ORDER = [
    "narrative/narrative",
    *(f"market/{n}" for n in ("volume_spike", "breakout", "oi_shift", "funding_flip", "funding_hot")),
    *(f"technical/{n}" for n in ("rsi", "macd", "ema_stack", "fib", "volume_trend", "k_of_5", "retest")),
    "rotation/strength",
    "rotation/catchup_left",
    *(f"td/{n}" for n in ("countdown_13", "perfected_9", "against", "early_setup", "ltf_agrees")),
    "regime/fade_weight",
    "conflict/htf_ltf",
]


def view(tf: str, **kw) -> TDView:
    return TDView(timeframe=tf, bar_time=T, **kw)


def rotation_context(cfg: AppConfig, **kw) -> SignalContext:
    """A confirmed laggard: volume 3x, breakout, funding flipped, 5 of 5 technicals, MEDIUM strength."""
    bar = BarValues(
        close=100.0,
        atr=2.0,
        volume=300.0,
        vol_ema20=100.0,  # 3.0x ≥ 2.0x: +1.5
        hh_prev=98.0,  # breakout: +1.5
        oi_chg=None,  # no OI: "no data", 0
        funding=0.0001,
        funding_prev=-0.0001,  # flip: +0.5; hot: 0.0001 < 0.0005, fails (0)
        rsi=60.0,
        macd=1.0,
        macd_signal=0.5,
        macd_hist=0.5,
        macd_hist_prev=0.4,
        ema_20=95.0,
        ema_50=90.0,
        ema_200=80.0,
        fib_zone="above",
        fib_pos=-0.1,
        fib_swing_up=True,
        volume_trend=0.1,
        structure_low=97.0,  # stop 96.8: 1.6 ATR, rr 3.6/3.2 = 1.125 < 1.2 → the ATR stop (rr 1.2)
        structure_high=101.0,
    )
    watch = Watch(
        apex_asset="ETH",
        trigger_time=datetime(2025, 6, 2, 0, tzinfo=UTC),
        signal_strength="MEDIUM",  # +1.5
        expected_catchup_pct=8.0,
        move_since_trigger_pct=2.0,  # 6 % of 8 % left ≥ half: +1.0
        status="confirmed",
        bars_after=2,
    )
    base = dict(
        archetype="rotation",
        symbol="SOL",
        timeframe="4h",
        bar_time=T,
        direction="long",
        bar=bar,
        td=view("4h"),
        htf=view("4h"),
        ltf=view("1h"),
        regime="trend_up",
        watch=watch,
        retest=("pending", "the breakout is the signal bar"),
        cfg=cfg,
    )
    return SignalContext(**(base | kw))


def td13_context(cfg: AppConfig, direction: str = "short", **kw) -> SignalContext:
    """A perfected countdown 13 (sell → short) on 4h with volume 3x and the 1h agreeing."""
    side = "sell" if direction == "short" else "buy"
    thirteen = TDEvent(kind="countdown_13", side=side, bars_ago=0, perfected=True)
    bar = BarValues(close=100.0, atr=2.0, volume=300.0, vol_ema20=100.0)  # the rest unknown
    td = view("4h", countdown_type=side, countdown=13, tdst_buy=102.0, tdst_sell=98.0, events=[thirteen])
    ltf = view("1h", events=[TDEvent(kind="setup_9", side=side, bars_ago=1, perfected=False)])
    base = dict(
        archetype="td13_exhaustion",
        symbol="LINK",
        timeframe="4h",
        bar_time=T,
        direction=direction,
        bar=bar,
        td=td,
        htf=td,
        ltf=ltf,
        regime="chop",
        cfg=cfg,
    )
    return SignalContext(**(base | kw))


def names(signal: ScoredSignal) -> list[str]:
    return [f"{r.block}/{r.name}" for r in signal.reasons]


def test_rotation_blocks_score_reasons_and_plan_by_hand(default_config: AppConfig):
    s = compose(rotation_context(default_config))
    assert names(s) == ROTATION_ORDER
    assert (s.narrative_score, s.market_score, s.technical_score, s.rotation_bonus, s.td_signal) == (
        0.0,
        3.5,  # 1.5 + 1.5 + 0.5
        3.5,  # 5 × 0.5 + 1.0; retest pending 0
        2.5,  # 1.5 + 1.0
        0.0,
    )
    assert s.score == pytest.approx(9.5) and s.regime_weight == 1.0
    assert s.score == pytest.approx(sum(r.points for r in s.reasons))
    assert s.fired and s.suppressed is None and not s.td_contributes
    assert s.signal_id == signal_id("SOL", "4h", T, "rotation") and s.apex_asset == "ETH"
    passed = {f"{r.block}/{r.name}": r.passed for r in s.reasons}
    assert passed["narrative/narrative"] is None and passed["market/oi_shift"] is None
    assert passed["market/funding_hot"] is False and passed["technical/retest"] is None
    assert s.reasons[0].detail == "narrative engine not enabled"
    p = s.plan
    assert (p.entry, p.entry_low, p.entry_high) == (100.0, 99.5, 100.0)
    assert (p.stop_source, p.stop, p.invalidation, p.invalidation_kind) == ("atr", 97.0, 97.0, "ATR stop")
    assert p.target == pytest.approx(103.6) and p.rr == pytest.approx(1.2) and p.atr == 2.0


def test_compose_is_deterministic_and_round_trips_through_a_row(default_config: AppConfig):
    ctx = rotation_context(default_config)
    a, b = compose(ctx), compose(SignalContext(**ctx.model_dump() | {"cfg": default_config}))
    assert a == b
    assert ScoredSignal.from_row(a.to_row()) == a


def test_below_threshold_and_missing_atr_say_why(default_config: AppConfig):
    weak = compose(rotation_context(default_config, watch=None, archetype="rotation", retest=None))
    assert weak.score == pytest.approx(7.0)  # no watch: no rotation bonus; retest "none" 0
    bare = rotation_context(default_config).bar.model_copy(update={"volume": 100.0, "hh_prev": 120.0})
    s = compose(rotation_context(default_config, bar=bare))
    assert s.score == pytest.approx(6.5) and s.fired  # 0.5 + 3.5 + 2.5
    no_atr = rotation_context(default_config).bar.model_copy(update={"atr": None})
    s = compose(rotation_context(default_config, bar=no_atr))
    assert not s.fired and s.plan is None and s.suppressed == "no ATR on the signal bar"


def test_td13_short_with_tdst_stop_by_hand(default_config: AppConfig):
    s = compose(td13_context(default_config))
    # market: volume spike 1.5 (breakout/flip: no data); technicals: all unknown, 0; TD: 13 4.0 + its setup
    # perfected 1.0 + the 1h sell 9 agreeing 0.5
    assert (s.market_score, s.technical_score, s.rotation_bonus, s.td_signal) == (1.5, 0.0, 0.0, 5.5)
    assert s.score == pytest.approx(7.0) and s.fired and s.td_contributes and s.direction == "short"
    p = s.plan
    assert (p.stop_source, p.invalidation, p.invalidation_kind) == ("tdst", 102.0, "TDST")
    assert p.stop == pytest.approx(102.2) and p.target == pytest.approx(96.4)
    assert p.rr == pytest.approx(3.6 / 2.2) and (p.entry_low, p.entry_high) == (100.0, 100.5)
    assert "retest" not in [r.name for r in s.reasons]


def test_td_sell_fade_is_down_weighted_or_blocked_in_an_uptrend(default_config: AppConfig):
    chop = compose(td13_context(default_config))
    trend = compose(td13_context(default_config, regime="trend_up"))
    assert trend.regime_weight == default_config.regime.trend_fade_weight == 0.25
    assert trend.score == pytest.approx(0.25 * chop.score) and not trend.fired
    fade = trend.reasons[ROTATION_ORDER.index("regime/fade_weight") - 3]  # no retest, no rotation reasons
    assert (fade.block, fade.points) == ("regime", pytest.approx(-0.75 * chop.score))
    blocked_cfg = default_config.model_copy(
        update={"regime": default_config.regime.model_copy(update={"block_td_fades_in_trend": True})}
    )
    blocked = compose(td13_context(blocked_cfg, regime="trend_up"))
    assert blocked.score == 0.0 and not blocked.fired and blocked.suppressed.startswith("regime:")
    # a buy 13 (long) in the same up-trend is not a fade against it: full weight
    assert compose(td13_context(default_config, direction="long", regime="trend_up")).regime_weight == 1.0


def test_htf_buy_13_against_a_fresh_ltf_sell_9_is_suppressed(default_config: AppConfig):
    against = [TDEvent(kind="setup_9", side="sell", bars_ago=2, perfected=True)]
    s = compose(td13_context(default_config, direction="long", ltf=view("1h", events=against)))
    assert not s.fired and s.suppressed.startswith("HTF/LTF TD conflict: 4h buy 13 on the bar")
    clash = next(r for r in s.reasons if r.block == "conflict")
    assert clash.passed is False and "1h sell 9 2 bars ago" in clash.detail
    stale = [TDEvent(kind="countdown_13", side="sell", bars_ago=4, perfected=True)]  # 4 > conflict_ltf_bars-1
    assert compose(td13_context(default_config, direction="long", ltf=view("1h", events=stale))).fired
    # no HTF thesis (a plain rotation): an LTF sell 9 is no conflict
    assert compose(rotation_context(default_config, ltf=view("1h", events=against))).fired


def test_td_block_counts_against_and_penalises_early_setups(default_config: AppConfig):
    against = view("4h", events=[TDEvent(kind="setup_9", side="sell", bars_ago=1, perfected=True)])
    s = compose(rotation_context(default_config, td=against, htf=against))
    assert s.td_signal == pytest.approx(-1.5) and s.score == pytest.approx(8.0)
    early = view("4h", setup_type="sell", setup_count=7)
    assert compose(rotation_context(default_config, td=early, htf=early)).td_signal == pytest.approx(-0.5)
    running = view("4h", setup_type="buy", setup_count=5)  # the decline has not exhausted yet
    assert compose(rotation_context(default_config, td=running, htf=running)).td_signal == pytest.approx(-0.5)
    nine = view("4h", events=[TDEvent(kind="setup_9", side="buy", bars_ago=2, perfected=True)])
    s = compose(rotation_context(default_config, td=nine, htf=nine))
    assert s.td_signal == pytest.approx(1.0) and s.td_contributes


def test_cooldown_suppresses_a_repeat_unless_the_score_rose_by_the_margin(default_config: AppConfig):
    ctx = rotation_context(default_config)  # 9.5
    repeat = compose(ctx.model_copy(update={"previous": PreviousFire(bars_ago=3, score=9.0)}))
    assert not repeat.fired and repeat.suppressed.startswith("cool-down: fired 3 bars ago")
    assert repeat.reasons[-1].block == "cooldown" and repeat.reasons[-1].passed is False
    risen = compose(ctx.model_copy(update={"previous": PreviousFire(bars_ago=3, score=8.5)}))
    assert risen.fired and risen.reasons[-1].passed  # 9.5 ≥ 8.5 + 1.0
    later = compose(ctx.model_copy(update={"previous": PreviousFire(bars_ago=7, score=9.5)}))
    assert later.fired and later.reasons[-1].block == "conflict"  # 7 > cooldown_bars 6: no cool-down


def test_stage_applies_the_cooldown_in_time_order(default_config: AppConfig):
    first = rotation_context(default_config)
    t2, t3 = datetime(2025, 6, 2, 16, tzinfo=UTC), datetime(2025, 6, 3, 0, tzinfo=UTC)
    weaker = rotation_context(default_config, bar_time=t2, retest=("failed", "close back below"))  # 8.5
    stronger = rotation_context(default_config, bar_time=t3, retest=("confirmed", "held"))  # 10.5
    out = compose_in_order([stronger, weaker, first])
    assert [s.bar_time for s in out] == [T, t2, t3]
    assert [s.fired for s in out] == [True, False, True]  # 10.5 ≥ 9.5 + 1.0: fires again
    assert out[1].suppressed == "cool-down: fired 2 bars ago (≤ 6) at 9.50; 8.50 < 10.50 needed to fire again"
    assert out[2].reasons[-1].detail == "fired 4 bars ago (≤ 6) at 9.50; 10.50 ≥ 10.50 needed to fire again"


def _variant(cfg: AppConfig, section: str, **values: object) -> AppConfig:
    data = cfg.model_dump()
    data[section] |= values
    return AppConfig.model_validate(data)


def test_evidence_is_shared_by_configs_that_differ_where_it_does_not_read(default_config: AppConfig):
    """The research harness shares `evidence` by configs equal but for EVIDENCE_FREE: under each such change
    the evidence is unchanged and composing with the shared one gives what composing alone does."""
    cfg = default_config
    points = cfg.score.market.model_dump() | {"volume_spike": 0.0, "funding_hot": 2.0}
    variants = [
        _variant(cfg, "score", market=points, alert_threshold=3.0, rescore_margin=0.0),
        _variant(cfg, "market_filters", rule="breakout"),
        _variant(cfg, "regime", trend_fade_weight=1.0, block_td_fades_in_trend=True),
        _variant(cfg, "apex", move_threshold_pct=2.0),
    ]
    contexts = [
        rotation_context(cfg),
        rotation_context(cfg, previous=PreviousFire(bars_ago=3, score=9.0)),
        td13_context(cfg),
        td13_context(cfg, direction="long", regime="trend_up"),
    ]
    assert set(EVIDENCE_FREE) == {"apex", "research", "regime", "market_filters", "score"}
    for ctx in contexts:
        shared = evidence(ctx)
        for variant in variants:
            alike = ctx.model_copy(update={"cfg": variant})
            assert evidence(alike) == shared
            assert compose(alike, shared) == compose(alike)
    no_td = _variant(cfg, "score", td=dict.fromkeys(cfg.score.td.model_dump(), 0.0))
    assert evidence(td13_context(no_td)) != evidence(td13_context(cfg))  # the TD points are read
