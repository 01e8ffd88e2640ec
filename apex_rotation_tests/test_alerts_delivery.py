"""Delivery through the outbox against Telegram, Discord and Notion played on 127.0.0.1 (fake_channels.py):
retries honouring Retry-After, 5xx, timeouts, dropped connections, kill -9 mid-batch, and the exactly-once
policy with its named exception (the lost-response window on Telegram/Discord)."""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, load_config
from apex_rotation.exec.alerts import Alert, AlertError, Delivery, build_alert, send
from apex_rotation.exec.alerts.file import FileChannel
from apex_rotation.exec.alerts.outbox import Outbox, idempotency_key
from apex_rotation_tests import fake_channels as fc
from apex_rotation_tests.alert_fixtures import signal

PROJECT = Path(__file__).resolve().parent.parent
T0 = datetime(2025, 12, 30, 12, tzinfo=UTC)
CHANNELS = ("telegram", "discord", "notion")


class Sleeps(list):
    """Records the waits instead of sleeping (retry waits and pacing)."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server():
    with fc.FakeChannels() as srv:
        yield srv


@pytest.fixture
def env(server, monkeypatch):
    for key, value in server.env().items():
        monkeypatch.setenv(key, value)
    return server.env()


def make_alerts(n: int, root: Path | None = None) -> list[Alert]:
    out = []
    for i in range(n):
        sig = signal(symbol=f"ALT{i}", bar_time=T0 + timedelta(hours=4 * i))
        chart = None
        if root is not None:
            chart = f"charts/4h/ALT{i}.html"
            (root / chart).parent.mkdir(parents=True, exist_ok=True)
            (root / chart).write_text("<html>chart</html>")
        out.append(build_alert(sig, sig_bars_none(), expiry_bars=6, chart=chart))
    return out


def sig_bars_none():
    import pandas as pd

    return pd.DataFrame(
        columns=["open", "high", "low", "close", "volume"], index=pd.DatetimeIndex([], tz="UTC")
    )


def deliver(server, root: Path, alerts: list[Alert], sleeps=None, **overrides):
    cfg = load_config(overrides={"alerts": server.alerts_config(**overrides)})
    with Delivery(cfg, root, sleep=sleeps if sleeps is not None else Sleeps()) as d:
        assert d.channel_names == ["telegram", "discord", "notion"]
        return d.deliver(alerts)


def outbox_rows(root: Path):
    with Outbox.under(root) as ob:
        return ob.rows()


def assert_once_everywhere(server, alerts):
    ids = [a.alert_id for a in alerts]
    for channel in CHANNELS:
        assert server.counts(channel) == dict.fromkeys(ids, 1), channel


def test_every_channel_gets_each_alert_once_and_a_rerun_sends_nothing(server, env, tmp_path):
    alerts = make_alerts(3, tmp_path)
    report = deliver(server, tmp_path, alerts)
    assert (report.sent, report.failed) == (9, 0)
    assert_once_everywhere(server, alerts)
    # Telegram: the chart as a document replying to the message; Discord: the chart attached, wait=true
    assert server.counts("telegram", "document") == {a.alert_id: 1 for a in alerts}
    docs = [a.body for a in server.accepted if a.kind == "document"]
    assert all(d["files"][0]["filename"].endswith(".html") and d["reply_to_message_id"] for d in docs)
    discord = [a.body for a in server.accepted if a.channel == "discord"]
    assert all(d["files"][0]["field"] == "files[0]" for d in discord)
    assert discord[0]["embeds"][0]["footer"]["text"] == f"alert {alerts[0].alert_id}"
    pages = [a.body for a in server.accepted if a.channel == "notion"]
    assert pages[0]["properties"]["Status"] == {"select": {"name": "Waiting for retest"}}
    rows = outbox_rows(tmp_path)
    assert {r.state for r in rows} == {"sent"} and all(r.message_id for r in rows)
    assert rows[0].idempotency_key == idempotency_key(rows[0].alert_id, rows[0].channel)
    before = len(server.requests)
    assert deliver(server, tmp_path, alerts).sent == 0  # a rerun of the asset: nothing is sent again
    assert len(server.requests) == before


def test_rate_limits_and_server_errors_are_retried_honouring_retry_after(server, env, tmp_path):
    server.inject("sendMessage", fc.telegram_429(3), fc.status(500))
    server.inject("discord", fc.status(429, retry_after="0.25", body={"retry_after": 0.25, "global": False}))
    server.inject(
        "discord", fc.status(429, body={"message": "You are being rate limited.", "retry_after": 0.4})
    )
    server.inject(
        "notion_pages", fc.status(429, retry_after=2, body={"code": "rate_limited"}), fc.status(502)
    )
    server.inject("notion_query", fc.status(409, body={"code": "conflict_error"}))
    sleeps = Sleeps()
    alerts = make_alerts(2)
    report = deliver(server, tmp_path, alerts, sleeps)
    assert (report.sent, report.failed) == (6, 0)
    assert_once_everywhere(server, alerts)
    for wait in (3.0, 0.25, 0.4, 2.0):  # header form, Telegram's body form, Discord's body form
        assert wait in sleeps


def test_a_timeout_before_the_provider_took_it_is_resent_once(server, env, tmp_path):
    for route in ("sendMessage", "discord", "notion_pages"):
        server.inject(route, fc.slow(1.5, accept=False))
    server.inject("notion_query", fc.drop(accept=False))
    alerts = make_alerts(2)
    assert deliver(server, tmp_path, alerts).sent == 6
    assert_once_everywhere(server, alerts)


@pytest.mark.parametrize(
    "lost", [fc.drop(accept=True), fc.slow(1.5, accept=True)], ids=["dropped", "timeout"]
)
def test_lost_response_policy_resend_is_at_least_once_on_telegram_and_discord(server, env, tmp_path, lost):
    """The named exception: delivered, response lost. Telegram/Discord cannot be asked, so `resend` sends
    again (the same alert id marks the duplicate); Notion is reconciled by query: once."""
    for route in ("sendMessage", "discord", "notion_pages"):
        server.inject(route, lost)
    alerts = make_alerts(2)
    first = alerts[0].alert_id
    assert deliver(server, tmp_path, alerts).sent == 6
    for channel in ("telegram", "discord"):
        assert server.counts(channel) == {first: 2, alerts[1].alert_id: 1}
    assert server.counts("notion") == {a.alert_id: 1 for a in alerts}
    assert {r.state for r in outbox_rows(tmp_path)} == {"sent"}


def test_lost_response_policy_fail_is_at_most_once(server, env, tmp_path):
    for route in ("sendMessage", "discord", "notion_pages"):
        server.inject(route, fc.drop(accept=True))
    alerts = make_alerts(2)
    report = deliver(server, tmp_path, alerts, on_unacknowledged="fail")
    assert (report.sent, report.failed) == (4, 2)
    assert_once_everywhere(server, alerts)
    failed = [r for r in outbox_rows(tmp_path) if r.state == "failed"]
    assert {(r.alert_id, r.channel) for r in failed} == {
        (alerts[0].alert_id, c) for c in ("telegram", "discord")
    }
    assert all(r.inflight and "not resent" in r.last_error for r in failed)
    before = len(server.requests)
    deliver(server, tmp_path, alerts, on_unacknowledged="fail")  # a rerun never resends them
    assert len(server.requests) == before
    assert_once_everywhere(server, alerts)


def test_a_rejected_message_fails_without_retries_and_the_next_run_delivers_it(server, env, tmp_path):
    server.inject("discord", fc.status(400, body={"message": "Invalid Form Body", "code": 50035}))
    alerts = make_alerts(1)
    report = deliver(server, tmp_path, alerts)
    assert (report.sent, report.failed) == (2, 1)
    assert server.route_count("discord") == 1  # not retried within the run
    (row,) = [r for r in outbox_rows(tmp_path) if r.channel == "discord"]
    assert row.state == "failed" and "HTTP 400" in row.last_error and not row.inflight
    assert deliver(server, tmp_path, alerts).sent == 1
    assert_once_everywhere(server, alerts)


def test_telegram_resumes_at_the_document_without_resending_the_message(server, env, tmp_path):
    server.inject("sendDocument", *[fc.status(500)] * 5)  # max_retries=4: five tries, then failed
    alerts = make_alerts(1, tmp_path)
    assert deliver(server, tmp_path, alerts).failed == 1
    (row,) = [r for r in outbox_rows(tmp_path) if r.channel == "telegram"]
    assert row.state == "failed" and "message_id" in row.progress
    assert deliver(server, tmp_path, alerts).sent == 1
    assert server.counts("telegram") == {alerts[0].alert_id: 1}
    assert server.counts("telegram", "document") == {alerts[0].alert_id: 1}


def test_the_file_channel_reconciles_a_line_written_before_a_crash(tmp_path):
    cfg = load_config()
    alert = make_alerts(1)[0]
    channel = FileChannel(tmp_path)
    with Outbox.under(tmp_path) as ob:
        ob.enqueue(alert, ["file"])
        ob.begin_attempt(alert.alert_id, "file")
    channel.deliver(alert, None, {}, lambda p: None, maybe_delivered=False)  # appended, then "killed"
    with Delivery(cfg, tmp_path, channels=[channel]) as d:
        report = d.resume()
    assert (report.sent, report.reconciled) == (1, 1)
    assert len(channel.path.read_text().splitlines()) == 1


def test_send_without_secrets_writes_the_jsonl_and_a_console_line(tmp_path, monkeypatch, caplog):
    for var in ("APEX_TELEGRAM_BOT_TOKEN", "APEX_DISCORD_WEBHOOK_URL", "APEX_NOTION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    cfg = load_config()
    sig = signal()
    with caplog.at_level("INFO", logger="apex_rotation"):
        send(sig, cfg=cfg, store_root=tmp_path)
        send(sig, cfg=cfg, store_root=tmp_path)  # the same alert again: not delivered twice
    lines = (tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["alert_id"] == sig.signal_id
    assert any(sig.signal_id in str(getattr(r, "kv", "")) for r in caplog.records)
    chart = tmp_path / json.loads(lines[0])["chart"]
    assert chart.exists() and chart.stat().st_size > 1_000_000  # self-contained: plotly.js inlined


def test_send_raises_when_a_channel_fails(server, env, tmp_path):
    server.inject("notion_pages", fc.status(400, body={"code": "validation_error"}))
    cfg = load_config(overrides={"alerts": server.alerts_config()})
    with pytest.raises(AlertError, match="notion"):
        send(make_alerts(1)[0], cfg=cfg, store_root=tmp_path)


# ------------------------------------------------------------------------------------------ kill -9

SENDER = """
import sys
from apex_rotation.config import load_config
from apex_rotation.exec.alerts import Alert, Delivery
cfg = load_config(sys.argv[1])
alerts = [Alert.model_validate_json(line) for line in open(sys.argv[2])]
with Delivery(cfg, sys.argv[3]) as delivery:
    delivery.deliver(alerts)
