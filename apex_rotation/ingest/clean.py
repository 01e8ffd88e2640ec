"""The one cleaning function: a raw OHLCV frame from any source becomes canonical bars, or a DataError.

Every source (synthetic, ccxt, hyperliquid, files) hands its raw frame to `clean_ohlcv`, so all bars in the
store obey one contract (see `docs/data-policy.md`):

* indexed by `open_time`: tz-aware UTC, ns, strictly increasing, on the timeframe's UTC grid;
* columns `open, high, low, close, volume` (float64) and `close_time` (= open_time + timeframe);
* audited bars (`apex_rotation.store.audit`) add `filled`, `filled_hours`, `fill_reason`, `outlier`
  (names in `apex_rotation/bars.py`).

Bad input raises `DataError` naming source, symbol, timeframe and the first bad bar. Only four things are
cleaned, each counted in `CleanResult.notes` and logged: the unclosed current bar is dropped, exact
duplicate rows are collapsed, out-of-order rows are sorted, numeric strings are coerced.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex_rotation.bars import INDEX_NAME, OHLCV_COLUMNS, RAW_OHLCV_COLUMNS, bars_frame, empty_bars
from apex_rotation.ingest.base import DataError
from apex_rotation.timeframes import delta, utc_now

log = logging.getLogger(__name__)

NOTE_KEYS = ("unclosed_dropped", "duplicates_dropped", "reordered", "strings_coerced")

# Epoch integers are told apart by magnitude: ms in [1e11, 1e14) is 1973..5138, µs in [1e14, 1e17) likewise.
_MS_MIN, _US_MIN, _US_MAX = 10**11, 10**14, 10**17


@dataclass(frozen=True)
class CleanResult:
    """Canonical bars plus how many rows each documented cleaning step touched."""

    bars: pd.DataFrame
    notes: dict[str, int]


def epoch_to_ns(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Epoch ms or µs integers (told apart per value by magnitude) -> int64 ns, plus a mask of neither."""
    values = np.asarray(values, dtype=np.int64)
    is_us = values >= _US_MIN
    bad = (values < _MS_MIN) | (values >= _US_MAX)
    return np.where(is_us, values * 1_000, values * 1_000_000), bad


def clean_ohlcv(
    raw: pd.DataFrame,
    *,
    symbol: str,
    timeframe: str,
    source: str,
    now: pd.Timestamp | None = None,
    ticker: str | Iterable[str] | None = None,
    allow_empty: bool = False,
) -> CleanResult:
    """Validate and clean one raw response; `ticker` is the venue ticker(s) the response must be for.

    `allow_empty` is for incremental refreshes, where "nothing new" is a legitimate answer; a first fetch
    that returns nothing is an error. A canonical frame (open_time as index) is accepted too, so cleaning
    is idempotent.
    """
    where = {"source": source, "symbol": symbol, "timeframe": timeframe}
    try:
        step = delta(timeframe).value
    except ValueError as exc:
        raise DataError(str(exc), **where) from None
    now_ns = _now_ns(now, where)
    if INDEX_NAME not in raw.columns and raw.index.name == INDEX_NAME:
        raw = raw.reset_index()
    notes = dict.fromkeys(NOTE_KEYS, 0)
    if len(raw) == 0:
        if allow_empty:
            _log_notes(where, 0, notes)
            return CleanResult(empty_bars(timeframe), notes)
        raise DataError("empty response: no bars at all (a first fetch must return bars)", **where)
    missing = [c for c in RAW_OHLCV_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"missing fields {missing}; the response has {list(raw.columns)}", **where)

    t, time_strings = _open_times_ns(raw[INDEX_NAME], where)
    _check_ticker(raw, ticker, t, where)
    _fail_first(t % step != 0, t, f"open time is off the {timeframe} UTC grid", where)
    future = t > now_ns
    _fail_first(future, t, f"bar opens after now ({_iso(now_ns)}): a future bar", where)

    closed = t + step <= now_ns
    notes["unclosed_dropped"] = int((~closed).sum())
    t = t[closed]
    ohlcv = raw[OHLCV_COLUMNS] if closed.all() else raw[OHLCV_COLUMNS][closed]
    values, coerced = _numbers(ohlcv, t, where)
    notes["strings_coerced"] = (
        int(time_strings[closed].sum()) + coerced
    )  # closed rows only: the unclosed one is dropped unparsed
    _check_values(values, t, where)

    notes["reordered"] = int((np.diff(t) < 0).sum())
    order = np.argsort(t, kind="stable")
    t, values = t[order], values[order]
    same_time = np.diff(t) == 0
    same_values = (values[1:] == values[:-1]).all(axis=1)
    conflict = np.flatnonzero(same_time & ~same_values)
    if conflict.size:
        i = conflict[0]
        raise DataError(
            f"duplicate bar with different values: {values[i].tolist()} vs {values[i + 1].tolist()} "
            f"({conflict.size} such duplicates)",
            **where,
            at=_iso(t[i]),
        )
    notes["duplicates_dropped"] = int(same_time.sum())
    keep = np.ones(t.size, dtype=bool)
    keep[1:] = ~same_time
    t, values = t[keep], values[keep]
    if t.size == 0 and not allow_empty:
        raise DataError(
            f"no closed bars: the response held only {notes['unclosed_dropped']} unclosed bar(s)", **where
        )

    bars = bars_frame(t, dict(zip(OHLCV_COLUMNS, values.T, strict=True)), timeframe)
    _log_notes(where, len(bars), notes)
    return CleanResult(bars, notes)


