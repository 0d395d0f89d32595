"""Hunt: off-policy estimates when ``logprob_base`` is not the density the logs were drawn from.

A process built without ``cje.synthetic`` (numpy/pandas only; exact truth by Gauss–Hermite
quadrature), fixed before the first ``cje`` run:

* 3,000 prompts with a difficulty ``d ~ N(0, 1)``, one logged response per prompt.
* Context-free policies over ``K = 20`` discrete response types. Type ``k`` has a quality
  ``q_k`` (evenly from −1.5 to 1.5) and a length ``L_k`` in tokens
  (``round(exp(5.3 + 0.45 q_k + 0.5 u_k))``, ``u`` a fixed pattern: about 60 to 900 tokens, longer
  responses a little better on average).
* Policies (softmax of logits over the types): ``v1`` (a fixed pattern ``0.6 a``); ``v2``, the
  next model version (``v1 + 0.5 (q + 0.6 z_L)``, ``z_L`` the standardised log length: better and
  longer); targets ``A`` (``v1 + τ_A (q + 0.6 z_L)``, further along v2's direction: better and
  more verbose) and ``B`` (``v1 + τ_B (q − 0.8 z_L + 0.5 b)``, better but concise; ``b`` another
  fixed pattern). ``τ_A``, ``τ_B`` are set for population raw-weight ESS 50% (A) and 20% (B)
  against the density the logs were drawn from in the mixture cells (``0.6 v1 + 0.4 v2``).
  Target ``C`` is v2 itself (ESS 85% against the mixture, 65% against v1): "what if v2 served
  everyone?", evaluated from logs that v2 partly wrote.
* Oracle label (binary) ``Y ~ Bernoulli(σ(1.2 q_k − 0.8 d))``, on a random 20% of the logged rows.
  Judge score on the 0–10 integer grid ``round(10 σ(1.2 q_k − 0.8 d + 0.8 η))``: no bias, the
  calibration transports.
* Sequence log-probabilities ``log π(k) + r_i``, ``r_i = min(0, −0.3 L_k + 0.05 L_k ε_i)``,
  ``ε_i ~ N(0, 1)``, a per-response offset shared by every policy (token-level detail the types
  do not model): the ratio of two correct log-probabilities is exactly ``π_t(k) / π_0(k)``.
* Fresh draws of A, B and C: one per prompt, from each target's TRUE distribution, same judge.

Cells (how the logs were drawn / what ``logprob_base`` holds):

``single`` (logs from v1, correct log-probabilities; control); ``mix_density`` (60% of rows from
v1, 40% from v2, at random; ``logprob_base = log(0.6 π1 + 0.4 π2)``, the mixture density;
control); ``mix_own`` (the same logs, each row's own generator's log-probability); ``mix_v1``
(the same logs, v1's log-probability for every row: the common mistake); ``mix_share`` (the
mixture density with the wrong shares 0.4/0.6: the user misremembers which version served
more); ``stale_temp`` (logs sampled from v1 at temperature 0.7, ``∝ π1^(1/0.7)``, log-probabilities
recomputed at temperature 1.0); ``sysprompt`` (logs from v1, ``logprob_base`` scored with another
system prompt: v1's logits plus ``0.5 c``, ``c`` a fixed standard-normal pattern);
``truncated`` (logs from v1; base and target log-probabilities summed over the first 256 tokens
only, which for the uniform per-token split used here multiplies the log-ratio by
``min(1, 256 / L_k)``); ``jitter`` (logs from v1; every log-probability computed in its own
API run, with per-token noise of SD ``σ_tok = 0.02`` nats, so ``N(0, σ_tok² L_k)`` per sequence,
independent between base and each target).

Truth: ``V(π) = Σ_k π(k) E_d σ(1.2 q_k − 0.8 d)``; the logging policy's level (its on-policy
mean) is the value of the distribution the logs were actually drawn from.

Per cell, replicate and estimator (``auto`` = stacked DR with fresh draws, ``snips``,
``calibrated-ips``, ``dr-cpo``; every estimator gets the fresh draws): each level's estimate,
interval, status and the gates that fired, with the target's raw-weight diagnostics (mean raw
weight and its SE, raw ESS, the fresh-balance z when computed). MC SE of a coverage ``c`` over
``r`` intervals: ``sqrt(c (1 − c) / r)``.

Usage::

    python simulations/independent_mixlog.py [--reps 400] [--n-jobs 1] [--cells single,mix_v1]
        [--estimators auto,snips] [--csv PATH] [--tables-only]
    python simulations/independent_mixlog.py --z-check   # m's z with correct log-probabilities

Writes the raw rows to ``simulations/results/independent_mixlog.csv`` (not committed) and prints
the tables of ``simulations/results/independent_mixlog.md``.
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

N_PROMPTS = 3000
LABEL_SHARE = 0.20
K = 20
QUALITY = np.linspace(-1.5, 1.5, K)
_PAT = np.random.default_rng(20261207)  # fixed patterns of the process (not per replicate)
U_LEN = _PAT.standard_normal(K)
A_V1 = _PAT.standard_normal(K)
B_PAT = _PAT.standard_normal(K)
C_SYS = _PAT.standard_normal(K)
LENGTH = np.round(np.exp(5.3 + 0.45 * QUALITY + 0.5 * U_LEN)).astype(int)
Z_LEN = (np.log(LENGTH) - np.log(LENGTH).mean()) / np.log(LENGTH).std()
MIX_SHARE = 0.6  # share of the logged rows written by v1 in the mixture cells
TEMP = 0.7
CAP = 256
SIGMA_TOK = 0.02
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(100)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


#: mean label of each response type, E_d σ(1.2 q_k − 0.8 d), d ~ N(0, 1)
TYPE_MEAN = np.array([(_GH_W / (1 + np.exp(-(1.2 * q - 0.8 * _GH_X)))).sum() / _GH_W.sum()
                      for q in QUALITY])
LOGIT_V1 = 0.6 * A_V1
P_V1 = _softmax(LOGIT_V1)
P_V2 = _softmax(LOGIT_V1 + 0.5 * (QUALITY + 0.6 * Z_LEN))
P_MIX = MIX_SHARE * P_V1 + (1 - MIX_SHARE) * P_V2


def value(p: np.ndarray) -> float:
    """Exact value of a distribution over the response types."""
    return float(p @ TYPE_MEAN)


def ess(p: np.ndarray, q: np.ndarray) -> float:
    """Population raw-weight ESS fraction of target ``p`` against sampling density ``q``."""
    w = p / q
    return float(1.0 / (q * w * w).sum())


def _bisect(f, lo: float, hi: float, n: int = 80) -> float:
    flo = f(lo)
    for _ in range(n):
        mid = 0.5 * (lo + hi)
        fm = f(mid)
        if (fm > 0) == (flo > 0):
            lo, flo = mid, fm
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _target_a(tau: float) -> np.ndarray:
    return _softmax(LOGIT_V1 + tau * (QUALITY + 0.6 * Z_LEN))


def _target_b(tau: float) -> np.ndarray:
    return _softmax(LOGIT_V1 + tau * (QUALITY - 0.8 * Z_LEN + 0.5 * B_PAT))


TAU_A = _bisect(lambda t: ess(_target_a(t), P_MIX) - 0.50, 0.0, 5.0)
TAU_B = _bisect(lambda t: ess(_target_b(t), P_MIX) - 0.20, 0.0, 5.0)
TARGETS = {"A": _target_a(TAU_A), "B": _target_b(TAU_B), "C": P_V2}
P_TEMP = _softmax(LOGIT_V1 / TEMP)
P_SYS = _softmax(LOGIT_V1 + 0.5 * C_SYS)

CELLS: dict[str, dict] = {
    "single": {"draw": "v1", "base": "v1"},
    "mix_density": {"draw": "mix", "base": "mix"},
    "mix_own": {"draw": "mix", "base": "own"},
    "mix_v1": {"draw": "mix", "base": "v1"},
    "mix_share": {"draw": "mix", "base": "mix_wrong"},
    "stale_temp": {"draw": "temp", "base": "v1"},
    "sysprompt": {"draw": "v1", "base": "sys"},
    "truncated": {"draw": "v1", "base": "v1", "truncate": True},
    "jitter": {"draw": "v1", "base": "v1", "jitter": True},
}
CONTROLS = ("single", "mix_density", "mix_own")
ESTIMATORS = ("auto", "snips", "calibrated-ips", "dr-cpo")


def drawn_density(cell: dict) -> np.ndarray:
    """The density the logged responses were actually drawn from."""
    return {"v1": P_V1, "mix": P_MIX, "temp": P_TEMP}[cell["draw"]]


def truth(cell: dict) -> dict[str, float]:
    """Exact values: the logging policy's level (of what the logs were drawn from) and the
    targets'."""
    return {"base": value(drawn_density(cell)), **{t: value(p) for t, p in TARGETS.items()}}


