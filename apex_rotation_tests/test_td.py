"""TD Sequential against hand-built bars (every expected value derived by hand in the comments), plus
no-lookahead, gap and invariant checks on random and real data.

Most series start with MAIN: closes 100..105 (idx 0-5) then 101 down to 93 (idx 6-14), high = close + 1,
low = close - 1. Idx 6 is a bearish flip (C6=101 < C2=102, C5=105 > C1=101), so buy setup bars 1-9 sit at
idx 6-14 and the setup completes on idx 14. Setup bar b is idx 5+b; bars 6, 7, 8, 9 are idx 11, 12, 13, 14.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apex_rotation.config import TDConfig
from apex_rotation.features.td import TD_COLUMNS, compute
from apex_rotation_tests.shared import real_feather, requires_shared

MAIN = [100, 101, 102, 103, 104, 105, 101, 100, 99, 98, 97, 96, 95, 94, 93]
STD = TDConfig()
LOOSE = TDConfig(profile="loose")
SYMBOLS = ["BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ", "AVAX", "MATIC", "XRP", "LTC"]
SYMBOLS += ["DOGE", "SUI", "SEI", "TIA"]


def bars(
    close: list[float], high: dict[int, float] | None = None, low: dict[int, float] | None = None
) -> pd.DataFrame:
    """Bars with high = close + 1 and low = close - 1, except the per-index overrides given."""
    c = np.asarray(close, dtype=float)
    h, lo = c + 1, c - 1
    for i, v in (high or {}).items():
        h[i] = v
    for i, v in (low or {}).items():
        lo[i] = v
    index = pd.date_range("2024-01-01", periods=len(c), freq="4h", tz="UTC")
    return pd.DataFrame({"open": c, "high": h, "low": lo, "close": c, "volume": 1.0}, index=index)


def col(out: pd.DataFrame, name: str, start: int, stop: int) -> list:
    """Values of a column at idx start..stop-1, NaN shown as None for easy comparison."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in out[name].iloc[start:stop]]


def events(out: pd.DataFrame, name: str) -> list[int]:
    """Positions where a bool column is True."""
    return [int(i) for i in np.flatnonzero(out[name].to_numpy())]


def random_bars(seed: int, n: int, tick: float = 1.0) -> pd.DataFrame:
    """An integer-tick random walk, so equal closes (a TD edge case) happen often."""
    rng = np.random.default_rng(seed)
    close = 1000 + tick * np.cumsum(rng.integers(-3, 4, n))
    high = close + tick * rng.integers(0, 4, n)
    low = close - tick * rng.integers(0, 4, n)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    return pd.DataFrame({"open": close, "high": high, "low": low, "close": close, "volume": 1.0}, index=index)


def assert_prefix_equal(df: pd.DataFrame, full: pd.DataFrame, t: int, cfg: TDConfig) -> None:
    pd.testing.assert_frame_equal(compute(df.iloc[: t + 1], cfg), full.iloc[: t + 1])


# ---------------------------------------------------------------- output shape


def test_output_columns_types_and_index() -> None:
    df = bars(MAIN).assign(extra=1.0)
    out = compute(df)
    assert list(out.columns) == TD_COLUMNS
    assert out.index.equals(df.index)
    assert out.dtypes.to_dict() == {
        "td_flip": object,
        "td_setup_type": object,
        "td_setup_count": np.int64,
        "td_perfected": bool,
        "td_countdown_type": object,
        "td_countdown": np.int64,
        "td_countdown_deferred": bool,
        "td_tdst_buy": np.float64,
        "td_tdst_sell": np.float64,
        "td_tdst_breach": object,
        "td_setup_risk_level": np.float64,
        "td_countdown_risk_level": np.float64,
    }
    assert out["td_flip"].iloc[0] is None and out["td_flip"].iloc[6] == "bearish"
    pd.testing.assert_frame_equal(out, compute(df, TDConfig()))  # None means the defaults


def test_rejects_unsorted_index_and_missing_columns() -> None:
    df = bars(MAIN)
    with pytest.raises(ValueError, match="increasing time order"):
        compute(df.iloc[::-1])
    with pytest.raises(ValueError, match=r"missing \['low'\]"):
        compute(df.drop(columns="low"))


