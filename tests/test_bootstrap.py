"""The one prompt-cluster bootstrap, percentile interval, n_bootstrap check and cluster-robust
covariance of cje.inference, checked against independent hand-written references; and the
surface of the cje.pairwise package that replaced the single module."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm

import cje
from cje.errors import CJEInputError
from cje.inference import (
    check_n_bootstrap,
    cluster_bootstrap_totals,
    cluster_bootstrap_weights,
    cluster_robust_covariance,
    expanded_alpha,
    percentile_interval,
)


def _weights(*args, **kwargs) -> np.ndarray:
    return np.vstack(list(cluster_bootstrap_weights(*args, **kwargs)))


@pytest.mark.parametrize("g, b", [(1, 5), (7, 13), (100, 40)])
def test_multinomial_weights_are_draw_counts(g, b):
    draws = np.random.default_rng(3).integers(0, g, size=(b, g))
    expected = np.stack([np.bincount(row, minlength=g) for row in draws]).astype(np.float64)
    np.testing.assert_array_equal(_weights(g, b, 3, method="multinomial"), expected)


@pytest.mark.parametrize("g, b", [(1, 5), (7, 13), (100, 40)])
def test_exponential_weights_are_scaled_exponentials(g, b):
    e = np.random.default_rng(3).standard_exponential((b, g))
    expected = e * (g / e.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(_weights(g, b, 3), expected)


@pytest.mark.parametrize("method", ["multinomial", "exponential"])
def test_chunking_does_not_change_the_draws(method):
    whole = _weights(37, 50, 11, method=method)
    chunks = list(cluster_bootstrap_weights(37, 50, 11, method=method, max_entries=37 * 3))
    assert [c.shape[0] for c in chunks] == [3] * 16 + [2]
    np.testing.assert_array_equal(np.vstack(chunks), whole)
    # a wide caller (width > G) gets smaller chunks, the same draws
    narrow = list(cluster_bootstrap_weights(37, 50, 11, method=method, max_entries=1000, width=200))
    assert narrow[0].shape[0] == 5
    np.testing.assert_array_equal(np.vstack(narrow), whole)


def test_a_generator_is_advanced_not_copied():
    gen = np.random.default_rng(5)
    first = cluster_bootstrap_totals(np.ones((6, 2)), 4, gen, method="multinomial")
    second = cluster_bootstrap_totals(np.arange(6.0), 4, gen)
    ref = np.random.default_rng(5)
    _ = ref.integers(0, 6, size=(4, 6))
    e = ref.standard_exponential((4, 6))
    np.testing.assert_array_equal(first, np.full((4, 2), 6.0))
    np.testing.assert_array_equal(second[:, 0], (e * (6 / e.sum(axis=1, keepdims=True))) @ np.arange(6.0))


def test_unknown_method_is_refused():
    with pytest.raises(CJEInputError, match="method must be 'multinomial' or 'exponential'; got 'poisson'"):
        _weights(3, 2, 0, method="poisson")


def test_percentile_interval_matches_numpy_and_skips_non_finite():
    r = np.random.default_rng(0).normal(size=(400, 3))
    lo, hi = percentile_interval(r, 0.1)
    np.testing.assert_array_equal(np.vstack([lo, hi]), np.quantile(r, [0.05, 0.95], axis=0))
    col = r[:, 0].copy()
    col[[3, 9]] = [np.nan, np.inf]
    assert percentile_interval(col, 0.1) == tuple(np.quantile(col[np.isfinite(col)], [0.05, 0.95]))
    lo, hi = percentile_interval(np.column_stack([col, np.full(400, np.nan)]), 0.1)
    assert np.isnan(lo[1]) and np.isnan(hi[1]) and lo[0] == np.quantile(col[np.isfinite(col)], 0.05)


@pytest.mark.parametrize("g", [2, 3, 5, 10, 30, 200, 10**6])
def test_expanded_alpha_against_scipy(g):
    # Hesterberg's expanded percentile level: z_{1-a'/2} = sqrt(G/(G-1)) t_{1-a/2, G-1}, here
    # computed with scipy's t and normal distributions (the package uses its own t quantile)
    from scipy import stats

    z = np.sqrt(g / (g - 1)) * stats.t.ppf(0.975, g - 1)
    assert expanded_alpha(0.05, g) == pytest.approx(2 * stats.norm.sf(z), rel=1e-9, abs=1e-12)
    assert expanded_alpha(0.05, g) < 0.05


def test_expanded_percentile_interval_reads_the_replicates_further_out():
    r = np.random.default_rng(1).normal(size=(4000, 3))
    g = np.array([1, 30, 200])
    lo, hi = percentile_interval(r, 0.05, n_clusters=g)
    a = expanded_alpha(0.05, g)
    assert a[0] == 0.0  # one cluster: the whole range of the replicates
    for j in range(3):
        assert (lo[j], hi[j]) == tuple(np.quantile(r[:, j], [a[j] / 2, 1 - a[j] / 2]))
    plain_lo, plain_hi = percentile_interval(r, 0.05)
    assert (lo <= plain_lo).all() and (hi >= plain_hi).all()
    # a scalar count is used for every column
    assert percentile_interval(r, 0.05, n_clusters=30)[0][1] == lo[1]


@pytest.mark.parametrize(
    "value, minimum, message",
    [
        (-1, 0, r"n_bootstrap must be a non-negative integer; got -1\. .*\(0 skips the intervals\)"),
        (True, 0, r"n_bootstrap must be a non-negative integer; got True"),
        (100.0, 0, r"n_bootstrap must be a non-negative integer; got 100\.0"),
        ("2000", 50, r"n_bootstrap must be an integer >= 50; got '2000'"),
        (49, 50, r"n_bootstrap must be an integer >= 50; got 49\. Use e\.g\. n_bootstrap=2000\.$"),
    ],
)
def test_check_n_bootstrap_refuses(value, minimum, message):
    with pytest.raises(CJEInputError, match=message):
        check_n_bootstrap(value, minimum=minimum)


def test_check_n_bootstrap_accepts_numpy_integers():
    assert check_n_bootstrap(np.int32(0)) == 0
    assert type(check_n_bootstrap(np.int64(50), minimum=50)) is int


@pytest.mark.parametrize("seed", [0, 1])
def test_cluster_robust_covariance_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    n, groups = 300, rng.integers(0, 40, 300)
    x = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    y = x @ [1.0, 0.5, -0.2] + rng.normal(size=n) + rng.normal(size=40)[groups]
    fit = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": groups})
    ours = cluster_robust_covariance(x, fit.resid, groups, np.linalg.inv(x.T @ x))
    np.testing.assert_allclose(ours, fit.cov_params(), rtol=1e-10)


def test_pairwise_package_keeps_the_public_names():
    names = {"BradleyTerryResult", "DawidSkeneResult", "aggregate_panel", "bradley_terry", "cohen_kappa",
             "dawid_skene", "kendall_tau", "krippendorff_alpha", "ndcg_at_k", "ranking_agreement",
             "spearman_rho", "win_rates"}
    assert names <= set(cje.pairwise.__all__)
    for name in cje.pairwise.__all__:
        assert getattr(cje.pairwise, name) is not None
    from cje.bias.audit import PAIR_COLUMNS as audit_columns
    from cje.bias.position import POSITION_COLUMNS

    assert audit_columns is POSITION_COLUMNS is cje.pairwise.PAIR_COLUMNS


def test_cluster_effective_size_and_correlation_against_references():
    from cje.inference import cluster_correlation, cluster_effective_size

    rng = np.random.default_rng(2)
    y = (rng.uniform(size=200) < 0.3).astype(float)
    assert cluster_effective_size(y, np.arange(200), 200) == pytest.approx(200.0)  # one row per prompt: n
    c = np.repeat(np.arange(50), 4)
    t = np.bincount(c, weights=y - y.mean())
    assert cluster_effective_size(y, c, 50) == pytest.approx(y.mean() * (1 - y.mean()) / (t @ t / 200**2))
    assert cluster_effective_size(np.ones(8), np.arange(8) // 2, 4) == 4.0  # p = 1: the prompts
    x, z = rng.normal(size=60), rng.normal(size=60)
    pearson = np.corrcoef(x, x + z)[0, 1]
    assert cluster_correlation(x, np.arange(60), x + z, np.arange(60), 60) == pytest.approx(pearson)
