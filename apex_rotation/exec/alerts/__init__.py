"""Alert delivery (docs/alerts.md): `send(signal)` delivers one alert on every configured channel through
the durable outbox; `stage.run_alerts` is what the `alerts` asset runs per timeframe.

Modules: `model.py` (the `Alert` payload and its status rules), `outbox.py` (SQLite, WAL), `delivery.py`
(retries and the exactly-once policy), `http.py` (errors sorted by what they mean, secrets masked), one
module per channel (`telegram.py`, `discord.py`, `notion.py`, `file.py`), `stage.py` (the asset's work).
"""

from __future__ import annotations

from pathlib import Path

from apex_rotation.config import AppConfig, load_config
from apex_rotation.exec.alerts.channels import Channel
from apex_rotation.exec.alerts.delivery import Delivery, DeliveryReport
from apex_rotation.exec.alerts.model import STATUSES, Alert, AlertError, alert_status, build_alert
from apex_rotation.signals.score import ScoredSignal

__all__ = [
    "STATUSES",
    "Alert",
    "AlertError",
    "Delivery",
    "DeliveryReport",
    "alert_status",
    "build_alert",
    "send",
]


def send(
    signal: ScoredSignal | Alert,
    *,
    cfg: AppConfig | None = None,
    store_root: str | Path | None = None,
    channels: list[Channel] | None = None,
) -> None:
    """Deliver one alert on every configured channel through the outbox (`<store root>/alerts/`).

    A `ScoredSignal` becomes an `Alert` first (status from the stored bars, chart rendered). Rows an
    earlier run left unfinished are resumed too. Raises `AlertError` when a channel failed for this alert
    (the outbox keeps the row: the next send or run retries it).
    """
    from apex_rotation.exec.alerts.stage import alert_for

    cfg = cfg or load_config()
    root = Path(store_root or cfg.data_root())
    alert = signal if isinstance(signal, Alert) else alert_for(cfg, root, signal)
    with Delivery(cfg, root, channels) as delivery:
        report = delivery.deliver([alert])
    mine = {k: v for k, v in report.errors.items() if k.startswith(f"{alert.alert_id}/")}
    if mine:
        raise AlertError(f"alert {alert.alert_id} not delivered: {mine}")
