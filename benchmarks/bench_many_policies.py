"""Benchmark: ``cje analyze data.csv --report r.html`` with many policies (issue #19).

The data: ``cje.synthetic.make_direct_eval`` with P policies of random quality
(``N(0, 0.4²)``, seed 0) on 20 prompts, one response per (prompt, policy), 10% oracle labels,
written to a CSV as a user would hold it. The command is run in a fresh process under
``/usr/bin/time -v`` (wall time and peak RSS of the whole CLI process, Python start-up and
imports included). Target: 1,000 policies × 20 prompts in < 60 s and < 2 GB peak RSS.

With ``--profile`` the same command runs under ``cProfile`` and the 25 most expensive functions
(cumulative time) are printed.

Usage::

    python benchmarks/bench_many_policies.py [--policies 50 200 1000] [--prompts 20]
        [--profile] [--write]

``--write`` appends a dated section to ``benchmarks/results.md``; raw numbers go to
``benchmarks/results_many_policies.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def make_data(n_policies: int, n_prompts: int, path: Path, seed: int = 0) -> None:
    """Write the benchmark CSV: ``n_policies`` random-quality policies on ``n_prompts`` prompts."""
    import numpy as np

    import cje
    from cje.synthetic.direct import PolicySpec

    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, 0.4, n_policies)
    pols = [PolicySpec(f"policy_{i:04d}", quality=float(q)) for i, q in enumerate(quality)]
    sim = cje.synthetic.make_direct_eval(n_prompts, policies=pols, oracle_fraction=0.10, rng=seed)
    sim.data[["prompt_id", "policy", "judge_score", "oracle_label"]].to_csv(path, index=False)


def _cli(args: list[str], profile: Path | None = None) -> list[str]:
    if profile is None:
        return [sys.executable, "-m", "cje.cli", *args]
    return [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "cje.cli", *args]


def run_one(n_policies: int, n_prompts: int, workdir: Path, profile: bool = False) -> dict:
    """Generate the data, run the CLI under ``/usr/bin/time -v``; wall s and peak RSS (MB)."""
    data = workdir / f"data_{n_policies}x{n_prompts}.csv"
    make_data(n_policies, n_prompts, data)
    report = workdir / f"r_{n_policies}.html"
    args = ["analyze", str(data), "--judge-scale", "0", "10", "--label-scale", "1", "5",
            "--report", str(report), "--no-progress", "--out", str(workdir / "out.txt")]
    prof = workdir / f"prof_{n_policies}.out" if profile else None
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               MPLBACKEND="Agg")
    proc = subprocess.run(["/usr/bin/time", "-v", *_cli(args, prof)], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"cje analyze failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    cpu_u = re.search(r"User time \(seconds\): (\S+)", proc.stderr)
    cpu_s = re.search(r"System time \(seconds\): (\S+)", proc.stderr)
    assert wall and rss and cpu_u and cpu_s, proc.stderr[-2000:]
    parts = [float(x) for x in wall.group(1).split(":")]
    seconds = sum(x * 60 ** i for i, x in enumerate(reversed(parts)))
    out = {
        "policies": n_policies, "prompts": n_prompts, "rows": n_policies * n_prompts,
        "pairs": n_policies * (n_policies - 1) // 2, "wall_s": round(seconds, 2),
        "cpu_s": round(float(cpu_u.group(1)) + float(cpu_s.group(1)), 2),
        "peak_rss_mb": round(int(rss.group(1)) / 1024), "report_mb": round(report.stat().st_size / 2**20, 2),
        "profiled": profile,
    }
    if prof is not None:
        import pstats

        print(f"--- cProfile, {n_policies} policies (cumulative) ---")
        pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(25)
        print(f"--- cProfile, {n_policies} policies (own time) ---")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(15)
    return out


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policies", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--prompts", type=int, default=20)
    ap.add_argument("--profile", action="store_true", help="run under cProfile and print the top")
    ap.add_argument("--write", action="store_true", help="append the results to results.md")
    ns = ap.parse_args(argv)
    before = _uptime()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for p in ns.policies:
            r = run_one(p, ns.prompts, Path(d), profile=ns.profile)
            print(json.dumps(r), flush=True)
            rows.append(r)
    after = _uptime()
    if not ns.write:
        return 0
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    (HERE / "results_many_policies.json").write_text(json.dumps(
        {"recorded": stamp, "uptime_before": before, "uptime_after": after,
         "python": platform.python_version(), "rows": rows}, indent=2) + "\n")
    lines = [
        "",
        "## Many policies: `cje analyze data.csv --report r.html` (20 prompts, 10% labels)",
        "",
        f"Machine: {os.cpu_count()} cores (shared with other work), Python {platform.python_version()}. "
        f"Command: `python benchmarks/bench_many_policies.py --policies "
        f"{' '.join(map(str, ns.policies))} --write`, {stamp}. Data: `cje.synthetic.make_direct_eval` "
        "with P policies of quality N(0, 0.4²) on 20 prompts, one response each, 10% oracle labels, "
        "as a CSV. Each run is one fresh `python -m cje.cli analyze … --report r.html` process under "
        "`/usr/bin/time -v` (start-up, CSV read, analysis, figures and the HTML report). Target: "
        "1,000 policies in < 60 s and < 2 GB peak RSS. Raw numbers: "
        "`benchmarks/results_many_policies.json`.",
        f"`uptime` before: `{before}`; after: `{after}`.",
        "",
        "| policies | rows | pairs | wall s | CPU s | peak RSS (MB) | report (MB) | < 60 s and < 2 GB |",
        "|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ok = "yes" if r["wall_s"] < 60 and r["peak_rss_mb"] < 2048 else "NO"
        lines.append(f"| {r['policies']:,} | {r['rows']:,} | {r['pairs']:,} | {r['wall_s']:.1f} | "
                     f"{r['cpu_s']:.1f} | {r['peak_rss_mb']:,} | {r['report_mb']:.2f} | {ok} |")
    with open(HERE / "results.md", "a") as fh:
        fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
