"""Discord webhook: one embed (limits respected) with the chart attached, `?wait=true` for the message id.

The webhook URL holds its token in the path: it is masked in every error. `alerts.discord_api_url`, when
set, replaces the scheme and host of the URL from the environment (tests point it at 127.0.0.1). Discord
has no idempotency key and a webhook cannot list its messages: an unacknowledged request is governed by
`alerts.on_unacknowledged`; the embed's footer carries `alert <id>` so a reader can tell a duplicate.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from apex_rotation.config import AlertsConfig
from apex_rotation.exec.alerts.channels import Checkpoint
from apex_rotation.exec.alerts.http import Http, Unacknowledged
from apex_rotation.exec.alerts.model import Alert

# Discord's embed limits: title 256, description 4096, 25 fields (name 256, value 1024), 6000 in all.
TITLE, DESCRIPTION, FIELD_VALUE, TOTAL = 256, 4096, 1024, 6000


def webhook_url(env_url: str, base: str | None) -> str:
    if not base:
        return env_url
    parts = urlsplit(env_url)
    return base.rstrip("/") + parts.path


def embed(alert: Alert) -> dict:
    description = "\n".join(f"• {r}" for r in alert.top_reasons)[: DESCRIPTION // 2]
    fields = [{"name": k, "value": v[:FIELD_VALUE], "inline": True} for k, v in alert.lines()]
    out = {
        "title": alert.title[:TITLE],
        "description": description,
        "color": 0x2ECC71 if alert.direction == "long" else 0xE74C3C,
        "fields": fields,
        "footer": {"text": f"alert {alert.alert_id}"},
        "timestamp": alert.bar_time.isoformat(),
    }
    assert len(json.dumps(out)) < TOTAL  # fixed fields and capped reasons stay well under the total
    return out


class DiscordChannel:
    name = "discord"
    reconciles = False

    def __init__(self, cfg: AlertsConfig, env_url: str, **http_kwargs):
        self.url = webhook_url(env_url, cfg.discord_api_url)
        token = urlsplit(env_url).path.rstrip("/").rsplit("/", 1)[-1]
        self.http = Http("discord", [env_url, token], cfg.request_timeout_s, **http_kwargs)

    def deliver(
        self, alert: Alert, chart: Path | None, progress: dict, checkpoint: Checkpoint, maybe_delivered: bool
    ) -> str:
        payload = {"embeds": [embed(alert)], "allowed_mentions": {"parse": []}}
        url = f"{self.url}?wait=true"
        if chart is None:
            body = self.http.post(url, "execute webhook", json=payload)
        else:
            payload["attachments"] = [{"id": 0, "filename": chart.name}]
            with chart.open("rb") as fh:
                body = self.http.post(
                    url,
                    "execute webhook",
                    data={"payload_json": json.dumps(payload)},
                    files={"files[0]": (chart.name, fh, "text/html")},
                )
        if not isinstance(body, dict) or "id" not in body:
            raise Unacknowledged("discord execute webhook: 2xx without a message id")
        return str(body["id"])
