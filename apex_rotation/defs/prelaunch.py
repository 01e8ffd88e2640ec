"""Before `apex run` launches a run: would every partition of it be skipped? Then it is not launched.

A run in which every step skips every partition still costs Dagster seconds (run bookkeeping, an event per
partition and check written to the instance) for a store it leaves as it was. The store's own fingerprints
(defs/incremental.py) already say what each step would skip, so they are asked first, with the same inputs,
outputs and vetoes the steps use:

* data run (bars → audited_bars → features, td_state): skipped only when the source reports nothing new
  (`StoreRefresher.nothing_new`: a source with a fixed history, synthetic or files, whose window the stored
  1h base, funding and open interest already reach; a live venue is always asked, so its data run always
  runs) and every audited_bars, features and td_state partition is unchanged (the bars a refresh would
  rewrite are their inputs, compared by content).
* signals run: skipped when every partition of every signal step is unchanged and not vetoed (an alert
  still to deliver or a missing chart; a missing sim export).

A skipped run leaves the store exactly as running it would (the steps would compute nothing and the
refresh would fetch nothing); Dagster keeps showing the last run that did compute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.defs.alert_assets import alerts_settled
from apex_rotation.defs.feature_assets import features_step, td_state_step
from apex_rotation.defs.incremental import (
    TIMEFRAME_STEPS,
    Fingerprints,
    timeframe_inputs,
    timeframe_outputs,
)
from apex_rotation.defs.market_data_assets import audited_bars_step
from apex_rotation.exec.alerts.outbox import OUTBOX_FILE, Outbox
from apex_rotation.exec.sim import exports_path
from apex_rotation.ingest.registry import make_perps_source, make_source
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import StoreRefresher
from apex_rotation.store.tables import BASKET_KEY


def _when(ts: pd.Timestamp | float) -> str:
    if isinstance(ts, float):
        ts = pd.Timestamp(dt.datetime.fromtimestamp(ts, dt.UTC))
    return f"{ts:%Y-%m-%d %H:%M} UTC"


def data_run_idle(
    cfg: AppConfig,
    store: ParquetStore,
    timeframes: Sequence[str],
    *,
    source: str | None = None,
    data_dir: str | None = None,
    now: pd.Timestamp | None = None,
) -> str | None:
    """Why the data run of every basket symbol × `timeframes` can be skipped, or None when it must run."""
    ohlcv = make_source(cfg, source, data_dir=data_dir)
    with StoreRefresher(cfg, store, ohlcv, perps_source=make_perps_source(cfg, ohlcv), now=now) as refresher:
        newest = refresher.nothing_new(cfg.basket.names)
    if newest is None:
        return None
    pairs = [(s, tf) for s in cfg.basket.names for tf in timeframes]
    steps = (audited_bars_step(cfg, store), features_step(cfg, store), td_state_step(cfg, store))
    if not all(step.all_unchanged(pairs) for step in steps):
        return None
    return f"nothing new since {_when(newest)}"


def signals_run_idle(cfg: AppConfig, store: ParquetStore, timeframes: Sequence[str]) -> str | None:
    """Why the signals run of `timeframes` can be skipped, or None when it must run."""
    computed = []
    for asset in TIMEFRAME_STEPS:
        fp = Fingerprints(store, asset, cfg)
        for tf in timeframes:
            inputs = timeframe_inputs(store, asset, tf)
            if not fp.unchanged(tf, BASKET_KEY, inputs, timeframe_outputs(store, asset, tf)):
                return None
            computed.append(fp.recorded_at(tf, BASKET_KEY))
    if any(not exports_path(store, tf).exists() for tf in timeframes):
        return None
    if not (store.root / "alerts" / OUTBOX_FILE).exists():
        return None
    with Outbox.under(store.root) as outbox:
        if not all(alerts_settled(cfg, store, outbox, tf) for tf in timeframes):
            return None
    return f"inputs unchanged since {_when(max(computed))}"
