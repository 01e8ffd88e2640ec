"""Resources, declared once: where the store is, which source to refresh from, DuckDB, the console logger.

Resources carry paths and handles only; the `AppConfig` lives in the asset factories that were built from
it (`defs/build.py`), so one config decides both the partitions and what the assets compute.
"""

from __future__ import annotations

import logging

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from apex_rotation import log as logsetup
from apex_rotation.config import AppConfig
from apex_rotation.ingest.registry import make_perps_source, make_source
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import StoreRefresher


class StoreResource(dg.ConfigurableResource):
    """The Parquet store's root folder."""

    root: str

    @property
    def store(self) -> ParquetStore:
        return ParquetStore(self.root)


class SourceResource(dg.ConfigurableResource):
    """Which market-data source `bars` refreshes from (None: `data_sources.default_source`)."""

    name: str | None = None
    data_dir: str | None = None

    def refresher(
        self, cfg: AppConfig, store: ParquetStore, now: pd.Timestamp | None = None
    ) -> StoreRefresher:
        """`now`: the clock of the refresh (a bar-close run passes its bar close: it sees the market as of
        that close, so a caught-up tick fetches what it would have fetched on time); None: the real clock."""
        source = make_source(cfg, self.name, data_dir=self.data_dir)
        return StoreRefresher(cfg, store, source, perps_source=make_perps_source(cfg, source), now=now)


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO", is_required=False)},
    description="Dagster's console logger with every line passed through the project's secret redaction.",
)
def redacting_console(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("apex_rotation.dagster_console")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s - dagster - %(levelname)s - %(name)s - %(message)s"))
    handler.addFilter(logsetup.RedactingFilter())
    logger.handlers = [handler]
    logger.setLevel(init_context.logger_config["log_level"])
    logger.propagate = False
    return logger


def duckdb_resource() -> DuckDBResource:
    """In-memory DuckDB: queries read the Parquet files through views, so no process ever holds a file lock."""
    return DuckDBResource(database=":memory:")


# Handlers `apex run` adds while its runs execute (defs/runner.py: per-step timing and progress); empty in
# `dg dev` and the daemon, where the `step_events` logger then does nothing.
STEP_HANDLERS: list[logging.Handler] = []


@dg.logger(description="Passes the run's events to the handlers of `apex run` (step progress and timing).")
def step_events(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.getLogger("apex_rotation.dagster_steps")
    logger.handlers = list(STEP_HANDLERS)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger
