"""Tests for the ``cje`` command line (cje.cli): in-process with capsys, plus one real subprocess."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.cli import main

ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample"
POLICIES = ["base", "concise", "improved", "small", "verbose"]
SCALES = ["--judge-scale", "0", "10", "--label-scale", "1", "5"]


def _arena() -> Path:
    if not (ARENA / "fresh_draws").is_dir() or not (ARENA / "probe_slice").is_dir():
        pytest.skip(f"arena sample not found at {ARENA}")
    return ARENA


@pytest.fixture(scope="module")
def sim() -> cje.synthetic.SyntheticEval:
    return cje.synthetic.make_direct_eval(80, rng=2)


@pytest.fixture()
def csv_path(tmp_path: Path, sim: cje.synthetic.SyntheticEval) -> Path:
    path = tmp_path / "results.csv"
    sim.data.to_csv(path, index=False)
    return path


@pytest.fixture()
def nan_csv(tmp_path: Path, sim: cje.synthetic.SyntheticEval) -> Path:
    df = sim.data.copy()
    df.loc[4, "judge_score"] = np.nan
    path = tmp_path / "bad.csv"
    df.to_csv(path, index=False)
    return path


def _table(out: str) -> dict[str, list[str]]:
    """The estimates table of a summary: policy -> its fields (status last)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("---")) + 1
    rows = {}
    for line in lines[start:]:
        if not line.strip() or line.startswith("naive ="):
            break
        rows[line.split()[0]] = line.split()
    return rows


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cje: error: "), err
    assert "Traceback" not in err
    return lines[0]


# ---- analyze: output formats -------------------------------------------------------------------
def test_analyze_table_lists_every_policy(csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(csv_path), *SCALES]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Calibrated estimates on the label scale (1–5)")
    table = _table(out)
    assert list(table) == POLICIES
    assert all(r[-1] in ("OK", "CAUTION", "REFUSED") for r in table.values())
    assert "Paired contrasts" in out
    assert err == ""


def test_analyze_json_round_trips(csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(csv_path), *SCALES, "--format", "json"]) == 0
    out = capsys.readouterr().out
    rep = cje.Report.from_json(out)
    assert [e.policy for e in rep.estimates] == POLICIES
    assert rep.judge_scale == (0.0, 10.0) and rep.label_scale == (1.0, 5.0)
    direct = cje.analyze(csv_path, judge_scale=(0, 10), label_scale=(1, 5))
    assert [e.estimate for e in rep.estimates] == [e.estimate for e in direct.estimates]
    assert [e.ci_high for e in rep.estimates] == [e.ci_high for e in direct.estimates]
    assert rep.to_json() == direct.to_json()


