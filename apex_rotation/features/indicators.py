"""Technical indicators that reproduce TA-Lib exactly (definitions, seeding, first output index).

TA-Lib is the reference the signals were designed with, so each recursion is seeded the way TA-Lib seeds it
(see `../shared/notes/indicator-conventions.md`): EMA from the SMA of its first n values, RSI/ATR/ADX with
Wilder smoothing seeded from plain means/sums, MACD's fast EMA seeded late (at the slow EMA's first index).
On gap-free data SMA, EMA and MACD follow TA-Lib's operation order and equal its (FMA-built) binary bit for
bit; the Wilder recursions (RSI, ATR, ADX/DI) compute avg·(n−1)/n + v/n rather than (avg·(n−1) + v)/n,
which keeps a division out of the loop-carried chain (2.5x faster) and agrees with TA-Lib to ~5e-15.

Gap policy (where we deliberately differ from TA-Lib, which turns every value after a mid-series NaN into
NaN): a bar is missing when any of its inputs is NaN or ±inf. The output is NaN at a missing bar, and the
recursion restarts after it: each maximal run of valid bars is computed independently, exactly as TA-Lib
would compute that run on its own, so after a gap the indicator is NaN again until it has re-seeded on
enough valid bars (its lookback). Leading NaNs (late listings) are the same rule, and there TA-Lib agrees.

Every value at bar t depends only on bars <= t. Wrappers take a 1-D numpy array or pandas Series (any real
dtype) and return float64 of the same kind; a Series keeps its index.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

ArrayLike = np.ndarray | pd.Series

# --------------------------------------------------------------------------------------------------------
# Numba settings and the gap policy. Each public kernel walks the input run by run: `_x_run(..., s, e, out)`
# sees only valid bars [s, e) and writes all of out[s:e] (NaN before its first value); gap bars get NaN.
# --------------------------------------------------------------------------------------------------------

# FMA contraction only: TA-Lib's binaries are built with it (on an FMA CPU, EMA then matches bit for bit). It
# keeps IEEE NaN/inf semantics, which the run finding relies on (full fastmath would assume no NaNs).
_FM = {"contract"}


@njit(cache=True, fastmath=_FM)
def _run_end1(x: np.ndarray, s: int) -> int:
    e = s
    while e < x.size and np.isfinite(x[e]):
        e += 1
    return e


@njit(cache=True, fastmath=_FM)
def _run_end3(h: np.ndarray, lo: np.ndarray, c: np.ndarray, s: int) -> int:
    e = s
    while e < h.size and np.isfinite(h[e]) and np.isfinite(lo[e]) and np.isfinite(c[e]):
        e += 1
    return e


@njit(cache=True, fastmath=_FM)
def _nan_fill(out: np.ndarray, s: int, e: int) -> None:
    for i in range(s, e):
        out[i] = np.nan


# --------------------------------------------------------------------------------------------------------
# SMA / EMA
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _sma_run(x: np.ndarray, n: int, s: int, e: int, out: np.ndarray) -> None:
    """TA_INT_SMA: a running sum, first output at s + n − 1."""
    first = s + n - 1
    _nan_fill(out, s, min(first, e))
    if e <= first:
        return
    total = 0.0
    for i in range(s, first):
        total += x[i]
    trailing = s
    for i in range(first, e):
        total += x[i]
        value = total
        total -= x[trailing]
        trailing += 1
        out[i] = value / n


@njit(cache=True, fastmath=_FM)
def _ema_run(x: np.ndarray, n: int, s: int, e: int, out: np.ndarray) -> None:
    """TA_INT_EMA: seeded with the SMA of the first n values (output at s + n − 1), then e += k·(x − e)."""
    first = s + n - 1
    _nan_fill(out, s, min(first, e))
    if e <= first:
        return
    k = 2.0 / (n + 1)
    total = 0.0
    for i in range(s, first + 1):
        total += x[i]
    prev = total / n
    out[first] = prev
    for i in range(first + 1, e):
        prev = (x[i] - prev) * k + prev
        out[i] = prev


@njit(cache=True, fastmath=_FM)
def _sma_nb(x: np.ndarray, n: int, out: np.ndarray) -> None:
    s = 0
    while s < x.size:
        e = _run_end1(x, s)
        _sma_run(x, n, s, e, out)
        if e < x.size:
            out[e] = np.nan
        s = e + 1


@njit(cache=True, fastmath=_FM)
def _ema_nb(x: np.ndarray, n: int, out: np.ndarray) -> None:
    s = 0
    while s < x.size:
        e = _run_end1(x, s)
        _ema_run(x, n, s, e, out)
        if e < x.size:
            out[e] = np.nan
        s = e + 1


# --------------------------------------------------------------------------------------------------------
# RSI
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _rsi_run(x: np.ndarray, n: int, s: int, e: int, out: np.ndarray) -> None:
    """TA_RSI: plain means of the first n gains/losses (output at s + n), then Wilder; 0 when flat.

    Wilder's `avg = (avg·(n−1) + v)/n` is computed as `avg·a + v·b` (a = (n−1)/n, b = 1/n): the same value to
    ~1e-15 without a division in the loop-carried chain, which made it 2.5x slower than TA-Lib.
    """
    first = s + n
    _nan_fill(out, s, min(first, e))
    if e <= first:
        return
    gain = 0.0
    loss = 0.0
    prev = x[s]
    for i in range(s + 1, first + 1):
        d = x[i] - prev
        prev = x[i]
        if d < 0:
            loss -= d
        else:
            gain += d
    loss /= n
    gain /= n
    total = gain + loss
    out[first] = 100.0 * (gain / total) if total != 0.0 else 0.0
    a = (n - 1) / n
    b = 1.0 / n
    for i in range(first + 1, e):
        d = x[i] - prev
        prev = x[i]
        up = d if d > 0.0 else 0.0
        down = -d if d < 0.0 else 0.0
        gain = gain * a + up * b
        loss = loss * a + down * b
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0


@njit(cache=True, fastmath=_FM)
def _rsi_nb(x: np.ndarray, n: int, out: np.ndarray) -> None:
    s = 0
    while s < x.size:
        e = _run_end1(x, s)
        _rsi_run(x, n, s, e, out)
        if e < x.size:
            out[e] = np.nan
        s = e + 1


# --------------------------------------------------------------------------------------------------------
# ATR
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _true_range(h: float, lo: float, prev_close: float) -> float:
    """TA-Lib's TRUE_RANGE: max(h − l, |h − prev close|, |l − prev close|)."""
    r = h - lo
    t = abs(h - prev_close)
    if t > r:
        r = t
    t = abs(lo - prev_close)
    if t > r:
        r = t
    return r


