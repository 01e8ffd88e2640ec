"""The composer's stage: builds a `SignalContext` for every signal of one timeframe from the store, composes
them in time order with the cool-down, and writes the `scores` table (every scored signal, history included).

Signals of a timeframe:

* **rotation**: every confirmation watch that ENDED (`confirmations`, its last row `confirmed` or `expired`),
  scored on that last watched bar (`eval_time`): the bar on which the watch's verdict became known. A watch
  still running at the end of the data is not scored yet (it will be, on the bar it ends). Two watches of
  one alt ending on the same bar are one signal (the larger expected catch-up is kept).
* **td13_exhaustion**: every countdown 13 (`td_state`, `td_countdown == 13`) on `td.htf`, for every basket
  symbol; buy 13 → long, sell 13 → short. Only the `td.htf` partition has them.

No lookahead: a context reads the signal timeframe's rows up to the signal bar, the HTF and LTF rows of the
bars closed by the signal bar's close, and the earlier fired signals; so the scores of a history cut at any
bar equal the full run's up to that bar.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.features.loader import load
from apex_rotation.schemas import SchemaViolation, validate_frame
from apex_rotation.signals import regime as regimes
from apex_rotation.signals import technicals
from apex_rotation.signals.score import (
    BarValues,
    EntryPlan,
    PreviousFire,
    ScoredSignal,
    SignalContext,
    TDEvent,
    TDView,
    Watch,
    compose,
)
from apex_rotation.signals.watching import latest_status
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.tables import BASKET_KEY, CONFIRMATIONS, SCORES, TD_STATE
from apex_rotation.timeframes import delta

SCORE_COLUMNS = [
    *(f for f in ScoredSignal.model_fields if f not in ("reasons", "plan")),
    "reasons",
    *(f"plan_{f}" for f in EntryPlan.model_fields),
]
BAR_FIELDS = [
    f for f in BarValues.model_fields if f not in ("macd_hist_prev", "structure_low", "structure_high")
]
RETEST_LOOKBACK = 6  # bars before the signal searched for the latest breakout (technicals.retest's window)


# ---------------------------------------------------------------- TD views


@dataclass
class TDIndex:
    """One symbol × timeframe's TD state as arrays, with its 9/13 events, for reading views at any bar."""

    timeframe: str
    times: np.ndarray  # open times, int64 ns
    setup_type: np.ndarray
    setup_count: np.ndarray
    cd_type: np.ndarray
    countdown: np.ndarray
    tdst_buy: np.ndarray
    tdst_sell: np.ndarray
    risk: np.ndarray  # the last setup risk level, carried forward (the 13's countdown level on a 13 bar)
    risk_side: np.ndarray
    event_pos: np.ndarray  # bar positions of the 9s and 13s, increasing
    events: list[tuple[str, str, int]]  # (kind, side, bar its setup was perfected or -1) per event_pos

    @classmethod
    def build(cls, td: pd.DataFrame, timeframe: str, strict: bool, grace: int | None) -> TDIndex:
        n = len(td)
        stype = td["td_setup_type"].to_numpy(object)
        count = td["td_setup_count"].to_numpy(np.int64)
        ctype = td["td_countdown_type"].to_numpy(object)
        cd = td["td_countdown"].to_numpy(np.int64)
        perfected = td["td_perfected"].to_numpy(bool)
        setup_risk = td["td_setup_risk_level"].to_numpy(float)
        cd_risk = td["td_countdown_risk_level"].to_numpy(float)

        has = ~np.isnan(setup_risk)
        last = np.maximum.accumulate(np.where(has, np.arange(n), -1)) if n else np.zeros(0, int)
        risk = np.where(last >= 0, setup_risk[np.maximum(last, 0)], np.nan)
        risk_side = np.where(last >= 0, stype[np.maximum(last, 0)], None)
        on13 = (cd == 13) & ~np.isnan(cd_risk)
        risk = np.where(on13, cd_risk, risk)
        risk_side = np.where(on13, ctype, risk_side)

        completions = np.flatnonzero(count == 9)  # a new completion drops a pending perfection
        perf_at: dict[int, int] = {}  # setup 9 bar → the bar its perfection happened (-1: never)
        for b in np.flatnonzero(count == 9):
            if strict:
                stop = b + 1
            else:  # loose: a later bar within the grace window, before the next completion
                later = completions[completions > b]
                stop = int(later[0]) if len(later) else n
                stop = stop if grace is None else min(stop, b + 1 + grace)
            hit = np.flatnonzero(perfected[b:stop])
            perf_at[int(b)] = int(b + hit[0]) if len(hit) else -1
        events = [(int(b), "setup_9", stype[b], perf_at[int(b)]) for b in np.flatnonzero(count == 9)]
        for b in np.flatnonzero(cd == 13):  # perfected: the setup whose bar 9 (or 18) last started it
            side, start = ctype[b], int(b)
            while start > 0 and not _starts(start, count, stype, cd, side) and ctype[start - 1] == side:
                start -= 1
            bar9 = start - 9 if count[start] == 18 else start
            events.append((int(b), "countdown_13", side, perf_at.get(bar9, -1)))
        events.sort(key=lambda e: (e[0], e[1]))
        return cls(
            timeframe,
            td.index.asi8,
            stype,
            count,
            ctype,
            cd,
            td["td_tdst_buy"].to_numpy(float),
            td["td_tdst_sell"].to_numpy(float),
            risk,
            risk_side,
            np.array([e[0] for e in events], dtype=np.int64),
            [e[1:] for e in events],
        )

    def at_close(self, close_ns: int) -> int:
        """Position of the last bar closed by `close_ns` (-1 when none)."""
        return int(np.searchsorted(self.times, close_ns - delta(self.timeframe).value, side="right")) - 1

    def view(self, pos: int, lookback: int) -> TDView:
        """The state at bar `pos` and the 9s/13s of bars pos-lookback .. pos, newest first."""
        lo, hi = np.searchsorted(self.event_pos, [pos - lookback, pos + 1])
        events = [
            TDEvent(kind=k, side=s, bars_ago=int(pos - p), perfected=0 <= pf <= pos)
            for p, (k, s, pf) in zip(self.event_pos[lo:hi][::-1], self.events[lo:hi][::-1], strict=True)
        ]
        return TDView(
            timeframe=self.timeframe,
            bar_time=pd.Timestamp(int(self.times[pos]), tz="UTC").to_pydatetime(),
            setup_type=self.setup_type[pos],
            setup_count=int(self.setup_count[pos]),
            countdown_type=self.cd_type[pos],
            countdown=int(self.countdown[pos]),
            tdst_buy=_num(self.tdst_buy[pos]),
            tdst_sell=_num(self.tdst_sell[pos]),
            risk_level=_num(self.risk[pos]),
            risk_side=self.risk_side[pos] if _num(self.risk[pos]) is not None else None,
            events=events,
        )

    def empty_view(self) -> TDView:
        return TDView(timeframe=self.timeframe, bar_time=pd.Timestamp(0, tz="UTC").to_pydatetime())


