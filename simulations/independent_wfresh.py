"""Independent check: the fresh-balance check applied to the weighting estimators (false cautions).

When a target's fresh draws are given, SNIPS and calibrated IPS levels are now compared with
them (:func:`cje.diagnostics.gates.fresh_balance`, |z| > 3.29 → CAUTION; the DR estimators had
it already). This script measures how often it fires on well-formed data: ``cje.synthetic.
make_offpolicy_eval(1000)`` with its default targets, judge and labels (seeds 0–199), the
targets' fresh draws given (the logging policy's own fresh draws left out, as cje-eval users
pass them), every weighting level's status, reasons, fresh-balance z and interval against the
exact truth. The wrong-propensity cells are in ``independent_mixlog.py`` (run it with
``--estimators snips,calibrated-ips``).

Run: ``python simulations/independent_wfresh.py --reps 200`` (results: ``results/
independent_wfresh.md`` and ``results/independent_mixlog.md``, "After").
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

import cje
from cje.synthetic import make_offpolicy_eval

ESTIMATORS = ("snips", "calibrated-ips")


def replicate(seed: int) -> list[dict]:
    """Both weighting estimators on one replicate.

    Parameters
    ----------
    seed : int
        Seed of the simulation.

    Returns
    -------
    list of dict
        One row per (estimator, target).
    """
    sim = make_offpolicy_eval(1000, rng=seed)
    fresh = sim.fresh[sim.fresh["policy"] != "base"]
    rows = []
    for est in ESTIMATORS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(sim.logged, fresh_draws=fresh, estimator=est,
                              judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                              progress=False)
        for pol, v in sim.truth.items():
            if pol == "base":
                continue
            e = rep[pol]
            dg = e.diagnostics or {}
            fired = any("weighted logged responses score" in r for r in e.reasons)
            rows.append({"seed": seed, "estimator": est, "policy": pol, "truth": v,
                         "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                         "status": e.status, "fresh_z": dg.get("fresh_score_z", np.nan),
                         "fresh_fired": fired,
                         "other_reasons": sum("weighted logged responses score" not in r
                                              for r in e.reasons)})
    return rows


def summary(df: pd.DataFrame) -> str:
    """Markdown table: per estimator and target, new cautions and coverage of OK levels.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`replicate`.

    Returns
    -------
    str
        The table.
    """
    df = df.copy()
    df["cover"] = (df.ci_low <= df.truth) & (df.truth <= df.ci_high)
    # status before the check: CAUTION only by another reason
    df["ok_before"] = df.other_reasons == 0
    df["ok_after"] = df.status == "OK"
    out = ["| estimator | target | reps | fresh check fired | newly CAUTION | max abs z | "
           "OK coverage before | OK coverage after |", "|---|---|---:|---:|---:|---:|---:|---:|"]

    def cov(c: pd.Series) -> str:
        r = int(c.size)
        if r == 0:
            return "— (0)"
        m = float(c.mean())
        return f"{m:.3f} ± {np.sqrt(m * (1 - m) / r):.3f} ({r})"

    for (est, pol), g in df.groupby(["estimator", "policy"], sort=False):
        new = int((g.ok_before & g.fresh_fired).sum())
        out.append(f"| {est} | {pol} | {len(g)} | {int(g.fresh_fired.sum())} | {new} | "
                   f"{g.fresh_z.abs().max():.2f} | {cov(g.cover[g.ok_before])} | "
                   f"{cov(g.cover[g.ok_after])} |")
    return "\n".join(out)


def main() -> None:
    """Command line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--csv", default="/tmp/independent_wfresh.csv")
    args = ap.parse_args()
    t0 = time.time()
    df = pd.DataFrame([r for s in range(args.reps) for r in replicate(s)])
    df.to_csv(args.csv, index=False)
    print(f"{args.reps} replicates in {time.time() - t0:.0f} s\n")
    print(summary(df))


if __name__ == "__main__":
    main()
