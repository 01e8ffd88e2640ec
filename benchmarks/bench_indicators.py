"""Indicators vs TA-Lib on 1,000,000 bars: median time of each (compile excluded) and the ratio.

The target: RSI + EMA + MACD + ATR + ADX together within 3x TA-Lib's total.
Run: `uv run python benchmarks/bench_indicators.py [--bars N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import talib

from apex_rotation.features import indicators as ind

TARGET_RATIO = 3.0


def synthetic_ohlc(bars: int, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A geometric random walk with a high/low envelope (what matters for speed is only the size)."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, bars)))
    spread = np.abs(rng.normal(0.0, 0.005, bars)) * close
    return close + spread, close - spread, close


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: numba compile/cache load, page faults
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=21)
    args = parser.parse_args()
    h, lo, c = synthetic_ohlc(args.bars)

    cases: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "RSI(14)": (lambda: ind.rsi(c, 14), lambda: talib.RSI(c, 14)),
        "EMA(20)": (lambda: ind.ema(c, 20), lambda: talib.EMA(c, 20)),
        "MACD(12,26,9)": (lambda: ind.macd(c), lambda: talib.MACD(c, 12, 26, 9)),
        "ATR(14)": (lambda: ind.atr(h, lo, c, 14), lambda: talib.ATR(h, lo, c, 14)),
        "ADX(14)": (lambda: ind.adx(h, lo, c, 14), lambda: talib.ADX(h, lo, c, 14)),
    }
    extras: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
        "SMA(20)": (lambda: ind.sma(c, 20), lambda: talib.SMA(c, 20)),
        "DMI(14) vs +DI,-DI,ADX": (
            lambda: ind.dmi(h, lo, c, 14),
            lambda: (talib.PLUS_DI(h, lo, c, 14), talib.MINUS_DI(h, lo, c, 14), talib.ADX(h, lo, c, 14)),
        ),
    }

    print(f"{args.bars:,} bars, median of {args.repeat} runs (ms)")
    print(f"{'indicator':<24}{'ours':>10}{'talib':>10}{'ratio':>8}")
    total_ours = total_talib = 0.0
    for name, (ours, theirs) in cases.items():
        t_ours, t_talib = median_seconds(ours, args.repeat), median_seconds(theirs, args.repeat)
        total_ours += t_ours
        total_talib += t_talib
        print(f"{name:<24}{t_ours * 1e3:>10.2f}{t_talib * 1e3:>10.2f}{t_ours / t_talib:>8.2f}")
    ratio = total_ours / total_talib
    print(f"{'five together':<24}{total_ours * 1e3:>10.2f}{total_talib * 1e3:>10.2f}{ratio:>8.2f}")
    for name, (ours, theirs) in extras.items():
        t_ours, t_talib = median_seconds(ours, args.repeat), median_seconds(theirs, args.repeat)
        print(f"{name:<24}{t_ours * 1e3:>10.2f}{t_talib * 1e3:>10.2f}{t_ours / t_talib:>8.2f}")
    verdict = "OK" if ratio <= TARGET_RATIO else "TOO SLOW"
    print(f"five together: {ratio:.2f}x TA-Lib (target <= {TARGET_RATIO:.0f}x): {verdict}")
    vz = median_seconds(lambda: ind.vol_z(c, 20), args.repeat)
    print(f"vol_z(20) (no TA-Lib equivalent): {vz * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
