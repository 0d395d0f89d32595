"""Study 3 — off-policy estimators across overlap levels: IPS family vs DR family.

Each replicate draws :func:`cje.synthetic.make_offpolicy_eval` data for every cell of
n prompts × judge noise: a logging policy and four targets tilted toward better responses at
population raw-weight ESS 90%, 60%, 10% and 1% (true values 0.548, 0.604, 0.711, 0.784 on the
0–1 label scale, so their true order is the order of their tilts), 10% MCAR oracle labels on the
logged rows, one fresh draw per prompt and target, and the miscalibrated S-curve judge on the
0.05 grid with ``judge_noise`` 0.1 (the score is not sufficient for the label) or 0 (nearly
sufficient). On each data set :func:`cje.analyze` runs every estimator with its defaults:

* IPS family (logged data only): ``ips``, ``snips``, ``calibrated-ips`` (SIMCal-W weights);
* DR family (logged data + fresh draws of each target): ``dr-cpo``, ``tmle``, ``stacked-dr``.

Per estimate: the estimate and its 95% interval against the exact truth, the raw and the
stabilised (SIMCal-W) weight ESS on the sample, and the gate status. Per replicate and
estimator: how well the four targets' estimates order them (pairwise accuracy over 6 pairs).

The question is the CJE paper's "IPS fails despite high ESS": stabilised weights can show a high
ESS while the IPS-family estimate is still off, covers poorly or ranks the targets wrongly when
the target's responses are scarce under the logger; DR with fresh draws should not. The criteria
are fixed before the run (see the Reading section); the DGP was not tuned to the results.
"""

from __future__ import annotations

from functools import partial
from itertools import combinations
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
    log_y,
    md_table,
    pct,
    replicate,
    replicate_se,
    study_entry,
    write_results,
)
from cje.studies._offpolicy import OVERLAP, analyze_sim, ess_label, estimate_row, overlap_targets
from cje.synthetic.offpolicy import make_offpolicy_eval

__all__ = ["DEFAULT_SEED", "ESTIMATORS", "FULL", "QUICK", "ranking_accuracy", "run",
           "stabilisation_spread", "task"]

NAME = "overlap"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 800, "n_prompts": (500, 2000), "judge_noise": (0.1, 0.0)}
QUICK: dict[str, Any] = {"reps": 10, "n_prompts": (500,), "judge_noise": (0.1,)}
ORACLE_FRACTION = 0.10
TARGETS: dict[str, float] = overlap_targets(("ess90", "ess60", "ess10", "ess01"))
#: The estimators, IPS family first.
ESTIMATORS: tuple[str, ...] = ("ips", "snips", "calibrated-ips", "dr-cpo", "tmle", "stacked-dr")
IPS_FAMILY: tuple[str, ...] = ("ips", "snips", "calibrated-ips")
#: "High" stabilised ESS: at or above the gate's ESS threshold (it would pass an ESS gate).
HIGH_ESS = 0.10
#: Calibrated IPS is "still wrong" when its RMSE is at least this multiple of stacked DR's ...
RMSE_RATIO = 1.5


def task(rng: np.random.Generator, replicate: int, *, n_prompts: tuple[int, ...],
         judge_noise: tuple[float, ...]) -> list[dict[str, Any]]:
    """One replicate: every (judge noise, n prompts) cell, each with its own child stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    n_prompts : tuple of int
        Logged prompts per data set.
    judge_noise : tuple of float
        Judge noise levels (0: the score is a function of the label, up to the 0.05 grid).

    Returns
    -------
    list of dict
        One row per cell × estimator × target: ``n_prompts, judge_noise, estimator, family``
        (``"IPS"`` or ``"DR"``), ``target, pop_ess`` (population raw-weight ESS), ``estimate,
        ci_low, ci_high, truth, covered, se, status, ess_raw, ess_stable`` (sample ESS
        fractions; ``ess_stable`` is NaN for ``ips`` and ``snips``).

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=(200,), judge_noise=(0.1,))
    >>> len(rows)  # 6 estimators × 4 targets
    24
    >>> r = next(r for r in rows if r["estimator"] == "calibrated-ips" and r["target"] == "ess01")
    >>> r["family"], r["pop_ess"], r["ess_raw"] < r["ess_stable"]
    ('IPS', 0.01, True)
    """
    cells = [(noise, n) for noise in judge_noise for n in n_prompts]
    rows: list[dict[str, Any]] = []
    for (noise, n), child in zip(cells, rng.spawn(len(cells)), strict=True):
        sim = make_offpolicy_eval(n, targets=TARGETS, oracle_fraction=ORACLE_FRACTION,
                                  judge_noise=noise, n_fresh_per_prompt=1, rng=child)
        for est in ESTIMATORS:
            rep = analyze_sim(sim, estimator=est)
            for t in TARGETS:
                rows.append({"n_prompts": n, "judge_noise": noise, "estimator": est,
                             "family": "IPS" if est in IPS_FAMILY else "DR", "target": t,
                             "pop_ess": OVERLAP[t], **estimate_row(rep[t], sim.truth[t])})
    return rows


