"""`bars` and `audited_bars`: symbol × timeframe partitions, all asked partitions in one run.

Both assets write through the Parquet store (validated before writing) and return no value, so
Dagster's IO manager never pickles a frame and a single-run backfill of all 51 partitions works.
"""

import dagster as dg
from dagster_duckdb import DuckDBResource

from apex_rotation.config import AppConfig
from apex_rotation.defs.partitions import group_by_symbol, split_keys, symbol_timeframe_partitions
from apex_rotation.defs.resources import ApexResource
from apex_rotation.ingest.base import SourceError
from apex_rotation.log import redact_obj
from apex_rotation.schemas import SchemaViolation, bars_schema, validate_frame
from apex_rotation.store.query import connect, row_counts
from apex_rotation.store.refresh import AUDITED_BARS, BARS, rebuild_audit_report


def _schema_check(apex: ApexResource, asset: str, pairs, audited: bool) -> dg.AssetCheckResult:
    """Re-read what was written and validate it against the pandera schema."""
    failures = {}
    for symbol, tf in pairs:
        try:
            validate_frame(
                bars_schema(tf, audited=audited), apex.store.read(asset, tf, symbol), f"{symbol}|{tf}"
            )
        except SchemaViolation as exc:
            failures[f"{symbol}|{tf}"] = str(exc)[:500]
    return dg.AssetCheckResult(
        check_name=f"{asset}_schema",
        passed=not failures,
        metadata={"partitions": len(pairs), "failures": dg.MetadataValue.json(redact_obj(failures))},
    )


def build_data_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    partitions = symbol_timeframe_partitions(cfg)
    policy = dg.BackfillPolicy.single_run()

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name="data_plane",
        kinds={"parquet"},
        check_specs=[dg.AssetCheckSpec("bars_schema", asset="bars", blocking=True)],
        description="Closed OHLCV bars from the configured source: 1h fetched, 4h/1d resampled on UTC "
        "boundaries; funding and open interest refreshed alongside.",
    )
    def bars(context: dg.AssetExecutionContext, apex: ApexResource) -> dg.MaterializeResult:
        pairs = split_keys(partitions, context.partition_keys)
        with apex.data_plane() as plane:
            summary = plane.refresh(group_by_symbol(pairs))
        if (
            summary.bar_errors
        ):  # the other symbols are stored; the step fails so nothing downstream runs stale
            raise SourceError(f"bars failed for {redact_obj(summary.bar_errors)}")
        for name, error in summary.errors.items():
            context.log.warning(f"{name}: {error}")
        return dg.MaterializeResult(
            metadata={
                "source": plane.source.name,
                "partitions": len(pairs),
                "new_1h_rows": dg.MetadataValue.json({s.symbol: s.new_rows for s in summary.symbols}),
                "perps_errors": dg.MetadataValue.json(redact_obj(summary.errors)),
            },
            check_results=[_schema_check(apex, BARS, pairs, audited=False)],
        )

    @dg.asset(
        partitions_def=partitions,
        backfill_policy=policy,
        group_name="data_plane",
        kinds={"parquet"},
        deps=[bars],
        check_specs=[
            dg.AssetCheckSpec("audited_bars_schema", asset="audited_bars", blocking=True),
            dg.AssetCheckSpec("audited_bars_missing", asset="audited_bars", blocking=False),
        ],
        description="Audited bars on a gap-free grid: gaps and bad ticks replaced by flagged flat bars, "
        "outlier returns flagged (docs/data-policy.md). Validated before it is written.",
    )
    def audited_bars(
        context: dg.AssetExecutionContext, apex: ApexResource, duckdb: DuckDBResource
    ) -> dg.MaterializeResult:
        pairs = split_keys(partitions, context.partition_keys)
        with apex.data_plane() as plane:
            reports = [plane.audit(symbol, tf) for symbol, tf in pairs]
        rebuild_audit_report(apex.store)
        with duckdb.get_connection() as con:  # in-memory: reads the Parquet files, holds no file lock
            stored = row_counts(connect(apex.store.root, con), AUDITED_BARS)
        limit = apex.config.audit.max_missing_pct
        over = {f"{r.symbol}|{r.timeframe}": r.missing_pct for r in reports if r.missing_pct > limit}
        return dg.MaterializeResult(
            metadata={
                "partitions": len(pairs),
                "rows": sum(r.rows for r in reports),
                "missing": sum(r.missing for r in reports),
                "filled": sum(r.filled for r in reports),
                "report": dg.MetadataValue.json([r.model_dump(mode="json") for r in reports][:60]),
                "store_rows": dg.MetadataValue.json(stored),
            },
            check_results=[
                _schema_check(apex, AUDITED_BARS, pairs, audited=True),
                dg.AssetCheckResult(
                    check_name="audited_bars_missing",
                    passed=not over,
                    severity=dg.AssetCheckSeverity.WARN,
                    metadata={"limit_pct": limit, "over_limit": dg.MetadataValue.json(over)},
                ),
            ],
        )

    return [bars, audited_bars]
