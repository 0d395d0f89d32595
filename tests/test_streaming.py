"""Out-of-core direct analysis (issue #15): ``cje.analyze(engine="polars" | "dask")`` over
partitioned files gives the in-memory engine's numbers, names a bad row by file and row, and
refuses what it does not support yet.

The oracle is the in-memory engine itself (``engine="memory"`` on the same rows, concatenated in
file order), whose numbers are pinned elsewhere. "Equal" is 1e-9 relative: the engines take the
same sums in another order (per prompt, then over prompts, instead of row by row), which moves
the last few bits; a real difference — a wrong centring, a dropped row, a mis-assigned fold —
moves numbers by far more than 1e-9 (the test with one label moved below shows it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cje
from cje.errors import CJEInputError

pl = pytest.importorskip("polars")

POLICIES = ("base", "clone", "premium", "unlabelled")
KW = dict(judge_scale=(0, 10), label_scale=(1, 5))


def make_rows(n_prompts: int, seed: int, label_share: float = 0.1) -> Any:
    """A direct-mode data set: 4 policies, coarse judge scores (0–10 in halves), labels on
    ``label_share`` of the rows (none for 'unlabelled'), some prompts with two responses of a
    policy and some policies missing on some prompts, so clusters are uneven."""
    rng = np.random.default_rng(seed)
    frames = []
    for j, pol in enumerate(POLICIES):
        keep = rng.random(n_prompts) < (0.97 if j else 1.0)  # policies miss a few prompts
        pids = np.flatnonzero(keep)
        extra = pids[rng.random(pids.size) < 0.05]  # a second response on 5% of them
        pids = np.sort(np.concatenate([pids, extra]))
        quality = rng.normal(0.1 * j, 1.0, pids.size)
        score = np.clip(np.round(2 * (5 + 2 * quality + rng.normal(0, 1, pids.size))) / 2, 0, 10)
        label = np.clip(np.round(3 + quality + rng.normal(0, 0.7, pids.size)), 1, 5)
        labelled = rng.random(pids.size) < (0.0 if pol == "unlabelled" else label_share)
        frames.append(pl.DataFrame({
            "prompt_id": [f"q{p:07d}" for p in pids],
            "policy": [pol] * pids.size,
            "judge_score": score,
            "oracle_label": np.where(labelled, label, np.nan),
        }))
    df = pl.concat(frames)
    return df.with_columns(pl.col("oracle_label").fill_nan(None))


def write_parts(df: Any, where: Path, parts: int, shuffle_seed: int | None = 0) -> list[Path]:
    """The rows (shuffled, so a prompt's rows lie in several files) as ``parts`` Parquet files."""
    where.mkdir(parents=True, exist_ok=True)
    if shuffle_seed is not None:
        df = df.sample(fraction=1.0, shuffle=True, seed=shuffle_seed)
    n = df.height
    paths = []
    for i in range(parts):
        p = where / f"part-{i:03d}.parquet"
        df.slice(i * n // parts, (i + 1) * n // parts - i * n // parts).write_parquet(p)
        paths.append(p)
    return paths


def in_memory(paths: list[Path], **kw: Any) -> cje.Report:
    """The in-memory engine on the same rows, in file order."""
    df = pl.concat([pl.read_parquet(p) for p in paths])
    return cje.analyze(df.to_pandas(), engine="memory", **kw)


def _close(a: Any, b: Any, path: str, out: list[str], rel: float) -> None:
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            _close(a[k], b[k], f"{path}.{k}", out, rel)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _close(x, y, f"{path}[{i}]", out, rel)
    elif isinstance(a, float) and isinstance(b, (float, int)):
        if path.endswith(("p_value", "p_holm")) and 0 < a < 1e-10 and 0 < b < 1e-10:
            # far in the tail a p-value's relative error is the t statistic's times ~t²
            # (t = 26: 676×; the jackknife's differences of replicates carry ~1e-12): compare
            # -log p, which carries the t statistic's relative error
            a, b = -math.log(a), -math.log(b)
        if math.isnan(a):
            if not math.isnan(b):
                out.append(f"{path}: {a} vs {b}")
        elif abs(a - b) > rel * max(abs(a), abs(b)) and abs(a - b) > 1e-300:
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def differences(mem: cje.Report, other: cje.Report, rel: float = 1e-9) -> list[str]:
    """Every field of the two reports (estimates with statuses, reasons and diagnostics;
    contrasts; ranking; calibration with its curve and reliability; notices, warnings) that
    differs by more than ``rel`` (relative); settings and provenance are left out.

    The jackknife's variance ``var_cal`` (and ``calibration_share``) is compared to ``rel`` of
    the variance it is a component of (``se²``): it is a sum of squared differences of K
    replicates that agree to ~1e-4, so the in-memory engine's rounding of its replicates
    (sequential sums over 10^5 rows, ~5e-13 absolute, against an exact ``math.fsum``:
    :func:`test_jackknife_against_exact_sums`) moves it by ~5e-8 of itself, while the SE moves
    by ~1e-12. The out-of-core engines' replicates are the exact ones (sums over the distinct
    scores); that test holds them to 1e-9 relative of an exact oracle."""
    a, b = json.loads(mem.to_json()), json.loads(other.to_json())
    for d in (a, b):
        d.pop("provenance", None)
        d.pop("settings", None)
    for key in ("estimates", "pairs"):
        for x, y in zip(a.get(key, []), b.get(key, []), strict=False):
            total = (x.get("se") or 0.0) ** 2
            if abs(x["var_cal"] - y["var_cal"]) <= rel * total:
                y["var_cal"] = x["var_cal"]
            if key == "estimates" and abs(x["calibration_share"] - y["calibration_share"]) <= rel:
                y["calibration_share"] = x["calibration_share"]
    out: list[str] = []
    _close(a, b, "report", out, rel)
    return out


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """10^5 rows in 8 Parquet files."""
    df = make_rows(24_000, seed=1)
    assert 95_000 < df.height < 110_000
    return write_parts(df, tmp_path_factory.mktemp("parts"), 8)


@pytest.fixture(scope="module")
def memory_report(parts: list[Path]) -> cje.Report:
    return in_memory(parts, **KW)


def test_polars_equals_memory(parts: list[Path], memory_report: cje.Report) -> None:
    rep = cje.analyze(str(parts[0].parent / "*.parquet"), engine="polars", **KW)
    assert differences(memory_report, rep) == []
    # the comparison is not empty: every field a user reads is there, with OUA and contrasts
    assert [e.policy for e in rep.estimates] == list(POLICIES)
    assert all(e.var_cal > 0 for e in rep.estimates) and len(rep.pairs) == 6
    assert {e.status for e in rep.estimates} >= {"OK"}
    unl = rep["unlabelled"]  # no labels of its own: its status says so, as in memory
    assert unl.n_labels == 0 and unl.status == memory_report["unlabelled"].status
    assert rep.settings["engine"] == "polars"


def test_dask_equals_memory(parts: list[Path], memory_report: cje.Report,
                            dask_client: Any) -> None:
    rep = cje.analyze(str(parts[0].parent), engine="dask", client=dask_client, **KW)
    assert differences(memory_report, rep) == []
    assert rep.settings["engine"] == "dask"


def test_frames_equal_memory(parts: list[Path], memory_report: cje.Report,
                             dask_client: Any) -> None:
    """A LazyFrame and a Dask DataFrame given directly; ``auto`` picks their engines."""
    import dask.dataframe as dd

    lf = pl.scan_parquet(parts)
    rep = cje.analyze(lf, **KW)
    assert rep.settings["engine"] == "polars"
    assert differences(memory_report, rep) == []
    ddf = dd.read_parquet([str(p) for p in parts])
    assert ddf.npartitions >= 8
    rep = cje.analyze(ddf, client=dask_client, **KW)
    assert rep.settings["engine"] == "dask"
    assert differences(memory_report, rep) == []


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_prompts_split_over_group_bys(parts: list[Path], memory_report: cje.Report,
                                      monkeypatch: pytest.MonkeyPatch, engine: str,
                                      dask_client: Any) -> None:
    """Above ``ROWS_PER_GROUP_BY`` rows the per-prompt pass splits the prompts by a hash of
    their id over several group-bys (polars: one pass each; Dask: ``split_out``): same numbers."""
    from cje.pipeline import streaming

    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 30_000)  # 4 group-bys here
    rep = cje.analyze(str(parts[0].parent), engine=engine,
                      client=dask_client if engine == "dask" else None, **KW)
    assert differences(memory_report, rep) == []


@pytest.mark.parametrize("method", ["p2p", "tasks", "disk"])
def test_dask_shuffle_methods(parts: list[Path], memory_report: cje.Report,
                              monkeypatch: pytest.MonkeyPatch, method: str,
                              dask_client: Any) -> None:
    """Dask's per-prompt group-by gives the same numbers with each of Dask's shuffles (set in
    Dask's configuration, which the pass respects) and 16 output partitions (4 group-bys of
    ``ROWS_PER_GROUP_BY`` rows × ``DASK_SPLIT_PER_GROUP_BY``) of prompts spread over 8 files."""
    import dask

    from cje.pipeline import streaming

    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 30_000)
    with dask.config.set({"dataframe.shuffle.method": method}):
        assert streaming.shuffle_method(dask_client) == {}
        rep = cje.analyze(str(parts[0].parent), engine="dask", client=dask_client, **KW)
    assert differences(memory_report, rep) == []


