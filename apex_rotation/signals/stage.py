"""The signal stage over the store: `rotation_candidates` and `confirmations`, one timeframe at a time.

Candidates are kept for every bar of history (not only the last), so the research harness and the
scanner's precision/recall against the synthetic market's ground truth read the same table the alerts do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from apex_rotation.config import AppConfig, MarketFiltersConfig
from apex_rotation.features.build import BENCHMARKS, CORR_WINDOWS_DAYS
from apex_rotation.features.loader import load
from apex_rotation.schemas import SchemaViolation, confirmations_schema, signals_schema, validate_frame
from apex_rotation.signals import confirm, rotation
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import BARS, GROUND_TRUTH, SYNTHETIC

ROTATION_CANDIDATES = "rotation_candidates"
CONFIRMATIONS = "confirmations"
BASKET_PROFILE = "basket_profile"
SIGNAL_INPUTS = ("audited_bars", "features")  # what the scanner and the confirmation read
BASKET_KEY = "basket"  # the file name of cross-symbol partitions: <asset>/<tf>/basket.parquet
EPS = 1e-9


@dataclass
class ScanResult:
    timeframe: str
    candidates: pd.DataFrame
    profile: pd.DataFrame
    insufficient_data: dict[str, int] = field(default_factory=dict)
    scores: dict | None = None
    gate_violations: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {
            "candidates": len(self.candidates),
            "symbols_flagged": int(self.candidates["symbol"].nunique()) if len(self.candidates) else 0,
            "insufficient_data": self.insufficient_data,
            "vs_ground_truth": self.scores,
        }


def load_frames(cfg: AppConfig, store: ParquetStore, timeframe: str) -> dict[str, pd.DataFrame]:
    """Audited bars joined with features for every basket symbol at one timeframe."""
    return {s: load(s, timeframe, root=store.root, assets=SIGNAL_INPUTS) for s in cfg.basket.names}


def basket_profile(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Each symbol's corr/beta vs BTC and ETH: the latest value and the history's median."""
    rows = {}
    for symbol, frame in frames.items():
        row = {}
        for kind in ("corr", "beta"):
            for bench in BENCHMARKS:
                for days in CORR_WINDOWS_DAYS:
                    col = f"{kind}_{bench.lower()}_{days}"
                    series = frame[col].dropna()
                    row[f"{col}_last"] = float(series.iloc[-1]) if len(series) else float("nan")
                    row[f"{col}_median"] = float(series.median()) if len(series) else float("nan")
        rows[symbol] = row
    profile = pd.DataFrame.from_dict(rows, orient="index")
    profile.index.name = "symbol"
    return profile


def gate_violations(candidates: pd.DataFrame, cfg: AppConfig) -> list[str]:
    """Candidates that break a configured gate: an invariant of the scanner, checked on its output."""
    a = cfg.apex
    bad = candidates[
        (candidates["apex_move_pct"] < a.move_threshold_pct - EPS)
        | (candidates["coin_move_pct"] > a.alt_lag_threshold_pct + EPS)
        | (candidates["correlation"] < a.corr_min - EPS)
        | (candidates["beta"] < a.beta_min - EPS)
    ]
    return [f"{r.symbol} {r.bar_time}" for r in bad.itertuples()][:50]


def ground_truth_scores(
    store: ParquetStore, candidates: pd.DataFrame, timeframe: str, apex: str
) -> dict | None:
    """Precision/recall against the planted episodes, when the bars came from the synthetic market."""
    if not store.exists(GROUND_TRUTH, None, SYNTHETIC) or not store.exists(BARS, timeframe, apex):
        return None
    if store.meta(BARS, timeframe, apex).get("source") != SYNTHETIC:
        return None
    truth = store.read(GROUND_TRUTH, None, SYNTHETIC)
    return rotation.precision_recall(candidates, truth, timeframe)


