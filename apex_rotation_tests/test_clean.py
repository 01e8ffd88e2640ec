"""clean_ohlcv: the canonical frame, each documented cleaning, one test per kind of bad input."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apex_rotation.bars import BAR_COLUMNS
from apex_rotation.ingest.base import DataError
from apex_rotation.ingest.clean import NOTE_KEYS, clean_ohlcv, epoch_to_ns

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC in ms
H = 3_600_000
NOW = pd.Timestamp("2024-01-02", tz="UTC")
ROWS = [  # open, high, low, close, volume: three BTC 1h bars of 2024-01-01 (Binance)
    (42283.58, 42554.57, 42261.02, 42475.23, 1271.68108),
    (42475.23, 42775.00, 42431.65, 42613.56, 1196.37856),
    (42613.57, 42638.41, 42500.00, 42581.10, 685.21980),
]


def raw(rows=ROWS, start_ms: int = T0, step_ms: int = H, **columns) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close", "volume"])
    frame.insert(0, "open_time", [start_ms + i * step_ms for i in range(len(rows))])
    return frame.assign(**columns)


def clean(frame: pd.DataFrame, **kw):
    kw = {"symbol": "BTC", "timeframe": "1h", "source": "test", "now": NOW} | kw
    return clean_ohlcv(frame, **kw)


def fails(frame: pd.DataFrame, match: str, at: str | None = "2024-01-01T01:00:00+00:00", **kw) -> DataError:
    """Clean must raise a DataError naming the source, symbol, timeframe, the reason and the bar."""
    with pytest.raises(DataError, match=match) as info:
        clean(frame, **kw)
    message = str(info.value)
    assert message.startswith(f"test:BTC:{kw.get('timeframe', '1h')}"), message
    if at is not None:
        assert f"at {at}" in message, message
    return info.value


def test_canonical_frame() -> None:
    result = clean(raw())
    bars = result.bars
    assert list(bars.columns) == BAR_COLUMNS
    assert bars.index.name == "open_time"
    assert str(bars.index.dtype) == "datetime64[ns, UTC]"
    assert list(bars.index) == list(pd.date_range("2024-01-01", periods=3, freq="h", tz="UTC"))
    assert (bars["close_time"] - bars.index == pd.Timedelta(hours=1)).all()
    assert str(bars["close_time"].dtype) == "datetime64[ns, UTC]"
    assert (bars.dtypes[:5] == np.float64).all()
    assert bars.iloc[0].tolist()[:5] == list(ROWS[0])
    assert result.notes == dict.fromkeys(NOTE_KEYS, 0)


def test_microsecond_and_timestamp_open_times_give_the_same_bars() -> None:
    expected = clean(raw()).bars
    micros = raw()
    micros["open_time"] *= 1000
    pd.testing.assert_frame_equal(clean(micros).bars, expected)
    berlin = raw()
    berlin["open_time"] = pd.to_datetime(berlin["open_time"], unit="ms", utc=True).dt.tz_convert(
        "Europe/Berlin"
    )
    pd.testing.assert_frame_equal(clean(berlin).bars, expected)
    objects = raw()
    objects["open_time"] = [dt.datetime(2024, 1, 1, h, tzinfo=dt.UTC) for h in range(3)]
    pd.testing.assert_frame_equal(clean(objects).bars, expected)


def test_epoch_units_told_apart_per_value() -> None:
    ns, bad = epoch_to_ns(np.array([T0, T0 * 1000, 1_704_067_200, T0 * 1_000_000]))
    assert ns[:2].tolist() == [T0 * 1_000_000] * 2
    assert bad.tolist() == [False, False, True, True]


def test_numeric_strings_are_coerced_and_counted() -> None:
    strings = raw(rows=[[f"{x!r}" for x in row] for row in ROWS])
    strings["open_time"] = strings["open_time"].astype(str)
    result = clean(strings)
    pd.testing.assert_frame_equal(result.bars, clean(raw()).bars)
    assert result.notes["strings_coerced"] == 3 * 5 + 3


def test_strings_parse_exactly_like_float() -> None:
    """Decimal strings must round like Python's float (pd.to_numeric can be 1 ulp off on this one)."""
    price = 180144.26923887926
    frame = raw(rows=[(price, price, price, price, 1.0)]).astype({"close": object})
    frame.loc[0, "close"] = repr(price)
    assert clean(frame).bars["close"].iloc[0] == price


def test_unclosed_bar_is_dropped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    now = pd.Timestamp("2024-01-01 02:59:59", tz="UTC")  # the 02:00 bar closes at 03:00
    with caplog.at_level(logging.INFO, logger="apex_rotation.ingest.clean"):
        result = clean(raw(), now=now)
    assert list(result.bars.index.hour) == [0, 1]
    assert result.notes["unclosed_dropped"] == 1
    assert "unclosed_dropped=1" in caplog.text and "symbol=BTC" in caplog.text


