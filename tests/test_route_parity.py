"""Route parity: the same judged responses give the same report whichever way they reach
``cje.analyze`` — or the route refuses with a message.

The routes (``ROUTES``): a pandas DataFrame (the oracle, ``engine="memory"``), a dict of arrays,
a polars DataFrame, a polars LazyFrame (streamed by polars), one CSV / JSON Lines / Parquet file,
a glob of parts and a directory of parts (in memory, streamed by polars, and on Dask), a
cje-eval fresh-draws directory (direct mode) and the command line (``cje analyze --format json``).

Each seeded random data set (direct mode; logged off-policy data with IPS, SNIPS and DR) goes
through every route and its ``Report.to_json()`` — estimates, intervals, statuses, counts,
contrasts, calibration, notices — is compared with the pandas route's to 1e-9 relative (the
out-of-core engines sum in another order, which moves the last bits; see tests/test_streaming.py).
A route that refuses must raise :class:`cje.CJEInputError` (never another exception), and the
pandas route must then refuse too, or else the refusal is a difference. Hostile variations (ids
written "01" / 1 / 1.0, whitespace, labels as text, empty files, a column only in some files,
BOM and CRLF, ...) are added one at a time; the differences found are in PARITY_FINDINGS.md.

Fast tier: a few seeded data sets × every route (< 60 s); ``-m slow`` sweeps more seeds.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError

pl = pytest.importorskip("polars")

KW_DIRECT = dict(judge_scale=(0, 10), label_scale=(1, 5))
KW_LOGGED = dict(judge_scale=(0, 10), label_scale=(0, 1))


# ---- data -----------------------------------------------------------------------------------
def make_direct(seed: int, n_prompts: int = 80) -> pd.DataFrame:
    """A small direct-mode data set: 3 policies (one misses some prompts, some prompts have a
    second response), judge scores 0–10 in halves, integer labels 1–5 on ~30% of the rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for j, pol in enumerate(("alpha", "beta", "gamma")):
        for p in range(n_prompts):
            if j == 2 and rng.random() < 0.1:
                continue
            for _ in range(2 if rng.random() < 0.08 else 1):
                q = rng.normal(0.3 * j, 1.0)
                s = float(np.clip(np.round(2 * (5 + 1.5 * q + rng.normal(0, 1))) / 2, 0, 10))
                y = float(np.clip(np.round(3 + q + rng.normal(0, 0.6)), 1, 5))
                rows.append((f"q{p:04d}", pol, s, y if rng.random() < 0.3 else np.nan))
    return pd.DataFrame(rows, columns=["prompt_id", "policy", "judge_score", "oracle_label"])


def make_logged(seed: int, n_prompts: int = 150) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Logged data of policy 'base' with two targets' log-probabilities, and the targets'
    fresh draws (one per prompt). Labels in [0, 1] on ~35% of the logged rows."""
    rng = np.random.default_rng(seed)
    q = rng.normal(0, 1, n_prompts)
    score = np.clip(np.round(5 + 1.5 * q + rng.normal(0, 1, n_prompts)), 0, 10)
    label = np.clip(0.5 + 0.15 * q + rng.normal(0, 0.1, n_prompts), 0, 1).round(2)
    lp_base = -40 + rng.normal(0, 1, n_prompts)
    logged = pd.DataFrame({
        "prompt_id": [f"p{i:04d}" for i in range(n_prompts)],
        "policy": "base",
        "judge_score": score,
        "oracle_label": np.where(rng.random(n_prompts) < 0.35, label, np.nan),
        "logprob_base": lp_base,
        "logprob[near]": lp_base + 0.2 * q + rng.normal(0, 0.3, n_prompts),
        "logprob[far]": lp_base + 0.5 * q + rng.normal(0, 0.6, n_prompts),
    })
    fresh = []
    for t, shift in (("near", 0.2), ("far", 0.5)):
        s = np.clip(np.round(5 + 1.5 * (q + shift) + rng.normal(0, 1, n_prompts)), 0, 10)
        fresh.append(pd.DataFrame({"prompt_id": logged["prompt_id"], "policy": t, "judge_score": s}))
    return logged, pd.concat(fresh, ignore_index=True)


# ---- writing and routes ---------------------------------------------------------------------
def write(df: pd.DataFrame, path: Path) -> Path:
    """One file of ``df`` in the format its suffix names (NaN written as empty / null)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        df.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        df.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        df.to_parquet(path, index=False)
    return path