# ---------------------------------------------------------------- flip and setup


def test_price_flip_strict_vs_loose() -> None:
    # idx 4: C4=104 > C0=100, idx 5: 105 > 101; idx 6: 101 < C2=102 with C5=105 > C1=101.
    # Standard: idx 4 has no C[i-5]; idx 5 needs C4 < C0 (104 < 100 false): no sell setup, only the
    # idx-6 flip.
    # Loose: a sell run starts on idx 4 (bar 3 could not count) and runs to idx 5; idx 6 starts a buy run.
    std, loose = compute(bars(MAIN[:8]), STD), compute(bars(MAIN[:8]), LOOSE)
    assert col(std, "td_flip", 0, 8) == [None] * 6 + ["bearish", None]
    assert col(std, "td_setup_type", 0, 8) == [None] * 6 + ["buy", "buy"]
    assert col(std, "td_setup_count", 0, 8) == [0, 0, 0, 0, 0, 0, 1, 2]
    assert col(loose, "td_flip", 0, 8) == [None] * 4 + ["bullish", None, "bearish", None]
    assert col(loose, "td_setup_type", 0, 8) == [None] * 4 + ["sell", "sell", "buy", "buy"]
    assert col(loose, "td_setup_count", 0, 8) == [0, 0, 0, 0, 1, 2, 1, 2]

    # Equal previous comparison: C4=10 == C0=10, then C5..C9 < C[i-4]. Standard needs C4 > C0 strictly: no
    # flip, and none later (each previous bar counts down already). Loose starts on idx 5 and counts 1..5.
    flat = bars([10, 10, 10, 10, 10, 9, 8, 7, 6, 5])
    assert col(compute(flat, STD), "td_setup_count", 0, 10) == [0] * 10
    assert col(compute(flat, STD), "td_flip", 0, 10) == [None] * 10
    assert col(compute(flat, LOOSE), "td_setup_count", 0, 10) == [0] * 5 + [1, 2, 3, 4, 5]
    assert col(compute(flat, LOOSE), "td_flip", 5, 7) == ["bearish", None]


def test_setup_counts_past_nine_and_resets_on_equal_close() -> None:
    # Steady fall by 1 from idx 6 (101) to idx 17 (90): counts 1..12, completion (9) on idx 14 only.
    # idx 18 closes 93 == C14 (equal): the run ends. idx 19 (88 < C15=92) and idx 20 (87 < C16=91) count
    # down again, but idx 18 was not strictly above its C[i-4], so standard has no flip; loose restarts.
    close = [*MAIN, 92, 91, 90, 93, 88, 87]
    std, loose = compute(bars(close), STD), compute(bars(close), LOOSE)
    assert col(std, "td_setup_count", 6, 21) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0, 0]
    assert col(std, "td_setup_type", 16, 21) == ["buy", "buy", None, None, None]
    assert col(loose, "td_setup_count", 6, 21) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 1, 2]
    assert col(loose, "td_flip", 18, 21) == [None, "bearish", None]
    # only count 9 is a completion: one setup risk level, one TDST level
    assert std["td_setup_risk_level"].notna().sum() == 1
    assert std["td_tdst_buy"].first_valid_index() == std.index[14]


def test_setup_resets_on_interrupting_close_and_needs_new_flip() -> None:
    # Fall to idx 16 (91, count 11). idx 17 closes 96 > C13=94 with C16=91 < C12=95: bullish flip, sell 1.
    # idx 18 closes 89 < C14=93 with C17=96 > C13=94: a new bearish flip, so the buy count restarts at 1.
    close = [*MAIN, 92, 91, 96, 89]
    for cfg in (STD, LOOSE):
        out = compute(bars(close), cfg)
        assert col(out, "td_setup_count", 14, 19) == [9, 10, 11, 1, 1]
        assert col(out, "td_setup_type", 14, 19) == ["buy", "buy", "buy", "sell", "buy"]
        assert col(out, "td_flip", 16, 19) == [None, "bullish", "bearish"]