def test_bar_closing_exactly_at_now_is_kept() -> None:
    result = clean(raw(), now=pd.Timestamp("2024-01-01 03:00", tz="UTC"))
    assert len(result.bars) == 3 and result.notes["unclosed_dropped"] == 0


def test_exact_duplicates_collapse_and_disorder_is_sorted() -> None:
    frame = raw()
    shuffled = pd.concat([frame.iloc[[2, 0]], frame.iloc[[1, 0]]], ignore_index=True)  # times 2,0,1,0
    result = clean(shuffled)
    pd.testing.assert_frame_equal(result.bars, clean(frame).bars)
    assert result.notes["duplicates_dropped"] == 1
    assert result.notes["reordered"] == 2  # 2->0 and 1->0 step back in time


def test_a_50x_spike_is_not_a_cleaning_error() -> None:
    rows = [ROWS[0], (42475.23, 2_123_761.5, 42431.65, 2_123_761.5, 1.0), ROWS[2]]
    assert clean(raw(rows=rows)).bars["high"].iloc[1] == 2_123_761.5


def test_empty_response() -> None:
    fails(raw(rows=[]), "empty response", at=None)
    fails(pd.DataFrame(), "empty response", at=None)
    empty = clean(raw(rows=[]), allow_empty=True)
    assert empty.bars.empty and list(empty.bars.columns) == BAR_COLUMNS
    assert str(empty.bars.index.dtype) == "datetime64[ns, UTC]"


def test_response_with_only_the_unclosed_bar() -> None:
    only_current = raw(rows=ROWS[:1])
    now = pd.Timestamp("2024-01-01 00:30", tz="UTC")
    fails(only_current, r"no closed bars: the response held only 1 unclosed bar", at=None, now=now)
    assert clean(only_current, now=now, allow_empty=True).bars.empty


def test_missing_fields() -> None:
    fails(raw().drop(columns=["volume"]), r"missing fields \['volume'\]", at=None)


def test_non_numeric_string() -> None:
    frame = raw().astype({"close": object})
    frame.loc[1, "close"] = "42613.5x"
    fails(frame, r"close is not a number: '42613.5x' \(1 bar\(s\)\)")


@pytest.mark.parametrize(("column", "value"), [("open", np.nan), ("close", np.inf), ("volume", np.nan)])
def test_nan_price_or_volume(column: str, value: float) -> None:
    frame = raw()
    frame.loc[1, column] = value
    fails(frame, rf"missing \(NaN\) or infinite value: .*{column}={value}")
    strings = frame.astype({column: object})
    strings.loc[1, column] = None  # a null among decimal strings
    fails(strings, r"missing \(NaN\) or infinite value")


@pytest.mark.parametrize("value", [0.0, -1.0])
def test_zero_or_negative_price(value: float) -> None:
    frame = raw()
    frame.loc[1, "low"] = value
    fails(frame, "price is zero or negative")


def test_high_below_low() -> None:
    frame = raw()
    frame.loc[1, ["high", "low"]] = [42431.65, 42775.00]
    fails(frame, "high is below low")


@pytest.mark.parametrize(("column", "value"), [("open", 42800.0), ("close", 42400.0)])
def test_open_or_close_outside_range(column: str, value: float) -> None:
    frame = raw()
    frame.loc[1, column] = value
    fails(frame, r"open or close lies outside \[low, high\]")


def test_negative_volume() -> None:
    frame = raw()
    frame.loc[1, "volume"] = -0.5
    fails(frame, "volume is negative")


def test_duplicate_with_different_values() -> None:
    frame = raw()
    clash = frame.iloc[[1]].assign(volume=1.0)
    fails(pd.concat([frame, clash]), "duplicate bar with different values")


def test_timestamp_off_the_grid() -> None:
    frame = raw()
    frame.loc[1, "open_time"] += 60_000  # 01:01
    fails(frame, "off the 1h UTC grid", at="2024-01-01T01:01:00+00:00")
    fails(raw(step_ms=H), "off the 4h UTC grid", timeframe="4h")


def test_naive_timestamps() -> None:
    frame = raw()
    frame["open_time"] = pd.to_datetime(frame["open_time"], unit="ms")  # datetime64[ns], no tz
    fails(frame, "naive", at="2024-01-01 00:00:00")
    frame["open_time"] = [dt.datetime(2024, 1, 1, h) for h in range(3)]  # python objects, no tz
    fails(frame.astype({"open_time": object}), "naive", at="2024-01-01 00:00:00")


def test_future_bar() -> None:
    now = pd.Timestamp("2024-01-01 00:30", tz="UTC")
    fails(raw(), r"bar opens after now \(2024-01-01T00:30:00\+00:00\): a future bar \(2 bar\(s\)\)", now=now)


