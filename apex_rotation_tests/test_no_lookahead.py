"""No lookahead, end to end: the issue's acceptance test.

"Every value an asset emits for bar t must equal the value computed on the data truncated after bar t
(bars 0..t)." The whole chain runs on real Binance 2024 candles (genetrader_2024, 1h: BTC, ETH and the alts
SOL, APT, OP, ARB, DOGE) once on all the data and once per cut point t on the raw inputs truncated at t's
close (every symbol's 1h bars, funding and open interest stamped up to that instant):

    clean_ohlcv → resample → audit_bars → build_features (with funding and OI) → td.compute
    → scan_history (and the live `scan` at t) → watch_candidates

Every row the truncated run emits for a bar ≤ t must equal the full run's row bit for bit (NaN where NaN):
the audited bars, every features column, every TD column, the scanner's rows with bar_time ≤ t and the
confirmation rows with eval_time ≤ t, status included. A watch still running at t reads "watching" on its
rows up to t in both runs (the full run's verdict comes on a later row); "expired" is decided on the
window's last bar from that bar alone, so a cut at that bar must agree too (the role cut points below put
t exactly there, and inside running watches).

The raw data is altered on purpose so that the gap paths run too:

* SOL loses the four 1h bars of 4h bucket 751 (1h rows 3004-3007): the audits fill them;
* DOGE gets a bad wick (the high of 1h row 4001, in 4h bar 1000, × 50; open and close sound): the audits
  clip it (fill_reason "wick", not filled);
* APT gets a bad close (high and close of 1h row 4007, the last hour of 4h bar 1001 and of day 166, × 50):
  the audits replace it as a spike;
* ARB is listed 300 hours late (its first 4h bar is bar 75).

What a truncated run may lack: a bar missing at the very end of the data cannot be told from a late one,
so the audit fills a gap only once a later bar arrives. Rows the truncated run has not emitted yet must be
such trailing filled bars (asserted); every row it did emit is compared.

Lowered gates: with the default scanner gates (move ≥ 4 %, alt ≤ 1.5 %, corr ≥ 0.7, beta ≥ 1.5) the 2024
4h data has a single candidate, so this test uses move ≥ 2 %, alt ≤ 1 %, corr ≥ 0.5, beta ≥ 1.0 (~40
candidates on five alts), volume_x 1.5 and a rule over every filter, so that watches confirm, expire and
are still running at the cut points. Funding and open interest are deterministic hourly series (stamped off
the hour too, and exactly on bar closes) with sign flips, hot funding and > 5 % OI moves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from apex_rotation.config import load_config
from apex_rotation.features import td
from apex_rotation.features.build import build_features, model_returns
from apex_rotation.ingest.clean import clean_ohlcv
from apex_rotation.signals.rotation import RotationCandidate, candidates_from_history, scan, scan_history
from apex_rotation.signals.watching import CONFIRMED, EXPIRED, WATCHING, watch_candidates
from apex_rotation.store.audit import audit_bars
from apex_rotation.store.resample import resample
from apex_rotation.timeframes import delta
from apex_rotation_tests.shared import real_feather, requires_shared

pytestmark = requires_shared

SYMBOLS = ("BTC", "ETH", "SOL", "APT", "OP", "ARB", "DOGE")
APEX = ("BTC", "ETH")
FAR = pd.Timestamp("2025-01-01", tz="UTC")  # `now` of the full run: after every fixture bar
HOUR = pd.Timedelta(hours=1)
SOL_HOLE = list(range(3004, 3008))  # 1h rows of exactly one 4h bucket (751)
DOGE_WICK = 4001  # 1h row; 4h bar 1000, 1d bar 166
APT_SPIKE = 4007  # 1h row; 4h bar 1001, 1d bar 166 (its last hour: the close of both)
ARB_LISTING = 300  # 1h rows cut from ARB's start: its first 4h bar is 75
RULE = "(volume_spike AND breakout) OR (oi_shift AND NOT funding_hot) OR funding_flip"
CFG = load_config(
    overrides={
        "apex": {"move_threshold_pct": 2.0, "alt_lag_threshold_pct": 1.0, "corr_min": 0.5, "beta_min": 1.0},
        "market_filters": {"volume_x": 1.5, "rule": RULE},
    }
)
WATCH_KEY = ["bar_time", "symbol", "apex_asset"]
ROW_KEY = [*WATCH_KEY, "eval_time"]


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Inputs:
    """Everything the pipeline reads: raw 1h rows per symbol (open_time column), funding, open interest."""

    bars: dict[str, pd.DataFrame]
    funding: dict[str, pd.DataFrame]
    open_interest: dict[str, pd.DataFrame]

    def until(self, now: pd.Timestamp) -> Inputs:
        """What was known at `now`: the 1h bars closed by then, funding and OI stamped at or before it."""
        return Inputs(
            bars={s: b[b["open_time"] + HOUR <= now] for s, b in self.bars.items()},
            funding={s: f[f.index <= now] for s, f in self.funding.items()},
            open_interest={s: o[o.index <= now] for s, o in self.open_interest.items()},
        )


def perps(number: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hourly funding (stamped at :00, :20, :40 in turn) and OI (:00, :30), different per symbol."""
    hours = pd.date_range("2023-12-31 20:00", "2024-09-08 00:00", freq="1h", tz="UTC")
    k = np.arange(len(hours), dtype=float)
    phase = 1.3 * number
    funding = pd.DataFrame(
        {"rate": 8e-4 * np.sin(2 * np.pi * k / 53 + phase) - 1e-4},
        index=(hours + pd.to_timedelta(20 * (k % 3), unit="min")).rename("time"),
    )
    oi = pd.DataFrame(
        {"open_interest": 1e7 * np.exp(0.3 * np.sin(k / 13 + phase))},
        index=(hours + pd.to_timedelta(30 * (k % 2), unit="min")).rename("time"),
    )
    return funding, oi


