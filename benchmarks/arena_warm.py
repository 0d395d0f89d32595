"""Arena stacked-DR warm call: CPU time of ``cje.analyze`` after one warm-up (issue #18).

Usage::

    PYTHONPATH=$PWD python benchmarks/arena_warm.py [--runs 20] [--profile 30]

Prints the median and best ``time.process_time`` of ``--runs`` warm calls, the split into reading
(``cje.load``) and analysis of the loaded data, and ``uptime``'s load average before and after.
With ``--profile N`` it also prints a cProfile of 5 warm calls (top N by tottime and cumtime).
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import statistics
import time
from pathlib import Path

import cje

ARENA = Path("/work/shared/data/arena_sample")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--profile", type=int, default=0)
    ap.add_argument("--data", default=str(ARENA))
    ns = ap.parse_args()
    logged, fresh = ns.data + "/logged_data.jsonl", ns.data + "/fresh_draws"
    kw = dict(fresh_draws=fresh, estimator="stacked-dr")
    print("cje:", cje.__file__)
    load_before = os.getloadavg()
    rep = cje.analyze(logged, **kw)  # warm-up
    cpus, reads, analyses = [], [], []
    for _ in range(ns.runs):
        c = time.process_time()
        rep = cje.analyze(logged, **kw)
        cpus.append(time.process_time() - c)
        c = time.process_time()
        data = cje.load(logged), cje.load(fresh)
        reads.append(time.process_time() - c)
        c = time.process_time()
        cje.analyze(data[0], fresh_draws=data[1], estimator="stacked-dr")
        analyses.append(time.process_time() - c)
    load_after = os.getloadavg()
    med, best = statistics.median, min
    print(f"warm call CPU s: median {med(cpus):.4f} best {best(cpus):.4f} (n={ns.runs})")
    print(f"  read  (cje.load x2): median {med(reads):.4f} best {best(reads):.4f}")
    print(f"  analysis of loaded:  median {med(analyses):.4f} best {best(analyses):.4f}")
    print(f"load average (1, 5, 15 min) before {load_before} after {load_after}")
    print("estimates:", [(e.policy, e.estimate, e.ci_low, e.ci_high) for e in rep.estimates])
    if ns.profile:
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            cje.analyze(logged, **kw)
        prof.disable()
        out = io.StringIO()
        st = pstats.Stats(prof, stream=out)
        st.sort_stats("tottime").print_stats(ns.profile)
        st.sort_stats("cumulative").print_stats(ns.profile)
        print(out.getvalue())


if __name__ == "__main__":
    main()
