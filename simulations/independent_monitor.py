"""Independent check of ``cje.monitor``: false DRIFT, wrong OK windows and detection, from outside.

Everything is drawn with numpy alone (no ``cje.synthetic``) and scored against the exact
population value of each window × policy.

**Process.** Window ``w`` is one day. It holds ``P_w`` prompts; each policy answers each prompt
``r`` times (``r = 1`` unless a cell says otherwise). Response ``j`` of policy ``p`` to prompt
``i`` in window ``w`` has latent quality ``z = m_p(w) + a_i + e_ij``, ``a_i ~ N(0, 0.7²)`` (shared
by the policies and responses of the prompt), ``e_ij ~ N(0, 0.7²)``, and ``u = sigmoid(z)``.

* Oracle label on the 1–5 integer scale: ``Y = 1 + Binomial(4, u^1.3)``. The label given ``u`` never
  changes; the truth of a window × policy is ``1 + 4 E[sigmoid(N(m_p(w), 0.98))^1.3]`` (Gauss–Hermite,
  exact to 1e-10).
* The judge, before any drift, reports ``S = round(10 u, 1)`` on 0–10 (judge-first: the label given
  the score is fixed, so changes of traffic leave the judge→label map alone up to the 0.1 grid).
* A judge drift replaces ``S`` by ``D(S)`` for rows time-stamped after the change (rows' times are
  uniform within their day) — the labels do not move, so every estimate that trusts the old map is
  biased.

Labels: a fixed count per window, MCAR among the window's rows. ``cje.monitor(data, window="1D",
reference=R)`` with its defaults otherwise (``min_labels=50``, ``alpha = alpha_drift = 0.05``).

Cells (see ``CELLS``): no drift with 30–60 windows and 20 / 60 / 200 labels per window (or 0 after a
labelled reference), 1–3 policies; labels trickling in (a handful in most windows); drifts confined
to the top of the score range, to one policy, slow and gradual, starting mid-window; quality moving
with the judge unchanged; very unequal window sizes; labels concentrated in a few windows; several
responses per prompt.

Scored per cell: coverage of the 95% intervals (all, OK only, by calibration source), share of each
status, any false DRIFT over the run (cells without a judge change, or before the change), the delay
from the change to the first confirmed DRIFT. MC SE of a share ``c`` over ``r`` units:
``sqrt(c(1 − c)/r)`` (coverage over window × policy rows is also given with a replicate-clustered
SE, since the rows of one run share a reference calibration). Writes
``simulations/results/independent_monitor.md`` (tables below the hand-written reading, kept) and
``simulations/results/independent_monitor.csv``.

Usage::

    python simulations/independent_monitor.py [--reps 300] [--cells a,b] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje
from cje.errors import CJEWarning

SD_A, SD_E = 0.7, 0.7
SD_Z = float(np.sqrt(SD_A**2 + SD_E**2))
POWER = 1.3
ORIGIN = pd.Timestamp("2026-01-01", tz="UTC")
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(120)


def truth(m: float) -> float:
    """Exact mean label ``1 + 4 E[sigmoid(N(m, SD_Z²))^POWER]``.

    Parameters
    ----------
    m : float
        Mean latent quality of the window × policy.

    Returns
    -------
    float
        The population mean of the 1–5 label.
    """
    u = 1.0 / (1.0 + np.exp(-(m + SD_Z * _GH_X)))
    return float(1.0 + 4.0 * np.sum(_GH_W * u**POWER) / np.sqrt(2 * np.pi))


@dataclass
class Cell:
    """One design: windows, sizes, labels, policies, quality path and judge drift."""

    n_windows: int = 30
    reference: int = 7
    prompts: Any = 250  # per window: int or array
    labels: Any = 60  # per window: int or array
    policies: tuple[str, ...] = ("A", "B")
    quality: dict[str, float] = field(default_factory=lambda: {"A": 0.0, "B": 0.4, "C": -0.3})
    quality_step: float = 0.0  # added to every policy's m from window quality_at on
    quality_at: int = 10**9
    quality_trend: float = 0.0  # added per window after the reference (linear)
    responses: int = 1
    drift: str = "none"  # none | shift | top | policy | gradual
    drift_at: float = 10**9  # in days (fractional: mid-window)
    drift_size: float = 0.8
    drift_policy: str = "B"
    ref_labels: int | None = None  # labels per reference window when different


CELLS: dict[str, Cell] = {
    # ---- no judge change: false DRIFT over the run, coverage
    "null/30w/60lab/2pol": Cell(),
    "null/60w/20lab/1pol": Cell(n_windows=60, labels=20, policies=("A",)),
    "null/40w/200lab/3pol": Cell(n_windows=40, labels=200, policies=("A", "B", "C"), prompts=300),
    "null/40w/0lab(ref 120)": Cell(n_windows=40, labels=0, ref_labels=120),
    "null/40w/trickle(2-6lab)": Cell(n_windows=40, labels="trickle", ref_labels=60),
    "null/40w/unequal sizes": Cell(n_windows=40, prompts="unequal", labels="prop"),
    "null/40w/labels in bursts": Cell(n_windows=40, labels="burst", ref_labels=60),
    "null/30w/4 responses per prompt": Cell(prompts=60, responses=4),
    # ---- quality moves, judge unchanged: DRIFT would be false; SHIFT allowed
    "quality step +0.8 at w15": Cell(quality_step=0.8, quality_at=15),
    "quality trend +0.05/window": Cell(n_windows=40, quality_trend=0.05),
    # ---- judge drifts
    "drift top scores (w15)": Cell(drift="top", drift_at=15.0),
    "drift one policy (w15)": Cell(drift="policy", drift_at=15.0),
    "drift gradual (from w10)": Cell(drift="gradual", drift_at=10.0, drift_size=0.08),
    "drift mid-window (w15.5)": Cell(drift="shift", drift_at=15.5, drift_size=0.6),
    "drift shift, 20 lab/window (w15)": Cell(drift="shift", drift_at=15.0, labels=20, drift_size=0.6),
}


#: replicates per cell: ~14 min of one core when it is not shared (the machine was, 4-5x slower)
REPS: dict[str, int] = {
    "null/30w/60lab/2pol": 100, "null/60w/20lab/1pol": 60, "null/40w/200lab/3pol": 30,
    "null/40w/0lab(ref 120)": 60, "null/40w/trickle(2-6lab)": 100, "null/40w/unequal sizes": 60,
    "null/40w/labels in bursts": 60, "null/30w/4 responses per prompt": 60,
    "quality step +0.8 at w15": 60, "quality trend +0.05/window": 40,
    "drift top scores (w15)": 40, "drift one policy (w15)": 40, "drift gradual (from w10)": 40,
    "drift mid-window (w15.5)": 40, "drift shift, 20 lab/window (w15)": 40,
}


def _per_window(spec: Any, cell: Cell, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Per-window counts from an int or a named pattern."""
    w = cell.n_windows
    if isinstance(spec, (int, np.integer)):
        out = np.full(w, int(spec))
    elif spec == "unequal":  # prompts: from 8 to 1200 per window, log-uniform
        out = np.exp(rng.uniform(np.log(8), np.log(1200), w)).astype(int)
        out[: cell.reference] = 300
    elif spec == "prop":  # labels: 20% of the rows, at most 200
        out = np.zeros(w, int)
    elif spec == "trickle":  # a handful of labels most days
        out = rng.integers(2, 7, w)
    elif spec == "burst":  # every fifth window 150 labels, others none
        out = np.where(np.arange(w) % 5 == 0, 150, 0)
    else:
        raise ValueError(spec)
    if kind == "labels" and cell.ref_labels is not None:
        out[: cell.reference] = cell.ref_labels
    return out


