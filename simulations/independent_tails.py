"""Check: off-policy coverage and statuses under UNBOUNDED weight tails, on a process built without
``cje.synthetic``.

``simulations/independent_dgps.py`` checks ``cje.analyze`` on an independent off-policy process
with bounded weights (12 discrete response types). Here the responses are continuous, so the
importance weights are unbounded, and for some targets their variance is infinite:

* **Prompts.** Difficulty ``d ~ N(0, 1)``; the logging policy's mean response quality on the
  prompt is ``mu0(x) = 0.3 − 0.5 d``.
* **Responses.** The logging policy draws a quality ``q ~ N(mu0(x), 1)``, a target
  ``q ~ N(mu0(x) + δ, s²)``. The log-probabilities passed to ``cje.analyze`` are these Gaussian
  log-densities (minus 20 nats, the same for every policy), so ``log w`` is exact. With ``u = q −
  mu0(x)`` the population raw-weight ESS is ``1/E₀[w²] = s √(2 − s²) exp(−δ²/(2 − s²))`` for
  ``s² < 2``; with ``s > 1`` the weights are unbounded with a Pareto-like tail of index
  ``s²/(s² − 1)`` (2.78 at ``s = 1.25``: finite variance, infinite third moment), and with
  ``s² ≥ 2`` the variance of ``w`` is infinite (population ESS 0). Targets: ``s = 1.25`` with ``δ``
  set for population ESS 50%, 25%, 10%, 5% and 3% (``t50`` … ``t3``), and ``s = 1.5``, ``δ = 0.5``
  (``tinf``: tail index 1.8, infinite variance).
* **Oracle label.** ``Y = σ(J + 0.6 ε)``, ``J = 1.2 q − 0.8 d + 0.6 η`` (``η``: what the judge and
  the oracle both see beyond ``q``; ``ε``: what only the oracle sees).
* **Judge.** A monotone but distorted, noisy reading of the oracle's signal on a 1–10 integer grid
  (ties): ``S = clip(round(1 + 9 σ(0.8 (J + b u) + 0.7)^1.5), 1, 10)``. Style ``consistent``:
  ``b = 0``, the judge reads the same signal for every policy, so ``E[Y | J]`` transports exactly
  (only the grid's ties make the logging calibration off by −0.002 to −0.004 on the targets).
  Style ``favours-target``: ``b = 1``, the judge adds a bonus for responses better than the
  logging policy's usual on the prompt — what the targets prefer — which the oracle ignores, so
  the calibration learned on logging rows over-rates the targets (+0.007 to +0.025, measured on
  200,000 rows; the ``calibration gap`` column).

1,000 logged prompts (one cell at 400), 10% MCAR oracle labels on the logged rows, one fresh draw
per prompt of the logging policy and of each target (passed as ``fresh_draws`` with a ``policy``
column, as ``independent_dgps.py`` does). ``cje.analyze`` with its defaults (``estimator="auto"``:
stacked DR with fresh draws). Truth ``E σ(N(0.36 + 1.2 δ, 1.96 + 1.44 s² + 0.72))`` by 80-point
Gauss–Hermite quadrature (within 1e-9 of adaptive quadrature), checked against a 10⁶-row Monte Carlo draw (its
error printed in the results). Coverage ``c`` over ``r`` intervals has MC SE ``sqrt(c(1 − c)/r)``.
Writes ``simulations/results/independent_tails.md`` (and the replicate rows to
``independent_tails.parquet`` beside it, git-ignored).

Usage::

    python simulations/independent_tails.py [--reps 1000] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

OUT = Path(__file__).resolve().parent / "results" / "independent_tails.md"

_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(80)
SHIFT = 20.0  # nats subtracted from every log-density (same for all policies: ratios exact)
S_LADDER = 1.25  # target spread of the ESS ladder
#: styles of judge -> bonus b on u = q − mu0(x)
STYLES = {"consistent": 0.0, "favours-target": 1.0}


def pop_ess(delta: float, s: float) -> float:
    """Population raw-weight ESS ``1/E₀[w²]`` of the target ``N(δ, s²)`` against ``N(0, 1)``.

    Parameters
    ----------
    delta, s : float
        The target's quality shift and spread (relative to the logging policy's).

    Returns
    -------
    float
        ``s √(2 − s²) exp(−δ²/(2 − s²))``; 0 when ``s² ≥ 2`` (infinite weight variance).
    """
    if s * s >= 2.0:
        return 0.0
    return float(s * np.sqrt(2.0 - s * s) * np.exp(-delta * delta / (2.0 - s * s)))


def _delta_for(ess: float, s: float) -> float:
    return float(np.sqrt(-(2.0 - s * s) * np.log(ess / (s * np.sqrt(2.0 - s * s)))))


#: target -> (δ, s)
TARGETS = {f"t{round(100 * e)}": (_delta_for(e, S_LADDER), S_LADDER) for e in (0.50, 0.25, 0.10, 0.05, 0.03)}
TARGETS["tinf"] = (0.5, 1.5)
POLICIES = {"base": (0.0, 1.0), **TARGETS}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def true_value(delta: float, s: float) -> float:
    """Exact value ``E Y`` of the policy ``N(mu0(x) + δ, s²)`` by Gauss–Hermite quadrature.

    Parameters
    ----------
    delta, s : float
        The policy's quality shift and spread.

    Returns
    -------
    float
        ``E σ(Z)``, ``Z ~ N(0.36 + 1.2 δ, 1.96 + 1.44 s² + 0.72)``.
    """
    mu, sd = 0.36 + 1.2 * delta, np.sqrt(1.96 + 1.44 * s * s + 0.72)
    return float((_GH_W * _sigmoid(mu + sd * _GH_X)).sum() / _GH_W.sum())


TRUTH = {p: true_value(*v) for p, v in POLICIES.items()}


def _responses(rng: np.random.Generator, d: np.ndarray, delta: float, s: float, b: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quality offsets ``u``, judge scores and oracle labels of one draw per prompt."""
    n = d.size
    mu0 = 0.3 - 0.5 * d
    u = delta + s * rng.standard_normal(n)
    j = 1.2 * (mu0 + u) - 0.8 * d + 0.6 * rng.standard_normal(n)
    y = _sigmoid(j + 0.6 * rng.standard_normal(n))
    score = np.clip(np.round(1.0 + 9.0 * _sigmoid(0.8 * (j + b * u) + 0.7) ** 1.5), 1, 10)
    return u, score, y


