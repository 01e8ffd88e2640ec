"""Canonical resampling: hand-built buckets, properties, and equality with Binance's own 4h/1d candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_rotation.bars import AUDITED_BAR_COLUMNS, BAR_COLUMNS, bars_frame
from apex_rotation.config import AuditConfig
from apex_rotation.ingest.base import DataError
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.store.audit import audit_bars
from apex_rotation.store.resample import resample
from apex_rotation_tests.shared import real_feather, requires_shared

SYMBOLS = ["BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ", "AVAX", "MATIC", "XRP", "LTC"]
SYMBOLS += ["DOGE", "SUI", "SEI", "TIA"]
H = 3_600_000_000_000  # 1h in ns
OHLCV = ["open", "high", "low", "close", "volume"]


def ramp(start: str, n: int, drop: tuple[int, ...] = ()) -> pd.DataFrame:
    """1h bar i: open 100+i, high +0.5, low -0.5, close +0.25, volume i+1 (bars in `drop` left out)."""
    t0 = pd.Timestamp(start, tz="UTC").value
    i = np.array([k for k in range(n) if k not in drop], dtype=float)
    columns = {"open": 100 + i, "high": 100.5 + i, "low": 99.5 + i, "close": 100.25 + i, "volume": i + 1}
    return bars_frame(t0 + i.astype(np.int64) * H, columns, "1h")


def test_partial_buckets_at_both_ends_are_dropped() -> None:
    bars = ramp("2024-01-01 02:00", 28)  # 02:00 on the 1st .. 05:00 on the 2nd
    four = resample(bars, "4h")
    assert list(four.columns) == BAR_COLUMNS
    assert list(four.index) == list(
        pd.date_range("2024-01-01 04:00", "2024-01-02 00:00", freq="4h", tz="UTC")
    )
    # 04:00 bucket = 1h bars 2..5
    assert four.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [
        102,
        105.5,
        101.5,
        105.25,
        18,
    ]
    assert (four["close_time"] - four.index == pd.Timedelta(hours=4)).all()
    assert resample(bars, "1d").empty  # the 1st starts before the first bar, the 2nd has not closed


def test_bucket_closing_with_the_last_bar_is_kept() -> None:
    bars = ramp("2024-01-01", 24)  # ends with the 23:00 bar, which closes at the day's end
    day = resample(bars, "1d")
    assert day.index.tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]
    assert day.iloc[0][["open", "high", "low", "close", "volume"]].tolist() == [100, 123.5, 99.5, 123.25, 300]
    assert resample(bars.iloc[:-1], "1d").empty


def test_buckets_with_internal_gaps_are_kept_from_the_bars_they_have() -> None:
    bars = ramp("2024-01-01", 8, drop=(4, 5))  # the 04:00 bucket lacks its 04:00 and 05:00 bars
    four = resample(bars, "4h")
    assert len(four) == 2
    assert four.iloc[1][["open", "high", "low", "close", "volume"]].tolist() == [
        106,
        107.5,
        105.5,
        107.25,
        15,
    ]


def test_1h_is_returned_as_is() -> None:
    bars = ramp("2024-01-01", 5)
    assert resample(bars, "1h") is bars


def test_audit_columns_carried_through() -> None:
    bars = ramp("2024-01-01", 12)
    bars["filled"] = [True] * 4 + [True, False, True, True] + [True] * 4
    bars["fill_reason"] = ["gap"] * 4 + ["gap", "", "spike", "gap"] + ["gap", "spike", "gap", "gap"]
    bars["outlier"] = [False] * 4 + [False, True, False, False] + [False] * 4
    four = resample(bars, "4h")
    assert list(four.columns) == AUDITED_BAR_COLUMNS
    assert four["filled"].tolist() == [True, False, True]
    assert four["filled_hours"].tolist() == [4, 3, 4]
    assert four["fill_reason"].tolist() == ["gap", "", "spike"]
    assert four["outlier"].tolist() == [False, True, False]


def audited_1h(bars: pd.DataFrame) -> pd.DataFrame:
    return audit_bars(bars, symbol="SOL", timeframe="1h", cfg=AuditConfig())[0]


def test_a_partly_filled_4h_bucket_is_built_from_its_traded_hours() -> None:
    """The audit fills 04:00 (the first hour of the 2nd 4h bar) and 08:00-11:00 (all of the 3rd) flat at the
    previous close, 103.25 and 107.25. The 2nd bar opens at its first traded price (05:00's 105), not at
    03:00's close, and its low is the traded hours' 104.5, not the fill's 103.25."""
    four = resample(audited_1h(ramp("2024-01-01", 16, drop=(4, 8, 9, 10, 11))), "4h")
    assert four[OHLCV].to_numpy().tolist() == [
        [100, 103.5, 99.5, 103.25, 1 + 2 + 3 + 4],
        [105, 107.5, 104.5, 107.25, 6 + 7 + 8],
        [107.25, 107.25, 107.25, 107.25, 0],  # every hour filled: the flat fill, as before
        [112, 115.5, 111.5, 115.25, 13 + 14 + 15 + 16],
    ]
    assert four["filled_hours"].tolist() == [0, 1, 4, 0]
    assert four["filled"].tolist() == [False, False, True, False]
    assert four["fill_reason"].tolist() == ["", "", "gap", ""]


def test_a_partly_filled_day_is_built_from_its_traded_hours() -> None:
    """Day 2 lacks 00:00 and 01:00 (filled at day 1's close 123.25): it opens at 02:00's 126."""
    day = resample(audited_1h(ramp("2024-01-01", 48, drop=(24, 25))), "1d")
    assert day[OHLCV].to_numpy().tolist() == [
        [100, 123.5, 99.5, 123.25, sum(range(1, 25))],
        [126, 147.5, 125.5, 147.25, sum(range(27, 49))],
    ]
    assert day["filled_hours"].tolist() == [0, 2] and not day["filled"].any()


def test_empty_input() -> None:
    out = resample(ramp("2024-01-01", 0), "4h")
    assert out.empty and list(out.columns) == BAR_COLUMNS


def test_refuses_frames_that_are_not_canonical_1h_bars() -> None:
    bars = ramp("2024-01-01", 8)
    with pytest.raises(DataError, match=r"resample:SOL:1h at 2024-01-01T01:00:00.*not strictly increasing"):
        resample(bars.iloc[[0, 1, 1, 2]], "4h", symbol="SOL")
    with pytest.raises(DataError, match=r"not 1h bars \(close_time - open_time != 1h\)"):
        resample(resample(bars, "4h"), "1d")
    with pytest.raises(DataError, match="off the 1h grid"):
        resample(bars.set_axis(bars.index + pd.Timedelta(minutes=30)).drop(columns="close_time"), "4h")


@st.composite
def hourly_bars(draw) -> pd.DataFrame:
    """Random valid 1h bars starting at any hour, with random missing bars."""
    n = draw(st.integers(0, 150))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start = pd.Timestamp("2024-03-01", tz="UTC").value + draw(st.integers(0, 47)) * H
    keep = rng.random(n) > draw(st.sampled_from([0.0, 0.1, 0.5]))
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.concatenate([[100.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.random(n) * 0.01)
    low = np.minimum(open_, close) * (1 - rng.random(n) * 0.01)
    columns = {"open": open_, "high": high, "low": low, "close": close, "volume": rng.random(n) * 10}
    return bars_frame((start + np.arange(n) * H)[keep], {k: v[keep] for k, v in columns.items()}, "1h")


@settings(max_examples=80, deadline=None)
@given(hourly_bars(), st.sampled_from(["4h", "1d"]))
def test_resample_properties(bars: pd.DataFrame, timeframe: str) -> None:
    out = resample(bars, timeframe)
    step = pd.Timedelta(timeframe)
    assert (out["high"] >= out[["open", "close"]].max(axis=1)).all()
    assert (out["low"] <= out[["open", "close"]].min(axis=1)).all()
    if out.empty:
        return
    assert out.index[0] >= bars.index[0] and out["close_time"].iloc[-1] <= bars["close_time"].iloc[-1]
    inside = bars[(bars.index >= out.index[0]) & (bars.index < out["close_time"].iloc[-1])]
    assert out["volume"].sum() == pytest.approx(inside["volume"].sum(), rel=1e-12)
    # pandas' own resample as an independent oracle on the kept window
    oracle = (
        inside.resample(step).agg({"open": "first", "high": "max", "low": "min", "close": "last"}).dropna()
    )
    pd.testing.assert_frame_equal(
        out[["open", "high", "low", "close"]], oracle, check_freq=False, check_names=False
    )


@settings(max_examples=40, deadline=None)
@given(hourly_bars(), st.sampled_from(["4h", "1d"]), st.floats(0, 1))
def test_no_lookahead(bars: pd.DataFrame, timeframe: str, cut: float) -> None:
    """Resampling a prefix of the 1h bars gives the same bars as the whole, up to the prefix's end."""
    k = int(cut * len(bars))
    full, prefix = resample(bars, timeframe), resample(bars.iloc[:k], timeframe)
    pd.testing.assert_frame_equal(prefix, full.iloc[: len(prefix)])
    if k:
        assert (full[full["close_time"] <= bars["close_time"].iloc[k - 1]].index.isin(prefix.index)).all()


def _exchange_bars(symbol: str, timeframe: str) -> pd.DataFrame:
    raw = pd.read_feather(real_feather(symbol, timeframe)).rename(columns={"date": "open_time"})
    now = pd.Timestamp("2025-01-01", tz="UTC")
    return clean_ohlcv(raw, symbol=symbol, timeframe=timeframe, source="files", now=now).bars


@requires_shared
@pytest.mark.parametrize("symbol", SYMBOLS)
def test_equals_binance_candles(symbol: str) -> None:
    """Our 4h/1d from the 1h file equal Binance's own 4h/1d files: OHLC exactly, volume to 1e-12."""
    hourly = _exchange_bars(symbol, "1h")
    short = symbol in {"BTC", "ETH", "LTC"}  # quirk 2: these end 2024-09-06 03:00, the rest 2024-09-07 01:00
    assert hourly.index[-1] == pd.Timestamp("2024-09-06 03:00" if short else "2024-09-07 01:00", tz="UTC")
    for timeframe, rows in (("4h", 1495 if short else 1500), ("1d", 249 if short else 250)):
        ours, theirs = resample(hourly, timeframe), _exchange_bars(symbol, timeframe)
        assert len(ours) == len(theirs) == rows  # same window: the exchange also has no unclosed bucket
        pd.testing.assert_index_equal(ours.index, theirs.index)
        prices = ["open", "high", "low", "close", "close_time"]
        pd.testing.assert_frame_equal(ours[prices], theirs[prices], check_exact=True)
        np.testing.assert_allclose(ours["volume"], theirs["volume"], rtol=1e-12, atol=0)
