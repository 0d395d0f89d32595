"""Off-policy estimators: IPS, SNIPS, calibrated IPS and the doubly robust family (docs: Off-policy ›
Estimators).

Each estimator (a registered :class:`~cje.estimators.registry.Estimator`) takes one target
policy's :class:`LoggedTarget` — calibrated reward ``R``, oracle residual ``e = Y − f_oof(S)`` on
labelled rows, importance weights, and for the DR family what its outcome model ``q`` needs (the
fold-deleted calibrations, the target's fresh draws) — and returns the point estimate with a
per-row influence value (mean zero; clustered by prompt downstream). The functions below
(:func:`ips`, :func:`snips`, :func:`calibrated_ips`, :func:`doubly_robust`, :func:`stack`) are
the formulas on fixed arrays; the classes fit what the formulas need (SIMCal-W weights, outcome
models, the TMLE fluctuation) from the target, so the OUA jackknife, which rebuilds the target
under every fold-deleted calibration, refits them.

The oracle residual term ``mean((L/p_L)·w·e)`` estimates ``E_target[Y − f(S)]``, the part of the
target's value the calibrated reward misses; here it uses the **raw** (Hájek) weights unless
``stable_residual=True``. Stabilised weights estimate ``E[W | S]``, a valid replacement for ``W``
only when multiplied by a function of ``S`` (SIMCal-W's key fact (docs: Off-policy › SIMCal-W)) — the
reward is one, the residual is not. With ``stable_residual=True`` the stabilised weights go on the residual
too:
lower variance, but the estimate then targets ``E_target[E_logging[Y | S]]``, which equals the
target's value only when the judge score carries everything the target changes about the label
(the calibration transports; audit it with a probe slice) — the pipeline then adds the square of
:func:`residual_gap` plus its sampling variance (:func:`residual_gap_variance`) to the variance
as an allowance. The pipeline chooses per target (:func:`cje.analyze`'s ``residual_weights``: by
default raw weights at a raw-weight ESS of at least 10% with a Hill tail index of at least 1,
stabilised otherwise); ``simulations/results/study_tails.md`` and ``study_residual_weights.md``
have the evidence.

The residual term's influence values are centred: they count the labelled share ``p_L`` as
estimated (:func:`_residual_term`), as the direct estimator does; point estimates are unaffected.
Below :data:`TAIL_VARIANCE_ESS` raw ESS they are scaled up when the labelled rows' spread
understates the term's variance as predicted from every logged row's weight
(:func:`tail_inflation`): under heavy weight tails a labelled slice that misses the high-weight
rows otherwise reports an interval too narrow exactly then.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from cje._checks import check_choice, check_number
from cje.calibration.weights import SimcalWeights, min_variance_simplex, simcal_weights
from cje.estimators.outcome import mrdr_outcome, mrdr_table, tmle_outcome, tmle_table
from cje.estimators.registry import Estimator, register

__all__ = [
    "IPS",
    "SNIPS",
    "CalibratedIPS",
    "DRCPO",
    "MRDR",
    "TMLE",
    "StackedDR",
    "LoggedTarget",
    "OffPolicyRows",
    "PolicyValue",
    "ips",
    "snips",
    "calibrated_ips",
    "doubly_robust",
    "residual_gap",
    "residual_gap_variance",
    "own_residual_part",
    "stack",
    "tail_inflation",
]

@dataclass(frozen=True, slots=True, eq=False)
class OffPolicyRows:
    """One target policy's usable logged rows, on the internal [0, 1] label scale.

    Attributes
    ----------
    reward : numpy.ndarray
        Calibrated reward ``R_i = f(S_i)``.
    residual : numpy.ndarray
        Out-of-fold oracle residual ``e_i = Y_i − f_oof(S_i)`` (0 on unlabelled rows).
    labelled : numpy.ndarray of bool
        Rows with an oracle label.
    weights : numpy.ndarray
        Raw Hájek importance weights (mean one).
    stable : numpy.ndarray, optional
        Stabilised (SIMCal-W) weights, mean one.
    ratio : numpy.ndarray, optional
        Unnormalised importance ratios ``exp(λ_i)`` (for unnormalised IPS).

    Examples
    --------
    >>> rows = OffPolicyRows(reward=np.array([0.2, 0.6, 0.4]), residual=np.array([0.1, 0.0, 0.0]),
    ...                      labelled=np.array([True, False, False]),
    ...                      weights=np.array([0.5, 1.5, 1.0]))
    >>> rows.scaled_residual.round(6).tolist()   # (L_i / p_L) e_i with p_L = 1/3
    [0.3, 0.0, 0.0]
    >>> round(snips(rows).value, 4)   # Σ w_i (R_i + 3 L_i e_i) / Σ w_i
    0.5167
    """

    reward: np.ndarray
    residual: np.ndarray
    labelled: np.ndarray
    weights: np.ndarray
    stable: np.ndarray | None = None
    ratio: np.ndarray | None = None

    @property
    def scaled_residual(self) -> np.ndarray:
        """``(L_i / p_L)·e_i`` with ``p_L`` the labelled share of these rows (0 if none)."""
        m = int(np.count_nonzero(self.labelled))
        if m == 0:
            return np.zeros_like(self.reward)
        return np.where(self.labelled, self.residual, 0.0) * (self.reward.shape[0] / m)


@dataclass(frozen=True, slots=True, eq=False)
class PolicyValue:
    """A target policy's estimated value with per-row influence values.

    Attributes
    ----------
    value : float
        Point estimate on the internal [0, 1] label scale.
    influence : numpy.ndarray
        Influence value of each logged row (mean zero).
    mixture : numpy.ndarray, optional
        Stacking weights (stacked estimators only).
    stable : SimcalWeights, optional
        The stabilised weights the estimate used (reported in the overlap diagnostics).
    parts : tuple of str
        Names of the stacked estimates, in the order of ``mixture``.
    residual_influence : numpy.ndarray, optional
        Influence values of the oracle residual term the estimate used, when it put the
        stabilised weights ``stable`` on it (``stable_residual``; set by :class:`StackedDR`):
        :func:`residual_gap_influence` takes them instead of computing them again.
    own_part : numpy.ndarray, optional
        The residual term's part on the labelled rows (:func:`own_residual_part`): the pipeline
        gives it the labelled prompts' small-sample factor and degrees of freedom. ``None``: the
        estimator does not say (the part keeps the target's prompt factor).

    Examples
    --------
    >>> rows = OffPolicyRows(np.array([0.2, 0.6]), np.zeros(2), np.zeros(2, bool),
    ...                      np.array([0.5, 1.5]))
    >>> v = snips(rows)
    >>> round(v.value, 6), v.influence.round(6).tolist(), v.mixture
    (0.5, [-0.15, 0.15], None)
    >>> from cje.inference import cluster_variance
    >>> var, n_prompts = cluster_variance(v.influence, np.array([0, 1]))   # its standard error
    >>> round(float(np.sqrt(var)), 3), n_prompts
    (0.15, 2)
    """

    value: float
    influence: np.ndarray
    mixture: np.ndarray | None = None
    stable: SimcalWeights | None = None
    parts: tuple[str, ...] = ()
    residual_influence: np.ndarray | None = None
    own_part: np.ndarray | None = None


def _hajek(w: np.ndarray, x: np.ndarray) -> float:
    """Hájek mean ``Σ w x / Σ w``."""
    return float((w * x).sum() / w.sum())  # not np.dot: threaded BLAS stalls on a busy machine


def _f64(*arrays: np.ndarray) -> bool:
    """Whether all are float64 arrays: then the influence values below are computed in place,
    in an array of their own (each new 10⁶-row array costs about as much as the arithmetic on
    it, in page faults), with the same operations in the same order as the expressions they
    replace, which other dtypes keep."""
    return all(isinstance(a, np.ndarray) and a.dtype == np.float64 for a in arrays)


def _in_place(op: np.ufunc, a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """``op(a, b)``, in ``a``'s array when the result is float64 as ``a`` is (``a`` must be the
    caller's own)."""
    if _f64(a) and (isinstance(b, float) or _f64(b)):
        return op(a, b, out=a)
    return op(a, b)


def _weighted(w: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Hájek mean of ``x`` with mean-one weights and its influence ``w (x − ψ)``."""
    if not _f64(w, x):
        psi = _hajek(w, x)
        return psi, w * (x - psi)
    t = w * x
    psi = float(t.sum() / w.sum())  # _hajek, keeping its product's array for φ
    np.subtract(x, psi, out=t)
    t *= w  # (x − ψ)·w, bit for bit w·(x − ψ)
    return psi, t


def _labelling_term(rows: OffPolicyRows, psi_e: float) -> np.ndarray:
    """``ψ_e (L_i/p_L − 1)``: what a residual term ``ψ_e = Σ v (L/p_L) e / Σ v`` owes to the
    labelled share ``p_L = m/n`` being estimated (the labelling is random).

    Linearising the ratio ``mean(v L e) / (mean(L)·mean(v))`` gives
    ``v_i((L_i/p_L) e_i − ψ_e) − ψ_e (L_i/p_L − 1)``; the second part, subtracted by the
    callers, centres the residual term (sums to zero). Zero without labels or with every row
    labelled.
    """
    m = int(np.count_nonzero(rows.labelled))
    n = rows.labelled.shape[0]
    if m == 0 or m == n:
        return np.zeros(n)
    return psi_e * _shared(rows, "labelling_scale", (rows.labelled,),
                           lambda: np.where(rows.labelled, n / m, 0.0) - 1.0)


def _shared(rows: OffPolicyRows, name: str, key: tuple[np.ndarray, ...], make) -> np.ndarray:
    """``make()``, kept (read-only) in the dict the pipeline shares between the targets of one
    analysis (``rows.cache["shared"]``) for as long as the arrays ``key`` are the same objects:
    the targets that use every logged row hold the same residual and labels in each OUA run,
    and what is computed from them alone is the same for all of them. ``make()`` afresh
    otherwise."""
    cache = getattr(rows, "cache", None)
    shared = None if cache is None else cache.get("shared")
    if shared is None:
        return make()
    hit = shared.get(name)
    if hit is not None and len(hit[0]) == len(key) and all(
            a is b for a, b in zip(hit[0], key, strict=True)):
        return hit[1]
    out = make()
    out.flags.writeable = False
    shared[name] = (key, out)
    return out


def _residual_term(v: np.ndarray, rows: OffPolicyRows) -> tuple[float, np.ndarray, np.ndarray]:
    """The oracle residual correction ``ψ_e = Σ v_i (L_i/p_L) e_i / Σ v_i``, its influence
    ``v_i((L_i/p_L) e_i − ψ_e) − ψ_e (L_i/p_L − 1)`` (see :func:`_labelling_term`), scaled by
    :func:`tail_inflation` when the raw weights' ESS is below :data:`TAIL_VARIANCE_ESS`, and
    its part on the labelled rows (:func:`own_residual_part`, on the same scale)."""
    psi_e, phi_e = _residual_parts(v, rows)
    c = tail_inflation(v, rows, psi_e, phi_e)
    if c != 1.0:  # (φ·1.0 is φ bit for bit: no copy then; φ is this call's own array)
        phi_e = _in_place(np.multiply, phi_e, c)
    return psi_e, phi_e, own_residual_part(v, rows, c)


def own_residual_part(v: np.ndarray, rows: OffPolicyRows, c: float = 1.0) -> np.ndarray:
    """The part of a residual term's influence values that rests on the labelled rows alone:
    ``c·(n/m)(v_i e_i − mean_L(v e))`` on each labelled row ``i`` (``m`` of the ``n`` rows), in
    row order.

    The residual term ``ψ_e = Σ_L v_i e_i / m`` (mean-one ``v``) is a mean over the labelled
    rows: the variance of this part, summed per prompt, rests on the labelled prompts, not on
    all the target's prompts. The pipeline gives it its own small-sample factor and degrees of
    freedom from the labelled rows per prompt (:func:`cje.pipeline.core.own_part_sums`), as the
    direct estimator's own labels get them (``simulations/results/independent_clusters.md``: a
    few prompts holding most labels). The rest of the term's influence (the randomness of the
    weights and of the labelled share) is spread over every row. The weights' own tail is left
    to :func:`tail_inflation` and the overlap gates.

    Parameters
    ----------
    v : numpy.ndarray
        The residual term's weights (raw or stabilised Hájek weights, or IPS's ratios).
    rows : OffPolicyRows
    c : float
        :func:`tail_inflation`'s factor on the term's influence values.

    Returns
    -------
    numpy.ndarray
        The part on the labelled rows (it sums to zero); empty without labels.

    Examples
    --------
    >>> r = OffPolicyRows(np.zeros(4), np.array([0.1, 0.0, -0.1, 0.0]),
    ...                   np.array([True, False, True, False]), np.array([0.5, 1.0, 1.5, 1.0]))
    >>> own_residual_part(r.weights, r).round(6).tolist()   # (4/2)·(v e − mean(v e))
    [0.2, -0.2]
    """
    at = np.flatnonzero(rows.labelled)
    ve = v[at] * rows.residual[at]
    return (c * rows.labelled.shape[0] / max(at.size, 1)) * (ve - ve.mean() if at.size else ve)


def _residual_parts(v: np.ndarray, rows: OffPolicyRows) -> tuple[float, np.ndarray]:
    """:func:`_residual_term` before :func:`tail_inflation`."""
    psi_e, phi_e = _weighted(v, rows.scaled_residual)
    return psi_e, _in_place(np.subtract, phi_e, _labelling_term(rows, psi_e))


#: Raw-weight ESS fraction below which the residual term's variance is also estimated from every
#: logged row's weight (:func:`tail_inflation`). Above it the labelled rows' own spread is used
#: alone: there the larger of the two only widened intervals that already covered (stacked DR on
#: ``make_offpolicy_eval``, 2,000 prompts, 500 replicates: 0.958 → 0.968 at 60% ESS).
TAIL_VARIANCE_ESS = 0.30
#: Score regions (quantile bins of the calibrated reward among labelled rows) for the residual's
#: second moment in :func:`tail_inflation`: at most this many, and at least
#: :data:`_ROWS_PER_REGION` labelled rows each.
_REGIONS, _ROWS_PER_REGION = 5, 20


def tail_inflation(v: np.ndarray, rows: OffPolicyRows, psi_e: float, phi_e: np.ndarray) -> float:
    """Factor ``c ≥ 1`` on the residual term's influence values so that its variance is the
    larger of the labelled rows' sample variance and a design-based one over all logged rows.

    The residual term ``ψ_e = mean(v (L/p_L) e)`` is a Horvitz–Thompson mean over a random
    labelled share ``p_L`` of the logged rows; its variance is about
    ``(E[v² e²]/p_L − ψ_e²)/n``. The sample variance estimates ``E[v² e²]`` from the labelled rows
    alone — under heavy weight tails, a labelled slice that misses the few high-weight rows has a
    small ``Σ v² e²`` and an interval too narrow exactly then (DR intervals covered 0.90 at 15%
    raw ESS in ``simulations/results/study_probes.md``). The design-based estimate keeps every
    logged row's weight and takes only the residual's second moment from the labels, per score
    region ``h(r) = mean(e² | region of R)``: ``Σ_all v_i² h(R_i)/p_L − n ψ_e²`` in place of
    ``Σ φ_i²``. The factor is ``sqrt(max(1, design / sample))``, so the interval only widens,
    and it applies only below :data:`TAIL_VARIANCE_ESS` raw ESS (evidence:
    ``simulations/results/study_tails.md``, docs: Off-policy › Weight tails). The design-based
    estimate alone assumes the residual's spread at a score does not grow with the weight (it
    under-covered, 0.925–0.935 at 15–50% ESS, on ``make_tail_eval``, where it does); hence the
    larger of the two. Compared on the same replicates and not adopted: the ratio estimator
    ``Σ_all v² · Σ_lab v² e² / Σ_lab v²`` (no score regions) — as the larger of the two it
    covered 0.928 at 1% ESS on ``make_offpolicy_eval`` with 2,000 prompts (this one 0.970), and
    in place of the sample variance 0.918.

    Parameters
    ----------
    v : numpy.ndarray
        The residual term's weights (mean one).
    rows : OffPolicyRows
        The target's rows (``weights`` are the raw ones, which set the ESS).
    psi_e : float
        The residual term.
    phi_e : numpy.ndarray
        Its influence values.

    Returns
    -------
    float
        1.0 at ESS ≥ :data:`TAIL_VARIANCE_ESS`, without labels, with every row labelled, or when
        the sample variance is the larger (or zero).

    Examples
    --------
    >>> w = np.r_[np.full(95, 0.5), np.full(5, 10.5)]          # raw ESS 17%
    >>> lab = np.zeros(100, bool); lab[:30] = True             # labels miss the heavy rows
    >>> e = np.where(lab, np.tile([0.1, -0.1], 50), 0.0)
    >>> r = OffPolicyRows(np.full(100, 0.5), e, lab, w)
    >>> psi, phi = _weighted(w, r.scaled_residual)
    >>> phi = phi - _labelling_term(r, psi)
    >>> # ψ_e = 0; design Σ v² h / p_L = (95·0.25 + 5·110.25)·0.01/0.3 = 19.17;
    >>> # sample Σ φ² = 30·(0.5·0.1/0.3)² = 0.833: c = sqrt(23)
    >>> round(tail_inflation(w, r, psi, phi), 3)
    4.796
    """
    lab = rows.labelled
    n = lab.shape[0]
    m = int(np.count_nonzero(lab))
    if m == 0 or m == n:
        return 1.0
    if _raw_ess(rows) >= TAIL_VARIANCE_ESS * n:
        return 1.0
    sample = float((phi_e * phi_e).sum())
    if not sample > 0.0:
        return 1.0
    at = np.flatnonzero(lab)  # the labelled rows, gathered by index (three boolean passes less)
    e2 = rows.residual[at] ** 2
    regions = max(1, min(_REGIONS, m // _ROWS_PER_REGION))
    if regions > 1:
        edges = np.quantile(rows.reward[at], np.linspace(0.0, 1.0, regions + 1)[1:-1])
        region = _region(edges, rows.reward)
        region_lab = region[at]
        count = np.bincount(region_lab, minlength=regions)
        h = np.bincount(region_lab, weights=e2, minlength=regions)
        h = np.where(count > 0, h / np.maximum(count, 1), e2.mean())[region]
    else:
        h = e2.mean()
    design = float((v * v * h).sum()) * n / m - n * psi_e * psi_e
    return float(np.sqrt(design / sample)) if design > sample else 1.0


def _raw_ess(rows: OffPolicyRows) -> float:
    """``(Σ w)² / Σ w²`` of the raw weights, kept in the target's cache (``rows.cache``, when
    it has one) while they are the same array: every OUA run of a target asks."""
    w = rows.weights
    cache = getattr(rows, "cache", None)
    hit = None if cache is None else cache.get("raw_ess")
    if hit is not None and hit[0] is w:
        return hit[1]
    ess = float(w.sum()) ** 2 / float((w * w).sum())
    if cache is not None:
        cache["raw_ess"] = (w, ess)
    return ess


def _region(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, x)`` for a few sorted edges and finite ``x``, as the number of
    edges below each value (one comparison pass per edge: ~4× faster at 10⁶ values than the
    binary search per value); ``np.searchsorted`` itself otherwise."""
    if edges.size == 0 or edges.size > 8 or not bool((edges[1:] >= edges[:-1]).all()) \
            or not bool(np.isfinite(x).all()):
        return np.searchsorted(edges, x)
    out = (x > edges[0]).astype(np.intp)
    for e in edges[1:]:
        out += x > e
    return out


