"""Rows dropped by ``on_invalid="drop"``: OK share, OK coverage and false "Better" of the levels
and contrasts, for a drop that depends on the prompt and one completely at random.

Cells (data of :mod:`independent_combos`: 800 prompts, one response each from ``good``,
``twin`` and ``base``, 15% labelled per policy; truth = each policy's value over all prompts;
good − twin is a null):

``drop_contrast``
    ``twin``'s judge call fails (judge score empty) with ``P = σ(−2.5 + 1.8 d)`` (harder prompts
    fail more, about 14% of its rows) — the cell of ``independent_combos.py``, same seeds.
``drop_mcar``
    ``twin``'s judge call fails completely at random with probability 0.14.

Each is analysed with ``on_invalid="drop"`` on all three policies and with
``policies=["good", "twin"]``. Run it with ``PYTHONPATH`` at a checkout to measure that
checkout (before/after a change).

Usage::

    python simulations/independent_drop.py [--reps 400] [--cells a,b] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

sys.path.insert(0, str(Path(__file__).parent))
import independent_combos as combos  # noqa: E402

MCAR_P = 0.14


def make_mcar(rng, n=800):
    """As :func:`independent_combos.make_drop`, ``twin``'s failures completely at random."""
    d = rng.standard_normal(n)
    pids = np.array([f"p{i}" for i in range(n)], dtype=object)
    frames = []
    for pol in ("good", "twin", "base"):
        r = combos.responses(rng, d, pol)
        f = combos._frame(pids, pol, r, labelled=rng.random(n) < 0.15)
        if pol == "twin":
            f.loc[rng.random(n) < MCAR_P, "judge_score"] = np.nan
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


CELLS = ("drop_contrast", "drop_mcar")


def run_one(cell: str, seed: int) -> list[dict]:
    """Both variants of ``cell`` on the data set of ``seed``."""
    if cell == "drop_contrast":  # the seeds of independent_combos.py
        data = combos.make_drop(np.random.default_rng([seed, combos.CELLS.index(cell)]))
    else:
        data = make_mcar(np.random.default_rng([seed, 100 + CELLS.index(cell)]))
    kw = dict(judge_scale=combos.JS, label_scale=combos.LS, on_invalid="drop")
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out += combos._rows(cje.analyze(data, **kw), cell, "drop", seed)
        out += combos._rows(cje.analyze(data, policies=["good", "twin"], **kw), cell,
                            "drop, policies=[good, twin]", seed)
    return out


def main() -> None:
    """Run the cells and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "independent_drop.csv"))
    a = ap.parse_args()
    t0 = time.time()
    rows = []
    for cell in a.cells.split(","):
        res = Parallel(n_jobs=a.n_jobs)(delayed(run_one)(cell, s) for s in range(a.reps))
        rows += [r for x in res for r in x]
    df = pd.DataFrame(rows)
    df.to_csv(a.out, index=False)
    print(f"cje: {cje.__file__}")
    print(combos.summarise(df))
    print(f"\nRuntime: {time.time() - t0:.0f} s ({a.reps} replicates per cell, n_jobs={a.n_jobs})")


if __name__ == "__main__":
    main()