# ---------------------------------------------------------------- perfection

# Bars 6, 7, 8, 9 = idx 11, 12, 13, 14 with lows 95, 94, 93, 92 by default: min(L8, L9)=92 <= 94, perfected.
LOW6_90 = {11: 90}  # min(L6, L7) = 90


def test_perfection_on_bar_8_on_bar_9_or_not() -> None:
    assert events(compute(bars(MAIN)), "td_perfected") == [14]
    # bar 8 reaches it (L8=89 <= 90, L9=92): decided and flagged on bar 9
    assert events(compute(bars(MAIN, low={**LOW6_90, 13: 89})), "td_perfected") == [14]
    # bar 9 reaches it with an equal low (L9=90 <= 90)
    assert events(compute(bars(MAIN, low={**LOW6_90, 14: 90})), "td_perfected") == [14]
    # neither: min(93, 92) > 90
    assert events(compute(bars(MAIN, low=LOW6_90)), "td_perfected") == []


def test_loose_perfection_grace_window() -> None:
    # Not perfected on bar 9 (idx 14). idx 15-19 rise 97..101 (lows 96..100 stay above 90), idx 20 falls
    # to 89 with low 88 <= 90: 6 bars after bar 9. The setup run ended on idx 15; the pending one survives.
    df = bars([*MAIN, 97, 98, 99, 100, 101, 89], low=LOW6_90)
    assert events(compute(df, TDConfig(strict_perfection=True)), "td_perfected") == []
    assert events(compute(df, TDConfig(strict_perfection=False)), "td_perfected") == [20]
    assert events(
        compute(df, TDConfig(strict_perfection=False, perfection_grace_bars=6)), "td_perfected"
    ) == [20]
    assert (
        events(compute(df, TDConfig(strict_perfection=False, perfection_grace_bars=5)), "td_perfected") == []
    )
    assert (
        events(compute(df, TDConfig(strict_perfection=False, perfection_grace_bars=0)), "td_perfected") == []
    )


def test_loose_perfection_dropped_when_a_new_setup_completes() -> None:
    # As above but the rise goes on for 9 bars (idx 15-23: 97..105): a sell setup completes on idx 23
    # (perfected itself: max(H8, H9) = 106 >= max(H6, H7) = 104). The pending buy perfection is dropped, so
    # idx 24 (close 89, low 88 <= 90) is no perfection.
    df = bars([*MAIN, *range(97, 106), 89], low=LOW6_90)
    out = compute(df, TDConfig(strict_perfection=False))
    assert col(out, "td_setup_count", 23, 25) == [9, 1]
    assert events(out, "td_perfected") == [23]


# ---------------------------------------------------------------- TDST


def test_tdst_true_high_vs_plain_high_persistence_and_breach_up() -> None:
    # Buy setup idx 6-14: true high of bar 1 = max(H6=102, C5=105) = 105 is the highest (standard); the
    # highest plain high is H6=102 (loose). Then idx 15: close 98 with a wick to 106; idx 16: close 104;
    # idx 17: close 106. A close breaches, a wick does not: standard (105) on idx 17, loose (102) on 16, 17.
    df = bars([*MAIN, 98, 104, 106], high={15: 106})
    std, loose = compute(df, STD), compute(df, LOOSE)
    assert col(std, "td_tdst_buy", 13, 18) == [None, 105, 105, 105, 105]
    assert col(loose, "td_tdst_buy", 13, 18) == [None, 102, 102, 102, 102]
    assert col(std, "td_tdst_breach", 14, 18) == [None, None, None, "up"]
    assert col(loose, "td_tdst_breach", 14, 18) == [None, None, "up", "up"]
    assert std["td_tdst_sell"].isna().all()


def test_tdst_from_extreme_vs_bar1() -> None:
    # A high of 110 on setup bar 3 (idx 8) becomes the extreme; bar 1 gives 105 (true) or 102 (plain).
    df = bars(MAIN, high={8: 110})
    assert compute(df, STD)["td_tdst_buy"].iloc[14] == 110
    assert compute(df, LOOSE)["td_tdst_buy"].iloc[14] == 110
    assert compute(df, TDConfig(tdst_from="bar1"))["td_tdst_buy"].iloc[14] == 105
    assert compute(df, TDConfig(profile="loose", tdst_from="bar1"))["td_tdst_buy"].iloc[14] == 102