def test_dask_shuffle_choice(parts: list[Path], memory_report: cje.Report,
                             monkeypatch: pytest.MonkeyPatch, dask_client: Any) -> None:
    """Without a configured shuffle: a disk shuffle on one machine (no client: Dask's threads;
    a client of a LocalCluster), Dask's default (p2p) for a client that only knows a scheduler's
    address (a cluster possibly of other machines); the same numbers with each."""
    import dask
    import distributed

    from cje.pipeline import streaming

    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 30_000)
    assert dask.config.get("dataframe.shuffle.method", None) is None
    assert streaming.shuffle_method(None) == {"shuffle_method": "disk"}
    assert streaming.shuffle_method(dask_client) == {"shuffle_method": "disk"}
    rep = cje.analyze(str(parts[0].parent), engine="dask", **KW)  # Dask's default scheduler
    assert differences(memory_report, rep) == []
    with distributed.Client(dask_client.scheduler.address, set_as_default=False) as remote:
        assert streaming.shuffle_method(remote) == {}
        rep = cje.analyze(str(parts[0].parent), engine="dask", client=remote, **KW)
    assert differences(memory_report, rep) == []
    # no client given, but a default one of such a cluster: Dask computes there, so no disk
    with distributed.Client(dask_client.scheduler.address) as remote:
        assert distributed.default_client() is remote
        assert streaming.shuffle_method(None) == {}
        rep = cje.analyze(str(parts[0].parent), engine="dask", **KW)
    assert differences(memory_report, rep) == []