def population(cell: dict) -> dict[str, dict[str, float]]:
    """Per target: E[w] over the drawn density of the weights the cell's log-probabilities give,
    the Hájek limit (the value a weighting estimator converges to) and the raw-weight ESS."""
    q = drawn_density(cell)
    out = {}
    for t, p in TARGETS.items():
        if cell["base"] == "own":  # per-row weights: expectation over the two generators
            parts = [(MIX_SHARE, P_V1), (1 - MIX_SHARE, P_V2)]
            ew = sum(a * (g * p / g).sum() for a, g in parts)
            ewy = sum(a * (g * p / g * TYPE_MEAN).sum() for a, g in parts)
            ew2 = sum(a * (g * (p / g) ** 2).sum() for a, g in parts)
        else:
            rec = {"v1": P_V1, "mix": P_MIX, "sys": P_SYS,
                   "mix_wrong": (1 - MIX_SHARE) * P_V1 + MIX_SHARE * P_V2}[cell["base"]]
            lr = np.log(p) - np.log(rec)
            if cell.get("truncate"):
                lr = lr * np.minimum(1.0, CAP / LENGTH)
            w = np.exp(lr)
            if cell.get("jitter"):  # E exp(ε_t − ε_0), ε ~ N(0, σ² L) each
                w = w * np.exp(SIGMA_TOK ** 2 * LENGTH)
            ew, ewy = float(q @ w), float(q @ (w * TYPE_MEAN))
            w2 = np.exp(2 * lr) * (np.exp(4 * SIGMA_TOK ** 2 * LENGTH) if cell.get("jitter") else 1)
            ew2 = float(q @ w2)
        out[t] = {"mean_w": ew, "hajek_limit": ewy / ew, "truth": value(p),
                  "bias_limit": ewy / ew - value(p), "ess": ew * ew / ew2}
    return out


