"""Study: which rule should the prompt-gap gate use? Misses and false cautions of candidate rules.

The designs of ``simulations/independent_designs.py`` (same data-generating process, same seeds;
read its docstring for the cells and the truths), plus four cells of this study:

* ``hard20_dup`` — B lacks the hardest 20% of prompts; A answered those prompts twice (retries on
  the hard prompts: A's rows per prompt differ between the prompts B lacks and the others, so the
  gate's per-prompt row counts matter); A = B.
* ``mcar20_dup`` — B lacks a random 20%; A has a random 20% of its prompts twice (null, unequal
  counts); A = B.
* ``hard20_3`` — as ``hard20`` with a third policy C equal to A on every prompt (two comparators).
* ``mcar20_3`` — as ``mcar20`` with C (null, two comparators).
* ``hard20_3flat`` — as ``hard20_3`` but C is as good on every prompt (``v_C = 0.5``): only A's
  values show the gap (pooling dilutes it).
* ``mcar20_5`` — as ``mcar20`` with C, D, E equal to A on every prompt (null, four comparators).

Every replicate is analysed once by ``cje.analyze``; a recorder around
``cje.pipeline.core._prompt_gap_gates`` / ``prompt_gap_shift`` / ``prompt_gap_gate`` keeps, for every
(policy lacking prompts, comparator) pair, the comparator's per-prompt influence totals ``u``, its
exact rows per prompt ``c``, the prompts lacked, the lacking policy's SE, and each level's status
before the gate. The candidate rules are then applied to the same numbers:

* ``mean 3.29`` — the rule before this study: each prompt holding the comparator's MEAN rows per
  prompt, ``|z| > 3.29`` and ``|q·D| ≥ 0.5 SE``, any comparator;
* ``exact 3.29`` / ``exact 2.576`` — exact per-prompt row counts, threshold 3.29 / 2.576;
* ``exact 2.576 1SE`` — a shift-vs-SE rule: ``|z| > 2.576`` and ``|q·D| ≥ 1 SE`` (a bigger
  shift asked for with less evidence);
* ``pool 3.29`` / ``pool 2.576`` — every comparator's rows pooled (per-prompt sums of ``u`` and
  ``c`` over the policies that answered prompts the policy lacks; each policy's influence values
  are centred on its own level, so ``D`` is their rows-weighted mean shift), one test;
* ``bonf 2.576`` — each comparator tested, at ``|z| > Φ⁻¹(1 − 0.005/K)`` for ``K`` comparators
  (2.576 for one, 2.807 for two, 3.023 for four): at most 1% false cautions per level, whatever
  the number of policies; the same as ``exact 2.576`` with one comparator.

A level or contrast is scored against the truth the report claims (results file): a level is the
mean over the policy's own prompts (``own``), a contrast the difference of two such values
(``own``); an OK status with a prompt gap also claims that the gap does not make the contrast
compare different prompts, i.e. that it is near the contrast on the prompts both answered
(``shared``; for disjoint prompt samples, ``full``). MC SE of a share ``c`` over ``r``:
``sqrt(c(1 − c)/r)``.

Usage::

    python simulations/independent_gap2.py [--reps 2000] [--cells NAME,...]
    python simulations/independent_gap2.py --from-csv simulations/results/independent_gap2.csv
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje
import cje.pipeline.core as core
from cje.diagnostics.gates import prompt_gap_shift

sys.path.insert(0, str(Path(__file__).parent))
import independent_designs as dz  # noqa: E402

BRIEF = ("hard20", "mnar50", "hard6", "mix_easy", "mix_same", "mcar20", "same")
EXTRA = ("hard20_dup", "mcar20_dup", "hard20_3", "mcar20_3", "hard20_3flat", "mcar20_5")
RULES = ("mean 3.29", "exact 3.29", "exact 2.576", "exact 2.576 1SE", "pool 3.29", "pool 2.576",
         "bonf 2.576")

_REC: dict = {}
_orig_gates = core._prompt_gap_gates
_orig_shift = core.prompt_gap_shift
_orig_gate = core.prompt_gap_gate


def _rec_gates(results, shown, *args, **kw):  # noqa: ANN001, ANN002, ANN003, ANN202
    _REC["before"] = {r.policy: r.status for r in results}
    return _orig_gates(results, shown, *args, **kw)


def _rec_shift(u, c, missing):  # noqa: ANN001, ANN202
    _REC["last"] = (np.array(u, float), np.array(c, float), np.array(missing, bool))
    return _orig_shift(u, c, missing)


def _rec_gate(name, other, lacking, n_prompts, shift, z, se, width, *rest):  # noqa: ANN001, ANN002, ANN202
    u, c, missing = _REC.pop("last")
    _REC.setdefault("pairs", []).append({"b": name, "a": other, "u": u, "c": c, "missing": missing,
                                         "se": se, "lacking": lacking, "n_prompts": n_prompts})
    return _orig_gate(name, other, lacking, n_prompts, shift, z, se, width, *rest)


core._prompt_gap_gates = _rec_gates
core.prompt_gap_shift = _rec_shift
core.prompt_gap_gate = _rec_gate


def simulate_extra(name: str, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, float]]:
    """One data set of a cell of this study and its truths (A = B = C: every truth ``0.5``; the
    ``own`` contrast is computed from the designs' integrals)."""
    g = 500
    d, hard = dz._prompts(rng, g, 0.5)
    ids = np.array([f"p{i}" for i in range(g)])
    q80 = dz._quantile(0.8)
    if name.startswith("hard20"):
        keep = d <= q80
    else:
        keep = rng.random(g) >= 0.2
    if name == "hard20_dup":
        rep = 1 + (d > q80)
    elif name == "mcar20_dup":
        rep = 1 + (rng.random(g) < 0.2)
    else:
        rep = np.ones(g, int)
    ia = np.repeat(np.arange(g), rep)
    frames = [dz._rows(rng, ids[ia], d[ia], hard[ia], 0.0, 1.2, "A"),
              dz._rows(rng, ids[keep], d[keep], hard[keep], 0.0, 1.2, "B")]
    if name.endswith("_3"):
        frames.append(dz._rows(rng, ids, d, hard, 0.0, 1.2, "C"))
    elif name == "hard20_3flat":
        frames.append(dz._rows(rng, ids, d, hard, 0.0, 0.0, "C"))
    elif name == "mcar20_5":
        frames += [dz._rows(rng, ids, d, hard, 0.0, 1.2, p) for p in "CDE"]
    df = pd.concat(frames, ignore_index=True)
    lab = rng.random(len(df)) < 0.25
    df["oracle_label"] = np.where(lab, df["y"], np.nan)
    return df.drop(columns=["y", "d", "hard"]), _truth_extra(name)


def _truth_extra(name: str) -> dict[str, float]:
    v = dz._sigmoid(-1.2 * dz.GRID)
    pop = dz._density(dz.GRID, 0.5)
    one = np.ones_like(dz.GRID)
    hard = (dz.GRID > dz._quantile(0.8)).astype(float)
    pb = 1 - hard if name.startswith("hard20") else 0.8 * one
    na = 1 + hard if name == "hard20_dup" else one  # mcar20_dup: random repeats, own_A = 0.5
    own_a, own_b = dz._mean(v, na * pop), dz._mean(v, pb * pop)
    return {"full_AB": 0.0, "own_AB": own_a - own_b, "shared_AB": 0.0, "own_B": own_b}


def one_run(cell: str, r: int) -> dict:
    """Analyse one replicate; return the report's numbers and the recorded gate inputs."""
    if cell in dz.BY_NAME:
        ci = [c.name for c in dz.CELLS].index(cell)
        rng = np.random.default_rng(np.random.SeedSequence([ci, r]))
        df = dz.simulate(dz.BY_NAME[cell], rng)
        t = dz.truths(dz.BY_NAME[cell])
    else:
        rng = np.random.default_rng(np.random.SeedSequence([100 + EXTRA.index(cell), r]))
        df, t = simulate_extra(cell, rng)
    _REC.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=dz.JUDGE, label_scale=dz.LABEL)
    (c,) = [p for p in rep.pairs if {p.policy_a, p.policy_b} == {"A", "B"}]
    sign = 1.0 if (c.policy_a, c.policy_b) == ("A", "B") else -1.0
    lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
    pairs = _REC.get("pairs", [])
    out = {"cell": cell, "rep": r, "AB_est": sign * c.estimate, "AB_lo": lo, "AB_hi": hi,
           "AB_se": c.se, "AB_sig": bool(c.significant),
           "t_full": t["full_AB"], "t_own": t["own_AB"], "t_shared": t["shared_AB"],
           "B_lo": rep["B"].ci_low, "B_hi": rep["B"].ci_high, "t_ownB": t["own_B"]}
    zs = [(abs(z), z, shift / x["se"]) for x in pairs if x["b"] == "B"
          for shift, z in [_stats(x["u"], x["c"], x["missing"], False)] if z == z]
    out["B_z"], out["B_shift_se"] = (max(zs)[1], max(zs)[2]) if zs else (np.nan, np.nan)
    for p in ("A", "B"):
        out[f"{p}_status"] = rep[p].status
        out[f"{p}_pre"] = _REC.get("before", {}).get(p, rep[p].status)
        for rule in RULES:
            out[f"{p}_gap[{rule}]"] = _rule(rule, [x for x in pairs if x["b"] == p])
    return out


