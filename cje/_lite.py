"""Light stand-ins for two scipy routines, used on small inputs to keep a first call fast.

Importing :mod:`scipy.optimize` or :mod:`scipy.interpolate` costs about 0.3–0.45 s of CPU, more
than a whole analysis of a few thousand rows. On small inputs the calibration calls these instead:

* :func:`isotonic_regression` — the pool-adjacent-violators algorithm of
  :func:`scipy.optimize.isotonic_regression` (Busing 2022), the same arithmetic in the same order;
* :class:`BSpline` — ``BSpline(t, c, k)(x)`` and ``BSpline.design_matrix(x, t, k).toarray()`` of
  :class:`scipy.interpolate.BSpline` on points inside the base interval, by the same Cox–de Boor
  recursion in the same order, vectorised over the points.

Both return bit-for-bit what scipy returns (``tests/test_startup.py`` checks them against scipy on
thousands of random inputs), so which one runs never changes a number. Each hands over to scipy
when the input is large (scipy's compiled loops win there) or scipy's module is loaded already.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["BSpline", "isotonic_regression"]

#: Largest input fitted in Python (a few milliseconds); larger ones go to scipy.
PAVA_MAX = 5_000
#: Largest number of points evaluated with numpy (a few milliseconds); more go to scipy.
BSPLINE_MAX = 20_000
#: Hand over to scipy whenever its module is loaded already (its loops are faster; same numbers).
SCIPY_IF_LOADED = True


def _scipy_loaded(name: str) -> bool:
    return SCIPY_IF_LOADED and name in sys.modules


class _Fit:
    """The part of scipy's ``OptimizeResult`` the callers read: the fitted values ``x``."""

    __slots__ = ("x",)

    def __init__(self, x: np.ndarray):
        self.x = x


def _pava(y: list[float], w: list[float]) -> list[float]:
    """Weighted non-decreasing least-squares fit of ``y`` (Busing's PAVA, as scipy computes it)."""
    n = len(y)
    x = list(y)
    ws = list(w)
    r = [0] * (n + 1)
    r[1] = 1
    b = 0
    xb_prev, wb_prev = x[0], ws[0]
    i = 1
    while i < n:
        b += 1
        xb, wb = x[i], ws[i]
        if xb_prev >= xb:  # pool with the previous block, then with what still violates
            b -= 1
            sb = wb_prev * xb_prev + wb * xb
            wb += wb_prev
            xb = sb / wb
            while i < n - 1 and xb >= x[i + 1]:
                i += 1
                sb += ws[i] * x[i]
                wb += ws[i]
                xb = sb / wb
            while b > 0 and x[b - 1] >= xb:
                b -= 1
                sb += ws[b] * x[b]
                wb += ws[b]
                xb = sb / wb
        x[b] = xb_prev = xb
        ws[b] = wb_prev = wb
        r[b + 1] = i + 1
        i += 1
    out = [0.0] * n
    f = n - 1
    for k in range(b, -1, -1):
        v = x[k]
        while f >= r[k]:
            out[f] = v
            f -= 1
    return out


def isotonic_regression(y: Any, *, weights: Any = None, increasing: bool = True) -> Any:
    """:func:`scipy.optimize.isotonic_regression`, in Python for small inputs.

    Parameters
    ----------
    y : array_like
        Responses, in the order the fit must respect (finite).
    weights : array_like, optional
        Positive case weights (default all 1).
    increasing : bool
        Non-decreasing fit (default) or non-increasing.

    Returns
    -------
    object
        With attribute ``x``, the fitted values (scipy's ``OptimizeResult`` when scipy fits).

    Examples
    --------
    >>> isotonic_regression([1.0, 3.0, 2.0, 4.0], weights=[1.0, 1.0, 3.0, 1.0]).x.tolist()
    [1.0, 2.25, 2.25, 4.0]
    """
    yv = np.asarray(y, dtype=np.float64)
    if yv.ndim != 1 or yv.shape[0] > PAVA_MAX or yv.shape[0] == 0 or _scipy_loaded("scipy.optimize"):
        from scipy.optimize import isotonic_regression as scipy_fit

        return scipy_fit(yv, weights=weights, increasing=increasing)
    wv = np.ones_like(yv) if weights is None else np.asarray(weights, dtype=np.float64)
    if wv.shape != yv.shape or not (wv > 0).all():
        from scipy.optimize import isotonic_regression as scipy_fit  # scipy's own message

        return scipy_fit(yv, weights=weights, increasing=increasing)
    if not increasing:
        yv, wv = yv[::-1], wv[::-1]
    x = np.array(_pava(yv.tolist(), wv.tolist()), dtype=np.float64)
    return _Fit(x if increasing else x[::-1].copy())


