"""Plasmode check: coverage of ``cje.analyze`` when replicates resample REAL rows of the Arena sample.

Synthetic processes can miss what real judge scores, oracle labels and log-probabilities look like.
Here every replicate resamples the 480 oracle-labelled logged rows of the Arena sample shipped with
the package (``cje.datasets.arena()``, the same rows as ``/work/shared/data/arena_sample``), so the
truth is exact under the empirical distribution of those rows:

* judge scores are coarse (0.85 on 61% of the labelled rows, 12 distinct values: massive ties),
  correlation 0.39 with the oracle label;
* teacher-forced log-probabilities are real, with heavy weight tails.

**Population.** The 480 labelled logged rows ``i`` (judge score ``S_i``, oracle label ``Y_i``,
log-probabilities ``lb_i`` under ``base`` and ``lt_i`` under each target ``t``). Contexts are
trivial: a "prompt" of the plasmode is one draw of a row.

**Direct (fresh draws of ``base``).** Truth = ``mean_i Y_i`` (0.7541). A replicate draws ``n``
rows uniformly with replacement (``n`` = 480, 1000, 2000), gives each draw a FRESH prompt id (so
duplicated rows are independent prompts, as they are in the population being sampled), keeps the
label on an MCAR fraction (5%, 10%, 25%) and runs ``cje.analyze`` (defaults, ``judge_scale=(0, 1)``,
``label_scale=(0, 1)``). A second policy ``inflated`` answers the same prompt ids with an
independent draw of rows from the SAME population, but its judge adds +0.10 (capped at 1) to the
score of responses longer than the median length of the 480 rows (a verbosity bonus the oracle
ignores). Its truth is exactly the same 0.7541 and the contrast ``base − inflated`` is exactly 0;
its labels are MCAR at the same fraction.

**Off-policy (logged ``base`` data).** For a target ``t`` with ``w_i = exp(lt_i − lb_i)`` the
plasmode target distribution puts mass ``w_i / Σ w`` on row ``i``; truth_t = ``Σ w_i Y_i / Σ w_i``
(exact). A replicate draws ``n`` logged rows uniformly with replacement (the logging distribution of
the plasmode), labels an MCAR fraction and, for the DR estimators, draws ONE fresh draw of each
target per logged prompt id by sampling a row with probability ``w_i / Σ w`` (its judge score;
fresh draws unlabelled). The log-probabilities passed are the real ones of the drawn rows (variant
``real``); the variant ``normalised`` subtracts the constant ``log mean_i w_i`` from each target's
log-probability so the importance ratio is exactly the plasmode's density ratio
``N w_i / Σ w`` (mean raw weight 1 over the population). The two variants give the same Hájek
estimates; only the support gate (which reads the mean raw weight) can differ. Targets:
``clone``, ``parallel_universe_prompt`` (``pup``), ``unhelpful`` and milder tilts
``<t>_03`` with ``lt' = lb + 0.3 (lt − lb)`` (good-overlap controls).

Coverage ``c`` over ``r`` intervals has MC SE ``sqrt(c (1 − c) / r)``.

Usage::

    python simulations/independent_plasmode.py [--reps 400] [--n-jobs 1] [--part direct,offpolicy]

Writes ``simulations/results/independent_plasmode.parquet`` (replicate rows, git-ignored) and the tables of
``simulations/results/independent_plasmode.md`` (below its "# Tables" heading).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje
from cje import datasets

RESULTS = Path(__file__).resolve().parent / "results"
OUT_MD = RESULTS / "independent_plasmode.md"
OUT_PQ = RESULTS / "independent_plasmode.parquet"

#: Full targets of the Arena sample and the mild tilts (name -> (source target, tilt exponent)).
TARGETS = {"clone": ("clone", 1.0), "pup": ("parallel_universe_prompt", 1.0),
           "unhelpful": ("unhelpful", 1.0), "clone_03": ("clone", 0.3),
           "pup_03": ("parallel_universe_prompt", 0.3)}
INFLATE = 0.10


def population() -> pd.DataFrame:
    """The plasmode population: the 480 oracle-labelled logged rows of the Arena sample.

    Returns
    -------
    DataFrame
        ``judge_score, oracle_label, response_length, logprob_base`` and, per target of
        :data:`TARGETS`, ``lw[<name>]`` (its log importance ratio against ``base``).
    """
    logged = datasets.arena().logged
    lab = logged[logged["oracle_label"].notna()].reset_index(drop=True)
    out = lab[["judge_score", "oracle_label", "response_length", "logprob_base"]].copy()
    for name, (src, a) in TARGETS.items():
        out[f"lw[{name}]"] = a * (lab[f"logprob[{src}]"] - lab["logprob_base"]).to_numpy()
    return out


POP = population()
LONG = (POP["response_length"] > POP["response_length"].median()).to_numpy()
INFLATED_SCORE = np.where(LONG, np.minimum(POP["judge_score"].to_numpy() + INFLATE, 1.0),
                          POP["judge_score"].to_numpy())


def target_probs(name: str) -> np.ndarray:
    """The plasmode target distribution ``w_i / Σ w`` over the population rows.

    Parameters
    ----------
    name : str
        A key of :data:`TARGETS`.

    Returns
    -------
    ndarray
        Probabilities over the 480 rows (sum 1).
    """
    lw = POP[f"lw[{name}]"].to_numpy()
    w = np.exp(lw - lw.max())
    return w / w.sum()


TRUTH = {"base": float(POP["oracle_label"].mean()), "inflated": float(POP["oracle_label"].mean())}
TRUTH.update({t: float(target_probs(t) @ POP["oracle_label"].to_numpy()) for t in TARGETS})
#: log of the population mean raw weight of each target (subtracted in the ``normalised`` variant)
LOG_MEAN_W = {t: float(np.log(np.mean(np.exp(POP[f"lw[{t}]"].to_numpy())))) for t in TARGETS}
#: nats subtracted from every log-probability in the ``normalised`` variant (keeps them all <= 0)
NORM_OFFSET = 1.0 + max(0.0, max(float((POP["logprob_base"] + POP[f"lw[{t}]"] - LOG_MEAN_W[t]).max())
                                  for t in TARGETS))


def pop_ess(name: str) -> float:
    """Population ESS fraction ``(Σw)² / (N Σw²)`` of a target's weights over the 480 rows.

    Parameters
    ----------
    name : str
        A key of :data:`TARGETS`.

    Returns
    -------
    float
    """
    p = target_probs(name)
    return float(1.0 / (p.size * (p ** 2).sum()))


def _labels(rng: np.random.Generator, y: np.ndarray, frac: float) -> np.ndarray:
    """MCAR labels: each row labelled with probability ``frac``; at least 4 labelled rows."""
    keep = rng.random(y.size) < frac
    if keep.sum() < 4:  # the package needs 4 labelled prompts to calibrate: redraw the mask
        keep[rng.choice(y.size, 4, replace=False)] = True
    return np.where(keep, y, np.nan)


#: (substring of a reason, short name of the gate), matched in this order
GATE_KEYS = (("degenerate weights", "degenerate"), ("no support", "no-support"),
             ("suspect log-probabilities", "mean-weight-high"), ("missed the target", "mean-weight-deficit"),
             ("poor overlap", "ess"), ("Hill", "hill"), ("TTC", "ttc"), ("below 1e-3", "near-zero"),
             ("near a bound on few labels", "few-labels-near-bound"), ("wider", "wider-than-scale"),
             ("outside the labelled range", "out-of-range"), ("cross", "crosses-bound"))


def _status_kind(reasons: list[str]) -> str:
    """Short names of the gates whose reasons an estimate carries (``;``-joined, sorted)."""
    out = []
    for r in reasons:
        hit = [v for k, v in GATE_KEYS if k in r]
        out.append(hit[0] if hit else "other:" + r[:40])
    return ";".join(sorted(set(out)))


def _rows(rep, truth: dict[str, float], base: dict) -> list[dict]:
    rows = []
    for e in rep.estimates:
        if e.policy not in truth:
            continue
        g = e.diagnostics
        t = truth[e.policy]
        rows.append({**base, "kind": "level", "policy": e.policy, "method": e.method,
                     "estimate": e.estimate, "truth": t, "se": e.se, "ci_low": e.ci_low,
                     "ci_high": e.ci_high, "covered": bool(e.ci_low <= t <= e.ci_high),
                     "status": e.status, "width": e.ci_high - e.ci_low,
                     "ess_raw": g.get("ess_raw", np.nan), "ess_stable": g.get("ess_stable", np.nan),
                     "hill_raw": g.get("hill_raw", np.nan),
                     "mean_raw_weight": g.get("mean_raw_weight", np.nan),
                     "gates": _status_kind(list(e.reasons)), "reasons": " | ".join(e.reasons)})
    return rows


def direct_replicate(seed: int, n: int, frac: float) -> list[dict]:
    """One direct replicate: ``base`` and ``inflated`` fresh draws resampled from the population.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    n : int
        Prompts (rows per policy).
    frac : float
        MCAR labelling fraction.

    Returns
    -------
    list of dict
        One row per level and one for the contrast ``base − inflated`` (truth 0).
    """
    rng = np.random.default_rng([seed, n, round(1000 * frac), 1])
    pid = np.array([f"p{i}" for i in range(n)])
    y = POP["oracle_label"].to_numpy()
    ia, ib = rng.integers(0, len(POP), n), rng.integers(0, len(POP), n)
    data = pd.concat([
        pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": POP["judge_score"].to_numpy()[ia],
                      "oracle_label": _labels(rng, y[ia], frac)}),
        pd.DataFrame({"prompt_id": pid, "policy": "inflated", "judge_score": INFLATED_SCORE[ib],
                      "oracle_label": _labels(rng, y[ib], frac)})], ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(data, judge_scale=(0, 1), label_scale=(0, 1))
    base = {"part": "direct", "seed": seed, "n": n, "frac": frac, "estimator": "auto",
            "variant": "-"}
    rows = _rows(rep, TRUTH, base)
    st = {e.policy: e.status for e in rep.estimates}
    for c in rep.pairs:
        sign = 1.0 if (c.policy_a, c.policy_b) == ("base", "inflated") else -1.0
        rows.append({**base, "kind": "contrast", "policy": "base-inflated", "method": "",
                     "estimate": sign * c.estimate, "truth": 0.0, "se": c.se,
                     "ci_low": c.ci_low if sign > 0 else -c.ci_high,
                     "ci_high": c.ci_high if sign > 0 else -c.ci_low,
                     "covered": bool(c.ci_low <= 0.0 <= c.ci_high),
                     "status": "OK" if st.get("base") == st.get("inflated") == "OK" else "not OK",
                     "width": c.ci_high - c.ci_low, "significant": bool(c.significant),
                     "gates": "", "reasons": ""})
    return rows


def offpolicy_data(seed: int, n: int, frac: float, variant: str, targets: tuple[str, ...]
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One off-policy replicate's logged rows and fresh draws of each target.

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    n : int
        Logged prompts.
    frac : float
        MCAR labelling fraction.
    variant : {"real", "normalised"}
        Real target log-probabilities, or shifted so the population mean raw weight is 1.
    targets : tuple of str
        Keys of :data:`TARGETS`.

    Returns
    -------
    (DataFrame, DataFrame)
        Logged data (``prompt_id, policy, judge_score, oracle_label, logprob_base,
        logprob[<target>]``) and fresh draws (``prompt_id, policy, judge_score``).
    """
    rng = np.random.default_rng([seed, n, round(1000 * frac), 2])
    pid = np.array([f"p{i}" for i in range(n)])
    idx = rng.integers(0, len(POP), n)
    sub = POP.iloc[idx]
    logged = pd.DataFrame({"prompt_id": pid, "policy": "base", "judge_score": sub["judge_score"].to_numpy(),
                           "oracle_label": _labels(rng, sub["oracle_label"].to_numpy(), frac),
                           "logprob_base": sub["logprob_base"].to_numpy()})
    fresh = []
    if variant == "normalised":  # every log-probability lowered by one constant keeps them <= 0
        logged["logprob_base"] -= NORM_OFFSET
    for t in targets:
        shift = LOG_MEAN_W[t] if variant == "normalised" else 0.0
        logged[f"logprob[{t}]"] = logged["logprob_base"].to_numpy() + sub[f"lw[{t}]"].to_numpy() - shift
        j = rng.choice(len(POP), n, p=target_probs(t))
        fresh.append(pd.DataFrame({"prompt_id": pid, "policy": t,
                                   "judge_score": POP["judge_score"].to_numpy()[j]}))
    return logged, pd.concat(fresh, ignore_index=True)


