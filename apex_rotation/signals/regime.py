"""Trend vs chop, and how much a TD Sequential exhaustion ("fade") signal is worth in each regime.

`classify` labels each bar:

* "trend_up"   a directional move is under way and pointing up: +DI > -DI (the movement ADX measures is
               upward) and ema_20 > ema_50 (price structure agrees), ADX strong enough (below), and
               volatility inside its band;
* "trend_down" the mirror: -DI > +DI and ema_20 < ema_50;
* "chop"       anything else with all inputs known: weak ADX, DI and the EMA pair disagreeing (conflicting
               evidence, often a turn), or volatility above the band (a blow-off spike is a climax, not a
               trend to lean on);
* "unknown"    an input is NaN (indicator warm-up, or too little volatility history).

ADX strength with hysteresis (Wilder's usual reading: above 25 a trend, below 20 none): a trend starts on a
bar with ADX >= `adx_trend` and the direction conditions, and then holds while the direction conditions keep
holding bar after bar and ADX stays >= `adx_trend` - `ADX_HOLD_MARGIN` (5: 20 with the default 25). So an
established trend whose ADX eases to 22 on a pause is still a trend (instead of flickering to chop for a few
bars and handing a counter-trend fade full weight mid-trend), while a fresh ADX 22 with no trend behind it
is not one. Any bar that breaks the direction conditions (or an unknown input) ends the trend; a new one
needs ADX >= `adx_trend` again. The volatility band is a veto on its own bar only: a climax bar is "chop",
but it does not end the trend state, so the bar after it is judged as before.

Why not the full EMA 20/50/200 stack: ema_200 is a long-term bias line, on 4h bars about 33 days. Requiring
ema_50 beyond ema_200 keeps a new trend "chop" until the 50/200 cross, weeks after the turn, and a TD fade
in that time gets full weight against the trend it fights. The swing trend that a 9-bar (36 h on 4h) count
fights is what ema_20 vs ema_50 and the DI pair describe. ADX itself has no direction, so it is read with
its own +DI/-DI: ADX 35 with -DI on top after a sharp drop, while the EMAs are still stacked up, is a
downside move, not an uptrend.

Volatility is ATR/close. Its band is the [vol_band_low, vol_band_high] percentiles of the PREVIOUS
`vol_window` bars' ATR/close (bar t excluded, so a spike is judged against the history it breaks from; linear
interpolation, at least `vol_min_periods` known values; edges inclusive). The lower edge is off by default
(`vol_band_low=None`): a quiet, orderly trend is still a trend, and calling it chop would re-enable the
counter-trend TD fades this regime exists to hold back. Bar t uses bars <= t only (everything above is a
trailing indicator or a run that only looks back).

How well this can do: on the synthetic market (`apex_rotation.ingest.synthetic`) a planted trend drifts
0.1 % per 4h bar against ~0.63 % of 4h volatility, so it shows only after a few days, and a planted chop is
a driftless random walk that often looks like a trend for a while. The agreement measured there, and why it
cannot be near 100 %, is in `apex_rotation_tests/test_regime.py` (`test_agreement_with_planted_regimes`).

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
INPUT_COLUMNS = ("close", "atr", "adx", "plus_di", "minus_di", "ema_20", "ema_50")
ADX_HOLD_MARGIN = 5.0  # an established trend holds while ADX >= adx_trend - this (Wilder: 25 in, 20 out)


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
    adx, plus_di, minus_di, e20, e50 = (
        df[c].astype(float) for c in ("adx", "plus_di", "minus_di", "ema_20", "ema_50")
    )
    inputs = pd.concat(
        [adx, plus_di, minus_di, e20, e50, band["vol"], band["vol_lo"], band["vol_hi"]], axis=1
    )
    known = np.isfinite(inputs.to_numpy(float)).all(axis=1)
    in_band = ((band["vol"] >= band["vol_lo"]) & (band["vol"] <= band["vol_hi"])).to_numpy()
    up = _trend_state(known & ((plus_di > minus_di) & (e20 > e50)).to_numpy(), adx.to_numpy(), cfg)
    down = _trend_state(known & ((minus_di > plus_di) & (e20 < e50)).to_numpy(), adx.to_numpy(), cfg)
    labels = np.select([~known, up & in_band, down & in_band], ["unknown", "trend_up", "trend_down"], "chop")
    return pd.Series(labels.astype(object), index=df.index, name="regime")


def _trend_state(direction: np.ndarray, adx: np.ndarray, cfg: RegimeConfig) -> np.ndarray:
    """The trend state (before the volatility veto): True on the bars of a run of consecutive bars with
    `direction` (known inputs, DI and EMA pair agreeing) and ADX >= adx_trend - ADX_HOLD_MARGIN, from the
    run's first bar with ADX >= adx_trend on. Past-only: a cumulative max within each run so far."""
    with np.errstate(invalid="ignore"):
        hold = direction & (adx >= cfg.adx_trend - ADX_HOLD_MARGIN)
        start = hold & (adx >= cfg.adx_trend)
    run = np.cumsum(~hold)  # constant along a run of held bars, a new value at every break
    entered = pd.Series(start).groupby(run).cummax().to_numpy(bool)
    return hold & entered


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
