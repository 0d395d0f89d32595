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
    """

    values: np.ndarray
    influence: np.ndarray
    group: np.ndarray
    n: np.ndarray
    n_labels: np.ndarray
