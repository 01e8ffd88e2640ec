"""The refresher's one job: source → clean → `bars` (1h base, 4h/1d resampled) → audit → `audited_bars`.

Both the CLI (`apex refresh`) and the Dagster assets call these functions, so a refresh means the same
thing everywhere. A refresh is incremental: it asks the source only for bars after the newest stored one,
so a refresh with nothing new costs one request per symbol. Partitions are written atomically and only
after validation, so a failure leaves the previous partition in place.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.ingest.base import MarketDataSource, SourceError, UnsupportedData
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.ingest.registry import OFFLINE_SOURCES, make_venue_source
from apex_rotation.log import kv
from apex_rotation.parallel import map_partitions
from apex_rotation.schemas import validate_frame
from apex_rotation.store.audit import AuditReport, audit_bars, log_report
from apex_rotation.store.audit_report import rebuild_audit_report, write_audit_report
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.resample import resample
from apex_rotation.store.tables import (
    AUDITED_BARS,
    BARS,
    FUNDING,
    GROUND_TRUTH,
    GROUND_TRUTH_KEY,
    OPEN_INTEREST,
)
from apex_rotation.timeframes import BASE_TIMEFRAME, TIMEFRAMES, delta, last_closed_open, utc_now

log = logging.getLogger(__name__)


@dataclass
class SymbolRefresh:
    """What one symbol's refresh did."""

    symbol: str
    new_rows: int = 0
    revised_rows: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)


@dataclass
class RefreshSummary:
    symbols: list[SymbolRefresh] = field(default_factory=list)
    reports: list[AuditReport] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def bar_errors(self) -> dict[str, str]:
        """Failures that cost bars (perps and open-interest failures excluded)."""
        return {k: v for k, v in self.errors.items() if ":" not in k and k != "open_interest"}


