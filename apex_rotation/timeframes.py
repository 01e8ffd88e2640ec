"""Timeframes and the UTC bar grid every symbol shares.

A bar is labelled by its open time (UTC). It covers [open_time, open_time + tf) and is closed once
`open_time + tf <= now`; its `close_time` is `open_time + tf` (exclusive end).
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

Timeframe = Literal["1h", "4h", "1d"]
BASE_TIMEFRAME: Timeframe = "1h"
TIMEFRAMES: tuple[Timeframe, ...] = ("1h", "4h", "1d")
TIMEFRAME_DELTA: dict[str, pd.Timedelta] = {
    "1h": pd.Timedelta(hours=1),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
}
TIMEFRAME_MS: dict[str, int] = {
    tf: int(d / pd.Timedelta(milliseconds=1)) for tf, d in TIMEFRAME_DELTA.items()
}


def delta(tf: str) -> pd.Timedelta:
    try:
        return TIMEFRAME_DELTA[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; expected one of {list(TIMEFRAMES)}") from None


def bars_per_day(tf: str) -> int:
    return int(pd.Timedelta(days=1) / delta(tf))


def floor_to_grid(ts: pd.Timestamp, tf: str) -> pd.Timestamp:
    """The open time of the bar containing `ts` (4h bars open at 00/04/…/20 UTC, 1d at 00:00)."""
    return pd.Timestamp(ts).tz_convert("UTC").floor(delta(tf))


def last_closed_open(now: pd.Timestamp, tf: str) -> pd.Timestamp:
    """The open time of the newest bar that has closed at `now`."""
    return floor_to_grid(now, tf) - delta(tf)


def utc_now() -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC")


def to_utc(ts: object) -> pd.Timestamp:
    """A timestamp in UTC: a naive one is taken as UTC, an aware one is converted (strings, datetimes, …)."""
    t = pd.Timestamp(ts)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
