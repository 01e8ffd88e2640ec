"""The data audit: what is wrong with a symbol's bars, and a gap-free, flagged copy for the later stages.

`audit_bars` reindexes bars to the full UTC grid from their first to their last bar and repairs only what
it must, always visibly (`filled`, `fill_reason`); the raw bars stay untouched in the `bars` asset:

* a missing bar becomes a flat bar at the previous close, volume 0 (`fill_reason="gap"`);
* a spike bar (a bad tick: its open or close >= spike_factor x the previous good close, or <= that close /
  spike_factor) is replaced the same way (`fill_reason="spike"`);
* a bar whose open and close are sound but whose high or low is that far off (a bad wick) keeps its
  prices and volume; only the bad high (low) is clipped to max(open, close) (min(open, close)), flagged
  `fill_reason="wick"` with `filled=False`: the bar traded;
* a bar whose log return exceeds `outlier_return_z` robust sigmas is flagged `outlier` and kept as is.

Everything is past-only: bar t is judged by bars up to t. The robust sigma at t is 1.4826 x the median
|log return| over the `ROBUST_WINDOW` bars before t (a MAD about zero: hourly log returns have a median
near 0, and centring on zero keeps it one rolling median; on trending daily bars it errs towards a larger
sigma, i.e. fewer flags). It needs `ROBUST_MIN_PERIODS` returns in that window; before that, and where it
is 0 (a market that mostly did not move), nothing is flagged or clipped. Filled bars have no return.

`audit_bars` does not log: the caller logs the report it keeps, once (`log_report`), so the log line and the
stored report agree (the refresher rebuilds the 4h/1d `filled` count after this audit).
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from apex_rotation.bars import (
    FILL_GAP,
    FILL_SPIKE,
    FILL_WICK,
    OHLCV_COLUMNS,
    PRICE_COLUMNS,
    ROBUST_WINDOW,
    bars_frame,
    empty_bars,
    hours_in,
    trailing_robust_sigma,
)
from apex_rotation.config import AuditConfig
from apex_rotation.ingest.base import DataError
from apex_rotation.timeframes import delta, last_closed_open

log = logging.getLogger(__name__)


class AuditReport(BaseModel):
    """Counts for one (symbol, timeframe); `rows`, `duplicates`, `misaligned`, `invalid` describe the frame
    as given, the rest the audited grid. `missing_ok` compares `missing_pct` (a percentage) with
    `AuditConfig.max_missing_pct`; `wicks` counts bars whose bad high/low was clipped.

    `stale_bars` counts closed bars after `last` at `now` (None without `now`). It depends on the clock, so
    it is left out of every dump (the stored report, `reports/audit.json`): those depend on the bars only
    and read the same whichever command wrote them. It is logged, and readable as an attribute."""

    symbol: str
    timeframe: str
    rows: int
    expected: int
    missing: int
    missing_pct: float
    duplicates: int
    misaligned: int
    invalid: int
    zero_volume: int
    outliers: int
    spikes: int
    wicks: int
    filled: int
    first: str | None
    last: str | None
    missing_ok: bool
    stale_bars: int | None = Field(default=None, exclude=True)


def log_report(report: AuditReport) -> None:
    """One line per audited partition: WARNING when anything was missing, malformed or a bad tick."""
    problems = report.missing + report.duplicates + report.misaligned + report.invalid + report.spikes
    fields = {**report.model_dump(), "stale_bars": report.stale_bars}
    log.log(
        logging.WARNING if problems + report.wicks else logging.DEBUG,
        "audit %s",
        " ".join(f"{k}={v}" for k, v in fields.items()),
    )


def audit_bars(
    bars: pd.DataFrame, *, symbol: str, timeframe: str, cfg: AuditConfig, now: pd.Timestamp | None = None
) -> tuple[pd.DataFrame, AuditReport]:
    """The audited frame (full grid, with `filled`, `fill_reason`, `outlier`) and its report.

    A non-canonical frame is reported, not refused: duplicate open times (the first is kept), open times off
    the grid and rows with NaN or non-positive prices or NaN/negative volume are counted and left out.
    """
    where = {"source": "audit", "symbol": symbol, "timeframe": timeframe}
    if not isinstance(bars.index, pd.DatetimeIndex) or bars.index.tz is None:
        raise DataError(f"bars must be indexed by UTC open_time; got {type(bars.index).__name__}", **where)
    missing_cols = [c for c in OHLCV_COLUMNS if c not in bars.columns]
    if missing_cols:
        raise DataError(f"bars lack columns {missing_cols}", **where)

    t = bars.index.tz_convert("UTC").as_unit("ns").asi8
    values = bars[OHLCV_COLUMNS].to_numpy(dtype=np.float64)
    duplicate = bars.index.duplicated(keep="first")
    misaligned = t % delta(timeframe).value != 0
    valid = np.isfinite(values).all(axis=1) & (values[:, :4] > 0).all(axis=1) & (values[:, 4] >= 0)
    candidate = ~duplicate & ~misaligned
    use = candidate & valid
    t, values = t[use], values[use]
    audited = _fill_and_flag(t, values, timeframe, cfg) if t.size else empty_bars(timeframe, audited=True)

    expected = len(audited)
    missing = expected - int(t.size)
    missing_pct = 100.0 * missing / expected if expected else 0.0
    last = audited.index[-1] if expected else None
    report = AuditReport(
        symbol=symbol,
        timeframe=timeframe,
        rows=len(bars),
        expected=expected,
        missing=missing,
        missing_pct=missing_pct,
        duplicates=int(duplicate.sum()),
        misaligned=int(misaligned.sum()),
        invalid=int((candidate & ~valid).sum()),
        zero_volume=int((values[:, 4] == 0).sum()),
        outliers=int(audited["outlier"].sum()),
        spikes=int((audited["fill_reason"] == FILL_SPIKE).sum()),
        wicks=int((audited["fill_reason"] == FILL_WICK).sum()),
        filled=int(audited["filled"].sum()),
        first=audited.index[0].isoformat() if expected else None,
        last=last.isoformat() if expected else None,
        missing_ok=missing_pct <= cfg.max_missing_pct,
        stale_bars=_stale(last, now, timeframe),
    )
    return audited, report


def _fill_and_flag(t: np.ndarray, values: np.ndarray, timeframe: str, cfg: AuditConfig) -> pd.DataFrame:
    """Usable bars (open ns, OHLCV rows) onto the full grid: gaps and spikes filled, bad wicks clipped,
    outliers flagged."""
    step = delta(timeframe).value
    first = int(t.min())
    open_ns = np.arange(first, int(t.max()) + step, step, dtype=np.int64)
    pos = (t - first) // step
    prices = np.full((open_ns.size, 4), np.nan)
    prices[pos] = values[:, :4]
    volume = np.zeros(open_ns.size)
    volume[pos] = values[:, 4]

    spike, wick = _repair_ticks(prices, cfg.spike_factor)
    good = ~np.isnan(prices[:, 3]) & ~spike
    good_close = pd.Series(np.where(good, prices[:, 3], np.nan)).ffill().to_numpy()
    fill = ~good
    prices[fill] = good_close[fill, None]
    volume[fill] = 0.0

    prev_good_close = np.concatenate([[np.nan], good_close[:-1]])
    returns = np.where(good, np.log(prices[:, 3] / prev_good_close), np.nan)
    sigma = trailing_robust_sigma(returns, ROBUST_WINDOW)
    with np.errstate(invalid="ignore"):
        outlier = good & (np.abs(returns) > cfg.outlier_return_z * sigma)

    columns = dict(zip(PRICE_COLUMNS, prices.T, strict=True))
    columns["volume"] = volume
    columns["filled"] = fill
    columns["filled_hours"] = fill.astype(np.int64) * hours_in(timeframe)
    reason = np.where(spike, FILL_SPIKE, np.where(fill, FILL_GAP, np.where(wick, FILL_WICK, "")))
    columns["fill_reason"] = reason.astype(object)
    columns["outlier"] = outlier
    return bars_frame(open_ns, columns, timeframe)


SPIKE_CONFIRM_BARS = (
    3  # a jump that holds this many bars in a row is a new level (a redenomination), not a tick
)


@numba.njit(cache=True)
def _repair_ticks(prices: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Spike and wick masks over rows of (open, high, low, close) (NaN = missing); bad wicks clipped in place.

    A bar is off when any of its prices is >= `factor` x the last good close or <= that close / `factor`.
    If its open and close are not off, only its wick is bad: the offending high (low) is clipped to
    max(open, close) (min(open, close)), the bar stays good and its close becomes the reference. Otherwise
    it is a spike, unless the jump persists for `SPIKE_CONFIRM_BARS` bars on the same side: it is then
    accepted as the new level from that bar on (the bars before it stay repaired: deciding them later
    would rewrite the past).
    """
    n = prices.shape[0]
    spike = np.zeros(n, dtype=np.bool_)
    wick = np.zeros(n, dtype=np.bool_)
    ref = np.nan
    run, side = 0, 0
    for i in range(n):
        if np.isnan(prices[i, 3]) or np.isnan(ref):
            if not np.isnan(prices[i, 3]):
                ref = prices[i, 3]
            continue
        up_at, down_at = factor * ref, ref / factor
        o, h, lo, c = prices[i, 0], prices[i, 1], prices[i, 2], prices[i, 3]
        body_off = o >= up_at or o <= down_at or c >= up_at or c <= down_at
        high_off, low_off = h >= up_at or h <= down_at, lo >= up_at or lo <= down_at
        if (high_off or low_off) and not body_off:
            if high_off:
                prices[i, 1] = max(o, c)
            if low_off:
                prices[i, 2] = min(o, c)
            wick[i] = True
        elif body_off or high_off or low_off:
            this_side = 1 if max(o, h, lo, c) >= up_at else -1
            run = run + 1 if this_side == side else 1
            side = this_side
            if run < SPIKE_CONFIRM_BARS:
                spike[i] = True
                continue
        run, side = 0, 0
        ref = prices[i, 3]
    return spike, wick


def _stale(last: pd.Timestamp | None, now: pd.Timestamp | None, timeframe: str) -> int | None:
    if now is None or last is None:
        return None
    newest = last_closed_open(pd.Timestamp(now), timeframe)
    return max(0, int((newest - last) / delta(timeframe)))
