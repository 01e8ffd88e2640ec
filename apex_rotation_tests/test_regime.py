"""regime: labels on hand-set bars, trend/chop fixtures (TA-Lib indicators), and the TD fade weight."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from apex_rotation.signals.regime import (
    RegimeConfig,
    classify,
    td_fade_weight,
    td_fade_weights,
    volatility_band,
)

UP, DOWN, TANGLED = (102.0, 101.0, 100.0), (98.0, 99.0, 100.0), (102.0, 100.0, 101.0)


def hand_frame(rows: list[tuple[float, float, tuple[float, float, float]]]) -> pd.DataFrame:
    """(atr, adx, (ema_20, ema_50, ema_200)) per bar; close is always 100, so ATR/close = atr / 100."""
    idx = pd.date_range("2025-01-01", periods=len(rows), freq="4h", tz="UTC", name="open_time")
    atr, adx, emas = zip(*rows, strict=True)
    e20, e50, e200 = zip(*emas, strict=True)
    return pd.DataFrame(
        {"close": 100.0, "atr": atr, "adx": adx, "ema_20": e20, "ema_50": e50, "ema_200": e200}, index=idx
    )


def test_labels_by_hand() -> None:
    # window 4, at least 3 past values; the upper edge is the linear 95th percentile of the past bars
    cfg = RegimeConfig(vol_window=4, vol_min_periods=3)
    rows = [
        (1.0, 30.0, UP),  # 0-2: fewer than 3 past vols → unknown
        (1.2, 30.0, UP),
        (0.9, 30.0, UP),
        (1.1, 30.0, UP),  # 3: past [0.9, 1.0, 1.2] → edge 1.0 + 0.9·0.2 = 1.18 ≥ 1.1 → trend_up
        (1.0, 30.0, UP),  # 4: past [0.9 … 1.2] → edge 1.1 + 0.85·0.1 = 1.185 → trend_up
        (1.05, 24.9, UP),  # 5: ADX under 25 → chop
        (1.0, 30.0, DOWN),  # 6: → trend_down
        (3.0, 40.0, UP),  # 7: past edge 1.05 + 0.85·0.05 = 1.0925, vol 3.0 is a blow-off → chop
        (1.0, 25.0, UP),  # 8: ADX exactly 25 counts → trend_up
        (1.0, 40.0, TANGLED),  # 9: ema_50 < ema_200 → chop
        (1.0, math.nan, UP),  # 10: ADX NaN → unknown
        (math.nan, 30.0, UP),  # 11: ATR NaN → unknown
        (1.0, 30.0, UP),  # 12: past [1.0, 1.0, 1.0, NaN]: 3 values, edge 1.0, vol 1.0 on the edge → trend_up
    ]
    labels = classify(hand_frame(rows), cfg)
    assert labels.name == "regime"
    assert labels.tolist() == [
        "unknown",
        "unknown",
        "unknown",
        "trend_up",
        "trend_up",
        "chop",
        "trend_down",
        "chop",
        "trend_up",
        "chop",
        "unknown",
        "unknown",
        "trend_up",
    ]
    band = volatility_band(hand_frame(rows), cfg)
    assert band["vol_hi"].iloc[3] == pytest.approx(0.0118, rel=1e-12)
    assert band["vol_hi"].iloc[7] == pytest.approx(0.010925, rel=1e-12)


def test_optional_lower_volatility_edge() -> None:
    rows = [(1.0, 30.0, UP), (1.1, 30.0, UP), (1.2, 30.0, UP), (0.5, 30.0, UP)]
    # bar 3: past [1.0, 1.1, 1.2]; the 25th percentile is 1.05, and 0.5 is under it
    assert classify(hand_frame(rows), RegimeConfig(vol_window=3, vol_min_periods=3)).iloc[3] == "trend_up"
    low_edge = RegimeConfig(vol_window=3, vol_min_periods=3, vol_band_low=25.0)
    assert volatility_band(hand_frame(rows), low_edge)["vol_lo"].iloc[3] == pytest.approx(0.0105, rel=1e-12)
    assert classify(hand_frame(rows), low_edge).iloc[3] == "chop"


def test_config_rejects_inverted_band() -> None:
    with pytest.raises(ValueError, match="vol_band_low"):
        RegimeConfig(vol_band_low=96.0)
    with pytest.raises(ValueError, match="vol_min_periods"):
        RegimeConfig(vol_window=50)


# --------------------------------------------------------------------------------------------------------
# Fixtures: deterministic series with TA-Lib indicators
# --------------------------------------------------------------------------------------------------------

N = 600
FIXTURE_CFG = RegimeConfig(vol_window=100, vol_min_periods=100)


def ohlc_frame(close: np.ndarray, seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.002, 0.006, close.size)
    open_ = np.r_[close[0], close[:-1]]
    high, low = np.maximum(open_, close) * (1 + spread), np.minimum(open_, close) * (1 - spread)
    idx = pd.date_range("2024-01-01", periods=close.size, freq="1h", tz="UTC", name="open_time")
    df = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=idx)
    return with_indicators(df)


def with_indicators(df: pd.DataFrame) -> pd.DataFrame:
    h, lo, c = (df[k].to_numpy() for k in ("high", "low", "close"))
    df = df.copy()
    df["atr"], df["adx"] = talib.ATR(h, lo, c, 14), talib.ADX(h, lo, c, 14)
    for n in (20, 50, 200):
        df[f"ema_{n}"] = talib.EMA(c, n)
    return df


def rising() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    return ohlc_frame(100 * np.exp(np.cumsum(0.003 + rng.normal(0, 0.004, N))))


def sideways() -> pd.DataFrame:
    rng = np.random.default_rng(6)
    t = np.arange(N)
    return ohlc_frame(100 * (1 + 0.02 * np.sin(2 * np.pi * t / 18)) * np.exp(rng.normal(0, 0.002, N)))


def sell_setup_count(close: pd.Series) -> pd.Series:
    """A simple TD sell-setup count: the run length of closes above the close 4 bars earlier."""
    up = (close > close.shift(4)).to_numpy()
    count = np.zeros(up.size, dtype=int)
    for i in range(1, up.size):
        count[i] = count[i - 1] + 1 if up[i] else 0
    return pd.Series(count, index=close.index)


def test_rising_series_is_trend_up_except_on_volatility_spikes() -> None:
    df = rising()
    labels = classify(df, FIXTURE_CFG)
    known = labels != "unknown"
    assert not known.iloc[:199].any()  # ema_200 warms up at bar 199
    assert known.iloc[199:].all()
    after = df.iloc[199:]
    assert (after["adx"] >= 25).all() and (after["ema_20"] > after["ema_50"]).all()
    assert (after["ema_50"] > after["ema_200"]).all()
    # with ADX and the stack given, the label is exactly the volatility band's verdict
    band = volatility_band(df, FIXTURE_CFG).iloc[199:]
    in_band = band["vol"] <= band["vol_hi"]
    expected = np.where(in_band, "trend_up", "chop")
    assert labels.iloc[199:].tolist() == expected.tolist()
    assert (labels.iloc[199:] == "trend_up").mean() > 0.8


def test_falling_series_is_trend_down() -> None:
    df = rising()
    falling = ohlc_frame(10_000 / df["close"].to_numpy())
    labels = classify(falling, FIXTURE_CFG).iloc[199:]
    assert set(labels) == {"trend_down", "chop"}
    assert (labels == "trend_down").mean() > 0.8


def test_sideways_oscillation_is_chop() -> None:
    df = sideways()
    labels = classify(df, FIXTURE_CFG)
    assert (labels.iloc[199:] == "chop").all()
    assert df["adx"].iloc[199:].max() < 25


def test_blow_off_spike_is_not_a_trend() -> None:
    df = rising()
    # the last 5 bars keep rising but swing ±8 % inside each bar: ATR/close leaves its past range
    spike = df[["open", "high", "low", "close"]].copy()
    spike.iloc[-5:, spike.columns.get_loc("high")] = spike["close"].iloc[-5:] * 1.08
    spike.iloc[-5:, spike.columns.get_loc("low")] = spike["close"].iloc[-5:] * 0.92
    spiked = with_indicators(spike)
    assert (classify(df, FIXTURE_CFG).iloc[-5:] == "trend_up").all()
    tail = spiked.iloc[-5:]
    assert (tail["adx"] >= 25).all() and (tail["ema_20"] > tail["ema_50"]).all()
    assert (classify(spiked, FIXTURE_CFG).iloc[-5:] == "chop").all()


def test_no_lookahead() -> None:
    df = rising()
    full = classify(df, FIXTURE_CFG)
    for t in (150, 199, 250, 420, N - 1):
        assert classify(df.iloc[: t + 1], FIXTURE_CFG).iloc[t] == full.iloc[t]


def test_volatility_history_warm_up() -> None:
    # ATR is known from bar 14, so the past-only ATR/close from bar 15; 252 of them are there at bar 266
    labels = classify(rising(), RegimeConfig(vol_min_periods=252))
    assert labels.iloc[:266].eq("unknown").all()
    assert labels.iloc[266:].isin(["trend_up", "chop"]).all()
    # with the default 100, ema_200 (bar 199) is the last input to warm up
    assert classify(rising(), RegimeConfig()).iloc[198:200].tolist() == ["unknown", "trend_up"]


# --------------------------------------------------------------------------------------------------------
# TD fade weight
# --------------------------------------------------------------------------------------------------------

DOWNWEIGHT = RegimeConfig()  # trend_fade_weight 0.25
BLOCK = RegimeConfig(block_td_fades_in_trend=True)


@pytest.mark.parametrize(
    ("regime", "setup", "count", "down_weighted", "blocked"),
    [
        ("trend_up", "sell", 9, 0.25, 0.0),  # fading a strong uptrend
        ("chop", "sell", 9, 1.0, 1.0),
        ("trend_down", "sell", 9, 1.0, 1.0),  # a sell 9 in a downtrend ends a bounce: with the trend
        ("trend_down", "buy", 9, 0.25, 0.0),  # the mirror: buy exhaustion against a downtrend
        ("trend_up", "buy", 9, 1.0, 1.0),
        ("chop", "buy", 9, 1.0, 1.0),
        ("unknown", "sell", 9, 0.25, 0.0),  # no established chop: treated as a trend
        ("chop", "sell", 8, 0.0, 0.0),  # not a completed setup: no fade signal
        ("chop", "sell", 10, 0.0, 0.0),
        ("chop", None, 0, 0.0, 0.0),
    ],
)
def test_td_fade_weight_table(
    regime: str, setup: str | None, count: int, down_weighted: float, blocked: float
) -> None:
    assert td_fade_weight(regime, setup, count, DOWNWEIGHT) == down_weighted
    assert td_fade_weight(regime, setup, count, BLOCK) == blocked


def test_td_fade_weight_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match="unknown regime"):
        td_fade_weight("trending", "sell", 9, DOWNWEIGHT)
    with pytest.raises(ValueError, match="td_setup_type"):
        td_fade_weight("chop", "long", 9, DOWNWEIGHT)


@pytest.mark.parametrize(("cfg", "trend_weight"), [(DOWNWEIGHT, 0.25), (BLOCK, 0.0)])
def test_sell_nines_blocked_in_trend_allowed_in_chop(cfg: RegimeConfig, trend_weight: float) -> None:
    for df, regime, weight in ((rising(), "trend_up", trend_weight), (sideways(), "chop", 1.0)):
        count = sell_setup_count(df["close"])
        setup = pd.Series(np.where(count > 0, "sell", None), index=df.index, dtype=object)
        labels = classify(df, FIXTURE_CFG)
        weights = td_fade_weights(labels, setup, count, cfg)
        nines = (count == 9) & (labels == regime)
        assert nines.sum() >= 5  # both fixtures complete several sell setups in their regime
        assert (weights[nines] == weight).all()
        assert (weights[count != 9] == 0.0).all()