def ranking_accuracy(df: pd.DataFrame) -> pd.DataFrame:
    """Per replicate × cell × estimator: how well the estimates order the targets.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`task` (with a ``replicate`` column).

    Returns
    -------
    pandas.DataFrame
        Columns ``replicate, judge_noise, n_prompts, estimator``, ``accuracy`` (share of the
        target pairs ordered as their true values), ``exact`` (1.0 if every pair is), ``top1``
        (1.0 if the truly best target has the largest estimate) and ``hardest`` (1.0 if the two
        lowest-overlap targets are ordered right).

    Examples
    --------
    >>> df = pd.DataFrame({"replicate": 0, "judge_noise": 0.1, "n_prompts": 500, "estimator": "x",
    ...                    "target": ["ess90", "ess60", "ess10", "ess01"],
    ...                    "truth": [0.55, 0.60, 0.71, 0.78], "estimate": [0.56, 0.59, 0.80, 0.77]})
    >>> ranking_accuracy(df)[["accuracy", "exact", "top1", "hardest"]].round(3).values.tolist()
    [[0.833, 0.0, 0.0, 0.0]]
    """
    keys = ["replicate", "judge_noise", "n_prompts", "estimator"]
    wide_est = df.pivot_table(index=keys, columns="target", values="estimate", aggfunc="first")
    truth = df.groupby("target")["truth"].first()
    order = list(truth.sort_values(ascending=False).index)  # best first
    pairs = list(combinations(order, 2))
    correct = np.column_stack([(wide_est[a] > wide_est[b]).to_numpy() for a, b in pairs])
    low = sorted(order, key=lambda t: OVERLAP.get(t, 1.0))[:2]  # the two lowest-overlap targets
    a, b = sorted(low, key=lambda t: -truth[t])
    out = wide_est.index.to_frame(index=False)
    out["accuracy"] = correct.mean(axis=1)
    out["exact"] = correct.all(axis=1).astype(float)
    out["top1"] = (wide_est[order].to_numpy().argmax(axis=1) == 0).astype(float)
    out["hardest"] = (wide_est[a] > wide_est[b]).to_numpy().astype(float)
    return out


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    ns, noises = tuple(grid["n_prompts"]), tuple(grid["judge_noise"])
    df, secs, r = replicate(r, partial(task, n_prompts=ns, judge_noise=noises),
                            {"version": 1, "oracle_fraction": ORACLE_FRACTION})
    cells = [(noise, n) for noise in noises for n in ns]
    by = ["judge_noise", "n_prompts", "target", "estimator"]
    s = summarise(df, by=by).set_index(by)
    cse = replicate_se(df.assign(covered=df["covered"].astype(float)), by, "covered").set_index(by)
    g = df.assign(caution=df["status"] == "CAUTION", refused=df["status"] == "REFUSED").groupby(by)
    s = s.join(g[["ess_raw", "ess_stable", "caution", "refused"]].mean())
    rank = ranking_accuracy(df)
    keys = ["judge_noise", "n_prompts", "estimator"]
    rk = {col: replicate_se(rank, keys, col).set_index(keys)
          for col in ("accuracy", "exact", "top1", "hardest")}
    truth = df.groupby("target")["truth"].first()

    body = ["## Results", ""]
    for noise, n in cells:
        body += [f"### n = {n} prompts, judge noise {noise:g}", ""]
        rows = []
        for t in TARGETS:
            for est in ESTIMATORS:
                k = (noise, n, t, est)
                x = s.loc[k]
                ess = (f"{x['ess_raw']:.1%}" if np.isnan(x["ess_stable"])
                       else f"{x['ess_raw']:.1%} → {x['ess_stable']:.1%}")
                rows.append([ess_label(t), est, ess, cov_cell(cse.loc[k, "mean"], cse.loc[k, "se"]),
                             f"{x['bias']:+.4f} ± {x['bias_se']:.4f}", f"{x['rmse']:.4f}",
                             f"{x['mean_width']:.4f}", f"{x['caution']:.2f}", f"{x['refused']:.2f}"])
        body += md_table(["raw ESS (population)", "estimator", "ESS raw → stabilised (sample mean)",
                          "coverage", "bias ± MC SE", "RMSE", "mean CI width", "CAUTION", "REFUSED"],
                         rows, align="rlrrrrrrr")
        body.append("")
    body += [
        f"{r.reps} replicates per cell. Coverage of 95% intervals ± MC SE; **bold ✗** = outside "
        f"[{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}]. Bias, RMSE and width on the 0–1 label scale. "
        "ESS: mean over replicates of the sample ESS fraction of the raw importance weights and, "
        "for calibrated IPS and the DR family, of the SIMCal-W weights. CAUTION / REFUSED: share "
        "of estimates with that gate status. True values: "
        + ", ".join(f"{t} {truth[t]:.4f}" for t in TARGETS) + ".",
        "",
        "### Ranking of the four targets",
        "",
    ]
    pairs_low = sorted(TARGETS, key=lambda t: OVERLAP[t])[:2]
    rows = []
    for noise, n in cells:
        for est in ESTIMATORS:
            kr = (noise, n, est)
            rows.append([f"{n}", f"{noise:g}", est,
                         f"{rk['accuracy'].loc[kr, 'mean']:.4f} ± {rk['accuracy'].loc[kr, 'se']:.4f}",
                         f"{rk['exact'].loc[kr, 'mean']:.3f}", f"{rk['top1'].loc[kr, 'mean']:.3f}",
                         f"{rk['hardest'].loc[kr, 'mean']:.3f}"])
    body += md_table(["n prompts", "judge noise", "estimator", "pairwise accuracy ± MC SE",
                      "exact order", "top-1 right", f"{pairs_low[0]} > {pairs_low[1]} right"],
                     rows, align="rrlrrrr")
    body += [
        "",
        "Per replicate, the four targets' estimates are ordered and compared with the true order "
        "(6 pairs); averages over replicates. The last column is the pair of the two "
        f"lowest-overlap targets (true gap {truth[pairs_low[0]] - truth[pairs_low[1]]:.3f}).",
        "",
    ]
    spread = stabilisation_spread(df)
    body += [
        "### SIMCal-W against SNIPS: spread of the estimate",
        "",
    ]
    body += md_table(
        ["n prompts", "judge noise", "raw ESS (population)", "SD ratio calibrated IPS / SNIPS",
         "95% bootstrap CI", "RMSE ratio"],
        [[f"{n}", f"{noise:g}", ess_label(t), f"{x['sd_ratio']:.3f}",
          f"[{x['sd_low']:.3f}, {x['sd_high']:.3f}]", f"{x['rmse_ratio']:.3f}"]
         for (noise, n, t), x in spread.iterrows()],
        align="rrrrrr")
    body += [
        "",
        "Monte Carlo standard deviation (and RMSE) of calibrated IPS over that of SNIPS on the same "
        "data sets; the interval is a percentile bootstrap over replicates (seeded). Below 1: "
        "SIMCal-W makes the estimate less variable.",
        "",
    ]
    body += _reading(s, cse, rk, cells, truth, spread)
    fig = _figure(s, cse, cells)
    design = (
        f"Design: `cje.synthetic.make_offpolicy_eval`, n = {' and '.join(map(str, ns))} logged "
        f"prompts × judge noise {' and '.join(f'{v:g}' for v in noises)}; four targets tilted toward "
        "better responses at population raw-weight ESS 90%, 60%, 10%, 1%; 10% MCAR oracle labels on "
        "the logged rows; one fresh draw per prompt and target; `cje.analyze` with its defaults for "
        "each of " + ", ".join(ESTIMATORS) + " on the same data. The DGP and the criteria below "
        "were fixed before the run and not tuned to the results."
    )
    return write_results(r, title="Study 3 — off-policy estimators across overlap levels",
                         seconds=secs, design=design, body=body, fig=fig)


