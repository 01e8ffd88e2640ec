"""DuckDB as the query engine over the Parquet store.

Each query opens an in-memory DuckDB database with one view per stored asset/timeframe
(`bars_1h`, `audited_bars_4h`, …, `funding`, `open_interest`), each view reading the partition files with
`read_parquet(..., filename=true)` and a `symbol` column taken from the file name. In-memory databases
hold no file lock, so any number of processes can query while partitions are being written.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from apex_rotation.store.parquet import NO_TIMEFRAME


def connect(
    root: str | Path, connection: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new in-memory one unless given) with a view per stored asset and timeframe."""
    con = connection or duckdb.connect(":memory:")
    root = Path(root)
    for asset_dir in sorted(p for p in root.glob("*") if p.is_dir()):
        for tf_dir in sorted(p for p in asset_dir.glob("*") if p.is_dir()):
            if not any(tf_dir.glob("*.parquet")):
                continue
            view = asset_dir.name if tf_dir.name == NO_TIMEFRAME else f"{asset_dir.name}_{tf_dir.name}"
            pattern = str(tf_dir / "*.parquet").replace("'", "''")
            con.execute(
                f"CREATE OR REPLACE VIEW \"{view}\" AS SELECT regexp_extract(filename, '([^/]+)\\.parquet$', 1) "
                f"AS symbol, * EXCLUDE (filename) FROM read_parquet('{pattern}', filename=true, union_by_name=true)"
            )
    return con


def query(root: str | Path, sql: str, params: list | None = None) -> pd.DataFrame:
    """Run one SQL query over the store's views and return a DataFrame."""
    con = connect(root)
    try:
        return con.execute(sql, params or []).df()
    finally:
        con.close()


def row_counts(con: duckdb.DuckDBPyConnection, asset: str) -> dict[str, dict[str, int]]:
    """Rows per symbol in every view of an asset (`{"audited_bars_4h": {"BTC": 4380, …}, …}`)."""
    views = [
        name
        for (name,) in con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal").fetchall()
        if name == asset or name.startswith(f"{asset}_")
    ]
    out = {}
    for view in sorted(views):
        rows = con.execute(
            f'SELECT symbol, count(*) FROM "{view}" GROUP BY symbol ORDER BY symbol'
        ).fetchall()
        out[view] = {symbol: int(n) for symbol, n in rows}
    return out