@njit(cache=True, fastmath=_FM)
def _atr_run(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int, s: int, e: int, out: np.ndarray) -> None:
    """TA_ATR: TR from the run's 2nd bar; first ATR = mean(TR[1..n]) at s + n, then Wilder, see `_rsi_run`."""
    first = s + n
    _nan_fill(out, s, min(first, e))
    if e <= first:
        return
    total = 0.0
    for i in range(s + 1, first + 1):
        total += _true_range(h[i], lo[i], c[i - 1])
    prev = total / n
    out[first] = prev
    a = (n - 1) / n
    b = 1.0 / n
    for i in range(first + 1, e):
        prev = prev * a + _true_range(h[i], lo[i], c[i - 1]) * b
        out[i] = prev


@njit(cache=True, fastmath=_FM)
def _atr_nb(h: np.ndarray, lo: np.ndarray, c: np.ndarray, n: int, out: np.ndarray) -> None:
    s = 0
    while s < h.size:
        e = _run_end3(h, lo, c, s)
        _atr_run(h, lo, c, n, s, e, out)
        if e < h.size:
            out[e] = np.nan
        s = e + 1


# --------------------------------------------------------------------------------------------------------
# ADX / +DI / −DI
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _dmi_run(
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    n: int,
    s: int,
    e: int,
    adx_out: np.ndarray,
    pdi_out: np.ndarray,
    mdi_out: np.ndarray,
    with_di: bool,
) -> None:
    """TA_ADX (and TA_PLUS_DI/TA_MINUS_DI when `with_di`).

    +DM, −DM and TR are Wilder *sums* seeded with the plain sums over the run's bars 1..n−1; DIs from bar n;
    the first ADX (bar 2n−1) is the mean of DX over bars n..2n−1, then Wilder. As in TA-Lib, a bar whose
    TR sum or DI sum is 0 leaves ADX unchanged (and adds 0 to the seed), and its DIs are 0.
    """
    first_di = s + n
    first_adx = s + 2 * n - 1
    _nan_fill(adx_out, s, min(first_adx, e))
    if with_di:
        _nan_fill(pdi_out, s, min(first_di, e))
        _nan_fill(mdi_out, s, min(first_di, e))
    if e <= first_di:
        return
    pdm = 0.0
    mdm = 0.0
    tr = 0.0
    ph = h[s]
    pl = lo[s]
    pc = c[s]
    for i in range(s + 1, first_di):
        dp = h[i] - ph
        dm = pl - lo[i]
        ph = h[i]
        pl = lo[i]
        if dm > 0 and dp < dm:
            mdm += dm
        elif dp > 0 and dp > dm:
            pdm += dp
        tr += _true_range(ph, pl, pc)
        pc = c[i]
    a = (n - 1) / n
    b = 1.0 / n
    sum_dx = 0.0
    adx = 0.0
    for i in range(first_di, e):
        dp = h[i] - ph
        dm = pl - lo[i]
        ph = h[i]
        pl = lo[i]
        plus = dp if dp > 0 and dp > dm else 0.0
        minus = dm if dm > 0 and dp < dm else 0.0
        mdm = mdm * a + minus
        pdm = pdm * a + plus
        tr = tr * a + _true_range(ph, pl, pc)
        pc = c[i]
        pdi = 0.0
        mdi = 0.0
        if tr != 0.0:
            mdi = 100.0 * (mdm / tr)
            pdi = 100.0 * (pdm / tr)
            di_sum = mdi + pdi
            if di_sum != 0.0:
                dx = 100.0 * (abs(mdi - pdi) / di_sum)
                if i <= first_adx:
                    sum_dx += dx
                else:
                    adx = adx * a + dx * b
        if with_di:
            pdi_out[i] = pdi
            mdi_out[i] = mdi
        if i == first_adx:
            adx = sum_dx / n
        if i >= first_adx:
            adx_out[i] = adx


