"""The bare-numpy off-policy pipeline (SNIPS with the oracle residual term, full OUA): the
reference for the IPS family's cost (issue #18).

:mod:`bare_direct`'s calibration and jackknife on the logged rows, plus, per target policy,
importance weights ``exp(logp_target − logp_base)`` Hájek-normalised (in log space), the SNIPS
estimate ``ψ = Σ w ỹ / Σ w`` with ``ỹ = f(S) + (L/p_L)(Y − f^(−fold)(S))``, its influence
values ``w(ỹ − ψ) − ψ_e(L/p_L − 1)`` (``ψ_e`` the residual part, the labelled share counted as
estimated), their prompt-clustered variance, and the jackknife's K refits; the logging policy's
own value is the direct estimate on its rows. No ``cje`` import, no validation, integer-coded
arrays in; the same statistics as ``cje.analyze(..., estimator="snips")``.

The floor of cje's SNIPS call with fresh draws (issue #18) adds what a plain script must do
with the fresh draws cje is given and with the weights for the overlap diagnostics:

* :func:`fresh_from_frame`: the fresh-draws frame ``make_offpolicy_eval`` returns
  (``sim.fresh``) coded — prompt ids and policy names by ``pandas.factorize``, judge scores and
  labels mapped to [0, 1] — and each target's raw judge mean (what cje reports beside the
  calibrated estimate; its labels, all missing there, would train the calibrator);
* :func:`minimal_diagnostics`: per target, on the Hájek weights :func:`run` returns, the least
  the IPS family's overlap diagnostics need: the ESS, one sort of the weights (top-5% mass, the
  Hill tail index and the weight tail all read it) and one argsort by target surprisal with the
  cumulative-weight search of the target-typical region (TTC);
* :func:`floor`: "bare SNIPS from the logged frame + fresh draws from their frame + minimal
  diagnostics", each part timed in CPU seconds.

No cje call in any of them (``main`` uses ``cje.synthetic`` only to build the frames).

Usage::

    python benchmarks/bare_offpolicy.py [--rows 1000000] [--repeats 3]
    python benchmarks/bare_offpolicy.py --floor [--rows 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_direct import Z95, Calibrations, prompt_folds, timed  # noqa: E402


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
    must do that :func:`make_data`'s coded arrays skip). The id column is factorised as it is
    (an Arrow-backed string column with pandas ≥ 3: hashed by Arrow, 0.06 s per 10⁶ ids here),
    not through ``.to_numpy()``, which first makes 10⁶ Python strings (0.09 s)."""
    import pandas as pd

    prompt, _ = pd.factorize(df["prompt_id"], sort=False)
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
    return {"estimate": theta, "se": se, "ci_low": theta - Z95 * se, "ci_high": theta + Z95 * se,
            "targets": targets, "weights": weights}


def fresh_from_frame(fresh, judge_scale: tuple[float, float], label_scale: tuple[float, float]
                     ) -> dict:
    """The fresh draws as a plain script must read them from the frame cje is given: prompt ids
    and policy names coded by ``pandas.factorize``, judge scores and labels mapped to [0, 1],
    the count of labelled draws, and each policy's raw judge mean (on [0, 1]). No validation."""
    import pandas as pd

    prompt, _ = pd.factorize(fresh["prompt_id"], sort=False)  # the columns themselves (see
    policy, names = pd.factorize(fresh["policy"], sort=True)  # codes_from_frame)
    s = (fresh["judge_score"].to_numpy(dtype=float) - judge_scale[0]) / (judge_scale[1] - judge_scale[0])
    y = (fresh["oracle_label"].to_numpy(dtype=float) - label_scale[0]) / (label_scale[1] - label_scale[0])
    n_pol = len(names)
    count = np.bincount(policy, minlength=n_pol)
    raw_mean = np.bincount(policy, weights=s, minlength=n_pol) / np.maximum(count, 1)
    return {"prompt": prompt.astype(np.int64), "policy": policy.astype(np.int64), "s": s, "y": y,
            "n_labelled": int(np.count_nonzero(~np.isnan(y))),
            "raw_mean": dict(zip([str(x) for x in names], raw_mean.tolist(), strict=True))}


