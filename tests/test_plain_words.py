"""Plain words in the text output (issue #20): the demo's first screen, short status reasons with a
docs pointer that resolves, and ``--explain`` with a glossary kept in step with the docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cje
from cje._text import GLOSSARY, glossary_terms, short_reason
from cje.cli import main

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = {"Methods": "methods.md", "Off-policy": "offpolicy.md", "Getting started": "getting-started.md",
         "Planning a label budget": "planning.md"}
POLICIES = ["base", "concise", "improved", "small", "verbose"]


def _heading_exists(pointer: str) -> bool:
    page, section = pointer.split(" › ")
    headings = [ln.lstrip("#").strip() for ln in (DOCS / PAGES[page]).read_text().splitlines()
                if ln.startswith("#")]
    return any(h.startswith(section) for h in headings)


def test_demo_first_screen_names_values_intervals_and_the_better_policies(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    screen = capsys.readouterr().out.splitlines()[:25]
    text = "\n".join(screen)
    for p in POLICIES:  # each policy's calibrated value and its interval
        row = next(ln for ln in screen if ln.split()[:1] == [p])
        assert re.search(r"\d\.\d{3}\s+\[\d\.\d{3}, \d\.\d{3}\]", row), row
    better = next(ln for ln in screen if ln.startswith("Better ("))
    assert "improved > " in better and "no other pair is separable" in better
    # 'concise' has no labels (CAUTION): marked wherever it is compared, and the mark explained
    assert "concise*" in better and "concise " not in better.replace("concise*", "")
    assert better.endswith("(* status not OK: the comparison rests on that estimate's caveats, "
                           "see its reasons)")
    # every term of the glossary that the first screen uses is defined on it
    defined = {"OUA": "the calibration's own uncertainty (OUA)", "SE": "SE = standard error",
               "cal%": "cal% = share of the variance", "naive": "naive = raw judge mean",
               "labels": "labels = the policy's own oracle labels",
               "out-of-fold RMSE": "(typical error of one calibrated score)",
               "two_stage": "two_stage (a smooth index",
               # 'monotone' is the mode's name or the plain word in two_stage's description
               "monotone": ("monotone (label as a monotone", "then monotone)"),
               "status": None, "p_holm": "p_holm = Holm-adjusted"}
    used = glossary_terms(text)
    assert {"OUA", "SE", "cal%", "naive"} <= set(used)
    for term in used:
        if term == "status":  # the column's values are the words OK / CAUTION, and a reason
            assert "Status reasons" in text
            continue
        want = defined[term]
        assert any(w in text for w in ((want,) if isinstance(want, str) else want)), term


def test_short_reasons_are_short_and_point_at_docs_sections_that_exist() -> None:
    ds = cje.datasets.arena()
    reasons = set()
    for est in ("ips", "stacked-dr"):
        rep = cje.analyze(ds.logged, fresh_draws=ds.fresh_draws, probes=ds.probes, estimator=est)
        reasons |= {r for e in rep.estimates for r in e.reasons}
    rep = cje.analyze(ds.fresh_draws, probes=ds.probes)
    reasons |= {r for e in rep.estimates for r in e.reasons}
    assert len(reasons) >= 5
    for r in reasons:
        s = short_reason(r)
        head, pointer = s.rsplit(" [docs: ", 1)
        assert len(head) <= 160, head  # one short sentence; the full text stays in the JSON
        assert r.startswith(head.rstrip(".").split(": ")[0])
        assert _heading_exists(pointer.rstrip("]")), pointer


def test_explain_prints_full_reasons_and_every_term_used(capsys: pytest.CaptureFixture[str]) -> None:
    ds = cje.datasets.arena()
    rep = cje.analyze(ds.logged, fresh_draws=ds.fresh_draws, estimator="stacked-dr")
    short, full = rep.summary(), rep.summary(explain=True)
    for e in rep.estimates:
        for r in e.reasons:
            assert r in full and r not in short
    body = full.split("\nTerms used above:", 1)[0]
    listed = [ln.split(":")[0].strip() for ln in full.split("\nTerms used above:", 1)[1].splitlines()
              if ln.strip()]
    assert listed == glossary_terms(body)
    assert {"ESS", "Hill", "TTC", "CLE", "OUA"} <= set(listed)
    assert "--explain" in short and "Terms used above" not in short


def test_glossary_page_matches_the_code() -> None:
    page = (DOCS / "glossary.md").read_text()
    for term, (text, where) in GLOSSARY.items():
        assert f"**{term}**\n: {text} See [{where}]" in page, term
        assert _heading_exists(where), where