def _starts(i: int, count: np.ndarray, stype: np.ndarray, cd: np.ndarray, side: str) -> bool:
    """Bar i (re)started a `side` countdown: a same-side setup 9 (or 18) with the countdown at 0 or 1."""
    return stype[i] == side and count[i] in (9, 18) and cd[i] <= 1


def _num(x: object) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


# ---------------------------------------------------------------- per-symbol inputs


@dataclass
class SymbolFrame:
    """One symbol's signal-timeframe frame (bars, features, TD) as arrays, and its regime per bar."""

    frame: pd.DataFrame
    times: np.ndarray
    cols: dict[str, np.ndarray]
    regime: np.ndarray
    td: TDIndex
    _retests: dict[int, tuple[str, str]] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, frame: pd.DataFrame, timeframe: str, cfg: AppConfig) -> SymbolFrame:
        cols = {c: frame[c].to_numpy() for c in (*BAR_FIELDS, "high", "low") if c in frame.columns}
        regime = regimes.classify(frame, cfg.regime).to_numpy(object)
        td = TDIndex.build(frame, timeframe, cfg.td.strict_perfection, cfg.td.perfection_grace_bars)
        return cls(frame, frame.index.asi8, cols, regime, td)

    def bar(self, pos: int, structure_bars: int) -> BarValues:
        values = {}
        for name in BAR_FIELDS:
            col = self.cols.get(name)
            v = None if col is None else col[pos]
            if name == "fib_zone":
                values[name] = v if isinstance(v, str) else None
            elif name == "fib_swing_up":
                values[name] = None if v is None or pd.isna(v) else bool(v)
            else:
                values[name] = _num(v)
        hist = self.cols.get("macd_hist")
        values["macd_hist_prev"] = _num(hist[pos - 1]) if hist is not None and pos > 0 else None
        lo = max(0, pos + 1 - structure_bars)
        low, high = self.cols["low"][lo : pos + 1], self.cols["high"][lo : pos + 1]
        values["structure_low"] = _num(np.nanmin(low)) if np.isfinite(low).any() else None
        values["structure_high"] = _num(np.nanmax(high)) if np.isfinite(high).any() else None
        return BarValues(**values)

    def retest(self, pos: int) -> tuple[str, str]:
        """technicals.retest of the latest breakout (close > hh_prev) in the last RETEST_LOOKBACK bars
        (a function of the frame alone: computed once per bar)."""
        if pos not in self._retests:
            self._retests[pos] = self._retest(pos)
        return self._retests[pos]

    def _retest(self, pos: int) -> tuple[str, str]:
        close, hh = self.cols["close"], self.cols.get("hh_prev")
        if hh is None:
            return "none", "no prior-high column"
        for b in range(pos, max(-1, pos - RETEST_LOOKBACK), -1):
            level = hh[b]
            if np.isfinite(level) and close[b] > level:
                window = self.frame.iloc[b : pos + 1]
                res = technicals.retest(window, window.index[0], float(level), asof=window.index[-1])
                return res.status, f"breakout of {level:.6g} on {window.index[0].isoformat()}: {res.reason}"
        return "none", f"no breakout in the last {RETEST_LOOKBACK} bars"


