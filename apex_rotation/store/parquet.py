"""Parquet is the source of truth: one file per (asset, timeframe, symbol), written atomically.

Layout: `<root>/<asset>/<timeframe>/<symbol>.parquet` (timeframe `-` for data without one, such as
funding). A write goes to a temp file in the same folder, is fsynced, then `os.replace`d over the old
file, so a crash leaves either the old partition or the new one, never half of one. Different partitions
are different files, so concurrent writers never contend (no DuckDB lock is involved in writing).

A damaged file (truncated, zero bytes, garbage: anything pyarrow cannot decode) is never fatal to the
store: the read that finds it moves it to `<root>/.quarantine/<asset>/<timeframe>/<symbol>.<UTC time>.parquet`
(outside every glob the store and DuckDB read), logs its path and what is wrong, and raises
`CorruptPartition`; from then on the partition is absent and the step that owns it rebuilds it
(docs/data-policy.md, "A damaged store"). A temp file a killed writer left is removed by the next write to
its folder once it is stale.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from apex_rotation.log import kv

if TYPE_CHECKING:
    from apex_rotation.store.tables import Table


NO_TIMEFRAME = "-"
INDEX_NAME_KEY = b"apex_rotation.index"
META_KEY = b"apex_rotation.meta"
QUARANTINE_DIR = ".quarantine"
# LZ4: a bar close rewrites some 250 partitions and reads them back; against zstd, writing and reading the
# default market's partitions took 23 + 33 ms instead of 50 + 48 ms per symbol, for files 8 % larger.
COMPRESSION = "lz4"
# A writer fills its temp file continuously and renames it within seconds; one untouched this long has no
# live writer (it was killed), so the next write to the folder removes it.
STALE_TEMP_SECONDS = 10 * 60

log = logging.getLogger(__name__)
T = TypeVar("T")


class StoreError(RuntimeError):
    """A store file is missing or unreadable; the message names the file."""


class CorruptPartition(StoreError):
    """A partition file pyarrow cannot decode; it has been moved to quarantine and is absent from now on."""

    def __init__(self, path: Path, reason: str, size: int | None, moved_to: Path | None):
        self.path, self.reason, self.moved_to = path, reason, moved_to
        where = f"quarantined to {moved_to}" if moved_to else "already quarantined by another reader"
        super().__init__(
            f"corrupt store file {path} ({size if size is not None else '?'} bytes): {reason}; {where}; "
            "treated as absent until its step rebuilds it"
        )
        self._size = size

    def __reduce__(self):  # pickles (a partition computed in a worker process raises it to the parent)
        return type(self), (self.path, self.reason, self._size, self.moved_to)


def is_corruption(exc: BaseException) -> bool:
    """pyarrow's decoding errors (ArrowInvalid, or an OSError without errno such as a bad thrift footer);
    a missing file or a permission error carries an errno and is not corruption."""
    return isinstance(exc, pa.ArrowException) or (isinstance(exc, OSError) and exc.errno is None)


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
        table = pa.Table.from_pandas(_index_as_first_column(df, index_name), preserve_index=False)
        extra = {INDEX_NAME_KEY: index_name.encode(), META_KEY: json.dumps(meta or {}, default=str).encode()}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
        remove_stale_temps(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                pq.write_table(table, fh, compression=COMPRESSION, use_dictionary=_dictionary_columns(table))
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
        identity = file_identity(path)
        if identity is None:
            raise StoreError(f"no {asset} data for {symbol} {timeframe or ''} at {path}")
        key = (identity, _hashable(columns), start, end)
        if (cached := FRAMES.get(key)) is not None:
            return _to_frame(*cached)

        def read_partition() -> tuple[pa.Table, str]:
            # ParquetFile: one open of the file, no dataset machinery (a third faster on these small files
            # than read_schema + read_table); the dataset path only where rows are filtered
            with pq.ParquetFile(path) as parquet:
                schema = parquet.schema_arrow
                index_name = (schema.metadata or {}).get(INDEX_NAME_KEY, b"index").decode()
                wanted = None if columns is None else [index_name, *[c for c in columns if c != index_name]]
                missing = [c for c in wanted or [] if c not in schema.names]
                if missing:
                    raise StoreError(f"{path} has no columns {missing}; it has {schema.names}")
                if start is None and end is None:
                    return parquet.read(columns=wanted), index_name
            filters = []
            if start is not None:
                filters.append((index_name, ">=", pd.Timestamp(start)))
            if end is not None:
                filters.append((index_name, "<=", pd.Timestamp(end)))
            return pq.read_table(path, columns=wanted, filters=filters), index_name

        decoded = self._checked(path, read_partition)
        FRAMES.put(key, decoded)  # the decoded table: immutable, so kept without a copy
        return _to_frame(*decoded)

    def read_or_none(self, asset: str | Table, timeframe: str | None, symbol: str) -> pd.DataFrame | None:
        """The whole partition, or None when it is absent or was corrupt (then quarantined and logged)."""
        if not self.exists(asset, timeframe, symbol):
            return None
        try:
            return self.read(asset, timeframe, symbol)
        except CorruptPartition:
            return None

    def meta(self, asset: str | Table, timeframe: str | None, symbol: str) -> dict:
        path = self.path(asset, timeframe, symbol)
        schema = self._checked(path, lambda: pq.read_schema(path))
        return json.loads((schema.metadata or {}).get(META_KEY, b"{}"))

    def partitions(self, asset: str | Table) -> Iterator[tuple[str, str]]:
        """(timeframe, symbol) of every stored partition of an asset, sorted; a file whose footer does not
        decode is quarantined (and logged) instead of listed."""
        for path in sorted((self.root / str(asset)).glob("*/*.parquet")):
            if self.intact(path):
                yield path.parent.name, path.stem

    def intact(self, path: Path) -> bool:
        """True when the file's Parquet footer decodes; a file that does not is quarantined (and logged)."""
        try:
            self._checked(path, lambda: pq.read_metadata(path))
        except CorruptPartition:
            return False
        except FileNotFoundError:  # replaced or quarantined meanwhile: nothing to list
            return False
        return True

    def _checked(self, path: Path, action: Callable[[], T]) -> T:
        """Run a read of `path`; if pyarrow cannot decode the file it is quarantined and `CorruptPartition`
        raised. A failure on a file that reads whole (a bad filter, or the file was replaced by a concurrent
        writer meanwhile) is not corruption: the read is tried once more and its own error stands."""
        try:
            return action()
        except Exception as exc:
            if not is_corruption(exc):
                raise
            if _reads_whole(path):
                return action()
            raise self.quarantine(path, str(exc).strip().splitlines()[0]) from exc

    def quarantine(self, path: Path, reason: str) -> CorruptPartition:
        """Move a damaged partition file under `<root>/.quarantine/` (never deleted), log it, and return the
        `CorruptPartition` error naming it."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = (
            self.root / QUARANTINE_DIR / path.parent.relative_to(self.root) / f"{path.stem}.{stamp}.parquet"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = path.stat().st_size
            os.replace(path, target)
        except FileNotFoundError:  # another reader moved it first
            size, target = None, None
        error = CorruptPartition(path, reason, size, target)
        log.error(
            "corrupt store file quarantined",
            extra=kv(path=str(path), error=reason, bytes=size, quarantined_to=str(target or "-")),
        )
        return error

    def glob(self, asset: str | Table, timeframe: str | None = None) -> str:
        """A glob over an asset's files, for DuckDB's `read_parquet`."""
        return str(self.root / str(asset) / (timeframe or "*") / "*.parquet")


def _index_as_first_column(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """`df.reset_index(names=name)` without copying the data: a shallow copy with the index inserted first.
    The Parquet bytes are the same; a 1h `features` partition converts in 6 ms instead of 16."""
    out = df.copy(deep=False)
    out.insert(0, name, df.index)  # a column named like the index raises, as reset_index does
    out.index = pd.RangeIndex(len(out))
    return out


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Dictionary-encode only the text columns: on floats and timestamps (nearly all unique) a dictionary
    page is wasted work; without it a 1h `features` partition writes 2× faster and 20 % smaller."""
    return [f.name for f in table.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]


