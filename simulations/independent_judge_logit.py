"""Post-hoc check for ``independent_judge.py``: would a logit-scale interval fix the coverage near a
bound?

For every level strictly inside the label scale with a positive SE, the reported estimate ``ψ``,
standard error and degrees of freedom are kept and only the interval's shape changes: on the unit
scale ``u = (ψ − lo)/(hi − lo)``, ``expit(logit u ± t_{df} · se_u / (u (1 − u)))`` (delta method),
which never leaves the scale and is skewed away from the nearer bound. Coverage of that interval
against the reported one, for all interior estimates and for the ones the package marked OK.

Run: ``python simulations/independent_judge.py --reps 400 --raw /tmp/judge/full`` first, then
``python simulations/independent_judge_logit.py /tmp/judge/full_levels.csv [group]``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import t as student

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_judge as ij  # noqa: E402


def _c(x: pd.Series) -> str:
    r = len(x)
    if r == 0:
        return "—"
    p = float(x.mean())
    return f"{p:.3f} ± {math.sqrt(p * (1 - p) / r):.3f} ({r})"


def logit_table(levels: pd.DataFrame, group: str = "bounds") -> pd.DataFrame:
    """Coverage of the reported and of the logit-scale interval per (n, labels), design ``all``.

    Parameters
    ----------
    levels : pandas.DataFrame
        The per-replicate level rows written by ``independent_judge.py --raw``.
    group : str
        The study's cell group.

    Returns
    -------
    pandas.DataFrame
    """
    d = levels[(levels["group"] == group) & levels["se"].notna() & (levels["design"] == "all")].copy()
    d["truth"] = [ij.truth(lab)[p] for lab, p in zip(d["labels"], d["policy"], strict=True)]
    lo = d["labels"].map(lambda lab: ij.LABEL_SCALE[lab][0])
    w = d["labels"].map(lambda lab: ij.LABEL_SCALE[lab][1] - ij.LABEL_SCALE[lab][0])
    u, se, tu = (d["estimate"] - lo) / w, d["se"] / w, (d["truth"] - lo) / w
    inside = (u > 0) & (u < 1) & (se > 0)
    q = student.ppf(0.975, d["df"].clip(lower=1.0))
    with np.errstate(all="ignore"):
        centre, half = np.log(u / (1 - u)), q * se / (u * (1 - u))
        l_lo, l_hi = 1 / (1 + np.exp(-(centre - half))), 1 / (1 + np.exp(-(centre + half)))
    d["hit_reported"] = (d["lo"] <= d["truth"]) & (d["truth"] <= d["hi"])
    d["hit_logit"] = inside & (l_lo <= tu) & (tu <= l_hi)
    g = d[inside].groupby(["n", "labels"])
    return pd.DataFrame({
        "reported, all interior": g["hit_reported"].apply(_c),
        "logit, all interior": g["hit_logit"].apply(_c),
        "reported, OK": g.apply(lambda x: _c(x["hit_reported"][x["status"] == "OK"])),
        "logit, same OK": g.apply(lambda x: _c(x["hit_logit"][x["status"] == "OK"])),
    })


if __name__ == "__main__":
    table = logit_table(pd.read_csv(sys.argv[1], low_memory=False),
                        sys.argv[2] if len(sys.argv) > 2 else "bounds")
    cols = ["n", "labels", *table.columns]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for (n, lab), row in table.iterrows():
        print(f"| {n} | {lab} | " + " | ".join(row) + " |")
