"""Independent oracles for gap-aware rolling corr/beta (apex_rotation.features.correlation).

Two straightforward recomputations that share nothing with the kernel: a numpy loop over windows that
masks each window's pairs and centres them (two-pass), and pandas' rolling corr/cov/var, which drop a
pair when either side is NaN (`min_periods` = the fewest valid pairs a window needs). Both apply the same
two rules the kernel states: a window needs `min_coverage` of its pairs valid (valid / window, as a float
division), and nothing is defined before `window − 1` bars after the later series start.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def first_finite(a: np.ndarray) -> int:
    finite = np.flatnonzero(np.isfinite(a))
    return int(finite[0]) if finite.size else len(a)


def loop_corr_beta(x: np.ndarray, b: np.ndarray, window: int, min_coverage: float) -> tuple[np.ndarray, ...]:
    """(corr, beta) of one series x against b, window by window: mask, centre, sum."""
    corr, beta = np.full(len(x), np.nan), np.full(len(x), np.nan)
    start = max(first_finite(x), first_finite(b))
    for t in range(start + window - 1, len(x)):
        xs, bs = x[t - window + 1 : t + 1], b[t - window + 1 : t + 1]
        valid = np.isfinite(xs) & np.isfinite(bs)
        if valid.sum() / window < min_coverage:
            continue
        xc, bc = xs[valid] - xs[valid].mean(), bs[valid] - bs[valid].mean()
        cov, var_x, var_b = xc @ bc, xc @ xc, bc @ bc
        if var_b > 0:
            beta[t] = cov / var_b
            if var_x > 0:
                corr[t] = cov / np.sqrt(var_x * var_b)
    return corr, beta


def pandas_corr_beta(
    returns: pd.DataFrame | pd.Series, bench: pd.Series, window: int, min_coverage: float = 1.0
) -> tuple[pd.DataFrame | pd.Series, pd.DataFrame | pd.Series]:
    """pandas rolling corr and cov / var over the pairs where both returns exist."""
    need = next(n for n in range(window + 1) if n / window >= min_coverage)
    frame = returns.to_frame() if isinstance(returns, pd.Series) else returns
    bench = bench.reindex(frame.index)
    corr, beta = {}, {}
    for col in frame.columns:
        x = frame[col]
        pair_b = bench.where(x.notna() & np.isfinite(x))  # the benchmark over the valid pairs only
        roll = x.rolling(window, min_periods=need)
        c = roll.corr(bench)
        v = roll.cov(bench) / pair_b.rolling(window, min_periods=need).var()
        start = max(first_finite(x.to_numpy()), first_finite(bench.to_numpy()))
        warm = np.arange(len(x)) < start + window - 1
        corr[col], beta[col] = c.mask(warm), v.mask(warm)
    if isinstance(returns, pd.Series):
        return corr[returns.name], beta[returns.name]
    return pd.DataFrame(corr, index=frame.index), pd.DataFrame(beta, index=frame.index)