def minimal_diagnostics(data: dict[str, np.ndarray], targets: list[str], weights: list[np.ndarray],
                        mass: float = 0.9) -> dict[str, dict[str, float]]:
    """The least the IPS family's overlap diagnostics need per target, in plain numpy: ESS
    fraction, one sort of the weights (top-5% mass and the Hill index read from it) and one
    argsort by target surprisal ``−log π_target`` with the prefix holding ``mass`` of the weight
    (TTC)."""
    out = {}
    for t, w in zip(targets, weights, strict=True):
        n = w.size
        ess = float(w.sum()) ** 2 / float((w * w).sum()) / n
        srt = np.sort(w)
        k = min(max(10, n // 20), n // 10, n - 1)
        top = srt[n - k - 1:][::-1]
        hill = float(k / (np.log(top[:k]) - np.log(top[k])).sum())
        top5 = float(srt[n - max(1, n // 20):].sum() / srt.sum())
        order = np.argsort(-data[t])
        cum = np.cumsum(w[order])
        ttc = (int(np.searchsorted(cum, mass * cum[-1], side="left")) + 1) / n
        out[t] = {"ess": ess, "hill": hill, "top5_mass": top5, "ttc": ttc}
    return out


def floor(logged, fresh, judge_scale: tuple[float, float], label_scale: tuple[float, float]
          ) -> dict[str, float]:
    """CPU seconds of the floor of cje's SNIPS call with fresh draws: the bare SNIPS from the
    logged frame (ids factorised, columns read, full OUA), the fresh draws from their frame,
    and the minimal overlap diagnostics; and their sum."""
    c = time.process_time()
    data = codes_from_frame(logged, judge_scale, label_scale)
    out = run(data)
    t_snips = time.process_time() - c
    c = time.process_time()
    fresh_from_frame(fresh, judge_scale, label_scale)
    t_fresh = time.process_time() - c
    c = time.process_time()
    minimal_diagnostics(data, out["targets"], out["weights"])
    t_diag = time.process_time() - c
    return {"snips_frame": t_snips, "fresh": t_fresh, "diagnostics": t_diag,
            "total": t_snips + t_fresh + t_diag}


def _uptime() -> str:
    import subprocess

    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average " + ", ".join(f"{x:.2f}" for x in __import__("os").getloadavg())


def main_floor(rows: int, repeats: int) -> None:
    """The floor and the bare direct pipeline (coded arrays, 4 policies as in
    ``benchmarks/offpolicy.py``), interleaved in this process; best of ``repeats``."""
    import bare_direct

    import cje  # the data only

    sim = cje.synthetic.make_offpolicy_eval(rows, oracle_fraction=0.10, n_fresh_per_prompt=1, rng=0)
    d = cje.synthetic.make_direct_eval(rows // 4, policies=cje.synthetic.default_policies()[:4],
                                       oracle_fraction=0.10, rng=0)
    direct = bare_direct.codes_from_frame(d.data, d.judge_scale, d.label_scale)
    scales = (sim.judge_scale, sim.label_scale)
    floor(sim.logged.iloc[:2000], sim.fresh.iloc[:8000], *scales)  # warm-up
    bare_direct.run(bare_direct.codes_from_frame(d.data.iloc[:2000], d.judge_scale, d.label_scale))
    print(_uptime())
    fl, bd = [], []
    for _ in range(repeats):
        c = time.process_time()
        bare_direct.run(direct)
        bd.append(time.process_time() - c)
        fl.append(floor(sim.logged, sim.fresh, *scales))
    best = {k: min(f[k] for f in fl) for k in fl[0]}
    b = min(bd)
    print(f"{rows:,} logged rows x 3 targets + {sim.fresh.shape[0]:,} fresh rows, best of {repeats} "
          f"(CPU s): bare SNIPS from the frame {best['snips_frame']:.3f} + fresh draws "
          f"{best['fresh']:.3f} + minimal diagnostics {best['diagnostics']:.3f} = floor "
          f"{best['total']:.3f} (best total run {min(f['total'] for f in fl):.3f}); bare direct "
          f"(coded, {rows:,} rows) {b:.3f}; floor / bare direct = {min(f['total'] for f in fl) / b:.2f}")
    print(_uptime())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--floor", action="store_true",
                    help="time the floor of cje's SNIPS call with fresh draws (see floor())")
    ns = ap.parse_args()
    if ns.floor:
        main_floor(ns.rows, ns.repeats)
        return
    out, cpu = timed(run, make_data(ns.rows), ns.repeats)
    print(f"bare off-policy SNIPS, {ns.rows:,} logged rows x 3 targets: best {min(cpu):.3f} s "
          f"CPU, median {statistics.median(cpu):.3f} s; estimates "
          f"{np.round(out['estimate'], 4).tolist()}")


if __name__ == "__main__":
    main()
