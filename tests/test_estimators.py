"""The direct estimator and its inference against independent hand computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from sklearn.isotonic import IsotonicRegression

import cje
from cje.estimators import direct_estimate
from cje.inference import cluster_variance, holm, jackknife_variance, satterthwaite_df

# 12 rows: 6 prompts x 2 policies; labels on 8 rows covering all 6 prompts.
TWELVE = pd.DataFrame(
    {
        "prompt_id": ["p1", "p2", "p3", "p4", "p5", "p6"] * 2,
        "policy": ["A"] * 6 + ["B"] * 6,
        "judge_score": [0.2, 0.4, 0.4, 0.6, 0.8, 1.0, 0.3, 0.5, 0.7, 0.7, 0.9, 0.1],
        "oracle_label": [0.0, 0.5, np.nan, 0.5, 1.0, np.nan, 0.25, np.nan, 0.75, 0.5, np.nan, 0.0],
    }
)


def _iso(s, y):
    return IsotonicRegression(out_of_bounds="clip").fit(s, y)


def _hand_direct(df: pd.DataFrame, fold_of: dict[str, int], deleted: set[int]) -> dict[str, float]:
    """ψ_p = mean f(S) + mean over p's labelled rows of (Y − f_oof(S)), written out plainly."""
    lab = df[df.oracle_label.notna()]
    used = lab[~lab.prompt_id.map(fold_of).isin(deleted)]
    f = _iso(used.judge_score, used.oracle_label)
    out = {}
    for pol, g in df.groupby("policy"):
        total = f.predict(g.judge_score).mean()
        resid = []
        for _, row in g[g.oracle_label.notna()].iterrows():
            k = fold_of[row.prompt_id]
            if k in deleted:
                pred = f.predict([row.judge_score])[0]
            else:
                tr = used[used.prompt_id.map(fold_of) != k]
                pred = _iso(tr.judge_score, tr.oracle_label).predict([row.judge_score])[0]
            resid.append(row.oracle_label - pred)
        out[pol] = total + (np.mean(resid) if resid else 0.0)
    return out


def _folds_of_twelve() -> dict[str, int]:
    d = cje.load(TWELVE, judge_scale=(0, 1), label_scale=(0, 1))
    lab = np.zeros(d.prompts.size, bool)
    lab[d.prompt_code[d.labelled]] = True
    return dict(zip(d.prompts.tolist(), cje.prompt_folds(d.prompts, lab, 3).tolist(), strict=True))


def _hand_phi(df: pd.DataFrame, fold_of: dict[str, int], psi: dict[str, float]
              ) -> tuple[dict[str, dict], dict[str, dict]]:
    """φ_i = (f(S_i) − mean f) + (L_i / p_L)(e_i − ē), e_i = Y_i − f_oof(S_i) and ē the mean
    residual of the policy's labelled rows (centred residual term), keyed by policy then prompt;
    and the residual part ``(L_i / p_L)(e_i − ē)`` alone, keyed the same way (0 unlabelled).
    ``psi`` is only used to check that mean f + ē is the estimate."""
    lab_rows = df[df.oracle_label.notna()]
    f = _iso(lab_rows.judge_score, lab_rows.oracle_label)
    phi: dict[str, dict] = {}
    res: dict[str, dict] = {}
    for pol, g in df.groupby("policy"):
        p_l = g.oracle_label.notna().mean()
        mean_f = float(np.mean(f.predict(g.judge_score)))
        resid = {}
        for _, row in g[g.oracle_label.notna()].iterrows():
            tr = lab_rows[lab_rows.prompt_id.map(fold_of) != fold_of[row.prompt_id]]
            resid[row.prompt_id] = row.oracle_label - _iso(tr.judge_score, tr.oracle_label).predict(
                [row.judge_score])[0]
        e_bar = float(np.mean(list(resid.values())))
        assert mean_f + e_bar == pytest.approx(psi[pol], abs=1e-12)
        vals, parts = {}, {}
        for _, row in g.iterrows():
            v = f.predict([row.judge_score])[0] - mean_f
            parts[row.prompt_id] = 0.0
            if row.prompt_id in resid and not np.isnan(row.oracle_label):
                parts[row.prompt_id] = (resid[row.prompt_id] - e_bar) / p_l
                v += parts[row.prompt_id]
            vals[row.prompt_id] = v
        phi[pol], res[pol] = vals, parts
    return phi, res