def stabilisation_spread(df: pd.DataFrame, *, n_boot: int = 400, seed: int = 0) -> pd.DataFrame:
    """Spread of calibrated IPS relative to SNIPS on the same replicates, per cell and target.

    Parameters
    ----------
    df : pandas.DataFrame
        The study's replicate rows (``replicate, judge_noise, n_prompts, target, estimator,
        estimate, truth``) with both ``calibrated-ips`` and ``snips``.
    n_boot : int
        Bootstrap resamples of the replicates for the interval of the SD ratio.
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``(judge_noise, n_prompts, target)``: ``sd_ratio`` (Monte Carlo SD of
        calibrated IPS over SNIPS's), ``sd_low``/``sd_high`` (95% percentile bootstrap) and
        ``rmse_ratio``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"replicate": [0, 0, 1, 1, 2, 2], "judge_noise": 0.0, "n_prompts": 500,
    ...                    "target": "ess10", "truth": 0.5,
    ...                    "estimator": ["snips", "calibrated-ips"] * 3,
    ...                    "estimate": [0.4, 0.45, 0.5, 0.5, 0.6, 0.55]})
    >>> stabilisation_spread(df, n_boot=50)[["sd_ratio", "rmse_ratio"]].round(2).to_numpy()
    array([[0.5, 0.5]])
    """
    gen = np.random.default_rng(seed)
    rows = {}
    for key, d in df.groupby(["judge_noise", "n_prompts", "target"], sort=True):
        w = d.pivot(index="replicate", columns="estimator", values="estimate")
        a, b = w["calibrated-ips"].to_numpy(), w["snips"].to_numpy()
        truth = float(d["truth"].iloc[0])
        idx = gen.integers(0, a.size, size=(n_boot, a.size))
        boot = a[idx].std(axis=1, ddof=1) / b[idx].std(axis=1, ddof=1)
        rows[key] = {"sd_ratio": a.std(ddof=1) / b.std(ddof=1),
                     "sd_low": float(np.percentile(boot, 2.5)),
                     "sd_high": float(np.percentile(boot, 97.5)),
                     "rmse_ratio": float(np.sqrt(np.mean((a - truth) ** 2) / np.mean((b - truth) ** 2)))}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.index.names = ["judge_noise", "n_prompts", "target"]
    return out


