"""Out-of-core off-policy analysis (issue #15): IPS, SNIPS, calibrated IPS and the DR family (fresh
draws held in memory) with ``engine="polars" | "dask"`` over partitioned logged data give the
in-memory engine's report,
name a bad row (log-probability columns too) by file and row, and refuse what they do not
compute yet.

The oracle is the in-memory engine on the same rows in file order (its numbers are pinned in
``tests/test_offpolicy_pinned.py``). "Equal" is 1e-9 relative, as for direct mode
(``tests/test_streaming.py``, whose comparison is reused): the engines take the same sums in
another order (per cell, per bin, per prompt); a wrong fold, weight or row moves numbers by far
more (:func:`test_comparison_can_fail`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cje
from cje.errors import CJEInputError

pl = pytest.importorskip("polars")


def _helpers() -> Any:
    """``tests/test_streaming.py``'s report comparison and Parquet writer (the tests are not a
    package: loaded from the file)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_streaming_helpers", Path(__file__).with_name("test_streaming.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


_differences, write_parts = _helpers().differences, _helpers().write_parts


def differences(mem: cje.Report, other: cje.Report, rel: float = 1e-9) -> list[str]:
    """``tests/test_streaming.py``'s comparison, with the Satterthwaite degrees of freedom held
    to what their jackknife variance allows. ``var_cal`` is compared to ``rel`` of ``se²`` there
    (the in-memory engine's sequential sums over 10^6 rows move replicates that agree to ~10^-6
    by ~10^-13, i.e. ``var_cal`` by ~10^-6 of itself — measured at 10^6 rows: 7e-7 for the
    logging policy's contrasts); ``df = V²/(V_D²/(G−1) + V_cal²/(K−1))`` moves by at most twice
    ``var_cal``'s relative change (``|∂ log df/∂ log V_cal| ≤ 2``), so it is accepted within
    ``2·|Δvar_cal|/var_cal + rel``."""
    import json

    a, b = json.loads(mem.to_json()), json.loads(other.to_json())
    ok: set[str] = set()
    for key in ("estimates", "pairs"):
        for i, (x, y) in enumerate(zip(a.get(key, []), b.get(key, []), strict=False)):
            vc, dvc = abs(x["var_cal"]), abs(x["var_cal"] - y["var_cal"])
            if dvc <= rel * (x.get("se") or 0.0) ** 2 and x["df"] and vc > 0:
                if abs(x["df"] - y["df"]) <= (2 * dvc / vc + rel) * abs(x["df"]):
                    ok.add(f"report.{key}[{i}].df:")
    return [d for d in _differences(mem, other, rel) if not d.startswith(tuple(ok))]

KW = dict(judge_scale=(0, 1), label_scale=(0, 1))
#: Three targets: raw-weight ESS about 90%, 50% and 18% (the last below the 30% weighting gate
#: and the 30% tail-variance threshold, so the gate and tail_inflation are exercised).
TARGETS = {"near": 0.3, "mid": 0.8, "far": 1.2}


def make_sim(n: int, seed: int) -> Any:
    """``make_offpolicy_eval`` with 2% of the target log-probabilities missing."""
    return cje.synthetic.make_offpolicy_eval(n, rng=seed, targets=TARGETS,
                                             missing_logprob_rate=0.02)


def make_logged(n: int, seed: int) -> Any:
    """Its logged rows as a polars frame."""
    return pl.from_pandas(make_sim(n, seed).logged)


def in_memory(paths: list[Path], **kw: Any) -> cje.Report:
    df = pl.concat([pl.read_parquet(p) for p in paths])
    return cje.analyze(df.to_pandas(), engine="memory", **kw)


@pytest.fixture(scope="module")
def sim() -> Any:
    return make_sim(20_000, seed=1)


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory, sim: Any) -> list[Path]:
    """2·10^4 logged rows (one per prompt) in 8 Parquet files, shuffled."""
    return write_parts(pl.from_pandas(sim.logged), tmp_path_factory.mktemp("logged"), 8)


@pytest.fixture(scope="module")
def memory_reports(parts: list[Path]) -> dict[str, cje.Report]:
    return {est: in_memory(parts, estimator=est, **KW)
            for est in ("ips", "snips", "calibrated-ips")}


