"""The data plane end to end: source → clean → bars (1h + resampled) → audit → audited_bars."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from apex_rotation.config import load_config
from apex_rotation.features import load
from apex_rotation.ingest.ccxt_source import CcxtSource
from apex_rotation.ingest.files import FilesSource
from apex_rotation.ingest.registry import make_perps_source, make_source
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.query import query
from apex_rotation.store.refresh import StoreRefresher, audit_store
from apex_rotation.store.tables import AUDITED_BARS, BARS, FUNDING, GROUND_TRUTH, OPEN_INTEREST
from apex_rotation_tests.replay_server import ReplayServer, frame_from_feather
from apex_rotation_tests.shared import GENETRADER_2024, real_feather, requires_shared

SMALL = {"basket": {"symbols": ["BTC", "ETH", "SOL", "LINK"]}, "synthetic": {"days": 60}}


@pytest.fixture(scope="module")
def small_cfg():
    return load_config(overrides=SMALL)


def synthetic_plane(cfg, root, now=None) -> StoreRefresher:
    source = SyntheticSource(cfg)
    return StoreRefresher(
        cfg, ParquetStore(root), source, perps_source=make_perps_source(cfg, source), now=now
    )


def test_synthetic_refresh_fills_every_partition(small_cfg, tmp_path):
    summary = synthetic_plane(small_cfg, tmp_path).refresh_all(small_cfg.basket.names)
    assert summary.ok, summary.errors
    store = ParquetStore(tmp_path)
    for symbol in small_cfg.basket.names:
        assert [s.rows for s in summary.symbols if s.symbol == symbol] == [{"1h": 1440, "4h": 360, "1d": 60}]
        for tf, n in {"1h": 1440, "4h": 360, "1d": 60}.items():
            audited = store.read(AUDITED_BARS, tf, symbol)
            assert len(audited) == n and not audited["filled"].any()
        assert len(store.read(FUNDING, None, symbol)) == 1440
        assert len(store.read(OPEN_INTEREST, None, symbol)) == 1440
    assert len(store.read(GROUND_TRUTH, None, "synthetic")) > 0
    reports = json.loads((tmp_path / "reports" / "audit.json").read_text())
    assert len(reports) == 12 and {r["missing"] for r in reports} == {0}
    # 4h/1d are the 1h bars resampled on UTC boundaries
    h1, h4 = store.read(BARS, "1h", "SOL"), store.read(BARS, "4h", "SOL")
    first4 = h1.iloc[:4]
    assert h4.iloc[0][["open", "high", "low", "close"]].tolist() == [
        first4["open"].iloc[0],
        first4["high"].max(),
        first4["low"].min(),
        first4["close"].iloc[-1],
    ]
    assert h4.index.hour.isin([0, 4, 8, 12, 16, 20]).all()


def test_repeated_refresh_is_a_noop_with_identical_statistics(small_cfg, tmp_path):
    plane = synthetic_plane(small_cfg, tmp_path)
    first = plane.refresh_all(small_cfg.basket.names)
    files = {p: p.stat().st_mtime_ns for p in (tmp_path / "bars" / "1h").iterdir()}
    second = synthetic_plane(small_cfg, tmp_path).refresh_all(small_cfg.basket.names)
    assert [s.new_rows for s in second.symbols] == [0, 0, 0, 0]
    assert [r.model_dump() for r in second.reports] == [r.model_dump() for r in first.reports]
    assert {p: p.stat().st_mtime_ns for p in files} == files  # the 1h base was not rewritten


def test_incremental_refresh_equals_one_full_refresh(small_cfg, tmp_path):
    end = pd.Timestamp(small_cfg.synthetic.end)
    partial = synthetic_plane(
        small_cfg, tmp_path / "inc", now=end - pd.Timedelta(days=10) + pd.Timedelta(minutes=30)
    )
    partial.refresh_all(small_cfg.basket.names)
    assert len(ParquetStore(tmp_path / "inc").read(BARS, "1h", "BTC")) == 1440 - 10 * 24
    later = synthetic_plane(small_cfg, tmp_path / "inc").refresh_all(small_cfg.basket.names)
    assert {s.new_rows for s in later.symbols} == {240}
    synthetic_plane(small_cfg, tmp_path / "full").refresh_all(small_cfg.basket.names)
    for tf in ("1h", "4h", "1d"):
        a = ParquetStore(tmp_path / "inc").read(AUDITED_BARS, tf, "ETH")
        b = ParquetStore(tmp_path / "full").read(AUDITED_BARS, tf, "ETH")
        pd.testing.assert_frame_equal(a, b)
    fa = ParquetStore(tmp_path / "inc").read(FUNDING, None, "SOL")
    fb = ParquetStore(tmp_path / "full").read(FUNDING, None, "SOL")
    pd.testing.assert_frame_equal(fa, fb)


def test_load_returns_identical_arrays_and_selects(small_cfg, tmp_path):
    synthetic_plane(small_cfg, tmp_path).refresh_all(["BTC"])
    a = load("BTC", "1h", root=tmp_path)
    b = load("BTC", "1h", root=tmp_path)
    assert a.equals(b) and a.index.tz is not None and len(a) == 1440
    part = load("BTC", "4h", cols=["close", "filled"], start="2025-12-01", end="2025-12-02", root=tmp_path)
    assert list(part.columns) == ["close", "filled"] and len(part) == 7
    with pytest.raises(KeyError, match="nope"):
        load("BTC", "1h", cols=["nope"], root=tmp_path)


def test_duckdb_queries_the_store(small_cfg, tmp_path):
    synthetic_plane(small_cfg, tmp_path).refresh_all(small_cfg.basket.names)
    counts = query(
        tmp_path, "SELECT symbol, count(*) AS n FROM audited_bars_4h GROUP BY symbol ORDER BY symbol"
    )
    assert counts.to_dict("list") == {"symbol": ["BTC", "ETH", "LINK", "SOL"], "n": [360] * 4}


def test_a_failing_symbol_is_reported_and_the_others_complete(small_cfg, tmp_path):
    class Broken(SyntheticSource):
        def fetch_ohlcv(self, symbol, timeframe, since, until):
            raw = super().fetch_ohlcv(symbol, timeframe, since, until)
            if symbol == "SOL":
                raw.loc[raw.index[5], "high"] = raw.loc[raw.index[5], "low"] * 0.5  # high < low
            return raw

    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), Broken(small_cfg))
    summary = plane.refresh_all(small_cfg.basket.names)
    assert list(summary.errors) == ["SOL"] and "SOL" in summary.errors["SOL"]
    assert not ParquetStore(tmp_path).exists(BARS, "1h", "SOL")  # nothing half-written
    assert ParquetStore(tmp_path).exists(AUDITED_BARS, "1d", "LINK")


# ------------------------------------------------------------------ real sources, replayed on 127.0.0.1


@requires_shared
def test_files_refresh_of_the_real_fixture_with_matic_alias(tmp_path):
    cfg = load_config(overrides={"basket": {"symbols": ["BTC", "ETH", "MATIC"]}})
    plane = StoreRefresher(cfg, ParquetStore(tmp_path), FilesSource(cfg, GENETRADER_2024))
    summary = plane.refresh_all(cfg.basket.names)
    assert summary.ok, summary.errors
    rows = {s.symbol: s.rows for s in summary.symbols}
    assert rows["BTC"] == {"1h": 5980, "4h": 1495, "1d": 249} and rows["MATIC"]["1h"] == 6002
    assert max(r.missing_pct for r in summary.reports) <= cfg.audit.max_missing_pct
    exchange_4h = pd.read_feather(real_feather("MATIC", "4h")).set_index("date")
    ours = ParquetStore(tmp_path).read(BARS, "4h", "MATIC")
    common = ours.index.intersection(exchange_4h.index)
    assert len(common) == 1500
    pd.testing.assert_frame_equal(
        ours.loc[common, ["open", "high", "low", "close"]],
        exchange_4h.loc[common, ["open", "high", "low", "close"]],
        check_names=False,
        check_freq=False,
    )


@requires_shared
def test_ccxt_refresh_then_noop_costs_at_most_one_request_per_symbol(tmp_path):
    cfg = load_config(
        overrides={"basket": {"symbols": ["BTC", "ETH"]}, "data_sources": {"perps_venue": "none"}}
    )
    with ReplayServer() as server:
        frames = {s: frame_from_feather(real_feather(s, "1h")) for s in ("BTC", "ETH")}
        for symbol, frame in frames.items():
            server.add_klines(symbol, "USDT", "1h", frame)
        last_open = frames["BTC"]["date"].iloc[-1]
        now = last_open + pd.Timedelta(minutes=90)  # the last bar closed 30 minutes ago
        server.now_ms = now

        def plane(at):
            source = CcxtSource(cfg, api_url=server.url, enable_rate_limit=False)
            return StoreRefresher(cfg, ParquetStore(tmp_path), source, now=at)

        first = plane(now).refresh_all(["BTC", "ETH"])
        assert first.ok, first.errors
        assert {s.rows["1h"] for s in first.symbols} == {5980}
        before = server.count("klines")
        second = plane(now).refresh_all(["BTC", "ETH"])
        assert [s.new_rows for s in second.symbols] == [0, 0]
        assert server.count("klines") - before == 0  # nothing could have closed: no request at all
        before = server.count("klines")
        third = plane(now + pd.Timedelta(hours=1)).refresh_all(["BTC", "ETH"])
        assert [s.new_rows for s in third.symbols] == [0, 0]  # the exchange has nothing newer
        assert server.count("klines") - before == 2  # one request per symbol


def test_make_source_names_and_errors(default_config):
    assert make_source(default_config).name == "synthetic"
    with pytest.raises(ValueError, match="--data-dir"):
        make_source(default_config, "files")
    with pytest.raises(ValueError, match="unknown source"):
        make_source(default_config, "bloomberg")


@requires_shared
def test_a_symbol_naming_its_venue_is_fetched_there(tmp_path):
    """SOL from Hyperliquid while the rest of the basket comes from Binance (the seed's HYPE case)."""
    from apex_rotation.ingest.hyperliquid_source import HyperliquidSource

    with ReplayServer() as server:
        cfg = load_config(
            overrides={
                "basket": {"symbols": ["BTC", "ETH", {"symbol": "SOL", "venue": "hyperliquid"}]},
                "data_sources": {
                    "perps_venue": "none",
                    "hyperliquid_url": server.url,
                    "ccxt_url": server.url,
                    "hyperliquid_min_interval_s": 0.0,
                },
            }
        )
        frames = {s: frame_from_feather(real_feather(s, "1h")) for s in ("BTC", "ETH", "SOL")}
        frames["SOL"] = frames["SOL"][frames["SOL"]["date"] <= frames["BTC"]["date"].iloc[-1]].iloc[-600:]
        server.add_klines("BTC", "USDT", "1h", frames["BTC"])
        server.add_klines("ETH", "USDT", "1h", frames["ETH"])
        server.add_candles("SOL", "1h", frames["SOL"])
        now = frames["BTC"]["date"].iloc[-1] + pd.Timedelta(minutes=90)
        server.now_ms = now
        plane = StoreRefresher(cfg, ParquetStore(tmp_path), CcxtSource(cfg, enable_rate_limit=False), now=now)
        plane._venue_sources["hyperliquid"] = HyperliquidSource(cfg, clock=lambda: now)  # the replay's clock
        summary = plane.refresh_all(cfg.basket.names)
        assert summary.ok, summary.errors
        store = ParquetStore(tmp_path)
        assert store.meta(BARS, "1h", "SOL")["venue"] == "hyperliquid"
        assert store.meta(BARS, "1h", "BTC")["venue"] == "binance"
        assert server.count("candleSnapshot") >= 1 and server.count("klines") >= 2
        sol = store.read(BARS, "1h", "SOL")
        expected = frames["SOL"].set_index("date").loc[sol.index, "close"]
        assert (sol["close"].to_numpy() == expected.to_numpy()).all() and len(sol) == 600


def test_synthetic_and_real_bars_never_splice(small_cfg, tmp_path):
    synthetic_plane(small_cfg, tmp_path).refresh_all(["BTC"])

    class RealLooking(SyntheticSource):
        name = "ccxt"

    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), RealLooking(small_cfg))
    summary = plane.refresh_all(["BTC"])
    assert "BTC" in summary.errors and "splice two markets" in summary.errors["BTC"]
    assert ParquetStore(tmp_path).meta(BARS, "1h", "BTC")["source"] == "synthetic"