def _reading(s: pd.DataFrame, cse: pd.DataFrame, rk: dict[str, pd.DataFrame],
             cells: list[tuple[float, int]], truth: pd.Series, spread: pd.DataFrame) -> list[str]:
    """The Reading section: the "IPS fails despite high ESS" check and what else the table shows."""
    lines = ["## Reading", ""]
    lines.append(
        "Criteria (fixed before the run): in a cell where the target's mean raw-weight ESS is below "
        f"{HIGH_ESS:.0%} but its mean stabilised ESS is at least {HIGH_ESS:.0%} (an ESS check on the "
        "stabilised weights would pass), calibrated IPS is *still wrong* if its coverage is below "
        f"{COVERAGE_BAND[0]} by more than 2 MC SE or its RMSE is at least {RMSE_RATIO:g}× stacked "
        "DR's; DR *fixes it* if stacked DR's coverage is not below "
        f"{COVERAGE_BAND[0]} by more than 2 MC SE there.")
    lines.append("")
    found: list[tuple[str, bool, bool]] = []  # (cell, calibrated IPS still wrong, DR fixes it)
    keys: list[tuple[float, int, str]] = []
    for noise, n in cells:
        for t in TARGETS:
            c = s.loc[(noise, n, t, "calibrated-ips")]
            if not (c["ess_raw"] < HIGH_ESS <= c["ess_stable"]):
                continue
            d = s.loc[(noise, n, t, "stacked-dr")]
            cc, dc = cse.loc[(noise, n, t, "calibrated-ips")], cse.loc[(noise, n, t, "stacked-dr")]
            ratio = c["rmse"] / d["rmse"]
            wrong = cc["mean"] < COVERAGE_BAND[0] - 2 * cc["se"] or ratio >= RMSE_RATIO
            fixed = not dc["mean"] < COVERAGE_BAND[0] - 2 * dc["se"]
            keys.append((noise, n, t))
            found.append((
                f"n = {n}, noise {noise:g}, ESS {ess_label(t)} (sample ESS {c['ess_raw']:.1%} → "
                f"{c['ess_stable']:.1%}): calibrated IPS coverage {cc['mean']:.3f}, bias "
                f"{c['bias']:+.4f}, RMSE {c['rmse']:.4f} = {ratio:.2f}× stacked DR's; stacked DR "
                f"coverage {dc['mean']:.3f}, bias {d['bias']:+.4f}; calibrated IPS marked CAUTION "
                f"in {c['caution']:.0%}", wrong, fixed))
    wrong_cells = [f for f in found if f[1]]
    if not found:
        lines.append("- **No cell qualifies**: wherever the raw ESS is below "
                     f"{HIGH_ESS:.0%}, the stabilised ESS is too; the effect cannot show here.")
    else:
        lines.append(f"- **{len(found)} {'cell has' if len(found) == 1 else 'cells have'}** a low raw "
                     "but a high stabilised ESS. Calibrated "
                     f"IPS is still wrong in **{len(wrong_cells)}** of them"
                     + (f", and stacked DR fixes it in {sum(f[2] for f in wrong_cells)} of those"
                        if wrong_cells else "") + ":")
        for tag, wrong, fixed in found:
            verdict = ("still wrong, " + ("DR fixes it" if fixed else "DR does not fix it")
                       if wrong else "not wrong by the criteria")
            lines.append(f"  - {verdict}: {tag}.")
        lines.append(
            "- So the effect " + ("**shows** in this DGP" if wrong_cells else "**does not show** in this DGP")
            + ". cje's own overlap gate reads the raw weights (ESS, TTC, Hill index), not the "
            "stabilised ones; the CAUTION shares above say how often it warned.")
        sn = [(cse.loc[k + ("snips",), "mean"], s.loc[k + ("snips",)], s.loc[k + ("calibrated-ips",)])
              for k in keys]
        lines.append(
            "- SNIPS, which does not stabilise, in the same cells: coverage "
            + " / ".join(f"{c:.3f}" for c, _, _ in sn) + ", RMSE "
            + " / ".join(f"{x['rmse']:.4f}" for _, x, _ in sn) + ", bias "
            + " / ".join(f"{x['bias']:+.4f}" for _, x, _ in sn)
            + " (calibrated IPS's bias minus SNIPS's: "
            + " / ".join(f"{c['bias'] - x['bias']:+.4f}" for _, x, c in sn) + "). The high stabilised "
            "ESS says nothing about this failure: it comes with the low overlap, which the raw ESS "
            "shows.")
    # Ranking.
    worst = []
    for noise, n in cells:
        acc = rk["accuracy"].xs((noise, n))["mean"]
        worst.append(f"n = {n}, noise {noise:g}: " + ", ".join(f"{e} {acc[e]:.3f}" for e in ESTIMATORS))
    lines.append("- Pairwise ranking accuracy of the four targets by cell: " + "; ".join(worst) + ".")
    acc = rk["accuracy"]["mean"]
    fam = acc[acc.index.get_level_values("estimator").isin(["snips", "calibrated-ips"])]
    gaps = np.diff(np.sort(truth.to_numpy()))
    lines.append(
        f"- Ranking: SNIPS and calibrated IPS order the targets right in {fam.min():.3f}–{fam.max():.3f} "
        f"of pairs, stacked DR in {acc.xs('stacked-dr', level='estimator').min():.3f} or more, "
        f"unnormalised IPS in {acc.xs('ips', level='estimator').min():.3f}–"
        f"{acc.xs('ips', level='estimator').max():.3f}. "
        + ("With true gaps of at least " f"{gaps.min():.3f} between the targets, the IPS family's "
           "errors are too small to misorder them: the ranking half of the effect **does not show** "
           "in this DGP (only unnormalised IPS, with its unbounded variance, misranks)."
           if fam.min() >= 0.99 else
           "The IPS family misorders the targets in more than 1% of pairs somewhere: the ranking half "
           "of the effect **shows**."))
    # DR at the lowest overlap.
    low = min(TARGETS, key=lambda t: OVERLAP[t])
    dr_low = [f"n = {n}, noise {noise:g}: {cse.loc[(noise, n, low, 'stacked-dr'), 'mean']:.3f}"
              for noise, n in cells]
    lines.append(f"- Stacked DR's coverage at the lowest overlap (ESS {ess_label(low)}): "
                 + "; ".join(dr_low) + ". Where it is below the band the estimate rests on the "
                 "calibration transporting to the target's responses, and the DR gate says so "
                 "(CAUTION column).")
    ips = [f"n = {n}, noise {noise:g}: RMSE {s.loc[(noise, n, low, 'ips'), 'rmse']:.3f} vs "
           f"{s.loc[(noise, n, low, 'snips'), 'rmse']:.3f} (SNIPS)" for noise, n in cells]
    lines.append(f"- Unnormalised IPS at ESS {ess_label(low)}: " + "; ".join(ips) + ".")
    below = spread[spread["sd_high"] < 1.0]
    lines.append(
        "- **SIMCal-W vs SNIPS (spread):** calibrated IPS is less variable than SNIPS, with the "
        f"bootstrap interval below 1, in {len(below)} of {len(spread)} cells"
        + (f" (SD ratio {below['sd_ratio'].min():.3f}–{below['sd_ratio'].max():.3f}, i.e. variance "
           f"{1 - below['sd_ratio'].max() ** 2:.1%}–{1 - below['sd_ratio'].min() ** 2:.1%} lower: "
           + ", ".join(f"noise {k[0]:g}, n = {k[1]}, ESS {ess_label(k[2])}" for k in below.index)
           + ")" if len(below) else "")
        + f"; elsewhere the ratio is {spread.drop(index=below.index)['sd_ratio'].min():.3f}–"
        f"{spread.drop(index=below.index)['sd_ratio'].max():.3f}. Its RMSE ratio is "
        f"{spread['rmse_ratio'].min():.3f}–{spread['rmse_ratio'].max():.3f} throughout. Where the "
        "raw-weight ESS is high the two coincide: the reward is a function of the judge score and "
        "the stabiliser is fitted on the same logs, so to first order the estimate's influence is "
        "SNIPS's. The gain at low overlap comes mostly from the oracle residual, which the default "
        "`residual_weights=\"auto\"` weights by the stabilised weights below 10% raw ESS (or "
        "under a Hill index below 1) — at the "
        "price of the transport assumption, whose bias the coverage and bias columns above show "
        "(see `study_residual_weights.md`).")
    return lines


