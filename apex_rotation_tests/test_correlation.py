"""Rolling corr/beta: pandas, two-pass and loop oracles (real returns, gaps, the coverage boundary), NaN
rules, properties, no lookahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from apex_rotation.features.correlation import corr_beta_table, min_valid_pairs, rolling_corr_beta
from apex_rotation_tests.corr_oracles import first_finite, loop_corr_beta, pandas_corr_beta
from apex_rotation_tests.shared import real_feather, requires_shared

SYMBOLS = [
    "BTC", "ETH", "SOL", "LINK", "ARB", "OP", "APT", "HBAR", "INJ",
    "AVAX", "MATIC", "XRP", "LTC", "DOGE", "SUI", "SEI", "TIA",
]  # fmt: skip


def real_returns(tf: str) -> pd.DataFrame:
    """Log returns of all 17 closes on the union index (BTC, ETH, LTC end ~22 h early: a NaN tail)."""
    closes = {s: pd.read_feather(real_feather(s, tf)).set_index("date")["close"] for s in SYMBOLS}
    return np.log(pd.DataFrame(closes)).diff()


def two_pass(x: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """corr and beta of each column of one window, centred first (the accurate textbook way)."""
    xc, bc = x - x.mean(axis=0), b - b.mean()
    cov = bc @ xc
    return cov / np.sqrt((xc * xc).sum(axis=0) * (bc @ bc)), cov / (bc @ bc)


# --------------------------------------------------------------------------------------------------------
# Oracles on real returns
# --------------------------------------------------------------------------------------------------------


@requires_shared
@pytest.mark.parametrize("min_coverage", [1.0, 0.9])
@pytest.mark.parametrize(("tf", "windows"), [("1h", (336, 720)), ("4h", (84, 180)), ("1d", (14, 30))])
def test_equals_pandas_rolling_on_real_returns(
    tf: str, windows: tuple[int, int], min_coverage: float
) -> None:
    """1.0 is plain pandas rolling (any NaN blanks a window); 0.9 adds the NaN tail of BTC/ETH/LTC (22 1h
    bars, 5 4h, 1 1d), which pandas drops pair by pair (min_periods)."""
    returns = real_returns(tf)
    for bench in ("BTC", "ETH"):
        for w in windows:
            corr, beta = rolling_corr_beta(returns, returns[bench], w, min_coverage)
            want_corr, want_beta = pandas_corr_beta(returns, returns[bench], w, min_coverage)
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


# --------------------------------------------------------------------------------------------------------
# Gap-aware: pairs where both returns exist, a minimum coverage
# --------------------------------------------------------------------------------------------------------


def gappy_returns(n: int = 900, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A benchmark and 4 correlated series with the defects of real history: the first return missing,
    single missing bars (a filled hour costs two returns), outages of 3-40 bars, a late listing, an inf."""
    rng = np.random.default_rng(seed)
    b = rng.normal(0.0, 0.01, n)
    x = np.column_stack([beta * b + rng.normal(0.0, 0.01, n) for beta in (0.5, 1.0, 1.5, 2.0)])
    x[0], b[0] = np.nan, np.nan
    b[[150, 151, 400]] = np.nan
    x[[60, 61, 300, 301, 302, 700], 0] = np.nan
    x[200:240, 1] = np.nan  # a 40-bar outage: too long for any window below
    x[:120, 2] = np.nan  # listed late
    x[500:503, 2], x[650, 2] = np.nan, np.inf
    x[rng.random(n) < 0.03, 3] = np.nan  # scattered missing hours
    return x, b