def _stabilised(stable: np.ndarray, raw: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Hájek mean of ``x`` (a function of the judge score) with stabilised weights, and its
    influence values *including the stabiliser's own estimation*.

    ``w̃ ≈ E[W | S]`` is fitted on the same logs. Row i's raw weight moves the fit at its score,
    adding ``(w_i − w̃_i)(x_i − ψ)`` to its influence; with ``w̃``'s own term ``w̃_i (x_i − ψ)`` the
    total is ``w_i (x_i − ψ)`` (centred). Treating ``w̃`` as fixed instead would report the
    variance of the ideal ``E[W | S]``, which an estimated one does not reach: in
    ``simulations/results/study_residual_weights.md`` such intervals covered 0.69 at 10% raw ESS.
    """
    if not _f64(stable, raw, x):
        psi = _hajek(stable, x)
        phi = raw * (x - psi)
        return psi, phi - phi.mean()
    phi = stable * x
    psi = float(phi.sum() / stable.sum())  # _hajek, keeping its product's array for φ
    np.subtract(x, psi, out=phi)
    phi *= raw  # (x − ψ)·w, bit for bit w·(x − ψ)
    phi -= phi.mean()
    return psi, phi


def ips(rows: OffPolicyRows) -> PolicyValue:
    """Unnormalised IPS: ``ψ = (1/n) Σ ρ_i (R_i + (L_i/p_L) e_i)`` with ``ρ = exp(λ)``.

    Offered for completeness and as the naive baseline: its weights do not average one in a
    finite sample, so it is unbiased but very variable. Influence
    ``φ_i = ρ_i ỹ_i − ψ − ψ_e (L_i/p_L − 1)`` with ``ψ_e = (1/n) Σ ρ_i (L_i/p_L) e_i``: the
    residual part ``mean(ρ L e)/mean(L)`` linearised with the labelled share ``p_L`` estimated.

    Parameters
    ----------
    rows : OffPolicyRows
        With ``ratio`` set.

    Returns
    -------
    PolicyValue

    Raises
    ------
    ValueError
        ``rows.ratio`` is missing.

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.zeros(2), np.zeros(2, bool),
    ...                   np.array([0.5, 1.5]), ratio=np.array([0.5, 2.0]))
    >>> round(ips(r).value, 6)   # (0.5*0.2 + 2*0.6)/2
    0.65
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]), ratio=np.array([0.5, 2.0]))
    >>> v = ips(r); round(v.value, 6)   # 0.65 + 0.5*(2*0.1)/2; ψ_e = 0.05
    0.7
    >>> v.influence.round(6).tolist()   # [0.5*0.4 − 0.7 − 0.05*(2 − 1), 2*0.6 − 0.7 + 0.05]
    [-0.55, 0.55]
    """
    if rows.ratio is None:
        raise ValueError("ips needs the unnormalised ratios (rows.ratio).")
    x = rows.scaled_residual
    contrib = rows.ratio * (rows.reward + x)
    psi = float(contrib.mean())
    # _labelling_term is zero without labels
    phi = contrib - psi - _labelling_term(rows, float((rows.ratio * x).mean()))
    return PolicyValue(psi, phi, own_part=own_residual_part(rows.ratio, rows))


def snips(rows: OffPolicyRows) -> PolicyValue:
    """Self-normalised IPS with raw Hájek weights: ``ψ = Σ w_i ỹ_i / Σ w_i``.

    ``ỹ_i = R_i + (L_i/p_L) e_i``; influence ``φ_i = w_i (ỹ_i − ψ) − ψ_e (L_i/p_L − 1)`` (delta
    method for the ratio, with the labelled share ``p_L`` estimated too), where
    ``ψ_e = Σ w_i (L_i/p_L) e_i / Σ w_i`` is the residual part of ``ψ``. Below
    :data:`TAIL_VARIANCE_ESS` raw ESS the residual part of ``φ``,
    ``w_i((L_i/p_L) e_i − ψ_e) − ψ_e (L_i/p_L − 1)``, is scaled by :func:`tail_inflation`, as in
    the other estimators' residual terms.

    Parameters
    ----------
    rows : OffPolicyRows

    Returns
    -------
    PolicyValue

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.zeros(2), np.zeros(2, bool),
    ...                   np.array([0.5, 1.5]))
    >>> v = snips(r); round(v.value, 6), v.influence.round(6).tolist()
    (0.5, [-0.15, 0.15])
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]))
    >>> v = snips(r); round(v.value, 6)   # 0.5 + ψ_e, ψ_e = 0.5*(2*0.1)/2 = 0.05
    0.55
    >>> v.influence.round(6).tolist()   # [0.5*(0.4 − 0.55) − 0.05, 1.5*(0.6 − 0.55) + 0.05]
    [-0.125, 0.125]
    """
    w = rows.weights
    psi, phi = _weighted(w, rows.reward + rows.scaled_residual)
    psi_e, phi_e = _residual_parts(w, rows)
    phi -= _labelling_term(rows, psi_e)
    c = tail_inflation(w, rows, psi_e, phi_e)
    if c > 1.0:  # else bit for bit the formula above
        phi += (c - 1.0) * phi_e
    return PolicyValue(psi, phi, own_part=own_residual_part(w, rows, c))


def calibrated_ips(rows: OffPolicyRows, *, stable_residual: bool = False) -> PolicyValue:
    """Calibrated IPS: stabilised (SIMCal-W) weights ``w̃`` on the reward.

    ``ψ = Σ w̃_i R_i / Σ w̃_i + Σ v_i (L_i/p_L) e_i / Σ v_i`` with ``v = w`` (raw Hájek weights,
    default) or ``v = w̃`` (``stable_residual=True``);
    ``φ_i = w_i (R_i − ψ_R) − c + v_i ((L_i/p_L) e_i − ψ_e) − ψ_e (L_i/p_L − 1)`` (``c`` centres
    the first term): the reward term's influence includes the estimation of ``w̃`` (see
    :func:`_stabilised`), the residual term's the estimation of the labelled share ``p_L``.

    Parameters
    ----------
    rows : OffPolicyRows
        With ``stable`` set (without it the raw weights are used: SNIPS).
    stable_residual : bool
        Stabilised instead of raw weights on the oracle residual term.

    Returns
    -------
    PolicyValue

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]), stable=np.array([0.8, 1.2]))
    >>> round(calibrated_ips(r).value, 6)   # (0.8*0.2 + 1.2*0.6)/2 + 0.5*(2*0.1)/2
    0.49
    >>> round(calibrated_ips(r, stable_residual=True).value, 6)   # ... + 0.8*(2*0.1)/2
    0.52
    """
    w_s = rows.weights if rows.stable is None else rows.stable
    psi_r, phi_r = _stabilised(w_s, rows.weights, rows.reward)
    psi_e, phi_e, own = _residual_term(w_s if stable_residual else rows.weights, rows)
    return PolicyValue(psi_r + psi_e, phi_r + phi_e, own_part=own)


def doubly_robust(rows: OffPolicyRows, outcome: np.ndarray, fresh_mean: np.ndarray, *,
                  stable_residual: bool = False,
                  residual: tuple[float, np.ndarray, np.ndarray] | None = None) -> PolicyValue:
    """Doubly robust estimate with an outcome model ``q`` (DR-CPO, MRDR and TMLE share it).

    ``ψ = mean ḡ_i + Σ w̃_i (R_i − q_i)/Σ w̃_i + Σ v_i (L_i/p_L) e_i / Σ v_i``, where ``ḡ_i`` is
    the mean of ``q`` over the target's fresh draws of row i's prompt, ``w̃`` the stabilised
    weights (raw when there are none) and ``v`` the raw weights (``w̃`` with
    ``stable_residual=True``). Influence
    ``φ_i = (ḡ_i − ψ_g) + w_i (R_i − q_i − ψ_c) − c + v_i ((L_i/p_L) e_i − ψ_e)
    − ψ_e (L_i/p_L − 1)``, the correction term's influence including the estimation of ``w̃``
    (see :func:`_stabilised`), the residual term's the estimation of the labelled share ``p_L``.

    Parameters
    ----------
    rows : OffPolicyRows
    outcome : numpy.ndarray
        ``q_i`` on the logged rows (cross-fitted).
    fresh_mean : numpy.ndarray
        ``ḡ_i`` per logged row.
    stable_residual : bool
        Stabilised instead of raw weights on the oracle residual term.
    residual : (float, numpy.ndarray, numpy.ndarray), optional
        The oracle residual term, its influence values and its part on the labelled rows,
        when already computed for these rows and weights (it does not depend on the outcome
        model: the members of a stacked estimator share it).

    Returns
    -------
    PolicyValue

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.zeros(2), np.zeros(2, bool),
    ...                   np.array([0.5, 1.5]))
    >>> v = doubly_robust(r, outcome=np.array([0.3, 0.5]), fresh_mean=np.array([0.4, 0.7]))
    >>> round(v.value, 6)   # 0.55 + (0.5*(-0.1) + 1.5*0.1)/2
    0.6
    """
    w_s = rows.weights if rows.stable is None else rows.stable
    psi_g = float(fresh_mean.mean())
    x = rows.reward - outcome
    psi_c, phi_c = _stabilised(w_s, rows.weights, x)
    psi_e, phi_e, own = (_residual_term(w_s if stable_residual else rows.weights, rows)
                         if residual is None else residual)
    if not _f64(x, fresh_mean, phi_c, phi_e):
        return PolicyValue(psi_g + psi_c + psi_e, (fresh_mean - psi_g) + phi_c + phi_e,
                           own_part=own)
    # (ḡ − ψ_g) + φ_c + φ_e, summed in that order in x's array (no longer needed)
    phi = np.subtract(fresh_mean, psi_g, out=x)
    phi += phi_c
    phi += phi_e
    return PolicyValue(psi_g + psi_c + psi_e, phi, own_part=own)


# The point estimates alone, bit for bit those of the functions above (the same operations in
# the same order), without influence values or the tail inflation: all an OUA jackknife
# replicate needs (:meth:`~cje.estimators.registry.Estimator.value`).
def _ips_value(rows: OffPolicyRows) -> float:
    """:func:`ips`'s value."""
    return float((rows.ratio * (rows.reward + rows.scaled_residual)).mean())