def _figure(s: pd.DataFrame, cse: pd.DataFrame, cells: list[tuple[float, int]]) -> Any:
    """Coverage, RMSE and ESS (raw, stabilised) vs the population raw ESS, one column per cell."""
    fig, ax = figure(3, len(cells), (max(4.2 * len(cells), 6.0), 10.0))
    x = np.array([OVERLAP[t] for t in TARGETS])
    style = {e: ("--" if e in IPS_FAMILY else "-") for e in ESTIMATORS}
    for j, (noise, n) in enumerate(cells):
        top, mid, bot = ax[0, j], ax[1, j], ax[2, j]
        top.axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
        top.axhline(0.95, color="0.5", lw=0.8, ls=":")
        for i, est in enumerate(ESTIMATORS):
            keys = [(noise, n, t, est) for t in TARGETS]
            jit = x * (1 + 0.03 * (i - (len(ESTIMATORS) - 1) / 2))
            top.errorbar(jit, cse.loc[keys, "mean"].to_numpy(), yerr=2 * cse.loc[keys, "se"].to_numpy(),
                         marker="o", ms=4, capsize=2, ls=style[est], color=f"C{i}", label=est)
            mid.plot(x, s.loc[keys, "rmse"].to_numpy(), marker="o", ms=4, ls=style[est], color=f"C{i}",
                     label=est)
        raw = s.loc[[(noise, n, t, "snips") for t in TARGETS], "ess_raw"].to_numpy()
        stab = s.loc[[(noise, n, t, "calibrated-ips") for t in TARGETS], "ess_stable"].to_numpy()
        bot.plot(x, x, color="0.6", lw=0.8, ls=":", label="population raw ESS")
        bot.plot(x, raw, marker="o", color="k", ls="--", label="raw weights (sample)")
        bot.plot(x, stab, marker="s", color="C2", label="SIMCal-W weights (sample)")
        bot.axhline(HIGH_ESS, color="C3", lw=0.8, ls=":", label=f"gate threshold {HIGH_ESS:.0%}")
        top.set_title(f"n = {n}, judge noise {noise:g}", fontsize=10)
        top.set_ylim(max(0.0, min(0.7, top.get_ylim()[0])), 1.0)
        log_y(mid)
        bot.set_yscale("log")
        bot.set_yticks([0.01, 0.03, 0.1, 0.3, 1.0], ["1%", "3%", "10%", "30%", "100%"])
        log_x((top, mid, bot), x, [pct(v) for v in x])
        bot.set_xlabel("population raw-weight ESS (overlap)")
    ax[0, 0].set_ylabel("coverage of 95% CI (±2 MC SE)")
    ax[1, 0].set_ylabel("RMSE (label scale 0–1)")
    ax[2, 0].set_ylabel("mean ESS fraction")
    ax[0, 0].legend(fontsize=7, loc="lower left", ncol=2)
    ax[2, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Off-policy estimators vs overlap (dashed: IPS family, solid: DR family)")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the overlap study",
                  quick_note="Small tier (n = 500 prompts, judge noise 0.1) for tests.")
