"""Check: how often does the prompt-gap gate caution levels whose prompts are missing at random,
on the package's own synthetic data? Results in ``simulations/results/independent_gap2.md``.

**Process.** :func:`cje.synthetic.make_direct_eval` (its default five policies, one draw per
prompt, 15% of rows labelled), ``--prompts`` prompts; then each policy loses its own random 15% of
the prompts (independently of everything), so every policy lacks prompts the four others answered
and each level is tested against four comparators. Nothing goes with the missing prompts, so a
prompt-gap CAUTION is a false alarm. The recorder of ``simulations/independent_gap2.py`` applies
the rule before (``exact 3.29``: |z| > 3.29 for any comparator) and the rule now (``bonf 2.576``:
|z| > 3.023 with four comparators) to the same numbers; the package's own status (the rule now) is
counted too. Seeds: data ``rng=r``, dropping ``20_000 + r``.

Usage::

    python simulations/independent_gap2_null.py [--reps 1000] [--prompts 400]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje

sys.path.insert(0, str(Path(__file__).parent))
import independent_gap2 as gap2  # noqa: E402  (its import installs the recorder)

KEY = "it has no row on"
RULES = ("exact 3.29", "exact 2.576", "bonf 2.576")


def one_run(r: int, prompts: int) -> list[dict]:
    """Per level of replicate ``r``: cautioned by each rule and by the package."""
    sim = cje.synthetic.make_direct_eval(prompts, draws_per_prompt=1, oracle_fraction=0.15, rng=r)
    df = sim.data
    rng = np.random.default_rng(20_000 + r)
    ids = df["prompt_id"].unique()
    drop = {p: set(ids[rng.random(ids.size) < 0.15]) for p in df["policy"].unique()}
    keep = [pid not in drop[pol] for pid, pol in zip(df["prompt_id"], df["policy"], strict=True)]
    df = df[np.asarray(keep)]
    gap2._REC.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    pairs = gap2._REC.get("pairs", [])
    out = []
    for e in rep.estimates:
        mine = [x for x in pairs if x["b"] == e.policy]
        row = {"rep": r, "policy": e.policy, "comparators": len(mine),
               "package": any(w.startswith(KEY) for w in e.reasons)}
        row.update({rule: gap2._rule(rule, mine) for rule in RULES})
        out.append(row)
    return out


def main() -> None:
    """Command line: run and print the shares."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--prompts", type=int, default=400)
    ns = ap.parse_args()
    t0 = time.time()
    res = pd.DataFrame([row for r in range(ns.reps) for row in one_run(r, ns.prompts)])
    print(f"{len(res)} levels from {ns.reps} data sets in {time.time() - t0:.0f} s; comparators per "
          f"level: {res.comparators.min()}–{res.comparators.max()}\n")
    print("| rule | levels cautioned for the prompt gap |")
    print("|---|---:|")
    for col in (*RULES, "package"):
        x = res[col].to_numpy(dtype=float)
        c = x.mean()
        print(f"| {col} | {c:.4f} ± {np.sqrt(c * (1 - c) / x.size):.4f} ({int(x.sum())} of {x.size}) |")


if __name__ == "__main__":
    main()
