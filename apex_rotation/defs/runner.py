"""Run the whole asset graph for every partition in two batched in-process runs (what `apex run` does).

Dagster costs time per run and per step, so partitions are batched: one run for all symbol × timeframe
partitions (bars → audited_bars → features, td_state) and one for all timeframe partitions (the signal
stages); the assets' single-run backfill policy makes each a single step per asset. The runs are recorded
in the project's instance (defs/instance.py), so `dg dev` shows them; steps skip the partitions whose
inputs did not change (defs/incremental.py). Each step is reported as it ends (`progress`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.instance import apply_tuning, project_instance
from apex_rotation.defs.prelaunch import data_run_idle, signals_run_idle
from apex_rotation.defs.resources import STEP_HANDLERS
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.timeframes import TIMEFRAMES

# Dagster's console logger prints every event at DEBUG; the CLI shows warnings and the summary only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class StepTime:
    """One step: its wall time, and the part inside the asset function (`compute`: until its result)."""

    step: str
    seconds: float
    compute: float
    detail: str = ""


@dataclass
class PipelineRun:
    """What the runs did: `failed_checks` are ERROR checks that failed, `warnings` WARN ones (never fatal)."""

    success: bool
    run_ids: list[str]
    failed_checks: list[str]
    warnings: list[str] = field(default_factory=list)
    steps: list[StepTime] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the runs (Dagster included)
    skipped: list[str] = field(default_factory=list)  # runs not launched: nothing to compute, and why

    @property
    def compute_seconds(self) -> float:
        return sum(s.compute for s in self.steps)


class StepTimer(logging.Handler):
    """Reads Dagster's step events off the run's log records: start, the first materialization (the asset
    function has returned), success or failure; calls `on_step` as each step ends."""

    def __init__(self, on_step: Callable[[StepTime], None] | None):
        super().__init__(logging.DEBUG)
        self.on_step, self.steps = on_step, []
        self._start: dict[str, float] = {}
        self._returned: dict[str, float] = {}
        self._detail: dict[str, dict[str, str]] = {}  # step → asset → "n computed, m unchanged"

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        event, step = meta.get("dagster_event"), meta.get("step_key")
        if event is None or step is None:
            return
        kind, now = event.event_type, time.perf_counter()
        if kind == dg.DagsterEventType.STEP_START:
            self._start[step] = now
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            self._returned.setdefault(step, now)
            materialization = event.event_specific_data.materialization
            asset, details = materialization.asset_key.to_user_string(), self._detail.setdefault(step, {})
            values = materialization.metadata  # the same on each partition's event: read the first
            counts = {k: getattr(values.get(k), "value", None) for k in ("computed", "unchanged")}
            if asset not in details and counts["computed"] is not None:
                details[asset] = f"{counts['computed']} computed, {counts['unchanged']} unchanged"
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            start = self._start.pop(step, now)
            details = self._detail.pop(step, {})
            if len(set(details.values())) <= 1:  # one asset, or a step's assets all alike: said once
                detail = next(iter(details.values()), "")
            else:  # a step of several assets whose counts differ names each
                detail = "; ".join(f"{asset} {d}" for asset, d in details.items())
            timing = StepTime(step, now - start, self._returned.pop(step, now) - start, detail)
            if kind == dg.DagsterEventType.STEP_FAILURE:
                timing.detail = "FAILED"
            self.steps.append(timing)
            if self.on_step:
                self.on_step(timing)


def print_step(timing: StepTime) -> None:
    """One line per step on stderr: `  features            3.1 s  (51 computed, 0 unchanged)`."""
    detail = f"  ({timing.detail})" if timing.detail else ""
    print(f"  {timing.step:<22}{timing.seconds:6.1f} s{detail}", file=sys.stderr, flush=True)


def full_range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def contiguous_blocks(timeframes: Sequence[str]) -> list[list[str]]:
    """Asked timeframes as runs of neighbours in the partition order (a range tag covers one run)."""
    blocks: list[list[str]] = []
    for tf in sorted(set(timeframes), key=TIMEFRAMES.index):
        if blocks and TIMEFRAMES.index(tf) == TIMEFRAMES.index(blocks[-1][-1]) + 1:
            blocks[-1].append(tf)
        else:
            blocks.append([tf])
    return blocks


def run_pipeline(
    cfg: AppConfig,
    *,
    store_root: str | None = None,
    source: str | None = None,
    data_dir: str | None = None,
    timeframes: Sequence[str] = TIMEFRAMES,
    instance: dg.DagsterInstance | None = None,
    progress: Callable[[StepTime], None] | None = None,
    notify: Callable[[str], None] | None = None,
    force: bool = False,
) -> PipelineRun:
    """Every basket symbol of `cfg` × the asked timeframes, data job then signals job, one run per contiguous
    block of timeframes (one run each for the default all three), recorded in `instance` (default: the
    project's instance of this store).

    A run whose every partition would be skipped is not launched (defs/prelaunch.py; `force` launches it
    anyway): `notify` hears why ("data: nothing new since …, run skipped"), `PipelineRun.skipped` keeps it."""
    root = str(store_root or cfg.data_root())
    store = ParquetStore(root)
    names = cfg.basket.names
    blocks = contiguous_blocks(timeframes)
    plan = [(DATA_JOB, b, full_range_tags(f"{names[0]}|{b[0]}", f"{names[-1]}|{b[-1]}")) for b in blocks]
    plan += [(SIGNALS_JOB, b, full_range_tags(b[0], b[-1])) for b in blocks]
    run = PipelineRun(True, [], [])
    run_config = {"loggers": {**QUIET["loggers"], "step_events": {}}}
    started = time.perf_counter()
    apply_tuning()
    timer = StepTimer(progress)
    STEP_HANDLERS.append(timer)
    defs = None
    try:
        for job_name, block, tags in plan:
            if not force:
                if job_name == DATA_JOB:
                    idle = data_run_idle(cfg, store, block, source=source, data_dir=data_dir)
                else:
                    idle = signals_run_idle(cfg, store, block)
                if idle:
                    label = "data" if job_name == DATA_JOB else "signals"
                    if block != list(TIMEFRAMES):
                        label += f" {','.join(block)}"
                    run.skipped.append(f"{label}: {idle}, run skipped")
                    if notify:
                        notify(run.skipped[-1])
                    continue
            if defs is None:
                defs = build_definitions(cfg, store_root=root, source=source, data_dir=data_dir)
                instance = instance or project_instance(root)
            result = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, tags=tags, raise_on_error=False, run_config=run_config
            )
            run.run_ids.append(result.run_id)
            for e in result.get_asset_check_evaluations():
                if not e.passed:
                    name = f"{e.asset_key.to_user_string()}:{e.check_name}"
                    (run.warnings if e.severity == dg.AssetCheckSeverity.WARN else run.failed_checks).append(
                        name
                    )
            if not result.success:
                run.success = False
                break
    finally:
        STEP_HANDLERS.remove(timer)
        run.steps = timer.steps
        run.seconds = time.perf_counter() - started
    return run
