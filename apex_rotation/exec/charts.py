"""One plotly chart per delivered alert: candles, volume, TD counts, TDST lines, entry zone, stop, target,
invalidation, and the apex asset's move beside the alt's.

Files live next to the store (`<root>/charts/<timeframe>/<symbol>_<alert_id>.html`), so `APEX_DATA_DIR`
moves them with it. `plotlyjs="inline"` (the default) embeds plotly.js (~4.8 MB a file) because the chart
is attached to Telegram/Discord messages and must open anywhere, offline, without a CDN; so only the alerts
that are delivered (within `alerts.deliver_within_bars`) get a chart. `plotlyjs="directory"` writes
plotly.min.js once into the charts folder and references it relatively (small files, but a chart then only
opens beside it).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Literal

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

CHARTS_DIR = "charts"


def chart_relpath(timeframe: str, symbol: str, alert_id: str) -> str:
    """The chart's path relative to the store root (what the alert and the `alerts` table record)."""
    return f"{CHARTS_DIR}/{timeframe}/{symbol}_{alert_id}.html"


def _td_text(td: pd.DataFrame, kind: str) -> tuple[pd.Index, list[str]]:
    rows = td[(td["td_setup_type"] == kind) & (td["td_setup_count"] > 0)]
    return rows.index, [str(int(c)) for c in rows["td_setup_count"]]


def render_chart(
    path: Path,
    *,
    title: str,
    bars: pd.DataFrame,
    td: pd.DataFrame | None,
    apex: pd.DataFrame | None,
    apex_asset: str | None,
    signal_time: pd.Timestamp,
    levels: dict[str, float],
    entry_zone: tuple[float, float],
    plotlyjs: Literal["inline", "directory"] = "inline",
) -> Path:
    """Write the chart atomically and return its path. `bars`: the alt's OHLCV window; `td`: its TD state
    over the same window; `apex`: the apex asset's bars; `levels`: name → price (stop, target, …)."""
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.03,
        row_heights=[0.6, 0.15, 0.25],
        subplot_titles=(title, "volume", "move since window start, %"),
    )
    x = bars.index
    fig.add_trace(
        go.Candlestick(
            x=x, open=bars["open"], high=bars["high"], low=bars["low"], close=bars["close"], name="price"
        ),
        row=1,
        col=1,
    )
    fig.add_trace(go.Bar(x=x, y=bars["volume"], name="volume", marker_color="#888"), row=2, col=1)
    if td is not None and not td.empty:
        td = td.reindex(x)
        pad = (bars["high"] - bars["low"]).median() * 0.6
        for kind, y, color in (
            ("sell", bars["high"] + pad, "#c0392b"),
            ("buy", bars["low"] - pad, "#27ae60"),
        ):
            idx, text = _td_text(td, kind)
            fig.add_trace(
                go.Scatter(
                    x=idx,
                    y=y.reindex(idx),
                    text=text,
                    mode="text",
                    name=f"TD {kind} setup",
                    textfont={"color": color, "size": 9},
                ),
                row=1,
                col=1,
            )
        cd = td[(td["td_countdown"] > 0) & (td["td_countdown"].diff().fillna(1) != 0)]
        fig.add_trace(
            go.Scatter(
                x=cd.index,
                y=bars["low"].reindex(cd.index) - 2 * pad,
                mode="text",
                text=[f"C{int(c)}" for c in cd["td_countdown"]],
                name="TD countdown",
                textfont={"color": "#8e44ad", "size": 9},
            ),
            row=1,
            col=1,
        )
        for col, color in (("td_tdst_buy", "#27ae60"), ("td_tdst_sell", "#c0392b")):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=td[col],
                    mode="lines",
                    line={"shape": "hv", "dash": "dot", "color": color},
                    name=col.removeprefix("td_").replace("_", " ").upper(),
                ),
                row=1,
                col=1,
            )
    fig.add_hrect(
        y0=min(entry_zone), y1=max(entry_zone), fillcolor="#3498db", opacity=0.15, line_width=0, row=1, col=1
    )
    colors = {"entry": "#3498db", "stop": "#e74c3c", "target": "#2ecc71", "invalidation": "#e67e22"}
    for name, price in levels.items():
        fig.add_hline(
            y=price,
            line={"color": colors.get(name, "#555"), "dash": "dash", "width": 1},
            row=1,
            col=1,
            annotation_text=f"{name} {price:.6g}",
            annotation_position="right",
        )
    fig.add_vline(x=pd.Timestamp(signal_time), line={"color": "#555", "dash": "dot"})
    base = bars["close"].iloc[0]
    fig.add_trace(go.Scatter(x=x, y=(bars["close"] / base - 1) * 100, name="alt", mode="lines"), row=3, col=1)
    if apex is not None and not apex.empty:
        a = apex["close"].reindex(x).ffill()
        fig.add_trace(
            go.Scatter(
                x=x,
                y=(a / a.dropna().iloc[0] - 1) * 100 if a.notna().any() else a,
                mode="lines",
                name=apex_asset or "apex",
            ),
            row=3,
            col=1,
        )
    fig.update_layout(height=900, xaxis_rangeslider_visible=False, template="plotly_white", showlegend=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.write_html(tmp, include_plotlyjs=True if plotlyjs == "inline" else "directory", full_html=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
