"""The covariate (two-stage) calibration, the auto rule and the transport audit on a process built
without ``cje.synthetic`` (``simulations/independent_cov.py``: a judge that rewards length, policies
that write longer or shorter than the labelled one; ``simulations/results/independent_cov.md``).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_cov as ic  # noqa: E402

import cje  # noqa: E402


def test_truth_matches_monte_carlo() -> None:
    """The quadrature truth of both processes agrees with plain sampling (2·10⁵ rows per policy,
    within 4 Monte Carlo SE)."""
    rng = np.random.default_rng(11)
    for process in ic.GAMMA:
        truth = ic.truth(process)
        for pol in ic.POLICIES:
            a = ic.SD_A * rng.standard_normal(200_000)
            _, y, _ = ic._rows(rng, pol, a, process)
            assert abs(y.mean() - truth[pol]) < 4 * y.std() / np.sqrt(y.size), (process, pol)


def test_length_from_response_text_is_the_length_column() -> None:
    """``response_length`` derived from a ``response`` text (whitespace words, tabs and newlines
    included) gives the same analysis as the column itself, probes included."""
    rows = ic.text_equivalence(range(3, 4))
    for r in rows:
        assert r["max_abs_diff_estimate"] == 0.0 and r["max_abs_diff_ci"] == 0.0, r
        assert r["same_choice"] and r["same_status"], r


def _audit_only_rep(seed: int, truth: float) -> tuple[str, bool, str]:
    data, probes = ic.make_data(seed, "verb", "one", True, n=4000, n_probe=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, probes={"longish": probes["longish"]}, judge_scale=(1, 10),
                          label_scale=(1, 5), mode="monotone", transport_margin=0.3,
                          probe_correction=False, seed=seed)
    e = next(x for x in rep.estimates if x.policy == "longish")
    return e.status, bool(e.ci_low <= truth <= e.ci_high), rep.audits[0].verdict


@pytest.mark.slow
def test_audit_only_pass_ok_intervals_cover() -> None:
    """A judge that rewards length, a policy ``longish`` that writes longer than the labelled one:
    the transported level is biased by about +0.19 on the 1–5 scale (SE 0.05), inside the margin
    0.3, so its 200-label audit PASSes in about 35% of data sets. With probe_correction=False that
    PASS made the uncorrected level OK, and those OK intervals covered 0.25 (28 of 80 data sets
    OK). Now the level stays CAUTION; any OK level must cover."""
    truth = ic.truth("verb")["longish"]
    reps = [_audit_only_rep(1000 * (i + 1), truth) for i in range(80)]
    assert sum(v == "PASS" for *_, v in reps) >= 15  # the situation arises
    ok = [cov for st, cov, _ in reps if st == "OK"]
    assert not ok or np.mean(ok) >= 0.85, (len(ok), float(np.mean(ok)))


def test_audit_only_pass_leaves_a_policy_without_labels_caution() -> None:
    """The gate: an audit-only PASS no longer lifts the CAUTION of a policy without labels of its
    own (before: OK); a probe correction, or labels of its own, still give OK."""
    from cje.diagnostics.gates import level_gate
    from cje.pipeline.probes import ProbeUse
    from cje.results import TransportAudit

    ok = TransportAudit(policy="p", delta=-0.1, se=0.06, ci_low=-0.22, ci_high=0.02, df=199,
                        n=200, n_prompts=200, margin=0.3, verdict="PASS")
    s = np.array([2.0, 3.0, 4.0])
    status, why, _ = level_gate("p", s, s, 0, ok, False)
    assert status == "CAUTION"
    assert "probe_correction=True corrects the level" in why[0] and "±0.3" in why[0]
    assert level_gate("p", s, s, 12, ok, False)[0] == "OK"  # labels of its own: corrected
    use = ProbeUse(200, 200, 0, 1.0, -0.1, 0.001, 400)
    assert level_gate("p", s, s, 0, ok, False, probe=use)[0] == "OK"  # probe-corrected


def test_audit_only_pass_end_to_end() -> None:
    """One data set of the reproduction whose audit PASSes: the uncorrected level is CAUTION and
    says why; with the default correction the same data give an OK, corrected level."""
    data, probes = ic.make_data(2000, "verb", "one", True, n=4000, n_probe=200)
    kw = dict(probes={"longish": probes["longish"]}, judge_scale=(1, 10), label_scale=(1, 5),
              mode="monotone", transport_margin=0.3, seed=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = cje.analyze(data, probe_correction=False, **kw)
        on = cje.analyze(data, **kw)
    assert off.audits[0].verdict == "PASS"
    e_off = next(x for x in off.estimates if x.policy == "longish")
    e_on = next(x for x in on.estimates if x.policy == "longish")
    assert e_off.status == "CAUTION" and "only audits" in e_off.reasons[0]
    assert e_on.status == "OK" and e_on.estimate != e_off.estimate
