"""Probe slices that do not correct as the design says, cautioned (``simulations/results/
independent_probes.md``, "After"):

* labels on another rubric than the data's (1–5 against 1–10, every value inside the declared
  scale): :func:`cje.pipeline.probes.rubric_check`, while a policy the judge mis-rates (the Arena's
  ``unhelpful``; the study's ``P10`` / ``PS``) keeps its corrected level OK;
* an off-policy target without fresh draws whose probe is the top-scored of its responses: its
  probe's scores against its importance-weighted logged rows'
  (:func:`cje.pipeline.probes.score_balance` with weights).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import cje
from cje.diagnostics.gates import BALANCE_Z
from cje.pipeline.probes import RUBRIC_SHARE, rubric_check, score_balance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_probes as study  # noqa: E402


def _direct(seed: int, kind: str):
    data, probes, lo, hi = study.direct_data(seed, 0.10, 50, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, probes=probes, judge_scale=(1, 10), label_scale=(lo, hi),
                           transport_margin=0.05 * (hi - lo), seed=seed)


def test_probe_on_another_rubric_is_cautioned_and_misrated_policies_are_not() -> None:
    # seed 0: every probed level was OK with coverage 0 before (labels 1 + 4Y against 1 + 9Y)
    rep = _direct(0, "scale")
    for p in study.PROBED:
        e = rep[p]
        assert e.status == "CAUTION", p
        assert any("another rubric" in r for r in e.reasons), p
        assert e.diagnostics["probe_labels_unreached"] >= RUBRIC_SHARE
        truth = 1 + 9 * study.TRUTH[p]
        assert not e.ci_low <= truth <= e.ci_high  # what the caution is for
    assert rep["base"].status == "OK"
    # the same seed with probes on the data's rubric: P10 / PS are mis-rated by the judge and
    # their labels still reach where the data's lie: no rubric caution
    rep = _direct(0, "random")
    for p in study.PROBED:
        assert "probe_labels_unreached" not in rep[p].diagnostics
        assert rep[p].status == "OK"
    # a real, badly mis-rated policy (delta = -0.275 of the scale): its probe still corrects it
    ds = cje.datasets.arena()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(ds.fresh_draws, probes=ds.probes, transport_margin=0.05)
    e = rep["unhelpful"]
    assert e.status == "OK" and "probe_labels_unreached" not in e.diagnostics
    audit = {a.policy: a for a in rep.audits}["unhelpful"]
    assert audit.verdict == "FAIL" and audit.delta < -0.2


def test_rubric_check_by_hand() -> None:
    # data residuals with quartiles -0.1 / +0.1 exactly; a probe of 10 rows
    e = np.array([-0.3, -0.1, -0.1, 0.0, 0.1, 0.1, 0.3])
    f = np.linspace(0.1, 0.9, 10)
    y = np.full(10, 0.5)
    y[0] = 0.45
    # the lower quartile f - 0.1 lies above the highest label 0.5 where f > 0.6: 4 rows
    above = int(np.count_nonzero(f - 0.1 > y.max()))
    more, why = rubric_check(y, f, e, (1.0, 5.0))
    assert above == 4 and more == {"probe_labels_unreached": 0.4} and "above 3" in why
    # lowest label 0.45: f + 0.1 < 0.45 where f < 0.35: 3 rows, fewer than above
    assert int(np.count_nonzero(f + 0.1 < y.min())) == 3
    # 2 rows beyond the range: fewer than RUBRIC_MIN_ROWS, no caution
    assert rubric_check(y, np.r_[np.full(8, 0.5), 0.9, 0.9], e) == ({}, None)


def test_weighted_score_balance_by_hand() -> None:
    rng = np.random.default_rng(7)
    cl = np.repeat(np.arange(40), 3)
    s = rng.uniform(1, 10, cl.size)
    w = rng.lognormal(0, 0.8, cl.size)
    ps, pcl = rng.uniform(1, 10, 30), np.arange(30)
    m = float(np.sum(w * s) / np.sum(w))
    phi = (w / w.mean()) * (s - m)
    tot = np.bincount(cl, weights=phi)
    vd = 40 / 39 * np.sum(tot**2) / cl.size**2
    vp = 30 / 29 * np.sum((ps - ps.mean()) ** 2) / 30**2
    diff, z, _ = score_balance(ps, pcl, s, cl, w)
    assert diff == pytest.approx(ps.mean() - m, rel=1e-12)
    assert z == pytest.approx((ps.mean() - m) / np.sqrt(vp + vd), rel=1e-12)


def _offpolicy(seed: int, kind: str):
    logged, fd, probes = study.offpolicy_data(seed, False, kind)
    assert fd is None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(logged, probes=probes, judge_scale=(1, 10), label_scale=(0, 1),
                           transport_margin=0.05, seed=seed)


def test_top_scored_probe_of_target_without_fresh_draws_is_cautioned() -> None:
    top = _offpolicy(3, "top")["ess50"]
    assert top.diagnostics["probe_score_z"] > BALANCE_Z
    assert top.status == "CAUTION"
    assert any("importance-weighted logged rows" in r for r in top.reasons)
    rnd = _offpolicy(3, "random")["ess50"]
    assert abs(rnd.diagnostics["probe_score_z"]) < BALANCE_Z
    assert rnd.status == "OK"
