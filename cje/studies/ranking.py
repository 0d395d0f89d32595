"""Study 4 — ranking accuracy vs label budget (calibrated vs naive judge means).

For each oracle fraction, :func:`cje.synthetic.make_direct_eval` data (miscalibrated judge, the
five default policies, n = 2000 prompts, MCAR labels on every policy's rows) is analysed with
:func:`cje.analyze`; the five policies are ordered by the calibrated estimates and by the raw judge
means and compared with the true order. Per replicate: pairwise ordering accuracy (share of the
10 pairs in the true order), Kendall τ, whether the whole ranking and the top policy are right,
and for the calibrated estimates how many pairs cje declares separated (Holm-adjusted paired
contrasts) and whether any of those is in the wrong direction.
"""

from __future__ import annotations

import warnings
from functools import partial
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.analysis import analyze
from cje.errors import CJEWarning
from cje.studies import DEFAULT_SEEDS
from cje.studies._common import (
    StudyRun,
    figure,
    md_table,
    pct,
    replicate,
    replicate_se,
    study_entry,
    write_results,
)
from cje.synthetic.direct import default_policies, make_direct_eval

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "budget_for", "run", "task"]

NAME = "ranking"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 2000, "fractions": (0.01, 0.02, 0.05, 0.10, 0.25), "n_prompts": 2000}
QUICK: dict[str, Any] = {"reps": 30, "fractions": (0.02, 0.10), "n_prompts": 500}
TARGET = 0.99
METHODS = {"calibrated": "calibrated (cje)", "naive": "naive judge mean"}


def task(rng: np.random.Generator, replicate: int, *, fractions: tuple[float, ...],
         n_prompts: int) -> list[dict[str, Any]]:
    """One replicate: one row per (oracle fraction, method, pair of policies).

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    fractions : tuple of float
        Oracle fractions (label budgets).
    n_prompts : int
        Prompts per data set.

    Returns
    -------
    list of dict
        Per fraction, method (``calibrated``, ``naive``) and pair (truly better first):
        ``oracle_fraction, n_labels, method, pair, correct`` (ordered as the truth),
        ``separated`` (Holm-significant contrast; calibrated only) and ``involves_best``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, fractions=(0.25,), n_prompts=200)
    >>> len(rows)  # 2 methods × 10 pairs of 5 policies
    20
    >>> rows[0]["method"], rows[0]["pair"]
    ('calibrated', 'improved > concise')
    """
    rows: list[dict[str, Any]] = []
    for frac, child in zip(fractions, rng.spawn(len(fractions)), strict=True):
        sim = make_direct_eval(n_prompts, oracle_fraction=frac, rng=child)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            rep = analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        n_labels = int(sim.data["oracle_label"].notna().sum())
        sig = {frozenset((c.policy_a, c.policy_b)): c.significant for c in rep.pairs}
        values = {
            "calibrated": {e.policy: e.estimate for e in rep.estimates},
            "naive": {e.policy: e.naive_estimate for e in rep.estimates},
        }
        truth = sim.truth
        for method, v in values.items():
            for a, b in combinations(sorted(truth, key=lambda p: -truth[p]), 2):  # a truly better
                rows.append({
                    "oracle_fraction": frac, "n_labels": n_labels, "method": method,
                    "pair": f"{a} > {b}", "correct": bool(v[a] > v[b]),
                    "separated": bool(sig.get(frozenset((a, b)), False)) if method == "calibrated"
                    else False,
                    "involves_best": a == max(truth, key=truth.__getitem__),
                })
    return rows


