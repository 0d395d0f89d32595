"""Prototype (outside the package): a drift allowance for direct levels.

For each direct level, ``D`` = the label balance shift (labelled rows' mean judge score minus all
the policy's rows', ``label_score_shift``) and ``Var(D) = (D / label_score_z)²``; ``β̂`` = the OLS
slope of the oracle label on the judge score over every labelled row (label units per judge
point). A judge drift δ on the unlabelled share ``1 − f`` of the rows gives ``D ≈ −(1 − f) δ`` and
a bias of ``≈ −β D``, so the prototype widens the interval to
``est ± crit · sqrt(SE² + (β̂ D)² + β̂² Var(D))`` (``crit`` the package's own critical value) and
reports the coverage of the levels left OK, against the package's intervals (and a lighter
variant with ``(β̂ D)²`` alone). The status is not
changed. Cells and seeds are those of ``simulations/independent_drift.py``.

Usage::

    python simulations/independent_drift_allowance.py [--reps 300]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_drift as idr  # noqa: E402

CELLS = ("direct_L10_none", "direct_L25_none", "direct_L10_all_shift0.5", "direct_L25_all_shift0.5",
         "direct_L10_one_shift0.5", "direct_L25_one_shift0.5", "direct_L10_all_shift1.0",
         "direct_L25_all_compress0.5", "direct_L25_one_all_shift1.0")


def rows(seed: int, name: str) -> list[dict]:
    """Package and allowance intervals of each level of one replicate."""
    df = idr.make_direct(seed, idr.CELLS[name])
    lab = df[df.oracle_label.notna()]
    beta = float(np.polyfit(lab.judge_score, lab.oracle_label, 1)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=(0, 10), label_scale=(0, 1), progress=False)
    out = []
    for e in rep.estimates:
        t = idr.TRUTH_DIRECT[e.policy]
        dg = e.diagnostics or {}
        d, z = dg.get("label_score_shift", np.nan), dg.get("label_score_z", np.nan)
        var_d = (d / z) ** 2 if np.isfinite(z) and z != 0 else 0.0
        allow = (beta * d) ** 2 + beta ** 2 * var_d if np.isfinite(d) else 0.0
        hw = 0.5 * (e.ci_high - e.ci_low)
        hw2 = hw * np.sqrt(1.0 + allow / e.se ** 2)
        hw3 = hw * np.sqrt(1.0 + (beta * d) ** 2 / e.se ** 2) if np.isfinite(d) else hw
        out.append({"cell": name, "seed": seed, "policy": e.policy, "status": e.status,
                    "covered": abs(e.estimate - t) <= hw, "covered_allow": abs(e.estimate - t) <= hw2,
                    "covered_d2": abs(e.estimate - t) <= hw3,
                    "width": 2 * hw, "width_allow": 2 * hw2, "width_d2": 2 * hw3})
    return out


def main() -> None:
    """Run the cells and print one table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    args = ap.parse_args()
    order = list(idr.CELLS)
    res = [r for c in CELLS for s in range(20261208 + 10000 * order.index(c),
                                           20261208 + 10000 * order.index(c) + args.reps)
           for r in rows(s, c)]
    df = pd.DataFrame(res)
    print("| cell | OK levels | OK coverage (package) | OK coverage (allowance) | OK coverage ((β̂D)² "
          "only) | width (package) | width (allowance) | width ((β̂D)² only) |")
    print("|---|---:|---|---|---|---:|---:|---:|")
    for c, g in df.groupby("cell", sort=False):
        ok = g[g.status == "OK"]
        cells = []
        for col in ("covered", "covered_allow", "covered_d2"):
            v = float(ok[col].mean())
            cells.append(f"{v:.3f} ± {np.sqrt(v * (1 - v) / len(ok)):.3f}")
        print(f"| {c} | {len(ok)} | {cells[0]} | {cells[1]} | {cells[2]} | {ok.width.mean():.3f} | "
              f"{ok.width_allow.mean():.3f} | {ok.width_d2.mean():.3f} |")


if __name__ == "__main__":
    main()
