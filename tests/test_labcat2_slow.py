"""Slow reproduction of ``simulations/results/independent_labcat2.md``: labels chosen by prompt
category (``labcat``: 40% of the hard prompts' rows, 8% of the easy ones', no
``label_probability``) leave B's level OK in 4.05% ± 0.44% of data sets with the prompt
label-balance check (31.5% with the row check alone), and random labels are almost never
cautioned (0.084% of 44,000 levels)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))

pytestmark = pytest.mark.slow


def test_labels_by_category_rarely_left_ok_and_random_labels_rarely_cautioned() -> None:
    import independent_labcat2 as L

    cells = [c.name for c in L.D.CELLS]
    reps = 200
    lab = [L.one_run(cells.index("labcat"), r) for r in range(reps)]
    ok_b = np.mean([x["B_status"] == "OK" for x in lab])
    # 4.05% expected (SE 1.4% at 200); the row check alone left 31.5%
    assert ok_b <= 0.10, ok_b
    same = [L.one_run(cells.index("same"), r) for r in range(reps)]
    cautioned = sum(x[f"{p}_lb"] for x in same for p in "AB")
    assert cautioned <= 3, cautioned  # 0.1% of 400 levels expected
