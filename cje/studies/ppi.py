"""Study — cje's direct intervals against prediction-powered inference (PPI++) on shared data
(``ppi``; issue #14, item 3).

Each replicate draws :func:`cje.synthetic.make_direct_eval` data (the five default policies, among
them ``verbose``, whom the judge over-rates by a planted bonus; MCAR oracle labels on every
policy's rows) for every cell of judge × oracle fraction × n prompts, and scores four 95%
intervals per policy against the exact truth:

* ``cje`` — :func:`cje.analyze` with its defaults (the centred residual term with its own
  small-sample factor ``m/(m−1)``; influence variance clustered by prompt + OUA jackknife, t with
  Satterthwaite df, the residual part a component with ``m − 1``);
* ``cje uncentred`` — the same estimate with the influence variance of the residual term as it was
  before it was centred (``(L_i/p_L) e_i − ē``), everything else as cje's own (the residual
  part's factor ``m/(m−1)`` in place of ``G/(G−1)`` and its ``m − 1`` df, the OUA term): cje
  without the centring, so that the two differ by the centring alone;
* ``cje no OUA`` — cje's influence variance alone (t with the df of its parts, the residual part's
  ``m − 1`` among them): what the interval would be without the calibration variance, which PPI++
  does not have;
* ``PPI++`` — ``ppi_py.ppi_mean_ci`` with its tuned power-tuning parameter (``lam=None``, PPI++) on
  the policy's own rows: the labelled rows give the label and the judge score, the unlabelled
  rows the judge score. The judge score is first mapped linearly onto the label scale
  (``lo_L + (S − lo_J)/(hi_J − lo_J)·(hi_L − lo_L)``); PPI++ with a tuned λ is invariant to an
  affine map of the prediction, so the map only puts the numbers on one scale.

cje calibrates on the labels of all five policies (one isotonic map, cross-fitted) and corrects
each policy by its own residuals; PPI++ uses one policy's labels at a time with a linear
prediction. The report gives the width ratio cje / PPI++ per cell (mean of per-replicate,
per-policy ratios, with a Monte Carlo SE clustered by replicate) and both coverages.

The Arena part (no truth, widths only) runs once per study, outside the replicates: the base
policy's 1,000 fresh draws with its labels masked at random to 5%, 10% and 25% of the rows
(``ARENA_MASKS`` masks each, drawn from the study's seed), cje direct on base alone vs PPI++.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.analysis import analyze
from cje.errors import CJEWarning
from cje.estimators.direct import DirectEstimator, direct_estimate
from cje.inference import t_interval
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

__all__ = ["DEFAULT_SEED", "FULL", "JUDGES", "QUICK", "arena_widths", "ppi_interval", "run", "task"]

NAME = "ppi"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
#: Judge label -> :func:`make_direct_eval` options.
JUDGES: dict[str, dict[str, Any]] = {
    "S-curve, noise 0.3": {"judge": "miscalibrated", "judge_noise": 0.3},
    "linear, noise 0.3": {"judge": "calibrated", "judge_noise": 0.3},
    "S-curve, noise 0.1": {"judge": "miscalibrated", "judge_noise": 0.1},
}
#: Full grid and replicates.
FULL: dict[str, Any] = {"reps": 600, "judges": tuple(JUDGES), "fractions": (0.05, 0.10, 0.25),
                        "n_prompts": (500, 2000), "arena_masks": 40}
#: Quick tier (tests): one judge, one cell, a few replicates.
QUICK: dict[str, Any] = {"reps": 6, "judges": ("S-curve, noise 0.3",), "fractions": (0.10,),
                         "n_prompts": (400,), "arena_masks": 2}
METHODS: dict[str, str] = {"cje": "cje (centred)", "cje_uncentred": "cje, uncentred residual",
                           "cje_no_oua": "cje without OUA", "ppi": "PPI++ (ppi_py)"}
ARENA_FRACTIONS: tuple[float, ...] = (0.05, 0.10, 0.25)


@dataclass(frozen=True, slots=True)
class _Recorder(DirectEstimator):
    """The direct estimator, recording the first (full-calibration) call's influence values in
    both forms — centred and uncentred (before the centring) — and its residuals. Being another
    estimator than cje's own, its report applies ``G/(G−1)`` to every part of the variance (no
    own factor for the residual part); :func:`_cje_rows` adds that factor by hand."""

    log: list = field(default_factory=list, compare=False, repr=False)

    def estimate_groups(self, reward: np.ndarray, residual: np.ndarray, labelled: np.ndarray,
                        group: np.ndarray, n_groups: int) -> Any:
        est = direct_estimate(reward, residual, labelled, group, n_groups, augment=self.augment)
        if not self.log:  # core.estimate's first call is the full calibration
            inside = group >= 0
            g = np.where(inside, group, 0)
            lab = labelled & inside
            m = np.bincount(g, weights=lab, minlength=n_groups)
            n = np.bincount(g, weights=inside, minlength=n_groups)
            e_bar = np.divide(np.bincount(g, weights=np.where(lab, residual, 0.0), minlength=n_groups),
                              m, out=np.zeros(n_groups), where=m > 0)
            share = np.where(lab, np.divide(n, m, out=np.zeros(n_groups), where=m > 0)[g], 0.0) - 1.0
            old = est.influence + np.where(inside & (m[g] > 0), e_bar[g] * share, 0.0)
            e_lab = residual[labelled] if residual.size == reward.size else residual
            self.log.append((group.copy(), est.influence.copy(), old, labelled.copy(), e_lab.copy()))
        return est


def ppi_interval(y: np.ndarray, s_lab: np.ndarray, s_unlab: np.ndarray, alpha: float,
                 ) -> tuple[float, float, float]:
    """PPI++ estimate and interval of a mean (``ppi_py``, tuned λ) on one policy's rows.

    Parameters
    ----------
    y : numpy.ndarray
        Labels of the labelled rows.
    s_lab, s_unlab : numpy.ndarray
        The prediction (judge score on the label scale) on the labelled and unlabelled rows.
    alpha : float
        1 − confidence level.

    Returns
    -------
    (float, float, float)
        Estimate, lower and upper bound.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(0, 1, 400); y = s + rng.normal(0, 0.1, 400)
    >>> est, lo, hi = ppi_interval(y[:40], s[:40], s[40:], 0.05)
    >>> bool(lo < est < hi) and bool(abs(est - 0.5) < 0.1)
    True
    """
    from ppi_py import ppi_mean_ci, ppi_mean_pointestimate

    est = float(np.ravel(ppi_mean_pointestimate(y, s_lab, s_unlab))[0])
    lo, hi = ppi_mean_ci(y, s_lab, s_unlab, alpha=alpha)
    return est, float(np.ravel(lo)[0]), float(np.ravel(hi)[0])


def _cje_rows(data: pd.DataFrame, judge_scale: tuple[float, float], label_scale: tuple[float, float],
              alpha: float) -> dict[str, dict[str, Any]]:
    """cje's estimate and its three intervals (cje's own, uncentred, no OUA) per policy.

    Two analyses of the same data: :func:`cje.analyze` with its defaults (the interval users get)
    and with :class:`_Recorder` (the influence values, for the "before" and the hand check that
    cje's variance is the recorder's centred one with the residual part's factor ``m/(m−1)``)."""
    from cje.pipeline.core import level_df

    rec = _Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        rep = analyze(data, judge_scale=judge_scale, label_scale=label_scale, estimator=rec,
                      progress=False)
        own = analyze(data, judge_scale=judge_scale, label_scale=label_scale, progress=False)
    group, new, old, labelled, e_lab = rec.log[0]
    width2 = (label_scale[1] - label_scale[0]) ** 2
    k = rep.calibration.n_folds
    out = {}
    for p, e in enumerate(rep.estimates):  # in the order of the policy codes (checked below)
        d = own[e.policy]
        assert d.estimate == e.estimate  # one calibration, one estimate
        rows = group == p
        n = int(rows.sum())
        # one response per prompt and policy: the prompt clusters are the rows
        v_new = n / (n - 1) * float(np.sum(new[rows] ** 2)) / n**2 * width2
        v_old = n / (n - 1) * float(np.sum(old[rows] ** 2)) / n**2 * width2
        assert abs(v_new - e.var_if) <= 1e-9 * e.var_if, (v_new, e.var_if)  # the recorder is cje's
        # the residual part (n/m)(e_i − ē) of the labelled rows: Σ part² / n² = Σ (e − ē)² / m²
        # under G/(G−1); cje's own gives it m/(m−1) (s_e²/m) and m − 1 df
        r = e_lab[group[labelled] == p]
        m = r.size
        ss = float(np.sum((r - r.mean()) ** 2)) / m**2 * width2 if m else 0.0
        v_res = m / (m - 1) * ss if m >= 2 else 0.0
        v_own = v_new - (n / (n - 1) * ss if m >= 2 else 0.0) + v_res
        assert abs(v_own - d.var_if) <= 1e-9 * d.var_if, (v_own, d.var_if)  # the hand computation
        # uncentred: the same own-factor adjustment (the centring is the only difference)
        v_old = v_old - v_new + v_own
        own_part = (v_res, m) if m >= 2 else None
        df_old = level_df(v_old, e.var_cal, e.n_prompts, k, own=own_part)
        lo_old, hi_old = t_interval(e.estimate, float(np.sqrt(v_old + e.var_cal)), df_old, alpha)
        df0 = level_df(d.var_if, 0.0, d.n_prompts, k, own=own_part)
        lo0, hi0 = t_interval(d.estimate, float(np.sqrt(d.var_if)), df0, alpha)
        out[e.policy] = {
            "estimate": d.estimate, "n_labels": d.n_labels, "calibration_share": d.calibration_share,
            "status": d.status, "df": d.df,
            "cje": (d.ci_low, d.ci_high), "cje_uncentred": (lo_old, hi_old), "cje_no_oua": (lo0, hi0),
        }
    return out


def _ppi_rows(data: pd.DataFrame, judge_scale: tuple[float, float], label_scale: tuple[float, float],
              alpha: float) -> dict[str, tuple[float, float, float]]:
    """PPI++ per policy on its own rows, the judge score mapped linearly onto the label scale."""
    (jl, jh), (ll, lh) = judge_scale, label_scale
    out = {}
    for pol, g in data.groupby("policy", sort=False):
        lab = g["oracle_label"].notna().to_numpy()
        pred = ll + (g["judge_score"].to_numpy(dtype=float) - jl) / (jh - jl) * (lh - ll)
        out[str(pol)] = ppi_interval(g["oracle_label"].to_numpy(dtype=float)[lab], pred[lab], pred[~lab],
                                     alpha)
    return out


def task(rng: np.random.Generator, replicate: int, *, judges: tuple[str, ...],
         fractions: tuple[float, ...], n_prompts: tuple[int, ...], alpha: float = 0.05
         ) -> list[dict[str, Any]]:
    """One replicate: every (judge, oracle fraction, n prompts) cell, each with its own stream.

    Parameters
    ----------
    rng : numpy.random.Generator
        The replicate's stream (one child per cell).
    replicate : int
        Replicate number (unused: the stream identifies the replicate).
    judges : tuple of str
        Keys of :data:`JUDGES`.
    fractions : tuple of float
        Oracle fractions (MCAR labels on every policy's rows).
    n_prompts : tuple of int
        Prompts per data set (one response per prompt and policy).
    alpha : float
        1 − confidence level.

    Returns
    -------
    list of dict
        One row per cell × policy × method (:data:`METHODS`): ``judge, oracle_fraction,
        n_prompts, policy, method, estimate, ci_low, ci_high, width, truth, covered, n_labels,
        calibration_share, status``.

    Examples
    --------
    >>> rows = task(np.random.default_rng(0), 0, judges=("S-curve, noise 0.3",), fractions=(0.25,),
    ...             n_prompts=(200,))
    >>> len(rows), sorted({r["method"] for r in rows})   # 5 policies × 4 methods
    (20, ['cje', 'cje_no_oua', 'cje_uncentred', 'ppi'])
    """
    cells = [(j, f, n) for j in judges for n in n_prompts for f in fractions]
    rows: list[dict[str, Any]] = []
    for (judge, frac, n), child in zip(cells, rng.spawn(len(cells)), strict=True):
        sim = make_direct_eval(n, oracle_fraction=frac, rng=child, **JUDGES[judge])
        cj = _cje_rows(sim.data, sim.judge_scale, sim.label_scale, alpha)
        pp = _ppi_rows(sim.data, sim.judge_scale, sim.label_scale, alpha)
        for pol, c in cj.items():
            truth = sim.truth[pol]
            ests = {"cje": c["estimate"], "cje_uncentred": c["estimate"], "cje_no_oua": c["estimate"],
                    "ppi": pp[pol][0]}
            cis = {m: c[m] for m in ("cje", "cje_uncentred", "cje_no_oua")} | {"ppi": pp[pol][1:]}
            for m in METHODS:
                lo, hi = cis[m]
                rows.append({
                    "judge": judge, "oracle_fraction": frac, "n_prompts": n, "policy": pol,
                    "method": m, "estimate": ests[m], "ci_low": lo, "ci_high": hi, "width": hi - lo,
                    "truth": truth, "covered": bool(lo <= truth <= hi), "n_labels": c["n_labels"],
                    "calibration_share": c["calibration_share"], "status": c["status"],
                })
    return rows


def arena_widths(n_masks: int, seed: int, alpha: float = 0.05) -> pd.DataFrame:
    """Interval widths of cje direct and PPI++ on the Arena sample's base policy, labels masked.

    The base policy's 1,000 fresh draws carry 480 labels; each mask keeps the labels of a random
    ``f · 1000`` of those rows (f in :data:`ARENA_FRACTIONS`) and hides the rest. cje analyses
    base alone (its calibration then uses base's kept labels only); PPI++ uses the kept labels
    with the judge score (already on the label scale, 0–1) as the prediction.

    Parameters
    ----------
    n_masks : int
        Masks per fraction.
    seed : int
        Seed of the masks.
    alpha : float
        1 − confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per fraction × mask: ``oracle_fraction, mask, n_labels, cje_estimate, cje_width,
        cje_uncentred_width, cje_no_oua_width, calibration_share, ppi_estimate, ppi_width``.

    Examples
    --------
    >>> df = arena_widths(1, seed=0)
    >>> df["n_labels"].tolist()
    [50, 100, 250]
    """
    from cje.datasets import arena

    base = arena().fresh_draws
    base = base[base["policy"] == "base"].reset_index(drop=True)
    labelled = np.flatnonzero(base["oracle_label"].notna().to_numpy())
    rng = np.random.default_rng(seed)
    out = []
    for frac in ARENA_FRACTIONS:
        m = int(round(frac * len(base)))
        for k in range(n_masks):
            keep = rng.choice(labelled, m, replace=False)
            data = base.assign(oracle_label=base["oracle_label"].where(base.index.isin(keep)))
            c = _cje_rows(data, (0.0, 1.0), (0.0, 1.0), alpha)["base"]
            p = _ppi_rows(data, (0.0, 1.0), (0.0, 1.0), alpha)["base"]
            out.append({"oracle_fraction": frac, "mask": k, "n_labels": m, "cje_estimate": c["estimate"],
                        "cje_width": c["cje"][1] - c["cje"][0],
                        "cje_uncentred_width": c["cje_uncentred"][1] - c["cje_uncentred"][0],
                        "cje_no_oua_width": c["cje_no_oua"][1] - c["cje_no_oua"][0],
                        "calibration_share": c["calibration_share"], "ppi_estimate": p[0],
                        "ppi_width": p[2] - p[1]})
    return pd.DataFrame(out)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------
def _ratios(df: pd.DataFrame, by: list[str], num: str, den: str = "ppi") -> pd.DataFrame:
    """Mean per-(replicate, policy) width ratio ``num / den`` per group, SE clustered by replicate."""
    keys = ["judge", "n_prompts", "oracle_fraction", "replicate", "policy"]  # one row per key
    w = df.pivot_table(index=keys, columns="method", values="width")
    r = (w[num] / w[den]).rename("ratio").reset_index()
    return replicate_se(r, by, "ratio").set_index(by)


def equal_coverage_ratio(df: pd.DataFrame, num: str = "cje", den: str = "ppi", level: float = 0.95,
                         n_boot: int = 200, seed: int = 0) -> tuple[float, float]:
    """Width ratio ``num / den`` after scaling each method's intervals to cover exactly ``level``.

    Each method's half-widths are multiplied by ``k`` = the ``level`` quantile of
    ``|estimate − truth| / half-width`` over the rows (the factor that makes exactly that share of
    its intervals cover); the ratio of the scaled mean widths compares the methods at equal
    coverage. The SE is a bootstrap over replicates (``n_boot`` resamples).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of one cell (``task`` output), both methods.
    num, den : str
        Methods.
    level : float
        Target coverage.
    n_boot, seed : int
        Bootstrap resamples and seed.

    Returns
    -------
    (float, float)
        Ratio and its bootstrap SE.

    Examples
    --------
    >>> rows = pd.DataFrame({"replicate": [0, 0, 1, 1], "method": ["a", "b"] * 2,
    ...                      "estimate": [0.1, 0.1, -0.2, -0.2], "truth": 0.0,
    ...                      "width": [0.4, 0.8, 0.4, 0.8]})
    >>> ratio, _ = equal_coverage_ratio(rows, "a", "b", n_boot=2)
    >>> round(ratio, 6)   # the same errors: scaled to equal coverage, the widths are equal
    1.0
    """
    w = {m: df[df.method == m].sort_values(["replicate", *(["policy"] if "policy" in df else [])])
         for m in (num, den)}
    reps = w[num]["replicate"].to_numpy()
    z = {m: np.abs(g["estimate"].to_numpy() - g["truth"].to_numpy()) / (g["width"].to_numpy() / 2)
         for m, g in w.items()}
    width = {m: g["width"].to_numpy() for m, g in w.items()}

    def ratio(idx: np.ndarray) -> float:
        k = {m: np.quantile(z[m][idx], level) for m in (num, den)}
        return float(k[num] * width[num][idx].mean() / (k[den] * width[den][idx].mean()))

    uniq = np.unique(reps)
    rows_of = {r: np.flatnonzero(reps == r) for r in uniq}
    rng = np.random.default_rng(seed)
    boot = [ratio(np.concatenate([rows_of[r] for r in rng.choice(uniq, uniq.size)]))
            for _ in range(n_boot)]
    return ratio(np.arange(reps.size)), float(np.std(boot, ddof=1))


def _mean_se(x: pd.Series) -> str:
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.3f} ± {x.std(ddof=1) / np.sqrt(x.size):.3f}"


