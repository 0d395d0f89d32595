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

Usage::

    python benchmarks/direct.py [--sizes 10000 100000 1000000] [--repeats 3]
        [--cje-eval-python /work/venvs/cje-eval/bin/python] [--no-write]
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
import json, resource, sys, time, warnings
import numpy as np
import cje

def rss_mb():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

mode, arg, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
cov = sys.argv[4:]
if mode == "synthetic":
    n = int(arg)
    pols = cje.synthetic.default_policies()[:4]
    sim = cje.synthetic.make_direct_eval(n // 4, policies=pols, oracle_fraction=0.10, rng=0)
    data, kw = sim.data, dict(judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                              covariates=cov)
    del sim
else:
    data, kw = arg, {}
base = rss_mb()
times = []
warnings.simplefilter("ignore")
for r in range(repeats + (mode != "synthetic")):
    t = time.perf_counter()
    rep = cje.analyze(data, **kw)
    times.append(time.perf_counter() - t)
if mode != "synthetic":
    times = times[1:]  # first run is the warm-up
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"times": times, "peak_mb": peak - base, "rss_input_mb": base,
                  "mode": rep.calibration.mode,
                  "estimates": {e.policy: [e.estimate, e.ci_low, e.ci_high] for e in rep.estimates}}))
"""


def _run_child(mode: str, arg: str, repeats: int, covariates: tuple[str, ...] = ()) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, arg, str(repeats), *covariates],
        check=True, capture_output=True, text=True,
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
    ap.add_argument("--no-write", action="store_true", help="print only; do not edit results.md")
    ns = ap.parse_args()

    lines = [
        "## Direct: `cje.analyze` with full OUA (4 policies, 10% labels)",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}. Command: "
        f"`python benchmarks/direct.py --repeats {ns.repeats}`. Recorded "
        f"{time.strftime('%Y-%m-%d')}.",
        "",
        "| rows | covariates | best s | median s | peak memory over input (MB) | input RSS (MB) "
        "| calibration |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    configs = [(n, ()) for n in ns.sizes] + [(max(ns.sizes), ("response_length",))]
    for n, cov in configs:
        r = _run_child("synthetic", str(n), ns.repeats, cov)
        lines.append(
            f"| {n:,} | {', '.join(cov) or '—'} | {min(r['times']):.3f} | "
            f"{statistics.median(r['times']):.3f} | {r['peak_mb']:.0f} | {r['rss_input_mb']:.0f} "
            f"| {r['mode']} |"
        )
        print(lines[-1], flush=True)

    if ARENA.is_dir():
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
