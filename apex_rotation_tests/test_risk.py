"""risk.plan_trade: each stop source, size and rr with hand-computed numbers; shorts mirrored."""

from __future__ import annotations

import math

import pytest

from apex_rotation.config import RiskConfig
from apex_rotation.signals.risk import plan_trade, rr_ok

CFG = RiskConfig()  # risk_per_trade_pct 0.75 → $75 at risk on $10,000; atr_mult_tp 1.2
# entry 100, ATR 2: the target is 1.2 × 1.5 × 2 = 3.6 away whatever the stop; a TD/structure stop is usable
# from min_stop_atr 0.25 × 2 = 0.5 to max_stop_atr 4 × 2 = 8 away from entry (long: 99.5 down to 92.0).
ENTRY, ATR = 100.0, 2.0


def approx(x: float) -> object:
    return pytest.approx(x, rel=1e-12)


def test_atr_stop_long() -> None:
    plan = plan_trade(ENTRY, atr=ATR, td=None, cfg=CFG)
    assert plan.stop_source == "atr"
    assert plan.stop == approx(97.0)  # 100 − 1.5 × 2
    assert plan.take_profit == approx(103.6)
    assert plan.risk_per_unit == approx(3.0)
    assert plan.size == approx(25.0)  # 75 / 3
    assert plan.size_notional == approx(2500.0)
    assert plan.rr == approx(1.2)  # an ATR-stop trade's rr is atr_mult_tp


def test_tdst_stop_long_is_buffered_below_support() -> None:
    plan = plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": 98.0, "td_tdst_buy": 110.0}, cfg=CFG)
    assert plan.stop_source == "tdst"
    assert plan.stop == approx(97.8)  # 98 − 0.1 × 2
    assert plan.risk_per_unit == approx(2.2)
    assert plan.size == approx(75 / 2.2)  # 34.0909…
    assert plan.rr == approx(3.6 / 2.2)  # 1.6363…
    assert plan.take_profit == approx(103.6)


def test_tdst_wins_over_a_tighter_td_risk_level() -> None:
    td = {"td_tdst_sell": 98.0, "td_setup_risk_level": 98.5, "td_setup_type": "buy"}
    plan = plan_trade(ENTRY, atr=ATR, td=td, cfg=CFG)
    assert (plan.stop_source, plan.stop) == ("tdst", approx(97.8))  # 98 − 0.1 × 2, not the tighter 98.5
    looser = {"td_tdst_sell": 98.0, "td_setup_risk_level": 96.0, "td_setup_type": "buy"}
    assert plan_trade(ENTRY, atr=ATR, td=looser, cfg=CFG).stop == approx(97.8)


def test_td_risk_level_only_when_tdst_is_unusable() -> None:
    risk = {"td_setup_risk_level": 98.5, "td_setup_type": "buy"}
    # missing TDST; TDST above entry (support breached); TDST stop 99.9 − 0.2 = 99.7, 0.3 < 0.5 from entry;
    # TDST stop 91.9 − 0.2 = 91.7, 8.3 > 8 from entry (stale)
    for tdst in (math.nan, 101.0, 99.9, 91.9):
        plan = plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": tdst, **risk}, cfg=CFG)
        assert (plan.stop_source, plan.stop) == ("td_risk", approx(98.5)), tdst  # used as is, no buffer
        assert plan.size == approx(50.0)  # 75 / 1.5
        assert plan.rr == approx(2.4)  # 3.6 / 1.5
        assert any("TDST unusable" in r for r in plan.reasons)
    stale = plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": 91.9, **risk}, cfg=CFG)
    assert any("farther than max_stop_atr 4" in r for r in stale.reasons)


def test_td_risk_level_ignored_when_too_tight_too_far_or_of_a_sell_setup() -> None:
    # 99.8 is 0.2 from entry, under min_stop_atr 0.25 × 2 = 0.5: noise, not a stop → ATR stop
    too_tight = {"td_tdst_sell": math.nan, "td_setup_risk_level": 99.8, "td_setup_type": "buy"}
    assert plan_trade(ENTRY, atr=ATR, td=too_tight, cfg=CFG).stop_source == "atr"
    # 91.0 is 9 from entry, beyond max_stop_atr 4 × 2 = 8 → structure 96.5 − 0.2
    too_far = {"td_tdst_sell": math.nan, "td_setup_risk_level": 91.0, "td_setup_type": "buy"}
    plan = plan_trade(ENTRY, atr=ATR, structure_low=96.5, td=too_far, cfg=CFG)
    assert (plan.stop_source, plan.stop) == ("structure", approx(96.3))
    # a sell setup's risk level is a short's stop, never a long's
    sell = {"td_tdst_sell": math.nan, "td_setup_risk_level": 98.5, "td_setup_type": "sell"}
    assert plan_trade(ENTRY, atr=ATR, td=sell, cfg=CFG).stop_source == "atr"


