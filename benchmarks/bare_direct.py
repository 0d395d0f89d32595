"""The bare-numpy direct pipeline: the reference the benchmarks' ratios divide by (issue #18).

The statistics ``cje.analyze`` computes on fresh draws of each policy (monotone calibration, full
OUA), in plain numpy (plus scipy's PAV, the isotonic fit cje uses too), with no ``cje`` import and
no validation, on integer-coded arrays:

* isotonic calibration ``f`` of Y on S (scores pooled by distinct value, weighted PAV,
  ``np.interp`` between fitted values, flat beyond them), cross-fitted over K prompt folds of the
  labelled prompts: ``f`` on every label, ``f^(−j)`` without fold j's;
* per policy, the plug-in ``mean f(S)`` plus the residual mean ``mean_labelled(Y − f^(−fold)(S))``;
* the prompt-clustered influence-function variance of each policy's estimate;
* the K-fold OUA jackknife: each run deletes one fold's labels and refits everything downstream
  (``f^(−d)`` and the out-of-fold ``f^(−{d, j})``), 1 + K + K(K−1)/2 isotonic fits in all;
* ``se = sqrt(var_if + var_cal)`` and a normal 95% interval.

The input is what cje holds after loading (prompt codes, policy codes, judge scores and labels on
[0, 1], NaN where unlabelled); cje's reading and validation of a frame is not in it
(:func:`codes_from_frame` is the bare minimum of it: ``pandas.factorize`` of the id columns). Folds are
dealt to the labelled prompts by a seeded permutation (cje hashes the prompt ids), which changes
which prompts share a fold but not the work.

Usage::

    python benchmarks/bare_direct.py [--rows 1000000] [--repeats 3]

prints the best and median CPU seconds of :func:`run` on ``make_data(rows)``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy.optimize import isotonic_regression

Z95 = 1.959963984540054


def make_data(n_rows: int, n_policies: int = 4, label_fraction: float = 0.10, seed: int = 0
              ) -> dict[str, np.ndarray]:
    """n_rows rows: ``n_rows // n_policies`` prompts, one response per (prompt, policy), judge
    scores on a 0.05 grid, a ``label_fraction`` MCAR label slice."""
    rng = np.random.default_rng(seed)
    n_prompts = n_rows // n_policies
    prompt = np.tile(np.arange(n_prompts), n_policies)
    policy = np.repeat(np.arange(n_policies), n_prompts)
    d = rng.standard_normal(n_prompts)[prompt]
    q = 0.3 * policy - d + 0.5 * rng.standard_normal(prompt.size)
    y = 1.0 / (1.0 + np.exp(-q))
    s = np.clip(np.round((y**1.5 + 0.1 * rng.standard_normal(y.size)) / 0.05) * 0.05, 0.0, 1.0)
    y = np.where(rng.random(y.size) < label_fraction, y, np.nan)
    return {"prompt": prompt, "policy": policy, "s": s, "y": y}


def codes_from_frame(df, judge_scale: tuple[float, float], label_scale: tuple[float, float]
                     ) -> dict[str, np.ndarray]:
    """The arrays :func:`run` takes, from a frame as a user holds it (string prompt ids and
    policy names, ``judge_score``, ``oracle_label``): ids coded by ``pandas.factorize`` (the
    fastest way to code strings) of the columns as they are (Arrow-backed strings with pandas ≥ 3:
    hashed by Arrow; through ``.to_numpy()`` they would first become Python strings, ~0.1 s more
    per 10⁶ rows), scores and labels mapped to [0, 1]. No validation."""
    import pandas as pd

    prompt, _ = pd.factorize(df["prompt_id"], sort=False)
    policy, _ = pd.factorize(df["policy"], sort=True)
    s = (df["judge_score"].to_numpy(dtype=float) - judge_scale[0]) / (judge_scale[1] - judge_scale[0])
    y = (df["oracle_label"].to_numpy(dtype=float) - label_scale[0]) / (label_scale[1] - label_scale[0])
    return {"prompt": prompt.astype(np.int64), "policy": policy.astype(np.int64), "s": s, "y": y}


def iso_fit(u_train: np.ndarray, y_train: np.ndarray, n_u: int) -> np.ndarray:
    """Isotonic regression of y on the distinct-value codes ``u`` (sorted by score), evaluated at
    every distinct value: tie-pooled weighted PAV, linear between fitted values, flat beyond."""
    cnt = np.bincount(u_train, minlength=n_u).astype(float)
    tot = np.bincount(u_train, weights=y_train, minlength=n_u)
    keep = np.flatnonzero(cnt > 0)
    fit = isotonic_regression(tot[keep] / cnt[keep], weights=cnt[keep], increasing=True).x
    return np.interp(np.arange(n_u), keep, fit)


def prompt_folds(prompt: np.ndarray, lab: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold of every row's prompt (-1 for prompts without labels): labelled prompts dealt
    round-robin in a seeded random order."""
    n_prompts = int(prompt.max()) + 1
    has = np.zeros(n_prompts, dtype=bool)
    has[prompt[lab]] = True
    lab_prompts = np.flatnonzero(has)
    fold_of = np.full(n_prompts, -1, dtype=np.int64)
    fold_of[lab_prompts[np.random.default_rng(seed).permutation(lab_prompts.size)]] = (
        np.arange(lab_prompts.size) % k)
    return fold_of[prompt]


