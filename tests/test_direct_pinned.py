"""Pinned outputs of direct analyses (issue #18): the speed work on the direct path must not move
any number.

Each case's estimates, standard errors, variances, degrees of freedom, intervals, statuses and
reasons, the paired contrasts, and every row's influence value of the full-calibration run are
compared with ``tests/data/direct_pinned.json``, written by the code before that work (the
influence values by count, sum and SHA-256 of their bytes). Floats are stored by ``repr`` (exact
round trip) and compared for equality: the optimisations reorder no arithmetic of an estimate.
The interval endpoints are the exception, compared to 2e-13 relative: the t quantile became the
package's own (:mod:`cje._tdist`, to skip importing ``scipy.special``), which agrees with scipy's
to that tolerance (``tests/test_tdist.py``), not bit for bit.
Regenerate (only when a change of a number is intended and explained, and with the code whose
numbers are meant) with ``CJE_WRITE_PINNED=1 python -m pytest tests/test_direct_pinned.py``.

Regenerated once, for issue #14 (the residual part of a policy's own labels got its own
small-sample factor ``m/(m−1)`` and Satterthwaite degrees of freedom ``m − 1``; docs: Methods ›
The direct estimator). Checked against the file before, case by case: estimates, influence values,
calibration, statuses and reasons unchanged; SEs ×1.0005–1.008, ``var_if`` ×1.001–1.016, df
×0.12–0.58 (e.g. 498–502 → 62–68 with 52–57 own labels; Arena base 1,003 → 581), contrasts' SEs
×1.000–1.009.

Regenerated again (2026-12-07) when a paired contrast's own-label residual part became the
difference of the two sides' parts prompt by prompt (:func:`cje.pipeline.core.own_part_cross`;
where the two policies' labels share prompts their residuals partly cancel). Checked against the
file before: estimates, levels, statuses, reasons and contrast estimates unchanged; the synthetic
cases' contrast SEs ×0.9986–1.0000 (their labels share a few prompts), Arena's unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cje
from cje.pipeline.direct import DirectShape

PINNED = Path(__file__).parent / "data" / "direct_pinned.json"
FIELDS = ("policy", "estimate", "se", "ci_low", "ci_high", "df", "var_if", "var_cal", "n",
          "n_prompts", "n_labels", "calibration_share", "naive_estimate", "status", "reasons",
          "method")


def _synthetic(mode: str, covariates: tuple[str, ...] = ()) -> dict[str, Any]:
    pols = cje.synthetic.default_policies()[:4]
    sim = cje.synthetic.make_direct_eval(500, policies=pols, oracle_fraction=0.1,
                                         length_effect=0.15, rng=3)
    return dict(data=sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                mode=mode, covariates=list(covariates))


def _synthetic_calibration_only() -> dict[str, Any]:
    # rows labelled but of no policy enter only the calibration; one policy has no labels
    kw = _synthetic("monotone")
    d = kw["data"].copy()
    d.loc[d.policy == "small", "oracle_label"] = np.nan
    kw["data"] = d
    kw["estimator"] = "direct"
    return kw


def _synthetic_calibration_rows() -> dict[str, Any]:
    # labelled rows that only train the calibrator (policy code -1 among the policies' rows)
    kw = _synthetic("monotone")
    extra = cje.synthetic.make_direct_eval(100, policies=cje.synthetic.default_policies()[:1],
                                           oracle_fraction=1.0, rng=4).data
    kw["calibration"] = extra.assign(prompt_id="c" + extra.prompt_id.astype(str))
    return kw


def _arena(arena: Path) -> dict[str, Any]:
    probes = {p: arena / "probe_slice" / f"{p}_probe.jsonl"
              for p in ("clone", "parallel_universe_prompt", "unhelpful")}
    return dict(data=arena / "fresh_draws", probes=probes, transport_margin=0.05)


CASES = {
    "synthetic_auto": lambda arena: _synthetic("auto"),
    "synthetic_monotone": lambda arena: _synthetic("monotone"),
    "synthetic_two_stage_cov": lambda arena: _synthetic("two_stage", ("response_length",)),
    "synthetic_no_labels_for_one": lambda arena: _synthetic_calibration_only(),
    "synthetic_calibration_rows": lambda arena: _synthetic_calibration_rows(),
    "arena_probes": _arena,
    "arena_plain": lambda arena: dict(data=arena / "fresh_draws"),
}


def _run(kw: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: list[list[float]] = []
    run = DirectShape.run

    def spy(self: DirectShape, calibrator: Any, deleted: frozenset[int]) -> Any:
        out = run(self, calibrator, deleted)
        if not deleted:
            seen.append([[float(v.value), v.influence.size, float(v.influence.sum()),
                          hashlib.sha256(np.ascontiguousarray(v.influence, dtype="<f8")
                                         .tobytes()).hexdigest()] for v, _ in out])
        return out

    monkeypatch.setattr(DirectShape, "run", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(**kw, progress=False)
    return {
        "estimates": [[getattr(e, f) if not isinstance(getattr(e, f), tuple)
                       else list(getattr(e, f)) for f in FIELDS] for e in rep.estimates],
        "pairs": [[c.policy_a, c.policy_b, c.estimate, c.se, c.ci_low, c.ci_high]
                  for c in rep.pairs],
        "calibration": [rep.calibration.mode, rep.calibration.oof_rmse],
        "influence": seen[0],
    }


def _t_approx(rows: list[list[Any]], where: tuple[int, ...]) -> list[list[Any]]:
    """``rows`` with the interval endpoints at ``where`` compared to 2e-13 relative (the t
    quantile's accuracy against scipy's, which wrote the pinned file)."""
    return [[pytest.approx(v, rel=2e-13) if j in where else v for j, v in enumerate(r)] for r in rows]


@pytest.mark.parametrize("case", list(CASES))
def test_direct_outputs_pinned(case: str, arena: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    got = json.loads(json.dumps(_run(CASES[case](arena), monkeypatch)))
    if os.environ.get("CJE_WRITE_PINNED"):
        pinned = json.loads(PINNED.read_text()) if PINNED.exists() else {}
        pinned[case] = got
        PINNED.write_text(json.dumps(pinned, indent=1) + "\n")
    want = json.loads(PINNED.read_text())[case]
    assert _t_approx(got["estimates"], (3, 4)) == want["estimates"]
    assert _t_approx(got["pairs"], (4, 5)) == want["pairs"]
    assert got["calibration"] == want["calibration"]
    assert got["influence"] == want["influence"]  # value, size, sum, SHA-256 of the bytes
