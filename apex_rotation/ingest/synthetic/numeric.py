"""Small helpers every part of the synthetic market shares: keyed random generators, the UTC bar grid,
fat-tailed noise, GARCH volatility, corr/beta and the feature pipeline's winsorizing.

Why a module of its own: profiles, the factor model, the planted episodes and the ground truth all use them,
and none of them owns them. See docs/synthetic-market.md.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

HOUR_MS = 3_600_000
TIMEFRAME_HOURS = {"1h": 1, "4h": 4, "1d": 24}
ROBUST_WINDOW, ROBUST_MIN, MAD_TO_SIGMA = 720, 48, 1.4826  # the feature pipeline's winsorizing sigma


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (never on Python's salted hash())."""
    words = [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little") for k in keys]
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, *words]))


@dataclass(frozen=True)
class _Bins:
    """Complete bars of `hours` hours on the UTC grid: bar j covers hours first(j) .. first(j+1) − 1."""

    hours: int
    off: int  # index of the first hour of the first complete bar
    count: int

    def first(self, j: int) -> int:
        return self.off + j * self.hours

    def of(self, hour_index: int) -> int:
        return (hour_index - self.off) // self.hours


def _bins(epoch_hour0: int, n: int, hours: int) -> _Bins:
    off = (-epoch_hour0) % hours
    return _Bins(hours, off, max(0, (n - off) // hours))


def _student(rng: np.random.Generator, n: int, df: float = 6.0) -> np.ndarray:
    """Fat-tailed noise with unit variance."""
    return rng.standard_t(df, n) / math.sqrt(df / (df - 2))


def _garch_vol(z: np.ndarray, alpha: float = 0.06, beta: float = 0.92, cap: float = 2.5) -> np.ndarray:
    """Conditional vol (long-run 1) of a GARCH(1,1) driven by z: a big move raises the next bars' vol."""
    omega, cap2, var = 1 - alpha - beta, cap * cap, 1.0
    out = [0.0] * len(z)
    for i, zi in enumerate(z.tolist()):
        out[i] = var
        var = min(omega + (alpha * zi * zi + beta) * var, cap2)
    return np.sqrt(np.asarray(out))


def corr_beta(alt: np.ndarray, apex: np.ndarray) -> tuple[float, float]:
    """Pearson corr and beta = cov/var(apex) of two return windows; NaN when undefined."""
    if len(alt) < 2 or np.isnan(alt).any() or np.isnan(apex).any():
        return math.nan, math.nan
    a, x = alt - alt.mean(), apex - apex.mean()
    sxx, saa = float(x @ x), float(a @ a)
    if sxx <= 0 or saa <= 0:
        return math.nan, math.nan
    cov = float(a @ x)
    return cov / math.sqrt(saa * sxx), cov / sxx


def _winsorized(ret: np.ndarray, lo: int, hi: int, z: float) -> np.ndarray:
    """ret[lo:hi] clipped like the feature pipeline: ±z × 1.4826 × median |r| of the 720 returns before each.

    Shortcut: the returns that lie in every bar's trailing window bound each median from below; a return
    under that floor cannot be clipped, so exact medians are needed only above it.
    """
    out, mags = ret[lo:hi].copy(), np.abs(ret)
    bars = np.arange(lo, hi)
    starts = np.maximum(0, bars - ROBUST_WINDOW)
    todo = bars
    common = mags[starts[-1] : lo]
    if len(common) and not np.isnan(common).any():
        lengths = bars - starts
        k = int(((lengths - 1) // 2 - (lengths - len(common))).min())
        if k >= 0:
            floor = z * MAD_TO_SIGMA * float(np.partition(common, k)[k])
            todo = bars[mags[lo:hi] > floor]
    for i in todo.tolist():
        past = mags[max(0, i - ROBUST_WINDOW) : i]
        past = past[~np.isnan(past)]
        if len(past) >= ROBUST_MIN:
            bound = z * MAD_TO_SIGMA * _median(past)
            if bound > 0:
                out[i - lo] = min(max(out[i - lo], -bound), bound)
    return out


def _median(x: np.ndarray) -> float:
    n = len(x)
    part = np.partition(x, [(n - 1) // 2, n // 2])
    return 0.5 * float(part[(n - 1) // 2] + part[n // 2])
