"""Canonical resampling: 4h and 1d bars built from 1h bars on UTC boundaries, as the exchange builds them.

4h buckets open at 00/04/…/20 UTC and 1d buckets at 00:00 UTC, for every symbol alike. open = first,
high = max, low = min, close = last, volume = sum. A bucket is kept only if it has closed as far as the data
knows (its end <= the last 1h bar's close_time) and does not start before the first 1h bar, so a partial
bucket at either end is dropped. A bucket with missing 1h bars inside is kept, built from the bars it has
(the exchange does the same with the trades it had): nothing is invented. On audited 1h bars the same holds
for the hours the audit filled: a bucket is built from its traded hours only, unless it has none.

Numpy `reduceat` over contiguous bucket runs: about 3x faster than `DataFrame.resample` (measured on
17 symbols x 17,520 bars).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apex_rotation.bars import FILL_GAP, FILL_SPIKE, FILL_WICK, OHLCV_COLUMNS, bars_frame, empty_bars
from apex_rotation.ingest.base import DataError
from apex_rotation.timeframes import BASE_TIMEFRAME, delta


def resample(bars_1h: pd.DataFrame, timeframe: str, *, symbol: str = "?") -> pd.DataFrame:
    """Canonical `timeframe` bars from canonical 1h bars (audit columns carried through when present).

    On audited bars a bucket is built from its traded (not `filled`) hours only: open = the first traded
    hour's open, high/low over the traded hours, close = the last traded close, so a fill at the previous
    close never becomes its open or low. `filled_hours` counts its filled hours; it is `filled` only if all
    of them were (then it is the flat fill, its `fill_reason` "spike" if any hour was a spike fill, else
    "gap"). A traded bucket's `fill_reason` is "wick" if any of its hours had a wick clipped, else "". It is
    an `outlier` if any of its 1h bars was.
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
    sizes = np.diff(np.append(starts, t.size))  # 1h bars per bucket

    def col(name: str) -> np.ndarray:
        return bars_1h[name].to_numpy()[lo:hi]

    # the hours a bucket is built from: its traded ones, or all of them in a bucket the audit filled whole
    hour_filled = col("filled").astype(bool) if audited else np.zeros(t.size, dtype=bool)
    filled = np.logical_and.reduceat(hour_filled, starts)
    used = ~hour_filled | np.repeat(filled, sizes)
    row = np.arange(t.size)
    out = {
        "open": col("open")[np.minimum.reduceat(np.where(used, row, t.size), starts)],
        "high": np.maximum.reduceat(np.where(used, col("high"), -np.inf), starts),
        "low": np.minimum.reduceat(np.where(used, col("low"), np.inf), starts),
        "close": col("close")[np.maximum.reduceat(np.where(used, row, -1), starts)],
        "volume": np.add.reduceat(np.where(used, col("volume"), 0.0), starts),
    }
    if audited:
        reason = col("fill_reason")
        any_spike = np.logical_or.reduceat(reason == FILL_SPIKE, starts)
        any_wick = np.logical_or.reduceat(reason == FILL_WICK, starts)
        out["filled"] = filled
        out["filled_hours"] = np.add.reduceat(hour_filled.astype(np.int64), starts)
        out["fill_reason"] = np.where(
            filled, np.where(any_spike, FILL_SPIKE, FILL_GAP), np.where(any_wick, FILL_WICK, "")
        ).astype(object)
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
