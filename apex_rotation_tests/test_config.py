from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apex_rotation.config import DEFAULT_CONFIG_PATH, AppConfig, ConfigError, Secrets, load_config


def _write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _default_raw() -> dict:
    return yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())


def test_default_config_holds_the_seed_excerpt():
    cfg = load_config()
    assert cfg.data_sources.spot_exchange == "binance" and cfg.data_sources.perps_venue == "hyperliquid"
    assert (cfg.td.htf, cfg.td.ltf) == ("4h", "1h")
    assert len(cfg.basket.names) == 17 and cfg.basket.names[:2] == ["BTC", "ETH"]
    assert (
        cfg.costs.spot_fee_pct == 0.10 and cfg.costs.perps_maker_fee_pct == 0.02 and cfg.costs.include_funding
    )
    assert (
        cfg.apex.move_threshold_pct,
        cfg.apex.alt_lag_threshold_pct,
        cfg.apex.corr_min,
        cfg.apex.beta_min,
    ) == (
        4.0,
        1.5,
        0.7,
        1.5,
    )
    assert (cfg.market_filters.volume_x, cfg.market_filters.breakout_lookback) == (2.0, 20)
    assert cfg.td.strict_perfection and cfg.td.cooldown_bars == 6 and cfg.td.profile == "standard"
    assert (cfg.risk.risk_per_trade_pct, cfg.risk.atr_mult_tp) == (0.75, 1.2)
    assert cfg.basket.alts == [s for s in cfg.basket.names if s not in ("BTC", "ETH")]


def test_bad_value_names_file_field_and_reason(tmp_path):
    raw = _default_raw()
    raw["apex"]["corr_min"] = 1.7
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and "apex.corr_min" in text and "less than or equal to 1" in text


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"td": {"htf": "2h", "ltf": "1h"}}, "td.htf"),
        ({"timeframes": {"htf": "4h"}}, "timeframes"),  # the removed section is refused, not ignored
        ({"basket": {"symbols": ["BTC", "ETH", "ETH"]}}, "basket.symbols"),
        ({"basket": {"symbols": ["SOL"]}}, "basket"),
        ({"basket": {"symbols": ["BTC", "ETH", "SOL"], "apex_assets": ["SOL"]}}, "apex_assets must be"),
        ({"unknown_section": {}}, "unknown_section"),
        ({"td": {"profile": "aggressive"}}, "td.profile"),
    ],
)
def test_invalid_sections_fail_fast(tmp_path, patch, field):
    raw = {**_default_raw(), **patch}
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(_write(tmp_path, raw))


def test_symbol_may_name_its_venue_and_aliases_span_time(tmp_path):
    raw = _default_raw()
    raw["basket"]["symbols"] = ["BTC", "ETH", {"symbol": "HYPE", "venue": "hyperliquid"}]
    cfg = load_config(_write(tmp_path, raw))
    assert cfg.basket.venue_of("HYPE") == "hyperliquid" and cfg.basket.venue_of("BTC") is None
    spans = cfg.ticker_spans("binance", "MATIC")
    assert [s.ticker for s in spans] == ["MATIC", "POL"]
    assert spans[0].until.isoformat() == "2024-09-10T00:00:00+00:00"
    assert [s.ticker for s in cfg.ticker_spans("binance", "SOL")] == ["SOL"]


def test_naive_alias_timestamp_is_refused(tmp_path):
    raw = _default_raw()
    raw["aliases"] = {"binance": {"MATIC": [{"ticker": "POL", "since": "2024-09-10T00:00:00"}]}}
    with pytest.raises(ConfigError, match="no timezone"):
        load_config(_write(tmp_path, raw))


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("basket: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_secrets_come_only_from_the_environment(tmp_path):
    raw = _default_raw()
    raw["secrets_env"]["telegram_bot_token"] = "MY_BOT_TOKEN_VAR"
    cfg = load_config(_write(tmp_path, raw))
    secrets = Secrets.from_env(
        cfg.secrets_env, {"MY_BOT_TOKEN_VAR": "123456789:AAHsecretsecretsecretsecretsecret"}
    )
    assert secrets.telegram_bot_token.get_secret_value().startswith("123456789:")
    assert "AAHsecret" not in repr(secrets) and "AAHsecret" not in str(secrets.model_dump())
    # a secret value written into YAML has no field to land in
    raw["telegram_bot_token"] = "123:abc"
    with pytest.raises(ConfigError, match="telegram_bot_token"):
        load_config(_write(tmp_path, raw))


def test_data_root_follows_env(monkeypatch, tmp_path):
    cfg: AppConfig = load_config()
    monkeypatch.setenv("APEX_DATA_DIR", str(tmp_path / "store"))
    assert cfg.data_root() == tmp_path / "store"
    monkeypatch.delenv("APEX_DATA_DIR")
    assert cfg.data_root().name == "data"


def test_a_bad_confirmation_rule_fails_when_the_config_loads(tmp_path):
    """Parsed at load time (not after the whole pipeline ran): the file, the field and a caret."""
    raw = _default_raw()
    raw["market_filters"]["rule"] = "volume_spike AND breakuot"
    path = _write(tmp_path, raw)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    assert str(path) in text and "market_filters.rule" in text and "unknown filter 'breakuot'" in text
    assert "did you mean 'breakout'" in text and "\n                   ^" in text


@pytest.mark.parametrize(
    ("section", "key", "value", "reason"),
    [
        ("apex", "beta_min", -0.5, "greater than 0"),
        ("apex", "corr_min", -0.2, "greater than 0"),
        ("apex", "alt_lag_threshold_pct", 5.0, "not lagging"),
        ("market_filters", "oi_shift_min_pct", -5.0, "greater than or equal to 0"),
        ("market_filters", "funding_hot", -0.0001, "greater than 0"),
        ("market_filters", "volume_x", 0.5, "greater than or equal to 1"),
    ],
)
def test_thresholds_that_make_a_gate_meaningless_are_refused(tmp_path, section, key, value, reason):
    raw = _default_raw()
    raw[section][key] = value
    with pytest.raises(ConfigError, match=rf"{section}\.{key}.*{reason}|{section}: .*{reason}"):
        load_config(_write(tmp_path, raw))


def test_a_negative_lag_threshold_is_allowed_on_purpose(tmp_path):
    """−1 % asks the alt to have fallen while the apex broke out: a stricter lag, documented in the model."""
    raw = _default_raw()
    raw["apex"]["alt_lag_threshold_pct"] = -1.0
    assert load_config(_write(tmp_path, raw)).apex.alt_lag_threshold_pct == -1.0