def budget_for(labels: np.ndarray, accuracy: np.ndarray, target: float = TARGET) -> float | None:
    """Label budget where ``accuracy`` first reaches ``target``, interpolated linearly in log labels.

    Parameters
    ----------
    labels : numpy.ndarray
        Label budgets of the grid, increasing.
    accuracy : numpy.ndarray
        Ranking accuracy at each budget.
    target : float
        The accuracy to reach (default 0.99).

    Returns
    -------
    float or None
        The interpolated budget; ``None`` when the target is never reached on the grid, and the
        smallest budget when it is reached already there.

    Examples
    --------
    >>> budget_for(np.array([100, 1000]), np.array([0.9, 1.0]), 0.95)
    316.2...
    >>> budget_for(np.array([100, 1000]), np.array([0.9, 0.95]), 0.99) is None
    True
    """
    labels = np.asarray(labels, dtype=float)
    accuracy = np.asarray(accuracy, dtype=float)
    hit = np.flatnonzero(accuracy >= target)
    if hit.size == 0:
        return None
    i = int(hit[0])
    if i == 0:
        return float(labels[0])
    x0, x1 = np.log(labels[i - 1]), np.log(labels[i])
    y0, y1 = accuracy[i - 1], accuracy[i]
    return float(np.exp(x0 + (target - y0) / (y1 - y0) * (x1 - x0)))


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    t = partial(task, fractions=tuple(grid["fractions"]), n_prompts=int(grid["n_prompts"]))
    df, secs, r = replicate(r, t, {"version": 1})
    per = per_replicate(df)
    fracs = list(grid["fractions"])
    stats = {}
    for col in ("accuracy", "tau", "exact", "top1", "n_separated", "wrong_separated"):
        stats[col] = replicate_se(per, ["method", "oracle_fraction"], col).set_index(
            ["method", "oracle_fraction"])
    labels = per.groupby("oracle_fraction")["n_labels"].mean()
    rows = []
    for f in fracs:
        c, n_ = ("calibrated", f), ("naive", f)
        rows.append([
            pct(f), f"{labels.loc[f]:.0f}",
            f"{stats['accuracy'].loc[c, 'mean']:.4f} ± {stats['accuracy'].loc[c, 'se']:.4f}",
            f"{stats['accuracy'].loc[n_, 'mean']:.4f}",
            f"{stats['tau'].loc[c, 'mean']:.3f}", f"{stats['tau'].loc[n_, 'mean']:.3f}",
            f"{stats['exact'].loc[c, 'mean']:.3f}", f"{stats['exact'].loc[n_, 'mean']:.3f}",
            f"{stats['top1'].loc[c, 'mean']:.3f}",
            f"{stats['n_separated'].loc[c, 'mean']:.2f}", f"{stats['wrong_separated'].loc[c, 'mean']:.4f}",
        ])
    acc_cal = stats["accuracy"].xs("calibrated")["mean"].reindex(fracs).to_numpy()
    budget = budget_for(labels.reindex(fracs).to_numpy(), acc_cal)
    body = ["## Results", ""]
    body += md_table(["oracle fraction", "labels", "pairwise acc. calibrated", "pairwise acc. naive",
                      "τ calibrated", "τ naive", "exact ranking cal.", "exact ranking naive",
                      "top-1 cal.", "pairs separated (cje)", "P(a separated pair is wrong)"], rows)
    pair_acc = df[df.method == "calibrated"].groupby(["pair", "oracle_fraction"])["correct"].mean().unstack()
    naive_pair = df[df.method == "naive"].groupby("pair")["correct"].mean()
    prow = [[p] + [f"{pair_acc.loc[p, f]:.3f}" for f in fracs] + [f"{naive_pair.loc[p]:.3f}"]
            for p in dict.fromkeys(df["pair"])]
    total = int(grid["n_prompts"]) * len(default_policies())
    if budget is None:
        reach = (f"**never reached** on this grid: at {pct(fracs[-1])} ({labels.iloc[-1]:.0f} labels) "
                 f"the calibrated pairwise accuracy is {acc_cal[-1]:.4f}")
    else:
        reach = (f"≈ **{budget:.0f} labels** ({budget / total:.1%} of the {total} responses; "
                 "interpolated linearly in log labels between grid points)")
    worst = pair_acc.iloc[:, 0].idxmin()
    body += [
        "",
        "Per-replicate statistics averaged over replicates (± MC SE). Pairwise accuracy: share of "
        "the 10 policy pairs ordered as the truth; τ: Kendall's τ between estimated and true "
        "order (= 2·accuracy − 1 without ties); 'pairs separated': Holm-significant paired "
        "contrasts out of 10; last column: per replicate, the share of separated pairs whose "
        "sign is wrong (0 when none are separated).",
        "",
        f"Label budget to reach {TARGET:.0%} mean pairwise accuracy (calibrated): {reach}. "
        f"The naive judge mean stays at {stats['accuracy'].xs('naive')['mean'].mean():.3f} whatever the "
        "budget (it uses no labels).",
        "",
        "Per-pair ordering accuracy (calibrated, by oracle fraction; last column naive):",
        "",
    ]
    body += md_table(["pair (truly better first)", *[pct(f) for f in fracs], "naive"], prow)
    body += [
        "",
        "## Reading",
        "",
        f"- The hardest pair at the smallest budget is {worst} "
        f"({pair_acc.loc[worst, fracs[0]]:.3f} at {pct(fracs[0])}).",
        "- The naive judge mean orders pairs by the judge's view: "
        + ", ".join(f"{p} {a:.2f}" for p, a in naive_pair.sort_values().head(3).items())
        + " (its three worst pairs; `verbose` has a planted judge bonus). No label budget fixes "
          "that: the judge mean is precise about the wrong thing.",
        _precision_note(pair_acc, naive_pair, fracs),
        f"- When cje *declares* two policies different (Holm-adjusted contrast), the sign is wrong "
        f"in at most {stats['wrong_separated'].xs('calibrated')['mean'].max():.4f} of separated pairs "
        "(worst oracle fraction): an uncertain order shows up as a tie, not as a wrong claim.",
    ]
    fig = _figure(stats, labels.reindex(fracs), fracs, budget, int(grid["n_prompts"]))
    design = (
        f"Design: `cje.synthetic.make_direct_eval`, n = {grid['n_prompts']} prompts × 5 policies "
        "(miscalibrated judge; true order improved > concise > base > verbose > small), MCAR "
        "oracle labels on every policy's rows at each fraction; `cje.analyze` defaults. "
        f"{r.reps} replicates per fraction."
    )
    return write_results(r, title="Study 4 — ranking accuracy vs label budget", seconds=secs,
                         design=design, body=body, fig=fig)


