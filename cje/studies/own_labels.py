"""Study — few own labels: a policy's interval and its contrasts when its residual correction rests
on 5–30 labels of its own (``own_labels``; issue #14).

A direct estimate is ``mean f(S) + mean residual over the policy's own labelled rows``. The
residual part is a mean over the policy's ``m_g`` labelled prompts, so it has its own small-sample
factor ``m_g/(m_g−1)`` and enters the Satterthwaite degrees of freedom as a component with
``m_g − 1`` (:func:`cje.pipeline.core.own_residual_variance`, :func:`cje.pipeline.core.level_df`;
the paired contrasts alike). This study measures the intervals that result, against the exact
truth, in these cells (fixed before any result was seen):

* ``binary/m=5`` … ``binary/m=30``: two truly equal policies A and B (E[Y] = 0.5), 300 prompts
  each, one response per prompt; per row a latent quality ``q ~ Beta(2, 2)``, a judge score
  ``round(10 q + N(0, 1))`` clipped to 0–10 and a binary label ``Y ~ Bernoulli(q)``; A has 60
  labelled rows, B ``m`` (both drawn uniformly without replacement);
* ``continuous/m=10``, ``continuous/m=20``: the same with labels ``1 + 4·Beta(4q, 4(1−q))`` on
  (1, 5) (E[Y] = 3);
* ``weighted/m≈20``: the binary design, but B's rows are sent for a label independently with a
  known probability set by the judge score — 0.03 below the score's median (``S < 5``), 0.10 at or
  above it (about 20 labels, most of them high scores) — passed as the ``label_probability``
  column (A's rows: 0.2), so B's residual mean is Hájek-weighted by ``1/π``;
* ``balanced/5%``, ``balanced/10%``: :func:`cje.synthetic.make_direct_eval` with 500 prompts and
  that oracle fraction (MCAR labels on every policy's rows), all five policies against
  ``sim.truth``, and every pair against the truth difference;
* ``weighted-terciles/continuous`` (held out, added after the weighted factor and degrees of
  freedom were derived on ``weighted/m≈20``): the continuous design with B's probabilities 0.02,
  0.06, 0.20 by judge-score tercile (about 27 labels): the heaviest labels sit where the
  continuous labels vary least, the case where the weights' working model (one residual variance)
  is conservative.

Reported per cell: coverage of B's 95% interval (balanced: pooled over the five policies) ± its
Monte Carlo SE (clustered by replicate), mean and median width, median degrees of freedom, the
status counts; the paired contrast's coverage (A − B, truth 0; balanced: all ten pairs against
their truth differences) and how often a "better than" is claimed (Holm-adjusted p < 0.05)
between the truly equal A and B (balanced: claims in the wrong direction).
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.errors import CJEWarning
from cje.studies import DEFAULT_SEEDS
from cje.studies._common import (
    StudyRun,
    cov_cell,
    figure,
    md_table,
    replicate,
    replicate_se,
    study_entry,
    write_results,
)

__all__ = ["ACCEPT", "CELLS", "DEFAULT_SEED", "FULL", "QUICK", "draw_pair", "run", "task"]

NAME = "own_labels"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
#: The acceptance band of B's coverage (from m = 10 on; m = 5 is reported against it too).
ACCEPT: tuple[float, float] = (0.935, 0.965)
#: cell -> (design, options). Designs: "pair" (two equal policies, 300 prompts, A 60 labels, B
#: ``m`` or Bernoulli(π) labels) and "balanced" (make_direct_eval, 500 prompts).
CELLS: dict[str, tuple[str, dict[str, Any]]] = {
    "binary/m=5": ("pair", {"labels": "binary", "m": 5}),
    "binary/m=10": ("pair", {"labels": "binary", "m": 10}),
    "binary/m=20": ("pair", {"labels": "binary", "m": 20}),
    "binary/m=30": ("pair", {"labels": "binary", "m": 30}),
    "continuous/m=10": ("pair", {"labels": "continuous", "m": 10}),
    "continuous/m=20": ("pair", {"labels": "continuous", "m": 20}),
    "weighted/m≈20": ("pair", {"labels": "binary", "m": None}),
    "balanced/5%": ("balanced", {"oracle_fraction": 0.05}),
    "balanced/10%": ("balanced", {"oracle_fraction": 0.10}),
    "weighted-terciles/continuous": ("pair", {"labels": "continuous", "m": None,
                                              "pi": "terciles"}),
}
#: Prompts per policy and A's labels in the pair design.
N_PAIR, M_A = 300, 60
#: B's labelling probability by judge-score region in the ``weighted`` cell: below the median
#: score (S < 5; the score's distribution is symmetric about 5) and at or above it.
PI_LOW, PI_HIGH, SCORE_MEDIAN = 0.03, 0.10, 5.0
#: B's labelling probability by judge-score tercile in the ``weighted-terciles`` cell (S ≤ 3,
#: 4–6, ≥ 7), a held-out design added after the weighted factor and df were derived.
PI_TERCILES = (0.02, 0.06, 0.20)
FULL: dict[str, Any] = {"reps": 4000, "cells": tuple(CELLS)}
QUICK: dict[str, Any] = {"reps": 6, "cells": tuple(CELLS)}


def draw_pair(rng: np.random.Generator, m_b: int | None, labels: str = "binary",
              pi: str = "median") -> tuple[pd.DataFrame, tuple[float, float], float]:
    """One data set of the pair design: two truly equal policies A and B.

    Parameters
    ----------
    rng : numpy.random.Generator
        The data's stream.
    m_b : int or None
        B's labelled rows (drawn uniformly without replacement); None: each of B's rows labelled
        independently with probability :data:`PI_LOW` (score below :data:`SCORE_MEDIAN`) or
        :data:`PI_HIGH`, and a ``label_probability`` column added (A's rows: 60/300).
    labels : {"binary", "continuous"}
        ``Y ~ Bernoulli(q)`` on (0, 1), or ``1 + 4·Beta(4q, 4(1−q))`` on (1, 5).
    pi : {"median", "terciles"}
        With ``m_b=None``: B's probabilities by the score's median (:data:`PI_LOW`,
        :data:`PI_HIGH`) or by its terciles (:data:`PI_TERCILES`).

    Returns
    -------
    (pandas.DataFrame, (float, float), float)
        The rows (``prompt_id, policy, judge_score, oracle_label`` [, ``label_probability``]),
        the label scale and the truth (both policies).

    Examples
    --------
    >>> d, scale, truth = draw_pair(np.random.default_rng(0), 10)
    >>> d.groupby("policy")["oracle_label"].count().tolist(), scale, truth
    ([60, 10], (0.0, 1.0), 0.5)
    >>> d, scale, truth = draw_pair(np.random.default_rng(0), None, "continuous")
    >>> scale, truth, sorted(d["label_probability"].unique().tolist())
    ((1.0, 5.0), 3.0, [0.03, 0.1, 0.2])
    """
    parts = []
    pi_design = pi
    for pol in ("A", "B"):
        q = rng.beta(2.0, 2.0, N_PAIR)
        s = np.clip(np.round(10.0 * q + rng.normal(0.0, 1.0, N_PAIR)), 0.0, 10.0)
        if labels == "binary":
            y = (rng.uniform(size=N_PAIR) < q).astype(float)
        else:
            y = 1.0 + 4.0 * rng.beta(4.0 * q, 4.0 * (1.0 - q))
        frame = {"prompt_id": [f"p{i}" for i in range(N_PAIR)], "policy": pol, "judge_score": s}
        if pol == "A" or m_b is not None:
            lab = np.zeros(N_PAIR, dtype=bool)
            lab[rng.choice(N_PAIR, M_A if pol == "A" else m_b, replace=False)] = True
            pi = np.full(N_PAIR, M_A / N_PAIR)
        else:
            pi = (np.where(s < SCORE_MEDIAN, PI_LOW, PI_HIGH) if pi_design == "median"
                  else np.select([s <= 3, s <= 6], PI_TERCILES[:2], PI_TERCILES[2]))
            lab = rng.uniform(size=N_PAIR) < pi
        frame["oracle_label"] = np.where(lab, y, np.nan)
        if m_b is None:
            frame["label_probability"] = pi
        parts.append(pd.DataFrame(frame))
    scale, truth = ((0.0, 1.0), 0.5) if labels == "binary" else ((1.0, 5.0), 3.0)
    return pd.concat(parts, ignore_index=True), scale, truth


def _rows(cell: str, rep: Any, truth: dict[str, float], focus: tuple[str, ...]) -> list[dict[str, Any]]:
    """Tidy rows of one analysis: each policy's level, then each paired contrast."""
    out: list[dict[str, Any]] = []
    for e in rep.estimates:
        t = truth[e.policy]
        out.append({"cell": cell, "kind": "level", "policy": e.policy, "focus": e.policy in focus,
                    "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high,
                    "width": e.ci_high - e.ci_low, "truth": t,
                    "covered": bool(e.ci_low <= t <= e.ci_high), "df": e.df, "status": e.status,
                    "n_labels": e.n_labels, "significant": False, "wrong_sign": False})
    for c in rep.pairs:
        t = truth[c.policy_a] - truth[c.policy_b]
        sig = bool(c.significant)
        out.append({"cell": cell, "kind": "contrast", "policy": f"{c.policy_a} − {c.policy_b}",
                    "focus": True, "estimate": c.estimate, "ci_low": c.ci_low, "ci_high": c.ci_high,
                    "width": c.ci_high - c.ci_low, "truth": t,
                    "covered": bool(c.ci_low <= t <= c.ci_high), "df": c.df, "status": "",
                    "n_labels": -1, "significant": sig,
                    "wrong_sign": sig and t != 0 and bool(np.sign(c.estimate) != np.sign(t))})
    return out


def task(rng: np.random.Generator, replicate: int, *, cells: tuple[str, ...] = tuple(CELLS)
         ) -> list[dict[str, Any]]:
    """One replicate: every cell with its own child stream, analysed by :func:`cje.analyze` with
    its defaults.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    cells : tuple of str
        Cells of :data:`CELLS`.

    Returns
    -------
    list of dict
        One row per cell × (policy level or paired contrast): ``cell, kind, policy, focus,
        estimate, ci_low, ci_high, width, truth, covered, df, status, n_labels, significant,
        wrong_sign`` (``focus``: B's level and the contrasts in the pair design; every row in the
        balanced design).

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, cells=("binary/m=10",))
    >>> [(r["kind"], r["policy"], r["n_labels"]) for r in rows]
    [('level', 'A', 60), ('level', 'B', 10), ('contrast', 'A − B', -1)]
    """
    from cje.analysis import analyze
    from cje.synthetic import make_direct_eval

    out: list[dict[str, Any]] = []
    for cell, child in zip(cells, rng.spawn(len(cells)), strict=True):
        design, opts = CELLS[cell]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            if design == "pair":
                data, scale, t = draw_pair(child, opts["m"], opts["labels"], opts.get("pi", "median"))
                rep = analyze(data, judge_scale=(0, 10), label_scale=scale, progress=False)
                out += _rows(cell, rep, {"A": t, "B": t}, ("B",))
            else:
                sim = make_direct_eval(500, oracle_fraction=opts["oracle_fraction"], rng=child)
                rep = analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                              progress=False)
                out += _rows(cell, rep, dict(sim.truth), tuple(sim.truth))
    return out


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _share(df: pd.DataFrame, col: str) -> tuple[float, float]:
    """Mean of a 0/1 column with its MC SE clustered by replicate."""
    s = replicate_se(df.assign(_v=df[col].astype(float), _c=0), ["_c"], "_v").iloc[0]
    return float(s["mean"]), float(s["se"])


