"""Check: coverage and statuses when the oracle outcome is a KPI — a rare event, a heavy-tailed
amount or a count — on a process built without ``cje.synthetic``.

Earlier checks used bounded, fairly symmetric labels (0–1, 1–5, 1–10). Here the oracle label is
what a business would measure: a rare conversion, revenue, time saved, a count of incidents.

**Process.** Prompt ``i`` has a difficulty ``d_i ~ N(0, 0.5²)`` shared by every policy; policy
``p``'s response to it has latent quality ``Z = μ_p + d_i + ξ``, ``ξ ~ N(0, 0.75)`` (so
``Z ~ N(μ_p, 1)`` over prompts and responses). The oracle outcome depends on
``W = Z + ε``, ``ε ~ N(0, 0.5²)``, ``W ~ N(μ_p, τ²)``, ``τ² = 1.25`` (what only the oracle sees);
the judge reads ``Z + η``, ``η ~ N(0, σ_J²)``: ``informative`` ``σ_J = 0.5`` (within-policy
correlation of ``S`` with ``Z`` 0.89), ``weak`` ``σ_J = 2`` (0.45), and scores
``S = clip(round(5 + 1.5 (Z + η), 1), 0, 10)`` (one decimal, judge scale 0–10). Outcomes, with
``x = W/τ ~ N(δ_p, 1)``, ``δ_p = μ_p/τ``:

* ``binary`` rare event: ``Y = 1[x > c]``, ``c`` set so that policy A's rate is 0.01, 0.03 or
  0.10; truth ``Φ(δ_p − c)``.
* ``lognormal``: revenue ``Y = 10·exp(σ x)``, ``σ`` 1 or 2; truth ``10·exp(σ δ_p + σ²/2)``.
* ``pareto``: ``Y = 10·((1 − Φ(x))^(−1/α) − 1)`` (a Lomax amount with tail index ``α`` 2.5 or
  1.5 for A; infinite variance at 1.5); truth ``10·(∫ (1 − Φ(x))^(−1/α) φ(x − δ_p) dx − 1)`` by
  adaptive quadrature (exact for A: ``10/(α − 1)``).
* ``zeroinf``: time saved, zero on 80% of A's responses: ``Y = 1[x > c₀]·10·exp(x − c₀)``,
  ``Φ(c₀) = 0.8``; truth ``10·exp(δ_p − c₀ + ½)·Φ(δ_p + 1 − c₀)``.
* ``poisson`` counts: ``Y ~ Poisson(λ exp(0.5 x))``, ``λ`` such that A's mean is 0.2 or 3; truth
  ``λ exp(0.5 δ_p + 0.125)``.

Each truth is checked against 10⁷ draws of the process (``--check-truth``; errors in the page).

**Direct cells.** Three policies answer every prompt once: ``A`` (``μ = 0``), ``C`` (``μ = 0``,
A's twin: the pair A–C is truly equal) and ``B`` (``μ = 0.3``: better). Each row is labelled
MCAR with probability ``p_L`` (5%, 10% or 25%). ``cje.analyze(df, judge_scale=(0, 10),
label_scale=...)`` with its defaults; the label scale is either not given (``inferred``: cje
takes the narrowest common scale holding the labels, else their observed range), declared
``(0, 1)`` for binary labels, or declared huge, ``(0, 10⁶)``, for amounts.

**Off-policy cell.** The logging policy is A; the targets ``T1`` and ``T2`` draw ``ξ ~
N(δ_T, 0.75)`` with ``δ_T = 0.35`` and ``0.6`` (population raw-weight ESS ``exp(−δ²/0.75)``:
85% and 62%) and the log-probabilities passed are the exact Gaussian log-densities of ``ξ``
(minus 20 nats). 10% of the logged rows are labelled; one fresh draw per prompt of each target
(judge scores only) is passed for the DR family (``estimator="auto"``: stacked DR); the same
logged data without fresh draws give the IPS family (``"auto"``: calibrated IPS). Outcome
lognormal ``σ = 1`` (or zero-inflated).

Scored per (cell, policy): coverage of the 95% interval (all, and the OK ones), bias, mean width,
OK / CAUTION / REFUSED / error shares; per pair (direct): contrast coverage, how often a
significant difference is claimed for the equal pair A–C (false "Better") or in the wrong
direction for B–A, and how often such a claim has both levels OK. MC SE of a coverage ``c`` over
``r`` intervals: ``sqrt(c(1 − c)/r)``. Seeds ``100000·cell + r``. Writes
``simulations/results/independent_kpi.md`` (tables; the reading above "# Tables" is written by
hand and kept when the page is rewritten; the committed page also holds the tables before the
label-range gate) and the replicate rows to ``independent_kpi.parquet`` beside it (git-ignored).

Usage::

    python simulations/independent_kpi.py [--reps 400] [--n-jobs 1] [--only SUBSTR] [--time-only]
    python simulations/independent_kpi.py --check-truth
"""

