"""Study 6 — size and power of the judge-bias diagnostics.

For each test, data with a known planted bias (zero for the size, growing for the power) are
simulated and the test of :mod:`cje.bias` is run with its defaults. Recorded per test: the
rejection rate of "no bias" (``p < 0.05``), the flag rate (``flagged`` = significant *and*
practically relevant, the rule the audit reports), and the coverage of the effect's 95% interval
of the exact estimand.

* position — :func:`cje.bias.position` on :func:`cje.synthetic.make_pairwise_eval` verdicts in
  both orders, planted slot log-odds β;
* verbosity (pointwise) — :func:`cje.bias.verbosity` on a one-judge
  :func:`cje.synthetic.make_panel_eval` panel, planted judge points per SD of log length;
* verbosity (pairwise) — :func:`cje.bias.excess_length_preference`, planted judge log-odds per
  unit of log-length difference (the estimand is the excess P(longer wins) over humans);
* self-preference (panel) — :func:`cje.bias.self_preference` ``method="panel"`` on a crossed
  3-judge panel whose own-family generators are genuinely better (``confounded=True``), planted
  judge points;
* self-preference (pairwise) — :func:`cje.bias.self_preference_gap` against human verdicts,
  equal item strengths, planted judge log-odds (the estimand is the equal-opportunity gap).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.bias import excess_length_preference, position, self_preference, self_preference_gap, verbosity
from cje.bias._result import BiasResult
from cje.errors import CJEWarning
from cje.studies import DEFAULT_SEEDS
from cje.studies._common import StudyRun, figure, md_table, replicate, study_entry, write_results
from cje.synthetic.pairwise import make_pairwise_eval
from cje.synthetic.panel import JudgeSpec, make_panel_eval

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "TESTS", "run", "task"]

NAME = "bias"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
ALPHA = 0.05
#: test -> (planted values, unit of the planted knob)
TESTS: dict[str, tuple[tuple[float, ...], str]] = {
    "position": ((0.0, 0.05, 0.1, 0.2, 0.4), "slot log-odds β"),
    "verbosity (pointwise)": ((0.0, 0.05, 0.1, 0.2), "judge points per SD of log length"),
    "verbosity (pairwise)": ((0.0, 0.25, 0.5, 1.0), "judge log-odds per unit z difference"),
    "self-preference (panel)": ((0.0, 0.1, 0.2, 0.4), "judge points"),
    "self-preference (pairwise)": ((0.0, 0.25, 0.5, 1.0), "judge log-odds"),
}
FULL: dict[str, Any] = {"reps": 2000, "n_prompts": (100, 400)}
QUICK: dict[str, Any] = {"reps": 40, "n_prompts": (150,)}


def _one(test: str, planted: float, n: int, gen: np.random.Generator) -> tuple[BiasResult, float]:
    """Simulate one data set with ``planted`` bias, run the test; returns (result, estimand)."""
    seed = gen  # the data and the test's bootstrap both draw from this cell's own stream
    if test == "position":
        sim = make_pairwise_eval(n, position_logodds=planted, rng=seed)
        return position(sim.pairs, rng=seed), sim.truth["position_logodds"]
    if test == "verbosity (pairwise)":
        sim = make_pairwise_eval(n, length_effect=planted, rng=seed)
        return excess_length_preference(sim.pairs, rng=seed), sim.truth["excess_length_preference"]
    if test == "self-preference (pairwise)":
        sim = make_pairwise_eval(n, strengths=[0.0, 0.0, 0.0, 0.0], self_preference=planted,
                                 judge_family="A", rng=seed)
        return self_preference_gap(sim.pairs), sim.truth["self_preference_gap"]
    if test == "verbosity (pointwise)":
        pan = make_panel_eval(n, judges=[JudgeSpec("judge", "delta")], length_effect=planted, rng=seed)
        return verbosity(pan.data), pan.truth["length_effect"]
    if test == "self-preference (panel)":
        pan = make_panel_eval(n, self_preference=planted, confounded=True, rng=seed)
        return self_preference(pan.data, method="panel"), pan.truth["self_preference"]
    raise ValueError(f"unknown test {test!r}")


def task(rng: np.random.Generator, replicate: int, *, n_prompts: tuple[int, ...]) -> list[dict[str, Any]]:
    """One replicate: every test × planted value × size, each cell with its own child stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    n_prompts : tuple of int
        Prompts (or pairs) per data set.

    Returns
    -------
    list of dict
        One row per test × planted value × size: the estimated effect with its interval and
        p-value against the true estimand, ``rejected`` (p < 0.05), ``flagged`` (the
        diagnostic's flag), ``covered`` and ``relevant``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=(60,))
    >>> len(rows)  # 5 + 4 + 4 + 4 + 4 planted values over the five tests
    21
    >>> rows[0]["test"], rows[0]["planted"]
    ('position', 0.0)
    """
    cells = [(t, v, n) for t, (values, _) in TESTS.items() for v in values for n in n_prompts]
    rows: list[dict[str, Any]] = []
    for (test, planted, n), child in zip(cells, rng.spawn(len(cells)), strict=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            res, truth = _one(test, planted, n, child)
        rows.append({
            "test": test, "planted": planted, "n_prompts": n, "truth": truth, "estimate": res.effect,
            "ci_low": res.ci_low, "ci_high": res.ci_high, "p_value": res.p_value,
            "rejected": bool(res.p_value < ALPHA), "flagged": bool(res.flagged),
            "covered": bool(res.ci_low <= truth <= res.ci_high),
            "relevant": bool(res.details.get("practically_relevant", False)),
        })
    return rows


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    df, secs, r = replicate(r, partial(task, n_prompts=tuple(grid["n_prompts"])), {"version": 1})
    ns = list(grid["n_prompts"])
    key = ["test", "planted", "n_prompts"]
    g = df.groupby(key, sort=False)
    agg = g.agg(truth=("truth", "mean"), effect=("estimate", "mean"), rejected=("rejected", "mean"),
                flagged=("flagged", "mean"), covered=("covered", "mean"), n=("estimate", "size"))
    rows = []
    for test, (values, _) in TESTS.items():
        for v in values:
            for n in ns:
                a = agg.loc[(test, v, n)]
                tag = " (size)" if v == 0 else ""
                rows.append([test, f"{v:g}{tag}", f"{n}", f"{a['truth']:+.4f}", f"{a['effect']:+.4f}",
                             _rate(a["rejected"], a["n"], v == 0), f"{a['flagged']:.3f}",
                             _cov(a["covered"], a["n"])])
    body = ["## Results", ""]
    body += md_table(["test", "planted", "n prompts", "estimand", "mean estimate", "P(p < 0.05)",
                      "P(flagged)", "CI coverage"], rows, align="lrrrrrrr")
    mc = np.sqrt(ALPHA * (1 - ALPHA) / r.reps)
    body += [
        "",
        f"Rates over {r.reps} replicates (binomial MC SE ≈ {mc:.3f} at 0.05, ≈ "
        f"{np.sqrt(0.95 * 0.05 / r.reps):.3f} at 0.95). *planted* is the knob of the simulator "
        "(units below); *estimand* is the exact value the test's effect estimates. "
        "P(p < 0.05) at planted 0 is the test's size (**bold ✗** when more than 2 MC SE above "
        "0.05); P(flagged) is what the audit reports (significant and practically relevant), so "
        "it stays below the size at zero and below the power near the relevance threshold. "
        "CI coverage is of the estimand by the 95% interval (✗ outside [0.93, 0.97]).",
        "",
        "Units: " + "; ".join(f"{t}: {u}" for t, (_, u) in TESTS.items()) + ".",
        "",
        "## Reading",
        "",
    ]
    zero = agg.xs(0.0, level="planted")
    worst = zero["rejected"].idxmax()
    body.append(f"- Size: the largest false-rejection rate at zero bias is {zero['rejected'].max():.3f} "
                f"({worst[0]}, n = {worst[1]}); the largest false-flag rate is "
                f"{zero['flagged'].max():.3f}.")
    for test, (values, _) in TESTS.items():
        sub = agg.xs(test, level="test")
        body.append(
            f"- {test}: power ≥ 0.8 from planted "
            + ", ".join(f"{_first(sub, 'rejected', n, values)} (n = {n})" for n in ns)
            + "; flag rate ≥ 0.8 from "
            + ", ".join(f"{_first(sub, 'flagged', n, values)} (n = {n})" for n in ns)
            + f"; interval coverage {sub['covered'].min():.3f}–{sub['covered'].max():.3f} over the grid.")
    falls = [f"{t} at planted {v:g} ({agg.loc[(t, v, ns[0]), 'flagged']:.2f} → "
             f"{agg.loc[(t, v, ns[-1]), 'flagged']:.2f})"
             for t, (values, _) in TESTS.items() for v in values
             if v > 0 and len(ns) > 1
             and agg.loc[(t, v, ns[-1]), "flagged"] < agg.loc[(t, v, ns[0]), "flagged"] - 0.05]
    if falls:
        body.append(
            "- Flags need practical relevance as well as significance, so near a test's relevance "
            "threshold the flag rate *falls* as n grows while the power rises (the estimate "
            "concentrates below the threshold; a small real bias is reported, not flagged): "
            + "; ".join(falls) + ".")
    fig = _figure(agg, ns)
    design = (
        "Design: pairwise verdicts from `cje.synthetic.make_pairwise_eval` (4 items, every pair on "
        "every prompt in both orders, one human verdict per pair) and pointwise panels from "
        "`cje.synthetic.make_panel_eval` (4 generators × 1 or 3 judges, Likert labels on every "
        f"response); each test run with its defaults at α = {ALPHA}. Sizes: "
        + ", ".join(str(n) for n in ns) + f" prompts. {r.reps} replicates per cell."
    )
    return write_results(r, title="Study 6 — size and power of the judge-bias diagnostics",
                         seconds=secs, design=design, body=body, fig=fig)


def _first(sub: pd.DataFrame, col: str, n: int, values: tuple[float, ...]) -> str:
    """Smallest planted value whose rate reaches 0.8 at size n ('none' if never)."""
    for v in values:
        if v > 0 and sub.loc[(v, n), col] >= 0.8:
            return f"{v:g}"
    return "— (not on the grid)"


def _rate(p: float, n: float, is_size: bool) -> str:
    if is_size and p > ALPHA + 2 * np.sqrt(ALPHA * (1 - ALPHA) / n):
        return f"**{p:.3f}** ✗"
    return f"{p:.3f}"


def _cov(c: float, n: float) -> str:
    return f"**{c:.3f}** ✗" if not 0.93 <= c <= 0.97 else f"{c:.3f}"


def _figure(agg: pd.DataFrame, ns: list[int]) -> Any:
    fig, ax = figure(2, 3, (12.0, 7.0))
    styles: list[tuple[str, Callable[[pd.DataFrame], Any]]] = [
        ("P(p < 0.05)", lambda a: a["rejected"]), ("P(flagged)", lambda a: a["flagged"])]
    panels = ax.ravel()
    for j, (test, (values, unit)) in enumerate(TESTS.items()):
        a_ = panels[j]
        for k, n in enumerate(ns):
            sub = agg.xs(test, level="test").xs(n, level="n_prompts").reindex(values)
            for (label, get), ls, mk in zip(styles, ("-", "--"), ("o", "s"), strict=True):
                a_.plot(values, get(sub).to_numpy(), ls=ls, marker=mk, color=f"C{k}",
                        label=f"{label}, n = {n} prompts")
        a_.axhline(ALPHA, color="0.4", lw=0.8, ls=":", label=f"α = {ALPHA}")
        a_.set_title(test, fontsize=10)
        a_.set_xlabel(f"planted ({unit})", fontsize=9)
        a_.set_ylim(-0.02, 1.02)
        a_.grid(alpha=0.3)
    for a_ in ax[:, 0]:
        a_.set_ylabel("rate over replicates")
    legend = panels[len(TESTS)]
    legend.axis("off")
    legend.legend(*panels[0].get_legend_handles_labels(), loc="center", fontsize=9,
                  title="size at planted 0, power above")
    fig.suptitle("Judge-bias diagnostics: rejection and flag rates vs planted bias")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the bias-diagnostics study",
                  quick_note="Small tier (150 prompts) for tests.")
