"""Study `probes`: see :mod:`cje.studies.probes` for the design (module docstring).

Writes ``simulations/results/study_probes.{md,png,parquet}``; results already there are
replaced only with ``--force``. Usage::

    python simulations/study_probes.py [--reps N] [--n-jobs 2] [--seed S] [--quick]
        [--backend dask --scheduler tcp://HOST:8786] [--out-dir DIR]
        [--resume] [--force]
"""

from __future__ import annotations

from pathlib import Path

from cje.studies import main

if __name__ == "__main__":
    main("probes", out_dir=Path(__file__).resolve().parent / "results")