def judge(u: np.ndarray, t: np.ndarray, pol: np.ndarray, cell: Cell) -> np.ndarray:
    """Judge score on 0–10 (0.1 grid) of responses with quality ``u`` at times ``t`` (days).

    Parameters
    ----------
    u : numpy.ndarray
        Latent quality in (0, 1).
    t : numpy.ndarray
        Time stamps in days since the origin.
    pol : numpy.ndarray
        Policy of each row.
    cell : Cell
        The design (its drift).

    Returns
    -------
    numpy.ndarray
        The scores.
    """
    s = 10.0 * u
    after = t >= cell.drift_at
    c = cell.drift_size
    if cell.drift == "shift":
        s = np.where(after, s + c, s)
    elif cell.drift == "top":  # scores above 6 stretched up: 6 -> 6, 8 -> 8 + 2c, 10 -> 10 (clipped)
        s = np.where(after & (s > 6), s + 2.5 * c * (s - 6) / 2, s)
    elif cell.drift == "policy":
        s = np.where(after & (pol == cell.drift_policy), s + c, s)
    elif cell.drift == "gradual":  # + c judge points per day since the start
        s = np.where(after, s + c * (t - cell.drift_at), s)
    return np.round(np.clip(s, 0.0, 10.0), 1)


def simulate(cell: Cell, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[tuple[int, str], float]]:
    """One run's data and the exact truth per (window, policy).

    Parameters
    ----------
    cell : Cell
        The design.
    rng : numpy.random.Generator
        The run's stream.

    Returns
    -------
    (DataFrame, dict)
        Long data with ``timestamp`` and the truth keyed by (window, policy).
    """
    prompts = _per_window(cell.prompts, cell, rng, "prompts")
    labels = _per_window(cell.labels, cell, rng, "labels")
    frames, tru = [], {}
    npol = len(cell.policies)
    for w in range(cell.n_windows):
        n_p = int(prompts[w])
        a = rng.normal(0, SD_A, n_p)
        rows = n_p * npol * cell.responses
        pid = np.repeat(np.arange(n_p), npol * cell.responses)
        pol = np.tile(np.repeat(np.array(cell.policies), cell.responses), n_p)
        m = np.array([cell.quality[p] for p in cell.policies])
        shift = (cell.quality_step if w >= cell.quality_at else 0.0) + \
            cell.quality_trend * max(0, w - cell.reference + 1)
        mp = m + shift
        mrow = np.tile(np.repeat(mp, cell.responses), n_p)
        z = mrow + a[pid] + rng.normal(0, SD_E, rows)
        u = 1.0 / (1.0 + np.exp(-z))
        y = 1.0 + rng.binomial(4, u**POWER)
        # prompt times uniform within the day; all responses of a prompt share its time
        tp = w + rng.uniform(0, 1, n_p)
        t = tp[pid]
        s = judge(u, t, pol, cell)
        n_lab = int(labels[w]) if cell.labels != "prop" or w < cell.reference else \
            min(200, int(0.2 * rows))
        if cell.labels == "prop" and w < cell.reference:
            n_lab = 60
        lab = np.full(rows, np.nan)
        take = rng.choice(rows, size=min(n_lab, rows), replace=False)
        lab[take] = y[take]
        frames.append(pd.DataFrame({
            "prompt_id": [f"w{w}p{i}" for i in pid], "policy": pol, "judge_score": s,
            "oracle_label": lab, "timestamp": ORIGIN + pd.to_timedelta(t, unit="D")}))
        for p, mv in zip(cell.policies, mp, strict=True):
            tru[(w, p)] = truth(float(mv))
    return pd.concat(frames, ignore_index=True), tru


