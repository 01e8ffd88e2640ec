from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from apex_rotation.schemas import (
    SchemaViolation,
    TradeRecord,
    bars_schema,
    frame_to_records,
    read_jsonl,
    records_to_frame,
    validate_frame,
    write_jsonl,
)
from apex_rotation.store.parquet import ParquetStore

T0 = datetime(2024, 3, 4, 8, tzinfo=UTC)


def _bars(n: int = 6, tf: str = "4h") -> pd.DataFrame:
    idx = pd.date_range("2024-03-04", periods=n, freq=tf, tz="UTC", name="open_time")
    close = np.linspace(100, 105, n)
    df = pd.DataFrame(
        {
            "open": close - 0.5,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.full(n, 10.0),
        },
        index=idx,
    )
    return df.assign(close_time=df.index + pd.Timedelta(tf))


def test_records_round_trip_through_jsonl_and_parquet(tmp_path):
    trade = TradeRecord(symbol="APT", side="long", entry_time=T0, entry_price=10, stop_price=9.5, size=15)
    path = write_jsonl([trade, trade], tmp_path / "trades.jsonl")
    assert read_jsonl(TradeRecord, path) == [trade, trade]
    frame = records_to_frame([trade, trade]).set_index("symbol")
    ParquetStore(tmp_path).write("trades", "4h", "basket", frame)
    back = ParquetStore(tmp_path).read("trades", "4h", "basket")
    assert frame_to_records(TradeRecord, back) == [trade, trade]


def test_record_models_refuse_bad_values():
    with pytest.raises(ValidationError, match="greater than 0"):
        TradeRecord(symbol="X", side="long", entry_time=T0, entry_price=-1, stop_price=1, size=1)
    with pytest.raises(ValidationError, match="side"):
        TradeRecord(symbol="X", side="sideways", entry_time=T0, entry_price=1, stop_price=1, size=1)
    with pytest.raises(ValidationError, match="extra"):
        TradeRecord(symbol="X", side="long", entry_time=T0, entry_price=1, stop_price=1, size=1, leverage=10)


def test_bar_schema_accepts_canonical_bars():
    validate_frame(bars_schema("4h"), _bars(), "ok")
    audited = _bars().assign(filled=False, filled_hours=0, fill_reason="", outlier=False)
    validate_frame(bars_schema("4h", audited=True), audited, "ok")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.assign(high=d["low"] - 1), "open/close outside"),
        (lambda d: d.assign(volume=-d["volume"]), "greater_than_or_equal_to"),
        (lambda d: d.assign(close_time=d["close_time"] + pd.Timedelta("1h")), "close_time != open_time"),
        (
            lambda d: d.set_axis(d.index + pd.Timedelta("1h")).assign(
                close_time=lambda x: x.index + pd.Timedelta("4h")
            ),
            "off the 4h grid",
        ),
        (lambda d: d.iloc[::-1], "not increasing"),
    ],
)
def test_bar_schema_names_what_is_wrong(mutate, message):
    with pytest.raises(SchemaViolation, match=message) as err:
        validate_frame(bars_schema("4h"), mutate(_bars()), "bars SOL 4h")
    assert "bars SOL 4h" in str(err.value)


def test_audited_schema_refuses_a_gap_and_unknown_fill_reason():
    audited = _bars().assign(filled=False, filled_hours=0, fill_reason="", outlier=False)
    with pytest.raises(SchemaViolation, match="gap in an audited grid"):
        validate_frame(bars_schema("4h", audited=True), audited.drop(audited.index[2]), "audited")
    with pytest.raises(SchemaViolation, match="isin"):
        validate_frame(bars_schema("4h", audited=True), audited.assign(fill_reason="guess"), "audited")


