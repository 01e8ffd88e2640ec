"""The dry-run simulator: `run(signals, templates, market)` trades every fired signal and reports the trades.

Templates (`TradeTemplate`, built from the `sim` config section by `templates_from_config`):

* rotation swing: a limit order at the plan's entry (`EntryPlan.entry`: the TDST that supports the trade or
  the retest of the broken level), the plan's stop beyond it, and the take-profit `sim.rotation_take_profit`
  says: "atr" is the plan's target (`risk.atr_mult_tp` in the units of `signals/risk.py`), "structure" the
  swing high (a short: low) of the `structure_lookback_bars` bars up to the signal bar, when it lies beyond
  the entry (else the plan's target).
* TD13 exhaustion: a market order at the next bar's open, or a limit at the plan's entry (`sim.td13_order`);
  invalidation at the plan's stop (the TD risk level / TDST); the plan's target.

Fills and exits are decided on the 1h bars after the signal bar (`exec/fills.py` has the rules: no fill on
the signal bar; stop before target when one 1h bar touches both; gaps fill at the open). Expiry and the
maximum holding period are counted in bars of the signal's timeframe.

Costs (`CostsConfig`), per symbol's instrument (`sim.instrument`; "auto": perps on a venue that serves funding
— hyperliquid, the synthetic market — spot on any other):
* spot: `spot_fee_pct` on entry and exit; perps: `perps_maker_fee_pct` for a limit fill (a limit entry, the
  take-profit), `perps_taker_fee_pct` for a market fill (a market entry, the stop, a max-hold or end-of-data
  close). A fee is a % of that fill's notional, so the exit fee is scaled by exit/entry.
* slippage, against us, on market fills only: `spot_slippage_pct` (perps: `sim.perps_slippage_pct`, by
  default the same). Limit fills get their price (or a better open). Fill prices include slippage.
* funding, perps only and when `include_funding`: the hourly rates stamped in (entry time, exit time],
  summed, on the entry notional; a long pays a positive rate, a short receives it.

PnL % = side × (exit − entry) / entry − fees + funding (entry notional). R = |entry fill − stop|, so a stop
filled at its level loses 1 R plus costs; a gap beyond the stop loses more. Size = `sim.equity` ×
`risk.risk_per_trade_pct` / R (money PnL is proportional to PnL in R).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig, CostsConfig, SimConfig, load_config
from apex_rotation.exec import fills
from apex_rotation.schemas import EXIT_REASONS, TradeRecord, trades_schema, validate_frame
from apex_rotation.signals.score import ScoredSignal
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.tables import AUDITED_BARS, BARS, BASKET_KEY, FUNDING, SCORES, SIM_TRADES
from apex_rotation.timeframes import BASE_TIMEFRAME, delta

log = logging.getLogger(__name__)

Instrument = Literal["spot", "perps"]
PERPS_VENUES = ("hyperliquid", "synthetic")  # venues whose instruments pay funding
TRADE_COLUMNS = list(TradeRecord.model_fields)
_TIME_COLUMNS = ("signal_time", "entry_time", "exit_time")
_FLOAT_COLUMNS = [
    c for c, f in TradeRecord.model_fields.items() if f.annotation in (float, float | None) and c != "size"
] + ["size"]
_NAT = np.iinfo(np.int64).min


@dataclass(frozen=True)
class TradeTemplate:
    """How one archetype is traded: order type, take-profit source, expiry and holding period (in bars of
    the signal's timeframe)."""

    order_type: Literal["market", "limit"]
    take_profit: Literal["atr", "structure"] = "atr"
    expiry_bars: int = 6
    max_hold_bars: int = 48
    structure_lookback_bars: int = 20


def templates_from_config(sim: SimConfig) -> dict[str, TradeTemplate]:
    common = {
        "expiry_bars": sim.entry_expiry_bars,
        "max_hold_bars": sim.max_hold_bars,
        "structure_lookback_bars": sim.structure_lookback_bars,
    }
    return {
        "rotation": TradeTemplate("limit", sim.rotation_take_profit, **common),
        "td13_exhaustion": TradeTemplate(sim.td13_order, "atr", **common),
    }


# ------------------------------------------------------------------------------------------- market data


class Market(Protocol):
    """What the simulator reads: bars per symbol and timeframe, hourly funding rates, the instrument."""

    def bars(self, symbol: str, timeframe: str) -> pd.DataFrame | None: ...

    def funding(self, symbol: str) -> pd.Series | None: ...

    def instrument(self, symbol: str) -> Instrument: ...


@dataclass
class FrameMarket:
    """Frames handed in by the caller: bars by (symbol, timeframe) (open-time index, open/high/low/close),
    funding rates by symbol (a Series, or a frame with `rate`, indexed by time), instruments by symbol."""

    bars_by_symbol_tf: Mapping[tuple[str, str], pd.DataFrame]
    funding_by_symbol: Mapping[str, pd.Series | pd.DataFrame] = field(default_factory=dict)
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    default_instrument: Instrument = "spot"

    def bars(self, symbol: str, timeframe: str) -> pd.DataFrame | None:
        return self.bars_by_symbol_tf.get((symbol, timeframe))

    def funding(self, symbol: str) -> pd.Series | None:
        rates = self.funding_by_symbol.get(symbol)
        return rates["rate"] if isinstance(rates, pd.DataFrame) else rates

    def instrument(self, symbol: str) -> Instrument:
        return self.instruments.get(symbol, self.default_instrument)


class StoreMarket:
    """The audited bars, funding and venue of the store, each read once per symbol (and timeframe): the
    research harness simulates many runs on one market, and a re-read costs more than a run's fills."""

    def __init__(self, store: ParquetStore, cfg: AppConfig):
        self.store, self.cfg = store, cfg
        self._bars: dict[tuple[str, str], pd.DataFrame | None] = {}
        self._funding: dict[str, pd.Series | None] = {}
        self._instruments: dict[str, Instrument] = {}

    def bars(self, symbol: str, timeframe: str) -> pd.DataFrame | None:
        key = (symbol, timeframe)
        if key not in self._bars:
            exists = self.store.exists(AUDITED_BARS, timeframe, symbol)
            cols = ["open", "high", "low", "close"]
            self._bars[key] = self.store.read(AUDITED_BARS, timeframe, symbol, cols) if exists else None
        return self._bars[key]

    def funding(self, symbol: str) -> pd.Series | None:
        if symbol not in self._funding:
            rates = None
            if self.store.exists(FUNDING, None, symbol):
                rates = self.store.read(FUNDING, None, symbol, ["rate"])["rate"]
            self._funding[symbol] = rates
        return self._funding[symbol]

    def instrument(self, symbol: str) -> Instrument:
        if symbol not in self._instruments:
            self._instruments[symbol] = self._instrument(symbol)
        return self._instruments[symbol]

    def _instrument(self, symbol: str) -> Instrument:
        if self.cfg.sim.instrument != "auto":
            return self.cfg.sim.instrument
        venue = self.cfg.basket.venue_of(symbol) if symbol in self.cfg.basket.names else None
        if self.store.exists(BARS, BASE_TIMEFRAME, symbol):
            venue = self.store.meta(BARS, BASE_TIMEFRAME, symbol).get("venue") or venue
        venue = venue or self.cfg.data_sources.default_source
        return "perps" if venue in PERPS_VENUES else "spot"


# ------------------------------------------------------------------------------------------- the report


def summarize(trades: pd.DataFrame) -> pd.DataFrame:
    """Per archetype and for "all": alerts, filled, wins, win rate, mean R, total PnL (% and R), profit
    factor. Statistics are over the filled trades (an open one marked at the last close); the profit factor
    is gross winning R over gross losing R (with risk-based sizing, the same as in money)."""

    def stats(group: pd.DataFrame) -> dict:
        done = group[group["entry_price"].notna()]
        r = done["pnl_r"].astype(float)
        gain, loss = r[r > 0].sum(), -r[r < 0].sum()
        return {
            "alerts": len(group),
            "filled": len(done),
            "wins": int((r > 0).sum()),
            "win_rate": (r > 0).mean() if len(done) else np.nan,
            "mean_r": r.mean() if len(done) else np.nan,
            "total_pnl_pct": done["pnl_pct"].astype(float).sum(),
            "total_r": r.sum(),
            "profit_factor": gain / loss if loss > 0 else (np.inf if gain > 0 else np.nan),
        }

    rows = {name: stats(group) for name, group in trades.groupby("archetype", sort=True)}
    rows["all"] = stats(trades)
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("archetype")


@dataclass(frozen=True)
class TradesReport:
    """The simulated trades (one row per fired signal, the `sim_trades` columns) and their summary."""

    trades: pd.DataFrame

    @property
    def summary(self) -> pd.DataFrame:
        return summarize(self.trades)

    def records(self) -> list[TradeRecord]:
        rows = self.trades.to_dict("records")
        return [TradeRecord(**{k: (None if _missing(v) else v) for k, v in row.items()}) for row in rows]

    def to_csv(self, path: str | Path) -> Path:
        return _export(path, lambda p: self.trades.to_csv(p, index=False))

    def to_parquet(self, path: str | Path) -> Path:
        return _export(path, lambda p: self.trades.to_parquet(p, index=False))


def _missing(value: object) -> bool:
    return value is None or (not isinstance(value, str | bool) and bool(pd.isna(value)))


def _export(path: str | Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    write(tmp)
    tmp.replace(path)
    return path


# ------------------------------------------------------------------------------------------- simulation


def fired_signals(signals: Iterable[ScoredSignal] | pd.DataFrame) -> list[ScoredSignal]:
    """The fired signals of a list or of a `scores` frame (rows of `ScoredSignal.to_row`)."""
    if isinstance(signals, pd.DataFrame):
        frame = signals.reset_index() if signals.index.name in ScoredSignal.model_fields else signals
        signals = [
            ScoredSignal.from_row(row) for row in frame[frame["fired"].astype(bool)].to_dict("records")
        ]
    fired = [s for s in signals if s.fired]
    ids = [s.signal_id for s in fired]
    if len(set(ids)) != len(ids):
        raise ValueError(f"fired signals repeat a signal_id: {sorted({i for i in ids if ids.count(i) > 1})}")
    return fired


def run(
    signals: Iterable[ScoredSignal] | pd.DataFrame,
    templates: Mapping[str, TradeTemplate] | None = None,
    market: Market | Mapping[tuple[str, str], pd.DataFrame] | None = None,
    *,
    costs: CostsConfig | None = None,
    cfg: AppConfig | None = None,
) -> TradesReport:
    """Simulate every fired signal with its archetype's template over the market's bars.

    `templates` default to the config's (`templates_from_config`); `market` is a `Market`, a mapping
    {(symbol, timeframe): bars} (spot, no funding), or None for the configured store; `costs` default to
    `cfg.costs`; `cfg` to the loaded config. One row per fired signal, in the order given (unfilled orders
    included, with their reason), the columns of `trades_schema` (validated by the writer,
    `simulate_timeframe`, before it stores them).
    """
    cfg = cfg or load_config()
    templates = templates_from_config(cfg.sim) if templates is None else templates
    costs = cfg.costs if costs is None else costs
    if market is None:
        market = StoreMarket(ParquetStore(cfg.data_root()), cfg)
    elif isinstance(market, Mapping):
        market = FrameMarket(market)
    fired = fired_signals(signals)
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for pos, signal in enumerate(fired):
        groups[(signal.symbol, signal.timeframe)].append(pos)
    ctx = _Context(templates, _Prepared(market), costs, cfg)
    parts = [_simulate_group([fired[p] for p in positions], ctx) for positions in groups.values()]
    if not parts:
        return TradesReport(_empty_trades())
    order = np.argsort(np.concatenate([positions for positions in groups.values()]), kind="stable")
    columns = {c: np.concatenate([part[c] for part in parts])[order] for c in TRADE_COLUMNS}
    return TradesReport(_frame(columns))


def _empty_trades() -> pd.DataFrame:
    return _frame({c: np.array([], dtype=object) for c in TRADE_COLUMNS})


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """The trade columns in TradeRecord order, times as UTC (ns; NaT where int64 min)."""
    out = pd.DataFrame({c: columns[c] for c in TRADE_COLUMNS}).rename_axis("trade")
    for c in _TIME_COLUMNS:
        out[c] = pd.to_datetime(np.asarray(out[c], dtype=np.int64).view("datetime64[ns]"), utc=True)
    for c in _FLOAT_COLUMNS:
        out[c] = out[c].astype("float64")
    out[["stop_hit", "target_hit"]] = out[["stop_hit", "target_hit"]].astype(bool)
    out["bars_held"] = out["bars_held"].astype("int64")
    return out


@dataclass(frozen=True)
class _Steps:
    """The finest bars that decide fills, as arrays: 1h when the market has them, else the signal's timeframe."""

    timeframe: str
    open_ns: np.ndarray
    o: np.ndarray
    h: np.ndarray
    lo: np.ndarray
    c: np.ndarray


class _Prepared:
    """The market's arrays, prepared once per symbol for all of a run's timeframes."""

    def __init__(self, market: Market):
        self.market = market
        self._steps: dict[tuple[str, str], _Steps] = {}
        self._funding: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}

    def steps(self, symbol: str, timeframe: str) -> _Steps:
        for tf in dict.fromkeys((BASE_TIMEFRAME, timeframe)):
            if (symbol, tf) in self._steps:
                return self._steps[(symbol, tf)]
            bars = self.market.bars(symbol, tf)
            if bars is None or not len(bars):
                continue
            open_ns = bars.index.as_unit("ns").asi8
            if not (np.diff(open_ns) == delta(tf).value).all():
                raise ValueError(
                    f"{symbol} {tf}: the bars have gaps or are unsorted; simulate on audited bars"
                )
            ohlc = (np.ascontiguousarray(bars[x], dtype=np.float64) for x in ("open", "high", "low", "close"))
            self._steps[(symbol, tf)] = _Steps(tf, open_ns, *ohlc)
            return self._steps[(symbol, tf)]
        raise StoreError(f"no bars for {symbol} at {BASE_TIMEFRAME} or {timeframe}: nothing to simulate on")

    def funding_sum(self, symbol: str, entry_ns: np.ndarray, exit_ns: np.ndarray) -> np.ndarray:
        """Σ hourly funding rates stamped in (entry, exit] per trade (0 when the symbol has no funding)."""
        if symbol not in self._funding:
            rates = self.market.funding(symbol)
            values = np.empty(0) if rates is None else rates.to_numpy(np.float64)
            known = ~np.isnan(values)
            if not known.any():
                log.warning("no funding rates for %s: funding taken as 0", symbol)
                self._funding[symbol] = None
            else:
                stamps = pd.DatetimeIndex(rates.index).as_unit("ns").asi8[known]
                order = np.argsort(stamps, kind="stable")
                cum = np.concatenate([[0.0], np.cumsum(values[known][order])])
                self._funding[symbol] = stamps[order], cum
        if self._funding[symbol] is None:
            return np.zeros(entry_ns.size)
        stamps, cum = self._funding[symbol]
        return (
            cum[np.searchsorted(stamps, exit_ns, "right")] - cum[np.searchsorted(stamps, entry_ns, "right")]
        )


@dataclass(frozen=True)
class _Context:
    """What every symbol × timeframe group of one run shares."""

    templates: Mapping[str, TradeTemplate]
    prepared: _Prepared
    costs: CostsConfig
    cfg: AppConfig


def _simulate_group(signals: list[ScoredSignal], ctx: _Context) -> dict[str, np.ndarray]:
    """The trade columns of one symbol × timeframe's signals, in their order."""
    symbol, timeframe = signals[0].symbol, signals[0].timeframe
    k = len(signals)
    col: dict[str, np.ndarray] = {
        "alert_id": np.array([s.signal_id for s in signals], dtype=object),
        "archetype": np.array([s.archetype for s in signals], dtype=object),
        "symbol": np.full(k, symbol, dtype=object),
        "timeframe": np.full(k, timeframe, dtype=object),
        "side": np.array([s.direction for s in signals], dtype=object),
        "signal_time": np.array([pd.Timestamp(s.bar_time).value for s in signals], dtype=np.int64),
    }
    planned = np.array([s.plan is not None for s in signals])
    rows = [s for s in signals if s.plan is not None]
    sim = _simulate_planned(rows, ctx) if rows else {}
    for name in TRADE_COLUMNS:
        if name in col:
            continue
        default = TradeRecord.model_fields[name].default
        full = np.full(k, _NAT if name in _TIME_COLUMNS else default, dtype=object)
        if name in sim:
            full[planned] = sim[name]
        col[name] = full
    col["exit_reason"] = np.where(planned, col["exit_reason"], "no_plan")
    return col


def _simulate_planned(signals: list[ScoredSignal], ctx: _Context) -> dict[str, np.ndarray]:
    templates, prepared, costs, cfg = ctx.templates, ctx.prepared, ctx.costs, ctx.cfg
    symbol, timeframe = signals[0].symbol, signals[0].timeframe
    steps = prepared.steps(symbol, timeframe)
    step_ns = delta(steps.timeframe).value
    per_bar = delta(timeframe).value // step_ns  # step bars per bar of the signal's timeframe
    open_ns, o, h, lo, c = steps.open_ns, steps.o, steps.h, steps.lo, steps.c

    missing = sorted({s.archetype for s in signals} - set(templates))
    if missing:
        raise ValueError(f"no trade template for archetype(s) {missing}; templates: {sorted(templates)}")
    tpl = [templates[s.archetype] for s in signals]
    plans = [s.plan for s in signals]
    sign = np.array([1.0 if s.direction == "long" else -1.0 for s in signals])
    entry = np.array([p.entry for p in plans])
    stop = np.array([p.stop for p in plans])
    target = np.array([p.target for p in plans])
    bad = (sign * (entry - stop) <= 0) | (sign * (target - entry) <= 0)
    if bad.any():
        ids = [s.signal_id for s, b in zip(signals, bad, strict=True) if b]
        raise ValueError(f"{symbol} {timeframe}: plans with the stop or target on the wrong side: {ids}")

    close_ns = np.array([pd.Timestamp(s.bar_time).value for s in signals]) + delta(timeframe).value
    start = np.searchsorted(open_ns, close_ns)
    off_grid = (start < open_ns.size) & (open_ns[np.minimum(start, open_ns.size - 1)] != close_ns)
    if off_grid.any():
        raise ValueError(
            f"{symbol} {steps.timeframe} bars do not cover the close of every {timeframe} signal bar"
        )

    structure = np.array([t.take_profit == "structure" for t in tpl])
    target_source = np.where(structure, "structure", "atr").astype(object)
    if structure.any():
        lookback = np.array([t.structure_lookback_bars for t in tpl], dtype=np.int64) * per_bar
        swing = fills.window_extremes(h, lo, start, lookback, sign)
        usable = structure & (sign * (swing - entry) > 0)
        target = np.where(usable, swing, target)
        target_source[structure & ~usable] = "atr"

    market_order = np.array([t.order_type == "market" for t in tpl])
    expiry = np.array([t.expiry_bars for t in tpl], dtype=np.int64) * per_bar
    hold = np.array([t.max_hold_bars for t in tpl], dtype=np.int64) * per_bar
    out_i = np.empty((len(signals), fills.N_INT), dtype=np.int64)
    out_f = np.empty((len(signals), fills.N_FLOAT))
    fills.simulate_orders(
        o, h, lo, c, start, sign, market_order, entry, stop, target, expiry, hold, out_i, out_f
    )

    code, fill_bar, exit_bar, _, at_close = out_i.T
    fill_raw, exit_raw, favourable, adverse = out_f.T
    filled = fill_bar >= 0
    reasons = np.array(EXIT_REASONS, dtype=object)[code]
    ended = np.where(exit_bar >= 0, open_ns[np.maximum(exit_bar, 0)], _NAT)
    exit_ns = np.where(at_close.astype(bool) | (code == fills.EXPIRED), ended + step_ns, ended)
    exit_ns[code == fills.PENDING_AT_END] = _NAT
    entry_ns = np.where(filled, open_ns[np.maximum(fill_bar, 0)], _NAT)

    instrument = prepared.market.instrument(symbol)
    trade = _costs(instrument, costs, cfg.sim, market_order, code, sign, fill_raw, exit_raw, stop)
    funding = np.zeros(len(signals))
    if instrument == "perps" and costs.include_funding:
        funding = -sign * prepared.funding_sum(symbol, entry_ns, exit_ns) * 100
    funding[~filled] = 0.0
    e, x, risk = trade["entry_price"], trade["exit_price"], trade["risk_pct"]
    pnl_pct = trade["price_pct"] - trade["fees_pct"] + funding
    mfe = np.maximum(sign * (favourable - e) / e * 100, 0.0)
    mae = np.maximum(sign * (e - adverse) / e * 100, 0.0)
    tf_ns = delta(timeframe).value
    first = np.where(filled, entry_ns, 0) // tf_ns
    bars_held = np.where(filled, open_ns[np.maximum(exit_bar, 0)] // tf_ns - first + 1, 0)
    size = cfg.sim.equity * cfg.risk.risk_per_trade_pct / 100 / (sign * (e - stop))
    return {
        "instrument": np.full(len(signals), instrument, dtype=object),
        "order_type": np.where(market_order, "market", "limit").astype(object),
        "order_price": np.where(market_order, np.nan, entry),
        "entry_time": entry_ns,
        "entry_price": e,
        "stop_price": stop,
        "take_profit": target,
        "target_source": target_source,
        "size": np.where(filled, size, 0.0),
        "exit_time": exit_ns,
        "exit_price": x,
        "exit_reason": reasons,
        "stop_hit": code == fills.STOP,
        "target_hit": code == fills.TARGET,
        "pnl_pct": pnl_pct,
        "pnl_r": pnl_pct / risk,
        "risk_pct": risk,
        "fees_pct": np.where(filled, trade["fees_pct"], 0.0),
        "slippage_pct": np.where(filled, trade["slippage_pct"], 0.0),
        "funding_pct": funding,
        "mfe_pct": mfe,
        "mae_pct": mae,
        "mfe_r": mfe / risk,
        "mae_r": mae / risk,
        "bars_held": bars_held,
    }


def _costs(
    instrument: Instrument,
    costs: CostsConfig,
    sim: SimConfig,
    market_order: np.ndarray,
    code: np.ndarray,
    sign: np.ndarray,
    fill_raw: np.ndarray,
    exit_raw: np.ndarray,
    stop: np.ndarray,
) -> dict[str, np.ndarray]:
    """Fill prices with slippage, fees and slippage in % of the entry notional, the price move and R (%).
    Unfilled orders come out NaN."""
    if instrument == "spot":
        maker = taker = costs.spot_fee_pct
        slip = costs.spot_slippage_pct
    else:
        maker, taker = costs.perps_maker_fee_pct, costs.perps_taker_fee_pct
        slip = costs.spot_slippage_pct if sim.perps_slippage_pct is None else sim.perps_slippage_pct
    market_exit = code != fills.TARGET  # a stop, max-hold or end-of-data close is a market fill
    slip_in = np.where(market_order, slip, 0.0)
    slip_out = np.where(market_exit, slip, 0.0)
    e = fill_raw * (1 + sign * slip_in / 100)
    x = exit_raw * (1 - sign * slip_out / 100)
    fee_in = np.where(market_order, taker, maker)
    fee_out = np.where(market_exit, taker, maker)
    return {
        "entry_price": e,
        "exit_price": x,
        "price_pct": sign * (x - e) / e * 100,
        "fees_pct": fee_in + fee_out * x / e,
        "slippage_pct": sign * ((e - fill_raw) + (exit_raw - x)) / e * 100,
        "risk_pct": sign * (e - stop) / e * 100,
    }


# ------------------------------------------------------------------------------------------- the stage


def exports_path(store: ParquetStore, timeframe: str) -> Path:
    return store.root / "exports" / f"sim_trades_{timeframe}.csv"


def read_scores(store: ParquetStore, timeframe: str) -> pd.DataFrame:
    if not store.exists(SCORES, timeframe, BASKET_KEY):
        raise StoreError(
            f"no {SCORES} table for {timeframe} at {store.path(SCORES, timeframe, BASKET_KEY)}: materialize "
            f"`scores` (and `alerts`) for {timeframe} before `{SIM_TRADES}`"
        )
    return store.read(SCORES, timeframe, BASKET_KEY)


def simulate_timeframe(cfg: AppConfig, store: ParquetStore, timeframe: str) -> TradesReport:
    """Trade every fired signal of the stored `scores` of a timeframe; write `sim_trades` and its CSV."""
    report = run(read_scores(store, timeframe), market=StoreMarket(store, cfg), cfg=cfg)
    validate_frame(trades_schema(), report.trades, f"sim_trades {timeframe}")
    store.write(SIM_TRADES, timeframe, BASKET_KEY, report.trades)
    report.to_csv(exports_path(store, timeframe))
    return report


def sim_problems(store: ParquetStore, timeframe: str) -> dict[str, list[str]]:
    """What the stored `sim_trades` of a timeframe gets wrong, by check: `every_alert` (one row per fired
    signal and no other), `exit_after_entry` (entry after the signal bar, exit not before entry),
    `stop_loss_side` (the stop on the loss side of the entry fill)."""
    fired = {s.signal_id for s in fired_signals(read_scores(store, timeframe))}
    trades = store.read(SIM_TRADES, timeframe, BASKET_KEY)
    ids = trades["alert_id"]
    problems: dict[str, list[str]] = {"every_alert": [], "exit_after_entry": [], "stop_loss_side": []}
    if missing := sorted(fired - set(ids)):
        problems["every_alert"].append(f"{len(missing)} fired signal(s) without a trade: {missing[:10]}")
    if orphans := sorted(set(ids) - fired):
        problems["every_alert"].append(f"{len(orphans)} trade(s) of no fired signal: {orphans[:10]}")
    if dupes := sorted(ids[ids.duplicated()]):
        problems["every_alert"].append(f"alert_ids with several trades: {dupes[:10]}")
    done = trades[trades["entry_price"].notna()]
    early = done["entry_time"] < done["signal_time"] + delta(timeframe)
    backwards = done["exit_time"] < done["entry_time"]
    for what, rows in (("entered on or before the signal bar", early), ("exits before entry", backwards)):
        if rows.any():
            problems["exit_after_entry"].append(f"{what}: {sorted(done.loc[rows, 'alert_id'])[:10]}")
    side = np.where(done["side"] == "long", 1.0, -1.0)
    wrong = side * (done["entry_price"] - done["stop_price"]) <= 0
    if wrong.any():
        problems["stop_loss_side"].append(
            f"stop not below a long / above a short: {sorted(done.loc[wrong, 'alert_id'])[:10]}"
        )
    return {name: found for name, found in problems.items() if found}