def _snips_value(rows: OffPolicyRows) -> float:
    """:func:`snips`'s value."""
    return _hajek(rows.weights, rows.reward + rows.scaled_residual)


def _residual_value(rows: OffPolicyRows, stable_residual: bool) -> float:
    """The oracle residual term ``ψ_e`` of :func:`calibrated_ips` and :func:`doubly_robust`."""
    w_s = rows.weights if rows.stable is None else rows.stable
    return _hajek(w_s if stable_residual else rows.weights, rows.scaled_residual)


def _calibrated_ips_value(rows: OffPolicyRows, stable_residual: bool) -> float:
    """:func:`calibrated_ips`'s value."""
    w_s = rows.weights if rows.stable is None else rows.stable
    return _hajek(w_s, rows.reward) + _residual_value(rows, stable_residual)


def _doubly_robust_value(rows: OffPolicyRows, outcome: np.ndarray, fresh_mean: np.ndarray,
                         stable_residual: bool) -> float:
    """:func:`doubly_robust`'s value."""
    w_s = rows.weights if rows.stable is None else rows.stable
    return (float(fresh_mean.mean()) + _hajek(w_s, rows.reward - outcome)
            + _residual_value(rows, stable_residual))


def residual_gap(rows: OffPolicyRows) -> float:
    """The oracle residual correction with raw weights minus the one with stabilised weights.

    ``Σ w_i (L_i/p_L) e_i / Σ w_i − Σ w̃_i (L_i/p_L) e_i / Σ w̃_i``. Its expectation is what the
    stabilised weights assume away, ``E[(W − E[W | S])·(Y − f(S))]``: zero when the calibration
    transports from the logging policy to the target. The pipeline adds its square plus its
    sampling variance (:func:`residual_gap_variance`) to the variance of an estimate whose
    residual uses the stabilised weights (a bias allowance,
    :attr:`cje.report.PolicyEstimate.var_transport`).

    Parameters
    ----------
    rows : OffPolicyRows
        With ``stable`` set.

    Returns
    -------
    float
        On the internal [0, 1] scale.

    Raises
    ------
    ValueError
        ``rows.stable`` is missing.

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]), stable=np.array([0.8, 1.2]))
    >>> round(residual_gap(r), 6)   # 0.5*(2*0.1)/2 − 0.8*(2*0.1)/2
    -0.03
    """
    if rows.stable is None:
        raise ValueError("residual_gap needs the stabilised weights (rows.stable).")
    x = rows.scaled_residual
    return _weighted(rows.weights, x)[0] - _weighted(rows.stable, x)[0]


