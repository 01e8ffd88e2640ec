"""The `apex` command line, run in-process on a small synthetic basket."""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from apex_rotation.cli import main, refresh_main
from apex_rotation.config import DEFAULT_CONFIG_PATH

REQUIRED_AUDIT_KEYS = {
    "symbol",
    "timeframe",
    "rows",
    "expected",
    "missing",
    "missing_pct",
    "duplicates",
    "misaligned",
    "zero_volume",
    "first",
    "last",
}


@pytest.fixture(scope="module")
def small_config(tmp_path_factory) -> str:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = ["BTC", "ETH", "SOL", "APT"]
    raw["synthetic"]["days"] = 90
    path = tmp_path_factory.mktemp("cli") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_refresh_prints_row_counts_and_audit_json(small_config, tmp_path, capsys):
    store = str(tmp_path / "store")
    assert (
        main(["refresh", "--config", small_config, "--store", store, "--symbols", "btc,SOL", "--quiet"]) == 0
    )
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert lines["BTC"][1:4] == ["2160", "540", "90"] and lines["SOL"][4] == "2160"
    assert "ETH" not in lines and "source=synthetic" in out

    assert main(["audit", "--json", "--config", small_config, "--store", store]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [(r["symbol"], r["timeframe"]) for r in reports] == [
        (s, tf) for s in ("BTC", "SOL") for tf in ("1h", "4h", "1d")
    ]
    assert all(set(r) >= REQUIRED_AUDIT_KEYS for r in reports)
    assert reports[0]["rows"] == reports[0]["expected"] == 2160 and reports[0]["missing_pct"] == 0.0
    written = json.loads((tmp_path / "store" / "reports" / "audit.json").read_text())
    assert written == reports


def test_refresh_script_is_apex_refresh(small_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        sys, "argv", ["refresh", "--config", small_config, "--store", str(tmp_path), "--symbols", "ETH"]
    )
    assert refresh_main() == 0
    assert "ETH" in capsys.readouterr().out


def test_bad_arguments_fail_fast_with_a_clear_message(small_config, tmp_path, capsys):
    assert main(["refresh", "--config", small_config, "--store", str(tmp_path), "--symbols", "PEPE"]) == 2
    assert "PEPE" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["market_filters"]["volume_x"] = -1
    bad.write_text(yaml.safe_dump(raw))
    assert main(["refresh", "--config", str(bad), "--store", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "market_filters.volume_x" in err and str(bad) in err
    assert main(["audit", "--config", small_config, "--store", str(tmp_path / "empty")]) == 1


def test_run_materializes_everything_and_prints_tables(small_config, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("APEX_CONFIG", "/nonexistent")  # --config decides; nothing builds a default config
    assert main(["run", "--config", small_config, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for asset in ("bars", "audited_bars", "features", "td_state", "rotation_candidates", "confirmations"):
        assert (tmp_path / asset).is_dir(), asset
    for asset in ("scores", "alerts", "sim_trades", "scanner_quality"):
        assert (tmp_path / asset / "4h" / "basket.parquet").is_file(), asset
    # live first, then recent alerts with their dry-run outcome, the batch summary, then the scanner
    order = [
        out.index("Live now (as of 2025-12-31 20:00 UTC): no open alert"),
        out.index("Recent alerts and their dry-run outcome (last 5)"),
        out.index("By archetype (dry-run trades, fees/slippage/funding included) — synthetic market"),
        out.index("Rotation scanner: the latest LAGGING_ROTATION candidates per timeframe"),
    ]
    assert order == sorted(order)
    assert "  4h  SOL     rotation         long  2025-12-18 12:00    7.5  Target hit   1.20  target" in out
    assert "[4h] data through 2025-12-31T20:00:00+00:00: 3 candidates in history" in out
    assert "vs planted ground truth (synthetic market only): precision=1.0 recall=1.0" in out
    assert "not a trigger timeframe" in out and out.count("confirmed: volume_spike AND breakout") == 3
    assert "  2025-12-18 04:00  SOL     ETH   +4.9%      -1.0%      0.84  2.03  HIGH      confirmed +2" in out
    assert f"{tmp_path}/confirmations/<tf>/basket.parquet" in out


def test_alerts_and_trades_trace_an_alert_to_its_trade(small_config, tmp_path, capsys):
    """`apex alerts` prints one day's alerts with every reason; `apex trades --alert` traces one to its PnL."""
    import pandas as pd

    from apex_rotation.store.parquet import ParquetStore

    assert main(["run", "--config", small_config, "--store", str(tmp_path)]) == 0
    capsys.readouterr()
    assert main(["alerts", "--config", small_config, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 alert(s) on 2025-12-18 (bar times UTC)")
    assert "narrative engine not enabled" in out and "invalidation:" in out
    assert main(["alerts", "--config", small_config, "--store", str(tmp_path), "--day", "2025-12-02"]) == 0
    assert "td/countdown_13 pass +4.0" in capsys.readouterr().out
    assert main(["alerts", "--config", small_config, "--store", str(tmp_path), "--day", "2025-12-18"]) == 0
    assert "SOL     rotation" in capsys.readouterr().out
    assert main(["alerts", "--config", small_config, "--store", str(tmp_path), "--day", "last friday"]) == 2
    assert "--day 'last friday'" in capsys.readouterr().err

    store = ParquetStore(tmp_path)
    alerts = store.read("alerts", "4h", "basket").reset_index()
    trades = store.read("sim_trades", "4h", "basket")
    assert sorted(alerts["alert_id"]) == sorted(trades["alert_id"])  # every alert has its trade, and back
    sol = alerts[(alerts["symbol"] == "SOL") & (alerts["archetype"] == "rotation")].iloc[-1]
    assert (
        main(["trades", "--config", small_config, "--store", str(tmp_path), "--alert", sol["alert_id"]]) == 0
    )
    out = capsys.readouterr().out
    trade = trades[trades["alert_id"] == sol["alert_id"]].iloc[0]
    assert f"alert_id {sol['alert_id']}" in out and "exit reason target" in out
    assert f"{trade['pnl_pct']:+.2f} % = {trade['pnl_r']:+.2f} R" in out
    assert pd.Timestamp(trade["entry_time"]) > pd.Timestamp(sol["bar_time"])  # filled after the signal bar
    assert main(["trades", "--config", small_config, "--store", str(tmp_path), "--alert", "nope"]) == 2


def test_run_with_a_basket_without_eth(tmp_path, capsys):
    """BTC as the only apex asset: ETH's corr/beta columns are NaN, everything else runs."""
    from apex_rotation.features import load

    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"] = {"symbols": ["BTC", "SOL", "APT"], "apex_assets": ["BTC"], "quote": "USDT"}
    raw["synthetic"]["days"] = 60
    path = tmp_path / "btc_only.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["run", "--config", str(path), "--store", str(tmp_path / "store")]) == 0
    features = load("SOL", "4h", root=tmp_path / "store")
    assert features["corr_eth_14"].isna().all() and features["corr_btc_14"].notna().sum() > 200
