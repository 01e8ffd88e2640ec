"""Fired signals and a small stored market for the alert tests and benchmark (the composer is built in
parallel: these `ScoredSignal`s follow its contract, `signals/score.py`)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from apex_rotation.bars import bars_frame
from apex_rotation.config import AppConfig
from apex_rotation.features import td as td_mod
from apex_rotation.ingest.synthetic import build_market
from apex_rotation.signals.score import EntryPlan, Reason, ScoredSignal, signal_id
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.resample import resample
from apex_rotation.store.tables import AUDITED_BARS, BASKET_KEY, SCORES, TD_STATE
from apex_rotation.timeframes import TIMEFRAMES

REASONS = [
    Reason(block="market", name="volume_spike", passed=True, points=2.0, detail="volume 3.1x EMA20 (≥ 2.0x)"),
    Reason(block="technical", name="rsi", passed=True, points=0.5, detail="RSI 58 in [45, 70]"),
    Reason(
        block="rotation", name="strength", passed=True, points=3.0, detail="catch-up 11% <HIGH> & beta 1.8"
    ),
    Reason(block="td", name="perfected_9", passed=None, points=0.0, detail="no data"),
    Reason(block="regime", name="trend_fade", passed=False, points=-1.0, detail="ADX 31: trend"),
]


def plan(entry: float, atr: float, direction: str = "long") -> EntryPlan:
    s = 1.0 if direction == "long" else -1.0
    lo, hi = sorted((entry, entry - s * 0.5 * atr))
    stop, target = entry - s * 1.5 * atr, entry + s * 2.0 * atr
    return EntryPlan(
        entry_low=lo,
        entry_high=hi,
        entry=(lo + hi) / 2,
        stop=stop,
        stop_source="tdst",
        target=target,
        rr=abs(target - (lo + hi) / 2) / abs((lo + hi) / 2 - stop),
        atr=atr,
        invalidation=entry - s * 1.2 * atr,
        invalidation_kind="TDST",
    )


def signal(
    symbol: str = "SOL",
    timeframe: str = "4h",
    bar_time: datetime | pd.Timestamp = datetime(2025, 12, 30, 12, tzinfo=UTC),
    direction: str = "long",
    entry: float = 100.0,
    atr: float = 4.0,
    archetype: str = "rotation",
    fired: bool = True,
    score: float = 7.5,
) -> ScoredSignal:
    t = pd.Timestamp(bar_time).to_pydatetime()
    return ScoredSignal(
        signal_id=signal_id(symbol, timeframe, t, archetype),
        symbol=symbol,
        timeframe=timeframe,
        bar_time=t,
        archetype=archetype,
        direction=direction,
        apex_asset="BTC" if archetype == "rotation" else None,
        score=score,
        fired=fired,
        suppressed=None if fired else "below threshold",
        reasons=REASONS,
        plan=plan(entry, atr, direction),
    )


def write_market(
    cfg: AppConfig, store: ParquetStore, timeframes=TIMEFRAMES
) -> dict[str, dict[str, pd.DataFrame]]:
    """The config's synthetic market as audited bars + TD state per symbol × timeframe."""
    m = build_market(cfg)
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for i, symbol in enumerate(m.symbols):
        cols = {
            "open": m.open[i],
            "high": m.high[i],
            "low": m.low[i],
            "close": m.close[i],
            "volume": m.volume[i],
        }
        h1 = bars_frame(m.open_ms * 1_000_000, cols, "1h")
        for tf in timeframes:
            bars = h1 if tf == "1h" else resample(h1, tf, symbol=symbol)
            bars = bars.assign(filled=False, fill_reason="", outlier=False)
            store.write(AUDITED_BARS, tf, symbol, bars)
            store.write(TD_STATE, tf, symbol, td_mod.compute(bars, cfg.td))
            out.setdefault(symbol, {})[tf] = bars
    return out


def fired_every(
    bars: dict[str, pd.DataFrame], timeframe: str, every: int, seed: int = 0
) -> list[ScoredSignal]:
    """A fired signal every `every` bars of each alt (long or short at random), planned from the bars."""
    rng = np.random.default_rng(seed)
    out = []
    for symbol, frame in bars.items():
        atr = (frame["high"] - frame["low"]).rolling(14, min_periods=1).mean()
        for i in range(every, len(frame), every):
            direction = "long" if rng.random() < 0.6 else "short"
            out.append(
                signal(
                    symbol,
                    timeframe,
                    frame.index[i],
                    direction,
                    float(frame["close"].iloc[i]),
                    float(atr.iloc[i]),
                )
            )
    return out


def write_scores(store: ParquetStore, timeframe: str, signals: list[ScoredSignal]) -> None:
    store.write(SCORES, timeframe, BASKET_KEY, pd.DataFrame([s.to_row() for s in signals]))
