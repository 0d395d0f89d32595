"""Check: a judge that changed between the labelling round and the scoring of the other rows
(judge drift), on processes built without ``cje.synthetic``, with exact truth.

**Direct mode** (``cje.analyze(df)``): 1,000 prompts with difficulty ``d ~ N(0, 1)``; three
policies ``base``, ``A``, ``B`` (quality offsets 0, +0.4, +0.2), one response each per prompt,
latent quality ``η = μ_p − 0.8 d + 0.6 e``; binary oracle label ``Y ~ Bernoulli(σ(η))``, MCAR on
10% or 25% of the rows; judge v1 ``S = round(10 σ(η + 0.7 ξ))`` on 0–10. Judge v2 is v1 with
its continuous score shifted by ``δ`` points (``shift``) or compressed toward the middle,
``5 + c (·−5)`` (``compress``), before rounding and clipping. Who is scored by v2:

* ``all``: the unlabelled rows of every policy (labels were collected on the v1 scores; the rest
  was scored later by v2);
* ``one``: the unlabelled rows of ``A`` only (A's unlabelled rows re-scored later);
* ``one_all``: every row of ``A``, labelled ones too (A entirely re-scored by v2; its labels
  kept) — the pooled calibration is then learned on a mixture of judges.

Truth: ``V_p = E σ(μ_p + Z)``, ``Z ~ N(0, 1)`` (0.64 + 0.36 = 1), by Gauss–Hermite quadrature.

**Off-policy DR** (``cje.analyze(logged, fresh_draws=...)``, stacked DR): 1,000 prompts, one
logged response of ``base`` per prompt over 8 response types of quality ``q_k`` from −1.2 to 1.2,
targets ``A`` (tilt 0.9·q) and ``B`` (tilt 0.45·q) by exact log-probabilities; label
``Y ~ Bernoulli(σ(q_k − 0.8 d))`` on 25% of the logged rows at random; logged rows judged by v1
``round(10 σ(q_k − 0.8 d + 0.7 ξ))``, one fresh draw per prompt per target judged by v2 (shift
or compression as above, on both targets' fresh draws).

Per cell and replicate: per level, the estimate, whether the 95% interval covers the truth, the
status and the gate(s) named in the reasons; per contrast, coverage and whether both levels
were OK. MC SE of a coverage ``c`` over ``r`` intervals: ``sqrt(c (1 − c) / r)``.

Usage::

    python simulations/independent_drift.py [--reps 300] [--n-jobs 1] [--cells ...]

Writes ``simulations/results/independent_drift.csv`` and prints the tables of
``simulations/results/independent_drift.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

sys.path.insert(0, str(Path(__file__).resolve().parent))
from independent_dr import _cov  # noqa: E402  (coverage ± MC SE with the ✗ mark)

RESULTS = Path(__file__).resolve().parent / "results"
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(120)
_GH_W = _GH_W / _GH_W.sum()


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------- direct mode
N_PROMPTS = 1000
MU = {"base": 0.0, "A": 0.4, "B": 0.2}
TRUTH_DIRECT = {p: float(_GH_W @ _sig(m + _GH_X)) for p, m in MU.items()}


def judge(latent: np.ndarray, kind: str, size: float) -> np.ndarray:
    """Round and clip a continuous 0–10 score after the drift ``kind`` of ``size``.

    Parameters
    ----------
    latent : numpy.ndarray
        The v1 judge's continuous score, 0–10.
    kind : str
        ``"none"``, ``"shift"`` (add ``size`` points) or ``"compress"`` (``5 + size (x − 5)``).
    size : float
        The shift in points or the compression factor.

    Returns
    -------
    numpy.ndarray
        Integer scores on 0–10 (as floats).
    """
    if kind == "shift":
        latent = latent + size
    elif kind == "compress":
        latent = 5.0 + size * (latent - 5.0)
    return np.clip(np.round(latent), 0, 10)


def make_direct(seed: int, cell: dict) -> pd.DataFrame:
    """One direct-mode replicate under ``cell`` (keys: label, kind, size, who)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(N_PROMPTS)
    pid = np.array([f"p{i}" for i in range(N_PROMPTS)])
    parts = []
    for p, mu in MU.items():
        eta = mu - 0.8 * d + 0.6 * rng.standard_normal(N_PROMPTS)
        y = (rng.random(N_PROMPTS) < _sig(eta)).astype(float)
        latent = 10.0 * _sig(eta + 0.7 * rng.standard_normal(N_PROMPTS))
        lab = rng.random(N_PROMPTS) < cell["label"]
        s1 = judge(latent, "none", 0.0)
        s2 = judge(latent, cell["kind"], cell["size"])
        who = cell["who"]
        if who == "all" or (who == "one" and p == "A"):
            s = np.where(lab, s1, s2)
        elif who == "one_all" and p == "A":
            s = s2
        else:
            s = s1
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------- off-policy DR
K = 8
Q = np.linspace(-1.2, 1.2, K)
P_BASE = np.full(K, 1.0 / K)
TILT = {"A": 0.9, "B": 0.45}


