"""Hostile checks of the report writers (cje.export, Report.to_*): file names that break links,
and cells that would misstate the report's numbers."""

from __future__ import annotations

import re
from urllib.parse import unquote

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

import cje  # noqa: E402
from cje.export import write_report  # noqa: E402


@pytest.fixture(scope="module")
def rep() -> cje.Report:
    sim = cje.synthetic.make_direct_eval(200, rng=1)
    return cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


def test_markdown_figure_links_survive_spaces_and_parentheses(rep: cje.Report, tmp_path) -> None:
    # Before: "![forest](my report (v2)_figures/forest.png)": a space ends a CommonMark link
    # destination, so GitHub and every CommonMark renderer showed the line as text.
    files = write_report(rep, tmp_path / "my report (v2).md")
    text = files[0].read_text(encoding="utf-8")
    links = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text)  # a CommonMark destination: no space
    assert len(links) == len(files) - 1 >= 2
    for link, png in zip(links, files[1:], strict=True):
        assert (tmp_path / unquote(link)) == png and png.is_file()
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # the regex above is the check
        return
    html = MarkdownIt("commonmark").render(text)
    assert html.count("<img ") == len(links)


def test_naive_column_says_it_is_on_the_label_scale(rep: cje.Report) -> None:
    # The naive number is the judge mean mapped linearly onto the label scale (hand-checked
    # below); before, the summary and the markdown/HTML header called it the "raw judge mean",
    # a number a reader would compare with the judge scores (e.g. 2.66 for a judge mean of 4.16).
    from cje.export import report_markdown

    sim = cje.synthetic.make_direct_eval(200, rng=1)
    (jlo, jhi), (lo, hi) = sim.judge_scale, sim.label_scale
    mean = sim.data.loc[sim.data.policy.eq("base"), "judge_score"].mean()
    assert rep["base"].naive_estimate == pytest.approx(lo + (mean - jlo) / (jhi - jlo) * (hi - lo))
    assert "naive = raw judge mean rescaled to the label scale" in rep.summary()
    assert "| naive judge mean (rescaled to the label scale) |" in report_markdown(rep)


def test_csv_estimates_carry_their_scale(rep: cje.Report) -> None:
    # Before: a CSV row said units=label but not which scale, so 3.3 on 1-5 and 3.3 on 0-10
    # read the same; an uncalibrated report's judge-scale means looked like label values.
    import io

    import pandas as pd

    t = pd.read_csv(io.StringIO(rep.to_csv()))
    assert list(t.columns[t.columns.get_loc("units"):][:2]) == ["units", "scale"]
    assert set(t["scale"]) == {"label scale 1 to 5"}
    sim = cje.synthetic.make_direct_eval(100, rng=1)
    raw = cje.analyze(sim.data.assign(oracle_label=float("nan")), judge_scale=(0, 10),
                      label_scale=(1, 5))
    t = pd.read_csv(io.StringIO(raw.to_csv()))
    assert set(t["units"]) == {"judge"} and set(t["scale"]) == {"judge scale 0 to 10"}


def test_no_standard_error_gives_no_calibration_share() -> None:
    """A policy seen on one prompt has no standard error (NaN, REFUSED); its calibration share
    was reported as 0.0 ('cal% 0'), a number without a basis. Now NaN, shown as '—'."""
    import warnings

    import pandas as pd

    sim = cje.synthetic.make_direct_eval(200, oracle_fraction=0.3, rng=0)
    one = sim.data[sim.data.policy == sim.data.policy.iloc[0]].iloc[:1].assign(policy="solo")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(pd.concat([sim.data, one]), judge_scale=(0, 10), label_scale=(1, 5))
    e = rep["solo"]
    assert e.status == "REFUSED" and e.se != e.se and e.calibration_share != e.calibration_share
    others = [x for x in rep.estimates if x.policy != "solo"]
    assert all(0.0 <= x.calibration_share <= 1.0 for x in others)