@pytest.mark.parametrize("with_client", [True, False])
def test_dask_progress(parts: list[Path], memory_report: cje.Report, dask_client: Any,
                       with_client: bool, monkeypatch: pytest.MonkeyPatch,
                       capsys: pytest.CaptureFixture[str]) -> None:
    """``progress=True`` on Dask: its own progress bars, named after the passes, and the same
    numbers (the results are still taken one output partition at a time)."""
    from cje.pipeline import streaming

    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 30_000)
    rep = cje.analyze(str(parts[0].parent), engine="dask", progress=True,
                      client=dask_client if with_client else None, **KW)
    assert differences(memory_report, rep) == []
    err = capsys.readouterr().err
    assert "scan (dask)" in err and "per-prompt sums (dask)" in err


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_one_policy_integer_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str,
                                dask_client: Any) -> None:
    """Files without a 'policy' column (one policy, 'default') and with integer prompt ids
    (taken as their text), prompts spread over 4 files, several group-bys: the in-memory
    engine's numbers and notices."""
    from cje.pipeline import streaming

    df = make_rows(3_000, seed=5).filter(pl.col("policy") == "clone").drop("policy")
    df = df.with_columns(pl.col("prompt_id").str.slice(1).cast(pl.Int64))
    paths = write_parts(df, tmp_path / "ints", 4)
    mem = in_memory(paths, **KW)
    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 1_000)
    rep = cje.analyze(str(tmp_path / "ints"), engine=engine,
                      client=dask_client if engine == "dask" else None, **KW)
    assert [e.policy for e in rep.estimates] == ["default"]
    assert differences(mem, rep) == []


