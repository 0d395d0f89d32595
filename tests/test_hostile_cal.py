"""Hostile inputs to calibration, probes, transport audits and the status gates (never a wrong
OK): each test was built to trip a defect found from outside, on a data-generating process of
its own (not cje.synthetic)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.cli import main

SCALES = {"judge_scale": (0, 10), "label_scale": (0, 1)}


def _judge(q: np.ndarray, pol: str, rng: np.random.Generator) -> np.ndarray:
    """A 0–10 judge of quality q that inflates policy B by 2.5 points (transport fails)."""
    bonus = 2.5 if pol == "B" else 0.0
    return np.clip(np.round(10 * q + rng.normal(0, 1, q.size) + bonus), 0, 10)


def _data(n: int, policies: tuple[str, ...] = ("A", "B"), labelled: tuple[str, ...] = ("A",),
          frac: float = 0.25, seed: int = 0, prefix: str = "p") -> pd.DataFrame:
    """Quality q ~ Beta(2, 2) per response, label Y ~ Bernoulli(q), judge :func:`_judge`."""
    rng = np.random.default_rng(seed)
    parts = []
    for pol in policies:
        q = rng.beta(2, 2, n)
        y = (rng.uniform(size=n) < q).astype(float)
        lab = (rng.uniform(size=n) < frac) & (pol in labelled)
        parts.append(pd.DataFrame({"prompt_id": [f"{prefix}{i}" for i in range(n)], "policy": pol,
                                   "judge_score": _judge(q, pol, rng),
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _probe(n: int, seed: int = 1, **kw) -> pd.DataFrame:
    return _data(n, ("B",), ("B",), frac=1.0, seed=seed, prefix="q", **kw)


# ---- a probe slice on a single prompt ---------------------------------------------------------
def test_probe_on_one_prompt_is_refused_not_ok():
    """40 probe labels all on one prompt: the probe part's variance cannot be estimated (one
    cluster). Before, it entered with variance 0: SE 0.019 instead of ~0.06, status OK and
    "B > A" in the ranking. Now: no standard error, REFUSED with the reason, out of the
    ranking and of the contrasts."""
    data = _data(400)
    one = _probe(40).assign(prompt_id="q0")
    rep = cje.analyze(data, probes={"B": one}, **SCALES)
    b = rep["B"]
    assert b.status == "REFUSED"
    assert np.isnan(b.se) and np.isnan(b.ci_low) and np.isnan(b.ci_high)
    assert any("lie on a single prompt" in r for r in b.reasons)
    assert all("B" not in tier for tier in rep.ranking)
    assert all("B" not in (c.policy_a, c.policy_b) for c in rep.pairs)
    # the same labels on 40 prompts: a standard error, not refused for it
    spread = cje.analyze(data, probes={"B": _probe(40)}, **SCALES)["B"]
    assert np.isfinite(spread.se) and spread.status != "REFUSED"
    # JSON keeps the NaN standard error
    assert np.isnan(cje.Report.from_json(rep.to_json())["B"].se)


# ---- a probe file of another policy -----------------------------------------------------------
@pytest.mark.parametrize(("column", "words"), [
    ("A", r"naming \['A'\]; row 0 \(prompt_id='q0'\) has 'A'"),
    ("b", r"'b' differs from 'B' only in case or spaces"),
    ("B ", r"'B ' differs from 'B' only in case or spaces"),
])
def test_probe_file_naming_another_policy_is_refused(column, words):
    """Before, ``load(policy=...)`` kept the file's own policy column and the pipeline used its
    rows as B's probe whatever they named: another policy's responses corrected B's level."""
    data = _data(300)
    with pytest.raises(cje.CJEInputError, match=words):
        cje.analyze(data, probes={"B": _probe(50).assign(policy=column)}, **SCALES)


def test_probe_file_holding_every_policy_is_refused():
    data = _data(300)
    both = pd.concat([_probe(30), _probe(30).assign(policy="A")], ignore_index=True)
    with pytest.raises(cje.CJEInputError, match=r"row 30 \(prompt_id='q0'\) has 'A'"):
        cje.analyze(data, probes={"B": both}, **SCALES)
    # the policy column naming the key itself, or no column at all, is accepted
    assert cje.analyze(data, probes={"B": _probe(50)}, **SCALES)["B"].n_labels == 50
    assert cje.analyze(data, probes={"B": _probe(50).drop(columns="policy")},
                       **SCALES)["B"].n_labels == 50