class Inputs:
    """Lazily loaded inputs of one timeframe's stage: signal-timeframe frames, HTF and LTF TD indexes.

    `frames` optionally hands in (symbol, timeframe) → loaded frame (`features.load`: bars, features, TD)
    so a caller holding them in memory (the research harness, a truncated-history check) reads no store;
    a pair it lacks is read from `store`. `with_config` gives the same inputs under another config, sharing
    the built arrays when the regime and TD settings they depend on are unchanged.
    """

    def __init__(
        self,
        cfg: AppConfig,
        store: ParquetStore | None,
        timeframe: str,
        frames: dict[tuple[str, str], pd.DataFrame] | None = None,
    ):
        self.cfg, self.store, self.timeframe = cfg, store, timeframe
        self.frames = frames or {}
        self._frames: dict[str, SymbolFrame] = {}
        self._td: dict[tuple[str, str], TDIndex] = {}
        self._parts: dict[tuple[str, int, int], tuple] = {}  # a context's config-free parts, per bar

    def with_config(self, cfg: AppConfig) -> Inputs:
        out = Inputs(cfg, self.store, self.timeframe, self.frames)
        if _built_alike(cfg, self.cfg):
            out._frames, out._td, out._parts = self._frames, self._td, self._parts
        return out

    def frame(self, symbol: str) -> SymbolFrame:
        if symbol not in self._frames:
            frame = self.frames.get((symbol, self.timeframe))
            if frame is None:
                frame = load(symbol, self.timeframe, root=self.store.root)
            self._frames[symbol] = SymbolFrame.build(frame, self.timeframe, self.cfg)
        return self._frames[symbol]

    def td(self, symbol: str, timeframe: str) -> TDIndex | None:
        if timeframe == self.timeframe:
            return self.frame(symbol).td
        key = (symbol, timeframe)
        if key not in self._td:
            td = self.frames.get((symbol, timeframe))
            if td is None and self.store is not None and self.store.exists(TD_STATE, timeframe, symbol):
                td = self.store.read(TD_STATE, timeframe, symbol)
            if td is None or "td_setup_type" not in td.columns:
                self._td[key] = None
            else:
                self._td[key] = TDIndex.build(
                    td, timeframe, self.cfg.td.strict_perfection, self.cfg.td.perfection_grace_bars
                )
        return self._td[key]


