"""The Arena sample shipped in the package (cje.datasets), its export, ``cje datasets`` and
``cje demo --save``.

Everything runs on the copy in the package; ``test_packaged_copy_is_the_recorded_build_of_the_original``
checks that copy against the digests in its MANIFEST.json and, when the original files are beside the
project (``../shared/data/arena_sample``), against them as well — it never skips.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje import datasets
from cje.cli import main
from cje.datasets import _build_arena

ROOT = Path(__file__).resolve().parents[1]
#: The original sample beside the project (as in conftest.py); only the comparison test reads it.
ORIGINAL_ARENA = ROOT.parent / "shared" / "data" / "arena_sample"
PKG_DATA = ROOT / "cje" / "datasets" / "arena"
POLICIES = ("base", "clone", "parallel_universe_prompt", "unhelpful")
TARGETS = POLICIES[1:]


def _quiet_analyze(*args, **kwargs) -> cje.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(*args, **kwargs)


def _numbers(rep: cje.Report) -> pd.DataFrame:
    """What must agree exactly: the per-policy table (estimates, SEs, CIs, status, reasons...)."""
    return rep.to_pandas()


# ---- the packaged frames ---------------------------------------------------------------------------
def test_arena_frames_hold_what_the_readme_says() -> None:
    ds = datasets.arena()
    fresh, logged = ds.fresh_draws, ds.logged
    assert ds.policies == POLICIES and ds.targets == TARGETS
    assert fresh.groupby("policy", sort=False).size().to_dict() == dict.fromkeys(POLICIES, 1000)
    labelled = fresh[fresh.oracle_label.notna()]
    assert set(labelled.policy) == {"base"} and len(labelled) == 480
    assert logged.shape == (1000, 9) and int(logged.oracle_label.notna().sum()) == 480
    assert set(logged.policy) == {"base"}
    assert list(logged.columns[-4:]) == ["logprob_base"] + [f"logprob[{t}]" for t in TARGETS]
    for t, probe in ds.probes.items():
        assert len(probe) == 50 and probe.oracle_label.notna().all() and set(probe.policy) == {t}
    # ids are the original strings; scores and labels on 0-1; no text of any prompt or response
    for frame in (fresh, logged, *ds.probes.values()):
        assert all(isinstance(x, str) and x.startswith("arena_") for x in frame.prompt_id)
        assert frame.judge_score.between(0, 1).all()
        assert frame.oracle_label.dropna().between(0, 1).all()
        assert not {"prompt", "response"} & set(frame.columns)
        assert (frame.response_length >= 0).all()
    # the base fresh draws are the logged responses (same prompts, scores and labels, in order)
    base = fresh[fresh.policy == "base"].reset_index(drop=True)
    pd.testing.assert_series_equal(base.prompt_id, logged.prompt_id)
    np.testing.assert_array_equal(base.judge_score, logged.judge_score)
    np.testing.assert_array_equal(base.oracle_label, logged.oracle_label)


def test_package_data_is_small_licensed_and_declared() -> None:
    files = sorted(p for p in PKG_DATA.iterdir() if p.is_file())
    assert {p.name for p in files} == {"fresh_draws.parquet", "logged_data.parquet",
                                       "probe_slice.parquet", "MANIFEST.json", "LICENSE", "README.md"}
    assert sum(p.stat().st_size for p in files) < 200_000  # well under 1 MB
    licence = (PKG_DATA / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "CIMO Labs" in licence
    assert "CIMO Labs" in (datasets.__doc__ or "") and "MIT" in (datasets.__doc__ or "")
    # every file of the folder matches a package-data pattern of pyproject.toml, so that a
    # regular (non-editable) `pip install .` installs it too
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    m = re.search(r'^"cje\.datasets" = (\[.*?\])$', text, re.M)
    assert m, "pyproject.toml declares no package data for cje.datasets"
    patterns = ast.literal_eval(m.group(1))
    missing = [p.name for p in files
               if not any(fnmatch.fnmatch(f"arena/{p.name}", pat) for pat in patterns)]
    assert not missing, f"not installed by pip install .: {missing}"


# ---- export: files in the cje-eval formats ---------------------------------------------------------
def test_export_reads_back_as_the_frames(tmp_path: Path) -> None:
    ds = datasets.arena()
    files = datasets.export(tmp_path / "arena")
    assert files.root == tmp_path / "arena"
    d = cje.load(files.fresh_draws, covariates=["response_length"])
    assert d.policies == POLICIES and d.n_rows == 4000 and d.n_labels == 480
    assert d.prompt_id.tolist() == ds.fresh_draws.prompt_id.tolist()
    np.testing.assert_array_equal(d.judge_score, ds.fresh_draws.judge_score)
    np.testing.assert_array_equal(d.oracle_label, ds.fresh_draws.oracle_label)
    np.testing.assert_array_equal(d.covariates["response_length"], ds.fresh_draws.response_length)
    lg = cje.load(files.logged)
    assert lg.policies == ("base",) and lg.prompt_id.tolist() == ds.logged.prompt_id.tolist()
    np.testing.assert_array_equal(lg.logprobs["base"], ds.logged.logprob_base)
    for t in TARGETS:
        np.testing.assert_array_equal(lg.logprobs[t], ds.logged[f"logprob[{t}]"])
        pr = cje.load(files.probes[t], policy=t)
        np.testing.assert_array_equal(pr.oracle_label, ds.probes[t].oracle_label)
    # the logged file keeps cje-eval's layout
    first = json.loads(files.logged.read_text(encoding="utf-8").splitlines()[0])
    assert set(first) >= {"base_policy_logprob", "target_policy_logprobs", "metadata", "judge_score"}
    assert first["metadata"]["prompt_id"] == ds.logged.prompt_id[0]


def test_in_memory_frames_and_exported_files_give_the_same_report(tmp_path: Path) -> None:
    ds = datasets.arena()
    files = datasets.export(tmp_path)
    pd.testing.assert_frame_equal(
        _numbers(_quiet_analyze(ds.fresh_draws, probes=ds.probes, transport_margin=0.05)),
        _numbers(_quiet_analyze(files.fresh_draws, probes=files.probes, transport_margin=0.05)))
    pd.testing.assert_frame_equal(
        _numbers(_quiet_analyze(ds.logged, fresh_draws=ds.fresh_draws, estimator="stacked-dr")),
        _numbers(_quiet_analyze(files.logged, fresh_draws=files.fresh_draws, estimator="stacked-dr")))


def test_export_again_is_harmless_and_other_content_is_refused(tmp_path: Path) -> None:
    files = datasets.export(tmp_path)
    before = files.logged.stat().st_mtime_ns
    assert datasets.export(tmp_path) == files  # same content: nothing rewritten
    assert files.logged.stat().st_mtime_ns == before
    edited = files.probes["clone"]
    edited.write_text(edited.read_text(encoding="utf-8").replace('"judge_score": 0.', '"judge_score": 1.'))
    with pytest.raises(cje.CJEInputError, match=r"clone_probe\.jsonl' already exists with other content"):
        datasets.export(tmp_path)
    assert "1." in edited.read_text(encoding="utf-8")  # refused: left as it was
    datasets.export(tmp_path, overwrite=True)
    assert edited.read_text(encoding="utf-8") == datasets.export(tmp_path / "fresh").probes[
        "clone"].read_text(encoding="utf-8")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"name": "chatbot"},
     r"name='chatbot' is not a data set shipped with cje; the data sets are \['arena'\]"),
    ({"directory": "FILE"}, r"directory='.*FILE' exists and is not a directory"),
])
def test_export_refuses_bad_arguments(tmp_path: Path, kwargs: dict, match: str) -> None:
    (tmp_path / "FILE").write_text("x")
    if kwargs.get("directory") == "FILE":
        kwargs = {"directory": tmp_path / "FILE"}
    else:
        kwargs = {"directory": tmp_path / "out", **kwargs}
    with pytest.raises(cje.CJEInputError, match=match):
        datasets.export(**kwargs)
    assert not (tmp_path / "out").exists()


# ---- the packaged copy gives the numbers of the original ----------------------------------------------
def test_packaged_copy_is_the_recorded_build_of_the_original(arena: Path) -> None:
    """The shipped tables are, value for value, those the rebuild script made from the original
    files whose SHA-256 digests MANIFEST.json records (this runs on any checkout). Beside the
    original (``../shared``) it also checks that the original still has those digests, that the
    rebuild reproduces the tables, and that cje.analyze on the shipped copy gives exactly the
    Report numbers of the original files (direct with probes, with the response_length
    covariate, off-policy calibrated-ips and stacked-dr)."""
    manifest = json.loads((PKG_DATA / "MANIFEST.json").read_text())
    for name, digest in manifest["tables_sha256"].items():
        assert _build_arena.table_digest(pd.read_parquet(PKG_DATA / f"{name}.parquet")) == digest, name
    orig = ORIGINAL_ARENA
    if not (orig / "fresh_draws").is_dir():
        return  # the digest chain above is the whole check without the original
    assert _build_arena.file_digests(orig) == manifest["source_files_sha256"]
    for name, table in _build_arena.tables(orig).items():
        pd.testing.assert_frame_equal(table.to_pandas(), pd.read_parquet(PKG_DATA / f"{name}.parquet"),
                                      check_exact=True, obj=name)
    runs = [
        ((orig / "fresh_draws",), (arena / "fresh_draws",),
         {"probes": "probes", "transport_margin": 0.05}),
        ((orig / "fresh_draws",), (arena / "fresh_draws",), {"covariates": ["response_length"]}),
        ((orig / "logged_data.jsonl",), (arena / "logged_data.jsonl",),
         {"fresh_draws": "fresh_draws", "estimator": "calibrated-ips"}),
        ((orig / "logged_data.jsonl",), (arena / "logged_data.jsonl",),
         {"fresh_draws": "fresh_draws", "estimator": "stacked-dr"}),
    ]
    for a_args, b_args, kw in runs:
        def resolved(root: Path, kw: dict = kw) -> dict:
            out = dict(kw)
            if out.get("probes") == "probes":
                out["probes"] = {t: root / "probe_slice" / f"{t}_probe.jsonl" for t in TARGETS}
            if out.get("fresh_draws") == "fresh_draws":
                out["fresh_draws"] = root / "fresh_draws"
            return out

        a = _quiet_analyze(*a_args, **resolved(orig))
        b = _quiet_analyze(*b_args, **resolved(arena))
        pd.testing.assert_frame_equal(_numbers(a), _numbers(b), check_exact=True, obj=str(kw))
        for e in a.estimates:
            assert e.estimate == b[e.policy].estimate and e.se == b[e.policy].se, (kw, e.policy)


# ---- the rebuild script, on a small source made here ------------------------------------------------
def test_rebuild_script_reproduces_the_tables(tmp_path: Path) -> None:
    """Source files with texts (made from the packaged copy, each response with the recorded
    number of words) are rebuilt into exactly the packaged tables."""
    files = datasets.export(tmp_path / "src")
    for path in [*files.fresh_draws.glob("*.jsonl"), files.logged, *files.probes.values()]:
        recs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for r in recs:
            r["prompt"] = "a prompt"
            r["response"] = " ".join(["word"] * r.pop("response_length"))
        path.write_text("".join(json.dumps(r) + "\n" for r in recs), encoding="utf-8")
    written = _build_arena.build(tmp_path / "src", tmp_path / "out")
    assert [p.name for p in written] == ["fresh_draws.parquet", "logged_data.parquet",
                                         "probe_slice.parquet", "MANIFEST.json"]
    for p in written[:3]:
        pd.testing.assert_frame_equal(pd.read_parquet(p), pd.read_parquet(PKG_DATA / p.name))
    # the same tables, so the same table digests as the shipped manifest's
    made = json.loads(written[3].read_text())
    assert made["tables_sha256"] == json.loads((PKG_DATA / "MANIFEST.json").read_text())["tables_sha256"]
    # a response that is not text is refused, naming it
    bad = files.probes["clone"]
    bad.write_text(bad.read_text(encoding="utf-8").replace('"response": "word', '"response": 3, "x": "'))
    with pytest.raises(ValueError, match="response is 3, not text"):
        _build_arena.build(tmp_path / "src", tmp_path / "out2")


# ---- the command line ----------------------------------------------------------------------------------
def test_cli_datasets_export_and_analyze(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["datasets", "list"]) == 0
    assert "arena" in capsys.readouterr().out
    assert main(["datasets", "export", "arena"]) == 0  # default DIR: ./arena
    assert "wrote arena/fresh_draws/" in capsys.readouterr().err
    assert main(["analyze", "arena/fresh_draws", "--probe",
                 "unhelpful=arena/probe_slice/unhelpful_probe.jsonl", "--transport-margin", "0.05"]) == 0
    out = capsys.readouterr().out  # the probe corrects unhelpful's level; its audit still FAILs
    assert re.search(r"^unhelpful .*OK", out, re.M) and "margin ±0.05: FAIL" in out
    (tmp_path / "arena" / "logged_data.jsonl").write_text("{}\n")
    assert main(["datasets", "export", "arena", "arena"]) == 2
    err = capsys.readouterr().err
    assert "logged_data.jsonl' already exists with other content" in err and "--force" in err
    assert main(["datasets", "export", "arena", "arena", "--force"]) == 0
    assert (tmp_path / "arena" / "logged_data.jsonl").stat().st_size > 100_000


@pytest.mark.parametrize(("argv", "match"), [
    (["datasets", "export"], r"cje datasets export needs a NAME, one of \['arena'\]"),
    (["datasets", "export", "nope", "d"], r"name='nope' is not a data set shipped with cje"),
])
def test_cli_datasets_errors_exit_2(argv: list[str], match: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cje: error: ") and err.count("\n") == 1 and re.search(match, err)
    assert not any(tmp_path.iterdir())


def test_demo_save_writes_the_data_it_analyses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--prompts", "300", "--seed", "3", "--save", str(out)]) == 0
    shown = capsys.readouterr()
    assert f"cje analyze {out / 'results.csv'} --judge-scale 0 10 --label-scale 1 5" in shown.err
    csv, jsonl = pd.read_csv(out / "results.csv"), pd.read_json(out / "results.jsonl", lines=True)
    assert list(csv.columns) == ["prompt_id", "policy", "draw_idx", "judge_score", "oracle_label",
                                 "response_length"]
    assert len(csv) == len(jsonl) == 300 * 5
    assert csv[csv.policy == "concise"].oracle_label.isna().all()  # withheld, as in the demo
    assert csv.oracle_label.notna().sum() > 0
    # the saved files give the demo's numbers (the summary rows printed above)
    kw = {"judge_scale": (0, 10), "label_scale": (1, 5), "covariates": ["response_length"]}
    from_csv = _quiet_analyze(out / "results.csv", **kw)
    from_jsonl = _quiet_analyze(out / "results.jsonl", **kw)
    pd.testing.assert_frame_equal(_numbers(from_csv), _numbers(from_jsonl))
    for e in from_csv.estimates:
        assert f"{e.estimate:.3f}" in shown.out, e.policy
    # again with the same seed: same files, accepted; another seed: refused, files kept
    assert main(["demo", "--prompts", "300", "--seed", "3", "--save", str(out)]) == 0
    before = (out / "results.csv").read_text()
    capsys.readouterr()
    assert main(["demo", "--prompts", "300", "--seed", "4", "--save", str(out)]) == 2
    assert "results.csv' already exists with other content" in capsys.readouterr().err
    assert (out / "results.csv").read_text() == before


def test_demo_save_onto_a_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "taken"
    target.write_text("mine")
    assert main(["demo", "--prompts", "100", "--save", str(target)]) == 2
    assert re.search(r"--save '.*taken' is a file; give a directory", capsys.readouterr().err)
    assert target.read_text() == "mine"
