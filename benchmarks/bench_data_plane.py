"""Data-plane benchmark: prints figures, asserts nothing (benchmarks are never timed tests).

1. refresh from `synthetic`: 17 symbols × 2 years of 1h, with resampling to 4h/1d and the audit (target ≤ 10 s);
2. `features.load()` of one 2-year 1h series (target ≤ 20 ms);
3. a no-op incremental refresh against the local replay server (target ≤ 1 request per partition),
   for ccxt (Binance klines) and Hyperliquid (candles + funding + one OI snapshot), on the real fixtures
   in ../shared when present.

Run: uv run python benchmarks/bench_data_plane.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.features import load
from apex_rotation.ingest.registry import make_perps_source, make_source
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import StoreRefresher


def bench_refresh(root: Path) -> None:
    cfg = load_config()
    source = make_source(cfg, "synthetic")
    plane = StoreRefresher(cfg, ParquetStore(root), source, perps_source=make_perps_source(cfg, source))
    started = time.perf_counter()
    summary = plane.refresh_all(cfg.basket.names)
    took = time.perf_counter() - started
    rows = sum(sum(s.rows.values()) for s in summary.symbols)
    print(
        f"refresh synthetic: {len(cfg.basket.names)} symbols, {rows:,} bars in 3 timeframes + audit: "
        f"{took:.2f} s (target ≤ 10 s, ratio {took / 10:.2f})"
    )
    started = time.perf_counter()
    StoreRefresher(cfg, ParquetStore(root), make_source(cfg, "synthetic")).refresh_all(cfg.basket.names)
    print(f"repeat refresh (no new bars): {time.perf_counter() - started:.2f} s")


def bench_load(root: Path) -> None:
    load("ETH", "1h", root=root)  # warm the OS cache and imports
    times = []
    for _ in range(50):
        started = time.perf_counter()
        frame = load("ETH", "1h", root=root)
        times.append(time.perf_counter() - started)
    median = statistics.median(times) * 1000
    print(
        f"load('ETH', '1h'): {len(frame):,} rows × {frame.shape[1]} cols, median {median:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms (target ≤ 20 ms, ratio {median / 20:.2f})"
    )


def bench_noop_requests() -> None:
    from apex_rotation.ingest.ccxt_source import CcxtSource
    from apex_rotation.ingest.hyperliquid_source import HyperliquidSource
    from apex_rotation_tests.replay_server import ReplayServer, frame_from_feather, recorded_btc_funding
    from apex_rotation_tests.shared import FIXTURES, real_feather

    if not FIXTURES.is_dir():
        print(f"no-op refresh: skipped (no fixtures at {FIXTURES})")
        return
    symbols = ["BTC", "ETH", "SOL", "LINK", "DOGE"]
    cfg = load_config(overrides={"basket": {"symbols": symbols}, "data_sources": {"perps_venue": "none"}})
    frames = {s: frame_from_feather(real_feather(s, "1h")) for s in symbols}
    last = min(f["date"].iloc[-1] for f in frames.values())
    with tempfile.TemporaryDirectory() as tmp, ReplayServer() as server:
        for s, f in frames.items():
            server.add_klines(s, "USDT", "1h", f[f["date"] <= last])
        now = last + pd.Timedelta(minutes=90)
        server.now_ms = now
        plane = lambda at: StoreRefresher(  # noqa: E731
            cfg, ParquetStore(tmp), CcxtSource(cfg, api_url=server.url, enable_rate_limit=False), now=at
        )
        plane(now).refresh_all(symbols)
        partitions = len(symbols) * 3
        for label, at in (("same bar", now), ("next hour, nothing new", now + pd.Timedelta(hours=1))):
            before = server.count()
            plane(at).refresh_all(symbols)
            n = server.count() - before
            print(
                f"no-op refresh ccxt ({label}): {n} requests for {partitions} partitions "
                f"= {n / partitions:.2f} per partition (target ≤ 1)"
            )

    hl_symbols = ["BTC", "ETH"]
    cfg = load_config(overrides={"basket": {"symbols": hl_symbols}})
    with tempfile.TemporaryDirectory() as tmp, ReplayServer() as server:
        for s in hl_symbols:
            server.add_candles(s, "1h", frame_from_feather(real_feather(s, "1h")))
        server.add_funding("BTC", recorded_btc_funding())
        last = frames["BTC"]["date"].iloc[-1]
        now = last + pd.Timedelta(minutes=90)
        server.now_ms = now
        source = lambda: HyperliquidSource(cfg, base_url=server.url, clock=lambda: now)  # noqa: E731
        first = source()
        StoreRefresher(cfg, ParquetStore(tmp), first, perps_source=first, now=now).refresh_all(hl_symbols)
        before = server.count()
        again = source()
        StoreRefresher(
            cfg, ParquetStore(tmp), again, perps_source=again, now=now + pd.Timedelta(hours=1)
        ).refresh_all(hl_symbols)
        n = server.count() - before
        partitions = len(hl_symbols) * 3
        print(
            f"no-op refresh hyperliquid (meta + candles + funding + OI snapshot): {n} requests for "
            f"{partitions} partitions = {n / partitions:.2f} per partition (target ≤ 1)"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bench_refresh(root)
        bench_load(root)
    bench_noop_requests()


if __name__ == "__main__":
    main()
