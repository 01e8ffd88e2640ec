"""Benchmark of the research harness: a full walk-forward (12 folds, a 4-value grid, every ablation, the
placebo) over the default synthetic market (17 symbols × 17,520 1h bars, 4h signals) with fees and stops.

    uv run python benchmarks/bench_backtest.py                    # harness only
    uv run --group bench python benchmarks/bench_backtest.py      # + vectorbt's Portfolio.from_signals

Prints the time in a fresh process (imports, JIT from the numba cache, loading the store, everything) and
warm (the same walk-forward again in the same process after `Universe.clear()`: every config rescanned,
rewatched, recomposed and resimulated; the loaded frames and per-symbol arrays kept), then, when vectorbt is
installed, `Portfolio.from_signals` on the same entries, exits and prices (the harness's filled trades, 1h
bars) with the time ratio and the difference in total return.

Targets (issue 9): fresh ≤ 8 s, warm ≤ 2 s. Measured 2026-12-01 on the 2-core machine shared with another
engineer's jobs (load 2.5-3): fresh 4.2-5.7 s, warm 1.3-1.8 s (docs/research.md, "Performance").
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

CASH = 1e12  # never short of cash: sizes are the harness's, not vectorbt's cash-limited ones
ROOT = Path(__file__).resolve().parents[1]
STORE = ROOT / "data" / "bench_backtest"
OVERRIDES = {
    "research": {
        "timeframes": ["4h"],
        "splits": {"train_days": 180, "test_days": 45, "step_days": 45, "max_folds": 12},
        "plots": False,
    }
}


def walk(store_root: Path) -> tuple[float, object, object]:
    from apex_rotation.config import load_config
    from apex_rotation.research.backtest import backtest_timeframe
    from apex_rotation.research.engine import Universe
    from apex_rotation.store.parquet import ParquetStore

    cfg = load_config(overrides=OVERRIDES)
    started = time.perf_counter()
    universe = Universe.load(cfg, ParquetStore(store_root), "4h")
    full, ablated, lift = backtest_timeframe(universe)
    return time.perf_counter() - started, universe, (full, ablated, lift)


def ensure_store() -> None:
    from apex_rotation.config import load_config
    from apex_rotation.ingest.registry import make_perps_source, make_source
    from apex_rotation.research.engine import ensure_features
    from apex_rotation.store.parquet import ParquetStore
    from apex_rotation.store.refresh import StoreRefresher

    cfg = load_config()
    store = ParquetStore(STORE)
    if not store.exists("funding", None, "BTC"):  # as `apex run` fills it: bars and the perps data
        source = make_source(cfg, "synthetic")
        with StoreRefresher(cfg, store, source, perps_source=make_perps_source(cfg, source)) as refresher:
            refresher.refresh_all(cfg.basket.names, ["1h", "4h", "1d"])
    ensure_features(cfg, store, ["1h", "4h", "1d"])


def vectorbt_check(universe, full) -> None:
    try:
        import plotly.graph_objs as go

        init = go.layout.Template.__init__  # vectorbt 1.0's theme names scattermapbox, gone in plotly 6+

        def lenient(self, arg=None, *a, **k):
            k.setdefault("skip_invalid", True)
            init(self, arg, *a, **k)

        go.layout.Template.__init__ = lenient
        import vectorbt as vbt
    except Exception as exc:  # the bench group is optional
        print(f"vectorbt not available ({type(exc).__name__}: {exc}); run with `uv run --group bench`")
        return
    trades = full.trades[full.trades["entry_price"].notna()]
    symbols = sorted(set(trades["symbol"]))
    bars = {s: universe.market.bars(s, "1h") for s in symbols}
    index = bars[symbols[0]].index
    for s in symbols:
        index = index.union(bars[s].index)
    close = pd.DataFrame({s: bars[s]["close"].reindex(index) for s in symbols}).ffill()
    shape = close.shape
    entries, exits = np.zeros(shape, bool), np.zeros(shape, bool)
    short_entries, short_exits = np.zeros(shape, bool), np.zeros(shape, bool)
    price = close.to_numpy().copy()
    size = np.full(shape, np.nan)
    col = {s: i for i, s in enumerate(symbols)}
    busy_until = dict.fromkeys(symbols, pd.Timestamp.min.tz_localize("UTC"))
    ours = 0.0
    skipped = 0
    for t in trades.sort_values("entry_time").itertuples():
        j = col[t.symbol]
        if t.entry_time <= busy_until[t.symbol]:
            skipped += 1  # vectorbt holds one position per column: an overlapping trade is left out of both
            continue
        exit_time = (
            t.exit_time - pd.Timedelta(hours=1)
            if t.exit_reason in ("max_hold", "open_at_end")
            else t.exit_time
        )
        i0, i1 = index.get_loc(t.entry_time), index.get_loc(exit_time)
        if i1 <= i0:
            skipped += 1  # in and out within one hour: from_signals cannot exit on its entry bar
            continue
        busy_until[t.symbol] = exit_time
        long = t.side == "long"
        (entries if long else short_entries)[i0, j] = True
        (exits if long else short_exits)[i1, j] = True
        price[i0, j], price[i1, j], size[i0, j] = t.entry_price, t.exit_price, t.size
        ours += (1 if long else -1) * t.size * (t.exit_price - t.entry_price)

    def simulate() -> float:
        pf = vbt.Portfolio.from_signals(
            close,
            entries,
            exits,
            short_entries=short_entries,
            short_exits=short_exits,
            price=price,
            size=size,
            size_type="amount",
            init_cash=CASH,
            cash_sharing=True,
            group_by=True,
            fees=0.0,
            freq="1h",
        )
        return (float(pf.final_value()) - CASH) / universe.cfg.sim.equity

    started = time.perf_counter()
    vbt_return = simulate()
    vbt_time = time.perf_counter() - started
    started = time.perf_counter()
    simulate()
    vbt_warm = time.perf_counter() - started
    ours_return = ours / universe.cfg.sim.equity
    print(
        f"vectorbt Portfolio.from_signals on the full run's {int(entries.sum() + short_entries.sum())} trades "
        f"({skipped} overlapping/same-hour left out), price PnL without costs: first call {vbt_time:.2f}s, "
        f"warm {vbt_warm:.3f}s; total return vectorbt {vbt_return:+.6%} vs ours {ours_return:+.6%} "
        f"(difference {vbt_return - ours_return:+.2e})"
    )
    return vbt_warm


def main() -> None:
    if "--child" in sys.argv:
        took, _, _ = walk(STORE)
        print(f"{took:.3f}")
        return
    ensure_store()
    started = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--child"], capture_output=True, text=True, check=True)
    fresh = time.perf_counter() - started
    print(
        f"fresh process (imports + load + walk-forward): {fresh:.2f}s (walk-forward part {float(child.stdout.split()[-1]):.2f}s)"
    )
    took, universe, (full, ablated, _) = walk(STORE)
    universe.clear()
    from apex_rotation.research.backtest import backtest_timeframe

    started = time.perf_counter()
    full, ablated, _ = backtest_timeframe(universe)
    warm = time.perf_counter() - started
    configs = 1 + len(ablated)
    print(
        f"warm walk-forward ({len(full.picks)} folds × {len(universe.cfg.research.grid['apex.move_threshold_pct'])}-value "
        f"grid × {configs} configurations, {len(universe._runs)} distinct runs, + placebo): {warm:.2f}s; "
        f"full run OOS trades {len(full.trades)}"
    )
    vbt_warm = vectorbt_check(universe, full)
    if vbt_warm:
        print(
            f"time ratio harness warm / vectorbt warm: {warm / vbt_warm:.0f}x (the harness recomposes every signal)"
        )


if __name__ == "__main__":
    main()