def test_a_perps_outage_does_not_cost_the_spot_bars(small_cfg, tmp_path):
    class DownPerps(SyntheticSource):
        def fetch_funding(self, symbol, since, until):
            raise ConnectionError("perps venue unreachable")

    source = SyntheticSource(small_cfg)
    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), source, perps_source=DownPerps(small_cfg))
    summary = plane.refresh_all(["BTC", "ETH"])
    assert set(summary.errors) == {"BTC:perps", "ETH:perps"}
    assert ParquetStore(tmp_path).exists(AUDITED_BARS, "1d", "ETH")
    assert {r.symbol for r in summary.reports} == {"BTC", "ETH"}


def test_a_file_import_gets_no_live_perps_data(default_config, tmp_path):
    files = make_source(default_config, "files", data_dir=tmp_path)
    assert make_perps_source(default_config, files) is None
    assert make_perps_source(default_config, make_source(default_config)).name == "synthetic"


def test_the_audit_report_keeps_other_symbols(small_cfg, tmp_path):
    synthetic_plane(small_cfg, tmp_path).refresh_all(["BTC", "ETH"])
    synthetic_plane(small_cfg, tmp_path).refresh_all(["SOL"])
    reports = json.loads((tmp_path / "reports" / "audit.json").read_text())
    assert [(r["symbol"], r["timeframe"]) for r in reports] == [
        (s, tf) for s in ("BTC", "ETH", "SOL") for tf in ("1h", "4h", "1d")
    ]