def test_direct_equals_hand_computation_on_12_rows():
    rep = cje.analyze(TWELVE, judge_scale=(0, 1), label_scale=(0, 1), n_folds=3, mode="monotone")
    fold_of = _folds_of_twelve()

    full = _hand_direct(TWELVE, fold_of, set())
    reps = np.array([[_hand_direct(TWELVE, fold_of, {k})[p] for p in "AB"] for k in range(3)])
    var_cal = 2 / 3 * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    for j, pol in enumerate("AB"):
        e = rep[pol]
        assert e.estimate == pytest.approx(full[pol], abs=1e-12)
        assert e.var_cal == pytest.approx(var_cal[j], abs=1e-12)

    phis, res = _hand_phi(TWELVE, fold_of, full)
    for j, pol in enumerate("AB"):
        phi = np.array(list(phis[pol].values()))
        r = np.array(list(res[pol].values()))
        m = int(np.count_nonzero(TWELVE.oracle_label[TWELVE.policy == pol].notna()))  # 4 prompts
        assert phi.sum() == pytest.approx(0.0, abs=1e-12)
        # one row per prompt: T_g = φ_i. The factor 6/5 of the 6 prompts on every part but the
        # residual part of the policy's own m labelled prompts, which gets m/(m−1) (a mean of m
        # residuals); that part is a Satterthwaite component with m − 1 df
        v_res = m / (m - 1) * np.sum(r**2) / 36
        v_if = 6 / 5 * (np.sum(phi**2) - np.sum(r**2)) / 36 + v_res
        e = rep[pol]
        assert e.var_if == pytest.approx(v_if, abs=1e-12)
        assert e.se == pytest.approx(np.sqrt(v_if + var_cal[j]), abs=1e-12)
        df = (v_if + var_cal[j]) ** 2 / (max(v_if - v_res, 0.0) ** 2 / 5 + v_res**2 / (m - 1)
                                         + var_cal[j] ** 2 / 2)
        # the split adds no df beyond the 6 prompts' G − 1 = 5 (or the plain Satterthwaite value
        # with the jackknife's, when larger): both parts rest on the same prompts
        plain = (v_if + var_cal[j]) ** 2 / (v_if**2 / 5 + var_cal[j] ** 2 / 2)
        df = min(df, max(plain, 5.0))
        assert e.df == pytest.approx(df, rel=1e-10)
        q = stats.t.ppf(0.975, df)
        # the t interval, reported cut to the label scale [0, 1] where it leaves it (its uncut ends
        # are in the diagnostics)
        lo, hi = full[pol] - q * e.se, full[pol] + q * e.se
        assert e.ci_low == pytest.approx(max(lo, 0.0), abs=1e-12)
        assert e.ci_high == pytest.approx(min(hi, 1.0), abs=1e-12)
        assert e.diagnostics["interval_clipped"] == (lo < 0 or hi > 1)
        if e.diagnostics["interval_clipped"]:
            assert e.diagnostics["ci_low_unclipped"] == pytest.approx(lo, abs=1e-12)
            assert e.diagnostics["ci_high_unclipped"] == pytest.approx(hi, abs=1e-12)


def test_direct_estimate_function_by_hand():
    reward = np.array([0.2, 0.4, 0.6, 0.8, 0.5, 0.5])
    resid = np.array([0.1, 0.0, -0.3, 0.0, 0.2, 0.0])
    labelled = np.array([1, 0, 1, 0, 1, 0], bool)
    group = np.array([0, 0, 0, 0, 1, -1])
    est = direct_estimate(reward, resid, labelled, group, 2)
    # policy 0: mean R = 0.5, mean residual over its 2 labelled rows = -0.1
    assert est.values[0] == pytest.approx(0.4)
    assert est.values[1] == pytest.approx(0.7)
    # φ_i = (R_i − 0.5) + (L_i / p_L)(e_i − ē) with p_L = 1/2, ē = −0.1 (centred residual term);
    # policy 1 has one labelled row: e − ē = 0 and R − mean R = 0
    expected = [0.2 - 0.5 + 2 * (0.1 + 0.1), 0.4 - 0.5, 0.6 - 0.5 + 2 * (-0.3 + 0.1), 0.8 - 0.5, 0.0]
    np.testing.assert_allclose(est.influence[:5], expected, atol=1e-15)
    assert est.influence[5] == 0.0 and est.group[5] == -1
    assert est.n.tolist() == [4, 1] and est.n_labels.tolist() == [2, 1]
    plain = direct_estimate(reward, resid, labelled, group, 2, augment=False)
    assert plain.values[0] == pytest.approx(0.5)