def test_tdst_sell_level_breach_down_and_setup_risk_of_sell() -> None:
    # Sell setup idx 15-23 (97..105): true low of bar 1 = min(L15=96, C14=93) = 93 (standard), lowest plain
    # low 96 (loose); with L19=90 (bar 5) the extreme is 90 in both, bar 1 still gives 93 / 96.
    # idx 24 closes 89 < 93: "down". Sell risk: highest high H23=106, true range max(106, C22=104) - 104 = 2.
    df = bars([*MAIN, *range(97, 106), 89])
    std, loose = compute(df, STD), compute(df, LOOSE)
    assert col(std, "td_tdst_sell", 22, 25) == [None, 93, 93]
    assert col(loose, "td_tdst_sell", 22, 25) == [None, 96, 96]
    assert col(std, "td_tdst_breach", 23, 25) == [None, "down"]
    assert col(std, "td_setup_risk_level", 23, 24) == [108]
    deep = bars([*MAIN, *range(97, 106), 89], low={19: 90})
    assert compute(deep, STD)["td_tdst_sell"].iloc[23] == 90
    assert compute(deep, LOOSE)["td_tdst_sell"].iloc[23] == 90
    assert compute(deep, TDConfig(tdst_from="bar1"))["td_tdst_sell"].iloc[23] == 93
    assert compute(deep, TDConfig(profile="loose", tdst_from="bar1"))["td_tdst_sell"].iloc[23] == 96


def test_tdst_breach_both() -> None:
    # Loose: buy setup gives resistance 102 (idx 14); a sell setup at 200..208 (idx 15-23) gives support
    # 199 (lowest plain low). idx 24 closes 150: above 102 and below 199.
    out = compute(bars([*MAIN, *range(200, 209), 150]), LOOSE)
    assert col(out, "td_tdst_buy", 24, 25) == [102] and col(out, "td_tdst_sell", 24, 25) == [199]
    assert col(out, "td_tdst_breach", 22, 25) == ["up", "up", "both"]


# ---------------------------------------------------------------- countdown

# After MAIN every close is 93 (high 94), except idx 21 (92, high 93). A bar i >= 16 with close 93 counts iff
# L[i-2] == 93, so the lows below choose the counting bars; idx 14 (93 <= L12=94) and 15 (93 <= L13=93)
# count, idx 21 (92) counts whatever L19 is.
CD_LOWS = {14: 93, 15: 93, 16: 93, 17: 93, 18: 93, 19: 92, 20: 92, 21: 91, 22: 93, 23: 93, 24: 93, 25: 93}
CD_LOWS |= {26: 93, 27: 91, 28: 93, 29: 90, 30: 92, 31: 92}


def countdown_bars() -> pd.DataFrame:
    close = [*MAIN] + [93.0] * 17
    close[21] = 92.0
    return bars(close, high={21: 93}, low=CD_LOWS)


def test_countdown_counting_deferral_completion_and_risk_levels() -> None:
    # Counting bars: 14 15 16 17 18 19 20 21 (bar 8, close 92) | 22: 93 > L20=92, 23: 93 > L21=91 |
    # 24 25 26 27 (12) | 28 counts but its low 93 > C(bar 8)=92: deferred, stays 12 | 29: 93 > L27=91 |
    # 30 counts and L30=92 <= 92 (equal qualifies): 13 | 31: finished, 0.
    for cfg in (STD, LOOSE):
        out = compute(countdown_bars(), cfg)
        expected = [0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 9, 10, 11, 12, 12, 12, 13, 0]  # idx 13..31
        assert col(out, "td_countdown", 13, 32) == expected
        assert col(out, "td_countdown_type", 13, 32) == [None] + ["buy"] * 17 + [None]
        assert events(out, "td_countdown_deferred") == [28]
        # Setup risk: lowest low of idx 6-14 is 93 on idx 13 and 14; the earliest (13) wins:
        # 93 - (max(H13=95, C12=95) - min(93, 95)) = 91 (idx 14 would give 93 - 1 = 92).
        assert col(out, "td_setup_risk_level", 0, 32) == [None] * 14 + [91] + [None] * 17
        # Countdown risk over every bar of idx 14 (bar 1) .. 30 (bar 13): the lowest low is 90 on idx 29,
        # which did not count: 90 - (max(H29=94, C28=93) - min(90, 93)) = 86 (see the next test).
        assert col(out, "td_countdown_risk_level", 0, 32) == [None] * 30 + [86, None]
    # Standard setups after idx 14: 10, 11, 12, then C18 == C14 ends the run; no flip ever follows.
    assert col(compute(countdown_bars(), STD), "td_setup_count", 14, 32) == [9, 10, 11, 12] + [0] * 14


