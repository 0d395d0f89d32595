"""Check: what do cje's levels, contrasts and "Better" claims mean when two policies were not
judged on the same prompts? Exact truths, direct mode, two policies ``A`` and ``B``.

An outside check (numpy/pandas/joblib and ``cje.analyze`` only; not ``cje.synthetic``).

**Process.** A prompt has a category ``c`` (easy / hard, 1:1 in the prompt population) and a
difficulty ``d = ∓0.8 + 0.6 z`` (``z ~ N(0, 1)``; ``Var d = 1``). Policy ``p`` answers it with a
binary oracle label ``Y ~ Bernoulli(v_p(d))``, ``v_p(d) = sigmoid(a_p − b_p d)``; each draw of a
policy on a prompt is independent given ``d``. The judge (0–10) sees the label and the
difficulty: ``S = 10·sigmoid(1.6 Y − 0.8 − 0.5 d + N(0, 0.8²))`` — it is harsher on hard prompts,
so ``E[Y | S]`` depends on which prompts were answered and the residual ``Y − E[Y | S]`` depends on
``d``. Oracle labels: 25% of rows at random (MCAR) unless a cell says otherwise. ``cje.analyze``
with its defaults, ``judge_scale=(0, 10)``, ``label_scale=(0, 1)``.

**Truths** (numerical integration over ``d`` on a grid of 40,001 points, error < 1e-9):

* ``full`` — a policy's value on the prompt population, ``V_p = E[v_p(d)]``, and the contrast
  ``V_A − V_B``: the numbers a user asking "which policy is better on my prompts?" wants. For two
  policies on the same prompt population, this is also the contrast on common prompts.
* ``own`` — a policy's value on ITS OWN rows: ``E[n_p(d) π_p(d) v_p(d)] / E[n_p(d) π_p(d)]``
  with ``π_p`` the chance that it has rows on a prompt and ``n_p`` its rows there, over the prompt
  distribution it was run on. docs/getting-started.md ("Each value is then the mean over the
  policy's own prompts") and docs/methods.md (``ψ_p = mean_{D_p} …``, a mean over the policy's
  responses) say this is what a level estimates. Its contrast ``own_A − own_B`` is what the code
  computes for ``A − B`` (``cje.inference.paired_contrasts``: ``delta = val[a] − val[b]``).
* ``shared`` — the contrast on the prompts both answered, ``E[v_A − v_B | both present]``: what
  the report's prompt-set warning and docs/getting-started.md say a contrast is ("a contrast pairs
  only the prompts two policies share"). Undefined when no prompt is shared.

The docs therefore name two different targets for a contrast; which one holds is a finding
(results file).

**Cells** (G prompts, A on all of them, one row per prompt and policy, unless said otherwise):

* ``same`` — B on every prompt; A = B (control).
* ``mcar20`` — B lacks a random 20% of prompts (failed generations at random).
* ``hard20`` — B lacks the hardest 20% (``d`` above its population 0.8 quantile: timeouts on long
  prompts); A = B on every prompt.
* ``mnar50`` — B has a prompt with probability ``sigmoid(−2d)`` (half of them, mostly the easy
  ones); A = B.
* ``hard6`` — B lacks the hardest 6% (below the 10% warning threshold: a notice), G = 2,000.
* ``mix_easy`` — B run on its own G prompts drawn 80% easy / 20% hard (ids disjoint from A's);
  A is better on every prompt (``a_A = 0.15``, ``a_B = 0``). The target: the value on the common
  (1:1) prompt distribution.
* ``mix_same`` — as ``mix_easy`` but B's prompts from the same 1:1 distribution (two independent
  samples; control for unpaired prompts), A = B.
* ``labcat`` — labels by category (MAR given category, not given score): 40% of the hard
  prompts' rows, 8% of the easy ones', with no ``label_probability``; ``labcat_pi`` the same with
  the true probabilities given as ``label_probability``. A and B differ in slope
  (``b_A = 1.2``, ``b_B = 0.6``).
* ``labshared`` — ``hard20`` with labels only on the prompts both answered (A has no label on the
  hardest 20%).
* ``labA`` — every prompt shared, labels on A only (25%); B better (``a_B = 0.6``): B's level
  rests on the calibration transporting (documented CAUTION).
* ``draws4`` — A has 4 draws per prompt, B one; A = B.
* ``dup_rand`` — A has a random 20% of its prompts twice (the same prompt asked twice); A = B.
* ``dup_hard`` — A has its hardest 20% of prompts twice (e.g. retried); A = B.

Scored per cell and target (``A``, ``B``, ``A − B``): coverage of each truth by the 95%
interval (all, and those with status OK; a contrast is OK when both levels are OK), bias, the
shares OK / CAUTION / REFUSED, the share of "Better" claims (Holm-significant ``A − B``) and of
false ones (significant with a sign other than that of the ``full`` contrast; with ``full`` = 0
every claim is false), and the share of reports that carry the prompt-set warning or notice
(``judged on different prompts``) and a repeated-draws notice. MC SE of a share ``c`` over ``r``
replicates: ``sqrt(c(1 − c)/r)``. Seeds ``SeedSequence([cell index, replicate])``.

Usage::

    python simulations/independent_designs.py [--reps 400] [--cells NAME,...] [--time-only]
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

JUDGE = (0.0, 10.0)
LABEL = (0.0, 1.0)
MU_CAT = 0.8  # category means of d: easy −0.8, hard +0.8
SD_CAT = 0.6
GRID = np.linspace(-9.0, 9.0, 40001)
KEY_GAP = "judged on different prompts"
KEY_DRAWS = "repeated draws"
KEY_CAUTION = "it has no row on"  # the prompt-gap CAUTION (cje.diagnostics.gates.prompt_gap_gate)
KEY_ROWS = "prompts asked more than once"  # the row-weight CAUTION (gates.row_weight_gate)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _phi(x: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)


def _density(d: np.ndarray, p_easy: float) -> np.ndarray:
    """Density of the difficulty for a prompt population with share ``p_easy`` easy prompts."""
    return (p_easy * _phi((d + MU_CAT) / SD_CAT) + (1 - p_easy) * _phi((d - MU_CAT) / SD_CAT)) / SD_CAT


def _quantile(q: float, p_easy: float = 0.5) -> float:
    """Population quantile of the difficulty (on the grid, by the cumulative trapezoid)."""
    f = _density(GRID, p_easy)
    cdf = np.concatenate([[0.0], np.cumsum((f[1:] + f[:-1]) / 2 * np.diff(GRID))])
    return float(np.interp(q, cdf, GRID))


def _mean(h: np.ndarray, w: np.ndarray) -> float:
    """``∫ h w / ∫ w`` on the grid."""
    return float(np.trapezoid(h * w, GRID) / np.trapezoid(w, GRID))


@dataclass(frozen=True)
class Cell:
    """One design. ``present_b(d, cat, rng)`` says which of B's prompts it answered;
    ``pi_b(d)`` its chance of a row (for the truth); ``draws_a(d)`` A's rows per prompt."""

    name: str
    g: int = 500
    a: tuple[float, float] = (0.0, 0.0)  # intercepts a_A, a_B
    b: tuple[float, float] = (1.2, 1.2)  # slopes b_A, b_B
    b_kind: str = "all"  # all | mcar | hard | mnar | own
    b_share: float = 0.0  # share lacking (mcar, hard)
    b_easy: float = 0.5  # B's own prompts (b_kind == own): share easy
    labels: str = "mcar"  # mcar | cat | cat_pi | shared | a_only
    draws_a: str = "one"  # one | four | dup_rand | dup_hard


