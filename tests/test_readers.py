"""Tests for the file readers (cje.readers) and the input checks of cje.load.

* Ids are read as the exact text written, by every reader: ``1.1``/``1.10``, ``2``/``2.0`` and
  ``7``/``007`` stay distinct policies and prompts through ``cje.load`` → ``cje.analyze`` and
  ``cje.export.convert``; written values that cannot be kept apart are refused, naming both.
* A file that does not parse fails with a CJEInputError naming the file and the line, the same
  through ``cje.load`` and the judge-bias reader (``as_frame``).
* Misused arguments of ``cje.load`` fail with a message naming the argument, value and fix.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

import cje
from cje.bias._result import as_frame
from cje.export import convert
from cje.readers import read_table

PAIRS = [("1.1", "1.10"), ("2", "2.0"), ("7", "007")]
# the same pairs written as JSON numbers (007 is not valid JSON; 7 and 7.0 are)
NUMBER_PAIRS = [("1.1", "1.10"), ("2", "2.0"), ("7", "7.0")]
OTHER = [f"q{i}" for i in range(6)]


def _rows(a: str, b: str) -> list[dict[str, Any]]:
    """Policies a and b, each on prompts a, b, q0..q5 (8 prompts); labels on policy a."""
    rows = []
    prompts = [a, b, *OTHER]
    for k, pol in enumerate((a, b)):
        for j, q in enumerate(prompts):
            s = round(0.1 + 0.1 * j + 0.05 * k, 3)
            rows.append({"prompt_id": q, "policy": pol, "judge_score": s,
                         "oracle_label": round(min(1.0, s + 0.02 * (j % 3)), 3) if k == 0 else None})
    return rows


def _value(v: Any, raw: set[str]) -> str:
    """JSON text of one value; ids in ``raw`` are written as bare JSON numbers."""
    return v if v in raw else json.dumps(v)


def _jsonl_text(rows: list[dict[str, Any]], raw: set[str] = frozenset(),
                keys: tuple[str, ...] = ("prompt_id", "policy", "judge_score", "oracle_label")) -> str:
    return "".join(
        "{" + ", ".join(f'"{k}": {_value(r[k], raw if k in ("prompt_id", "policy") else set())}'
                        for k in keys if k in r) + "}\n"
        for r in rows
    )


def _write_csv(t: Path, a: str, b: str) -> Path:
    lines = ["prompt_id,policy,judge_score,oracle_label"]
    for r in _rows(a, b):
        y = "" if r["oracle_label"] is None else r["oracle_label"]
        lines.append(f"{r['prompt_id']},{r['policy']},{r['judge_score']},{y}")
    (t / "d.csv").write_text("\n".join(lines) + "\n")
    return t / "d.csv"


def _write_jsonl(t: Path, a: str, b: str) -> Path:
    (t / "d.jsonl").write_text(_jsonl_text(_rows(a, b)))
    return t / "d.jsonl"


def _write_parquet(t: Path, a: str, b: str) -> Path:
    pl.DataFrame(_rows(a, b), schema={"prompt_id": pl.String, "policy": pl.String,
                                      "judge_score": pl.Float64, "oracle_label": pl.Float64}
                 ).write_parquet(t / "d.parquet")
    return t / "d.parquet"


def _write_fresh_dir(t: Path, a: str, b: str, raw: set[str] = frozenset()) -> Path:
    d = t / "fresh"
    d.mkdir()
    for pol in (a, b):
        rows = [{k: v for k, v in r.items() if k != "policy"} for r in _rows(a, b) if r["policy"] == pol]
        (d / f"{pol}_responses.jsonl").write_text(
            _jsonl_text(rows, raw, ("prompt_id", "judge_score", "oracle_label")))
    return d


def _write_renamed_csv(t: Path, a: str, b: str) -> Path:
    df = pd.DataFrame(_rows(a, b)).rename(columns={"policy": "model", "prompt_id": "question"})
    lines = ["question,model,judge_score,oracle_label"] + [
        f"{r.question},{r.model},{r.judge_score},{'' if pd.isna(r.oracle_label) else r.oracle_label}"
        for r in df.itertuples()]
    (t / "r.csv").write_text("\n".join(lines) + "\n")
    return t / "r.csv"


# (reader, write(tmp, a, b) -> source, load keyword arguments)
STRING_READERS: list[tuple[str, Callable[[Path, str, str], Any], dict[str, Any]]] = [
    ("csv", _write_csv, {}),
    ("csv_renamed_columns", _write_renamed_csv, {"columns": {"policy": "model", "prompt_id": "question"}}),
    ("jsonl", _write_jsonl, {}),
    ("parquet", _write_parquet, {}),
    ("fresh_draws_dir", _write_fresh_dir, {}),
    ("pandas", lambda t, a, b: pd.DataFrame(_rows(a, b)), {}),
    ("dict", lambda t, a, b: {k: [r[k] for r in _rows(a, b)] for k in _rows(a, b)[0]}, {}),
]


@pytest.mark.parametrize(("a", "b"), PAIRS, ids=["1.1-1.10", "2-2.0", "7-007"])
@pytest.mark.parametrize(("write", "kw"), [r[1:] for r in STRING_READERS], ids=[r[0] for r in STRING_READERS])
def test_ids_stay_distinct_end_to_end(write: Callable[[Path, str, str], Any], kw: dict[str, Any],
                                      a: str, b: str, tmp_path: Path) -> None:
    d = cje.load(write(tmp_path, a, b), judge_scale=(0, 1), label_scale=(0, 1), **kw)
    assert d.policies == tuple(sorted((a, b)))
    assert sorted(d.prompts.tolist()) == sorted([a, b, *OTHER])
    assert np.bincount(d.policy_code).tolist() == [8, 8]
    rep = cje.analyze(d)
    assert sorted(e.policy for e in rep.estimates) == sorted((a, b))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
@pytest.mark.parametrize(("a", "b"), PAIRS, ids=["1.1-1.10", "2-2.0", "7-007"])
def test_convert_round_trips_ids(a: str, b: str, suffix: str, tmp_path: Path) -> None:
    out = convert(_write_csv(tmp_path, a, b), tmp_path / f"flat{suffix}", judge_scale=(0, 1))
    before = cje.load(tmp_path / "d.csv", judge_scale=(0, 1))
    after = cje.load(out, judge_scale=(0, 1))
    assert after.policies == before.policies == tuple(sorted((a, b)))
    assert after.prompt_id.tolist() == before.prompt_id.tolist()
    assert [after.policies[c] for c in after.policy_code] == [before.policies[c] for c in before.policy_code]


@pytest.mark.parametrize(("a", "b"), NUMBER_PAIRS, ids=["1.1-1.10", "2-2.0", "7-7.0"])
def test_json_number_ids_keep_their_written_text(a: str, b: str, tmp_path: Path) -> None:
    (tmp_path / "n.jsonl").write_text(_jsonl_text(_rows(a, b), raw={a, b}))
    assert f'"prompt_id": {a},' in (tmp_path / "n.jsonl").read_text()  # bare numbers, really
    d = cje.load(tmp_path / "n.jsonl", judge_scale=(0, 1))
    assert d.policies == tuple(sorted((a, b)))
    assert sorted(d.prompts.tolist()) == sorted([a, b, *OTHER])
    # the fresh-draws reader: prompt ids written as numbers
    fresh = cje.load(_write_fresh_dir(tmp_path, a, b, raw={a, b}), judge_scale=(0, 1))
    assert sorted(fresh.prompts.tolist()) == sorted([a, b, *OTHER])
    # the bias reader
    frame = as_frame(tmp_path / "n.jsonl")
    assert sorted(frame["policy"].unique().tolist()) == sorted((a, b))


def test_plain_integer_json_ids_read_fast_and_exact(tmp_path: Path) -> None:
    rows = _rows("10", "11")
    (tmp_path / "i.jsonl").write_text(_jsonl_text(rows, raw={"10", "11"}))
    d = cje.load(tmp_path / "i.jsonl", judge_scale=(0, 1))
    assert d.policies == ("10", "11")
    assert d.prompt_id.tolist() == [r["prompt_id"] for r in rows]


@pytest.mark.parametrize(("a", "b"), [("7", "7.0"), ("1.1", "1.10")])
def test_logged_data_number_prompt_ids_stay_distinct(a: str, b: str, tmp_path: Path) -> None:
    lines = [f'{{"metadata": {{"prompt_id": {p}}}, "judge_score": 0.{i + 1}, '
             f'"base_policy_logprob": -1.{i}, "target_policy_logprobs": {{"t": -2.{i}}}}}'
             for i, p in enumerate([a, b, json.dumps("x"), json.dumps("y")])]
    (tmp_path / "logged.jsonl").write_text("\n".join(lines) + "\n")
    d = cje.load(tmp_path / "logged.jsonl", judge_scale=(0, 1))
    assert d.prompt_id.tolist() == [a, b, "x", "y"]
    assert d.logprobs["t"].tolist() == [-2.0, -2.1, -2.2, -2.3]


def test_bias_reader_reads_ids_as_text(tmp_path: Path) -> None:
    for write in (_write_csv, _write_jsonl, _write_parquet):
        frame = as_frame(write(tmp_path, "1.1", "1.10"))
        assert sorted(frame["policy"].unique().tolist()) == ["1.1", "1.10"], write.__name__
        assert {"1.1", "1.10"} <= set(frame["prompt_id"].tolist()), write.__name__
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("prompt_id,a_id,b_id,slot_a,winner\n007,1.10,1.1,1,a\n7,1.1,1.10,2,b\n")
    frame = as_frame(pairs)
    assert frame["a_id"].tolist() == ["1.10", "1.1"] and frame["prompt_id"].tolist() == ["007", "7"]
    assert frame["slot_a"].tolist() == [1, 2]  # numbers stay numbers


def test_draw_idx_is_an_integer_when_written_as_one(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("prompt_id,policy,draw_idx,judge_score\na,x,0,0.1\na,x,1,0.2\n")
    assert read_table(tmp_path / "d.csv")["draw_idx"].dtype == pl.Int64
    (tmp_path / "t.csv").write_text("prompt_id,policy,draw_idx,judge_score\na,x,d0,0.1\na,x,d1,0.2\n")
    assert read_table(tmp_path / "t.csv")["draw_idx"].to_list() == ["d0", "d1"]
    with pytest.raises(cje.CJEInputError, match=r"'draw_idx' column must be numeric; row 0"):
        cje.load(tmp_path / "t.csv")


# ---- written values that cannot be kept apart are refused, naming both ------------------------
def _mixed_jsonl(t: Path) -> Path:
    (t / "m.jsonl").write_text('{"prompt_id": 7, "judge_score": 0.1}\n'
                               '{"prompt_id": "a", "judge_score": 0.2}\n'
                               '{"prompt_id": "7", "judge_score": 0.3}\n')
    return t / "m.jsonl"


MERGE_CASES: list[tuple[str, Callable[[Path], Any], str]] = [
    ("jsonl_number_and_string", lambda t: cje.load(_mixed_jsonl(t)),
     r"'.*m\.jsonl': 'prompt_id' is the number 7 on line 1 and the string \"7\" on line 3; .*write "
     r"every prompt_id as a string"),
    ("bias_jsonl_number_and_string", lambda t: as_frame(_mixed_jsonl(t)),
     r"'prompt_id' is the number 7 on line 1 and the string \"7\" on line 3"),
    ("pandas_object_int_and_str",
     lambda t: cje.load(pd.DataFrame({"prompt_id": [7, "a", "7"], "judge_score": [0.1, 0.2, 0.3]})),
     r"'prompt_id' column has two different values that read as the same id '7': row 0 has 7 \(int\) "
     r"and row 2 has '7' \(str\)\. Ids are compared as text"),
    ("dict_int_and_float_policy",
     lambda t: cje.load({"prompt_id": ["a", "b", "c"], "policy": [2, "x", 2.0], "judge_score": [1, 2, 3]}),
     r"'policy' column has two different values that read as the same id '2': row 0 has 2 \(int\) and "
     r"row 2 has 2\.0 \(float\)"),
    ("csv_ids_equal_after_stripping",
     lambda t: cje.load(_write_text(t, "s.csv", "prompt_id,judge_score\n7,0.1\n 7,0.2\n")),
     r"'prompt_id' column has two different values that read as the same id '7': row 0 has '7' \(str\) "
     r"and row 1 has ' 7' \(str\)"),
]


def _write_text(t: Path, name: str, text: str | bytes) -> Path:
    p = t / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


@pytest.mark.parametrize(("call", "pattern"), [c[1:] for c in MERGE_CASES], ids=[c[0] for c in MERGE_CASES])
def test_ids_that_would_merge_are_refused(call: Callable[[Path], Any], pattern: str, tmp_path: Path) -> None:
    with pytest.raises(cje.CJEInputError, match=pattern):
        call(tmp_path)


# ---- files that do not parse: file, line and fix; identical through load and the bias reader ---
HEAD = '{"prompt_id": "a", "policy": "x", "judge_score": 0.5}\n'
LOGGED = ('{"metadata": {"prompt_id": "a"}, "judge_score": 0.5, "base_policy_logprob": -1.0, '
          '"target_policy_logprobs": {"clone": -1.5}}\n')
DEEP = '{"prompt_id": "b", "policy": "x", "judge_score": 0.5, "x": ' + "[" * 5000 + "]" * 5000 + "}\n"

# (id, file name, content, regex the message must match)
BAD_FILES: list[tuple[str, str, str | bytes, str]] = [
    ("jsonl_bare_nan", "d.jsonl", HEAD + '{"prompt_id": "b", "policy": "x", "judge_score": NaN}\n',
     r"'.*d\.jsonl', line 2: bare NaN is not valid JSON — write null for a missing value"),
    ("jsonl_bare_infinity_first_line", "d.jsonl", '{"prompt_id": "b", "judge_score": -Infinity}\n' + HEAD,
     r"'.*d\.jsonl', line 1: bare -Infinity is not valid JSON"),
    ("jsonl_truncated_last_line", "d.jsonl", HEAD * 2 + '{"prompt_id": "c", "policy": "x", "judge_sc',
     r"'.*d\.jsonl', line 3: the record ends early: the file looks truncated — complete the line or "
     r"remove it"),
    ("jsonl_bad_line_in_middle", "d.jsonl", HEAD + '{"prompt_id": "b" "judge_score": 1}\n' + HEAD,
     r"'.*d\.jsonl', line 2: not valid JSON \(Expecting ',' delimiter at column 19\) — fix the line"),
    ("jsonl_not_utf8", "d.jsonl",
     HEAD.encode() + b'{"prompt_id": "caf\xe9", "policy": "x", "judge_score": 1}\n',
     r"'.*d\.jsonl', line 2: byte 0xe9 at position 18 is not valid UTF-8 — re-save the file as UTF-8"),
    ("jsonl_deeply_nested_first_line", "d.jsonl", DEEP + HEAD,
     r"'.*d\.jsonl', line 1: the record is nested too deeply to read — flatten it"),
    ("jsonl_deeply_nested_later_line", "d.jsonl", HEAD + DEEP,
     r"'.*d\.jsonl', line 2: the record is nested too deeply to read"),
    ("jsonl_list_prompt_id", "d.jsonl", HEAD + '{"prompt_id": ["b"], "policy": "x", "judge_score": 1}\n',
     r"'.*d\.jsonl', line 2: 'prompt_id' is a list \(\[\"b\"\]\) — ids must be strings or numbers"),
    ("jsonl_dict_policy", "d.jsonl", HEAD + '{"prompt_id": "b", "policy": {"n": 1}, "judge_score": 1}\n',
     r"'.*d\.jsonl', line 2: 'policy' is an object \(\{\"n\": 1\}\) — ids must be strings or numbers"),
    ("jsonl_boolean_policy", "d.jsonl", HEAD + '{"prompt_id": "b", "policy": true, "judge_score": 1}\n',
     r"'.*d\.jsonl', line 2: 'policy' is a boolean \(true\)"),
    ("logged_na_target_logprob", "l.jsonl", LOGGED + LOGGED.replace("-1.5", '"n/a"'),
     r"'.*l\.jsonl', line 2: target_policy_logprobs\['clone'\] is \"n/a\", not a number — write a "
     r"number, or null where the log-probability is missing"),
    ("logged_na_base_logprob", "l.jsonl", LOGGED * 2 + LOGGED.replace("-1.0", '"n/a"'),
     r"'.*l\.jsonl', line 3: base_policy_logprob is \"n/a\", not a number"),
    ("csv_not_utf8", "d.csv", b"prompt_id,policy,judge_score\na,x,0.5\ncaf\xe9,x,0.1\n",
     r"'.*d\.csv', line 3: byte 0xe9 at position 3 is not valid UTF-8 — re-save the file as UTF-8"),
    ("csv_truncated_last_line", "d.csv", "prompt_id,policy,judge_score\na,x,0.5\nb,x",
     r"'.*d\.csv', line 3: the last line has 2 of the header's 3 fields and no line end: the file "
     r"looks truncated — complete the line or remove it"),
    ("csv_unclosed_quote", "d.csv", 'prompt_id,policy,judge_score\na,x,0.5\n"b,x,0.1\n',
     r"'.*d\.csv', line 3: a quoted value is never closed, so the rest of the file reads as one "
     r"value — close the quote"),
    ("csv_too_many_fields", "d.csv", "prompt_id,policy,judge_score\na,x,0.5\nb,x,0,1\n",
     r"'.*d\.csv', line 3: the line has 4 fields but the header has 3 — quote values that contain "
     r"commas"),
    ("csv_short_middle_line", "d.csv",
     "prompt_id,policy,judge_score,oracle_label\na,x,0.5,1\nb,x,0.1\nc,x,0.2,\n",
     r"'.*d\.csv', line 3: the line has 3 of the header's 4 fields \(1 such lines\); a missing value "
     r"still needs its separator"),
    ("csv_short_middle_line_quoted", "d.csv",
     'prompt_id,policy,judge_score,oracle_label\na,"x,y",0.5,1\nb,x,0.1\nc,x,0.2,\n',
     r"'.*d\.csv', line 3: the line has 3 of the header's 4 fields"),
    ("csv_header_carriage_return", "d.csv", "\rprompt_id,policy,judge_score,oracle_label",
     r"'.*d\.csv', line 1: the header line is not valid CSV"),
    ("csv_duplicate_header", "d.csv", "prompt_id,policy,prompt_id,judge_score\na,x,b,0.5\n",
     r"'.*d\.csv', line 1: column 'prompt_id' appears more than once in the header"),
]


@pytest.mark.parametrize("reader", ["load", "bias"])
@pytest.mark.parametrize(("name", "content", "pattern"), [c[1:] for c in BAD_FILES],
                         ids=[c[0] for c in BAD_FILES])
def test_unreadable_file_names_file_and_line(name: str, content: str | bytes, pattern: str, reader: str,
                                             tmp_path: Path) -> None:
    path = _write_text(tmp_path, name, content)
    call = cje.load if reader == "load" else as_frame
    with pytest.raises(cje.CJEInputError, match=pattern):
        call(path)


def test_load_and_bias_reader_fail_with_the_same_message(tmp_path: Path) -> None:
    for _, name, content, _ in BAD_FILES:
        path = _write_text(tmp_path, name, content)
        messages = []
        for call in (cje.load, as_frame, read_table):
            with pytest.raises(cje.CJEInputError) as info:
                call(path)
            messages.append(str(info.value))
        assert len(set(messages)) == 1, messages


def _field_check_outcome(path: Path) -> str:
    """What the CSV field-count check says about a file: its error, or its blank-line count."""
    from cje import readers

    try:
        return f"blank {readers._check_csv_field_counts(path, len(readers._csv_header(path)))}"
    except cje.CJEInputError as exc:
        return str(exc)


CHUNKED_CSVS = [c[2] for c in BAD_FILES if c[1] == "d.csv" and "header" not in c[0]
                and "not_utf8" not in c[0] and "unclosed" not in c[0]] + [
    "prompt_id,policy,judge_score\na,x,0.5\n\nb,x,0.1\n\n",  # blank lines (counted, kept out)
    "prompt_id,policy,judge_score\r\na,x,0.5\r\n\r\nb,x,0.1\r\n",  # CRLF, a blank line
    "prompt_id,policy,judge_score\na,x,0.5\nb,x,0.1",  # a complete last line without a line end
    "prompt_id,policy,judge_score,oracle_label\na,x,0.5,\nb,x\nc,x,0.1,1,2\nd,x,0.2\n",  # 2 short
]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64])
def test_csv_field_count_check_reads_in_chunks_without_changing_its_verdict(
        chunk: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The check reads a file in chunks so that it also serves files larger than memory (out of
    # core); a line, a line end or a carriage return split across chunks must not change it.
    from cje import readers

    paths = [_write_text(tmp_path, f"c{i}.csv", text) for i, text in enumerate(CHUNKED_CSVS)]
    whole = [_field_check_outcome(p) for p in paths]
    assert sum(w.startswith("blank") for w in whole) == 3 and "(2 such lines)" in whole[-1]
    monkeypatch.setattr(readers, "_CSV_CHUNK", chunk)
    assert [_field_check_outcome(p) for p in paths] == whole


@pytest.mark.parametrize("engine", ["polars", "dask"])
@pytest.mark.parametrize("logged", [False, True])
def test_out_of_core_engines_refuse_a_csv_line_missing_its_last_separator(
        engine: str, logged: bool, tmp_path: Path) -> None:
    # Both engines pad a short line with nulls: without the check a labelled row that lost its
    # last separator was read as unlabelled, silently (the in-memory reader refuses it).
    rng = np.random.default_rng(0)
    head = "prompt_id,policy,judge_score,oracle_label" + (",logprob_base,logprob[t]" if logged else "")
    lines = [head]
    for i in range(60):
        s = rng.uniform()
        tail = f",{-rng.uniform(1, 3):.3f},{-rng.uniform(1, 3):.3f}" if logged else ""
        lines.append(f"{i},base,{s:.3f}," + (f"{s:.3f}" if i % 3 == 0 else "") + tail)
    lines[10] = lines[10].rsplit(",", 1)[0]
    path = _write_text(tmp_path, "d.csv", "\n".join(lines) + "\n")
    with pytest.raises(cje.CJEInputError, match=r"'.*d\.csv', line 11: the line has"):
        cje.analyze(path)
    with pytest.raises(cje.CJEInputError, match=r"'.*d\.csv', line 11: the line has"):
        cje.analyze(path, engine=engine)


def test_bad_line_in_a_fresh_draws_file_is_named(tmp_path: Path) -> None:
    d = tmp_path / "fresh"
    d.mkdir()
    (d / "a_responses.jsonl").write_text(HEAD)
    (d / "b_responses.jsonl").write_text(HEAD + '{"prompt_id": "b", "judge_score": NaN}\n')
    with pytest.raises(cje.CJEInputError, match=r"'.*b_responses\.jsonl', line 2: bare NaN"):
        cje.load(d)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_byte_order_mark_is_accepted(suffix: str, tmp_path: Path) -> None:
    rows = _rows("a", "b")
    plain = _write_csv(tmp_path, "a", "b") if suffix == ".csv" else _write_jsonl(tmp_path, "a", "b")
    bom = _write_text(tmp_path, f"bom{suffix}", b"\xef\xbb\xbf" + plain.read_bytes())
    ref, got = cje.load(plain, judge_scale=(0, 1)), cje.load(bom, judge_scale=(0, 1))
    assert got.prompt_id.tolist() == ref.prompt_id.tolist() == [r["prompt_id"] for r in rows]
    np.testing.assert_array_equal(got.judge_score, ref.judge_score)
    assert list(as_frame(bom).columns) == list(as_frame(plain).columns)
    # a fresh-draws file with a mark
    d = tmp_path / "fresh"
    d.mkdir()
    (d / "x_responses.jsonl").write_bytes(b"\xef\xbb\xbf" + HEAD.encode())
    assert cje.load(d).prompt_id.tolist() == ["a"]


def test_bias_reader_accepts_what_load_accepts(tmp_path: Path) -> None:
    logged = _write_text(tmp_path, "l.jsonl", LOGGED)
    frame = as_frame(logged)
    assert frame["prompt_id"].tolist() == ["a"] and frame["logprob[clone]"].tolist() == [-1.5]
    with pytest.raises(cje.CJEInputError,
                       match=r"unknown file type '\.txt'\. Use \.jsonl, \.csv or \.parquet"):
        as_frame(_write_text(tmp_path, "d.txt", "x"))
    with pytest.raises(cje.CJEInputError, match=r"No such file or directory"):
        as_frame(tmp_path / "nope.csv")


# ---- misuse of cje.load / EvalData.from_frame: argument, value, fix -------------------------------
def _base() -> dict[str, list[Any]]:
    rows = _rows("a", "b")
    return {k: [r[k] for r in rows] for k in ("prompt_id", "policy", "judge_score", "oracle_label")}


def _labels(*values: float) -> dict[str, list[Any]]:
    d = _base()
    d["oracle_label"] = [*values, *d["oracle_label"][len(values):]]
    return d


MISUSE: list[tuple[str, Callable[[], Any], str]] = [
    ("dict_unequal_lengths", lambda: cje.load({"prompt_id": ["a", "b", "c"], "judge_score": [0.1, 0.2]}),
     r"Every column must have one value per row; column 'prompt_id' has 3 values but 'judge_score' has 2"),
    ("columns_as_list", lambda: cje.load(_base(), columns=["judge_score"]),  # type: ignore[arg-type]
     r"columns must be a mapping from standard name to your column name, e\.g\. "
     r"columns=\{'judge_score': 'score'\}; got list \['judge_score'\]"),
    ("columns_as_list_from_frame",
     lambda: cje.EvalData.from_frame(pd.DataFrame(_base()), columns=["score"]),  # type: ignore[arg-type]
     r"columns must be a mapping .*got list \['score'\]"),
    ("columns_non_string_value", lambda: cje.load(_base(), columns={"judge_score": 3}),  # type: ignore[dict-item]
     r"columns must map column names \(strings\) to column names; got 'judge_score': 3"),
    ("covariates_as_string", lambda: cje.load(_base(), covariates="response_length"),
     r"covariates must be a list of column names, e\.g\. covariates=\['response_length'\]; got str "
     r"'response_length'"),
    ("covariates_as_string_from_frame",
     lambda: cje.EvalData.from_frame(pd.DataFrame(_base()), covariates="response_length"),
     r"covariates must be a list of column names, e\.g\. covariates=\['response_length'\]"),
    ("covariates_non_string", lambda: cje.load(_base(), covariates=[1]),  # type: ignore[list-item]
     r"covariates must be column names \(strings\); got 1"),
    ("pandas_duplicate_column",
     lambda: cje.load(pd.DataFrame(_base()).rename(columns={"oracle_label": "judge_score"})),
     r"The DataFrame has more than one column named 'judge_score'.*Rename or drop the duplicate"),
    ("pandas_series", lambda: cje.load(pd.Series([0.1, 0.2], name="judge_score")),
     r"Cannot read a pandas Series: pass a DataFrame .*series\.to_frame\(\)"),
    ("label_minus_1e308", lambda: cje.load(_labels(-1e308), judge_scale=(0, 1)),
     r"The 'oracle_label' column spans -1e\+308 to 0\.82, wider than the largest usable scale \(1e\+100\); "
     r"row 0 \(prompt_id='a'\) has -1e\+308\. .*sentinel .*leave such rows empty"),
    ("labels_span_1e308", lambda: cje.analyze(_labels(-1e308, 1e308), judge_scale=(0, 1)),
     r"The 'oracle_label' column spans -1e\+308 to 1e\+308"),
    ("single_label_minus_1e308", lambda: cje.load(_labels(-1e308, *[None] * 7), judge_scale=(0, 1)),
     r"The 'oracle_label' column spans -1e\+308 to -1e\+308"),
    ("judge_minus_1e308", lambda: cje.load({**_base(), "judge_score": [-1e308] + _base()["judge_score"][1:]}),
     r"The 'judge_score' column spans -1e\+308 to 0\.\d+, .*pass judge_scale=\(low, high\)"),
    ("declared_label_scale_too_wide", lambda: cje.load(_base(), label_scale=(-1e308, 1e308)),
     r"label_scale must have a width \(high - low\) and bounds of at most 1e\+100.*"
     r"got \(-1e\+308, 1e\+308\)"),
    ("dict_list_valued_id", lambda: cje.load({"prompt_id": [["a"], "b"], "judge_score": [0.1, 0.2]}),
     r"The 'prompt_id' column must hold one string or number per row; row 0 has a list \(\['a'\]\)"),
    ("pandas_dict_valued_policy",
     lambda: cje.load(pd.DataFrame({"prompt_id": ["a", "b"], "policy": ["x", {"n": 1}],
                                    "judge_score": [0.1, 0.2]})),
     r"The 'policy' column must hold one string or number per row; row 1 has a dict"),
]


@pytest.mark.parametrize(("call", "pattern"), [c[1:] for c in MISUSE], ids=[c[0] for c in MISUSE])
def test_misuse_is_refused_with_argument_value_and_fix(call: Callable[[], Any], pattern: str) -> None:
    with pytest.raises(cje.CJEInputError, match=pattern):
        call()


def test_normal_inputs_do_not_trip_the_new_gates() -> None:
    d = cje.load({**_base(), "response": ["a b c"] * 16}, columns={"judge_score": "judge_score"},
                 covariates=("response_length",), judge_scale=(0, 1))
    assert d.n_rows == 16 and d.covariates["response_length"].tolist() == [3.0] * 16
    assert cje.load(_base(), covariates=frozenset(), judge_scale=(0, 1)).n_rows == 16
    assert cje.load(_base(), covariates=None, judge_scale=(0, 1)).covariates == {}
    wide = cje.load(_labels(-50, 900), judge_scale=(0, 1))  # a wide but usable label scale
    assert wide.label_scale == (-50.0, 900.0)
    assert cje.load(_base(), label_scale=(0, 1e100)).label_scale == (0.0, 1e100)
    mixed_distinct = cje.load(pd.DataFrame({"prompt_id": [7, "a", "8"], "judge_score": [0.1, 0.2, 0.3]}))
    assert mixed_distinct.prompt_id.tolist() == ["7", "a", "8"]


# ---- the byte scan that lets plain-integer JSON ids skip the exact (Python) pass -------------
@pytest.mark.parametrize(("values", "fast"), [
    (['"a"', '"b"', "null"], True),            # strings and nulls: polars' text is exact
    (["7", "8", "-12"], True),                 # plain integers: polars' text is exact
    (["7", '"a"'], True),                      # a number and a non-numeric string cannot meet
    (["7", '"8"'], False),                     # a number and a numeric string might
    (["7", "7.0"], False),
    (["1e2"], False),
    (["-0"], False),
    (["1234567890123456789"], False),          # 19 digits
    (['["a"]'], False),
    (['{"n": 1}'], False),
    (["true"], False),
])
def test_plain_integer_scan(values: list[str], fast: bool, tmp_path: Path) -> None:
    from cje.readers import _plain_ints_only

    path = _write_text(tmp_path, "s.jsonl", "".join(f'{{"prompt_id": {v}, "judge_score": 1}}\n'
                                                    for v in values))
    assert _plain_ints_only(path, "prompt_id") is fast


@pytest.mark.parametrize(("written", "read"), [
    (['"7"', '"8"', '"007"'], ["7", "8", "007"]),
    (["7", '"8"'], ["7", "8"]),
    (["1234567890123456789012", "-0", "0"], ["1234567890123456789012", "-0", "0"]),
])
def test_json_ids_are_read_as_written(written: list[str], read: list[str], tmp_path: Path) -> None:
    path = _write_text(tmp_path, "w.jsonl", "".join(f'{{"prompt_id": {v}, "judge_score": 0.{i + 1}}}\n'
                                                    for i, v in enumerate(written)))
    assert cje.load(path).prompt_id.tolist() == read
    assert as_frame(path)["prompt_id"].tolist() == read


@pytest.mark.parametrize("body", [
    "prompt_id,policy,judge_score,oracle_label\na,x,0.5,1\n\nb,x,0.1,\nc,y,0.2,0\n\n\n",
    'prompt_id,policy,judge_score,oracle_label\r\na,"x",0.5,1\r\n\r\nb,x,0.1,\r\nc,y,0.2,0\r\n',
])
def test_blank_csv_lines_are_not_rows(tmp_path, body):
    """Blank lines (polars reads each as a row of nulls) are skipped, not errors and not rows;
    an unlabelled row written with its trailing separator stays unlabelled."""
    path = tmp_path / "d.csv"
    path.write_bytes(body.encode())
    ev = cje.load(path, judge_scale=(0, 1), label_scale=(0, 1))
    assert ev.n_rows == 3 and ev.policies == ("x", "y") and ev.n_labels == 2


@pytest.mark.parametrize("url", ["s3://bucket/evals/*.parquet", "gs://b/x.jsonl",
                                 "https://example.com/a.csv"])
def test_url_is_refused_with_the_way_to_read_it(url: str) -> None:
    """A URL was read as a local path: 'No such file or directory: s3:/…' (one slash: Path
    folds '//') or 'No file matches'. Now every entry says it is a URL and how to stream it."""
    import cje
    from cje.cli import main

    with pytest.raises(cje.CJEInputError, match=r"is a URL; cje reads local paths.*scan_parquet"):
        cje.load(url)
    for engine in ("memory", "polars", "auto"):
        with pytest.raises(cje.CJEInputError, match=r"is a URL"):
            cje.analyze(url, engine=engine)
    assert main(["analyze", url]) == 2
