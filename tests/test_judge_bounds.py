"""Levels near a bound of the label scale on few labels of their own: when a policy is rarely OK,
its OK intervals are largely the samples that went far from the truth (``simulations/independent_judge.py``,
a process built without ``cje.synthetic``; reading in ``simulations/results/independent_judge.md``).

Binary labels with values 0.021–0.048 (``bin_low``) or 0.951–0.979 (``bin_high``), a good judge on
0–10, 200 shared prompts, labels on 10% of every policy's rows (about 20 own labels each). Most
levels are CAUTION or REFUSED (the interval crosses the bound, or the near-bound gate fires). The few
OK ones are samples whose own labels happened to hold several rare outcomes (e.g. 6 positives in 22
labels for a rate of 0.048): the level lands far from the bound (0.36 [0.11, 0.60]), no bound gate
applies, and the interval — right for those data — misses the truth. The OK status selects them.
Per estimate such a wrong OK is rare (6 in 2,400 here, 0.25%), but the OK ones cover about 0.5.
"""

from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import cje

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_judge as ij  # noqa: E402

CELLS = [("bounds", "good", "bin_low", 200, 0.10, "all"), ("bounds", "good", "bin_high", 200, 0.10, "all")]
SEED = 20261207  # the study's seed: replicates 0..399 are the study's own


def test_truth_matches_monte_carlo() -> None:
    """The exact values agree with plain sampling of the process (10⁵ rows per policy, 4 MC SE)."""
    rng = np.random.default_rng(11)
    for labels in ("bin_low", "bin_high", "lik_top", "lik_mid"):
        data = ij.make_data(("x", "good", labels, 100_000, 1.0, "all"), rng)
        for pol, v in ij.truth(labels).items():
            y = data.loc[data["policy"] == pol, "oracle_label"].to_numpy()
            assert abs(y.mean() - v) < 4 * y.std() / math.sqrt(y.size), (labels, pol)


def _ok_hits() -> tuple[int, int, int]:
    """OK estimates, those covering the truth, and all estimates over the two cells."""
    ok = hit = total = 0
    for cell in CELLS:
        truth = ij.truth(cell[2])
        for rep in range(400):
            rng = np.random.default_rng(np.random.SeedSequence([SEED, ij._seed_key(cell), rep]))
            data = ij.make_data(cell, rng)
            total += 3
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    r = cje.analyze(data, judge_scale=(0, 10), label_scale=(0, 1))
            except cje.CJEInputError:  # every label equal: no calibration
                continue
            for e in r.estimates:
                if e.status == "OK":
                    ok += 1
                    hit += int(e.ci_low <= truth[e.policy] <= e.ci_high)
    return ok, hit, total


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="near a bound, OK selects the samples far from the truth "
                   "(simulations/results/independent_judge.md); no fix yet")
def test_rare_ok_levels_near_a_bound_cover() -> None:
    """The contract: OK intervals cover at least 0.93 up to 2 MC SE. Measured (2026-12-07): 13 OK
    of 2,400 estimates, 7 covering (0.54 ± 0.14)."""
    ok, hit, _ = _ok_hits()
    assert ok > 0
    c = hit / ok
    assert c >= 0.93 - 2 * math.sqrt(0.93 * 0.07 / ok), (ok, hit)
