"""Self-preference when judges use different scales: per-judge scales against one shared scale.

A process written from scratch with numpy (``cje.synthetic`` is not used). Each prompt ``p`` has a
difficulty ``u_p ~ N(0, 0.5²)``; four generators of families F1, F2, F3, F3 write responses of
quality ``q = m_g + u_p + N(0, 0.8²)`` with ``m = (0.5, 0, 0, −0.5)`` (F1 best, the second F3
worst). Three judges of families F1, F2, F3 (a cell adds a fourth, of family F4, which no
generator belongs to) score ``S = slope_j·q + τ·self + N(0, σ_j²)``, ``σ_j = 0.5`` unless a cell
says otherwise; the labelled design's label is ``clip(round(q + 3), 1, 5)`` on half the responses
and the judges score ``slope_j·label + τ·self + noise`` (the label is then the whole quality, as
in ``simulations/independent_bias.py``). Truth: ``τ`` exactly (0 or 0.15 judge points).

Cells vary the slopes, the judges' noise, the panel's completeness (each response scored by two
of the three judges at random), a fourth judge, and one departure from the one-factor model (the
F1 judge compresses the top of its scale: ``S = q − 0.25·max(q − 0.5, 0)²`` before noise), each
analysed with ``cje.bias.self_preference(..., scales="per_judge")`` (the default where identified)
and ``scales="shared"`` (the additive models).

Usage::

    PYTHONPATH=. python simulations/independent_bias_scales.py [--reps 400] [--n-jobs 1]

Writes ``simulations/results/independent_bias_scales.md`` (the reading above ``# Tables`` is kept).
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

import cje

OUT = Path(__file__).resolve().parent / "results" / "independent_bias_scales.md"
GENS = [("g1", "F1", 0.5), ("g2", "F2", 0.0), ("g3", "F3", 0.0), ("g4", "F3", -0.5)]

# name: (design, slopes, tau, noise SDs, judges per response, fourth judge, compressed top)
CELLS = {
    "equal": ("panel", (1.0, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "steep_best_1.15": ("panel", (1.15, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "steep_best_1.3": ("panel", (1.3, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "steep_worst_1.3": ("panel", (1.0, 1.0, 1.3), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "steep_noisy": ("panel", (1.3, 1.0, 1.0), 0.0, (0.3, 0.5, 1.0), 3, False, False),
    "incomplete": ("panel", (1.3, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 2, False, False),
    "four_judges": ("panel", (1.3, 1.0, 1.0, 0.8), 0.0, (0.5, 0.5, 0.5, 0.5), 4, True, False),
    "compressed_top": ("panel", (1.0, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, True),
    "equal_tau": ("panel", (1.0, 1.0, 1.0), 0.15, (0.5, 0.5, 0.5), 3, False, False),
    "equal_tau_small": ("panel", (1.0, 1.0, 1.0), 0.05, (0.5, 0.5, 0.5), 3, False, False),
    "steep_best_tau": ("panel", (1.3, 1.0, 1.0), 0.15, (0.5, 0.5, 0.5), 3, False, False),
    "lab_equal": ("labelled", (1.0, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "lab_steep_best_1.3": ("labelled", (1.3, 1.0, 1.0), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "lab_steep_worst_1.3": ("labelled", (1.0, 1.0, 1.3), 0.0, (0.5, 0.5, 0.5), 3, False, False),
    "lab_equal_tau": ("labelled", (1.0, 1.0, 1.0), 0.15, (0.5, 0.5, 0.5), 3, False, False),
}


def make_data(rng: np.random.Generator, cell: tuple, n_prompts: int = 150) -> pd.DataFrame:
    design, slopes, tau, noise, per_resp, fourth, compressed = cell
    judges = [("j1", "F1"), ("j2", "F2"), ("j3", "F3")] + ([("j4", "F4")] if fourth else [])
    u = rng.normal(0.0, 0.5, n_prompts)
    rows = []
    for p in range(n_prompts):
        for g, fam, m in GENS:
            q = m + u[p] + rng.normal(0.0, 0.8)
            y = float(np.clip(np.round(q + 3), 1, 5))
            base = y if design == "labelled" else q
            who = range(len(judges)) if per_resp >= len(judges) else \
                sorted(rng.choice(len(judges), per_resp, replace=False))
            for j in who:
                name, jf = judges[j]
                x = base - 0.25 * max(base - 0.5, 0.0) ** 2 if compressed and j == 0 else base
                s = slopes[j] * x + tau * (jf == fam) + rng.normal(0.0, noise[j])
                rows.append((f"p{p}", g, fam, name, jf, s,
                             y if design == "labelled" and rng.random() < 0.5 else np.nan))
    return pd.DataFrame(rows, columns=["prompt_id", "policy", "policy_family", "judge", "judge_family",
                                       "judge_score", "oracle_label"])


def replicate(name: str, r: int, seed: int) -> list[dict]:
    cell = CELLS[name]
    rng = np.random.default_rng([seed, list(CELLS).index(name), r])
    d = make_data(rng, cell)
    if cell[0] == "panel":
        d = d.drop(columns="oracle_label")
    out = []
    for scales in ("per_judge", "shared"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = cje.bias.self_preference(d, method=cell[0], scales=scales)
        out.append({"cell": name, "scales": scales, "p": res.p_value, "flag": res.flagged,
                    "cover": res.ci_low <= cell[2] <= res.ci_high, "est": res.effect,
                    "width": res.ci_high - res.ci_low})
    return out


def fmt(x: pd.Series) -> str:
    c, n = float(x.mean()), len(x)
    return f"{c:.3f} ± {math.sqrt(max(c * (1 - c), 1e-12) / n):.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    a = ap.parse_args()
    t0 = time.time()
    rows = Parallel(n_jobs=a.n_jobs)(delayed(replicate)(name, r, a.seed)
                                     for name in CELLS for r in range(a.reps))
    d = pd.DataFrame([x for rr in rows for x in rr])
    md = ["# Tables", "",
          f"Command: `python simulations/independent_bias_scales.py --reps {a.reps}`; {a.reps} replicates "
          f"per cell (seed {a.seed}); runtime {time.time() - t0:.0f} s. 150 prompts × 4 generators; "
          "± is the MC SE `sqrt(c(1 − c)/r)`. Flagged = p < 0.05 and |τ̂| ≥ 0.05 SD of the scores.", "",
          "| cell | design | slopes | τ | scales | P(p<0.05) | P(flagged) | CI coverage of τ | mean τ̂ | "
          "mean width |", "|---|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for name, cell in CELLS.items():
        for scales in ("per_judge", "shared"):
            x = d[(d.cell == name) & (d.scales == scales)]
            md.append(f"| {name} | {cell[0]} | {cell[1]} | {cell[2]} | {scales} | {fmt(x.p < 0.05)} | "
                      f"{fmt(x.flag)} | {fmt(x.cover)} | {x.est.mean():+.4f} | {x.width.mean():.3f} |")
    out = Path(a.out)
    head = (out.read_text().split("# Tables")[0] if out.exists()
            else "# Self-preference with judges on different scales\n\n")
    out.write_text(head + "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
