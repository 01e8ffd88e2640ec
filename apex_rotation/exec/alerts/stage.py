"""The alerts stage of one timeframe: every fired row of `scores` becomes an alert (recorded in `alerts`);
the recent ones (within `alerts.deliver_within_bars` of the latest closed bar) get a chart and are
delivered through the outbox. History is recorded, not spammed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from apex_rotation import schemas
from apex_rotation.config import AppConfig
from apex_rotation.exec.alerts.delivery import Delivery, DeliveryReport
from apex_rotation.exec.alerts.model import Alert, AlertError, build_alert
from apex_rotation.exec.charts import chart_relpath, render_chart
from apex_rotation.signals.score import ScoredSignal
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.tables import ALERTS, AUDITED_BARS, BASKET_KEY, SCORES, TD_STATE
from apex_rotation.timeframes import delta

log = logging.getLogger(__name__)
BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
TD_COLUMNS = ["td_setup_type", "td_setup_count", "td_countdown", "td_tdst_buy", "td_tdst_sell"]


def read_fired(store: ParquetStore, timeframe: str) -> list[ScoredSignal]:
    """The fired signals of the `scores` table (AlertError, naming the file, when the table is absent)."""
    path = store.path(SCORES, timeframe, BASKET_KEY)
    if not path.exists():
        raise AlertError(
            f"alerts {timeframe}: the scores table is absent ({path}); materialize `scores` for {timeframe} first"
        )
    frame = store.read(SCORES, timeframe, BASKET_KEY)
    if frame.index.name in ScoredSignal.model_fields:
        frame = frame.reset_index()
    fired = frame[frame["fired"].astype(bool)]
    return [ScoredSignal.from_row(row) for row in fired.to_dict("records")]


class _Bars:
    """Bars and TD state per symbol of one timeframe, read once (None when not stored)."""

    def __init__(self, store: ParquetStore, timeframe: str):
        self.store, self.tf = store, timeframe
        self._bars: dict[str, pd.DataFrame | None] = {}
        self._td: dict[str, pd.DataFrame | None] = {}
        self._arrays: dict[str, dict[str, np.ndarray]] = {}

    def bars(self, symbol: str) -> pd.DataFrame | None:
        if symbol not in self._bars:
            self._bars[symbol] = self._read(AUDITED_BARS, symbol, BAR_COLUMNS)
        return self._bars[symbol]

    def arrays(self, symbol: str) -> dict[str, np.ndarray]:
        if symbol not in self._arrays:
            bars = self.bars(symbol)
            self._arrays[symbol] = {c: bars[c].to_numpy(float) for c in ("low", "high", "close")}
        return self._arrays[symbol]

    def td(self, symbol: str) -> pd.DataFrame | None:
        if symbol not in self._td:
            self._td[symbol] = self._read(TD_STATE, symbol, TD_COLUMNS)
        return self._td[symbol]

    def _read(self, table, symbol: str, columns: list[str]) -> pd.DataFrame | None:
        try:
            return self.store.read(table, self.tf, symbol, columns=columns)
        except StoreError:
            return None


class _After:
    """The bars after a signal bar as numpy views (what `alert_status` reads), without slicing a frame."""

    def __init__(self, arrays: dict[str, np.ndarray], index: pd.DatetimeIndex, start: int):
        self._arrays, self._start, self.index = arrays, start, _Times(index, start)

    def __getitem__(self, column: str) -> np.ndarray:
        return self._arrays[column][self._start :]

    def __len__(self) -> int:
        return len(self.index)


class _Times:
    """`index[start:]` without building it: the status only reads one or two of its times."""

    def __init__(self, index: pd.DatetimeIndex, start: int):
        self._index, self._start = index, start

    def __getitem__(self, i: int) -> pd.Timestamp:
        return self._index[i if i < 0 else self._start + i]

    def __len__(self) -> int:
        return len(self._index) - self._start


_NO_BARS = {c: np.array([], dtype=float) for c in ("low", "high", "close")}


def _after(data: _Bars, symbol: str, bar_time: pd.Timestamp) -> _After:
    bars = data.bars(symbol)
    if bars is None:
        return _After(_NO_BARS, pd.DatetimeIndex([], tz="UTC"), 0)
    return _After(data.arrays(symbol), bars.index, int(bars.index.searchsorted(bar_time, side="right")))


def chart_for(cfg: AppConfig, root: Path, data: _Bars, alert: Alert) -> str:
    """Render the alert's chart and return its path relative to the store root."""
    rel = chart_relpath(alert.timeframe, alert.symbol, alert.alert_id)
    t = pd.Timestamp(alert.bar_time)
    start = t - cfg.alerts.chart_bars * delta(alert.timeframe)
    bars = data.bars(alert.symbol)
    window = (
        bars.loc[bars.index >= start]
        if bars is not None
        else pd.DataFrame({c: [alert.entry] for c in BAR_COLUMNS}, index=pd.DatetimeIndex([t]))
    )
    td = data.td(alert.symbol)
    apex_symbol = alert.apex_asset or cfg.basket.apex_assets[0]
    apex = data.bars(apex_symbol)
    render_chart(
        root / rel,
        title=alert.title,
        bars=window,
        td=None if td is None else td.loc[td.index >= start],
        apex=None if apex is None else apex.loc[apex.index >= start],
        apex_asset=apex_symbol,
        signal_time=t,
        levels={
            "entry": alert.entry,
            "stop": alert.stop,
            "target": alert.target,
            "invalidation": alert.invalidation,
        },
        entry_zone=(alert.entry_low, alert.entry_high),
        plotlyjs=cfg.alerts.chart_plotlyjs,
    )
    return rel


