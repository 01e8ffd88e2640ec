"""Dry-run simulator benchmark: prints trades and time, asserts nothing.

Every fired signal of two years of the synthetic market (17 symbols × 17,520 1h bars), as perps with funding,
simulated on the 1h bars whatever the signal's timeframe. The composer is built in parallel, so the signals
are drawn here: a share of the bars of each timeframe fire, alternately rotation (limit at the plan's entry,
0.5 ATR under the close) and TD13 exhaustion (market), both sides, with ATR stops and targets.

Run: uv run python benchmarks/bench_sim.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apex_rotation.config import load_config
from apex_rotation.exec import sim
from apex_rotation.ingest.synthetic import build_market
from apex_rotation.schemas import trades_schema, validate_frame
from apex_rotation.signals.score import EntryPlan, ScoredSignal, signal_id
from apex_rotation.timeframes import TIMEFRAMES


def market_frames(cfg) -> tuple[dict, dict]:
    m = build_market(cfg)
    index = pd.DatetimeIndex(pd.to_datetime(m.open_ms, unit="ms", utc=True), name="open_time")
    bars, funding = {}, {}
    for i, symbol in enumerate(m.symbols):
        hourly = pd.DataFrame(
            {"open": m.open[i], "high": m.high[i], "low": m.low[i], "close": m.close[i]}, index=index
        )
        for tf in TIMEFRAMES:
            rule = {"open": "first", "high": "max", "low": "min", "close": "last"}
            bars[(symbol, tf)] = hourly if tf == "1h" else hourly.resample(tf).agg(rule)
        funding[symbol] = pd.Series(m.funding[i], index=index + pd.Timedelta("1h"))
    return bars, funding


def draw_signals(bars: dict, share: float, seed: int = 0) -> list[ScoredSignal]:
    rng, out = np.random.default_rng(seed), []
    for (symbol, tf), frame in bars.items():
        atr = (frame["high"] - frame["low"]).rolling(14).mean().to_numpy()
        picks = np.flatnonzero(rng.random(len(frame)) < share)
        for j, i in enumerate(picks[(picks > 14) & (picks < len(frame) - 1)]):
            archetype = "rotation" if j % 2 else "td13_exhaustion"
            sign = 1 if rng.random() < 0.7 else -1
            close, a = frame["close"].iat[i], atr[i]
            entry = close - sign * 0.5 * a if archetype == "rotation" else close
            stop, target = entry - sign * 1.5 * a, entry + sign * 1.8 * a
            at = frame.index[i]
            plan = EntryPlan(
                entry_low=entry - 0.25 * a,
                entry_high=entry + 0.25 * a,
                entry=entry,
                stop=stop,
                stop_source="atr",
                target=target,
                rr=1.2,
                atr=a,
                invalidation=stop,
                invalidation_kind="ATR stop",
            )
            out.append(
                ScoredSignal(
                    signal_id=signal_id(symbol, tf, at, archetype),
                    symbol=symbol,
                    timeframe=tf,
                    bar_time=at.to_pydatetime(),
                    archetype=archetype,
                    direction="long" if sign > 0 else "short",
                    score=7.0,
                    fired=True,
                    reasons=[],
                    plan=plan,
                )
            )
    return out


def main() -> None:
    cfg = load_config()
    bars, funding = market_frames(cfg)
    market = sim.FrameMarket(bars, funding, dict.fromkeys({s for s, _ in bars}, "perps"))
    hours = len(bars[("BTC", "1h")])
    for share in (0.002, 0.02):
        signals = draw_signals(bars, share)
        started = time.perf_counter()
        sim.run(signals[:50], market=market, cfg=cfg)  # numba compiles or loads its cache once
        first = time.perf_counter() - started
        times, cpu = [], []
        for _ in range(5):
            started, started_cpu = time.perf_counter(), time.process_time()
            report = sim.run(signals, market=market, cfg=cfg)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        filled = int(report.trades["entry_price"].notna().sum())
        print(
            f"sim.run, {len(signals):,} fired signals over {len(bars) // 3} symbols × {hours:,} 1h bars (1h/4h/1d, "
            f"perps + funding): {len(report.trades):,} trades ({filled:,} filled) in "
            f"{statistics.median(times) * 1000:.0f} ms wall, {statistics.median(cpu) * 1000:.0f} ms CPU "
            f"(first call {first * 1000:.0f} ms)"
        )
    validate_frame(trades_schema(), report.trades, "sim_trades")  # pandera warms up once per process
    started = time.perf_counter()
    validate_frame(trades_schema(), report.trades, "sim_trades")
    took = (time.perf_counter() - started) * 1000
    print(f"+ trades_schema validation before the write (the asset, not run): {took:.0f} ms")
    print(report.summary.round(3).to_string())


if __name__ == "__main__":
    main()
