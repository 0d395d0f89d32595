"""Plumbing shared by the off-policy studies: overlap grid, one analysis, one row per estimate.

The three studies that compare settings of an estimator on the same data (``residual_weights``,
``mrdr_omega``, ``folds``) are built by :func:`settings_study` (task, table, figure; each study
adds its grid and its Reading); ``overlap`` and ``var_cap`` use :func:`analyze_sim` and
:func:`estimate_row`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.montecarlo import summarise
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
    study_entry,
    write_results,
)
from cje.synthetic.offpolicy import OffPolicySim, make_offpolicy_eval, theta_for_ess

#: Overlap levels of the studies: target name -> population raw-weight ESS fraction.
OVERLAP: dict[str, float] = {"ess90": 0.90, "ess60": 0.60, "ess10": 0.10, "ess01": 0.01}


def overlap_targets(names: Sequence[str]) -> dict[str, float]:
    """Target name -> tilt ``theta`` at the population raw-weight ESS of :data:`OVERLAP`."""
    return {name: theta_for_ess(OVERLAP[name]) for name in names}


def analyze_sim(sim: OffPolicySim, **options: Any) -> Any:
    """:func:`cje.analyze` of a simulation's logged data and fresh draws, warnings silenced."""
    import cje

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(sim.logged, fresh_draws=sim.fresh, judge_scale=sim.judge_scale,
                           label_scale=sim.label_scale, **options)


def estimate_row(e: Any, truth: float) -> dict[str, Any]:
    """An off-policy estimate scored against the truth, with its status and weight ESS."""
    d = e.diagnostics
    return {"estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "truth": truth,
            "covered": bool(e.ci_low <= truth <= e.ci_high), "se": e.se, "status": e.status,
            "ess_raw": float(d.get("ess_raw", np.nan)), "ess_stable": float(d.get("ess_stable", np.nan)),
            "stable_residual": d.get("residual_weights") == "stable"}


def ess_label(target: str) -> str:
    """``"ess60"`` -> ``"60%"`` (the target's population raw-weight ESS)."""
    return f"{OVERLAP[target]:.0%}"


# ------------------------------------------------------------- studies that compare settings

_TASK_DOC = """One replicate: a data set per judge noise ({noises}), every setting on it.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per judge noise).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    n_prompts : int
        Logged prompts per data set.

    Returns
    -------
    list of dict
        One row per judge noise × setting × target: ``judge_noise, setting, target, estimate,
        ci_low, ci_high, truth, covered, se, status, ess_raw, ess_stable`` (sample ESS fractions
        of the raw and the SIMCal-W weights), ``stable_residual`` (the oracle residual was
        weighted by the SIMCal-W weights).

    Examples
    --------
    >>> import numpy as np
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=200)
    >>> len(rows)  # {n_noises} judge noise(s) × {n_settings} settings × {n_targets} targets
    {n_rows}
    >>> sorted({{r["setting"] for r in rows}}) == sorted(SETTINGS)
    True
    """


def settings_study(name: str, *, noises: Sequence[float], targets: Sequence[str],
                   settings: Mapping[str, Mapping[str, Any]], full: dict[str, Any],
                   quick: dict[str, Any], title: str, what: str,
                   reading: Callable[[pd.DataFrame, pd.DataFrame], list[str]],
                   quick_note: str) -> tuple[Callable[..., list[dict[str, Any]]], Callable[..., Path]]:
    """A settings study's public ``task`` and ``run``.

    ``settings`` maps a label to the :func:`cje.analyze` options it runs with; ``what`` names
    them in the design paragraph; ``reading(s, df)`` writes the Reading section from the summary
    (:func:`settings_summary`) and the replicate rows.
    """
    items = [(label, dict(opts)) for label, opts in settings.items()]

    def task(rng: np.random.Generator, replicate: int, *, n_prompts: int) -> list[dict[str, Any]]:
        return settings_task(rng, noises=noises, settings=items, targets=targets, n_prompts=n_prompts)

    task.__doc__ = _TASK_DOC.format(noises=", ".join(f"{v:g}" for v in noises), n_noises=len(noises),
                                    n_settings=len(items), n_targets=len(targets),
                                    n_rows=len(noises) * len(items) * len(targets))
    task.__name__ = task.__qualname__ = "task"
    task.__module__ = f"cje.studies.{name}"

    def report(r: StudyRun, grid: dict[str, Any]) -> Path:
        design = settings_design(int(grid["n_prompts"]), noises, targets, what)
        return settings_report(r, grid, task, title=title, design=design, reading=reading,
                               settings=list(settings))

    run = study_entry(name, full, quick, report, title=f"the {name} study", quick_note=quick_note)
    return task, run



def settings_task(rng: np.random.Generator, *, noises: Sequence[float],
                  settings: Sequence[tuple[str, Mapping[str, Any]]], targets: Sequence[str],
                  n_prompts: int) -> list[dict[str, Any]]:
    """One replicate: a data set per judge noise (own child stream), every setting on it.

    Data: :func:`cje.synthetic.make_offpolicy_eval` with its defaults (10% MCAR labels on the
    logged rows, one fresh draw per prompt and target, miscalibrated judge on the 0.05 grid).
    Each setting is a label and the :func:`cje.analyze` options it runs with.
    """
    thetas = overlap_targets(targets)
    rows: list[dict[str, Any]] = []
    for noise, child in zip(noises, rng.spawn(len(noises)), strict=True):
        sim = make_offpolicy_eval(n_prompts, targets=thetas, judge_noise=noise, rng=child)
        for label, options in settings:
            rep = analyze_sim(sim, **options)
            for t in thetas:
                rows.append({"judge_noise": noise, "setting": label, "target": t,
                             **estimate_row(rep[t], sim.truth[t])})
    return rows