@pytest.mark.parametrize("min_coverage", [1.0, 0.95, 0.9, 0.7, 0.5])
@pytest.mark.parametrize("window", [10, 48, 100])
def test_gap_aware_equals_a_loop_over_masked_windows(window: int, min_coverage: float) -> None:
    x, b = gappy_returns()
    corr, beta = rolling_corr_beta(x, b, window, min_coverage)
    for s in range(x.shape[1]):
        want_corr, want_beta = loop_corr_beta(x[:, s], b, window, min_coverage)
        np.testing.assert_array_equal(np.isnan(corr[:, s]), np.isnan(want_corr), err_msg=f"column {s}")
        np.testing.assert_array_equal(np.isnan(beta[:, s]), np.isnan(want_beta), err_msg=f"column {s}")
        np.testing.assert_allclose(corr[:, s], want_corr, rtol=0, atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(beta[:, s], want_beta, rtol=0, atol=1e-12, equal_nan=True)
    # The data has the defect: windows holding a missing pair exist, and below 1.0 coverage they count.
    windows = np.lib.stride_tricks.sliding_window_view(np.isfinite(x) & np.isfinite(b)[:, None], window, 0)
    spans_gap = np.zeros_like(corr, dtype=bool)
    spans_gap[window - 1 :] = ~windows.all(axis=-1)
    assert spans_gap.sum() > 100
    if min_coverage <= 0.9:
        assert np.isfinite(corr[spans_gap]).sum() > 0.3 * spans_gap.sum()
    if min_coverage == 1.0:
        assert np.isnan(corr[spans_gap]).all()


def test_one_missing_hour_leaves_a_month_of_1h_windows_defined() -> None:
    x, b = gappy_returns(n=2_000)
    x[1_000, :] = np.nan  # one filled bar costs two returns: its own and the next
    x[1_001, :] = np.nan
    corr, beta = rolling_corr_beta(x[:, :2], b, 720, 0.9)
    assert np.isfinite(corr[1_000:1_720]).all() and np.isfinite(beta[1_000:1_720]).all()
    want, _ = loop_corr_beta(x[:, 0], b, 720, 0.9)
    np.testing.assert_allclose(corr[:, 0], want, rtol=0, atol=1e-12, equal_nan=True)


@pytest.mark.parametrize(
    ("min_coverage", "nan_at"),
    [
        (1.0, range(20, 32)),  # strict: every window holding bar 20, 21 or 22
        (0.9, range(21, 31)),  # 9 of 10 valid (bars 20 and 31) meets 0.9 exactly; 8 does not
        (0.8, range(22, 30)),  # 8 of 10 meets 0.8, 7 does not
        (0.71, range(22, 30)),
        (0.7, range(0)),  # 7 of 10 meets 0.7 (although 0.7 × 10 = 7.000000000000001 in floating point)
    ],
)
def test_coverage_boundary_exactly_at_the_threshold(min_coverage: float, nan_at: range) -> None:
    """Window 10; x is missing on bars 20-22, so the window ending at t has 10 − |{20, 21, 22} ∩ [t−9, t]|
    valid pairs: 9 at t = 20, 8 at 21, 7 at 22..29, 8 at 30, 9 at 31, 10 from 32 on."""
    rng = np.random.default_rng(3)
    b = rng.normal(0.0, 0.01, 40)
    x = b + rng.normal(0.0, 0.01, 40)
    x[20:23] = np.nan
    corr, beta = rolling_corr_beta(x, b, 10, min_coverage)
    want_nan = np.arange(40) < 9
    want_nan[list(nan_at)] = True
    np.testing.assert_array_equal(np.isnan(corr), want_nan)
    np.testing.assert_array_equal(np.isnan(beta), want_nan)
    want_corr, want_beta = loop_corr_beta(x, b, 10, min_coverage)
    np.testing.assert_allclose(corr, want_corr, rtol=0, atol=1e-13, equal_nan=True)
    np.testing.assert_allclose(beta, want_beta, rtol=0, atol=1e-13, equal_nan=True)
    # At the boundary the value is the one over the 9 (or 7) valid pairs, not over a padded window.
    if min_coverage == 0.9:
        valid = np.arange(11, 20)  # the window ending at bar 20 is bars 11..20; bar 20 is missing
        assert corr[20] == pytest.approx(np.corrcoef(x[valid], b[valid])[0, 1], abs=1e-13)


def test_min_valid_pairs_and_its_bounds() -> None:
    assert [min_valid_pairs(10, c) for c in (1.0, 0.9, 0.85, 0.7, 0.05)] == [10, 9, 9, 7, 1]
    assert min_valid_pairs(336, 0.9) == 303 and min_valid_pairs(720, 0.9) == 648
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="min_coverage"):
            min_valid_pairs(10, bad)
        with pytest.raises(ValueError, match="min_coverage"):
            rolling_corr_beta(np.zeros(12), np.zeros(12), 10, bad)


def test_late_listing_waits_for_a_full_window_at_any_coverage() -> None:
    x, b = gappy_returns()
    corr, _ = rolling_corr_beta(x[:, 2], b, 100, 0.5)  # listed at bar 120
    assert first_finite(corr) == 120 + 99
    corr_b, _ = rolling_corr_beta(x[:, 0], np.r_[np.full(300, np.nan), b[300:]], 100, 0.5)
    assert first_finite(corr_b) == 300 + 99  # the later start counts: the benchmark's


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
    cov = data.draw(st.sampled_from([1.0, 0.9, 0.75, 0.5, 0.1]))
    x = data.draw(hnp.arrays(np.float64, (len(b), 2), elements=st.floats(-0.2, 0.2, allow_subnormal=False)))
    corr, _ = rolling_corr_beta(x, b, w, cov)
    ok = ~np.isnan(corr)
    assert np.all((corr[ok] >= -1.0) & (corr[ok] <= 1.0))

    corr_bb, beta_bb = rolling_corr_beta(b, b, w, cov)
    _, beta_2b = rolling_corr_beta(2.0 * b, b, w, cov)
    defined = ~np.isnan(beta_bb)
    np.testing.assert_array_equal(beta_bb[defined], 1.0)
    np.testing.assert_array_equal(beta_2b[defined], 2.0)
    np.testing.assert_array_equal(np.isnan(beta_2b), ~defined)
    np.testing.assert_allclose(corr_bb[defined], 1.0, rtol=1e-12)

    # A window is defined exactly when it starts at or after the benchmark's first return, holds enough
    # valid returns (valid / w >= coverage) and the benchmark moves over them.
    windows = np.lib.stride_tricks.sliding_window_view(b, w)
    starts = np.arange(len(windows))
    moves = np.array(
        [np.isfinite(v).sum() / w >= cov and np.unique(v[np.isfinite(v)]).size > 1 for v in windows]
    )
    np.testing.assert_array_equal(defined[w - 1 :], moves & (starts >= first_finite(b)))
    assert not defined[: w - 1].any()
    if cov == 1.0:  # the strict rule: no NaN anywhere in the window
        assert not any(defined[w - 1 :][~np.isfinite(windows).all(axis=1)])


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
