"""features/build.py and features/fib.py: hand-derived values, the gap and warm-up rules, TA-Lib and pandas
oracles on real bars, and the column contract of the module docstring."""

from __future__ import annotations

import functools
import itertools
import re

import numpy as np
import pandas as pd
import pytest
import talib

from apex_rotation.bars import bars_frame, winsorize_returns
from apex_rotation.config import AppConfig, FeaturesConfig, load_config
from apex_rotation.features import build
from apex_rotation.features.build import (
    WINSOR_WINDOW,
    asof_at_close,
    bar_returns,
    build_features,
    model_returns,
)
from apex_rotation.features.fib import FIB_LEVELS, FIB_LOOKBACK, FIB_ZONES, fib_features
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.signals.rotation import CONTEXT_COLUMNS
from apex_rotation.store.audit import audit_bars
from apex_rotation.timeframes import bars_per_day, delta
from apex_rotation_tests.corr_oracles import loop_corr_beta, pandas_corr_beta
from apex_rotation_tests.shared import real_feather, requires_shared

CFG = load_config()
NAN = np.nan
T0 = pd.Timestamp("2024-03-01", tz="UTC")


def make_bars(
    close: list[float] | np.ndarray,
    timeframe: str = "4h",
    *,
    high: list[float] | np.ndarray | None = None,
    low: list[float] | np.ndarray | None = None,
    volume: list[float] | np.ndarray | None = None,
    filled: list[int] | tuple[int, ...] = (),
) -> pd.DataFrame:
    """Audited-looking bars from T0; rows in `filled` are flagged as audit gap fills."""
    close = np.asarray(close, dtype=float)
    n = close.size
    flags = np.zeros(n, dtype=bool)
    flags[list(filled)] = True
    open_ns = T0.value + np.arange(n, dtype=np.int64) * delta(timeframe).value
    columns = {
        "open": close,
        "high": close * 1.01 if high is None else np.asarray(high, dtype=float),
        "low": close * 0.99 if low is None else np.asarray(low, dtype=float),
        "close": close,
        "volume": np.full(n, 1000.0) if volume is None else np.asarray(volume, dtype=float),
        "filled": flags,
        "fill_reason": np.where(flags, "gap", "").astype(object),
        "outlier": np.zeros(n, dtype=bool),
    }
    return bars_frame(open_ns, columns, timeframe)


def random_walk(n: int, seed: int, filled: tuple[int, ...] = ()) -> np.ndarray:
    """A positive random walk; a filled bar repeats the previous close (as the audit fills it)."""
    close = 100.0 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0.0, 0.01, n)))
    for i in filled:
        close[i] = close[i - 1]
    return close


# ---------------------------------------------------------------- bar_returns


def test_bar_returns_nan_on_the_first_bar_and_on_and_after_a_filled_bar() -> None:
    close = [100.0, 110.0, 110.0, 121.0, 133.1, 133.1, 133.1, 146.41, 161.051]
    bars = make_bars(close, filled=[2, 5, 6])
    ret = bar_returns(bars)
    nan_at = [0, 2, 3, 5, 6, 7]  # first bar; filled 2 and the bar after; filled 5, 6 and the bar after
    assert ret.isna().to_numpy().nonzero()[0].tolist() == nan_at
    assert ret.iloc[[1, 4, 8]].tolist() == pytest.approx([0.1, 0.1, 0.1], rel=1e-12)
    assert ret.index.equals(bars.index)
    # without the audit flags only the first bar lacks a return: 121/110 − 1 = 0.1 on bar 3
    plain = bar_returns(bars.drop(columns=["filled"]))
    assert plain.isna().to_numpy().nonzero()[0].tolist() == [0]
    assert plain.iloc[3] == pytest.approx(0.1, rel=1e-12) and plain.iloc[2] == 0.0
    frame = build_features(bars, bench_returns=bench_of(bars), timeframe="4h", cfg=CFG)
    pd.testing.assert_series_equal(frame["ret"], ret, check_names=False)
    np.testing.assert_array_equal(frame["log_ret"], np.log1p(ret))


def bench_of(bars: pd.DataFrame) -> dict[str, pd.Series]:
    return {"BTC": model_returns(bars, CFG), "ETH": model_returns(bars, CFG)}


