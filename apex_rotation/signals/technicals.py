"""The classic technical stack for a LONG idea, with "2-of-5" logic, and the breakout retest check.

Five independent checks on bar t (features columns of `apex_rotation.features.build`):

* rsi          momentum without exhaustion: `rsi_min <= RSI <= rsi_max`.
* macd         MACD above its signal, or the histogram rising (hist[t] > hist[t-1]): momentum turning up
               counts before the cross.
* ema_stack    `close > ema_20 > ema_50`; where close sits against ema_200 is only reported (a bonus reason).
* fib          the last swing is an UP-swing (`fib_swing_up`) and the close sits in one of `fib_zones`:
               by default the 38.2-61.8 retracement support ("38.2-50", "50-61.8"), or "above" (a close
               beyond the swing high, i.e. a breakout). A down-swing's zones are bounces into resistance,
               never support, so they fail.
* volume_trend EMA10(volume)/EMA50(volume) − 1 > 0: participation is growing.

A check whose inputs are NaN gives `passed=None` ("insufficient data"); it never counts as a pass. The
verdict passes when at least `required` checks pass. Everything on bar t uses bars <= t only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from apex_rotation.config import TechnicalsConfig

CHECKS = ("rsi", "macd", "ema_stack", "fib", "volume_trend")
INPUT_COLUMNS = (
    "close",
    "rsi",
    "macd",
    "macd_signal",
    "macd_hist",
    "ema_20",
    "ema_50",
    "ema_200",
    "fib_zone",
    "fib_pos",
    "fib_swing_up",
    "volume_trend",
)


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool | None  # None: insufficient data (NaN input)
    reason: str


@dataclass(frozen=True)
class TechnicalVerdict:
    passed: bool
    n_passed: int
    required: int
    checks: dict[str, CheckResult]


# --------------------------------------------------------------------------------------------------------
# Scalar checks: one bar's values -> CheckResult
# --------------------------------------------------------------------------------------------------------


def _num(value: object) -> float:
    """A finite float, or NaN for None / NaN / ±inf / pd.NA."""
    if value is None or value is pd.NA:
        return math.nan
    x = float(value)  # type: ignore[arg-type]
    return x if math.isfinite(x) else math.nan


def _missing(*values: float) -> bool:
    return any(math.isnan(v) for v in values)


def check_rsi(rsi: float, cfg: TechnicalsConfig) -> CheckResult:
    rsi = _num(rsi)
    if _missing(rsi):
        return CheckResult("rsi", None, "insufficient data: RSI is NaN")
    ok = cfg.rsi_min <= rsi <= cfg.rsi_max
    where = "within" if ok else "outside"
    return CheckResult("rsi", ok, f"RSI {rsi:.2f} {where} [{cfg.rsi_min:g}, {cfg.rsi_max:g}]")


def check_macd(macd: float, signal: float, hist: float, hist_prev: float) -> CheckResult:
    macd, signal, hist, hist_prev = _num(macd), _num(signal), _num(hist), _num(hist_prev)
    if _missing(macd, signal):
        return CheckResult("macd", None, "insufficient data: MACD or signal is NaN")
    if macd > signal:
        return CheckResult("macd", True, f"MACD {macd:.4g} > signal {signal:.4g}")
    if _missing(hist, hist_prev):
        return CheckResult(
            "macd", None, f"MACD {macd:.4g} <= signal {signal:.4g}; histogram trend unknown (NaN)"
        )
    if hist > hist_prev:
        return CheckResult("macd", True, f"MACD <= signal but histogram rising {hist_prev:.4g} -> {hist:.4g}")
    return CheckResult(
        "macd",
        False,
        f"MACD {macd:.4g} <= signal {signal:.4g}, histogram not rising {hist_prev:.4g} -> {hist:.4g}",
    )


def check_ema_stack(close: float, ema_20: float, ema_50: float, ema_200: float) -> CheckResult:
    close, ema_20, ema_50, ema_200 = _num(close), _num(ema_20), _num(ema_50), _num(ema_200)
    if _missing(close, ema_20, ema_50):
        return CheckResult("ema_stack", None, "insufficient data: close, ema_20 or ema_50 is NaN")
    ok = close > ema_20 > ema_50
    stack = f"close {close:.6g}, ema_20 {ema_20:.6g}, ema_50 {ema_50:.6g}"
    if math.isnan(ema_200):
        bonus = "ema_200 n/a"
    else:
        bonus = f"{'above' if close > ema_200 else 'below'} ema_200 {ema_200:.6g}"
    return CheckResult("ema_stack", ok, f"{'stacked' if ok else 'not stacked'}: {stack}; {bonus}")


def check_fib(zone: object, pos: float, swing_up: object, cfg: TechnicalsConfig) -> CheckResult:
    if zone is None or zone is pd.NA or (isinstance(zone, float) and math.isnan(zone)):
        return CheckResult("fib", None, "insufficient data: no fib zone")
    if swing_up is None or swing_up is pd.NA or (isinstance(swing_up, float) and math.isnan(swing_up)):
        return CheckResult("fib", None, "insufficient data: swing direction unknown")
    pos = _num(pos)
    direction = "up" if bool(swing_up) else "down"
    ok = bool(swing_up) and zone in cfg.fib_zones
    return CheckResult("fib", ok, f"close in zone {zone} (pos {pos:.3f}) of the {direction}-swing")


def check_volume_trend(volume_trend: float) -> CheckResult:
    vt = _num(volume_trend)
    if _missing(vt):
        return CheckResult("volume_trend", None, "insufficient data: volume_trend is NaN")
    ok = vt > 0
    return CheckResult("volume_trend", ok, f"EMA10/EMA50 volume {vt:+.2%} {'>' if ok else '<='} 0")


# --------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------


def _require(columns: pd.Index, needed: tuple[str, ...]) -> None:
    missing = [c for c in needed if c not in columns]
    if missing:
        raise KeyError(f"technicals need columns {missing}")


def evaluate(
    features: pd.Series | pd.DataFrame, cfg: TechnicalsConfig | None = None, asof: pd.Timestamp | None = None
) -> TechnicalVerdict:
    """The five checks on one bar.

    A DataFrame is evaluated at `asof` (default: its last bar), using only bars up to it; the bar before
    supplies the previous MACD histogram. A Series is one bar; it may carry `macd_hist_prev`, without which
    "histogram rising" cannot be judged (the MACD check then rests on MACD > signal alone).
    """
    cfg = cfg or TechnicalsConfig()
    if isinstance(features, pd.DataFrame):
        frame = features if asof is None else features.loc[:asof]
        if frame.empty:
            raise ValueError("no bars up to asof")
        row = frame.iloc[-1]
        hist_prev = frame["macd_hist"].iloc[-2] if len(frame) > 1 else math.nan
    else:
        row = features
        hist_prev = features.get("macd_hist_prev", math.nan)
    _require(row.index, INPUT_COLUMNS)
    results = (
        check_rsi(row["rsi"], cfg),
        check_macd(row["macd"], row["macd_signal"], row["macd_hist"], hist_prev),
        check_ema_stack(row["close"], row["ema_20"], row["ema_50"], row["ema_200"]),
        check_fib(row["fib_zone"], row["fib_pos"], row["fib_swing_up"], cfg),
        check_volume_trend(row["volume_trend"]),
    )
    n_passed = sum(r.passed is True for r in results)
    return TechnicalVerdict(n_passed >= cfg.required, n_passed, cfg.required, {r.name: r for r in results})


def _nullable(passed: pd.Series, known: pd.Series) -> pd.Series:
    return pd.Series(passed.to_numpy(bool), index=passed.index, dtype="boolean").mask(~known.to_numpy(bool))


def evaluate_frame(df: pd.DataFrame, cfg: TechnicalsConfig | None = None) -> pd.DataFrame:
    """`evaluate` on every bar at once: tech_<check> (nullable boolean), tech_n_passed, tech_pass."""
    cfg = cfg or TechnicalsConfig()
    _require(df.columns, INPUT_COLUMNS)

    def num(col: str) -> pd.Series:
        x = pd.to_numeric(df[col], errors="coerce").astype(float)
        return x.where(np.isfinite(x))

    close, rsi = num("close"), num("rsi")
    macd, signal, hist = num("macd"), num("macd_signal"), num("macd_hist")
    hist_prev = hist.shift(1)
    ema_20, ema_50 = num("ema_20"), num("ema_50")
    vt = num("volume_trend")
    zone, swing_up = df["fib_zone"], df["fib_swing_up"]

    out = pd.DataFrame(index=df.index)
    out["tech_rsi"] = _nullable((rsi >= cfg.rsi_min) & (rsi <= cfg.rsi_max), rsi.notna())
    macd_known = macd.notna() & signal.notna()
    above, rising = macd > signal, hist > hist_prev
    hist_known = hist.notna() & hist_prev.notna()
    out["tech_macd"] = _nullable(above | rising, macd_known & (above | hist_known))
    out["tech_ema_stack"] = _nullable(
        (close > ema_20) & (ema_20 > ema_50), close.notna() & ema_20.notna() & ema_50.notna()
    )
    fib_known = zone.notna() & swing_up.notna()
    up = swing_up.where(fib_known, False).astype(bool)
    out["tech_fib"] = _nullable(up & zone.isin(cfg.fib_zones), fib_known)
    out["tech_volume_trend"] = _nullable(vt > 0, vt.notna())
    checks = out[[f"tech_{name}" for name in CHECKS]]
    out["tech_n_passed"] = checks.fillna(False).astype(int).sum(axis=1).astype(int)
    out["tech_pass"] = out["tech_n_passed"] >= cfg.required
    return out


# --------------------------------------------------------------------------------------------------------
# Retest
# --------------------------------------------------------------------------------------------------------

RetestStatus = Literal["confirmed", "failed", "pending", "none"]


@dataclass(frozen=True)
class RetestResult:
    status: RetestStatus  # none: the window ran out with no touch (the breakout never came back)
    bar: pd.Timestamp | None  # the deciding bar (confirmed / failed), else None
    bars_seen: int  # bars after the breakout examined, up to the deciding bar or asof
    reason: str


def retest(
    df: pd.DataFrame,
    breakout_bar: pd.Timestamp,
    level: float,
    tolerance_pct: float = 0.5,
    within_bars: int = 6,
    asof: pd.Timestamp | None = None,
) -> RetestResult:
    """Did price come back to the broken `level` and hold it?

    Bars after `breakout_bar` (at most `within_bars` of them, and none after `asof`, default the last bar)
    are scanned in order. A close below `level` fails the retest (it is a failed breakout). A bar whose low
    reaches `level × (1 + tolerance_pct/100)` or lower (a wick under the level included) and closes at or
    above `level` confirms it. No decision yet: "pending" while the window is still open at `asof`,
    "none" once it has run out.
    """
    if tolerance_pct < 0 or within_bars < 1:
        raise ValueError(f"need tolerance_pct >= 0 and within_bars >= 1, got {tolerance_pct}, {within_bars}")
    if not math.isfinite(level) or level <= 0:
        raise ValueError(f"level must be a positive price, got {level}")
    asof = df.index[-1] if asof is None else asof
    if asof < breakout_bar:
        raise ValueError(f"asof {asof} precedes the breakout bar {breakout_bar}")
    start = df.index.get_loc(breakout_bar)
    breakout_close = float(df["close"].iloc[start])
    if not breakout_close > level:
        raise ValueError(
            f"bar {breakout_bar} closes at {breakout_close:.6g}, not above the level {level:.6g}"
        )
    after = df.iloc[start + 1 : start + 1 + within_bars].loc[:asof]
    touch_at = level * (1 + tolerance_pct / 100)
    for seen, (ts, low, close) in enumerate(zip(after.index, after["low"], after["close"], strict=True), 1):
        if close < level:
            return RetestResult("failed", ts, seen, f"close {close:.6g} back below level {level:.6g}")
        if low <= touch_at:
            return RetestResult(
                "confirmed", ts, seen, f"low {low:.6g} touched {touch_at:.6g}, close {close:.6g} held"
            )
    status: RetestStatus = "none" if len(after) == within_bars else "pending"
    return RetestResult(
        status, None, len(after), f"no touch of {touch_at:.6g} in {len(after)} of {within_bars} bars"
    )
