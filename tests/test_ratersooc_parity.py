"""The notice of one response on several rows (``cje.data._one_response_rows``) on every engine.

Out of core the per-prompt pass counts the rows whose (prompt, policy, judge score) is a
labelled row's; when the notice is given one more pass names its example rows. The text, the
count and the example rows are the in-memory engine's, on file sets, a LazyFrame and with
``on_invalid="drop"`` (row numbers count the dropped rows); true repeated draws give no notice.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

import cje

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_raters_independent import _one_per_prompt as _raters_data  # noqa: E402

KEY = "share the judge score of a labelled row of their pair"
DRAWS = "taken as repeated draws"
KW = {"judge_scale": (0, 10), "label_scale": (1, 5)}


def _one_per_prompt(seed: int, prompts: int = 120) -> pd.DataFrame:
    """The raters study's test data (two policies, one response per prompt, 25% labelled)."""
    return _raters_data(np.random.default_rng(seed), prompts)


def _second_rater(seed: int) -> pd.DataFrame:
    df = _one_per_prompt(seed)
    lab = df[df["oracle_label"].notna()]
    second = lab.assign(oracle_label=np.clip(lab["oracle_label"] + 0.5, 1, 5))
    return pd.concat([df, second], ignore_index=True)


def _labelled_copies(seed: int) -> pd.DataFrame:
    """Labelled copies of unlabelled rows, shuffled (the copies come before their originals
    on some prompts), and one row repeated with a score of its own (a real second draw)."""
    df = _one_per_prompt(seed)
    lab = df["oracle_label"].notna().to_numpy()
    copies = df[lab].assign(oracle_label=np.nan)
    draw = df.iloc[[int(np.flatnonzero(~lab)[0])]].assign(judge_score=9.99)
    out = pd.concat([df, copies, draw], ignore_index=True)
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def _notes(report: Any) -> tuple[list[str], list[str]]:
    return ([n for n in report.notices if KEY in n], [n for n in report.notices if DRAWS in n])


def _write(df: pd.DataFrame, where: Path, fmt: str, parts: int = 3) -> str:
    where.mkdir(parents=True, exist_ok=True)
    cuts = np.linspace(0, len(df), parts + 1).astype(int)
    for i in range(parts):
        piece = df.iloc[cuts[i]:cuts[i + 1]]
        if fmt == "parquet":
            piece.to_parquet(where / f"part{i}.parquet", index=False)
        else:
            piece.to_csv(where / f"part{i}.csv", index=False)
    return str(where / f"*.{fmt}")


def _all_engines(df: pd.DataFrame, tmp: Path, client: Any, fmt: str = "parquet",
                 **kw: Any) -> dict[str, tuple[list[str], list[str]]]:
    glob = _write(df, tmp / fmt, fmt)
    out = {"memory": _notes(cje.analyze(glob, engine="memory", **KW, **kw)),
           "polars": _notes(cje.analyze(glob, engine="polars", **KW, **kw))}
    if client is not None:
        out["dask"] = _notes(cje.analyze(glob, engine="dask", client=client, **KW, **kw))
    return out


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_second_rater_rows_same_notice_on_every_engine(fmt: str, tmp_path: Path,
                                                       dask_client: Any) -> None:
    got = _all_engines(_second_rater(0), tmp_path, dask_client, fmt)
    notes, draws = got["memory"]
    assert len(notes) == 1 and len(draws) == 1
    for engine, value in got.items():
        assert value == got["memory"], engine


def test_labelled_copies_same_notice_on_every_engine(tmp_path: Path, dask_client: Any) -> None:
    df = _labelled_copies(1)
    got = _all_engines(df, tmp_path, dask_client)
    (note,), _ = got["memory"]
    extra = int(df["oracle_label"].notna().sum())
    assert note.startswith(f"{extra} of the {extra + 1} rows")  # the real draw is not counted
    for engine, value in got.items():
        assert value == got["memory"], engine


def test_draw_idx_column_same_notice_on_every_engine(tmp_path: Path, dask_client: Any) -> None:
    """With a ``draw_idx`` column (the rater's number) there is no notice of repeated draws,
    and the one of one response on several rows on every engine."""
    df = _one_per_prompt(2).assign(draw_idx=0)
    lab = df[df["oracle_label"].notna()]
    second = lab.assign(oracle_label=np.clip(lab["oracle_label"] - 0.5, 1, 5), draw_idx=1)
    got = _all_engines(pd.concat([second, df], ignore_index=True), tmp_path, dask_client)
    notes, draws = got["memory"]
    assert len(notes) == 1 and draws == []
    for engine, value in got.items():
        assert value == got["memory"], engine


def test_dropped_rows_count_in_the_row_numbers(tmp_path: Path, dask_client: Any) -> None:
    """With ``on_invalid="drop"`` the rows are numbered as in the input (dropped ones count)."""
    df = _second_rater(3)
    bad = df.iloc[:5].assign(judge_score=np.nan)
    data = pd.concat([bad, df], ignore_index=True)
    got = _all_engines(data, tmp_path, dask_client, on_invalid="drop")
    (note,), _ = got["memory"]
    for engine, value in got.items():
        assert value == got["memory"], engine
    lf = pl.from_pandas(data).lazy()
    assert _notes(cje.analyze(lf, on_invalid="drop", **KW))[0] == [note]


@pytest.mark.parametrize("draw_idx", [False, True])
def test_repeated_draws_draw_no_notice_on_any_engine(draw_idx: bool, tmp_path: Path,
                                                     dask_client: Any) -> None:
    sim = cje.synthetic.make_direct_eval(200, draws_per_prompt=3, oracle_fraction=0.25, rng=4)
    data = sim.data if draw_idx else sim.data.drop(columns="draw_idx")
    got = _all_engines(data, tmp_path, dask_client)
    for engine, (notes, draws) in got.items():
        assert notes == [], engine
        assert len(draws) == (0 if draw_idx else 1), engine


def test_one_row_per_response_draws_no_notice_on_any_engine(tmp_path: Path, dask_client: Any) -> None:
    got = _all_engines(_one_per_prompt(5), tmp_path, dask_client)
    for engine, value in got.items():
        assert value == ([], []), engine


def test_prompts_split_over_several_group_bys(tmp_path: Path, dask_client: Any,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The count is summed over the per-prompt pass's group-bys (polars: several passes; Dask:
    several output partitions) when the prompts are split between them."""
    from cje.pipeline import streaming

    df = _labelled_copies(6)
    ref = _all_engines(df, tmp_path / "one", dask_client)
    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 60)
    got = _all_engines(df, tmp_path / "many", dask_client)
    assert len(ref["memory"][0]) == 1
    for engine, value in got.items():
        assert value == ref["memory"], engine