def _report(r: StudyRun, grid: dict[str, Any]) -> Path:
    """Run the replicates of ``r`` on ``grid`` and write the results (see :data:`run`)."""
    t = partial(task, judges=tuple(grid["judges"]), fractions=tuple(grid["fractions"]),
                n_prompts=tuple(grid["n_prompts"]))
    df, secs, r = replicate(r, t, {"version": 1})
    by = ["judge", "n_prompts", "oracle_fraction"]
    cov = replicate_se(df.assign(covered=df["covered"].astype(float)), ["method", *by],
                       "covered").set_index(["method", *by])
    rat = {m: _ratios(df, by, m) for m in ("cje", "cje_uncentred", "cje_no_oua")}
    cent = _ratios(df, by, "cje", "cje_uncentred")
    s = summarise(df, by=["method", *by]).set_index(["method", *by])
    share = df[df.method == "cje"].groupby(by)["calibration_share"].mean()
    eq = {c: equal_coverage_ratio(g, "cje", "ppi") for c, g in df.groupby(by)}
    body = ["## Results", "",
            "Width ratio = mean over replicates and policies of (cje interval width) / (PPI++ "
            "interval width) on the same data, ± its Monte Carlo SE (clustered by replicate). "
            "Coverage ± MC SE (clustered by replicate: the five policies of a replicate share "
            f"prompts and a calibrator); **bold ✗** = outside [{COVERAGE_BAND[0]}, {COVERAGE_BAND[1]}].",
            ""]
    rows = []
    cells = [(j, n, f) for j in grid["judges"] for n in grid["n_prompts"] for f in grid["fractions"]]
    for c in cells:
        rows.append([
            c[0], f"{c[1]}", pct(c[2]),
            f"{rat['cje'].loc[c, 'mean']:.3f} ± {rat['cje'].loc[c, 'se']:.3f}",
            f"{rat['cje_uncentred'].loc[c, 'mean']:.3f} ± {rat['cje_uncentred'].loc[c, 'se']:.3f}",
            f"{rat['cje_no_oua'].loc[c, 'mean']:.3f} ± {rat['cje_no_oua'].loc[c, 'se']:.3f}",
            f"{share.loc[c]:.3f}",
            cov_cell(cov.loc[("cje", *c), "mean"], cov.loc[("cje", *c), "se"]),
            cov_cell(cov.loc[("cje_uncentred", *c), "mean"], cov.loc[("cje_uncentred", *c), "se"]),
            cov_cell(cov.loc[("cje_no_oua", *c), "mean"], cov.loc[("cje_no_oua", *c), "se"]),
            cov_cell(cov.loc[("ppi", *c), "mean"], cov.loc[("ppi", *c), "se"]),
            f"{eq[c][0]:.3f} ± {eq[c][1]:.3f}",
            f"{s.loc[('cje', *c), 'rmse']:.4f}", f"{s.loc[('ppi', *c), 'rmse']:.4f}",
        ])
    body += md_table(["judge", "n prompts", "labels", "width cje / PPI++", "uncentred / PPI++",
                      "no OUA / PPI++", "cal. share", "coverage cje", "coverage uncentred",
                      "coverage no OUA", "coverage PPI++", "cje / PPI++ at equal coverage", "RMSE cje",
                      "RMSE PPI++"], rows)
    body += ["", "'At equal coverage': each method's intervals scaled by the factor that makes exactly "
             "95% of them cover in that cell (the 0.95 quantile of |estimate − truth| / half-width), "
             "then the mean widths compared; ± a bootstrap SE over replicates."]
    # per policy: where cje is wider or narrower
    per_pol = _ratios(df, ["policy"], "cje")
    per_pol_u = _ratios(df, ["policy"], "cje_uncentred")
    pcov = replicate_se(df.assign(covered=df["covered"].astype(float)), ["method", "policy"],
                        "covered").set_index(["method", "policy"])
    pols = list(dict.fromkeys(df["policy"]))
    body += ["", "Per policy, pooled over all cells:", ""]
    body += md_table(["policy", "width cje / PPI++", "uncentred / PPI++", "coverage cje", "coverage PPI++"],
                     [[p, f"{per_pol.loc[p, 'mean']:.3f} ± {per_pol.loc[p, 'se']:.3f}",
                       f"{per_pol_u.loc[p, 'mean']:.3f} ± {per_pol_u.loc[p, 'se']:.3f}",
                       cov_cell(pcov.loc[("cje", p), "mean"], pcov.loc[("cje", p), "se"]),
                       cov_cell(pcov.loc[("ppi", p), "mean"], pcov.loc[("ppi", p), "se"])] for p in pols])
    # Arena
    ar = arena_widths(int(grid["arena_masks"]), r.seed)
    body += ["", "## Arena sample, base policy (no truth: widths only)", "",
             f"{int(grid['arena_masks'])} random label masks per fraction on base's 480 labelled "
             "rows (of 1,000); cje direct on base alone vs PPI++ (judge score 0–1 as the "
             "prediction). Mean ± SE over masks.", ""]
    arows = []
    for f, g in ar.groupby("oracle_fraction"):
        arows.append([pct(f), f"{int(g['n_labels'].iloc[0])}", _mean_se(g["cje_width"] / g["ppi_width"]),
                      _mean_se(g["cje_uncentred_width"] / g["ppi_width"]),
                      _mean_se(g["cje_no_oua_width"] / g["ppi_width"]),
                      f"{g['calibration_share'].mean():.3f}",
                      f"{g['cje_width'].mean():.4f}", f"{g['ppi_width'].mean():.4f}",
                      f"{(g['cje_estimate'] - g['ppi_estimate']).abs().mean():.4f}"])
    body += md_table(["labels", "n labels", "width cje / PPI++", "uncentred / PPI++", "no OUA / PPI++",
                      "cal. share", "mean width cje", "mean width PPI++", "mean |cje − PPI++|"], arows)
    body += ["", "## Reading", ""] + _reading(df, cells, rat, cent, cov, share, ar, eq)
    fig = _figure(df, cells, rat, cov)
    design = (
        "Design: `cje.synthetic.make_direct_eval` with three judges (the default S-curve judge with "
        "noise 0.3, a linear judge with noise 0.3, the S-curve judge with noise 0.1), the five "
        "default policies (`verbose` carries a planted judge bonus: the judge over-rates it), one "
        "response per prompt and policy, MCAR oracle labels on every policy's rows; `cje.analyze` "
        "with its defaults (mode 'auto', K = 5) against `ppi_py.ppi_mean_ci` (PPI++, tuned λ, "
        "`alpha=0.05`) per policy on the same rows, the judge score mapped linearly to the label "
        "scale 1–5. cje's intervals are those of `cje.analyze` (the residual part with its own "
        "factor m/(m−1) and m − 1 degrees of freedom). 'uncentred' is cje's interval with the "
        "residual term's influence before it was centred (same estimate, same own factor, same "
        "OUA term). "
        f"{r.reps} replicates × 5 policies per cell. The DGP was not tuned to these results."
    )
    return write_results(r, title="Study — cje direct intervals vs PPI++ (ppi_py) on shared data",
                         seconds=secs, design=design, body=body, fig=fig)


