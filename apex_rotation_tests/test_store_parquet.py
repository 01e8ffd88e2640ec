from __future__ import annotations

import multiprocessing as mp
import os
import re
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apex_rotation.store.parquet import (
    QUARANTINE_DIR,
    STALE_TEMP_SECONDS,
    CorruptPartition,
    ParquetStore,
    StoreError,
)
from apex_rotation.store.query import query


def _bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="open_time")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.uniform(1, 2, n),
        },
        index=idx,
    ).assign(close_time=lambda d: d.index + pd.Timedelta("1h"))


def test_round_trip_keeps_index_dtypes_and_meta(tmp_path):
    store = ParquetStore(tmp_path)
    df = _bars(100)
    store.write("bars", "1h", "BTC", df, meta={"source": "synthetic"})
    back = store.read("bars", "1h", "BTC")
    pd.testing.assert_frame_equal(back, df, check_freq=False)
    assert store.meta("bars", "1h", "BTC") == {"source": "synthetic"}
    part = store.read("bars", "1h", "BTC", columns=["close"], start=df.index[10], end=df.index[19])
    assert list(part.columns) == ["close"] and len(part) == 10 and part.index[0] == df.index[10]
    assert list(store.partitions("bars")) == [("1h", "BTC")]


def test_a_write_stores_what_reset_index_gives_and_leaves_the_frame_alone(tmp_path):
    """The index goes in as the first column without copying the frame: the file is what writing
    `df.reset_index()` gives (same bytes), and the caller's frame keeps its index and columns."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    from apex_rotation.store.parquet import COMPRESSION, INDEX_NAME_KEY, META_KEY, _dictionary_columns

    df = _bars(300).assign(zone=["a", None, "b"] * 100, flag=[True, False, True] * 100)
    before = df.copy()
    path = ParquetStore(tmp_path).write("features", "1h", "SOL", df, meta={"k": 1})
    pd.testing.assert_frame_equal(df, before, check_exact=True)  # the caller's frame untouched

    table = pa.Table.from_pandas(df.reset_index(names="open_time"), preserve_index=False)
    extra = {INDEX_NAME_KEY: b"open_time", META_KEY: b'{"k": 1}'}
    table = table.replace_schema_metadata({**table.schema.metadata, **extra})
    expected = io.BytesIO()
    pq.write_table(table, expected, compression=COMPRESSION, use_dictionary=_dictionary_columns(table))
    assert path.read_bytes() == expected.getvalue()
    with pytest.raises(ValueError, match="already exists"):  # as reset_index refuses it
        ParquetStore(tmp_path).write("features", "1h", "ETH", df.assign(open_time=1))


def test_read_errors_name_the_file(tmp_path):
    store = ParquetStore(tmp_path)
    with pytest.raises(StoreError, match="BTC"):
        store.read("bars", "1h", "BTC")
    store.write("bars", "1h", "BTC", _bars(5))
    with pytest.raises(StoreError, match="nope"):
        store.read("bars", "1h", "BTC", columns=["nope"])


def _slow_writer(root: str, started) -> None:
    """Write a big partition, signalling just before the write starts so the parent can kill it midway."""
    import pyarrow.parquet as pq

    real = pq.write_table

    def slow(table, where, **kw):
        started.set()
        time.sleep(30)  # killed long before this returns
        real(table, where, **kw)

    pq.write_table = slow
    ParquetStore(root).write("bars", "1h", "BTC", _bars(50_000, seed=1))


def _kill_a_writer_midway(root: Path) -> list[Path]:
    """Start writing bars/1h/BTC in another process, SIGKILL it midway; returns what it left in the folder."""
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_slow_writer, args=(str(root), started))
    proc.start()
    assert started.wait(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    return [p for p in Path(root, "bars", "1h").iterdir() if p.suffix != ".parquet"]


def test_writer_killed_midway_leaves_previous_partition(tmp_path):
    store = ParquetStore(tmp_path)
    before = _bars(100)
    store.write("bars", "1h", "BTC", before)
    leftovers = _kill_a_writer_midway(tmp_path)
    pd.testing.assert_frame_equal(store.read("bars", "1h", "BTC"), before, check_freq=False)
    assert all(p.name.endswith(".tmp") for p in leftovers)  # a temp file at most, never a torn partition


def test_a_killed_writers_temp_file_is_removed_by_the_next_write_once_stale(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("bars", "1h", "BTC", _bars(100))
    [leftover] = _kill_a_writer_midway(tmp_path)
    assert leftover.name.startswith(".BTC.") and leftover.name.endswith(".tmp")
    in_progress = leftover.with_name(".ETH.concurrent.tmp")  # a live writer's file: young, so kept
    in_progress.write_bytes(b"being written")
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(leftover, (old, old))
    store.write("bars", "1h", "SOL", _bars(10))  # any write to the folder cleans it
    assert not leftover.exists() and in_progress.exists()
    assert sorted(p.name for p in leftover.parent.iterdir()) == [
        ".ETH.concurrent.tmp",
        "BTC.parquet",
        "SOL.parquet",
    ]


def _write_many(root: str, symbol: str, rounds: int) -> None:
    store = ParquetStore(root)
    for i in range(rounds):
        store.write("bars", "1h", symbol, _bars(2000, seed=i))
        query(root, "SELECT count(*) FROM bars_1h")  # readers run while others write: no lock to fail on


def test_concurrent_partition_writes_and_queries(tmp_path):
    ctx = mp.get_context("spawn")
    symbols = ["BTC", "ETH", "SOL", "XRP"]
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), s, 5)) for s in symbols]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    counts = query(tmp_path, "SELECT symbol, count(*) AS n FROM bars_1h GROUP BY symbol ORDER BY symbol")
    assert counts.to_dict("list") == {"symbol": sorted(symbols), "n": [2000] * 4}
    last = ParquetStore(tmp_path).read("bars", "1h", "SOL")
    pd.testing.assert_frame_equal(last, _bars(2000, seed=4), check_freq=False)


def test_a_corrupt_data_page_behind_an_intact_footer_is_quarantined_on_read(tmp_path):
    import pyarrow.parquet as pq

    store = ParquetStore(tmp_path)
    path = store.write("bars", "1h", "BTC", _bars(2000))
    page = pq.read_metadata(path).row_group(0).column(2).data_page_offset  # `high`, after the index
    data = bytearray(path.read_bytes())
    data[page : page + 64] = bytes(b ^ 0xA5 for b in data[page : page + 64])
    path.write_bytes(bytes(data))
    assert store.meta("bars", "1h", "BTC") == {}  # the footer still reads
    with pytest.raises(CorruptPartition, match=re.escape(f"corrupt store file {path} ")):
        store.read("bars", "1h", "BTC")
    assert not path.exists() and len(list(Path(tmp_path, QUARANTINE_DIR, "bars", "1h").iterdir())) == 1
