"""Rolling corr + beta vs pandas: 17 symbols × 17,520 1h bars, windows 336 and 720, vs BTC and ETH.

Ours is `corr_beta_table` end to end (DataFrames out), gap-aware at the default coverage (0.9). pandas is
the same computation: `rolling(w, min_periods=need).corr` and `.cov` (which drop a pair when either side is
NaN), divided by the `rolling().var` of the benchmark over each column's valid pairs, with the same
warm-up. The target: ours <= 50 ms. Checks the two agree before timing. (NaN shares on real bars:
benchmarks/bench_corr_coverage.py.)
Run: `uv run python benchmarks/bench_correlation.py [--repeat R]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from apex_rotation.features.correlation import DEFAULT_MIN_COVERAGE, corr_beta_table, min_valid_pairs

TARGET_MS = 50.0
SYMBOLS = [
    "BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ",
    "AVAX", "MATIC", "XRP", "LTC", "DOGE", "SUI", "SEI", "TIA",
]  # fmt: skip
WINDOWS_DAYS = (14, 30)  # 336 and 720 1h bars


def synthetic_returns(bars: int = 17_520, seed: int = 11) -> pd.DataFrame:
    """One market factor plus noise (betas 0.8..2), a late listing and a gap: realistic shape and NaNs."""
    rng = np.random.default_rng(seed)
    market = rng.normal(0.0, 0.006, bars)
    betas = np.linspace(0.8, 2.0, len(SYMBOLS))
    values = market[:, None] * betas + rng.normal(0.0, 0.008, (bars, len(SYMBOLS)))
    values[:3_000, -1] = np.nan  # TIA listed late
    values[9_000:9_005, 4] = np.nan  # an exchange gap on ARB
    values[12_000:12_002, 0] = np.nan  # a filled BTC hour: its return and the next are missing
    index = pd.date_range("2023-01-01", periods=bars, freq="1h", tz="UTC", name="open_time")
    return pd.DataFrame(values, index=index, columns=SYMBOLS)


def pandas_table(returns: pd.DataFrame, min_coverage: float) -> dict[str, pd.DataFrame]:
    table = {}
    rows = np.arange(len(returns))[:, None]
    for bench in ("BTC", "ETH"):
        b = returns[bench]
        both = returns.notna().to_numpy() & b.notna().to_numpy()[:, None]
        pair_b = pd.DataFrame(np.where(both, b.to_numpy()[:, None], np.nan), returns.index, returns.columns)
        start = np.maximum(returns.notna().to_numpy().argmax(axis=0), b.notna().to_numpy().argmax())
        for days in WINDOWS_DAYS:
            w = days * 24
            need = min_valid_pairs(w, min_coverage)
            warm = rows < start + w - 1
            roll = returns.rolling(w, min_periods=need)
            table[f"corr_{bench.lower()}_{days}"] = roll.corr(b).mask(warm)
            beta = roll.cov(b) / pair_b.rolling(w, min_periods=need).var()
            table[f"beta_{bench.lower()}_{days}"] = beta.mask(warm)
    return table


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    returns = synthetic_returns()

    cov = DEFAULT_MIN_COVERAGE
    ours, theirs = corr_beta_table(returns, windows_days=WINDOWS_DAYS), pandas_table(returns, cov)
    worst = max(float(np.nanmax(np.abs(ours[k].to_numpy() - theirs[k].to_numpy()))) for k in ours)
    same_nans = all((ours[k].isna() == theirs[k].isna()).all().all() for k in ours)
    print(f"agreement with pandas: max |diff| {worst:.1e}, identical NaN positions: {same_nans}")

    t_ours = median_seconds(lambda: corr_beta_table(returns, windows_days=WINDOWS_DAYS), args.repeat)
    t_pandas = median_seconds(lambda: pandas_table(returns, cov), args.repeat)
    shape = f"{returns.shape[1]} symbols x {returns.shape[0]:,} bars"
    print(f"{shape}, windows 336/720, vs BTC/ETH, corr+beta, coverage {cov} (median of {args.repeat}):")
    print(f"  ours   {t_ours * 1e3:8.1f} ms")
    print(f"  pandas {t_pandas * 1e3:8.1f} ms")
    print(f"  ratio  {t_pandas / t_ours:8.1f}x faster")
    print(f"target <= {TARGET_MS:.0f} ms: {'OK' if t_ours * 1e3 <= TARGET_MS else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
