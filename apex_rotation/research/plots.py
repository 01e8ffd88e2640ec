"""The plot pack: one self-contained plotly HTML per plot and an `index.html` linking them.

* `equity.html`: the full configuration's out-of-sample equity per timeframe, its drawdown beneath;
* `hit_rate.html`: hit rate by signal archetype (full configuration, per timeframe; trade counts on hover);
* `confusion.html`: per regime, signal direction (long/short) vs. the realized outcome (the trade's price
  move up or down from entry to exit);
* `lift.html`: each filter's lift (Δ Sharpe, Δ hit rate, Δ mean R) with its bootstrap interval;
* `stability.html`: the grid value each fold picked, per configuration (parameter stability).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

if TYPE_CHECKING:
    from apex_rotation.research.backtest import BacktestResult


def _write(fig: go.Figure, path: Path, plotlyjs: str) -> Path:
    fig.write_html(path, include_plotlyjs=True if plotlyjs == "inline" else "cdn", full_html=True)
    return path


def equity_figure(result: BacktestResult) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.05)
    eq = result.equity[result.equity["config"] == "full"]
    for tf, g in eq.groupby("timeframe", sort=False):
        peak = np.maximum.accumulate(g["equity"].to_numpy())
        fig.add_trace(go.Scatter(x=g["bar_close"], y=g["equity"], name=f"{tf} equity"), row=1, col=1)
        fig.add_trace(
            go.Scatter(x=g["bar_close"], y=g["equity"] / peak - 1, name=f"{tf} drawdown", fill="tozeroy"),
            row=2,
            col=1,
        )
    fig.update_layout(title="Out-of-sample equity (full configuration) and drawdown", yaxis2_tickformat=".1%")
    return fig


def hit_rate_figure(result: BacktestResult) -> go.Figure:
    t = result.trades[result.trades["config"] == "full"]
    fig = go.Figure()
    for tf, g in t.groupby("timeframe", sort=False):
        by = g.groupby("archetype")["pnl_r"].agg(hit=lambda r: (r > 0).mean(), n="size")
        fig.add_trace(
            go.Bar(x=by.index, y=by["hit"], name=tf, text=by["n"], hovertemplate="%{y:.1%} of %{text}")
        )
    fig.update_layout(title="Hit rate by signal archetype (out of sample)", yaxis_tickformat=".0%")
    return fig


def confusion_figure(result: BacktestResult) -> go.Figure:
    t = result.trades[result.trades["config"] == "full"].copy()
    regimes = sorted(set(t["regime"].dropna())) or ["none"]
    fig = make_subplots(rows=1, cols=len(regimes), subplot_titles=regimes)
    t["outcome"] = np.where(t["exit_price"] > t["entry_price"], "up", "down")
    for i, regime in enumerate(regimes, start=1):
        g = t[t["regime"] == regime]
        m = pd.crosstab(g["side"], g["outcome"]).reindex(index=["long", "short"], columns=["up", "down"])
        m = m.fillna(0).astype(int)
        fig.add_trace(
            go.Heatmap(
                z=m.to_numpy(),
                x=["realized up", "realized down"],
                y=["signal long", "signal short"],
                text=m.to_numpy(),
                texttemplate="%{text}",
                showscale=False,
                colorscale="Blues",
            ),
            row=1,
            col=i,
        )
    fig.update_layout(title="Signal direction vs. realized outcome, per regime (out of sample)")
    return fig


def lift_figure(result: BacktestResult) -> go.Figure:
    metrics = [("sharpe", "Δ Sharpe"), ("hit_rate", "Δ hit rate"), ("mean_r", "Δ mean R")]
    fig = make_subplots(rows=1, cols=3, subplot_titles=[m[1] for m in metrics])
    for col, (m, _) in enumerate(metrics, start=1):
        for tf, g in result.lift.groupby("timeframe", sort=False):
            d = g[f"d_{m}"].to_numpy(float)
            fig.add_trace(
                go.Bar(
                    x=g["filter"],
                    y=d,
                    name=tf,
                    showlegend=col == 1,
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": g[f"d_{m}_hi"].to_numpy(float) - d,
                        "arrayminus": d - g[f"d_{m}_lo"].to_numpy(float),
                    },
                ),
                row=1,
                col=col,
            )
    fig.update_layout(title="Lift of each filter (full − filter off), with its bootstrap interval")
    return fig


def stability_figure(result: BacktestResult) -> go.Figure:
    p = result.picks
    keys = [c for c in p.columns if "." in c]
    fig = make_subplots(rows=max(len(keys), 1), cols=1, subplot_titles=keys or ["no grid"])
    for row, key in enumerate(keys, start=1):
        for (config, tf), g in p.groupby(["config", "timeframe"], sort=False):
            fig.add_trace(
                go.Scatter(x=g["fold"], y=g[key], mode="lines+markers", name=f"{tf} {config}"), row=row, col=1
            )
    fig.update_layout(title="Parameter stability: the grid value each fold's train window picked")
    return fig


PLOTS = {
    "equity": ("Equity curve and drawdown", equity_figure),
    "hit_rate": ("Hit rate by archetype", hit_rate_figure),
    "confusion": ("Confusion matrices by regime", confusion_figure),
    "lift": ("Ablation lift with confidence intervals", lift_figure),
    "stability": ("Parameter stability across folds", stability_figure),
}


def plot_pack(result: BacktestResult, folder: Path, plotlyjs: str = "inline") -> Path:
    """Write every plot and the index; returns the index path."""
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for name, (title, build) in PLOTS.items():
        _write(build(result), folder / f"{name}.html", plotlyjs)
        items.append(f'<li><a href="{name}.html">{html.escape(title)}</a></li>')
    index = folder / "index.html"
    index.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>apex-rotation backtest</title></head>"
        f"<body><h1>apex-rotation walk-forward backtest</h1><ul>{''.join(items)}</ul>"
        "<p>Tables: ../summary.csv, ../lift.csv, ../trades.csv</p></body></html>"
    )
    return index
