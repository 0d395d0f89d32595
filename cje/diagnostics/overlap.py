"""Overlap diagnostics of importance weights (docs: Methods › Diagnostics and gates).

Pure functions on 1-D arrays. Weights are non-negative and need not be normalised (every statistic
here is scale-free); in the pipeline they are the mean-one Hájek weights (docs: Off-policy › The data),
``w_i = n·exp(λ_i − max λ) / Σ_j exp(λ_j − max λ)``.

* :func:`ess_fraction`, :func:`max_weight`, :func:`top_mass`: how concentrated the weights are.
* :func:`hill_index`: Hill estimate of the tail index of the weights (< 2: infinite variance).
* :func:`judge_affinity`: binned Bhattacharyya coefficient of the logged and target judge-score
  distributions.
* :func:`ttc`, :func:`cle_factor`: target-typicality coverage and the coverage-limited efficiency
  factor of the CJE paper (Landesberg et al., arXiv 2512.11150).
* :func:`mean_raw_weight`, :func:`near_zero_share`: whether the target has support on the logged
  responses at all (the mean of the *unnormalised* ratios ``exp(λ)`` is ≈ 1 under correct
  log-probabilities; Hájek weights hide a wrong level, since they are mean-one by construction).
* :func:`weight_summary`: all of the above in one dict.

Bad input (empty, non-finite or negative weights, all-zero weights, mismatched lengths, a share or
mass outside (0, 1], fewer than 2 bins, …) raises :class:`cje.errors.CJEInputError` naming the
argument.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from cje.errors import CJEInputError

__all__ = [
    "ESS_GATE",
    "DR_ESS_GATE",
    "WEIGHTING_ESS_GATE",
    "HILL_GATE",
    "HILL_RESIDUAL",
    "TTC_GATE",
    "ess_fraction",
    "max_weight",
    "top_mass",
    "hill_index",
    "judge_affinity",
    "ttc",
    "cle_factor",
    "mean_raw_weight",
    "near_zero_share",
    "weight_summary",
]

#: Overlap gates on the raw weights (docs: Methods › Diagnostics and gates): below these an estimate is
#: CAUTION.
ESS_GATE, TTC_GATE, HILL_GATE = 0.10, 0.30, 2.0
#: Raw-weight ESS below which a doubly robust estimate is CAUTION even though its level rests on
#: the outcome model. Before the residual term's variance looked at every logged row's weight
#: (:func:`cje.estimators.offpolicy.tail_inflation`), DR intervals covered 0.90–0.91 at
#: population ESS 10% (`study_overlap.md`, 2,000 prompts) and 15% (`study_probes.md`) while most
#: were OK; with it they cover 0.966–0.968 and 0.964–0.968 there, and the gate stays as a second
#: line: no variance can see a weight tail the logged data never reached.
DR_ESS_GATE = 0.20
#: Raw-weight ESS below which an IPS-family estimate (IPS, SNIPS, calibrated IPS) is CAUTION. A
#: sample that missed the target's few high-weight responses looks better than the population:
#: on ``make_offpolicy_eval`` at population ESS 10% (500 prompts, `study_overlap.md`), weighted
#: estimates with sample ESS 20–30% covered 0.28–0.96 (IPS 0.28–0.68), and those that passed
#: the 10% ESS and Hill gates (OK) covered 0.64–0.81 without judge noise. No weighting of the rows
#: seen can stand for rows never seen; the doubly robust estimators, whose level rests on the
#: outcome model, covered there (0.99–1.00 of their OK estimates).
WEIGHTING_ESS_GATE = 0.30
#: Hill tail index of the raw weights below which the largest weights dominate their sample mean
#: (a Pareto tail of index below 1 has no mean); ``residual_weights="auto"`` then weights the oracle
#: residual by the stabilised weights (docs: Off-policy › Weight tails).
HILL_RESIDUAL = 1.0

# Relative tolerance used when comparing a cumulative weight sum with a target share of the total,
# so that e.g. 9 equal weights out of 10 count as holding 90% despite floating-point rounding.
_REL_TOL = 1e-12


# --------------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------------


def _as_1d(x: object, name: str) -> np.ndarray:
    """``x`` as a non-empty 1-D float64 array of finite values, or a CJEInputError naming ``name``."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError(f"{name} must be a 1-D array of numbers; got {type(x).__name__}.") from None
    if a.ndim != 1:
        raise CJEInputError(f"{name} must be a 1-D array; got an array of shape {a.shape}.")
    if a.size == 0:
        raise CJEInputError(f"{name} is empty; pass at least one value.")
    bad = np.flatnonzero(~np.isfinite(a))
    if bad.size:
        raise CJEInputError(
            f"{name} has a non-finite value (NaN or ±inf) at index {bad[0]} ({bad.size} in all); "
            f"drop or fix those rows."
        )
    return a


