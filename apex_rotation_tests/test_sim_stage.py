"""The `sim_trades` stage: the fired rows of the stored `scores`, the store's bars and funding, the table, the
CSV export, the asset and its checks."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from apex_rotation.defs.resources import StoreResource
from apex_rotation.defs.sim_assets import build_sim_assets
from apex_rotation.exec import sim
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.tables import AUDITED_BARS, BARS, BASKET_KEY, FUNDING, SCORES, SIM_TRADES
from apex_rotation_tests.test_sim import LIMIT, T0, H, bars, signal

# SOL: the signal bar, a fill at 100 on bar 2, the target 110 on bar 3 (as in test_sim)
SOL_1H = bars([(101, 102, 99, 101), (101, 103, 100.5, 102), (102, 102, 99.5, 101), (101, 111, 100, 108)])


def _store(root, venue: str = "binance") -> ParquetStore:
    store = ParquetStore(root)
    store.write(AUDITED_BARS, "1h", "SOL", SOL_1H)
    store.write(BARS, "1h", "SOL", SOL_1H, meta={"source": "ccxt", "venue": venue})
    fired, quiet = signal(), signal(symbol="APT").model_copy(update={"fired": False})
    scores = pd.DataFrame([fired.to_row(), quiet.to_row()])
    store.write(SCORES, "1h", BASKET_KEY, scores)
    return store


def test_simulate_timeframe_writes_the_table_and_the_csv(default_config, tmp_path):
    store = _store(tmp_path)
    report = sim.simulate_timeframe(default_config, store, "1h")
    stored = store.read(SIM_TRADES, "1h", BASKET_KEY)
    assert list(stored["alert_id"]) == [signal().signal_id]  # the fired row only
    row = stored.iloc[0]
    assert (row.instrument, row.exit_reason, row.entry_price, row.exit_price) == ("spot", "target", 100, 110)
    # spot: a 0.1 % fee on the 100 entry and on the 110 exit; limit and target fills have no slippage
    assert row.fees_pct == pytest.approx(0.1 + 0.1 * 1.1) and row.pnl_r == pytest.approx((10 - 0.21) / 5)
    csv = pd.read_csv(sim.exports_path(store, "1h"))
    assert csv["alert_id"].tolist() == report.trades["alert_id"].tolist()
    assert sim.sim_problems(store, "1h") == {}


def test_auto_instrument_trades_perps_where_the_venue_pays_funding(default_config, tmp_path):
    store = _store(tmp_path, venue="hyperliquid")
    store.write(
        FUNDING,
        None,
        "SOL",
        pd.DataFrame({"rate": np.full(6, 0.0001)}, index=T0 + H * np.arange(1, 7)).rename_axis("time"),
    )
    row = sim.simulate_timeframe(default_config, store, "1h").trades.iloc[0]
    # held from 02:00 to the target at 03:00: the rate stamped at 03:00, paid by the long
    assert row.instrument == "perps" and row.funding_pct == pytest.approx(-0.01)
    assert row.fees_pct == pytest.approx(0.02 + 0.02 * 1.1)  # maker in, maker out


def test_store_market_reads_funding_and_venue_once_with_the_stored_values(default_config, tmp_path):
    """StoreMarket keeps what it read: a second simulation on the same market equals one on a fresh market."""
    store = _store(tmp_path, venue="hyperliquid")
    rates = pd.DataFrame({"rate": np.full(6, 0.0001)}, index=T0 + H * np.arange(1, 7)).rename_axis("time")
    store.write(FUNDING, None, "SOL", rates)
    market = sim.StoreMarket(store, default_config)
    first = sim.run([signal()], market=market, cfg=default_config).trades
    assert market.funding("SOL") is market.funding("SOL")
    pd.testing.assert_series_equal(market.funding("SOL"), store.read(FUNDING, None, "SOL")["rate"])
    again = sim.run([signal()], market=market, cfg=default_config).trades
    fresh = sim.run([signal()], market=sim.StoreMarket(store, default_config), cfg=default_config).trades
    pd.testing.assert_frame_equal(again, fresh)
    pd.testing.assert_frame_equal(first, fresh)
    assert fresh.iloc[0].instrument == "perps" and fresh.iloc[0].funding_pct == pytest.approx(-0.01)


def test_run_reads_the_configured_store_by_default(data_dir):
    _store(data_dir)
    report = sim.run([signal()], LIMIT)  # the seed's call: bars, costs and config from the default store
    assert report.trades.iloc[0].exit_reason == "target"


def test_missing_scores_is_a_clear_error(default_config, tmp_path):
    with pytest.raises(StoreError, match=r"no scores table for 4h .*materialize `scores`"):
        sim.simulate_timeframe(default_config, ParquetStore(tmp_path), "4h")


def test_checks_find_missing_trades_and_bad_rows(default_config, tmp_path):
    store = _store(tmp_path)
    sim.simulate_timeframe(default_config, store, "1h")
    trades = store.read(SIM_TRADES, "1h", BASKET_KEY)
    broken = trades.assign(stop_price=120.0, exit_time=trades["entry_time"] - H)
    store.write(SIM_TRADES, "1h", BASKET_KEY, pd.concat([broken, broken.assign(alert_id="orphan")]))
    problems = sim.sim_problems(store, "1h")
    assert set(problems) == {"every_alert", "exit_after_entry", "stop_loss_side"}
    assert "orphan" in problems["every_alert"][0]
    store.write(SIM_TRADES, "1h", BASKET_KEY, trades.iloc[:0])
    assert "without a trade" in sim.sim_problems(store, "1h")["every_alert"][0]


def test_the_asset_materializes_with_passing_checks(default_config, tmp_path):
    _store(tmp_path)
    (asset,) = build_sim_assets(default_config)
    assert asset.group_names_by_key[dg.AssetKey("sim_trades")] == "exec"
    assert dg.AssetKey("alerts") in asset.dependency_keys
    result = dg.materialize(
        [asset],
        partition_key="1h",
        resources={"store": StoreResource(root=str(tmp_path))},
        raise_on_error=False,
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == dict.fromkeys(
        ["sim_trades_every_alert", "sim_trades_exit_after_entry", "sim_trades_stop_loss_side"], True
    )
    assert (tmp_path / "exports" / "sim_trades_1h.csv").exists()
