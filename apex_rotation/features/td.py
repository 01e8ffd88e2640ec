"""TD Sequential (setup, perfection, TDST, countdown, risk levels) as fixed by specs/td_sequential.md.

One numba pass over the bars keeps it fast (millions of bars a second) and makes the no-lookahead
property structural: row t is written from bars 0..t only. Strings travel as small ints inside the loop
and are mapped once at the end.

Output (`TD_COLUMNS`, spec §7): `td_flip`, `td_setup_type`, `td_countdown_type` and `td_tdst_breach` are
pandas object columns holding str or None; `td_setup_count`, `td_countdown` int64; `td_perfected`,
`td_countdown_deferred` bool; `td_tdst_buy`, `td_tdst_sell`, `td_setup_risk_level`,
`td_countdown_risk_level` float64 (NaN when not set).

Choices where the spec is open:
* The first bar of a series (or after a gap) has no previous close: its true high/low are its high/low.
* `td_flip` marks the bar that starts a setup run (setup bar 1): the price flip in `standard`, the first
  counting bar in `loose` (from bar 4 on; bar 4 counts as a start since bar 3 has no C[i-4]).
* Perfection: the grace window is the bars 1..`perfection_grace_bars` after bar 9 (0 behaves as strict);
  a pending perfection outlives the end of the setup run. On the bar where a new setup completes, a pending
  perfection is dropped without being tested, so `td_perfected` on a bar 9 always concerns that setup.
* `td_countdown_deferred` is an event, like DeMark's "+": True on each bar that meets the countdown
  condition at 12 but fails the bar-13 qualifier; the bars between show False.
* `td_countdown_type` is set while a countdown is active, from its start bar (possibly with
  `td_countdown` 0) to its 13 bar inclusive.
* The active setup of a countdown is the one whose bar 9 (or bar 18, below) last started it.
  Standard TDST cancellation compares with the highest true high (buy; sell: lowest true low) of that
  setup's bars 1-9, whatever `tdst_from` says. `R_old` spans the active setup's whole run (bars after 9
  included), `R_new` the new setup's bars 1-9.
* Within a bar: an opposite completion or TDST cancels first; only a countdown that survives is recycled
  or hit by the 18 rule. Any completion starts a countdown when none is active, so a countdown cancelled
  by TDST on a bar where a same-direction setup completes is replaced by the new one.
* The 18 rule fires on count 18 exactly (not 27, 36...) of any run in the countdown's direction (the
  active setup's own run or a later one that did not recycle it); a standard restart makes that run the
  active setup. 18 is not a completion: a countdown cancelled on that bar is not restarted.
* Countdown risk level (§6): over every bar from countdown bar 1 through bar 13, the bars between counted
  bars included (deferred bars too); ties go to the earliest bar. Bars after the countdown's start but
  before its bar 1 are not part of it, and a recycled or restarted countdown starts its period afresh.
* Loose TDST cancellation reads `td_tdst_buy`/`td_tdst_sell` of the same row (after that bar's update).
* Gaps: a row with NaN high, low or close has empty outputs (None, 0, False, NaN) and resets all state,
  including TDST levels, so each NaN-free stretch is computed as an independent series. `open` and
  `volume` are not used, so NaN there is ignored. The index must be increasing (ValueError otherwise).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit

from apex_rotation.config import TDConfig

TD_COLUMNS = [
    "td_flip",
    "td_setup_type",
    "td_setup_count",
    "td_perfected",
    "td_countdown_type",
    "td_countdown",
    "td_countdown_deferred",
    "td_tdst_buy",
    "td_tdst_sell",
    "td_tdst_breach",
    "td_setup_risk_level",
    "td_countdown_risk_level",
]

# Codes used inside the kernel: index into these arrays (0 = null).
_FLIP_NAMES = np.array([None, "bearish", "bullish"], dtype=object)
_SIDE_NAMES = np.array([None, "buy", "sell"], dtype=object)
_BREACH_NAMES = np.array([None, "up", "down", "both"], dtype=object)

BUY = 1
SELL = 2
RECYCLE_MAX_RATIO = 1.618


@njit(cache=True)
def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, j: int) -> float:
    """True range of bar j, which always has a previous close in its segment where this is called."""
    prev = close[j - 1]
    return max(high[j], prev) - min(low[j], prev)


@njit(cache=True)
def _kernel(high, low, close, loose, strict_perfection, grace, tdst_bar1):
    """The single pass; returns code and value arrays in `TD_COLUMNS` order. grace < 0 means no limit."""
    n = close.shape[0]
    flip = np.zeros(n, np.int8)
    setup_type = np.zeros(n, np.int8)
    setup_count = np.zeros(n, np.int64)
    perfected = np.zeros(n, np.bool_)
    cd_type = np.zeros(n, np.int8)
    countdown = np.zeros(n, np.int64)
    deferred = np.zeros(n, np.bool_)
    tdst_buy = np.full(n, np.nan)
    tdst_sell = np.full(n, np.nan)
    breach = np.zeros(n, np.int8)
    setup_risk = np.full(n, np.nan)
    cd_risk = np.full(n, np.nan)

    seg = 0  # first bar of the current NaN-free stretch
    # setup run: direction, count, id, true-high max / true-low min over the whole run and over bars 1-9
    s_dir = 0
    s_cnt = 0
    run_id = 0
    run_max = 0.0
    run_min = 0.0
    run_max9 = 0.0
    run_min9 = 0.0
    lvl_buy = np.nan
    lvl_sell = np.nan
    pend_dir = 0
    pend_level = 0.0
    pend_bar9 = 0
    # countdown and its active setup (act_max/act_min: that setup's whole run, frozen when a new run starts)
    cd_dir = 0
    cd_cnt = 0
    cd_bar8 = 0.0
    cd_ext = 0.0
    cd_tr = 0.0
    act_id = -1
    act_ref = 0.0
    act_max = 0.0
    act_min = 0.0

    for i in range(n):
        h = high[i]
        lo = low[i]
        c = close[i]
        if np.isnan(h) or np.isnan(lo) or np.isnan(c):
            seg = i + 1
            s_dir = 0
            s_cnt = 0
            lvl_buy = np.nan
            lvl_sell = np.nan
            pend_dir = 0
            cd_dir = 0
            cd_cnt = 0
            act_id = -1
            continue
        k = i - seg
        if k == 0:
            th = h
            tl = lo
        else:
            th = max(h, close[i - 1])
            tl = min(lo, close[i - 1])

        # 1. setup update
        side = 0
        if k >= 4:
            if c < close[i - 4]:
                side = BUY
            elif c > close[i - 4]:
                side = SELL
        if side == 0:
            s_dir = 0
            s_cnt = 0
        elif side == s_dir:
            s_cnt += 1
            run_max = max(run_max, th)
            run_min = min(run_min, tl)
        else:
            if loose:
                start = True
            elif k >= 5:
                start = close[i - 1] > close[i - 5] if side == BUY else close[i - 1] < close[i - 5]
            else:
                start = False
            if start:
                if act_id == run_id:
                    act_max = run_max
                    act_min = run_min
                run_id += 1
                s_dir = side
                s_cnt = 1
                run_max = th
                run_min = tl
                flip[i] = side
            else:
                s_dir = 0
                s_cnt = 0
        setup_type[i] = s_dir
        setup_count[i] = s_cnt

        completed = 0
        if s_cnt == 9:
            completed = s_dir
            run_max9 = run_max
            run_min9 = run_min
            first = i - 8
            best = first
            if s_dir == BUY:
                hmax = high[first]
                for j in range(first + 1, i + 1):
                    hmax = max(hmax, high[j])
                    if low[j] < low[best]:
                        best = j
                if tdst_bar1:
                    lvl_buy = high[first] if loose else max(high[first], close[first - 1])
                else:
                    lvl_buy = hmax if loose else run_max9
                setup_risk[i] = low[best] - _true_range(high, low, close, best)
                perf_level = min(low[i - 3], low[i - 2])
                is_perfect = min(low[i - 1], lo) <= perf_level
            else:
                lmin = low[first]
                for j in range(first + 1, i + 1):
                    lmin = min(lmin, low[j])
                    if high[j] > high[best]:
                        best = j
                if tdst_bar1:
                    lvl_sell = low[first] if loose else min(low[first], close[first - 1])
                else:
                    lvl_sell = lmin if loose else run_min9
                setup_risk[i] = high[best] + _true_range(high, low, close, best)
                perf_level = max(high[i - 3], high[i - 2])
                is_perfect = max(high[i - 1], h) >= perf_level
            pend_dir = 0
            if is_perfect:
                perfected[i] = True
            elif not strict_perfection:
                pend_dir = s_dir
                pend_level = perf_level
                pend_bar9 = i
        elif pend_dir != 0:
            if grace >= 0 and i - pend_bar9 > grace:
                pend_dir = 0
            elif (pend_dir == BUY and lo <= pend_level) or (pend_dir == SELL and h >= pend_level):
                perfected[i] = True
                pend_dir = 0

        tdst_buy[i] = lvl_buy
        tdst_sell[i] = lvl_sell
        code = 0
        if c > lvl_buy:
            code = 1
        if c < lvl_sell:
            code += 2
        breach[i] = code

        # 2. cancellation, then recycling / the 18 rule
        restart = 0
        if cd_dir != 0:
            if completed != 0 and completed != cd_dir:
                cd_dir = 0
            elif loose:
                if (cd_dir == BUY and c > lvl_buy) or (cd_dir == SELL and c < lvl_sell):
                    cd_dir = 0
            elif (cd_dir == BUY and tl > act_ref) or (cd_dir == SELL and th < act_ref):
                cd_dir = 0
            if cd_dir != 0:
                if completed == cd_dir:
                    if loose:
                        restart = cd_dir
                    else:
                        r_old = act_max - act_min
                        r_new = run_max9 - run_min9
                        if r_old <= r_new < RECYCLE_MAX_RATIO * r_old:
                            restart = cd_dir
                elif s_dir == cd_dir and s_cnt == 18:
                    if loose:
                        cd_dir = 0
                    else:
                        restart = cd_dir
        if cd_dir == 0 and completed != 0:
            restart = completed
        if restart != 0:
            cd_dir = restart
            cd_cnt = 0
            act_id = run_id
            act_ref = run_max9 if restart == BUY else run_min9

        # 3. counting; the risk extreme runs over every bar from countdown bar 1 on (§6)
        if cd_dir != 0:
            hit = c <= low[i - 2] if cd_dir == BUY else c >= high[i - 2]
            first = False
            if hit:
                if cd_cnt == 12:
                    if (cd_dir == BUY and lo <= cd_bar8) or (cd_dir == SELL and h >= cd_bar8):
                        cd_cnt = 13
                    else:
                        deferred[i] = True
                else:
                    cd_cnt += 1
                    first = cd_cnt == 1
                    if cd_cnt == 8:
                        cd_bar8 = c
            if first or (cd_cnt > 0 and ((cd_dir == BUY and lo < cd_ext) or (cd_dir == SELL and h > cd_ext))):
                cd_ext = lo if cd_dir == BUY else h
                cd_tr = th - tl
            cd_type[i] = cd_dir
            countdown[i] = cd_cnt
            if cd_cnt == 13:
                cd_risk[i] = cd_ext - cd_tr if cd_dir == BUY else cd_ext + cd_tr
                cd_dir = 0
                cd_cnt = 0

    return (
        flip,
        setup_type,
        setup_count,
        perfected,
        cd_type,
        countdown,
        deferred,
        tdst_buy,
        tdst_sell,
        breach,
        setup_risk,
        cd_risk,
    )


def compute(df: pd.DataFrame, cfg: TDConfig | None = None) -> pd.DataFrame:
    """TD Sequential state for every bar of `df` (OHLCV indexed by UTC open time, increasing).

    Returns exactly `TD_COLUMNS` on `df`'s index; row t depends only on rows 0..t.
    """
    cfg = cfg or TDConfig()
    missing = [col for col in ("high", "low", "close") if col not in df.columns]
    if missing:
        raise ValueError(f"td.compute needs columns high, low, close; missing {missing}")
    if not df.index.is_monotonic_increasing:
        raise ValueError("td.compute needs bars in increasing time order (sort the index first)")
    grace = -1 if cfg.perfection_grace_bars is None else cfg.perfection_grace_bars
    out = _kernel(
        np.ascontiguousarray(df["high"].to_numpy(dtype=np.float64)),
        np.ascontiguousarray(df["low"].to_numpy(dtype=np.float64)),
        np.ascontiguousarray(df["close"].to_numpy(dtype=np.float64)),
        cfg.profile == "loose",
        cfg.strict_perfection,
        grace,
        cfg.tdst_from == "bar1",
    )
    flip, setup_type, setup_count, perfected, cd_type, countdown, deferred = out[:7]
    tdst_buy, tdst_sell, breach, setup_risk, cd_risk = out[7:]
    columns = {
        "td_flip": _FLIP_NAMES.take(flip),
        "td_setup_type": _SIDE_NAMES.take(setup_type),
        "td_setup_count": setup_count,
        "td_perfected": perfected,
        "td_countdown_type": _SIDE_NAMES.take(cd_type),
        "td_countdown": countdown,
        "td_countdown_deferred": deferred,
        "td_tdst_buy": tdst_buy,
        "td_tdst_sell": tdst_sell,
        "td_tdst_breach": _BREACH_NAMES.take(breach),
        "td_setup_risk_level": setup_risk,
        "td_countdown_risk_level": cd_risk,
    }
    return pd.DataFrame(columns, index=df.index, copy=False)
