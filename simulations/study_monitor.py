"""Study `monitor`: see :mod:`cje.studies.monitor` for the design (module docstring).

Writes ``simulations/results/study_monitor.{md,png,parquet}``; results already there are replaced
only with ``--force``. Usage (also ``cje simulate monitor``)::

    python simulations/study_monitor.py [--reps N] [--n-jobs 1] [--seed S] [--quick]
        [--out-dir DIR] [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("monitor", out_dir=Path(__file__).resolve().parent / "results")