@pytest.mark.parametrize("seed", range(3))
def test_cluster_variance_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    n = 200
    cluster = rng.integers(0, 40, n)
    x = rng.normal(size=n) + 0.5 * rng.normal(size=40)[cluster]
    fit = sm.OLS(x, np.ones(n)).fit(cov_type="cluster", cov_kwds={"groups": cluster})
    ours, g = cluster_variance(x - x.mean(), cluster)
    assert g == len(np.unique(cluster))
    assert ours == pytest.approx(fit.cov_params()[0, 0], rel=1e-10)


def test_jackknife_and_df_formulas():
    reps = np.array([[1.0, 2.0], [1.5, 2.0], [0.5, 2.6], [1.0, 1.4]])
    k = 4
    expected = (k - 1) / k * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    np.testing.assert_allclose(jackknife_variance(reps), expected)
    assert satterthwaite_df(0.0, 1.0, 50, 5) == pytest.approx(4.0)
    assert satterthwaite_df(2.0, 0.0, 50, 5) == 49.0


def test_holm_matches_statsmodels():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.001, 0.2, 0.012, 0.04, 0.03, 0.5])
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])


def test_contrast_is_paired_by_prompt_and_cancels_shared_calibration():
    sim = cje.synthetic.make_direct_eval(600, rng=3)
    rep = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    c = rep.contrasts().set_index(["policy_a", "policy_b"]).loc[("base", "improved")]
    a, b = rep["base"], rep["improved"]
    assert c.estimate == pytest.approx(a.estimate - b.estimate, abs=1e-12)
    # independent variances would add; pairing by prompt removes the shared prompt difficulty
    assert c.var_if < a.var_if + b.var_if
    assert c.n_shared_prompts == 600


def test_contrast_by_hand_on_12_rows():
    """Δ = ψ_A − ψ_B: φ_Δ per prompt = φ_A/n_A − φ_B/n_B; jackknife on ψ_A^(−k) − ψ_B^(−k)."""
    rep = cje.analyze(TWELVE, judge_scale=(0, 1), label_scale=(0, 1), n_folds=3, mode="monotone")
    fold_of = _folds_of_twelve()
    full = _hand_direct(TWELVE, fold_of, set())
    reps = [_hand_direct(TWELVE, fold_of, {k}) for k in range(3)]
    diffs = np.array([r["A"] - r["B"] for r in reps])
    var_cal = 2 / 3 * np.sum((diffs - diffs.mean()) ** 2)
    phi, res = _hand_phi(TWELVE, fold_of, full)
    c = np.array([phi["A"][p] / 6 - phi["B"][p] / 6 for p in sorted(fold_of)])
    # each policy's own residual part (4 labelled prompts each) with its factor 4/3 in place of
    # the pair's 6/5, taken prompt by prompt (the two sides' parts on a shared prompt enter as
    # their difference), and as two Satterthwaite components with 3 df each, scaled to sum to it
    r = {pol: np.array([res[pol].get(p, 0.0) / 6 for p in sorted(fold_of)]) for pol in "AB"}
    ss = {pol: r[pol] @ r[pol] for pol in "AB"}
    both = np.sqrt(4 / 3) * r["A"] - np.sqrt(4 / 3) * r["B"]
    scale = (both @ both) / (4 / 3 * (ss["A"] + ss["B"]))
    v_res = {pol: scale * 4 / 3 * ss[pol] for pol in "AB"}
    var_if = 6 / 5 * (np.sum(c**2) - (r["A"] - r["B"]) @ (r["A"] - r["B"])) + both @ both
    row = rep.contrasts().iloc[0]
    assert (row.policy_a, row.policy_b) == ("A", "B")
    assert row.estimate == pytest.approx(full["A"] - full["B"], abs=1e-12)
    assert row.var_if == pytest.approx(var_if, abs=1e-12)
    assert row.var_cal == pytest.approx(var_cal, abs=1e-12)
    rest = max(var_if - v_res["A"] - v_res["B"], 0.0)
    df = (var_if + var_cal) ** 2 / (rest**2 / 5 + v_res["A"] ** 2 / 3 + v_res["B"] ** 2 / 3
                                    + var_cal**2 / 2)
    plain = (var_if + var_cal) ** 2 / (var_if**2 / 5 + var_cal**2 / 2)
    df = min(df, max(plain, 5.0))  # no df beyond the pair's 6 prompts (or the plain value)
    t = row.estimate / np.sqrt(var_if + var_cal)
    assert row.p_value == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
