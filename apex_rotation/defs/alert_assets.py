"""`alerts`: one partition per timeframe, downstream of `scores` (fired rows → alerts, recent ones delivered)."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.incremental import timeframe_step
from apex_rotation.defs.metadata import basket_metadata, latest_tables
from apex_rotation.defs.partitions import timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.exec.alerts.delivery import Delivery
from apex_rotation.exec.alerts.outbox import Outbox
from apex_rotation.exec.alerts.stage import alert_problems, run_alerts
from apex_rotation.log import redact_obj
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import ALERTS

GROUP = "exec"
SCORES_KEY = dg.AssetKey("scores")
ALERT_COLUMNS = [
    "bar_time",
    "symbol",
    "archetype",
    "direction",
    "score",
    "status",
    "entry",
    "stop",
    "target",
    "rr",
    "chart",
]


def alerts_settled(cfg: AppConfig, store: ParquetStore, outbox: Outbox, timeframe: str) -> bool:
    """Skip a timeframe only when every alert was delivered and charted: a failed or pending row is retried."""
    undelivered = [r for r in outbox.rows() if r.timeframe == timeframe and r.state != "sent"]
    return not undelivered and not alert_problems(store, timeframe, cfg.alerts.deliver_within_bars)


def build_alert_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    @partitioned_asset(
        partitions_def=timeframe_partitions(),
        group=GROUP,
        automation_condition=dg.AutomationCondition.eager(),
        deps=[SCORES_KEY],
        checks=[
            check_spec("alerts", "charts", "Every recorded chart exists; every delivered alert has one."),
            check_spec(
                "alerts",
                "outbox",
                "No outbox row of this timeframe is failed (WARN: the next run retries them).",
                blocking=False,
            ),
        ],
        description="Every fired signal of `scores` as an alert (alert id, reasons, entry zone, R:R, "
        "invalidation, status as of the latest closed bar), recorded in the `alerts` table; those within "
        "`alerts.deliver_within_bars` of the latest bar get a chart and are delivered exactly once per channel "
        "through the outbox (docs/alerts.md). Fails when `scores` is absent.",
    )
    def alerts(context: dg.AssetExecutionContext, store: StoreResource) -> dg.MaterializeResult:
        st, failed, tfs = store.store, {}, context.partition_keys
        within = cfg.alerts.deliver_within_bars
        with Delivery(cfg, st.root) as delivery:

            def alert(tf: str):
                result = run_alerts(cfg, st, tf, delivery=delivery)
                rows = [r for r in delivery.outbox.rows() if r.timeframe == tf and r.state == "failed"]
                if rows:
                    failed[tf] = [f"{r.alert_id}/{r.channel}: {r.last_error}" for r in rows[:20]]
                return result.summary(), alert_problems(st, tf, within)

            report = timeframe_step(
                st,
                cfg,
                "alerts",
                tfs,
                compute=alert,
                may_skip=lambda tf: alerts_settled(cfg, st, delivery.outbox, tf),
                parallel=False,  # sends through one delivery and its outbox
            )
            counts = delivery.outbox.counts()
        report.say(context.log, "alerts")
        return dg.MaterializeResult(
            metadata={
                "by_timeframe": dg.MetadataValue.json(redact_obj(report.summaries)),
                **report.metadata(),
                "outbox": dg.MetadataValue.json(counts),
                "channels": dg.MetadataValue.json(delivery.channel_names),
                **basket_metadata(st, ALERTS, tfs),
                **latest_tables(st, ALERTS, tfs, ALERT_COLUMNS),
            },
            check_results=[
                problems_check("alerts_charts", report.problems),
                problems_check("alerts_outbox", failed, severity=dg.AssetCheckSeverity.WARN),
            ],
        )

    return [alerts]
