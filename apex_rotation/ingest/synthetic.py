"""The `synthetic` source: an offline, deterministic factor market with planted episodes and ground truth.

Why: the pipeline needs a default source that works without a network and whose right answers are known, so
every later stage (features, scanner, confirmation, scoring) can be measured against them. Same config (seed,
end, days, basket, thresholds) → bit-identical bars in any process. Only 1h bars are served; the store
resamples 4h/1d on UTC boundaries. The whole market is generated once per instance (numpy, well under 1 s).

The market
* The first apex asset (BTC) is the market factor: GARCH(1,1) returns (volatility clustering) scaled by a
  regime (trend_up / trend_down / chop: drift and volatility multiplier). Its volatility state also scales
  every other series' noise, so correlations hold in calm and wild periods alike.
* Other apex assets: beta · factor + noise (ETH: beta 1.05, corr 0.8). Alts: beta · (BTC or ETH) + noise, per
  `profiles()`: `high_beta` pass the rotation gates against their factor (beta ≈ 2, corr ≈ 0.85),
  `low_beta` are correlated but tame (beta ≈ 1), `low_corr` move on their own (corr ≈ 0.5). Hand-set for the
  default basket; any other symbol gets a profile drawn from seed + symbol name.
* Between planted episodes every apex 4h and 1d move stays within ±0.85 × `apex.move_threshold_pct`, so the
  apex breakouts in the data are the planted ones (the `apex_breakout` rows are exhaustive anyway).
* Volume ∝ |return| (plus noise) around a per-symbol base. Funding (a rate per hour, stamped at each 1h
  bar's close, `time = open + 1h`) follows the symbol's 7-day trend and flips sign with it. Open interest (a
  snapshot stamped at each 1h bar's close) drifts with price. Prices stay positive, open = previous close
  (no gaps), low ≤ min(open, close) ≤ max(open, close) ≤ high.

Episodes: the window is cut into slots of ~30 days. In each slot: an apex breakout on day 16 (on a 4h bar at
04:00 or 08:00 UTC, every 4th slot on a 1d bar), the catch-up of its laggards within the next three 4h bars,
open-interest shifts, and from day 19 a TD Sequential pattern on one alt, which ends before the next slot's
gate window opens, so rolling statistics recover in between.

The rotation gate (what the scanner must flag; the `laggard` rows are exactly these):
* timeframe bars: 1h bars resampled on the UTC grid (pandas `resample(tf, label="left", closed="left",
  origin="epoch")`), complete bars only. A bar's move = close / open − 1 = its close-to-close return.
* on bar t, apex X breaks out when its move ≥ `move_threshold_pct`; alt A is then flagged when its move
  ≤ `alt_lag_threshold_pct`, corr ≥ `corr_min` and beta ≥ `beta_min`, where corr (Pearson) and beta
  (cov(A, X) / var(X)) are of the simple close-to-close returns of A and X over the W bars ENDING AT t − 1
  (the breakout bar itself is left out), W = `apex.corr_window_days` (14) days of bars: 1h 336, 4h 84, 1d 14.
* Planted laggards and decoys clear every gate by a margin (corr 0.03, beta 0.15, moves 0.5 %), on raw
  returns and on returns winsorized like the feature pipeline (`audit.winsor_z` robust sigmas of the 720
  previous returns); alts whose gates are too close to call are made to follow the apex instead.

Ground truth (`ground_truth()`): one row per fact, columns `time` (UTC open time of the bar), `timeframe`,
`kind`, `symbol`, `apex_asset` (None unless the fact is about an apex breakout), `value`, `detail`:
* `regime` (1h, symbol = the market factor): a regime segment from `time`; value = drift in % per hour;
  detail names it (trend_up / trend_down / chop), its volatility multiplier and its end.
* `apex_breakout` (4h/1d, also 1h if one ever happens): every complete bar whose apex move ≥ the threshold;
  value = the move in %; detail says whether it was planted (all are, for sane configs).
* `laggard`, `decoy_low_corr`, `decoy_low_beta`, `follower`: one row per alt and apex breakout: laggard =
  flagged (see above); decoy_low_corr = lags but corr < corr_min (or no full window); decoy_low_beta = lags,
  corr passes, beta < beta_min; follower = moved more than the lag threshold. value = the alt's move in %;
  detail gives corr and beta and the planted role. When BTC and ETH both break out on a bar, each has its own
  rows (an alt can lag both; the scanner then emits one candidate).
* `breakout` (4h): a laggard's planted catch-up bar, closing above the highest high of the previous
  `market_filters.breakout_lookback` 4h bars; value = % above that high. (Not exhaustive: any rally makes
  new highs.)
* `volume_spike` (4h): the same bar, its volume ≥ 2 × `market_filters.volume_x` × the mean volume of the
  previous `breakout_lookback` 4h bars; value = that ratio.
* `funding_flip` (1h): the first bar whose funding rate has the other sign; value = the new rate in %
  per hour; exhaustive (the sign changes only at these bars, at 00:00 UTC, so on 4h/1d bars too).
* `oi_shift` (4h): open interest changed by ≥ 10 % over the bar (snapshot at its close vs at its open);
  value = that change in %. Exhaustive: natural 4h changes stay far below 10 % (below 5 % on seeds 0-29).
* `td_setup_9` / `td_countdown_13` (4h): a planted, clean TD Sequential (specs/td_sequential.md; standard
  and loose profiles agree on them): a perfected setup of one direction, then a perfected setup of the other whose countdown reaches
  13 with no cancellation, recycle or other completion in between; value = the bar's close; detail gives the
  direction. (Not exhaustive: random walks print 9s.)
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from apex_rotation.config import ApexConfig, AppConfig
from apex_rotation.ingest.base import MarketDataSource, SourceError, UnsupportedData, to_ms

HOUR_MS = 3_600_000
TIMEFRAME_HOURS = {"1h": 1, "4h": 4, "1d": 24}
GROUND_TRUTH_COLUMNS = ["time", "timeframe", "kind", "symbol", "apex_asset", "value", "detail"]
PROFILE_COLUMNS = ["role", "kind", "factor", "beta", "corr", "idio_vol", "vol", "price", "notional"]

SLOT_DAYS = 30  # one apex episode per slot: 14 days of gate window + episode + TD pattern + slack
MIN_SLOT_DAYS = 26
EPISODE_DAY = 16  # the breakout day within a slot (its 14-day window covers days 2-15)
TD_DAY = 19  # TD patterns start here and end ~5.5 days later
OI_DAY = 21  # a second open-interest shift (a flush on an alt) from here
CAP_FRACTION = 0.85  # unplanted apex 4h/1d moves stay within ±this × move threshold
CORR_MARGIN, BETA_MARGIN, MOVE_MARGIN = 0.03, 0.15, 0.005  # how clearly planted roles clear each gate
ROBUST_WINDOW, ROBUST_MIN, MAD_TO_SIGMA = 720, 48, 1.4826  # the feature pipeline's winsorizing sigma
TD_UNIT = 0.012  # log step of the TD patterns' designed closes
TD_BARS = 32
OI_SHIFT_MIN = 0.10  # planted open-interest shifts are 1.2-1.8 × this within one 4h bar
INTEREST = 1.25e-5  # funding's interest component per hour (0.01 % per 8 h)
FLIP_HYSTERESIS, FLIP_MIN_DAYS = 0.9, 5  # funding flips when the 7-day trend is this many sigmas against it
MARKET_VOL = 0.0028  # hourly stdev of the market factor at average volatility

# Apex assets: (beta vs the market factor, corr, price, hourly notional volume in quote currency).
_APEX_PROFILES = {"BTC": (1.0, 1.0, 42_000.0, 6e7), "ETH": (1.05, 0.80, 2_300.0, 3e7)}
# Alts of the default basket: (factor, beta, corr, price, hourly notional).
_ALT_PROFILES = {
    "SOL": ("ETH", 2.0, 0.86, 100.0, 8e6),
    "ARB": ("ETH", 2.2, 0.85, 1.9, 2e6),
    "OP": ("ETH", 2.3, 0.85, 3.5, 2e6),
    "INJ": ("ETH", 2.4, 0.84, 35.0, 1.5e6),
    "SUI": ("ETH", 2.2, 0.85, 1.3, 3e6),
    "APT": ("BTC", 2.1, 0.85, 9.0, 1.5e6),
    "AVAX": ("BTC", 2.0, 0.86, 35.0, 3e6),
    "SEI": ("BTC", 2.3, 0.84, 0.7, 1e6),
    "LINK": ("ETH", 1.1, 0.84, 15.0, 3e6),
    "MATIC": ("ETH", 1.0, 0.82, 0.85, 2e6),
    "POL": ("ETH", 1.0, 0.82, 0.85, 2e6),
    "LTC": ("BTC", 0.9, 0.85, 70.0, 2e6),
    "XRP": ("BTC", 1.6, 0.45, 0.6, 5e6),
    "DOGE": ("BTC", 1.8, 0.50, 0.09, 5e6),
    "HBAR": ("BTC", 1.7, 0.45, 0.08, 1e6),
    "TIA": ("ETH", 1.9, 0.52, 15.0, 1.5e6),
}
# name: (drift per hour, volatility multiplier)
_REGIMES = {"trend_up": (0.00025, 0.9), "trend_down": (-0.00025, 1.0), "chop": (0.0, 1.2)}


# ---------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """How one symbol is generated. Vols are hourly stdevs (fractions) at average market volatility."""

    symbol: str
    role: str  # "market" (the factor), "apex" or "alt"
    kind: str  # "market", "apex", "high_beta", "low_beta", "low_corr"
    factor: str | None
    beta: float
    corr: float
    idio_vol: float
    vol: float
    price: float
    notional: float


def _rng(seed: int, *keys: str) -> np.random.Generator:
    """A generator that depends only on the seed and the keys (never on Python's salted hash())."""
    words = [int.from_bytes(hashlib.sha256(k.encode()).digest()[:8], "little") for k in keys]
    return np.random.default_rng(np.random.SeedSequence([seed % 2**64, *words]))


def make_profiles(cfg: AppConfig) -> list[Profile]:
    """One profile per basket symbol (basket order): hand-set when known, else drawn from seed + name."""
    seed, apexes, gates = cfg.synthetic.seed, cfg.basket.apex_assets, cfg.apex
    market = apexes[0]
    out: dict[str, Profile] = {}
    price, notional = _APEX_PROFILES.get(market, (0, 0, 0.0, 0.0))[2:]
    if not price:
        rng = _rng(seed, "profile", market)
        price, notional = 10 ** rng.uniform(1, 4), 10 ** rng.uniform(7, 7.5)
    out[market] = Profile(market, "market", "market", None, 1.0, 1.0, 0.0, MARKET_VOL, price, notional)
    for apex in apexes[1:]:
        if apex in _APEX_PROFILES:
            beta, corr, price, notional = _APEX_PROFILES[apex]
        else:
            rng = _rng(seed, "profile", apex)
            beta, corr = rng.uniform(0.95, 1.15), 0.8
            price, notional = 10 ** rng.uniform(0, 3), 10 ** rng.uniform(7, 7.5)
        out[apex] = _factor_profile(apex, "apex", "apex", market, beta, corr, MARKET_VOL, price, notional)
    for alt in cfg.basket.alts:
        if alt in _ALT_PROFILES:
            factor, beta, corr, price, notional = _ALT_PROFILES[alt]
            factor = factor if factor in apexes else market
        else:
            factor, beta, corr, price, notional = _drawn_alt(_rng(seed, "profile", alt), apexes, gates)
        kind = "low_corr" if corr < gates.corr_min else "high_beta" if beta >= gates.beta_min else "low_beta"
        out[alt] = _factor_profile(alt, "alt", kind, factor, beta, corr, out[factor].vol, price, notional)
    return [out[s] for s in cfg.basket.names]


def profile_table(profiles: Sequence[Profile]) -> pd.DataFrame:
    """Profiles as a frame indexed by symbol, columns `PROFILE_COLUMNS`."""
    rows = [[getattr(p, c) for c in PROFILE_COLUMNS] for p in profiles]
    return pd.DataFrame(
        rows, index=pd.Index([p.symbol for p in profiles], name="symbol"), columns=PROFILE_COLUMNS
    )


def _factor_profile(
    symbol: str,
    role: str,
    kind: str,
    factor: str,
    beta: float,
    corr: float,
    factor_vol: float,
    price: float,
    notional: float,
) -> Profile:
    """beta · factor + idio has correlation `corr` with the factor when idio = beta·σf·sqrt(1/corr² − 1)."""
    idio = beta * factor_vol * math.sqrt(1 / corr**2 - 1)
    vol = beta * factor_vol / corr
    return Profile(
        symbol, role, kind, factor, float(beta), float(corr), idio, vol, float(price), float(notional)
    )


def _drawn_alt(rng: np.random.Generator, apexes: Sequence[str], gates: ApexConfig) -> tuple:
    """A profile for an unknown alt, clearly on one side of the gates: half high-beta, the rest tame."""
    factor = apexes[int(rng.integers(len(apexes)))]
    kind = rng.choice(["high_beta", "high_beta", "low_beta", "low_corr"])
    high_corr = gates.corr_min + (1 - gates.corr_min) * rng.uniform(0.45, 0.6)
    if kind == "high_beta":
        beta, corr = gates.beta_min * rng.uniform(1.3, 1.55), high_corr
    elif kind == "low_beta":
        beta, corr = gates.beta_min * rng.uniform(0.55, 0.75), high_corr
    else:
        beta, corr = gates.beta_min * rng.uniform(1.0, 1.4), gates.corr_min * rng.uniform(0.55, 0.75)
    corr = min(max(corr, 0.05), 0.995)
    return factor, float(beta), float(corr), 10 ** rng.uniform(-1.5, 2.5), 10 ** rng.uniform(5.8, 6.8)


# ---------------------------------------------------------------- small numeric helpers


@dataclass(frozen=True)
class _Bins:
    """Complete bars of `hours` hours on the UTC grid: bar j covers hours first(j) .. first(j+1) − 1."""

    hours: int
    off: int  # index of the first hour of the first complete bar
    count: int

    def first(self, j: int) -> int:
        return self.off + j * self.hours

    def of(self, hour_index: int) -> int:
        return (hour_index - self.off) // self.hours


def _bins(epoch_hour0: int, n: int, hours: int) -> _Bins:
    off = (-epoch_hour0) % hours
    return _Bins(hours, off, max(0, (n - off) // hours))


def _student(rng: np.random.Generator, n: int, df: float = 6.0) -> np.ndarray:
    """Fat-tailed noise with unit variance."""
    return rng.standard_t(df, n) / math.sqrt(df / (df - 2))


def _garch_vol(z: np.ndarray, alpha: float = 0.06, beta: float = 0.92, cap: float = 2.5) -> np.ndarray:
    """Conditional vol (long-run 1) of a GARCH(1,1) driven by z: a big move raises the next bars' vol."""
    omega, cap2, var = 1 - alpha - beta, cap * cap, 1.0
    out = [0.0] * len(z)
    for i, zi in enumerate(z.tolist()):
        out[i] = var
        var = min(omega + (alpha * zi * zi + beta) * var, cap2)
    return np.sqrt(np.asarray(out))


def corr_beta(alt: np.ndarray, apex: np.ndarray) -> tuple[float, float]:
    """Pearson corr and beta = cov/var(apex) of two return windows; NaN when undefined."""
    if len(alt) < 2 or np.isnan(alt).any() or np.isnan(apex).any():
        return math.nan, math.nan
    a, x = alt - alt.mean(), apex - apex.mean()
    sxx, saa = float(x @ x), float(a @ a)
    if sxx <= 0 or saa <= 0:
        return math.nan, math.nan
    cov = float(a @ x)
    return cov / math.sqrt(saa * sxx), cov / sxx


def _winsorized(ret: np.ndarray, lo: int, hi: int, z: float) -> np.ndarray:
    """ret[lo:hi] clipped like the feature pipeline: ±z × 1.4826 × median |r| of the 720 returns before each.

    Shortcut: the returns that lie in every bar's trailing window bound each median from below; a return
    under that floor cannot be clipped, so exact medians are needed only above it.
    """
    out, mags = ret[lo:hi].copy(), np.abs(ret)
    bars = np.arange(lo, hi)
    starts = np.maximum(0, bars - ROBUST_WINDOW)
    todo = bars
    common = mags[starts[-1] : lo]
    if len(common) and not np.isnan(common).any():
        lengths = bars - starts
        k = int(((lengths - 1) // 2 - (lengths - len(common))).min())
        if k >= 0:
            floor = z * MAD_TO_SIGMA * float(np.partition(common, k)[k])
            todo = bars[mags[lo:hi] > floor]
    for i in todo.tolist():
        past = mags[max(0, i - ROBUST_WINDOW) : i]
        past = past[~np.isnan(past)]
        if len(past) >= ROBUST_MIN:
            bound = z * MAD_TO_SIGMA * _median(past)
            if bound > 0:
                out[i - lo] = min(max(out[i - lo], -bound), bound)
    return out


def _median(x: np.ndarray) -> float:
    n = len(x)
    part = np.partition(x, [(n - 1) // 2, n // 2])
    return 0.5 * float(part[(n - 1) // 2] + part[n // 2])


def _down_run(y: np.ndarray, i: int) -> int:
    """How many bars up to i close below the close 4 bars earlier, in a row (≥ any setup count there)."""
    n = 0
    while i >= 4 and y[i] < y[i - 4] and n < 9:
        n, i = n + 1, i - 1
    return n


def _td_path(prev4: np.ndarray, u: float) -> list[float]:
    """Designed 4h log closes (in the pattern's own orientation) for bars s .. s+31, from the 4 before s.

    s: a dip below the last 4 closes (ends any up run); s+1..s+9: a rally, each close 2u above the one 4 bars
    earlier: a perfected opposite setup 9 at s+9; s+10..s+26: a decline by u/2 per bar: setup 9 at s+18
    (perfected), its countdown counting every bar from s+18 (9 at s+26; the run reaches 17, not 18);
    s+27: a bounce above the close 4 bars earlier (ends the run, no count); s+28..s+31: counts 10-13,
    the 13 at s+31 below countdown bar 8's close. Every comparison has ≥ u/2 of slack in closes and
    ≥ 3u/4 against highs/lows, far above the patterns' wicks (≤ 0.2 %).
    """
    dip = float(prev4.min()) - u
    top = float(prev4[1:].max())
    rally = [top + 0.5 * u * j for j in range(1, 10)]
    decline = [top + (2.5 - 0.5 * k) * u for k in range(17)]
    tail = [top - 3.5 * u, top - 6.5 * u, top - 7.0 * u, top - 7.5 * u, top - 8.0 * u]
    return [dip, *rally, *decline, *tail]


# ---------------------------------------------------------------- the market


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


class _Builder:
    """Generates one market: base factor model, planted episodes (in time order), then the derived series."""

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

    def _time(self, hour_index: int) -> int:
        return int(self.start_ms + hour_index * HOUR_MS)

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

    # ------------------------------------------------------------ planting

    def _plant(self) -> None:
        days = self.bins["1d"]
        if days.count < MIN_SLOT_DAYS:
            return
        n_slots = max(1, days.count // SLOT_DAYS)
        slot = days.count // n_slots
        rng = _rng(self.seed, "plant")
        first_apex = int(rng.integers(len(self.apexes)))
        for k in range(n_slots):
            d0 = days.first(k * slot)
            tf = "1d" if k % 4 == 3 else "4h"
            primary = self.apexes[(first_apex + k) % len(self.apexes)]
            self._episode(rng, k + 1, d0 + EPISODE_DAY * 24, tf, primary)
            self._td(rng, d0 + TD_DAY * 24, 1 if k % 2 == 0 else -1, limit=days.first((k + 1) * slot))
            who = self.alts or self.apexes
            h = d0 + OI_DAY * 24 + 4 * int(rng.integers(0, 18))
            flush = -OI_SHIFT_MIN * rng.uniform(1.2, 1.8)
            self.oi_plans.append((who[int(rng.integers(len(who)))], h, flush, "a flush"))

    def _statuses(self, tf: str, j: int, breaking: Sequence[str]) -> dict[tuple[str, str], str]:
        """Gate status of every (alt, breaking apex) for bar j of `tf`: 'pass', 'fail_corr' or 'fail_beta'
        when clear by the margins on raw AND on winsorized returns, else 'unclear'."""
        b, w = self.bins[tf], self.window_days * 24 // TIMEFRAME_HOURS[tf]
        first_valid = 1 if b.off == 0 else 0
        if j - w < first_valid:
            return {(alt, x): "unclear" for alt in self.alts for x in breaking}
        start = max(first_valid, j - w - ROBUST_WINDOW)
        sums = (
            self.R[:, b.first(start) : b.first(j)].reshape(len(self.symbols), j - start, b.hours).sum(axis=2)
        )
        ret = np.expm1(sums)
        z, wins = self.cfg.audit.winsor_z, {}

        def winsorized(s: str) -> np.ndarray:
            if s not in wins:
                wins[s] = _winsorized(ret[self.row[s]], j - start - w, j - start, z)
            return wins[s]

        out = {}
        for alt in self.alts:
            for x in breaking:
                status = self._clear(ret[self.row[alt], -w:], ret[self.row[x], -w:])
                if status != "unclear" and self._clear(winsorized(alt), winsorized(x)) != status:
                    status = "unclear"
                out[(alt, x)] = status
        return out

    def _clear(self, alt: np.ndarray, apex: np.ndarray) -> str:
        g = self.cfg.apex
        corr, beta = corr_beta(alt, apex)
        if corr >= g.corr_min + CORR_MARGIN and beta >= g.beta_min + BETA_MARGIN:
            return "pass"
        if corr <= g.corr_min - CORR_MARGIN:
            return "fail_corr"
        if corr >= g.corr_min + CORR_MARGIN and beta <= g.beta_min - BETA_MARGIN:
            return "fail_beta"
        return "unclear"

    def _episode(self, rng: np.random.Generator, number: int, day_start: int, tf: str, primary: str) -> None:
        thr, lag = self.thr, self.lag
        targets = {primary: rng.uniform(thr + 0.008, thr + 0.03)}
        for apex in self.apexes:
            if apex != primary:
                both = rng.random() < 0.3
                targets[apex] = (
                    rng.uniform(thr + 0.008, thr + 0.025) if both else rng.uniform(0.25, 0.6) * thr
                )
        bar4, n_lag, order = int(rng.integers(1, 3)), int(rng.integers(1, 4)), rng.permutation(len(self.alts))

        plans = []
        for t in [tf, "4h"] if tf == "1d" else ["4h"]:
            breaking = [a for a in self.apexes if targets[a] >= thr]
            plans += [(t, breaking)] + ([(t, [primary])] if len(breaking) > 1 else [])
        for t, breaking in plans:
            start = day_start if t == "1d" else day_start + 4 * bar4
            status = self._statuses(t, self.bins[t].of(start), breaking)
            candidates = [
                self.alts[i]
                for i in order
                if status[(self.alts[i], primary)] == "pass"
                and all(status[(self.alts[i], x)] != "unclear" for x in breaking)
            ]
            if candidates:
                break
        tf = t
        for apex in self.apexes:
            if apex not in breaking and targets[apex] >= thr:
                targets[apex] = rng.uniform(0.25, 0.6) * thr

        k = TIMEFRAME_HOURS[tf]
        bar, day_end = slice(start, start + k), day_start + 24
        for apex, target in targets.items():
            r = self.R[self.row[apex]]
            self._set_apex_bar(r, bar, target)
            if tf == "4h":  # give back part of it later that day, so the 1d bar does not break out too
                excess = r[day_start:day_end].sum() - (self.cap_log - 0.005)
                if excess > 0:
                    r[start + k : day_end] -= excess / (day_end - start - k)
        affected = slice(start, day_end)
        for alt in self.alts:
            p, i = self.prof[alt], self.row[alt]
            self.R[i, affected] = p.beta * self.R[self.row[p.factor], affected] + self.E[i, affected]

        laggards = candidates[:n_lag]
        decoys = []
        for kind in ("fail_beta", "fail_corr"):
            pick = next(
                (
                    self.alts[i]
                    for i in order
                    if status[(self.alts[i], primary)] == kind
                    and all(status[(self.alts[i], x)] in ("fail_beta", "fail_corr") for x in breaking)
                ),
                None,
            )
            if pick:
                decoys.append(pick)
        roles = {}
        for alt in self.alts:
            seg = self.R[self.row[alt], bar]
            if alt in laggards or alt in decoys:
                target = rng.uniform(lag - 0.025, lag - MOVE_MARGIN)
                seg[:] = 0.3 * (seg - seg.mean()) + math.log1p(target) / k
                for x in breaking:
                    roles[(alt, x)] = {"pass": "laggard", "fail_corr": "decoy_low_corr"}.get(
                        status[(alt, x)], "decoy_low_beta"
                    )
            else:
                if math.expm1(seg.sum()) < lag + 0.01:
                    seg += (math.log1p(rng.uniform(lag + 0.01, lag + 0.03)) - seg.sum()) / k
                for x in breaking:
                    roles[(alt, x)] = "follower"
        self.episodes[(tf, self.bins[tf].of(start))] = (number, roles)

        bins4 = self.bins["4h"]
        last4 = bins4.of(start + k - 1)
        for alt in laggards:
            self._catch_up(rng, alt, last4 + int(rng.integers(1, 4)), number)
        build_up = OI_SHIFT_MIN * rng.uniform(1.2, 1.8)
        self.oi_plans.append((primary, start, build_up, f"with apex breakout #{number}"))

    def _set_apex_bar(self, r: np.ndarray, bar: slice, target: float) -> None:
        """Make the bar's log returns sum to log(1 + target), keeping some of their shape, with no 1h bar
        (and, for a 1d bar, no 4h bar inside it) moving past the cap."""
        seg = r[bar]
        k, shape, total = len(seg), seg - seg.mean(), math.log1p(target)
        for alpha in (0.6, 0.3, 0.0):
            new = alpha * shape + total / k
            parts = new.reshape(-1, 4).sum(axis=1) if k == 24 else np.array([0.0])
            if np.abs(new).max() < self.cap_log and np.abs(parts).max() < self.cap_log - 0.003:
                break
        seg[:] = new

    def _catch_up(self, rng: np.random.Generator, alt: str, j: int, number: int) -> None:
        """The laggard rallies on 4h bar j, closing ≥ 1 % above the highest high of the lookback bars."""
        b4, i = self.bins["4h"], self.row[alt]
        if j - self.lookback < 0 or j >= b4.count:
            return
        h, lo = b4.first(j), b4.first(j - self.lookback)
        close = self.prof[alt].price * np.exp(np.cumsum(self.R[i, :h]))
        opens = np.concatenate(([self.prof[alt].price], close[:-1]))
        highs = np.maximum(opens, close)[lo:h] * np.exp(self.wick_up[i, lo:h])
        need = math.log(float(highs.max()) * 1.01 / close[-1])
        target = max(math.log1p(rng.uniform(0.05, 0.09)), need)
        seg = self.R[i, h : h + 4]
        seg[:] = 0.4 * (seg - seg.mean()) + target / 4
        self.catchups.append((alt, j, number))

    def _td(self, rng: np.random.Generator, hour: int, sign: int, limit: int) -> None:
        """Plant `_td_path` on one alt's 4h closes: sign +1 ends in a buy countdown 13, −1 in a sell one.

        It starts where the alt's own down run (in the pattern's orientation) is short, so the dip cannot
        complete a natural setup; an alt that trends too hard over the next two days hands over to the next.
        """
        b4 = self.bins["4h"]
        s0, last = b4.of(hour), b4.of(min(limit, b4.first(b4.count))) - TD_BARS
        first_pick = int(rng.integers(max(1, len(self.alts))))
        for alt in self.alts[first_pick:] + self.alts[:first_pick]:  # the first alt whose tape allows it
            i = self.row[alt]
            log_close = math.log(self.prof[alt].price) + np.cumsum(self.R[i])
            y = sign * log_close[b4.off + 3 : b4.first(b4.count) : 4]
            s = next((s for s in range(max(s0, 12), min(s0 + 12, last + 1)) if _down_run(y, s - 1) < 8), None)
            if s is not None:
                break
        else:
            return
        prev = y[s - 1]
        for b, x in enumerate(_td_path(y[s - 4 : s], TD_UNIT)):
            h = b4.first(s + b)
            noise = rng.normal(0.0, 0.0003, 4)
            self.R[i, h : h + 4] = sign * (x - prev) / 4 + (noise - noise.mean())
            prev = x
        span = slice(b4.first(s), b4.first(s + TD_BARS))
        size = span.stop - span.start
        self.wick_up[i, span] = np.minimum(np.abs(rng.normal(0.0, 0.0004, size)), 0.001)
        self.wick_down[i, span] = np.minimum(np.abs(rng.normal(0.0, 0.0004, size)), 0.001)
        first, second = ("sell", "buy") if sign > 0 else ("buy", "sell")
        self.td_marks += [
            (alt, s + 9, "td_setup_9", first, s + 1),
            (alt, s + 18, "td_setup_9", second, s + 10),
            (alt, s + 31, "td_countdown_13", second, s + 18),
        ]

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

    # ------------------------------------------------------------ ground truth

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
            rows.append((when, "4h", "breakout", alt, None, (close4[i, j] / level - 1) * 100, detail))
            ratio = vol4[i, j] / vol4[i, j - L : j].mean()
            detail = (
                f"catch-up of episode #{number}: volume {ratio:.2f}x the mean of the previous {L} 4h bars"
            )
            rows.append((when, "4h", "volume_spike", alt, None, ratio, detail))
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
    """The role of an alt on an apex breakout bar, by the gate definition in the module docstring."""
    if move_pct > gates.alt_lag_threshold_pct:
        return "follower"
    if not corr >= gates.corr_min:
        return "decoy_low_corr"
    if not beta >= gates.beta_min:
        return "decoy_low_beta"
    return "laggard"


def build_market(cfg: AppConfig) -> SyntheticMarket:
    """Generate the whole synthetic market for a config (deterministic)."""
    return _Builder(cfg).build()


# ---------------------------------------------------------------- the source


class SyntheticSource(MarketDataSource):
    """Serves the generated market like a venue: 1h bars, hourly funding, open-interest history."""

    name = "synthetic"
    supports_funding = True
    supports_open_interest = True
    has_open_interest_history = True

    def __init__(self, cfg: AppConfig):
        self.cfg = cfg

    @cached_property
    def market(self) -> SyntheticMarket:
        return build_market(self.cfg)

    def history_window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last 1h open time: [end − days, end), every bar closed by `synthetic.end`."""
        end = pd.Timestamp(self.cfg.synthetic.end).floor("h")
        return end - pd.Timedelta(days=self.cfg.synthetic.days), end - pd.Timedelta(hours=1)

    def ground_truth(self) -> pd.DataFrame:
        return self.market.truth.copy()

    def profiles(self) -> pd.DataFrame:
        """Per symbol: role, kind, factor, beta, corr (targets vs the factor), idio_vol and vol (hourly
        stdevs at average volatility), starting price and hourly notional volume. Needs no generation."""
        return profile_table(make_profiles(self.cfg))

    def _row(self, symbol: str) -> int:
        if symbol not in self.cfg.basket.names:
            raise SourceError(f"synthetic: unknown symbol {symbol!r}; the basket is {self.cfg.basket.names}")
        return self.market.symbols.index(symbol)

    def _span(self, times: np.ndarray, since, until, symbol: str, timeframe: str) -> slice:
        lo, hi = (
            to_ms(t, what, source="synthetic", symbol=symbol, timeframe=timeframe)
            for t, what in ((since, "since"), (until, "until"))
        )
        return slice(int(np.searchsorted(times, lo, "left")), int(np.searchsorted(times, hi, "right")))

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        i = self._row(symbol)
        if timeframe != "1h":
            raise UnsupportedData(
                f"synthetic serves 1h bars only (the store resamples 4h/1d); asked for {symbol} {timeframe}"
            )
        m = self.market
        sel = self._span(m.open_ms, since, until, symbol, timeframe)
        frame = pd.DataFrame(
            {
                "open_time": m.open_ms[sel],
                "open": m.open[i, sel],
                "high": m.high[i, sel],
                "low": m.low[i, sel],
                "close": m.close[i, sel],
                "volume": m.volume[i, sel],
            }
        )
        frame["ticker"] = symbol
        return frame

    def fetch_funding(self, symbol: str, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        """Hourly rates stamped at each bar's close (`time` = open + 1h); premium = rate − interest."""
        i, m = self._row(symbol), self.market
        times = m.open_ms + HOUR_MS
        sel = self._span(times, since, until, symbol, "funding")
        rate = m.funding[i, sel]
        return pd.DataFrame({"time": times[sel], "rate": rate, "premium": rate - INTEREST})

    def fetch_open_interest_history(
        self, symbol: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        """Open interest (base units) snapshotted at each bar's close (`time` = open + 1h)."""
        i, m = self._row(symbol), self.market
        times = m.open_ms + HOUR_MS
        sel = self._span(times, since, until, symbol, "open_interest")
        return pd.DataFrame({"time": times[sel], "open_interest": m.open_interest[i, sel]})

    def fetch_open_interest(self, symbols: Sequence[str]) -> pd.DataFrame:
        """The latest snapshot (at `synthetic.end`) for each symbol."""
        m, rows = self.market, []
        for symbol in symbols:
            i = self._row(symbol)
            end = int(m.open_ms[-1] + HOUR_MS)
            rows.append((symbol, end, m.open_interest[i, -1], m.funding[i, -1], m.close[i, -1]))
        return pd.DataFrame(rows, columns=["symbol", "time", "open_interest", "funding", "mark_price"])