def test_cli_probe_of_another_policy_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    data, probe = tmp_path / "d.csv", tmp_path / "p.csv"
    _data(300).to_csv(data, index=False)
    _probe(50).assign(policy="A").to_csv(probe, index=False)
    argv = ["analyze", str(data), "--judge-scale", "0", "10", "--label-scale", "0", "1",
            "--probe", f"B={probe}"]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert re.search(r"probes\['B'\].*'policy' column naming \['A'\]", err), err


# ---- the probe's load notices ----------------------------------------------------------------
def test_probe_notices_reach_the_report():
    """Repeated (prompt_id, policy) rows of a probe without draw_idx are taken as draws; the
    load said so, but only the main data's notices reached the report."""
    data = _data(300)
    pr = _probe(20)
    rep = cje.analyze(data, probes={"B": pd.concat([pr, pr])}, **SCALES)
    assert any(n.startswith("probes['B']: 20 rows repeat a (prompt_id, policy) pair")
               for n in rep.notices)


# ---- transport_margin as wide as the scale ----------------------------------------------------
@pytest.mark.parametrize("margin", [1.0, 3.5, 1e9])
def test_transport_margin_at_least_the_scale_width_is_refused(margin):
    """Before, transport_margin=1e9 graded a probe whose labels sit 0.13 below the calibrated
    judge as PASS ("the judge-only calibration passed the transport audit"); with
    probe_correction=False that PASS made an uncorrected, biased level OK."""
    data = _data(300)
    with pytest.raises(cje.CJEInputError, match=r"transport_margin=.* is at least the width of "
                                                r"the label scale \(0, 1\).*transport_margin=0\.05"):
        cje.analyze(data, probes={"B": _probe(50)}, transport_margin=margin,
                    probe_correction=False, **SCALES)
    # a margin below the width still grades
    rep = cje.analyze(data, probes={"B": _probe(50)}, transport_margin=0.05, **SCALES)
    assert rep.audits[0].verdict in ("FAIL", "INCONCLUSIVE")


# ---- RewardCalibrator.fit: prompts, folds and covariates --------------------------------------
def _sy(n: int = 40):
    rng = np.random.default_rng(0)
    s = rng.integers(0, 11, n).astype(float)
    return s, np.clip(s / 10 + rng.normal(0, 0.2, n), 0, 1)


