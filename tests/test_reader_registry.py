"""The reader registry (cje.readers): a format registered from outside the package reaches
``cje.load`` / ``cje.analyze`` / ``cje analyze`` and ``cje.bias.audit`` / ``cje bias`` alike.

The test registers a made-up tab-separated ``.myfmt`` format and checks, against the same data
written as CSV (a built-in format), that every entry point reads it to the same numbers, that ids
are read as written (``007`` and ``7``, ``1.10`` and ``1.1`` stay distinct), that errors still name
the file and the line, and that unregistering it leaves the registry as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pytest

import cje
from cje.bias._result import as_frame
from cje.cli import main
from cje.errors import CJEInputError
from cje.readers import (
    read_table,
    reader_for,
    register_reader,
    registered_readers,
    unregister_reader,
)
from cje.synthetic import make_direct_eval, make_pairwise_eval, make_panel_eval

# ids that a number-guessing reader would merge
PROMPT_IDS = {"p00000": "007", "p00001": "7", "p00002": "1.10", "p00003": "1.1"}


def read_myfmt(path: Path, id_columns: tuple[str, ...] = ()) -> dict[str, list[Any]]:
    """A made-up format: tab-separated, '#' comment lines, empty field = missing."""
    lines = [(n, line) for n, line in enumerate(Path(path).read_text().splitlines(), start=1)
             if line and not line.startswith("#")]
    (_, head), body = lines[0], lines[1:]
    names = head.split("\t")
    rows = []
    for n, line in body:
        fields = line.split("\t")
        if len(fields) != len(names):
            raise CJEInputError(
                f"'{path}', line {n}: {len(fields)} fields but the header has {len(names)} — "
                "fix the line."
            )
        rows.append(fields)
    cols: dict[str, list[Any]] = {}
    for j, name in enumerate(names):
        values = [r[j] for r in rows]
        if name in id_columns:
            cols[name] = values
            continue
        try:
            cols[name] = [float(v) if v else None for v in values]
        except ValueError:
            cols[name] = [v or None for v in values]
    return cols


@pytest.fixture
def myfmt():
    before = registered_readers()
    reader = register_reader("myfmt", read_myfmt, suffixes=[".myfmt"])
    yield reader
    if reader in registered_readers():
        unregister_reader("myfmt")
    assert registered_readers() == before


def _write(df: pd.DataFrame, tmp_path: Path, stem: str) -> tuple[Path, Path]:
    """The same rows as .myfmt (with a comment line) and as .csv."""
    mine, csv = tmp_path / f"{stem}.myfmt", tmp_path / f"{stem}.csv"
    mine.write_text("# written by the test\n" + df.to_csv(sep="\t", index=False))
    df.to_csv(csv, index=False)
    return mine, csv


@pytest.fixture(scope="module")
def direct() -> pd.DataFrame:
    df = make_direct_eval(120, rng=1).data
    df["prompt_id"] = df["prompt_id"].replace(PROMPT_IDS)
    df["policy"] = df["policy"].replace({df["policy"].iloc[0]: "1.10"})
    return df


def test_the_built_in_formats_are_registry_entries(tmp_path):
    names = [r.name for r in registered_readers()]
    assert {"csv", "parquet", "jsonl", "fresh-draws"} <= set(names)
    assert reader_for(tmp_path / "a.JSONL").name == "jsonl"
    assert reader_for(tmp_path / "a.pq").name == "parquet"
    assert reader_for(tmp_path).name == "fresh-draws"
    with pytest.raises(CJEInputError, match=r"unknown file type '\.myfmt'\. Use \.jsonl, \.csv or "
                                            r"\.parquet, or a directory"):
        reader_for(tmp_path / "a.myfmt")


def _content(result) -> dict:
    """A report's JSON without its provenance (which names the input file, its hash and the time)."""
    d = json.loads(result.to_json())
    d.pop("provenance", None)
    return d


