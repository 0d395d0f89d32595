"""Study — plan accuracy (:func:`cje.plan`): is the half-width a plan predicts the one you get?

Each replicate, in every cell below: a pilot of ``n`` prompts with 5% of rows labelled (uniform at
random) is drawn and planned with :func:`cje.plan` for a target half-width ``h`` at the pilot's
prompts (the joint design: the same label share for every policy, enough for the binding
policy). Then the planned design — ``n`` prompts, that label share — is drawn afresh from the same
data-generating process and analysed with :func:`cje.analyze`; each policy's achieved half-width
``t_{df}·SE`` is compared with the plan's prediction for it at that design (the binding policy's
prediction is ``h`` itself). Reported: the median of achieved / predicted over replicates ×
policies and over the binding policy alone, their 10th–90th percentiles, with Monte Carlo SEs
(bootstrap over replicates), and how often the plan's 80% interval on the labels needed holds the
labels that the true variance would need (the achieved SE at the planned design, inverted through
the fitted ``a``).

Cells (the judge settings and the held-out DGPs were fixed before any result was seen):

* ``miscalibrated/0.3``, ``calibrated/0.3``, ``miscalibrated/0.6``:
  :func:`cje.synthetic.make_direct_eval` (5 policies) with that judge link and noise — the DGP the
  planner was developed on;
* held out: ``monitor-dgp`` — :func:`cje.synthetic.make_monitor_eval` (one window, no change:
  a judge-first model with a power link and a 0.1-point grid, 2 policies, exact label counts);
  ``two-draws/0.5`` — ``make_direct_eval`` with 2 responses per prompt, judge noise 0.5 and a
  length bias of 0.3 (clusters of two rows; labels land on single rows of a prompt).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.errors import CJEWarning
from cje.studies._common import StudyRun, figure, md_table, replicate, study_run, write_results

__all__ = ["CELLS", "DEFAULT_SEED", "FULL", "QUICK", "run", "task"]

NAME = "plan"
DEFAULT_SEED = 20261206
PILOT_SHARE = 0.05
FULL: dict[str, Any] = {"reps": 200, "n_prompts": 2000}
QUICK: dict[str, Any] = {"reps": 8, "n_prompts": 600}
#: cell -> (generator, options, target half-width at 2,000 prompts, held out)
CELLS: dict[str, tuple[str, dict[str, Any], float, bool]] = {
    "miscalibrated/0.3": ("direct", {"judge": "miscalibrated", "judge_noise": 0.3}, 0.07, False),
    "calibrated/0.3": ("direct", {"judge": "calibrated", "judge_noise": 0.3}, 0.07, False),
    "miscalibrated/0.6": ("direct", {"judge": "miscalibrated", "judge_noise": 0.6}, 0.08, False),
    "monitor-dgp": ("monitor", {}, 0.07, True),
    "two-draws/0.5": ("direct", {"draws_per_prompt": 2, "judge_noise": 0.5,
                                 "length_effect": 0.3}, 0.07, True),
}


def _draw(gen: str, opts: dict[str, Any], n: int, share: float, rng: np.random.Generator
          ) -> tuple[pd.DataFrame, tuple[float, float], tuple[float, float]]:
    """One data set of ``n`` prompts with ``share`` of its rows labelled."""
    if gen == "direct":
        from cje.synthetic import make_direct_eval

        sim = make_direct_eval(n, oracle_fraction=min(share, 1.0), rng=rng, **opts)
        return sim.data, sim.judge_scale, sim.label_scale
    from cje.synthetic.monitor import make_monitor_eval

    rows = 2 * n
    m = int(round(min(share, 1.0) * rows))
    sim = make_monitor_eval(n_windows=1, rows_per_window=rows, labels_per_window=m, kind="none",
                            change_at=None, rng=rng, **opts)
    return sim.data, sim.judge_scale, sim.label_scale


def task(rng: np.random.Generator, replicate: int, *, n_prompts: int,
         cells: tuple[str, ...] = tuple(CELLS)) -> list[dict[str, Any]]:
    """One replicate: every cell with its own child stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused).
    n_prompts : int
        Prompts of the pilot and of the second round.
    cells : tuple of str
        Cells of :data:`CELLS` to run.

    Returns
    -------
    list of dict
        One row per cell × policy: ``cell, policy, binding, label_share, predicted, achieved,
        ratio, need, need_low, need_high, need_true, pilot_labels, labels, cal_share_pilot``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=600, cells=("calibrated/0.3",))
    >>> len(rows), sorted(rows[0])[:3]
    (5, ['achieved', 'binding', 'cal_share_pilot'])
    """
    from cje.analysis import analyze
    from cje.planning import _t, plan

    out: list[dict[str, Any]] = []
    for cell, child in zip(cells, rng.spawn(len(cells)), strict=True):
        gen, opts, h2000, _held = CELLS[cell]
        h = h2000 * float(np.sqrt(2000 / n_prompts))  # the same label share at other sizes
        r1, r2 = child.spawn(2)
        data, js, ls = _draw(gen, opts, n_prompts, PILOT_SHARE, r1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            p = plan(data, half_width=h, judge_scale=js, label_scale=ls, n_boot=400,
                     seed=int(child.integers(2**31)))
        d = p.design
        if not d["reachable"]:
            continue
        share = float(d["label_share"])
        data2, _, _ = _draw(gen, opts, n_prompts, share, r2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            rep = analyze(data2, judge_scale=js, label_scale=ls)
        for t in p.targets:
            e = rep[t.target]
            achieved = float(_t(e.df, e.alpha) * e.se)
            pred = float(d["predicted"][t.target])
            # labels the true variance would need: the achieved label part (SE² − a/n) scaled
            lab_part = e.se**2 - t.a / e.n_prompts
            need_true = (float(e.n_labels * lab_part / ((h / _t(e.df, e.alpha)) ** 2
                                                        - t.a / t.n_prompts))
                         if lab_part > 0 and (h / _t(e.df, e.alpha)) ** 2 > t.a / t.n_prompts
                         else float("nan"))
            out.append({
                "cell": cell, "policy": t.target, "binding": t.target == d["binding"],
                "label_share": share, "predicted": pred, "achieved": achieved,
                "ratio": achieved / pred, "need": t.labels_needed, "need_low": t.labels_needed_low,
                "need_high": t.labels_needed_high, "need_true": need_true,
                "pilot_labels": t.n_labels, "labels": e.n_labels,
                "cal_share_pilot": t.c / t.n_labels / t.se**2 if t.n_labels else 0.0,
            })
    return out


def _boot_q(df: pd.DataFrame, col: str, q: float, rng: np.random.Generator, b: int = 400
            ) -> tuple[float, float]:
    """Quantile ``q`` of ``col`` and its Monte Carlo SE (bootstrap over replicates)."""
    reps = df["replicate"].unique()
    groups = {r: g[col].to_numpy() for r, g in df.groupby("replicate")}
    est = float(np.quantile(df[col].to_numpy(), q))
    vals = []
    for _ in range(b):
        pick = rng.choice(reps, reps.size)
        vals.append(np.quantile(np.concatenate([groups[r] for r in pick]), q))
    return est, float(np.std(vals, ddof=1))


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    from functools import partial

    t = partial(task, n_prompts=grid["n_prompts"])
    df, secs, r = replicate(r, t, {"version": 1})
    rng = np.random.default_rng(0)
    rows = []
    ok_all = True
    for cell, (_g, _o, h, held) in CELLS.items():
        sub = df[df.cell == cell]
        if not len(sub):
            continue
        b = sub[sub.binding]
        med, med_se = _boot_q(sub, "ratio", 0.5, rng)
        p10, p10_se = _boot_q(sub, "ratio", 0.1, rng)
        p90, p90_se = _boot_q(sub, "ratio", 0.9, rng)
        bmed, bmed_se = _boot_q(b, "ratio", 0.5, rng)
        inside = ((sub["need_true"] >= sub["need_low"]) & (sub["need_true"] <= sub["need_high"]))
        valid = sub["need_true"].notna() & sub["need_high"].notna()
        cov = float(inside[valid].mean()) if valid.any() else float("nan")
        ok = abs(med - 1) <= 0.15 and abs(bmed - 1) <= 0.15
        ok_all &= ok
        rows.append([f"`{cell}`" + (" (held out)" if held else ""),
                     str(sub.replicate.nunique()),
                     f"{h * np.sqrt(2000 / grid['n_prompts']):.3f}",
                     f"{sub.label_share.mean():.1%}",
                     f"{med:.3f} ± {med_se:.3f}", f"{p10:.3f} ± {p10_se:.3f}",
                     f"{p90:.3f} ± {p90_se:.3f}", f"{bmed:.3f} ± {bmed_se:.3f}",
                     f"{cov:.2f}", f"{sub.cal_share_pilot.median():.2f}",
                     "✓" if ok else "**✗**"])
    body = ["## Results", ""]
    body += md_table(["cell", "replicates", "target ±", "planned label share",
                      "median achieved/predicted (all policies)", "10th pct", "90th pct",
                      "median, binding policy", "80% plan interval holds the labels needed",
                      "pilot calibration share (median)", "within ±15%"], rows)
    body += ["", "± Monte Carlo SE (bootstrap over replicates; the policies of a replicate share a "
             "pilot and a second round). 'Labels needed' of the interval check: the achieved "
             "second-round label part of SE² (SE² − a/n) inverted for the target — it carries the "
             "second round's own noise, so the share is a rough check, not a coverage.", "",
             "## Reading", "",
             ("- The median achieved/predicted half-width is within ±15% in every cell, "
              "held-out DGPs included." if ok_all else
              "- At least one cell is outside ±15% (marked ✗): see the table.")]
    fig, ax = figure(1, 1, (7.0, 4.0))
    a = ax[0, 0]
    cells = [c for c in CELLS if (df.cell == c).any()]
    a.boxplot([df[df.cell == c]["ratio"].to_numpy() for c in cells], whis=(10, 90),
              showfliers=False)
    a.set_xticks(range(1, len(cells) + 1), cells, rotation=20, fontsize=8)
    a.axhspan(0.85, 1.15, color="0.9", zorder=0)
    a.axhline(1.0, color="0.4", lw=0.8)
    a.set_ylabel("achieved / predicted half-width")
    a.set_title("cje.plan: predicted vs achieved half-width (box: 25–75%, whiskers 10–90%)",
                fontsize=9)
    design = (
        f"Design: a pilot of {grid['n_prompts']:,} prompts with {PILOT_SHARE:.0%} of rows labelled "
        "(uniform at random), planned by `cje.plan(data, half_width=h)` at the pilot's prompts "
        "(the joint design: one label share for every policy, set by the binding policy); the "
        "planned design drawn afresh from the same DGP and analysed by `cje.analyze` with its "
        "defaults. Achieved half-width = t(df)·SE of the report (unclipped). The target h is "
        "chosen per cell so that the planned label share is about 15–40%."
    )
    return write_results(r, title="Study — plan accuracy: predicted vs achieved half-width "
                         "(cje.plan)", seconds=secs, design=design, body=body, fig=fig)


def run(reps: int | None = None, *, n_jobs: int = 1, seed: int = DEFAULT_SEED, quick: bool = False,
        out_dir: Any = None, backend: str = "loky", scheduler: Any = None,
        progress: bool | None = None, command: str | None = None, resume: bool = False,
        force: bool = False) -> Path:
    """Run the plan-accuracy study and write ``study_plan.{md,png,parquet}`` to ``out_dir``.

    Full size: 200 replicates of every cell at 2,000 prompts; ``quick=True``: 8 replicates at
    600 prompts (tests).

    Parameters
    ----------
    reps : int, optional
        Replicates (default 200, or 8 with ``quick``).
    n_jobs, backend, scheduler, progress
        Passed to :func:`cje.montecarlo.run_replicates`.
    seed : int
        Root seed of the replicates (default 20261206).
    quick : bool
        Small tier for tests.
    out_dir : path, optional
        Where the results go (default :func:`cje.studies.default_out_dir`).
    command : str, optional
        The command line to record.
    resume, force : bool
        As in the other studies (:mod:`cje.studies`).

    Returns
    -------
    pathlib.Path
        The markdown results file.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     md = run(reps=2, quick=True, out_dir=tmp)
    ...     print(md.name, md.with_suffix(".png").is_file())
    study_plan.md True
    """
    r = study_run(NAME, reps, full_reps=FULL["reps"], quick_reps=QUICK["reps"], n_jobs=n_jobs,
                  seed=seed, quick=quick, out_dir=out_dir, backend=backend, scheduler=scheduler,
                  progress=progress, command=command, resume=resume, force=force)
    return _report(r, QUICK if quick else FULL)
