"""The rotation scanner: when BTC or ETH breaks out, find the alts that usually follow it but lag.

``scan(apex_assets, basket, cfg)`` takes symbol → features frames and either the `ApexConfig` or the whole
`AppConfig` (its `apex` section is used). The bar timeframe defaults to the most common step between the
apex frames' bars (1h / 4h / 1d; pass `timeframe` for frames too short or ragged to tell), the corr/beta
window to `cfg.corr_window_days`.

On bar t an apex asset TRIGGERS when its return on t is ≥ `move_threshold_pct`. An alt is a
LAGGING_ROTATION against that apex when, on the same bar,

* its own return is ≤ `alt_lag_threshold_pct` (it has not moved yet), and
* its rolling correlation ≥ `corr_min` and beta ≥ `beta_min` to that apex, both taken over
  `corr_window_days` AT THE PREVIOUS BAR t−1. The breakout bar is excluded because it is by
  construction an outlier (the apex jumps, the laggard does not) and would drag corr and beta down
  exactly when we ask about them. The synthetic market's ground truth defines its laggards the same way.

Every input of bar t is known at t's close, so no output looks ahead. A bar whose return is missing
(first bar, an audit-filled gap) or whose gate corr/beta is NaN (window not yet full) is never flagged;
`scan_history` counts such (bar, apex, alt) cases as insufficient data.

When BTC and ETH both trigger and both flag one alt, one candidate is emitted, against the apex with the
larger expected catch-up ``beta × apex_move − coin_move`` (the trade sized by the bigger expected move;
ties go to the apex listed first). Thresholds are inclusive, with `EPS` slack in percent units so that a
move of 1.5 % that float arithmetic makes 1.5000000000000002 still counts as 1.5 %.

Signal strength grades that expected catch-up against `strength_high_pct` (default 10 %) and
`strength_medium_pct` (default 6 %). A strongly coupled alt (beta 2) that sat out a 5 % apex bar owes
~10 %: HIGH. An alt at the beta floor (1.5) that stayed flat through a minimum 4 % trigger owes 1.5 × 4 =
6 %, about one ATR of a 4h alt bar: MEDIUM. The weakest case the default gates admit (beta 1.5, apex +4 %,
coin already +1.5 %) owes 1.5 × 4 − 1.5 = 4.5 %: LOW. So each grade is reachable with the default gates.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from apex_rotation.config import ApexConfig, AppConfig
from apex_rotation.timeframes import TIMEFRAME_DELTA, delta

EPS = 1e-9
STATUS = "LAGGING_ROTATION"
CONTEXT_COLUMNS = (
    "close",
    "volume",
    "vol_ema20",
    "hh_prev",
    "atr",
    "oi",
    "oi_chg",
    "funding",
    "funding_prev",
)
INSUFFICIENT_DATA = "insufficient_data"

Strength = Literal["HIGH", "MEDIUM", "LOW"]


def _apex_config(cfg: ApexConfig | AppConfig) -> ApexConfig:
    """The `ApexConfig` itself, or the `apex` section of a whole `AppConfig`."""
    if isinstance(cfg, AppConfig):
        return cfg.apex
    if isinstance(cfg, ApexConfig):
        return cfg
    raise TypeError(f"cfg must be an ApexConfig or an AppConfig, got {type(cfg).__name__}")


def strength(expected_catchup_pct: float, cfg: ApexConfig | AppConfig) -> Strength:
    """HIGH at ≥ `strength_high_pct`, MEDIUM at ≥ `strength_medium_pct`, else LOW (inclusive, `EPS` slack)."""
    apex_cfg = _apex_config(cfg)
    if expected_catchup_pct >= apex_cfg.strength_high_pct - EPS:
        return "HIGH"
    return "MEDIUM" if expected_catchup_pct >= apex_cfg.strength_medium_pct - EPS else "LOW"


def format_move(pct: float) -> str:
    """'+5.2%': signed, one decimal (the seed's record format). Rounded first, so -0.04 reads '+0.0%'."""
    rounded = round(pct, 1)
    if rounded == 0:  # -0.0 would print as '-0.0%'
        rounded = 0.0
    return f"{rounded:+.1f}%"


def infer_timeframe(frames: Mapping[str, pd.DataFrame]) -> str:
    """The timeframe ('1h', '4h', '1d') whose step is the most common gap between consecutive bars.

    Gaps are counted over all `frames` (ties go to the shorter step). ValueError when no frame has two
    bars or the most common step is not a known timeframe.
    """
    counts: Counter[pd.Timedelta] = Counter()
    for symbol, frame in frames.items():
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(f"{symbol}: cannot infer the timeframe, the index is not a DatetimeIndex")
        steps = frame.index.unique().sort_values().to_series().diff().dropna()
        counts.update(steps.value_counts().to_dict())
    if not counts:
        raise ValueError("cannot infer the timeframe: no apex frame has two bars; pass timeframe=")
    step = max(counts, key=lambda d: (counts[d], -d))
    for name, tf_step in TIMEFRAME_DELTA.items():
        if step == tf_step:
            return name
    raise ValueError(
        f"cannot infer the timeframe: the most common bar step {step} is none of "
        f"{list(TIMEFRAME_DELTA)}; pass timeframe="
    )


class RotationCandidate(BaseModel):
    """One lagging alt on one bar; `context` holds the alt's bar values the confirmation filters read."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str
    apex_asset: str
    timeframe: str
    bar_time: datetime
    apex_move_pct: float
    coin_move_pct: float
    correlation: float
    beta: float
    expected_catchup_pct: float
    signal_strength: Strength
    status: Literal["LAGGING_ROTATION"] = STATUS
    context: dict[str, float | None]

    @field_validator("bar_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("bar_time must be timezone-aware (UTC)")
        return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()

    def to_record(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "apex_asset": self.apex_asset,
            "apex_move": format_move(self.apex_move_pct),
            "coin_move": format_move(self.coin_move_pct),
            "correlation": round(self.correlation, 2),
            "beta": round(self.beta, 2),
            "signal_strength": self.signal_strength,
            "status": self.status,
            "bar_time": self.bar_time.astimezone(UTC).isoformat(),
            "timeframe": self.timeframe,
        }


# ---------------------------------------------------------------- helpers shared by scan and scan_history


def _gate_columns(apex: str, window_days: int) -> tuple[str, str]:
    return f"corr_{apex.lower()}_{window_days}", f"beta_{apex.lower()}_{window_days}"


def _require(frame: pd.DataFrame, symbol: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{symbol}: the features frame has no columns {missing}")


def _moves_pct(frame: pd.DataFrame) -> pd.Series:
    """Return of each bar in percent; NaN where the bar was filled by the audit (its return is invented)."""
    ret = frame["ret"].astype("float64")
    if "filled" in frame.columns:
        ret = ret.where(~frame["filled"].astype(bool))
    return ret * 100.0


def _alts(apex_assets: Mapping[str, pd.DataFrame], basket: Mapping[str, pd.DataFrame]) -> list[str]:
    return [s for s in basket if s not in apex_assets]


def _context(frame: pd.DataFrame, t: pd.Timestamp) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for col in CONTEXT_COLUMNS:
        value = frame.at[t, col] if col in frame.columns else None
        out[col] = None if value is None or pd.isna(value) else float(value)
    return out


def _utc_timestamp(at: object) -> pd.Timestamp:
    ts = pd.Timestamp(at)
    if ts.tzinfo is None:
        raise ValueError(f"`at` must be timezone-aware (UTC), got {at!r}")
    return ts.tz_convert("UTC")


# ---------------------------------------------------------------- one bar


def scan(
    apex_assets: Mapping[str, pd.DataFrame],
    basket: Mapping[str, pd.DataFrame],
    cfg: ApexConfig | AppConfig,
    *,
    timeframe: str | None = None,
    at: object = None,
    corr_window_days: int | None = None,
) -> list[RotationCandidate]:
    """The lagging alts on bar `at` (default: the last bar common to the apex frames), best catch-up first.

    `apex_assets` and `basket` map symbol → features frame of `timeframe`; apex symbols in `basket` are
    skipped. `cfg` is the `ApexConfig` or the whole `AppConfig`; `timeframe` defaults to
    `infer_timeframe(apex_assets)`, `corr_window_days` to the config's. This is the readable per-bar
    reference; `scan_history` is its vectorised twin.
    """
    cfg = _apex_config(cfg)
    timeframe = infer_timeframe(apex_assets) if timeframe is None else timeframe
    corr_window_days = cfg.corr_window_days if corr_window_days is None else corr_window_days
    step = delta(timeframe)
    if at is None:
        common = None
        for frame in apex_assets.values():
            common = frame.index if common is None else common.intersection(frame.index)
        if common is None or len(common) == 0:
            return []
        t = common.max()
    else:
        t = _utc_timestamp(at)

    best: dict[str, RotationCandidate] = {}
    for apex, apex_frame in apex_assets.items():
        if t not in apex_frame.index:
            continue
        apex_move = _moves_pct(apex_frame).at[t]
        if not apex_move >= cfg.move_threshold_pct - EPS:  # NaN never triggers
            continue
        corr_col, beta_col = _gate_columns(apex, corr_window_days)
        for symbol in _alts(apex_assets, basket):
            frame = basket[symbol]
            _require(frame, symbol, ("ret", corr_col, beta_col))
            if t not in frame.index:
                continue
            coin_move = _moves_pct(frame).at[t]
            corr = frame[corr_col].get(t - step, math.nan)
            beta = frame[beta_col].get(t - step, math.nan)
            if pd.isna(coin_move) or pd.isna(corr) or pd.isna(beta):
                continue
            if not (
                coin_move <= cfg.alt_lag_threshold_pct + EPS
                and corr >= cfg.corr_min - EPS
                and beta >= cfg.beta_min - EPS
            ):
                continue
            catchup = float(beta * apex_move - coin_move)
            if symbol in best and catchup <= best[symbol].expected_catchup_pct:
                continue
            best[symbol] = RotationCandidate(
                symbol=symbol,
                apex_asset=apex,
                timeframe=timeframe,
                bar_time=t.to_pydatetime(),
                apex_move_pct=float(apex_move),
                coin_move_pct=float(coin_move),
                correlation=float(corr),
                beta=float(beta),
                expected_catchup_pct=catchup,
                signal_strength=strength(catchup, cfg),
                context=_context(frame, t),
            )
    return sorted(best.values(), key=lambda c: (-c.expected_catchup_pct, c.symbol))


# ---------------------------------------------------------------- every bar


HISTORY_COLUMNS = (
    "bar_time",
    "timeframe",
    "symbol",
    "apex_asset",
    "apex_move",
    "coin_move",
    "correlation",
    "beta",
    "signal_strength",
    "status",
    "apex_move_pct",
    "coin_move_pct",
    "expected_catchup_pct",
    *CONTEXT_COLUMNS,
)


def scan_history(
    apex_assets: Mapping[str, pd.DataFrame],
    basket: Mapping[str, pd.DataFrame],
    cfg: ApexConfig | AppConfig,
    *,
    timeframe: str | None = None,
    corr_window_days: int | None = None,
    cache: dict | None = None,
) -> pd.DataFrame:
    """Every bar's candidates, one row each, equal to `scan(..., at=t)` for every t (vectorised over bars).

    Columns: `HISTORY_COLUMNS` — the record fields (bar_time as a UTC timestamp, correlation and beta
    unrounded), the numeric moves and catch-up, and the alt's context values. Rows are ordered by bar,
    then best catch-up. ``attrs["insufficient_data"]`` maps each alt to how many (bar, triggering apex)
    pairs it could not be judged on (missing return, corr or beta). `cfg`, `timeframe` and
    `corr_window_days` default as in `scan`. `cache`, a dict the caller keeps for the same frames, holds
    the threshold-free arrays (moves, lagged corr/beta, contexts) so a scan under other gates reuses them.
    """
    cfg = _apex_config(cfg)
    timeframe = infer_timeframe(apex_assets) if timeframe is None else timeframe
    corr_window_days = cfg.corr_window_days if corr_window_days is None else corr_window_days
    step = delta(timeframe)
    apex_names = list(apex_assets)
    alts = _alts(apex_assets, basket)
    memo = ({} if cache is None else cache).setdefault((timeframe, corr_window_days, tuple(alts)), {})
    if "bars" not in memo:
        bars = pd.DatetimeIndex([], tz="UTC", name="open_time")
        for frame in apex_assets.values():
            bars = bars.union(frame.index)
        memo["bars"] = bars
        memo["coin"] = (
            np.column_stack([_moves_pct(basket[s]).reindex(bars).to_numpy() for s in alts]) if alts else None
        )
    bars, coin = memo["bars"], memo["coin"]
    hits, catchups, apex_moves, corrs, betas = [], [], [], [], []
    insufficient = dict.fromkeys(alts, 0)
    for apex in apex_names:
        corr_col, beta_col = _gate_columns(apex, corr_window_days)
        for s in alts:
            _require(basket[s], s, ("ret", corr_col, beta_col))
        if coin is None:
            continue
        if ("gate", apex) not in memo:
            move = _moves_pct(apex_assets[apex]).reindex(bars).to_numpy()
            corr = np.column_stack([_previous(basket[s][corr_col], step, bars) for s in alts])
            beta = np.column_stack([_previous(basket[s][beta_col], step, bars) for s in alts])
            memo[("gate", apex)] = (move, corr, beta, ~(np.isnan(coin) | np.isnan(corr) | np.isnan(beta)))
        move, corr, beta, valid = memo[("gate", apex)]
        with np.errstate(invalid="ignore"):
            trig = move >= cfg.move_threshold_pct - EPS
        with np.errstate(invalid="ignore"):
            hit = (
                trig[:, None]
                & valid
                & (coin <= cfg.alt_lag_threshold_pct + EPS)
                & (corr >= cfg.corr_min - EPS)
                & (beta >= cfg.beta_min - EPS)
            )
        for s, n in zip(alts, (trig[:, None] & ~valid).sum(axis=0), strict=True):
            insufficient[s] += int(n)
        hits.append(hit)
        catchups.append(np.where(hit, beta * move[:, None] - coin, -np.inf))
        apex_moves.append(np.broadcast_to(move[:, None], coin.shape))
        corrs.append(corr)
        betas.append(beta)

    if not hits:
        return _empty_history(insufficient)
    catchup_k, apex_move_k = np.stack(catchups), np.stack(apex_moves)
    corr_k, beta_k = np.stack(corrs), np.stack(betas)
    choice = np.argmax(catchup_k, axis=0)  # first apex wins ties
    any_hit = np.stack(hits).any(axis=0)

    parts = []
    for j, symbol in enumerate(alts):
        rows = np.flatnonzero(any_hit[:, j])
        if len(rows) == 0:
            continue
        k = choice[rows, j]
        catchup = catchup_k[k, rows, j]
        apex_move = apex_move_k[k, rows, j]
        coin_move = coin[rows, j]
        if ("context", symbol) not in memo:
            context = basket[symbol].reindex(columns=list(CONTEXT_COLUMNS)).reindex(bars)
            memo[("context", symbol)] = {c: context[c].to_numpy(dtype="float64") for c in CONTEXT_COLUMNS}
        context = memo[("context", symbol)]
        part = pd.DataFrame(
            {
                "bar_time": bars[rows],
                "timeframe": timeframe,
                "symbol": symbol,
                "apex_asset": np.asarray(apex_names, dtype=object)[k],
                "apex_move": [format_move(x) for x in apex_move],
                "coin_move": [format_move(x) for x in coin_move],
                "correlation": corr_k[k, rows, j],
                "beta": beta_k[k, rows, j],
                "signal_strength": [strength(x, cfg) for x in catchup],
                "status": STATUS,
                "apex_move_pct": apex_move,
                "coin_move_pct": coin_move,
                "expected_catchup_pct": catchup,
                **{c: context[c][rows] for c in CONTEXT_COLUMNS},
            }
        )
        parts.append(part)
    if not parts:
        return _empty_history(insufficient)
    out = pd.concat(parts, ignore_index=True)
    out["_neg"] = -out["expected_catchup_pct"]
    out = out.sort_values(["bar_time", "_neg", "symbol"], kind="mergesort").drop(columns="_neg")
    out = out.reset_index(drop=True)
    out.attrs[INSUFFICIENT_DATA] = insufficient
    return out


def _previous(series: pd.Series, step: pd.Timedelta, bars: pd.DatetimeIndex) -> np.ndarray:
    """The value at t − step for each t in `bars` (NaN where that bar is absent)."""
    return series.astype("float64").shift(1, freq=step).reindex(bars).to_numpy()


def empty_history() -> pd.DataFrame:
    """A `scan_history` result with no candidates (a timeframe that does not trigger)."""
    return _empty_history({})


def _empty_history(insufficient: dict[str, int]) -> pd.DataFrame:
    out = pd.DataFrame({c: pd.Series(dtype="object") for c in HISTORY_COLUMNS})
    out["bar_time"] = pd.Series(dtype="datetime64[ns, UTC]")
    out.attrs[INSUFFICIENT_DATA] = insufficient
    return out


def candidates_from_history(history: pd.DataFrame) -> list[RotationCandidate]:
    """Rebuild `RotationCandidate`s from `scan_history` rows (e.g. to confirm a backtest's candidates)."""
    out = []
    for row in history.to_dict("records"):
        context = {c: None if pd.isna(row[c]) else float(row[c]) for c in CONTEXT_COLUMNS}
        out.append(
            RotationCandidate(
                symbol=row["symbol"],
                apex_asset=row["apex_asset"],
                timeframe=row["timeframe"],
                bar_time=pd.Timestamp(row["bar_time"]).to_pydatetime(),
                apex_move_pct=float(row["apex_move_pct"]),
                coin_move_pct=float(row["coin_move_pct"]),
                correlation=float(row["correlation"]),
                beta=float(row["beta"]),
                expected_catchup_pct=float(row["expected_catchup_pct"]),
                signal_strength=row["signal_strength"],
                context=context,
            )
        )
    return out
