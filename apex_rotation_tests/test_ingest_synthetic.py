"""The synthetic source: deterministic valid bars, a factor market, every planted fact checkable from bars.

The ground truth is re-derived here independently, with plain pandas on the served 1h bars resampled to
4h/1d (label/closed left, origin epoch), never from the generator's internals.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from apex_rotation.config import PROJECT_ROOT, AppConfig, load_config
from apex_rotation.ingest.base import DataError, SourceError, UnsupportedData
from apex_rotation.ingest.synthetic import (
    GROUND_TRUTH_COLUMNS,
    INTEREST,
    SyntheticMarket,
    SyntheticSource,
)

ALL_TIME = (pd.Timestamp("2000-01-01", tz="UTC"), pd.Timestamp("2100-01-01", tz="UTC"))
AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
HOURS = {"1h": 1, "4h": 4, "1d": 24}
ROLES = ("laggard", "decoy_low_corr", "decoy_low_beta", "follower")


@pytest.fixture(scope="module")
def source(default_config: AppConfig) -> SyntheticSource:
    return SyntheticSource(default_config)


@pytest.fixture(scope="module")
def truth(source: SyntheticSource) -> pd.DataFrame:
    return source.ground_truth()


@pytest.fixture(scope="module")
def hourly(source: SyntheticSource) -> dict[str, pd.DataFrame]:
    return _hourly(source)


def _hourly(src: SyntheticSource) -> dict[str, pd.DataFrame]:
    """Every symbol's served 1h bars, indexed by UTC open time."""
    out = {}
    for symbol in src.cfg.basket.names:
        frame = src.fetch_ohlcv(symbol, "1h", *ALL_TIME)
        out[symbol] = frame.set_index(pd.to_datetime(frame["open_time"], unit="ms", utc=True))
    return out


def _resample(frame: pd.DataFrame, tf: str) -> pd.DataFrame:
    if tf == "1h":
        return frame[list(AGG)]
    return frame.resample(tf, label="left", closed="left", origin="epoch").agg(AGG)


def _panel(frames: dict[str, pd.DataFrame], tf: str, column: str) -> pd.DataFrame:
    return pd.DataFrame({s: _resample(f, tf)[column] for s, f in frames.items()})


def _digest(market: SyntheticMarket) -> str:
    h = hashlib.sha256()
    for a in (market.open, market.high, market.low, market.close, market.volume, market.funding):
        h.update(a.tobytes())
    h.update(market.open_interest.tobytes())
    h.update(market.truth.to_csv().encode())
    return h.hexdigest()


def _config(**synthetic) -> AppConfig:
    return load_config(overrides={"synthetic": synthetic})


# ---------------------------------------------------------------- shape, speed, determinism


def test_default_market_window_and_shape(source: SyntheticSource, hourly: dict[str, pd.DataFrame]):
    assert list(hourly) == source.cfg.basket.names and len(hourly) == 17
    first, last = pd.Timestamp("2024-01-02 00:00", tz="UTC"), pd.Timestamp("2025-12-31 23:00", tz="UTC")
    assert source.history_window() == (first, last)
    for symbol, frame in hourly.items():
        assert len(frame) == 17_520  # 730 days × 24
        assert list(frame.columns) == ["open_time", "open", "high", "low", "close", "volume", "ticker"]
        assert frame["open_time"].dtype == np.int64
        assert (frame["ticker"] == symbol).all()
        assert frame.index[0] == first and frame.index[-1] == last


def test_same_config_gives_identical_market(source: SyntheticSource, default_config: AppConfig):
    again = SyntheticSource(default_config)
    for symbol in ("BTC", "SOL", "TIA"):
        pd.testing.assert_frame_equal(
            source.fetch_ohlcv(symbol, "1h", *ALL_TIME),
            again.fetch_ohlcv(symbol, "1h", *ALL_TIME),
            check_exact=True,
        )
    assert _digest(again.market) == _digest(source.market)
    pd.testing.assert_frame_equal(again.ground_truth(), source.ground_truth())


