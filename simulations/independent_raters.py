"""Several raters per response, rater effects and rater noise in direct mode: what does
``cje.analyze`` do with them? Results in ``simulations/results/independent_raters.md``.

**Target.** The expected *rater-averaged* label of a policy's responses: for a response, the
mean label over the intended rater pool (two pools, harsh and lenient, equally weighted, each
with its own per-label noise); averaged over the policy's response population. It is computed
exactly (closed form below), never estimated from a large sample.

**Process (exact truth).** ``G`` prompts (default 400), three policies A, B, C answering every
prompt once. Latent quality ``q = mu_p + u_g + v_i`` with prompt effect ``u_g ~ N(0, 0.6²)``,
response effect ``v_i ~ N(0, 0.6²)`` (``V = Var(q) = 0.72``), ``mu_A = mu_B = 0`` (A and B truly
equal, so any "A > B" or "B > A" is a false claim) and ``mu_C = 0.3``. The judge scores
``S = round(10 Φ(q + w), 1)``, ``w ~ N(0, 0.5²)`` (judge scale 0–10), the same judge for every
policy (the calibration transports). A rater ``r`` gives ``Y = 1 + 4 Φ(q + b_r + β_p + ε)``,
``ε ~ N(0, σ²)`` fresh per label (label scale 1–5), ``b_r = −d`` (harsh pool) or ``+d``
(lenient), ``d = 0.4``, ``σ = 0.5``; ``β_p`` is a rater bias for a policy (0 except in cell
``bias_C``). So the target is

    1 + 2 [Φ((mu_p + β_p + d)/√(1 + σ² + V)) + Φ((mu_p + β_p − d)/√(1 + σ² + V))].

Binary cells: the true label is ``T = 1{q > 0}`` and a rater flips it with probability
``φ = 0.15``; the rater-averaged label is ``φ + (1 − 2φ) T`` and the target
``φ + (1 − 2φ) Φ(mu_p/√V)`` (label scale 0–1).

Unless the cell says otherwise each response is sent for a label with probability 0.2,
independently, and labelled by one rater drawn at random from the two pools.

**Cells.** ``one_rater`` (the reference); ``two_rows`` / ``three_rows`` (every labelled
response labelled by 2 / 3 raters, passed as that many rows with the same prompt, policy and
judge score, no ``draw_idx``); ``two_rows_drawidx`` (the same, the rater number given as
``draw_idx``); ``two_mean`` (the two raters' mean, one row); ``some_second_rows`` (a random 30%
of the labelled responses get a second rater, as a second row); ``disagree_rows`` /
``disagree_mean`` (a second rater only where the first disagrees with the judge's face value
``1 + 0.4 S`` by more than 1 point, either way: both labels as rows, or their mean);
``dispute_rows`` / ``dispute_mean`` (one-sided: a second rater only where the first is more
than 0.75 below the judge's face value, a "the judge passed it, the rater failed it" dispute);
``binary_dispute_rows`` / ``binary_dispute_mean`` (binary labels: a second rater where the first
says 0 and the judge scores above 5). Only the first label of the disputed designs is the
``one_rater`` cell (the same distribution). ``one_rater_big``, ``dispute_rows_big`` and
``dispute_mean_big``: those cells on 5 times as many prompts (at most 400 replicates).
``overrate_one_rater`` / ``overrate_dispute_mean``: the judge over-rates C (``q + 0.5`` in its
score; C's own labels correct its level), one rater, or the ``dispute_mean`` design (C's
responses, over-rated, are disputed more often).
``rater_by_policy`` (the harsh pool labels all of B, the lenient pool A and C);
``rater_by_category`` (odd prompts: harsh pool, even prompts: lenient); ``category_uneven``
(the harsh pool's category labelled at 30%, the other at 10%, no ``label_probability``) and
``category_uneven_lp`` (the same with the true ``label_probability``); ``noise_big`` (σ = 1);
``bias_C`` (raters like C: ``β_C = +0.3``; the target includes it, and the table also scores
against the target without it); ``binary_flip`` (one rater), ``binary_rows2`` (two raters as
rows), ``binary_mean2`` (their mean); ``labelled_copy`` (every labelled response is also in the
data as an unlabelled row, same prompt, policy and judge score: the response under two row
ids, no ``draw_idx``) and ``labelled_copy_drawidx`` (the copy with ``draw_idx = 1``).

Each replicate runs ``cje.analyze(df, judge_scale=(0, 10), label_scale=...)`` with defaults.
Seeds: replicate ``r`` of cell number ``k`` uses ``np.random.default_rng([k, r])``.

Usage::

    python simulations/independent_raters.py [--reps 800] [--prompts 400] [--cells a,b] [--n-jobs 1]
"""