# ---------------------------------------------------------------- correlation: warm-up and gaps


def expected_nan(n: int, window: int, bad: set[int], min_coverage: float) -> np.ndarray:
    """NaN where the window ending at i is not full (bar 0 has no return: bars 1..window are the first
    full window) or fewer than `min_coverage` of its returns exist."""
    return np.array(
        [
            i < window or sum(j not in bad for j in range(i - window + 1, i + 1)) / window < min_coverage
            for i in range(n)
        ]
    )


def gap_fixture(timeframe: str) -> tuple[pd.DataFrame, dict[str, pd.Series], int, int]:
    """An alt (half BTC) with one filled bar, BTC with one filled bar 6 days later, a gap-free ETH."""
    per_day = bars_per_day(timeframe)
    alt_gap, btc_gap = 40 * per_day, 46 * per_day
    n = btc_gap + 30 * per_day + 3
    btc = make_bars(random_walk(n, 1, (btc_gap,)), timeframe, filled=[btc_gap])
    eth = make_bars(random_walk(n, 2), timeframe)
    alt_close = 0.5 * random_walk(n, 1, (btc_gap,)) + 0.5 * random_walk(n, 3, (alt_gap,))
    alt = make_bars(alt_close, timeframe, filled=[alt_gap])
    return alt, {"BTC": model_returns(btc, CFG), "ETH": model_returns(eth, CFG)}, alt_gap, btc_gap


@pytest.mark.parametrize("min_coverage", [1.0, 0.9])
@pytest.mark.parametrize(("timeframe", "w14", "w30"), [("1h", 336, 720), ("4h", 84, 180), ("1d", 14, 30)])
def test_correlation_needs_a_full_window_and_enough_traded_pairs(
    timeframe: str, w14: int, w30: int, min_coverage: float
) -> None:
    """1.0: a filled bar blanks every window holding it (the old rule). 0.9 (the default): such windows
    are computed over the pairs where both bars traded (one filled 1h bar no longer blanks a month), unless
    fewer than 90 % of the pairs remain (1d, 14 bars: 12 of 14)."""
    assert (14 * bars_per_day(timeframe), 30 * bars_per_day(timeframe)) == (w14, w30)
    alt, bench, alt_gap, btc_gap = gap_fixture(timeframe)
    n = len(alt)
    cfg = CFG.model_copy(update={"features": FeaturesConfig(corr_min_coverage=min_coverage)})
    frame = build_features(alt, bench_returns=bench, timeframe=timeframe, cfg=cfg)

    alt_bad = {0, alt_gap, alt_gap + 1}  # no return on the first bar, the filled bar and the one after
    own = winsorize_returns(bar_returns(alt), CFG.audit.winsor_z, WINSOR_WINDOW).to_numpy()
    for days, w in ((14, w14), (30, w30)):
        corr_eth, corr_btc = frame[f"corr_eth_{days}"], frame[f"corr_btc_{days}"]
        # warm-up: bars 1..w are the first full window of returns
        assert corr_eth.iloc[:w].isna().all() and np.isfinite(corr_eth.iloc[w])
        np.testing.assert_array_equal(corr_eth.isna(), expected_nan(n, w, alt_bad, min_coverage))
        # a benchmark's gap costs the correlations with that benchmark only
        btc_bad = alt_bad | {btc_gap, btc_gap + 1}
        np.testing.assert_array_equal(corr_btc.isna(), expected_nan(n, w, btc_bad, min_coverage))
        spans = corr_eth.iloc[alt_gap : alt_gap + w + 1]  # every window holding the alt's filled bar
        if min_coverage == 1.0:
            assert spans.isna().all()
        elif w > 14:  # 2 missing returns of >= 30: covered; of the 1d 14-bar window: only 12 of 14 remain
            assert spans.notna().all()
        for bench_name in ("btc", "eth"):
            corr, beta = frame[f"corr_{bench_name}_{days}"], frame[f"beta_{bench_name}_{days}"]
            np.testing.assert_array_equal(beta.isna(), corr.isna())
            assert corr.abs().max() <= 1.0
            want_corr, want_beta = loop_corr_beta(own, bench[bench_name.upper()].to_numpy(), w, min_coverage)
            assert_close(corr, want_corr, f"corr_{bench_name}_{days}", tol=1e-12)
            assert_close(beta, want_beta, f"beta_{bench_name}_{days}", tol=1e-12)
    assert 0.3 < frame["corr_btc_14"].median() < 0.9  # the alt is half BTC: a real, finite correlation


