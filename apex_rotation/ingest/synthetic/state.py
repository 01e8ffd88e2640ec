"""The working state of one market build, shared by the factor model, the planting and the ground truth.

Why a module of its own: the generator is split by concern into classes (market.py, episodes.py, truth.py)
that all read and write the same arrays; this base class is where those arrays are declared and sized.
See docs/synthetic-market.md.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.ingest.synthetic.numeric import HOUR_MS, TIMEFRAME_HOURS, _bins
from apex_rotation.ingest.synthetic.profiles import make_profiles

CAP_FRACTION = 0.85  # unplanted apex 4h/1d moves stay within ±this × move threshold


class _State:
    """The hour grid, profiles and gate settings of one build; the arrays it writes (log returns, the alts'
    idiosyncratic part, wicks); and the planted facts it records for the ground truth."""

    def __init__(self, cfg: AppConfig):
        syn = cfg.synthetic
        self.cfg, self.seed = cfg, syn.seed
        end_ms = pd.Timestamp(syn.end).floor("h").value // 1_000_000
        self.n = n = syn.days * 24
        self.start_ms = end_ms - n * HOUR_MS
        self.open_ms = self.start_ms + np.arange(n, dtype=np.int64) * HOUR_MS
        hour0 = self.start_ms // HOUR_MS
        self.epoch_hours = hour0 + np.arange(n, dtype=np.int64)
        self.symbols = list(cfg.basket.names)
        self.row = {s: i for i, s in enumerate(self.symbols)}
        self.apexes, self.alts = list(cfg.basket.apex_assets), list(cfg.basket.alts)
        self.prof = {p.symbol: p for p in make_profiles(cfg)}
        self.bins = {tf: _bins(hour0, n, k) for tf, k in TIMEFRAME_HOURS.items()}
        a = cfg.apex
        self.thr, self.lag = a.move_threshold_pct / 100, a.alt_lag_threshold_pct / 100
        self.window_days = a.corr_window_days
        self.cap_log = math.log1p(CAP_FRACTION * self.thr)
        self.lookback = cfg.market_filters.breakout_lookback
        shape = (len(self.symbols), n)
        self.R, self.E = np.zeros(shape), np.zeros(shape)  # log returns; alts' idiosyncratic part
        self.wick_up, self.wick_down = np.zeros(shape), np.zeros(shape)
        self.rows: list[tuple] = []  # (time ms, timeframe, kind, symbol, apex, value, detail)
        self.episodes: dict[tuple[str, int], tuple[int, dict]] = {}  # (tf, bar) -> (number, planted roles)
        self.catchups: list[tuple[str, int, int]] = []  # (alt, 4h bar, episode)
        self.td_marks: list[tuple[str, int, str, str, int]] = []  # (alt, 4h bar, kind, direction, flip bar)
        self.oi_plans: list[tuple[str, int, float, str]] = []  # (symbol, first hour, target, why)
        self.open_holds: list[tuple[str, int]] = []  # the open episode's laggards: (alt, first hour held)
        self.follow_throughs: list[tuple[str, int, int, int]] = []  # (alt, first 4h bar, bars, episode)
        self.fades: list[tuple[str, int, int, int]] = []  # (alt, first 4h bar, bars, episode)

    def _time(self, hour_index: int) -> int:
        return int(self.start_ms + hour_index * HOUR_MS)
