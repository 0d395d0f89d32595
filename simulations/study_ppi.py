"""Study `ppi`: see :mod:`cje.studies.ppi` for the design (module docstring).

Writes ``simulations/results/study_ppi.{md,png,parquet}``; results already there are
replaced only with ``--force``. Usage::

    python simulations/study_ppi.py [--reps N] [--n-jobs 2] [--seed S] [--quick]
        [--backend dask --scheduler tcp://HOST:8786] [--out-dir DIR]
        [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("ppi", out_dir=Path(__file__).resolve().parent / "results")
