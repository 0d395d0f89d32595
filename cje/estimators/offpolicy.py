"""Off-policy estimators: IPS, SNIPS, calibrated IPS and the doubly robust family (METHODS §4).

Each takes the per-row arrays of one target policy's usable logged rows — calibrated reward
``R``, oracle residual ``e = Y − f_oof(S)`` on labelled rows, importance weights, and for the DR
family an outcome model ``q`` with its mean ``ḡ`` over the target's fresh draws of the row's
prompt — and returns the point estimate with a per-row influence value (mean zero; clustered by
prompt downstream). Nothing here fits anything: the outcome models, SIMCal weights and TMLE
fluctuation are built by the pipeline (:mod:`cje.offpolicy`) so the OUA jackknife can refit them.

The oracle residual term ``mean((L/p_L)·w·e)`` estimates ``E_target[Y − f(S)]``, the part of the
target's value the calibrated reward misses; here it uses the **raw** (Hájek) weights unless
``stable_residual=True``. Stabilised weights estimate ``E[W | S]``, a valid replacement for ``W``
only when multiplied by a function of ``S`` (METHODS §3.2's key fact) — the reward is one, the
residual is not. With ``stable_residual=True`` the stabilised weights go on the residual too:
lower variance, but the estimate then targets ``E_target[E_logging[Y | S]]``, which equals the
target's value only when the judge score carries everything the target changes about the label
(the calibration transports; audit it with a probe slice) — the pipeline then adds the square of
:func:`residual_gap` to the variance as an allowance. The pipeline chooses per target
(:func:`cje.analyze`'s ``residual_weights``: by default raw weights at a raw-weight ESS of at
least 10%, stabilised below); ``simulations/results/study_residual_weights.md`` has the evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cje.calibration.weights import min_variance_simplex

__all__ = [
    "ESTIMATORS",
    "OffPolicyRows",
    "PolicyValue",
    "ips",
    "snips",
    "calibrated_ips",
    "doubly_robust",
    "residual_gap",
    "stack",
]

#: Off-policy estimator names accepted by ``cje.analyze(..., estimator=...)``.
ESTIMATORS: tuple[str, ...] = (
    "ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr",
)


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


def _weighted(w: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Hájek mean of ``x`` with mean-one weights and its influence ``w (x − ψ)``."""
    psi = float((w * x).sum() / w.sum())  # not np.dot: threaded BLAS stalls on a busy machine
    return psi, w * (x - psi)


def _stabilised(stable: np.ndarray, raw: np.ndarray, x: np.ndarray) -> tuple[float, np.ndarray]:
    """Hájek mean of ``x`` (a function of the judge score) with stabilised weights, and its
    influence values *including the stabiliser's own estimation*.

    ``w̃ ≈ E[W | S]`` is fitted on the same logs. Row i's raw weight moves the fit at its score,
    adding ``(w_i − w̃_i)(x_i − ψ)`` to its influence; with ``w̃``'s own term ``w̃_i (x_i − ψ)`` the
    total is ``w_i (x_i − ψ)`` (centred). Treating ``w̃`` as fixed instead would report the
    variance of the ideal ``E[W | S]``, which an estimated one does not reach: in
    ``simulations/results/study_residual_weights.md`` such intervals covered 0.69 at 10% raw ESS.
    """
    psi = float((stable * x).sum() / stable.sum())
    phi = raw * (x - psi)
    return psi, phi - phi.mean()


def ips(rows: OffPolicyRows) -> PolicyValue:
    """Unnormalised IPS: ``ψ = (1/n) Σ ρ_i (R_i + (L_i/p_L) e_i)`` with ``ρ = exp(λ)``.

    Offered for completeness and as the naive baseline: its weights do not average one in a
    finite sample, so it is unbiased but very variable. Influence ``φ_i = ρ_i ỹ_i − ψ``.

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
    """
    if rows.ratio is None:
        raise ValueError("ips needs the unnormalised ratios (rows.ratio).")
    contrib = rows.ratio * (rows.reward + rows.scaled_residual)
    psi = float(contrib.mean())
    return PolicyValue(psi, contrib - psi)