@pytest.mark.parametrize(("kw", "words"), [
    # before: IndexError from add.reduceat (40 labelled rows passed the old "4 rows" check)
    ({"prompt_id": np.zeros(40)}, r"at least 4 prompts; got 1 prompt\(s\) \(40 labelled rows\)"),
    # before: rows of fold -1 were never left out and their out-of-fold predictions were
    # np.empty's leftovers, returned as numbers
    ({"folds": np.where(np.arange(40) < 5, -1, np.arange(40) % 3)},
     r"whole numbers 0..K-1 on labelled rows; row 0 has -1"),
    # before: 0.5 truncated to 0 silently
    ({"folds": np.arange(40) % 3 + 0.5}, r"row 0 has 0.5"),
    # before: IndexError (empty fold fitted)
    ({"folds": np.where(np.arange(40) % 2 == 0, 0, 3)}, r"fold\(s\) \[1, 2\] with no labelled row"),
    ({"folds": np.zeros(40, int)}, r"got 1 fold\(s\)"),
    ({"folds": np.arange(10) % 3}, r"folds must have one value per judge score"),
    ({"prompt_id": np.arange(10)}, r"prompt_id must have one value per judge score"),
    # before: accepted; a prompt's other rows trained its "out-of-fold" prediction
    ({"prompt_id": np.arange(40) // 4, "folds": np.arange(40) % 2},
     r"every row of a prompt the same fold"),
])
def test_reward_calibrator_refuses_bad_prompts_and_folds(kw, words):
    from cje.calibration import RewardCalibrator

    s, y = _sy()
    with pytest.raises(cje.CJEInputError, match=words):
        RewardCalibrator(mode="monotone").fit(s, y, **kw)


def test_reward_calibrator_good_folds_match_sklearn():
    """Folds per prompt are accepted, and each fold-deleted fit is scikit-learn's isotonic
    regression on the other folds (the oracle)."""
    from sklearn.isotonic import IsotonicRegression

    from cje.calibration import RewardCalibrator

    s, y = _sy()
    pid = np.arange(40) // 4
    folds = pid % 3
    cal = RewardCalibrator(mode="monotone").fit(s, y, prompt_id=pid, folds=folds)
    assert cal.n_folds_ == 3
    grid = np.linspace(-1, 11, 25)
    for k in range(3):
        keep = folds != k
        ref = IsotonicRegression(out_of_bounds="clip").fit(s[keep], y[keep]).predict(grid)
        np.testing.assert_allclose(cal.predictor(frozenset({k}))(grid), ref, rtol=0, atol=1e-12)
        ref_oof = IsotonicRegression(out_of_bounds="clip").fit(s[keep], y[keep]).predict(s[~keep])
        np.testing.assert_allclose(cal.predict_oof()[~keep], ref_oof, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("cov", "words"), [
    # before: a NaN covariate was fitted silently (NaN spline knots)
    (np.where(np.arange(40) == 3, np.nan, np.arange(40.0)), r"finite on labelled rows; row 3 has \[nan\]"),
    (np.where(np.arange(40) == 5, np.inf, np.arange(40.0)), r"row 5 has \[inf\]"),
    (np.array(["a"] * 40), r"covariates must be numeric"),
    (np.zeros((40, 1, 1)), r"got shape \(40, 1, 1\)"),
])
def test_reward_calibrator_refuses_bad_covariates(cov, words):
    from cje.calibration import RewardCalibrator

    s, y = _sy()
    with pytest.raises(cje.CJEInputError, match=words):
        RewardCalibrator(mode="auto").fit(s, y, covariates=cov)


# ---- contrasts with a level the level gate refused ---------------------------------------------
def test_transport_fail_level_enters_no_contrast_and_no_better_line():
    """A and B truly equal; the judge inflates B by 2.5 points and only A is labelled. With an
    audit-only probe (probe_correction=False) B's audit FAILs and its level is REFUSED — but
    before, its contrast with A was still computed, significant, and the summary printed
    "Better …: B > A". In 300 replicates of this design B was refused in 203, and among those
    the A − B contrast was significant in 80% ± 2.8% (Monte Carlo SE) though the truth is
    equal."""
    data = _data(400, seed=0)
    rep = cje.analyze(data, probes={"B": _probe(50, seed=100)}, transport_margin=0.05,
                      probe_correction=False, **SCALES)
    assert rep.audits[0].verdict == "FAIL"
    assert rep["B"].status == "REFUSED"
    assert rep.pairs == ()
    assert "B > A" not in rep.summary()
    assert rep.ranking == (("A",),)


# ---- a residual correction from few own labels ------------------------------------------------
def _equal_pair(m_b: int, seed: int, one_prompt: bool = False) -> pd.DataFrame:
    """A and B truly equal (the judge transports: no bonus); A has 60 labels, B ``m_b``."""
    rng = np.random.default_rng(seed)
    parts = []
    for pol in ("A", "B"):
        q = rng.beta(2, 2, 300)
        s = np.clip(np.round(10 * q + rng.normal(0, 1, 300)), 0, 10)
        y = (rng.uniform(size=300) < q).astype(float)
        parts.append(pd.DataFrame({"prompt_id": [f"p{i}" for i in range(300)], "policy": pol,
                                   "judge_score": s, "oracle_label": y}))
    d = pd.concat(parts, ignore_index=True)
    keep = np.zeros(600, bool)
    keep[rng.choice(300, 60, replace=False)] = True
    if one_prompt:  # B's labelled rows: m_b draws of one prompt
        b = pd.DataFrame({"prompt_id": "p0", "policy": "B", "draw_idx": np.arange(1, m_b + 1),
                          "judge_score": 5.0, "oracle_label": rng.integers(0, 2, m_b).astype(float)})
        d = d.assign(draw_idx=0, oracle_label=d.oracle_label.where(keep))
        return pd.concat([d, b], ignore_index=True)
    keep[300 + rng.choice(300, m_b, replace=False)] = True
    return d.assign(oracle_label=d.oracle_label.where(keep))


def test_one_own_label_is_refused_not_ok():
    """B's level is mean f(S) + its one residual (±0.4 here), whose variance term was exactly
    0: before, SE ≈ 0.04, OK in 20% of 200 replicates of this design, interval coverage 0.38 ±
    0.03 and A − B "significant" in 46% though A and B are equal. Now: no standard error,
    REFUSED, no contrast."""
    rep = cje.analyze(_equal_pair(1, seed=5), **SCALES)
    b = rep["B"]
    assert b.n_labels == 1 and b.status == "REFUSED" and np.isnan(b.se)
    assert any("all on a single prompt" in r for r in b.reasons)
    assert rep.pairs == () and rep.ranking == (("A",),)


def test_own_labels_on_one_prompt_are_refused():
    rep = cje.analyze(_equal_pair(8, seed=6, one_prompt=True), **SCALES)
    b = rep["B"]
    assert b.n_labels == 8 and b.status == "REFUSED" and np.isnan(b.se)
    assert any("8 own oracle label(s), all on a single prompt" in r for r in b.reasons)


@pytest.mark.parametrize(("m_b", "status"), [(3, "CAUTION"), (9, "CAUTION"), (10, "OK")])
def test_few_own_labels_caution(m_b, status):
    """2–9 own labels: CAUTION with the reason (their intervals covered 0.67–0.83 in 200
    replicates each; see cje.pipeline.core.MIN_OWN_LABELS)."""
    rep = cje.analyze(_equal_pair(m_b, seed=7), **SCALES)
    b = rep["B"]
    assert b.n_labels == m_b
    assert (b.status == "CAUTION") == (status == "CAUTION"), b.reasons
    assert any(f"only {m_b} of its own oracle labels" in r for r in b.reasons) == (status == "CAUTION")
    assert np.isfinite(b.se)
    # augment=False has no residual term: nothing to caution about
    from cje.estimators import DirectEstimator

    plain = cje.analyze(_equal_pair(m_b, seed=7), estimator=DirectEstimator(augment=False), **SCALES)
    assert not any("own oracle labels" in r for r in plain["B"].reasons)


def test_offpolicy_probe_on_one_prompt_is_refused():
    """The logged pipeline's probe correction goes through the same combine() and core: a probe
    of an off-policy target on one prompt gets no standard error either (before: OK, its probe
    part with variance 0)."""
    sim = cje.synthetic.make_offpolicy_eval(300, rng=0)
    psim = cje.synthetic.make_offpolicy_eval(40, fresh_oracle_fraction=1.0, rng=1)
    one = psim.fresh[psim.fresh.policy == "mild"].assign(prompt_id="one")
    one = one.assign(draw_idx=np.arange(len(one)))
    rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator="stacked-dr",
                      probes={"mild": one}, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    e = rep["mild"]
    assert e.status == "REFUSED" and np.isnan(e.se)
    assert any("lie on a single prompt" in r for r in e.reasons)
    assert all("mild" not in (c.policy_a, c.policy_b) for c in rep.pairs)


@pytest.mark.parametrize("key", ["b", " B", "B\t"])
def test_probe_key_near_miss_names_the_policy(key):
    with pytest.raises(cje.CJEInputError, match=r"which has no rows.*Did you mean 'B'"):
        cje.analyze(_data(300), probes={key: _probe(50).drop(columns="policy")}, **SCALES)


# ---- the reliability table of a judge on a coarse grid -----------------------------------------
@pytest.mark.parametrize("grid", [(0.0, 10.0), (1.0, 2.0, 3.0, 4.0, 5.0), tuple(range(10))])
def test_reliability_one_bin_per_score_on_a_coarse_grid(grid):
    """Before, quantile edges put a two-valued judge's rows in one bin spanning [0, 10] (the
    table said nothing about either score) and merged the top score of a 5-point judge into
    the bin below. Oracle: pandas' groupby on the labelled rows."""
    from cje.calibration import RewardCalibrator

    rng = np.random.default_rng(4)
    s = rng.choice(np.array(grid), 400, p=np.linspace(1, 3, len(grid)) / np.linspace(1, 3, len(grid)).sum())
    y = (rng.uniform(size=400) < (s - min(grid) + 1) / (max(grid) - min(grid) + 2)).astype(float)
    cal = RewardCalibrator(mode="monotone").fit(s, y)
    rows = cal.reliability_rows(n_bins=10)
    ref = pd.DataFrame({"s": s, "y": y}).groupby("s")["y"].agg(["size", "mean"])
    assert [r["judge_low"] for r in rows] == [r["judge_high"] for r in rows] == ref.index.tolist()
    assert [r["n"] for r in rows] == ref["size"].tolist()
    np.testing.assert_allclose([r["mean_label"] for r in rows], ref["mean"], rtol=0, atol=1e-12)
    # an isotonic fit on a grid is the pooled label mean per score (here increasing): equal
    np.testing.assert_allclose([r["mean_calibrated"] for r in rows],
                               cal.predict(ref.index.to_numpy()), rtol=0, atol=1e-12)


# ---- constant labels where they train nothing ----------------------------------------------
def test_a_probe_with_constant_labels_is_used_not_refused():
    """A strong policy's binary probe labels may all be 1; the probe trains no calibrator, so
    it is not refused for it (the load used to refuse it as if it were the calibration data).
    The main data's labels still must vary (next test)."""
    probe = _probe(40).assign(oracle_label=1.0)
    rep = cje.analyze(_data(400), probes={"B": probe}, transport_margin=0.05, **SCALES)
    audit = next(a for a in rep.audits if a.policy == "B")
    assert audit.n == 40 and np.isfinite(rep["B"].se)
    # and calibration rows whose labels are constant, added to varying ones, are accepted too
    extra = _data(30, ("A",), ("A",), frac=1.0, seed=5, prefix="c").assign(oracle_label=0.0)
    assert np.isfinite(cje.analyze(_data(400), calibration=extra, **SCALES)["A"].se)


def test_constant_labels_that_train_the_calibrator_are_refused():
    data = _data(400).assign(oracle_label=lambda d: d.oracle_label.where(d.oracle_label.isna(), 1.0))
    with pytest.raises(cje.CJEInputError, match=r"single value \(1\) on all \d+ labelled rows"):
        cje.analyze(data, **SCALES)
    # the same data loads (nothing is wrong with it as data)
    assert cje.load(data, **SCALES).n_labels > 0


@pytest.mark.parametrize("engine", ["polars", "dask"])
@pytest.mark.parametrize(("m_b", "want"), [(1, "REFUSED"), (9, "CAUTION")])
def test_out_of_core_engines_gate_own_labels_as_in_memory(tmp_path, engine, m_b, want):
    """The out-of-core direct shape applies the same own-label gate: before, one own label
    gave B OK with SE 0.046 (estimate 0.726, truth 0.5) on polars, REFUSED in memory. (9 own
    labels, not 5: since the residual part has its own factor and degrees of freedom, 5 binary
    labels of this seed give an interval wider than the scale, which the sanity gate refuses.)"""
    pytest.importorskip(engine)
    data = _equal_pair(m_b, seed=1)
    for i, part in enumerate(np.array_split(np.arange(len(data)), 3)):
        data.iloc[part].to_parquet(tmp_path / f"part{i}.parquet")
    mem = cje.analyze(data, **SCALES)
    ooc = cje.analyze(str(tmp_path), engine=engine, **SCALES)
    for name in ("A", "B"):
        a, b = mem[name], ooc[name]
        assert (b.status, b.reasons) == (a.status, a.reasons)
        assert b.se == pytest.approx(a.se, rel=1e-9, nan_ok=True)
    assert ooc["B"].status == want
    assert [(c.policy_a, c.policy_b) for c in ooc.pairs] == [(c.policy_a, c.policy_b) for c in mem.pairs]


def test_probe_labels_repeated_on_few_prompts_are_counted_by_prompt():
    """30 probe labels as two draws on each of 15 prompts reached OK (labels counted, not
    prompts); repeated draws of a prompt are not independent, so the few-probe CAUTION counts
    prompts too."""
    one = _probe(15)
    twice = pd.concat([one.assign(draw_idx=0), _probe(15, seed=9).assign(draw_idx=1)],
                      ignore_index=True)
    rep = cje.analyze(_data(400), probes={"B": twice}, **SCALES)
    b = rep["B"]
    assert b.status == "CAUTION"
    assert any("30 probe labels on only 15 prompts" in r for r in b.reasons), b.reasons
    # the same number of labels on 30 prompts: no such caution
    rep30 = cje.analyze(_data(400), probes={"B": _probe(30)}, **SCALES)
    assert not any("probe labels" in r and "fewer than" in r for r in rep30["B"].reasons)


@pytest.mark.parametrize("engine", ["memory", "polars", "dask"])
def test_a_scale_declared_in_other_units_draws_a_notice(tmp_path, engine):
    """0–1 labels declared label_scale=(0, 100) passed silently (the estimates, on the declared
    scale, then read as 0.5 "percent"); every engine now says so, with the scale they fit."""
    pytest.importorskip("polars" if engine == "memory" else engine)
    data = _data(200, labelled=("A", "B"))
    data.to_parquet(tmp_path / "d.parquet")
    rep = cje.analyze(str(tmp_path / "d.parquet"), engine=engine, judge_scale=(0, 100),
                      label_scale=(0, 100))
    notes = [n for n in rep.notices if "bottom tenth" in n]
    assert len(notes) == 2, rep.notices
    assert "All 400 judge scores lie in the bottom tenth of the declared judge_scale=(0, 100)" \
        in notes[0] and "declare judge_scale=(0, 10)" in notes[0]
    assert "oracle labels" in notes[1] and "declare label_scale=(0, 1)" in notes[1]
    # the scales that fit: no such notice
    ok = cje.analyze(str(tmp_path / "d.parquet"), engine=engine, **SCALES)
    assert not any("bottom tenth" in n for n in ok.notices)
