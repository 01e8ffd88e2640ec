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

import numpy as np
import pandas as pd
import plotly.io as pio

CHARTS_DIR = "charts"
LEVEL_COLORS = {"entry": "#3498db", "stop": "#e74c3c", "target": "#2ecc71", "invalidation": "#e67e22"}
# Three panels on one time axis: price (with TD and levels), volume, the move of the alt and the apex asset.
DOMAINS = {"y": [0.42, 1.0], "y2": [0.27, 0.39], "y3": [0.0, 0.24]}


def chart_relpath(timeframe: str, symbol: str, alert_id: str) -> str:
    """The chart's path relative to the store root (what the alert and the `alerts` table record)."""
    return f"{CHARTS_DIR}/{timeframe}/{symbol}_{alert_id}.html"


def _values(series: pd.Series) -> list:
    """JSON-ready values (NaN → None, which plotly draws as a gap)."""
    arr = series.to_numpy(dtype=float)
    return [None if np.isnan(v) else float(v) for v in arr]


def _trace(kind: str, x, y, name: str, axis: str = "y", **extra) -> dict:
    return {"type": kind, "x": x, "y": y, "name": name, "xaxis": "x", "yaxis": axis, **extra}


def _td_traces(td: pd.DataFrame, bars: pd.DataFrame, stamp) -> list[dict]:
    """TD setup counts above (sell) / below (buy) the bars, countdown steps, TDST lines."""
    pad = float((bars["high"] - bars["low"]).median()) * 0.6
    traces = []
    for kind, y, color in (("sell", bars["high"] + pad, "#c0392b"), ("buy", bars["low"] - pad, "#27ae60")):
        mask = ((td["td_setup_type"] == kind) & (td["td_setup_count"] > 0)).to_numpy()
        text = [str(int(c)) for c in td["td_setup_count"].to_numpy()[mask]]
        traces.append(
            _trace(
                "scatter",
                stamp(mask),
                _values(y[mask]),
                f"TD {kind} setup",
                mode="text",
                text=text,
                textfont={"color": color, "size": 9},
            )
        )
    cd = td["td_countdown"].fillna(0)
    mask = ((cd > 0) & (cd.diff().fillna(cd) != 0)).to_numpy()
    traces.append(
        _trace(
            "scatter",
            stamp(mask),
            _values(bars["low"][mask] - 2 * pad),
            "TD countdown",
            mode="text",
            text=[f"C{int(c)}" for c in cd.to_numpy()[mask]],
            textfont={"color": "#8e44ad", "size": 9},
        )
    )
    for col, color in (("td_tdst_buy", "#27ae60"), ("td_tdst_sell", "#c0392b")):
        traces.append(
            _trace(
                "scatter",
                stamp(),
                _values(td[col]),
                col.removeprefix("td_").replace("_", " ").upper(),
                mode="lines",
                line={"shape": "hv", "dash": "dot", "color": color},
            )
        )
    return traces


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
    over the same window; `apex`: the apex asset's bars; `levels`: name → price (stop, target, …).

    The figure is a plain dict written with `plotly.io.to_html(validate=False)`: plotly's graph objects
    validate every property and cost ~0.5 s a chart; the dict is the same JSON, ~50× faster."""
    labels = np.asarray(bars.index.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def stamp(mask=None) -> list[str]:
        return (labels if mask is None else labels[mask]).tolist()

    data = [
        _trace(
            "candlestick",
            stamp(),
            None,
            "price",
            open=_values(bars["open"]),
            high=_values(bars["high"]),
            low=_values(bars["low"]),
            close=_values(bars["close"]),
        ),
        _trace("bar", stamp(), _values(bars["volume"]), "volume", "y2", marker={"color": "#888"}),
    ]
    data[0].pop("y")
    if td is not None and not td.empty:
        data += _td_traces(td.reindex(bars.index), bars, stamp)
    base = float(bars["close"].iloc[0])
    data.append(
        _trace("scatter", stamp(), _values((bars["close"] / base - 1) * 100), "alt %", "y3", mode="lines")
    )
    if apex is not None and not apex.empty:
        a = apex["close"].reindex(bars.index).ffill()
        first = a.dropna()
        if len(first):
            data.append(
                _trace(
                    "scatter",
                    stamp(),
                    _values((a / first.iloc[0] - 1) * 100),
                    apex_asset or "apex",
                    "y3",
                    mode="lines",
                )
            )
    shapes = [
        {
            "type": "rect",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "yref": "y",
            "y0": min(entry_zone),
            "y1": max(entry_zone),
            "fillcolor": "#3498db",
            "opacity": 0.15,
            "line": {"width": 0},
        },
        {
            "type": "line",
            "xref": "x",
            "x0": pd.Timestamp(signal_time).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "x1": pd.Timestamp(signal_time).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "yref": "paper",
            "y0": 0,
            "y1": 1,
            "line": {"color": "#555", "dash": "dot", "width": 1},
        },
    ]
    annotations = []
    for name, price in levels.items():
        color = LEVEL_COLORS.get(name, "#555")
        shapes.append(
            {
                "type": "line",
                "xref": "paper",
                "x0": 0,
                "x1": 1,
                "yref": "y",
                "y0": price,
                "y1": price,
                "line": {"color": color, "dash": "dash", "width": 1},
            }
        )
        annotations.append(
            {
                "xref": "paper",
                "x": 1.0,
                "xanchor": "left",
                "yref": "y",
                "y": price,
                "text": f"{name} {price:.6g}",
                "showarrow": False,
                "font": {"color": color, "size": 10},
            }
        )
    for axis, label in (("y", title), ("y2", "volume"), ("y3", "move since window start, %")):
        annotations.append(
            {
                "xref": "paper",
                "x": 0,
                "xanchor": "left",
                "yref": "paper",
                "y": DOMAINS[axis][1],
                "yanchor": "bottom",
                "text": label,
                "showarrow": False,
            }
        )
    layout = {
        "height": 900,
        "xaxis": {"anchor": "y3", "rangeslider": {"visible": False}, "type": "date"},
        **{f"yaxis{'' if k == 'y' else k[1:]}": {"domain": d, "anchor": "x"} for k, d in DOMAINS.items()},
        "shapes": shapes,
        "annotations": annotations,
        "margin": {"r": 120},
        "showlegend": True,
    }
    html = pio.to_html(
        {"data": data, "layout": layout},
        include_plotlyjs=True if plotlyjs == "inline" else "directory",
        full_html=True,
        validate=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if plotlyjs == "directory" and not (path.parent / "plotly.min.js").exists():
        from plotly.offline import get_plotlyjs

        (path.parent / "plotly.min.js").write_text(get_plotlyjs())
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(html)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