def _pol(t: float) -> np.ndarray:
    e = np.exp(t * Q)
    return e / e.sum()


POL = {"base": P_BASE, **{k: _pol(t) for k, t in TILT.items()}}
TYPE_MEAN = np.array([float(_GH_W @ _sig(q - 0.8 * _GH_X)) for q in Q])
TRUTH_DR = {p: float(v @ TYPE_MEAN) for p, v in POL.items()}


def make_dr(seed: int, cell: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One off-policy replicate: logged rows (judge v1) and fresh draws (judge v2)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(N_PROMPTS)
    pid = np.array([f"p{i}" for i in range(N_PROMPTS)])

    def respond(p, kind, size):
        k = rng.choice(K, size=N_PROMPTS, p=p)
        eta = Q[k] - 0.8 * d
        y = (rng.random(N_PROMPTS) < _sig(eta)).astype(float)
        s = judge(10.0 * _sig(eta + 0.7 * rng.standard_normal(N_PROMPTS)), kind, size)
        return k, y, s

    k, y, s = respond(P_BASE, "none", 0.0)
    r = -rng.gamma(4.0, 10.0, N_PROMPTS)
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": s,
                           "oracle_label": np.where(rng.random(N_PROMPTS) < cell["label"], y,
                                                    np.nan),
                           "logprob_base": np.log(P_BASE[k]) + r})
    for t in TILT:
        logged[f"logprob[{t}]"] = np.log(POL[t][k]) + r
    fresh = []
    for t in TILT:
        _, _, sf = respond(POL[t], cell["kind"], cell["size"])
        fresh.append(pd.DataFrame({"prompt_id": pid, "policy": t, "judge_score": sf}))
    return logged, pd.concat(fresh, ignore_index=True)


# ----------------------------------------------------------------------------- cells
def _cells() -> dict[str, dict]:
    cells: dict[str, dict] = {}
    for lab in (0.10, 0.25):
        tag = f"L{int(lab * 100)}"
        cells[f"direct_{tag}_none"] = {"mode": "direct", "label": lab, "kind": "none", "size": 0.0,
                                       "who": "all"}
        for who in ("all", "one", "one_all"):
            for sz in (0.25, 0.5, 1.0):
                cells[f"direct_{tag}_{who}_shift{sz}"] = {"mode": "direct", "label": lab,
                                                          "kind": "shift", "size": sz, "who": who}
            for c in (0.7, 0.5):
                cells[f"direct_{tag}_{who}_compress{c}"] = {"mode": "direct", "label": lab,
                                                            "kind": "compress", "size": c,
                                                            "who": who}
    cells["dr_L25_none"] = {"mode": "dr", "label": 0.25, "kind": "none", "size": 0.0}
    for sz in (0.25, 0.5, 1.0):
        cells[f"dr_L25_shift{sz}"] = {"mode": "dr", "label": 0.25, "kind": "shift", "size": sz}
    for c in (0.7, 0.5):
        cells[f"dr_L25_compress{c}"] = {"mode": "dr", "label": 0.25, "kind": "compress", "size": c}
    return cells


CELLS = _cells()


def _gates(reasons) -> str:
    """Short names of the checks named in a level's reasons."""
    out = []
    for r in reasons or ():
        low = r.lower()
        if "outside the labelled range" in low:
            out.append("range")
        elif "fresh draws" in low and "score" in low:
            out.append("fresh_balance")
        elif "labelled" in low and "prompt" in low:
            out.append("label_prompt")
        elif "labelled" in low:
            out.append("label_balance")
        else:
            out.append(low[:40])
    return "|".join(out)


