"""A local HTTP server that replays recorded Binance / Hyperliquid responses and injects faults on demand.

Real HTTP on 127.0.0.1 (ephemeral port), so the real clients (ccxt, the Hyperliquid SDK, `requests`) run
their whole stack: timeouts, resets and status codes are met exactly as in production.

Routes: Binance `GET /api/v3/klines` and `/api/v3/exchangeInfo`; Hyperliquid `POST /info`, dispatched
on the JSON `type` (meta, spotMeta, allMids, candleSnapshot, fundingHistory, metaAndAssetCtxs). A route
key is the last path segment for Binance (`klines`, `exchangeInfo`) and the `type` for Hyperliquid.

Data: by default the recorded responses in `../shared/fixtures` (ccxt's Binance BTC/USDT 1h klines, the
SDK's vcr cassettes). Larger series are added from real candles (`add_klines` / `add_candles`, e.g.
from a freqtrade feather file) and served in the exact raw layout, honouring startTime/endTime/limit.
`metaAndAssetCtxs` was never recorded: BTC's ctx is the example of `api/info/assetctxs.yaml`, the other
coins of the recorded `meta` get placeholder ctxs (mark price = the recorded allMids mid, funding
0.0000125, open interest 1000) unless a test sets them with `set_asset_ctx`.

Faults (`inject(route, *faults)`): a FIFO per route, each fault consumed by the next request there
(`normal()` lets one request through, to aim a fault at a later page).
`now_ms`: the server's current time; bars opening later do not exist yet, and the bar containing `now`
is served as the candle in progress (open as recorded; high = low = close = open; volume scaled by the
elapsed fraction), as Binance and Hyperliquid serve it.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import functools
import json
import socket
import struct
from bisect import bisect_left, bisect_right
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pandas as pd
import yaml

from apex_rotation.timeframes import TIMEFRAME_MS
from apex_rotation_tests.local_server import LocalServer
from apex_rotation_tests.shared import CCXT_FIXTURES, HYPERLIQUID_FIXTURES

BINANCE_MAX_LIMIT = 1000
BINANCE_DEFAULT_LIMIT = 500
HL_MAX_ROWS = 500
HL_MAX_CANDLES = 5000
INVALID_SYMBOL = '{"code":-1121,"msg":"Invalid symbol."}'
BINANCE_RATE_LIMIT = (
    '{"code":-1003,"msg":"Too many requests; current limit is 6000 request weight per 1 MINUTE. '
    'Please use WebSocket Streams for live updates to avoid polling the API."}'
)
HTML_ERROR_PAGE = (
    "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"
)


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build it with the helpers below."""

    kind: str  # normal | status (any status, 200 included, with a body) | timeout | reset | truncated | empty | repeat
    status: int = 200
    retry_after: str | None = None
    body: str | None = None
    delay_s: float = 0.0
    content_type: str = "application/json"


def normal() -> Fault:
    """Serve this request as usual (to aim the next fault at a later request)."""
    return Fault("normal")


def http_status(
    status: int,
    retry_after: float | str | None = None,
    body: str | None = None,
    content_type: str = "application/json",
) -> Fault:
    """An error status (429, 418, 500, …) with an optional Retry-After header (seconds, or an HTTP date
    such as `http_date(2)`) and body; a status 200 with an error body is a fault too (`html_page`)."""
    ra = None if retry_after is None else str(retry_after)
    return Fault("status", status=status, retry_after=ra, body=body, content_type=content_type)


def http_date(seconds_from_now: float) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate) `seconds_from_now` after the real clock, for Retry-After."""
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds_from_now)
    return email.utils.format_datetime(when, usegmt=True)


def html_page() -> Fault:
    """200 with an HTML body, as a CDN or captive proxy serves it in place of the API's JSON."""
    return http_status(200, body=HTML_ERROR_PAGE, content_type="text/html")


def json_error(body: str = BINANCE_RATE_LIMIT) -> Fault:
    """200 with a JSON error object where the rows should be (Binance's -1003 by default)."""
    return http_status(200, body=body)