def test_correlation_never_uses_an_invented_return() -> None:
    """Whatever price the filled bar holds, the windows over it are the same: its returns are not pairs."""
    alt, bench, alt_gap, _ = gap_fixture("1h")
    frame = build_features(alt, bench_returns=bench, timeframe="1h", cfg=CFG)
    moved = alt.copy()
    moved.iloc[alt_gap, moved.columns.get_indexer(["open", "high", "low", "close"])] *= 1.05
    other = build_features(moved, bench_returns=bench, timeframe="1h", cfg=CFG)
    corr_cols = [c for c in frame if c.startswith(("corr_", "beta_"))]
    assert frame["corr_btc_30"].iloc[alt_gap : alt_gap + 721].notna().all()
    pd.testing.assert_frame_equal(frame[corr_cols], other[corr_cols])


# ---------------------------------------------------------------- funding and open interest as of the close


def test_asof_at_close_takes_the_latest_value_stamped_at_or_before_each_close() -> None:
    bars = make_bars([100.0, 101.0, 102.0, 103.0])  # 4h bars from 00:00; closes at 04, 08, 12, 16
    day = T0
    stamps = {
        day + pd.Timedelta("3h59min"): 1.0,
        day + pd.Timedelta("4h"): 2.0,  # exactly at bar 0's close: bar 0 sees it
        day + pd.Timedelta("5h"): 3.0,
        day + pd.Timedelta("7h59min59s"): 4.0,
        day + pd.Timedelta("8h") + pd.Timedelta("1us"): 5.0,  # just after bar 1's close: bar 2 first
        day + pd.Timedelta("17h"): 6.0,  # after the last close: never used
    }
    series = pd.DataFrame({"rate": list(stamps.values())}, index=pd.DatetimeIndex(list(stamps)))
    got = asof_at_close(series, bars, "rate")
    assert got.index.equals(bars.index)
    assert got.tolist() == [2.0, 4.0, 5.0, 5.0]
    # unsorted input is sorted first
    assert asof_at_close(series.iloc[::-1], bars, "rate").tolist() == [2.0, 4.0, 5.0, 5.0]
    # before the first stamp: NaN
    late = series.loc[series.index >= day + pd.Timedelta("5h")]
    np.testing.assert_array_equal(asof_at_close(late, bars, "rate"), [NAN, 4.0, 5.0, 5.0])
    for empty in (None, series.iloc[:0], series.rename(columns={"rate": "other"})):
        assert asof_at_close(empty, bars, "rate").isna().all()


def test_funding_and_open_interest_columns_are_as_of_close() -> None:
    bars = make_bars([100.0, 101.0, 102.0, 103.0])
    hours = T0 + pd.to_timedelta(np.arange(0, 20), unit="h")  # stamped every hour from bar 0's open
    funding = pd.DataFrame({"rate": np.arange(20) * 1e-5 - 5e-5}, index=hours)
    oi = pd.DataFrame({"open_interest": 1000.0 + 10.0 * np.arange(20)}, index=hours)
    frame = build_features(
        bars, bench_returns=bench_of(bars), timeframe="4h", cfg=CFG, funding=funding, open_interest=oi
    )
    # bar k closes at hour 4k + 4: the stamp at that hour is the latest one at or before the close
    np.testing.assert_allclose(frame["funding"], [-1e-5, 3e-5, 7e-5, 11e-5], rtol=1e-12)
    np.testing.assert_allclose(frame["funding_prev"], [NAN, -1e-5, 3e-5, 7e-5], rtol=1e-12)
    np.testing.assert_array_equal(frame["oi"], [1040.0, 1080.0, 1120.0, 1160.0])
    np.testing.assert_allclose(frame["oi_chg"], [NAN, 40 / 1040, 40 / 1080, 40 / 1120], rtol=1e-12)
    without = build_features(bars, bench_returns=bench_of(bars), timeframe="4h", cfg=CFG)
    assert without[["funding", "funding_prev", "oi", "oi_chg"]].isna().all().all()