from __future__ import annotations

import argparse
import re
import time
import warnings
from collections import Counter

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy.stats import norm

import cje

POLICIES = ("A", "B", "C")
MU = {"A": 0.0, "B": 0.0, "C": 0.3}
SD_PROMPT, SD_RESP, SD_JUDGE = 0.6, 0.6, 0.5
V = SD_PROMPT**2 + SD_RESP**2
D_RATER, SIGMA, FLIP, P_LABEL = 0.4, 0.5, 0.15, 0.2
PAIRS = (("A", "B"), ("C", "A"), ("C", "B"))
#: Cells whose raters' labels of a response are passed as their mean (one row per response).
AVERAGED = ("two_mean", "disagree_mean", "dispute_mean", "binary_dispute_mean", "dispute_mean_big",
            "binary_mean2", "overrate_dispute_mean")
#: Cells run on 5 times as many prompts (at most 400 replicates).
BIG = ("one_rater_big", "dispute_rows_big", "dispute_mean_big")

CELLS = (
    "one_rater", "two_rows", "three_rows", "two_rows_drawidx", "two_mean", "some_second_rows",
    "disagree_rows", "disagree_mean", "dispute_rows", "dispute_mean", "binary_dispute_rows",
    "binary_dispute_mean", "one_rater_big", "dispute_rows_big", "dispute_mean_big", "overrate_one_rater",
    "overrate_dispute_mean", "rater_by_policy",
    "rater_by_category",
    "category_uneven", "category_uneven_lp", "noise_big", "bias_C", "binary_flip", "binary_rows2",
    "binary_mean2", "labelled_copy", "labelled_copy_drawidx",
)


def truth(cell: str, unbiased: bool = False) -> dict[str, float]:
    """Exact target (expected rater-averaged label) per policy for ``cell``.

    Parameters
    ----------
    cell : str
        One of :data:`CELLS`.
    unbiased : bool
        For ``bias_C``: the target without the raters' bias for C.

    Returns
    -------
    dict
        Policy name to its target value on the label scale.
    """
    if cell.startswith("binary"):
        return {p: FLIP + (1 - 2 * FLIP) * float(norm.cdf(MU[p] / np.sqrt(V))) for p in POLICIES}
    sigma = 1.0 if cell == "noise_big" else SIGMA
    out = {}
    for p in POLICIES:
        m = MU[p] + (0.3 if cell == "bias_C" and p == "C" and not unbiased else 0.0)
        s = np.sqrt(1 + sigma**2 + V)
        out[p] = 1 + 2 * float(norm.cdf((m + D_RATER) / s) + norm.cdf((m - D_RATER) / s))
    return out


def _label(q: np.ndarray, b: np.ndarray, rng: np.random.Generator, sigma: float,
           binary: bool) -> np.ndarray:
    """One rater's labels of responses with quality ``q`` (rater offsets ``b``)."""
    if binary:
        t = (q > 0).astype(float)
        flip = rng.random(q.size) < FLIP
        return np.where(flip, 1 - t, t)
    return 1 + 4 * norm.cdf(q + b + rng.normal(0, sigma, q.size))


