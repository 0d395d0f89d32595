"""Policies judged on different prompts are said so (a warning for large gaps, a notice for a few
failed generations), and policy names that differ only by surrounding white space are refused.

Before: ids written as the float ``3.0`` on one policy's rows and as the text ``'3.0'`` on
another's became the different prompts ``'3'`` and ``'3.0'``; the two policies shared no prompt,
their contrast was silently unpaired and each value averaged its own prompts. A policy named
``'A '`` beside ``'A'`` was a second policy, printed as a second row named A.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError

SCALES = {"judge_scale": (0, 10), "label_scale": (1, 5)}


def _policy(ids: list, name: str, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.clip(rng.normal(3.0, 1.0, len(ids)), 1, 5)
    s = np.clip(2 * y + rng.normal(0, 1, len(ids)), 0, 10)
    lab = np.where(rng.random(len(ids)) < 0.25, y, np.nan)
    return pd.DataFrame({"prompt_id": ids, "policy": name, "judge_score": s, "oracle_label": lab})


def _gap_messages(rep: cje.Report) -> tuple[list[str], list[str]]:
    key = "judged on different prompts"
    return [w for w in rep.warnings if key in w], [n for n in rep.notices if key in n]


def test_ids_written_two_ways_are_a_warning_naming_the_gap() -> None:
    a = _policy([float(i) for i in range(200)], "A", 0)  # 0.0 reads as the prompt '0'
    b = _policy([f"{i}.0" for i in range(200)], "B", 1)  # '0.0' is another prompt
    rep = cje.analyze(pd.concat([a, b]), **SCALES)
    warns, notes = _gap_messages(rep)
    assert len(warns) == 1 and not notes
    assert "(400 prompts in all)" in warns[0]
    assert "'A' has no row on 200 of them (50%), 'B' on 200 (50%)" in warns[0]
    assert rep.pairs[0].n_shared_prompts == 0  # what the warning is about


def test_partly_shared_prompts_warning_sorted_by_gap() -> None:
    a = _policy([str(i) for i in range(300)], "A", 0)
    b = _policy([f"{i:03d}" for i in range(300)], "B", 1)  # '000'..'099' are not '0'..'99'
    c = _policy([str(i) for i in range(300)], "C", 2)
    rep = cje.analyze(pd.concat([a, b, c]), **SCALES)
    warns, _ = _gap_messages(rep)
    assert len(warns) == 1
    # 400 prompts in all: B lacks '0'..'99'; A and C lack '000'..'099'
    assert "(400 prompts in all): 'A' has no row on 100 of them (25%), 'B' on 100 (25%), 'C' on 100" \
        in warns[0]
    shared = {(p.policy_a, p.policy_b): p.n_shared_prompts for p in rep.pairs}
    assert shared == {("A", "B"): 200, ("A", "C"): 300, ("B", "C"): 200}


def test_a_few_missing_responses_are_a_notice() -> None:
    a = _policy([str(i) for i in range(300)], "A", 0)
    b = _policy([str(i) for i in range(300) if i % 50], "B", 1)  # 6 failed generations: 2%
    rep = cje.analyze(pd.concat([a, b]), **SCALES)
    warns, notes = _gap_messages(rep)
    assert not warns and len(notes) == 1
    assert "'B' has no row on 6 of them (2%)" in notes[0]


def test_same_prompts_say_nothing() -> None:
    ids = [str(i) for i in range(200)]
    rep = cje.analyze(pd.concat([_policy(ids, "A", 0), _policy(ids[::-1], "B", 1)]), **SCALES)
    assert _gap_messages(rep) == ([], [])


def test_probe_prompts_are_not_a_gap() -> None:
    """A probe slice's prompts are its own clusters, not prompts the other policies lack."""
    ids = [str(i) for i in range(200)]
    b = _policy(ids, "B", 1).assign(oracle_label=np.nan)
    probe = _policy([f"p{i}" for i in range(50)], "B", 2).assign(oracle_label=3.0)
    rep = cje.analyze(pd.concat([_policy(ids, "A", 0), b]), probes={"B": probe}, **SCALES)
    assert _gap_messages(rep) == ([], [])


def test_policy_names_split_by_white_space_are_refused() -> None:
    ids = [str(i) for i in range(100)]
    df = pd.concat([_policy(ids, "A", 0), _policy(ids, "A ", 1)])
    with pytest.raises(CJEInputError, match=r"'policy' column .* row 0 has 'A' .* row 100 has 'A '"):
        cje.analyze(df, **SCALES)


def test_policy_names_split_by_white_space_are_refused_out_of_core(tmp_path: Path) -> None:
    pytest.importorskip("polars")
    ids = [str(i) for i in range(100)]
    pd.concat([_policy(ids, "A", 0), _policy(ids, " A", 1)]).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(CJEInputError, match="differ only by surrounding white space: ' A' and 'A'"):
        cje.analyze(str(tmp_path), engine="polars", **SCALES)
