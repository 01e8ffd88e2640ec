"""Each filter's lift, with a block-bootstrap confidence interval, and the placebo control.

Lift of a filter = (full configuration) − (the same walk-forward with that filter switched off), out of
sample, for Sharpe, hit rate, mean R and the trade count. The interval is a circular block bootstrap over
days (`research.bootstrap_block_days` days per block, `bootstrap_samples` resamples, seeded): each resample
draws the same days for both runs, and every statistic is rebuilt from per-day sums (bars, Σ return,
Σ return², trades by entry day, wins, Σ R), so the interval keeps the runs' day-by-day pairing and each
day's serial dependence.

Two more rows, from the full run's out-of-sample entries:

* `timing`: the full run vs. a placebo with the same number of entries, on the same symbols, at times drawn
  uniformly (seeded) from the same test folds, each with the same trade template and the same stop and
  target distances in % of the entry: does the signal's timing beat chance?
* `placebo`: that placebo vs. a second, independent shuffle. Two chance timings: its interval must
  contain 0 (the control of the whole lift machinery).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from numba import njit

from apex_rotation.research import metrics
from apex_rotation.research.engine import Universe
from apex_rotation.research.walkforward import WalkForward, in_window
from apex_rotation.signals.score import ScoredSignal, signal_id
from apex_rotation.timeframes import delta

DELTAS = ("sharpe", "hit_rate", "mean_r", "trades")


def _daily(
    wf_trades: pd.DataFrame, equity: pd.DataFrame, days: pd.DatetimeIndex, timeframe: str
) -> np.ndarray:
    """Per day (rows) the sums [bars, Σ r, Σ r², trades, wins, Σ R] of one run."""
    out = np.zeros((len(days), 6))
    if len(equity):
        day = (equity.index - delta(timeframe)).floor("D")
        pos = days.get_indexer(day)
        r = equity["return"].to_numpy(np.float64)
        np.add.at(out[:, 0], pos, 1.0)
        np.add.at(out[:, 1], pos, r)
        np.add.at(out[:, 2], pos, r * r)
    done = metrics.filled(wf_trades)
    if len(done):
        pos = days.get_indexer(done["entry_time"].dt.floor("D"))
        keep = pos >= 0
        rr = done["pnl_r"].to_numpy(np.float64)[keep]
        np.add.at(out[:, 3], pos[keep], 1.0)
        np.add.at(out[:, 4], pos[keep], (rr > 0).astype(float))
        np.add.at(out[:, 5], pos[keep], rr)
    return out


def _stats(sums: np.ndarray, bars_per_year: int) -> dict[str, np.ndarray]:
    """Statistics from summed day aggregates (last axis: the six sums)."""
    n, s1, s2, k, wins, rsum = (sums[..., i] for i in range(6))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean * mean) / (n - 1)
        sharpe = np.where(
            var > 1e-30,
            mean / np.sqrt(np.maximum(var, 1e-30)) * math.sqrt(bars_per_year),
            np.where(s1 == 0, 0.0, np.nan),  # flat equity: 0, as metrics.sharpe
        )
        return {"sharpe": sharpe, "hit_rate": wins / k, "mean_r": rsum / k, "trades": k}


def block_indices(n_days: int, block: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """`samples` × `n_days` day indices of a circular block bootstrap."""
    blocks = -(-n_days // block)
    starts = rng.integers(0, n_days, size=(samples, blocks))
    idx = (starts[:, :, None] + np.arange(block)) % n_days
    return idx.reshape(samples, blocks * block)[:, :n_days]


@njit(cache=True)
def resampled_sums(daily: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """`daily[idx].sum(1)`: each resample's summed day aggregates, without the samples × days × 6 array.
    The days are added in numpy's order (the first, then each next in turn), so the sums are bitwise the
    same."""
    (samples, days), width = idx.shape, daily.shape[1]
    out = np.empty((samples, width))
    for s in range(samples):
        for k in range(width):
            out[s, k] = daily[idx[s, 0], k]
        for d in range(1, days):
            for k in range(width):
                out[s, k] += daily[idx[s, d], k]
    return out


def lift_row(
    name: str,
    with_filter: tuple[pd.DataFrame, pd.DataFrame],
    without: tuple[pd.DataFrame, pd.DataFrame],
    universe: Universe,
    seed: int,
) -> dict[str, object]:
    """Δ = with − without for each of DELTAS, with its bootstrap interval; `with_filter`/`without` are
    (trades, equity series) of two out-of-sample runs."""
    r, tf = universe.cfg.research, universe.timeframe
    bpy = metrics.BARS_PER_YEAR[tf]
    frames = [with_filter[1], without[1]]
    start = min(f.index.min() for f in frames if len(f)) if any(len(f) for f in frames) else None
    end = max(f.index.max() for f in frames if len(f)) if start is not None else None
    row: dict[str, object] = {"timeframe": tf, "filter": name}
    if start is None:
        return row | {f"d_{m}{x}": math.nan for m in DELTAS for x in ("", "_lo", "_hi")}
    days = pd.date_range((start - delta(tf)).floor("D"), (end - delta(tf)).floor("D"), freq="D")
    a = _daily(*with_filter, days, tf)
    b = _daily(*without, days, tf)
    point = {k: v for k, v in _stats(a.sum(0), bpy).items()}
    other = _stats(b.sum(0), bpy)
    idx = block_indices(len(days), r.bootstrap_block_days, r.bootstrap_samples, np.random.default_rng(seed))
    boot_a, boot_b = _stats(resampled_sums(a, idx), bpy), _stats(resampled_sums(b, idx), bpy)
    alpha = (1 - r.confidence) / 2
    for m in DELTAS:
        d = boot_a[m] - boot_b[m]
        d = d[np.isfinite(d)]
        row[f"d_{m}"] = float(point[m] - other[m])
        row[f"d_{m}_lo"] = float(np.quantile(d, alpha)) if d.size else math.nan
        row[f"d_{m}_hi"] = float(np.quantile(d, 1 - alpha)) if d.size else math.nan
    row["with_trades"], row["without_trades"] = int(point["trades"]), int(other["trades"])
    return row


# ---------------------------------------------------------------- placebo


def placebo_signals(full: WalkForward, universe: Universe, seed: int) -> list[ScoredSignal]:
    """The full run's fired out-of-sample signals, each moved to a random bar of its symbol in its fold's
    test window (seeded), its plan moved with it (same stop and target distances in % of the entry)."""
    rng = np.random.default_rng(seed)
    out = []
    windows = list(zip(full.picks["test_start"], full.picks["test_end"], strict=True))
    for k, s in enumerate(full.signals):
        t = pd.Timestamp(s.bar_time)
        lo, hi = next(((a, b) for a, b in windows if a <= t < b), windows[-1])
        close = universe.frames[(s.symbol, universe.timeframe)]["close"]
        bars = close.loc[lo : hi - pd.Timedelta(1, "ns")]
        bars = bars[bars.notna()]
        if bars.empty or s.plan is None:
            continue
        when = bars.index[int(rng.integers(0, len(bars)))]
        ratio = float(bars.loc[when]) / s.plan.entry
        plan = s.plan.model_copy(
            update={
                f: getattr(s.plan, f) * ratio
                for f in ("entry_low", "entry_high", "entry", "stop", "target", "atr", "invalidation")
            }
        )
        sid = f"{signal_id(s.symbol, s.timeframe, when, s.archetype)}-p{k}"
        out.append(s.model_copy(update={"bar_time": when.to_pydatetime(), "signal_id": sid, "plan": plan}))
    return out


def placebo_run(full: WalkForward, universe: Universe, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trades and equity series of one placebo (the same template and simulator as the real entries)."""
    cfg = universe.cfg
    trades = universe.simulate(placebo_signals(full, universe, seed), cfg)
    span = (full.picks["test_start"].min(), full.picks["test_end"].max()) if len(full.picks) else None
    trades = in_window(trades, span) if span else trades
    grid = universe.grid_index()
    _, equity = metrics.summarize(trades, grid, universe.closes(), span, cfg.sim.equity, universe.timeframe)
    return trades, equity


def lift_table(full: WalkForward, ablated: list[WalkForward], universe: Universe) -> pd.DataFrame:
    """One row per switched-off filter, then `timing` and `placebo` (when `research.placebo`)."""
    seed = universe.cfg.research.seed
    base = (full.trades, full.equity)
    rows = [
        lift_row(wf.name.removeprefix("no_"), base, (wf.trades, wf.equity), universe, seed) for wf in ablated
    ]
    if universe.cfg.research.placebo and len(full.picks):
        first = placebo_run(full, universe, seed + 1)
        second = placebo_run(full, universe, seed + 2)
        rows.append(lift_row("timing", base, first, universe, seed))
        rows.append(lift_row("placebo", first, second, universe, seed))
    return pd.DataFrame(rows)
