"""Study: what should the OUA jackknife delete? (and the naive-CI failure it fixes)

The direct estimator is ``ψ = mean f(S) + mean over labelled rows of (Y − f_oof(S))``. Its
prompt-clustered influence-function variance already contains the sampling variance of the
labelled residuals. The delete-one-oracle-fold jackknife adds the calibrator's own variability.
Two readings of "re-run the pipeline without fold k's labels":

* ``calibrator-only`` (cje's choice): refit the calibrator without fold k's labels, keep every
  label in the residual term (each with a prediction that did not see it);
* ``labels-too``: also drop fold k's labels from the residual term — which re-counts the
  label-sampling variance that Var_IF already holds.

Two label designs: MCAR labels on every policy's responses, and labels on the base policy only
(the other policies rely on the calibration transporting, as in the Arena sample).

For each replicate of ``cje.synthetic.make_direct_eval`` (miscalibrated judge, 5 policies) this
script records the 95% interval coverage of the truth for: the naive judge mean, the calibrated
estimate without OUA (Var_IF only), OUA with each jackknife reading. Writes
``simulations/results/oua_jackknife_design.md``.

Usage::

    python simulations/oua_jackknife_design.py [--reps 300] [--prompts 1000] [--fractions 0.05 0.1 0.25]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

import cje
from cje.calibration import RewardCalibrator
from cje.estimators import direct_estimate
from cje.inference import jackknife_variance
from cje.pipeline.core import level_df

OUT = Path(__file__).resolve().parent / "results" / "oua_jackknife_design.md"


def one_replicate(n_prompts: int, frac: float, seed: int, base_only: bool) -> dict[str, list[bool]]:
    sim = cje.synthetic.make_direct_eval(n_prompts, oracle_fraction=frac, rng=seed)
    data = sim.data
    if base_only:  # labels on the base policy's responses only (as in the Arena sample)
        data = data.assign(oracle_label=data.oracle_label.where(data.policy == "base"))
    rep = cje.analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                      mode="monotone")
    d = cje.load(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    s, y = d.judge01(), d.label01()
    lab = d.labelled
    lab_prompt = np.zeros(d.prompts.size, bool)
    lab_prompt[d.prompt_code[lab]] = True
    fold = cje.prompt_folds(d.prompts, lab_prompt, 5)[d.prompt_code]
    cal = RewardCalibrator(mode="monotone").fit(s, y, folds=np.where(lab, fold, 0))
    train = np.flatnonzero(lab)
    P = len(d.policies)

    def labels_too(k: int) -> np.ndarray:
        c = cal.calibration(frozenset({k}))
        keep = fold[train] != k
        resid = np.zeros(d.n_rows)
        labelled = np.zeros(d.n_rows, bool)
        resid[train[keep]] = y[train[keep]] - c.oof[keep]
        labelled[train[keep]] = True
        return direct_estimate(c.predict(s), resid, labelled, d.policy_code, P).values

    var_lt = jackknife_variance(np.vstack([labels_too(k) for k in range(5)]))
    lo_l, hi_l = sim.label_scale
    w = hi_l - lo_l
    # each policy's own-label residual part (one draw per prompt: s_e²/m on the label scale) and
    # its labelled prompts, for the degrees of freedom the report gives that part (level_df)
    e_own = y[train] - cal.calibration(frozenset()).oof
    pol_train = d.policy_code[train]
    own = {}
    for p in range(P):
        ep = e_own[pol_train == p]
        own[p] = (float(ep.var(ddof=1)) / ep.size * w**2, ep.size) if ep.size > 1 else None
    out: dict[str, list[bool]] = {"naive": [], "no OUA": [], "OUA calibrator-only": [],
                                  "OUA labels-too": []}
    for p, e in enumerate(rep.estimates):
        if base_only and e.policy == "verbose":
            continue  # its judge bonus breaks transport: no interval can cover (the audit's job)
        t = sim.truth[e.policy]
        out["naive"].append(e.naive_ci_low <= t <= e.naive_ci_high)
        g = e.n_prompts
        # the own part above is the report's: its df for the report's own interval is recovered
        assert np.isclose(level_df(e.var_if, e.var_cal, g, 5, own=own[p]), e.df, rtol=1e-9), e.policy
        q = stats.t.ppf(0.975, level_df(e.var_if, 0.0, g, 5, own=own[p]))
        se0 = np.sqrt(e.var_if)
        out["no OUA"].append(abs(e.estimate - t) <= q * se0)
        out["OUA calibrator-only"].append(e.ci_low <= t <= e.ci_high)
        v_cal = var_lt[p] * w**2
        se = np.sqrt(e.var_if + v_cal)
        df = level_df(e.var_if, v_cal, g, 5, own=own[p])
        out["OUA labels-too"].append(abs(e.estimate - t) <= stats.t.ppf(0.975, df) * se)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--prompts", type=int, default=1000)
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.10, 0.25])
    ap.add_argument("--seed", type=int, default=20_000)
    ns = ap.parse_args()
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    rows = []
    for base_only in (False, True):
        for frac in ns.fractions:
            acc: dict[str, list[bool]] = {}
            for r in range(ns.reps):
                for k, v in one_replicate(ns.prompts, frac, ns.seed + r, base_only).items():
                    acc.setdefault(k, []).extend(v)
            where = "base only" if base_only else "every policy"
            rows.append((where, frac, {k: float(np.mean(v)) for k, v in acc.items()},
                         len(acc["naive"])))
            print(rows[-1], flush=True)
    secs = time.perf_counter() - t0
    methods = list(rows[0][2])
    lines = [
        "# What the OUA jackknife deletes — coverage of 95% intervals",
        "",
        f"Command: `python simulations/oua_jackknife_design.py --reps {ns.reps} --prompts "
        f"{ns.prompts} --fractions {' '.join(map(str, ns.fractions))}` ({secs:.0f} s on 2 cores).",
        f"DGP: `cje.synthetic.make_direct_eval` defaults (miscalibrated judge, 5 policies, "
        f"{ns.prompts} prompts, one draw each); monotone calibration, K = 5. Each cell pools "
        "policies × replicates; binomial MC SE ≈ 0.006 at 0.95 (× ~1.5 for shared prompts).",
        "",
        "| labels on | oracle fraction | intervals | " + " | ".join(methods) + " |",
        "|---|---:|---:|" + "---:|" * len(methods),
    ]
    for where, frac, cov, n in rows:
        lines.append(f"| {where} | {frac:.0%} | {n} | "
                     + " | ".join(f"{cov[m]:.3f}" for m in methods) + " |")
    lines += [
        "",
        "Reading. The naive judge mean never covers (the judge is miscalibrated). With labels on "
        "every policy, Var_IF alone already covers close to 95%: the residual term makes the "
        "estimate first-order insensitive to calibration error, and deleting fold k's labels "
        "from the residual term as well ('labels-too') re-counts the label-sampling variance "
        "and over-covers. cje's jackknife therefore refits the calibrator only.",
        "",
        "With labels on the base policy only, the other policies' estimates are plug-in means of "
        "the calibrated judge: without OUA their intervals cover ~0.40, with it 0.62–0.88 — and "
        "coverage *falls* as labels grow. That is bias, not variance: with a noisy judge, "
        "E[Y | S] learned on base is not E[Y | S] for a policy whose quality distribution differs "
        "(each policy's scores regress toward its own mean), so the calibration does not "
        "transport exactly even without a planted judge bias. No variance formula fixes this; "
        "labels on each policy's own responses (the residual term) or a probe-slice audit do. "
        "This is why cje marks levels of policies without labels of their own CAUTION. "
        "('verbose' is left out of the base-only rows: its planted judge bonus breaks transport "
        "grossly.)",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