class StoreRefresher:
    """Refreshes and audits the store from one source; `now` is injectable for tests and replays."""

    def __init__(
        self,
        cfg: AppConfig,
        store: ParquetStore,
        source: MarketDataSource,
        perps_source: MarketDataSource | None = None,
        now: pd.Timestamp | None = None,
    ):
        self.cfg, self.store, self.source, self.perps_source = cfg, store, source, perps_source
        self._venue_sources: dict[str, MarketDataSource] = {}
        self._audits: dict[tuple[str, str], tuple[pd.DataFrame, AuditReport]] = {}
        self.now = pd.Timestamp(now) if now is not None else utc_now()
        window = source.history_window()
        if window is not None:  # a fixed history (synthetic, a file import) is "now" at its own end
            self.now = min(self.now, window[1] + delta(BASE_TIMEFRAME))

    # ------------------------------------------------------------------ bars

    def _first_open(self) -> pd.Timestamp:
        window = self.source.history_window()
        if window is not None:
            return window[0]
        start = self.now - pd.Timedelta(days=self.cfg.data_sources.history_days)
        return start.floor(delta("1d"))

    def _until(self) -> pd.Timestamp:
        window = self.source.history_window()
        newest = last_closed_open(self.now, BASE_TIMEFRAME)
        return min(newest, window[1]) if window is not None else newest

    def _refuse_mixing(self, symbol: str, source: MarketDataSource) -> None:
        """Synthetic bars never continue real ones (or the reverse): that would splice two markets."""
        stored = self.store.meta(BARS, BASE_TIMEFRAME, symbol).get("source")
        if stored and stored != source.name and GROUND_TRUTH_KEY in (stored, source.name):
            raise SourceError(
                f"{symbol}: the store at {self.store.root} holds {stored} bars; refreshing from {source.name} "
                "would splice two markets. Use another --store (or $APEX_DATA_DIR), or delete that store."
            )

    def source_for(self, symbol: str) -> MarketDataSource:
        """The symbol's own venue when the basket names one (HYPE on Hyperliquid while the rest come from
        Binance); offline sources (synthetic, files) serve every symbol themselves."""
        venue = self.cfg.basket.venue_of(symbol)
        if venue is None or self.source.name in OFFLINE_SOURCES or venue == _venue_of(self.source):
            return self.source
        if venue not in self._venue_sources:
            self._venue_sources[venue] = make_venue_source(self.cfg, venue)
        return self._venue_sources[venue]

    def close(self) -> None:
        """Close every source this plane used (its own, the perps venue's, per-symbol venues')."""
        for source in {
            id(s): s for s in [self.source, self.perps_source, *self._venue_sources.values()] if s
        }.values():
            source.close()

    def _last_stored(self, table: str, timeframe: str | None, symbol: str) -> pd.Timestamp | None:
        """The newest index of a stored partition (the index column only), None when absent or unreadable."""
        if not self.store.exists(table, timeframe, symbol):
            return None
        try:
            index = self.store.read(table, timeframe, symbol, columns=[]).index
        except StoreError:
            return None
        return index[-1] if len(index) else None

    def nothing_new(self, symbols: Iterable[str]) -> pd.Timestamp | None:
        """When `refresh` of `symbols` would fetch nothing and only rewrite what is stored (the same bytes):
        the close of the newest stored 1h bar; None when it might fetch something, or cannot tell.

        Only a source with a fixed history (synthetic, files) can answer without being asked: its window
        says which bars exist. A live venue may have a new bar, a revised one, funding or an OI snapshot
        at any time, so for it the answer is always None (refresh)."""
        if self.source.history_window() is None or self.source.name not in OFFLINE_SOURCES:
            return None
        perps = self.perps_source
        if perps is not None and perps.supports_open_interest and not perps.has_open_interest_history:
            return None  # a snapshot is appended at every refresh
        series = []
        if perps is not None and perps.supports_funding:
            series.append(FUNDING)
        if perps is not None and perps.has_open_interest_history:
            series.append(OPEN_INTEREST)
        newest = []
        for symbol in symbols:
            last = self._last_stored(BARS, BASE_TIMEFRAME, symbol)
            if last is None or last + delta(BASE_TIMEFRAME) <= self._until():
                return None  # absent, or the source has newer bars
            if self.store.meta(BARS, BASE_TIMEFRAME, symbol).get("source") != self.source.name:
                return None  # another source's bars: a refresh refuses to splice them, and says so
            for table in series:  # funding/OI are fetched up to `now`
                stored = self._last_stored(table, None, symbol)
                if stored is None or stored < self.now:
                    return None
            newest.append(last)
        if getattr(self.source, "ground_truth", None) and not self.store.exists(
            GROUND_TRUTH, None, self.source.name
        ):
            return None
        return max(newest) + delta(BASE_TIMEFRAME) if newest else None

    def refresh_bars(self, symbol: str, timeframes: Sequence[str] = TIMEFRAMES) -> SymbolRefresh:
        """Fetch new 1h bars, merge them into the stored base, rebuild the requested timeframes."""
        tf = BASE_TIMEFRAME
        self._audits = {k: v for k, v in self._audits.items() if k[0] != symbol}
        source = self.source_for(symbol)
        existing = self.store.read_or_none(BARS, tf, symbol)  # a corrupt base is quarantined: refetched whole
        if existing is not None:
            self._refuse_mixing(symbol, source)
        since = (
            existing.index[-1] + delta(tf) if existing is not None and len(existing) else self._first_open()
        )
        until = self._until()
        result = SymbolRefresh(symbol=symbol)
        if since <= until:
            raw = source.fetch_ohlcv(symbol, tf, since, until)
            cleaned = clean_ohlcv(
                raw,
                symbol=symbol,
                timeframe=tf,
                source=source.name,
                now=self.now,
                allow_empty=existing is not None,
                ticker=tickers(self.cfg, source, symbol),
            )
            result.notes = {k: v for k, v in cleaned.notes.items() if v}
            base, result.new_rows, result.revised_rows = merge_bars(existing, cleaned.bars)
        else:
            base = existing
        if base is None or base.empty:
            raise SourceError(f"{source.name}: no {tf} bars for {symbol} in [{since}, {until}]")
        changed = bool(result.new_rows or result.revised_rows) or existing is None
        # the 1h base is the store's truth: written whenever it changed, whichever timeframes were asked
        to_write = [t for t in TIMEFRAMES if t in timeframes or (t == tf and changed)]
        for timeframe in to_write:
            frame = resample(base, timeframe)
            frame = validate_frame(BARS.schema(timeframe), frame, f"bars {symbol} {timeframe}", inplace=True)
            if timeframe == tf and not changed:
                result.rows[timeframe] = len(frame)  # nothing changed: leave the file as it is
                continue
            self.store.write(
                BARS, timeframe, symbol, frame, meta={"source": source.name, "venue": _venue_of(source)}
            )
            result.rows[timeframe] = len(frame)
        log.info("bars refreshed", extra=kv(symbol=symbol, new=result.new_rows, **result.notes))
        return result

    # ------------------------------------------------------------------ audit

    def audit(self, symbol: str, timeframe: str, write: bool = True) -> AuditReport:
        """Audit stored bars; write the cleaned `audited_bars` partition only when it validates.

        A 4h/1d audited bar is resampled from the audited 1h bars, so a bad tick or a missing hour costs
        that hour, not the whole bar; its `outlier` flag stays the timeframe's own (its return against its
        own robust sigma), and the report's counts are those of the timeframe's raw bars except `filled`,
        counted on the bars stored. The report is logged once, as stored.
        """
        audited, report = self._audit_one(symbol, timeframe)
        if timeframe != BASE_TIMEFRAME:
            base, _ = self._audit_one(symbol, BASE_TIMEFRAME)
            rebuilt = resample(base, timeframe, symbol=symbol)
            if not rebuilt.index.equals(audited.index):  # cannot happen for bars resampled from that base
                raise SourceError(
                    f"{symbol} {timeframe}: stored bars do not match the 1h base; refresh again"
                )
            audited = rebuilt.assign(outlier=audited["outlier"].to_numpy())
            report = report.model_copy(update={"filled": int(audited["filled"].sum())})
        log_report(report)
        if write:
            audited = validate_frame(
                AUDITED_BARS.schema(timeframe), audited, f"audited {symbol} {timeframe}", inplace=True
            )
            self.store.write(AUDITED_BARS, timeframe, symbol, audited, meta=report.model_dump(mode="json"))
        return report

    def _audit_one(self, symbol: str, timeframe: str) -> tuple[pd.DataFrame, AuditReport]:
        """The audit of one stored partition, memoised for this refresh (4h and 1d reuse the 1h one)."""
        key = (symbol, timeframe)
        if key not in self._audits:
            bars = self.store.read(BARS, timeframe, symbol)
            self._audits[key] = audit_bars(
                bars, symbol=symbol, timeframe=timeframe, cfg=self.cfg.audit, now=self.now
            )
        return self._audits[key]

    # ------------------------------------------------------------------ perps data

    def refresh_perps(self, symbol: str) -> dict[str, int]:
        """Append new funding rows and open interest (history or a snapshot) for one symbol."""
        source = self.perps_source
        if source is None:
            return {}
        counts: dict[str, int] = {}
        if source.supports_funding:
            counts["funding"] = self._append_series(
                FUNDING, symbol, lambda since, until: source.fetch_funding(symbol, since, until)
            )
        if source.has_open_interest_history:
            counts["open_interest"] = self._append_series(
                OPEN_INTEREST,
                symbol,
                lambda since, until: source.fetch_open_interest_history(symbol, since, until),
            )
        return counts

    def snapshot_open_interest(self, symbols: Sequence[str]) -> int:
        """Venues without OI history: append the current snapshot, so history accumulates refresh by refresh."""
        source = self.perps_source
        if source is None or not source.supports_open_interest or source.has_open_interest_history:
            return 0
        snap = source.fetch_open_interest(symbols)
        for row in snap.itertuples(index=False):
            frame = pd.DataFrame(
                {
                    "open_interest": [float(row.open_interest)],
                    "funding": [float(row.funding)],
                    "mark_price": [float(row.mark_price)],
                },
                index=pd.DatetimeIndex([_to_utc(row.time)], name="time"),
            )
            self._merge_write(OPEN_INTEREST, str(row.symbol), frame)
        return len(snap)

    def _append_series(self, asset: str, symbol: str, fetch: Callable) -> int:
        existing = self.store.read_or_none(asset, None, symbol)
        since = (
            existing.index[-1] + pd.Timedelta(milliseconds=1) if existing is not None else self._first_open()
        )
        try:
            raw = fetch(since, self.now)
        except UnsupportedData:
            return 0
        if raw is None or raw.empty:
            return 0
        frame = raw.assign(time=_to_utc(raw["time"])).set_index("time").sort_index()
        frame = frame[frame.index <= self.now].astype("float64")
        return self._merge_write(asset, symbol, frame)

    def _merge_write(self, asset: str, symbol: str, frame: pd.DataFrame) -> int:
        existing = self.store.read_or_none(asset, None, symbol)
        merged = frame if existing is None else pd.concat([existing, frame])
        merged = merged[~merged.index.duplicated(keep="last")].sort_index()
        added = len(merged) - (0 if existing is None else len(existing))
        if added:
            self.store.write(asset, None, symbol, merged, meta={"source": self.perps_source.name})
        return added

    # ------------------------------------------------------------------ ground truth

    def write_ground_truth(self) -> int:
        """Store the synthetic market's planted episodes beside its bars (other sources have none)."""
        truth_fn = getattr(self.source, "ground_truth", None)
        if truth_fn is None:
            return 0
        truth = truth_fn().reset_index(drop=True)
        truth.index.name = "row"
        self.store.write(GROUND_TRUTH, None, self.source.name, truth, meta={"seed": self.cfg.synthetic.seed})
        return len(truth)

    # ------------------------------------------------------------------ everything

    def refresh(
        self,
        timeframes_by_symbol: dict[str, Sequence[str]],
        progress: Callable[[str], None] | None = None,
        audit: bool = False,
    ) -> RefreshSummary:
        """Refresh bars (and audit them when asked), then funding/OI, open interest and ground truth.

        A failing symbol is reported and the others still complete; a perps-venue failure is reported
        under `<symbol>:perps` and never costs that symbol's spot bars.
        """
        summary = RefreshSummary()
        items = list(timeframes_by_symbol.items())
        if progress is None and self._fork_safe():  # symbols are independent: a few at once
            outcomes = map_partitions(
                lambda item: self._refresh_symbol(*item, audit=audit), items, prime=True
            )  # the first symbol here: a generated market is built once, then inherited
        else:  # a live venue's session is never shared with forked workers; progress as each one ends
            outcomes = []
            for symbol, timeframes in items:
                outcomes.append(self._refresh_symbol(symbol, timeframes, audit=audit))
                if progress:
                    progress(symbol)
        for done, reports, errors in outcomes:
            if done:
                summary.symbols.append(done)
            summary.reports.extend(reports)
            summary.errors.update(errors)
        try:
            self.snapshot_open_interest([s for s in timeframes_by_symbol if s not in summary.errors])
        except Exception as exc:
            summary.errors["open_interest"] = f"{type(exc).__name__}: {exc}"
        self.write_ground_truth()
        return summary

    def _fork_safe(self) -> bool:
        return self.source.fork_safe and (self.perps_source is None or self.perps_source.fork_safe)

    def _refresh_symbol(
        self, symbol: str, timeframes: Sequence[str], audit: bool
    ) -> tuple[SymbolRefresh | None, list[AuditReport], dict[str, str]]:
        """One symbol's bars (and audits when asked), then its perps data; failures reported, not raised."""
        done, reports, errors = None, [], {}
        try:
            done = self.refresh_bars(symbol, timeframes)
            if audit:
                reports = [self.audit(symbol, tf) for tf in timeframes]
        except Exception as exc:  # reported per symbol; the run fails at the end
            log.error("refresh failed", extra=kv(symbol=symbol, error=str(exc)))
            errors[symbol] = f"{type(exc).__name__}: {exc}"
        else:
            try:
                self.refresh_perps(symbol)
            except Exception as exc:
                log.error("perps refresh failed", extra=kv(symbol=symbol, error=str(exc)))
                errors[f"{symbol}:perps"] = f"{type(exc).__name__}: {exc}"
        return done, reports, errors

    def refresh_all(
        self,
        symbols: Iterable[str],
        timeframes: Sequence[str] = TIMEFRAMES,
        progress: Callable[[str], None] | None = None,
    ) -> RefreshSummary:
        """Refresh and audit every asked symbol × timeframe, then rewrite the audit report."""
        summary = self.refresh({s: timeframes for s in symbols}, progress=progress, audit=True)
        rebuild_audit_report(self.store)
        return summary

    def __enter__(self) -> StoreRefresher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _venue_of(source: MarketDataSource) -> str:
    return getattr(source, "venue", source.name)  # ccxt: the exchange id, e.g. "binance"


