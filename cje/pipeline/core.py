"""The skeleton every analysis shares: fold plan, calibrator fit, OUA jackknife, gates, contrasts,
ranking and assembly of the :class:`~cje.report.Report`.

A *data shape* (:class:`~cje.pipeline.direct.DirectShape` for fresh draws of each policy,
:class:`~cje.pipeline.logged.LoggedShape` for logs with log-probabilities) turns its rows into
per-row influence values under a calibration — :meth:`Shape.run` — and says what each policy's
rows are (:meth:`Shape.policy`). Everything else is here, once. The OUA jackknife is
:meth:`Shape.values` re-run with each oracle fold's labels deleted from the calibrator.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from cje.calibration.reward import Mode, RewardCalibrator, effective_folds
from cje.data import INFERRED_LABEL_SCALE, prompt_folds
from cje.diagnostics.calibration import transport_audit
from cje.diagnostics.gates import PROMPT_GAP_WARNING as _PROMPT_GAP_WARNING
from cje.diagnostics.gates import (
    comparable,
    covariate_range_gate,
    dropped_rows_gate,
    excluded_rows_gate,
    few_labels_near_bound,
    label_range_gate,
    level_gate,
    prompt_gap_gate,
    prompt_gap_shift,
    row_weight_gate,
    row_weight_shift,
    sanity_gate,
    worse_status,
)
from cje.errors import CJEWarning
from cje.estimators.offpolicy import PolicyValue
from cje.inference import (
    cap_at_effective_prompts,
    clip_interval,
    cluster_variance,
    component_satterthwaite_df,
    jackknife_variance,
    oua_jackknife,
    paired_contrasts,
    ranking_tiers,
    satterthwaite_df,
    t_interval,
)
from cje.pipeline.probes import ProbeUse, rubric_check
from cje.pipeline.summaries import calibration_curve, from_unit, scaled_reliability
from cje.report import Report
from cje.results import CalibrationInfo, PolicyEstimate

# Table, PolicyRows and Shape are the contract between this skeleton and the data shapes, not
# public API: they may change with the shapes.
__all__ = ["MIN_LABELLED_PROMPTS", "MIN_OWN_LABELS", "distinct_rows", "estimate", "fit_calibrator",
           "fold_plan", "own_label_gate", "own_part_sums", "own_residual_variance"]

#: Minimum number of labelled prompts needed to calibrate (docs: Methods › Data, scales and folds).
MIN_LABELLED_PROMPTS = 4


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """Every row of one analysis on the internal [0, 1] scales: the rows estimated on, the
    calibration-only rows and the probe rows.

    Attributes
    ----------
    s, y : numpy.ndarray or UnitView
        Judge score and label (NaN if unlabelled) in [0, 1]; read by indexing (``y[rows]``),
        so a :class:`~cje.pipeline.summaries.UnitView` that converts the rows read may stand
        for the converted column (the direct shape's labels, and its scores when it has
        ``codes``).
    X : numpy.ndarray or None
        Covariates (n, p).
    cluster : numpy.ndarray of int
        Prompt code per row (probe prompts have their own codes).
    train : numpy.ndarray of int
        Rows that train the calibrator (labelled, not probe), in order.
    codes, distinct_s, distinct_X : numpy.ndarray or None
        The distinct (S, Z) rows (see :func:`distinct_rows`).
    weight : numpy.ndarray or None
        ``1/π_i`` per row under a labelling design with known, non-uniform probabilities (read
        on the labelled rows; docs: Methods › Labels sampled with known probabilities);
        ``None``: uniform.
    """

    s: np.ndarray  # or a UnitView (typed as the array it stands for: read the same way)
    y: np.ndarray
    X: np.ndarray | None
    cluster: np.ndarray
    train: np.ndarray
    codes: np.ndarray | None = None
    distinct_s: np.ndarray | None = None
    distinct_X: np.ndarray | None = None
    weight: np.ndarray | None = None

    def covariates_of(self, rows: np.ndarray) -> np.ndarray | None:
        """The covariates of ``rows`` (``(len(rows), p)``), ``None`` without covariates."""
        if self.X is not None:
            return self.X[rows]
        if self.distinct_X is not None and self.codes is not None:
            return self.distinct_X[self.codes[rows]]
        return None


@dataclass(frozen=True, slots=True, eq=False)
class PolicyRows:
    """What a data shape says about one reported policy's estimate, before the shared gates.

    Attributes
    ----------
    cluster : numpy.ndarray of int
        Prompt of each row that carries an influence value.
    n_labels : int
        Oracle labels among those rows.
    method : str
        Shown in the report.
    naive : (float, float, float)
        Raw judge mean and its interval, label scale.
    scores : numpy.ndarray
        The policy's judge scores on the user's scale (the out-of-range gate reads them).
    status, reasons, diagnostics
        The shape's own gates' verdict (off-policy: overlap and support) and diagnostics.
    probe : ProbeUse or None
        How the policy's probe slice entered its estimate (its rows then follow the main rows
        in ``cluster`` and the influence values; see :func:`cje.pipeline.probes.combine`).
    n_rows : int or None
        The policy's rows when its influence values are given as per-prompt totals (one value
        per prompt, as the out-of-core engines of :mod:`cje.pipeline.streaming` compute them);
        ``None``: one influence value per row.
    no_variance : bool
        A part of the estimate rests on a single prompt's labels, so its variance cannot be
        estimated: the estimate gets no standard error (the sanity gate refuses it; the shape
        gives the reason).
    own_ss : float
        The residual part of the influence values (``(L_i/p_L)(e_i − ē)``, the policy's own
        labelled rows) summed per prompt, squared and summed, over ``n²``: its clustered variance
        without a small-sample factor (see :func:`own_residual_variance`); 0: no own residual part.
    own_factor : float
        That part's small-sample factor (:func:`own_part_sums`; ``m_g/(m_g−1)`` for ``m_g``
        labelled prompts of equal weight); 0: none (the part keeps the policy's ``G/(G−1)``).
    own_m : float
        That part's effective number of labelled prompts (its degrees of freedom + 1).
    covariates : numpy.ndarray or None
        The covariates ``(n, p)`` of the rows whose rewards make the policy's level (the
        covariate range gate reads them under the two-stage map); ``None``: no covariates.
    prompt_sizes_sq : float or None
        ``Σ_g c_g²`` of the policy's rows per prompt, for the effective number of prompts
        (:func:`effective_prompts`) when the influence values are per-prompt totals (out of
        core); ``None``: counted from ``cluster`` (one value per row), or, for totals, every
        prompt taken to hold one row.
    prompt_rows : numpy.ndarray or None
        The policy's rows on each of its prompts, in the order of ``cluster``, when the
        influence values are per-prompt totals (out of core) and some prompt holds more than one
        row (the row-weight gate reads them, :func:`cje.diagnostics.gates.row_weight_gate`);
        ``None``: counted from ``cluster`` (one value per row), or, for totals, one row on every
        prompt.
    """

    cluster: np.ndarray
    n_labels: int
    method: str
    naive: tuple[float, float, float]
    scores: np.ndarray
    status: str = "OK"
    reasons: list[str] = field(default_factory=list)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    probe: ProbeUse | None = None
    n_rows: int | None = None
    no_variance: bool = False
    own_ss: float = 0.0
    own_factor: float = 0.0
    own_m: float = 0.0
    covariates: np.ndarray | None = None
    prompt_sizes_sq: float | None = None
    prompt_rows: np.ndarray | None = None


def effective_prompts(n_rows: float, sizes_sq: float) -> float:
    """``(Σ_g c_g)² / Σ_g c_g²``: the prompts a mean over rows rests on when prompt ``g`` holds
    ``c_g`` of them — ``G`` when every prompt holds as many rows, fewer when a few prompts hold
    most (2 prompts of 50 rows among 100 prompts: 7.7). The Satterthwaite degrees of freedom (+1)
    of the prompt-clustered variance when the rows' values have one variance: its ``G − 1``
    assumes prompts of equal size, and the t quantile then claims more precision than a variance
    resting on two prompts has (``simulations/results/independent_clusters.md``).

    Parameters
    ----------
    n_rows : float
        ``Σ_g c_g``.
    sizes_sq : float
        ``Σ_g c_g²``.

    Returns
    -------
    float
        ``inf`` without rows.

    Examples
    --------
    >>> effective_prompts(100, 100), round(effective_prompts(198, 98 + 2 * 50**2), 1)
    (100.0, 7.7)
    """
    return float(n_rows) ** 2 / float(sizes_sq) if sizes_sq > 0 else float("inf")


def _prompt_sizes(shape: Any, counts: dict[int, np.ndarray], present: dict[int, np.ndarray],
                  rows: list[float], per_row: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """``(N, S)`` for :func:`cje.inference.paired_contrasts`' ``prompt_sizes``: each policy's rows
    and ``S[a, b] = Σ_g c_{a,g}·c_{b,g}`` of its rows per prompt — from ``counts`` (the policies
    that repeat a prompt) and ``present`` (the others: one row where present), or, when the
    influence values are per-prompt totals, the shape's own ``prompt_sizes_cross`` (out of
    core). ``None`` when no policy repeats a prompt (presence then gives the same) or the counts
    are not known."""
    if not per_row:
        cross = getattr(shape, "prompt_sizes_cross", None)
        return None if cross is None else (np.asarray(rows), np.asarray(cross, dtype=np.float64))
    if not counts:
        return None
    cols = [counts[p] if p in counts else present[p] for p in range(len(rows))]
    group = np.concatenate([np.full(c.size, p) for p, c in enumerate(cols)])
    cluster = np.concatenate([np.arange(c.size) for c in cols])
    weight = np.concatenate(cols).astype(np.float64)
    keep = weight > 0
    cross = own_part_cross(weight[keep], group[keep], cluster[keep], np.ones(len(cols)), len(cols))
    return np.asarray(rows), cross


def own_part_sums(part: np.ndarray, group: np.ndarray, cluster: np.ndarray, n: np.ndarray,
                  n_groups: int, weight: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per policy, what the own-label residual part of the influence values needs for its own
    small-sample factor and degrees of freedom (:attr:`PolicyRows.own_ss`, ``own_factor``,
    ``own_m``).

    ``T_g`` is the part's sum over prompt ``g`` and ``W_g`` the labelled rows' total weight there
    (their count; ``Σ 1/π_i`` with ``label_probability``). The centred sum ``Σ_g T_g²`` has
    expectation ``d·Σ Var(T_g)`` with ``d = 1 − 2·ΣW³/(ΣW·ΣW²) + ΣW²/(ΣW)²`` when the prompts'
    residual means have one variance; the factor is ``1/d`` (``m_g/(m_g−1)`` for ``m_g`` prompts
    of equal weight), and the part's effective number of prompts, for its Satterthwaite degrees
    of freedom, is ``(ΣW²)²/ΣW⁴`` (``m_g`` for equal weights; fewer when a few heavy labels carry
    the mean).

    Parameters
    ----------
    part : numpy.ndarray
        The residual part of each labelled row's influence value (``(n/m)(e_i − ē)``, or
        ``(n/Ŵ) w_i (e_i − ē_w)`` with weights).
    group, cluster : numpy.ndarray of int
        Each labelled row's policy and prompt.
    n : numpy.ndarray
        Rows per policy.
    n_groups : int
    weight : numpy.ndarray, optional
        Each labelled row's weight ``1/π`` (None: 1).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray)
        ``Σ_g T_g² / n²``; the factor ``1/d`` (0 where the policy has fewer than 2 labelled
        prompts: the part keeps the policy's factor; NaN where ``d`` vanishes: one prompt's
        weight is everything, no variance estimate); the effective number of prompts.

    Examples
    --------
    >>> ss, f, m = own_part_sums(np.array([1.0, -1.0, 2.0, -2.0]), np.array([0, 0, 1, 1]),
    ...                          np.array([0, 1, 5, 5]), np.array([4, 4]), 2)
    >>> ss.tolist(), f.tolist(), m.tolist()   # policy 1: both rows on one prompt, T = 0
    ([0.125, 0.0], [2.0, 0.0], [2.0, 1.0])
    >>> _, f, m = own_part_sums(np.zeros(4), np.zeros(4, int), np.arange(4), np.array([10]), 1,
    ...                         weight=np.array([1.0, 1.0, 1.0, 5.0]))
    >>> round(float(f[0]), 3), round(float(m[0]), 3)   # 4/3 and 4 if the weights were equal
    (3.394, 1.248)
    """
    span = np.int64(int(cluster.max()) + 1) if cluster.size else np.int64(1)
    key, inv = np.unique(group.astype(np.int64) * span + cluster, return_inverse=True)
    inv = inv.ravel()
    totals = np.bincount(inv, weights=part, minlength=key.size)
    w_g = np.bincount(inv, weights=weight, minlength=key.size).astype(float)
    g_key = key // span
    n = np.asarray(n, dtype=float)
    ss = np.bincount(g_key, weights=totals * totals, minlength=n_groups)
    ss = np.divide(ss, n * n, out=np.zeros(n_groups), where=n > 0)
    s1, s2, s3, s4 = (np.bincount(g_key, weights=w_g**j, minlength=n_groups) for j in (1, 2, 3, 4))
    m_g = np.bincount(g_key, minlength=n_groups)
    # 1/d as s1²·s2 / (s1²·s2 − 2·s1·s3 + s2²): whole numbers without weights, so that the
    # factor is m_g/(m_g − 1) to the last bit
    with np.errstate(divide="ignore", invalid="ignore"):
        num = s1 * s1 * s2
        den = num - 2 * s1 * s3 + s2 * s2
        factor = np.where(den > 1e-12 * num, num / den, np.nan)
        m_eff = np.where(s4 > 0, s2 * s2 / s4, 0.0)
    return ss, np.where(m_g >= 2, factor, 0.0), m_eff


