"""The alert payload (`Alert`) built from a fired `ScoredSignal`, and its status as of the latest closed bar.

Status rules (docs/alerts.md), for a long; a short mirrors them (low ↔ high, below ↔ above). The bars are
the alt's closed bars strictly after the signal bar, up to the latest stored (closed) one, walked in order;
`k` counts them from 1. The trade "fills" on the first bar whose range overlaps the entry zone
[entry_low, entry_high].

Before the fill:
  1. the bar closes beyond the invalidation price (long: close < invalidation)    → Invalidated
  2. the bar's range overlaps the entry zone                                     → filled (go on below,
     on the same bar only the stop is checked: whether the target came first is unknowable)
  3. the bar reaches the target without a fill (long: high ≥ target)             → Expired (ran away)
  4. k ≥ sim.entry_expiry_bars and still no fill                                 → Expired (no retest)
After the fill:
  5. the bar trades through the stop (long: low ≤ stop) or closes beyond the
     invalidation price                                                          → Invalidated
  6. the bar reaches the target (long: high ≥ target)                            → Target hit
If the bars run out first: "Waiting for retest" (no fill yet) or "Entry zone" (filled, still open).
Invalidated, Target hit and Expired are final; `status_time` is the bar that decided them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from apex_rotation.signals.score import Archetype, Direction, Reason, ScoredSignal, signal_id

AlertStatus = Literal["Waiting for retest", "Entry zone", "Invalidated", "Target hit", "Expired"]
STATUSES: tuple[str, ...] = ("Waiting for retest", "Entry zone", "Invalidated", "Target hit", "Expired")
FINAL_STATUSES = ("Invalidated", "Target hit", "Expired")


class AlertError(RuntimeError):
    """An alert that cannot be built or delivered; the message says which and why (never a secret)."""


class Alert(BaseModel):
    """What every channel delivers for one fired signal (and one row of the `alerts` table)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alert_id: str  # = signal_id(symbol, timeframe, bar_time, archetype): the idempotency root
    symbol: str
    timeframe: str
    bar_time: datetime
    archetype: Archetype
    direction: Direction
    apex_asset: str | None = None
    score: float
    top_reasons: list[str]  # the 3 reasons that moved the score most, as text
    reasons: list[Reason]  # every reason
    entry_low: float
    entry_high: float
    entry: float
    stop: float
    target: float
    rr: float
    invalidation: float
    invalidation_kind: str
    status: AlertStatus
    status_time: datetime | None = None  # the bar that decided a final status (or the fill bar)
    status_detail: str
    as_of: datetime | None = None  # the latest closed bar the status was computed from
    bars_since: int = 0  # closed bars of the timeframe between the signal bar and the latest one
    chart: str | None = None  # the chart's path relative to the store root (None: not rendered)

    @property
    def title(self) -> str:
        return f"{self.symbol} {self.timeframe} {self.direction.upper()} · {self.archetype} · score {self.score:.1f}"

    @property
    def entry_zone(self) -> str:
        return f"{_price(self.entry_low)} – {_price(self.entry_high)}"

    def lines(self) -> list[tuple[str, str]]:
        """(label, value) pairs every channel shows, in order."""
        return [
            ("Signal bar", pd.Timestamp(self.bar_time).strftime("%Y-%m-%d %H:%M UTC")),
            ("Status", f"{self.status} ({self.status_detail})"),
            ("Entry zone", self.entry_zone),
            ("Stop", _price(self.stop)),
            ("Target", _price(self.target)),
            ("R:R", f"{self.rr:.2f}"),
            ("Invalidation", f"{_price(self.invalidation)} ({self.invalidation_kind})"),
            *([("Apex", self.apex_asset)] if self.apex_asset else []),
        ]

    def plain_text(self) -> str:
        body = [self.title, *(f"{k}: {v}" for k, v in self.lines()), "Top reasons:"]
        body += [f"- {r}" for r in self.top_reasons]
        body.append(f"alert {self.alert_id}")
        return "\n".join(body)

    def telegram_html(self) -> str:
        """The message in Telegram's HTML parse mode: every value escaped (only <, >, & matter)."""
        e = html.escape
        body = [f"<b>{e(self.title)}</b>", *(f"<b>{e(k)}:</b> {e(v)}" for k, v in self.lines())]
        body += ["<b>Top reasons:</b>", *(f"• {e(r)}" for r in self.top_reasons)]
        body.append(f"<code>alert {e(self.alert_id)}</code>")
        return "\n".join(body)

    def to_row(self) -> dict:
        row = self.model_dump(exclude={"reasons"})
        row["reasons"] = json.dumps([r.model_dump() for r in self.reasons], ensure_ascii=False)
        row["top_reasons"] = json.dumps(self.top_reasons, ensure_ascii=False)
        for key in ("bar_time", "status_time", "as_of"):
            row[key] = pd.Timestamp(row[key]) if row[key] is not None else pd.NaT
        return row


