"""The `features` frame of one symbol × timeframe, from audited bars, BTC/ETH bars and perps data.

Gaps: the audit fills a missing bar with a flat, flagged bar. Indicators run over the filled series (so a
one-bar outage does not blank an EMA200 for 200 bars); returns do not: a return touching a filled bar is
NaN, so no correlation or beta is ever computed across a missing bar. Correlation and beta use the
window's pairs where both returns exist, if they are at least `features.corr_min_coverage` of the window
(so one missing hour does not blank a month of windows); windows are NaN until full.
Correlation and beta use returns winsorized at `audit.winsor_z` robust sigmas (the raw bar is kept; the
scanner's moves use raw returns). Funding and open interest are taken as of each bar's close (the latest
value stamped at or before it), so bar t never sees a later print.

Columns (also the contract of `apex_rotation.signals`): ret, log_ret, vol_z, vol_ema20, volume_trend,
atr, rsi, macd, macd_signal, macd_hist, ema_20, ema_50, ema_200, adx, plus_di, minus_di, hh_prev,
fib_swing_high, fib_swing_low, fib_swing_up, fib_pos, fib_zone, funding, funding_prev, oi, oi_chg,
corr_{btc,eth}_{14,30}, beta_{btc,eth}_{14,30}.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from apex_rotation.bars import ROBUST_WINDOW, winsorize_returns
from apex_rotation.config import BENCHMARK_SYMBOLS, AppConfig
from apex_rotation.features import indicators as ind
from apex_rotation.features.correlation import DEFAULT_MIN_COVERAGE, rolling_corr_beta
from apex_rotation.features.fib import fib_columns
from apex_rotation.timeframes import bars_per_day

CORR_WINDOWS_DAYS = (14, 30)
BENCHMARKS = BENCHMARK_SYMBOLS
WINSOR_WINDOW = ROBUST_WINDOW  # the audit's robust-sigma window


def bar_returns(bars: pd.DataFrame) -> pd.Series:
    """Simple close-to-close returns; NaN on the first bar and wherever this or the previous bar is filled."""
    ret = bars["close"].pct_change(fill_method=None)
    filled = bars["filled"] if "filled" in bars else pd.Series(False, index=bars.index)
    return ret.mask(filled | filled.shift(1, fill_value=True))


def asof_at_close(series: pd.DataFrame | None, bars: pd.DataFrame, column: str) -> pd.Series:
    """The latest `column` value stamped at or before each bar's close (NaN before the first one)."""
    if series is None or series.empty or column not in series:
        return pd.Series(np.nan, index=bars.index)
    values = series[column].astype(float).sort_index()
    stamps = pd.DatetimeIndex(values.index).as_unit("ns").asi8  # int64 ns: no per-element Timestamp objects
    closes = pd.DatetimeIndex(bars["close_time"]).as_unit("ns").asi8
    pos = np.searchsorted(stamps, closes, side="right") - 1
    out = np.where(pos >= 0, values.to_numpy()[np.clip(pos, 0, None)], np.nan)
    return pd.Series(out, index=bars.index)


def technical_columns(bars: pd.DataFrame, breakout_lookback: int) -> dict[str, pd.Series | np.ndarray]:
    """The indicator columns by name, in table order (one frame is built from them at the end: adding 20
    columns one by one to a frame re-laid its blocks each time, a third of a partition's build)."""
    high, low, close, volume = bars["high"], bars["low"], bars["close"], bars["volume"]
    out: dict[str, pd.Series | np.ndarray] = {}
    out["vol_z"] = ind.vol_z(volume, 20)
    out["vol_ema20"] = ind.ema(volume, 20).shift(
        1
    )  # the baseline before this bar: a spike is not its own yardstick
    out["volume_trend"] = ind.ema(volume, 10) / ind.ema(volume, 50) - 1.0
    out["atr"] = ind.atr(high, low, close, 14)
    out["rsi"] = ind.rsi(close, 14)
    out["macd"], out["macd_signal"], out["macd_hist"] = ind.macd(close, 12, 26, 9)
    for n in (20, 50, 200):
        out[f"ema_{n}"] = ind.ema(close, n)
    out["plus_di"], out["minus_di"], out["adx"] = ind.dmi(high, low, close, 14)
    out["hh_prev"] = high.rolling(breakout_lookback, min_periods=breakout_lookback).max().shift(1)
    return out | fib_columns(high, low, close)


def technical_features(bars: pd.DataFrame, breakout_lookback: int) -> pd.DataFrame:
    return _frame(technical_columns(bars, breakout_lookback), bars.index)


def correlation_columns(
    returns: pd.Series,
    bench_returns: dict[str, pd.Series],
    timeframe: str,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> dict[str, np.ndarray]:
    """corr/beta vs each benchmark per window; `min_coverage` as in `correlation.rolling_corr_beta`."""
    out: dict[str, np.ndarray] = {}
    missing = pd.Series(np.nan, index=returns.index)  # a benchmark not in the basket: NaN columns
    for bench in BENCHMARKS:
        b = bench_returns.get(bench, missing).reindex(returns.index)
        for days in CORR_WINDOWS_DAYS:
            corr, beta = rolling_corr_beta(
                returns.to_numpy()[:, None], b.to_numpy(), days * bars_per_day(timeframe), min_coverage
            )
            out[f"corr_{bench.lower()}_{days}"] = np.asarray(corr).reshape(-1)
            out[f"beta_{bench.lower()}_{days}"] = np.asarray(beta).reshape(-1)
    return out


def correlation_features(
    returns: pd.Series,
    bench_returns: dict[str, pd.Series],
    timeframe: str,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
) -> pd.DataFrame:
    return _frame(correlation_columns(returns, bench_returns, timeframe, min_coverage), returns.index)


def _frame(columns: dict[str, pd.Series | np.ndarray], index: pd.Index) -> pd.DataFrame:
    """One frame from same-length columns (Series on `index`, or arrays), built in one go."""
    values = {k: v.to_numpy() if isinstance(v, pd.Series) else v for k, v in columns.items()}
    return pd.DataFrame(values, index=index)


def model_returns(bars: pd.DataFrame, cfg: AppConfig) -> pd.Series:
    """The returns correlation and beta are computed on: gap-aware, winsorized (past-only bounds)."""
    return winsorize_returns(bar_returns(bars), cfg.audit.winsor_z, WINSOR_WINDOW)


def build_features(
    bars: pd.DataFrame,
    *,
    bench_returns: dict[str, pd.Series],
    timeframe: str,
    cfg: AppConfig,
    funding: pd.DataFrame | None = None,
    open_interest: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All features for one symbol; `bench_returns` holds BTC's and ETH's `model_returns` (same timeframe)."""
    out: dict[str, pd.Series | np.ndarray] = {}
    out["ret"] = ret = bar_returns(bars)
    out["log_ret"] = np.log1p(ret)
    out |= technical_columns(bars, cfg.market_filters.breakout_lookback)
    out["funding"] = funding_at = asof_at_close(funding, bars, "rate")
    out["funding_prev"] = funding_at.shift(1)
    out["oi"] = oi = asof_at_close(open_interest, bars, "open_interest")
    out["oi_chg"] = oi / oi.shift(1) - 1.0
    own = winsorize_returns(ret, cfg.audit.winsor_z, WINSOR_WINDOW)
    out |= correlation_columns(own, bench_returns, timeframe, cfg.features.corr_min_coverage)
    return _frame(out, bars.index)
