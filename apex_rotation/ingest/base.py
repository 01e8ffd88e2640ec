"""The one interface every market-data source implements, and the errors they raise.

A source only moves and parses data: it returns raw frames (numbers may still be strings, the bar in
progress may still be there). `apex_rotation.ingest.clean.clean_ohlcv` is the one function that turns
such a frame into canonical bars, for every source alike.

Raw OHLCV frame: columns `open_time` (int ms since epoch, or tz-aware timestamps), `open, high, low, close,
volume`, and optionally `ticker` (the venue's name for the instrument, checked against the request).
Funding frame: columns `time` (int ms or tz-aware), `rate` (the rate paid at that time), `premium`.
Open-interest snapshot: one row per symbol with `symbol, time, open_interest` (base units),
`funding` (current rate), `mark_price`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import pandas as pd

OI_COLUMNS = ["symbol", "time", "open_interest", "funding", "mark_price"]


class DataError(ValueError):
    """Input that cannot be used: the message says what is wrong and where (source, symbol, timeframe, bar)."""

    def __init__(self, reason: str, *, source: str = "?", symbol: str = "?", timeframe: str = "?", at=None):
        where = f"{source}:{symbol}:{timeframe}"
        if at is not None:
            where += f" at {at}"
        super().__init__(f"{where}: {reason}")
        self.reason, self.source, self.symbol, self.timeframe, self.at = reason, source, symbol, timeframe, at


class SourceError(RuntimeError):
    """A source could not deliver (network down, retries exhausted, unknown symbol)."""


class MalformedResponse(DataError):
    """A body that is not the JSON the endpoint promises (truncated, wrong shape).

    Retried like a network error, because proxies and overloaded servers cut bodies short.
    """


class UnsupportedData(SourceError):
    """The source does not provide this kind of data (e.g. funding from a spot exchange)."""


class MarketDataSource(ABC):
    """OHLCV since/until, funding history and an open-interest snapshot, for basket symbols."""

    name: str = "?"
    supports_funding: bool = False
    supports_open_interest: bool = False
    #: True when the source keeps open-interest history itself (otherwise snapshots accumulate it).
    has_open_interest_history: bool = False

    @abstractmethod
    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        """Raw bars with open time in [since, until] (until inclusive), paging as needed."""

    def fetch_funding(self, symbol: str, since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
        raise UnsupportedData(f"{self.name} has no funding history")

    def fetch_open_interest(self, symbols: Sequence[str]) -> pd.DataFrame:
        raise UnsupportedData(f"{self.name} has no open interest")

    def fetch_open_interest_history(
        self, symbol: str, since: pd.Timestamp, until: pd.Timestamp
    ) -> pd.DataFrame:
        """Only for sources with `has_open_interest_history`; columns `time, open_interest`."""
        raise UnsupportedData(f"{self.name} has no open-interest history")

    def history_window(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The span of open times the source can serve, when it is fixed (synthetic); None for live venues."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions; sources without any keep the default."""


def to_ms(ts: object, what: str, *, source: str, symbol: str = "?", timeframe: str = "?") -> int:
    """Milliseconds since the epoch of a tz-aware timestamp (a naive one is ambiguous, so refused)."""
    where = {"source": source, "symbol": symbol, "timeframe": timeframe}
    try:
        t = pd.Timestamp(ts)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} {ts!r} is not a timestamp", **where) from exc
    if t.tzinfo is None:
        raise DataError(f"{what} {t} has no timezone; pass UTC timestamps", **where)
    return int(t.value // 1_000_000)
