"""Trade plan for one idea: where the stop goes, the target, the R:R and the position size.

Stop, in order of preference (long; a short mirrors every level and sign). When TD contributes, the
default stop is beyond TDST:

1. "tdst", when `td` is given and `cfg.use_tdst_stop_when_td`: `stop_buffer_atr` × ATR below TDST support
   (`td_tdst_sell`, the lowest true low of the last sell setup): the level that, once closed under, ends
   the bullish case. The buffer keeps a wick that merely tags the level from stopping us out.
2. "td_risk", same condition, only when the TDST stop is unusable: the TD setup risk level of a completed
   BUY setup (`td_setup_risk_level` with `td_setup_type == "buy"`: its lowest low minus that bar's true
   range), used as is (it already sits a true range beyond the low).
3. "structure": `stop_buffer_atr` × ATR beyond the swing low (`structure_low`; shorts: `structure_high`).
   A swing level on the wrong side of entry is a caller error (ValueError).
4. "atr": `stop_atr_mult` × ATR from entry, always usable.

A TD or structure stop is usable only when it is on the loss side of entry and its distance from entry is
within [`min_stop_atr`, `max_stop_atr`] × ATR (inclusive, with a 1e-9 × ATR slack for float rounding).
Closer is noise that buys a huge size; farther is a stale level (e.g. an old TDST far below price) that
would make a huge stop. Unusable ⇒ next source, with the reason recorded.

Target: `atr_mult_tp` × (`stop_atr_mult` × ATR) from entry, i.e. `atr_mult_tp` baseline-stop distances. It is
volatility-sized and independent of which stop was chosen, so an ATR-stop trade has rr = `atr_mult_tp` and a
tighter TD/structure stop earns a proportionally better rr (a fixed R multiple would make rr constant and
`rr_ok` meaningless).

Size: units = equity × risk_per_trade_pct/100 / |entry − stop| (losing exactly that much at the stop;
fees and slippage are the executor's concern). No leverage cap is applied here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from apex_rotation.config import RiskConfig

Side = Literal["long", "short"]
StopSource = Literal["tdst", "td_risk", "structure", "atr"]
RR_TOLERANCE = 1e-9
DISTANCE_TOLERANCE_ATR = 1e-9  # slack on the min/max stop distance, in ATRs


@dataclass(frozen=True)
class TradePlan:
    entry: float
    stop: float
    take_profit: float
    risk_per_unit: float
    size: float  # units of the asset
    size_notional: float  # size × entry, in quote currency
    rr: float  # reward per unit of risk
    stop_source: StopSource
    reasons: tuple[str, ...]
    side: Side = "long"


def _finite(value: object) -> float | None:
    """The value as a float, or None when absent / NaN / inf."""
    if value is None:
        return None
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _positive(name: str, value: float) -> float:
    x = _finite(value)
    if x is None or x <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return x


def _unusable(dist: float, atr: float, min_stop_atr: float, max_stop_atr: float) -> str | None:
    """Why a stop `dist` from entry (loss side positive) is unusable, or None when it is usable."""
    slack = DISTANCE_TOLERANCE_ATR * atr
    if dist <= 0:
        return "is not on the loss side of entry"
    if dist < min_stop_atr * atr - slack:
        return f"is {dist / atr:.3g}×ATR from entry, closer than min_stop_atr {min_stop_atr:g}"
    if dist > max_stop_atr * atr + slack:
        return f"is {dist / atr:.3g}×ATR from entry, farther than max_stop_atr {max_stop_atr:g}"
    return None


def _td_stop(
    entry: float,
    side: Side,
    atr: float,
    td: Mapping[str, object],
    buffer_atr: float,
    min_stop_atr: float,
    max_stop_atr: float,
) -> tuple[tuple[StopSource, float] | None, list[str]]:
    """The TD stop (source, price) per the module docstring — TDST first, else the setup risk level —
    or None; and the reasons either way."""
    sign = 1.0 if side == "long" else -1.0
    reasons: list[str] = []

    tdst_key = "td_tdst_sell" if side == "long" else "td_tdst_buy"
    tdst = _finite(td.get(tdst_key))
    if tdst is None:
        reasons.append(f"no {tdst_key}")
    elif sign * (entry - tdst) <= 0:
        reasons.append(f"{tdst_key} {tdst:.6g} is not on the stop side of entry {entry:.6g}")
    else:
        stop = tdst - sign * buffer_atr * atr
        why = _unusable(sign * (entry - stop), atr, min_stop_atr, max_stop_atr)
        if why is None:
            reasons.append(f"stop {buffer_atr:g}×ATR beyond TDST {tdst:.6g}")
            return ("tdst", stop), reasons
        reasons.append(f"TDST stop {stop:.6g} {why}")

    risk_type = "buy" if side == "long" else "sell"
    risk = _finite(td.get("td_setup_risk_level"))
    if risk is None or td.get("td_setup_type") != risk_type:
        reasons.append(f"no TD {risk_type}-setup risk level")
        return None, reasons
    why = _unusable(sign * (entry - risk), atr, min_stop_atr, max_stop_atr)
    if why is not None:
        reasons.append(f"TD {risk_type}-setup risk level {risk:.6g} {why}")
        return None, reasons
    reasons.append(f"stop at TD {risk_type}-setup risk level {risk:.6g} (TDST unusable)")
    return ("td_risk", risk), reasons


def plan_trade(
    entry: float,
    *,
    side: Side = "long",
    atr: float,
    structure_low: float | None = None,
    structure_high: float | None = None,
    td: Mapping[str, object] | None = None,
    cfg: RiskConfig,
    equity: float = 10_000.0,
    stop_atr_mult: float | None = None,
    stop_buffer_atr: float | None = None,
    min_stop_atr: float | None = None,
    max_stop_atr: float | None = None,
) -> TradePlan:
    """Stop, target, size and rr for entering at `entry` (see the module docstring for the rules).

    `td` holds TD values known at entry: `td_tdst_sell` / `td_tdst_buy`, and optionally the last completed
    setup's `td_setup_risk_level` with its `td_setup_type` (the caller carries that event value forward).
    The stop knobs default to `cfg` (`stop_atr_mult`, `stop_buffer_atr`, `min_stop_atr`, `max_stop_atr`).
    Raises ValueError for a bad input or a stop that is not on the loss side of entry.
    """
    stop_atr_mult = cfg.stop_atr_mult if stop_atr_mult is None else stop_atr_mult
    stop_buffer_atr = cfg.stop_buffer_atr if stop_buffer_atr is None else stop_buffer_atr
    min_stop_atr = cfg.min_stop_atr if min_stop_atr is None else min_stop_atr
    max_stop_atr = cfg.max_stop_atr if max_stop_atr is None else max_stop_atr
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    entry, atr = _positive("entry", entry), _positive("atr", atr)
    equity, stop_atr_mult = _positive("equity", equity), _positive("stop_atr_mult", stop_atr_mult)
    if stop_buffer_atr < 0 or min_stop_atr < 0:
        raise ValueError(
            f"stop_buffer_atr and min_stop_atr must be >= 0, got {stop_buffer_atr}, {min_stop_atr}"
        )
    if not max_stop_atr >= min_stop_atr:
        raise ValueError(f"max_stop_atr {max_stop_atr} must be >= min_stop_atr {min_stop_atr}")
    sign = 1.0 if side == "long" else -1.0
    wrong_structure = structure_high if side == "long" else structure_low
    if wrong_structure is not None:
        raise ValueError(
            f"a {side} takes {'structure_low' if side == 'long' else 'structure_high'}, not the other"
        )
    structure = _finite(structure_low if side == "long" else structure_high)

    reasons: list[str] = []
    chosen: tuple[StopSource, float] | None = None
    if td is not None and cfg.use_tdst_stop_when_td:
        chosen, td_reasons = _td_stop(entry, side, atr, td, stop_buffer_atr, min_stop_atr, max_stop_atr)
        reasons.extend(td_reasons)
        if chosen is None:
            reasons.append("TD levels unusable; falling back")
    elif td is not None:
        reasons.append("TD stop disabled (use_tdst_stop_when_td=False)")

    if chosen is None and structure is not None:
        if sign * (entry - structure) <= 0:
            raise ValueError(
                f"{side} structure level {structure:.6g} is on the wrong side of entry {entry:.6g}"
            )
        stop = structure - sign * stop_buffer_atr * atr
        why = _unusable(sign * (entry - stop), atr, min_stop_atr, max_stop_atr)
        if why is not None:
            reasons.append(f"structure stop {stop:.6g} {why}; falling back")
        else:
            chosen = ("structure", stop)
            reasons.append(f"stop {stop_buffer_atr:g}×ATR beyond swing {structure:.6g}")

    if chosen is None:
        chosen = ("atr", entry - sign * stop_atr_mult * atr)
        reasons.append(f"stop {stop_atr_mult:g}×ATR ({atr:.6g}) from entry")

    source, stop = chosen
    risk_per_unit = sign * (entry - stop)
    if not risk_per_unit > 0:
        raise ValueError(f"{side} stop {stop:.6g} ({source}) is on the wrong side of entry {entry:.6g}")
    take_profit = entry + sign * cfg.atr_mult_tp * stop_atr_mult * atr
    size = equity * cfg.risk_per_trade_pct / 100 / risk_per_unit
    rr = sign * (take_profit - entry) / risk_per_unit
    reasons.append(f"target {cfg.atr_mult_tp:g}×{stop_atr_mult:g}×ATR; rr {rr:.2f}")
    return TradePlan(
        entry=entry,
        stop=stop,
        take_profit=take_profit,
        risk_per_unit=risk_per_unit,
        size=size,
        size_notional=size * entry,
        rr=rr,
        stop_source=source,
        reasons=tuple(reasons),
        side=side,
    )


def rr_ok(plan: TradePlan, min_rr: float) -> bool:
    """True when the plan's reward:risk reaches `min_rr` (a 1e-9 tolerance absorbs float rounding)."""
    return plan.rr >= min_rr - RR_TOLERANCE
