"""cje.bias.audit: runs every applicable test, per judge, Holm-adjusted; and `cje bias`."""

from __future__ import annotations

import json

import numpy as np
import pytest

import cje
from cje.cli import main
from cje.inference import holm
from cje.synthetic import make_pairwise_eval, make_panel_eval


@pytest.fixture(scope="module")
def pairs():
    return make_pairwise_eval(200, position_logodds=0.5, length_effect=0.0, rng=3).pairs


@pytest.fixture(scope="module")
def panel():
    return make_panel_eval(150, length_effect=0.3, self_preference=0.0, rng=4).data


def test_audit_pairs_and_panel_together(pairs, panel):
    with pytest.warns(cje.CJEWarning):  # low position consistency is reported as a warning
        a = cje.bias.audit(panel, pairs=pairs, n_bootstrap=300, rng=0)
    names = list(a.tests)
    assert names.count("verbosity") == panel["judge"].nunique()  # one per judge
    assert {"position", "verbosity (pairwise)", "self-preference"} <= set(names)
    np.testing.assert_allclose([r.p_holm for r in a.results], holm([r.p_value for r in a.results]))
    for r in a.results:
        assert r.flagged == (r.p_holm < 0.05 and r.details["practically_relevant"])
    by = dict(zip(names, a.results, strict=False))
    assert by["position"].flagged  # planted log-odds 0.5
    assert by["verbosity"].flagged  # planted 0.3 judge points per SD of log length
    assert not by["verbosity (pairwise)"].flagged  # none planted in the pairs
    # the pairs lack judge_family: that test is listed as skipped, with the missing column
    assert any("judge_family" in s for s in a.skipped)
    df = a.to_pandas()
    assert len(df) == len(a.results) and "test" in df.columns
    assert json.loads(a.to_json())["results"][0]["test"] == names[0]
    assert "FLAG" in a.summary() and "mitigation" in a.summary()


def test_audit_is_reproducible_and_detects_pairs_in_data(pairs):
    with pytest.warns(cje.CJEWarning):
        a = cje.bias.audit(pairs, n_bootstrap=200, rng=7)
    with pytest.warns(cje.CJEWarning):
        b = cje.bias.audit(pairs, n_bootstrap=200, rng=7)
    assert [r.ci_low for r in a.results] == [r.ci_low for r in b.results]


def test_audit_judge_column_and_errors(panel):
    renamed = panel.rename(columns={"judge": "grader"})
    a = cje.bias.audit(renamed, judge_column="grader")
    assert {r.judge for r in a.results if r.bias == "verbosity"} == set(panel["judge"])
    with pytest.raises(cje.CJEInputError, match="judge_column='nope' is not a column"):
        cje.bias.audit(panel, judge_column="nope")
    with pytest.raises(cje.CJEInputError, match="No bias test could run.*response_length"):
        cje.bias.audit(panel.drop(columns=["response_length", "judge_family"]))
    with pytest.raises(cje.CJEInputError, match="audit needs data"):
        cje.bias.audit()


@pytest.mark.filterwarnings("ignore::cje.errors.CJEWarning")
def test_cli_bias(panel, pairs, tmp_path, capsys):
    panel.to_csv(tmp_path / "scores.csv", index=False)
    pairs.to_json(tmp_path / "pairs.jsonl", orient="records", lines=True)
    assert main(["bias", str(tmp_path / "scores.csv"), "--pairs", str(tmp_path / "pairs.jsonl"),
                 "--bootstrap", "200"]) == 0
    out = capsys.readouterr().out
    assert "Judge bias audit" in out and "position" in out
    assert main(["bias", str(tmp_path / "scores.csv"), "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {r["test"] for r in got["results"]} == {"verbosity", "self-preference"}
    panel[["prompt_id", "judge_score"]].to_csv(tmp_path / "bad.csv", index=False)
    assert main(["bias", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cje: error: No bias test could run") and err.count("\n") == 1


def test_audit_progress_bar_counts_tests(capsys):
    from cje.synthetic.pairwise import make_pairwise_eval

    pairs = make_pairwise_eval(60, rng=5).pairs
    cje.bias.audit(pairs=pairs, n_bootstrap=50, rng=0, progress=True)
    err = capsys.readouterr().err
    assert "bias tests" in err and "3/3" in err  # position, pairwise verbosity, self-preference


def test_audit_reads_a_directory_of_fresh_draws(tmp_path):
    """A cje-eval fresh-draws directory (``<policy>_responses.jsonl``) is read as cje.load reads
    it, with the response length derived from the text (a word count); nothing is dropped."""
    import pandas as pd

    sim = cje.synthetic.make_direct_eval(120, oracle_fraction=1.0, length_effect=0.3, rng=2)
    df = sim.data
    df = df.assign(response=[" ".join(["w"] * int(n)) for n in df["response_length"]],
                   judge_score=(df["judge_score"] - sim.judge_scale[0]) / np.ptp(sim.judge_scale),
                   oracle_label=(df["oracle_label"] - sim.label_scale[0]) / np.ptp(sim.label_scale))
    for pol, part in df.groupby("policy"):
        part[["prompt_id", "response", "judge_score", "oracle_label"]].to_json(
            tmp_path / f"{pol}_responses.jsonl", orient="records", lines=True)
    from_dir = cje.bias.audit(tmp_path)
    from_frame = cje.bias.audit(df.drop(columns="response"))
    a, b = (next(r for r in x.results if r.bias == "verbosity") for x in (from_dir, from_frame))
    assert a.n == b.n == len(df)
    assert a.flagged and b.flagged
    assert a.effect == pytest.approx(b.effect, rel=1e-9)  # in units of the judge range either way
    assert isinstance(from_dir.to_pandas(), pd.DataFrame)
