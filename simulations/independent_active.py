"""Independent study: active labelling (``cje.plan(..., next=)``) over two and three rounds, and
the ways a user can get the second round wrong.

Written independently of :mod:`cje.studies.active` (numpy / pandas / joblib and the public
``cje`` calls only; no ``cje.synthetic``). The data-generating process was fixed before any
result was seen.

Data-generating process
-----------------------
``G`` prompts; four policies ``A, B, C, D`` answer every prompt ``R`` times (``draw_idx``).

* prompt effect ``u_g ~ U(−0.08, 0.08)``, shared by every response to prompt ``g`` (the judge
  does not see it: residuals are correlated within a prompt);
* latent quality ``Z ~ Beta(a_p, b_p)``: A (2, 5), B (5, 2), C (3, 3), D (2, 2);
* judge: ``S = j(Z) + N(0, 0.04²)`` clipped to [0, 1], with ``j`` non-monotone — the identity
  below 0.45, *falling* from 0.45 to 0.35 as ``Z`` goes from 0.45 to 0.65, then rising linearly to
  1 — and coarse above 0.6: scores above 0.6 are rounded to one decimal (ties);
* oracle label ``Y = 0.12 + 0.62·Z + δ_p(Z) + u_g + ε``, ``ε ~ U(−σ(Z), σ(Z))`` with
  ``σ = 0.02`` for ``Z < 0.5`` and ``0.06`` above; the policy's offset by region:
  ``δ_A = 0``; ``δ_B = −0.08`` for ``Z > 0.7`` (the judge over-rates B's best answers);
  ``δ_C = +0.06`` for ``Z < 0.4``, ``−0.04`` otherwise; ``δ_D = +0.10`` for ``Z > 0.6``. So the
  residual ``Y − E[Y|S]`` differs by judge-score region and by policy. ``Y ∈ [0.02, 0.98]``.
* truth: ``0.12 + 0.62·E[Z] + Σ shift·P(Z in region)``, exact (Beta CDFs).

Designs (all on one data set per replicate, every row's label drawn once)
-------------------------------------------------------------------------
* pilot: 5% of the rows of A, B and C labelled uniformly at random (D none);
* round 2: ``cje.plan(pilot, half_width=0.02, next=N2)``; its rows labelled;
  - ``r2``: analysed with ``Plan.label_design`` (``label_probability`` and ``label_stratum``);
  - ``r2_forget``: the same labels analysed without ``label_probability``;
  - ``r2_first60``: only the first 60% of ``next_frame()`` (in its order) labelled, analysed with
    the plan's ``label_probability``;
  - ``r2_rand60``: a uniform random 60% of ``next_frame()`` labelled, with the plan's
    ``label_probability``;
* round 3 (``next=N3``), the new rows labelled:
  - ``r3_kept``: planned on the round-2 data *with* its ``label_probability`` and analysed with
    the round-3 plan's ``label_design`` — the package's way since this study (before, ``cje.plan``
    refused such data; then this design is missing and the refusal is recorded);
  - the way round the old refusal: the user drops the column and plans again on the round-2
    data (same seed as ``r3_kept``):
  - ``r3_naive``: analysed with that round-3 plan's ``label_design`` (what cje hands the user);
  - ``r3_composed``: analysed with each row's true overall probability
    ``1 − (1 − π₂)(1 − q₃)`` (``π₂`` the round-2 design's, ``q₃`` the round-3 cell probability),
    computed by hand;
  - ``r3_forget``: the same labels analysed without ``label_probability``.

Scored per design and policy: coverage of the 95% intervals (all, and OK only), bias, share of
OK / CAUTION / REFUSED; Monte Carlo SEs ``sqrt(c(1−c)/r)``.

Usage::

    PYTHONPATH=. python simulations/independent_active.py [--reps 300] [--prompts 600]
        [--n-jobs 1] [--seed 20261207] [--out simulations/results/independent_active.csv]
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta as beta_dist

import cje
from cje.errors import CJEInputError, CJEWarning

POLICIES: dict[str, tuple[float, float]] = {"A": (2.0, 5.0), "B": (5.0, 2.0), "C": (3.0, 3.0),
                                            "D": (2.0, 2.0)}
#: per policy: (low, high, shift) pieces of δ_p(Z) on [low, high)
SHIFTS: dict[str, list[tuple[float, float, float]]] = {
    "A": [],
    "B": [(0.7, 1.01, -0.08)],
    "C": [(0.0, 0.4, 0.06), (0.4, 1.01, -0.04)],
    "D": [(0.6, 1.01, 0.10)],
}
PILOT_SHARE = 0.05
NO_PILOT = ("D",)


def truth(policy: str) -> float:
    """The policy's exact mean label ``0.12 + 0.62·E[Z] + E[δ_p(Z)]``.

    Parameters
    ----------
    policy : str

    Returns
    -------
    float
    """
    a, b = POLICIES[policy]
    val = 0.12 + 0.62 * a / (a + b)
    for lo, hi, d in SHIFTS[policy]:
        val += d * (beta_dist.cdf(min(hi, 1.0), a, b) - beta_dist.cdf(lo, a, b))
    return float(val)


def _judge(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    j = np.where(z < 0.45, z, np.where(z < 0.65, 0.45 - 0.5 * (z - 0.45),
                                       0.35 + (z - 0.65) * (0.65 / 0.35)))
    s = np.clip(j + rng.normal(0.0, 0.04, z.size), 0.0, 1.0)
    return np.where(s > 0.6, np.round(s, 1), s)


def draw(rng: np.random.Generator, n_prompts: int, responses: int) -> tuple[pd.DataFrame, np.ndarray]:
    """One data set (unlabelled) and every row's oracle label.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_prompts : int
    responses : int
        Responses per prompt and policy.

    Returns
    -------
    (pandas.DataFrame, numpy.ndarray)
        ``prompt_id, policy, draw_idx, judge_score, oracle_label`` (NaN) and the labels.
    """
    u = rng.uniform(-0.08, 0.08, n_prompts)
    parts, ys = [], []
    for pol, (a, b) in POLICIES.items():
        n = n_prompts * responses
        g = np.repeat(np.arange(n_prompts), responses)
        z = rng.beta(a, b, n)
        s = _judge(z, rng)
        mu = 0.12 + 0.62 * z
        for lo, hi, d in SHIFTS[pol]:
            mu = mu + d * ((z >= lo) & (z < hi))
        sig = np.where(z < 0.5, 0.02, 0.06)
        y = mu + u[g] + rng.uniform(-1.0, 1.0, n) * sig
        ys.append(y)
        parts.append(pd.DataFrame({"prompt_id": [f"q{i:05d}" for i in g], "policy": pol,
                                   "draw_idx": np.tile(np.arange(responses), n_prompts),
                                   "judge_score": s, "oracle_label": np.nan}))
    return pd.concat(parts, ignore_index=True), np.concatenate(ys)


# ------------------------------------------------------------------------------ one replicate
DESIGNS = ("r2", "r2_forget", "r2_first60", "r2_rand60", "r3_kept", "r3_naive", "r3_composed",
           "r3_forget")
_SCALES = {"judge_scale": (0, 1), "label_scale": (0, 1)}


def _rows_of(data: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    key = pd.MultiIndex.from_frame(data[["prompt_id", "policy", "draw_idx"]])
    idx = key.get_indexer(pd.MultiIndex.from_frame(frame[["prompt_id", "policy", "draw_idx"]]))
    assert (idx >= 0).all()
    return idx


def _analyse(data: pd.DataFrame, lab: np.ndarray, y: np.ndarray, pi: np.ndarray | None,
             stratum: np.ndarray | None) -> tuple[Any, list[str]]:
    d = data.assign(oracle_label=np.where(lab, y, np.nan))
    if pi is not None:
        d["label_probability"] = pi
    if stratum is not None:
        d["label_stratum"] = stratum
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CJEWarning)
        rep = cje.analyze(d, **_SCALES)
    return rep, [str(w.message) for w in caught if issubclass(w.category, CJEWarning)]


def _cell_q(p: Any, data: pd.DataFrame) -> np.ndarray:
    """Each row's round probability ``q`` of its cell under plan ``p`` (0 where not planned)."""
    q_of = {c["label_stratum"]: c["round2_probability"] for c in p.next_labels["cells"]}
    st = p.label_design(data).label_stratum.to_numpy()
    return np.array([q_of.get(s, 0.0) for s in st])


