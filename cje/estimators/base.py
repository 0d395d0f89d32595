"""What every estimator returns: point estimates with per-row influence values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Estimate"]


@dataclass(frozen=True, slots=True, eq=False)
class Estimate:
    """Point estimates for several groups (policies) with per-row influence values.

    Attributes
    ----------
    values : numpy.ndarray of shape (P,)
        One estimate per group, on the internal [0, 1] label scale.
    influence : numpy.ndarray of shape (n,)
        Influence value of each row for its own group's estimate (mean zero within a group);
        ``values[g] + influence[i]`` is row ``i``'s contribution.
    group : numpy.ndarray of int, shape (n,)
        Group of each row (-1: the row enters no estimate).
    n : numpy.ndarray of int, shape (P,)
        Rows per group.
    n_labels : numpy.ndarray of int, shape (P,)
        Labelled rows per group (used by the residual augmentation).

    Examples
    --------
    >>> from cje.estimators import direct_estimate
    >>> est = direct_estimate(np.array([0.5, 0.5, 0.7, 0.7]), np.array([0.1, 0.0, 0.0, 0.0]),
    ...                       np.array([True, False, False, False]), np.array([0, 0, 1, 1]), 2)
    >>> est.values.round(3).tolist(), est.n.tolist(), est.n_labels.tolist()
    ([0.6, 0.7], [2, 2], [1, 0])
    >>> np.bincount(est.group, weights=est.influence).round(12).tolist()   # mean zero per group
    [0.0, 0.0]
    """

    values: np.ndarray
    influence: np.ndarray
    group: np.ndarray
    n: np.ndarray
    n_labels: np.ndarray
