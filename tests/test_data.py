"""Tests for loading and validation (cje.data): bad-input messages, loaders, scales and folds.

The bad-input tests are table-driven: each case builds an invalid input, calls ``cje.load`` (or
``cje.analyze``) and checks the error type and a regex over the key parts of the message: the
field, the row and/or prompt, and the fix.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

import cje

NAN = float("nan")
INF = float("inf")


def _base() -> dict[str, list[Any]]:
    """A small valid dataset: policies a and b on prompts p0..p5; 5 labelled prompts (policy a)."""
    return {
        "prompt_id": [f"p{i}" for i in range(6)] * 2,
        "policy": ["a"] * 6 + ["b"] * 6,
        "judge_score": [0.1, 0.3, 0.5, 0.7, 0.9, 0.6, 0.2, 0.4, 0.6, 0.8, 0.5, 0.3],
        "oracle_label": [0.0, 0.2, 0.6, 0.8, 1.0, None] + [None] * 6,
    }


def _with(**changes: Any) -> dict[str, list[Any]]:
    """``_base()`` with whole columns replaced (a list), removed (None) or cells set ({row: value})."""
    d = _base()
    for col, change in changes.items():
        if change is None:
            del d[col]
        elif isinstance(change, dict):
            for row, value in change.items():
                d[col][row] = value
        else:
            d[col] = list(change)
    return d


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


def _fresh_dir_with_empty_policy(tmp: Path) -> Path:
    d = tmp / "fresh"
    d.mkdir()
    rows = pd.DataFrame(_base())
    rows[rows.policy == "a"].drop(columns="policy").to_json(
        d / "a_responses.jsonl", orient="records", lines=True
    )
    (d / "empty_responses.jsonl").write_text("")
    return d


# (id, call(tmp_path), regex that the message must match)
BAD_INPUT: list[tuple[str, Callable[[Path], Any], str]] = [
    # ---- judge_score -------------------------------------------------------------------
    ("nan_judge_score", lambda t: cje.load(_with(judge_score={3: NAN})),
     r"'judge_score' column must be finite; row 3 \(prompt_id='p3'\) has nan .*on_invalid='drop'"),
    ("inf_judge_score", lambda t: cje.load(_with(judge_score={4: INF})),
     r"'judge_score' column must be finite; row 4 \(prompt_id='p4'\) has inf .*on_invalid='drop'"),
    ("neg_inf_judge_score", lambda t: cje.load(_with(judge_score={7: -INF})),
     r"'judge_score' column must be finite; row 7 \(prompt_id='p1'\) has -inf .*on_invalid='drop'"),
    ("none_judge_score_pandas", lambda t: cje.load(pd.DataFrame(_with(judge_score={8: None}))),
     r"'judge_score' column must be finite; row 8 \(prompt_id='p2'\) has nan \(1 such rows\)"),
    ("nan_judge_score_analyze", lambda t: cje.analyze(pd.DataFrame(_with(judge_score={3: NAN}))),
     r"'judge_score' column must be finite; row 3 \(prompt_id='p3'\).*on_invalid='drop'"),
    ("text_judge_score", lambda t: cje.load(_with(judge_score={2: "high"})),
     r"'judge_score' column must be numeric; row 2 \(prompt_id='p2'\) has 'high'"),
    ("judge_score_above_scale", lambda t: cje.load(_with(judge_score={2: 7.0}), judge_scale=(0, 1)),
     r"'judge_score' column must lie within judge_scale=\(0, 1\); row 2 \(prompt_id='p2'\) has 7 "
     r"\(1 such rows\)\. Declare the scale"),
    ("judge_score_below_scale_analyze",
     lambda t: cje.analyze(_with(judge_score={9: -0.5}), judge_scale=(0, 1)),
     r"judge_scale=\(0, 1\); row 9 \(prompt_id='p3'\) has -0\.5 .*Declare the scale"),
    ("no_judge_score_column", lambda t: cje.load(_with(judge_score=None)),
     r"no 'judge_score' column\. Its columns are \['oracle_label', 'policy', 'prompt_id'\]; "
     r"rename yours with columns=\{'judge_score': 'your_name'\}"),
    # ---- prompt_id ---------------------------------------------------------------------
    ("no_prompt_id_column", lambda t: cje.load(_with(prompt_id=None)),
     r"no 'prompt_id' column .*Its columns are \['judge_score', 'oracle_label', 'policy'\]; .*"
     r"columns=\{'prompt_id': 'your_name'\}"),
    ("none_prompt_id", lambda t: cje.load(_with(prompt_id={1: None})),
     r"'prompt_id' column must be non-empty on every row; row 1 has None .*on_invalid='drop'"),
    ("empty_prompt_id", lambda t: cje.load(_with(prompt_id={2: ""})),
     r"'prompt_id' column must be non-empty on every row; row 2 has '' .*on_invalid='drop'"),
    ("whitespace_prompt_id", lambda t: cje.load(_with(prompt_id={5: "  "})),
     r"'prompt_id' column must be non-empty on every row; row 5 has '  ' .*on_invalid='drop'"),
    ("nan_prompt_id_in_list", lambda t: cje.load(_with(prompt_id={1: NAN})),
     r"'prompt_id' column must be non-empty on every row; row 1 has nan"),
    ("nan_prompt_id_pandas", lambda t: cje.load(pd.DataFrame(_with(prompt_id={4: None}))),
     r"'prompt_id' column must be non-empty on every row; row 4 has "),
    ("pd_na_prompt_id", lambda t: cje.load(pd.DataFrame(_with(prompt_id={4: None})).convert_dtypes()),
     r"'prompt_id' column must be non-empty on every row; row 4 has <NA>"),
    ("null_prompt_id_polars", lambda t: cje.load(pl.DataFrame(_with(prompt_id={3: None}))),
     r"'prompt_id' column must be non-empty on every row; row 3 has None"),
    ("empty_prompt_id_analyze", lambda t: cje.analyze(_with(prompt_id={2: ""})),
     r"'prompt_id' column must be non-empty on every row; row 2 has ''"),
    ("duplicate_draw", lambda t: cje.load(_with(prompt_id={2: "p0"}, draw_idx=[0] * 12)),
     r"Rows 0 and 2 share prompt_id='p0', policy='a', draw_idx=0 \(2 rows are duplicated\)\. "
     r"Give repeated draws distinct draw_idx values"),
    ("duplicate_draw_later_rows", lambda t: cje.load(_with(prompt_id={11: "p7", 10: "p7"},
                                                           draw_idx=[0] * 10 + [1, 1])),
     r"Rows 10 and 11 share prompt_id='p7', policy='b', draw_idx=1"),
    ("negative_draw_idx", lambda t: cje.load(_with(draw_idx=[0] * 11 + [-1])),
     r"'draw_idx' column must hold non-negative integers; row 11 \(prompt_id='p5'\) has -1\.0"),
    # ---- policy ------------------------------------------------------------------------
    ("empty_policy", lambda t: cje.load(_with(policy={3: ""})),
     r"'policy' column must name a policy on every row; row 3 \(prompt_id='p3'\) has an empty "
     r"policy\. Fill it in"),
    ("missing_policy_pandas", lambda t: cje.load(pd.DataFrame(_with(policy={7: None}))),
     r"'policy' column must name a policy on every row; row 7 \(prompt_id='p1'\)"),
    ("unknown_policy_analyze", lambda t: cje.analyze(pd.DataFrame(_base()), policies=["nope"]),
     r"Policy 'nope' has no rows; the data has policies \['a', 'b'\]"),
    ("empty_policy_file", lambda t: cje.load(_fresh_dir_with_empty_policy(t)),
     r"Policy 'empty' has no rows: '.*empty_responses\.jsonl' is empty\. Add its responses, or "
     r"remove the file"),
    ("empty_policy_file_analyze", lambda t: cje.analyze(_fresh_dir_with_empty_policy(t)),
     r"Policy 'empty' has no rows"),
    # ---- oracle_label ------------------------------------------------------------------
    ("text_oracle_label", lambda t: cje.load(_with(oracle_label={1: "good"})),
     r"'oracle_label' column must be numeric; row 1 \(prompt_id='p1'\) has 'good'\. Convert it "
     r"to a number, or leave it empty"),
    ("text_oracle_label_csv",
     lambda t: cje.load(_write(t, "d.csv", "prompt_id,policy,judge_score,oracle_label\n"
                                           "q1,a,0.2,0.1\nq2,a,0.4,good\nq3,a,0.6,\n")),
     r"'oracle_label' column must be numeric; row 1 \(prompt_id='q2'\) has 'good'"),
    ("oracle_label_above_scale", lambda t: cje.load(_with(oracle_label={0: 7}), label_scale=(0, 1)),
     r"'oracle_label' column must lie within label_scale=\(0, 1\); row 0 \(prompt_id='p0'\) has 7\. "
     r"Declare the scale"),
    ("inf_oracle_label", lambda t: cje.load(_with(oracle_label={3: INF})),
     r"'oracle_label' column must be finite or empty; row 3 \(prompt_id='p3'\) has inf\. Leave "
     r"unlabelled rows empty"),
    ("identical_labels", lambda t: cje.analyze(_with(oracle_label=[1.0] * 5 + [None] * 7)),
     r"'oracle_label' column has a single value \(1\) on all 5 labelled rows.*Check that the right "
     r"column is used"),
    ("identical_labels_analyze",
     lambda t: cje.analyze(_with(oracle_label=[0.5] * 5 + [None] * 7), judge_scale=(0, 1)),
     r"'oracle_label' column has a single value \(0\.5\)"),
    # ---- empty input -------------------------------------------------------------------
    ("empty_dict", lambda t: cje.load({}), r"The input has no rows"),
    ("dict_of_empty_lists", lambda t: cje.load({"prompt_id": [], "judge_score": []}),
     r"The input has no rows"),
    ("empty_pandas", lambda t: cje.load(pd.DataFrame(columns=["prompt_id", "judge_score"])),
     r"The input has no rows"),
    ("empty_polars", lambda t: cje.load(pl.DataFrame({"prompt_id": [], "judge_score": []})),
     r"The input has no rows"),
    ("empty_csv_file", lambda t: cje.load(_write(t, "e.csv", "")), r"no rows: '.*e\.csv' is empty"),
    ("header_only_csv", lambda t: cje.load(_write(t, "h.csv", "prompt_id,judge_score\n")),
     r"no rows: '.*h\.csv' is empty"),
    ("empty_jsonl_file", lambda t: cje.load(_write(t, "e.jsonl", "\n\n")),
     r"no rows: '.*e\.jsonl' is empty"),
    ("empty_parquet_file", lambda t: cje.load(_write(t, "e.parquet", "")),
     r"no rows: '.*e\.parquet' is empty"),
    ("empty_file_analyze", lambda t: cje.analyze(_write(t, "e.csv", "")), r"no rows"),
    # ---- files ---------------------------------------------------------------------------
    ("missing_file", lambda t: cje.load(t / "nope.csv"), r"No such file or directory: '.*nope\.csv'"),
    ("unknown_suffix", lambda t: cje.load(_write(t, "d.txt", "x")),
     r"unknown file type '\.txt'\. Use \.jsonl, \.csv or \.parquet"),
    ("corrupt_parquet", lambda t: cje.load(_write(t, "bad.parquet", "not parquet at all")),
     r"Cannot parse '.*bad\.parquet' as Parquet"),
    ("not_json_lines", lambda t: cje.load(_write(t, "d.jsonl", '[{"prompt_id": "a"}]\n')),
     r"'.*d\.jsonl', line 1: each line must be a JSON object \(\{\.\.\.\}\); got a list"),
    ("dir_without_responses", lambda t: cje.load(t),
     r"is a directory but holds no '<policy>_responses\.jsonl' files"),
    ("unsupported_type", lambda t: cje.load(42), r"Cannot read data of type int"),
    # ---- arguments ---------------------------------------------------------------------
    ("judge_scale_equal", lambda t: cje.load(_base(), judge_scale=(1, 1)),
     r"judge_scale must satisfy low < high \(both finite\); got \(1, 1\)"),
    ("judge_scale_reversed", lambda t: cje.load(_base(), judge_scale=(10, 0)),
     r"judge_scale must satisfy low < high .*got \(10, 0\)"),
    ("judge_scale_infinite", lambda t: cje.load(_base(), judge_scale=(0, INF)),
     r"judge_scale must satisfy low < high \(both finite\)"),
    ("judge_scale_one_value", lambda t: cje.load(_base(), judge_scale=(0,)),
     r"judge_scale must be a pair \(low, high\), e\.g\. judge_scale=\(0, 10\); got \(0,\)"),
    ("judge_scale_three_values", lambda t: cje.load(_base(), judge_scale=(0, 1, 2)),
     r"judge_scale must be a pair \(low, high\).*got \(0, 1, 2\)"),
    ("judge_scale_analyze", lambda t: cje.analyze(_base(), judge_scale=(1, 0)),
     r"judge_scale must satisfy low < high"),
    ("label_scale_reversed", lambda t: cje.load(_base(), label_scale=(5, 1)),
     r"label_scale must satisfy low < high .*got \(5, 1\)"),
    ("on_invalid_unknown", lambda t: cje.load(_base(), on_invalid="ignore"),  # type: ignore[arg-type]
     r"on_invalid must be 'raise' or 'drop'; got 'ignore'"),
    ("columns_maps_to_missing", lambda t: cje.load(_base(), columns={"judge_score": "score"}),
     r"columns maps 'judge_score' to 'score', but the input has no column 'score'; its columns are "
     r"\['judge_score', 'oracle_label', 'policy', 'prompt_id'\]"),
    # ---- covariates --------------------------------------------------------------------
    ("covariate_missing", lambda t: cje.load(_base(), covariates=["difficulty"]),
     r"Covariate 'difficulty' is not a column of the input; its columns are \['judge_score', "
     r"'oracle_label', 'policy', 'prompt_id'\]"),
    ("covariate_missing_analyze", lambda t: cje.analyze(_base(), covariates=["difficulty"]),
     r"Covariate 'difficulty' is not a column of the input"),
    ("response_length_underivable", lambda t: cje.load(_base(), covariates=["response_length"]),
     r"response_length was requested as a covariate, but the input has neither a "
     r"'response_length' column nor a 'response' column.*Add one of them, or drop the covariate"),
    ("covariate_nan", lambda t: cje.load(_with(difficulty=[1, 2, NAN, 4, 5, 6] * 2),
                                         covariates=["difficulty"]),
     r"Covariate 'difficulty' must be numeric and complete; row 2 \(prompt_id='p2'\) has nan\. "
     r"Fill it in, or drop the covariate"),
    ("covariate_inf", lambda t: cje.load(_with(difficulty=[1, 2, 3, 4, 5, 6, 1, INF, 3, 4, 5, 6]),
                                         covariates=["difficulty"]),
     r"Covariate 'difficulty' must be numeric and complete; row 7 \(prompt_id='p1'\) has inf"),
    ("covariate_none", lambda t: cje.load(_with(difficulty=[1, 2, 3, None, 5, 6] * 2),
                                          covariates=["difficulty"]),
     r"Covariate 'difficulty' must be numeric and complete; row 3 \(prompt_id='p3'\) has None"),
    ("covariate_text", lambda t: cje.load(_with(difficulty=["easy"] * 12), covariates=["difficulty"]),
     r"'difficulty' column must be numeric; row 0 \(prompt_id='p0'\) has 'easy'"),
    ("response_missing_text", lambda t: cje.load(_with(response=["a b"] * 11 + [None]),
                                                 covariates=["response_length"]),
     r"response_length is derived from the 'response' column \(its word count\), which must be text "
     r"on every row; row 11 \(prompt_id='p5'\) has no response"),
    ("standard_column_as_covariate", lambda t: cje.load(_base(), covariates=["judge_score"]),
     r"'judge_score' cannot be a covariate \(it is a standard column\)"),
]


@pytest.mark.parametrize(("call", "pattern"), [c[1:] for c in BAD_INPUT], ids=[c[0] for c in BAD_INPUT])
def test_bad_input_raises_clear_error(call: Callable[[Path], Any], pattern: str, tmp_path: Path) -> None:
    with pytest.raises(cje.CJEInputError, match=pattern):
        call(tmp_path)


def test_bad_input_cases_are_distinct() -> None:
    ids = [c[0] for c in BAD_INPUT]
    assert len(ids) == len(set(ids))


def test_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        cje.load(_with(judge_score={0: NAN}))


# ---- on_invalid="drop" --------------------------------------------------------------------
def test_drop_excludes_and_counts_invalid_rows_only() -> None:
    d = _with(judge_score={3: NAN, 9: INF, 10: NAN}, prompt_id={7: "", 10: " ", 11: None})
    data = cje.load(d, on_invalid="drop")
    # row 10 has both problems: counted once, as an empty prompt_id
    assert dict(data.excluded) == {"empty prompt_id": 3, "non-finite judge_score": 2}
    kept = [i for i in range(12) if i not in (3, 7, 9, 10, 11)]
    assert data.n_rows == 12 - 5 == len(kept)
    np.testing.assert_array_equal(data.judge_score, np.asarray(_base()["judge_score"])[kept])
    np.testing.assert_array_equal(data.prompt_id, np.asarray(_base()["prompt_id"])[kept])
    assert data.policies == ("a", "b")


def test_drop_with_nothing_invalid_changes_nothing() -> None:
    data = cje.load(_base(), on_invalid="drop")
    assert data.n_rows == 12
    assert dict(data.excluded) == {}


def test_drop_does_not_hide_other_errors() -> None:
    # on_invalid="drop" covers invalid judge scores and prompt ids only; a bad label still raises
    with pytest.raises(cje.CJEInputError, match=r"'oracle_label' column must be numeric; row 1"):
        cje.load(_with(judge_score={3: NAN}, oracle_label={1: "good"}), on_invalid="drop")


def test_drop_of_every_row_raises() -> None:
    with pytest.raises(cje.CJEInputError, match=r"no valid rows left after on_invalid='drop'"):
        cje.load(_with(judge_score=[NAN] * 12), on_invalid="drop")


def test_drop_is_shown_in_report_and_summary() -> None:
    sim = cje.synthetic.make_direct_eval(60, rng=1)
    df = sim.data.copy()
    n_rows, n_labels = len(df), int(df["oracle_label"].notna().sum())
    df.loc[3, "judge_score"] = np.nan
    df.loc[7, "judge_score"] = np.inf
    df.loc[5, "prompt_id"] = " "
    dropped_labels = int(df.loc[[3, 5, 7], "oracle_label"].notna().sum())
    rep = cje.analyze(df, judge_scale=sim.judge_scale, label_scale=sim.label_scale, on_invalid="drop")
    assert rep.excluded == {"empty prompt_id": 1, "non-finite judge_score": 2}
    assert sum(e.n for e in rep.estimates) == n_rows - 3
    assert sum(e.n_labels for e in rep.estimates) == n_labels - dropped_labels
    assert ("Excluded on request (on_invalid='drop'): 1 rows with empty prompt_id, "
            "2 rows with non-finite judge_score.") in rep.summary()
    assert cje.Report.from_json(rep.to_json()).excluded == rep.excluded


# ---- too few labels: UNCALIBRATED, never an error -----------------------------------------------
def test_fewer_than_four_labelled_prompts_is_uncalibrated() -> None:
    sim = cje.synthetic.make_direct_eval(40, rng=3)
    df = sim.data.copy()
    labelled = df.index[df["oracle_label"].notna()]
    df.loc[labelled[3:], "oracle_label"] = np.nan  # keep labels on 3 prompts
    assert df.loc[df["oracle_label"].notna(), "prompt_id"].nunique() == 3
    rep = cje.analyze(df, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert [e.policy for e in rep.estimates] == sorted(df["policy"].unique())
    assert all(e.status == "UNCALIBRATED" for e in rep.estimates)
    assert all(e.units == "judge" for e in rep.estimates)
    assert rep.calibration is None
    judge_means = df.groupby("policy")["judge_score"].mean()
    for e in rep.estimates:  # the raw judge mean on the judge scale
        assert e.estimate == pytest.approx(judge_means[e.policy], rel=1e-12)
    text = rep.summary()
    assert text.startswith("UNCALIBRATED")
    assert "only 3 labelled prompt(s)" in text


def test_no_labels_at_all_is_uncalibrated() -> None:
    d = _with(oracle_label=None)
    rep = cje.analyze(d, judge_scale=(0, 1))
    assert {e.status for e in rep.estimates} == {"UNCALIBRATED"}
    assert rep["a"].estimate == pytest.approx(np.mean(_base()["judge_score"][:6]))
    assert "UNCALIBRATED" in rep.summary()


# ---- loaders -----------------------------------------------------------------------------------
def _long_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "prompt_id": ["q1", "q2", "q3", "q1", "q2", "q3", "q1", "q4"],
        "policy": ["a", "a", "a", "b", "b", "b", "b", "c"],
        "draw_idx": [0, 0, 0, 0, 0, 0, 1, 0],
        "judge_score": [0.1, 0.4, 0.9, 0.3, 0.35, 0.8, 0.55, 0.05],
        "oracle_label": [0.0, 0.5, 1.0, np.nan, np.nan, np.nan, 0.25, np.nan],
    })


def _sources(tmp: Path, df: pd.DataFrame) -> dict[str, Any]:
    df.to_csv(tmp / "d.csv", index=False)
    df.to_parquet(tmp / "d.parquet")
    df.to_json(tmp / "d.jsonl", orient="records", lines=True)  # NaN -> null
    return {
        "pandas": df,
        "polars": pl.from_pandas(df),
        "dict": {c: df[c].to_numpy() for c in df.columns},
        "dict_of_lists": {c: df[c].tolist() for c in df.columns},
        "jsonl": tmp / "d.jsonl",
        "csv": tmp / "d.csv",
        "csv_str": str(tmp / "d.csv"),
        "parquet": tmp / "d.parquet",
    }


def test_every_source_gives_identical_arrays(tmp_path: Path) -> None:
    df = _long_frame()
    loaded = {k: cje.load(s) for k, s in _sources(tmp_path, df).items()}
    ref = loaded["pandas"]
    # the reference itself matches the frame it came from
    np.testing.assert_array_equal(ref.judge_score, df["judge_score"].to_numpy())
    np.testing.assert_array_equal(ref.oracle_label, df["oracle_label"].to_numpy())
    np.testing.assert_array_equal(ref.prompt_id, df["prompt_id"].to_numpy())
    np.testing.assert_array_equal(ref.draw_idx, df["draw_idx"].to_numpy())
    assert ref.policies == ("a", "b", "c")
    assert [ref.policies[c] for c in ref.policy_code] == df["policy"].tolist()
    for name, d in loaded.items():
        assert d.judge_score.dtype == np.float64, name
        np.testing.assert_array_equal(d.judge_score, ref.judge_score, err_msg=name)
        np.testing.assert_array_equal(d.oracle_label, ref.oracle_label, err_msg=name)  # NaN == NaN
        np.testing.assert_array_equal(d.prompt_id, ref.prompt_id, err_msg=name)
        np.testing.assert_array_equal(d.prompt_code, ref.prompt_code, err_msg=name)
        np.testing.assert_array_equal(d.policy_code, ref.policy_code, err_msg=name)
        np.testing.assert_array_equal(d.draw_idx, ref.draw_idx, err_msg=name)
        assert d.policies == ref.policies, name
        assert (d.judge_scale, d.label_scale) == (ref.judge_scale, ref.label_scale), name
        assert d.n_labels == 4, name


def test_integer_prompt_ids_load_as_the_same_strings(tmp_path: Path) -> None:
    df = _long_frame().assign(prompt_id=[1, 2, 3, 1, 2, 3, 1, 4])
    for name, src in _sources(tmp_path, df).items():
        d = cje.load(src)
        assert d.prompt_id.tolist() == ["1", "2", "3", "1", "2", "3", "1", "4"], name


def test_loaded_arrays_are_read_only() -> None:
    d = cje.load(_base())
    with pytest.raises(ValueError):
        d.judge_score[0] = 5.0


def test_evaldata_is_returned_as_is() -> None:
    d = cje.load(_base())
    assert cje.load(d) is d


@pytest.mark.parametrize("kind", ["dict", "pandas", "polars", "csv", "jsonl", "parquet"])
def test_columns_mapping_renames(kind: str, tmp_path: Path) -> None:
    df = _long_frame().rename(columns={"judge_score": "score", "prompt_id": "question"})
    src = _sources(tmp_path, df)[kind]
    d = cje.load(src, columns={"judge_score": "score", "prompt_id": "question"})
    np.testing.assert_array_equal(d.judge_score, df["score"].to_numpy())
    np.testing.assert_array_equal(d.prompt_id, df["question"].to_numpy())


def test_columns_mapping_in_analyze() -> None:
    sim = cje.synthetic.make_direct_eval(60, rng=5)
    df = sim.data.rename(columns={"judge_score": "score"})
    kw = dict(judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    rep = cje.analyze(df, columns={"judge_score": "score"}, **kw)
    ref = cje.analyze(sim.data, **kw)
    assert [e.estimate for e in rep.estimates] == [e.estimate for e in ref.estimates]


def test_analyze_with_the_minimum_four_labelled_prompts() -> None:
    rep = cje.analyze(_with(oracle_label=[0.0, 0.2, 0.6, 1.0, None, None] + [None] * 6),
                      judge_scale=(0, 1), label_scale=(0, 1))
    assert rep.calibration is not None and rep.calibration.n_labelled_prompts == 4
    assert rep.calibration.n_folds == 2
    assert any("K = 2" in w for w in rep.warnings)
    assert all(np.isfinite([e.estimate, e.se]).all() for e in rep.estimates)


@pytest.mark.parametrize(
    ("scores", "scale"),
    [
        ([0.0, 0.25, 0.5, 1.0], (0.0, 1.0)),
        ([0.2, 0.45, 0.85, 0.9], (0.0, 1.0)),
        ([1, 2, 3, 5], (1.0, 5.0)),
        ([1, 2, 4, 4], (1.0, 5.0)),
        ([0, 3, 7, 10], (0.0, 10.0)),
        ([2, 3, 8, 9], (1.0, 10.0)),
        ([12, 40, 99, 3], (0.0, 100.0)),
    ],
)
def test_judge_scale_inference(scores: list[float], scale: tuple[float, float]) -> None:
    d = cje.load({"prompt_id": ["a", "b", "c", "d"], "policy": ["x"] * 4, "judge_score": scores})
    assert d.judge_scale == scale
    lo, hi = scale
    notice = [n for n in d.notices if n.startswith("judge_scale was not given")]
    assert len(notice) == 1
    assert f"inferred ({lo:g}, {hi:g})" in notice[0]
    assert f"observed {min(scores):g} to {max(scores):g}" in notice[0]


def test_label_scale_inference_and_default() -> None:
    d = cje.load(_with(oracle_label=[1, 2, 5, 3, 4, None] + [None] * 6), judge_scale=(0, 1))
    assert d.label_scale == (1.0, 5.0)
    assert any(n.startswith("label_scale was not given; inferred (1, 5)") for n in d.notices)
    # with no labels at all the label scale is the judge scale, and there is no label notice
    d = cje.load(_with(oracle_label=None), judge_scale=(0, 10))
    assert d.label_scale == (0.0, 10.0)
    assert not any("label_scale" in n for n in d.notices)


def test_declared_scales_give_no_notice() -> None:
    d = cje.load(_base(), judge_scale=(0, 1), label_scale=(0, 2))
    assert (d.judge_scale, d.label_scale) == ((0.0, 1.0), (0.0, 2.0))
    assert not any("scale" in n for n in d.notices)
    np.testing.assert_allclose(d.judge01(), _base()["judge_score"])
    np.testing.assert_allclose(d.label01()[:5], [0.0, 0.1, 0.3, 0.4, 0.5])


def test_no_policy_column_is_one_policy_with_notice() -> None:
    d = cje.load(_with(policy=None, prompt_id=[f"p{i}" for i in range(12)]), judge_scale=(0, 1))
    assert d.policies == ("default",)
    assert (d.policy_code == 0).all()
    assert any(n.startswith("No 'policy' column") for n in d.notices)
    named = cje.load(_with(policy=None, prompt_id=[f"p{i}" for i in range(12)]), policy="mine",
                     judge_scale=(0, 1))
    assert named.policies == ("mine",)
    assert not any("policy" in n for n in named.notices)


def test_missing_draw_idx_numbers_repeated_draws() -> None:
    d = cje.load({"prompt_id": ["a", "a", "b", "a", "b"], "policy": ["x", "x", "x", "y", "x"],
                  "judge_score": [0.1, 0.2, 0.3, 0.4, 0.5]})
    assert d.draw_idx.tolist() == [0, 1, 0, 0, 1]
    assert any(n.startswith("2 rows repeat a (prompt_id, policy) pair") for n in d.notices)
    once = cje.load({"prompt_id": ["a", "b", "a"], "policy": ["x", "x", "y"],
                     "judge_score": [0.1, 0.2, 0.3]})
    assert once.draw_idx.tolist() == [0, 0, 0]
    assert not any("repeat" in n for n in once.notices)


def test_response_length_is_derived_from_response() -> None:
    d = cje.load(_with(response=["one two three", "four"] * 6), covariates=["response_length"])
    assert d.covariates["response_length"].tolist() == [3.0, 1.0] * 6
    assert any("response_length was derived from 'response'" in n for n in d.notices)


def test_numeric_covariate_is_kept_from_a_file(tmp_path: Path) -> None:
    df = pd.DataFrame(_with(difficulty=list(range(12))))
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    d = cje.load(tmp_path / "d.jsonl", covariates=["difficulty"])
    assert d.covariates["difficulty"].tolist() == [float(i) for i in range(12)]


def test_oracle_label_nan_text_is_unlabelled() -> None:
    d = cje.load(_with(oracle_label=["0", "0.5", "nan", "", "1", None] + [None] * 6))
    np.testing.assert_array_equal(d.labelled[:6], [True, True, False, False, True, False])


# ---- cje-eval formats (real Arena sample) ------------------------------------------------------
def test_arena_fresh_draws_directory(arena: Path) -> None:
    d = cje.load(arena / "fresh_draws")
    assert d.policies == ("base", "clone", "parallel_universe_prompt", "unhelpful")
    assert d.n_rows == 4000
    assert np.bincount(d.policy_code).tolist() == [1000] * 4
    assert d.n_labels == 480
    assert np.bincount(d.policy_code[d.labelled], minlength=4).tolist() == [480, 0, 0, 0]
    assert len(d.prompts) == 1000
    assert d.judge_scale == (0.0, 1.0) and d.label_scale == (0.0, 1.0)
    # independent reference: the base file read with the json module
    with open(arena / "fresh_draws" / "base_responses.jsonl") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    base = d.rows_of("base")
    assert d.prompt_id[base].tolist() == [r["prompt_id"] for r in recs]
    np.testing.assert_array_equal(d.judge_score[base], [r["judge_score"] for r in recs])


def test_arena_logged_data(arena: Path) -> None:
    d = cje.load(arena / "logged_data.jsonl")
    assert d.n_rows == 1000
    assert d.n_labels == 480
    assert d.policies == ("base",)
    assert sorted(d.logprobs) == ["base", "clone", "parallel_universe_prompt", "unhelpful"]
    with open(arena / "logged_data.jsonl") as fh:
        recs = [json.loads(line) for line in fh if line.strip()]
    assert d.prompt_id.tolist() == [r["metadata"]["prompt_id"] for r in recs]
    np.testing.assert_array_equal(d.logprobs["base"], [r["base_policy_logprob"] for r in recs])
    np.testing.assert_array_equal(d.logprobs["unhelpful"],
                                  [r["target_policy_logprobs"]["unhelpful"] for r in recs])
    labels = [r.get("oracle_label") for r in recs]
    np.testing.assert_array_equal(d.oracle_label, [NAN if v is None else v for v in labels])
    named = cje.load(arena / "logged_data.jsonl", logging_policy="logger")
    assert named.policies == ("logger",)


# ---- folds ---------------------------------------------------------------------------------------
def _fold_of(prompts: np.ndarray, labelled: np.ndarray, k: int, seed: int = 0) -> dict[str, int]:
    return dict(zip(prompts.tolist(), cje.prompt_folds(prompts, labelled, k, seed).tolist(),
                    strict=True))


@pytest.mark.parametrize("seed", [0, 1, 17])
def test_prompt_folds_ignore_input_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    prompts = np.array([f"prompt-{i}" for i in range(257)], dtype=object)
    labelled = rng.random(prompts.size) < 0.3
    ref = _fold_of(prompts, labelled, 5, seed)
    for _ in range(3):
        perm = rng.permutation(prompts.size)
        assert _fold_of(prompts[perm], labelled[perm], 5, seed) == ref


@pytest.mark.parametrize(("n_labelled", "k"), [(4, 2), (5, 5), (23, 5), (100, 7), (101, 10)])
def test_prompt_folds_balance_labelled_prompts(n_labelled: int, k: int) -> None:
    prompts = np.array([f"u{i}" for i in range(3 * n_labelled)], dtype=object)
    labelled = np.zeros(prompts.size, dtype=bool)
    labelled[::3] = True
    fold = cje.prompt_folds(prompts, labelled, k)
    assert fold.dtype == np.int64
    assert ((fold >= 0) & (fold < k)).all()
    sizes = np.bincount(fold[labelled], minlength=k)
    assert sizes.sum() == n_labelled
    assert sizes.max() - sizes.min() <= 1
    assert sizes.min() >= (1 if n_labelled >= k else 0)


def test_prompt_folds_depend_on_seed_and_accept_integer_ids() -> None:
    prompts = np.array([str(i) for i in range(200)], dtype=object)
    labelled = np.ones(200, dtype=bool)
    assert not np.array_equal(cje.prompt_folds(prompts, labelled, 5, 0),
                              cje.prompt_folds(prompts, labelled, 5, 1))
    as_int = cje.prompt_folds(np.arange(200), labelled, 5, 0)
    np.testing.assert_array_equal(as_int, cje.prompt_folds(prompts, labelled, 5, 0))


@pytest.mark.parametrize("k", [0, 1, -3, 2.5])
def test_prompt_folds_reject_bad_k(k: Any) -> None:
    with pytest.raises(cje.CJEInputError, match=r"n_folds must be an integer >= 2"):
        cje.prompt_folds(np.array(["a", "b", "c"], dtype=object), np.ones(3, bool), k)


def test_analyze_rejects_zero_folds_cleanly() -> None:
    sim = cje.synthetic.make_direct_eval(40, rng=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no division by zero on the way
        with pytest.raises(cje.CJEInputError, match=r"n_folds must be an integer >= 2; got 0"):
            cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale, n_folds=0)
