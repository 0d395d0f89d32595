"""Independent checks of the agreement statistics and judge panels (brief: hunt_panel).

Each test compares the package with a reference written here (brute-force enumeration of all
pairings, a coincidence-matrix Krippendorff α written with loops, a dict-based panel
aggregation) or with scikit-learn / scipy / statsmodels, on inputs chosen to break things:
few items, ties, text labels, missing values. Findings: simulations/results/independent_panel.md.
"""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cje.errors import CJEInputError
from cje.pairwise import (
    aggregate_panel,
    cohen_kappa,
    dawid_skene,
    kendall_tau,
    krippendorff_alpha,
    ranking_agreement,
    spearman_rho,
)

# ---------------------------------------------------------------------------------------------
# rank correlations: p-values for few items
# ---------------------------------------------------------------------------------------------


def _brute_p(x, y, statistic):
    """Two-sided permutation p-value by listing every pairing (the reference)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    obs = abs(statistic(x, y))
    hits = [abs(statistic(x, y[list(p)])) >= obs - 1e-12 for p in itertools.permutations(range(x.size))]
    return float(np.mean(hits))


def _rho(x, y):
    return stats.spearmanr(x, y).statistic


def _tau(x, y):
    return stats.kendalltau(x, y).statistic


def test_spearman_p_perfect_ranking_of_three_is_one_in_three():
    # scipy's t approximation gives p = 0 (t is infinite); a random order of 3 items matches a
    # given order 1 time in 6, or its reverse another 1 in 6: the exact two-sided p-value is 1/3.
    rho, p = spearman_rho([1, 2, 3], [10, 20, 30])
    assert rho == pytest.approx(1.0)
    assert p == pytest.approx(1 / 3)
    assert spearman_rho([1, 2, 3, 4], [4, 3, 2, 1])[1] == pytest.approx(2 / 24)
    assert ranking_agreement({"a": 3, "b": 2, "c": 1}, {"a": 0.9, "b": 0.5, "c": 0.1})["spearman_p"] == (
        pytest.approx(1 / 3)
    )


@pytest.mark.parametrize(
    ("x", "y"),
    [
        ([0.1, 0.5, 0.2, 0.9, 0.4], [1, 3, 2, 5, 4]),
        ([0, 1, 1, 2, 2], [0, 1, 2, 3, 4]),  # ties in x
        ([0, 0, 1, 1, 2, 3], [0, 1, 1, 2, 2, 2]),  # ties in both
        ([3, 1, 4, 1, 5, 9, 2], [2, 7, 1, 8, 2, 8, 1]),
    ],
)
def test_rank_correlation_p_values_equal_brute_force_enumeration(x, y):
    rho, p_rho = spearman_rho(x, y)
    tau, p_tau = kendall_tau(x, y)
    assert rho == pytest.approx(_rho(x, y)) and tau == pytest.approx(_tau(x, y))
    assert p_rho == pytest.approx(_brute_p(x, y, _rho), abs=1e-12)
    assert p_tau == pytest.approx(_brute_p(x, y, _tau), abs=1e-12)


def test_kendall_tied_p_is_not_the_normal_approximation():
    # x = (0, 1, 1), y = (0, 1, 2): 4 of the 6 pairings have |τ-b| = 0.816; scipy says p = 0.22
    assert stats.kendalltau([0, 1, 1], [0, 1, 2]).pvalue == pytest.approx(0.2207, abs=1e-4)
    assert kendall_tau([0, 1, 1], [0, 1, 2])[1] == pytest.approx(2 / 3)


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_spearman_test_holds_its_level_over_all_null_pairings(n):
    # Under independence all n! pairings are equally likely: the share with p <= 0.05 is the
    # exact size of the level-0.05 test (no Monte Carlo). scipy's p: 1/3, 1/12, 1/12, 0.058.
    x = np.arange(n, dtype=float)
    ps = np.array([spearman_rho(x, x[list(p)])[1] for p in itertools.permutations(range(n))])
    assert np.mean(ps <= 0.05) <= 0.05
    assert np.mean(ps <= 0.10) <= 0.10


def test_rank_correlation_p_values_above_the_exact_range_are_scipys():
    g = np.random.default_rng(3)
    x = g.integers(0, 4, 12).astype(float)
    y = x + g.normal(0, 1, 12)
    assert kendall_tau(x, y)[1] == pytest.approx(stats.kendalltau(x, y).pvalue, abs=1e-12)
    assert spearman_rho(x, y)[1] == pytest.approx(stats.spearmanr(x, y).pvalue, abs=1e-12)
    z = g.random(8)
    w = z + g.normal(0, 0.3, 8)  # no ties: scipy's exact Kendall p-value, unchanged
    assert kendall_tau(z, w)[1] == pytest.approx(stats.kendalltau(z, w).pvalue, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Cohen's κ: weights need an order
# ---------------------------------------------------------------------------------------------


def test_weighted_kappa_refuses_text_labels():
    # Alphabetical order puts "good" between "bad" and "ok": quadratic κ −0.045 instead of 0.545
    a = ["bad", "ok", "good", "good", "ok", "bad", "ok", "good", "bad", "ok"]
    b = ["ok", "ok", "good", "ok", "good", "bad", "bad", "good", "ok", "ok"]
    code = {"bad": 0, "ok": 1, "good": 2}
    assert cohen_kappa([code[v] for v in a], [code[v] for v in b], weights="quadratic") == pytest.approx(
        6 / 11
    )
    for w in ("linear", "quadratic"):
        with pytest.raises(CJEInputError, match="needs ordered labels"):
            cohen_kappa(a, b, weights=w)
        with pytest.raises(CJEInputError, match="element 1 of b"):
            cohen_kappa([1, 2, 3], np.array([1, "2", 3], dtype=object), weights=w)
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa([code[v] for v in a], [code[v] for v in b]))
    # numbers, numpy numbers and bools keep working, and match scikit-learn
    from sklearn.metrics import cohen_kappa_score

    x, y = np.array([1, 3, 7, 7, 1, 3]), np.array([3, 3, 7, 1, 1, 7])
    assert cohen_kappa(x, y, weights="linear") == pytest.approx(cohen_kappa_score(x, y, weights="linear"))
    assert cohen_kappa([True, False, True], [True, True, False], weights="linear") == pytest.approx(
        cohen_kappa_score([True, False, True], [True, True, False], weights="linear")
    )


def test_kappa_matches_statsmodels_on_a_table():
    from statsmodels.stats.inter_rater import cohens_kappa

    g = np.random.default_rng(5)
    a = g.integers(0, 4, 80)
    b = np.where(g.random(80) < 0.5, a, g.integers(0, 4, 80))
    table = np.zeros((4, 4))
    np.add.at(table, (a, b), 1)
    assert cohen_kappa(a, b) == pytest.approx(cohens_kappa(table).kappa, abs=1e-12)
    assert cohen_kappa(a, b, weights="linear") == pytest.approx(cohens_kappa(table, wt="linear").kappa)
    assert cohen_kappa(a, b, weights="quadratic") == pytest.approx(cohens_kappa(table, wt="quadratic").kappa)


# ---------------------------------------------------------------------------------------------
# Krippendorff's α against a loop over the coincidence-matrix definition
# ---------------------------------------------------------------------------------------------


def _alpha_loops(data, level):
    rows = [[None if v is None or v != v else float(v) for v in row] for row in data]
    values = sorted({v for row in rows for v in row if v is not None})
    at = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in range(len(rows[0])):
        col = [row[u] for row in rows if row[u] is not None]
        for s, t in itertools.permutations(range(len(col)), 2):
            o[at[col[s]], at[col[t]]] += 1.0 / (len(col) - 1)
    nc = o.sum(axis=1)
    n = nc.sum()

    def delta(c, k):
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return (values[c] - values[k]) ** 2
        if level == "ratio":
            tot = values[c] + values[k]
            return 0.0 if tot == 0 else ((values[c] - values[k]) / tot) ** 2
        lo, hi = min(c, k), max(c, k)
        return (nc[lo : hi + 1].sum() - (nc[c] + nc[k]) / 2.0) ** 2

    pairs = list(itertools.product(range(len(values)), repeat=2))
    d_o = sum(o[c, k] * delta(c, k) for c, k in pairs) / n
    d_e = sum(nc[c] * nc[k] * delta(c, k) for c, k in pairs) / (n * (n - 1))
    return 1.0 - d_o / d_e


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_against_coincidence_loops(level):
    g = np.random.default_rng(8)
    for trial in range(40):
        vals = [np.arange(4.0), np.array([1.0, 3.0, 7.0]), np.array([0.0, 1.0])][trial % 3]
        truth = g.choice(vals, 12)
        d = np.where(g.random((4, 12)) < 0.6, truth, g.choice(vals, (4, 12)))
        d[g.random((4, 12)) < 0.25] = np.nan  # unequal numbers of ratings per unit
        if trial % 5 == 0:
            d[0] = vals[0]  # a rater with one value only
        assert krippendorff_alpha(d, level=level) == pytest.approx(_alpha_loops(d, level), abs=1e-10)


# ---------------------------------------------------------------------------------------------
# panels: against a dict-based aggregation; Dawid–Skene recovers known confusion matrices
# ---------------------------------------------------------------------------------------------


def _panel_reference(df, method, leave_family_out):
    groups = defaultdict(list)
    for r in df.to_dict("records"):
        jf, pf = r.get("judge_family"), r.get("policy_family")
        if leave_family_out and isinstance(jf, str) and isinstance(pf, str) and jf == pf:
            continue
        groups[(r["prompt_id"], r["policy"])].append((r["judge"], r["judge_score"]))
    out = {}
    for key, votes in groups.items():
        s = [v for _, v in votes]
        if method == "mean":
            agg = float(np.mean(s))
        elif method == "max":
            agg = float(np.max(s))
        else:
            c = Counter(s)
            agg = min(v for v in c if c[v] == max(c.values()))
        out[key] = (agg, len({j for j, _ in votes}))
    return out


@pytest.mark.parametrize("method", ["mean", "max", "majority"])
@pytest.mark.parametrize("leave_family_out", [False, True])
def test_aggregate_panel_against_reference(method, leave_family_out):
    g = np.random.default_rng(21)
    fam = {"A": "gpt", "B": "claude", "j1": "gpt", "j2": "claude", "j3": "llama", "j4": "mistral"}
    rows = [
        {
            "prompt_id": p,
            "policy": pol,
            "judge": j,
            "judge_score": int(g.integers(1, 4)),
            "judge_family": fam[j],
            "policy_family": fam[pol],
        }
        for p in range(15)
        for pol in ("A", "B")
        for j in ("j1", "j2", "j3", "j4")
        if g.random() > 0.3
    ]
    df = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    ref = _panel_reference(df, method, leave_family_out)
    got = aggregate_panel(df, method=method, leave_family_out=leave_family_out)
    assert len(got) == len(ref)
    for r in got.to_dict("records"):
        agg, n = ref[(r["prompt_id"], r["policy"])]
        assert r["judge_score"] == pytest.approx(agg) and r["n_judges"] == n


def test_dawid_skene_recovers_known_confusion_matrices():
    g = np.random.default_rng(7)
    prior = np.array([0.5, 0.3, 0.2])
    confs = [np.full((3, 3), (1 - a) / 2) + np.eye(3) * (a - (1 - a) / 2) for a in (0.9, 0.8, 0.7, 0.6)]
    confs.append(np.array([[0.7, 0.3, 0.0], [0.1, 0.6, 0.3], [0.0, 0.2, 0.8]]))
    z = g.choice(3, 3000, p=prior)
    rows = [
        (i, f"r{j}", int(g.choice(3, p=c[z[i]])))
        for j, c in enumerate(confs)
        for i in range(3000)
        if g.random() > 0.2
    ]
    ds = dawid_skene(pd.DataFrame(rows, columns=["item", "rater", "label"]))
    assert ds.converged
    assert np.abs(ds.priors - prior).max() < 0.03
    for j, c in enumerate(confs):
        assert np.abs(ds.confusion[f"r{j}"] - c).max() < 0.06
    labels = ds.labels.sort_index()
    assert np.mean(labels.to_numpy().astype(int) == z[labels.index.to_numpy()]) > 0.9


def test_blank_family_never_matches_in_leave_family_out():
    # "" is no family: two blanks are not the same family (they dropped judge j1 before)
    scores = pd.DataFrame(
        {
            "prompt_id": ["p1"] * 3 + ["p2"] * 3,
            "policy": ["m"] * 6,
            "judge": ["j1", "j2", "j3"] * 2,
            "judge_score": [4, 5, 3, 1, 2, 2],
            "judge_family": ["", "claude", "llama"] * 2,
            "policy_family": [""] * 6,
        }
    )
    out = aggregate_panel(scores, leave_family_out=True)
    assert out["n_judges"].tolist() == [3, 3]
    assert out["judge_score"].tolist() == pytest.approx([4.0, 5 / 3])
    same = scores.assign(policy_family=["claude"] * 6)  # a named family still leaves its judge out
    assert aggregate_panel(same, leave_family_out=True)["judge_score"].tolist() == pytest.approx([3.5, 1.5])


def _slow_panel():
    """Three judges on a yes/no scale and a fourth who also answers 'na' (EM needs ~320 steps)."""
    g = np.random.default_rng(4)
    z = g.choice(2, 1000, p=[0.6, 0.4])
    rows = [
        (i, f"j{j}", str(z[i] if g.random() < acc else 1 - z[i]))
        for j, acc in enumerate([0.8, 0.75, 0.7])
        for i in range(1000)
    ]
    rows += [
        (i, "j3", "na" if g.random() < 0.3 else str(z[i] if g.random() < 0.8 else 1 - z[i]))
        for i in range(1000)
    ]
    return pd.DataFrame(rows, columns=["prompt_id", "judge", "judge_score"])


def test_panel_dawid_skene_warns_when_em_did_not_converge():
    from cje.errors import CJEWarning

    df = _slow_panel()
    ds = dawid_skene(df, item="prompt_id", rater="judge", label="judge_score")
    assert not ds.converged and ds.n_iter == 200
    with pytest.warns(CJEWarning, match="did not converge|before converging"):
        out = aggregate_panel(df, method="dawid_skene")
    assert out["judge_score"].tolist() == ds.labels.sort_index().tolist()
    import warnings

    with warnings.catch_warnings():  # a converged fit says nothing
        warnings.simplefilter("error", CJEWarning)
        aggregate_panel(df[df["judge"] != "j3"], method="dawid_skene")


def test_krippendorff_alpha_reads_nullable_integer_frames():
    # pd.NA in an Int64 column is a missing value, as NaN is (it was refused as "not numeric")
    frame = pd.DataFrame(
        {
            "u1": pd.array([1, pd.NA, 3], dtype="Int64"),
            "u2": pd.array([1, 2, 2], dtype="Int64"),
            "u3": pd.array([1, 2, pd.NA], dtype="Int64"),
            "u4": pd.array([2, 2, 3], dtype="Int64"),
        }
    )
    for level in ("nominal", "interval"):
        assert krippendorff_alpha(frame, level=level) == pytest.approx(
            _alpha_loops(frame.astype(float).to_numpy().tolist(), level)
        )
