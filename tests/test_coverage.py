"""Seeded Monte Carlo coverage of the direct estimator's OUA intervals (fast tier)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cje


def _coverage(reps: int, n_prompts: int, frac: float, *, seed0: int = 1000, **sim_kw):
    hit, naive_hit = [], []
    for r in range(reps):
        sim = cje.synthetic.make_direct_eval(n_prompts, oracle_fraction=frac, rng=seed0 + r, **sim_kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        for e in rep.estimates:
            t = sim.truth[e.policy]
            hit.append(e.ci_low <= t <= e.ci_high)
            naive_hit.append(e.naive_ci_low <= t <= e.naive_ci_high)
    return float(np.mean(hit)), float(np.mean(naive_hit))


def test_direct_coverage_miscalibrated_judge_10pct_labels():
    # 300 replicates x 5 policies = 1500 intervals. Binomial MC SE at 0.95 is 0.0056 (policies of
    # one replicate share prompts, so allow ~2x): the band [0.92, 0.98] is > 5 SE from 0.95.
    cov, naive = _coverage(300, 1000, 0.10)
    assert 0.92 <= cov <= 0.98, cov
    assert naive < 0.20, naive


@pytest.mark.slow
@pytest.mark.parametrize("frac", [0.05, 0.10, 0.25])
@pytest.mark.parametrize("n_prompts", [500, 2000])
def test_direct_coverage_grid_slow(frac, n_prompts):
    # 1000 replicates x 5 policies; MC SE ~0.003 (x2 for within-replicate correlation).
    cov, naive = _coverage(1000, n_prompts, frac, seed0=50_000)
    assert 0.93 <= cov <= 0.97, cov
    assert naive < 0.20
