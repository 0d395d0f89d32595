"""Labels sampled with known probabilities: the ``label_probability`` column (issue #16, item 3).

* uniform designs (no column, or one value on every labelled row) are today's analysis, bit for
  bit (synthetic data and the Arena sample);
* a hand computation of the estimate and its SE on a tiny data set, with scikit-learn's weighted
  isotonic regression as the outside oracle for every fit (full, out-of-fold, fold-deleted);
* coverage by simulation under a non-uniform design: the π-weighted analysis covers, the
  analysis that ignores π is biased;
* bad input is refused naming the row and the fix.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError


def _drop_provenance(rep: cje.Report) -> dict:
    d = rep.to_dict()
    d.pop("provenance")
    return d


# ------------------------------------------------------------------------------ uniform = today
def test_uniform_design_is_bit_identical_synthetic() -> None:
    sim = cje.synthetic.make_direct_eval(600, oracle_fraction=0.1, rng=3)
    df = pd.DataFrame(sim.data)
    kw = dict(judge_scale=(0, 10), label_scale=(1, 5))
    today = _drop_provenance(cje.analyze(df, **kw))
    lab = df.oracle_label.notna().to_numpy()
    for pi in (np.full(len(df), 0.1),                         # the realised share
               np.full(len(df), 0.37)):                       # any constant: ratios only
        got = _drop_provenance(cje.analyze(df.assign(label_probability=pi), **kw))
        assert got == today
    # unlabelled rows: any value, and NaN (their probability is not used by the estimator): the
    # numbers are today's. The label-reach check reads them, though: where the design says a
    # policy's labels stand for far fewer rows than it has (unlabelled rows declared far less
    # likely to be labelled than the labelled ones; or, with NaN, π read as absolute: 0.5 where
    # 10% were labelled) the level is CAUTION with that reason, and nothing else changes.
    for pi in (np.where(lab, 0.2, np.linspace(0.01, 1, len(df))), np.where(lab, 0.5, np.nan)):
        rep = cje.analyze(df.assign(label_probability=pi), **kw)
        got, ref = _drop_provenance(rep), copy.deepcopy(today)
        for e_got, e_today in zip(got["estimates"], ref["estimates"], strict=True):
            extra = [r for r in e_got["reasons"] if r not in e_today["reasons"]]
            assert all("weighted by the labelling design" in r for r in extra)
            for k in ("status", "reasons"):
                e_got.pop(k), e_today.pop(k)
        assert got == ref


def test_uniform_design_is_bit_identical_arena() -> None:
    f = cje.datasets.arena().fresh_draws
    today = _drop_provenance(cje.analyze(f))
    got = _drop_provenance(cje.analyze(f.assign(label_probability=0.12)))
    assert got == today
    # the frames too (what a user compares)
    pd.testing.assert_frame_equal(cje.analyze(f.assign(label_probability=0.12)).to_pandas(),
                                  cje.analyze(f).to_pandas(), check_exact=True)


# ------------------------------------------------------------------------------ hand computation
def _tiny() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 40
    s = np.round(rng.uniform(0, 1, n), 2)
    y = np.clip(s + rng.normal(0, 0.2, n), 0, 1).round(3)
    lab = np.zeros(n, bool)
    lab[::3] = True  # 14 labelled rows
    pi = np.where(s > 0.5, 0.6, 0.2)
    return pd.DataFrame({"prompt_id": [f"p{i // 2}" for i in range(n)],  # 2 rows per prompt
                         "policy": np.where(np.arange(n) % 2 == 0, "a", "b"),
                         "judge_score": s, "oracle_label": np.where(lab, y, np.nan),
                         "label_probability": pi})


def test_hand_computation_estimate_and_se() -> None:
    """Every fit recomputed with scikit-learn's ``IsotonicRegression(sample_weight=1/π)``; the
    Hájek residual mean, the influence values, the clustered variance, the jackknife and the
    Satterthwaite t interval by their formulas (docs: Methods)."""
    from scipy import stats
    from sklearn.isotonic import IsotonicRegression

    from cje.data import prompt_folds
    from cje.pipeline.core import fold_plan

    df = _tiny()
    K = 3
    rep = cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1), n_folds=K, mode="monotone")
    ev = cje.load(df, judge_scale=(0, 1), label_scale=(0, 1))
    lab = ev.labelled
    s, y, w = ev.judge_score, ev.oracle_label, 1 / ev.label_probability
    # folds: the pipeline's fold plan of the labelled prompts (an input, not a computation)
    lab_prompt = np.zeros(ev.prompts.size, bool)
    lab_prompt[ev.prompt_code[lab]] = True
    k, folds, _ = fold_plan(ev.prompts[lab_prompt], np.ones(lab_prompt.sum(), bool), K, 0)
    assert k == K
    del prompt_folds
    fold_of_prompt = np.full(ev.prompts.size, -1)
    fold_of_prompt[lab_prompt] = folds
    fold = fold_of_prompt[ev.prompt_code]

    def fit(deleted: set[int]) -> IsotonicRegression:
        keep = lab & ~np.isin(fold, list(deleted))
        return IsotonicRegression(out_of_bounds="clip").fit(s[keep], y[keep], sample_weight=w[keep])

    def oof(deleted: set[int]) -> np.ndarray:
        out = np.full(s.size, np.nan)
        for f in range(K):
            rows = lab & (fold == f)
            d = deleted if (f in deleted or len(deleted | {f}) == K) else deleted | {f}
            out[rows] = fit(d).predict(s[rows])
        return out

    def values(deleted: set[int]) -> np.ndarray:
        r = fit(deleted).predict(s)
        e = y - oof(deleted)
        out = []
        for p in range(2):
            rows = ev.policy_code == p
            lp = rows & lab
            out.append(r[rows].mean() + np.sum(w[lp] * e[lp]) / np.sum(w[lp]))
        return np.array(out)

    psi = values(set())
    reps = np.array([values({d}) for d in range(K)])
    var_cal = (K - 1) / K * ((reps - reps.mean(0)) ** 2).sum(0)
    r = fit(set()).predict(s)
    e = y - oof(set())
    for p, name in enumerate(("a", "b")):
        rows = ev.policy_code == p
        lp = rows & lab
        n = rows.sum()
        ebar = np.sum(w[lp] * e[lp]) / np.sum(w[lp])
        phi = r[rows] - r[rows].mean()
        part = np.where(lab[rows], n / np.sum(w[lp]) * w[rows] * (np.nan_to_num(e[rows]) - ebar),
                        0.0)
        phi = phi + part
        cl = ev.prompt_code[rows]
        tot = pd.Series(phi).groupby(cl).sum().to_numpy()
        G = tot.size
        # the residual part (own labels, weighted): in place of G/(G−1) its own factor 1/d,
        # d = E[Σ_g (W_g(ē_g − ē_w))²] / Σ_g W_g² Var(ē_g) for prompts whose mean residuals ē_g
        # share one variance (W_g: the prompt's labelled weight; d = (m−1)/m at equal weights),
        # and a Satterthwaite component with (ΣW²)²/ΣW⁴ − 1 df
        ptot = pd.Series(part[lab[rows]]).groupby(cl[lab[rows]]).sum().to_numpy()
        W = pd.Series(w[rows][lab[rows]]).groupby(cl[lab[rows]]).sum().to_numpy()
        p_w = W / W.sum()
        d = 1 - 2 * np.sum(p_w**3) / np.sum(p_w**2) + np.sum(p_w**2)
        m_eff = np.sum(W**2) ** 2 / np.sum(W**4)
        assert m_eff < ptot.size - 0.5  # the weights differ: fewer effective prompts than labelled
        ss = np.sum(ptot**2) / n**2
        v_res = ss / d
        v_if = G / (G - 1) * (np.sum(tot**2) / n**2 - ss) + v_res
        se = np.sqrt(v_if + var_cal[p])
        df_ = (v_if + var_cal[p]) ** 2 / (max(v_if - v_res, 0.0) ** 2 / (G - 1)
                                          + v_res**2 / (m_eff - 1) + var_cal[p] ** 2 / (K - 1))
        # the split adds no df beyond the prompts' G − 1 (or the plain Satterthwaite value)
        plain = (v_if + var_cal[p]) ** 2 / (v_if**2 / (G - 1) + var_cal[p] ** 2 / (K - 1))
        df_ = min(df_, max(plain, G - 1))
        x = rep.estimates[p]
        assert x.policy == name
        assert x.estimate == pytest.approx(psi[p], abs=1e-12)
        assert x.var_cal == pytest.approx(var_cal[p], rel=1e-9, abs=1e-15)
        assert x.var_if == pytest.approx(v_if, rel=1e-9)
        assert x.se == pytest.approx(se, rel=1e-9)
        t = stats.t.ppf(0.975, df_)
        assert x.ci_low == pytest.approx(max(psi[p] - t * se, 0.0), abs=1e-9)
        assert x.ci_high == pytest.approx(min(psi[p] + t * se, 1.0), abs=1e-9)
    # the weights matter: the unweighted analysis differs
    plain = cje.analyze(df.drop(columns="label_probability"), judge_scale=(0, 1),
                        label_scale=(0, 1), n_folds=K, mode="monotone")
    assert abs(plain.estimates[0].estimate - rep.estimates[0].estimate) > 1e-4


def test_weighted_calibrator_matches_sklearn_and_preserves_weighted_mean() -> None:
    from sklearn.isotonic import IsotonicRegression

    from cje.calibration.reward import RewardCalibrator

    rng = np.random.default_rng(1)
    s = np.round(rng.uniform(0, 1, 400), 2)
    y = s**2 + rng.normal(0, 0.1, 400)
    w = rng.uniform(1, 6, 400)
    cal = RewardCalibrator(mode="monotone").fit(s, y, sample_weight=w)
    ref = IsotonicRegression(out_of_bounds="clip").fit(s, y, sample_weight=w)
    grid = np.linspace(-0.1, 1.1, 61)
    np.testing.assert_allclose(cal.predict(grid), ref.predict(grid), rtol=0, atol=1e-12)
    f = cal.predict(s)
    # mean-preserving in the population: the weighted means agree
    assert np.sum(w * f) / w.sum() == pytest.approx(np.sum(w * y) / w.sum(), abs=1e-12)
    with pytest.raises(CJEInputError, match="mode='monotone'"):
        RewardCalibrator(mode="auto").fit(s, y, sample_weight=w)


# ------------------------------------------------------------------------------ coverage
def _design_draw(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, float]:
    """One policy; a hidden prompt feature X (half the prompts) the judge misses: Y = S + 0.3·X
    + noise. The labelling design sends X = 1 rows with probability 0.2, others 0.05 (e.g.
    'flagged' prompts reviewed more): the labelled rows over-represent X = 1."""
    x = rng.uniform(size=n) < 0.5
    s = rng.uniform(0.0, 0.6, n)
    y = s + 0.3 * x + rng.uniform(-0.1, 0.1, n)  # in [−0.1, 1.0]: label scale (−0.1, 1)
    pi = np.where(x, 0.2, 0.05)
    lab = rng.uniform(size=n) < pi
    truth = 0.3 + 0.3 * 0.5
    return pd.DataFrame({"prompt_id": np.arange(n).astype(str), "policy": "m", "judge_score": s,
                         "oracle_label": np.where(lab, y, np.nan), "label_probability": pi}), truth


def test_coverage_under_a_non_uniform_design() -> None:
    """200 replicates of 1,200 rows. Monte Carlo SE of a coverage near 0.95 is
    sqrt(0.95·0.05/200) = 0.015: the π-weighted coverage must be ≥ 0.90 (3.2 SE below 0.95)
    and ≤ 0.99. The analysis that ignores π over-weights X = 1 residuals (0.8 of the labels
    instead of 0.5): bias ≈ 0.3·(0.8 − 0.5) = 0.09, about 3 SEs; required: mean bias > 0.05 and
    coverage < 0.5 (far outside the MC error)."""
    rng = np.random.default_rng(2024)
    cover_w, cover_n, bias_w, bias_n = [], [], [], []
    for _ in range(200):
        df, truth = _design_draw(rng, 1200)
        kw = dict(judge_scale=(0, 0.6), label_scale=(-0.1, 1.0), mode="monotone")
        w = cje.analyze(df, **kw).estimates[0]
        n = cje.analyze(df.drop(columns="label_probability"), **kw).estimates[0]
        cover_w.append(w.ci_low <= truth <= w.ci_high)
        cover_n.append(n.ci_low <= truth <= n.ci_high)
        bias_w.append(w.estimate - truth)
        bias_n.append(n.estimate - truth)
    cw, cn = np.mean(cover_w), np.mean(cover_n)
    assert 0.90 <= cw <= 0.99, cw
    # the weighted estimate is unbiased within 4 MC SEs
    assert abs(np.mean(bias_w)) < 4 * np.std(bias_w) / np.sqrt(200)
    assert np.mean(bias_n) > 0.05 and cn < 0.5, (np.mean(bias_n), cn)


# ------------------------------------------------------------------------------ bad input
def _base() -> pd.DataFrame:
    df = _tiny()
    return df


@pytest.mark.parametrize(("value", "row", "match"), [
    (1.5, 3, r"must lie in \(0, 1\]; row 3 \(prompt_id='p1'\) has 1.5"),
    (-0.1, 4, r"must lie in \(0, 1\]; row 4 \(prompt_id='p2'\) has -0.1"),
    (0.0, 3, r"must lie in \(0, 1\]; row 3 .* has 0"),          # a labelled row with π = 0
    (np.nan, 3, r"must be given on every labelled row; row 3 \(prompt_id='p1'\)"),
    (0.0, 4, r"No overlap of the labelling design.*row 4 \(prompt_id='p2'\)"),  # unlabelled, π = 0
    (np.inf, 5, r"must lie in \(0, 1\]; row 5"),
])
def test_bad_probabilities_name_the_row(value: float, row: int, match: str) -> None:
    df = _base()
    assert df.oracle_label.notna()[3] and df.oracle_label.isna()[4]
    df.loc[row, "label_probability"] = value
    with pytest.raises(CJEInputError, match=match):
        cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1))


def test_text_probability_is_refused() -> None:
    df = _base().astype({"label_probability": object})
    df.loc[2, "label_probability"] = "high"
    with pytest.raises(CJEInputError, match="label_probability"):
        cje.load(df, judge_scale=(0, 1), label_scale=(0, 1))


def test_stratum_must_share_its_probability() -> None:
    df = _base()
    df["label_stratum"] = np.where(df.judge_score > 0.5, "high", "low")
    cje.load(df, judge_scale=(0, 1), label_scale=(0, 1))  # consistent: fine
    i = int(np.flatnonzero(df.judge_score > 0.5)[1])
    j = int(np.flatnonzero(df.judge_score > 0.5)[0])
    df.loc[i, "label_probability"] = 0.3
    with pytest.raises(CJEInputError, match=rf"same on every row of a 'label_stratum'.*row {i} .*has "
                                            rf"0.3 but row {j} of the same stratum 'high' has 0.6"):
        cje.load(df, judge_scale=(0, 1), label_scale=(0, 1))


def test_unsupported_combinations_are_refused() -> None:
    df = _base()
    kw = dict(judge_scale=(0, 1), label_scale=(0, 1))
    with pytest.raises(CJEInputError, match="monotone calibration"):
        cje.analyze(df, mode="two_stage", **kw)
    other = df[df.policy == "a"].drop(columns="label_probability")  # (on prompts of its own:
    other = other.assign(prompt_id="new-" + other.prompt_id.astype(str))  # not a's labels again)
    with pytest.raises(CJEInputError, match="probes="):
        cje.analyze(df, probes={"a": other}, **kw)
    with pytest.raises(CJEInputError, match="calibration= data"):
        cje.analyze(df, calibration=df.drop(columns="label_probability"), **kw)
    # logged data: the off-policy residual terms are not weighted by π yet
    lg = cje.datasets.arena().logged
    lab = lg.oracle_label.notna()
    with pytest.raises(CJEInputError, match="direct mode"):
        cje.analyze(lg.assign(label_probability=np.where(np.arange(len(lg)) % 2, 0.5, 0.25)))
    # …but a uniform column on logged data is today's analysis
    assert lab.any()
    a = cje.analyze(lg.assign(label_probability=0.4)).to_dict()
    b = cje.analyze(lg).to_dict()
    a.pop("provenance"), b.pop("provenance")
    assert a == b


def test_auto_mode_uses_monotone_and_says_so() -> None:
    rep = cje.analyze(_base(), judge_scale=(0, 1), label_scale=(0, 1))
    assert rep.calibration.mode == "monotone"
    assert rep.calibration.requested_mode == "auto"
    assert any("label_probability" in n for n in rep.notices)
    assert rep.settings["label_probability"] is True


def test_cli_column_mapping(tmp_path) -> None:
    from cje.cli import main

    df = _base().rename(columns={"label_probability": "p_sent"})
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "r.json"
    code = main(["analyze", str(path), "--judge-scale", "0", "1", "--label-scale", "0", "1",
                 "--column", "label_probability=p_sent", "--format", "json", "--out", str(out)])
    assert code in (0, None)
    got = cje.Report.from_json(out.read_text())
    ref = cje.analyze(_base(), judge_scale=(0, 1), label_scale=(0, 1))
    assert [x.estimate for x in got.estimates] == [x.estimate for x in ref.estimates]


def test_zero_probability_on_a_policy_without_labels_is_allowed() -> None:
    """A policy none of whose rows could be labelled is analysed as a policy without labels
    (transport assumed, flagged); π = 0 there is no overlap failure of a labelled policy."""
    df = _base()
    b = (df.policy == "b").to_numpy()
    df.loc[b, "oracle_label"] = np.nan
    df.loc[b, "label_probability"] = 0.0
    rep = cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1))
    assert rep["b"].n_labels == 0 and rep["b"].status != "OK"
    # the same with b's π given: identical (unlabelled rows' π is not used)
    df.loc[b, "label_probability"] = 0.5
    other = cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1))
    assert [x.estimate for x in rep.estimates] == [x.estimate for x in other.estimates]


def test_design_on_probes_and_fresh_draws_is_refused() -> None:
    df = _base()
    plain = df.drop(columns="label_probability")
    with pytest.raises(CJEInputError, match=r"probes\['a'\] has a non-uniform"):
        cje.analyze(plain, probes={"a": df[df.policy == "a"]}, judge_scale=(0, 1),
                    label_scale=(0, 1))
    ds = cje.datasets.arena()
    fresh = ds.fresh_draws
    pi = np.where(np.arange(len(fresh)) % 2, 0.5, 0.25)
    with pytest.raises(CJEInputError, match="fresh_draws has a non-uniform"):
        cje.analyze(ds.logged, fresh_draws=fresh.assign(label_probability=pi),
                    estimator="dr-cpo")


def test_jsonl_and_parquet_read_the_column(tmp_path) -> None:
    df = _base()
    ref = cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1))
    for name, write in (("d.jsonl", lambda p: df.to_json(p, orient="records", lines=True)),
                        ("d.parquet", lambda p: df.to_parquet(p))):
        path = tmp_path / name
        write(path)
        got = cje.analyze(path, judge_scale=(0, 1), label_scale=(0, 1))
        assert [x.estimate for x in got.estimates] == [x.estimate for x in ref.estimates]
    # the flat table (cje convert) keeps a non-uniform design
    from cje.tables import flat_table

    t = flat_table(cje.load(df, judge_scale=(0, 1), label_scale=(0, 1)))
    np.testing.assert_array_equal(t.label_probability.to_numpy(), df.label_probability.to_numpy())


def test_monitor_refuses_a_non_uniform_design() -> None:
    sim = cje.synthetic.make_monitor_eval(n_windows=3, rows_per_window=200, labels_per_window=40,
                                          kind="none", change_at=None, rng=0)
    df = pd.DataFrame(sim.data)
    df["label_probability"] = np.where(np.arange(len(df)) % 2, 0.2, 0.4)
    with pytest.raises(CJEInputError, match="cje.monitor does not weight"):
        cje.monitor(df, window="window", judge_scale=sim.judge_scale,
                    label_scale=sim.label_scale)