@functools.cache
def inputs() -> Inputs:
    bars = {}
    for symbol in SYMBOLS:
        raw = pd.read_feather(real_feather(symbol, "1h")).rename(columns={"date": "open_time"})
        if symbol == "SOL":
            raw = raw.drop(index=SOL_HOLE)
        elif symbol == "DOGE":
            raw.loc[DOGE_WICK, "high"] *= 50
        elif symbol == "APT":
            raw.loc[APT_SPIKE, ["high", "close"]] *= 50
        elif symbol == "ARB":
            raw = raw.iloc[ARB_LISTING:]
        bars[symbol] = raw.reset_index(drop=True)
    series = {s: perps(i) for i, s in enumerate(SYMBOLS)}
    return Inputs(
        bars=bars,
        funding={s: f for s, (f, _) in series.items()},
        open_interest={s: o for s, (_, o) in series.items()},
    )


# ---------------------------------------------------------------- the pipeline


@dataclass
class Run:
    audited: dict[str, pd.DataFrame]
    features: dict[str, pd.DataFrame]
    td: dict[str, pd.DataFrame]
    candidates: pd.DataFrame | None = None
    live: list[RotationCandidate] = field(default_factory=list)
    confirmations: pd.DataFrame | None = None


def run_pipeline(data: Inputs, timeframe: str, now: pd.Timestamp, *, signals: bool) -> Run:
    audited = {}
    for symbol, raw in data.bars.items():
        if raw.empty:
            continue  # not listed yet
        bars = clean_ohlcv(raw, symbol=symbol, timeframe="1h", source="files", now=now).bars
        bars = resample(bars, timeframe, symbol=symbol)
        if bars.empty:
            continue  # no closed bucket yet
        audited[symbol], _ = audit_bars(bars, symbol=symbol, timeframe=timeframe, cfg=CFG.audit, now=now)
    bench = {a: model_returns(audited[a], CFG) for a in APEX}
    features = {
        s: build_features(
            bars,
            bench_returns=bench,
            timeframe=timeframe,
            cfg=CFG,
            funding=data.funding[s],
            open_interest=data.open_interest[s],
        )
        for s, bars in audited.items()
    }
    td_state = {s: td.compute(bars, CFG.td) for s, bars in audited.items()}
    run = Run(audited, features, td_state)
    if signals:
        frames = {s: audited[s].join(features[s]).join(td_state[s]) for s in audited}
        apex = {a: frames[a] for a in APEX}
        window = CFG.apex.corr_window_days
        run.candidates = scan_history(apex, frames, CFG.apex, timeframe=timeframe, corr_window_days=window)
        run.live = scan(apex, frames, CFG.apex, timeframe=timeframe, corr_window_days=window)
        run.confirmations = watch_candidates(
            candidates_from_history(run.candidates),
            frames,
            CFG.market_filters,
            CFG.market_filters.confirm_window_bars,
        )
    return run