def altered(change):
    """A synthetic source whose raw 1h rows pass through `change` (rows 96-99 are one 4h bar, 00:00-03:00)."""

    class Altered(SyntheticSource):
        def fetch_ohlcv(self, symbol, timeframe, since, until):
            return change(super().fetch_ohlcv(symbol, timeframe, since, until))

    return Altered


def test_a_bad_tick_costs_its_hour_not_the_whole_4h_bar(small_cfg, tmp_path):
    def bad_close(raw):
        raw.loc[raw.index[101], ["high", "close"]] *= 50  # 05:00 of a 4h bar: the close is the bad tick
        return raw

    Spiky = altered(bad_close)

    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), Spiky(small_cfg))
    summary = plane.refresh_all(["BTC"])
    store = ParquetStore(tmp_path)
    h1 = store.read(AUDITED_BARS, "1h", "BTC")
    spike_hour = h1.index[101]
    assert h1.loc[spike_hour, "fill_reason"] == "spike"
    bar_4h = store.read(AUDITED_BARS, "4h", "BTC").loc[spike_hour.floor("4h")]
    hours = h1.loc[spike_hour.floor("4h") : spike_hour.floor("4h") + pd.Timedelta(hours=3)]
    assert (
        not bar_4h["filled"]
        and bar_4h["high"] == hours["high"].max()
        and bar_4h["volume"] == hours["volume"].sum()
    )
    assert bar_4h["filled_hours"] == 1 and bar_4h["close"] == hours["close"].iloc[-1]
    report_4h = next(r for r in summary.reports if r.timeframe == "4h")
    # the raw 4h bar kept a sound open and close: at 4h the bad price is a wick
    assert (report_4h.spikes, report_4h.wicks, report_4h.filled) == (0, 1, 0)


