"""Importance weights and SIMCal-W, the surrogate-indexed monotone stabilisation of weights.

Raw weights (docs: Off-policy › The data) come from log-probabilities and are Hájek-normalised in log
space, so their mean is exactly one. SIMCal-W (docs: Off-policy › SIMCal-W) replaces them by an
estimate of ``E[W | index]`` under shape constraints, where the index is the calibrated reward:
because the reward is a
function of that index, ``E[W·R] = E[E[W | index]·R]``, and the part of ``W``'s variance that is
orthogonal to the index is removed without bias.

How ours is built (and why):

* **Candidates** (each mean-one): the isotonic regression of ``w`` on the index, increasing and
  decreasing, and the raw weights (the baseline).
* **Stacking**: simplex weights over the candidates minimising the mean squared error of calibrated
  IPS — the variance of its influence values computed from *out-of-fold* candidates plus the
  squared bias of each candidate relative to the raw (unbiased) weights — an exact 3-dimensional
  simplex QP. Variance alone would favour a candidate of the wrong shape (a decreasing fit of an
  increasing ``E[W | S]`` is nearly constant) and pull the estimate toward the logging policy.
* **Honest application (outer cross-fitting)**: the weights of the rows of prompt fold ``k`` come
  from candidates fitted on the other folds, ordered by the calibrated reward *fitted without
  fold k's labels*, and stacked by a variance estimated on the other folds' rows with that same
  calibration (inner cross-fitting over the remaining folds). So the weights of fold ``k`` never
  depend on fold ``k``'s labels; :func:`simcal_weights` renormalises them to mean one within the
  fold, which keeps that true exactly.
* **Optional variance cap** ``var_cap=ρ``: blends the stacked weights toward one,
  ``w ← 1 + (1 − γ)(w − 1)`` with ``γ = max(0, 1 − sqrt(ρ / Var(w)))``. Blending toward uniform pulls
  the estimate toward the logging policy's value — it trades bias for variance — so it is off by
  default (``simulations/study_var_cap.py`` is the evidence) and ``γ`` is reported when used.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from cje._memo import remember
from cje.errors import CJEInputError

__all__ = [
    "hajek_weights",
    "min_variance_simplex",
    "SimcalWeights",
    "simcal_weights",
]

#: Candidate names, in the order of :attr:`SimcalWeights.mixture`'s columns.
CANDIDATES: tuple[str, ...] = ("increasing", "decreasing", "baseline")
_FLOOR = 1e-9
#: Smallest mean a candidate's weights on a fold's rows may have to be rescaled to mean one.
_TINY = float(np.finfo(float).tiny)


def hajek_weights(log_w: np.ndarray) -> np.ndarray:
    """Mean-one (Hájek) importance weights from log-weights, computed in log space.

    ``w_i = n · exp(λ_i − max λ) / Σ_j exp(λ_j − max λ)``.

    Parameters
    ----------
    log_w : numpy.ndarray
        Finite log importance weights ``λ_i = log π_target − log π_logging``.

    Returns
    -------
    numpy.ndarray
        Weights with mean exactly one (up to rounding).

    Examples
    --------
    >>> hajek_weights(np.log(np.array([1.0, 3.0]))).tolist()
    [0.5, 1.5]
    >>> float(hajek_weights(np.array([1000.0, 1000.0 + np.log(3)])).mean())  # no overflow
    1.0
    """
    e = np.exp(log_w - np.max(log_w))
    return e * (e.shape[0] / e.sum())


def _mse_matrix(moments: np.ndarray, psis: np.ndarray, n: float) -> np.ndarray:
    """Mean-squared-error matrix of stacked candidates: variance plus squared bias.

    Variance alone would favour a candidate of the wrong shape (the decreasing fit of an
    increasing ``E[W | S]`` is nearly constant: lowest variance, estimate pulled toward the
    logging policy's value). The last candidate (raw weights) is unbiased, so ``b_c = ψ_c − ψ_raw``
    estimates each candidate's bias; ``b b'`` minus the sampling covariance of those differences
    is an unbiased estimate of the squared-bias matrix. The sum is projected onto the PSD cone.

    ``moments`` holds ``Σ_i φ_c,i φ_c',i`` over the ``n`` rows (influence values, mean zero).
    """
    scale = 1.0 / (n * max(n - 1.0, 1.0))
    var = moments * scale
    d = moments - moments[:, -1:] - moments[-1:, :] + moments[-1, -1]
    bias = psis - psis[-1]
    m = var + np.outer(bias, bias) - d * scale
    top = float(np.max(np.abs(m)))
    m = m / top if top > 0 else m  # the simplex minimiser is scale-free; eigh on O(1) entries
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.clip(vals, 0.0, None)) @ vecs.T


def min_variance_simplex(sigma: np.ndarray) -> np.ndarray:
    """Simplex weights ``π ≥ 0, Σπ = 1`` minimising ``π'Σπ``, solved exactly.

    Every active set is enumerated (the problem is tiny: a handful of candidates); on each, the
    equality-constrained minimiser is ``Σ_A⁻¹1 / 1'Σ_A⁻¹1``; the feasible one with the smallest
    objective wins. A ridge ``1e-8·tr(Σ)/m`` on the diagonal keeps singular ``Σ`` solvable; a
    trace outside ``[1e-100, 1e100]`` is divided out first (the minimiser does not depend on the
    scale). It never raises: a ``Σ`` with a non-finite entry gives equal weights ``1/m``.

    Parameters
    ----------
    sigma : numpy.ndarray of shape (m, m)
        Covariance matrix (symmetric, positive semi-definite).

    Returns
    -------
    numpy.ndarray of shape (m,)

    Examples
    --------
    >>> min_variance_simplex(np.diag([1.0, 4.0])).round(6).tolist()   # inverse-variance
    [0.8, 0.2]
    >>> min_variance_simplex(np.array([[1.0, 1.0], [1.0, 4.0]])).round(6).tolist()  # corner
    [1.0, 0.0]
    >>> min_variance_simplex(np.diag([1e300, 4e300])).round(6).tolist()   # scaled solve
    [0.8, 0.2]
    >>> min_variance_simplex(np.array([[np.inf, 0.0], [0.0, 1.0]])).tolist()
    [0.5, 0.5]
    """
    m = sigma.shape[0]
    if not np.all(np.isfinite(sigma)):
        return np.full(m, 1.0 / m)
    tr = float(np.trace(sigma))
    if tr > 1e100 or 0.0 < tr < 1e-100:  # scaled solve: the minimiser is scale-free
        sigma = sigma / tr
        tr = 1.0
    s = sigma + np.eye(m) * (1e-8 * tr / m if tr > 0 else 1e-12)
    best, best_val = np.full(m, 1.0 / m), np.inf
    # every active set's equality-constrained minimiser, one padded row each (zeros off the set)
    X = np.zeros((2**m - 1, m))
    solved = np.ones(2**m - 1, dtype=bool)
    with np.errstate(all="ignore"):
        # single candidates: gesv of a 1x1 system is the division 1/s_ii (a zero pivot, which
        # gesv refuses, gives inf here: not finite, so refused below too)
        X[np.arange(m), np.arange(m)] = 1.0 / np.diagonal(s)
    at = m
    for size, acts, rows, cols, put_r, put_c in _active_sets(m)[1:]:
        # one batched LAPACK call per size (the same gesv per matrix as one call each); a
        # singular matrix sends its batch back to one call per set
        subs, n_sets = s[rows, cols], len(acts)
        try:
            xs = np.linalg.solve(subs, np.ones((n_sets, size, 1)))[..., 0]
        except np.linalg.LinAlgError:
            xs = np.zeros((n_sets, size))
            for j, sub in enumerate(subs):
                try:
                    xs[j] = np.linalg.solve(sub, np.ones(size))
                except np.linalg.LinAlgError:
                    solved[at + j] = False
        X[put_r, put_c] = xs
        at += n_sets
    # the zeros off each set leave its sums unchanged: the numbers of one set at a time
    with np.errstate(all="ignore"):
        tot = X.sum(axis=1)
        ok = solved & np.isfinite(tot) & (tot > 0)
        X = X / tot[:, None]
    ok &= ~np.any(X < -1e-12, axis=1)
    P = np.clip(X[ok], 0.0, None)
    P /= P.sum(axis=1)[:, None]
    for pi in P:  # in the order of the active sets, the first of equal minima wins
        val = float(pi @ s @ pi)
        if val < best_val - 1e-15 * max(1.0, abs(val)):
            best, best_val = pi, val
    return best


@functools.lru_cache(maxsize=16)
def _active_sets(m: int) -> tuple[tuple[Any, ...], ...]:
    """Per size: the active sets of ``m`` candidates (in :func:`itertools.combinations` order),
    the row/column indices that gather their sub-matrices as one batch, and the (row, column)
    indices that put their solutions into the padded rows (sets of all sizes in order)."""
    from itertools import combinations

    out, at = [], 0
    for size in range(1, m + 1):
        acts = tuple(combinations(range(m), size))
        idx = np.array(acts, dtype=np.intp)  # (n_sets, size)
        put_r = at + np.arange(len(acts))[:, None] + np.zeros(size, dtype=np.intp)
        out.append((size, acts, idx[:, :, None], idx[:, None, :], put_r, idx))
        at += len(acts)
    return tuple(out)


@dataclass(frozen=True, slots=True, eq=False)
class SimcalWeights:
    """Stabilised weights and how they were made.

    Attributes
    ----------
    weights : numpy.ndarray
        Stabilised weights per row, mean one within each fold.
    mixture : numpy.ndarray of shape (K, 3)
        Stacking weights of the candidates (increasing, decreasing, baseline) per fold.
    gamma : float
        Blend toward uniform applied by the variance cap (0 without a cap).
    fallbacks : tuple of str
        Why the stabiliser fell back from its normal path (empty normally): a fold whose
        stacking objective was not finite (stacked on the raw weights instead), or a candidate
        whose weights were numerically zero on a fold's rows (its share moved to the others).
        :func:`simcal_weights` never raises on extreme weights; it records the reason here.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.integers(0, 5, 400); w = np.exp(0.5 * s + rng.normal(0, 1, 400))
    >>> w = w / w.mean(); fold = np.arange(400) % 2
    >>> idx = np.tile(np.arange(5) / 4.0, (2, 1))   # calibrated reward of each distinct score
    >>> res = simcal_weights(w, s, fold, idx, np.full(400, np.nan))
    >>> res.mixture.round(2).tolist()   # per fold: all on the increasing candidate
    [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    >>> [round(float(res.weights[fold == k].mean()), 6) for k in (0, 1)], res.gamma
    ([1.0, 1.0], 0.0)
    >>> capped = simcal_weights(w, s, fold, idx, np.full(400, np.nan), var_cap=0.1)
    >>> round(capped.gamma, 3), round(float(np.var(capped.weights)), 3)
    (0.515, 0.1)
    """

    weights: np.ndarray
    mixture: np.ndarray
    gamma: float
    fallbacks: tuple[str, ...] = ()


class _CellStats:
    """Sums over the rows of each (fold, distinct value) cell of one target's logged rows.

    Everything SIMCal-W fits or stacks depends on a row only through its cell, its raw weight
    and (on labelled rows) its label, so these sums — computed once — replace passes over the
    rows in every fold and every jackknife replicate.
    """

    def __init__(self, w: np.ndarray, codes: np.ndarray, fold: np.ndarray, y: np.ndarray,
                 n_codes: int, k: int, common: dict[str, Any] | None = None):
        if common is None:
            common = _rows_parts(codes, fold, y, n_codes, k)
        key = fold * n_codes + codes
        size = k * n_codes
        lab, key_lab = common["lab"], common["key_lab"]

        def tab(weights: np.ndarray, labelled: bool = False) -> np.ndarray:
            kk = key_lab if labelled else key
            return np.bincount(kk, weights=weights, minlength=size).reshape(k, n_codes).astype(float)

        self.N, self.Sw, self.Sw2 = common["N"], tab(w), tab(w * w)
        wl, yl = w[lab], y[lab]
        self.L1, self.Ly, self.Ly2 = common["L1"], common["Ly"], common["Ly2"]
        self.Lw, self.Lwy, self.Lwy2 = tab(wl, True), tab(wl * yl, True), tab(wl * yl * yl, True)
        w2 = wl * wl
        self.Lw2, self.Lw2y, self.Lw2y2 = tab(w2, True), tab(w2 * yl, True), tab(w2 * yl * yl, True)

        self._without: dict[frozenset[int], tuple[np.ndarray, np.ndarray]] = {}
        self._outside: dict[int, tuple[Any, ...]] = {}

    def without(self, folds: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Per-value sums of weights and counts over the folds not in ``folds`` (computed once
        per set of folds)."""
        key = frozenset(folds)
        if key not in self._without:
            keep = np.ones(self.N.shape[0], dtype=bool)
            keep[list(folds)] = False
            self._without[key] = (self.Sw[keep].sum(axis=0), self.N[keep].sum(axis=0))
        return self._without[key]

    def outside(self, k: int) -> tuple[Any, ...]:
        """The cell sums of the folds other than ``k`` (:func:`_stacking_moments` reads them),
        their row count and ``1/p_L`` there (computed once per fold)."""
        if k not in self._outside:
            keep = np.ones(self.N.shape[0], dtype=bool)
            keep[k] = False
            N = self.N[keep]
            n_k = float(N.sum())
            l1 = float(self.L1[keep].sum())
            ip = n_k / l1 if l1 > 0 else 0.0  # 1/p_L
            self._outside[k] = (N, n_k, ip, *(a[keep] for a in (
                self.Ly, self.Ly2, self.L1, self.Lw, self.Lwy, self.Lwy2, self.Lw2, self.Lw2y,
                self.Lw2y2, self.Sw, self.Sw2)))
        return self._outside[k]


def _rows_parts(codes: np.ndarray, fold: np.ndarray, y: np.ndarray, n_codes: int, k: int,
                shared: dict | None = None) -> dict[str, Any]:
    """What SIMCal-W takes from the rows without their weights: the labelled rows and their
    cells, the weight-free cell tables (rows, labels, labels², labelled rows per cell), each
    fold's rows and their codes (in the smallest integer type that holds them: 1 MB per 10^6
    rows with ≤ 256 codes). The same for every target on the same rows: kept in ``shared`` (a
    dict the pipeline shares between its targets) while ``codes``, ``fold`` and ``y`` are the
    same objects."""
    hit = None if shared is None else shared.get("simcal_rows")
    if hit is not None and hit[0][0] is codes and hit[0][1] is fold and hit[0][2] is y \
            and hit[0][3] == (n_codes, k):
        return hit[1]
    key = fold * n_codes + codes
    size = k * n_codes
    lab = np.flatnonzero(~np.isnan(y))
    key_lab = key[lab]  # the labelled rows' cells, gathered once for their tables
    yl = y[lab]

    def tab(kk: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(kk, weights=weights, minlength=size).reshape(k, n_codes).astype(float)

    rows = [np.flatnonzero(fold == j) for j in range(k)]
    small = np.min_scalar_type(max(n_codes - 1, 0))
    out = {"lab": lab, "key_lab": key_lab, "N": tab(key, None), "L1": tab(key_lab, None),
           "Ly": tab(key_lab, yl), "Ly2": tab(key_lab, yl * yl), "rows": rows,
           "codes_of": [codes[r].astype(small if small.kind == "u" else np.intp) for r in rows]}
    for a in (out["N"], out["L1"], out["Ly"], out["Ly2"], lab, key_lab, *rows, *out["codes_of"]):
        a.flags.writeable = False  # shared by the targets and their runs: read only
    if shared is not None:
        shared["simcal_rows"] = ((codes, fold, y, (n_codes, k)), out)
    return out


def _stacking_moments(st: _CellStats, a_inc: np.ndarray, a_dec: np.ndarray, x: np.ndarray,
                      k: int, stable_residual: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Second moments ``M = Σ_i φ_c,i φ_c',i`` of the three candidates' calibrated-IPS influence
    values over the rows outside fold ``k`` (and their point estimates), from cell sums.

    Candidate weights ``v``: the out-of-fold fits ``a_inc``/``a_dec`` (constant within a cell) and
    the raw weights. With ``e_i = (Y_i − x_u)/p_L`` on labelled rows:
    ``φ_c = (v_c/m_c)(x − ψ_c) + (w/m_w)(e − ē)`` (raw weights on the residual) or
    ``φ_c = (v_c/m_c)(x + e − ψ_c)`` (stabilised weights on the residual). Row-level moments: the
    stacking objective ignores correlation within a prompt (exact with one row per prompt).

    Each sum is computed once, and only the ones the residual's weighting uses (the numbers of
    the plain form in ``tests/test_read_memo.py``, which computes every pair's sums in full, bit for bit).
    """
    keep = np.ones(st.N.shape[0], dtype=bool)
    keep[k] = False
    N, n_k, ip, Ly, Ly2, L1, Lw, Lwy, Lwy2, Lw2, Lw2y, Lw2y2, Sw, Sw2 = st.outside(k)
    ip2 = ip * ip
    xs = x[None, :]
    Se = ip * (Ly - xs * L1)
    Swe = ip * (Lwy - xs * Lw)
    a = (a_inc[keep], a_dec[keep])

    tot_v = [float((a[0] * N).sum()), float((a[1] * N).sum()), float(Sw.sum())]
    sum_ve = [float((a[0] * Se).sum()), float((a[1] * Se).sum()), float(Swe.sum())]
    sum_vx = [float((a[0] * N * xs).sum()), float((a[1] * N * xs).sum()), float((Sw * xs).sum())]
    m = np.array(tot_v) / n_k
    if stable_residual:
        psi = (np.array(sum_vx) + np.array(sum_ve)) / np.array(tot_v)
    else:
        psi = np.array(sum_vx) / np.array(tot_v)
    M = np.empty((3, 3))
    dx = [xs - psi[c] for c in range(3)]
    if stable_residual:
        See = ip2 * (Ly2 - 2 * xs * Ly + xs * xs * L1)
        Swee = ip2 * (Lwy2 - 2 * xs * Lwy + xs * xs * Lw)
        Sw2e, Sw2ee = ip * (Lw2y - xs * Lw2), ip2 * (Lw2y2 - 2 * xs * Lw2y + xs * xs * Lw2)
        for c in range(3):
            for d in range(c, 3):
                if c < 2 and d < 2:
                    f = a[c] * a[d]
                    p0, p1, p2 = f * N, f * Se, f * See
                elif c == 2 and d == 2:
                    p0, p1, p2 = Sw2, Sw2e, Sw2ee
                else:
                    f = a[min(c, d)]
                    p0, p1, p2 = f * Sw, f * Swe, f * Swee
                dc, dd = dx[c], dx[d]
                val = float((dc * dd * p0 + (dc + dd) * p1 + p2).sum()) / (m[c] * m[d])
                M[c, d] = M[d, c] = val
        return M, psi, n_k
    Sw2e, Sw2ee = ip * (Lw2y - xs * Lw2), ip2 * (Lw2y2 - 2 * xs * Lw2y + xs * xs * Lw2)
    m_w = m[2]
    e_bar = float(Swe.sum()) / (m_w * n_k)
    # Σ_cell v_c γ with γ = (w/m_w)(e − ē)
    vg = [a[0] * (Swe - e_bar * Sw) / m_w, a[1] * (Swe - e_bar * Sw) / m_w,
          (Sw2e - e_bar * Sw2) / m_w]
    gg = float((Sw2ee - 2 * e_bar * Sw2e + e_bar**2 * Sw2).sum()) / m_w**2
    cross = [float((dx[c] * vg[c]).sum()) / m[c] for c in range(3)]
    for c in range(3):
        for d in range(c, 3):
            if c < 2 and d < 2:
                p0 = (a[c] * a[d]) * N
            elif c == 2 and d == 2:
                p0 = Sw2
            else:
                p0 = a[min(c, d)] * Sw
            val = float((dx[c] * dx[d] * p0).sum()) / (m[c] * m[d]) + cross[c] + cross[d] + gg
            M[c, d] = M[d, c] = val
    return M, psi, n_k


def order_rank(ix: np.ndarray, tiebreak: np.ndarray | None = None) -> np.ndarray:
    """Dense rank of each entry in the order of ``ix``, ties broken by ``tiebreak``.

    Entries equal in both share a rank (they are pooled by the isotonic fits).

    Examples
    --------
    >>> order_rank(np.array([0.5, 0.2, 0.5, 0.5]), np.array([3.0, 1.0, 2.0, 3.0])).tolist()
    [2, 0, 1, 2]
    """
    keys = (ix,) if tiebreak is None else (tiebreak, ix)
    order = np.lexsort(keys)
    changed = np.zeros(ix.shape[0], dtype=bool)
    changed[0] = True
    for key in keys:
        ks = key[order]
        changed[1:] |= ks[1:] != ks[:-1]
    rank = np.empty(ix.shape[0], dtype=np.int64)
    rank[order] = np.cumsum(changed) - 1
    return rank


#: Ranks by (index row, tiebreak) of small tables (at most ``_RANK_MEMO_MAX`` distinct values):
#: the runs of one analysis and its targets order the same few calibrations (``f^(−k)`` and
#: ``f^(−{d,k})``, 15 at K = 5) again and again. The most recent ``_RANK_MEMO_SIZE``.
_RANK_MEMO: dict[tuple[Any, ...], np.ndarray] = {}
_RANK_MEMO_SIZE, _RANK_MEMO_MAX = 256, 4096


def _rank_of(ix: np.ndarray, tiebreak: np.ndarray | None) -> np.ndarray:
    """:func:`order_rank` (read-only), memoised for small tables by the bytes of its inputs."""
    if ix.size > _RANK_MEMO_MAX or (tiebreak is not None and tiebreak.shape != ix.shape):
        return order_rank(ix, tiebreak)
    key = (ix.dtype.str, ix.tobytes(),
           None if tiebreak is None else (tiebreak.dtype.str, tiebreak.tobytes()))
    got = _RANK_MEMO.get(key)
    if got is None:
        got = order_rank(ix, tiebreak)
        got.flags.writeable = False
        remember(_RANK_MEMO, key, got, _RANK_MEMO_SIZE)
    return got


def iso_by_rank(rank: np.ndarray, num: np.ndarray, den: np.ndarray, *, increasing: bool = True,
                floor: float = _FLOOR) -> np.ndarray:
    """Weighted isotonic regression of ``num/den`` along ``rank``, predicted at every entry.

    ``num``/``den`` hold per-entry sums (e.g. of weights and row counts of the training rows);
    entries of equal rank are pooled, entries without training mass are interpolated linearly
    between fitted neighbours (flat beyond them), as ``IsotonicRegression(out_of_bounds="clip")``.

    Examples
    --------
    >>> iso_by_rank(np.arange(3), np.array([2.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0])).tolist()
    [1.5, 1.5, 1.5]
    """
    from cje._lite import isotonic_regression  # scipy's PAVA; in Python on small inputs

    n_ranks = int(rank.max()) + 1
    gw = np.bincount(rank, weights=num, minlength=n_ranks)
    gc = np.bincount(rank, weights=den, minlength=n_ranks)
    keep = np.flatnonzero(gc > 0)
    fit = isotonic_regression(gw[keep] / gc[keep], weights=gc[keep], increasing=increasing).x
    return np.maximum(np.interp(rank, keep, fit), floor)


def _iso_both(rank: np.ndarray, num: np.ndarray, den: np.ndarray, n_ranks: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """``iso_by_rank`` increasing and decreasing on the same sums, pooled once (the same
    numbers as two calls)."""
    from cje._lite import isotonic_regression  # scipy's PAVA; in Python on small inputs

    gw = np.bincount(rank, weights=num, minlength=n_ranks)
    gc = np.bincount(rank, weights=den, minlength=n_ranks)
    keep = np.flatnonzero(gc > 0)
    if not keep.size:  # no rows outside the held-out folds (a target with rows in one fold):
        # ones, as for the folds without rows in _candidate_tables (the stacking then puts
        # the whole share on the raw weights: _stack_fold finds no other fold with rows)
        return np.ones(rank.shape[0]), np.ones(rank.shape[0])
    ratio, weights = gw[keep] / gc[keep], gc[keep]
    return tuple(  # type: ignore[return-value]
        np.maximum(np.interp(rank, keep, isotonic_regression(ratio, weights=weights,
                                                             increasing=inc).x), _FLOOR)
        for inc in (True, False))


def _scoped(cache: dict | None, *arrays: np.ndarray) -> dict:
    """The part of a target's ``cache`` that holds what was computed from exactly these arrays
    (the same objects): emptied when called with others, e.g. a target copied with
    ``dataclasses.replace`` and new weights, so a memoised result is never read for other
    data. A new dict when ``cache`` is ``None``."""
    if cache is None:
        return {}
    if len(cache.get("for", ())) != len(arrays) or any(
            a is not b for a, b in zip(cache["for"], arrays, strict=True)):
        cache.clear()
        cache["for"] = arrays
    return cache


def _digest(a: np.ndarray) -> bytes:
    """A 128-bit digest of an array's values (the key of a memoised fit)."""
    return hashlib.blake2b(np.ascontiguousarray(a).view(np.uint8), digest_size=16).digest()


#: Most numbers the memoised candidate fits of one target may hold (16 MB): with many distinct
#: scores a fit costs about what storing it would, and is recomputed instead.
_FIT_MEMO_BUDGET = 1 << 21


def _fit_candidates(cache: dict, st: _CellStats, rank: np.ndarray, rank_key: bytes,
                    excluded: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The increasing and decreasing candidates fitted on the folds not in ``excluded``, along
    ``rank`` (digest ``rank_key``). They depend on the calibration only through the order it
    induces; with a monotone calibration and ties broken by the score that order is the
    scores' own, the same in every run, so the fits are memoised in ``cache["fits"]`` by
    (order, excluded folds) within :data:`_FIT_MEMO_BUDGET`."""
    fits = cache.setdefault("fits", {})
    key = (rank_key, frozenset(excluded))
    if key in fits:
        return fits[key]
    ws, cs = st.without(excluded)
    out = _iso_both(rank, ws, cs, int(rank.max()) + 1)
    used = cache.get("fit_floats", 0) + 2 * rank.size
    if used <= _FIT_MEMO_BUDGET:
        fits[key] = out
        cache["fit_floats"] = used
    return out


def _apply_fold(cands: tuple[np.ndarray, np.ndarray], ck: np.ndarray, w: np.ndarray,
                rows_k: np.ndarray, pi: np.ndarray, k: int, mixture: np.ndarray, msgs: list[str],
                memo: dict | None = None, key: Any = None) -> np.ndarray:
    """Fold ``k``'s stabilised weights: the candidates fitted on every other fold (at the codes
    ``ck`` of its rows ``rows_k``) and the raw weights ``w[rows_k]``, mixed by ``pi``, mean one
    within the fold. A candidate numerically zero on the fold's rows gives its share to the
    others (``mixture[k]`` updated, the reason appended to ``msgs``).

    ``Σ_c π_c · part_c / mean_c`` in the order of :func:`sum`, bit for bit, with less work: a
    candidate's term ``π (cand[ck] / m)`` is ``(π (cand / m))[ck]`` element by element, so the
    candidates' terms are added on the U distinct values and gathered once, and the raw weights
    are gathered only when their share is positive. The parts' means over the fold's rows
    depend on the candidates and the rows alone: kept in ``memo`` under ``key`` (the fold and
    the order the calibration induces), the same in every OUA run."""
    means = None if memo is None else memo.get(key)
    if means is None:
        means = np.array([float(part.mean()) for part in (cands[0][ck], cands[1][ck], w[rows_k])])
        if memo is not None:
            memo[key] = means
    pi, usable = _usable_mixture(means, pi, k, mixture, msgs)
    wk: Any = 0  # sum()'s start
    for c in (0, 1):
        if usable[c] and pi[c] > 0:
            wk = wk + pi[c] * (cands[c] / means[c])
    if isinstance(wk, np.ndarray):
        wk = np.take(wk, ck)
    if usable[2] and pi[2] > 0:
        wk = wk + pi[2] * (w[rows_k] / means[2])
    if not isinstance(wk, np.ndarray):  # no share anywhere: as sum() of nothing gives
        wk = np.maximum(wk, _FLOOR)
        return wk / wk.mean()
    np.maximum(wk, _FLOOR, out=wk)  # (wk is this call's own array: the same numbers in place)
    wk /= wk.mean()
    return wk


def _usable_mixture(means: np.ndarray, pi: np.ndarray, k: int, mixture: np.ndarray,
                    msgs: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Fold ``k``'s mixture without the candidates whose weights are numerically zero on its
    rows (their mean over the fold's rows ``means`` below the smallest normal number): their
    share goes to the others, ``mixture[k]`` is updated and the reason appended to ``msgs``.
    Returns the mixture and which candidates are usable (:func:`simcal_weights` and
    :func:`simcal_affine` share it)."""
    usable = np.isfinite(means) & (means >= _TINY)
    if pi[~usable].sum() > 0:
        msgs.append(
            f"fold {k}: the " + " and ".join(c for c, u in zip(CANDIDATES, usable, strict=True)
                                             if not u)
            + " weights of its rows are numerically zero; their share went to the others")
        pi = np.where(usable, pi, 0.0)
        pi = pi / pi.sum() if pi.sum() > 0 else usable / usable.sum()
        mixture[k] = pi
    return pi, usable


def _candidate_tables(st: _CellStats, fit: Any, k: int, k_folds: int, n_codes: int
                      ) -> tuple[np.ndarray, np.ndarray] | None:
    """Per other fold ``j``, the increasing and decreasing candidates fitted without folds
    ``k`` and ``j`` (rows of ones for folds without rows); ``None`` when no other fold has
    rows."""
    present = [f for f in range(k_folds) if f != k and st.N[f].sum() > 0]
    if not present:
        return None
    inc_tab = np.ones((k_folds, n_codes))
    dec_tab = np.ones((k_folds, n_codes))
    for j in present:
        # with a single other fold (K = 2) there is nothing to hold out: in-sample fits
        inc_tab[j], dec_tab[j] = fit((k, j) if len(present) > 1 else (k,))
    return inc_tab, dec_tab


def _stack_fold(st: _CellStats, fit: Any, ix: np.ndarray, k: int, k_folds: int, n_codes: int,
                stable_residual: bool, tables: Any = None) -> tuple[np.ndarray, str]:
    """Fold ``k``'s stacking weights from out-of-fold candidates on the other folds' rows, and
    the fallback's reason ("" normally). ``tables``: :func:`_candidate_tables` of these
    inputs, when the caller has it."""
    if tables is None:
        tables = _candidate_tables(st, fit, k, k_folds, n_codes)
    if tables is None:
        return np.array([0.0, 0.0, 1.0]), ""
    inc_tab, dec_tab = tables
    with np.errstate(all="ignore"):
        moments, psis, n_k = _stacking_moments(st, inc_tab, dec_tab, ix, k, stable_residual)
    if np.all(np.isfinite(moments)) and np.all(np.isfinite(psis)):
        return min_variance_simplex(_mse_matrix(moments, psis, n_k)), ""
    return np.array([0.0, 0.0, 1.0]), (
        f"fold {k}: the stacking objective is not finite (the other folds' raw weights "
        "are numerically zero: one row's log-weight exceeds theirs by hundreds of "
        "nats); stacked on the raw weights")


def simcal_weights(
    w: np.ndarray,
    codes: np.ndarray,
    fold: np.ndarray,
    index: np.ndarray,
    y: np.ndarray,
    *,
    tiebreak: np.ndarray | None = None,
    var_cap: float | None = None,
    stable_residual: bool = False,
    cache: dict | None = None,
    shared: dict | None = None,
) -> SimcalWeights:
    """SIMCal-W: stacked, cross-fitted monotone stabilisation of importance weights.

    Parameters
    ----------
    w : numpy.ndarray of shape (n,)
        Raw mean-one (Hájek) weights of the logged rows.
    codes : numpy.ndarray of int, shape (n,)
        Code of each row's distinct judge score (and covariates) — a column of ``index``.
    fold : numpy.ndarray of int, shape (n,)
        Prompt fold per row, ``0..K−1`` (the oracle folds of the calibrator).
    index : numpy.ndarray of shape (K, U)
        ``index[k, u]``: calibrated reward of distinct value ``u`` under the calibration fitted
        *without fold k's labels*. It orders the weights of fold ``k`` and is the reward in the
        stacking objective there.
    y : numpy.ndarray of shape (n,)
        Oracle label on [0, 1], NaN where unlabelled (used for the residual term of the
        stacking objective, on the other folds' rows only).
    tiebreak : numpy.ndarray of shape (U,), optional
        Breaks ties of the index (e.g. the judge score of each distinct value), so values the
        calibration pools into one flat step are still ordered rather than averaged together.
    var_cap : float, optional
        Bound on the variance of the stabilised weights, reached by blending toward one.
    stable_residual : bool
        Whether the estimator puts the stabilised weights on the oracle residual term too
        (then the stacking objective does as well); by default the raw weights carry it.
    cache : dict, optional
        A dict kept between calls on the *same* ``w``, ``codes``, ``fold``, ``y``, ``tiebreak``
        and ``stable_residual`` that differ only in ``index`` (the OUA jackknife's runs). It
        keeps what does not depend on ``index`` (the per-cell sums, each fold's rows), the
        candidate fits by the order ``index`` induces and the folds they leave out (a monotone
        calibration orders the values as their scores do, whichever folds it was fitted on), and
        the first call's per-fold results (stacking weights and stabilised weights of the fold's
        rows), keyed by a digest of the row of ``index`` that made them: the jackknife run that
        deletes fold ``d`` orders fold ``d``'s rows by the calibration without fold ``d``, as
        the full run does, and so repeats that fold's block exactly. The stacking of every other
        fold is recomputed with its own calibration. Results are identical with or without it.
    shared : dict, optional
        A dict kept for one analysis and handed to the calls of all its targets: what does not
        depend on the weights (each fold's rows, the labelled rows' cells, the weight-free cell
        sums) is computed once for the targets whose ``codes``, ``fold`` and ``y`` are the same
        objects. Results are identical with or without it.

    Returns
    -------
    SimcalWeights

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.integers(0, 5, 400); w = np.exp(0.5 * s + rng.normal(0, 1, 400))
    >>> w = w / w.mean()
    >>> idx = np.tile(np.arange(5) / 4.0, (2, 1))
    >>> res = simcal_weights(w, s, np.arange(400) % 2, idx, np.full(400, np.nan))
    >>> bool(np.var(res.weights) < np.var(w)), round(float(res.weights.mean()), 12)
    (True, 1.0)

    It never raises: one row 800 nats above the rest (its fold holds all the raw weight) gives
    finite weights and a recorded reason.

    >>> lw = np.zeros(400); lw[0] = 800.0
    >>> odd = simcal_weights(hajek_weights(lw), s, np.arange(400) % 2, idx, np.full(400, np.nan))
    >>> bool(np.all(np.isfinite(odd.weights))), len(odd.fallbacks) > 0
    (True, True)
    """
    n = w.shape[0]
    k_folds, n_codes = index.shape
    if var_cap is not None and not (var_cap > 0):
        raise CJEInputError(f"var_cap must be a positive number or None; got {var_cap!r}.")
    fallbacks: list[str] = []
    w_in = w
    cache = _scoped(cache, w_in, codes, fold, y)
    if "checked" not in cache:  # the raw weights checked once per set of rows (every OUA run)
        w = np.asarray(w, dtype=float)
        bad = ~np.isfinite(w) | (w < 0)
        n_bad = int(bad.sum()) if bad.any() else 0
        if n_bad:  # the pipeline's Hájek weights never are; keep the stabiliser total anyway
            w = np.where(bad, 0.0, w)
        cache["checked"] = (w, n_bad, bool(w.sum() > 0))
    w, n_bad, positive = cache["checked"]
    if n_bad:
        fallbacks.append(f"{n_bad} non-finite or negative raw weight(s) set to 0")
    if not positive:
        fallbacks.append("every raw weight is zero: uniform weights")
        return SimcalWeights(weights=np.ones(n), mixture=np.tile([0.0, 0.0, 1.0], (k_folds, 1)),
                             gamma=0.0, fallbacks=tuple(fallbacks))
    if "st" not in cache:
        # what does not depend on the index: the cell sums, each fold's rows and their codes
        # (the parts without the weights shared with the other targets on these rows)
        common = _rows_parts(codes, fold, y, n_codes, k_folds, shared)
        cache["st"] = _CellStats(w, codes, fold, y, n_codes, k_folds, common)
        cache["rows"], cache["codes_of"] = common["rows"], common["codes_of"]
        cache["blocks"] = {}
        cache["means"] = {}
    st, blocks = cache["st"], cache["blocks"]
    folds_memo = cache.setdefault("folds", {})
    out = np.empty(n)
    mixture = np.zeros((k_folds, 3))
    for k in range(k_folds):
        ix = index[k]
        rows_k = cache["rows"][k]
        rank = _rank_of(ix, tiebreak)
        rank_key = _digest(rank)
        bkey = (k, _digest(ix), rank_key, stable_residual)
        if bkey in blocks:  # the same fold ordered by the same calibration: the same block
            mixture[k], wk, why = blocks[bkey]
            fallbacks += why
            out[rows_k] = wk
            continue
        fit = functools.partial(_fit_candidates, cache, st, rank, rank_key)
        # what depends on the fold and the order only (not on the index's values): the same in
        # every run whose calibration orders the values alike, computed once
        fkey = (k, rank_key)
        if fkey not in folds_memo:
            cands = fit((k,))
            tables = _candidate_tables(st, fit, k, k_folds, n_codes)
            for a in tables or ():
                a.flags.writeable = False  # shared by the runs: read only
            used = cache.get("fit_floats", 0) + 2 * k_folds * n_codes
            if used > _FIT_MEMO_BUDGET:
                folds_memo = {}  # this call only
            else:
                cache["fit_floats"] = used
            folds_memo[fkey] = (cands, tables)
        cands, tables = folds_memo[fkey]
        pi, why = _stack_fold(st, fit, ix, k, k_folds, n_codes, stable_residual, tables)
        mixture[k] = pi
        msgs = [why] if why else []
        if rows_k.size:
            out[rows_k] = _apply_fold(cands, cache["codes_of"][k], w, rows_k, pi, k, mixture, msgs,
                                      cache["means"], fkey)
        fallbacks += msgs
        if len(blocks) < k_folds:
            # the first run's blocks: the jackknife run that deletes fold k orders fold k's rows
            # by the calibration without fold k, as the full run did, and repeats its block
            blocks[bkey] = (mixture[k].copy(), out[rows_k].copy(), msgs)
    gamma = 0.0
    if var_cap is not None:
        v = float(np.var(out))
        if v > var_cap:
            gamma = 1.0 - float(np.sqrt(var_cap / v))
            out = 1.0 + (1.0 - gamma) * (out - 1.0)
    return SimcalWeights(weights=out, mixture=mixture, gamma=gamma, fallbacks=tuple(fallbacks))


# ------------------------------------------------------------------------------------------------
# SIMCal-W on cell sums alone (the out-of-core engines: cje.pipeline.streaming_logged)


def cell_stats(N: np.ndarray, Sw: np.ndarray, Sw2: np.ndarray, w_lab: np.ndarray,
               codes_lab: np.ndarray, fold_lab: np.ndarray, y_lab: np.ndarray) -> _CellStats:
    """The :class:`_CellStats` of a target's rows from their sums per (fold, value) cell —
    rows ``N``, ``Σw``, ``Σw²`` of shape (K, U) — and its labelled rows (raw weight, value code,
    fold, label on [0, 1]), in row order: the labelled sums are those of the rows' own
    constructor, bit for bit; the others differ only by the order of summation.

    Examples
    --------
    >>> w = np.array([0.5, 1.5, 1.0, 1.0]); codes = np.array([0, 1, 0, 1])
    >>> fold = np.array([0, 0, 1, 1]); y = np.array([0.2, np.nan, np.nan, 0.4])
    >>> rows = _CellStats(w, codes, fold, y, 2, 2)
    >>> key = fold * 2 + codes
    >>> tab = lambda v: np.bincount(key, weights=v, minlength=4).reshape(2, 2)
    >>> lab = ~np.isnan(y)
    >>> sums = cell_stats(tab(None), tab(w), tab(w * w), w[lab], codes[lab], fold[lab], y[lab])
    >>> all(np.array_equal(getattr(rows, a), getattr(sums, a)) for a in ("N", "Sw", "Lwy2"))
    True
    """
    k, n_codes = N.shape
    st = object.__new__(_CellStats)
    st.N, st.Sw, st.Sw2 = (np.asarray(a, dtype=float) for a in (N, Sw, Sw2))
    key = fold_lab * n_codes + codes_lab
    size = k * n_codes

    def tab(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(key, weights=weights, minlength=size).reshape(k, n_codes).astype(float)

    wl, yl = w_lab, y_lab
    st.L1, st.Ly, st.Ly2 = tab(None), tab(yl), tab(yl * yl)
    st.Lw, st.Lwy, st.Lwy2 = tab(wl), tab(wl * yl), tab(wl * yl * yl)
    w2 = wl * wl
    st.Lw2, st.Lw2y, st.Lw2y2 = tab(w2), tab(w2 * yl), tab(w2 * yl * yl)
    st._without, st._outside = {}, {}
    return st


@dataclass(frozen=True, slots=True, eq=False)
class AffineSimcal:
    """SIMCal-W weights in closed form per cell: row ``i`` of fold ``k`` with value ``u`` and raw
    weight ``w_i`` gets ``a[k, u] + b[k]·w_i`` (the candidates are constant within a cell, the
    baseline is the raw weight; renormalisation and the variance cap are affine too), exactly
    :func:`simcal_weights`'s weight while the floor ``1e-9`` does not bind.

    Attributes
    ----------
    a : numpy.ndarray of shape (K, U)
    b : numpy.ndarray of shape (K,)
    mixture, gamma, fallbacks
        As in :class:`SimcalWeights`.
    """

    a: np.ndarray
    b: np.ndarray
    mixture: np.ndarray
    gamma: float
    fallbacks: tuple[str, ...] = ()


def simcal_affine(st: _CellStats, w_min: np.ndarray, index: np.ndarray, *,
                  tiebreak: np.ndarray | None = None, var_cap: float | None = None,
                  stable_residual: bool = False, cache: dict | None = None) -> AffineSimcal:
    """:func:`simcal_weights` from cell sums: the same candidate fits, stacking and mixing (the
    functions :func:`simcal_weights` calls), with every mean over a fold's rows taken from the
    cells, and the weights returned as :class:`AffineSimcal` instead of one per row.

    Parameters
    ----------
    st : _CellStats
        :func:`cell_stats` of the target's rows.
    w_min : numpy.ndarray of shape (K, U)
        Smallest raw weight in each cell (``inf`` for empty cells): whether the floor binds.
    index, tiebreak, var_cap, stable_residual
        As in :func:`simcal_weights`.
    cache : dict, optional
        Kept between calls on the same ``st`` (the OUA jackknife's runs): the candidate fits.

    Returns
    -------
    AffineSimcal

    Raises
    ------
    CJEInputError
        The floor ``1e-9`` would bind on some row (a cell's smallest raw weight mixes to less
        than it): not computable from cell sums.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.integers(0, 5, 400); w = np.exp(0.5 * s + rng.normal(0, 1, 400))
    >>> w = w / w.mean(); fold = np.arange(400) % 2
    >>> idx = np.tile(np.arange(5) / 4.0, (2, 1)); y = np.full(400, np.nan)
    >>> rows = simcal_weights(w, s, fold, idx, y)
    >>> st = _CellStats(w, s, fold, y, 5, 2)
    >>> lo = np.full((2, 5), np.inf); np.minimum.at(lo, (fold, s), w)
    >>> aff = simcal_affine(st, lo, idx)
    >>> bool(np.allclose(aff.a[fold, s] + aff.b[fold] * w, rows.weights, rtol=1e-12))
    True
    """
    k_folds, n_codes = index.shape
    cache = {} if cache is None else cache
    fallbacks: list[str] = []
    a = np.zeros((k_folds, n_codes))
    b = np.zeros(k_folds)
    mixture = np.zeros((k_folds, 3))
    for k in range(k_folds):
        ix = index[k]
        n_k = float(st.N[k].sum())
        rank = _rank_of(ix, tiebreak)
        fit = functools.partial(_fit_candidates, cache, st, rank, _digest(rank))
        cands = fit((k,))
        pi, why = _stack_fold(st, fit, ix, k, k_folds, n_codes, stable_residual)
        mixture[k] = pi
        msgs = [why] if why else []
        if n_k > 0:
            inc, dec = cands
            means = np.array([float((inc * st.N[k]).sum()) / n_k,
                              float((dec * st.N[k]).sum()) / n_k, float(st.Sw[k].sum()) / n_k])
            pi, usable = _usable_mixture(means, pi, k, mixture, msgs)
            ak = np.zeros(n_codes)
            bk = 0.0
            for p, part, m, u in zip(pi, (inc, dec, None), means, usable, strict=True):
                if u and p > 0:
                    if part is None:
                        bk = bk + p / m
                    else:
                        ak = ak + p * (part / m)
            cells = st.N[k] > 0
            if np.any(ak[cells] + bk * w_min[k][cells] < _FLOOR):
                raise CJEInputError(
                    f"SIMCal-W's floor of {_FLOOR:g} on the stabilised weights binds on some rows "
                    f"of fold {k} (raw weights below {_FLOOR:g} of the mean carry the mixture): "
                    "out of core that case is not computed. Use engine='memory' (it needs the "
                    "data in memory).")
            mean = float((ak * st.N[k] + bk * st.Sw[k]).sum()) / n_k
            a[k], b[k] = ak / mean, bk / mean
        fallbacks += msgs
    gamma = 0.0
    if var_cap is not None:
        n = float(st.N.sum())
        s1 = float((a * st.N + b[:, None] * st.Sw).sum())
        s2 = float((a * a * st.N + 2 * a * b[:, None] * st.Sw + (b * b)[:, None] * st.Sw2).sum())
        v = s2 / n - (s1 / n) ** 2
        if v > var_cap:
            gamma = 1.0 - float(np.sqrt(var_cap / v))
            a, b = gamma + (1.0 - gamma) * a, (1.0 - gamma) * b
    return AffineSimcal(a=a, b=b, mixture=mixture, gamma=gamma, fallbacks=tuple(fallbacks))