def tickers(cfg: AppConfig, source: MarketDataSource, symbol: str) -> list[str]:
    """The venue tickers a symbol's bars may carry (all its alias spans), for the wrong-symbol check."""
    return [span.ticker for span in cfg.ticker_spans(_venue_of(source), symbol)]


def merge_bars(existing: pd.DataFrame | None, new: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Append new bars to the stored ones; a re-fetched bar replaces the stored one (and is counted)."""
    if existing is None or existing.empty:
        return new, len(new), 0
    overlap = new.index.intersection(existing.index)
    revised = (
        int((existing.loc[overlap, new.columns] != new.loc[overlap]).any(axis=1).sum()) if len(overlap) else 0
    )
    merged = pd.concat([existing.drop(index=overlap)[new.columns], new]).sort_index()
    return merged, len(new) - len(overlap), revised


def audit_store(
    cfg: AppConfig, store: ParquetStore, symbols: Sequence[str], timeframes: Sequence[str]
) -> list[AuditReport]:
    """Audit what is stored (without rewriting anything) and write the report under `reports/`.

    A partition that cannot be read (a corrupt file is quarantined) is logged with its path and skipped;
    the others are audited.
    """
    plane = StoreRefresher(cfg, store, source=_NoSource())
    reports = []
    for symbol in symbols:
        for tf in timeframes:
            if not store.exists(BARS, tf, symbol):
                continue
            try:
                reports.append(plane.audit(symbol, tf, write=False))
            except StoreError as exc:
                log.error("audit skipped", extra=kv(symbol=symbol, timeframe=tf, error=str(exc)))
    write_audit_report(store.root, reports)
    return reports


def _to_utc(values):
    """Epoch-ms integers or timestamps → tz-aware UTC (naive values are refused upstream by the cleaner)."""
    if isinstance(values, pd.Series) and pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values.astype("int64"), unit="ms", utc=True)
    if isinstance(values, int | float):
        return pd.Timestamp(int(values), unit="ms", tz="UTC")
    return pd.to_datetime(values, utc=True)


class _NoSource(MarketDataSource):
    name = "store"

    def fetch_ohlcv(self, symbol, timeframe, since, until):  # pragma: no cover - never called
        raise SourceError("auditing the store fetches nothing")
