"""Study `active`: see :mod:`cje.studies.active` for the design (module docstring).

Writes ``simulations/results/study_active.{md,png,parquet}``; results already there are replaced
only with ``--force``. Usage (also ``cje simulate active``)::

    python simulations/study_active.py [--reps N] [--n-jobs 1] [--seed S] [--quick]
        [--out-dir DIR] [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("active", out_dir=Path(__file__).resolve().parent / "results")
