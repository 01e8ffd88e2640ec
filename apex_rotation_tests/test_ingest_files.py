"""The files source: real freqtrade feather files read in place, Binance kline CSVs written to tmp_path."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from apex_rotation.bars import RAW_OHLCV_COLUMNS
from apex_rotation.config import AppConfig, load_config
from apex_rotation.ingest.base import DataError, SourceError
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.ingest.files import FilesSource
from apex_rotation_tests.shared import AURANG_2025H1, GENETRADER_2024, REAL_OHLCV, requires_shared

NOW = pd.Timestamp("2026-01-01", tz="UTC")
ALL_TIME = (pd.Timestamp("2020-01-01", tz="UTC"), pd.Timestamp("2025-12-31", tz="UTC"))
HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore\n"
)


def ms(ts: str) -> int:
    return pd.Timestamp(ts, tz="UTC").value // 1_000_000


def kline_csv(
    path: Path, start: str, closes: list[float], micros: bool = False, header: bool = False
) -> Path:
    """A Binance kline dump: 1h rows from `start`, open = high = low = close, volume 2 (µs times if asked)."""
    unit = 1000 if micros else 1
    lines = [HEADER] if header else []
    for i, c in enumerate(closes):
        t = (ms(start) + i * 3_600_000) * unit
        prices = ",".join([f"{c:.8f}"] * 4)
        lines.append(f"{t},{prices},2.00000000,{t + 3_599_999 * unit},{2 * c:.8f},5,1,{c:.8f},0\n")
    path.write_text("".join(lines))
    return path


def fetch(source: FilesSource, symbol: str, timeframe: str = "1h", window=ALL_TIME) -> pd.DataFrame:
    return source.fetch_ohlcv(symbol, timeframe, *window)


@requires_shared
def test_real_feather_files(default_config: AppConfig) -> None:
    source = FilesSource(default_config, GENETRADER_2024)
    btc = fetch(source, "BTC")
    assert list(btc.columns) == [*RAW_OHLCV_COLUMNS, "ticker"]
    assert btc["open_time"].dtype == np.int64 and (btc["ticker"] == "BTC").all()
    assert len(btc) == 5980
    assert btc.iloc[0].tolist()[:2] == [ms("2024-01-01"), 42283.58]
    assert btc["open_time"].iloc[-1] == ms("2024-09-06 03:00")
    bars = clean_ohlcv(btc, symbol="BTC", timeframe="1h", source="files", now=NOW, ticker="BTC").bars
    assert len(bars) == 5980
    assert len(fetch(source, "SOL")) == 6002  # quirk 2: the alts run 22 bars longer
    assert (len(fetch(source, "BTC", "4h")), len(fetch(source, "BTC", "1d"))) == (1495, 249)


@requires_shared
def test_window_is_inclusive(default_config: AppConfig) -> None:
    day = (pd.Timestamp("2024-08-05", tz="UTC"), pd.Timestamp("2024-08-05 23:00", tz="UTC"))
    btc = fetch(FilesSource(default_config, GENETRADER_2024), "BTC", window=day)
    assert btc["open_time"].tolist() == [ms("2024-08-05") + h * 3_600_000 for h in range(24)]


@requires_shared
def test_matic_becomes_pol(default_config: AppConfig, caplog: pytest.LogCaptureFixture) -> None:
    matic_2024 = FilesSource(default_config, GENETRADER_2024)
    with caplog.at_level(logging.WARNING, logger="apex_rotation.ingest.files"):
        before = fetch(matic_2024, "MATIC")  # the POL span has no file in this folder: logged, not fatal
    assert len(before) == 6002 and set(before["ticker"]) == {"MATIC"}
    assert "ticker=POL" in caplog.text and "POL_USDT-1h.feather" in caplog.text
    after = fetch(FilesSource(default_config, AURANG_2025H1), "MATIC")
    assert len(after) == 4040 and set(after["ticker"]) == {"POL"}
    both = fetch(FilesSource(default_config, REAL_OHLCV), "MATIC")  # both sets, found recursively
    assert both.groupby("ticker").size().to_dict() == {"MATIC": 6002, "POL": 4040}
    assert both["open_time"].is_monotonic_increasing
    bars = clean_ohlcv(
        both, symbol="MATIC", timeframe="1h", source="files", now=NOW, ticker=["MATIC", "POL"]
    ).bars
    assert len(bars) == 10042


@requires_shared
def test_history_window(default_config: AppConfig) -> None:
    window = FilesSource(default_config, GENETRADER_2024).history_window()
    assert window == (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-09-07 01:00", tz="UTC"))


def test_alias_switch_at_the_boundary(default_config: AppConfig, tmp_path: Path) -> None:
    kline_csv(tmp_path / "MATICUSDT-1h-2024-09.csv", "2024-09-09 22:00", [0.40, 0.41, 0.42, 0.43])
    kline_csv(tmp_path / "POLUSDT-1h-2024-09.csv", "2024-09-09 23:00", [0.50, 0.51, 0.52, 0.53])
    out = fetch(FilesSource(default_config, tmp_path), "MATIC")
    assert out["ticker"].tolist() == ["MATIC", "MATIC", "POL", "POL", "POL"]
    assert out["close"].tolist() == [0.40, 0.41, 0.51, 0.52, 0.53]
    assert out["open_time"].iloc[2] == ms("2024-09-10")


def test_kline_csvs_ms_and_us_with_and_without_header(default_config: AppConfig, tmp_path: Path) -> None:
    nested = tmp_path / "spot" / "monthly" / "klines" / "SOLUSDT" / "1h"
    nested.mkdir(parents=True)
    kline_csv(nested / "SOLUSDT-1h-2024-12.csv", "2024-12-31 22:00", [101.5, 102.25])
    kline_csv(nested / "SOLUSDT-1h-2025-01.csv", "2025-01-01 00:00", [103.0, 104.0], micros=True, header=True)
    kline_csv(tmp_path / "SOLUSDT-4h-2025-01.csv", "2025-01-01 00:00", [1.0])  # another timeframe: ignored
    out = fetch(FilesSource(default_config, tmp_path), "SOL")
    assert out["open_time"].tolist() == [
        ms("2024-12-31 22:00"),
        ms("2024-12-31 23:00"),
        ms("2025-01-01"),
        ms("2025-01-01 01:00"),
    ]
    assert out["close"].tolist() == [101.5, 102.25, 103.0, 104.0]
    assert out["volume"].tolist() == [2.0] * 4
    bars = clean_ohlcv(out, symbol="SOL", timeframe="1h", source="files", now=NOW, ticker="SOL").bars
    assert bars.index[-1] == pd.Timestamp("2025-01-01 01:00", tz="UTC")


def test_no_file_for_the_symbol(default_config: AppConfig, tmp_path: Path) -> None:
    with pytest.raises(
        SourceError, match=r"no 1h file for SOL; searched .*SOL_USDT-1h\.feather.*SOLUSDT-1h-\*\.csv"
    ):
        fetch(FilesSource(default_config, tmp_path), "SOL")


def test_window_outside_every_alias_span_is_empty(tmp_path: Path) -> None:
    cfg = load_config(
        overrides={"aliases": {"files": {"SOL": [{"ticker": "SOL", "since": "2024-06-01T00:00:00Z"}]}}}
    )
    kline_csv(tmp_path / "SOLUSDT-1h-2024-06.csv", "2024-06-01", [150.0])
    early = (pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-05-31 23:00", tz="UTC"))
    out = fetch(FilesSource(cfg, tmp_path), "SOL", window=early)
    assert out.empty and list(out.columns) == [*RAW_OHLCV_COLUMNS, "ticker"]
    assert len(fetch(FilesSource(cfg, tmp_path), "SOL")) == 1


def test_malformed_files_name_the_file(default_config: AppConfig, tmp_path: Path) -> None:
    source = FilesSource(default_config, tmp_path)
    bad = tmp_path / "SOLUSDT-1h-2024-01.csv"
    bad.write_text("1704067200000,1,1,1,1,2\n")
    with pytest.raises(DataError, match=r"files:SOL:1h: .*SOLUSDT-1h-2024-01\.csv has 6 columns"):
        fetch(source, "SOL")
    kline_csv(bad, "2024-01-01", [1.0, 2.0], header=True)
    bad.write_text(bad.read_text().replace(str(ms("2024-01-01 01:00")), "1704070800000.5", 1))
    with pytest.raises(
        DataError, match=r"SOLUSDT-1h-2024-01\.csv line 3: open_time 1704070800000\.5 is not epoch"
    ):
        fetch(source, "SOL")
    bad.unlink()
    naive = pd.DataFrame({"date": pd.to_datetime(["2024-01-01"])} | {c: [1.0] for c in RAW_OHLCV_COLUMNS[1:]})
    naive.to_feather(tmp_path / "SOL_USDT-1h.feather")
    with pytest.raises(
        DataError, match=r"SOL_USDT-1h\.feather: column date is datetime64\[ns\], not a tz-aware UTC time"
    ):
        fetch(source, "SOL")


def test_data_dir_must_exist(default_config: AppConfig, tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a folder"):
        FilesSource(default_config, tmp_path / "nowhere")


def test_a_line_cut_inside_the_volume_field_is_an_error(default_config: AppConfig, tmp_path: Path) -> None:
    """A truncated download: the last line stops inside `volume` (262.07528 -> 262.0). Storing 262.0 would be
    a silently wrong bar; every row must have all 12 fields."""
    path = tmp_path / "BTCUSDT-1h-2024-01.csv"
    path.write_text(
        "1704067200000,42283.58000000,42554.57000000,42261.02000000,42475.23000000,1271.68108000,"
        "1704070799999,53957248.97378950,47134,682.57581000,28957416.81972900,0\n"
        "1704070800000,42475.23000000,42775.00000000,42431.65000000,42613.56000000,262.0"
    )
    with pytest.raises(DataError) as info:
        fetch(FilesSource(default_config, tmp_path), "BTC")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("files:BTC:1h: ") and "BTCUSDT-1h-2024-01.csv line 2" in message
    assert "stops in field 'volume' (6 of 12 fields)" in message


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "1704070800000,1.0,1.0,1.0,1.0,2.0,1704074399999,2.0,5,1.0,",
            "stops in field 'taker_buy_base_volume' (10 of 12",
        ),
        ("1704070800000,1.0,1.0,1.0,1.0,,1704074399999,2.0,5,1.0,1.0,0", "has field 'volume' empty"),
        (
            "1704070800000,1.0,1.0,1.0,x1.0,2.0,1704074399999,2.0,5,1.0,1.0,0",
            "line 3: close 'x1.0' is not a number",
        ),
    ],
    ids=["cut_before_the_last_field", "empty_field", "not_a_number"],
)
def test_every_field_of_every_row(
    default_config: AppConfig, tmp_path: Path, line: str, expected: str
) -> None:
    path = kline_csv(tmp_path / "SOLUSDT-1h-2024-01.csv", "2024-01-01", [1.0], header=True)
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(DataError, match=r"SOLUSDT-1h-2024-01\.csv line 3") as info:
        fetch(FilesSource(default_config, tmp_path), "SOL")
    assert expected.removeprefix("line 3") in str(info.value)


@requires_shared
def test_a_truncated_feather_file_is_named(default_config: AppConfig, tmp_path: Path) -> None:
    whole = (GENETRADER_2024 / "BTC_USDT-1h.feather").read_bytes()
    (tmp_path / "BTC_USDT-1h.feather").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(
        DataError, match=r"files:BTC:1h: .*BTC_USDT-1h\.feather is not a readable feather file"
    ):
        fetch(FilesSource(default_config, tmp_path), "BTC")


def test_an_unreadable_csv_is_named(default_config: AppConfig, tmp_path: Path) -> None:
    (tmp_path / "BTCUSDT-1h-2024-01.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    with pytest.raises(DataError, match=r"files:BTC:1h: .*BTCUSDT-1h-2024-01\.csv is not a kline CSV"):
        fetch(FilesSource(default_config, tmp_path), "BTC")
