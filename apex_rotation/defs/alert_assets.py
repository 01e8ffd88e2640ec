"""`alerts`: one partition per timeframe, downstream of `scores` (fired rows → alerts, recent ones delivered)."""

import dagster as dg

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.partitions import timeframe_partitions
from apex_rotation.defs.resources import StoreResource
from apex_rotation.exec.alerts.delivery import Delivery
from apex_rotation.exec.alerts.stage import alert_problems, run_alerts
from apex_rotation.log import redact_obj

GROUP = "exec"
SCORES_KEY = dg.AssetKey("scores")


def build_alert_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    @partitioned_asset(
        partitions_def=timeframe_partitions(),
        group=GROUP,
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
        metadata, chart_problems, failed = {}, {}, {}
        with Delivery(cfg, store.store.root) as delivery:
            for tf in context.partition_keys:
                result = run_alerts(cfg, store.store, tf, delivery=delivery)
                metadata[tf] = result.summary()
                if found := alert_problems(store.store, tf, cfg.alerts.deliver_within_bars):
                    chart_problems[tf] = found
                rows = [r for r in delivery.outbox.rows() if r.timeframe == tf and r.state == "failed"]
                if rows:
                    failed[tf] = [f"{r.alert_id}/{r.channel}: {r.last_error}" for r in rows[:20]]
            counts = delivery.outbox.counts()
        return dg.MaterializeResult(
            metadata={
                "by_timeframe": dg.MetadataValue.json(redact_obj(metadata)),
                "outbox": dg.MetadataValue.json(counts),
                "channels": dg.MetadataValue.json(delivery.channel_names),
            },
            check_results=[
                problems_check("alerts_charts", chart_problems),
                problems_check("alerts_outbox", failed, severity=dg.AssetCheckSeverity.WARN),
            ],
        )

    return [alerts]
