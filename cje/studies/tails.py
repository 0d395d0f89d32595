"""Study 11 — weight tails: DR intervals at 50–3% raw-weight ESS with bounded and unbounded
importance-weight tails, with and without a judge style the targets prefer.

Data: :func:`cje.synthetic.tails.make_tail_eval` (n logged prompts, 10% MCAR oracle labels on the
logged rows, one fresh draw per prompt and target, targets at population raw-weight ESS 50%, 25%,
15%, 10%, 5% and 3%). ``tail="bounded"``: 20 discrete response types, largest weight 9.9 at 50%,
31 at 15%, 101 at 3%; ``"unbounded"``: log-normal weights of a Gaussian tilt. With the style on,
the judge adds 0.9 points (1–10 scale) to styled responses, which the targets write more often:
the logging policy's calibration over-rates the targets (it does not transport), so the
oracle residual term must carry the difference and stabilised residual weights are biased.

Each replicate draws the four data sets (tail × style) and runs :func:`cje.analyze` once per
setting — every setting covers all six targets at once: stacked DR with the default
``residual_weights="auto"`` on every data set; on the bounded, styled one (the hardest) also DR-CPO,
TMLE and calibrated IPS with the default, and stacked DR with ``"raw"`` and ``"stable"`` residual
weights (the candidates the default chooses between). Intervals are scored against the exact
truth.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.montecarlo import summarise
from cje.studies import DEFAULT_SEEDS
from cje.studies._common import (
    COVERAGE_BAND,
    StudyRun,
    cov_cell,
    figure,
    log_x,
    md_table,
    pct,
    replicate,
    study_entry,
    write_results,
)

__all__ = ["DEFAULT_SEED", "ESS", "FULL", "QUICK", "SETTINGS", "compact_table", "run", "summary",
           "task"]

NAME = "tails"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 500, "n_prompts": 1000}
QUICK: dict[str, Any] = {"reps": 3, "n_prompts": 250}
#: Population raw-weight ESS of the targets.
ESS: tuple[float, ...] = (0.5, 0.25, 0.15, 0.10, 0.05, 0.03)
#: Data sets: (tail kind, judge style bonus in points).
DATASETS: tuple[tuple[str, float], ...] = (("bounded", 0.9), ("bounded", 0.0), ("unbounded", 0.9),
                                           ("unbounded", 0.0))
#: Setting label -> (:func:`cje.analyze` options, data sets it runs on).
SETTINGS: dict[str, tuple[dict[str, Any], tuple[tuple[str, float], ...]]] = {
    "stacked-dr": ({"estimator": "stacked-dr"}, DATASETS),
    "dr-cpo": ({"estimator": "dr-cpo"}, DATASETS[:1]),
    "tmle": ({"estimator": "tmle"}, DATASETS[:1]),
    "calibrated-ips": ({"estimator": "calibrated-ips"}, DATASETS[:1]),
    "stacked-dr / raw": ({"estimator": "stacked-dr", "residual_weights": "raw"}, DATASETS[:1]),
    "stacked-dr / stable": ({"estimator": "stacked-dr", "residual_weights": "stable"}, DATASETS[:1]),
}
#: The acceptance bands of issue #14: good overlap (ESS ≥ 50%) inside [0.935, 0.965]; 10–20% ESS
#: at least 0.935 unless not OK; ≤ 5% ESS at least 0.93 unless REFUSED.
GOOD_BAND = (0.935, 0.965)


def task(rng: np.random.Generator, replicate: int, *, n_prompts: int) -> list[dict[str, Any]]:
    """One replicate: the four data sets (own child streams), every setting on those it runs on.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream.
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    n_prompts : int
        Logged prompts per data set.

    Returns
    -------
    list of dict
        One row per data set × setting × target: ``tail, style, setting, target, ess, estimate,
        ci_low, ci_high, truth, covered, se, status, ess_raw, hill_raw, stable_residual``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=200)
    >>> len(rows)   # (4 data sets + 5 settings on one) × 6 targets
    54
    >>> sorted({r["setting"] for r in rows}) == sorted(SETTINGS)
    True
    """
    import cje
    from cje.synthetic.tails import make_tail_eval

    rows: list[dict[str, Any]] = []
    for (tail, style), child in zip(DATASETS, rng.spawn(len(DATASETS)), strict=True):
        sim = make_tail_eval(n_prompts, ess=ESS, tail=tail, style_bonus=style, rng=child)
        for label, (options, where) in SETTINGS.items():
            if (tail, style) not in where:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, judge_scale=sim.judge_scale,
                                  label_scale=sim.label_scale, **options)
            for t, ess in sim.raw_ess.items():
                e, truth = rep[t], sim.truth[t]
                d = e.diagnostics
                rows.append({"tail": tail, "style": style, "setting": label, "target": t,
                             "ess": ess, "estimate": e.estimate, "ci_low": e.ci_low,
                             "ci_high": e.ci_high, "truth": truth,
                             "covered": bool(e.ci_low <= truth <= e.ci_high), "se": e.se,
                             "status": e.status, "ess_raw": float(d.get("ess_raw", np.nan)),
                             "hill_raw": float(d.get("hill_raw", np.nan)),
                             "stable_residual": d.get("residual_weights") == "stable"})
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Coverage (± MC SE), bias, RMSE, width, status shares and the share of stabilised residual
    weights per (tail, style, setting, ess).

    Parameters
    ----------
    df : pandas.DataFrame
        Replicate rows of :func:`task`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``tail, style, setting, ess``: the columns of
        :func:`cje.montecarlo.summarise` plus ``ok``, ``caution``, ``refused`` and ``stable``.

    Examples
    --------
    >>> rows = pd.DataFrame({"tail": "bounded", "style": 0.9, "setting": "stacked-dr", "ess": 0.15,
    ...                      "estimate": [0.50, 0.52], "truth": 0.5, "ci_low": [0.45, 0.51],
    ...                      "ci_high": [0.55, 0.53], "status": ["OK", "CAUTION"],
    ...                      "stable_residual": [False, True]})
    >>> summary(rows)[["coverage", "ok", "stable"]].round(2).to_numpy().tolist()
    [[0.5, 0.5, 0.5]]
    """
    by = ["tail", "style", "setting", "ess"]
    s = summarise(df, by=by).set_index(by)
    g = df.groupby(by)
    for st in ("OK", "CAUTION", "REFUSED"):
        s[st.lower()] = g["status"].apply(lambda x, st=st: float((x == st).mean()))
    s["stable"] = g["stable_residual"].mean()
    return s


