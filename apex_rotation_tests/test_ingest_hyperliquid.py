"""HyperliquidSource against the replay server: the SDK's recorded cassettes, paging real candles, faults."""

from __future__ import annotations

import functools
import json
import logging
import random

import numpy as np
import pandas as pd
import pytest

from apex_rotation.config import AppConfig, load_config
from apex_rotation.ingest.base import OI_COLUMNS, DataError, SourceError
from apex_rotation.ingest.hyperliquid_source import HyperliquidSource
from apex_rotation_tests.replay_server import (
    Fault,
    ReplayServer,
    empty_page,
    frame_from_feather,
    http_status,
    hyperliquid_rows,
    normal,
    recorded_btc_funding,
    recorded_kpepe_candles,
    recorded_meta,
    repeat_last,
    reset,
    timeout,
    truncated,
)
from apex_rotation_tests.shared import real_feather, requires_shared

pytestmark = requires_shared

HOUR_MS = 3_600_000
MAX_RETRIES = 3
CASSETTE_NOW = pd.Timestamp("2023-07-17 21:43:24", tz="UTC")  # the cassettes' Date header


def ts(ms: int) -> pd.Timestamp:
    return pd.Timestamp(ms, unit="ms", tz="UTC")


@functools.cache
def btc_1h() -> pd.DataFrame:
    return frame_from_feather(real_feather("BTC", "1h"))


@pytest.fixture(scope="module")
def cfg() -> AppConfig:
    return load_config(
        overrides={
            "data_sources": {
                "request_timeout_s": 0.3,
                "max_retries": MAX_RETRIES,
                "backoff_base_s": 0.5,
                "hyperliquid_min_interval_s": 0.0,  # the throttle has its own test
            },
            "aliases": {"hyperliquid": {"PEPE": "kPEPE"}},
        }
    )


@pytest.fixture
def server():
    with ReplayServer() as srv:
        yield srv


class Harness:
    def __init__(self, cfg: AppConfig, server: ReplayServer, now: pd.Timestamp, meta: dict | None = None):
        self.sleeps: list[float] = []
        self.source = HyperliquidSource(
            cfg,
            base_url=server.url,
            meta=meta,
            sleep=self.sleeps.append,
            clock=lambda: now,
            rng=random.Random(0),
        )


def bodies(server: ReplayServer, route: str) -> list[dict]:
    return [r.body for r in server.requests if r.route == route]


# --------------------------------------------------------------------------------------- recorded cassettes

KPEPE_SINCE, KPEPE_UNTIL = ts(1684702007000), ts(1684784807000)  # the recorded request


def fetch_kpepe(h: Harness) -> pd.DataFrame:
    return h.source.fetch_ohlcv("PEPE", "1h", KPEPE_SINCE, KPEPE_UNTIL)


def test_kpepe_candles_equal_the_cassette(cfg, server):
    out = fetch_kpepe(Harness(cfg, server, CASSETTE_NOW))
    recorded = recorded_kpepe_candles()
    assert len(out) == 24
    assert out["open_time"].tolist() == [c["t"] for c in recorded]
    for col, key in [("open", "o"), ("high", "h"), ("low", "l"), ("close", "c"), ("volume", "v")]:
        assert out[col].tolist() == [float(c[key]) for c in recorded]
    assert out.loc[0, ["open_time", "open", "close", "volume"]].tolist() == [
        1684699200000,
        0.001601,
        0.001604,
        520665683.0,
    ]
    assert set(out["ticker"]) == {"kPEPE"}  # the venue's coin, via aliases.hyperliquid PEPE -> kPEPE
    assert [r.route for r in server.requests] == ["meta", "candleSnapshot"]  # meta once, then one page
    assert bodies(server, "candleSnapshot") == [
        {
            "type": "candleSnapshot",
            "req": {"coin": "kPEPE", "interval": "1h", "startTime": 1684702007000, "endTime": 1684784807000},
        }
    ]


def test_btc_funding_equals_the_34_row_cassette(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW)
    out = h.source.fetch_funding("BTC", ts(1681923833000), ts(1684811870000))
    recorded = recorded_btc_funding(with_end=True)
    assert len(out) == 34 and list(out.columns) == ["time", "rate", "premium"]
    assert out["time"].tolist() == [r["time"] for r in recorded]  # raw ms, jitter kept
    assert out["time"].iloc[0] == 1683849600048
    assert out["rate"].tolist() == [float(r["fundingRate"]) for r in recorded]
    assert out["premium"].tolist() == [float(r["premium"]) for r in recorded]
    assert (out["rate"].iloc[0], out["premium"].iloc[-1]) == (-0.00061334, -0.00048991)
    assert bodies(server, "fundingHistory") == [
        {"type": "fundingHistory", "coin": "BTC", "startTime": 1681923833000, "endTime": 1684811870000}
    ]  # a short page is the last one


