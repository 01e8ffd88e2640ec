"""Rolling corr/beta: pandas and two-pass oracles on real returns, NaN rules, properties, no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from apex_rotation.features.correlation import corr_beta_table, rolling_corr_beta
from apex_rotation_tests.shared import real_feather, requires_shared

SYMBOLS = [
    "BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ",
    "AVAX", "MATIC", "XRP", "LTC", "DOGE", "SUI", "SEI", "TIA",
]  # fmt: skip


def real_returns(tf: str) -> pd.DataFrame:
    """Log returns of all 17 closes on the union index (BTC, ETH, LTC end ~22 h early: a NaN tail)."""
    closes = {s: pd.read_feather(real_feather(s, tf)).set_index("date")["close"] for s in SYMBOLS}
    return np.log(pd.DataFrame(closes)).diff()


def pandas_corr_beta(
    returns: pd.DataFrame, bench: pd.Series, window: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    roll = returns.rolling(window)
    return roll.corr(bench), roll.cov(bench).div(bench.rolling(window).var(), axis=0)


def two_pass(x: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """corr and beta of each column of one window, centred first (the accurate textbook way)."""
    xc, bc = x - x.mean(axis=0), b - b.mean()
    cov = bc @ xc
    return cov / np.sqrt((xc * xc).sum(axis=0) * (bc @ bc)), cov / (bc @ bc)


# --------------------------------------------------------------------------------------------------------
# Oracles on real returns
# --------------------------------------------------------------------------------------------------------


@requires_shared
@pytest.mark.parametrize(("tf", "windows"), [("1h", (336, 720)), ("4h", (84, 180)), ("1d", (14, 30))])
def test_equals_pandas_rolling_on_real_returns(tf: str, windows: tuple[int, int]) -> None:
    returns = real_returns(tf)
    for bench in ("BTC", "ETH"):
        for w in windows:
            corr, beta = rolling_corr_beta(returns, returns[bench], w)
            want_corr, want_beta = pandas_corr_beta(returns, returns[bench], w)
            for got, want in ((corr, want_corr), (beta, want_beta)):
                assert got.index.equals(returns.index) and list(got.columns) == SYMBOLS
                np.testing.assert_array_equal(got.isna().to_numpy(), want.isna().to_numpy())
                np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), atol=1e-10, equal_nan=True)
            assert corr.notna().to_numpy().sum() > 0.8 * corr.size


@requires_shared
def test_cumulative_sums_are_accurate_to_1e_13_on_real_returns() -> None:
    """Plain cumulative sums are safe on returns: against a centred two-pass per window, error ~1e-13."""
    returns = real_returns("1h").iloc[:5900]  # before the NaN tail of the benchmarks
    x, b = returns.to_numpy(), returns["BTC"].to_numpy()
    for w in (336, 720):
        corr, beta = rolling_corr_beta(x, b, w)
        worst_corr = worst_beta = 0.0
        for t in range(w, len(x), 37):  # row 0 is the NaN of the first return
            want_corr, want_beta = two_pass(x[t - w + 1 : t + 1], b[t - w + 1 : t + 1])
            worst_corr = max(worst_corr, np.abs(corr[t] - want_corr).max())
            worst_beta = max(worst_beta, np.abs(beta[t] - want_beta).max())
        assert worst_corr < 3e-13 and worst_beta < 5e-13, (w, worst_corr, worst_beta)


# --------------------------------------------------------------------------------------------------------
# Hand-built, exact
# --------------------------------------------------------------------------------------------------------


def test_hand_values() -> None:
    b = np.array([1.0, 2.0, 3.0, 5.0, 4.0])
    # Window 3 ending at bar 2: b = 1, 2, 3 (deviations −1, 0, 1) and x = 1, 3, 2 (−1, 1, 0):
    # cov sum 1, var sums 2 and 2 → beta 0.5, corr 0.5.
    x = np.array([[1.0, 2.0, -1.0], [3.0, 4.0, -2.0], [2.0, 6.0, -3.0], [0.0, 10.0, -5.0], [0.0, 8.0, -4.0]])
    corr, beta = rolling_corr_beta(x, b, 3)
    np.testing.assert_array_equal(corr[:2], np.nan)
    np.testing.assert_array_equal(beta[:2], np.nan)
    assert beta[2, 0] == 0.5 and corr[2, 0] == pytest.approx(0.5, rel=1e-15)
    np.testing.assert_allclose(corr[2:, 1], 1.0, rtol=1e-15)  # x = 2b: corr 1, beta 2
    np.testing.assert_array_equal(beta[2:, 1], 2.0)
    np.testing.assert_allclose(corr[2:, 2], -1.0, rtol=1e-15)  # x = −b: corr −1, beta −1
    np.testing.assert_array_equal(beta[2:, 2], -1.0)


def test_no_value_across_a_missing_bar_gap_and_late_listing() -> None:
    rng = np.random.default_rng(5)
    b = rng.normal(0.0, 0.01, 20)
    x = np.column_stack([b * 1.5 + rng.normal(0.0, 0.005, 20) for _ in range(3)])
    x[:6, 1] = np.nan  # listed at bar 6
    x[10, 2] = np.nan  # one missing bar
    w = 4
    corr, beta = rolling_corr_beta(x, b, w)
    defined = ~np.isnan(corr)
    np.testing.assert_array_equal(defined, ~np.isnan(beta))
    np.testing.assert_array_equal(np.flatnonzero(defined[:, 0]), np.arange(3, 20))
    np.testing.assert_array_equal(np.flatnonzero(defined[:, 1]), np.arange(9, 20))  # bars 6..9 first
    np.testing.assert_array_equal(np.flatnonzero(defined[:, 2]), [*range(3, 10), *range(14, 20)])
    # The gap leaves no trace: after it, values equal a fresh computation on the bars after the gap.
    after_corr, after_beta = rolling_corr_beta(x[11:, 2], b[11:], w)
    np.testing.assert_allclose(corr[14:, 2], after_corr[3:], rtol=1e-12)
    np.testing.assert_allclose(beta[14:, 2], after_beta[3:], rtol=1e-12)
    # A missing benchmark bar blanks every symbol for the windows holding it.
    b_gap = b.copy()
    b_gap[15] = np.nan
    corr_g, _ = rolling_corr_beta(x, b_gap, w)
    assert np.isnan(corr_g[15:19]).all() and np.isfinite(corr_g[19, 0])


def test_flat_series() -> None:
    b = np.array([0.01, -0.02, 0.015, 0.0, 0.01, -0.01, 0.02, 0.005])
    x = np.zeros((8, 1))  # a coin that did not trade: no correlation, beta 0
    corr, beta = rolling_corr_beta(x, b, 4)
    assert np.isnan(corr).all()
    np.testing.assert_array_equal(beta[3:], 0.0)
    corr, beta = rolling_corr_beta(b[:, None], np.full(8, 0.003), 4)  # constant benchmark: both undefined
    assert np.isnan(corr).all() and np.isnan(beta).all()


def test_window_longer_than_series_is_all_nan() -> None:
    corr, beta = rolling_corr_beta(np.ones((5, 2)), np.arange(5.0), 6)
    assert corr.shape == beta.shape == (5, 2) and np.isnan(corr).all() and np.isnan(beta).all()


# --------------------------------------------------------------------------------------------------------
# corr_beta_table
# --------------------------------------------------------------------------------------------------------


@requires_shared
@pytest.mark.parametrize(("tf", "bars_14d"), [("1h", 336), ("4h", 84), ("1d", 14)])
def test_table_names_and_day_to_bar_conversion(tf: str, bars_14d: int) -> None:
    returns = real_returns(tf)
    table = corr_beta_table(returns, timeframe=tf)
    assert sorted(table) == sorted(
        f"{kind}_{bench}_{days}" for kind in ("corr", "beta") for bench in ("btc", "eth") for days in (14, 30)
    )
    corr, beta = rolling_corr_beta(returns, returns["ETH"], bars_14d)
    pd.testing.assert_frame_equal(table["corr_eth_14"], corr)
    pd.testing.assert_frame_equal(table["beta_eth_14"], beta)
    _, beta_btc_30 = rolling_corr_beta(returns, returns["BTC"], 30 * bars_14d // 14)
    pd.testing.assert_frame_equal(table["beta_btc_30"], beta_btc_30)
    assert table["corr_btc_14"]["SOL"].first_valid_index() == returns.index[bars_14d]  # row 0 has no return
    np.testing.assert_allclose(table["beta_btc_14"]["BTC"].dropna(), 1.0, rtol=1e-12)


def test_table_rejects_missing_bench_and_off_grid_index() -> None:
    idx = pd.date_range("2024-01-01", periods=50, freq="1h", tz="UTC")
    values = np.random.default_rng(1).normal(0, 0.01, (50, 2))
    returns = pd.DataFrame(values, index=idx, columns=["BTC", "SOL"])
    with pytest.raises(KeyError, match="ETH"):
        corr_beta_table(returns)
    with pytest.raises(ValueError, match="one row per 1h bar"):
        corr_beta_table(returns.drop(idx[10]), benches=("BTC",), windows_days=(1,))
    with pytest.raises(ValueError, match="one row per 4h bar"):
        corr_beta_table(returns, benches=("BTC",), windows_days=(1,), timeframe="4h")


# --------------------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------------------

# Returns on a 0.001 grid (and NaNs): realistic magnitudes, and "constant in a window" is unambiguous.
returns_arrays = hnp.arrays(
    np.float64,
    st.integers(4, 60),
    elements=st.one_of(st.integers(-200, 200).map(lambda k: k / 1000), st.just(np.nan)),
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(b=returns_arrays, data=st.data())
def test_properties(b: np.ndarray, data: st.DataObject) -> None:
    w = data.draw(st.integers(2, len(b)))
    x = data.draw(hnp.arrays(np.float64, (len(b), 2), elements=st.floats(-0.2, 0.2, allow_subnormal=False)))
    corr, _ = rolling_corr_beta(x, b, w)
    ok = ~np.isnan(corr)
    assert np.all((corr[ok] >= -1.0) & (corr[ok] <= 1.0))

    corr_bb, beta_bb = rolling_corr_beta(b, b, w)
    _, beta_2b = rolling_corr_beta(2.0 * b, b, w)
    defined = ~np.isnan(beta_bb)
    np.testing.assert_array_equal(beta_bb[defined], 1.0)
    np.testing.assert_array_equal(beta_2b[defined], 2.0)
    np.testing.assert_array_equal(np.isnan(beta_2b), ~defined)
    np.testing.assert_allclose(corr_bb[defined], 1.0, rtol=1e-12)

    # A window is defined exactly when it holds no NaN and the benchmark moves in it.
    windows = np.lib.stride_tricks.sliding_window_view(b, w)
    moves = np.array([np.isfinite(v).all() and np.ptp(v) > 0 for v in windows])
    np.testing.assert_array_equal(defined[w - 1 :], moves)
    assert not defined[: w - 1].any()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(b=returns_arrays, data=st.data())
def test_truncation_after_t_leaves_rows_up_to_t_unchanged(b: np.ndarray, data: st.DataObject) -> None:
    assume(len(b) >= 5)
    w = data.draw(st.integers(2, 5))
    t = data.draw(st.integers(0, len(b) - 1))
    x = np.column_stack([b * 0.5 + 0.001, np.roll(b, 1)])
    full = rolling_corr_beta(x, b, w)
    cut = rolling_corr_beta(x[: t + 1], b[: t + 1], w)
    for f, c in zip(full, cut, strict=True):
        np.testing.assert_array_equal(c, f[: t + 1])


@requires_shared
def test_truncation_on_real_returns() -> None:
    returns = real_returns("4h")
    full = corr_beta_table(returns, timeframe="4h")
    for t in (83, 84, 500, 1200):
        cut = corr_beta_table(returns.iloc[: t + 1], timeframe="4h")
        for name, frame in full.items():
            pd.testing.assert_frame_equal(cut[name], frame.iloc[: t + 1])
