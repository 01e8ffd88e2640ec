"""The text summary `apex run` prints: latest candidates per timeframe with their confirmation reasons."""

from __future__ import annotations

import json

import pandas as pd

from apex_rotation.signals.stage import BASKET_KEY, CONFIRMATIONS, ROTATION_CANDIDATES, latest_status
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import AUDIT_REPORT_FILE, REPORTS_DIR
from apex_rotation.timeframes import TIMEFRAMES


def _record(row: pd.Series) -> str:
    record = {
        "symbol": row["symbol"],
        "apex_asset": row["apex_asset"],
        "apex_move": row["apex_move"],
        "coin_move": row["coin_move"],
        "correlation": round(float(row["correlation"]), 2),
        "beta": round(float(row["beta"]), 2),
        "signal_strength": row["signal_strength"],
        "status": row["status"],
        "bar_time": pd.Timestamp(row["bar_time"]).isoformat(),
        "timeframe": row["timeframe"],
    }
    return json.dumps(record, separators=(",", ":"))


def _header(timeframe: str, candidates: pd.DataFrame, meta: dict) -> list[str]:
    lines = [
        f"[{timeframe}] data through {meta.get('data_through', '?')}: {len(candidates)} candidates in history"
    ]
    if not meta.get("triggers", True):
        lines[0] += " (not a trigger timeframe: apex.trigger_timeframes)"
    scores = meta.get("vs_ground_truth")
    if scores and scores["tp"] + scores["fn"]:
        lines.append(f"  vs planted ground truth: precision={scores['precision']} recall={scores['recall']}")
    hindsight = meta.get("hindsight") or {}
    if hindsight.get("evaluated"):
        lines.append(
            f"  hindsight: {hindsight['caught_up_half']}/{hindsight['evaluated']} alts rose ≥ half their expected "
            f"catch-up within {hindsight['window_bars']} bars"
        )
    blind = {s: n for s, n in (meta.get("insufficient_data") or {}).items() if n}
    if blind:
        lines.append(f"  not scanned for missing corr/beta/move (apex triggers): {blind}")
    return lines


def _watch_lines(status: pd.Series) -> list[str]:
    when = pd.Timestamp(status["eval_time"]).isoformat()
    line = f"    {status['status']} at {when} (+{status['bars_after']} bars)"
    if "move_since_trigger_pct" in status and pd.notna(status["move_since_trigger_pct"]):
        moved = float(status["move_since_trigger_pct"])
        expected = float(status["expected_catchup_pct"])
        line += f": alt {moved:+.1f}% since the trigger bar's close, {expected - moved:.1f} pts of the expected {expected:.1f}% left"
    return [line] + [f"      {reason}" for reason in str(status["reasons"]).split(" | ")]


def timeframe_section(store: ParquetStore, timeframe: str, latest: int) -> list[str]:
    if not store.exists(ROTATION_CANDIDATES, timeframe, BASKET_KEY):
        return [f"[{timeframe}] not computed yet"]
    candidates = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    lines = _header(timeframe, candidates, store.meta(ROTATION_CANDIDATES, timeframe, BASKET_KEY))
    if candidates.empty:
        return lines
    statuses = (
        latest_status(store.read(CONFIRMATIONS, timeframe, BASKET_KEY))
        if store.exists(CONFIRMATIONS, timeframe, BASKET_KEY)
        else pd.DataFrame()
    )
    newest = candidates.sort_values(["bar_time", "expected_catchup_pct"], ascending=False).head(latest)
    for _, row in newest.iterrows():
        lines.append("  " + _record(row))
        if statuses.empty:
            continue
        match = statuses[
            (statuses["bar_time"] == row["bar_time"])
            & (statuses["symbol"] == row["symbol"])
            & (statuses["apex_asset"] == row["apex_asset"])
        ]
        for _, status in match.iterrows():
            lines += _watch_lines(status)
    return lines


def run_summary(store: ParquetStore, latest: int = 5) -> str:
    lines = ["Latest rotation candidates (LAGGING_ROTATION) per timeframe", ""]
    for timeframe in TIMEFRAMES:
        lines += timeframe_section(store, timeframe, latest)
        lines.append("")
    lines.append(f"outputs: {store.root}/<asset>/<timeframe>/<symbol>.parquet")
    lines.append(f"  candidates:    {store.root}/{ROTATION_CANDIDATES}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  confirmations: {store.root}/{CONFIRMATIONS}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  audit report:  {store.root / REPORTS_DIR / AUDIT_REPORT_FILE}")
    lines.append("  query with DuckDB: apex_rotation.store.query.query(root, 'SELECT * FROM features_4h')")
    return "\n".join(lines)
