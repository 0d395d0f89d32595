"""Study `monitor`: see :mod:`cje.studies.monitor` for the design (module docstring).

Writes ``simulations/results/study_monitor.{md,png,parquet}``; results already there are replaced
only with ``--force``. Usage::

    python simulations/study_monitor.py [--reps N] [--n-jobs 1] [--seed S] [--quick]
        [--out-dir DIR] [--resume] [--force]
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from cje.errors import CJEInputError
from cje.studies import add_arguments
from cje.studies.monitor import DEFAULT_SEED, run

if __name__ == "__main__":
    parser = add_arguments(argparse.ArgumentParser(description="cje.monitor: drift detection, "
                                                   "false alarms and coverage"),
                           out_dir=Path(__file__).resolve().parent / "results")
    ns = parser.parse_args()
    command = shlex.join(["python", "simulations/study_monitor.py", *sys.argv[1:]])
    try:
        md = run(ns.reps, n_jobs=ns.n_jobs, seed=DEFAULT_SEED if ns.seed is None else ns.seed,
                 quick=ns.quick, out_dir=ns.out_dir, backend=ns.backend, scheduler=ns.scheduler,
                 command=command, resume=ns.resume, force=ns.force)
    except CJEInputError as exc:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(exc).split())}\n")
    print(f"wrote {md}")
