"""The text summary `apex run` prints: latest candidates per timeframe with their confirmation reasons."""

from __future__ import annotations

import json

import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.signals.stage import (
    BASKET_KEY,
    CONFIRMATIONS,
    ROTATION_CANDIDATES,
    ground_truth_scores,
    latest_status,
)
from apex_rotation.store.parquet import ParquetStore
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
    return json.dumps(record)


def timeframe_section(cfg: AppConfig, store: ParquetStore, timeframe: str, latest: int) -> list[str]:
    if not store.exists(ROTATION_CANDIDATES, timeframe, BASKET_KEY):
        return [f"[{timeframe}] not computed yet"]
    candidates = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    lines = [f"[{timeframe}] {len(candidates)} rotation candidates in history"]
    scores = ground_truth_scores(store, candidates, timeframe)
    if scores and scores["tp"] + scores["fn"]:
        lines[0] += f"; vs planted ground truth: precision={scores['precision']} recall={scores['recall']}"
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
            when = pd.Timestamp(status["eval_time"]).isoformat()
            lines.append(f"    {status['status']} at {when} (+{status['bars_after']} bars)")
            lines += [f"      {reason}" for reason in str(status["reasons"]).split(" | ")]
    return lines


def run_summary(cfg: AppConfig, store: ParquetStore, latest: int = 5) -> str:
    lines = ["Latest rotation candidates (LAGGING_ROTATION) per timeframe", ""]
    for timeframe in TIMEFRAMES:
        lines += timeframe_section(cfg, store, timeframe, latest)
        lines.append("")
    lines.append(f"outputs: {store.root}/<asset>/<timeframe>/<symbol>.parquet")
    lines.append(f"  candidates:    {store.root}/{ROTATION_CANDIDATES}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  confirmations: {store.root}/{CONFIRMATIONS}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  audit report:  {store.root}/reports/audit.json")
    lines.append("  query with DuckDB: apex_rotation.store.query.query(root, 'SELECT * FROM features_4h')")
    return "\n".join(lines)
