"""What `apex run`, `apex alerts` and `apex trades` print: tables a trader reads, live first.

It reads across the stages (alerts, dry-run trades, candidates, confirmations, the research figures), so it
sits beside the CLI, above every stage. Figures that only mean something on the synthetic market (its
planted truth, the dry-run PnL of a generated market) say so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from apex_rotation.signals.watching import latest_status
from apex_rotation.store.audit_report import audit_report_path
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import (
    ALERTS,
    BARS,
    BASKET_KEY,
    CONFIRMATIONS,
    GROUND_TRUTH_KEY,
    ROTATION_CANDIDATES,
    SCANNER_QUALITY,
    SIM_TRADES,
    Table,
)
from apex_rotation.timeframes import BASE_TIMEFRAME, TIMEFRAMES

OPEN_STATUSES = ("Waiting for retest", "Entry zone")
Column = tuple[str, str, str]  # (header, row key, format spec)


def text_table(rows: Sequence[dict], columns: Sequence[Column], indent: str = "  ") -> list[str]:
    """Fixed-width rows under a header: numbers right-aligned, text left-aligned; NaN/None as '-'."""

    def cell(value: object, spec: str) -> str:
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return "-"
        if isinstance(value, pd.Timestamp):
            return value.strftime("%Y-%m-%d %H:%M")
        return format(value, spec) if spec else str(value)

    body = [[cell(row.get(key), spec) for _, key, spec in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, (h, _, _) in enumerate(columns)]
    numeric = [bool(spec) for _, _, spec in columns]

    def line(values: Sequence[str]) -> str:
        return (
            indent
            + "  ".join(
                v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
            ).rstrip()
        )

    return [line([h for h, _, _ in columns]), *(line(r) for r in body)]


def read_all(store: ParquetStore, table: Table, timeframes: Sequence[str] = TIMEFRAMES) -> pd.DataFrame:
    """One cross-symbol table over the timeframes where it is stored (empty frame when none)."""
    frames = [
        store.read(table, tf, BASKET_KEY).reset_index()
        for tf in timeframes
        if store.exists(table, tf, BASKET_KEY)
    ]
    frames = [f.drop(columns=[c for c in ("row", "index") if c in f]) for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def is_synthetic(store: ParquetStore, symbol: str) -> bool:
    """Whether the store's bars came from the synthetic market (its figures then measure the generator)."""
    return (
        store.exists(BARS, BASE_TIMEFRAME, symbol)
        and store.meta(BARS, BASE_TIMEFRAME, symbol).get("source") == GROUND_TRUTH_KEY
    )


def _reasons(row: pd.Series | dict) -> list[str]:
    return list(json.loads(row["top_reasons"])) if isinstance(row["top_reasons"], str) else []


ALERT_COLUMNS: list[Column] = [
    ("tf", "timeframe", ""),
    ("symbol", "symbol", ""),
    ("archetype", "archetype", ""),
    ("dir", "direction", ""),
    ("bar (UTC)", "bar_time", ""),
    ("score", "score", ".1f"),
    ("status", "status", ""),
    ("entry zone", "zone", ""),
    ("stop", "stop", ".6g"),
    ("target", "target", ".6g"),
    ("R:R", "rr", ".2f"),
]


def _alert_rows(alerts: pd.DataFrame) -> list[dict]:
    return [
        row | {"zone": f"{row['entry_low']:.6g}–{row['entry_high']:.6g}"} for row in alerts.to_dict("records")
    ]


def live_now(store: ParquetStore, timeframes: Sequence[str]) -> list[str]:
    """Alerts whose status is still open at the latest closed bar, with their plan, reasons and chart."""
    alerts = read_all(store, ALERTS, timeframes)
    if alerts.empty:
        return ["Live now: no alert recorded yet"]
    live = alerts[alerts["status"].isin(OPEN_STATUSES)].sort_values(["bar_time", "score"], ascending=False)
    as_of = pd.Timestamp(alerts["as_of"].max()).strftime("%Y-%m-%d %H:%M UTC")
    if live.empty:
        return [f"Live now (as of {as_of}): no open alert"]
    lines = [f"Live now (as of {as_of}): {len(live)} open alert(s)"]
    for row in _alert_rows(live):
        lines += text_table([row], ALERT_COLUMNS)[1 if len(lines) > 1 else 0 :]
        invalidation = f"invalidation: {row['invalidation_kind']} {row['invalidation']:.6g}"
        lines.append(f"      {invalidation}; {row['status_detail']}")
        lines += [f"      · {reason}" for reason in _reasons(row)]
        if row.get("chart"):
            lines.append(f"      chart: {store.root / row['chart']}")
    return lines


