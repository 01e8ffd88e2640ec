"""What a channel is, and which channels are configured (secrets from the environment only).

A channel delivers one alert and returns the provider's message id. `deliver(..., maybe_delivered=True)`
means an earlier attempt was never acknowledged: a channel that can look the alert up (`reconciles`:
Notion, the JSONL file) does so first and answers with the existing id, which makes it exactly-once; one
that cannot (Telegram, Discord) is governed by `alerts.on_unacknowledged` in `delivery.py`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from apex_rotation.config import AppConfig
from apex_rotation.exec.alerts.model import Alert

log = logging.getLogger(__name__)

Checkpoint = Callable[[dict], None]


class Channel(Protocol):
    name: str
    reconciles: bool

    def deliver(
        self, alert: Alert, chart: Path | None, progress: dict, checkpoint: Checkpoint, maybe_delivered: bool
    ) -> str: ...


def configured_channels(cfg: AppConfig, root: Path, sleep=None) -> list[Channel]:
    """Telegram (token + chat id), Discord (webhook URL), Notion (token + `alerts.notion_database_id`);
    with none of them, the JSONL file channel (plus a console line), so the offline default works."""
    from apex_rotation.exec.alerts.discord import DiscordChannel
    from apex_rotation.exec.alerts.file import FileChannel
    from apex_rotation.exec.alerts.notion import NotionChannel
    from apex_rotation.exec.alerts.telegram import TelegramChannel

    secrets, ac = cfg.secrets(), cfg.alerts
    kw = {} if sleep is None else {"sleep": sleep}
    channels: list[Channel] = []
    if secrets.telegram_bot_token and secrets.telegram_chat_id:
        channels.append(
            TelegramChannel(
                ac,
                secrets.telegram_bot_token.get_secret_value(),
                secrets.telegram_chat_id.get_secret_value(),
                **kw,
            )
        )
    if secrets.discord_webhook_url:
        channels.append(DiscordChannel(ac, secrets.discord_webhook_url.get_secret_value(), **kw))
    if secrets.notion_token:
        if ac.notion_database_id:
            channels.append(NotionChannel(ac, secrets.notion_token.get_secret_value(), **kw))
        else:
            log.warning("alerts: a Notion token is set but alerts.notion_database_id is not; Notion skipped")
    return channels or [FileChannel(root)]
