"""Hostile checks of the ``cje`` command line: devices and pipes as outputs, locales that cannot
show the output, bad option values that used to run anyway, and error messages that name the
user's paths (never cje's temporary ones)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import cje
from cje.cli import main

SCALES = ["--judge-scale", "0", "10", "--label-scale", "1", "5"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    cje.synthetic.make_direct_eval(80, rng=2).data.to_csv(d / "scores.csv", index=False)
    cje.synthetic.make_pairwise_eval(120, rng=0).pairs.to_csv(d / "pairs.csv", index=False)
    return d


def _one_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("cje: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_out_to_a_pipe_writes_into_it_and_never_replaces_it(data_dir: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    # Before: the output was renamed over the target, so --out /dev/null (as root) or a FIFO was
    # replaced by a regular file holding the report. Now a device or pipe is written into.
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text(encoding="utf-8")), daemon=True)
    reader.start()
    try:
        code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, "--format", "json",
                     "--out", str(fifo)])
    finally:
        if reader.is_alive():  # unblock the reader if main never opened the pipe
            # Never a blocking open here: the reader may have read to the end and closed its end
            # while its thread is still finishing, and a blocking open for writing would then
            # wait forever for a reader (it hung CI once; about 2 runs in 1,000 locally).
            # Without a reader this open fails (ENXIO) and there is nothing to unblock.
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        reader.join(timeout=60)
    assert not reader.is_alive(), "the reader of the pipe never saw its end"
    assert code == 0
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a pipe, not a file
    assert got and cje.Report.from_json(got[0]).estimates  # the whole report came through
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".cje-tmp")]
    capsys.readouterr()


def _ascii_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONUTF8",
                                                                      "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONCOERCECLOCALE="0", PYTHONUTF8="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _ascii_locale_works() -> bool:
    out = subprocess.run([sys.executable, "-c", "import sys; print(sys.stdout.encoding)"],
                         env=_ascii_env(), capture_output=True, text=True)
    return out.stdout.strip().lower() in ("ascii", "ansi_x3.4-1968", "us-ascii")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locales")
def test_ascii_locale_out_file_is_utf8_and_stdout_fails_in_one_line(data_dir: Path,
                                                                     tmp_path: Path) -> None:
    if not _ascii_locale_works():
        pytest.skip("this Python does not honour an ASCII C locale")
    out = tmp_path / "summary.txt"
    cmd = [sys.executable, "-m", "cje.cli", "analyze", str(data_dir / "scores.csv"), *SCALES]
    # Before: --out wrote with the locale's codec, so the table ("1–5", "—") raised a traceback.
    r = subprocess.run([*cmd, "--out", str(out)], env=_ascii_env(), capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    assert "(1–5)" in text and "policy" in text
    # Before: printing the table to an ASCII stdout was a UnicodeEncodeError traceback (exit 1).
    r = subprocess.run(cmd, env=_ascii_env(), capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2
    assert "--out FILE" in _one_line(r.stderr)


def test_bias_bad_bootstrap_is_an_input_error_not_a_test_left_out(
        data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    # Before: exit 0, the pointwise verbosity test reported and "position: n_bootstrap must be
    # an integer >= 50" buried under "Not run".
    code = main(["bias", str(data_dir / "scores.csv"), "--pairs", str(data_dir / "pairs.csv"),
                 "--bootstrap", "10"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "--bootstrap" in _one_line(captured.err)


@pytest.mark.parametrize("alpha", ["1.5", "0", "nan", "-0.1"])
def test_bias_bad_alpha_names_the_flag(data_dir: Path, alpha: str,
                                       capsys: pytest.CaptureFixture) -> None:
    # Before: "No bias test could run on these data. verbosity: alpha must be ..." (a message
    # about the data, for a bad option).
    code = main(["bias", str(data_dir / "scores.csv"), "--alpha", alpha])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    line = _one_line(captured.err)
    assert "--alpha" in line and "No bias test" not in line


def test_convert_bad_suffix_names_the_given_path(data_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    # Before: "got '.cje-tmp-t77nw170/out.xlsx'": the message named cje's temporary path.
    code = main(["convert", str(data_dir / "scores.csv"), str(tmp_path / "out.xlsx")])
    line = _one_line(capsys.readouterr().err)
    assert code == 2
    assert ".cje-tmp" not in line and "out.xlsx" in line and ".parquet" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("plot", ["plan.txt", "plan"])
def test_plan_plot_suffix_is_checked_before_the_plan(data_dir: Path, tmp_path: Path, plot: str,
                                                    capsys: pytest.CaptureFixture) -> None:
    # Before: "plan.txt" was a matplotlib ValueError traceback (exit 1) after the plan was
    # printed; "plan" (no suffix) made matplotlib write plan.png, and the rename of the staged
    # file failed with "[Errno 2] No such file or directory: '.cje-tmp-…/plan'".
    code = main(["plan", str(data_dir / "scores.csv"), "--half-width", "0.05", *SCALES,
                 "--plot", str(tmp_path / plot)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # refused before the plan was computed
    line = _one_line(captured.err)
    assert "--plot" in line and ".png" in line and ".cje-tmp" not in line
    assert list(tmp_path.iterdir()) == []


def test_plan_from_a_json_file_that_is_not_utf8(tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    # Before: a UnicodeDecodeError traceback (exit 1).
    bad = tmp_path / "report.json"
    bad.write_bytes(b"\xff\xfe{\x00}\x00\xe9")
    code = main(["plan", str(bad), "--half-width", "0.05"])
    assert code == 2
    assert "JSON" in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize("flags", [
    ["--column", "judge_score=judge_score", "--column", "judge_score=score2"],
    ["--probe", "small=probe.csv", "--probe", "small=other.csv"],
])
def test_a_name_mapped_twice_is_refused(data_dir: Path, flags: list[str],
                                        capsys: pytest.CaptureFixture) -> None:
    # Before: the last of the two silently won (exit 0), e.g. the first probe slice was ignored.
    import pandas as pd

    data = pd.read_csv(data_dir / "scores.csv").assign(score2=lambda d: d.judge_score)
    data.to_csv(data_dir / "two.csv", index=False)
    for name in ("probe.csv", "other.csv"):
        data[data.policy.eq("small") & data.oracle_label.notna()].to_csv(data_dir / name,
                                                                         index=False)
    flags = [f.replace("small=", f"small={data_dir}{os.sep}") for f in flags]  # probe paths
    code = main(["analyze", str(data_dir / "two.csv"), *SCALES, *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "twice" in _one_line(captured.err)


def test_a_name_repeated_with_the_same_value_is_fine(data_dir: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, "--column",
                 "judge_score=judge_score", "--column", "judge_score=judge_score"])
    assert code == 0, capsys.readouterr().err


def test_report_under_a_file_is_refused_before_the_analysis(data_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    # Before: the analysis ran, then "cje: error: [Errno 17] File exists: '…/scores.csv'".
    blocker = tmp_path / "notes.txt"
    blocker.write_text("mine", encoding="utf-8")
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES,
                 "--report", str(blocker / "r.html")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""  # no summary: refused before the analysis
    assert "is a file, not a directory" in _one_line(captured.err)
    assert blocker.read_text(encoding="utf-8") == "mine"


def test_out_on_the_folder_another_output_writes_is_refused(data_dir: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    # Before: after the analysis, "[Errno 21] Is a directory: '.cje-tmp-…/r_figures' ->
    # 'r_figures'" (cje's temporary path in the message).
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, "--report",
                 str(tmp_path / "r.md"), "--out", str(tmp_path / "r_figures")])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    line = _one_line(captured.err)
    assert "--report writes into" in line and ".cje-tmp" not in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [["--transport-margin", "0.05"], ["--no-probe-correction"]])
def test_probe_options_without_a_probe_are_refused(data_dir: Path, flags: list[str],
                                                   capsys: pytest.CaptureFixture) -> None:
    # Before: exit 0 with no audit and no word that the option did nothing (audits come only
    # from --probe slices).
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    line = _one_line(captured.err)
    assert flags[0] in line and "--probe" in line


@pytest.mark.parametrize("flags", [["--var-cap", "1"], ["--residual-weights", "stable"]])
def test_weight_options_on_direct_data_are_refused(data_dir: Path, flags: list[str],
                                                   capsys: pytest.CaptureFixture) -> None:
    # Before: exit 0; the direct estimator uses no weights, so the option did nothing and the
    # report's settings did not even record it.
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert flags[0] in _one_line(captured.err)


@pytest.mark.parametrize("flags", [["--out", "a.json", "--out", "b.json"],
                                   ["--alpha", "0.05", "--alp=0.1"]])
def test_a_single_valued_option_given_twice_is_refused(data_dir: Path, tmp_path: Path,
                                                       flags: list[str],
                                                       capsys: pytest.CaptureFixture) -> None:
    # Before: argparse kept the last value silently (--out a.json --out b.json wrote b.json
    # only, exit 0).
    flags = [str(tmp_path / f) if f.endswith(".json") else f for f in flags]
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, "--format", "json", *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "given 2 times" in _one_line(captured.err)
    assert list(tmp_path.iterdir()) == []


def test_library_transport_margin_without_probes_says_it_did_nothing() -> None:
    """The CLI refuses --transport-margin without --probe; the library call, which used to
    ignore it silently, keeps its result and says in a notice that the margin graded nothing."""
    import warnings

    sim = cje.synthetic.make_direct_eval(200, oracle_fraction=0.3, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_margin = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5),
                                  transport_margin=0.1)
        plain = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    said = [n for n in with_margin.notices if "transport_margin=0.1 has no effect" in n]
    assert len(said) == 1 and not [n for n in plain.notices if "transport_margin" in n]
    assert [e.estimate for e in with_margin.estimates] == [e.estimate for e in plain.estimates]


def test_plots_folder_keeps_no_figure_of_an_earlier_analysis(arena: Path, data_dir: Path,
                                                             tmp_path: Path) -> None:
    """An off-policy run writes overlap.png into --plots DIR; a direct run into the same DIR
    used to leave it there, beside its own figures, as if it belonged to this analysis."""
    plots = tmp_path / "plots"
    assert main(["analyze", str(arena / "logged_data.jsonl"), "--fresh-draws",
                 str(arena / "fresh_draws"), "--plots", str(plots), "--out",
                 str(tmp_path / "a.json"), "--format", "json"]) == 0
    assert (plots / "overlap.png").is_file()
    (plots / "mine.png").write_bytes(b"not cje's")
    assert main(["analyze", str(data_dir / "scores.csv"), *SCALES, "--plots", str(plots),
                 "--out", str(tmp_path / "b.json"), "--format", "json"]) == 0
    assert not (plots / "overlap.png").exists() and (plots / "forest.png").is_file()
    assert (plots / "mine.png").read_bytes() == b"not cje's"  # not one of cje's names: kept


@pytest.mark.parametrize("args,flag", [(["--format", "json", "--reliable-only"], "--reliable-only"),
                                       (["--format", "json", "--explain"], "--explain"),
                                       (["--format", "csv", "--explain"], "--explain")])
def test_table_options_a_format_ignores_are_refused(data_dir: Path, args: list[str], flag: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["analyze", str(data_dir / "scores.csv"), *SCALES, *args])
    assert code == 2 and flag in _one_line(capsys.readouterr().err)
