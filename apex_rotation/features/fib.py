"""Fibonacci retracement zones of the last swing, past-only.

The "last swing" at bar t is the move between the highest high and the lowest low of the `lookback` bars
before t (t excluded, so a breakout bar can close beyond the swing). If the high came after the low it is an up-swing and the retracement is
measured down from the high: `fib_pos = (swing_high − close) / (swing_high − swing_low)`; if the low came
last it is a down-swing and `fib_pos = (close − swing_low) / (swing_high − swing_low)` (the bounce).
`fib_zone` labels where `fib_pos` falls; "above" / "below" mean the close left the swing's range upward
(a breakout above the swing high) / downward.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FIB_LEVELS = (0.0, 0.236, 0.382, 0.5, 0.618, 0.786, 1.0)
FIB_ZONES = ("0-23.6", "23.6-38.2", "38.2-50", "50-61.8", "61.8-78.6", "78.6-100")
FIB_LOOKBACK = 100


def fib_features(
    high: pd.Series, low: pd.Series, close: pd.Series, lookback: int = FIB_LOOKBACK
) -> pd.DataFrame:
    """Columns `fib_swing_high, fib_swing_low, fib_swing_up, fib_pos, fib_zone` (NaN/None until `lookback` bars)."""
    return pd.DataFrame(fib_columns(high, low, close, lookback), index=close.index)


def fib_columns(
    high: pd.Series, low: pd.Series, close: pd.Series, lookback: int = FIB_LOOKBACK
) -> dict[str, np.ndarray]:
    """`fib_features`' columns as arrays, in table order."""
    n = len(close)
    out: dict[str, np.ndarray] = {}
    swing_high = np.full(n, np.nan)
    swing_low = np.full(n, np.nan)
    up = np.zeros(n, dtype=bool)
    if n > lookback:
        hw = sliding_window_view(high.to_numpy(float)[:-1], lookback)
        lw = sliding_window_view(low.to_numpy(float)[:-1], lookback)
        # argmax/argmin give the first extreme; the latest one decides the swing direction on ties
        hi_at = lookback - 1 - np.argmax(hw[:, ::-1], axis=1)
        lo_at = lookback - 1 - np.argmin(lw[:, ::-1], axis=1)
        swing_high[lookback:] = hw.max(axis=1)
        swing_low[lookback:] = lw.min(axis=1)
        up[lookback:] = hi_at > lo_at
    c = close.to_numpy(float)
    span = swing_high - swing_low
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(up, (swing_high - c) / span, (c - swing_low) / span)
    pos[~np.isfinite(pos)] = np.nan
    out["fib_swing_high"] = swing_high
    out["fib_swing_low"] = swing_low
    out["fib_swing_up"] = up
    out["fib_pos"] = pos
    zones = zone_labels(pos)
    zones[c > swing_high] = "above"
    zones[c < swing_low] = "below"
    out["fib_zone"] = zones
    return out


def zone_labels(pos: np.ndarray) -> np.ndarray:
    """Retracement zone of each fraction in [0, 1]; None outside it (the caller labels above/below)."""
    labels = np.array(FIB_ZONES, dtype=object)
    idx = np.clip(np.searchsorted(np.asarray(FIB_LEVELS[1:-1]), pos, side="right"), 0, len(FIB_ZONES) - 1)
    out = labels[idx]
    out[~((pos >= 0) & (pos <= 1))] = None
    return out
