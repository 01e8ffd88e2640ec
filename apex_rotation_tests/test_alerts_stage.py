"""The alerts stage and asset: fired scores → recorded alerts, charts and delivery of the recent ones only;
a missing `scores` table fails clearly; secrets never reach logs, errors, metadata, the outbox or the JSONL."""

from __future__ import annotations

import io
import json
import logging

import dagster as dg
import pandas as pd
import pytest

from apex_rotation import log as logsetup
from apex_rotation.config import load_config
from apex_rotation.defs.alert_assets import build_alert_assets
from apex_rotation.defs.resources import StoreResource
from apex_rotation.exec.alerts import AlertError
from apex_rotation.exec.alerts.stage import alert_problems, run_alerts
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import ALERTS, BASKET_KEY
from apex_rotation_tests import fake_channels as fc
from apex_rotation_tests.alert_fixtures import fired_every, signal, write_market, write_scores

SMALL = {"basket": {"symbols": ["BTC", "ETH", "SOL", "APT"]}, "synthetic": {"days": 45}}


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    root = tmp_path_factory.mktemp("market")
    cfg = load_config(overrides=SMALL)
    bars = write_market(cfg, ParquetStore(root), timeframes=("4h",))
    return root, {s: b["4h"] for s, b in bars.items() if s not in ("BTC", "ETH")}


@pytest.fixture
def store(market, tmp_path) -> ParquetStore:
    import shutil

    shutil.copytree(market[0], tmp_path / "data")
    return ParquetStore(tmp_path / "data")


def no_secret_env(monkeypatch):
    for var in ("APEX_TELEGRAM_BOT_TOKEN", "APEX_DISCORD_WEBHOOK_URL", "APEX_NOTION_TOKEN"):
        monkeypatch.delenv(var, raising=False)


def test_absent_scores_table_fails_clearly(store, monkeypatch):
    no_secret_env(monkeypatch)
    with pytest.raises(AlertError, match=r"scores table is absent .*materialize `scores` for 4h"):
        run_alerts(load_config(overrides=SMALL), store, "4h")


