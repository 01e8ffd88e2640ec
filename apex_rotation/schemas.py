"""Record models (pydantic) and DataFrame schemas (pandera) shared by every stage.

The pydantic models describe one record and serialise to JSONL (a stored table is a frame, so only the
records a later stage hands around one by one are models); the pandera schemas describe whole frames
and are what the Dagster asset checks (and the writers, before they write) enforce. Frames serialise to
Parquet through the store. Each schema is built once per argument (`@cache`): nothing modifies a schema,
and a bar-close run validates some 200 partitions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pydantic import BaseModel, ConfigDict, Field

from apex_rotation.bars import FILL_GAP, FILL_REASONS, FILL_SPIKE, hours_in
from apex_rotation.timeframes import TIMEFRAME_DELTA, TIMEFRAMES, delta

# ---------------------------------------------------------------- record models


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Why a simulated trade ended (or never started). Filled: stop, target, max_hold (closed at market after
# sim.max_hold_bars), open_at_end (still open when the data ends: marked at the last close). Unfilled:
# expired (the limit did not fill within sim.entry_expiry_bars), pending_at_end (still working when the data
# ends), invalidated (the price opened beyond the stop before the order filled), missed (a market entry
# would open at or beyond the target), no_plan (a fired signal without an entry plan).
FILLED_EXITS = ("stop", "target", "max_hold", "open_at_end")
UNFILLED_EXITS = ("expired", "pending_at_end", "invalidated", "missed", "no_plan")
EXIT_REASONS = (*FILLED_EXITS, *UNFILLED_EXITS)
ExitReason = Literal[
    "stop",
    "target",
    "max_hold",
    "open_at_end",
    "expired",
    "pending_at_end",
    "invalidated",
    "missed",
    "no_plan",
]


class TradeRecord(_Record):
    """One simulated (dry-run) trade of a fired signal, as `exec/sim.py` writes it to `sim_trades`.

    Prices are fills (slippage included); percentages are of the entry notional; R is the distance from
    the entry fill to the stop. An unfilled order is a record too (no entry, `exit_reason` says why, and
    `exit_time` is when the order ended), so every alert_id has its row. A hand-made record may leave the
    signal fields out; the `sim_trades` table requires them (`trades_schema`).
    """

    alert_id: str | None = None  # = the signal's `signal_id`
    archetype: str | None = None  # "rotation" | "td13_exhaustion"
    symbol: str
    timeframe: str | None = None
    side: Literal["long", "short"]
    signal_time: datetime | None = None  # open time of the signal bar; fills start at its close
    instrument: Literal["spot", "perps"] | None = None
    order_type: Literal["market", "limit"] | None = None
    order_price: float | None = None  # the limit price (None for a market order)
    entry_time: datetime | None = None  # open time of the (1h) bar that filled the order
    entry_price: float | None = Field(None, gt=0)
    stop_price: float | None = Field(None, gt=0)
    take_profit: float | None = None
    target_source: Literal["atr", "structure"] | None = None
    size: float = Field(0.0, ge=0)  # units: sim.equity × risk_per_trade_pct / |entry − stop|
    exit_time: datetime | None = None  # the bar's open (stop/target) or close (max_hold/open_at_end)
    exit_price: float | None = None
    exit_reason: ExitReason | None = None
    stop_hit: bool = False
    target_hit: bool = False
    pnl_pct: float | None = None  # net: price move − fees + funding
    pnl_r: float | None = None
    risk_pct: float | None = None  # |entry − stop| / entry, in %
    fees_pct: float = 0.0
    slippage_pct: float = 0.0  # already in the fill prices; said for the record
    funding_pct: float = 0.0  # + received, − paid
    mfe_pct: float | None = None
    mae_pct: float | None = None
    mfe_r: float | None = None
    mae_r: float | None = None
    bars_held: int = Field(0, ge=0)  # bars of the signal's timeframe the position spanned


R = TypeVar("R", bound=BaseModel)


def write_jsonl(records: Iterable[BaseModel], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as fh:
        for record in records:
            fh.write(record.model_dump_json() + "\n")
    tmp.replace(path)
    return path


def read_jsonl(model: type[R], path: str | Path) -> list[R]:
    lines = Path(path).read_text().splitlines()
    return [model.model_validate(json.loads(line)) for line in lines if line.strip()]


def records_to_frame(records: Sequence[BaseModel]) -> pd.DataFrame:
    return pd.DataFrame([r.model_dump() for r in records])


def frame_to_records(model: type[R], df: pd.DataFrame) -> list[R]:
    rows = df.reset_index().to_dict("records") if df.index.name else df.to_dict("records")
    fields = model.model_fields
    return [model.model_validate({k: v for k, v in row.items() if k in fields}) for row in rows]


# ---------------------------------------------------------------- frame schemas

UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _ohlc_consistent(df: pd.DataFrame) -> pd.Series:
    # numpy's elementwise max/min: a row-wise DataFrame reduction took 3 ms per 1h partition
    o, c = df["open"].to_numpy(), df["close"].to_numpy()
    body_hi, body_lo = np.fmax(o, c), np.fmin(o, c)
    return (df["low"] <= body_lo) & (df["high"] >= body_hi)


def _close_time_is_open_plus_tf(timeframe: str):
    step = delta(timeframe)

    def check(df: pd.DataFrame) -> pd.Series:
        return df["close_time"] == df.index + step

    return check


def _flags_agree(timeframe: str):
    """`filled` exactly when every hour was filled, and then (only then) a gap/spike `fill_reason`."""
    hours = hours_in(timeframe)

    def check(df: pd.DataFrame) -> pd.Series:
        filled = df["filled"].astype(bool)
        return (filled == (df["filled_hours"] == hours)) & (
            filled == df["fill_reason"].isin([FILL_GAP, FILL_SPIKE])
        )

    return check


def _on_grid(timeframe: str):
    step = delta(timeframe).value

    def check(index: pd.Series) -> pd.Series:
        return pd.Series(pd.DatetimeIndex(index).asi8 % step == 0, index=index.index)

    return check


@cache
def bars_schema(timeframe: str, audited: bool = False) -> pa.DataFrameSchema:
    """Canonical bars of one timeframe: UTC open-time index on the grid, positive consistent OHLC.

    `audited=True` adds the cleaning flags (`filled_hours` from 0 to the bar's hours) and requires a
    gap-free grid (the audit fills gaps, flagged).
    """
    if timeframe not in TIMEFRAMES:
        raise ValueError(f"unknown timeframe {timeframe!r}")
    step = delta(timeframe)
    price = {"dtype": "float64", "checks": pa.Check.gt(0), "nullable": False}
    columns = {
        "open": pa.Column(**price),
        "high": pa.Column(**price),
        "low": pa.Column(**price),
        "close": pa.Column(**price),
        "volume": pa.Column("float64", pa.Check.ge(0), nullable=False),
        "close_time": pa.Column(UTC_NS, nullable=False),
    }
    index_checks = [
        pa.Check(lambda s: s.is_monotonic_increasing, error="open_time not increasing"),
        pa.Check(_on_grid(timeframe), error=f"open_time off the {timeframe} grid"),
    ]
    frame_checks = [
        pa.Check(_ohlc_consistent, error="open/close outside [low, high]"),
        pa.Check(_close_time_is_open_plus_tf(timeframe), error=f"close_time != open_time + {timeframe}"),
    ]
    if audited:
        columns |= {
            "filled": pa.Column(bool, nullable=False),
            "filled_hours": pa.Column("int64", pa.Check.in_range(0, hours_in(timeframe)), nullable=False),
            "fill_reason": pa.Column(str, pa.Check.isin(FILL_REASONS), nullable=False),
            "outlier": pa.Column(bool, nullable=False),
        }
        index_checks.append(
            pa.Check(lambda s: bool((s.diff().dropna() == step).all()), error="gap in an audited grid")
        )
        frame_checks.append(
            pa.Check(_flags_agree(timeframe), error="filled, filled_hours and fill_reason disagree")
        )
    return pa.DataFrameSchema(
        columns,
        index=pa.Index(UTC_NS, name="open_time", unique=True, checks=index_checks),
        checks=frame_checks,
        strict=False,
        name=f"{'audited_' if audited else ''}bars_{timeframe}",
    )


def validate_frame(
    schema: pa.DataFrameSchema, df: pd.DataFrame, what: str, inplace: bool = False
) -> pd.DataFrame:
    """Validate lazily and raise one error that names the frame and lists every failed check.

    `inplace=True` skips pandera's copy of the whole frame (half the time of a 1h `features` validation);
    then a `coerce=True` column of `df` itself is converted, so pass it only for a frame the caller owns."""
    try:
        return schema.validate(df, lazy=True, inplace=inplace)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        summary = cases[["column", "check", "index"]].head(10).to_string(index=False)
        raise SchemaViolation(
            f"{what}: {len(cases)} failed check(s) against {schema.name}:\n{summary}"
        ) from None


class SchemaViolation(ValueError):
    """A frame broke its pandera schema; the message names the frame and the failing checks."""


def _utc_index(name: str, unique: bool = True) -> pa.Index:
    return pa.Index(
        UTC_NS,
        name=name,
        unique=unique,
        checks=pa.Check(lambda s: s.is_monotonic_increasing, error=f"{name} not increasing"),
    )


def _bounded(lo: float, hi: float) -> pa.Column:
    return pa.Column("float64", pa.Check.in_range(lo, hi), nullable=True)


@cache
def features_schema() -> pa.DataFrameSchema:
    """A `features` partition: the FeatureRow columns and their ranges (NaN allowed while warming up)."""
    corr_beta = {
        f"{kind}_{bench}_{days}": _bounded(-1.0, 1.0)
        if kind == "corr"
        else pa.Column("float64", nullable=True)
        for kind in ("corr", "beta")
        for bench in ("btc", "eth")
        for days in (14, 30)
    }
    return pa.DataFrameSchema(
        {
            "ret": pa.Column("float64", pa.Check.gt(-1.0), nullable=True),
            "vol_z": pa.Column("float64", nullable=True),
            "atr": pa.Column("float64", pa.Check.ge(0), nullable=True),
            "rsi": _bounded(0.0, 100.0),
            "adx": _bounded(0.0, 100.0),
            "macd": pa.Column("float64", nullable=True),
            "macd_signal": pa.Column("float64", nullable=True),
            "ema_20": pa.Column("float64", pa.Check.gt(0), nullable=True),
            "ema_50": pa.Column("float64", pa.Check.gt(0), nullable=True),
            "ema_200": pa.Column("float64", pa.Check.gt(0), nullable=True),
            "fib_zone": pa.Column(
                object,
                pa.Check(lambda s: s.dropna().isin(FIB_ZONE_LABELS).all(), error="unknown fib_zone"),
                nullable=True,
            ),
            "volume_trend": pa.Column("float64", nullable=True),
            "oi_chg": pa.Column("float64", nullable=True),
            "funding": pa.Column("float64", nullable=True),
            **corr_beta,
        },
        index=_utc_index("open_time"),
        strict=False,
        name="features",
    )


FIB_ZONE_LABELS = ["above", "0-23.6", "23.6-38.2", "38.2-50", "50-61.8", "61.8-78.6", "78.6-100", "below"]
TD_TYPES = ["buy", "sell"]


@cache
def td_state_schema() -> pa.DataFrameSchema:
    """A `td_state` partition: the spec's §7 columns and their invariants."""
    kind = {"checks": pa.Check.isin(TD_TYPES), "nullable": True}
    return pa.DataFrameSchema(
        {
            "td_flip": pa.Column(object, pa.Check.isin(["bearish", "bullish"]), nullable=True),
            "td_setup_type": pa.Column(object, **kind),
            "td_setup_count": pa.Column("int64", pa.Check.ge(0)),
            "td_perfected": pa.Column(bool),
            "td_countdown_type": pa.Column(object, **kind),
            "td_countdown": pa.Column("int64", pa.Check.in_range(0, 13)),
            "td_countdown_deferred": pa.Column(bool),
            "td_tdst_buy": pa.Column("float64", nullable=True),
            "td_tdst_sell": pa.Column("float64", nullable=True),
            "td_tdst_breach": pa.Column(object, pa.Check.isin(["up", "down", "both"]), nullable=True),
            "td_setup_risk_level": pa.Column("float64", nullable=True),
            "td_countdown_risk_level": pa.Column("float64", nullable=True),
            "filled": pa.Column(bool, required=False),
        },
        index=_utc_index("open_time"),
        strict=True,
        name="td_state",
    )


@cache
def signals_schema() -> pa.DataFrameSchema:
    """A `rotation_candidates` table: SignalRecord fields, one row per candidate."""
    move = pa.Check.str_matches(r"^[+-]\d+\.\d%$")
    return pa.DataFrameSchema(
        {
            "bar_time": pa.Column(UTC_NS),
            "timeframe": pa.Column(str, pa.Check.isin(list(TIMEFRAMES))),
            "symbol": pa.Column(str),
            "apex_asset": pa.Column(str),
            "apex_move": pa.Column(str, move),
            "coin_move": pa.Column(str, move),
            "correlation": pa.Column("float64", pa.Check.in_range(-1.0, 1.0)),
            "beta": pa.Column("float64"),
            "signal_strength": pa.Column(str, pa.Check.isin(["HIGH", "MEDIUM", "LOW"])),
            "status": pa.Column(str, pa.Check.eq("LAGGING_ROTATION")),
        },
        strict=False,
        coerce=True,  # an empty history carries object columns
        name="rotation_candidates",
    )


@cache
def trades_schema() -> pa.DataFrameSchema:
    """Simulated trades (`sim_trades`): TradeRecord fields, one row per alert_id; a filled trade has entry
    and exit prices, exits at or after its entry, enters after its signal bar, and has its stop on the loss
    side of entry."""

    def filled(df: pd.DataFrame) -> pd.Series:
        return df["entry_price"].notna()

    def stop_on_loss_side(df: pd.DataFrame) -> pd.Series:
        long_ok = (df["side"] == "long") & (df["stop_price"] < df["entry_price"])
        short_ok = (df["side"] == "short") & (df["stop_price"] > df["entry_price"])
        return ~filled(df) | long_ok | short_ok

    def exit_after_entry(df: pd.DataFrame) -> pd.Series:
        return ~filled(df) | (df["exit_time"] >= df["entry_time"])

    def reason_matches_fill(df: pd.DataFrame) -> pd.Series:
        return filled(df) == df["exit_reason"].isin(FILLED_EXITS)

    def entry_after_signal_bar(df: pd.DataFrame) -> pd.Series:
        step = pd.to_timedelta(df["timeframe"].map(TIMEFRAME_DELTA))
        return ~filled(df) | (df["entry_time"] >= df["signal_time"] + step)

    price = pa.Column("float64", pa.Check.gt(0), nullable=True, coerce=True)
    number = pa.Column("float64", nullable=True, coerce=True)
    excursion = pa.Column("float64", pa.Check.ge(0), nullable=True, coerce=True)
    sim_columns = {
        "alert_id": pa.Column(str, unique=True),
        "archetype": pa.Column(str),
        "timeframe": pa.Column(str, pa.Check.isin(list(TIMEFRAMES))),
        "signal_time": pa.Column(UTC_NS),
        "exit_reason": pa.Column(str, pa.Check.isin(list(EXIT_REASONS))),
        "exit_time": pa.Column(UTC_NS, nullable=True),
        "exit_price": price,
        "pnl_pct": number,
        "pnl_r": number,
        "mfe_pct": excursion,
        "mae_pct": excursion,
        "bars_held": pa.Column("int64", pa.Check.ge(0)),
    }
    return pa.DataFrameSchema(
        {
            "symbol": pa.Column(str),
            "side": pa.Column(str, pa.Check.isin(["long", "short"])),
            "entry_time": pa.Column(UTC_NS, nullable=True),
            "entry_price": price,
            "stop_price": price,
            "size": pa.Column("float64", pa.Check.ge(0)),
            **sim_columns,
        },
        checks=[
            pa.Check(stop_on_loss_side, error="stop not on the loss side of entry"),
            pa.Check(exit_after_entry, error="exit before entry"),
            pa.Check(reason_matches_fill, error="exit_reason does not match whether the order filled"),
            pa.Check(entry_after_signal_bar, error="entry on or before the signal bar"),
        ],
        strict=False,
        name="trades",
    )


@cache
def confirmations_schema(window_bars: int) -> pa.DataFrameSchema:
    """A `confirmations` table: one row per (candidate, watched bar) with a consistent status."""

    def status_matches_verdict(df: pd.DataFrame) -> pd.Series:
        return (df["status"] == "confirmed") == df["passed"]

    def watched_after_trigger(df: pd.DataFrame) -> pd.Series:
        return df["eval_time"] >= df["bar_time"]

    return pa.DataFrameSchema(
        {
            "bar_time": pa.Column(UTC_NS),
            "eval_time": pa.Column(UTC_NS),
            "symbol": pa.Column(str),
            "bars_after": pa.Column("int64", pa.Check.in_range(0, window_bars)),
            "passed": pa.Column(bool),
            "status": pa.Column(str, pa.Check.isin(["watching", "confirmed", "expired"])),
            "rule": pa.Column(str),
        },
        checks=[
            pa.Check(status_matches_verdict, error="status 'confirmed' exactly when the rule passed"),
            pa.Check(watched_after_trigger, error="a watch row before its trigger bar"),
        ],
        strict=False,
        coerce=True,
        name="confirmations",
    )


@cache
def scores_schema(alert_threshold: float) -> pa.DataFrameSchema:
    """A `scores` table: one row per scored signal (`ScoredSignal.to_row`); a fired signal has a plan, a
    score at or above the alert threshold and no suppression; one that did not fire says why."""
    eps = 1e-9

    def fired_is_sound(df: pd.DataFrame) -> pd.Series:
        ok = df["plan_entry"].notna() & (df["score"] >= alert_threshold - eps) & df["suppressed"].isna()
        return ~df["fired"].astype(bool) | ok

    def unfired_says_why(df: pd.DataFrame) -> pd.Series:
        return df["fired"].astype(bool) | df["suppressed"].notna()

    def stop_on_loss_side(df: pd.DataFrame) -> pd.Series:
        long = (
            (df["direction"] == "long")
            & (df["plan_stop"] < df["plan_entry"])
            & (df["plan_target"] > df["plan_entry"])
        )
        short = (
            (df["direction"] == "short")
            & (df["plan_stop"] > df["plan_entry"])
            & (df["plan_target"] < df["plan_entry"])
        )
        return df["plan_entry"].isna() | long | short

    plan = {"nullable": True, "required": True}
    return pa.DataFrameSchema(
        {
            "signal_id": pa.Column(str, unique=True),
            "symbol": pa.Column(str),
            "timeframe": pa.Column(str, pa.Check.isin(list(TIMEFRAMES))),
            "bar_time": pa.Column(UTC_NS),
            "archetype": pa.Column(str, pa.Check.isin(["rotation", "td13_exhaustion"])),
            "direction": pa.Column(str, pa.Check.isin(["long", "short"])),
            "apex_asset": pa.Column(str, nullable=True),
            "narrative_score": pa.Column("float64"),
            "market_score": pa.Column("float64"),
            "technical_score": pa.Column("float64"),
            "rotation_bonus": pa.Column("float64"),
            "td_signal": pa.Column("float64"),
            "regime": pa.Column(str),
            "regime_weight": pa.Column("float64", pa.Check.in_range(0.0, 1.0)),
            "score": pa.Column("float64"),
            "fired": pa.Column(bool),
            "suppressed": pa.Column(str, nullable=True),
            "td_contributes": pa.Column(bool),
            "reasons": pa.Column(str),
            "plan_entry": pa.Column("float64", pa.Check.gt(0), **plan),
            "plan_stop": pa.Column("float64", **plan),
            "plan_target": pa.Column("float64", **plan),
            "plan_rr": pa.Column("float64", **plan),
            "plan_invalidation": pa.Column("float64", **plan),
        },
        checks=[
            pa.Check(
                fired_is_sound, error="a fired signal without a plan, under the threshold or suppressed"
            ),
            pa.Check(unfired_says_why, error="a signal that did not fire without a reason"),
            pa.Check(stop_on_loss_side, error="plan stop/target on the wrong side of entry"),
        ],
        strict=False,
        coerce=True,
        name="scores",
    )


@cache
def alerts_schema() -> pa.DataFrameSchema:
    """An `alerts` table: one row per fired signal (the `Alert` payload), unique alert id, a known status."""
    statuses = ["Waiting for retest", "Entry zone", "Invalidated", "Target hit", "Expired"]
    price = pa.Column("float64", pa.Check.gt(0))

    def zone_ordered(df: pd.DataFrame) -> pd.Series:
        return df["entry_low"] <= df["entry_high"]

    return pa.DataFrameSchema(
        {
            "symbol": pa.Column(str),
            "timeframe": pa.Column(str, pa.Check.isin(list(TIMEFRAMES))),
            "bar_time": pa.Column(UTC_NS),
            "archetype": pa.Column(str, pa.Check.isin(["rotation", "td13_exhaustion"])),
            "direction": pa.Column(str, pa.Check.isin(["long", "short"])),
            "score": pa.Column("float64"),
            "top_reasons": pa.Column(str),
            "reasons": pa.Column(str),
            "entry_low": price,
            "entry_high": price,
            "entry": price,
            "stop": price,
            "target": price,
            "rr": pa.Column("float64", pa.Check.ge(0)),
            "invalidation": price,
            "invalidation_kind": pa.Column(str),
            "status": pa.Column(str, pa.Check.isin(statuses)),
            "status_time": pa.Column(UTC_NS, nullable=True),
            "status_detail": pa.Column(str),
            "as_of": pa.Column(UTC_NS, nullable=True),
            "bars_since": pa.Column("int64", pa.Check.ge(0)),
            "chart": pa.Column(object, nullable=True),
        },
        index=pa.Index(str, name="alert_id", unique=True),
        checks=pa.Check(zone_ordered, error="entry_low > entry_high"),
        strict=False,
        coerce=True,
        name="alerts",
    )
