"""Benchmark: wall time and peak memory of ``cje.analyze`` (direct mode, full OUA).

Two measurements, written to ``benchmarks/results.md`` (section "Direct"):

1. Scaling: 4 policies, 10% oracle labels, n = 10^4, 10^5, 10^6 rows from ``cje.synthetic``.
   Each n runs in a fresh subprocess: the input is built first (a pandas DataFrame with string
   prompt ids, as a user would hold it), then ``cje.analyze`` is timed (best and median of
   ``--repeats``) and its peak memory is measured as the rise of the process's peak RSS over
   the RSS with the input loaded.
2. Side by side on the real Arena sample (4 fresh-draws files, 480 labels): ``cje.analyze`` of
   the directory vs the ``cje-eval`` package's default ``analyze_dataset(fresh_draws_dir=…)``,
   both reading the same files, each timed in its own process after one untimed warm-up run.
   ``cje-eval`` runs from its own virtualenv (``--cje-eval-python``); see
   ``benchmarks/cje_eval_arena.py`` for how to create it.

The bare-numpy reference (``benchmarks/bare_direct_10m.py``: the same statistics written
plainly) is timed in the same child process on the same DataFrame, alternating with
``cje.analyze`` (unless ``--no-bare``); the table gives both in CPU seconds (best of the
repeats), their ratio, and the peak RSS of the process (whole, and over the input) with the
high-water mark reset (``/proc/self/clear_refs``) before the ``cje.analyze`` calls. The load
average is printed next to every row. 10^7 rows: ``--sizes 10000000`` (about 3 GB of RAM).

Usage::

    python benchmarks/direct.py [--sizes 10000 100000 1000000] [--repeats 3]
        [--cje-eval-python /work/venvs/cje-eval/bin/python] [--no-bare] [--no-covariates]
        [--no-arena] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARENA = HERE.parents[1] / "shared" / "data" / "arena_sample"

_CHILD = r"""
import json, os, resource, sys, time, warnings
import numpy as np
import cje

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def hwm_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False

def load():
    with open("/proc/loadavg") as fh:
        return fh.read().split()[0]

