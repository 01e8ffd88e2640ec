"""The factor market: regimes, GARCH-like volatility, factor returns, then prices, volume, funding and
open interest, assembled into a `SyntheticMarket` by `build_market`.

Why a module of its own: this is the generator's spine; it runs the planting (episodes.py) between the base
returns and the derived series, and the ground truth (truth.py) last. See docs/synthetic-market.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.ingest.synthetic.episodes import _Planter
from apex_rotation.ingest.synthetic.numeric import _garch_vol, _rng, _student
from apex_rotation.ingest.synthetic.profiles import MARKET_VOL, profile_table
from apex_rotation.ingest.synthetic.truth import _TruthTable

INTEREST = 1.25e-5  # funding's interest component per hour (0.01 % per 8 h)
FLIP_HYSTERESIS, FLIP_MIN_DAYS = 0.9, 5  # funding flips when the 7-day trend is this many sigmas against it

# name: (drift per hour, volatility multiplier)
_REGIMES = {"trend_up": (0.00025, 0.9), "trend_down": (-0.00025, 1.0), "chop": (0.0, 1.2)}


@dataclass
class SyntheticMarket:
    """Arrays of shape (symbol, hour) in basket order; funding and open interest are stamped at bar close."""

    symbols: list[str]
    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    funding: np.ndarray
    open_interest: np.ndarray
    truth: pd.DataFrame
    profiles: pd.DataFrame


class _Builder(_Planter, _TruthTable):
    """Generates one market: base factor model, planted episodes (in time order), then the derived series.

    The state lives in `_State` (state.py), the planting in `_Planter` (episodes.py), the ground truth in
    `_TruthTable` (truth.py).
    """

    def build(self) -> SyntheticMarket:
        self._base()
        self._plant()
        close, open_, high, low = self._prices()
        volume = self._volume(close)
        funding = self._funding()
        oi = self._open_interest(close)
        truth = self._truth(open_, high, close, volume, oi)
        profiles = profile_table([self.prof[s] for s in self.symbols])
        return SyntheticMarket(
            self.symbols, self.open_ms, open_, high, low, close, volume, funding, oi, truth, profiles
        )

    # ------------------------------------------------------------ base factor model

    def _base(self) -> None:
        n, market = self.n, self.apexes[0]
        drift, mult = self._regimes(_rng(self.seed, "regimes"))
        z = _student(_rng(self.seed, "returns", market), n)
        self.v = v = mult * _garch_vol(z)
        m = self.row[market]
        self.R[m] = drift + MARKET_VOL * v * z
        self._clamp(self.R[m])
        for apex in self.apexes[1:]:
            self._derive(apex)
            self._clamp(self.R[self.row[apex]])
        for alt in self.alts:
            self._derive(alt)
        for s, i in self.row.items():
            rng = _rng(self.seed, "wicks", s)
            scale = 0.35 * self.prof[s].vol * v
            self.wick_up[i] = np.minimum(np.abs(rng.standard_normal(n)) * scale, 0.05)
            self.wick_down[i] = np.minimum(np.abs(rng.standard_normal(n)) * scale, 0.05)

    def _derive(self, symbol: str) -> None:
        p, i = self.prof[symbol], self.row[symbol]
        self.E[i] = p.idio_vol * self.v * _student(_rng(self.seed, "returns", symbol), self.n)
        self.R[i] = p.beta * self.R[self.row[p.factor]] + self.E[i]

    def _regimes(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Segments of 7-30 days; a trend is mostly followed by chop, chop by either trend."""
        drift, mult = np.zeros(self.n), np.ones(self.n)
        names = list(_REGIMES)
        state, pos = names[int(rng.integers(3))], 0
        while pos < self.n:
            end = min(self.n, pos + int(rng.integers(7 * 24, 31 * 24)))
            d, m = _REGIMES[state]
            drift[pos:end], mult[pos:end] = d, m
            until = pd.Timestamp(self._time(end), unit="ms", tz="UTC").isoformat()
            detail = f"{state}: drift {d * 100:+.3f} %/h, volatility x{m}, until {until}"
            self.rows.append((self._time(pos), "1h", "regime", self.apexes[0], None, d * 100, detail))
            if state == "chop":
                state = names[int(rng.integers(2))]
            else:
                state = (
                    "chop" if rng.random() < 0.65 else ("trend_down" if state == "trend_up" else "trend_up")
                )
            pos = end
        return drift, mult

    def _clamp(self, r: np.ndarray) -> None:
        """Keep every 4h and 1d sum of log returns within ±cap (shifting the bar's hours evenly)."""
        groups = [self.epoch_hours // k - self.epoch_hours[0] // k for k in (4, 24)]
        for _ in range(4):
            for g in groups:
                sums, counts = np.bincount(g, weights=r), np.bincount(g)
                excess = np.sign(sums) * np.maximum(np.abs(sums) - (self.cap_log - 0.001), 0.0)
                r -= (excess / counts)[g]

    # ------------------------------------------------------------ derived series

    def _prices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        price0 = np.array([self.prof[s].price for s in self.symbols])
        close = price0[:, None] * np.exp(np.cumsum(self.R, axis=1))
        open_ = np.empty_like(close)
        open_[:, 0], open_[:, 1:] = price0, close[:, :-1]
        high = np.maximum(open_, close) * np.exp(self.wick_up)
        low = np.minimum(open_, close) * np.exp(-self.wick_down)
        return close, open_, high, low

    def _volume(self, close: np.ndarray) -> np.ndarray:
        """Base units: notional / price × (0.5 + |r| / σ) × noise; planted spikes scaled to ≥ 2·volume_x."""
        volume = np.empty_like(close)
        for s, i in self.row.items():
            p = self.prof[s]
            noise = np.exp(0.3 * _rng(self.seed, "volume", s).standard_normal(self.n) - 0.045)
            volume[i] = p.notional / close[i] * (0.5 + np.abs(self.R[i]) / p.vol) * noise
        b4, want = self.bins["4h"], 2 * self.cfg.market_filters.volume_x
        rng = _rng(self.seed, "spikes")
        for alt, j, _ in self.catchups:
            i, h = self.row[alt], b4.first(j)
            prior = volume[i, b4.first(j - self.lookback) : h].reshape(self.lookback, 4).sum(axis=1).mean()
            ratio = volume[i, h : h + 4].sum() / prior
            target = want * rng.uniform(1.1, 1.5)
            if ratio < target:
                volume[i, h : h + 4] *= target / ratio
        return volume

    def _funding(self) -> np.ndarray:
        """Rate per hour paid at each bar's close: sign from the 7-day trend (decided daily at 00:00 UTC from
        the bars before, with hysteresis and a minimum stay), size growing with the trend's strength."""
        out = np.empty((len(self.symbols), self.n))
        day_starts = np.flatnonzero(self.epoch_hours % 24 == 0)
        for s, i in self.row.items():
            r = self.R[i]
            csum = np.concatenate(([0.0], np.cumsum(r)))
            t = np.arange(self.n)
            lo = np.maximum(0, t - 167)
            trend = (csum[t + 1] - csum[lo]) / (t + 1 - lo)
            unit = self.prof[s].vol / math.sqrt(168)
            day_sign, cur, last_flip = [1.0], 1.0, -FLIP_MIN_DAYS
            for d, h in enumerate(day_starts.tolist()):
                turned = trend[h - 1] * cur < -FLIP_HYSTERESIS * unit if h > 0 else False
                if turned and d - last_flip >= FLIP_MIN_DAYS:
                    cur, last_flip = -cur, d
                day_sign.append(cur)
            sign = np.asarray(day_sign)[np.searchsorted(day_starts, t, side="right")]
            rng = _rng(self.seed, "funding", s)
            size = INTEREST * (0.4 + np.abs(trend) / unit) * np.exp(0.25 * rng.standard_normal(self.n) - 0.03)
            out[i] = sign * size
            for h in np.flatnonzero(np.diff(sign) != 0) + 1:
                was, now = ("positive", "negative") if out[i, h] < 0 else ("negative", "positive")
                paid = pd.Timestamp(self._time(h + 1), unit="ms", tz="UTC").isoformat()
                detail = f"funding {was} -> {now}; first new-sign rate paid at {paid}"
                self.rows.append((self._time(h), "1h", "funding_flip", s, None, out[i, h] * 100, detail))
        return out

    def _open_interest(self, close: np.ndarray) -> np.ndarray:
        """Snapshot at each bar's close: base × exp(0.1·(log price − its 30-day mean) + detrended noise),
        plus the planted shifts (a ramp over the 4h bar, then decaying over ~4 days)."""
        out = np.empty_like(close)
        t = np.arange(self.n)
        lo = np.maximum(0, t - 719)

        def trailing_mean(x: np.ndarray) -> np.ndarray:
            c = np.concatenate(([0.0], np.cumsum(x)))
            return (c[t + 1] - c[lo]) / (t + 1 - lo)

        for s, i in self.row.items():
            p = self.prof[s]
            logp = np.log(close[i])
            walk = np.cumsum(0.002 * _rng(self.seed, "oi", s).standard_normal(self.n))
            out[i] = math.log(20 * p.notional / p.price) + 0.1 * (logp - trailing_mean(logp))
            out[i] += walk - trailing_mean(walk)
        decay = np.exp(-np.arange(1, 8 * 96) / 96.0)
        for s, h, target, _ in sorted(self.oi_plans, key=lambda plan: plan[1]):
            x = out[self.row[s]]
            if h < 1 or h + 4 > self.n:
                continue
            jump = math.log1p(target) - (x[h + 3] - x[h - 1])
            x[h : h + 4] += jump * np.arange(1, 5) / 4
            tail = x[h + 4 : h + 4 + len(decay)]
            tail += jump * decay[: len(tail)]
        return np.exp(out)


def build_market(cfg: AppConfig) -> SyntheticMarket:
    """Generate the whole synthetic market for a config (deterministic)."""
    return _Builder(cfg).build()