# ---------------------------------------------------------------- hh_prev


def test_hh_prev_is_the_highest_high_of_the_lookback_bars_before_the_current_one() -> None:
    cfg = load_config(overrides={"market_filters": {"breakout_lookback": 3}})
    high = [10.0, 12.0, 11.0, 15.0, 14.0, 13.0, 16.0]
    bars = make_bars([9.0] * 7, high=high, low=[8.0] * 7)
    frame = build_features(bars, bench_returns=bench_of(bars), timeframe="4h", cfg=cfg)
    np.testing.assert_array_equal(frame["hh_prev"], [NAN, NAN, NAN, 12.0, 15.0, 15.0, 15.0])
    # a record high is never its own reference, so it can break out
    assert (frame["hh_prev"] < bars["high"]).tolist() == [False, False, False, True, False, False, True]


# ---------------------------------------------------------------- oracles on real bars


@functools.cache
def real_bars(symbol: str, timeframe: str) -> pd.DataFrame:
    raw = pd.read_feather(real_feather(symbol, timeframe)).rename(columns={"date": "open_time"})
    now = pd.Timestamp("2025-01-01", tz="UTC")
    bars = clean_ohlcv(raw, symbol=symbol, timeframe=timeframe, source="files", now=now).bars
    audited, report = audit_bars(bars, symbol=symbol, timeframe=timeframe, cfg=CFG.audit)
    assert report.filled == 0  # a gap-free series
    return audited


@functools.cache
def real_features(symbol: str, timeframe: str, cfg: AppConfig = CFG) -> pd.DataFrame:
    bench = {b: model_returns(real_bars(b, timeframe), cfg) for b in ("BTC", "ETH")}
    return build_features(real_bars(symbol, timeframe), bench_returns=bench, timeframe=timeframe, cfg=cfg)


def assert_close(got: pd.Series, want: np.ndarray | pd.Series, what: str, tol: float = 1e-9) -> None:
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions differ")
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol, equal_nan=True, err_msg=what)


@requires_shared
@pytest.mark.parametrize(("symbol", "timeframe"), [("SOL", "1h"), ("DOGE", "4h"), ("ETH", "1d")])
def test_indicator_columns_equal_talib_on_real_bars(symbol: str, timeframe: str) -> None:
    bars = real_bars(symbol, timeframe)
    frame = real_features(symbol, timeframe)
    h, lo, c, v = (bars[k].to_numpy() for k in ("high", "low", "close", "volume"))
    assert_close(frame["rsi"], talib.RSI(c, 14), "rsi")
    assert_close(frame["atr"], talib.ATR(h, lo, c, 14), "atr")
    for n in (20, 50, 200):
        assert_close(frame[f"ema_{n}"], talib.EMA(c, n), f"ema_{n}")
    for name, want in zip(("macd", "macd_signal", "macd_hist"), talib.MACD(c, 12, 26, 9), strict=True):
        assert_close(frame[name], want, name)
    assert_close(frame["adx"], talib.ADX(h, lo, c, 14), "adx")
    assert_close(frame["plus_di"], talib.PLUS_DI(h, lo, c, 14), "plus_di")
    assert_close(frame["minus_di"], talib.MINUS_DI(h, lo, c, 14), "minus_di")
    assert_close(frame["vol_ema20"], pd.Series(talib.EMA(v, 20)).shift(1).to_numpy(), "vol_ema20")
    assert_close(frame["volume_trend"], talib.EMA(v, 10) / talib.EMA(v, 50) - 1.0, "volume_trend")
    volume = bars["volume"]
    baseline = volume.rolling(20)
    assert_close(frame["vol_z"], (volume - baseline.mean().shift(1)) / baseline.std().shift(1), "vol_z")
    assert_close(frame["hh_prev"], bars["high"].shift(1).rolling(20).max(), "hh_prev", tol=0.0)
    assert frame["ema_200"].first_valid_index() == bars.index[199]