def _with_trades(alerts: pd.DataFrame, trades: pd.DataFrame) -> pd.DataFrame:
    if trades.empty:
        return alerts.assign(exit_reason=None, pnl_r=float("nan"), pnl_pct=float("nan"))
    return alerts.merge(trades[["alert_id", "exit_reason", "pnl_r", "pnl_pct"]], on="alert_id", how="left")


def recent_alerts(store: ParquetStore, timeframes: Sequence[str], n: int) -> list[str]:
    """The last `n` alerts with the outcome of their dry-run trade."""
    alerts = read_all(store, ALERTS, timeframes)
    if alerts.empty:
        return []
    recent = _with_trades(alerts, read_all(store, SIM_TRADES, timeframes))
    recent = recent.sort_values(["bar_time", "score"], ascending=False).head(n)
    columns = [c for c in ALERT_COLUMNS if c[1] not in ("stop", "target", "zone")] + [
        ("dry-run exit", "exit_reason", ""),
        ("R", "pnl_r", "+.2f"),
        ("PnL %", "pnl_pct", "+.2f"),
    ]
    return [
        f"Recent alerts and their dry-run outcome (last {len(recent)})",
        *text_table(recent.to_dict("records"), columns),
    ]


def by_archetype(store: ParquetStore, timeframes: Sequence[str], synthetic: bool) -> list[str]:
    """The dry-run batch summary per archetype (and all), labelled when the market is synthetic."""
    from apex_rotation.exec.sim import summarize  # the simulator's own summary, not a second one

    trades = read_all(store, SIM_TRADES, timeframes)
    if trades.empty:
        return []
    summary = summarize(trades).reset_index()
    title = "By archetype (dry-run trades, fees/slippage/funding included)"
    if synthetic:
        title += " — synthetic market: these figures measure the generator, not an edge"
    columns: list[Column] = [
        ("archetype", "archetype", ""),
        ("alerts", "alerts", "d"),
        ("filled", "filled", "d"),
        ("win rate", "win_rate", ".0%"),
        ("mean R", "mean_r", "+.2f"),
        ("total R", "total_r", "+.1f"),  # trades are sized by risk: R, not summed % moves, adds up
        ("profit factor", "profit_factor", ".2f"),
    ]
    return [title, *text_table(summary.to_dict("records"), columns)]


def _quality(store: ParquetStore, timeframe: str) -> dict:
    """The research figures of one timeframe (`research/scanner_quality.py`), {} when not computed."""
    if not store.exists(SCANNER_QUALITY, timeframe, BASKET_KEY):
        return {}
    return store.read(SCANNER_QUALITY, timeframe, BASKET_KEY).iloc[0].to_dict()


def _figure(value: float | None) -> str:
    return "None" if value is None or pd.isna(value) else repr(float(value))


CANDIDATE_COLUMNS: list[Column] = [
    ("bar (UTC)", "bar_time", ""),
    ("symbol", "symbol", ""),
    ("apex", "apex_asset", ""),
    ("apex move", "apex_move", ""),
    ("coin move", "coin_move", ""),
    ("corr", "correlation", ".2f"),
    ("beta", "beta", ".2f"),
    ("strength", "signal_strength", ""),
    ("watch", "watch", ""),
]


