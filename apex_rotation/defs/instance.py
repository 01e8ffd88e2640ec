"""The project's Dagster instance: where `apex run`, `dg dev`, schedules and backfills all record.

`$DAGSTER_HOME` when set; else `.dagster_home/` beside the store folder (the default store is `data/`, so
`<project>/.dagster_home/`, git-ignored). A new home gets a copy of the repo's `dagster.yaml` (the
template: sqlite storage in that folder, the `apex_store` pool, the run queue, no telemetry).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

TEMPLATE = Path(__file__).resolve().parents[2] / "dagster.yaml"
HOME_DIRNAME = ".dagster_home"


def instance_home(store_root: str | Path) -> Path:
    """$DAGSTER_HOME, else `.dagster_home` beside the store folder."""
    env = os.environ.get("DAGSTER_HOME")
    return Path(env) if env else Path(store_root).resolve().parent / HOME_DIRNAME


def prepare_home(home: Path) -> Path:
    """Create the folder and give it the template `dagster.yaml` when it has none."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and TEMPLATE.exists():
        shutil.copyfile(TEMPLATE, config)
    return home


def project_instance(store_root: str | Path) -> dg.DagsterInstance:
    """The persistent instance of this store (see the module docstring)."""
    return dg.DagsterInstance.from_config(str(prepare_home(instance_home(store_root))))