def _to_frame(table: pa.Table, index_name: str) -> pd.DataFrame:
    """The frame with `index_name` as its index, converted apart (`set_index` would copy every column)."""
    frame = table.drop_columns([index_name]).to_pandas()
    frame.index = pd.Index(table.column(index_name).to_pandas(), name=index_name)
    return frame


def _hashable(columns: list[str] | None) -> tuple[str, ...] | None:
    return None if columns is None else tuple(columns)


Cached = pd.DataFrame | tuple[pa.Table, str]


class FrameCache:
    """What this process read lately, keyed by the file's identity (path, inode, size, mtime_ns) and the
    read's arguments, so a partition several steps read in one run is decoded once.

    A write replaces the file (new inode and mtime), a damaged or removed file changes its stat: nothing
    cached is ever served for another version of its file. A read keeps the decoded Arrow table (immutable,
    no copy; each hit converts it afresh); a DataFrame (`features.load`'s joins) is copied in and out,
    because stages add columns to what they read. Bounded by `max_bytes`, least recently used out first.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._frames: OrderedDict[tuple, tuple[Cached, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Cached | None:
        with self._lock:
            hit = self._frames.get(key)
            if hit is None:
                return None
            self._frames.move_to_end(key)
        return hit[0].copy() if isinstance(hit[0], pd.DataFrame) else hit[0]

    def put(self, key: tuple, value: Cached) -> None:
        if isinstance(value, pd.DataFrame):
            size = int(value.memory_usage(index=True, deep=False).sum())
        else:
            size = value[0].nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._frames:
                return
            self._frames[key] = (value.copy() if isinstance(value, pd.DataFrame) else value, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._frames.popitem(last=False)
                self._bytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._frames.clear()
            self._bytes = 0


# Shared by every ParquetStore of the process (a Dagster step builds its own store object per resource
# access) and by `features.load`'s joined frames; 768 MiB holds the whole default store's frames.
FRAMES = FrameCache(max_bytes=768 * 2**20)


def clear_frame_cache() -> None:
    """Forget every cached frame (a new run worker process starts with none; benchmarks simulate that)."""
    FRAMES.clear()


def file_identity(path: Path) -> tuple[str, int, int, int] | None:
    """(path, inode, size, mtime_ns): changes whenever the file is replaced or modified; None when absent."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return str(path), stat.st_ino, stat.st_size, stat.st_mtime_ns


def _reads_whole(path: Path) -> bool:
    """Whether pyarrow decodes the whole file (every page); only asked after a read failed."""
    try:
        pq.read_table(path)
    except Exception as exc:
        if is_corruption(exc):
            return False
        raise
    return True


def remove_stale_temps(folder: Path, max_age: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Remove the `.<stem>.*.tmp` files a killed writer left in a partition folder, once untouched for
    `max_age` seconds: a live writer's temp file is younger (it is written continuously, then renamed)."""
    cutoff = time.time() - max_age
    removed = []
    for tmp in folder.glob(".*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
                removed.append(tmp)
        except FileNotFoundError:  # another writer removed it first
            continue
    if removed:
        log.warning("stale temp files removed", extra=kv(folder=str(folder), files=[p.name for p in removed]))
    return removed
