"""The `scores` stage through Dagster on a small synthetic market: the asset and its check, the open episode's
live signal, no lookahead (a history cut at any bar scores as the full run up to it)."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, load_config
from apex_rotation.defs.automation import DATA_JOB, SIGNALS_JOB
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.runner import QUIET, full_range_tags
from apex_rotation.signals.score import ScoredSignal
from apex_rotation.signals.scoring import score_timeframe
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import AUDITED_BARS, BASKET_KEY, CONFIRMATIONS, FEATURES, SCORES, TD_STATE
from apex_rotation.timeframes import TIMEFRAMES, delta

SYMBOLS = ["BTC", "ETH", "SOL", "APT"]
OPEN_BAR = pd.Timestamp("2025-12-31T08:00:00Z")  # the open episode's catch-up: 92 days leave room for it


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = SYMBOLS
    raw["synthetic"]["days"] = 92
    path = tmp_path_factory.mktemp("cfg") / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    cfg = load_config(path)
    root = tmp_path_factory.mktemp("store")
    defs = build_definitions(cfg, store_root=str(root))
    results = {}
    for job, tags in [
        (DATA_JOB, full_range_tags("BTC|1h", "APT|1d")),
        (SIGNALS_JOB, full_range_tags("1h", "1d")),
    ]:
        results[job] = defs.resolve_job_def(job).execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), tags=tags, raise_on_error=False, run_config=QUIET
        )
    return cfg, ParquetStore(root), results


def test_scores_asset_and_its_check(run):
    cfg, store, results = run
    signals = results[SIGNALS_JOB]
    assert signals.success
    materialized = {e.asset_key.to_user_string() for e in signals.get_asset_materialization_events()}
    assert "scores" in materialized
    checks = {e.check_name: e.passed for e in signals.get_asset_check_evaluations()}
    assert checks["scores_sound"] is True
    h4 = store.read(SCORES, "4h", BASKET_KEY)
    assert set(h4["archetype"]) == {"rotation", "td13_exhaustion"} and h4["fired"].any()
    assert store.read(SCORES, "1h", BASKET_KEY).empty  # no trigger timeframe, not the HTF
    fired = h4[h4["fired"]]
    assert fired["plan_entry"].notna().all() and (fired["score"] >= cfg.score.alert_threshold).all()
    assert h4.loc[~h4["fired"], "suppressed"].notna().all()
    for row in h4.head(20).to_dict("records"):  # the contract's row round trip
        assert ScoredSignal.from_row(row).to_row()["signal_id"] == row["signal_id"]


def test_the_open_episode_is_a_live_signal_at_the_end(run):
    _, store, _ = run
    h4 = store.read(SCORES, "4h", BASKET_KEY)
    live = h4[h4["fired"] & (h4["archetype"] == "rotation") & (h4["bar_time"] == OPEN_BAR)]
    assert list(live["symbol"]) == ["SOL"]
    signal = ScoredSignal.from_row(live.iloc[0].to_dict())
    bars = store.read(AUDITED_BARS, "4h", "SOL")
    after = bars[bars.index > OPEN_BAR]
    assert 1 <= len(after) <= 4  # a few bars before the end of the data
    plan = signal.plan
    assert (after["low"] > plan.stop).all() and (after["high"] < plan.target).all()  # not resolved


def _truncate(store: ParquetStore, root, cut: pd.Timestamp, cfg) -> ParquetStore:
    """A copy of the scorer's inputs with every bar closed after `cut` removed (and the watch rows too)."""
    out = ParquetStore(root)
    for tf in TIMEFRAMES:
        step = delta(tf)
        for table in (AUDITED_BARS, FEATURES, TD_STATE):
            for symbol in cfg.basket.names:
                frame = store.read(table, tf, symbol)
                out.write(table, tf, symbol, frame[frame.index + step <= cut])
        if store.exists(CONFIRMATIONS, tf, BASKET_KEY):
            watch = store.read(CONFIRMATIONS, tf, BASKET_KEY)
            out.write(CONFIRMATIONS, tf, BASKET_KEY, watch[watch["eval_time"] + step <= cut])
    return out


@pytest.mark.parametrize("cut", ["2025-12-20T12:00:00Z", "2025-12-31T12:00:00Z"])
def test_no_lookahead_scores_up_to_a_cut_equal_the_full_run(run, tmp_path, cut):
    cfg, store, _ = run
    cut = pd.Timestamp(cut)
    short = _truncate(store, tmp_path, cut, cfg)
    compared = 0
    for tf in ("4h", "1d"):
        step = delta(tf)
        full = store.read(SCORES, tf, BASKET_KEY)
        full = full[full["bar_time"] + step <= cut].reset_index(drop=True)
        part = score_timeframe(cfg, short, tf).reset_index(drop=True)
        part = part[part["bar_time"] + step <= cut].reset_index(drop=True)
        pd.testing.assert_frame_equal(part, full, check_dtype=False)
        compared += len(full)
        assert [json.loads(r)[0]["name"] for r in part["reasons"]] == ["narrative"] * len(part)
    assert compared > 10
