"""Start-up cost of cje: ``import cje``, the CLI on the Arena fresh draws, and a first call.

Every figure is the CPU time (user + system) of a whole fresh Python process, read with
``resource.getrusage(RUSAGE_CHILDREN)`` around each child, so the two cores being shared with other
work inflates it much less than wall time. The cje commands and their bare references run
interleaved in one loop (each round runs every command once), so a ratio compares runs taken under
the same load. Rows:

* ``python -c "pass"`` — the interpreter alone;
* ``python -c "import numpy"`` — the floor any numpy program pays;
* ``python -c "import cje"``;
* bare numpy script — reads the same fresh-draws files with :mod:`json`, calibrates the judge
  scores with a pure-Python isotonic fit on the labelled rows and prints each policy's mean and a
  normal-approximation standard error: the least a program doing this job with numpy costs;
* ``python -m cje.cli analyze <fresh draws>`` — the whole CLI (read, analyse, print the summary);
* first ``cje.analyze(<fresh draws>)`` — ``import cje`` plus one call, in a fresh process; the
  in-process CPU of import + call (``time.process_time`` from the first line of the script, so
  without the interpreter's own start-up) is reported beside it.

Bytecode: an installed package has its modules compiled (``.pyc``); a shell with
``PYTHONDONTWRITEBYTECODE=1`` (as on the development machine) compiles every module of the source
tree again in each process, which adds ~0.05 s to the cje rows. By default the children run with
bytecode written to and read from a private cache (``PYTHONPYCACHEPREFIX`` in a temporary
directory, filled by one warm-up round), as an installed package; ``--no-bytecode`` measures the
other case.

Usage::

    python benchmarks/startup.py [--runs 7] [--data /work/shared/data/arena_sample/fresh_draws]
                                 [--no-bytecode]

Run from the repository root (the script puts the repository first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path("/work/shared/data/arena_sample/fresh_draws")

BARE = r"""
import json, sys
from pathlib import Path
import numpy as np

def iso(x, y):
    # pool-adjacent-violators on the labels sorted by judge score (ties pooled first)
    o = np.argsort(x, kind="stable")
    x, y = x[o], y[o]
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])
    w = np.diff(np.r_[starts, x.size]).astype(float)
    m = np.add.reduceat(y, starts) / w
    vals, wts, cnt = [], [], []
    for v, ww in zip(m.tolist(), w.tolist()):
        vals.append(v); wts.append(ww); cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, c2 = vals.pop(), wts.pop(), cnt.pop()
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / (wts[-1] + w2); wts[-1] += w2; cnt[-1] += c2
    fit = np.repeat(vals, cnt)
    return x[starts], fit

cols = {"policy": [], "prompt_id": [], "s": [], "y": []}
for f in sorted(Path(sys.argv[1]).glob("*_responses.jsonl")):
    pol = f.name[: -len("_responses.jsonl")]
    with open(f, "rb") as fh:
        for line in fh:
            if line.strip():
                r = json.loads(line)
                cols["policy"].append(pol); cols["prompt_id"].append(r["prompt_id"])
                cols["s"].append(r["judge_score"]); y = r.get("oracle_label")
                cols["y"].append(float("nan") if y is None else y)
pol = np.array(cols["policy"]); s = np.array(cols["s"], float); y = np.array(cols["y"], float)
lab = ~np.isnan(y)
kx, ky = iso(s[lab], y[lab])
r = np.interp(s, kx, ky)
for p in np.unique(pol):
    v = r[pol == p]
    print(p, round(float(v.mean()), 4), round(float(v.std(ddof=1) / np.sqrt(v.size)), 4))
"""

FIRST_CALL = r"""
import time
t0 = time.process_time()
import sys
import cje
r = cje.analyze(sys.argv[1])
print("INPROC", time.process_time() - t0)
"""


def _child_cpu(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # cwd: `python -c` and `-m` put the working directory before PYTHONPATH on sys.path
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, out


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover - no uptime binary
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=7, help="rounds (each runs every command once)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a cje-eval fresh-draws directory")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="compile every module in each process (PYTHONDONTWRITEBYTECODE=1)")
    args = ap.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    cache = tempfile.TemporaryDirectory(prefix="cje-startup-pycache-")
    if args.no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        bytecode = "none: every module compiled in each process (PYTHONDONTWRITEBYTECODE=1)"
    else:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = cache.name
        bytecode = "cached, as an installed package (a private PYTHONPYCACHEPREFIX, one warm-up round)"
    py = sys.executable
    data = str(args.data)
    cmds = {
        'python -c "pass"': [py, "-c", "pass"],
        'python -c "import numpy"': [py, "-c", "import numpy"],
        'python -c "import cje"': [py, "-c", "import cje"],
        "bare numpy script (json read, isotonic, means)": [py, "-c", BARE, data],
        "cje analyze <fresh draws> (CLI, whole process)": [py, "-m", "cje.cli", "analyze", data],
        "first cje.analyze(<fresh draws>) (whole process)": [py, "-c", FIRST_CALL, data],
    }
    times: dict[str, list[float]] = {k: [] for k in cmds}
    inproc: list[float] = []
    for cmd in cmds.values():  # warm-up: bytecode cache, file cache
        _child_cpu(cmd, env)
    up_before = _uptime()
    for _ in range(max(args.runs, 1)):
        for name, cmd in cmds.items():
            cpu, out = _child_cpu(cmd, env)
            times[name].append(cpu)
            if out.startswith("INPROC") or "\nINPROC" in out:
                inproc.append(float(out.rsplit("INPROC", 1)[1].split()[0]))
    up_after = _uptime()
    bare = min(times["bare numpy script (json read, isotonic, means)"])
    numpy_floor = min(times['python -c "import numpy"'])
    print(f"Data: `{data}`. Python {sys.version.split()[0]}, {args.runs} rounds, CPU s (user + sys) "
          f"of the whole child process. Bytecode: {bytecode}.\n")
    print(f"- `uptime` before: `{up_before}`")
    print(f"- `uptime` after: `{up_after}`\n")
    print("| command | best CPU s | median CPU s | best / bare numpy script | best / import numpy |")
    print("|---|---:|---:|---:|---:|")
    for name, ts in times.items():
        print(f"| {name} | {min(ts):.3f} | {statistics.median(ts):.3f} | {min(ts) / bare:.2f} | "
              f"{min(ts) / numpy_floor:.2f} |")
    if inproc:
        print(f"| first cje.analyze: import + call, in-process CPU | {min(inproc):.3f} | "
              f"{statistics.median(inproc):.3f} | {min(inproc) / bare:.2f} | "
              f"{min(inproc) / numpy_floor:.2f} |")
    cache.cleanup()


if __name__ == "__main__":
    main()
