"""Study — probe labels that correct: coverage of policies without labels of their own, with
and without their probe slices entering the estimate (``probe_correction``).

**Direct cells** (:func:`cje.synthetic.make_direct_eval`: miscalibrated judge, the five default
policies, n prompts): oracle labels MCAR on the ``base`` policy's rows only — the design in which
``simulations/results/study_naive_ci.md`` finds 0.62–0.88 coverage for the four policies without
labels, because the calibration learned on base does not transport to them. Each of those four
gets a probe slice: an independent draw of the policy's responses on probe prompts of their own
(a second :func:`~cje.synthetic.make_direct_eval` data set of ``m`` prompts, every row labelled).
Intervals compared: today's (``probe_correction=False``, the probe only audits) and the
probe-corrected ones with ``m = 50`` and with a small probe (``m = 15``, below
:data:`~cje.diagnostics.gates.MIN_PROBE_LABELS`). A pooling cell labels every policy at the
lowest oracle fraction and adds the 50-label probes (own labels and probe pooled).

**Off-policy cells** (:func:`cje.synthetic.make_offpolicy_eval`: miscalibrated judge with noise
0.2, so E[Y | S] learned on the logging policy is not E[Y | S] for a tilted target; targets at
population raw-weight ESS 15% and 5%; 10% of logged rows labelled; one unlabelled fresh draw per
prompt). Each target's 50-row probe is built from the fresh-draw machinery: a second simulation
of 50 prompts with one fully labelled fresh draw of each target. Every estimator runs with its
defaults (``residual_weights="auto"``) and with the probe correcting it.
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
from cje.synthetic.offpolicy import make_offpolicy_eval, theta_for_ess

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "run", "task"]

NAME = "probes"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 500, "n_prompts": 2000, "fractions": (0.05, 0.25),
                        "probe_sizes": (15, 50), "off_prompts": 1000}
QUICK: dict[str, Any] = {"reps": 8, "n_prompts": 300, "fractions": (0.25,),
                         "probe_sizes": (15, 50), "off_prompts": 300}
LABELLED_POLICY = "base"
#: The probe size of the acceptance cells (the others show what a small probe does).
PROBE = 50
#: Off-policy targets: name -> population raw-weight ESS.
OFF_TARGETS: dict[str, float] = {"ess15": 0.15, "ess05": 0.05}
OFF_ESTIMATORS: tuple[str, ...] = ("stacked-dr", "dr-cpo", "tmle", "mrdr", "calibrated-ips",
                                   "snips")
OFF_JUDGE_NOISE = 0.2
OFF_ORACLE_FRACTION = 0.10


def _probe_frames(data: pd.DataFrame, policies: list[str]) -> dict[str, pd.DataFrame]:
    """Each policy's rows of a fully labelled data set, on prompts named apart from the main
    data's (its own clusters)."""
    return {p: data[data["policy"] == p].assign(prompt_id=lambda d: "probe:" + d["prompt_id"].astype(str))
            for p in policies}


def _row(e: Any, truth: float, **keys: Any) -> dict[str, Any]:
    return {**keys, "policy": e.policy, "estimate": e.estimate, "ci_low": e.ci_low,
            "ci_high": e.ci_high, "truth": truth, "covered": bool(e.ci_low <= truth <= e.ci_high),
            "se": e.se, "df": e.df, "status": e.status, "n_labels": e.n_labels}