def test_a_bad_wick_keeps_its_hour_in_every_timeframe(small_cfg, tmp_path):
    def bad_low(raw):
        raw.loc[raw.index[101], "low"] = 0.0001  # 05:00 of a 4h bar; its open and close are sound
        return raw

    raw = SyntheticSource(small_cfg).fetch_ohlcv("BTC", "1h", *SyntheticSource(small_cfg).history_window())
    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), altered(bad_low)(small_cfg))
    summary = plane.refresh_all(["BTC"])
    store = ParquetStore(tmp_path)
    h1 = store.read(AUDITED_BARS, "1h", "BTC")
    hour = h1.index[101]
    assert h1.loc[hour, "fill_reason"] == "wick" and not h1["filled"].any()
    assert h1.loc[hour, "close"] == raw["close"].iloc[101]  # the hour's move is kept
    assert h1.loc[hour, "low"] == min(raw["open"].iloc[101], raw["close"].iloc[101])
    for tf in ("4h", "1d"):
        stored = store.read(AUDITED_BARS, tf, "BTC")
        bar = stored.loc[hour.floor(tf)]
        hours = h1.loc[hour.floor(tf) : hour.floor(tf) + pd.Timedelta(tf) - pd.Timedelta(hours=1)]
        assert bar["fill_reason"] == "wick" and not bar["filled"] and bar["filled_hours"] == 0
        assert (bar["low"], bar["close"]) == (hours["low"].min(), hours["close"].iloc[-1])
        assert (stored["fill_reason"] == "wick").sum() == 1
    assert [(r.timeframe, r.wicks, r.spikes, r.filled) for r in summary.reports] == [
        ("1h", 1, 0, 0), ("4h", 1, 0, 0), ("1d", 1, 0, 0),
    ]  # fmt: skip


