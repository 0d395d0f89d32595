"""Probe labels that correct a policy's level (docs: Methods › Probe slices).

A probe slice is an oracle-labelled random sample of a policy's own responses, on prompts of its
own. Its mean residual ``ē_P = mean_P (Y − f(S))`` is a direct, unweighted, design-unbiased
estimate of ``E_p[Y − f(S)]``, the part of the policy's value the calibrated reward misses — the
same quantity the residual term of the estimate targets. With ``probe_correction=True``
(:func:`cje.analyze`'s default) it enters that term:

* **pooled** with the policy's own labelled rows in its data (direct estimates, the logging
  policy): ``ψ = mean_D R + λ·ē_own + (1 − λ)·ē_P`` with ``λ = m/(m + n_P)``, ``m`` the own labels
  and ``n_P`` the probe's. Every labelled response of the policy counts once: the pooled mean of
  its residuals, the natural choice when both samples' residuals have similar spread, and a weight
  fixed by the design (an inverse-variance weight would be estimated from the same residuals and
  add their noise to the interval);
* **instead of** the weighted logged residual term ``Σ v(L/p_L)e / Σ v`` of the off-policy
  estimators (``λ = 0``), which rests on the few labelled logged rows with large weights, or on
  the calibration transporting when the weights are stabilised.

The probe is a separate sample on its own prompts, so the two parts are independent and the
variance of the estimate is ``Var(main part) + Var(probe part)``; :func:`combine` scales the two
sets of influence values so that :func:`cje.inference.cluster_variance` over their union returns
exactly that sum, each part with its own small-sample factor ``G/(G − 1)``. The probe's residuals
are recomputed under each fold-deleted calibration inside the OUA jackknife (the probe never
trains the calibrator), so ``Var_cal`` is the calibration variance of the corrected estimate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cje.diagnostics.gates import BALANCE_Z
from cje.estimators.offpolicy import PolicyValue
from cje.inference import cluster_variance

#: :func:`rubric_check`: the quantile of the data's residuals ``Y − f(S)`` that places where
#: most of the data's labels lie at a score: above ``f(s) + q``, below ``f(s) + q(1 − ·)``.
RUBRIC_QUANTILE = 0.25
#: :func:`rubric_check`: the share of a probe's rows (and at least :data:`RUBRIC_MIN_ROWS`) at
#: whose scores three quarters of the data's labels lie beyond every label of the probe.
RUBRIC_SHARE = 0.10
#: :func:`rubric_check`: the fewest such rows that caution.
RUBRIC_MIN_ROWS = 3

__all__ = ["RUBRIC_MIN_ROWS", "RUBRIC_QUANTILE", "RUBRIC_SHARE", "ProbeUse", "combine",
           "rubric_check", "score_balance"]


@dataclass(frozen=True, slots=True)
class ProbeUse:
    """How a probe slice entered one policy's estimate (under the full calibration).

    Attributes
    ----------
    n_labels : int
        Probe labels used.
    n_prompts : int
        Probe prompts (clusters).
    n_own : int
        The policy's own labelled rows pooled with the probe (0 off-policy: replaced).
    weight : float
        Weight ``1 − λ`` of the probe's mean residual in the residual term.
    mean : float
        The probe's mean residual ``ē_P`` (internal [0, 1] scale).
    var : float
        Variance of the probe part ``(1 − λ)·ē_P`` (internal scale; prompt-clustered).
    n_main : int
        Rows of the main part (the probe rows follow them in the influence values).

    Examples
    --------
    >>> ProbeUse(50, 50, 0, 1.0, -0.2, 0.0004, 400).weight
    1.0
    """

    n_labels: int
    n_prompts: int
    n_own: int
    weight: float
    mean: float
    var: float
    n_main: int


def _factor(cluster: np.ndarray) -> tuple[float, int]:
    """``G/(G − 1)`` of :func:`cluster_variance` for these rows (1 with fewer than 2 clusters)."""
    g = int(np.unique(cluster).size)
    return (g / (g - 1) if g > 1 else 1.0), g


def combine(plug: PolicyValue, own_value: float, own_phi: np.ndarray, n_own: int,
            main_cluster: np.ndarray, probe_residual: np.ndarray,
            probe_cluster: np.ndarray) -> tuple[PolicyValue, np.ndarray, ProbeUse]:
    """The probe-corrected estimate, its influence values over the main and probe rows, and their
    prompts.

    ``ψ = ψ_plug + λ·ē_own + (1 − λ)·ē_P`` with ``λ = n_own/(n_own + n_P)``. Influence values: on
    the ``n_D`` main rows ``a·(φ_plug + λ·φ_own)``, on the ``n_P`` probe rows
    ``b·(1 − λ)(e_j − ē_P)``, with ``a = (n/n_D)·√(c_D/c)`` and ``b = (n/n_P)·√(c_P/c)``
    (``n = n_D + n_P``; ``c = G/(G − 1)`` over all prompts, ``c_D`` and ``c_P`` over each part's):
    :func:`~cje.inference.cluster_variance` of the union is then exactly
    ``cluster_variance(main) + cluster_variance(probe)``, the variance of a sum of two independent
    means, and the per-prompt totals ``Σ_g φ / n`` the paired contrasts read are each part's own.

    Parameters
    ----------
    plug : PolicyValue
        The estimate without any residual term (its influence on the main rows).
    own_value : float
        The policy's own residual term ``ē_own`` (0 when it has none or it is replaced).
    own_phi : numpy.ndarray
        That term's influence values on the main rows (zeros when none).
    n_own : int
        Own labelled rows behind ``ē_own`` (0: the probe replaces the term).
    main_cluster : numpy.ndarray of int
        Prompt of each main row.
    probe_residual : numpy.ndarray
        ``Y − f(S)`` on the probe rows under the calibration in use.
    probe_cluster : numpy.ndarray of int
        Prompt of each probe row (codes disjoint from the main rows').

    Returns
    -------
    (PolicyValue, numpy.ndarray, ProbeUse)
        The estimate (influence over the main rows, then the probe rows), the prompt of each of
        those rows, and how the probe entered.

    Examples
    --------
    A policy with no labels of its own (R on 4 rows, 2 probe residuals):

    >>> plug = PolicyValue(0.5, np.array([-0.1, 0.1, -0.2, 0.2]))
    >>> v, cl, use = combine(plug, 0.0, np.zeros(4), 0, np.arange(4),
    ...                      np.array([-0.3, -0.1]), np.array([4, 5]))
    >>> round(v.value, 3), cl.tolist(), use.weight
    (0.3, [0, 1, 2, 3, 4, 5], 1.0)
    >>> from cje.inference import cluster_variance

    >>> main = cluster_variance(plug.influence, np.arange(4))[0]
    >>> probe = cluster_variance(np.array([-0.1, 0.1]), np.array([4, 5]))[0]
    >>> round(cluster_variance(v.influence, cl)[0], 6), round(main + probe, 6)
    (0.018333, 0.018333)
    """
    n_d, n_p = main_cluster.size, probe_residual.size
    lam = n_own / (n_own + n_p)
    e_bar = float(probe_residual.mean())
    value = plug.value + lam * own_value + (1.0 - lam) * e_bar
    phi_main = plug.influence + lam * own_phi
    phi_probe = (1.0 - lam) * (probe_residual - e_bar)
    cluster = np.concatenate([main_cluster, probe_cluster])
    c, _ = _factor(cluster)
    c_d, _ = _factor(main_cluster)
    c_p, g_p = _factor(probe_cluster)
    n = n_d + n_p
    phi = np.concatenate([phi_main * (n / n_d) * np.sqrt(c_d / c),
                          phi_probe * (n / n_p) * np.sqrt(c_p / c)])
    var_p = cluster_variance(phi_probe, probe_cluster)[0] if g_p > 1 else 0.0
    use = ProbeUse(n_labels=n_p, n_prompts=g_p, n_own=n_own, weight=1.0 - lam, mean=e_bar,
                   var=float(var_p), n_main=n_d)
    return PolicyValue(float(value), phi, mixture=plug.mixture, stable=plug.stable,
                       parts=plug.parts), cluster, use


def score_balance(probe_s: np.ndarray, probe_cluster: np.ndarray, s: np.ndarray,
                  cluster: np.ndarray, w: np.ndarray | None = None
                  ) -> tuple[float, float, str | None]:
    """Do a probe slice's judge scores look like those of its policy's responses?

    A probe slice is a random sample of the policy's responses, so its mean judge score estimates
    the same mean as the policy's rows. A difference of more than :data:`~cje.diagnostics.gates.BALANCE_Z`
    prompt-clustered standard errors says it is not one (e.g. the highest-scored responses were
    sent for labels): its mean residual is then the residual of *those* scores, and where the
    calibration's error varies with the score the correction is biased while its interval is as
    narrow as a random probe's. Measured in ``simulations/independent_probes.py``: a probe of the
    top-scored quarter of responses, with a judge that mis-rates only high scores, gave OK
    intervals covering 0.75-0.80.

    An off-policy target without fresh draws has no responses of its own to compare with: its
    score distribution is that of the logged rows weighted by ``w`` (the Hájek weights
    ``π_target/π_logging``), whose mean ``Σ w s / Σ w`` has the prompt-clustered variance of the
    linearisation ``(w_i/w̄)(s_i − m_w)``. At a low effective sample size that standard error
    rests on the few rows with large weights and is itself noisy (a heavy weight tail makes it
    too small more often than too large), so the check both loses power and cautions a random
    probe somewhat more often; such a target's level is CAUTION by the overlap gates already.

    Parameters
    ----------
    probe_s, s : numpy.ndarray
        Judge scores of the probe rows and of the policy's rows (any one scale).
    probe_cluster, cluster : numpy.ndarray of int
        Their prompts.
    w : numpy.ndarray, optional
        Weights of the policy's rows (a target known through weighted logged rows); equal
        weights by default.

    Returns
    -------
    (float, float, str or None)
        The difference of the means (probe − policy), its z statistic (NaN without a variance),
        and the reason to caution the level when ``|z|`` exceeds
        :data:`~cje.diagnostics.gates.BALANCE_Z` (None otherwise).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(5, 2, 1000)
    >>> diff, z, why = score_balance(np.sort(s)[-50:], np.arange(50), s, np.arange(1000))
    >>> round(diff, 1), why is not None
    (4.0, True)
    >>> score_balance(s[:50], np.arange(50), s, np.arange(1000))[2] is None
    True

    Weighted rows (a target without fresh draws), weights favouring high scores:

    >>> w = np.exp(0.5 * (s - 5))
    >>> diff, z, why = score_balance(s[:50], np.arange(50), s, np.arange(1000), w)
    >>> round(diff, 1), why is not None
    (-1.5, True)
    """
    mp = float(probe_s.mean())
    vp = cluster_variance(probe_s - mp, probe_cluster)[0]
    if w is None:
        md = float(s.mean())
        vd = cluster_variance(s - md, cluster)[0]
    else:
        w = np.asarray(w, dtype=float)
        wbar = float(w.mean())
        md = float((w * s).sum() / w.sum()) if wbar > 0 else float("nan")
        vd = cluster_variance((w / wbar) * (s - md), cluster)[0] if wbar > 0 else float("nan")
    se = float(np.sqrt(vp + vd)) if np.isfinite(vp) and np.isfinite(vd) else float("nan")
    diff = mp - md
    z = diff / se if se > 0 else (0.0 if diff == 0 else float("nan"))
    if not abs(z) > BALANCE_Z:  # (NaN: no variance to judge it by)
        return diff, z, None
    if w is None:
        theirs, fix = "its responses'", "). Label a random sample of its responses."
    else:
        theirs, fix = "its importance-weighted logged rows'", (
            "), or the weighted logged rows do not represent the target's responses (poor "
            "overlap). Label a random sample of its responses; fresh draws of the target would "
            "tell the two apart.")
    return diff, z, (
        f"its probe slice's judge scores differ from {theirs} (mean {mp:.3g} vs {md:.3g}, "
        f"z = {z:+.1f}): the probe does not look like a random sample of its responses, which "
        "the correction assumes (a probe chosen by score corrects the level by the residual of "
        "those scores only" + fix)


def rubric_check(probe_y: np.ndarray, probe_f: np.ndarray, data_residual: np.ndarray,
                scale: tuple[float, float] = (0.0, 1.0)) -> tuple[dict[str, float], str | None]:
    """Do a probe slice's labels reach where the data's labels lie at the same judge scores?

    Probe labels given on another rubric than the data's (``1–5`` against ``1–10``, every value
    inside the declared scale) shift the probe's mean residual by the change of rubric: the
    correction then moves the level by it, the transport audit FAILs, and a level corrected by
    the probe stays OK — ``simulations/results/independent_probes.md`` measured OK intervals
    covering 0.000. A large mean residual alone does not tell it from a policy the judge
    mis-rates (the Arena's ``unhelpful``, ``δ`` = −0.275 of the scale, must stay correctable).
    What a rubric compressed into part of the scale does and a mis-rating does not: the probe's
    labels stop short of where the data's labels lie at the probe's own scores. At the score of
    a probe row ``f(s) + q`` is the data's lower quartile of labels (``q`` the quantile
    :data:`RUBRIC_QUANTILE` of the data's residuals ``Y − f(S)``, out of fold); when it lies above
    the probe's *highest* label for at least :data:`RUBRIC_SHARE` of the probe's rows (and
    :data:`RUBRIC_MIN_ROWS`), the level is cautioned; likewise below the probe's lowest label
    with the upper quartile. A policy that the judge over-rates by a few residual SDs at a
    shared score would trip it as well (its labels then never reach the data's at that score
    either); the reason says so.

    Parameters
    ----------
    probe_y : numpy.ndarray
        The probe's labels (internal [0, 1] scale).
    probe_f : numpy.ndarray
        The calibrated reward ``f(S)`` of its rows.
    data_residual : numpy.ndarray
        The out-of-fold residuals ``Y − f(S)`` of the labelled rows that train the calibration.
    scale : (float, float)
        The label scale, to print the labels in the reason.

    Returns
    -------
    (dict, str or None)
        The diagnostics ``probe_labels_unreached`` (share of the probe's rows beyond its label
        range) and the reason to caution, both only when it cautions (empty and None otherwise).

    Examples
    --------
    Data labels 1–10 (``y = 1 + 9u``), a probe labelled ``1 + 4u`` on the same responses:

    >>> rng = np.random.default_rng(0)
    >>> u = rng.uniform(0.05, 0.95, 50)
    >>> f = u + rng.normal(0, 0.05, 50)              # what the data's calibration says
    >>> e = rng.normal(0, 0.1, 400)                   # the data's residuals
    >>> more, why = rubric_check(4 * u / 9, f, e, (1.0, 10.0))
    >>> round(more["probe_labels_unreached"], 2), why is not None
    (0.56, True)

    A policy the judge over-rates by 0.2 (two residual SDs): its labels still reach.

    >>> rubric_check(u - 0.2 + rng.normal(0, 0.1, 50), f, e)
    ({}, None)
    """
    n = int(probe_y.size)
    if n == 0 or data_residual.size < 2:
        return {}, None
    q_lo, q_hi = np.quantile(data_residual, [RUBRIC_QUANTILE, 1.0 - RUBRIC_QUANTILE])
    top, bottom = float(probe_y.max()), float(probe_y.min())
    above = int(np.count_nonzero(probe_f + q_lo > top))
    below = int(np.count_nonzero(probe_f + q_hi < bottom))
    k = max(above, below)
    if k < max(RUBRIC_MIN_ROWS, RUBRIC_SHARE * n):
        return {}, None
    lo, width = scale[0], scale[1] - scale[0]
    if above >= below:
        where = (f"three quarters of the data's labels lie above {lo + width * top:.3g}, the "
                 "probe's highest label")
    else:
        where = (f"three quarters of the data's labels lie below {lo + width * bottom:.3g}, the "
                 "probe's lowest label")
    return {"probe_labels_unreached": k / n}, (
        f"its probe slice's labels never reach where the data's labels lie at the same judge "
        f"scores: at the scores of {k} of its {n} probe rows {where}. Labels given on another "
        "rubric than the data's (e.g. 1–5 against 1–10, every value inside the label scale) "
        "look like this, and the correction would move the level by the change of rubric. Give "
        "the probe's labels on the data's rubric (or map them onto it); if they are, the judge "
        "rates this policy far off the calibration and its level rests on the probe alone.")
