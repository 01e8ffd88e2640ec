"""Builds the whole Dagster `Definitions` from one config: assets, checks, jobs, schedules, the automation
sensor, resources.

`definitions.py` calls this lazily (Dagster's `@dg.definitions`); `apex run` and the tests call it with their
own config and store, so nothing is built at import time and the partitions always match the config used.
"""

from __future__ import annotations

import dagster as dg

from apex_rotation import log as logsetup
from apex_rotation.config import AppConfig
from apex_rotation.defs.alert_assets import build_alert_assets
from apex_rotation.defs.automation import build_automation_sensor, build_jobs, build_schedules
from apex_rotation.defs.declare import timeframe_chain_asset
from apex_rotation.defs.feature_assets import build_feature_assets
from apex_rotation.defs.market_data_assets import build_market_data_assets
from apex_rotation.defs.partitions import timeframe_partitions
from apex_rotation.defs.research_assets import build_backtest_report, build_research_assets
from apex_rotation.defs.resources import (
    SourceResource,
    StoreResource,
    duckdb_resource,
    redacting_console,
    step_events,
)
from apex_rotation.defs.score_assets import build_score_assets
from apex_rotation.defs.signal_assets import build_signal_assets
from apex_rotation.defs.sim_assets import build_sim_assets
from apex_rotation.store.tables import FEATURES, TD_STATE


def build_definitions(
    cfg: AppConfig, *, store_root: str | None = None, source: str | None = None, data_dir: str | None = None
) -> dg.Definitions:
    """Everything built from one config (the basket decides the partitions); the store defaults to the
    config's, the source to `data_sources.default_source`."""
    if logsetup.is_configured():  # an entry point (the CLI) configured logging: only teach it the secrets
        logsetup.set_secrets(cfg.secrets().values())
    else:
        logsetup.configure(cfg.logging.format, cfg.logging.level, secrets=cfg.secrets().values())
    bars, audited_bars = build_market_data_assets(cfg)
    feature_tables = build_feature_assets(cfg, audited_bars)  # `features` and `td_state`, one step
    features, td_state = dg.AssetKey(FEATURES.name), dg.AssetKey(TD_STATE.name)
    chained = [  # per timeframe in this order, one task each: one step (defs/declare.py)
        *build_signal_assets(cfg, features),  # rotation_candidates, confirmations
        *build_research_assets(cfg),  # scanner_quality
        *build_score_assets(cfg, features, td_state),  # scores
    ]
    signal_tables = timeframe_chain_asset("signal_tables", cfg, timeframe_partitions(), chained)
    (alerts,) = build_alert_assets(cfg)
    (sim_trades,) = build_sim_assets(cfg)
    signal_assets = [signal_tables, alerts, sim_trades]
    data_job, signals_job = build_jobs([bars, audited_bars, feature_tables], signal_assets)
    backtest_report = build_backtest_report(cfg, [features, td_state])  # on demand: in no job
    return dg.Definitions(
        assets=[bars, audited_bars, feature_tables, *signal_assets, backtest_report],
        jobs=[data_job, signals_job],
        schedules=build_schedules(cfg, data_job),
        sensors=[build_automation_sensor(signal_assets)],
        resources={
            "store": StoreResource(root=str(store_root or cfg.data_root())),
            "source": SourceResource(name=source, data_dir=data_dir),
            "duckdb": duckdb_resource(),
        },
        executor=dg.in_process_executor,
        loggers={"console": redacting_console, "step_events": step_events},
    )
