"""Markdown / HTML reports and flat exports (cje.export, `cje analyze --report`, `cje convert`)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import cje  # noqa: E402
from cje.cli import main  # noqa: E402
from cje.export import convert, flat_table, report_markdown, write_report  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    return cje.synthetic.make_direct_eval(300, rng=1)


@pytest.fixture(scope="module")
def rep(sim):
    return cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


def test_markdown_report_has_every_policy_and_its_figures(rep, tmp_path):
    files = write_report(rep, tmp_path / "r.md")
    text = files[0].read_text()
    assert [p.name for p in files[1:]] == ["forest.png", "reliability.png", "contrasts.png"]
    for p in files[1:]:
        assert f"(r_figures/{p.name})" in text and p.stat().st_size > 1000
    table = text.split("## Estimates", 1)[1].split("##", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "policy" not in line]
    assert sorted(r.split("|")[1].strip() for r in rows) == sorted(e.policy for e in rep.estimates)
    e = rep["improved"]
    assert f"| improved | {e.estimate:.3f} | [{e.ci_low:.3f}, {e.ci_high:.3f}] |" in text
    assert "## Paired contrasts" in text
    assert ("## Status reasons" in text) == any(e.reasons for e in rep.estimates)


def test_html_report_is_one_file_with_embedded_figures(rep, tmp_path):
    files = write_report(rep, tmp_path / "r.html")
    assert files == [tmp_path / "r.html"]
    text = files[0].read_text()
    assert text.count("data:image/png;base64,") == 3
    assert text.count("<h2>") >= 4 and "<th>policy</th>" in text
    assert "<script" not in text  # a static page


def test_offpolicy_markdown_has_the_overlap_table(arena):
    off = cje.analyze(arena / "logged_data.jsonl", estimator="snips")
    text = report_markdown(off)
    overlap = text.split("## Overlap (off-policy)", 1)[1].split("##", 1)[0]
    assert overlap.count("\n| ") == 4  # header + 3 targets
    assert "parallel_universe_prompt | 0.34%" in overlap


def test_report_path_must_be_md_or_html(rep, tmp_path):
    with pytest.raises(cje.CJEInputError, match=r"\.md or \.html"):
        write_report(rep, tmp_path / "r.pdf")


def test_convert_round_trips_an_analysis(arena, tmp_path):
    out = convert(arena / "logged_data.jsonl", tmp_path / "flat.parquet")
    flat = pd.read_parquet(out)
    assert len(flat) == 1000 and {"logprob_base", "logprob[unhelpful]"} <= set(flat.columns)
    a = cje.analyze(arena / "logged_data.jsonl", estimator="snips")
    b = cje.analyze(out, estimator="snips")
    for e in a.estimates:
        assert b[e.policy].estimate == pytest.approx(e.estimate, abs=1e-12)


def test_flat_table_keeps_unlabelled_rows_and_covariates(sim):
    d = cje.load(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                 covariates=["response_length"])
    flat = flat_table(d)
    assert len(flat) == d.n_rows and flat["oracle_label"].isna().sum() == d.n_rows - d.n_labels
    assert flat["response_length"].tolist() == d.covariates["response_length"].tolist()


def test_cli_convert_and_report(arena, tmp_path, capsys):
    assert main(["convert", str(arena / "fresh_draws"), str(tmp_path / "flat.csv")]) == 0
    flat = pd.read_csv(tmp_path / "flat.csv")
    assert sorted(flat["policy"].unique()) == ["base", "clone", "parallel_universe_prompt",
                                              "unhelpful"]
    assert main(["analyze", str(tmp_path / "flat.csv"), "--report", str(tmp_path / "r.html")]) == 0
    assert "wrote" in capsys.readouterr().err and (tmp_path / "r.html").stat().st_size > 10_000
    assert main(["convert", str(tmp_path / "flat.csv"), str(tmp_path / "flat.txt")]) == 2
    assert "must end in .csv, .parquet or .jsonl" in capsys.readouterr().err
