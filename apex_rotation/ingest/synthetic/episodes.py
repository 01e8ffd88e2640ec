"""Planted episodes: apex breakouts with their laggards, decoys and followers, the laggards' catch-ups,
open-interest shifts and clean TD Sequential patterns, one episode per ~30-day slot.

Why a module of its own: planting rewrites the factor model's returns so that the right answers are known;
the ground truth (truth.py) then measures them on the final arrays. See docs/synthetic-market.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from apex_rotation.ingest.synthetic.numeric import (
    ROBUST_WINDOW,
    TIMEFRAME_HOURS,
    _rng,
    _winsorized,
    corr_beta,
)
from apex_rotation.ingest.synthetic.state import _State

SLOT_DAYS = 30  # one apex episode per slot: 14 days of gate window + episode + TD pattern + slack
MIN_SLOT_DAYS = 26
EPISODE_DAY = 16  # the breakout day within a slot (its 14-day window covers days 2-15)
TD_DAY = 19  # TD patterns start here and end ~5.5 days later
OI_DAY = 21  # a second open-interest shift (a flush on an alt) from here
CORR_MARGIN, BETA_MARGIN, MOVE_MARGIN = 0.03, 0.15, 0.005  # how clearly planted roles clear each gate
TD_UNIT = 0.012  # log step of the TD patterns' designed closes
TD_BARS = 32
OI_SHIFT_MIN = 0.10  # planted open-interest shifts are 1.2-1.8 × this within one 4h bar
OPEN_HOLD = 0.25  # after its catch-up, the open episode's laggard moves this fraction of its usual returns
FOLLOW_BARS = 4  # after its catch-up bar, a laggard keeps catching up over this many 4h bars ...
FOLLOW_DIP = 0.008  # ... after a dip of this fraction in their first two hours (the limit entry fills) ...
FOLLOW_GAIN = (0.10, 0.14)  # ... by this fraction in all
FADERS = 1  # up to this many more gate-passing alts per episode fade instead of catching up ...
FADE_BARS = 7  # ... sliding over the 7 4h bars after the trigger (the watch window and one more) ...
FADE_LOSS = (0.08, 0.12)  # ... by this fraction in all


def _down_run(y: np.ndarray, i: int) -> int:
    """How many bars up to i close below the close 4 bars earlier, in a row (≥ any setup count there)."""
    n = 0
    while i >= 4 and y[i] < y[i - 4] and n < 9:
        n, i = n + 1, i - 1
    return n


def _td_path(prev4: np.ndarray, u: float) -> list[float]:
    """Designed 4h log closes (in the pattern's own orientation) for bars s .. s+31, from the 4 before s.

    s: a dip below the last 4 closes (ends any up run); s+1..s+9: a rally, each close 2u above the one 4 bars
    earlier: a perfected opposite setup 9 at s+9; s+10..s+26: a decline by u/2 per bar: setup 9 at s+18
    (perfected), its countdown counting every bar from s+18 (9 at s+26; the run reaches 17, not 18);
    s+27: a bounce above the close 4 bars earlier (ends the run, no count); s+28..s+31: counts 10-13,
    the 13 at s+31 below countdown bar 8's close. Every comparison has ≥ u/2 of slack in closes and
    ≥ 3u/4 against highs/lows, far above the patterns' wicks (≤ 0.2 %).
    """
    dip = float(prev4.min()) - u
    top = float(prev4[1:].max())
    rally = [top + 0.5 * u * j for j in range(1, 10)]
    decline = [top + (2.5 - 0.5 * k) * u for k in range(17)]
    tail = [top - 3.5 * u, top - 6.5 * u, top - 7.0 * u, top - 7.5 * u, top - 8.0 * u]
    return [dip, *rally, *decline, *tail]


class _Planter(_State):
    """Plants the episodes into the base returns, slot by slot in time order, and records what it planted."""

    def _plant(self) -> None:
        days = self.bins["1d"]
        if days.count < MIN_SLOT_DAYS:
            return
        n_slots = max(1, days.count // SLOT_DAYS)
        slot = days.count // n_slots
        rng = _rng(self.seed, "plant")
        first_apex = int(rng.integers(len(self.apexes)))
        for k in range(n_slots):
            d0 = days.first(k * slot)
            tf = "1d" if k % 4 == 3 else "4h"
            primary = self.apexes[(first_apex + k) % len(self.apexes)]
            self._episode(rng, k + 1, d0 + EPISODE_DAY * 24, tf, primary)
            self._td(rng, d0 + TD_DAY * 24, 1 if k % 2 == 0 else -1, limit=days.first((k + 1) * slot))
            who = self.alts or self.apexes
            h = d0 + OI_DAY * 24 + 4 * int(rng.integers(0, 18))
            flush = -OI_SHIFT_MIN * rng.uniform(1.2, 1.8)
            self.oi_plans.append((who[int(rng.integers(len(who)))], h, flush, "a flush"))
        # the open episode, when its gate window (the days before the last day) misses the last slot's breakout
        if days.count - 1 - self.window_days > (n_slots - 1) * slot + EPISODE_DAY:
            self._open_episode(rng, n_slots + 1, days.first(days.count - 1), first_apex + n_slots)

    def _open_episode(self, rng: np.random.Generator, number: int, last_day: int, k: int) -> None:
        """An episode still open at the end of the data: an apex 4h breakout at 04:00 UTC on the last day, its
        laggards catching up on the next 4h bar (08:00), then holding (returns × OPEN_HOLD) through the last
        three bars, so a confirmed signal stands a few bars before the end with its trade unresolved."""
        before = len(self.catchups)
        primary = self.apexes[k % len(self.apexes)]
        self._episode(rng, number, last_day, "4h", primary, bar4=1, catch_up_after=1)
        for alt, j, _ in self.catchups[before:]:
            h = self.bins["4h"].first(j + 1)
            self.R[self.row[alt], h:] *= OPEN_HOLD
            self.open_holds.append((alt, h))

    def _statuses(self, tf: str, j: int, breaking: Sequence[str]) -> dict[tuple[str, str], str]:
        """Gate status of every (alt, breaking apex) for bar j of `tf`: 'pass', 'fail_corr' or 'fail_beta'
        when clear by the margins on raw AND on winsorized returns, else 'unclear'."""
        b, w = self.bins[tf], self.window_days * 24 // TIMEFRAME_HOURS[tf]
        first_valid = 1 if b.off == 0 else 0
        if j - w < first_valid:
            return {(alt, x): "unclear" for alt in self.alts for x in breaking}
        start = max(first_valid, j - w - ROBUST_WINDOW)
        sums = (
            self.R[:, b.first(start) : b.first(j)].reshape(len(self.symbols), j - start, b.hours).sum(axis=2)
        )
        ret = np.expm1(sums)
        z, wins = self.cfg.audit.winsor_z, {}

        def winsorized(s: str) -> np.ndarray:
            if s not in wins:
                wins[s] = _winsorized(ret[self.row[s]], j - start - w, j - start, z)
            return wins[s]

        out = {}
        for alt in self.alts:
            for x in breaking:
                status = self._clear(ret[self.row[alt], -w:], ret[self.row[x], -w:])
                if status != "unclear" and self._clear(winsorized(alt), winsorized(x)) != status:
                    status = "unclear"
                out[(alt, x)] = status
        return out

    def _clear(self, alt: np.ndarray, apex: np.ndarray) -> str:
        g = self.cfg.apex
        corr, beta = corr_beta(alt, apex)
        if corr >= g.corr_min + CORR_MARGIN and beta >= g.beta_min + BETA_MARGIN:
            return "pass"
        if corr <= g.corr_min - CORR_MARGIN:
            return "fail_corr"
        if corr >= g.corr_min + CORR_MARGIN and beta <= g.beta_min - BETA_MARGIN:
            return "fail_beta"
        return "unclear"

    def _episode(
        self,
        rng: np.random.Generator,
        number: int,
        day_start: int,
        tf: str,
        primary: str,
        bar4: int | None = None,
        catch_up_after: int | None = None,
    ) -> None:
        """Plant apex breakout #`number` on `day_start` (a 4h bar at 04:00 or 08:00, `bar4` 1 or 2, drawn when
        None), its laggards, decoys and followers, and each laggard's catch-up 1-3 4h bars later
        (`catch_up_after`, drawn per laggard when None)."""
        thr, lag = self.thr, self.lag
        targets = {primary: rng.uniform(thr + 0.008, thr + 0.03)}
        for apex in self.apexes:
            if apex != primary:
                both = rng.random() < 0.3
                targets[apex] = (
                    rng.uniform(thr + 0.008, thr + 0.025) if both else rng.uniform(0.25, 0.6) * thr
                )
        drawn, n_lag = int(rng.integers(1, 3)), int(rng.integers(1, 4))
        order, bar4 = rng.permutation(len(self.alts)), drawn if bar4 is None else bar4

        plans = []
        for t in [tf, "4h"] if tf == "1d" else ["4h"]:
            breaking = [a for a in self.apexes if targets[a] >= thr]
            plans += [(t, breaking)] + ([(t, [primary])] if len(breaking) > 1 else [])
        for t, breaking in plans:
            start = day_start if t == "1d" else day_start + 4 * bar4
            status = self._statuses(t, self.bins[t].of(start), breaking)
            candidates = [
                self.alts[i]
                for i in order
                if status[(self.alts[i], primary)] == "pass"
                and all(status[(self.alts[i], x)] != "unclear" for x in breaking)
            ]
            if candidates:
                break
        tf = t
        for apex in self.apexes:
            if apex not in breaking and targets[apex] >= thr:
                targets[apex] = rng.uniform(0.25, 0.6) * thr

        k = TIMEFRAME_HOURS[tf]
        bar, day_end = slice(start, start + k), day_start + 24
        for apex, target in targets.items():
            r = self.R[self.row[apex]]
            self._set_apex_bar(r, bar, target)
            if tf == "4h":  # give back part of it later that day, so the 1d bar does not break out too
                excess = r[day_start:day_end].sum() - (self.cap_log - 0.005)
                if excess > 0:
                    r[start + k : day_end] -= excess / (day_end - start - k)
        affected = slice(start, day_end)
        for alt in self.alts:
            p, i = self.prof[alt], self.row[alt]
            self.R[i, affected] = p.beta * self.R[self.row[p.factor], affected] + self.E[i, affected]

        laggards = candidates[:n_lag]
        # up to FADERS more gate-passing alts fade instead of catching up (not in the open episode: too few bars)
        fading = candidates[n_lag : n_lag + FADERS] if catch_up_after is None else []
        decoys = []
        for kind in ("fail_beta", "fail_corr"):
            pick = next(
                (
                    self.alts[i]
                    for i in order
                    if status[(self.alts[i], primary)] == kind
                    and all(status[(self.alts[i], x)] in ("fail_beta", "fail_corr") for x in breaking)
                ),
                None,
            )
            if pick:
                decoys.append(pick)
        roles = {}
        for alt in self.alts:
            seg = self.R[self.row[alt], bar]
            if alt in laggards or alt in fading or alt in decoys:
                target = rng.uniform(lag - 0.025, lag - MOVE_MARGIN)
                seg[:] = 0.3 * (seg - seg.mean()) + math.log1p(target) / k
                for x in breaking:
                    roles[(alt, x)] = {"pass": "laggard", "fail_corr": "decoy_low_corr"}.get(
                        status[(alt, x)], "decoy_low_beta"
                    )
            else:
                if math.expm1(seg.sum()) < lag + 0.01:
                    seg += (math.log1p(rng.uniform(lag + 0.01, lag + 0.03)) - seg.sum()) / k
                for x in breaking:
                    roles[(alt, x)] = "follower"
        self.episodes[(tf, self.bins[tf].of(start))] = (number, roles)

        bins4 = self.bins["4h"]
        last4 = bins4.of(start + k - 1)
        edge = _rng(self.seed, "edge", str(number))  # its own stream: the other draws stay as they were
        for alt in laggards:
            after = int(rng.integers(1, 4))
            j = last4 + (after if catch_up_after is None else catch_up_after)
            if self._catch_up(rng, alt, j, number) and catch_up_after is None:
                self._follow_through(edge, alt, j + 1, number)
        for alt in fading:
            self._fade(edge, alt, last4 + 1, number)
        build_up = OI_SHIFT_MIN * rng.uniform(1.2, 1.8)
        self.oi_plans.append((primary, start, build_up, f"with apex breakout #{number}"))

    def _set_apex_bar(self, r: np.ndarray, bar: slice, target: float) -> None:
        """Make the bar's log returns sum to log(1 + target), keeping some of their shape, with no 1h bar
        (and, for a 1d bar, no 4h bar inside it) moving past the cap."""
        seg = r[bar]
        k, shape, total = len(seg), seg - seg.mean(), math.log1p(target)
        for alpha in (0.6, 0.3, 0.0):
            new = alpha * shape + total / k
            parts = new.reshape(-1, 4).sum(axis=1) if k == 24 else np.array([0.0])
            if np.abs(new).max() < self.cap_log and np.abs(parts).max() < self.cap_log - 0.003:
                break
        seg[:] = new

    def _catch_up(self, rng: np.random.Generator, alt: str, j: int, number: int) -> bool:
        """The laggard rallies on 4h bar j, closing ≥ 1 % above the highest high of the lookback bars."""
        b4, i = self.bins["4h"], self.row[alt]
        if j - self.lookback < 0 or j >= b4.count:
            return False
        h, lo = b4.first(j), b4.first(j - self.lookback)
        close = self.prof[alt].price * np.exp(np.cumsum(self.R[i, :h]))
        opens = np.concatenate(([self.prof[alt].price], close[:-1]))
        highs = np.maximum(opens, close)[lo:h] * np.exp(self.wick_up[i, lo:h])
        need = math.log(float(highs.max()) * 1.01 / close[-1])
        target = max(math.log1p(rng.uniform(0.05, 0.09)), need)
        seg = self.R[i, h : h + 4]
        seg[:] = 0.4 * (seg - seg.mean()) + target / 4
        self.catchups.append((alt, j, number))
        return True

    def _follow_through(self, rng: np.random.Generator, alt: str, j: int, number: int) -> None:
        """The planted edge: after its catch-up (the confirmation) bar, the laggard keeps catching up over the
        next FOLLOW_BARS 4h bars: a FOLLOW_DIP dip in the first two hours, then a steady climb to FOLLOW_GAIN
        above the catch-up close, so a confirmed rotation trade (a limit at that close) fills and gains."""
        b4, i = self.bins["4h"], self.row[alt]
        if j + FOLLOW_BARS > b4.count:
            return
        h, hours = b4.first(j), 4 * FOLLOW_BARS
        seg = self.R[i, h : h + hours]
        noise = 0.2 * (seg - seg.mean())
        dip, gain = math.log1p(-FOLLOW_DIP), math.log1p(rng.uniform(*FOLLOW_GAIN))
        seg[:2] = dip / 2 + noise[:2] - noise[:2].mean()
        seg[2:] = (gain - dip) / (hours - 2) + noise[2:] - noise[2:].mean()
        self.follow_throughs.append((alt, j, FOLLOW_BARS, number))

    def _fade(self, rng: np.random.Generator, alt: str, j: int, number: int) -> None:
        """A gate-passing laggard that never catches up: it slides by FADE_LOSS over the FADE_BARS 4h bars
        after the trigger, without a breakout (so its watch expires) — the candidates confirmation filters out."""
        b4, i = self.bins["4h"], self.row[alt]
        if j + FADE_BARS > b4.count:
            return
        h, hours = b4.first(j), 4 * FADE_BARS
        seg = self.R[i, h : h + hours]
        seg[:] = 0.3 * (seg - seg.mean()) + math.log1p(-rng.uniform(*FADE_LOSS)) / hours
        self.fades.append((alt, j, FADE_BARS, number))

    def _td(self, rng: np.random.Generator, hour: int, sign: int, limit: int) -> None:
        """Plant `_td_path` on one alt's 4h closes: sign +1 ends in a buy countdown 13, −1 in a sell one.

        It starts where the alt's own down run (in the pattern's orientation) is short, so the dip cannot
        complete a natural setup; an alt that trends too hard over the next two days hands over to the next.
        """
        b4 = self.bins["4h"]
        s0, last = b4.of(hour), b4.of(min(limit, b4.first(b4.count))) - TD_BARS
        first_pick = int(rng.integers(max(1, len(self.alts))))
        for alt in self.alts[first_pick:] + self.alts[:first_pick]:  # the first alt whose tape allows it
            i = self.row[alt]
            log_close = math.log(self.prof[alt].price) + np.cumsum(self.R[i])
            y = sign * log_close[b4.off + 3 : b4.first(b4.count) : 4]
            s = next((s for s in range(max(s0, 12), min(s0 + 12, last + 1)) if _down_run(y, s - 1) < 8), None)
            if s is not None:
                break
        else:
            return
        prev = y[s - 1]
        for b, x in enumerate(_td_path(y[s - 4 : s], TD_UNIT)):
            h = b4.first(s + b)
            noise = rng.normal(0.0, 0.0003, 4)
            self.R[i, h : h + 4] = sign * (x - prev) / 4 + (noise - noise.mean())
            prev = x
        span = slice(b4.first(s), b4.first(s + TD_BARS))
        size = span.stop - span.start
        self.wick_up[i, span] = np.minimum(np.abs(rng.normal(0.0, 0.0004, size)), 0.001)
        self.wick_down[i, span] = np.minimum(np.abs(rng.normal(0.0, 0.0004, size)), 0.001)
        first, second = ("sell", "buy") if sign > 0 else ("buy", "sell")
        self.td_marks += [
            (alt, s + 9, "td_setup_9", first, s + 1),
            (alt, s + 18, "td_setup_9", second, s + 10),
            (alt, s + 31, "td_countdown_13", second, s + 18),
        ]
