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


def _audit_only_rep(seed: int, truth: float) -> tuple[str, bool]:
    data, probes = ic.make_data(seed, "verb", "one", True, n=4000, n_probe=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, probes={"longish": probes["longish"]}, judge_scale=(1, 10),
                          label_scale=(1, 5), mode="monotone", transport_margin=0.3,
                          probe_correction=False, seed=seed)
    e = next(x for x in rep.estimates if x.policy == "longish")
    return e.status, bool(e.ci_low <= truth <= e.ci_high)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="defect (independent_cov.md): with probe_correction=False a "
                   "PASSing audit makes an uncorrected level OK, but its interval has no allowance "
                   "for the transport error the margin admits")
def test_audit_only_pass_ok_intervals_cover() -> None:
    """A judge that rewards length, a policy ``longish`` that writes longer than the labelled one:
    the transported level is biased by about +0.18 on the 1–5 scale (SE 0.05), inside the margin
    0.3, so its 200-label audit PASSes about 40% of the time and the level is OK. Those OK
    intervals should cover the truth about 95% of the time; they cover about 35%."""
    truth = ic.truth("verb")["longish"]
    reps = [_audit_only_rep(1000 * (i + 1), truth) for i in range(80)]
    ok = [cov for st, cov in reps if st == "OK"]
    assert len(ok) >= 15  # the situation arises: a PASS makes the level OK
    assert np.mean(ok) >= 0.85, (len(ok), float(np.mean(ok)))