def replicate_one(seed: Any, n_prompts: int, responses: int, n2: int, n3: int) -> list[dict[str, Any]]:
    """One replicate: the data, the pilot, two further rounds and every design's analysis.

    Parameters
    ----------
    seed : numpy.random.SeedSequence
        The replicate's seed.
    n_prompts, responses : int
        Prompts, and responses per prompt and policy.
    n2, n3 : int
        ``next=`` of round 2 and of round 3.

    Returns
    -------
    list of dict
        One row per design and policy.
    """
    rng = np.random.default_rng(seed)
    data, y = draw(rng, n_prompts, responses)
    pilot = (rng.random(len(data)) < PILOT_SHARE) & ~data.policy.isin(NO_PILOT).to_numpy()
    base = data.assign(oracle_label=np.where(pilot, y, np.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        p2 = cje.plan(base, half_width=0.02, next=n2, n_boot=50,
                      seed=int(rng.integers(2**31)), **_SCALES)
    f2 = p2.next_frame()
    rows2 = _rows_of(data, f2)
    lab2 = pilot.copy()
    lab2[rows2] = True
    des2 = p2.label_design(data)
    pi2 = des2.label_probability.to_numpy()
    st2 = des2.label_stratum.to_numpy().astype(str)
    out: dict[str, tuple[Any, list[str]]] = {}
    out["r2"] = _analyse(data, lab2, y, pi2, st2)
    out["r2_forget"] = _analyse(data, lab2, y, None, None)
    k60 = int(round(0.6 * len(rows2)))
    lab_f = pilot.copy()
    lab_f[rows2[:k60]] = True
    out["r2_first60"] = _analyse(data, lab_f, y, pi2, st2)
    lab_r = pilot.copy()
    lab_r[rng.choice(rows2, k60, replace=False)] = True
    out["r2_rand60"] = _analyse(data, lab_r, y, pi2, st2)
    # round 3, the package's way (cje after the fix): plan on the round-2 data with its column
    second = data.assign(oracle_label=np.where(lab2, y, np.nan))
    seed3 = int(rng.integers(2**31))
    refused = ""
    try:
        kept = second.assign(label_probability=pi2, label_stratum=st2)
        p3k = cje.plan(kept, half_width=0.02, next=n3, n_boot=50, seed=seed3, **_SCALES)
        lab3k = lab2.copy()
        lab3k[_rows_of(data, p3k.next_frame())] = True
        des3k = p3k.label_design(kept)
        out["r3_kept"] = _analyse(data, lab3k, y, des3k.label_probability.to_numpy(),
                                  des3k.label_stratum.to_numpy().astype(str))
    except CJEInputError as err:  # cje before the fix refused such data
        refused = str(err)
    # round 3 with the column dropped (the way round the old refusal)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CJEWarning)
        p3 = cje.plan(second, half_width=0.02, next=n3, n_boot=50, seed=seed3, **_SCALES)
    plan3_warn = [str(w.message) for w in caught if issubclass(w.category, CJEWarning)]
    rows3 = _rows_of(data, p3.next_frame())
    assert not lab2[rows3].any()
    lab3 = lab2.copy()
    lab3[rows3] = True
    des3 = p3.label_design(data)
    out["r3_naive"] = _analyse(data, lab3, y, des3.label_probability.to_numpy(),
                               des3.label_stratum.to_numpy().astype(str))
    q3 = _cell_q(p3, data)
    composed = 1.0 - (1.0 - pi2) * (1.0 - q3)
    st23 = np.char.add(np.char.add(st2, " + "), des3.label_stratum.to_numpy().astype(str))
    out["r3_composed"] = _analyse(data, lab3, y, composed, st23)
    out["r3_forget"] = _analyse(data, lab3, y, None, None)
    rows = []
    for design, (rep, warns) in out.items():
        notes = " | ".join(rep.notices)
        for e in rep.estimates:
            tr = truth(e.policy)
            rows.append({"design": design, "policy": e.policy, "estimate": e.estimate,
                         "truth": tr, "ci_low": e.ci_low, "ci_high": e.ci_high,
                         "covers": bool(e.ci_low <= tr <= e.ci_high), "status": e.status,
                         "reasons": " | ".join(e.reasons), "n_labels": e.n_labels,
                         "half_width": (e.ci_high - e.ci_low) / 2,
                         "warned": len(warns) > 0,
                         "notice_uniform": "uniform" in notes.lower(),
                         "plan3_warned": len(plan3_warn) > 0,
                         "plan3_refused_with_pi": bool(refused),
                         "labels_r2": int(lab2.sum()), "labels_r3": int(lab3.sum())})
    return rows


# ------------------------------------------------------------------------------ the run
#: (name, prompts, responses per prompt and policy, next= of round 2, next= of round 3)
CELLS: tuple[tuple[str, int, int, int, int], ...] = (("G600", 600, 2, 300, 200),
                                                      ("G2000", 2000, 2, 1000, 600))


def _cov(c: float, r: int) -> str:
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / max(r, 1)):.3f}" if r else "—"


