"""A defect and its gate: OK intervals of a policy near the top of a binary scale with few labels
of its own covered far less than 95% (``simulations/results/independent_small.md``); the
near-bound gate cautions them.

The process is the one of ``simulations/independent_small.py`` (numpy only), reduced to two
policies on 120 shared prompts with 15 labels each and a judge with three distinct scores:
``A`` (value 0.5) and ``T`` (value 0.972). The judge's scores mean much more for ``T`` than for
``A`` (E[Y | S] is higher for the better policy at every score), so ``T``'s level rests on its
own residual correction. When ``T``'s 15 labels miss its lower-scored responses the correction
and its estimated variance are both near 0: the level is too low, its interval narrow and away
from the bound, and the status OK; when they hit them the level is right, and its interval
crosses 1 (CAUTION). The OK status selected the misses. The coverage test is slow-tier only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import cje

SIGMA = math.sqrt(0.7**2 + 0.6**2 + 0.5**2)
SHIFT = {"A": 0.0, "T": 2.0}


def _truth(policy: str) -> float:
    return 0.5 * (1.0 + math.erf(SHIFT[policy] / SIGMA / math.sqrt(2.0)))


def _data(seed: int, n: int = 120, m: int = 15) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = 0.7 * rng.standard_normal(n)
    pid = [f"p{i}" for i in range(n)]
    parts = []
    for pol, q in SHIFT.items():
        v = q - a + 0.6 * rng.standard_normal(n)
        y = (v + 0.5 * rng.standard_normal(n) > 0).astype(float)
        u = v + 0.6 * rng.standard_normal(n)
        s = 1.0 + (u > -0.3) + (u > 0.8)
        keep = np.zeros(n, dtype=bool)
        keep[rng.choice(n, size=m, replace=False)] = True
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": pol, "judge_score": s,
                                   "oracle_label": np.where(keep, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def test_estimate_on_the_bound_up_to_rounding_gets_its_interval_cut() -> None:
    """A level whose calibrated scores and labels are all 1 can add up to 1 + 2e-16. The sanity
    gate counts it on the scale (tolerance 1e-9 of the width) but the interval was left uncut,
    reaching 1.04 on a 0–1 scale (21 of 612,000 estimates in
    ``simulations/results/independent_small.md``). This process, seed 116."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(_data(116), judge_scale=(1, 3), label_scale=(0, 1))
    t = rep["T"]
    assert 1.0 < t.estimate < 1.0 + 1e-12  # the number is kept as computed
    assert t.ci_high == 1.0 and t.diagnostics["interval_clipped"]
    assert t.diagnostics["ci_high_unclipped"] > 1.0
    assert t.status == "CAUTION" and any("reported cut" in r for r in t.reasons)


@pytest.mark.slow
def test_near_the_top_of_a_binary_scale_few_own_labels_are_not_ok():
    """Before the near-bound gate (``cje.diagnostics.gates.few_labels_near_bound``) ``T`` was OK in 80
    of 1,000 replicates and those covered 0.74 ± 0.05: 21 wrong OKs. With it (2026-12-07) ``T`` is
    OK in 2 of 1,000 (both miss: estimates far enough below the bound that even the floored
    interval stays inside it), while the mid-scale policy ``A`` with as few labels stays OK in 920.
    Bounds: at most 6 wrong OKs per 1,000 replicates (a Poisson count with mean 2 exceeds 6 with
    probability 0.5%; before the gate the count was 21), and ``A`` OK in at least 85% (binomial SD
    of the measured 0.92 is 0.009)."""
    wrong, a_ok, runs = 0, 0, 0
    for seed in range(900_000, 901_000):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rep = cje.analyze(_data(seed), judge_scale=(1, 3), label_scale=(0, 1))
            except cje.errors.CJEInputError:  # all 30 labels equal: cannot calibrate
                continue
        runs += 1
        t = rep["T"]
        wrong += t.status == "OK" and not (t.ci_low <= _truth("T") <= t.ci_high)
        a_ok += rep["A"].status == "OK"
    assert runs > 950, runs
    assert wrong <= 6, wrong
    assert a_ok >= 0.85 * runs, (a_ok, runs)
