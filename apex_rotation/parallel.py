"""Independent partitions on a few threads, results in input order.

Why threads help here although Python holds a GIL: most of a partition's time is Parquet decoding and
encoding, compression, fsync and numpy kernels, which release it, so a 2-core machine computes two partitions at
once for the part that matters. Every task writes its own files and returns its result; nothing is shared
but the store's frame cache, which is locked, and read-only inputs that must not carry pandas objects
whose lazy caches threads would build at once (an index's lookup engine is one: give each task its own
copy, as `features/compute.py` does with the benchmark returns). The first exception is raised once every task has ended, so
a failure never leaves a partition half-written behind a returned error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

MAX_WORKERS = 4  # beyond a few threads the GIL-bound part (pandas bookkeeping, pandera) only contends


def default_workers() -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def map_ordered(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """`[fn(x) for x in items]`, computed on up to `workers` threads (default: the cores, at most 4)."""
    items = list(items)
    workers = min(workers or default_workers(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="apex-partition") as pool:
        futures = [pool.submit(fn, x) for x in items]
    return [f.result() for f in futures]  # the pool waited for all; the first failure is raised here
