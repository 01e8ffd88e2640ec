"""The fill kernel of the dry-run simulator: one numba pass per order over one symbol's bars.

Prices only (no fees, slippage or funding: `exec/sim.py` applies those). The bars are the finest the caller
has, normally 1h ("steps"), so the order of a stop and a target inside a higher-timeframe bar is decided by
its 1h bars; when even one step bar cannot tell, the worse outcome is assumed. Rules, for a long (a short
mirrors every comparison):

Entry, from step bar `start` (the first bar after the signal bar; never the signal bar itself):
* market: fills at `start`'s open. An open at or beyond the stop is `invalidated`, at or beyond the target
  `missed` (no trade either way).
* limit at L: works for `expiry` step bars. A bar that opens at or beyond the stop cancels it
  (`invalidated`: the idea failed before the fill). A bar that opens at or below L fills at the open (a
  gap: the better price); else a low at or below L fills at L. Not filled within `expiry` bars: `expired`;
  the data ended first: `pending_at_end`.

Exit, from the fill bar on, for at most `hold` step bars:
* a bar after the fill bar that opens at or beyond the stop exits at the open (a gap: worse than the stop,
  so a loss beyond 1 R is possible), one that opens at or beyond the target exits at the open;
* else low ≤ stop → stop at the stop price (checked first: when a bar touches both, the stop wins);
* else high ≥ target → target at the target price.
* On the bar a limit filled inside (not at its open), what came before the fill is unknown: the stop is
  checked (pessimistic), the target only through the close (which certainly came after the fill).
* Still open after `hold` bars: `max_hold`, at the close of the last bar; data ended first: `open_at_end`,
  at the last close.

Excursions (for MFE/MAE) are the prices the position certainly or possibly lived through, counting the
ambiguous adverse ones and leaving out the ambiguous favourable ones: whole bars while held; on a mid-bar
limit fill its low and close; on a stop bar only its open and the stop; on a target bar its low and the target.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# exit codes, in the order of schemas.EXIT_REASONS
STOP, TARGET, MAX_HOLD, OPEN_AT_END, EXPIRED, PENDING_AT_END, INVALIDATED, MISSED = range(8)
# out_i columns: code, fill bar, exit bar, filled at that bar's open (0/1), exit at that bar's close (0/1)
# out_f columns: fill price, exit price, most favourable price, most adverse price
N_INT, N_FLOAT = 5, 4


@njit(cache=True)
def _better(sign: float, a: float, b: float) -> float:
    return b if sign * (b - a) > 0 else a


@njit(cache=True)
def _worse(sign: float, a: float, b: float) -> float:
    return b if sign * (b - a) < 0 else a


@njit(cache=True)
def _entry(o, h, lo, start, sign, market, limit, stop, target, expiry, out_i, out_f, k):
    """Fill order k or record why it did not fill; returns the fill bar (−1: not filled)."""
    n = o.size
    if start >= n:
        out_i[k, 0], out_i[k, 2] = PENDING_AT_END, n - 1
        return -1
    if market:
        if sign * (o[start] - stop) <= 0 or sign * (o[start] - target) >= 0:
            out_i[k, 0] = INVALIDATED if sign * (o[start] - stop) <= 0 else MISSED
            out_i[k, 2] = start
            return -1
        out_i[k, 1], out_i[k, 3], out_f[k, 0] = start, 1, o[start]
        return start
    last = min(start + expiry, n)
    for i in range(start, last):
        if sign * (o[i] - stop) <= 0:
            out_i[k, 0], out_i[k, 2] = INVALIDATED, i
            return -1
        if sign * (o[i] - limit) <= 0:
            out_i[k, 1], out_i[k, 3], out_f[k, 0] = i, 1, o[i]
            return i
        adverse = lo[i] if sign > 0 else h[i]
        if sign * (adverse - limit) <= 0:
            out_i[k, 1], out_i[k, 3], out_f[k, 0] = i, 0, limit
            return i
    out_i[k, 0] = EXPIRED if start + expiry <= n else PENDING_AT_END
    out_i[k, 2] = last - 1
    return -1


@njit(cache=True)
def simulate_orders(o, h, lo, c, start, sign, market, limit, stop, target, expiry, hold, out_i, out_f):
    """Fill and exit every order (arrays of one length) over the step bars `o, h, lo, c` (see the module
    docstring); results go to `out_i` (K × N_INT) and `out_f` (K × N_FLOAT)."""
    n = o.size
    for k in range(start.size):
        s, st, tg = sign[k], stop[k], target[k]
        out_i[k, :] = -1
        out_i[k, 3:] = 0
        out_f[k, :] = np.nan
        f = _entry(o, h, lo, start[k], s, market[k], limit[k], st, tg, expiry[k], out_i, out_f, k)
        if f < 0:
            continue
        fill = out_f[k, 0]
        fav, adv = fill, fill
        code, exit_bar, exit_price = -1, -1, np.nan
        end = min(f + hold[k], n)
        for i in range(f, end):
            favourable = h[i] if s > 0 else lo[i]
            adverse = lo[i] if s > 0 else h[i]
            if i == f and out_i[k, 3] == 0:  # filled inside this bar at the limit
                if s * (adverse - st) <= 0:
                    code, exit_bar, exit_price = STOP, i, st
                    adv = _worse(s, adv, st)
                    break
                adv = _worse(s, adv, adverse)
                fav = _better(s, fav, c[i])
                if s * (c[i] - tg) >= 0:
                    code, exit_bar, exit_price = TARGET, i, tg
                    fav = _better(s, fav, tg)
                    break
                continue
            op = fill if i == f else o[i]
            if s * (op - st) <= 0:
                code, exit_bar, exit_price = STOP, i, op
                adv = _worse(s, adv, op)
                break
            if s * (op - tg) >= 0:
                code, exit_bar, exit_price = TARGET, i, op
                fav = _better(s, fav, op)
                break
            if s * (adverse - st) <= 0:
                code, exit_bar, exit_price = STOP, i, st
                fav, adv = _better(s, fav, op), _worse(s, adv, st)
                break
            if s * (favourable - tg) >= 0:
                code, exit_bar, exit_price = TARGET, i, tg
                fav, adv = _better(s, fav, tg), _worse(s, adv, adverse)
                break
            fav, adv = _better(s, fav, favourable), _worse(s, adv, adverse)
        if code < 0:
            code = MAX_HOLD if f + hold[k] <= n else OPEN_AT_END
            exit_bar, exit_price = end - 1, c[end - 1]
            out_i[k, 4] = 1
        out_i[k, 0], out_i[k, 2] = code, exit_bar
        out_f[k, 1], out_f[k, 2], out_f[k, 3] = exit_price, fav, adv


@njit(cache=True)
def window_extremes(h, lo, end, length, sign):
    """Per order k: the highest high (sign > 0) or lowest low of the `length[k]` bars before `end[k]` (NaN
    when there are none)."""
    out = np.full(end.size, np.nan)
    for k in range(end.size):
        a, b = max(end[k] - length[k], 0), min(end[k], h.size)
        for i in range(a, b):
            x = h[i] if sign[k] > 0 else lo[i]
            if np.isnan(out[k]) or sign[k] * (x - out[k]) > 0:
                out[k] = x
    return out
