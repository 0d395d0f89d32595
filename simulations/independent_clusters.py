"""Check: are cje's direct-mode intervals prompt-clustered? Several responses per prompt.

An outside check (numpy/pandas/joblib and ``cje.analyze`` only; not ``cje.synthetic``) on data where
rows sharing a ``prompt_id`` are strongly dependent: in the labels, in the judge's errors and hence
in the calibration's residual ``Y − E[Y|S]``. Every figure is scored against the exact population
value.

**Process.** Prompt ``g`` has a quality effect ``u_g ~ N(0, 1)`` (seen by judge and oracle), a
label-only effect ``w_g ~ N(0, c²)`` (the oracle sees it, the judge does not) and a judge-only
effect ``v_g ~ N(0, j_v²)`` (the judge's prompt-level bias). Policy ``p`` on prompt ``g`` has an
effect ``r_gp ~ N(0, 0.3²)`` shared by its draws; draw ``d`` has its own ``ε ~ N(0, 0.6²)``. Latent
quality ``q = μ_p + u_g + r_gp + ε``:

* oracle (Likert 1–5): ``Y = 1 + #{k: q + w_g + e > c_k}``, ``e ~ N(0, 0.4²)``, cuts
  ``c = (−1.5, −0.5, 0.5, 1.5)``; truth ``1 + Σ_k Φ((μ_p − c_k)/σ)``, ``σ² = 1 + 0.09 + 0.36 + c²
  + 0.16``. Variant ``binary``: ``Y = 1[q + w_g + e > 0]``, truth ``Φ(μ_p/σ)``.
* judge (0–10 integers): ``S = clip(round(5 + 1.6 (q + v_g + η)), 0, 10)``, ``η ~ N(0, 0.4²)``.

``w_g`` and ``v_g`` make the judge residual prompt-correlated (``clustered``: ``c = 0.6``,
``j_v = 0.6``); ``weak`` sets both to 0 (the residual is then prompt-correlated only through the
shrinkage of ``E[Y|S]``). Two policies on the same prompts: ``A`` (``μ = 0``) and ``B``
(``μ = 0.3``); the contrast ``B − A`` (truth exact from the two levels).

Designs (G prompts; m draws per prompt and policy, ``draw_idx`` numbers them):

* ``m`` = 1, 2, 5, 20 at G = 30, 100, 400;
* ``unequal``: 3 prompts with 50 draws per policy, every other prompt 1 (the big prompts are
  chosen at random, so the row-weighted and prompt-weighted truths coincide);
* labels ``prompt``: 25% of prompts drawn, every row of a drawn prompt (both policies, all
  draws) labelled; ``row``: every row labelled with probability 0.25 independently (MCAR).

``cje.analyze`` runs with its defaults and declared scales (judge 0–10, labels 1–5 or 0–1). The
measured ICCs (one-way ANOVA on a 20,000-prompt draw with 5 draws per prompt) of the label and of
the judge residual ``Y − E[Y|S]`` (``E[Y|S]`` from the same draw's per-score means) are printed
with the tables. Scored per cell and target (``A``, ``B``, ``B − A``): coverage of the 95%
interval (all, and those whose status is OK; a contrast counts as OK when both of its levels are
OK), shares OK / CAUTION / REFUSED / UNCALIBRATED, bias, and the ratio of the mean reported SE to
the Monte Carlo SD of the estimates. MC SE of a coverage ``c`` over ``r`` intervals:
``sqrt(c(1 − c)/r)``. Seeds ``SeedSequence([cell, replicate])``.

Usage::

    python simulations/independent_clusters.py [--reps 1000] [--reps-ope 400] [--cells NAME,...] [--csv PATH]
        [--time-only] [--mechanism REPS] [--breakdown CELL]
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from joblib import Parallel, delayed

import cje

OUT = Path(__file__).resolve().parent / "results" / "independent_clusters.md"

SD_PP, SD_DRAW, SD_LABEL_NOISE, SD_JUDGE_NOISE = 0.3, 0.6, 0.4, 0.4
CUTS = (-1.5, -0.5, 0.5, 1.5)
MU = {"A": 0.0, "B": 0.3}
#: off-policy: the target tilts the logging policy's draw term, log π_T − log π_0 = θε − θ²σ²/2,
#: so under π_T the draw term is N(θσ², σ²): the target's value is that of μ = θ·0.6²
THETA = 1.0
MU_OPE = {"base": 0.0, "T": THETA * SD_DRAW**2}
RESID = {"clustered": (0.6, 0.6), "weak": (0.0, 0.0)}  # (c: label-only, j_v: judge-only) SDs
_phi = NormalDist().cdf


def sigma(resid: str) -> float:
    """SD of the oracle's latent ``q + w_g + e`` around ``μ_p``.

    Parameters
    ----------
    resid : str
        ``"clustered"`` or ``"weak"``.

    Returns
    -------
    float
    """
    c, _ = RESID[resid]
    return math.sqrt(1.0 + SD_PP**2 + SD_DRAW**2 + c**2 + SD_LABEL_NOISE**2)


def truth(policy: str, labels: str, resid: str) -> float:
    """Exact population mean of the oracle label of a policy.

    Parameters
    ----------
    policy : str
        ``"A"``, ``"B"`` (direct) or ``"base"``, ``"T"`` (off-policy).
    labels : str
        ``"likert"`` or ``"binary"``.
    resid : str
        ``"clustered"`` or ``"weak"``.

    Returns
    -------
    float
    """
    s, mu = sigma(resid), {**MU, **MU_OPE}[policy]
    if labels == "binary":
        return _phi(mu / s)
    return 1.0 + sum(_phi((mu - c) / s) for c in CUTS)


def sizes(G: int, m: int | str, rng: np.random.Generator) -> np.ndarray:
    """Draws per prompt (the same for both policies).

    Parameters
    ----------
    G : int
        Prompts.
    m : int or str
        Draws per prompt; ``"unequal"``: 3 random prompts with 50 draws and 1 for the others
        (``"unequalB"``: ``B`` such prompts).
    rng : numpy.random.Generator

    Returns
    -------
    numpy.ndarray of int
    """
    if isinstance(m, str) and m.startswith("unequal"):
        k = np.ones(G, dtype=np.int64)
        k[rng.choice(G, size=int(m[7:] or 3), replace=False)] = 50
        return k
    return np.full(G, int(m), dtype=np.int64)


def make_data(rng: np.random.Generator, G: int, m: int | str, label_design: str, labels: str,
              resid: str, frac: float = 0.25) -> pd.DataFrame:
    """One replicate's long data ``prompt_id, policy, draw_idx, judge_score, oracle_label``.

    Parameters
    ----------
    rng : numpy.random.Generator
    G : int
        Prompts.
    m : int or "unequal"
        Draws per prompt and policy (:func:`sizes`).
    label_design : str
        ``"prompt"`` (a share ``frac`` of prompts, all their rows) or ``"row"`` (MCAR rows).
    labels : str
        ``"likert"`` or ``"binary"``.
    resid : str
        ``"clustered"`` or ``"weak"``.
    frac : float
        Labelled share of prompts or rows.

    Returns
    -------
    pandas.DataFrame
    """
    c, jv = RESID[resid]
    k = sizes(G, m, rng)
    pid = np.repeat(np.arange(G), k)
    draw = np.arange(pid.size) - np.repeat(np.cumsum(k) - k, k)
    u = rng.standard_normal(G)
    w = c * rng.standard_normal(G)
    v = jv * rng.standard_normal(G)
    lab_prompt = rng.random(G) < frac
    parts = []
    for p, mu in MU.items():
        n = pid.size
        r = SD_PP * rng.standard_normal(G)
        q = mu + u[pid] + r[pid] + SD_DRAW * rng.standard_normal(n)
        z = q + w[pid] + SD_LABEL_NOISE * rng.standard_normal(n)
        y = (z > 0).astype(float) if labels == "binary" else \
            1.0 + sum((z > cut).astype(float) for cut in CUTS)
        s = np.clip(np.round(5.0 + 1.6 * (q + v[pid] + SD_JUDGE_NOISE * rng.standard_normal(n))),
                    0.0, 10.0)
        lab = lab_prompt[pid] if label_design == "prompt" else rng.random(n) < frac
        parts.append(pd.DataFrame({"prompt_id": np.char.add("p", pid.astype(str)), "policy": p,
                                   "draw_idx": draw, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def make_logged(rng: np.random.Generator, G: int, m: int | str, label_design: str, resid: str,
                frac: float = 0.25) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Off-policy replicate: the logging policy's ``m`` draws per prompt with ``logprob_base`` and
    ``logprob[T]``, and the target's fresh draws (unlabelled, ``m`` per prompt), Likert labels.

    Parameters
    ----------
    rng : numpy.random.Generator
    G : int
        Prompts.
    m : int or "unequal"
        Draws per prompt (:func:`sizes`).
    label_design : str
        ``"prompt"`` or ``"row"`` (as in :func:`make_data`; logged rows only).
    resid : str
        ``"clustered"`` or ``"weak"``.
    frac : float
        Labelled share of prompts or rows.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        Logged rows and the target's fresh draws.
    """
    c, jv = RESID[resid]
    k = sizes(G, m, rng)
    pid = np.repeat(np.arange(G), k)
    draw = np.arange(pid.size) - np.repeat(np.cumsum(k) - k, k)
    u = rng.standard_normal(G)
    w = c * rng.standard_normal(G)
    v = jv * rng.standard_normal(G)
    lab_prompt = rng.random(G) < frac
    ids = np.char.add("p", pid.astype(str))
    out = []
    for p, shift in (("base", 0.0), ("T", THETA * SD_DRAW**2)):
        n = pid.size
        r = SD_PP * rng.standard_normal(G)  # the same policy-by-prompt term for both: one policy
        eps = shift + SD_DRAW * rng.standard_normal(n)
        q = u[pid] + r[pid] + eps
        z = q + w[pid] + SD_LABEL_NOISE * rng.standard_normal(n)
        y = 1.0 + sum((z > cut).astype(float) for cut in CUTS)
        s = np.clip(np.round(5.0 + 1.6 * (q + v[pid] + SD_JUDGE_NOISE * rng.standard_normal(n))),
                    0.0, 10.0)
        frame = pd.DataFrame({"prompt_id": ids, "policy": p, "draw_idx": draw, "judge_score": s})
        if p == "base":
            lab = lab_prompt[pid] if label_design == "prompt" else rng.random(n) < frac
            lp0 = -40.0 + 3.0 * rng.standard_normal(n)
            frame["oracle_label"] = np.where(lab, y, np.nan)
            frame["logprob_base"] = lp0
            frame["logprob[T]"] = lp0 + THETA * eps - THETA**2 * SD_DRAW**2 / 2
        out.append(frame)
    return out[0], out[1]