def test_history_is_recorded_and_only_recent_alerts_are_charted_and_delivered(store, market, monkeypatch):
    no_secret_env(monkeypatch)
    cfg = load_config(overrides=SMALL)
    signals = fired_every(market[1], "4h", every=20)
    last = market[1]["SOL"].index[-1]
    recent = [signal("SOL", "4h", last - pd.Timedelta("12h")), signal("APT", "4h", last, direction="short")]
    unfired = signal("APT", "4h", last - pd.Timedelta("4h"), fired=False)
    write_scores(store, "4h", [*signals, *recent, unfired])
    result = run_alerts(cfg, store, "4h")
    table = store.read(ALERTS, "4h", BASKET_KEY)
    assert len(table) == len(signals) + 2 and unfired.signal_id not in table.index
    due = table[table["bars_since"] <= cfg.alerts.deliver_within_bars]
    assert set(due.index) >= {s.signal_id for s in recent}
    assert len(result.due) == len(due)
    assert due["chart"].notna().all() and table.drop(due.index)["chart"].isna().all()
    assert all((store.root / c).exists() for c in due["chart"])
    html = (store.root / due["chart"].iloc[0]).read_text()
    assert (
        "TD sell setup" in html
        and "TDST BUY" in html
        and '"name":"BTC"' in html
        and '<script src="http' not in html
    )
    assert set(table["status"]) <= {
        "Waiting for retest",
        "Entry zone",
        "Invalidated",
        "Target hit",
        "Expired",
    }
    assert len(set(table["status"])) >= 3
    lines = (store.root / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert sorted(json.loads(x)["alert_id"] for x in lines) == sorted(due.index)
    assert alert_problems(store, "4h", cfg.alerts.deliver_within_bars) == []
    run_alerts(cfg, store, "4h")  # a rerun records again, delivers nothing twice
    assert len((store.root / "alerts" / "alerts.jsonl").read_text().splitlines()) == len(lines)


def test_alerts_asset_materializes_with_its_checks(store, market, monkeypatch):
    no_secret_env(monkeypatch)
    cfg = load_config(overrides=SMALL)
    last = market[1]["SOL"].index[-1]
    write_scores(store, "4h", [signal("SOL", "4h", last - pd.Timedelta("4h"))])
    (alerts,) = build_alert_assets(cfg)
    result = dg.materialize(
        [alerts], partition_key="4h", resources={"store": StoreResource(root=str(store.root))}
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"alerts_charts": True, "alerts_outbox": True}
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["by_timeframe"].value["4h"]["delivered_now"] == 1
    assert meta["outbox"].value == {"pending": 0, "sent": 1, "failed": 0}

    (store.root / "scores" / "4h" / "basket.parquet").unlink()
    failed = dg.materialize(
        [alerts],
        partition_key="4h",
        resources={"store": StoreResource(root=str(store.root))},
        raise_on_error=False,
    )
    assert not failed.success


def test_secrets_never_appear_in_logs_errors_metadata_outbox_or_jsonl(store, market, monkeypatch, tmp_path):
    """Every failure path at once (401 from a wrong URL, 400, 500s, dropped connections, a dead port)."""
    cfg_secrets = []
    stream = io.StringIO()
    with fc.FakeChannels() as srv:
        env = srv.env()
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        cfg_secrets = [*env.values(), fc.TELEGRAM_TOKEN, fc.DISCORD_TOKEN, fc.NOTION_TOKEN, fc.TELEGRAM_CHAT]
        srv.inject("sendMessage", fc.status(500), fc.drop(accept=False), *[fc.status(502)] * 5)
        srv.inject("discord", fc.status(400, body={"message": "Invalid Form Body", "code": 50035}))
        srv.inject("notion_query", fc.drop(accept=False), fc.status(401, body={"code": "unauthorized"}))
        overrides = {**SMALL, "alerts": srv.alerts_config(max_retries=2)}
        cfg = load_config(overrides=overrides)
        old = logging.getLogger("apex_rotation").handlers[:]
        logsetup.configure("json", "DEBUG", stream=stream)  # no secrets registered: the channels mask them
        try:
            last = market[1]["SOL"].index[-1]
            write_scores(store, "4h", [signal("SOL", "4h", last)])
            (alerts,) = build_alert_assets(cfg)
            result = dg.materialize(
                [alerts], partition_key="4h", resources={"store": StoreResource(root=str(store.root))}
            )
            dead = load_config(
                overrides={
                    "alerts": {**srv.alerts_config(max_retries=0), "telegram_api_url": "http://127.0.0.1:9"}
                }
            )
            with pytest.raises(AlertError) as raised:
                from apex_rotation.exec.alerts import send

                send(signal("APT", "4h", last), cfg=dead, store_root=tmp_path / "other")
        finally:
            logger = logging.getLogger("apex_rotation")
            logger.handlers = old
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["alerts_outbox"] is False  # the failures are there, reported
    texts = {
        "logs": stream.getvalue(),
        "error": str(raised.value),
        "metadata": json.dumps(
            {  # a table schema is a record Dagster refuses to iterate: its repr holds every name
                k: repr(v.value) if isinstance(v.value, dg.TableSchema) else v.value
                for k, v in result.get_asset_materialization_events()[0].materialization.metadata.items()
            },
            default=str,
        ),
        "check metadata": json.dumps(
            [{k: v.value for k, v in e.metadata.items()} for e in result.get_asset_check_evaluations()],
            default=str,
        ),
    }
    for folder in (store.root, tmp_path / "other"):
        for path in folder.rglob("*"):
            if path.is_file() and (path.suffix in (".sqlite", ".jsonl", ".parquet") or "sqlite" in path.name):
                texts[str(path)] = path.read_bytes().decode("latin-1")
    assert (
        "HTTP 500" in texts["logs"]
        and "HTTP 400" in texts["metadata"]
        and "ConnectionError" in texts["error"]
    )
    for name, text in texts.items():
        for secret in cfg_secrets:
            assert secret not in text, f"a secret leaked into {name}"
