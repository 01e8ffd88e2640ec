"""A damaged store file is named, quarantined and rebuilt; it never blocks the rest of the store."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from apex_rotation.cli import main
from apex_rotation.config import load_config
from apex_rotation.defs.automation import DATA_JOB
from apex_rotation.defs.build import build_definitions
from apex_rotation.defs.runner import full_range_tags
from apex_rotation.store.parquet import QUARANTINE_DIR, CorruptPartition, ParquetStore, StoreError
from apex_rotation.store.query import query
from apex_rotation.timeframes import TIMEFRAMES
from apex_rotation_tests import test_dagster
from apex_rotation_tests.test_dagster import SYMBOLS, _run

small_config_path = test_dagster.small_config_path  # the same small synthetic config (a fixture)

# (table, timeframe, symbol) → how its file is damaged: garbage, a truncated file, zero bytes
CORRUPTED = {
    ("features", "4h", "SOL"): lambda data: b"not parquet at all " * 8,
    ("bars", "1h", "ETH"): lambda data: data[: len(data) // 3],
    ("td_state", "1d", "APT"): lambda data: b"",
}
FULL_RANGE = full_range_tags(f"{SYMBOLS[0]}|{TIMEFRAMES[0]}", f"{SYMBOLS[-1]}|{TIMEFRAMES[-1]}")


@pytest.fixture(scope="module")
def clean_store(small_config_path, tmp_path_factory) -> Path:
    """A store built by one Dagster data run over the synthetic source (4 symbols, 90 days)."""
    root = tmp_path_factory.mktemp("clean")
    defs = build_definitions(load_config(small_config_path), store_root=str(root))
    assert _run(defs, DATA_JOB, FULL_RANGE).success
    return root


@pytest.fixture
def damaged(clean_store, tmp_path) -> tuple[Path, dict[Path, bytes]]:
    """A copy of the clean store with the CORRUPTED files damaged; returns its root and {path: bytes}."""
    root = tmp_path / "store"
    shutil.copytree(clean_store, root)
    store, written = ParquetStore(root), {}
    for (table, tf, symbol), damage in CORRUPTED.items():
        path = store.path(table, tf, symbol)
        written[path] = damage(path.read_bytes())
        path.write_bytes(written[path])
    return root, written


def quarantined(root: Path) -> dict[str, bytes]:
    """`table/tf/symbol` → bytes of every quarantined file (the timestamp dropped from the name)."""
    files = sorted((root / QUARANTINE_DIR).glob("*/*/*.parquet"))
    return {f"{p.parent.parent.name}/{p.parent.name}/{p.name.split('.')[0]}": p.read_bytes() for p in files}


def expected_quarantine(written: dict[Path, bytes]) -> dict[str, bytes]:
    return {f"{p.parent.parent.name}/{p.parent.name}/{p.stem}": data for p, data in written.items()}


def test_a_data_run_rebuilds_corrupt_partitions_and_keeps_the_originals(
    small_config_path,
    clean_store,
    damaged,
):
    root, written = damaged
    defs = build_definitions(load_config(small_config_path), store_root=str(root))
    assert _run(defs, DATA_JOB, FULL_RANGE).success
    store, clean = ParquetStore(root), ParquetStore(clean_store)
    for table, tf, symbol in CORRUPTED:
        rebuilt = store.read(table, tf, symbol)
        pd.testing.assert_frame_equal(rebuilt, clean.read(table, tf, symbol))
        assert store.meta(table, tf, symbol) == clean.meta(table, tf, symbol)
    assert quarantined(root) == expected_quarantine(written)
    assert not (clean_store / QUARANTINE_DIR).exists()


def test_reading_a_corrupt_file_names_it_and_quarantines_it(damaged):
    root, written = damaged
    store = ParquetStore(root)
    for (table, tf, symbol), path in zip(CORRUPTED, written, strict=True):
        with pytest.raises(CorruptPartition, match=re.escape(f"corrupt store file {path} ")) as caught:
            store.read(table, tf, symbol)
        assert isinstance(caught.value, StoreError) and caught.value.moved_to.parent.is_relative_to(
            root / QUARANTINE_DIR / table / tf
        )
        assert not store.exists(table, tf, symbol)  # absent from now on, so its owner rebuilds it
        with pytest.raises(StoreError, match=r"no \w+ data"):
            store.read(table, tf, symbol)
    assert quarantined(root) == expected_quarantine(written)
    assert [s for tf, s in store.partitions("features") if tf == "4h"] == ["APT", "BTC", "ETH"]
    # a read that fails on an intact file (here a filter of the wrong type) is not corruption
    with pytest.raises(Exception, match="timestamp"):
        store.read("bars", "1h", "BTC", start=pd.Timestamp("2024-01-01").to_datetime64())
    assert store.exists("bars", "1h", "BTC") and len(quarantined(root)) == len(CORRUPTED)


def test_queries_answer_for_the_other_files(clean_store, damaged):
    root, written = damaged
    sql = "SELECT symbol, count(*) AS n FROM {} GROUP BY symbol ORDER BY symbol"
    for table, tf, symbol in CORRUPTED:
        view = f"{table}_{tf}"
        got = query(root, sql.format(view)).set_index("symbol")["n"]
        want = query(clean_store, sql.format(view)).set_index("symbol")["n"]
        pd.testing.assert_series_equal(got, want.drop(symbol))
    assert quarantined(root) == expected_quarantine(written)


def test_apex_audit_names_the_bad_file_and_audits_the_rest(small_config_path, damaged, capsys):
    root, _ = damaged
    bad = ParquetStore(root).path("bars", "1h", "ETH")
    assert main(["audit", "--json", "--config", small_config_path, "--store", str(root)]) == 0
    out, err = capsys.readouterr()
    audited = {(r["symbol"], r["timeframe"]) for r in json.loads(out)}
    # ETH's 4h and 1d audits need its 1h base, which is quarantined until the next refresh refetches it
    assert audited == {(s, tf) for s in SYMBOLS for tf in TIMEFRAMES if s != "ETH"}
    assert str(bad) in err and "Parquet magic bytes not found" in err
