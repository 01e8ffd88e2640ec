"""Walk-forward over one timeframe: folds, the grid pick on each train window, the stitched out-of-sample run.

Folds (`research.splits`, in days): test windows of `test_days` follow train windows of `train_days`
(rolling) or everything before them (anchored), moving by `step_days`, the last one ending at the data's
end. On each train window every grid point's trades (signals whose bar lies in the window) are scored by
`research.objective`; the best point (ties and too-thin windows: the earliest grid point at the config's own
value, else the first) is then traded on the test window only. The out-of-sample run is the test windows'
trades, stitched.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.research import metrics
from apex_rotation.research.engine import Universe, ablate, with_values
from apex_rotation.signals.score import ScoredSignal


@dataclass(frozen=True)
class Fold:
    number: int
    train: tuple[pd.Timestamp, pd.Timestamp]
    test: tuple[pd.Timestamp, pd.Timestamp]


def folds(grid: pd.DatetimeIndex, cfg: AppConfig) -> list[Fold]:
    """The walk-forward folds over the bar grid's span (open times; windows are [start, end))."""
    s = cfg.research.splits
    first, end = grid[0], grid[-1] + pd.Timedelta(1, "ns")
    train, test, step = (pd.Timedelta(days=d) for d in (s.train_days, s.test_days, s.step_days))
    out, start = [], first + train
    while start < end:
        lo = first if s.mode == "anchored" else start - train
        out.append((lo, start, min(start + test, end)))
        start += step
    if s.max_folds is not None:
        out = out[-s.max_folds :]
    return [Fold(i + 1, (a, b), (b, c)) for i, (a, b, c) in enumerate(out)]


def grid_points(cfg: AppConfig) -> list[dict[str, float]]:
    keys = list(cfg.research.grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*cfg.research.grid.values())]


def _default_point(cfg: AppConfig, points: list[dict[str, float]]) -> int:
    current = (
        {k: getattr(getattr(cfg, k.split(".")[0]), k.split(".")[1]) for k in points[0]} if points else {}
    )
    return next((i for i, p in enumerate(points) if p == current), 0)


def in_window(trades: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp]) -> pd.DataFrame:
    t = trades["signal_time"]
    return trades[(t >= window[0]) & (t < window[1])]


@dataclass
class WalkForward:
    """One configuration's walk-forward: the out-of-sample trades (with `fold` and the picked values), the
    summary per fold and overall, the equity series, and the pick per fold."""

    name: str
    trades: pd.DataFrame
    summary: pd.DataFrame
    equity: pd.DataFrame
    picks: pd.DataFrame
    signals: list[ScoredSignal]  # every fired out-of-sample signal (the placebo's input)


def objective(stats: dict[str, float], name: str, min_trades: int) -> float:
    if stats["trades"] < max(min_trades, 1):
        return -math.inf
    value = stats[name]
    return -math.inf if value is None or not np.isfinite(value) else float(value)


def walk_forward(universe: Universe, ablation: str | None = None) -> WalkForward:
    """Walk forward with one filter switched off (`ablation`), or the full configuration (None)."""
    cfg, tf = universe.cfg, universe.timeframe
    r = cfg.research
    bar_grid, closes = universe.grid_index(), universe.closes()
    equity0 = cfg.sim.equity
    points = grid_points(cfg)
    default = _default_point(cfg, points)
    variants = [ablate(with_values(cfg, p), ablation) for p in points]
    runs = [universe.run(c, td) for c, td in variants]
    books = [universe.book(run) for run in runs]

    trades, picks, rows, signals = [], [], [], []
    for fold in folds(bar_grid, cfg):
        scores = []
        for book in books:
            stats = metrics.summarize_window(book, bar_grid, fold.train, equity0, tf)
            scores.append(objective(stats, r.objective, r.min_train_trades))
        best = int(np.argmax(scores)) if np.isfinite(max(scores)) else default
        if np.isfinite(max(scores)) and scores[default] == scores[best]:
            best = default
        chosen = in_window(runs[best].trades, fold.test).copy()
        chosen["fold"] = fold.number
        trades.append(chosen)
        picks.append(
            {
                "fold": fold.number,
                "train_start": fold.train[0],
                "test_start": fold.test[0],
                "test_end": fold.test[1],
                **points[best],
                "objective": scores[best],
            }
        )
        stats = metrics.summarize_window(books[best], bar_grid, fold.test, equity0, tf)  # of `chosen`
        rows.append({"scope": f"fold {fold.number}", **stats})
        fired, when = universe.fired(runs[best])
        signals.extend(
            s for s, t in zip(fired, when, strict=True) if fold.test[0].value <= t < fold.test[1].value
        )

    all_folds = folds(bar_grid, cfg)
    oos = pd.concat(trades) if trades else runs[default].trades.iloc[:0].assign(fold=0)
    span = (all_folds[0].test[0], all_folds[-1].test[1]) if all_folds else (bar_grid[0], bar_grid[0])
    stats, equity = metrics.summarize(oos, bar_grid, closes, span, equity0, tf)
    rows.append({"scope": "overall", **stats})
    summary = pd.DataFrame(rows)
    summary.insert(0, "timeframe", tf)
    summary.insert(0, "config", ablation_name(ablation))
    return WalkForward(
        ablation_name(ablation),
        oos.reset_index(drop=True),
        summary,
        equity,
        pd.DataFrame(picks),
        signals,
    )


def ablation_name(ablation: str | None) -> str:
    return "full" if ablation is None else f"no_{ablation}"
