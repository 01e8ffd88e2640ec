"""The research harness's engine: the live path's stages, run in memory under any config variant.

`Universe` loads one store's per-symbol work once (bars, features and TD state of the signal timeframe and
of `td.htf`/`td.ltf`, the 1h bars the fills are decided on, funding) — none of it depends on the gates —
and `Universe.run(cfg)` then replays, for that config:

    rotation.scan_history → watching.watch_candidates → scoring.rotation_contexts (+ td13_contexts)
    → scoring.compose_in_order → sim.run

the very functions the `rotation_candidates`, `confirmations`, `scores` and `sim_trades` assets call, so a
backtest trades what the live path would have alerted and dry-run. Runs are cached by config, and the TD 13
stream (which the scanner gates do not touch; the cool-down keeps one per symbol × archetype × direction, so
the two archetypes never interact) is composed once per scoring config. Each signal's `score.evidence` (its
filters' verdicts, technical, rotation and TD blocks, conflict and plan) is computed once for all the
configs that differ only in what it does not read (the points, rule, regime weights, threshold: most
ablations), and handed to `score.compose`.

Every signal's inputs are known at its bar's close (tests/test_no_lookahead.py, `apex lookahead`), so one run
over the whole history, cut by signal time, equals a run per fold on the data up to that fold.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from apex_rotation.config import AppConfig
from apex_rotation.exec import sim
from apex_rotation.features.compute import compute_features, compute_td_state
from apex_rotation.features.loader import load
from apex_rotation.research import metrics
from apex_rotation.signals import rotation, score, scoring, watching
from apex_rotation.signals.score import ScoredSignal, SignalContext
from apex_rotation.store.parquet import ParquetStore, StoreError
from apex_rotation.store.tables import AUDITED_BARS, FEATURES, TD_STATE
from apex_rotation.timeframes import BASE_TIMEFRAME, TIMEFRAMES

ALWAYS = "(breakout OR NOT breakout)"  # true wherever the prior high is known (all but the first bars)
ABLATIONS = ("use_td", "use_volume_x2", "apex_move_threshold", "corr_beta", "confirmation", "regime_gate")


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a block, then back as it was. The harness allocates hundreds of
    thousands of short-lived objects (contexts, reasons, signals), which reference counting frees; what they
    trigger are full collections, each traversing every object the loaded universe holds (~0.2 s apiece,
    0.5-0.9 s of a warm walk-forward), to find the ~1,500 objects a whole backtest leaves in cycles.

    On the way out, what the block left alive (the universe's caches and results, ~400,000 objects) moves to
    the oldest generation (`freeze` + `unfreeze`, no traversal): else the first young collection after it
    would traverse them all (~0.1 s). Cycles among them are still found by the next full collection."""
    enabled, frozen = gc.isenabled(), gc.get_freeze_count()
    gc.disable()
    try:
        yield
    finally:
        if not frozen:  # `unfreeze` would also thaw what a caller froze
            gc.freeze()
            gc.unfreeze()
        if enabled:
            gc.enable()


# ---------------------------------------------------------------- config variants


def with_values(cfg: AppConfig, values: Mapping[str, object]) -> AppConfig:
    """`cfg` with dotted paths set ({"apex.move_threshold_pct": 3.0}), validated like a loaded config."""
    data = cfg.model_dump()
    for path, value in values.items():
        section, name = path.split(".", 1)
        data[section][name] = value
    return AppConfig.model_validate(data)


def _drop_filter(rule: str, name: str) -> str:
    return re.sub(rf"\b{name}\b", ALWAYS, rule)


