"""The durable outbox: one SQLite row per (alert_id, channel), written before the first attempt.

States: `pending` → `sent` (with the provider's message id) or `failed` (with the last error, redacted).
`inflight` is set (and committed) just before a request leaves and cleared when its outcome is known, so a
row found pending with `inflight = 1` is the one window no provider closes: the request may have been
delivered and the process died (or the response was lost) before it was acknowledged. What happens to it
is the channel's policy (`delivery.py`). `progress` keeps the steps of a multi-request delivery (Telegram's
message before its document) so a resumed row never repeats an acknowledged step.

WAL mode, one short transaction per state change, `synchronous=FULL`: a kill -9 at any point leaves the
last committed state. Nothing secret is stored: the payload is the alert, errors are redacted.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from apex_rotation.exec.alerts.model import Alert
from apex_rotation.log import redact

OUTBOX_FILE = "outbox.sqlite"
STATES = ("pending", "sent", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    alert_id        TEXT NOT NULL,
    channel         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    timeframe       TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    inflight        INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    message_id      TEXT,
    progress        TEXT NOT NULL DEFAULT '{}',
    last_error      TEXT,
    payload         TEXT NOT NULL,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    PRIMARY KEY (alert_id, channel)
)
"""


def idempotency_key(alert_id: str, channel: str) -> str:
    """The key of one delivery: stable across retries, reruns and restarts."""
    return hashlib.sha256(f"{alert_id}|{channel}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class OutboxRow:
    alert_id: str
    channel: str
    idempotency_key: str
    timeframe: str
    state: str
    inflight: bool
    attempts: int
    message_id: str | None
    progress: dict
    last_error: str | None
    payload: str

    def alert(self) -> Alert:
        return Alert.model_validate_json(self.payload)


class Outbox:
    """The outbox file under the store (`<root>/alerts/outbox.sqlite`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    @classmethod
    def under(cls, root: str | Path) -> Outbox:
        return cls(Path(root) / "alerts" / OUTBOX_FILE)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def enqueue(self, alert: Alert, channels: list[str]) -> None:
        """A pending row per channel, unless the (alert, channel) row exists (then it is left as it is)."""
        now = time.time()
        payload = alert.model_dump_json()
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO outbox (alert_id, channel, idempotency_key, timeframe, state, payload, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                [
                    (
                        alert.alert_id,
                        ch,
                        idempotency_key(alert.alert_id, ch),
                        alert.timeframe,
                        payload,
                        now,
                        now,
                    )
                    for ch in channels
                ],
            )

    def get(self, alert_id: str, channel: str) -> OutboxRow | None:
        row = self._db.execute(
            "SELECT * FROM outbox WHERE alert_id = ? AND channel = ?", (alert_id, channel)
        ).fetchone()
        return None if row is None else _row(row)

    def unfinished(self, channels: list[str], timeframe: str | None = None) -> list[OutboxRow]:
        """Rows still to deliver on these channels, oldest first: pending ones, and failed ones an earlier run
        gave up on (a fresh retry budget), except those failed as unacknowledged (`on_unacknowledged: fail`:
        they may have been delivered, so they are never resent)."""
        marks = ",".join("?" * len(channels))
        sql = (
            "SELECT * FROM outbox WHERE (state = 'pending' OR (state = 'failed' AND inflight = 0)) "
            f"AND channel IN ({marks})"
        )
        args: list = list(channels)
        if timeframe is not None:
            sql += " AND timeframe = ?"
            args.append(timeframe)
        return [_row(r) for r in self._db.execute(sql + " ORDER BY created_at, alert_id, channel", args)]

    def rows(self) -> list[OutboxRow]:
        return [
            _row(r) for r in self._db.execute("SELECT * FROM outbox ORDER BY created_at, alert_id, channel")
        ]

    def counts(self) -> dict[str, int]:
        got = dict(self._db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall())
        return {s: int(got.get(s, 0)) for s in STATES}

    # -- state changes (each one committed on its own) -------------------------------------------
    def begin_attempt(self, alert_id: str, channel: str) -> None:
        self._update(alert_id, channel, "inflight = 1, attempts = attempts + 1")

    def not_delivered(self, alert_id: str, channel: str, error: str, *, inflight: bool = False) -> None:
        """The provider answered and did not take it: keep the error; `inflight` stays set only when an
        earlier attempt of this row is still unacknowledged."""
        self._update(alert_id, channel, "inflight = ?, last_error = ?", int(inflight), redact(error))

    def checkpoint(self, alert_id: str, channel: str, progress: dict) -> None:
        self._update(alert_id, channel, "progress = ?", json.dumps(progress))

    def mark_sent(self, alert_id: str, channel: str, message_id: str) -> None:
        self._update(alert_id, channel, "state = 'sent', inflight = 0, message_id = ?", str(message_id))

    def mark_failed(self, alert_id: str, channel: str, error: str, *, inflight: bool = False) -> None:
        self._update(
            alert_id, channel, "state = 'failed', inflight = ?, last_error = ?", int(inflight), redact(error)
        )

    def _update(self, alert_id: str, channel: str, assignments: str, *args) -> None:
        with self._db:
            self._db.execute(
                f"UPDATE outbox SET {assignments}, updated_at = ? WHERE alert_id = ? AND channel = ?",
                (*args, time.time(), alert_id, channel),
            )


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(
        alert_id=r["alert_id"],
        channel=r["channel"],
        idempotency_key=r["idempotency_key"],
        timeframe=r["timeframe"],
        state=r["state"],
        inflight=bool(r["inflight"]),
        attempts=int(r["attempts"]),
        message_id=r["message_id"],
        progress=json.loads(r["progress"] or "{}"),
        last_error=r["last_error"],
        payload=r["payload"],
    )
