"""Check: "Better" claims, the ranking's tiers and the contrasts with MANY policies and near ties.

Earlier checks of the contrasts used 2-5 policies (``independent_contrasts.py``,
``study_ranking.py``). With 6-25 policies the Holm adjustment works far out in the tail of the
t distribution (25 policies: 300 pairs, the first Holm threshold is ``0.05/300 = 1.7e-4``), so any
error in a contrast's standard error or degrees of freedom that is harmless at 5% can multiply
there. This script builds a direct (fresh-draw) process in numpy alone, with exact truth, and
scores what a reader takes from a report: the "Better" line (every pair with ``p_holm < alpha``),
the ranking's tiers, the policy named alone at the top, and the contrasts' intervals.

Process. ``G`` prompts, difficulty ``d_g ~ N(0, 0.8²)`` and a judge error ``u_g ~ N(0, 0.4²)``
shared by every response to the prompt (the judge errs by prompt). Policy ``k`` has a quality
``mu_k`` and a judge bias ``b_k`` (judge points). Each policy answers every prompt ``R`` times; per
response ``z = mu_k − d_g + ε``, ``ε ~ N(0, 1)``. Labels: ``binary`` ``Y = 1{z > 0}``, truth
``Φ(mu_k / √1.64)``; or ``cont`` ``Y = Φ(z)`` on [0, 1], truth ``Φ(mu_k / √2.64)`` (both exact:
``E Φ(X) = Φ(m/√(1+s²))`` for ``X ~ N(m, s²)``). Judge on 1-10:
``S = clip(round(1 + 9 σ(z + u_g + 0.6 η) + b_k), 1, 10)``, ``η ~ N(0, 1)``. Oracle labels MCAR on
a share of the rows of every policy (``labelled = all``) or of the first policy only (``one``; the
rest rest on the calibration transporting and are CAUTION by design).

Scored per replicate: each pair's wrong claim (Holm-significant while the truth is 0 or of the
other sign; the "Better" line prints exactly these pairs), any wrong claim (family-wise; Holm's
promise is <= alpha when the tests are valid), the same restricted to pairs of two OK levels (a
"wrong OK"), coverage of the per-pair unadjusted intervals (per pair and all at once — the latter
is not promised, the report says the intervals are unadjusted), a wrong ranking (two policies in
different tiers against the truth, equal ones split), and the top tier when it is a single policy
(a claim that it beats every other: wrong when another policy is at least as good). MC SE of a
share ``c`` over ``r`` replicates: ``sqrt(c(1 − c)/r)``. Writes
``simulations/results/independent_ranking.md``.

Usage::

    python simulations/independent_ranking.py [--reps 1000] [--reps-off 400] [--n-jobs 1]
        [--cells a,b [--append]]
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

OUT = Path(__file__).resolve().parent / "results" / "independent_ranking.md"
_phi = NormalDist().cdf


@dataclass(frozen=True)
class Cell:
    """One design: policies' qualities and judge biases, sizes and labels."""

    name: str
    mu: tuple[float, ...]
    n_prompts: int
    reps_per_prompt: int = 1
    label_share: float = 0.10
    labelled: str = "all"
    label: str = "binary"
    bias: tuple[float, ...] = field(default=())
    note: str = ""
    #: off-policy: per target, the share of each pair's mass on its judge-favoured type (see OFF_*)
    tilt: tuple[tuple[float, ...], ...] = field(default=())
    #: off-policy: per target, an exponential tilt of the pairs' masses towards the better pairs
    lift: tuple[float, ...] = field(default=())
    fresh: bool = True
    #: direct: labels in a probe slice (own prompts, all labelled) of every policy but p00; 0: none
    probe: int = 0
    #: direct: each policy answers its own random ``subset`` of the prompts (once each); 0: all
    subset: int = 0
    #: direct: label shares spread evenly from 4% to 30% over the policies (in a random order)
    spread_labels: bool = False
    alpha: float = 0.05

    @property
    def offpolicy(self) -> bool:
        return bool(self.tilt)

    @property
    def n_policies(self) -> int:
        return len(self.tilt) + 1 if self.tilt else len(self.mu)

    def biases(self) -> tuple[float, ...]:
        return self.bias if self.bias else (0.0,) * len(self.mu)

    def truth(self) -> dict[str, float]:
        if self.offpolicy:
            return {"base": float((OFF_P0 * OFF_VALUE).sum()),
                    **{f"t{k}": float((_off_target(self, k) * OFF_VALUE).sum())
                       for k in range(len(self.tilt))}}
        s = math.sqrt(1.64 if self.label == "binary" else 2.64)
        return {f"p{k:02d}": _phi(m / s) for k, m in enumerate(self.mu)}


