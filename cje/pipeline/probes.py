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

__all__ = ["ProbeUse", "combine", "score_balance"]


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
                  cluster: np.ndarray) -> tuple[float, float, str | None]:
    """Do a probe slice's judge scores look like those of its policy's responses?

    A probe slice is a random sample of the policy's responses, so its mean judge score estimates
    the same mean as the policy's rows. A difference of more than :data:`~cje.diagnostics.gates.BALANCE_Z`
    prompt-clustered standard errors says it is not one (e.g. the highest-scored responses were
    sent for labels): its mean residual is then the residual of *those* scores, and where the
    calibration's error varies with the score the correction is biased while its interval is as
    narrow as a random probe's. Measured in ``simulations/independent_probes.py``: a probe of the
    top-scored quarter of responses, with a judge that mis-rates only high scores, gave OK
    intervals covering 0.75-0.80.

    Parameters
    ----------
    probe_s, s : numpy.ndarray
        Judge scores of the probe rows and of the policy's rows (any one scale).
    probe_cluster, cluster : numpy.ndarray of int
        Their prompts.

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
    """
    mp, md = float(probe_s.mean()), float(s.mean())
    vp = cluster_variance(probe_s - mp, probe_cluster)[0]
    vd = cluster_variance(s - md, cluster)[0]
    se = float(np.sqrt(vp + vd)) if np.isfinite(vp) and np.isfinite(vd) else float("nan")
    diff = mp - md
    z = diff / se if se > 0 else (0.0 if diff == 0 else float("nan"))
    if not abs(z) > BALANCE_Z:  # (NaN: no variance to judge it by)
        return diff, z, None
    return diff, z, (
        f"its probe slice's judge scores differ from its responses' (mean {mp:.3g} vs {md:.3g}, "
        f"z = {z:+.1f}): the probe does not look like a random sample of its responses, which "
        "the correction assumes (a probe chosen by score corrects the level by the residual of "
        "those scores only). Label a random sample of its responses.")
