"""One logging configuration for the CLI and Dagster: key=value or JSON lines, secrets redacted.

Redaction works on the final text of every record (message, arguments and exception), so a secret that
reaches a log line by any path, a URL with a bot token in an exception included, comes out as `***`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

REDACTED = "***"
# Shapes of secrets worth masking even when they are not in the environment: Telegram bot tokens
# (`123456:AA…`), Discord webhook paths, bearer tokens.
_SECRET_PATTERNS = [
    re.compile(r"(?<![0-9])\d{6,12}:[A-Za-z0-9_-]{30,}"),
    re.compile(r"(discord(?:app)?\.com/api/webhooks/)[^\s\"']+"),
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"),
]


class Redactor:
    """Masks known secret values and secret-shaped strings."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        for pattern in _SECRET_PATTERNS:
            text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + REDACTED, text)
        return text


_redactor = Redactor()


def set_secrets(secrets: Iterable[str]) -> None:
    """Register secret values (from the environment) so every handler masks them."""
    global _redactor
    _redactor = Redactor([*_redactor.secrets, *secrets])


def redact(text: str) -> str:
    return _redactor(text)


def redact_obj(value):
    """Redact every string inside a JSON-like value (for Dagster metadata and reports)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_obj(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_obj(v) for v in value)
    return value


def _quote(value: object) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' ="\n')) else text


class _BaseFormatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        out: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in getattr(record, "kv", {}).items():
            out[key] = redact_obj(value)
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return out


class KeyValueFormatter(_BaseFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_quote(v)}" for k, v in self.fields(record).items())


class JsonFormatter(_BaseFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str)


class RedactingFilter(logging.Filter):
    """For handlers we do not own (Dagster's): rewrite the record's text with secrets masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = ()
        return True


def configure(fmt: str = "kv", level: str = "INFO", stream=None, secrets: Iterable[str] = ()) -> None:
    """Configure the `apex_rotation` logger tree once for CLI and Dagster alike (idempotent)."""
    set_secrets(secrets)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else KeyValueFormatter())
    root = logging.getLogger("apex_rotation")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    root.propagate = False


def is_configured() -> bool:
    return bool(logging.getLogger("apex_rotation").handlers)


def kv(**fields: object) -> dict[str, dict[str, object]]:
    """Structured fields for one record: `log.info("refreshed", extra=kv(symbol="BTC", rows=10))`."""
    return {"kv": fields}
