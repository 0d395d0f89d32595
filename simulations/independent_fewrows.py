"""A policy whose level rests on very few rows — coverage and statuses (independent process).

Question: with logged data where one target's log-probability is present on only ``k`` of the
logged rows (MCAR; the others NaN, so those rows are excluded for that target), or in direct mode
where one policy has responses on only ``k`` prompts while the others have hundreds, does
``cje.analyze`` report that policy OK with an interval that does not cover?

Data-generating process (numpy only; not ``cje.synthetic``). Every response has a judge score
``S`` in {0, …, 10}; its label depends on ``S`` alone, ``P(Y | S)`` the same for every policy (so
the calibration transports exactly and the only question left is the few rows):

* binary labels: ``P(Y = 1 | S = s) = logistic(-3.5 + 0.95 s)`` (mostly 1 at the scores the
  targets favour: skewed, bounded);
* 1–5 labels: ``Y = clip(round(0.7 + 0.45 s + N(0, 0.8²)), 1, 5)``; ``E[Y | s]`` from the normal
  cdf.

Logged mode: ``n = 93`` rows of policy ``base`` with ``S ~ Binomial(10, 0.5)``; labels on each
row with probability 0.35. Target ``t`` has log-ratio ``log π_t − log π_base = θ_t z(S) + τ ε − c_t``
with ``z(S) = (S − 5)/√2.5``, ``ε ~ N(0, 1)`` independent of ``Y`` given ``S`` and ``c_t`` the exact
normaliser (``E_base[exp] = 1``). Target ``near`` (θ 0.2, τ 0.3) has its log-probability on every
row; target ``far`` (θ 0.5, τ 0.3) only on ``k`` rows drawn at random. Truth of ``far``:
``Σ_s p_base(s) exp(θ z(s) − log Σ_s' p_base(s') exp(θ z(s'))) g(s)`` with ``g(s) = E[Y | s]``
(exact: ``ε`` integrates out). Estimators ``ips`` and ``snips`` (calibrated; package defaults).

Direct mode: policies ``A`` and ``B`` answer all 200 prompts (``S ~ Binomial(10, 0.5)`` and
``Binomial(10, 0.6)``), labels on 30% of their rows; policy ``C`` (``S ~ Binomial(10, 0.7)``) answers
``k`` prompts drawn at random and has (a) no labels of its own or (b) ``m`` own labels, ``m`` drawn
from {2, …, 5} and capped at ``k``. Truth of ``C``: ``Σ_s p_C(s) g(s)``.

For k in (3, 5, 10, 20, 50) and ``reps`` replicates per cell it records, for the few-row policy,
estimate, interval and status; the summary gives coverage of the 95% interval for all finite
intervals and for the OK ones (MC SE ``sqrt(c(1 − c)/r)``), the status shares and the bias.

Run: ``python simulations/independent_fewrows.py --reps 500 --n-jobs 1``
(writes ``simulations/results/independent_fewrows_summary.csv``; the reading is in
``simulations/results/independent_fewrows.md``).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import binom, norm

import cje

KS = (3, 4, 5, 6, 8, 10, 20, 50)
N_LOGGED = 93
N_PROMPTS = 200
THETA = {"near": 0.2, "far": 0.5}
TAU = 0.3
SCORES = np.arange(11)
LABELS = ("binary", "likert")
SCALE = {"binary": (0.0, 1.0), "likert": (1.0, 5.0)}


def g(labels: str) -> np.ndarray:
    """``E[Y | S = s]`` for s = 0, …, 10 (exact)."""
    if labels == "binary":
        return 1.0 / (1.0 + np.exp(-(-3.5 + 0.95 * SCORES)))
    mu = 0.7 + 0.45 * SCORES
    cdf = np.stack([norm.cdf((j + 0.5 - mu) / 0.8) for j in (1, 2, 3, 4)])  # P(Y <= j)
    probs = np.diff(np.vstack([np.zeros_like(mu), cdf, np.ones_like(mu)]), axis=0)
    return (np.arange(1, 6)[:, None] * probs).sum(axis=0)


def draw_label(labels: str, s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels given judge scores."""
    if labels == "binary":
        return (rng.random(s.size) < g("binary")[s]).astype(float)
    return np.clip(np.round(0.7 + 0.45 * s + rng.normal(0, 0.8, s.size)), 1, 5)


def z(s: np.ndarray) -> np.ndarray:
    """Standardised score under Binomial(10, 0.5)."""
    return (s - 5.0) / math.sqrt(2.5)


def log_norm(theta: float) -> float:
    """``log E_base[exp(θ z(S))]`` (exact, S ~ Binomial(10, 0.5))."""
    return float(np.log(np.sum(binom.pmf(SCORES, 10, 0.5) * np.exp(theta * z(SCORES)))))