@pytest.mark.parametrize("cfg", [STD, LOOSE])
def test_countdown_risk_level_spans_the_bars_between_counted_bars(cfg: TDConfig) -> None:
    """Spec §6: the extreme is sought over every bar from countdown bar 1 to bar 13, not the counted ones.

    countdown_bars() counts idx 14..21 (1..8), 24..27 (9..12), defers 28 and completes on 30; idx 22, 23
    and 29 do not count. Among the counted bars the lowest low is 91 (idx 21 and 27).
    """
    # Buy: idx 29 (not counted) has low 90 < 91: 90 - (max(H29=94, C28=93) - min(L29=90, C28=93)) = 86.
    # Over the counted bars only it would be idx 21: 91 - (max(93, C20=93) - min(91, 93)) = 89.
    buy = countdown_bars()
    assert col(compute(buy, cfg), "td_countdown_risk_level", 30, 31) == [86]
    # A tie with a counted bar goes to the earliest: L29 = 91 = L21 keeps idx 21 (89); idx 29 would give
    # 91 - (94 - 91) = 88.
    tie = buy.copy()
    tie.iloc[29, tie.columns.get_loc("low")] = 91.0
    assert col(compute(tie, cfg), "td_countdown_risk_level", 30, 31) == [89]
    # Sell: the same bars as 200 - price (high and low swap). Counted highs reach 109 (idx 21, 27); idx 29,
    # not counted, has high 200 - 90 = 110, close 107, previous close 107: true range
    # max(110, 107) - min(L29 = 200 - 94 = 106, 107) = 4, so 110 + 4 = 114 (idx 21 would give 109 + 2 = 111).
    sell = buy.assign(high=200 - buy["low"], low=200 - buy["high"], close=200 - buy["close"])
    out = compute(sell, cfg)
    assert col(out, "td_countdown_type", 30, 31) == ["sell"] and col(out, "td_countdown", 30, 31) == [13]
    assert col(out, "td_countdown_risk_level", 0, 32) == [None] * 30 + [114, None]


def test_countdown_cancelled_by_opposite_setup_which_starts_its_own() -> None:
    # Buy countdown 1 on idx 14 (93 <= L12=94); idx 15-22 rise (97..104 > L[i-2]) and do not count. The sell
    # setup completing on idx 23 cancels it and starts a sell countdown there: C23=105 >= H21=104 counts 1.
    # H8=110 lifts the loose TDST (110) so that loose, too, gets there without a TDST cancellation.
    df = bars([*MAIN, *range(97, 106)], high={8: 110})
    for cfg in (STD, LOOSE):
        out = compute(df, cfg)
        assert col(out, "td_countdown_type", 13, 24) == [None] + ["buy"] * 9 + ["sell"]
        assert col(out, "td_countdown", 13, 24) == [0] + [1] * 10


