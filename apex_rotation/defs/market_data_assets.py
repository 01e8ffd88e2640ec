"""`bars` and `audited_bars`: symbol × timeframe partitions, all asked partitions in one run.

Both tables are validated against their pandera schema before they are written (store/refresh.py), once;
the `*_schema` checks then confirm each asked partition is stored and its Parquet footer decodes, without
reading and validating the frame a second time. `audited_bars` skips a partition whose bars did not change
since it was audited (defs/incremental.py); `bars` always asks the source for bars after the newest stored.
"""

import dagster as dg
import pandas as pd
from dagster_duckdb import DuckDBResource

from apex_rotation.config import AppConfig
from apex_rotation.defs.declare import check_spec, partitioned_asset, problems_check
from apex_rotation.defs.incremental import Fingerprints, SymbolStep
from apex_rotation.defs.metadata import markdown_table, stored_rows, table_metadata
from apex_rotation.defs.partitions import (
    bar_close_of,
    group_by_symbol,
    split_keys,
    symbol_timeframe_partitions,
)
from apex_rotation.defs.resources import SourceResource, StoreResource
from apex_rotation.ingest.base import SourceError
from apex_rotation.log import redact_obj
from apex_rotation.parallel import map_partitions
from apex_rotation.store.audit import AuditReport
from apex_rotation.store.audit_report import rebuild_audit_report
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.query import connect, row_counts
from apex_rotation.store.tables import AUDITED_BARS, BARS, Table
from apex_rotation.timeframes import BASE_TIMEFRAME

GROUP = "market_data"
AUDIT_COLUMNS = ["symbol", "timeframe", "rows", "missing", "filled", "spikes", "wicks", "outliers", "last"]


def stored_problems(store: ParquetStore, table: Table, pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Asked partitions that are not stored or whose Parquet footer does not decode (the frame itself was
    validated before it was written)."""
    rows = stored_rows(store, table, pairs)
    return {key: f"{table.name} {key}: not stored or unreadable" for key, n in rows.items() if n is None}


def audited_bars_step(cfg: AppConfig, st: ParquetStore) -> SymbolStep:
    """audited_bars[s|tf] reads bars[s|1h] and bars[s|tf]; the clock only changes `stale_bars`, which is
    logged, never stored."""
    return SymbolStep(
        Fingerprints(st, "audited_bars", cfg),
        inputs=lambda s, tf: [st.path(BARS, BASE_TIMEFRAME, s), st.path(BARS, tf, s)],
        output=lambda s, tf: st.path(AUDITED_BARS, tf, s),
    )


def build_market_data_assets(cfg: AppConfig) -> list[dg.AssetsDefinition]:
    partitions = symbol_timeframe_partitions(cfg)

    @partitioned_asset(
        partitions_def=partitions,
        group=GROUP,
        checks=[
            check_spec(
                "bars",
                "schema",
                "Every partition validated against bars_schema before it is written; every asked partition "
                "stored and readable.",
            )
        ],
        description="Closed OHLCV bars from the configured source: 1h fetched, 4h/1d resampled on UTC "
        "boundaries; funding and open interest refreshed alongside. A bar-close run sees the market as of "
        "its bar close.",
    )
    def bars(context: dg.AssetExecutionContext, store: StoreResource, source: SourceResource):
        pairs = split_keys(partitions, context.partition_keys)
        with source.refresher(cfg, store.store, now=bar_close_of(context)) as refresher:
            summary = refresher.refresh(group_by_symbol(pairs))
        if (
            summary.bar_errors
        ):  # the other symbols are stored; the step fails so nothing downstream runs stale
            raise SourceError(f"bars failed for {redact_obj(summary.bar_errors)}")
        for name, error in summary.errors.items():
            context.log.warning(f"{name}: {error}")
        new_rows = {s.symbol: s.new_rows for s in summary.symbols}
        context.log.info(f"bars: {sum(new_rows.values())} new 1h bars from {refresher.source.name}")
        return dg.MaterializeResult(
            metadata={
                "source": refresher.source.name,
                "partitions": len(pairs),
                "new_1h_rows": dg.MetadataValue.json(new_rows),
                "perps_errors": dg.MetadataValue.json(redact_obj(summary.errors)),
                **table_metadata(store.store, BARS, pairs),
            },
            check_results=[
                problems_check(
                    "bars_schema", stored_problems(store.store, BARS, pairs), partitions=len(pairs)
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
                "Every partition validated against the audited bars_schema before it is written; every asked "
                "partition stored and readable.",
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
        "returns flagged (docs/data-policy.md). Validated before it is written; a partition whose bars did "
        "not change since its audit is skipped.",
    )
    def audited_bars(
        context: dg.AssetExecutionContext,
        store: StoreResource,
        source: SourceResource,
        duckdb: DuckDBResource,
    ):
        st = store.store
        pairs = split_keys(partitions, context.partition_keys)
        with source.refresher(cfg, st, now=bar_close_of(context)) as refresher:
            step = audited_bars_step(cfg, st)
            stale, report = step.split(pairs)
            by_symbol = group_by_symbol(stale)  # a symbol's 4h/1d audits reuse its 1h one: one task each
            audits = map_partitions(
                lambda s: [refresher.audit(s, tf) for tf in by_symbol[s]], list(by_symbol), prime=True
            )
            fresh = {(r.symbol, r.timeframe): r for reports in audits for r in reports}
        reports = [
            fresh.get((s, tf)) or AuditReport.model_validate(st.meta(AUDITED_BARS, tf, s)) for s, tf in pairs
        ]
        schema = stored_problems(st, AUDITED_BARS, pairs)
        step.record(stale, schema)
        report.say(context.log, "audited_bars")
        report_path = rebuild_audit_report(st)
        with duckdb.get_connection() as con:  # in-memory: reads the Parquet files, holds no file lock
            stored = row_counts(connect(st.root, con), AUDITED_BARS.name)
        over = {f"{r.symbol}|{r.timeframe}": r.missing_pct for r in reports if r.missing_pct > limit}
        audit = [r.model_dump(mode="json") for r in reports]
        return dg.MaterializeResult(
            metadata={
                "partitions": len(pairs),
                **report.metadata(),
                "missing": sum(r.missing for r in reports),
                "filled": sum(r.filled for r in reports),
                "audit": dg.MetadataValue.md(markdown_table(_frame(audit), AUDIT_COLUMNS, rows=len(audit))),
                # the full reports live in the file: Dagster copies a step's metadata onto every
                # partition's materialization, so 16 KB of JSON here was 51 copies per bar-close run
                "report": dg.MetadataValue.path(str(report_path)),
                "store_rows": dg.MetadataValue.json(stored),
                **table_metadata(st, AUDITED_BARS, pairs),
            },
            check_results=[
                problems_check("audited_bars_schema", schema, partitions=len(pairs)),
                problems_check("audited_bars_missing", over, dg.AssetCheckSeverity.WARN, limit_pct=limit),
            ],
        )

    return [bars, audited_bars]


def _frame(records: list[dict]) -> pd.DataFrame:
    return pd.DataFrame.from_records(records)
