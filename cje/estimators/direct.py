"""Direct (on-policy) estimator with oracle residual augmentation (docs: Methods › The direct estimator)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from cje.estimators.base import Estimate
from cje.estimators.registry import Estimator, register

if TYPE_CHECKING:
    from cje.estimators.offpolicy import LoggedTarget, PolicyValue

__all__ = ["DirectEstimator", "direct_estimate", "direct_values"]

#: Rows per block of the per-row passes done a block at a time (no temporary as long as the data).
_BLOCK = 1 << 20


def direct_estimate(
    reward: np.ndarray,
    residual: np.ndarray,
    labelled: np.ndarray,
    group: np.ndarray,
    n_groups: int,
    *,
    augment: bool = True,
    weight: np.ndarray | None = None,
    overwrite_reward: bool = False,
) -> Estimate:
    """Calibrated mean per group, plus the mean oracle residual of the group's labelled rows.

    ``ψ_p = mean_{D_p} R + mean_{D_p} (L_i/p_L) e_i`` with ``e_i = Y_i − f_oof(S_i)`` and ``p_L``
    the labelled share of ``D_p``; the second term is the mean residual ``ē`` of the labelled rows.
    The influence value of row ``i`` is the linearisation of ``ψ_p`` with the labelling random
    (``p_L`` estimated by the labelled share):
    ``φ_i = (R_i − R̄) + (L_i/p_L)(e_i − ē)`` — the residual term is centred at ``ē``. Its
    clustered variance is the textbook ``Var(R)/n + 2 Cov(R, e)/n + Var(e)/m`` (``m`` labelled
    rows). Leaving the residual uncentred (``(L_i/p_L) e_i − ē``) adds about ``ē²(1/m − 1/n)``:
    a judge that mis-rates the policy would widen the interval for no reason. Groups without
    labelled rows get no augmentation.

    With ``weight`` (``w_i = 1/π_i``, the inverse of the probability with which row ``i`` was
    sent for a label) the residual term is the Hájek (ratio) mean
    ``ē_w = Σ L_i w_i e_i / Σ L_i w_i`` over the group's labelled rows and the influence value
    ``φ_i = (R_i − R̄) + (n/Ŵ) L_i w_i (e_i − ē_w)`` with ``Ŵ = Σ L_i w_i`` (an estimate of ``n``).
    With equal weights both reduce to the unweighted formulas above (``n w/Ŵ = n/m``).

    Parameters
    ----------
    reward : numpy.ndarray
        Calibrated reward ``R_i = f(S_i)`` on every row.
    residual : numpy.ndarray
        Out-of-fold residual ``e_i`` on labelled rows (any finite value elsewhere); or, as an
        array of one value per labelled row (in row order), the residuals of the labelled rows
        alone — the same numbers without a per-row array (80 MB at 10^7 rows).
    labelled : numpy.ndarray of bool
        Rows whose residual is observed.
    group : numpy.ndarray of int
        Policy of each row; -1 rows (calibration-only) enter no estimate.
    n_groups : int
        Number of groups P.
    augment : bool
        Add the residual term (default). Without it the estimate is the plug-in calibrated mean.
    weight : numpy.ndarray, optional
        ``w_i = 1/π_i`` per row (read on the labelled rows); ``None``: uniform.
    overwrite_reward : bool
        The influence values may be written over ``reward`` (the caller no longer needs it):
        one per-row array instead of two (80 MB less at 10^7 rows).

    Returns
    -------
    Estimate

    Examples
    --------
    >>> r = np.array([0.5, 0.5, 0.7, 0.7]); e = np.array([0.1, 0.0, 0.0, 0.0])
    >>> est = direct_estimate(r, e, np.array([1, 0, 0, 0], bool), np.array([0, 0, 1, 1]), 2)
    >>> est.values.round(3).tolist(), est.influence.round(3).tolist()   # one label: e − ē = 0
    ([0.6, 0.7], [0.0, 0.0, 0.0, 0.0])
    >>> lab = np.array([1, 1, 0, 0], bool)   # group 0: ē = 0.05, 1/p_L = 1
    >>> direct_estimate(r, e, lab, np.array([0, 0, 1, 1]), 2).influence.round(3).tolist()
    [0.05, -0.05, 0.0, 0.0]
    >>> w = np.array([1.0, 3.0, 1.0, 1.0])   # row 1 was labelled with probability 1/3
    >>> est = direct_estimate(r, e, lab, np.array([0, 0, 1, 1]), 2, weight=w)
    >>> est.values.round(4).tolist(), est.influence.round(4).tolist()   # ē_w = 0.1/4
    ([0.525, 0.7], [0.0375, -0.0375, 0.0, 0.0])
    >>> direct_estimate(r, np.array([0.1, 0.0]), lab, np.array([0, 0, 1, 1]), 2).values.tolist()
    [0.55, 0.7]
    """
    compact = residual.shape[0] != reward.shape[0]  # the labelled rows' residuals only
    if group.size and group.min() < 0:
        # calibration-only rows enter no estimate: compute on the others, give them φ = 0
        inside = np.flatnonzero(group >= 0)
        sub = direct_estimate(reward[inside],
                              residual[group[labelled] >= 0] if compact else residual[inside],
                              labelled[inside], group[inside], n_groups, augment=augment,
                              weight=None if weight is None else weight[inside],
                              overwrite_reward=True)  # (reward[inside] is a copy)
        phi = np.zeros(group.shape[0])
        phi[inside] = sub.influence
        return Estimate(sub.values, phi, group, sub.n, sub.n_labels)
    # the residual term is computed on the labelled rows alone (in row order, so every sum is
    # the same as over all rows with zeros elsewhere): no per-row temporaries of length n
    lab = np.flatnonzero(labelled)
    g_lab = group[lab]
    means = _group_means(reward, residual, lab, group, n_groups, augment=augment, weight=weight)
    values, n, m = means.plug_in, means.n, means.m
    if overwrite_reward:  # reward − value of the row's group, over the reward, a block at a time
        phi = reward
        for a in range(0, phi.shape[0], _BLOCK):
            phi[a:a + _BLOCK] -= values[group[a:a + _BLOCK]]
    else:
        phi = values[group]
        np.subtract(reward, phi, out=phi)  # reward − value of the row's group, in place
    if augment and weight is not None:
        e = residual if compact else residual[lab]
        mean_e = means.mean_e
        scale = np.divide(n, means.w_total, out=np.zeros(n_groups), where=m > 0)  # n/Ŵ per group
        values = values + mean_e
        phi[lab] += scale[g_lab] * weight[lab] * (e - mean_e[g_lab])
    elif augment:
        e = residual.copy() if compact else residual[lab]  # changed in place below
        mean_e = means.mean_e
        inv_p = np.divide(n, m, out=np.zeros(n_groups), where=m > 0)  # 1/p_L per group
        values = values + mean_e
        # centred: (L_i/p_L)(e_i − ē); unlabelled rows contribute nothing
        e -= mean_e[g_lab]
        e *= inv_p[g_lab]
        phi[lab] += e
    return Estimate(values=values, influence=phi, group=group, n=n, n_labels=m)



class _Means(NamedTuple):
    plug_in: np.ndarray  # mean reward per group
    mean_e: np.ndarray | None  # the residual term per group (None without augmentation)
    n: np.ndarray  # rows per group
    m: np.ndarray  # labelled rows per group
    w_total: np.ndarray | None  # Ŵ = Σ L_i w_i per group (with weights)


def _group_means(reward: np.ndarray, residual: np.ndarray, lab: np.ndarray, group: np.ndarray,
                 n_groups: int, *, augment: bool, weight: np.ndarray | None) -> _Means:
    """The sums behind :func:`direct_estimate`'s values (``lab``: the labelled rows' indices;
    ``residual`` per row or per labelled row), written once for it and :func:`direct_values`."""
    g_lab = group[lab]
    n = np.bincount(group, minlength=n_groups)
    m = np.bincount(g_lab, minlength=n_groups).astype(np.int64)
    plug_in = np.bincount(group, weights=reward, minlength=n_groups) / np.maximum(n, 1)
    if not augment:
        return _Means(plug_in, None, n, m, None)
    e = residual if residual.shape[0] != reward.shape[0] else residual[lab]
    if weight is None:
        mean_e = np.divide(np.bincount(g_lab, weights=e, minlength=n_groups), m,
                           out=np.zeros(n_groups), where=m > 0)
        return _Means(plug_in, mean_e, n, m, None)
    w = weight[lab]
    tot = np.bincount(g_lab, weights=w, minlength=n_groups)  # Ŵ per group
    mean_e = np.divide(np.bincount(g_lab, weights=w * e, minlength=n_groups), tot,
                       out=np.zeros(n_groups), where=m > 0)
    return _Means(plug_in, mean_e, n, m, tot)


def direct_values(reward: np.ndarray, residual: np.ndarray, labelled: np.ndarray,
                  group: np.ndarray, n_groups: int, *, augment: bool = True) -> np.ndarray:
    """:func:`direct_estimate`'s values alone, bit for bit (no influence values): what the OUA
    jackknife's replicates need. Every row in a group (``group ≥ 0``), uniform labelling.

    Parameters
    ----------
    reward, residual, labelled, group : numpy.ndarray
        As in :func:`direct_estimate`.
    n_groups : int
        Number of groups P.
    augment : bool
        Add the residual term (default).

    Returns
    -------
    numpy.ndarray
        The value of each group.

    Examples
    --------
    >>> r = np.array([0.5, 0.5, 0.7, 0.7]); e = np.array([0.1, 0.0, 0.0, 0.0])
    >>> lab, grp = np.array([1, 1, 0, 0], bool), np.array([0, 0, 1, 1])
    >>> direct_values(r, e, lab, grp, 2).tolist() == direct_estimate(r, e, lab, grp, 2).values.tolist()
    True
    """
    means = _group_means(reward, residual, np.flatnonzero(labelled), group, n_groups,
                         augment=augment, weight=None)
    return means.plug_in if means.mean_e is None else means.plug_in + means.mean_e


@register
@dataclass(frozen=True, slots=True)
class DirectEstimator(Estimator):
    """Direct method on each policy's own (fresh) draws.

    With fresh draws of every policy it is the only estimator (:meth:`estimate_groups`); with
    logged data it evaluates each target on its fresh draws alone (:meth:`estimate`).

    Parameters
    ----------
    augment : bool
        Oracle residual augmentation (default ``True``): corrects the calibrated mean of a policy
        by the mean out-of-fold residual of its labelled draws. When a policy has no labelled
        draws, transport of the calibration is assumed (and reported).

    Examples
    --------
    >>> DirectEstimator().name, DirectEstimator(augment=False).method
    ('direct', 'direct (plug-in)')
    """

    augment: bool = True
    name = "direct"
    needs_fresh = True
    sample = "fresh"

    @property
    def method(self) -> str:
        """Method name shown in reports."""
        return "direct" if self.augment else "direct (plug-in)"

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """One target's estimate on its fresh draws (logged data): :func:`direct_estimate`.

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        PolicyValue
            Influence values on the target's fresh draws.

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> v = DirectEstimator().estimate(x)   # 0.8 + the residual of the labelled draw
        >>> round(v.value, 4), v.influence.round(3).tolist()   # equal rewards, a single label
        (0.95, [0.0, 0.0])
        """
        from cje.estimators.offpolicy import PolicyValue

        reward, resid, lab = x.fresh_rows()
        est = direct_estimate(reward, resid, lab, np.zeros(reward.size, dtype=np.int64), 1,
                              augment=self.augment)
        return PolicyValue(float(est.values[0]), est.influence)

    def value(self, x: LoggedTarget) -> float:
        # (Estimator.value) direct_values: the value without influence values
        reward, resid, lab = x.fresh_rows()
        return float(direct_values(reward, resid, lab, np.zeros(reward.size, dtype=np.int64), 1,
                                   augment=self.augment)[0])

    def estimate_groups(
        self,
        reward: np.ndarray,
        residual: np.ndarray,
        labelled: np.ndarray,
        group: np.ndarray,
        n_groups: int,
        weight: np.ndarray | None = None,
    ) -> Estimate:
        """Estimates and influence values; see :func:`direct_estimate`.

        Parameters
        ----------
        reward, residual, labelled, group : numpy.ndarray
            Per row: calibrated reward, out-of-fold oracle residual, labelled flag, policy.
        n_groups : int
            Number of groups P.
        weight : numpy.ndarray, optional
            ``1/π_i`` per row (a labelling design with known probabilities); ``None``: uniform.

        Returns
        -------
        Estimate

        Examples
        --------
        >>> r = np.array([0.5, 0.5, 0.7, 0.7]); e = np.array([0.1, 0.0, 0.0, 0.0])
        >>> lab, grp = np.array([True, False, False, False]), np.array([0, 0, 1, 1])
        >>> DirectEstimator().estimate_groups(r, e, lab, grp, 2).values.round(3).tolist()
        [0.6, 0.7]
        >>> DirectEstimator(augment=False).estimate_groups(r, e, lab, grp, 2).values.round(3).tolist()
        [0.5, 0.7]
        """
        return direct_estimate(reward, residual, labelled, group, n_groups, augment=self.augment,
                               weight=weight)
