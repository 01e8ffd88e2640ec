"""The project's Dagster instance: where `apex run`, `dg dev`, schedules and backfills all record.

`$DAGSTER_HOME` when set; else `.dagster_home/` beside the store folder (the default store is `data/`, so
`<project>/.dagster_home/`, git-ignored). A new home gets a copy of the repo's `dagster.yaml` (the
template: sqlite storage in that folder, the `apex_store` pool, the run queue, no telemetry) plus the
batched sqlite event log (defs/event_log.py) at that folder's path.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from apex_rotation.config import CONFIG_ENV, DATA_DIR_ENV

PROJECT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT / "dagster.yaml"
HOME_DIRNAME = ".dagster_home"

# Dagster's own switches for the sqlite instance, read from the environment of the process that creates a
# run (`apex run`; the daemon under `apex ui`) and of the run worker. With sqlite each event is its own
# transaction, and a bar-close run of 51 partitions × 4 assets emits a materialization per partition:
# * DAGSTER_EVENT_BATCH_SIZE: the run worker hands events to the instance in batches (a warm `apex run`
#   went from 10.2 s to 7.0 s of Dagster time, 2026-12-01).
# * DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS: one "materialization planned" event per asset and
#   run (the partition range) instead of one per partition: 204 fewer events in a midnight bar-close run.
#   Dagster's price, documented beside the switch: when such a run fails, its partitions are not marked
#   failed; they keep their last materialization, and the run shows as failed (README, "One instance").
# A value already in the environment wins.
DAGSTER_TUNING = {
    "DAGSTER_EVENT_BATCH_SIZE": "200",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
}

EVENT_LOG_BLOCK = """
# Added by apex for this instance: Dagster's sqlite event log storing each batch of events in one
# transaction per database (apex_rotation/defs/event_log.py). Remove this block to use Dagster's own
# class, and before switching to PostgreSQL storage (docs/deploy.md).
event_log_storage:
  module: apex_rotation.defs.event_log
  class: BatchedSqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""


def instance_home(store_root: str | Path) -> Path:
    """$DAGSTER_HOME, else `.dagster_home` beside the store folder."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env) if env else Path(store_root).resolve().parent / HOME_DIRNAME


def prepare_home(home: Path) -> Path:
    """Create the folder and give it the template `dagster.yaml` when it has none, plus the batched sqlite
    event log (defs/event_log.py) at the folder's own path (Dagster's default place for it)."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and TEMPLATE.exists():
        runs = (home / "history" / "runs").resolve()
        config.write_text(TEMPLATE.read_text() + EVENT_LOG_BLOCK.format(base_dir=json.dumps(f"{runs}/")))
    return home


def project_instance(store_root: str | Path) -> dg.DagsterInstance:
    """The persistent instance of this store (see the module docstring)."""
    return dg.DagsterInstance.from_config(str(prepare_home(instance_home(store_root))))


def apply_tuning() -> None:
    """Set `DAGSTER_TUNING` in this process's environment where the user has not set it."""
    for name, value in DAGSTER_TUNING.items():
        os.environ.setdefault(name, value)


def ui_environment(store_root: str | Path, config: str | None = None) -> dict[str, str]:
    """The environment of `dg dev` for this store: its instance home (prepared), the store and config the
    code location loads, and `DAGSTER_TUNING` (the daemon creates the scheduled runs)."""
    env = {**DAGSTER_TUNING, **os.environ}
    env["DAGSTER_HOME"] = str(prepare_home(instance_home(store_root)).resolve())
    env[DATA_DIR_ENV] = str(Path(store_root).resolve())
    if config:
        env[CONFIG_ENV] = str(Path(config).resolve())
    return env