def settings_report(r: StudyRun, grid: dict[str, Any], task: Callable[..., Any], *, title: str,
                    design: str, reading: Callable[[pd.DataFrame, pd.DataFrame], list[str]],
                    settings: Sequence[str]) -> Path:
    """Run a settings study's replicates and write its table, figure and ``reading``.

    ``reading(s, df)`` gets the summary (indexed by judge noise, target, setting: coverage,
    its SE, bias, RMSE, width, CAUTION share) and the replicate rows, and returns the lines of
    the "Reading" section.
    """
    df, secs, r = replicate(r, partial(task, n_prompts=int(grid["n_prompts"])),
                            {"version": 1, "n_prompts": int(grid["n_prompts"])})
    s = settings_summary(df)
    noises = list(dict.fromkeys(df["judge_noise"]))
    targets = list(dict.fromkeys(df["target"]))
    rows = []
    for noise in noises:
        for t in targets:
            for label in settings:
                x = s.loc[(noise, t, label)]
                rows.append([f"{noise:g}", ess_label(t), label, cov_cell(x["coverage"], x["coverage_se"]),
                             f"{x['bias']:+.4f} ± {x['bias_se']:.4f}", f"{x['rmse']:.4f}",
                             f"{x['mean_width']:.4f}", f"{x['caution']:.2f}"])
    body = ["## Results", ""]
    body += md_table(["judge noise", "raw ESS", "setting", "coverage", "bias ± MC SE", "RMSE",
                      "mean CI width", "share CAUTION"], rows, align="rrlrrrrr")
    body += [
        "",
        f"{r.reps} replicates, {grid['n_prompts']} prompts. Coverage of 95% intervals ± binomial MC "
        f"SE; **bold ✗** = outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}]. Bias, RMSE and width "
        "in label units (0–1). Raw ESS = the target's population raw-weight ESS. Share CAUTION: "
        "estimates the overlap gate marks CAUTION (raw ESS < 10% or TTC < 0.3; for the IPS "
        "family also raw ESS < 30% or Hill index < 2, for the doubly robust ones raw ESS < 20%).",
        "",
        "## Reading",
        "",
        *reading(s, df),
    ]
    fig = settings_figure(s, noises, targets, settings, title)
    return write_results(r, title=title, seconds=secs, design=design, body=body, fig=fig)


def settings_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Coverage, bias, RMSE, width and CAUTION share per (judge noise, target, setting)."""
    by = ["judge_noise", "target", "setting"]
    s = summarise(df, by=by).set_index(by)
    s["caution"] = df.assign(c=df["status"] != "OK").groupby(by)["c"].mean()
    return s


def settings_figure(s: pd.DataFrame, noises: list[float], targets: list[str],
                    settings: Sequence[str], title: str) -> Any:
    """Coverage (±2 MC SE) and RMSE vs raw-weight ESS per setting, one column per judge noise."""
    fig, ax = figure(2, len(noises), (max(4.6 * len(noises), 6.0), 7.0))
    x = np.array([OVERLAP[t] for t in targets])
    for j, noise in enumerate(noises):
        top, bot = ax[0, j], ax[1, j]
        top.axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
        top.axhline(0.95, color="0.5", lw=0.8, ls=":")
        for i, label in enumerate(settings):
            sub = s.xs(noise).xs(label, level="setting").reindex(targets)
            jit = x * (1 + 0.03 * (i - (len(settings) - 1) / 2))
            top.errorbar(jit, sub["coverage"].to_numpy(), yerr=2 * sub["coverage_se"].to_numpy(),
                         marker="o", capsize=3, color=f"C{i}", label=label)
            bot.plot(x, sub["rmse"].to_numpy(), marker="o", color=f"C{i}", label=label)
        top.set_title(f"judge noise {noise:g}", fontsize=10)
        top.set_ylim(max(0.0, min(0.8, top.get_ylim()[0])), 1.0)
        log_y(bot, (1.0, 1.5, 2.0, 3.0, 5.0, 7.0))
        log_x((top, bot), x, [pct(v) for v in x])
        bot.set_xlabel("population raw-weight ESS (overlap)")
    ax[0, 0].set_ylabel("coverage of 95% CI (±2 MC SE)")
    ax[1, 0].set_ylabel("RMSE (label scale 0–1)")
    ax[0, 0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return fig


def settings_design(n_prompts: int, noises: Sequence[float], targets: Sequence[str], what: str) -> str:
    """The design paragraph of a settings study (``what``: the settings compared)."""
    judge = " and ".join(
        f"{n:g}" + (" (the score is not sufficient for the label)" if n > 0 else " (nearly sufficient)")
        for n in noises)
    return (
        f"Design: each replicate draws `cje.synthetic.make_offpolicy_eval` data with targets tilted "
        f"toward better responses at population raw-weight ESS "
        f"{', '.join(ess_label(t) for t in targets)}: n = {n_prompts} logged prompts, 10% MCAR oracle "
        "labels on the logged rows, one fresh draw per prompt and target, the miscalibrated S-curve "
        f"judge on the 0.05 grid with judge noise {judge}. `cje.analyze` runs once per setting on "
        f"the same data (paired comparison) — {what} — with every other option at its default; "
        "intervals are scored against the exact truth. The DGP was not tuned to these results."
    )
