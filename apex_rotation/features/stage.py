"""The feature stage over the store: `features` and `td_state` partitions from `audited_bars`.

Dagster's assets and any script call these, so a partition means the same thing everywhere. Each
partition is validated before it is written; a partition that breaks an invariant is reported, not
written.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.features import td
from apex_rotation.features.build import BENCHMARKS, CORR_WINDOWS_DAYS, build_features, model_returns
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import AUDITED_BARS, FUNDING, OPEN_INTEREST

FEATURES = "features"
TD_STATE = "td_state"
CORR_COLUMNS = [f"corr_{b.lower()}_{d}" for b in BENCHMARKS for d in CORR_WINDOWS_DAYS]


def _optional(store: ParquetStore, asset: str, symbol: str) -> pd.DataFrame | None:
    return store.read(asset, None, symbol) if store.exists(asset, None, symbol) else None


def feature_problems(frame: pd.DataFrame) -> list[str]:
    """Invariants every features partition must hold."""
    problems = []
    corr = frame[CORR_COLUMNS].to_numpy()
    if np.any(np.abs(corr[np.isfinite(corr)]) > 1.0):
        problems.append("correlation outside [-1, 1]")
    rsi = frame["rsi"].dropna()
    if ((rsi < 0) | (rsi > 100)).any():
        problems.append("rsi outside [0, 100]")
    if (frame["atr"].dropna() < 0).any():
        problems.append("negative atr")
    return problems


def compute_features(
    cfg: AppConfig, store: ParquetStore, timeframe: str, symbols: list[str]
) -> dict[str, list[str]]:
    """Write `features` for `symbols` at one timeframe; returns the problems of partitions not written."""
    bench = {b: model_returns(store.read(AUDITED_BARS, timeframe, b), cfg) for b in BENCHMARKS}
    problems: dict[str, list[str]] = {}
    for symbol in symbols:
        frame = build_features(
            store.read(AUDITED_BARS, timeframe, symbol),
            bench_returns=bench,
            timeframe=timeframe,
            cfg=cfg,
            funding=_optional(store, FUNDING, symbol),
            open_interest=_optional(store, OPEN_INTEREST, symbol),
        )
        found = feature_problems(frame)
        if found:
            problems[symbol] = found
            continue
        store.write(FEATURES, timeframe, symbol, frame)
    return problems


def td_problems(state: pd.DataFrame) -> list[str]:
    problems = []
    if (state["td_setup_count"] < 0).any():
        problems.append("negative td_setup_count")
    if not state["td_countdown"].between(0, 13).all():
        problems.append("td_countdown outside 0..13")
    return problems


def compute_td_state(cfg: AppConfig, store: ParquetStore, timeframe: str, symbol: str) -> list[str]:
    """Write the `td_state` partition of one symbol/timeframe; returns its problems (then nothing is written)."""
    state = td.compute(store.read(AUDITED_BARS, timeframe, symbol), cfg.td)
    found = td_problems(state)
    if not found:
        store.write(TD_STATE, timeframe, symbol, state)
    return found
