"""Units, and what the report shows besides the estimates.

The numerics work on [0, 1]: :func:`to_unit` maps the user's judge scores and labels down once
when the table is built, :func:`from_unit` maps results back up at assembly. The naive judge
mean, the reliability table, the calibration curve and the weights' tail are here because they
are where internal numbers meet the user's scales.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cje.calibration.reward import RewardCalibrator
from cje.inference import cluster_variance, jackknife_variance, t_interval

__all__ = ["TAIL_PROBS", "UnitView", "calibration_curve", "from_unit", "naive_judge_mean",
           "scaled_reliability", "to_unit", "weight_tail"]

#: Exceedance probabilities at which the weights' tail is recorded (1/2 down to 1/10⁵).
TAIL_PROBS = tuple(float(p) for p in np.logspace(np.log10(0.5), -5, 23))


def to_unit(x: Any, scale: tuple[float, float]) -> Any:
    """``x`` on ``scale = (low, high)`` mapped affinely to [0, 1].

    Parameters
    ----------
    x : float or numpy.ndarray
    scale : (low, high)

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> to_unit(np.array([1.0, 3.0, 5.0]), (1, 5)).tolist()
    [0.0, 0.5, 1.0]
    """
    lo, hi = scale
    if isinstance(x, np.ndarray) and x.ndim:  # divided in place: one array, not two
        out = x - lo
        out /= hi - lo
        return out
    return (x - lo) / (hi - lo)


class UnitView:
    """``to_unit(values, scale)``, converted where it is read: indexing gives
    ``to_unit(values[rows], scale)``, the same numbers as indexing the converted array (the map
    is applied value by value), without a converted copy of every row.

    The direct shape's labels and scores are read at the labelled rows (the calibrator's fit,
    the residuals) and by policy (the naive mean); at 10^7 rows the two converted columns would
    be 160 MB held through the analysis. ``numpy.asarray(view)`` converts every row.

    Parameters
    ----------
    values : numpy.ndarray
        On the user's scale.
    scale : (low, high)

    Examples
    --------
    >>> v = UnitView(np.array([1.0, 3.0, np.nan, 5.0]), (1, 5))
    >>> v[np.array([1, 3])].tolist(), v[:2].tolist(), v.shape, np.asarray(v).tolist()[2]
    ([0.5, 1.0], [0.0, 0.5], (4,), nan)
    """

    __slots__ = ("values", "scale")

    def __init__(self, values: np.ndarray, scale: tuple[float, float]) -> None:
        self.values, self.scale = values, scale

    @property
    def shape(self) -> tuple[int, ...]:
        """The values' shape."""
        return self.values.shape

    @property
    def size(self) -> int:
        """The number of values."""
        return int(self.values.size)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def __getitem__(self, rows: Any) -> Any:
        return to_unit(self.values[rows], self.scale)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = to_unit(np.asarray(self.values), self.scale)
        return out if dtype is None else out.astype(dtype, copy=False)


def from_unit(u: Any, scale: tuple[float, float]) -> Any:
    """``u`` on [0, 1] mapped affinely to ``scale = (low, high)``: the inverse of :func:`to_unit`.

    Parameters
    ----------
    u : float or numpy.ndarray
    scale : (low, high)

    Returns
    -------
    float or numpy.ndarray

    Examples
    --------
    >>> from_unit(0.5, (1, 5))
    3.0
    """
    lo, hi = scale
    return lo + (hi - lo) * u


def naive_judge_mean(s01: np.ndarray, cluster: np.ndarray, alpha: float,
                     label_scale: tuple[float, float], w: np.ndarray | None = None
                     ) -> tuple[float, float, float]:
    """The raw judge mean with its prompt-clustered t interval, mapped affinely to the label scale.

    What one would report without calibration. Weighted by ``w`` if given (Hájek).

    Parameters
    ----------
    s01 : numpy.ndarray
        Judge scores on the internal [0, 1] scale.
    cluster : numpy.ndarray of int
        Prompt code per row.
    alpha : float
        ``1 − alpha`` interval.
    label_scale : (low, high)
    w : numpy.ndarray, optional
        Weights (mean one).

    Returns
    -------
    (float, float, float)
        Mean, interval low and high, on the label scale.

    Examples
    --------
    >>> m, lo, hi = naive_judge_mean(np.array([0.2, 0.4, 0.6, 0.8]), np.arange(4), 0.05, (1, 5))
    >>> round(m, 3), bool(lo < m < hi)
    (3.0, True)
    """
    if w is None:  # unit weights, without the products by 1.0 (the same numbers: Σ1 = n exactly)
        mean = float(s01.sum() / s01.size)
        v, g = cluster_variance(s01 - mean, cluster)
    else:
        mean = float((w * s01).sum() / w.sum())
        v, g = cluster_variance(w * (s01 - mean), cluster)
    lo, hi = t_interval(mean, float(np.sqrt(v)) if g > 1 else 0.0, max(g - 1, 1), alpha)
    return (from_unit(mean, label_scale), from_unit(lo, label_scale),
            from_unit(hi, label_scale))


def scaled_reliability(calibrator: RewardCalibrator, judge_scale: tuple[float, float],
                       label_scale: tuple[float, float]) -> list[dict[str, float]]:
    """The calibrator's reliability table with judge and label columns on the user's scales.

    Parameters
    ----------
    calibrator : RewardCalibrator
        Fitted on the internal [0, 1] scales.
    judge_scale, label_scale : (low, high)

    Returns
    -------
    list of dict
        One row per bin (:meth:`~cje.calibration.RewardCalibrator.reliability_rows`).

    Examples
    --------
    >>> s = np.linspace(0, 1, 50); cal = RewardCalibrator(mode="monotone").fit(s, s)
    >>> row = scaled_reliability(cal, (0, 10), (1, 5))[-1]
    >>> row["judge_high"], round(row["mean_label"], 2)
    (10.0, 4.84)
    """
    rows = calibrator.reliability_rows()
    for row in rows:
        for col in ("mean_label", "mean_calibrated", "mean_oof"):
            row[col] = from_unit(row[col], label_scale)
        for col in ("judge_low", "judge_high"):
            row[col] = from_unit(row[col], judge_scale)
    return rows