def timeout(delay_s: float) -> Fault:
    """Answer only after `delay_s` (make it longer than the client's timeout)."""
    return Fault("timeout", delay_s=delay_s)


def reset() -> Fault:
    """Read the request, then drop the connection with a TCP RST."""
    return Fault("reset")


def truncated() -> Fault:
    """200 with the first half of the real body (invalid JSON, consistent Content-Length)."""
    return Fault("truncated")


def empty_page() -> Fault:
    """200 with `[]`."""
    return Fault("empty")


def repeat_last() -> Fault:
    """200 with only the row before the requested start (klines, candles, funding): no progress."""
    return Fault("repeat")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    route: str
    query: dict[str, str]
    body: Any


# ---------------------------------------------------------------------------------------------------
# recorded data


@functools.cache
def _cassette_bodies(name: str) -> dict[str, Any]:
    """The response bodies of one vcr cassette, by the request JSON `type` (cached: never mutated)."""
    doc = yaml.safe_load((HYPERLIQUID_FIXTURES / name).read_text())
    out = {}
    for interaction in doc["interactions"]:
        kind = json.loads(interaction["request"]["body"])["type"]
        out[kind] = json.loads(interaction["response"]["body"]["string"])
    return out


def recorded_meta() -> dict:
    return _cassette_bodies("test_get_info.yaml")["meta"]


def recorded_all_mids() -> dict[str, str]:
    return _cassette_bodies("test_get_all_mids.yaml")["allMids"]


def recorded_kpepe_candles() -> list[dict]:
    """24 kPEPE 1h candles, as recorded (request startTime 1684702007000, endTime 1684784807000)."""
    return _cassette_bodies("test_get_candles_snapshot.yaml")["candleSnapshot"]


def recorded_btc_funding(with_end: bool = False) -> list[dict]:
    """BTC funding rows: 1038 (no endTime) or 34 (endTime 1684811870000), as recorded."""
    name = (
        "test_get_funding_history[1684811870000].yaml" if with_end else "test_get_funding_history[None].yaml"
    )
    return _cassette_bodies(name)["fundingHistory"]


def recorded_asset_ctx_example() -> tuple[dict, dict]:
    """(universe entry, ctx) from the example of the OpenAPI spec `api/info/assetctxs.yaml`."""
    spec = yaml.safe_load((HYPERLIQUID_FIXTURES / "api" / "info" / "assetctxs.yaml").read_text())
    example = spec["paths"]["/info"]["post"]["responses"]["200"]["content"]["application/json"]["example"]
    return example[0]["universe"][0], example[1][0]


@functools.cache
def binance_ohlcv_case(description: str = "Spot OHLCV with since and limit") -> dict:
    """One case of ccxt's static Binance fetchOHLCV test (input, httpResponse, parsedResponse)."""
    cases = json.loads((CCXT_FIXTURES / "binance.fetchOHLCV.json").read_text())["methods"]["fetchOHLCV"]
    return next(c for c in cases if c["description"] == description)


def _num(x: float) -> str:
    """A float as the shortest decimal string that parses back to the same float."""
    return repr(float(x))


def frame_from_feather(path: Path) -> pd.DataFrame:
    """A freqtrade feather file (date, open, high, low, close, volume)."""
    return pd.read_feather(path)


