"""Hunt: wrong OK intervals under weighted label designs and ``calibration=`` data (own DGP).

A process built from scratch (numpy only, not ``cje.synthetic``), scored against the exact truth.

* Each policy answers each prompt once. Latent quality ``z = μ_p + u + e`` (prompt effect
  ``u ~ N(0, 0.7²)``, response effect ``e ~ N(0, 0.7²)``) and a **hidden flaw** ``h ~ Bern(0.2)``
  the judge does not see (a factual error, say) that lowers the label.
* Judge: integer 1–10, ``round(5.5 + 2 z + b_p + N(0, 0.8²))`` clipped (``b_p`` a per-policy bias).
* Labels: binary ``Y ~ Bern(σ(1.2 z − 1.5 h))`` or 1–5 ordinal
  ``Y = 1 + Σ_k 1[1.2 z − 1.5 h + ε > c_k]``, ``ε`` standard logistic, ``c = (−1.5, −0.5, 0.5, 1.5)``.
  Truth ``E Y`` by Gauss–Hermite quadrature over ``z`` and the two values of ``h``.
* Policies: A (``μ = 0``, ``b = 0``), B (``μ = 0.3``, ``b = +0.5``).

Cells:

(a) extreme ratios: ``π = 0.005`` on about 80% of rows and ``0.3`` on the rest, either by judge
    score (``0.3`` when the score is ≥ 8, about the top 20%) or by the hidden flaw (``0.3`` when
    ``h = 1``, 20%); binary and 1–5 labels; 300 and 2,000 prompts; both policies labelled under
    the design, ``label_probability`` given.
(b) ``π`` depends on the hidden flaw, moderately (``0.03`` when ``h = 0``, ``0.25`` when
    ``h = 1``), and on a continuous hidden feature (``π = 0.02 + 0.2·σ(3(y* − 1))``, ``y*`` the
    label's linear predictor, not the label); 1,000 prompts. Allowed: ``π`` known and independent of
    ``Y`` given the row's features.
(c) ``calibration=``: 2,000 extra labelled rows drawn like A's but with judge scores **1 point
    lower** for the same quality; A has 5% MCAR own labels; B has none (its level rests on a
    calibration that does not transport: it should never be OK). 1,000 prompts.

Per (cell, policy): coverage of all 95% intervals and of the OK ones (MC SE ``sqrt(c(1 − c)/r)``),
share OK, bias, mean width, and what a proposed design check (not in the package: not OK when
``Σ_labelled 1/π`` lies more than 3 estimated Horvitz–Thompson SEs below the policy's row count)
would change. Writes ``simulations/results/independent_lprob.md`` (a hand-written '## Reading'
section already there is kept) and the per-replicate ``.csv``.

Usage::

    python simulations/independent_lprob.py [--reps 500] [--n-jobs 1]
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

#: proposed check (not in the package): not OK when Σ_labelled 1/π is more than Z_CHECK estimated
#: Horvitz–Thompson SEs below the policy's row count
Z_CHECK = -3.0
OUT = Path(__file__).resolve().parent / "results" / "independent_lprob.md"

SD_U, SD_E, P_FLAW = 0.7, 0.7, 0.2
POLICIES = {"A": (0.0, 0.0), "B": (0.3, 0.5)}  # (μ, judge bias)
CUTS = np.array([-1.5, -0.5, 0.5, 1.5])
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(120)
_GH_W = _GH_W / _GH_W.sum()


def _sig(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def truth(mu: float, labels: str) -> float:
    """Exact ``E Y`` for a policy with mean latent quality ``mu``."""
    z = mu + np.sqrt(SD_U ** 2 + SD_E ** 2) * _GH_X
    val = 0.0
    for h, ph in ((0, 1 - P_FLAW), (1, P_FLAW)):
        eta = 1.2 * z - 1.5 * h
        if labels == "binary":
            m = _sig(eta)
        else:
            m = 1.0 + _sig(eta[:, None] - CUTS[None, :]).sum(axis=1)
        val += ph * float((_GH_W * m).sum())
    return val


def _rows(rng: np.random.Generator, pids: np.ndarray, u: np.ndarray, mu: float, bias: float,
          labels: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = pids.size
    z = mu + u + SD_E * rng.standard_normal(n)
    h = (rng.random(n) < P_FLAW).astype(int)
    s = np.clip(np.round(5.5 + 2 * z + bias + 0.8 * rng.standard_normal(n)), 1, 10)
    eta = 1.2 * z - 1.5 * h
    if labels == "binary":
        y = (rng.random(n) < _sig(eta)).astype(float)
    else:
        eps = rng.logistic(size=n)
        y = 1.0 + ((eta + eps)[:, None] > CUTS[None, :]).sum(axis=1)
    return s, h, eta, y


def _pi(rule: str, s: np.ndarray, h: np.ndarray, eta: np.ndarray) -> np.ndarray:
    if rule == "extreme-score":
        return np.where(s >= 8, 0.3, 0.005)
    if rule == "extreme-flaw":
        return np.where(h == 1, 0.3, 0.005)
    if rule == "flaw":
        return np.where(h == 1, 0.25, 0.03)
    if rule == "hidden-cont":
        return 0.02 + 0.2 * _sig(3 * (eta - 1))
    if rule == "mcar5":
        return np.full(s.size, 0.05)
    raise ValueError(rule)


def replicate(seed: int, rule: str, labels: str, n: int) -> list[dict]:
    """One replicate of a cell; one scored row per policy."""
    rng = np.random.default_rng(seed)
    pids = np.array([f"q{i}" for i in range(n)])
    u = SD_U * rng.standard_normal(n)
    parts, design = [], {}
    for pol, (mu, bias) in POLICIES.items():
        s, h, eta, y = _rows(rng, pids, u, mu, bias, labels)
        if rule == "calib" and pol == "B":
            lab = np.zeros(n, bool)
            prob = np.full(n, np.nan)
        else:
            prob = _pi("mcar5" if rule == "calib" else rule, s, h, eta)
            lab = rng.random(n) < prob
        df = pd.DataFrame({"prompt_id": pids, "policy": pol, "judge_score": s,
                           "oracle_label": np.where(lab, y, np.nan)})
        if rule != "calib":
            df["label_probability"] = np.where(lab, prob, np.nan)
            # the proposed design check: Σ_labelled 1/π against the policy's rows (its expectation
            # under Poisson sampling), in Horvitz–Thompson SEs estimated from the labelled rows
            w, p_l = 1.0 / prob[lab], prob[lab]
            v = float(((1 - p_l) / p_l ** 2).sum())
            design[pol] = (w.sum() / n, (w.sum() - n) / np.sqrt(v) if v > 0 else np.nan)
        parts.append(df)
    data = pd.concat(parts, ignore_index=True)
    calibration = None
    if rule == "calib":
        m = 2000
        uc = SD_U * rng.standard_normal(m)
        s, _, _, y = _rows(rng, np.arange(m), uc, POLICIES["A"][0], -1.0, labels)
        calibration = pd.DataFrame({"prompt_id": [f"c{i}" for i in range(m)], "judge_score": s,
                                    "oracle_label": y})
    scale = (0, 1) if labels == "binary" else (1, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rep = cje.analyze(data, calibration=calibration, judge_scale=(1, 10), label_scale=scale)
        except cje.errors.CJEInputError as exc:  # e.g. a policy with no labelled row in the design
            return [{"seed": seed, "policy": p, "estimate": np.nan, "truth": truth(v[0], labels),
                     "covered": False, "status": "ERROR", "width": np.nan, "n_labels": 0,
                     "reason": str(exc)[:80]} for p, v in POLICIES.items()]
    out = []
    for e in rep.estimates:
        t = truth(POLICIES[e.policy][0], labels)
        ok_ci = e.ci_low is not None and np.isfinite(e.ci_low)
        out.append({"seed": seed, "policy": e.policy, "estimate": e.estimate, "truth": t,
                    "covered": bool(ok_ci and e.ci_low <= t <= e.ci_high), "status": e.status,
                    "width": (e.ci_high - e.ci_low) if ok_ci else np.nan, "n_labels": e.n_labels,
                    "reason": " | ".join(e.reasons)[:200],
                    "w_over_n": design.get(e.policy, (np.nan, np.nan))[0],
                    "z_ht": design.get(e.policy, (np.nan, np.nan))[1]})
    return out


CELLS = [  # (name, rule, labels, prompts)
    ("a: extreme by score, binary, 300", "extreme-score", "binary", 300),
    ("a: extreme by score, binary, 2000", "extreme-score", "binary", 2000),
    ("a: extreme by score, 1-5, 300", "extreme-score", "ordinal", 300),
    ("a: extreme by score, 1-5, 2000", "extreme-score", "ordinal", 2000),
    ("a: extreme by flaw, binary, 300", "extreme-flaw", "binary", 300),
    ("a: extreme by flaw, binary, 2000", "extreme-flaw", "binary", 2000),
    ("a: extreme by flaw, 1-5, 300", "extreme-flaw", "ordinal", 300),
    ("a: extreme by flaw, 1-5, 2000", "extreme-flaw", "ordinal", 2000),
    ("b: by flaw 0.03/0.25, binary, 1000", "flaw", "binary", 1000),
    ("b: by flaw 0.03/0.25, 1-5, 1000", "flaw", "ordinal", 1000),
    ("b: hidden continuous, binary, 1000", "hidden-cont", "binary", 1000),
    ("c: calibration= shifted -1, binary, 1000", "calib", "binary", 1000),
    ("c: calibration= shifted -1, 1-5, 1000", "calib", "ordinal", 1000),
]


def _cov(x: pd.Series) -> str:
    if len(x) == 0:
        return "— (0)"
    c = float(x.mean())
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / len(x)):.3f} ({len(x)})"


def summarise(df: pd.DataFrame) -> list[str]:
    """Markdown table rows, one per (cell, policy)."""
    lines = []
    for (cell, pol), g in df.groupby(["cell", "policy"], sort=False):
        ok = g[g["status"] == "OK"]
        kept = ok[~(ok["z_ht"] < Z_CHECK)] if "z_ht" in ok else ok  # OK after the proposed check
        lines.append(f"| {cell} | {pol} | {g['n_labels'].mean():.1f} | {_cov(g['covered'])} | "
                     f"{(g['estimate'] - g['truth']).mean():+.4f} | {g['width'].mean():.3f} | "
                     f"{(g['status'] == 'OK').mean():.2f} | {_cov(ok['covered'])} | "
                     f"{(ok['estimate'] - ok['truth']).mean() if len(ok) else float('nan'):+.4f} | "
                     f"{(g['status'] == 'CAUTION').mean():.2f} | {(g['status'] == 'REFUSED').mean():.2f} | "
                     f"{(g['status'] == 'ERROR').mean():.2f} | "
                     f"{(g['status'] == 'OK').mean() - len(kept) / len(g):.2f} | "
                     f"{_cov(kept['covered'])} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cells", type=str, default="", help="comma-separated cell indices (default all)")
    ns = ap.parse_args()
    idx = [int(i) for i in ns.cells.split(",")] if ns.cells else range(len(CELLS))
    t0 = time.perf_counter()
    par = Parallel(n_jobs=ns.n_jobs)
    frames = []
    for i in idx:
        name, rule, labels, n = CELLS[i]
        t1 = time.perf_counter()
        res = par(delayed(replicate)(s, rule, labels, n) for s in range(ns.reps))
        df = pd.DataFrame([r for rr in res for r in rr]).assign(cell=name)
        frames.append(df)
        print(f"{name}: {time.perf_counter() - t1:.0f} s", flush=True)
        print("\n".join(summarise(df)), flush=True)
    df = pd.concat(frames, ignore_index=True)
    df.drop(columns="reason").to_csv(OUT.with_suffix(".csv"), index=False, float_format="%.5g")
    out = ["# Independent hunt: weighted label designs and `calibration=` data", "",
           f"Command: `python simulations/independent_lprob.py --reps {ns.reps} --n-jobs {ns.n_jobs}`"
           + (f" --cells {ns.cells}" if ns.cells else "") + ".",
           "Design: module docstring of `simulations/independent_lprob.py` (numpy only); `cje.analyze` "
           "defaults; exact truth; seeds 0.. per cell. MC SE = sqrt(c(1−c)/r).", "",
           "| cell | policy | mean labels | coverage ± MC SE (r) | bias | mean width | share OK | "
           "coverage of OK ± MC SE (r) | bias of OK | CAUTION | REFUSED | error | "
           "share of all that the check would take from OK | coverage of OK after the check (r) |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"] + summarise(df)
    out += ["", f"Runtime: {time.perf_counter() - t0:.0f} s.", ""]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    old = OUT.read_text() if OUT.exists() else ""
    keep = old[old.index("## Reading"):] if "## Reading" in old else ""  # hand-written, kept
    OUT.write_text("\n".join(out) + "\n" + keep)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