def test_countdown_cancelled_by_tdst_standard_vs_loose() -> None:
    # Loose: idx 21 closes 103 > td_tdst_buy=102. Standard: no true low above 105 before the sell setup.
    out = compute(bars([*MAIN, *range(97, 106)]), LOOSE)
    assert col(out, "td_countdown_type", 20, 24) == ["buy", None, None, "sell"]
    # A gap up: idx 15 closes 110 (low 100, true low min(100, C14=93) = 93), idx 16 closes 111 (low 107, true
    # low 107 > 105, the highest true high of the buy setup). Loose cancels on idx 15 (110 > 102).
    df = bars([*MAIN, 110, 111], low={15: 100, 16: 107})
    assert col(compute(df, STD), "td_countdown_type", 14, 17) == ["buy", "buy", None]
    assert col(compute(df, LOOSE), "td_countdown_type", 14, 17) == ["buy", None, None]
    # Standard compares with the highest true high of bars 1-9 even when tdst_from is "bar1": with H8=110
    # (td_tdst_buy 105 under bar1) the true low of 107 does not cancel.
    high8 = bars([*MAIN, 110, 111], high={8: 110}, low={15: 100, 16: 107})
    out = compute(high8, TDConfig(tdst_from="bar1"))
    assert col(out, "td_tdst_buy", 16, 17) == [105]
    assert col(out, "td_countdown_type", 14, 17) == ["buy", "buy", "buy"]


# Recycling: MAIN, then idx 15 closes 97 (ends the run: R_old spans idx 6-14), idx 16-24 fall 92..84 (a new
# buy setup, bar 9 on idx 24). Countdown: idx 14 (1), idx 15 no (97 > L13=93), idx 16-24 count (C <= L[i-2])
# 2..10. R_old = 105 - min(L14=92, C13=94) = 13 by default; R_new = max(H16=93, C15=97) - min(L24=83, C23=85)
# = 14. Recycling restarts on idx 24, which counts 1; going on gives 10.
RECYCLE_CLOSE = [*MAIN, 97, *range(92, 83, -1)]


@pytest.mark.parametrize(
    ("high", "std_count"),
    [
        pytest.param({}, 1, id="R_old=13,R_new=14:recycle"),
        pytest.param({8: 106}, 1, id="R_old=14,R_new=14:recycle"),
        pytest.param({16: 104}, 1, id="R_old=13,R_new=21<21.03:recycle"),
        pytest.param({16: 105}, 10, id="R_old=13,R_new=22>=21.03:goes-on"),
        pytest.param({8: 110}, 10, id="R_old=18,R_new=14:goes-on"),
    ],
)
def test_recycling_standard_vs_loose(high: dict[int, float], std_count: int) -> None:
    # H8 raises R_old (true high of setup bar 3), H16 raises R_new (true high of the new bar 1).
    df = bars(RECYCLE_CLOSE, high=high)
    std = compute(df, STD)
    assert col(std, "td_setup_count", 24, 25) == [9]
    assert col(std, "td_countdown", 13, 24) == [0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    assert col(std, "td_countdown", 24, 25) == [std_count]
    assert col(compute(df, LOOSE), "td_countdown", 24, 25) == [1]  # loose always restarts


def test_recycling_uses_the_whole_run_of_the_active_setup() -> None:
    # The first run goes on to bar 10 (idx 15, close 92, low 80): R_old = 105 - 80 = 25. idx 16 (97) ends it,
    # idx 17-25 fall 91..83: bar 9 on idx 25 with R_new = max(H17=92, C16=97) - min(L25=82, C24=84) = 15.
    # 15 < 25: no recycling (bars 1-9 alone would give R_old = 13 and recycle). Countdown: 14 (1), 15 (92 <=
    # L13=93: 2), 16 (97) and 17 (91 > L15=80) no, 18-25 count: 3..10.
    df = bars([*MAIN, 92, 97, *range(91, 82, -1)], low={15: 80})
    out = compute(df, STD)
    assert col(out, "td_setup_count", 25, 26) == [9]
    assert col(out, "td_countdown", 14, 26) == [1, 2, 2, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    # the new setup still replaces the TDST level: max true high of idx 17-25 = C16 = 97
    assert col(out, "td_tdst_buy", 24, 26) == [105, 97]


def test_rule_of_18_standard_restart_vs_loose_cancel() -> None:
    # A steady fall from idx 6 (101) to idx 24 (83): setup count 18 on idx 23. Every bar counts (C = L[i-2]
    # - 1), so the countdown reads 1..9 on idx 14-22. Standard restarts on idx 23 (which counts: 1, then 2);
    # loose cancels it and, 18 not being a completion, nothing follows.
    df = bars([*MAIN, *range(92, 82, -1)])
    std, loose = compute(df, STD), compute(df, LOOSE)
    assert col(std, "td_setup_count", 22, 25) == [17, 18, 19]
    assert col(std, "td_countdown", 13, 25) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2]
    assert col(loose, "td_countdown", 13, 25) == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 0]
    assert col(loose, "td_countdown_type", 22, 25) == ["buy", None, None]


