"""Provenance in every machine-readable output (issue #20): the package version, the inputs with a
content hash, the options, a UTC timestamp and the Python/numpy versions, in the Report (JSON,
CSV, markdown, HTML), BiasAudit.to_json and cje convert's Parquet metadata."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import platform
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.export import _report_html, content_hash, convert, provenance, report_markdown

KEYS = {"cje_version", "created_utc", "python", "numpy", "inputs"}


@pytest.fixture(scope="module")
def sim() -> cje.synthetic.SyntheticEval:
    return cje.synthetic.make_direct_eval(200, rng=3)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, sim: cje.synthetic.SyntheticEval) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("prov")
    data = d / "scores.csv"
    sim.data.to_csv(data, index=False)
    probe = d / "verbose_probe.csv"
    labelled = sim.data[(sim.data.policy == "verbose") & sim.data.oracle_label.notna()]
    # on prompts of their own: the data's labelled rows given again as a probe are refused
    labelled.assign(prompt_id="probe-" + labelled.prompt_id.astype(str)).to_csv(probe, index=False)
    return {"data": data, "probe": probe}


@pytest.fixture(scope="module")
def rep(files: dict[str, Path], sim: cje.synthetic.SyntheticEval) -> cje.Report:
    return cje.analyze(files["data"], judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                       probes={"verbose": files["probe"]}, progress=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the fields --------------------------------------------------------------------------------
def test_report_provenance_names_version_inputs_time_and_libraries(rep: cje.Report,
                                                                   files: dict[str, Path]) -> None:
    p = rep.provenance
    assert KEYS <= set(p)
    assert p["cje_version"] == cje.__version__
    assert p["python"] == platform.python_version() and p["numpy"] == np.__version__
    assert p["pandas"] == pd.__version__  # loaded by the run
    assert p["inputs"] == {
        "data": {"path": str(files["data"]), "sha256": _sha(files["data"])},
        "probes['verbose']": {"path": str(files["probe"]), "sha256": _sha(files["probe"])},
    }
    made = datetime.fromisoformat(p["created_utc"])
    assert made.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - made) < timedelta(minutes=10)
    assert rep.settings["alpha"] == 0.05  # the options stay where they were


def test_version_is_the_installed_metadata() -> None:
    from importlib.metadata import version

    assert cje.__version__ == version("cje")


# ---- JSON ------------------------------------------------------------------------------------
def test_json_round_trips_the_provenance(rep: cje.Report) -> None:
    text = rep.to_json()
    assert json.loads(text)["provenance"] == rep.provenance
    back = cje.Report.from_json(text)
    assert back.provenance == rep.provenance
    assert back == rep


def test_equality_ignores_provenance_but_not_the_numbers(rep: cje.Report) -> None:
    other = dataclasses.replace(rep, provenance={**rep.provenance, "created_utc": "2000-01-01"})
    assert other == rep  # a rerun at another time is the same result
    moved = dataclasses.replace(rep, estimates=(dataclasses.replace(rep.estimates[0],
                                                                   estimate=rep.estimates[0].estimate
                                                                   + 1e-9),) + rep.estimates[1:])
    assert moved != rep


def test_json_written_before_provenance_still_reads(rep: cje.Report) -> None:
    d = json.loads(rep.to_json())
    del d["provenance"]
    back = cje.Report.from_dict(d)
    assert back.provenance == {} and back == rep


def test_a_rerun_on_the_same_data_is_equal_and_has_the_same_input_hash(
        rep: cje.Report, files: dict[str, Path], sim: cje.synthetic.SyntheticEval) -> None:
    again = cje.analyze(files["data"], judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                        probes={"verbose": files["probe"]}, progress=False)
    assert again == rep
    assert again.provenance["inputs"] == rep.provenance["inputs"]


# ---- content hashes ------------------------------------------------------------------------------
def _tree(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir()
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


BASE = {"a.jsonl": b"1\n", "sub/b.jsonl": b"2\n"}


@pytest.mark.parametrize(("name", "files", "same"), [
    ("identical copy", dict(BASE), True),
    ("same files written in another order", dict(reversed(list(BASE.items()))), True),
    ("one byte changed", {**BASE, "a.jsonl": b"3\n"}, False),
    ("a file renamed", {"c.jsonl": b"1\n", "sub/b.jsonl": b"2\n"}, False),
    ("a file added", {**BASE, "z.jsonl": b""}, False),
    ("contents swapped between files", {"a.jsonl": b"2\n", "sub/b.jsonl": b"1\n"}, False),
])
def test_directory_hash(tmp_path: Path, name: str, files: dict[str, bytes], same: bool) -> None:
    ref = content_hash(_tree(tmp_path / "ref", BASE))
    got = content_hash(_tree(tmp_path / "other", files))
    assert ref["n_files"] == 2 and got["n_files"] == len(files)
    assert (got["sha256"] == ref["sha256"]) is same, name


def test_file_hash_and_missing_path(tmp_path: Path) -> None:
    f = tmp_path / "x.csv"
    f.write_bytes(b"a,b\n1,2\n")
    assert content_hash(f) == {"path": str(f), "sha256": hashlib.sha256(b"a,b\n1,2\n").hexdigest()}
    assert content_hash(str(tmp_path / "nope.csv")) == {"path": str(tmp_path / "nope.csv"),
                                                         "sha256": None}


def test_in_memory_frame_hash_follows_the_data(sim: cje.synthetic.SyntheticEval) -> None:
    df = sim.data
    h = content_hash(df)
    assert h["in_memory"] == f"pandas DataFrame {df.shape[0]}x{df.shape[1]}"
    assert content_hash(df.copy())["sha256"] == h["sha256"]
    changed = df.copy()
    changed.loc[0, "judge_score"] += 0.5
    assert content_hash(changed)["sha256"] != h["sha256"]
    assert content_hash(df.rename(columns={"judge_score": "s"}))["sha256"] != h["sha256"]
    assert content_hash(pd.DataFrame({"x": [[1], [2]]}))["sha256"] is None  # unhashable: says so
    assert content_hash({"x": [1.0]}) == {"in_memory": "dict"}


def test_in_memory_frame_hash_is_by_content_not_layout() -> None:
    # string columns are hashed from their Arrow buffers: a slice and a copy of the same rows
    # hash the same; moving a character across a boundary, a null for an empty string, a
    # different index or column order all change the hash
    df = pd.DataFrame({"prompt_id": ["p1", "p22", "p3", "p4"], "policy": ["a", "b", "a", "b"],
                       "judge_score": [0.1, 0.2, 0.3, 0.4]})

    def digest(frame: pd.DataFrame) -> str:
        return content_hash(frame)["sha256"]

    assert isinstance(df["prompt_id"].array, pd.arrays.ArrowStringArray)  # the fast path's input
    assert digest(df.iloc[1:].reset_index(drop=True)) == digest(df.iloc[1:].copy().reset_index(drop=True))
    assert digest(df.iloc[1:]) != digest(df.iloc[1:].reset_index(drop=True))  # the index counts
    moved = df.assign(prompt_id=["p12", "p2", "p3", "p4"])  # same characters, other boundary
    assert digest(moved) != digest(df)
    assert digest(df.assign(policy=["a", "", "a", "b"])) != digest(df.assign(policy=["a", None, "a", "b"]))
    assert digest(df[["policy", "prompt_id", "judge_score"]]) != digest(df)
    assert digest(df.astype({"judge_score": "float32"})) != digest(df)  # the dtype enters too
    assert digest(df.astype({"policy": "category"})) is not None  # other dtypes: pandas' hash


def test_analyze_of_a_frame_records_it_as_in_memory(sim: cje.synthetic.SyntheticEval) -> None:
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                      progress=False)
    data = rep.provenance["inputs"]["data"]
    assert data["in_memory"].startswith("pandas DataFrame") and len(data["sha256"]) == 64


# ---- CSV, markdown, HTML ----------------------------------------------------------------------
@pytest.mark.parametrize("table", ["estimates", "contrasts"])
def test_csv_carries_provenance_on_every_row(rep: cje.Report, files: dict[str, Path],
                                             table: str) -> None:
    t = pd.read_csv(io.StringIO(rep.to_csv(table=table)))
    assert (t["cje_version"] == cje.__version__).all()
    assert (t["created_utc"] == rep.provenance["created_utc"]).all()
    assert t["inputs"].str.contains(f"data={files['data']} sha256:{_sha(files['data'])}",
                                    regex=False).all()


@pytest.mark.parametrize("fmt", ["markdown", "html"])
def test_reports_have_a_provenance_section(rep: cje.Report, files: dict[str, Path], fmt: str) -> None:
    text = report_markdown(rep) if fmt == "markdown" else _report_html(rep, [])
    head = "## Provenance" if fmt == "markdown" else "<h2>Provenance</h2>"
    assert head in text
    tail = text[text.index(head):]
    for needle in (f"cje {cje.__version__}", _sha(files["data"]), _sha(files["probe"]),
                   rep.provenance["created_utc"], f"numpy {np.__version__}", "alpha=0.05"):
        assert needle in tail, needle


def test_report_without_provenance_says_so(rep: cje.Report) -> None:
    bare = dataclasses.replace(rep, provenance={})
    assert "Not recorded" in report_markdown(bare)
    assert "Not recorded" not in report_markdown(rep)


# ---- BiasAudit, convert --------------------------------------------------------------------------
def test_bias_audit_json_has_provenance() -> None:
    from cje.synthetic.pairwise import make_pairwise_eval

    sim = make_pairwise_eval(120, strengths=[3, 1, -1, -3], position_logodds=0.5, prompt_noise=0.5,
                             rng=0)
    a = cje.bias.audit(pairs=sim.pairs, n_bootstrap=50, rng=0)
    p = json.loads(a.to_json())["provenance"]
    assert KEYS <= set(p) and p["cje_version"] == cje.__version__
    stamped = dataclasses.replace(a, provenance=provenance({"pairs": sim.pairs}))
    assert stamped == a  # the time is not part of the result
    assert json.loads(stamped.to_json())["provenance"]["inputs"]["pairs"]["in_memory"].startswith(
        "pandas DataFrame")


def test_convert_writes_provenance_into_parquet_metadata(files: dict[str, Path],
                                                         tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = convert(files["data"], tmp_path / "flat.parquet", judge_scale=(0, 10),
                  label_scale=(1, 5))
    p = json.loads(pq.read_schema(out).metadata[b"cje_provenance"])
    assert p["inputs"]["source"] == {"path": str(files["data"]), "sha256": _sha(files["data"])}
    assert p["cje_version"] == cje.__version__
    assert len(pd.read_parquet(out)) == len(pd.read_csv(files["data"]))  # data unchanged
