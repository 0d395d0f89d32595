"""Badly behaved judges and labels near the scale's bounds — direct mode (independent process).

Question: does ``cje.analyze`` (direct mode, package defaults) report a level or a paired contrast
as OK whose 95% interval covers clearly less than promised when the judge is non-monotone,
anti-monotone, binary, three-levelled, stuck at its ceiling, constant for one policy, on another
scale for one policy, or over-rates one policy — and when the labels sit near a bound of their
scale?

Data-generating process (numpy only; not ``cje.synthetic``). Exact truth: everything the truth
depends on is discrete or a discretised normal.

* Prompts ``i = 1..n`` with difficulty ``d_i = Binomial(4, 1/2) − 2``. Policies A, B, C answer
  every prompt once (paired), with latent quality
  ``q = clip(round(μ_p − d + 1.5 ε), 0, 10)``, ``μ = (4.5, 5.5, 6.5)``.
* Labels from ``q`` alone:
  ``bin_mid`` ``P(Y=1|q) = σ(0.8 (q − 5.5))``; ``bin_low`` ``σ(−3.7 + 0.45 (q − 5.5))`` (values
  0.021–0.048); ``bin_high`` ``σ(3.7 + 0.45 (q − 5.5))`` (0.951–0.979); ``lik_mid``
  ``Y = clip(round(1 + 0.4 q + 0.8 η), 1, 5)``; ``lik_top`` ``Y = clip(round(5.4 + 0.25 (q − 5.5)
  + 0.5 η), 1, 5)`` (83%, 91%, 96% of labels at 5 for A, B, C).
* Judge from ``q`` (and the policy), with its own noise ``ζ``:
  ``good`` ``clip(round(q + 1.2 ζ), 0, 10)``; ``ushape`` ``clip(round(h(q) + ζ))`` with ``h(q) = q``
  up to 6 and ``6 − 2 (q − 6)`` above (the judge punishes the best responses: pooled E[Y | S] falls
  from 0.79 at S = 0 to 0.42 at S = 3, then rises to 0.57 — U-shaped); ``anti``
  ``clip(round(10 − q + 1.2 ζ))``; ``binary`` ``1[q + 1.2 ζ > 5.5]`` on (0, 1); ``three``
  ``1 + 1[q + 1.2ζ > 4] + 1[q + 1.2ζ > 7]`` on (1, 3); ``ceiling`` ``clip(round(q + 7 + 1.2 ζ))``
  (≈ 90% of rows at 10); ``constC`` good for A, B and 7 on every response of C; ``scaleC`` good
  for A, B and ``clip(round(10 (q + 1.2 ζ)), 0, 100)`` for C (a 0–100 judge by mistake), with the
  judge scale inferred (``scaleC``) or declared (0, 100) (``scaleC100``); ``overC`` good for A, B
  and ``clip(round(q + 1 + 1.2 ζ))`` for C (over-rates C by one point).
* Labels MCAR on a share ``ρ`` of the rows of every policy (design ``all``) or of A only (``A``:
  B and C rest on the calibration transporting and must not be OK).

Truth: ``V_p = Σ_d P(d) Σ_q P(q | d, p) E[Y | q]`` (exact); contrasts ``V_a − V_b``. Per cell and
policy: coverage of the 95% interval for all and for the OK estimates (MC SE
``sqrt(c(1 − c)/r)``), intervals or estimates outside the label scale, bias, width, status shares,
errors; per pair: coverage of the contrast interval (all; and with both levels OK) and the share of
wrong claims (significant with the wrong sign, or significant when the truth is 0).

Run: ``python simulations/independent_judge.py --reps 400 --n-jobs 1`` (writes
``simulations/results/independent_judge_summary.csv`` and ``..._table.md``; the reading is in
``simulations/results/independent_judge.md``).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import binom, norm

import cje

POLICIES = ("A", "B", "C")
MU = {"A": 4.5, "B": 5.5, "C": 6.5}
SD_Q = 1.5
Q = np.arange(11)
D = np.arange(-2, 3)
P_D = binom.pmf(D + 2, 4, 0.5)
LABEL_SCALE = {"bin_mid": (0.0, 1.0), "bin_low": (0.0, 1.0), "bin_high": (0.0, 1.0),
               "lik_mid": (1.0, 5.0), "lik_top": (1.0, 5.0)}
JUDGE_SCALE = {"binary": (0.0, 1.0), "three": (1.0, 3.0), "scaleC": None, "scaleC100": (0.0, 100.0)}


def _disc_normal_pmf(mean: np.ndarray, sd: float, lo: int, hi: int) -> np.ndarray:
    """``P(clip(round(mean + sd ε), lo, hi) = k)`` for k = lo..hi, one row per mean."""
    k = np.arange(lo, hi + 1)
    upper = norm.cdf((k[None, :] + 0.5 - mean[:, None]) / sd)
    lower = norm.cdf((k[None, :] - 0.5 - mean[:, None]) / sd)
    upper[:, -1] = 1.0
    lower[:, 0] = 0.0
    return upper - lower


def q_pmf(policy: str) -> np.ndarray:
    """``P(q | d, policy)``, rows d = −2..2, columns q = 0..10."""
    return _disc_normal_pmf(MU[policy] - D.astype(float), SD_Q, 0, 10)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _lik_mean(q: np.ndarray, labels: str) -> np.ndarray:
    """Latent mean and sd of the 1–5 labels."""
    if labels == "lik_mid":
        return 1.0 + 0.4 * q, 0.8
    return 5.4 + 0.25 * (q - 5.5), 0.5


def ey_given_q(labels: str) -> np.ndarray:
    """``E[Y | q]`` for q = 0..10 (exact)."""
    q = Q.astype(float)
    if labels == "bin_mid":
        return _sigmoid(0.8 * (q - 5.5))
    if labels == "bin_low":
        return _sigmoid(-3.7 + 0.45 * (q - 5.5))
    if labels == "bin_high":
        return _sigmoid(3.7 + 0.45 * (q - 5.5))
    m, sd = _lik_mean(q, labels)
    return _disc_normal_pmf(m, sd, 1, 5) @ np.arange(1, 6)


def truth(labels: str) -> dict[str, float]:
    """Exact value of each policy."""
    g = ey_given_q(labels)
    return {p: float(P_D @ (q_pmf(p) @ g)) for p in POLICIES}


def _draw_cat(pmf_rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Index drawn from each row's pmf with the uniforms ``u``."""
    cum = np.cumsum(pmf_rows, axis=1)
    return np.minimum((u[:, None] > cum).sum(axis=1), pmf_rows.shape[1] - 1)


