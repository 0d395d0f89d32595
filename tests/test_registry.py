"""Estimators as objects in one registry: names, hyper-parameters, and a user's own estimator.

The acceptance test of issue #13: an off-policy estimator defined here, in the test file (one
class, a few lines), goes through ``cje.analyze`` and gets a full report — OUA intervals, overlap
diagnostics, a status — with no edit inside ``cje/``; its value is checked by hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

import cje
from cje.cli import _parser
from cje.errors import CJEInputError
from cje.estimators import (
    MRDR,
    CalibratedIPS,
    Estimator,
    PolicyValue,
    StackedDR,
    register,
    registered,
    resolve,
)

SCALES = {"judge_scale": (0.0, 1.0), "label_scale": (0.0, 1.0)}


@dataclass(frozen=True, slots=True)
class Clipped(Estimator):
    """IPS with Hájek weights clipped at ``clip``, self-normalised."""

    clip: float = 20.0
    name = "clipped-ips"
    overlap = "weighting"

    def __post_init__(self) -> None:
        if not self.clip > 0:
            raise CJEInputError(f"clip must be positive; got {self.clip!r}.")

    def estimate(self, x):
        w = np.minimum(x.weights, self.clip)
        y = x.reward + x.scaled_residual
        psi = float((w * y).sum() / w.sum())
        return PolicyValue(psi, w * (y - psi))


@pytest.fixture(scope="module")
def sim():
    return cje.synthetic.make_offpolicy_eval(600, n_fresh_per_prompt=1, oracle_fraction=0.2, rng=3)


def test_registry_names_and_cli_choices():
    names = registered()
    assert names[:8] == ("direct", "ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle",
                         "stacked-dr")
    (action,) = [a for a in _parser()._subparsers._group_actions[0].choices["analyze"]._actions
                 if a.dest == "estimator"]
    assert tuple(action.choices) == ("auto", *names)


def test_names_resolve_with_keyword_hyper_parameters():
    assert resolve("mrdr", logged=True, fresh=True, mrdr_omega="w2") == MRDR(omega="w2")
    assert resolve("calibrated-ips", logged=True, fresh=False, var_cap=1.0) == \
        CalibratedIPS(var_cap=1.0)
    assert resolve("auto", logged=True, fresh=True) == StackedDR()
    assert resolve("auto", logged=False, fresh=False).name == "direct"
    with pytest.raises(CJEInputError, match="omega must be 'w', 'w2' or 'w1sq'; got 'w9'"):
        MRDR(omega="w9")
    with pytest.raises(CJEInputError, match="var_cap must be"):
        CalibratedIPS(var_cap=0.0)


def test_object_equals_name_with_keywords(sim):
    by_name = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator="stacked-dr",
                          mrdr_omega="w2", var_cap=2.0, progress=False, **SCALES)
    by_obj = cje.analyze(sim.logged, fresh_draws=sim.fresh,
                         estimator=StackedDR(var_cap=2.0, omega="w2"), progress=False, **SCALES)
    assert by_obj == by_name  # every field but the provenance (its time stamp may differ by a second)
    assert by_obj.settings["mrdr_omega"] == "w2" and by_obj.settings["var_cap"] == 2.0


def test_object_refuses_keyword_hyper_parameters(sim):
    with pytest.raises(CJEInputError, match="set them on it instead"):
        cje.analyze(sim.logged, estimator=CalibratedIPS(), var_cap=1.0, **SCALES)


def test_logged_estimator_refused_on_fresh_draws():
    data = cje.synthetic.make_direct_eval(200, rng=0).data
    with pytest.raises(CJEInputError, match="are for logged data"):
        cje.analyze(data, estimator=Clipped(clip=5), judge_scale=(0, 10), label_scale=(1, 5))


def test_user_estimator_gets_a_full_report(sim):
    rep = cje.analyze(sim.logged, estimator=Clipped(clip=20), progress=False, **SCALES)
    assert rep.settings["estimator"] == "clipped-ips"
    targets = [e for e in rep.estimates if e.policy != "base"]
    assert targets
    for e in targets:
        assert e.method == "clipped-ips"
        assert e.var_cal > 0  # the OUA jackknife re-ran the estimator under each deleted fold
        assert e.ci_low < e.estimate < e.ci_high
        assert e.status in ("OK", "CAUTION", "REFUSED")
        assert {"ess_raw", "ttc", "mean_raw_weight", "weight_tail_raw"} <= set(e.diagnostics)
    assert rep.pairs  # contrasts between the comparable estimates
    # the overlap gate of the "weighting" family grades the far target (poor overlap)
    assert any("poor overlap" in r for r in rep["far"].reasons)


def test_user_estimator_value_by_hand(sim):
    """Clipped IPS = Σ w̃ (R + (L/p_L) e) / Σ w̃ with w̃ = min(Hájek weight, clip), R the full
    calibration and e the out-of-fold residual, recomputed here from the calibrator alone."""
    clip = 1.5
    rep = cje.analyze(sim.logged, estimator=Clipped(clip=clip), mode="monotone", progress=False,
                      **SCALES)
    ev = cje.load(sim.logged, **SCALES)
    s, y = ev.judge_score, ev.oracle_label
    lab = ~np.isnan(y)
    folds = cje.prompt_folds(ev.prompts, np.isin(np.arange(ev.prompts.size),
                                                  ev.prompt_code[lab]), rep.calibration.n_folds)
    cal = cje.RewardCalibrator(mode="monotone", n_folds=rep.calibration.n_folds).fit(
        s[lab], y[lab], prompt_id=ev.prompt_code[lab], folds=folds[ev.prompt_code[lab]])
    reward = cal.predict(s)
    resid = np.zeros_like(s)
    resid[lab] = y[lab] - cal.predict_oof()
    for target in ("mild", "far"):
        lw = ev.logprobs[target] - ev.logprobs["base"]
        w = np.exp(lw - lw.max())
        w = w / w.mean()
        wc = np.minimum(w, clip)
        ytilde = reward + resid * (s.size / lab.sum())
        expected = float((wc * ytilde).sum() / wc.sum())
        assert rep[target].estimate == pytest.approx(expected, abs=1e-12)


def test_registered_user_estimator_by_name(sim):
    @register
    @dataclass(frozen=True, slots=True)
    class HalfClipped(Clipped):
        name = "half-clipped-ips-test"

    try:
        assert "half-clipped-ips-test" in registered()
        rep = cje.analyze(sim.logged, estimator="half-clipped-ips-test", progress=False, **SCALES)
        assert rep["far"].method == "half-clipped-ips-test"
        with pytest.raises(ValueError, match="already registered"):
            @register
            @dataclass(frozen=True, slots=True)
            class Again(Clipped):
                name = "half-clipped-ips-test"
    finally:
        from cje.estimators import registry

        registry._REGISTRY.pop("half-clipped-ips-test", None)


@pytest.mark.parametrize("estimator, match", [
    ("clipped", r"estimator must be one of 'auto', 'direct', 'ips'.*got 'clipped'"),
    (3, r"estimator must be one of 'auto', 'direct'.*, or an instance of a subclass of "
        r"cje.estimators.Estimator; got 3"),
    (Clipped, r"estimator must be one of .*got <class"),
])
def test_bad_estimator_is_refused_before_reading(estimator, match):
    with pytest.raises(CJEInputError, match=match):
        cje.analyze("no/such/file.jsonl", estimator=estimator)


def test_declared_attributes_are_checked(sim):
    @dataclass(frozen=True, slots=True)
    class Odd(Clipped):
        overlap = "dr-ish"

    with pytest.raises(CJEInputError, match=r"Odd.overlap must be 'weighting', 'dr' or None"):
        cje.analyze(sim.logged, estimator=Odd(), **SCALES)
    with pytest.raises(ValueError, match=r"sample must be 'logged' or 'fresh'"):
        @register
        @dataclass(frozen=True, slots=True)
        class Odder(Clipped):
            name = "odder-test"
            sample = "both"
