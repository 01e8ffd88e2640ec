"""Spot OHLCV from a ccxt exchange (Binance by default), paged forward, with retries.

Returns raw frames (ingest/base.py): the candle still in progress and any duplicates stay in, because
`clean_ohlcv` treats every source alike. Requests are kept to the minimum: markets load once per
instance, nothing is asked for bars that cannot exist yet (`since` beyond now), and a refresh with nothing
new costs one request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import TypeVar

import ccxt
import pandas as pd

from apex_rotation.bars import OHLCV_COLUMNS, RAW_OHLCV_COLUMNS, empty_raw_ohlcv
from apex_rotation.config import AppConfig
from apex_rotation.ingest.aliases import ticker_segments
from apex_rotation.ingest.base import (
    DataError,
    MalformedResponse,
    MarketDataSource,
    SourceError,
    check_page,
    span_text,
    to_ms,
)
from apex_rotation.retry import backoff_policy, call_with_retries, describe_error, parse_retry_after
from apex_rotation.timeframes import TIMEFRAME_MS, utc_now

T = TypeVar("T")
log = logging.getLogger(__name__)

#: Candles per request where the exchange allows more than ccxt's default (Binance spot: 1000).
PAGE_LIMITS: dict[str, int] = {"binance": 1000}
#: Only the markets we trade, so `load_markets` is one request (Binance otherwise adds futures endpoints).
MARKET_OPTIONS: dict[str, dict] = {"binance": {"fetchMarkets": {"types": ["spot"]}}}
#: ccxt's network failures (rate limit, DDoS protection, 5xx, timeout, reset) and cut bodies are retried.
#: An empty page this close to the end of the span asked for (in bars) is the end of history, not a fault.
END_SLACK_BARS = 2
RETRY_ON: tuple[type[BaseException], ...] = (ccxt.NetworkError, MalformedResponse)


def point_at(exchange: ccxt.Exchange, url: str) -> None:
    """Send the exchange's public REST calls to `url` (a test server or a proxy)."""
    url = url.rstrip("/")
    if exchange.id == "binance":
        exchange.urls["api"]["public"] = url + "/api/v3"
    elif isinstance(exchange.urls.get("api"), dict):
        exchange.urls["api"] = dict.fromkeys(exchange.urls["api"], url)
    else:
        exchange.urls["api"] = url