@njit(cache=True, fastmath=_FM)
def _dmi_nb(
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    n: int,
    with_di: bool,
    adx_out: np.ndarray,
    pdi_out: np.ndarray,
    mdi_out: np.ndarray,
) -> None:
    s = 0
    while s < h.size:
        e = _run_end3(h, lo, c, s)
        _dmi_run(h, lo, c, n, s, e, adx_out, pdi_out, mdi_out, with_di)
        if e < h.size:
            adx_out[e] = np.nan
            if with_di:
                pdi_out[e] = np.nan
                mdi_out[e] = np.nan
        s = e + 1


# --------------------------------------------------------------------------------------------------------
# MACD
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _macd_run(
    x: np.ndarray,
    fast: int,
    slow: int,
    signal: int,
    s: int,
    e: int,
    macd_out: np.ndarray,
    signal_out: np.ndarray,
    hist_out: np.ndarray,
) -> None:
    """TA_MACD: both EMAs start at s + slow − 1; the fast one is seeded there with the SMA of its own last
    `fast` values (not of the run's first ones); the signal EMA is seeded with the SMA of the first `signal`
    MACD values; all three outputs start at s + slow + signal − 2."""
    first_macd = s + slow - 1
    first_out = first_macd + signal - 1
    _nan_fill(macd_out, s, min(first_out, e))
    _nan_fill(signal_out, s, min(first_out, e))
    _nan_fill(hist_out, s, min(first_out, e))
    if e <= first_out:
        return
    k_slow = 2.0 / (slow + 1)
    k_fast = 2.0 / (fast + 1)
    k_sig = 2.0 / (signal + 1)
    total = 0.0
    for i in range(s, first_macd + 1):
        total += x[i]
    slow_ema = total / slow
    total = 0.0
    for i in range(first_macd + 1 - fast, first_macd + 1):
        total += x[i]
    fast_ema = total / fast
    sig_total = fast_ema - slow_ema
    for i in range(first_macd + 1, first_out + 1):
        slow_ema = (x[i] - slow_ema) * k_slow + slow_ema
        fast_ema = (x[i] - fast_ema) * k_fast + fast_ema
        sig_total += fast_ema - slow_ema
    sig = sig_total / signal
    m = fast_ema - slow_ema
    macd_out[first_out] = m
    signal_out[first_out] = sig
    hist_out[first_out] = m - sig
    for i in range(first_out + 1, e):
        slow_ema = (x[i] - slow_ema) * k_slow + slow_ema
        fast_ema = (x[i] - fast_ema) * k_fast + fast_ema
        m = fast_ema - slow_ema
        sig = (m - sig) * k_sig + sig
        macd_out[i] = m
        signal_out[i] = sig
        hist_out[i] = m - sig


