"""How long a user waits: cold `apex run`, a warm rerun with nothing new, and the runs one bar close triggers.

    uv run python benchmarks/bench_operations.py            # default market: 17 symbols, 2 years synthetic

Each figure is split into process start + imports, Dagster (run bookkeeping, events, instance writes) and the
steps' own compute (time inside the asset functions). `apex run` is timed as a user runs it (a new process,
`python -m apex_rotation.cli run -q`); a bar close is timed in-process as the daemon's run worker would run
it (imports excluded, shown apart; each run starts with an empty frame cache, as a new run worker process
does): the data run of each timeframe that closed (its schedule's request), then the signal run the
automation sensor requests for those timeframes, each bar close 3 times on fresh copies of the same store
(median shown, with the spread, and when the alerts step ended: the issue's "through to alerts"; the dry-run
trades come after it). Dagster's tuning (`DAGSTER_TUNING`) is set as `apex run`
and `apex ui` set it, and the instance is the project's (the batched sqlite event log). Stores and the
Dagster instance live in a temporary folder. Goals (issue 10, 2 cores): cold ≤ 30 s, warm ≤ 8 s, bar close ≤ 10 s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from apex_rotation.config import load_config
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB, bar_close_run_request, closed_timeframes
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.instance import apply_tuning, project_instance
from apex_rotation.defs.partitions import BAR_CLOSE_TAG
from apex_rotation.defs.resources import STEP_HANDLERS
from apex_rotation.defs.runner import QUIET, StepTimer, contiguous_blocks, full_range_tags
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation.store.parquet import clear_frame_cache

REPEATS = 3  # this VM's timings scatter by ±1 s run to run: each bar close is timed 3 times, median shown
TOOK = re.compile(r"took=([\d.]+)s \(steps computing ([\d.]+)s of ([\d.]+)s in Dagster\)")


def apex_run(store: Path) -> tuple[float, float, float, float]:
    """(wall, in-CLI, Dagster runs, step compute) of one `apex run -q` in a new process."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "apex_rotation.cli", "run", "-q", "--store", str(store)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wall = time.perf_counter() - started
    took, compute, dagster = (float(x) for x in TOOK.search(out).groups())
    return wall, took, dagster, compute


def prepare_bar_close(root: Path, close: pd.Timestamp) -> None:
    """The store one bar before `close`: a full data run and signal run (not timed)."""
    cfg = load_config()
    defs = build_definitions(cfg, store_root=str(root))
    instance = project_instance(root)
    names = cfg.basket.names
    before = (close - pd.Timedelta(hours=1)).isoformat()
    for job, tags in [
        (DATA_JOB, full_range_tags(f"{names[0]}|1h", f"{names[-1]}|1d")),
        (SIGNALS_JOB, full_range_tags("1h", "1d")),
    ]:
        tags = {**tags, BAR_CLOSE_TAG: before}
        defs.resolve_job_def(job).execute_in_process(instance=instance, tags=tags, run_config=QUIET)


def bar_close(root: Path, close: pd.Timestamp) -> tuple[float, float, list[str], float]:
    """(wall, step compute, timeframes, seconds until the alerts step ended) of the runs one bar close
    triggers on the store at `root`."""
    cfg = load_config()
    defs = build_definitions(cfg, store_root=str(root))
    instance = project_instance(root)
    closed = closed_timeframes(close)
    alerts_out: list[float] = []
    timer = StepTimer(lambda step: alerts_out.append(time.perf_counter()) if step.step == "alerts" else None)
    STEP_HANDLERS.append(timer)
    config = {"loggers": {**QUIET["loggers"], "step_events": {}}}
    started = time.perf_counter()
    request = bar_close_run_request(cfg, close + pd.Timedelta(minutes=2))  # the schedule's one run
    clear_frame_cache()  # each run the daemon launches is a new process: no frame read before
    assert (
        defs.resolve_job_def(DATA_JOB)
        .execute_in_process(instance=instance, tags=request.tags, run_config=config)
        .success
    )
    for block in contiguous_blocks(closed):  # what the automation sensor requests next
        clear_frame_cache()
        assert (
            defs.resolve_job_def(SIGNALS_JOB)
            .execute_in_process(
                instance=instance, tags=full_range_tags(block[0], block[-1]), run_config=config
            )
            .success
        )
    wall = time.perf_counter() - started
    STEP_HANDLERS.remove(timer)
    print(
        f"bar close {close}: " + ", ".join(f"{s.step} {s.seconds:.1f}s" for s in timer.steps), file=sys.stderr
    )
    return wall, sum(s.compute for s in timer.steps), closed, alerts_out[-1] - started