def offpolicy_replicate(seed: int, n: int, frac: float, variant: str, estimators: tuple[str, ...],
                        targets: tuple[str, ...] = tuple(TARGETS)) -> list[dict]:
    """One off-policy replicate, analysed by each estimator (the same data for all).

    Parameters
    ----------
    seed : int
        Seed of the replicate.
    n : int
        Logged prompts.
    frac : float
        MCAR labelling fraction.
    variant : {"real", "normalised"}
        See :func:`offpolicy_data`.
    estimators : tuple of str
        Values of ``estimator=`` for ``cje.analyze`` (``"auto"`` = its default).
    targets : tuple of str
        Keys of :data:`TARGETS`.

    Returns
    -------
    list of dict
        One row per (estimator, policy).
    """
    logged, fresh = offpolicy_data(seed, n, frac, variant, targets)
    rows = []
    for est in estimators:
        weighting = est in ("snips", "calibrated-ips", "ips")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(logged, fresh_draws=None if weighting else fresh, estimator=est,
                              judge_scale=(0, 1), label_scale=(0, 1))
        rows += _rows(rep, TRUTH, {"part": "offpolicy", "seed": seed, "n": n, "frac": frac,
                                   "estimator": est, "variant": variant})
    return rows


ESTIMATORS = ("auto", "snips", "calibrated-ips", "stacked-dr", "dr-cpo", "tmle")
#: direct cells (n, labelled fraction)
DIRECT_CELLS = [(n, f) for n in (480, 1000, 2000) for f in (0.05, 0.10, 0.25)]
#: off-policy cells (variant, n, labelled fraction)
OFF_CELLS = [("real", 1000, 0.10), ("real", 1000, 0.05), ("real", 1000, 0.25), ("real", 480, 0.10),
             ("real", 2000, 0.10), ("normalised", 1000, 0.10)]