_REGIME_WEIGHTS = {"trend_fade_weight", "block_td_fades_in_trend"}  # read by compose, not by the arrays


def _built_alike(a: AppConfig, b: AppConfig) -> bool:
    """The per-symbol arrays (regime classes, TD indexes, structure window) are the same under both."""
    return (
        a.td == b.td
        and a.regime.model_dump(exclude=_REGIME_WEIGHTS) == b.regime.model_dump(exclude=_REGIME_WEIGHTS)
        and a.basket == b.basket
    )


# ---------------------------------------------------------------- contexts


def _view(inputs: Inputs, symbol: str, timeframe: str, close_ns: int, lookback: int) -> TDView:
    index = inputs.td(symbol, timeframe)
    if index is None:
        return TDView(timeframe=timeframe, bar_time=pd.Timestamp(close_ns, tz="UTC").to_pydatetime())
    pos = index.at_close(close_ns)
    return index.view(pos, lookback) if pos >= 0 else index.empty_view()


def _parts(inputs: Inputs, symbol: str, pos: int) -> tuple:
    """The bar time, bar values, TD views and regime of a signal at bar `pos`: what a context reads from the
    data. They depend on the TD, regime and structure settings only, so they are built once per bar and
    shared by the inputs of every config built alike (`Inputs.with_config`)."""
    cfg, tf = inputs.cfg, inputs.timeframe
    key = (symbol, pos, cfg.score.structure_bars)
    if key not in inputs._parts:
        sf = inputs.frame(symbol)
        close_ns = int(sf.times[pos] + delta(tf).value)
        inputs._parts[key] = (
            pd.Timestamp(int(sf.times[pos]), tz="UTC").to_pydatetime(),
            sf.bar(pos, cfg.score.structure_bars),
            sf.td.view(pos, cfg.td.fresh_bars),
            _view(inputs, symbol, cfg.td.htf, close_ns, cfg.td.fresh_bars),
            _view(inputs, symbol, cfg.td.ltf, close_ns, cfg.td.conflict_ltf_bars - 1),
            str(sf.regime[pos]),
        )
    return inputs._parts[key]


def _context(
    inputs: Inputs, symbol: str, pos: int, archetype: str, direction: str, **extra: object
) -> SignalContext:
    bar_time, bar, td, htf, ltf, regime = _parts(inputs, symbol, pos)
    return SignalContext(
        archetype=archetype,
        symbol=symbol,
        timeframe=inputs.timeframe,
        bar_time=bar_time,
        direction=direction,
        bar=bar,
        td=td,
        htf=htf,
        ltf=ltf,
        regime=regime,
        cfg=inputs.cfg,
        **extra,
    )


def rotation_contexts(inputs: Inputs, confirmations: pd.DataFrame) -> list[SignalContext]:
    """One context per ended watch (confirmed or expired), on its last watched bar."""
    if confirmations.empty:
        return []
    ended = latest_status(confirmations)
    ended = ended[ended["status"].isin(["confirmed", "expired"])]
    ended = ended.sort_values(["eval_time", "symbol", "expected_catchup_pct", "bar_time"], kind="stable")
    ended = ended.drop_duplicates(["eval_time", "symbol"], keep="last")
    out = []
    for row in ended.itertuples(index=False):
        sf = inputs.frame(row.symbol)
        pos = int(np.searchsorted(sf.times, pd.Timestamp(row.eval_time).value))
        watch = Watch(
            apex_asset=row.apex_asset,
            trigger_time=pd.Timestamp(row.bar_time).to_pydatetime(),
            signal_strength=row.signal_strength,
            expected_catchup_pct=float(row.expected_catchup_pct),
            move_since_trigger_pct=float(row.move_since_trigger_pct),
            status=row.status,
            bars_after=int(row.bars_after),
        )
        out.append(_context(inputs, row.symbol, pos, "rotation", "long", watch=watch, retest=sf.retest(pos)))
    return out


