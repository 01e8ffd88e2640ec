"""The store's frame cache and the partition thread pool: a cached read is the read, never another file's.

Every test compares against an uncached read of the same file (real values), and changes the file the
ways the store meets: rewritten by a writer, damaged in place, removed.
"""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from apex_rotation.features.loader import load
from apex_rotation.parallel import map_ordered
from apex_rotation.store.parquet import FRAMES, CorruptPartition, FrameCache, ParquetStore, StoreError


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    idx = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC", name="open_time")
    return pd.DataFrame(
        {
            "close": rng.normal(100, 1, n),
            "volume": rng.uniform(1, 2, n),
            "fill_reason": rng.choice(["", "gap", "spike"], n),
        },
        index=idx,
    )


def _uncached(store: ParquetStore, *key, **kw) -> pd.DataFrame:
    FRAMES.clear()
    try:
        return store.read(*key, **kw)
    finally:
        FRAMES.clear()


@pytest.fixture(autouse=True)
def _empty_cache():
    FRAMES.clear()
    yield
    FRAMES.clear()


def test_a_cached_read_equals_the_file_and_is_a_copy(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("bars", "1h", "SOL", _frame(50))
    first = store.read("bars", "1h", "SOL")
    second = store.read("bars", "1h", "SOL")  # served from the cache
    pd.testing.assert_frame_equal(second, _uncached(store, "bars", "1h", "SOL"))
    second.loc[second.index[0], "close"] = -1.0  # a caller changing its frame changes nobody else's
    pd.testing.assert_frame_equal(store.read("bars", "1h", "SOL"), first)


def test_columns_and_bounds_are_part_of_the_key(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("bars", "1h", "SOL", _frame(50))
    start, end = pd.Timestamp("2024-01-01 10:00", tz="UTC"), pd.Timestamp("2024-01-01 20:00", tz="UTC")
    store.read("bars", "1h", "SOL")
    sliced = store.read("bars", "1h", "SOL", columns=["close"], start=start, end=end)
    assert list(sliced.columns) == ["close"] and len(sliced) == 11
    pd.testing.assert_frame_equal(
        sliced, _uncached(store, "bars", "1h", "SOL", columns=["close"], start=start, end=end)
    )


def test_a_rewritten_partition_is_read_anew(tmp_path):
    store = ParquetStore(tmp_path)
    store.write("bars", "1h", "SOL", _frame(50, seed=1))
    store.read("bars", "1h", "SOL")
    store.write("bars", "1h", "SOL", _frame(51, seed=2))
    pd.testing.assert_frame_equal(store.read("bars", "1h", "SOL"), _frame(51, seed=2), check_freq=False)


def test_a_file_damaged_or_removed_after_a_cached_read_is_not_served_from_the_cache(tmp_path):
    store = ParquetStore(tmp_path)
    path = store.write("bars", "1h", "SOL", _frame(50))
    store.read("bars", "1h", "SOL")
    size = path.stat().st_size
    path.write_bytes(b"\0" * size)  # same size, garbage: its mtime (and so its identity) changed
    with pytest.raises(CorruptPartition):
        store.read("bars", "1h", "SOL")
    with pytest.raises(StoreError, match="no bars data"):
        store.read("bars", "1h", "SOL")  # quarantined: absent, not the cached frame


def test_the_cache_keeps_to_its_memory_bound_least_recently_used_out_first():
    frames = {k: _frame(100, seed=k) for k in range(3)}
    size = int(frames[0].memory_usage(index=True).sum())
    cache = FrameCache(max_bytes=2 * size)
    cache.put(("a",), frames[0])
    cache.put(("b",), frames[1])
    assert cache.get(("a",)) is not None  # a is now the most recent
    cache.put(("c",), frames[2])
    assert cache.get(("b",)) is None
    pd.testing.assert_frame_equal(cache.get(("a",)), frames[0])
    pd.testing.assert_frame_equal(cache.get(("c",)), frames[2])
    small = FrameCache(max_bytes=size // 2)
    small.put(("big",), frames[0])  # larger than the bound: not kept, no error
    assert small.get(("big",)) is None


def test_text_columns_are_dictionary_encoded_and_floats_are_not(tmp_path):
    path = ParquetStore(tmp_path).write("bars", "1h", "SOL", _frame(500))
    meta = pq.ParquetFile(path).metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert any("DICTIONARY" in e for e in encodings["fill_reason"])
    assert not any("DICTIONARY" in e for e in encodings["close"])


def test_features_load_joins_once_and_sees_a_rewritten_stage(tmp_path):
    store = ParquetStore(tmp_path)
    bars = _frame(30).drop(columns="fill_reason")
    store.write("audited_bars", "1h", "SOL", bars)
    store.write("features", "1h", "SOL", pd.DataFrame({"rsi": np.linspace(0, 100, 30)}, index=bars.index))
    joined = load("SOL", "1h", root=tmp_path)
    assert list(joined.columns) == ["close", "volume", "rsi"]
    pd.testing.assert_frame_equal(load("SOL", "1h", root=tmp_path), joined)
    assert list(load("SOL", "1h", cols=["rsi"], root=tmp_path).columns) == ["rsi"]
    store.write("features", "1h", "SOL", pd.DataFrame({"rsi": np.full(30, 50.0)}, index=bars.index))
    assert (load("SOL", "1h", root=tmp_path)["rsi"] == 50.0).all()
    store.write("td_state", "1h", "SOL", pd.DataFrame({"td_setup_count": np.arange(30)}, index=bars.index))
    assert "td_setup_count" in load("SOL", "1h", root=tmp_path).columns  # a stage that appeared


def test_map_ordered_keeps_the_input_order_and_raises_after_every_task_ended():
    assert map_ordered(lambda x: x * x, range(20), workers=3) == [x * x for x in range(20)]
    assert map_ordered(lambda x: x, [], workers=3) == []
    ended, lock = [], threading.Lock()

    def task(x: int) -> int:
        if x == 0:
            raise ValueError("partition 0 failed")
        with lock:
            ended.append(x)
        return x

    with pytest.raises(ValueError, match="partition 0 failed"):
        map_ordered(task, range(8), workers=2)
    assert sorted(ended) == list(range(1, 8))  # the others ran to the end: nothing left half-done
