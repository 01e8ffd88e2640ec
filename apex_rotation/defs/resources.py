"""Resources, declared once: the app config, the Parquet store, DuckDB, the data plane."""

from __future__ import annotations

import logging
from functools import lru_cache

import dagster as dg
from dagster_duckdb import DuckDBResource

from apex_rotation import log as logsetup
from apex_rotation.config import AppConfig, load_config
from apex_rotation.ingest.registry import make_perps_source, make_source
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import DataPlane


class ApexResource(dg.ConfigurableResource):
    """The project's config and store; `source` picks the market-data source (default from the config)."""

    config_path: str | None = None
    store_root: str | None = None
    source: str | None = None
    data_dir: str | None = None

    @property
    def config(self) -> AppConfig:
        return _configured(self.config_path)

    @property
    def store(self) -> ParquetStore:
        return ParquetStore(self.store_root or self.config.data_root())

    def data_plane(self) -> DataPlane:
        source = make_source(self.config, self.source, data_dir=self.data_dir)
        return DataPlane(self.config, self.store, source, perps_source=make_perps_source(self.config, source))


@lru_cache(maxsize=8)
def _configured(path: str | None) -> AppConfig:
    cfg = load_config(path)
    if not logsetup.is_configured():  # an entry point (the CLI) may have configured it already
        logsetup.configure(cfg.logging.format, cfg.logging.level, secrets=cfg.secrets().values())
    else:
        logsetup.set_secrets(cfg.secrets().values())
    return cfg


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
