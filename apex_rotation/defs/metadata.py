"""What the UI shows on an asset: row counts (Dagster's `dagster/row_count`), the table schema
(`dagster/column_schema`), per-partition rows, and the latest rows of a table as a markdown table.

Row counts come from the Parquet footers (no data is read). A step runs many partitions at once and Dagster
attaches its metadata to every partition of the run, so `dagster/row_count` is set only when the run holds
one partition (a bar-close run); otherwise the rows of each partition are in `rows_by_partition`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import dagster as dg
import pandas as pd
import pyarrow.parquet as pq

from apex_rotation.log import redact
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import BASKET_KEY, Table


def stored_rows(store: ParquetStore, table: Table, pairs: Iterable[tuple[str, str]]) -> dict[str, int | None]:
    """`symbol|tf` → rows in the stored partition (None when absent or unreadable), from the footer only."""
    rows: dict[str, int | None] = {}
    for symbol, tf in pairs:
        path = store.path(table, tf, symbol)
        try:
            rows[f"{symbol}|{tf}"] = pq.read_metadata(path).num_rows
        except (OSError, ValueError):
            rows[f"{symbol}|{tf}"] = None
    return rows


def column_schema(table: Table, timeframe: str) -> dg.TableSchema | None:
    if table.schema is None:
        return None
    try:
        schema = table.schema(timeframe)
    except TypeError:  # a schema that needs the config: no column list for it
        return None
    index = schema.index
    columns = [] if getattr(index, "name", None) is None else [dg.TableColumn(index.name, str(index.dtype))]
    columns += [dg.TableColumn(name=name, type=str(col.dtype)) for name, col in schema.columns.items()]
    return dg.TableSchema(columns=columns)


def table_metadata(store: ParquetStore, table: Table, pairs: Sequence[tuple[str, str]]) -> dict:
    """Rows (total, per partition, `dagster/row_count` for a one-partition run) and the column schema."""
    rows = stored_rows(store, table, pairs)
    metadata: dict = {"rows": sum(r or 0 for r in rows.values())}
    if len(rows) == 1:
        metadata["dagster/row_count"] = next(iter(rows.values())) or 0
    else:
        metadata["rows_by_partition"] = dg.MetadataValue.json(rows)
    if pairs and (schema := column_schema(table, pairs[0][1])) is not None:
        metadata["dagster/column_schema"] = schema
    return metadata


def basket_metadata(store: ParquetStore, table: Table, timeframes: Sequence[str]) -> dict:
    """`table_metadata` of a per-timeframe (basket) table."""
    return table_metadata(store, table, [(BASKET_KEY, tf) for tf in timeframes])


def markdown_table(frame: pd.DataFrame, columns: Sequence[str], rows: int = 10) -> str:
    """The last `rows` rows of `frame` (in its order) as a markdown table; floats rounded for reading."""
    if frame is None or frame.empty:
        return "_none_"
    cols = [c for c in columns if c in frame.columns]
    tail = frame[cols].tail(rows)
    header = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, pd.Timestamp):
            return value.strftime("%Y-%m-%d %H:%M")
        return str(value).replace("|", "/").replace("\n", " ")[:80]

    return header + "\n".join(
        "| " + " | ".join(cell(v) for v in row) + " |" for row in tail.itertuples(False)
    )


def latest_tables(
    store: ParquetStore, table: Table, timeframes: Sequence[str], columns: Sequence[str], rows: int = 10
) -> dict:
    """`latest_<tf>`: the table's last rows per timeframe as markdown (what a user opens the asset for)."""
    out = {}
    for tf in timeframes:
        frame = store.read(table, tf, BASKET_KEY) if store.exists(table, tf, BASKET_KEY) else None
        out[f"latest_{tf}"] = dg.MetadataValue.md(redact(markdown_table(frame, columns, rows)))
    return out