def snips(rows: OffPolicyRows) -> PolicyValue:
    """Self-normalised IPS with raw Hájek weights: ``ψ = Σ w_i ỹ_i / Σ w_i``.

    ``ỹ_i = R_i + (L_i/p_L) e_i``; influence ``φ_i = w_i (ỹ_i − ψ)`` (delta method for the ratio).

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
    """
    psi, phi = _weighted(rows.weights, rows.reward + rows.scaled_residual)
    return PolicyValue(psi, phi)


def calibrated_ips(rows: OffPolicyRows, *, stable_residual: bool = False) -> PolicyValue:
    """Calibrated IPS: stabilised (SIMCal-W) weights ``w̃`` on the reward.

    ``ψ = Σ w̃_i R_i / Σ w̃_i + Σ v_i (L_i/p_L) e_i / Σ v_i`` with ``v = w`` (raw Hájek weights,
    default) or ``v = w̃`` (``stable_residual=True``);
    ``φ_i = w_i (R_i − ψ_R) − c + v_i ((L_i/p_L) e_i − ψ_e)`` (``c`` centres the first term):
    the reward term's influence includes the estimation of ``w̃`` (see :func:`_stabilised`).

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
    psi_e, phi_e = _weighted(w_s if stable_residual else rows.weights, rows.scaled_residual)
    return PolicyValue(psi_r + psi_e, phi_r + phi_e)


def doubly_robust(rows: OffPolicyRows, outcome: np.ndarray, fresh_mean: np.ndarray, *,
                  stable_residual: bool = False) -> PolicyValue:
    """Doubly robust estimate with an outcome model ``q`` (DR-CPO, MRDR and TMLE share it).

    ``ψ = mean ḡ_i + Σ w̃_i (R_i − q_i)/Σ w̃_i + Σ v_i (L_i/p_L) e_i / Σ v_i``, where ``ḡ_i`` is
    the mean of ``q`` over the target's fresh draws of row i's prompt, ``w̃`` the stabilised
    weights (raw when there are none) and ``v`` the raw weights (``w̃`` with
    ``stable_residual=True``). Influence
    ``φ_i = (ḡ_i − ψ_g) + w_i (R_i − q_i − ψ_c) − c + v_i ((L_i/p_L) e_i − ψ_e)``, the
    correction term's influence including the estimation of ``w̃`` (see :func:`_stabilised`).

    Parameters
    ----------
    rows : OffPolicyRows
    outcome : numpy.ndarray
        ``q_i`` on the logged rows (cross-fitted).
    fresh_mean : numpy.ndarray
        ``ḡ_i`` per logged row.
    stable_residual : bool
        Stabilised instead of raw weights on the oracle residual term.

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
    psi_c, phi_c = _stabilised(w_s, rows.weights, rows.reward - outcome)
    psi_e, phi_e = _weighted(w_s if stable_residual else rows.weights, rows.scaled_residual)
    return PolicyValue(psi_g + psi_c + psi_e, (fresh_mean - psi_g) + phi_c + phi_e)


def residual_gap(rows: OffPolicyRows) -> float:
    """The oracle residual correction with raw weights minus the one with stabilised weights.

    ``Σ w_i (L_i/p_L) e_i / Σ w_i − Σ w̃_i (L_i/p_L) e_i / Σ w̃_i``. Its expectation is what the
    stabilised weights assume away, ``E[(W − E[W | S])·(Y − f(S))]``: zero when the calibration
    transports from the logging policy to the target. The pipeline adds its square to the
    variance of an estimate whose residual uses the stabilised weights (a bias allowance,
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


def stack(values: Sequence[PolicyValue], cluster: np.ndarray) -> PolicyValue:
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
    n_clusters = int(cluster.max()) + 1
    totals = np.vstack([np.bincount(cluster, weights=v.influence, minlength=n_clusters)
                        for v in values])
    alpha = min_variance_simplex(totals @ totals.T)
    value = float(sum(a * v.value for a, v in zip(alpha, values, strict=True)))
    phi = sum(a * v.influence for a, v in zip(alpha, values, strict=True))
    return PolicyValue(value, np.asarray(phi), mixture=alpha)