def test_dask_partition_sums_by_hand() -> None:
    """One partition's per-prompt sums against a pandas group-by of the rows: the centred
    reward and judge score summed per (prompt, policy), the rows counted (presence: > 0; their
    squares give the effective number of prompts); integer ids as text;
    with ``drop``, rows with an empty id or a non-finite score left out."""
    import pandas as pd

    from cje.pipeline.streaming import _dask_wide

    pdf = pd.DataFrame({"prompt_id": ["a", "b", "a", "c", "a", " ", "b"],
                        "policy": ["x", "y", "y", "x", "x", "x", "y"],
                        "judge_score": [1.0, 2.0, 3.0, 1.0, 2.0, 3.0, np.nan]})
    lookup = {"score": np.array([1.0, 2.0, 3.0]), "reward": np.array([0.1, 0.5, 0.7]),
              "s01": np.array([0.0, 0.5, 1.0])}
    centres = np.array([[0.3, 0.4], [0.6, 0.2]])  # (policy x: R̄, s̄), (policy y: R̄, s̄)
    out = _dask_wide(pdf, lookup, ["x", "y"], centres, drop=True).set_index("prompt_id")
    kept = pdf.iloc[[0, 1, 2, 3, 4]].copy()  # (" " and the NaN score dropped)
    p = kept["policy"].map({"x": 0, "y": 1}).to_numpy()
    d = np.searchsorted(lookup["score"], kept["judge_score"].to_numpy())
    kept["t"] = lookup["reward"][d] - centres[p, 0]
    kept["u"] = lookup["s01"][d] - centres[p, 1]
    want = kept.groupby(["prompt_id", "policy"])[["t", "u"]].sum()
    assert sorted(out.index) == ["a", "b", "c"]
    for (pid, pol), row in want.iterrows():
        j = {"x": 0, "y": 1}[pol]
        assert out.loc[pid, f"t{j}"] == pytest.approx(row["t"], abs=1e-15)
        assert out.loc[pid, f"u{j}"] == pytest.approx(row["u"], abs=1e-15)
    rows = kept.groupby(["prompt_id", "policy"]).size()
    present = {(pid, pol) for pid, pol in want.index}
    for pid in out.index:
        for j, pol in enumerate("xy"):
            assert out.loc[pid, f"n{j}"] == int(rows.get((pid, pol), 0))
            if (pid, pol) not in present:
                assert out.loc[pid, f"t{j}"] == 0.0 and out.loc[pid, f"u{j}"] == 0.0
    ints = _dask_wide(pd.DataFrame({"prompt_id": [7, 7, 8], "judge_score": [1.0, 3.0, 2.0]}),
                      lookup, ["default"], centres[:1])
    assert ints["prompt_id"].tolist() == ["7", "8"]
    assert ints["t0"].tolist() == pytest.approx([0.1 - 0.3 + 0.7 - 0.3, 0.5 - 0.3])


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_more_buckets_than_prompts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str,
                                   dask_client: Any) -> None:
    """The hash-bucket edge: more group-bys (polars: 97 passes) or output partitions (Dask:
    one per row) than prompts, so many are empty and every prompt's rows (a few with two
    responses of a policy, spread over 3 files) must still meet in one group: same numbers."""
    from cje.pipeline import streaming

    df = make_rows(60, seed=3, label_share=0.5)
    paths = write_parts(df, tmp_path / "small", 3)
    mem = in_memory(paths, **KW)
    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 1)
    monkeypatch.setattr(streaming, "DASK_SPLIT_PER_GROUP_BY", 1)  # (one output partition a row)
    monkeypatch.setattr(streaming, "MAX_POLARS_PASSES", 97)
    rep = cje.analyze(str(tmp_path / "small"), engine=engine,
                      client=dask_client if engine == "dask" else None, **KW)
    assert differences(mem, rep) == []
    assert sum(e.n_prompts for e in rep.estimates) > 200  # (the 4 policies' 60 prompts)


