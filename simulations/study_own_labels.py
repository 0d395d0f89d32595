"""Study `own_labels`: see :mod:`cje.studies.own_labels` for the design (module docstring).

Writes ``simulations/results/study_own_labels.{md,png,parquet}``; results already there are
replaced only with ``--force``. Usage (also ``cje simulate own_labels``)::

    python simulations/study_own_labels.py [--reps N] [--n-jobs 1] [--seed S] [--quick]
        [--out-dir DIR] [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("own_labels", out_dir=Path(__file__).resolve().parent / "results")