@pytest.mark.parametrize("estimator", ["ips", "snips", "calibrated-ips"])
def test_polars_equals_memory(parts: list[Path], memory_reports: dict[str, cje.Report],
                              estimator: str) -> None:
    mem = memory_reports[estimator]
    rep = cje.analyze(str(parts[0].parent / "*.parquet"), engine="polars", estimator=estimator,
                      **KW)
    assert differences(mem, rep) == []
    # the comparison is not empty: every policy, the jackknife, contrasts, the overlap
    # diagnostics and a CAUTION from the overlap gate are there
    assert [e.policy for e in rep.estimates] == ["base", *TARGETS]
    assert all(e.var_cal > 0 for e in rep.estimates) and len(rep.pairs) == 6
    far = rep["far"]
    assert far.status == "CAUTION" and far.diagnostics["ess_raw"] < 0.3
    for key in ("hill_raw", "ttc", "cle", "top5_mass_raw", "weight_tail_raw",
                "excluded_missing_log-probability", "mean_raw_weight", "near_zero_share"):
        assert key in far.diagnostics, key
    assert far.diagnostics["excluded_missing_log-probability"] > 0
    if estimator == "calibrated-ips":
        assert {"ess_stable", "weight_tail_stable", "top5_mass_stable"} <= set(far.diagnostics)
    assert rep.settings["engine"] == "polars"


@pytest.mark.parametrize("estimator", ["snips", "calibrated-ips"])
def test_dask_equals_memory(parts: list[Path], memory_reports: dict[str, cje.Report],
                            dask_client: Any, estimator: str) -> None:
    rep = cje.analyze(str(parts[0].parent), engine="dask", client=dask_client,
                      estimator=estimator, **KW)
    assert differences(memory_reports[estimator], rep) == []
    assert rep.settings["engine"] == "dask"


def test_frames_and_options(parts: list[Path], dask_client: Any) -> None:
    """A LazyFrame and a Dask DataFrame given directly; a variance cap; ``policies=``; the
    default estimator ('auto': calibrated IPS without fresh draws)."""
    import dask.dataframe as dd

    kw = dict(KW, estimator="calibrated-ips", var_cap=0.05, policies=["base", "far"])
    mem = in_memory(parts, **kw)
    assert mem["far"].diagnostics["var_cap_gamma"] > 0  # the cap binds
    assert differences(mem, cje.analyze(pl.scan_parquet(parts), **kw)) == []
    ddf = dd.read_parquet([str(p) for p in parts])
    assert differences(mem, cje.analyze(ddf, client=dask_client, **kw)) == []
    mem = in_memory(parts, **KW)
    assert differences(mem, cje.analyze(str(parts[0].parent), engine="polars", **KW)) == []


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_stabilised_residual(tmp_path: Path, engine: str, dask_client: Any) -> None:
    """Very poor overlap (raw ESS ~3%): 'auto' puts the stabilised weights on the residual term
    of that target, with the transport allowance (gap² + Var(gap)) in its variance and its gap's
    influence in the contrasts; residual_weights='stable' for every target, with a variance
    cap."""
    far = tmp_path / "veryfar"
    sim = cje.synthetic.make_offpolicy_eval(4000, rng=2, targets={"x": 2.0, "b": 0.8})
    paths = write_parts(pl.from_pandas(sim.logged), far, 4)
    client = dask_client if engine == "dask" else None
    for kw in (dict(), dict(residual_weights="stable", var_cap=0.1)):
        kw = dict(KW, estimator="calibrated-ips", **kw)
        mem = in_memory(paths, **kw)
        rep = cje.analyze(str(far), engine=engine, client=client, **kw)
        assert differences(mem, rep) == []
        x = rep["x"]
        assert x.diagnostics["residual_weights"] == "stable" and x.var_transport > 0
        assert "transport_gap" in x.diagnostics and x.status == "CAUTION"
    assert rep["b"].diagnostics["residual_weights"] == "stable"


