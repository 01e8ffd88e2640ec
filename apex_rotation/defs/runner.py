"""Run the whole asset graph for every partition in two batched in-process runs (what `apex run` does).

Dagster costs seconds per run, so partitions are batched: one run for all symbol × timeframe partitions
(bars → audited_bars → features, td_state) and one for all timeframe partitions (rotation_candidates →
confirmations, scanner_quality); the assets' single-run backfill policy makes each a single step per asset. With
$DAGSTER_HOME set the runs are recorded in that instance (and show in `dagster dev`), else in an
ephemeral one.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB
from apex_rotation.defs.build import build_definitions
from apex_rotation.timeframes import TIMEFRAMES

# Dagster's console logger prints every event at DEBUG; the CLI shows warnings and the summary only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class PipelineRun:
    """What the runs did: `failed_checks` are ERROR checks that failed, `warnings` WARN ones (never fatal)."""

    success: bool
    run_ids: list[str]
    failed_checks: list[str]
    warnings: list[str] = field(default_factory=list)


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
) -> PipelineRun:
    """Every basket symbol of `cfg` × the asked timeframes, data job then signals job, one run per contiguous
    block of timeframes (one run each for the default all three)."""
    defs = build_definitions(cfg, store_root=store_root, source=source, data_dir=data_dir)
    names = cfg.basket.names
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    blocks = contiguous_blocks(timeframes)
    plan = [(DATA_JOB, full_range_tags(f"{names[0]}|{b[0]}", f"{names[-1]}|{b[-1]}")) for b in blocks]
    plan += [(SIGNALS_JOB, full_range_tags(b[0], b[-1])) for b in blocks]
    run = PipelineRun(True, [], [])
    for job_name, tags in plan:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )
        run.run_ids.append(result.run_id)
        for e in result.get_asset_check_evaluations():
            if not e.passed:
                name = f"{e.asset_key.to_user_string()}:{e.check_name}"
                (run.warnings if e.severity == dg.AssetCheckSeverity.WARN else run.failed_checks).append(name)
        if not result.success:
            run.success = False
            return run
    return run