# ---------------------------------------------------------------- gaps, lookahead, invariants


def test_nan_row_resets_state() -> None:
    df = random_bars(2, 400)
    gappy = df.copy()
    gappy.iloc[150, gappy.columns.get_loc("close")] = np.nan
    out = compute(gappy)
    # the gap row is empty, and the rest equals two independent series
    row = [col(out, name, 150, 151)[0] for name in TD_COLUMNS]
    assert row == [None, None, 0, False, None, 0, False, None, None, None, None, None]
    # levels start again from nothing: a new bar 9 needs 14 bars (flip on the 6th)
    for level in ("td_tdst_buy", "td_tdst_sell"):
        assert out[level].notna().iloc[149] and out[level].iloc[150:164].isna().all()
    pd.testing.assert_frame_equal(out.iloc[:150], compute(df.iloc[:150]))
    pd.testing.assert_frame_equal(out.iloc[151:], compute(df.iloc[151:]))
    # open and volume are not used: NaN there changes nothing
    ov = df.copy()
    ov.iloc[150, [ov.columns.get_loc("open"), ov.columns.get_loc("volume")]] = np.nan
    pd.testing.assert_frame_equal(compute(ov), compute(df))


@pytest.mark.parametrize("cfg", [STD, LOOSE, TDConfig(strict_perfection=False, tdst_from="bar1")])
def test_no_lookahead_random_walk(cfg: TDConfig) -> None:
    df = random_bars(11, 3000)
    full = compute(df, cfg)
    assert full["td_countdown"].eq(13).sum() > 3  # the walk exercises the whole machine
    for t in range(0, 3000, 97):
        assert_prefix_equal(df, full, t, cfg)


@requires_shared
@pytest.mark.parametrize("cfg", [STD, LOOSE])
def test_no_lookahead_real_btc(cfg: TDConfig) -> None:
    df = pd.read_feather(real_feather("BTC", "4h")).set_index("date")
    full = compute(df, cfg)
    for t in [*range(0, len(df), 37), len(df) - 1]:
        assert_prefix_equal(df, full, t, cfg)


def mirrored(out: pd.DataFrame, k: float) -> pd.DataFrame:
    """What `compute` must give on prices k - p: buy and sell (and their levels) swap places."""
    swap = {"bearish": "bullish", "buy": "sell", "up": "down"}
    swap |= {b: a for a, b in swap.items()}
    res = out.copy()
    for name in ("td_flip", "td_setup_type", "td_countdown_type", "td_tdst_breach"):
        res[name] = [swap.get(v, v) if v else None for v in out[name]]
    res["td_tdst_buy"], res["td_tdst_sell"] = k - out["td_tdst_sell"], k - out["td_tdst_buy"]
    for name in ("td_setup_risk_level", "td_countdown_risk_level"):
        res[name] = k - out[name]
    return res


@pytest.mark.parametrize("cfg", [STD, LOOSE, TDConfig(strict_perfection=False, tdst_from="bar1")])
def test_sell_side_mirrors_buy_side(cfg: TDConfig) -> None:
    # Prices 2000 - p (integers, so exact) turn every buy rule into its sell twin: this exercises the sell
    # branches (qualifier, cancellation, recycling, risk) as thoroughly as the buy ones.
    df = random_bars(5, 3000)
    flipped = df.assign(high=2000 - df["low"], low=2000 - df["high"], close=2000 - df["close"])
    out = compute(df, cfg)
    assert out["td_countdown_deferred"].sum() > 3 and out["td_countdown"].eq(13).sum() > 3
    pd.testing.assert_frame_equal(compute(flipped, cfg), mirrored(out, 2000))
    # and the hand-built countdown series, read as a sell countdown
    hand = countdown_bars()
    hand_flipped = hand.assign(high=200 - hand["low"], low=200 - hand["high"], close=200 - hand["close"])
    pd.testing.assert_frame_equal(compute(hand_flipped, cfg), mirrored(compute(hand, cfg), 200))


