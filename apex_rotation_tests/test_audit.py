"""The audit: exact counts on hand-built frames, gap and spike fills, past-only outliers and winsorization."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from apex_rotation.bars import AUDITED_BAR_COLUMNS, bars_frame, winsorize_returns
from apex_rotation.config import AuditConfig
from apex_rotation.ingest.base import DataError
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.store.audit import AuditReport, audit_bars
from apex_rotation.store.resample import resample
from apex_rotation_tests.shared import real_feather, requires_shared

CFG = AuditConfig()  # spike_factor 10, outlier_return_z 8, max_missing_pct 0.1
T0 = pd.Timestamp("2024-01-01", tz="UTC")
H = 3_600_000_000_000
OHLCV = ["open", "high", "low", "close", "volume"]


def flat(hours: list[int], closes: list[float], volume: float = 1.0) -> pd.DataFrame:
    """Bars at T0 + hours whose open = high = low = close."""
    c = np.asarray(closes, dtype=float)
    columns = {"open": c, "high": c, "low": c, "close": c, "volume": np.full(c.size, volume)}
    return bars_frame(T0.value + np.asarray(hours) * H, columns, "1h")


def audit(bars: pd.DataFrame, **kw) -> tuple[pd.DataFrame, AuditReport]:
    return audit_bars(bars, symbol="SOL", timeframe=kw.pop("timeframe", "1h"), cfg=kw.pop("cfg", CFG), **kw)


def test_gaps_become_flagged_flat_bars_at_the_previous_close() -> None:
    audited, report = audit(flat([0, 1, 2, 5, 6], [10, 11, 12, 15, 16]))
    assert list(audited.columns) == AUDITED_BAR_COLUMNS
    assert list(audited.index) == list(pd.date_range(T0, periods=7, freq="h"))
    assert audited["close"].tolist() == [10, 11, 12, 12, 12, 15, 16]
    assert (audited.loc[audited["filled"], ["open", "high", "low", "close"]] == 12).all().all()
    assert audited["volume"].tolist() == [1, 1, 1, 0, 0, 1, 1]
    assert audited["filled"].tolist() == [False, False, False, True, True, False, False]
    assert audited["fill_reason"].tolist() == ["", "", "", "gap", "gap", "", ""]
    assert (audited["close_time"] - audited.index == pd.Timedelta(hours=1)).all()
    assert report.model_dump() == {
        "symbol": "SOL", "timeframe": "1h", "rows": 5, "expected": 7, "missing": 2,
        "missing_pct": pytest.approx(200 / 7), "duplicates": 0, "misaligned": 0, "invalid": 0,
        "zero_volume": 0, "outliers": 0, "spikes": 0, "wicks": 0, "filled": 2,
        "first": "2024-01-01T00:00:00+00:00", "last": "2024-01-01T06:00:00+00:00",
        "missing_ok": False,
    }  # fmt: skip


def test_spikes_are_replaced_against_the_last_good_close() -> None:
    bars = flat(range(7), [100, 101, 5000, 102, 1, 103, 104])
    bars.loc[bars.index[5], "high"] = 1030  # 1030 >= 10 x 102 with open and close fine: a bad wick
    raw = bars.copy()
    audited, report = audit(bars)
    # 5000 >= 10 x 101; 102 is judged against 101 (not 5000); 1 <= 102 / 10
    assert audited["fill_reason"].tolist() == ["", "", "spike", "", "spike", "wick", ""]
    assert audited["close"].tolist() == [100, 101, 101, 102, 102, 103, 104]
    assert audited["high"].tolist() == [100, 101, 101, 102, 102, 103, 104]
    assert audited["volume"].tolist() == [1, 1, 0, 1, 0, 1, 1]
    assert audited["filled_hours"].tolist() == [0, 0, 1, 0, 1, 0, 0]
    assert (report.spikes, report.wicks, report.filled, report.missing) == (2, 1, 2, 0)
    pd.testing.assert_frame_equal(bars, raw)  # the raw bars are not touched


def test_an_absurd_wick_is_clipped_and_the_bar_kept() -> None:
    """A -19 % hour with a bad low of 0.0001 keeps its close; only the low is clipped (to min(open, close)).
    A bad high on a later hour is clipped to max(open, close). Neither bar is filled."""
    bars = flat(range(5), [100, 101, 81.8, 82, 83])
    bars.loc[bars.index[2], ["open", "high", "low"]] = [101, 101.5, 0.0001]
    bars.loc[bars.index[4], ["open", "high", "low"]] = [82, 5000, 81.5]
    audited, report = audit(bars)
    assert audited["fill_reason"].tolist() == ["", "", "wick", "", "wick"]
    assert not audited["filled"].any() and audited["filled_hours"].eq(0).all()
    assert audited["close"].tolist() == [100, 101, 81.8, 82, 83]  # the real -19 % stays
    assert audited["open"].tolist() == [100, 101, 101, 82, 82]
    assert audited["low"].tolist() == [100, 101, 81.8, 82, 81.5]
    assert audited["high"].tolist() == [100, 101, 101.5, 82, 83]
    assert audited["volume"].tolist() == [1, 1, 1, 1, 1]
    assert (report.wicks, report.spikes, report.filled) == (2, 0, 0)


def test_a_bad_close_or_open_is_still_a_spike() -> None:
    bars = flat(range(4), [100, 101, 0.0002, 102])
    bars.loc[bars.index[2], ["open", "high", "low"]] = [101, 101.5, 0.0001]  # the close is the bad tick
    bars.loc[bars.index[3], ["open", "low"]] = [0.0001, 0.0001]  # the open is a bad tick too
    audited, report = audit(bars)
    assert audited["fill_reason"].tolist() == ["", "", "spike", "spike"]
    assert audited["close"].tolist() == [100, 101, 101, 101]
    assert (report.wicks, report.spikes, report.filled) == (0, 2, 2)


def test_spike_threshold_is_inclusive() -> None:
    _, at = audit(flat(range(3), [100, 1000, 100]))
    _, below = audit(flat(range(3), [100, 999.99, 100]))
    _, down = audit(flat(range(3), [100, 10, 100]))
    assert (at.spikes, below.spikes, down.spikes) == (1, 0, 1)


def test_a_gap_after_a_spike_fills_at_the_last_good_close() -> None:
    audited, report = audit(flat([0, 1, 3], [100, 2000, 105]))
    assert audited["close"].tolist() == [100, 100, 100, 105]
    assert audited["fill_reason"].tolist() == ["", "spike", "gap", ""]
    assert (report.spikes, report.missing, report.filled) == (1, 1, 2)


def test_non_canonical_frame_is_reported_not_refused() -> None:
    good = flat([0, 1, 2, 3, 4], [10, 11, 12, 13, 14], volume=0.0)
    duplicate = good.iloc[[1]].assign(close=99.0)  # a second 01:00 bar
    off_grid = good.iloc[[0]].set_axis([T0 + pd.Timedelta(minutes=150)])  # 02:30
    nan_row = good.iloc[[4]].set_axis([T0 + pd.Timedelta(hours=5)]).assign(close=np.nan)
    bars = pd.concat([good, duplicate, off_grid, nan_row])
    audited, report = audit(bars)
    assert (report.rows, report.duplicates, report.misaligned, report.invalid) == (8, 1, 1, 1)
    assert (report.expected, report.missing, report.zero_volume) == (5, 0, 5)
    assert audited["close"].tolist() == [10, 11, 12, 13, 14]  # the first of the duplicates is kept
    assert report.last == "2024-01-01T04:00:00+00:00"


def test_empty_frame() -> None:
    audited, report = audit(flat([], []))
    assert audited.empty and list(audited.columns) == AUDITED_BAR_COLUMNS
    assert (report.rows, report.expected, report.missing, report.first, report.last) == (0, 0, 0, None, None)
    assert report.missing_ok


def test_refuses_a_frame_without_prices_or_utc_index() -> None:
    with pytest.raises(DataError, match=r"audit:SOL:1h: bars lack columns \['volume'\]"):
        audit(flat([0], [1]).drop(columns="volume"))
    with pytest.raises(DataError, match="indexed by UTC open_time"):
        audit(flat([0], [1]).reset_index())


def test_report_is_json_and_counts_stale_bars_without_storing_them() -> None:
    now = pd.Timestamp("2024-01-01 09:10", tz="UTC")  # bars up to 08:00 have closed; we have up to 02:00
    _, report = audit(flat([0, 1, 2], [1, 1, 1]), now=now)
    assert report.stale_bars == 6
    dumped = json.loads(json.dumps(report.model_dump(mode="json")))
    assert dumped["last"] == "2024-01-01T02:00:00+00:00"
    assert "stale_bars" not in dumped  # it depends on the clock: not part of the stored report
    _, later = audit(flat([0, 1, 2], [1, 1, 1]), now=now + pd.Timedelta(days=3))
    assert later.stale_bars == 78 and later.model_dump() == report.model_dump()


def zigzag(n: int, jumps: dict[int, float]) -> pd.DataFrame:
    """Closes whose log returns alternate ±1%, except `jumps` {bar: log return}."""
    r = np.where(np.arange(n) % 2, -0.01, 0.01)
    r[0] = 0.0
    for k, v in jumps.items():
        r[k] = v
    return flat(range(n), list(100 * np.exp(np.cumsum(r))))


def test_outliers_use_robust_sigma_of_past_returns_only() -> None:
    # robust sigma = 1.4826 x 0.01; 8 sigmas = 0.1186: log(1.2) = 0.182 is an outlier, 0.1 is not;
    # the jump at bar 10 comes before 48 past returns exist, so it cannot be judged
    bars = zigzag(200, {10: np.log(1.2), 100: np.log(1.2), 150: 0.1})
    audited, report = audit(bars)
    assert report.outliers == 1
    assert audited.index[audited["outlier"]].tolist() == [bars.index[100]]
    assert not audited["filled"].any()
    prefix, _ = audit(bars.iloc[:101])
    assert prefix["outlier"].iloc[-1]  # judged the same without the bars after it


def test_no_lookahead() -> None:
    bars = zigzag(400, {100: 0.3, 200: -0.3, 300: 2.5})  # 300: a 12x jump, a spike
    full, _ = audit(bars)
    for cut in (150, 250, 301, 350):
        prefix, _ = audit(bars.iloc[:cut])
        pd.testing.assert_frame_equal(prefix, full.iloc[:cut])


def test_winsorize_returns() -> None:
    index = pd.date_range(T0, periods=103, freq="h")
    values = np.where(np.arange(103) % 2, -0.01, 0.01)
    values[[5, 101]] = [0.5, -0.5]
    values[102] = np.nan
    returns = pd.Series(values, index=index, name="ret")
    out = winsorize_returns(returns, z=5.0, window=60)
    bound = 5 * 1.4826 * 0.01
    assert out.iloc[5] == 0.5  # before 48 past returns: no bound yet
    assert out.iloc[101] == pytest.approx(-bound, rel=1e-12)
    assert np.isnan(out.iloc[102]) and out.name == "ret" and out.index.equals(index)
    assert (out.drop(index[[5, 101, 102]]) == returns.drop(index[[5, 101, 102]])).all()


def _real_1h(symbol: str) -> pd.DataFrame:
    raw = pd.read_feather(real_feather(symbol, "1h")).rename(columns={"date": "open_time"})
    return clean_ohlcv(
        raw, symbol=symbol, timeframe="1h", source="files", now=pd.Timestamp("2025-01-01", tz="UTC")
    ).bars


@requires_shared
def test_real_btc_audit() -> None:
    bars = _real_1h("BTC")
    audited, report = audit(bars, timeframe="1h")
    assert (report.rows, report.expected, report.missing, report.spikes, report.zero_volume) == (
        5980,
        5980,
        0,
        0,
        0,
    )
    pd.testing.assert_frame_equal(audited[OHLCV], bars[OHLCV])
    four, report4 = audit(resample(bars, "4h"), timeframe="4h")
    # the 2024-03-05 drop from the all-time high and the 2024-08-05 crash
    assert four.index[four["outlier"]].strftime("%Y-%m-%d %H").tolist() == [
        "2024-03-05 16", "2024-08-05 00", "2024-08-05 12",
    ]  # fmt: skip
    assert report4.outliers == 3


@requires_shared
def test_real_bars_with_an_injected_bad_tick_and_hole() -> None:
    bars = _real_1h("SOL")
    bad = bars.index[3000]
    bars.loc[bad, ["high", "close"]] = bars.loc[bad, "high"] * 50
    bars = bars.drop(bars.index[4000:4010])
    audited, report = audit(bars)
    assert (report.spikes, report.missing, report.filled, report.missing_pct) == (
        1,
        10,
        11,
        pytest.approx(1000 / 6002),
    )
    assert audited.loc[bad, "fill_reason"] == "spike"
    assert audited.loc[bad, "close"] == bars["close"].iloc[2999]
    assert audited["fill_reason"].iloc[4000:4010].eq("gap").all()
    assert not report.missing_ok  # 0.17 % missing > 0.1 %


@requires_shared
def test_real_bars_with_an_injected_bad_low_keep_their_close() -> None:
    """A real SOL hour turned into a -19 % hour whose low printed 0.0001: the low is clipped, the close and
    the move stay in the 1h bars and in the 4h bar built from them."""
    bars = _real_1h("SOL")
    bad = bars.index[3001]  # the second hour of a 4h bar
    close = bars.loc[bad, "open"] * 0.81
    bars.loc[bad, ["close", "low"]] = [close, 0.0001]
    audited, report = audit(bars)
    assert (report.wicks, report.spikes, report.filled) == (1, 0, 0)
    assert audited.loc[bad, "fill_reason"] == "wick" and not audited.loc[bad, "filled"]
    assert audited.loc[bad, "close"] == close and audited.loc[bad, "low"] == close
    pd.testing.assert_frame_equal(audited.drop(index=bad)[OHLCV], bars.drop(index=bad)[OHLCV])
    four = resample(audited, "4h").loc[bad.floor("4h")]
    hours = bars.loc[bad.floor("4h") : bad.floor("4h") + pd.Timedelta(hours=3)]
    assert four["close"] == hours["close"].iloc[-1] and four["low"] == min(
        close, hours["low"].drop(bad).min()
    )
    assert four["fill_reason"] == "wick" and four["filled_hours"] == 0


def test_a_jump_that_persists_becomes_the_new_level():
    """A 10x move that holds (a redenomination) is accepted after SPIKE_CONFIRM_BARS bars instead of freezing
    the series; a one-bar tick stays a repaired spike, a bad wick between them breaks the run."""
    from apex_rotation.store.audit import SPIKE_CONFIRM_BARS, _repair_ticks

    level = [[100.0, 101.0, 99.0, 100.0]]
    shifted = [[1000.0, 1010.0, 990.0, 1000.0]]
    prices = np.array(level * 3 + shifted * 5 + level * 2)
    assert SPIKE_CONFIRM_BARS == 3
    spike, wick = _repair_ticks(prices, 10.0)
    assert spike.astype(int).tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 1, 1] and not wick.any()
    tick = np.array(level * 3 + [[100.0, 5000.0, 99.0, 5000.0]] + level * 3)
    assert _repair_ticks(tick, 10.0)[0].astype(int).tolist() == [0, 0, 0, 1, 0, 0, 0]
    broken = np.array(level + shifted * 2 + [[100.0, 5000.0, 99.0, 100.0]] + shifted * 2 + level)
    spike, wick = _repair_ticks(broken, 10.0)
    assert spike.astype(int).tolist() == [0, 1, 1, 0, 1, 1, 0] and wick.astype(int).tolist() == [
        0,
        0,
        0,
        1,
        0,
        0,
        0,
    ]
    assert broken[3].tolist() == [100.0, 100.0, 99.0, 100.0]  # the wick clipped in place