def _price(x: float) -> str:
    return f"{x:.6g}" if abs(x) < 1 else f"{x:,.4f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Status:
    status: str
    time: pd.Timestamp | None
    detail: str


def _first(test, n: int, start: int = 0, window: int = 64) -> int:
    """Index of the first bar in [start, n) where `test(slice)` holds (n when none), searched in growing
    windows: an alert's events are usually a few bars away, while its history can be years long."""
    while start < n:
        end = min(n, start + window)
        hit = np.flatnonzero(test(slice(start, end)))
        if len(hit):
            return start + int(hit[0])
        start, window = end, window * 4
    return n


def alert_status(signal: ScoredSignal, after: pd.DataFrame, expiry_bars: int) -> Status:
    """The status of a fired signal from the alt's closed bars after its signal bar (rules: module doc).

    Vectorised: each rule's first bar is found with numpy, and the earliest wins (ties in rule order)."""
    plan = signal.plan
    if plan is None:
        raise AlertError(f"signal {signal.signal_id} fired without an entry plan")
    # In "long space" (prices × sign, low and high swapped for a short) a short reads exactly like a long.
    long = signal.direction == "long"
    sign = 1.0 if long else -1.0
    lo = np.asarray(after["low"] if long else after["high"], dtype=float) * sign
    hi = np.asarray(after["high"] if long else after["low"], dtype=float) * sign
    close = np.asarray(after["close"], dtype=float) * sign
    zone_lo, zone_hi = sorted((plan.entry_low * sign, plan.entry_high * sign))
    inval, stop, target = plan.invalidation * sign, plan.stop * sign, plan.target * sign
    n, times = len(close), after.index
    pre = min(n, expiry_bars)  # before the fill nothing is looked at beyond the expiry
    first = sorted(
        (
            (
                _first(lambda s: close[s] < inval, pre),
                1,
                "Invalidated",
                f"closed beyond {plan.invalidation_kind} before entry",
            ),
            (_first(lambda s: (lo[s] <= zone_hi) & (hi[s] >= zone_lo), pre), 2, "filled", ""),
            (_first(lambda s: hi[s] >= target, pre), 3, "Expired", "ran to target without a retest"),
            (
                expiry_bars - 1 if expiry_bars <= n else n,
                4,
                "Expired",
                f"no retest within {expiry_bars} bars",
            ),
        )
    )[0]
    i, _, status, detail = first
    if i >= pre:
        return Status("Waiting for retest", None, f"{n} bar(s) since the signal, no retest yet")
    if status != "filled":
        return Status(status, times[i], detail)
    if lo[i] <= stop:
        return Status("Invalidated", times[i], "stop hit on the entry bar")
    stopped = _first(lambda s: (lo[s] <= stop) | (close[s] < inval), n, i + 1)
    hit = _first(lambda s: hi[s] >= target, n, i + 1)
    if stopped < n and stopped <= hit:
        why = "stop hit" if lo[stopped] <= stop else f"closed beyond {plan.invalidation_kind}"
        return Status("Invalidated", times[stopped], why)
    if hit < n:
        return Status("Target hit", times[hit], "target reached")
    return Status("Entry zone", times[i], "entry zone reached, stop and target untouched")


def build_alert(
    signal: ScoredSignal,
    after: pd.DataFrame,
    *,
    expiry_bars: int,
    bars_since: int | None = None,
    chart: str | None = None,
) -> Alert:
    """The payload of a fired signal: `after` = the alt's closed bars after the signal bar."""
    plan = signal.plan
    if plan is None:
        raise AlertError(f"signal {signal.signal_id} ({signal.symbol} {signal.timeframe}) has no entry plan")
    status = alert_status(signal, after, expiry_bars)
    as_of = after.index[-1] if len(after) else pd.Timestamp(signal.bar_time)
    return Alert(
        alert_id=signal_id(signal.symbol, signal.timeframe, signal.bar_time, signal.archetype),
        symbol=signal.symbol,
        timeframe=signal.timeframe,
        bar_time=signal.bar_time,
        archetype=signal.archetype,
        direction=signal.direction,
        apex_asset=signal.apex_asset,
        score=signal.score,
        top_reasons=[r.text() for r in signal.top_reasons(3)],
        reasons=list(signal.reasons),
        entry_low=plan.entry_low,
        entry_high=plan.entry_high,
        entry=plan.entry,
        stop=plan.stop,
        target=plan.target,
        rr=plan.rr,
        invalidation=plan.invalidation,
        invalidation_kind=plan.invalidation_kind,
        status=status.status,
        status_time=None if status.time is None else pd.Timestamp(status.time).to_pydatetime(),
        status_detail=status.detail,
        as_of=pd.Timestamp(as_of).to_pydatetime(),
        bars_since=len(after) if bars_since is None else bars_since,
        chart=chart,
    )
