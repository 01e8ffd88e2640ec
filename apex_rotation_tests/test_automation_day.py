"""A simulated UTC day of bar closes, driven through Dagster's own testing APIs against the synthetic source.

The schedules are evaluated with `dg.build_schedule_context` at each tick; a request is launched unless a
run with its run key already exists (what Dagster's scheduler daemon does); the signal stages are requested
by `dg.evaluate_automation_conditions` (what the automation sensor does), carried from tick to tick by its
cursor. The instance is a temporary one; every run really executes against a small synthetic store.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import dagster as dg
import pandas as pd
import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, load_config
from apex_rotation.defs.automation import CRONS, DATA_JOB, SIGNALS_JOB, schedule_name
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.partitions import BAR_CLOSE_TAG
from apex_rotation.defs.runner import QUIET, contiguous_blocks, full_range_tags, run_pipeline
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.timeframes import TIMEFRAMES

SYMBOLS = ["BTC", "ETH", "SOL"]
SIGNAL_ASSETS = ["rotation_candidates", "confirmations", "scanner_quality", "scores", "alerts", "sim_trades"]
COMPARED = ["bars", "audited_bars", "features", "td_state", "rotation_candidates", "confirmations", "scores"]


@pytest.fixture(scope="module")
def day_config(tmp_path_factory) -> str:
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    raw["basket"]["symbols"] = SYMBOLS
    raw["synthetic"]["days"] = 30
    path = tmp_path_factory.mktemp("cfg") / "day.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _cron_fires(cron: str, when: pd.Timestamp) -> bool:
    """Minute and hour fields of the three crons (lists, ranges, `*`)."""
    minute, hour = cron.split()[:2]

    def match(field: str, value: int) -> bool:
        if field == "*":
            return True
        for part in field.split(","):
            low, _, high = part.partition("-")
            if int(low) <= value <= int(high or low):
                return True
        return False

    return match(minute, when.minute) and match(hour, when.hour)


class Daemons:
    """The scheduler and the automation sensor, as their daemons would drive them, over one instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None
        self.schedules = {s.name: s for s in defs.schedules}
        self.data_runs: Counter[str] = Counter()  # data runs that covered each timeframe
        self.runs = 0
        self.signal_runs: Counter[str] = Counter()

    def tick(self, when: pd.Timestamp) -> int:
        """Evaluate one schedule tick; launch its request unless its run key already ran. Returns runs launched."""
        context = dg.build_schedule_context(instance=self.instance, scheduled_execution_time=when)
        launched = 0
        for request in self.schedules[schedule_name(_due(when))].evaluate_tick(context).run_requests:
            if self.instance.get_runs(dg.RunsFilter(tags={"dagster/run_key": request.run_key})):
                continue  # the daemon's rule: a run key launches once
            result = self.defs.resolve_job_def(DATA_JOB).execute_in_process(
                instance=self.instance,
                tags={**request.tags, "dagster/run_key": request.run_key},
                run_config=QUIET,
                raise_on_error=False,
            )
            assert result.success, request.run_key
            self.data_runs.update(request.tags["apex/timeframes"].split(","))
            self.runs += 1
            launched += 1
        return launched

    def automate(self) -> set[str]:
        """One automation-sensor tick: run the requested signal partitions (one run per contiguous block)."""
        # evaluated at the real time: the runs above were recorded at the real time too (eager reads no clock)
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor)
        self.cursor = result.cursor
        requested = {
            str(tf) for key in SIGNAL_ASSETS for tf in result.get_requested_partitions(dg.AssetKey(key))
        }
        for asset in SIGNAL_ASSETS:  # eager: the whole chain of a timeframe is requested in one tick
            assert {str(tf) for tf in result.get_requested_partitions(dg.AssetKey(asset))} == requested
        for block in contiguous_blocks(requested):
            run = self.defs.resolve_job_def(SIGNALS_JOB).execute_in_process(
                instance=self.instance,
                tags=full_range_tags(block[0], block[-1]),
                run_config=QUIET,
                raise_on_error=False,
            )
            assert run.success, block
            self.signal_runs.update(block)
        if requested:  # the sensor's next tick (every 30 s) sees those runs done: it requests nothing more
            again = dg.evaluate_automation_conditions(
                defs=self.defs, instance=self.instance, cursor=self.cursor
            )
            self.cursor = again.cursor
            assert again.total_requested == 0
        return requested