def residual_gap_variance(rows: OffPolicyRows, cluster: np.ndarray, *,
                          influence: np.ndarray | None = None) -> float:
    """Prompt-clustered variance of :func:`residual_gap` (its sampling noise).

    The gap is the difference of two Hájek means of ``x = (L/p_L)·e``; its influence is
    ``φ_i = w_i (x_i − ψ_raw) − w̃_i (x_i − ψ_stable) − gap·(L_i/p_L − 1)`` (the stabilised
    weights held fixed; the last part, as in the residual term, counts the labelled share as
    estimated), and the variance is :func:`cje.inference.cluster_variance` of ``φ``. The
    pipeline's allowance for the transport assumption is ``gap² + Var(gap)``: ``gap²`` alone is a
    one-sample reading of the squared bias that is small exactly when the noise happens to cancel
    the bias.

    Parameters
    ----------
    rows : OffPolicyRows
        With ``stable`` set.
    cluster : numpy.ndarray of int
        Prompt code per row.
    influence : numpy.ndarray, optional
        :func:`residual_gap_influence` of ``rows`` when the caller already has it.

    Returns
    -------
    float
        On the internal [0, 1] scale (squared); 0 with fewer than two prompts.

    Raises
    ------
    ValueError
        ``rows.stable`` is missing.

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]), stable=np.array([0.8, 1.2]))
    >>> # x = (0.2, 0), ψ_raw = 0.05, ψ_stable = 0.08, gap = −0.03, L/p_L − 1 = (1, −1):
    >>> # φ = (0.5·0.15 − 0.8·0.12 + 0.03, 1.5·(−0.05) − 1.2·(−0.08) − 0.03) = (0.009, −0.009)
    >>> round(residual_gap_variance(r, np.array([0, 1])), 6)   # 2/1 · (0.009² + 0.009²) / 2²
    8.1e-05
    """
    from cje.inference import cluster_variance

    phi = residual_gap_influence(rows) if influence is None else influence
    v, _ = cluster_variance(phi, cluster)
    return float(v) if v == v else 0.0


