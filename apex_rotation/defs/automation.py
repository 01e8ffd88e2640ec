"""Jobs, schedules and the automation sensor: the data at each bar close, the signal stages when fresh.

Three schedules, one per timeframe, fire two minutes after that timeframe's bar closes (1h: every hour, 4h:
00/04/…/20 UTC, 1d: 00:00 UTC). Each requests one data run (bars → audited_bars → features, td_state) for
every symbol at its timeframe, with the run key `<tf>|<bar close>`: a tick evaluated twice (a daemon
restart, a catch-up) launches one run. The run carries its bar close, so a caught-up tick fetches exactly
what it would have fetched on time. (`build_schedule_from_partitioned_job` rejects static × static
partitions, hence the hand-built request.)

The signal stages (rotation_candidates → confirmations → scores → alerts → sim_trades, scanner_quality)
carry `AutomationCondition.eager()`: when a data run updates a timeframe's features, the automation sensor
requests that timeframe's partition of each of them once, after the data run finished (Dagster 1.13's
"Migrating from sensors to Declarative Automation" replaces the run-status sensor this project had).
Schedules and the sensor start switched off: turn them on in the UI (they need `dagster-daemon`, which
`dg dev` starts).
"""

import dagster as dg
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.defs.partitions import BAR_CLOSE_TAG, TIMEFRAMES_TAG
from apex_rotation.timeframes import TIMEFRAMES, floor_to_grid

# Minutes after the bar close: exchanges publish the closed candle within seconds; two minutes is slack.
CLOSE_DELAY_MIN = 2
CRONS = {
    "1h": f"{CLOSE_DELAY_MIN} * * * *",
    "4h": f"{CLOSE_DELAY_MIN} */4 * * *",
    "1d": f"{CLOSE_DELAY_MIN} 0 * * *",
}
DATA_JOB = "bars_to_features_job"
SIGNALS_JOB = "signals_job"
AUTOMATION_SENSOR = "signals_when_fresh"


def schedule_name(timeframe: str) -> str:
    return f"data_at_{timeframe}_close"


def build_jobs(per_symbol_assets: list, per_timeframe_assets: list) -> tuple:
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


def bar_close_run_request(cfg: AppConfig, timeframe: str, when: pd.Timestamp) -> dg.RunRequest:
    """The data run for every symbol at `timeframe` whose bar closed last before `when` (a tick time)."""
    close = floor_to_grid(pd.Timestamp(when), timeframe)
    names = cfg.basket.names
    return dg.RunRequest(
        run_key=f"{timeframe}|{close.isoformat()}",
        tags={
            "dagster/asset_partition_range_start": f"{names[0]}|{timeframe}",
            "dagster/asset_partition_range_end": f"{names[-1]}|{timeframe}",
            TIMEFRAMES_TAG: timeframe,
            BAR_CLOSE_TAG: close.isoformat(),
        },
    )


def build_schedules(cfg: AppConfig, data_job) -> list[dg.ScheduleDefinition]:
    def schedule(timeframe: str) -> dg.ScheduleDefinition:
        def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
            return bar_close_run_request(cfg, timeframe, pd.Timestamp(context.scheduled_execution_time))

        return dg.ScheduleDefinition(
            name=schedule_name(timeframe),
            cron_schedule=CRONS[timeframe],
            execution_timezone="UTC",
            job=data_job,
            execution_fn=evaluate,
            description=f"{CLOSE_DELAY_MIN} min after every {timeframe} bar close: bars → features for all "
            f"symbols at {timeframe} (run key {timeframe}|<bar close>).",
        )

    return [schedule(tf) for tf in TIMEFRAMES]


def build_automation_sensor(signal_assets: list) -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=dg.AssetSelection.assets(*signal_assets),
        minimum_interval_seconds=30,
        emit_backfills=False,  # plain runs, one per tick (a timeframe partition each), listed under Runs
        description="Runs each signal stage's timeframe partition once its features are fresh "
        "(AutomationCondition.eager on every signal asset).",
    )
