"""Lookahead analysis as a feature (`apex lookahead`), in the spirit of freqtrade's `lookahead-analysis`.

Every signal asset is recomputed from the store's audited bars (and funding / open interest) truncated at N
cut points, with the live path's functions, and compared with the same computation on the whole history:

    features (build_features) · td_state (td_on_traded_bars) · rotation_candidates (scan_history)
    · confirmations (watch_candidates) · scores (scoring contexts + compose_in_order)

A cut at bar t keeps every bar whose close is ≤ t's close (every timeframe) and every funding / OI stamp up
to that instant. Every value the truncated run emits for a bar ≤ t must equal the full run's (NaN where
NaN); each one that differs is reported (table, timeframe, symbol, column, how many rows, the first bar).
The audit itself is checked by `apex_rotation_tests/test_no_lookahead.py` from raw bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.features.build import BENCHMARKS, build_features, model_returns
from apex_rotation.features.compute import td_on_traded_bars
from apex_rotation.signals import rotation, scoring, watching
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import AUDITED_BARS, FUNDING, OPEN_INTEREST
from apex_rotation.timeframes import BASE_TIMEFRAME, TIMEFRAMES, delta


@dataclass(frozen=True)
class Change:
    table: str
    timeframe: str
    key: str  # symbol, or "basket"
    cut: pd.Timestamp
    column: str
    rows: int
    first: object

    def text(self) -> str:
        return (
            f"{self.table} {self.timeframe} {self.key} cut {self.cut:%Y-%m-%d %H:%M}: {self.column} differs on "
            f"{self.rows} row(s), first {self.first}"
        )


@dataclass
class Inputs:
    bars: dict[tuple[str, str], pd.DataFrame]
    funding: dict[str, pd.DataFrame | None]
    oi: dict[str, pd.DataFrame | None]


def read_inputs(store: ParquetStore, symbols: list[str], timeframes: list[str]) -> Inputs:
    def optional(table: str, s: str) -> pd.DataFrame | None:
        return store.read(table, None, s) if store.exists(table, None, s) else None

    return Inputs(
        {(s, tf): store.read(AUDITED_BARS, tf, s) for s in symbols for tf in timeframes},
        {s: optional(FUNDING, s) for s in symbols},
        {s: optional(OPEN_INTEREST, s) for s in symbols},
    )


def truncate(inputs: Inputs, cut_close: pd.Timestamp) -> Inputs:
    """Every bar closed by `cut_close`, every stamp up to it."""

    def stamps(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else frame[frame.index <= cut_close]

    return Inputs(
        {k: v[v.index + delta(k[1]) <= cut_close] for k, v in inputs.bars.items()},
        {s: stamps(f) for s, f in inputs.funding.items()},
        {s: stamps(f) for s, f in inputs.oi.items()},
    )


def signal_assets(cfg: AppConfig, inputs: Inputs, timeframe: str, symbols: list[str]) -> dict[str, object]:
    """features, td_state (per symbol), rotation_candidates, confirmations, scores of one timeframe."""
    timeframes = sorted({tf for _, tf in inputs.bars}, key=TIMEFRAMES.index)
    loaded: dict[tuple[str, str], pd.DataFrame] = {}
    features, td_state = {}, {}
    for tf in timeframes:
        bench = {b: model_returns(inputs.bars[(b, tf)], cfg) for b in BENCHMARKS if (b, tf) in inputs.bars}
        for s in symbols:
            bars = inputs.bars[(s, tf)]
            f = build_features(
                bars,
                bench_returns=bench,
                timeframe=tf,
                cfg=cfg,
                funding=inputs.funding[s],
                open_interest=inputs.oi[s],
            )
            td = td_on_traded_bars(bars, cfg.td)
            frame = bars.join(f.drop(columns=[c for c in f.columns if c in bars.columns]))
            loaded[(s, tf)] = frame.join(td.drop(columns=[c for c in td.columns if c in frame.columns]))
            if tf == timeframe:
                features[s], td_state[s] = f, td
    frames = {s: loaded[(s, timeframe)] for s in symbols}
    if timeframe in cfg.apex.trigger_timeframes:
        apex = {a: frames[a] for a in cfg.basket.apex_assets}
        history = rotation.scan_history(apex, frames, cfg, timeframe=timeframe)
    else:
        history = rotation.empty_history()
    watches = watching.watch_candidates(
        rotation.candidates_from_history(history),
        frames,
        cfg.market_filters,
        cfg.market_filters.confirm_window_bars,
    )
    ins = scoring.Inputs(cfg, None, timeframe, loaded)
    contexts = scoring.rotation_contexts(ins, watches)
    if timeframe == cfg.td.htf:
        contexts += scoring.td13_contexts(ins, symbols)
    scores = scoring.scores_frame(scoring.compose_in_order(contexts))
    return {
        "features": features,
        "td_state": td_state,
        "rotation_candidates": history,
        "confirmations": watches,
        "scores": scores,
    }


def _differences(
    full: pd.DataFrame, cut: pd.DataFrame, keys: list[str] | None
) -> list[tuple[str, int, object]]:
    """(column, rows, first key) for each column where `cut`'s rows differ from `full`'s rows of the same
    key (the index when `keys` is None); a row only the cut run emitted is reported too."""
    a, b = (full, cut) if keys is None else (full.set_index(keys), cut.set_index(keys))
    extra = b.index.difference(a.index)
    out = [("<row the full run does not have>", len(extra), extra[0])] if len(extra) else []
    b = b[b.index.isin(a.index)]
    a = a.loc[b.index]
    for col in b.columns:
        x, y = a[col], b[col]
        same = (x.to_numpy() == y.to_numpy()) | (x.isna().to_numpy() & y.isna().to_numpy())
        if not same.all():
            out.append((col, int((~same).sum()), b.index[int(np.argmin(same))]))
    return out


KEYS = {
    "rotation_candidates": ["bar_time", "symbol"],
    "confirmations": ["bar_time", "symbol", "eval_time"],
    "scores": ["signal_id"],
}


def cut_points(index: pd.DatetimeIndex, n: int) -> list[pd.Timestamp]:
    """`n` bars spread over the later 80 % of the history (the warm-up leaves the first 20 % mostly NaN)."""
    positions = np.linspace(len(index) * 0.2, len(index) - 2, n).astype(int)
    return [index[p] for p in dict.fromkeys(positions.tolist())]


def analyse(
    cfg: AppConfig,
    store: ParquetStore,
    timeframes: list[str],
    symbols: list[str] | None = None,
    cuts: int | None = None,
) -> tuple[list[Change], int]:
    """The changes found (empty: no lookahead) and how many values were compared."""
    symbols = symbols or [s for s in cfg.basket.names if store.exists(AUDITED_BARS, BASE_TIMEFRAME, s)]
    needed = sorted({*timeframes, cfg.td.htf, cfg.td.ltf}, key=TIMEFRAMES.index)
    inputs = read_inputs(store, symbols, needed)
    changes, compared = [], 0
    for tf in timeframes:
        full = signal_assets(cfg, inputs, tf, symbols)
        grid = inputs.bars[(cfg.basket.apex_assets[0], tf)].index
        for cut in cut_points(grid, cuts or cfg.research.lookahead_cuts):
            part = signal_assets(cfg, truncate(inputs, cut + delta(tf)), tf, symbols)
            for table in ("features", "td_state"):
                for s in symbols:
                    compared += part[table][s].size
                    for col, n, first in _differences(full[table][s], part[table][s], None):
                        changes.append(Change(table, tf, s, cut, col, n, first))
            for table, keys in KEYS.items():
                frame = part[table]
                compared += frame.size
                if len(frame):
                    for col, n, first in _differences(full[table], frame, keys):
                        changes.append(Change(table, tf, "basket", cut, col, n, first))
    return changes, compared
