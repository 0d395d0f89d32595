"""Hostile inputs, round 2: realistic files and frames a user hands over, each either read right
(compared with a hand computation on the cleaned data) or refused with a message that names the
field, the row (as the user numbers it) and the fix.

Before this round: after ``on_invalid="drop"`` the later messages counted rows without the dropped
ones (a bad label on input row 10 was "row 9"); ...
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError

NAN = float("nan")


def _twelve(**over: list) -> dict[str, list]:
    """Twelve rows of two policies on six prompts, labels on every row; ``over`` replaces columns."""
    d: dict[str, list] = {
        "prompt_id": [f"p{i // 2}" for i in range(12)],
        "policy": ["a", "b"] * 6,
        "judge_score": [1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 2, 3],
        "oracle_label": [0.0, 1] * 6,
    }
    d.update(over)
    return d


# ---- row numbers -------------------------------------------------------------------------------
@pytest.mark.parametrize(("over", "pattern"), [
    ({"oracle_label": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1, "good", 1]},
     r"'oracle_label' column must be numeric; row 10 \(prompt_id='p5'\) has 'good'"),
    ({"draw_idx": [0] * 10 + [-1, 0]},
     r"'draw_idx' column must hold non-negative integers; row 10 \(prompt_id='p5'\)"),
    ({"draw_idx": [0] * 12, "policy": ["a", "b"] * 5 + ["a", "a"]},
     r"Rows 10 and 11 share prompt_id='p5', policy='a', draw_idx=0"),
])
def test_rows_after_a_drop_are_numbered_as_in_the_input(over: dict, pattern: str) -> None:
    # row 3's score is dropped on request; a later problem is still named by its input row
    d = _twelve(judge_score=[1.0, 2, 3, NAN, 5, 6, 7, 8, 9, 10, 2, 3], **over)
    with pytest.raises(CJEInputError, match=pattern):
        cje.load(d, on_invalid="drop")


def test_label_outside_the_declared_scale_after_a_drop_names_its_input_row() -> None:
    d = _twelve(judge_score=[NAN] + [1.0] * 5 + [2.0] * 6, oracle_label=[0, 1] * 4 + [0, 7, 0, 1])
    with pytest.raises(CJEInputError, match=r"label_scale=\(0, 1\); row 9 \(prompt_id='p4'\) has 7"):
        cje.load(d, on_invalid="drop", label_scale=(0, 1))