def _open_ms(df: pd.DataFrame) -> list[int]:
    return (df["date"].astype("datetime64[ns, UTC]").astype("int64") // 1_000_000).tolist()


def binance_rows(df: pd.DataFrame, interval: str) -> list[list]:
    """Candles in Binance's raw 12-field kline layout (quote volume = volume × close; trade counts 0)."""
    step = TIMEFRAME_MS[interval]
    rows = []
    for t, o, h, lo, c, v in zip(
        _open_ms(df), df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True
    ):
        rows.append(
            [t, _num(o), _num(h), _num(lo), _num(c), _num(v), t + step - 1, _num(v * c), 0, "0", "0", "0"]
        )
    return rows


def hyperliquid_rows(df: pd.DataFrame, coin: str, interval: str) -> list[dict]:
    """Candles in Hyperliquid's raw candleSnapshot layout (trade counts 0)."""
    step = TIMEFRAME_MS[interval]
    rows = []
    for t, o, h, lo, c, v in zip(
        _open_ms(df), df["open"], df["high"], df["low"], df["close"], df["volume"], strict=True
    ):
        rows.append(
            {
                "t": t,
                "T": t + step - 1,
                "s": coin,
                "i": interval,
                "o": _num(o),
                "c": _num(c),
                "h": _num(h),
                "l": _num(lo),
                "v": _num(v),
                "n": 0,
            }
        )
    return rows


def _exchange_info_entry(market_id: str, base: str, quote: str) -> dict:
    """The fields of an `exchangeInfo` symbol that ccxt reads (values as Binance sends them for spot)."""
    return {
        "symbol": market_id,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


# ---------------------------------------------------------------------------------------------------
# the server


@dataclass
class _Series:
    """Rows sorted by open time, with the open times for bisecting."""

    rows: list = field(default_factory=list)
    opens: list[int] = field(default_factory=list)

    def merge(self, rows: list, open_of) -> None:
        by_open = {open_of(r): r for r in self.rows}
        by_open.update({open_of(r): r for r in rows})
        self.opens = sorted(by_open)
        self.rows = [by_open[t] for t in self.opens]


class ReplayServer(LocalServer):
    """Context manager: `with ReplayServer() as srv: ... srv.url ...`."""

    def __init__(self, now_ms: int | pd.Timestamp | None = None, load_recorded: bool = True):
        super().__init__()
        self.now_ms = now_ms
        #: Hyperliquid's row cap per response (candles and funding); a test may shrink it.
        self.hl_max_rows = HL_MAX_ROWS
        self.requests: list[RecordedRequest] = []
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._klines: dict[tuple[str, str], _Series] = {}
        self._binance_markets: dict[str, tuple[str, str]] = {}
        self._candles: dict[tuple[str, str], _Series] = {}
        self._funding: dict[str, _Series] = {}
        self._meta: dict = {"universe": []}
        self._mids: dict[str, str] = {}
        self._ctx: dict[str, dict] = {}
        if load_recorded:
            self._load_recorded()
        self._start(_make_handler(self), "replay-server")

    # -- setup -----------------------------------------------------------------------------------
    def _load_recorded(self) -> None:
        case = binance_ohlcv_case()
        symbol, interval = case["input"][0], case["input"][1]
        base, quote = symbol.split("/")
        self.add_klines(base, quote, interval, case["httpResponse"])
        self._meta = recorded_meta()
        self._mids = recorded_all_mids()
        self.add_candles("kPEPE", "1h", recorded_kpepe_candles())
        self.add_funding("BTC", recorded_btc_funding())
        entry, ctx = recorded_asset_ctx_example()
        self._ctx[entry["name"]] = ctx

    def add_klines(self, base: str, quote: str, interval: str, rows: list[list] | pd.DataFrame) -> None:
        """Serve raw kline rows (or a feather-style frame, converted) for `base+quote`."""
        if isinstance(rows, pd.DataFrame):
            rows = binance_rows(rows, interval)
        market_id = f"{base}{quote}"
        with self._lock:
            self._binance_markets[market_id] = (base, quote)
            self._klines.setdefault((market_id, interval), _Series()).merge(rows, lambda r: int(r[0]))

    def add_binance_market(self, base: str, quote: str) -> None:
        """List a market in exchangeInfo without any klines."""
        with self._lock:
            self._binance_markets[f"{base}{quote}"] = (base, quote)

    def add_candles(self, coin: str, interval: str, rows: list[dict] | pd.DataFrame) -> None:
        """Serve raw candleSnapshot rows (or a feather-style frame, converted) for `coin`."""
        if isinstance(rows, pd.DataFrame):
            rows = hyperliquid_rows(rows, coin, interval)
        with self._lock:
            self._candles.setdefault((coin, interval), _Series()).merge(rows, lambda r: int(r["t"]))
            if coin not in {u["name"] for u in self._meta["universe"]}:
                self._meta = {
                    **self._meta,
                    "universe": [*self._meta["universe"], {"name": coin, "szDecimals": 2}],
                }

    def add_funding(self, coin: str, rows: list[dict]) -> None:
        with self._lock:
            self._funding.setdefault(coin, _Series()).merge(rows, lambda r: int(r["time"]))

    def set_asset_ctx(self, coin: str, **fields: str | None) -> None:
        with self._lock:
            self._ctx[coin] = {**self._ctx.get(coin, self._default_ctx(coin)), **fields}

    def inject(self, route: str, *faults: Fault) -> None:
        """Queue faults for `route` (e.g. "klines", "candleSnapshot"); each is used by one request."""
        with self._lock:
            self._faults[route].extend(faults)

    def pending_faults(self, route: str) -> int:
        with self._lock:
            return len(self._faults[route])

    def count(self, route: str | None = None) -> int:
        """Requests received (on `route`, or in all)."""
        with self._lock:
            return sum(1 for r in self.requests if route is None or r.route == route)

    def _now(self) -> int | None:
        now = self.now_ms
        return int(pd.Timestamp(now).value // 1_000_000) if isinstance(now, pd.Timestamp) else now

    # -- responses -------------------------------------------------------------------------------
    def respond(self, route: str, query: dict[str, str], body: Any, fault: Fault | None) -> tuple[int, Any]:
        """(status, JSON-able body) for a request, after a data-shaping fault (empty/repeat)."""
        if fault is not None and fault.kind == "empty":
            return 200, []
        repeat = fault is not None and fault.kind == "repeat"
        if route == "klines":
            return self._klines_response(query, repeat)
        if route == "exchangeInfo":
            return 200, self._exchange_info()
        handlers = {
            "meta": lambda: self._meta,
            "spotMeta": lambda: {"universe": [], "tokens": []},
            "allMids": lambda: self._mids,
            "candleSnapshot": lambda: self._candles_response(body.get("req") or {}, repeat),
            "fundingHistory": lambda: self._funding_response(body, repeat),
            "metaAndAssetCtxs": self._meta_and_ctxs,
        }
        if route not in handlers:
            return 400, {"error": f"replay server: unknown route {route!r}"}
        return 200, handlers[route]()

    def _in_progress(self, opens: list[int], rows: list, step: int, as_progress) -> list:
        """`rows` (all opening by `now`) with the one containing `now` turned into the candle in progress."""
        now = self._now()
        if now is None or not rows or not opens[-1] <= now < opens[-1] + step:
            return rows
        return [*rows[:-1], as_progress(rows[-1], (now - opens[-1]) / step)]

    def _klines_response(self, q: dict[str, str], repeat: bool) -> tuple[int, Any]:
        key = (q.get("symbol", ""), q.get("interval", ""))
        if key[0] not in self._binance_markets:
            return 400, json.loads(INVALID_SYMBOL)
        if key[1] not in TIMEFRAME_MS:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        series = self._klines.get(key, _Series())
        step = TIMEFRAME_MS[key[1]]
        limit = min(int(q.get("limit", BINANCE_DEFAULT_LIMIT)), BINANCE_MAX_LIMIT)
        now = self._now()
        hi_open = min(int(q["endTime"]) if "endTime" in q else 2**62, now if now is not None else 2**62)
        hi = bisect_right(series.opens, hi_open)
        if "startTime" in q:
            start = int(q["startTime"])
            if repeat:
                i = bisect_left(series.opens, start - step)
                return 200, series.rows[i : i + 1] if i < hi and series.opens[i] == start - step else []
            lo = bisect_left(series.opens, start)
            lo, hi = lo, min(hi, lo + limit)
        else:
            lo = max(0, hi - limit)
        rows = series.rows[lo:hi] if lo < hi else []
        return 200, self._in_progress(series.opens[lo:hi], rows, step, _binance_progress)

    def _candles_response(self, req: dict, repeat: bool) -> list:
        key = (req.get("coin", ""), req.get("interval", ""))
        series = self._candles.get(key)
        if series is None or key[1] not in TIMEFRAME_MS:
            return []
        step = TIMEFRAME_MS[key[1]]
        start, end = int(req["startTime"]), int(req.get("endTime") or 2**62)
        now = self._now()
        if now is not None:
            end = min(end, now)
            start = max(start, (now // step) * step - (HL_MAX_CANDLES - 1) * step)
        if repeat:
            i = bisect_left(series.opens, start - step)
            return series.rows[i : i + 1] if i < len(series.opens) and series.opens[i] == start - step else []
        lo = bisect_left(series.opens, start - step + 1)  # a candle overlapping startTime is included
        hi = min(bisect_right(series.opens, end), lo + self.hl_max_rows)
        rows = series.rows[lo:hi] if lo < hi else []
        return self._in_progress(series.opens[lo:hi], rows, step, _hyperliquid_progress)

    def _funding_response(self, body: dict, repeat: bool) -> list:
        series = self._funding.get(body.get("coin", ""), _Series())
        start, end = int(body["startTime"]), int(body.get("endTime") or 2**62)
        now = self._now()
        if now is not None:
            end = min(end, now)
        lo = bisect_left(series.opens, start)
        if repeat:
            return series.rows[lo - 1 : lo] if lo > 0 else []
        hi = min(bisect_right(series.opens, end), lo + self.hl_max_rows)
        return series.rows[lo:hi] if lo < hi else []

    def _default_ctx(self, coin: str) -> dict:
        mid = self._mids.get(coin, "1.0")
        return {
            "dayNtlVlm": "0.0",
            "funding": "0.0000125",
            "markPx": mid,
            "openInterest": "1000.0",
            "oraclePx": mid,
            "prevDayPx": mid,
            "midPx": mid,
            "premium": "0.0",
            "impactPxs": [mid, mid],
            "dayBaseVlm": "0.0",
        }

    def _meta_and_ctxs(self) -> list:
        universe = self._meta["universe"]
        return [self._meta, [self._ctx.get(u["name"]) or self._default_ctx(u["name"]) for u in universe]]

    def _exchange_info(self) -> dict:
        symbols = [_exchange_info_entry(mid, b, q) for mid, (b, q) in sorted(self._binance_markets.items())]
        return {
            "timezone": "UTC",
            "serverTime": self._now() or 0,
            "rateLimits": [],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    # -- request plumbing (called by the handler) ------------------------------------------------
    def _take_fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            return queue.popleft() if queue else None

    def _log(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def _binance_progress(row: list, fraction: float) -> list:
    o = row[1]
    return [row[0], o, o, o, o, _num(float(row[5]) * fraction), *row[6:]]


def _hyperliquid_progress(row: dict, fraction: float) -> dict:
    o = row["o"]
    return {**row, "h": o, "l": o, "c": o, "v": _num(float(row["v"]) * fraction)}


def _make_handler(server: ReplayServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
            with server._lock:
                server._sockets.add(self.connection)

        def finish(self) -> None:
            with server._lock:
                server._sockets.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read `.requests`
            pass

        def do_GET(self) -> None:
            self._handle(None)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            self._handle(body)

        def _handle(self, body: Any) -> None:
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query))
            if parts.path == "/info":
                route = body.get("type", "") if isinstance(body, dict) else ""
            else:
                route = parts.path.rstrip("/").rsplit("/", 1)[-1]
            server._log(RecordedRequest(self.command, parts.path, route, query, body))
            fault = server._take_fault(route)
            if fault is not None and fault.kind == "reset":
                self._reset()
                return
            if fault is not None and fault.kind == "status":
                payload = (
                    fault.body if fault.body is not None else json.dumps({"msg": f"injected {fault.status}"})
                )
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._send(fault.status, payload.encode(), headers, fault.content_type)
                return
            if fault is not None and fault.kind == "timeout" and server._stopping.wait(fault.delay_s):
                return
            status, data = server.respond(route, query, body, fault)
            payload = json.dumps(data, separators=(",", ":")).encode()
            if fault is not None and fault.kind == "truncated":
                payload = payload[: len(payload) // 2]
            self._send(status, payload, {})

        def _send(
            self, status: int, payload: bytes, headers: dict[str, str], content_type: str = "application/json"
        ) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (timeout fault): nothing to answer
                self.close_connection = True

        def _reset(self) -> None:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

    return Handler