def _summary(df: pd.DataFrame, cells: list[str]) -> pd.DataFrame:
    rows = []
    for cell in cells:
        sub = df[df.cell == cell]
        lev = sub[(sub.kind == "level") & sub.focus]
        con = sub[sub.kind == "contrast"]
        ok = lev[lev.status != "REFUSED"]
        cov, cov_se = _share(lev, "covered")  # every interval, REFUSED ones too (they have one)
        nr = _share(ok, "covered") if len(ok) else (float("nan"), float("nan"))
        ccov, ccov_se = _share(con, "covered")
        pair = CELLS[cell][0] == "pair"
        claim, claim_se = _share(con, "significant" if pair else "wrong_sign")
        st = lev["status"].value_counts()
        by = lev.groupby("status")["covered"].mean()
        rows.append({"cell": cell, "design": CELLS[cell][0], "replicates": sub.replicate.nunique(),
                     "cover": cov, "cover_se": cov_se, "cover_nr": nr[0], "cover_nr_se": nr[1],
                     "width_mean": lev.width.mean(), "width_median": lev.width.median(),
                     "df_median": lev.df.median(),
                     "labels_mean": lev.n_labels.mean(), "ccov": ccov, "ccov_se": ccov_se,
                     "cwidth": con.width.mean(), "cdf_median": con.df.median(), "claim": claim,
                     "claim_se": claim_se, "ok": int(st.get("OK", 0)),
                     "caution": int(st.get("CAUTION", 0)), "refused": int(st.get("REFUSED", 0)),
                     "cover_ok": float(by.get("OK", np.nan)),
                     "cover_caution": float(by.get("CAUTION", np.nan)),
                     "intervals": len(lev)})
    return pd.DataFrame(rows).set_index("cell")


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    cells = list(grid["cells"])
    df, secs, r = replicate(r, partial(task, cells=tuple(cells)), {"version": 1})
    s = _summary(df, cells)
    lo, hi = ACCEPT
    body = ["## Results", "",
            f"**Acceptance: coverage of B's 95% interval within [{lo}, {hi}] from m = 10 on** "
            "(every cell but `binary/m=5`; **bold ✗** = outside that band, m = 5 included). "
            "Coverage ± Monte Carlo SE, clustered by replicate (the balanced cells pool five "
            "policies that share prompts and a calibrator). Widths on the label scale (binary "
            "0–1; continuous and balanced 1–5). 'Better than' claimed: share of replicates whose "
            "contrast A − B of the two truly equal policies is significant (Holm-adjusted p < "
            "0.05; one pair, so Holm changes nothing); balanced: share of the ten pairs (all "
            "truly different) claimed significant in the wrong direction. Coverage counts every "
            "interval cje reports, REFUSED ones too (a REFUSED level still carries its interval); "
            "'not REFUSED' is the coverage of the others (— when none is REFUSED). Widths are of "
            "the reported intervals, cut to the label scale where they cross its bounds.", ""]
    rows = []
    for cell in cells:
        x = s.loc[cell]
        pair = x.design == "pair"
        rows.append([
            f"`{cell}`", f"{int(x.replicates):,}",
            f"{x.labels_mean:.1f}" if pair else f"{x.labels_mean:.1f} (each)",
            cov_cell(x.cover, x.cover_se, ACCEPT),
            "—" if not x.refused else (
                f"{x.cover_nr:.3f} ± {x.cover_nr_se:.3f}" if x.refused < x.intervals else "none"),
            f"{x.width_mean:.3f}", f"{x.width_median:.3f}", f"{x.df_median:.1f}",
            f"{x.ok:,} / {x.caution:,} / {x.refused:,}",
            cov_cell(x.ccov, x.ccov_se, ACCEPT), f"{x.cwidth:.3f}", f"{x.cdf_median:.1f}",
            f"{x.claim:.3f} ± {x.claim_se:.3f}" + ("" if pair else " (wrong sign)"),
        ])
    body += md_table(["cell", "replicates", "B's labels (mean)", "coverage of B (balanced: all)",
                      "coverage, not REFUSED", "mean width", "median width", "median df",
                      "status OK / CAUTION / REFUSED",
                      "contrast coverage", "contrast mean width", "contrast median df",
                      "'better than' claimed"], rows)
    body += ["", "## Reading", ""] + _reading(s, cells)
    design = (
        "Design: pair cells — two truly equal policies A and B, 300 prompts each, one response per "
        "prompt; q ~ Beta(2, 2), judge round(10 q + N(0, 1)) on 0–10, label Y ~ Bernoulli(q) "
        "(binary, truth 0.5) or 1 + 4·Beta(4q, 4(1−q)) (continuous, truth 3); A has 60 labels "
        "drawn uniformly, B m. `weighted/m≈20`: each of B's rows labelled independently with "
        f"probability {PI_LOW} when S < {SCORE_MEDIAN:g} (below the median score) and {PI_HIGH} "
        "otherwise, given to cje as the `label_probability` column (so B's residual mean is "
        "weighted by 1/π); `weighted-terciles/continuous` (held out, added after that "
        f"derivation): continuous labels, B's probabilities {PI_TERCILES[0]} / {PI_TERCILES[1]} / "
        f"{PI_TERCILES[2]} by judge-score tercile (S ≤ 3, 4–6, ≥ 7). Balanced cells — "
        "`cje.synthetic.make_direct_eval(500, "
        "oracle_fraction=…)` with its defaults (5 policies, MCAR labels on every policy's rows). "
        f"`cje.analyze` with its defaults; {r.reps:,} replicates per cell. Nothing was tuned to "
        "these results, with one disclosed exception: the weighted cell's first run (the residual "
        "part's factor m/(m−1) and df m − 1 regardless of the weights) covered 0.926 ± 0.004; the "
        "factor and the effective number of prompts (ΣW²)²/ΣW⁴ for unequal weights were then "
        "derived (`cje.pipeline.core.own_part_sums`) and this is the re-run. On a fresh seed (99, "
        "4,000 replicates of that cell alone) it covers 0.952 ± 0.003."
    )
    return write_results(r, title="Study — few own labels: intervals and contrasts when a policy's "
                         "residual correction rests on 5–30 labels", seconds=secs, design=design,
                         body=body, fig=_figure(s, cells))