def _respond(rng: np.random.Generator, k: np.ndarray, d: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    eta = 1.2 * QUALITY[k] - 0.8 * d
    y = (rng.random(d.size) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    s = np.clip(np.round(10.0 / (1.0 + np.exp(-(eta + 0.8 * rng.standard_normal(d.size))))), 0, 10)
    return y, s


def make_data(seed: int, cell: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One replicate: the logged rows (with the cell's ``logprob_base`` and target log-probabilities)
    and one fresh draw per prompt of each target from its true distribution."""
    rng = np.random.default_rng(seed)
    n = N_PROMPTS
    d = rng.standard_normal(n)
    pid = np.array([f"p{i}" for i in range(n)])
    gen_v1 = np.ones(n, bool)
    if cell["draw"] == "mix":
        gen_v1 = rng.random(n) < MIX_SHARE
        k = np.where(gen_v1, rng.choice(K, n, p=P_V1), rng.choice(K, n, p=P_V2))
    else:
        k = rng.choice(K, n, p=drawn_density(cell))
    y, s = _respond(rng, k, d)
    offset = -0.3 * LENGTH[k] + 0.05 * LENGTH[k] * rng.standard_normal(n)
    offset = np.minimum(offset, 0.0)
    base_p = {"v1": P_V1[k], "mix": P_MIX[k], "sys": P_SYS[k],
              "own": np.where(gen_v1, P_V1[k], P_V2[k]),
              "mix_wrong": ((1 - MIX_SHARE) * P_V1 + MIX_SHARE * P_V2)[k]}[cell["base"]]
    lp = {"base": np.log(base_p)}
    for t, p in TARGETS.items():
        lp[t] = np.log(p[k])
    frac = np.minimum(1.0, CAP / LENGTH[k]) if cell.get("truncate") else np.ones(n)
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": s,
                           "oracle_label": np.where(rng.random(n) < LABEL_SHARE, y, np.nan)})
    for name, v in lp.items():
        col = "logprob_base" if name == "base" else f"logprob[{name}]"
        x = (v + offset) * frac
        if cell.get("jitter"):
            x = x + SIGMA_TOK * np.sqrt(LENGTH[k]) * rng.standard_normal(n)
        logged[col] = np.minimum(x, 0.0)
    parts = []
    for t, p in TARGETS.items():
        kf = rng.choice(K, n, p=p)
        _, sf = _respond(rng, kf, d)
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": t, "judge_score": sf}))
    return logged, pd.concat(parts, ignore_index=True)


#: (key, substring of a reason) — which gate fired
GATES = (
    ("mean_weight_high", "SE above. With log-probabilities"),
    ("mean_weight_low", "SE below. A sample"),
    ("support", "the mean raw importance ratio exp"),
    ("ess", "raw-weight ESS"),
    ("ttc", "TTC"),
    ("tail", "Hill tail index"),
    ("fresh", "fresh draws score"),
    ("wfresh", "weighted logged responses score"),  # the weighting levels' (branch wfresh)
    ("range", "outside the labelled range"),
    ("label_balance", "labelled rows"),
    ("degenerate", "degenerate weights"),
)


def _gates(reasons) -> str:
    fired = [key for key, sub in GATES if any(sub in r for r in reasons)]
    if "support" in fired and ("mean_weight_high" in fired or "mean_weight_low" in fired):
        fired.remove("support")  # (both mean-weight reasons quote the ratio too)
    known = sum(any(sub in r for _, sub in GATES) for r in reasons)
    if known < len(reasons):
        fired.append("other")
    return "+".join(fired)


def run_one(cell_name: str, seed: int, estimators: tuple[str, ...]) -> list[dict]:
    """Every estimator on one replicate of one cell; one row per (estimator, level)."""
    cell = CELLS[cell_name]
    logged, fresh = make_data(seed, cell)
    tr = truth(cell)
    rows = []
    for est in estimators:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rep = cje.analyze(logged, fresh_draws=fresh, estimator=est, judge_scale=(0, 10),
                                  label_scale=(0, 1), progress=False)
            except Exception as exc:  # noqa: BLE001 - recorded, not hidden
                rows.append({"cell": cell_name, "seed": seed, "estimator": est, "policy": "ERROR",
                             "error": repr(exc)[:200]})
                continue
        dt = time.perf_counter() - t0
        for pol, v in tr.items():
            e = rep[pol]
            dg = e.diagnostics or {}
            rows.append({
                "cell": cell_name, "seed": seed, "estimator": est, "policy": pol, "truth": v,
                "estimate": e.estimate, "ci_low": e.ci_low, "ci_high": e.ci_high, "se": e.se,
                "status": e.status, "gates": _gates(e.reasons),
                "mean_w": dg.get("mean_raw_weight", np.nan),
                "mean_w_se": dg.get("mean_raw_weight_se", np.nan),
                "ess_raw": dg.get("ess_raw", np.nan),
                "fresh_z": dg.get("fresh_score_z", np.nan),
                "seconds": dt, "error": "",
            })
    return rows


def _cov(c: np.ndarray) -> str:
    r = c.size
    if r == 0:
        return "— (0)"
    m = float(c.mean())
    return f"{m:.3f} ± {np.sqrt(m * (1 - m) / r):.3f} ({r})"


def _flag(c: np.ndarray) -> str:
    r = c.size
    if r == 0:
        return ""
    m = float(c.mean())
    return " ✗" if m < 0.93 - 2 * np.sqrt(max(m * (1 - m), 1e-12) / r) else ""


def tables(df: pd.DataFrame) -> str:
    """The markdown tables of the results file."""
    df = df[df.policy != "ERROR"].copy()
    df["cover"] = (df.ci_low <= df.truth) & (df.truth <= df.ci_high)
    out = []
    out.append("## Population quantities (exact)\n")
    out.append("E[w] is the expectation, over the density the logs were drawn from, of the raw weight "
               "the cell's log-probabilities give; the Hájek limit is what a weighting estimate "
               "converges to; ESS is the raw-weight ESS fraction of those weights.\n")
    out.append("| cell | target | truth | E[w] | Hájek limit | bias of the limit | pop. ESS |")
    out.append("|---|---|---:|---:|---:|---:|---:|")
    for c in CELLS:
        if c not in set(df.cell):
            continue
        for t, q in population(CELLS[c]).items():
            out.append(f"| {c} | {t} | {q['truth']:.4f} | {q['mean_w']:.3f} | {q['hajek_limit']:.4f} "
                       f"| {q['bias_limit']:+.4f} | {q['ess']:.1%} |")
    out.append("")
    out.append("## Coverage by cell, estimator and level\n")
    out.append("Coverage ± MC SE (replicates); ✗ = below 0.93 by more than 2 MC SE. `gates (not OK)`: "
               "how often each gate was among the reasons of the estimates not OK.\n")
    out.append("| cell | estimator | level | coverage | bias ± MC SE | mean width | OK / CAUTION / "
               "REFUSED | coverage of OK | median mean raw weight (z of m − 1) | median fresh z | "
               "gates (not OK) |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for (c, est, pol), g in df.groupby(["cell", "estimator", "policy"], sort=False):
        b = g.estimate - g.truth
        st = g.status.value_counts(normalize=True)
        ok = g[g.status == "OK"]
        z = ((g.mean_w - 1) / g.mean_w_se).median() if pol != "base" else np.nan
        mw = f"{g.mean_w.median():.3f} ({z:+.1f})" if pol != "base" else "—"
        fz = f"{g.fresh_z.median():+.1f}" if g.fresh_z.notna().any() else "—"
        notok = g[g.status != "OK"]
        counts: dict[str, int] = {}
        for s, zz in zip(notok.gates, (notok.mean_w - 1) / notok.mean_w_se, strict=True):
            for k in str(s).split("+"):
                if k == "mean_weight":  # rows written before the two were told apart
                    k = "mean_weight_high" if zz > 0 else "mean_weight_low"
                if k and k != "nan":
                    counts[k] = counts.get(k, 0) + 1
        gtxt = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
        out.append(
            f"| {c} | {est} | {pol} | {_cov(g.cover.to_numpy())}{_flag(g.cover.to_numpy())} | "
            f"{b.mean():+.4f} ± {b.std(ddof=1) / np.sqrt(len(b)):.4f} | "
            f"{(g.ci_high - g.ci_low).mean():.3f} | {st.get('OK', 0):.2f} / {st.get('CAUTION', 0):.2f} / "
            f"{st.get('REFUSED', 0):.2f} | {_cov(ok.cover.to_numpy())}{_flag(ok.cover.to_numpy())} | "
            f"{mw} | {fz} | {gtxt} |")
    return "\n".join(out) + "\n"


def z_check(reps: int = 4000, seed: int = 7) -> str:
    """How far above 1 does the mean raw weight go with CORRECT log-probabilities? The z statistic
    ``(m − 1) / SE(m)`` (:func:`cje.diagnostics.overlap.mean_raw_weight`) over ``reps`` samples of
    nine weight laws at n = 50, 300 and 3,000: lognormal ratios with mean one at population ESS
    90% to 0.1%, Gaussian-shift targets as in ``independent_tails.py`` (tail index 2.78, and 1.8:
    infinite variance), and a discrete law with a rare response the target favours 80-fold."""
    from cje.diagnostics.overlap import mean_raw_weight

    rng = np.random.default_rng(seed)
    laws = []
    for e in (0.9, 0.5, 0.1, 0.01, 0.001):
        sd = float(np.sqrt(-np.log(e)))
        laws.append((f"lognormal, pop. ESS {e:g}", lambda n, sd=sd: rng.normal(-sd * sd / 2, sd, n)))
    for delta, sd in ((0.5, 1.25), (1.2, 1.25), (0.5, 1.5)):
        def shift(n: int, delta: float = delta, sd: float = sd) -> np.ndarray:
            x = rng.standard_normal(n)
            return (-0.5 * ((x - delta) / sd) ** 2 - np.log(sd)) + 0.5 * x * x
        laws.append((f"Gaussian shift δ = {delta}, s = {sd}", shift))
    p0 = np.full(20, 0.05)
    p0[:2] = 0.005
    p0 /= p0.sum()
    pt = np.full(20, 0.01)
    pt[:2] = 0.4
    pt /= pt.sum()
    laws.append(("discrete, rare favoured response",
                 lambda n: np.log(pt / p0)[rng.choice(20, n, p=p0)]))
    lines = ["| weight law | n | share z > 3.29 | share z > 5 | largest z |", "|---|---:|---:|---:|---:|"]
    for name, draw in laws:
        for n in (50, 300, 3000):
            z = np.empty(reps)
            for r in range(reps):
                m, se, _ = mean_raw_weight(draw(n))
                z[r] = (m - 1.0) / se if se > 0 else 0.0
            lines.append(f"| {name} | {n} | {(z > 3.29).mean():.4f} | {(z > 5).mean():.4f} | "
                         f"{z.max():.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--estimators", default=",".join(ESTIMATORS))
    ap.add_argument("--seed0", type=int, default=0)
    ap.add_argument("--csv", default=str(RESULTS / "independent_mixlog.csv"))
    ap.add_argument("--tables-only", action="store_true")
    ap.add_argument("--z-check", action="store_true",
                    help="only the mean-raw-weight z under correct log-probabilities (numpy)")
    args = ap.parse_args()
    if args.z_check:
        print(z_check())
        return
    if args.tables_only:
        print(tables(pd.read_csv(args.csv, keep_default_na=False, na_values=[""])))
        return
    cells = args.cells.split(",")
    ests = tuple(args.estimators.split(","))
    t0 = time.time()
    jobs = [(c, args.seed0 + s) for c in cells for s in range(args.reps)]
    res = Parallel(n_jobs=args.n_jobs)(delayed(run_one)(c, s, ests) for c, s in jobs)
    df = pd.DataFrame([r for rows in res for r in rows])
    df.to_csv(args.csv, index=False)
    print(f"{len(jobs)} replicates in {time.time() - t0:.0f} s")
    print(tables(df))


if __name__ == "__main__":
    main()