def draw_labels(labels: str, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Labels given the latent quality."""
    if labels.startswith("bin"):
        return (rng.random(q.size) < ey_given_q(labels)[q]).astype(float)
    m, sd = _lik_mean(q.astype(float), labels)
    return np.clip(np.round(m + sd * rng.normal(size=q.size)), 1, 5)


def draw_judge(judge: str, policy: str, q: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Judge scores given the latent quality (and the policy, for the per-policy pathologies)."""
    z = rng.normal(size=q.size)
    qf = q.astype(float)

    def grid(x: np.ndarray) -> np.ndarray:
        return np.clip(np.round(x), 0, 10)

    if judge == "good":
        return grid(qf + 1.2 * z)
    if judge == "ushape":
        return grid(np.where(qf <= 6, qf, 6 - 2 * (qf - 6)) + z)
    if judge == "anti":
        return grid(10 - qf + 1.2 * z)
    if judge == "binary":
        return (qf + 1.2 * z > 5.5).astype(float)
    if judge == "three":
        x = qf + 1.2 * z
        return 1.0 + (x > 4) + (x > 7)
    if judge == "ceiling":
        return grid(qf + 7 + 1.2 * z)
    if policy != "C":
        return grid(qf + 1.2 * z)
    if judge == "constC":
        return np.full(q.size, 7.0)
    if judge in ("scaleC", "scaleC100"):
        return np.clip(np.round(10 * (qf + 1.2 * z)), 0, 100)
    if judge == "overC":
        return grid(qf + 1 + 1.2 * z)
    raise ValueError(judge)


def make_data(cell: tuple, rng: np.random.Generator) -> pd.DataFrame:
    """One data set of the cell ``(group, judge, labels, n, rho, design)``."""
    _, judge, labels, n, rho, design = cell
    d_idx = rng.choice(D.size, size=n, p=P_D)
    pid = np.array([f"q{i:05d}" for i in range(n)])
    parts = []
    for p in POLICIES:
        q = _draw_cat(q_pmf(p)[d_idx], rng.random(n))
        y = draw_labels(labels, q, rng)
        s = draw_judge(judge, p, q, rng)
        lab = rng.random(n) < rho
        if design == "A" and p != "A":
            lab[:] = False
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _seed_key(cell: tuple) -> int:
    return zlib.crc32(repr(cell).encode())


def one(cell: tuple, rep: int, seed: int) -> tuple[list[dict], list[dict]]:
    """One replicate: a row per policy and a row per contrast."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _seed_key(cell), rep]))
    data = make_data(cell, rng)
    judge, labels = cell[1], cell[2]
    key = dict(group=cell[0], judge=judge, labels=labels, n=cell[3], rho=cell[4], design=cell[5],
               rep=rep)
    jscale = JUDGE_SCALE.get(judge, (0.0, 10.0))
    levels, pairs = [], []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rep_ = cje.analyze(data, judge_scale=jscale, label_scale=LABEL_SCALE[labels])
        warned = " | ".join(sorted({str(w.message)[:80] for w in caught}))[:300]
    except cje.CJEInputError as exc:
        for p in POLICIES:
            levels.append(dict(key, policy=p, status="ERROR", error=str(exc)[:150]))
        return levels, pairs
    est = rep_.to_pandas().set_index("policy")
    notices = " ".join(getattr(rep_, "notices", ()) or ())
    scale_notice = "on another scale than the others" in notices
    two_stage = "chose 'two_stage'" in notices
    for p in POLICIES:
        e = est.loc[p]
        levels.append(dict(key, policy=p, estimate=float(e["estimate"]), se=float(e["se"]),
                           lo=float(e["ci_low"]), hi=float(e["ci_high"]), df=float(e["df"]),
                           status=str(e["status"]), n_own=int(e["n_labels_own"]),
                           reasons=str(e["reasons"])[:300], warned=warned, scale_notice=scale_notice,
                           two_stage=two_stage, error=""))
    status = est["status"].to_dict()
    for c in rep_.pairs:
        pairs.append(dict(key, pair=f"{c.policy_a}-{c.policy_b}", estimate=c.estimate,
                          lo=c.ci_low, hi=c.ci_high, significant=bool(c.significant),
                          both_ok=status[c.policy_a] == "OK" and status[c.policy_b] == "OK"))
    return levels, pairs


def cells() -> list[tuple]:
    """All cells ``(group, judge, labels, n, rho, design)``."""
    out = []
    for judge in ("good", "ushape", "anti", "binary", "three", "ceiling"):
        for labels in ("bin_mid", "lik_mid"):
            for n in (200, 2000):
                out.append(("judge", judge, labels, n, 0.10, "all"))
        out.append(("judge", judge, "bin_mid", 2000, 0.10, "A"))
    for judge in ("constC", "scaleC", "overC"):
        for labels in ("bin_mid", "lik_mid"):
            for design in ("all", "A"):
                out.append(("policy", judge, labels, 500, 0.10, design))
    out.append(("policy", "scaleC100", "bin_mid", 500, 0.10, "all"))
    out.append(("policy", "scaleC100", "bin_mid", 500, 0.10, "A"))
    for labels in ("bin_low", "bin_high", "lik_top"):
        for n in (200, 500, 2000):
            for rho in (0.05, 0.10, 0.25):
                out.append(("bounds", "good", labels, n, rho, "all"))
        for rho in (0.05, 0.10, 0.25):
            out.append(("bounds", "ushape", labels, 2000, rho, "all"))
        out.append(("bounds", "ceiling", labels, 2000, 0.10, "all"))
        out.append(("bounds", "good", labels, 2000, 0.10, "A"))
    return out


def cov(hit: np.ndarray) -> tuple[float, float, int]:
    """Coverage, its MC SE and the count."""
    r = hit.size
    if r == 0:
        return float("nan"), float("nan"), 0
    c = float(hit.mean())
    return c, math.sqrt(c * (1 - c) / r), r


def low_flag(c: float, se: float, r: int) -> bool:
    """Below 0.93 by more than 2 MC SE (SE floored at the binomial SE at 0.93 when c is 0 or 1)."""
    if r == 0 or not math.isfinite(c):
        return False
    s = max(se, math.sqrt(0.93 * 0.07 / r) if c in (0.0, 1.0) else se)
    return c < 0.93 and 0.93 - c > 2 * s


CELL = ["group", "judge", "labels", "n", "rho", "design"]


def summarise_levels(df: pd.DataFrame) -> pd.DataFrame:
    """Per cell and policy."""
    rows = []
    for key, g in df.groupby(CELL + ["policy"], sort=False):
        v = truth(key[2])[key[-1]]
        lo_s, hi_s = LABEL_SCALE[key[2]]
        fin = g[np.isfinite(g["lo"]) & np.isfinite(g["hi"])] if "lo" in g else g.iloc[:0]
        hit = ((fin["lo"] <= v) & (v <= fin["hi"])).to_numpy()
        ok = (fin["status"] == "OK").to_numpy()
        c_all, se_all, r_all = cov(hit)
        c_ok, se_ok, r_ok = cov(hit[ok])
        tol = 1e-9 * (hi_s - lo_s)
        outside = ((fin["lo"] < lo_s - tol) | (fin["hi"] > hi_s + tol)
                   | (fin["estimate"] < lo_s - tol) | (fin["estimate"] > hi_s + tol)).to_numpy()
        rows.append(dict(zip(CELL + ["policy"], key, strict=True), truth=v, reps=len(g),
                         cov_all=c_all, se_all=se_all, r_all=r_all, cov_ok=c_ok, se_ok=se_ok,
                         r_ok=r_ok, ok_low=low_flag(c_ok, se_ok, r_ok),
                         share_ok=(g["status"] == "OK").mean(),
                         share_caution=(g["status"] == "CAUTION").mean(),
                         share_refused=(g["status"] == "REFUSED").mean(),
                         share_error=(g["status"] == "ERROR").mean(),
                         outside=int(outside.sum()), outside_ok=int((outside & ok).sum()),
                         bias_all=float((fin["estimate"] - v).mean()) if len(fin) else float("nan"),
                         bias_ok=float((fin["estimate"][ok] - v).mean()) if ok.any() else float("nan"),
                         width=float((fin["hi"] - fin["lo"]).mean()) if len(fin) else float("nan"),
                         own=float(g["n_own"].mean()) if "n_own" in g else float("nan"),
                         two_stage=float(g["two_stage"].fillna(False).astype(bool).mean())
                         if "two_stage" in g else float("nan"),
                         scale_notice=float(g["scale_notice"].fillna(False).astype(bool).mean())
                         if "scale_notice" in g else float("nan")))
    return pd.DataFrame(rows)


def summarise_pairs(dp: pd.DataFrame) -> pd.DataFrame:
    """Per cell and pair."""
    rows = []
    for key, g in dp.groupby(CELL + ["pair"], sort=False):
        tv = truth(key[2])
        a, b = key[-1].split("-")
        v = tv[a] - tv[b]
        fin = g[np.isfinite(g["lo"]) & np.isfinite(g["hi"])]
        hit = ((fin["lo"] <= v) & (v <= fin["hi"])).to_numpy()
        both = fin["both_ok"].to_numpy(bool)
        sig = fin["significant"].to_numpy(bool)
        wrong = sig & ((np.sign(fin["estimate"].to_numpy()) != np.sign(v)) | (abs(v) < 1e-12))
        c_all, se_all, r_all = cov(hit)
        c_ok, se_ok, r_ok = cov(hit[both])
        rows.append(dict(zip(CELL + ["pair"], key, strict=True), truth=v, reps=len(g),
                         cov_all=c_all, se_all=se_all, r_all=r_all, cov_ok=c_ok, se_ok=se_ok,
                         r_ok=r_ok, ok_low=low_flag(c_ok, se_ok, r_ok), significant=sig.mean(),
                         wrong=wrong.mean(), bias=float((fin["estimate"] - v).mean())))
    return pd.DataFrame(rows)


def _c(c: float, se: float, r: int) -> str:
    return "—" if r == 0 else f"{c:.3f} ± {se:.3f} ({r})"


def md_levels(s: pd.DataFrame) -> str:
    """Levels table."""
    head = ["group", "judge", "labels", "n", "ρ", "design", "policy", "truth", "own labels", "cov all",
            "cov OK", "OK", "CAUTION", "REFUSED", "error", "bias all", "bias OK", "width",
            "outside scale (OK)", "two-stage", "scale notice"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in s.itertuples():
        flag = " **↓**" if r.ok_low else ""
        lines.append(
            f"| {r.group} | {r.judge} | {r.labels} | {r.n} | {r.rho:.2f} | {r.design} | {r.policy} | "
            f"{r.truth:.4f} | {r.own:.1f} | {_c(r.cov_all, r.se_all, r.r_all)} | "
            f"{_c(r.cov_ok, r.se_ok, r.r_ok)}{flag} | {r.share_ok:.2f} | {r.share_caution:.2f} | "
            f"{r.share_refused:.2f} | {r.share_error:.2f} | {r.bias_all:+.4f} | {r.bias_ok:+.4f} | "
            f"{r.width:.3f} | {r.outside} ({r.outside_ok}) | {r.two_stage:.2f} | {r.scale_notice:.2f} |")
    return "\n".join(lines) + "\n"


def md_pairs(s: pd.DataFrame) -> str:
    """Contrasts table."""
    head = ["group", "judge", "labels", "n", "ρ", "design", "pair", "truth", "cov all",
            "cov both OK", "significant", "wrong claim", "bias"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in s.itertuples():
        flag = " **↓**" if r.ok_low else ""
        lines.append(
            f"| {r.group} | {r.judge} | {r.labels} | {r.n} | {r.rho:.2f} | {r.design} | {r.pair} | "
            f"{r.truth:+.4f} | {_c(r.cov_all, r.se_all, r.r_all)} | {_c(r.cov_ok, r.se_ok, r.r_ok)}"
            f"{flag} | {r.significant:.3f} | {r.wrong:.3f} | {r.bias:+.4f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the grid and write the results."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--groups", default="judge,policy,bounds")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "independent_judge"))
    ap.add_argument("--raw", default="", help="optional prefix of the per-replicate CSVs")
    ap.add_argument("--only", default="", help="comma-separated cells 'judge/labels/n/rho/design', "
                    "e.g. 'anti/lik_mid/2000/0.1/all' (a re-check on fresh seeds)")
    a = ap.parse_args()
    t0 = time.time()
    grid = [c for c in cells() if c[0] in a.groups.split(",")]
    if a.only:
        want = {tuple(x.split("/")) for x in a.only.split(",")}
        grid = [c for c in grid if (c[1], c[2], str(c[3]), str(c[4]), c[5]) in want]
    jobs = [(c, r) for c in grid for r in range(a.reps)]
    res = Parallel(n_jobs=a.n_jobs)(delayed(one)(c, r, a.seed) for c, r in jobs)
    df = pd.DataFrame([row for lv, _ in res for row in lv])
    dp = pd.DataFrame([row for _, pr in res for row in pr])
    if a.raw:
        df.to_csv(a.raw + "_levels.csv", index=False)
        dp.to_csv(a.raw + "_pairs.csv", index=False)
    sl, sp = summarise_levels(df), summarise_pairs(dp)
    elapsed = time.time() - t0
    sl.to_csv(a.out + "_summary.csv", index=False)
    sp.to_csv(a.out + "_pairs_summary.csv", index=False)
    errs = (df[df["status"] == "ERROR"]["error"].str.replace(r"\d+", "#", regex=True).str[:100]
            .value_counts())  # (per policy row: 3 per failed replicate)
    text = (f"cje {cje.__version__} ({cje.__file__}); {a.reps} replicates per cell; seed {a.seed}; "
            f"{len(grid)} cells; {elapsed:.0f} s on {a.n_jobs} job(s).\n\n## Levels\n\n"
            + md_levels(sl) + "\n## Paired contrasts\n\n" + md_pairs(sp)
            + "\n## Errors\n\n" + ("\n".join(f"- {k}: {v}" for k, v in errs.items()) or "none") + "\n")
    Path(a.out + "_table.md").write_text(text, encoding="utf-8")
    flagged = sl[sl["ok_low"]]
    print(flagged.to_string() if len(flagged) else "no OK level below 0.93 by > 2 MC SE")
    fp = sp[sp["ok_low"]]
    print(fp.to_string() if len(fp) else "no both-OK contrast below 0.93 by > 2 MC SE")
    print(f"elapsed {elapsed:.0f} s")


if __name__ == "__main__":
    main()
