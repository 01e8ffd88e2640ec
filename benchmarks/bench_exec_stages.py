"""compose + alert (file channel) + simulate over every partition of 2 years of the default synthetic market.

The issue's budget: ≤ 2 s of pure-core time on 2 cores for the three stages together, printed with the count
of signals, alerts and trades. Each stage is the function its Dagster asset calls (`score_timeframe`,
`run_alerts`, `simulate_timeframe`), so Parquet reads/writes and pandera validation are included; Dagster's
own overhead is not. Before each alerts run the outbox, JSONL and charts are removed, so the due alerts are
delivered (file channel) and charted every time. Prints figures; asserts nothing.

Run: uv run python benchmarks/bench_exec_stages.py [--store DIR] [--runs N]
`--store` reuses a store `apex run` filled with the default config; without it the pipeline runs first.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.defs.runner import run_pipeline
from apex_rotation.exec.alerts.stage import run_alerts
from apex_rotation.exec.sim import simulate_timeframe
from apex_rotation.signals.scoring import score_timeframe
from apex_rotation.store.parquet import ParquetStore


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", help="a store `apex run` filled with the default config")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cfg = load_config()
    root = Path(args.store or tempfile.mkdtemp(prefix="bench_exec_"))
    if not args.store:
        assert run_pipeline(cfg, store_root=str(root)).success
    store = ParquetStore(root)
    timeframes = list(cfg.apex.trigger_timeframes)

    def fresh_delivery() -> None:
        for path in (root / "charts", root / "alerts" / "outbox.sqlite", root / "alerts" / "alerts.jsonl"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                for p in path.parent.glob(path.name + "*"):
                    p.unlink()

    runs: dict[str, list[tuple[float, float]]] = {"compose": [], "alert": [], "simulate": []}
    counts = {}
    for i in range(args.runs + 1):  # the first run warms up imports, numba and pandera
        signals = alerts = due = trades = 0
        totals = {k: [0.0, 0.0] for k in runs}
        for tf in timeframes:
            frame, w, c = timed(lambda tf=tf: score_timeframe(cfg, store, tf))
            totals["compose"][0] += w
            totals["compose"][1] += c
            signals += len(frame)
            fresh_delivery()
            result, w, c = timed(lambda tf=tf: run_alerts(cfg, store, tf))
            totals["alert"][0] += w
            totals["alert"][1] += c
            alerts, due = alerts + len(result.alerts), due + len(result.due)
            report, w, c = timed(lambda tf=tf: simulate_timeframe(cfg, store, tf))
            totals["simulate"][0] += w
            totals["simulate"][1] += c
            trades += len(report.trades)
        counts = {"signals": signals, "alerts": alerts, "delivered+charted": due, "trades": trades}
        if i:
            for k, (w, c) in totals.items():
                runs[k].append((w, c))
    print(f"default synthetic market, timeframes {timeframes}: {counts}")
    total_wall = total_cpu = 0.0
    for name, values in runs.items():
        wall, cpu = statistics.median(v[0] for v in values), statistics.median(v[1] for v in values)
        total_wall, total_cpu = total_wall + wall, total_cpu + cpu
        print(f"  {name:<9} wall {wall:6.3f} s   cpu {cpu:6.3f} s")
    print(
        f"  {'total':<9} wall {total_wall:6.3f} s   cpu {total_cpu:6.3f} s   (budget 2 s: {total_cpu / 2:.2f}x)"
    )


if __name__ == "__main__":
    main()