@functools.cache
def full_run(timeframe: str) -> Run:
    return run_pipeline(inputs(), timeframe, FAR, signals=timeframe == "4h")


def cut_time(timeframe: str, position: int) -> pd.Timestamp:
    """Bar `position` of BTC's full `timeframe` series (the apex assets end first)."""
    return full_run(timeframe).audited["BTC"].index[position]


# ---------------------------------------------------------------- the comparison


def assert_no_lookahead(timeframe: str, t: pd.Timestamp) -> Run:
    """Run on the inputs known at t's close; every row it emits equals the full run's. Returns the run."""
    full = full_run(timeframe)
    close = t + delta(timeframe)
    trunc = run_pipeline(inputs().until(close), timeframe, close, signals=full.candidates is not None)
    assert set(trunc.audited) <= set(full.audited)
    for symbol, full_bars in full.audited.items():
        upto = full_bars.index[full_bars.index <= t]
        got = trunc.audited.get(symbol)
        n = 0 if got is None else len(got)
        assert got is None or got.index.equals(upto[:n]), f"{timeframe} {symbol}: index is not a prefix"
        not_yet = upto[n:]  # a gap at the end of the data: filled only once a later bar arrives
        assert full_bars.loc[not_yet, "filled"].all(), f"{timeframe} {symbol}: rows {list(not_yet)} missing"
        if got is None:
            continue
        for part in ("audited", "features", "td"):
            pd.testing.assert_frame_equal(
                getattr(trunc, part)[symbol],
                getattr(full, part)[symbol].loc[upto[:n]],
                check_exact=True,
                obj=f"{timeframe} {symbol} {part} cut at {t}",
            )
    if full.candidates is not None:
        assert_same_signals(full, trunc, t)
    return trunc


def assert_same_signals(full: Run, trunc: Run, t: pd.Timestamp) -> None:
    assert full.candidates is not None and trunc.candidates is not None
    want = full.candidates[full.candidates["bar_time"] <= t].reset_index(drop=True)
    got = trunc.candidates.reset_index(drop=True)
    assert len(got) == len(want), f"scanner rows up to {t}: {len(got)} truncated vs {len(want)} full"
    if len(want):
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=f"scanner rows cut at {t}")
    # the live path: `scan` on the data known at t's close is the history's rows for bar t
    assert trunc.live == candidates_from_history(want[want["bar_time"] == t])

    assert full.confirmations is not None and trunc.confirmations is not None
    rows = full.confirmations[full.confirmations["eval_time"] <= t]
    emitted = np.array(
        [
            s in trunc.audited and e in trunc.audited[s].index
            for s, e in zip(rows["symbol"], rows["eval_time"], strict=True)
        ],
        dtype=bool,
    )
    for s, e in zip(rows["symbol"][~emitted], rows["eval_time"][~emitted], strict=True):
        assert full.audited[s].at[e, "filled"], f"confirmation of {s} at {e} missing from the cut at {t}"
    want_c = rows[emitted].set_index(ROW_KEY).sort_index()
    got_c = trunc.confirmations.set_index(ROW_KEY).sort_index() if len(trunc.confirmations) else None
    assert (0 if got_c is None else len(got_c)) == len(want_c), f"confirmation rows up to {t}"
    if got_c is not None:
        pd.testing.assert_frame_equal(got_c, want_c, check_exact=True, obj=f"confirmations cut at {t}")


