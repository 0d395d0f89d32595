"""Study 2 — naive intervals vs OUA, and where the oracle uncertainty matters most.

Two label designs on :func:`cje.synthetic.make_direct_eval` data (miscalibrated judge, five
policies, n = 2000 prompts):

* ``every policy`` — MCAR oracle labels on every policy's rows (the residual term of the direct
  estimator then corrects each policy's calibration error with its own labels);
* ``base only`` — labels on the ``base`` policy's rows only; the other four policies' estimates
  are plug-in means of the calibrated judge and rely on the calibration transporting to them.
  Here the calibrator's own uncertainty is most of the error, and ignoring it is what "naive
  calibrated CIs" do.

Three 95% intervals per policy: the naive judge mean, the calibrated estimate without OUA
(influence variance only) and cje's OUA interval.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.analysis import analyze
from cje.errors import CJEWarning
from cje.inference import t_interval
from cje.montecarlo import summarise
from cje.studies import DEFAULT_SEEDS
from cje.studies._common import (
    COVERAGE_BAND,
    StudyRun,
    cov_cell,
    figure,
    md_table,
    pct,
    replicate,
    replicate_se,
    study_entry,
    write_results,
)
from cje.synthetic.direct import make_direct_eval

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "run", "task"]

NAME = "naive_ci"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 2000, "fractions": (0.05, 0.10, 0.25, 0.50), "n_prompts": 2000}
QUICK: dict[str, Any] = {"reps": 30, "fractions": (0.10, 0.25), "n_prompts": 400}
DESIGNS = ("every policy", "base only")
METHODS = {"naive": "naive judge mean", "no_oua": "calibrated, no OUA", "oua": "calibrated + OUA (cje)"}
LABELLED_POLICY = "base"


def task(rng: np.random.Generator, replicate: int, *, fractions: tuple[float, ...],
         n_prompts: int) -> list[dict[str, Any]]:
    """One replicate: both label designs at every oracle fraction (own child stream per cell).

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    fractions : tuple of float
        Oracle fractions.
    n_prompts : int
        Prompts per data set.

    Returns
    -------
    list of dict
        One row per design × fraction × policy × interval method (``naive``, ``no_oua``,
        ``oua``), with ``own_labels`` (whether the policy has labels of its own), the interval,
        the truth and ``covered``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, fractions=(0.25,), n_prompts=200)
    >>> len(rows)  # 2 designs × 5 policies × 3 methods
    30
    >>> sorted({(r["design"], r["own_labels"]) for r in rows if r["policy"] == "verbose"})
    [('base only', False), ('every policy', True)]
    """
    cells = [(d, f) for d in DESIGNS for f in fractions]
    rows: list[dict[str, Any]] = []
    for (design, frac), child in zip(cells, rng.spawn(len(cells)), strict=True):
        sim = make_direct_eval(n_prompts, oracle_fraction=frac, rng=child)
        data = sim.data
        if design == "base only":
            data = data.assign(oracle_label=data["oracle_label"].where(data["policy"] == LABELLED_POLICY))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            rep = analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        for e in rep.estimates:
            truth = sim.truth[e.policy]
            lo0, hi0 = t_interval(e.estimate, float(np.sqrt(e.var_if)), max(e.n_prompts - 1, 1), e.alpha)
            for method, est, lo, hi in (
                ("naive", e.naive_estimate, e.naive_ci_low, e.naive_ci_high),
                ("no_oua", e.estimate, lo0, hi0),
                ("oua", e.estimate, e.ci_low, e.ci_high),
            ):
                rows.append({
                    "design": design, "oracle_fraction": frac, "policy": e.policy,
                    "own_labels": e.n_labels > 0, "method": method, "estimate": est,
                    "ci_low": lo, "ci_high": hi, "truth": truth,
                    "covered": bool(lo <= truth <= hi), "se": e.se if method == "oua" else np.nan,
                    "calibration_share": e.calibration_share, "n_labels": e.n_labels,
                })
    return rows


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    t = partial(task, fractions=tuple(grid["fractions"]), n_prompts=int(grid["n_prompts"]))
    df, secs, r = replicate(r, t, {"version": 1})
    df = df.assign(covered=df["covered"].astype(float))
    fracs = list(grid["fractions"])

    # Pooled: every policy in 'every policy'; the unlabelled policies in 'base only'.
    pooled = df[(df.design == "every policy") | ~df.own_labels]
    by = ["design", "oracle_fraction", "method"]
    cse = replicate_se(pooled, by, "covered").set_index(by)
    s = summarise(pooled, by=by).set_index(by)
    share = pooled[pooled.method == "oua"].groupby(["design", "oracle_fraction"])["calibration_share"].mean()
    rows = []
    for d in DESIGNS:
        for f in fracs:
            c = {m: cse.loc[(d, f, m)] for m in METHODS}
            ratio = s.loc[(d, f, "oua"), "mean_width"] / s.loc[(d, f, "no_oua"), "mean_width"]
            rows.append([
                d if d == "every policy" else "base only (4 unlabelled policies)", pct(f),
                f"{c['naive']['mean']:.3f}", cov_cell(c["no_oua"]["mean"], c["no_oua"]["se"]),
                cov_cell(c["oua"]["mean"], c["oua"]["se"]), f"{ratio:.2f}", f"{share.loc[(d, f)]:.2f}",
            ])
    body = ["## Results", ""]
    body += md_table(["labels on", "oracle fraction", "naive", "no OUA", "OUA",
                      "width OUA / no OUA", "calibration share of var"], rows)
    body += [
        "",
        "Coverage of 95% intervals ± MC SE (clustered by replicate). In 'base only' the pool is the "
        "four policies without labels of their own (base itself is in the per-policy table). "
        "Calibration share = var_cal / (var_IF + var_cal), the share of the variance that OUA adds. "
        f"**Bold ✗** = outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}].",
        "",
        "Per policy, labels on base only: coverage without / with OUA, and the bias of the "
        "calibrated estimate relative to its OUA standard error (|bias| / mean SE ≳ 1 means no "
        "variance formula can cover: the calibration does not transport to that policy).",
        "",
    ]
    bo = df[df.design == "base only"]
    pols = list(dict.fromkeys(bo["policy"]))
    sb = summarise(bo, by=["oracle_fraction", "policy", "method"]).set_index(
        ["oracle_fraction", "policy", "method"])
    se_mean = bo[bo.method == "oua"].groupby(["oracle_fraction", "policy"])["se"].mean()
    prow = []
    for f in fracs:
        for p in pols:
            b = sb.loc[(f, p, "oua"), "bias"]
            prow.append([pct(f), p + (" (labelled)" if p == LABELLED_POLICY else ""),
                         f"{sb.loc[(f, p, 'no_oua'), 'coverage']:.3f}",
                         f"{sb.loc[(f, p, 'oua'), 'coverage']:.3f}", f"{b:+.4f}",
                         f"{se_mean.loc[(f, p)]:.4f}", f"{abs(b) / se_mean.loc[(f, p)]:.2f}"])
    body += md_table(["oracle fraction", "policy", "no OUA", "OUA", "bias", "mean SE (OUA)",
                      "abs(bias) / SE"], prow, align="rlrrrrr")
    ev = cse.xs("every policy")
    bo_c = cse.xs("base only")
    no_oua_bo = bo_c.xs("no_oua", level="method")["mean"]
    width = s.xs("base only")["mean_width"]
    ratio_bo = width.xs("oua", level="method") / width.xs("no_oua", level="method")
    unl = bo[~bo.own_labels]
    near = unl[unl.policy == "concise"]
    body += [
        "",
        "## Reading",
        "",
        f"- The naive judge mean never covers (at most {cse.xs('naive', level='method')['mean'].max():.3f}): "
        "the judge is miscalibrated, and this does not improve with n or labels.",
        f"- Labels on every policy: no-OUA coverage {ev.xs('no_oua', level='method')['mean'].min():.3f}–"
        f"{ev.xs('no_oua', level='method')['mean'].max():.3f}, OUA "
        f"{ev.xs('oua', level='method')['mean'].min():.3f}–{ev.xs('oua', level='method')['mean'].max():.3f}. "
        "The residual term already carries the label-sampling variance, so OUA adds little.",
        f"- Labels on base only (unlabelled policies): without OUA coverage is "
        f"{no_oua_bo.min():.3f}–{no_oua_bo.max():.3f}; "
        f"OUA raises it to {bo_c.xs('oua', level='method')['mean'].min():.3f}–"
        f"{bo_c.xs('oua', level='method')['mean'].max():.3f}, widening intervals "
        f"{ratio_bo.min():.1f}–{ratio_bo.max():.1f}×. "
        "This is where OUA matters most: the calibrator's variance is most of the error.",
        _shortfall(bo_c.xs("oua", level="method")["mean"]) + "The remaining error is "
        "transport bias, not variance. With a noisy judge E[Y | S] learned on base is not "
        "E[Y | S] for a policy whose quality distribution differs (scores regress toward each "
        "policy's own mean); `verbose`'s planted judge bonus breaks transport grossly. The "
        f"policy closest to base (`concise`, +0.1) keeps OUA coverage "
        f"{near[near.method == 'oua'].groupby('oracle_fraction')['covered'].mean().min():.3f}–"
        f"{near[near.method == 'oua'].groupby('oracle_fraction')['covered'].mean().max():.3f}. "
        "Hence cje marks such levels CAUTION and offers probe-slice transport audits.",
    ]
    fig = _figure(df, cse, fracs, pols, int(grid["n_prompts"]))
    design = (
        f"Design: `cje.synthetic.make_direct_eval` with n = {grid['n_prompts']} prompts, the "
        "miscalibrated judge and the five default policies; oracle labels MCAR at each fraction "
        "on every policy's rows, or on base's rows only; `cje.analyze` defaults. "
        f"{r.reps} replicates per cell."
    )
    return write_results(r, title="Study 2 — naive confidence intervals vs OUA", seconds=secs,
                         design=design, body=body, fig=fig)


def _shortfall(cov: pd.Series) -> str:
    """Say whether OUA coverage of the unlabelled policies reaches the band, and its trend."""
    lo = COVERAGE_BAND[0]
    reach = "reaches" if cov.max() >= lo else "does not reach"
    trend = np.sign(np.diff(cov.to_numpy()))
    how = ("falls as labels grow" if (trend < 0).all() else "rises as labels grow" if (trend > 0).all()
           else "does not move monotonically with labels")
    return f"- Even with OUA, coverage {reach} {lo} and {how}. "


def _figure(df: pd.DataFrame, cse: pd.DataFrame, fracs: list[float], pols: list[str], n: int) -> Any:
    fig, ax = figure(1, 2, (10.5, 4.2))
    x = np.array(fracs, dtype=float)
    a = ax[0, 0]
    colors = {"naive": "C3", "no_oua": "C1", "oua": "C0"}
    for m, label in METHODS.items():
        c = cse.xs("every policy").xs(m, level="method")
        a.errorbar(x * (1.04 if m == "no_oua" else 1.0), c["mean"].to_numpy(),
                   yerr=2 * c["se"].to_numpy(), marker="s" if m == "no_oua" else "o", capsize=3,
                   color=colors[m], label=label)
    a.set_title("labels on every policy (all 5 pooled)", fontsize=10)
    b = ax[0, 1]
    bo = df[df.design == "base only"]
    for i, p in enumerate(pols):
        g = bo[bo.policy == p].groupby(["method", "oracle_fraction"])["covered"].mean()
        lab = f"{p} (labelled)" if p == LABELLED_POLICY else p
        b.plot(x, g.xs("oua").to_numpy(), marker="o", color=f"C{i + 4}", label=lab)
        b.plot(x, g.xs("no_oua").to_numpy(), marker="x", ls="--", color=f"C{i + 4}")
    b.plot([], [], ls="-", marker="o", color="0.3", label="with OUA")
    b.plot([], [], ls="--", marker="x", color="0.3", label="without OUA")
    b.set_title("labels on base only: coverage per policy", fontsize=10)
    for a_ in (a, b):
        a_.axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
        a_.axhline(0.95, color="0.5", lw=0.8, ls=":")
        a_.set_xscale("log")
        a_.set_xticks(x, [pct(f) for f in x])
        a_.minorticks_off()
        a_.set_ylim(-0.02, 1.02)
        a_.set_xlabel("oracle fraction")
        a_.grid(alpha=0.3)
    a.set_ylabel("coverage of 95% CI")
    a.legend(loc="center right", fontsize=8)
    b.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.suptitle(f"Naive intervals vs OUA (miscalibrated judge, n = {n} prompts)")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the naive-CI study",
                  quick_note="Small tier (n = 400, oracle fractions 10% and 25%) for tests.")
