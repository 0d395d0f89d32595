"""Reproduction: OK intervals that under-cover when a policy's few own labels miss part of its
score range, and candidate gates on the own residuals (``simulations/independent_small.py``).

The process and settings are those of ``independent_small.py``. Each replicate is analysed by
``cje.analyze`` as it is; in addition the policy's own out-of-fold residuals ``e_i = Y_i −
f_oof(S_i)`` (the labelled rows whose mean corrects its level) are read from the pipeline (a
wrapper around ``DirectShape._own_parts`` that copies them; no number changes) and summarised:
how many labels, how many distinct residual values, how many differ from the most common one,
and their sample skewness ``G1``. Candidate gates, applied after the fact (an OK estimate
becomes CAUTION when the rule fires; other statuses are kept):

* ``cochran``: ``m < 25·G1²`` (Cochran's rule for the normal approximation to a sample mean of
  a skewed population), or residuals that do not vary;
* ``nonmodal5``: fewer than 5 own residuals differ from the most common residual value (the
  ``n(1 − p) ≥ 5`` rule for a proportion, applied to the residuals);
* ``labels5``: fewer than 5 of the policy's own labels differ from the bound of the label scale
  nearest to their mean (the ``n(1 − p) ≥ 5`` rule on the labels themselves);
* ``design``: the residual mean's variance taken as the larger of the own residuals' and a
  design-based one from every row of the policy (see :func:`_design_variance`), the interval
  rebuilt and re-gated;
* ``ownrange5``, ``ownrange10``: 5% (10%) or more of the policy's responses have judge scores
  outside the range of its *own* labelled responses' scores (the labelled-range gate, which
  reads every policy's labels, applied to the policy's own: outside that range its residual
  correction has seen no response, and the level rests on the calibration transporting);
* ``min20``, ``min30``: ``MIN_OWN_LABELS`` 20 or 30 instead of 10.

Writes ``simulations/results/independent_small_gate.md`` (with ``--csv PATH`` every row too).

Usage::

    python simulations/independent_small_gate.py [--reps 1000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje
from cje.pipeline import direct as _direct

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_small as small  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "independent_small_gate.md"
_ORIG_OWN = _direct.DirectShape._own_parts
_LAST: dict[str, np.ndarray] = {}


def _own_parts_copy(self, calibrator):  # the same computation, plus a copy of the residuals
    t = self.table
    e = np.asarray(t.y[t.train] - calibrator.calibration(frozenset()).oof)[self._train_inside]
    _LAST["e"], _LAST["g"], _LAST["names"] = e.copy(), self._group_train.copy(), list(self.names)
    # every training row's residual and judge score (unit scale), for the design-based variance
    _LAST["e_all"] = np.asarray(t.y[t.train] - calibrator.calibration(frozenset()).oof, dtype=float)
    _LAST["s_all"] = np.asarray(t.s[t.train], dtype=float)
    return _ORIG_OWN(self, calibrator)


def residual_summary(e: np.ndarray) -> dict:
    """Counts and sample skewness of one policy's own residuals.

    Parameters
    ----------
    e : numpy.ndarray
        The residuals (label-scale units of [0, 1]).

    Returns
    -------
    dict
        ``m_own``, ``distinct``, ``nonmodal`` (residuals that differ from the most common value) and
        ``G1`` (adjusted Fisher–Pearson skewness; NaN below 3 residuals or without variation).
    """
    m = e.size
    if m == 0:
        return {"m_own": 0, "distinct": 0, "nonmodal": 0, "G1": float("nan")}
    r = np.round(e, 9)
    vals, counts = np.unique(r, return_counts=True)
    d = e - e.mean()
    m2 = float(np.mean(d * d))
    g1 = float("nan")
    if m >= 3 and m2 > 1e-18:
        g1 = float(np.mean(d**3)) / m2**1.5 * math.sqrt(m * (m - 1)) / (m - 2)
    return {"m_own": m, "distinct": int(vals.size), "nonmodal": int(m - counts.max()), "G1": g1}


def _design_variance(e, data: pd.DataFrame, lo: float, hi: float, jscale: tuple[float, float],
                     res: np.ndarray, truth: float) -> dict:
    """The ``design`` candidate: the residual mean's variance from the policy's *every* row.

    ``V_design = mean_{policy rows} h(S_i) / m`` with ``h(s)`` the mean squared out-of-fold
    residual of all labelled rows (every policy) at judge score ``s`` (the nearest labelled score
    where none), against the own residuals' ``V_sample = var(e)/m``; the interval is rebuilt with
    ``SE² + max(0, V_design − V_sample)`` (same df), cut to the scale, and its status re-gated
    (OK → CAUTION if it crosses a bound, REFUSED if wider than the scale).
    """
    out = {"design_covered": np.nan, "design_status": e.status}
    if res.size < 2 or "e_all" not in _LAST or not np.isfinite(e.se):
        return out
    from cje._tdist import _ppf  # the package's own t quantile

    width = hi - lo
    s_all, e_all = _LAST["s_all"], _LAST["e_all"]
    sv = np.unique(s_all)
    h = np.array([np.mean(e_all[s_all == v] ** 2) for v in sv])
    mine = data.loc[data["policy"] == e.policy, "judge_score"].to_numpy()
    u = (mine - jscale[0]) / (jscale[1] - jscale[0])
    idx = np.abs(u[:, None] - sv[None, :]).argmin(axis=1)
    v_design = float(h[idx].mean()) / res.size
    v_sample = float(np.var(res, ddof=1)) / res.size
    se2 = (e.se / width) ** 2 + max(0.0, v_design - v_sample)
    q = _ppf(0.975, float(e.df))
    est = (e.estimate - lo) / width
    a, b = est - q * np.sqrt(se2), est + q * np.sqrt(se2)
    status = e.status
    if status == "OK" and (a < 0 or b > 1):
        status = "REFUSED" if b - a > 1 else "CAUTION"
    a, b = max(a, 0.0), min(b, 1.0)
    cov = bool(lo + a * width <= truth <= lo + b * width)
    return {"design_covered": cov, "design_status": status,
            "design_inflation": float(np.sqrt(se2) / (e.se / width)) if e.se > 0 else np.nan}


def replicate(seed: int, cell: dict) -> list[dict]:
    """One replicate of :func:`independent_small.replicate` with the residual summaries.

    Parameters
    ----------
    seed : int
    cell : dict

    Returns
    -------
    list of dict
    """
    data = small.make_data(seed, cell["n"], cell["m"], cell["labels"], cell["judge"],
                           cell["design"])
    lo, hi = small.LABEL_SCALE[cell["labels"]]
    _LAST.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rep = cje.analyze(data, judge_scale=small.JUDGE_SCALE[cell["judge"]],
                              label_scale=(lo, hi))
        except Exception:  # constant labels (see independent_small.md): nothing to score
            return []
    out = []
    for e in rep.estimates:
        t = small.truth(e.policy, cell["labels"])
        row = {"seed": seed, "policy": e.policy, "estimate": e.estimate, "truth": t,
               "covered": bool(e.ci_low <= t <= e.ci_high), "status": e.status,
               "n_labels": e.n_labels}
        res = np.empty(0)
        if "e" in _LAST:
            res = _LAST["e"][_LAST["g"] == _LAST["names"].index(e.policy)]
        row.update(residual_summary(res))
        row.update(_design_variance(e, data, lo, hi, small.JUDGE_SCALE[cell["judge"]], res, t))
        mine = data[data["policy"] == e.policy]
        own_s = mine.loc[mine["oracle_label"].notna(), "judge_score"]
        own_y = mine.loc[mine["oracle_label"].notna(), "oracle_label"].to_numpy()
        if own_y.size:  # own labels away from the bound nearest to their mean
            bound = lo if own_y.mean() - lo < hi - own_y.mean() else hi
            row["labels_off_bound"] = int(np.count_nonzero(own_y != bound))
        else:
            row["labels_off_bound"] = 0
        row["own_out_share"] = (float(((mine["judge_score"] < own_s.min())
                                       | (mine["judge_score"] > own_s.max())).mean())
                                if len(own_s) else 1.0)
        out.append(row)
    return out


def gated(df: pd.DataFrame, rule: str) -> pd.Series:
    """Status after a candidate gate (only OK can become CAUTION).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`replicate`.
    rule : str
        One of :data:`RULES`.

    Returns
    -------
    pandas.Series
    """
    has = df["m_own"] > 0
    if rule == "design":
        return df["design_status"]
    if rule == "as is":
        fire = pd.Series(False, index=df.index)
    elif rule == "cochran":
        g1 = df["G1"]
        fire = has & (g1.isna() | (df["m_own"] < 25 * g1 * g1))
    elif rule == "nonmodal5":
        fire = has & (df["nonmodal"] < 5)
    elif rule in ("min20", "min30"):
        fire = has & (df["m_own"] < int(rule[3:]))
    elif rule == "labels5":
        fire = has & (df["labels_off_bound"] < 5)
    elif rule in ("ownrange5", "ownrange10"):
        fire = has & (df["own_out_share"] >= int(rule[8:]) / 100)
    else:
        raise ValueError(rule)
    return df["status"].where(~(fire & (df["status"] == "OK")), "CAUTION")


RULES = ("as is", "cochran", "nonmodal5", "labels5", "ownrange5", "ownrange10", "min20", "min30",
         "design")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--csv", type=Path, default=None, help="also write every estimate's row here")
    ns = ap.parse_args()
    _direct.DirectShape._own_parts = _own_parts_copy
    t0 = time.perf_counter()
    grid = [c for c in small.cells() if c["m"] >= 15]  # below 15 labels nothing is OK
    frames = []
    for i, c in enumerate(grid):
        rows = [r for s in range(ns.reps) for r in replicate(500_000 + 1000 * i + s, c)]
        frames.append(pd.DataFrame(rows).assign(cell=small._name(c), **c))
        print(f"{i + 1}/{len(grid)} {small._name(c)} {time.perf_counter() - t0:.0f}s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    if ns.csv is not None:
        df.to_csv(ns.csv, index=False)
    lines = ["# Candidate gates on the own residuals — OK share and coverage of the OK ones", "",
             f"Command: `python simulations/independent_small_gate.py --reps {ns.reps}`. Process "
             "and settings: `simulations/independent_small.py` (cells with 15 or 30 labels; seeds "
             "500,000 + 1000·cell + r, not those of the main run). Rules: module docstring.", ""]
    labelled = df[df["n_labels"] > 0]
    lines += ["## Pooled over every (setting, policy) with labels of its own", "",
              "| rule | OK share | coverage of the OK ones ± MC SE (count) | pairs with OK coverage "
              "< 0.93 by > 2 MC SE | lowest OK coverage (count) |", "|---|---:|---:|---:|---:|"]
    per_rule = {}
    for rule in RULES:
        st = gated(labelled, rule)
        ok = labelled[st == "OK"]
        col = "design_covered" if rule == "design" else "covered"
        c, r = ok[col].astype(float).mean(), len(ok)
        by = ok.groupby(["cell", "policy"])[col].agg(lambda x: x.astype(float).mean()).to_frame(
            "mean").join(ok.groupby(["cell", "policy"]).size().rename("size"))
        se = np.sqrt(by["mean"] * (1 - by["mean"]) / by["size"])
        bad = by[(by["mean"] < 0.93) & (0.93 - by["mean"] > 2 * se)]
        low = by.sort_values("mean").iloc[0] if len(by) else None
        per_rule[rule] = (st, bad)
        lines.append(f"| {rule} | {(st == 'OK').mean():.3f} | {small._cov(c, r)} ({r}) | {len(bad)} | "
                     + (f"{low['mean']:.3f} ({int(low['size'])}, {by['mean'].idxmin()[0]} "
                        f"{by['mean'].idxmin()[1]})" if low is not None else "—") + " |")
    lines += ["", "## Per (setting, policy): OK share / coverage of the OK ones (count)", "",
              "| setting | policy | " + " | ".join(RULES) + " |",
              "|---|---|" + "---:|" * len(RULES)]
    for (cell, pol), g in labelled.groupby(["cell", "policy"], sort=False):
        parts = []
        for rule in RULES:
            st = per_rule[rule][0].loc[g.index]
            ok = g[st == "OK"]["design_covered" if rule == "design" else "covered"].astype(float)
            parts.append(f"{(st == 'OK').mean():.2f} / {ok.mean():.3f} ({len(ok)})" if len(ok)
                         else f"{(st == 'OK').mean():.2f} / — (0)")
        lines.append(f"| {cell} | {pol} | " + " | ".join(parts) + " |")
    lines += ["", f"Runtime: {time.perf_counter() - t0:.0f} s.", ""]
    ns.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