def _logdens(u: np.ndarray, delta: float, s: float) -> np.ndarray:
    return -0.5 * ((u - delta) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi) - SHIFT


def make_data(seed: int, style: str, n: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate: logged data (with exact log-probabilities) and the fresh draws.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    style : {"consistent", "favours-target"}
        The judge's style.
    n : int
        Logged prompts.

    Returns
    -------
    (DataFrame, DataFrame)
        Logged rows (``prompt_id, policy, judge_score, oracle_label, logprob_base,
        logprob[<target>]``) and fresh draws (``prompt_id, policy, judge_score``).
    """
    b = STYLES[style]
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(n)
    pid = np.array([f"x{i}" for i in range(n)])
    u, score, y = _responses(rng, d, 0.0, 1.0, b)
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": score,
                           "oracle_label": np.where(rng.random(n) < 0.10, y, np.nan),
                           "logprob_base": _logdens(u, 0.0, 1.0)})
    for name, (delta, s) in TARGETS.items():
        logged[f"logprob[{name}]"] = _logdens(u, delta, s)
    fresh = pd.concat([pd.DataFrame({"prompt_id": pid, "policy": name,
                                     "judge_score": _responses(rng, d, delta, s, b)[1]})
                       for name, (delta, s) in POLICIES.items()], ignore_index=True)
    return logged, fresh


def replicate(seed: int, style: str, n: int = 1000, estimator: str = "auto", fresh: bool = True
              ) -> list[dict]:
    """Run ``cje.analyze`` (defaults) on one replicate and score every policy against the truth.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    style : {"consistent", "favours-target"}
        The judge's style.
    n : int
        Logged prompts.
    estimator : str
        Passed to ``cje.analyze`` (``"auto"`` is its default).
    fresh : bool
        Pass the fresh draws (``False``: logged data alone; ``"auto"`` is then calibrated IPS).

    Returns
    -------
    list of dict
        One row per policy: estimate, truth, coverage, status, width and the overlap
        diagnostics the gates read.
    """
    logged, draws = make_data(seed, style, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(logged, fresh_draws=draws if fresh else None, estimator=estimator,
                          judge_scale=(1, 10), label_scale=(0, 1))
    rows = []
    for e in rep.estimates:
        if e.policy not in TRUTH:
            continue
        g = e.diagnostics
        rows.append({"seed": seed, "style": style, "n": n, "estimator": estimator, "policy": e.policy,
                     "method": e.method,
                     "estimate": e.estimate, "truth": TRUTH[e.policy], "se": e.se,
                     "covered": bool(e.ci_low <= TRUTH[e.policy] <= e.ci_high), "status": e.status,
                     "width": e.ci_high - e.ci_low, "var_if": e.var_if, "var_cal": e.var_cal,
                     "var_transport": e.var_transport,
                     "ess_raw": g.get("ess_raw", np.nan), "hill_raw": g.get("hill_raw", np.nan),
                     "ttc": g.get("ttc", np.nan), "mean_raw_weight": g.get("mean_raw_weight", np.nan),
                     "mean_raw_weight_se": g.get("mean_raw_weight_se", np.nan),
                     "max_weight_raw": g.get("max_weight_raw", np.nan),
                     "residual_weights": g.get("residual_weights", ""),
                     "reasons": " | ".join(e.reasons)})
    return rows


def calibration_gap(style: str, n: int = 200_000, seed: int = 12345) -> dict[str, float]:
    """How far the logging policy's population calibration misses each target's value.

    ``E_target[f₀(S)] − E_target[Y]`` with ``f₀(s) = E_logging[Y | S = s]``, both on ``n`` rows.

    Parameters
    ----------
    style : {"consistent", "favours-target"}
        The judge's style.
    n : int
        Rows per policy.
    seed : int
        Seed.

    Returns
    -------
    dict
        Target -> gap (label units).
    """
    rng = np.random.default_rng(seed)
    b = STYLES[style]
    _, s0, y0 = _responses(rng, rng.standard_normal(n), 0.0, 1.0, b)
    f0 = pd.Series(y0).groupby(s0).mean()
    out = {}
    for name, (delta, s) in TARGETS.items():
        _, s1, y1 = _responses(rng, rng.standard_normal(n), delta, s, b)
        out[name] = float(np.nanmean(f0.reindex(s1).to_numpy()) - y1.mean())
    return out


def mc_truth_check(n: int = 1_000_000, seed: int = 777) -> dict[str, tuple[float, float]]:
    """A 10⁶-row Monte Carlo value of each policy, with its MC SE, to check the quadrature.

    Parameters
    ----------
    n : int
        Rows per policy.
    seed : int
        Seed.

    Returns
    -------
    dict
        Policy -> (MC mean of ``Y``, its MC SE).
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, (delta, s) in POLICIES.items():
        y = _responses(rng, rng.standard_normal(n), delta, s, 0.0)[2]
        out[name] = (float(y.mean()), float(y.std(ddof=1) / np.sqrt(n)))
    return out


# ------------------------------------------------------------------ scoring
def _cov(x: pd.Series) -> str:
    if len(x) == 0:
        return "— (0)"
    c = x.mean()
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / len(x)):.3f} ({len(x)})"


