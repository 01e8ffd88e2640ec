"""Watches every stored rotation candidate with the confirmation rule and writes `confirmations`.

A laggard rarely breaks out on the very bar the apex asset does, so each candidate is evaluated on its
trigger bar and on each of the next `market_filters.confirm_window_bars` bars, with the alt's values at
that bar only (no lookahead); every filter's verdict and reason is kept per watched bar.
"""

from __future__ import annotations

import pandas as pd

from apex_rotation.config import AppConfig, MarketFiltersConfig
from apex_rotation.features.loader import load
from apex_rotation.schemas import SchemaViolation, validate_frame
from apex_rotation.signals import confirm, rotation
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import BASKET_KEY, CONFIRMATIONS, ROTATION_CANDIDATES, SIGNAL_INPUTS

CONFIRMED, WATCHING, EXPIRED = "confirmed", "watching", "expired"
EMPTY_CONFIRMATIONS = ["bar_time", "eval_time", "symbol", "bars_after", "passed", "status", "rule"]


def _contexts(frame: pd.DataFrame, start: int, stop: int) -> list[dict[str, float | None]]:
    """The alt's context values (`rotation.CONTEXT_COLUMNS`) on each of the frame's bars start..stop-1."""
    columns = [frame[c].to_numpy()[start:stop] for c in rotation.CONTEXT_COLUMNS]
    return [
        {c: None if pd.isna(v) else float(v) for c, v in zip(rotation.CONTEXT_COLUMNS, values, strict=True)}
        for values in zip(*columns, strict=True)
    ]


def watch_candidates(
    candidates: list[rotation.RotationCandidate],
    frames: dict[str, pd.DataFrame],
    settings: MarketFiltersConfig,
    window_bars: int,
) -> pd.DataFrame:
    """Confirm each candidate on its trigger bar and on each of the next `window_bars` bars.

    A laggard rarely breaks out on the very bar the apex asset does; it is watched until the rule passes
    (status "confirmed", and the watch ends), or the window runs out ("expired"). Every row is evaluated
    with the alt's values at `eval_time` only, so a row depends on bars up to its own time.
    """
    rule = confirm.parse_rule(settings.rule)
    rows = []
    for candidate in candidates:
        frame = frames[candidate.symbol]
        start = frame.index.searchsorted(pd.Timestamp(candidate.bar_time))
        close = frame["close"].to_numpy()
        stop = start + window_bars + 1
        contexts = _contexts(frame, start, stop)
        for k, (t, context) in enumerate(zip(frame.index[start:stop], contexts, strict=True)):
            watched = candidate.model_copy(update={"context": context})
            verdict = confirm.confirm(watched, rule, settings)
            status = CONFIRMED if verdict.passed else (EXPIRED if k == window_bars else WATCHING)
            moved = (close[start + k] / close[start] - 1.0) * 100.0
            rows.append(_confirmation_row(verdict, t, k, status) | {"move_since_trigger_pct": moved})
            if verdict.passed:
                break
    frame = pd.DataFrame(rows, columns=None if rows else EMPTY_CONFIRMATIONS)
    frame.index.name = "row"
    return frame


def _confirmation_row(item: confirm.Confirmed, eval_time: pd.Timestamp, bars_after: int, status: str) -> dict:
    c = item.candidate
    row = {
        "bar_time": pd.Timestamp(c.bar_time),
        "timeframe": c.timeframe,
        "symbol": c.symbol,
        "apex_asset": c.apex_asset,
        "signal_strength": c.signal_strength,
        "expected_catchup_pct": c.expected_catchup_pct,
        "eval_time": eval_time,
        "bars_after": bars_after,
        "passed": item.passed,
        "status": status,
        "rule": item.rule,
        "reasons": " | ".join(item.reasons),
    }
    for name, result in item.filters.items():
        row[f"{name}_passed"] = {True: "pass", False: "fail", None: "no data"}[result.passed]
        row[f"{name}_reason"] = result.reason
    return row


def confirm_history(cfg: AppConfig, store: ParquetStore, timeframe: str) -> pd.DataFrame:
    """Watch every stored candidate of one timeframe with the configured rule and write the result."""
    history = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    settings = cfg.market_filters
    symbols = sorted(set(history["symbol"])) if len(history) else []
    frames = {
        s: load(s, timeframe, cols=list(rotation.CONTEXT_COLUMNS), root=store.root, assets=SIGNAL_INPUTS)
        for s in symbols
    }
    window = cfg.market_filters.confirm_window_bars
    frame = watch_candidates(rotation.candidates_from_history(history), frames, settings, window)
    frame = validate_frame(CONFIRMATIONS.schema(timeframe, cfg), frame, f"confirmations {timeframe}")
    store.write(CONFIRMATIONS, timeframe, BASKET_KEY, frame)
    return frame


def latest_status(confirmations: pd.DataFrame) -> pd.DataFrame:
    """The last row of each candidate's watch: its current status and reasons."""
    if confirmations.empty:
        return confirmations
    keys = ["bar_time", "symbol", "apex_asset"]
    return confirmations.sort_values([*keys, "bars_after"]).groupby(keys, as_index=False).tail(1)


def confirmation_problems(cfg: AppConfig, store: ParquetStore, timeframe: str) -> list[str]:
    """Re-read the stored confirmations: schema, and exactly one watch per stored candidate."""
    stored = store.read(CONFIRMATIONS, timeframe, BASKET_KEY)
    try:
        validate_frame(CONFIRMATIONS.schema(timeframe, cfg), stored, f"confirmations {timeframe}")
    except SchemaViolation as exc:
        return [str(exc)]
    candidates = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    keys = ["bar_time", "symbol", "apex_asset"]
    watched = set(map(tuple, stored[keys].to_numpy().tolist())) if len(stored) else set()
    expected = set(map(tuple, candidates[keys].to_numpy().tolist())) if len(candidates) else set()
    problems = []
    if watched != expected:
        problems.append(
            f"{len(expected - watched)} candidates never watched, {len(watched - expected)} unknown"
        )
    if len(stored) and (stored.groupby(keys)["passed"].sum() > 1).any():
        problems.append("a candidate confirmed twice")
    return problems
