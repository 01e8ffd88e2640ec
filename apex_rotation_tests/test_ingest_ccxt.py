"""CcxtSource against the replay server: recorded Binance responses, paging real candles, every fault kind."""

from __future__ import annotations

import functools
import random

import numpy as np
import pandas as pd
import pytest

from apex_rotation.bars import RAW_OHLCV_COLUMNS
from apex_rotation.config import AppConfig, load_config
from apex_rotation.ingest.base import DataError, SourceError
from apex_rotation.ingest.ccxt_source import CcxtSource
from apex_rotation_tests.replay_server import (
    INVALID_SYMBOL,
    Fault,
    ReplayServer,
    binance_ohlcv_case,
    empty_page,
    frame_from_feather,
    http_status,
    normal,
    repeat_last,
    reset,
    timeout,
    truncated,
)
from apex_rotation_tests.shared import AURANG_2025H1, real_feather, requires_shared

pytestmark = requires_shared

HOUR_MS = 3_600_000
MAX_RETRIES = 3


def ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


@functools.cache
def feather(symbol: str, dataset=None) -> pd.DataFrame:
    path = real_feather(symbol, "1h") if dataset is None else real_feather(symbol, "1h", dataset)
    return frame_from_feather(path)


@pytest.fixture(scope="module")
def cfg() -> AppConfig:
    return load_config(
        overrides={
            "data_sources": {"request_timeout_s": 0.3, "max_retries": MAX_RETRIES, "backoff_base_s": 0.5}
        }
    )


@pytest.fixture
def server():
    with ReplayServer() as srv:
        yield srv


class Harness:
    """A source on the server with a fixed clock and a recorded (not real) sleep."""

    def __init__(self, cfg: AppConfig, server: ReplayServer, now: pd.Timestamp):
        self.sleeps: list[float] = []
        self.source = CcxtSource(
            cfg,
            api_url=server.url,
            enable_rate_limit=False,
            sleep=self.sleeps.append,
            clock=lambda: now,
            rng=random.Random(0),
        )


def rows(frame: pd.DataFrame) -> list[list]:
    return [list(r) for r in frame[RAW_OHLCV_COLUMNS].itertuples(index=False)]


def klines_queries(server: ReplayServer) -> list[dict[str, str]]:
    return [r.query for r in server.requests if r.route == "klines"]


# --------------------------------------------------------------------------------------- recorded responses

REC_SINCE, REC_UNTIL = ts(1706628191000), ts(1706637600000)  # the recorded case: BTC/USDT 1h, 3 raw rows
REC_NOW = pd.Timestamp("2024-02-01", tz="UTC")


def fetch_recorded(h: Harness) -> pd.DataFrame:
    return h.source.fetch_ohlcv("BTC", "1h", REC_SINCE, REC_UNTIL)