def _stats(u: np.ndarray, c: np.ndarray, missing: np.ndarray, mean_counts: bool
           ) -> tuple[float, float]:
    if mean_counts:
        on = c > 0
        c = on * (c.sum() / max(int(on.sum()), 1))
    shift, _, z = prompt_gap_shift(u, c, missing)
    return shift, z


def _rule(rule: str, pairs: list[dict]) -> int:
    """1 when the rule cautions the policy, 0 when not, for its recorded comparator pairs."""
    if not pairs:
        return 0
    kind, thr, *rest = rule.split()
    zc = float(thr)
    if kind == "bonf":  # the same 1% two-sided, split over the comparators
        from scipy.stats import norm

        zc = float(norm.isf(0.005 / len(pairs))) if zc == 2.576 else zc
    k = 1.0 if rest == ["1SE"] else 0.5
    if kind == "pool":
        pairs = [{**pairs[0], "u": sum(x["u"] for x in pairs), "c": sum(x["c"] for x in pairs),
                  "lacking": max(x["lacking"] for x in pairs)}]
    for x in pairs:
        shift, z = _stats(x["u"], x["c"], x["missing"], kind == "mean")
        if np.isnan(z):
            if x["lacking"] / max(x["n_prompts"], 1) >= 0.10:
                return 1
            continue
        if abs(z) > zc and abs(shift) >= k * x["se"]:
            return 1
    return 0


