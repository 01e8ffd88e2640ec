"""Throughput of `td.compute` on 1M bars (random walk), both profiles, and numba's cold-compile time.

Run: `uv run python benchmarks/bench_td.py [n_bars]`. Warm figures exclude compilation (a warm-up call
first) and include the string mapping and DataFrame assembly; the best and median of several runs are
printed. The cold compile is timed in a fresh interpreter with an empty NUMBA_CACHE_DIR.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

from apex_rotation.config import TDConfig
from apex_rotation.features import td

REPEATS = 7
COLD_SNIPPET = """
import time
import numpy as np, pandas as pd
from apex_rotation.features import td
c = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 500))
df = pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c, "volume": 1.0},
                  index=pd.date_range("2024-01-01", periods=500, freq="h", tz="UTC"))
t0 = time.perf_counter()
td.compute(df)
print(time.perf_counter() - t0)
"""


def random_walk(n: int, seed: int = 1) -> pd.DataFrame:
    """Bars rounded to a 0.01 tick so that equal closes occur, as in real data."""
    rng = np.random.default_rng(seed)
    close = np.round(1000 + np.cumsum(rng.normal(0, 1, n)), 2)
    spread = np.round(np.abs(rng.normal(0, 0.8, (2, n))), 2)
    index = pd.date_range("2000-01-01", periods=n, freq="min", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close + spread[0], "low": close - spread[1], "close": close, "volume": 1.0},
        index=index,
    )


def first_call_seconds(cache_dir: str | None) -> float:
    """Time of the first `compute` call in a fresh interpreter (cache_dir: numba cache to use)."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", COLD_SNIPPET], env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    df = random_walk(n)
    for profile in ("standard", "loose"):
        cfg = TDConfig(profile=profile)
        td.compute(df.iloc[:1000], cfg)  # compile / load from cache outside the timing
        times = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            td.compute(df, cfg)
            times.append(time.perf_counter() - t0)
        best, median = min(times), statistics.median(times)
        print(
            f"{profile:8s} {n:,} bars: best {best * 1e3:.1f} ms ({n / best / 1e6:.1f} M bars/s), "
            f"median {median * 1e3:.1f} ms ({n / median / 1e6:.1f} M bars/s)"
        )
    with tempfile.TemporaryDirectory() as empty:
        print(f"cold compile (empty numba cache, first call on 500 bars): {first_call_seconds(empty):.2f} s")
    print(f"first call with the on-disk cache: {first_call_seconds(None):.2f} s")


if __name__ == "__main__":
    main()