def _log_notes(where: dict, rows: int, notes: dict[str, int]) -> None:
    """One line per call: the non-zero cleaning counts at INFO, or `nothing_cleaned` at DEBUG."""
    counts = " ".join(f"{k}={v}" for k, v in notes.items() if v) or "nothing_cleaned"
    log.log(
        logging.INFO if any(notes.values()) else logging.DEBUG,
        "clean_ohlcv source=%s symbol=%s timeframe=%s rows=%d %s",
        where["source"],
        where["symbol"],
        where["timeframe"],
        rows,
        counts,
    )


def _iso(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def _fail_first(mask: np.ndarray, t: np.ndarray, reason: str, where: dict, detail=None) -> None:
    """Raise for the earliest bar where `mask` holds; `detail(i)` adds that row's values to the message."""
    bad = np.flatnonzero(mask)
    if bad.size == 0:
        return
    i = bad[np.argmin(t[bad])]
    extra = f": {detail(i)}" if detail else ""
    raise DataError(f"{reason}{extra} ({bad.size} bar(s))", **where, at=_iso(t[i]))


def _now_ns(now: pd.Timestamp | None, where: dict) -> int:
    now = utc_now() if now is None else pd.Timestamp(now)
    if now.tzinfo is None:
        raise DataError(f"`now` ({now}) has no timezone; pass a UTC timestamp", **where)
    return now.tz_convert("UTC").as_unit("ns").value


def _open_times_ns(col: pd.Series, where: dict) -> tuple[np.ndarray, np.ndarray]:
    """open_time as int64 ns UTC, and a mask of the rows whose open time was a numeric string."""
    missing = np.flatnonzero(col.isna().to_numpy())
    if missing.size:
        raise DataError(f"open_time is missing in row {missing[0]} ({missing.size} row(s))", **where)
    no_strings = np.zeros(len(col), dtype=bool)
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        return pd.DatetimeIndex(col).tz_convert("UTC").as_unit("ns").asi8, no_strings
    if pd.api.types.is_datetime64_dtype(col):
        raise DataError(
            "open_time is naive (no timezone); bars must carry UTC times", **where, at=col.iloc[0]
        )
    strings = no_strings
    if col.dtype == object:
        kind = pd.api.types.infer_dtype(col, skipna=False)
        if kind in ("datetime", "datetime64"):
            naive = [x for x in col if getattr(x, "tzinfo", None) is None]
            if naive:
                raise DataError(
                    "open_time is naive (no timezone); bars must carry UTC times", **where, at=naive[0]
                )
            return pd.DatetimeIndex(pd.to_datetime(col, utc=True)).as_unit("ns").asi8, no_strings
        number = pd.to_numeric(col, errors="coerce")
        bad = np.flatnonzero(number.isna().to_numpy())
        if bad.size:
            raise DataError(f"open_time {col.iloc[bad[0]]!r} (row {bad[0]}) is not an epoch integer", **where)
        strings = col.map(lambda x: isinstance(x, str)).to_numpy(dtype=bool)
        col = number
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        raise DataError(f"open_time has dtype {col.dtype}; expected epoch ms/µs or UTC timestamps", **where)
    values = col.to_numpy()
    fractional = np.flatnonzero(values != np.floor(values)) if values.dtype.kind == "f" else []
    if len(fractional):
        raise DataError(
            f"open_time {values[fractional[0]]} (row {fractional[0]}) is not a whole number", **where
        )
    ns, bad = epoch_to_ns(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"open_time {int(values[row])} (row {row}) is neither epoch ms nor µs", **where)
    return ns, strings


def _check_ticker(raw: pd.DataFrame, ticker: str | Iterable[str] | None, t: np.ndarray, where: dict) -> None:
    if ticker is None or "ticker" not in raw.columns:
        return
    expected = [ticker] if isinstance(ticker, str) else list(ticker)
    got = raw["ticker"].to_numpy(dtype=object)
    wrong = ~raw["ticker"].isin(expected).to_numpy()
    _fail_first(
        wrong,
        t,
        f"response is for the wrong instrument (expected ticker {expected})",
        where,
        lambda i: f"ticker {got[i]!r}",
    )


def _numbers(frame: pd.DataFrame, t: np.ndarray, where: dict) -> tuple[np.ndarray, int]:
    """OHLCV as an (n, 5) float64 array; numeric strings are coerced (and counted), anything else raises.

    Strings go through Python's float() (numpy's object -> float64 cast), which rounds correctly;
    `pd.to_numeric` can be 1 ulp off, so "42000.1" and 42000.1 would no longer compare equal.
    """
    out = np.empty((len(frame), len(OHLCV_COLUMNS)), dtype=np.float64)
    coerced = 0
    for j, name in enumerate(OHLCV_COLUMNS):
        col = frame[name]
        if pd.api.types.is_bool_dtype(col):
            raise DataError(f"{name} holds booleans, not numbers", **where)
        if pd.api.types.is_numeric_dtype(col):
            out[:, j] = col.to_numpy(dtype=np.float64)
            continue
        objects = col.to_numpy(dtype=object)
        try:
            out[:, j] = objects.astype(np.float64)
        except (TypeError, ValueError):
            not_number = pd.to_numeric(col, errors="coerce").isna().to_numpy() & col.notna().to_numpy()
            _fail_first(not_number, t, f"{name} is not a number", where, lambda i, o=objects: repr(o[i]))
            raise
        strings = col.notna() if pd.api.types.infer_dtype(col) == "string" else col.map(type).eq(str)
        coerced += int(strings.sum())
    return out, coerced


def _check_values(values: np.ndarray, t: np.ndarray, where: dict) -> None:
    o, h, lo, c, v = values.T

    def show(i: int) -> str:
        return ", ".join(f"{k}={x!r}" for k, x in zip(OHLCV_COLUMNS, values[i].tolist(), strict=True))

    missing = ~np.isfinite(values)
    _fail_first(missing.any(axis=1), t, "missing (NaN) or infinite value", where, show)
    _fail_first((values[:, :4] <= 0).any(axis=1), t, "price is zero or negative", where, show)
    _fail_first(h < lo, t, "high is below low", where, show)
    outside = (o > h) | (o < lo) | (c > h) | (c < lo)
    _fail_first(outside, t, "open or close lies outside [low, high]", where, show)
    _fail_first(v < 0, t, "volume is negative", where, show)
