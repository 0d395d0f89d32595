"""Can the fresh draws flag a DR OK whose logged sample missed the target's heaviest rows?

Finding under test (``simulations/results/independent_plasmode.md``): on the real Arena rows the
doubly robust OK intervals for ``clone`` cover 0.837 ± 0.023, because a sample passes the DR ESS
gate mostly when it missed the heaviest rows (one row: 8.9% of clone's mass, judge 0.70, label
0.40). The fresh draws of the target sample the target's distribution, heavy rows included, so
their judge-score distribution should differ from the raw-weighted logged one in such samples.

Per replicate and DR target this records the default estimator's status and coverage, the
package's ``fresh_score_z`` (fresh mean judge score against the raw Hájek logged mean) and a binned
comparison computed here from the same frames:

* bins: the fresh draws' distinct judge scores, adjacent values merged until each bin holds at
  least ``max(10, 5%)`` of the fresh draws;
* ``d = q̂ − p̂`` (fresh share minus raw-weighted logged share, first ``K − 1`` bins) with the
  variance ``Σ_j (e_j − q̂)(e_j − q̂)ᵀ / m² + Σ_i u_i² (e_i − p̂)(e_i − p̂)ᵀ``, ``u_i = w_i / Σ w``
  (one logged row and one fresh draw per prompt in both processes, so rows are prompts);
  Wald ``T = dᵀ V⁻ d`` against chi-square(``K − 1``), and the largest per-bin ``|z|``.

Candidate rules for a DR level that is otherwise OK: CAUTION when ``|fresh_score_z|`` > 2.576 or
> 1.96, or when the chi-square p-value is below 0.01 / 0.05. Rules are chosen on the ``choose``
seeds and judged on the disjoint ``check`` seeds.

Processes:

* plasmode (``independent_plasmode.offpolicy_data``, variant ``real``): targets ``clone`` (the
  failure) and ``clone_03`` (good-overlap control), 10% labels, n = 480, 1000, 2000;
* synthetic: ``cje.synthetic.make_offpolicy_eval(1000)`` with its default targets (ESS 90%, 60%,
  10%), and a second set with one target at population ESS 25%
  (``theta_for_ess(0.25)``: near the DR gate, where a new rule would bite).

Coverage ``c`` of ``r`` intervals has MC SE ``sqrt(c (1 − c) / r)``.

Usage::

    python simulations/independent_drtail.py [--set choose|check|both] [--tables-only]

Writes ``simulations/results/independent_drtail_<set>.parquet`` (git-ignored) and the tables of
``simulations/results/independent_drtail.md`` (below its "# Tables" heading).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

import cje
from cje.synthetic import make_offpolicy_eval
from cje.synthetic.offpolicy import theta_for_ess

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_plasmode as ip  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
OUT_MD = RESULTS / "independent_drtail.md"

#: seed offsets of the two disjoint replicate sets
SEED_BASE = {"choose": 100_000, "check": 200_000}
#: plasmode cells (n, labelled fraction, replicates)
PLASMODE_CELLS = [(480, 0.10, 400), (1000, 0.10, 400), (2000, 0.10, 200)]
#: synthetic processes (name, targets or None for the defaults, replicates)
SYNTH = [("default", None, 250), ("ess25", {"ess25": theta_for_ess(0.25)}, 250)]
#: candidate rules: name -> function of a row returning True when the rule would caution the level
RULES = {
    "|z|>3.29 (current)": lambda r: abs(r["fresh_z"]) > 3.29,
    "|z|>2.576": lambda r: abs(r["fresh_z"]) > 2.576,
    "|z|>1.96": lambda r: abs(r["fresh_z"]) > 1.96,
    "chi2 p<0.001": lambda r: r["chi2_p"] < 0.001,
    "chi2 p<0.01": lambda r: r["chi2_p"] < 0.01,
    "chi2 p<0.05": lambda r: r["chi2_p"] < 0.05,
    "max bin |z|>3.29": lambda r: r["bin_maxz"] > 3.29,
}


def score_bins(fresh: np.ndarray, min_share: float = 0.05, min_count: int = 10) -> np.ndarray:
    """Cut points of judge-score bins built from the fresh draws' distinct values.

    Adjacent distinct values are merged until each bin holds at least ``max(min_count,
    min_share · m)`` of the ``m`` fresh draws (a short last bin joins the one before).

    Parameters
    ----------
    fresh : numpy.ndarray
        The target's fresh draws' judge scores.
    min_share, min_count : float, int
        Smallest bin, as a share and as a count of the fresh draws.

    Returns
    -------
    numpy.ndarray
        Interior cut points (midpoints between distinct values); ``K − 1`` of them for ``K`` bins.
    """
    vals, counts = np.unique(fresh, return_counts=True)
    need = max(min_count, min_share * fresh.size)
    cuts, acc = [], 0
    for k in range(vals.size - 1):
        acc += counts[k]
        if acc >= need:
            cuts.append(0.5 * (vals[k] + vals[k + 1]))
            acc = 0
    if cuts and acc + counts[-1] < need:  # the last bin is short: merge it into the previous
        cuts.pop()
    return np.asarray(cuts)


def binned_balance(s_log: np.ndarray, w: np.ndarray, s_fresh: np.ndarray) -> dict[str, float]:
    """Wald chi-square of the fresh draws' score histogram against the raw-weighted logged one.

    Parameters
    ----------
    s_log, w : numpy.ndarray
        Logged judge scores and raw importance weights (any scale; one row per prompt).
    s_fresh : numpy.ndarray
        Fresh draws' judge scores (one per prompt).

    Returns
    -------
    dict
        ``chi2`` (statistic), ``chi2_k`` (bins), ``chi2_p`` (p-value, chi-square with ``K − 1``
        degrees of freedom), ``bin_maxz`` (largest per-bin ``|z|``), ``affinity`` (Bhattacharyya
        coefficient ``Σ sqrt(p q)``).
    """
    cuts = score_bins(s_fresh)
    k = cuts.size + 1
    if k < 2:
        return {"chi2": np.nan, "chi2_k": k, "chi2_p": np.nan, "bin_maxz": np.nan, "affinity": np.nan}
    el = np.eye(k)[np.searchsorted(cuts, s_log)]
    ef = np.eye(k)[np.searchsorted(cuts, s_fresh)]
    u = w / w.sum()
    p, q = u @ el, ef.mean(axis=0)
    rf, rl = ef - q, (el - p) * u[:, None]
    v = rf.T @ rf / s_fresh.size ** 2 + rl.T @ rl
    d = (q - p)[:-1]
    vv = v[:-1, :-1]
    t = float(d @ np.linalg.pinv(vv) @ d)
    sd = np.sqrt(np.diag(v))
    z = np.where(sd > 0, np.abs(q - p) / np.where(sd > 0, sd, 1), 0.0)
    return {"chi2": t, "chi2_k": k, "chi2_p": float(stats.chi2.sf(t, k - 1)), "bin_maxz": float(z.max()),
            "affinity": float(np.sqrt(p * q).sum())}


def _analyse(logged: pd.DataFrame, fresh: pd.DataFrame, truth: dict[str, float], base: dict) -> list[dict]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(logged, fresh_draws=fresh, judge_scale=(0, 1), label_scale=(0, 1))
    rows = []
    for e in rep.estimates:
        if e.policy == "base" or e.policy not in truth:
            continue
        t = truth[e.policy]
        lw = (logged[f"logprob[{e.policy}]"] - logged["logprob_base"]).to_numpy()
        w = np.exp(lw - lw.max())
        sf = fresh.loc[fresh["policy"] == e.policy, "judge_score"].to_numpy()
        g = e.diagnostics
        rows.append({**base, "policy": e.policy, "method": e.method, "status": e.status,
                     "estimate": e.estimate, "truth": t, "covered": bool(e.ci_low <= t <= e.ci_high),
                     "width": e.ci_high - e.ci_low, "ess_raw": g.get("ess_raw", np.nan),
                     "fresh_z": g.get("fresh_score_z", np.nan),
                     "reasons": " | ".join(e.reasons),
                     **binned_balance(logged["judge_score"].to_numpy(), w, sf)})
    return rows


#: the plasmode's heaviest clone row, identified by its log weight
HEAVY_LW = float(ip.POP["lw[clone]"].max())


def plasmode_replicate(seed: int, n: int, frac: float) -> list[dict]:
    """One plasmode replicate (variant ``real``; targets ``clone`` and ``clone_03``).

    Parameters
    ----------
    seed : int
        Seed (passed to ``independent_plasmode.offpolicy_data``).
    n : int
        Logged prompts.
    frac : float
        Labelled fraction.

    Returns
    -------
    list of dict
        One row per target.
    """
    logged, fresh = ip.offpolicy_data(seed, n, frac, "real", ("clone", "clone_03"))
    heavy = bool(np.isclose(logged["logprob[clone]"] - logged["logprob_base"], HEAVY_LW).any())
    return _analyse(logged, fresh, ip.TRUTH, {"process": f"plasmode n={n}", "seed": seed, "heavy": heavy})


def synthetic_replicate(seed: int, name: str, targets: dict | None) -> list[dict]:
    """One synthetic replicate of ``make_offpolicy_eval(1000)``.

    Parameters
    ----------
    seed : int
        Seed of the simulation.
    name : str
        Label of the process.
    targets : dict or None
        Targets (None: the defaults).

    Returns
    -------
    list of dict
        One row per target.
    """
    sim = make_offpolicy_eval(1000, targets=targets, rng=seed)
    fresh = sim.fresh[sim.fresh["policy"] != "base"]
    return _analyse(sim.logged, fresh, sim.truth, {"process": f"synthetic {name}", "seed": seed,
                                                    "heavy": np.nan})


def run(which: str) -> pd.DataFrame:
    """All replicates of one seed set.

    Parameters
    ----------
    which : {"choose", "check"}
        The seed set.

    Returns
    -------
    DataFrame
        One row per (replicate, target), with the set in column ``set``.
    """
    s0, rows, t0 = SEED_BASE[which], [], time.time()
    for n, f, reps in PLASMODE_CELLS:
        for s in range(reps):
            rows += plasmode_replicate(s0 + s, n, f)
        print(f"{which} plasmode n={n}: {time.time() - t0:.0f}s", flush=True)
    for name, targets, reps in SYNTH:
        for s in range(reps):
            rows += synthetic_replicate(s0 + s, name, targets)
        print(f"{which} synthetic {name}: {time.time() - t0:.0f}s", flush=True)
    df = pd.DataFrame(rows)
    df["set"] = which
    return df


def _cov(x: pd.Series) -> str:
    if len(x) == 0:
        return "— (0)"
    c = x.mean()
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / len(x)):.3f} ({len(x)})"


def rule_table(df: pd.DataFrame) -> list[str]:
    """Per process, target and rule: coverage of the OK levels the rule keeps and of those it flags.

    Parameters
    ----------
    df : DataFrame
        Rows of one seed set.

    Returns
    -------
    list of str
        Markdown table lines.
    """
    lines = ["| process | target | OK now: coverage (count) | rule | flagged share of OK | "
             "kept OK: coverage (count) | flagged OK: coverage (count) |",
             "|---|---|---:|---|---:|---:|---:|"]
    for (proc, pol), g in df.groupby(["process", "policy"], sort=False):
        ok = g[g["status"] == "OK"]
        if ok.empty:
            lines.append(f"| {proc} | {pol} | — (0) | | | | |")
            continue
        for name, rule in RULES.items():
            fl = ok.apply(rule, axis=1).astype(bool)
            lines.append(f"| {proc} | {pol} | {_cov(ok['covered'])} | {name} | {fl.mean():.3f} | "
                         f"{_cov(ok.loc[~fl, 'covered'])} | {_cov(ok.loc[fl, 'covered'])} |")
    return lines


def pooled_table(df: pd.DataFrame) -> list[str]:
    """The plasmode ``clone`` OK levels pooled over the cells, per rule.

    Parameters
    ----------
    df : DataFrame
        Rows of one seed set.

    Returns
    -------
    list of str
        Markdown table lines.
    """
    ok = df[(df["policy"] == "clone") & (df["status"] == "OK") & df["process"].str.startswith("plasmode")]
    lines = ["| rule | flagged share of OK | kept OK: coverage (count) | flagged OK: coverage (count) |",
             "|---|---:|---:|---:|"]
    for name, rule in RULES.items():
        fl = ok.apply(rule, axis=1).astype(bool)
        lines.append(f"| {name} | {fl.mean():.3f} | {_cov(ok.loc[~fl, 'covered'])} | "
                     f"{_cov(ok.loc[fl, 'covered'])} |")
    return lines


def heavy_table(df: pd.DataFrame) -> list[str]:
    """clone OK levels by whether the sample drew the heaviest row: statistics' medians.

    Parameters
    ----------
    df : DataFrame
        Rows of one seed set.

    Returns
    -------
    list of str
        Markdown table lines.
    """
    lines = ["| process | heavy row drawn | OK count | coverage | median |fresh_score_z| | "
             "median chi2 p | share chi2 p < 0.05 | median max bin |z| |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    c = df[(df["policy"] == "clone") & (df["status"] == "OK")]
    for (proc, h), g in c.groupby(["process", "heavy"], sort=False):
        lines.append(f"| {proc} | {h} | {len(g)} | {_cov(g['covered'])} | "
                     f"{g['fresh_z'].abs().median():.2f} | "
                     f"{g['chi2_p'].median():.3f} | {(g['chi2_p'] < 0.05).mean():.2f} | "
                     f"{g['bin_maxz'].median():.2f} |")
    return lines


def main() -> None:
    """Run the seed sets and write the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", default="both", choices=["choose", "check", "both"])
    ap.add_argument("--tables-only", action="store_true")
    args = ap.parse_args()
    sets = ["choose", "check"] if args.set == "both" else [args.set]
    if not args.tables_only:
        for s in sets:
            run(s).to_parquet(RESULTS / f"independent_drtail_{s}.parquet", index=False)
    tables = ["# Tables", ""]
    for s in ["choose", "check"]:
        pq = RESULTS / f"independent_drtail_{s}.parquet"
        if not pq.exists():
            continue
        df = pd.read_parquet(pq)
        tables += [f"## Seed set `{s}` (seeds from {SEED_BASE[s]})", "",
                   "### Candidate rules on the levels that are OK now", "", *rule_table(df), "",
                   "### Plasmode clone OK levels pooled over n = 480, 1000, 2000", "", *pooled_table(df), "",
                   "### clone OK levels by whether the sample drew the heaviest row", "",
                   *heavy_table(df), ""]
    head = OUT_MD.read_text().split("# Tables")[0] if OUT_MD.exists() else "(reading to be written)\n\n"
    OUT_MD.write_text(head + "\n".join(tables) + "\n")
    print("\n".join(tables))


if __name__ == "__main__":
    main()