def test_registered_format_reaches_load_and_analyze(myfmt, direct, tmp_path):
    mine, csv = _write(direct, tmp_path, "runs")
    assert reader_for(mine) is myfmt
    a = cje.load(mine, judge_scale=(0, 10), label_scale=(1, 5))
    b = cje.load(csv, judge_scale=(0, 10), label_scale=(1, 5))
    assert {"007", "7", "1.10", "1.1"} <= set(a.prompts)  # ids as written, never merged
    assert "1.10" in a.policies
    assert a.policies == b.policies and (a.prompts == b.prompts).all()
    assert a.judge_score.tolist() == b.judge_score.tolist()
    ra = cje.analyze(mine, judge_scale=(0, 10), label_scale=(1, 5))
    rb = cje.analyze(csv, judge_scale=(0, 10), label_scale=(1, 5))
    assert _content(ra) == _content(rb)


def test_registered_format_reaches_the_cli(myfmt, direct, tmp_path, capsys):
    mine, csv = _write(direct, tmp_path, "runs")
    out = []
    for path in (mine, csv):
        assert main(["analyze", str(path), "--judge-scale", "0", "10", "--label-scale", "1", "5",
                     "--format", "json"]) == 0
        out.append(json.loads(capsys.readouterr().out))
        out[-1].pop("provenance")  # names the input file and its hash: differs by design
    assert out[0] == out[1]