def hindsight_catchup(history: pd.DataFrame, frames: dict[str, pd.DataFrame], window_bars: int) -> dict:
    """How many candidates' alts then rose at least half their expected catch-up within `window_bars`.

    A research figure read with hindsight (bars after each trigger), reported beside the scan, never an
    input to it.
    """
    hits = evaluated = 0
    for row in history.itertuples():
        closes = frames[row.symbol]["close"]
        at = closes.index.searchsorted(pd.Timestamp(row.bar_time))
        ahead = closes.iloc[at + 1 : at + 1 + window_bars]
        if len(ahead) < window_bars:
            continue  # the window has not elapsed yet
        evaluated += 1
        best_pct = (ahead.max() / closes.iloc[at] - 1.0) * 100.0
        hits += bool(best_pct >= 0.5 * row.expected_catchup_pct)
    return {"window_bars": window_bars, "evaluated": evaluated, "caught_up_half": hits}


def scan_timeframe(cfg: AppConfig, store: ParquetStore, timeframe: str) -> ScanResult:
    """Scan every bar of one timeframe, then write the candidates and the basket's corr/beta profile.

    Only `apex.trigger_timeframes` (4h and 1d by default) trigger; another timeframe gets an empty table.
    """
    frames = load_frames(cfg, store, timeframe)
    apex_frames = {a: frames[a] for a in cfg.basket.apex_assets}
    if timeframe in cfg.apex.trigger_timeframes:
        history = rotation.scan_history(
            apex_frames, frames, cfg.apex, timeframe=timeframe, corr_window_days=cfg.apex.corr_window_days
        )
    else:
        history = rotation.empty_history()
    insufficient = dict(history.attrs.get(rotation.INSUFFICIENT_DATA, {}))
    history = history.reset_index(drop=True).rename_axis("row")
    history = validate_frame(signals_schema(), history, f"rotation candidates {timeframe}")
    profile = basket_profile(frames)
    result = ScanResult(
        timeframe=timeframe,
        candidates=history,
        profile=profile,
        insufficient_data=insufficient,
        scores=ground_truth_scores(store, history, timeframe, cfg.basket.apex_assets[0]),
        gate_violations=gate_violations(history, cfg),
    )
    meta = {
        "triggers": timeframe in cfg.apex.trigger_timeframes,
        "data_through": frames[cfg.basket.apex_assets[0]].index[-1].isoformat(),
        "insufficient_data": insufficient,
        "vs_ground_truth": result.scores,
        "hindsight": hindsight_catchup(history, frames, cfg.market_filters.confirm_window_bars),
    }
    store.write(ROTATION_CANDIDATES, timeframe, BASKET_KEY, history, meta=meta)
    store.write(BASKET_PROFILE, timeframe, BASKET_KEY, profile)
    return result


CONFIRMED, WATCHING, EXPIRED = "confirmed", "watching", "expired"
EMPTY_CONFIRMATIONS = ["bar_time", "eval_time", "symbol", "bars_after", "passed", "status", "rule"]


def _context_at(frame: pd.DataFrame, t: pd.Timestamp) -> dict[str, float | None]:
    row = frame.loc[t]
    return {c: None if pd.isna(row[c]) else float(row[c]) for c in rotation.CONTEXT_COLUMNS}


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
        trigger_close = frame["close"].iloc[start]
        for k, t in enumerate(frame.index[start : start + window_bars + 1]):
            watched = candidate.model_copy(update={"context": _context_at(frame, t)})
            verdict = confirm.confirm(watched, rule, settings)
            status = CONFIRMED if verdict.passed else (EXPIRED if k == window_bars else WATCHING)
            moved = (frame.at[t, "close"] / trigger_close - 1.0) * 100.0
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
    frame = validate_frame(confirmations_schema(window), frame, f"confirmations {timeframe}")
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
    window = cfg.market_filters.confirm_window_bars
    stored = store.read(CONFIRMATIONS, timeframe, BASKET_KEY)
    try:
        validate_frame(confirmations_schema(window), stored, f"confirmations {timeframe}")
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
