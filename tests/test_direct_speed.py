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


def _folds_before(prompts: np.ndarray, labelled: np.ndarray, k: int, seed: int,
                  h: np.ndarray | None = None) -> np.ndarray:
    """prompt_folds as written before issue #18 (hash of the concatenation, lexsort)."""
    import hashlib

    if h is None:
        pre = f"{int(seed)}\x1f"
        h = np.frombuffer(b"".join(hashlib.blake2b((pre + str(p)).encode(), digest_size=8)
                                   .digest() for p in prompts), dtype="<u8").astype(np.uint64)
    fold = (h % np.uint64(k)).astype(np.int64)
    lab = np.flatnonzero(labelled)
    order = np.lexsort((prompts[lab].astype(str), h[lab]))
    fold[lab[order]] = np.arange(lab.size) % k
    return fold


@pytest.mark.parametrize("seed", range(5))
def test_prompt_folds_as_before(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import cje.data as data

    rng = np.random.default_rng(seed)
    prompts = np.array([f"p{i}" for i in rng.permutation(3000)] + [7, 3.5], dtype=object)
    labelled = rng.random(prompts.size) < 0.4
    np.testing.assert_array_equal(data.prompt_folds(prompts, labelled, 5, seed),
                                  _folds_before(prompts, labelled, 5, seed))
    # equal hashes (a collision): the ids break the tie, as before
    h = rng.integers(0, 40, prompts.size).astype(np.uint64)
    monkeypatch.setattr(data, "_prompt_hash", lambda p, s: h)
    np.testing.assert_array_equal(data.prompt_folds(prompts, labelled, 5, seed),
                                  _folds_before(prompts, labelled, 5, seed, h))


def test_space_at_edges_is_where_str_strip_changes_the_id() -> None:
    import pandas as pd

    from cje.data import _space_at_edges

    rng = np.random.default_rng(2)
    alphabet = [" ", "\t", "\n", "\x1c", "\x1f", "\x85", "\xa0", "\u2028", "\u3000", "\u200b",
                "\ufeff", "a", "é", "λ", "0", "_"]
    ids = ["".join(rng.choice(alphabet, int(rng.integers(0, 5)))) for _ in range(3000)]
    arr = pd.array(ids, dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    got = _space_at_edges(arr)
    assert got is not None
    np.testing.assert_array_equal(got, [v != v.strip() for v in ids])
    assert _space_at_edges(np.array(ids, dtype=object)) is None


def test_space_class_is_str_isspace() -> None:
    from cje.data import _PY_SPACE

    want = "".join(f"\\x{{{c:x}}}" for c in range(0x110000) if chr(c).isspace())
    assert _PY_SPACE == want
