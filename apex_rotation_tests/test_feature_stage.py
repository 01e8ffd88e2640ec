"""The feature stage's own rules: TD over traded bars only, and the loader's join of stages."""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from apex_rotation.config import AuditConfig, TDConfig
from apex_rotation.features import load, td
from apex_rotation.features.compute import TD_PERSISTENT, td_on_traded_bars
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.store.audit import audit_bars
from apex_rotation.store.parquet import ParquetStore
from apex_rotation_tests.shared import real_feather, requires_shared

OUTAGE = slice("2024-03-24 00:00", "2024-03-24 15:00")  # 16 hours while a buy countdown stood at 4


@pytest.fixture(scope="module")
def btc_with_outage() -> pd.DataFrame:
    raw = pd.read_feather(real_feather("BTC", "1h")).rename(columns={"date": "open_time"})
    raw["open_time"] = raw["open_time"].astype("int64") // 10**6
    bars = clean_ohlcv(
        raw, symbol="BTC", timeframe="1h", source="files", now=pd.Timestamp("2025", tz="UTC")
    ).bars
    audited, report = audit_bars(
        bars.drop(bars.loc[OUTAGE].index), symbol="BTC", timeframe="1h", cfg=AuditConfig()
    )
    assert report.filled == 16
    return audited


@requires_shared
def test_filled_bars_never_count_in_td(btc_with_outage):
    audited = btc_with_outage
    naive = td.compute(audited)
    assert naive.loc[OUTAGE, "td_countdown"].max() == 13  # flat filled bars would have printed a fake 13
    state = td_on_traded_bars(audited, TDConfig())
    traded = td.compute(audited[~audited["filled"]])
    pd.testing.assert_frame_equal(state.loc[~audited["filled"], traded.columns], traded, check_dtype=False)
    before = state.loc[:"2024-03-23 23:00"].iloc[-1]
    gap = state.loc[OUTAGE]
    assert gap["filled"].all() and (gap["td_countdown"] == 4).all()
    for col in TD_PERSISTENT:
        assert (gap[col].astype(object) == before[col]).all() or (
            gap[col].isna().all() and pd.isna(before[col])
        )
    assert (
        not gap["td_perfected"].any()
        and gap["td_flip"].isna().all()
        and gap["td_setup_risk_level"].isna().all()
    )
    assert state["td_countdown"].dtype == np.int64 and state["td_perfected"].dtype == bool


def test_without_gaps_td_on_traded_bars_is_td_compute():
    idx = pd.date_range("2024-01-01", periods=60, freq="4h", tz="UTC", name="open_time")
    close = 100 + np.sin(np.arange(60) / 3) * 5
    bars = pd.DataFrame(
        {"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0, "filled": False},
        index=idx,
    )
    state = td_on_traded_bars(bars, TDConfig())
    pd.testing.assert_frame_equal(state.drop(columns="filled"), td.compute(bars))


def test_load_joins_later_stages_onto_the_bars(tmp_path):
    store = ParquetStore(tmp_path)
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="open_time")
    store.write("audited_bars", "1h", "BTC", pd.DataFrame({"close": [1.0, 2, 3, 4, 5]}, index=idx))
    store.write("features", "1h", "BTC", pd.DataFrame({"ret": [np.nan, 1.0, 0.5, 0.33]}, index=idx[:4]))
    frame = load("BTC", "1h", root=tmp_path)
    assert len(frame) == 5 and np.isnan(frame["ret"].iloc[-1])  # the stale stage shows NaN, no row is lost
    only_bars = load("BTC", "1h", root=tmp_path, assets=("audited_bars",))
    assert list(only_bars.columns) == ["close"]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2024-01-01 01:00", "2024-01-01 03:00"),  # naive strings: UTC
        (pd.Timestamp("2024-01-01 01:00"), datetime(2024, 1, 1, 3)),  # naive Timestamp / datetime: UTC
        ("2024-01-01T03:00+02:00", "2024-01-01T05:00+02:00"),  # an offset: converted
        (
            pd.Timestamp("2024-01-01 02:00", tz="Europe/Paris"),
            pd.Timestamp("2023-12-31 22:00", tz="America/New_York"),
        ),
    ],
)
def test_load_takes_naive_bounds_as_utc_and_converts_other_zones(tmp_path, start, end):
    store = ParquetStore(tmp_path)
    idx = pd.date_range("2024-01-01", periods=5, freq="1h", tz="UTC", name="open_time")
    store.write("audited_bars", "1h", "BTC", pd.DataFrame({"close": [1.0, 2, 3, 4, 5]}, index=idx))
    frame = load("BTC", "1h", start=start, end=end, root=tmp_path)
    assert frame["close"].tolist() == [2.0, 3.0, 4.0]
    assert str(frame.index.tz) == "UTC"
