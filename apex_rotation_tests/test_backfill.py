"""A backfill of the whole graph, every partition, launched as the UI launches it, equals a fresh `apex run`.

`dg dev` (webserver and daemon) on 127.0.0.1 with a temporary instance (the project's dagster.yaml); the
backfill is the UI's own GraphQL mutation (`launchPartitionBackfill`, all partitions of every asset of the
two jobs); the daemon plans and launches its runs. It is not one run, nor two (one per partitions
definition): see the assertions on the runs below and README "Backfills". The store it leaves is compared
file by file with a fresh `apex run`: every Parquet file byte-identical.
"""

from __future__ import annotations

import importlib.util
import time
from collections import Counter

from apex_rotation.config import load_config
from apex_rotation.defs.runner import run_pipeline
from apex_rotation.timeframes import TIMEFRAMES
from apex_rotation_tests.services import PROJECT, dagster_dev, graphql, small_config

_spec = importlib.util.spec_from_file_location("compare_stores", PROJECT / "scripts" / "compare_stores.py")
compare_stores = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_stores)

SYMBOLS = ["BTC", "ETH", "SOL", "APT"]
PER_SYMBOL = ["bars", "audited_bars", "features", "td_state"]
PER_TIMEFRAME = ["rotation_candidates", "confirmations", "scanner_quality", "scores", "alerts", "sim_trades"]

LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on Error { message }
  }
}"""
STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
  runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
    ... on Runs { results { runId status startTime assetSelection { path } tags { key value } } }
  }
}"""
DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}


def test_a_ui_backfill_of_every_partition_equals_apex_run(tmp_path):
    config = small_config(tmp_path, SYMBOLS, 90)
    backfilled = tmp_path / "backfilled"
    env = {"APEX_CONFIG": str(config), "APEX_DATA_DIR": str(backfilled)}
    with dagster_dev(tmp_path / "home", env) as port:
        params = {
            "allPartitions": True,
            "assetSelection": [{"path": [a]} for a in PER_SYMBOL + PER_TIMEFRAME],
        }
        launched = graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline, status, runs = time.time() + 420, None, []
        while time.time() < deadline and status not in DONE:
            time.sleep(2)
            reply = graphql(port, STATUS, {"id": launched["backfillId"]})["data"]
            status = reply["partitionBackfillOrError"]["status"]
            runs = reply["runsOrError"]["results"]
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, runs)
    assert all(r["status"] == "SUCCESS" for r in runs), runs
    fresh = tmp_path / "fresh"
    assert run_pipeline(load_config(str(config)), store_root=str(fresh)).success
    assert compare_stores.compare(backfilled, fresh) == []  # every Parquet file byte-identical
    # Dagster's asset backfill daemon, measured (dagster 1.13): the symbol × timeframe assets run once per
    # timeframe (it turns "all partitions" of a 2-D multi-partition into one key range per timeframe: BTC|1h
    # … APT|1h), all four assets in each; the signal stages run as their upstream timeframes land (a
    # timeframe's rotation_candidates as soon as its features are done, so how they group depends on the
    # daemon's ticks). Never one run per partition, never two partitions definitions in one run, and every
    # partition of every asset exactly once.
    data, signals = [], []
    for r in runs:
        assets = {p["path"][0] for p in r["assetSelection"]}
        tags = {t["key"]: t["value"] for t in r["tags"]}
        span = (tags["dagster/asset_partition_range_start"], tags["dagster/asset_partition_range_end"])
        (data if assets <= set(PER_SYMBOL) else signals).append((assets, span))
    assert sorted(data, key=str) == sorted(
        [(set(PER_SYMBOL), (f"{SYMBOLS[0]}|{tf}", f"{SYMBOLS[-1]}|{tf}")) for tf in TIMEFRAMES], key=str
    )
    covered = Counter(
        (asset, tf)
        for assets, (start, end) in signals
        for tf in TIMEFRAMES[TIMEFRAMES.index(start) : TIMEFRAMES.index(end) + 1]
        for asset in assets
    )
    assert all(assets <= set(PER_TIMEFRAME) for assets, _ in signals)
    assert covered == Counter({(a, tf): 1 for a in PER_TIMEFRAME for tf in TIMEFRAMES}), covered
    print(f"backfill of every partition: {len(runs)} runs ({len(data)} data, {len(signals)} signals)")