def _share(x: np.ndarray) -> str:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return "—"
    c = x.mean()
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / x.size):.3f} ({x.size})"


def _ok(pre: pd.Series, gap: pd.Series) -> np.ndarray:
    return ((pre == "OK") & (gap == 0)).to_numpy()


def summarise(res: pd.DataFrame) -> str:
    """Markdown tables: per cell and rule, the cautions, the OK levels' and contrasts' coverage of
    the truths, and the wrong OKs left."""
    n = res.groupby("cell").size()
    lines = [f"Replicates per cell: {', '.join(f'{k} {v}' for k, v in n.items())}.\n",
             "`B caut.` / `A caut.`: the level CAUTION for the prompt gap; `B OK covers own`: B's OK "
             "level interval covering its `own` truth (the truth a level claims); `both OK`: both "
             "levels OK after every gate; then, among the both-OK reports, the contrast interval "
             "covering `own_A − own_B` (the truth its interval claims) and the contrast on the "
             "prompts both answered (`shared`; `full` where none is shared: what an unstarred "
             "comparison is read as), and a false \"Better\" (significant, truth 0, or the wrong "
             "sign); `wrong OK / all`: both OK and the interval missing `shared`, and `false Better "
             "/ all`: both OK and a false \"Better\", as shares of all reports. MC SE after ±, "
             "replicates in brackets.\n",
             "| cell | rule | B caut. | A caut. | B OK covers own | both OK | contrast covers own, both OK | "
             "covers shared, both OK | false Better, both OK | wrong OK / all | false Better / all |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in (*BRIEF, *EXTRA):
        sub = res[res.cell == cell]
        if sub.empty:
            continue
        lo, hi, est, sig = (sub[f"AB_{k}"].to_numpy() for k in ("lo", "hi", "est", "sig"))
        sig = sig.astype(bool)
        own = sub.t_own.to_numpy()
        sh = np.where(np.isnan(sub.t_shared.to_numpy()), sub.t_full.to_numpy(), sub.t_shared.to_numpy())
        full = sub.t_full.to_numpy()
        cov_own = (lo <= own) & (own <= hi)
        cov_sh = (lo <= sh) & (sh <= hi)
        cov_b = ((sub.B_lo <= sub.t_ownB) & (sub.t_ownB <= sub.B_hi)).to_numpy()
        false = sig & ((np.abs(full) < 1e-12) | (np.sign(est) != np.sign(full)))
        for rule in RULES:
            if f"B_gap[{rule}]" not in sub:
                continue
            gb, ga = sub[f"B_gap[{rule}]"].to_numpy(), sub[f"A_gap[{rule}]"].to_numpy()
            ok_b = _ok(sub.B_pre, sub[f"B_gap[{rule}]"])
            both = _ok(sub.A_pre, sub[f"A_gap[{rule}]"]) & ok_b
            lines.append(f"| {cell} | {rule} | {_share(gb)} | {_share(ga)} | {_share(cov_b[ok_b])} | "
                         f"{both.mean():.3f} | {_share(cov_own[both])} | {_share(cov_sh[both])} | "
                         f"{_share(false[both])} | {_share(both & ~cov_sh)} | {_share(false & both)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the cells, write the CSV and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--cells", default=",".join((*BRIEF, *EXTRA)))
    ap.add_argument("--from-csv")
    ap.add_argument("--csv", default=str(Path(__file__).parent / "results" / "independent_gap2.csv"))
    ns = ap.parse_args()
    if ns.from_csv:
        print(summarise(pd.read_csv(ns.from_csv)))
        return
    t0 = time.time()
    rows = [one_run(cell, r) for cell in ns.cells.split(",") for r in range(ns.reps)]
    res = pd.DataFrame(rows)
    res.to_csv(ns.csv, index=False)
    print(f"{len(res)} runs in {time.time() - t0:.0f} s")
    print(summarise(res))


if __name__ == "__main__":
    main()
