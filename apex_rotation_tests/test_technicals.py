"""technicals: the five checks on hand-set bars, the 2-of-5 verdict, the frame version, the retest."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from apex_rotation.signals.technicals import (
    CHECKS,
    TechnicalsConfig,
    evaluate,
    evaluate_frame,
    retest,
)

CFG = TechnicalsConfig()
PASSING = {
    "close": 105.0,
    "rsi": 55.0,
    "macd": 1.0,
    "macd_signal": 0.5,
    "macd_hist": 0.5,
    "ema_20": 103.0,
    "ema_50": 100.0,
    "ema_200": 90.0,
    "fib_zone": "38.2-50",
    "fib_pos": 0.45,
    "fib_swing_up": True,
    "volume_trend": 0.2,
}
NAN_ALL = {
    "rsi": math.nan,
    "macd": math.nan,
    "macd_signal": math.nan,
    "macd_hist": math.nan,
    "ema_20": math.nan,
    "fib_zone": None,
    "volume_trend": math.nan,
}


def row(**overrides: object) -> pd.Series:
    return pd.Series({**PASSING, **overrides}, dtype=object)


def passed(**overrides: object) -> dict[str, bool | None]:
    return {name: check.passed for name, check in evaluate(row(**overrides), CFG).checks.items()}


def test_all_five_pass_on_a_textbook_bar() -> None:
    verdict = evaluate(row(), CFG)
    assert (verdict.passed, verdict.n_passed, verdict.required) == (True, 5, 2)
    assert list(verdict.checks) == list(CHECKS)


@pytest.mark.parametrize(("rsi", "expected"), [(45.0, True), (70.0, True), (44.99, False), (70.01, False)])
def test_rsi_band_is_inclusive(rsi: float, expected: bool) -> None:
    assert passed(rsi=rsi)["rsi"] is expected


def test_rsi_reason_and_nan() -> None:
    assert evaluate(row(rsi=72.0), CFG).checks["rsi"].reason == "RSI 72.00 outside [45, 70]"
    check = evaluate(row(rsi=math.nan), CFG).checks["rsi"]
    assert check.passed is None and "insufficient data" in check.reason


def test_macd_cross_or_rising_histogram() -> None:
    below = {"macd": -0.2, "macd_signal": 0.1, "macd_hist": -0.3}
    assert passed(**below, macd_hist_prev=-0.5)["macd"] is True  # −0.5 → −0.3: rising before the cross
    assert passed(**below, macd_hist_prev=-0.3)["macd"] is False  # flat is not rising
    assert passed(**below)["macd"] is None  # a lone row cannot tell whether the histogram rises
    assert passed(macd=math.nan)["macd"] is None
    assert passed(macd_hist_prev=0.9)["macd"] is True  # above the signal decides, whatever the histogram


def test_ema_stack_with_ema200_as_bonus_reason() -> None:
    assert passed(close=102.0)["ema_stack"] is False  # close under ema_20 103
    assert passed(ema_50=104.0)["ema_stack"] is False  # ema_20 103 under ema_50
    below_200 = evaluate(row(ema_200=110.0), CFG).checks["ema_stack"]
    assert below_200.passed is True and "below ema_200 110" in below_200.reason
    no_200 = evaluate(row(ema_200=math.nan), CFG).checks["ema_stack"]
    assert no_200.passed is True and "ema_200 n/a" in no_200.reason
    assert passed(ema_50=math.nan)["ema_stack"] is None


def test_fib_support_zones_of_an_up_swing_only() -> None:
    assert passed(fib_zone="50-61.8")["fib"] is True
    assert passed(fib_zone="above", fib_pos=-0.05)["fib"] is True  # a breakout beyond the swing high
    assert passed(fib_zone="61.8-78.6")["fib"] is False  # retraced too deep
    assert passed(fib_zone="0-23.6")["fib"] is False  # barely retraced
    assert passed(fib_swing_up=False)["fib"] is False  # a bounce into a down-swing's resistance
    assert passed(fib_zone=None)["fib"] is None
    assert passed(fib_swing_up=math.nan)["fib"] is None
    assert evaluate(row(), CFG).checks["fib"].reason == "close in zone 38.2-50 (pos 0.450) of the up-swing"


def test_volume_trend_must_be_positive() -> None:
    assert passed(volume_trend=0.0)["volume_trend"] is False
    assert passed(volume_trend=0.01)["volume_trend"] is True
    assert passed(volume_trend=math.inf)["volume_trend"] is None


def test_two_of_five_and_nan_never_counts() -> None:
    only_two = row(**{**NAN_ALL, "rsi": 50.0, "volume_trend": 0.1})
    verdict = evaluate(only_two, CFG)
    assert (verdict.passed, verdict.n_passed) == (True, 2)
    assert [c.passed for c in verdict.checks.values()] == [True, None, None, None, True]
    one = evaluate(row(**{**NAN_ALL, "rsi": 50.0}), CFG)
    assert (one.passed, one.n_passed) == (False, 1)
    # three real failures and two passes still pass 2-of-5, but not 3-of-5
    mixed = row(rsi=80.0, close=99.0, volume_trend=-0.1)
    assert evaluate(mixed, CFG).passed is True
    assert evaluate(mixed, TechnicalsConfig(required=3)).passed is False


def hand_frame() -> pd.DataFrame:
    idx = pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC", name="open_time")
    rows = [
        row(**NAN_ALL),  # warm-up: nothing known
        row(macd=-0.2, macd_signal=0.1, macd_hist=-0.3, rsi=50.0),  # previous hist NaN → macd unknown
        row(macd=-0.1, macd_signal=0.1, macd_hist=-0.2, fib_swing_up=False, volume_trend=-0.1),  # rising
        row(macd=-0.2, macd_signal=0.1, macd_hist=-0.3, rsi=75.0, close=101.0),  # falling; 2 passes left
    ]
    return pd.DataFrame(rows, index=idx)


def test_frame_evaluation_by_hand() -> None:
    out = evaluate_frame(hand_frame(), CFG)
    na = pd.NA
    expected = pd.DataFrame(
        {
            "tech_rsi": [na, True, True, False],
            "tech_macd": [na, na, True, False],
            "tech_ema_stack": [na, True, True, False],
            "tech_fib": [na, True, False, True],
            "tech_volume_trend": [na, True, False, True],
        },
        index=out.index,
        dtype="boolean",
    )
    pd.testing.assert_frame_equal(out[expected.columns], expected)
    assert out["tech_n_passed"].tolist() == [0, 4, 3, 2]
    assert out["tech_pass"].tolist() == [False, True, True, True]
    # the frame form of `evaluate` reads the previous bar's histogram
    assert evaluate(hand_frame(), CFG, asof=hand_frame().index[2]).checks["macd"].passed is True


def random_features(n: int = 260, seed: int = 11) -> pd.DataFrame:
    """A deterministic random walk with simply computed indicator columns and some NaN / inf holes."""
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC", name="open_time")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=idx)
    volume = pd.Series(rng.lognormal(10, 0.5, n), index=idx)

    def ema(x: pd.Series, span: int) -> pd.Series:
        return x.ewm(span=span, adjust=False, min_periods=span).mean()

    delta = close.diff()
    gain, loss = delta.clip(lower=0).rolling(14).mean(), (-delta.clip(upper=0)).rolling(14).mean()
    macd = ema(close, 12) - ema(close, 26)
    signal = ema(macd, 9)
    df = pd.DataFrame(
        {
            "close": close,
            "rsi": 100 - 100 / (1 + gain / loss),
            "macd": macd,
            "macd_signal": signal,
            "macd_hist": macd - signal,
            "ema_20": ema(close, 20),
            "ema_50": ema(close, 50),
            "ema_200": ema(close, 200),
            "fib_zone": rng.choice(
                np.array(["above", "38.2-50", "50-61.8", "78.6-100", None], dtype=object), n
            ),
            "fib_pos": rng.uniform(-0.1, 1.1, n),
            "fib_swing_up": rng.choice(np.array([True, False], dtype=object), n),
            "volume_trend": ema(volume, 10) / ema(volume, 50) - 1,
        }
    )
    df.iloc[[70, 71, 150], df.columns.get_loc("rsi")] = np.nan
    df.iloc[[90, 120], df.columns.get_loc("macd_hist")] = np.inf
    df.iloc[[100], df.columns.get_loc("macd")] = np.nan
    df.iloc[[130, 131], df.columns.get_loc("volume_trend")] = np.nan
    df.iloc[[140], df.columns.get_loc("fib_swing_up")] = None
    return df


def test_frame_equals_row_by_row_evaluate() -> None:
    df = random_features()
    out = evaluate_frame(df, CFG)
    assert out["tech_n_passed"].max() == 5 and out["tech_n_passed"].iloc[60:].min() <= 1  # both ends reached
    for i in range(len(df)):
        verdict = evaluate(df.iloc[: i + 1], CFG)
        got = {
            name: (None if out[f"tech_{name}"].iloc[i] is pd.NA else bool(out[f"tech_{name}"].iloc[i]))
            for name in CHECKS
        }
        assert got == {name: c.passed for name, c in verdict.checks.items()}, f"bar {i}"
        assert out["tech_n_passed"].iloc[i] == verdict.n_passed
        assert bool(out["tech_pass"].iloc[i]) is verdict.passed


def test_no_lookahead_in_frame_evaluation() -> None:
    df = random_features()
    full = evaluate_frame(df, CFG)
    for t in (0, 33, 34, 91, 150, 259):
        pd.testing.assert_series_equal(evaluate_frame(df.iloc[: t + 1], CFG).iloc[t], full.iloc[t])


def test_missing_columns_are_named() -> None:
    with pytest.raises(KeyError, match="fib_swing_up"):
        evaluate_frame(hand_frame().drop(columns="fib_swing_up"), CFG)


# --------------------------------------------------------------------------------------------------------
# retest
# --------------------------------------------------------------------------------------------------------

LEVEL = 100.0  # tolerance 0.5 % → a low at or under 100.5 touches


def bars(lows_closes: list[tuple[float, float]]) -> pd.DataFrame:
    """Bar 0 is the breakout (closes 102 over the 100 level); then the given (low, close) bars."""
    rows = [(99.5, 102.0), *lows_closes]
    idx = pd.date_range("2025-03-01", periods=len(rows), freq="1h", tz="UTC", name="open_time")
    low, close = zip(*rows, strict=True)
    return pd.DataFrame({"low": low, "close": close, "high": np.array(close) + 1}, index=idx)


def test_retest_confirmed_on_first_touch_that_holds() -> None:
    df = bars([(101.2, 102.5), (100.4, 101.0), (99.0, 99.5)])
    res = retest(df, df.index[0], LEVEL)
    assert (res.status, res.bar, res.bars_seen) == ("confirmed", df.index[2], 2)
    wick = bars([(99.7, 100.3)])  # wicks under the level, closes above: still a held retest
    assert retest(wick, wick.index[0], LEVEL).status == "confirmed"


def test_retest_failed_on_close_back_below() -> None:
    df = bars([(101.2, 102.5), (99.0, 99.8), (100.2, 101.0)])
    res = retest(df, df.index[0], LEVEL)
    assert (res.status, res.bar, res.bars_seen) == ("failed", df.index[2], 2)


def test_retest_tolerance() -> None:
    near = bars([(100.49, 101.0)])
    assert retest(near, near.index[0], LEVEL).status == "confirmed"
    far = bars([(100.51, 101.0)])
    assert retest(far, far.index[0], LEVEL).status == "pending"
    assert retest(far, far.index[0], LEVEL, tolerance_pct=1.0).status == "confirmed"


def test_retest_pending_then_none_when_window_runs_out() -> None:
    df = bars([(101.0 + i, 102.0 + i) for i in range(8)])  # runs away, never comes back
    assert retest(df, df.index[0], LEVEL, asof=df.index[5]).status == "pending"  # 5 of 6 bars seen
    res = retest(df, df.index[0], LEVEL, asof=df.index[6])
    assert (res.status, res.bars_seen) == ("none", 6)
    # a touch after the window does not count
    late = bars([(101.0, 102.0)] * 6 + [(100.1, 100.8)])
    assert retest(late, late.index[0], LEVEL).status == "none"
    assert retest(late, late.index[0], LEVEL, within_bars=7).status == "confirmed"


def test_retest_uses_only_bars_up_to_asof() -> None:
    df = bars([(101.2, 102.5), (101.0, 101.5), (99.0, 99.5)])
    at = df.index[2]
    assert retest(df, df.index[0], LEVEL, asof=at) == retest(df.loc[:at], df.index[0], LEVEL)
    assert retest(df, df.index[0], LEVEL, asof=at).status == "pending"
    assert retest(df, df.index[0], LEVEL).status == "failed"


def test_retest_rejects_a_bar_that_did_not_break_out() -> None:
    df = bars([(101.2, 102.5)])
    with pytest.raises(ValueError, match="not above the level"):
        retest(df, df.index[0], 102.0)
    with pytest.raises(ValueError, match="precedes"):
        retest(df, df.index[1], LEVEL, asof=df.index[0])
