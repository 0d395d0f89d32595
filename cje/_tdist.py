"""Student's t distribution without scipy: its survival function and quantile.

Every interval and p-value of the package needs the t distribution. ``scipy.special`` has it,
but importing that module costs 0.15–0.2 s of CPU, more than a whole analysis of the Arena
sample, so the command line and a first call would pay it for two numbers. This module
computes them with the standard library:

* in the body of the distribution for large ν (``ν ≥ 1000`` and ``t¹¹ ≤ 1.3·10⁻¹² ν⁵``): the
  Cornish–Fisher expansion of the quantile in powers of ``1/ν`` (Abramowitz & Stegun 26.7.5, to
  ``ν⁻⁴``), inverted by Newton's method. There the continued fraction below is ill-conditioned
  (``x`` lies within ``t²/ν`` of 1 and it loses about ``ν/t²`` ulps: 2e-11 at ν = 10⁶, t = 2),
  while the expansion's first omitted term, about ``8·10⁻⁴ t¹¹/ν⁵`` (fitted to its measured
  error), is below 1e-15;
* everywhere else: ``P(T > t) = ½ I_x(ν/2, ½)`` with ``x = ν/(ν + t²)``, the regularised
  incomplete beta function by its continued fraction (modified Lentz), with the prefactor
  ``x^a (1−x)^b / B(a, b)`` computed in logarithms (``log1p``, and ``ln Γ(a+½) − ln Γ(a)`` by
  Stirling's series rather than as the difference of two large ``lgamma`` values); ν = 1 and
  ν = 2 in closed form;
* the quantile: Newton's method for ``ln P(T > t)`` in ``ln t`` (straight for tails ``∝ t^−ν``),
  started from the same expansion and kept inside a bracket: a few survival evaluations.

Accuracy, checked in ``tests/test_tdist.py`` against :func:`scipy.special.stdtr` and
:func:`scipy.special.stdtrit` (the outside oracle) on a grid of ν from 0.3 to 1e15 and t from
1e-3 to 200 and on 20,000 random points: relative error below 2.5e-13 wherever the probability
is above 1e-100, and below 1e-12 down to 1e-300 (scipy's own error is a few 1e-15, measured
against 50-digit mpmath; a relative error ``δ`` in ``t`` moves a tail probability by about
``t²δ``, so far in the tail neither can do much better; the largest errors, ~1.3e-13, are where
the continued fraction takes over from the expansion at ν of 10⁴–10⁵). The quantile solves
``P(T > t) = q`` to the survival function's accuracy (scipy's ``stdtrit`` itself is off by
3e-13 at some points, and gives ``inf`` or caps near 1e153 for ``q = 1e-300`` at small ν). That
is far below what any interval or p-value of the package is reported to.

scipy is imported only for arrays of :data:`SCIPY_FROM` values or more (the p-values of hundreds
of policies' pairs), where its compiled loop is much faster than this module's Python; scalars and
small arrays — every policy's interval, and the contrasts of up to 63 policies (1,953 pairs) —
never load it.
:mod:`cje.planning` keeps scipy's vectorised quantile for its searches over many df.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np

__all__ = ["t_isf", "t_ppf", "t_sf"]

#: The expansion in 1/ν is used from this ν on, where ``t`` is small enough (:func:`_asymptotic`).
NU_ASYMPTOTIC = 1000.0
#: ln of the bound on ``t¹¹/ν⁵`` below which the expansion's omitted term is under 1e-15.
_LN_EXPANSION_BOUND = math.log(1.3e-12)
_LN_SQRT_PI = 0.5 * math.log(math.pi)
_LN_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_TINY = 1e-300
_CF_EPS = 2.5e-16  # about one ulp of 1: the continued fraction's factors converge to 1
_NORMAL = NormalDist()
_LARGEST = 1e308


def _stirling_tail(z: float) -> float:
    """``ln Γ(z)`` minus its leading Stirling terms, by the series to ``z⁻⁹`` (z ≥ 15)."""
    z2 = z * z
    return (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - 1 / (1188 * z2)) / z2) / z2) / z2) / z


def _half_gamma_ratio(a: float) -> float:
    """``ln Γ(a + ½) − ln Γ(a)`` for a > 0, accurate to a few ulps at every a."""
    shift = 0.0
    while a < 15.0:  # Γ(a+1) = aΓ(a): move up to where Stirling's series is exact to rounding
        shift += math.log1p(0.5 / a)
        a += 1.0
    return (0.5 * math.log(a) + (a * math.log1p(0.5 / a) - 0.5)
            + _stirling_tail(a + 0.5) - _stirling_tail(a) - shift)


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of ``I_x(a, b)`` (modified Lentz), for ``x < (a+1)/(a+b+2)``."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 200_000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + aa / c
            c = c if abs(c) > _TINY else _TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) <= _CF_EPS:
            return h
    raise ArithmeticError(f"t distribution: no convergence at a={a}, b={b}, x={x}")


def _expansion(z: float, nu: float) -> tuple[float, float]:
    """The t quantile of the normal quantile ``z`` in powers of ``1/ν`` (A&S 26.7.5), and its
    derivative in z."""
    z2 = z * z
    g1 = (z2 + 1) * z / 4
    g2 = ((5 * z2 + 16) * z2 + 3) * z / 96
    g3 = (((3 * z2 + 19) * z2 + 17) * z2 - 15) * z / 384
    g4 = ((((79 * z2 + 776) * z2 + 1482) * z2 - 1920) * z2 - 945) * z / 92160
    d1 = (3 * z2 + 1) / 4
    d2 = (25 * z2 * z2 + 48 * z2 + 3) / 96
    d3 = (((21 * z2 + 95) * z2 + 51) * z2 - 15) / 384
    d4 = ((((711 * z2 + 5432) * z2 + 7410) * z2 - 5760) * z2 - 945) / 92160
    return (z + (g1 + (g2 + (g3 + g4 / nu) / nu) / nu) / nu,
            1 + (d1 + (d2 + (d3 + d4 / nu) / nu) / nu) / nu)


def _asymptotic(t: float, nu: float) -> bool:
    """Whether the expansion in 1/ν is accurate to 1e-15 at ``t`` (see the module docstring)."""
    return nu >= NU_ASYMPTOTIC and (t <= 1.0 or 11.0 * math.log(t) <= _LN_EXPANSION_BOUND
                                    + 5.0 * math.log(nu))


def _sf(t: float, nu: float) -> float:
    """``P(T > t)`` for scalars."""
    if math.isnan(t) or math.isnan(nu) or nu <= 0:
        return math.nan
    if t < 0:
        return 1.0 - _sf(-t, nu)
    if t == 0:
        return 0.5
    if math.isinf(t):
        return 0.0
    if math.isinf(nu):
        return 0.5 * math.erfc(t / math.sqrt(2.0))
    if nu == 1.0:
        return math.atan2(1.0, t) / math.pi
    if nu == 2.0:
        r = math.sqrt(2.0 + t * t)
        return 1.0 / (r * (r + t))
    if _asymptotic(t, nu):
        z = t * (1.0 - (t * t + 1.0) / (4.0 * nu))  # Newton from the first-order inverse
        for _ in range(50):
            q, dq = _expansion(z, nu)
            step = (q - t) / dq
            z -= step
            if abs(step) <= 1e-17 * z:
                break
        return 0.5 * math.erfc(z / math.sqrt(2.0))
    a = 0.5 * nu
    t2 = t * t
    if t2 < 1e300:
        ln_x = -math.log1p(t2 / nu)                          # x = ν / (ν + t²)
        ln_y = 2.0 * math.log(t) - math.log(nu + t2)         # 1 − x = t² / (ν + t²)
    else:  # t² overflows: x = ν/t² to rounding, 1 − x = 1 (the tail ∝ t^−ν, heavy for small ν)
        ln_x, ln_y = math.log(nu) - 2.0 * math.log(t), 0.0
    ln_front = a * ln_x + 0.5 * ln_y - _LN_SQRT_PI + _half_gamma_ratio(a)  # − ln B(a, ½)
    if ln_front < -800.0:  # below the smallest double whatever the continued fraction's value
        return 0.0
    x = math.exp(ln_x)
    if x < (a + 1.0) / (a + 2.5):
        return 0.5 * math.exp(ln_front) * _beta_cf(a, 0.5, x) / a
    return 0.5 - math.exp(ln_front) * _beta_cf(0.5, a, math.exp(ln_y))


def _log_pdf(t: float, nu: float) -> float:
    if math.isinf(nu):
        return -0.5 * t * t - _LN_SQRT_2PI
    t2 = t * t
    ln_1p = math.log1p(t2 / nu) if t2 < 1e300 else 2.0 * math.log(abs(t)) - math.log(nu)
    return _half_gamma_ratio(0.5 * nu) - 0.5 * math.log(nu) - _LN_SQRT_PI - 0.5 * (nu + 1.0) * ln_1p


@lru_cache(maxsize=4096)  # an analysis asks again and again for the same few (q, df): K − 1, …
def _isf(q: float, nu: float) -> float:
    """The t with ``P(T > t) = q``, for scalars."""
    if math.isnan(q) or math.isnan(nu) or nu <= 0 or not 0.0 <= q <= 1.0:
        return math.nan
    if q > 0.5:
        return -_isf(1.0 - q, nu)
    if q == 0.5:
        return 0.0
    if q == 0.0:
        return math.inf
    if nu == 1.0:
        return 1.0 / math.tan(math.pi * q)  # the inverse of atan2(1, t)/π, exact in the tail
    if nu == 2.0:
        return math.sqrt(2.0) * (1.0 - 2.0 * q) / math.sqrt(4.0 * q * (1.0 - q))
    z = -_NORMAL.inv_cdf(q)
    if math.isinf(nu):
        return z
    t = _expansion(z, nu)[0]
    if _asymptotic(t, nu):
        return t
    if not (t > 0 and math.isfinite(t)):
        t = 1.0
    lo, hi = 0.0, math.inf  # sf(lo) > q ≥ sf(hi)
    for _ in range(400):
        s = _sf(t, nu)
        if s == q:
            return t
        if s > q:
            lo = t
        else:
            hi = t
        if s > 0:  # Newton for ln sf in ln t, straight for tails ∝ t^−ν: d ln sf/d ln t = −t·pdf/sf
            step = (math.log(s) - math.log(q)) * math.exp(math.log(s) - _log_pdf(t, nu) - math.log(t))
            new = t * math.exp(min(step, 700.0))
        else:
            new = 0.0
        if not lo < new < hi:  # out of the bracket: bisect it (geometrically when it is wide),
            if math.isfinite(hi):  # or grow while it has no upper end (tails as heavy as t^−ν)
                new = math.sqrt(lo) * math.sqrt(hi) if 0.0 < 4.0 * lo < hi else 0.5 * (lo + hi)
            elif lo >= _LARGEST:
                return math.inf  # the quantile is beyond the largest double
            else:
                new = min(max(2.0 * lo + 1.0, lo * lo), _LARGEST)
        elif abs(new - t) <= 1e-9 * t:
            return new  # Newton's error is now of order step², below the survival's rounding
        if hi - lo <= 4e-16 * hi < math.inf:  # the bracket is down to rounding
            return new
        t = new
    raise ArithmeticError(f"t quantile: no convergence at q={q}, nu={nu}")


def _ppf(p: float, nu: float) -> float:
    # For p ≥ ½, 1 − p is exact (Sterbenz); below ½, P(T ≤ t) = P(T > −t) needs no subtraction.
    return _isf(1.0 - p, nu) if p >= 0.5 else -_isf(p, nu)


_sf_v = np.vectorize(_sf, otypes=[float])
_isf_v = np.vectorize(_isf, otypes=[float])
_ppf_v = np.vectorize(_ppf, otypes=[float])

#: Arrays of at least this many values go to scipy's compiled loop: its import (0.15–0.2 s) is
#: then small beside this module's 5–30 µs per value in Python (a report of 1,000 policies has
#: 499,500 pairs). The two agree to the accuracy stated above (``tests/test_tdist.py``).
SCIPY_FROM = 2_000


def _scipy(kind: str, x: np.ndarray, nu: np.ndarray) -> np.ndarray:
    """scipy's loop on broadcast arrays ``x`` (t, q or p) and ``nu``."""
    from scipy.special import stdtr, stdtrit

    with np.errstate(invalid="ignore"):
        if kind == "sf":
            return stdtr(nu, -x)
        out = stdtrit(nu, x) if kind == "ppf" else -stdtrit(nu, x)
    # scipy gives +inf at p = 0 (the quantile is −inf) and, at tiny p with small ν, +inf or a cap
    # near 1e153 where this module finds the finite quantile: the small tail is ours
    tiny = x < 1e-100
    if tiny.any():
        out[tiny] = (_ppf_v if kind == "ppf" else _isf_v)(x[tiny], nu[tiny])
    return out