def summarise(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Coverage (all and OK only, with Monte Carlo SEs), bias and status shares per group.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`replicate_one` with a ``cell`` column.
    by : list of str
        Grouping columns.

    Returns
    -------
    pandas.DataFrame
    """
    out = []
    for key, g in df.groupby(by, sort=False):
        r = len(g)
        ok = g[g.status == "OK"]
        err = g.estimate - g.truth
        c_all = float(g.covers.mean())
        c_ok = float(ok.covers.mean()) if len(ok) else float("nan")
        out.append({**dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True)),
                    "r": r, "coverage": _cov(c_all, r), "cov_value": c_all,
                    "coverage_OK": _cov(c_ok, len(ok)), "cov_ok_value": c_ok, "n_OK": len(ok),
                    "bias": f"{err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(r):.4f}",
                    "rmse": f"{np.sqrt((err ** 2).mean()):.4f}",
                    "mean_hw": f"{g.half_width.mean():.4f}",
                    "OK": f"{(g.status == 'OK').mean():.2f}",
                    "CAUTION": f"{(g.status == 'CAUTION').mean():.2f}",
                    "REFUSED": f"{(g.status == 'REFUSED').mean():.2f}",
                    "labels": f"{g.n_labels.mean():.0f}"})
    return pd.DataFrame(out)


def _md(t: pd.DataFrame, cols: list[str]) -> list[str]:
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in t[cols].itertuples(index=False)]
    return lines


def tables(df: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    """The generated part of the results page (below ``# Tables``).

    Parameters
    ----------
    df : pandas.DataFrame
        All rows, with a ``cell`` column.
    meta : dict
        Command, seed, replicates and run time.

    Returns
    -------
    list of str
    """
    cols = ["cell", "design", "policy", "r", "coverage", "coverage_OK", "n_OK", "bias", "rmse",
            "mean_hw", "OK", "CAUTION", "REFUSED", "labels"]
    lines = ["# Tables", "",
             f"Command: `{meta['command']}`; seed {meta['seed']}; {meta['reps']} replicates per "
             f"cell; run time {meta['seconds']:.0f} s on one core (n_jobs={meta['n_jobs']}).",
             "Truths (exact): " + ", ".join(f"{p} = {truth(p):.5f}" for p in POLICIES) + ".",
             "Coverage ± Monte Carlo SE sqrt(c(1−c)/r); coverage_OK over the replicates whose "
             "status was OK (n_OK of them); bias ± its MC SE; labels = the policy's own labels "
             "(mean).", "", "## Pooled over policies", ""]
    lines += _md(summarise(df, ["cell", "design"]).assign(policy="all"), cols)
    lines += ["", "## Per policy", ""]
    lines += _md(summarise(df, ["cell", "design", "policy"]), cols)
    rep = df.drop_duplicates(["cell", "replicate"])
    lines += ["", "## What cje said", "",
              "| cell | round-3 plan on the round-2 data with its label_probability refused | "
              "round-3 plan (column dropped) warned | analysis without label_probability warned "
              "or noted non-uniform labels |", "|---|---|---|---|"]
    for cell, g in rep.groupby("cell", sort=False):
        f = df[(df.cell == cell) & df.design.isin(["r2_forget", "r3_forget"])]
        lines.append(f"| {cell} | {g.plan3_refused_with_pi.mean():.2f} | {g.plan3_warned.mean():.2f} "
                     f"| {(f.warned | f.notice_uniform).mean():.2f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the study and write ``simulations/results/independent_active.{md,parquet}``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.
    """
    import sys
    from pathlib import Path

    from joblib import Parallel, delayed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=300)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261207)
    ap.add_argument("--cells", nargs="*", default=[c[0] for c in CELLS])
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    t0 = time.time()
    frames = []
    for ci, (name, g, resp, n2, n3) in enumerate(CELLS):
        if name not in args.cells:
            continue
        seeds = np.random.SeedSequence([args.seed, ci]).spawn(args.reps)
        res = Parallel(n_jobs=args.n_jobs)(delayed(replicate_one)(s, g, resp, n2, n3) for s in seeds)
        for i, rows in enumerate(res):
            frames.append(pd.DataFrame(rows).assign(cell=name, replicate=i))
        print(f"{name}: {time.time() - t0:.0f} s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    out = Path(args.out_dir)
    df.to_parquet(out / "independent_active.parquet", index=False)
    meta = {"command": "PYTHONPATH=. python simulations/independent_active.py "
            + " ".join(sys.argv[1:] if argv is None else argv), "seed": args.seed,
            "reps": args.reps, "seconds": time.time() - t0, "n_jobs": args.n_jobs}
    md = out / "independent_active.md"
    head = ["# Independent study: active labelling over two and three rounds", "",
            "(reading to be written)", ""]
    if md.exists():
        text = md.read_text(encoding="utf-8")
        if "# Tables" in text:
            head = text.split("# Tables")[0].rstrip("\n").splitlines() + [""]
    md.write_text("\n".join(head + tables(df, meta)) + "\n", encoding="utf-8")
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
