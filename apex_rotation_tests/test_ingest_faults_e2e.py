"""Every fault, in the middle of a multi-page fetch, end to end: source → `StoreRefresher` → a temp ParquetStore.

The replay server (127.0.0.1) serves real candles and the recorded funding; each test aims one fault at the
second of three pages (klines, candleSnapshot, fundingHistory) or at the open-interest snapshot
(metaAndAssetCtxs: Hyperliquid has no open-interest history to page), and compares the store with a
fault-free run. A transient fault must leave a store identical to it; a fault that persists must fail the
symbol (or its perps data) by name, leaving the store as it was before the refresh.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from apex_rotation.config import AppConfig, load_config
from apex_rotation.ingest.ccxt_source import CcxtSource
from apex_rotation.ingest.hyperliquid_source import HyperliquidSource
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import RefreshSummary, StoreRefresher
from apex_rotation.store.tables import BARS, FUNDING, OPEN_INTEREST
from apex_rotation_tests.replay_server import (
    Fault,
    ReplayServer,
    empty_page,
    frame_from_feather,
    html_page,
    http_date,
    http_status,
    json_error,
    normal,
    recorded_btc_funding,
    repeat_last,
    reset,
    timeout,
    truncated,
)
from apex_rotation_tests.shared import real_feather, requires_shared

pytestmark = requires_shared

MAX_RETRIES = 2
TRIES = MAX_RETRIES + 1
CFG_OVERRIDES = {
    "request_timeout_s": 0.25,
    "max_retries": MAX_RETRIES,
    "backoff_base_s": 0.001,  # sleeps are recorded, not slept, but keep them tiny anyway
    "backoff_max_s": 5.0,
    "hyperliquid_min_interval_s": 0.0,
}

FAULTS = {
    "429": lambda: http_status(429),
    "418": lambda: http_status(418),
    "503": lambda: http_status(503),
    "timeout": lambda: timeout(1.0),
    "reset": reset,
    "truncated_json": truncated,
    "empty_page": empty_page,
    "repeated_page": repeat_last,
    "html_200": html_page,
    "json_error_200": json_error,
    "retry_after_http_date": lambda: http_status(429, retry_after=http_date(2)),
}


@dataclass(frozen=True)
class Scenario:
    """One venue's refresh: where the fault goes, the clock of the stored past and of the refresh."""

    name: str
    route: str
    before: pd.Timestamp  # the previous refresh (the store a persistent fault must leave intact)
    now: pd.Timestamp  # the refresh under test: three pages on `route`
    history_days: int
    table: str  # what the route feeds
    error_key: str  # where RefreshSummary reports its failure
    error_text: str  # what that error must name
    paged: bool = True


HL_BEFORE, HL_NOW = pd.Timestamp("2023-05-20 00:30", tz="UTC"), pd.Timestamp("2023-07-17 21:43:24", tz="UTC")


def hyperliquid(name: str, route: str, table: str, error_key: str, error_text: str) -> Scenario:
    """A Hyperliquid scenario: the recorded funding's window (the cassettes end 2023-07-17)."""
    return Scenario(
        name, route, HL_BEFORE, HL_NOW, 60, table, error_key, error_text, route != "metaAndAssetCtxs"
    )


SCENARIOS = {
    s.name: s
    for s in [
        Scenario(
            "binance_klines",
            "klines",
            pd.Timestamp("2024-01-05 00:30", tz="UTC"),
            pd.Timestamp("2024-04-01 00:30", tz="UTC"),
            91,
            BARS,
            "BTC",
            "binance fetch_ohlcv symbol=BTC pair=BTC/USDT tf=1h "
            "span=[2024-01-05T00:00:00+00:00, 2024-03-31T23:00:00+00:00]",
        ),
        hyperliquid(
            "hyperliquid_candles",
            "candleSnapshot",
            BARS,
            "BTC",
            "hyperliquid candleSnapshot symbol=BTC coin=BTC tf=1h "
            "span=[2023-05-20T00:00:00+00:00, 2023-07-17T20:00:00+00:00]",
        ),
        hyperliquid(
            "hyperliquid_funding",
            "fundingHistory",
            FUNDING,
            "BTC:perps",
            "hyperliquid fundingHistory symbol=BTC coin=BTC "
            "span=[2023-05-20T00:00:00.030000+00:00, 2023-07-17T21:43:24+00:00]",
        ),
        hyperliquid(
            "hyperliquid_open_interest",
            "metaAndAssetCtxs",
            OPEN_INTEREST,
            "open_interest",
            "hyperliquid metaAndAssetCtxs symbols=['BTC']",
        ),
    ]
}
CASES = [
    pytest.param(s, name, make, id=f"{s.name}-{name}")
    for s in SCENARIOS.values()
    for name, make in FAULTS.items()
    if s.paged or name != "repeated_page"  # a snapshot has no previous page to repeat
]


@functools.cache
def btc_1h() -> pd.DataFrame:
    return frame_from_feather(real_feather("BTC", "1h"))


@functools.cache
def cfg_for(history_days: int) -> AppConfig:
    return load_config(
        overrides={
            "basket": {"symbols": ["BTC", "ETH"]},
            "data_sources": {**CFG_OVERRIDES, "history_days": history_days},
        }
    )