def _cov(x: pd.Series) -> str:
    if len(x) == 0:
        return "— (0)"
    c = x.mean()
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / len(x)):.3f} ({len(x)})"


def _shares(st: pd.Series) -> str:
    v = st.value_counts(normalize=True)
    return f"{v.get('OK', 0):.2f} / {v.get('CAUTION', 0):.2f} / {v.get('REFUSED', 0):.2f}"


def _gates(g: pd.DataFrame) -> str:
    """The gates fired (share of replicates each), most frequent first."""
    names = g["gates"].fillna("").str.split(";").explode()
    names = names[names != ""]
    if names.empty:
        return "—"
    v = names.value_counts() / len(g)
    return ", ".join(f"{k} {x:.2f}" for k, x in v.head(4).items())


def direct_table(df: pd.DataFrame) -> list[str]:
    """Markdown table of the direct cells.

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`direct_replicate`.

    Returns
    -------
    list of str
    """
    lines = ["| n | labelled | policy | coverage ± MC SE (r) | bias ± MC SE | mean width | "
             "OK / CAUTION / REFUSED | coverage of OK (count) | coverage of not-OK (count) | "
             "false 'Better' (truth 0) | gates fired |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for (n, f, pol), g in df.groupby(["n", "frac", "policy"], sort=True):
        err = g["estimate"] - g["truth"]
        ok = g["status"] == "OK"
        sig = f"{g['significant'].mean():.3f}" if g["kind"].iloc[0] == "contrast" else ""
        shares = _shares(g["status"]) if g["kind"].iloc[0] == "level" else f"both OK {ok.mean():.2f}"
        lines.append(f"| {n} | {f:.0%} | {pol} | {_cov(g['covered'])} | {err.mean():+.4f} ± "
                     f"{err.std(ddof=1) / np.sqrt(len(g)):.4f} | {g['width'].mean():.3f} | {shares} | "
                     f"{_cov(g.loc[ok, 'covered'])} | {_cov(g.loc[~ok, 'covered'])} | {sig} | "
                     f"{_gates(g) if g['kind'].iloc[0] == 'level' else ''} |")
    return lines


def offpolicy_table(df: pd.DataFrame) -> list[str]:
    """Markdown table of the off-policy cells (one row per cell, estimator and policy).

    Parameters
    ----------
    df : DataFrame
        Rows of :func:`offpolicy_replicate`.

    Returns
    -------
    list of str
    """
    lines = ["| variant, n, labelled | estimator | policy | truth | pop. ESS | median raw / stable ESS "
             "| median Hill | coverage ± MC SE (r) | bias ± MC SE | mean width | OK / CAUTION / REFUSED "
             "| coverage of OK (count) | coverage of CAUTION (count) | gates fired (share) |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    order = ["base", *TARGETS]
    for (v, n, f), cell in df.groupby(["variant", "n", "frac"], sort=False):
        for est in ESTIMATORS:
            ce = cell[cell["estimator"] == est]
            for pol in order:
                g = ce[ce["policy"] == pol]
                if g.empty:
                    continue
                err = g["estimate"] - g["truth"]
                ok, ca = g["status"] == "OK", g["status"] == "CAUTION"
                pe = "" if pol == "base" else f"{pop_ess(pol):.1%}"
                ess = ("" if pol == "base" else
                       f"{g['ess_raw'].median():.1%} / {g['ess_stable'].median():.1%}")
                hill = "" if pol == "base" else f"{g['hill_raw'].median():.2f}"
                lines.append(
                    f"| {v}, {n}, {f:.0%} | {est} | {pol} | {TRUTH[pol]:.4f} | {pe} | {ess} | {hill} | "
                    f"{_cov(g['covered'])} | {err.mean():+.4f} ± {err.std(ddof=1) / np.sqrt(len(g)):.4f} | "
                    f"{g['width'].mean():.3f} | {_shares(g['status'])} | {_cov(g.loc[ok, 'covered'])} | "
                    f"{_cov(g.loc[ca, 'covered'])} | {_gates(g)} |")
    return lines


def flags(df: pd.DataFrame) -> list[str]:
    """Wrong-OK checks: OK intervals covering < 0.93 by > 2 MC SE; OK/CAUTION estimates outside [0, 1].

    Parameters
    ----------
    df : DataFrame
        All replicate rows.

    Returns
    -------
    list of str
        Markdown bullet lines (``- none`` when nothing is flagged).
    """
    out = []
    ok = df[df["status"] == "OK"]
    for key, g in ok.groupby(["part", "variant", "n", "frac", "estimator", "policy"], sort=False):
        c, r = g["covered"].mean(), len(g)
        se = np.sqrt(c * (1 - c) / r)
        if c < 0.93 - 2 * se:
            out.append(f"- OK under-coverage: {key}: {c:.3f} ± {se:.3f} ({r} OK intervals)")
    lv = df[(df["kind"] == "level") & df["status"].isin(["OK", "CAUTION"])]
    bad = lv[(lv["estimate"] < 0) | (lv["estimate"] > 1)]
    for key, g in bad.groupby(["part", "variant", "n", "frac", "estimator", "policy", "status"], sort=False):
        out.append(f"- estimate outside [0, 1] reported {key[-1]}: {key[:-1]}: {len(g)} replicates")
    return out or ["- none"]


def conservative(df: pd.DataFrame) -> list[str]:
    """Cells whose CAUTION intervals cover 0.99 or more (gates possibly too conservative).

    Parameters
    ----------
    df : DataFrame
        All replicate rows.

    Returns
    -------
    list of str
        Markdown table lines.
    """
    lines = ["| part, variant, n, labelled | estimator | policy | CAUTION share | coverage of CAUTION "
             "(count) | CAUTION mean width | OK mean width | gates fired (share) |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    lv = df[df["kind"] == "level"]
    for (part, v, n, f, est, pol), g in lv.groupby(["part", "variant", "n", "frac", "estimator", "policy"],
                                                  sort=False):
        ca = g[g["status"] == "CAUTION"]
        if len(ca) >= 20 and ca["covered"].mean() >= 0.99:
            okw = g.loc[g["status"] == "OK", "width"]
            lines.append(f"| {part}, {v}, {n}, {f:.0%} | {est} | {pol} | {len(ca) / len(g):.2f} | "
                         f"{_cov(ca['covered'])} | {ca['width'].mean():.3f} | "
                         f"{okw.mean() if len(okw) else float('nan'):.3f} | {_gates(ca)} |")
    return lines


def main() -> None:
    """Run the cells, write the replicate rows and the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--part", default="direct,offpolicy")
    ap.add_argument("--tables-only", action="store_true", help="re-render from the CSV")
    args = ap.parse_args()
    t0 = time.time()
    if args.tables_only:
        df = pd.read_parquet(OUT_PQ)
    else:
        par = Parallel(n_jobs=args.n_jobs)
        rows: list[dict] = []
        if "direct" in args.part:
            for n, f in DIRECT_CELLS:
                for r in par(delayed(direct_replicate)(s, n, f) for s in range(args.reps)):
                    rows += r
                print(f"direct n={n} f={f}: {time.time() - t0:.0f}s", flush=True)
        if "offpolicy" in args.part:
            for v, n, f in OFF_CELLS:
                for r in par(delayed(offpolicy_replicate)(s, n, f, v, ESTIMATORS) for s in range(args.reps)):
                    rows += r
                print(f"offpolicy {v} n={n} f={f}: {time.time() - t0:.0f}s", flush=True)
        df = pd.DataFrame(rows)
        df.to_parquet(OUT_PQ, index=False)
    runtime = time.time() - t0
    tables = ["# Tables", "",
              f"Command: `python simulations/independent_plasmode.py --reps {args.reps} --n-jobs "
              f"{args.n_jobs}` ({runtime:.0f} s). Truths (exact, empirical plasmode population): "
              + ", ".join(f"{k} {v:.4f}" for k, v in TRUTH.items()) + ". Population ESS: "
              + ", ".join(f"{k} {pop_ess(k):.2%}" for k in TARGETS) + ". Population mean raw weight "
              "(real log-probabilities): " + ", ".join(f"{k} {np.exp(v):.3g}" for k, v in LOG_MEAN_W.items())
              + ".", "", "## Wrong-OK checks", "", *flags(df), "",
              "## CAUTION intervals that cover 0.99 or more (count ≥ 20)", "", *conservative(df), ""]
    if (df["part"] == "direct").any():
        tables += ["## Direct (fresh draws of base and inflated; contrast base − inflated, truth 0)", "",
                   *direct_table(df[df["part"] == "direct"]), ""]
    if (df["part"] == "offpolicy").any():
        tables += ["## Off-policy (logged base rows; DR estimators with one fresh draw per prompt)", "",
                   *offpolicy_table(df[df["part"] == "offpolicy"]), ""]
    head = OUT_MD.read_text().split("# Tables")[0] if OUT_MD.exists() else "(reading to be written)\n\n"
    OUT_MD.write_text(head + "\n".join(tables) + "\n")
    print("\n".join(tables[:12]))


if __name__ == "__main__":
    main()