def test_audited_schema_checks_filled_hours_against_the_flags():
    schema = bars_schema("4h", audited=True)
    audited = _bars().assign(filled=False, filled_hours=[0, 1, 3, 4, 0, 0], fill_reason="", outlier=False)
    audited.loc[audited.index[3], ["filled", "fill_reason"]] = [True, "gap"]
    audited.loc[audited.index[4], "fill_reason"] = "wick"  # a traded bar whose wick was clipped
    validate_frame(schema, audited, "ok")
    with pytest.raises(SchemaViolation, match="in_range"):
        validate_frame(schema, audited.assign(filled_hours=[-1, 1, 3, 4, 0, 0]), "audited")
    with pytest.raises(SchemaViolation, match="filled_hours"):
        validate_frame(schema, audited.drop(columns="filled_hours"), "audited")
    for column, value in (("filled_hours", 2), ("fill_reason", ""), ("filled", False)):
        bad = audited.copy()
        bad.loc[bad.index[3], column] = value
        with pytest.raises(SchemaViolation, match="disagree"):
            validate_frame(schema, bad, "audited")


def test_stage_schemas_enforce_their_invariants(small_features):
    from apex_rotation.features import td
    from apex_rotation.schemas import features_schema, signals_schema, td_state_schema, trades_schema

    validate_frame(features_schema(), small_features, "features")
    with pytest.raises(SchemaViolation, match="corr_eth_14"):
        validate_frame(features_schema(), small_features.assign(corr_eth_14=1.2), "features")

    state = td.compute(_bars(40, "1h"))
    validate_frame(td_state_schema(), state, "td")
    with pytest.raises(SchemaViolation, match="td_countdown"):
        validate_frame(td_state_schema(), state.assign(td_countdown=14), "td")

    candidates = pd.DataFrame(
        {
            "bar_time": [pd.Timestamp(T0)],
            "timeframe": ["4h"],
            "symbol": ["APT"],
            "apex_asset": ["ETH"],
            "apex_move": ["+5.2%"],
            "coin_move": ["+1.0%"],
            "correlation": [0.84],
            "beta": [1.87],
            "signal_strength": ["HIGH"],
            "status": ["LAGGING_ROTATION"],
        }
    )
    validate_frame(signals_schema(), candidates, "candidates")
    with pytest.raises(SchemaViolation, match="apex_move"):
        validate_frame(signals_schema(), candidates.assign(apex_move="5.2"), "candidates")

    trade = TradeRecord(
        alert_id="a1",
        archetype="rotation",
        symbol="APT",
        timeframe="4h",
        side="long",
        signal_time=T0,
        entry_time=T0 + pd.Timedelta("4h"),
        entry_price=10,
        stop_price=9.5,
        size=15,
        exit_time=T0 + pd.Timedelta("8h"),
        exit_price=9.5,
        exit_reason="stop",
    )
    trades = records_to_frame([trade])
    for col in ("signal_time", "entry_time", "exit_time"):
        trades[col] = pd.to_datetime(trades[col], utc=True)
    validate_frame(trades_schema(), trades, "trades")
    with pytest.raises(SchemaViolation, match="loss side"):
        validate_frame(trades_schema(), trades.assign(stop_price=11.0), "trades")


@pytest.fixture
def small_features() -> pd.DataFrame:
    from apex_rotation.config import load_config
    from apex_rotation.features.build import build_features, model_returns

    cfg = load_config()
    rng = np.random.default_rng(3)
    n = 400
    idx = pd.date_range("2024-01-01", periods=n, freq="4h", tz="UTC", name="open_time")

    def bars(scale: float) -> pd.DataFrame:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01 * scale, n)))
        df = pd.DataFrame(
            {
                "open": close,
                "high": close * 1.01,
                "low": close * 0.99,
                "close": close,
                "volume": rng.uniform(1, 2, n),
                "filled": False,
            },
            index=idx,
        )
        return df.assign(close_time=df.index + pd.Timedelta("4h"))

    btc, eth, alt = bars(1), bars(1.2), bars(2)
    bench = {"BTC": model_returns(btc, cfg), "ETH": model_returns(eth, cfg)}
    return build_features(alt, bench_returns=bench, timeframe="4h", cfg=cfg)