def test_a_4h_bar_missing_its_first_hour_opens_at_its_first_traded_price(small_cfg, tmp_path):
    plane = StoreRefresher(
        small_cfg, ParquetStore(tmp_path), altered(lambda raw: raw.drop(index=100))(small_cfg)
    )
    summary = plane.refresh_all(["BTC"])
    store = ParquetStore(tmp_path)
    h1 = store.read(AUDITED_BARS, "1h", "BTC")
    [hole] = h1.index[h1["filled"]]
    assert hole.hour % 4 == 0  # the first hour of its 4h bar
    for tf, n in (("4h", 4), ("1d", 24)):
        bar = store.read(AUDITED_BARS, tf, "BTC").loc[hole.floor(tf)]
        traded = h1.loc[hole.floor(tf) : hole.floor(tf) + pd.Timedelta(hours=n - 1)].drop(index=hole)
        assert bar[["open", "high", "low", "close", "volume"]].tolist() == [
            traded["open"].iloc[0],
            traded["high"].max(),
            traded["low"].min(),
            traded["close"].iloc[-1],
            pytest.approx(traded["volume"].sum(), rel=1e-12),
        ]
        assert bar["filled_hours"] == 1 and not bar["filled"] and bar["fill_reason"] == ""
    assert {r.timeframe: r.filled for r in summary.reports} == {"1h": 1, "4h": 0, "1d": 0}


def test_the_audit_logs_once_with_the_report_it_stores(small_cfg, tmp_path, caplog):
    """A bad close at 23:00 makes the raw 1d bar a spike (filled); the stored 1d bar, built from the audited
    hours, is not filled. The one log line per partition says what the stored report says."""

    def bad_day_close(raw):
        raw.loc[raw.index[47], ["high", "close"]] *= 50  # 23:00 of day 2
        return raw

    plane = StoreRefresher(small_cfg, ParquetStore(tmp_path), altered(bad_day_close)(small_cfg))
    with caplog.at_level(logging.DEBUG):
        plane.refresh_all(["BTC"])
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("audit symbol=BTC")]
    assert len(lines) == 3
    store = ParquetStore(tmp_path)
    for tf, line in zip(("1h", "4h", "1d"), lines, strict=True):
        logged = dict(pair.split("=", 1) for pair in line.removeprefix("audit ").split())
        stored = store.meta(AUDITED_BARS, tf, "BTC")
        assert {k: logged[k] for k in stored} == {k: str(v) for k, v in stored.items()}, tf
    assert store.meta(AUDITED_BARS, "1d", "BTC")["filled"] == 0
    assert store.meta(AUDITED_BARS, "1d", "BTC")["spikes"] == 1


def test_the_stored_audit_report_is_the_same_whichever_command_wrote_it(small_cfg, tmp_path, monkeypatch):
    end = pd.Timestamp(small_cfg.synthetic.end)
    synthetic_plane(small_cfg, tmp_path, now=end + pd.Timedelta(minutes=30)).refresh_all(["BTC", "ETH"])
    path = tmp_path / "reports" / "audit.json"
    by_refresh = path.read_text()
    for later in (pd.Timedelta(days=3), pd.Timedelta(days=400)):
        monkeypatch.setattr("apex_rotation.store.refresh.utc_now", lambda later=later: end + later)
        reports = audit_store(small_cfg, ParquetStore(tmp_path), ["BTC", "ETH"], ["1h", "4h", "1d"])
        assert {r.stale_bars for r in reports if r.timeframe == "1h"} == {later // pd.Timedelta(hours=1)}
        assert path.read_text() == by_refresh