def serve(scenario: Scenario) -> ReplayServer:
    """A server with BTC's real 1h candles (for Hyperliquid moved to end at the cassettes' date) and the
    recorded BTC funding; the caller stops it."""
    srv = ReplayServer()
    df = btc_1h()
    if scenario.route == "klines":
        srv.add_klines("BTC", "USDT", "1h", df)
    else:
        shift = pd.Timestamp("2023-07-17 21:00", tz="UTC") - df["date"].iloc[-1]
        srv.add_candles("BTC", "1h", df.assign(date=df["date"] + shift))
    return srv


class Run:
    """One refresh of BTC at `now` into `root`, against `srv`, with recorded sleeps."""

    def __init__(self, scenario: Scenario, srv: ReplayServer, root: Path, now: pd.Timestamp):
        self.sleeps: list[float] = []
        cfg = cfg_for(scenario.history_days)
        srv.now_ms = now
        if scenario.route == "klines":
            source = CcxtSource(
                cfg, api_url=srv.url, enable_rate_limit=False, sleep=self.sleeps.append, clock=lambda: now
            )
            perps = None
        else:
            source = HyperliquidSource(cfg, base_url=srv.url, sleep=self.sleeps.append, clock=lambda: now)
            perps = source
        with StoreRefresher(cfg, ParquetStore(root), source, perps_source=perps, now=now) as plane:
            self.summary: RefreshSummary = plane.refresh({"BTC": ["1h"]})


def stored(root: Path) -> dict[str, pd.DataFrame]:
    store = ParquetStore(root)
    out = {}
    for table, tf in [(BARS, "1h"), (FUNDING, None), (OPEN_INTEREST, None)]:
        if store.exists(table, tf, "BTC"):
            out[str(table)] = store.read(table, tf, "BTC")
    return out


def assert_same_store(got: dict[str, pd.DataFrame], expected: dict[str, pd.DataFrame]) -> None:
    assert sorted(got) == sorted(expected)
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory):
    """Per scenario, built once: the store after the previous refresh, and the fault-free result of the
    refresh under test (from scratch and continuing that previous store)."""
    cache: dict[str, tuple[Path, dict, dict]] = {}

    def get(scenario: Scenario) -> tuple[Path, dict, dict]:
        if scenario.name not in cache:
            base = tmp_path_factory.mktemp(scenario.name)
            with serve(scenario) as srv:
                assert Run(scenario, srv, base / "fresh", scenario.now).summary.ok
                before = Run(scenario, srv, base / "before", scenario.before)
                assert before.summary.ok, before.summary.errors
                shutil.copytree(base / "before", base / "continued")
                continued = Run(scenario, srv, base / "continued", scenario.now)
                assert continued.summary.ok, continued.summary.errors
                requests = srv.count(scenario.route)
            cache[scenario.name] = (base / "before", stored(base / "fresh"), stored(base / "continued"))
            assert requests >= (3 if scenario.paged else 1)
        return cache[scenario.name]

    return get


def aim(srv: ReplayServer, scenario: Scenario, *faults: Fault) -> None:
    """Queue `faults` for the second page of the scenario's route (the snapshot: its only request)."""
    srv.inject(scenario.route, *([normal()] if scenario.paged else []), *faults)


@pytest.mark.parametrize(("scenario", "fault_name", "make_fault"), CASES)
def test_transient_fault_mid_fetch_leaves_the_store_a_fault_free_run_makes(
    scenario: Scenario, fault_name: str, make_fault, reference, tmp_path: Path
):
    _, fresh, _ = reference(scenario)
    with serve(scenario) as srv:
        aim(srv, scenario, make_fault())
        run = Run(scenario, srv, tmp_path, scenario.now)
        assert srv.pending_faults(scenario.route) == 0  # the fault was met
    assert run.summary.ok, run.summary.errors
    assert_same_store(stored(tmp_path), fresh)
    assert len(run.sleeps) == 1
    if fault_name == "retry_after_http_date":
        assert 0.0 < run.sleeps[0] <= 2.0  # the server's date was obeyed, not the (tiny) backoff


@pytest.mark.parametrize(("scenario", "fault_name", "make_fault"), CASES)
def test_persistent_fault_fails_the_symbol_and_keeps_the_previous_store(
    scenario: Scenario, fault_name: str, make_fault, reference, tmp_path: Path
):
    before_root, _, continued = reference(scenario)
    shutil.copytree(before_root, tmp_path, dirs_exist_ok=True)
    before = stored(tmp_path)
    with serve(scenario) as srv:
        aim(srv, scenario, *[make_fault() for _ in range(TRIES)])
        run = Run(scenario, srv, tmp_path, scenario.now)
    errors = run.summary.errors
    assert list(errors) == [scenario.error_key]
    assert scenario.error_text in errors[scenario.error_key]
    assert f"gave up after {TRIES} tries" in errors[scenario.error_key]
    if scenario.table == BARS:  # a symbol whose bars fail gets no perps data either: all as before
        expected = before
    else:  # only what the failing request feeds stays as before; the rest is refreshed
        expected = {**continued, str(scenario.table): before[str(scenario.table)]}
    assert_same_store(stored(tmp_path), expected)


def test_the_recorded_funding_spans_three_pages_in_the_refresh_window():
    """The funding scenario's premise: ≥1001 recorded rows after its previous refresh."""
    previous = SCENARIOS["hyperliquid_funding"].before.value // 1_000_000
    assert sum(r["time"] > previous for r in recorded_btc_funding()) > 1000
