"""A policy whose level is not OK is starred wherever it is compared: contrasts, ranking, plot.

Found by ``simulations/independent_contrasts.py`` (design ``some``): a policy without labels of its
own that the judge over-rates is CAUTION, and its contrasts are significant in the wrong direction
(equal true value, ``A − V`` significant in 70–100% of replicates). The "Better" line already starred
it; the ranking line (``V > G > {A2, A} > W``), the contrast lines and the contrast plot did not,
so a reader of the ranking saw a plain order.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

import cje
from cje._text import NOT_OK_NOTE

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def report() -> cje.Report:
    # A and G labelled (15%), V unlabelled and over-rated by the judge (+1 point): V is CAUTION
    rng = np.random.default_rng(0)
    n = 600
    d = rng.standard_normal(n)
    parts = []
    for name, mu, bias, labelled in (("A", 0.0, 0.0, True), ("G", 0.3, 0.0, True), ("V", 0.0, 1.0, False)):
        z = mu - d + 0.5 * rng.standard_normal(n)
        s = np.clip(np.round(1 + 9 / (1 + np.exp(-(z + 0.7 * rng.standard_normal(n)))) + bias), 1, 10)
        y = 1.0 + sum((z > c).astype(float) for c in (-1.5, -0.5, 0.5, 1.5))
        lab = labelled & (rng.random(n) < 0.15)
        parts.append(pd.DataFrame({"prompt_id": np.arange(n), "policy": name, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    rep = cje.analyze(pd.concat(parts, ignore_index=True), judge_scale=(1, 10), label_scale=(1, 5))
    assert {e.policy: e.status for e in rep.estimates} == {"A": "OK", "G": "OK", "V": "CAUTION"}
    assert any("V" in t for t in rep.ranking)  # ranked: CAUTION is not REFUSED
    return rep


def test_summary_stars_the_caution_policy_in_contrasts_and_ranking(report: cje.Report) -> None:
    lines = report.summary().splitlines()
    ranking = next(ln for ln in lines if ln.strip().startswith("Ranking ("))
    assert "V*" in ranking and NOT_OK_NOTE in ranking
    assert "A*" not in ranking and "G*" not in ranking
    contrast_lines = [ln for ln in lines if " − " in ln and "p_holm = " in ln and ln.startswith("  ")]
    assert len(contrast_lines) == 3
    for ln in contrast_lines:
        names = ln.split(":")[0].strip().split(" − ")
        assert len(names) == 2, ln
        for x in names:
            assert x.endswith("*") == (x.rstrip("*") == "V"), ln
    assert any(ln.strip() == f"(name{NOT_OK_NOTE})" for ln in lines)


def test_all_ok_report_has_no_star_and_no_legend() -> None:
    sim = cje.synthetic.make_direct_eval(300, oracle_fraction=0.2, rng=1)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert all(e.status == "OK" for e in rep.estimates)
    text = rep.summary()
    ranking = next(ln for ln in text.splitlines() if ln.strip().startswith("Ranking ("))
    assert "*" not in ranking.split("): ", 1)[1] and NOT_OK_NOTE not in text


def test_markdown_report_stars_the_policy_in_the_tables(report: cje.Report, tmp_path) -> None:
    path = tmp_path / "r.md"
    report.write(path, figures=False)
    md = path.read_text()
    contrasts = md[md.index("## Paired contrasts"):md.index("## Status reasons")]
    assert contrasts.count("V\\*") == 2 and "A\\*" not in contrasts
    heading, _, rest = md[md.index("## Ranking"):].partition("\n\n")
    assert "status not OK" in heading
    assert rest.startswith("* V\\* &gt; ")  # V (over-rated) on top, starred


def test_contrast_plot_stars_the_caution_policy(report: cje.Report) -> None:
    ax = cje.plots.contrast_plot(report)
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert sum("V*" in t for t in ticks) == 2 and not any("A*" in t or "G*" in t for t in ticks)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("* status CAUTION") for t in legend)
    assert any("V*" in t.get_text() for t in ax.texts)  # the ranking line above the plot