def _interval(t: np.ndarray, k: int, x: np.ndarray) -> np.ndarray:
    """Per point the knot interval ``l`` with ``t[l] <= x < t[l + 1]`` (the last one at the end)."""
    n = t.shape[0] - k - 1
    return np.clip(np.searchsorted(t, x, side="right") - 1, k, n - 1)


def _de_boor(t: np.ndarray, k: int, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The ``k + 1`` non-zero B-splines at each point (Cox–de Boor, in scipy's order)."""
    h = np.zeros((x.shape[0], k + 1))
    h[:, 0] = 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(1, k + 1):
            hh = h[:, :j].copy()
            h[:, 0] = 0.0
            for n in range(1, j + 1):
                xb, xa = t[m + n], t[m + n - j]
                same = xb == xa
                w = hh[:, n - 1] / (xb - xa)
                h[:, n - 1] = np.where(same, h[:, n - 1], h[:, n - 1] + w * (xb - x))
                h[:, n] = np.where(same, 0.0, w * (x - xa))
    return h


class _Dense:
    """A dense design matrix with the ``toarray()`` of scipy's sparse one."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray):
        self._a = a

    def toarray(self) -> np.ndarray:
        return self._a


def _in_base(t: np.ndarray, k: int, x: np.ndarray) -> bool:
    return bool(x.size == 0 or (x.min() >= t[k] and x.max() <= t[t.shape[0] - k - 1]))


class BSpline:
    """``scipy.interpolate.BSpline(t, c, k)`` for points inside the base interval ``[t[k], t[n]]``.

    Parameters
    ----------
    t : numpy.ndarray
        Knots (non-decreasing).
    c : numpy.ndarray
        Coefficients, one per basis function (1-D).
    k : int
        Degree.

    Examples
    --------
    >>> t = np.r_[0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    >>> BSpline(t, np.arange(5.0), 3)(np.array([0.0, 0.5, 1.0])).tolist()
    [0.0, 2.0, 4.0]
    >>> BSpline.design_matrix(np.array([0.0, 1.0]), t, 3).toarray()[:, [0, 4]].tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """

    def __init__(self, t: np.ndarray, c: np.ndarray, k: int):
        self.t = np.ascontiguousarray(t, dtype=np.float64)
        self.c = np.ascontiguousarray(c, dtype=np.float64)
        self.k = int(k)

    @staticmethod
    def _light(t: np.ndarray, k: int, x: np.ndarray) -> bool:
        return (x.ndim == 1 and x.shape[0] <= BSPLINE_MAX and not _scipy_loaded("scipy.interpolate")
                and _in_base(t, k, x))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The spline at ``x``."""
        xv = np.ascontiguousarray(x, dtype=np.float64)
        if not self._light(self.t, self.k, xv) or self.c.ndim != 1:
            from scipy.interpolate import BSpline as ScipyBSpline

            return ScipyBSpline(self.t, self.c, self.k)(xv)
        k, t, c = self.k, self.t, self.c
        m = _interval(t, k, xv)
        h = _de_boor(t, k, xv, m)
        out = np.zeros(xv.shape[0])
        for a in range(k + 1):
            out = out + c[m + a - k] * h[:, a]
        return out

    @staticmethod
    def design_matrix(x: np.ndarray, t: np.ndarray, k: int) -> Any:
        """The B-spline basis at ``x``: an object whose ``toarray()`` is the dense matrix."""
        xv = np.ascontiguousarray(x, dtype=np.float64)
        tv = np.ascontiguousarray(t, dtype=np.float64)
        if not BSpline._light(tv, k, xv):
            from scipy.interpolate import BSpline as ScipyBSpline

            return ScipyBSpline.design_matrix(xv, tv, k)
        m = _interval(tv, k, xv)
        h = _de_boor(tv, k, xv, m)
        out = np.zeros((xv.shape[0], tv.shape[0] - k - 1))
        rows = np.arange(xv.shape[0])
        for a in range(k + 1):
            out[rows, m - k + a] = h[:, a]
        return _Dense(out)
