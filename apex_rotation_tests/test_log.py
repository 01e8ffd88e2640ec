from __future__ import annotations

import io
import json
import logging

from apex_rotation import log as logsetup

TOKEN = "123456789:AAHfakeTokenfakeTokenfakeTokenfakeToken"


def _capture(fmt: str, secrets=()) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logsetup.configure(fmt, "INFO", stream=stream, secrets=secrets)
    return logging.getLogger("apex_rotation.test"), stream


def test_key_value_lines_carry_fields_and_mask_secrets():
    logger, stream = _capture("kv", secrets=["hunter2-webhook-secret"])
    logger.info("posting to %s", "https://x/hunter2-webhook-secret", extra=logsetup.kv(symbol="SOL", rows=3))
    line = stream.getvalue().strip()
    assert "level=info" in line and "symbol=SOL" in line and "rows=3" in line
    assert "hunter2-webhook-secret" not in line and "***" in line


def test_json_lines_and_secret_shapes_in_exceptions():
    logger, stream = _capture("json")
    try:
        raise RuntimeError(f"POST https://api.telegram.org/bot{TOKEN}/sendMessage failed")
    except RuntimeError:
        logger.exception("alert failed", extra=logsetup.kv(url=f"https://discord.com/api/webhooks/1/{TOKEN}"))
    record = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert record["msg"] == "alert failed" and record["level"] == "error"
    text = json.dumps(record)
    assert "AAHfakeToken" not in text
    assert "api/webhooks/***" in record["url"]


def test_redact_obj_walks_metadata():
    logsetup.set_secrets(["s3cr3t-value"])
    out = logsetup.redact_obj({"a": ["x s3cr3t-value", 1], "b": {"c": "s3cr3t-value"}})
    assert out == {"a": ["x ***", 1], "b": {"c": "***"}}
