"""Jobs, schedules and sensors: at each bar close, one run covering every symbol and every closed timeframe.

One hourly schedule: at hh:02 the 1h bar has closed, at 00/04/…/20 the 4h bar too, at 00:00 the 1d bar.
Its run request selects the box of partitions every symbol × the timeframes that closed (multi-partition
ranges are per dimension, and 1h < 4h < 1d is the dimension's order), with a run key made of the bar close,
so a tick evaluated twice launches one run and no two runs fetch the same bars. When it succeeds, a
run-status sensor launches the cross-symbol signal run for the same timeframes.
(`build_schedule_from_partitioned_job` rejects static × static partitions, hence the hand-built request.)
"""

import dagster as dg
import pandas as pd
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from apex_rotation.config import AppConfig
from apex_rotation.timeframes import TIMEFRAMES, floor_to_grid

# Minutes after the bar close: exchanges publish the closed candle within seconds; two minutes is slack.
CLOSE_DELAY_MIN = 2
CRON = f"{CLOSE_DELAY_MIN} * * * *"
TIMEFRAMES_TAG = "apex/timeframes"
BAR_CLOSE_TAG = "apex/bar_close"
DATA_JOB = "bars_to_features_job"
SIGNALS_JOB = "signals_job"


def build_jobs(
    per_symbol_assets: list, per_timeframe_assets: list
) -> tuple[UnresolvedAssetJobDefinition, UnresolvedAssetJobDefinition]:
    data_job = dg.define_asset_job(
        DATA_JOB,
        selection=dg.AssetSelection.assets(*per_symbol_assets),
        description="bars → audited_bars → features, td_state for the asked symbol × timeframe partitions, "
        "in one run.",
    )
    signals_job = dg.define_asset_job(
        SIGNALS_JOB,
        selection=dg.AssetSelection.assets(*per_timeframe_assets),
        description="rotation_candidates → confirmations → scores → alerts → sim_trades, and scanner_quality, for "
        "the asked timeframes across all symbols.",
    )
    return data_job, signals_job


def closed_timeframes(close: pd.Timestamp) -> list[str]:
    """The timeframes whose bar closes at `close` (an hour boundary): 1h always, 4h every 4 hours, 1d at 00:00."""
    return [tf for tf in TIMEFRAMES if close == floor_to_grid(close, tf)]


def bar_close_run_request(cfg: AppConfig, when: pd.Timestamp) -> dg.RunRequest:
    """The run for every symbol and every timeframe whose bar closed at the hour before `when`."""
    close = floor_to_grid(pd.Timestamp(when), "1h")
    closed = closed_timeframes(close)
    names = cfg.basket.names
    return dg.RunRequest(
        run_key=f"bar_close|{close.isoformat()}",
        tags={
            "dagster/asset_partition_range_start": f"{names[0]}|{closed[0]}",
            "dagster/asset_partition_range_end": f"{names[-1]}|{closed[-1]}",
            TIMEFRAMES_TAG: ",".join(closed),
            BAR_CLOSE_TAG: close.isoformat(),
        },
    )


def build_schedules(cfg: AppConfig, data_job: UnresolvedAssetJobDefinition) -> list[dg.ScheduleDefinition]:
    def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        return bar_close_run_request(cfg, pd.Timestamp(context.scheduled_execution_time))

    return [
        dg.ScheduleDefinition(
            name="refresh_at_bar_close",
            cron_schedule=CRON,
            execution_timezone="UTC",
            job=data_job,
            execution_fn=evaluate,
            description=f"{CLOSE_DELAY_MIN} min after every hour: all symbols, the timeframes whose bar closed.",
        )
    ]


def signals_request(run_tags: dict[str, str], run_id: str) -> dg.RunRequest | dg.SkipReason:
    """The signal run that follows a successful bar-close run, for the timeframes that closed."""
    closed = [tf for tf in run_tags.get(TIMEFRAMES_TAG, "").split(",") if tf in TIMEFRAMES]
    if not closed:
        return dg.SkipReason(f"run {run_id} has no {TIMEFRAMES_TAG} tag: not a bar-close run")
    return dg.RunRequest(
        run_key=f"signals|{run_tags.get(BAR_CLOSE_TAG, run_id)}",
        tags={
            "dagster/asset_partition_range_start": closed[0],
            "dagster/asset_partition_range_end": closed[-1],
            TIMEFRAMES_TAG: ",".join(closed),
            BAR_CLOSE_TAG: run_tags.get(BAR_CLOSE_TAG, ""),
        },
    )


def build_sensors(
    data_job: UnresolvedAssetJobDefinition, signals_job: UnresolvedAssetJobDefinition
) -> list[dg.SensorDefinition]:
    @dg.run_status_sensor(
        run_status=dg.DagsterRunStatus.SUCCESS,
        monitored_jobs=[data_job],
        request_job=signals_job,
        name="signals_after_bar_close",
        description="When a timeframe's bar-close run succeeds, scan and confirm that timeframe.",
    )
    def signals_after_bar_close(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        return signals_request(dict(run.tags), run.run_id)

    return [signals_after_bar_close]
