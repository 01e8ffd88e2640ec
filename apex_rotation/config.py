"""Typed configuration: every knob of `configs/default.yaml`, validated by pydantic.

A bad value fails fast with the file, the field path and the reason. Secrets never live in YAML: the
config names the environment variables that hold them, and `Secrets` reads them at run time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from apex_rotation.rules import RuleError, parse
from apex_rotation.timeframes import Timeframe

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "configs" / "default.yaml"
DATA_DIR_ENV = "APEX_DATA_DIR"
CONFIG_ENV = "APEX_CONFIG"

SourceName = Literal["synthetic", "ccxt", "hyperliquid", "files"]
# Correlation and beta are measured against these (feature names corr_btc_14, beta_eth_30, …).
BENCHMARK_SYMBOLS = ("BTC", "ETH")
# The confirmation filters a `market_filters.rule` may name (apex_rotation/signals/confirm.py implements each).
CONFIRMATION_FILTERS = ("volume_spike", "breakout", "oi_shift", "funding_flip", "funding_hot")


class ConfigError(ValueError):
    """A configuration file that cannot be used; the message names file, field and reason."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: object) -> object:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ValueError(f"timestamp {value.isoformat()} has no timezone; write it in UTC, e.g. '...Z'")
    return value.astimezone(UTC) if isinstance(value, datetime) else value


UtcDatetime = Annotated[datetime, BeforeValidator(_utc)]


class DataSourcesConfig(_Model):
    spot_exchange: str = "binance"
    perps_venue: Literal["hyperliquid", "synthetic", "none"] = "hyperliquid"
    default_source: SourceName = "synthetic"
    hyperliquid_url: str = "https://api.hyperliquid.xyz"
    ccxt_url: str | None = None
    request_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    history_days: int = Field(730, ge=1)
    # Hyperliquid allows 1200 weight/min per IP and an info call weighs ~20: at most one call a second.
    hyperliquid_min_interval_s: float = Field(1.0, ge=0)


class BasketSymbol(_Model):
    """A basket member; `venue` is where its bars come from (None: the configured spot exchange)."""

    symbol: str = Field(pattern=r"^[A-Z0-9]{1,15}$")
    venue: str | None = None


def _symbol_entry(value: object) -> object:
    return {"symbol": value} if isinstance(value, str) else value


class BasketConfig(_Model):
    symbols: list[Annotated[BasketSymbol, BeforeValidator(_symbol_entry)]]
    quote: str = "USDT"
    apex_assets: list[str] = ["BTC", "ETH"]

    @field_validator("symbols")
    @classmethod
    def _unique(cls, symbols: list[BasketSymbol]) -> list[BasketSymbol]:
        names = [s.symbol for s in symbols]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"symbols listed twice: {dupes}")
        if not names:
            raise ValueError("the basket is empty")
        return symbols

    @model_validator(mode="after")
    def _apex_in_basket(self) -> BasketConfig:
        missing = [a for a in self.apex_assets if a not in self.names]
        if missing:
            raise ValueError(f"apex assets {missing} are not in basket.symbols")
        unknown = [a for a in self.apex_assets if a not in BENCHMARK_SYMBOLS]
        if unknown or not self.apex_assets:
            raise ValueError(
                f"apex_assets must be some of {list(BENCHMARK_SYMBOLS)} (got {self.apex_assets})"
            )
        return self

    @property
    def names(self) -> list[str]:
        return [s.symbol for s in self.symbols]

    @property
    def alts(self) -> list[str]:
        return [s for s in self.names if s not in self.apex_assets]

    def venue_of(self, symbol: str) -> str | None:
        return next(s.venue for s in self.symbols if s.symbol == symbol)


class AliasSpan(_Model):
    """The venue's ticker for a basket symbol over [since, until)."""

    ticker: str
    since: UtcDatetime | None = None
    until: UtcDatetime | None = None


def _alias_entry(value: object) -> object:
    return [{"ticker": value}] if isinstance(value, str) else value


AliasList = Annotated[list[AliasSpan], BeforeValidator(_alias_entry)]


class CostsConfig(_Model):
    spot_fee_pct: float = Field(0.10, ge=0)
    spot_slippage_pct: float = Field(0.05, ge=0)
    perps_taker_fee_pct: float = Field(0.04, ge=0)
    perps_maker_fee_pct: float = 0.02  # may be negative, on purpose: a maker rebate
    include_funding: bool = True