def iccs(labels: str, resid: str, seed: int = 12345) -> tuple[float, float]:
    """ICC (one-way ANOVA, 20,000 prompts × 5 draws of policy A) of the label and of the judge
    residual ``Y − E[Y|S]`` (``E[Y|S]`` estimated by the per-score means of the same draw).

    Parameters
    ----------
    labels, resid : str
        As in :func:`make_data`.
    seed : int

    Returns
    -------
    (float, float)
    """
    rng = np.random.default_rng(seed)
    d = make_data(rng, 20000, 5, "row", labels, resid, frac=1.0)
    d = d[d.policy == "A"]
    y = d.oracle_label.to_numpy()
    e = y - d.groupby("judge_score").oracle_label.transform("mean").to_numpy()
    g = d.prompt_id.to_numpy()

    def icc(x: np.ndarray) -> float:
        df = pd.DataFrame({"g": g, "x": x})
        gm = df.groupby("g").x.transform("mean").to_numpy()
        msw = float(((x - gm) ** 2).sum()) / (x.size - 20000)
        msb = 5 * float(((df.groupby("g").x.mean() - x.mean()) ** 2).sum()) / (20000 - 1)
        return (msb - msw) / (msb + 4 * msw)

    return icc(y), icc(e)


def cells() -> list[dict]:
    """The study's cells (name, G, m, label design, label type, residual)."""
    out = []
    for G in (30, 100, 400):
        for m in (1, 2, 5, 20):
            for ld in ("prompt", "row"):
                out.append({"G": G, "m": m, "design": ld, "labels": "likert", "resid": "clustered"})
        for ld in ("prompt", "row"):
            out.append({"G": G, "m": "unequal", "design": ld, "labels": "likert",
                        "resid": "clustered"})
    for m in ("unequal1", "unequal2", "unequal5", "unequal10"):  # how many big prompts
        out.append({"G": 100, "m": m, "design": "prompt", "labels": "likert", "resid": "clustered"})
    for G in (30, 100):
        out.append({"G": G, "m": 5, "design": "prompt", "labels": "likert", "resid": "weak"})
        out.append({"G": G, "m": 5, "design": "prompt", "labels": "binary", "resid": "clustered"})
    for c in out:
        c["kind"] = "direct"
    for G in (100, 400):
        for m in (1, 5, "unequal"):
            for kind in ("calibrated-ips", "stacked-dr"):
                out.append({"G": G, "m": m, "design": "prompt", "labels": "likert",
                            "resid": "clustered", "kind": kind})
    for c in out:
        c["name"] = ("" if c["kind"] == "direct" else c["kind"] + "_") + \
            f"G{c['G']}_m{c['m']}_{c['design']}_{c['labels']}_{c['resid']}"
    return out