def _reading(df: pd.DataFrame, cells: list[tuple[Any, ...]], rat: dict[str, pd.DataFrame],
             cent: pd.DataFrame, cov: pd.DataFrame, share: pd.Series, ar: pd.DataFrame,
             eq: dict[Any, tuple[float, float]]) -> list[str]:
    """The Reading section, computed from the tables."""
    lines = []
    r_c = rat["cje"]
    wider = [c for c in cells if r_c.loc[c, "mean"] - 2 * r_c.loc[c, "se"] > 1.0]
    narrower = [c for c in cells if r_c.loc[c, "mean"] + 2 * r_c.loc[c, "se"] < 1.0]
    lines.append(
        f"- **Width**: cje / PPI++ ranges {r_c['mean'].min():.3f}–{r_c['mean'].max():.3f} across "
        f"cells; wider than PPI++ by more than 2 MC SE in {len(wider)} of {len(cells)} cells, "
        f"narrower in {len(narrower)}.")
    r0 = rat["cje_no_oua"]
    lines.append(
        f"- **Where the width comes from**: without the OUA (calibration) variance, cje / PPI++ is "
        f"{r0['mean'].min():.3f}–{r0['mean'].max():.3f}; the calibration share of cje's variance is "
        f"{share.min():.3f}–{share.max():.3f}. PPI++ treats its prediction as fixed (the judge "
        "score needs no fitting); cje fits a calibration on the labels and pays for it in the "
        "interval (OUA).")
    lines.append(
        f"- **Centring**: the centred interval is {cent['mean'].min():.3f}–{cent['mean'].max():.3f}× "
        "the uncentred one (same estimate), the largest gains where the judge mis-rates a policy "
        "most (see the per-policy table: `verbose`).")
    c_cov = cov.xs("cje")
    out = [f"{c[0]}, n = {c[1]}, {pct(c[2])}: {c_cov.loc[c, 'mean']:.3f} ± {c_cov.loc[c, 'se']:.3f}"
           for c in cells if not 0.935 <= c_cov.loc[c, "mean"] <= 0.965]
    p_cov = cov.xs("ppi")
    out_p = [f"{c[0]}, n = {c[1]}, {pct(c[2])}: {p_cov.loc[c, 'mean']:.3f}"
             for c in cells if not 0.935 <= p_cov.loc[c, "mean"] <= 0.965]
    lines.append(
        "- **Coverage** (acceptance band [0.935, 0.965]): cje "
        + ("inside in every cell" if not out else "outside in: " + "; ".join(out))
        + "; PPI++ " + ("inside in every cell" if not out_p else "outside in: " + "; ".join(out_p))
        + ".")
    e = np.array([eq[c][0] for c in cells])
    lines.append(
        f"- **At equal coverage** (both scaled to cover exactly 95%): cje / PPI++ is {e.min():.3f}–"
        f"{e.max():.3f}; PPI++'s intervals are narrower partly because they under-cover where labels "
        "are few.")
    c0 = cov.xs("cje_no_oua")
    lines.append(
        f"- **OUA is needed**: without it cje covers {c0['mean'].min():.3f}–{c0['mean'].max():.3f} "
        "across cells.")
    a = ar.assign(ratio=ar["cje_width"] / ar["ppi_width"]).groupby("oracle_fraction")["ratio"].mean()
    lines.append("- **Arena** (base, masked labels): cje / PPI++ width " + ", ".join(
        f"{v:.3f} at {pct(f)}" for f, v in a.items()) + ".")
    return lines


