"""Alerts benchmark: 2 years of the synthetic market, fired signals across the basket, the alerts stage with
the file channel (status of every alert, the `alerts` table, charts + delivery of the recent ones). Prints
figures, asserts nothing. The issue's budget: compose + alert (file channel) + simulate ≤ 2 s pure core.

Run: uv run python benchmarks/bench_alerts.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.exec.alerts.stage import run_alerts
from apex_rotation.store.parquet import ParquetStore
from apex_rotation_tests.alert_fixtures import fired_every, write_market, write_scores

# A fired signal every ~4 days per alt (dense: ~2,700 alerts per timeframe), then every ~16 days.
DENSITIES = ({"1h": 96, "4h": 24, "1d": 8}, {"1h": 384, "4h": 96, "1d": 16})


def main() -> None:
    for var in ("APEX_TELEGRAM_BOT_TOKEN", "APEX_DISCORD_WEBHOOK_URL", "APEX_NOTION_TOKEN"):
        os.environ.pop(var, None)
    cfg = load_config()
    root = Path(tempfile.mkdtemp(prefix="bench_alerts_"))
    store = ParquetStore(root)
    started = time.perf_counter()
    bars = write_market(cfg, store)
    print(
        f"setup: {len(bars)} symbols × 2 years, audited bars + TD state stored in {time.perf_counter() - started:.1f} s"
    )
    for every in DENSITIES:
        run(cfg, store, root, bars, every)


def run(cfg, store, root, bars, density) -> None:
    total = {"core": 0.0, "charts": 0, "alerts": 0}
    for tf, every in density.items():
        alts = {s: b[tf] for s, b in bars.items() if s not in cfg.basket.apex_assets}
        write_scores(store, tf, fired_every(alts, tf, every))
        run_alerts(cfg, store, tf)  # warm-up (imports, pandera backends); outbox rows now sent
        for path in (root / "alerts").glob("*.*"):  # the outbox and the JSONL: deliver again
            path.unlink()
        started = time.perf_counter()
        result = run_alerts(cfg, store, tf)
        took = time.perf_counter() - started
        total["core"] += took
        total["charts"] += len(result.due)
        total["alerts"] += len(result.alerts)
        print(
            f"{tf}: {len(result.alerts):5d} alerts recorded, {len(result.due):2d} charted + delivered (file), "
            f"{took * 1000:6.0f} ms"
        )
    size = sum(p.stat().st_size for p in (root / "charts").rglob("*.html")) / 1e6
    print(
        f"alerts stage, all timeframes: {total['core']:.2f} s for {total['charts']} charts ({size:.0f} MB on disk)"
    )


if __name__ == "__main__":
    main()
