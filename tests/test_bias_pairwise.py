"""Pairwise verbosity and self-preference tests: Newcombe/Wilson against published and plain values,
hand computations, length-controlled win rates against statsmodels, bad input, Monte Carlo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from cje.bias.pairwise_tests import (
    excess_length_preference,
    length_controlled_win_rates,
    newcombe_interval,
    self_preference_gap,
    wilson_interval,
)
from cje.errors import CJEInputError, CJEWarning
from cje.synthetic.pairwise import make_pairwise_eval


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        return fn(*args, **kwargs)


# ----------------------------------------------------------------------------- Wilson / Newcombe


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10 (score, no CC)
        ((56, 70, 48, 80), (0.0524, 0.3339)),
        ((9, 10, 3, 10), (0.1705, 0.8090)),
    ],
)
def test_newcombe_published_examples(counts, expected):
    lo, hi = newcombe_interval(*counts)
    assert (round(lo, 4), round(hi, 4)) == expected


@pytest.mark.parametrize(("x", "n"), [(0, 10), (10, 10), (56, 70), (3, 10), (1, 2), (123, 457)])
def test_wilson_matches_statsmodels(x, n):
    assert wilson_interval(x, n, 0.1) == pytest.approx(
        proportion_confint(x, n, 0.1, method="wilson"), abs=1e-12
    )


@pytest.mark.parametrize(
    ("x1", "n1", "x2", "n2", "rho"), [(10, 10, 0, 10, 0.0), (5, 56, 0, 29, 0.0), (30, 40, 22, 35, -0.3)]
)
def test_newcombe_matches_plain_wilson_combination(x1, n1, x2, n2, rho):
    l1, u1 = proportion_confint(x1, n1, 0.05, method="wilson")
    l2, u2 = proportion_confint(x2, n2, 0.05, method="wilson")
    p1, p2 = x1 / n1, x2 / n2
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * rho * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * rho * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert newcombe_interval(x1, n1, x2, n2, rho=rho) == pytest.approx((lo, hi), abs=1e-12)


# ----------------------------------------------------------------------------- hand computations


def length_frame() -> pd.DataFrame:
    rows = [
        # prompt, len_a, len_b, winner, human -> judge longer score, human longer score
        ("p1", 100, 50, "a", "b"),  # 1, 0
        ("p1", 100, 50, "tie", "b"),  # .5, 0
        ("p2", 30, 60, "a", "a"),  # 0, 0
        ("p2", 30, 30, "a", "b"),  # equal lengths: left out
        ("p3", 80, 90, "b", "tie"),  # 1, .5
        ("p3", 80, 90, "b", None),  # no human verdict: left out
        ("p4", 200, 100, "b", "a"),  # 0, 1
        ("p4", 200, 100, "a", "a"),  # 1, 1
    ]
    return pd.DataFrame(rows, columns=["prompt_id", "len_a", "len_b", "winner", "human_winner"])


def test_excess_length_preference_by_hand():
    res = excess_length_preference(length_frame(), n_bootstrap=400, rng=0)
    j = np.array([1, 0.5, 0, 1, 0, 1])
    h = np.array([0, 0, 0, 0.5, 1, 1])
    g = np.array([0, 0, 1, 2, 3, 3])
    assert res.bias == "verbosity" and res.n == 6 and res.n_prompts == 4
    assert res.effect == pytest.approx((j - h).mean())
    assert res.details["judge_longer_rate"] == pytest.approx(j.mean())
    assert res.details["human_longer_rate"] == pytest.approx(h.mean())
    assert (res.details["n_equal_length"], res.details["n_without_human"]) == (1, 1)
    # cluster-robust t test: statsmodels' intercept-only OLS with prompt clusters, t with G-1 df
    fit = sm.OLS(j - h, np.ones(6)).fit(cov_type="cluster", cov_kwds={"groups": g})
    assert res.details["se"] == pytest.approx(fit.bse[0], rel=1e-10)
    assert res.p_value == pytest.approx(2 * stats.t.sf(abs(fit.params[0] / fit.bse[0]), 3), rel=1e-10)
    assert res.ci_low <= res.effect <= res.ci_high
    again = excess_length_preference(length_frame(), n_bootstrap=400, rng=0)
    assert (again.ci_low, again.ci_high) == (res.ci_low, res.ci_high)


def self_frame() -> pd.DataFrame:
    """One verdict per prompt; judge family fA. Own picks: 8 (judge agrees 6); other picks: 10 (3)."""
    rows = []
    k = 0

    def add(a, b, fa, fb, winner, human):
        nonlocal k
        rows.append(
            dict(
                prompt_id=f"p{k}",
                a_id=a,
                b_id=b,
                slot_a=1 + k % 2,
                winner=winner,
                human_winner=human,
                a_family=fa,
                b_family=fb,
                judge_family="fA",
            )
        )
        k += 1

    for i in range(8):  # human picks the own-family item A
        add("A", "B", "fA", "fB", "a" if i < 6 else ("b" if i < 7 else "tie"), "a")
    for i in range(10):  # human picks the other item; written with A as b_id half of the time
        if i % 2:
            add("A", "B", "fA", "fB", "b" if i < 3 else "a", "b")
        else:
            add("B", "A", "fB", "fA", "a" if i < 3 else "b", "a")
    add("B", "C", "fB", "fC", "a", "a")  # no own-family item: left out
    add("A", "B", "fA", "fB", "a", "tie")  # human tie: left out
    return pd.DataFrame(rows)


def test_self_preference_gap_by_hand():
    with pytest.warns(CJEWarning, match=r"Structural self-preference risk: the judge's family 'fA'.*A"):
        res = self_preference_gap(self_frame())
    assert res.bias == "self_preference" and res.n == 18
    assert res.details["p_own"] == pytest.approx(6 / 8) and res.details["p_other"] == pytest.approx(3 / 10)
    assert res.effect == pytest.approx(6 / 8 - 3 / 10)
    # one verdict per prompt: effective n = n, no cross-group correlation -> Newcombe's method 10
    assert (res.details["n_eff_own"], res.details["n_eff_other"], res.details["rho"]) == pytest.approx(
        (8, 10, 0)
    )
    assert (res.ci_low, res.ci_high) == pytest.approx(newcombe_interval(6, 8, 3, 10), abs=1e-12)
    # the p-value is the alpha at which the lower bound reaches 0
    assert newcombe_interval(6, 8, 3, 10, alpha=res.p_value)[0] == pytest.approx(0.0, abs=1e-9)
    assert res.details["structural_risk"] is True and res.details["own_items"] == ("A",)
    assert res.details["practically_relevant"] is (res.ci_low > 0.05)
    assert res.flagged is (res.p_value < 0.05 and res.ci_low > 0.05)


# ----------------------------------------------------------------------------- length-controlled rates


def test_length_controlled_fit_matches_statsmodels():
    sim = make_pairwise_eval(
        150, items=("A", "B", "C"), length_effect=0.7, position_logodds=0.4, tie_rate=0.2, rng=3
    )
    df = sim.pairs
    lc = length_controlled_win_rates(df, n_bootstrap=100, rng=0)
    items = ["A", "B", "C"]
    x_items = np.zeros((len(df), 3))
    x_items[np.arange(len(df)), df.a_id.map(items.index)] += 1
    x_items[np.arange(len(df)), df.b_id.map(items.index)] -= 1
    logs = np.log(np.concatenate([df.len_a, df.len_b]))
    dz = (np.log(df.len_a) - np.log(df.len_b)) / logs.std()
    x = np.column_stack([x_items[:, 1:], np.where(df.slot_a == 1, 1.0, -1.0), dz])
    y = df.winner.map({"a": 1.0, "b": 0.0, "tie": 0.5}).to_numpy()
    fit = sm.GLM(y, x, family=sm.families.Binomial()).fit(tol=1e-12)
    assert lc.strength.tolist() == pytest.approx([0.0, *fit.params[:2]], abs=1e-5)
    assert lc.attrs["position_logodds"] == pytest.approx(fit.params[2], abs=1e-5)
    assert lc.attrs["length_logodds_per_sd"] == pytest.approx(fit.params[3], abs=1e-5)
    theta = np.array([0.0, *fit.params[:2]])
    for i in range(3):
        others = [k for k in range(3) if k != i]
        expected = np.mean([1 / (1 + np.exp(-(theta[i] - theta[k]))) for k in others])
        assert lc.lc_win_rate[i] == pytest.approx(expected, abs=1e-5)
    raw_a = df[df.a_id == "A"].winner.map({"a": 1, "b": 0, "tie": 0.5}).mean()
    assert lc.win_rate[0] == pytest.approx(raw_a)  # A is always a_id, so its raw rate is its a-score
    assert (lc.lc_ci_low <= lc.lc_win_rate).all() and (lc.lc_win_rate <= lc.lc_ci_high).all()


def test_length_controlled_removes_a_planted_length_preference():
    sim = make_pairwise_eval(
        400,
        strengths=[0, 0, 0],
        items=("A", "B", "C"),
        length_effect=1.0,
        length_means=[1.0, 0.0, -0.5],
        rng=8,
    )
    lc = length_controlled_win_rates(sim.pairs, n_bootstrap=200, rng=0)
    assert lc.win_rate[0] > 0.62 and lc.win_rate[2] < 0.42  # the long item wins, the short loses
    assert np.abs(lc.lc_win_rate - 0.5).max() < 0.04
    assert lc.lc_ci_low[0] < 0.5 < lc.lc_ci_high[0]
    assert lc.attrs["length_ci"][0] > 0


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("fn", "frame", "kwargs", "match"),
    [
        (
            excess_length_preference,
            length_frame().drop(columns="human_winner"),
            {},
            r"needs columns prompt_id, winner, human_winner, len_a, len_b; missing: human_winner",
        ),
        (
            excess_length_preference,
            length_frame().assign(human_winner="left"),
            {},
            r"'human_winner' column must be 'a', 'b' or 'tie' \(or missing\); 8 row\(s\) .* has 'left'",
        ),
        (
            excess_length_preference,
            length_frame().assign(len_a=[1, 2, 3, 0, 5, 6, 7, 8]),
            {},
            r"'len_a' column must hold positive response lengths .* row 3 \(prompt_id='p2'\) has 0",
        ),
        (
            excess_length_preference,
            length_frame().assign(human_winner=None),
            {},
            r"no row has both a human verdict",
        ),
        (
            excess_length_preference,
            length_frame().assign(judge=["x", "y"] * 4),
            {},
            r"holds 2 judges .*judge=",
        ),
        (
            self_preference_gap,
            self_frame().drop(columns=["a_family", "judge_family"]),
            {},
            r"missing: a_family, judge_family",
        ),
        (
            self_preference_gap,
            self_frame().assign(judge_family=["fA", "fB"] * 10),
            {},
            r"'judge_family' column holds several families",
        ),
        (
            self_preference_gap,
            self_frame().assign(judge_family="fZ"),
            {},
            r"no pair has exactly one item of the judge's family 'fZ'",
        ),
        (self_preference_gap, self_frame().iloc[:8], {}, r"humans never picked an item of another family"),
        (self_preference_gap, self_frame().assign(judge=["x", "y"] * 10), {}, r"holds 2 judges"),
        (length_controlled_win_rates, length_frame(), {}, r"missing: a_id, b_id, slot_a"),
    ],
)
def test_bad_input(fn, frame, kwargs, match):
    with pytest.raises(CJEInputError, match=match):
        fn(frame, **kwargs)


def test_judge_selection():
    df = pd.concat([self_frame().assign(judge="j1"), self_frame().assign(judge="j2", winner="tie")])
    res = quiet(self_preference_gap, df, judge="j1")
    assert res.judge == "j1" and res.effect == pytest.approx(6 / 8 - 3 / 10)


# ----------------------------------------------------------------------------- Monte Carlo
# Coverage over R seeded replicates has Monte Carlo SE sqrt(0.95 * 0.05 / R) = 0.0097 at R = 500
# (0.0069 at R = 1000): the band [0.92, 0.98] is ±3.1 SE (±4.4 SE) wide around 0.95, so a correct
# interval fails it with probability < 0.2%. One data set per replicate feeds both tests.
# Moderate planted biases (300 prompts x 6 pairs, 4 equally strong items, judge family = item A):
# length_effect 0.5 (excess P(longer wins) 0.094) and self_preference 0.5 (gap 0.18).

MODERATE = dict(
    n_prompts=300, strengths=[0, 0, 0, 0], judge_family="A", length_effect=0.5, self_preference=0.5
)
NULL = dict(n_prompts=300, strengths=[0, 0, 0, 0], judge_family="A")


def run_mc(n_rep: int, seed: int, sim_kwargs: dict, n_bootstrap: int = 500) -> dict[str, float]:
    out = dict.fromkeys(["len_cover", "len_flag", "self_cover", "self_flag"], 0.0)
    for child in np.random.SeedSequence(seed).spawn(n_rep):
        gen = np.random.default_rng(child)
        sim = make_pairwise_eval(rng=gen, **sim_kwargs)
        ln = excess_length_preference(sim.pairs, n_bootstrap=n_bootstrap, rng=gen)
        sp = quiet(self_preference_gap, sim.pairs)
        out["len_cover"] += ln.ci_low <= sim.truth["excess_length_preference"] <= ln.ci_high
        out["len_flag"] += ln.flagged
        out["self_cover"] += sp.ci_low <= sim.truth["self_preference_gap"] <= sp.ci_high
        out["self_flag"] += sp.flagged
    return {k: v / n_rep for k, v in out.items()}


def test_mc_coverage_and_power_at_moderate_bias():
    r = run_mc(500, 301, MODERATE)
    assert 0.92 <= r["len_cover"] <= 0.98 and 0.92 <= r["self_cover"] <= 0.98, r
    assert r["len_flag"] >= 0.90 and r["self_flag"] >= 0.90, r


def test_mc_coverage_and_size_without_bias():
    r = run_mc(500, 302, NULL)
    assert 0.92 <= r["len_cover"] <= 0.98 and 0.92 <= r["self_cover"] <= 0.98, r
    assert r["len_flag"] <= 0.05 and r["self_flag"] <= 0.05, r


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kwargs", "power", "size"),
    [
        (MODERATE, True, False),
        (NULL, False, True),
        # unequal strengths (the gap is then non-zero without self-preference: truth 0.20), ties,
        # repeats and a position bias: coverage of the exact truth still holds
        (
            dict(
                n_prompts=300,
                judge_family="A",
                length_effect=0.5,
                tie_rate=0.1,
                repeats=2,
                position_logodds=0.5,
                length_means=[0.3, 0, -0.3, 0],
            ),
            False,
            False,
        ),
    ],
)
def test_mc_slow(kwargs, power, size):
    r = run_mc(1000, 400, kwargs, n_bootstrap=1000)
    assert 0.92 <= r["len_cover"] <= 0.98 and 0.92 <= r["self_cover"] <= 0.98, r
    if power:
        assert r["len_flag"] >= 0.90 and r["self_flag"] >= 0.90, r
    if size:
        assert r["len_flag"] <= 0.05 and r["self_flag"] <= 0.05, r
