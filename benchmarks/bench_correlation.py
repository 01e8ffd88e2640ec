"""Rolling corr + beta vs pandas: 17 symbols × 17,520 1h bars, windows 336 and 720, vs BTC and ETH.

Ours is `corr_beta_table` end to end (DataFrames out); pandas is `rolling().corr`, and `rolling().cov` /
`rolling().var` for beta. The target: ours <= 50 ms. Checks the two agree before timing.
Run: `uv run python benchmarks/bench_correlation.py [--repeat R]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from apex_rotation.features.correlation import corr_beta_table

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
    index = pd.date_range("2023-01-01", periods=bars, freq="1h", tz="UTC", name="open_time")
    return pd.DataFrame(values, index=index, columns=SYMBOLS)


def pandas_table(returns: pd.DataFrame) -> dict[str, pd.DataFrame]:
    table = {}
    for bench in ("BTC", "ETH"):
        b = returns[bench]
        for days in WINDOWS_DAYS:
            w = days * 24
            roll = returns.rolling(w)
            table[f"corr_{bench.lower()}_{days}"] = roll.corr(b)
            table[f"beta_{bench.lower()}_{days}"] = roll.cov(b).div(b.rolling(w).var(), axis=0)
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

    ours, theirs = corr_beta_table(returns, windows_days=WINDOWS_DAYS), pandas_table(returns)
    worst = max(float(np.nanmax(np.abs(ours[k].to_numpy() - theirs[k].to_numpy()))) for k in ours)
    same_nans = all((ours[k].isna() == theirs[k].isna()).all().all() for k in ours)
    print(f"agreement with pandas: max |diff| {worst:.1e}, identical NaN positions: {same_nans}")

    t_ours = median_seconds(lambda: corr_beta_table(returns, windows_days=WINDOWS_DAYS), args.repeat)
    t_pandas = median_seconds(lambda: pandas_table(returns), args.repeat)
    shape = f"{returns.shape[1]} symbols x {returns.shape[0]:,} bars"
    print(f"{shape}, windows 336/720, vs BTC/ETH, corr+beta (median of {args.repeat}):")
    print(f"  ours   {t_ours * 1e3:8.1f} ms")
    print(f"  pandas {t_pandas * 1e3:8.1f} ms")
    print(f"  ratio  {t_pandas / t_ours:8.1f}x faster")
    print(f"target <= {TARGET_MS:.0f} ms: {'OK' if t_ours * 1e3 <= TARGET_MS else 'TOO SLOW'}")


if __name__ == "__main__":
    main()