CELLS = (
    Cell("same"),
    Cell("mcar20", b_kind="mcar", b_share=0.2),
    Cell("hard20", b_kind="hard", b_share=0.2),
    Cell("mnar50", b_kind="mnar"),
    Cell("hard6", g=2000, b_kind="hard", b_share=0.06),
    Cell("mix_easy", a=(0.15, 0.0), b_kind="own", b_easy=0.8),
    Cell("mix_same", b_kind="own", b_easy=0.5),
    Cell("labcat", b=(1.2, 0.6), labels="cat"),
    Cell("labcat_pi", b=(1.2, 0.6), labels="cat_pi"),
    Cell("labshared", b_kind="hard", b_share=0.2, labels="shared"),
    Cell("labA", a=(0.0, 0.6), labels="a_only"),
    Cell("draws4", draws_a="four"),
    Cell("dup_rand", draws_a="dup_rand"),
    Cell("dup_hard", draws_a="dup_hard"),
)
BY_NAME = {c.name: c for c in CELLS}


def truths(cell: Cell) -> dict[str, float]:
    """The exact truths of one cell (see the module docstring)."""
    va, vb = (_sigmoid(cell.a[j] - cell.b[j] * GRID) for j in range(2))
    pop = _density(GRID, 0.5)
    one = np.ones_like(GRID)
    # B's presence on the population's prompts (its own prompts: another population)
    if cell.b_kind == "all":
        pb = one
    elif cell.b_kind == "mcar":
        pb = one * (1 - cell.b_share)
    elif cell.b_kind == "hard":
        pb = (GRID <= _quantile(1 - cell.b_share)).astype(float)
    elif cell.b_kind == "mnar":
        pb = _sigmoid(-2.0 * GRID)
    else:
        pb = None
    na = {"one": one, "four": 4 * one, "dup_rand": 1.2 * one,
          "dup_hard": 1.0 + (GRID > _quantile(0.8))}[cell.draws_a]
    out = {"full_A": _mean(va, pop), "full_B": _mean(vb, pop), "own_A": _mean(va, na * pop)}
    if pb is None:
        out["own_B"] = _mean(vb, _density(GRID, cell.b_easy))
        out["shared_AB"] = float("nan")
    else:
        out["own_B"] = _mean(vb, pb * pop)
        out["shared_AB"] = _mean(va - vb, pb * pop)
    out["full_AB"] = out["full_A"] - out["full_B"]
    out["own_AB"] = out["own_A"] - out["own_B"]
    return out


