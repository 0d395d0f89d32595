"""The shortcuts the direct path takes at scale (issue #18) against the computations they replace."""

from __future__ import annotations

import numpy as np
import pytest

from cje.calibration import reward as R
from cje.data import _dense_in_order, _has_duplicate


@pytest.mark.parametrize("seed", range(40))
def test_score_index_monotone_shortcut_matches_full_fit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(50, 3000))
    grid = int(rng.integers(3, 30))
    s = rng.integers(0, grid, m).astype(float) / (grid - 1)
    f = [np.sqrt, np.square, lambda x: np.sin(3 * x), lambda x: 0.5 - 0.02 * x][seed % 4]
    y = f(s) + rng.normal(0, rng.uniform(0.01, 0.5), m)
    fold = rng.integers(0, 5, m)
    full = R._CrossFitter("two_stage", s, s[:, None], y, fold)
    want = R._index_is_monotone(full.model(frozenset()), s)
    assert R._score_index_is_monotone(R._CrossFitter("two_stage", s, s[:, None], y, fold),
                                      s, y) == want


@pytest.mark.parametrize("seed", range(10))
def test_grouped_ridge_is_the_full_ridge(seed: int) -> None:
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 11, 2000) / 10.0
    y = s**2 + rng.normal(0, 0.2, s.size)
    basis = R._SplineBasis(s[:, None], R._n_knots(s.size))
    coef, b0, _ = R.ridge_gcv(basis(s[:, None]), y)
    xs, inv = np.unique(s, return_inverse=True)
    got = R._ridge_gcv_grouped(basis(xs[:, None]), np.bincount(inv).astype(float),
                               np.bincount(inv, y), np.bincount(inv, y * y))
    assert got is not None
    np.testing.assert_allclose(got[0], coef, rtol=1e-8, atol=1e-10)
    assert got[1] == pytest.approx(b0, abs=1e-10)


def test_dense_in_order_is_what_factorize_leaves_unchanged() -> None:
    import pandas as pd

    rng = np.random.default_rng(0)
    for _ in range(200):
        codes = rng.integers(-1, 6, int(rng.integers(0, 12)))
        same = np.array_equal(pd.factorize(codes, sort=False)[0], codes) and (codes >= 0).all()
        assert _dense_in_order(codes) == bool(same)


def test_has_duplicate() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        key = rng.integers(0, int(rng.integers(1, 50)), int(rng.integers(1, 20)))
        if rng.random() < 0.3:
            key = key * 10**9  # a large range: the sorting branch
        assert _has_duplicate(key) == bool(len(np.unique(key)) < key.size)