def task(rng: np.random.Generator, replicate: int, *, n_prompts: int,
         fractions: tuple[float, ...], probe_sizes: tuple[int, ...],
         off_prompts: int) -> list[dict[str, Any]]:
    """One replicate: the direct cells at every oracle fraction and probe size, then the
    off-policy cells (own child stream per data set).

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream.
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    n_prompts : int
        Prompts of the direct data sets.
    fractions : tuple of float
        Oracle fractions of the base policy's rows.
    probe_sizes : tuple of int
        Probe slice sizes (labels per policy).
    off_prompts : int
        Prompts (logged rows) of the off-policy data set.

    Returns
    -------
    list of dict
        One row per estimate: ``part`` (``"direct"``/``"offpolicy"``), ``design``, the cell
        keys, ``setting`` (``"today"`` or ``"probe <m>"``) and the interval scored against the
        truth.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, n_prompts=200, fractions=(0.25,),
    ...             probe_sizes=(50,), off_prompts=200)
    >>> sorted({(r["part"], r["setting"]) for r in rows})[:3]
    [('direct', 'probe 50'), ('direct', 'today'), ('offpolicy', 'probe 50')]
    """
    rows: list[dict[str, Any]] = []
    streams = iter(rng.spawn(len(fractions) + len(probe_sizes) + 4))
    probe_sets = {m: make_direct_eval(m, oracle_fraction=1.0, rng=next(streams)).data
                  for m in dict.fromkeys((*probe_sizes, PROBE))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        for i, frac in enumerate(fractions):
            for design in (("base only", "every policy") if i == 0 else ("base only",)):
                sim = make_direct_eval(n_prompts, oracle_fraction=frac, rng=next(streams))
                data = sim.data
                if design == "base only":
                    data = data.assign(oracle_label=data["oracle_label"].where(
                        data["policy"] == LABELLED_POLICY))
                others = [p for p in sim.truth if p != LABELLED_POLICY]
                keys = {"part": "direct", "design": design, "oracle_fraction": frac}
                sizes = probe_sizes if design == "base only" else (PROBE,)
                runs = [("today", None, False)] + [(f"probe {m}", m, True) for m in sizes]
                for setting, m, corr in runs:
                    probes = _probe_frames(probe_sets[PROBE if m is None else m], others)
                    rep = analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                                  probes=probes, probe_correction=corr)
                    rows += [_row(e, sim.truth[e.policy], **keys, setting=setting, probe_size=m or 0)
                             for e in rep.estimates if e.policy != LABELLED_POLICY]
        targets = {name: theta_for_ess(e) for name, e in OFF_TARGETS.items()}
        sim = make_offpolicy_eval(off_prompts, targets=targets, oracle_fraction=OFF_ORACLE_FRACTION,
                                  judge_noise=OFF_JUDGE_NOISE, rng=next(streams))
        psim = make_offpolicy_eval(PROBE, targets=targets, judge_noise=OFF_JUDGE_NOISE,
                                   fresh_oracle_fraction=1.0, rng=next(streams))
        probes = _probe_frames(psim.fresh, list(targets))
        for est in OFF_ESTIMATORS:
            for setting, corr in (("today", False), (f"probe {PROBE}", True)):
                rep = analyze(sim.logged, fresh_draws=sim.fresh, estimator=est, probes=probes,
                              probe_correction=corr, judge_scale=sim.judge_scale,
                              label_scale=sim.label_scale, progress=False)
                for e in rep.estimates:
                    if e.policy in targets:
                        rows.append({**_row(e, sim.truth[e.policy], part="offpolicy",
                                            design=est, oracle_fraction=OFF_ORACLE_FRACTION,
                                            setting=setting, probe_size=PROBE if corr else 0),
                                     "residual_weights": e.diagnostics.get("residual_weights", "")})
    return rows


