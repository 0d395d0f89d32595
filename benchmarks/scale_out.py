"""Direct analysis of a partitioned Parquet data set by each engine: wall time and peak memory.

Writes (once; reused when present) a data set of ``--rows`` rows in files of ``--rows-per-file``
rows: 4 policies, one response per prompt and policy, judge scores 0–10 (integers), 10% of the
rows labelled 1–5. It is generated file by file, never whole in memory. Then each engine runs
``cje.analyze(directory, engine=...)`` (direct mode, full OUA jackknife, K = 5) in a subprocess
of its own under ``/usr/bin/time -v``, which gives the wall time and the peak resident memory
(``Maximum resident set size``) of that process. Dask runs a ``LocalCluster`` of 2 workers as
threads in that process (``processes=False``), so its peak is the whole job's; with worker
processes the peak would be split over processes that ``time`` does not add up.

The in-memory engine runs beside the others when ``--memory`` says so (by default when the data
has at most 2·10^7 rows: at 10^8 it needs ~32 GB, more than this machine has).

``--shape logged`` writes logged data instead (off-policy: one row per prompt of the logging
policy with ``logprob_base`` and three targets' ``logprob[...]`` of raw-weight ESS about 90%,
50% and 18%, 10% labelled, judge scores on a 0.05 grid; ``make_offpolicy_eval`` file by file)
and runs ``--estimator`` (default calibrated IPS) on it.

Usage::

    python benchmarks/scale_out.py --rows 10000000 [--engines memory,polars,dask] [--dir /tmp/x]
    python benchmarks/scale_out.py --shape logged --rows 1000000 --estimator snips

Results are printed and appended to ``benchmarks/results_scale_out.json`` with the machine's
load average before each run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("base", "brief", "careful", "verbose")


def write_dataset(where: Path, rows: int, rows_per_file: int, seed: int = 0) -> list[Path]:
    """The data set, one file per ``rows_per_file`` rows (prompts never span two files' worth of
    memory: each file is generated and written on its own)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    where.mkdir(parents=True, exist_ok=True)
    done = where / "_DONE"
    files = sorted(where.glob("part-*.parquet"))
    if done.exists() and done.read_text() == f"{rows} {rows_per_file} {seed}":
        return files
    for f in files:
        f.unlink()
    P = len(POLICIES)
    prompts_per_file = rows_per_file // P
    n_files = -(-rows // rows_per_file)
    out = []
    for i in range(n_files):
        rng = np.random.default_rng([seed, i])
        g = min(prompts_per_file, rows // P - i * prompts_per_file)
        first = i * prompts_per_file
        pid = np.char.add("p", np.arange(first, first + g).astype(str))
        quality = rng.normal(0, 1, g)
        cols = {"prompt_id": [], "policy": [], "judge_score": [], "oracle_label": []}
        for j, pol in enumerate(POLICIES):
            q = quality + 0.15 * j + rng.normal(0, 0.5, g)
            score = np.clip(np.round(5 + 1.8 * q + rng.normal(0, 1, g)), 0, 10)
            label = np.clip(np.round(3 + q + rng.normal(0, 0.6, g)), 1, 5)
            lab = rng.random(g) < 0.10
            cols["prompt_id"].append(pid)
            cols["policy"].append(np.full(g, pol))
            cols["judge_score"].append(score)
            cols["oracle_label"].append(np.where(lab, label, np.nan))
        table = pa.table({
            "prompt_id": pa.array(np.concatenate(cols["prompt_id"]).astype(object), pa.string()),
            "policy": pa.array(np.concatenate(cols["policy"]).astype(object), pa.string()),
            "judge_score": np.concatenate(cols["judge_score"]),
            "oracle_label": pa.array(np.concatenate(cols["oracle_label"]), from_pandas=True),
        })
        path = where / f"part-{i:04d}.parquet"
        pq.write_table(table, path)
        out.append(path)
    done.write_text(f"{rows} {rows_per_file} {seed}")
    return out


def write_logged(where: Path, rows: int, rows_per_file: int, seed: int = 0) -> list[Path]:
    """Logged data, one file per ``rows_per_file`` rows, each from its own
    ``make_offpolicy_eval`` (prompt ids prefixed by the file number)."""
    import polars as pl

    import cje

    where.mkdir(parents=True, exist_ok=True)
    done = where / "_DONE"
    files = sorted(where.glob("part-*.parquet"))
    if done.exists() and done.read_text() == f"logged {rows} {rows_per_file} {seed}":
        return files
    for f in files:
        f.unlink()
    out, fresh = [], []
    for i in range(-(-rows // rows_per_file)):
        g = min(rows_per_file, rows - i * rows_per_file)
        sim = cje.synthetic.make_offpolicy_eval(g, rng=np.random.default_rng([seed, i]),
                                                targets=LOGGED_TARGETS)
        prefix = (pl.lit(f"f{i:04d}-") + pl.col("prompt_id")).alias("prompt_id")
        df = pl.from_pandas(sim.logged).with_columns(prefix)
        path = where / f"part-{i:04d}.parquet"
        df.write_parquet(path)
        out.append(path)
        fresh.append(pl.from_pandas(sim.fresh).with_columns(prefix))
    # the targets' fresh draws (the DR family holds them in memory), one file beside the logs
    pl.concat(fresh).write_parquet(where.parent / f"{where.name}_fresh.parquet")
    done.write_text(f"logged {rows} {rows_per_file} {seed}")
    return out


#: The logged benchmark's targets (tilts: raw-weight ESS about 90%, 50%, 18%).
LOGGED_TARGETS = {"near": 0.3, "mid": 0.8, "far": 1.2}

_CHILD = r"""
import json, sys, time
import cje
engine, path, shape, estimator = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = None
if engine == "dask":
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                           dashboard_address=None)
    client = Client(cluster)
t = time.perf_counter(); c = time.process_time()
if shape == "logged":
    dr = estimator in ("dr-cpo", "tmle", "mrdr", "stacked-dr")
    rep = cje.analyze(path, engine=engine, client=client, judge_scale=(0, 1), label_scale=(0, 1),
                      mode="monotone", estimator=estimator, progress=False,
                      fresh_draws=path.rstrip("/") + "_fresh.parquet" if dr else None)
else:
    rep = cje.analyze(path, engine=engine, client=client, judge_scale=(0, 10),
                      label_scale=(1, 5), mode="monotone", progress=False)
wall = time.perf_counter() - t
out = {"wall_s": wall, "cpu_s_main": time.process_time() - c,
       "estimates": {e.policy: [e.estimate, e.se, e.var_cal, e.ci_low, e.ci_high]
                     for e in rep.estimates},
       "contrasts": [[p.policy_a, p.policy_b, p.estimate, p.se] for p in rep.pairs],
       "n": sum(e.n for e in rep.estimates)}
print("RESULT" + json.dumps(out))
"""


def run_engine(engine: str, path: Path, shape: str = "direct", estimator: str = "direct") -> dict:
    """One engine in a subprocess under /usr/bin/time -v."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    load = os.getloadavg()
    proc = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", _CHILD, engine, str(path),
                           shape, estimator], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"engine": engine, "error": proc.stderr[-2000:], "load_before": load}
    res = json.loads(proc.stdout.rsplit("RESULT", 1)[1])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", proc.stderr).group(1).strip()
    user = float(re.search(r"User time \(seconds\): ([\d.]+)", proc.stderr).group(1))
    system = float(re.search(r"System time \(seconds\): ([\d.]+)", proc.stderr).group(1))
    return {"engine": engine, "analyze_wall_s": round(res["wall_s"], 2),
            "process_wall": wall, "cpu_s": round(user + system, 1),
            "peak_rss_gb": round(rss / 2**20, 2), "load_before": [round(x, 2) for x in load],
            "n": res["n"], "estimates": res["estimates"], "contrasts": res["contrasts"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    ap.add_argument("--dir", default="/tmp/cje_scale_out")
    ap.add_argument("--shape", choices=("direct", "logged"), default="direct")
    ap.add_argument("--estimator", default="calibrated-ips",
                    help="logged shape: ips, snips, calibrated-ips, or a DR estimator (dr-cpo, "
                         "tmle, mrdr, stacked-dr: the fresh draws, written beside the logs, "
                         "are held in memory)")
    ap.add_argument("--engines", default=None,
                    help="comma-separated (default: memory,polars,dask; memory only up to 2e7)")
    args = ap.parse_args()
    t = time.perf_counter()
    if args.shape == "logged":
        where = Path(args.dir) / f"logged_rows_{args.rows}"
        files = write_logged(where, args.rows, args.rows_per_file)
    else:
        where = Path(args.dir) / f"rows_{args.rows}"
        files = write_dataset(where, args.rows, args.rows_per_file)
    size = sum(f.stat().st_size for f in files)
    print(f"data: {len(files)} files, {size / 2**20:.0f} MB, written/checked in "
          f"{time.perf_counter() - t:.1f} s", flush=True)
    engines = args.engines.split(",") if args.engines else (
        ["memory", "polars", "dask"] if args.rows <= 20_000_000 else ["polars", "dask"])
    results = []
    for eng in engines:
        r = run_engine(eng, where, args.shape,
                       args.estimator if args.shape == "logged" else "direct")
        results.append(r)
        if "error" in r:
            print(f"{eng:7s} FAILED: {r['error'][-500:]}", flush=True)
            continue
        print(f"{eng:7s} analyze {r['analyze_wall_s']:7.2f} s  process {r['process_wall']:>8s}  "
              f"cpu {r['cpu_s']:6.1f} s  peak RSS {r['peak_rss_gb']:5.2f} GB  "
              f"(load before {r['load_before']})", flush=True)
    ok = [r for r in results if "error" not in r]
    agreement = {}
    if len(ok) > 1:  # the engines agree (var_cal: to the variance it is part of, se²; see
        ref = ok[0]  # tests/test_streaming.py)
        for r in ok[1:]:
            worst, worst_cal = 0.0, 0.0
            for pol, (est, se, var_cal, lo, hi) in ref["estimates"].items():
                e2, se2, vc2, lo2, hi2 = r["estimates"][pol]
                for a, b in ((est, e2), (se, se2), (lo, lo2), (hi, hi2)):
                    worst = max(worst, abs(a - b) / max(abs(a), 1e-300))
                worst_cal = max(worst_cal, abs(var_cal - vc2) / se**2)
            for (*_, ea, sa), (*_, eb, sb) in zip(ref["contrasts"], r["contrasts"], strict=True):
                worst = max(worst, abs(ea - eb) / max(abs(ea), 1e-300),
                            abs(sa - sb) / max(abs(sa), 1e-300))
            agreement[r["engine"]] = {"rel_estimates_se_ci_contrasts": worst,
                                      "var_cal_over_se2": worst_cal}
            print(f"{r['engine']} vs {ref['engine']}: estimates, SEs, CIs, contrasts to "
                  f"{worst:.1e} relative; var_cal to {worst_cal:.1e} of se²")
    record = {"shape": args.shape, "rows": args.rows, "files": len(files),
              **({"estimator": args.estimator} if args.shape == "logged" else {}),
              "bytes": size, "nproc": os.cpu_count(),
              "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "results": [{k: v for k, v in r.items() if k not in ("estimates", "contrasts")}
                          for r in results], "agreement": agreement}
    out = ROOT / "benchmarks" / "results_scale_out.json"
    old = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps(old + [record], indent=1) + "\n")


if __name__ == "__main__":
    main()