def test_polars_passes_capped(parts: list[Path], memory_report: cje.Report,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ``MAX_POLARS_PASSES`` group-bys polars makes that many passes, each over more
    rows than ``ROWS_PER_GROUP_BY``: counted, and the same numbers."""
    from cje.pipeline import streaming

    passes = []
    real = streaming.progress_bar

    def counting(progress: Any, total: int, **kw: Any) -> Any:
        if kw.get("desc", "").startswith("per-prompt"):
            passes.append(total)
        return real(progress, total, **kw)

    monkeypatch.setattr(streaming, "progress_bar", counting)
    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 10_000)  # 10+ group-bys …
    monkeypatch.setattr(streaming, "MAX_POLARS_PASSES", 3)  # … in 3 passes
    rep = cje.analyze(str(parts[0].parent), engine="polars", **KW)
    assert passes == [3]
    assert differences(memory_report, rep) == []


def test_comparison_can_fail(parts: list[Path], memory_report: cje.Report,
                             tmp_path: Path) -> None:
    """One label moved by one point is seen by the comparison (it is not vacuous)."""
    df = pl.concat([pl.read_parquet(p) for p in parts])
    i = int(np.flatnonzero(df["oracle_label"].is_not_null().to_numpy())[0])
    y = df["oracle_label"].to_numpy().copy()
    y[i] = 5.0 if y[i] < 5 else 1.0
    write_parts(df.with_columns(pl.Series("oracle_label", y)), tmp_path / "m", 8, None)
    rep = cje.analyze(str(tmp_path / "m"), engine="polars", **KW)
    assert differences(memory_report, rep)


def test_jackknife_against_exact_sums(tmp_path: Path) -> None:
    """The OUA variance of every policy against an oracle that sums each fold-deleted estimate
    exactly (``math.fsum`` over the rows), with one response per prompt and policy: the
    out-of-core engine within 1e-9 relative; the in-memory engine's own rounding shown beside
    it (why :func:`differences` compares ``var_cal`` to the total variance)."""
    from cje.estimators import DirectEstimator
    from cje.inference import jackknife_variance
    from cje.pipeline import core
    from cje.pipeline.direct import DirectShape

    rng = np.random.default_rng(5)
    g = 40_000
    q = rng.normal(0, 1, g)
    frames = []
    for j, pol in enumerate(("a", "b")):
        s = np.clip(np.round(5 + 2 * (q + 0.2 * j) + rng.normal(0, 1, g)), 0, 10)
        y = np.clip(np.round(3 + q + rng.normal(0, 0.6, g)), 1, 5)
        frames.append(pl.DataFrame({"prompt_id": [f"p{i}" for i in range(g)], "policy": pol,
                                    "judge_score": s,
                                    "oracle_label": np.where(rng.random(g) < 0.1, y, np.nan)}))
    df = pl.concat(frames).with_columns(pl.col("oracle_label").fill_nan(None))
    paths = write_parts(df, tmp_path, 8)
    rep = cje.analyze(str(tmp_path), engine="polars", mode="monotone", **KW)
    mem = in_memory(paths, mode="monotone", **KW)
    # the oracle: the pipeline's folds and calibrator, each replicate summed exactly
    ev = cje.load(pl.concat([pl.read_parquet(p) for p in paths]), **KW)
    shape = DirectShape(ev, {}, (), DirectEstimator(), 0.05)
    lab = np.zeros(ev.prompts.shape[0], dtype=bool)
    lab[ev.prompt_code[ev.labelled]] = True
    k, folds, _ = core.fold_plan(ev.prompts[lab], np.ones(int(lab.sum()), dtype=bool), 5, 0)
    fold_of = np.full(lab.size, -1)
    fold_of[lab] = folds
    t = shape.table
    cal, _ = core.fit_calibrator(t, fold_of[t.cluster[t.train]], mode="monotone", k=k, seed=0)
    grp, g_train = shape._group, shape._group[t.train]
    reps = []
    for d in range(k):
        c = cal.calibration(frozenset({d}))
        r = c.predict(t.distinct_s, None)[t.codes]
        e = t.y[t.train] - c.oof
        reps.append([math.fsum(r[grp == p]) / np.count_nonzero(grp == p)
                     + math.fsum(e[g_train == p]) / np.count_nonzero(g_train == p)
                     for p in range(2)])
    exact = jackknife_variance(np.array(reps)) * 4**2  # label scale (1, 5): width 4
    for p in range(2):
        # measured: out of core 4e-13 and 4e-12, in memory 1.3e-10 and 2.8e-9
        assert rep.estimates[p].var_cal == pytest.approx(exact[p], rel=1e-9)
        # the in-memory engine: off by its rounding, far less than the SE's 1e-9
        assert mem.estimates[p].var_cal == pytest.approx(exact[p], rel=1e-5)
        assert abs(mem.estimates[p].var_cal - exact[p]) < 1e-9 * mem.estimates[p].se ** 2


@pytest.mark.parametrize("mode", ["two_stage", "auto"])
def test_modes_and_options(parts: list[Path], mode: str) -> None:
    """Two-stage on the score alone, 'auto', K = 3, another seed, alpha and a subset of
    policies, all as in memory; no label scale given (inferred, with the same notice)."""
    kw = dict(judge_scale=(0, 10), mode=mode, n_folds=3, seed=7, alpha=0.1,
              policies=["premium", "base"])
    mem = in_memory(parts, **kw)
    rep = cje.analyze(str(parts[0].parent / "*.parquet"), engine="polars", **kw)
    assert differences(mem, rep) == []
    assert [e.policy for e in rep.estimates] == ["base", "premium"]


def test_plug_in_estimator(parts: list[Path]) -> None:
    est = cje.estimators.DirectEstimator(augment=False)
    mem = in_memory(parts, estimator=est, **KW)
    rep = cje.analyze(str(parts[0].parent), engine="polars", estimator=est, **KW)
    assert differences(mem, rep) == []
    assert rep.estimates[0].method == "direct (plug-in)"


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_files_ids_as_written(tmp_path: Path, fmt: str, dask_client: Any) -> None:
    """CSV / JSON Lines with renamed columns and zero-padded ids: ids are the text written
    ("00012", not 12 — the folds hash the id), so both engines give the in-memory numbers."""
    rng = np.random.default_rng(4)
    n = 6_000
    df = pl.DataFrame({"pid": [f"{i // 3:05d}" for i in range(n)],
                       "model": [("a", "b", "c")[i % 3] for i in range(n)],
                       "score": rng.integers(0, 11, n).astype(float),
                       "y": np.where(rng.random(n) < 0.2, rng.integers(1, 6, n), np.nan)})
    for i in range(4):
        part = df.slice(i * n // 4, n // 4)
        (part.write_csv if fmt == "csv" else part.write_ndjson)(tmp_path / f"p{i}.{fmt}")
    kw = dict(KW, columns={"prompt_id": "pid", "policy": "model", "judge_score": "score",
                           "oracle_label": "y"})
    mem = cje.analyze(str(tmp_path), engine="memory", **kw)
    for engine in ("polars", "dask"):
        rep = cje.analyze(str(tmp_path), engine=engine,
                          client=dask_client if engine == "dask" else None, **kw)
        assert differences(mem, rep) == [], engine


def two_policies(n: int, seed: int) -> Any:
    """``n`` rows: two policies on ``n/2`` prompts, judge scores 0–10, 30% labelled 1–5."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({"prompt_id": [f"q{i // 2}" for i in range(n)],
                         "policy": [("a", "b")[i % 2] for i in range(n)],
                         "judge_score": rng.integers(0, 11, n).astype(float),
                         "oracle_label": np.where(rng.random(n) < 0.3, rng.integers(1, 6, n),
                                                  np.nan)})