@njit(cache=True, fastmath=_FM)
def _macd_nb(
    x: np.ndarray,
    fast: int,
    slow: int,
    signal: int,
    macd_out: np.ndarray,
    signal_out: np.ndarray,
    hist_out: np.ndarray,
) -> None:
    s = 0
    while s < x.size:
        e = _run_end1(x, s)
        _macd_run(x, fast, slow, signal, s, e, macd_out, signal_out, hist_out)
        if e < x.size:
            macd_out[e] = np.nan
            signal_out[e] = np.nan
            hist_out[e] = np.nan
        s = e + 1


# --------------------------------------------------------------------------------------------------------
# Volume z-score
# --------------------------------------------------------------------------------------------------------


@njit(cache=True, fastmath=_FM)
def _vol_z_nb(v: np.ndarray, n: int, out: np.ndarray) -> None:
    """(v[t] − mean) / std over v[t−n..t−1], two-pass per window (exact enough at any volume scale)."""
    bad = 0  # missing bars among v[t−n..t−1]
    for t in range(v.size):
        if t >= 1 and not np.isfinite(v[t - 1]):
            bad += 1
        if t >= n + 1 and not np.isfinite(v[t - n - 1]):
            bad -= 1
        out[t] = np.nan
        if t < n or bad > 0 or not np.isfinite(v[t]):
            continue
        mean = 0.0
        for i in range(t - n, t):
            mean += v[i]
        mean /= n
        ss = 0.0
        for i in range(t - n, t):
            d = v[i] - mean
            ss += d * d
        if ss > 0.0:
            out[t] = (v[t] - mean) / np.sqrt(ss / (n - 1))


# --------------------------------------------------------------------------------------------------------
# Public wrappers. Outputs are allocated here with numpy, not inside the kernels: numba's allocator hands
# fresh 8 MB arrays back to the OS each call, and re-faulting their pages cost more than the arithmetic.
# --------------------------------------------------------------------------------------------------------


