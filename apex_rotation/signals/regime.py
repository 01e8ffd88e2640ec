"""Trend vs chop, and how much a TD Sequential exhaustion ("fade") signal is worth in each regime.

`classify` labels each bar:

* "trend_up"   ADX >= adx_trend, ema_20 > ema_50 > ema_200, and volatility inside its band;
* "trend_down" the same with ema_20 < ema_50 < ema_200;
* "chop"       anything else with all inputs known (weak ADX, a tangled stack, or volatility outside the band:
               a blow-off spike is a climax, not a trend to lean on);
* "unknown"    an input is NaN (indicator warm-up, or too little volatility history).

Volatility is ATR/close. Its band is the [vol_band_low, vol_band_high] percentiles of the PREVIOUS
`vol_window` bars' ATR/close (bar t excluded, so a spike is judged against the history it breaks from; linear
interpolation, at least `vol_min_periods` known values; edges inclusive). The lower edge is off by default
(`vol_band_low=None`): a quiet, orderly trend is still a trend, and calling it chop would re-enable the
counter-trend TD fades this regime exists to hold back. Bar t uses bars <= t only.

A TD setup 9 is an exhaustion count: a sell 9 says "this rally is tired" (fade it / skip the long), a buy 9
the mirror. Against a trend these are the classic losing trades (a strong trend prints 9 after 9), so
`td_fade_weight` down-weights or blocks them there and leaves them at full weight in chop.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from apex_rotation.config import RegimeConfig

Regime = Literal["trend_up", "trend_down", "chop", "unknown"]
REGIMES = ("trend_up", "trend_down", "chop", "unknown")
INPUT_COLUMNS = ("close", "atr", "adx", "ema_20", "ema_50", "ema_200")


def volatility_band(df: pd.DataFrame, cfg: RegimeConfig) -> pd.DataFrame:
    """ATR/close (`vol`) and its past-only percentile band (`vol_lo`, `vol_hi`; `vol_lo` 0 when off)."""
    vol = (df["atr"].astype(float) / df["close"].astype(float)).replace([np.inf, -np.inf], np.nan)
    past = vol.shift(1).rolling(cfg.vol_window, min_periods=cfg.vol_min_periods)
    vol_hi = past.quantile(cfg.vol_band_high / 100, interpolation="linear")
    if cfg.vol_band_low is None:
        vol_lo = vol_hi * 0.0  # no lower edge, but NaN wherever the band itself is not known yet
    else:
        vol_lo = past.quantile(cfg.vol_band_low / 100, interpolation="linear")
    return pd.DataFrame({"vol": vol, "vol_lo": vol_lo, "vol_hi": vol_hi}, index=df.index)


def classify(df: pd.DataFrame, cfg: RegimeConfig | None = None) -> pd.Series:
    """One regime label per bar (see the module docstring), as a Series named "regime"."""
    cfg = cfg or RegimeConfig()
    missing = [c for c in INPUT_COLUMNS if c not in df.columns]
    if missing:
        raise KeyError(f"regime.classify needs columns {missing}")
    band = volatility_band(df, cfg)
    adx, e20, e50, e200 = (df[c].astype(float) for c in ("adx", "ema_20", "ema_50", "ema_200"))
    inputs = pd.concat([adx, e20, e50, e200, band["vol"], band["vol_lo"], band["vol_hi"]], axis=1)
    known = np.isfinite(inputs.to_numpy(float)).all(axis=1)
    trending = (adx >= cfg.adx_trend) & (band["vol"] >= band["vol_lo"]) & (band["vol"] <= band["vol_hi"])
    up = trending & (e20 > e50) & (e50 > e200)
    down = trending & (e20 < e50) & (e50 < e200)
    labels = np.select(
        [~known, up.to_numpy(), down.to_numpy()], ["unknown", "trend_up", "trend_down"], "chop"
    )
    return pd.Series(labels.astype(object), index=df.index, name="regime")


def td_fade_weight(regime: str, td_setup_type: str | None, td_setup_count: int, cfg: RegimeConfig) -> float:
    """Weight in [0, 1] of a TD exhaustion signal on this bar; 0.0 when the bar completes no setup.

    Only a completed setup (count exactly 9) is a fade signal. A sell 9 in "trend_up" or a buy 9 in
    "trend_down" fights the trend: 0 when `block_td_fades_in_trend`, else `trend_fade_weight`. "unknown" is
    treated like a trend (a fade gets full weight only where chop is established). Otherwise 1.0: every
    fade in chop, and a 9 in the trend's own direction (a sell 9 in a downtrend is a pullback ending).
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {REGIMES}")
    if td_setup_type is None or pd.isna(td_setup_type):
        return 0.0
    if td_setup_type not in ("buy", "sell"):
        raise ValueError(f"td_setup_type must be 'buy', 'sell' or None, got {td_setup_type!r}")
    if td_setup_count != 9:
        return 0.0
    against = {"sell": ("trend_up", "unknown"), "buy": ("trend_down", "unknown")}[td_setup_type]
    if regime in against:
        return 0.0 if cfg.block_td_fades_in_trend else cfg.trend_fade_weight
    return 1.0


def td_fade_weights(
    regime: pd.Series, td_setup_type: pd.Series, td_setup_count: pd.Series, cfg: RegimeConfig
) -> pd.Series:
    """`td_fade_weight` bar by bar (aligned Series, e.g. `classify(df)` and the TD columns)."""
    values = [
        td_fade_weight(r, t, int(c), cfg)
        for r, t, c in zip(regime, td_setup_type, td_setup_count.fillna(0), strict=True)
    ]
    return pd.Series(values, index=regime.index, name="td_fade_weight", dtype=float)