def _reading(s: pd.DataFrame, cells: list[str]) -> list[str]:
    """The Reading section, computed from the summary."""
    lo, hi = ACCEPT
    judged = [c for c in cells if c != "binary/m=5"]
    below = [c for c in judged if s.loc[c, "cover"] < lo]
    above = [c for c in judged if s.loc[c, "cover"] > hi]

    def named(cs: list[str]) -> str:
        return ", ".join(f"`{c}` ({s.loc[c, 'cover']:.3f} ± {s.loc[c, 'cover_se']:.3f})" for c in cs)

    lines = [
        f"- **Acceptance** (B's coverage in [{lo}, {hi}] from m = 10 on): "
        + ("met in every judged cell" if not below and not above else "NOT met")
        + (f"; below the band (intervals too narrow) in {named(below)}" if below else "")
        + (f"; above it (conservative: wider than needed) in {named(above)}" if above else "")
        + f"; coverage ranges {s.loc[judged, 'cover'].min():.3f}–{s.loc[judged, 'cover'].max():.3f} "
        "over those cells."]
    if "binary/m=5" in cells:
        x = s.loc["binary/m=5"]
        lines.append(
            f"- **m = 5** (binary; below 10 own labels a level is never OK): {x.cover:.3f} ± "
            f"{x.cover_se:.3f}; {x.caution:,} of {x.intervals:,} intervals CAUTION, {x.refused:,} "
            "REFUSED (interval wider than the label scale).")
    pairs = [c for c in cells if CELLS[c][0] == "pair"]
    shown = [c for c in pairs if s.loc[c, "ok"] and s.loc[c, "caution"] >= 100]
    if shown:
        lines.append(
            "- **By status** (B, cells with at least 100 CAUTION intervals): OK intervals cover "
            + ", ".join(f"{s.loc[c, 'cover_ok']:.3f} (`{c}`)" for c in shown)
            + "; CAUTION ones (an interval cut at a bound of the label scale, a level near a bound "
            "on few own labels, or fewer than 10 own labels) "
            + ", ".join(f"{s.loc[c, 'cover_caution']:.3f}" for c in shown)
            + ": a cell's misses gather in its CAUTION intervals, not its OK ones.")
    if pairs:
        lines.append(
            "- **Contrasts** of the equal pair cover "
            f"{s.loc[pairs, 'ccov'].min():.3f}–{s.loc[pairs, 'ccov'].max():.3f}; a 'better than' "
            f"between them is claimed in {s.loc[pairs, 'claim'].min():.3f}–"
            f"{s.loc[pairs, 'claim'].max():.3f} of replicates (nominal 0.05).")
    bal = [c for c in cells if CELLS[c][0] == "balanced"]
    if bal:
        lines.append(
            "- **Balanced** designs (labels on every policy): coverage "
            + ", ".join(f"{s.loc[c, 'cover']:.3f} ± {s.loc[c, 'cover_se']:.3f} ({c.split('/')[1]})"
                        for c in bal)
            + "; contrasts " + ", ".join(f"{s.loc[c, 'ccov']:.3f} ± {s.loc[c, 'ccov_se']:.3f}"
                                         for c in bal) + ".")
    return lines


def _figure(s: pd.DataFrame, cells: list[str]) -> Any:
    fig, ax = figure(1, 2, (11.0, 4.2))
    x = np.arange(len(cells))
    for a, (col, se, lab) in zip(ax[0], (("cover", "cover_se", "B's level (balanced: all policies)"),
                                         ("ccov", "ccov_se", "contrasts")), strict=True):
        a.errorbar(x, s.loc[cells, col], yerr=2 * s.loc[cells, se], marker="o", ls="none",
                   color="C0", capsize=2, label=lab)
        a.axhspan(*ACCEPT, color="0.9", zorder=0)
        a.axhline(0.95, color="0.5", lw=0.8, ls=":")
        a.set_xticks(x, cells, rotation=45, ha="right", fontsize=7)
        a.set_ylabel("coverage of 95% CI (±2 MC SE)")
        a.set_title(lab, fontsize=9)
        a.grid(alpha=0.3)
    fig.suptitle("Few own labels: coverage per cell (band: acceptance [0.935, 0.965])")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the own-labels study",
                  quick_note="All cells, a few replicates, for tests.")
