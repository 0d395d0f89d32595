"""Study — intervals for values near the bounds of the label scale (``bounds``; issue #14, item 4).

cje's intervals are symmetric t intervals, which can leave the label scale for a mean near 0 or 1
(a rare-event rate, a pass rate near 100%). Three ways to report them are compared on the same
estimates (the point estimate, its SE and df are cje's; only the interval's shape differs):

* ``t`` — as is: ``ψ ± q·SE``;
* ``clipped`` — the t interval cut to the label scale. The truth lies inside the scale, so
  clipping cannot lose coverage: its coverage equals ``t``'s exactly and it is never wider;
* ``logit`` — a delta-method interval on the logit of the value on the [0, 1] scale,
  ``expit(logit ψ ± q·SE/(ψ(1 − ψ)))``, asymmetric and always inside the scale (undefined for an
  estimate on or beyond a bound: the clipped interval is used there, and counted).

Direct cells: :func:`cje.synthetic.make_direct_eval` with four policies whose true values are
about 0.03, 0.07, 0.50 and 0.97, **binary** labels (each labelled row's label is drawn
Bernoulli(Y01), so the truth E[Y01] stays exact) on every policy's rows at 5% and 10%.
Off-policy cells: :func:`cje.synthetic.make_offpolicy_eval` with targets at population raw-weight
ESS 60% and 25%, binary labels Bernoulli(1 − (1 − Y01)^8) (pass rates near 0.93–0.97); the truth
of that transformed label comes from a 200,000-prompt draw of every policy (MC SE ≈ 0.0005),
calibrated IPS and stacked DR at 10% and 25% labels.
"""

from __future__ import annotations

import warnings
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.analysis import analyze
from cje.errors import CJEInputError, CJEWarning
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
from cje.synthetic.direct import PolicySpec, make_direct_eval
from cje.synthetic.offpolicy import make_offpolicy_eval, theta_for_ess

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "intervals", "run", "task"]

NAME = "bounds"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
#: The direct design's policies (true values ≈ 0.031, 0.075, 0.500, 0.969 on the 0–1 scale).
POLICIES: tuple[PolicySpec, ...] = (PolicySpec("rare", -4.0), PolicySpec("low", -3.0),
                                    PolicySpec("mid", 0.0), PolicySpec("high", 4.0))
#: Off-policy targets: name -> population raw-weight ESS.
TARGETS: dict[str, float] = {"ess60": 0.60, "ess25": 0.25}
#: Power of the off-policy label transform 1 − (1 − Y01)^k (pass rates near 1).
POWER = 8
METHODS: tuple[str, ...] = ("t", "clipped", "logit")
FULL: dict[str, Any] = {"reps": 500, "direct_n": (500, 2000), "direct_fractions": (0.05, 0.10),
                        "off_n": 1000, "off_fractions": (0.10, 0.25),
                        "estimators": ("calibrated-ips", "stacked-dr"), "truth_n": 200_000}
QUICK: dict[str, Any] = {"reps": 4, "direct_n": (400,), "direct_fractions": (0.10,), "off_n": 400,
                         "off_fractions": (0.25,), "estimators": ("calibrated-ips",),
                         "truth_n": 20_000}