def make_data(cell: str, rng: np.random.Generator, prompts: int) -> pd.DataFrame:
    """One replicate's data for ``cell`` (long format, direct mode).

    Parameters
    ----------
    cell : str
        One of :data:`CELLS`.
    rng : numpy.random.Generator
        Source of randomness.
    prompts : int
        Number of prompts; every policy answers each once.

    Returns
    -------
    pandas.DataFrame
        Columns ``prompt_id, policy, judge_score, oracle_label`` and, in some cells,
        ``draw_idx`` or ``label_probability``.
    """
    binary = cell.startswith("binary")
    sigma = 1.0 if cell == "noise_big" else SIGMA
    u = rng.normal(0, SD_PROMPT, prompts)
    frames = []
    for p in POLICIES:
        pid = np.arange(prompts)
        q = MU[p] + u + rng.normal(0, SD_RESP, prompts)
        lift = 0.5 if cell.startswith("overrate") and p == "C" else 0.0  # the judge over-rates C
        s = np.round(10 * norm.cdf(q + lift + rng.normal(0, SD_JUDGE, prompts)), 1)
        qb = q + (0.3 if cell == "bias_C" and p == "C" else 0.0)
        cat0 = pid % 2 == 1  # the harsh pool's category in the category cells
        if cell in ("category_uneven", "category_uneven_lp"):
            prob = np.where(cat0, 0.3, 0.1)
        else:
            prob = np.full(prompts, P_LABEL)
        lab = rng.random(prompts) < prob

        def rater(p: str = p, cat0: np.ndarray = cat0) -> np.ndarray:
            if cell == "rater_by_policy":
                return np.full(prompts, -D_RATER if p == "B" else D_RATER)
            if cell.startswith("rater_by_category") or cell.startswith("category_uneven"):
                return np.where(cat0, -D_RATER, D_RATER)
            return np.where(rng.random(prompts) < 0.5, -D_RATER, D_RATER)

        y1 = _label(qb, rater(), rng, sigma, binary)
        base = pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                             "oracle_label": np.where(lab, y1, np.nan)})
        if cell == "category_uneven_lp":
            base["label_probability"] = prob
        extra = []  # further rows: (mask of responses, their labels, draw number)
        if cell in ("two_rows", "three_rows", "two_rows_drawidx", "two_mean", "binary_rows2",
                    "binary_mean2"):
            more = 2 if cell == "three_rows" else 1
            for k in range(more):
                extra.append((lab, _label(qb, rater(), rng, sigma, binary), k + 1))
        elif cell == "some_second_rows":
            extra.append((lab & (rng.random(prompts) < 0.3),
                          _label(qb, rater(), rng, sigma, binary), 1))
        elif cell.startswith("disagree"):
            dis = lab & (np.abs(y1 - (1 + 0.4 * s)) > 1.0)
            extra.append((dis, _label(qb, rater(), rng, sigma, binary), 1))
        elif cell.startswith("dispute") or cell == "overrate_dispute_mean":  # (and the _big cells)
            dis = lab & (y1 < 1 + 0.4 * s - 0.75)
            extra.append((dis, _label(qb, rater(), rng, sigma, binary), 1))
        elif cell.startswith("binary_dispute"):
            dis = lab & (y1 == 0) & (s > 5)
            extra.append((dis, _label(qb, rater(), rng, sigma, binary), 1))
        if cell in AVERAGED:
            tot, cnt = y1.copy(), np.ones(prompts)
            for m, y, _ in extra:
                tot += np.where(m, y, 0.0)
                cnt += m
            base["oracle_label"] = np.where(lab, tot / cnt, np.nan)
            extra = []
        if cell.startswith("labelled_copy"):
            extra.append((lab, np.full(prompts, np.nan), 1))
        parts = [base.assign(draw_idx=0)]
        for m, y, k in extra:
            parts.append(base[m].assign(oracle_label=y[m], draw_idx=k))
        df = pd.concat(parts, ignore_index=True)
        if "drawidx" not in cell:
            df = df.drop(columns="draw_idx")
        frames.append(df)
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=rng.integers(2**31))


def _norm(msg: str) -> str:
    """A message with its numbers replaced by ``#`` (so replicates' messages can be counted)."""
    return re.sub(r"'[^']*'", "'…'", re.sub(r"\d[\d,.]*", "#", msg))[:160]


def one_rep(cell: str, k: int, r: int, prompts: int) -> dict:
    """Analyse replicate ``r`` of cell ``cell`` (number ``k``); return per-level and per-pair
    results and the messages printed."""
    rng = np.random.default_rng([k, r])
    df = make_data(cell, rng, prompts)
    scale = (0.0, 1.0) if cell.startswith("binary") else (1.0, 5.0)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            rep = cje.analyze(df, judge_scale=(0, 10), label_scale=scale)
        except cje.errors.CJEInputError as e:
            return {"error": _norm(str(e))}
    lev = {e.policy: (e.estimate, e.ci_low, e.ci_high, e.status, e.n, e.n_labels, e.reasons)
           for e in rep.estimates}
    con = {(c.policy_a, c.policy_b): (c.estimate, c.ci_low, c.ci_high, c.significant)
           for c in rep.pairs}
    msgs = [("notice", _norm(n)) for n in rep.notices] + [("warning", _norm(x)) for x in rep.warnings]
    msgs += [("python-warning", _norm(str(x.message))) for x in w]
    reasons = [("reason", _norm(x)) for v in lev.values() for x in v[6]]
    return {"lev": lev, "con": con, "msgs": msgs + reasons}


def _cov(hit: list[bool]) -> str:
    """Share with its Monte Carlo SE, or a dash when there is nothing to count."""
    if not hit:
        return "—"
    c = float(np.mean(hit))
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / len(hit)):.3f} (n={len(hit)})"