def test_parses_the_recorded_binance_response(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    out = fetch_recorded(h)
    assert rows(out) == binance_ohlcv_case()["parsedResponse"]
    assert out["ticker"].tolist() == ["BTC"] * 3
    assert out.dtypes["open_time"] == np.int64 and out.dtypes["close"] == np.float64
    assert [r.path for r in server.requests] == ["/api/v3/exchangeInfo", "/api/v3/klines"]
    assert klines_queries(server) == [
        {
            "symbol": "BTCUSDT",
            "interval": "1h",
            "startTime": "1706628191000",
            "endTime": "1706637600000",
            "limit": "1000",
        }
    ]


def test_paging_over_5980_real_bars_equals_the_feather_file(cfg, server):
    df = feather("BTC")
    server.add_klines("BTC", "USDT", "1h", df)
    now = df["date"].iloc[-1] + pd.Timedelta(minutes=70)  # every bar closed, the 04:00 bar may exist
    out = Harness(cfg, server, now).source.fetch_ohlcv("BTC", "1h", df["date"].iloc[0], now)
    expected_open = df["date"].astype("int64").to_numpy() // 1_000_000
    np.testing.assert_array_equal(out["open_time"].to_numpy(), expected_open)
    for col in ["open", "high", "low", "close", "volume"]:
        np.testing.assert_array_equal(out[col].to_numpy(), df[col].to_numpy())
    starts = [int(q["startTime"]) for q in klines_queries(server)]
    # six full-or-last pages, then one asking for the 04:00 bar (open by `now`) that the file does not have
    assert starts == [int(expected_open[0]) + k * 1000 * HOUR_MS for k in range(6)] + [
        int(expected_open[-1]) + HOUR_MS
    ]


def test_alias_switch_fetches_matic_then_pol(cfg, server):
    """The fixture's MATIC bars end 2024-09-07 01:00, so the switch is moved there: an empty MATIC page
    70 bars before the span's end would be a fault, not the end of MATIC's history."""
    switch = "2024-09-07T02:00:00Z"
    spans = [{"ticker": "MATIC", "until": switch}, {"ticker": "POL", "since": switch}]
    cfg = load_config(
        overrides={"data_sources": cfg.data_sources.model_dump(), "aliases": {"binance": {"MATIC": spans}}}
    )
    matic, pol = feather("MATIC"), feather("POL", AURANG_2025H1)
    server.add_klines("MATIC", "USDT", "1h", matic)
    server.add_klines("POL", "USDT", "1h", pol)
    since, until = pd.Timestamp("2024-09-06", tz="UTC"), pd.Timestamp("2025-01-01 03:00", tz="UTC")
    h = Harness(cfg, server, pd.Timestamp("2025-02-01", tz="UTC"))
    out = h.source.fetch_ohlcv("MATIC", "1h", since, until)
    n_matic, n_pol = int((matic["date"] >= since).sum()), int((pol["date"] <= until).sum())
    assert (n_matic, n_pol) == (26, 4)
    assert out["ticker"].tolist() == ["MATIC"] * n_matic + ["POL"] * n_pol
    assert out["close"].iloc[-1] == pol.loc[pol["date"] == until, "close"].item()
    # POL's first page starts four months after the switch (where the fixture starts): like a listing date
    assert [q["symbol"] for q in klines_queries(server)] == ["MATICUSDT", "POLUSDT"]
    assert klines_queries(server)[0]["endTime"] == str(pd.Timestamp(switch).value // 10**6 - 1)


# --------------------------------------------------------------------------------------- request economy


def test_in_progress_bar_is_kept_and_an_incremental_noop_costs_one_request(cfg, server):
    df = feather("BTC")
    server.add_klines("BTC", "USDT", "1h", df)
    now = pd.Timestamp("2024-09-06 03:30", tz="UTC")  # the 03:00 bar is half done
    server.now_ms = now
    h = Harness(cfg, server, now)
    first = h.source.fetch_ohlcv("BTC", "1h", pd.Timestamp("2024-09-05", tz="UTC"), now)
    assert len(first) == 28 and server.count() == 2  # exchangeInfo + one klines page
    last = df.iloc[-1]
    expected = [int(last["date"].value // 1_000_000), last["open"], last["open"], last["open"], last["open"]]
    assert rows(first)[-1] == [*expected, last["volume"] * 0.5]  # raw: the cleaner drops it, not the source

    again = h.source.fetch_ohlcv("BTC", "1h", pd.Timestamp("2024-09-06 03:00", tz="UTC"), now)
    assert rows(again) == rows(first)[-1:]
    assert server.count() == 3 and server.count("exchangeInfo") == 1


def test_markets_load_once_per_instance_with_retries(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    server.inject("exchangeInfo", truncated())
    assert rows(fetch_recorded(h)) == binance_ohlcv_case()["parsedResponse"]
    assert rows(fetch_recorded(h)) == binance_ohlcv_case()["parsedResponse"]
    assert server.count("exchangeInfo") == 2 and server.count("klines") == 2 and len(h.sleeps) == 1


def test_since_beyond_now_sends_nothing(cfg, server):
    now = pd.Timestamp("2024-09-06 03:30", tz="UTC")
    out = Harness(cfg, server, now).source.fetch_ohlcv("BTC", "1h", now + pd.Timedelta(hours=1), now)
    assert out.empty and list(out.columns) == [*RAW_OHLCV_COLUMNS, "ticker"]
    assert server.count() == 0


# --------------------------------------------------------------------------------------- faults

RETRIED = {
    "429": http_status(429),
    "418": http_status(418),
    "500": http_status(500),
    "502": http_status(502),
    "503": http_status(503),
    "timeout": timeout(1.0),
    "reset": reset(),
    "truncated_json": truncated(),
}


@pytest.mark.parametrize("fault", RETRIED.values(), ids=RETRIED.keys())
def test_fault_is_retried_then_succeeds(cfg, server, fault: Fault):
    h = Harness(cfg, server, REC_NOW)
    server.inject("klines", fault)
    assert rows(fetch_recorded(h)) == binance_ohlcv_case()["parsedResponse"]
    assert server.count("klines") == 2
    assert len(h.sleeps) == 1 and 0.0 <= h.sleeps[0] <= 0.5  # full jitter under the first cap


def test_retry_after_is_honoured(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    server.inject("klines", http_status(429, retry_after=7), http_status(418, retry_after=2))
    assert rows(fetch_recorded(h)) == binance_ohlcv_case()["parsedResponse"]
    assert h.sleeps == [7.0, 2.0]


def test_retry_after_beyond_backoff_max_gives_up(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    server.inject("klines", http_status(418, retry_after=600))
    with pytest.raises(SourceError, match=r"symbol=BTC .*server asks to wait 600s"):
        fetch_recorded(h)
    assert server.count("klines") == 1 and h.sleeps == []


def test_retries_exhausted_names_the_symbol(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    server.inject("klines", *[http_status(503)] * (MAX_RETRIES + 1))
    with pytest.raises(SourceError, match=r"symbol=BTC pair=BTC/USDT .*gave up after 4 tries: .*503"):
        fetch_recorded(h)
    assert server.count("klines") == MAX_RETRIES + 1 and len(h.sleeps) == MAX_RETRIES


def test_invalid_symbol_from_the_server_is_not_retried(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    server.inject("klines", http_status(400, body=INVALID_SYMBOL))
    with pytest.raises(SourceError, match=r"symbol=BTC pair=BTC/USDT .*binance does not list it.*BadSymbol"):
        fetch_recorded(h)
    assert server.count("klines") == 1 and h.sleeps == []


def test_pair_missing_from_the_markets_fails_before_any_klines_request(cfg, server):
    h = Harness(cfg, server, REC_NOW)
    with pytest.raises(SourceError, match=r"symbol=SOL pair=SOL/USDT .*does not list it"):
        h.source.fetch_ohlcv("SOL", "1h", REC_SINCE, REC_UNTIL)
    assert server.count("klines") == 0 and h.sleeps == []


BAD_PAGES = {"empty": empty_page, "repeat_last": repeat_last}


@pytest.mark.parametrize("make_fault", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_bad_page_mid_history_is_retried_not_taken_for_the_end(cfg, server, make_fault):
    df = feather("BTC")
    server.add_klines("BTC", "USDT", "1h", df)
    server.inject("klines", normal(), make_fault())
    now = df["date"].iloc[-1] + pd.Timedelta(hours=2)
    h = Harness(cfg, server, now)
    out = h.source.fetch_ohlcv("BTC", "1h", df["date"].iloc[0], now)
    assert len(out) == 5980 and out["open_time"].is_monotonic_increasing  # not the 1000 of page one
    assert server.count("klines") == 8 and len(h.sleeps) == 1  # 6 pages + the retried one + the end


@pytest.mark.parametrize("make_fault", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_bad_page_that_persists_fails_the_symbol_naming_the_span(cfg, server, make_fault):
    df = feather("BTC")
    server.add_klines("BTC", "USDT", "1h", df)
    server.inject("klines", normal(), *[make_fault() for _ in range(MAX_RETRIES + 1)])
    now = df["date"].iloc[-1] + pd.Timedelta(hours=2)
    with pytest.raises(
        SourceError,
        match=r"binance fetch_ohlcv symbol=BTC pair=BTC/USDT tf=1h "
        r"span=\[2024-01-01T00:00:00\+00:00, 2024-09-06T05:00:00\+00:00\] since=1707667200000: "
        r"gave up after 4 tries: BadPage: .*(empty|repeated) page at 2024-02-11T16:00:00\+00:00",
    ):
        Harness(cfg, server, now).source.fetch_ohlcv("BTC", "1h", df["date"].iloc[0], now)


def test_an_empty_page_near_the_present_is_the_end(cfg, server):
    """Binance has no bar yet for the last closed hour: an empty page there ends the history quietly."""
    df = feather("BTC")
    server.add_klines("BTC", "USDT", "1h", df)
    now = df["date"].iloc[-1] + pd.Timedelta(hours=2, minutes=30)  # 2 bars after the last one served
    h = Harness(cfg, server, now)
    out = h.source.fetch_ohlcv("BTC", "1h", df["date"].iloc[-10], now)
    assert len(out) == 10 and server.count("klines") == 2 and h.sleeps == []


# --------------------------------------------------------------------------------------- construction


def test_production_defaults_and_bad_arguments(cfg):
    src = CcxtSource(load_config())
    assert src.exchange.enableRateLimit is True and src.exchange.timeout == 10_000
    assert src.exchange.urls["api"]["public"] == "https://api.binance.com/api/v3"
    assert src.venue == "binance" and src.name == "ccxt"
    with pytest.raises(DataError, match="has no timezone"):
        src.fetch_ohlcv("BTC", "1h", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02"))
    with pytest.raises(DataError, match="unknown timeframe"):
        src.fetch_ohlcv("BTC", "5m", REC_SINCE, REC_UNTIL)
    with pytest.raises(SourceError, match="ccxt has no exchange 'nosuchx'"):
        CcxtSource(cfg, exchange_id="nosuchx")
