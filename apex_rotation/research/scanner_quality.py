"""How good is the scan? Research figures about `rotation_candidates`, computed by their own step.

Two figures per timeframe, stored in the `scanner_quality` table (one row) that the run summary reads:

* precision/recall against the synthetic market's planted laggards (only when the bars came from the
  synthetic market; partly circular, since the truth labels use the same gate definition);
* the hindsight catch-up rate: how many flagged alts then rose at least half their expected catch-up within
  `market_filters.confirm_window_bars` bars. It reads bars after each trigger, so it is a research figure
  reported beside the scan, never an input to it.
"""

from __future__ import annotations

import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import (
    AUDITED_BARS,
    BARS,
    BASKET_KEY,
    GROUND_TRUTH,
    GROUND_TRUTH_KEY,
    ROTATION_CANDIDATES,
    SCANNER_QUALITY,
)


def ground_truth_scores(
    store: ParquetStore, candidates: pd.DataFrame, timeframe: str, apex: str
) -> dict | None:
    """Precision/recall against the planted episodes, when the bars came from the synthetic market."""
    if not store.exists(GROUND_TRUTH, None, GROUND_TRUTH_KEY) or not store.exists(BARS, timeframe, apex):
        return None
    if store.meta(BARS, timeframe, apex).get("source") != GROUND_TRUTH_KEY:
        return None
    truth = store.read(GROUND_TRUTH, None, GROUND_TRUTH_KEY)
    return precision_recall(candidates, truth, timeframe)


def hindsight_catchup(
    history: pd.DataFrame, closes_by_symbol: dict[str, pd.Series], window_bars: int
) -> dict:
    """How many candidates' alts then rose at least half their expected catch-up within `window_bars`.

    A research figure read with hindsight (bars after each trigger), reported beside the scan, never an
    input to it.
    """
    hits = evaluated = 0
    for row in history.itertuples():
        closes = closes_by_symbol[row.symbol]
        at = closes.index.searchsorted(pd.Timestamp(row.bar_time))
        ahead = closes.iloc[at + 1 : at + 1 + window_bars]
        if len(ahead) < window_bars:
            continue  # the window has not elapsed yet
        evaluated += 1
        best_pct = (ahead.max() / closes.iloc[at] - 1.0) * 100.0
        hits += bool(best_pct >= 0.5 * row.expected_catchup_pct)
    return {"window_bars": window_bars, "evaluated": evaluated, "caught_up_half": hits}


def precision_recall(
    candidates: pd.DataFrame, truth: pd.DataFrame, timeframe: str
) -> dict[str, float | int | None]:
    """Score candidates (`scan_history` rows) against the ground truth's "laggard" rows of `timeframe`.

    A candidate matches a truth row on (time, timeframe, symbol), whichever apex each names. Precision
    (recall) is None when nothing was flagged (nothing was there to find).
    """
    cands = candidates[candidates["timeframe"] == timeframe] if "timeframe" in candidates else candidates
    positives = truth[(truth["kind"] == "laggard") & (truth["timeframe"] == timeframe)]
    flagged = set(zip(pd.to_datetime(cands["bar_time"], utc=True), cands["symbol"], strict=True))
    actual = set(zip(pd.to_datetime(positives["time"], utc=True), positives["symbol"], strict=True))
    tp, fp, fn = len(flagged & actual), len(flagged - actual), len(actual - flagged)
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
    }


def scanner_quality(cfg: AppConfig, store: ParquetStore, timeframe: str) -> pd.DataFrame:
    """Compute and write the `scanner_quality` row of one timeframe from the stored candidates."""
    candidates = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    window = cfg.market_filters.confirm_window_bars
    closes = {
        s: store.read(AUDITED_BARS, timeframe, s, columns=["close"])["close"]
        for s in sorted(set(candidates["symbol"]))
    }
    vs_truth = ground_truth_scores(store, candidates, timeframe, cfg.basket.apex_assets[0])
    hindsight = hindsight_catchup(candidates, closes, window)
    row = {
        "timeframe": timeframe,
        "candidates": len(candidates),
        "vs_ground_truth": vs_truth is not None,
        **{k: (vs_truth or {}).get(k) for k in ("tp", "fp", "fn", "precision", "recall")},
        "hindsight_window_bars": hindsight["window_bars"],
        "hindsight_evaluated": hindsight["evaluated"],
        "hindsight_caught_up_half": hindsight["caught_up_half"],
    }
    frame = pd.DataFrame([row]).rename_axis("row")
    for col in ("tp", "fp", "fn", "precision", "recall"):
        frame[col] = frame[col].astype("float64")
    store.write(SCANNER_QUALITY, timeframe, BASKET_KEY, frame)
    return frame