def _prompts(rng: np.random.Generator, g: int, p_easy: float) -> tuple[np.ndarray, np.ndarray]:
    hard = rng.random(g) >= p_easy
    d = np.where(hard, MU_CAT, -MU_CAT) + SD_CAT * rng.standard_normal(g)
    return d, hard


def _rows(rng: np.random.Generator, ids: np.ndarray, d: np.ndarray, hard: np.ndarray, a: float,
          b: float, policy: str) -> pd.DataFrame:
    y = (rng.random(d.size) < _sigmoid(a - b * d)).astype(float)
    s = 10 * _sigmoid(1.6 * y - 0.8 - 0.5 * d + 0.8 * rng.standard_normal(d.size))
    return pd.DataFrame({"prompt_id": ids, "policy": policy, "judge_score": s, "y": y, "d": d,
                         "hard": hard})


def simulate(cell: Cell, rng: np.random.Generator) -> pd.DataFrame:
    """One data set of a cell: rows of A and B with the oracle label where labelled."""
    g = cell.g
    d, hard = _prompts(rng, g, 0.5)
    ids = np.array([f"p{i}" for i in range(g)])
    # A's rows
    if cell.draws_a == "four":
        rep = np.full(g, 4)
    elif cell.draws_a == "dup_rand":
        rep = 1 + (rng.random(g) < 0.2)
    elif cell.draws_a == "dup_hard":
        rep = 1 + (d > _quantile(0.8))
    else:
        rep = np.ones(g, dtype=int)
    ia = np.repeat(np.arange(g), rep)
    fa = _rows(rng, ids[ia], d[ia], hard[ia], cell.a[0], cell.b[0], "A")
    # B's rows
    if cell.b_kind == "own":
        db, hb = _prompts(rng, g, cell.b_easy)
        fb = _rows(rng, np.array([f"q{i}" for i in range(g)]), db, hb, cell.a[1], cell.b[1], "B")
    else:
        if cell.b_kind == "all":
            keep = np.ones(g, bool)
        elif cell.b_kind == "mcar":
            keep = rng.random(g) >= cell.b_share
        elif cell.b_kind == "hard":
            keep = d <= _quantile(1 - cell.b_share)
        else:  # mnar
            keep = rng.random(g) < _sigmoid(-2.0 * d)
        fb = _rows(rng, ids[keep], d[keep], hard[keep], cell.a[1], cell.b[1], "B")
    df = pd.concat([fa, fb], ignore_index=True)
    # labels
    if cell.labels in ("cat", "cat_pi"):
        pi = np.where(df["hard"], 0.40, 0.08)
    else:
        pi = np.full(len(df), 0.25)
    lab = rng.random(len(df)) < pi
    if cell.labels == "shared":
        lab &= df["prompt_id"].isin(set(fb["prompt_id"]) & set(fa["prompt_id"])).to_numpy()
    elif cell.labels == "a_only":
        lab &= (df["policy"] == "A").to_numpy()
    df["oracle_label"] = np.where(lab, df["y"], np.nan)
    if cell.labels == "cat_pi":
        df["label_probability"] = pi
    return df.drop(columns=["y", "d", "hard"])


