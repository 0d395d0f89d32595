"""Tests for cje.pairwise: agreement metrics, win rates, Bradley–Terry, Dawid–Skene and judge panels.

Each statistic is checked against an independent reference: scikit-learn / scipy for κ, τ, ρ and
NDCG; Krippendorff's (2011) published worked example plus a plain pair-by-pair computation for α;
statsmodels' ``Logit`` on the raw verdicts for Bradley–Terry; planted parameters (with a seeded
Monte Carlo coverage check) for the bootstrap intervals and Dawid–Skene; hand counts for the rest.
Bad inputs are table-driven and match the error message.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest
from scipy import stats
from scipy.special import expit

import cje
from cje import pairwise as pw

NAN = float("nan")

# ---------------------------------------------------------------------------------------------
# agreement metrics
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cohen_kappa_matches_sklearn(weights, seed):
    from sklearn.metrics import cohen_kappa_score

    g = np.random.default_rng(seed)
    a = g.integers(1, 6, 200)
    b = np.where(g.random(200) < 0.6, a, g.integers(1, 5, 200))  # b never uses label 5 at random
    assert pw.cohen_kappa(a, b, weights=weights) == pytest.approx(
        cohen_kappa_score(a, b, weights=weights), abs=1e-12
    )


def test_cohen_kappa_string_labels_and_perfect_agreement():
    from sklearn.metrics import cohen_kappa_score

    a = ["good", "bad", "ok", "good", "ok", "bad", "good"]
    b = ["good", "ok", "ok", "good", "bad", "bad", "ok"]
    assert pw.cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert pw.cohen_kappa(a, a) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1])
def test_kendall_and_spearman_match_scipy(seed):
    g = np.random.default_rng(seed)
    x = g.integers(0, 6, 40).astype(float)  # ties on purpose (τ-b)
    y = x + g.normal(0, 2, 40)
    tau, p_tau = pw.kendall_tau(x, y)
    ref = stats.kendalltau(x, y)
    assert (tau, p_tau) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)
    rho, p_rho = pw.spearman_rho(x, y)
    ref = stats.spearmanr(x, y)
    assert (rho, p_rho) == pytest.approx((ref.statistic, ref.pvalue), abs=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5, 20])
@pytest.mark.parametrize("tied", [False, True])
def test_ndcg_matches_sklearn(k, tied):
    from sklearn.metrics import ndcg_score

    g = np.random.default_rng(k)
    rel = g.integers(0, 4, 12).astype(float)
    scores = g.integers(0, 4, 12).astype(float) if tied else g.normal(size=12)
    assert pw.ndcg_at_k(rel, scores, k) == pytest.approx(ndcg_score([rel], [scores], k=k), abs=1e-12)


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers (rows)
# × 12 units (columns), "." = missing. Published: nominal .743, ordinal .815, interval .849,
# ratio .797.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)


@pytest.mark.parametrize(
    "level, published",
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_published_example(level, published):
    assert round(pw.krippendorff_alpha(KRIPPENDORFF_2011, level=level), 3) == published


def _alpha_by_pairs(data: np.ndarray, level: str) -> float:
    """α = 1 − D_o/D_e written directly over pairs of values (no coincidence matrix).

    D_o averages δ² over ordered pairs of values within a unit, each unit weighted 1/(m_u − 1);
    D_e averages δ² over all ordered pairs of pairable values.
    """
    units = [col[~np.isnan(col)] for col in data.T]
    units = [u for u in units if u.size >= 2]
    values = np.concatenate(units)
    n = values.size

    def delta2(c: float, k: float) -> float:
        if level == "nominal":
            return float(c != k)
        if level == "interval":
            return (c - k) ** 2
        if level == "ratio":
            return 0.0 if c + k == 0 else ((c - k) / (c + k)) ** 2
        lo, hi = min(c, k), max(c, k)  # ordinal
        between = np.sum((values >= lo) & (values <= hi))
        return float(between - (np.sum(values == c) + np.sum(values == k)) / 2) ** 2

    d_o = 0.0
    for u in units:
        for i in range(u.size):
            for j in range(u.size):
                if i != j:
                    d_o += delta2(u[i], u[j]) / (u.size - 1)
    d_o /= n
    d_e = sum(delta2(values[i], values[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    return 1.0 - d_o / d_e


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval", "ratio"])
def test_krippendorff_alpha_matches_direct_pair_computation(level):
    g = np.random.default_rng(3)
    truth = g.integers(1, 6, 15)
    data = np.vstack([np.clip(truth + g.integers(-1, 2, 15), 1, 5) for _ in range(3)]).astype(float)
    data[g.random(data.shape) < 0.2] = NAN
    assert pw.krippendorff_alpha(data, level=level) == pytest.approx(_alpha_by_pairs(data, level), abs=1e-12)
    assert pw.krippendorff_alpha(KRIPPENDORFF_2011, level=level) == pytest.approx(
        _alpha_by_pairs(KRIPPENDORFF_2011, level), abs=1e-12
    )


def test_ranking_agreement():
    judge = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.1}
    oracle = {"a": 0.8, "b": 0.6, "c": 0.4, "d": 0.2}
    r = pw.ranking_agreement(judge, oracle)
    keys = sorted(judge)
    ref_tau = stats.kendalltau([judge[k] for k in keys], [oracle[k] for k in keys])
    assert r["kendall_tau"] == pytest.approx(ref_tau.statistic)
    assert r["spearman_rho"] == pytest.approx(0.8)  # ranks (1,3,2,4) vs (1,2,3,4): 1 − 6·2/60
    assert r["top1_agree"] is True and r["judge_top"] == ["a"] and r["n_items"] == 4
    flipped = pw.ranking_agreement({"a": 1.0, "b": 2.0}, {"a": 2.0, "b": 1.0})
    assert flipped["kendall_tau"] == pytest.approx(-1.0) and flipped["top1_agree"] is False
    assert flipped["spearman_p"] == 1.0  # exact for two items


# ---------------------------------------------------------------------------------------------
# win rates
# ---------------------------------------------------------------------------------------------


def _small_pairs() -> dict[str, list[Any]]:
    """Hand-checkable verdicts.

    x: beats y (p1), ties z (p1), loses to y (p3), beats z (p4) → 4 comparisons, 2-1-1, rate 2.5/4.
    y: loses to x, beats z (p2), beats x, ties z (p4) → 4, 2-1-1, 2.5/4.
    z: ties x, loses to y, loses to x, ties y → 4, 0-2-2, 1/4.
    """
    return {
        "prompt_id": ["p1", "p1", "p2", "p3", "p4", "p4"],
        "a_id": ["x", "x", "y", "x", "z", "y"],
        "b_id": ["y", "z", "z", "y", "x", "z"],
        "slot_a": [1, 2, 1, 2, 1, 2],
        "winner": ["a", "tie", "a", "b", "b", "tie"],
    }


def test_win_rates_hand_counts():
    t = pw.win_rates(_small_pairs(), n_bootstrap=0)
    assert t["item"].tolist() == ["x", "y", "z"]  # x and y tie at 0.625: original (sorted) order
    got = t.set_index("item")[["n_comparisons", "wins", "losses", "ties"]]
    assert got.loc["x"].tolist() == [4, 2, 1, 1]
    assert got.loc["y"].tolist() == [4, 2, 1, 1]
    assert got.loc["z"].tolist() == [4, 0, 2, 2]
    assert t["win_rate"].tolist() == pytest.approx([0.625, 0.625, 0.25])
    assert t[["ci_low", "ci_high"]].isna().all().all()


def test_win_rates_bootstrap_contains_estimate_and_is_reproducible():
    g = np.random.default_rng(5)
    n = 300
    a = g.choice(["m1", "m2", "m3"], n)
    b = np.where(a == "m1", "m2", np.where(a == "m2", "m3", "m1"))
    pairs = {
        "prompt_id": g.integers(0, 60, n),
        "a_id": a,
        "b_id": b,
        "slot_a": g.integers(1, 3, n),
        "winner": g.choice(["a", "b", "tie"], n, p=[0.5, 0.35, 0.15]),
    }
    t1 = pw.win_rates(pairs, n_bootstrap=500, rng=11)
    t2 = pw.win_rates(pl.DataFrame(pairs), n_bootstrap=500, rng=np.random.default_rng(11))
    pd.testing.assert_frame_equal(t1, t2)
    assert ((t1["ci_low"] <= t1["win_rate"]) & (t1["win_rate"] <= t1["ci_high"])).all()
    assert (t1["ci_high"] - t1["ci_low"] > 0.02).all()
    assert t1["win_rate"].is_monotonic_decreasing
    t3 = pw.win_rates(pairs, n_bootstrap=500, rng=12)
    assert not np.allclose(t1["ci_low"], t3["ci_low"])


# ---------------------------------------------------------------------------------------------
# Bradley–Terry
# ---------------------------------------------------------------------------------------------

ITEMS = np.array(["A", "B", "C", "D"])
THETA = np.array([0.0, 0.5, -0.3, 1.0])  # A is the reference (first alphabetically)
GAMMA = 0.4  # first-slot advantage, log-odds


def _simulate_bt(n_prompts: int, gamma: float, seed: int, tie_rate: float = 0.0) -> pd.DataFrame:
    """Every prompt compares all 6 pairs once, in random orientation and slot order."""
    g = np.random.default_rng(seed)
    pairs = np.array(list(combinations(range(4), 2)))
    idx = np.tile(np.arange(len(pairs)), n_prompts)
    i, j = pairs[idx, 0], pairs[idx, 1]
    flip = g.random(idx.size) < 0.5
    a, b = np.where(flip, j, i), np.where(flip, i, j)
    slot = g.integers(1, 3, idx.size)
    p_a = expit(THETA[a] - THETA[b] + gamma * np.where(slot == 1, 1.0, -1.0))
    winner = np.where(g.random(idx.size) < p_a, "a", "b")
    winner = np.where(g.random(idx.size) < tie_rate, "tie", winner)
    return pd.DataFrame(
        {
            "prompt_id": np.repeat(np.arange(n_prompts), len(pairs)),
            "a_id": ITEMS[a],
            "b_id": ITEMS[b],
            "slot_a": slot,
            "winner": winner,
        }
    )


def _logit_reference(df: pd.DataFrame, position: bool) -> np.ndarray:
    """statsmodels Logit on raw verdicts: ±1 item columns (B, C, D), optional ±1 slot column.

    A tie is half a win: every row is doubled and a tie becomes one win and one loss, which has the
    same maximiser as two half-weight rows.
    """
    import statsmodels.api as sm

    cols = ["B", "C", "D"]
    x = (df["a_id"].to_numpy()[:, None] == cols).astype(float) - (df["b_id"].to_numpy()[:, None] == cols)
    if position:
        x = np.column_stack([x, np.where(df["slot_a"] == 1, 1.0, -1.0)])
    w = df["winner"].to_numpy()
    y1 = np.where(w == "b", 0.0, 1.0)  # first copy: a wins or tie
    y2 = np.where(w == "a", 1.0, 0.0)  # second copy: a wins
    res = sm.Logit(np.concatenate([y1, y2]), np.vstack([x, x])).fit(disp=0, method="newton", tol=1e-12)
    return np.asarray(res.params)


@pytest.mark.parametrize("tie_rate", [0.0, 0.2])
def test_bradley_terry_equals_direct_statsmodels_fit_without_position(tie_rate):
    df = _simulate_bt(150, 0.0, seed=1, tie_rate=tie_rate)
    bt = pw.bradley_terry(df, position_intercept=False, n_bootstrap=0)
    assert bt.items == ("A", "B", "C", "D") and bt.reference == "A"
    assert bt.position_effect is None and bt.position_ci is None
    np.testing.assert_allclose(bt.strength[1:], _logit_reference(df, position=False), atol=1e-7)
    assert bt.strength[0] == 0.0 and bt.n_pairs == len(df) and bt.n_prompts == 150


def test_bradley_terry_position_intercept_equals_statsmodels_fit():
    df = _simulate_bt(150, GAMMA, seed=2, tie_rate=0.1)
    bt = pw.bradley_terry(df, n_bootstrap=0)
    ref = _logit_reference(df, position=True)
    np.testing.assert_allclose(bt.strength[1:], ref[:3], atol=1e-7)
    assert bt.position_effect == pytest.approx(ref[3], abs=1e-7)


def test_bradley_terry_recovers_planted_strengths():
    bt = pw.bradley_terry(_simulate_bt(2000, GAMMA, seed=3), n_bootstrap=300, rng=0)
    # 12,000 verdicts: the SE of each strength is ≈ 0.04, so 0.15 is > 3.5 SE.
    np.testing.assert_allclose(bt.strength, THETA, atol=0.15)
    assert bt.position_effect == pytest.approx(GAMMA, abs=0.1)
    assert np.all(bt.ci_low <= bt.strength) and np.all(bt.strength <= bt.ci_high)
    assert bt.ci_low[0] == bt.ci_high[0] == 0.0
    # win_probability is the fitted model
    d = bt.strength[3] - bt.strength[1]
    assert bt.win_probability("D", "B") == pytest.approx(expit(d))
    assert bt.win_probability("D", "B", slot=1) == pytest.approx(expit(d + bt.position_effect))
    assert bt.win_probability("D", "B", slot=2) == pytest.approx(expit(d - bt.position_effect))
    frame = bt.to_pandas()
    assert frame["item"].tolist() == ["D", "B", "A", "C"]
    assert frame.columns.tolist() == ["item", "strength", "ci_low", "ci_high", "reference"]
    assert "first-slot advantage" in bt.summary()


def test_bradley_terry_bootstrap_coverage_of_planted_values():
    """Seeded Monte Carlo: 100 data sets of 100 prompts (600 verdicts), 200 bootstrap replicates each.

    Bands from binomial Monte Carlo error. Per parameter (3 strengths + position) there are 100
    coverage indicators: SD sqrt(.95·.05/100) ≈ 0.022, and we require ≥ 88/100
    (P(X ≤ 87 | p = .95) ≈ 0.0015). Pooled over the 400 indicators, even perfectly correlated
    parameters leave the SD ≤ 0.022, so pooled coverage ≥ 0.95 − 3·0.022 ≈ 0.885 → 0.89.
    Over-wide intervals are caught by the ratio of mean half-width / 1.96 to the Monte Carlo SD of
    the estimates: an SD from 100 replicates has relative SE ≈ 1/sqrt(198) ≈ 0.07, so 3.5 SE gives
    the band [0.75, 1.25].
    """
    truth = np.append(THETA[1:], GAMMA)
    covered, est, half = [], [], []
    for rep in range(100):
        bt = pw.bradley_terry(_simulate_bt(100, GAMMA, seed=1000 + rep), n_bootstrap=200, rng=rep)
        lo = np.append(bt.ci_low[1:], bt.position_ci[0])
        hi = np.append(bt.ci_high[1:], bt.position_ci[1])
        covered.append((lo <= truth) & (truth <= hi))
        est.append(np.append(bt.strength[1:], bt.position_effect))
        half.append((hi - lo) / 2)
    cov = np.array(covered)
    assert cov.mean() >= 0.89, cov.mean(axis=0)
    assert (cov.mean(axis=0) >= 0.88).all(), cov.mean(axis=0)
    ratio = np.mean(half, axis=0) / 1.96 / np.std(est, axis=0, ddof=1)
    assert ((ratio > 0.75) & (ratio < 1.25)).all(), ratio


def test_bradley_terry_reference_and_reproducibility():
    df = _simulate_bt(60, GAMMA, seed=4)
    r1 = pw.bradley_terry(df, n_bootstrap=100, rng=7)
    r2 = pw.bradley_terry(df, n_bootstrap=100, rng=7)
    np.testing.assert_array_equal(r1.ci_low, r2.ci_low)
    rc = pw.bradley_terry(df, reference="C", n_bootstrap=0)
    assert rc.reference == "C" and rc.strength[2] == 0.0
    np.testing.assert_allclose(rc.strength - rc.strength[0], r1.strength, atol=1e-7)  # only shifted
    assert rc.position_effect == pytest.approx(r1.position_effect, abs=1e-7)


def test_bradley_terry_sparse_resamples_are_counted():
    # one prompt holds the only loss of "z": resamples without it have no finite MLE
    df = pd.DataFrame(
        {
            "prompt_id": ["p1", "p2", "p3", "p4", "p5", "p6"],
            "a_id": ["x", "x", "y", "y", "z", "z"],
            "b_id": ["y", "z", "x", "z", "x", "y"],
            "slot_a": [1, 1, 1, 1, 1, 1],
            "winner": ["a", "b", "a", "b", "a", "b"],
        }
    )
    with pytest.warns(cje.CJEWarning, match="bootstrap resamples had no finite MLE"):
        bt = pw.bradley_terry(df, position_intercept=False, n_bootstrap=200, rng=0)
    assert 0 < bt.n_bootstrap_failed < 200 and bt.warnings


def test_item_compared_on_few_prompts_is_named():
    """An item seen on 6 of 200 prompts: its interval is a 6-cluster bootstrap (as a plain
    percentile interval it covered 0.86-0.87, expanded over its 6 prompts 0.95:
    simulations/results/bootstrap_few_prompts.md) although the data hold 200 prompts; the warning
    names it."""
    df = _simulate_bt(200, GAMMA, seed=11)
    g = np.random.default_rng(12)
    rows = []
    for p in range(6):
        for other in ("A", "B", "C", "D"):
            for slot in (1, 2):
                rows.append({"prompt_id": p, "a_id": "E", "b_id": other, "slot_a": slot,
                             "winner": str(g.choice(["a", "b", "tie"]))})
    df = pd.concat([df, pd.DataFrame(rows)], ignore_index=True)
    with pytest.warns(cje.CJEWarning, match=r"'E' \(6\) were compared on fewer than 30 of the 200"):
        pw.win_rates(df, n_bootstrap=50, rng=0)
    with pytest.warns(cje.CJEWarning, match=r"'E' \(6\)"):
        bt = pw.bradley_terry(df, n_bootstrap=50, rng=0)
    assert any("'E' (6)" in w for w in bt.warnings)
    # every item on every prompt: no such warning
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error")
        pw.win_rates(_simulate_bt(200, GAMMA, seed=11), n_bootstrap=50, rng=0)
        assert not pw.bradley_terry(_simulate_bt(200, GAMMA, seed=11), n_bootstrap=50, rng=0).warnings


# ---------------------------------------------------------------------------------------------
# Dawid–Skene
# ---------------------------------------------------------------------------------------------


def _honest(acc: float) -> np.ndarray:
    m = np.full((3, 3), (1 - acc) / 2)
    np.fill_diagonal(m, acc)
    return m


ADVERSARY = np.full((3, 3), 0.05) + np.roll(np.eye(3), 1, axis=1) * 0.85  # true k → label k+1 (90%)
CONFUSION = {"j1": _honest(0.7), "j2": _honest(0.65), "j3": _honest(0.6), "j_adv": ADVERSARY}
PRIORS = np.array([0.5, 0.3, 0.2])


def _simulate_raters(n: int, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
    g = np.random.default_rng(seed)
    z = g.choice(3, size=n, p=PRIORS)
    frames = []
    for name, conf in CONFUSION.items():
        cum = np.cumsum(conf[z], axis=1)
        lab = (g.random(n)[:, None] > cum).sum(axis=1)
        frames.append(pd.DataFrame({"item": np.arange(n), "rater": name, "label": lab}))
    return z, pd.concat(frames, ignore_index=True)


def test_dawid_skene_recovers_planted_confusions_and_beats_majority():
    z, labels = _simulate_raters(4000, seed=0)
    ds = pw.dawid_skene(labels)
    assert ds.converged and ds.classes == (0, 1, 2)
    # the smallest class has ≈ 800 items: entry SE ≤ sqrt(.25/800) ≈ 0.018, so 0.06 is > 3 SE
    for name, conf in CONFUSION.items():
        np.testing.assert_allclose(ds.confusion[name], conf, atol=0.06)
    np.testing.assert_allclose(ds.priors, PRIORS, atol=0.03)
    np.testing.assert_allclose(ds.posterior.sum(axis=1), 1.0)

    ds_acc = np.mean(ds.labels.to_numpy(dtype=int) == z)
    panel = labels.rename(columns={"item": "prompt_id", "rater": "judge", "label": "judge_score"})
    mv = pw.aggregate_panel(panel, method="majority")
    mv_acc = np.mean(mv["judge_score"].to_numpy(dtype=int) == z)
    # Bayes rule with the true parameters: the best any aggregation can do
    logp = np.log(PRIORS)[None, :].repeat(z.size, axis=0)
    for name, conf in CONFUSION.items():
        lab = labels.loc[labels["rater"] == name, "label"].to_numpy()
        logp += np.log(conf[:, lab]).T
    bayes_acc = np.mean(np.argmax(logp, axis=1) == z)
    assert ds_acc > mv_acc + 0.15, (ds_acc, mv_acc)
    assert ds_acc > bayes_acc - 0.015, (ds_acc, bayes_acc)

    via_panel = pw.aggregate_panel(panel, method="dawid_skene")
    np.testing.assert_array_equal(via_panel["judge_score"].to_numpy(dtype=int), ds.labels.to_numpy(dtype=int))
    assert (via_panel["n_judges"] == 4).all() and via_panel["posterior"].between(1 / 3, 1).all()
    out = ds.to_pandas()
    assert out.columns.tolist() == ["item", "label", "p_0", "p_1", "p_2"]


# ---------------------------------------------------------------------------------------------
# judge panels
# ---------------------------------------------------------------------------------------------


def _panel() -> pd.DataFrame:
    """Two prompts × two policies, three judges; judge families vs policy families."""
    return pd.DataFrame(
        {
            "prompt_id": ["p1"] * 6 + ["p2"] * 6,
            "policy": (["gpt"] * 3 + ["claude"] * 3) * 2,
            "judge": ["j_openai", "j_anthropic", "j_google"] * 4,
            "judge_family": ["openai", "anthropic", "google"] * 4,
            "policy_family": (["openai"] * 3 + ["anthropic"] * 3) * 2,
            "judge_score": [1, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 1],
        }
    )


def test_aggregate_panel_hand_cases():
    df = _panel()
    mean = pw.aggregate_panel(df, method="mean")
    assert mean[["prompt_id", "policy"]].values.tolist() == [
        ["p1", "claude"],
        ["p1", "gpt"],
        ["p2", "claude"],
        ["p2", "gpt"],
    ]
    assert mean["judge_score"].tolist() == pytest.approx([2 / 3, 1 / 3, 2 / 3, 0.0])
    assert mean["n_judges"].tolist() == [3, 3, 3, 3]
    assert pw.aggregate_panel(df, method="max")["judge_score"].tolist() == [1, 1, 1, 0]
    assert pw.aggregate_panel(df, method="majority")["judge_score"].tolist() == [1, 0, 1, 0]


def test_majority_tie_goes_to_smallest_label():
    df = pd.DataFrame(
        {
            "prompt_id": ["p1"] * 4 + ["p2"] * 2,
            "judge": ["j1", "j2", "j3", "j4", "j1", "j2"],
            "judge_score": ["good", "bad", "bad", "good", "ok", "bad"],
        }
    )
    out = pw.aggregate_panel(df, method="majority", item_columns=("prompt_id",))
    assert out["judge_score"].tolist() == ["bad", "bad"]


def test_leave_family_out_removes_same_family_judges():
    out = pw.aggregate_panel(_panel(), method="mean", leave_family_out=True)
    # gpt items lose j_openai, claude items lose j_anthropic
    assert out["n_judges"].tolist() == [2, 2, 2, 2]
    # p1/claude: j_openai 1, j_google 0; p1/gpt: j_anthropic 0, j_google 0;
    # p2/claude: j_openai 1, j_google 1; p2/gpt: j_anthropic 0, j_google 0
    assert out["judge_score"].tolist() == pytest.approx([0.5, 0.0, 1.0, 0.0])


# ---------------------------------------------------------------------------------------------
# bad inputs (table-driven): error type and message
# ---------------------------------------------------------------------------------------------


def _pairs_with(**changes: Any) -> dict[str, list[Any]]:
    """``_small_pairs()`` with columns removed (None) or cells set ({row: value})."""
    d = _small_pairs()
    for col, change in changes.items():
        if change is None:
            del d[col]
        else:
            for row, value in change.items():
                d[col][row] = value
    return d


PAIR_CASES = [
    (
        "no winner column",
        _pairs_with(winner=None),
        r"needs columns prompt_id, a_id, b_id, slot_a, winner; missing: winner",
    ),
    ("no slot_a column", _pairs_with(slot_a=None), r"missing: slot_a"),
    ("no a_id/b_id", _pairs_with(a_id=None, b_id=None), r"missing: a_id, b_id"),
    (
        "winner uppercase",
        _pairs_with(winner={2: "A"}),
        r"'winner' column must be 'a', 'b' or 'tie'; row 2 \(prompt_id='p2'\) has 'A'",
    ),
    (
        "winner word",
        _pairs_with(winner={0: "win"}),
        r"'winner'.*row 0 \(prompt_id='p1'\) has 'win'.*Map each verdict",
    ),
    ("winner missing", _pairs_with(winner={5: None}), r"'winner'.*row 5 \(prompt_id='p4'\) is missing"),
    ("winner number", _pairs_with(winner={1: 1}), r"'winner'.*row 1"),
    ("slot 3", _pairs_with(slot_a={3: 3}), r"'slot_a' column must be 1 or 2.*row 3 \(prompt_id='p3'\) has 3"),
    ("slot 0", _pairs_with(slot_a={0: 0}), r"'slot_a'.*row 0 .*has 0.*Record 1 if a_id was shown first"),
    ("slot text", _pairs_with(slot_a={4: "first"}), r"'slot_a'.*row 4 .*has 'first'"),
    ("slot missing", _pairs_with(slot_a={1: None}), r"'slot_a'.*row 1 \(prompt_id='p1'\) is missing"),
    ("self comparison", _pairs_with(b_id={2: "y"}), r"two different items; row 2 .*a_id = b_id = 'y'"),
    ("empty prompt", _pairs_with(prompt_id={3: None}), r"'prompt_id' column must be non-empty.*row 3"),
    ("empty b_id", _pairs_with(b_id={0: None}), r"'b_id' column must be non-empty.*row 0 \(prompt_id='p1'\)"),
]


@pytest.mark.parametrize("func", [pw.win_rates, pw.bradley_terry])
@pytest.mark.parametrize("case, data, message", PAIR_CASES, ids=[c[0] for c in PAIR_CASES])
def test_bad_pairs(func, case, data, message):
    with pytest.raises(cje.CJEInputError, match=message):
        func(data, n_bootstrap=0)


def _no_family() -> pd.DataFrame:
    return _panel().drop(columns=["judge_family"])


def _one_judge() -> pd.DataFrame:
    return _panel().query("judge == 'j_google'")


def _only_own_family() -> pd.DataFrame:
    df = _panel()
    return df[~((df["policy"] == "gpt") & (df["prompt_id"] == "p2") & (df["judge"] != "j_openai"))]


def _repeated() -> pd.DataFrame:
    df = _panel()
    return pd.concat([df, df.iloc[[4]]], ignore_index=True)


PANEL_CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    (
        "no judge_score",
        lambda: _panel().drop(columns="judge_score"),
        {},
        r"aggregate_panel needs columns .*missing: judge_score",
    ),
    ("no judge", lambda: _panel().drop(columns="judge"), {}, r"missing: judge\."),
    ("no prompt_id", lambda: _panel().drop(columns="prompt_id"), {}, r"missing: prompt_id"),
    ("explicit item column absent", _panel, {"item_columns": ("prompt_id", "polcy")}, r"missing: polcy"),
    (
        "leave_family_out without judge_family",
        _no_family,
        {"leave_family_out": True},
        r"aggregate_panel\(leave_family_out=True\) needs columns .*; missing: judge_family\.",
    ),
    (
        "single judge for dawid_skene",
        _one_judge,
        {"method": "dawid_skene"},
        r"Dawid–Skene needs at least 2 raters \(judges\); got 1",
    ),
    (
        "item left without judge",
        _only_own_family,
        {"leave_family_out": True},
        r"Item \(prompt_id='p2', policy='gpt'\) has no judge left after leave_family_out.*'openai'",
    ),
    (
        "unknown method",
        _panel,
        {"method": "median"},
        r"method must be one of 'mean', 'max', 'majority', 'dawid_skene'",
    ),
    (
        "repeated judge",
        _repeated,
        {},
        r"score an item once; row 12 \(prompt_id='p1'\) repeats judge 'j_anthropic'",
    ),
    (
        "text score for mean",
        lambda: _panel().assign(judge_score=["x"] + [1] * 11),
        {},
        r"'judge_score' column must be finite for method='mean'; row 0",
    ),
    (
        "continuous scores for majority",
        lambda: pd.DataFrame(
            {
                "prompt_id": np.repeat(np.arange(30), 2),
                "judge": ["j1", "j2"] * 30,
                "judge_score": np.linspace(0, 1, 60),
            }
        ),
        {"method": "majority"},
        r"method='majority' is for categorical labels; the 'judge_score' column has 60 distinct",
    ),
    (
        "missing score",
        lambda: _panel().assign(judge_score=[NAN] + [1.0] * 11),
        {"method": "majority"},
        r"'judge_score' column must be non-empty on every row; row 0",
    ),
]


@pytest.mark.parametrize("case, make, kwargs, message", PANEL_CASES, ids=[c[0] for c in PANEL_CASES])
def test_bad_panels(case, make, kwargs, message):
    with pytest.raises(cje.CJEInputError, match=message):
        pw.aggregate_panel(make(), **kwargs)


BT_CASES: list[tuple[str, Any, dict[str, Any], str]] = [
    ("unknown reference", _small_pairs, {"reference": "w"}, r"reference='w' is not among the compared items"),
    ("bad alpha", _small_pairs, {"alpha": 1.5}, r"alpha must be a number in \(0, 1\)"),
    (
        "negative n_bootstrap",
        _small_pairs,
        {"n_bootstrap": -1},
        r"n_bootstrap must be a non-negative integer",
    ),
    (
        "item never loses",
        lambda: _pairs_with(winner={1: "a", 3: "a"}),
        {},
        r"not identified: items \['x'\] never lost to \(nor tied with\) any of \['y', 'z'\]",
    ),
    (
        "x always shown first",
        lambda: {
            "prompt_id": [1, 2, 3],
            "a_id": ["x"] * 3,
            "b_id": ["y"] * 3,
            "slot_a": [1] * 3,
            "winner": ["a", "b", "a"],
        },
        {},
        r"position effect is not identified.*position_intercept=False",
    ),
]


@pytest.mark.parametrize("case, make, kwargs, message", BT_CASES, ids=[c[0] for c in BT_CASES])
def test_bad_bradley_terry(case, make, kwargs, message):
    kwargs = {"n_bootstrap": 0, **kwargs}
    with pytest.raises(cje.CJEInputError, match=message):
        pw.bradley_terry(make(), **kwargs)


AGREEMENT_CASES: list[tuple[str, Any, str]] = [
    ("kappa lengths", lambda: pw.cohen_kappa([1, 2], [1, 2, 3]), r"same length; got 2 and 3"),
    ("kappa weights", lambda: pw.cohen_kappa([1, 2], [1, 2], weights="square"), r"weights must be None"),
    ("kappa constant", lambda: pw.cohen_kappa([1, 1], [1, 1]), r"undefined when both raters give one"),
    ("kappa missing", lambda: pw.cohen_kappa([1, None], [1, 2]), r"a must be non-missing; element 1"),
    ("alpha level", lambda: pw.krippendorff_alpha([[1, 2]], level="metric"), r"level must be one of"),
    ("alpha 1-D", lambda: pw.krippendorff_alpha([1, 2, 3]), r"2-D raters × units"),
    ("alpha unpairable", lambda: pw.krippendorff_alpha([[1, NAN], [NAN, 2]]), r"at least one unit with two"),
    ("alpha text", lambda: pw.krippendorff_alpha([["a", "b"], ["a", "a"]]), r"numeric raters × units"),
    ("tau constant", lambda: pw.kendall_tau([1, 1, 1], [1, 2, 3]), r"x is constant"),
    ("rho nan", lambda: pw.spearman_rho([1, NAN, 3], [1, 2, 3]), r"x must be finite; element 1"),
    ("ndcg k", lambda: pw.ndcg_at_k([1, 2], [1, 2], 0), r"k must be a positive integer"),
    ("ndcg negative", lambda: pw.ndcg_at_k([-1, 2], [1, 2], 2), r"relevance must be non-negative"),
    ("ndcg all zero", lambda: pw.ndcg_at_k([0, 0], [1, 2], 2), r"every relevance is 0"),
    (
        "ranking keys",
        lambda: pw.ranking_agreement({"a": 1, "b": 2}, {"a": 1, "c": 2}),
        r"only in judge_values: \['b'\]; only in oracle_values: \['c'\]",
    ),
    ("ranking one", lambda: pw.ranking_agreement({"a": 1}, {"a": 1}), r"at least 2 policies"),
    (
        "ds one rater",
        lambda: pw.dawid_skene({"item": [1, 2], "rater": ["r", "r"], "label": [0, 1]}),
        r"Dawid–Skene needs at least 2 raters \(judges\); got 1",
    ),
    (
        "ds missing column",
        lambda: pw.dawid_skene({"item": [1], "label": [0]}),
        r"dawid_skene needs columns .*missing: rater",
    ),
]


@pytest.mark.parametrize("case, call, message", AGREEMENT_CASES, ids=[c[0] for c in AGREEMENT_CASES])
def test_bad_agreement_inputs(case, call, message):
    with pytest.raises(cje.CJEInputError, match=message):
        call()


def test_bootstrap_progress_bar_counts_replicates(capsys):
    from cje.synthetic.pairwise import make_pairwise_eval

    pairs = make_pairwise_eval(60, rng=5).pairs
    quiet = cje.pairwise.bradley_terry(pairs, n_bootstrap=50, rng=1, progress=False)
    assert capsys.readouterr().err == ""
    shown = cje.pairwise.bradley_terry(pairs, n_bootstrap=50, rng=1, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap" in err and "50/50" in err
    assert np.array_equal(quiet.ci_low, shown.ci_low, equal_nan=True)  # same draws, bar or not
    cje.pairwise.win_rates(pairs, n_bootstrap=40, rng=1, progress=True)
    assert "40/40" in capsys.readouterr().err
    with pytest.raises(cje.CJEInputError, match="progress must be True, False or None"):
        cje.pairwise.win_rates(pairs, n_bootstrap=40, progress=1)
