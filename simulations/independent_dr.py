"""Check: off-policy doubly robust estimates with awkward fresh draws, on a process built
without ``cje.synthetic``.

The process (numpy only, exact truth by Gauss–Hermite quadrature):

* 2,000 prompts with a difficulty ``d ~ N(0, 1)``, one logged response per prompt.
* Context-free policies over 10 discrete response types: quality ``q_k`` evenly from −1.5 to 1.5,
  every second type 'styled'. The logging policy ``base`` writes styled types a little less
  (logit −0.3 · style). Target ``A`` tilts toward styled and better types (logit
  ``τ_A (style + q/2)``, population raw-weight ESS 50%); target ``B`` mixes quality with a
  fixed pattern ``u`` over the types unrelated to style (logit ``τ_B (c · q + u_k)``), ``τ_B``
  set for a population ESS of 15% and ``c`` so that **V(B) = V(A) exactly**: the contrast
  A − B is a null, so every Holm-significant "Better" between them is false.
* Oracle label (binary) ``Y ~ Bernoulli(σ(1.2 q_k − 0.8 d))``; 25% of the logged rows labelled at
  random.
* Judge score on the 0–10 integer grid ``round(10 σ(1.2 q_k − 0.8 d + 0.8 η) + b · style_k)``
  (clipped), ``b = 0`` unless the cell gives the judge a style bonus the targets prefer.
* Log-probabilities: ``log π(k) − 40 + r`` with ``r`` a per-response offset shared by every
  policy (the ratio is ``π_t(k)/π_0(k)``: bounded weights, largest 3.6 for A and 7.5 for B).
* Fresh draws of A and B: by default one per prompt, from the policy the log-probabilities
  describe and judged by the same judge.

Cells (what is changed from the default):

``baseline``; ``partial70`` / ``partial30`` (fresh draws on a random 70% / 30% of the prompts,
``on_missing="drop"``); ``partial70_hard`` (70% with fresh draws, but missing more often on hard
prompts: ``P(fresh) = σ(1.2 − 1.2 d)`` — generation timed out on hard prompts); ``unequal`` (1
or 10 fresh draws per prompt at random) and ``unequal_hard`` (10 draws on the prompts with
``d > 0``, 1 elsewhere); ``few50`` (fresh draws on 50 prompts only, ``on_missing="drop"``);
``stale`` (fresh draws sampled by a slightly different policy than the log-probabilities
describe: the target's tilt ``τ`` times 0.7); ``judge_shift`` (the fresh draws judged at another
time, their scores shifted by +0.5 points before rounding); ``style`` (a judge bonus
``b = +1`` point on styled responses: the calibration learned on the logging policy does not
transport to A); ``style_stale`` (both).

Per cell, replicate and estimator: whether each level's 95% interval covers the truth, the status,
bias, width; for the contrasts A − B (truth 0), A − base and B − base: coverage and whether the
Holm-adjusted test is significant (a false "Better" when the truth is 0 or the sign is wrong),
and whether either policy of the pair is not OK (the summary then stars it). MC SE of a coverage
``c`` over ``r`` intervals: ``sqrt(c (1 − c) / r)``.

Usage::

    python simulations/independent_dr.py [--reps 400] [--n-jobs 1] [--cells baseline,stale]

Writes ``simulations/results/independent_dr.csv`` (raw rows) and prints the tables that
``simulations/results/independent_dr.md`` holds.
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

RESULTS = Path(__file__).resolve().parent / "results"

N_PROMPTS = 2000
K = 10
QUALITY = np.linspace(-1.5, 1.5, K)
STYLE = (np.arange(K) % 2).astype(float)
BASE_LOGITS = -0.3 * STYLE
LABEL_SHARE = 0.25
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(100)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


P_BASE = _softmax(BASE_LOGITS)
# E_d σ(1.2 q_k − 0.8 d), d ~ N(0, 1): the mean label of each response type
TYPE_MEAN = np.array([(_GH_W / (1 + np.exp(-(1.2 * q - 0.8 * _GH_X)))).sum() / _GH_W.sum()
                      for q in QUALITY])


def _value(p: np.ndarray) -> float:
    return float(p @ TYPE_MEAN)


def _ess(p: np.ndarray) -> float:
    w = p / P_BASE
    return float(1.0 / (P_BASE * w * w).sum())


def _bisect(f, lo: float, hi: float, n: int = 80) -> float:
    """Root of a monotone ``f`` on [lo, hi] (sign change assumed)."""
    flo = f(lo)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


def policy_a(tau: float) -> np.ndarray:
    return _softmax(BASE_LOGITS + tau * (STYLE + 0.5 * QUALITY))


#: a fixed pattern over the types, unrelated to style (correlation 0.08) and weakly to quality
#: (−0.33): B's tilt mixes it with quality
PATTERN = np.array([0.0, 2.0, -1.0, 1.0, 0.5, -2.0, 1.5, -0.5, -1.5, 0.0])


def policy_b(tau: float, c: float) -> np.ndarray:
    return _softmax(BASE_LOGITS + tau * (c * QUALITY + PATTERN))


TAU_A = _bisect(lambda t: _ess(policy_a(t)) - 0.50, 0.0, 10.0)
P_A = policy_a(TAU_A)


def _tau_b(c: float) -> float:
    return _bisect(lambda t: _ess(policy_b(t, c)) - 0.15, 0.0, 4.5)


C_B = _bisect(lambda c: _value(policy_b(_tau_b(c), c)) - _value(P_A), 0.8, 1.1)
TAU_B = _tau_b(C_B)
P_B = policy_b(TAU_B, C_B)
POLICIES = {"base": P_BASE, "A": P_A, "B": P_B}
TRUTH = {name: _value(p) for name, p in POLICIES.items()}
STALE = {"A": policy_a(0.7 * TAU_A), "B": policy_b(0.7 * TAU_B, C_B)}

CELLS: dict[str, dict] = {
    "baseline": {},
    "partial70": {"fresh_share": 0.7},
    "partial30": {"fresh_share": 0.3},
    "partial70_hard": {"fresh_hard": True},
    "unequal": {"draws": "random"},
    "unequal_hard": {"draws": "hard"},
    "few50": {"fresh_prompts": 50},
    "stale": {"stale": True},
    "judge_shift": {"shift": 0.5},
    "style": {"bonus": 1.0},
    "style_stale": {"bonus": 1.0, "stale": True},
}
ESTIMATORS = ("stacked-dr", "dr-cpo", "tmle", "mrdr")


def _respond(rng: np.random.Generator, p: np.ndarray, d: np.ndarray, bonus: float,
             shift: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Response types, binary oracle labels and judge scores for prompts of difficulty ``d``."""
    k = rng.choice(K, size=d.size, p=p)
    eta = 1.2 * QUALITY[k] - 0.8 * d
    y = (rng.random(d.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    latent = 10.0 / (1.0 + np.exp(-(eta + 0.8 * rng.standard_normal(d.size))))
    s = np.clip(np.round(latent + bonus * STYLE[k] + shift), 0, 10)
    return k, y, s


def make_data(seed: int, cell: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate: the logged rows and the fresh draws of A and B under ``cell``'s changes."""
    rng = np.random.default_rng(seed)
    bonus = cell.get("bonus", 0.0)
    d = rng.standard_normal(N_PROMPTS)
    pid = np.array([f"p{i}" for i in range(N_PROMPTS)])
    k, y, s = _respond(rng, P_BASE, d, bonus)
    r = -rng.gamma(4.0, 10.0, N_PROMPTS)  # shared per-response log-probability offset
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": s,
                           "oracle_label": np.where(rng.random(N_PROMPTS) < LABEL_SHARE, y, np.nan),
                           "logprob_base": np.log(P_BASE[k]) - 40.0 + r})
    for name in ("A", "B"):
        logged[f"logprob[{name}]"] = np.log(POLICIES[name][k]) - 40.0 + r
    # which prompts get fresh draws, and how many
    if "fresh_share" in cell:
        has = rng.random(N_PROMPTS) < cell["fresh_share"]
    elif cell.get("fresh_hard"):
        has = rng.random(N_PROMPTS) < 1.0 / (1.0 + np.exp(-(1.2 - 1.2 * d)))
    elif "fresh_prompts" in cell:
        has = np.zeros(N_PROMPTS, bool)
        has[rng.choice(N_PROMPTS, cell["fresh_prompts"], replace=False)] = True
    else:
        has = np.ones(N_PROMPTS, bool)
    if cell.get("draws") == "random":
        n_draws = np.where(rng.random(N_PROMPTS) < 0.5, 1, 10)
    elif cell.get("draws") == "hard":
        n_draws = np.where(d > 0, 10, 1)
    else:
        n_draws = np.ones(N_PROMPTS, int)
    n_draws = np.where(has, n_draws, 0)
    at = np.repeat(np.arange(N_PROMPTS), n_draws)
    parts = []
    for name in ("A", "B"):
        p = STALE[name] if cell.get("stale") else POLICIES[name]
        _, _, sf = _respond(rng, p, d[at], bonus, cell.get("shift", 0.0))
        parts.append(pd.DataFrame({"prompt_id": pid[at], "policy": name, "judge_score": sf}))
    return logged, pd.concat(parts, ignore_index=True)


def fresh_consistency_z(logged: pd.DataFrame, fresh: pd.DataFrame, target: str) -> float:
    """A negative control the data carry: the target's mean judge score two ways.

    The Hájek-weighted (raw weights) mean judge score of the logged rows whose prompt has fresh
    draws of ``target``, against the mean over the same logged rows of each prompt's mean
    fresh-draw score. Both estimate ``E_target[S]`` when the log-probabilities describe the
    policy that wrote the fresh draws and one judge scored both; Welch-like z from the
    prompt-clustered influence values of the difference.
    """
    g = fresh[fresh.policy == target].groupby("prompt_id").judge_score.mean()
    kept = logged[logged.prompt_id.isin(g.index)]
    lw = (kept[f"logprob[{target}]"] - kept["logprob_base"]).to_numpy()
    w = np.exp(lw - lw.max())
    w = w / w.mean()
    s = kept.judge_score.to_numpy()
    gbar = g.loc[kept.prompt_id].to_numpy()
    m_w, m_g = float((w * s).mean()), float(gbar.mean())
    phi = (gbar - m_g) - w * (s - m_w)
    tot = pd.Series(phi).groupby(kept.prompt_id.to_numpy()).sum().to_numpy()
    n, n_g = phi.size, tot.size
    se = np.sqrt(n_g / (n_g - 1) * (tot ** 2).sum()) / n
    return (m_g - m_w) / se


def replicate(seed: int, cell_name: str, estimators: tuple[str, ...]) -> list[dict]:
    """Score every estimator on one replicate of one cell."""
    cell = CELLS[cell_name]
    logged, fresh = make_data(seed, cell)
    on_missing = "drop" if any(x in cell for x in ("fresh_share", "fresh_hard", "fresh_prompts")) \
        else "raise"
    out = [{"cell": cell_name, "seed": seed, "estimator": "-", "kind": "check", "name": t,
            "estimate": fresh_consistency_z(logged, fresh, t)} for t in ("A", "B")]
    for est in estimators:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rep = cje.analyze(logged, fresh_draws=fresh, estimator=est, judge_scale=(0, 10),
                                  label_scale=(0, 1), on_missing=on_missing)
            except Exception as exc:  # noqa: BLE001 - recorded, not hidden
                out.append({"cell": cell_name, "seed": seed, "estimator": est, "kind": "error",
                            "name": type(exc).__name__ + ": " + str(exc)[:120]})
                continue
        status = {e.policy: e.status for e in rep.estimates}
        for e in rep.estimates:
            truth = TRUTH[e.policy]
            out.append({"cell": cell_name, "seed": seed, "estimator": est, "kind": "level",
                        "name": e.policy, "estimate": e.estimate, "truth": truth,
                        "covered": bool(e.ci_low <= truth <= e.ci_high), "status": e.status,
                        "width": e.ci_high - e.ci_low,
                        "reason": "; ".join(r[:60] for r in (e.reasons or []))})
        for c in rep.pairs:
            truth = TRUTH[c.policy_a] - TRUTH[c.policy_b]
            wrong = c.significant and (abs(truth) < 1e-12 or np.sign(c.estimate) != np.sign(truth))
            both_ok = status[c.policy_a] == "OK" and status[c.policy_b] == "OK"
            out.append({"cell": cell_name, "seed": seed, "estimator": est, "kind": "contrast",
                        "name": f"{c.policy_a}-{c.policy_b}", "estimate": c.estimate,
                        "truth": truth, "covered": bool(c.ci_low <= truth <= c.ci_high),
                        "status": "OK" if both_ok else "not OK", "width": c.ci_high - c.ci_low,
                        "significant": bool(c.significant), "false_better": bool(wrong)})
    return out


def _cov(x: pd.Series) -> str:
    if len(x) == 0:
        return "—"
    c = float(x.mean())
    se = np.sqrt(c * (1 - c) / len(x))
    flag = " ✗" if c < 0.93 - 2 * se else ""
    return f"{c:.3f} ± {se:.3f}{flag}"


def tables(df: pd.DataFrame) -> list[str]:
    """Markdown tables of the levels, the contrasts and the fresh-draw check."""
    lines = ["## Levels", "",
             "| cell | estimator | policy | n | coverage (all) | OK share | coverage (OK) | "
             "CAUTION | REFUSED | bias | mean width |",
             "|---|---|---|---:|---|---:|---|---:|---:|---:|---:|"]
    lev = df[df.kind == "level"]
    for (cell, est, pol), g in lev.groupby(["cell", "estimator", "name"], sort=False):
        ok = g[g.status == "OK"]
        lines.append(
            f"| {cell} | {est} | {pol} | {len(g)} | {_cov(g.covered)} | "
            f"{(g.status == 'OK').mean():.2f} | {_cov(ok.covered)} (n={len(ok)}) | "
            f"{(g.status == 'CAUTION').mean():.2f} | {(g.status == 'REFUSED').mean():.2f} | "
            f"{(g.estimate - g.truth).mean():+.4f} | {g.width.mean():.3f} |")
    lines += ["", "## Contrasts", "",
              "| cell | estimator | contrast | truth | coverage (all) | coverage (both OK) | "
              "significant | false 'Better' (all) | false 'Better' (both OK) | bias |",
              "|---|---|---|---:|---|---|---:|---:|---:|---:|"]
    con = df[df.kind == "contrast"]
    for (cell, est, name), g in con.groupby(["cell", "estimator", "name"], sort=False):
        ok = g[g.status == "OK"]
        lines.append(
            f"| {cell} | {est} | {name} | {g.truth.iloc[0]:+.4f} | {_cov(g.covered)} | "
            f"{_cov(ok.covered)} (n={len(ok)}) | {g.significant.mean():.3f} | "
            f"{g.false_better.mean():.3f} | "
            f"{(ok.false_better.mean() if len(ok) else float('nan')):.3f} | "
            f"{(g.estimate - g.truth).mean():+.4f} |")
    chk = df[df.kind == "check"]
    if len(chk):
        lines += ["", "## The fresh-draw check the data carry (not in cje)", "",
                  "`fresh_consistency_z`: the fresh draws' mean judge score against the "
                  "importance-weighted logged one (same prompts).", "",
                  "| cell | target | n | mean z | SD z | share abs(z) > 3 | share abs(z) > 4 |",
                  "|---|---|---:|---:|---:|---:|---:|"]
        for (cell, name), g in chk.groupby(["cell", "name"], sort=False):
            z = g.estimate
            lines.append(f"| {cell} | {name} | {len(g)} | {z.mean():+.2f} | {z.std():.2f} | "
                         f"{(z.abs() > 3).mean():.3f} | {(z.abs() > 4).mean():.3f} |")
    err = df[df.kind == "error"]
    if len(err):
        lines += ["", "## Errors", ""]
        for (cell, est, name), g in err.groupby(["cell", "estimator", "name"]):
            lines.append(f"* {cell} / {est}: {len(g)} × {name}")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--estimators", default="stacked-dr")
    ap.add_argument("--seed0", type=int, default=20261207)
    ap.add_argument("--out", default=str(RESULTS / "independent_dr.csv"))
    ap.add_argument("--tables-only", action="store_true", help="re-print the tables of --out")
    args = ap.parse_args()
    if args.tables_only:
        print("\n".join(tables(pd.read_csv(args.out))))
        return
    cells = args.cells.split(",")
    ests = tuple(args.estimators.split(","))
    print(f"truth: {TRUTH}; tau_A={TAU_A:.3f} tau_B={TAU_B:.3f} c_B={C_B:.3f}; "
          f"ESS A={_ess(P_A):.3f} B={_ess(P_B):.3f}; max w A={max(P_A / P_BASE):.2f} "
          f"B={max(P_B / P_BASE):.2f}; stale truth A={_value(STALE['A']):.4f} "
          f"B={_value(STALE['B']):.4f}")
    t0 = time.time()
    order = list(CELLS)  # a cell keeps its seeds whichever cells are run
    jobs = [(args.seed0 + 1000 * order.index(c) + r, c) for c in cells for r in range(args.reps)]
    res = Parallel(n_jobs=args.n_jobs)(delayed(replicate)(s, c, ests) for s, c in jobs)
    df = pd.DataFrame([row for rows in res for row in rows])
    df.to_csv(args.out, index=False)
    print(f"{len(jobs)} replicates in {time.time() - t0:.0f} s")
    print("\n".join(tables(df)))


if __name__ == "__main__":
    main()
