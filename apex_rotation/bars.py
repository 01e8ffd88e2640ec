"""The bar vocabulary every stage shares: column names, fill reasons, empty frames, robust sigma.

It sits below `ingest/`, `store/` and `features/` (as freqtrade keeps its dataframe columns and cleaning
below both its exchange and history layers), so no stage imports a sibling stage for a column name.

A canonical bar frame is indexed by `open_time` (tz-aware UTC, ns) with `open, high, low, close, volume`
(float64) and `close_time` (= open_time + timeframe); audited bars add `filled`, `filled_hours`,
`fill_reason` and `outlier` (docs/data-policy.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from apex_rotation.timeframes import BASE_TIMEFRAME, delta

INDEX_NAME = "open_time"
PRICE_COLUMNS = ["open", "high", "low", "close"]
OHLCV_COLUMNS = [*PRICE_COLUMNS, "volume"]
RAW_OHLCV_COLUMNS = ["open_time", *OHLCV_COLUMNS]
BAR_COLUMNS = [*OHLCV_COLUMNS, "close_time"]
# filled: every 1h bar inside was filled (the bar is a flat fill); filled_hours (int): how many of them were
AUDIT_COLUMNS = ["filled", "filled_hours", "fill_reason", "outlier"]
AUDITED_BAR_COLUMNS = [*BAR_COLUMNS, *AUDIT_COLUMNS]
FILL_GAP = "gap"  # fill_reason of a missing bar (a flat bar at the previous close, volume 0)
FILL_SPIKE = "spike"  # fill_reason of a bad tick replaced the same way
FILL_WICK = "wick"  # fill_reason of a traded bar (filled=False) whose absurd high/low was clipped to its body
FILL_REASONS = ["", FILL_GAP, FILL_SPIKE, FILL_WICK]

ROBUST_WINDOW = 720  # bars behind a robust sigma: 30 days of 1h, 120 days of 4h, ~2 years of 1d
ROBUST_MIN_PERIODS = 48
MAD_TO_SIGMA = 1.4826  # MAD x this = sigma for normally distributed data


def hours_in(timeframe: str) -> int:
    """How many 1h bars one `timeframe` bar spans (the most `filled_hours` can be)."""
    return delta(timeframe) // delta(BASE_TIMEFRAME)


def bars_frame(open_ns: np.ndarray, columns: Mapping[str, np.ndarray], timeframe: str) -> pd.DataFrame:
    """A canonical frame from open times (int64 ns, UTC) and OHLCV (+ optional audit) column arrays."""
    index = pd.to_datetime(np.asarray(open_ns, dtype=np.int64), unit="ns", utc=True).rename(INDEX_NAME)
    data = {c: np.asarray(columns[c], dtype=np.float64) for c in OHLCV_COLUMNS}
    data["close_time"] = index + delta(timeframe)
    data.update({c: columns[c] for c in AUDIT_COLUMNS if c in columns})
    return pd.DataFrame(data, index=index)


def empty_bars(timeframe: str, audited: bool = False) -> pd.DataFrame:
    """A canonical frame with no rows (with the audit columns when `audited`)."""
    columns: dict[str, np.ndarray] = {c: np.array([], dtype=np.float64) for c in OHLCV_COLUMNS}
    if audited:
        columns |= {
            "filled": np.array([], bool),
            "filled_hours": np.array([], np.int64),
            "fill_reason": np.array([], object),
            "outlier": np.array([], bool),
        }
    return bars_frame(np.array([], dtype=np.int64), columns, timeframe)


def empty_raw_ohlcv() -> pd.DataFrame:
    """A raw OHLCV frame with no rows and the right dtypes (a fetch that found nothing)."""
    return pd.DataFrame(
        {
            "open_time": pd.Series(dtype="int64"),
            **{c: pd.Series(dtype="float64") for c in OHLCV_COLUMNS},
            "ticker": pd.Series(dtype="object"),
        }
    )


def trailing_robust_sigma(returns: np.ndarray | pd.Series, window: int) -> np.ndarray:
    """Robust sigma at each t from the returns of the `window` bars before t (past-only; NaNs skipped).

    1.4826 x the median |return| (a MAD about zero: bar returns have a median near 0, and centring on zero
    keeps it one rolling median). NaN until `ROBUST_MIN_PERIODS` returns exist, and where it is 0.
    """
    abs_returns = pd.Series(np.abs(np.asarray(returns, dtype=np.float64)))
    median = abs_returns.rolling(window, min_periods=min(window, ROBUST_MIN_PERIODS)).median()
    sigma = MAD_TO_SIGMA * median.shift(1).to_numpy()
    sigma[sigma == 0] = np.nan
    return sigma


def winsorize_returns(returns: pd.Series, z: float, window: int = ROBUST_WINDOW) -> pd.Series:
    """Returns clipped to ±z robust sigmas of the trailing window (for features; the raw bars are kept).

    Where no sigma exists yet (fewer than `ROBUST_MIN_PERIODS` past returns) a return is left as is.
    """
    r = returns.to_numpy(dtype=np.float64)
    bound = z * trailing_robust_sigma(r, window)
    clipped = np.where(np.isnan(bound), r, np.clip(r, -bound, bound))
    return pd.Series(clipped, index=returns.index, name=returns.name)
