"""Computes and writes the feature tables: `features` and `td_state` partitions from `audited_bars`.

Dagster's assets and any script call these, so a partition means the same thing everywhere. Each
partition is validated before it is written; a partition that breaks an invariant is reported, not
written.
"""

from __future__ import annotations

import pandas as pd

from apex_rotation.config import AppConfig, TDConfig
from apex_rotation.features import td
from apex_rotation.features.build import BENCHMARKS, build_features, model_returns
from apex_rotation.parallel import map_partitions
from apex_rotation.schemas import SchemaViolation, validate_frame
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import AUDITED_BARS, FEATURES, FUNDING, OPEN_INTEREST, TD_STATE


def _optional(store: ParquetStore, asset: str, symbol: str) -> pd.DataFrame | None:
    return store.read(asset, None, symbol) if store.exists(asset, None, symbol) else None


def schema_problems(schema, frame: pd.DataFrame, what: str) -> list[str]:
    """The failed checks of a partition against its pandera schema (empty when it validates)."""
    try:
        validate_frame(schema, frame, what, inplace=True)  # a frame just built here
    except SchemaViolation as exc:
        return [str(exc)]
    return []


def compute_features(
    cfg: AppConfig, store: ParquetStore, timeframe: str, symbols: list[str]
) -> dict[str, list[str]]:
    """Write `features` for `symbols` at one timeframe; returns the problems of partitions not written."""
    found = compute_feature_partitions(cfg, store, [(symbol, timeframe) for symbol in symbols])
    return {symbol: problems for (symbol, _), problems in found.items()}


def compute_feature_partitions(
    cfg: AppConfig, store: ParquetStore, pairs: list[tuple[str, str]]
) -> dict[tuple[str, str], list[str]]:
    """Write `features` for every (symbol, timeframe); returns the problems of the partitions not written."""
    return compute_feature_tables(cfg, store, features=pairs, td_states=[])[0]


def compute_feature_tables(
    cfg: AppConfig,
    store: ParquetStore,
    *,
    features: list[tuple[str, str]],
    td_states: list[tuple[str, str]],
) -> tuple[dict[tuple[str, str], list[str]], dict[tuple[str, str], list[str]]]:
    """Write `features` for the (symbol, timeframe) pairs of `features` and `td_state` for those of
    `td_states`; returns the problems of the partitions not written, per table.

    Both tables of a pair are built from its audited bars: one task per pair reads them once (a worker
    process's frame cache serves the second read), and the pairs run a few at once
    (apex_rotation/parallel.py). BTC's and ETH's model returns are computed once per timeframe, before.
    """
    bench = {
        tf: {
            b: model_returns(store.read(AUDITED_BARS, tf, b), cfg)
            for b in BENCHMARKS
            if b in cfg.basket.names
        }
        for tf in sorted({tf for _, tf in features})
    }
    want_features, want_td = set(features), set(td_states)

    def one(pair: tuple[str, str]) -> tuple[list[str], list[str]]:
        symbol, timeframe = pair
        found_features, found_td = [], []
        if pair in want_features:
            frame = build_features(
                store.read(AUDITED_BARS, timeframe, symbol),
                bench_returns={b: _own_copy(r) for b, r in bench[timeframe].items()},
                timeframe=timeframe,
                cfg=cfg,
                funding=_optional(store, FUNDING, symbol),
                open_interest=_optional(store, OPEN_INTEREST, symbol),
            )
            found_features = schema_problems(
                FEATURES.schema(timeframe), frame, f"features {symbol} {timeframe}"
            )
            if not found_features:
                store.write(FEATURES, timeframe, symbol, frame)
        if pair in want_td:
            found_td = compute_td_state(cfg, store, timeframe, symbol)
        return found_features, found_td

    pairs = list(dict.fromkeys([*features, *td_states]))
    found = map_partitions(one, pairs, prime=True)  # the first loads the numba kernels for all
    return (
        {pair: f for pair, (f, _) in zip(pairs, found, strict=True) if f},
        {pair: t for pair, (_, t) in zip(pairs, found, strict=True) if t},
    )


def _own_copy(series: pd.Series) -> pd.Series:
    """A series with its own index object for one thread (when partitions run on threads): pandas builds
    an index's lookup engine lazily and not thread-safely, and two threads reindexing on one shared index
    raced into "cannot reindex on an axis with duplicate labels" (real 2024 candles, 2 cores)."""
    return pd.Series(series.to_numpy(copy=True), index=series.index.copy(deep=True), name=series.name)


TD_PERSISTENT = [
    "td_setup_type",
    "td_setup_count",
    "td_countdown_type",
    "td_countdown",
    "td_tdst_buy",
    "td_tdst_sell",
]  # state a filled bar repeats from the last traded bar
TD_EVENTS_BOOL = ["td_perfected", "td_countdown_deferred"]  # events: cleared on a filled bar
TD_EVENTS_NUM = ["td_setup_risk_level", "td_countdown_risk_level"]
TD_EVENTS_STR = ["td_flip", "td_tdst_breach"]


def td_on_traded_bars(bars: pd.DataFrame, cfg: TDConfig) -> pd.DataFrame:
    """TD Sequential over the bars that traded; a bar the audit filled repeats the previous state.

    A flat filled bar would count as `C <= L[i-2]` and could print a countdown 13 that never happened, so
    filled bars are left out of the count (as a chart skips missing candles) and get the state of the last
    traded bar with no events (flip, perfection, deferral, breach, risk levels). `filled` is kept beside the
    TD columns so a consumer can tell a repeated state from a new one.
    """
    filled = bars["filled"].to_numpy(bool) if "filled" in bars else None
    if filled is None or not filled.any():
        return td.compute(bars, cfg).assign(filled=False)
    state = td.compute(bars[~filled], cfg).reindex(
        bars.index, method="ffill"
    )  # a filled row: the last traded one
    gap = pd.Series(filled, index=bars.index)
    state.loc[gap, TD_EVENTS_BOOL] = False
    state.loc[gap, TD_EVENTS_NUM] = float("nan")
    for col in TD_EVENTS_STR:
        state[col] = state[col].astype(object).where(~gap & state[col].notna(), None)
    return state.assign(filled=filled)


def compute_td_state(cfg: AppConfig, store: ParquetStore, timeframe: str, symbol: str) -> list[str]:
    """Write the `td_state` partition of one symbol/timeframe; returns its problems (then nothing is written)."""
    state = td_on_traded_bars(store.read(AUDITED_BARS, timeframe, symbol), cfg.td)
    found = schema_problems(TD_STATE.schema(timeframe), state, f"td_state {symbol} {timeframe}")
    if not found:
        store.write(TD_STATE, timeframe, symbol, state)
    return found