@requires_shared
def test_correlation_and_beta_equal_pandas_on_winsorized_real_returns() -> None:
    sol = real_bars("SOL", "1h")
    frame = real_features("SOL", "1h")
    raw = bar_returns(sol)
    own = winsorize_returns(raw, CFG.audit.winsor_z, WINSOR_WINDOW)
    assert (own != raw).sum() >= 10  # winsorizing clips real bars here, so the oracle can tell
    for bench_name in ("ETH", "BTC"):
        bench = model_returns(real_bars(bench_name, "1h"), CFG).reindex(sol.index)
        assert bench.iloc[-20:].isna().all()  # BTC and ETH end 22 h before SOL: the last pairs are missing
        for days, w in ((14, 336), (30, 720)):
            corr, beta = pandas_corr_beta(own, bench, w, CFG.features.corr_min_coverage)
            name = f"{bench_name.lower()}_{days}"
            assert_close(frame[f"corr_{name}"], corr, f"corr_{name}", tol=1e-10)
            assert_close(frame[f"beta_{name}"], beta, f"beta_{name}", tol=1e-10)
            assert frame[f"corr_{name}"].first_valid_index() == sol.index[w]
            assert frame[f"corr_{name}"].iloc[-20:].notna().all()  # 22 of 336 (720) missing: >= 90 % remain
        # on raw returns the answer differs: the columns really use winsorized returns
        raw_corr = raw.rolling(336).corr(bench)
        assert (frame[f"corr_{bench_name.lower()}_14"] - raw_corr).abs().max() > 1e-4


# ---------------------------------------------------------------- Fibonacci zones


def zone_of(pos: float) -> str:
    """The zone from FIB_LEVELS: [level_i, level_i+1), the last one closed at 1."""
    for i, name in enumerate(FIB_ZONES):
        lo, hi = FIB_LEVELS[i], FIB_LEVELS[i + 1]
        if lo <= pos < hi or (i == len(FIB_ZONES) - 1 and pos == hi):
            return name
    raise ValueError(pos)


# five bars of history; an up-swing (low 1000 on bar 0, then the high 2000 on bar 3) and a down-swing
UP = ([1200.0, 1400.0, 1600.0, 2000.0, 1900.0], [1000.0, 1100.0, 1300.0, 1500.0, 1700.0])
DOWN = ([2000.0, 1800.0, 1600.0, 1400.0, 1200.0], [1800.0, 1500.0, 1300.0, 1000.0, 1100.0])


def fib_last(history: tuple[list[float], list[float]], close: float) -> pd.Series:
    """fib_features' row for a bar closing at `close` after `history` (its own high/low reach past it)."""
    highs, lows = history
    high = pd.Series([*highs, max(close, 2500.0)])
    low = pd.Series([*lows, min(close, 500.0)])
    closes = pd.Series([(h + lo) / 2 for h, lo in zip(highs, lows, strict=True)] + [close])
    out = fib_features(high, low, closes, lookback=len(highs))
    assert out["fib_swing_high"].iloc[:-1].isna().all() and out["fib_zone"].iloc[:-1].isna().all()
    assert not out["fib_swing_up"].iloc[:-1].any()
    return out.iloc[-1]


@pytest.mark.parametrize(
    ("history", "close", "pos", "zone"),
    [
        pytest.param(UP, 2001.0, -0.001, "above", id="up-breakout-above-the-swing-high"),
        pytest.param(UP, 2000.0, 0.0, "0-23.6", id="up-at-the-high"),
        pytest.param(UP, 1500.0, 0.5, "50-61.8", id="up-50pct-retracement"),
        pytest.param(UP, 1501.0, 0.499, "38.2-50", id="up-just-short-of-50pct"),
        pytest.param(UP, 1382.0, 0.618, "61.8-78.6", id="up-at-61.8"),
        pytest.param(UP, 1000.0, 1.0, "78.6-100", id="up-full-retracement"),
        pytest.param(UP, 999.0, 1.001, "below", id="up-below-the-swing-low"),
        pytest.param(DOWN, 1500.0, 0.5, "50-61.8", id="down-50pct-bounce"),
        pytest.param(DOWN, 1236.0, 0.236, "23.6-38.2", id="down-bounce-at-23.6"),
        pytest.param(DOWN, 2001.0, 1.001, "above", id="down-breakout-above-the-swing-high"),
        pytest.param(DOWN, 999.0, -0.001, "below", id="down-below-the-swing-low"),
    ],
)
def test_fib_zone_hand_values(history: tuple, close: float, pos: float, zone: str) -> None:
    row = fib_last(history, close)
    # the current bar's own high 2500 / low 500 is outside the swing: the swing is the bars before it
    assert (row["fib_swing_high"], row["fib_swing_low"]) == (2000.0, 1000.0)
    assert row["fib_swing_up"] == (history is UP)
    assert row["fib_pos"] == pytest.approx(pos, abs=1e-12)
    assert row["fib_zone"] == zone
    if zone not in ("above", "below"):
        assert zone_of(row["fib_pos"]) == zone


