"""Independent check of ``cje.plan``: its promises on processes the package never saw.

Data-generating process (not :mod:`cje.synthetic`): ``G`` prompts, each policy answers every prompt
``R`` times. Quality ``q = mu_p + theta_g + eps`` (``theta_g ~ N(0, 0.7)`` the prompt's difficulty,
``eps ~ N(0, 0.7)``). Oracle label: Likert ``clip(round(3 + 1.1 q + sigma(q) z), 1, 5)`` with
``sigma(q) = 0.35 + 0.9 exp(-q^2 / 1.28)`` (noisier in the middle of the scale), or binary
``Bernoulli(Phi(1.2 q))``. Judge: ``clip(round(5.5 + 1.6 (q + beta_g + bias_p + nu)), 1, 10)`` on a
1-10 integer grid (ties), ``nu ~ N(0, 0.6)``, ``beta_g ~ N(0, sd_beta)`` a prompt-level judge error
shared by all responses to the prompt, ``bias_p`` a policy's own judge bias (its calibration does
not transport). Exact truth ``E[Y_p]`` by Gauss-Hermite quadrature over ``q``.

Per replicate: a pilot (every row labelled independently with probability ``p0``); ``cje.plan``;
a FRESH second round of the same ``G`` prompts with the plan's label share
(``plan.design["label_share"]``), analysed by ``cje.analyze``. Separately (active cells) the
pilot is followed by ``next=`` rows, labelled, and analysed with ``Plan.label_design``.

Usage::

    python simulations/independent_plan.py --reps 200 [--cells a,b] [--quick]
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import stdtrit
from scipy.stats import norm

import cje
from cje.errors import CJEWarning

MU = {"A": 0.0, "B": 0.3, "C": -0.2, "D": 0.1}
SD_THETA, SD_EPS, SD_NU = 0.7, 0.7, 0.6

# kind: label type; R: responses per prompt; G: prompts; sd_beta: prompt-level judge error;
# p0: pilot label share; pols: policies; mult: the target asks for about mult x the pilot's
# labels; bias: a policy's own judge bias
CELLS: dict[str, dict] = {
    "likert/R4/p5/strong-beta": dict(kind="likert", R=4, G=400, sd_beta=1.0, p0=0.05, pols="ABC",
                                     mult=5),
    "likert/R4/p5/strong-beta/G1000x10": dict(kind="likert", R=4, G=1000, sd_beta=1.0, p0=0.05,
                                              pols="ABC", mult=10),
    "likert/R1/p5/strong-beta": dict(kind="likert", R=1, G=1600, sd_beta=1.0, p0=0.05, pols="ABC",
                                     mult=5),
    "likert/R1/p5": dict(kind="likert", R=1, G=1600, sd_beta=0.5, p0=0.05, pols="ABC", mult=5),
    "likert/R2/p5": dict(kind="likert", R=2, G=800, sd_beta=0.5, p0=0.05, pols="ABC", mult=5),
    "likert/R4/p5": dict(kind="likert", R=4, G=400, sd_beta=0.5, p0=0.05, pols="ABC", mult=5),
    "likert/R4/p5/no-beta": dict(kind="likert", R=4, G=400, sd_beta=0.0, p0=0.05, pols="ABC",
                                 mult=5),
    "binary/R4/p5": dict(kind="binary", R=4, G=400, sd_beta=0.5, p0=0.05, pols="ABC", mult=5),
    "likert/R4/p2": dict(kind="likert", R=4, G=1000, sd_beta=0.5, p0=0.02, pols="ABC", mult=8),
    "likert/R1/p10": dict(kind="likert", R=1, G=1600, sd_beta=0.5, p0=0.10, pols="ABC", mult=3),
    "likert/R1/p5/D-few": dict(kind="likert", R=1, G=1600, sd_beta=0.5, p0=0.05, pols="ABCD",
                               mult=5, few={"D": 0.25}),
    "binary-skewed/R1/p5": dict(kind="binary", R=1, G=1600, sd_beta=0.5, p0=0.05, pols="ABC",
                                mult=4, offset=-2.0),
    "likert/R1/p5/D-biased": dict(kind="likert", R=1, G=1600, sd_beta=0.5, p0=0.05, pols="ABCD",
                                  mult=5, bias={"D": 0.6}),
}


def truth(kind: str, pol: str, offset: float = 0.0) -> float:
    """Exact ``E[Y]`` of a policy (Gauss-Hermite quadrature over the quality ``q``).

    Parameters
    ----------
    kind : str
        ``"likert"`` or ``"binary"``.
    pol : str
        Policy name.
    offset : float
        Binary labels: ``P(Y = 1 | q) = Phi(1.2 q + offset)`` (skewed labels for ``offset < 0``).

    Returns
    -------
    float
    """
    x, w = np.polynomial.hermite_e.hermegauss(200)
    q = MU[pol] + math.hypot(SD_THETA, SD_EPS) * x
    w = w / w.sum()
    if kind == "binary":
        return float(w @ norm.cdf(1.2 * q + offset))
    sig = 0.35 + 0.9 * np.exp(-q**2 / 1.28)
    cdf = sum(norm.cdf((k + 0.5 - 3 - 1.1 * q) / sig) for k in range(1, 5))
    return float(w @ (5 - cdf))


def draw(cell: dict, share: float, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """One sample of the cell: rows with ``oracle_label`` on a Bernoulli(``share``) slice.

    Parameters
    ----------
    cell : dict
        The cell's settings (:data:`CELLS`).
    share : float
        Probability that a row is labelled.
    rng : numpy.random.Generator

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        The data and every row's label (for a later round).
    """
    G, R, pols = cell["G"], cell["R"], cell["pols"]
    theta = rng.normal(0, SD_THETA, G)
    beta = rng.normal(0, cell["sd_beta"], G) if cell["sd_beta"] > 0 else np.zeros(G)
    frames, labels = [], []
    for p in pols:
        g = np.repeat(np.arange(G), R)
        q = MU[p] + theta[g] + rng.normal(0, SD_EPS, g.size)
        if cell["kind"] == "binary":
            y = (rng.random(g.size) < norm.cdf(1.2 * q + cell.get("offset", 0.0))).astype(float)
        else:
            sig = 0.35 + 0.9 * np.exp(-q**2 / 1.28)
            y = np.clip(np.round(3 + 1.1 * q + sig * rng.normal(size=g.size)), 1, 5)
        j = q + beta[g] + cell.get("bias", {}).get(p, 0.0) + rng.normal(0, SD_NU, g.size)
        s = np.clip(np.round(5.5 + 1.6 * j), 1, 10)
        keep = np.ones(g.size, dtype=bool)
        if p in cell.get("few", {}):  # the policy answered only a share of the prompts
            keep = (rng.random(G) < cell["few"][p])[g]
        frames.append(pd.DataFrame({"prompt_id": [f"g{i}" for i in g], "policy": p,
                                    "draw_idx": np.tile(np.arange(R), G),
                                    "judge_score": s})[keep])
        labels.append(y[keep])
    df = pd.concat(frames, ignore_index=True)
    assert len(df) == sum(map(len, labels))
    y = np.concatenate(labels)
    lab = rng.random(y.size) < share
    df["oracle_label"] = np.where(lab, y, np.nan)
    return df, y


def scales(cell: dict) -> dict:
    return {"judge_scale": (1, 10), "label_scale": (0, 1) if cell["kind"] == "binary" else (1, 5)}


def hw_of(e) -> float:
    return float(stdtrit(e.df, 1 - e.alpha / 2) * e.se)


def target_h(cell: dict, seed: int = 12345) -> float:
    """The cell's target half-width: the median over 5 reference pilots of the widest policy's
    half-width, divided by sqrt(mult) (so the plan asks for about ``mult`` times the pilot's
    labels). Fixed per cell, from its own seed."""
    rng = np.random.default_rng(seed)
    hws = []
    for _ in range(5):
        d, _ = draw(cell, cell["p0"], rng)
        rep = cje.analyze(d, **scales(cell))
        hws.append(max(hw_of(e) for e in rep.estimates))
    return float(np.median(hws) / math.sqrt(cell["mult"]))


def one(cell_name: str, h: float, seed: int, active: bool) -> list[dict]:
    """One replicate of a cell: pilot, plan, uniform second round (and an active one)."""
    cell = CELLS[cell_name]
    rng = np.random.default_rng(seed)
    r1, r2, r3 = rng.spawn(3)
    pilot, y_pilot = draw(cell, cell["p0"], r1)
    sc = scales(cell)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        p = cje.plan(pilot, half_width=h, n_boot=400, seed=seed % 2**31, **sc)
        d = p.design
        share = d["label_share"]
        if share is not None and share <= 1:
            second, _ = draw(cell, share, r2)
            rep = cje.analyze(second, **sc)
            for t in p.targets:
                e = rep[t.target]
                tr = truth(cell["kind"], t.target, cell.get("offset", 0.0))
                out.append({
                    "cell": cell_name, "seed": seed, "round": "uniform", "policy": t.target,
                    "binding": t.target == d["binding"], "h": h, "share": share,
                    "pilot_labels": t.n_labels, "need": t.labels_needed or np.nan,
                    "need_low": t.labels_needed_low or np.nan,
                    "need_high": t.labels_needed_high if t.labels_needed_high is not None
                    else np.inf,
                    "predicted": d["predicted"][t.target], "achieved": hw_of(e),
                    "labels": e.n_labels, "n_rows": t.n_rows, "estimate": e.estimate,
                    "truth": tr, "covered": bool(e.ci_low <= tr <= e.ci_high),
                })
        else:
            out.append({"cell": cell_name, "seed": seed, "round": "uniform", "policy": "",
                        "share": share if share is not None else np.inf})
        if active:
            n_next = int(round(2 * cell["p0"] * len(pilot)))
            pa = cje.plan(pilot, half_width=h, n_boot=50, seed=seed % 2**31, next=n_next, **sc)
            fr = pa.next_frame()
            key = pilot.prompt_id + "|" + pilot.policy + "|" + pilot.draw_idx.astype(str)
            pos = pd.Series(np.arange(len(pilot)), index=key.to_numpy())
            idx = pos[(fr.prompt_id + "|" + fr.policy + "|" + fr.draw_idx.astype(str)).to_numpy()]
            sec = pilot.copy()
            sec.loc[idx.to_numpy(), "oracle_label"] = y_pilot[idx.to_numpy()]
            des = pa.label_design(sec)
            sec["label_probability"] = des.label_probability
            sec["label_stratum"] = des.label_stratum
            rep2 = cje.analyze(sec, **sc)
            predicted = {x["policy"]: x["half_width_predicted"] for x in pa.next_labels["policies"]}
            for e in rep2.estimates:
                tr = truth(cell["kind"], e.policy, cell.get("offset", 0.0))
                out.append({"cell": cell_name, "seed": seed, "round": "active", "policy": e.policy,
                            "h": h, "predicted": predicted[e.policy], "achieved": hw_of(e),
                            "labels": e.n_labels, "estimate": e.estimate, "truth": tr,
                            "covered": bool(e.ci_low <= tr <= e.ci_high)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--cells", default=",".join(c for c in CELLS if "G1000" not in c))
    ap.add_argument("--active", default="likert/R1/p5,likert/R4/p5/strong-beta,likert/R1/p5/D-biased")
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"
                                         / "independent_plan.parquet"))
    ap.add_argument("--report", action="store_true", help="print the tables of --out and stop")
    args = ap.parse_args()
    if args.report:
        print(summarise(args.out))
        return
    rows = []
    hs = {}
    t0 = time.time()
    for ci, name in enumerate(args.cells.split(",")):
        h = target_h(CELLS[name])
        hs[name] = h
        act = name in args.active.split(",")
        for r in range(args.reps):
            rows += one(name, h, args.seed + 100_000 * ci + r, act)
        print(f"{name}: h={h:.4f} {time.time() - t0:.0f}s", flush=True)
        pd.DataFrame(rows).to_parquet(args.out)
    Path(args.out).with_suffix(".json").write_text(json.dumps({"h": hs, "reps": args.reps,
                                                               "seconds": time.time() - t0}))


# ------------------------------------------------------------------------------ the report
def _mc(c: float, r: int) -> float:
    return math.sqrt(max(c * (1 - c), 0.0) / max(r, 1))


def _boot_median(x: np.ndarray, seeds: np.ndarray, b: int = 300) -> float:
    """Monte Carlo SE of the median of ``x`` by a bootstrap over replicates (``seeds``)."""
    rng = np.random.default_rng(0)
    us = np.unique(seeds)
    groups = [x[seeds == s] for s in us]
    meds = [np.median(np.concatenate([groups[i] for i in rng.integers(0, us.size, us.size)]))
            for _ in range(b)]
    return float(np.std(meds))


def true_need(df: pd.DataFrame) -> dict[str, float]:
    """Per policy, the labels the realised half-width needs at the cell's prompts: least squares
    of ``hw^2 = alpha + beta/m`` over the replicates' fresh second rounds (their label counts
    vary with the plan), solved for ``hw = h``; NaN if the fit has no solution."""
    out = {}
    for p, g in df.groupby("policy"):
        X = np.column_stack([np.ones(len(g)), 1 / g["labels"].to_numpy(float)])
        coef, *_ = np.linalg.lstsq(X, g["achieved"].to_numpy() ** 2, rcond=None)
        h = float(g["h"].iloc[0])
        out[p] = float(coef[1] / (h**2 - coef[0])) if h**2 > coef[0] and coef[1] > 0 else np.nan
    return out


def summarise(path: str) -> str:
    """The markdown tables of a run (``independent_plan.parquet``).

    Parameters
    ----------
    path : str
        The replicates' parquet file.

    Returns
    -------
    str
    """
    df = pd.read_parquet(path)
    lines = []
    uni = df[(df["round"] == "uniform")]
    lines += ["### Uniform second round at the plan's label share (fresh sample, same prompts)", "",
              "| cell | reps | h | pilot labels/policy | planned share (median) | median achieved/"
              "predicted | same, binding policy | P(binding policy's hw ≤ h) | P(every policy ≤ h) |"
              " plan 80% interval holds the true need | point need / true need (median) | "
              "coverage (all policies) | bias (mean over policies) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cell, g in uni.groupby("cell", sort=False):
        bad = int((g["policy"] == "").sum())
        g = g[g["policy"] != ""]
        seeds = g["seed"].to_numpy()
        r = g["seed"].nunique()
        ratio = (g["achieved"] / g["predicted"]).to_numpy()
        gb = g[g["binding"].astype(bool)]
        rb = (gb["achieved"] / gb["predicted"]).to_numpy()
        pb = float((gb["achieved"] <= gb["h"]).mean())
        pall = float(g.groupby("seed").apply(lambda x: bool((x["achieved"] <= x["h"]).all()),
                                             include_groups=False).mean())
        tn = true_need(g)
        mstar = g["policy"].map(tn).to_numpy()
        inside = (g["need_low"].to_numpy() <= mstar) & (mstar <= g["need_high"].to_numpy())
        ok = np.isfinite(mstar)
        hold = float(inside[ok].mean()) if ok.any() else np.nan
        pt = np.median(g["need"].to_numpy()[ok] / mstar[ok]) if ok.any() else np.nan
        cov = float(g["covered"].mean())
        bias = (g["estimate"] - g["truth"]).to_numpy()
        b_se = float(pd.Series(bias).groupby(seeds).mean().std() / math.sqrt(r))
        lines.append(
            f"| `{cell}` | {r}{f' (+{bad} not reachable)' if bad else ''} | {g['h'].iloc[0]:.4f} "
            f"| {g['pilot_labels'].mean():.0f} | {np.median(g['share']):.3f} "
            f"| {np.median(ratio):.3f} ± {_boot_median(ratio, seeds):.3f} "
            f"| {np.median(rb):.3f} ± {_boot_median(rb, gb['seed'].to_numpy()):.3f} "
            f"| {pb:.2f} ± {_mc(pb, r):.2f} | {pall:.2f} ± {_mc(pall, r):.2f} "
            f"| {hold:.2f} ± {_mc(hold, r):.2f} | {pt:.2f} "
            f"| {cov:.3f} ± {_mc(cov, len(g)):.3f} | {bias.mean():+.4f} ± {b_se:.4f} |")
    lines += ["", "True need: per policy, `hw² = α + β/m` fitted by least squares over the "
              "replicates' fresh second rounds, solved for hw = h (labels at the cell's prompts). "
              "Coverage SE sqrt(c(1−c)/n) over policy-replicates (policies of a replicate share "
              "prompts, so it is a little optimistic).", ""]
    act = df[df["round"] == "active"]
    if len(act):
        lines += ["### Active second round (`next=` 2× the pilot's labels, analysed with "
                  "`label_design`)", "",
                  "| cell | policy | reps | mean labels | coverage | bias | median achieved/"
                  "predicted | P(achieved ≤ predicted) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for (cell, p), g in act.groupby(["cell", "policy"], sort=False):
            r = len(g)
            cov = float(g["covered"].mean())
            bias = (g["estimate"] - g["truth"]).to_numpy()
            ratio = (g["achieved"] / g["predicted"]).to_numpy()
            pa = float((ratio <= 1).mean())
            lines.append(f"| `{cell}` | {p} | {r} | {g['labels'].mean():.0f} | {cov:.3f} ± "
                         f"{_mc(cov, r):.3f} | {bias.mean():+.4f} ± {bias.std() / math.sqrt(r):.4f} "
                         f"| {np.median(ratio):.3f} ± {_boot_median(ratio, g['seed'].to_numpy()):.3f}"
                         f" | {pa:.2f} ± {_mc(pa, r):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