def intervals(estimate: float, se: float, df: float, alpha: float,
              scale: tuple[float, float]) -> dict[str, tuple[float, float]]:
    """The ``t``, ``clipped`` and ``logit`` intervals of one estimate (label scale).

    Parameters
    ----------
    estimate, se, df : float
        cje's estimate, standard error and degrees of freedom (label scale).
    alpha : float
        1 − confidence level.
    scale : (float, float)
        The label scale.

    Returns
    -------
    dict
        Method -> (low, high); ``logit`` falls back to ``clipped`` for an estimate on or
        beyond a bound.

    Examples
    --------
    >>> iv = intervals(0.02, 0.015, 100.0, 0.05, (0.0, 1.0))
    >>> [round(v, 4) for v in iv["t"]], [round(v, 4) for v in iv["clipped"]]
    ([-0.0098, 0.0498], [0.0, 0.0498])
    >>> [round(v, 4) for v in iv["logit"]]
    [0.0045, 0.0852]
    """
    from scipy.special import expit, logit, stdtrit

    lo_s, hi_s = scale
    width = hi_s - lo_s
    q = float(stdtrit(df, 1 - alpha / 2))
    t = (estimate - q * se, estimate + q * se)
    clipped = (min(max(t[0], lo_s), hi_s), max(min(t[1], hi_s), lo_s))
    u = (estimate - lo_s) / width
    if 0.0 < u < 1.0 and np.isfinite(se):
        half = q * (se / width) / (u * (1 - u))
        lg = (lo_s + width * float(expit(logit(u) - half)), lo_s + width * float(expit(logit(u) + half)))
    else:
        lg = clipped
    return {"t": t, "clipped": clipped, "logit": lg}


def _rows(rep: Any, truth: dict[str, float], scale: tuple[float, float], cell: dict[str, Any]
          ) -> list[dict[str, Any]]:
    out = []
    for e in rep.estimates:
        if e.policy not in truth:
            continue
        iv = intervals(e.estimate, e.se, e.df, e.alpha, scale)
        u = (e.estimate - scale[0]) / (scale[1] - scale[0])
        for m, (lo, hi) in iv.items():
            out.append({**cell, "policy": e.policy, "method": m, "estimate": e.estimate,
                        "ci_low": lo, "ci_high": hi, "width": hi - lo, "truth": truth[e.policy],
                        "covered": bool(lo <= truth[e.policy] <= hi),
                        "crosses": bool(iv["t"][0] < scale[0] or iv["t"][1] > scale[1]),
                        "logit_undefined": bool(not 0.0 < u < 1.0), "status": e.status,
                        "n_labels": e.n_labels})
    return out