class CcxtSource(MarketDataSource):
    """OHLCV for basket symbols from a ccxt exchange; the venue for aliases is the exchange id."""

    name = "ccxt"

    def __init__(
        self,
        cfg: AppConfig,
        exchange_id: str | None = None,
        api_url: str | None = None,
        *,
        enable_rate_limit: bool = True,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], pd.Timestamp] = utc_now,
        rng: random.Random | None = None,
    ):
        self.cfg = cfg
        self.exchange_id = exchange_id or cfg.data_sources.spot_exchange
        self.venue = self.exchange_id
        self._sleep, self._clock, self._rng = sleep, clock, rng
        exchange_class = getattr(ccxt, self.exchange_id, None)
        if not (isinstance(exchange_class, type) and issubclass(exchange_class, ccxt.Exchange)):
            raise SourceError(f"ccxt has no exchange {self.exchange_id!r} (data_sources.spot_exchange)")
        self.exchange: ccxt.Exchange = exchange_class(
            {
                "enableRateLimit": enable_rate_limit,
                "timeout": int(cfg.data_sources.request_timeout_s * 1000),
                "options": MARKET_OPTIONS.get(self.exchange_id, {}),
                "enableLastJsonResponse": True,  # to tell an empty page from a body ccxt could not parse
                "enableLastResponseHeaders": True,  # for Retry-After
            }
        )
        url = api_url if api_url is not None else cfg.data_sources.ccxt_url
        if url:
            point_at(self.exchange, url)
        self._handle_errors = self.exchange.handle_errors
        self.exchange.handle_errors = self._refuse_non_json

    def _refuse_non_json(self, code, reason, url, method, headers, body, response, *rest):
        """A 2xx body that is not JSON (cut short, an HTML page) fails at once: ccxt would hand the text
        on, and parsing its characters as candles costs seconds before the check in `_page` sees it."""
        if response is None and isinstance(code, int) and code < 400:
            raise MalformedResponse(
                f"the {self.exchange_id} response to {method} {url} is not JSON (truncated or an error "
                f"page?): {str(body)[:60]!r}",
                source=self.name,
                symbol="*",
            )
        return self._handle_errors(code, reason, url, method, headers, body, response, *rest)

    # -- requests --------------------------------------------------------------------------------
    def _request(self, what: str, fn: Callable[[], T]) -> T:
        """One logical call with retries; ccxt errors become `SourceError` naming `what`."""
        ex = self.exchange

        def attempt() -> T:
            ex.last_response_headers = None  # a timeout must not reuse an older response's Retry-After
            ex.last_json_response = None
            try:
                return fn()
            except ccxt.NetworkError as exc:
                exc.retry_after = parse_retry_after(ex.last_response_headers)
                raise

        try:
            return call_with_retries(
                attempt,
                what=what,
                **backoff_policy(self.cfg.data_sources),
                retry_on=RETRY_ON,
                give_up=SourceError,
                sleep=self._sleep,
                rng=self._rng,
            )
        except ccxt.BadSymbol as exc:
            raise SourceError(f"{what}: {self.exchange_id} does not list it: {describe_error(exc)}") from exc
        except ccxt.BaseError as exc:
            raise SourceError(f"{what}: {describe_error(exc)}") from exc

    def _ensure_markets(self, symbol: str) -> None:
        """Load the market list once per instance (ccxt needs it to map a pair to the exchange's id)."""
        if self.exchange.markets:
            return

        def load() -> None:
            self.exchange.load_markets()
            if not self.exchange.markets:
                raise MalformedResponse("load_markets returned no markets", source=self.name, symbol="*")

        self._request(f"{self.exchange_id} load_markets (for symbol={symbol})", load)

    def _page(
        self, symbol: str, pair: str, timeframe: str, since_ms: int, until_ms: int
    ) -> tuple[list[list], bool]:
        """One page from `since_ms`, and whether it ends the history; a bad page raises (and is retried)."""
        rows = self.exchange.fetch_ohlcv(
            pair, timeframe, since_ms, PAGE_LIMITS.get(self.exchange_id), {"until": until_ms}
        )
        if self.exchange.last_json_response is None or not isinstance(rows, list):
            raise MalformedResponse(
                f"the {self.exchange_id} response for {pair} since {since_ms} is not JSON (truncated?)",
                source=self.name,
                symbol=symbol,
                timeframe=timeframe,
            )
        step = TIMEFRAME_MS[timeframe]
        done = check_page(
            [int(r[0]) for r in rows],
            since_ms,
            until_ms,
            END_SLACK_BARS * step,
            source=self.name,
            symbol=symbol,
            timeframe=timeframe,
        )
        return rows, done

    # -- MarketDataSource ------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        if timeframe not in TIMEFRAME_MS:
            raise DataError(
                f"unknown timeframe; expected one of {list(TIMEFRAME_MS)}",
                source=self.name,
                symbol=symbol,
                timeframe=timeframe,
            )
        now_ms = to_ms(self._clock(), "now", source="ccxt")
        to_ms(
            since, "since", source="ccxt"
        )  # refuse naive timestamps before comparing them with the alias spans
        to_ms(until, "until", source="ccxt")
        frames = []
        for ticker, lo, hi in ticker_segments(self.cfg.ticker_spans(self.venue, symbol), since, until):
            lo_ms, hi_ms = to_ms(lo, "since", source="ccxt"), min(to_ms(hi, "until", source="ccxt"), now_ms)
            if lo_ms > hi_ms:  # nothing can exist after now: no request, not even for the markets
                continue
            rows = self._fetch_pair(symbol, f"{ticker}/{self.cfg.basket.quote}", timeframe, lo_ms, hi_ms)
            if rows:
                frames.append(pd.DataFrame(rows, columns=RAW_OHLCV_COLUMNS).assign(ticker=ticker))
        if not frames:
            return empty_raw_ohlcv()
        out = pd.concat(frames, ignore_index=True)
        out["open_time"] = out["open_time"].astype("int64")
        out[OHLCV_COLUMNS] = out[OHLCV_COLUMNS].astype("float64")
        return out

    def unlisted(self, symbols: Sequence[str]) -> list[str]:
        """The symbols whose pair now (`<ticker>/<basket.quote>`, the ticker through the exchange's aliases)
        is not among the exchange's markets; one `load_markets` request, none when `symbols` is empty."""
        if not symbols:
            return []
        self._ensure_markets(",".join(symbols))
        pairs = {symbol: self._pair_now(symbol) for symbol in symbols}
        return [symbol for symbol, pair in pairs.items() if pair is None or pair not in self.exchange.markets]

    def _pair_now(self, symbol: str) -> str | None:
        now = self._clock()
        pieces = ticker_segments(self.cfg.ticker_spans(self.venue, symbol), now, now)
        return f"{pieces[0][0]}/{self.cfg.basket.quote}" if pieces else None

    def _fetch_pair(self, symbol: str, pair: str, timeframe: str, lo_ms: int, hi_ms: int) -> list[list]:
        """Page forward from `lo_ms` to `hi_ms` (open times, inclusive) until past `hi_ms` or the end of
        history (`check_page`); an empty or repeated page before that is retried, then fails the symbol."""
        step = TIMEFRAME_MS[timeframe]
        rows: list[list] = []
        start, requests = lo_ms, 0
        self._ensure_markets(symbol)
        span = span_text(lo_ms, hi_ms)
        while start <= hi_ms:
            what = (
                f"{self.exchange_id} fetch_ohlcv symbol={symbol} pair={pair} tf={timeframe} span={span} "
                f"since={start}"
            )
            page, done = self._request(what, partial(self._page, symbol, pair, timeframe, start, hi_ms))
            requests += 1
            if done:
                break
            rows.extend(page)
            start = max(int(r[0]) for r in page) + step
        log.info(
            "fetched source=ccxt exchange=%s symbol=%s pair=%s tf=%s rows=%d requests=%d",
            self.exchange_id,
            symbol,
            pair,
            timeframe,
            len(rows),
            requests,
        )
        return rows

    def close(self) -> None:
        self.exchange.close()