def _cells(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Coverage ± MC SE (clustered by replicate), bias, RMSE, width and status shares."""
    cse = replicate_se(df, by, "covered").set_index(by)
    s = summarise(df, by=by).set_index(by)
    st = df.groupby(by)["status"]
    out = pd.DataFrame({
        "coverage": cse["mean"], "coverage_se": cse["se"], "bias": s["bias"], "rmse": s["rmse"],
        "width": s["mean_width"], "ok": st.apply(lambda x: float((x == "OK").mean())),
        "refused": st.apply(lambda x: float((x == "REFUSED").mean())),
        "df": df.groupby(by)["df"].median(),
    })
    return out


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    t = partial(task, n_prompts=int(grid["n_prompts"]), fractions=tuple(grid["fractions"]),
                probe_sizes=tuple(grid["probe_sizes"]), off_prompts=int(grid["off_prompts"]))
    df, secs, r = replicate(r, t, {"version": 1})
    df = df.assign(covered=df["covered"].astype(float))
    fracs = list(grid["fractions"])
    sizes = list(grid["probe_sizes"])
    settings = ["today", *(f"probe {m}" for m in sizes)]
    d = df[df.part == "direct"]
    bo = d[d.design == "base only"]
    pooled = _cells(bo, ["oracle_fraction", "setting"])
    per = _cells(bo, ["oracle_fraction", "policy", "setting"])
    body = ["## Direct: labels on base only, the four other policies with probe slices", ""]
    rows = []
    for f in fracs:
        rows.append([pct(f), "all four (pooled)"] + [
            f"{cov_cell(pooled.loc[(f, s), 'coverage'], pooled.loc[(f, s), 'coverage_se'])} "
            f"({pooled.loc[(f, s), 'width']:.3f})" for s in settings])
        for p in dict.fromkeys(bo["policy"]):
            rows.append([pct(f), p] + [
                f"{cov_cell(per.loc[(f, p, s), 'coverage'], per.loc[(f, p, s), 'coverage_se'])} "
                f"({per.loc[(f, p, s), 'width']:.3f})" for s in settings])
    body += md_table(["base oracle fraction", "policy",
                      "today (probe only audits)", *(f"corrected, {m}-label probe" for m in sizes)],
                     rows, align="ll" + "r" * len(settings))
    body += [
        "",
        "Coverage of 95% intervals ± MC SE (clustered by replicate) and, in parentheses, mean "
        "width (label scale 1–5). "
        f"**Bold ✗** = outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}].",
        "",
    ]
    brow = []
    for f in fracs:
        for s in settings:
            c = pooled.loc[(f, s)]
            brow.append([pct(f), s, f"{c['bias']:+.4f}", f"{c['rmse']:.4f}", f"{c['df']:.0f}",
                         f"{c['ok']:.2f}"])
    body += md_table(["base oracle fraction", "setting", "bias", "RMSE", "median df", "OK share"],
                     brow, align="llrrrr")
    ev = d[d.design == "every policy"]
    evc = _cells(ev, ["setting"]).reindex(["today", f"probe {PROBE}"])
    body += ["", f"## Direct: labels on every policy ({pct(fracs[0])}) pooled with the probes", ""]
    body += md_table(["setting", "coverage", "bias", "RMSE", "width"], [
        [s, cov_cell(evc.loc[s, "coverage"], evc.loc[s, "coverage_se"]), f"{evc.loc[s, 'bias']:+.4f}",
         f"{evc.loc[s, 'rmse']:.4f}", f"{evc.loc[s, 'width']:.3f}"] for s in evc.index])
    body += [
        "",
        "The four non-base policies pooled; their own labelled rows and the probe's residuals "
        "enter the residual term with weights in proportion to their counts.",
        "",
    ]
    o = df[df.part == "offpolicy"]
    oc = _cells(o, ["design", "policy", "setting"])
    rw = o[o.setting == "today"].groupby(["design", "policy"])["residual_weights"].apply(
        lambda x: float((x == "stable").mean()))
    body += ["## Off-policy: a target the calibration does not transport to, 50-row probes", ""]
    orow = []
    for est in OFF_ESTIMATORS:
        for tg in OFF_TARGETS:
            a, b = oc.loc[(est, tg, "today")], oc.loc[(est, tg, f"probe {PROBE}")]
            orow.append([est, f"{100 * OFF_TARGETS[tg]:g}%", f"{rw.loc[(est, tg)]:.2f}",
                         cov_cell(a["coverage"], a["coverage_se"]), f"{a['bias']:+.4f}",
                         f"{a['width']:.3f}", f"{a['ok']:.2f}",
                         cov_cell(b["coverage"], b["coverage_se"]), f"{b['bias']:+.4f}",
                         f"{b['width']:.3f}", f"{b['ok']:.2f}"])
    body += md_table(["estimator", "raw ESS", "stabilised residual share (today)",
                      "today: coverage", "bias", "width", "OK share",
                      "probe-corrected: coverage", "bias", "width", "OK share"], orow,
                     align="llrrrrrrrrr")
    body += [
        "",
        "Label scale 0–1. 'today' is `residual_weights=\"auto\"` without the probe entering the "
        "estimate (stabilised residual weights where the sample raw ESS is below 10%). The OK "
        "share is the overlap gates' verdict, which the probe does not change.",
        "",
        "## Reading",
        "",
    ]
    body += _reading(pooled, fracs, sizes, evc, oc)
    fig = _figure(pooled, fracs, settings, oc)
    design = (
        f"Design: direct — `make_direct_eval(n = {grid['n_prompts']})`, miscalibrated judge, "
        "five default policies, oracle labels on base only at each fraction; probes of "
        f"{', '.join(str(m) for m in sizes)} labelled responses per policy from an independent "
        "`make_direct_eval(m, oracle_fraction=1)` (own prompts). Off-policy — "
        f"`make_offpolicy_eval(n = {grid['off_prompts']}, judge_noise={OFF_JUDGE_NOISE}, "
        f"oracle_fraction={OFF_ORACLE_FRACTION})` with targets at raw ESS 15% and 5% and their "
        f"fresh draws; {PROBE}-row probes from a second simulation's labelled fresh draws. "
        f"`cje.analyze` defaults otherwise. {r.reps} replicates."
    )
    return write_results(r, title="Study — probe labels that correct", seconds=secs,
                         design=design, body=body, fig=fig)


def _span(v: list[float], fmt: str = ".3f") -> str:
    """``"a–b"``, or ``"a"`` when both print the same."""
    a, b = format(min(v), fmt), format(max(v), fmt)
    return a if a == b else f"{a}–{b}"


def _reading(pooled: pd.DataFrame, fracs: list[float], sizes: list[int], evc: pd.DataFrame,
             oc: pd.DataFrame) -> list[str]:
    """The Reading section, computed from the tables."""
    today = [pooled.loc[(f, "today"), "coverage"] for f in fracs]
    big = [pooled.loc[(f, f"probe {PROBE}"), "coverage"] for f in fracs]
    ratio = [pooled.loc[(f, f"probe {PROBE}"), "width"] / pooled.loc[(f, "today"), "width"]
             for f in fracs]
    lines = [
        f"- **Direct, no labels of their own**: today the four policies' intervals cover "
        f"{_span(today)} pooled (per policy in the table): the calibration "
        f"learned on base does not transport. With their {PROBE}-label probes correcting the "
        f"level, pooled coverage is {_span(big)}, with intervals "
        f"{_span(ratio, '.1f')}× as wide — the width of a {PROBE}-label mean of "
        "residuals, which is what an honest interval for these policies costs.",
    ]
    small = [s for s in sizes if s < PROBE]
    for m in small:
        c = [pooled.loc[(f, f"probe {m}"), "coverage"] for f in fracs]
        w = [pooled.loc[(f, f"probe {m}"), "width"] / pooled.loc[(f, f"probe {PROBE}"), "width"]
             for f in fracs]
        lines.append(
            f"- A {m}-label probe covers {_span(c)} pooled, with intervals "
            f"{_span(w, '.1f')}× as wide as a {PROBE}-label probe's. Its levels are marked "
            "CAUTION (fewer than 30 probe labels) as a precaution this DGP does not test: its "
            "residuals are nearly symmetric, and the t interval of a mean of so few residuals "
            "leans on their distribution.")
    lines.append(
        f"- **Pooled with own labels** (every policy labelled at {pct(fracs[0])} and their "
        f"{PROBE}-label probes): coverage {evc.loc[f'probe {PROBE}', 'coverage']:.3f} vs "
        f"{evc.loc['today', 'coverage']:.3f} without the probes, width "
        f"{evc.loc[f'probe {PROBE}', 'width']:.3f} vs {evc.loc['today', 'width']:.3f}.")
    t_cov = oc.xs("today", level="setting")["coverage"]
    p_cov = oc.xs(f"probe {PROBE}", level="setting")["coverage"]
    lines.append(
        f"- **Off-policy**: today {_span(list(t_cov))} across estimators and "
        f"targets (the residual term under stabilised weights assumes the calibration "
        f"transports; with raw weights it rests on the few labelled high-weight rows); with the "
        f"{PROBE}-row probe replacing the weighted residual term, {_span(list(p_cov))}, bias "
        "near zero and narrower intervals.")
    return lines


def _figure(pooled: pd.DataFrame, fracs: list[float], settings: list[str], oc: pd.DataFrame) -> Any:
    fig, ax = figure(1, 2, (11.0, 4.6))
    a = ax[0, 0]
    x = np.arange(len(fracs))
    for i, s in enumerate(settings):
        c = pooled.xs(s, level="setting")
        a.errorbar(x + 0.12 * (i - 1), c["coverage"].to_numpy(), yerr=2 * c["coverage_se"].to_numpy(),
                   marker="o", capsize=3, ls="none", color=f"C{i}", label=s)
    a.set_xticks(x, [pct(f) for f in fracs])
    a.set_xlabel("oracle fraction (base only)")
    a.set_title("direct: the four policies without labels", fontsize=10)
    b = ax[0, 1]
    labels = [f"{e}\n{100 * OFF_TARGETS[t]:g}%" for e, t in oc.xs("today", level="setting").index]
    xx = np.arange(len(labels))
    for i, s in enumerate(["today", f"probe {PROBE}"]):
        c = oc.xs(s, level="setting")
        b.errorbar(xx + 0.15 * (i - 0.5), c["coverage"].to_numpy(), yerr=2 * c["coverage_se"].to_numpy(),
                   marker="o", capsize=3, ls="none", color=f"C{0 if i == 0 else len(settings) - 1}",
                   label=s)
    b.set_xticks(xx, labels, fontsize=6, rotation=60)
    b.set_title("off-policy targets (raw ESS 15% / 5%)", fontsize=10)
    for a_ in (a, b):
        a_.axhspan(*COVERAGE_BAND, color="0.9", zorder=0)
        a_.axhline(0.95, color="0.5", lw=0.8, ls=":")
        a_.set_ylim(-0.02, 1.02)
        a_.grid(alpha=0.3)
        a_.legend(fontsize=8, loc="lower left")
    a.set_ylabel("coverage of 95% CI (±2 MC SE)")
    fig.suptitle("Probe labels that correct the level")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the probe-correction study",
                  quick_note="Small tier (n = 300, oracle fraction 25%) for tests.")
