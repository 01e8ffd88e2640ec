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


class BadPage(MalformedResponse):
    """A page that cannot be the end of history: empty, or no newer than the previous one, while the span
    asked for reaches further. Retried like a cut body; if it stays bad the symbol fails (never a short
    history stored as if complete)."""


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

    def unlisted(self, symbols: Sequence[str]) -> list[str]:
        """The basket symbols of `symbols` this source cannot serve, in the order given ([] = all served).

        For a pre-flight check before a refresh: a symbol returned here would fail its fetch. Each source
        maps a basket symbol through its `aliases` (a live venue: the ticker trading now; `files`: any of
        the symbol's alias tickers) and asks what it lists: `files` has a 1h file for it under the data
        folder, `ccxt` lists `<ticker>/<basket.quote>` among the exchange's markets, `hyperliquid` lists
        the coin in its perp universe (`meta`). `synthetic` serves any symbol (it invents the ones without
        a hand-set profile, and logs one line naming them). Live sources send at most one request (the
        market list, with the usual retries); a venue that cannot answer raises `SourceError`.
        """
        return []

    def history_window(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The span of open times the source can serve, when it is fixed (synthetic); None for live venues."""
        return None

    #: True when the source holds no connection and may be used from forked worker processes (the offline
    #: sources): a refresh then fetches a few symbols at once (apex_rotation/parallel.py).
    fork_safe: bool = False

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions; sources without any keep the default."""


def check_page(
    opens: Sequence[int],
    start_ms: int,
    end_ms: int,
    slack_ms: int,
    *,
    source: str,
    symbol: str,
    timeframe: str = "?",
) -> bool:
    """Judge one forward page of a history asked for from `start_ms` to `end_ms` (both ms, inclusive).

    `opens` are the page's row times. Returns True when the page ends the history: it is empty, or
    reaches no further than the span's end, *and* `start_ms` is within `slack_ms` (about two bars) of
    `end_ms` (the present, or the `until` asked for). Returns False when paging must go on. Raises
    `BadPage` (retried, then fatal) for a page that is empty in the middle of the span, or that holds
    nothing at or after `start_ms` (a repeated page). A first page starting later than `start_ms` is fine:
    the instrument was listed later.
    """
    if opens and max(opens) >= start_ms:
        return False
    reaches_end = start_ms >= end_ms - slack_ms
    if not opens and reaches_end:
        return True
    kind = "an empty page" if not opens else "a repeated page"
    newest = f" (its newest row is at {_iso_ms(max(opens))})" if opens else ""
    raise BadPage(
        f"{kind} at {_iso_ms(start_ms)}{newest}, {(end_ms - start_ms) / 3_600_000:.1f}h before the end "
        f"of the span asked for ({_iso_ms(end_ms)}): not the end of history",
        source=source,
        symbol=symbol,
        timeframe=timeframe,
    )


def _iso_ms(ms: int) -> str:
    return pd.Timestamp(int(ms), unit="ms", tz="UTC").isoformat()


def span_text(lo_ms: int, hi_ms: int) -> str:
    """`[2024-01-01T00:00:00+00:00, 2024-04-15T00:00:00+00:00]`: a paged span, for error messages."""
    return f"[{_iso_ms(lo_ms)}, {_iso_ms(hi_ms)}]"


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
