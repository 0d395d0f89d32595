"""Check: does the row-weight gate (:func:`cje.diagnostics.gates.row_weight_gate`) caution levels
whose prompts hold unequal numbers of rows only by chance? Results in
``simulations/results/independent_designs.md`` ("After the row-weight check"; the designs study's
cells ``dup_hard``, ``dup_rand``, ``draws4`` and ``same`` are rerun by
``simulations/independent_designs.py``).

**Process.** The package's own synthetic direct data (:func:`cje.synthetic.make_direct_eval`, its
default five policies), ``--prompts`` prompts with 3 draws each and 15% of rows labelled; then 30%
of the rows are dropped at random, so a prompt holds 1–3 rows of a policy, independently of how
its responses score. Every level is analysed with ``cje.analyze``'s defaults. Nothing goes with
the row counts, so a CAUTION for prompts asked more than once is a false alarm; ``row_weight_z``
should be about standard normal. Seeds: data ``rng=r``, dropping ``10_000 + r``.

Usage::

    python simulations/independent_dup.py [--reps 200] [--prompts 400]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import cje

KEY = "prompts asked more than once"


def one_run(r: int, prompts: int) -> list[tuple[bool, float]]:
    """Per level of replicate ``r``: cautioned by the row-weight gate, and its z."""
    sim = cje.synthetic.make_direct_eval(prompts, draws_per_prompt=3, oracle_fraction=0.15, rng=r)
    df = sim.data
    rng = np.random.default_rng(10_000 + r)
    df = df[rng.random(len(df)) >= 0.3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    return [(any(KEY in w for w in e.reasons), float(e.diagnostics.get("row_weight_z", np.nan)))
            for e in rep.estimates]


def main() -> None:
    """Command line: run the replicates and print the shares (with MC SE)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--prompts", type=int, default=400)
    ns = ap.parse_args()
    t0 = time.time()
    out = [x for r in range(ns.reps) for x in one_run(r, ns.prompts)]
    caution = np.array([c for c, _ in out])
    z = np.abs(np.array([z for _, z in out]))
    n = caution.size

    def share(x: np.ndarray) -> str:
        c = float(np.mean(x))
        return f"{c:.4f} ± {np.sqrt(c * (1 - c) / x.size):.4f}"

    print(f"{n} levels in {time.time() - t0:.0f} s; row-weight CAUTION {share(caution)}; "
          f"|z| > 1.96 {share(z > 1.96)}, > 2.576 {share(z > 2.576)}, > 3.29 {share(z > 3.29)}; "
          f"not checked (as many rows on every prompt) {share(np.isnan(z))}")


if __name__ == "__main__":
    main()
