"""The `files` source: bulk import for backfills from a folder of exchange dumps.

Two formats, searched for anywhere under the folder:

* freqtrade feather files `<BASE>_<QUOTE>-<tf>.feather` (columns `date`, tz-aware UTC open time, and
  `open, high, low, close, volume`);
* Binance public-data kline CSVs `<BASE><QUOTE>-<tf>-<period>.csv` (e.g. `BTCUSDT-1h-2024-01.csv`, many per
  symbol; 12 columns, with or without a header row; open times in ms, in µs in the newer dumps).

A basket symbol maps to file tickers through the `files` aliases (MATIC before 2024-09-10, POL after), and
rows carry the ticker they came from. Like every source it only parses: `clean_ohlcv` judges the values.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from apex_rotation.bars import OHLCV_COLUMNS, RAW_OHLCV_COLUMNS, empty_raw_ohlcv
from apex_rotation.config import AppConfig
from apex_rotation.ingest.aliases import ticker_segments
from apex_rotation.ingest.base import DataError, MarketDataSource, SourceError
from apex_rotation.ingest.clean import epoch_to_ns
from apex_rotation.retry import describe_error
from apex_rotation.timeframes import BASE_TIMEFRAME

log = logging.getLogger(__name__)

VENUE = "files"
KLINE_COLUMNS = [
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "trades",
    "taker_buy_base_volume", "taker_buy_quote_volume", "ignore",
]  # fmt: skip
FEATHER_COLUMNS = ["date", *OHLCV_COLUMNS]


class FilesSource(MarketDataSource):
    """OHLCV from freqtrade feather files and Binance kline CSVs under `data_dir`."""

    name = VENUE
    fork_safe = True  # reads one file per symbol, holds nothing open

    def __init__(self, cfg: AppConfig, data_dir: str | Path):
        self.cfg = cfg
        self.data_dir = Path(data_dir)
        if not self.data_dir.is_dir():
            raise SourceError(f"files source: {self.data_dir} is not a folder")
        self._window: tuple[pd.Timestamp, pd.Timestamp] | None = None

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        """Raw bars (open_time int ms, OHLCV, ticker) with open time in [since, until], in time order.

        A ticker with no file is logged and skipped (a folder covers the window it covers); no file for any
        of the symbol's tickers in the window raises SourceError naming the paths searched.
        """
        pieces, searched = [], []
        segments = ticker_segments(self.cfg.ticker_spans(VENUE, symbol), since, until)
        for ticker, lo, hi in segments:
            paths, patterns = self.paths(ticker, timeframe)
            if not paths:
                searched += patterns
                log.warning("files source: no file symbol=%s ticker=%s searched=%s", symbol, ticker, patterns)
                continue
            frame = pd.concat([_read(path, symbol, timeframe) for path in paths], ignore_index=True)
            open_ns = frame["open_time"].to_numpy() * 1_000_000
            inside = (open_ns >= lo.value) & (open_ns <= hi.value)
            pieces.append(frame[inside].assign(ticker=ticker))
        if segments and not pieces:
            raise SourceError(f"files source: no {timeframe} file for {symbol}; searched {searched}")
        if not pieces:
            return empty_raw_ohlcv()
        out = pd.concat(pieces, ignore_index=True)
        return out.sort_values("open_time", kind="stable", ignore_index=True)

    def unlisted(self, symbols: Sequence[str]) -> list[str]:
        """The symbols with no 1h file under the data folder for any of their `files` alias tickers
        (MATIC is served by a MATIC or a POL file); reads no file, only looks for names."""
        return [
            symbol
            for symbol in symbols
            if not any(
                self.paths(span.ticker, BASE_TIMEFRAME)[0] for span in self.cfg.ticker_spans(VENUE, symbol)
            )
        ]

    def paths(self, ticker: str, timeframe: str) -> tuple[list[Path], list[str]]:
        """The files holding `ticker` bars of `timeframe`, sorted, and the glob patterns searched."""
        quote = self.cfg.basket.quote
        patterns = [f"{ticker}_{quote}-{timeframe}.feather", f"{ticker}{quote}-{timeframe}-*.csv"]
        paths = sorted(p for pattern in patterns for p in self.data_dir.rglob(pattern) if p.is_file())
        return paths, [str(self.data_dir / "**" / pattern) for pattern in patterns]

    def history_window(self) -> tuple[pd.Timestamp, pd.Timestamp]:
        """First and last 1h open time over the basket's 1h files: a folder serves a fixed span."""
        if self._window is None:
            opens = []
            for symbol in self.cfg.basket.names:
                for span in self.cfg.ticker_spans(VENUE, symbol):
                    for path in self.paths(span.ticker, BASE_TIMEFRAME)[0]:
                        t = _read(path, symbol, BASE_TIMEFRAME)["open_time"]
                        opens += [t.min(), t.max()] if len(t) else []
            if not opens:
                raise SourceError(
                    f"files source: no {BASE_TIMEFRAME} file for the basket under {self.data_dir}"
                )
            self._window = (
                pd.Timestamp(min(opens), unit="ms", tz="UTC"),
                pd.Timestamp(max(opens), unit="ms", tz="UTC"),
            )
        return self._window


