"""A bare-numpy direct analysis: the reference that ``cje.analyze`` (direct mode) is timed against.

What a competent numpy user would write for the same statistics on the same input (the pandas
DataFrame a user holds, string prompt ids): ids factorised (``pandas.factorize``, the one pandas
call: numpy has no fast string factorisation), scores and labels to [0, 1], oracle folds dealt over
the labelled prompts, cross-fitted isotonic calibration (pool-adjacent-violators on the pooled
ties of the labelled rows), per policy the plug-in calibrated mean plus the mean out-of-fold
residual of its labelled rows, the prompt-clustered variance of the influence values
``(R − R̄) + (L/p_L)(e − ē)``, and the delete-one-oracle-fold jackknife of the whole calibration
(``f^(-k)`` for the rewards, ``f^(-k,-j)`` for the residuals inside replicate ``k``), with a
Satterthwaite t interval.

Not done here, but done by ``cje.analyze``: input validation and its messages, the stable hash of
prompt ids that makes folds independent of row order (here: a seeded permutation), the
``mode="auto"`` check of the two-stage map, paired contrasts and ranking, audits and gates, the
calibration curve and reliability table, the report's provenance hash of the input. Its numbers
are therefore close to cje's but not equal (different folds).

Until ``benchmarks/bare_direct.py`` (issue #18, off-policy helper) lands this is the direct
reference at 10^7 rows; ``benchmarks/direct.py --sizes 10000000`` times it in the same process
as ``cje.analyze``.

Usage::

    python benchmarks/bare_direct_10m.py [--n 10000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def _pav(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted pool-adjacent-violators on a short vector (the pooled ties)."""
    vals: list[float] = []
    wts: list[float] = []
    cnt: list[int] = []
    for yi, wi in zip(y.tolist(), w.tolist(), strict=True):
        vals.append(yi)
        wts.append(wi)
        cnt.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            w2 = wts[-2] + wts[-1]
            v2 = (vals[-2] * wts[-2] + vals[-1] * wts[-1]) / w2
            c2 = cnt[-2] + cnt[-1]
            del vals[-1], wts[-1], cnt[-1]
            vals[-1], wts[-1], cnt[-1] = v2, w2, c2
    return np.repeat(vals, cnt)


def _iso(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic fit of y on s: knots (distinct s) and fitted values."""
    xs, inv = np.unique(s, return_inverse=True)
    cnt = np.bincount(inv, minlength=xs.size).astype(np.float64)
    mean = np.bincount(inv, weights=y, minlength=xs.size) / cnt
    return xs, _pav(mean, cnt)


def bare_direct(df: Any, judge_scale: tuple[float, float], label_scale: tuple[float, float],
                n_folds: int = 5, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """Estimates, standard errors and intervals per policy (label scale)."""
    import pandas as pd
    from scipy import stats

    pid, _ = pd.factorize(df["prompt_id"])
    pol, names = pd.factorize(df["policy"])
    P = len(names)
    jlo, jhi = judge_scale
    llo, lhi = label_scale
    s = (df["judge_score"].to_numpy(np.float64) - jlo) / (jhi - jlo)
    y = (df["oracle_label"].to_numpy(np.float64) - llo) / (lhi - llo)
    lab = np.flatnonzero(~np.isnan(y))
    s_l, y_l, pol_l = s[lab], y[lab], pol[lab]

    # folds: the labelled prompts, shuffled and dealt round robin
    lab_prompts = np.unique(pid[lab])
    fold_of = np.full(int(pid.max()) + 1, -1)
    fold_of[lab_prompts[np.random.default_rng(seed).permutation(lab_prompts.size)]] = (
        np.arange(lab_prompts.size) % n_folds)
    f_l = fold_of[pid[lab]]
    in_fold = [f_l == k for k in range(n_folds)]

    fits: dict[frozenset[int], tuple[np.ndarray, np.ndarray]] = {}

    def fit(deleted: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        if deleted not in fits:
            keep = ~np.logical_or.reduce([in_fold[d] for d in deleted]) if deleted else slice(None)
            fits[deleted] = _iso(s_l[keep], y_l[keep])
        return fits[deleted]

    n = np.bincount(pol, minlength=P)
    m = np.bincount(pol_l, minlength=P)

    def run(deleted: frozenset[int], influence: bool) -> tuple[np.ndarray, Any]:
        reward = np.interp(s, *fit(deleted))
        oof = np.empty(lab.size)
        for k in range(n_folds):
            d = deleted if k in deleted or len(deleted | {k}) == n_folds else deleted | {k}
            oof[in_fold[k]] = np.interp(s_l[in_fold[k]], *fit(d))
        e = y_l - oof
        mean_r = np.bincount(pol, weights=reward, minlength=P) / n
        mean_e = np.bincount(pol_l, weights=e, minlength=P) / m
        if not influence:
            return mean_r + mean_e, None
        phi = reward - mean_r[pol]
        phi[lab] += (n / m)[pol_l] * (e - mean_e[pol_l])
        return mean_r + mean_e, phi

    value, phi = run(frozenset(), True)
    reps = np.array([run(frozenset({k}), False)[0] for k in range(n_folds)])
    var_cal = (n_folds - 1) / n_folds * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    out = {}
    width = lhi - llo
    for p, name in enumerate(names):
        rows = pol == p
        t = np.bincount(pid[rows], weights=phi[rows])
        g = int(np.count_nonzero(np.bincount(pid[rows])))
        v_if = g / (g - 1) * float(t @ t) / n[p] ** 2
        total = v_if + var_cal[p]
        df_ = total**2 / (v_if**2 / (g - 1) + var_cal[p] ** 2 / (n_folds - 1))
        q = stats.t.ppf(1 - alpha / 2, df_)
        se = np.sqrt(total)
        out[str(name)] = {"estimate": llo + width * value[p], "se": width * se,
                          "ci_low": llo + width * (value[p] - q * se),
                          "ci_high": llo + width * (value[p] + q * se)}
    return out


def main() -> None:
    import warnings

    import cje

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ns = ap.parse_args()
    pols = cje.synthetic.default_policies()[:4]
    sim = cje.synthetic.make_direct_eval(ns.n // 4, policies=pols, oracle_fraction=0.10, rng=0)
    warnings.simplefilter("ignore")
    for _ in range(ns.repeats):
        t, c = time.perf_counter(), time.process_time()
        res = bare_direct(sim.data, sim.judge_scale, sim.label_scale)
        print(f"bare: {time.perf_counter() - t:.3f} s wall, {time.process_time() - c:.3f} s CPU")
    t, c = time.perf_counter(), time.process_time()
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    print(f"cje:  {time.perf_counter() - t:.3f} s wall, {time.process_time() - c:.3f} s CPU")
    for e in rep.estimates:
        b = res[e.policy]
        print(f"{e.policy:10s} cje {e.estimate:.5f} ± {e.se:.5f}   bare {b['estimate']:.5f} ± "
              f"{b['se']:.5f}")


if __name__ == "__main__":
    main()