def _weights(w: object, name: str = "w") -> np.ndarray:
    """Validated weights: non-empty, 1-D, finite, non-negative, not all zero."""
    a = _as_1d(w, name)
    neg = np.flatnonzero(a < 0)
    if neg.size:
        raise CJEInputError(
            f"{name} has a negative weight at index {neg[0]} ({a[neg[0]]!r}); importance weights must "
            f"be non-negative."
        )
    if not np.any(a > 0):
        raise CJEInputError(
            f"{name} is all zeros; at least one weight must be positive (check the log-probabilities "
            f"that produced it)."
        )
    return a


def _same_length(a: np.ndarray, name_a: str, b: np.ndarray, name_b: str) -> None:
    if a.size != b.size:
        raise CJEInputError(
            f"{name_a} has {a.size} values but {name_b} has {b.size}; they must be aligned row by row."
        )


def _unit_share(x: object, name: str) -> float:
    """A real number in (0, 1]."""
    msg = f"{name} must be a number in (0, 1]; got {x!r}."
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise CJEInputError(msg)
    v = float(x)
    if not (0.0 < v <= 1.0):  # also rejects NaN
        raise CJEInputError(msg)
    return v


def _log_probs(x: object, name: str) -> np.ndarray:
    a = _as_1d(x, name)
    pos = np.flatnonzero(a > 0)
    if pos.size:
        raise CJEInputError(
            f"{name} has a positive log-probability at index {pos[0]} ({a[pos[0]]!r}); log-probabilities "
            f"must be ≤ 0 (pass log π(a|x), not a probability or a negated value)."
        )
    return a