def _refused(truth: dict[str, float], cell: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows for a data set cje refused as input (every label equal): no estimate; the report
    leaves them out of coverage and width, and counts them."""
    nan = float("nan")
    return [{**cell, "policy": p, "method": m, "estimate": nan, "ci_low": nan, "ci_high": nan,
             "width": nan, "truth": t, "covered": False, "crosses": False, "logit_undefined": False,
             "status": "INPUT ERROR", "n_labels": 0} for p, t in truth.items() for m in METHODS]


@lru_cache(maxsize=4)
def _offpolicy_truth(n: int, seed: int) -> dict[str, float]:
    """E[1 − (1 − Y01)^k] per policy, from fresh draws of ``n`` prompts (fixed seed)."""
    big = make_offpolicy_eval(n, targets={k: theta_for_ess(v) for k, v in TARGETS.items()},
                              oracle_fraction=0.0, n_fresh_per_prompt=1, fresh_oracle_fraction=1.0,
                              rng=seed)
    f = big.fresh
    return {str(p): float(v) for p, v in
            (1 - (1 - f["oracle_label"]) ** POWER).groupby(f["policy"]).mean().items()}


def task(rng: np.random.Generator, replicate: int, *, direct_n: tuple[int, ...],
         direct_fractions: tuple[float, ...], off_n: int, off_fractions: tuple[float, ...],
         estimators: tuple[str, ...], truth_n: int, alpha: float = 0.05) -> list[dict[str, Any]]:
    """One replicate: every direct and off-policy cell, each with its own stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream.
    replicate : int
        Replicate number (unused).
    direct_n, direct_fractions : tuple
        Direct cells: prompts and oracle fractions.
    off_n : int
        Off-policy prompts (logged rows).
    off_fractions : tuple of float
        Off-policy oracle fractions.
    estimators : tuple of str
        Off-policy estimators.
    truth_n : int
        Prompts of the off-policy truth draw.
    alpha : float
        1 − confidence level.

    Returns
    -------
    list of dict
        One row per cell × policy × interval method.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, direct_n=(300,), direct_fractions=(0.2,),
    ...             off_n=300, off_fractions=(0.25,), estimators=("calibrated-ips",), truth_n=5000)
    >>> sorted({r["design"] for r in rows}), sorted({r["method"] for r in rows})
    (['direct', 'off-policy'], ['clipped', 'logit', 't'])
    """
    cells: list[tuple[Any, ...]] = [("direct", n, f, "direct") for n in direct_n for f in direct_fractions]
    cells += [("off-policy", off_n, f, e) for f in off_fractions for e in estimators]
    rows: list[dict[str, Any]] = []
    truth_off = _offpolicy_truth(truth_n, 20261206)
    for (design, n, frac, est), child in zip(cells, rng.spawn(len(cells)), strict=True):
        cell = {"design": design, "n_prompts": n, "oracle_fraction": frac, "estimator": est}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            if design == "direct":
                sim = make_direct_eval(n, POLICIES, oracle_fraction=frac, label_scale=(0.0, 1.0),
                                       rng=child)
                y = sim.data["oracle_label"].to_numpy()
                lab = ~np.isnan(y)
                yb = np.where(lab, (child.random(y.size) < np.nan_to_num(y)).astype(float), np.nan)
                truth = dict(sim.truth)
                try:
                    rep = analyze(sim.data.assign(oracle_label=yb), judge_scale=sim.judge_scale,
                                  label_scale=(0.0, 1.0), progress=False)
                except CJEInputError:  # every label equal: cje refuses to calibrate
                    rows += _refused(truth, cell)
                    continue
            else:
                sim = make_offpolicy_eval(n, targets={k: theta_for_ess(v) for k, v in TARGETS.items()},
                                          oracle_fraction=frac, n_fresh_per_prompt=1, rng=child)
                y = sim.logged["oracle_label"].to_numpy()
                lab = ~np.isnan(y)
                p = 1 - (1 - np.nan_to_num(y)) ** POWER
                yb = np.where(lab, (child.random(y.size) < p).astype(float), np.nan)
                truth = {k: truth_off[k] for k in TARGETS}
                try:
                    rep = analyze(sim.logged.assign(oracle_label=yb),
                                  fresh_draws=sim.fresh if est != "calibrated-ips" else None,
                                  estimator=est, judge_scale=sim.judge_scale, label_scale=(0.0, 1.0),
                                  progress=False)
                except CJEInputError:  # every label equal (all passes): cje refuses to calibrate
                    rows += _refused(truth, cell)
                    continue
        rows += _rows(rep, truth, (0.0, 1.0), cell)
    return rows


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    t = partial(task, **{k: tuple(v) if isinstance(v, (list, tuple)) else v
                         for k, v in grid.items() if k != "reps"})
    df, secs, r = replicate(r, t, {"version": 1})
    by = ["design", "estimator", "n_prompts", "oracle_fraction", "policy"]
    refused = df[df["status"] == "INPUT ERROR"]
    n_refused = refused[refused.method == "t"].groupby(by).size()
    df = df[df["status"] != "INPUT ERROR"]
    cov = replicate_se(df.assign(covered=df["covered"].astype(float)), ["method", *by],
                       "covered").set_index(["method", *by])
    g = df.groupby(["method", *by])
    width = g["width"].mean()
    first = df[df.method == "t"].groupby(by)
    cross = first["crosses"].mean()
    undef = first["logit_undefined"].mean()
    truth = first["truth"].mean()
    bias = first.apply(lambda x: (x["estimate"] - x["truth"]).mean())
    caution = first["status"].apply(lambda s: (s != "OK").mean())
    keys = list(cross.index)
    rows = []
    for k in keys:
        rows.append([k[0], k[1], f"{k[2]}", pct(k[3]), k[4], f"{truth[k]:.3f}", f"{bias[k]:+.4f}",
                     f"{cross[k]:.2f}",
                     cov_cell(cov.loc[("t", *k), "mean"], cov.loc[("t", *k), "se"]),
                     cov_cell(cov.loc[("logit", *k), "mean"], cov.loc[("logit", *k), "se"]),
                     f"{width[('t', *k)]:.4f}", f"{width[('clipped', *k)]:.4f}",
                     f"{width[('logit', *k)]:.4f}", f"{undef[k]:.3f}", f"{caution[k]:.2f}"])
    body = ["## Results", "",
            "Coverage ± MC SE (clustered by replicate) of the 95% intervals built from the same "
            "estimate, SE and df; the clipped interval covers exactly when the t interval does (the "
            "truth is inside the scale), so it has one coverage column with t. 'crosses' = share of "
            "t intervals leaving [0, 1]; 'logit n/a' = share of estimates on or beyond a bound "
            f"(logit interval undefined: clipped used). **Bold ✗** = outside [{COVERAGE_BAND[0]}, "
            f"{COVERAGE_BAND[1]}]. 'not OK' = share with status CAUTION or REFUSED today.", ""]
    if len(n_refused):
        body += ["Data sets cje refused as input (every label of the oracle slice equal, so no "
                 "calibration; left out above): " + "; ".join(
                     f"{k[1]} {k[2]} {pct(k[3])} {k[4]}: {v}" for k, v in n_refused.items()) + ".", ""]
    body += md_table(["design", "estimator", "n", "labels", "policy", "truth", "bias", "crosses",
                      "coverage t = clipped", "coverage logit", "width t", "width clipped", "width logit",
                      "logit n/a", "not OK"], rows)
    body += ["", "## Reading", ""] + _reading(df, keys, cov, width, cross)
    fig = _figure(keys, cov, width)
    design = ("Design: see the module docstring of `cje.studies.bounds`. Direct: "
              "`make_direct_eval` with policies of quality −4, −3, 0, +4 (true values ≈ 0.031, 0.075, "
              "0.500, 0.969), binary labels Bernoulli(Y01) on the 0–1 scale, MCAR on every policy's "
              "rows. Off-policy: `make_offpolicy_eval` targets at population raw ESS 60% and 25%, "
              f"binary labels Bernoulli(1 − (1 − Y01)^{POWER}) on the logged oracle slice, truth from "
              f"{grid['truth_n']:,} fresh draws per policy. `cje.analyze` defaults otherwise. "
              f"{r.reps} replicates. The DGP was not tuned to these results.")
    return write_results(r, title="Study — intervals near the bounds of the label scale", seconds=secs,
                         design=design, body=body, fig=fig)


def _reading(df: pd.DataFrame, keys: list[tuple[Any, ...]], cov: pd.DataFrame, width: pd.Series,
             cross: pd.Series) -> list[str]:
    near = [k for k in keys if cross[k] > 0.05]
    lines = []
    if near:
        dc = [cov.loc[("logit", *k), "mean"] - cov.loc[("t", *k), "mean"] for k in near]
        wr = [width[("logit", *k)] / width[("t", *k)] for k in near]
        wc = [width[("clipped", *k)] / width[("t", *k)] for k in near]
        lines.append(
            f"- In the {len(near)} cells where more than 5% of t intervals leave the scale, the logit "
            f"interval's coverage minus the t interval's is {min(dc):+.3f} to {max(dc):+.3f}; its width "
            f"is {min(wr):.2f}–{max(wr):.2f}× the t width, the clipped one's {min(wc):.2f}–{max(wc):.2f}×.")
        low_t = [k for k in near if cov.loc[("t", *k), "mean"] < COVERAGE_BAND[0]]
        low_l = [k for k in near if cov.loc[("logit", *k), "mean"] < COVERAGE_BAND[0]]
        lines.append(f"- Below {COVERAGE_BAND[0]} there: t/clipped in {len(low_t)} cells, logit in "
                     f"{len(low_l)} cells.")
    t = df[df.method == "t"]
    cc = replicate_se(t.assign(covered=t["covered"].astype(float)), ["design", "crosses"],
                      "covered").set_index(["design", "crosses"])
    parts = []
    for d in dict.fromkeys(t["design"]):
        if (d, True) not in cc.index or (d, False) not in cc.index:
            continue
        a, b = cc.loc[(d, True)], cc.loc[(d, False)]
        gap, se = b["mean"] - a["mean"], float(np.hypot(a["se"], b["se"]))
        if abs(gap) > 2 * se:
            verdict = f"cover {'less' if gap > 0 else 'more'}: {abs(gap) / se:.1f} MC SE apart"
        else:
            verdict = "within 2 MC SE: no measurable difference"
        parts.append(f"{d}: {a['mean']:.3f} ± {a['se']:.3f} against {b['mean']:.3f} ± {b['se']:.3f} "
                     f"for the others ({verdict})")
    lines.append(
        "- **Do intervals that leave the scale cover less?** t intervals crossing a bound cover "
        + "; ".join(parts) + " (MC SE clustered by replicate). Cutting them keeps their coverage, "
        "and a cut interval stays CAUTION: the bound it crosses says the normal approximation is "
        "strained there.")
    lines.append(
        "- Decision: cut the t interval at the scale's bounds (flagged in the diagnostics with the "
        "uncut ends; the gate judges the uncut interval). It never loses coverage and is never wider; "
        "the logit interval lost coverage in the direct design (binary rates near 0.03 and 0.97) and "
        "was up to 2.3× as wide. Estimates outside the scale are REFUSED and keep their interval.")
    far = [k for k in keys if cross[k] <= 0.05]
    if far:
        dc = [cov.loc[("logit", *k), "mean"] - cov.loc[("t", *k), "mean"] for k in far]
        lines.append(f"- Away from the bounds ({len(far)} cells) the logit interval's coverage minus "
                     f"t's is {min(dc):+.3f} to {max(dc):+.3f}.")
    return lines


def _figure(keys: list[tuple[Any, ...]], cov: pd.DataFrame, width: pd.Series) -> Any:
    fig, ax = figure(1, 2, (11.0, 4.2))
    x = np.arange(len(keys))
    labels = [f"{k[1][:6]} {k[2]} {pct(k[3])} {k[4]}" for k in keys]
    for m, col in (("t", "C0"), ("logit", "C2")):
        c = [cov.loc[(m, *k), "mean"] for k in keys]
        e = [2 * cov.loc[(m, *k), "se"] for k in keys]
        ax[0, 0].errorbar(x + (0.15 if m == "logit" else 0), c, yerr=e, marker="o", ls="none",
                          color=col, label=m if m != "t" else "t = clipped", capsize=2)
    ax[0, 0].axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
    ax[0, 0].axhline(0.95, color="0.5", lw=0.8, ls=":")
    ax[0, 0].set_ylabel("coverage (±2 MC SE)")
    ax[0, 0].legend(fontsize=7)
    for m, col in (("clipped", "C1"), ("logit", "C2")):
        ax[0, 1].plot(x, [width[(m, *k)] / width[("t", *k)] for k in keys], marker="o", ls="none",
                      color=col, label=m)
    ax[0, 1].axhline(1.0, color="0.4", lw=0.8)
    ax[0, 1].set_ylabel("width / t width")
    ax[0, 1].legend(fontsize=7)
    for a in ax[0]:
        a.set_xticks(x, labels, rotation=80, fontsize=6)
        a.grid(alpha=0.3)
    fig.suptitle("Intervals near the bounds of the label scale")
    return fig


run = study_entry(NAME, FULL, QUICK, _report, title="the bounded-interval study",
                  quick_note="One small cell per design, for tests.")
