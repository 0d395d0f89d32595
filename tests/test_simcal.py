"""SIMCal-W internals against plain row-level computations.

The stacking objective is computed from per-(fold, value) cell sums for speed; here it is
recomputed row by row, the way the formulas read, and the two must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

from cje.calibration.weights import (
    _CellStats,
    _mse_matrix,
    _stacking_moments,
    iso_by_rank,
    min_variance_simplex,
    order_rank,
    simcal_weights,
)


def _data(seed: int, n: int = 3000, k: int = 4, u: int = 9, p_lab: float = 0.2):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, u, n)
    fold = rng.integers(0, k, n)
    w = np.exp(0.4 * codes + rng.normal(0, 0.8, n))
    w /= w.mean()
    y = np.where(rng.random(n) < p_lab, rng.random(n), np.nan)
    index = np.sort(rng.random((k, u)), axis=1)  # one calibrated-reward index per fold
    return w, codes, fold, y, index


def _row_moments(w, codes, fold, y, x, a_inc, a_dec, k, stable_residual):
    """Σ_i φ_c,i φ_c',i written row by row from the docstring's formulas."""
    rows = np.flatnonzero(fold != k)
    fr, cr = fold[rows], codes[rows]
    cands = (a_inc[fr, cr], a_dec[fr, cr], w[rows])
    z = x[cr]
    lab = ~np.isnan(y[rows])
    e = np.where(lab, np.nan_to_num(y[rows]) - z, 0.0) * (rows.size / lab.sum())
    if stable_residual:
        z, common = z + e, np.zeros(rows.size)
    else:
        wr = w[rows] / w[rows].mean()
        common = wr * (e - np.dot(wr, e) / rows.size)
    phi, psis = [], []
    for wc in cands:
        psi = np.dot(wc, z) / wc.sum()
        psis.append(psi)
        phi.append(wc / wc.mean() * (z - psi) + common)
    phi = np.array(phi)
    return phi @ phi.T, np.array(psis), rows.size


@pytest.mark.parametrize("stable_residual", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_moments_equal_row_moments(seed, stable_residual):
    w, codes, fold, y, index = _data(seed)
    st = _CellStats(w, codes, fold, y, index.shape[1], index.shape[0])
    rng = np.random.default_rng(seed + 10)
    a_inc = rng.random(index.shape) + 0.5
    a_dec = rng.random(index.shape) + 0.5
    for k in range(index.shape[0]):
        got, psi, n_k = _stacking_moments(st, a_inc, a_dec, index[k], k, stable_residual)
        ref, psi_ref, n_ref = _row_moments(w, codes, fold, y, index[k], a_inc, a_dec, k,
                                           stable_residual)
        assert n_k == n_ref
        np.testing.assert_allclose(psi, psi_ref, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())


def test_mse_matrix_penalises_a_biased_low_variance_candidate():
    # candidate 0: no variance but biased by 0.5; candidate 1 (raw, last): unbiased, variance
    # 0.01 per estimate (so the bias estimate's own noise, 0.01, is small next to 0.25) -> MSE
    # picks the unbiased one; variance alone would pick candidate 0
    n = 1000.0
    moments = np.array([[0.0, 0.0], [0.0, 0.01 * n * (n - 1)]])
    mse = _mse_matrix(moments, np.array([1.0, 0.5]), n)
    assert min_variance_simplex(mse)[1] > 0.9
    assert min_variance_simplex(moments)[0] == pytest.approx(1.0)


def test_iso_by_rank_matches_sklearn_weighted_isotonic():
    from sklearn.isotonic import IsotonicRegression

    rng = np.random.default_rng(3)
    rank = np.arange(12)
    num, den = rng.random(12) * 5, rng.integers(1, 6, 12).astype(float)
    ref = IsotonicRegression().fit(rank, num / den, sample_weight=den).predict(rank)
    np.testing.assert_allclose(iso_by_rank(rank, num, den), ref, rtol=1e-12)


def test_order_rank_breaks_index_ties_by_the_judge_score():
    ix = np.array([0.3, 0.3, 0.1, 0.3])
    s = np.array([0.9, 0.7, 0.2, 0.9])
    assert order_rank(ix, s).tolist() == [2, 1, 0, 2]
    assert order_rank(ix).tolist() == [1, 1, 0, 1]


def test_simcal_fold_weights_never_see_their_own_labels():
    # index[k] is by contract fitted without fold k's labels; relabelling fold k must leave
    # fold k's stabilised weights bit-for-bit unchanged (other folds may move)
    w, codes, fold, y, index = _data(5)
    base = simcal_weights(w, codes, fold, index, y).weights
    for k in range(index.shape[0]):
        y2 = y.copy()
        hit = (fold == k) & ~np.isnan(y)
        y2[hit] = 1.0 - y2[hit]
        new = simcal_weights(w, codes, fold, index, y2).weights
        np.testing.assert_array_equal(new[fold == k], base[fold == k])
        assert not np.array_equal(new[fold != k], base[fold != k])


def test_simcal_weights_are_mean_one_per_fold_and_monotone_when_one_candidate_wins():
    w, codes, fold, y, index = _data(6)
    res = simcal_weights(w, codes, fold, index, y, tiebreak=np.arange(index.shape[1], dtype=float))
    for k in range(index.shape[0]):
        assert res.weights[fold == k].mean() == pytest.approx(1.0, abs=1e-12)
        assert res.mixture[k].sum() == pytest.approx(1.0, abs=1e-12)
        if res.mixture[k][0] == pytest.approx(1.0):  # the increasing fit alone: monotone
            rows = np.flatnonzero(fold == k)
            order = np.argsort(index[k][codes[rows]], kind="stable")
            assert np.all(np.diff(res.weights[rows][order]) >= -1e-12)
    assert np.all(res.weights > 0)
    assert np.var(res.weights) < np.var(w)