def replicate(seed: int, name: str) -> list[dict]:
    """Analyse one replicate of cell ``name``; one row per level and per contrast."""
    cell = CELLS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if cell["mode"] == "direct":
                truth = TRUTH_DIRECT
                rep = cje.analyze(make_direct(seed, cell), judge_scale=(0, 10), label_scale=(0, 1),
                                  progress=False)
            else:
                truth = TRUTH_DR
                logged, fresh = make_dr(seed, cell)
                rep = cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr",
                                  judge_scale=(0, 10), label_scale=(0, 1), progress=False)
        except Exception as exc:  # noqa: BLE001 - recorded, not hidden
            return [{"cell": name, "seed": seed, "kind": "error", "name": str(exc)[:120]}]
    out = []
    status = {e.policy: e.status for e in rep.estimates}
    for e in rep.estimates:
        dg = e.diagnostics or {}
        out.append({"cell": name, "seed": seed, "kind": "level", "name": e.policy,
                    "estimate": e.estimate, "truth": truth[e.policy],
                    "covered": bool(e.ci_low <= truth[e.policy] <= e.ci_high),
                    "width": e.ci_high - e.ci_low, "status": e.status,
                    "gates": _gates(e.reasons),
                    "label_z": dg.get("label_score_z", np.nan),
                    "prompt_z": dg.get("label_prompt_z", np.nan),
                    "fresh_z": dg.get("fresh_score_z", np.nan)})
    for c in rep.pairs:
        t = truth[c.policy_a] - truth[c.policy_b]
        both = status[c.policy_a] == "OK" and status[c.policy_b] == "OK"
        out.append({"cell": name, "seed": seed, "kind": "contrast",
                    "name": f"{c.policy_a}-{c.policy_b}", "estimate": c.estimate, "truth": t,
                    "covered": bool(c.ci_low <= t <= c.ci_high), "width": c.ci_high - c.ci_low,
                    "status": "OK" if both else "not OK",
                    "wrong_sign": bool(c.significant and np.sign(c.estimate) != np.sign(t))})
    return out


def tables(df: pd.DataFrame) -> list[str]:
    """Markdown tables of the levels and contrasts per cell."""
    lines = ["## Levels", "",
             "| cell | policy | n | coverage (all) | OK share | coverage (OK) | CAUTION | REFUSED | "
             "bias | width | mean label z | mean fresh z | gates fired (share of reps) |",
             "|---|---|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    lev = df[df.kind == "level"]
    for (cell, pol), g in lev.groupby(["cell", "name"], sort=False):
        ok = g[g.status == "OK"]
        fired = g.gates.fillna("").str.split("|").explode()
        fired = fired[fired != ""].value_counts() / len(g)
        gs = ", ".join(f"{k} {v:.2f}" for k, v in fired.items()) or "—"
        lines.append(
            f"| {cell} | {pol} | {len(g)} | {_cov(g.covered)} | {(g.status == 'OK').mean():.2f} | "
            f"{_cov(ok.covered)} (n={len(ok)}) | {(g.status == 'CAUTION').mean():.2f} | "
            f"{(g.status == 'REFUSED').mean():.2f} | {(g.estimate - g.truth).mean():+.4f} | "
            f"{g.width.mean():.3f} | {g.label_z.mean():+.2f} | {g.fresh_z.mean():+.2f} | {gs} |")
    lines += ["", "## Contrasts", "",
              "| cell | contrast | truth | coverage (all) | coverage (both OK) | wrong-sign "
              "significant | bias |", "|---|---|---:|---|---|---:|---:|"]
    con = df[df.kind == "contrast"]
    for (cell, nm), g in con.groupby(["cell", "name"], sort=False):
        ok = g[g.status == "OK"]
        lines.append(f"| {cell} | {nm} | {g.truth.iloc[0]:+.4f} | {_cov(g.covered)} | "
                     f"{_cov(ok.covered)} (n={len(ok)}) | {g.wrong_sign.mean():.3f} | "
                     f"{(g.estimate - g.truth).mean():+.4f} |")
    err = df[df.kind == "error"]
    if len(err):
        lines += ["", "## Errors", ""]
        for (cell, nm), g in err.groupby(["cell", "name"]):
            lines.append(f"* {cell}: {len(g)} × {nm}")
    return lines


def main() -> None:
    """Run the cells and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--seed0", type=int, default=20261208)
    ap.add_argument("--out", default=str(RESULTS / "independent_drift.csv"))
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args()
    if args.tables_only:
        print("\n".join(tables(pd.read_csv(args.out))))
        return
    print(f"truth direct {TRUTH_DIRECT}; truth DR {TRUTH_DR}")
    order = list(CELLS)
    cells = args.cells.split(",")
    jobs = [(args.seed0 + 10000 * order.index(c) + r, c) for c in cells for r in range(args.reps)]
    t0 = time.time()
    frames = []
    for c in cells:  # cell by cell, the CSV rewritten after each (a partial run keeps its cells)
        mine = [(s, n) for s, n in jobs if n == c]
        res = Parallel(n_jobs=args.n_jobs)(delayed(replicate)(s, n) for s, n in mine)
        frames.append(pd.DataFrame([row for rows in res for row in rows]))
        pd.concat(frames, ignore_index=True).to_csv(args.out, index=False)
        print(f"{c}: {len(mine)} replicates, {time.time() - t0:.0f} s so far", flush=True)
    df = pd.concat(frames, ignore_index=True)
    print("\n".join(tables(df)))


if __name__ == "__main__":
    main()