def td13_contexts(inputs: Inputs, symbols: list[str]) -> list[SignalContext]:
    """One context per countdown 13 of the HTF: buy 13 → long, sell 13 → short."""
    out = []
    for symbol in symbols:
        sf = inputs.frame(symbol)
        for pos in np.flatnonzero(sf.td.countdown == 13):
            direction = "long" if sf.td.cd_type[pos] == "buy" else "short"
            out.append(_context(inputs, symbol, int(pos), "td13_exhaustion", direction))
    return out


def compose_in_order(
    contexts: list[SignalContext], compose: Callable[[SignalContext], ScoredSignal] = compose
) -> list[ScoredSignal]:
    """Compose in time order; each context learns the last fired signal of its symbol × archetype ×
    direction (bars ago and score), which is what the cool-down needs. `compose` is `score.compose`, or a
    memo of it (the research harness composes a context seen under an equal config once)."""
    fired: dict[tuple[str, str, str], tuple[pd.Timestamp, float]] = {}
    out = []
    for ctx in sorted(contexts, key=lambda c: (c.bar_time, c.symbol, c.archetype, c.direction)):
        key = (ctx.symbol, ctx.archetype, ctx.direction)
        if key in fired:
            when, score = fired[key]
            bars = int((pd.Timestamp(ctx.bar_time) - when) // delta(ctx.timeframe))
            ctx = ctx.model_copy(update={"previous": PreviousFire(bars_ago=bars, score=score)})
        scored = compose(ctx)
        if scored.fired:
            fired[key] = (pd.Timestamp(scored.bar_time), scored.score)
        out.append(scored)
    return out


def build_contexts(cfg: AppConfig, store: ParquetStore, timeframe: str) -> list[SignalContext]:
    """Every signal context of one timeframe (rotation watches that ended; TD 13s on the HTF)."""
    inputs = Inputs(cfg, store, timeframe)
    confirmations = (
        store.read(CONFIRMATIONS, timeframe, BASKET_KEY)
        if store.exists(CONFIRMATIONS, timeframe, BASKET_KEY)
        else pd.DataFrame()
    )
    contexts = rotation_contexts(inputs, confirmations)
    if timeframe == cfg.td.htf:
        symbols = [s for s in cfg.basket.names if store.exists(TD_STATE, timeframe, s)]
        contexts += td13_contexts(inputs, symbols)
    return contexts


def scores_frame(signals: list[ScoredSignal]) -> pd.DataFrame:
    frame = pd.DataFrame([s.to_row() for s in signals], columns=SCORE_COLUMNS)
    frame.index.name = "row"
    return frame


def score_timeframe(cfg: AppConfig, store: ParquetStore, timeframe: str) -> pd.DataFrame:
    """Score every signal of one timeframe and write the `scores` table (validated first)."""
    signals = compose_in_order(build_contexts(cfg, store, timeframe))
    frame = validate_frame(SCORES.schema(timeframe, cfg), scores_frame(signals), f"scores {timeframe}")
    store.write(SCORES, timeframe, BASKET_KEY, frame)
    return frame


def score_problems(cfg: AppConfig, store: ParquetStore, timeframe: str) -> list[str]:
    """Re-read the stored scores: schema (every fired signal has a plan and a score ≥ the threshold,
    unsuppressed), and the cool-down held (no repeat fire within td.cooldown_bars without the margin)."""
    stored = store.read(SCORES, timeframe, BASKET_KEY)
    try:
        validate_frame(SCORES.schema(timeframe, cfg), stored, f"scores {timeframe}")
    except SchemaViolation as exc:
        return [str(exc)]
    problems = []
    fired = stored[stored["fired"]].sort_values("bar_time")
    step = delta(timeframe)
    for key, group in fired.groupby(["symbol", "archetype", "direction"]):
        times, scores = group["bar_time"].tolist(), group["score"].tolist()
        for i in range(1, len(times)):
            close = (times[i] - times[i - 1]) // step <= cfg.td.cooldown_bars
            if close and scores[i] < scores[i - 1] + cfg.score.rescore_margin - 1e-9:
                problems.append(f"{'/'.join(key)} re-fired at {times[i]} inside the cool-down")
    return problems[:50]