def summarise(cell: str, out: list[dict]) -> list[str]:
    """Markdown lines for one cell."""
    tv = truth(cell)
    lines = [f"## {cell}", ""]
    errs = [o["error"] for o in out if "error" in o]
    ok_out = [o for o in out if "error" not in o]
    if errs:
        lines.append(f"Refused (CJEInputError) in {len(errs)}/{len(out)} replicates: "
                     f"`{Counter(errs).most_common(1)[0][0]}`")
        lines.append("")
    if not ok_out:
        return lines
    lines += ["| policy | truth | mean est − truth | cover (all) | cover (OK) | OK | CAUTION | REFUSED "
              "| mean n | mean n_labels |", "|---|---:|---:|---|---|---:|---:|---:|---:|---:|"]
    for p in POLICIES:
        rows = [o["lev"][p] for o in ok_out if p in o["lev"]]
        est = np.array([x[0] for x in rows])
        hit = [x[1] <= tv[p] <= x[2] for x in rows]
        hit_ok = [h for h, x in zip(hit, rows, strict=True) if x[3] == "OK"]
        st = Counter(x[3] for x in rows)
        n = len(rows)
        lines.append(f"| {p} | {tv[p]:.4f} | {np.mean(est) - tv[p]:+.4f} | {_cov(hit)} | {_cov(hit_ok)} | "
                     f"{st['OK'] / n:.3f} | {st['CAUTION'] / n:.3f} | {st['REFUSED'] / n:.3f} | "
                     f"{np.mean([x[4] for x in rows]):.0f} | {np.mean([x[5] for x in rows]):.1f} |")
    if cell == "bias_C":
        tu = truth(cell, unbiased=True)
        rows = [o["lev"]["C"] for o in ok_out]
        lines.append(f"\nAgainst C's target without the raters' bias ({tu['C']:.4f}): cover "
                     f"{_cov([x[1] <= tu['C'] <= x[2] for x in rows])}")
    lines += ["", "| contrast | truth | mean est − truth | cover (all) | cover (both OK) | "
              "significant | false claim |", "|---|---:|---:|---|---|---:|---:|"]
    for a, b in PAIRS:
        t = tv[a] - tv[b]
        rows = []
        for o in ok_out:
            if (a, b) in o["con"]:
                e, lo, hi, sig = o["con"][(a, b)]
            elif (b, a) in o["con"]:
                e, lo, hi, sig = o["con"][(b, a)]
                e, lo, hi = -e, -hi, -lo
            else:
                continue
            both_ok = o["lev"][a][3] == "OK" and o["lev"][b][3] == "OK"
            rows.append((e, lo, hi, sig, both_ok))
        hit = [lo <= t <= hi for _, lo, hi, _, _ in rows]
        hit_ok = [h for h, x in zip(hit, rows, strict=True) if x[4]]
        false = [x[3] and (abs(t) < 1e-12 or np.sign(x[0]) != np.sign(t)) for x in rows]
        lines.append(f"| {a} − {b} | {t:+.4f} | {np.mean([x[0] for x in rows]) - t:+.4f} | {_cov(hit)} | "
                     f"{_cov(hit_ok)} | {np.mean([x[3] for x in rows]):.3f} | {_cov(false)} |")
    cnt = Counter(m for o in ok_out for m in set(o["msgs"]))
    common = [(k, v) for k, v in cnt.most_common() if "Calibration mode" not in k[1]]
    lines += ["", "Messages (share of replicates; numbers replaced by #):", ""]
    lines += [f"* {v / len(ok_out):.3f} {kind}: `{m}`" for (kind, m), v in common[:8]] or ["* none"]
    lines.append("")
    return lines


def main() -> None:
    """Command line: run the cells and write the tables to stdout (markdown)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=800)
    ap.add_argument("--prompts", type=int, default=400)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--n-jobs", type=int, default=1)
    ns = ap.parse_args()
    t_all = time.time()
    for cell in ns.cells.split(","):
        k = CELLS.index(cell)
        t0 = time.time()
        big = cell in BIG
        reps, prompts = (min(ns.reps, 400), 5 * ns.prompts) if big else (ns.reps, ns.prompts)
        out = Parallel(n_jobs=ns.n_jobs)(delayed(one_rep)(cell, k, r, prompts) for r in range(reps))
        print("\n".join(summarise(cell, out)))
        print(f"({reps} replicates, {prompts} prompts, {time.time() - t0:.0f} s)\n", flush=True)
    print(f"Total {time.time() - t_all:.0f} s.")


if __name__ == "__main__":
    main()
