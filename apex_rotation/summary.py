"""The text summary `apex run` prints: latest candidates per timeframe with their confirmation reasons.

It reads across the stages (candidates, confirmations, the research figures), so it sits beside the CLI,
above every stage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from apex_rotation.signals.rotation import candidates_from_history
from apex_rotation.signals.watching import latest_status
from apex_rotation.store.audit_report import audit_report_path
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import BASKET_KEY, CONFIRMATIONS, ROTATION_CANDIDATES, SCANNER_QUALITY
from apex_rotation.timeframes import TIMEFRAMES


def _quality(store: ParquetStore, timeframe: str) -> dict:
    """The research figures of one timeframe (`research/scanner_quality.py`), {} when not computed."""
    if not store.exists(SCANNER_QUALITY, timeframe, BASKET_KEY):
        return {}
    return store.read(SCANNER_QUALITY, timeframe, BASKET_KEY).iloc[0].to_dict()


def _header(timeframe: str, candidates: pd.DataFrame, meta: dict, quality: dict) -> list[str]:
    lines = [
        f"[{timeframe}] data through {meta.get('data_through', '?')}: {len(candidates)} candidates in history"
    ]
    if not meta.get("triggers", True):
        lines[0] += " (not a trigger timeframe: apex.trigger_timeframes)"
    if quality.get("vs_ground_truth") and quality["tp"] + quality["fn"]:
        lines.append(
            f"  vs planted ground truth: precision={_figure(quality['precision'])} "
            f"recall={_figure(quality['recall'])}"
        )
    if quality.get("hindsight_evaluated"):
        lines.append(
            f"  hindsight: {quality['hindsight_caught_up_half']}/{quality['hindsight_evaluated']} alts rose ≥ half "
            f"their expected catch-up within {quality['hindsight_window_bars']} bars"
        )
    blind = {s: n for s, n in (meta.get("insufficient_data") or {}).items() if n}
    if blind:
        lines.append(f"  not scanned for missing corr/beta/move (apex triggers): {blind}")
    return lines


def _figure(value: float | None) -> str:
    """A precision/recall as the summary always printed it (None when nothing was there to score)."""
    return "None" if value is None or pd.isna(value) else repr(float(value))


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
    meta = store.meta(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    lines = _header(timeframe, candidates, meta, _quality(store, timeframe))
    if candidates.empty:
        return lines
    statuses = (
        latest_status(store.read(CONFIRMATIONS, timeframe, BASKET_KEY))
        if store.exists(CONFIRMATIONS, timeframe, BASKET_KEY)
        else pd.DataFrame()
    )
    newest = candidates.sort_values(["bar_time", "expected_catchup_pct"], ascending=False).head(latest)
    for (_, row), candidate in zip(newest.iterrows(), candidates_from_history(newest), strict=True):
        lines.append("  " + json.dumps(candidate.to_record(), separators=(",", ":")))
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


def run_summary(store: ParquetStore, latest: int = 5, timeframes: Sequence[str] = TIMEFRAMES) -> str:
    lines = ["Latest rotation candidates (LAGGING_ROTATION) per timeframe", ""]
    for timeframe in timeframes:
        lines += timeframe_section(store, timeframe, latest)
        lines.append("")
    lines.append(f"outputs: {store.root}/<asset>/<timeframe>/<symbol>.parquet")
    lines.append(f"  candidates:    {store.root}/{ROTATION_CANDIDATES}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  confirmations: {store.root}/{CONFIRMATIONS}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  audit report:  {audit_report_path(store.root)}")
    lines.append("  query with DuckDB: apex_rotation.store.query.query(root, 'SELECT * FROM features_4h')")
    return "\n".join(lines)