def residual_gap_influence(rows: OffPolicyRows, *,
                           stable_term: np.ndarray | None = None) -> np.ndarray:
    """Per-row influence values of :func:`residual_gap` (see :func:`residual_gap_variance`).

    The contrasts use them: two targets' gaps rest on the same labelled logged rows, so the
    variance of their difference is that of the difference of these values, prompt by prompt.

    Parameters
    ----------
    rows : OffPolicyRows
        With ``stable`` set.
    stable_term : numpy.ndarray, optional
        Influence values of the residual term on the stabilised weights ``rows.stable`` when
        the caller already has them (an estimate's ``residual_influence``): the same numbers.

    Returns
    -------
    numpy.ndarray
        One value per row (internal scale).

    Raises
    ------
    ValueError
        ``rows.stable`` is missing.

    Examples
    --------
    >>> r = OffPolicyRows(np.array([0.2, 0.6]), np.array([0.1, 0.0]), np.array([True, False]),
    ...                   np.array([0.5, 1.5]), stable=np.array([0.8, 1.2]))
    >>> residual_gap_influence(r).round(6)
    array([ 0.009, -0.009])
    """
    if rows.stable is None:
        raise ValueError("residual_gap needs the stabilised weights (rows.stable).")
    if stable_term is None:
        stable_term = _residual_term(rows.stable, rows)[1]
    return _residual_term(rows.weights, rows)[1] - stable_term


def stack(values: Sequence[PolicyValue], cluster: np.ndarray, cache: dict | None = None) -> PolicyValue:
    """Convex combination of estimates minimising the variance of the combined influence.

    ``α = argmin_{α ∈ simplex} α'Σα`` with ``Σ`` the covariance of the estimates' prompt-cluster
    totals of influence values (all computed on the same rows); ``ψ = Σ α_k ψ_k``,
    ``φ = Σ α_k φ_k``.

    Parameters
    ----------
    values : sequence of PolicyValue
        Estimates of one target on the same rows.
    cluster : numpy.ndarray of int
        Prompt code per row.
    cache : dict, optional
        Kept across calls on the same ``cluster`` object (the OUA runs of one target): whether
        it is one row per prompt in prompt order is checked once.

    Returns
    -------
    PolicyValue
        With ``mixture`` = α.

    Examples
    --------
    >>> a = PolicyValue(0.5, np.array([1.0, -1.0, 1.0, -1.0]))
    >>> b = PolicyValue(0.7, np.array([2.0, -2.0, 2.0, -2.0]))
    >>> s = stack([a, b], np.arange(4)); round(s.value, 6), s.mixture.round(6).tolist()
    (0.5, [1.0, 0.0])
    """
    alpha = _stack_weights(values, cluster, cache)
    value = float(sum(a * v.value for a, v in zip(alpha, values, strict=True)))
    # Σ α_k φ_k added in place, in the order (and with the 0 + …) of Python's sum
    phi = alpha[0] * np.asarray(values[0].influence)
    phi += 0.0
    for a, v in zip(alpha[1:], values[1:], strict=True):
        phi += a * v.influence
    # members that share one residual term (StackedDR) share its part on the labelled rows
    own = values[0].own_part
    if any(v.own_part is not own for v in values[1:]):
        own = None
    return PolicyValue(value, np.asarray(phi), mixture=alpha, own_part=own)


def _stack_value(values: Sequence[PolicyValue], cluster: np.ndarray, cache: dict | None = None
                 ) -> float:
    """:func:`stack`'s value alone (an OUA jackknife run needs no combined influence values)."""
    alpha = _stack_weights(values, cluster, cache)
    return float(sum(a * v.value for a, v in zip(alpha, values, strict=True)))


def _stack_weights(values: Sequence[PolicyValue], cluster: np.ndarray, cache: dict | None
                   ) -> np.ndarray:
    """:func:`stack`'s simplex weights (from the prompt totals of the influence values)."""
    hit = None if cache is None else cache.get("one_row_per_prompt")
    if hit is not None and hit[0] is cluster:
        n_clusters, identity = hit[1], hit[2]
    else:
        n_clusters = int(cluster.max()) + 1
        identity = n_clusters == cluster.size and np.array_equal(cluster, np.arange(n_clusters))
        if cache is not None:
            cache["one_row_per_prompt"] = (cluster, n_clusters, identity)
    if identity:
        # one row per prompt, in prompt order (logged data usually): each prompt's total is its
        # row's value, 0.0 + φ as bincount adds it (which turns −0.0 into 0.0), written straight
        # into the stack (vstack's copy, then += 0.0, passed over it twice)
        totals = np.empty((len(values), cluster.size))
        for row, v in zip(totals, values, strict=True):
            np.add(v.influence, 0.0, out=row)
    else:
        totals = np.vstack([np.bincount(cluster, weights=v.influence, minlength=n_clusters)
                            for v in values])
    # (a BLAS product, whose rounding the pinned outputs hold: einsum's products, one per pair,
    # moved a jackknife run's influence values by 1.5e-12 relative, tests/test_offpolicy_pinned.py)
    return min_variance_simplex(totals @ totals.T)