def alert_for(cfg: AppConfig, root: str | Path, signal: ScoredSignal, *, chart: bool = True) -> Alert:
    """One signal's alert, status from the stored bars (none stored: waiting), chart rendered."""
    root = Path(root)
    data = _Bars(ParquetStore(root), signal.timeframe)
    after = _after(data, signal.symbol, pd.Timestamp(signal.bar_time))
    alert = build_alert(signal, after, expiry_bars=cfg.sim.entry_expiry_bars)
    return alert.model_copy(update={"chart": chart_for(cfg, root, data, alert)}) if chart else alert


@dataclass
class AlertsResult:
    timeframe: str
    alerts: list[Alert] = field(default_factory=list)
    due: list[Alert] = field(default_factory=list)  # within deliver_within_bars: charted and delivered
    skipped: list[str] = field(default_factory=list)  # fired signals that cannot become an alert
    latest_bar: pd.Timestamp | None = None
    report: DeliveryReport = field(default_factory=DeliveryReport)

    def summary(self) -> dict:
        statuses = pd.Series([a.status for a in self.alerts], dtype=object).value_counts().to_dict()
        return {
            "alerts": len(self.alerts),
            "delivered_now": len(self.due),
            "latest_bar": None if self.latest_bar is None else self.latest_bar.isoformat(),
            "status": statuses,
            "skipped": self.skipped[:20],
            "delivery": self.report.as_metadata(),
        }


def alerts_frame(alerts: list[Alert]) -> pd.DataFrame:
    columns = [*Alert.model_fields]
    frame = pd.DataFrame([a.to_row() for a in alerts], columns=columns)
    for key in ("bar_time", "status_time", "as_of"):
        frame[key] = pd.to_datetime(frame[key], utc=True)
    return frame.set_index("alert_id")


def run_alerts(
    cfg: AppConfig, store: ParquetStore, timeframe: str, *, delivery: Delivery | None = None
) -> AlertsResult:
    """Build every fired signal's alert, record them all, chart and deliver the recent ones."""
    result = AlertsResult(timeframe)
    signals = read_fired(store, timeframe)
    data = _Bars(store, timeframe)
    lasts = [
        b.index[-1]
        for s in {x.symbol for x in signals} | set(cfg.basket.apex_assets)
        if (b := data.bars(s)) is not None and len(b)
    ]
    result.latest_bar = max(lasts) if lasts else None
    step = delta(timeframe)
    alerts = []
    for signal in signals:
        t = pd.Timestamp(signal.bar_time)
        if signal.plan is None:
            result.skipped.append(f"{signal.signal_id} {signal.symbol} {t.isoformat()}: fired without a plan")
            continue
        since = 0 if result.latest_bar is None else max(0, int((result.latest_bar - t) / step))
        alert = build_alert(
            signal,
            _after(data, signal.symbol, t),
            expiry_bars=cfg.sim.entry_expiry_bars,
            bars_since=since,
        )
        if since <= cfg.alerts.deliver_within_bars:
            alert = alert.model_copy(update={"chart": chart_for(cfg, store.root, data, alert)})
            result.due.append(alert)
        elif (store.root / (rel := chart_relpath(timeframe, alert.symbol, alert.alert_id))).exists():
            alert = alert.model_copy(update={"chart": rel})  # charted when it was delivered
        alerts.append(alert)
    result.alerts = sorted(alerts, key=lambda a: (a.bar_time, a.symbol, a.archetype))
    frame = schemas.validate_frame(
        schemas.alerts_schema(), alerts_frame(result.alerts), f"alerts {timeframe}"
    )
    store.write(ALERTS, timeframe, BASKET_KEY, frame)
    owned = delivery is None
    delivery = delivery or Delivery(cfg, store.root)
    try:
        result.report = delivery.deliver(result.due, timeframe)
    finally:
        if owned:
            delivery.close()
    return result


def alert_problems(store: ParquetStore, timeframe: str, deliver_within_bars: int) -> list[str]:
    """What the `alerts` chart check flags: a recorded chart that does not exist, a due alert without one."""
    frame = store.read(ALERTS, timeframe, BASKET_KEY)
    problems = []
    for alert_id, chart, since in zip(frame.index, frame["chart"], frame["bars_since"], strict=True):
        if not isinstance(chart, str):
            if since <= deliver_within_bars:
                problems.append(f"{alert_id}: delivered without a chart")
        elif not (store.root / chart).exists():
            problems.append(f"{alert_id}: chart {chart} is missing")
    return problems