def _precision_note(pair_acc: pd.DataFrame, naive_pair: pd.Series, fracs: list[float]) -> str:
    """Pairs the judge bias does not touch, where the naive mean orders better at small budgets."""
    f0 = fracs[0]
    better = [p for p in pair_acc.index if naive_pair[p] > pair_acc.loc[p, f0] + 0.02]
    if not better:
        return "- The calibrated order is at least as accurate as the naive one for every pair."
    p = min(better, key=lambda q: pair_acc.loc[q, f0] - naive_pair[q])
    catch = next((f for f in fracs if pair_acc.loc[p, f] >= naive_pair[p] - 0.01), None)
    when = (f"it catches up at {pct(catch)}" if catch is not None
            else "it has not caught up on this grid")
    return (f"- For pairs the judge's bias does not touch, the naive mean is *more* precise at small "
            f"budgets (it has no label noise): e.g. {p} {naive_pair[p]:.3f} naive vs "
            f"{pair_acc.loc[p, f0]:.3f} calibrated at {pct(f0)}; {when}. Calibration trades "
            "variance for removing the bias; its intervals say how much.")


def per_replicate(df: pd.DataFrame) -> pd.DataFrame:
    """Per replicate × fraction × method: accuracy, τ, exact ranking, top-1, separated pairs."""
    g = df.groupby(["replicate", "oracle_fraction", "method"], sort=True)
    out = g.agg(accuracy=("correct", "mean"), n_pairs=("correct", "size"),
                n_labels=("n_labels", "first"), n_separated=("separated", "sum")).reset_index()
    out["tau"] = 2 * out["accuracy"] - 1
    out["exact"] = (out["accuracy"] == 1.0).astype(float)
    keys = ["replicate", "oracle_fraction", "method"]
    best = df[df.involves_best].groupby(keys, sort=True)["correct"].all()
    out["top1"] = best.to_numpy().astype(float)
    wrong = (df["separated"] & ~df["correct"]).groupby(
        [df["replicate"], df["oracle_fraction"], df["method"]], sort=True).sum().to_numpy()
    out["wrong_separated"] = np.where(out["n_separated"] > 0, wrong / np.maximum(out["n_separated"], 1), 0.0)
    return out


def _figure(stats: dict[str, pd.DataFrame], labels: pd.Series, fracs: list[float], budget: float | None,
            n: int) -> Any:
    fig, ax = figure(1, 2, (10.5, 4.2))
    x = labels.to_numpy()
    colors = {"calibrated": "C0", "naive": "C3"}
    for m, label in METHODS.items():
        acc = stats["accuracy"].xs(m).reindex(fracs)
        ax[0, 0].errorbar(x, acc["mean"].to_numpy(), yerr=2 * acc["se"].to_numpy(), marker="o",
                          capsize=3, color=colors[m], label=f"{label}: pairwise accuracy")
        ex = stats["exact"].xs(m).reindex(fracs)
        ax[0, 0].plot(x, ex["mean"].to_numpy(), marker="s", ls="--", color=colors[m],
                      label=f"{label}: whole ranking right")
        tau = stats["tau"].xs(m).reindex(fracs)
        ax[0, 1].errorbar(x, tau["mean"].to_numpy(), yerr=2 * tau["se"].to_numpy(), marker="o",
                          capsize=3, color=colors[m], label=label)
    ax[0, 0].axhline(TARGET, color="0.4", lw=0.8, ls=":", label=f"{TARGET:.0%}")
    if budget is not None:
        ax[0, 0].axvline(budget, color="C0", lw=0.8, ls=":")
        ax[0, 0].annotate(f"{TARGET:.0%} at ≈{budget:.0f} labels", (budget, 0.55), fontsize=8,
                          xytext=(-4, 0), textcoords="offset points", color="C0", ha="right")
    ax[0, 0].set_ylabel("share")
    ax[0, 0].set_title("ordering accuracy of 5 policies (10 pairs)", fontsize=10)
    ax[0, 1].set_ylabel("Kendall τ vs true order")
    ax[0, 1].set_title("Kendall τ", fontsize=10)
    for a in ax[0]:
        a.set_xscale("log")
        a.set_xticks(x, [f"{v:.0f}\n({pct(f)})" for v, f in zip(x, fracs, strict=True)])
        a.minorticks_off()
        a.set_xlabel("oracle labels (oracle fraction)")
        a.grid(alpha=0.3)
    ax[0, 0].set_ylim(0, 1.02)
    ax[0, 0].legend(fontsize=7, loc="lower right")
    ax[0, 1].legend(fontsize=8, loc="center right")
    fig.suptitle(f"Ranking accuracy vs label budget (n = {n} prompts × 5 policies)")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the ranking study",
                  quick_note="Small tier (n = 500, oracle fractions 2% and 10%) for tests.")
