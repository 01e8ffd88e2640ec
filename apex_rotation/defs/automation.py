"""Jobs, schedules and the automation sensor: the data at each bar close, the signal stages when fresh.

Three schedules, one per kind of bar close, fire two minutes after it: `data_at_1h_close` at the hours only
a 1h bar closes, `data_at_4h_close` at 04/08/12/16/20 UTC (1h and 4h close), `data_at_1d_close` at 00:00 UTC
(all three close). So every hour launches exactly one data run (bars → audited_bars → features, td_state)
for every symbol × the timeframes that closed: one refresh, one audit of the 1h base, 24 runs a day. Its
run key is `bar_close|<close>`: a tick evaluated twice (a daemon restart, a catch-up) launches one run. The
run carries its bar close, so a caught-up tick fetches exactly what it would have fetched on time.
(`build_schedule_from_partitioned_job` rejects static × static partitions, hence the hand-built request.)

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
# By the longest timeframe that closes at the tick (the run covers it and every shorter one).
CRONS = {
    "1h": f"{CLOSE_DELAY_MIN} 1-3,5-7,9-11,13-15,17-19,21-23 * * *",
    "4h": f"{CLOSE_DELAY_MIN} 4,8,12,16,20 * * *",
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


def bar_close_run_request(cfg: AppConfig, when: pd.Timestamp) -> dg.RunRequest:
    """The data run for every symbol × the timeframes whose bar closed at the hour before `when` (a tick).

    The partitions are a box (every symbol × 1h…the longest timeframe that closed): multi-partition ranges
    are per dimension, and 1h < 4h < 1d is the timeframe dimension's order."""
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


def build_schedules(cfg: AppConfig, data_job) -> list[dg.ScheduleDefinition]:
    def schedule(timeframe: str) -> dg.ScheduleDefinition:
        def evaluate(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
            return bar_close_run_request(cfg, pd.Timestamp(context.scheduled_execution_time))

        return dg.ScheduleDefinition(
            name=schedule_name(timeframe),
            cron_schedule=CRONS[timeframe],
            execution_timezone="UTC",
            job=data_job,
            execution_fn=evaluate,
            description=f"{CLOSE_DELAY_MIN} min after the hours whose longest closing bar is {timeframe}: bars "
            f"→ features for all symbols at 1h…{timeframe} (run key bar_close|<close>).",
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
