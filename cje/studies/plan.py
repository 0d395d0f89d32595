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
* ``miscalibrated/0.3, cheapest design``: as the first, but the plan is the cheapest design when
  a label costs 20 judged responses, so prompts change too (checks the ``a/n`` part);
* held out: ``monitor-dgp`` — :func:`cje.synthetic.make_monitor_eval` (one window, no change:
  a judge-first model with a power link and a 0.1-point grid, 2 policies, exact label counts);
  ``two-draws/0.5`` — ``make_direct_eval`` with 2 responses per prompt, judge noise 0.5 and a
  length bias of 0.3 (clusters of two rows; labels land on single rows of a prompt);
  ``arena (real data)`` — the Arena sample's ``base`` policy, pilot of 50 labels, ±0.025.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.errors import CJEWarning
from cje.studies._common import StudyRun, figure, md_table, replicate, study_entry, write_results

__all__ = ["CELLS", "DEFAULT_SEED", "FULL", "QUICK", "run", "task"]

NAME = "plan"
DEFAULT_SEED = 20261206
PILOT_SHARE = 0.05
FULL: dict[str, Any] = {"reps": 200, "n_prompts": 2000}
QUICK: dict[str, Any] = {"reps": 8, "n_prompts": 600}
#: cell -> (generator, options, target half-width at 2,000 prompts, held out, design): design
#: "labels" plans labels at the pilot's prompts, "cheapest" the cheapest prompts + labels when a
#: label costs 20 judged responses (prompts change too)
CELLS: dict[str, tuple[str, dict[str, Any], float, bool, str]] = {
    "miscalibrated/0.3": ("direct", {"judge": "miscalibrated", "judge_noise": 0.3}, 0.07, False,
                          "labels"),
    "calibrated/0.3": ("direct", {"judge": "calibrated", "judge_noise": 0.3}, 0.07, False,
                       "labels"),
    "miscalibrated/0.6": ("direct", {"judge": "miscalibrated", "judge_noise": 0.6}, 0.08, False,
                          "labels"),
    "miscalibrated/0.3, cheapest design": ("direct", {"judge": "miscalibrated",
                                                      "judge_noise": 0.3}, 0.07, False,
                                           "cheapest"),
    "monitor-dgp": ("monitor", {}, 0.07, True, "labels"),
    "two-draws/0.5": ("direct", {"draws_per_prompt": 2, "judge_noise": 0.5,
                                 "length_effect": 0.3}, 0.07, True, "labels"),
    "arena (real data)": ("arena", {}, 0.025, True, "labels"),
}
#: Label cost of the "cheapest" cells, in judged responses.
LABEL_COST = 20.0
#: Labelled rows of the Arena sample's base policy (the pool both rounds draw from).
_ARENA: dict[str, Any] = {}