from __future__ import annotations

import argparse
import functools
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import integrate, special, stats

import cje

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "independent_kpi.md"

SD_D, VAR_XI, SD_EPS = 0.5, 0.75, 0.5
TAU = math.sqrt(1.0 + SD_EPS**2)
MU = {"A": 0.0, "B": 0.3, "C": 0.0}
JUDGE_SD = {"informative": 0.5, "weak": 2.0}
OFF_TARGETS = {"T1": 0.35, "T2": 0.6}
SHIFT = 20.0
HUGE = (0.0, 1e6)
C0 = float(stats.norm.ppf(0.8))  # zero-inflated threshold (80% zeros for A)


def _poisson_lambda(mean_a: float) -> float:
    return mean_a / math.exp(0.125)


@functools.cache
def truth(kpi: str, par: float, mu: float) -> float:
    """Exact population mean of the outcome for a policy with latent shift ``mu``.

    Parameters
    ----------
    kpi : str
        ``"binary"``, ``"lognormal"``, ``"pareto"``, ``"zeroinf"`` or ``"poisson"``.
    par : float
        The KPI's parameter: A's event rate (binary), ``σ`` (lognormal), tail index ``α``
        (pareto), A's mean (poisson); unused for zeroinf.
    mu : float
        The policy's latent shift ``μ_p``.

    Returns
    -------
    float
    """
    d = mu / TAU
    if kpi == "binary":
        c = float(stats.norm.isf(par))
        return float(stats.norm.sf(c - d))
    if kpi == "lognormal":
        return 10.0 * math.exp(par * d + par * par / 2)
    if kpi == "zeroinf":
        return 10.0 * math.exp(d - C0 + 0.5) * float(stats.norm.cdf(d + 1.0 - C0))
    if kpi == "poisson":
        return _poisson_lambda(par) * math.exp(0.5 * d + 0.125)
    if kpi == "pareto":
        f = lambda x: math.exp(-stats.norm.logsf(x) / par - 0.5 * (x - d) ** 2) / math.sqrt(2 * math.pi)  # noqa: E731
        val = sum(integrate.quad(f, a, b, limit=400, epsabs=1e-13, epsrel=1e-11)[0]
                  for a, b in ((-np.inf, -5), (-5, 0), (0, 5), (5, 15), (15, 40), (40, np.inf)))
        return 10.0 * (val - 1.0)
    raise ValueError(kpi)


def outcome(rng: np.random.Generator, kpi: str, par: float, x: np.ndarray) -> np.ndarray:
    """Draw the outcome ``Y`` given ``x = W/τ``.

    Parameters
    ----------
    rng : numpy.random.Generator
    kpi : str
    par : float
    x : numpy.ndarray

    Returns
    -------
    numpy.ndarray
    """
    if kpi == "binary":
        return (x > stats.norm.isf(par)).astype(float)
    if kpi == "lognormal":
        return 10.0 * np.exp(par * x)
    if kpi == "zeroinf":
        return np.where(x > C0, 10.0 * np.exp(np.minimum(x, 50.0) - C0), 0.0)
    if kpi == "poisson":
        return rng.poisson(_poisson_lambda(par) * np.exp(0.5 * x)).astype(float)
    if kpi == "pareto":
        return 10.0 * np.expm1(-special.log_ndtr(-x) / par)
    raise ValueError(kpi)


def _responses(rng, d, mu, xi_sd, kpi, par, judge_sd):
    n = len(d)
    z = mu + d + xi_sd * rng.standard_normal(n)
    w = z + SD_EPS * rng.standard_normal(n)
    y = outcome(rng, kpi, par, w / TAU)
    s = np.clip(np.round(5.0 + 1.5 * (z + judge_sd * rng.standard_normal(n)), 1), 0.0, 10.0)
    return z, s, y


