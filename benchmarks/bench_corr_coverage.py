"""How many corr/beta values gaps blank: the NaN share of `corr_btc_{14,30}` after warm-up, before and after
gap-aware correlation, on the real fixtures (as they are, and with injected exchange outages).

The bars go the production way: the freqtrade feather files through `FilesSource` → `clean_ohlcv` →
`audit_bars` (a missing hour becomes a flagged flat bar) for 1h, and `resample` of the audited 1h bars for
4h (as `StoreRefresher.audit` builds audited 4h bars; the 4h outlier flag it adds does not enter returns).
Correlations are `build.correlation_features` of `build.model_returns` (winsorized, gap-aware returns), as
`build_features` computes them; BTC's returns are reindexed to each symbol's bars.

* before: `min_coverage=1.0`, the old rule (a window with any missing return pair is NaN); the code before
  this change gives the same NaN positions.
* after: `features.corr_min_coverage` of the default config (0.9).

"After warm-up" counts the bars from each symbol's first full window on (bar `window`: bar 0 has no return),
BTC itself left out. Injected outages (fixed seed), applied to the raw 1h rows before cleaning: exchange-wide
ones (every symbol loses the same hours: 1, 3 and 9 h) and per-symbol ones (each symbol loses a few single
hours, as a flaky feed would). Run: `uv run python benchmarks/bench_corr_coverage.py`.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from apex_rotation.config import load_config
from apex_rotation.features.build import correlation_features, model_returns
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.ingest.files import FilesSource
from apex_rotation.store.audit import audit_bars
from apex_rotation.store.resample import resample
from apex_rotation.timeframes import bars_per_day
from apex_rotation_tests.shared import AURANG_2025H1, GENETRADER_2024

CFG = load_config()
SYMBOLS = list(CFG.basket.names)
WINDOWS_DAYS = (14, 30)
SEED = 2024
WIDE_OUTAGE_HOURS = (1, 3, 9)  # exchange-wide outages (9 h spans at least two whole 4h bars)
SINGLE_HOURS_PER_SYMBOL = 1  # a symbol's own missing hours (on average, Poisson)


def raw_1h(folder) -> dict[str, pd.DataFrame]:
    source = FilesSource(CFG, folder)
    since, until = source.history_window()
    return {s: source.fetch_ohlcv(s, "1h", since, until) for s in SYMBOLS}


def inject_outages(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Drop rows: the same hours from every symbol (exchange-wide), and a few single hours per symbol."""
    rng = np.random.default_rng(SEED)
    opens = raw["BTC"]["open_time"].to_numpy()
    hour = 3_600_000
    drop_all: set[int] = set()
    for hours in WIDE_OUTAGE_HOURS:
        first = int(rng.integers(800, len(opens) - 50))
        drop_all |= {int(opens[first]) + k * hour for k in range(hours)}
    out = {}
    for symbol, frame in raw.items():
        t = frame["open_time"].to_numpy()
        own = rng.choice(t[1:-1], size=rng.poisson(SINGLE_HOURS_PER_SYMBOL), replace=False)
        out[symbol] = frame[~np.isin(t, [*drop_all, *own])]
    return out


def audited_1h(raw: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    out = {}
    for symbol, frame in raw.items():
        bars = clean_ohlcv(frame, symbol=symbol, timeframe="1h", source="files").bars
        out[symbol], _ = audit_bars(bars, symbol=symbol, timeframe="1h", cfg=CFG.audit)
    return out


def nan_shares(bars: dict[str, pd.DataFrame], timeframe: str, min_coverage: float) -> dict[str, float]:
    """NaN share of corr_btc_<days> after warm-up, pooled over the non-BTC symbols."""
    btc = model_returns(bars["BTC"], CFG)
    nan = dict.fromkeys(WINDOWS_DAYS, 0)
    total = dict.fromkeys(WINDOWS_DAYS, 0)
    for symbol, frame in bars.items():
        if symbol == "BTC":
            continue
        corr = correlation_features(model_returns(frame, CFG), {"BTC": btc}, timeframe, min_coverage)
        for days in WINDOWS_DAYS:
            after = corr[f"corr_btc_{days}"].iloc[days * bars_per_day(timeframe) :]
            nan[days] += int(after.isna().sum())
            total[days] += len(after)
    return {f"corr_btc_{days}": nan[days] / total[days] for days in WINDOWS_DAYS}


def main() -> None:
    logging.disable(logging.WARNING)  # the audit warns about every gap it fills
    after_cov = CFG.features.corr_min_coverage
    print(
        f"NaN share of corr_btc after warm-up (16 symbols vs BTC): before (coverage 1.0) -> after ({after_cov})"
    )
    for folder in (GENETRADER_2024, AURANG_2025H1):
        raw = raw_1h(folder)
        for label, data in (("real", raw), ("injected outages", inject_outages(raw))):
            base = audited_1h(data)
            filled = sum(int(b["filled"].sum()) for b in base.values())  # missing 1h bars the audit filled
            for timeframe in ("1h", "4h"):
                bars = {s: resample(b, timeframe, symbol=s) for s, b in base.items()}
                before = nan_shares(bars, timeframe, 1.0)
                after = nan_shares(bars, timeframe, after_cov)
                cells = "  ".join(f"{k} {before[k]:6.2%} -> {after[k]:6.2%}" for k in before)
                print(f"  {folder.name:14s} {label:16s} ({filled:3d} filled 1h bars) {timeframe}: {cells}")


if __name__ == "__main__":
    main()