def own_part_cross(part: np.ndarray, group: np.ndarray, cluster: np.ndarray, n: np.ndarray,
                   n_groups: int) -> np.ndarray:
    """``C[a, b] = Σ_g T_{a,g}·T_{b,g} / (n_a·n_b)``: the own-label residual parts of two policies
    (:func:`own_part_sums`' ``T_g``) multiplied prompt by prompt; the diagonal is
    :func:`own_part_sums`' ``Σ_g T_g² / n²``.

    Where two policies' labels share prompts and their residuals are correlated there (the judge
    errs by prompt), the parts cancel in the policies' difference: a paired contrast's residual
    variance is ``Σ_g (T_a − T_b)²``, not the sum of the two sides' (:func:`cje.inference.
    paired_contrasts`). Built in blocks of prompts, so memory stays ``O(P²)`` plus a block.

    Parameters
    ----------
    part, group, cluster : numpy.ndarray
        As for :func:`own_part_sums`: each labelled row's residual part, policy and prompt.
    n : numpy.ndarray
        Rows per policy.
    n_groups : int

    Returns
    -------
    numpy.ndarray of shape (n_groups, n_groups)

    Examples
    --------
    >>> c = own_part_cross(np.array([1.0, -1.0, 2.0, 3.0]), np.array([0, 0, 1, 1]),
    ...                    np.array([0, 1, 0, 2]), np.array([2, 2]), 2)
    >>> c.tolist()   # policies 0 and 1 share prompt 0 only: (1/2)·(2/2)
    [[0.5, 0.5], [0.5, 3.25]]
    """
    out = np.zeros((n_groups, n_groups))
    if not part.size:
        return out
    span = np.int64(int(cluster.max()) + 1)
    key, inv = np.unique(group.astype(np.int64) * span + cluster, return_inverse=True)
    n = np.asarray(n, dtype=float)
    g_key = key // span
    vals = np.bincount(inv.ravel(), weights=part, minlength=key.size)
    vals = np.divide(vals, n[g_key], out=np.zeros(key.size), where=n[g_key] > 0)
    prompts, col = np.unique(key % span, return_inverse=True)
    order = np.argsort(col, kind="stable")
    col, g_key, vals = col.ravel()[order], g_key[order], vals[order]
    block = max(1, 2**22 // max(n_groups, 1))
    for start in range(0, prompts.size, block):
        lo, hi = np.searchsorted(col, [start, start + block])
        d = np.zeros((n_groups, min(block, prompts.size - start)))
        d[g_key[lo:hi], col[lo:hi] - start] = vals[lo:hi]
        out += d @ d.T
    return out


def own_parts_summary(parts: Mapping[int, tuple[np.ndarray, np.ndarray]], n: np.ndarray,
                      n_groups: int
                      ) -> tuple[dict[int, tuple[float, float, float]], np.ndarray]:
    """:func:`own_part_sums` and :func:`own_part_cross` of the policies whose residual term has
    a part on labelled rows (the off-policy shapes: the logging policy's own labels, each
    target's importance-weighted residual term on the same labelled logged rows). Each
    labelled row weighs one: the factor and the effective number of labelled prompts count the
    labelled rows per prompt (a few prompts holding most labels), and leave the importance
    weights' tail to the overlap machinery (``tail_inflation``, the gates).

    Parameters
    ----------
    parts : Mapping[int, (numpy.ndarray, numpy.ndarray)]
        Policy index → (the part on its labelled rows, their prompts).
    n : numpy.ndarray
        Rows per policy (0 for the policies without a part).
    n_groups : int

    Returns
    -------
    (dict, numpy.ndarray)
        Policy index → ``(own_ss, own_factor, own_m)`` (:class:`PolicyRows`), and the
        ``(n_groups, n_groups)`` matrix of :func:`own_part_cross`.

    Examples
    --------
    >>> sums, cross = own_parts_summary({0: (np.array([1.0, -1.0]), np.array([0, 1]))},
    ...                                 np.array([4]), 1)
    >>> sums, cross.tolist()   # two labelled prompts of one row each: factor 2/1
    ({0: (0.125, 2.0, 2.0)}, [[0.125]])
    """
    ps = sorted(parts)
    part = np.concatenate([parts[q][0] for q in ps])
    group = np.concatenate([np.full(parts[q][0].size, q, dtype=np.int64) for q in ps])
    cluster = np.concatenate([parts[q][1] for q in ps]).astype(np.int64, copy=False)
    ss, f, m = own_part_sums(part, group, cluster, n, n_groups)
    sums = {q: (float(ss[q]), float(f[q]), float(m[q])) for q in ps if parts[q][0].size}
    return sums, own_part_cross(part, group, cluster, n, n_groups)


def own_residual_variance(v_if: float, own_ss: float, g: int, factor: float) -> tuple[float, float]:
    """The sampling variance with the own-label residual part given its own small-sample factor.

    The prompt-clustered variance of all the policy's influence values applies ``G/(G−1)`` to
    every part; the residual part is a mean over the policy's labelled prompts alone, whose
    unbiased variance needs their factor (``m_g/(m_g−1)`` for ``m_g`` prompts of equal weight;
    with one label per prompt it is ``s_e²/m``; :func:`own_part_sums`). Returns
    ``(V_if', V_res)``: the corrected sampling variance and the residual part's variance.

    Parameters
    ----------
    v_if : float
        Clustered variance of the influence values (factor ``G/(G−1)`` throughout).
    own_ss : float
        ``Σ_g T_g² / n²`` of the residual part (:attr:`PolicyRows.own_ss`).
    g : int
        The policy's prompts.
    factor : float
        The residual part's factor (:attr:`PolicyRows.own_factor`).

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> v, vr = own_residual_variance(0.0103, 0.01, 300, 10 / 9)   # 10 labels: s_e²/m = 0.0111
    >>> round(v, 5), round(vr, 5)
    (0.01138, 0.01111)
    """
    v_old = g / (g - 1) * own_ss
    v_res = factor * own_ss
    return v_if - v_old + v_res, v_res


def level_df(v_if: float, var_cal: float, g: float, k: int, probe: ProbeUse | None = None,
             own: tuple[float, float] | None = None) -> float:
    """Satterthwaite degrees of freedom of a level, with the part of its sampling variance that
    rests on fewer prompts as a component of its own: a probe-corrected estimate's probe part
    (``(V_D + V_P + V_cal)² / (V_D²/(G_D−1) + V_P²/(G_P−1) + V_cal²/(K−1))``) or the residual
    part of the policy's own labels (``V_res`` with ``m_g − 1``, the rest with ``G − 1``).

    Without either it is :func:`~cje.inference.satterthwaite_df`. A 50-label probe, or 10 own
    labels, that carry most of the variance get about 49 (or 9) degrees of freedom, not those
    of the policy's many prompts (:func:`~cje.inference.component_satterthwaite_df`).

    Parameters
    ----------
    v_if, var_cal : float
        Sampling variance (all parts) and calibration variance.
    g, k : int
        Prompts (main + probe) and jackknife folds.
    probe : ProbeUse or None
    own : (float, float) or None
        The own-label residual part's variance and effective number of labelled prompts
        (:func:`own_residual_variance`, :func:`own_part_sums`).

    Returns
    -------
    float
        At least 1.

    Examples
    --------
    >>> use = ProbeUse(50, 50, 0, 1.0, -0.2, 0.0009, 1000)
    >>> round(level_df(0.001, 0.0, 1050, 5, use), 1)
    60.5
    >>> level_df(0.001, 0.0, 1050, 5)
    1049.0
    >>> round(level_df(0.0114, 0.0, 300, 5, own=(0.0111, 10)), 1)   # 10 own labels
    9.5
    """
    df = satterthwaite_df(v_if, var_cal, g, k)
    parts = []
    if probe is not None:
        parts.append((np.array([probe.var]), np.array([probe.n_prompts]), True))
    if own is not None:
        parts.append((np.array([own[0]]), np.array([own[1]]), False))
    if not parts:
        return df
    out = component_satterthwaite_df(np.array([df]), np.array([v_if]), np.array([var_cal]),
                                     np.array([g]), k, parts)
    return float(out[0])


#: Own labels below which a level corrected by their residuals is CAUTION (docs: Methods ›
#: The direct estimator; a data shape with fresh draws applies :func:`own_label_gate` in its
#: ``policy()``). Measured with binary labels, two equal policies, one with 60 labels
#: and the other with m (200 replicates each, Monte Carlo SE ≤ 0.034): coverage 0.38 (m = 1),
#: 0.67 (2), 0.77 (3), 0.83 (5), 0.90 (10), 0.91 (20), 0.95 (30, 40); "better than" between the
#: equal policies 46%, 22%, 14%, 15%, 10%, 7.5%, 3.5%, 3.5%. Since the residual part has its
#: own small-sample factor and degrees of freedom (:func:`own_residual_variance`,
#: :func:`level_df`) the same design covers (the ``own_labels`` study, 4,000 replicates, MC SE
#: ≤ 0.004) 0.930 (m = 5), 0.948 (10), 0.951 (20), 0.960 (30) with binary labels and 0.958,
#: 0.959 (m = 10, 20) with continuous 1–5 labels: below 10 binary labels it still falls short.
MIN_OWN_LABELS = 10


def own_label_gate(n_own: int, one_prompt: bool) -> tuple[str, list[str], bool]:
    """Status, reasons and "no variance" of a level whose residual correction is the mean of
    the policy's own ``n_own`` labelled residuals (``one_prompt``: all on a single prompt).

    * one prompt → REFUSED, no standard error: the mean residual moves the level (by ±0.4 on
      a 0–1 scale with one binary label) while the spread of one prompt's residuals says
      nothing about its variance (with one label it is exactly 0);
    * fewer than :data:`MIN_OWN_LABELS` labels → CAUTION: the interval of a mean of that few
      residuals under-covers (see :data:`MIN_OWN_LABELS`).

    Parameters
    ----------
    n_own : int
        The policy's own labelled rows.
    one_prompt : bool
        Whether they all lie on one prompt.

    Returns
    -------
    (str, list of str, bool)

    Examples
    --------
    >>> own_label_gate(1, True)[0], own_label_gate(1, True)[2]
    ('REFUSED', True)
    >>> own_label_gate(5, False)[0], own_label_gate(10, False)
    ('CAUTION', ('OK', [], False))
    """
    if one_prompt:
        return "REFUSED", [
            f"its level is corrected by the residuals of its {n_own} own oracle label(s), all on "
            "a single prompt: the variance of that correction cannot be estimated, so the level "
            "has no standard error. Label responses to other prompts (or analyse with "
            "DirectEstimator(augment=False), which uses no residual term)."], True
    if n_own < MIN_OWN_LABELS:
        return "CAUTION", [
            f"level corrected by only {n_own} of its own oracle labels, fewer than "
            f"{MIN_OWN_LABELS}: the interval of a mean of that few residuals rests on a variance "
            "estimated from them alone (in simulation 5 binary labels covered 0.93 instead of "
            "0.95); label more of its responses."], False
    return "OK", [], False


class Shape(Protocol):
    """A data shape: how rows become per-row influence values (see the module docstring)."""

    table: Table
    names: Sequence[str]
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    labelled_scores: np.ndarray  # the calibrator's labelled judge scores, user's scale
    n_clusters: int
    # calibration_share divides by se² (the square root squared back) rather than by the sum of
    # the variances: the logged shape always did, and changing either would move the last bit
    share_over_se2: bool
    probe_names: Sequence[str]

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Judge scores ([0, 1]) spanning the calibration curve's grid, and the covariates whose
        medians it holds fixed."""

    def run(self, calibrator: RewardCalibrator,
            deleted: frozenset[int]) -> list[tuple[PolicyValue, float]]:
        """Every policy's estimate and transport gap under the calibration without ``deleted``."""

    def values(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        """Only the point estimates (what the jackknife needs)."""

    def probe_residuals(self, calibrator: RewardCalibrator) -> list[np.ndarray]:
        """``Y − f(S)`` on each probe slice's rows under the full calibration."""

    def probe_rows(self) -> list[np.ndarray]:
        """Each probe slice's rows."""

    def gap_influence(self) -> dict[int, tuple[float, np.ndarray]]:
        """Policy index → (transport gap, per-prompt totals of its influence scaled so that their
        sum of squares is the gap's variance), for the policies that carry a transport
        allowance, under the full calibration."""

    def policy(self, p: int, value: PolicyValue, gap: float) -> PolicyRows:
        """What the report needs about policy ``p`` besides its variance."""


#: Up to this many scores, :func:`distinct_rows` factorizes in Python (no pandas import).
_SMALL_ROWS = 50_000


def distinct_rows(s: np.ndarray, X: np.ndarray | None, *, always: bool = False
                  ) -> tuple[Any, Any, Any]:
    """Codes of the distinct (S, Z) rows: judges score on coarse grids, so the calibrator is
    evaluated on a few values instead of every row.

    Parameters
    ----------
    s : numpy.ndarray
        Judge scores.
    X : numpy.ndarray or None
        Covariates (n, p).
    always : bool
        Give codes even when the distinct rows are nearly as many as the rows.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray or None)
        ``(codes, distinct_s, distinct_X)`` in order of first appearance; with covariates and
        more combinations than rows, ``(None, None, None)`` unless ``always``.

    Examples
    --------
    >>> codes, d, _ = distinct_rows(np.array([0.5, 0.2, 0.5]), None)
    >>> codes.tolist(), d.tolist()
    ([0, 1, 0], [0.5, 0.2])
    """
    if X is None and s.shape[0] <= _SMALL_ROWS and not np.isnan(s).any():
        # pandas.factorize in Python: importing pandas costs more than a few thousand rows
        index: dict[float, int] = {}
        codes = np.fromiter((index.setdefault(v, len(index)) for v in s.tolist()), dtype=np.intp,
                            count=s.shape[0])
        return codes, np.fromiter(index, dtype=np.float64, count=len(index)), None
    import pandas as pd

    if X is None:
        codes, uniq = pd.factorize(s)
        return codes, np.asarray(uniq, dtype=np.float64), None
    key = np.zeros(s.shape[0], dtype=np.int64)
    size = 1
    for col in (s, *X.T):
        c, u = pd.factorize(col)
        size *= len(u)
        if size > s.shape[0] or size > 2**62:  # too many combinations to gain anything
            if not always:
                return None, None, None
            codes, _ = pd.factorize(pd.MultiIndex.from_arrays([s, *X.T]))
            break
        key = key * len(u) + c
    else:
        codes, _ = pd.factorize(key)
    first = np.empty(int(codes.max()) + 1 if codes.size else 0, dtype=np.int64)
    first[codes] = np.arange(s.shape[0])  # a row holding each distinct (S, Z)
    return codes, s[first], X[first]


def fold_plan(prompts: np.ndarray, labelled_prompt: np.ndarray, n_folds: int,
              seed: int) -> tuple[int, np.ndarray, list[str]]:
    """Folds K (fewer when labelled prompts are few), each prompt's fold, and the warning.

    Parameters
    ----------
    prompts : numpy.ndarray
        Distinct prompt ids.
    labelled_prompt : numpy.ndarray of bool
        Prompts with an oracle label that trains the calibrator.
    n_folds, seed : int
        As in :func:`cje.analyze`.

    Returns
    -------
    (int, numpy.ndarray, list of str)

    Examples
    --------
    >>> prompts = np.array(["a", "b", "c", "d", "e", "f"], dtype=object)
    >>> k, fold, warns = fold_plan(prompts, np.array([1, 1, 1, 1, 0, 0], bool), 5, 0)
    >>> k, sorted(fold[:4].tolist()), warns[0][:36]
    (2, [0, 0, 1, 1], 'Only 4 labelled prompts: cross-fitti')
    """
    m = int(labelled_prompt.sum())
    k = effective_folds(m, n_folds)
    warns = []
    if k < n_folds:
        warns.append(
            f"Only {m} labelled prompts: cross-fitting and the OUA jackknife use K = {k} "
            f"folds instead of {n_folds}; intervals are less stable. Label more prompts."
        )
    return k, prompt_folds(prompts, labelled_prompt, k, seed), warns


def fit_calibrator(table: Table, fold: np.ndarray, *, mode: Mode, k: int,
                   seed: int) -> tuple[RewardCalibrator, list[str]]:
    """AutoCal-R fitted on the table's training rows; its warnings are captured for the report.

    Parameters
    ----------
    table : Table
    fold : numpy.ndarray of int
        Fold of each training row (``table.train``).
    mode : {"auto", "monotone", "two_stage"}
    k, seed : int
        Folds and fold-hash seed.

    Returns
    -------
    (RewardCalibrator, list of str)

    Examples
    --------
    >>> s = np.linspace(0, 1, 40); y = s ** 2
    >>> t = Table(s=s, y=y, X=None, cluster=np.arange(40), train=np.arange(40))
    >>> cal, warns = fit_calibrator(t, np.arange(40) % 4, mode="monotone", k=4, seed=0)
    >>> cal.mode_, warns
    ('monotone', [])
    """
    t = table.train
    calibrator = RewardCalibrator(mode=mode, n_folds=k, seed=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CJEWarning)
        calibrator.fit(table.s[t], table.y[t], covariates=None if table.X is None else table.X[t],
                       prompt_id=table.cluster[t], folds=fold,
                       sample_weight=None if table.weight is None else table.weight[t])
    return calibrator, [str(w.message) for w in caught]


#: A policy without rows on at least this share of the prompts makes the different prompt sets a
#: warning (below it, e.g. a few failed generations, a notice); defined with the gates
#: (:data:`cje.diagnostics.gates.PROMPT_GAP_WARNING`), which caution such a gap that cannot be
#: checked.
PROMPT_GAP_WARNING = _PROMPT_GAP_WARNING


def prompt_set_message(names: Sequence[str], present: Sequence[np.ndarray]
                       ) -> tuple[bool, str] | None:
    """Whether the policies were judged on different prompts, as (is a warning, text); ``None``
    when every policy has rows on the same prompts.

    Each policy's value is the mean over its own prompts and a contrast is the difference of two
    such values (its variance pairs the prompts both answered; the estimate is not restricted to
    them): with different prompt sets, a difference between policies is partly a difference
    between prompts. Where the prompts a policy lacks are unlike the ones it has, its level is
    also CAUTION (:func:`cje.diagnostics.gates.prompt_gap_gate`). A policy lacking at least
    :data:`PROMPT_GAP_WARNING` of the prompts makes it a warning (its usual cause: ids written
    differently in places, ``7`` and ``7.0``, ``'7'`` and ``'007'``, which are different text
    and so different prompts); smaller gaps (a few failed generations) a notice.

    Parameters
    ----------
    names : sequence of str
        The policies.
    present : sequence of numpy.ndarray of bool
        Per policy, whether it has a row on each prompt (the same prompts in the same order).

    Returns
    -------
    (bool, str) or None

    Examples
    --------
    >>> on = [np.array([True, True, True, False]), np.array([False, True, True, True])]
    >>> warn, text = prompt_set_message(["a", "b"], on)
    >>> print(warn, text)  # doctest: +NORMALIZE_WHITESPACE
    True The policies were judged on different prompts (4 prompts in all): 'a' has no row on 1
    of them (25%), 'b' on 1 (25%). Each value is the mean over the policy's own prompts and a
    contrast is the difference of two such values, not restricted to the prompts both answered,
    so a difference between policies is partly a difference between their prompts. If the same
    prompt is written differently in places (e.g. 7 and '7.0', or '7' and '007'), write it the
    same way on every row.
    >>> prompt_set_message(["a", "b"], [on[0], on[0]]) is None
    True
    """
    if len(present) < 2 or all(np.array_equal(present[0], p) for p in present[1:]):
        return None
    union = np.logical_or.reduce(list(present))
    g = int(union.sum())
    lacking = [(name, int(np.count_nonzero(union & ~p)))
               for name, p in zip(names, present, strict=True)]
    lacking = sorted(((n, m) for n, m in lacking if m), key=lambda t: -t[1])
    parts = [f"{name!r} {'has no row on' if j == 0 else 'on'} {m:,}{' of them' if j == 0 else ''} "
             f"({m / g:.0%})" for j, (name, m) in enumerate(lacking[:5])]
    more = f"; {len(lacking) - 5} more policies lack some" if len(lacking) > 5 else ""
    text = (f"The policies were judged on different prompts ({g:,} prompts in all): "
            f"{', '.join(parts)}{more}. Each value is the mean over the policy's own prompts and "
            "a contrast is the difference of two such values, not restricted to the prompts both "
            "answered, so a difference between policies is partly a difference between their "
            "prompts. If the same prompt is "
            "written differently in places (e.g. 7 and '7.0', or '7' and '007'), write it the "
            "same way on every row.")
    return lacking[0][1] >= PROMPT_GAP_WARNING * g, text


def _rows_per_prompt(c: np.ndarray, cl: np.ndarray, info: PolicyRows) -> np.ndarray:
    """A policy's rows on each prompt code (0 where it has none), the same in every engine:
    ``c`` (counted from the rows, in memory) or, when the influence values are per-prompt totals
    (out of core), the counts the shape kept (:attr:`PolicyRows.prompt_rows`) or one row on every
    prompt it has."""
    if info.n_rows is None:
        return c
    out = (c > 0).astype(np.int64)
    if info.prompt_rows is not None:
        out[cl] = info.prompt_rows
    return out


def _prompt_gap_gates(results: list[PolicyEstimate], shown: Sequence[int],
                      totals: Mapping[int, np.ndarray], rows_at: Mapping[int, np.ndarray],
                      rows: Sequence[float], present: Mapping[int, np.ndarray], own: int,
                      width: float) -> None:
    """:func:`cje.diagnostics.gates.prompt_gap_gate` for every shown policy that lacks prompts
    another policy of the data answered (direct data; shown or not: ``policies=`` chooses what
    is reported, not a level's status): in place, the first policy that cautions it (else the
    one with the largest ``|z|``) named in its diagnostics ``prompt_gap_vs``, with
    ``prompt_gap_shift`` (label units) and ``prompt_gap_z``. Rows per prompt are each policy's
    exact counts (``rows_at``, :func:`_rows_per_prompt`), the same in every engine; each of the
    ``K`` policies that answered prompts it lacks is tested at the ``|z|`` of
    :func:`cje.diagnostics.gates.prompt_gap_threshold` for ``K``."""
    import dataclasses

    every = list(range(len(results)))
    pres = {p: present[p][:own] for p in every}
    if len(every) < 2 or all(np.array_equal(pres[0], pres[p]) for p in every[1:]):
        return
    for b in shown:
        best: tuple[tuple[float, float], int, float, float, str | None] | None = None
        lacks = {a: int(np.count_nonzero(pres[a] & ~pres[b])) if a != b else 0 for a in every}
        comparators = sum(1 for m in lacks.values() if m)  # each tested: the threshold splits α
        for a in every:
            lacking = lacks[a]
            if lacking == 0:
                continue
            c = rows_at[a][:own]  # its rows on each prompt
            u = totals[a][:own] * rows[a]  # Σ φ per prompt
            shift, _, z = prompt_gap_shift(u, c, ~pres[b])
            _, why = prompt_gap_gate(results[b].policy, results[a].policy, lacking,
                                     int(np.count_nonzero(pres[a])), shift, z,
                                     results[b].se / width, width, comparators)
            key = (1.0 if why else 0.0, abs(z) if z == z else np.inf)
            if best is None or key > best[0]:
                best = (key, a, shift, z, why)
        if best is None:
            continue
        _, a, shift, z, why = best
        r = results[b]
        diag = {**r.diagnostics, "prompt_gap_vs": results[a].policy,
                "prompt_gap_shift": float(shift * width), "prompt_gap_z": float(z)}
        results[b] = dataclasses.replace(
            r, status=worse_status(r.status, "CAUTION") if why else r.status,
            reasons=(*r.reasons, why) if why else r.reasons, diagnostics=diag)


def _row_weight(totals: np.ndarray, c: np.ndarray, cl: np.ndarray, info: PolicyRows,
                n_rows: float, own: int, se: float, width: float
                ) -> tuple[dict[str, float], str | None]:
    """:func:`cje.diagnostics.gates.row_weight_gate` for a direct level: its rows per prompt on
    its own prompts (codes below ``own``; a probe slice's prompts follow), from the rows
    (``c``, in memory) or the shape's counts (per-prompt totals, out of core), and ``Σ φ`` per
    prompt (``totals · n_rows``), the same numbers in every engine. No diagnostics when every
    prompt holds as many rows."""
    if info.n_rows is None:
        on = np.flatnonzero(c[:own])
        sizes = c[on]
    elif info.prompt_rows is None:  # per-prompt totals of one row each
        return {}, None
    else:  # per-prompt totals: ``cl`` is each total's prompt, in increasing order
        keep = cl < own
        on, sizes = cl[keep], info.prompt_rows[keep]
    if sizes.size < 2 or int(sizes.min()) == int(sizes.max()):
        return {}, None
    d, z = row_weight_shift(totals[on] * n_rows, sizes)
    return row_weight_gate(d, z, se, width, int(np.count_nonzero(sizes > 1)), int(sizes.size),
                           int(sizes.max()))


def estimate(
    shape: Shape,
    calibrator: RewardCalibrator,
    *,
    alpha: float,
    requested_mode: Mode,
    covariates: tuple[str, ...],
    transport_margin: float | None,
    only: Sequence[str] | None,
    notices: list[str],
    warns: list[str],
    excluded: Mapping[str, int],
    settings: dict[str, Any],
    progress: bool | None = None,
    dropped: Mapping[str, int] | None = None,
) -> Report:
    """Everything after the calibrator fit: estimates, OUA jackknife, audits, gates, contrasts,
    ranking, and the report on the user's scales.

    Parameters
    ----------
    shape : Shape
        The data shape (:class:`~cje.pipeline.direct.DirectShape`,
        :class:`~cje.pipeline.logged.LoggedShape`).
    calibrator : RewardCalibrator
        Fitted by :func:`fit_calibrator` on ``shape.table``.
    alpha, covariates, transport_margin, progress
        As in :func:`cje.analyze`.
    requested_mode : str
        The ``mode=`` asked for.
    only : sequence of str or None
        Report only these policies.
    notices, warns : list of str
        The report's notices and warnings so far.
    excluded : Mapping[str, int]
        Rows excluded while loading.
    settings : dict
        The run's options (:attr:`Report.settings`).
    dropped : Mapping[str, int] or None
        Each level's rows dropped as invalid (``on_invalid="drop"``), for
        :func:`~cje.diagnostics.gates.dropped_rows_gate` (logged data: the dropped logged rows,
        for every level); a policy of direct data not among the levels lost all its rows.

    Returns
    -------
    Report

    Examples
    --------
    >>> import cje
    >>> from cje.estimators import DirectEstimator
    >>> from cje.pipeline.direct import DirectShape
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> ev = cje.load(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    >>> shape = DirectShape(ev, {}, (), DirectEstimator(), 0.05)
    >>> lab = shape.table.train
    >>> cal, _ = fit_calibrator(shape.table, shape.table.cluster[lab] % 5, mode="monotone", k=5,
    ...                         seed=0)
    >>> rep = estimate(shape, cal, alpha=0.05, requested_mode="monotone", covariates=(),
    ...                transport_margin=None, only=None, notices=[], warns=[], excluded={},
    ...                settings={})
    >>> [e.policy for e in rep.estimates][:2], rep.calibration.n_folds
    (['base', 'concise'], 5)
    """
    k = calibrator.n_folds_
    scale = shape.label_scale
    width = scale[1] - scale[0]  # standard errors and variances scale by it
    table = shape.table
    full = shape.run(calibrator, frozenset())
    reps = oua_jackknife(lambda d: shape.values(calibrator, frozenset({d})), range(k),
                         progress=progress)  # (K, P)
    with np.errstate(invalid="ignore", over="ignore"):  # IPS may overflow: refused below
        var_cal = jackknife_variance(reps)

    # ---- transport audits --------------------------------------------------------------------
    probe_resid = shape.probe_residuals(calibrator)
    audits = [transport_audit(pol, resid, table.cluster[rows], alpha=alpha, width=width,
                              margin=transport_margin)
              for pol, resid, rows in zip(shape.probe_names, probe_resid,
                                          shape.probe_rows(), strict=True)]
    audit_of = {a.policy: a for a in audits}
    # a probe that corrects a level: do its labels reach where the data's labels lie at its
    # scores (labels on another rubric do not; cje.pipeline.probes.rubric_check)
    probe_fit = {pol: (table.y[rows], table.y[rows] - resid)
                 for pol, resid, rows in zip(shape.probe_names, probe_resid, shape.probe_rows(),
                                             strict=True)}
    data_resid: np.ndarray | None = None
    lab_cov = (shape.table.covariates_of(shape.table.train)
               if covariates and getattr(calibrator, "mode_", None) == "two_stage" else None)

    # a label scale that is the labels' own range has no bound to judge levels against
    # (docs: Methods › Inference; simulations/results/independent_kpi.md)
    inferred = any(n.startswith(INFERRED_LABEL_SCALE) for n in notices)
    range_level, range_why = label_range_gate(scale, table.y[table.train], inferred)

    # ---- per-policy results ------------------------------------------------------------------
    results = []
    totals: dict[int, np.ndarray] = {}
    present: dict[int, np.ndarray] = {}
    probes: dict[int, tuple[float, int]] = {}  # probe-corrected policies: their contrasts' df
    owns: dict[int, tuple[float, float, float]] = {}  # own-label residual parts, for contrasts
    # rows per prompt, for the contrasts' effective prompts: the counts of the policies that
    # repeat a prompt (one value per row; presence says the rest), and each policy's rows
    counts: dict[int, np.ndarray] = {}
    per_row = True  # every policy's influence values one per row (else: the shape's counts)
    rows_of: list[float] = []
    unreliable: set[int] = set()  # levels refused for a failed transport audit
    rows_at: dict[int, np.ndarray] = {}  # rows per prompt, by policy
    own_prompts = getattr(shape, "policy_prompts", None)  # direct data: each policy its prompts
    for p, name in enumerate(shape.names):
        value, gap = full[p]
        info = shape.policy(p, value, gap)
        phi, cl = value.influence, info.cluster
        n_rows = cl.size if info.n_rows is None else info.n_rows
        # the prompts' totals and rows (totals: 1 each), for the variance and the contrasts
        t_p = np.bincount(cl, weights=phi, minlength=shape.n_clusters)
        c = np.bincount(cl, minlength=shape.n_clusters)
        # (n_rows: None, one value per row, as before)
        v_if, g = cluster_variance(phi, cl, info.n_rows, totals=t_p, counts=c)
        if info.no_variance or (info.probe is not None and info.probe.n_prompts < 2):
            # a mean residual on one prompt (a probe's, or the policy's own labels) has no
            # variance estimate (its rows are not independent): its part would enter with
            # variance 0 and the interval claim a precision it does not have. No standard
            # error: it enters no contrast, and the gates refuse it (own_label_gate, level_gate)
            v_if = float("nan")
        totals[p] = t_p / n_rows
        del t_p
        present[p] = c > 0
        # rows per prompt, for the prompt-gap gate: the exact counts, the same in every engine
        # (in memory from the rows; out of core the counts kept where they vary, else one row
        # on every prompt the policy has); kept in the smallest integer type that holds them
        # (one array per policy over every prompt: int64 ones added 80 MB at 10⁷ rows)
        at = _rows_per_prompt(c, cl, info)
        rows_at[p] = at.astype(np.min_scalar_type(int(at.max(initial=0))), copy=False)
        del at
        vc = float(var_cal[p])
        v_tr = gap * gap
        own = None
        if info.probe is None and info.own_factor != 0 and g >= 2 and np.isfinite(v_if):
            # the own-label residual part: its own small-sample factor and df (Methods › The
            # direct estimator: a mean of m_g residuals is not one of G prompts)
            v_if, v_res = own_residual_variance(v_if, info.own_ss, g, info.own_factor)
            own = (v_res, info.own_m)
            owns[p] = (info.own_ss, info.own_factor, info.own_m)
        total = v_if + vc + v_tr
        se = float(np.sqrt(total))
        # the prompt part's df: the effective prompts of unequal prompt sizes, at most G (a
        # probe's prompts are counted apart: its part is a component of its own)
        g_df: float = g
        per_row = per_row and info.n_rows is None
        if info.n_rows is None and c.size and int(c.max()) > 1:
            counts[p] = c.astype(np.int32)
        rows_of.append(float(n_rows))
        if info.probe is None:
            sq = info.prompt_sizes_sq
            if sq is None and info.n_rows is None:
                sq = float(c @ c)
            if sq:
                g_df = min(g, effective_prompts(n_rows, sq))
        df = float(cap_at_effective_prompts(level_df(v_if, vc, g_df, k, info.probe, own), g_df, g))
        if info.probe is not None:
            probes[p] = (info.probe.var, info.probe.n_prompts)
        lo_t, hi_t = t_interval(value.value, se, df, alpha)
        # inside the label scale (docs: Methods › Inference): cut at the bounds, which loses no
        # coverage; the sanity gate still judges the uncut interval (width, crossing)
        lo, hi, clipped = clip_interval(value.value, lo_t, hi_t, (0.0, 1.0))
        # the level gates every estimate shares: transport audit, no labels of its own, judge
        # scores outside the labelled range, a constant calibration
        level, level_reasons, level_diag = level_gate(
            name, info.scores, shape.labelled_scores, info.n_labels, audit_of.get(name),
            calibrator.is_constant_, probe=info.probe)
        if own is not None:  # a level resting on a few own labels, near a bound
            near, why = few_labels_near_bound(value.value, se, own[0], info.own_m, df, alpha)
            if why:
                level, level_reasons = worse_status(level, near), (*level_reasons, why)
        if range_why:
            level, level_reasons = worse_status(level, range_level), (*level_reasons, range_why)
        if info.probe is not None and name in probe_fit:
            if data_resid is None:  # the calibration's out-of-fold residuals, once
                data_resid = table.y[table.train] - calibrator.calibration(frozenset()).oof
            reach, why = rubric_check(*probe_fit[name], data_resid, scale)
            if why:
                level, level_reasons = worse_status(level, "CAUTION"), (*level_reasons, why)
                level_diag = {**level_diag, **reach}
        if lab_cov is not None and info.n_labels == 0 and info.probe is None:
            # a level resting on the two-stage map transporting, read beyond the labelled
            # covariates (own labels or a probe correct it wherever the map is read)
            beyond, why, cov_diag = covariate_range_gate(info.covariates, lab_cov, covariates)
            level_diag = {**level_diag, **cov_diag}
            if why:
                level, level_reasons = worse_status(level, beyond), (*level_reasons, why)
        left_out, why = excluded_rows_gate(info.diagnostics, int(n_rows), se)
        if why:  # logged rows a target left out (no log-probability or fresh draws; needs the SE)
            level, level_reasons = worse_status(level, left_out), (*level_reasons, why)
        n_dropped = int((dropped or {}).get(name, 0))
        if n_dropped:  # its rows dropped as invalid: no judge score says they were at random
            level_diag = {**level_diag, "n_dropped_invalid": n_dropped}
            worst, why = dropped_rows_gate(n_dropped, int(n_rows), se)
            if why:
                level, level_reasons = worse_status(level, worst), (*level_reasons, why)
        if own_prompts is not None:  # direct data: prompts holding unequal numbers of rows
            weight_diag, why = _row_weight(totals[p], c, cl, info, float(n_rows), own_prompts,
                                           se, width)
            level_diag = {**level_diag, **weight_diag}
            if why:
                level, level_reasons = worse_status(level, "CAUTION"), (*level_reasons, why)
        diag = {**info.diagnostics, **level_diag, "interval_clipped": clipped}
        if g_df < g:  # a few prompts hold most rows: fewer degrees of freedom than prompts
            diag["effective_prompts"] = float(g_df)
        if clipped:
            diag["ci_low_unclipped"] = float(from_unit(lo_t, scale))
            diag["ci_high_unclipped"] = float(from_unit(hi_t, scale))
        n_labels = info.n_labels + (info.probe.n_labels if info.probe is not None else 0)
        audit = audit_of.get(name)
        if info.probe is None and audit is not None and audit.verdict == "FAIL":
            unreliable.add(p)
        results.append(PolicyEstimate(
            policy=name, estimate=float(from_unit(value.value, scale)), se=se * width,
            ci_low=float(from_unit(lo, scale)), ci_high=float(from_unit(hi, scale)), alpha=alpha,
            df=df,
            n=int(n_rows), n_prompts=g, n_labels=n_labels,
            var_if=v_if * width**2, var_cal=vc * width**2, var_transport=v_tr * width**2,
            # no standard error (NaN: e.g. one prompt) gives no share either, not 0%
            calibration_share=float(vc / (se**2 if shape.share_over_se2 else total))
            if se > 0 else (0.0 if se == 0 else float("nan")),
            naive_estimate=info.naive[0], naive_ci_low=info.naive[1], naive_ci_high=info.naive[2],
            method=info.method, status=worse_status(info.status, level),
            reasons=tuple(info.reasons) + level_reasons, diagnostics=diag,
        ))
    # the last gate, before the ranking and the contrasts: non-finite numbers, estimates or
    # intervals beyond the label scale, a policy seen on a single prompt
    results = [sanity_gate(r, shape.label_scale) for r in results]
    shown = [i for i, n in enumerate(shape.names) if only is None or n in only]
    if own_prompts is not None:  # a policy lacking prompts that another scores differently
        _prompt_gap_gates(results, shown, totals, rows_at, rows_of, present, own_prompts, width)
    del rows_at
    # contrasts only between numbers that can be compared (finite, on the scale, ≥ 2 prompts)
    # and not with a level refused for a failed transport audit: the difference carries the
    # same untransported level, and a "better than" built on it would be printed (the sanity
    # gate's too-wide interval leaves the paired difference usable: its level is merely
    # imprecise)
    can_compare = [i for i in shown
                   if i not in unreliable and comparable(results[i], shape.label_scale)]
    # the influence values are summarised in totals: free them before the contrasts (80 MB
    # at 10^7 rows)
    point, gaps = [float(v.value) for v, _ in full], [g for _, g in full]
    del full
    if shape.names:  # the last policy's loop variables hold them too
        del value, info, phi, cl
    pairs = paired_contrasts(totals, present, point, reps,
                             can_compare, tuple(shape.names), k, alpha, width,
                             gaps=gaps, probes=probes,
                             gap_influence=shape.gap_influence(), own=owns,
                             own_cross=getattr(shape, "own_cross", None),
                             prompt_sizes=_prompt_sizes(shape, counts, present, rows_of, per_row))
    del counts
    ranking = ranking_tiers([results[i] for i in shown], pairs)
    own = getattr(shape, "policy_prompts", None)  # direct data: each policy its own prompts
    if own is not None:
        said = prompt_set_message([shape.names[i] for i in shown],
                                  [present[i][:own] for i in shown])
        if said is not None and said[0]:
            warns = [*warns, said[1]]
        elif said is not None:
            notices = [*notices, said[1]]
    # a policy every row of which on_invalid="drop" dropped has no level: said, not left out silently
    gone = {p: int(n) for p, n in (dropped or {}).items()
            if n and p not in shape.names and (only is None or p in only)}
    if gone:
        listed = ", ".join(f"{p!r} ({n} rows)" for p, n in sorted(gone.items()))
        warns = [*warns, (
            f"No estimate for {listed}: every row of {'it' if len(gone) == 1 else 'each'} was "
            "dropped as invalid (on_invalid='drop'), so the report leaves "
            f"{'it' if len(gone) == 1 else 'them'} out. Re-score the failed rows.")]

    y_train = table.y[table.train]
    curve_s, curve_X = shape.curve_inputs()
    cal_info = CalibrationInfo(
        mode=calibrator.mode_, requested_mode=requested_mode, n_folds=k,
        n_labels=int(table.train.size),
        # distinct prompts among the training rows, by a count per prompt code (np.unique
        # hashed 10^6 codes at 10^7 rows)
        n_labelled_prompts=int(np.count_nonzero(np.bincount(table.cluster[table.train]))),
        covariates=covariates,
        oof_rmse=float(np.sqrt(np.mean((y_train - calibrator.predict_oof()) ** 2))) * width,
        judge_range=(float(shape.labelled_scores.min()), float(shape.labelled_scores.max())),
        selection=dict(calibrator.selection_),
        reliability=tuple(scaled_reliability(calibrator, shape.judge_scale, shape.label_scale)),
        is_constant=calibrator.is_constant_,
        curve=calibration_curve(curve_s, curve_X, calibrator.predictor(),
                                [calibrator.predictor(frozenset({d})) for d in range(k)],
                                shape.judge_scale, shape.label_scale),
    )
    return Report(
        estimates=tuple(results[i] for i in shown), pairs=pairs, audits=tuple(audits),
        calibration=cal_info, ranking=ranking, judge_scale=shape.judge_scale,
        label_scale=shape.label_scale, alpha=alpha, notices=tuple(notices),
        warnings=tuple(warns), excluded=dict(excluded), settings=settings,
    )
