"""The off-policy estimators' in-place arithmetic (issue #18, branch opspeed3) gives the numbers of
the expressions it replaced, bit for bit, for float64 rows and (through the fallback) for others."""

from __future__ import annotations

import numpy as np
import pytest

from cje.estimators import offpolicy as op


def _rows(dtype: type, n: int = 2_000, seed: int = 0) -> op.OffPolicyRows:
    rng = np.random.default_rng(seed)
    w = rng.lognormal(0.0, 1.0, n)
    lab = rng.uniform(size=n) < 0.2
    return op.OffPolicyRows(reward=rng.uniform(size=n).astype(dtype),
                            residual=np.where(lab, rng.normal(0, 0.2, n), 0.0).astype(dtype),
                            labelled=lab, weights=(w / w.mean()).astype(dtype),
                            stable=rng.uniform(0.5, 1.5, n).astype(dtype))


def _reference_weighted(w, x):
    psi = op._hajek(w, x)
    return psi, w * (x - psi)


def _reference_stabilised(stable, raw, x):
    psi = op._hajek(stable, x)
    phi = raw * (x - psi)
    return psi, phi - phi.mean()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_in_place_influence_is_the_expression_bit_for_bit(dtype: type) -> None:
    r = _rows(dtype)
    x = r.reward + r.scaled_residual
    for got, want in ((op._weighted(r.weights, x), _reference_weighted(r.weights, x)),
                      (op._stabilised(r.stable, r.weights, r.reward),
                       _reference_stabilised(r.stable, r.weights, r.reward))):
        assert got[0] == want[0]
        assert got[1].dtype == want[1].dtype and got[1].tobytes() == want[1].tobytes()
    # the residual term: ψ_e, w (x − ψ_e) − ψ_e (L/p_L − 1), scaled by the tail factor
    psi_e, phi_e = _reference_weighted(r.weights, r.scaled_residual)
    phi_e = phi_e - op._labelling_term(r, psi_e)
    c = op.tail_inflation(r.weights, r, psi_e, phi_e)
    got = op._residual_term(r.weights, r)
    assert got[0] == psi_e and got[1].tobytes() == (phi_e * c).tobytes()
    # doubly robust: (ḡ − ψ_g) + φ_c + φ_e
    rng = np.random.default_rng(1)
    q, g = rng.uniform(size=r.reward.size), rng.uniform(size=r.reward.size)
    v = op.doubly_robust(r, q, g)
    psi_c, phi_c = _reference_stabilised(r.stable, r.weights, r.reward - q)
    psi_g = float(g.mean())
    assert v.value == psi_g + psi_c + got[0]
    assert v.influence.tobytes() == ((g - psi_g) + phi_c + got[1]).tobytes()


def test_tail_factor_scales_the_residual_influence() -> None:
    # raw ESS below TAIL_VARIANCE_ESS and labels missing the heavy rows: c > 1 multiplies φ_e
    w = np.r_[np.full(95, 0.5), np.full(5, 10.5)]
    lab = np.zeros(100, bool)
    lab[:30] = True
    e = np.where(lab, np.tile([0.1, -0.1], 50), 0.0)
    r = op.OffPolicyRows(np.full(100, 0.5), e, lab, w)
    psi_e, phi_e = _reference_weighted(w, r.scaled_residual)
    phi_e = phi_e - op._labelling_term(r, psi_e)
    c = op.tail_inflation(w, r, psi_e, phi_e)
    assert c > 1.0
    assert op._residual_term(w, r)[1].tobytes() == (phi_e * c).tobytes()
