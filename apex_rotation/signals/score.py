"""The composer: one explainable score per signal (`score.compose(context) -> ScoredSignal`).

CONTRACT (issue 8 base; the composer implements `compose` and the stage that writes the `scores` table).
`ScoredSignal` is what the alerts (`exec/alerts/`) and the dry-run simulator (`exec/sim.py`) read: one row of
the `scores` table per scored signal (fired or not), see `ScoredSignal.to_row` / `from_row`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

Archetype = Literal["rotation", "td13_exhaustion"]
Direction = Literal["long", "short"]
ARCHETYPES: tuple[str, ...] = ("rotation", "td13_exhaustion")


def signal_id(symbol: str, timeframe: str, bar_time: datetime | pd.Timestamp, archetype: str) -> str:
    """The stable id of a signal and of its alert: derived from symbol, timeframe, bar time, archetype."""
    t = pd.Timestamp(bar_time).tz_convert("UTC").isoformat()
    return hashlib.sha256(f"{symbol}|{timeframe}|{t}|{archetype}".encode()).hexdigest()[:16]


class Reason(BaseModel):
    """One pass/fail that contributed to a score, with its points (0 when it did not add any)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    block: Literal["narrative", "market", "technical", "rotation", "td", "regime", "conflict", "cooldown"]
    name: str  # e.g. "volume_spike", "rsi", "strength", "perfected_9", "trend_fade"
    passed: bool | None  # None: insufficient data (said, never passed)
    points: float
    detail: str  # for a trader, e.g. "volume 3.1x EMA20 (≥ 2.0x)"

    def text(self) -> str:
        verdict = {True: "pass", False: "fail", None: "no data"}[self.passed]
        return f"{self.block}/{self.name} {verdict} {self.points:+.1f}: {self.detail}"


class EntryPlan(BaseModel):
    """Where to enter, where the idea is wrong, where to take profit (from `signals/risk.py`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    entry_low: float
    entry_high: float
    entry: float  # the reference (limit) price of the trade template
    stop: float
    stop_source: Literal["tdst", "td_risk", "structure", "atr"]
    target: float
    rr: float
    atr: float
    invalidation: float  # the explicit invalidation price (the TDST or TD risk level when TD contributes)
    invalidation_kind: str  # "TDST", "TD risk level", "structure", "ATR stop"


class ScoredSignal(BaseModel):
    """A scored signal: its blocks, the total, whether it fires (and why not), every reason, the plan."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_id: str
    symbol: str
    timeframe: str
    bar_time: datetime
    archetype: Archetype
    direction: Direction
    apex_asset: str | None = None  # rotation: the apex asset that broke out
    narrative_score: float = 0.0
    market_score: float = 0.0
    technical_score: float = 0.0
    rotation_bonus: float = 0.0
    td_signal: float = 0.0
    regime: str = "unknown"
    regime_weight: float = 1.0
    score: float
    fired: bool
    suppressed: str | None = None  # why it did not fire (conflict, cool-down, below threshold, no plan)
    td_contributes: bool = False
    reasons: list[Reason]
    plan: EntryPlan | None = None

    @field_validator("bar_time")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("bar_time must be timezone-aware (UTC)")
        return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()

    def top_reasons(self, n: int = 3) -> list[Reason]:
        """The `n` reasons that moved the score most (largest |points|; ties keep the stable order)."""
        ranked = sorted(enumerate(self.reasons), key=lambda ir: (-abs(ir[1].points), ir[0]))
        return [r for _, r in ranked[:n]]

    def to_row(self) -> dict:
        """A flat row of the `scores` table (reasons as JSON, plan fields prefixed `plan_`)."""
        row = self.model_dump(exclude={"reasons", "plan"})
        row["bar_time"] = pd.Timestamp(self.bar_time)
        row["reasons"] = json.dumps([r.model_dump() for r in self.reasons], ensure_ascii=False)
        plan = self.plan.model_dump() if self.plan else dict.fromkeys(EntryPlan.model_fields)
        row.update({f"plan_{k}": v for k, v in plan.items()})
        return row

    @classmethod
    def from_row(cls, row: dict) -> ScoredSignal:
        data = {k: v for k, v in row.items() if k in cls.model_fields and k not in ("reasons", "plan")}
        data = {k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in data.items()}
        data["bar_time"] = pd.Timestamp(row["bar_time"]).to_pydatetime()
        data["reasons"] = [Reason(**r) for r in json.loads(row["reasons"])]
        plan = {k.removeprefix("plan_"): row[k] for k in row if k.startswith("plan_")}
        data["plan"] = None if plan.get("entry") is None or pd.isna(plan["entry"]) else EntryPlan(**plan)
        return cls(**data)


def compose(context) -> ScoredSignal:
    raise NotImplementedError("issue 8: the composer implements this")
