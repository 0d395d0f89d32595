"""DR estimates whose fresh draws are missing on some prompts (``on_missing="drop"``), on the
process of ``simulations/independent_dr.py`` (built without ``cje.synthetic``).

Found by that study: when a target's fresh draws are missing on the hard prompts (generation
timed out there; ``P(fresh) = σ(1.2 − 1.2 d)``, 72% of the prompts), ``on_missing="drop"`` leaves
those prompts' logged rows out and the DR value is the value over the easier prompts: +0.038
above the truth for ``A``. The rows were counted in the diagnostics only and the level stayed OK.
The logged rows' judge scores show the difference (the dropped prompts score lower), as they do
for rows left out for a missing log-probability, so the same missing-at-random check
(:func:`cje.diagnostics.gates.excluded_rows_gate`) now reads both exclusions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import cje

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_dr as study  # noqa: E402


def _analyze(cell: str, seed: int, **kw):
    logged, fresh = study.make_data(seed, study.CELLS[cell])
    return cje.analyze(logged, fresh_draws=fresh, estimator=kw.pop("estimator", "stacked-dr"),
                       judge_scale=(0, 10), label_scale=(0, 1), on_missing="drop", **kw)


def test_out_of_core_discrete_weights(tmp_path: Path) -> None:
    """Discrete response types with a per-response log-probability offset shared by the
    policies: the raw log-weights of a type differ only by rounding, and the out-of-core Hill
    index divided by an excess that cancelled to 0.0 (``ZeroDivisionError``, found by this
    study). Now it is NaN (no tail to measure) and the estimates match the in-memory ones."""
    logged, fresh = study.make_data(3, study.CELLS["baseline"])
    logged.to_parquet(tmp_path / "logged.parquet")
    for est, kw in (("calibrated-ips", {}), ("dr-cpo", {"fresh_draws": fresh})):
        a = cje.analyze(logged, estimator=est, judge_scale=(0, 10), label_scale=(0, 1), **kw)
        b = cje.analyze(tmp_path / "logged.parquet", engine="polars", estimator=est,
                        judge_scale=(0, 10), label_scale=(0, 1), **kw)
        # no tail either way: NaN where the excess cancelled, else a rounding-size excess
        for h in (a.diagnostics("overlap")["hill_raw"], b.diagnostics("overlap")["hill_raw"]):
            assert (np.isnan(h) | (h > 1e6)).all()
        for name in ("A", "B"):
            assert b[name].estimate == pytest.approx(a[name].estimate, abs=1e-9)
            assert b[name].status == a[name].status


