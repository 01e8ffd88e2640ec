"""Market confirmation of rotation candidates: named filters on the alt's trigger bar, combined by a rule.

Each filter is a pure function of a candidate's `context` (the alt's values on the trigger bar, all known
at that bar's close) and the `market_filters` section of the config (`MarketFiltersConfig`), and says why in numbers. A filter whose inputs are missing
returns ``passed=None`` with an "insufficient data: ..." reason (never a silent pass); the rule then
decides with three-valued logic, and a rule that comes out None does not confirm.

Units: `oi_chg` is the fractional change of open interest over the bar (0.05 = +5 %); `funding` and
`funding_prev` are funding rates as fractions PER HOUR (Hyperliquid's native unit; an 8-hourly venue
rate must be divided by 8 upstream), so `funding_hot=0.0005` is 0.05 %/h ≈ 0.4 % per 8 h, a crowded long.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from pydantic import BaseModel, ConfigDict

from apex_rotation.config import MarketFiltersConfig
from apex_rotation.rules import Rule, RuleError, check_known, parse
from apex_rotation.signals.rotation import RotationCandidate


class FilterResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    passed: bool | None
    reason: str


Context = Mapping[str, float | None]


def _get(ctx: Context, key: str) -> float | None:
    value = ctx.get(key)
    return None if value is None or math.isnan(value) else float(value)


def _num(x: float) -> str:
    return f"{x:.6g}"


def _rate(x: float) -> str:
    return f"{x * 100:+.4f}%/h"


def volume_spike(ctx: Context, cfg: MarketFiltersConfig) -> FilterResult:
    """Bar volume at least `volume_x` times its EMA20: real participation behind the move."""
    volume, ema = _get(ctx, "volume"), _get(ctx, "vol_ema20")
    if volume is None or ema is None or ema <= 0:
        return FilterResult(name="volume_spike", passed=None, reason="insufficient data: no volume EMA20")
    passed = volume >= cfg.volume_x * ema
    sign = "≥" if passed else "<"
    return FilterResult(
        name="volume_spike",
        passed=passed,
        reason=f"volume {volume / ema:.1f}x EMA20 ({sign} {cfg.volume_x:.1f}x)",
    )


def breakout(ctx: Context, cfg: MarketFiltersConfig) -> FilterResult:
    """Close above the prior lookback high (+ `breakout_atr_mult` × ATR when > 0, to skip marginal pokes)."""
    close, high = _get(ctx, "close"), _get(ctx, "hh_prev")
    if close is None or high is None:
        return FilterResult(name="breakout", passed=None, reason="insufficient data: no prior high")
    level, what = high, f"prior high {_num(high)}"
    if cfg.breakout_atr_mult > 0:
        atr = _get(ctx, "atr")
        if atr is None:
            return FilterResult(name="breakout", passed=None, reason="insufficient data: no ATR")
        level = high + cfg.breakout_atr_mult * atr
        what += f" + {cfg.breakout_atr_mult:g}×ATR {_num(atr)} = {_num(level)}"
    passed = close > level
    return FilterResult(
        name="breakout", passed=passed, reason=f"close {_num(close)} {'>' if passed else '≤'} {what}"
    )


def oi_shift(ctx: Context, cfg: MarketFiltersConfig) -> FilterResult:
    """Open interest grew by at least `oi_shift_min_pct` % over the bar: new positions, not just spot."""
    chg = _get(ctx, "oi_chg")
    if chg is None:
        return FilterResult(name="oi_shift", passed=None, reason="insufficient data: no open interest")
    passed = chg >= cfg.oi_shift_min_pct / 100
    sign = "≥" if passed else "<"
    return FilterResult(
        name="oi_shift",
        passed=passed,
        reason=f"open interest {chg * 100:+.1f}% this bar ({sign} {cfg.oi_shift_min_pct:+.1f}%)",
    )


def funding_flip(ctx: Context, cfg: MarketFiltersConfig) -> FilterResult:
    """Funding turned from negative (shorts paying longs) to ≥ 0 by this bar: the short crowd is unwinding.

    Defined as ``funding_prev < 0 <= funding``; `cfg` is unused but kept for the common filter signature.
    """
    now, prev = _get(ctx, "funding"), _get(ctx, "funding_prev")
    if now is None:
        return FilterResult(name="funding_flip", passed=None, reason="insufficient data: no funding rate")
    if prev is None:
        return FilterResult(
            name="funding_flip", passed=None, reason="insufficient data: no previous funding rate"
        )
    passed = prev < 0 <= now
    verdict = "flipped" if passed else "did not flip from < 0 to ≥ 0"
    return FilterResult(
        name="funding_flip", passed=passed, reason=f"funding {verdict}: {_rate(prev)} → {_rate(now)}"
    )


def funding_hot(ctx: Context, cfg: MarketFiltersConfig) -> FilterResult:
    """Funding at or above `funding_hot` per hour: longs crowded and paying up (a caution, used with NOT)."""
    now = _get(ctx, "funding")
    if now is None:
        return FilterResult(name="funding_hot", passed=None, reason="insufficient data: no funding rate")
    passed = now >= cfg.funding_hot
    sign = "≥" if passed else "<"
    return FilterResult(
        name="funding_hot", passed=passed, reason=f"funding {_rate(now)} ({sign} {_rate(cfg.funding_hot)})"
    )


FILTERS: dict[str, Callable[[Context, MarketFiltersConfig], FilterResult]] = {
    "volume_spike": volume_spike,
    "breakout": breakout,
    "oi_shift": oi_shift,
    "funding_flip": funding_flip,
    "funding_hot": funding_hot,
}


class Confirmed(BaseModel):
    """A candidate with every filter's verdict and the rule's; `passed` is False when the rule is None."""

    model_config = ConfigDict(frozen=True)

    candidate: RotationCandidate
    passed: bool
    filters: dict[str, FilterResult]
    reasons: list[str]
    rule: str


def parse_rule(rule: str | Rule) -> Rule:
    """A rule string or Rule, checked against the known filters."""
    return parse(rule, FILTERS) if isinstance(rule, str) else check_known(rule, FILTERS)


def evaluate_filters(ctx: Context, cfg: MarketFiltersConfig) -> dict[str, FilterResult]:
    return {name: fn(ctx, cfg) for name, fn in FILTERS.items()}


def confirm(candidate: RotationCandidate, rule: Rule, cfg: MarketFiltersConfig) -> Confirmed:
    """Run every filter on the candidate's context, then the rule; the first reason is the verdict."""
    filters = evaluate_filters(candidate.context, cfg)
    verdict = rule.evaluate({name: result.passed for name, result in filters.items()})
    if verdict is None:
        lacking = [n for n in rule.names() if filters[n].passed is None]
        head = f"not confirmed, insufficient data for {', '.join(lacking)}: {rule}"
    else:
        head = f"{'confirmed' if verdict else 'not confirmed'}: {rule}"
    reasons = [head] + [f"{n}: {filters[n].reason}" for n in rule.names()]
    return Confirmed(
        candidate=candidate, passed=verdict is True, filters=filters, reasons=reasons, rule=str(rule)
    )


def apply(
    candidates: Iterable[RotationCandidate],
    rules: str | Rule | None = None,
    *,
    config: MarketFiltersConfig | None = None,
) -> list[Confirmed]:
    """Confirm the scanner's candidates with a rule (default: `config.rule`); one Confirmed per candidate."""
    cfg = config if config is not None else MarketFiltersConfig()
    rule = parse_rule(cfg.rule if rules is None else rules)
    return [confirm(c, rule, cfg) for c in candidates]


__all__ = [
    "FILTERS",
    "Confirmed",
    "FilterResult",
    "RuleError",
    "apply",
    "confirm",
    "evaluate_filters",
    "parse_rule",
]