@pytest.mark.parametrize("estimator", ["dr-cpo", "tmle", "mrdr", "stacked-dr"])
def test_dr_equals_memory(parts: list[Path], sim: Any, estimator: str) -> None:
    """The DR family with the fresh draws (one per prompt and target) in memory."""
    kw = dict(KW, estimator=estimator, fresh_draws=sim.fresh)
    mem = in_memory(parts, **kw)
    rep = cje.analyze(str(parts[0].parent), engine="polars", **kw)
    assert differences(mem, rep) == []
    assert [e.method for e in rep.estimates[1:]] == [estimator] * 3
    assert all(e.var_cal > 0 for e in rep.estimates) and len(rep.pairs) == 6
    if estimator == "stacked-dr":  # the stacking weights differ by target, and are reported
        mix = [[e.diagnostics[f"stack_{m}"] for m in ("dr_cpo", "tmle", "mrdr")]
               for e in rep.estimates[1:]]
        assert all(abs(sum(m) - 1) < 1e-12 for m in mix) and len({tuple(m) for m in mix}) > 1


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_dr_options(tmp_path: Path, engine: str, dask_client: Any) -> None:
    """DR under very poor overlap (stabilised residual weights, the transport allowance), two
    fresh draws per prompt with labels of their own (they join the calibration), a variance
    cap, MRDR's ω = w², and fresh draws missing on some prompts: refused naming the file and
    row, or dropped and counted (on_missing='drop')."""
    sim = cje.synthetic.make_offpolicy_eval(3000, rng=2, targets={"x": 2.0, "b": 0.8},
                                            n_fresh_per_prompt=2, fresh_oracle_fraction=0.1,
                                            missing_logprob_rate=0.02)
    where = tmp_path / "dr"
    paths = write_parts(pl.from_pandas(sim.logged), where, 4)
    client = dask_client if engine == "dask" else None
    short = sim.fresh[~((sim.fresh["policy"] == "b")
                        & sim.fresh["prompt_id"].isin([f"p{i:05d}" for i in range(0, 3000, 7)]))]
    # fresh draws on prompts without logged rows: said so in a notice, as in memory
    orphans = sim.fresh[sim.fresh["policy"] == "b"].head(6).assign(
        prompt_id=lambda d: "zz" + d["prompt_id"])
    import pandas as pd

    more = pd.concat([sim.fresh, orphans], ignore_index=True)
    for est, extra, fresh in (("stacked-dr", {}, more),
                              ("tmle", dict(residual_weights="stable", var_cap=0.2), sim.fresh),
                              ("mrdr", dict(mrdr_omega="w2"), sim.fresh),
                              ("stacked-dr", dict(on_missing="drop"), short)):
        kw = dict(KW, estimator=est, fresh_draws=fresh, **extra)
        mem = in_memory(paths, **kw)
        rep = cje.analyze(str(where), engine=engine, client=client, **kw)
        assert differences(mem, rep) == [], (est, extra)
        assert rep["x"].diagnostics["residual_weights"] == "stable"
        if fresh is more:
            assert any("without logged rows" in n for n in rep.notices)
    assert rep["b"].diagnostics["excluded_no_fresh_draws_for_the_prompt"] == 422
    with pytest.raises(CJEInputError, match=r"Target 'b' has no fresh draws for prompt_id=.*"
                                            r"\(row \d+ of '.*part-00\d.parquet'; 422 logged rows"):
        cje.analyze(str(where), engine=engine, client=client, estimator="dr-cpo",
                    fresh_draws=short, **KW)


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_prompts_split_over_group_bys(parts: list[Path], sim: Any, engine: str,
                                      monkeypatch: pytest.MonkeyPatch, dask_client: Any) -> None:
    """Above ``CELLS_PER_GROUP_BY`` per-prompt numbers the prompts are split by a hash of their
    id over several group-bys (polars: one pass each; Dask: ``split_out``), whose results are
    reduced chunk by chunk (stacked DR's Gram matrices summed over them): same numbers."""
    from cje.pipeline import streaming_logged

    monkeypatch.setattr(streaming_logged, "CELLS_PER_GROUP_BY", 200_000)
    for kw in (dict(estimator="stacked-dr", fresh_draws=sim.fresh),
               dict(estimator="calibrated-ips", residual_weights="stable")):
        kw = dict(KW, **kw)
        rep = cje.analyze(str(parts[0].parent), engine=engine,
                          client=dask_client if engine == "dask" else None, **kw)
        assert differences(in_memory(parts, **kw), rep) == []


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_files_and_options(tmp_path: Path, fmt: str, dask_client: Any) -> None:
    """CSV and JSON Lines files (scores parsed exactly: a JSON reader that rounds the last bit
    of 0.35 moves a score across an affinity bin edge), inferred scales, integer prompt ids
    without a policy column, and ``policies=`` down to the logging policy alone (which the
    in-memory engine could not run before: an unbound name)."""
    sim = cje.synthetic.make_offpolicy_eval(3000, rng=5, targets={"a": 0.5, "b": 1.0},
                                            missing_logprob_rate=0.05)
    df = pl.from_pandas(sim.logged)
    n = df.height
    for i in range(3):
        part = df.slice(i * n // 3, n // 3)
        part.write_csv(tmp_path / f"p{i}.csv") if fmt == "csv" else part.write_ndjson(
            tmp_path / f"p{i}.jsonl")
    src = str(tmp_path / f"*.{fmt}")
    for kw in (dict(KW), {}, dict(KW, policies=["base"]), dict(KW, policies=["b"])):
        mem = cje.analyze(df.to_pandas(), engine="memory", **kw)
        for engine in ("polars", "dask"):
            rep = cje.analyze(src, engine=engine,
                              client=dask_client if engine == "dask" else None, **kw)
            assert differences(mem, rep) == [], (kw, engine)
    ints = df.with_columns(pl.col("prompt_id").str.slice(1).cast(pl.Int64)).drop("policy")
    ints.write_parquet(tmp_path / "ints.parquet")
    mem = cje.analyze(ints.to_pandas(), engine="memory", **KW)
    assert mem.estimates[0].policy == "default"
    rep = cje.analyze(str(tmp_path / "ints.parquet"), engine="polars", **KW)
    assert differences(mem, rep) == []


def test_comparison_can_fail(parts: list[Path], memory_reports: dict[str, cje.Report],
                             tmp_path: Path) -> None:
    """One target log-probability moved by 1 nat is seen by the comparison."""
    df = pl.concat([pl.read_parquet(p) for p in parts])
    lp = df["logprob[mid]"].to_numpy().copy()
    i = int(np.flatnonzero(~np.isnan(lp))[7])
    lp[i] -= 1.0
    write_parts(df.with_columns(pl.Series("logprob[mid]", lp)), tmp_path / "m", 8, None)
    rep = cje.analyze(str(tmp_path / "m"), engine="polars", estimator="calibrated-ips", **KW)
    assert any("mid" in d or "pairs" in d for d in differences(memory_reports["calibrated-ips"],
                                                                rep))


def test_order_statistics_against_numpy() -> None:
    """The histogram-and-bins order statistics equal numpy's sort, quantiles and top sums
    (ties and a bin holding many values included)."""
    from cje.pipeline.streaming_logged import HIST_BINS, _bins, _Order, _weight_tail
    from cje.pipeline.summaries import weight_tail

    rng = np.random.default_rng(0)
    v = np.concatenate([rng.lognormal(0, 1.5, 5000), np.full(300, 2.0)])
    b = _bins(v, float(v.min()), float(v.max()), HIST_BINS)
    o = _Order(np.bincount(b, minlength=HIST_BINS),
               {"v": np.bincount(b, weights=v, minlength=HIST_BINS)})
    for bb in np.unique(b):
        vals = v[b == bb]
        o.put(int(bb), {"v": vals}, np.argsort(-vals, kind="stable"))
    desc = np.sort(v)[::-1]
    for r in (0, 1, 17, 250, 2600, v.size - 1):
        assert o.value(r, "v") == desc[r]
    for j in (1, 10, 265, 4000):
        assert math.isclose(o.top_sum(j, "v"), desc[:j].sum(), rel_tol=1e-12)
    ours = _weight_tail(v.size, lambda r: o.value(r, "v"))
    theirs = weight_tail(v)
    assert [p for p, _ in ours] == [p for p, _ in theirs]
    assert np.allclose([x for _, x in ours], [x for _, x in theirs], rtol=1e-13, atol=0)


@pytest.mark.parametrize("engine", ["polars", "dask"])
@pytest.mark.parametrize("column,value,rule", [
    ("logprob_base", float("nan"), "The 'logprob_base' column must be complete"),
    ("logprob_base", 0.5, "'logprob_base' column must hold log-probabilities"),
    ("logprob[mid]", float("-inf"), "'logprob[mid]' column must hold log-probabilities"),
    ("logprob[far]", float("inf"), "'logprob[far]' column must hold log-probabilities"),
    ("judge_score", float("nan"), "'judge_score' column must be finite"),
    ("oracle_label", 2.0, "must lie within label_scale=(0, 1)"),
])
def test_bad_row_names_file_and_row(parts: list[Path], tmp_path: Path, engine: str, column: str,
                                    value: Any, rule: str, dask_client: Any, broken: Any) -> None:
    """A bad row in the 6th partition is named by its file and its row in that file."""
    row = 17
    if column == "oracle_label":  # a labelled row
        lab = pl.read_parquet(parts[5])["oracle_label"].is_not_null().to_numpy()
        row = int(np.flatnonzero(lab)[3])
    path, pid = broken(parts, tmp_path / "bad", 5, row, column, value)
    with pytest.raises(CJEInputError) as exc:
        cje.analyze(str(tmp_path / "bad" / "*.parquet"), engine=engine, estimator="snips",
                    client=dask_client if engine == "dask" else None, **KW)
    msg = str(exc.value)
    assert rule in msg and f"In '{path}'" in msg and f"row {row}" in msg, msg
    assert f"prompt_id={pid!r}" in msg


def test_cli_logged_and_bad_row(parts: list[Path], tmp_path: Path,
                                memory_reports: dict[str, cje.Report], broken: Any) -> None:
    """``cje analyze 'dir/*.parquet' --engine polars --estimator snips``; a bad log-probability:
    exit 2, nothing written."""
    from cje.cli import main

    out = tmp_path / "r.json"
    args = ["--engine", "polars", "--estimator", "snips", "--judge-scale", "0", "1",
            "--label-scale", "0", "1", "--format", "json", "--no-progress"]
    assert main(["analyze", str(parts[0].parent / "*.parquet"), *args, "--out", str(out)]) == 0
    assert differences(memory_reports["snips"], cje.Report.from_json(out.read_text())) == []
    broken(parts, tmp_path / "bad", 2, 5, "logprob[near]", 3.0)
    out2 = tmp_path / "r2.json"
    assert main(["analyze", str(tmp_path / "bad" / "*.parquet"), *args, "--out", str(out2)]) == 2
    assert not out2.exists() and not list(tmp_path.glob("r2*"))


def test_data_frame_in_memory_is_refused_with_what_the_engines_read() -> None:
    """A pandas frame of logged data with engine='polars'/'dask' was told it had no
    log-probabilities (the logged-data check could not read its columns); the engines read
    files, LazyFrames and Dask DataFrames, and the message says so."""
    sim = cje.synthetic.make_offpolicy_eval(200, oracle_fraction=0.2, rng=0)
    for engine in ("polars", "dask"):
        with pytest.raises(CJEInputError, match=rf"engine='{engine}' reads a polars LazyFrame.*"
                                                r"got a DataFrame"):
            cje.analyze(sim.logged, engine=engine, estimator="snips", **KW)


def test_target_column_missing_from_some_files(tmp_path: Path, dask_client: Any) -> None:
    """A target's log-probability column that the first file lacks (and another) is null on
    those files' rows, as in memory: polars failed with "schema lengths differ", and Dask took
    its columns from the first file and dropped the target from every partition without a
    word."""
    df = make_logged(4_000, seed=3)
    target = next(c for c in df.columns if c.startswith("logprob[") and c != "logprob_base")
    for i in range(4):
        part = df.slice(i * 1_000, 1_000)
        (part.drop(target) if i in (0, 2) else part).write_parquet(tmp_path / f"p{i}.parquet")
    kw = dict(estimator="snips", **KW)
    mem = cje.analyze(str(tmp_path), engine="memory", **kw)
    name = target[len("logprob["):-1]
    kept = sum(df.slice(i * 1_000, 1_000)[target].is_not_null().sum() for i in (1, 3))
    assert mem[name].n == kept  # the rows of the files that have the column (and a value)
    for engine in ("polars", "dask"):
        rep = cje.analyze(str(tmp_path), engine=engine,
                          client=dask_client if engine == "dask" else None, **kw)
        assert differences(mem, rep) == [], engine


def test_simcal_floor_refusal_on_data_built_to_trip_it(tmp_path: Path, dask_client: Any) -> None:
    """One logged response the target likes 600 nats more than every other: the other rows' raw
    weights are numerically zero, SIMCal-W falls back to the raw weights and floors them at 1e-9
    (in memory), which the cell sums cannot represent: out of core refuses, naming
    engine='memory'; in memory the level is REFUSED (no support)."""
    pl = pytest.importorskip("polars")
    rng = np.random.default_rng(0)
    n = 2000
    s = rng.integers(0, 11, n).astype(float)
    y = np.clip(s / 10 + rng.normal(0, 0.1, n), 0, 1)
    lp0 = -rng.uniform(10, 40, n)
    lpt = lp0 - 600.0 + rng.normal(0, 1, n)
    lpt[7] = lp0[7]
    df = pl.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "judge_score": s,
                       "oracle_label": np.where(rng.uniform(size=n) < 0.2, y, np.nan),
                       "logprob_base": lp0, "logprob[t]": lpt})
    for i in range(4):
        df.slice(i * 500, 500).write_parquet(tmp_path / f"p{i}.parquet")
    kw = dict(estimator="calibrated-ips", judge_scale=(0, 10), label_scale=(0, 1))
    assert cje.analyze(str(tmp_path), engine="memory", **kw)["t"].status == "REFUSED"
    for engine in ("polars", "dask"):
        with pytest.raises(CJEInputError, match=r"floor of 1e-09.*binds.*engine='memory'"):
            cje.analyze(str(tmp_path), engine=engine,
                        client=dask_client if engine == "dask" else None, **kw)


