"""`parallel.map_partitions`: the same contract on forked processes, threads and one after another.

Forked workers must behave like a loop in the parent: results in input order, every task ended before the
first failure is raised (as itself, a store error included), log records handled by the parent's loggers in
input order, the parent's state as it is at the call (a closure, a test's monkeypatch) and no worker left
behind. The forked cases are skipped where the platform does not fork.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from pathlib import Path

import pandas as pd
import pytest

from apex_rotation import parallel
from apex_rotation.parallel import PARALLEL_ENV, WorkerError, map_partitions, parallel_mode
from apex_rotation.store.parquet import CorruptPartition, ParquetStore

forks = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="this platform has no fork()"
)
MODES = ["processes", "threads", "off"]


@pytest.fixture(params=MODES)
def mode(request, monkeypatch) -> str:
    if request.param == "processes" and "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("this platform has no fork()")
    monkeypatch.setenv(PARALLEL_ENV, request.param)
    return request.param


def test_results_in_input_order_in_every_mode(mode):
    assert map_partitions(lambda x: x * x, range(23)) == [x * x for x in range(23)]
    assert map_partitions(lambda x: x * x, range(23), prime=True) == [x * x for x in range(23)]
    assert map_partitions(lambda x: x, []) == []
    assert map_partitions(lambda x: -x, [4]) == [-4]


@forks
def test_forked_tasks_run_in_other_processes_and_priming_runs_the_first_here(monkeypatch):
    monkeypatch.setenv(PARALLEL_ENV, "processes")
    threads_before = set(threading.enumerate())
    pids = map_partitions(lambda _: os.getpid(), range(8))
    assert os.getpid() not in pids
    primed = map_partitions(lambda _: os.getpid(), range(8), prime=True)
    assert primed[0] == os.getpid() and os.getpid() not in primed[1:]
    # nothing outlives the call: no worker process, no helper thread, the task reference cleared
    assert multiprocessing.active_children() == []
    assert parallel._TASK is None
    assert set(threading.enumerate()) == threads_before


@forks
def test_workers_see_the_parent_as_it_is_at_the_call(monkeypatch):
    monkeypatch.setenv(PARALLEL_ENV, "processes")
    scale = {"factor": 2}
    assert map_partitions(lambda x: x * scale["factor"], range(4)) == [0, 2, 4, 6]
    scale["factor"] = 10  # a later call sees the change: workers are forked per call
    assert map_partitions(lambda x: x * scale["factor"], range(4)) == [0, 10, 20, 30]
    monkeypatch.setattr(parallel, "MAX_WORKERS", 1)  # a module attribute patched after import
    assert map_partitions(lambda _: parallel.MAX_WORKERS, range(3)) == [1, 1, 1]


def test_every_task_ends_before_the_first_failure_is_raised(mode, tmp_path):
    def task(x: int) -> int:
        if x in (1, 5):
            raise ValueError(f"partition {x} failed")
        (tmp_path / f"{x}.done").touch()  # a side effect visible across processes
        return x

    with pytest.raises(ValueError, match="partition 1 failed") as caught:
        map_partitions(task, range(8), prime=True)
    assert sorted(int(p.stem) for p in tmp_path.glob("*.done")) == [0, 2, 3, 4, 6, 7]
    if mode == "processes":  # the worker's own traceback travels with it
        assert any("raised in worker process" in note for note in caught.value.__notes__)


def test_a_failure_of_the_primed_first_item_is_raised_after_the_others(mode, tmp_path):
    def task(x: int) -> int:
        if x == 0:
            raise KeyError("first")
        (tmp_path / f"{x}.done").touch()
        return x

    with pytest.raises(KeyError, match="first"):
        map_partitions(task, range(5), prime=True)
    assert len(list(tmp_path.glob("*.done"))) == 4


@forks
def test_a_store_error_comes_back_as_itself(monkeypatch, tmp_path):
    """`CorruptPartition` carries the path and the quarantine target; a caller catches it by type."""
    monkeypatch.setenv(PARALLEL_ENV, "processes")
    store = ParquetStore(tmp_path)
    for symbol in ("AAA", "BBB"):
        path = store.path("bars", "1h", symbol)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not parquet at all")

    with pytest.raises(CorruptPartition) as caught:
        map_partitions(lambda s: store.read("bars", "1h", s), ["AAA", "BBB"])
    err = caught.value
    assert err.path == store.path("bars", "1h", "AAA") and err.moved_to is not None
    assert err.moved_to.exists() and "quarantined to" in str(err)


@forks
def test_an_exception_that_does_not_pickle_becomes_a_worker_error(monkeypatch):
    monkeypatch.setenv(PARALLEL_ENV, "processes")

    class Local(Exception):  # a local class cannot be pickled by reference
        pass

    def task(x: int) -> int:
        if x == 2:
            raise Local("odd one out")
        return x

    with pytest.raises(WorkerError, match=r"Local: odd one out") as caught:
        map_partitions(task, range(4))
    assert "Traceback" in str(caught.value)


def test_log_records_reach_the_parents_loggers_in_input_order(mode, caplog):
    log = logging.getLogger("apex_rotation.test_parallel")

    def task(x: int) -> int:
        log.info("partition %s done", x, extra={"symbol": f"S{x}"})
        log.debug("hidden below INFO")
        return x

    with caplog.at_level(logging.INFO, logger="apex_rotation.test_parallel"):
        map_partitions(task, range(6), prime=True)
    records = [r for r in caplog.records if r.name == "apex_rotation.test_parallel"]
    assert sorted(r.getMessage() for r in records) == [f"partition {x} done" for x in range(6)]
    if mode != "threads":  # threads interleave; workers' records are handled in input order
        assert [r.getMessage() for r in records] == [f"partition {x} done" for x in range(6)]
    assert {r.symbol for r in records} == {f"S{x}" for x in range(6)}  # `extra` kept
    assert all(r.levelno == logging.INFO for r in records)


def test_a_logged_exception_keeps_its_traceback_text(mode, caplog):
    log = logging.getLogger("apex_rotation.test_parallel")

    def task(x: int) -> int:
        try:
            raise RuntimeError(f"boom {x}")
        except RuntimeError:
            log.exception("handled")
        return x

    with caplog.at_level(logging.ERROR, logger="apex_rotation.test_parallel"):
        map_partitions(task, range(3))
    assert len(caplog.records) == 3
    assert all(f"RuntimeError: boom {x}" in caplog.text for x in range(3))


@forks
def test_a_worker_that_dies_fails_the_call_instead_of_hanging(monkeypatch):
    from concurrent.futures.process import BrokenProcessPool

    monkeypatch.setenv(PARALLEL_ENV, "processes")

    def task(x: int) -> int:
        if x == 3:
            os._exit(9)  # a segfault or the OOM killer, as the parent sees it
        return x

    with pytest.raises(BrokenProcessPool):
        map_partitions(task, range(6))
    assert parallel._TASK is None


@forks
@forks
def test_a_worker_computes_a_nested_map_itself(monkeypatch):
    monkeypatch.setenv(PARALLEL_ENV, "processes")

    def outer(x: int) -> list[int]:
        return map_partitions(lambda y: os.getpid(), range(3))  # no grandchildren: the worker's own pid

    for pids in map_partitions(outer, range(4)):
        assert len(set(pids)) == 1 and os.getpid() not in pids


@forks
def test_frames_return_from_workers_equal_to_a_loop_here(monkeypatch, tmp_path):
    monkeypatch.setenv(PARALLEL_ENV, "processes")
    idx = pd.date_range("2024-01-01", periods=50, freq="h", tz="UTC", name="open_time")

    def task(k: int) -> pd.DataFrame:
        return pd.DataFrame({"x": range(k, k + 50), "z": ["a", None] * 25}, index=idx)

    for got, k in zip(map_partitions(task, range(5)), range(5), strict=True):
        pd.testing.assert_frame_equal(got, task(k))


def test_the_mode_comes_from_the_environment_and_a_wrong_value_is_refused(monkeypatch):
    monkeypatch.delenv(PARALLEL_ENV, raising=False)
    expected = "processes" if "fork" in multiprocessing.get_all_start_methods() else "threads"
    assert parallel_mode() == expected
    monkeypatch.setenv(PARALLEL_ENV, " Threads ")
    assert parallel_mode() == "threads"
    monkeypatch.setenv(PARALLEL_ENV, "gpu")
    with pytest.raises(ValueError, match=r"APEX_PARALLEL='gpu': expected one of processes, threads, off"):
        map_partitions(lambda x: x, range(3))


def test_off_runs_everything_here_one_after_another(monkeypatch):
    monkeypatch.setenv(PARALLEL_ENV, "off")
    seen: list[tuple[int, int, str]] = []
    map_partitions(lambda x: seen.append((x, os.getpid(), threading.current_thread().name)), range(4))
    assert seen == [(x, os.getpid(), threading.current_thread().name) for x in range(4)]


def test_partition_work_in_workers_writes_the_same_store(monkeypatch, tmp_path: Path):
    """The features and td stages on forked workers write the same files as one after another."""
    from apex_rotation.config import load_config
    from apex_rotation.features.compute import compute_feature_partitions, compute_td_state
    from apex_rotation.ingest.synthetic import SyntheticSource
    from apex_rotation.store.refresh import StoreRefresher

    cfg = load_config(
        overrides={"basket": {"symbols": ["BTC", "ETH", "SOL", "APT"]}, "synthetic": {"days": 40}}
    )
    symbols = cfg.basket.names
    frames = {}
    for mode in ("off", "processes" if "fork" in multiprocessing.get_all_start_methods() else "threads"):
        monkeypatch.setenv(PARALLEL_ENV, mode)
        store = ParquetStore(tmp_path / mode)
        with StoreRefresher(cfg, store, SyntheticSource(cfg)) as refresher:
            summary = refresher.refresh({s: ["1h", "4h"] for s in symbols}, audit=True)
        assert summary.ok and [s.symbol for s in summary.symbols] == symbols
        pairs = [(s, tf) for s in symbols for tf in ("1h", "4h")]
        assert compute_feature_partitions(cfg, store, pairs) == {}
        assert map_partitions(lambda p, st=store: compute_td_state(cfg, st, p[1], p[0]), pairs) == [[]] * 8
        frames[mode] = {
            (table, s, tf): store.read(table, tf, s)
            for table in ("bars", "audited_bars", "features", "td_state")
            for s, tf in pairs
        }
    off, other = frames.values()
    for key in off:
        pd.testing.assert_frame_equal(off[key], other[key], check_exact=True, obj=str(key))