def test_wrong_symbol() -> None:
    frame = raw(ticker=["BTC", "ETH", "BTC"])
    fails(frame, r"wrong instrument \(expected ticker \['BTC'\]\): ticker 'ETH'", ticker="BTC")
    assert len(clean(frame, ticker=["BTC", "ETH"]).bars) == 3  # an alias switch: both tickers accepted


def test_open_time_in_seconds_is_refused() -> None:
    fails(raw(start_ms=T0 // 1000, step_ms=3600), "neither epoch ms nor µs", at=None)


def test_unknown_timeframe() -> None:
    fails(raw(), "unknown timeframe '2h'", at=None, timeframe="2h")


@st.composite
def raw_frames(draw) -> pd.DataFrame:
    """Valid raw responses: random bars, some repeated, shuffled, some prices as strings."""
    n = draw(st.integers(1, 30))
    starts = draw(st.lists(st.integers(0, 200), min_size=n, max_size=n, unique=True))
    price = st.floats(1e-4, 1e6, allow_nan=False, allow_infinity=False)
    rows = []
    for k in starts:
        o, c, a, b = (draw(price) for _ in range(4))
        rows.append((T0 + k * H, o, max(o, c, a), min(o, c, b), c, draw(st.floats(0, 1e9))))
    rows += draw(st.lists(st.sampled_from(rows), max_size=5))
    frame = pd.DataFrame(rows, columns=["open_time", "open", "high", "low", "close", "volume"])
    frame = frame.sample(frac=1, random_state=draw(st.integers(0, 2**31)), ignore_index=True)
    if draw(st.booleans()):
        frame["close"] = frame["close"].map(repr)
    return frame


@settings(max_examples=60, deadline=None)
@given(raw_frames())
def test_clean_is_idempotent(frame: pd.DataFrame) -> None:
    now = pd.Timestamp("2024-02-01", tz="UTC")
    first = clean(frame, now=now)
    second = clean(first.bars, now=now)
    pd.testing.assert_frame_equal(second.bars, first.bars)
    assert second.notes == dict.fromkeys(NOTE_KEYS, 0)
    assert first.bars.index.is_monotonic_increasing and first.bars.index.is_unique
    assert len(first.bars) == frame["open_time"].nunique()


def clean_log(caplog: pytest.LogCaptureFixture, frame: pd.DataFrame, **kw) -> tuple[dict, list[str]]:
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="apex_rotation.ingest.clean"):
        result = clean(frame, **kw)
    return result.notes, [(r.levelname, r.getMessage()) for r in caplog.records]


def test_every_cleaning_step_is_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Unclosed, duplicate, out-of-order and string rows together: one INFO line with exactly those counts."""
    frame = raw(rows=[*ROWS, ROWS[2]], start_ms=T0).astype(object)
    frame.loc[3, "open_time"] = T0 + 3 * H  # the 03:00 bar, still open at now
    frame = pd.concat([frame.iloc[[2, 0, 1, 0, 3]]], ignore_index=True)  # 2, 0, 1, 0(dup), 3(unclosed)
    frame.loc[:, "close"] = frame["close"].map(repr)  # every close as a decimal string
    frame.loc[4, "open_time"] = str(T0 + 3 * H)  # a string open time on the unclosed row: dropped unparsed
    notes, lines = clean_log(caplog, frame, source="ccxt", now=pd.Timestamp("2024-01-01 03:30", tz="UTC"))
    assert notes == {"unclosed_dropped": 1, "duplicates_dropped": 1, "reordered": 2, "strings_coerced": 4}
    assert lines == [
        (
            "INFO",
            "clean_ohlcv source=ccxt symbol=BTC timeframe=1h rows=3 "
            "unclosed_dropped=1 duplicates_dropped=1 reordered=2 strings_coerced=4",
        )
    ]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda: raw(), "rows=3 nothing_cleaned"),
        (
            lambda: pd.concat([raw(), raw().iloc[[1]]], ignore_index=True),
            "rows=3 duplicates_dropped=1 reordered=1",
        ),
        (lambda: raw().iloc[[1, 0, 2]], "rows=3 reordered=1"),
        (lambda: raw().astype({"volume": str}), "rows=3 strings_coerced=3"),
        (lambda: raw().iloc[:0], "rows=0 nothing_cleaned"),
    ],
    ids=["clean", "duplicate", "reordered", "strings", "empty_allowed"],
)
def test_the_log_line_names_only_the_steps_that_ran(caplog: pytest.LogCaptureFixture, make, expected) -> None:
    _, lines = clean_log(caplog, make(), allow_empty=True)
    assert len(lines) == 1
    level, message = lines[0]
    assert message == f"clean_ohlcv source=test symbol=BTC timeframe=1h {expected}"
    assert level == ("DEBUG" if "nothing_cleaned" in expected else "INFO")
