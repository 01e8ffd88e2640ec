"""The catalog of every stored table: its name, how its files are keyed, its pandera schema, what it holds.

Every table is declared here once; the writers, the loader, the Dagster assets and the docs read names,
key layouts and schemas from this catalog instead of spelling them out. A table's files live at
`<root>/<name>/<timeframe or ->/<key>.parquet` (see `store/parquet.py`); the key is a basket symbol, the
cross-symbol `basket` file of a timeframe, or a source name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandera.pandas as pa

from apex_rotation import schemas

KeyLayout = Literal["symbol × timeframe", "symbol", "timeframe", "source"]
BASKET_KEY = "basket"  # the file name of a cross-symbol (per-timeframe) table: <name>/<tf>/basket.parquet
GROUND_TRUTH_KEY = "synthetic"  # only the synthetic market plants a ground truth


@dataclass(frozen=True)
class Table:
    """One stored table. `schema(timeframe, cfg)` gives its pandera schema (None: validated by its writer)."""

    name: str
    key: KeyLayout
    description: str
    schema: Callable[..., pa.DataFrameSchema] | None = None

    def __str__(self) -> str:
        return self.name


BARS = Table(
    "bars",
    "symbol × timeframe",
    "closed OHLCV bars as the source gave them (1h fetched, 4h/1d resampled)",
    lambda tf, cfg=None: schemas.bars_schema(tf),
)
AUDITED_BARS = Table(
    "audited_bars",
    "symbol × timeframe",
    "gap-free bars: gaps and bad ticks filled, absurd wicks clipped, all flagged; outliers flagged",
    lambda tf, cfg=None: schemas.bars_schema(tf, audited=True),
)
FUNDING = Table("funding", "symbol", "funding-rate history of the perps venue (`time`, `rate`, `premium`)")
OPEN_INTEREST = Table("open_interest", "symbol", "open interest: venue history or accumulated snapshots")
GROUND_TRUTH = Table(
    "ground_truth", "source", "the synthetic market's planted episodes (docs/synthetic-market.md)"
)
FEATURES = Table(
    "features",
    "symbol × timeframe",
    "indicators, Fibonacci zone, funding/OI as of the close, corr/beta vs BTC and ETH",
    lambda tf=None, cfg=None: schemas.features_schema(),
)
TD_STATE = Table(
    "td_state",
    "symbol × timeframe",
    "TD Sequential state per bar (setup, countdown, TDST, risk levels)",
    lambda tf=None, cfg=None: schemas.td_state_schema(),
)
ROTATION_CANDIDATES = Table(
    "rotation_candidates",
    "timeframe",
    "LAGGING_ROTATION candidates on every bar of history, across the basket",
    lambda tf=None, cfg=None: schemas.signals_schema(),
)
BASKET_PROFILE = Table(
    "basket_profile", "timeframe", "each symbol's latest and median corr/beta vs BTC and ETH"
)
CONFIRMATIONS = Table(
    "confirmations",
    "timeframe",
    "each candidate watched bar by bar with the confirmation rule, every filter's reason",
    lambda tf, cfg: schemas.confirmations_schema(cfg.market_filters.confirm_window_bars),
)
SCANNER_QUALITY = Table(
    "scanner_quality",
    "timeframe",
    "research: the scan against the planted truth (synthetic only) and the hindsight catch-up rate",
)

SCORES = Table(
    "scores",
    "timeframe",
    "every scored signal (rotation, td13_exhaustion): blocks, score, fired or why not, reasons, plan",
    lambda tf, cfg: schemas.scores_schema(cfg.score.alert_threshold),
)
ALERTS = Table(
    "alerts",
    "timeframe",
    "every fired signal as an alert: stable alert_id, payload, status at the latest bar, chart path",
    lambda tf=None, cfg=None: schemas.alerts_schema(),
)
SIM_TRADES = Table(
    "sim_trades",
    "timeframe",
    "the dry-run trade of each alert: fills, exits, PnL in % and R, fees, funding, MFE/MAE",
)

CATALOG: tuple[Table, ...] = (
    BARS,
    AUDITED_BARS,
    FUNDING,
    OPEN_INTEREST,
    GROUND_TRUTH,
    FEATURES,
    TD_STATE,
    ROTATION_CANDIDATES,
    BASKET_PROFILE,
    CONFIRMATIONS,
    SCANNER_QUALITY,
    SCORES,
    ALERTS,
    SIM_TRADES,
)
# What `features.load` joins, in this order, onto the audited bars (each stage one symbol × timeframe).
LOAD_ORDER: tuple[Table, ...] = (AUDITED_BARS, FEATURES, TD_STATE)
# What the scanner and the confirmation read per symbol.
SIGNAL_INPUTS: tuple[Table, ...] = (AUDITED_BARS, FEATURES)


def table(name: str) -> Table:
    """The catalog entry of a table name (ValueError naming the known ones)."""
    for entry in CATALOG:
        if entry.name == name:
            return entry
    raise ValueError(f"no stored table {name!r}; the catalog has {[t.name for t in CATALOG]}")