def one_run(ci: int, r: int) -> dict:
    """Analyse one replicate of cell ``CELLS[ci]``; the numbers scored."""
    cell = CELLS[ci]
    rng = np.random.default_rng(np.random.SeedSequence([ci, r]))
    df = simulate(cell, rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=JUDGE, label_scale=LABEL)
    out: dict = {"cell": cell.name, "rep": r}
    for p in "AB":
        e = rep[p]
        out.update({f"{p}_est": e.estimate, f"{p}_lo": e.ci_low, f"{p}_hi": e.ci_high,
                    f"{p}_status": e.status})
    (c,) = rep.pairs
    sign = 1.0 if (c.policy_a, c.policy_b) == ("A", "B") else -1.0
    lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
    out.update({"AB_est": sign * c.estimate, "AB_lo": lo, "AB_hi": hi, "AB_sig": bool(c.significant),
                "AB_shared": c.n_shared_prompts,
                "gap_warning": any(KEY_GAP in w for w in rep.warnings),
                "gap_notice": any(KEY_GAP in n for n in rep.notices),
                "draws_notice": any(KEY_DRAWS in n for n in (*rep.notices, *rep.warnings)),
                "gap_caution_A": any(w.startswith(KEY_CAUTION) for w in rep["A"].reasons),
                "gap_caution_B": any(w.startswith(KEY_CAUTION) for w in rep["B"].reasons),
                "gap_z_A": rep["A"].diagnostics.get("prompt_gap_z", np.nan),
                "gap_z_B": rep["B"].diagnostics.get("prompt_gap_z", np.nan),
                "rw_caution_A": any(KEY_ROWS in w for w in rep["A"].reasons),
                "rw_caution_B": any(KEY_ROWS in w for w in rep["B"].reasons),
                "rw_z_A": rep["A"].diagnostics.get("row_weight_z", np.nan),
                "ranked_apart": len(rep.ranking) > 1})
    return out


def _share(x: np.ndarray) -> str:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return "—"
    c = x.mean()
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / x.size):.3f}"


def _mean_or_dash(sub: pd.DataFrame, col: str) -> str:
    return f"{sub[col].mean():.3f}" if col in sub else "—"


