"""Calibration diagnostics: transport audits and coverage of the labelled judge range (docs: Methods ›
Diagnostics and gates)."""

from __future__ import annotations

import numpy as np

from cje.inference import cluster_variance, t_interval
from cje.results import TransportAudit

__all__ = ["transport_audit", "transport_verdict", "out_of_range_share"]


def transport_audit(policy: str, residual: np.ndarray, cluster: np.ndarray, *, alpha: float,
                    width: float, margin: float | None) -> TransportAudit:
    """The transport audit of one probe slice from its residuals ``Y − f(S)`` (internal scale).

    The audit asks whether the calibrator actually used transports, so its interval is
    conditional on that fit: the prompt-clustered sampling error of the probe slice only
    (docs: Methods › Diagnostics and gates). Adding the jackknife term would widen it with the calibrator's
    own variability, which the estimate's OUA interval already carries. ``width`` maps the internal
    [0, 1] scale back to label units.

    Parameters
    ----------
    policy : str
        The audited policy.
    residual : numpy.ndarray
        ``Y − f(S)`` on the probe slice's rows (internal [0, 1] scale).
    cluster : numpy.ndarray of int
        Prompt code per row.
    alpha : float
        ``1 − alpha`` interval.
    width : float
        Width of the label scale (``high − low``).
    margin : float or None
        Practical margin ``δ_max`` in label units; ``None`` leaves the audit NOT GRADED.

    Returns
    -------
    TransportAudit

    Examples
    --------
    >>> a = transport_audit("p", np.array([-0.3, -0.2, -0.25, -0.35]), np.arange(4), alpha=0.05,
    ...                     width=1.0, margin=0.05)
    >>> round(a.delta, 3), a.verdict
    (-0.275, 'FAIL')
    """
    delta = float(residual.mean())
    v, g = cluster_variance(residual - delta, cluster)
    se = float(np.sqrt(v))
    df = float(max(g - 1, 1))
    lo, hi = t_interval(delta, se, df, alpha)
    return TransportAudit(
        policy=policy, delta=delta * width, se=se * width, ci_low=float(lo * width),
        ci_high=float(hi * width), df=df, n=int(residual.size), n_prompts=g, margin=margin,
        verdict=transport_verdict(lo * width, hi * width, margin),
    )


def transport_verdict(ci_low: float, ci_high: float, margin: float | None) -> str:
    """Grade a transport audit from the interval of ``δ = mean(Y − f(S))``.

    ``PASS`` if the interval lies inside ``[−margin, margin]``, ``FAIL`` if it lies wholly outside
    it, ``INCONCLUSIVE`` otherwise, ``NOT GRADED`` without a margin.

    Parameters
    ----------
    ci_low, ci_high : float
        The interval of ``δ`` (label units).
    margin : float or None
        Practical margin ``δ_max`` (label units).

    Returns
    -------
    str
        ``"PASS"``, ``"FAIL"``, ``"INCONCLUSIVE"`` or ``"NOT GRADED"``.

    Examples
    --------
    >>> transport_verdict(-0.02, 0.03, 0.05), transport_verdict(-0.3, -0.1, 0.05)
    ('PASS', 'FAIL')
    >>> transport_verdict(-0.08, 0.0, 0.05), transport_verdict(-0.08, 0.0, None)
    ('INCONCLUSIVE', 'NOT GRADED')
    """
    if margin is None:
        return "NOT GRADED"
    if -margin <= ci_low and ci_high <= margin:
        return "PASS"
    if ci_high < -margin or ci_low > margin:
        return "FAIL"
    return "INCONCLUSIVE"


def out_of_range_share(scores: np.ndarray, labelled_scores: np.ndarray) -> float:
    """Share of ``scores`` outside the range of judge scores seen on labelled rows.

    Beyond that range the calibrator is flat (extrapolation), so levels there are not learned.

    Parameters
    ----------
    scores : numpy.ndarray
        Judge scores of one policy.
    labelled_scores : numpy.ndarray
        Judge scores of the labelled rows the calibrator was fitted on.

    Returns
    -------
    float
        A share in [0, 1]; NaN when either array is empty.

    Examples
    --------
    >>> out_of_range_share(np.array([0.1, 0.5, 0.9, 1.0]), np.array([0.2, 0.9]))
    0.5
    """
    if scores.size == 0 or labelled_scores.size == 0:
        return float("nan")
    lo, hi = labelled_scores.min(), labelled_scores.max()
    return float(np.mean((scores < lo) | (scores > hi)))
