"""Run the whole asset graph for every partition in two batched in-process runs (what `apex run` does).

Dagster costs seconds per run, so partitions are batched: one run for all symbol × timeframe partitions
(bars → audited_bars → features, td_state) and one for all timeframe partitions (rotation_candidates →
confirmations, scanner_quality); the assets' single-run backfill policy makes each a single step per asset. With
$DAGSTER_HOME set the runs are recorded in that instance (and show in `dagster dev`), else in an
ephemeral one.
"""

import os
from dataclasses import dataclass

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB
from apex_rotation.defs.build import build_definitions
from apex_rotation.timeframes import TIMEFRAMES

# Dagster's console logger prints every event at DEBUG; the CLI shows warnings and the summary only.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class PipelineRun:
    success: bool
    run_ids: list[str]
    failed_checks: list[str]


def full_range_tags(start: str, end: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def run_pipeline(
    cfg: AppConfig,
    *,
    store_root: str | None = None,
    source: str | None = None,
    data_dir: str | None = None,
) -> PipelineRun:
    defs = build_definitions(cfg, store_root=store_root, source=source, data_dir=data_dir)
    names = cfg.basket.names
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    plan = [
        (DATA_JOB, full_range_tags(f"{names[0]}|{TIMEFRAMES[0]}", f"{names[-1]}|{TIMEFRAMES[-1]}")),
        (SIGNALS_JOB, full_range_tags(TIMEFRAMES[0], TIMEFRAMES[-1])),
    ]
    run_ids, failed = [], []
    for job_name, tags in plan:
        result = defs.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )
        run_ids.append(result.run_id)
        failed += [
            f"{e.asset_key.to_user_string()}:{e.check_name}"
            for e in result.get_asset_check_evaluations()
            if not e.passed
        ]
        if not result.success:
            return PipelineRun(False, run_ids, failed)
    return PipelineRun(True, run_ids, failed)