def _cell(x: pd.Series) -> list[str]:
    return [cov_cell(x["coverage"], x["coverage_se"]), f"{x['bias']:+.4f} ± {x['bias_se']:.4f}",
            f"{x['rmse']:.4f}", f"{x['mean_width']:.4f}",
            f"{x['ok']:.2f} / {x['caution']:.2f} / {x['refused']:.2f}", f"{x['stable']:.2f}"]


def _acceptance(s: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """The issue's acceptance checks, from the DR rows (default residual weights)."""
    dr = [lab for lab in ("stacked-dr", "dr-cpo", "tmle") if lab in s.index.get_level_values(2)]
    lines = []
    for (tail, style, lab, ess), x in s.iterrows():
        if lab not in dr:
            continue
        where = f"{lab}, {tail}, style {style:g}, ESS {pct(ess)}"
        cov, se = x["coverage"], x["coverage_se"]
        if ess >= 0.5 and not GOOD_BAND[0] <= cov <= GOOD_BAND[1]:
            lines.append(f"{where}: good overlap outside [{GOOD_BAND[0]}, {GOOD_BAND[1]}]: "
                         f"{cov:.3f} ± {se:.3f}")
        if 0.10 <= ess <= 0.20 and cov < 0.935:
            sub = df[(df["tail"] == tail) & (df["style"] == style) & (df["setting"] == lab)
                     & (df["ess"] == ess)]
            ok = sub[sub["status"] == "OK"]
            cov_ok = ok["covered"].mean() if len(ok) else float("nan")
            lines.append(f"{where}: {cov:.3f} ± {se:.3f} < 0.935 (status OK in {x['ok']:.0%}, "
                         f"their coverage {cov_ok:.3f})")
        if ess <= 0.05 and cov < 0.93:
            lines.append(f"{where}: {cov:.3f} ± {se:.3f} < 0.93 (REFUSED in {x['refused']:.0%})")
    return lines


def _span(v: Any) -> str:
    v = np.asarray(list(v), dtype=float)
    return f"{v.min():.3f}–{v.max():.3f}" if v.max() - v.min() >= 0.0005 else f"{v.min():.3f}"


def _reading(s: pd.DataFrame) -> list[str]:
    """The Reading section, computed from the summary."""
    lines = []
    for tail, style in DATASETS:
        x = s.xs((tail, style, "stacked-dr"), level=("tail", "style", "setting"))
        switched = ", ".join(f"{pct(e)} {v:.0%}" for e, v in x["stable"].items() if v > 0)
        lines.append(
            f"- **Stacked DR (default), {tail} tails, style {'on' if style else 'off'}**: coverage "
            f"{_span(x['coverage'])} across ESS 50–3%, OK share {_span(x['ok'])}; the default "
            f"stabilised the residual weights in " + (switched or "no replicate") + ".")
    b = ("bounded", 0.9)
    for lab in ("dr-cpo", "tmle", "calibrated-ips"):
        if (*b, lab) in {k[:3] for k in s.index}:
            x = s.xs((*b, lab), level=("tail", "style", "setting"))
            lines.append(f"- **{lab}** (bounded, style on): coverage {_span(x['coverage'])}, bias "
                         f"{_span(x['bias'])}.")
    if (*b, "stacked-dr / raw") in {k[:3] for k in s.index}:
        parts = []
        for e in ESS:
            r, st, a = (s.loc[(*b, lab, e)] for lab in ("stacked-dr / raw", "stacked-dr / stable",
                                                          "stacked-dr"))
            parts.append(f"ESS {pct(e)}: raw {r['coverage']:.3f} (RMSE {r['rmse']:.4f}, width "
                         f"{r['mean_width']:.3f}), stable {st['coverage']:.3f} ({st['rmse']:.4f}, "
                         f"{st['mean_width']:.3f}), auto {a['coverage']:.3f} ({a['rmse']:.4f}, "
                         f"{a['mean_width']:.3f})")
        lines.append("- **The candidates the default chooses between** (stacked DR, bounded, style "
                     "on; coverage, RMSE, width): " + "; ".join(parts) + ". Stabilised residual "
                     "weights are biased here (the calibration does not transport); the allowance "
                     "gap² + Var(gap) keeps their intervals honest at the price of width.")
    return lines


def compact_table(s: pd.DataFrame) -> list[str]:
    """The evidence table of docs/offpolicy.md ("Weight tails"): coverage ± MC SE of the DR
    estimators with the default residual weights per raw ESS, and the share not OK.

    Parameters
    ----------
    s : pandas.DataFrame
        :func:`summary` of the replicate rows.

    Returns
    -------
    list of str
        Markdown lines.

    Examples
    --------
    >>> rows = pd.DataFrame({"tail": "bounded", "style": 0.9, "setting": "stacked-dr", "ess": 0.15,
    ...                      "estimate": [0.50, 0.52], "truth": 0.5, "ci_low": [0.45, 0.51],
    ...                      "ci_high": [0.55, 0.53], "status": ["OK", "CAUTION"],
    ...                      "stable_residual": False})
    >>> print("\\n".join(compact_table(summary(rows))))
    | raw ESS | stacked DR, bounded, style on |
    |---|---:|
    | 15% | **0.500 ± 0.354** ✗ (50%) |
    """
    cols = [("stacked-dr", "bounded", 0.9), ("stacked-dr", "bounded", 0.0),
            ("stacked-dr", "unbounded", 0.9), ("stacked-dr", "unbounded", 0.0),
            ("dr-cpo", "bounded", 0.9), ("tmle", "bounded", 0.9)]
    have = {k[:3] for k in s.index}
    cols = [c for c in cols if (c[1], c[2], c[0]) in have]
    head = ["raw ESS"] + [f"{'stacked DR' if lab == 'stacked-dr' else lab.upper()}, {tail}, "
                          f"style {'on' if style else 'off'}" for lab, tail, style in cols]
    rows = []
    for e in sorted({k[3] for k in s.index}, reverse=True):
        row = [pct(e)]
        for lab, tail, style in cols:
            x = s.loc[(tail, style, lab, e)]
            row.append(f"{cov_cell(x['coverage'], x['coverage_se'])} ({1 - x['ok']:.0%})")
        rows.append(row)
    return md_table(head, rows, align="l" + "r" * len(cols))


def _figure(s: pd.DataFrame) -> Any:
    fig, ax = figure(1, 2, (11.0, 4.2))
    for j, tail in enumerate(("bounded", "unbounded")):
        a = ax[0, j]
        a.axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
        a.axhline(0.95, color="0.5", lw=0.8, ls=":")
        curves = [(lab, style) for lab in SETTINGS for style in (0.9, 0.0)
                  if (tail, style, lab) in {k[:3] for k in s.index}]
        for i, (lab, style) in enumerate(curves):
            sub = s.xs((tail, style, lab), level=("tail", "style", "setting")).sort_index()
            x = sub.index.to_numpy(dtype=float) * (1 + 0.02 * (i - len(curves) / 2))
            a.errorbar(x, sub["coverage"], yerr=2 * sub["coverage_se"], marker="o", capsize=3,
                       color=f"C{i}", ls="-" if style else "--",
                       label=f"{lab}, style {'on' if style else 'off'}")
        log_x([a], np.array(ESS), [pct(e) for e in ESS])
        a.set_title(f"{tail} weight tails", fontsize=10)
        a.set_xlabel("population raw-weight ESS")
        a.set_ylim(max(0.0, min(0.8, a.get_ylim()[0])), 1.0)
        a.legend(fontsize=6, loc="lower right")
    ax[0, 0].set_ylabel("coverage of 95% CI (±2 MC SE)")
    fig.suptitle("Study 11 — weight tails: coverage across overlap")
    return fig


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    n = int(grid["n_prompts"])
    df, secs, r = replicate(r, partial(task, n_prompts=n), {"version": 1, "n_prompts": n})
    s = summary(df)
    rows = []
    for (tail, style, lab, ess), x in s.iterrows():
        rows.append([tail, "on" if style else "off", lab, pct(ess), *_cell(x)])
    acc = _acceptance(s, df)
    body = ["## Results", ""]
    body += md_table(["tail", "style", "setting", "raw ESS", "coverage", "bias ± MC SE", "RMSE",
                      "mean CI width", "OK / CAUTION / REFUSED", "stabilised residual"], rows,
                     align="lllrrrrrrr")
    body += [
        "",
        f"{r.reps} replicates, {n} prompts. Coverage of 95% intervals ± binomial MC SE; **bold ✗** "
        f"= outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}]. Bias, RMSE and width in label units "
        "(0–1). Settings without a suffix use the default `residual_weights=\"auto\"`; "
        "'stabilised residual' is the share of estimates whose oracle residual used the SIMCal-W "
        "weights.",
        "",
        "## Acceptance (issue #14)",
        "",
        "Good overlap (ESS ≥ 50%) within [0.935, 0.965]; at 10–20% ESS coverage ≥ 0.935 or the "
        "status not OK; at ≤ 5% ESS coverage ≥ 0.93 or REFUSED — for the DR estimators with the "
        "default residual weights.",
        "",
        *([f"- {line}" for line in acc] or ["- every DR cell meets it."]),
        "",
        "Coverage ± MC SE of the DR estimators with the default residual weights (share of "
        "estimates not OK in parentheses; the table in docs/offpolicy.md, \"Weight tails\"):",
        "",
        *compact_table(s),
        "",
        "## Reading",
        "",
        *_reading(s),
    ]
    design = (f"Design: {__doc__.split(chr(10) + chr(10), 1)[1].strip()} n = {n} logged prompts. "
              "The DGP was built before these results and not tuned to them.")
    return write_results(r, title="Study 11 — weight tails: DR intervals with bounded and "
                                  "unbounded weight tails", seconds=secs, design=design,
                         body=body, fig=_figure(s))


run = study_entry(NAME, FULL, QUICK, _report, title="the tails study",
                  quick_note="Small tier (n = 250 prompts) for tests.")
