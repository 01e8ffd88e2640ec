"""Build a market-data source by name from the config (the only place that knows every source class)."""

from __future__ import annotations

from pathlib import Path

from apex_rotation.config import AppConfig, SourceName
from apex_rotation.ingest.base import MarketDataSource

SOURCE_NAMES: tuple[SourceName, ...] = ("synthetic", "ccxt", "hyperliquid", "files")
OFFLINE_SOURCES = ("synthetic", "files")


def make_source(
    cfg: AppConfig, name: str | None = None, data_dir: str | Path | None = None
) -> MarketDataSource:
    """The source `name` (default: `data_sources.default_source`); `data_dir` is required by `files`."""
    name = name or cfg.data_sources.default_source
    if name == "synthetic":
        from apex_rotation.ingest.synthetic import SyntheticSource

        return SyntheticSource(cfg)
    if name == "ccxt":
        from apex_rotation.ingest.ccxt_source import CcxtSource

        return CcxtSource(cfg)
    if name == "hyperliquid":
        from apex_rotation.ingest.hyperliquid_source import HyperliquidSource

        return HyperliquidSource(cfg)
    if name == "files":
        from apex_rotation.ingest.files import FilesSource

        if data_dir is None:
            raise ValueError("the files source needs --data-dir (a folder of feather or Binance CSV files)")
        return FilesSource(cfg, Path(data_dir))
    raise ValueError(f"unknown source {name!r}; expected one of {list(SOURCE_NAMES)}")


def make_venue_source(cfg: AppConfig, venue: str) -> MarketDataSource:
    """The live source of a venue named in the basket: "hyperliquid", or any ccxt exchange id."""
    if venue == "hyperliquid":
        return make_source(cfg, "hyperliquid")
    from apex_rotation.ingest.ccxt_source import CcxtSource

    return CcxtSource(cfg, exchange_id=venue)


def make_perps_source(cfg: AppConfig, ohlcv_source: MarketDataSource) -> MarketDataSource | None:
    """Where funding and open interest come from: the OHLCV source when it has them, else the perps venue.

    A file import is offline and historical: it gets none (a live venue's current OI does not belong to it).
    """
    if ohlcv_source.supports_funding or ohlcv_source.supports_open_interest:
        return ohlcv_source
    if ohlcv_source.name in OFFLINE_SOURCES:
        return None
    venue = cfg.data_sources.perps_venue
    return None if venue == "none" else make_source(cfg, venue)
