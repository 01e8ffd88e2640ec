"""The research harness (apex_rotation/research/): the live stages reused, metrics that recompute by hand and
agree with empyrical, byte-identical exports, the lift statistics finding a planted edge and not a placebo,
the lookahead analysis, and the CLI / Dagster entry points."""

from __future__ import annotations

import gc
import subprocess
import sys
import weakref
from pathlib import Path
from types import SimpleNamespace

import empyrical
import numpy as np
import pandas as pd
import pytest

from apex_rotation.cli import main
from apex_rotation.config import load_config
from apex_rotation.ingest.registry import make_source
from apex_rotation.research import lookahead, metrics, walkforward
from apex_rotation.research.backtest import lift_markdown, run_backtest, summary_table
from apex_rotation.research.engine import ABLATIONS, Universe, ablate, gc_paused
from apex_rotation.research.lift import block_indices, lift_row, resampled_sums
from apex_rotation.signals import rotation, scoring, watching
from apex_rotation.signals.scanning import scan_timeframe
from apex_rotation.store.parquet import ParquetStore
from apex_rotation.store.refresh import StoreRefresher
from apex_rotation_tests.shared import GENETRADER_2024, requires_shared

SYMBOLS = ["BTC", "ETH", "SOL", "OP", "ARB", "APT", "AVAX", "LINK"]
OVERRIDES = {
    "synthetic": {"days": 365},
    "basket": {"symbols": SYMBOLS},
    "research": {
        "timeframes": ["4h"],
        "splits": {"train_days": 60, "test_days": 30, "step_days": 30},
        "grid": {"apex.move_threshold_pct": [3.0, 4.0]},
        "ablations": ["use_td", "corr_beta", "use_volume_x2"],
        "bootstrap_samples": 200,
        "plots": False,
    },
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A year of the synthetic market, eight symbols, refreshed into a store (features computed by the
    harness on first use)."""
    cfg = load_config(overrides=OVERRIDES)
    store = ParquetStore(tmp_path_factory.mktemp("store"))
    with StoreRefresher(cfg, store, make_source(cfg, "synthetic")) as refresher:
        refresher.refresh_all(cfg.basket.names, ["1h", "4h", "1d"])
    return cfg, store


@pytest.fixture(scope="module")
def result(small, tmp_path_factory):
    cfg, store = small
    return run_backtest(cfg, store, out=tmp_path_factory.mktemp("out"))


def test_the_harness_trades_what_the_live_stages_score(small):
    """Universe.run under the configured gates = the live scan → confirmations → scores stages on the store."""
    cfg, store = small
    universe = Universe.load(cfg, store, "4h")
    run = universe.run(universe.cfg)
    scan_timeframe(cfg, store, "4h")
    watching.confirm_history(cfg, store, "4h")
    live = scoring.score_timeframe(cfg, store, "4h")
    mine = scoring.scores_frame(run.signals)
    key = ["signal_id", "score", "fired", "suppressed", "plan_entry", "plan_stop", "plan_target"]
    pd.testing.assert_frame_equal(
        mine[key].sort_values("signal_id").reset_index(drop=True),
        live[key].sort_values("signal_id").reset_index(drop=True),
    )
    assert run.trades["alert_id"].tolist() == [s.signal_id for s in run.signals if s.fired]


def test_runs_sharing_the_composers_memos_equal_plain_compositions(small):
    """One universe runs every ablation (sharing scans, watches, compositions and `score.evidence` between
    configs); each run's signals equal the live functions' (scan_history, watch_candidates, the contexts,
    compose_in_order with the plain `score.compose`) on that config alone."""
    cfg, store = small
    shared = Universe.load(cfg, store, "4h")
    variants = [ablate(shared.cfg, off) for off in (None, *ABLATIONS)]
    runs = [shared.run(variant, td13) for variant, td13 in variants]
    frames = shared.signal_frames()
    apex = {a: frames[a] for a in cfg.basket.apex_assets}
    for (variant, td13), run in zip(variants, runs, strict=True):
        candidates = rotation.candidates_from_history(
            rotation.scan_history(apex, frames, variant, timeframe="4h")
        )
        filters = variant.market_filters
        watches = watching.watch_candidates(candidates, frames, filters, filters.confirm_window_bars)
        inputs = scoring.Inputs(variant, store, "4h", shared.frames)
        contexts = scoring.rotation_contexts(inputs, watches)
        if td13:
            contexts += scoring.td13_contexts(inputs, shared.symbols)
        plain = scoring.compose_in_order(contexts)
        assert len(plain) == len(run.signals) > 0
        assert sorted(plain, key=lambda s: s.signal_id) == sorted(run.signals, key=lambda s: s.signal_id)


def test_window_metrics_from_the_runs_book_equal_summarizing_its_window(small):
    """walk_forward scores the train windows and summarizes the test folds from the run's `Book`: the same
    numbers as `summarize` on the window's trades (`in_window`) over that window."""
    cfg, store = small
    universe = Universe.load(cfg, store, "4h")
    run, grid = universe.run(universe.cfg), universe.grid_index()
    book = universe.book(run)
    checked = 0
    for fold in walkforward.folds(grid, cfg):
        for window in (fold.train, fold.test):
            trades = walkforward.in_window(run.trades, window)
            got = metrics.summarize_window(book, grid, window, cfg.sim.equity, "4h")
            want, _ = metrics.summarize(trades, grid, universe.closes(), window, cfg.sim.equity, "4h")
            assert pd.Series(got).equals(pd.Series(want))
            checked += len(metrics.filled(trades))
    assert checked > 0


def test_gc_paused_restores_the_collector_and_leaves_its_cycles_collectable():
    """gc_paused promotes what its block left alive to the oldest generation, frozen nowhere: a cycle made
    in the block outlives it (reference counting cannot free it) and the next full collection frees it."""

    class Node:
        pass

    enabled = gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        node = Node()
        node.me = node
        ref = weakref.ref(node)
        del node
    assert gc.isenabled() == enabled and gc.get_freeze_count() == 0
    assert ref() is not None
    gc.collect()
    assert ref() is None


def test_ablations_switch_one_filter_off(small):
    cfg, _ = small
    off, td = ablate(cfg, "use_volume_x2")
    assert td and "volume_spike" not in off.market_filters.rule and off.score.market.volume_spike == 0
    assert off.score.alert_threshold == cfg.score.alert_threshold - cfg.score.market.volume_spike
    off, td = ablate(cfg, "use_td")
    assert not td and off.score.td.countdown_13 == 0
    off, _ = ablate(cfg, "corr_beta")
    assert off.apex.corr_min == 0.01 and off.apex.beta_min == 0.01


def test_summary_recomputes_by_hand_from_the_exports(result):
    trades = pd.read_csv(result.files["trades"])
    equity = pd.read_csv(result.files["equity"])
    summary = pd.read_csv(result.files["summary"])
    cfg_equity = 10_000.0
    for config in ("full", "no_use_td"):
        t = trades[trades["config"] == config]
        e = equity[equity["config"] == config]
        row = summary[(summary["config"] == config) & (summary["scope"] == "overall")].iloc[0]
        r = t["pnl_r"]
        assert row["trades"] == len(t) > 0
        assert row["hit_rate"] == pytest.approx((r > 0).mean())
        assert row["mean_r"] == pytest.approx(r.mean())
        assert row["profit_factor"] == pytest.approx(r[r > 0].sum() / -r[r < 0].sum())
        money = t["return_pct"] / 100 * t["entry_price"] * t["size"]
        assert row["total_return"] == pytest.approx(money.sum() / cfg_equity, abs=1e-9)
        assert e["equity"].iloc[-1] == pytest.approx(cfg_equity + money.sum())
        ret = e["equity"].diff().fillna(e["equity"].iloc[0] - cfg_equity) / e["equity"].shift(1).fillna(
            cfg_equity
        )
        np.testing.assert_allclose(ret, e["return"], atol=1e-12)
        assert row["sharpe"] == pytest.approx(ret.mean() / ret.std(ddof=1) * np.sqrt(2190))
        peak = np.maximum.accumulate(np.r_[cfg_equity, e["equity"]])[1:]
        assert row["max_drawdown"] == pytest.approx((e["equity"] / peak - 1).min())
        assert row["exposure"] == pytest.approx((e["open_positions"] > 0).mean())
        # a kept library agrees: empyrical's Sharpe (ddof=1, 4h bars a year) and drawdown of the returns
        assert row["sharpe"] == pytest.approx(empyrical.sharpe_ratio(e["return"], annualization=2190))
        assert row["max_drawdown"] == pytest.approx(empyrical.max_drawdown(e["return"]))
    per_fold = summary[(summary["config"] == "full") & (summary["scope"] != "overall")]
    assert per_fold["trades"].sum() == len(trades[trades["config"] == "full"])
    assert set(trades["fold"]) <= set(range(1, len(per_fold) + 1))
    assert {
        "entry_time",
        "exit_time",
        "mfe_pct",
        "mae_pct",
        "bars_held",
        "exit_reason",
        "archetype",
        "regime",
    } <= set(trades.columns)


def test_tables_print(result):
    assert "| 4h | full |" in summary_table(result.summary)
    text = lift_markdown(result.lift)
    assert "use_td" in text and "placebo" in text and "timing" in text


def test_exports_are_byte_identical_across_processes(small, result, tmp_path):
    _cfg, store = small
    script = (
        "import sys; from apex_rotation.config import load_config; from apex_rotation.store.parquet import "
        "ParquetStore; from apex_rotation.research.backtest import run_backtest; "
        f"from apex_rotation_tests.test_research_backtest import OVERRIDES; "
        f"run_backtest(load_config(overrides=OVERRIDES), ParquetStore({str(store.root)!r}), out={str(tmp_path)!r})"
    )
    subprocess.run([sys.executable, "-c", script], check=True, cwd=Path(__file__).resolve().parents[1])
    for name in ("trades", "summary", "lift", "equity", "picks", "counts"):
        assert (tmp_path / f"{name}.csv").read_bytes() == result.files[name].read_bytes(), name


# ---------------------------------------------------------------- the lift statistics


def _planted(rng, n_days, mean_r, per_day=2, start="2024-01-01"):
    """Trades (2 a day, R ~ N(mean_r, 1)) and their equity series on a 4h grid (each trade's PnL booked on
    its entry bar at 1 % of equity per R)."""
    grid = pd.date_range(start, periods=n_days * 6, freq="4h", tz="UTC")
    entry = np.sort(rng.choice(len(grid), n_days * per_day, replace=False))
    r = rng.normal(mean_r, 1.0, entry.size)
    trades = pd.DataFrame({"entry_price": 1.0, "entry_time": grid[entry], "pnl_r": r})
    pnl = np.zeros(len(grid))
    np.add.at(pnl, entry, r * 100.0)
    equity, returns = metrics.equity_curve(pnl, 10_000.0)
    series = pd.DataFrame({"equity": equity, "return": returns}, index=grid + pd.Timedelta(hours=4))
    return trades, series


def test_lift_row_bootstrap_on_artificial_trades():
    """The bootstrap alone, on artificial trades: a filter that keeps the trades with an edge (mean +0.4 R)
    and drops a flow of losers (−0.4 R) shows a lift whose interval lies above 0; two chance timings (same
    distribution) show an interval around 0. (The market-level check is the next test.)"""
    cfg = load_config(overrides={"research": {"bootstrap_samples": 500}})
    stub = SimpleNamespace(cfg=cfg, timeframe="4h")
    rng = np.random.default_rng(5)
    good = _planted(rng, 240, 0.4)
    bad = _planted(rng, 240, -0.4)
    without = (
        pd.concat([good[0], bad[0]]),
        good[1].assign(**{"return": good[1]["return"] + bad[1]["return"]}),
    )
    row = lift_row("planted", good, without, stub, seed=1)
    assert row["d_mean_r_lo"] > 0 and row["d_hit_rate_lo"] > 0 and row["d_sharpe_lo"] > 0
    assert row["d_trades"] == -len(bad[0])
    placebo = lift_row("placebo", _planted(rng, 240, 0.0), _planted(rng, 240, 0.0), stub, seed=2)
    for m in ("sharpe", "hit_rate", "mean_r"):
        assert placebo[f"d_{m}_lo"] < 0 < placebo[f"d_{m}_hi"], m


def test_resampled_sums_are_bitwise_numpys_gather_and_sum():
    """The bootstrap's loop adds the days in numpy's order: the same sums to the last bit, hence the same
    intervals as `daily[idx].sum(1)`."""
    rng = np.random.default_rng(3)
    for days in (1, 7, 541):
        daily = rng.standard_normal((days, 6)) * 10 ** rng.uniform(-8, 3, (days, 6))
        daily[:, 0] = rng.integers(0, 7, days)
        idx = block_indices(days, 5, 300, rng)
        assert np.array_equal(resampled_sums(daily, idx), daily[idx].sum(1))


EDGE_OVERRIDES = {
    "synthetic": {"days": 730},
    "basket": {"symbols": SYMBOLS},
    "td": {"htf": "1d"},  # no TD 13 stream on 4h: the rotation trades alone, the archetype the edge is in
    "research": {
        "timeframes": ["4h"],
        "splits": {"train_days": 60, "test_days": 30, "step_days": 30},
        "grid": {"apex.move_threshold_pct": [3.0, 4.0]},
        "ablations": ["confirmation"],
        "bootstrap_samples": 200,
        "plots": False,
    },
}


def test_the_synthetic_markets_planted_edge_is_found_by_the_confirmation_filter(tmp_path):
    """The synthetic market plants an edge (docs/synthetic-market.md): confirmed laggards keep catching up
    after their confirmation bar (`follow_through`), while other gate-passing laggards fade without a breakout
    (`fade`). Out of sample, the confirmation filter's lift is positive with its interval above 0; the
    placebo (one shuffle vs another) has intervals containing 0."""
    cfg = load_config(overrides=EDGE_OVERRIDES)
    store = ParquetStore(tmp_path / "store")
    with StoreRefresher(cfg, store, make_source(cfg, "synthetic")) as refresher:
        refresher.refresh_all(cfg.basket.names, ["1h", "4h", "1d"])
    truth = make_source(cfg, "synthetic").ground_truth()
    assert (truth["kind"] == "follow_through").sum() >= 20 and (truth["kind"] == "fade").sum() >= 10
    result = run_backtest(cfg, store, out=tmp_path / "out")
    lift = result.lift.set_index("filter")
    edge = lift.loc["confirmation"]
    assert edge["d_sharpe"] > 0 and edge["d_sharpe_lo"] > 0, edge
    assert edge["d_hit_rate"] > 0 and edge["d_hit_rate_lo"] > 0, edge
    assert edge["d_mean_r"] > 0 and edge["d_mean_r_lo"] > 0, edge
    placebo = lift.loc["placebo"]
    for m in ("sharpe", "hit_rate", "mean_r"):
        assert placebo[f"d_{m}_lo"] < 0 < placebo[f"d_{m}_hi"], m
    trades = result.trades[result.trades["config"] == "full"]
    assert set(trades["archetype"]) == {"rotation"} and (trades["pnl_r"] > 0).mean() > 0.8


def test_the_synthetic_run_has_its_placebo_rows(result):
    lift = result.lift.set_index("filter")
    assert {"use_td", "corr_beta", "use_volume_x2", "timing", "placebo"} <= set(lift.index)
    assert lift.loc["placebo", "d_trades"] == 0  # the same number of entries, shuffled
    assert lift.loc["use_td", "d_trades"] > 0


# ---------------------------------------------------------------- lookahead, CLI


def test_lookahead_finds_nothing_and_catches_a_planted_leak(small, monkeypatch):
    cfg, store = small
    sub = cfg.model_copy(update={"basket": cfg.basket.model_copy(update={"symbols": cfg.basket.symbols[:4]})})
    changes, compared = lookahead.analyse(sub, store, ["4h"], cuts=1)
    assert compared > 0 and changes == []
    real = lookahead.build_features

    def leaky(bars, **kw):
        out = real(bars, **kw)
        out["rsi"] = out["rsi"].shift(-1)  # tomorrow's RSI today
        return out

    monkeypatch.setattr(lookahead, "build_features", leaky)
    changes, _ = lookahead.analyse(sub, store, ["4h"], cuts=1)
    assert any(c.table == "features" and c.column == "rsi" for c in changes)


def test_cli_backtest_prints_the_tables(small, tmp_path, capsys, monkeypatch):
    _cfg, store = small
    config = tmp_path / "cfg.yaml"
    import yaml

    raw = yaml.safe_load(Path("configs/default.yaml").read_text())
    for key, value in OVERRIDES.items():
        raw[key] = {**raw.get(key, {}), **value}
    raw["research"]["ablations"] = ["corr_beta"]
    config.write_text(yaml.safe_dump(raw))
    code = main(
        [
            "backtest",
            "--config",
            str(config),
            "--store",
            str(store.root),
            "--out",
            str(tmp_path / "o"),
            "--no-plots",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "Out-of-sample summary" in out and "| 4h | full |" in out and "corr_beta" in out
    assert (tmp_path / "o" / "lift.csv").exists()


@requires_shared
def test_real_2024_binance_walk_forward(tmp_path):
    """The files source fills a store from the real 2024 candles; the harness runs two folds on it."""
    overrides = {
        **OVERRIDES,
        "basket": {"symbols": ["BTC", "ETH", "SOL", "OP", "ARB", "APT"]},
        "research": {**OVERRIDES["research"], "ablations": ["corr_beta"], "splits": {"max_folds": 2}},
    }
    cfg = load_config(overrides=overrides)
    store = ParquetStore(tmp_path / "store")
    source = make_source(cfg, "files", data_dir=str(GENETRADER_2024))
    with StoreRefresher(cfg, store, source) as refresher:
        refresher.refresh_all(cfg.basket.names, ["1h", "4h", "1d"])
    res = run_backtest(cfg, store, out=tmp_path / "out")
    full = res.summary[(res.summary["config"] == "full")]
    assert list(full["scope"]) == ["fold 1", "fold 2", "overall"]
    assert res.counts.iloc[0]["days"] > 240
    trades = pd.read_csv(res.files["trades"])
    assert (pd.to_datetime(trades["entry_time"]) >= pd.Timestamp("2024-07-29", tz="UTC")).all()