def make_direct(seed: int, cell: dict) -> pd.DataFrame:
    """One direct replicate: policies A, B, C on ``n`` shared prompts, labels MCAR at ``p_L``.

    Parameters
    ----------
    seed : int
    cell : dict
        ``kpi``, ``par``, ``judge``, ``n``, ``pl``.

    Returns
    -------
    pandas.DataFrame
    """
    rng = np.random.default_rng(seed)
    n = cell["n"]
    d = SD_D * rng.standard_normal(n)
    pid = np.array([f"p{i}" for i in range(n)])
    parts = []
    for p in ("A", "B", "C"):
        _, s, y = _responses(rng, d, MU[p], math.sqrt(VAR_XI), cell["kpi"], cell["par"],
                             JUDGE_SD[cell["judge"]])
        lab = rng.random(n) < cell["pl"]
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _logdens(xi: np.ndarray, delta: float) -> np.ndarray:
    return -0.5 * (xi - delta) ** 2 / VAR_XI - 0.5 * math.log(2 * math.pi * VAR_XI) - SHIFT


def make_logged(seed: int, cell: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One off-policy replicate: A's logged rows with exact log-densities, targets' fresh draws.

    Parameters
    ----------
    seed : int
    cell : dict
        ``kpi``, ``par``, ``judge``, ``n``, ``pl``.

    Returns
    -------
    (DataFrame, DataFrame)
    """
    rng = np.random.default_rng(seed)
    n = cell["n"]
    d = SD_D * rng.standard_normal(n)
    pid = np.array([f"p{i}" for i in range(n)])
    jsd = JUDGE_SD[cell["judge"]]
    z, s, y = _responses(rng, d, 0.0, math.sqrt(VAR_XI), cell["kpi"], cell["par"], jsd)
    xi = z - d
    lab = rng.random(n) < cell["pl"]
    logged = pd.DataFrame({"prompt_id": pid, "policy": "A", "judge_score": s,
                           "oracle_label": np.where(lab, y, np.nan),
                           "logprob_base": _logdens(xi, 0.0)})
    fresh = []
    for t, delta in OFF_TARGETS.items():
        logged[f"logprob[{t}]"] = _logdens(xi, delta)
        _, st, _ = _responses(rng, d, delta, math.sqrt(VAR_XI), cell["kpi"], cell["par"], jsd)
        fresh.append(pd.DataFrame({"prompt_id": pid, "policy": t, "judge_score": st}))
    return logged, pd.concat(fresh, ignore_index=True)


def _skew(v: pd.Series) -> float:
    """Sample skewness ``g1`` of the labelled values (NaN below 3 labels or with no spread)."""
    x = v.dropna().to_numpy(float)
    if x.size < 3 or np.ptp(x) == 0:
        return float("nan")
    c = x - x.mean()
    return float(np.mean(c**3) / np.mean(c**2) ** 1.5)


def _scale(cell: dict):
    return {"inferred": None, "unit": (0.0, 1.0), "huge": HUGE}[cell["scale"]]


def _est_row(seed, e, t, lo_hi):
    g = e.diagnostics
    return {"seed": seed, "policy": e.policy, "method": e.method, "estimate": e.estimate,
            "truth": t, "se": e.se, "ci_low": e.ci_low, "ci_high": e.ci_high, "df": e.df,
            "covered": bool(e.ci_low <= t <= e.ci_high), "status": e.status,
            "n_labels": e.n_labels, "var_cal": e.var_cal, "var_if": e.var_if,
            "clipped": bool(g.get("interval_clipped", False)),
            "scale_lo": lo_hi[0], "scale_hi": lo_hi[1], "reason": " | ".join(e.reasons)[:400]}


def replicate(seed: int, cell: dict) -> list[dict]:
    """Analyse one replicate and score every policy (and direct contrasts) against the truth.

    Parameters
    ----------
    seed : int
    cell : dict

    Returns
    -------
    list of dict
        One row per policy (``kind="level"``) and per contrast (``kind="pair"``).
    """
    kpi, par = cell["kpi"], cell["par"]
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cell["design"] == "direct":
            data = make_direct(seed, cell)
            npos = data.groupby("policy")["oracle_label"].apply(lambda v: int((v > 0).sum()))
            nlab = data.groupby("policy")["oracle_label"].count()
            skew = data.groupby("policy")["oracle_label"].apply(_skew)
            runs = [("direct", dict(data=data))]
        else:
            logged, fresh = make_logged(seed, cell)
            npos = {"A": int((logged["oracle_label"] > 0).sum())}
            skew = {"A": _skew(logged["oracle_label"])}
            nlab = {"A": int(logged["oracle_label"].notna().sum())}
            runs = [("DR", dict(data=logged, fresh_draws=fresh)), ("IPS", dict(data=logged))]
        for tag, kw in runs:
            try:
                rep = cje.analyze(judge_scale=(0.0, 10.0), label_scale=_scale(cell), **kw)
            except Exception as exc:  # e.g. all labels equal: recorded, not hidden
                out.append({"seed": seed, "run": tag, "kind": "level", "policy": "*",
                            "status": "ERROR", "error": type(exc).__name__,
                            "reason": str(exc)[:300], "npos": int(sum(dict(npos).values()))})
                continue
            st = {e.policy: e for e in rep.estimates}
            for e in rep.estimates:
                mu = MU.get(e.policy, OFF_TARGETS.get(e.policy))
                r = _est_row(seed, e, truth(kpi, par, mu), rep.label_scale)
                r.update(run=tag, kind="level", npos=int(dict(npos).get(e.policy, -1)),
                         nlab_policy=int(dict(nlab).get(e.policy, -1)),
                         label_skew=float(dict(skew).get(e.policy, np.nan)),
                         common_scale=tuple(rep.label_scale) in cje.data.COMMON_SCALES
                         or cell["scale"] != "inferred")
                out.append(r)
            if cell["design"] == "direct":
                for c in rep.pairs:
                    a, b = c.policy_a, c.policy_b
                    t = truth(kpi, par, MU[a]) - truth(kpi, par, MU[b])
                    wrong = (c.significant and (t == 0 or np.sign(c.estimate) != np.sign(t)))
                    both_ok = st[a].status == "OK" and st[b].status == "OK"
                    out.append({"seed": seed, "run": tag, "kind": "pair", "policy": f"{a}-{b}",
                                "estimate": c.estimate, "truth": t, "ci_low": c.ci_low,
                                "ci_high": c.ci_high, "covered": bool(c.ci_low <= t <= c.ci_high),
                                "significant": bool(c.significant), "wrong_claim": bool(wrong),
                                "both_ok": both_ok, "status": "OK" if both_ok else "CAVEAT"})
    return out


def cells() -> list[dict]:
    """The settings swept (a fractional grid, chosen to fit about 20 minutes on one core).

    Returns
    -------
    list of dict
    """
    out = []
    d = dict(design="direct", judge="informative")
    # rare binary events: labelled positives per policy = rate * n * p_L
    for rate, n, pl in ((0.01, 1500, 0.05), (0.01, 1500, 0.10), (0.01, 1500, 0.25),
                        (0.03, 400, 0.10), (0.03, 400, 0.25), (0.03, 1500, 0.05),
                        (0.03, 1500, 0.10), (0.10, 400, 0.05), (0.10, 400, 0.10),
                        (0.10, 400, 0.25)):
        out.append({**d, "kpi": "binary", "par": rate, "n": n, "pl": pl, "scale": "unit"})
    for rate, n, pl in ((0.03, 1500, 0.10), (0.10, 400, 0.10)):
        out.append({**d, "judge": "weak", "kpi": "binary", "par": rate, "n": n, "pl": pl,
                    "scale": "unit"})
    # skewed amounts: inferred and huge declared scale
    for kpi, par in (("lognormal", 1.0), ("lognormal", 2.0), ("pareto", 2.5), ("pareto", 1.5),
                     ("zeroinf", 0.0)):
        for scale in ("inferred", "huge"):
            out.append({**d, "kpi": kpi, "par": par, "n": 500, "pl": 0.10, "scale": scale})
    for kpi, par in (("lognormal", 2.0), ("pareto", 1.5), ("zeroinf", 0.0)):
        out.append({**d, "kpi": kpi, "par": par, "n": 500, "pl": 0.05, "scale": "inferred"})
        out.append({**d, "kpi": kpi, "par": par, "n": 1500, "pl": 0.10, "scale": "inferred"})
    out.append({**d, "judge": "weak", "kpi": "lognormal", "par": 2.0, "n": 500, "pl": 0.10,
                "scale": "inferred"})
    # counts
    for par in (0.2, 3.0):
        out.append({**d, "kpi": "poisson", "par": par, "n": 500, "pl": 0.10, "scale": "inferred"})
    # off-policy
    for kpi, par in (("lognormal", 1.0), ("zeroinf", 0.0)):
        out.append({"design": "logged", "judge": "informative", "kpi": kpi, "par": par,
                    "n": 1000, "pl": 0.10, "scale": "inferred"})
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
    par = "" if c["kpi"] == "zeroinf" else f"({c['par']:g})"
    return (f"{c['design']}/{c['kpi']}{par}/{c['judge'][:4]}/n={c['n']}/pL={c['pl']:g}/"
            f"{c['scale']}")


def check_truth(n: int = 10_000_000, seed: int = 7) -> list[str]:
    """Compare every truth with a Monte Carlo mean of ``n`` draws of the process.

    Parameters
    ----------
    n : int
    seed : int

    Returns
    -------
    list of str
        Markdown lines.
    """
    rng = np.random.default_rng(seed)
    lines = ["| KPI | μ | exact | 10⁷-draw mean ± SE | z |", "|---|---:|---:|---:|---:|"]
    combos = [("binary", r) for r in (0.01, 0.03, 0.10)] + [("lognormal", 1.0), ("lognormal", 2.0),
                                                            ("pareto", 2.5), ("pareto", 1.5),
                                                            ("zeroinf", 0.0), ("poisson", 0.2),
                                                            ("poisson", 3.0)]
    for kpi, par in combos:
        for mu in sorted({*MU.values(), *OFF_TARGETS.values()}):
            z = mu + SD_D * rng.standard_normal(n) + math.sqrt(VAR_XI) * rng.standard_normal(n)
            y = outcome(rng, kpi, par, (z + SD_EPS * rng.standard_normal(n)) / TAU)
            m, se = y.mean(), y.std() / math.sqrt(n)
            t = truth(kpi, par, mu)
            lines.append(f"| {kpi}({par:g}) | {mu:g} | {t:.5g} | {m:.5g} ± {se:.2g} | "
                         f"{(m - t) / se:+.2f} |")
    return lines


def _cov(c: float, r: int) -> str:
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f}" if r else "—"


def summarise(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Level and contrast summaries per (cell, run, policy).

    Parameters
    ----------
    df : pandas.DataFrame

    Returns
    -------
    (DataFrame, DataFrame)
    """
    lev, prs = [], []
    for (cell, run, pol), g in df[df["kind"] == "level"].groupby(["cell", "run", "policy"],
                                                                   sort=False):
        if pol == "*":
            continue
        ok = g[g["status"] == "OK"]
        nerr = int(((df["cell"] == cell) & (df["run"] == run) & (df["status"] == "ERROR")).sum())
        lev.append({"cell": cell, "run": run, "policy": pol, "reps": len(g) + nerr,
                    "errors": nerr, "truth": g["truth"].iloc[0],
                    "coverage": g["covered"].mean(), "bias": (g["estimate"] - g["truth"]).mean(),
                    "rel_bias": (g["estimate"] - g["truth"]).mean() / g["truth"].iloc[0],
                    "width": (g["ci_high"] - g["ci_low"]).mean(),
                    "OK": (g["status"] == "OK").sum(), "CAUTION": (g["status"] == "CAUTION").sum(),
                    "REFUSED": (g["status"] == "REFUSED").sum(),
                    "ok_n": len(ok), "ok_cov": ok["covered"].mean() if len(ok) else float("nan"),
                    "ok_low_miss": int((ok["ci_high"] < ok["truth"]).sum()),
                    "ok_high_miss": int((ok["ci_low"] > ok["truth"]).sum()),
                    "caut_cov": g.loc[g["status"] == "CAUTION", "covered"].mean(),
                    "npos_mean": g["npos"].mean() if "npos" in g else float("nan")})
    for (cell, run, pol), g in df[df["kind"] == "pair"].groupby(["cell", "run", "policy"],
                                                                  sort=False):
        prs.append({"cell": cell, "run": run, "pair": pol, "reps": len(g), "truth": g["truth"].iloc[0],
                    "coverage": g["covered"].mean(), "ok_n": int(g["both_ok"].sum()),
                    "ok_cov": g.loc[g["both_ok"], "covered"].mean() if g["both_ok"].any() else
                    float("nan"), "significant": g["significant"].mean(),
                    "wrong": int(g["wrong_claim"].sum()),
                    "wrong_ok": int((g["wrong_claim"] & g["both_ok"]).sum())})
    return pd.DataFrame(lev), pd.DataFrame(prs)


def tables(df: pd.DataFrame) -> list[str]:
    """Markdown tables and automatic checks.

    Parameters
    ----------
    df : pandas.DataFrame

    Returns
    -------
    list of str
    """
    lev, prs = summarise(df)
    flags = lev[(lev["ok_n"] > 0) & (lev["ok_cov"] < 0.93)
                & ((0.93 - lev["ok_cov"]) > 2 * np.sqrt(lev["ok_cov"] * (1 - lev["ok_cov"])
                                                        / lev["ok_n"].clip(lower=1)))]
    out = ["## Automatic checks", "",
           f"- (cell, policy) pairs with any OK interval: {int((lev['ok_n'] > 0).sum())} of "
           f"{len(lev)}; OK coverage {lev['ok_cov'].min():.3f}–{lev['ok_cov'].max():.3f}.",
           f"- OK coverage below 0.93 by more than 2 MC SE: {len(flags)}"
           + (": " + "; ".join(f"{r.cell} [{r.run}] {r.policy} {_cov(r.ok_cov, r.ok_n)} "
                               f"({r.ok_n} OK)" for r in flags.itertuples()) if len(flags) else "")
           + ".",
           f"- Errors (whole analyses that raised): {int((df['status'] == 'ERROR').sum())}"
           + ("; " + "; ".join(f"{k}: {v}" for k, v in df[df['status'] == 'ERROR'].groupby(
               'cell').size().items()) if (df['status'] == 'ERROR').any() else "") + ".",
           "", "## Levels", "",
           "Coverage over every interval returned (errors excluded); OK: count and coverage of "
           "the OK intervals, with misses below / above the truth; npos: mean labelled positives "
           "(binary) or non-zero labels of the policy.", "",
           "| cell | run | policy | truth | reps (err) | coverage | bias (rel.) | width | OK | "
           "CAUT | REF | OK coverage (low/high misses) | CAUTION cov. | npos |",
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in lev.itertuples():
        reps_ok = r.reps - r.errors
        out.append(f"| {r.cell} | {r.run} | {r.policy} | {r.truth:.4g} | {r.reps} ({r.errors}) | "
                   f"{_cov(r.coverage, reps_ok)} | {r.bias:+.3g} ({r.rel_bias:+.1%}) | "
                   f"{r.width:.3g} | {r.OK} | {r.CAUTION} | {r.REFUSED} | "
                   f"{_cov(r.ok_cov, r.ok_n)} ({r.ok_low_miss}/{r.ok_high_miss}) | "
                   f"{r.caut_cov:.3f} | {r.npos_mean:.1f} |")
    if len(prs):
        out += ["", "## Paired contrasts (direct)", "",
                "wrong claims: significant (Holm) for the equal pair A–C, or in the wrong "
                "direction; of them with both levels OK.", "",
                "| cell | pair | truth | reps | coverage | both OK: n, coverage | significant | "
                "wrong claims (both OK) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for r in prs.itertuples():
            out.append(f"| {r.cell} | {r.pair} | {r.truth:+.4g} | {r.reps} | "
                       f"{_cov(r.coverage, r.reps)} | {r.ok_n}, {_cov(r.ok_cov, r.ok_n)} | "
                       f"{r.significant:.3f} | {r.wrong} ({r.wrong_ok}) |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--only", default=None, help="run only cells whose name contains this")
    ap.add_argument("--time-only", action="store_true", help="time 3 replicates per cell")
    ap.add_argument("--check-truth", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    ns = ap.parse_args()
    if ns.check_truth:
        print("\n".join(check_truth()))
        return
    grid = [(i, c) for i, c in enumerate(cells()) if ns.only is None or ns.only in name(c)]
    if ns.time_only:
        for i, c in grid:
            t0 = time.perf_counter()
            for s in range(3):
                replicate(100000 * i + s, c)
            print(f"{name(c)}: {(time.perf_counter() - t0) / 3:.2f} s/replicate", flush=True)
        return
    t0 = time.perf_counter()
    par = Parallel(n_jobs=ns.n_jobs)
    frames = []
    for i, c in grid:
        res = par(delayed(replicate)(100000 * i + r, c) for r in range(ns.reps))
        frames.append(pd.DataFrame([row for rr in res for row in rr]).assign(cell=name(c)))
        print(f"{name(c)} {time.perf_counter() - t0:.0f}s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    df.to_parquet(ns.out.with_suffix(".parquet"), index=False)
    body = tables(df)
    ns.out.parent.mkdir(parents=True, exist_ok=True)
    # keep the hand-written reading above "# Tables" when the page exists
    head = ns.out.read_text().split("# Tables\n", 1)[0] if ns.out.is_file() else ""
    ns.out.write_text(head + "\n".join(["# Tables", "", f"Command: `python simulations/independent_kpi.py "
                                 f"--reps {ns.reps} --n-jobs {ns.n_jobs}`; runtime "
                                 f"{time.perf_counter() - t0:.0f} s.", ""] + body) + "\n")
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
