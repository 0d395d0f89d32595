"""Independent checks of the truths reported by ``cje.synthetic`` (see
``simulations/independent_truth.py`` for the large Monte Carlo version).

Each truth is recomputed here from the model *as the docstring states it*, with code that shares
nothing with the package (own Gauss-Hermite quadrature, own closed forms), or by a modest Monte
Carlo draw scored with a 4-SE tolerance.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import expit, ndtr, ndtri

from cje.synthetic import (
    PolicySpec,
    make_direct_eval,
    make_monitor_eval,
    make_offpolicy_eval,
    make_panel_eval,
    make_tail_eval,
    theta_for_ess,
)

_X, _W = np.polynomial.hermite_e.hermegauss(200)
_W = _W / math.sqrt(2.0 * math.pi)


def _sigmoid_mean(mean: float, sd: float) -> float:
    return float(np.sum(_W * expit(mean + sd * _X)))


@pytest.mark.parametrize(("a", "sigma", "scale"), [(1.0, 0.5, (1.0, 5.0)), (2.0, 1.0, (0.0, 10.0)),
                                                    (0.0, 0.7, (0.0, 1.0))])
def test_direct_truth_matches_own_quadrature(a, sigma, scale):
    pols = [PolicySpec("lo", -1.5), PolicySpec("mid", 0.2), PolicySpec("hi", 1.5)]
    ev = make_direct_eval(5, pols, quality_slope=a, quality_noise=sigma, label_scale=scale, rng=0)
    for p in pols:
        # eta = a (mu - d) + eps ~ N(a mu, a^2 + sigma^2)
        want = scale[0] + (scale[1] - scale[0]) * _sigmoid_mean(a * p.quality, math.hypot(a, sigma))
        assert ev.truth[p.name] == pytest.approx(want, abs=1e-9)


@pytest.mark.parametrize(("a", "beta", "sigma", "scale"),
                         [(1.0, 0.8, 0.5, (0.0, 1.0)), (1.5, 1.2, 0.3, (1.0, 5.0)),
                          (0.7, -0.5, 0.0, (0.0, 1.0))])
def test_offpolicy_truth_and_ess_match_own_formulas(a, beta, sigma, scale):
    targets = {"t1": -0.7, "t2": 1.1, "t3": theta_for_ess(0.01)}
    sim = make_offpolicy_eval(4, targets=targets, quality_slope=a, feature_effect=beta,
                              quality_noise=sigma, label_scale=scale, rng=0)
    for name, th in {"base": 0.0, **targets}.items():
        # u ~ N(theta, 1): eta = a (beta u - d) + sigma eps ~ N(a beta theta, a^2 (beta^2 + 1) + sigma^2)
        sd = math.sqrt(a * a * (beta * beta + 1.0) + sigma * sigma)
        want = scale[0] + (scale[1] - scale[0]) * _sigmoid_mean(a * beta * th, sd)
        assert sim.truth[name] == pytest.approx(want, abs=1e-9)
        if name != "base":
            assert sim.raw_ess[name] == pytest.approx(math.exp(-th * th), rel=1e-12)


def test_offpolicy_fresh_draws_and_exact_weights_agree_with_truth():
    n = 200_000
    sim = make_offpolicy_eval(n, oracle_fraction=1.0, fresh_oracle_fraction=1.0, rng=11)
    fr, lg = sim.fresh, sim.logged
    for name in ("base", "mild", "moderate", "far"):
        y = fr.loc[fr.policy == name, "oracle_label"].to_numpy()
        assert abs(y.mean() - sim.truth[name]) < 4 * y.std() / math.sqrt(n)
    for name in ("mild", "moderate"):
        w = np.exp(lg[f"logprob[{name}]"] - lg["logprob_base"]).to_numpy()
        wy = w * lg["oracle_label"].to_numpy()
        assert abs(wy.mean() - sim.truth[name]) < 4 * wy.std() / math.sqrt(n)


def test_tail_truths_match_own_formulas_and_weights():
    # Unbounded: u ~ N(theta, 1), a = Phi(u): E[a] = P(Z' < theta + Z) = Phi(theta / sqrt 2).
    sim = make_tail_eval(50, tail="unbounded", ess=(0.5, 0.1), rng=0)
    assert sim.truth["base"] == pytest.approx(0.5, abs=1e-12)
    for name in ("ess50", "ess10"):
        # E_target[a] by own quadrature over the target's u law N(theta, 1).
        th = _tail_theta(name, sim)
        want = 0.25 + 0.5 * float(np.sum(_W * ndtr(th + _X)))
        assert sim.truth[name] == pytest.approx(want, abs=1e-9)
    # Bounded: weights are p/p0 over 20 types; E_t[Y] = E_0[w Y] with exact weights.
    n = 300_000
    sim = make_tail_eval(n, tail="bounded", ess=(0.5, 0.15), oracle_fraction=1.0, rng=3)
    lg = sim.logged
    y = lg["oracle_label"].to_numpy()
    assert abs(y.mean() - sim.truth["base"]) < 4 * y.std() / math.sqrt(n)
    for name, ess in (("ess50", 0.5), ("ess15", 0.15)):
        w = np.exp(lg[f"logprob[{name}]"] - lg["logprob_base"]).to_numpy()
        assert w.max() == pytest.approx(sim.max_weight[name], rel=1e-9)
        wy = w * y
        assert abs(wy.mean() - sim.truth[name]) < 4 * wy.std() / math.sqrt(n)
        assert abs(1 / np.mean(w * w) - ess) < 0.02


def _tail_theta(name: str, sim) -> float:
    """The unbounded target's tilt, solved from its stated ESS with own code (bisection)."""
    e, share = sim.raw_ess[name], 0.1

    def ess_of(t: float) -> float:
        odds = share / (1 - share) * math.exp(2 * t)
        q = odds / (1 + odds)
        return math.exp(-t * t) / (q * q / share + (1 - q) ** 2 / (1 - share))

    lo, hi = 0.0, 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ess_of(mid) > e else (lo, mid)
    return 0.5 * (lo + hi)


@pytest.mark.parametrize("levels", [3, 5, 7])
def test_panel_value_matches_own_category_sum(levels):
    pan = make_panel_eval(5, label_levels=levels, confounded=True, rng=0)
    sd = math.hypot(1.0, 0.5)
    cuts = np.concatenate([[-np.inf], sd * ndtri(np.arange(1, levels) / levels), [np.inf]])
    for g in ("alpha-large", "alpha-small", "beta-chat", "gamma-open"):
        mu = {"alpha-large": 0.4, "alpha-small": -0.3, "beta-chat": 0.2, "gamma-open": -0.1}[g]
        mu += 1.0 if g.split("-")[0] in ("alpha", "beta") else 0.0  # judges' families: confounded
        probs = np.diff(ndtr((cuts - mu) / sd))  # P(T = l), l = 1..L
        want = float(np.sum(np.arange(1, levels + 1) * probs))
        assert pan.truth["value"][g] == pytest.approx(want, abs=1e-12)


def test_monitor_truth_by_monte_carlo():
    rows = 200_000
    sim = make_monitor_eval(n_windows=2, rows_per_window=rows, labels_per_window=rows,
                            kind="distribution", change_at=1, rng=5)
    d = sim.data
    for r in sim.truth.itertuples():
        y = d.loc[(d.window == r.window) & (d.policy == r.policy), "oracle_label"].to_numpy()
        assert abs(y.mean() - r.truth) < 4 * y.std() / math.sqrt(y.size)