def test_column_type_error_names_the_file(tmp_path: Path, dask_client: Any) -> None:
    """A file whose judge scores were written as text is named in the error (it was not)."""
    n = 800
    df = two_policies(n, seed=6)
    df.slice(0, n // 2).write_parquet(tmp_path / "p0.parquet")
    df.slice(n // 2).with_columns(pl.col("judge_score").cast(pl.String)).write_parquet(
        tmp_path / "p1.parquet")
    for engine in ("polars", "dask"):
        with pytest.raises(CJEInputError, match=r"In '.*p1\.parquet': The 'judge_score' column "
                                                r"must be numeric"):
            cje.analyze(str(tmp_path), engine=engine,
                        client=dask_client if engine == "dask" else None, **KW)


def test_empty_file_and_missing_label_column(tmp_path: Path, dask_client: Any) -> None:
    """A partition without rows and a partition without an ``oracle_label`` column (its rows
    unlabelled) are read alike by every engine: the in-memory engine used to refuse the empty
    file and fail with polars' "schema lengths differ" on the missing column, while the
    out-of-core engines analysed the same files."""
    n = 3_000
    df = two_policies(n, seed=5)
    df.slice(0, 0).write_parquet(tmp_path / "p0.parquet")
    df.slice(0, n // 2).write_parquet(tmp_path / "p1.parquet")
    df.slice(n // 2).drop("oracle_label").write_parquet(tmp_path / "p2.parquet")
    mem = cje.analyze(str(tmp_path), engine="memory", **KW)
    # the oracle: the same rows as one frame, the second half unlabelled
    whole = df.with_columns(pl.when(pl.int_range(pl.len()) < n // 2).then(pl.col("oracle_label"))
                            .otherwise(None).alias("oracle_label"))
    assert differences(cje.analyze(whole, **KW), mem) == []
    for engine in ("polars", "dask"):
        rep = cje.analyze(str(tmp_path), engine=engine,
                          client=dask_client if engine == "dask" else None, **KW)
        assert differences(mem, rep) == [], engine
    (tmp_path / "p1.parquet").unlink()
    (tmp_path / "p2.parquet").unlink()
    with pytest.raises(CJEInputError, match="no rows"):
        cje.analyze(str(tmp_path), engine="memory", **KW)


def test_refusals(parts: list[Path], tmp_path: Path) -> None:
    """What is not supported out of core yet is refused before any row is read, naming
    engine='memory'."""
    src = str(parts[0].parent)
    for kw, what in ((dict(covariates=["response_length"]), "covariates="),
                     (dict(calibration=str(parts[0])), "calibration=")):
        with pytest.raises(CJEInputError, match="engine='memory'") as exc:
            cje.analyze(src, engine="polars", **KW, **kw)
        assert what in str(exc.value)
    # an off-policy estimator on fresh draws: the data has no log-probabilities (as in memory)
    with pytest.raises(CJEInputError, match="is for logged data.*this data has none"):
        cje.analyze(src, engine="polars", estimator="snips", **KW)
    # logged data (log-probability columns) goes to the off-policy path
    # (tests/test_streaming_logged.py), which needs labels
    logged = tmp_path / "logged.parquet"
    pl.DataFrame({"prompt_id": ["a", "b"], "judge_score": [1.0, 2.0], "logprob_base": [-1.0, -2.0],
                  "logprob[t]": [-1.0, -1.5]}).write_parquet(logged)
    with pytest.raises(CJEInputError, match="Off-policy estimates need a calibrated reward"):
        cje.analyze(str(logged), engine="polars", **KW)
    with pytest.raises(CJEInputError, match="engine="):
        cje.analyze({"prompt_id": ["a"], "judge_score": [1.0]}, engine="polars")
    # a label_probability design (weights on the labelled rows) is refused, not ignored
    design = tmp_path / "design.parquet"
    pl.read_parquet(parts[0]).with_columns(pl.lit(0.5).alias("label_probability")).write_parquet(
        design)
    for engine in ("polars", "dask"):
        with pytest.raises(CJEInputError, match="label_probability"):
            cje.analyze(str(design), engine=engine, **KW)


@pytest.mark.parametrize("engine", ["polars", "dask"])
@pytest.mark.parametrize("column,value,rule", [
    ("judge_score", float("nan"), "'judge_score' column must be finite"),
    ("judge_score", 11.0, "must lie within judge_scale=(0, 10)"),
    ("oracle_label", 6.0, "must lie within label_scale=(1, 5)"),
    ("prompt_id", None, "'prompt_id' column must be non-empty"),
])
def test_bad_row_names_file_and_row(parts: list[Path], tmp_path: Path, engine: str, column: str,
                                    value: Any, rule: str, dask_client: Any, broken: Any) -> None:
    """A bad row in the 6th partition is named by its file and its row in that file."""
    row = 17
    if column == "oracle_label":  # a labelled row, so the label is one that is read
        lab = pl.read_parquet(parts[5])["oracle_label"].is_not_null().to_numpy()
        row = int(np.flatnonzero(lab)[3])
    path, pid = broken(parts, tmp_path / "bad", 5, row, column, value)
    with pytest.raises(CJEInputError) as exc:
        cje.analyze(str(tmp_path / "bad" / "*.parquet"), engine=engine,
                    client=dask_client if engine == "dask" else None, **KW)
    msg = str(exc.value)
    assert rule in msg and f"In '{path}'" in msg and f"row {row}" in msg, msg
    if column != "prompt_id":
        assert f"prompt_id={pid!r}" in msg


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_drop_invalid(parts: list[Path], tmp_path: Path, engine: str, dask_client: Any) -> None:
    """on_invalid="drop": empty prompt ids and non-finite scores excluded and counted as in
    memory (a row with both counted once, as an empty prompt id); a dropped row's label or
    out-of-scale score is not checked."""
    frames = [pl.read_parquet(p) for p in parts]
    df = frames[3]
    pid, s, y = df["prompt_id"].to_list(), df["judge_score"].to_list(), df["oracle_label"].to_list()
    for i in (4, 9):
        pid[i] = "  "
    pid[11], s[11] = None, float("nan")
    s[20], s[21] = float("nan"), float("inf")
    pid[30], s[30] = "", 99.0  # dropped: its off-scale score is not refused
    frames[3] = df.with_columns(pl.Series("prompt_id", pid), pl.Series("judge_score", s),
                                pl.Series("oracle_label", y))
    where = tmp_path / "d"
    where.mkdir()
    for p, f in zip(parts, frames, strict=True):
        f.write_parquet(where / p.name)
    mem = cje.analyze(pl.concat(frames).to_pandas(), engine="memory", on_invalid="drop", **KW)
    assert mem.excluded == {"empty prompt_id": 4, "non-finite judge_score": 2}
    rep = cje.analyze(str(where), engine=engine, on_invalid="drop",
                      client=dask_client if engine == "dask" else None, **KW)
    assert differences(mem, rep) == []
    with pytest.raises(CJEInputError, match="or pass on_invalid='drop'"):
        cje.analyze(str(where), engine=engine, client=dask_client if engine == "dask" else None,
                    **KW)


def test_cli_engine_and_bad_row(parts: list[Path], tmp_path: Path,
                                memory_report: cje.Report, broken: Any) -> None:
    """``cje analyze 'dir/*.parquet' --engine polars``; a bad row: exit 2, nothing written."""
    from cje.cli import main

    out = tmp_path / "r.json"
    assert main(["analyze", str(parts[0].parent / "*.parquet"), "--engine", "polars",
                 "--judge-scale", "0", "10", "--label-scale", "1", "5", "--format", "json",
                 "--out", str(out), "--no-progress"]) == 0
    rep = cje.Report.from_json(out.read_text())
    assert differences(memory_report, rep) == []
    broken(parts, tmp_path / "bad", 2, 5, "judge_score", float("inf"))
    out2 = tmp_path / "r2.json"
    assert main(["analyze", str(tmp_path / "bad" / "*.parquet"), "--engine", "polars",
                 "--judge-scale", "0", "10", "--label-scale", "1", "5", "--format", "json",
                 "--out", str(out2), "--no-progress"]) == 2
    assert not out2.exists() and not list(tmp_path.glob("r2*"))
    assert main(["analyze", str(parts[0]), "--engine", "memory", "--scheduler",
                 "tcp://127.0.0.1:1"]) == 2  # --scheduler without --engine dask


def test_engine_choice(parts: list[Path]) -> None:
    from cje.pipeline.streaming import choose_engine

    assert choose_engine(str(parts[0].parent), "auto") == "memory"  # ~1 MB: fits
    assert choose_engine(pl.scan_parquet(parts), "auto") == "polars"
    assert choose_engine(str(parts[0].parent), "dask") == "dask"
    # auto on a small file set runs in memory, reading every file (a directory or a glob)
    rep = cje.analyze(str(parts[0].parent / "*.parquet"), **KW)
    assert "engine" not in rep.settings and rep.estimates[0].n > 20_000


def test_auto_streams_what_does_not_fit(parts: list[Path], monkeypatch: pytest.MonkeyPatch,
                                        memory_report: cje.Report,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """With too little memory for 40 × the Parquet bytes, auto streams with polars; progress
    bars over the scan's file batches and the per-prompt pass."""
    from cje.pipeline import streaming

    size = sum(p.stat().st_size for p in parts)
    monkeypatch.setattr(streaming, "_available_memory", lambda: 40 * size)  # needs 80 × size
    assert streaming.choose_engine(str(parts[0].parent), "auto") == "polars"
    rep = cje.analyze(str(parts[0].parent), progress=True, **KW)
    assert rep.settings["engine"] == "polars"
    assert differences(memory_report, rep) == []
    err = capsys.readouterr().err
    assert "scan (polars)" in err and "per-prompt sums (polars)" in err


@pytest.mark.slow
def test_dask_process_workers(parts: list[Path], memory_report: cje.Report,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``LocalCluster`` of worker processes (the docs' example): the disk shuffle's files are
    written and read by several processes on one machine; the same numbers."""
    distributed = pytest.importorskip("distributed")
    from cje.pipeline import streaming

    monkeypatch.setattr(streaming, "ROWS_PER_GROUP_BY", 30_000)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        assert streaming.shuffle_method(client) == {"shuffle_method": "disk"}
        rep = cje.analyze(str(parts[0].parent), engine="dask", client=client, **KW)
    assert differences(memory_report, rep) == []


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_million_rows(tmp_path_factory: pytest.TempPathFactory, engine: str) -> None:
    """10^6 rows in 16 files: the acceptance size of issue #15."""
    where = tmp_path_factory.mktemp("million")
    paths = write_parts(make_rows(240_000, seed=3), where, 16)
    mem = in_memory(paths, **KW)
    rep = cje.analyze(str(where), engine=engine, **KW)
    assert differences(mem, rep) == []
