"""Check, round two: skewed amounts that fit a small common scale, whole-number amounts, and
bounded rating-like labels that a rule against them must leave alone.

Same process as ``simulations/independent_kpi.py`` (prompt difficulty ``d ~ N(0, 0.5²)``, latent
quality ``Z = μ_p + d + ξ``, ``ξ ~ N(0, 0.75)``, oracle sees ``x = (Z + ε)/τ ~ N(δ_p, 1)``,
``ε ~ N(0, 0.5²)``, ``τ² = 1.25``, ``δ_p = μ_p/τ``; judge ``S = clip(round(5 + 1.5 (Z + η), 1),
0, 10)``, ``η ~ N(0, 0.5²)``; policies A (``μ = 0``), C (A's twin) and B (``μ = 0.3``) on 500
shared prompts; labels MCAR at ``p_L``), with these outcomes:

**Amounts** (the outcomes of ``independent_kpi.py`` multiplied by ``k``, "revenue in thousands,
time in hours"): ``lognormal`` ``k·10·exp(σ x)``, ``pareto`` ``k·10·((1 − Φ(x))^(−1/α) − 1)``,
``zeroinf`` ``k·1[x > c₀]·10·exp(x − c₀)`` (80% zeros for A); truths ``k`` times the exact ones
there. **Whole-number amounts**: ``round(k·lognormal)`` (integer dollars); truth
``Σ_{j≥1} P(k·10·e^{σx} ≥ j − ½)`` (exact series, cut where its terms are below 10⁻¹⁵).

**Rating-like labels** (bounded; a rule against amounts should leave them OK):

* ``raters3``: the mean of three raters on 1–5, each ``clip(round(c + 0.9 x + ν), 1, 5)``,
  ``ν ~ N(0, 0.8²)``, ``c = 3`` (mid-scale) or ``c = 1.6`` (``raters3low``: mostly 1s, a harm
  rating); truth ``E clip(round(N(c + 0.9 δ, 0.81 + 0.64)))`` (exact, normal bins).
* ``beta``: a probability or mean rating on (0, 1), ``Y ~ Beta(κ p, κ (1 − p))``, ``κ = 8``,
  ``p = Φ(a + 0.8 x)``, ``a`` such that A's mean is 0.37 (``beta``) or 0.08 (``betalow``);
  truth ``Φ((a + 0.8 δ)/√1.64)``; ``betawide``: ``κ = 2`` (labels spread over the whole
  of (0, 1)), A's mean 0.37.
* ``int10``: ``clip(round(5.5 + 1.5 x + N(0, 1)), 1, 10)``; ``int100``: ``clip(round(60 + 15 x
  + N(0, 10²)), 0, 100)``; ``int100low``: ``clip(round(8 + 6 x + N(0, 4²)), 0, 100)`` (a 0–100
  rating used mostly near 0); truths exact (normal bins).
* ``binary``: ``1[x > c]``, A's rate 0.3; ``poisson``: counts with A's mean 3
  (as ``independent_kpi.py``).

``cje.analyze(df, judge_scale=(0, 10))`` with its defaults and no ``label_scale`` (inferred), or
declared (``huge``, ``(0, 10⁶)``). For every replicate the script records, besides each level's
status and coverage, statistics of the labelled rows **pooled over policies** (what the gate
sees): whether every label is a whole or half point of the scale (``grid2``) or a point of a
grid of sixths (``grid6``: means of two or three raters), the ratio of the largest label to the
median measured from the scale's low end (``ratio``), the share of the labels' sum of squares
about their mean carried by the top two (``top2``), the median's position on the unit scale, and
the skewness. Candidate rules are scored a posteriori on these rows (a rule that only turns OK
into CAUTION changes nothing else, so the scoring is exact for the rules as implemented in
``label_range_gate``).

**Off-policy cells** (``logged/…``): ``independent_kpi.py``'s logged design (A logged with exact
log-densities, targets T1/T2, 10% of 1,000 rows labelled; DR with fresh draws, IPS without) with
the labels times ``k``.

The replicate rows go to ``independent_kpi2.parquet`` beside the results (git-ignored); the
tables are printed and were pasted into ``simulations/results/independent_kpi.md`` ("Round two").
``--before ROWS`` pairs this run with rows of the same command run with the package before a
change (same seeds), giving "OK → CAUTION" (for rating-like labels: the false-CAUTION rate) and
the candidate rules' table scored on those rows.

Usage::

    python simulations/independent_kpi2.py [--reps 400] [--n-jobs 1] [--only SUBSTR] [--out ROWS]
    python simulations/independent_kpi2.py --from-parquet [--out ROWS] [--before ROWS]
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import special, stats

import cje

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import independent_kpi as K  # noqa: E402  (the shared process and truths)

OUT = HERE / "results" / "independent_kpi.md"
HUGE = (0.0, 1e6)
AMOUNTS = ("lognormal", "pareto", "zeroinf")
RATER_SD, BETA_KAPPA, BETA_B = 0.8, 8.0, 0.8


def _beta_a(mean_a: float) -> float:
    return float(stats.norm.ppf(mean_a)) * math.sqrt(1 + BETA_B**2)


def _binned_mean(mean: float, sd: float, lo: int, hi: int) -> float:
    """``E clip(round(N(mean, sd²)), lo, hi)`` exactly (rounding half up, as the bins)."""
    ks = np.arange(lo, hi + 1)
    up = stats.norm.cdf((ks[:-1] + 0.5 - mean) / sd)  # P(value <= k) for k < hi
    probs = np.diff(np.concatenate([[0.0], up, [1.0]]))
    return float(np.sum(ks * probs))


RATINGS = {  # kind: (c, slope, noise sd, lo, hi)
    "raters3": (3.0, 0.9, RATER_SD, 1, 5), "raters3low": (1.6, 0.9, RATER_SD, 1, 5),
    "int10": (5.5, 1.5, 1.0, 1, 10), "int100": (60.0, 15.0, 10.0, 0, 100),
    "int100low": (8.0, 6.0, 4.0, 0, 100),
}


@functools.cache
def truth(kind: str, par: float, mult: float, mu: float) -> float:
    """Exact population mean of the label for a policy with latent shift ``mu``.

    Parameters
    ----------
    kind : str
        An amount (``lognormal``, ``pareto``, ``zeroinf``), ``roundlognormal``, a rating kind
        (``raters3``, ``raters3low``, ``int10``, ``int100``, ``int100low``), ``beta``,
        ``binary`` or ``poisson``.
    par : float
        The outcome's parameter (``σ``, ``α``, A's rate or mean, A's mean for ``beta``).
    mult : float
        The multiplier ``k`` of amounts (1 otherwise).
    mu : float
        The policy's latent shift ``μ_p``.

    Returns
    -------
    float
    """
    d = mu / K.TAU
    if kind in AMOUNTS or kind in ("binary", "poisson"):
        return mult * K.truth(kind, par, mu)
    if kind == "roundlognormal":
        # E round(Y) = sum_{j>=1} P(Y >= j - 1/2), Y = mult*10*exp(par*x), x ~ N(d, 1)
        total, j0 = 0.0, 1
        while True:
            j = np.arange(j0, j0 + 1_000_000, dtype=float)
            t = stats.norm.sf((np.log((j - 0.5) / (10.0 * mult)) / par) - d)
            total += float(t.sum())
            if t[-1] < 1e-15:
                return total
            j0 += 1_000_000
    if kind in RATINGS:
        c, b, s, lo, hi = RATINGS[kind]
        return _binned_mean(c + b * d, math.sqrt(b * b + s * s), lo, hi)
    if kind in ("beta", "betawide"):
        return mult * float(stats.norm.cdf((_beta_a(par) + BETA_B * d) / math.sqrt(1 + BETA_B**2)))
    raise ValueError(kind)


def outcome(rng: np.random.Generator, kind: str, par: float, mult: float, x: np.ndarray
            ) -> np.ndarray:
    """Draw the label given ``x = W/τ``.

    Parameters
    ----------
    rng : numpy.random.Generator
    kind : str
    par : float
    mult : float
    x : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    if kind in AMOUNTS or kind in ("binary", "poisson"):
        return mult * K.outcome(rng, kind, par, x)
    if kind == "roundlognormal":
        return np.floor(mult * K.outcome(rng, "lognormal", par, x) + 0.5)
    if kind in RATINGS:
        c, b, s, lo, hi = RATINGS[kind]
        n_r = 3 if kind.startswith("raters3") else 1
        r = [np.clip(np.floor(c + b * x + s * rng.standard_normal(x.size) + 0.5), lo, hi)
             for _ in range(n_r)]
        return np.mean(r, axis=0)
    if kind in ("beta", "betawide"):
        p = special.ndtr(_beta_a(par) + BETA_B * x)
        kap = BETA_KAPPA if kind == "beta" else 2.0
        return mult * np.clip(rng.beta(kap * p, kap * (1 - p)), 0.0, 1.0)
    raise ValueError(kind)


