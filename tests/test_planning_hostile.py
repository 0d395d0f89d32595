"""Hostile pilots for cje.plan: labels that are not a uniform random sample (own simulator)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError, CJEWarning

KW = {"judge_scale": (0, 10), "label_scale": (0, 1)}


def _pilot(select: str, seed: int = 0, n: int = 1000, n_lab: int = 60) -> pd.DataFrame:
    """Binary labels with P(y = 1) = q, judge 10q + N(0, 1.5); ``n_lab`` labels uniform or on the
    top scores."""
    rng = np.random.default_rng(seed)
    q = rng.beta(2, 2, n)
    s = np.clip(10 * q + rng.normal(0, 1.5, n), 0, 10)
    y = (rng.random(n) < q).astype(float)
    idx = rng.choice(n, n_lab, replace=False) if select == "uniform" else np.argsort(-s)[:n_lab]
    lab = np.full(n, np.nan)
    lab[idx] = y[idx]
    return pd.DataFrame({"prompt_id": [f"q{i}" for i in range(n)], "policy": "m",
                         "judge_score": s, "oracle_label": lab})


def test_labels_on_the_top_scores_draw_a_notice():
    # before: planned silently from a pilot whose 60 labels were the 60 highest scores: ±0.51 now,
    # 17,288 labels (and 288,129 prompts) asked for ±0.03 where a uniform pilot asks for 1,073
    with pytest.warns(CJEWarning, match="do not look like a uniform random sample"):
        p = cje.plan(_pilot("top"), half_width=0.03, **KW)
    assert any("KS D = 1.00" in n for n in p.notices)
    assert "uniform random sample of its rows" in p.summary()


def test_uniform_pilot_draws_no_selection_notice():
    # the check runs at family-wise level 0.001: a uniform pilot trips it once in 1,000 seeds at most
    with warnings.catch_warnings():
        warnings.simplefilter("error", CJEWarning)
        p = cje.plan(_pilot("uniform"), half_width=0.08, **KW)
    assert not any("uniform random sample of its rows" in n for n in p.notices)


def test_label_design_refuses_missing_and_text_scores() -> None:
    """A NaN judge score has no score region (it used to take the top region's probability
    silently), and text scores crashed with a raw ValueError: both refused, naming the fix."""
    sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
    p = cje.plan(sim.data, half_width=0.05, judge_scale=(0, 10), label_scale=(1, 5), next=100)
    bad = sim.data.copy()
    bad.loc[bad.index[3], "judge_score"] = np.nan
    with pytest.raises(CJEInputError, match=r"finite judge score on every row; row 3 has nan"):
        p.label_design(bad)
    text = sim.data.assign(judge_score=sim.data["judge_score"].astype(str).str.replace(".", ","))
    with pytest.raises(CJEInputError, match="numeric judge scores"):
        p.label_design(text)