def test_refusals(parts: list[Path], tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    """What is not computed out of core yet is refused with a message naming engine='memory'
    (or the way around it), never approximated."""
    src = str(parts[0].parent)
    for kw, what in ((dict(fresh_draws=str(parts[0]), estimator="snips"), "fresh_draws="),
                     (dict(on_invalid="drop"), "on_invalid='drop'")):
        with pytest.raises(CJEInputError, match="engine='memory'") as exc:
            cje.analyze(src, engine="polars", **KW, **kw)
        assert what in str(exc.value)
    with pytest.raises(CJEInputError, match="needs fresh draws"):  # as in memory
        cje.analyze(src, engine="polars", estimator="dr-cpo", **KW)
    # too many distinct judge scores for cell tables: the count and the limit named
    from cje.pipeline import streaming_logged

    monkeypatch.setattr(streaming_logged, "MAX_DISTINCT_SCORES", 10)
    with pytest.raises(CJEInputError, match=r"take \d+ distinct values.*at most 10") as exc:
        cje.analyze(src, engine="polars", estimator="snips", **KW)
    assert "Round the scores" in str(exc.value) and "engine='memory'" in str(exc.value)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_million_rows(tmp_path_factory: pytest.TempPathFactory, engine: str) -> None:
    """10^6 logged rows in 8 files, SNIPS, calibrated IPS and stacked DR (the fresh draws in
    memory): the acceptance of issue #15."""
    where = tmp_path_factory.mktemp("million_logged")
    sim = make_sim(1_000_000, seed=3)
    paths = write_parts(pl.from_pandas(sim.logged), where, 8)
    for est in ("snips", "calibrated-ips", "stacked-dr"):
        kw = dict(KW, estimator=est, fresh_draws=sim.fresh if est == "stacked-dr" else None)
        mem = in_memory(paths, **kw)
        rep = cje.analyze(str(where), engine=engine, **kw)
        assert differences(mem, rep) == [], est
