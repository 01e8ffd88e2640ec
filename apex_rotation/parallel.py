"""Independent partitions computed a few at once, results in input order.

Two ways, one contract (`[fn(x) for x in items]`, every task ended before the first failure is raised):

* `map_ordered`: threads. For work that is mostly Parquet decoding, compression and numpy kernels (they
  release the GIL) and whose results are large frames (the scanner's loads).
* `map_partitions`: forked worker processes where the platform forks (Linux), threads elsewhere. For the
  stages that compute, validate and write whole partitions: their time is mostly pandas and pandera
  bookkeeping, which holds the GIL, so threads kept one of two cores idle (a midnight bar close used 1.09
  CPU-seconds per second). Each task writes its own files and returns something small (problems, a report).

How the forked path stays safe and faithful:

* The processes are forked for one call and gone at its end, so a task sees the parent exactly as it is at
  that call (the configuration, the store, a test's monkeypatches) and nothing outlives it. `fn` and `items`
  are inherited, never pickled, so closures work; only results, exceptions and log records travel back.
* They are forked before any helper thread of the pool exists (`concurrent.futures` forks every worker at
  the first submit), from a run whose steps execute on one thread; `gc.freeze()` keeps a child's collector
  from touching (and so copying) the parent's heap.
* A child's log records are sent back and handled by the parent's loggers in input order, so logs, `caplog`
  and redaction behave as on threads; an exception comes back as itself (or, if it does not pickle, as
  `WorkerError` with its type, message and traceback); a child that dies raises `BrokenProcessPool`.
* A child resets SIGINT/SIGTERM to their defaults: Dagster's handlers, inherited, would raise inside the
  pool's machinery when the pool is shut down. A `map_partitions` inside a worker runs there, serially.

`APEX_PARALLEL=threads` (or `off`: one task after another) overrides the choice, e.g. to profile one process.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import pickle
import signal
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4  # beyond a few threads the GIL-bound part (pandas bookkeeping, pandera) only contends
PARALLEL_ENV = "APEX_PARALLEL"  # processes (default where fork exists) | threads | off
MODES = ("processes", "threads", "off")


class WorkerError(RuntimeError):
    """An exception raised in a worker process that could not be sent back as itself."""


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def parallel_mode() -> str:
    """`APEX_PARALLEL` if set, else processes where the platform forks, else threads."""
    mode = os.environ.get(PARALLEL_ENV, "").strip().lower()
    if mode:
        if mode not in MODES:
            raise ValueError(f"{PARALLEL_ENV}={mode!r}: expected one of {', '.join(MODES)}")
        return mode
    return "processes" if "fork" in multiprocessing.get_all_start_methods() else "threads"


def map_ordered(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]`, computed on up to `workers` threads (default: the cores, at most 4)."""
    items = list(items)
    workers = min(workers or default_workers(), len(items))
    if workers <= 1 or parallel_mode() == "off":
        return _serial(fn, items)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apex-partition") as pool:
        futures = [pool.submit(fn, x) for x in items]
    return [f.result() for f in futures]  # the pool waited for all; the first failure is raised here


def map_partitions(
    fn: Callable[[T], R], items: Iterable[T], workers: int | None = None, prime: bool = False
) -> list[R]:
    """`[fn(x) for x in items]` on forked processes (one per core), threads or serially (`parallel_mode`).

    `fn` must return something picklable and small; it may be a closure (the children inherit it). It must
    not report through Dagster (a step's `context`): a worker's writes to the instance would be lost or
    worse; plain `logging` is forwarded. `prime=True` computes the first item here before forking: what it
    loads lazily (numba kernels from their disk cache, some 0.4 s for the feature kernels; a source's
    generated market) is then loaded once and inherited, not loaded again by every worker. Worth it when
    there are many items.
    """
    items = list(items)
    mode = parallel_mode()
    cores = os.cpu_count() or 1
    if mode == "off" or len(items) <= 1 or _CAPTURE is not None:  # in a worker: no workers of its own
        return _serial(fn, items)
    if mode == "threads" or cores <= 1:
        return map_ordered(fn, items, workers)
    return _map_forked(fn, items, min(workers or cores, MAX_WORKERS, len(items)), prime)