def repeated_bar_close(
    root: Path, close: pd.Timestamp, repeats: int
) -> list[tuple[float, float, list[str], float]]:
    """The same bar close `repeats` times, each on a fresh copy of the store one bar earlier."""
    prepare_bar_close(root / "ready", close)
    runs = []
    for attempt in range(repeats):
        copy = root / f"attempt-{attempt}"
        shutil.copytree(root / "ready", copy)
        runs.append(bar_close(copy, close))
    return runs


def reference_loop() -> float:
    """Seconds of a fixed pure-Python loop (best of 3): how fast this machine is right now. This VM's speed
    drifts (the same loop took 1.5–2.0 s within minutes), so a figure is read against it."""
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        sum(range(10**8))
        runs.append(time.perf_counter() - started)
    return min(runs)


def main() -> None:
    before = reference_loop()
    apply_tuning()  # as `apex run` and `apex ui` (the daemon and its run workers) set it
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DAGSTER_HOME"] = str(Path(tmp) / "home")  # never the project's instance
        rows, spreads = [], []
        for label in ("cold apex run", "warm apex run (nothing new)"):
            wall, took, dagster, compute = apex_run(Path(tmp) / "store")
            rows.append(
                (label, wall, wall - took, dagster - compute, compute, 30.0 if "cold" in label else 8.0)
            )
        end = SyntheticSource(load_config()).history_window()[1] + pd.Timedelta(hours=1)  # the last close
        for label, close in [
            ("bar close 1h (17 symbols)", end.floor("1D") - pd.Timedelta(hours=1)),
            ("bar close 00:00 (1h, 4h, 1d)", end.floor("1D")),
        ]:
            runs = repeated_bar_close(Path(tmp) / f"close-{close.hour}", close, REPEATS)
            walls = sorted(run[0] for run in runs)
            wall, compute, closed, _ = sorted(runs)[len(runs) // 2]  # the median run
            alerts = sorted(run[3] for run in runs)
            rows.append((f"{label} {','.join(closed)}", wall, float("nan"), wall - compute, compute, 10.0))
            spreads.append(
                f"{label}: median of {len(runs)} shown (best {walls[0]:.1f} s, worst {walls[-1]:.1f} s); "
                f"alerts delivered after {alerts[len(alerts) // 2]:.1f} s (best {alerts[0]:.1f}, worst "
                f"{alerts[-1]:.1f}), the rest is the dry-run trades and the run's end"
            )
    print(f"{'scenario':<40}{'wall s':>8}{'start+imports':>15}{'Dagster':>9}{'compute':>9}{'goal':>6}")
    for label, wall, imports, dagster, compute, goal in rows:
        imp = "  (in-process)" if imports != imports else f"{imports:15.1f}"
        print(f"{label:<40}{wall:8.1f}{imp:>15}{dagster:9.1f}{compute:9.1f}{goal:6.0f}")
    print("\n".join(["", *spreads]))
    print(f"\nreference loop `sum(range(10**8))`: {before:.2f} s before, {reference_loop():.2f} s after")
    print(f"\n{os.cpu_count()} cores; Dagster = run bookkeeping and event writes to the sqlite instance")


if __name__ == "__main__":
    main()
