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


def test_run_materializes_everything_and_prints_candidates(small_config, tmp_path, capsys):
    assert main(["run", "--config", small_config, "--store", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Latest rotation candidates" in out and "[4h]" in out and "[1d]" in out
    for asset in ("bars", "audited_bars", "features", "td_state", "rotation_candidates", "confirmations"):
        assert (tmp_path / asset).is_dir(), asset
    assert f"{tmp_path}/confirmations/<tf>/basket.parquet" in out
    assert "[4h] data through 2025-12-31T20:00:00+00:00: 3 candidates in history" in out
    assert "vs planted ground truth: precision=1.0 recall=1.0" in out and "not a trigger timeframe" in out
    records = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]
    assert {r["status"] for r in records} == {"LAGGING_ROTATION"} and len(records) == 3
    assert set(records[0]) >= {
        "symbol",
        "apex_asset",
        "apex_move",
        "coin_move",
        "correlation",
        "beta",
        "signal_strength",
        "bar_time",
        "timeframe",
    }
    assert out.count("confirmed at") == 3 and "volume_spike: volume" in out


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
