"""The fresh-balance check on the weighting estimators' levels (SNIPS, calibrated IPS, IPS).

With a target's fresh draws given, a weighting level whose importance-weighted logged judge scores
do not reproduce the fresh draws' is CAUTION with a reason naming the weights / log-probabilities
(``simulations/results/independent_mixlog.md``, "After"). Before, only the DR levels were checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cje
from cje.synthetic import make_offpolicy_eval

REASON = "weighted logged responses score"


def _sim(flip: bool):
    sim = make_offpolicy_eval(1000, oracle_fraction=0.2, rng=3)
    logged = sim.logged.copy()
    if flip:
        # target 'moderate' scored with the mirror-image tilt: λ' = −θu − θ²/2 = −λ − θ², a
        # proper log-ratio (mean weight still 1, the mean-weight checks silent) that favours the
        # responses the target avoids
        th = sim.thetas["moderate"]
        lam = logged["logprob[moderate]"] - logged["logprob_base"]
        logged["logprob[moderate]"] = logged["logprob_base"] - lam - th * th
    fresh = sim.fresh[sim.fresh["policy"] != "base"]
    return sim, logged, fresh


@pytest.mark.parametrize("estimator", ["snips", "calibrated-ips", "ips"])
def test_wrong_logprobs_caution_weighting_level(estimator):
    sim, logged, fresh = _sim(flip=True)
    rep = cje.analyze(logged, fresh_draws=fresh, estimator=estimator,
                      judge_scale=sim.judge_scale, label_scale=sim.label_scale, progress=False)
    e = rep["moderate"]
    assert e.diagnostics["fresh_score_z"] > 3.29
    assert e.status == "CAUTION"
    assert any(REASON in r and "log-probabilities" in r for r in e.reasons)


def test_correct_logprobs_no_fresh_reason_and_same_numbers():
    sim, logged, fresh = _sim(flip=False)
    kw = dict(judge_scale=sim.judge_scale, label_scale=sim.label_scale, progress=False)
    rep = cje.analyze(logged, fresh_draws=fresh, estimator="snips", **kw)
    for pol in ("mild", "moderate", "far"):
        e = rep[pol]
        assert np.isfinite(e.diagnostics["fresh_score_z"])
        assert not any(REASON in r for r in e.reasons)
    # without fresh draws: no such diagnostic; the level itself does not depend on the check
    bare = cje.analyze(logged, estimator="snips", **kw)
    assert "fresh_score_z" not in bare["moderate"].diagnostics


def test_fresh_draws_on_other_prompts_are_left_out():
    """Fresh draws on only half the logged prompts (and some on prompts without logged rows):
    the check compares those prompts' logged rows only, and stays quiet on correct data."""
    sim, logged, fresh = _sim(flip=False)
    pids = logged["prompt_id"].unique()
    half = set(pids[: pids.size // 2])
    f = fresh[fresh["prompt_id"].isin(half)].copy()
    extra = f.iloc[:50].copy()
    extra["prompt_id"] = "other_" + extra["prompt_id"].astype(str)
    f = pd.concat([f, extra], ignore_index=True)
    rep = cje.analyze(logged, fresh_draws=f, estimator="calibrated-ips",
                      judge_scale=sim.judge_scale, label_scale=sim.label_scale, progress=False)
    for pol in ("mild", "moderate", "far"):
        z = rep[pol].diagnostics["fresh_score_z"]
        assert np.isfinite(z) and abs(z) < 3.29
