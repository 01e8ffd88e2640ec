"""Symbol profiles: how each basket symbol is generated (factor, beta, corr, volatility, price, volume).

Why a module of its own: profiles need no generation (`SyntheticSource.profiles()` serves them directly),
and the hand-set table for the default basket is data worth reading on its own. See docs/synthetic-market.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from apex_rotation.config import ApexConfig, AppConfig
from apex_rotation.ingest.synthetic.numeric import _rng

PROFILE_COLUMNS = ["role", "kind", "factor", "beta", "corr", "idio_vol", "vol", "price", "notional"]
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
