"""Benchmark: reading cje-eval fresh-draws JSONL with cje vs ``polars.read_ndjson`` (issue #18).

In one process, interleaved and repeated (best of ``--repeats``), on the same files:

* ``polars``: ``polars.read_ndjson`` of each ``<policy>_responses.jsonl`` (every field, schema
  inferred), concatenated — reading alone, no checks;
* ``cje.read_columns``: ``cje.data.read_columns`` of the directory — the reader
  (:func:`cje.readers.read_table` with the fields ``cje.load`` asks for) with its checks (ids
  as the exact text written, bad lines named), as columns;
* ``cje.load``: :func:`cje.load` of the directory — read, validated and coded into an
  :class:`~cje.data.EvalData` (what ``cje.analyze`` starts from).

Wall seconds and process CPU seconds (all threads: polars reads files in parallel) are printed
with the ratios to polars, and ``uptime``'s load average before and after. The files come from
``benchmarks/fresh_draws_files.py`` (written first when ``--data`` does not exist).

Usage::

    python benchmarks/read_jsonl.py [--data /tmp/cje-fresh-1m] [--rows-per-policy 1000000]
        [--repeats 3]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _uptime() -> str:
    with open("/proc/loadavg") as fh:
        return "load average " + ", ".join(fh.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/cje-fresh-1m"))
    ap.add_argument("--rows-per-policy", type=int, default=1_000_000)
    ap.add_argument("--text-scale", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=3)
    ns = ap.parse_args()
    if not ns.data.exists():
        sys.path.insert(0, str(HERE))
        from fresh_draws_files import write_fresh_draws

        write_fresh_draws(ns.data, ns.rows_per_policy, text_scale=ns.text_scale)
    import polars as pl

    import cje
    from cje.data import read_columns

    files = sorted(ns.data.glob("*_responses.jsonl"))
    size = sum(f.stat().st_size for f in files) / 2**20

    def polars_read() -> int:
        return pl.concat([pl.read_ndjson(f) for f in files], how="diagonal_relaxed").height

    def cje_read_columns() -> int:
        return len(read_columns(ns.data)["prompt_id"])

    def cje_load() -> int:
        return cje.load(ns.data).n_rows

    runs = {"polars": polars_read, "cje.read_columns": cje_read_columns, "cje.load": cje_load}
    best: dict[str, tuple[float, float]] = {}
    print(f"{len(files)} files, {size:.0f} MB, {_uptime()}", flush=True)
    for r in range(ns.repeats):
        for name, fn in runs.items():
            gc.collect()
            w, c = time.perf_counter(), time.process_time()
            rows = fn()
            w, c = time.perf_counter() - w, time.process_time() - c
            print(f"  run {r}: {name:16s} {rows:,} rows  {w:.2f} s wall  {c:.2f} s CPU", flush=True)
            bw, bc = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(bw, w), min(bc, c))
    pw, pc = best["polars"]
    print(f"best of {ns.repeats} ({_uptime()}, {os.cpu_count()} cores):")
    for name, (w, c) in best.items():
        print(f"  {name:16s} {w:6.2f} s wall ({w / pw:4.2f}x polars)   {c:6.2f} s CPU "
              f"({c / pc:4.2f}x polars)")


if __name__ == "__main__":
    main()