class ApexConfig(_Model):
    move_threshold_pct: float = Field(4.0, gt=0)
    # May be negative, on purpose: −1.0 asks the alt to have FALLEN at least 1 % while the apex broke out
    # (a stricter lag); it must stay below the apex threshold, or the alt is following, not lagging.
    alt_lag_threshold_pct: float = 1.5
    corr_min: float = Field(0.7, gt=0, le=1)  # an alt that usually follows: positive correlation
    beta_min: float = Field(1.5, gt=0)  # … and a positive beta (it moves with the apex, not against it)
    corr_window_days: Literal[14, 30] = 14  # which rolling window gates corr/beta (read at the bar before)
    strength_high_pct: float = Field(10.0, gt=0)  # expected catch-up (beta × apex move − coin move) for HIGH
    strength_medium_pct: float = Field(6.0, gt=0)  # … for MEDIUM; below it LOW
    trigger_timeframes: list[Timeframe] = ["4h", "1d"]  # bars on which an apex move can trigger a scan

    @model_validator(mode="after")
    def _consistent(self) -> ApexConfig:
        if self.strength_medium_pct > self.strength_high_pct:
            raise ValueError(
                f"strength_medium_pct {self.strength_medium_pct} > strength_high_pct {self.strength_high_pct}"
            )
        if self.alt_lag_threshold_pct >= self.move_threshold_pct:
            raise ValueError(
                f"alt_lag_threshold_pct {self.alt_lag_threshold_pct} >= move_threshold_pct "
                f"{self.move_threshold_pct}: an alt that moved as much as the apex is not lagging"
            )
        return self


class FeaturesConfig(_Model):
    """How features meet gaps: corr/beta need this share of a window's return pairs to have traded."""

    corr_min_coverage: float = Field(0.9, gt=0, le=1)


class MarketFiltersConfig(_Model):
    volume_x: float = Field(2.0, ge=1)  # a spike is volume above its average: at least 1x
    breakout_lookback: int = Field(20, ge=1)
    breakout_atr_mult: float = Field(0.0, ge=0)  # close > hh_prev + mult × ATR; 0 = plain breakout
    oi_shift_min_pct: float = Field(5.0, ge=0)  # OI up at least this % over the bar (a drop never confirms)
    funding_hot: float = Field(0.0005, gt=0)  # funding rate per HOUR (0.05 %/h ≈ 0.4 % per 8 h)
    rule: str = "volume_spike AND breakout"  # confirmation rule (apex_rotation/rules.py grammar)
    confirm_window_bars: int = Field(6, ge=0)  # a laggard may confirm on its trigger bar or this many after

    @field_validator("rule")
    @classmethod
    def _parsable(cls, rule: str) -> str:
        """Parsed when the config loads, so a typo stops the command before any work, with a caret."""
        try:
            parse(rule, CONFIRMATION_FILTERS)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
        return rule


class TDConfig(_Model):
    strict_perfection: bool = True
    htf: Timeframe = "4h"  # the composer's higher and lower timeframes (conflict resolver), and its
    ltf: Timeframe = "1h"  # cool-down per symbol × archetype × direction: wired by the `scores` stage
    cooldown_bars: int = Field(6, ge=0)
    profile: Literal["standard", "loose"] = "standard"
    perfection_grace_bars: int | None = Field(None, ge=0)
    tdst_from: Literal["extreme", "bar1"] = "extreme"
    # The composer's reading of TD (signals/score.py): a 9 or 13 is "fresh" for this many bars of its
    # timeframe after it prints (0: only on its own bar); the LTF's print is "fresh" against the HTF thesis
    # when it closed within the last `conflict_ltf_bars` LTF bars up to the signal's close.
    fresh_bars: int = Field(3, ge=0)
    conflict_ltf_bars: int = Field(4, ge=1)
    early_against_count: int = Field(7, ge=1, le=8)  # an opposite setup this far along counts against a trade


class RiskConfig(_Model):
    risk_per_trade_pct: float = Field(0.75, gt=0, le=100)
    use_tdst_stop_when_td: bool = True
    atr_mult_tp: float = Field(1.2, gt=0)
    stop_atr_mult: float = Field(1.5, gt=0)  # ATR stop distance when neither TD nor structure gives one
    stop_buffer_atr: float = Field(0.1, ge=0)  # how far beyond a TDST / swing level the stop sits, in ATR
    min_stop_atr: float = Field(0.25, ge=0)  # a TD/structure stop closer than this is noise: next source
    min_rr: float = Field(1.2, gt=0)
    max_stop_atr: float = Field(4.0, gt=0)  # a TD/structure stop farther than this from entry is unusable