def run_one(name: str, rep: int, seed: int) -> dict[str, Any]:
    """One replicate of one cell: the monitor's rows scored against the truth.

    Parameters
    ----------
    name : str
        Cell name (key of ``CELLS``).
    rep : int
        Replicate number.
    seed : int
        Base seed.

    Returns
    -------
    dict
        ``rows`` (one per window × policy) and ``events``.
    """
    cell = CELLS[name]
    rng = np.random.default_rng([seed, list(CELLS).index(name), rep])
    data, tru = simulate(cell, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            rep_ = cje.monitor(data, window="1D", reference=cell.reference, judge_scale=(0, 10),
                               label_scale=(1, 5))
        except cje.CJEInputError as err:  # the whole run refused: recorded, not hidden
            return {"rows": None, "events": [], "audits": None, "error": str(err)}
    df = rep_.to_pandas()
    df["truth"] = [tru[(w, p)] for w, p in zip(df["window"], df["policy"], strict=True)]
    df["covered"] = (df["ci_low"] <= df["truth"]) & (df["truth"] <= df["ci_high"])
    df["rep"] = rep
    ev = [(e.start_window, e.confirmed_window, e.test, e.delta, e.pvalue) for e in rep_.events]
    aud = rep_.to_pandas("audits")
    return {"rows": df[["rep", "window", "policy", "estimate", "ci_low", "ci_high", "truth",
                        "covered", "n", "n_labels", "calibration", "status"]],
            "events": ev, "audits": aud.assign(rep=rep), "error": ""}


def audit_level_check(n_refs: int = 5, seed: int = 7) -> pd.DataFrame:
    """Per-test false rejection of the drift audit on windows of G labelled prompts, no drift.

    A reference of 420 labelled rows (policy A's traffic, ``m = 0.2``) is fitted as
    ``cje.monitor`` fits one; windows of ``G`` fresh labelled rows from the same traffic are audited
    and rejected at the level of a 34-window run (``0.05 / (2 · 33)``). The p-value is computed
    twice from the audit's parts: with the Satterthwaite df alone (the audit before the fix) and
    with it capped at ``G − 1`` (after).

    Parameters
    ----------
    n_refs : int
        Reference calibrations drawn.
    seed : int
        Seed.

    Returns
    -------
    DataFrame
        One row per ``G``: audits, rejection share before and after, the level.
    """
    import math

    from cje.diagnostics.calibration import transport_audit
    from cje.inference import jackknife_variance, satterthwaite_df, t_pvalue
    from cje.monitoring import _Reference

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        z = 0.2 + rng.normal(0, SD_A, n) + rng.normal(0, SD_E, n)
        u = 1 / (1 + np.exp(-z))
        return np.round(10 * u, 1), 1.0 + rng.binomial(4, u**POWER)

    rng = np.random.default_rng(seed)
    level = 0.05 / (2 * 33)
    hits: dict[int, list[tuple[bool, bool]]] = {}
    for _ in range(n_refs):
        s, y = draw(rng, 420)
        ref = _Reference(s, y, np.array([f"r{i}" for i in range(420)]), "ref", mode="monotone",
                         n_folds=5, seed=0)
        for g in (2, 3, 4, 6, 10, 20, 60):
            for _ in range(3000 if g < 20 else 1000):
                sw, yw = draw(rng, g)
                a = transport_audit("a", yw - ref.full(sw), np.arange(g), alpha=0.05, width=1.0,
                                    margin=None)
                vc = float(jackknife_variance(np.array([float(np.mean(yw - f(sw))) for f in ref.jack])))
                se = math.sqrt(a.se**2 + vc)
                sat = satterthwaite_df(a.se**2, vc, a.n_prompts, len(ref.jack))
                hits.setdefault(g, []).append((t_pvalue(a.delta, se, sat) < level,
                                               t_pvalue(a.delta, se, min(sat, g - 1.0)) < level))
    rows = []
    for g, v in hits.items():
        arr = np.array(v, dtype=float)
        rows.append({"G": g, "audits": len(arr), "before": _share(arr[:, 0], 5),
                     "after": _share(arr[:, 1], 5), "level": f"{level:.5f}"})
    return pd.DataFrame(rows)


def _share(x: np.ndarray | pd.Series, digits: int = 3) -> str:
    """``c ± sqrt(c(1 − c)/r)`` of a boolean array."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return "—"
    c = float(x.mean())
    return f"{c:.{digits}f} ± {np.sqrt(c * (1 - c) / x.size):.{digits}f}"


def _cov_clustered(d: pd.DataFrame) -> str:
    """Coverage with the replicate-clustered MC SE and the number of intervals."""
    if d.empty:
        return "— (0)"
    c = float(d["covered"].mean())
    g = d.groupby("rep")["covered"].agg(["sum", "size"])
    r = len(g)
    resid = g["sum"] - c * g["size"]
    se = float(np.sqrt(r / max(r - 1, 1) * np.sum(resid**2)) / g["size"].sum())
    flag = " ✗" if c < 0.93 - 2 * se else ""
    return f"{c:.3f} ± {se:.3f}{flag} ({len(d)})"


def summarize(raw: dict[str, Any]) -> tuple[str, pd.DataFrame]:
    """Markdown tables and a tidy summary from the replicates of :func:`run_one`.

    Parameters
    ----------
    raw : dict
        Cell name -> list of :func:`run_one` results (plus ``name::seconds``).

    Returns
    -------
    (str, DataFrame)
        The tables and one row per cell.
    """
    t1, t2, t3, t4, out = [], [], [], [], []
    for nm, res in raw.items():
        if nm.endswith("::seconds"):
            continue
        cell = CELLS[nm]
        secs = raw.get(nm + "::seconds", float("nan"))
        ok_runs = [r for r in res if r["rows"] is not None]
        err = np.array([r["rows"] is None for r in res])
        change = int(np.floor(cell.drift_at)) if cell.drift != "none" else None
        # run-level: any DRIFT (false when no judge change, or before the change); a run that
        # stopped with an error after a drift is counted as a false DRIFT when the error follows one
        # (every such error seen was the refit after a confirmed drift)
        any_drift = np.array([bool(r["events"]) or r["rows"] is None for r in res])
        false_before = np.array([any(e[1] < change for e in r["events"])
                                 for r in res]) if change is not None else any_drift
        rows = pd.concat([r["rows"] for r in ok_runs], ignore_index=True) if ok_runs else pd.DataFrame()
        st = rows["status"].value_counts(normalize=True) if len(rows) else pd.Series(dtype=float)
        est = rows[rows["status"] != "REFUSED"] if len(rows) else rows
        ok = est[est["status"] == "OK"] if len(est) else est
        after_ref = est[est["window"] >= cell.reference] if len(est) else est
        line = {"cell": nm, "reps": len(res), "seconds": round(secs, 1), "errors": int(err.sum()),
                "false_drift": float(false_before.mean())}
        t1.append(f"| {nm} | {len(res)} | {err.sum()} | {_share(false_before)} | "
                  f"{_cov_clustered(est)} | {_cov_clustered(ok)} | "
                  + " | ".join(f"{st.get(k, 0.0):.2f}" for k in ("OK", "CAUTION", "SHIFT", "DRIFT",
                                                                   "REFUSED")) + f" | {secs:.0f} |")
        # coverage by calibration source, after the reference
        for calib in ("window", "reference"):
            d = after_ref[after_ref["calibration"] == calib] if len(after_ref) else after_ref
            if len(d):
                dok = d[d["status"] == "OK"]
                t2.append(f"| {nm} | {calib} | {_cov_clustered(d)} | {_cov_clustered(dok)} | "
                          f"{(d['status'] == 'OK').mean():.2f} |")
        if change is not None:
            first = [min((e[1] for e in r["events"] if e[1] >= change), default=None)
                     for r in ok_runs]
            delay = np.array([np.inf if f is None else f - change for f in first], dtype=float)
            d_ch = est[est["window"] >= change] if len(est) else est
            if len(d_ch):
                conf = dict(zip(range(len(ok_runs)), first, strict=True))
                d_ch = d_ch.assign(stage=[
                    "change → confirmation" if conf.get(rr) is None or w <= conf[rr] else
                    "after confirmation" for rr, w in zip(d_ch["rep"], d_ch["window"], strict=True)])
            for stage in ("change → confirmation", "after confirmation"):
                d = d_ch[d_ch["stage"] == stage] if len(d_ch) else d_ch
                dok = d[d["status"] == "OK"] if len(d) else d
                t2.append(f"| {nm} | {stage} (all calibrations) | {_cov_clustered(d)} | "
                          f"{_cov_clustered(dok)} | {(d['status'] == 'OK').mean() if len(d) else 0:.2f} |")
            fin = delay[np.isfinite(delay)]
            t3.append(f"| {nm} | {len(ok_runs)} | {_share(delay <= 0)} | {_share(delay <= 2)} | "
                      f"{_share(delay <= 5)} | {_share(np.isfinite(delay))} | "
                      f"{np.median(fin) if fin.size else float('nan'):.1f} |")
            line["detected"] = float(np.isfinite(delay).mean())
        # reference-calibrated windows by the policy's own labels in the window
        refrows = after_ref[after_ref["calibration"] == "reference"] if len(after_ref) else after_ref
        if len(refrows) and (refrows["n_labels"] > 0).any():
            bucket = pd.cut(refrows["n_labels"], [-1, 0, 2, 3, 9, 10**9],
                            labels=["0", "1–2", "3", "4–9", "10+"])
            for b, d in refrows.groupby(bucket, observed=True):
                rmse = float(np.sqrt(np.mean((d["estimate"] - d["truth"]) ** 2)))
                t4.append(f"| {nm} | {b} | {_cov_clustered(d)} | {rmse:.3f} | "
                          f"{float(np.mean(d['ci_high'] - d['ci_low'])):.3f} |")
        out.append(line)
    md = ["## Run level: false DRIFT, coverage, statuses", "",
          "| cell | reps | runs stopped by an error | any false DRIFT | coverage (all estimated) | "
          "coverage (OK) | OK | CAUTION | SHIFT | DRIFT | REFUSED | seconds |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|", *t1, "",
          "'any false DRIFT': share of runs with a DRIFT event in a cell without judge change, or "
          "one confirmed before the change window (in a cell without judge change a run stopped by an "
          "error counts: each such stop was the refit after a confirmed drift). Coverage over all "
          "windows, reference windows included: replicate-clustered MC SE, (intervals);"
          " ✗ = below 0.93 by more than 2 SE. Status shares over all window × policy rows.", "",
          "## Coverage by calibration source and stage", "",
          "Windows after the reference; 'window'/'reference' = the calibration source; stages from the "
          "change window on (drift cells).", "",
          "| cell | rows | coverage | coverage (OK) | share OK |", "|---|---|---:|---:|---:|", *t2,
          "", "## Detection (cells with a judge change)", "",
          "| cell | runs | confirmed at the change window | within 2 windows | within 5 | ever | "
          "median delay (windows) |", "|---|---:|---:|---:|---:|---:|---:|", *t3, "",
          "## Reference-calibrated windows (CAUTION at best) by the policy's own labels in the window",
          "", "Estimated (not REFUSED) windows after the reference.", "",
          "| cell | own labels | coverage | RMSE | mean width |", "|---|---|---:|---:|---:|", *t4]
    return "\n".join(md), pd.DataFrame(out)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=0, help="replicates per cell (0: REPS)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                         / "independent_monitor_raw.pkl"))
    ap.add_argument("--cells", default="", help="cell names separated by ';' (default: all)")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--rep-start", type=int, default=0, help="first replicate number (to add reps)")
    ap.add_argument("--summarize", nargs="*", default=None,
                    help="only print the tables of these raw pickles (merged per cell)")
    ap.add_argument("--write", action="store_true",
                    help="with --summarize: write the tables into the results file (and a CSV)")
    ap.add_argument("--before", default="", help="with --write: raw pickle of the run before the fix")
    ap.add_argument("--audit-check", action="store_true", help="only the per-test audit check")
    ns = ap.parse_args()
    if ns.audit_check:
        tab = audit_level_check()
        print("| " + " | ".join(tab.columns) + " |\n|" + "---|" * tab.shape[1])
        for row in tab.itertuples(index=False):
            print("| " + " | ".join(str(x) for x in row) + " |")
        raise SystemExit(0)
    if ns.summarize is not None:
        merged: dict[str, Any] = {}
        for f in ns.summarize:  # several pickles (e.g. added replicates) are merged per cell
            for k, v in pd.read_pickle(f).items():
                merged[k] = merged.get(k, 0.0) + v if k.endswith("::seconds") else merged.get(k, []) + v
        text, table = summarize(merged)
        print(text)
        if ns.write:  # the tables below the hand-written reading of the results file
            md = Path(__file__).resolve().parent / "results" / "independent_monitor.md"
            head = md.read_text(encoding="utf-8").split("# Tables")[0] if md.exists() else ""
            extra = ""
            if ns.before:
                btext, _ = summarize(pd.read_pickle(ns.before))
                extra = ("\n\n## Before the fix (package at c64387c), same seeds\n\n"
                         + btext.replace("## ", "### "))
            md.write_text(head + "# Tables\n\n" + text + extra + "\n", encoding="utf-8")
            table.to_csv(md.with_suffix(".csv"), index=False)
        raise SystemExit(0)
    # cells separated by ";" (some names hold a comma)
    names = [c.strip() for c in ns.cells.split(";") if c.strip()] or list(CELLS)
    raw: dict[str, Any] = {}
    t_all = time.time()
    for nm in names:
        t0 = time.time()
        reps = ns.reps or REPS[nm]
        raw[nm] = Parallel(n_jobs=ns.n_jobs)(delayed(run_one)(nm, r, ns.seed)
                                              for r in range(ns.rep_start, ns.rep_start + reps))
        raw[nm + "::seconds"] = time.time() - t0
        print(nm, reps, f"{time.time() - t0:.1f}s", flush=True)
        pd.to_pickle(raw, ns.out)
    print(f"total {time.time() - t_all:.0f}s", flush=True)