def test_registered_format_reaches_bias(myfmt, tmp_path, capsys):
    panel = make_panel_eval(80, length_effect=0.3, rng=4).data
    panel["prompt_id"] = panel["prompt_id"].replace(PROMPT_IDS)
    mine, csv = _write(panel, tmp_path, "scores")
    frame = as_frame(mine)
    assert {"007", "7", "1.10", "1.1"} <= set(frame["prompt_id"])
    # pointwise scores: no test draws a bootstrap here, so no --bootstrap (refused as doing nothing)
    a = cje.bias.audit(mine)
    b = cje.bias.audit(csv)
    assert _content(a) == _content(b) and len(a.results) > 0
    assert main(["bias", str(mine), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"]


def test_reader_errors_name_the_file_and_line(myfmt, direct, tmp_path, capsys):
    bad = tmp_path / "bad.myfmt"
    bad.write_text("prompt_id\tpolicy\tjudge_score\na\tx\t0.5\nb\tx\n")
    with pytest.raises(CJEInputError, match=r"bad\.myfmt', line 3: 2 fields but the header has 3"):
        cje.load(bad)
    with pytest.raises(CJEInputError, match=r"bad\.myfmt', line 3"):
        as_frame(bad)
    for command in ("analyze", "bias"):
        assert main([command, str(bad)]) == 2
        assert "bad.myfmt', line 3" in capsys.readouterr().err
    empty = tmp_path / "empty.myfmt"
    empty.write_text("")
    with pytest.raises(CJEInputError, match="The input has no rows: '.*empty.myfmt' is empty"):
        cje.load(empty)
    header_only = tmp_path / "header.myfmt"
    header_only.write_text("prompt_id\tpolicy\tjudge_score\n")
    with pytest.raises(CJEInputError, match="The input has no rows: '.*header.myfmt' is empty"):
        read_table(header_only)


def test_a_failing_reader_is_an_input_error_naming_file_and_reader(tmp_path):
    def broken(path):
        raise ValueError("no such dialect")

    register_reader("broken", broken, suffixes=".brk")
    try:
        p = tmp_path / "x.brk"
        p.write_text("anything")
        with pytest.raises(CJEInputError, match=r"Cannot read '.*x\.brk' with the 'broken' reader: "
                                                r"ValueError: no such dialect"):
            cje.load(p)
        assert main(["bias", str(p)]) == 2
    finally:
        unregister_reader("broken")


@pytest.mark.parametrize("kind", ["polars", "pandas", "lazy"])
def test_a_reader_may_return_any_frame(kind, tmp_path):
    cols = {"prompt_id": ["007", "7"], "policy": ["x", "x"], "judge_score": [0.25, 0.75]}
    make = {"polars": pl.DataFrame, "pandas": pd.DataFrame,
            "lazy": lambda c: pl.DataFrame(c).lazy()}[kind]
    register_reader("frames", lambda path: make(cols), suffixes=[".frm"])
    try:
        (tmp_path / "d.frm").write_text("-")
        t = read_table(tmp_path / "d.frm")
        assert isinstance(t, pl.DataFrame) and t["prompt_id"].to_list() == ["007", "7"]
    finally:
        unregister_reader("frames")


def test_a_later_reader_is_tried_first_and_a_predicate_can_match(direct, tmp_path):
    csv = tmp_path / "runs.csv"
    direct.to_csv(csv, index=False)
    calls = []

    def spy(path, want=None):
        calls.append(want)
        return pl.read_csv(path, schema_overrides={"prompt_id": pl.String, "policy": pl.String})

    register_reader("my-csv", spy, matches=lambda p: p.name == "runs.csv")
    try:
        d = cje.load(csv, judge_scale=(0, 10))
        assert len(calls) == 1 and "judge_score" in calls[0]  # the option it declared
        assert "007" in d.prompts
    finally:
        unregister_reader("my-csv")
    assert reader_for(csv).name == "csv"


def test_registration_is_checked():
    with pytest.raises(CJEInputError, match="already registered.*replace=True"):
        register_reader("csv", read_myfmt, suffixes=[".csv"])
    with pytest.raises(CJEInputError, match=r"suffixes must look like '\.tsv'.*'tsv'"):
        register_reader("tsv", read_myfmt, suffixes=["tsv"])
    with pytest.raises(CJEInputError, match="needs suffixes=.*or a matches"):
        register_reader("nothing", read_myfmt)
    with pytest.raises(CJEInputError, match="read must be a function"):
        register_reader("notfn", "read", suffixes=[".x"])
    with pytest.raises(CJEInputError, match="No reader named 'nope'.*'csv'"):
        unregister_reader("nope")
    register_reader("twice", read_myfmt, suffixes=[".tw"])
    try:
        r2 = register_reader("twice", read_myfmt, suffixes=[".tw2"], replace=True)
        assert r2.suffixes == (".tw2",) and r2.options == ("id_columns",)
        assert [x.name for x in registered_readers()].count("twice") == 1
    finally:
        unregister_reader("twice")


def test_a_bad_return_value_is_named(tmp_path):
    (tmp_path / "d.bad").write_text("-")
    register_reader("bad-return", lambda path: [1, 2, 3], suffixes=[".bad"])
    try:
        with pytest.raises(CJEInputError, match="'bad-return' reader returned a list"):
            read_table(tmp_path / "d.bad")
    finally:
        unregister_reader("bad-return")
    register_reader("ragged", lambda path: {"a": [1, 2], "b": [1]}, suffixes=[".bad"])
    try:
        with pytest.raises(CJEInputError, match="'ragged' reader returned columns polars cannot hold"):
            read_table(tmp_path / "d.bad")
    finally:
        unregister_reader("ragged")
    assert "unknown file type '.bad'" in str(pytest.raises(CJEInputError, read_table,
                                                            tmp_path / "d.bad").value)


def test_a_directory_format_reaches_the_pairwise_bias_tests(tmp_path):
    """A registered directory format is read by read_table itself (only cje-eval fresh-draws
    directories are read through cje.load), so pairwise verdicts can come from one."""
    pairs = make_pairwise_eval(120, position_logodds=0.5, rng=3).pairs
    folder = tmp_path / "verdicts"
    folder.mkdir()
    mine, csv = _write(pairs, folder, "all")
    csv.unlink()
    pairs.to_csv(tmp_path / "pairs.csv", index=False)
    register_reader("verdict-dir", lambda path, id_columns=(): read_myfmt(path / "all.myfmt", id_columns),
                    matches=lambda p: p.is_dir() and (p / "all.myfmt").is_file())
    try:
        with pytest.warns(cje.CJEWarning):
            a = cje.bias.audit(pairs=folder, n_bootstrap=200, rng=0)
        with pytest.warns(cje.CJEWarning):
            b = cje.bias.audit(pairs=tmp_path / "pairs.csv", n_bootstrap=200, rng=0)
        assert _content(a) == _content(b)
    finally:
        unregister_reader("verdict-dir")