def timeframe_section(store: ParquetStore, timeframe: str, latest: int) -> list[str]:
    """The scanner at one timeframe: its research figures and the latest candidates with their watch."""
    if not store.exists(ROTATION_CANDIDATES, timeframe, BASKET_KEY):
        return [f"[{timeframe}] not computed yet"]
    candidates = store.read(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    meta = store.meta(ROTATION_CANDIDATES, timeframe, BASKET_KEY)
    lines = [
        f"[{timeframe}] data through {meta.get('data_through', '?')}: {len(candidates)} candidates in history"
    ]
    if not meta.get("triggers", True):
        lines[0] += " (not a trigger timeframe: apex.trigger_timeframes)"
    quality = _quality(store, timeframe)
    if quality.get("vs_ground_truth") and quality["tp"] + quality["fn"]:
        lines.append(
            f"  vs planted ground truth (synthetic market only): precision={_figure(quality['precision'])} "
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
    if candidates.empty:
        return lines
    statuses = (
        latest_status(store.read(CONFIRMATIONS, timeframe, BASKET_KEY))
        if store.exists(CONFIRMATIONS, timeframe, BASKET_KEY)
        else pd.DataFrame(columns=["bar_time", "symbol", "apex_asset"])
    )
    newest = candidates.sort_values(["bar_time", "expected_catchup_pct"], ascending=False).head(latest)
    merged = newest.merge(statuses, on=["bar_time", "symbol", "apex_asset"], how="left", suffixes=("", "_w"))
    rows = []
    for row in merged.to_dict("records"):
        watch = "-" if pd.isna(row.get("status_w", row.get("eval_time"))) else None
        if watch is None:
            watch = f"{row['status_w'] if 'status_w' in row else row['status']} +{int(row['bars_after'])}"
        rows.append(row | {"watch": watch})
    table = text_table(rows, CANDIDATE_COLUMNS)
    lines.append(table[0])
    for row, line in zip(rows, table[1:], strict=True):
        lines.append(line)
        if isinstance(row.get("reasons"), str):
            moved = row.get("move_since_trigger_pct")
            left = "" if moved is None or pd.isna(moved) else f"alt {moved:+.1f}% since the trigger close; "
            lines.append(f"      {left}{row['reasons']}")
    return lines


def run_summary(
    store: ParquetStore, latest: int = 5, timeframes: Sequence[str] = TIMEFRAMES, apex_asset: str = "BTC"
) -> str:
    """Live alerts, recent alerts with their dry-run outcome, the per-archetype summary, then the scanner."""
    synthetic = is_synthetic(store, apex_asset)
    lines = [*live_now(store, timeframes), ""]
    for section in (recent_alerts(store, timeframes, 10), by_archetype(store, timeframes, synthetic)):
        if section:
            lines += [*section, ""]
    lines += ["Rotation scanner: the latest LAGGING_ROTATION candidates per timeframe", ""]
    for timeframe in timeframes:
        lines += timeframe_section(store, timeframe, latest)
        lines.append("")
    lines.append(f"outputs: {store.root}/<table>/<timeframe>/<symbol|basket>.parquet")
    lines.append(f"  alerts:       {store.root}/{ALERTS}/<tf>/{BASKET_KEY}.parquet (+ alerts.jsonl, charts/)")
    lines.append(
        f"  dry-run:      {store.root}/{SIM_TRADES}/<tf>/{BASKET_KEY}.parquet, exports/sim_trades_<tf>.csv"
    )
    lines.append(f"  candidates:   {store.root}/{ROTATION_CANDIDATES}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  confirmations: {store.root}/{CONFIRMATIONS}/<tf>/{BASKET_KEY}.parquet")
    lines.append(f"  audit report: {audit_report_path(store.root)}")
    lines.append("  query with DuckDB: apex_rotation.store.query.query(root, 'SELECT * FROM alerts_4h')")
    return "\n".join(lines)


def _alert_block(store: ParquetStore, row: dict, all_reasons: bool) -> list[str]:
    """One alert in full: its table row, invalidation, reasons (top 3 or all) and chart."""
    lines = text_table(_alert_rows(pd.DataFrame([row])), ALERT_COLUMNS)
    lines.append(f"      alert_id {row['alert_id']}; {row['status_detail']}")
    lines.append(f"      invalidation: {row['invalidation_kind']} {row['invalidation']:.6g}")
    if all_reasons:
        lines += [f"      · {r}" for r in _all_reasons(row)]
    else:
        lines += [f"      · {r}" for r in _reasons(row)]
    chart = row.get("chart")
    lines.append(
        f"      chart: {store.root / chart}"
        if chart
        else "      chart: - (only delivered alerts are charted)"
    )
    return lines


def _all_reasons(row: dict) -> list[str]:
    """Every reason of an alert, as the composer wrote them (block/name verdict points: detail)."""
    from apex_rotation.signals.score import Reason

    return [Reason(**r).text() for r in json.loads(row["reasons"])] if isinstance(row["reasons"], str) else []


def alerts_day(
    store: ParquetStore,
    day: str | None = None,
    symbol: str | None = None,
    timeframes: Sequence[str] = TIMEFRAMES,
) -> str:
    """One UTC day's alerts (default: the latest day with any) with every reason, invalidation and chart."""
    alerts = read_all(store, ALERTS, timeframes)
    if alerts.empty:
        return f"no alerts stored under {store.root}: run `apex run` first"
    if symbol:
        alerts = alerts[alerts["symbol"] == symbol.upper()]
    dates = pd.to_datetime(alerts["bar_time"], utc=True).dt.strftime("%Y-%m-%d")
    chosen = day or (dates.max() if len(dates) else None)
    picked = alerts[dates == chosen].sort_values(["bar_time", "score"], ascending=[True, False])
    what = f"{symbol.upper()} " if symbol else ""
    if picked.empty:
        return f"no {what}alerts on {chosen} (alert days stored: {dates.min()} … {dates.max()})"
    lines = [f"{len(picked)} {what}alert(s) on {chosen} (bar times UTC)"]
    for row in picked.to_dict("records"):
        lines += ["", *_alert_block(store, row, all_reasons=True)]
    return "\n".join(lines)


TRADE_COLUMNS: list[Column] = [
    ("alert_id", "alert_id", ""),
    ("tf", "timeframe", ""),
    ("symbol", "symbol", ""),
    ("archetype", "archetype", ""),
    ("side", "side", ""),
    ("entry (UTC)", "entry_time", ""),
    ("entry", "entry_price", ".6g"),
    ("exit (UTC)", "exit_time", ""),
    ("exit", "exit_price", ".6g"),
    ("exit reason", "exit_reason", ""),
    ("R", "pnl_r", "+.2f"),
    ("PnL %", "pnl_pct", "+.2f"),
]


def trades_report(
    store: ParquetStore, alert_id: str | None = None, last: int = 20, timeframes: Sequence[str] = TIMEFRAMES
) -> str:
    """The dry-run trades (the last `last`), or one alert traced to its trade(s) and PnL."""
    trades = read_all(store, SIM_TRADES, timeframes)
    if trades.empty:
        return f"no dry-run trades stored under {store.root}: run `apex run` first"
    if alert_id is None:
        recent = trades.sort_values("signal_time", ascending=False).head(last)
        lines = [f"Dry-run trades (last {len(recent)} of {len(trades)}); `apex trades --alert ID` traces one"]
        return "\n".join([*lines, *text_table(recent.to_dict("records"), TRADE_COLUMNS)])
    mine = trades[trades["alert_id"] == alert_id]
    alerts = read_all(store, ALERTS, timeframes)
    alert = alerts[alerts["alert_id"] == alert_id] if len(alerts) else alerts
    if mine.empty and alert.empty:
        raise KeyError(f"no alert or trade with alert_id {alert_id!r} under {store.root}")
    lines = [
        "Alert",
        *(_alert_block(store, alert.iloc[0].to_dict(), all_reasons=False) if len(alert) else ["  -"]),
    ]
    for trade in mine.to_dict("records"):
        lines += [
            "",
            f"Dry-run trade {trade.get('trade', '')} ({trade['instrument']}, {trade['order_type']} order)",
        ]
        detail = [
            ("order", f"{trade['order_price']:.6g}", "stop", f"{trade['stop_price']:.6g}"),
            (
                "target",
                f"{trade['take_profit']:.6g} ({trade['target_source']})",
                "size",
                f"{trade['size']:.6g}",
            ),
            (
                "entry",
                f"{_time(trade['entry_time'])} @ {_num(trade['entry_price'])}",
                "exit",
                f"{_time(trade['exit_time'])} @ {_num(trade['exit_price'])}",
            ),
            ("exit reason", str(trade["exit_reason"]), "bars held", str(trade["bars_held"])),
            (
                "PnL",
                f"{_num(trade['pnl_pct'], '+.2f')} % = {_num(trade['pnl_r'], '+.2f')} R",
                "risk",
                f"{_num(trade['risk_pct'], '.2f')} % to the stop",
            ),
            (
                "fees",
                f"{_num(trade['fees_pct'], '.3f')} %",
                "slippage",
                f"{_num(trade['slippage_pct'], '.3f')} %",
            ),
            (
                "funding",
                f"{_num(trade['funding_pct'], '+.3f')} %",
                "MFE / MAE",
                f"{_num(trade['mfe_r'], '.2f')} R / {_num(trade['mae_r'], '.2f')} R",
            ),
        ]
        lines += [f"  {a:<12}{b:<34}{c:<11}{d}" for a, b, c, d in detail]
    return "\n".join(lines)


def _time(value: object) -> str:
    return "-" if value is None or pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M")


def _num(value: object, spec: str = ".6g") -> str:
    return "-" if value is None or pd.isna(value) else format(float(value), spec)