def reference_setup_count(close: np.ndarray, loose: bool) -> list[int]:
    """Setup counts straight from §1-2, one bar at a time (an independent check of the kernel's)."""
    counts, side_prev = [], 0
    for i in range(len(close)):
        side = 0 if i < 4 else (1 if close[i] < close[i - 4] else 2 if close[i] > close[i - 4] else 0)
        prev = counts[-1] if counts else 0
        if side == 0:
            counts.append(0)
        elif side == side_prev and prev > 0:
            counts.append(prev + 1)
        elif loose:
            counts.append(1)
        else:
            flip = i >= 5 and (close[i - 1] > close[i - 5] if side == 1 else close[i - 1] < close[i - 5])
            counts.append(1 if flip else 0)
        side_prev = side if counts[-1] else 0
    return counts


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.integers(-3, 3), min_size=1, max_size=120),
    wicks=st.lists(st.integers(0, 3), min_size=240, max_size=240),
    profile=st.sampled_from(["standard", "loose"]),
    strict=st.booleans(),
    grace=st.one_of(st.none(), st.integers(0, 5)),
    tdst_from=st.sampled_from(["extreme", "bar1"]),
    cut=st.floats(0, 1),
)
def test_properties_random_series(
    steps: list[int],
    wicks: list[int],
    profile: str,
    strict: bool,
    grace: int | None,
    tdst_from: str,
    cut: float,
) -> None:
    n = len(steps)
    close = 100.0 + np.cumsum(steps)
    df = bars(
        list(close), high=dict(enumerate(close + wicks[:n])), low=dict(enumerate(close - wicks[n : 2 * n]))
    )
    cfg = TDConfig(
        profile=profile, strict_perfection=strict, perfection_grace_bars=grace, tdst_from=tdst_from
    )
    out = compute(df, cfg)
    t = int(cut * (n - 1))
    assert_prefix_equal(df, out, t, cfg)
    assert out["td_setup_count"].tolist() == reference_setup_count(close, profile == "loose")
    cd = out["td_countdown"].to_numpy()
    assert ((cd >= 0) & (cd <= 13)).all()
    assert (out["td_countdown_type"].notna() | (cd == 0)).all()
    assert (out["td_countdown_risk_level"].notna() == (cd == 13)).all()
    assert (cd[out["td_countdown_deferred"].to_numpy()] == 12).all()
    assert (out["td_setup_risk_level"].notna() == (out["td_setup_count"] == 9)).all()


@requires_shared
def test_smoke_all_symbols_4h() -> None:
    for symbol in SYMBOLS:
        df = pd.read_feather(real_feather(symbol, "4h")).set_index("date")
        for cfg in (STD, LOOSE, TDConfig(strict_perfection=False)):
            out = compute(df, cfg)
            count, cd = out["td_setup_count"].to_numpy(), out["td_countdown"].to_numpy()
            assert (count >= 0).all() and ((cd >= 0) & (cd <= 13)).all(), symbol
            completed = out["td_setup_risk_level"].notna().to_numpy()
            assert (count[completed] == 9).all() and (completed == (count == 9)).all(), symbol
            perfected = np.flatnonzero(out["td_perfected"].to_numpy())
            first_nine = np.flatnonzero(count == 9)
            if cfg.strict_perfection:
                assert (count[perfected] == 9).all(), symbol
            else:
                assert len(first_nine) and (perfected >= first_nine[0]).all(), symbol
            first_buy = np.flatnonzero((count == 9) & (out["td_setup_type"] == "buy").to_numpy())[0]
            assert out["td_tdst_buy"].iloc[first_buy:].notna().all(), symbol
            assert out["td_tdst_buy"].iloc[:first_buy].isna().all(), symbol
            assert (cd == 13).sum() > 0, symbol
