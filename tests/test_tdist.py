"""Student's t without scipy (:mod:`cje._tdist`) against scipy, the outside oracle.

Every interval and p-value of an analysis uses these two functions, so they are checked on a
grid much wider than any analysis reaches: degrees of freedom from 0.3 to 1e15 (Satterthwaite
df are real numbers ≥ 1; clustered df reach the number of prompts), points from 1e-8 to 200 and
tail probabilities down to 1e-20. The tolerance, 2e-13 relative, is the module's stated accuracy:
scipy's own error is a few 1e-15 (measured against 50-digit mpmath), and far in the tail a
relative error δ in t moves a tail probability by about t²δ whatever the method.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import special

from cje._tdist import NU_ASYMPTOTIC, SCIPY_FROM, _isf_v, _sf_v, t_isf, t_ppf, t_sf

RTOL = 2e-13
NUS = [0.3, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7.3, 10.0, 33.3, 100.0, 299.0, 999.0, 1001.0,
       2500.0, 3999.0, 4001.0, 1e4, 3e4, 1e5, 1e6, 1e8, 1e10, 1e12, 1e15]
TS = [1e-3, 0.1, 0.5, 1.0, 1.7, 2.0, 2.5, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 40.0, 100.0, 200.0]
PS = [1e-20, 1e-10, 1e-6, 0.001, 0.0125, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.975, 0.995,
      1 - 1e-10]


@pytest.mark.parametrize("nu", NUS)
def test_survival_function_is_scipys(nu: float) -> None:
    for t in TS:
        want = special.stdtr(nu, -t)
        if want > 1e-300:  # below, both are rounding noise around 0
            assert t_sf(t, nu) == pytest.approx(want, rel=RTOL), (nu, t)
            assert t_sf(-t, nu) == pytest.approx(1 - want, rel=RTOL), (nu, -t)
        else:
            assert t_sf(t, nu) < 1e-290


def test_survival_function_on_both_sides_of_the_expansion_switch() -> None:
    # the expansion in 1/ν and the continued fraction meet here: a grid across the boundary
    for nu in np.geomspace(NU_ASYMPTOTIC * 0.9, 1e7, 25):
        for t in np.geomspace(0.05, 60, 40):
            want = special.stdtr(nu, -t)
            if want > 1e-300:
                assert t_sf(t, nu) == pytest.approx(want, rel=RTOL), (nu, t)


def test_survival_function_at_random_points() -> None:
    # ν log-uniform on [0.3, 1e15], t on [1e-4, 3000]: 20,000 points, fixed seed
    rng = np.random.default_rng(20261206)
    nu = 10 ** rng.uniform(-0.5, 15, 20_000)
    t = 10 ** rng.uniform(-4, 3.5, 20_000)
    want = special.stdtr(nu, -t)
    got = _sf_v(t, nu)  # the module's own code (t_sf hands arrays this large to scipy)
    body, tail = want > 1e-100, (want > 1e-300) & (want <= 1e-100)
    assert body.sum() > 10_000 and tail.sum() > 500
    np.testing.assert_allclose(got[body], want[body], rtol=2.5e-13)
    np.testing.assert_allclose(got[tail], want[tail], rtol=1e-12)
    assert (got[want <= 1e-300] < 1e-290).all()


def test_quantile_solves_the_survival_equation_at_random_points() -> None:
    # checked by the round trip (the module's own survival function is checked above): scipy's
    # stdtrit is itself off by ~3e-13 at some of these points
    rng = np.random.default_rng(7)
    nu = 10 ** rng.uniform(-0.3, 12, 5_000)
    q = 10 ** rng.uniform(-30, np.log10(0.5), 5_000)
    t = _isf_v(q, nu)  # the module's own code, as above
    np.testing.assert_allclose(_sf_v(t, nu), q, rtol=2.5e-13)  # to the survival's own accuracy
    np.testing.assert_allclose(t, -special.stdtrit(nu, q), rtol=5e-12)  # and near scipy's


def test_large_arrays_go_to_scipy_and_agree_with_the_own_code() -> None:
    rng = np.random.default_rng(3)
    nu = 10 ** rng.uniform(0, 7, SCIPY_FROM)
    t = 10 ** rng.uniform(-2, 1, SCIPY_FROM)
    np.testing.assert_array_equal(t_sf(t, nu), special.stdtr(nu, -t))  # scipy's numbers
    np.testing.assert_allclose(t_sf(t, nu), _sf_v(t, nu), rtol=2.5e-13)
    np.testing.assert_allclose(t_ppf(0.975, nu), _isf_v(0.025, nu), rtol=2.5e-13)
    np.testing.assert_allclose(t_isf(0.025, nu), -t_ppf(0.025, nu), rtol=0)
    # where scipy fails (p = 0; tiny p at small ν), the own code answers
    p = np.full(SCIPY_FROM, 0.3)
    p[:3] = [0.0, 1e-300, 1e-120]
    got = t_ppf(p, 2.5)
    assert got[0] == -np.inf and got[1] == float(t_ppf(1e-300, 2.5)) < -1e119
    assert got[2] == float(t_ppf(1e-120, 2.5)) and got[3] == pytest.approx(special.stdtrit(2.5, 0.3))
    assert t_ppf(np.array([0.975, 0.975]), np.array([10.0, 10.0])).tolist() == [
        float(t_ppf(0.975, 10.0))] * 2  # small arrays: the own code, as for scalars


def test_closed_forms_where_scipy_is_not_the_oracle() -> None:
    # ν = 1 (Cauchy) near 0, where scipy's stdtr is off by ~3e-9 relative: atan is the truth
    for t in (1e-12, 1e-8, 1e-5):
        assert t_sf(t, 1.0) == pytest.approx(0.5 - math.atan(t) / math.pi, rel=1e-15)
    # ν = ∞ is the normal
    for t in (0.0, 0.3, 1.96, 8.0):
        assert t_sf(t, math.inf) == pytest.approx(special.ndtr(-t), rel=1e-14)


@pytest.mark.parametrize("nu", NUS)
def test_quantile_is_scipys(nu: float) -> None:
    for p in PS:
        want = special.stdtrit(nu, p)
        got = t_ppf(p, nu)
        if p == 0.5:
            assert got == 0.0
        else:
            assert got == pytest.approx(want, rel=RTOL), (nu, p)


def test_quantile_inverts_the_survival_function_far_in_the_tail() -> None:
    # scipy's stdtrit gives inf or caps near 1e153 at q = 1e-300 for small ν; the round trip is
    # the check there (and the quantile overflows to -inf when it is beyond the largest double)
    for nu in (1.5, 2.5, 3.0, 7.3, 10.0, 1e3, 1e6):
        for q in (1e-300, 1e-100, 1e-30):
            t = float(t_isf(q, nu))
            assert math.isfinite(t) and t_sf(t, nu) == pytest.approx(q, rel=1e-12), (nu, q)
            assert t_ppf(q, nu) == -t
    assert t_ppf(1e-100, 0.3) == -math.inf  # the true quantile is about -1e333
    assert t_isf(1e-100, 1.0) == pytest.approx(1 / (math.pi * 1e-100), rel=1e-15)


def test_quantile_next_to_one_half() -> None:
    # the expansion's start can hit the quantile exactly there (a bracket without a lower end
    # used to send the search away and back until it gave up)
    for nu in (1.5, 3.0, 100.0, 381.67, 5e4):
        for d in (1e-2, 1e-4, 1e-5, 1e-6, 1e-8, 1e-10, 1e-12):
            for p in (0.5 + d, 0.5 - d):
                got = float(t_ppf(p, nu))
                assert got == pytest.approx(special.stdtrit(nu, p), rel=1e-12), (nu, p)
                assert t_sf(-got, nu) == pytest.approx(p, rel=1e-15), (nu, p)


def test_edges_and_refusals_match_scipy() -> None:
    assert t_ppf(1.0, 3.0) == math.inf and t_ppf(0.0, 3.0) == -math.inf
    assert t_isf(0.0, 3.0) == math.inf and t_isf(1.0, 3.0) == -math.inf
    for p, nu in [(-0.1, 3.0), (1.1, 3.0), (math.nan, 3.0), (0.9, math.nan), (0.9, 0.0), (0.9, -1.0)]:
        assert math.isnan(t_ppf(p, nu)) and math.isnan(special.stdtrit(nu, p))
    for t, nu in [(math.nan, 3.0), (2.0, math.nan), (2.0, 0.0), (2.0, -1.0)]:
        assert math.isnan(t_sf(t, nu)) and math.isnan(special.stdtr(nu, -t))
    assert t_sf(math.inf, 3.0) == 0.0 and t_sf(-math.inf, 3.0) == 1.0 and t_sf(0.0, 3.0) == 0.5
    assert t_ppf(0.975, math.inf) == pytest.approx(NormalDist().inv_cdf(0.975), rel=1e-15)


def test_arrays_broadcast_like_scipy() -> None:
    df = np.array([[1.0], [3.5], [1e5]])
    p = np.array([0.6, 0.975, 0.999])
    got, want = t_ppf(p, df), special.stdtrit(df, p)
    assert got.shape == want.shape == (3, 3)
    np.testing.assert_allclose(got, want, rtol=RTOL)
    np.testing.assert_allclose(t_sf(np.array([0.5, 2.0]), 12.0), special.stdtr(12.0, [-0.5, -2.0]),
                               rtol=RTOL)
    assert isinstance(t_ppf(0.975, 10.0), np.float64)
