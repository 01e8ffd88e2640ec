"""Trade and equity metrics of the research harness (per fold, overall, per ablation).

Equity is marked to market on the signal timeframe's bar grid, without compounding: equity = `sim.equity`
+ the cumulative PnL in money of every trade, where a trade's money PnL is `pnl_pct` % of its entry notional
(entry price × size; the size the simulator gave it from `risk.risk_per_trade_pct`). While a trade is open
its value at each bar close is side × size × (close − entry); on the bar its exit falls in, the realized
PnL (fees, slippage and funding included) replaces it. A per-bar return is the bar's PnL over the equity
at the previous close.

* total return = final equity / initial − 1 (= Σ money PnL / initial equity);
* Sharpe = mean / std (ddof=1) of the per-bar returns × √(bars per year: 8760 for 1h, 2190 for 4h, 365
  for 1d; crypto trades 24/7); 0 for a flat equity (no trade), so "no trades" compares as "no edge";
* max drawdown = min(equity / running max − 1);
* hit rate = share of trades with pnl_r > 0; profit factor = Σ winning R / Σ |losing R|;
* exposure = share of the span's bars with at least one open position.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numba import njit

from apex_rotation.timeframes import delta

BARS_PER_YEAR = {"1h": 8760, "4h": 2190, "1d": 365}
AT_CLOSE_EXITS = ("max_hold", "open_at_end")  # exit_time is the close of the last bar held
METRICS = (
    "trades",
    "total_return",
    "sharpe",
    "max_drawdown",
    "hit_rate",
    "mean_r",
    "profit_factor",
    "exposure",
    "bars",
)


def filled(trades: pd.DataFrame) -> pd.DataFrame:
    entered = trades["entry_price"].notna()
    return trades if entered.all() else trades[entered]


def money(trades: pd.DataFrame) -> np.ndarray:
    """Each trade's PnL in money: pnl_pct % of its entry notional."""
    return (trades["pnl_pct"] / 100.0 * trades["entry_price"] * trades["size"]).to_numpy(np.float64)


@njit(cache=True)
def _mark(close, sym, b0, b1, side, entry, size, final, pnl, held):
    """Add each trade's per-bar PnL changes to `pnl` and count open positions in `held`."""
    for k in range(sym.size):
        s, prev = sym[k], 0.0
        for b in range(b0[k], b1[k]):
            value = side[k] * size[k] * (close[s, b] - entry[k])
            if np.isfinite(value):
                pnl[b] += value - prev
                prev = value
            held[b] += 1
        pnl[b1[k]] += final[k] - prev
        held[b1[k]] += 1


def bar_positions(grid: pd.DatetimeIndex, times: pd.Series) -> np.ndarray:
    """Position of the grid bar containing each time."""
    ns = pd.DatetimeIndex(times).as_unit("ns").asi8
    return np.searchsorted(grid.as_unit("ns").asi8, ns, side="right") - 1


@dataclass(frozen=True)
class Book:
    """The filled trades of one run as arrays, in trade order, placed on a bar grid: what `summarize` reads,
    built once per run so that any window of its trades (`in_window`) is summarized without pandas."""

    signal_ns: np.ndarray  # signal_time, int64 ns
    close: np.ndarray  # the closes of the trades' symbols on the grid (rows: `sym`)
    sym: np.ndarray
    b0: np.ndarray  # grid position of the entry bar
    b1: np.ndarray  # grid position of the exit bar (of the last bar held for an at-close exit)
    last: np.ndarray  # grid position of the bar containing exit_time - 1 ns
    side: np.ndarray
    entry: np.ndarray
    size: np.ndarray
    money: np.ndarray
    r: np.ndarray  # pnl_r

    @classmethod
    def of(cls, trades: pd.DataFrame, grid: pd.DatetimeIndex, closes: dict[str, pd.Series]) -> Book:
        done = filled(trades)
        symbols = sorted(set(done["symbol"]))
        close = (
            np.vstack([_on_grid(closes[s], grid) for s in symbols]) if symbols else np.zeros((0, len(grid)))
        )
        sym = np.searchsorted(np.array(symbols), done["symbol"].to_numpy(str))
        at_close = done["exit_reason"].isin(AT_CLOSE_EXITS).to_numpy()
        exit_time = done["exit_time"] - pd.to_timedelta(np.where(at_close, 1, 0), unit="ns")
        b0 = bar_positions(grid, done["entry_time"])
        b1 = np.maximum(bar_positions(grid, exit_time), b0)
        return cls(
            signal_ns=pd.DatetimeIndex(done["signal_time"]).as_unit("ns").asi8,
            close=close,
            sym=sym.astype(np.int64),
            b0=b0.astype(np.int64),
            b1=b1.astype(np.int64),
            last=bar_positions(grid, done["exit_time"] - pd.Timedelta(1, "ns")),
            side=np.where(done["side"].to_numpy() == "long", 1.0, -1.0),
            entry=done["entry_price"].to_numpy(np.float64),
            size=done["size"].to_numpy(np.float64),
            money=money(done),
            r=done["pnl_r"].to_numpy(np.float64),
        )

    def window(self, window: tuple[pd.Timestamp, pd.Timestamp]) -> np.ndarray:
        """Which trades have their signal in [start, end) (`in_window` on the arrays)."""
        return (self.signal_ns >= window[0].value) & (self.signal_ns < window[1].value)


