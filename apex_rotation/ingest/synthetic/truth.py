"""The ground-truth table: every planted fact, measured on the final arrays, one row per fact.

Why a module of its own: the truth is what later stages are scored against, so it is measured by the gate
definition on what the source serves, not taken from what the planting intended. See docs/synthetic-market.md.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from apex_rotation.config import ApexConfig
from apex_rotation.ingest.synthetic.numeric import TIMEFRAME_HOURS, corr_beta
from apex_rotation.ingest.synthetic.state import _State

GROUND_TRUTH_COLUMNS = ["time", "timeframe", "kind", "symbol", "apex_asset", "value", "detail"]


class _TruthTable(_State):
    """Builds the ground-truth frame from the final arrays and the facts the build recorded."""

    def _bar_series(self, values: np.ndarray, first: np.ndarray, tf: str) -> tuple[np.ndarray, np.ndarray]:
        """(close of each complete bar, close before it) per symbol; `first` is the value before hour 0."""
        b = self.bins[tf]
        closes = values[:, b.off + b.hours - 1 : b.first(b.count) : b.hours]
        before = values[:, b.off - 1] if b.off > 0 else first
        return closes, np.concatenate([before[:, None], closes[:, :-1]], axis=1)

    def _truth(
        self, open_: np.ndarray, high: np.ndarray, close: np.ndarray, volume: np.ndarray, oi: np.ndarray
    ) -> pd.DataFrame:
        """Every planted fact, measured on the final arrays; apex roles by the gate definition, exhaustively."""
        rows = list(self.rows)
        g = self.cfg.apex
        for tf, k in TIMEFRAME_HOURS.items():
            b = self.bins[tf]
            if b.count == 0:
                continue
            closes, prevs = self._bar_series(close, open_[:, 0], tf)
            move = closes / prevs - 1
            ret = move.copy()
            if b.off == 0:
                ret[:, 0] = np.nan  # the first bar's return is unknown to anyone resampling the bars
            w = self.window_days * 24 // k
            for apex in self.apexes:
                x = self.row[apex]
                for j in np.flatnonzero(move[x] * 100 >= g.move_threshold_pct):
                    number, roles = self.episodes.get((tf, int(j)), (None, {}))
                    when = self._time(b.first(j))
                    how = f"planted episode #{number}" if number else "unplanned"
                    rows.append((when, tf, "apex_breakout", apex, apex, move[x, j] * 100, how))
                    for alt in self.alts:
                        a = self.row[alt]
                        lo = j - w
                        corr, beta = (
                            corr_beta(ret[a, lo:j], ret[x, lo:j]) if lo >= 0 else (math.nan, math.nan)
                        )
                        kind = _label(move[a, j] * 100, corr, beta, g)
                        planted = roles.get((alt, apex))
                        detail = (
                            f"corr {corr:.3f} beta {beta:.3f} vs {apex}, {w} {tf} bars to the bar before; "
                            + (f"planted as {planted}" if planted else "not planted")
                        )
                        rows.append((when, tf, kind, alt, apex, move[a, j] * 100, detail))
        b4 = self.bins["4h"]
        hi4 = high[:, b4.off : b4.first(b4.count)].reshape(len(self.symbols), b4.count, 4).max(axis=2)
        vol4 = volume[:, b4.off : b4.first(b4.count)].reshape(len(self.symbols), b4.count, 4).sum(axis=2)
        close4, _ = self._bar_series(close, open_[:, 0], "4h")
        for alt, j, number in self.catchups:
            i, L = self.row[alt], self.lookback
            level = hi4[i, j - L : j].max()
            when = self._time(b4.first(j))
            detail = f"catch-up of episode #{number}: close {close4[i, j]:.6g} > {L}-bar high {level:.6g}"
            if (alt, b4.first(j + 1)) in self.open_holds:
                detail += "; still open at the end of the data (the alt holds its gain through the last bars)"
            rows.append((when, "4h", "breakout", alt, None, (close4[i, j] / level - 1) * 100, detail))
            ratio = vol4[i, j] / vol4[i, j - L : j].mean()
            detail = (
                f"catch-up of episode #{number}: volume {ratio:.2f}x the mean of the previous {L} 4h bars"
            )
            rows.append((when, "4h", "volume_spike", alt, None, ratio, detail))
        for kind, facts, what in (
            ("follow_through", self.follow_throughs, "keeps catching up after its catch-up bar"),
            ("fade", self.fades, "passed the gates but fades instead of catching up"),
        ):
            for alt, j, bars, number in facts:
                i = self.row[alt]
                change = (close4[i, j + bars - 1] / close4[i, j - 1] - 1) * 100
                detail = f"episode #{number}: {what}, {change:+.2f}% over {bars} 4h bars"
                rows.append((self._time(b4.first(j)), "4h", kind, alt, None, change, detail))
        for alt, j, kind, direction, start in self.td_marks:
            since = pd.Timestamp(self._time(b4.first(start)), unit="ms", tz="UTC").isoformat()
            what = "setup 9 (perfected)" if kind == "td_setup_9" else "countdown 13"
            detail = (
                f"{direction} {what}; "
                + ("setup from " if kind == "td_setup_9" else "counting from ")
                + since
            )
            rows.append((self._time(b4.first(j)), "4h", kind, alt, None, close4[self.row[alt], j], detail))
        for s, h, _, why in self.oi_plans:
            if h >= 1 and h + 4 <= self.n:
                change = (oi[self.row[s], h + 3] / oi[self.row[s], h - 1] - 1) * 100
                rows.append((self._time(h), "4h", "oi_shift", s, None, change, f"open interest {why}"))
        truth = pd.DataFrame(rows, columns=GROUND_TRUTH_COLUMNS)
        truth["time"] = pd.to_datetime(truth["time"].astype("int64"), unit="ms", utc=True)
        truth["value"] = truth["value"].astype("float64")
        truth["apex_asset"] = truth["apex_asset"].astype(object).where(truth["apex_asset"].notna(), None)
        return truth.sort_values(["time", "timeframe", "kind", "symbol"], kind="stable", ignore_index=True)


def _label(move_pct: float, corr: float, beta: float, gates: ApexConfig) -> str:
    """The role of an alt on an apex breakout bar, by the gate definition in docs/synthetic-market.md."""
    if move_pct > gates.alt_lag_threshold_pct:
        return "follower"
    if not corr >= gates.corr_min:
        return "decoy_low_corr"
    if not beta >= gates.beta_min:
        return "decoy_low_beta"
    return "laggard"
