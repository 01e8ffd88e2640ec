"""The Dagster UI, for real: `dg dev` on a free port with a temporary instance, runs launched through the
GraphQL API, then the asset graph, a partitioned asset's partitions and its checks opened in headless
Chromium (Debian's, driven by Playwright with that executable: no browser download), asserting what a user
sees. Screenshots go to the test's folder, and to docs/img/ when APEX_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from apex_rotation_tests.services import CHROMIUM, PROJECT, dagster_dev, small_config

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no {CHROMIUM} (bash .ci/setup-system.sh installs Debian's chromium)"
)
SYMBOLS = ["BTC", "ETH", "SOL", "APT"]
CHROMIUM_ARGS = [  # this machine's network is closed: no background connections, no sandbox as root
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _launch_and_wait(client, job: str, start: str, end: str, deadline_s: float = 300) -> str:
    from dagster_graphql import DagsterGraphQLClientError  # noqa: F401  (the client's error type)

    run_id = client.submit_job_execution(
        job,
        repository_location_name="apex_rotation",
        repository_name="__repository__",
        tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
    )
    deadline = time.time() + deadline_s
    while time.time() < deadline:
        status = client.get_run_status(run_id).value
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            assert status == "SUCCESS", f"{job} run {run_id}: {status}"
            return run_id
        time.sleep(1)
    raise AssertionError(f"{job} run {run_id} did not finish in {deadline_s} s")


def _text(page) -> str:
    return page.inner_text("body")


def _open(page, url: str, shots: Path, name: str, wait_for: str) -> str:
    page.goto(url)
    try:
        page.get_by_text(wait_for, exact=False).first.wait_for(timeout=60_000)
    finally:
        time.sleep(2)  # let the live data settle (counts, statuses) before the screenshot
        page.screenshot(path=str(shots / f"{name}.png"))
        (shots / f"{name}.txt").write_text(_text(page))
    return _text(page)


def test_the_ui_shows_materializations_partitions_and_checks(tmp_path):
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import sync_playwright

    config = small_config(tmp_path, SYMBOLS, 60)
    env = {"APEX_CONFIG": str(config), "APEX_DATA_DIR": str(tmp_path / "store")}
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with dagster_dev(tmp_path / "home", env) as port:
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        _launch_and_wait(client, "bars_to_features_job", f"{SYMBOLS[0]}|1h", f"{SYMBOLS[-1]}|1d")
        _launch_and_wait(client, "signals_job", "1h", "1d")
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            group = f"{base}/locations/apex_rotation/asset-groups"
            graph = _open(page, f"{group}/features", shots, "asset-graph", "td_state")
            assert "features" in graph and "td_state" in graph and "audited_bars" in graph
            assert graph.count("100% filled") == 2 and graph.count("1 / 1 Passed") == 2  # features, td_state
            partitions = _open(
                page, f"{base}/assets/features?view=partitions", shots, "features-partitions", "Materialized"
            )
            assert "Materialized (12)" in partitions and "Missing (0)" in partitions  # 4 symbols × 3 tfs
            checks = _open(
                page, f"{base}/assets/features?view=checks", shots, "features-checks", "features_invariants"
            )
            assert "features_invariants" in checks and "Passed" in checks
            browser.close()
    if os.environ.get("APEX_UPDATE_SCREENSHOTS") == "1":
        for shot in shots.glob("*.png"):
            shutil.copyfile(shot, PROJECT / "docs" / "img" / shot.name)