def calibration_curve(s01: np.ndarray, X: np.ndarray | None, full: Any,
                      jackknife: Sequence[Any], judge_scale: tuple[float, float],
                      label_scale: tuple[float, float]) -> tuple[dict[str, float], ...]:
    """The calibration map on a grid of judge scores, with its jackknife (OUA) standard error.

    ``full`` and ``jackknife`` are ``predict(S, X)`` callables (the full fit and the fold-deleted
    fits). The grid is the distinct judge scores ``s01`` (internal [0, 1] scale) when there are
    at most 101 of them, else 101 points over their range; covariates are held at their medians.

    Parameters
    ----------
    s01 : numpy.ndarray
        Judge scores on the internal [0, 1] scale.
    X : numpy.ndarray or None
        Covariates.
    full : callable
    jackknife : sequence of callable
    judge_scale, label_scale : (low, high)

    Returns
    -------
    tuple of dict
        ``judge_score``, ``calibrated`` and ``se`` per grid point, on the user's scales.

    Examples
    --------
    >>> s = np.linspace(0, 1, 50); cal = RewardCalibrator(mode="monotone").fit(s, s)
    >>> curve = calibration_curve(s, None, cal.predictor(),
    ...                           [cal.predictor(frozenset({k})) for k in range(5)], (0, 10), (1, 5))
    >>> len(curve), curve[-1]["judge_score"], round(curve[-1]["calibrated"], 2)
    (50, 10.0, 5.0)
    """
    distinct = np.unique(s01)
    grid = distinct if distinct.size <= 101 else np.linspace(distinct[0], distinct[-1], 101)
    Xg = None if X is None else np.tile(np.median(X, axis=0), (grid.size, 1))
    f = full(grid, Xg)
    reps = np.vstack([c(grid, Xg) for c in jackknife])
    se = np.sqrt(jackknife_variance(reps))
    width = label_scale[1] - label_scale[0]
    return tuple(
        {"judge_score": float(from_unit(g, judge_scale)),
         "calibrated": float(from_unit(v, label_scale)), "se": float(width * e)}
        for g, v, e in zip(grid, f, se, strict=True)
    )


def weight_tail(w: np.ndarray, ascending: np.ndarray | None = None) -> list[list[float]]:
    """The upper tail of mean-one weights as ``[exceedance probability, weight]`` pairs.

    The weight exceeded by a share ``p`` of the rows, for each ``p`` in :data:`TAIL_PROBS` that
    the sample can resolve (``p ≥ 1/n``); plots draw it as a survival curve. The values are
    ``numpy.quantile(w, 1 − p)`` (its default linear interpolation), read from the sorted
    weights: one sort is ~4× faster at 10⁶ weights than the quantile's partition at 46 ranks.

    Parameters
    ----------
    w : numpy.ndarray
        Mean-one weights.
    ascending : numpy.ndarray, optional
        ``numpy.sort(w)``, when the caller has it.

    Returns
    -------
    list of [float, float]

    Examples
    --------
    >>> [[round(p, 3), v] for p, v in weight_tail(np.ones(4))]
    [[0.5, 1.0], [0.306, 1.0]]
    """
    probs = [p for p in TAIL_PROBS if p >= 1.0 / w.size]
    q = sorted_quantiles(np.sort(w) if ascending is None else ascending, [1.0 - p for p in probs])
    return [[p, float(v)] for p, v in zip(probs, q, strict=True)]


def sorted_quantiles(ascending: np.ndarray, q: Sequence[float]) -> np.ndarray:
    """``numpy.quantile(a, q)`` (method ``"linear"``) of a 1-D array given sorted ascending, bit
    for bit: numpy's virtual indices ``(n − 1)·q``, its neighbouring ranks and its
    interpolation (``a + (b − a)·γ``, or ``b − (b − a)·(1 − γ)`` from ``γ ≥ 0.5`` on) on the
    same order statistics that its partition finds (NaN when the array holds one).

    Parameters
    ----------
    ascending : numpy.ndarray
        The values, sorted ascending (``numpy.sort``).
    q : sequence of float
        Probabilities in [0, 1].

    Returns
    -------
    numpy.ndarray
        One quantile per probability.

    Examples
    --------
    >>> a = np.array([3.0, 1.0, 4.0, 1.5, 9.0])
    >>> sorted_quantiles(np.sort(a), [0.1, 0.5, 0.9]).tolist() == np.quantile(a, [0.1, 0.5, 0.9]).tolist()
    True
    """
    n = ascending.shape[0]
    virtual = (n - 1) * np.asanyarray(q, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    above, below = virtual >= n - 1, virtual < 0
    prev[above], nxt[above] = -1, -1
    prev[below], nxt[below] = 0, 0
    prev_i, next_i = prev.astype(np.intp), nxt.astype(np.intp)
    a, b = ascending[prev_i], ascending[next_i]
    gamma = np.asanyarray(virtual - prev_i, dtype=virtual.dtype)
    diff = b - a
    out = np.add(a, diff * gamma)
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    if n and np.isnan(ascending[-1]):
        out[:] = np.nan
    return out
