"""Scans the stored features of one timeframe and writes `rotation_candidates` and `basket_profile`.

Candidates are kept for every bar of history (not only the last), so the confirmation watch, the research
figures (`research/scanner_quality.py`) and the alerts read the same table. Scanning is all this module
does: how good the scan is gets measured in `research/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.features.build import BENCHMARKS, CORR_WINDOWS_DAYS
from apex_rotation.features.loader import load
from apex_rotation.parallel import map_ordered
from apex_rotation.schemas import validate_frame
from apex_rotation.signals import rotation
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import (
    AUDITED_BARS,
    BASKET_KEY,
    BASKET_PROFILE,
    FEATURES,
    ROTATION_CANDIDATES,
    SIGNAL_INPUTS,
)

EPS = 1e-9


@dataclass
class ScanResult:
    timeframe: str
    candidates: pd.DataFrame
    profile: pd.DataFrame
    insufficient_data: dict[str, int] = field(default_factory=dict)
    gate_violations: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "candidates": len(self.candidates),
            "symbols_flagged": int(self.candidates["symbol"].nunique()) if len(self.candidates) else 0,
            "insufficient_data": self.insufficient_data,
        }


def load_frames(cfg: AppConfig, store: ParquetStore, timeframe: str) -> dict[str, pd.DataFrame]:
    """Audited bars joined with features for every basket symbol at one timeframe (read a few at once:
    decoding Parquet releases the GIL)."""
    names = cfg.basket.names
    frames = map_ordered(lambda s: load(s, timeframe, root=store.root, assets=SIGNAL_INPUTS), names)
    return dict(zip(names, frames, strict=True))


PROFILE_COLUMNS = [
    f"{kind}_{bench.lower()}_{days}"
    for kind in ("corr", "beta")
    for bench in BENCHMARKS
    for days in CORR_WINDOWS_DAYS
]


def load_profile_columns(cfg: AppConfig, store: ParquetStore, timeframe: str) -> dict[str, pd.DataFrame]:
    """The corr/beta columns of every basket symbol's features: all `basket_profile` reads."""
    names = cfg.basket.names
    frames = map_ordered(lambda s: store.read(FEATURES, timeframe, s, columns=PROFILE_COLUMNS), names)
    return dict(zip(names, frames, strict=True))


def basket_profile(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each symbol's corr/beta vs BTC and ETH: the latest value and the history's median."""
    rows = {}
    for symbol, frame in frames.items():
        row = {}
        for col in PROFILE_COLUMNS:
            series = frame[col].dropna()
            row[f"{col}_last"] = float(series.iloc[-1]) if len(series) else float("nan")
            row[f"{col}_median"] = float(series.median()) if len(series) else float("nan")
        rows[symbol] = row
    profile = pd.DataFrame.from_dict(rows, orient="index")
    profile.index.name = "symbol"
    return profile


def gate_violations(candidates: pd.DataFrame, cfg: AppConfig) -> list[str]:
    """Candidates that break a configured gate: an invariant of the scanner, checked on its output."""
    a = cfg.apex
    bad = candidates[
        (candidates["apex_move_pct"] < a.move_threshold_pct - EPS)
        | (candidates["coin_move_pct"] > a.alt_lag_threshold_pct + EPS)
        | (candidates["correlation"] < a.corr_min - EPS)
        | (candidates["beta"] < a.beta_min - EPS)
    ]
    return [f"{r.symbol} {r.bar_time}" for r in bad.itertuples()][:50]


def scan_timeframe(cfg: AppConfig, store: ParquetStore, timeframe: str) -> ScanResult:
    """Scan every bar of one timeframe, then write the candidates and the basket's corr/beta profile.

    Only `apex.trigger_timeframes` (4h and 1d by default) trigger; another timeframe gets an empty table.
    """
    if timeframe in cfg.apex.trigger_timeframes:
        frames = load_frames(cfg, store, timeframe)
        apex_frames = {a: frames[a] for a in cfg.basket.apex_assets}
        history = rotation.scan_history(
            apex_frames, frames, cfg.apex, timeframe=timeframe, corr_window_days=cfg.apex.corr_window_days
        )
        data_through = frames[cfg.basket.apex_assets[0]].index[-1]
    else:  # nothing to scan: the profile's columns only (a 1h close read 17 joined frames for 8 columns)
        frames = load_profile_columns(cfg, store, timeframe)
        history = rotation.empty_history()
        data_through = store.read(AUDITED_BARS, timeframe, cfg.basket.apex_assets[0], columns=[]).index[-1]
    insufficient = dict(history.attrs.get(rotation.INSUFFICIENT_DATA, {}))
    history = history.reset_index(drop=True).rename_axis("row")
    history = validate_frame(
        ROTATION_CANDIDATES.schema(timeframe), history, f"rotation candidates {timeframe}"
    )
    profile = basket_profile(frames)
    result = ScanResult(
        timeframe=timeframe,
        candidates=history,
        profile=profile,
        insufficient_data=insufficient,
        gate_violations=gate_violations(history, cfg),
    )
    meta = {
        "triggers": timeframe in cfg.apex.trigger_timeframes,
        "data_through": data_through.isoformat(),
        "insufficient_data": insufficient,
    }
    store.write(ROTATION_CANDIDATES, timeframe, BASKET_KEY, history, meta=meta)
    store.write(BASKET_PROFILE, timeframe, BASKET_KEY, profile)
    return result