def _serial(fn: Callable[[T], R], items: list[T]) -> list[R]:
    """One after another, with the same contract: every item runs, then the first failure is raised."""
    results, first_error = [], None
    for x in items:
        try:
            results.append(fn(x))
        except Exception as exc:
            first_error = first_error or exc
            results.append(None)
    if first_error is not None:
        raise first_error
    return results


# What the forked children run: set by the parent just before it forks them, inherited, never pickled.
_TASK: tuple[Callable, list] | None = None
Outcome = tuple[bool, object, list[logging.LogRecord]]  # (ok, result or exception, log records)


def _map_forked(fn: Callable[[T], R], items: list[T], workers: int, prime: bool) -> list[R]:
    global _TASK
    outcomes: list[Outcome] = []
    if prime:  # the first item here: its records are handled as it runs, its failure raised with the rest
        try:
            outcomes.append((True, fn(items[0]), []))
        except Exception as exc:
            outcomes.append((False, exc, []))
    rest = items[len(outcomes) :]
    if rest:
        _TASK = (fn, rest)
        gc.freeze()  # the children's collector leaves the parent's objects (and their pages) alone
        try:
            with ProcessPoolExecutor(
                max_workers=min(workers, len(rest)),
                mp_context=multiprocessing.get_context("fork"),
                initializer=_child_setup,
            ) as pool:
                outcomes.extend(pool.map(_run_task, range(len(rest))))
        finally:
            gc.unfreeze()
            _TASK = None
    first_error = None
    for ok, value, records in outcomes:
        for record in records:
            logging.getLogger(record.name).handle(record)
        if not ok and first_error is None:
            first_error = value
    if first_error is not None:
        raise first_error
    return [value for _, value, _ in outcomes]


class _Capture(logging.Handler):
    """The only handler in a child: keeps every record for the parent to handle."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(_portable_record(record))


_CAPTURE: _Capture | None = None


def _child_setup() -> None:
    """In a new child: default signal handlers, and every log record captured instead of emitted."""
    global _CAPTURE
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _CAPTURE = _Capture()
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        if isinstance(logger, logging.Logger):
            logger.handlers = [_CAPTURE] if logger is logging.getLogger() else []
            logger.propagate = True  # every record that passes its logger's level reaches the capture


def _run_task(index: int) -> Outcome:
    assert _TASK is not None and _CAPTURE is not None
    fn, items = _TASK
    _CAPTURE.records = []
    try:
        ok, value = True, fn(items[index])
    except BaseException as exc:  # sent back and raised by the parent
        ok, value = False, _portable_error(exc)
    return ok, value, _CAPTURE.records


def _portable_record(record: logging.LogRecord) -> logging.LogRecord:
    """The record with its message formatted and its exception as text (arguments may not pickle)."""
    record = logging.makeLogRecord(record.__dict__)
    record.msg, record.args = record.getMessage(), None
    if record.exc_info:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None
    try:
        pickle.dumps(record)
    except Exception:  # an `extra` value that does not pickle: keep the message and level
        record = logging.makeLogRecord(
            {k: record.__dict__[k] for k in ("name", "levelno", "levelname", "msg", "created", "exc_text")}
        )
    return record


def _portable_error(exc: BaseException) -> BaseException:
    """The exception itself with the worker's traceback as a note, or a `WorkerError` saying all of it."""
    text = "".join(traceback.format_exception(exc)).rstrip()
    try:
        copy = pickle.loads(pickle.dumps(exc))
    except Exception:
        return WorkerError(f"{type(exc).__name__}: {exc}\n{text}")
    copy.add_note(f"raised in worker process {os.getpid()}:\n{text}")
    return copy