class TechnicalsConfig(_Model):
    """The classic stack's "k-of-5" check (RSI, MACD, EMA stack, Fibonacci zone, volume trend)."""

    rsi_min: float = Field(45.0, ge=0, le=100)
    rsi_max: float = Field(70.0, ge=0, le=100)
    required: int = Field(2, ge=1, le=5)
    fib_zones: tuple[str, ...] = ("38.2-50", "50-61.8", "above")


class RegimeConfig(_Model):
    """Trend vs chop: ADX, EMA stack and a past-only volatility band (percentiles of ATR/close)."""

    adx_trend: float = Field(25.0, ge=0, le=100)
    vol_window: int = Field(252, ge=2)
    vol_min_periods: int = Field(100, ge=2)
    vol_band_low: float | None = Field(None, ge=0, le=100)  # percentile 0..100; None: no lower edge
    vol_band_high: float = Field(95.0, ge=0, le=100)
    block_td_fades_in_trend: bool = False
    trend_fade_weight: float = Field(0.25, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> RegimeConfig:
        if self.vol_band_low is not None and self.vol_band_low > self.vol_band_high:
            raise ValueError(f"vol_band_low {self.vol_band_low} > vol_band_high {self.vol_band_high}")
        if self.vol_min_periods > self.vol_window:
            raise ValueError(f"vol_min_periods {self.vol_min_periods} > vol_window {self.vol_window}")
        return self


class MarketPoints(_Model):
    """Points of each confirmation filter that passes (a long; `funding_hot` is a caution, so negative)."""

    volume_spike: float = 1.5
    breakout: float = 1.5
    oi_shift: float = 1.0
    funding_flip: float = 0.5
    funding_hot: float = -1.0


class TechnicalPoints(_Model):
    per_check: float = 0.5  # each of the five checks of signals/technicals.py that passes
    k_of_5: float = 1.0  # the verdict: at least `technicals.required` of them pass
    retest_confirmed: float = 1.0  # rotation: the broken level was retested and held
    retest_failed: float = -1.0  # rotation: a close back below the broken level


class RotationPoints(_Model):
    high: float = 2.0  # signal strength (expected catch-up graded by apex.strength_*_pct)
    medium: float = 1.5
    low: float = 1.0
    catchup_left: float = 1.0  # at least `catchup_left_min` of the expected catch-up is still ahead
    catchup_left_min: float = Field(0.5, ge=0, le=1)


class TDPoints(_Model):
    countdown_13: float = 4.0  # a fresh countdown 13 in the trade's direction (buy 13 for a long)
    perfected_9: float = 1.0  # a fresh perfected 9 in the direction (a 13: the setup that started it)
    ltf_agrees: float = 0.5  # the LTF printed a fresh 9/13 in the trade's direction too
    against: float = -1.5  # a fresh 9/13 against the trade (a sell 9 for a long)
    early_setup: float = -0.5  # a setup still running: against (≥ td.early_against_count) or not exhausted


class ScoreConfig(_Model):
    """The composer (`signals/score.py`): block weights in points, the alert threshold, the re-fire margin."""

    alert_threshold: float = 6.0  # a signal fires when its score reaches this (and nothing suppresses it)
    rescore_margin: float = 1.0  # inside td.cooldown_bars, a repeat fires only if its score rose this much
    market: MarketPoints = MarketPoints()
    technical: TechnicalPoints = TechnicalPoints()
    rotation: RotationPoints = RotationPoints()
    td: TDPoints = TDPoints()
    entry_zone_atr: float = Field(0.25, ge=0)  # the entry zone reaches this many ATR from the signal close
    structure_bars: int = Field(10, ge=1)  # the swing low/high for the structure stop: over this many bars


class AlertsConfig(_Model):
    """Alert delivery (`exec/alerts/`): channels, endpoints (tests point them at 127.0.0.1), retries."""

    deliver_within_bars: int = Field(6, ge=0)  # history is recorded; only alerts this recent are sent
    telegram_api_url: str = "https://api.telegram.org"
    discord_api_url: str | None = None  # None: the webhook URL from the environment as is
    notion_api_url: str = "https://api.notion.com"
    notion_database_id: str | None = None  # the database the alert pages go to (with the notion token)
    # A request that may have reached the provider but was never acknowledged (timeout, connection
    # dropped after sending, process killed): "resend" = at-least-once for Telegram/Discord (the alert id
    # in every message tells a duplicate), "fail" = at-most-once (the row is marked failed, never resent).
    # Notion and the JSONL file reconcile by looking the alert id up, so they stay exactly-once either way.
    on_unacknowledged: Literal["resend", "fail"] = "resend"
    request_timeout_s: float = Field(10.0, gt=0)
    max_retries: int = Field(5, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)  # a longer 429 wait ends this run's tries (row stays failed)
    telegram_min_interval_s: float = Field(1.0, ge=0)  # ~1 message/s per chat
    notion_min_interval_s: float = Field(0.35, ge=0)  # ~3 requests/s per integration
    chart_bars: int = Field(120, ge=10)  # bars of context before the signal bar on a chart
    chart_plotlyjs: Literal["inline", "directory"] = "inline"  # inline: each chart opens anywhere (~4.8 MB)


class SimConfig(_Model):
    """The dry-run simulator (`exec/sim.py`): order expiry and the trade templates' knobs.

    Bar counts are in bars of the signal's timeframe. `instrument` decides the fee schedule: "auto" trades
    perps on a venue that serves funding (hyperliquid, the synthetic market) and spot elsewhere.
    """

    entry_expiry_bars: int = Field(6, ge=1)  # an unfilled limit order expires after this many bars
    max_hold_bars: int = Field(48, ge=1)  # a filled trade still open after this many bars closes at market
    rotation_take_profit: Literal["atr", "structure"] = "atr"  # atr: the plan's target (risk.atr_mult_tp)
    structure_lookback_bars: int = Field(20, ge=1)  # "structure": the swing high/low of this many bars
    td13_order: Literal["market", "limit"] = "market"  # TD13 exhaustion: next open, or a limit at plan entry
    instrument: Literal["auto", "spot", "perps"] = "auto"
    perps_slippage_pct: float | None = Field(None, ge=0)  # None: costs.spot_slippage_pct on perps too
    equity: float = Field(10_000.0, gt=0)  # sizes each trade at risk.risk_per_trade_pct of this


class SplitsConfig(_Model):
    """Walk-forward splits, in days of the signal timeframe's bars: train on [start, start + train), test on
    the `test_days` after it, move by `step_days`; anchored keeps every train window starting at the data's
    first bar."""

    mode: Literal["rolling", "anchored"] = "rolling"
    train_days: int = Field(90, ge=1)
    test_days: int = Field(30, ge=1)
    step_days: int = Field(30, ge=1)
    max_folds: int | None = Field(None, ge=1)  # the latest folds when there are more


class AblationOffConfig(_Model):
    """What "switched off" means for the gates that are thresholds (the others are documented in
    docs/research.md): the lowest values the scanner still accepts."""

    apex_move_threshold_pct: float = Field(2.0, gt=0)  # the apex-move gate opened to this
    corr_min: float = Field(0.01, gt=0, le=1)  # corr/beta gates opened to these
    beta_min: float = Field(0.01, gt=0)


class ResearchConfig(_Model):
    """The walk-forward harness (`apex backtest`, `backtest_report`; docs/research.md)."""

    timeframes: list[Timeframe] = ["4h", "1d"]  # signal timeframes backtested, each on its own
    splits: SplitsConfig = SplitsConfig()
    # The parameter grid the walk-forward picks from on each train window: dotted config paths → values
    # (their product is the grid; keep it small).
    grid: dict[str, list[float]] = {"apex.move_threshold_pct": [2.5, 3.0, 4.0, 5.0]}
    objective: Literal["sharpe", "mean_r", "total_return"] = "sharpe"
    min_train_trades: int = Field(3, ge=0)  # a grid point with fewer train trades cannot be picked
    ablations: list[
        Literal["use_td", "use_volume_x2", "apex_move_threshold", "corr_beta", "confirmation", "regime_gate"]
    ] = ["use_td", "use_volume_x2", "apex_move_threshold", "corr_beta", "confirmation", "regime_gate"]
    ablation_off: AblationOffConfig = AblationOffConfig()
    bootstrap_samples: int = Field(1000, ge=10)
    bootstrap_block_days: int = Field(5, ge=1)  # circular block bootstrap over days
    confidence: float = Field(0.95, gt=0, lt=1)
    placebo: bool = True  # the full run's entries at shuffled times (and a second shuffle as the control)
    seed: int = 20240101
    plots: bool = True
    plotlyjs: Literal["inline", "cdn"] = "inline"  # inline: every HTML file self-contained (~4.8 MB)
    lookahead_cuts: int = Field(6, ge=1)  # `apex lookahead`: cut points per timeframe

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[float]]) -> dict[str, list[float]]:
        for path, values in grid.items():
            section, _, name = path.partition(".")
            model = AppConfig.model_fields.get(section)
            if not name or model is None or name not in model.annotation.model_fields:
                raise ValueError(f"grid key {path!r} is not a config field such as 'apex.move_threshold_pct'")
            if not values:
                raise ValueError(f"grid key {path!r} has no values")
        return grid