def test_td_risk_alone_when_tdst_is_missing() -> None:
    td = {"td_tdst_sell": math.nan, "td_setup_risk_level": 96.0, "td_setup_type": "buy"}
    plan = plan_trade(ENTRY, atr=ATR, td=td, cfg=CFG)
    assert (plan.stop_source, plan.stop) == ("td_risk", approx(96.0))
    assert plan.rr == approx(0.9)  # 3.6 / 4


def test_max_stop_atr_boundary_for_tdst_and_structure() -> None:
    # TDST 92.2 → stop 92.0, exactly 8 = 4 ATR away: usable; TDST 92.1 → stop 91.9, 8.1 away: not
    edge = plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": 92.2}, cfg=CFG)
    assert (edge.stop_source, edge.stop, edge.size) == ("tdst", approx(92.0), approx(75 / 8))
    past = plan_trade(ENTRY, atr=ATR, structure_low=96.5, td={"td_tdst_sell": 92.1}, cfg=CFG)
    assert (past.stop_source, past.stop) == ("structure", approx(96.3))
    # the same for a swing low, falling through to the ATR stop
    assert plan_trade(ENTRY, atr=ATR, structure_low=92.2, td=None, cfg=CFG).stop == approx(92.0)
    far = plan_trade(ENTRY, atr=ATR, structure_low=92.1, td=None, cfg=CFG)
    assert (far.stop_source, far.stop) == ("atr", approx(97.0))
    assert any("farther than max_stop_atr" in r for r in far.reasons)
    # from the config or per call: at 3 ATR (6) the 8-away TDST stop is stale, a 5.7-away swing stop is not
    three = RiskConfig(max_stop_atr=3.0)
    assert plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": 92.2}, cfg=three).stop_source == "atr"
    plan = plan_trade(
        ENTRY, atr=ATR, structure_low=94.5, td={"td_tdst_sell": 92.2}, cfg=CFG, max_stop_atr=3.0
    )
    assert (plan.stop_source, plan.stop) == ("structure", approx(94.3))


def test_structure_stop_when_no_td() -> None:
    plan = plan_trade(ENTRY, atr=ATR, structure_low=96.5, td=None, cfg=CFG)
    assert plan.stop_source == "structure"
    assert plan.stop == approx(96.3)  # 96.5 − 0.2
    assert plan.size == approx(75 / 3.7)
    assert plan.rr == approx(3.6 / 3.7)


def test_unusable_td_falls_back_to_structure_then_atr() -> None:
    breached = {"td_tdst_sell": 101.0}  # price already below support: not a stop level
    plan = plan_trade(ENTRY, atr=ATR, structure_low=96.5, td=breached, cfg=CFG)
    assert (plan.stop_source, plan.stop) == ("structure", approx(96.3))
    assert any("not on the stop side" in r for r in plan.reasons)
    nan_td = {"td_tdst_sell": math.nan, "td_tdst_buy": math.nan}
    assert plan_trade(ENTRY, atr=ATR, td=nan_td, cfg=CFG).stop_source == "atr"
    # a structure stop inside min_stop_atr (99.8 − 0.2 = 99.6, 0.4 < 0.5 away) falls through to ATR
    assert plan_trade(ENTRY, atr=ATR, structure_low=99.8, td=None, cfg=CFG).stop == approx(97.0)


def test_tdst_disabled_by_config() -> None:
    cfg = RiskConfig(use_tdst_stop_when_td=False)
    plan = plan_trade(ENTRY, atr=ATR, structure_low=96.5, td={"td_tdst_sell": 98.0}, cfg=cfg)
    assert plan.stop_source == "structure"
    assert any("disabled" in r for r in plan.reasons)


