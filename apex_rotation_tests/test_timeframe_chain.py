"""`timeframe_chain`: the per-timeframe signal stages run in order, one task per timeframe, each skipped when
its inputs did not change, and a blocking stage's failure stops the later stages of its timeframe only."""

import pandas as pd
import pytest

from apex_rotation.defs.incremental import Stage, timeframe_chain, timeframe_outputs
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import BASKET_KEY, FEATURES

TIMEFRAMES = ["1h", "4h", "1d"]
CHAIN = ["rotation_candidates", "confirmations", "scanner_quality", "scores"]


def _frame(value: float) -> pd.DataFrame:
    return pd.DataFrame({"x": [value]}, index=pd.Index([0], name="row"))


@pytest.fixture
def store(tmp_path) -> ParquetStore:
    store = ParquetStore(tmp_path / "store")
    for tf in TIMEFRAMES:
        store.write(FEATURES, tf, "SOL", _frame(1.0))
    return store


class Calls:
    """What the stages computed, in order: a file, since the timeframes run in worker processes."""

    def __init__(self, path):
        self.path = path

    def add(self, asset: str, tf: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(f"{asset} {tf}\n")

    def __call__(self) -> list[tuple[str, str]]:
        lines = self.path.read_text().splitlines() if self.path.exists() else []
        self.path.unlink(missing_ok=True)
        return [tuple(line.split()) for line in lines]


def _stages(store: ParquetStore, calls: Calls, failing: set = frozenset()) -> list[Stage]:
    """Stages that write their outputs (a value derived from the features of their timeframe) and fail
    where `(asset, tf)` is in `failing`."""

    def stage(asset: str) -> Stage:
        def compute(tf: str):
            calls.add(asset, tf)
            value = float(store.read(FEATURES, tf, "SOL")["x"].iloc[0])
            for path in timeframe_outputs(store, asset, tf):
                store.write(path.parent.parent.name, tf, BASKET_KEY, _frame(value))
            return {"value": value}, (["broken"] if (asset, tf) in failing else [])

        return Stage(asset, compute)

    return [stage(asset) for asset in CHAIN]


def test_each_timeframe_runs_the_stages_in_order_and_a_rerun_skips_them(store, default_config, tmp_path):
    calls = Calls(tmp_path / "calls")
    reports = timeframe_chain(store, default_config, _stages(store, calls), TIMEFRAMES)
    done = calls()
    for tf in TIMEFRAMES:  # per timeframe, in the chain's order (the timeframes may interleave)
        assert [a for a, t in done if t == tf] == CHAIN
    assert {a: r.computed for a, r in reports.items()} == {a: TIMEFRAMES for a in CHAIN}
    assert reports["scores"].summaries == {tf: {"value": 1.0} for tf in TIMEFRAMES}

    again = timeframe_chain(store, default_config, _stages(store, calls), TIMEFRAMES)
    assert calls() == [] and {a: r.unchanged for a, r in again.items()} == {a: TIMEFRAMES for a in CHAIN}

    store.write(FEATURES, "4h", "SOL", _frame(2.0))  # one data file of one timeframe changed
    changed = timeframe_chain(store, default_config, _stages(store, calls), TIMEFRAMES)
    # conservative: every stage reads every data file, so all recompute; each stage reads only its own
    # timeframe's signal tables, so what it computes is that timeframe's
    assert sorted(calls()) == sorted((a, tf) for a in CHAIN for tf in TIMEFRAMES)
    assert changed["scores"].summaries["4h"] == {"value": 2.0}


def test_a_blocking_failure_stops_what_reads_it_in_its_timeframe_and_reruns_next_time(
    store, default_config, tmp_path
):
    calls = Calls(tmp_path / "calls")
    stages = _stages(store, calls, failing={("confirmations", "4h")})
    reports = timeframe_chain(store, default_config, stages, TIMEFRAMES)
    done = calls()
    assert ("scores", "4h") not in done  # reads confirmations
    assert ("scanner_quality", "4h") in done  # reads only rotation_candidates
    assert ("scores", "1h") in done and ("scores", "1d") in done
    assert reports["confirmations"].problems == {"4h": ["broken"]}
    assert reports["scores"].problems == {"4h": ["not computed: confirmations 4h failed its check"]}
    assert reports["scores"].summaries["4h"] == "not computed"
    assert reports["scores"].computed == ["1h", "1d"] and reports["confirmations"].computed == TIMEFRAMES
    assert reports["scanner_quality"].problems == {}

    # nothing changed, but what failed or did not run has no fingerprint: it runs again
    timeframe_chain(store, default_config, _stages(store, calls), TIMEFRAMES)
    assert sorted(calls()) == [("confirmations", "4h"), ("scores", "4h")]


def test_a_failed_scan_stops_everything_after_it_in_its_timeframe(store, default_config, tmp_path):
    calls = Calls(tmp_path / "calls")
    reports = timeframe_chain(
        store, default_config, _stages(store, calls, failing={("rotation_candidates", "1d")}), TIMEFRAMES
    )
    assert [a for a, tf in calls() if tf == "1d"] == ["rotation_candidates"]
    why = ["not computed: rotation_candidates 1d failed its check"]
    assert {a: r.problems.get("1d") for a, r in reports.items() if a != "rotation_candidates"} == {
        "confirmations": why,
        "scanner_quality": why,
        "scores": why,  # through confirmations
    }
    assert timeframe_chain(store, default_config, [], TIMEFRAMES) == {}
