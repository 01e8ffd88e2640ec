"""The batched sqlite event log stores what Dagster's own class stores, in fewer transactions.

The same multi-partition run (one step, several partitions, a check, a failure-free and a failing run) is
executed on an instance with Dagster's `SqliteEventLogStorage` and on one with
`BatchedSqliteEventLogStorage`; every question the UI and the automation ask of the event log must get the
same answer, and the index database must hold the same events.
"""

import os
import sqlite3
import time
from pathlib import Path

import dagster as dg
import pytest

from apex_rotation.defs.event_log import OPEN_RUN_DATABASES, BatchedSqliteEventLogStorage
from apex_rotation.defs.instance import DAGSTER_TUNING, prepare_home

PARTITIONS = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])


@dg.asset(
    partitions_def=PARTITIONS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("ok", asset="prices")],
)
def prices(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    if "d" in context.partition_keys:
        raise RuntimeError("partition d failed")
    return dg.MaterializeResult(
        metadata={"partitions": len(context.partition_keys)},
        check_results=[dg.AssetCheckResult(check_name="ok", passed=True)],
    )


@dg.asset(partitions_def=PARTITIONS, deps=[prices], backfill_policy=dg.BackfillPolicy.single_run())
def signals(context: dg.AssetExecutionContext) -> None:
    context.log.info(f"{len(context.partition_keys)} partitions")


def _instance(home: Path, batched: bool) -> dg.DagsterInstance:
    prepare_home(home)
    if not batched:  # Dagster's own class: the template alone
        text = (home / "dagster.yaml").read_text()
        (home / "dagster.yaml").write_text(text.split("\n# Added by apex for this instance")[0])
    return dg.DagsterInstance.from_config(str(home))


def _run(instance: dg.DagsterInstance, first: str, last: str) -> bool:
    job = dg.define_asset_job("all", selection=[prices, signals]).resolve(
        asset_graph=dg.Definitions(assets=[prices, signals]).resolve_asset_graph()
    )
    tags = {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return job.execute_in_process(instance=instance, tags=tags, raise_on_error=False).success


def _answers(instance: dg.DagsterInstance) -> dict:
    out = {}
    for key in (prices.key, signals.key):
        records = instance.fetch_materializations(key, limit=100).records
        out[key.to_user_string()] = {
            "materialized": sorted(instance.get_materialized_partitions(key)),
            "events": sorted(
                (r.partition_key, r.asset_materialization.metadata.get("partitions")) for r in records
            ),
            "planned": sorted(
                instance.get_latest_planned_materialization_info(key, p) is not None
                for p in PARTITIONS.get_partition_keys()
            ),
        }
    attempts = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations
    out["failed"] = sorted(attempts(prices.key))
    check = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(prices.key, "ok"), limit=10
    )
    out["check"] = sorted(e.status.value for e in check)
    return out


def _index_events(home: Path) -> list[tuple]:
    with sqlite3.connect(home / "history" / "runs" / "index.db") as con:
        rows = con.execute(
            "SELECT dagster_event_type, asset_key, partition FROM event_logs ORDER BY id"
        ).fetchall()
    return sorted(rows, key=lambda r: tuple(str(x) for x in r))


@pytest.mark.parametrize("planned_subset", ["", "true"])
def test_the_batched_event_log_answers_as_dagsters_own(tmp_path, monkeypatch, planned_subset):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", DAGSTER_TUNING["DAGSTER_EVENT_BATCH_SIZE"])
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", planned_subset)
    batches = []
    store_batch = BatchedSqliteEventLogStorage.store_event_batch
    monkeypatch.setattr(
        BatchedSqliteEventLogStorage,
        "store_event_batch",
        lambda self, evs: (batches.append(len(evs)), store_batch(self, evs)),
    )
    answers, events = {}, {}
    for batched in (False, True):
        home = tmp_path / ("batched" if batched else "dagster")
        instance = _instance(home, batched)
        assert isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage) is batched
        assert _run(instance, "a", "c")  # one run, three partitions per step
        assert not _run(instance, "c", "d")  # a failing run
        answers[batched], events[batched] = _answers(instance), _index_events(home)
        instance.dispose()
    assert max(batches) >= 3  # the partitions' materializations went through the batched path
    assert answers[True] == answers[False]
    assert answers[True]["prices"]["materialized"] == ["a", "b", "c"]
    # Dagster's price for one planned event per run (README, "One instance"): a failed run's partitions
    # are not marked failed
    assert answers[True]["failed"] == ([] if planned_subset else ["c", "d"])
    assert events[True] == events[False]
    assert ("ASSET_MATERIALIZATION", '["signals"]', "b") in events[True]


def _storage(tmp_path: Path) -> BatchedSqliteEventLogStorage:
    return BatchedSqliteEventLogStorage(base_dir=str(tmp_path / "runs"))


def _log_entry(run_id: str, message: str) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None,
        level="INFO",
        user_message=message,
        run_id=run_id,
        timestamp=time.time(),
    )


def test_a_live_run_view_sees_events_written_through_the_pooled_connection(tmp_path):
    """The webserver follows a run by watching `<run_id>.db`; a write through the pooled connection touches
    that file (in WAL mode the write alone leaves it as it was), even while another process is in the
    middle of a read, which keeps a checkpoint from reaching the file."""
    storage = _storage(tmp_path)
    storage.store_event(_log_entry("run1", "first"))  # the run's database exists before it is watched
    reader = sqlite3.connect(tmp_path / "runs" / "run1.db", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM event_logs").fetchall()  # a read snapshot held open
    seen: list[str] = []
    storage.watch("run1", None, lambda entry, cursor: seen.append(entry.user_message))
    try:
        for message in ("second", "third"):
            storage.store_event(_log_entry("run1", message))
            deadline = time.monotonic() + 10
            while message not in seen and time.monotonic() < deadline:
                time.sleep(0.05)
        assert seen[-2:] == ["second", "third"]
    finally:
        reader.close()
        storage.end_watch("run1", next(iter(storage._watchers["run1"]), None))
        storage.dispose()


def test_pooled_connections_stay_in_their_process_and_few_run_databases_stay_open(tmp_path):
    storage = _storage(tmp_path)
    for n in range(6):
        storage.store_event(_log_entry(f"run{n}", "hello"))
    open_runs = [k for k in storage._engines if k != "index"]
    assert open_runs == [f"run{n}" for n in range(6 - OPEN_RUN_DATABASES, 6)]  # the most recent ones
    parent_engine = storage._engine("run5")

    pid = os.fork()
    if pid == 0:  # the child must open its own connection, never use its parent's
        code = 1
        try:
            storage.store_event(_log_entry("run5", "from the child"))
            code = 0 if storage._engine("run5") is not parent_engine else 2
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    storage.store_event(_log_entry("run5", "from the parent"))
    messages = [r.event_log_entry.user_message for r in storage.get_records_for_run("run5").records]
    assert messages == ["hello", "from the child", "from the parent"]
    assert storage._engine("run5") is parent_engine

    storage.wipe()  # closes the run databases before Dagster deletes their files
    assert not list((tmp_path / "runs").glob("run*.db"))
    storage.store_event(_log_entry("run0", "after the wipe"))
    assert [r.event_log_entry.user_message for r in storage.get_records_for_run("run0").records] == [
        "after the wipe"
    ]
    storage.dispose()