def _due(when: pd.Timestamp) -> str:
    """The one schedule whose cron fires at `when` (minute 2 of the hour): the longest timeframe closing."""
    return "1d" if when.hour == 0 else "4h" if when.hour % 4 == 0 else "1h"


def _closed(when: pd.Timestamp) -> set[str]:
    return set(TIMEFRAMES[: TIMEFRAMES.index(_due(when)) + 1])


def test_a_simulated_day_of_bar_closes(day_config, tmp_path):
    cfg = load_config(day_config)
    for when in pd.date_range("2026-03-05 00:02", periods=24, freq="h", tz="UTC"):  # one cron per hour
        due = [tf for tf, cron in CRONS.items() if _cron_fires(cron, when)]
        assert due == [_due(when)], when
    end = SyntheticSource(cfg).history_window()[1]  # the last 1h bar the market has
    day_end = end.floor("1D")
    day_start = day_end - pd.Timedelta(days=1)
    store_root = tmp_path / "store"
    defs = build_definitions(cfg, store_root=str(store_root))
    instance = dg.DagsterInstance.ephemeral()

    # the state before the day: everything as of the day's first second, as `apex run` would leave it
    for job, tags in [
        (DATA_JOB, full_range_tags(f"{SYMBOLS[0]}|1h", f"{SYMBOLS[-1]}|1d")),
        (SIGNALS_JOB, full_range_tags("1h", "1d")),
    ]:
        tags = {**tags, BAR_CLOSE_TAG: day_start.isoformat()}
        assert (
            defs.resolve_job_def(job)
            .execute_in_process(instance=instance, tags=tags, run_config=QUIET)
            .success
        )
    daemons = Daemons(defs, instance)
    assert daemons.automate() == set()  # nothing new yet

    down = {10, 11}  # the process is down over the 10:02 and 11:02 ticks
    for hour in range(1, 25):
        when = day_start + pd.Timedelta(hours=hour, minutes=2)
        if hour in down:
            continue
        if hour == max(down) + 1:  # restart at 12:02: the missed ticks are evaluated first, once each
            for missed in sorted(down):
                missed_at = day_start + pd.Timedelta(hours=missed, minutes=2)
                assert daemons.tick(missed_at) == 1
        assert daemons.tick(when) == 1
        if hour == 8:  # the same tick evaluated twice (a daemon restart mid-tick): nothing more
            assert daemons.tick(when) == 0
        requested = daemons.automate()
        assert requested == _closed(when)
        if hour == 8:  # the automation tick evaluated twice: nothing more
            assert daemons.automate() == set()
    # a second restart re-evaluating a caught-up tick launches nothing
    assert daemons.tick(day_start + pd.Timedelta(hours=10, minutes=2)) == 0

    assert daemons.runs == 24  # one data run per hour, covering the timeframes that closed
    assert daemons.data_runs == {"1h": 24, "4h": 6, "1d": 1}
    # the signal work runs once per automation tick that saw fresh features: at the 12:02 restart the two
    # caught-up 1h runs and the 12:02 one precede one automation tick, so 1h signals ran 22 times
    assert daemons.signal_runs == {"1h": 22, "4h": 6, "1d": 1}

    # and the store is what one full run at the day's end computes (incremental skips change nothing)
    fresh = tmp_path / "fresh"
    full = build_definitions(cfg, store_root=str(fresh))
    for job, tags in [
        (DATA_JOB, full_range_tags(f"{SYMBOLS[0]}|1h", f"{SYMBOLS[-1]}|1d")),
        (SIGNALS_JOB, full_range_tags("1h", "1d")),
    ]:
        tags = {**tags, BAR_CLOSE_TAG: day_end.isoformat()}
        assert (
            full.resolve_job_def(job)
            .execute_in_process(instance=dg.DagsterInstance.ephemeral(), tags=tags, run_config=QUIET)
            .success
        )
    _assert_same_tables(ParquetStore(store_root), ParquetStore(fresh))