# ---------------------------------------------------------------- cut points

# Bar positions in BTC's full series (4h: 1495 bars): warm-up edges (first value of MACD at 33, the audit's
# robust sigma at 49, corr14 at 84, fib at 100, corr30 at 180, EMA200 at 199; the winsorizing window is
# full from 721) and the altered bars.
CUTS_4H = {
    "first-bar": 0,
    "second-bar": 1,
    "macd-last-nan-32": 32,
    "macd-first-33": 33,
    "robust-sigma-first-49": 49,
    "arb-listing-75": 75,
    "corr14-first-84": 84,
    "fib-first-100": 100,
    "corr30-first-180": 180,
    "ema200-first-199": 199,
    "bar-336": 336,
    "winsor-window-full-721": 721,
    "sol-gap-751": 751,
    "after-sol-gap-752": 752,
    "doge-wick-1000": 1000,
    "apt-spike-1001": 1001,
    "bar-1250": 1250,
    "last-bar": -1,
}
CUTS_1H = {
    "first-bar": 0,
    "macd-first-33": 33,
    "ema200-first-199": 199,
    "corr14-first-336": 336,
    "corr30-first-720": 720,
    "winsor-window-full-721": 721,
    "inside-sol-gap-3005": 3005,
    "after-sol-gap-3008": 3008,
    "doge-wick-4001": 4001,
    "apt-spike-4007": 4007,
    "last-bar": -1,
}
CUTS_1D = {
    "first-bar": 0,
    "corr14-last-nan-13": 13,
    "corr14-first-14": 14,
    "corr30-first-30": 30,
    "fib-first-100": 100,
    "sol-gap-day-125": 125,
    "doge-wick-apt-spike-day-166": 166,
    "last-bar": -1,
}


@pytest.mark.parametrize("position", list(CUTS_4H.values()), ids=list(CUTS_4H))
def test_4h_pipeline_rows_up_to_t_equal_the_truncated_run(position: int) -> None:
    assert_no_lookahead("4h", cut_time("4h", position))


@pytest.mark.parametrize(
    ("timeframe", "position"),
    [pytest.param("1h", p, id=f"1h-{name}") for name, p in CUTS_1H.items()]
    + [pytest.param("1d", p, id=f"1d-{name}") for name, p in CUTS_1D.items()],
)
def test_1h_and_1d_features_and_td_up_to_t_equal_the_truncated_run(timeframe: str, position: int) -> None:
    assert_no_lookahead(timeframe, cut_time(timeframe, position))


def watch_ending(final: str) -> pd.DataFrame:
    """The rows of the last 4h watch that ends `final` after ≥ 3 bars, within BTC's bars."""
    full = full_run("4h")
    conf = full.confirmations
    assert conf is not None
    last = conf.groupby(WATCH_KEY, sort=False).tail(1)
    ends = last[
        (last["status"] == final)
        & (last["bars_after"] >= 3)
        & (last["eval_time"] <= full.audited["BTC"].index[-1])
    ]
    assert len(ends), f"no watch ends {final!r} after 3 bars: choose other gates"
    key = ends.iloc[-1][WATCH_KEY]
    return conf[(conf[WATCH_KEY] == key).all(axis=1)]