def equity_pnl(
    trades: pd.DataFrame, grid: pd.DatetimeIndex, closes: dict[str, pd.Series]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar PnL in money and the count of open positions, on `grid`, of the filled `trades`."""
    return _book_pnl(Book.of(trades, grid, closes), None, len(grid))


def _book_pnl(book: Book, keep: np.ndarray | None, bars: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-bar PnL and open positions of the book's trades (those `keep` selects, in order)."""
    pnl, held = np.zeros(bars), np.zeros(bars, dtype=np.int64)
    arrays = (book.sym, book.b0, book.b1, book.side, book.entry, book.size, book.money)
    if keep is not None:
        arrays = tuple(a[keep] for a in arrays)
    if arrays[0].size:
        _mark(book.close, *arrays, pnl, held)
    return pnl, held


def _on_grid(close: pd.Series, grid: pd.DatetimeIndex) -> np.ndarray:
    """`close` on the grid's bars (NaN where absent); no reindex when it is on the grid already."""
    if close.index is grid or close.index.equals(grid):
        return close.to_numpy(np.float64)
    return close.reindex(grid).to_numpy(np.float64)


def equity_curve(pnl: np.ndarray, equity0: float) -> tuple[np.ndarray, np.ndarray]:
    """Equity at each bar close and the per-bar returns (PnL over the previous close's equity)."""
    equity = equity0 + np.cumsum(pnl)
    before = np.concatenate([[equity0], equity[:-1]])
    return equity, pnl / before


def sharpe(returns: np.ndarray, bars_per_year: int) -> float:
    if returns.size < 2:
        return math.nan
    sd, mean = returns.std(ddof=1), returns.mean()
    if sd > 0:
        return float(mean / sd * math.sqrt(bars_per_year))
    return 0.0 if mean == 0 else math.nan  # a flat equity (no trade) earns a Sharpe of 0


def max_drawdown(equity: np.ndarray, equity0: float) -> float:
    if equity.size == 0:
        return 0.0
    peak = np.maximum.accumulate(np.concatenate([[equity0], equity]))[1:]
    return float((equity / peak - 1.0).min())


def trade_stats(trades: pd.DataFrame) -> dict[str, float]:
    return _r_stats(filled(trades)["pnl_r"].to_numpy(np.float64))


def _r_stats(r: np.ndarray) -> dict[str, float]:
    gain, loss = r[r > 0].sum(), -r[r < 0].sum()
    return {
        "trades": int(r.size),
        "hit_rate": float((r > 0).mean()) if r.size else math.nan,
        "mean_r": float(r.mean()) if r.size else math.nan,
        "profit_factor": float(gain / loss) if loss > 0 else (math.inf if gain > 0 else math.nan),
    }


def summarize(
    trades: pd.DataFrame,
    grid: pd.DatetimeIndex,
    closes: dict[str, pd.Series],
    span: tuple[pd.Timestamp, pd.Timestamp],
    equity0: float,
    timeframe: str,
) -> tuple[dict[str, float], pd.DataFrame]:
    """The metrics of `trades` over the grid bars in [span start, span end), and the equity series there.

    The span is widened to the last exit of a trade opened in it, so every trade's PnL is counted."""
    out, (lo, hi, pnl, held, equity, returns) = _summary(
        Book.of(trades, grid, closes), None, grid, span, equity0, timeframe
    )
    series = pd.DataFrame(
        {"pnl": pnl, "equity": equity, "return": returns, "open_positions": held},
        index=pd.DatetimeIndex(grid[lo:hi], name="bar_time") + delta(timeframe),
    )
    series.index.name = "bar_close"
    return out, series


def summarize_window(
    book: Book,
    grid: pd.DatetimeIndex,
    window: tuple[pd.Timestamp, pd.Timestamp],
    equity0: float,
    timeframe: str,
) -> dict[str, float]:
    """`summarize(in_window(trades, window), ..., span=window, ...)`'s metrics from the run's `Book`: the
    same arithmetic on the same trades in the same order, without a DataFrame."""
    return _summary(book, book.window(window), grid, window, equity0, timeframe)[0]


def _summary(
    book: Book,
    keep: np.ndarray | None,
    grid: pd.DatetimeIndex,
    span: tuple[pd.Timestamp, pd.Timestamp],
    equity0: float,
    timeframe: str,
) -> tuple[dict[str, float], tuple]:
    pnl, held = _book_pnl(book, keep, len(grid))
    lo = int(np.searchsorted(grid.asi8, span[0].value))
    hi = int(np.searchsorted(grid.asi8, span[1].value))
    last = book.last if keep is None else book.last[keep]
    if last.size:
        hi = max(hi, int(last.max()) + 1)
    pnl, held = pnl[lo:hi], held[lo:hi]
    equity, returns = equity_curve(pnl, equity0)
    out = _r_stats(book.r if keep is None else book.r[keep])
    out.update(
        {
            "total_return": float(equity[-1] / equity0 - 1.0) if equity.size else 0.0,
            "sharpe": sharpe(returns, BARS_PER_YEAR[timeframe]),
            "max_drawdown": max_drawdown(equity, equity0),
            "exposure": float((held > 0).mean()) if held.size else 0.0,
            "bars": int(pnl.size),
        }
    )
    return {k: out[k] for k in METRICS}, (lo, hi, pnl, held, equity, returns)