def replicate(cell_idx: int, r: int, cell: dict) -> list[dict]:
    """Analyse one replicate; one row per target (``A``, ``B`` and the contrast ``hi-lo`` =
    ``B − A``; off-policy ``base``, ``T`` and ``T − base``).

    Parameters
    ----------
    cell_idx, r : int
        Cell and replicate (the seed is ``SeedSequence([cell_idx, r])``).
    cell : dict
        As in :func:`cells`.

    Returns
    -------
    list of dict
    """
    rng = np.random.default_rng(np.random.SeedSequence([cell_idx, r]))
    scale = (0.0, 1.0) if cell["labels"] == "binary" else (1.0, 5.0)
    kw: dict = {}
    if cell["kind"] == "direct":
        data = make_data(rng, cell["G"], cell["m"], cell["design"], cell["labels"], cell["resid"])
        lo_name, hi_name = "A", "B"
    else:
        data, fresh = make_logged(rng, cell["G"], cell["m"], cell["design"], cell["resid"])
        kw = {"estimator": cell["kind"]}
        if cell["kind"] != "calibrated-ips":
            kw["fresh_draws"] = fresh
        lo_name, hi_name = "base", "T"
    base = {"cell": cell["name"], "rep": r}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rep = cje.analyze(data, judge_scale=(0.0, 10.0), label_scale=scale, **kw)
        except Exception as exc:  # recorded, not hidden
            return [{**base, "target": t, "status": "ERROR", "reason": str(exc)[:200]}
                    for t in (lo_name, hi_name, "hi-lo")]
    out, st = [], {}
    for e in rep.estimates:
        t = truth(e.policy, cell["labels"], cell["resid"])
        st[e.policy] = e.status
        out.append({**base, "target": e.policy, "estimate": e.estimate, "truth": t, "se": e.se,
                    "ci_low": e.ci_low, "ci_high": e.ci_high, "df": e.df, "status": e.status,
                    "var_cal": e.var_cal, "var_if": e.var_if, "n_labels": e.n_labels,
                    "covered": bool(e.ci_low <= t <= e.ci_high)})
    for c in rep.pairs:
        sign = 1.0 if (c.policy_a, c.policy_b) == (hi_name, lo_name) else -1.0
        t = truth(hi_name, cell["labels"], cell["resid"]) - truth(lo_name, cell["labels"],
                                                                   cell["resid"])
        lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
        both = "OK" if st.get(lo_name) == "OK" and st.get(hi_name) == "OK" else "notOK"
        out.append({**base, "target": "hi-lo", "estimate": sign * c.estimate, "truth": t,
                    "se": c.se, "ci_low": lo, "ci_high": hi, "df": c.df, "status": both,
                    "var_cal": c.var_cal, "var_if": c.var_if, "significant": bool(c.significant),
                    "covered": bool(lo <= t <= hi)})
    return out


