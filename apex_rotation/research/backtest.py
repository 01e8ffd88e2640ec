"""`run_backtest`: the walk-forward with its ablations on a store, exported (CSVs, plot pack) and tabled.

For each `research.timeframes` timeframe: the full configuration and one walk-forward per switched-off
filter (`research.ablations`), the lift table with its intervals and the placebo rows. Written to `out`
(default `<store>/research/`):

* `trades.csv`: every out-of-sample trade of every configuration (`config`, `timeframe`, `fold`, entry/exit
  time and price, return %, R, MFE, MAE, bars held, exit reason, archetype, regime, size, money PnL);
* `summary.csv`: per configuration × timeframe, each fold and `overall` (metrics.py);
* `lift.csv`: per timeframe, each filter's Δ with its interval, then `timing` and `placebo`;
* `counts.csv`: per timeframe, the configured gates' candidates and scored / fired signals per archetype;
* `equity.csv`: the out-of-sample equity series of every configuration; `picks.csv`: the grid point each
  fold picked (parameter stability);
* `plots/index.html` and one self-contained HTML per plot (plots.py).

A fixed seed and config give byte-identical CSVs in any run and process (no clock, no unordered
iteration, the bootstrap and placebo draws from `research.seed`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.research import metrics
from apex_rotation.research.engine import Universe, gc_paused
from apex_rotation.research.lift import lift_table
from apex_rotation.research.walkforward import WalkForward, walk_forward
from apex_rotation.store.parquet import ParquetStore

TRADE_COLUMNS = [
    "config",
    "timeframe",
    "fold",
    "alert_id",
    "symbol",
    "archetype",
    "regime",
    "side",
    "signal_time",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "exit_reason",
    "return_pct",
    "pnl_r",
    "mfe_pct",
    "mae_pct",
    "mfe_r",
    "mae_r",
    "bars_held",
    "stop_price",
    "take_profit",
    "size",
    "money",
    "fees_pct",
    "slippage_pct",
    "funding_pct",
]


@dataclass
class BacktestResult:
    trades: pd.DataFrame
    summary: pd.DataFrame
    lift: pd.DataFrame
    equity: pd.DataFrame
    picks: pd.DataFrame
    counts: pd.DataFrame
    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    runs: dict[tuple[str, str], WalkForward] = field(default_factory=dict)


def default_out(store: ParquetStore) -> Path:
    return store.root / "research"


def trade_rows(wf: WalkForward, timeframe: str) -> pd.DataFrame:
    done = metrics.filled(wf.trades)
    out = done.assign(
        config=wf.name, timeframe=timeframe, return_pct=done["pnl_pct"], money=metrics.money(done)
    )
    return out.reindex(columns=TRADE_COLUMNS)


def signal_counts(universe: Universe) -> dict[str, object]:
    """What the default gates give over the whole history: scanner candidates, scored and fired signals
    per archetype, and the span in days (the study's "signals per timeframe and year")."""
    run = universe.run(universe.cfg)
    grid = universe.grid_index()
    days = (grid[-1] - grid[0]).total_seconds() / 86400 + 1 if len(grid) else 0.0
    row: dict[str, object] = {"timeframe": universe.timeframe, "days": round(days, 1)}
    row["candidates"] = universe.candidates
    for arch in ("rotation", "td13_exhaustion"):
        sig = [s for s in run.signals if s.archetype == arch]
        row[f"{arch}_scored"] = len(sig)
        row[f"{arch}_fired"] = sum(s.fired for s in sig)
    return row


def backtest_timeframe(universe: Universe) -> tuple[WalkForward, list[WalkForward], pd.DataFrame]:
    with gc_paused():
        full = walk_forward(universe)
        ablated = [walk_forward(universe, off) for off in universe.cfg.research.ablations]
        return full, ablated, lift_table(full, ablated, universe)


def run_backtest(
    cfg: AppConfig,
    store: ParquetStore,
    out: str | Path | None = None,
    timeframes: list[str] | None = None,
    plots: bool | None = None,
) -> BacktestResult:
    """The walk-forward with every ablation, per timeframe; CSVs (and the plot pack) written to `out`."""
    out = Path(out) if out is not None else default_out(store)
    out.mkdir(parents=True, exist_ok=True)
    trades, summaries, lifts, equities, picks, counts, runs = [], [], [], [], [], [], {}
    for tf in timeframes or cfg.research.timeframes:
        universe = Universe.load(cfg, store, tf)
        full, ablated, lift = backtest_timeframe(universe)
        counts.append(signal_counts(universe))
        lifts.append(lift)
        for wf in (full, *ablated):
            runs[(wf.name, tf)] = wf
            trades.append(trade_rows(wf, tf))
            summaries.append(wf.summary)
            equities.append(wf.equity.reset_index().assign(config=wf.name, timeframe=tf))
            picks.append(wf.picks.assign(config=wf.name, timeframe=tf))
    result = BacktestResult(
        trades=pd.concat(trades, ignore_index=True),
        summary=pd.concat(summaries, ignore_index=True),
        lift=pd.concat(lifts, ignore_index=True),
        equity=pd.concat(equities, ignore_index=True),
        picks=pd.concat(picks, ignore_index=True),
        counts=pd.DataFrame(counts),
        out=out,
        runs=runs,
    )
    for name in ("trades", "summary", "lift", "equity", "picks", "counts"):
        path = out / f"{name}.csv"
        getattr(result, name).to_csv(path, index=False)
        result.files[name] = path
    if cfg.research.plots if plots is None else plots:
        from apex_rotation.research.plots import plot_pack

        result.files["plots"] = plot_pack(result, out / "plots", cfg.research.plotlyjs)
    return result


# ---------------------------------------------------------------- tables


def _fmt(value: object, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        return f"{value * 100:+.1f}%" if pct else f"{value:.2f}"
    return str(value)


def summary_table(summary: pd.DataFrame, scope: str = "overall") -> str:
    """A markdown table of the `scope` rows (default: each configuration's overall result)."""
    rows = summary[summary["scope"] == scope] if scope else summary
    head = "| tf | config | trades | total return | Sharpe | max DD | hit rate | mean R | PF | exposure |"
    lines = [head, "|" + "---|" * 10]
    for r in rows.itertuples():
        lines.append(
            f"| {r.timeframe} | {r.config} | {r.trades} | {_fmt(r.total_return, True)} | {_fmt(r.sharpe)} | "
            f"{_fmt(r.max_drawdown, True)} | {_fmt(r.hit_rate, True)} | {_fmt(r.mean_r)} | "
            f"{_fmt(r.profit_factor)} | {_fmt(r.exposure, True)} |"
        )
    return "\n".join(lines)


def lift_markdown(lift: pd.DataFrame) -> str:
    """A markdown table of each filter's lift: Δ [interval] per metric."""

    def cell(r: dict, m: str, pct: bool = False) -> str:
        scale = 100.0 if pct else 1.0
        d, lo, hi = (r.get(f"d_{m}{x}", np.nan) for x in ("", "_lo", "_hi"))
        if not np.isfinite(d):
            return "–"
        unit = " pp" if pct else ""
        return f"{d * scale:+.2f}{unit} [{lo * scale:+.2f}, {hi * scale:+.2f}]"

    head = "| tf | filter | Δ Sharpe [CI] | Δ hit rate [CI] | Δ mean R [CI] | Δ trades [CI] |"
    lines = [head, "|" + "---|" * 6]
    for r in lift.to_dict("records"):
        lines.append(
            f"| {r['timeframe']} | {r['filter']} | {cell(r, 'sharpe')} | {cell(r, 'hit_rate', True)} | "
            f"{cell(r, 'mean_r')} | {cell(r, 'trades')} |"
        )
    return "\n".join(lines)


def picks_table(picks: pd.DataFrame, cfg: AppConfig) -> str:
    """The grid point each fold of the full configuration picked, per timeframe."""
    keys = list(cfg.research.grid)
    full = picks[picks["config"] == "full"]
    lines = []
    for tf, group in full.groupby("timeframe", sort=False):
        values = ", ".join(
            f"f{r['fold']}:" + "/".join(f"{r[k]:g}" for k in keys) for r in group.to_dict("records")
        )
        lines.append(f"{tf} {'/'.join(keys)} per fold: {values}")
    return "\n".join(lines)
