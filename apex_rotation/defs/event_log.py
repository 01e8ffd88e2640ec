"""Dagster's sqlite event log, storing a batch of events in one transaction per database.

Why: with sqlite, Dagster stores every event on its own, through a new engine and connection for the run's
database and again for the index database, each with its own commit. A multi-partition step reports one
materialization per partition, so a midnight bar-close run (51 partitions × 4 assets) spent some 3 s of a
2-core machine in those transactions. The run worker already hands its events over in batches
(`DAGSTER_EVENT_BATCH_SIZE`, defs/instance.py); this class stores each batch with the same statements
Dagster's `SqliteEventLogStorage.store_event` runs (the rows are identical), in one transaction on the
run's database and one on the index. Everything else, reads included, is Dagster's class unchanged.

The project's instance uses it (defs/instance.py adds it to a new instance's `dagster.yaml`); remove that
block to go back to Dagster's class. PostgreSQL storage (docs/deploy.md) does not need it.
"""

from __future__ import annotations

from collections.abc import Sequence

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` writes the batch in one transaction per database."""

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        inserts = [self.prepare_insert_event(e) for e in events]  # each event serialised once
        by_run: dict[str, list] = {}
        for event, insert in zip(events, inserts, strict=True):
            by_run.setdefault(event.run_id, []).append(insert)
        for run_id, run_inserts in by_run.items():
            with self.run_connection(run_id) as conn:
                for insert in run_inserts:
                    conn.execute(insert)

        asset = [(e, i) for e, i in zip(events, inserts, strict=True) if _is(e, ASSET_EVENTS)]
        if asset:  # mirrored in the index database, as store_event does, in one transaction
            with self.index_transaction() as conn:
                ids = []
                for event, insert in asset:
                    with db_result(conn, insert) as result:
                        ids.append(result.inserted_primary_key[0])
                    self._store_asset_event(conn, event, ids[-1])
                self._store_asset_event_tags(conn, [e for e, _ in asset], ids)

        for event, insert in zip(events, inserts, strict=True):  # rare (a few per step): as store_event
            if _is(event, ASSET_CHECK_EVENTS):
                with self.index_connection() as conn, db_result(conn, insert) as result:
                    event_id = result.inserted_primary_key[0]
                self.store_asset_check_event(event, event_id)
            if _is(event, EVENT_TYPE_TO_PIPELINE_RUN_STATUS):
                with self.index_connection() as conn:
                    conn.execute(insert)


def _is(event: EventLogEntry, types) -> bool:
    return event.is_dagster_event and event.dagster_event_type in types
