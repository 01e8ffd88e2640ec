"""The Dagster layer: definitions load, batched runs over every partition, checks, schedules, sensors, UI."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, load_config
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB, bar_close_run_request
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.runner import QUIET, full_range_tags
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation.store.parquet import ParquetStore
from apex_rotation_tests.services import stop_group

PROJECT = Path(__file__).resolve().parent.parent
SYMBOLS = ["BTC", "ETH", "SOL", "APT"]
ALL_ASSETS = {
    "backtest_report",
    "bars",
    "audited_bars",
    "features",
    "td_state",
    "rotation_candidates",
    "confirmations",
    "scanner_quality",
    "scores",
    "alerts",
    "sim_trades",
}


@pytest.fixture(scope="module")
def small_config_path(tmp_path_factory) -> str:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = SYMBOLS
    raw["synthetic"]["days"] = 90
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _run(defs, job: str, tags: dict) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags=tags,
        raise_on_error=False,
        run_config=QUIET,
    )


def test_definitions_load_with_the_whole_graph():
    from apex_rotation.definitions import defs as load_defs

    defs = load_defs()
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == ALL_ASSETS
    features = graph.get(dg.AssetKey("features"))
    assert len(features.partitions_def.get_partition_keys()) == 17 * 3
    assert {s.name for s in defs.schedules} == {"data_at_1h_close", "data_at_4h_close", "data_at_1d_close"}
    assert {s.name for s in defs.sensors} == {"signals_when_fresh"}
    # features[SOL|4h] depends on audited_bars of SOL, BTC and ETH at 4h
    upstream = graph.get_parents_partitions(
        dg.AssetKey("features"), dg.MultiPartitionKey({"symbol": "SOL", "timeframe": "4h"})
    ).parent_partitions
    assert {(p.asset_key.to_user_string(), str(p.partition_key)) for p in upstream} == {
        ("audited_bars", "SOL|4h"),
        ("audited_bars", "BTC|4h"),
        ("audited_bars", "ETH|4h"),
    }


def test_all_partitions_in_two_runs_with_checks(small_config_path, tmp_path):
    cfg = load_config(small_config_path)
    defs = build_definitions(cfg, store_root=str(tmp_path))
    data = _run(defs, DATA_JOB, full_range_tags("BTC|1h", "APT|1d"))
    assert data.success
    materialized = [e.asset_key.to_user_string() for e in data.get_asset_materialization_events()]
    assert {k: materialized.count(k) for k in set(materialized)} == {
        "bars": 12,
        "audited_bars": 12,
        "features": 12,
        "td_state": 12,
    }
    checks = {e.check_name: e.passed for e in data.get_asset_check_evaluations()}
    assert checks == {
        "bars_schema": True,
        "audited_bars_schema": True,
        "audited_bars_missing": True,
        "features_invariants": True,
        "td_state_invariants": True,
    }
    signals = _run(defs, SIGNALS_JOB, full_range_tags("1h", "1d"))
    assert signals.success
    store = ParquetStore(tmp_path)
    assert store.exists("rotation_candidates", "4h", "basket") and store.exists(
        "confirmations", "1d", "basket"
    )
    assert store.read("features", "4h", "APT")["corr_eth_14"].notna().sum() > 0
    gates = [e for e in signals.get_asset_check_evaluations() if e.check_name == "rotation_candidates_gates"]
    assert gates and all(e.passed for e in gates)


def test_bad_bars_are_never_written_as_audited_bars(small_config_path, tmp_path, monkeypatch):
    real = SyntheticSource.fetch_ohlcv

    def corrupt(self, symbol, timeframe, since, until):
        raw = real(self, symbol, timeframe, since, until)
        raw.loc[raw.index[10], "close"] = -1.0  # a negative price
        return raw

    monkeypatch.setattr(SyntheticSource, "fetch_ohlcv", corrupt)
    cfg = load_config(small_config_path)
    defs = build_definitions(cfg, store_root=str(tmp_path))
    result = _run(defs, DATA_JOB, full_range_tags("BTC|1h", "APT|1d"))
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert (
        "BTC" in str(failure.event_specific_data.error)
        and "negative" in str(failure.event_specific_data.error).lower()
    )
    assert not any(ParquetStore(tmp_path).partitions("audited_bars"))


def test_one_data_run_per_bar_close_for_every_symbol_and_the_timeframes_that_closed():
    from apex_rotation.definitions import defs as load_defs

    defs = load_defs()
    schedules = {s.name: s for s in defs.schedules}
    crons = {name: (s.cron_schedule, s.execution_timezone) for name, s in schedules.items()}
    assert crons == {
        "data_at_1h_close": ("2 1-3,5-7,9-11,13-15,17-19,21-23 * * *", "UTC"),
        "data_at_4h_close": ("2 4,8,12,16,20 * * *", "UTC"),
        "data_at_1d_close": ("2 0 * * *", "UTC"),
    }

    def request_at(name: str, when: str) -> dg.RunRequest:
        context = dg.build_schedule_context(scheduled_execution_time=pd.Timestamp(when, tz="UTC"))
        return next(iter(schedules[name].evaluate_tick(context).run_requests))

    at_0702 = request_at("data_at_1h_close", "2026-03-05 07:02")
    at_0802 = request_at("data_at_4h_close", "2026-03-05 08:02")
    at_0002 = request_at("data_at_1d_close", "2026-03-06 00:02")
    assert at_0702.run_key == "bar_close|2026-03-05T07:00:00+00:00"
    assert at_0802.run_key == "bar_close|2026-03-05T08:00:00+00:00"
    assert at_0002.run_key == "bar_close|2026-03-06T00:00:00+00:00"
    ranges = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"])
        for r in (at_0702, at_0802, at_0002)
    ]
    assert ranges == [("BTC|1h", "TIA|1h"), ("BTC|1h", "TIA|4h"), ("BTC|1h", "TIA|1d")]
    assert at_0802.tags["apex/timeframes"] == "1h,4h"
    assert at_0802.tags["apex/bar_close"] == "2026-03-05T08:00:00+00:00"
    # the box range really selects every symbol × {1h, 4h} and nothing else
    job_def = defs.resolve_job_def(DATA_JOB)
    keys = job_def.partitions_def.get_partition_keys_in_range(dg.PartitionKeyRange("BTC|1h", "TIA|4h"))
    assert len(keys) == 17 * 2 and {str(k).split("|")[1] for k in keys} == {"1h", "4h"}
    # the same tick evaluated later asks for the same run key, so Dagster launches it once
    late = bar_close_run_request(load_config(), pd.Timestamp("2026-03-05 08:03", tz="UTC"))
    assert late.run_key == at_0802.run_key


def test_signal_assets_run_when_their_inputs_are_fresh():
    from apex_rotation.definitions import defs as load_defs

    graph = load_defs().resolve_asset_graph()
    for key in ALL_ASSETS - {"bars", "audited_bars", "features", "td_state", "backtest_report"}:
        condition = graph.get(dg.AssetKey(key)).automation_condition
        assert condition is not None and condition.get_label() == "eager", key
    assert graph.get(dg.AssetKey("bars")).automation_condition is None  # the schedules drive the data
    assert graph.get(dg.AssetKey("backtest_report")).automation_condition is None  # research: on demand


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def test_web_ui_loads_the_code_location(tmp_path):
    """`dagster-webserver -w workspace.yaml` serves the asset graph (what `dagster dev` shows)."""
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline, assets = time.time() + 90, None
        while time.time() < deadline and assets is None:
            time.sleep(1)
            try:
                reply = _graphql(port, "{ assetNodes { assetKey { path } } }")
                assets = {n["assetKey"]["path"][0] for n in reply["data"]["assetNodes"]} or None
            except (OSError, KeyError, TypeError):
                continue
        assert assets == ALL_ASSETS
    finally:
        stop_group(proc)


CONCURRENT_RUN = """
import sys, dagster as dg
from apex_rotation.config import load_config
from apex_rotation.defs.market_data_assets import build_market_data_assets
from apex_rotation.defs.resources import SourceResource, StoreResource, duckdb_resource
from apex_rotation.defs.runner import QUIET, full_range_tags
config_path, root, first, last = sys.argv[1:]
assets = build_market_data_assets(load_config(config_path))
result = dg.materialize(
    assets, tags=full_range_tags(f"{first}|1h", f"{last}|1d"), run_config=QUIET, raise_on_error=False,
    resources={"store": StoreResource(root=root), "source": SourceResource(), "duckdb": duckdb_resource()},
)
sys.exit(0 if result.success else 1)
"""


def test_concurrent_runs_of_different_partitions_share_the_store(small_config_path, tmp_path):
    """Two processes materialize disjoint partitions into one store at once: no lock, no torn file."""
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_RUN, small_config_path, str(tmp_path / "store"), first, last],
            cwd=PROJECT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for first, last in (("BTC", "ETH"), ("SOL", "APT"))
    ]
    outputs = [p.communicate(timeout=240)[0].decode(errors="replace") for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    store = ParquetStore(tmp_path / "store")
    assert sorted(store.partitions("audited_bars")) == sorted(
        (tf, s) for s in SYMBOLS for tf in ("1d", "1h", "4h")
    )
    assert len(store.read("audited_bars", "1h", "APT")) == 90 * 24


def test_a_failing_check_blocks_the_write_and_says_why(small_config_path, tmp_path, monkeypatch):
    import apex_rotation.features.compute as stage

    real = stage.build_features

    def broken(bars, **kwargs):
        frame = real(bars, **kwargs)
        return frame.assign(corr_eth_14=frame["corr_eth_14"] * 3)  # correlations outside [-1, 1]

    monkeypatch.setattr(stage, "build_features", broken)
    cfg = load_config(small_config_path)
    defs = build_definitions(cfg, store_root=str(tmp_path))
    result = _run(defs, DATA_JOB, full_range_tags("BTC|4h", "APT|4h"))
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert checks["audited_bars_schema"].passed and not checks["features_invariants"].passed
    problems = checks["features_invariants"].metadata["problems"].value
    assert set(problems) == {f"{s}|4h" for s in SYMBOLS} and "corr_eth_14" in problems["SOL|4h"][0]
    assert not result.success  # the blocking check stops the run after the step
    store = ParquetStore(tmp_path)
    assert not store.exists("features", "4h", "SOL") and store.exists("audited_bars", "4h", "SOL")


def test_secrets_never_reach_dagsters_console(capfd, monkeypatch):
    from apex_rotation import log as logsetup
    from apex_rotation.defs.resources import redacting_console

    secret = "9876543210:AAHsecretsecretsecretsecretsecretXYZ"
    logsetup.set_secrets(["webhook-secret-value"])

    @dg.asset
    def noisy(context) -> None:
        context.log.info(f"posting with bot{secret} and webhook-secret-value")

    defs = dg.Definitions(
        assets=[noisy],
        jobs=[dg.define_asset_job("noisy_job", [noisy])],
        loggers={"console": redacting_console},
    )
    run_config = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # as `apex run` selects it
    assert defs.resolve_job_def("noisy_job").execute_in_process(run_config=run_config).success
    err = capfd.readouterr().err
    assert "posting with bot" in err and "***" in err
    assert "AAHsecret" not in err and "webhook-secret-value" not in err


@pytest.mark.parametrize(
    ("asset", "check"), [("scores", "scores_sound"), ("td_state", "td_state_invariants")]
)
def test_a_check_of_a_shared_step_asked_alone_is_refused_in_one_line(
    small_config_path, tmp_path, asset, check
):
    """Dagster lets the UI execute one check of a multi-asset step alone; ours report what computing the
    partitions found, so the run fails saying to materialize the asset (not Dagster's partition error)."""
    defs = build_definitions(load_config(small_config_path), store_root=str(tmp_path))
    job = dg.define_asset_job(
        "check_alone", selection=dg.AssetSelection.checks(dg.AssetCheckKey(dg.AssetKey(asset), check))
    )
    defs = dg.Definitions(assets=defs.assets, jobs=[job], resources=defs.resources)
    result = defs.resolve_job_def("check_alone").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False, run_config=QUIET
    )
    failures = [
        e.step_failure_data.error.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    ]
    assert not result.success and len(failures) == 1
    assert f"{check}: a check here runs with its asset" in failures[0]
    assert "materialize the asset's partitions" in failures[0]
