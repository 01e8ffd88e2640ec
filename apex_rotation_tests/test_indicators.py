"""Indicators against TA-Lib (the oracle) on every real fixture, the gap policy, and no lookahead."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import talib

from apex_rotation.features import indicators as ind
from apex_rotation_tests.shared import AURANG_2025H1, GENETRADER_2024, real_feather, requires_shared

SYMBOLS = [
    "BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ",
    "AVAX", "MATIC", "XRP", "LTC", "DOGE", "SUI", "SEI", "TIA",
]  # fmt: skip
TOL = 1e-9  # abs or rel


def load(symbol: str, tf: str, dataset=GENETRADER_2024) -> pd.DataFrame:
    return pd.read_feather(real_feather(symbol, tf, dataset)).set_index("date")


def assert_matches(ours: np.ndarray, ref: np.ndarray, what: str) -> None:
    """Same NaN positions, values equal to 1e-9 absolute or relative."""
    ours, ref = np.asarray(ours), np.asarray(ref)
    assert ours.shape == ref.shape, what
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref), err_msg=f"{what}: NaN positions differ")
    np.testing.assert_allclose(ours, ref, rtol=TOL, atol=TOL, equal_nan=True, err_msg=what)


def first_valid(a: np.ndarray) -> int:
    return int(np.flatnonzero(~np.isnan(np.asarray(a)))[0])


# --------------------------------------------------------------------------------------------------------
# TA-Lib equality on the real fixtures
# --------------------------------------------------------------------------------------------------------

# (name, ours, talib) over an OHLCV frame; each returns one array or a tuple of arrays.
CASES: list[tuple[str, Callable, Callable]] = [
    ("sma5", lambda d: ind.sma(d.close, 5), lambda d: talib.SMA(d.close, 5)),
    ("ema9", lambda d: ind.ema(d.close, 9), lambda d: talib.EMA(d.close, 9)),
    ("ema20", lambda d: ind.ema(d.close, 20), lambda d: talib.EMA(d.close, 20)),
    ("ema200", lambda d: ind.ema(d.close, 200), lambda d: talib.EMA(d.close, 200)),
    ("rsi14", lambda d: ind.rsi(d.close), lambda d: talib.RSI(d.close, 14)),
    ("rsi2", lambda d: ind.rsi(d.close, 2), lambda d: talib.RSI(d.close, 2)),
    ("atr14", lambda d: ind.atr(d.high, d.low, d.close), lambda d: talib.ATR(d.high, d.low, d.close, 14)),
    ("atr1", lambda d: ind.atr(d.high, d.low, d.close, 1), lambda d: talib.ATR(d.high, d.low, d.close, 1)),
    ("adx14", lambda d: ind.adx(d.high, d.low, d.close), lambda d: talib.ADX(d.high, d.low, d.close, 14)),
    ("adx5", lambda d: ind.adx(d.high, d.low, d.close, 5), lambda d: talib.ADX(d.high, d.low, d.close, 5)),
    (
        "dmi14",
        lambda d: ind.dmi(d.high, d.low, d.close),
        lambda d: (
            talib.PLUS_DI(d.high, d.low, d.close, 14),
            talib.MINUS_DI(d.high, d.low, d.close, 14),
            talib.ADX(d.high, d.low, d.close, 14),
        ),
    ),
    ("macd", lambda d: ind.macd(d.close), lambda d: talib.MACD(d.close, 12, 26, 9)),
    ("macd5_35_5", lambda d: ind.macd(d.close, 5, 35, 5), lambda d: talib.MACD(d.close, 5, 35, 5)),
]


@requires_shared
@pytest.mark.parametrize("tf", ["1h", "4h", "1d"])
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_equals_talib_on_real_bars(symbol: str, tf: str) -> None:
    d = load(symbol, tf)
    bars = SimpleNamespace(**{k: d[k].to_numpy() for k in ("high", "low", "close")})
    for name, ours, theirs in CASES:
        got, want = ours(bars), theirs(bars)
        if not isinstance(got, tuple):
            got, want = (got,), (want,)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_matches(g, w, f"{symbol} {tf} {name}[{i}]")


@requires_shared
@pytest.mark.parametrize("symbol", ["BTC", "POL", "SEI"])
def test_equals_talib_on_2025_bars(symbol: str) -> None:
    d = load(symbol, "1h", AURANG_2025H1)
    h, lo, c = d.high.to_numpy(), d.low.to_numpy(), d.close.to_numpy()
    assert_matches(ind.rsi(c), talib.RSI(c, 14), "rsi")
    assert_matches(ind.adx(h, lo, c), talib.ADX(h, lo, c, 14), "adx")
    for g, w in zip(ind.macd(c), talib.MACD(c, 12, 26, 9), strict=True):
        assert_matches(g, w, "macd")


@requires_shared
def test_first_output_index_matches_talib_conventions() -> None:
    d = load("BTC", "1h")
    h, lo, c = d.high.to_numpy(), d.low.to_numpy(), d.close.to_numpy()
    assert first_valid(ind.sma(c, 20)) == 19
    assert first_valid(ind.ema(c, 20)) == 19
    assert first_valid(ind.rsi(c, 14)) == 14
    assert first_valid(ind.atr(h, lo, c, 14)) == 14
    assert first_valid(ind.adx(h, lo, c, 14)) == 27
    plus_di, minus_di, _ = ind.dmi(h, lo, c, 14)
    assert first_valid(plus_di) == first_valid(minus_di) == 14
    assert [first_valid(a) for a in ind.macd(c)] == [33, 33, 33]
    # The MACD seeding quirk is real: TA-Lib's MACD is not EMA12 − EMA26 at its first output (here 838.5
    # against 898.6), so matching it needs the late fast-EMA seed.
    naive = talib.EMA(c, 12) - talib.EMA(c, 26)
    assert abs(ind.macd(c)[0][33] - naive[33]) > 0.05 * abs(naive[33])


# --------------------------------------------------------------------------------------------------------
# Hand-derived values
# --------------------------------------------------------------------------------------------------------


def test_ema_sma_hand_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
    # EMA(3), k = 0.5: seed mean(1, 2, 3) = 2 at index 2, then 2 + (4−2)/2, 3 + (5−3)/2, 4 + (10−4)/2.
    np.testing.assert_array_equal(ind.ema(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0, 7.0])
    np.testing.assert_array_equal(ind.sma(x, 3), [np.nan, np.nan, 2.0, 3.0, 4.0, 19.0 / 3.0])


def test_rsi_hand_values() -> None:
    # Changes: +1, +1, −2, +2 with n = 3: first RSI (index 3) from means gain 2/3, loss 2/3 → 50.
    # Then Wilder: gain = (2/3·2 + 2)/3 = 10/9, loss = (2/3·2 + 0)/3 = 4/9 → 100·(10/9)/(14/9) = 500/7.
    x = np.array([10.0, 11.0, 12.0, 10.0, 12.0])
    np.testing.assert_allclose(ind.rsi(x, 3), [np.nan, np.nan, np.nan, 50.0, 500.0 / 7.0], rtol=1e-14)
    assert np.all(ind.rsi(np.full(30, 5.0), 14)[14:] == 0.0)  # TA-Lib: no movement at all → 0
    assert np.all(ind.rsi(np.arange(30.0), 14)[14:] == 100.0)


def test_atr_hand_values() -> None:
    # TR from bar 1: bar 1 max(12−9, |12−10|, |9−10|) = 3; bar 2 gaps up: max(15−14, |15−11|, |14−11|) = 4;
    # bar 3: max(16−12, |16−14|, |12−14|) = 4. ATR(2): mean(3, 4) = 3.5 at index 2, then (3.5 + 4)/2 = 3.75.
    high = np.array([11.0, 12.0, 15.0, 16.0])
    low = np.array([9.0, 9.0, 14.0, 12.0])
    close = np.array([10.0, 11.0, 14.0, 15.0])
    np.testing.assert_allclose(ind.atr(high, low, close, 2), [np.nan, np.nan, 3.5, 3.75], rtol=1e-15)


def test_adx_of_a_steady_uptrend_is_100() -> None:
    # Every bar: +DM = 1, −DM = 0, so −DI = 0 and DX = 100 from the first DI on.
    high = np.arange(10.0, 50.0)
    plus_di, minus_di, adx = ind.dmi(high, high - 2.0, high - 1.0, 5)
    assert np.isnan(adx[8]) and np.all(adx[9:] == 100.0)
    assert np.all(minus_di[5:] == 0.0) and np.all(plus_di[5:] > 0.0)


# --------------------------------------------------------------------------------------------------------
# Gap policy: restart after a missing bar (TA-Lib itself turns everything after it into NaN)
# --------------------------------------------------------------------------------------------------------


def per_run_talib(fn: Callable[..., np.ndarray], valid: np.ndarray, *inputs: np.ndarray) -> np.ndarray:
    """TA-Lib applied to each maximal run of valid bars on its own, NaN at missing bars."""
    out = np.full(valid.size, np.nan)
    i = 0
    while i < valid.size:
        if not valid[i]:
            i += 1
            continue
        j = i
        while j < valid.size and valid[j]:
            j += 1
        out[i:j] = fn(*(a[i:j] for a in inputs))
        i = j
    return out


@requires_shared
def test_gap_restarts_each_indicator_like_talib_on_each_run() -> None:
    d = load("SOL", "1h").iloc[:1500]
    h, lo, c = d.high.to_numpy().copy(), d.low.to_numpy().copy(), d.close.to_numpy().copy()
    c[:7] = np.nan  # late start
    c[400] = np.nan  # one missing bar
    c[800:830] = np.nan  # an outage
    h[1200] = np.nan  # only one input missing: the bar counts as missing
    c[1390:1392] = np.nan
    valid_c = np.isfinite(c)
    valid_hlc = valid_c & np.isfinite(h) & np.isfinite(lo)

    assert np.isnan(talib.EMA(c, 20)[500])  # TA-Lib: NaN forever after bar 400
    assert_matches(ind.ema(c, 20), per_run_talib(lambda x: talib.EMA(x, 20), valid_c, c), "ema")
    assert_matches(ind.sma(c, 20), per_run_talib(lambda x: talib.SMA(x, 20), valid_c, c), "sma")
    assert_matches(ind.rsi(c), per_run_talib(lambda x: talib.RSI(x, 14), valid_c, c), "rsi")
    for k in range(3):
        want = per_run_talib(lambda x, k=k: talib.MACD(x, 12, 26, 9)[k], valid_c, c)
        assert_matches(ind.macd(c)[k], want, f"macd[{k}]")
    assert_matches(ind.atr(h, lo, c), per_run_talib(lambda *a: talib.ATR(*a, 14), valid_hlc, h, lo, c), "atr")
    ref_fns = [talib.PLUS_DI, talib.MINUS_DI, talib.ADX]
    for got, fn in zip(ind.dmi(h, lo, c), ref_fns, strict=True):
        assert_matches(got, per_run_talib(lambda *a, fn=fn: fn(*a, 14), valid_hlc, h, lo, c), fn.__name__)


def test_gap_reseeding_lengths() -> None:
    """After a missing bar at g, each indicator is NaN until it has its lookback of valid bars again."""
    rng = np.random.default_rng(3)
    c = 100.0 + np.cumsum(rng.normal(0.0, 1.0, 300))
    h, lo = c + 1.0, c - 1.0
    g = 100
    c[g] = np.nan
    assert first_valid(ind.ema(c, 20)[g:]) == 20  # bars g+1..g+20 re-seed
    assert first_valid(ind.rsi(c, 14)[g:]) == 15
    assert first_valid(ind.atr(h, lo, c, 14)[g:]) == 15
    assert first_valid(ind.adx(h, lo, c, 14)[g:]) == 28
    assert first_valid(ind.macd(c)[2][g:]) == 34
    assert np.all(np.isfinite(ind.ema(c, 20)[19:g]))  # before the gap: unaffected


def test_all_nan_and_too_short_inputs_give_nan() -> None:
    assert np.isnan(ind.ema(np.full(50, np.nan), 10)).all()
    assert np.isnan(ind.rsi(np.arange(14.0), 14)).all()  # needs 15 bars
    assert np.isnan(ind.macd(np.arange(33.0))[0]).all()  # needs 34 bars
    assert ind.ema(np.array([]), 3).size == 0


# --------------------------------------------------------------------------------------------------------
# No lookahead: truncating after t leaves rows <= t unchanged
# --------------------------------------------------------------------------------------------------------


def all_outputs(h: np.ndarray, lo: np.ndarray, c: np.ndarray, v: np.ndarray) -> list[np.ndarray]:
    return [
        ind.sma(c, 20),
        ind.ema(c, 20),
        ind.rsi(c),
        ind.atr(h, lo, c),
        *ind.dmi(h, lo, c),
        *ind.macd(c),
        ind.vol_z(v),
    ]


@requires_shared
def test_truncation_after_t_leaves_row_t_unchanged() -> None:
    d = load("ARB", "4h")
    h, lo, c, v = (d[k].to_numpy().copy() for k in ("high", "low", "close", "volume"))
    c[300] = np.nan  # also across a gap
    full = all_outputs(h, lo, c, v)
    for t in (5, 27, 33, 299, 300, 301, 340, 1000, len(c) - 2):
        cut = all_outputs(h[: t + 1], lo[: t + 1], c[: t + 1], v[: t + 1])
        for f, p in zip(full, cut, strict=True):
            np.testing.assert_array_equal(p, f[: t + 1])


# --------------------------------------------------------------------------------------------------------
# vol_z
# --------------------------------------------------------------------------------------------------------


def test_vol_z_hand_value_excludes_current_bar() -> None:
    v = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 10.0])
    # Baseline 1..5: mean 3, sample std sqrt(2.5); z = (10 − 3)/sqrt(2.5).
    got = ind.vol_z(v, 5)
    assert np.isnan(got[:5]).all()
    assert got[5] == pytest.approx(7.0 / np.sqrt(2.5), rel=1e-15)
    assert np.isnan(ind.vol_z(np.full(10, 3.0), 5)).all()  # constant baseline: std 0 → NaN


@requires_shared
def test_vol_z_equals_pandas_and_handles_gaps() -> None:
    v = load("DOGE", "1h").volume.copy()
    v.iloc[1000] = np.nan
    prior = v.shift(1).rolling(20)
    want = (v - prior.mean()) / prior.std()
    got = ind.vol_z(v, 20)
    assert isinstance(got, pd.Series) and got.index.equals(v.index)
    assert_matches(got.to_numpy(), want.to_numpy(), "vol_z")
    assert np.isnan(got.iloc[1000:1021]).all() and np.isfinite(got.iloc[1021])


# --------------------------------------------------------------------------------------------------------
# Wrappers
# --------------------------------------------------------------------------------------------------------


def test_series_in_series_out_and_int_input() -> None:
    idx = pd.date_range("2024-01-01", periods=40, freq="1h", tz="UTC")
    close = pd.Series(np.arange(40) * 1.5 + 10.0, index=idx)
    out = ind.ema(close, 10)
    assert isinstance(out, pd.Series) and out.index.equals(idx) and out.name == "ema_10"
    np.testing.assert_array_equal(out.to_numpy(), ind.ema(close.to_numpy(), 10))
    m, s, hist = ind.macd(close, 3, 10, 4)
    assert (m.name, s.name, hist.name) == ("macd", "macd_signal", "macd_hist")
    np.testing.assert_array_equal(ind.ema(np.arange(40), 10), ind.ema(np.arange(40.0), 10))


def test_bad_arguments_raise() -> None:
    x = np.arange(50.0)
    with pytest.raises(ValueError, match="n must be"):
        ind.ema(x, 1)
    with pytest.raises(ValueError, match="fast"):
        ind.macd(x, 26, 12)
    with pytest.raises(ValueError, match="differ in length"):
        ind.atr(x, x[:-1], x)
    with pytest.raises(ValueError, match="1-D"):
        ind.rsi(x.reshape(5, 10))