def _read(path: Path, symbol: str, timeframe: str) -> pd.DataFrame:
    """One file as a raw frame: open_time (int ms) and OHLCV as the file has them."""
    where = {"source": VENUE, "symbol": symbol, "timeframe": timeframe}
    if path.suffix == ".feather":
        return _read_feather(path, where)
    return _read_kline_csv(path, where)


def _read_feather(path: Path, where: dict) -> pd.DataFrame:
    try:
        frame = pd.read_feather(path)
    except (OSError, ValueError, pa.ArrowException) as exc:  # cut short, not Arrow IPC, unreadable
        raise DataError(f"{path} is not a readable feather file: {describe_error(exc)}", **where) from None
    missing = [c for c in FEATHER_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}; it has {list(frame.columns)}", **where)
    if not isinstance(frame["date"].dtype, pd.DatetimeTZDtype):
        raise DataError(f"{path}: column date is {frame['date'].dtype}, not a tz-aware UTC time", **where)
    open_ms = pd.DatetimeIndex(frame["date"]).tz_convert("UTC").as_unit("ms").asi8
    return frame[OHLCV_COLUMNS].assign(open_time=open_ms)[RAW_OHLCV_COLUMNS]


def _read_kline_csv(path: Path, where: dict) -> pd.DataFrame:
    try:
        with path.open() as fh:
            first_field = fh.readline().split(",")[0].strip()
        header = 0 if first_field and not first_field.isdigit() else None
        frame = pd.read_csv(path, header=header, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} is not a kline CSV: {describe_error(exc)}", **where) from None
    if frame.shape[1] != len(KLINE_COLUMNS):
        raise DataError(f"{path} has {frame.shape[1]} columns; a Binance kline CSV has 12", **where)
    frame.columns = KLINE_COLUMNS
    _refuse_short_rows(path, frame, header is not None, where)
    frame[OHLCV_COLUMNS] = frame[OHLCV_COLUMNS].apply(_kline_numbers(path, header is not None, where))
    raw_open = pd.to_numeric(frame["open_time"], errors="coerce")
    bad = np.flatnonzero(raw_open.isna().to_numpy() | (raw_open % 1 != 0).to_numpy())
    if bad.size:
        line = bad[0] + 1 + (header is not None)
        raise DataError(
            f"{path} line {line}: open_time {frame['open_time'].iloc[bad[0]]} is not epoch ms/µs", **where
        )
    open_ns, neither = epoch_to_ns(raw_open.to_numpy(dtype=np.int64))
    bad = np.flatnonzero(neither | (open_ns % 1_000_000 != 0))
    if bad.size:
        line = bad[0] + 1 + (header is not None)
        raise DataError(
            f"{path} line {line}: open_time {raw_open.iloc[bad[0]]} is not a whole epoch ms/µs", **where
        )
    return frame[OHLCV_COLUMNS].assign(open_time=open_ns // 1_000_000)[RAW_OHLCV_COLUMNS]


def _refuse_short_rows(path: Path, frame: pd.DataFrame, has_header: bool, where: dict) -> None:
    """Every row must have all 12 fields: a line cut short (a truncated download) is an error naming the
    line and the field it stops in, never a row with a shortened last value."""
    empty = (frame.isna() | (frame == "")).to_numpy()
    rows = np.flatnonzero(empty.any(axis=1))
    if rows.size == 0:
        return
    i = int(rows[0])
    first_empty = int(np.flatnonzero(empty[i])[0])
    cut = KLINE_COLUMNS[first_empty - 1] if first_empty else None
    line = i + 1 + has_header
    how = f"stops in field {cut!r} ({first_empty} of 12 fields)" if cut else "has no fields"
    if not empty[i, first_empty:].all():
        how = f"has field {KLINE_COLUMNS[first_empty]!r} empty"
    raise DataError(
        f"{path} line {line} {how}: a truncated or damaged row ({rows.size} such line(s))", **where
    )


def _kline_numbers(path: Path, has_header: bool, where: dict):
    """Column → float64; a value that is not a number is an error naming the file, line and field."""

    def convert(col: pd.Series) -> pd.Series:
        try:
            return col.astype("float64")  # Python's float: correctly rounded, like the other sources
        except ValueError:
            bad = np.flatnonzero(pd.to_numeric(col, errors="coerce").isna().to_numpy())
            line = int(bad[0]) + 1 + has_header
            raise DataError(
                f"{path} line {line}: {col.name} {col.iloc[bad[0]]!r} is not a number", **where
            ) from None

    return convert