def summarise(res: pd.DataFrame) -> str:
    """The tables of the results file (markdown)."""
    lines = []
    lv = ["| cell | policy | truth full | truth own | mean est | bias vs full | bias vs own | "
          "cover full | cover own | cover own, OK | OK | CAUTION | REFUSED |",
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    ct = ["| cell | full | own (computed) | shared | mean est | cover full | cover own | cover shared "
          "| cover full, both OK | Better | false Better | false Better given both OK | "
          "false Better and both OK | gap warning | "
          "gap notice | draws notice | gap CAUTION A | gap CAUTION B |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell in CELLS:
        sub = res[res.cell == cell.name]
        if sub.empty:
            continue
        t = truths(cell)
        for p in "AB":
            est, lo, hi, st = (sub[f"{p}_{k}"].to_numpy() for k in ("est", "lo", "hi", "status"))
            ok = st == "OK"
            cf = (lo <= t[f"full_{p}"]) & (t[f"full_{p}"] <= hi)
            co = (lo <= t[f"own_{p}"]) & (t[f"own_{p}"] <= hi)
            lv.append(f"| {cell.name} | {p} | {t[f'full_{p}']:.4f} | {t[f'own_{p}']:.4f} | "
                      f"{est.mean():.4f} | {est.mean() - t[f'full_{p}']:+.4f} | "
                      f"{est.mean() - t[f'own_{p}']:+.4f} | {_share(cf)} | {_share(co)} | "
                      f"{_share(co[ok])} | {ok.mean():.3f} | {(st == 'CAUTION').mean():.3f} | "
                      f"{(st == 'REFUSED').mean():.3f} |")
        est, lo, hi, sig = (sub[f"AB_{k}"].to_numpy() for k in ("est", "lo", "hi", "sig"))
        sig = sig.astype(bool)
        both = ((sub["A_status"] == "OK") & (sub["B_status"] == "OK")).to_numpy()
        full = t["full_AB"]
        false = sig & (np.sign(est) != np.sign(full)) if abs(full) > 1e-12 else sig
        cov = {k: (lo <= t[f"{k}_AB"]) & (t[f"{k}_AB"] <= hi) for k in ("full", "own", "shared")}
        sh = "—" if np.isnan(t["shared_AB"]) else f"{t['shared_AB']:+.4f}"
        csh = "—" if np.isnan(t["shared_AB"]) else _share(cov["shared"])
        ct.append(f"| {cell.name} | {full:+.4f} | {t['own_AB']:+.4f} | {sh} | {est.mean():+.4f} | "
                  f"{_share(cov['full'])} | {_share(cov['own'])} | {csh} | "
                  f"{_share(cov['full'][both])} | {sig.mean():.3f} | {_share(false)} | "
                  f"{_share(false[both])} | {_share(false & both)} | {sub.gap_warning.mean():.2f} | "
                  f"{sub.gap_notice.mean():.2f} | {sub.draws_notice.mean():.2f} | "
                  f"{_mean_or_dash(sub, 'gap_caution_A')} | {_mean_or_dash(sub, 'gap_caution_B')} |")
    if "gap_z_B" in res:  # how often B's prompt-gap |z| passes other thresholds
        ct.append("\n## Prompt-gap z of B against other thresholds\n")
        ct.append("Share of replicates whose `prompt_gap_z` of B exceeds the threshold in absolute "
                  "value (the gate uses 3.29 and also needs the shift to be at least half B's SE).\n")
        ct.append("| cell | abs z > 1.96 | abs z > 2.576 | abs z > 3.29 | median abs z |")
        ct.append("|---|---:|---:|---:|---:|")
        for cell in CELLS:
            z = res.loc[res.cell == cell.name, "gap_z_B"].to_numpy(dtype=float)
            if z.size == 0 or np.isnan(z).all():
                continue
            a = np.abs(np.nan_to_num(z, nan=np.inf))
            ct.append(f"| {cell.name} | {_share(a > 1.96)} | {_share(a > 2.576)} | {_share(a > 3.29)} | "
                      f"{np.median(a):.2f} |")
    if "rw_z_A" in res:  # the row-weight check (prompts holding unequal numbers of rows)
        ct.append("\n## Row-weight check of A\n")
        ct.append("Share of replicates where A's level is CAUTION for its prompts asked more than once "
                  "(`row_weight_gate`: |z| > 3.29 and a shift of at least half its SE), whose "
                  "`row_weight_z` exceeds other thresholds (NaN, no check: as many rows on every "
                  "prompt, counted as not exceeding), and false \"Better\" with both levels OK.\n")
        ct.append("| cell | A cautioned (row weight) | B cautioned (row weight) | abs z > 1.96 | "
                  "abs z > 2.576 | abs z > 3.29 | median abs z | false Better and both OK |")
        ct.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for cell in CELLS:
            sub = res[res.cell == cell.name]
            if sub.empty:
                continue
            z = np.abs(sub["rw_z_A"].to_numpy(dtype=float))
            t = truths(cell)
            sig = sub["AB_sig"].to_numpy(dtype=bool)
            est = sub["AB_est"].to_numpy()
            false = sig & (np.sign(est) != np.sign(t["full_AB"])) if abs(t["full_AB"]) > 1e-12 else sig
            both = ((sub["A_status"] == "OK") & (sub["B_status"] == "OK")).to_numpy()
            med = "—" if np.isnan(z).all() else f"{np.nanmedian(z):.2f}"
            ct.append(f"| {cell.name} | {_share(sub.rw_caution_A.to_numpy(dtype=bool))} | "
                      f"{_share(sub.rw_caution_B.to_numpy(dtype=bool))} | {_share(z > 1.96)} | "
                      f"{_share(z > 2.576)} | {_share(z > 3.29)} | {med} | {_share(false & both)} |")
    n = res.groupby("cell").size()
    lines.append(f"Replicates per cell: {', '.join(f'{k} {v}' for k, v in n.items())}.\n")
    lines.append("## Levels\n")
    lines += lv
    lines.append("\n## Contrast A − B\n")
    lines += ct
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: run the cells, write the CSV and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--cells", default=",".join(c.name for c in CELLS))
    ap.add_argument("--time-only", action="store_true")
    ap.add_argument("--from-csv", help="only print the tables of an earlier run's CSV")
    ap.add_argument("--csv", default=str(Path(__file__).parent / "results" / "independent_designs.csv"))
    ns = ap.parse_args()
    if ns.from_csv:
        print(summarise(pd.read_csv(ns.from_csv)))
        return
    names = ns.cells.split(",")
    idx = [i for i, c in enumerate(CELLS) if c.name in names]
    if ns.time_only:
        for i in idx:
            t0 = time.time()
            for r in range(3):
                one_run(i, r)
            print(f"{CELLS[i].name}: {(time.time() - t0) / 3:.3f} s per replicate")
        return
    t0 = time.time()
    rows = Parallel(n_jobs=1)(delayed(one_run)(i, r) for i in idx for r in range(ns.reps))
    res = pd.DataFrame(rows)
    res.to_csv(ns.csv, index=False)
    print(f"{len(res)} runs in {time.time() - t0:.0f} s")
    print(summarise(res))


if __name__ == "__main__":
    main()
