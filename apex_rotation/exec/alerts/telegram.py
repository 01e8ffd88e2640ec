"""Telegram Bot API: `sendMessage` (HTML parse mode, escaped), then the chart via `sendDocument` as a reply.

The bot token is in the URL path (`/bot<token>/…`): it is masked in every error (`http.Http`). Telegram
has no idempotency key and no way to look a sent message up: an unacknowledged request is governed by
`alerts.on_unacknowledged`; each message ends with `alert <id>` so a reader can tell a duplicate. The
message's id is checkpointed in the outbox before the document goes, so a resumed row only sends what
is missing.
"""

from __future__ import annotations

from pathlib import Path

from apex_rotation.config import AlertsConfig
from apex_rotation.exec.alerts.channels import Checkpoint
from apex_rotation.exec.alerts.http import Http, Unacknowledged
from apex_rotation.exec.alerts.model import Alert

MAX_TEXT = 4096


class TelegramChannel:
    name = "telegram"
    reconciles = False

    def __init__(self, cfg: AlertsConfig, token: str, chat_id: str, **http_kwargs):
        self.base = f"{cfg.telegram_api_url.rstrip('/')}/bot{token}"
        self.chat_id = chat_id
        self.http = Http(
            "telegram", [token, chat_id], cfg.request_timeout_s, cfg.telegram_min_interval_s, **http_kwargs
        )

    def _result_id(self, body: dict, what: str) -> str:
        try:
            return str(body["result"]["message_id"])
        except (KeyError, TypeError):
            raise Unacknowledged(f"telegram {what}: 2xx without result.message_id") from None

    def deliver(
        self, alert: Alert, chart: Path | None, progress: dict, checkpoint: Checkpoint, maybe_delivered: bool
    ) -> str:
        if "message_id" not in progress:
            text = alert.telegram_html()
            if len(text) > MAX_TEXT:  # reasons are the only long part; the id line stays
                text = text[: MAX_TEXT - 60] + f"…\n<code>alert {alert.alert_id}</code>"
            body = self.http.post(
                f"{self.base}/sendMessage",
                "sendMessage",
                json={
                    "chat_id": self.chat_id,
                    "text": text,
                    "parse_mode": "HTML",
                    "disable_web_page_preview": True,
                },
            )
            progress = {**progress, "message_id": self._result_id(body, "sendMessage")}
            checkpoint(progress)
        if chart is not None and "document_id" not in progress:
            with chart.open("rb") as fh:
                body = self.http.post(
                    f"{self.base}/sendDocument",
                    "sendDocument",
                    data={
                        "chat_id": self.chat_id,
                        "caption": f"chart · alert {alert.alert_id}",
                        "reply_to_message_id": progress["message_id"],
                    },
                    files={"document": (chart.name, fh, "text/html")},
                )
            progress = {**progress, "document_id": self._result_id(body, "sendDocument")}
            checkpoint(progress)
        return progress["message_id"]
