"""Check: how often a pilot of ``simulations/independent_plan.py`` is told labels alone do not
reach the target, and how often that verdict rests on the estimate only (part of the plan
interval's bootstrap draws reach it: the plan then says labels "may not" reach it).

Pilots only (no second round), seeds ``[seed, i]``, the cells' own target half-widths.

Usage::

    python simulations/independent_plan_verdicts.py [--reps 200] [--cells likert/R4/p5/no-beta,...]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_plan as ip  # noqa: E402

import cje  # noqa: E402
from cje.errors import CJEWarning  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cells", default="likert/R4/p5/no-beta,likert/R4/p5/strong-beta,"
                                       "likert/R4/p5/strong-beta/G1000x10")
    ap.add_argument("--seed", type=int, default=20261207)
    args = ap.parse_args()
    for name in args.cells.split(","):
        cell = ip.CELLS[name]
        h = ip.target_h(cell)
        not_reached = may_not = 0
        for i in range(args.reps):
            pilot, _ = ip.draw(cell, cell["p0"], np.random.default_rng([args.seed, i]).spawn(3)[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CJEWarning)
                p = cje.plan(pilot, half_width=h, n_boot=400, seed=i, **ip.scales(cell))
            if not p.design["reachable"]:
                not_reached += 1
                may_not += p.design["n_labels_low"] is not None
        print(f"{name}: h={h:.4f}, {args.reps} pilots: not reachable at the estimate {not_reached}, "
              f"of which 'may not' (the plan interval reaches it) {may_not}", flush=True)


if __name__ == "__main__":
    main()