def _figure(df: pd.DataFrame, cells: list[tuple[Any, ...]], rat: dict[str, pd.DataFrame],
            cov: pd.DataFrame) -> Any:
    fig, ax = figure(1, 2, (11.0, 4.2))
    x = np.arange(len(cells))
    labels = [f"{c[0].split(',')[0]} {c[1]} {pct(c[2])}" for c in cells]
    for m, col in (("cje", "C0"), ("cje_uncentred", "C1"), ("cje_no_oua", "C2")):
        rr = rat[m]
        ax[0, 0].errorbar(x, [rr.loc[c, "mean"] for c in cells], yerr=[2 * rr.loc[c, "se"] for c in cells],
                          marker="o", ls="none", color=col, label=METHODS[m], capsize=2)
    ax[0, 0].axhline(1.0, color="0.4", lw=0.8)
    ax[0, 0].set_ylabel("width / PPI++ width (±2 MC SE)")
    ax[0, 0].legend(fontsize=7)
    for m, col in (("cje", "C0"), ("cje_uncentred", "C1"), ("ppi", "C3")):
        c_ = cov.xs(m)
        ax[0, 1].errorbar(x, [c_.loc[c, "mean"] for c in cells], yerr=[2 * c_.loc[c, "se"] for c in cells],
                          marker="o", ls="none", color=col, label=METHODS[m], capsize=2)
    ax[0, 1].axhspan(0.935, 0.965, color="0.9", zorder=0)
    ax[0, 1].axhline(0.95, color="0.5", lw=0.8, ls=":")
    ax[0, 1].set_ylabel("coverage of 95% CI (±2 MC SE)")
    ax[0, 1].legend(fontsize=7)
    for a in ax[0]:
        a.set_xticks(x, labels, rotation=70, fontsize=6)
        a.grid(alpha=0.3)
    fig.suptitle("cje direct vs PPI++ on the same data")
    return fig


#: ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky", scheduler=None,
#: progress=None, command=None, resume=False, force=False) -> Path``
#: — see :func:`cje.studies._common.study_entry`.
run = study_entry(NAME, FULL, QUICK, _report, title="the PPI++ comparison study",
                  quick_note="One judge, one cell (n = 400, 10% labels), 2 Arena masks, for tests.")
