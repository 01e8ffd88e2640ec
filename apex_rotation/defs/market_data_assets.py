"""`bars` and `audited_bars`: symbol × timeframe partitions, all asked partitions in one run."""

import dagster as dg
from dagster_duckdb import DuckDBResource

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.partitions import group_by_symbol, split_keys, symbol_timeframe_partitions
from apex_rotation.defs.resources import SourceResource, StoreResource
from apex_rotation.ingest.base import SourceError
from apex_rotation.log import redact_obj
from apex_rotation.schemas import SchemaViolation, validate_frame
from apex_rotation.store.audit_report import rebuild_audit_report
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.query import connect, row_counts
from apex_rotation.store.tables import AUDITED_BARS, BARS, Table

GROUP = "market_data"


def schema_problems(store: ParquetStore, table: Table, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Re-read what was written and validate it against the table's pandera schema."""
    failures = {}
    for symbol, tf in pairs:
        try:
            validate_frame(table.schema(tf), store.read(table, tf, symbol), f"{symbol}|{tf}")
        except SchemaViolation as exc:
            failures[f"{symbol}|{tf}"] = str(exc)[:500]
    return failures


def build_market_data_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    partitions = symbol_timeframe_partitions(cfg)

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        checks=[
            check_spec("bars", "schema", "Every stored partition re-read and valid against bars_schema.")
        ],
        description="Closed OHLCV bars from the configured source: 1h fetched, 4h/1d resampled on UTC "
        "boundaries; funding and open interest refreshed alongside.",
    )
    def bars(context: dg.AssetExecutionContext, store: StoreResource, source: SourceResource):
        pairs = split_keys(partitions, context.partition_keys)
        with source.refresher(cfg, store.store) as refresher:
            summary = refresher.refresh(group_by_symbol(pairs))
        if (
            summary.bar_errors
        ):  # the other symbols are stored; the step fails so nothing downstream runs stale
            raise SourceError(f"bars failed for {redact_obj(summary.bar_errors)}")
        for name, error in summary.errors.items():
            context.log.warning(f"{name}: {error}")
        return dg.MaterializeResult(
            metadata={
                "source": refresher.source.name,
                "partitions": len(pairs),
                "new_1h_rows": dg.MetadataValue.json({s.symbol: s.new_rows for s in summary.symbols}),
                "perps_errors": dg.MetadataValue.json(redact_obj(summary.errors)),
            },
            check_results=[
                problems_check(
                    "bars_schema", schema_problems(store.store, BARS, pairs), partitions=len(pairs)
                )
            ],
        )

    limit = cfg.audit.max_missing_pct

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        deps=[bars],
        checks=[
            check_spec(
                "audited_bars",
                "schema",
                "Every stored partition re-read and valid against audited bars_schema.",
            ),
            check_spec(
                "audited_bars",
                "missing",
                f"Warns when a partition misses more than audit.max_missing_pct ({limit} %) of its bars.",
                blocking=False,
            ),
        ],
        description="Audited bars on a gap-free grid: gaps and bad ticks replaced by flagged flat bars, absurd "
        "wicks clipped (the close kept), 4h/1d built from traded hours only (`filled_hours`), outlier "
        "returns flagged (docs/data-policy.md). Validated before it is written.",
    )
    def audited_bars(
        context: dg.AssetExecutionContext,
        store: StoreResource,
        source: SourceResource,
        duckdb: DuckDBResource,
    ):
        pairs = split_keys(partitions, context.partition_keys)
        with source.refresher(cfg, store.store) as refresher:
            reports = [refresher.audit(symbol, tf) for symbol, tf in pairs]
        rebuild_audit_report(store.store)
        with duckdb.get_connection() as con:  # in-memory: reads the Parquet files, holds no file lock
            stored = row_counts(connect(store.store.root, con), AUDITED_BARS.name)
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
                problems_check(
                    "audited_bars_schema",
                    schema_problems(store.store, AUDITED_BARS, pairs),
                    partitions=len(pairs),
                ),
                problems_check("audited_bars_missing", over, dg.AssetCheckSeverity.WARN, limit_pct=limit),
            ],
        )

    return [bars, audited_bars]
