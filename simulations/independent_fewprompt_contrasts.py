"""Contrasts with a policy seen on a few prompts of its own: coverage and false "Better" claims
(independent process).

Question: in direct mode, when one policy ``S`` answered only ``m`` prompts that no other policy
answered, do its paired contrasts keep their 95% level, and how often does the summary's "Better"
line claim a difference that does not exist?

Data-generating process (numpy only; not ``cje.synthetic``). Policies ``A`` and ``B`` answer the
same 60 prompts ``q0..q59``; ``S`` answers ``m`` prompts of its own. For every response
``z ~ N(0, 1)``, the judge score is ``clip(round(5 + 2 z + N(0, 1)), 0, 10)`` and the label
``1 + 4 / (1 + exp(−z))`` (scale 1–5). ``A`` and ``B`` have labels on 40% of their rows, ``S`` none,
so its level is calibrated on theirs; the three policies share one distribution, so every true
difference is 0 and the calibration transports exactly.

For ``m`` in (2, 3, 5, 8, 15, 30) and ``reps`` replicates it records the contrast ``A − S``: whether
its interval covers 0, whether it is Holm-significant (the "Better" line then prints ``A > S*`` or
``S* > A``), its degrees of freedom and standard error next to ``S``'s own level's, and ``S``'s
status. Coverage with MC SE ``sqrt(c(1 − c)/r)``.

Run: ``python simulations/independent_fewprompt_contrasts.py --reps 400``
(~45 s on one core; the reading is in ``simulations/results/independent_fewprompt_contrasts.md``).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd

import cje


def make_data(rng: np.random.Generator, m: int, n: int = 60, frac: float = 0.4) -> pd.DataFrame:
    """One replicate: A and B on ``n`` shared prompts, S on ``m`` prompts of its own."""
    parts = []
    for name, rows, lab in (("A", n, frac), ("B", n, frac), ("S", m, 0.0)):
        z = rng.standard_normal(rows)
        s = np.clip(np.round(5 + 2 * z + rng.standard_normal(rows)), 0, 10)
        y = 1 + 4 / (1 + np.exp(-z))
        labelled = rng.random(rows) < lab
        pid = [f"S{i}" for i in range(rows)] if name == "S" else [f"q{i}" for i in range(rows)]
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": name, "judge_score": s,
                                   "oracle_label": np.where(labelled, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def run(m: int, reps: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng([seed, m])
    rows = []
    for _ in range(reps):
        rep = cje.analyze(make_data(rng, m), judge_scale=(0, 10), label_scale=(1, 5))
        c = next(c for c in rep.pairs if (c.policy_a, c.policy_b) == ("A", "S"))
        s, a = rep["S"], rep["A"]
        better = rep._better_text() or ""
        rows.append({"cover": c.ci_low <= 0 <= c.ci_high, "holm": c.p_holm < rep.alpha,
                     "printed": "S*" in better.split(":", 1)[-1], "df_pair": c.df,
                     "df_level": s.df, "se_ratio": c.se / np.hypot(a.se, s.se),
                     "status": s.status})
    t = pd.DataFrame(rows)
    cov = t["cover"].mean()
    return {"m": m, "reps": reps, "coverage": cov, "mc_se": np.sqrt(cov * (1 - cov) / reps),
            "holm_significant": t["holm"].mean(), "S_in_better_line": t["printed"].mean(),
            "median_df_pair": t["df_pair"].median(), "median_df_level_S": t["df_level"].median(),
            "median_se_pair_over_hypot": t["se_ratio"].median(),
            "share_CAUTION": (t["status"] == "CAUTION").mean(),
            "share_REFUSED": (t["status"] == "REFUSED").mean()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=400)
    p.add_argument("--seed", type=int, default=20261207)
    p.add_argument("--ms", default="2,3,5,8,15,30")
    ns = p.parse_args()
    warnings.filterwarnings("ignore")
    out = pd.DataFrame([run(int(m), ns.reps, ns.seed) for m in ns.ms.split(",")])
    print(out.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