def mechanism(reps: int = 800, big: str = "unequal2") -> pd.DataFrame:
    """Why OK levels under-cover with a few big prompts: each OK level's interval recomputed from
    the package's own influence values with (a) the package's variance and degrees of freedom,
    (b) a CR2 leverage factor ``1/(1 − n_g/n)`` per prompt instead of ``G/(G−1)``, (c) the
    package's variance with the sampling part's degrees of freedom from the effective number of
    prompts ``G* = (Σ_g T_g²)²/Σ_g T_g⁴`` (Satterthwaite with the calibration part), (d) both.

    Seeds ``SeedSequence([5001, r])`` (those of ``tests/test_clusters_unequal.py``), G = 100,
    prompt labels, clustered residual.

    Parameters
    ----------
    reps : int
        Replicates.
    big : str
        ``"unequal2"`` (2 prompts with 50 draws) or another :func:`sizes` design.

    Returns
    -------
    pandas.DataFrame
        One row per OK level.
    """
    from cje._tdist import t_ppf
    from cje.estimators import DirectEstimator
    from cje.pipeline.core import fit_calibrator, fold_plan
    from cje.pipeline.direct import DirectShape

    out = []
    for r in range(reps):
        rng = np.random.default_rng(np.random.SeedSequence([5001, r]))
        d = make_data(rng, 100, big, "prompt", "likert", "clustered")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(d, judge_scale=(0, 10), label_scale=(1, 5))
            ev = cje.load(d, judge_scale=(0, 10), label_scale=(1, 5))
            shape = DirectShape(ev, {}, (), DirectEstimator(), 0.05)
            lab = np.zeros(ev.prompts.shape[0], bool)
            lab[ev.prompt_code[ev.labelled]] = True
            k, folds, _ = fold_plan(ev.prompts[lab], np.ones(int(lab.sum()), bool), 5, 0)
            fop = np.full(ev.prompts.shape[0], -1)
            fop[lab] = folds
            cal, _ = fit_calibrator(shape.table, fop[shape.table.cluster[shape.table.train]],
                                    mode="auto", k=k, seed=0)
            full = shape.run(cal, frozenset())
        for p, e in enumerate(rep.estimates):
            if e.status != "OK":
                continue
            phi = full[p][0].influence
            cl = shape.table.cluster[shape._rows[p]]
            T, ng = np.bincount(cl, weights=phi), np.bincount(cl)
            T, ng = T[ng > 0], ng[ng > 0]
            n, G, w2 = phi.size, T.size, 16.0  # label scale 1-5: variances × 4²
            v_pkg = G / (G - 1) * float((T**2).sum()) / n**2
            vif, vc = e.var_if / w2, e.var_cal / w2  # (var_if may hold the own-part correction)
            u = T**2 / (1 - ng / n) / n**2
            v_cr2 = float(u.sum()) + vif - v_pkg
            g_star = float((T**2).sum() ** 2 / (T**4).sum())
            df_of = [float((v + vc) ** 2 / (v**2 / max(g_star - 1, 1) + vc**2 / (k - 1)))
                     for v in (vif, v_cr2)]
            err, t = abs(e.estimate - truth(e.policy, "likert", "clustered")), {}
            for name, v, df in (("package", vif, e.df), ("CR2", v_cr2, e.df),
                                ("G* df", vif, min(e.df, df_of[0])),
                                ("CR2 + G* df", v_cr2, min(e.df, df_of[1]))):
                se = math.sqrt(v + vc) * 4.0
                t[name] = err <= float(t_ppf(0.975, df)) * se
                t[f"se {name}"] = se
            out.append({"rep": r, "policy": e.policy, "err": e.estimate -
                        truth(e.policy, "likert", "clustered"), "g_star": g_star,
                        "big_share": float((T[ng > 1] ** 2).sum() / (T**2).sum()),
                        "df": e.df, **t})
    return pd.DataFrame(out)