def write_parts(df: pd.DataFrame, where: Path, fmt: str, parts: int = 3) -> Path:
    """``df`` as ``parts`` files of consecutive rows (file order = row order)."""
    n = len(df)
    for i in range(parts):
        write(df.iloc[i * n // parts:(i + 1) * n // parts], where / f"part-{i:02d}.{fmt}")
    return where


def write_fresh_dir(df: pd.DataFrame, where: Path) -> Path:
    """A cje-eval fresh-draws directory: one ``<policy>_responses.jsonl`` per policy."""
    where.mkdir(parents=True, exist_ok=True)
    for pol, g in df.groupby("policy", sort=True):
        write(g.drop(columns="policy"), where / f"{pol}_responses.jsonl")
    return where


def _run_cli(path: Path, tmp: Path, kw: dict[str, Any]) -> dict[str, Any]:
    from cje import cli

    out = tmp / "cli.json"
    argv = ["analyze", str(path), "--format", "json", "--out", str(out), "--no-progress"]
    argv += ["--judge-scale", *map(str, kw["judge_scale"]), "--label-scale", *map(str, kw["label_scale"])]
    if "estimator" in kw:
        argv += ["--estimator", kw["estimator"]]
    if kw.get("fresh_draws") is not None:
        argv += ["--fresh-draws", str(kw["fresh_draws"])]
    if "engine" in kw:
        argv += ["--engine", kw["engine"]]
    rc = cli.main(argv)
    if rc != 0:
        raise CJEInputError(f"cje analyze exited with {rc}")
    return json.loads(out.read_text())


#: route name -> (how the data is handed over, engine)
DIRECT_ROUTES = (
    "dict", "polars", "lazy", "csv", "jsonl", "parquet",
    "csv-glob", "jsonl-dir", "parquet-glob",
    "csv-glob/polars", "jsonl-dir/polars", "parquet-glob/polars", "parquet-dir/dask",
    "fresh-dir", "cli-csv", "cli-parquet-glob/polars",
)
LOGGED_ROUTES = (
    "dict", "polars", "lazy", "csv", "jsonl", "parquet",
    "csv-glob/polars", "jsonl-dir/polars", "parquet-glob/polars", "parquet-dir/dask",
    "cli-csv",
)


def route_input(route: str, df: pd.DataFrame, tmp: Path) -> tuple[Any, pd.DataFrame, str]:
    """What ``route`` hands to ``cje.analyze`` for the rows ``df``, the rows in the order the
    route reads them (the oracle is run on these), and the engine."""
    kind, _, engine = route.partition("/")
    engine = engine or "memory"
    if kind == "dict":
        return {c: df[c].to_numpy() for c in df.columns}, df, engine
    if kind == "polars":
        return pl.from_pandas(df), df, engine
    if kind == "lazy":
        return pl.from_pandas(df).lazy(), df, "polars"
    if kind in ("csv", "jsonl", "parquet"):
        return str(write(df, tmp / f"data.{kind}")), df, engine
    if kind == "fresh-dir":
        return str(write_fresh_dir(df, tmp / "fresh")), df.sort_values("policy", kind="stable"), engine
    if kind == "cli-csv":
        return write(df, tmp / "cli.csv"), df, engine
    if kind == "cli-parquet-glob":
        return write_parts(df, tmp / "cli-parts", "parquet") / "*.parquet", df, engine
    if kind.endswith(("-glob", "-dir")):
        fmt, how = kind.split("-")
        where = write_parts(df, tmp / f"parts-{fmt}", fmt)
        return (str(where / f"*.{fmt}") if how == "glob" else str(where)), df, engine
    raise AssertionError(route)


def run(data: Any, route: str, tmp: Path, kw: dict[str, Any], engine: str,
        client: Any = None) -> dict[str, Any] | str:
    """The report's JSON (a dict), or ``"REFUSED: <message>"`` for a :class:`CJEInputError`.
    Any other exception propagates (a crash is a defect in itself)."""
    kw = dict(kw)
    try:
        if route.startswith("cli"):
            kw["engine"] = engine
            return _run_cli(Path(data), tmp, kw)
        if engine == "dask":
            kw["client"] = client
        rep = cje.analyze(data, engine=engine, progress=False, **kw)
        return json.loads(rep.to_json())
    except CJEInputError as exc:
        return f"REFUSED: {exc}"


def oracle(df: pd.DataFrame, kw: dict[str, Any]) -> dict[str, Any] | str:
    """The pandas, in-memory route."""
    try:
        return json.loads(cje.analyze(df, engine="memory", progress=False, **kw).to_json())
    except CJEInputError as exc:
        return f"REFUSED: {exc}"


# ---- comparison -----------------------------------------------------------------------------
def _close(a: Any, b: Any, path: str, out: list[str], rel: float) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            out.append(f"{path}: keys differ {sorted(set(a) ^ set(b))}")
        for k in set(a) & set(b):
            _close(a[k], b[k], f"{path}.{k}", out, rel)
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            out.append(f"{path}: length {len(a)} vs {len(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _close(x, y, f"{path}[{i}]", out, rel)
    elif isinstance(a, float) and isinstance(b, (float, int)) and not isinstance(b, bool):
        if path.endswith(("p_value", "p_holm")) and 0 < a < 1e-10 and 0 < b < 1e-10:
            a, b = -math.log(a), -math.log(b)
        if abs(a - b) > rel * max(abs(a), abs(b)) and abs(a - b) > 1e-12:
            out.append(f"{path}: {a!r} vs {b!r}")
    elif a != b:
        out.append(f"{path}: {a!r} vs {b!r}")


def differences(ref: dict[str, Any] | str, got: dict[str, Any] | str, rel: float = 1e-9) -> list[str]:
    """What differs between the oracle's report and a route's (settings, provenance and the
    wording of notices that name the source are left out); a refusal on one side only is a
    difference, refusals on both sides are not."""
    if isinstance(ref, str) or isinstance(got, str):
        if isinstance(ref, str) and isinstance(got, str):
            return []
        return [f"oracle {'refused' if isinstance(ref, str) else 'reported'}, route "
                f"{'refused' if isinstance(got, str) else 'reported'}: "
                f"{(ref if isinstance(ref, str) else got)[:300]}"]
    a, b = json.loads(json.dumps(ref)), json.loads(json.dumps(got))
    for d in (a, b):
        for k in ("provenance", "settings", "notices"):
            d.pop(k, None)
    for key in ("estimates", "pairs"):  # the jackknife variance, to 1e-9 of se² (test_streaming)
        for x, y in zip(a.get(key, []), b.get(key, []), strict=False):
            total = (x.get("se") or 0.0) ** 2
            if abs((x.get("var_cal") or 0) - (y.get("var_cal") or 0)) <= rel * total:
                y["var_cal"] = x.get("var_cal")
            if key == "estimates" and abs(x["calibration_share"] - y["calibration_share"]) <= 1e-9:
                y["calibration_share"] = x["calibration_share"]
    out: list[str] = []
    _close(a, b, "report", out, rel)
    return out


def check_routes(df: pd.DataFrame, routes: tuple[str, ...], tmp: Path, kw: dict[str, Any],
                 client: Any = None, prepare: Callable[[Any], Any] | None = None
                 ) -> dict[str, list[str]]:
    """Every route's differences from the oracle (routes without any are left out)."""
    found: dict[str, list[str]] = {}
    for route in routes:
        if route.endswith("/dask") and client is None:
            continue
        where = tmp / route.replace("/", "_")
        where.mkdir(parents=True, exist_ok=True)
        data, rows, engine = route_input(route, df, where)
        ref = oracle(rows, kw)
        got = run(data, route, where, kw, engine, client)
        diff = differences(ref, got)
        if diff:
            found[route] = diff[:8]
    return found


# ---- the fast tier: clean random data through every route -----------------------------------
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_direct_routes_agree(seed: int, tmp_path: Path, dask_client: Any) -> None:
    df = make_direct(seed)
    ref = oracle(df, KW_DIRECT)
    assert isinstance(ref, dict) and len(ref["estimates"]) == 3  # the comparison is not empty
    assert check_routes(df, DIRECT_ROUTES, tmp_path, KW_DIRECT, dask_client) == {}


@pytest.mark.parametrize("estimator", ["ips", "snips", "calibrated-ips"])
def test_logged_routes_agree(estimator: str, tmp_path: Path, dask_client: Any) -> None:
    logged, _ = make_logged(7)
    kw = dict(KW_LOGGED, estimator=estimator)
    ref = oracle(logged, kw)
    assert isinstance(ref, dict) and {e["policy"] for e in ref["estimates"]} >= {"near", "far"}
    assert check_routes(logged, LOGGED_ROUTES, tmp_path, kw, dask_client) == {}


def test_logged_dr_routes_agree(tmp_path: Path, dask_client: Any) -> None:
    logged, fresh = make_logged(8)
    fresh_path = write(fresh, tmp_path / "fresh.csv")
    kw = dict(KW_LOGGED, estimator="stacked-dr", fresh_draws=str(fresh_path))
    ref = oracle(logged, kw)
    assert isinstance(ref, dict) and {e["policy"] for e in ref["estimates"]} >= {"near", "far"}
    assert check_routes(logged, LOGGED_ROUTES, tmp_path, kw, dask_client) == {}


# ---- defects found, one test each -----------------------------------------------------------
def _methods(rep: dict[str, Any] | str) -> list[tuple[str, str]]:
    assert isinstance(rep, dict), rep
    return [(e["policy"], e["method"]) for e in rep["estimates"]]


@pytest.mark.parametrize("reader", ["polars", "json"])
def test_jsonl_logged_long_format_keeps_logprobs(reader: str, tmp_path: Path) -> None:
    """F1: a long-format JSON Lines file of logged data (``logprob_base``, ``logprob[<t>]``
    fields) read in memory kept only the standard fields, so it was silently analysed as fresh
    draws of the logging policy alone (the targets vanished; CSV, Parquet and every out-of-core
    route estimated them). Both in-memory readers: polars, and the standard library's json for a
    small file read before polars is imported (run in a fresh process)."""
    import subprocess
    import sys

    logged, _ = make_logged(7)
    path = write(logged, tmp_path / "logged.jsonl")
    ref = oracle(logged, KW_LOGGED)
    if reader == "polars":
        got = run(str(path), "jsonl", tmp_path, KW_LOGGED, "memory")
    else:
        code = ("import json, sys, cje; assert 'polars' not in sys.modules\n"
                f"r = cje.analyze({str(path)!r}, judge_scale=(0, 10), label_scale=(0, 1))\n"
                "assert 'polars' not in sys.modules  # the json reader read it\n"
                "print(r.to_json())")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=tmp_path,
                             env={**__import__("os").environ, "PYTHONPATH": str(Path(cje.__file__).parents[1])})
        got = json.loads(out.stdout)
    assert _methods(got) == [("base", "on-policy (logged)"), ("near", "calibrated-ips"),
                             ("far", "calibrated-ips")]
    assert differences(ref, got) == []
