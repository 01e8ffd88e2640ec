"""Market confirmation: each filter on hand numbers, rules over them, missing data, the scanner hand-off."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from apex_rotation.config import ApexConfig, MarketFiltersConfig
from apex_rotation.rules import Name, RuleError
from apex_rotation.signals.confirm import (
    FILTERS,
    FilterResult,
    apply,
    breakout,
    funding_flip,
    funding_hot,
    oi_shift,
    volume_spike,
)
from apex_rotation.signals.rotation import CONTEXT_COLUMNS, RotationCandidate, scan

CFG = MarketFiltersConfig()
# A bar that passes volume_spike (3.1x) and breakout, has +7.3 % OI, cool funding that just flipped.
BASE = {
    "close": 105.0,
    "volume": 310.0,
    "vol_ema20": 100.0,
    "hh_prev": 104.0,
    "atr": 2.0,
    "oi": 1e6,
    "oi_chg": 0.073,
    "funding": 0.00005,
    "funding_prev": -0.0001,
}


def ctx(**changes: float | None) -> dict[str, float | None]:
    return {**BASE, **changes}


def candidate(**changes: float | None) -> RotationCandidate:
    return RotationCandidate(
        symbol="APT",
        apex_asset="ETH",
        timeframe="4h",
        bar_time=datetime(2024, 3, 4, 8, tzinfo=UTC),
        apex_move_pct=5.2,
        coin_move_pct=1.0,
        correlation=0.84,
        beta=1.87,
        expected_catchup_pct=8.724,
        signal_strength="HIGH",
        context=ctx(**changes),
    )


def result(fn, **changes: float | None) -> tuple[bool | None, str]:
    out = fn(ctx(**changes), CFG)
    return out.passed, out.reason


# ---------------------------------------------------------------- filters


def test_volume_spike() -> None:
    assert result(volume_spike) == (True, "volume 3.1x EMA20 (≥ 2.0x)")
    assert result(volume_spike, volume=200.0) == (True, "volume 2.0x EMA20 (≥ 2.0x)")  # boundary passes
    assert result(volume_spike, volume=150.0) == (False, "volume 1.5x EMA20 (< 2.0x)")
    assert result(volume_spike, vol_ema20=None) == (None, "insufficient data: no volume EMA20")
    assert result(volume_spike, vol_ema20=math.nan) == (None, "insufficient data: no volume EMA20")
    assert volume_spike(ctx(volume=250.0), MarketFiltersConfig(volume_x=3.0)).passed is False


def test_breakout() -> None:
    assert result(breakout) == (True, "close 105 > prior high 104")
    assert result(breakout, close=104.0) == (False, "close 104 ≤ prior high 104")  # must close above
    assert result(breakout, hh_prev=None) == (None, "insufficient data: no prior high")
    atr_cfg = MarketFiltersConfig(breakout_atr_mult=0.5)  # level 104 + 0.5 × 2 = 105
    assert breakout(ctx(), atr_cfg) == FilterResult(
        name="breakout", passed=False, reason="close 105 ≤ prior high 104 + 0.5×ATR 2 = 105"
    )
    assert breakout(ctx(close=105.5), atr_cfg).passed is True
    assert breakout(ctx(atr=None), atr_cfg) == FilterResult(
        name="breakout", passed=None, reason="insufficient data: no ATR"
    )
    assert breakout(ctx(atr=None), CFG).passed is True  # ATR only needed when the option is on


def test_oi_shift() -> None:
    assert result(oi_shift) == (True, "open interest +7.3% this bar (≥ +5.0%)")
    assert result(oi_shift, oi_chg=0.05) == (True, "open interest +5.0% this bar (≥ +5.0%)")
    assert result(oi_shift, oi_chg=-0.02) == (False, "open interest -2.0% this bar (< +5.0%)")
    assert result(oi_shift, oi_chg=None) == (None, "insufficient data: no open interest")
    assert result(oi_shift, oi=None, oi_chg=math.nan) == (None, "insufficient data: no open interest")


def test_funding_flip() -> None:
    assert result(funding_flip) == (True, "funding flipped: -0.0100%/h → +0.0050%/h")
    assert result(funding_flip, funding=0.0)[0] is True  # reaching zero counts: shorts stopped paying
    assert result(funding_flip, funding=-0.00005) == (
        False,
        "funding did not flip from < 0 to ≥ 0: -0.0100%/h → -0.0050%/h",
    )
    assert result(funding_flip, funding_prev=0.0001)[0] is False  # already positive: no flip
    assert result(funding_flip, funding=None) == (None, "insufficient data: no funding rate")
    assert result(funding_flip, funding_prev=None) == (None, "insufficient data: no previous funding rate")


def test_funding_hot() -> None:
    assert result(funding_hot) == (False, "funding +0.0050%/h (< +0.0500%/h)")
    assert result(funding_hot, funding=0.0005) == (True, "funding +0.0500%/h (≥ +0.0500%/h)")
    assert result(funding_hot, funding=0.0006)[0] is True
    assert result(funding_hot, funding=math.nan) == (None, "insufficient data: no funding rate")


# ---------------------------------------------------------------- rules over the filters


def test_default_rule_confirms_volume_and_breakout() -> None:
    [out] = apply([candidate()])
    assert out.passed is True
    assert out.rule == "volume_spike AND breakout"
    assert set(out.filters) == set(FILTERS)  # every filter, not only the rule's
    assert out.reasons == [
        "confirmed: volume_spike AND breakout",
        "volume_spike: volume 3.1x EMA20 (≥ 2.0x)",
        "breakout: close 105 > prior high 104",
    ]
    [no_break] = apply([candidate(close=103.0)], "volume_spike and breakout")
    assert no_break.passed is False
    assert no_break.reasons[0] == "not confirmed: volume_spike AND breakout"


@pytest.mark.parametrize(
    ("changes", "passed", "head"),
    [
        ({"volume": 150.0}, True, "confirmed"),  # OI +7.3 % carries it
        ({"volume": 150.0, "oi_chg": 0.01}, False, "not confirmed"),
        ({"funding": 0.0006}, False, "not confirmed"),  # hot funding vetoes
        ({"oi_chg": None}, True, "confirmed"),  # volume spike decides: unknown OI cannot change it
        ({"volume": 150.0, "oi_chg": None}, False, "not confirmed, insufficient data for oi_shift"),
        ({"funding": None}, False, "not confirmed, insufficient data for funding_hot"),
        ({"volume": 150.0, "oi_chg": 0.01, "funding": None}, False, "not confirmed"),  # False AND None
    ],
)
def test_composite_rule(changes: dict, passed: bool, head: str) -> None:
    rule = "(volume_spike OR oi_shift) AND NOT funding_hot"
    [out] = apply([candidate(**changes)], rule)
    assert out.passed is passed
    assert out.reasons[0] == f"{head}: {rule}"
    assert len(out.reasons) == 4  # verdict + one line per filter the rule reads


def test_missing_data_is_never_a_silent_pass() -> None:
    [out] = apply([candidate(oi_chg=None)], "(volume_spike OR oi_shift) AND NOT funding_hot")
    assert out.passed is True
    assert out.filters["oi_shift"].passed is None
    assert "oi_shift: insufficient data: no open interest" in out.reasons
    [undecided] = apply([candidate(oi_chg=None)], "oi_shift")
    assert undecided.passed is False
    assert undecided.reasons == [
        "not confirmed, insufficient data for oi_shift: oi_shift",
        "oi_shift: insufficient data: no open interest",
    ]


def test_rules_from_python_from_config_and_bad_ones() -> None:
    [by_rule] = apply([candidate(volume=150.0)], Name("volume_spike") | Name("oi_shift"))
    assert (by_rule.passed, by_rule.rule) == (True, "volume_spike OR oi_shift")
    [by_config] = apply([candidate()], config=MarketFiltersConfig(volume_x=4.0, rule="volume_spike"))
    assert by_config.passed is False
    assert by_config.reasons[1] == "volume_spike: volume 3.1x EMA20 (< 4.0x)"
    with pytest.raises(RuleError, match="unknown filter 'volume_spik' at column 1, did you mean"):
        apply([candidate()], "volume_spik AND breakout")
    with pytest.raises(RuleError, match="unknown filter 'rsi'"):
        apply([candidate()], Name("rsi"))
    assert apply([], "oi_shift") == []


# ---------------------------------------------------------------- the scanner hands over everything needed


def test_scanner_candidates_carry_the_context_confirmation_reads() -> None:
    index = pd.DatetimeIndex(["2024-03-03", "2024-03-04"], tz="UTC", name="open_time")
    gates = {f"{k}_{a}_14": [0.0, 0.0] for k in ("corr", "beta") for a in ("btc", "eth")}
    ohlc = {"open": 100.0, "high": 106.0, "low": 99.0, "filled": False}

    def frame(ret: float, **cols: list) -> pd.DataFrame:
        data = {**ohlc, **gates, "ret": [0.0, ret], **{c: [math.nan, math.nan] for c in CONTEXT_COLUMNS}}
        return pd.DataFrame({**data, **cols}, index=index)

    apex = {"BTC": frame(0.0), "ETH": frame(0.05)}
    alt = frame(
        0.01,
        corr_eth_14=[0.8, 0.1],
        beta_eth_14=[2.0, 0.1],
        close=[100.0, 105.0],
        volume=[100.0, 300.0],
        vol_ema20=[100.0, 120.0],
        hh_prev=[101.0, 104.0],
        atr=[2.0, 2.0],
        funding=[-0.0001, 0.0001],
        funding_prev=[-0.0002, -0.0001],
    )  # oi / oi_chg unknown
    [found] = scan(apex, {"ALT": alt}, ApexConfig(), timeframe="1d")
    [out] = apply([found], "volume_spike AND breakout AND funding_flip AND NOT oi_shift")
    assert {n: r.passed for n, r in out.filters.items()} == {
        "volume_spike": True,  # 300 ≥ 2 × 120
        "breakout": True,  # 105 > 104
        "oi_shift": None,
        "funding_flip": True,  # -0.0001 → +0.0001
        "funding_hot": False,
    }
    assert out.passed is False
    assert out.reasons[0].startswith("not confirmed, insufficient data for oi_shift:")


def test_the_config_names_exactly_the_implemented_filters():
    """`market_filters.rule` is parsed at config load against CONFIRMATION_FILTERS: it must match FILTERS."""
    from apex_rotation.config import CONFIRMATION_FILTERS
    from apex_rotation.signals.confirm import FILTERS

    assert tuple(FILTERS) == CONFIRMATION_FILTERS
