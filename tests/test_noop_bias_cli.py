"""``cje bias`` / ``cje.bias``, ``cje simulate`` and early refusals: options that would do nothing
are refused or said, never silently dropped; refusals that do not depend on the data come before
it is read.

The pattern of ``tests/test_noop_options.py``: the CLI refuses a flag that would do nothing on this
input; in Python an option whose effect the call clearly expects is refused, one that is merely
irrelevant is said (a warning or a result warning) and recorded as not applied. Each test here
failed before its fix (the option was accepted and changed nothing without a word, or the
refusal came only after the data was read).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import cje
from cje.cli import main
from cje.errors import CJEWarning


@pytest.fixture(scope="module")
def panel() -> object:
    return cje.synthetic.make_panel_eval(150, length_effect=0.3, rng=1).data


@pytest.fixture(scope="module")
def files(panel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bias")
    panel.to_csv(d / "scores.csv", index=False)
    cje.synthetic.make_pairwise_eval(120, rng=0).pairs.to_csv(d / "pairs.csv", index=False)
    return d


def _no_effect(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "no effect" in str(w.message)]


# ---- cje.bias.audit: bootstrap options when no test that ran draws a bootstrap ------------------
def test_audit_bootstrap_options_without_a_bootstrap_test_are_said_and_not_recorded(panel) -> None:
    # Pointwise scores only: verbosity (OLS) and self-preference (OLS / panel) draw no bootstrap.
    # Before: no word, and provenance options n_bootstrap=500, rng=3 as if applied.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = cje.bias.audit(panel, n_bootstrap=500, rng=3)
    said = _no_effect(caught)
    assert len(said) == 1 and said[0].startswith("n_bootstrap=500 and rng=3 have no effect")
    opts = a.provenance["options"]
    assert (opts["n_bootstrap"], opts["rng"]) == (None, None)
    assert opts["not_applied"] == {"n_bootstrap": 500, "rng": 3}
    assert json.loads(a.to_json())["provenance"]["options"]["not_applied"] == {"n_bootstrap": 500,
                                                                               "rng": 3}
    # with pairwise verdicts the bootstrap runs: recorded as applied, no notice
    pairs = cje.synthetic.make_pairwise_eval(120, rng=0).pairs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        b = cje.bias.audit(panel, pairs=pairs, n_bootstrap=500, rng=3)
    assert not _no_effect(caught) and "not_applied" not in b.provenance["options"]
    assert (b.provenance["options"]["n_bootstrap"], b.provenance["options"]["rng"]) == (500, 3)


def test_audit_position_on_the_exact_path_uses_no_bootstrap() -> None:
    # One pair per prompt judged once in each order: exact McNemar and Clopper-Pearson, no
    # bootstrap; no human verdicts, so the pairwise verbosity test does not run either.
    pairs = cje.synthetic.make_pairwise_eval(200, position_logodds=0.5, rng=2).pairs
    first = pairs.drop_duplicates("prompt_id")[["prompt_id", "a_id", "b_id"]]
    one = pairs.merge(first, on=["prompt_id", "a_id", "b_id"])
    if "run" in one.columns:
        one = one[one["run"] == one["run"].min()]
    one = one[["prompt_id", "a_id", "b_id", "slot_a", "winner"]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = cje.bias.audit(pairs=one, n_bootstrap=300)
    assert a.tests == ("position",) and "Clopper" in a.results[0].details["ci_method"]
    assert _no_effect(caught) == ["n_bootstrap=300 has no effect: no test that ran (position) "
                                  "draws a bootstrap (only the pairwise verbosity test does, and "
                                  "the position test when prompts hold several pairs or runs "
                                  "repeat an order)."]


# ---- cje bias (CLI) -----------------------------------------------------------------------------
def test_cli_bias_refuses_bootstrap_flags_that_do_nothing(files: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    # Before: exit 0, the same results as without them.
    out = tmp_path / "o.json"
    for flags in (["--bootstrap", "500"], ["--seed", "3"], ["--bootstrap", "500", "--seed", "3"]):
        code = main(["bias", str(files / "scores.csv"), *flags, "--no-progress", "--format",
                     "json", "--out", str(out)])
        captured = capsys.readouterr()
        assert code == 2 and captured.out == "" and not out.exists()
        named = " and ".join(f for f in ("--bootstrap", "--seed") if f in flags)
        assert f"cje: error: {named} ha" in captured.err and "no test that ran" in captured.err
        assert "CJEWarning" not in captured.err  # refused, not also warned
    # with pairwise verdicts the bootstrap runs: accepted and recorded
    assert main(["bias", str(files / "scores.csv"), "--pairs", str(files / "pairs.csv"),
                 "--bootstrap", "200", "--seed", "3", "--format", "json", "--out",
                 str(out)]) == 0
    assert json.loads(out.read_text())["provenance"]["options"]["n_bootstrap"] == 200
    # no flag given: nothing refused, and the CLI's own default seed is not "not applied"
    out2 = tmp_path / "p.json"
    assert main(["bias", str(files / "scores.csv"), "--format", "json", "--out", str(out2)]) == 0
    opts = json.loads(out2.read_text())["provenance"]["options"]
    assert "not_applied" not in opts and opts["rng"] == 0
    capsys.readouterr()
    # a --bootstrap below the minimum is still refused first, as before
    assert main(["bias", str(files / "scores.csv"), "--bootstrap", "10"]) == 2
    assert "at least 50" in capsys.readouterr().err


# ---- self_preference: length --------------------------------------------------------------------
def test_audit_self_preference_counts_length_from_the_response_text(panel) -> None:
    # Before: the audit counted words of a `response` column for verbosity only; the labelled
    # self-preference design ran without its length control (no "+ z").
    d = panel.drop(columns=["response_length"]).assign(
        response=["word " * int(n) for n in panel["response_length"]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = cje.bias.audit(d)
    (sp,) = [r for t, r in zip(a.tests, a.results, strict=True) if t == "self-preference"]
    assert "+ z +" in sp.method
    assert "+ z +" in cje.bias.self_preference(panel).method  # the same as with the column


def test_self_preference_refuses_a_length_column_that_is_not_there(panel) -> None:
    # Before: length_column='n_tokens' (not a column) ran without length control, without a word.
    with pytest.raises(cje.CJEInputError, match=r"length_column='n_tokens' is not a column"):
        cje.bias.self_preference(panel, length_column="n_tokens")


def test_self_preference_says_a_length_it_does_not_use(panel) -> None:
    d = panel.assign(n_tokens=panel["response_length"])
    # the panel design reads no length: said in the result (before: nothing)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = cje.bias.self_preference(d.drop(columns="oracle_label"), length_column="n_tokens")
    assert res.details["design"] == "panel"
    assert any(w.startswith("length_column='n_tokens' has no effect with the panel design")
               for w in res.warnings)
    # the labelled design with lengths it cannot use (a zero): said (before: dropped silently)
    bad = d.assign(response_length=np.where(np.arange(len(d)) == 0, 0, d["response_length"]))
    res = cje.bias.self_preference(bad)
    assert "+ z" not in res.method
    assert any("'response_length' column is not controlled for (not every length is positive)"
               in w for w in res.warnings)
    # the default name, absent: optional, nothing said
    res = cje.bias.self_preference(panel.drop(columns="response_length"))
    assert not any("length" in w for w in res.warnings)


# ---- early refusals: before the data is read ------------------------------------------------------
def _reader_must_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import cje.analysis

    def boom(*a, **k):
        raise AssertionError("the data was read before the option was refused")

    monkeypatch.setattr(cje.analysis, "load", boom)


def test_auto_mrdr_omega_without_fresh_draws_is_refused_before_reading(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # estimator='auto' without fresh draws is 'direct' or 'calibrated-ips'; neither reads
    # mrdr_omega. Before: refused only after the data was read (a missing file: a file error).
    with pytest.raises(cje.CJEInputError, match=r"mrdr_omega='w2' has no effect with "
                                                 r"estimator='auto' without fresh_draws="):
        cje.analyze(str(tmp_path / "missing.csv"), mrdr_omega="w2")
    # what depends on the data still waits for it: var_cap (calibrated IPS reads it, the
    # direct method does not), and mrdr_omega with fresh_draws ('auto' is then stacked DR)
    with pytest.raises(cje.CJEInputError, match="No such file"):
        cje.analyze(str(tmp_path / "missing.csv"), var_cap=1.0)
    with pytest.raises(cje.CJEInputError, match="No such file"):
        cje.analyze(str(tmp_path / "missing.csv"), mrdr_omega="w2", fresh_draws="x.csv")
    _reader_must_not_run(monkeypatch)
    data = cje.synthetic.make_direct_eval(50, rng=0).data
    with pytest.raises(cje.CJEInputError, match=r"mrdr_omega='w2' has no effect"):
        cje.analyze(data, mrdr_omega="w2", judge_scale=(0, 10), label_scale=(1, 5))


def test_transport_margin_wider_than_a_given_label_scale_is_refused_before_reading(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Before: refused after reading the data (and the probe slices' policies were checked first)
    msg = r"transport_margin=5 is at least the width of the label scale \(1, 5\)"
    with pytest.raises(cje.CJEInputError, match=msg):
        cje.analyze(str(tmp_path / "missing.csv"), transport_margin=5, label_scale=(1, 5),
                    probes={"a": "p.csv"})
    code = main(["analyze", str(tmp_path / "missing.csv"), "--probe", "a=p.csv",
                 "--transport-margin", "5", "--label-scale", "1", "5"])
    assert code == 2 and "transport_margin=5 is at least the width" in capsys.readouterr().err
    _reader_must_not_run(monkeypatch)
    with pytest.raises(cje.CJEInputError, match=msg):
        cje.analyze(cje.synthetic.make_direct_eval(50, rng=0).data, transport_margin=5,
                    label_scale=(1, 5), judge_scale=(0, 10), probes={"a": "p.csv"})


# ---- cje simulate -------------------------------------------------------------------------------
def test_cli_simulate_refuses_resume_with_force(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    # Before: both accepted; --resume kept the earlier replicates, so --force ("start afresh")
    # did nothing.
    out = tmp_path / "runs"
    code = main(["simulate", "ranking", "--quick", "--reps", "2", "--resume", "--force",
                 "--out-dir", str(out)])
    assert code == 2 and not out.exists()
    assert "give one of them" in capsys.readouterr().err


def test_cli_simulate_refuses_n_jobs_with_the_dask_backend(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture) -> None:
    # Before: --n-jobs was ignored by the Dask backend (documented in run_replicates only).
    code = main(["simulate", "ranking", "--quick", "--reps", "2", "--backend", "dask",
                 "--n-jobs", "2", "--out-dir", str(tmp_path / "runs")])
    assert code == 2
    assert "n_jobs=2 (--n-jobs) has no effect with backend='dask'" in capsys.readouterr().err


def test_simulate_resume_without_earlier_replicates_says_so(tmp_path: Path) -> None:
    # Before: --resume on an empty --out-dir ran every replicate without a word.
    from cje.studies import STUDIES

    with pytest.warns(CJEWarning, match="there are no earlier replicates to keep"):
        STUDIES["ranking"](2, quick=True, out_dir=tmp_path, resume=True)


# ---- min_effect and scales ------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["verbosity", "self_preference"])
def test_a_negative_min_effect_is_refused(panel, fn: str) -> None:
    # Before: accepted; |effect| >= -1 always held, so the flag rested on the p-value alone and
    # "no relevant bias" could never be read.
    one = panel[panel["judge"] == "alpha-judge"] if fn == "verbosity" else panel
    with pytest.raises(cje.CJEInputError, match="min_effect must be 0 or more"):
        getattr(cje.bias, fn)(one, min_effect=-1.0)
    # 0 is a threshold (any significant effect is relevant)
    assert getattr(cje.bias, fn)(one, min_effect=0.0).details["min_effect"] == 0.0


def test_per_judge_scales_with_one_labelled_judge_are_said(panel) -> None:
    # Before: scales='per_judge' ran the shared fit without a word (details said 'shared').
    one = panel[panel["judge"] == "alpha-judge"]
    res = cje.bias.self_preference(one, scales="per_judge", method="labelled")
    assert res.details["scales"] == "shared"
    assert any(w.startswith("scales='per_judge' has no effect here") for w in res.warnings)
    assert res.effect == cje.bias.self_preference(one, scales="shared", method="labelled").effect


# ---- --judge-column with two inputs ---------------------------------------------------------------
def test_judge_column_of_the_scores_does_not_refuse_one_judges_pairs(
        files: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Before: a panel whose judge column is 'grader' with pairwise verdicts of one judge (no
    # judge column) was refused, naming neither input: "judge_column='grader' is not a column;
    # the columns are [...the pairs' columns]".
    import pandas as pd

    scores = tmp_path / "scores.csv"
    pd.read_csv(files / "scores.csv").rename(columns={"judge": "grader"}).to_csv(scores, index=False)
    out = tmp_path / "a.json"
    assert main(["bias", str(scores), "--pairs", str(files / "pairs.csv"), "--judge-column",
                 "grader", "--format", "json", "--out", str(out)]) == 0
    tests = [r["test"] for r in json.loads(out.read_text())["results"]]
    assert "position" in tests and tests.count("verbosity") == 3
    # a column no input has: refused naming each input
    assert main(["bias", str(files / "scores.csv"), "--pairs", str(files / "pairs.csv"),
                 "--judge-column", "grader"]) == 2
    err = capsys.readouterr().err
    assert "is not a column of data (columns" in err and "nor of pairs= (columns" in err


# ---- audit: a bad option is refused up front, not turned into "not run" ---------------------------
@pytest.mark.parametrize("kw, msg", [({"n_bootstrap": 10}, "^n_bootstrap must be an integer >= 50"),
                                     ({"alpha": 1.5}, "^alpha must be a number in")])
def test_audit_refuses_a_bad_option_before_any_test(panel, kw: dict, msg: str) -> None:
    # Before: each test that read the option was listed under "Not run" with its error and the
    # other tests' results came out (n_bootstrap=10: no position or pairwise verbosity result);
    # alpha=1.5 made every test "not run", refused only as "No bias test could run".
    pairs = cje.synthetic.make_pairwise_eval(60, rng=0).pairs
    with pytest.raises(cje.CJEInputError, match=msg):
        cje.bias.audit(panel, pairs=pairs, **kw)


def test_a_missing_length_is_named_as_missing(panel) -> None:
    # Before: "... row 5 (prompt_id='p00001') has np.float64(nan)."
    d = panel.assign(response_length=np.where(np.arange(len(panel)) == 5, np.nan,
                                              panel["response_length"]))
    with pytest.raises(cje.CJEInputError, match=r"'response_length' column must be finite "
                                                 r"numbers; row 5 \(prompt_id=.*\) has a missing "
                                                 r"value\.$"):
        cje.bias.self_preference(d)


# ---- aggregate_panel(leave_family_out=True) -------------------------------------------------------
def test_leave_family_out_that_leaves_nothing_out_is_said() -> None:
    from cje.pairwise import aggregate_panel

    panel = cje.synthetic.make_panel_eval(30, rng=1).data
    # items of the 'gamma' family only: no judge (alpha, beta, delta) shares it
    items = panel[~panel["policy_family"].isin(set(panel["judge_family"]))]
    with pytest.warns(CJEWarning, match="leave_family_out=True has no effect on these scores"):
        out = aggregate_panel(items, leave_family_out=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: identical output and no word
        assert out.equals(aggregate_panel(items))
        aggregate_panel(panel, leave_family_out=True)  # it leaves some out here: nothing said