class SyntheticConfig(_Model):
    seed: int = 7
    end: UtcDatetime = datetime(2026, 1, 1, tzinfo=UTC)
    days: int = Field(730, ge=30)


class AuditConfig(_Model):
    spike_factor: float = Field(10.0, gt=1)
    outlier_return_z: float = Field(8.0, gt=0)
    winsor_z: float = Field(5.0, gt=0)
    max_missing_pct: float = Field(0.1, ge=0)


class StoreConfig(_Model):
    root: Path = Path("data")


class LoggingConfig(_Model):
    format: Literal["kv", "json"] = "kv"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class SecretsEnvConfig(_Model):
    """Names of the environment variables that hold secrets (the values are never in YAML)."""

    telegram_bot_token: str = "APEX_TELEGRAM_BOT_TOKEN"
    telegram_chat_id: str = "APEX_TELEGRAM_CHAT_ID"
    discord_webhook_url: str = "APEX_DISCORD_WEBHOOK_URL"
    notion_token: str = "APEX_NOTION_TOKEN"
    exchange_api_key: str = "APEX_EXCHANGE_API_KEY"
    exchange_api_secret: str = "APEX_EXCHANGE_API_SECRET"


class Secrets(_Model):
    """Secret values read from the environment; `SecretStr` keeps them out of reprs and logs."""

    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: SecretStr | None = None
    discord_webhook_url: SecretStr | None = None
    notion_token: SecretStr | None = None
    exchange_api_key: SecretStr | None = None
    exchange_api_secret: SecretStr | None = None

    @classmethod
    def from_env(cls, names: SecretsEnvConfig, environ: dict[str, str] | None = None) -> Secrets:
        env = os.environ if environ is None else environ
        return cls(**{field: env.get(var) or None for field, var in names.model_dump().items()})

    def values(self) -> list[str]:
        """The raw secret strings, for redaction."""
        return [
            v.get_secret_value() for v in self.__dict__.values() if v is not None and v.get_secret_value()
        ]