def make_direct(seed: int, cell: dict) -> pd.DataFrame:
    """One direct replicate: policies A, B, C on ``n`` shared prompts, labels MCAR at ``p_L``.

    Parameters
    ----------
    seed : int
    cell : dict
        ``kind``, ``par``, ``mult``, ``n``, ``pl``.

    Returns
    -------
    pandas.DataFrame
    """
    rng = np.random.default_rng(seed)
    n = cell["n"]
    d = K.SD_D * rng.standard_normal(n)
    pid = np.array([f"p{i}" for i in range(n)])
    parts = []
    for p in ("A", "B", "C"):
        z = K.MU[p] + d + math.sqrt(K.VAR_XI) * rng.standard_normal(n)
        w = z + K.SD_EPS * rng.standard_normal(n)
        y = outcome(rng, cell["kind"], cell["par"], cell["mult"], w / K.TAU)
        s = np.clip(np.round(5.0 + 1.5 * (z + 0.5 * rng.standard_normal(n)), 1), 0.0, 10.0)
        lab = rng.random(n) < cell["pl"]
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def make_logged(seed: int, cell: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One off-policy replicate (``independent_kpi.make_logged``) with the labels times ``k``.

    Parameters
    ----------
    seed : int
    cell : dict

    Returns
    -------
    (DataFrame, DataFrame)
    """
    logged, fresh = K.make_logged(seed, {**cell, "kpi": cell["kind"], "judge": "informative"})
    logged["oracle_label"] = cell["mult"] * logged["oracle_label"]
    return logged, fresh


def label_stats(y: np.ndarray, scale: tuple[float, float]) -> dict:
    """Statistics of the labelled rows (label units) that candidate rules read.

    Parameters
    ----------
    y : numpy.ndarray
        Labels (NaN dropped).
    scale : (float, float)
        The analysis's label scale.

    Returns
    -------
    dict
    """
    lo, hi = scale
    y = np.sort(y[np.isfinite(y)])
    u = (y - lo) / (hi - lo)
    med = float(np.median(y) - lo)
    top = float(y[-1] - lo)
    ss = np.sum((y - y.mean()) ** 2)
    top2 = float(np.sum((y[-2:] - y.mean()) ** 2) / ss) if ss > 0 else 0.0
    c = y - y.mean()
    g1 = float(np.mean(c**3) / np.mean(c**2) ** 1.5) if ss > 0 else 0.0
    return {"grid2": bool(np.all(np.abs(2 * y - np.round(2 * y)) <= 1e-6)),
            "grid6": bool(np.all(np.abs(6 * y - np.round(6 * y)) <= 1e-6)),
            "whole": bool(np.all(np.abs(y - np.round(y)) <= 1e-6)),
            "ratio": top / med if med > 0 else math.inf, "top2": top2,
            "med_unit": float(np.median(u)), "max_unit": float(u[-1]), "g1": g1, "m_all": y.size}


def replicate(seed: int, cell: dict) -> list[dict]:
    """Analyse one replicate; one row per policy level with the pooled label statistics.

    Parameters
    ----------
    seed : int
    cell : dict

    Returns
    -------
    list of dict
    """
    lscale = None if cell["scale"] == "inferred" else HUGE
    if cell.get("design", "direct") == "direct":
        data = make_direct(seed, cell)
        runs = [("direct", dict(data=data))]
    else:
        data, fresh = make_logged(seed, cell)
        runs = [("DR", dict(data=data, fresh_draws=fresh)), ("IPS", dict(data=data))]
    out = []
    for tag, kw in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rep = cje.analyze(judge_scale=(0.0, 10.0), label_scale=lscale, **kw)
            except Exception as exc:  # recorded, not hidden
                out.append({"seed": seed, "run": tag, "policy": "*", "status": "ERROR",
                            "error": type(exc).__name__})
                continue
        st = label_stats(data["oracle_label"].to_numpy(float), rep.label_scale)
        common = tuple(rep.label_scale) in cje.data.COMMON_SCALES
        for e in rep.estimates:
            mu = K.MU.get(e.policy, K.OFF_TARGETS.get(e.policy))
            t = truth(cell["kind"], cell["par"], cell["mult"], mu)
            out.append({"seed": seed, "run": tag, "policy": e.policy, "estimate": e.estimate,
                        "truth": t, "ci_low": e.ci_low, "ci_high": e.ci_high, "status": e.status,
                        "covered": bool(e.ci_low <= t <= e.ci_high), "n_labels": e.n_labels,
                        "scale": f"({rep.label_scale[0]:g}, {rep.label_scale[1]:g})",
                        "common": common,
                        "inferred_reason": any("was inferred" in r for r in e.reasons),
                        "range_reason": any("own range" in r for r in e.reasons),
                        "tail_reason": any("heavy-tailed" in r for r in e.reasons), **st})
    return out


def cells() -> list[dict]:
    """The settings swept.

    Returns
    -------
    list of dict
    """
    d = dict(n=500, pl=0.10, scale="inferred", mult=1.0, par=0.0)
    out = []
    # amounts below 10 (scaled down) and heavy tails
    for kind, par, mult in (("lognormal", 1.0, 0.1), ("lognormal", 1.0, 0.01),
                            ("lognormal", 2.0, 0.001), ("pareto", 2.5, 0.1), ("pareto", 1.5, 0.01),
                            ("zeroinf", 0.0, 0.1), ("zeroinf", 0.0, 0.01)):
        out.append({**d, "kind": kind, "par": par, "mult": mult})
    for kind, par, mult in (("lognormal", 1.0, 0.1), ("pareto", 2.5, 0.1)):
        out.append({**d, "kind": kind, "par": par, "mult": mult, "pl": 0.05})
    # whole-number amounts (integer dollars)
    for par, mult in ((1.0, 1.0), (1.0, 0.5), (2.0, 0.1)):
        out.append({**d, "kind": "roundlognormal", "par": par, "mult": mult})
    # unscaled heavy tails (range scale) and declared huge scale: how often the tail is named
    for kind, par in (("lognormal", 2.0), ("pareto", 1.5)):
        out.append({**d, "kind": kind, "par": par})
        out.append({**d, "kind": kind, "par": par, "scale": "huge"})
    # bounded rating-like labels
    for kind, par in (("raters3", 0.0), ("raters3low", 0.0), ("beta", 0.37), ("beta", 0.08),
                      ("betawide", 0.37), ("int10", 0.0), ("int100", 0.0), ("int100low", 0.0),
                      ("binary", 0.3),
                      ("poisson", 3.0), ("poisson", 0.2)):
        out.append({**d, "kind": kind, "par": par})
    for kind, par in (("raters3", 0.0), ("beta", 0.37), ("beta", 0.08), ("int100low", 0.0)):
        out.append({**d, "kind": kind, "par": par, "pl": 0.05})
    # continuous 0-10 ratings (a slider, a mean of many raters): 10 x the (0, 1) labels
    for kind, par in (("beta", 0.37), ("betawide", 0.37), ("beta", 0.08)):
        out.append({**d, "kind": kind, "par": par, "mult": 10.0})
    # off-policy (independent_kpi.py's logged design: A logged, targets T1/T2), amounts below 10
    for kind, par, mult in (("pareto", 2.5, 0.1), ("lognormal", 1.0, 0.05)):
        out.append({**d, "design": "logged", "kind": kind, "par": par, "mult": mult, "n": 1000})
    return out


def name(c: dict) -> str:
    """Short label of a cell.

    Parameters
    ----------
    c : dict

    Returns
    -------
    str
    """
    par = f"({c['par']:g})" if c["par"] else ""
    mult = f"×{c['mult']:g}" if c["mult"] != 1 else ""
    pre = "logged/" if c.get("design", "direct") == "logged" else ""
    return f"{pre}{c['kind']}{par}{mult}/pL={c['pl']:g}/{c['scale']}"


def _cov(c: float, r: int) -> str:
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f}" if r else "—"


def rule_amount(df: pd.DataFrame, ratio: float = 10.0) -> pd.Series:
    """Candidate rule (a posteriori): an inferred common scale whose labels are off the grid of
    sixths and whose largest label is at least ``ratio`` times their median (from the scale's
    low end).

    Parameters
    ----------
    df : pandas.DataFrame
    ratio : float

    Returns
    -------
    pandas.Series of bool
    """
    return df["common"] & ~df["grid6"] & (df["ratio"] >= ratio)


def rule_whole(df: pd.DataFrame, ratio: float = 10.0) -> pd.Series:
    """Candidate rule: an inferred (0, 100) of whole numbers whose largest label is at least
    ``ratio`` times their median.

    Parameters
    ----------
    df : pandas.DataFrame
    ratio : float

    Returns
    -------
    pandas.Series of bool
    """
    return (df["scale"] == "(0, 100)") & df["whole"] & (df["ratio"] >= ratio)


def _levels(df: pd.DataFrame) -> pd.DataFrame:
    df = df if "run" in df else df.assign(run="direct")
    return df[df["policy"] != "*"]


def tables(df: pd.DataFrame, before: pd.DataFrame | None = None) -> list[str]:
    """Per (cell, run, policy): statuses and coverage as run, against the same seeds before.

    Parameters
    ----------
    df : pandas.DataFrame
        Replicate rows of this run.
    before : pandas.DataFrame, optional
        Replicate rows of the same cells and seeds with the package before the change.

    Returns
    -------
    list of str
    """
    lev = _levels(df)
    old = _levels(before) if before is not None else None
    out = ["| cell | run | policy | truth | reps | scales (share) | coverage | OK before: n, "
           "coverage | OK after: n, coverage | OK → CAUTION (share of OK before) | tail named |",
           "|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|"]
    for (cell, run, pol), g in lev.groupby(["cell", "run", "policy"], sort=False):
        ok = g["status"] == "OK"
        sc = g["scale"].where(g["common"], "range").value_counts(normalize=True)
        scales = ", ".join(f"{k} {v:.0%}" for k, v in sc.head(3).items())
        prev, flip = "—", "—"
        if old is not None:
            h = old[(old["cell"] == cell) & (old["run"] == run) & (old["policy"] == pol)]
            if len(h):
                m = h[["seed", "status", "covered"]].merge(g[["seed", "status"]], on="seed",
                                                           suffixes=("", "_new"))
                ok0 = m["status"] == "OK"
                n0 = int(ok0.sum())
                prev = f"{n0}, {_cov(m.loc[ok0, 'covered'].mean(), n0)}"
                nf = int((ok0 & (m["status_new"] != "OK")).sum())
                flip = f"{nf} ({_cov(nf / n0, n0) if n0 else '—'})"
        out.append(f"| {cell} | {run} | {pol} | {g['truth'].iloc[0]:.4g} | {len(g)} | {scales} | "
                   f"{_cov(g['covered'].mean(), len(g))} | {prev} | "
                   f"{int(ok.sum())}, {_cov(g.loc[ok, 'covered'].mean(), int(ok.sum()))} | "
                   f"{flip} | {g['tail_reason'].mean():.2f} |")
    n_err = int((df["status"] == "ERROR").sum())
    out += ["", f"Errors (whole analyses that raised): {n_err}."]
    return out


def candidates(before: pd.DataFrame) -> list[str]:
    """Candidate rules scored a posteriori on the rows before the change: OK levels each would
    turn into CAUTION, and the OK coverage left.

    Parameters
    ----------
    before : pandas.DataFrame

    Returns
    -------
    list of str
    """
    rules = {"off-grid, ≥10×": rule_amount, "off-grid, ≥5×": functools.partial(rule_amount, ratio=5.0),
             "whole (0, 100), ≥10×": rule_whole,
             "whole (0, 100), ≥5×": functools.partial(rule_whole, ratio=5.0)}
    lev = _levels(before)
    out = ["| cell | policy | OK | OK coverage | " + " | ".join(f"{k}: OK → CAUTION; OK left, "
                                                         "coverage" for k in rules) + " |",
           "|---|---|---:|---:|" + "---:|" * len(rules)]
    for (cell, pol), g in lev.groupby(["cell", "policy"], sort=False):
        ok = g["status"] == "OK"
        row = (f"| {cell} | {pol} | {int(ok.sum())} | "
               f"{_cov(g.loc[ok, 'covered'].mean(), int(ok.sum()))} |")
        for fn in rules.values():
            hit = fn(g)
            ok2 = ok & ~hit
            row += (f" {int((ok & hit).sum())}; {int(ok2.sum())}, "
                    f"{_cov(g.loc[ok2, 'covered'].mean(), int(ok2.sum()))} |")
        out.append(row)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--only", default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "independent_kpi2.parquet")
    ap.add_argument("--before", type=Path, default=None,
                    help="rows of the same run with the package before the change")
    ap.add_argument("--from-parquet", action="store_true", help="re-score stored rows only")
    ns = ap.parse_args()
    t0 = time.perf_counter()
    if ns.from_parquet:
        df = pd.read_parquet(ns.out)
    else:
        grid = [(i, c) for i, c in enumerate(cells()) if ns.only is None or ns.only in name(c)]
        frames = []
        for i, c in grid:
            res = Parallel(n_jobs=ns.n_jobs)(delayed(replicate)(200000 + 100000 * i + r, c)
                                             for r in range(ns.reps))
            frames.append(pd.DataFrame([row for rr in res for row in rr]).assign(cell=name(c)))
            print(f"{name(c)} {time.perf_counter() - t0:.0f}s", flush=True)
        df = pd.concat(frames, ignore_index=True)
        df.to_parquet(ns.out, index=False)
    before = pd.read_parquet(ns.before) if ns.before else None
    print("\n".join(tables(df, before)))
    if before is not None:
        print("\n" + "\n".join(candidates(before)))
    print(f"runtime {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