def test_funding_pages_over_the_1038_row_cassette(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW)
    out = h.source.fetch_funding("BTC", ts(1681923833000), CASSETTE_NOW)
    recorded = recorded_btc_funding()
    assert out["time"].tolist() == [r["time"] for r in recorded]
    assert out["rate"].tolist() == [float(r["fundingRate"]) for r in recorded]
    starts = [b["startTime"] for b in bodies(server, "fundingHistory")]
    assert starts == [1681923833000, recorded[499]["time"] + 1, recorded[999]["time"] + 1]  # 500 + 500 + 38


def test_funding_incremental_noop_costs_one_request(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    last = recorded_btc_funding()[-1]["time"]
    out = h.source.fetch_funding("BTC", ts(last + 1), CASSETTE_NOW)
    assert out.empty and list(out.columns) == ["time", "rate", "premium"]
    assert server.count() == 1


def test_open_interest_snapshot(cfg, server):
    server.set_asset_ctx("ETH", openInterest="125000.5", funding="0.0000125", markPx="1903.9")
    h = Harness(cfg, server, CASSETTE_NOW)
    out = h.source.fetch_open_interest(["BTC", "ETH"])
    assert list(out.columns) == OI_COLUMNS
    now_ms = int(CASSETTE_NOW.value // 1_000_000)
    # BTC is the example ctx of api/info/assetctxs.yaml; ETH was set above
    assert out.values.tolist() == [
        ["BTC", now_ms, 0.22168, -0.0000886, 28429.3],
        ["ETH", now_ms, 125000.5, 0.0000125, 1903.9],
    ]
    assert [r.route for r in server.requests] == ["metaAndAssetCtxs"]
    with pytest.raises(SourceError, match=r"no perp for \[\('TIA', 'TIA'\)\]"):
        h.source.fetch_open_interest(["BTC", "TIA"])  # TIA was not listed in July 2023


# --------------------------------------------------------------------------------------- paging real candles


def test_paging_real_candles_clamps_to_the_latest_5000(cfg, server, caplog: pytest.LogCaptureFixture):
    df = btc_1h()
    server.add_candles("BTC", "1h", df)
    now = df["date"].iloc[-1] + pd.Timedelta(minutes=59)  # the last bar is still open
    server.now_ms = now
    caplog.set_level(logging.INFO, logger="apex_rotation.ingest.hyperliquid_source")
    out = Harness(cfg, server, now).source.fetch_ohlcv("BTC", "1h", df["date"].iloc[0], now)
    tail = df.tail(5000)
    np.testing.assert_array_equal(
        out["open_time"].to_numpy(), tail["date"].astype("int64").to_numpy() // 10**6
    )
    for col in ["open", "high", "low", "close"]:
        np.testing.assert_array_equal(out[col].to_numpy()[:-1], tail[col].to_numpy()[:-1])
    last = tail.iloc[-1]
    assert (
        out.iloc[-1][["open", "high", "low", "close"]].tolist() == [last["open"]] * 4
    )  # in progress, kept raw
    assert out["volume"].iloc[-1] == pytest.approx(last["volume"] * 59 / 60, rel=1e-12)
    starts = [b["req"]["startTime"] for b in bodies(server, "candleSnapshot")]
    first = int(tail["date"].iloc[0].value // 10**6)
    assert starts == [first + k * 500 * HOUR_MS for k in range(10)]  # 10 pages of 500, no extra request
    assert any(
        r.getMessage().startswith(
            "clamp_since source=hyperliquid symbol=BTC tf=1h requested=2024-01-01T00:00"
        )
        for r in caplog.records
    )


def test_candle_incremental_noop_costs_one_request(cfg, server):
    df = btc_1h()
    server.add_candles("BTC", "1h", df)
    now = df["date"].iloc[-1] + pd.Timedelta(minutes=30)
    server.now_ms = now
    fresh = Harness(cfg, server, now)
    assert fresh.source.fetch_ohlcv("BTC", "1h", now + pd.Timedelta(hours=1), now).empty
    assert fresh.source.fetch_funding("BTC", now + pd.Timedelta(hours=1), now).empty
    assert server.count() == 0  # since beyond now: nothing sent, not even meta
    h = Harness(cfg, server, now, meta=recorded_meta())
    out = h.source.fetch_ohlcv("BTC", "1h", df["date"].iloc[-1], now)
    assert len(out) == 1 and server.count() == 1


def test_ticker_is_the_coin_the_response_names(cfg, server):
    wrong = hyperliquid_rows(btc_1h().head(3), "ETH", "1h")  # a response for ETH under the BTC request
    server.add_candles("BTC", "1h", wrong)
    h = Harness(cfg, server, CASSETTE_NOW.replace(year=2024), meta=recorded_meta())
    out = h.source.fetch_ohlcv(
        "BTC", "1h", pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-01-01 02:00", tz="UTC")
    )
    assert out["ticker"].tolist() == ["ETH"] * 3  # left for clean_ohlcv to reject


BAD_PAGES = {"empty": empty_page, "repeat_last": repeat_last}


@pytest.mark.parametrize("make_fault", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_bad_candle_page_mid_history_is_retried(cfg, server, make_fault):
    df = btc_1h()
    server.add_candles("BTC", "1h", df)
    server.inject("candleSnapshot", normal(), make_fault())
    now = df["date"].iloc[-1] + pd.Timedelta(minutes=30)
    h = Harness(cfg, server, now, meta=recorded_meta())
    out = h.source.fetch_ohlcv("BTC", "1h", df["date"].iloc[-1200], now)
    assert len(out) == 1200 and out["open_time"].is_unique  # not the 500 (or 501) of page one
    assert server.count("candleSnapshot") == 4 and len(h.sleeps) == 1


@pytest.mark.parametrize("make_fault", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_bad_candle_page_that_persists_fails_the_symbol(cfg, server, make_fault):
    df = btc_1h()
    server.add_candles("BTC", "1h", df)
    server.inject("candleSnapshot", normal(), *[make_fault() for _ in range(MAX_RETRIES + 1)])
    now = df["date"].iloc[-1] + pd.Timedelta(minutes=30)
    h = Harness(cfg, server, now, meta=recorded_meta())
    with pytest.raises(
        SourceError,
        match=r"hyperliquid candleSnapshot symbol=BTC coin=BTC tf=1h span=\[2024-07-18T04:00:00\+00:00, "
        r"2024-09-06T03:30:00\+00:00\] .*gave up after 4 tries: BadPage: hyperliquid:BTC:1h: "
        r"(an empty|a repeated) page at 2024-08-08T00:00:00\+00:00",
    ):
        h.source.fetch_ohlcv("BTC", "1h", df["date"].iloc[-1200], now)


@pytest.mark.parametrize("make_fault", BAD_PAGES.values(), ids=BAD_PAGES.keys())
def test_a_bad_funding_page_mid_history_is_retried_then_fails(cfg, server, make_fault):
    recorded = recorded_btc_funding()
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    server.inject("fundingHistory", normal(), make_fault())
    out = h.source.fetch_funding("BTC", ts(1681923833000), CASSETTE_NOW)
    assert out["time"].tolist() == [r["time"] for r in recorded]  # all 1038, not the 500 of page one
    assert server.count("fundingHistory") == 4 and len(h.sleeps) == 1

    server.inject("fundingHistory", normal(), *[make_fault() for _ in range(MAX_RETRIES + 1)])
    with pytest.raises(
        SourceError,
        match=r"hyperliquid fundingHistory symbol=BTC coin=BTC span=\[2023-04-19T.*, 2023-07-17T21:43:24\+00:00\]"
        r" since=.*gave up after 4 tries: BadPage: .*page at 2023-06-25",
    ):
        h.source.fetch_funding("BTC", ts(1681923833000), CASSETTE_NOW)


def test_a_short_funding_page_short_of_the_present_is_followed(cfg, server):
    """Should the 500-row cap shrink, a short page in the middle costs a request, never rows."""
    server.hl_max_rows = 300
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    out = h.source.fetch_funding("BTC", ts(1681923833000), CASSETTE_NOW)
    assert len(out) == 1038 and server.count("fundingHistory") == 4 and h.sleeps == []


# --------------------------------------------------------------------------------------- faults

NO_CODE = json.dumps({"error": "rate limited"})  # a 4xx JSON body without "code": the SDK raises KeyError
RETRIED = {
    "429": http_status(429),
    "429_no_code": http_status(429, body=NO_CODE),
    "500": http_status(500),
    "502": http_status(502),
    "503": http_status(503),
    "timeout": timeout(1.0),
    "reset": reset(),
    "truncated_json": truncated(),
}


@pytest.mark.parametrize("fault", RETRIED.values(), ids=RETRIED.keys())
def test_fault_is_retried_then_succeeds(cfg, server, fault: Fault):
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    server.inject("candleSnapshot", fault)
    out = fetch_kpepe(h)
    assert out["close"].tolist() == [float(c["c"]) for c in recorded_kpepe_candles()]
    assert server.count("candleSnapshot") == 2
    assert len(h.sleeps) == 1 and 0.0 <= h.sleeps[0] <= 0.5


def test_retry_after_is_honoured(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW)
    server.inject(
        "fundingHistory", http_status(429, retry_after=3, body=NO_CODE), http_status(503, retry_after=1)
    )
    assert len(h.source.fetch_funding("BTC", ts(1681923833000), ts(1684811870000))) == 34
    assert h.sleeps == [3.0, 1.0]


def test_retries_exhausted_names_the_symbol(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    server.inject("candleSnapshot", *[http_status(502)] * (MAX_RETRIES + 1))
    with pytest.raises(SourceError, match=r"symbol=PEPE coin=kPEPE .*gave up after 4 tries: .*HTTP 502"):
        fetch_kpepe(h)
    assert server.count("candleSnapshot") == MAX_RETRIES + 1 and len(h.sleeps) == MAX_RETRIES


@pytest.mark.parametrize(
    "fault",
    [http_status(422, body=json.dumps({"code": 422, "msg": "bad coin"})), http_status(400, body=NO_CODE)],
    ids=["422_with_code", "400_without_code"],
)
def test_client_errors_are_not_retried(cfg, server, fault: Fault):
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    server.inject("candleSnapshot", fault)
    with pytest.raises(SourceError, match=rf"symbol=PEPE coin=kPEPE .*HTTP {fault.status}"):
        fetch_kpepe(h)
    assert server.count("candleSnapshot") == 1 and h.sleeps == []


def test_meta_failure_is_retried_too(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW)
    server.inject("meta", reset(), truncated())
    assert len(fetch_kpepe(h)) == 24
    assert server.count("meta") == 3 and len(h.sleeps) == 2


def test_unknown_coin_fails_before_any_request_for_it(cfg, server):
    h = Harness(cfg, server, CASSETTE_NOW)
    with pytest.raises(SourceError, match="hyperliquid lists no perp 'TIA' for basket symbol TIA"):
        h.source.fetch_ohlcv("TIA", "1h", KPEPE_SINCE, KPEPE_UNTIL)
    assert [r.route for r in server.requests] == ["meta"]


def test_funding_rows_for_another_coin_are_an_error(cfg, server):
    server.add_funding("ETH", [{**r, "coin": "BTC"} for r in recorded_btc_funding(with_end=True)])
    h = Harness(cfg, server, CASSETTE_NOW, meta=recorded_meta())
    with pytest.raises(
        DataError, match=r"hyperliquid:ETH:\?: fundingHistory for ETH returned rows of \['BTC'\]"
    ):
        h.source.fetch_funding("ETH", ts(1681923833000), ts(1684811870000))


def test_construction_sends_nothing_and_always_sets_a_timeout(cfg):
    src = HyperliquidSource(load_config())
    assert src.info.timeout == 10.0 and src.info.base_url == "https://api.hyperliquid.xyz"
    assert (src.supports_funding, src.supports_open_interest, src.has_open_interest_history) == (
        True,
        True,
        False,
    )
    with pytest.raises(DataError, match="has no timezone"):
        src.fetch_ohlcv("BTC", "1h", pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02"))
    src.close()


def test_requests_are_spaced_by_the_weight_budget(server):
    """Hyperliquid's SDK has no rate limiter: the source spaces its calls (default one a second)."""
    cfg = load_config(overrides={"data_sources": {"hyperliquid_min_interval_s": 0.2}})
    waits: list[float] = []
    src = HyperliquidSource(cfg, base_url=server.url, sleep=waits.append)
    src.fetch_open_interest(["BTC"])  # meta, then metaAndAssetCtxs
    src.fetch_open_interest(["BTC"])
    assert server.count() == 2 and len(waits) == 1 and 0 < waits[0] <= 0.2  # the second call waited
    assert load_config().data_sources.hyperliquid_min_interval_s == 1.0
