"""Plasmode reproduction on the real Arena rows (``simulations/independent_plasmode.py``).

The population is the 480 oracle-labelled logged rows of the Arena sample; the target ``clone``
puts mass ``w_i / Σ w`` on row ``i`` (its real teacher-forced importance ratios: population ESS
15.5%, one row holds 8.9% of the mass, ratio 43), and its exact value is ``Σ w_i Y_i / Σ w_i``
= 0.7110. The judge calibration learned on the logging rows over-rates this target by +0.034 (its
weights favour rows whose label is below the calibrated score), which only the importance-weighted
oracle residual can correct. A logged sample that missed the heaviest rows shows a raw ESS above
the DR gate's 20% and a mean raw weight below 1; the doubly robust estimate is then OK while its
residual correction never saw the rows that carry the gap, so it stays too high and its interval
misses (simulations/results/independent_plasmode.md: OK DR intervals cover 0.765 ± 0.051 at 480
prompts, 0.837 ± 0.023 over five cells). Not fixed: the xfail tests state the contract.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_plasmode as ip  # noqa: E402


def _ok_hits(seeds: range, n: int = 480, frac: float = 0.10) -> tuple[int, int]:
    """(OK intervals, OK intervals covering) of the default estimator's ``clone`` level."""
    ok = hit = 0
    for s in seeds:
        for r in ip.offpolicy_replicate(s, n, frac, "real", ("auto",), targets=("clone",)):
            if r["policy"] == "clone" and r["status"] == "OK":
                ok += 1
                hit += int(r["covered"])
    return ok, hit


def test_plasmode_truth_is_the_weighted_mean() -> None:
    """The plasmode truths are exact weighted means of the 480 rows' labels, and the calibration
    gap that drives the finding is there: E_clone[f₀(S)] − V(clone) > 0.03."""
    pop = ip.POP
    assert len(pop) == 480
    y = pop["oracle_label"].to_numpy()
    assert ip.TRUTH["base"] == pytest.approx(y.mean())
    w = np.exp(pop["lw[clone]"].to_numpy())
    assert ip.TRUTH["clone"] == pytest.approx((w * y).sum() / w.sum(), abs=1e-12)
    f0 = pop.groupby("judge_score")["oracle_label"].transform("mean").to_numpy()
    assert ip.target_probs("clone") @ f0 - ip.TRUTH["clone"] > 0.03


def test_fresh_draws_follow_the_target_distribution() -> None:
    """Fresh draws of a target sample the rows with probability ``w_i / Σ w`` (their mean judge
    score matches the target's within 4 MC SE over 20,000 draws)."""
    _, fresh = ip.offpolicy_data(0, 20_000, 0.10, "real", ("clone",))
    p = ip.target_probs("clone")
    s = ip.POP["judge_score"].to_numpy()
    mean, sd = p @ s, math.sqrt(p @ (s - p @ s) ** 2)
    assert abs(fresh["judge_score"].mean() - mean) < 4 * sd / math.sqrt(20_000)


@pytest.mark.xfail(strict=True, reason="DR is OK on logged samples that missed the heaviest rows "
                   "(simulations/results/independent_plasmode.md); no fix yet")
def test_dr_ok_intervals_cover_on_real_weights_fast() -> None:
    """The contract on 120 replicates (480 prompts, 10% labels): OK intervals cover at least 0.93
    up to 2 MC SE. Measured: see the module docstring."""
    ok, hit = _ok_hits(range(120))
    assert ok >= 10
    assert hit / ok >= 0.93 - 2 * math.sqrt(0.93 * 0.07 / ok), (ok, hit)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="DR is OK on logged samples that missed the heaviest rows "
                   "(simulations/results/independent_plasmode.md); no fix yet")
def test_dr_ok_intervals_cover_on_real_weights() -> None:
    """The contract on the study's 400 replicates of the 480-prompt, 10%-labelled cell (measured
    2026-12-07: 68 OK, 52 covering, 0.765 ± 0.051)."""
    ok, hit = _ok_hits(range(400))
    assert ok >= 30
    assert hit / ok >= 0.93 - 2 * math.sqrt(0.93 * 0.07 / ok), (ok, hit)