def truth(mode: str, labels: str) -> float:
    """Exact value of the few-row policy (``far`` in logged mode, ``C`` in direct mode)."""
    if mode == "logged":
        p = binom.pmf(SCORES, 10, 0.5) * np.exp(THETA["far"] * z(SCORES) - log_norm(THETA["far"]))
    else:
        p = binom.pmf(SCORES, 10, 0.7)
    return float(np.sum(p * g(labels)))


def logged_data(labels: str, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """One logged data set; ``logprob[far]`` on ``k`` random rows."""
    n = N_LOGGED
    s = rng.binomial(10, 0.5, n)
    y = draw_label(labels, s, rng)
    lp0 = -40.0 + rng.normal(0, 1, n)
    df = pd.DataFrame({
        "prompt_id": [f"p{i:04d}" for i in range(n)],
        "policy": "base",
        "judge_score": s.astype(float),
        "oracle_label": np.where(rng.random(n) < 0.35, y, np.nan),
        "logprob_base": lp0,
    })
    for t, th in THETA.items():
        lam = th * z(s) + TAU * rng.normal(0, 1, n) - log_norm(th) - TAU**2 / 2
        df[f"logprob[{t}]"] = lp0 + lam
    keep = np.zeros(n, bool)
    keep[rng.choice(n, k, replace=False)] = True
    df.loc[~keep, "logprob[far]"] = np.nan
    return df


def direct_data(labels: str, k: int, own: str, rng: np.random.Generator) -> pd.DataFrame:
    """One direct-mode data set; policy C on ``k`` random prompts."""
    parts = []
    for pol, p, prompts in (("A", 0.5, np.arange(N_PROMPTS)), ("B", 0.6, np.arange(N_PROMPTS)),
                            ("C", 0.7, np.sort(rng.choice(N_PROMPTS, k, replace=False)))):
        s = rng.binomial(10, p, prompts.size)
        y = draw_label(labels, s, rng)
        if pol == "C":
            m = 0 if own == "none" else min(k, int(rng.integers(2, 6)))
            lab = np.zeros(prompts.size, bool)
            lab[rng.choice(prompts.size, m, replace=False)] = True
        else:
            lab = rng.random(prompts.size) < 0.30
        parts.append(pd.DataFrame({"prompt_id": [f"q{i:04d}" for i in prompts], "policy": pol,
                                   "judge_score": s.astype(float),
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _reasons(r: object) -> str:
    """The status reasons as one short string."""
    if isinstance(r, str):
        return r[:300]
    return " | ".join(str(x)[:100] for x in r)[:300]


def one(cell: tuple[str, str, str, int], rep: int, seed: int) -> list[dict]:
    """One replicate of one cell: the few-row policy's row(s) of the report."""
    mode, labels, variant, k = cell
    key = [LABELS.index(labels), k, ("ips", "snips", "none", "own").index(variant), rep]
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0 if mode == "logged" else 1, *key]))
    out = []
    if mode == "logged":
        data = logged_data(labels, k, rng)
        runs = [(variant, dict(estimator=variant))]
        target = "far"
    else:
        data = direct_data(labels, k, variant, rng)
        runs = [(variant, {})]
        target = "C"
    for name, kw in runs:
        row = dict(mode=mode, labels=labels, variant=name, k=k, rep=rep, error="")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep_ = cje.analyze(data, judge_scale=(0, 10), label_scale=SCALE[labels], **kw)
            est = rep_.to_pandas().set_index("policy").loc[target]
            row.update(estimate=float(est["estimate"]), se=float(est["se"]), lo=float(est["ci_low"]),
                       hi=float(est["ci_high"]), df=float(est["df"]),
                       cal_share=float(est["calibration_share"]), status=str(est["status"]),
                       n_labels_own=int(est["n_labels_own"]), reasons=_reasons(est["reasons"]))
        except cje.CJEInputError as exc:
            row.update(error=f"CJEInputError: {str(exc)[:120]}", status="ERROR")
        out.append(row)
    return out


def cells(ks: tuple[int, ...] = KS, modes: tuple[str, ...] = ("logged", "direct")
          ) -> list[tuple[str, str, str, int]]:
    """All (mode, labels, variant, k) cells."""
    c = []
    for labels in LABELS:
        for k in ks:
            for v in ("ips", "snips"):
                c.append(("logged", labels, v, k))
            for v in ("none", "own"):
                c.append(("direct", labels, v, k))
    c = [x for x in c if x[0] in modes]
    return c


def cov(x: np.ndarray) -> str:
    """Coverage with its MC SE and count."""
    r = x.size
    if r == 0:
        return "—"
    c = x.mean()
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f} ({r})"


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per-cell coverage (all, OK), status shares and bias."""
    rows = []
    for (mode, labels, variant, k), g_ in df.groupby(["mode", "labels", "variant", "k"], sort=False):
        v = truth(mode, labels)
        fin = g_[np.isfinite(g_["lo"]) & np.isfinite(g_["hi"])] if "lo" in g_ else g_.iloc[:0]
        hit = ((fin["lo"] <= v) & (v <= fin["hi"])).to_numpy()
        ok = (fin["status"] == "OK").to_numpy()
        c_ok = hit[ok].mean() if ok.any() else float("nan")
        r_ok = int(ok.sum())
        rows.append(dict(
            mode=mode, labels=labels, variant=variant, k=k, truth=v, reps=len(g_),
            cov_all=cov(hit), cov_ok=cov(hit[ok]),
            ok_low=bool(r_ok > 0 and c_ok < 0.93 and 0.93 - c_ok > 2 * math.sqrt(
                max(c_ok * (1 - c_ok), 1e-12) / r_ok)),
            share_ok=(g_["status"] == "OK").mean(), share_caution=(g_["status"] == "CAUTION").mean(),
            share_refused=(g_["status"] == "REFUSED").mean(), share_error=(g_["status"] == "ERROR").mean(),
            bias_all=(fin["estimate"] - v).mean(),
            bias_ok=(fin["estimate"][ok] - v).mean() if ok.any() else float("nan"),
            median_df_ok=float(fin["df"][ok].median()) if ok.any() else float("nan"),
        ))
    return pd.DataFrame(rows)


def df_check(df: pd.DataFrame) -> str:
    """Logged cells: OK coverage of the reported interval against the same estimate and SE with
    the ``t_{k−1}`` quantile (the rows' own degrees of freedom), and the calibration share."""
    from scipy.stats import t as student

    lines = ["| labels | estimator | k | OK | cov OK (reported df) | cov OK (df = k − 1) | median df OK | "
             "median cal share OK |", "|---|---|---|---|---|---|---|---|"]
    for (labels, variant, k), g_ in df[df["mode"] == "logged"].groupby(["labels", "variant", "k"]):
        v = truth("logged", labels)
        ok = g_[(g_["status"] == "OK") & np.isfinite(g_["se"])]
        if len(ok) < 20:
            continue
        rep = ((ok["lo"] <= v) & (v <= ok["hi"])).to_numpy()
        km1 = (np.abs(ok["estimate"] - v) <= student.ppf(0.975, k - 1) * ok["se"]).to_numpy()
        lines.append(f"| {labels} | {variant} | {k} | {len(ok)} | {cov(rep)} | {cov(km1)} | "
                     f"{ok['df'].median():.1f} | {ok['cal_share'].median():.2f} |")
    return "\n".join(lines) + "\n"


def md(s: pd.DataFrame, title: str) -> str:
    """The summary as a markdown table."""
    head = ["mode", "labels", "estimator / own labels", "k", "truth", "cov all", "cov OK", "OK", "CAUTION",
            "REFUSED", "error", "bias all", "bias OK", "median df OK"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in s.itertuples():
        flag = " **↓**" if r.ok_low else ""
        lines.append(f"| {r.mode} | {r.labels} | {r.variant} | {r.k} | {r.truth:.3f} | {r.cov_all} | "
                     f"{r.cov_ok}{flag} | {r.share_ok:.3f} | {r.share_caution:.3f} | "
                     f"{r.share_refused:.3f} | {r.share_error:.3f} | {r.bias_all:+.3f} | "
                     f"{r.bias_ok:+.3f} | {r.median_df_ok:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the grid and write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated k values")
    ap.add_argument("--modes", default="logged,direct")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "independent_fewrows"),
                    help="prefix of the summary CSV (<out>_summary.csv)")
    ap.add_argument("--raw", default="", help="optional path of the per-replicate CSV")
    a = ap.parse_args()
    t0 = time.time()
    grid = cells(tuple(int(x) for x in a.ks.split(",")), tuple(a.modes.split(",")))
    jobs = [(c, r) for c in grid for r in range(a.reps)]
    res = Parallel(n_jobs=a.n_jobs)(delayed(one)(c, r, a.seed) for c, r in jobs)
    df = pd.DataFrame([row for rows in res for row in rows])
    if a.raw:
        df.to_csv(a.raw, index=False)
    s = summarise(df)
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 30)
    print(s.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"elapsed {time.time() - t0:.0f} s")
    s.to_csv(a.out + "_summary.csv", index=False)
    Path(a.out + "_table.md").write_text(md(s, f"cje {cje.__version__} ({cje.__file__}), {a.reps} "
                                                f"replicates per cell"), encoding="utf-8")


if __name__ == "__main__":
    main()