class Calibrations:
    """Every isotonic fit the direct pipeline needs, on the distinct scores: ``f`` without the
    labels of any set of folds (memoised, so the jackknife's ``f^(−{d, j})`` are fitted once)."""

    def __init__(self, s: np.ndarray, y: np.ndarray, fold: np.ndarray, k: int):
        self.distinct, self.code = np.unique(s, return_inverse=True)
        lab = np.flatnonzero(~np.isnan(y))
        self.u_lab, self.y_lab, self.f_lab = self.code[lab], y[lab], fold[lab]
        self.k, self._fits = k, {}

    def without(self, folds: frozenset[int]) -> np.ndarray:
        if folds not in self._fits:
            keep = ~np.isin(self.f_lab, list(folds)) if folds else slice(None)
            self._fits[folds] = iso_fit(self.u_lab[keep], self.y_lab[keep], self.distinct.size)
        return self._fits[folds]

    def run(self, deleted: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """``f`` and the (K, U) table of out-of-fold calibrations under the deletion."""
        full = self.without(deleted)
        index = np.vstack([self.without(deleted | {j}) if len(deleted | {j}) < self.k else full
                           for j in range(self.k)])
        return full, index


def estimates(policy: np.ndarray, n_pol: int, reward: np.ndarray, resid: np.ndarray,
              lab: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per policy: plug-in + residual mean; and the pieces of the influence values."""
    n = np.bincount(policy, minlength=n_pol).astype(float)
    m = np.bincount(policy, weights=lab, minlength=n_pol)
    plug = np.bincount(policy, weights=reward, minlength=n_pol) / n
    res = np.bincount(policy, weights=resid, minlength=n_pol) / np.maximum(m, 1)
    return plug + res, plug, res


def run(data: dict[str, np.ndarray], k: int = 5, seed: int = 0,
        fold: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Estimates, standard errors and 95% intervals of every policy, with full OUA (``fold``:
    each row's fold, to check the numbers against cje's with its folds)."""
    prompt, policy, s, y = data["prompt"], data["policy"], data["s"], data["y"]
    n_pol = int(policy.max()) + 1
    lab = ~np.isnan(y)
    if fold is None:
        fold = prompt_folds(prompt, lab, k, seed)
    cal = Calibrations(s, y, fold, k)
    code = cal.code
    y0 = np.where(lab, y, 0.0)
    labf = lab.astype(float)
    fold_c = np.where(fold >= 0, fold, 0)

    def one(deleted: frozenset[int]) -> tuple[np.ndarray, ...]:
        full, index = cal.run(deleted)
        reward = full[code]
        resid = np.where(lab, y0 - index[fold_c, code], 0.0)
        return (*estimates(policy, n_pol, reward, resid, labf), reward, resid)

    theta, plug, res, reward, resid = one(frozenset())
    # influence values: reward part + labelled residual part (labelled share estimated)
    n = np.bincount(policy, minlength=n_pol).astype(float)
    m = np.bincount(policy, weights=labf, minlength=n_pol)
    phi = (reward - plug[policy]) + labf * (n / m)[policy] * (resid - res[policy])
    n_prompts = int(prompt.max()) + 1
    tot = np.bincount(policy * n_prompts + prompt, weights=phi,
                      minlength=n_pol * n_prompts).reshape(n_pol, n_prompts)
    g = (np.bincount(policy * n_prompts + prompt, minlength=n_pol * n_prompts)
         .reshape(n_pol, n_prompts) > 0).sum(axis=1)
    var_if = g / np.maximum(g - 1, 1) * (tot * tot).sum(axis=1) / (n * n)
    reps = np.vstack([one(frozenset({d}))[0] for d in range(k)])
    var_cal = (k - 1) / k * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    se = np.sqrt(var_if + var_cal)
    return {"estimate": theta, "se": se, "ci_low": theta - Z95 * se, "ci_high": theta + Z95 * se}


def timed(fn, data, repeats: int) -> tuple[dict[str, np.ndarray], list[float]]:
    """``fn(data)`` ``repeats`` times: its last output and the CPU seconds of each run (the bare
    scripts' command lines)."""
    cpu = []
    for _ in range(repeats):
        c = time.process_time()
        out = fn(data)
        cpu.append(time.process_time() - c)
    return out, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ns = ap.parse_args()
    out, cpu = timed(run, make_data(ns.rows), ns.repeats)
    print(f"bare direct, {ns.rows:,} rows: best {min(cpu):.3f} s CPU, median "
          f"{statistics.median(cpu):.3f} s; estimates {np.round(out['estimate'], 4).tolist()}")


if __name__ == "__main__":
    main()