def _apply(kind: str, f: Any, fv: Any, x: Any, nu: Any) -> Any:
    shape = np.broadcast_shapes(np.shape(x), np.shape(nu))
    if not shape:
        return np.float64(f(float(x), float(nu)))
    if math.prod(shape) >= SCIPY_FROM:
        xb, nub = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(nu, dtype=float))
        return _scipy(kind, xb, nub)
    return fv(x, nu)


def t_sf(t: Any, df: Any) -> Any:
    """Survival function ``P(T > t)`` of Student's t with ``df`` degrees of freedom.

    Parameters
    ----------
    t : float or array_like
        Points.
    df : float or array_like
        Degrees of freedom (> 0; ``inf`` gives the normal). Broadcast against ``t``.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        ``P(T > t)``; NaN where ``t`` or ``df`` is NaN or ``df ≤ 0``.

    Examples
    --------
    >>> round(float(2 * t_sf(2.0, 10)), 6)  # two-sided p-value of t = 2 on 10 df
    0.073388
    >>> round(float(t_sf(1.959963984540054, np.inf)), 12)
    0.025
    """
    return _apply("sf", _sf, _sf_v, t, df)


def t_isf(q: Any, df: Any) -> Any:
    """Inverse survival function: the ``t`` with ``P(T > t) = q``.

    Parameters
    ----------
    q : float or array_like
        Upper-tail probabilities in [0, 1].
    df : float or array_like
        Degrees of freedom (> 0; ``inf`` gives the normal). Broadcast against ``q``.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        The quantiles; NaN where ``q`` is outside [0, 1] or ``df`` is NaN or ``≤ 0``.

    Examples
    --------
    >>> round(float(t_isf(0.025, 10)), 6)
    2.228139
    """
    return _apply("isf", _isf, _isf_v, q, df)


def t_ppf(p: Any, df: Any) -> Any:
    """Quantile function: the ``t`` with ``P(T ≤ t) = p`` (what :func:`scipy.special.stdtrit`
    gives).

    Parameters
    ----------
    p : float or array_like
        Probabilities in [0, 1].
    df : float or array_like
        Degrees of freedom (> 0; ``inf`` gives the normal). Broadcast against ``p``.

    Returns
    -------
    numpy.float64 or numpy.ndarray
        The quantiles; NaN where ``p`` is outside [0, 1] or ``df`` is NaN or ``≤ 0``.

    Examples
    --------
    >>> round(float(t_ppf(0.975, 1e9)), 6)
    1.959964
    """
    return _apply("ppf", _ppf, _ppf_v, p, df)
