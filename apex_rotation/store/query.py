"""DuckDB as the query engine over the Parquet store.

Each query opens an in-memory DuckDB database with one view per stored asset/timeframe
(`bars_1h`, `audited_bars_4h`, …, `funding`, `open_interest`), each view reading the partition files with
`read_parquet(..., filename=true)` and a `symbol` column taken from the file name. In-memory databases
hold no file lock, so any number of processes can query while partitions are being written.

One damaged file never costs a whole view: when DuckDB cannot bind a folder's files, each is checked with
pyarrow, the corrupt ones are quarantined (store/parquet.py) and the view is made over the rest. Folders
whose name starts with a dot (`.quarantine`) are not the store's.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from apex_rotation.store.parquet import NO_TIMEFRAME, ParquetStore


def connect(
    root: str | Path, connection: duckdb.DuckDBPyConnection | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection (new in-memory one unless given) with a view per stored asset and timeframe."""
    con = connection or duckdb.connect(":memory:")
    store = ParquetStore(root)
    for asset_dir in _folders(store.root):
        for tf_dir in _folders(asset_dir):
            view = asset_dir.name if tf_dir.name == NO_TIMEFRAME else f"{asset_dir.name}_{tf_dir.name}"
            _create_view(con, store, view, tf_dir)
    return con


def _folders(parent: Path) -> list[Path]:
    return sorted(p for p in parent.glob("*") if p.is_dir() and not p.name.startswith("."))


def _create_view(con: duckdb.DuckDBPyConnection, store: ParquetStore, view: str, folder: Path) -> None:
    """A view over a folder's partition files; files DuckDB fails on are checked, and the corrupt ones
    quarantined, until it binds (an error with no corrupt file behind it is raised as it is)."""
    pattern = str(folder / "*.parquet").replace("'", "''")
    while files := sorted(folder.glob("*.parquet")):
        try:
            con.execute(
                f"CREATE OR REPLACE VIEW \"{view}\" AS SELECT regexp_extract(filename, '([^/]+)\\.parquet$', 1) "
                f"AS symbol, * EXCLUDE (filename) FROM read_parquet('{pattern}', filename=true, union_by_name=true)"
            )
            return
        except duckdb.Error:
            if all([store.intact(path) for path in files]):
                raise


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
