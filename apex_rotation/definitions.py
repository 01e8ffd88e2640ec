"""The Dagster `Definitions` of apex-rotation (loaded by `dagster dev -w workspace.yaml`)."""

import dagster as dg

from apex_rotation.config import AppConfig, load_config
from apex_rotation.defs.automation import build_jobs, build_schedules, build_sensors
from apex_rotation.defs.data_assets import build_data_assets
from apex_rotation.defs.feature_assets import build_feature_assets
from apex_rotation.defs.resources import ApexResource, duckdb_resource, redacting_console
from apex_rotation.defs.signal_assets import build_signal_assets


def build_definitions(cfg: AppConfig | None = None, config_path: str | None = None) -> dg.Definitions:
    """Everything built from one config (the basket decides the partitions)."""
    cfg = cfg or load_config(config_path)
    bars, audited_bars = build_data_assets(cfg)
    features, td_state = build_feature_assets(cfg, audited_bars)
    rotation_candidates, confirmations = build_signal_assets(cfg, features)
    data_job, signals_job = build_jobs(
        cfg, [bars, audited_bars, features, td_state], [rotation_candidates, confirmations]
    )
    return dg.Definitions(
        assets=[bars, audited_bars, features, td_state, rotation_candidates, confirmations],
        jobs=[data_job, signals_job],
        schedules=build_schedules(cfg, data_job),
        sensors=build_sensors(data_job, signals_job),
        resources={"apex": ApexResource(config_path=config_path), "duckdb": duckdb_resource()},
        executor=dg.in_process_executor,
        loggers={"console": redacting_console},
    )


defs = build_definitions()
