"""Study `plan`: see :mod:`cje.studies.plan` for the design (module docstring).

Writes ``simulations/results/study_plan.{md,png,parquet}``; results already there are replaced
only with ``--force``. Usage (also ``cje simulate plan``)::

    python simulations/study_plan.py [--reps N] [--n-jobs 1] [--seed S] [--quick]
        [--out-dir DIR] [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("plan", out_dir=Path(__file__).resolve().parent / "results")
