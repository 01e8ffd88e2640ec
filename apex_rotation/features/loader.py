"""`features.load`: one symbol/timeframe from the feature store as a DataFrame.

It joins the `audited_bars` partition with the `features` and `td_state` partitions when they exist
(same open-time index), so a caller sees one table whatever stage has run. Reads are plain Parquet reads
of immutable files: the same store gives identical arrays in any run and process. The joined frame is
kept in the store's frame cache under the identities of the files it was joined from, so the several
signal stages of one run that load a partition join it once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from apex_rotation.config import load_config
from apex_rotation.store.parquet import FRAMES, ParquetStore, StoreError, file_identity
from apex_rotation.store.tables import LOAD_ORDER, Table
from apex_rotation.timeframes import to_utc


def load(
    symbol: str,
    tf: str,
    cols: list[str] | None = None,
    start: pd.Timestamp | str | None = None,
    end: pd.Timestamp | str | None = None,
    root: str | Path | None = None,
    assets: tuple[Table | str, ...] = LOAD_ORDER,
) -> pd.DataFrame:
    """Bars (and features, when computed) for `symbol` at timeframe `tf`, open times in [start, end].

    `start`/`end` may be strings, datetimes or Timestamps: a naive one is taken as UTC, an aware one in
    another zone is converted (bars are labelled by their UTC open time).
    `cols` selects columns (KeyError naming the missing ones); `root` defaults to the configured store;
    `assets` picks which stored stages to join (all that exist by default). Later stages are joined onto
    the first one's bars: a stage not yet recomputed for the newest bars shows NaN there, never a shorter
    frame.
    """
    store = ParquetStore(root or load_config().data_root())
    start = None if start is None else to_utc(start)
    end = None if end is None else to_utc(end)
    files = [(a, i) for a in assets if (i := file_identity(store.path(a, tf, symbol))) is not None]
    key = ("load", tuple(i for _, i in files), start, end)  # the join of exactly these file versions
    out = FRAMES.get(key)
    if out is None:
        out = _join(store, [a for a, _ in files], symbol, tf, start, end)
        FRAMES.put(key, out)
    if cols is not None:
        missing = [c for c in cols if c not in out.columns]
        if missing:
            raise KeyError(f"{symbol} {tf}: no columns {missing}; available: {list(out.columns)}")
        out = out[cols]
    return out


def _join(
    store: ParquetStore,
    assets: list[Table | str],
    symbol: str,
    tf: str,
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
) -> pd.DataFrame:
    """The stored stages of one partition joined on the first one's bars (its columns win)."""
    frames = []
    for asset in assets:
        frame = store.read(asset, tf, symbol, start=start, end=end)
        if frames:
            frame = frame.drop(columns=[c for c in frame.columns if c in frames[0].columns])
        frames.append(frame)
    if not frames:
        raise StoreError(f"nothing stored for {symbol} {tf} under {store.root}: run `apex refresh` first")
    return frames[0] if len(frames) == 1 else frames[0].join(frames[1:], how="left")