def test_analyze_csv_to_file(csv_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_file = tmp_path / "report.csv"
    assert main(["analyze", str(csv_path), *SCALES, "--format", "csv", "--out", str(out_file)]) == 0
    out, err = capsys.readouterr()
    assert out == ""
    assert str(out_file) in err
    table = pd.read_csv(out_file)
    assert len(table) == len(POLICIES)
    assert table["policy"].tolist() == POLICIES
    assert {"estimate", "ci_low", "ci_high", "se", "status", "n_labels"} <= set(table.columns)
    assert (table["ci_low"] <= table["estimate"]).all() and (table["estimate"] <= table["ci_high"]).all()


def test_analyze_policy_filter(csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", str(csv_path), *SCALES, "--format", "csv", "--policy", "base", "--policy", "small"]
    assert main(argv) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert table["policy"].tolist() == ["base", "small"]


def test_analyze_column_mapping_on_jsonl(tmp_path: Path, sim: cje.synthetic.SyntheticEval,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "renamed.jsonl"
    sim.data.rename(columns={"judge_score": "score"}).to_json(path, orient="records", lines=True)
    assert main(["analyze", str(path), *SCALES, "--column", "judge_score=score", "--format", "json"]) == 0
    rep = cje.Report.from_json(capsys.readouterr().out)
    direct = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    np.testing.assert_allclose([e.estimate for e in rep.estimates],
                               [e.estimate for e in direct.estimates], rtol=1e-6)  # JSON rounds


def test_analyze_drop_invalid_reports_excluded(nan_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(nan_csv), *SCALES, "--drop-invalid"]) == 0
    out = capsys.readouterr().out
    assert "Excluded on request (on_invalid='drop'): 1 rows with non-finite judge_score." in out


# ---- analyze: bad input -> exit code 2 and one line ----------------------------------------------
@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (["{missing}"], r"No such file or directory: '.*missing\.csv'"),
        (["{nan}"], r"'judge_score' column must be finite; row 4 \(prompt_id='p00004'\) has nan"),
        (["{csv}", "--policy", "nope"], r"Policy 'nope' has no rows; the data has policies \['base'"),
        (["{csv}", "--column", "judge_score=nope"], r"columns maps 'judge_score' to 'nope'"),
        (["{csv}", "--judge-scale", "10", "0"], r"judge_scale must satisfy low < high"),
        (["{csv}", "--judge-scale", "0", "1"], r"must lie within judge_scale=\(0, 1\)"),
        (["{csv}", "--alpha", "2"], r"alpha must be a number in \(0, 1\)"),
        (["{csv}", "--folds", "0"], r"n_folds must be an integer >= 2; got 0"),
        (["{csv}", "--covariate", "nope"], r"Covariate 'nope' is not a column of the input"),
        (["{csv}", "--probe", "nope={csv}"], r"Probe slice given for policy 'nope', which has no rows"),
        (["{empty}"], r"The input has no rows: '.*empty\.csv' is empty"),
        (["{csv}", "--format", "csv", "--out", "{tmp}/no/such/dir/out.csv"],
         r"--out '.*out\.csv': the directory '.*dir' does not exist"),
    ],
    ids=["missing-file", "nan-score", "unknown-policy", "bad-column-map", "bad-scale",
         "score-outside-scale", "bad-alpha", "zero-folds", "missing-covariate", "unknown-probe",
         "empty-file", "unwritable-out"],
)
def test_analyze_bad_input_exits_2_with_one_line(
    args: list[str], pattern: str, csv_path: Path, nan_csv: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "empty.csv").write_text("")
    paths = {"missing": tmp_path / "missing.csv", "nan": nan_csv, "csv": csv_path,
             "empty": tmp_path / "empty.csv", "tmp": tmp_path}
    argv = ["analyze"] + [a.format(**paths) for a in args]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_line_error(err)
    assert re.search(pattern, line), line