"""


def _sender(tmp_path: Path, server, env, alerts) -> list[str]:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["alerts"] = {**raw["alerts"], **server.alerts_config()}
    cfg_path, alerts_path = tmp_path / "cfg.yaml", tmp_path / "alerts.jsonl"
    cfg_path.write_text(yaml.safe_dump(raw))
    alerts_path.write_text("".join(a.model_dump_json() + "\n" for a in alerts))
    return [sys.executable, "-c", SENDER, str(cfg_path), str(alerts_path), str(tmp_path / "store")]


@pytest.mark.parametrize(
    ("route", "accept", "duplicated"),
    [("sendMessage", False, None), ("sendMessage", True, "telegram"), ("notion_pages", True, None)],
    ids=["killed-before-accept", "killed-after-accept-telegram", "killed-after-accept-notion"],
)
def test_kill_9_mid_batch_then_restart_resumes_from_the_outbox(
    server, env, tmp_path, route, accept, duplicated
):
    alerts = make_alerts(5)
    server.inject(route, fc.ok(), fc.ok(), fc.hold(accept=accept))  # the third alert's request hangs
    cmd = _sender(tmp_path, server, env, alerts)
    proc = subprocess.Popen(cmd, cwd=PROJECT, env={**os.environ, **env})
    try:
        assert server.held.wait(120), "the sender never reached the held request"
    finally:
        os.kill(proc.pid, signals.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signals.SIGKILL
    rows = outbox_rows(tmp_path / "store")
    assert len(rows) == 15  # every row was written before the first attempt
    assert any(r.inflight for r in rows) and any(r.state == "pending" for r in rows)
    subprocess.run(cmd, cwd=PROJECT, env={**os.environ, **env}, check=True, timeout=120)
    assert {r.state for r in outbox_rows(tmp_path / "store")} == {"sent"}
    third = alerts[2].alert_id
    for channel in CHANNELS:
        expected = {a.alert_id: 1 for a in alerts}
        if channel == duplicated:  # at-least-once in the lost-response window, by policy
            expected[third] = 2
        assert server.counts(channel) == expected, channel
