"""Scanner and synthetic-market benchmark: prints figures, asserts nothing.

Run: uv run python benchmarks/bench_scanner.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.ingest.synthetic import build_market
from apex_rotation.signals.rotation import CONTEXT_COLUMNS, scan_history


def median_ms(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def main() -> None:
    cfg = load_config()
    print(
        f"synthetic market, 17 symbols × 17,520 1h bars + ground truth: {median_ms(lambda: build_market(cfg)):.0f} ms"
    )

    n, rng = 17_520, np.random.default_rng(0)
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="open_time")
    gates = [f"{k}_{b}_{d}" for k in ("corr", "beta") for b in ("btc", "eth") for d in (14, 30)]

    def frame(sd: float) -> pd.DataFrame:
        data = {c: rng.uniform(0.5, 2.5, n) for c in gates} | {
            c: rng.uniform(1, 2, n) for c in CONTEXT_COLUMNS
        }
        return pd.DataFrame(data | {"ret": rng.normal(0, sd, n), "filled": np.zeros(n, bool)}, index=index)

    apex = {"BTC": frame(0.02), "ETH": frame(0.02)}
    basket = apex | {f"ALT{i}": frame(0.01) for i in range(15)}
    took = median_ms(lambda: scan_history(apex, basket, cfg.apex, timeframe="1h"))
    print(f"scan_history, 17 symbols × 17,520 bars: {took:.0f} ms")


if __name__ == "__main__":
    main()