def ablate(cfg: AppConfig, off: str | None) -> tuple[AppConfig, bool]:
    """The config with one filter switched off, and whether TD 13 signals are traded.

    * `use_td`: every TD point of the composer 0 and no TD 13 exhaustion trades (rotation only, no TD stop);
    * `use_volume_x2`: the volume spike leaves the confirmation rule (always true there), its points go to 0
      and the alert threshold drops by them, so it neither gates nor scores;
    * `apex_move_threshold`, `corr_beta`: opened to `research.ablation_off` (the lowest usable values);
    * `confirmation`: the rule always passes (a candidate is scored on its trigger bar) and the points of the
      rule's filters leave the score and the threshold alike;
    * `regime_gate`: TD fades against the trend at full weight (weight 1, never blocked).
    """
    if off is None:
        return cfg, True
    if off not in ABLATIONS:
        raise ValueError(f"unknown ablation {off!r}; expected one of {ABLATIONS}")
    mf, points, a = cfg.market_filters, cfg.score.market, cfg.research.ablation_off
    update: dict[str, object] = {}
    if off == "use_td":
        update = {"score.td": dict.fromkeys(type(cfg.score.td).model_fields, 0.0)}
    elif off == "use_volume_x2":
        update = {
            "market_filters.rule": _drop_filter(mf.rule, "volume_spike"),
            "score.market": points.model_copy(update={"volume_spike": 0.0}).model_dump(),
            "score.alert_threshold": cfg.score.alert_threshold - max(points.volume_spike, 0.0),
        }
    elif off == "apex_move_threshold":
        update = {"apex.move_threshold_pct": min(a.apex_move_threshold_pct, cfg.apex.move_threshold_pct)}
    elif off == "corr_beta":
        update = {
            "apex.corr_min": min(a.corr_min, cfg.apex.corr_min),
            "apex.beta_min": min(a.beta_min, cfg.apex.beta_min),
        }
    elif off == "confirmation":
        names = [n for n in type(points).model_fields if re.search(rf"\b{n}\b", mf.rule)]
        dropped = sum(max(getattr(points, n), 0.0) for n in names)
        update = {
            "market_filters.rule": ALWAYS,
            "score.market": points.model_copy(update=dict.fromkeys(names, 0.0)).model_dump(),
            "score.alert_threshold": cfg.score.alert_threshold - dropped,
        }
    elif off == "regime_gate":
        update = {"regime.trend_fade_weight": 1.0, "regime.block_td_fades_in_trend": False}
    return with_values(cfg, update), off != "use_td"


# ---------------------------------------------------------------- the universe


def ensure_features(cfg: AppConfig, store: ParquetStore, timeframes: Iterable[str]) -> list[str]:
    """Compute `features` and `td_state` (the live path's functions) where the store has audited bars but
    not them yet; returns the symbols with audited bars at every asked timeframe."""
    symbols = []
    for symbol in cfg.basket.names:
        if all(store.exists(AUDITED_BARS, tf, symbol) for tf in timeframes):
            symbols.append(symbol)
    if not symbols:
        raise StoreError(f"no audited bars under {store.root}: run `apex refresh` first")
    for tf in timeframes:
        todo = [s for s in symbols if not store.exists(FEATURES, tf, s)]
        if todo:
            problems = compute_features(cfg, store, tf, todo)
            if problems:
                raise StoreError(f"features {tf} could not be computed: {problems}")
        for s in symbols:
            if not store.exists(TD_STATE, tf, s):
                compute_td_state(cfg, store, tf, s)
    return symbols


@dataclass
class Run:
    """One config's signals and trades over the whole history of one timeframe."""

    signals: list[ScoredSignal]
    trades: pd.DataFrame  # sim.run's rows (every fired signal), plus `regime`
    book: metrics.Book | None = None  # the trades as arrays (Universe.book)
    fired: tuple[list[ScoredSignal], np.ndarray] | None = None  # fired signals, bar times in ns


