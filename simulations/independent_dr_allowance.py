"""Prototype, not in cje: a fresh-draw allowance for the DR level, on the replicates of
``simulations/independent_dr.py`` (same seeds).

``D_R`` = the mean over the target's kept logged rows of their prompt's mean calibrated fresh-draw
reward ``f(S_fresh)``, minus the Hájek raw-weighted mean of the logged rows' ``f(S)``: both estimate
``E_target[f(S)]`` when the fresh draws come from the policy the log-probabilities describe and
were judged like the logged rows. Its prompt-clustered variance ``Var(D_R)``; stacked DR's interval
is widened to ``SE' = sqrt(SE² + D_R² + Var(D_R))`` (the shape of the transport-gap allowance).
``f`` here is one isotonic fit on all the labelled logged rows (not cje's cross-fitted calibrator;
its own uncertainty is ignored in ``D_R``). Prints, per cell and target: OK replicates, coverage of
the OK intervals before and after, mean widths before and after, and the share with |D_R| / SD > 3.

Usage::

    python simulations/independent_dr_allowance.py   # ~2,000 analyses, a few CPU-minutes
"""
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje
from cje.calibration.reward import fit_isotonic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_dr as m  # noqa: E402


def f_of(iso, s):
    return np.interp(s, iso.x, iso.y)


order = list(m.CELLS)
rows = []
for cell in ["baseline", "style", "stale", "judge_shift", "style_stale"]:
    for r in range(400):
        seed = 20261207 + 1000 * order.index(cell) + r
        logged, fresh = m.make_data(seed, m.CELLS[cell])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr",
                              judge_scale=(0, 10), label_scale=(0, 1))
        lab = logged.oracle_label.notna().to_numpy()
        iso = fit_isotonic(logged.judge_score.to_numpy()[lab], logged.oracle_label.to_numpy()[lab])
        for t in ("A", "B"):
            fr = fresh[fresh.policy == t]
            g = pd.Series(f_of(iso, fr.judge_score.to_numpy())).groupby(
                fr.prompt_id.to_numpy()).mean()
            kept = logged[logged.prompt_id.isin(g.index)]
            lw = (kept[f"logprob[{t}]"] - kept["logprob_base"]).to_numpy()
            w = np.exp(lw - lw.max())
            w /= w.mean()
            fs = f_of(iso, kept.judge_score.to_numpy())
            gb = g.loc[kept.prompt_id].to_numpy()
            d = gb.mean() - (w * fs).mean()
            phi = (gb - gb.mean()) - w * (fs - (w * fs).mean())
            n = phi.size
            var_d = n / (n - 1) * (phi ** 2).sum() / n ** 2
            e = rep[t]
            half = (e.ci_high - e.ci_low) / 2  # (clipping ignored: A is far from the bounds)
            mid = e.estimate
            se2 = np.sqrt(e.se ** 2 + d * d + var_d)
            half2 = half * se2 / e.se
            truth = m.TRUTH[t]
            rows.append(dict(cell=cell, name=t, status=e.status,
                             cov=e.ci_low <= truth <= e.ci_high,
                             cov2=mid - half2 <= truth <= mid + half2, w=2 * half, w2=2 * half2,
                             z=d / np.sqrt(var_d)))
df = pd.DataFrame(rows)
for (c, t), g in df.groupby(["cell", "name"], sort=False):
    ok = g[g.status == "OK"]
    def fmt(x: pd.Series) -> str:
        if len(x) == 0:
            return "—"
        p = x.mean()
        return f"{p:.3f} ± {np.sqrt(p * (1 - p) / len(x)):.3f}"

    print(f"| {c} | {t} | {len(ok)} | {fmt(ok['cov'])} | {fmt(ok['cov2'])} | {g.w.mean():.3f} | "
          f"{g.w2.mean():.3f} | {(g.z.abs() > 3).mean():.3f} |")
