"""Intervals inside the label scale (issue #14, item 4) and estimates outside it (item 5).

The pipelines cut an interval at the label scale's bounds (``cje.inference.clip_interval``; chosen
over a logit-scale interval in ``simulations/results/study_bounds.md``), flag the cut in the
diagnostics, and gate on the uncut interval.
"""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest

import cje
from cje.diagnostics.gates import sanity_gate
from cje.inference import clip_interval, t_interval
from cje.results import PolicyEstimate
from cje.synthetic.direct import PolicySpec, make_direct_eval


def _rare_report():
    """Direct data with a policy whose value is about 0.03 (binary labels, 10% of rows)."""
    sim = make_direct_eval(500, (PolicySpec("rare", -4.0), PolicySpec("mid", 0.0)),
                           oracle_fraction=0.1, label_scale=(0.0, 1.0), rng=0)
    rng = np.random.default_rng(0)  # seed 0: estimate 0.045 inside the scale, t interval below 0
    y = sim.data["oracle_label"].to_numpy()
    yb = np.where(np.isnan(y), np.nan, (rng.random(y.size) < np.nan_to_num(y)).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cje.CJEWarning)
        return cje.analyze(sim.data.assign(oracle_label=yb), judge_scale=sim.judge_scale,
                           label_scale=(0.0, 1.0))


def test_clip_interval_cases() -> None:
    assert clip_interval(0.02, -0.01, 0.05, (0.0, 1.0)) == (0.0, 0.05, True)
    assert clip_interval(4.9, 4.7, 5.1, (1.0, 5.0)) == (4.7, 5.0, True)
    assert clip_interval(0.5, -0.3, 1.2, (0.0, 1.0)) == (0.0, 1.0, True)
    assert clip_interval(1.0 + 2e-16, 0.9, 1.1, (0.0, 1.0)) == (0.9, 1.0, True)  # rounding
    assert clip_interval(5.0 + 9e-15, 4.5, 5.5, (1.0, 5.0)) == (4.5, 5.0, True)
    assert clip_interval(0.5, 0.4, 0.6, (0.0, 1.0)) == (0.4, 0.6, False)
    lo, hi, cut = clip_interval(-0.01, -0.05, 0.03, (0.0, 1.0))  # impossible estimate: untouched
    assert (lo, hi, cut) == (-0.05, 0.03, False)
    lo, hi, cut = clip_interval(0.5, float("nan"), float("nan"), (0.0, 1.0))
    assert np.isnan(lo) and np.isnan(hi) and not cut


def test_direct_rare_rate_interval_is_cut_flagged_and_cautioned() -> None:
    rep = _rare_report()
    e = rep["rare"]
    assert 0.0 <= e.estimate < 0.1
    d = e.diagnostics
    assert d["interval_clipped"] is True
    assert e.ci_low == 0.0 and d["ci_low_unclipped"] < 0.0  # the t interval crossed 0
    assert d["ci_high_unclipped"] == e.ci_high
    # the uncut interval is the t interval of the estimate, SE and df
    lo, hi = t_interval(e.estimate, e.se, e.df, e.alpha)
    assert d["ci_low_unclipped"] == pytest.approx(lo, abs=1e-12)
    assert d["ci_high_unclipped"] == pytest.approx(hi, abs=1e-12)
    assert e.status == "CAUTION"
    assert any("reported cut to it" in r for r in e.reasons), e.reasons
    # an interval away from the bounds is not cut
    assert rep["mid"].diagnostics["interval_clipped"] is False
    assert "ci_low_unclipped" not in rep["mid"].diagnostics
    # the flag and the uncut ends travel through JSON
    back = next(x["diagnostics"] for x in json.loads(rep.to_json())["estimates"] if x["policy"] == "rare")
    assert back["interval_clipped"] is True and back["ci_low_unclipped"] == d["ci_low_unclipped"]


def test_cut_interval_wider_than_the_scale_is_still_refused() -> None:
    e = PolicyEstimate("p", 0.5, 0.4, 0.0, 1.0, 0.05, 30.0, 100, 100, 10, 0.16, 0.0, 0.0,
                       0.5, 0.4, 0.6, "direct", "OK",
                       diagnostics={"interval_clipped": True, "ci_low_unclipped": -0.3,
                                    "ci_high_unclipped": 1.3})
    g = sanity_gate(e, (0.0, 1.0))
    assert g.status == "REFUSED"
    assert any("before cutting it to the scale" in r and "wider (1.6)" in r for r in g.reasons)
    # the same interval, uncut, is refused for the same reason
    raw = dataclasses.replace(e, ci_low=-0.3, ci_high=1.3, diagnostics={})
    assert sanity_gate(raw, (0.0, 1.0)).status == "REFUSED"
    # a cut interval within the scale's width is CAUTION, never OK
    near = dataclasses.replace(e, estimate=0.03, ci_low=0.0, ci_high=0.07, diagnostics={
        "interval_clipped": True, "ci_low_unclipped": -0.01, "ci_high_unclipped": 0.07})
    assert sanity_gate(near, (0.0, 1.0)).status == "CAUTION"


def test_contrasts_stay_symmetric() -> None:
    rep = _rare_report()
    c = rep.pairs[0]
    half = (c.ci_high - c.ci_low) / 2
    assert c.estimate - c.ci_low == pytest.approx(half, abs=1e-12)


@pytest.fixture(scope="module")
def arena_ips():
    arena = cje.datasets.arena()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cje.CJEWarning)
        return cje.analyze(arena.logged, estimator="ips")


def test_arena_plain_ips_parallel_universe_is_refused_and_never_ranked(arena_ips) -> None:
    # item 5: plain IPS puts parallel_universe_prompt at ~14.8 on a 0–1 scale
    e = arena_ips["parallel_universe_prompt"]
    assert e.estimate > 1.0
    assert e.status == "REFUSED"
    assert any("outside the label scale" in r for r in e.reasons)
    assert e.diagnostics["interval_clipped"] is False  # an impossible estimate keeps its interval
    assert all("parallel_universe_prompt" not in group for group in arena_ips.ranking)
    assert all("parallel_universe_prompt" not in (c.policy_a, c.policy_b) for c in arena_ips.pairs)


def test_arena_offpolicy_interval_is_cut_at_one(arena_ips) -> None:
    # plain IPS's clone interval crosses 1 ([0.834, 1.013] uncut): reported cut, CAUTION
    e = arena_ips["clone"]
    assert e.diagnostics["interval_clipped"] is True
    assert e.ci_high == 1.0 and e.diagnostics["ci_high_unclipped"] > 1.0
    assert e.status == "CAUTION"