class AppConfig(_Model):
    data_sources: DataSourcesConfig = DataSourcesConfig()
    basket: BasketConfig
    aliases: dict[str, dict[str, AliasList]] = {}
    costs: CostsConfig = CostsConfig()
    apex: ApexConfig = ApexConfig()
    features: FeaturesConfig = FeaturesConfig()
    market_filters: MarketFiltersConfig = MarketFiltersConfig()
    td: TDConfig = TDConfig()
    risk: RiskConfig = RiskConfig()
    technicals: TechnicalsConfig = TechnicalsConfig()
    regime: RegimeConfig = RegimeConfig()
    score: ScoreConfig = ScoreConfig()
    alerts: AlertsConfig = AlertsConfig()
    sim: SimConfig = SimConfig()
    research: ResearchConfig = ResearchConfig()
    synthetic: SyntheticConfig = SyntheticConfig()
    audit: AuditConfig = AuditConfig()
    store: StoreConfig = StoreConfig()
    logging: LoggingConfig = LoggingConfig()
    secrets_env: SecretsEnvConfig = SecretsEnvConfig()

    def data_root(self) -> Path:
        """The store's root: $APEX_DATA_DIR, else `store.root` (relative paths from the project root)."""
        root = Path(os.environ.get(DATA_DIR_ENV) or self.store.root)
        return root if root.is_absolute() else PROJECT_ROOT / root

    def secrets(self) -> Secrets:
        return Secrets.from_env(self.secrets_env)

    def ticker_spans(self, venue: str, symbol: str) -> list[AliasSpan]:
        """The venue's tickers for a basket symbol, in time order (the symbol itself when not aliased)."""
        return list(self.aliases.get(venue, {}).get(symbol, [AliasSpan(ticker=symbol)]))


def _format_errors(path: Path | str, error: ValidationError) -> str:
    lines = [f"invalid configuration in {path}:"]
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "<root>"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: dict | None = None) -> AppConfig:
    """Read and validate a YAML config ($APEX_CONFIG or configs/default.yaml when no path is given)."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_PATH)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    for key, value in (overrides or {}).items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    try:
        return AppConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