def test_equity_and_risk_pct_scale_size() -> None:
    cfg = RiskConfig(risk_per_trade_pct=1.0, atr_mult_tp=2.0)
    plan = plan_trade(ENTRY, atr=ATR, td=None, cfg=cfg, equity=50_000.0, stop_atr_mult=2.0)
    assert plan.stop == approx(96.0)
    assert plan.size == approx(125.0)  # 500 / 4
    assert plan.take_profit == approx(108.0)  # 100 + 2 × 2 × 2
    assert plan.rr == approx(2.0)


def test_short_mirrors_every_source() -> None:
    atr_plan = plan_trade(ENTRY, side="short", atr=ATR, td=None, cfg=CFG)
    assert (atr_plan.stop, atr_plan.take_profit, atr_plan.size, atr_plan.rr) == (
        approx(103.0),
        approx(96.4),
        approx(25.0),
        approx(1.2),
    )
    tdst = plan_trade(ENTRY, side="short", atr=ATR, td={"td_tdst_buy": 102.0, "td_tdst_sell": 90.0}, cfg=CFG)
    assert (tdst.stop_source, tdst.stop, tdst.rr) == ("tdst", approx(102.2), approx(3.6 / 2.2))
    risk = {"td_tdst_buy": 102.0, "td_setup_risk_level": 101.5, "td_setup_type": "sell"}
    assert plan_trade(ENTRY, side="short", atr=ATR, td=risk, cfg=CFG).stop == approx(102.2)  # TDST first
    stale = {**risk, "td_tdst_buy": 108.1}  # stop 108.3, 8.3 > 8 above entry
    td_risk = plan_trade(ENTRY, side="short", atr=ATR, td=stale, cfg=CFG)
    assert (td_risk.stop_source, td_risk.stop, td_risk.size) == ("td_risk", approx(101.5), approx(50.0))
    edge = plan_trade(ENTRY, side="short", atr=ATR, td={"td_tdst_buy": 107.8}, cfg=CFG)
    assert (edge.stop_source, edge.stop) == ("tdst", approx(108.0))  # exactly 8 above entry
    far = plan_trade(ENTRY, side="short", atr=ATR, structure_high=107.9, td=None, cfg=CFG)
    assert (far.stop_source, far.stop) == ("atr", approx(103.0))  # 108.1 is 8.1 above entry
    structure = plan_trade(ENTRY, side="short", atr=ATR, structure_high=103.5, td=None, cfg=CFG)
    assert (structure.stop_source, structure.stop, structure.rr) == (
        "structure",
        approx(103.7),
        approx(3.6 / 3.7),
    )


def test_wrong_side_stops_and_bad_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="wrong side of entry"):
        plan_trade(ENTRY, atr=ATR, structure_low=100.5, td=None, cfg=CFG)
    with pytest.raises(ValueError, match="wrong side of entry"):
        plan_trade(ENTRY, side="short", atr=ATR, structure_high=99.0, td=None, cfg=CFG)
    with pytest.raises(ValueError, match="takes structure_low"):
        plan_trade(ENTRY, atr=ATR, structure_high=103.0, td=None, cfg=CFG)
    with pytest.raises(ValueError, match="atr must be"):
        plan_trade(ENTRY, atr=math.nan, td=None, cfg=CFG)
    with pytest.raises(ValueError, match="entry must be"):
        plan_trade(0.0, atr=ATR, td=None, cfg=CFG)
    with pytest.raises(ValueError, match="side must be"):
        plan_trade(ENTRY, side="flat", atr=ATR, td=None, cfg=CFG)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_stop_atr 0\.2 must be >= min_stop_atr 0\.25"):
        plan_trade(ENTRY, atr=ATR, td=None, cfg=CFG, max_stop_atr=0.2)


def test_rr_ok() -> None:
    tdst = plan_trade(ENTRY, atr=ATR, td={"td_tdst_sell": 98.0}, cfg=CFG)  # rr 1.636…
    assert rr_ok(tdst, 1.5)
    assert not rr_ok(tdst, 1.7)
    atr_plan = plan_trade(ENTRY, atr=ATR, td=None, cfg=CFG)  # rr 1.2, up to float rounding
    assert rr_ok(atr_plan, 1.2)
    assert not rr_ok(atr_plan, 1.21)