def summarise(df: pd.DataFrame) -> list[str]:
    """Markdown table of one cell: coverage, bias, statuses and the coverage of the OK intervals.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`replicate` for one cell.

    Returns
    -------
    list of str
    """
    lines = ["| policy | pop. ESS | sample ESS (median) | coverage ± MC SE | bias ± MC SE | mean width | "
             "OK / CAUTION / REFUSED | coverage of the OK ones (count) | "
             "coverage of the not-OK ones (count) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = list(POLICIES)
    for pol in sorted(df["policy"].unique(), key=order.index):
        g = df[df["policy"] == pol]
        c, r = g["covered"].mean(), len(g)
        err = g["estimate"] - g["truth"]
        st = g["status"].value_counts(normalize=True)
        ok = g["status"] == "OK"
        lines.append(
            f"| {pol} | {pop_ess(*POLICIES[pol]):.0%} | "
            f"{'—' if g['ess_raw'].isna().all() else format(g['ess_raw'].median(), '.1%')} | "
            f"{c:.3f} ± {np.sqrt(c * (1 - c) / r):.3f} | "
            f"{err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(r):.4f} | "
            f"{g['width'].mean():.3f} | {st.get('OK', 0):.2f} / {st.get('CAUTION', 0):.2f} / "
            f"{st.get('REFUSED', 0):.2f} | {_cov(g.loc[ok, 'covered'])} | {_cov(g.loc[~ok, 'covered'])} |")
    return lines


#: (estimator, judge style, logged prompts, share of --reps): the default first, then the default
#: without fresh draws (calibrated IPS) and the other estimators ``cje.analyze`` offers.
CELLS = [("auto", "consistent", 1000, 1.0), ("auto", "favours-target", 1000, 1.0),
         ("auto", "consistent", 400, 1.0), ("auto", "favours-target", 400, 1.0),
         ("calibrated-ips", "consistent", 1000, 1.0), ("calibrated-ips", "favours-target", 1000, 1.0),
         ("calibrated-ips", "consistent", 400, 1.0), ("calibrated-ips", "favours-target", 400, 1.0),
         ("snips", "consistent", 1000, 1.0), ("snips", "consistent", 400, 1.0),
         ("dr-cpo", "favours-target", 1000, 0.5), ("tmle", "favours-target", 1000, 0.5),
         ("mrdr", "favours-target", 1000, 0.5)]


def flags(df: pd.DataFrame) -> list[tuple[str, str, int, str, float, float, int]]:
    """(cell, policy) pairs whose OK intervals cover below 0.93 by more than 2 MC SE.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`replicate` for every cell.

    Returns
    -------
    list of tuple
        ``(estimator, style, n, policy, coverage of the OK ones, its MC SE, their count)``.
    """
    out = []
    ok = df[df["status"] == "OK"]
    for (est, style, n, pol), g in ok.groupby(["estimator", "style", "n", "policy"], sort=False):
        c, r = g["covered"].mean(), len(g)
        se = np.sqrt(c * (1 - c) / r)
        if c < 0.93 - 2 * se:
            out.append((est, style, int(n), pol, float(c), float(se), r))
    return out


def mechanism(df: pd.DataFrame) -> list[str]:
    """Markdown table: the weighting estimators' OK and not-OK samples side by side.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`replicate` for every cell.

    Returns
    -------
    list of str
    """
    lines = ["| estimator, judge, n | target | status | count | coverage | misses below / above | "
             "bias | mean z | SD(error) / mean SE | median raw ESS | median Hill | median m | "
             "median largest weight |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    w = df[df["estimator"].isin(["calibrated-ips", "snips"]) & (df["policy"] != "base")]
    for (est, style, n, pol), g in w.groupby(["estimator", "style", "n", "policy"], sort=False):
        for lab, h in (("OK", g[g["status"] == "OK"]), ("not OK", g[g["status"] != "OK"])):
            if len(h) == 0:
                continue
            err = h["estimate"] - h["truth"]
            miss = h[~h["covered"]]
            low = int((miss["estimate"] < miss["truth"]).sum())
            lines.append(
                f"| {est}, {style}, {n} | {pol} | {lab} | {len(h)} | {h['covered'].mean():.3f} | "
                f"{low} / {len(miss) - low} | {err.mean():+.4f} | {(err / h['se']).mean():+.2f} | "
                f"{err.std(ddof=1) / h['se'].mean():.2f} | {h['ess_raw'].median():.2f} | "
                f"{h['hill_raw'].median():.2f} | {h['mean_raw_weight'].median():.3f} | "
                f"{h['max_weight_raw'].median():.1f} |")
    return lines


def counterfactual_gate(df: pd.DataFrame, zs: tuple[float, ...] = (1.0, 1.5, 2.0)) -> list[str]:
    """Markdown table: the weighting estimators' OK share and OK coverage if a sample whose mean
    raw weight ``m`` lies more than ``z`` standard errors below 1 were CAUTION as well.

    Computed on the same replicates as the finding (the threshold is not validated by them).

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`replicate` for every cell.
    zs : tuple of float
        Thresholds.

    Returns
    -------
    list of str
    """
    head = " | ".join(f"m ≥ 1 − {z:g}·SE: OK share, coverage of OK" for z in zs)
    lines = [f"| estimator, judge, n | target | now: OK share, coverage of OK | {head} |",
             "|---|---|---|" + "---|" * len(zs)]
    w = df[df["estimator"].isin(["calibrated-ips", "snips"]) & (df["policy"] != "base")]
    for (est, style, n, pol), g in w.groupby(["estimator", "style", "n", "policy"], sort=False):
        z = (g["mean_raw_weight"] - 1.0) / g["mean_raw_weight_se"]
        ok = g["status"] == "OK"
        cells = [f"{ok.mean():.2f}, {_cov(g.loc[ok, 'covered'])}"]
        for zz in zs:
            keep = ok & (z >= -zz)
            cells.append(f"{keep.mean():.2f}, {_cov(g.loc[keep, 'covered'])}")
        lines.append(f"| {est}, {style}, {n} | {pol} | " + " | ".join(cells) + " |")
    return lines


def render(allrows: pd.DataFrame, command: str, runtime: float) -> list[str]:
    """The results page (markdown lines) from the replicate rows.

    Parameters
    ----------
    allrows : DataFrame
        Rows of :func:`replicate` for every cell of :data:`CELLS`.
    command : str
        The command that produced them.
    runtime : float
        Seconds the replicates took.

    Returns
    -------
    list of str
    """
    mc = mc_truth_check()
    gaps = {st: calibration_gap(st) for st in STYLES}
    out = ["# Independent process with unbounded weight tails — coverage and statuses", "",
           f"Command: `{command}`.",
           "Design: see the module docstring of `simulations/independent_tails.py` (numpy only, not "
           "`cje.synthetic`); `cje.analyze` with its defaults (estimator `auto` = stacked DR with "
           "fresh draws), then calibrated IPS (the default without fresh draws), SNIPS and the other DR "
           "estimators on the same replicates (same seeds per style and n); exact truth. Seeds 0.. per "
           "cell. The process was fixed before the first `cje` run and not tuned to the results.", "",
           "## Targets", "",
           "| policy | δ | s | pop. raw-weight ESS | weight tail index | truth (quadrature) | "
           "10⁶-row MC check ± MC SE | calibration gap, consistent | calibration gap, favours-target |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p, (delta, s) in POLICIES.items():
        tail = "—" if s <= 1 else f"{s * s / (s * s - 1):.2f}"
        gc = f"{gaps['consistent'][p]:+.4f}" if p in gaps["consistent"] else ""
        gf = f"{gaps['favours-target'][p]:+.4f}" if p in gaps["favours-target"] else ""
        out.append(f"| {p} | {delta:.3f} | {s:g} | {pop_ess(delta, s):.1%} | {tail} | {TRUTH[p]:.5f} | "
                   f"{mc[p][0]:.5f} ± {mc[p][1]:.5f} | {gc} | {gf} |")
    out += ["", "`calibration gap`: the logging policy's population calibration `E_logging[Y | S]` "
            "averaged over the target's scores, minus the truth (200,000 rows each): what a DR or "
            "weighted estimate is off by if its oracle residual term corrects nothing. The MC check "
            "draws 10⁶ rows per policy (seed 777); its differences from the quadrature are within "
            "3 MC SE."]
    for est, style, n, _ in CELLS:
        df = allrows[(allrows["estimator"] == est) & (allrows["style"] == style) & (allrows["n"] == n)]
        out += ["", f"## {est}, judge {style}, n = {n} ({df['seed'].nunique()} replicates)", ""]
        out += summarise(df)
    bad = flags(allrows)
    out += ["", "## OK intervals covering below 0.93 by more than 2 MC SE", ""]
    out += [f"- {e}, judge {st}, n = {n}, {p}: {c:.3f} ± {se:.3f} over {r} OK intervals"
            for e, st, n, p, c, se, r in bad] or ["- none"]
    out += ["", "## The weighting estimators' OK samples next to the others", "",
            "`mean z`: mean of (estimate − truth)/SE; `m`: the mean raw weight `mean(exp(λ))` "
            "(expectation 1 with correct log-probabilities); `Hill`: the raw weights' Hill index.", ""]
    out += mechanism(allrows)
    out += ["", "## A candidate gate, measured on the same replicates", "",
            "OK share and coverage of the OK intervals (± MC SE, count) if the weighting estimators were "
            "also CAUTION when the mean raw weight is more than z standard errors below 1 "
            "(`mean_raw_weight < 1 − z · mean_raw_weight_se`). Not implemented: the threshold is read "
            "off these replicates.", ""]
    out += counterfactual_gate(allrows)
    out += ["", READING, "", f"Runtime: {runtime:.0f} s of replicates on one core.", ""]
    return out


#: The reading of the results (written after the run of 2026-12-07, 1,000 replicates per cell).
READING = """## Reading

- **The default (stacked DR with fresh draws) and every DR estimator: no wrong OK.** Their OK
  intervals cover 0.951–0.990 in every cell, with the consistent judge and with the judge that
  favours the targets, at n = 1,000 and 400, including the infinite-variance target `tinf`
  (0.962–0.966). The level comes from the targets' fresh draws; the weights enter through the
  correction terms, whose oracle residual part has its variance taken from every logged row's
  weight below 30% raw ESS. At 3–10% population ESS they cover 0.960–0.992 overall (conservative
  with the consistent judge), and 17–55% of them are CAUTION, almost all by the DR ESS gate (20%),
  although the samples look far better than the population (median raw ESS 18–35% at population
  ESS 3–10%; 40–49% for `tinf`, whose population ESS is 0).
- **The weighting estimators (calibrated IPS — the default without fresh draws — and SNIPS):
  wrong OKs before the mean-raw-weight gate, none with it.** Unconditionally their intervals cover
  0.946–0.979. In the first run of this script (commit 3eb29e4, before the gate) the ones marked OK
  covered 0.78–0.89 at population ESS 3–10% and for `tinf` with the consistent judge and 1,000
  prompts (0.83–0.93 with 400), all but a handful of the misses below the truth; 0.84–0.95 with
  the judge that favours the targets. With the gate the package now applies (tables above) the
  OK intervals of both cover 0.946–1.000 in every cell, at the price of OK share: 0.73 instead of
  0.86 at 50% population ESS, 0.35 instead of 0.48 at 25%, 0.08 instead of 0.18 at 10% (n = 1,000).
- **Mechanism (before the gate): the gates selected the samples that missed the tail.** With a
  polynomial weight tail (index 2.78 or 1.8) a logged sample that drew few of the target's rare
  high-weight responses has a *higher* raw ESS (at `t3`–`t10` and `tinf`, median 0.34–0.61 among the
  OK samples against 0.18–0.42 among the others), a larger Hill index (2.1–2.3 against 1.6–1.8), a
  smaller largest weight and a mean raw weight `m` below 1 (median 0.88–0.95 against 0.98–1.01). So
  it passes the weighting gates (raw ESS ≥ 30%, Hill ≥ 2, TTC ≥ 0.3, `m` in [0.5, 10]) exactly when
  its Hájek estimate is pulled toward the logging policy's value: the OK estimates are biased by
  −0.017 to −0.040 (mean z −0.6 to −1.5), while the spread of their errors is *not* larger than
  their SE (SD/SE 0.84–1.08). It is a conditional bias created by the gates, not a too-small
  variance term: the reward term's influence values `w (R − ψ_R)` are the right variance for the
  rows seen, and `tail_inflation` (which acts only on the oracle residual term, and only below 30%
  raw ESS) is not involved. A stricter ESS or Hill threshold does not help — it selects samples that
  missed more of the tail (from the saved replicates: the OK intervals of `tinf` with raw ESS ≥ 50%
  cover 0.86–0.92; with Hill ≥ 3 almost no sample stays OK at 3–10% ESS, and 4–17% at 50%).
- **The fix, adopted** (`cje.diagnostics.gates.MEAN_WEIGHT_DEFICIT_Z`): the unnormalised mean
  weight `m` is the one statistic whose expectation is known (1), and a sample that missed tail
  mass shows `m < 1`; the weighting family is CAUTION when `m < 1 − 1.5·SE(m)`. The 1.5 was read
  off this script's first run. The support gate's documentation had rejected a z-test on `m` for
  *refusing* (it fires in up to a third of correct samples under heavy tails); as a CAUTION for
  the weighting family those are the samples to caution. Checked outside these replicates in
  `independent_tails_gate_check.md` (calibrated IPS): on fresh seeds of this process the OK
  intervals covered 0.60–0.90 at `t3`–`tinf` without the gate and 0.957–1.000 with it; on bounded
  weights (`independent_dgps.py`, `make_tail_eval`) the 50%-ESS targets lose 7 points of OK share
  and still cover. **Where it stops working: the package's own `make_offpolicy_eval`**
  (log-normal weights): at 25% population ESS the OK intervals of calibrated IPS covered
  0.867 ± 0.028 (150 of 600, n = 1,000) and 0.865 ± 0.035 (96 of 300, n = 500) without the gate
  and 0.920 ± 0.027 and 0.941 ± 0.029 with it. No pinned status of `tests/test_offpolicy_pinned.py`
  moved; three estimates already CAUTION (`continuous` `far`) gained the reason."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000,
                    help="replicates per cell (half for dr-cpo, tmle, mrdr)")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--render-only", action="store_true",
                    help="rewrite the page from the saved replicates (independent_tails.parquet)")
    ns = ap.parse_args()
    command = f"python simulations/independent_tails.py --reps {ns.reps} --n-jobs {ns.n_jobs}"
    if ns.render_only:
        allrows = pd.read_parquet(OUT.with_suffix(".parquet"))
        runtime = float(allrows["run_seconds"].iloc[0])
    else:
        t0 = time.perf_counter()
        par = Parallel(n_jobs=ns.n_jobs)
        frames = []
        for est, style, n, share in CELLS:
            t1 = time.perf_counter()
            reps = int(round(share * ns.reps))
            frames.append(pd.DataFrame([r for res in par(delayed(replicate)(s, style, n, est)
                                                         for s in range(reps)) for r in res]))
            print(f"{est} {style} n={n}: {reps} replicates, {time.perf_counter() - t1:.0f} s", flush=True)
        runtime = time.perf_counter() - t0
        allrows = pd.concat(frames, ignore_index=True).assign(run_seconds=runtime)
        allrows.to_parquet(OUT.with_suffix(".parquet"))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(render(allrows, command, runtime)) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
