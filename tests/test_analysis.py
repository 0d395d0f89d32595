"""End-to-end behaviour of cje.analyze: separate calibration data, policy selection, reports."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

import cje
from cje.cli import main


@pytest.fixture(scope="module")
def sim():
    return cje.synthetic.make_direct_eval(500, oracle_fraction=0.2, rng=21)


def _split(sim):
    data = sim.data.assign(oracle_label=np.nan)
    cal = sim.data[sim.data.oracle_label.notna()][["prompt_id", "judge_score", "oracle_label"]]
    return data, cal


def test_calibration_rows_train_the_calibrator_only(sim):
    data, cal = _split(sim)
    rep = cje.analyze(data, calibration=cal, judge_scale=(0, 10), label_scale=(1, 5),
                      mode="monotone")
    assert rep.calibration.n_labels == len(cal)
    assert {e.n for e in rep.estimates} == {500}  # calibration rows are not evaluated
    # with no labels of their own, each estimate is the plug-in mean of the isotonic fit
    f = IsotonicRegression(out_of_bounds="clip").fit(cal.judge_score, cal.oracle_label)
    for e in rep.estimates:
        s = data.judge_score[data.policy == e.policy]
        assert e.estimate == pytest.approx(f.predict(s).mean(), abs=1e-10)
        assert e.status == "CAUTION" and e.n_labels == 0
        assert e.calibration_share > 0.5  # calibration is then most of the uncertainty


def test_calibration_file_from_the_cli(sim, tmp_path, capsys):
    data, cal = _split(sim)
    data.to_csv(tmp_path / "eval.csv", index=False)
    cal.to_csv(tmp_path / "cal.csv", index=False)
    code = main(["analyze", str(tmp_path / "eval.csv"), "--calibration", str(tmp_path / "cal.csv"),
                 "--judge-scale", "0", "10", "--label-scale", "1", "5", "--format", "json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["calibration"]["n_labels"] == len(cal)


def test_policies_subset_keeps_calibration_from_all(sim):
    full = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    sub = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5), policies=["base", "small"])
    assert [e.policy for e in sub.estimates] == ["base", "small"]
    assert len(sub.pairs) == 1
    assert sub["base"].estimate == pytest.approx(full["base"].estimate, abs=1e-12)
    with pytest.raises(cje.CJEInputError, match="Policy 'nope' has no rows"):
        cje.analyze(sim.data, policies=["nope"])


def test_report_frames_and_json_round_trip(sim):
    rep = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    df = rep.to_pandas()
    assert list(df.policy) == [e.policy for e in rep.estimates]
    assert {"estimate", "ci_low", "ci_high", "se", "calibration_share", "status", "reasons",
            "naive_estimate"} <= set(df.columns)
    np.testing.assert_allclose(df.se**2, df.var_if + df.var_cal, rtol=1e-12)
    pl_df = rep.to_polars()
    assert pl_df.height == len(df)
    c = rep.contrasts()
    assert len(c) == 10 and (c.p_holm >= c.p_value).all()
    back = cje.Report.from_json(rep.to_json())
    assert back == rep
    assert isinstance(back.estimates[0].reasons, tuple)
    # results are frozen
    with pytest.raises(AttributeError):
        rep.alpha = 0.1  # type: ignore[misc]


def test_alpha_changes_interval_width(sim):
    a = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))["base"]
    b = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5), alpha=0.2)["base"]
    assert a.estimate == b.estimate and a.se == b.se
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low)
    assert "80% CI" in cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5),
                                  alpha=0.2).summary()


def test_out_of_range_scores_refuse_the_level():
    rng = np.random.default_rng(0)
    n = 400
    s_a = rng.uniform(0.4, 1.0, n)  # labelled policy covers [0.4, 1]
    s_b = rng.uniform(0.0, 0.5, n)  # most of b's scores fall below the labelled range
    df = pd.DataFrame({
        "prompt_id": [f"p{i}" for i in range(n)] * 2,
        "policy": ["a"] * n + ["b"] * n,
        "judge_score": np.r_[s_a, s_b],
        "oracle_label": np.r_[np.clip(s_a + rng.normal(0, 0.1, n), 0, 1), [np.nan] * n],
    })
    rep = cje.analyze(df, judge_scale=(0, 1), label_scale=(0, 1))
    assert rep["a"].status == "OK"
    assert rep["b"].status == "REFUSED"
    assert rep["b"].diagnostics["out_of_range_share"] > 0.5
    assert "outside the labelled range" in rep["b"].reasons[-1]


def test_progress_bar_over_the_jackknife(capsys):
    sim = cje.synthetic.make_direct_eval(300, rng=3)
    quiet = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                        progress=False)
    assert capsys.readouterr().err == ""
    shown = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                        progress=True)
    err = capsys.readouterr().err
    assert "OUA jackknife" in err and "5/5" in err
    assert shown == quiet  # the bar never changes a number
    with pytest.raises(cje.CJEInputError, match="progress must be True, False or None"):
        cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                    progress="yes")


def test_offpolicy_progress_bar(capsys):
    sim = cje.synthetic.make_offpolicy_eval(300, rng=4)
    cje.analyze(sim.logged, estimator="snips", progress=True, n_folds=3)
    err = capsys.readouterr().err
    assert "OUA jackknife" in err and "3/3" in err