def _draw(gen: str, opts: dict[str, Any], n: int, share: float, rng: np.random.Generator
          ) -> tuple[pd.DataFrame, Any, Any] | None:
    """One data set of ``n`` prompts with ``share`` of its rows labelled (None: the Arena pool
    holds fewer labels than that)."""
    if gen == "direct":
        from cje.synthetic import make_direct_eval

        sim = make_direct_eval(n, oracle_fraction=min(share, 1.0), rng=rng, **opts)
        return sim.data, sim.judge_scale, sim.label_scale
    if gen == "arena":  # base's 1,000 responses; labels drawn from its 480 labelled ones
        if not _ARENA:
            from cje.datasets import arena

            fd = arena().fresh_draws
            base = fd[fd.policy == "base"].reset_index(drop=True)
            _ARENA.update(base=base, labelled=np.flatnonzero(base.oracle_label.notna()))
        base, pool = _ARENA["base"], _ARENA["labelled"]
        m = int(round(share * len(base)))
        if m > pool.size:
            return None
        keep = np.zeros(len(base), dtype=bool)
        keep[rng.choice(pool, m, replace=False)] = True
        return base.assign(oracle_label=base.oracle_label.where(keep)), None, None
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
        gen, opts, h2000, _held, design = CELLS[cell]
        n_pilot = 1000 if gen == "arena" else n_prompts
        # the same label share at other sizes
        h = h2000 if gen == "arena" else h2000 * float(np.sqrt(2000 / n_prompts))
        r1, r2 = child.spawn(2)
        drawn = _draw(gen, opts, n_pilot, PILOT_SHARE, r1)
        assert drawn is not None
        data, js, ls = drawn
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            p = plan(data, half_width=h, judge_scale=js, label_scale=ls, n_boot=400,
                     seed=int(child.integers(2**31)),
                     label_cost=LABEL_COST if design == "cheapest" else None)
        d = p.design
        n2, share = n_pilot, d["label_share"]
        if design == "cheapest" and d["optimal"]["n_prompts"] is not None:
            n2, share = int(d["optimal"]["n_prompts"]), float(d["optimal"]["label_share"])
        second = _draw(gen, opts, n2, float(share), r2) if d["reachable"] else None
        if second is None:  # not reachable, or beyond the labels the Arena sample holds
            out.append({"cell": cell, "policy": "", "feasible": False, "binding": False,
                        "need": p[d["binding"]].labels_needed or -1})
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            rep = analyze(second[0], judge_scale=js, label_scale=ls)
        for t in p.targets:
            e = rep[t.target]
            q = float(_t(e.df, e.alpha))
            achieved = q * e.se
            pred = p.predict(t.target, n2, float(share) * n2 * t.rows_per_prompt)
            # labels the true variance would need at the pilot's prompts: the achieved label
            # part of SE² (SE² − a/n) scaled to the target
            lab_part = e.se**2 - t.a / e.n_prompts
            room = (h / q) ** 2 - t.a / t.n_prompts
            need_true = float(e.n_labels * lab_part / room) if lab_part > 0 and room > 0 \
                else float("nan")
            out.append({
                "cell": cell, "policy": t.target, "feasible": True,
                "binding": t.target == d["binding"], "label_share": float(share),
                "n_prompts": n2, "predicted": pred, "achieved": achieved,
                "ratio": achieved / pred, "need": t.labels_needed or -1,
                "need_low": t.labels_needed_low or -1,
                "need_high": t.labels_needed_high if t.labels_needed_high is not None else -1,
                "need_true": need_true if design == "labels" else float("nan"),
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
    df, secs, r = replicate(r, t, {"version": 2})
    rng = np.random.default_rng(0)
    rows = []
    bad = []
    for cell, (_g, _o, h, held, _design) in CELLS.items():
        allc = df[df.cell == cell]
        if not len(allc):
            continue
        sub = allc[allc.feasible]
        n_rep = int(allc.replicate.nunique())
        n_out = int((~allc.feasible).sum())
        if not len(sub):
            rows.append([f"`{cell}`", str(n_rep), *(["—"] * 9), f"{n_out}"])
            continue
        b = sub[sub.binding]
        med, med_se = _boot_q(sub, "ratio", 0.5, rng)
        p10, p10_se = _boot_q(sub, "ratio", 0.1, rng)
        p90, p90_se = _boot_q(sub, "ratio", 0.9, rng)
        bmed, bmed_se = _boot_q(b, "ratio", 0.5, rng)
        high = sub["need_high"].where(sub["need_high"] >= 0, np.inf)
        valid = sub["need_true"].notna()
        inside = (sub["need_true"] >= sub["need_low"]) & (sub["need_true"] <= high)
        cov = f"{inside[valid].mean():.2f}" if valid.any() else "—"
        ok = abs(med - 1) <= 0.15
        if not ok:
            bad.append(cell)
        target = h if _g == "arena" else h * np.sqrt(2000 / grid["n_prompts"])
        rows.append([f"`{cell}`" + (" (held out)" if held else ""), str(n_rep), f"{target:.3f}",
                     f"{sub.n_prompts.mean():,.0f} / {sub.label_share.mean():.1%}",
                     f"{med:.3f} ± {med_se:.3f}", f"{p10:.3f} ± {p10_se:.3f}",
                     f"{p90:.3f} ± {p90_se:.3f}", f"{bmed:.3f} ± {bmed_se:.3f}", cov,
                     f"{sub.cal_share_pilot.median():.2f}", "✓" if ok else "**✗**", str(n_out)])
    body = ["## Results", ""]
    body += md_table(["cell", "replicates", "target ±", "planned prompts / label share",
                      "median achieved/predicted (all policies)", "10th pct", "90th pct",
                      "median, binding policy", "80% plan interval holds the labels needed",
                      "pilot calibration share (median)", "median within ±15%",
                      "plans not carried out"], rows)
    body += ["", "± Monte Carlo SE (bootstrap over replicates; the policies of a replicate share a "
             "pilot and a second round). 'Binding policy': the one the joint design is sized for "
             "— the largest of several noisy predictions, so its prediction is biased upwards "
             "(achieved/predicted below 1: the plan errs on the safe side for it). 'Labels "
             "needed' of the interval check: the second round's label part of SE² (SE² − a/n) "
             "inverted for the target — it carries the second round's own noise, so this share is "
             "a rough check, not a coverage. 'Plans not carried out': the Arena sample holds 480 "
             "labels of `base`; a pilot that plans more is left out (it predicted a large variance, "
             "so leaving it out favours ratios above 1).", "", "## Reading", "",
             ("- The median achieved/predicted half-width is within ±15% in every cell, "
              "held-out DGPs and the real-data cell included." if not bad else
              "- Outside ±15% (median): " + ", ".join(f"`{c}`" for c in bad) + ".")]
    fig, ax = figure(1, 1, (9.0, 4.2))
    a = ax[0, 0]
    ok = df[df.feasible]
    cells = [c for c in CELLS if (ok.cell == c).any()]
    a.boxplot([ok[ok.cell == c]["ratio"].to_numpy() for c in cells], whis=(10, 90),
              showfliers=False)
    a.set_xticks(range(1, len(cells) + 1), [c.replace(", ", ",\n").replace(" (", "\n(")
                                            for c in cells], fontsize=7.5)
    a.axhspan(0.85, 1.15, color="0.9", zorder=0)
    a.axhline(1.0, color="0.4", lw=0.8)
    a.set_ylabel("achieved / predicted half-width")
    a.set_title("cje.plan: predicted vs achieved half-width (box: 25–75%, whiskers 10–90%)",
                fontsize=9)
    design = (
        f"Design: a pilot of {grid['n_prompts']:,} prompts with {PILOT_SHARE:.0%} of rows labelled "
        "(uniform at random), planned by `cje.plan(data, half_width=h)` — the joint design: one "
        "label share for every policy, set by the binding policy — at the pilot's prompts, or "
        f"(`cheapest design`) the cheapest prompts + labels with `label_cost={LABEL_COST:g}`; the "
        "planned design drawn afresh from the same DGP and analysed by `cje.analyze` with its "
        "defaults; each policy's achieved half-width t(df)·SE (unclipped) against the plan's "
        "prediction at that design. The target h is chosen per cell so that the planned label "
        "share is about 15–40%. Real data: the Arena sample's `base` policy (1,000 responses, "
        "480 labelled): a pilot of 50 of its labels, the second round the planned number drawn "
        "afresh from the 480 (both rounds from one pool of labels, so they are not independent "
        "samples of the population)."
    )
    return write_results(r, title="Study — plan accuracy: predicted vs achieved half-width "
                         "(cje.plan)", seconds=secs, design=design, body=body, fig=fig)


run = study_entry(NAME, FULL, QUICK, _report, title="the plan-accuracy study",
                  quick_note="Small tier (600 prompts) for tests.")
