"""Hyperliquid perps: OHLCV, funding history and an open-interest snapshot, via hyperliquid-python-sdk.

The SDK is a thin `requests` wrapper with no retries, no default timeout and a bug (a 4xx JSON body
without "code" raises `KeyError`), so every call goes through `_request`, which maps SDK and transport
errors to retries or a `SourceError`. Frames are raw (ingest/base.py): candles keep the venue's `s` coin
as `ticker`, so the cleaner can reject a response for the wrong coin.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pandas as pd
import requests
from hyperliquid.info import Info
from hyperliquid.utils.error import ClientError, ServerError

from apex_rotation.bars import OHLCV_COLUMNS, empty_raw_ohlcv
from apex_rotation.config import AppConfig
from apex_rotation.ingest.aliases import ticker_segments
from apex_rotation.ingest.base import (
    OI_COLUMNS,
    DataError,
    MalformedResponse,
    MarketDataSource,
    SourceError,
    check_page,
    span_text,
    to_ms,
)
from apex_rotation.retry import (
    TransientError,
    backoff_policy,
    call_with_retries,
    describe_error,
    parse_retry_after,
)
from apex_rotation.timeframes import TIMEFRAME_MS, utc_now

log = logging.getLogger(__name__)

VENUE = "hyperliquid"
#: Only the most recent 5000 candles of a timeframe exist; older `since` values are clamped.
MAX_CANDLES = 5000
#: fundingHistory answers at most this many rows; a shorter page reaching the present is the last one
#: (one that does not is followed by another request, so a shrunken cap costs requests, not rows).
FUNDING_PAGE_ROWS = 500
#: Funding was paid 8-hourly until this time, hourly since.
HOURLY_FUNDING_SINCE_MS = 1686182400000  # 2023-06-08T00:00:00Z
#: An empty page this close (in bars or funding intervals) to the end of the span is the end of history.
END_SLACK_BARS = 2
RETRY_ON: tuple[type[BaseException], ...] = (TransientError, MalformedResponse)
#: 4xx statuses that mean "slow down", retried with backoff (418 is the ban status Binance-style gateways send).
RATE_LIMIT_STATUSES = (418, 429)
_TRANSPORT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
_EMPTY_SPOT_META: dict = {"universe": [], "tokens": []}
_CANDLE_KEYS = ("t", "s", "o", "h", "l", "c", "v")
_FUNDING_KEYS = ("coin", "time", "fundingRate", "premium")


def funding_interval_ms(at_ms: int) -> int:
    """How often funding is paid at `at_ms`: 8h before 2023-06-08, 1h since."""
    return 3_600_000 if at_ms >= HOURLY_FUNDING_SINCE_MS else 8 * 3_600_000


class HyperliquidSource(MarketDataSource):
    """Perp candles, funding and open interest for basket symbols (coin names via aliases["hyperliquid"])."""

    name = VENUE
    supports_funding = True
    supports_open_interest = True
    has_open_interest_history = False

    def __init__(
        self,
        cfg: AppConfig,
        *,
        base_url: str | None = None,
        meta: dict | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], pd.Timestamp] = utc_now,
        rng: random.Random | None = None,
    ):
        """No request is sent here: `meta` (the perp universe) is fetched on first use unless given."""
        self.cfg = cfg
        self._sleep, self._clock, self._rng = sleep, clock, rng
        self.info = Info(
            base_url=(base_url or cfg.data_sources.hyperliquid_url).rstrip("/"),
            skip_ws=True,
            meta={"universe": []},
            spot_meta=_EMPTY_SPOT_META,
            timeout=cfg.data_sources.request_timeout_s,
        )
        self._last_status: tuple[int, Any] | None = None
        self._last_call: float | None = None  # time.monotonic() of the previous request, for the throttle
        self.info.session.hooks["response"].append(self._remember_response)
        self._coins: set[str] | None = None
        if meta is not None:
            self._set_meta(meta)

    # -- requests --------------------------------------------------------------------------------
    def _remember_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._last_status = (response.status_code, response.headers)

    def _retry_after(self) -> float | None:
        return parse_retry_after(self._last_status[1]) if self._last_status else None

    def _attempt(self, what: str, fn: Callable[[], Any]) -> Any:
        """One SDK call; transient failures become `TransientError`, the rest `SourceError`."""
        self._throttle()
        self._last_status = None
        try:
            result = fn()
        except _TRANSPORT_ERRORS as exc:
            raise TransientError(describe_error(exc)) from exc
        except ServerError as exc:
            raise TransientError(
                f"HTTP {exc.status_code}: {str(exc.message)[:200]}", self._retry_after()
            ) from exc
        except ClientError as exc:
            if exc.status_code in RATE_LIMIT_STATUSES:
                raise TransientError(
                    f"HTTP {exc.status_code}: {str(exc.error_message)[:200]}", self._retry_after()
                ) from exc
            raise SourceError(f"{what}: HTTP {exc.status_code}: {str(exc.error_message)[:200]}") from exc
        except KeyError as exc:  # SDK bug: a 4xx JSON body without "code"
            status = self._last_status[0] if self._last_status else None
            if status is None or status < 400:
                raise
            if status in RATE_LIMIT_STATUSES:
                raise TransientError(f"HTTP {status} (body without code)", self._retry_after()) from exc
            raise SourceError(f"{what}: HTTP {status} (body without code)") from exc
        if isinstance(result, dict) and str(result.get("error", "")).startswith("Could not parse JSON"):
            raise MalformedResponse(f"{what}: the body is not JSON (truncated?)", source=VENUE)
        return result

    def _throttle(self) -> None:
        """Space requests by `hyperliquid_min_interval_s` (the SDK has no rate limiter of its own)."""
        interval = self.cfg.data_sources.hyperliquid_min_interval_s
        now = time.monotonic()
        if interval > 0 and self._last_call is not None and now - self._last_call < interval:
            self._sleep(interval - (now - self._last_call))
        self._last_call = time.monotonic()

    def _request(self, what: str, fn: Callable[[], Any]) -> Any:
        return call_with_retries(
            partial(self._attempt, what, fn),
            what=what,
            **backoff_policy(self.cfg.data_sources),
            retry_on=RETRY_ON,
            give_up=SourceError,
            sleep=self._sleep,
            rng=self._rng,
        )

    def _set_meta(self, meta: Any) -> None:
        universe = meta.get("universe") if isinstance(meta, dict) else None
        if not isinstance(universe, list) or not all(
            isinstance(u, dict) and "name" in u and "szDecimals" in u for u in universe
        ):
            raise MalformedResponse(
                f"meta is not {{universe: [{{name, szDecimals}}]}}: {str(meta)[:200]}", source=VENUE
            )
        self.info.set_perp_meta(meta, 0)
        self._coins = {u["name"] for u in meta["universe"]}

    def _listed_coins(self) -> set[str]:
        """The perp universe's coin names (`meta`, loaded once per instance unless given)."""
        if self._coins is None:
            self._request("hyperliquid meta", lambda: self._set_meta(self.info.meta()))
        assert self._coins is not None
        return self._coins

    def unlisted(self, symbols: Sequence[str]) -> list[str]:
        """The symbols whose coin now (through aliases.hyperliquid) is not in the perp universe (`meta`);
        at most one request, none when `symbols` is empty or meta was given."""
        if not symbols:
            return []
        coins = self._listed_coins()
        out = []
        for symbol in symbols:
            try:
                coin = self._coin_now(symbol)
            except SourceError:
                coin = None
            if coin not in coins:
                out.append(symbol)
        return out

    def _coin(self, symbol: str, coin: str) -> str:
        """`coin` if the perp universe lists it (meta loads once); else a clear error, before any request."""
        if coin not in self._listed_coins():
            raise SourceError(
                f"hyperliquid lists no perp {coin!r} for basket symbol {symbol}; "
                "add an alias under aliases.hyperliquid"
            )
        return coin

    def _coin_now(self, symbol: str) -> str:
        now = self._clock()
        pieces = ticker_segments(self.cfg.ticker_spans(VENUE, symbol), now, now)
        if not pieces:
            raise SourceError(
                f"basket symbol {symbol} has no hyperliquid ticker at {now} (aliases.hyperliquid)"
            )
        return pieces[0][0]

    # -- OHLCV -----------------------------------------------------------------------------------
    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        if timeframe not in TIMEFRAME_MS:
            raise DataError(
                f"unknown timeframe; expected one of {list(TIMEFRAME_MS)}",
                source=VENUE,
                symbol=symbol,
                timeframe=timeframe,
            )
        step = TIMEFRAME_MS[timeframe]
        now_ms = to_ms(self._clock(), "now", source=VENUE)
        to_ms(until, "until", source=VENUE)
        earliest = pd.Timestamp((now_ms // step - (MAX_CANDLES - 1)) * step, unit="ms", tz="UTC")
        if to_ms(since, "since", source=VENUE) < earliest.value // 1_000_000:
            log.info(
                "clamp_since source=hyperliquid symbol=%s tf=%s requested=%s served_from=%s "
                "reason=only_the_latest_%d_candles_exist",
                symbol,
                timeframe,
                pd.Timestamp(since).isoformat(),
                earliest.isoformat(),
                MAX_CANDLES,
            )
            since = earliest
        rows: list[dict] = []
        for ticker, lo, hi in ticker_segments(self.cfg.ticker_spans(VENUE, symbol), since, until):
            lo_ms, hi_ms = to_ms(lo, "since", source=VENUE), min(to_ms(hi, "until", source=VENUE), now_ms)
            if lo_ms <= hi_ms:  # nothing can exist after now: no request, not even for meta
                rows += self._candles(symbol, self._coin(symbol, ticker), timeframe, lo_ms, hi_ms)
        if not rows:
            return empty_raw_ohlcv()
        return self._candle_frame(symbol, timeframe, rows)

    def _candles(self, symbol: str, coin: str, timeframe: str, lo_ms: int, hi_ms: int) -> list[dict]:
        """Page forward (≤500 rows a response) past `hi_ms` or to the end of history (`check_page`); an
        empty or repeated page before that is retried, then fails the symbol."""
        step = TIMEFRAME_MS[timeframe]
        rows: list[dict] = []
        start, requests_sent = lo_ms, 0
        span = span_text(lo_ms, hi_ms)
        while start <= hi_ms:
            what = (
                f"hyperliquid candleSnapshot symbol={symbol} coin={coin} tf={timeframe} span={span} "
                f"since={start}"
            )
            call = partial(self.info.candles_snapshot, coin, timeframe, start, hi_ms)
            checked = partial(
                self._checked_page, call, _CANDLE_KEYS, "t", start, hi_ms, END_SLACK_BARS * step
            )
            page, done = self._request(what, partial(checked, symbol, timeframe))
            requests_sent += 1
            if done:
                break
            rows.extend(page)
            start = max(int(r["t"]) for r in page) + step
        log.info(
            "fetched source=hyperliquid symbol=%s coin=%s tf=%s rows=%d requests=%d",
            symbol,
            coin,
            timeframe,
            len(rows),
            requests_sent,
        )
        return rows

    def _checked_page(
        self,
        call: Callable[[], Any],
        keys: Sequence[str],
        time_key: str,
        start_ms: int,
        end_ms: int,
        slack_ms: int,
        symbol: str,
        timeframe: str = "?",
    ) -> tuple[list[dict], bool]:
        """One page with its rows checked, and whether it ends the history (`check_page`)."""
        page = self._page(call)
        self._check_rows(page, keys, symbol, timeframe)
        times = self._numbers(
            pd.Series([r[time_key] for r in page], dtype=object), time_key, symbol, timeframe
        )
        done = check_page(
            times.astype("int64").tolist(),
            start_ms,
            end_ms,
            slack_ms,
            source=VENUE,
            symbol=symbol,
            timeframe=timeframe,
        )
        return page, done

    @staticmethod
    def _page(call: Callable[[], Any]) -> list:
        """One SDK page call; anything but a list is a malformed body (retried)."""
        page = call()
        if not isinstance(page, list):
            raise MalformedResponse(f"expected a list of rows, got {str(page)[:200]}", source=VENUE)
        return page

    @staticmethod
    def _check_rows(page: list, keys: Sequence[str], symbol: str, timeframe: str = "?") -> None:
        for i, row in enumerate(page):
            missing = [k for k in keys if not isinstance(row, dict) or k not in row]
            if missing:
                raise DataError(
                    f"row {i} lacks {missing}: {str(row)[:200]}",
                    source=VENUE,
                    symbol=symbol,
                    timeframe=timeframe,
                )

    def _candle_frame(self, symbol: str, timeframe: str, rows: list[dict]) -> pd.DataFrame:
        raw = pd.DataFrame(rows)
        out = pd.DataFrame({"open_time": self._numbers(raw["t"], "t", symbol, timeframe).astype("int64")})
        for col, key in zip(OHLCV_COLUMNS, ("o", "h", "l", "c", "v"), strict=True):
            out[col] = self._numbers(raw[key], key, symbol, timeframe)
        out["ticker"] = raw["s"].astype("object")
        return out

    @staticmethod
    def _numbers(values: pd.Series, key: str, symbol: str, timeframe: str = "?") -> pd.Series:
        """Decimal strings (or numbers) as float64; an unparsable value is an error naming the row."""
        out = pd.to_numeric(values, errors="coerce").astype("float64")
        bad = out.isna()
        if bad.any():
            i = int(bad.to_numpy().argmax())
            raise DataError(
                f"field {key!r} of row {i} is not a number: {values.iloc[i]!r}",
                source=VENUE,
                symbol=symbol,
                timeframe=timeframe,
            )
        return out

    # -- funding ---------------------------------------------------------------------------------
    def fetch_funding(self, symbol: str, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """Rows `time` (raw ms, jitter kept), `rate`, `premium`; paged from the last time + 1 ms."""
        now_ms = to_ms(self._clock(), "now", source=VENUE)
        to_ms(since, "since", source=VENUE)
        to_ms(until, "until", source=VENUE)
        rows: list[dict] = []
        for ticker, lo, hi in ticker_segments(self.cfg.ticker_spans(VENUE, symbol), since, until):
            lo_ms, hi_ms = to_ms(lo, "since", source=VENUE), min(to_ms(hi, "until", source=VENUE), now_ms)
            if lo_ms <= hi_ms:
                rows += self._funding(symbol, self._coin(symbol, ticker), lo_ms, hi_ms)
        if not rows:
            return pd.DataFrame(
                {
                    "time": pd.Series(dtype="int64"),
                    "rate": pd.Series(dtype="float64"),
                    "premium": pd.Series(dtype="float64"),
                }
            )
        raw = pd.DataFrame(rows)
        return pd.DataFrame(
            {
                "time": self._numbers(raw["time"], "time", symbol).astype("int64"),
                "rate": self._numbers(raw["fundingRate"], "fundingRate", symbol),
                "premium": self._numbers(raw["premium"], "premium", symbol),
            }
        )

    def _funding(self, symbol: str, coin: str, lo_ms: int, hi_ms: int) -> list[dict]:
        """Page forward from the last row + 1 ms; a short page that reaches the present ends it, an empty or
        repeated page before that is retried, then fails the symbol."""
        rows: list[dict] = []
        start, requests_sent = lo_ms, 0
        span = span_text(lo_ms, hi_ms)
        slack = END_SLACK_BARS * funding_interval_ms(hi_ms)
        while start <= hi_ms:
            what = f"hyperliquid fundingHistory symbol={symbol} coin={coin} span={span} since={start}"
            call = partial(self.info.funding_history, coin, start, hi_ms)
            checked = partial(self._checked_page, call, _FUNDING_KEYS, "time", start, hi_ms, slack)
            page, done = self._request(what, partial(checked, symbol))
            requests_sent += 1
            wrong = sorted({r["coin"] for r in page} - {coin})
            if wrong:
                raise DataError(
                    f"fundingHistory for {coin} returned rows of {wrong}", source=VENUE, symbol=symbol
                )
            if done:
                break
            rows.extend(page)
            last = max(int(r["time"]) for r in page)
            if len(page) < FUNDING_PAGE_ROWS and last >= hi_ms - slack:
                break  # a short page reaching the present: saves the empty request that would confirm it
            start = last + 1
        log.info(
            "fetched source=hyperliquid kind=funding symbol=%s coin=%s rows=%d requests=%d",
            symbol,
            coin,
            len(rows),
            requests_sent,
        )
        return rows

    # -- open interest ---------------------------------------------------------------------------
    def _meta_and_ctxs(self) -> list:
        """One `metaAndAssetCtxs` call; anything but `[meta, ctxs]` aligned is a bad body (retried)."""
        data = self.info.meta_and_asset_ctxs()
        if not (
            isinstance(data, list)
            and len(data) == 2
            and isinstance(data[0], dict)
            and isinstance(data[0].get("universe"), list)
            and isinstance(data[1], list)
            and len(data[1]) == len(data[0]["universe"])
        ):
            raise MalformedResponse(
                f"metaAndAssetCtxs is not [meta, ctxs] aligned: {str(data)[:200]}", source=VENUE
            )
        return data

    def fetch_open_interest(self, symbols: Sequence[str]) -> pd.DataFrame:
        """One `metaAndAssetCtxs` call: a snapshot row per symbol (open interest in coins, hourly funding)."""
        coins = {symbol: self._coin_now(symbol) for symbol in symbols}
        what = f"hyperliquid metaAndAssetCtxs symbols={list(coins)}"
        data = self._request(what, self._meta_and_ctxs)
        time_ms = to_ms(self._clock(), "now", source=VENUE)
        ctx_by_coin = {u["name"]: ctx for u, ctx in zip(data[0]["universe"], data[1], strict=True)}
        missing = sorted(s for s, c in coins.items() if c not in ctx_by_coin)
        if missing:
            raise SourceError(
                f"hyperliquid lists no perp for {[(s, coins[s]) for s in missing]}; add aliases under "
                "aliases.hyperliquid or drop them from the open-interest request"
            )
        rows = []
        for symbol, coin in coins.items():
            ctx = ctx_by_coin[coin]
            try:
                values = [float(ctx[k]) for k in ("openInterest", "funding", "markPx")]
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"bad asset ctx for {coin}: {ctx}", source=VENUE, symbol=symbol) from exc
            rows.append([symbol, time_ms, *values])
        return pd.DataFrame(rows, columns=OI_COLUMNS).astype({"time": "int64"})

    def close(self) -> None:
        self.info.session.close()
