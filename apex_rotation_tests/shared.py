"""Where the given fixtures live (`../shared` beside the project) and a skip for when they do not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("APEX_SHARED_DIR") or PROJECT_ROOT.parent / "shared")
FIXTURES = SHARED / "fixtures"
REAL_OHLCV = FIXTURES / "real_ohlcv"
GENETRADER_2024 = REAL_OHLCV / "genetrader_2024"
AURANG_2025H1 = REAL_OHLCV / "aurang_2025h1"
HYPERLIQUID_FIXTURES = FIXTURES / "hyperliquid"
CCXT_FIXTURES = FIXTURES / "ccxt"
TD_SPEC = SHARED / "specs" / "td_sequential.md"

requires_shared = pytest.mark.skipif(
    not FIXTURES.is_dir(),
    reason=f"the shared fixtures are not at {FIXTURES} (they sit beside the project only in the dev/CI workspace)",
)


def real_feather(symbol: str, timeframe: str, dataset: Path = GENETRADER_2024, quote: str = "USDT") -> Path:
    return dataset / f"{symbol}_{quote}-{timeframe}.feather"
