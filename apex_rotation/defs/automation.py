"""Jobs, schedules and sensors: at each bar close, one run per timeframe covering every symbol.

`build_schedule_from_partitioned_job` rejects static × static partitions, so each schedule builds its run
request itself: a partition range over the symbol dimension at one timeframe (multi-partition ranges are
per dimension), and a run key made of the timeframe and the bar close, so a tick evaluated twice launches
one run. When that run succeeds, a run-status sensor launches the cross-symbol signal run of the same
timeframe.
"""

import dagster as dg
import pandas as pd
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from apex_rotation.config import AppConfig
from apex_rotation.defs.partitions import (
    timeframe_range_tags,
)
from apex_rotation.timeframes import TIMEFRAMES, floor_to_grid

# Minutes after the bar close: exchanges publish the closed candle within seconds; two minutes is slack.
CLOSE_DELAY_MIN = 2
CRON_BY_TIMEFRAME = {
    "1h": f"{CLOSE_DELAY_MIN} * * * *",
    "4h": f"{CLOSE_DELAY_MIN} */4 * * *",
    "1d": f"{CLOSE_DELAY_MIN} 0 * * *",
}
TIMEFRAME_TAG = "apex/timeframe"
BAR_CLOSE_TAG = "apex/bar_close"
DATA_JOB = "bars_to_features_job"
SIGNALS_JOB = "signals_job"


def build_jobs(
    cfg: AppConfig, per_symbol_assets: list, per_timeframe_assets: list
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
        description="rotation_candidates → confirmations for the asked timeframes, across all symbols.",
    )
    return data_job, signals_job


def bar_close_run_request(cfg: AppConfig, timeframe: str, when: pd.Timestamp) -> dg.RunRequest:
    """The run for every symbol of `timeframe` after the bar that closed at or before `when`."""
    close = floor_to_grid(pd.Timestamp(when), timeframe)
    return dg.RunRequest(
        run_key=f"{timeframe}|{close.isoformat()}",
        tags={
            **timeframe_range_tags(cfg, timeframe),
            TIMEFRAME_TAG: timeframe,
            BAR_CLOSE_TAG: close.isoformat(),
        },
    )


def build_schedules(cfg: AppConfig, data_job: UnresolvedAssetJobDefinition) -> list[dg.ScheduleDefinition]:
    schedules = []
    for timeframe in TIMEFRAMES:

        def evaluate(context: dg.ScheduleEvaluationContext, timeframe: str = timeframe) -> dg.RunRequest:
            return bar_close_run_request(cfg, timeframe, pd.Timestamp(context.scheduled_execution_time))

        schedules.append(
            dg.ScheduleDefinition(
                name=f"refresh_{timeframe}_at_bar_close",
                cron_schedule=CRON_BY_TIMEFRAME[timeframe],
                execution_timezone="UTC",
                job=data_job,
                execution_fn=evaluate,
                description=f"Every symbol's {timeframe} partitions, {CLOSE_DELAY_MIN} min after the bar close.",
            )
        )
    return schedules


def signals_request(run_tags: dict[str, str], run_id: str) -> dg.RunRequest | dg.SkipReason:
    """The signal run that follows a successful bar-close run of one timeframe."""
    timeframe = run_tags.get(TIMEFRAME_TAG)
    if timeframe not in TIMEFRAMES:
        return dg.SkipReason(f"run {run_id} has no {TIMEFRAME_TAG} tag: not a bar-close run")
    return dg.RunRequest(
        run_key=f"signals|{timeframe}|{run_tags.get(BAR_CLOSE_TAG, run_id)}",
        partition_key=timeframe,
        tags={TIMEFRAME_TAG: timeframe, BAR_CLOSE_TAG: run_tags.get(BAR_CLOSE_TAG, "")},
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