def big_label_breakdown(name: str, reps: int = 300) -> pd.DataFrame:
    """Coverage of one unequal-size cell's levels by status and by how many of its big prompts
    (more than one draw) are labelled; the cell's own seeds.

    Parameters
    ----------
    name : str
        A cell of :func:`cells` with ``m`` ``"unequal..."`` (direct or off-policy).
    reps : int
        Replicates (the cell's first ``reps``).

    Returns
    -------
    pandas.DataFrame
        Per (policy, status, big prompts labelled): count, coverage, MC SD of the errors, mean SE.
    """
    i, cell = next((j, c) for j, c in enumerate(cells()) if c["name"] == name)
    rows = []
    for r in range(reps):
        rng = np.random.default_rng(np.random.SeedSequence([i, r]))
        kw: dict = {}
        if cell["kind"] == "direct":
            data = make_data(rng, cell["G"], cell["m"], cell["design"], cell["labels"],
                             cell["resid"])
            sizes_of = data[data.policy == "A"].groupby("prompt_id").size()
        else:
            data, fresh = make_logged(rng, cell["G"], cell["m"], cell["design"], cell["resid"])
            kw = {"estimator": cell["kind"]}
            if cell["kind"] != "calibrated-ips":
                kw["fresh_draws"] = fresh
            sizes_of = data.groupby("prompt_id").size()
        big = set(sizes_of[sizes_of > 1].index)
        n_big = len(big & set(data.loc[data.oracle_label.notna(), "prompt_id"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(data, judge_scale=(0.0, 10.0), label_scale=(1.0, 5.0), **kw)
        for e in rep.estimates:
            t = truth(e.policy, cell["labels"], cell["resid"])
            rows.append({"policy": e.policy, "status": e.status, "big labelled": n_big,
                         "covered": e.ci_low <= t <= e.ci_high, "err": e.estimate - t,
                         "se": e.se})
    res = pd.DataFrame(rows)
    return res.groupby(["policy", "status", "big labelled"]).agg(
        n=("covered", "size"), coverage=("covered", "mean"), mc_sd=("err", "std"),
        mean_se=("se", "mean")).round(3)


def _cov(x: pd.Series) -> str:
    r = len(x)
    if r == 0:
        return "—"
    c = float(x.mean())
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / r):.3f} ({r})"


def summarise(res: pd.DataFrame) -> pd.DataFrame:
    """Per cell and target: coverage (all, OK) with MC SE, statuses, bias, mean SE / MC SD.

    Parameters
    ----------
    res : pandas.DataFrame
        Rows of :func:`replicate`.

    Returns
    -------
    pandas.DataFrame
    """
    rows = []
    for (cell, target), d in res.groupby(["cell", "target"], sort=False):
        ok = d[d.status == "OK"]
        # UNCALIBRATED levels are judge means on the judge scale: not in bias, SE or SD
        fin = d[(d.status != "UNCALIBRATED") & np.isfinite(d.estimate.astype(float))]
        sd = float(fin.estimate.std()) if len(fin) > 1 else float("nan")
        row = {"cell": cell, "target": target, "reps": len(d), "coverage": _cov(d.covered.dropna()),
               "coverage OK": _cov(ok.covered.dropna()),
               "bias": f"{float((fin.estimate - fin.truth).mean()):+.4f}",
               "mean SE / MC SD": f"{float(fin.se.mean()) / sd:.3f}" if sd > 0 else "—",
               "median df": f"{float(d.df.median()):.1f}"}
        if target == "hi-lo":
            row["share OK"] = f"{(d.status == 'OK').mean():.3f}"
            row["share significant"] = f"{d.significant.astype(float).mean():.3f}"
        else:
            for s in ("OK", "CAUTION", "REFUSED", "UNCALIBRATED"):
                row[f"share {s}"] = f"{(d.status == s).mean():.3f}"
        if (d.status == "ERROR").any():
            row["errors"] = int((d.status == "ERROR").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def _markdown(tab: pd.DataFrame) -> str:
    """A pipe table (no tabulate dependency)."""
    cols = list(tab.columns)
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in tab.itertuples(index=False)]
    return "\n".join(out)


def main() -> None:
    """Run the study and write the tables under the reading in ``OUT``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=1000)
    ap.add_argument("--reps-ope", type=int, default=400, help="replicates of off-policy cells")
    ap.add_argument("--cells", default="", help="comma-separated cell names (default: all)")
    ap.add_argument("--time-only", action="store_true")
    ap.add_argument("--csv", default="")
    ap.add_argument("--mechanism", type=int, default=0, metavar="REPS",
                    help="only the mechanism check (mechanism()) with this many replicates")
    ap.add_argument("--breakdown", default="", metavar="CELL",
                    help="only big_label_breakdown() of this cell (300 replicates)")
    args = ap.parse_args()
    if args.breakdown:
        print(big_label_breakdown(args.breakdown).to_string())
        return
    if args.mechanism:
        m = mechanism(args.mechanism)
        sd = float(m.err.std())
        for name in ("package", "CR2", "G* df", "CR2 + G* df"):
            print(f"{name}: coverage {_cov(m[name].astype(float))}, "
                  f"mean SE / MC SD {float(m[f'se {name}'].mean()) / sd:.3f}")
        print(f"median G* {m.g_star.median():.1f}, median df {m.df.median():.1f}, big prompts' "
              f"median share of Σ T_g² {m.big_share.median():.2f}")
        return
    todo = [(i, c) for i, c in enumerate(cells()) if not args.cells or c["name"] in
            args.cells.split(",")]
    if args.time_only:
        for i, c in todo:
            t0 = time.time()
            for r in range(5):
                replicate(i, r, c)
            print(f"{c['name']}: {(time.time() - t0) / 5:.3f} s per replicate")
        return
    t0 = time.time()
    out = []
    for i, c in todo:
        reps = args.reps if c["kind"] == "direct" else args.reps_ope
        out += [row for rows in Parallel(n_jobs=1)(delayed(replicate)(i, r, c)
                                                   for r in range(reps)) for row in rows]
        print(f"{c['name']} done at {time.time() - t0:.0f} s", flush=True)
    res = pd.DataFrame(out)
    if args.csv:
        res.to_csv(args.csv, index=False)
    tab = summarise(res)
    ic = {(lab, rs): iccs(lab, rs) for lab in ("likert", "binary") for rs in ("clustered", "weak")}
    head = OUT.read_text().split("# Tables")[0] if OUT.exists() else "(reading to be written)\n\n"
    lines = [head.rstrip() + "\n\n# Tables\n",
             f"`python simulations/independent_clusters.py --reps {args.reps} --reps-ope "
             f"{args.reps_ope}`: "
             f"{time.time() - t0:.0f} s on one core.\n",
             "ICC (label, judge residual Y − E[Y|S]) by label type and residual design: " +
             "; ".join(f"{k[0]}/{k[1]}: {v[0]:.2f}, {v[1]:.2f}" for k, v in ic.items()) + "\n",
             _markdown(tab.fillna(""))]
    OUT.write_text("\n".join(lines) + "\n")
    print(tab.to_string())


if __name__ == "__main__":
    main()
