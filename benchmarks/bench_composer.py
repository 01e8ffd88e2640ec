"""Composer benchmark: `score.compose` over every signal of 2 years of the default synthetic market (4h and
1d partitions), in time order with the cool-down. Prints figures, asserts nothing.

Run: uv run python benchmarks/bench_composer.py [--store DIR]
`--store` reuses a store `apex run` already filled (e.g. APEX_DATA_DIR); without it the whole pipeline runs
first into a temporary directory (about a minute or two).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.defs.runner import run_pipeline
from apex_rotation.signals.scoring import build_contexts, compose_in_order
from apex_rotation.store.parquet import ParquetStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="a store `apex run` filled with the default config")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cfg = load_config()
    root = args.store or tempfile.mkdtemp(prefix="bench_composer_")
    if not args.store:
        started = time.perf_counter()
        assert run_pipeline(cfg, store_root=root).success
        print(
            f"pipeline (refresh → confirmations → scores) into {root}: {time.perf_counter() - started:.0f} s"
        )
    store = ParquetStore(root)

    started = time.perf_counter()
    contexts = {tf: build_contexts(cfg, store, tf) for tf in ("4h", "1d")}
    print(f"contexts built from the store (I/O, regime, TD indexes): {time.perf_counter() - started:.2f} s")

    wall, cpu = [], []
    for _ in range(args.runs):
        w0, c0 = time.perf_counter(), time.process_time()
        scored = {tf: compose_in_order(ctxs) for tf, ctxs in contexts.items()}
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    for tf, signals in scored.items():
        fired = [s for s in signals if s.fired]
        by = {a: sum(s.archetype == a for s in fired) for a in ("rotation", "td13_exhaustion")}
        print(f"{tf}: {len(signals)} signals, {len(fired)} fired {by}")
    n = sum(len(s) for s in scored.values())
    print(
        f"compose, {n} signals (4h + 1d, in time order with the cool-down): median {statistics.median(wall):.3f} s "
        f"wall, {statistics.median(cpu):.3f} s CPU, min {min(wall):.3f} s "
        f"({statistics.median(cpu) / max(n, 1) * 1e6:.0f} µs CPU per signal)"
    )


if __name__ == "__main__":
    main()
