"""Several raters' labels of one response, and labelled copies of unlabelled rows, in direct mode.

Study: ``simulations/independent_raters.py`` (results in
``simulations/results/independent_raters.md``). Such rows are taken as repeated draws, so the
response counts once per row in the level and each label as a label of its own; before the
notice tested here this was said only as "taken as repeated draws" (without a ``draw_idx``
column) or not at all (with one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cje

KEY = "share the judge score of a labelled row of their pair"


def _one_per_prompt(rng: np.random.Generator, prompts: int = 120) -> pd.DataFrame:
    """Two policies, one response per prompt, a continuous judge, 25% of responses labelled."""
    frames = []
    for p, mu in (("A", 0.0), ("B", 0.3)):
        q = mu + rng.normal(0, 0.8, prompts)
        s = np.round(10 / (1 + np.exp(-(q + rng.normal(0, 0.5, prompts)))), 2)
        y = 1 + 4 / (1 + np.exp(-(q + rng.normal(0, 0.5, prompts))))
        lab = rng.random(prompts) < 0.25
        frames.append(pd.DataFrame({"prompt_id": [f"q{g}" for g in range(prompts)], "policy": p,
                                    "judge_score": s, "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(frames, ignore_index=True)


def _notes(df: pd.DataFrame) -> list[str]:
    rep = cje.analyze(df, judge_scale=(0, 10), label_scale=(1, 5))
    return [n for n in rep.notices if KEY in n]


def test_second_rater_rows_draw_a_notice() -> None:
    df = _one_per_prompt(np.random.default_rng(0))
    lab = df[df["oracle_label"].notna()]
    second = lab.assign(oracle_label=np.clip(lab["oracle_label"] + 0.5, 1, 5))  # a second rater
    notes = _notes(pd.concat([df, second], ignore_index=True))
    assert len(notes) == 1
    assert f"{len(second)} of the {len(second)} rows" in notes[0]
    assert "mean label" in notes[0] and "several raters" in notes[0]


def test_second_rater_as_draw_idx_draws_a_notice() -> None:
    """With a ``draw_idx`` column (the rater's number) the rows were silent before."""
    df = _one_per_prompt(np.random.default_rng(1)).assign(draw_idx=0)
    lab = df[df["oracle_label"].notna()]
    second = lab.assign(oracle_label=np.clip(lab["oracle_label"] - 0.5, 1, 5), draw_idx=1)
    assert len(_notes(pd.concat([df, second], ignore_index=True))) == 1


def test_labelled_copy_of_unlabelled_rows_draws_a_notice() -> None:
    df = _one_per_prompt(np.random.default_rng(2))
    lab = df["oracle_label"].notna()
    unlabelled_copy = df[lab].assign(oracle_label=np.nan)
    notes = _notes(pd.concat([df, unlabelled_copy], ignore_index=True))
    assert len(notes) == 1 and "labelled copy" in notes[0]


def test_the_notice_names_rows_of_one_group() -> None:
    df = _one_per_prompt(np.random.default_rng(3))
    i = int(np.flatnonzero(df["oracle_label"].notna())[0])
    data = pd.concat([df, df.iloc[[i]]], ignore_index=True)  # one response, its label twice
    (note,) = _notes(data)
    assert f"rows {i}, {len(df)}:" in note
    assert f"prompt_id={df['prompt_id'].iloc[i]!r}" in note


@pytest.mark.parametrize("labelled", [0.25, 1.0])
def test_repeated_draws_with_scores_of_their_own_draw_no_notice(labelled: float) -> None:
    """Real draws (different responses) tie on a 0–10 integer judge only now and then."""
    sim = cje.synthetic.make_direct_eval(200, draws_per_prompt=3, oracle_fraction=labelled, rng=4)
    for data in (sim.data, sim.data.drop(columns="draw_idx")):
        rep = cje.analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        assert not [n for n in rep.notices if KEY in n]


def test_one_row_per_response_draws_no_notice() -> None:
    df = _one_per_prompt(np.random.default_rng(5))
    assert _notes(df) == []
