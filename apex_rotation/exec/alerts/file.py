"""The offline default channel: one JSON line per alert in `<root>/alerts/alerts.jsonl`, plus a console line.

The message id is the line's byte offset. An unacknowledged earlier attempt (killed between the append and
the outbox's acknowledgement) is reconciled by looking the alert id up in the file: exactly-once.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from apex_rotation.exec.alerts.channels import Checkpoint
from apex_rotation.exec.alerts.model import Alert
from apex_rotation.log import kv

log = logging.getLogger(__name__)
JSONL_FILE = "alerts.jsonl"


class FileChannel:
    name = "file"
    reconciles = True

    def __init__(self, root: str | Path):
        self.path = Path(root) / "alerts" / JSONL_FILE

    def find(self, alert_id: str) -> str | None:
        if not self.path.exists():
            return None
        offset = 0
        with self.path.open("rb") as fh:
            for line in fh:
                if alert_id.encode() in line and json.loads(line).get("alert_id") == alert_id:
                    return f"{JSONL_FILE}@{offset}"
                offset += len(line)
        return None

    def deliver(
        self, alert: Alert, chart: Path | None, progress: dict, checkpoint: Checkpoint, maybe_delivered: bool
    ) -> str:
        if maybe_delivered and (found := self.find(alert.alert_id)):
            return found
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (alert.model_dump_json() + "\n").encode()
        with self.path.open("ab") as fh:
            offset = fh.tell()
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
        log.info(
            "alert %s",
            alert.title,
            extra=kv(alert_id=alert.alert_id, status=alert.status, entry=alert.entry_zone, chart=alert.chart),
        )
        return f"{JSONL_FILE}@{offset}"
