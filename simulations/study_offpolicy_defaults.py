"""Studies behind the off-policy defaults: residual weights, MRDR regression weights, folds K.

Each study draws :func:`cje.synthetic.make_offpolicy_eval` data with targets at raw-weight ESS
90%, 60% and 10% (``--n-prompts`` logged prompts, 10% MCAR labels, one fresh draw per prompt and
target) and runs :func:`cje.analyze` once per setting on the same data (paired), scoring 95%
intervals against the exact truth:

* ``residual_weights`` — raw vs stabilised (SIMCal-W) weights on the oracle residual term, for
  calibrated IPS and stacked DR (SNIPS as the reference), with a noisy judge (``judge_noise=0.1``:
  the score is not sufficient for the label) and a nearly sufficient one (``judge_noise=0``);
* ``mrdr_omega`` — MRDR's regression weights ``w``, ``w²``, ``(w − 1)²`` (noisy judge);
* ``folds`` — K = 2, 5, 10 cross-fitting / jackknife folds for calibrated IPS and stacked DR
  (noisy judge).

Usage::

    python simulations/study_offpolicy_defaults.py STUDY [--reps 600] [--n-prompts 2000]
        [--n-jobs 2] [--seed S]

writes ``simulations/results/<STUDY>.md`` (and a git-ignored ``.parquet`` of the replicates).
"""

from __future__ import annotations

import argparse
import time
import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import cje
from cje.montecarlo import run_replicates, summarise
from cje.synthetic.offpolicy import theta_for_ess

RESULTS = Path(__file__).resolve().parent / "results"
TARGETS = {"ess90": theta_for_ess(0.9), "ess60": theta_for_ess(0.6), "ess10": theta_for_ess(0.1)}
#: study -> (judge noises, runs as (label, analyze keyword arguments)), grouping columns
STUDIES: dict[str, tuple[tuple[float, ...], tuple[tuple[str, dict[str, Any]], ...]]] = {
    "residual_weights": ((0.1, 0.0), (
        ("snips", {"estimator": "snips"}),
        ("calibrated-ips / raw", {"estimator": "calibrated-ips", "residual_weights": "raw"}),
        ("calibrated-ips / stable", {"estimator": "calibrated-ips", "residual_weights": "stable"}),
        ("stacked-dr / raw", {"estimator": "stacked-dr", "residual_weights": "raw"}),
        ("stacked-dr / stable", {"estimator": "stacked-dr", "residual_weights": "stable"}),
    )),
    "mrdr_omega": ((0.1,), tuple(
        (f"mrdr / ω={om}", {"estimator": "mrdr", "mrdr_omega": om}) for om in ("w", "w2", "w1sq")
    )),
    "folds": ((0.1,), tuple(
        (f"{est} / K={k}", {"estimator": est, "n_folds": k})
        for est in ("calibrated-ips", "stacked-dr") for k in (2, 5, 10)
    )),
}


def task(rng: np.random.Generator, replicate: int, *, study: str, n_prompts: int
         ) -> list[dict[str, Any]]:
    """One replicate: data per judge noise, every setting of the study on the same data."""
    noises, runs = STUDIES[study]
    rows: list[dict[str, Any]] = []
    for noise, child in zip(noises, rng.spawn(len(noises)), strict=True):
        sim = cje.synthetic.make_offpolicy_eval(n_prompts, targets=TARGETS, judge_noise=noise,
                                                rng=child)
        for label, kw in runs:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, judge_scale=sim.judge_scale,
                                  label_scale=sim.label_scale, **kw)
            for t in TARGETS:
                e = rep[t]
                rows.append({"judge_noise": noise, "setting": label, "target": t,
                             "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                             "truth": sim.truth[t]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("study", choices=sorted(STUDIES))
    ap.add_argument("--reps", type=int, default=600)
    ap.add_argument("--n-prompts", type=int, default=2000)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=20261123)
    ns = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    df = run_replicates(partial(task, study=ns.study, n_prompts=ns.n_prompts), ns.reps,
                        seed=ns.seed, n_jobs=ns.n_jobs, out=RESULTS / f"{ns.study}.parquet",
                        config={"study": ns.study, "n_prompts": ns.n_prompts}, progress=False)
    secs = time.perf_counter() - t0
    s = summarise(df, by=["judge_noise", "target", "setting"])
    lines = [
        f"# Off-policy defaults study: `{ns.study}`",
        "",
        f"Command: `python simulations/study_offpolicy_defaults.py {ns.study} --reps {ns.reps} "
        f"--n-prompts {ns.n_prompts} --n-jobs {ns.n_jobs} --seed {ns.seed}` ({secs:.0f} s on 2 "
        "cores; resumed runs count only the new replicates).",
        "",
        __doc__.split("\n\n", 1)[1].split("Usage::")[0].strip(),
        "",
        "Coverage of 95% intervals (± binomial MC SE), bias (± MC SE), RMSE and mean width, "
        "label units (0–1).",
        "",
        "| judge noise | target | setting | coverage | bias | RMSE | width |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for _, r in s.iterrows():
        lines.append(
            f"| {r.judge_noise:g} | {r.target} | {r.setting} | {r.coverage:.3f} ± "
            f"{r.coverage_se:.3f} | {r.bias:+.4f} ± {r.bias_se:.4f} | {r.rmse:.4f} | "
            f"{r.mean_width:.4f} |"
        )
    out = RESULTS / f"{ns.study}.md"
    reading = ""
    if out.exists() and "\n## Reading" in out.read_text():
        reading = "\n## Reading" + out.read_text().split("\n## Reading", 1)[1]
    out.write_text("\n".join(lines) + "\n" + reading)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