def _as_f64(x: ArrayLike, name: str) -> np.ndarray:
    a = np.ascontiguousarray(x.to_numpy() if isinstance(x, pd.Series) else x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    return a


def _hlc(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    h, lo, c = _as_f64(high, "high"), _as_f64(low, "low"), _as_f64(close, "close")
    if not h.size == lo.size == c.size:
        raise ValueError(f"high, low, close differ in length: {h.size}, {lo.size}, {c.size}")
    return h, lo, c


def _check_period(n: int, name: str = "n", minimum: int = 2) -> int:
    if isinstance(n, bool) or int(n) != n or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _wrap(out: np.ndarray, like: ArrayLike, name: str) -> ArrayLike:
    return pd.Series(out, index=like.index, name=name) if isinstance(like, pd.Series) else out


def sma(x: ArrayLike, n: int) -> ArrayLike:
    """Simple moving average (TA-Lib SMA): first value at index n−1."""
    n = _check_period(n)
    a = _as_f64(x, "x")
    out = np.empty(a.size)
    _sma_nb(a, n, out)
    return _wrap(out, x, f"sma_{n}")


def ema(x: ArrayLike, n: int) -> ArrayLike:
    """Exponential moving average (TA-Lib EMA, k = 2/(n+1)), seeded with the SMA of the first n values."""
    n = _check_period(n)
    a = _as_f64(x, "x")
    out = np.empty(a.size)
    _ema_nb(a, n, out)
    return _wrap(out, x, f"ema_{n}")


def rsi(close: ArrayLike, n: int = 14) -> ArrayLike:
    """Wilder's RSI (TA-Lib RSI), 0..100, first value at index n; 0 where there was no movement at all."""
    n = _check_period(n)
    c = _as_f64(close, "close")
    out = np.empty(c.size)
    _rsi_nb(c, n, out)
    return _wrap(out, close, f"rsi_{n}")


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> ArrayLike:
    """Wilder's average true range (TA-Lib ATR), first value at index n (bar 0 has no previous close)."""
    n = _check_period(n, minimum=1)
    h, lo, c = _hlc(high, low, close)
    out = np.empty(c.size)
    _atr_nb(h, lo, c, n, out)
    return _wrap(out, close, f"atr_{n}")


def adx(high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14) -> ArrayLike:
    """Wilder's ADX (TA-Lib ADX), 0..100, first value at index 2n−1."""
    n = _check_period(n)
    h, lo, c = _hlc(high, low, close)
    out = np.empty(c.size)
    unused = np.empty(0)
    _dmi_nb(h, lo, c, n, False, out, unused, unused)
    return _wrap(out, close, f"adx_{n}")


def dmi(
    high: ArrayLike, low: ArrayLike, close: ArrayLike, n: int = 14
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """(+DI, −DI, ADX) in one pass, equal to TA-Lib PLUS_DI, MINUS_DI (first value at n) and ADX (at 2n−1)."""
    n = _check_period(n)
    h, lo, c = _hlc(high, low, close)
    a, p, m = np.empty(c.size), np.empty(c.size), np.empty(c.size)
    _dmi_nb(h, lo, c, n, True, a, p, m)
    return _wrap(p, close, f"plus_di_{n}"), _wrap(m, close, f"minus_di_{n}"), _wrap(a, close, f"adx_{n}")


def macd(
    close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[ArrayLike, ArrayLike, ArrayLike]:
    """(macd, signal, hist) as TA-Lib MACD, all starting at index slow + signal − 2 (33 for 12/26/9).

    Not EMA(fast) − EMA(slow): TA-Lib seeds the fast EMA at the slow EMA's first index (see `_macd_run`).
    """
    fast = _check_period(fast, "fast")
    slow = _check_period(slow, "slow")
    signal = _check_period(signal, "signal", minimum=1)
    if fast >= slow:
        raise ValueError(f"fast ({fast}) must be shorter than slow ({slow})")
    c = _as_f64(close, "close")
    m, s, h = np.empty(c.size), np.empty(c.size), np.empty(c.size)
    _macd_nb(c, fast, slow, signal, m, s, h)
    return _wrap(m, close, "macd"), _wrap(s, close, "macd_signal"), _wrap(h, close, "macd_hist")


def vol_z(volume: ArrayLike, n: int = 20) -> ArrayLike:
    """Z-score of this bar's volume against the previous n bars: (v[t] − mean) / std(ddof=1) over t−n..t−1.

    The current bar is excluded so a spike is measured against a baseline it has not inflated. NaN until n
    prior bars exist, when any of them or v[t] is missing, and when the baseline is constant (std 0).
    """
    n = _check_period(n)
    v = _as_f64(volume, "volume")
    out = np.empty(v.size)
    _vol_z_nb(v, n, out)
    return _wrap(out, volume, f"vol_z_{n}")
