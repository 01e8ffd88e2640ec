"""Dagster's sqlite event log, storing a batch of events in one transaction per database.

Why: with sqlite, Dagster stores every event on its own, through a new engine and connection for the run's
database and again for the index database, each with its own commit. A multi-partition step reports one
materialization per partition, so a midnight bar-close run (51 partitions × 4 assets) spent some 3 s of a
2-core machine in those transactions. The run worker already hands its events over in batches
(`DAGSTER_EVENT_BATCH_SIZE`, defs/instance.py); this class stores each batch with the same statements
Dagster's `SqliteEventLogStorage.store_event` runs (the rows are identical), in one transaction on the
run's database and one on the index. Every database is also reached through one pooled engine per
process instead of a new engine, connection and WAL checkpoint per transaction (Dagster's `_connect`): the
~400 transactions of a midnight bar close cost ~2.5 ms each in that setup alone (a write to a run's
database touches its file, which the UI's live run view watches). Everything else, what is
read and written included, is Dagster's class unchanged.

The project's instance uses it (defs/instance.py adds it to a new instance's `dagster.yaml`); remove that
block to go back to Dagster's class. PostgreSQL storage (docs/deploy.md) does not need it.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine

OPEN_RUN_DATABASES = 4
_INHERITED: list = []  # a forked child's copies of its parent's engines: never disposed there


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` whose `store_event_batch` writes the batch in one transaction per database."""

    _engines: OrderedDict[str, Engine] | None = None  # shard → engine, most recently used last
    _engines_pid: int | None = None

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteEventLogStorage:
        return cls(inst_data=inst_data, **config_value)

    def run_connection(self, run_id: str | None = None) -> AbstractContextManager[Connection]:
        return self._pooled_connect(run_id)

    def index_connection(self) -> AbstractContextManager[Connection]:
        return self._pooled_connect(INDEX_SHARD_NAME)

    @contextmanager
    def _pooled_connect(self, shard: str | None) -> Iterator[Connection]:
        """A transaction on one database through this process's pooled engine for it, Dagster's lock held
        as in its `_connect`. After a transaction that wrote to a run's database, `<run_id>.db` is touched:
        the webserver follows a live run by watching that file, which a write in WAL mode leaves untouched
        until a checkpoint (Dagster's `_connect` gets one by closing the last connection; with pooled
        connections, and a reader in the middle of a read, none may come)."""
        if not isinstance(shard, str):
            raise TypeError(f"shard must be a run id or the index, not {shard!r}")
        with self._db_lock, self._engine(shard).connect() as conn:
            raw = conn.connection.dbapi_connection
            before = raw.total_changes
            with conn.begin():
                yield conn
            if shard != INDEX_SHARD_NAME and raw.total_changes != before:
                os.utime(self.path_for_shard(shard))  # the watchdog reports it as a modification

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, made once per process: a forked child never uses or closes its parent's
        connections (SQLite forbids carrying one across fork; they are kept referenced, so never freed
        there) and opens its own. A few run databases are kept open (a webserver reads many runs); the least
        recently used one is closed."""
        if self._engines is None or self._engines_pid != os.getpid():
            if self._engines is not None:
                _INHERITED.append(self._engines)
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(
                self.conn_string_for_shard(shard),
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                pool_size=1,
            )
            if shard not in self._initialized_dbs:  # as Dagster's `_connect`: once per shard
                self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine
        runs = [k for k in self._engines if k != INDEX_SHARD_NAME]
        for old in runs[: max(0, len(runs) - OPEN_RUN_DATABASES)]:
            self._engines.pop(old).dispose()
        return engine

    def _close_engines(self) -> None:
        if self._engines is not None and self._engines_pid == os.getpid():
            with self._db_lock:
                for engine in self._engines.values():
                    engine.dispose()
        self._engines = None

    def wipe(self) -> None:  # Dagster deletes the run databases' files: close them first
        self._close_engines()
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._close_engines()

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
