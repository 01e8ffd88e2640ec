"""The composer: one explainable score per signal (`score.compose(context) -> ScoredSignal`).

`compose` is pure: a `SignalContext` (the signal bar's values, the TD views of the signal's timeframe, of
`td.htf` and `td.ltf`, the regime, the rotation watch and retest, the previous fire of the same symbol ×
archetype × direction, and the config) fully decides the `ScoredSignal`. Two archetypes go through it:
`rotation` (a LAGGING_ROTATION candidate whose confirmation watch ended; long) and `td13_exhaustion` (a
countdown 13 on `td.htf`; buy 13 long, sell 13 short). The blocks, the conflict rule, the cool-down and the
plan are documented in docs/signals.md ("Composer"); `signals/scoring.py` builds the contexts and writes
the `scores` table. `compose` weighs a context's `evidence` (the blocks that the points, the rule, the regime
weights and the threshold do not change); a caller holding it already (the research harness, across
ablations) hands it in.

CONTRACT (issue 8 base; the composer implements `compose` and the stage that writes the `scores` table).
`ScoredSignal` is what the alerts (`exec/alerts/`) and the dry-run simulator (`exec/sim.py`) read: one row of
the `scores` table per scored signal (fired or not), see `ScoredSignal.to_row` / `from_row`.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Literal, NamedTuple

import pandas as pd
from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from apex_rotation.config import AppConfig
from apex_rotation.signals import regime as regimes
from apex_rotation.signals import risk
from apex_rotation.signals import technicals as tech
from apex_rotation.signals.confirm import FilterResult, evaluate_filters
from apex_rotation.signals.technicals import CheckResult

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


# ---------------------------------------------------------------- the composer's input


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a naive datetime: give it in UTC")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_aware_utc)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BarValues(_Frozen):
    """The signal bar's values (features of the signal's timeframe at its close); None where unknown."""

    close: float
    atr: float | None = None
    volume: float | None = None
    vol_ema20: float | None = None
    hh_prev: float | None = None
    oi_chg: float | None = None
    funding: float | None = None
    funding_prev: float | None = None
    rsi: float | None = None
    macd: float | None = None
    macd_signal: float | None = None
    macd_hist: float | None = None
    macd_hist_prev: float | None = None
    ema_20: float | None = None
    ema_50: float | None = None
    ema_200: float | None = None
    fib_zone: str | None = None
    fib_pos: float | None = None
    fib_swing_up: bool | None = None
    volume_trend: float | None = None
    structure_low: float | None = (
        None  # lowest low of the last `score.structure_bars` bars (signal bar incl.)
    )
    structure_high: float | None = None  # highest high of the same bars


class TDEvent(_Frozen):
    """A completed setup 9 or countdown 13 seen from the bar a `TDView` is read at."""

    kind: Literal["setup_9", "countdown_13"]
    side: Literal["buy", "sell"]
    bars_ago: int  # 0: on the read bar itself
    perfected: bool  # setup_9: perfected; countdown_13: the setup that started the countdown was perfected

    def text(self) -> str:
        what = "9" if self.kind == "setup_9" else "13"
        when = "on the bar" if self.bars_ago == 0 else f"{self.bars_ago} bars ago"
        return f"{self.side} {what} {when}{' (perfected)' if self.perfected else ''}"


class TDView(_Frozen):
    """TD Sequential of one timeframe read at one bar: its state there and the 9s/13s of the bars before."""

    timeframe: str
    bar_time: datetime  # open time of the bar read (the last bar of this timeframe closed by the signal)
    setup_type: Literal["buy", "sell"] | None = None
    setup_count: int = 0
    countdown_type: Literal["buy", "sell"] | None = None
    countdown: int = 0
    tdst_buy: float | None = None  # TDST resistance (from the last buy setup)
    tdst_sell: float | None = None  # TDST support (from the last sell setup)
    risk_level: float | None = (
        None  # TD risk level: the 13's countdown level on a 13 bar, else the last setup's
    )
    risk_side: Literal["buy", "sell"] | None = None  # the side of the setup/countdown that set `risk_level`
    events: list[TDEvent] = []  # newest first, within the view's lookback

    def fresh(self, side: str, within: int, kinds: tuple[str, ...] = ("setup_9", "countdown_13")):
        """The newest event of `side` (and `kinds`) at most `within` bars ago, or None."""
        return next(
            (e for e in self.events if e.side == side and e.kind in kinds and e.bars_ago <= within), None
        )

    def state_text(self) -> str:
        setup = f"{self.setup_type} setup {self.setup_count}" if self.setup_type else "no setup"
        cd = f"{self.countdown_type} countdown {self.countdown}" if self.countdown_type else "no countdown"
        return f"{self.timeframe}: {setup}, {cd}"


class Watch(_Frozen):
    """A rotation candidate (`rotation_candidates`) and how its confirmation watch ended (`confirmations`)."""

    apex_asset: str
    trigger_time: UtcTime
    signal_strength: Literal["HIGH", "MEDIUM", "LOW"]
    expected_catchup_pct: float
    move_since_trigger_pct: float  # the alt's close on the signal bar vs on the trigger bar
    status: Literal["confirmed", "expired"]
    bars_after: int


class PreviousFire(_Frozen):
    """The last fired signal of the same symbol × archetype × direction (the stage tracks it in time order)."""

    bars_ago: int  # bars of the signal's timeframe between the two signal bars
    score: float


class SignalContext(_Frozen):
    """Everything `compose` reads; built by the stage (`signals/scoring.py`) from bars up to the signal bar."""

    archetype: Archetype
    symbol: str
    timeframe: str
    bar_time: UtcTime  # the signal bar (open time); every input is known at its close
    direction: Direction
    bar: BarValues
    td: TDView  # the signal's timeframe
    htf: TDView  # td.htf at the signal's close (the same view when the signal is on the HTF)
    ltf: TDView  # td.ltf at the signal's close, its events within td.conflict_ltf_bars
    regime: str = "unknown"  # signals/regime.py on the signal's timeframe
    watch: Watch | None = None  # rotation only
    retest: tuple[str, str] | None = (
        None  # rotation: technicals.retest (status, reason) of the latest breakout
    )
    previous: PreviousFire | None = None
    cfg: AppConfig  # the run's configuration (weights, threshold, TD, technicals, risk, regime knobs)


# ---------------------------------------------------------------- the composer


def _aligned(direction: str) -> tuple[str, str]:
    """(the TD side in the trade's direction, the side against it): a buy count exhausts sellers: long."""
    return ("buy", "sell") if direction == "long" else ("sell", "buy")


def _scored(
    block: str, name: str, passed: bool | None, points: float, detail: str, counts: bool | None = None
) -> Reason:
    """A reason worth `points` when it `counts` (by default: when it passed), else 0."""
    counts = passed is True if counts is None else counts
    return Reason(block=block, name=name, passed=passed, points=points if counts else 0.0, detail=detail)


def _market(ctx: SignalContext, cfg: AppConfig, results: dict[str, FilterResult]) -> list[Reason]:
    """The five confirmation filters' `results` on the signal bar (signals/confirm.py), each worth its points.

    A short mirrors the directional ones: a breakout up or a funding flip to positive adds nothing to a
    short, while hot funding (crowded longs) is worth the opposite of its long points."""
    points = cfg.score.market.model_dump()
    out = []
    for name, res in results.items():
        w = points[name]
        note = ""
        if ctx.direction == "short" and name in ("breakout", "funding_flip"):
            w, note = 0.0, "; not a short's confirmation"
        elif ctx.direction == "short" and name == "funding_hot":
            w, note = -w, "; crowded longs: fuel for a short"
        out.append(_scored("market", name, res.passed, w, res.reason + note))
    return out


def _short_checks(b: BarValues, cfg: AppConfig):
    """The five technicals mirrored for a short (signals/technicals.py is written for a long)."""
    t = cfg.technicals
    out = []
    if b.rsi is None:
        out.append(CheckResult("rsi", None, "insufficient data: RSI is NaN"))
    else:
        lo, hi = 100 - t.rsi_max, 100 - t.rsi_min
        ok = lo <= b.rsi <= hi
        out.append(
            CheckResult("rsi", ok, f"RSI {b.rsi:.2f} {'within' if ok else 'outside'} [{lo:g}, {hi:g}]")
        )
    if b.macd is None or b.macd_signal is None:
        out.append(CheckResult("macd", None, "insufficient data: MACD or signal is NaN"))
    elif b.macd < b.macd_signal:
        out.append(CheckResult("macd", True, f"MACD {b.macd:.4g} < signal {b.macd_signal:.4g}"))
    elif b.macd_hist is None or b.macd_hist_prev is None:
        out.append(CheckResult("macd", None, "MACD >= signal; histogram trend unknown (NaN)"))
    else:
        ok = b.macd_hist < b.macd_hist_prev
        verb = "falling" if ok else "not falling"
        out.append(
            CheckResult(
                "macd", ok, f"MACD >= signal, histogram {verb} {b.macd_hist_prev:.4g} -> {b.macd_hist:.4g}"
            )
        )
    if b.ema_20 is None or b.ema_50 is None:
        out.append(CheckResult("ema_stack", None, "insufficient data: ema_20 or ema_50 is NaN"))
    else:
        ok = b.close < b.ema_20 < b.ema_50
        out.append(
            CheckResult(
                "ema_stack",
                ok,
                f"{'stacked down' if ok else 'not stacked down'}: close "
                f"{b.close:.6g}, ema_20 {b.ema_20:.6g}, ema_50 {b.ema_50:.6g}",
            )
        )
    if b.fib_zone is None or b.fib_swing_up is None:
        out.append(CheckResult("fib", None, "insufficient data: no fib zone"))
    else:
        zones = {"above": "below"}
        ok = (not b.fib_swing_up) and b.fib_zone in {zones.get(z, z) for z in t.fib_zones}
        swing = "up" if b.fib_swing_up else "down"
        out.append(CheckResult("fib", ok, f"close in zone {b.fib_zone} of the {swing}-swing"))
    if b.volume_trend is None:
        out.append(CheckResult("volume_trend", None, "insufficient data: volume_trend is NaN"))
    else:
        ok = b.volume_trend > 0
        out.append(
            CheckResult(
                "volume_trend", ok, f"EMA10/EMA50 volume {b.volume_trend:+.2%} {'>' if ok else '<='} 0"
            )
        )
    return out


def _long_checks(b: BarValues, cfg: AppConfig):
    nan = float("nan")

    def v(x: float | None) -> float:
        return nan if x is None else x

    t = cfg.technicals
    return [
        tech.check_rsi(v(b.rsi), t),
        tech.check_macd(v(b.macd), v(b.macd_signal), v(b.macd_hist), v(b.macd_hist_prev)),
        tech.check_ema_stack(b.close, v(b.ema_20), v(b.ema_50), v(b.ema_200)),
        tech.check_fib(b.fib_zone, v(b.fib_pos), b.fib_swing_up, t),
        tech.check_volume_trend(v(b.volume_trend)),
    ]


def _technical(ctx: SignalContext, cfg: AppConfig) -> list[Reason]:
    """Each of the five checks, the k-of-5 verdict, and (rotation) the retest of the latest breakout."""
    p = cfg.score.technical
    checks = _long_checks(ctx.bar, cfg) if ctx.direction == "long" else _short_checks(ctx.bar, cfg)
    out = [_scored("technical", c.name, c.passed, p.per_check, c.reason) for c in checks]
    n = sum(c.passed is True for c in checks)
    need = cfg.technicals.required
    ok = n >= need
    out.append(
        _scored(
            "technical",
            "k_of_5",
            ok,
            p.k_of_5,
            f"{n} of 5 checks pass ({'≥' if ok else '<'} {need} required)",
        )
    )
    if ctx.archetype == "rotation":
        status, why = ctx.retest or ("none", "no breakout to retest")
        pts = {"confirmed": p.retest_confirmed, "failed": p.retest_failed}.get(status, 0.0)
        passed = {"confirmed": True, "pending": None}.get(status, False)  # pending: not decidable yet
        out.append(
            Reason(block="technical", name="retest", passed=passed, points=pts, detail=f"{status}: {why}")
        )
    return out


def _rotation(ctx: SignalContext, cfg: AppConfig) -> list[Reason]:
    """Signal strength, and how much of the expected catch-up is still ahead on the signal bar."""
    if ctx.watch is None:
        return []
    p, w = cfg.score.rotation, ctx.watch
    grade = {"HIGH": p.high, "MEDIUM": p.medium, "LOW": p.low}[w.signal_strength]
    when = pd.Timestamp(w.trigger_time).tz_convert("UTC").isoformat()
    out = [
        Reason(
            block="rotation",
            name="strength",
            passed=True,
            points=grade,
            detail=f"{w.signal_strength}: expected catch-up {w.expected_catchup_pct:+.1f}% vs "
            f"{w.apex_asset} (triggered {when}, watch {w.status} after {w.bars_after} bars)",
        ),
    ]
    left = w.expected_catchup_pct - w.move_since_trigger_pct
    need = p.catchup_left_min * w.expected_catchup_pct
    ok = left >= need
    detail = (
        f"{left:+.1f}% of {w.expected_catchup_pct:.1f}% still ahead (moved "
        f"{w.move_since_trigger_pct:+.1f}% since the trigger; need ≥ {need:.1f}%)"
    )
    out.append(_scored("rotation", "catchup_left", ok, p.catchup_left, detail))
    return out


def _hit(name: str, event: object, points: float, passed: bool, detail: str) -> Reason:
    """A TD reason worth `points` when `event` (a TDEvent or a text) is there, else 0."""
    return _scored("td", name, passed, points, detail, counts=bool(event))


def _td(ctx: SignalContext, cfg: AppConfig) -> list[Reason]:
    """TD on the signal's timeframe: fresh 13s and perfected 9s in the trade's direction add, fresh prints
    against it and setups still running subtract; the LTF agreeing adds a little."""
    p, fresh = cfg.score.td, cfg.td.fresh_bars
    side, other = _aligned(ctx.direction)
    view, tf = ctx.td, ctx.td.timeframe
    thirteen = view.fresh(side, fresh, ("countdown_13",))
    nine = view.fresh(side, fresh, ("setup_9",))
    if thirteen is not None:  # for a 13, the setup that started its countdown
        perfected = thirteen.perfected
        nine_text = f"the {side} setup that started this countdown was {'' if perfected else 'not '}perfected"
    elif nine is not None:
        perfected = nine.perfected
        nine_text = f"{tf} {nine.text()}" + ("" if perfected else ", not perfected")
    else:
        perfected, nine_text = False, f"no {side} 9 within {fresh} bars on {tf}"
    against = view.fresh(other, fresh)
    running = view.setup_type is not None and 0 < view.setup_count < 9
    if running and view.setup_type == other and view.setup_count >= cfg.td.early_against_count:
        early = f"{other} setup at {view.setup_count} of 9: exhaustion against the trade is near"
    elif running and view.setup_type == side and thirteen is None and nine is None:
        early = f"{side} setup at {view.setup_count} of 9: the move has not exhausted yet (early)"
    else:
        early = None
    agrees = ctx.ltf.fresh(side, cfg.td.conflict_ltf_bars - 1)
    return [
        _hit(
            "countdown_13",
            thirteen,
            p.countdown_13,
            thirteen is not None,
            f"{tf} {thirteen.text()}" if thirteen else f"no {side} 13 within {fresh} bars on {tf}",
        ),
        _hit("perfected_9", perfected, p.perfected_9, perfected, nine_text),
        _hit(
            "against",
            against,
            p.against,
            against is None,
            f"{tf} {against.text()} against a {ctx.direction}"
            if against
            else f"no {other} 9/13 within {fresh} bars",
        ),
        _hit(
            "early_setup",
            early,
            p.early_setup,
            early is None,
            early or f"no early setup ({view.state_text()})",
        ),
        _hit(
            "ltf_agrees",
            agrees,
            p.ltf_agrees,
            agrees is not None,
            f"{ctx.ltf.timeframe} {agrees.text()}"
            if agrees
            else f"no fresh {side} 9/13 ({ctx.ltf.state_text()})",
        ),
    ]


def conflict(ctx: SignalContext, cfg: AppConfig) -> Reason:
    """HTF vs LTF TD. The HTF holds a TD thesis for the trade when it printed a 9 or 13 in the trade's
    direction within `td.fresh_bars` HTF bars; the LTF contradicts it when it printed a 9 or 13 of the other
    side on one of the last `td.conflict_ltf_bars` LTF bars closed by the signal's close. Both: conflict."""
    side, other = _aligned(ctx.direction)
    htf, ltf = ctx.htf.timeframe, ctx.ltf.timeframe
    thesis = ctx.htf.fresh(side, cfg.td.fresh_bars)
    against = ctx.ltf.fresh(other, cfg.td.conflict_ltf_bars - 1) if thesis else None
    if thesis is None:
        detail = f"no {htf} TD thesis in the trade's direction to contradict"
    elif against is None:
        detail = f"{htf} {thesis.text()}; {ltf} prints nothing against it"
    else:
        detail = f"{htf} {thesis.text()} vs {ltf} {against.text()}"
    return Reason(block="conflict", name="htf_ltf", passed=against is None, points=0.0, detail=detail)


def _plan(ctx: SignalContext, cfg: AppConfig, td_contributes: bool) -> tuple[EntryPlan | None, str]:
    """The trade plan (signals/risk.py): the TD stop when TD contributes, else structure, else ATR; the
    first whose R:R reaches `risk.min_rr` is kept. (None, why) when none does or the bar lacks an ATR."""
    b = ctx.bar
    if b.atr is None or not b.atr > 0 or not b.close > 0:
        return None, "no ATR on the signal bar"
    long = ctx.direction == "long"
    structure = b.structure_low if long else b.structure_high
    if structure is not None and (structure >= b.close if long else structure <= b.close):
        structure = None  # the signal bar itself is the extreme: no swing beyond the entry
    td = None
    if td_contributes:
        v = ctx.td
        td = {
            "td_tdst_sell": v.tdst_sell,
            "td_tdst_buy": v.tdst_buy,
            "td_setup_risk_level": v.risk_level,
            "td_setup_type": v.risk_side,
        }
    attempts = [(td, structure), (None, structure), (None, None)] if td else [(None, structure), (None, None)]
    tried = []
    for td_in, struct in attempts:
        kwargs = {"structure_low" if long else "structure_high": struct}
        plan = risk.plan_trade(b.close, side=ctx.direction, atr=b.atr, td=td_in, cfg=cfg.risk, **kwargs)
        if (plan.stop_source, plan.stop) in tried:
            continue
        if risk.rr_ok(plan, cfg.risk.min_rr):
            return _entry_plan(plan, ctx, cfg, td_in, struct), ""
        tried.append((plan.stop_source, plan.stop))
    why = ", ".join(f"{src} stop {stop:.6g}" for src, stop in tried)
    return None, f"no usable plan: R:R below min_rr {cfg.risk.min_rr:g} with {why}"


def _entry_plan(
    plan: risk.TradePlan, ctx: SignalContext, cfg: AppConfig, td: dict | None, structure: float | None
) -> EntryPlan:
    """The plan as the contract's `EntryPlan`: the entry zone reaches `score.entry_zone_atr` ATR from the
    signal close on the pullback side; the invalidation is the level the stop sits beyond."""
    b, long = ctx.bar, ctx.direction == "long"
    far = b.close - (1.0 if long else -1.0) * cfg.score.entry_zone_atr * b.atr
    if plan.stop_source == "tdst":
        level, kind = td["td_tdst_sell" if long else "td_tdst_buy"], "TDST"
    elif plan.stop_source == "td_risk":
        level, kind = td["td_setup_risk_level"], "TD risk level"
    elif plan.stop_source == "structure":
        level, kind = structure, "structure"
    else:
        level, kind = plan.stop, "ATR stop"
    return EntryPlan.model_construct(
        entry_low=min(far, b.close),
        entry_high=max(far, b.close),
        entry=b.close,
        stop=plan.stop,
        stop_source=plan.stop_source,
        target=plan.take_profit,
        rr=plan.rr,
        atr=b.atr,
        invalidation=float(level),
        invalidation_kind=kind,
    )


def _regime(ctx: SignalContext, cfg: AppConfig, raw: float) -> tuple[float, Reason]:
    """A TD 13 is a fade: `regime.td_fade_weight` of its side (a sell 13 in an up-trend is down-weighted, or
    blocked with `regime.block_td_fades_in_trend`). A rotation rides the apex's move: full weight."""
    if ctx.archetype != "td13_exhaustion":
        return 1.0, Reason(
            block="regime",
            name="fade_weight",
            passed=True,
            points=0.0,
            detail=f"{ctx.regime}: a rotation is not a fade, full weight",
        )
    side, _ = _aligned(ctx.direction)
    weight = regimes.td_fade_weight(ctx.regime, side, 9, cfg.regime)
    if weight == 0:
        detail = f"{ctx.regime}: a {side} fade against the trend is blocked"
    elif weight < 1:
        detail = f"{ctx.regime}: a {side} fade against the trend, weight {weight:g}"
    else:
        detail = f"{ctx.regime}: a {side} fade at full weight"
    return weight, Reason(
        block="regime", name="fade_weight", passed=weight > 0, points=(weight - 1.0) * raw, detail=detail
    )


def _cooldown(ctx: SignalContext, cfg: AppConfig, score: float) -> Reason | None:
    prev = ctx.previous
    if prev is None or prev.bars_ago > cfg.td.cooldown_bars:
        return None
    need = prev.score + cfg.score.rescore_margin
    ok = score >= need - EPS
    return Reason(
        block="cooldown",
        name="rescore",
        passed=ok,
        points=0.0,
        detail=f"fired {prev.bars_ago} bars ago (≤ {cfg.td.cooldown_bars}) at {prev.score:.2f}; "
        f"{score:.2f} {'≥' if ok else '<'} {need:.2f} needed to fire again",
    )


EPS = 1e-9


class Evidence(NamedTuple):
    """The blocks of a signal's score that neither the market filters' points, the rule, the regime weights,
    the alert threshold nor a previous fire change (`EVIDENCE_FREE`): what `compose` weighs and judges. The
    research harness computes them once per signal and shares them by the configs that differ only there."""

    signal_id: str
    filters: dict[str, FilterResult]  # the confirmation filters on the signal bar, before their points
    technical: list[Reason]
    rotation: list[Reason]
    td: list[Reason]
    conflict: Reason
    td_contributes: bool
    plan: EntryPlan | None
    no_plan: str  # why there is no plan ("" when there is one)


# The config `evidence` does not read (pydantic `exclude` form): configs equal but for these share evidence.
EVIDENCE_FREE: dict = {
    "apex": True,
    "research": True,
    "regime": True,
    "market_filters": {"rule"},
    "score": {"market", "alert_threshold", "rescore_margin"},
}


def evidence(context: SignalContext) -> Evidence:
    """The evidence blocks of one context (pure, like `compose`; the context's `regime` and `previous` and
    the `EVIDENCE_FREE` config are not read)."""
    ctx, cfg = context, context.cfg
    td = _td(ctx, cfg)
    td_contributes = ctx.archetype == "td13_exhaustion" or any(r.points > 0 for r in td[:2])
    plan, no_plan = _plan(ctx, cfg, td_contributes)
    return Evidence(
        signal_id=signal_id(ctx.symbol, ctx.timeframe, ctx.bar_time, ctx.archetype),
        filters=evaluate_filters(ctx.bar.__dict__, cfg.market_filters),
        technical=_technical(ctx, cfg),
        rotation=_rotation(ctx, cfg),
        td=td,
        conflict=conflict(ctx, cfg),
        td_contributes=td_contributes,
        plan=plan,
        no_plan=no_plan,
    )


def compose(context: SignalContext, known: Evidence | None = None) -> ScoredSignal:
    """Score one signal from its context alone (pure: the same context gives the same ScoredSignal).

    Reasons come block by block in a fixed order: narrative, market (5 filters), technical (5 checks, k-of-5,
    the retest for a rotation), rotation (strength, catch-up left), td (13, perfected 9, against, early setup,
    LTF agrees), regime (its points are what the weighting took away), conflict, cool-down (when a previous
    fire is within `td.cooldown_bars`). `score` is the sum of every reason's points. It fires when the score
    reaches `score.alert_threshold` and nothing suppresses it; `suppressed` lists every reason it did not.
    `known` is `evidence(context)` when the caller has it already (computed under a config alike but for
    `EVIDENCE_FREE`).
    """
    ctx, cfg = context, context.cfg
    ev = evidence(ctx) if known is None else known
    narrative = [
        Reason(
            block="narrative",
            name="narrative",
            passed=None,
            points=0.0,
            detail="narrative engine not enabled",
        )
    ]
    market, technical, rotation, td = _market(ctx, cfg, ev.filters), ev.technical, ev.rotation, ev.td
    blocks = [sum(r.points for r in rs) for rs in (narrative, market, technical, rotation, td)]
    raw = sum(blocks)
    weight, regime_reason = _regime(ctx, cfg, raw)
    score = raw + regime_reason.points
    clash, plan, no_plan = ev.conflict, ev.plan, ev.no_plan

    suppressed = []
    if not clash.passed:
        suppressed.append(f"HTF/LTF TD conflict: {clash.detail}")
    if weight == 0:
        suppressed.append(f"regime: {regime_reason.detail}")
    threshold = cfg.score.alert_threshold
    if score < threshold - EPS:
        suppressed.append(f"score {score:.2f} below the alert threshold {threshold:g}")
    if plan is None:
        suppressed.append(no_plan)
    reasons = [*narrative, *market, *technical, *rotation, *td, regime_reason, clash]
    if not suppressed:
        cooldown = _cooldown(ctx, cfg, score)
        if cooldown is not None:
            reasons.append(cooldown)
            if not cooldown.passed:
                suppressed.append(f"cool-down: {cooldown.detail}")
    return ScoredSignal(
        signal_id=ev.signal_id,
        symbol=ctx.symbol,
        timeframe=ctx.timeframe,
        bar_time=ctx.bar_time,
        archetype=ctx.archetype,
        direction=ctx.direction,
        apex_asset=ctx.watch.apex_asset if ctx.watch else None,
        narrative_score=blocks[0],
        market_score=blocks[1],
        technical_score=blocks[2],
        rotation_bonus=blocks[3],
        td_signal=blocks[4],
        regime=ctx.regime,
        regime_weight=weight,
        score=score,
        fired=not suppressed,
        suppressed="; ".join(suppressed) or None,
        td_contributes=ev.td_contributes,
        reasons=reasons,
        plan=plan,
    )
