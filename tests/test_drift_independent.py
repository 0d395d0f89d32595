"""Judge drift between the labelling round and the scoring of the rest
(``simulations/independent_drift.py``; results in ``simulations/results/independent_drift.md``).

Direct mode: the labelled rows were scored by judge v1 and the unlabelled rows by v2 = v1 + δ
points. The calibration learned on v1 is applied to v2 scores and the residual correction, read
on the labelled (v1) rows only, cannot see the gap: every level is too high by about the
calibration's slope times δ times the unlabelled share. The only check that sees it is the label
balance (labelled rows' mean score against all rows'), at |z| > 3.48; below that the level stays
OK and misses (measured 2026-12-08, 300 replicates, 25% labels, δ = 0.5: OK levels of A cover
0.837 ± 0.025, base 0.856 ± 0.023). Off-policy DR: logged rows judged by v1, fresh draws by v2 +
0.25 points; the fresh-draw balance gate (|z| > 3.29) cautions about a quarter of the levels,
the rest stay OK with a bias of +0.015 that their levels' intervals absorb but the contrasts
with the logging policy (whose level has no drift) do not (base − B: OK 0.770 ± 0.029). Not
fixed: the strict xfail tests state the contract (a compressed judge on the fresh draws too:
base − B with both OK 0.773 ± 0.025).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_drift as idr  # noqa: E402

SEED0 = 20261208


def _seeds(cell: str, reps: int) -> range:
    """The study's seeds of ``cell``."""
    start = SEED0 + 10000 * list(idr.CELLS).index(cell)
    return range(start, start + reps)


def _ok_cover(cell: str, reps: int, kind: str, names: tuple[str, ...]) -> tuple[int, int]:
    """(OK intervals, OK intervals covering) over the levels or contrasts ``names``."""
    ok = hit = 0
    for s in _seeds(cell, reps):
        for r in idr.replicate(s, cell):
            if r["kind"] == kind and r["name"] in names and r["status"] == "OK":
                ok += 1
                hit += int(r["covered"])
    return ok, hit


def _contract(ok: int, hit: int) -> bool:
    return hit / ok >= 0.93 - 2 * math.sqrt(0.93 * 0.07 / ok)


def test_truths_are_exact() -> None:
    """The quadrature truths agree with a 400,000-draw Monte Carlo of each process."""
    rng = np.random.default_rng(1)
    z = rng.standard_normal(400_000)
    for p, mu in idr.MU.items():
        assert idr.TRUTH_DIRECT[p] == pytest.approx(idr._sig(mu + z).mean(), abs=0.003)
    d = rng.standard_normal(400_000)
    for p, probs in idr.POL.items():
        k = rng.choice(idr.K, size=d.size, p=probs)
        assert idr.TRUTH_DR[p] == pytest.approx(idr._sig(idr.Q[k] - 0.8 * d).mean(), abs=0.003)


def test_drift_reaches_only_the_rows_it_should() -> None:
    """``all``: labelled rows keep the v1 score, unlabelled get v1 + δ (up to rounding);
    ``one_all``: every row of A moved, the other policies untouched."""
    cell = dict(idr.CELLS["direct_L25_all_shift1.0"])
    a = idr.make_direct(5, cell)
    b = idr.make_direct(5, {**cell, "kind": "none"})
    lab = a.oracle_label.notna().to_numpy()
    diff = (a.judge_score - b.judge_score).to_numpy()
    assert np.all(diff[lab] == 0) and diff[~lab].mean() > 0.8
    c = idr.make_direct(5, {**cell, "who": "one_all"})
    moved = (c.judge_score - b.judge_score).to_numpy()
    is_a = (c.policy == "A").to_numpy()
    assert np.all(moved[~is_a] == 0) and moved[is_a].mean() > 0.8


@pytest.mark.slow
def test_no_drift_and_whole_policy_rescored_keep_coverage() -> None:
    """Controls: no drift, and policy A re-scored entirely (labelled rows too) by v2 — its own
    residuals then carry the gap — keep OK coverage (150 replicates each, 25% labels)."""
    for cell in ("direct_L25_none", "direct_L25_one_all_shift1.0"):
        ok, hit = _ok_cover(cell, 150, "level", ("A", "B", "base"))
        assert ok >= 400 and _contract(ok, hit), (cell, ok, hit)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="direct levels stay OK when unlabelled rows were scored by a "
                   "judge +0.5 points above the labelled rows' (independent_drift.md); no fix yet")
def test_direct_unlabelled_rows_rescored_keep_ok_coverage() -> None:
    """All unlabelled rows scored by v1 + 0.5, 25% labels, 200 replicates: OK levels should cover
    0.93 up to 2 MC SE (measured over 300: 0.837, 0.902, 0.856 for A, B, base)."""
    ok, hit = _ok_cover("direct_L25_all_shift0.5", 200, "level", ("A", "B", "base"))
    assert ok >= 100
    assert _contract(ok, hit), (ok, hit)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="DR contrasts with the logging policy stay OK when the fresh "
                   "draws were judged 0.25 points higher (independent_drift.md); no fix yet")
def test_dr_fresh_draws_rejudged_keep_ok_contrast_coverage() -> None:
    """Fresh draws judged by v1 + 0.25, 25% labels, 200 replicates: contrasts with ``base``
    whose two levels are OK should cover 0.93 up to 2 MC SE (measured over 300: base − A 0.849
    ± 0.024, base − B 0.770 ± 0.029)."""
    ok, hit = _ok_cover("dr_L25_shift0.25", 200, "contrast", ("base-A", "base-B"))
    assert ok >= 100
    assert _contract(ok, hit), (ok, hit)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="a compressed judge on the fresh draws barely moves their mean "
                   "score; DR contrasts with base stay OK (independent_drift.md); no fix yet")
def test_dr_fresh_draws_compressed_judge_keep_ok_contrast_coverage() -> None:
    """Fresh draws judged by v2 = 5 + 0.7 (v1 − 5), 25% labels, 200 replicates: base − B with
    both levels OK should cover 0.93 up to 2 MC SE (measured over 300: 0.773 ± 0.025, n = 282;
    the fresh-draw balance gate cautions B in 6%)."""
    ok, hit = _ok_cover("dr_L25_compress0.7", 200, "contrast", ("base-B",))
    assert ok >= 100
    assert _contract(ok, hit), (ok, hit)
