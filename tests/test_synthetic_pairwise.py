"""The pairwise DGP: data shape, reproducibility and exact truths (quadrature vs plain integrals and
vs a large simulation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate
from scipy.special import expit
from scipy.stats import norm

from cje.synthetic.pairwise import SyntheticPairs, make_pairwise_eval

KNOBS = dict(
    items=("A", "B", "C", "D"),
    strengths=[0.5, 0.1, -0.2, -0.4],
    position_logodds=0.4,
    length_effect=0.5,
    self_preference=0.6,
    judge_family="fam1",
    item_families=["fam1", "fam2", "fam1", "fam3"],
    tie_rate=0.1,
    length_means=[0.5, 0.0, -0.3, 0.2],
    prompt_noise=1.2,
)


def test_shape_columns_and_both_orders():
    sim = make_pairwise_eval(7, repeats=3, judge_family="A", rng=0)
    assert isinstance(sim, SyntheticPairs)
    df = sim.pairs
    assert list(df.columns) == [
        "prompt_id",
        "a_id",
        "b_id",
        "slot_a",
        "run",
        "winner",
        "human_winner",
        "len_a",
        "len_b",
        "a_family",
        "b_family",
        "judge_family",
    ]
    assert len(df) == 7 * 6 * 2 * 3
    assert set(df["winner"]) <= {"a", "b", "tie"} and set(df["human_winner"]) <= {"a", "b"}
    # every (pair, run) appears exactly once in each order
    counts = df.groupby(["prompt_id", "a_id", "b_id", "run", "slot_a"]).size()
    assert (counts == 1).all() and len(counts) == 7 * 6 * 3 * 2
    # one human verdict per pair, repeated on all its rows
    assert (df.groupby(["prompt_id", "a_id", "b_id"])["human_winner"].nunique() == 1).all()
    # lengths: positive integers, distinct within a prompt, constant per (prompt, item)
    long = pd.concat(
        [
            df[["prompt_id", "a_id", "len_a"]].set_axis(["p", "item", "len"], axis=1),
            df[["prompt_id", "b_id", "len_b"]].set_axis(["p", "item", "len"], axis=1),
        ]
    ).drop_duplicates()
    assert (long.groupby(["p", "item"]).size() == 1).all()
    assert (long.groupby("p")["len"].nunique() == 4).all() and (long["len"] >= 1).all()
    assert "No judge bias was planted" in sim.description


def test_optional_columns():
    df = make_pairwise_eval(3, human_verdicts=False, rng=0).pairs
    assert "human_winner" not in df.columns and "judge_family" not in df.columns
    assert set(df["a_family"]) == {"A", "B", "C"}


def test_reproducible_for_a_seed():
    a = make_pairwise_eval(30, rng=5, **KNOBS)
    b = make_pairwise_eval(30, rng=np.random.default_rng(5), **KNOBS)
    pd.testing.assert_frame_equal(a.pairs, b.pairs)
    assert a.truth == b.truth
    c = make_pairwise_eval(30, rng=6, **KNOBS)
    assert not a.pairs["winner"].equals(c.pairs["winner"])


def test_truth_closed_form_identities():
    t = make_pairwise_eval(2, rng=0, **KNOBS).truth
    assert t["position_logodds"] == 0.4
    assert t["first_slot_rate"] == pytest.approx(expit(0.8), abs=1e-15)
    # the conditional-logit identity PP/RP = e^{2β} holds for every pair, hence for the averages
    assert t["pp_rate"] / (t["pp_rate"] + t["rp_rate"]) == pytest.approx(expit(0.8), abs=1e-12)
    assert t["pf"] == pytest.approx(t["rp_rate"] - t["pp_rate"])
    assert t["excess_flip_rate"] == pytest.approx(t["flip_rate_cross_order"] - t["flip_rate_same_order"])
    assert t["self_preference_gap"] == pytest.approx(t["self_own_rate"] - t["self_other_rate"])
    assert t["excess_length_preference"] == pytest.approx(t["judge_longer_rate"] - t["human_longer_rate"])


def test_truth_zero_when_nothing_is_planted():
    t = make_pairwise_eval(2, strengths=[0, 0, 0, 0], judge_family="A", tie_rate=0.2, rng=0).truth
    assert t["pp_rate"] == pytest.approx(t["rp_rate"], abs=1e-12)
    assert t["excess_flip_rate"] == pytest.approx(0.0, abs=1e-12)
    assert t["excess_length_preference"] == pytest.approx(0.0, abs=1e-12)
    assert t["self_preference_gap"] == pytest.approx(0.0, abs=1e-12)
    assert t["judge_longer_rate"] == pytest.approx(0.5, abs=1e-12)


def _quad_normal(f, mean, sd):
    return integrate.quad(lambda w: f(mean + sd * w) * norm.pdf(w), -12, 12, epsabs=1e-13, limit=400)[0]


def test_truth_matches_plain_quadrature():
    """Two items: the DGP's trapezoid-rule truths against scipy's adaptive (double) quadrature."""
    th, beta, lam, tau, t, m, su = 0.3, 0.4, 0.5, 0.6, 0.1, 0.5, 1.2
    sim = make_pairwise_eval(
        2,
        items=("A", "B"),
        strengths=[th, 0.0],
        position_logodds=beta,
        length_effect=lam,
        self_preference=tau,
        judge_family="A",
        tie_rate=t,
        length_means=[m, 0.0],
        prompt_noise=su,
        rng=0,
    )
    q = 1 - t
    sh, sdd = math.sqrt(2) * su, math.sqrt(2.0)
    # position consistency: x ~ N(th + tau + lam m, 2 su² + 2 lam²)
    mu_x, s_x = th + tau + lam * m, math.sqrt(2 * su**2 + 2 * lam**2)

    def agree(x):
        p1, p2 = expit(x + beta), expit(x - beta)
        return q * q * (p1 * p2 + (1 - p1) * (1 - p2)) + t * t

    assert sim.truth["pc"] == pytest.approx(_quad_normal(agree, mu_x, s_x), abs=1e-10)

    # judge picks the longer item: double integral over h and D = z_a - z_b
    def pja(x):
        return q * 0.5 * (expit(x + beta) + expit(x - beta))

    def e2(f, d_lo=-9.0, d_hi=9.0):
        """E[f(h, D)] over independent h ~ N(th, sh²), D ~ N(m, 2), in standard units."""

        def g(v, u):
            return norm.pdf(u) * norm.pdf(v) * f(th + sh * u, m + sdd * v)

        return integrate.dblquad(g, -9, 9, d_lo, d_hi, epsabs=1e-11)[0]

    a_long = e2(lambda h, d: pja(h + lam * d + tau), d_lo=-m / sdd)
    b_long = e2(lambda h, d: q - pja(h + lam * d + tau), d_hi=-m / sdd)
    assert sim.truth["judge_longer_rate"] == pytest.approx(t / 2 + a_long + b_long, abs=1e-8)
    p_a_long = norm.sf(0, m, sdd)
    e_sig = _quad_normal(expit, th, sh)
    human = t / 2 + q * (p_a_long * e_sig + (1 - p_a_long) * (1 - e_sig))
    assert sim.truth["human_longer_rate"] == pytest.approx(human, abs=1e-10)

    # self-preference gap: A is the judge's family
    own = e2(lambda h, d: q * expit(h) * pja(h + lam * d + tau)) / (q * e_sig)
    other = e2(lambda h, d: q * expit(-h) * (q - pja(h + lam * d + tau))) / (q * (1 - e_sig))
    assert sim.truth["self_own_rate"] == pytest.approx(own, abs=1e-8)
    assert sim.truth["self_other_rate"] == pytest.approx(other, abs=1e-8)


def _ratio_check(num: np.ndarray, den: np.ndarray, prompt: np.ndarray, truth: float, name: str) -> None:
    """Cluster-robust ratio estimate vs truth, within 4 Monte Carlo SE."""
    g = pd.factorize(prompt)[0]
    y, n = np.bincount(g, weights=num), np.bincount(g, weights=den)
    r = y.sum() / n.sum()
    k = g.max() + 1
    se = math.sqrt(k / (k - 1) * np.sum((y - r * n) ** 2)) / n.sum()
    assert abs(r - truth) < 4 * se, f"{name}: simulated {r:.5f} vs exact {truth:.5f} (SE {se:.5f})"


def test_truth_matches_large_simulation():
    sim = make_pairwise_eval(12000, repeats=2, rng=11, **KNOBS)
    df, t = sim.pairs, sim.truth
    # position quantities: one unit = (pair, run) with both orders
    key = ["prompt_id", "a_id", "b_id", "run"]
    o1 = df[df.slot_a == 1].set_index(key)["winner"]
    o2 = df[df.slot_a == 2].set_index(key)["winner"].reindex(o1.index)
    pid = o1.index.get_level_values("prompt_id").to_numpy()
    v1, v2 = o1.to_numpy(), o2.to_numpy()
    pp, rp = ((v1 == "a") & (v2 == "b")).astype(float), ((v1 == "b") & (v2 == "a")).astype(float)
    one = np.ones(v1.size)
    _ratio_check(pp, one, pid, t["pp_rate"], "pp_rate")
    _ratio_check(rp, one, pid, t["rp_rate"], "rp_rate")
    _ratio_check((v1 == v2).astype(float), one, pid, t["pc"], "pc")
    _ratio_check(pp, pp + rp, pid, t["first_slot_rate"], "first_slot_rate")
    # same-order flips: run 0 vs run 1 of each order
    runs = df.set_index(["prompt_id", "a_id", "b_id", "slot_a", "run"])["winner"].unstack("run")
    flips = (runs[0] != runs[1]).to_numpy().astype(float)
    _ratio_check(
        flips,
        np.ones(flips.size),
        runs.index.get_level_values(0).to_numpy(),
        t["flip_rate_same_order"],
        "flip_rate_same_order",
    )
    # longer item wins (ties ½), judge and human
    longer_a = df.len_a.to_numpy() > df.len_b.to_numpy()

    def longer_score(w):
        return np.where(w == "tie", 0.5, ((w == "a") == longer_a).astype(float))

    pid = df.prompt_id.to_numpy()
    ones = np.ones(len(df))
    j, h = longer_score(df.winner.to_numpy()), longer_score(df.human_winner.to_numpy())
    _ratio_check(j, ones, pid, t["judge_longer_rate"], "judge_longer_rate")
    _ratio_check(h, ones, pid, t["human_longer_rate"], "human_longer_rate")
    _ratio_check(j - h, ones, pid, t["excess_length_preference"], "excess_length_preference")
    # self-preference: pairs with exactly one fam1 item, human picked a winner
    own_a, own_b = df.a_family.to_numpy() == "fam1", df.b_family.to_numpy() == "fam1"
    hw, w = df.human_winner.to_numpy(), df.winner.to_numpy()
    use = (own_a ^ own_b) & (hw != "tie")
    x_own = np.where(hw == "a", own_a, own_b)
    agree = (w == hw).astype(float)
    g1, g2 = use & x_own, use & ~x_own
    _ratio_check(agree[g1], np.ones(g1.sum()), pid[g1], t["self_own_rate"], "self_own_rate")
    _ratio_check(agree[g2], np.ones(g2.sum()), pid[g2], t["self_other_rate"], "self_other_rate")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_prompts=0), "n_prompts must be an integer >= 1"),
        (dict(repeats=1.5), "repeats must be an integer"),
        (dict(items=("A",)), "at least 2"),
        (dict(items="ABC"), "not a single string"),
        (dict(items=("A", "A")), "distinct"),
        (dict(strengths=[0.0, 1.0]), "strengths must hold 4"),
        (dict(length_means=[0, 0, 0, np.nan]), "length_means must hold 4"),
        (dict(item_families=["x"]), "one entry per item"),
        (dict(tie_rate=1.0), r"tie_rate must be in \[0, 1\)"),
        (dict(prompt_noise=0.0), "prompt_noise must be > 0"),
        (dict(position_logodds=float("inf")), "position_logodds must be a finite"),
        (dict(self_preference=0.5), "needs judge_family"),
        (dict(self_preference=0.5, judge_family="zzz"), "not among item_families"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_pairwise_eval(**{"n_prompts": 5, **kwargs})
