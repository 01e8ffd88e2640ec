"""Notion: one page per alert in `alerts.notion_database_id`, reconciled by querying the alert id first.

Before every create the database is queried for a page whose `Alert ID` equals the alert's id; a page
found (an earlier attempt whose answer was lost) is the delivery. This makes Notion exactly-once even in
the lost-response window (up to Notion's query consistency). 409 `conflict_error` and 5xx are retried,
400 `validation_error` is not. The database needs these properties (name: type): Name: title,
Alert ID: rich_text, Symbol / Timeframe / Direction / Archetype / Status: select, Score / Entry low /
Entry high / Stop / Target / R:R / Invalidation: number, Invalidation kind / Reasons / Chart: rich_text,
Bar time: date.
"""

from __future__ import annotations

from pathlib import Path

from apex_rotation.config import AlertsConfig
from apex_rotation.exec.alerts.channels import Checkpoint
from apex_rotation.exec.alerts.http import Http, Unacknowledged
from apex_rotation.exec.alerts.model import Alert

NOTION_VERSION = "2022-06-28"
ALERT_ID_PROPERTY = "Alert ID"
RICH_TEXT_MAX = 2000


def _text(value: str) -> dict:
    return {"rich_text": [{"text": {"content": value[:RICH_TEXT_MAX]}}]}


def properties(alert: Alert) -> dict:
    select = {"Symbol": alert.symbol, "Timeframe": alert.timeframe, "Direction": alert.direction}
    select |= {"Archetype": alert.archetype, "Status": alert.status}
    numbers = {"Score": alert.score, "Entry low": alert.entry_low, "Entry high": alert.entry_high}
    numbers |= {
        "Stop": alert.stop,
        "Target": alert.target,
        "R:R": alert.rr,
        "Invalidation": alert.invalidation,
    }
    return {
        "Name": {"title": [{"text": {"content": alert.title}}]},
        ALERT_ID_PROPERTY: _text(alert.alert_id),
        **{k: {"select": {"name": v}} for k, v in select.items()},
        **{k: {"number": float(v)} for k, v in numbers.items()},
        "Invalidation kind": _text(alert.invalidation_kind),
        "Reasons": _text("\n".join(alert.top_reasons)),
        "Chart": _text(alert.chart or ""),
        "Bar time": {"date": {"start": alert.bar_time.isoformat()}},
    }


class NotionChannel:
    name = "notion"
    reconciles = True

    def __init__(self, cfg: AlertsConfig, token: str, **http_kwargs):
        self.base = f"{cfg.notion_api_url.rstrip('/')}/v1"
        self.database_id = cfg.notion_database_id
        self.headers = {"Authorization": f"Bearer {token}", "Notion-Version": NOTION_VERSION}
        self.http = Http(
            "notion",
            [token],
            cfg.request_timeout_s,
            cfg.notion_min_interval_s,
            retryable_statuses=(409,),
            **http_kwargs,
        )

    def find(self, alert_id: str) -> str | None:
        body = self.http.post(
            f"{self.base}/databases/{self.database_id}/query",
            "query database",
            headers=self.headers,
            json={
                "filter": {"property": ALERT_ID_PROPERTY, "rich_text": {"equals": alert_id}},
                "page_size": 1,
            },
        )
        results = (body or {}).get("results") or []
        return str(results[0]["id"]) if results else None

    def deliver(
        self, alert: Alert, chart: Path | None, progress: dict, checkpoint: Checkpoint, maybe_delivered: bool
    ) -> str:
        if found := self.find(alert.alert_id):
            return found
        body = self.http.post(
            f"{self.base}/pages",
            "create page",
            headers=self.headers,
            json={"parent": {"database_id": self.database_id}, "properties": properties(alert)},
        )
        if not isinstance(body, dict) or "id" not in body:
            raise Unacknowledged("notion create page: 2xx without a page id")
        return str(body["id"])
