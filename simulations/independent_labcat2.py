"""Check: does the prompt label-balance check catch labels chosen by prompt category that the
row check misses, without cautioning random labels? Direct mode, the designs of
``simulations/independent_designs.py`` (same data-generating process, cells and seeds).

An outside check (numpy/pandas/joblib and ``cje.analyze`` only).

``labcat``: labels on 40% of the hard prompts' rows and 8% of the easy ones', without
``label_probability``; ``labcat_pi`` the same with it; every other cell labels 25% of the rows at
random (the false-caution rate of the checks). Per replicate and policy the level, its interval
and status, both label-balance statistics (``label_score_z``: the labelled rows' own judge
scores; ``label_prompt_z``: their prompts' mean judge score over every policy's rows) and whether
the level has a CAUTION reason other than the label balance. The status "before" (the row check
alone at ``|z| > 3.29``) is rebuilt from these: CAUTION when another reason holds or
``|label_score_z| > 3.29``; REFUSED levels stay REFUSED. Truths and scoring as in
``independent_designs.py`` (``own`` = ``full`` in these cells). MC SE of a share ``c`` over
``r`` replicates: ``sqrt(c(1 − c)/r)``. Seeds ``SeedSequence([cell index, replicate])`` (the
cell index in ``independent_designs.CELLS``).

Usage::

    python simulations/independent_labcat2.py [--reps 2000] [--cells labcat,...] [--csv PATH]
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

sys.path.insert(0, str(Path(__file__).parent))
import independent_designs as D  # noqa: E402

import cje  # noqa: E402

KEY_LB = "do not look like a uniform random sample"
Z_ROW_BEFORE = 3.29


def one_run(ci: int, r: int) -> dict:
    """One replicate of ``D.CELLS[ci]``: the numbers scored."""
    cell = D.CELLS[ci]
    df = D.simulate(cell, np.random.default_rng(np.random.SeedSequence([ci, r])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(df, judge_scale=D.JUDGE, label_scale=D.LABEL)
    out: dict = {"cell": cell.name, "rep": r}
    for p in "AB":
        e = rep[p]
        other = [w for w in e.reasons if KEY_LB not in w]
        out.update({f"{p}_est": e.estimate, f"{p}_lo": e.ci_low, f"{p}_hi": e.ci_high,
                    f"{p}_status": e.status, f"{p}_other": bool(other),
                    f"{p}_lb": any(KEY_LB in w for w in e.reasons),
                    f"{p}_zrow": e.diagnostics.get("label_score_z", np.nan),
                    f"{p}_zprompt": e.diagnostics.get("label_prompt_z", np.nan)})
    (c,) = rep.pairs
    sign = 1.0 if (c.policy_a, c.policy_b) == ("A", "B") else -1.0
    out.update({"AB_est": sign * c.estimate, "AB_sig": bool(c.significant)})
    return out


def _share(x: np.ndarray) -> str:
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return "—"
    c = x.mean()
    return f"{c:.4f} ± {np.sqrt(c * (1 - c) / x.size):.4f}"


def statuses(sub: pd.DataFrame, p: str) -> tuple[np.ndarray, np.ndarray]:
    """Policy ``p``'s status after (as reported) and before (the row check alone at 3.29)."""
    after = sub[f"{p}_status"].to_numpy()
    zrow = np.abs(sub[f"{p}_zrow"].to_numpy(dtype=float))
    caution = sub[f"{p}_other"].to_numpy(dtype=bool) | (zrow > Z_ROW_BEFORE)
    before = np.where(after == "REFUSED", "REFUSED", np.where(caution, "CAUTION", "OK"))
    return after, before


def summarise(res: pd.DataFrame) -> str:
    """The tables of the results file (markdown)."""
    n = res.groupby("cell").size()
    lines = [f"Replicates per cell: {', '.join(f'{k} {v}' for k, v in n.items())}.\n",
             "## Levels before (row check alone, |z| > 3.29) and after (row and prompt checks, "
             "|z| > 3.48 each)\n",
             "| cell | policy | truth | cover all | OK before | cover OK before | OK after | "
             "cover OK after | label-balance CAUTION after | row z > 3.48 | prompt z > 3.48 | "
             "row z > 3.29 |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    con = ["\n## Contrast A − B: false \"Better\" with both levels OK (share of all reports)\n",
           "| cell | truth | Better | false Better | false Better, both OK before | "
           "false Better, both OK after |", "|---|---:|---:|---:|---:|---:|"]
    for cell in D.CELLS:
        sub = res[res.cell == cell.name]
        if sub.empty:
            continue
        t = D.truths(cell)
        ok = {}
        for p in "AB":
            after, before = statuses(sub, p)
            ok[p] = (before == "OK", after == "OK")
            lo, hi = sub[f"{p}_lo"].to_numpy(), sub[f"{p}_hi"].to_numpy()
            cov = (lo <= t[f"own_{p}"]) & (t[f"own_{p}"] <= hi)
            zr = np.abs(sub[f"{p}_zrow"].to_numpy(dtype=float))
            zp = np.abs(sub[f"{p}_zprompt"].to_numpy(dtype=float))
            lines.append(
                f"| {cell.name} | {p} | {t[f'own_{p}']:.4f} | {_share(cov)} | {ok[p][0].mean():.4f} | "
                f"{_share(cov[ok[p][0]])} | {ok[p][1].mean():.4f} | {_share(cov[ok[p][1]])} | "
                f"{_share(sub[f'{p}_lb'].to_numpy(dtype=bool))} | {_share(zr > 3.48)} | "
                f"{_share(zp > 3.48)} | {_share(zr > 3.29)} |")
        full = t["full_AB"]
        est, sig = sub["AB_est"].to_numpy(), sub["AB_sig"].to_numpy(dtype=bool)
        false = sig & (np.sign(est) != np.sign(full)) if abs(full) > 1e-12 else sig
        con.append(f"| {cell.name} | {full:+.4f} | {sig.mean():.4f} | {_share(false)} | "
                   f"{_share(false & ok['A'][0] & ok['B'][0])} | "
                   f"{_share(false & ok['A'][1] & ok['B'][1])} |")
    return "\n".join(lines + con) + "\n"


def main() -> None:
    """Command line: run the cells, write the CSV and print the tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--cells", default=",".join(c.name for c in D.CELLS))
    ap.add_argument("--csv", default=str(Path(__file__).parent / "results" / "independent_labcat2.csv"))
    ap.add_argument("--from-csv", help="only print the tables of an earlier run's CSV")
    ns = ap.parse_args()
    if ns.from_csv:
        print(summarise(pd.read_csv(ns.from_csv)))
        return
    names = ns.cells.split(",")
    idx = [i for i, c in enumerate(D.CELLS) if c.name in names]
    t0 = time.time()
    rows = Parallel(n_jobs=1)(delayed(one_run)(i, r) for i in idx for r in range(ns.reps))
    res = pd.DataFrame(rows)
    res.to_csv(ns.csv, index=False)
    print(f"{len(res)} runs in {time.time() - t0:.0f} s")
    print(summarise(res))


if __name__ == "__main__":
    main()