@pytest.mark.parametrize("which", ["first", "busiest"])
def test_cut_at_a_trigger_bar(which: str) -> None:
    """t = a bar with candidates: the gates read bar t − 1, the moves bar t, nothing after t."""
    candidates = full_run("4h").candidates
    assert candidates is not None
    counts = candidates["bar_time"].value_counts(sort=False)
    t = counts.index.min() if which == "first" else counts.idxmax()
    trunc = assert_no_lookahead("4h", t)
    assert trunc.live and len(trunc.live) == counts[t] and {c.bar_time for c in trunc.live} == {t}
    if which == "busiest":
        assert counts[t] >= 3


@pytest.mark.parametrize(
    ("final", "offset", "status_at_t"),
    [
        pytest.param(EXPIRED, -2, WATCHING, id="watch-running-that-expires-later"),
        pytest.param(EXPIRED, -1, EXPIRED, id="expiry-bar"),
        pytest.param(CONFIRMED, -2, WATCHING, id="watch-running-that-confirms-later"),
        pytest.param(CONFIRMED, -1, CONFIRMED, id="confirmation-bar"),
    ],
)
def test_cut_inside_and_at_the_end_of_a_watch(final: str, offset: int, status_at_t: str) -> None:
    watch = watch_ending(final)
    t = watch["eval_time"].iloc[offset]
    trunc = assert_no_lookahead("4h", t)
    assert trunc.confirmations is not None
    mine = trunc.confirmations[(trunc.confirmations[WATCH_KEY] == watch.iloc[0][WATCH_KEY]).all(axis=1)]
    assert mine["eval_time"].iloc[-1] == t
    assert mine["status"].tolist() == [*[WATCHING] * (len(mine) - 1), status_at_t]
    assert watch["status"].iloc[-1] == final


# ---------------------------------------------------------------- what the cut points exercise


def test_the_full_4h_run_exercises_every_path() -> None:
    full = full_run("4h")
    assert full.candidates is not None and full.confirmations is not None
    assert full.candidates["symbol"].nunique() >= 4 and len(full.candidates) >= 30
    statuses = full.confirmations.groupby(WATCH_KEY)["status"].last().value_counts()
    assert {CONFIRMED, EXPIRED} <= set(statuses.index) and (full.confirmations["status"] == WATCHING).any()
    for name in ("volume_spike", "breakout", "oi_shift", "funding_flip", "funding_hot"):
        assert {"pass", "fail"} <= set(full.confirmations[f"{name}_passed"]), name
    sol, doge, arb, apt = (full.audited[s] for s in ("SOL", "DOGE", "ARB", "APT"))
    btc = full.audited["BTC"].index
    assert sol.index[sol["filled"]].tolist() == [btc[751]]
    assert sol.loc[btc[751], "fill_reason"] == "gap"
    assert doge.index[doge["fill_reason"] != ""].tolist() == [btc[1000]] and not doge["filled"].any()
    assert doge.loc[btc[1000], "fill_reason"] == "wick"
    assert apt.index[apt["filled"]].tolist() == [btc[1001]]
    assert apt.loc[btc[1001], "fill_reason"] == "spike"
    assert arb.index[0] == btc[75]
    for symbol in SYMBOLS:
        frame = full.features[symbol]
        assert frame[["funding", "funding_prev", "oi", "oi_chg"]].iloc[1:].notna().all().all(), symbol


def test_a_gap_at_the_end_of_the_data_is_filled_once_a_later_bar_arrives() -> None:
    full = full_run("4h")
    btc = full.audited["BTC"].index
    sol = full.audited["SOL"]
    for position, last in ((750, 750), (751, 750), (752, 752)):
        close = btc[position] + delta("4h")
        raw = inputs().until(close).bars["SOL"]
        bars = resample(clean_ohlcv(raw, symbol="SOL", timeframe="1h", source="files", now=close).bars, "4h")
        audited, _ = audit_bars(bars, symbol="SOL", timeframe="4h", cfg=CFG.audit, now=close)
        assert audited.index[-1] == btc[last]
        pd.testing.assert_frame_equal(audited, sol.loc[: btc[last]], check_exact=True)
