"""The bare-numpy off-policy pipeline (SNIPS with the oracle residual term, full OUA): the
reference for the IPS family's cost (issue #18).

:mod:`bare_direct`'s calibration and jackknife on the logged rows, plus, per target policy,
importance weights ``exp(logp_target − logp_base)`` Hájek-normalised (in log space), the SNIPS
estimate ``ψ = Σ w ỹ / Σ w`` with ``ỹ = f(S) + (L/p_L)(Y − f^(−fold)(S))``, its influence
values ``w(ỹ − ψ) − ψ_e(L/p_L − 1)`` (``ψ_e`` the residual part, the labelled share counted as
estimated), their prompt-clustered variance, and the jackknife's K refits; the logging policy's
own value is the direct estimate on its rows. No ``cje`` import, no validation, integer-coded
arrays in; the same statistics as ``cje.analyze(..., estimator="snips")``.

Usage::

    python benchmarks/bare_offpolicy.py [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_direct import Z95, Calibrations, prompt_folds  # noqa: E402


def make_data(n_rows: int, thetas: tuple[float, ...] = (0.3, 0.6, 1.2),
              label_fraction: float = 0.10, seed: int = 0) -> dict[str, np.ndarray]:
    """n_rows logged rows, one per prompt, with log-probabilities under ``len(thetas)`` targets
    that tilt a response feature ``u ~ N(0, 1)`` to ``N(theta, 1)``."""
    rng = np.random.default_rng(seed)
    u = rng.standard_normal(n_rows)
    q = 0.8 * u - rng.standard_normal(n_rows) + 0.3 * rng.standard_normal(n_rows)
    y = 1.0 / (1.0 + np.exp(-q))
    s = np.clip(np.round((y**1.5 + 0.1 * rng.standard_normal(n_rows)) / 0.05) * 0.05, 0.0, 1.0)
    lp_base = -(40.0 + 5.0 * u * u)
    data = {"prompt": np.arange(n_rows), "s": s,
            "y": np.where(rng.random(n_rows) < label_fraction, y, np.nan), "lp_base": lp_base}
    for j, t in enumerate(thetas):
        data[f"lp_{j}"] = lp_base + t * u - t * t / 2
    return data


def codes_from_frame(df, judge_scale: tuple[float, float], label_scale: tuple[float, float]
                     ) -> dict[str, np.ndarray]:
    """The arrays :func:`run` takes, from the logged frame ``cje.analyze`` is given (string
    prompt ids, ``judge_score``, ``oracle_label``, ``logprob_base``, ``logprob[<target>]``):
    prompt ids coded by ``pandas.factorize``, scores and labels mapped to [0, 1], the
    log-probabilities as float arrays. No validation (the work a "from the frame" reference
    must do that :func:`make_data`'s coded arrays skip)."""
    import pandas as pd

    prompt, _ = pd.factorize(df["prompt_id"].to_numpy(), sort=False)
    s = (df["judge_score"].to_numpy(dtype=float) - judge_scale[0]) / (judge_scale[1] - judge_scale[0])
    y = (df["oracle_label"].to_numpy(dtype=float) - label_scale[0]) / (label_scale[1] - label_scale[0])
    out = {"prompt": prompt.astype(np.int64), "s": s, "y": y,
           "lp_base": df["logprob_base"].to_numpy(dtype=float)}
    for c in df.columns:
        if c.startswith("logprob[") and c.endswith("]"):
            out["lp_" + c[len("logprob["):-1]] = df[c].to_numpy(dtype=float)
    return out


def _cluster_var(phi: np.ndarray, prompt: np.ndarray, n_prompts: int) -> float:
    tot = np.bincount(prompt, weights=phi, minlength=n_prompts)
    g = int(np.count_nonzero(np.bincount(prompt, minlength=n_prompts)))
    return float(g / max(g - 1, 1) * (tot * tot).sum() / (phi.size * phi.size))


def run(data: dict[str, np.ndarray], k: int = 5, seed: int = 0,
        fold: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Logging policy's value, then each target's SNIPS estimate: estimates, SEs, intervals."""
    prompt, s, y = data["prompt"], data["s"], data["y"]
    targets = sorted(c for c in data if c.startswith("lp_") and c != "lp_base")
    n = s.size
    lab = ~np.isnan(y)
    labf = lab.astype(float)
    m = float(labf.sum())
    if fold is None:
        fold = prompt_folds(prompt, lab, k, seed)
    cal = Calibrations(s, y, fold, k)
    code = cal.code
    y0 = np.where(lab, y, 0.0)
    fold_c = np.where(fold >= 0, fold, 0)
    weights = []
    for t in targets:
        lw = data[t] - data["lp_base"]
        e = np.exp(lw - lw.max())
        weights.append(e * (n / e.sum()))
    scale = labf * (n / m)  # L / p_L

    def one(deleted: frozenset[int], with_phi: bool) -> tuple[list[float], list[np.ndarray]]:
        full, index = cal.run(deleted)
        reward = full[code]
        resid = np.where(lab, y0 - index[fold_c, code], 0.0)
        x = resid * scale
        psi_base = reward.mean() + resid.sum() / m
        vals, phis = [psi_base], []
        if with_phi:
            phis.append(reward - reward.mean() + scale * (resid - resid.sum() / m))
        for w in weights:
            sw = w.sum()
            psi_e = float((w * x).sum() / sw)
            psi = float((w * (reward + x)).sum() / sw)
            vals.append(psi)
            if with_phi:
                phis.append(w * (reward + x - psi) - psi_e * (scale - 1.0))
        return vals, phis

    theta, phis = one(frozenset(), True)
    n_prompts = int(prompt.max()) + 1
    var_if = np.array([_cluster_var(phi, prompt, n_prompts) for phi in phis])
    reps = np.array([one(frozenset({d}), False)[0] for d in range(k)])
    var_cal = (k - 1) / k * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    theta = np.array(theta)
    se = np.sqrt(var_if + var_cal)
    return {"estimate": theta, "se": se, "ci_low": theta - Z95 * se, "ci_high": theta + Z95 * se}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ns = ap.parse_args()
    data = make_data(ns.rows)
    cpu = []
    for _ in range(ns.repeats):
        c = time.process_time()
        out = run(data)
        cpu.append(time.process_time() - c)
    print(f"bare off-policy SNIPS, {ns.rows:,} logged rows x 3 targets: best {min(cpu):.3f} s "
          f"CPU, median {statistics.median(cpu):.3f} s; estimates "
          f"{np.round(out['estimate'], 4).tolist()}")


if __name__ == "__main__":
    main()