def test_fib_every_level_opens_its_zone() -> None:
    """pos = round(1000·L)/1000 is exactly the double L: each level belongs to the zone above it."""
    for i, level in enumerate(FIB_LEVELS):
        at = fib_last(UP, 2000.0 - round(1000 * level))
        assert at["fib_pos"] == level
        assert at["fib_zone"] == FIB_ZONES[min(i, len(FIB_ZONES) - 1)] == zone_of(level)
        if i:
            below = fib_last(UP, 2000.0 - round(1000 * level) + 1)  # pos just under the level
            assert below["fib_zone"] == FIB_ZONES[i - 1] == zone_of(below["fib_pos"])


def test_fib_swing_direction_ties_go_to_the_latest_extreme() -> None:
    # highs tie on bars 0 and 3, the low is on bar 2: the later high decides, an up-swing
    up = fib_last(
        ([2000.0, 1500.0, 1400.0, 2000.0, 1300.0], [1500.0, 1200.0, 1000.0, 1600.0, 1100.0]), 1300.0
    )
    assert up["fib_swing_up"] and up["fib_pos"] == 0.7 and up["fib_zone"] == "61.8-78.6"
    # lows tie on bars 1 and 4, the high is on bar 3: the later low decides, a down-swing
    down = fib_last(
        ([1500.0, 1200.0, 1400.0, 2000.0, 1300.0], [1200.0, 1000.0, 1100.0, 1600.0, 1000.0]), 1700.0
    )
    assert not down["fib_swing_up"] and down["fib_pos"] == 0.7 and down["fib_zone"] == "61.8-78.6"


@requires_shared
def test_build_features_fib_columns_use_the_default_lookback() -> None:
    bars = real_bars("DOGE", "4h")
    frame = real_features("DOGE", "4h")
    want = fib_features(bars["high"], bars["low"], bars["close"], lookback=FIB_LOOKBACK)
    pd.testing.assert_frame_equal(frame[list(want.columns)], want, check_exact=True)
    assert frame["fib_swing_high"].first_valid_index() == bars.index[FIB_LOOKBACK]
    assert set(frame["fib_zone"].dropna()) == {*FIB_ZONES, "above", "below"}


# ---------------------------------------------------------------- the column contract


def promised_columns() -> list[str]:
    """The columns listed in build.py's docstring, braces expanded (corr_{btc,eth}_{14,30} → 4 names)."""
    doc = build.__doc__
    assert doc is not None
    text = " ".join(doc.split("Columns (also the contract of `apex_rotation.signals`):", 1)[1].split())
    names = []
    for item in re.split(r",\s*(?![^{]*\})", text.rstrip(". ")):
        parts = re.split(r"(\{[^}]*\})", item.strip())
        options = [p[1:-1].split(",") if p.startswith("{") else [p] for p in parts]
        names += ["".join(choice) for choice in itertools.product(*options)]
    return names


def test_features_frame_has_exactly_the_documented_columns() -> None:
    promised = promised_columns()
    assert len(promised) == len(set(promised)) == 34
    assert {"corr_btc_14", "beta_eth_30", "fib_zone", "oi_chg"} <= set(promised)
    bars = make_bars(random_walk(60, 5))
    frame = build_features(bars, bench_returns=bench_of(bars), timeframe="1d", cfg=CFG)
    assert sorted(frame.columns) == sorted(promised) and frame.columns.is_unique
    assert frame.index.equals(bars.index)
    # everything the scanner's context reads that the bars do not carry comes from here
    assert set(CONTEXT_COLUMNS) - {"close", "volume"} <= set(frame.columns)