@dataclass
class Universe:
    """One store's gate-independent work for one signal timeframe, loaded once."""

    cfg: AppConfig
    store: ParquetStore
    timeframe: str
    symbols: list[str]
    frames: dict[tuple[str, str], pd.DataFrame]
    market: sim.Market
    inputs: scoring.Inputs = field(init=False)
    _runs: dict[str, Run] = field(default_factory=dict, init=False)
    _td13: dict[str, list[ScoredSignal]] = field(default_factory=dict, init=False)
    _scans: dict[str, list[rotation.RotationCandidate]] = field(default_factory=dict, init=False)
    _gates: dict = field(default_factory=dict, init=False)  # scan_history's threshold-free arrays
    _watched: dict[str, pd.DataFrame] = field(default_factory=dict, init=False)  # watch rows per settings
    _watches: dict[tuple, tuple[int, int]] = field(default_factory=dict, init=False)  # a watch's rows there
    _composed: dict[str, dict[tuple, ScoredSignal]] = field(default_factory=dict, init=False)
    _evidence: dict[str, dict[tuple, score.Evidence]] = field(default_factory=dict, init=False)
    _trades: pd.DataFrame | None = field(default=None, init=False)  # every trade simulated so far
    _traded: dict[tuple, int] = field(default_factory=dict, init=False)  # a signal's row in _trades
    _grid: pd.DatetimeIndex | None = field(default=None, init=False)
    _closes: dict[str, pd.Series] | None = field(default=None, init=False)
    candidates: int = field(default=0, init=False)  # the base config's scanner candidates (last rotation run)

    def __post_init__(self) -> None:
        self.inputs = scoring.Inputs(self.cfg, self.store, self.timeframe, self.frames)

    @classmethod
    def load(cls, cfg: AppConfig, store: ParquetStore, timeframe: str) -> Universe:
        with gc_paused():
            return cls._load(cfg, store, timeframe)

    @classmethod
    def _load(cls, cfg: AppConfig, store: ParquetStore, timeframe: str) -> Universe:
        tfs = [t for t in TIMEFRAMES if t in {timeframe, cfg.td.htf, cfg.td.ltf, BASE_TIMEFRAME}]
        symbols = ensure_features(cfg, store, tfs)
        missing = [a for a in cfg.basket.apex_assets if a not in symbols]
        if missing:
            raise StoreError(f"the store has no bars for the apex assets {missing}")
        frames = {(s, tf): load(s, tf, root=store.root) for s in symbols for tf in tfs}
        kept = [s for s in cfg.basket.symbols if s.symbol in symbols]
        cfg = cfg.model_copy(update={"basket": cfg.basket.model_copy(update={"symbols": kept})})
        return cls(cfg, store, timeframe, symbols, frames, sim.StoreMarket(store, cfg))

    def signal_frames(self) -> dict[str, pd.DataFrame]:
        return {s: self.frames[(s, self.timeframe)] for s in self.symbols}

    def grid_index(self) -> pd.DatetimeIndex:
        """The signal timeframe's bar grid (open times), the union over symbols."""
        if self._grid is None:
            index = pd.DatetimeIndex([], tz="UTC")
            for s in self.symbols:
                index = index.union(self.frames[(s, self.timeframe)].index)
            self._grid = index
        return self._grid

    def closes(self) -> dict[str, pd.Series]:
        """Each symbol's signal-timeframe closes on `grid_index()` (NaN where it has no bar)."""
        if self._closes is None:
            grid = self.grid_index()
            self._closes = {s: self.frames[(s, self.timeframe)]["close"].reindex(grid) for s in self.symbols}
        return self._closes

    def book(self, run: Run) -> metrics.Book:
        """The run's trades as arrays on the grid (built once per run)."""
        if run.book is None:
            run.book = metrics.Book.of(run.trades, self.grid_index(), self.closes())
        return run.book

    def fired(self, run: Run) -> tuple[list[ScoredSignal], np.ndarray]:
        """The run's fired signals and their bar times (int64 ns)."""
        if run.fired is None:
            fired = [s for s in run.signals if s.fired]
            run.fired = fired, np.array([pd.Timestamp(s.bar_time).value for s in fired], dtype=np.int64)
        return run.fired

    def clear(self) -> None:
        """Forget every config's work (runs, scans, watches, compositions, context parts), keeping the
        loaded frames and per-symbol arrays: the next walk-forward recomputes every config."""
        caches = (
            self._runs,
            self._td13,
            self._scans,
            self._gates,
            self._watched,
            self._watches,
            self._composed,
            self._evidence,
            self._traded,
            self.inputs._parts,
        )
        for cache in caches:
            cache.clear()
        self._trades = None
        for sf in self.inputs._frames.values():
            sf._retests.clear()

    # ------------------------------------------------------------ one config

    def run(self, cfg: AppConfig, trade_td13: bool = True) -> Run:
        """Signals and trades of `cfg` over the whole history (cached by config)."""
        key = _key(cfg, trade_td13)
        if key not in self._runs:
            inputs = self.inputs.with_config(cfg)
            signals = self._rotation(cfg, inputs)
            if trade_td13 and self.timeframe == cfg.td.htf:
                signals = signals + self._td13_signals(cfg, inputs)
            signals.sort(key=lambda s: (s.bar_time, s.symbol, s.archetype, s.direction))
            self._runs[key] = Run(signals, self.simulate(signals, cfg))
        return self._runs[key]

    def _rotation(self, cfg: AppConfig, inputs: scoring.Inputs) -> list[ScoredSignal]:
        if self.timeframe not in cfg.apex.trigger_timeframes:
            return []
        candidates = self._scan(cfg)
        if cfg.apex == self.cfg.apex:
            self.candidates = len(candidates)
        watches = self._watch(candidates, cfg)
        contexts = scoring.rotation_contexts(inputs, watches)
        return scoring.compose_in_order(contexts, self._composer(cfg))

    def _scan(self, cfg: AppConfig) -> list[rotation.RotationCandidate]:
        """rotation.scan_history's candidates under `cfg.apex` (the only section the scanner reads)."""
        key = cfg.apex.model_dump_json()
        if key not in self._scans:
            frames = self.signal_frames()
            apex = {a: frames[a] for a in cfg.basket.apex_assets}
            history = rotation.scan_history(apex, frames, cfg, timeframe=self.timeframe, cache=self._gates)
            self._scans[key] = rotation.candidates_from_history(history)
        return self._scans[key]

    def _watch(self, candidates: list[rotation.RotationCandidate], cfg: AppConfig) -> pd.DataFrame:
        """watching.watch_candidates on `candidates`, each candidate's watch run once per `market_filters`
        (a watch reads the candidate's own fields, the alt's bars and the filter settings only). The rows
        are kept in one frame per settings, and a run's are taken from it by position (one `take`, not a
        concat of a slice per candidate)."""
        settings, window = cfg.market_filters, cfg.market_filters.confirm_window_bars
        base = settings.model_dump_json()

        def key(c: rotation.RotationCandidate) -> tuple:
            return (
                base,
                c.symbol,
                c.bar_time,
                c.apex_asset,
                c.timeframe,
                c.signal_strength,
                c.expected_catchup_pct,
            )

        todo = [c for c in candidates if key(c) not in self._watches]
        frames = self.signal_frames()
        if todo:
            rows = watching.watch_candidates(todo, frames, settings, window)
            kept = self._watched.get(base)
            offset = 0 if kept is None else len(kept)
            starts = offset + np.flatnonzero(rows["bars_after"].to_numpy() == 0)  # each starts at its trigger
            for c, a, b in zip(todo, starts, [*starts[1:], offset + len(rows)], strict=True):
                self._watches[key(c)] = (a, b)
            self._watched[base] = rows if kept is None else pd.concat([kept, rows], ignore_index=True)
        if not candidates:
            return watching.watch_candidates([], frames, settings, window)
        spans = [self._watches[key(c)] for c in candidates]
        out = self._watched[base].take(np.concatenate([np.arange(a, b) for a, b in spans]))
        return out.reset_index(drop=True).rename_axis("row")

    def _composer(self, cfg: AppConfig):
        """score.compose, memoized per composing config (all but `apex` and `research`, which it does not
        read): a context equal in everything else (signal, watch, retest, previous fire) is composed once.
        Its `score.evidence` is memoized per evidence config (all but `score.EVIDENCE_FREE`), so configs
        that differ in the points, rule, regime weights or threshold only (most ablations) share it."""
        memo = self._composed.setdefault(_key(cfg, True, exclude={"apex", "research"}), {})
        known = self._evidence.setdefault(_key(cfg, True, exclude=score.EVIDENCE_FREE), {})

        def compose(ctx: SignalContext) -> ScoredSignal:
            signal = (ctx.symbol, ctx.bar_time, ctx.archetype, ctx.direction, ctx.watch, ctx.retest)
            key = (*signal, ctx.previous)
            if key not in memo:
                if signal not in known:
                    known[signal] = score.evidence(ctx)
                memo[key] = score.compose(ctx, known[signal])
            return memo[key]

        return compose

    def _td13_signals(self, cfg: AppConfig, inputs: scoring.Inputs) -> list[ScoredSignal]:
        key = _key(cfg, True, exclude={"apex", "research"})
        if key not in self._td13:
            contexts = scoring.td13_contexts(inputs, self.symbols)
            self._td13[key] = scoring.compose_in_order(contexts, self._composer(cfg))
        return list(self._td13[key])

    def simulate(self, signals: list[ScoredSignal], cfg: AppConfig) -> pd.DataFrame:
        """sim.run on the fired signals (the live dry-run), with each trade's regime added.

        A trade depends on its own signal (id, symbol, time, archetype, direction, plan), the templates,
        costs and sizing, and the market only (sim.run's rows are computed order by order), so each is
        simulated once: sim.run runs on the signals not seen yet, and the rows are taken from its results."""
        fired = [s for s in signals if s.fired]
        settings = cfg.model_dump_json(include={"sim", "costs", "risk"})
        keys = [
            (settings, s.signal_id, s.symbol, s.timeframe, s.bar_time, s.archetype, s.direction, s.plan)
            for s in fired
        ]
        todo = [i for i, k in enumerate(keys) if k not in self._traded]
        if not fired:
            trades = sim.run(fired, market=self.market, cfg=cfg).trades
        else:
            if todo:
                new = sim.run([fired[i] for i in todo], market=self.market, cfg=cfg).trades
                start = 0 if self._trades is None else len(self._trades)
                self._trades = new if not start else pd.concat([self._trades, new], ignore_index=True)
                self._traded.update((keys[i], start + n) for n, i in enumerate(todo))
            rows = np.array([self._traded[k] for k in keys], dtype=np.int64)
            trades = self._trades.take(rows).reset_index(drop=True).rename_axis("trade")
        trades["regime"] = np.array([s.regime for s in fired], dtype=object)
        return trades


def _key(cfg: AppConfig, trade_td13: bool, exclude: set[str] | dict | None = None) -> str:
    text = cfg.model_dump_json(exclude=exclude or {"research"}) + str(trade_td13)
    return hashlib.sha256(text.encode()).hexdigest()
