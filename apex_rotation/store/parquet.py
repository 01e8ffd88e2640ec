"""Parquet is the source of truth: one file per (asset, timeframe, symbol), written atomically.

Layout: `<root>/<asset>/<timeframe>/<symbol>.parquet` (timeframe `-` for data without one, such as
funding). A write goes to a temp file in the same folder, is fsynced, then `os.replace`d over the old
file, so a crash leaves either the old partition or the new one, never half of one. Different partitions
are different files, so concurrent writers never contend (no DuckDB lock is involved in writing).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

if TYPE_CHECKING:
    from apex_rotation.store.tables import Table


NO_TIMEFRAME = "-"
INDEX_NAME_KEY = b"apex_rotation.index"
META_KEY = b"apex_rotation.meta"


class StoreError(RuntimeError):
    """A store file is missing or unreadable; the message names the file."""


class ParquetStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, asset: str | Table, timeframe: str | None, symbol: str) -> Path:
        return self.root / str(asset) / (timeframe or NO_TIMEFRAME) / f"{symbol}.parquet"

    def exists(self, asset: str | Table, timeframe: str | None, symbol: str) -> bool:
        return self.path(asset, timeframe, symbol).exists()

    def write(
        self,
        asset: str | Table,
        timeframe: str | None,
        symbol: str,
        df: pd.DataFrame,
        meta: dict | None = None,
    ) -> Path:
        """Write `df` (its index becomes a column) atomically; `meta` is kept in the file's metadata."""
        path = self.path(asset, timeframe, symbol)
        path.parent.mkdir(parents=True, exist_ok=True)
        index_name = df.index.name or "index"
        table = pa.Table.from_pandas(df.reset_index(names=index_name), preserve_index=False)
        extra = {INDEX_NAME_KEY: index_name.encode(), META_KEY: json.dumps(meta or {}, default=str).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression="zstd")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def read(
        self,
        asset: str | Table,
        timeframe: str | None,
        symbol: str,
        columns: list[str] | None = None,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
    ) -> pd.DataFrame:
        """Read a partition back with its index restored; `start`/`end` bound the index (inclusive)."""
        path = self.path(asset, timeframe, symbol)
        if not path.exists():
            raise StoreError(f"no {asset} data for {symbol} {timeframe or ''} at {path}")
        schema = pq.read_schema(path)
        index_name = (schema.metadata or {}).get(INDEX_NAME_KEY, b"index").decode()
        wanted = None if columns is None else [index_name, *[c for c in columns if c != index_name]]
        missing = [c for c in wanted or [] if c not in schema.names]
        if missing:
            raise StoreError(f"{path} has no columns {missing}; it has {schema.names}")
        filters = []
        if start is not None:
            filters.append((index_name, ">=", pd.Timestamp(start)))
        if end is not None:
            filters.append((index_name, "<=", pd.Timestamp(end)))
        table = pq.read_table(path, columns=wanted, filters=filters or None)
        return table.to_pandas().set_index(index_name)

    def meta(self, asset: str | Table, timeframe: str | None, symbol: str) -> dict:
        schema = pq.read_schema(self.path(asset, timeframe, symbol))
        return json.loads((schema.metadata or {}).get(META_KEY, b"{}"))

    def partitions(self, asset: str | Table) -> Iterator[tuple[str, str]]:
        """(timeframe, symbol) of every stored partition of an asset, sorted."""
        for path in sorted((self.root / str(asset)).glob("*/*.parquet")):
            yield path.parent.name, path.stem

    def glob(self, asset: str | Table, timeframe: str | None = None) -> str:
        """A glob over an asset's files, for DuckDB's `read_parquet`."""
        return str(self.root / str(asset) / (timeframe or "*") / "*.parquet")