mode, arg, repeats, bare = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
cov = sys.argv[5:]
bare_fn = None
if mode == "synthetic":
    n = int(arg)
    pols = cje.synthetic.default_policies()[:4]
    sim = cje.synthetic.make_direct_eval(n // 4, policies=pols, oracle_fraction=0.10, rng=0)
    data, kw = sim.data, dict(judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                              covariates=cov)
    if bare and not cov:
        sys.path.insert(0, os.environ["CJE_BENCH_DIR"])
        from bare_direct_10m import bare_direct
        bare_fn = lambda: bare_direct(data, sim.judge_scale, sim.label_scale)
else:
    data, kw = arg, {}
warnings.simplefilter("ignore")
if mode != "synthetic":
    cje.analyze(data, **kw)  # warm-up
base = rss_mb()
times, cpus, bare_times, bare_cpus, peaks = [], [], [], [], []
loads = [load()]
for r in range(repeats):
    reset_ok = reset_hwm()
    t, c = time.perf_counter(), time.process_time()
    rep = cje.analyze(data, **kw)
    times.append(time.perf_counter() - t)
    cpus.append(time.process_time() - c)
    peaks.append(hwm_mb() if reset_ok else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    cal_mode = rep.calibration.mode
    del rep  # before the bare run
    if bare_fn is not None:
        t, c = time.perf_counter(), time.process_time()
        bare_fn()
        bare_times.append(time.perf_counter() - t)
        bare_cpus.append(time.process_time() - c)
    loads.append(load())
peak = min(peaks)
print(json.dumps({"times": times, "cpus": cpus, "bare_times": bare_times, "bare_cpus": bare_cpus,
                  "peak_mb": peak - base, "peak_rss_mb": peak, "rss_input_mb": base,
                  "loads": loads,
                  "mode": cal_mode}))
"""


def _run_child(mode: str, arg: str, repeats: int, covariates: tuple[str, ...] = (),
               bare: bool = False) -> dict:
    out = subprocess.run(
        # -P: ``python -c`` would put the working directory first on sys.path, so a run from
        # inside another checkout would time that checkout's cje, not the one PYTHONPATH gives
        [sys.executable, "-P", "-c", _CHILD, mode, arg, str(repeats), "1" if bare else "0",
         *covariates],
        check=True, capture_output=True, text=True, env={**os.environ, "CJE_BENCH_DIR": str(HERE)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cje_eval(python: str, repeats: int) -> dict | None:
    if not Path(python).exists() or not ARENA.is_dir():
        return None
    out = subprocess.run(
        [python, str(HERE / "cje_eval_arena.py"), "--data", str(ARENA), "--repeats", str(repeats)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cje-eval-python", default="/work/venvs/cje-eval/bin/python")
    ap.add_argument("--no-bare", action="store_true",
                    help="do not time the bare-numpy reference (benchmarks/bare_direct_10m.py)")
    ap.add_argument("--no-covariates", action="store_true",
                    help="skip the two-stage run with a covariate at the largest size")
    ap.add_argument("--no-arena", action="store_true",
                    help="skip the side-by-side run on the Arena sample")
    ap.add_argument("--no-write", action="store_true", help="print only; do not edit results.md")
    ns = ap.parse_args()

    lines = [
        "## Direct: `cje.analyze` with full OUA (4 policies, 10% labels)",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}. Command: "
        f"`python benchmarks/direct.py --sizes {' '.join(map(str, ns.sizes))} --repeats "
        f"{ns.repeats}`. Recorded {time.strftime('%Y-%m-%d %H:%M')}. CPU seconds are the "
        "process's (best of the repeats); the bare-numpy reference (`benchmarks/bare_direct_10m.py`"
        ", the same statistics on the same DataFrame) runs in the same process, alternating. "
        "Peak RSS: the process's high-water mark during the `cje.analyze` call (reset before it), "
        "whole and over the RSS with the input loaded.",
        "",
        "| rows | covariates | best s | median s | CPU s | bare CPU s | ratio (CPU) "
        "| peak RSS (MB) | peak over input (MB) | input RSS (MB) | calibration | load average |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    configs = [(n, ()) for n in ns.sizes]
    if not ns.no_covariates:
        configs.append((max(ns.sizes), ("response_length",)))
    for n, cov in configs:
        r = _run_child("synthetic", str(n), ns.repeats, cov, bare=not ns.no_bare)
        cpu = min(r["cpus"])
        bare = f"{min(r['bare_cpus']):.3f}" if r["bare_cpus"] else "—"
        ratio = f"{cpu / min(r['bare_cpus']):.2f}" if r["bare_cpus"] else "—"
        lines.append(
            f"| {n:,} | {', '.join(cov) or '—'} | {min(r['times']):.3f} | "
            f"{statistics.median(r['times']):.3f} | {cpu:.3f} | {bare} | {ratio} | "
            f"{r['peak_rss_mb']:.0f} | {r['peak_mb']:.0f} | {r['rss_input_mb']:.0f} "
            f"| {r['mode']} | {' → '.join(r['loads'])} |"
        )
        print(lines[-1], flush=True)

    if ARENA.is_dir() and not ns.no_arena:
        ours = _run_child("path", str(ARENA / "fresh_draws"), max(ns.repeats, 20))
        theirs = _cje_eval(ns.cje_eval_python, max(ns.repeats, 20))
        t_ours = statistics.median(ours["times"])
        lines += [
            "",
            "### Arena sample, side by side (reading the same 4 fresh-draws files)",
            "",
            "| package | median s | runs |",
            "|---|---:|---:|",
            f"| cje {_version()} | {t_ours:.4f} | {len(ours['times'])} |",
        ]
        if theirs is not None:
            t_theirs = theirs["median_seconds"]
            lines += [
                f"| cje-eval {theirs['version']} | {t_theirs:.4f} | {len(theirs['seconds'])} |",
                "",
                f"Speed-up: **{t_theirs / t_ours:.1f}×** (cje-eval median / cje median).",
            ]
        else:
            lines.append("\n(cje-eval virtualenv not found: side-by-side not measured.)")
        print("\n".join(lines[-8:]))

    if not ns.no_write:
        _write_section(HERE / "results.md", "Direct", "\n".join(lines))


def _version() -> str:
    import cje

    return cje.__version__


def _write_section(path: Path, key: str, body: str) -> None:
    """Replace (or append) the section that starts with '## <key>' in results.md."""
    header = "# Benchmark results\n\nRegenerate each section with the script named in it.\n"
    text = path.read_text() if path.exists() else header
    start = text.find(f"## {key}")
    if start >= 0:
        nxt = text.find("\n## ", start + 3)
        text = text[:start] + body + ("\n" + text[nxt + 1 :] if nxt >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)


if __name__ == "__main__":
    main()
