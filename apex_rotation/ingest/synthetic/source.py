"""`SyntheticSource`: the `synthetic` MarketDataSource, serving the generated market like a venue.

Why a module of its own: the source is the only part the rest of the pipeline sees (via the registry); it
generates the market lazily, once per instance. See docs/synthetic-market.md.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.ingest.base import MarketDataSource, SourceError, UnsupportedData, to_ms
from apex_rotation.ingest.synthetic.market import INTEREST, SyntheticMarket, build_market
from apex_rotation.ingest.synthetic.numeric import HOUR_MS
from apex_rotation.ingest.synthetic.profiles import (
    _ALT_PROFILES,  # the hand-set tables: a symbol outside them is drawn from the seed
    _APEX_PROFILES,
    make_profiles,
    profile_table,
)

log = logging.getLogger(__name__)


def _hand_set(cfg: AppConfig, symbol: str) -> dict:
    """The hand-set profile table that applies to `symbol` (apex assets and alts have separate ones)."""
    return _APEX_PROFILES if symbol in cfg.basket.apex_assets else _ALT_PROFILES


class SyntheticSource(MarketDataSource):
    """Serves the generated market like a venue: 1h bars, hourly funding, open-interest history."""

    name = "synthetic"
    supports_funding = True
    supports_open_interest = True
    has_open_interest_history = True
    fork_safe = True

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg

    @cached_property
    def market(self) -> SyntheticMarket:
        return build_market(self.cfg)

    def history_window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last 1h open time: [end − days, end), every bar closed by `synthetic.end`."""
        end = pd.Timestamp(self.cfg.synthetic.end).floor("h")
        return end - pd.Timedelta(days=self.cfg.synthetic.days), end - pd.Timedelta(hours=1)

    def ground_truth(self) -> pd.DataFrame:
        return self.market.truth.copy()

    def profiles(self) -> pd.DataFrame:
        """Per symbol: role, kind, factor, beta, corr (targets vs the factor), idio_vol and vol (hourly
        stdevs at average volatility), starting price and hourly notional volume. Needs no generation."""
        return profile_table(make_profiles(self.cfg))

    def unlisted(self, symbols: Sequence[str]) -> list[str]:
        """None of the basket: the market is generated. Symbols outside the basket are returned (they cannot
        be served); the basket symbols without a hand-set profile are invented, and one line says which."""
        invented = [s for s in symbols if s in self.cfg.basket.names and s not in _hand_set(self.cfg, s)]
        if invented:
            log.info(
                "synthetic invents symbols=%s reason=no_hand_set_profile (drawn from seed=%d and the name)",
                ",".join(invented),
                self.cfg.synthetic.seed,
            )
        return [s for s in symbols if s not in self.cfg.basket.names]

    def _row(self, symbol: str) -> int:
        if symbol not in self.cfg.basket.names:
            raise SourceError(f"synthetic: unknown symbol {symbol!r}; the basket is {self.cfg.basket.names}")
        return self.market.symbols.index(symbol)

    def _span(self, times: np.ndarray, since, until, symbol: str, timeframe: str) -> slice:
        lo, hi = (
            to_ms(t, what, source="synthetic", symbol=symbol, timeframe=timeframe)
            for t, what in ((since, "since"), (until, "until"))
        )
        return slice(int(np.searchsorted(times, lo, "left")), int(np.searchsorted(times, hi, "right")))

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        i = self._row(symbol)
        if timeframe != "1h":
            raise UnsupportedData(
                f"synthetic serves 1h bars only (the store resamples 4h/1d); asked for {symbol} {timeframe}"
            )
        m = self.market
        sel = self._span(m.open_ms, since, until, symbol, timeframe)
        frame = pd.DataFrame(
            {
                "open_time": m.open_ms[sel],
                "open": m.open[i, sel],
                "high": m.high[i, sel],
                "low": m.low[i, sel],
                "close": m.close[i, sel],
                "volume": m.volume[i, sel],
            }
        )
        frame["ticker"] = symbol
        return frame

    def fetch_funding(self, symbol: str, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """Hourly rates stamped at each bar's close (`time` = open + 1h); premium = rate − interest."""
        i, m = self._row(symbol), self.market
        times = m.open_ms + HOUR_MS
        sel = self._span(times, since, until, symbol, "funding")
        rate = m.funding[i, sel]
        return pd.DataFrame({"time": times[sel], "rate": rate, "premium": rate - INTEREST})

    def fetch_open_interest_history(
        self, symbol: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        """Open interest (base units) snapshotted at each bar's close (`time` = open + 1h)."""
        i, m = self._row(symbol), self.market
        times = m.open_ms + HOUR_MS
        sel = self._span(times, since, until, symbol, "open_interest")
        return pd.DataFrame({"time": times[sel], "open_interest": m.open_interest[i, sel]})

    def fetch_open_interest(self, symbols: Sequence[str]) -> pd.DataFrame:
        """The latest snapshot (at `synthetic.end`) for each symbol."""
        m, rows = self.market, []
        for symbol in symbols:
            i = self._row(symbol)
            end = int(m.open_ms[-1] + HOUR_MS)
            rows.append((symbol, end, m.open_interest[i, -1], m.funding[i, -1], m.close[i, -1]))
        return pd.DataFrame(rows, columns=["symbol", "time", "open_interest", "funding", "mark_price"])
