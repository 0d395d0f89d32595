"""A defect and its gate: with a right-skewed, unbounded oracle outcome (revenue) and no declared
``label_scale``, the label scale was the labels' own range, and OK intervals covered far less
than 95% (``simulations/results/independent_kpi.md``).

Process (numpy only, as ``simulations/independent_kpi.py``): three policies on 500 shared prompts,
latent quality ``Z = μ_p + d + ξ`` (``d ~ N(0, 0.5²)``, ``ξ ~ N(0, 0.75)``), oracle revenue
``Y = 10·exp(2 W/τ)`` with ``W = Z + N(0, 0.5²)``, ``τ² = 1.25`` (lognormal, σ = 2), judge
``S = clip(round(5 + 1.5 (Z + N(0, 0.5²)), 1), 0, 10)``, 10% of rows labelled at random.
No common scale holds the labels, so cje took ``(smallest label, largest label)`` as the scale.
A sample that drew a rare large label got a wide scale and a level near its bottom (CAUTION by
the near-bound gates); a sample that missed the tail got a narrow scale, a level mid-scale and OK,
with an estimate and a standard error both too small. OK selected the misses: its intervals
covered 0.47–0.87 (6–7% of all intervals were OK and missed). The gate
(:func:`cje.diagnostics.gates.label_range_gate`) cautions every level on such a scale.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.diagnostics.gates import label_range_gate

TAU = math.sqrt(1.25)
MU = {"A": 0.0, "B": 0.3, "C": 0.0}


def _truth(policy: str) -> float:
    return 10.0 * math.exp(2.0 * MU[policy] / TAU + 2.0)


def _data(seed: int, n: int = 500, pl: float = 0.10) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = 0.5 * rng.standard_normal(n)
    pid = [f"p{i}" for i in range(n)]
    parts = []
    for pol, mu in MU.items():
        z = mu + d + math.sqrt(0.75) * rng.standard_normal(n)
        y = 10.0 * np.exp(2.0 * (z + 0.5 * rng.standard_normal(n)) / TAU)
        s = np.clip(np.round(5.0 + 1.5 * (z + 0.5 * rng.standard_normal(n)), 1), 0.0, 10.0)
        lab = rng.random(n) < pl
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": pol, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def test_range_scale_cautions_every_level_with_the_reason() -> None:
    """One replicate: the inferred scale is the labels' range, every level is CAUTION and says
    why; declaring a scale the labels do not fill leaves it to the other gates."""
    data = _data(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, judge_scale=(0, 10))
    lab = data["oracle_label"].dropna()
    assert rep.label_scale == (lab.min(), lab.max())
    for e in rep.estimates:
        assert e.status != "OK"
        assert any("labels' own range" in r for r in e.reasons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, judge_scale=(0, 10), label_scale=(0, 1e6))
    assert not any("labels' own range" in r for e in rep.estimates for r in e.reasons)


def test_label_range_gate_leaves_common_and_unfilled_scales() -> None:
    """Only a non-common scale whose two ends are both labels is a range."""
    y = np.array([0.0, 0.3, 1.0, np.nan])
    assert label_range_gate((2.5, 71.0), y)[0] == "CAUTION"
    assert label_range_gate((0.0, 1.0), y) == ("OK", None)       # binary labels: a bound
    assert label_range_gate((1.0, 5.0), y) == ("OK", None)
    assert label_range_gate((0.0, 500.0), np.array([0.0, 0.3, 0.9])) == ("OK", None)
    assert label_range_gate((2.5, 71.0), np.array([1.0])) == ("OK", None)


def test_amounts_that_fit_an_inferred_0_100_scale_are_cautioned() -> None:
    """Lognormal σ = 1 amounts (a tenth of the process above's σ = 2 revenue, so every label stays
    below 100): the scale (0, 100) is inferred and was taken for a bound, and OK intervals covered
    0.79 (``simulations/results/independent_kpi.md``). Now every level is CAUTION and says the
    scale was inferred; declared, the reason is absent. Rounded to whole numbers they are still
    amounts (integer dollars): since round two they are cautioned for their skew
    (``tests/test_kpi_scale.py``); whole-number ratings on the same rows are not."""
    data = _data(5)
    y = data["oracle_label"]
    data["oracle_label"] = np.minimum(np.sqrt(y), 99.0)  # σ = 1 amounts (below 100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, judge_scale=(0, 10))
        assert rep.label_scale == (0.0, 100.0)
        for e in rep.estimates:
            assert e.status != "OK" and any("was inferred" in r for r in e.reasons)
        declared = cje.analyze(data, judge_scale=(0, 10), label_scale=(0, 100))
        dollars = cje.analyze(data.assign(oracle_label=data["oracle_label"].round()),
                              judge_scale=(0, 10))
        ratings = cje.analyze(data.assign(oracle_label=np.round(50 + 10 * np.log(data["oracle_label"]))),
                              judge_scale=(0, 10))
    for r in (declared, ratings):
        assert not any("was inferred" in x for e in r.estimates for x in e.reasons)
    assert all(any("whole numbers but skewed" in x for x in e.reasons) for e in dollars.estimates)
    assert label_range_gate((0.0, 100.0), np.array([0.1153, 0.2, 0.9]), inferred=True)[0] == "CAUTION"
    assert label_range_gate((0.0, 100.0), np.array([0.1153, 0.2, 0.9]))[0] == "OK"  # declared
    assert label_range_gate((0.0, 10.0), np.array([0.1153, 0.2, 0.9]), inferred=True)[0] == "OK"


@pytest.mark.slow
def test_ok_intervals_of_a_skewed_kpi_on_its_range_scale_are_not_wrong() -> None:
    """200 replicates, three policies: before the gate 43 of the 600 intervals were OK and
    missed the truth (157 OK, covering 0.73); now none may be OK, and the intervals of every
    status are reported unchanged (their coverage, 0.85, is printed, not asserted)."""
    ok = wrong_ok = total = covered = 0
    for seed in range(200):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(_data(10_000 + seed), judge_scale=(0, 10))
        for e in rep.estimates:
            t = _truth(e.policy)
            hit = e.ci_low <= t <= e.ci_high
            total += 1
            covered += hit
            ok += e.status == "OK"
            wrong_ok += e.status == "OK" and not hit
    print(f"coverage of all intervals {covered / total:.3f}; OK {ok}, OK and missed {wrong_ok}")
    assert wrong_ok <= 0.01 * total
