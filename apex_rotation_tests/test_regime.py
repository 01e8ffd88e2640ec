"""regime: labels on hand-set bars, trend/chop fixtures (TA-Lib indicators), agreement with the synthetic
market's planted regimes, and the TD fade weight."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import talib

from apex_rotation.config import AppConfig
from apex_rotation.features.build import technical_features
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation.signals.regime import (
    RegimeConfig,
    classify,
    td_fade_weight,
    td_fade_weights,
    volatility_band,
)
from apex_rotation.store.resample import resample

# (ema_20, ema_50, ema_200, plus_di, minus_di)
UP = (102.0, 101.0, 100.0, 30.0, 10.0)
DOWN = (98.0, 99.0, 100.0, 10.0, 30.0)
UP_UNDER_200 = (102.0, 101.0, 110.0, 30.0, 10.0)  # a fresh up-swing still under a falling EMA200
DI_AGAINST = (102.0, 101.0, 100.0, 10.0, 30.0)  # a sharp drop into an up-stack: -DI on top


def hand_frame(rows: list[tuple[float, float, tuple[float, ...]]]) -> pd.DataFrame:
    """(atr, adx, (ema_20, ema_50, ema_200, +DI, -DI)) per bar; close is always 100, so ATR/close = atr/100."""
    idx = pd.date_range("2025-01-01", periods=len(rows), freq="4h", tz="UTC", name="open_time")
    atr, adx, rest = zip(*rows, strict=True)
    e20, e50, e200, pdi, mdi = zip(*rest, strict=True)
    return pd.DataFrame(
        {
            "close": 100.0,
            "atr": atr,
            "adx": adx,
            "ema_20": e20,
            "ema_50": e50,
            "ema_200": e200,
            "plus_di": pdi,
            "minus_di": mdi,
        },
        index=idx,
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
        (1.05, 21.0, UP),  # 5: ADX eases under 25 but stays ≥ 20 in an established trend → still trend_up
        (1.0, 19.9, UP),  # 6: ADX under 20 ends it → chop
        (1.0, 22.0, UP),  # 7: ADX 22 with no trend behind it does not start one → chop
        (1.0, 25.0, UP),  # 8: ADX exactly 25 starts one → trend_up
        (1.0, 30.0, DOWN),  # 9: direction flips, ADX ≥ 25 → trend_down
        (3.0, 40.0, DOWN),  # 10: past edge 1.0, vol 3.0 is a blow-off → chop
        (1.0, 22.0, DOWN),  # 11: the veto was for bar 10 only; the trend holds at ADX 22 → trend_down
        (1.0, 40.0, DI_AGAINST),  # 12: EMAs up, -DI on top: conflicting → chop
        (1.0, 30.0, UP_UNDER_200),  # 13: ema_200 is not used → trend_up
        (1.0, math.nan, UP),  # 14: ADX NaN → unknown
        (math.nan, 30.0, UP),  # 15: ATR NaN → unknown (and the unknown bar ends the trend state)
        (1.0, 22.0, UP),  # 16: past [1.0, 1.0, 1.0, NaN]: edge 1.0, vol on it; ADX 22 after a break → chop
        (1.0, 25.0, UP),  # 17: → trend_up
    ]
    labels = classify(hand_frame(rows), cfg)
    assert labels.name == "regime"
    assert labels.tolist() == [
        "unknown",
        "unknown",
        "unknown",
        "trend_up",
        "trend_up",
        "trend_up",
        "chop",
        "chop",
        "trend_up",
        "trend_down",
        "chop",
        "trend_down",
        "chop",
        "trend_up",
        "unknown",
        "unknown",
        "chop",
        "trend_up",
    ]
    band = volatility_band(hand_frame(rows), cfg)
    assert band["vol_hi"].iloc[3] == pytest.approx(0.0118, rel=1e-12)
    assert band["vol_hi"].iloc[5] == pytest.approx(0.01185, rel=1e-12)
    assert band["vol_hi"].iloc[10] == pytest.approx(0.01, rel=1e-12)
    assert band["vol_hi"].iloc[11] == pytest.approx(0.027, rel=1e-12)
    assert band["vol_hi"].iloc[16] == pytest.approx(0.01, rel=1e-12)


def test_ema_200_is_not_an_input() -> None:
    df = hand_frame([(1.0, 30.0, UP)] * 4 + [(1.0, 30.0, UP_UNDER_200)])
    assert classify(df.drop(columns="ema_200"), RegimeConfig(vol_window=3, vol_min_periods=3)).tolist() == [
        "unknown",
        "unknown",
        "unknown",
        "trend_up",
        "trend_up",
    ]
    with pytest.raises(KeyError, match="plus_di"):
        classify(df.drop(columns="plus_di"))


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
    df["plus_di"], df["minus_di"] = talib.PLUS_DI(h, lo, c, 14), talib.MINUS_DI(h, lo, c, 14)
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


# ATR is known from bar 14, its past-only ATR/close from bar 15, so the 100 past values the fixture config
# asks for are there at bar 114; ADX (27), ema_50 (49) and the DIs (14) are known by then.
WARM = 114


def test_rising_series_is_trend_up_except_on_volatility_spikes() -> None:
    df = rising()
    labels = classify(df, FIXTURE_CFG)
    known = labels != "unknown"
    assert not known.iloc[:WARM].any()
    assert known.iloc[WARM:].all()
    after = df.iloc[WARM:]
    assert (after["adx"] >= 25).all() and (after["ema_20"] > after["ema_50"]).all()
    assert (after["plus_di"] > after["minus_di"]).all()
    # with ADX, DI and the EMA pair given, the label is exactly the volatility band's verdict
    band = volatility_band(df, FIXTURE_CFG).iloc[WARM:]
    in_band = band["vol"] <= band["vol_hi"]
    expected = np.where(in_band, "trend_up", "chop")
    assert labels.iloc[WARM:].tolist() == expected.tolist()
    assert (labels.iloc[WARM:] == "trend_up").mean() > 0.8


def test_falling_series_is_trend_down() -> None:
    df = rising()
    falling = ohlc_frame(10_000 / df["close"].to_numpy())
    labels = classify(falling, FIXTURE_CFG).iloc[WARM:]
    assert set(labels) == {"trend_down", "chop"}
    assert (labels == "trend_down").mean() > 0.8


def test_sideways_oscillation_is_chop() -> None:
    df = sideways()
    labels = classify(df, FIXTURE_CFG)
    assert (labels.iloc[WARM:] == "chop").all()
    assert df["adx"].iloc[WARM:].max() < 25


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
    assert (tail["plus_di"] > tail["minus_di"]).all()
    assert (classify(spiked, FIXTURE_CFG).iloc[-5:] == "chop").all()


def test_no_lookahead() -> None:
    df = rising()
    full = classify(df, FIXTURE_CFG)
    for t in (WARM - 1, WARM, 150, 199, 250, 420, N - 1):
        assert classify(df.iloc[: t + 1], FIXTURE_CFG).iloc[t] == full.iloc[t]


def test_volatility_history_warm_up() -> None:
    # ATR is known from bar 14, so the past-only ATR/close from bar 15; 252 of them are there at bar 266
    labels = classify(rising(), RegimeConfig(vol_min_periods=252))
    assert labels.iloc[:266].eq("unknown").all()
    assert labels.iloc[266:].isin(["trend_up", "chop"]).all()
    # with the default 100, the volatility history (bar 114) is the last input to warm up
    assert classify(rising(), RegimeConfig()).iloc[WARM - 1 : WARM + 1].tolist() == ["unknown", "trend_up"]


# --------------------------------------------------------------------------------------------------------
# Agreement with the synthetic market's planted regimes (4h, default config)
# --------------------------------------------------------------------------------------------------------

# Planted regimes drive the market factor (BTC) and, through beta, ETH. A past-only label needs some bars of
# a segment before its drift shows (0.1 % per 4h bar against ~0.63 % 4h volatility), so bars are scored from
# 24 bars (4 days) into a segment on. Measured on the default market with these rules (and, in brackets,
# with the old ADX ≥ 25 + EMA 20/50/200 stack, no DI, no hysteresis), share of each planted regime's bars:
#
#                planted trend_up → trend_up   planted trend_down → trend_down   planted chop → chop
#   BTC          0.67 (0.60)                   0.40 (0.26)                       0.69 (0.80)
#   ETH          0.62 (0.59)                   0.36 (0.28)                       0.64 (0.77)
#   wrong direction (trend_up ↔ trend_down): BTC 0.02 / 0.08, ETH 0.03 / 0.09 (old 0.02 / 0.10, 0.01 / 0.08)
#
# Over seeds 1-12 (BTC, ETH) the means are 0.68 / 0.60, 0.46 / 0.41, 0.65 / 0.68 (old 0.60 / 0.52,
# 0.36 / 0.31, 0.74 / 0.75). Planted trend_down is the hard one on this generator: on the default market its
# realised drift is about 60 % of the planted one (partly because the planted apex breakouts are upward jumps
# and land in down segments too), so several planted down segments are flat on the tape. As a yardstick of
# what is recoverable, a forward (past-only) filter given the generator's true drifts and switching rates
# gets about 0.62 / 0.41 / 0.61 on BTC over whole segments. The floors leave 5-10 points of slack.
SEGMENT_WARM_UP = 24
MIN_AGREEMENT = {"trend_up": 0.55, "trend_down": 0.30, "chop": 0.55}
MAX_WRONG_DIRECTION = 0.15


@pytest.fixture(scope="module")
def planted_4h(default_config: AppConfig) -> dict[str, pd.DataFrame]:
    """BTC and ETH 4h bars with their technical features, the planted regime and the bars into it."""
    source = SyntheticSource(default_config)
    since, until = source.history_window()
    truth = source.ground_truth()
    segments = truth[truth["kind"] == "regime"].sort_values("time")
    starts = pd.DatetimeIndex(pd.to_datetime(segments["time"], utc=True))
    names = segments["detail"].str.split(":").str[0].to_numpy()
    out = {}
    for symbol in ("BTC", "ETH"):
        raw = source.fetch_ohlcv(symbol, "1h", since, until)
        hourly = clean_ohlcv(raw, symbol=symbol, timeframe="1h", source="synthetic").bars
        bars = resample(hourly, "4h", symbol=symbol)
        df = bars[["close"]].join(technical_features(bars, default_config.market_filters.breakout_lookback))
        seg = starts.searchsorted(df.index, side="right") - 1
        assert (seg >= 0).all()
        df["planted"] = names[seg]
        df["bars_in"] = (df.index - starts[seg]) / pd.Timedelta(hours=4)
        out[symbol] = df
    return out


@pytest.mark.parametrize("symbol", ["BTC", "ETH"])
def test_agreement_with_planted_regimes(
    planted_4h: dict[str, pd.DataFrame], default_config: AppConfig, symbol: str
) -> None:
    df = planted_4h[symbol]
    labels = classify(df, default_config.regime)
    scored = (df["bars_in"] >= SEGMENT_WARM_UP) & (labels != "unknown")
    assert scored.sum() > 3000
    opposite = {"trend_up": "trend_down", "trend_down": "trend_up"}
    for regime, floor in MIN_AGREEMENT.items():
        got = labels[scored & (df["planted"] == regime)]
        assert len(got) > 500
        assert (got == regime).mean() >= floor, (symbol, regime, got.value_counts(normalize=True))
        if regime in opposite:
            assert (got == opposite[regime]).mean() <= MAX_WRONG_DIRECTION
            assert (got == regime).mean() >= 3 * (got == opposite[regime]).mean()


def test_held_trends_need_no_future(planted_4h: dict[str, pd.DataFrame], default_config: AppConfig) -> None:
    # the hysteresis is a run that only looks back: a bar held at ADX < 25 gets its label from a prefix alone
    df = planted_4h["BTC"]
    labels = classify(df, default_config.regime)
    held = np.flatnonzero(labels.str.startswith("trend").to_numpy() & (df["adx"] < 25).to_numpy())
    assert held.size > 50
    for t in held[:: max(1, held.size // 8)]:
        assert classify(df.iloc[: t + 1], default_config.regime).iloc[t] == labels.iloc[t]


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
