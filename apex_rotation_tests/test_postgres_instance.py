"""The scale-out path's first step: the Dagster instance on PostgreSQL (`dagster-postgres`), for real.

A throw-away PostgreSQL cluster on 127.0.0.1 (Debian's `postgresql`, installed by `.ci/setup-system.sh`),
an instance whose `dagster.yaml` is the repo's template plus the `storage: postgres` block of
docs/deploy.md, and a materialization recorded there. Skipped, with the reason, where PostgreSQL is absent.
"""

from __future__ import annotations

import dagster as dg
import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, load_config
from apex_rotation.defs.runner import run_pipeline
from apex_rotation.store.parquet import ParquetStore
from apex_rotation_tests.services import PROJECT, postgres_bin, postgres_server

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL is not installed (bash .ci/setup-system.sh installs it)"
)


def test_a_materialization_recorded_in_postgres(tmp_path):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = ["BTC", "ETH", "SOL"]
    raw["synthetic"]["days"] = 30
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(raw))
    cfg = load_config(tmp_path / "cfg.yaml")
    with postgres_server() as port:
        home = tmp_path / "home"
        home.mkdir()
        config = yaml.safe_load((PROJECT / "dagster.yaml").read_text())
        # psycopg2 named in the URL: SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3 (not installed)
        url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        config["storage"] = {"postgres": {"postgres_url": url}}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
        instance = dg.DagsterInstance.from_config(str(home))
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        result = run_pipeline(cfg, store_root=str(tmp_path / "store"), timeframes=["4h"], instance=instance)
        assert result.success and len(result.run_ids) == 2
        # read back through a second instance object: it is in the database, not in this process
        again = dg.DagsterInstance.from_config(str(home))
        runs = again.get_runs(dg.RunsFilter(run_ids=result.run_ids))
        assert {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        event = again.get_latest_materialization_event(dg.AssetKey("sim_trades"))
        assert event is not None and event.run_id == result.run_ids[-1]
        assert again.get_materialized_partitions(dg.AssetKey("features")) == {"BTC|4h", "ETH|4h", "SOL|4h"}
        instance.dispose()
        again.dispose()
    assert ParquetStore(tmp_path / "store").exists("sim_trades", "4h", "basket")