def _full_run(defs: dg.Definitions, instance: dg.DagsterInstance, close: pd.Timestamp) -> None:
    """Every partition, data then signals, as of `close`."""
    for job, tags in [
        (DATA_JOB, full_range_tags(f"{SYMBOLS[0]}|1h", f"{SYMBOLS[-1]}|1d")),
        (SIGNALS_JOB, full_range_tags("1h", "1d")),
    ]:
        tags = {**tags, BAR_CLOSE_TAG: close.isoformat()}
        assert (
            defs.resolve_job_def(job)
            .execute_in_process(instance=instance, tags=tags, run_config=QUIET)
            .success
        )


def _assert_same_tables(a: ParquetStore, b: ParquetStore) -> None:
    for table in COMPARED:
        assert sorted(a.partitions(table)) == sorted(b.partitions(table)), table
        for tf, key in a.partitions(table):
            pd.testing.assert_frame_equal(
                a.read(table, tf, key), b.read(table, tf, key), obj=f"{table} {tf} {key}"
            )


def _digests(root) -> dict:
    return {
        p.relative_to(root): hashlib.blake2b(p.read_bytes()).hexdigest()
        for p in root.rglob("*.parquet")
        if ".fingerprints" not in p.parts
    }


def test_a_warm_rerun_skips_everything_and_equals_a_full_run(day_config, tmp_path):
    """`apex run` twice: the second launches no run (and says why), which leaves the store exactly as running
    it would; new bars at the source or a removed partition launch the data run again, and only what
    changed is recomputed."""
    cfg = load_config(day_config)
    root = tmp_path / "store"
    first = run_pipeline(cfg, store_root=str(root))
    assert first.success and all("0 unchanged" in s.detail for s in first.steps if s.detail)
    assert first.skipped == [] and len(first.run_ids) == 2
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet") if ".fingerprints" not in p.parts}
    said = []
    second = run_pipeline(cfg, store_root=str(root), notify=said.append)
    assert second.success and second.run_ids == [] and second.steps == []
    newest = SyntheticSource(cfg).history_window()[1] + pd.Timedelta(hours=1)
    assert said == [
        f"data: nothing new since {newest:%Y-%m-%d %H:%M} UTC, run skipped",
        said[1],
    ] and said[1].startswith("signals: inputs unchanged since ")
    assert [p for p, m in before.items() if p.stat().st_mtime_ns != m] == []  # not a file touched
    # the skipped runs, launched anyway, compute nothing and leave the same bytes: skipping equals running
    digests = _digests(root)
    forced = run_pipeline(cfg, store_root=str(root), force=True)
    assert forced.success and len(forced.run_ids) == 2 and forced.skipped == []
    computed = [d for s in forced.steps for d in s.detail.split("; ") if d and "0 computed" not in d]
    assert computed == []
    assert _digests(root) == digests
    # the source has a bar the store lacks: the data run is launched and fetches it
    store = ParquetStore(root)
    sol = store.read("bars", "1h", "SOL")
    store.write("bars", "1h", "SOL", sol.iloc[:-1], meta=store.meta("bars", "1h", "SOL"))
    fetched = run_pipeline(cfg, store_root=str(root))
    assert fetched.success and len(fetched.run_ids) == 1 and fetched.skipped[0].startswith("signals:")
    pd.testing.assert_frame_equal(store.read("bars", "1h", "SOL"), sol)
    # a removed partition is recomputed, and only what depends on it
    (root / "td_state" / "4h" / "SOL.parquet").unlink()
    third = run_pipeline(cfg, store_root=str(root))
    details = {s.step: s.detail for s in third.steps}
    # features and td_state are one step (feature_tables); its detail names each
    assert details["feature_tables"] == "features 0 computed, 9 unchanged; td_state 1 computed, 8 unchanged"
    # recomputed to the same bytes: what reads it compares contents, so the signals run is not launched
    assert len(third.run_ids) == 1 and "scores" not in details and third.skipped[0].startswith("signals:")
    assert _digests(root) == digests
    # what the incremental runs left equals a fresh full run
    fresh = tmp_path / "fresh"
    assert run_pipeline(cfg, store_root=str(fresh)).success
    _assert_same_tables(ParquetStore(root), ParquetStore(fresh))
