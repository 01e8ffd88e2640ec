"""`MarketDataSource.unlisted(symbols)`: the basket symbols a source cannot serve, for a pre-flight check."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from apex_rotation.config import load_config
from apex_rotation.ingest.ccxt_source import CcxtSource
from apex_rotation.ingest.files import FilesSource
from apex_rotation.ingest.hyperliquid_source import HyperliquidSource
from apex_rotation.ingest.synthetic import SyntheticSource
from apex_rotation_tests.replay_server import ReplayServer
from apex_rotation_tests.shared import AURANG_2025H1, GENETRADER_2024, requires_shared

BASKET = ["BTC", "ETH", "MATIC", "PEPE", "TIA", "NOTACOIN"]
CFG = load_config(
    overrides={
        "basket": {"symbols": BASKET},
        "aliases": {"hyperliquid": {"PEPE": "kPEPE"}},
        "data_sources": {"request_timeout_s": 0.3, "max_retries": 0, "hyperliquid_min_interval_s": 0.0},
    }
)
BEFORE_POL, AFTER_POL = pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2025-02-01", tz="UTC")


@requires_shared
@pytest.mark.parametrize(
    ("folder", "expected"),
    [(GENETRADER_2024, ["PEPE", "NOTACOIN"]), (AURANG_2025H1, ["PEPE", "NOTACOIN"])],
    ids=["matic_file", "pol_file_only"],
)
def test_files_lists_a_symbol_with_a_1h_file_for_any_alias_ticker(folder: Path, expected) -> None:
    assert FilesSource(CFG, folder).unlisted(BASKET) == expected  # MATIC: MATIC_USDT or POL_USDT


def test_files_in_a_temp_folder(tmp_path: Path) -> None:
    (tmp_path / "nested").mkdir()
    (tmp_path / "nested" / "POLUSDT-1h-2025-01.csv").write_text("")  # names only: nothing is read
    (tmp_path / "ETHUSDT-4h-2025-01.csv").write_text("")  # not 1h: the refresh reads 1h only
    source = FilesSource(CFG, tmp_path)
    assert source.unlisted(BASKET) == ["BTC", "ETH", "PEPE", "TIA", "NOTACOIN"]
    assert source.unlisted([]) == []


@requires_shared
@pytest.mark.parametrize(
    ("now", "expected"),
    [(BEFORE_POL, ["MATIC", "PEPE", "TIA", "NOTACOIN"]), (AFTER_POL, ["PEPE", "TIA", "NOTACOIN"])],
    ids=["matic_era", "pol_era"],
)
def test_ccxt_checks_the_pair_trading_now_against_the_markets(now: pd.Timestamp, expected) -> None:
    with ReplayServer() as srv:  # recorded: BTC/USDT only
        srv.add_binance_market("ETH", "USDT")
        srv.add_binance_market("POL", "USDT")  # MATIC/USDT is gone, as on Binance today
        source = CcxtSource(CFG, api_url=srv.url, enable_rate_limit=False, clock=lambda: now)
        assert source.unlisted([]) == [] and srv.count() == 0
        assert source.unlisted(BASKET) == expected
        assert source.unlisted(["BTC"]) == []
        assert [r.route for r in srv.requests] == ["exchangeInfo"]  # the markets load once
        source.close()


@requires_shared
def test_hyperliquid_checks_the_coin_against_the_perp_universe() -> None:
    with ReplayServer() as srv:  # the recorded meta of July 2023: 28 perps, kPEPE but no TIA
        source = HyperliquidSource(CFG, base_url=srv.url, clock=lambda: BEFORE_POL)
        assert source.unlisted([]) == [] and srv.count() == 0
        assert source.unlisted(BASKET) == ["TIA", "NOTACOIN"]  # PEPE is listed as kPEPE
        assert source.unlisted(["PEPE", "BTC"]) == []
        assert [r.route for r in srv.requests] == ["meta"]
        source.close()


def test_synthetic_serves_every_basket_symbol_and_says_which_it_invents(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = SyntheticSource(CFG)
    with caplog.at_level(logging.INFO, logger="apex_rotation.ingest.synthetic.source"):
        assert source.unlisted(BASKET) == []
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "symbols=PEPE,NOTACOIN" in lines[0], lines
    assert source.unlisted(["BTC", "NOTINBASKET"]) == ["NOTINBASKET"]  # it cannot serve those