def _scale(scale: object) -> tuple[float, float]:
    msg = f"scale must be a pair (lo, hi) of finite numbers with lo < hi, e.g. (0.0, 1.0); got {scale!r}."
    try:
        pair = np.asarray(scale, dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError(msg) from None
    if pair.shape != (2,) or not np.all(np.isfinite(pair)) or not pair[0] < pair[1]:
        raise CJEInputError(msg)
    return float(pair[0]), float(pair[1])


def _scores(x: object, name: str, lo: float, hi: float) -> np.ndarray:
    a = _as_1d(x, name)
    out = np.flatnonzero((a < lo) | (a > hi))
    if out.size:
        raise CJEInputError(
            f"{name} has a value outside scale=({lo:g}, {hi:g}) at index {out[0]} ({a[out[0]]!r}); "
            f"declare the judge scale with scale=(lo, hi) (values are not clipped)."
        )
    return a


# --------------------------------------------------------------------------------------------------
# concentration of the weights
# --------------------------------------------------------------------------------------------------


def ess_fraction(w: np.ndarray) -> float:
    """Effective-sample-size fraction ``(Σw)² / (n Σw²)``.

    Equals 1 for equal weights and ``1/n`` when a single weight is non-zero.

    Parameters
    ----------
    w : numpy.ndarray
        Non-negative importance weights, not all zero (any scale).

    Returns
    -------
    float
        The ESS fraction, in ``[1/n, 1]``.

    Examples
    --------
    >>> ess_fraction(np.array([1.0, 1.0, 1.0, 1.0]))
    1.0
    >>> ess_fraction(np.array([3.0, 1.0, 0.0, 0.0]))  # 4² / (4 · 10)
    0.4
    """
    return _ess(_weights(w, "w"))


def _ess(a: np.ndarray) -> float:
    """:func:`ess_fraction` of validated weights."""
    a = a / a.mean()  # mean-one scale (entries ≤ n): no overflow of Σw² for huge raw weights
    return float(a.sum() ** 2 / (a.size * np.sum(a * a)))


def max_weight(w: np.ndarray) -> float:
    """Largest weight on the mean-one scale, ``max(w) / mean(w)``.

    Parameters
    ----------
    w : numpy.ndarray
        Non-negative importance weights, not all zero (any scale).

    Returns
    -------
    float
        ``max(w) / mean(w)``, in ``[1, n]``.

    Examples
    --------
    >>> max_weight(np.array([3.0, 1.0, 0.0, 0.0]))  # 3 / 1
    3.0
    """
    a = _weights(w, "w")
    return float(a.max() / a.mean())


def top_mass(w: np.ndarray, share: float = 0.05) -> float:
    """Fraction of ``Σw`` held by the largest ``⌈share·n⌉`` weights.

    ``⌈share·n⌉`` is computed with a 1e-9 allowance for floating-point rounding (so ``0.07·100``, which
    is ``7.000000000000001`` in floating point, gives 7 weights) and is at least 1.

    Parameters
    ----------
    w : numpy.ndarray
        Non-negative importance weights, not all zero (any scale).
    share : float, default 0.05
        Share of the rows counted as "top", in (0, 1].

    Returns
    -------
    float
        The top-``share`` mass, in ``[share, 1]`` up to the rounding of ``⌈share·n⌉``.

    Examples
    --------
    >>> top_mass(np.array([5.0, 2.0, 1.0, 1.0, 1.0]), share=0.4)  # top 2 of 5: (5 + 2) / 10
    0.7
    """
    share = _unit_share(share, "share")
    return _top_mass(_weights(w, "w"), share)


def _top_k(n: int, share: float) -> int:
    """``⌈share·n⌉`` (with the 1e-9 allowance), at least 1."""
    return max(1, math.ceil(share * n - 1e-9))


def _top_mass(a: np.ndarray, share: float, top: np.ndarray | None = None) -> float:
    """:func:`top_mass` of validated weights; ``top``: their largest entries in descending order
    (:func:`_largest`), when already at hand and at least ``⌈share·n⌉`` of them (the sum of
    its first ``k`` is then the same sum, of the same numbers in the same order)."""
    k = _top_k(a.size, share)
    head = _largest(a, k) if top is None or top.size < k else top[:k]
    return float(head.sum() / a.sum())


def _largest(a: np.ndarray, k: int, ascending: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` largest entries in descending order (``np.sort(a)[::-1][:k]``, through a
    partition: the same entries in the same order)."""
    if ascending is not None:  # the same entries in the same order, from the sorted array
        return ascending[::-1] if k >= a.size else ascending[a.size - k:][::-1]
    if k >= a.size:
        return np.sort(a)[::-1]
    return np.sort(np.partition(a, a.size - k)[a.size - k:])[::-1]


def hill_index(w: np.ndarray, k: int | None = None) -> float:
    """Hill estimate of the tail index ``α`` of the weights.

    With the weights sorted descending, ``w_(1) ≥ … ≥ w_(n)``,
    ``α̂ = k / Σ_{i=1..k} (log w_(i) − log w_(k+1))``. For Pareto-tailed weights
    ``P(W > t) ∝ t^(−α)``; ``α < 2`` means the weights have infinite variance (the IPS variance is not
    estimable) and ``α < 1`` infinite mean. The estimator's asymptotic standard error is
    ``α / sqrt(k)``.

    Parameters
    ----------
    w : numpy.ndarray
        Non-negative importance weights, not all zero (any scale: the estimate is scale-free).
    k : int, optional
        Number of upper order statistics, ``1 ≤ k ≤ n − 1``. Default
        ``min(max(10, ⌊0.05 n⌋), ⌊0.1 n⌋, n − 1)`` (docs: Methods › Diagnostics and gates).

    Returns
    -------
    float
        ``α̂`` (> 0). ``nan`` when ``n < 20`` (too few weights for a tail estimate) or when the top
        ``k + 1`` weights are all equal (no tail to measure: the sum is 0). ``0.0`` when
        ``w_(k+1) = 0``, i.e. at most ``k`` weights are positive: the sum is ``+∞`` and ``k/∞ = 0``,
        the heaviest possible tail.

    Examples
    --------
    Top ``k + 1 = 3`` of ``[8, 4, 2, 1, …]`` (n = 20): ``α̂ = 2 / (log 4 + log 2) = 2 / (3 log 2)``.

    >>> w = np.array([8.0, 4.0, 2.0] + [1.0] * 17)
    >>> round(hill_index(w, k=2), 6), round(2 / (3 * math.log(2)), 6)
    (0.961797, 0.961797)
    >>> hill_index(np.ones(19))
    nan
    """
    a = _weights(w, "w")
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral)):
        raise CJEInputError(f"k must be an integer in [1, n − 1] or None; got {k!r}.")
    n = a.size
    if n < 20:
        return float("nan")
    if k is None:
        kk = _hill_k(n)
    else:
        kk = int(k)
        if not 1 <= kk <= n - 1:
            raise CJEInputError(f"k must be in [1, n − 1] = [1, {n - 1}] for {n} weights; got {kk}.")
    return _hill(_largest(a, kk + 1), kk)


def _hill_k(n: int) -> int:
    """:func:`hill_index`'s default ``k`` for ``n ≥ 20`` weights."""
    return min(max(10, n // 20), n // 10, n - 1)


def _hill(top: np.ndarray, kk: int) -> float:
    """:func:`hill_index` from the ``kk + 1`` largest weights in descending order."""
    if top[0] == top[kk]:
        return float("nan")
    if top[kk] == 0.0:
        return 0.0
    excess = np.log(top[:kk]) - np.log(top[kk])
    return float(kk / excess.sum())


# --------------------------------------------------------------------------------------------------
# judge-space affinity
# --------------------------------------------------------------------------------------------------


def judge_affinity(
    s_logged: np.ndarray,
    w: np.ndarray | None = None,
    s_target: np.ndarray | None = None,
    *,
    bins: int = 20,
    scale: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Binned Bhattacharyya coefficient ``A_B = Σ_b sqrt(p_b q_b)`` of judge-score distributions.

    ``bins`` equal-width bins span ``scale``; a score equal to the upper end goes in the last bin,
    and a score within :data:`BIN_EDGE_TOL` bin widths below an edge (a judge's grid on the
    edges, in floating point) in the bin above it, whatever the scale's units.
    ``p`` is the (unweighted) histogram of the logged scores; ``q`` is the target's histogram: of
    ``s_target`` (fresh draws of the target policy) when given, else of the logged scores weighted by
    ``w``. Exactly one of ``w`` and ``s_target`` must be given. ``A_B = 1`` for identical binned
    distributions and ``0`` for disjoint ones.

    Parameters
    ----------
    s_logged : numpy.ndarray
        Judge scores of the logged rows, within ``scale``.
    w : numpy.ndarray, optional
        Importance weights of the logged rows (raw weights estimate the target's marginal).
    s_target : numpy.ndarray, optional
        Judge scores of fresh draws of the target policy, within ``scale``.
    bins : int, default 20
        Number of bins, at least 2.
    scale : tuple of float, default (0.0, 1.0)
        ``(lo, hi)`` of the judge scale. Scores outside it are an input error (not clipped).

    Returns
    -------
    float
        ``A_B`` in ``[0, 1]``.

    Examples
    --------
    Two bins: logged ``p = (2/4, 2/4)``; target ``q = (1/4, 3/4)``, from fresh draws or from weights.

    >>> s = np.array([0.1, 0.2, 0.7, 0.9])
    >>> round(judge_affinity(s, s_target=np.array([0.3, 0.6, 0.8, 1.0]), bins=2), 6)
    0.965926
    >>> round(judge_affinity(s, w=np.array([1.0, 1.0, 3.0, 3.0]), bins=2), 6)
    0.965926
    """
    return _affinity(s_logged, w, s_target, bins=bins, scale=scale)


def _affinity(s_logged: np.ndarray, w: np.ndarray | None, s_target: np.ndarray | None, *,
              bins: int, scale: tuple[float, float], memo: dict | None = None) -> float:
    """:func:`judge_affinity`; ``memo`` keeps the logged scores' histogram for the next call
    with the same ``s_logged`` object and bins (the targets of one analysis that share the
    logged rows: the same integer counts, not recounted)."""
    if isinstance(bins, bool) or not isinstance(bins, numbers.Integral) or bins < 2:
        raise CJEInputError(f"bins must be an integer ≥ 2, e.g. 20; got {bins!r}.")
    lo, hi = _scale(scale)
    if (w is None) == (s_target is None):
        # (checked before the scores, as judge_affinity always has)
        _scores(s_logged, "s_logged", lo, hi)
        raise CJEInputError(
            "judge_affinity needs exactly one of w (importance weights of the logged rows) or s_target "
            "(judge scores of fresh target draws); got " + ("both." if w is not None else "neither.")
        )
    key = (int(bins), lo, hi)
    hit = None if memo is None else memo.get("affinity_p")
    if hit is not None and hit[0] is s_logged and hit[1] == key:
        s, p = hit[2], hit[3].copy()
    else:
        s = _scores(s_logged, "s_logged", lo, hi)
        p = _bin_counts(s, int(bins), lo, hi).astype(np.float64)
        if memo is not None:
            memo["affinity_p"] = (s_logged, key, s, p.copy())
    if s_target is not None:
        t = _scores(s_target, "s_target", lo, hi)
        q = _bin_counts(t, int(bins), lo, hi).astype(np.float64)
    else:
        ww = _weights(w, "w")
        _same_length(ww, "w", s, "s_logged")
        q = _bin_counts(s, int(bins), lo, hi, weights=ww)
    p /= p.sum()
    q = q / q.sum()
    return float(min(1.0, np.sum(np.sqrt(p * q))))


#: A score this many bin widths or less below a bin edge counts in the bin above it (the judge-score
#: affinity). A judge's grid puts its scores on the edges (0.05 steps, 20 bins), and floating point
#: puts the same grid point on either side of its edge depending on the scale: 0.35 lies below
#: ``linspace(0, 1, 21)[7] = 0.35000000000000003`` (bin 6) where 35 on 0–100 is the edge itself (bin
#: 7). The tolerance puts both in bin 7 (float32 scores read as float64 are off by < 2e-6 widths).
BIN_EDGE_TOL = 1e-5


def _bin_counts(a: np.ndarray, bins: int, lo: float, hi: float,
                weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (or, with ``weights``, weight sums) of the values in ``bins`` equal bins of
    ``[lo, hi]``: a value's bin is ``floor((a − lo)/(hi − lo)·bins + BIN_EDGE_TOL)``, the last bin
    closed; values outside ``[lo, hi]`` are not counted. As ``numpy.histogram`` except that a
    value within :data:`BIN_EDGE_TOL` bin widths below an edge is counted above it, so the bins
    do not depend on the judge scale's units (:data:`BIN_EDGE_TOL`)."""
    a = np.asarray(a, dtype=np.float64)
    idx = np.floor((a - lo) / (hi - lo) * bins + BIN_EDGE_TOL)
    inside = (a >= lo) & (a <= hi)
    np.clip(idx, 0, bins - 1, out=idx)
    idx = idx.astype(np.intp)
    if inside.all():
        out = np.bincount(idx, weights=weights, minlength=bins)
    else:
        out = np.bincount(idx[inside], weights=None if weights is None else np.asarray(weights)[inside],
                          minlength=bins)
    return out


# --------------------------------------------------------------------------------------------------
# target-typicality coverage and coverage-limited efficiency
# --------------------------------------------------------------------------------------------------


def _stable_order(key: np.ndarray) -> np.ndarray:
    """``np.argsort(key, kind="stable")`` of finite values, faster when they have no ties.

    numpy's default (SIMD quick-) sort is several times faster than its merge sort at 10⁶ values;
    it may order tied values differently, so when two sorted neighbours are equal the stable sort
    is redone. Without ties both orders are the same permutation.

    Examples
    --------
    >>> _stable_order(np.array([0.3, 0.1, 0.2])).tolist()
    [1, 2, 0]
    >>> k = np.array([0.0, -0.0, 1.0, 0.0])   # ties (0.0 == −0.0): in row order
    >>> _stable_order(k).tolist() == np.argsort(k, kind="stable").tolist() == [0, 1, 3, 2]
    True
    """
    order = np.argsort(key)
    sk = key[order]
    if sk.size > 1 and bool((sk[1:] == sk[:-1]).any()):
        return np.argsort(key, kind="stable")
    return order


def _typical_prefix(logp_target: object, w: object, mass: object) -> tuple[np.ndarray, np.ndarray]:
    """Validated weights and the row indices of the target-typical region, in surprisal order."""
    m = _unit_share(mass, "mass")
    lp = _log_probs(logp_target, "logp_target")
    a = _weights(w, "w")
    _same_length(a, "w", lp, "logp_target")
    order = _stable_order(-lp)  # ascending surprisal −log π_target, ties in row order
    cum = np.cumsum(a[order])
    need = m * cum[-1] * (1.0 - _REL_TOL)
    length = int(np.searchsorted(cum, need, side="left")) + 1  # first prefix with cum ≥ need
    return a, order[: min(length, a.size)]


def ttc(logp_target: np.ndarray, w: np.ndarray, *, mass: float = 0.9) -> float:
    """Target-typicality coverage: share of logged rows in the target-typical region.

    Order the logged rows by target surprisal ``−log π_target(a|x)`` ascending (ties keep row order),
    take the shortest prefix whose weights hold at least ``mass`` of ``Σw`` (compared with a relative
    tolerance of 1e-12 against rounding), and return ``prefix length / n``. The prefix is the
    region ``T`` where the target policy concentrates ``mass`` of its probability (the weights carry the
    logged rows to the target distribution); TTC estimates the logging policy's probability of ``T``.
    Low TTC means the logging policy rarely produces the responses the target policy favours, which no
    reweighting can repair (docs: Methods › Diagnostics and gates; TTC < 0.30 → CAUTION for IPS).

    The CJE paper defines surprisal per token (``−log π_target(a|x) / |a|``); pass
    ``logp_target / n_tokens`` for that variant. Pass raw (not stabilised) weights: the region is
    defined by the target's distribution.

    Parameters
    ----------
    logp_target : numpy.ndarray
        ``log π_target(a_i|x_i)`` of the logged rows (≤ 0).
    w : numpy.ndarray
        Importance weights of the logged rows, non-negative, not all zero.
    mass : float, default 0.9
        Target mass defining the region, in (0, 1].

    Returns
    -------
    float
        TTC in ``(0, 1]``.

    Examples
    --------
    Ten equal weights: 9 rows hold 90% of the mass. One row with 91% of the mass, most typical: 1 row.

    >>> lp = -np.arange(1.0, 11.0)
    >>> ttc(lp, np.ones(10)), ttc(lp, np.array([91.0] + [1.0] * 9))
    (0.9, 0.1)
    """
    a, region = _typical_prefix(logp_target, w, mass)
    return region.size / a.size


def cle_factor(logp_target: np.ndarray, w: np.ndarray, *, mass: float = 0.9) -> float:
    """Coverage-limited efficiency (CLE) factor ``α/sqrt(β) · sqrt(1 + χ²_T)``.

    The CJE paper's CLE bound says that any logs-only estimator of a policy value has standard error
    at least ``σ_T · α / sqrt(β n) · sqrt(1 + χ²_T)``, where ``T`` is the target-typical region (see
    :func:`ttc`), ``α`` the target's mass on ``T``, ``β`` the logging policy's mass on ``T``, ``σ_T``
    the outcome noise in ``T`` and ``χ²_T`` the χ²-divergence of the two policies inside ``T``. This
    function returns the dimensionless inflation factor multiplying ``σ_T / sqrt(n)``:

    * ``T``: the target-typical prefix of :func:`ttc` (same ``mass``);
    * ``α = Σ_{i∈T} w_i / Σ_i w_i`` (at least ``mass`` by construction);
    * ``β = |T| / n`` (= TTC);
    * ``χ²_T = n_T Σ_{i∈T} w_i² / (Σ_{i∈T} w_i)² − 1``, the variance of the weights inside ``T``
      rescaled to mean one there;
    * ``CLE = α / sqrt(β) · sqrt(1 + χ²_T)``: coverage penalty times shape mismatch.

    It is on the standard-error scale; squaring it gives the variance inflation. Values near 1 mean
    the logs can support a precise estimate; large values mean they cannot, however healthy the ESS.

    Source: Landesberg et al., "Causal Judge Evaluation: Calibrated Surrogate Metrics for LLM
    Systems" (arXiv 2512.11150), CLE bound, as implemented in the reference package ``cje-eval`` by
    CIMO Labs (github.com/cimo-labs/cje, ``cje/diagnostics/overlap.py``, ``compute_cle_diagnostics``
    and ``CLEDiagnostics.cle_factor``; the OPE line ``cje-eval==0.3.*``). Two details differ from that
    implementation: ``T`` is the stable-order prefix of :func:`ttc` (the reference includes every row
    tied with the threshold surprisal), and surprisal is whatever ``logp_target`` holds (the reference
    optionally divides by token counts).

    Parameters
    ----------
    logp_target : numpy.ndarray
        ``log π_target(a_i|x_i)`` of the logged rows (≤ 0).
    w : numpy.ndarray
        Raw importance weights of the logged rows, non-negative, not all zero.
    mass : float, default 0.9
        Target mass defining ``T``, in (0, 1].

    Returns
    -------
    float
        The CLE factor (> 0).

    Examples
    --------
    Weights ``[5, 2, 1, 1, 0.5, 0.5]`` already in surprisal order: ``T`` = first 4 rows (cumulative
    9 of 10), ``α = 0.9``, ``β = 4/6``, ``1 + χ²_T = 4 · 31 / 9² = 124/81``, so
    ``CLE = 0.9 · sqrt(6/4) · sqrt(124)/9 = sqrt(186)/10``.

    >>> lp = -np.arange(1.0, 7.0)
    >>> w = np.array([5.0, 2.0, 1.0, 1.0, 0.5, 0.5])
    >>> round(cle_factor(lp, w), 6), round(float(np.sqrt(186)) / 10, 6)
    (1.363818, 1.363818)
    """
    return _cle(*_typical_prefix(logp_target, w, mass))


def _cle(a: np.ndarray, region: np.ndarray) -> float:
    """:func:`cle_factor` from the weights and the typical region's rows."""
    wt = a[region]
    alpha = wt.sum() / a.sum()
    beta = region.size / a.size
    wt = wt / wt.mean()  # mean-one inside T (the prefix holds positive mass); avoids overflow
    one_plus_chi2 = wt.size * np.sum(wt * wt) / wt.sum() ** 2
    return float(alpha / math.sqrt(beta) * math.sqrt(one_plus_chi2))


# --------------------------------------------------------------------------------------------------
# support: the level of the raw ratios
# --------------------------------------------------------------------------------------------------

#: A raw ratio ``exp(λ)`` below this counts as near zero (the target would give the logged
#: response at most a thousandth of the logging policy's probability).
NEAR_ZERO_RATIO = 1e-3


def _log_weights(log_w: object, name: str = "log_w") -> np.ndarray:
    """Log-weights: a non-empty 1-D array without NaN or +inf (−inf, a zero ratio, is allowed)."""
    try:
        a = np.asarray(log_w, dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError(f"{name} must be a 1-D array of numbers; got {type(log_w).__name__}.") from None
    if a.ndim != 1 or a.size == 0:
        raise CJEInputError(f"{name} must be a non-empty 1-D array; got shape {a.shape}.")
    bad = np.flatnonzero(np.isnan(a) | (a == np.inf))
    if bad.size:
        raise CJEInputError(
            f"{name} has a NaN or +inf log-weight at index {bad[0]} ({bad.size} in all); drop or fix "
            "those rows (log π_target − log π_logging must be a number)."
        )
    if not np.any(np.isfinite(a)):
        raise CJEInputError(f"{name} is all −inf (every ratio is zero); check the log-probabilities.")
    return a


def mean_raw_weight(log_w: np.ndarray) -> tuple[float, float, float]:
    """Mean of the unnormalised importance ratios ``m = (1/n) Σ exp(λ_i)``, its standard error
    and ``log m``, computed in log space (no overflow at any log-weight).

    ``E_logging[exp(λ)]`` is the target's probability of the responses the logging policy can
    produce: 1 when the logs cover the target and the log-probabilities are right. ``m`` far
    below 1 means the logged responses carry only a share ``m`` of the target's probability (a
    target that writes different responses, or log-probabilities on different footings, e.g.
    per-token vs per-sequence, or of a different logging policy); far above 1 is impossible with
    correct log-probabilities beyond chance, since ``P(m ≥ c) ≤ 1/c`` (Markov). Heavy tails pull
    ``m`` *below* 1 in most samples (the rare huge ratios are unseen), so the standard error
    ``sd(exp λ)/√n`` understates the uncertainty there; it is reported, not tested.

    Parameters
    ----------
    log_w : numpy.ndarray
        Log importance ratios ``λ_i = log π_target − log π_logging`` of the logged rows.

    Returns
    -------
    tuple of float
        ``(m, se, log m)``; ``m`` may underflow to 0 or overflow to ``inf``, ``log m`` does not.

    Examples
    --------
    >>> m, se, lm = mean_raw_weight(np.log(np.array([0.5, 1.5])))
    >>> m, round(se, 6), round(lm, 12)
    (1.0, 0.5, 0.0)
    >>> m, se, lm = mean_raw_weight(np.full(3, -5000.0))   # 5,000 nats below: no support
    >>> m, se, lm
    (0.0, 0.0, -5000.0)
    """
    a = _log_weights(log_w)
    n = a.size
    top = float(np.max(a))
    e = np.exp(a - top)
    tot = float(e.sum())
    log_m = top + math.log(tot) - math.log(n)
    m = math.exp(log_m) if log_m < 709.0 else math.inf
    if n < 2:
        return m, math.nan, log_m
    r = e * (n / tot)  # mean-one ratios: sd(exp λ) = m · sd(r)
    sd = float(np.std(r, ddof=1))
    se = m * sd / math.sqrt(n) if m < math.inf else math.inf
    return m, se, log_m


def near_zero_share(log_w: np.ndarray, *, ratio: float = NEAR_ZERO_RATIO) -> float:
    """Share of logged rows whose raw ratio ``exp(λ)`` is below ``ratio`` (default 1e-3).

    Responses the target would almost never give. Under correct log-probabilities this share
    grows with poor overlap (about 9% at a population ESS of 0.1% in the synthetic DGP); most of
    the rows (≥ 50%) near zero means the target hardly produces what the logging policy does.

    Parameters
    ----------
    log_w : numpy.ndarray
        Log importance ratios of the logged rows.
    ratio : float, default 1e-3
        Threshold on the raw ratio, in (0, 1].

    Returns
    -------
    float

    Examples
    --------
    >>> near_zero_share(np.array([0.0, -1.0, -10.0, -np.inf]))
    0.5
    """
    r = _unit_share(ratio, "ratio")
    a = _log_weights(log_w)
    return float(np.mean(a < math.log(r)))


# --------------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------------


def weight_summary(
    w_raw: np.ndarray,
    w_stable: np.ndarray | None = None,
    *,
    logp_target: np.ndarray | None = None,
    s_logged: np.ndarray | None = None,
    s_target: np.ndarray | None = None,
    scale: tuple[float, float] = (0.0, 1.0),
    log_w: np.ndarray | None = None,
    sorted_raw: np.ndarray | None = None,
    sorted_stable: np.ndarray | None = None,
    memo: dict | None = None,
) -> dict[str, float]:
    """All overlap diagnostics of one target policy in one dict (docs: Methods › Diagnostics and gates).

    Keys: ``ess_raw``, ``ess_stable``, ``max_weight_raw``, ``max_weight_stable``, ``top5_mass_raw``,
    ``top5_mass_stable``, ``hill_raw``, ``affinity``, ``ttc``, ``cle``, ``mean_raw_weight``,
    ``mean_raw_weight_se``, ``log_mean_raw_weight``, ``near_zero_share``. A value is ``nan`` when an
    input it needs is missing: the ``*_stable`` keys need ``w_stable``; ``affinity`` needs
    ``s_logged`` (it uses ``s_target`` when given, else ``s_logged`` weighted by ``w_raw``); ``ttc`` and
    ``cle`` need ``logp_target`` (with ``w_raw``); the last four need ``log_w`` (see
    :func:`mean_raw_weight`, :func:`near_zero_share`). ``hill_raw`` is ``nan`` below 20 weights.

    Parameters
    ----------
    w_raw : numpy.ndarray
        Raw importance weights of the logged rows.
    w_stable : numpy.ndarray, optional
        Stabilised (e.g. SIMCal-W) weights of the same rows.
    logp_target : numpy.ndarray, optional
        ``log π_target(a|x)`` of the logged rows.
    s_logged : numpy.ndarray, optional
        Judge scores of the logged rows.
    s_target : numpy.ndarray, optional
        Judge scores of fresh draws of the target (any length).
    scale : tuple of float, default (0.0, 1.0)
        Judge scale for the affinity bins.
    log_w : numpy.ndarray, optional
        Log importance ratios ``λ`` of the same rows (unnormalised), for the support keys.
    sorted_raw, sorted_stable : numpy.ndarray, optional
        ``numpy.sort`` of ``w_raw`` and ``w_stable`` when the caller has them (it reads the
        weight tail from them too): the top 5% and the Hill index's top ``k + 1`` are then read
        from them instead of a partition. The same numbers either way.
    memo : dict, optional
        Kept by the caller across the targets of one analysis: what depends on ``s_logged``
        alone (its histogram for the affinity) is reused when the next call passes the same
        ``s_logged`` object. The results are the same with or without it.

    Returns
    -------
    dict of str to float

    Examples
    --------
    >>> d = weight_summary(np.array([2.0, 1.0, 1.0, 0.0]), logp_target=np.log([0.4, 0.3, 0.2, 0.1]))
    >>> d["ess_raw"], d["max_weight_raw"], d["top5_mass_raw"], d["ttc"]
    (0.6666666666666666, 2.0, 0.5, 0.75)
    >>> [k for k, v in d.items() if math.isnan(v)][:5]
    ['ess_stable', 'max_weight_stable', 'top5_mass_stable', 'hill_raw', 'affinity']
    >>> lw = np.log([2.0, 1.0, 1.0, 0.0001])   # ratios 2, 1, 1, 1e-4: mean ≈ 1
    >>> d = weight_summary(np.exp(lw), log_w=lw)
    >>> round(d["mean_raw_weight"], 4), d["near_zero_share"]
    (1.0, 0.25)
    """
    nan = float("nan")
    wr = _weights(w_raw, "w_raw")
    # validated once; the top 5% and the Hill index's top k + 1 from one partition
    # (or from the caller's sorted weights, which its weight tail reads too)
    top = _largest(wr, max(_hill_k(wr.size) + 1, _top_k(wr.size, 0.05)),
                   sorted_raw) if wr.size >= 20 else None
    out: dict[str, float] = {
        "ess_raw": _ess(wr),
        "ess_stable": nan,
        "max_weight_raw": float(wr.max() / wr.mean()),
        "max_weight_stable": nan,
        "top5_mass_raw": _top_mass(wr, 0.05, top),
        "top5_mass_stable": nan,
        "hill_raw": nan if top is None else _hill(top[: _hill_k(wr.size) + 1], _hill_k(wr.size)),
        "affinity": nan,
        "ttc": nan,
        "cle": nan,
        "mean_raw_weight": nan,
        "mean_raw_weight_se": nan,
        "log_mean_raw_weight": nan,
        "near_zero_share": nan,
    }
    if w_stable is not None:
        ws = _weights(w_stable, "w_stable")
        _same_length(ws, "w_stable", wr, "w_raw")
        out["ess_stable"] = _ess(ws)
        out["max_weight_stable"] = float(ws.max() / ws.mean())
        out["top5_mass_stable"] = _top_mass(ws, 0.05, None if sorted_stable is None else _largest(
            ws, _top_k(ws.size, 0.05), sorted_stable))
    if s_logged is not None:
        s = _as_1d(s_logged, "s_logged")
        _same_length(s, "s_logged", wr, "w_raw")
        if s_target is not None:
            out["affinity"] = _affinity(s, None, s_target, bins=20, scale=scale, memo=memo)
        else:
            out["affinity"] = _affinity(s, wr, None, bins=20, scale=scale, memo=memo)
    if logp_target is not None:
        lp = _as_1d(logp_target, "logp_target")
        _same_length(lp, "logp_target", wr, "w_raw")
        a, region = _typical_prefix(lp, wr, 0.9)  # one ordering for both (ttc, cle_factor)
        out["ttc"] = region.size / a.size
        out["cle"] = _cle(a, region)
    if log_w is not None:
        lw = _log_weights(log_w, "log_w")
        _same_length(lw, "log_w", wr, "w_raw")
        m, se, log_m = mean_raw_weight(lw)
        out.update(mean_raw_weight=m, mean_raw_weight_se=se, log_mean_raw_weight=log_m,
                   near_zero_share=near_zero_share(lw))
    return out
