"""Study 1 — coverage, bias and RMSE of the direct estimator per oracle fraction × n prompts.

Each replicate draws :func:`cje.synthetic.make_direct_eval` data (miscalibrated judge, the five
default policies, one response per prompt and policy, MCAR oracle labels on every policy's rows)
for every cell of the grid and runs :func:`cje.analyze` with its defaults. Three 95% intervals
per policy are scored against the exact truth:

* ``oua`` — cje's interval: prompt-clustered influence variance + OUA jackknife, t with
  Satterthwaite df;
* ``no_oua`` — the same estimate with the influence variance only (t with G − 1 df): what you
  get if the calibrator's own uncertainty is ignored;
* ``naive`` — the raw judge mean mapped affinely to the label scale, clustered t interval.
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

NAME = "coverage"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
#: Full grid and replicates.
FULL: dict[str, Any] = {"reps": 2000, "fractions": (0.05, 0.10, 0.25, 0.50),
                        "n_prompts": (500, 2000, 5000)}
#: Quick tier (tests): small n, tens of replicates.
QUICK: dict[str, Any] = {"reps": 30, "fractions": (0.10, 0.25), "n_prompts": (400,)}
METHODS = {"oua": "calibrated + OUA (cje)", "no_oua": "calibrated, no OUA", "naive": "naive judge mean"}


def task(rng: np.random.Generator, replicate: int, *, fractions: tuple[float, ...],
         n_prompts: tuple[int, ...]) -> list[dict[str, Any]]:
    """One replicate: every (oracle fraction, n prompts) cell, each with its own child stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    fractions : tuple of float
        Oracle fractions (MCAR labels on every policy's rows).
    n_prompts : tuple of int
        Prompts per data set.

    Returns
    -------
    list of dict
        One row per cell × policy × interval method (``oua``, ``no_oua``, ``naive``):
        ``oracle_fraction, n_prompts, policy, method, estimate, ci_low, ci_high, truth, covered,
        n_labels, calibration_share, status, mode``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, fractions=(0.25,), n_prompts=(200,))
    >>> len(rows)  # 5 policies × 3 methods
    15
    >>> sorted({r["method"] for r in rows}), rows[0]["n_labels"] > 0
    (['naive', 'no_oua', 'oua'], True)
    """
    cells = [(f, n) for n in n_prompts for f in fractions]
    rows: list[dict[str, Any]] = []
    for (frac, n), child in zip(cells, rng.spawn(len(cells)), strict=True):
        sim = make_direct_eval(n, oracle_fraction=frac, rng=child)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            rep = analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        mode = rep.calibration.mode if rep.calibration is not None else "uncalibrated"
        for e in rep.estimates:
            truth = sim.truth[e.policy]
            lo0, hi0 = t_interval(e.estimate, float(np.sqrt(e.var_if)), max(e.n_prompts - 1, 1), e.alpha)
            for method, est, lo, hi in (
                ("oua", e.estimate, e.ci_low, e.ci_high),
                ("no_oua", e.estimate, lo0, hi0),
                ("naive", e.naive_estimate, e.naive_ci_low, e.naive_ci_high),
            ):
                rows.append({
                    "oracle_fraction": frac, "n_prompts": n, "policy": e.policy, "method": method,
                    "estimate": est, "ci_low": lo, "ci_high": hi, "truth": truth,
                    "covered": bool(lo <= truth <= hi), "n_labels": e.n_labels,
                    "calibration_share": e.calibration_share, "status": e.status, "mode": mode,
                })
    return rows


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    t = partial(task, fractions=tuple(grid["fractions"]), n_prompts=tuple(grid["n_prompts"]))
    df, secs, r = replicate(r, t, {"version": 1})
    by = ["method", "n_prompts", "oracle_fraction"]
    s = summarise(df, by=by).set_index(by)
    cse = replicate_se(df.assign(covered=df["covered"].astype(float)), by, "covered").set_index(by)
    body: list[str] = ["## Results", ""]
    rows = []
    outside = []
    for n in grid["n_prompts"]:
        for f in grid["fractions"]:
            k = {m: (m, n, f) for m in METHODS}
            c = {m: cse.loc[k[m]] for m in METHODS}
            rows.append([
                f"{n}", pct(f), f"{s.loc[k['oua'], 'n_rows']}",
                cov_cell(c["oua"]["mean"], c["oua"]["se"]),
                cov_cell(c["no_oua"]["mean"], c["no_oua"]["se"]),
                f"{c['naive']['mean']:.3f}",
                f"{s.loc[k['oua'], 'bias']:+.4f}", f"{s.loc[k['oua'], 'rmse']:.4f}",
                f"{s.loc[k['naive'], 'rmse']:.3f}", f"{s.loc[k['oua'], 'mean_width']:.4f}",
                f"{s.loc[k['no_oua'], 'mean_width']:.4f}",
            ])
            if not COVERAGE_BAND[0] <= c["oua"]["mean"] <= COVERAGE_BAND[1]:
                outside.append(f"n = {n}, {pct(f)} labels: {c['oua']['mean']:.3f} ± {c['oua']['se']:.3f}")
    body += md_table(
        ["n prompts", "oracle", "intervals", "coverage OUA", "coverage no OUA", "coverage naive",
         "bias OUA", "RMSE calibrated", "RMSE naive", "width OUA", "width no OUA"], rows)
    body += [
        "",
        "Coverage ± Monte Carlo SE (clustered by replicate: the five policies of a replicate share "
        f"prompts and a calibrator). **Bold ✗** = outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}]. "
        "Bias, RMSE and width in label points (scale 1–5); the calibrated estimate is the same "
        "with or without OUA, so it has one RMSE.",
        "",
    ]
    # OUA coverage per policy: where deviations come from.
    per = summarise(df[df.method == "oua"], by=["n_prompts", "oracle_fraction", "policy"])
    pols = list(dict.fromkeys(df["policy"]))
    prow = []
    for n in grid["n_prompts"]:
        for f in grid["fractions"]:
            sub = per[(per.n_prompts == n) & (per.oracle_fraction == f)].set_index("policy")
            prow.append([f"{n}", pct(f)] + [f"{sub.loc[p, 'coverage']:.3f}" for p in pols])
    body += ["OUA coverage per policy (binomial MC SE ≈ "
             f"{np.sqrt(0.95 * 0.05 / r.reps):.3f} at 0.95):", ""]
    body += md_table(["n prompts", "oracle", *pols], prow)
    modes = df[df.method == "oua"].groupby("mode").size() / (df.method == "oua").sum()
    # Pooled OUA coverage with a replicate-clustered SE (all cells of a replicate pooled).
    oua_all = df[df.method == "oua"].groupby("replicate")["covered"].mean()
    out_pol = [f"{row.policy} at n = {row.n_prompts}, {pct(row.oracle_fraction)}: {row.coverage:.3f}"
               for row in per.itertuples() if not COVERAGE_BAND[0] <= row.coverage <= COVERAGE_BAND[1]]
    body += [
        "",
        "## Reading",
        "",
        ("- OUA coverage is inside [0.93, 0.97] in every cell" if not outside else
         "- OUA coverage is **outside [0.93, 0.97]** in: " + "; ".join(outside))
        + f"; over all cells it is {oua_all.mean():.3f} ± {oua_all.std(ddof=1) / np.sqrt(oua_all.size):.3f} "
        + _lean(oua_all.mean(), oua_all.std(ddof=1) / np.sqrt(oua_all.size)) + ".",
        _per_policy_note(per, out_pol, r.reps),
        f"- The naive judge mean covers {df[df.method == 'naive'].covered.mean():.3f} of the time "
        "overall: the judge is miscalibrated, so its mean is not an affine function of the true "
        "mean, and more prompts only narrow its interval around the wrong value.",
        f"- Ignoring the calibrator's uncertainty (no OUA) covers {cse.xs('no_oua').mean()['mean']:.3f} "
        f"on average vs {cse.xs('oua').mean()['mean']:.3f} with OUA; with labels on every policy the "
        "residual term makes the estimate first-order insensitive to calibration error, so the "
        "difference is small here (see `study_naive_ci.md` for where it is not).",
        "- Calibration mode chosen by 'auto': " + ", ".join(
            f"{k} {v:.1%}" for k, v in modes.items()) + ".",
    ]
    fig = _figure(df, cse, s, grid)
    design = (
        "Design: `cje.synthetic.make_direct_eval` (miscalibrated S-curve judge on 0–10, labels "
        "1–5, the five default policies incl. `verbose` with a judge bonus, one response per "
        "prompt and policy), MCAR oracle labels on every policy's rows at each oracle fraction; "
        "`cje.analyze` with its defaults (mode 'auto', K = 5). Each cell pools 5 policies × "
        f"{r.reps} replicates. The DGP was not tuned to these results."
    )
    return write_results(r, title="Study 1 — coverage, bias and RMSE of the direct estimator",
                         seconds=secs, design=design, body=body, fig=fig)


def _per_policy_note(per: pd.DataFrame, out_pol: list[str], reps: int) -> str:
    """One bullet on the per-policy coverage cells outside the band."""
    if not out_pol:
        return "- Per policy, every cell is inside the band."
    note = (f"- Per policy (binomial MC SE ≈ {np.sqrt(0.95 * 0.05 / reps):.3f}), cells outside the "
            "band: " + "; ".join(out_pol) + ".")
    verbose = per[per.policy == "verbose"]["coverage"].mean()
    if verbose > per[per.policy != "verbose"]["coverage"].mean() + 0.005:
        note += (f" `verbose` (planted judge bonus) covers more than the others throughout "
                 f"(mean {verbose:.3f}).")
    return note


def _lean(mean: float, se: float) -> str:
    """Describe a pooled coverage relative to 0.95 (beyond 2 MC SE counts)."""
    if mean > 0.95 + 2 * se:
        return "(slightly conservative: above 0.95 by more than 2 MC SE)"
    if mean < 0.95 - 2 * se:
        return "(slightly anti-conservative: below 0.95 by more than 2 MC SE)"
    return "(within 2 MC SE of 0.95)"


def _figure(df: pd.DataFrame, cse: pd.DataFrame, s: pd.DataFrame, grid: dict[str, Any]) -> Any:
    from matplotlib.ticker import FormatStrFormatter, LogLocator

    ns = list(grid["n_prompts"])
    fr = np.array(grid["fractions"], dtype=float)
    fig, ax = figure(2, len(ns), (max(4.0 * len(ns), 6.0), 6.4))
    colors = {"oua": "C0", "no_oua": "C1", "naive": "C3"}
    for j, n in enumerate(ns):
        top, bot = ax[0, j], ax[1, j]
        top.axhspan(*COVERAGE_BAND, color="0.9", zorder=0, label="[0.93, 0.97]")
        top.axhline(0.95, color="0.5", lw=0.8, ls=":")
        for m in ("oua", "no_oua"):
            c = cse.xs(m).xs(n)
            top.errorbar(fr * (1.03 if m == "no_oua" else 1), c["mean"].to_numpy(),
                         yerr=2 * c["se"].to_numpy(), marker="o", capsize=3, color=colors[m],
                         label=METHODS[m])
        naive = cse.xs("naive").xs(n)["mean"].max()
        top.set_title(f"n = {n} prompts (naive coverage ≤ {naive:.2f})", fontsize=10)
        top.set_ylim(0.9, 1.0)
        for m in METHODS:
            if m == "no_oua":
                continue
            rm = s.xs(m).xs(n)["rmse"]
            bot.plot(fr, rm.to_numpy(), marker="o", color=colors[m],
                     label="calibrated (OUA or not)" if m == "oua" else METHODS[m])
        bot.set_yscale("log")
        bot.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        bot.yaxis.set_major_formatter(FormatStrFormatter("%g"))
        for a in (top, bot):
            a.set_xscale("log")
            a.set_xticks(fr, [pct(f) for f in fr])
            a.minorticks_off()
            a.grid(alpha=0.3)
        bot.set_xlabel("oracle fraction (labels on every policy)")
    ax[0, 0].set_ylabel("coverage of 95% CI (±2 MC SE)")
    ax[1, 0].set_ylabel("RMSE (label points, 1–5 scale)")
    rm = s["rmse"].drop(index="no_oua", level="method")
    for a in ax[1]:
        a.set_ylim(rm.min() / 1.3, rm.max() * 1.3)  # one scale across n
    ax[0, 0].legend(loc="lower left", fontsize=8)
    ax[1, -1].legend(loc="center right", fontsize=8)
    fig.suptitle("Direct estimator, miscalibrated judge: coverage and RMSE")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the coverage study",
                  quick_note="Small grid (n = 400, oracle fractions 10% and 25%) for tests.")
