"""Check: direct-mode coverage and statuses on small, awkward data built without ``cje.synthetic``.

A companion to ``simulations/independent_dgps.py`` (600 prompts, 10% labels): here the data are
small and coarse, where a t interval, an isotonic fit on a handful of labels and the gates are
most likely to disagree with the truth. Everything is drawn with numpy alone and scored against
the exact population value.

**Process.** Prompt ``i`` has a difficulty ``a_i ~ N(0, 0.7²)`` shared by every policy; policy
``p``'s response to it has latent quality ``v = q_p − a_i + ξ``, ``ξ ~ N(0, 0.6²)``. The oracle
sees ``v + ε``, ``ε ~ N(0, 0.5²)``, so ``v + ε ~ N(q_p, σ²)``, ``σ² = 0.49 + 0.36 + 0.25``:

* ``likert`` labels on the 1–5 integer scale, ``Y = 1 + #{k: v + ε > c_k}``, thresholds
  ``c = (−2.0, −1.2, −0.4, 0.6)`` (ties; a ceiling: most labels of the policies are 4 or 5).
  Truth ``1 + Σ_k Φ((q_p − c_k)/σ)``.
* ``binary`` labels ``Y = 1[v + ε > 0]``; truth ``Φ(q_p/σ)``.

The judge sees ``u = v + η``, ``η ~ N(0, 0.6²)`` (independent of the oracle's ``ε``):

* ``grid10``: ``S = clip(round(5.5 + 2u + b_p), 1, 10)`` — integers 1–10 (ties), a judge bias
  ``b_p`` in points per policy;
* ``three``: ``S = 1 + 1[u + b_p/2 > −0.3] + 1[u + b_p/2 > 0.8]`` — three distinct values;
* ``nonmono``: ``S = clip(round(5.5 + 2u + b_p), 1, 10)`` for ``u ≤ 1``, and
  ``round(7.5 − 1.5(u − 1) + b_p)`` above: the judge saturates and then marks the best responses
  (think: very long answers) down — ``E[Y | S]`` is not monotone and no isotonic map fits it.

Policies share the prompts (one response each): ``A`` (``q = 0``, bias 0), ``B`` (``q = 0.5``,
the judge over-rates it by ``b = +1`` point) and ``T``, near the scale's top (``q = 1.6`` for
likert labels, truth 4.78 of 5; ``q = 2.0`` for binary, truth 0.972), bias 0. A fixed number
``M`` of rows is labelled in all (8, 15 or 30), drawn at random among the rows of the labelled
policies, as evenly as the count allows:

* ``A``: labels on A only (B and T rest on the calibration transporting — never OK);
* ``AT``: labels on A and T (the near-bound policy has labels of its own);
* ``all``: labels on every policy (``M = 30``: 10 each, the smallest count the gates let be OK).

``cje.analyze`` runs with its defaults and the declared scales (judge 1–10, or 1–3; labels 1–5
or 0–1). Scored per (setting, policy): coverage of the 95% interval, bias, shares OK / CAUTION /
REFUSED, the coverage of the OK intervals (what a user who trusts OK gets), and whether an
estimate or interval lies outside the label scale. MC SE of a coverage ``c`` over ``r``
intervals: ``sqrt(c(1 − c)/r)``. Seeds ``1000·cell + r``. Writes
``simulations/results/independent_small.md`` (with ``--csv PATH`` also every estimate's row).

Usage::

    python simulations/independent_small.py [--reps 2000] [--n-jobs 1] [--csv PATH] [--time-only]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

OUT = Path(__file__).resolve().parent / "results" / "independent_small.md"

SD_PROMPT, SD_RESP, SD_ORACLE, SD_JUDGE = 0.7, 0.6, 0.5, 0.6
SIGMA = math.sqrt(SD_PROMPT**2 + SD_RESP**2 + SD_ORACLE**2)
LIKERT_CUTS = (-2.0, -1.2, -0.4, 0.6)
#: policy -> (quality shift q, judge bias in points); T's shift depends on the label type
QUALITY = {"A": 0.0, "B": 0.5}
BIAS = {"A": 0.0, "B": 1.0, "T": 0.0}
T_SHIFT = {"likert": 1.6, "binary": 2.0}
LABEL_SCALE = {"likert": (1.0, 5.0), "binary": (0.0, 1.0)}
JUDGE_SCALE = {"grid10": (1.0, 10.0), "three": (1.0, 3.0), "nonmono": (1.0, 10.0)}
LABELLED = {"A": ("A",), "AT": ("A", "T"), "all": ("A", "B", "T")}


_phi = NormalDist().cdf  # the standard normal distribution function


def shift(policy: str, labels: str) -> float:
    """Latent quality shift ``q_p`` of a policy (``T``'s depends on the label type).

    Parameters
    ----------
    policy : str
        ``"A"``, ``"B"`` or ``"T"``.
    labels : str
        ``"likert"`` or ``"binary"``.

    Returns
    -------
    float
    """
    return T_SHIFT[labels] if policy == "T" else QUALITY[policy]


def truth(policy: str, labels: str) -> float:
    """Exact population mean of the oracle label of a policy's responses.

    Parameters
    ----------
    policy : str
        ``"A"``, ``"B"`` or ``"T"``.
    labels : str
        ``"likert"`` (1–5) or ``"binary"`` (0/1).

    Returns
    -------
    float
    """
    q = shift(policy, labels)
    if labels == "binary":
        return _phi(q / SIGMA)
    return 1.0 + sum(_phi((q - c) / SIGMA) for c in LIKERT_CUTS)


def _judge(u: np.ndarray, bias: float, judge: str) -> np.ndarray:
    if judge == "three":
        return 1.0 + (u + bias / 2 > -0.3) + (u + bias / 2 > 0.8)
    raw = 5.5 + 2.0 * u + bias
    if judge == "nonmono":
        raw = np.where(u <= 1.0, raw, 7.5 - 1.5 * (u - 1.0) + bias)
    return np.clip(np.round(raw), 1.0, 10.0)


def make_data(seed: int, n: int, m: int, labels: str, judge: str, design: str) -> pd.DataFrame:
    """One replicate's long-format data: three policies on ``n`` shared prompts, ``m`` labels.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    n : int
        Prompts (one response per prompt and policy).
    m : int
        Labelled rows in all, spread as evenly as possible over the design's labelled policies.
    labels : str
        ``"likert"`` or ``"binary"``.
    judge : str
        ``"grid10"``, ``"three"`` or ``"nonmono"``.
    design : str
        ``"A"``, ``"AT"`` or ``"all"``: which policies have labels.

    Returns
    -------
    pandas.DataFrame
        Columns ``prompt_id``, ``policy``, ``judge_score``, ``oracle_label``.
    """
    rng = np.random.default_rng(seed)
    a = SD_PROMPT * rng.standard_normal(n)
    pid = np.array([f"p{i}" for i in range(n)])
    labelled = LABELLED[design]
    per = [m // len(labelled) + (j < m % len(labelled)) for j in range(len(labelled))]
    parts = []
    for p in ("A", "B", "T"):
        v = shift(p, labels) - a + SD_RESP * rng.standard_normal(n)
        z = v + SD_ORACLE * rng.standard_normal(n)
        y = (z > 0).astype(float) if labels == "binary" else \
            1.0 + sum((z > c).astype(float) for c in LIKERT_CUTS)
        s = _judge(v + SD_JUDGE * rng.standard_normal(n), BIAS[p], judge)
        keep = np.zeros(n, dtype=bool)
        if p in labelled:
            keep[rng.choice(n, size=per[labelled.index(p)], replace=False)] = True
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(keep, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def replicate(seed: int, cell: dict) -> list[dict]:
    """Analyse one replicate and score every policy against the truth.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    cell : dict
        ``n``, ``m``, ``labels``, ``judge``, ``design`` (as :func:`make_data`).

    Returns
    -------
    list of dict
        One row per policy.
    """
    data = make_data(seed, cell["n"], cell["m"], cell["labels"], cell["judge"], cell["design"])
    lo, hi = LABEL_SCALE[cell["labels"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rep = cje.analyze(data, judge_scale=JUDGE_SCALE[cell["judge"]],
                              label_scale=(lo, hi))
        except Exception as exc:  # e.g. constant labels: recorded, not hidden
            return [{"seed": seed, "policy": p, "status": "ERROR", "error": type(exc).__name__,
                     "reason": str(exc)[:200]} for p in ("A", "B", "T")]
    out = []
    tol = 1e-9 * (hi - lo)
    for e in rep.estimates:
        t = truth(e.policy, cell["labels"])
        out.append({
            "seed": seed, "policy": e.policy, "estimate": e.estimate, "truth": t,
            "ci_low": e.ci_low, "ci_high": e.ci_high, "covered": bool(e.ci_low <= t <= e.ci_high),
            "status": e.status, "n_labels": e.n_labels, "df": e.df, "se": e.se,
            "outside": bool(e.estimate < lo - tol or e.estimate > hi + tol or e.ci_low < lo - tol
                            or e.ci_high > hi + tol),
            "clipped": bool(e.diagnostics.get("interval_clipped", False)),
            "k": rep.calibration.n_folds, "reason": " | ".join(e.reasons)[:300],
        })
    return out


def cells() -> list[dict]:
    """The settings swept (see the module docstring): a fractional grid, not a full factorial.

    Returns
    -------
    list of dict
    """
    out = []
    # the core: every label type x judge, labels on A and T, every n and label count
    for labels in ("binary", "likert"):
        for judge in ("grid10", "three", "nonmono"):
            for n in (60, 120, 250):
                for m in (8, 15, 30):
                    out.append({"labels": labels, "judge": judge, "n": n, "m": m, "design": "AT"})
    # labels on A only, and on every policy: every n with 30 labels, the middle n with 15
    for labels in ("binary", "likert"):
        for judge in ("grid10", "three", "nonmono"):
            for design in ("A", "all"):
                for n, m in ((60, 30), (120, 15), (120, 30), (250, 30)):
                    out.append({"labels": labels, "judge": judge, "n": n, "m": m,
                                "design": design})
    return out


def _cov(c: float, r: int) -> str:
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f}" if r else "—"


def _name(c: dict) -> str:
    return f"{c['labels']}/{c['judge']}/n={c['n']}/M={c['m']}/{c['design']}"


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per (setting, policy): coverage, bias, status shares, coverage of the OK intervals.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`replicate` with a ``cell`` column.

    Returns
    -------
    pandas.DataFrame
    """
    rows = []
    for (cell, pol), g in df.groupby(["cell", "policy"], sort=False):
        g = g[g["status"] != "ERROR"]
        ok = g[g["status"] == "OK"]
        rows.append({
            "cell": cell, "policy": pol, "reps": len(g), "coverage": g["covered"].mean(),
            "bias": (g["estimate"] - g["truth"]).mean(), "width": (g["ci_high"] - g["ci_low"]).mean(),
            "OK": (g["status"] == "OK").mean(), "CAUTION": (g["status"] == "CAUTION").mean(),
            "REFUSED": (g["status"] == "REFUSED").mean(),
            "UNCAL": (g["status"] == "UNCALIBRATED").mean(),
            "ok_n": len(ok), "ok_cov": ok["covered"].mean() if len(ok) else float("nan"),
            "outside": int(g["outside"].sum()), "ok_outside": int(ok["outside"].sum()),
            "ok_clipped": int(ok["clipped"].sum()),
        })
    return pd.DataFrame(rows)


def table(s: pd.DataFrame) -> list[str]:
    """Markdown table of :func:`summarise`'s rows.

    Parameters
    ----------
    s : pandas.DataFrame

    Returns
    -------
    list of str
    """
    lines = ["| setting | policy | coverage ± MC SE | bias | width | OK | CAUTION | REFUSED | "
             "coverage of the OK ones (count) | outside the scale (of them OK) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in s.itertuples():
        ok = f"{_cov(r.ok_cov, r.ok_n)} ({r.ok_n})" if r.ok_n else "— (0)"
        lines.append(f"| {r.cell} | {r.policy} | {_cov(r.coverage, r.reps)} | {r.bias:+.3f} | "
                     f"{r.width:.3f} | {r.OK:.2f} | {r.CAUTION:.2f} | {r.REFUSED:.2f} | {ok} | "
                     f"{r.outside} ({r.ok_outside}) |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--time-only", action="store_true", help="time 5 replicates per cell and stop")
    ap.add_argument("--out", type=Path, default=OUT, help="results page")
    ap.add_argument("--csv", type=Path, default=None,
                    help="also write every estimate's row here (about 250 MB at 2,000 replicates)")
    ns = ap.parse_args()
    grid = cells()
    if ns.time_only:
        for c in grid:
            t0 = time.perf_counter()
            for s in range(5):
                replicate(s, c)
            print(f"{_name(c)}: {(time.perf_counter() - t0) / 5:.3f} s/replicate", flush=True)
        return
    t0 = time.perf_counter()
    par = Parallel(n_jobs=ns.n_jobs)
    frames = []
    for i, c in enumerate(grid):
        res = par(delayed(replicate)(1000 * i + r, c) for r in range(ns.reps))
        frames.append(pd.DataFrame([row for rr in res for row in rr]).assign(cell=_name(c), **c))
        print(f"{i + 1}/{len(grid)} {_name(c)} {time.perf_counter() - t0:.0f}s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    if ns.csv is not None:
        df.to_csv(ns.csv, index=False)
    write(df, ns, time.perf_counter() - t0)


def write(df: pd.DataFrame, ns: argparse.Namespace, runtime: float) -> None:
    """Write the results page (tables and an automatic check list; the reading is added by hand).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`replicate` with the cell columns.
    ns : argparse.Namespace
        The command's arguments.
    runtime : float
        Seconds.
    """
    s = summarise(df)
    truths = ", ".join(f"{p} {truth(p, lab):.3f}" for lab in ("likert", "binary")
                       for p in ("A", "B", "T"))
    out = ["# Small, awkward direct data — coverage and statuses (independent process)", "",
           f"Command: `python simulations/independent_small.py --reps {ns.reps} --n-jobs {ns.n_jobs}`.",
           "Design: module docstring of `simulations/independent_small.py` (numpy only, not "
           "`cje.synthetic`); `cje.analyze` with its defaults; exact truth "
           f"(likert A, B, T; binary A, B, T: {truths}).", ""]
    err = df[df["status"] == "ERROR"]
    if len(err):
        out += [f"Errors raised by `cje.analyze` (counted per policy row): {len(err)}; "
                + "; ".join(f"{k}: {v}" for k, v in err.groupby("error").size().items()), ""]
    flags = s[(s["ok_n"] > 0) & (s["ok_cov"] < 0.93)
              & ((0.93 - s["ok_cov"]) > 2 * np.sqrt(s["ok_cov"] * (1 - s["ok_cov"]) / s["ok_n"]))]
    out += ["## Automatic checks", "",
            f"- (setting, policy) pairs with any OK interval: {int((s['ok_n'] > 0).sum())} of {len(s)}; "
            f"their OK coverage {s['ok_cov'].min():.3f}–{s['ok_cov'].max():.3f}.",
            f"- OK coverage below 0.93 by more than 2 MC SE: {len(flags)} pair(s)"
            + (": " + "; ".join(f"{r.cell} {r.policy} {_cov(r.ok_cov, r.ok_n)} ({r.ok_n})"
                                for r in flags.itertuples()) if len(flags) else "") + ".",
            f"- Estimates or intervals outside the label scale: {int(s['outside'].sum())} "
            f"(of them OK: {int(s['ok_outside'].sum())}).",
            "- OK intervals of zero width (SE 0): "
            f"{int(((df['status'] == 'OK') & (df['ci_high'] - df['ci_low'] <= 0)).sum())}"
            + (" (" + "; ".join(f"{k} {v}" for k, v in df[(df['status'] == 'OK') & (
                df['ci_high'] - df['ci_low'] <= 0)].groupby(['cell', 'policy']).size().items()) + ")"
               if ((df['status'] == 'OK') & (df['ci_high'] - df['ci_low'] <= 0)).any() else "")
            + ".",
            "- Policies without labels of their own marked OK: "
            f"{int(((df['n_labels'] == 0) & (df['status'] == 'OK')).sum())} of "
            f"{int((df['n_labels'] == 0).sum())}.", ""]
    out += ["## All settings", "", "Setting = labels / judge / prompts / labelled rows in all / "
            "policies with labels.", ""] + table(s)
    out += ["", f"Runtime: {runtime:.0f} s.", ""]
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    ns.out.write_text("\n".join(out) + "\n")
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
