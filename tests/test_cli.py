"""Tests for the ``cje`` command line (cje.cli): in-process with capsys, plus one real subprocess."""

from __future__ import annotations

import argparse
import io
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.cli import main

POLICIES = ["base", "concise", "improved", "small", "verbose"]
SCALES = ["--judge-scale", "0", "10", "--label-scale", "1", "5"]


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
        if not line.strip() or line.startswith("SE = "):
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
    assert out.startswith("Each policy's value on the label scale (1–5)")
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
    assert rep == direct  # every field but the provenance, which records the command and the time
    assert rep.provenance["command"] == shlex.join(["cje", "analyze", str(csv_path), *SCALES,
                                                    "--format", "json"])


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
def test_arena_probe_grades_unhelpful_fail_and_refused(arena: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    probe = arena / "probe_slice" / "unhelpful_probe.jsonl"
    argv = ["analyze", str(arena / "fresh_draws"), "--probe", f"unhelpful={probe}",
            "--transport-margin", "0.05", "--no-probe-correction"]  # the probe only audits
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert list(rows) == ["base", "clone", "parallel_universe_prompt", "unhelpful"]
    assert rows["unhelpful"][-1] == "REFUSED"
    assert rows["base"][-1] == "OK"
    audits = out.split("\nTransport audits (", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(audits) == 1
    assert audits[0].split()[0] == "unhelpful" and audits[0].rstrip().endswith("margin ±0.05: FAIL")
    assert "transport audit FAIL" in out


def test_arena_probe_corrects_unhelpful_by_default(arena: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Without --no-probe-correction the probe's labels correct the level: the audit still
    reports FAIL, the level is not refused and the reason says what was used."""
    probe = arena / "probe_slice" / "unhelpful_probe.jsonl"
    argv = ["analyze", str(arena / "fresh_draws"), "--probe", f"unhelpful={probe}",
            "--transport-margin", "0.05"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert rows["unhelpful"][-1] == "OK"
    audits = out.split("\nTransport audits (", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert audits[0].rstrip().endswith("margin ±0.05: FAIL")
    assert "level corrected by its 50 probe labels" in out
    assert "failed the transport audit" in out


def test_fail_on_sets_the_exit_code_after_writing_the_outputs(
        arena: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--fail-on`` turns unreliable levels into exit code 1 (for CI jobs); the outputs are still
    written and the policies named on stderr. Arena: base OK, the three others CAUTION; with the
    unhelpful probe only auditing at margin 0.05, unhelpful is REFUSED."""
    fresh = str(arena / "fresh_draws")
    assert main(["analyze", fresh]) == 0
    assert main(["analyze", fresh, "--fail-on", "refused"]) == 0  # nothing REFUSED
    capsys.readouterr()
    assert main(["analyze", fresh, "--fail-on", "caution"]) == 1
    cap = capsys.readouterr()
    assert _table(cap.out)["base"][-1] == "OK"  # the table is printed all the same
    assert cap.err.strip() == ("cje: --fail-on caution: clone (CAUTION), parallel_universe_prompt "
                               "(CAUTION), unhelpful (CAUTION)")
    out = tmp_path / "report.json"
    probe = arena / "probe_slice" / "unhelpful_probe.jsonl"
    argv = ["analyze", fresh, "--probe", f"unhelpful={probe}", "--transport-margin", "0.05",
            "--no-probe-correction", "--format", "json", "--out", str(out), "--fail-on", "refused"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "cje: --fail-on refused: unhelpful (REFUSED)" in err and f"wrote {out}" in err
    assert {e["policy"]: e["status"] for e in json.loads(out.read_text())["estimates"]}["unhelpful"] \
        == "REFUSED"


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
def test_arena_offpolicy_cli_reports_overlap(arena: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["analyze", str(arena / "logged_data.jsonl"), "--fresh-draws", str(arena / "fresh_draws"),
            "--estimator", "stacked-dr"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rows = _table(out)
    assert list(rows) == ["base", "clone", "parallel_universe_prompt", "unhelpful"]
    assert rows["unhelpful"][-1] == "CAUTION"
    overlap = out.split("Overlap of the logged data", 1)[1].split("\n\n", 1)[0]
    assert "parallel_universe_prompt ESS 0.3% →" in overlap and "TTC" in overlap
    # residual_weights="auto": stabilised residual weights below 10% raw ESS
    # (parallel_universe_prompt) or with a Hill tail index below 1 (clone: 0.76), and it says so
    for t in ("parallel_universe_prompt", "clone"):
        assert "residual on stabilised weights" in overlap.split(t, 1)[1].split("\n")[0], t
    # --residual-weights reaches the analysis: raw weights, no transport allowance, and the
    # estimate moves (parallel_universe_prompt 0.763 -> 0.705)
    assert main([*argv, "--residual-weights", "raw", "--format", "json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["settings"]["residual_weights"] == "raw"
    pu = {e["policy"]: e for e in d["estimates"]}["parallel_universe_prompt"]
    assert pu["var_transport"] == 0 and pu["diagnostics"]["residual_weights"] == "raw"
    assert abs(pu["estimate"] - float(rows["parallel_universe_prompt"][1])) > 0.03


def test_offpolicy_cli_errors_exit_2(arena: Path, capsys: pytest.CaptureFixture[str]) -> None:
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


# ---- outputs never overwrite inputs (checked before the analysis runs) ----------------------------
def _digest(path: Path) -> str:
    import hashlib

    if path.is_dir():
        return "|".join(f"{p.name}:{_digest(p)}" for p in sorted(path.iterdir()))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def inputs(tmp_path: Path, sim: cje.synthetic.SyntheticEval) -> dict[str, Path]:
    """Every kind of input ``cje analyze`` reads, on disk, plus a symlink and a hard link to the
    data file."""
    d = tmp_path / "in"
    d.mkdir()
    data = d / "data.csv"
    sim.data.to_csv(data, index=False)
    labelled = sim.data[sim.data.oracle_label.notna()]
    labelled.head(20).to_csv(d / "calib.csv", index=False)
    labelled[labelled.policy == "verbose"].to_json(d / "probe.jsonl", orient="records", lines=True)
    sim.data.to_csv(d / "fresh.csv", index=False)
    fd = d / "fresh_draws"
    fd.mkdir()
    for pol, rows in sim.data.groupby("policy"):
        rows.to_json(fd / f"{pol}_responses.jsonl", orient="records", lines=True)
    (d / "link.csv").symlink_to(data)
    (d / "fd_link").symlink_to(fd, target_is_directory=True)
    import os

    os.link(data, d / "hard.csv")
    return {"data": data, "calib": d / "calib.csv", "probe": d / "probe.jsonl",
            "fresh": d / "fresh.csv", "fresh_dir": fd, "link": d / "link.csv", "hard": d / "hard.csv",
            "dir": d, "dirlink": d / "fd_link"}


# (argv after "analyze" with {placeholders}, the message it must give)
OUTPUT_IS_INPUT = [
    (["{data}", "--out", "{data}"], r"--out '.*data\.csv' is the same file as the input data"),
    (["{data}", "--out", "{dir}/./fresh_draws/../data.csv"], r"--out .* is the same file as the input data"),
    (["{data}", "--out", "{link}"], r"--out '.*link\.csv' is the same file as the input data "
                                    r"\('.*data\.csv'\); writing it would overwrite your input"),
    (["{link}", "--out", "{data}"], r"--out '.*data\.csv' is the same file as the input data "
                                    r"\('.*link\.csv'\)"),
    (["{data}", "--out", "{hard}"], r"--out '.*hard\.csv' is the same file as the input data"),
    (["{data}", "--calibration", "{calib}", "--out", "{calib}"],
     r"--out '.*calib\.csv' is the same file as --calibration"),
    (["{data}", "--probe", "verbose={probe}", "--out", "{probe}"],
     r"--out '.*probe\.jsonl' is the same file as the --probe file of 'verbose'"),
    (["{data}", "--fresh-draws", "{fresh}", "--out", "{fresh}"],
     r"--out '.*fresh\.csv' is the same file as --fresh-draws"),
    (["{fresh_dir}", "--out", "{fresh_dir}/out.json"],
     r"--out '.*out\.json' is inside the input data \('.*fresh_draws'\), an input directory"),
    (["{fresh_dir}", "--out", "{fresh_dir}/base_responses.jsonl"],
     r"--out '.*base_responses\.jsonl' is inside the input data"),
    (["{data}", "--fresh-draws", "{fresh_dir}", "--out", "{fresh_dir}/x.csv"],
     r"--out '.*x\.csv' is inside --fresh-draws"),
    (["{data}", "--report", "{data}"], r"--report must end in \.md or \.html; got '.*data\.csv'"),
    (["{fresh_dir}", "--report", "{fresh_dir}/r.html"], r"--report '.*r\.html' is inside"),
    (["{fresh_dir}", "--report", "{dirlink}/r.md"], r"--report '.*fd_link/r\.md' is inside the input "
                                                    r"data \('.*fresh_draws'\)"),
    (["{dirlink}", "--plots", "{fresh_dir}/p"], r"--plots '.*fresh_draws/p' is inside the input data "
                                                r"\('.*fd_link'\)"),
    (["{data}", "--probe", "verbose={probe}", "--report", "{dir}/probe.md", "--plots", "{link}"],
     r"--plots '.*link\.csv' is a file"),
    (["{fresh_dir}", "--report", "{fresh_dir}/../fresh_draws/r.md"], r"--report .* is inside"),
    (["{data}", "--plots", "{data}"], r"--plots '.*data\.csv' is a file; give a directory"),
    (["{fresh_dir}", "--plots", "{fresh_dir}"], r"--plots '.*fresh_draws' is inside the input data"),
    (["{fresh_dir}", "--plots", "{fresh_dir}/figs"], r"--plots '.*figs' is inside the input data"),
    (["{data}", "--out", "{dir}/r.md", "--report", "{dir}/r.md"],
     r"--report '.*r\.md' and --out write the same file"),
]


@pytest.mark.parametrize(("args", "pattern"), OUTPUT_IS_INPUT,
                         ids=[f"{i}-{a[-2]}" for i, (a, _) in enumerate(OUTPUT_IS_INPUT)])
def test_output_that_is_an_input_exits_2_before_the_analysis(
    args: list[str], pattern: str, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    before = _digest(inputs["dir"])

    def must_not_run(*a: object, **k: object) -> None:
        raise AssertionError("the analysis ran before the output paths were checked")

    monkeypatch.setattr(cje, "analyze", must_not_run)
    argv = ["analyze"] + [a.format(**inputs) for a in args]
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    line = _one_line_error(err)
    assert re.search(pattern, line), line
    assert _digest(inputs["dir"]) == before  # every input byte unchanged, nothing added


def test_outputs_beside_the_inputs_are_fine(inputs: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    d = inputs["dir"]
    before = _digest(inputs["fresh_dir"])
    argv = ["analyze", str(inputs["fresh_dir"]), *SCALES, "--format", "json",
            "--out", str(d / "report.json"), "--report", str(d / "fresh_draws.md"),
            "--plots", str(d / "plots")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert cje.Report.from_json((d / "report.json").read_text()).estimates
    assert (d / "fresh_draws.md").read_text().startswith("#")
    assert (d / "fresh_draws_figures" / "forest.png").stat().st_size > 1000
    assert (d / "plots" / "forest.png").stat().st_size > 1000
    assert f"wrote {d / 'report.json'}" in err
    assert _digest(inputs["fresh_dir"]) == before
    assert not list(d.rglob(".cje-tmp-*"))  # no temporary left behind


@pytest.mark.parametrize(("argv", "pattern"), [
    (["bias", "{data}", "--out", "{link}"], r"--out '.*link\.csv' is the same file as the input data"),
    (["bias", "{data}", "--pairs", "{probe}", "--out", "{probe}"],
     r"--out '.*probe\.jsonl' is the same file as --pairs"),
    (["bias", "{fresh_dir}", "--out", "{fresh_dir}/bias.json"], r"--out '.*bias\.json' is inside the "
                                                                r"input data"),
    (["convert", "{data}", "{data}"], r"OUTPUT '.*data\.csv' is the same file as the input"),
    (["convert", "{link}", "{hard}"], r"OUTPUT '.*hard\.csv' is the same file as the input"),
    (["convert", "{fresh_dir}", "{fresh_dir}/flat.csv"], r"OUTPUT '.*flat\.csv' is inside the input"),
], ids=["bias-symlink", "bias-pairs", "bias-in-dir", "convert-same", "convert-links", "convert-in-dir"])
def test_bias_and_convert_never_overwrite_an_input(
    argv: list[str], pattern: str, inputs: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import cje.export

    def must_not_run(*a: object, **k: object) -> None:
        raise AssertionError("ran before the output path was checked")

    monkeypatch.setattr(cje.bias, "audit", must_not_run)
    monkeypatch.setattr(cje.export, "convert", must_not_run)
    before = _digest(inputs["dir"])
    assert main([a.format(**inputs) for a in argv]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert re.search(pattern, line), line
    assert _digest(inputs["dir"]) == before


def test_convert_writes_through_a_temporary_file(inputs: dict[str, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = inputs["dir"].parent / "flat.parquet"
    assert main(["convert", str(inputs["data"]), str(out)]) == 0
    assert pd.read_parquet(out).shape[0] == pd.read_csv(inputs["data"]).shape[0]
    assert f"wrote {out}" in capsys.readouterr().err
    assert not list(out.parent.rglob(".cje-tmp-*"))


# ---- Ctrl-C: one line, exit 130, no partial output ------------------------------------------------
def _interrupt(*a: object, **k: object) -> None:
    raise KeyboardInterrupt


def test_ctrl_c_during_the_analysis(csv_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cje, "analyze", _interrupt)
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = ["analyze", str(csv_path), "--out", str(tmp_path / "o.json"), "--report",
            str(tmp_path / "new" / "r.md"), "--plots", str(tmp_path / "plots")]
    assert main(argv) == 130
    out, err = capsys.readouterr()
    assert err == "cje: interrupted\n" and out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_ctrl_c_while_writing_the_outputs_leaves_no_file(
    csv_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import cje.plots

    real = cje.plots.save_report_figures
    calls = []

    def write_then_interrupt(report: object, directory: object, **kw: object) -> None:
        calls.append(directory)
        real(report, directory, **kw)  # files really written (under temporary names) ...
        raise KeyboardInterrupt  # ... then Ctrl-C before the rename

    monkeypatch.setattr(cje.plots, "save_report_figures", write_then_interrupt)
    (tmp_path / "old.json").write_text("earlier output\n")
    before = {p.name: _digest(p) for p in tmp_path.iterdir()}
    argv = ["analyze", str(csv_path), *SCALES, "--format", "json", "--out", str(tmp_path / "old.json"),
            "--plots", str(tmp_path / "plots" / "deep")]
    assert main(argv) == 130
    assert capsys.readouterr().err == "cje: interrupted\n"
    assert calls  # the interruption happened while writing
    assert {p.name: _digest(p) for p in tmp_path.iterdir()} == before  # old output intact, no new file


def test_ctrl_c_in_a_real_process_prints_one_line(tmp_path: Path) -> None:
    import os
    import signal
    import time

    # a shell's background job starts with SIGINT ignored, and Python then installs no handler:
    # restore the default one a terminal user has, so the test does not depend on how it is run
    code = ("import signal, time, cje\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "def slow(*a, **k):\n"
            "    print('started', flush=True); time.sleep(60)\n"
            "cje.analyze = slow\n"
            "from cje.cli import main\n"
            "raise SystemExit(main(['analyze', 'x.csv', '--out', 'o.json']))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(Path(cje.__file__).parents[1])})
    assert proc.stdout is not None and proc.stdout.readline() == "started\n"
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err == "cje: interrupted\n"
    assert not (tmp_path / "o.json").exists()


# ---- cje simulate: where it writes, and never over existing results without --force --------------
@pytest.fixture()
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory that looks like a source checkout with published results, and a
    private per-user data directory."""
    root = tmp_path / "checkout"
    results = root / "simulations" / "results"
    results.mkdir(parents=True)
    (results / "study_ranking.md").write_text("# published table\n")
    (results / "study_ranking.png").write_bytes(b"published figure")
    monkeypatch.chdir(root)
    monkeypatch.delenv("CJE_SIMULATIONS_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return root


def test_simulate_writes_outside_the_source_tree_by_default(
    checkout: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    published = _digest(checkout)
    assert main(["simulate", "ranking", "--quick", "--reps", "2"]) == 0
    md = tmp_path / "xdg" / "cje" / "simulations" / "study_ranking.md"
    assert f"wrote {md}" in capsys.readouterr().out
    assert md.read_text().startswith("# Study 4")
    assert _digest(checkout) == published  # the published tables untouched


def test_simulate_never_replaces_results_without_force(
    checkout: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    results = checkout / "simulations" / "results"
    published = _digest(results)
    argv = ["simulate", "ranking", "--quick", "--reps", "2", "--out-dir", str(results)]
    assert main(argv) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert re.search(r"simulations/results/study_ranking\.md already exists; cje never overwrites "
                     r"results\. Pass --force", line), line
    assert _digest(results) == published
    # --resume without replicates to continue is no way round it
    assert main([*argv, "--resume"]) == 2
    assert "--force" in capsys.readouterr().err and _digest(results) == published
    # --force replaces them, and records that it did
    assert main([*argv, "--force"]) == 0
    assert "--force`" in (results / "study_ranking.md").read_text()
    # a run's replicates left in place: continue with --resume, or start afresh with --force
    (results / "study_ranking.md").unlink()
    (results / "study_ranking.png").unlink()
    assert main(argv) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert re.search(r"study_ranking\.parquet already exists .* Pass --resume to continue that run, "
                     r"--force", line), line
    assert main([*argv[:-4], "--reps", "3", "--out-dir", str(results), "--resume"]) == 0
    assert pd.read_parquet(results / "study_ranking.parquet")["replicate"].nunique() == 3


def test_simulation_script_refuses_to_replace_published_results(checkout: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from cje.studies import main as study_main

    results = checkout / "simulations" / "results"
    published = _digest(results)
    with pytest.raises(SystemExit) as info:  # what `python simulations/study_ranking.py` does
        study_main("ranking", ["--quick", "--reps", "2"], prog="study_ranking.py", out_dir=results)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("study_ranking.py: error: ") and "already exists" in err and "--force" in err
    assert _digest(results) == published


def test_ctrl_c_during_simulate_keeps_finished_replicates_only(
    checkout: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import cje.montecarlo

    real, seen = cje.montecarlo._one, []

    def one_then_interrupt(task, r, child):  # type: ignore[no-untyped-def]
        if len(seen) == 2:
            raise KeyboardInterrupt
        seen.append(r)
        return real(task, r, child)

    monkeypatch.setattr(cje.montecarlo, "_one", one_then_interrupt)
    out = tmp_path / "runs"
    argv = ["simulate", "ranking", "--quick", "--reps", "4", "--out-dir", str(out)]
    assert main(argv) == 130
    assert capsys.readouterr().err == "cje: interrupted\n"
    # no table or figure, no temporary; the finished replicates kept (complete) for --resume
    assert sorted(p.name for p in out.iterdir()) == ["study_ranking.parquet"]
    assert sorted(pd.read_parquet(out / "study_ranking.parquet")["replicate"].unique()) == [0, 1]
    monkeypatch.setattr(cje.montecarlo, "_one", real)
    assert main([*argv, "--resume"]) == 0
    assert pd.read_parquet(out / "study_ranking.parquet")["replicate"].nunique() == 4


def test_ctrl_c_while_simulate_writes_its_figure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    from matplotlib.figure import Figure

    def partial_then_interrupt(self, fname, **kw):  # type: ignore[no-untyped-def]
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", partial_then_interrupt)
    out = tmp_path / "runs"
    assert main(["simulate", "ranking", "--quick", "--reps", "2", "--out-dir", str(out)]) == 130
    assert capsys.readouterr().err == "cje: interrupted\n"
    assert sorted(p.name for p in out.iterdir()) == ["study_ranking.parquet"]  # no half figure


def test_ctrl_c_during_the_renames_is_held_until_all_outputs_are_in_place(
    csv_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import os
    import signal

    real, calls = os.replace, []

    def replace_with_ctrl_c(src: object, dst: object) -> None:
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right at the first rename
        calls.append(dst)
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace_with_ctrl_c)
    before = signal.getsignal(signal.SIGINT)
    argv = ["analyze", str(csv_path), *SCALES, "--format", "json", "--out", str(tmp_path / "o.json"),
            "--report", str(tmp_path / "r.md")]
    assert main(argv) == 130
    assert capsys.readouterr().err == "cje: interrupted\n"
    assert len(calls) >= 3  # o.json, the figures and r.md: all renamed, none left half-way
    assert cje.Report.from_json((tmp_path / "o.json").read_text()).estimates
    assert (tmp_path / "r.md").is_file() and (tmp_path / "r_figures" / "forest.png").is_file()
    assert not list(tmp_path.glob(".cje-tmp-*"))
    assert signal.getsignal(signal.SIGINT) is before  # the handler restored


# ---- issue #20: --version, help for every option ------------------------------------------------
def test_version_prints_cje_and_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"cje {cje.__version__}"
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", cje.__version__)


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out = {"cje": parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            out.update({f"cje {name}": sub for name, sub in action.choices.items()})
    return out


def _options_without_help(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    missing = {}
    for name, p in _subparsers(parser).items():
        bare = [a.option_strings[0] if a.option_strings else a.dest for a in p._actions
                if not isinstance(a, argparse._SubParsersAction)
                and (a.help is None or not str(a.help).strip())]
        if bare:
            missing[name] = bare
    return missing


def test_every_option_of_every_subcommand_has_help() -> None:
    from cje.cli import _parser

    parser = _parser()
    assert {"cje analyze", "cje bias", "cje convert", "cje demo", "cje simulate"} <= set(
        _subparsers(parser))
    assert _options_without_help(parser) == {}


def test_the_help_walker_finds_an_option_without_help() -> None:
    """The walker above can fail: an option without help= is reported by command and flag."""
    p = argparse.ArgumentParser(prog="x")
    sub = p.add_subparsers(dest="command")
    s = sub.add_parser("run")
    s.add_argument("--documented", help="has help")
    s.add_argument("--bare")
    assert _options_without_help(p) == {"cje run": ["--bare"]}


@pytest.mark.parametrize("command", ["analyze", "bias", "convert", "demo", "simulate"])
def test_help_has_no_doubled_percent(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    assert "%%" not in out
    if command == "demo":
        assert "8% oracle labels" in out


@pytest.mark.parametrize(("command", "flags"), [
    ("convert", ["--judge-scale", "--label-scale"]),
    ("bias", ["--format"]),
])
def test_named_options_have_help_text(command: str, flags: list[str],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    out = " ".join(out[out.index("\noptions:"):].split())  # the option list, not the examples
    for flag in flags:
        # the flag's line carries words after its metavar, not just the metavar
        assert re.search(re.escape(flag) + r"(?: [A-Z{][^ ]*)* [a-z(]", out), flag


def test_json_output_carries_provenance_of_the_input_file(
        csv_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import hashlib

    assert main(["analyze", str(csv_path), *SCALES, "--format", "json"]) == 0
    prov = json.loads(capsys.readouterr().out)["provenance"]
    assert prov["cje_version"] == cje.__version__
    assert prov["inputs"]["data"] == {"path": str(csv_path),
                                      "sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest()}