def test_subprocess_bad_file_exits_2_without_traceback(nan_csv: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "cje.cli", "analyze", str(nan_csv)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    line = _one_line_error(proc.stderr)
    assert "'judge_score' column must be finite" in line
    assert "on_invalid='drop'" in line


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2  # no command: help, exit code 2
    assert "analyze" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "x.csv", "--format", "xml"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_analyze_help_names_the_columns(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["analyze", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("prompt_id", "policy", "judge_score", "oracle_label", "draw_idx", "--judge-scale",
                 "--probe", "--transport-margin", "--format"):
        assert word in out, word


# ---- real data: the transport audit ----------------------------------------------------------------
def test_arena_probe_grades_unhelpful_fail_and_refused(capsys: pytest.CaptureFixture[str]) -> None:
    arena = _arena()
    probe = arena / "probe_slice" / "unhelpful_probe.jsonl"
    argv = ["analyze", str(arena / "fresh_draws"), "--probe", f"unhelpful={probe}",
            "--transport-margin", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert list(rows) == ["base", "clone", "parallel_universe_prompt", "unhelpful"]
    assert rows["unhelpful"][-1] == "REFUSED"
    assert rows["base"][-1] == "OK"
    audits = out.split("Transport audits", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(audits) == 1
    assert audits[0].split()[0] == "unhelpful" and audits[0].rstrip().endswith("margin ±0.05: FAIL")
    assert "transport audit FAIL" in out


# ---- demo ------------------------------------------------------------------------------------------
def test_demo_runs_and_compares_with_truth(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--prompts", "300"]) == 0
    out = capsys.readouterr().out
    assert "Against the truth" in out
    truth_rows = out.split("Against the truth", 1)[1].splitlines()[2:]
    shown = [r.split()[0] for r in truth_rows if r.strip() and r.split()[0] in POLICIES]
    assert shown == POLICIES
    for r in truth_rows:
        parts = r.split()
        if parts and parts[0] in POLICIES:
            assert parts[3] in ("yes", "NO") and parts[5] in ("yes", "NO")
            assert 1.0 <= float(parts[1]) <= 5.0  # truth on the label scale


def test_demo_with_too_few_labels_does_not_compare_judge_means_to_truth(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["demo", "--prompts", "3"]) == 0
    out = capsys.readouterr().out
    assert "UNCALIBRATED" in out
    for r in out.split("Against the truth", 1)[1].splitlines():
        parts = r.split()
        if parts and parts[0] in POLICIES:
            assert parts[2:4] == ["—", "—"], r


@pytest.mark.parametrize("args", [["--prompts", "0"], ["--oracle-fraction", "2"]])
def test_demo_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *args]) == 2
    _one_line_error(capsys.readouterr().err)


def test_json_output_is_valid_json(csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(csv_path), *SCALES, "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [e["policy"] for e in d["estimates"]] == POLICIES
    assert d["settings"]["alpha"] == 0.05


# ---- off-policy ------------------------------------------------------------------------------------
def test_arena_offpolicy_cli_reports_overlap(capsys: pytest.CaptureFixture[str]) -> None:
    arena = _arena()
    argv = ["analyze", str(arena / "logged_data.jsonl"), "--fresh-draws", str(arena / "fresh_draws"),
            "--estimator", "stacked-dr"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert list(rows) == ["base", "clone", "parallel_universe_prompt", "unhelpful"]
    assert rows["unhelpful"][-1] == "CAUTION"
    overlap = out.split("Overlap of the logged data", 1)[1].split("\n\n", 1)[0]
    assert "parallel_universe_prompt ESS 0.3% →" in overlap and "TTC" in overlap
    # residual_weights="auto": stabilised residual weights below 10% raw ESS, and it says so
    assert "residual on stabilised weights" in overlap.split("parallel_universe_prompt", 1)[1]
    assert "residual on stabilised weights" not in overlap.split("clone", 1)[1].split("\n")[0]
    # --residual-weights reaches the analysis: raw weights give parallel_universe_prompt's
    # assumption-free interval, wider even than the default's with its transport allowance
    assert main([*argv, "--residual-weights", "raw", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["settings"]["residual_weights"] == "raw"
    pu = {e["policy"]: e for e in d["estimates"]}["parallel_universe_prompt"]
    lo, hi = rows["parallel_universe_prompt"][2:4]  # "[0.739,", "0.786]"
    assert pu["ci_high"] - pu["ci_low"] > 1.5 * (float(hi.strip("]")) - float(lo.strip("[,")))


def test_offpolicy_cli_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    arena = _arena()
    # DR needs fresh draws of the targets
    assert main(["analyze", str(arena / "logged_data.jsonl"), "--estimator", "dr-cpo"]) == 2
    err = capsys.readouterr().err
    assert "needs fresh draws" in err and err.count("\n") == 1
    # off-policy estimators need log-probabilities
    assert main(["analyze", str(arena / "fresh_draws"), "--estimator", "snips"]) == 2
    assert "logprob_base" in capsys.readouterr().err


@pytest.mark.parametrize(("flags", "expected"), [([], None), (["--no-progress"], False)])
def test_analyze_progress_flag(csv_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str], flags: list[str],
                               expected: bool | None) -> None:
    seen = {}
    real = cje.analyze

    def spy(*args, **kwargs):
        seen["progress"] = kwargs.get("progress", "missing")
        return real(*args, **kwargs)

    monkeypatch.setattr(cje, "analyze", spy)
    assert main(["analyze", str(csv_path), "--format", "json", *flags]) == 0
    assert seen["progress"] is expected  # None: a bar only on a terminal, after a second