# ------------------------------------------------------------------------------------------------
# What an off-policy estimator sees, and the registered estimators
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, eq=False, kw_only=True)
class LoggedTarget(OffPolicyRows):
    """One target policy's rows under one calibration: what :meth:`Estimator.estimate` reads.

    The :class:`OffPolicyRows` fields (``reward``, ``residual``, ``labelled``, ``weights``) are
    on the target's usable logged rows, in their order; the rest serve the stabilised weights
    and the outcome models. Internal [0, 1] scales.

    Attributes
    ----------
    log_w : numpy.ndarray
        Log importance ratios ``λ_i`` of the logged rows.
    oof : numpy.ndarray
        Out-of-fold calibration ``f^(−fold(i))(S_i)`` of each logged row.
    label : numpy.ndarray
        Oracle label of each logged row (NaN if unlabelled).
    cluster, fold, codes : numpy.ndarray of int
        Prompt, fold and distinct (score, covariate) value of each logged row.
    stable_residual : bool
        Stabilised weights on the oracle residual term (:func:`cje.analyze`'s
        ``residual_weights``, resolved for this target).
    index : numpy.ndarray of shape (K, U)
        The K fold-deleted calibrations at the U distinct values.
    distinct_s : numpy.ndarray of shape (U,)
        Judge score of each distinct value (ties broken by it).
    full : numpy.ndarray of shape (U,)
        The calibration at the distinct values.
    used, used_codes : numpy.ndarray of int
        The distinct values among the logged rows, and each row's position among them.
    fresh_cluster, fresh_fold, fresh_codes : numpy.ndarray of int
        Prompt, fold and distinct value of each of the target's fresh draws (may be empty).
    fresh_label : numpy.ndarray
        Oracle label of each fresh draw (NaN if unlabelled).
    fresh_count : numpy.ndarray
        Fresh draws per prompt (at least 1).
    cache : dict, optional
        Kept by the pipeline for one target across its calibrations (the OUA jackknife's
        runs): what the estimators compute from the rows alone, and pieces the runs repeat
        (see :func:`~cje.calibration.weights.simcal_weights`'s ``cache``); under ``"shared"``,
        a dict shared by all the targets of one calibration run (see :func:`_shared`), under
        ``"static"`` one shared for the whole analysis (``simcal_weights``' ``shared``).
        ``None``: nothing kept.

    Examples
    --------
    >>> x = _example_target()   # six logged rows, two fresh draws
    >>> x.reward.tolist(), x.labelled.tolist()
    ([0.2, 0.5, 0.8, 0.2, 0.5, 0.8], [True, False, True, True, True, False])
    >>> round(SNIPS().estimate(x).value, 4)   # an estimator reads it
    0.8
    """

    log_w: np.ndarray
    oof: np.ndarray
    label: np.ndarray
    cluster: np.ndarray
    fold: np.ndarray
    codes: np.ndarray
    stable_residual: bool
    index: np.ndarray
    distinct_s: np.ndarray
    full: np.ndarray
    used: np.ndarray
    used_codes: np.ndarray
    fresh_cluster: np.ndarray
    fresh_fold: np.ndarray
    fresh_codes: np.ndarray
    fresh_label: np.ndarray
    fresh_count: np.ndarray
    cache: dict | None = None

    @property
    def scaled_residual(self) -> np.ndarray:
        """:attr:`OffPolicyRows.scaled_residual` (read-only), computed once per calibration
        for the targets that share the residual and the labels (see :func:`_shared`)."""
        return _shared(self, "scaled_residual", (self.residual, self.labelled),
                       lambda: OffPolicyRows.scaled_residual.fget(self))

    def simcal(self, var_cap: float | None = None) -> SimcalWeights:
        """SIMCal-W stabilised weights of the logged rows.

        :func:`~cje.calibration.weights.simcal_weights` ranking only the target's own logged
        values: other rows (fresh draws, probes) must not move its weights through the
        interpolation grid.

        Parameters
        ----------
        var_cap : float, optional
            Variance cap.

        Returns
        -------
        SimcalWeights

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> x.simcal().weights.round(3).tolist()
        [0.429, 0.857, 1.714, 0.429, 0.857, 1.714]
        """
        return simcal_weights(self.weights, self.used_codes, self.fold, self.index[:, self.used],
                              self.label, tiebreak=self.distinct_s[self.used], var_cap=var_cap,
                              stable_residual=self.stable_residual,
                              cache=None if self.cache is None else self.cache.setdefault("simcal", {}),
                              shared=None if self.cache is None else self.cache.get("static"))

    def at_cells(self, table: np.ndarray, fresh: bool = False) -> np.ndarray:
        """``table[fold, codes]``: a (K, U) table read at each logged row's (or, with
        ``fresh``, each fresh draw's) (fold, distinct value) cell, through a flat cell index
        (kept in :attr:`cache` for the logged rows): numpy's gather with two index arrays is ~6×
        slower at 10^6 rows.

        Parameters
        ----------
        table : numpy.ndarray of shape (K, U)
        fresh : bool

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> x.at_cells(x.index).tolist() == x.index[x.fold, x.codes].tolist()
        True
        """
        width = table.shape[1]
        if fresh:  # computed afresh: one array per target less to keep
            return np.take(table, self.fresh_fold * width + self.fresh_codes)
        memo = None if self.cache is None else self.cache.get("cells")
        if memo is not None and memo[0] is self.fold and memo[1] is self.codes and memo[2] == width:
            key = memo[3]  # (the pipeline puts its own there: no copy per target)
        else:
            key = self.fold * width + self.codes  # a fold of −1 reads row K − 1, as [-1, c] does
            if self.cache is not None:
                self.cache["cells"] = (self.fold, self.codes, width, key)
        return np.take(table, key)

    def fresh_oof(self) -> np.ndarray:
        """Out-of-fold calibration of each fresh draw.

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> x.fresh_oof().tolist()
        [0.75, 0.85]
        """
        memo = None if self.cache is None else self.cache.get("fresh_oof")
        key = (self.index, self.fresh_fold, self.fresh_codes)
        if memo is not None and all(a is b for a, b in zip(memo[0], key, strict=True)):
            return memo[1]  # this calibration's, already gathered (DR-CPO and TMLE both ask)
        out = self.at_cells(self.index, fresh=True)
        if self.cache is not None:
            out.flags.writeable = False
            self.cache["fresh_oof"] = (key, out)
        return out

    def fresh_mean(self, q_fresh: np.ndarray) -> np.ndarray:
        """``ḡ_i``: mean of ``q_fresh`` over the target's fresh draws of logged row i's prompt.

        Parameters
        ----------
        q_fresh : numpy.ndarray
            A value per fresh draw.

        Returns
        -------
        numpy.ndarray
            A value per logged row (0 where its prompt has no fresh draws).

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> x.fresh_mean(np.array([0.7, 0.9])).tolist()
        [0.7, 0.0, 0.0, 0.9, 0.0, 0.0]
        """
        pos, every = self._single_draw()
        if pos is not None:  # one fresh draw per prompt: the mean is that draw's value
            out = q_fresh[pos] if every else np.where(pos >= 0, q_fresh[np.maximum(pos, 0)], 0.0)
            out += 0.0  # as bincount's 0.0 + q: a −0.0 becomes 0.0
            return out
        tot = np.bincount(self.fresh_cluster, weights=q_fresh, minlength=self.fresh_count.size)
        return (tot / self.fresh_count)[self.cluster]

    def fresh_mean_at_cells(self, table: np.ndarray) -> np.ndarray:
        """:meth:`fresh_mean` of ``at_cells(table, fresh=True)`` — ``ḡ_i`` for an outcome model
        given as a (K, U) table — bit for bit. With one fresh draw on every logged row's prompt
        (the common layout) each row reads its draw's cell of ``table`` directly, through a
        cell index kept in :attr:`cache` (the smallest of uint8, uint16 and int32 the table
        allows: 1, 2 or 4 MB per 10⁶ rows), in place of gathering every draw's value and then
        each row's draw.

        Parameters
        ----------
        table : numpy.ndarray of shape (K, U)

        Returns
        -------
        numpy.ndarray

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> x.fresh_mean_at_cells(x.index).tolist() == x.fresh_mean(x.fresh_oof()).tolist()
        True
        """
        pos, every = self._single_draw()
        if pos is None or not every or self.cache is None:
            return self.fresh_mean(self.at_cells(table, fresh=True))
        width = table.shape[1]
        key = (self.fresh_fold, self.fresh_codes, pos)
        memo = self.cache.get("fresh_cells_of_rows")
        if memo is not None and memo[1] == width and all(
                a is b for a, b in zip(memo[0], key, strict=True)):
            cells = memo[2]
        else:
            cells = (self.fresh_fold * width + self.fresh_codes)[pos]
            small = np.min_scalar_type(max(table.size - 1, 0))
            if small.kind == "u" and small.itemsize <= 2:
                # a table of ≤ 65,536 cells: uint8/uint16 (1–2 MB per 10⁶ rows), which np.take
                # reads as fast as intp (int32 ~40% slower at 10⁶ rows)
                cells = cells.astype(small)
            elif table.size < 1 << 31:
                cells = cells.astype(np.int32)
            cells.flags.writeable = False
            self.cache["fresh_cells_of_rows"] = (key, width, cells)
        out = np.take(table, cells)
        out += 0.0  # as fresh_mean's one-draw path: a −0.0 becomes 0.0
        return out

    def _single_draw(self) -> tuple[np.ndarray | None, bool]:
        """Each logged row's fresh draw (−1: none) when every prompt has at most one and its
        ``fresh_count`` is 1 (then :meth:`fresh_mean`'s ``(Σ q)/count`` per prompt is the draw's
        own value, as bincount's sum ``0.0 + q`` divided by 1 is), ``None`` otherwise; and
        whether every row has one. Kept in :attr:`cache` for these arrays (every OUA replicate
        and DR estimator asks)."""
        key = (self.fresh_cluster, self.cluster, self.fresh_count)
        memo = None if self.cache is None else self.cache.get("single_draw")
        if memo is not None and all(a is b for a, b in zip(memo[0], key, strict=True)):
            return memo[1]
        fc, count = self.fresh_cluster, self.fresh_count
        out: tuple[np.ndarray | None, bool] = (None, False)
        if fc.size == 0 or int(fc.max()) < count.size:
            n_per = np.bincount(fc, minlength=count.size)
            if n_per.max(initial=0) <= 1 and (count > 0).all() and (count[n_per == 1] == 1).all():
                at = np.full(count.size, -1, dtype=np.int64)
                at[fc] = np.arange(fc.size)
                pos = at[self.cluster]
                pos.flags.writeable = False
                out = (pos, bool(pos.min(initial=0) >= 0))
        if self.cache is not None:
            self.cache["single_draw"] = (key, out)
        return out

    def fresh_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Calibrated reward, out-of-fold oracle residual (0 unlabelled) and labelled flag of
        each fresh draw.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray, numpy.ndarray)

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> reward, resid, lab = x.fresh_rows()
        >>> reward.tolist(), resid.round(3).tolist(), lab.tolist()
        ([0.8, 0.8], [0.0, 0.15], [False, True])
        """
        lab = ~np.isnan(self.fresh_label)
        resid = np.where(lab, np.nan_to_num(self.fresh_label) - self.fresh_oof(), 0.0)
        return self.full[self.fresh_codes], resid, lab


def _ratio(x: LoggedTarget) -> np.ndarray:
    """``exp(λ)`` of the target's rows, kept in ``x.cache`` (the same in every OUA replicate).
    The caller silences overflow (an infinite ratio is refused by the sanity gate)."""
    if x.cache is None:
        return np.exp(x.log_w)
    got = x.cache.get("ratio")
    if got is None or got[0] is not x.log_w:
        got = (x.log_w, np.exp(x.log_w))
        got[1].flags.writeable = False
        x.cache["ratio"] = got
    return got[1]


def _check_var_cap(var_cap: float | None) -> None:
    if var_cap is not None:
        check_number("var_cap", var_cap, positive=True, example="var_cap=1.0")


@register
@dataclass(frozen=True, slots=True)
class IPS(Estimator):
    """Unnormalised IPS on the raw ratios ``exp(λ)`` (:func:`ips`); the naive baseline.

    Examples
    --------
    >>> IPS().name, IPS().overlap
    ('ips', 'weighting')
    """

    name = "ips"
    overlap = "weighting"

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """See :func:`ips`; an overflowing ratio gives ``inf``, which the sanity gate refuses.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        PolicyValue

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> round(IPS().estimate(x).value, 4)
        0.9333
        """
        with np.errstate(over="ignore", invalid="ignore"):
            return ips(replace(x, ratio=_ratio(x)))

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) the value without influence values, tail inflation or allowance
        with np.errstate(over="ignore", invalid="ignore"):
            return _ips_value(replace(x, ratio=_ratio(x)))


@register
@dataclass(frozen=True, slots=True)
class SNIPS(Estimator):
    """Self-normalised IPS with the raw Hájek weights (:func:`snips`).

    Examples
    --------
    >>> SNIPS().name
    'snips'
    """

    name = "snips"
    overlap = "weighting"

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """See :func:`snips`.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        PolicyValue

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> round(SNIPS().estimate(x).value, 4)
        0.8
        """
        return snips(x)

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) the value without influence values, tail inflation or allowance
        return _snips_value(x)


@register
@dataclass(frozen=True, slots=True)
class CalibratedIPS(Estimator):
    """Calibrated IPS: SIMCal-W stabilised weights on the reward (:func:`calibrated_ips`).

    Parameters
    ----------
    var_cap : float, optional
        SIMCal-W variance cap (blends the stabilised weights toward one).

    Examples
    --------
    >>> CalibratedIPS(var_cap=1.0).stabilised
    True
    >>> CalibratedIPS(var_cap=-1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: var_cap must be ...
    """

    var_cap: float | None = None
    name = "calibrated-ips"
    stabilised = True
    overlap = "weighting"

    def __post_init__(self) -> None:
        _check_var_cap(self.var_cap)

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """See :func:`calibrated_ips`.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        PolicyValue
            With the stabilised weights it used (``stable``).

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> v = CalibratedIPS().estimate(x)
        >>> round(v.value, 4), v.stable.weights.round(3).tolist()
        (0.8, [0.429, 0.857, 1.714, 0.429, 0.857, 1.714])
        """
        sw = x.simcal(self.var_cap)
        v = calibrated_ips(replace(x, stable=sw.weights), stable_residual=x.stable_residual)
        return replace(v, stable=sw)

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) the value without influence values, tail inflation or allowance
        return _calibrated_ips_value(replace(x, stable=x.simcal(self.var_cap).weights),
                                     x.stable_residual)


@dataclass(frozen=True, slots=True)
class _DoublyRobust(Estimator):
    """The DR family: SIMCal-W weights on the correction term, an outcome model on the fresh draws."""

    var_cap: float | None = None
    needs_fresh = True
    stabilised = True
    overlap = "dr"

    def __post_init__(self) -> None:
        _check_var_cap(self.var_cap)

    def outcome(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        """Cross-fitted outcome model ``q`` on the logged rows and on the fresh draws."""
        raise NotImplementedError

    def _with_means(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        """``q`` on the logged rows and ``ḡ`` (:meth:`LoggedTarget.fresh_mean` of ``q`` on the
        fresh draws), bit for bit what :meth:`outcome` gives: the members' outcome models are
        (K, U) tables of (fold, value) cells, read at the rows' and the draws' cells."""
        q_logged, q_fresh = self.outcome(x)
        return q_logged, x.fresh_mean(q_fresh)

    def fit(self, x: LoggedTarget, stable: SimcalWeights,
            residual: tuple[float, np.ndarray, np.ndarray] | None = None) -> PolicyValue:
        """:func:`doubly_robust` with this outcome model and the given stabilised weights (and
        oracle residual term, when already computed)."""
        q_logged, g_bar = self._with_means(x)
        return doubly_robust(replace(x, stable=stable.weights), q_logged, g_bar,
                             stable_residual=x.stable_residual, residual=residual)

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """See :func:`doubly_robust`."""
        sw = x.simcal(self.var_cap)
        return replace(self.fit(x, sw), stable=sw)

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) the value without influence values, tail inflation or allowance
        q_logged, g_bar = self._with_means(x)
        return _doubly_robust_value(replace(x, stable=x.simcal(self.var_cap).weights), q_logged,
                                    g_bar, x.stable_residual)


@register
@dataclass(frozen=True, slots=True)
class DRCPO(_DoublyRobust):
    """DR-CPO: the out-of-fold calibration as the outcome model.

    Examples
    --------
    >>> DRCPO().name, DRCPO().needs_fresh
    ('dr-cpo', True)
    """

    name = "dr-cpo"

    def outcome(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        """``q = f^(−fold)(S)`` on both.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``q`` on the logged rows and on the fresh draws.

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> [q.tolist() for q in DRCPO().outcome(x)]
        [[0.25, 0.5, 0.75, 0.15, 0.5, 0.85], [0.75, 0.85]]
        """
        return x.oof, x.fresh_oof()

    def _with_means(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        return x.oof, x.fresh_mean_at_cells(x.index)  # fresh_oof() is index at the draws' cells


@register
@dataclass(frozen=True, slots=True)
class MRDR(_DoublyRobust):
    """MRDR: a weighted isotonic outcome model (:func:`~cje.estimators.outcome.mrdr_outcome`).

    Parameters
    ----------
    var_cap : float, optional
        SIMCal-W variance cap.
    omega : {"w", "w2", "w1sq"}
        Regression weights ``w``, ``w²`` or ``(w − 1)²``.

    Examples
    --------
    >>> MRDR(omega="w2").omega
    'w2'
    >>> MRDR(omega="w3")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: omega must be 'w', 'w2' or 'w1sq'; got 'w3'.
    """

    omega: str = "w"
    name = "mrdr"

    def __post_init__(self) -> None:
        _check_var_cap(self.var_cap)
        check_choice("omega", self.omega, ("w", "w2", "w1sq"))

    def outcome(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`~cje.estimators.outcome.mrdr_outcome`.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``q`` on the logged rows and on the fresh draws.

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> [q.round(3).tolist() for q in MRDR().outcome(x)]
        [[0.0, 1.0, 1.0, 0.0, 0.5, 1.0], [1.0, 1.0]]
        """
        return mrdr_outcome(x, self.omega)

    def _with_means(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        table = mrdr_table(x, self.omega)
        return x.at_cells(table), x.fresh_mean_at_cells(table)


@register
@dataclass(frozen=True, slots=True)
class TMLE(_DoublyRobust):
    """TMLE: the out-of-fold calibration fluctuated toward the weights
    (:func:`~cje.estimators.outcome.tmle_outcome`).

    Examples
    --------
    >>> TMLE().name
    'tmle'
    """

    name = "tmle"

    def outcome(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        """See :func:`~cje.estimators.outcome.tmle_outcome`.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            ``q`` on the logged rows and on the fresh draws.

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> [q.round(3).tolist() for q in TMLE().outcome(x)]
        [[0.25, 0.5, 0.75, 0.15, 0.5, 0.85], [0.75, 0.85]]
        """
        return tmle_outcome(x)

    def _with_means(self, x: LoggedTarget) -> tuple[np.ndarray, np.ndarray]:
        table = tmle_table(x)
        return x.at_cells(table), x.fresh_mean_at_cells(table)


@register
@dataclass(frozen=True, slots=True)
class StackedDR(_DoublyRobust):
    """DR-CPO, TMLE and MRDR stacked with minimum-variance simplex weights (:func:`stack`).

    Parameters
    ----------
    var_cap : float, optional
        SIMCal-W variance cap (the members share one set of stabilised weights).
    omega : {"w", "w2", "w1sq"}
        The MRDR member's regression weights.

    Examples
    --------
    >>> [m.name for m in StackedDR(omega="w2").members]
    ['dr-cpo', 'tmle', 'mrdr']
    """

    omega: str = "w"
    name = "stacked-dr"

    def __post_init__(self) -> None:
        _check_var_cap(self.var_cap)
        check_choice("omega", self.omega, ("w", "w2", "w1sq"))

    @property
    def members(self) -> tuple[_DoublyRobust, ...]:
        """The stacked estimators."""
        return (DRCPO(self.var_cap), TMLE(self.var_cap), MRDR(self.var_cap, self.omega))

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """:func:`stack` of the members' estimates; every fit shares the residual term.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        PolicyValue
            With the stacking weights (``mixture``, in the order of ``parts``).

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> v = StackedDR().estimate(x)
        >>> v.parts, round(v.value, 4)
        (('dr-cpo', 'tmle', 'mrdr'), 0.4381)
        """
        sw, residual, fits = self._fits(x)
        return replace(stack(fits, x.cluster, x.cache), stable=sw,
                       parts=tuple(m.name for m in self.members),
                       residual_influence=residual[1] if x.stable_residual else None)

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) the stacking weights need the members' influence values, the value
        # not their combination
        return _stack_value(self._fits(x)[2], x.cluster, x.cache)

    def _fits(self, x: LoggedTarget) -> tuple[SimcalWeights, tuple[float, np.ndarray],
                                                 list[PolicyValue]]:
        """The stabilised weights, the shared oracle residual term and the members' fits (the
        members differ only in the outcome model: one residual term for all)."""
        sw = x.simcal(self.var_cap)
        residual = _residual_term(sw.weights if x.stable_residual else x.weights, x)
        return sw, residual, [m.fit(x, sw, residual) for m in self.members]


def _example_target() -> LoggedTarget:
    """Six logged rows over two folds and three distinct scores, two fresh draws (doctests)."""
    codes = np.array([0, 1, 2, 0, 1, 2])
    fold = np.array([0, 0, 0, 1, 1, 1])
    index = np.array([[0.25, 0.5, 0.75], [0.15, 0.5, 0.85]])
    full = np.array([0.2, 0.5, 0.8])
    oof = index[fold, codes]
    label = np.array([0.0, np.nan, 1.0, 0.0, 1.0, np.nan])
    lab = ~np.isnan(label)
    log_w = np.log(np.array([0.5, 1.0, 2.0, 0.5, 1.0, 2.0]))
    w = np.exp(log_w) / np.exp(log_w).mean()
    fresh_cluster = np.array([0, 3])
    return LoggedTarget(
        reward=full[codes], residual=np.where(lab, np.nan_to_num(label) - oof, 0.0), labelled=lab,
        weights=w, log_w=log_w, oof=oof, label=label, cluster=np.arange(6), fold=fold,
        codes=codes, stable_residual=False, index=index, distinct_s=np.array([0.1, 0.5, 0.9]),
        full=full, used=np.arange(3), used_codes=codes, fresh_cluster=fresh_cluster,
        fresh_fold=np.array([0, 1]), fresh_codes=np.array([2, 2]),
        fresh_label=np.array([np.nan, 1.0]),
        fresh_count=np.maximum(np.bincount(fresh_cluster, minlength=6), 1))