def test_same_config_is_identical_in_another_process(source: SyntheticSource):
    code = (
        "from apex_rotation.config import load_config\n"
        "from apex_rotation.ingest.synthetic import build_market\n"
        "from apex_rotation_tests.test_ingest_synthetic import _digest\n"
        "print(_digest(build_market(load_config())))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == _digest(source.market)


def test_another_seed_gives_another_market(source: SyntheticSource):
    other = SyntheticSource(_config(seed=8)).market
    assert other.close.shape == source.market.close.shape
    assert not np.array_equal(other.close, source.market.close)
    assert np.isclose(other.close[0, 0], 42_000.0, rtol=0.05)  # same profiles, other path


# ---------------------------------------------------------------- bars and requests


def test_bars_are_valid_ohlc(hourly: dict[str, pd.DataFrame]):
    for symbol, f in hourly.items():
        values = f[list(AGG)].to_numpy()
        assert np.isfinite(values).all() and (values > 0).all(), symbol
        assert (f["low"] <= np.minimum(f["open"], f["close"])).all(), symbol
        assert (f["high"] >= np.maximum(f["open"], f["close"])).all(), symbol
        assert (f["open"].to_numpy()[1:] == f["close"].to_numpy()[:-1]).all(), symbol  # no gaps
        assert (np.diff(f["open_time"].to_numpy()) == 3_600_000).all(), symbol


def test_fetch_clips_to_the_request_and_to_the_window(
    source: SyntheticSource, hourly: dict[str, pd.DataFrame]
):
    since, until = pd.Timestamp("2025-01-01 00:00", tz="UTC"), pd.Timestamp("2025-01-01 05:00", tz="UTC")
    frame = source.fetch_ohlcv("ETH", "1h", since, until)
    assert len(frame) == 6  # until is inclusive
    assert frame["open_time"].iloc[0] == since.value // 10**6
    np.testing.assert_array_equal(frame["close"], hourly["ETH"].loc[since:until, "close"])
    off_grid = source.fetch_ohlcv(
        "ETH", "1h", since + pd.Timedelta(minutes=1), until - pd.Timedelta(minutes=1)
    )
    assert len(off_grid) == 4
    assert source.fetch_ohlcv("ETH", "1h", *(pd.Timestamp("2023-06-01", tz="UTC"),) * 2).empty
    tail = source.fetch_ohlcv("ETH", "1h", pd.Timestamp("2025-12-31 22:00", tz="UTC"), ALL_TIME[1])
    assert len(tail) == 2  # the bar opening at `end` is not closed yet: not served
    in_paris = pd.Timestamp("2025-01-01 01:00", tz="Europe/Paris")  # = 00:00 UTC
    assert source.fetch_ohlcv("ETH", "1h", in_paris, in_paris)["open_time"].tolist() == [since.value // 10**6]


def test_bad_requests_raise_clear_errors(source: SyntheticSource):
    with pytest.raises(UnsupportedData, match=r"1h bars only.*BTC 4h"):
        source.fetch_ohlcv("BTC", "4h", *ALL_TIME)
    with pytest.raises(SourceError, match=r"unknown symbol 'SHIB'"):
        source.fetch_ohlcv("SHIB", "1h", *ALL_TIME)
    with pytest.raises(SourceError, match=r"unknown symbol 'SHIB'"):
        source.fetch_funding("SHIB", *ALL_TIME)
    with pytest.raises(DataError, match=r"synthetic:BTC:1h: since 2025-01-01 00:00:00 has no timezone"):
        source.fetch_ohlcv("BTC", "1h", pd.Timestamp("2025-01-01"), ALL_TIME[1])


# ---------------------------------------------------------------- a factor market, not noise


def test_volatility_clusters(hourly: dict[str, pd.DataFrame]):
    for symbol, f in hourly.items():
        abs_ret = np.log(f["close"]).diff().abs()
        assert abs_ret.autocorr(1) > 0.07, symbol
        assert abs_ret.autocorr(6) > 0.04, symbol


def test_profiles_match_the_realized_returns(source: SyntheticSource, hourly: dict[str, pd.DataFrame]):
    profiles = source.profiles()
    assert profiles["kind"].value_counts().to_dict() == {
        "high_beta": 8,
        "low_corr": 4,
        "low_beta": 3,
        "market": 1,
        "apex": 1,
    }
    assert profiles.loc["SOL", ["factor", "beta", "corr"]].tolist() == ["ETH", 2.0, 0.86]
    returns = pd.DataFrame({s: f["close"].pct_change(fill_method=None) for s, f in hourly.items()})
    for symbol, p in profiles.iterrows():
        if p["factor"] is None:
            continue
        x, f = returns[symbol], returns[p["factor"]]
        assert x.cov(f) / f.var() == pytest.approx(p["beta"], abs=0.15), symbol
        # planted idiosyncratic moves (catch-ups, follow-throughs, fades, TD patterns) lower it a little
        assert x.corr(f) == pytest.approx(p["corr"], abs=0.06), symbol
        assert p["idio_vol"] == pytest.approx(
            p["beta"] * profiles.at[p["factor"], "vol"] * np.sqrt(1 / p["corr"] ** 2 - 1)
        )
        for window in (336, 720):  # 14 and 30 days of 1h returns
            corr = x.rolling(window).corr(f).median()
            beta = (x.rolling(window).cov(f) / f.rolling(window).var()).median()
            if p["kind"] == "high_beta":
                assert corr >= 0.75 and beta >= 1.7, (symbol, window, corr, beta)
            elif p["kind"] == "low_beta":
                assert corr >= 0.75 and beta <= 1.2, (symbol, window, corr, beta)
            elif p["kind"] == "low_corr":
                assert corr <= 0.6, (symbol, window, corr, beta)


def test_volume_reacts_to_moves(source: SyntheticSource, hourly: dict[str, pd.DataFrame]):
    notional = source.profiles()["notional"]
    for symbol, f in hourly.items():
        quote_volume = f["volume"] * f["close"] / notional[symbol]
        assert quote_volume.corr(np.log(f["close"]).diff().abs()) > 0.4, symbol
        assert 0.5 < quote_volume.median() < 2.0, symbol  # around the symbol's base level


def test_regimes_cover_the_window_and_shape_the_market(truth: pd.DataFrame, hourly: dict[str, pd.DataFrame]):
    regimes = truth[truth["kind"] == "regime"]
    assert regimes["time"].iloc[0] == pd.Timestamp("2024-01-02", tz="UTC")
    names = regimes["detail"].str.split(":").str[0]
    assert set(names) == {"trend_up", "trend_down", "chop"}
    ends = pd.to_datetime(regimes["detail"].str.extract(r"until (\S+)$")[0], utc=True)
    assert (ends.iloc[:-1].to_numpy() == regimes["time"].iloc[1:].to_numpy()).all()  # contiguous
    assert ends.iloc[-1] == pd.Timestamp("2026-01-01", tz="UTC")
    btc = np.log(hourly["BTC"]["close"]).diff()
    label = pd.Series(names.to_numpy(), index=regimes["time"]).reindex(btc.index, method="ffill")
    by = btc.groupby(label)
    assert by.mean()["trend_up"] > 0 > by.mean()["trend_down"]
    assert by.std()["chop"] > by.std()["trend_up"]


# ---------------------------------------------------------------- planted rotation episodes


def verify_rotation_truth(src: SyntheticSource, truth: pd.DataFrame, frames: dict[str, pd.DataFrame]) -> int:
    """Re-derive every apex breakout and every alt's role from the bars; return how many were checked."""
    cfg = src.cfg.apex
    rows = truth[truth["kind"].isin(ROLES)]
    role = {(r.time, r.timeframe, r.symbol, r.apex_asset): r.kind for r in rows.itertuples()}
    assert len(role) == len(rows)  # one role per (bar, alt, apex)
    checked = 0
    for tf, hours in HOURS.items():
        close, open_ = _panel(frames, tf, "close"), _panel(frames, tf, "open")
        move = (close / open_ - 1) * 100
        ret = close / close.shift(1) - 1
        w = cfg.corr_window_days * 24 // hours
        for apex in src.cfg.basket.apex_assets:
            hits = move.index[move[apex] >= cfg.move_threshold_pct]
            listed = truth[
                (truth["kind"] == "apex_breakout") & (truth["timeframe"] == tf) & (truth["symbol"] == apex)
            ]
            assert list(listed["time"]) == list(hits), (tf, apex)
            np.testing.assert_allclose(listed["value"], move.loc[hits, apex], rtol=1e-12)
            if not len(hits):
                continue
            var = ret[apex].rolling(w).var().shift(1)
            for alt in src.cfg.basket.alts:
                corr = ret[alt].rolling(w).corr(ret[apex]).shift(1)
                beta = ret[alt].rolling(w).cov(ret[apex]).shift(1) / var
                for t in hits:
                    m, c, b = move.at[t, alt], corr[t], beta[t]
                    if m > cfg.alt_lag_threshold_pct:
                        expected = "follower"
                    elif not c >= cfg.corr_min:
                        expected = "decoy_low_corr"
                    elif not b >= cfg.beta_min:
                        expected = "decoy_low_beta"
                    else:
                        expected = "laggard"
                    assert role.pop((t, tf, alt, apex)) == expected, (t, tf, alt, apex, m, c, b)
                    checked += 1
    assert not role  # no role row without a breakout behind it
    return checked


def test_every_apex_breakout_and_alt_role_follows_from_the_bars(
    source: SyntheticSource, truth: pd.DataFrame, hourly: dict[str, pd.DataFrame]
):
    assert list(truth.columns) == GROUND_TRUTH_COLUMNS
    breakouts = truth[truth["kind"] == "apex_breakout"]
    assert verify_rotation_truth(source, truth, hourly) == 15 * len(breakouts)
    assert set(breakouts["timeframe"]) == {"4h", "1d"}  # and no 1h bar ever moved 4 % (checked above)


def test_planted_episodes_have_named_laggards_decoys_and_followers(truth: pd.DataFrame):
    breakouts = truth[truth["kind"] == "apex_breakout"]
    assert breakouts["detail"].str.startswith("planted episode #").all()  # nothing unplanned broke out
    episodes = breakouts.groupby("detail")["time"].first().sort_values()
    assert len(episodes) == 25  # 730 days // 30-day slots, plus the open episode on the last day
    assert breakouts.drop_duplicates("detail")["timeframe"].value_counts().to_dict() == {"4h": 19, "1d": 6}
    gaps = episodes.diff().dropna()
    assert gaps.iloc[:-1].min() >= pd.Timedelta(days=29)  # room for the 14-day windows to recover
    assert gaps.iloc[-1] >= pd.Timedelta(days=15)  # the open episode's 14-day window misses the last slot's
    assert episodes.iloc[-1] == pd.Timestamp("2025-12-31T04:00:00Z")  # 04:00 on the last day: still open
    laggards = truth[truth["kind"] == "laggard"]
    assert laggards["detail"].str.endswith("planted as laggard").all()
    assert laggards.groupby("time").size().reindex(episodes.to_numpy()).fillna(0).min() >= 1  # each names one
    roles = truth[truth["kind"].isin(ROLES)]
    assert (roles["kind"] == roles["detail"].str.extract(r"planted as (\w+)$")[0]).all()
    counts = roles["kind"].value_counts()
    assert counts["decoy_low_corr"] >= 10 and counts["decoy_low_beta"] >= 10 and counts["follower"] >= 200
    assert (laggards["value"] <= 1.0 + 1e-9).all()  # clear of the 1.5 % lag threshold
    assert (roles.loc[roles["kind"] == "follower", "value"] >= 2.5 - 1e-9).all()


def test_laggards_catch_up_with_a_breakout_on_volume(
    source: SyntheticSource, truth: pd.DataFrame, hourly: dict[str, pd.DataFrame]
):
    lookback, volume_x = source.cfg.market_filters.breakout_lookback, source.cfg.market_filters.volume_x
    breakouts = truth[truth["kind"] == "breakout"]
    spikes = truth[truth["kind"] == "volume_spike"].set_index(["time", "symbol"])
    laggards = truth[truth["kind"] == "laggard"].drop_duplicates(["time", "symbol"])  # may lag BTC and ETH
    fades = truth[truth["kind"] == "fade"]
    assert len(breakouts) + len(fades) == len(laggards) and len(breakouts) == len(spikes)
    for row in breakouts.itertuples():
        bars = _resample(hourly[row.symbol], "4h")
        i = bars.index.get_loc(row.time)
        prior_high = bars["high"].iloc[i - lookback : i].max()
        assert bars["close"].iloc[i] > prior_high * 1.0099
        assert row.value == pytest.approx((bars["close"].iloc[i] / prior_high - 1) * 100)
        ratio = bars["volume"].iloc[i] / bars["volume"].iloc[i - lookback : i].mean()
        assert spikes.at[(row.time, row.symbol), "value"] == pytest.approx(ratio)
        assert ratio >= 2 * volume_x
        ema20 = bars["volume"].ewm(span=20, adjust=False).mean().iloc[i]
        assert bars["volume"].iloc[i] >= volume_x * ema20  # also by the confirmation filter's yardstick
        lagged = truth[
            (truth["kind"] == "laggard") & (truth["symbol"] == row.symbol) & (truth["time"] < row.time)
        ]
        assert row.time - lagged["time"].max() <= pd.Timedelta(days=1, hours=8)


# ---------------------------------------------------------------- TD Sequential, funding, open interest


def _setup_runs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Standard TD setup counts (down, up): a run starts on a price flip, lasts while the comparison holds."""
    down, up = np.zeros(len(x), int), np.zeros(len(x), int)
    for i in range(5, len(x)):
        if x[i] < x[i - 4]:
            down[i] = down[i - 1] + 1 if down[i - 1] else int(x[i - 1] > x[i - 5])
        if x[i] > x[i - 4]:
            up[i] = up[i - 1] + 1 if up[i - 1] else int(x[i - 1] < x[i - 5])
    return down, up


def test_td_sequences_where_planted(truth: pd.DataFrame, hourly: dict[str, pd.DataFrame]):
    """Buy rules on (close, low, high); a sell sequence is checked as a buy one of (−close, −high, −low)."""
    td = truth[truth["kind"].isin(["td_setup_9", "td_countdown_13"])]
    assert (td["kind"] == "td_countdown_13").sum() >= 20 and (td["kind"] == "td_setup_9").sum() >= 40
    for symbol, rows in td.groupby("symbol"):
        bars = _resample(hourly[symbol], "4h")
        c, h, lo = (bars[col].to_numpy() for col in ("close", "high", "low"))
        oriented = {"buy": (c, lo, h), "sell": (-c, -h, -lo)}
        runs = {side: _setup_runs(x) for side, (x, _, _) in oriented.items()}
        for row in rows.itertuples():
            i, side = bars.index.get_loc(row.time), row.detail.split()[0]
            (x, low, high), (same, other) = oriented[side], runs[side]
            if row.kind == "td_setup_9":
                assert same[i] == 9, (symbol, row.time)
                assert min(low[i - 1], low[i]) <= min(low[i - 3], low[i - 2])  # perfected
                assert row.value == c[i]
                continue
            setups = rows[(rows["kind"] == "td_setup_9") & (rows["time"] < row.time)]
            setups = setups[setups["detail"].str.startswith(side)]
            b = bars.index.get_loc(setups["time"].max())  # the setup this countdown counts from
            count, bar8 = 0, None
            for k in range(b, i + 1):
                if x[k] <= low[k - 2]:
                    if count == 12 and low[k] <= x[bar8]:
                        count = 13
                        assert k == i, (symbol, row.time)
                    elif count < 12:
                        count += 1
                        bar8 = k if count == 8 else bar8
            assert count == 13, (symbol, row.time)
            between = slice(b + 1, i + 1)
            # no opposite or new setup completes, the run never reaches 18 (no recycle, no cancellation) ...
            assert (other[between] != 9).all() and (same[between] != 9).all() and same[between].max() < 18
            # ... and no bar's true low clears the setup's highest true high (standard TDST cancellation)
            true_high = np.maximum(high[b - 8 : b + 1], x[b - 9 : b])
            true_low = np.minimum(low[b + 1 : i + 1], x[b:i])
            assert true_low.max() <= true_high.max(), (symbol, row.time)


def test_funding_is_hourly_and_flips_are_exactly_recorded(source: SyntheticSource, truth: pd.DataFrame):
    flips = truth[truth["kind"] == "funding_flip"]
    for symbol in source.cfg.basket.names:
        f = source.fetch_funding(symbol, *ALL_TIME)
        assert len(f) == 17_520 and list(f.columns) == ["time", "rate", "premium"]
        assert f["time"].iloc[0] == pd.Timestamp("2024-01-02 01:00", tz="UTC").value // 10**6  # paid at close
        np.testing.assert_allclose(f["premium"], f["rate"] - INTEREST)
        assert (f["rate"] != 0).all() and f["rate"].abs().max() < 0.001
        sign = np.sign(f["rate"].to_numpy())
        changed = np.flatnonzero(sign[1:] != sign[:-1]) + 1
        opens = pd.to_datetime(f["time"].to_numpy()[changed] - 3_600_000, unit="ms", utc=True)
        mine = flips[flips["symbol"] == symbol]
        assert list(mine["time"]) == list(opens) and len(mine) >= 10, symbol
        assert (mine["time"].dt.hour == 0).all()
        np.testing.assert_allclose(mine["value"], f["rate"].to_numpy()[changed] * 100)


def test_open_interest_history_and_planted_shifts(source: SyntheticSource, truth: pd.DataFrame):
    shifts = truth[truth["kind"] == "oi_shift"]
    assert len(shifts) == 49  # with each apex breakout (the open episode too), a flush on an alt per slot
    latest = source.fetch_open_interest(source.cfg.basket.names).set_index("symbol")
    for symbol in source.cfg.basket.names:
        oi = source.fetch_open_interest_history(symbol, *ALL_TIME)
        assert (
            list(oi.columns) == ["time", "open_interest"]
            and len(oi) == 17_520
            and (oi["open_interest"] > 0).all()
        )
        series = oi.set_index(pd.to_datetime(oi["time"], unit="ms", utc=True))["open_interest"]
        on_grid = series[series.index.hour % 4 == 0]
        change = (on_grid / on_grid.shift(1) - 1) * 100  # over the 4h bar that closes at each stamp
        change.index = change.index - pd.Timedelta(hours=4)  # label by the bar's open
        mine = shifts[shifts["symbol"] == symbol].set_index("time")["value"]
        np.testing.assert_allclose(change.reindex(mine.index), mine)
        assert (mine.abs() >= 10).all()
        assert (change.drop(mine.index).dropna().abs() < 5).all(), symbol  # nothing unplanted comes near
        assert latest.at[symbol, "open_interest"] == oi["open_interest"].iloc[-1]
        assert latest.at[symbol, "time"] == pd.Timestamp("2026-01-01", tz="UTC").value // 10**6
    assert latest.at["BTC", "mark_price"] == source.fetch_ohlcv("BTC", "1h", *ALL_TIME)["close"].iloc[-1]


# ---------------------------------------------------------------- any basket


def test_any_basket_works_and_its_truth_holds():
    cfg = load_config(
        overrides={
            "basket": {"symbols": ["BTC", "ETH", "FOO", "PEPE", "WIF", "ZZZ", "SOL", "BAR2"]},
            "synthetic": {"days": 150, "seed": 3},
        }
    )
    src = SyntheticSource(cfg)
    profiles = src.profiles()
    assert list(profiles.index) == cfg.basket.names
    assert profiles.loc["SOL", "beta"] == 2.0  # hand-set profile kept
    alone = SyntheticSource(
        load_config(overrides={"basket": {"symbols": ["BTC", "ETH", "PEPE"]}, "synthetic": {"seed": 3}})
    )
    assert alone.profiles().loc["PEPE"].equals(profiles.loc["PEPE"])  # drawn from seed + name only
    frames = _hourly(src)
    assert {len(f) for f in frames.values()} == {150 * 24}
    truth = src.ground_truth()
    assert verify_rotation_truth(src, truth, frames) > 0
    assert (truth["kind"] == "apex_breakout").sum() >= 5  # 5 slots


def test_single_apex_and_short_window():
    cfg = load_config(
        overrides={
            "basket": {"symbols": ["BTC", "SOL", "XYZ"], "apex_assets": ["BTC"]},
            "synthetic": {"days": 30},
        }
    )
    src = SyntheticSource(cfg)
    truth = src.ground_truth()
    frames = _hourly(src)
    assert verify_rotation_truth(src, truth, frames) == 2 * (truth["kind"] == "apex_breakout").sum()
    assert (truth["kind"] == "apex_breakout").sum() == 1
    assert src.profiles().loc["SOL", "factor"] == "BTC"  # ETH is not in this basket


def test_confirmed_laggards_follow_through_and_the_others_fade(
    source: SyntheticSource, truth: pd.DataFrame, hourly: dict[str, pd.DataFrame]
):
    """The planted edge: after its catch-up bar a laggard keeps catching up (+10-14 % over 4 bars after a
    0.8 % dip); a gate-passing laggard that fades slides 8-12 % over the 7 bars after its trigger with no
    close above the prior high after the trigger bar (its confirmation watch expires)."""
    lookback = source.cfg.market_filters.breakout_lookback

    def facts(kind: str) -> set:
        rows = truth[truth["kind"] == kind]
        return set(zip(rows["time"], rows["symbol"], strict=True))

    catchups, laggards = facts("breakout"), facts("laggard")
    follow, fades = truth[truth["kind"] == "follow_through"], truth[truth["kind"] == "fade"]
    assert len(follow) >= 40 and len(fades) >= 15
    step = pd.Timedelta(hours=4)
    for row in follow.itertuples():
        bars = _resample(hourly[row.symbol], "4h")
        i = bars.index.get_loc(row.time)
        assert (row.time - step, row.symbol) in catchups  # right after the catch-up (confirmation) bar
        change = (bars["close"].iloc[i + 3] / bars["close"].iloc[i - 1] - 1) * 100
        assert row.value == pytest.approx(change) and 9.0 <= change <= 15.0
        assert bars["low"].iloc[i] < bars["close"].iloc[i - 1]  # the dip fills a limit at the signal close
    for row in fades.itertuples():
        bars = _resample(hourly[row.symbol], "4h")
        i = bars.index.get_loc(row.time)
        trigger = [
            t for t, sym in laggards if sym == row.symbol and row.time - pd.Timedelta(days=1) <= t < row.time
        ]
        assert trigger  # it starts right after its trigger bar (a 4h bar, or a 1d bar's last 4 hours)
        change = (bars["close"].iloc[i + 6] / bars["close"].iloc[i - 1] - 1) * 100
        assert row.value == pytest.approx(change) and -13.0 <= change <= -7.0
        for k in range(i, i + 6):  # the rest of its watch window: no breakout
            assert bars["close"].iloc[k] <= bars["high"].iloc[k - lookback : k].max()
