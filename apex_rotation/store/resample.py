"""Canonical resampling: 4h and 1d bars built from 1h bars on UTC boundaries, as the exchange builds them.

4h buckets open at 00/04/…/20 UTC and 1d buckets at 00:00 UTC, for every symbol alike. open = first,
high = max, low = min, close = last, volume = sum. A bucket is kept only if it has closed as far as the data
knows (its end <= the last 1h bar's close_time) and does not start before the first 1h bar, so a partial
bucket at either end is dropped. A bucket with missing 1h bars inside is kept, built from the bars it has
(the exchange does the same with the trades it had): nothing is invented.

Numpy `reduceat` over contiguous bucket runs: about 3x faster than `DataFrame.resample` (measured on
17 symbols x 17,520 bars).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apex_rotation.bars import FILL_GAP, FILL_SPIKE, OHLCV_COLUMNS, bars_frame, empty_bars
from apex_rotation.ingest.base import DataError
from apex_rotation.timeframes import BASE_TIMEFRAME, delta


def resample(bars_1h: pd.DataFrame, timeframe: str, *, symbol: str = "?") -> pd.DataFrame:
    """Canonical `timeframe` bars from canonical 1h bars (audit columns carried through when present).

    A resampled bar is `filled` only if all its 1h bars were (its `fill_reason` is "spike" if any of them
    was a spike fill, else "gap"); it is an `outlier` if any of its 1h bars was.
    """
    if timeframe == BASE_TIMEFRAME:
        return bars_1h
    step = delta(timeframe).value
    base = delta(BASE_TIMEFRAME).value
    t = _base_open_ns(bars_1h, symbol)
    audited = "filled" in bars_1h.columns
    if t.size == 0:
        return empty_bars(timeframe, audited=audited)

    first_bucket = -(-t[0] // step)  # the first bucket starting at or after the first 1h bar
    end_bucket = (t[-1] + base) // step  # buckets before this one have closed
    lo, hi = np.searchsorted(t, [first_bucket * step, end_bucket * step])
    if lo >= hi:
        return empty_bars(timeframe, audited=audited)
    t = t[lo:hi]
    bucket = t // step
    starts = np.flatnonzero(np.concatenate([[True], bucket[1:] != bucket[:-1]]))
    last = np.concatenate([starts[1:], [t.size]]) - 1

    def col(name: str) -> np.ndarray:
        return bars_1h[name].to_numpy()[lo:hi]

    out = {
        "open": col("open")[starts],
        "high": np.maximum.reduceat(col("high"), starts),
        "low": np.minimum.reduceat(col("low"), starts),
        "close": col("close")[last],
        "volume": np.add.reduceat(col("volume"), starts),
    }
    if audited:
        filled = np.logical_and.reduceat(col("filled").astype(bool), starts)
        any_spike = np.logical_or.reduceat(col("fill_reason") == FILL_SPIKE, starts)
        out["filled"] = filled
        out["fill_reason"] = np.where(filled, np.where(any_spike, FILL_SPIKE, FILL_GAP), "").astype(object)
        out["outlier"] = np.logical_or.reduceat(col("outlier").astype(bool), starts)
    return bars_frame(bucket[starts] * step, out, timeframe)


def _base_open_ns(bars: pd.DataFrame, symbol: str) -> np.ndarray:
    """The 1h open times as int64 ns, after checking the frame really is canonical 1h bars."""
    where = {"source": "resample", "symbol": symbol, "timeframe": BASE_TIMEFRAME}
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError(f"bars must be indexed by UTC open_time; got {type(index).__name__}", **where)
    missing = [c for c in OHLCV_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack columns {missing}", **where)
    t = index.tz_convert("UTC").as_unit("ns").asi8
    if t.size and not (np.diff(t) > 0).all():
        i = int(np.flatnonzero(np.diff(t) <= 0)[0])
        raise DataError("open times are not strictly increasing", **where, at=index[i + 1].isoformat())
    off = np.flatnonzero(t % delta(BASE_TIMEFRAME).value != 0)
    if off.size:
        raise DataError("open time is off the 1h grid", **where, at=index[off[0]].isoformat())
    if "close_time" in bars.columns and t.size:
        span = pd.DatetimeIndex(bars["close_time"]).as_unit("ns").asi8 - t
        wrong = np.flatnonzero(span != delta(BASE_TIMEFRAME).value)
        if wrong.size:
            raise DataError(
                "bars are not 1h bars (close_time - open_time != 1h)", **where, at=index[wrong[0]]
            )
    return t
