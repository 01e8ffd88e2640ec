"""Delivery through the outbox: enqueue (one row per alert × channel) before any request, then drive every
unfinished row to `sent` or `failed` with retries (`retry.call_with_retries`, honouring `retry_after`).

Exactly-once, and its one exception (docs/alerts.md):
* The outbox row is committed before the first attempt, `inflight` before every request, `sent` with the
  message id right after the acknowledgement. A rerun or a restart reads the rows: sent ones are never sent
  again, pending and failed ones are resumed (failed ones with a fresh retry budget), so nothing is lost.
* A provider answer that says "not taken" (429, 5xx, refused connection) clears `inflight`: resending is safe.
* "Delivered, acknowledgement lost" (read timeout, connection dropped after sending, kill -9 between the
  request and the commit): the row is pending with `inflight = 1`.
  - Notion and the JSONL file reconcile: they look the alert id up and take the existing page / line.
    Exactly-once.
  - Telegram and Discord cannot look a message up. Policy `alerts.on_unacknowledged`:
    `resend` (default) — **at-least-once in this window**: the message is sent again; it carries the same
    `alert <id>` so a duplicate is recognisable; `fail` — **at-most-once**: the row is marked failed
    ("unacknowledged") and never resent; an operator can check the chat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from apex_rotation.config import AppConfig
from apex_rotation.exec.alerts.channels import Channel, configured_channels
from apex_rotation.exec.alerts.http import Rejected, Unacknowledged
from apex_rotation.exec.alerts.model import Alert, AlertError
from apex_rotation.exec.alerts.outbox import Outbox, OutboxRow
from apex_rotation.log import kv, redact
from apex_rotation.retry import RetriesExhausted, TransientError, call_with_retries

log = logging.getLogger(__name__)


class _UnacknowledgedGiveUp(AlertError):
    """`on_unacknowledged: fail` met a request that may have been delivered: stop, never resend."""


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    reconciled: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # "<alert_id>/<channel>" → last error (redacted)

    def as_metadata(self) -> dict:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "reconciled": self.reconciled,
            "errors": self.errors,
        }


class Delivery:
    """The outbox of a store root and the configured channels (or the given ones, for tests)."""

    def __init__(
        self,
        cfg: AppConfig,
        root: str | Path,
        channels: list[Channel] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cfg = cfg
        self.root = Path(root)
        self.sleep = sleep
        self.channels = channels if channels is not None else configured_channels(cfg, self.root, sleep=sleep)
        self.outbox = Outbox.under(self.root)

    def close(self) -> None:
        self.outbox.close()

    def __enter__(self) -> Delivery:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def channel_names(self) -> list[str]:
        return [c.name for c in self.channels]

    def enqueue(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            self.outbox.enqueue(alert, self.channel_names)

    def deliver(self, alerts: Iterable[Alert], timeframe: str | None = None) -> DeliveryReport:
        """Enqueue `alerts`, then resume every unfinished row (of `timeframe`, when given)."""
        self.enqueue(alerts)
        return self.resume(timeframe)

    def resume(self, timeframe: str | None = None) -> DeliveryReport:
        report = DeliveryReport()
        by_name = {c.name: c for c in self.channels}
        for row in self.outbox.unfinished(self.channel_names, timeframe):
            self._deliver_row(row, by_name[row.channel], report)
        return report

    def _deliver_row(self, row: OutboxRow, channel: Channel, report: DeliveryReport) -> None:
        alert = row.alert()
        chart = self.root / alert.chart if alert.chart and (self.root / alert.chart).exists() else None
        ac = self.cfg.alerts
        state = {"maybe": row.inflight, "progress": dict(row.progress)}
        resend_unacked = channel.reconciles or ac.on_unacknowledged == "resend"

        def checkpoint(progress: dict) -> None:
            state["progress"] = progress
            self.outbox.checkpoint(row.alert_id, row.channel, progress)

        def attempt() -> str:
            if state["maybe"] and not resend_unacked:
                raise _UnacknowledgedGiveUp(
                    f"{channel.name}: an attempt was never acknowledged; it may have been delivered, "
                    "so it is not resent (alerts.on_unacknowledged = fail)"
                )
            if state["maybe"] and not channel.reconciles:
                log.warning(
                    "alert resend after an unacknowledged attempt (at-least-once window)",
                    extra=kv(alert_id=row.alert_id, channel=channel.name),
                )
            earlier_unacked = state["maybe"]
            self.outbox.begin_attempt(row.alert_id, row.channel)
            try:
                return channel.deliver(alert, chart, state["progress"], checkpoint, state["maybe"])
            except Unacknowledged:
                state["maybe"] = True  # inflight stays set: the outcome is unknown
                raise
            except (TransientError, Rejected) as exc:
                self.outbox.not_delivered(row.alert_id, row.channel, str(exc), inflight=earlier_unacked)
                raise

        try:
            message_id = call_with_retries(
                attempt,
                what=f"alert {row.alert_id} via {channel.name}",
                max_retries=ac.max_retries,
                base_s=ac.backoff_base_s,
                max_s=ac.backoff_max_s,
                retry_on=(TransientError,),
                sleep=self.sleep,
            )
        except (RetriesExhausted, AlertError) as exc:
            error = redact(str(exc))
            unacked = isinstance(exc, _UnacknowledgedGiveUp)
            self.outbox.mark_failed(row.alert_id, row.channel, error, inflight=unacked)
            report.failed += 1
            report.errors[f"{row.alert_id}/{row.channel}"] = error
            log.error(
                "alert not delivered", extra=kv(alert_id=row.alert_id, channel=channel.name, error=error)
            )
            return
        self.outbox.mark_sent(row.alert_id, row.channel, message_id)
        report.sent += 1
        report.reconciled += int(row.inflight and channel.reconciles)
        log.info("alert sent", extra=kv(alert_id=row.alert_id, channel=channel.name, message_id=message_id))