# ------------------------------------------------------------------ off-policy process
#: response types come in pairs of equal value; the judge over-rates the second of each pair
OFF_QUALITY = np.array([-1.2, -0.6, 0.0, 0.6, 1.2])
OFF_PAIR_MASS = np.array([0.15, 0.25, 0.25, 0.2, 0.15])
OFF_STYLE = 1.0  # judge points added to a pair's second type
#: logging policy: each pair's mass split evenly; types (2j, 2j+1) belong to pair j
OFF_P0 = np.repeat(OFF_PAIR_MASS / 2, 2)
#: exact value of each type: P(q − d + ε > 0) with d ~ N(0, 0.8²), ε ~ N(0, 1)
OFF_VALUE = np.repeat([_phi(q / math.sqrt(1.64)) for q in OFF_QUALITY], 2)


def _off_target(cell: Cell, k: int) -> np.ndarray:
    """Target ``k``'s type distribution: its pair masses (tilted by ``lift``) split by ``tilt``."""
    mass = OFF_PAIR_MASS * np.exp((cell.lift[k] if cell.lift else 0.0) * OFF_QUALITY)
    mass = mass / mass.sum()
    share = np.asarray(cell.tilt[k])
    return np.column_stack([mass * (1 - share), mass * share]).ravel()


def _off_responses(rng: np.random.Generator, p: np.ndarray, pid: np.ndarray, d: np.ndarray,
                   u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = rng.choice(p.size, size=pid.size, p=p)
    z = OFF_QUALITY[t // 2] - d[pid] + rng.standard_normal(pid.size)
    lat = z + u[pid] + 0.6 * rng.standard_normal(pid.size)
    s = np.clip(np.round(1 + 9 / (1 + np.exp(-lat)) + OFF_STYLE * (t % 2)), 1, 10)
    return t, s, (z > 0).astype(float)


def _off_data(cell: Cell, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    g = cell.n_prompts
    d, u = 0.8 * rng.standard_normal(g), 0.4 * rng.standard_normal(g)
    pid = np.arange(g)
    t, s, y = _off_responses(rng, OFF_P0, pid, d, u)
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": s,
                           "oracle_label": np.where(rng.random(g) < cell.label_share, y, np.nan),
                           "logprob_base": np.log(OFF_P0[t])})
    for k in range(len(cell.tilt)):
        logged[f"logprob[t{k}]"] = np.log(_off_target(cell, k)[t])
    if not cell.fresh:
        return logged, None
    fresh = [pd.DataFrame({"prompt_id": pid, "policy": "base",
                           "judge_score": _off_responses(rng, OFF_P0, pid, d, u)[1]})]
    for k in range(len(cell.tilt)):
        fresh.append(pd.DataFrame({"prompt_id": pid, "policy": f"t{k}", "judge_score":
                                   _off_responses(rng, _off_target(cell, k), pid, d, u)[1]}))
    return logged, pd.concat(fresh, ignore_index=True)


def _shares(k: int, spread: float) -> tuple[float, ...]:
    """Target ``k``'s judge-favoured share per pair: 0.5 ± spread, the sign alternating by k."""
    sign = 1 if k % 2 else -1
    return tuple(float(np.clip(0.5 + sign * spread * (1 + 0.25 * j) / 2, 0.05, 0.95)) for j in range(5))


def _ladder(p: int, step: float) -> tuple[float, ...]:
    return tuple(step * (p - 1 - k) for k in range(p))


def _tiers(p: int, levels: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(levels[k * len(levels) // p] for k in range(p))


CELLS = [
    Cell("null6_2000", (0.0,) * 6, 2000, label_share=0.05,
         note="global null, 6 policies, 2,000 rows, 5% labels"),
    Cell("null12_500", (0.0,) * 12, 500, note="global null, 12 policies, 500 rows, 10% labels"),
    Cell("null25_400", (0.0,) * 25, 400, note="global null, 25 policies, 400 rows, 10% labels"),
    Cell("null25_2000", (0.0,) * 25, 2000, label_share=0.05,
         note="global null, 25 policies, 2,000 rows, 5% labels"),
    Cell("null25_200", (0.0,) * 25, 200, note="global null, 25 policies, 200 rows, 10% labels (~20 own)"),
    Cell("null40_few", (0.0,) * 40, 250, label_share=0.06,
         note="global null, 40 policies, 250 rows, 6% labels (~15 own)"),
    Cell("null40_bias_few", (0.0,) * 40, 250, label_share=0.06, bias=(1.5,) * 10 + (0.0,) * 30,
         note="global null, 40 policies, judge over-rates 10 by 1.5, 250 rows, 6% labels"),
    Cell("null12_R4", (0.0,) * 12, 125, reps_per_prompt=4,
         note="global null, 12 policies, 125 prompts x 4 responses, 10% labels"),
    Cell("null12_bias", (0.0,) * 12, 500, bias=(1.5,) * 4 + (0.0,) * 8,
         note="global null, 12 policies, the judge over-rates 4 by 1.5 points, 10% labels on all"),
    Cell("null12_bias_few", (0.0,) * 12, 300, label_share=0.05, bias=(1.5,) * 4 + (0.0,) * 8,
         note="as `null12_bias` with 300 rows and 5% labels (~15 own)"),
    Cell("null25_bias_few", (0.0,) * 25, 300, label_share=0.05, bias=(1.5,) * 8 + (0.0,) * 17,
         note="global null, 25 policies, judge over-rates 8 by 1.5, 300 rows, 5% labels (~15 own)"),
    Cell("null12_R4_bias", (0.0,) * 12, 100, reps_per_prompt=5, label_share=0.05,
         bias=(1.5,) * 4 + (0.0,) * 8,
         note="global null, 12 policies, 100 prompts x 5, judge over-rates 4 by 1.5, 5% labels"),
    Cell("null12_cont", (0.0,) * 12, 500, label="cont", label_share=0.05,
         note="global null, 12 policies, continuous labels, 5% labels"),
    Cell("null12_one", (0.0,) * 12, 500, labelled="one", label_share=0.25,
         bias=(0.0,) * 8 + (1.0,) * 4,
         note="global null, 12 policies, labels (25%) on p00 only; judge over-rates p08-p11 by 1"),
    Cell("probe12", (0.0,) * 12, 500, labelled="one", label_share=0.2, probe=30,
         bias=tuple(1.5 * (k % 3 == 1) for k in range(12)),
         note="global null, 12 policies, labels (20%) on p00 only, a 30-label probe slice on each "
              "other; judge over-rates every third by 1.5"),
    Cell("probe25", (0.0,) * 25, 400, labelled="one", label_share=0.2, probe=30,
         bias=tuple(1.5 * (k % 3 == 1) for k in range(25)),
         note="as `probe12` with 25 policies, 400 rows"),
    Cell("near_bound25", (1.9,) * 25, 400, label_share=0.05, bias=(1.5,) * 8 + (0.0,) * 17,
         note="global null near the bound (true rate 0.931), 25 policies, judge over-rates 8 by 1.5, "
              "400 rows, 5% labels (~20 own)"),
    Cell("unbalanced25", (0.0,) * 25, 400, subset=150, spread_labels=True, bias=(1.5,) * 8 + (0.0,) * 17,
         note="global null, 25 policies each on its own random 150 of 400 prompts, label shares 4-30% "
              "by policy, judge over-rates 8 by 1.5"),
    Cell("null25_bias_few_a01", (0.0,) * 25, 300, label_share=0.05, bias=(1.5,) * 8 + (0.0,) * 17,
         alpha=0.01, note="as `null25_bias_few` at alpha = 0.01 (Holm's first threshold 3.3e-5)"),
    Cell("null40_bias_few_a01", (0.0,) * 40, 250, label_share=0.06, bias=(1.5,) * 10 + (0.0,) * 30,
         alpha=0.01, note="as `null40_bias_few` at alpha = 0.01 (first threshold 1.3e-5)"),
    Cell("tiers12", _tiers(12, (0.25, 0.0, -0.25)), 500,
         note="3 true tiers of 4 (mu 0.25/0/-0.25), 12 policies, 500 rows, 10% labels"),
    Cell("tiers25_bias", _tiers(25, (0.25, 0.0, -0.25)), 400,
         bias=tuple(1.0 * (k % 3 == 2) for k in range(25)),
         note="3 true tiers (9/8/8), 25 policies, judge over-rates every third by 1, 400 rows, 10% labels"),
    Cell("ladder12", _ladder(12, 0.1), 1000,
         note="ladder of 12, mu step 0.1, 1,000 rows, 10% labels"),
    Cell("ladder25", _ladder(25, 0.08), 800,
         note="ladder of 25, mu step 0.08, 800 rows, 10% labels"),
    Cell("top_tie12", (0.25, 0.25) + (0.0,) * 10, 500,
         note="two tied best (mu 0.25) above ten at 0, 500 rows, 10% labels"),
    Cell("off8_null", (), 2000, tilt=tuple(_shares(k, 0.2 + 0.1 * (k // 2)) for k in range(8)),
         note="off-policy global null: base + 8 targets of equal value that move mass to or from "
              "the type the judge over-rates; 2,000 logged rows, 10% labels, fresh draws (DR)"),
    Cell("off8_null_ips", (), 2000, tilt=tuple(_shares(k, 0.2 + 0.1 * (k // 2)) for k in range(8)),
         fresh=False, note="as `off8_null` without fresh draws (importance weighting only)"),
    Cell("off8_ladder", (), 2000, tilt=tuple(_shares(k, 0.3) for k in range(8)),
         lift=tuple(0.04 * k for k in range(8)),
         note="off-policy ladder: 8 targets tilted towards better pairs by 0-0.28, 2,000 rows, "
              "10% labels, DR"),
]


def _data(cell: Cell, rng: np.random.Generator) -> pd.DataFrame:
    g, r = cell.n_prompts, cell.reps_per_prompt
    d = 0.8 * rng.standard_normal(g)
    u = 0.4 * rng.standard_normal(g)
    pid = np.repeat(np.arange(g), r)
    parts = []
    shares = np.full(cell.n_policies, cell.label_share)
    if cell.spread_labels:
        shares = rng.permutation(np.linspace(0.04, 0.30, cell.n_policies))
    every = pid
    for k, (m, b) in enumerate(zip(cell.mu, cell.biases(), strict=True)):
        pid = np.sort(rng.choice(g, cell.subset, replace=False)) if cell.subset else every
        z = m - d[pid] + rng.standard_normal(pid.size)
        y = (z > 0).astype(float) if cell.label == "binary" else np.array([_phi(v) for v in z])
        lat = z + u[pid] + 0.6 * rng.standard_normal(pid.size)
        s = np.clip(np.round(1 + 9 / (1 + np.exp(-lat)) + b), 1, 10)
        lab = rng.random(pid.size) < shares[k]
        if cell.labelled == "one" and k > 0:
            lab[:] = False
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": f"p{k:02d}", "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _probe(cell: Cell, k: int, rng: np.random.Generator) -> pd.DataFrame:
    """Policy ``k``'s probe slice: ``cell.probe`` fresh prompts, one labelled response each."""
    one = Cell("probe", (cell.mu[k],), cell.probe, label_share=1.0, label=cell.label,
               bias=(cell.biases()[k],))
    df = _data(one, rng).drop(columns="policy")
    return df.assign(prompt_id=[f"r{i}" for i in range(len(df))])


def replicate(cell: Cell, seed: int) -> dict:
    """One data set, one ``cje.analyze``; the claims a reader takes from the report, scored."""
    rng = np.random.default_rng([seed, zlib.crc32(cell.name.encode())])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cell.offpolicy:
            logged, fresh = _off_data(cell, rng)
            rep = cje.analyze(logged, fresh_draws=fresh, judge_scale=(1, 10), label_scale=(0, 1),
                              progress=False)
        else:
            data = _data(cell, rng)
            probes = {f"p{k:02d}": _probe(cell, k, rng) for k in range(1, cell.n_policies)} \
                if cell.probe else None
            rep = cje.analyze(data, probes=probes, judge_scale=(1, 10), label_scale=(0, 1),
                              progress=False, alpha=cell.alpha)
    truth = cell.truth()
    status = {e.policy: e.status for e in rep.estimates}
    tol = 1e-12
    n_wrong = n_wrong_ok = n_sig = 0
    cover_all = True
    covered = []
    min_p = []
    for c in rep.pairs:
        diff = truth[c.policy_a] - truth[c.policy_b]
        ok = status[c.policy_a] == "OK" and status[c.policy_b] == "OK"
        cov = bool(c.ci_low <= diff <= c.ci_high)
        covered.append((cov, ok, abs(diff) < tol))
        cover_all &= cov
        if c.significant:
            n_sig += 1
            wrong = abs(diff) < tol or np.sign(c.estimate) != np.sign(diff)
            n_wrong += wrong
            n_wrong_ok += wrong and ok
        min_p.append(c.p_value)
    group = {p: i for i, t in enumerate(rep.ranking) for p in t}
    okp = {p for p, s in status.items() if s == "OK"}
    wrong_rank = wrong_rank_ok = False
    for a, b in itertools.permutations(group, 2):
        if group[a] < group[b] and truth[a] <= truth[b] + tol:
            wrong_rank = True
            wrong_rank_ok |= a in okp and b in okp
    best = max(truth.values())
    top_single = bool(rep.ranking) and len(rep.ranking[0]) == 1
    top_wrong = top_single and (truth[rep.ranking[0][0]] < best - tol
                                or sum(v >= best - tol for v in truth.values()) > 1)
    top_wrong_ok = top_wrong and rep.ranking[0][0] in okp and all(status[p] == "OK" for p in group)
    order = sorted(status, key=lambda p: -next(e.estimate for e in rep.estimates if e.policy == p))
    lev_cov = {e.policy: (bool(e.ci_low <= truth[e.policy] <= e.ci_high), e.status) for e in rep.estimates}
    return {"cell": cell.name, "seed": seed, "n_pairs": len(rep.pairs), "n_sig": n_sig,
            "n_wrong": n_wrong, "n_wrong_ok": n_wrong_ok, "any_wrong": n_wrong > 0,
            "any_wrong_ok": n_wrong_ok > 0, "cover_all": cover_all,
            "pair_cov": float(np.mean([c for c, _, _ in covered])),
            "pair_cov_ok": [c for c, ok, _ in covered if ok],
            "wrong_rank": wrong_rank, "wrong_rank_ok": wrong_rank_ok, "n_tiers": len(rep.ranking),
            "top_single": top_single, "top_wrong": top_wrong, "top_wrong_ok": top_wrong_ok,
            "top_est_is_best": truth[order[0]] >= best - tol,
            "all_ok": all(s == "OK" for s in status.values()), "n_ok": len(okp),
            "lev_cov": lev_cov, "min_p": min(min_p) if min_p else float("nan"),
            "median_se": float(np.median([c.se for c in rep.pairs])) if rep.pairs else float("nan"),
            "dfs": float(np.median([c.df for c in rep.pairs])) if rep.pairs else float("nan")}


def _share(x) -> str:
    x = pd.Series(x, dtype=float)
    c, r = float(x.mean()), len(x)
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f}"


def tables(results: list[dict], cells: list[Cell], seconds: float, reps: tuple[int, int],
           only: str = "") -> str:
    res = pd.DataFrame(results)
    out = ["# Tables", "",
           f"Command: `python simulations/independent_ranking.py --reps {reps[0]} --reps-off {reps[1]} "
           f"--n-jobs 1{only}`. "
           f"Runtime {seconds:.0f} s on one core. `cje.analyze` defaults (alpha = 0.05 unless the cell "
           "says otherwise); share ± MC SE.",
           "", "## Claims", "",
           "| cell | design | policies (pairs) | all OK | sig. pairs / rep | any wrong 'Better' "
           "(FWER) | any wrong, OK pairs | per-pair wrong | wrong ranking | wrong ranking, OK | "
           "top single | top single wrong | top by estimate truly best |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        g = res[res.cell == cell.name]
        if g.empty:
            continue
        npairs = int(g.n_pairs.iloc[0])
        per_pair = g.n_wrong.sum() / max(g.n_pairs.sum(), 1)
        out.append(
            f"| `{cell.name}` | {cell.note} | {cell.n_policies} ({npairs}) | {g.all_ok.mean():.3f} | "
            f"{g.n_sig.mean():.2f} | {_share(g.any_wrong)} | {_share(g.any_wrong_ok)} | {per_pair:.4f} | "
            f"{_share(g.wrong_rank)} | {_share(g.wrong_rank_ok)} | {g.top_single.mean():.3f} | "
            f"{_share(g.top_wrong)} | {g.top_est_is_best.mean():.3f} |")
    out += ["", "## Intervals", "",
            "| cell | replicates | pair coverage (mean over pairs) | pair coverage, OK pairs | all pairs "
            "covered at once (not promised) | OK level coverage | median contrast SE | median df |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in cells:
        g = res[res.cell == cell.name]
        if g.empty:
            continue
        okc = [c for lst in g.pair_cov_ok for c in lst]
        lev = [c for d in g.lev_cov for c, s in d.values() if s == "OK"]
        lev_s = _share(lev) if lev else "—"
        okc_s = f"{np.mean(okc):.4f}" if okc else "—"
        out.append(f"| `{cell.name}` | {len(g)} | {g.pair_cov.mean():.4f} | {okc_s} | "
                   f"{_share(g.cover_all)} | "
                   f"{lev_s} | {g.median_se.median():.4f} | {g.dfs.median():.1f} |")
    return "\n".join(out) + "\n"


READING = "# Independent check — many policies: 'Better' claims, tiers, the top policy\n\n(reading)\n\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--reps-off", type=int, default=400, help="replicates of the off-policy cells")
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cells", default="")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--append", action="store_true",
                    help="add this run's tables (of --cells) after those already in --out")
    a = ap.parse_args()
    cells = [c for c in CELLS if not a.cells or c.name in a.cells.split(",")]
    if a.cells and len(cells) != len(a.cells.split(",")):
        raise SystemExit(f"unknown cell in {a.cells!r}")
    t0 = time.time()
    jobs = [(c, s) for c in cells for s in range(a.reps_off if c.offpolicy else a.reps)]
    results = Parallel(n_jobs=a.n_jobs)(delayed(replicate)(c, s) for c, s in jobs)
    secs = time.time() - t0
    only = f" --cells {a.cells}" + (" --append" if a.append else "") if a.cells else ""
    text = tables(results, cells, secs, (a.reps, a.reps_off), only)
    path = Path(a.out)
    head = path.read_text().split("# Tables")[0] if path.exists() and "# Tables" in path.read_text() \
        else READING
    if a.append and path.exists():
        more = text.replace("## ", "### ").replace("# Tables\n\n", "## Further cells\n\n", 1)
        text = path.read_text().rstrip("\n") + "\n\n" + more
        path.write_text(text)
    else:
        path.write_text(head + text)
    print(text)


if __name__ == "__main__":
    main()
