"""Partitions: symbol × timeframe from the config basket (keys look like `SOL|1h`)."""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable

import dagster as dg
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.timeframes import TIMEFRAMES

# Multi-partition mappings are Beta and partitioned checks Preview in Dagster 1.13 (the version is pinned
# in pyproject.toml): known and accepted, so their warnings are not repeated on every load.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

SYMBOL_DIM = "symbol"
TIMEFRAME_DIM = "timeframe"


def symbol_timeframe_partitions(cfg: AppConfig) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {
            SYMBOL_DIM: dg.StaticPartitionsDefinition(cfg.basket.names),
            TIMEFRAME_DIM: dg.StaticPartitionsDefinition(list(TIMEFRAMES)),
        }
    )


def timeframe_partitions() -> dg.StaticPartitionsDefinition:
    return dg.StaticPartitionsDefinition(list(TIMEFRAMES))


def split_keys(partitions: dg.MultiPartitionsDefinition, keys: Iterable[str]) -> list[tuple[str, str]]:
    """(symbol, timeframe) pairs of multi-partition keys, plain strings included."""
    pairs = []
    for key in keys:
        dims = partitions.get_partition_key_from_str(str(key)).keys_by_dimension
        pairs.append((dims[SYMBOL_DIM], dims[TIMEFRAME_DIM]))
    return pairs


def group_by_symbol(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Timeframes asked per symbol, timeframes in canonical order."""
    grouped: dict[str, set[str]] = defaultdict(set)
    for symbol, timeframe in pairs:
        grouped[symbol].add(timeframe)
    return {s: [tf for tf in TIMEFRAMES if tf in tfs] for s, tfs in grouped.items()}


# A bar-close run carries its bar close (UTC, ISO): its `bars` step sees the market as of that close.
BAR_CLOSE_TAG = "apex/bar_close"
TIMEFRAMES_TAG = "apex/timeframes"


def bar_close_of(context: dg.AssetExecutionContext) -> pd.Timestamp | None:
    """The run's bar close (the schedules' tag), or None for a run without one (`apex run`, a backfill)."""
    value = context.run.tags.get(BAR_CLOSE_TAG)
    return pd.Timestamp(value) if value else None
