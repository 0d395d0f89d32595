"""Check: two features of ``cje.analyze`` used together, on processes built without
``cje.synthetic`` (numpy/pandas only; exact truths by Gauss–Hermite quadrature).

Shared process. A prompt has a difficulty ``d ~ N(0, 1)``. A response is one of 8 types ``k``
with quality ``q_k`` evenly from −1.2 to 1.2 and a style: odd types are long (log word count
``5.6``), even ones short (``4.6``); each response's word count is
``round(exp(ℓ_k + 0.15 ε))``. The binary oracle label is ``Y ~ Bernoulli(σ(1.2 q_k − 0.8 d))``:
length does not matter to it. The judge (0–10 integer grid) rewards length,
``S = clip(round(10 σ(1.2 q_k − 0.8 d + 0.8 η + β (log words − 5.1))), 0, 10)`` with
``β = 1`` (a long response gains about a point). Truth of a policy writing types with
probabilities ``p``: ``Σ_k p_k m_k``, ``m_k = E_d σ(1.2 q_k − 0.8 d)`` (64-point quadrature).

Policies (type probabilities): ``base`` uniform; ``long`` ∝ ``exp(1.2·long_k)`` (longer, not
better: a judge-only or monotone level is biased up); ``good`` ∝ ``exp(0.9 q_k)`` (better);
``twin`` — the same value as ``good`` by construction (``good``'s probabilities with its two
best types' shares swapped with their style partners chosen so the value is equal; see
:func:`twin_probs`) — is used where a null contrast is needed.

Cells (each a combination of features; status and coverage scored per policy and contrast):

``offpol_cov``
    Off-policy: 2,000 logged prompts of ``base`` (one response each, 25% labelled at random),
    targets ``long`` and ``good`` by log-probabilities (``log p_t(k) − 40 + r``), one fresh draw
    per prompt and target carrying ``response_length``. Estimators ``calibrated-ips`` and
    ``stacked-dr``; modes ``monotone``, ``auto`` and ``two_stage`` (``covariates=
    ["response_length"]`` for the last two).
``offpol_cov_units`` (hostile)
    As ``offpol_cov`` with ``stacked-dr`` / ``two_stage``, but the fresh draws'
    ``response_length`` is counted in characters (≈ 6 per word) while the logged rows' is in
    words: the same column name, another unit.
``offpol_cov_tokens`` (hostile)
    As ``offpol_cov_units`` with the fresh draws' lengths 1.3 times the logged rows' (tokens of
    another tokenizer for words): a milder mismatch, mostly inside the labelled range.
``offpol_cov_probe``
    As ``offpol_cov`` with probe slices of ``long`` and ``good`` (100 labelled rows each, on
    prompts of their own, with ``response_length``): ``calibrated-ips`` and ``stacked-dr``,
    ``monotone`` and ``two_stage``, probe correction on (default).
``offpol_cov_fresh2``
    As ``offpol_cov`` (``stacked-dr``, ``two_stage``) with 3 fresh draws per prompt and target.
``direct_cluster_cov_probe``
    Direct: 500 prompts, 3 responses per prompt for each of ``base``, ``long``, ``good``
    (``draw_idx``); labels on 15% of ``base``'s rows only; probe slices of ``long`` and ``good``
    (30 prompts of their own, 2 labelled responses each). Modes ``auto`` and ``two_stage`` with
    ``covariates=["response_length"]``, probe correction on (default). Contrasts against
    ``base``.
``lprob_cluster``
    Direct: 600 prompts, 2 responses per prompt for ``good``, ``twin``, ``base`` (good − twin
    is a null). Labels sampled per row with ``π = 0.06`` when ``S ≤ 5`` and ``0.30`` otherwise,
    given as ``label_probability``. Variant ``lprob_prompt``: whole prompts labelled (all of its
    rows, every policy) with ``π = 0.05`` / ``0.25`` by a hidden prompt trait (``d > 0.5``), the
    cluster-sampled design a labelling team often runs.
``calib_probe``
    Direct: 800 prompts, ``long`` and ``good`` without labels; ``calibration=`` 600 labelled
    rows of ``base`` from another run whose judge was one point harsher (its map does not
    transport); probe slices of ``long`` and ``good`` (80 rows on own prompts each).
``drop_contrast``
    Direct: 800 prompts, one response each from ``good``, ``twin``, ``base``, 15% labelled per
    policy. ``twin``'s judge call fails (judge score empty) on hard prompts,
    ``P = σ(−2.5 + 1.8 d)`` (about 14%); ``on_invalid="drop"``, ``policies=["good", "twin"]``.
    The truth is each policy's value over all prompts; good − twin is a null.

Per replicate, policy and contrast: estimate, interval, status (a contrast's status: OK when
both its policies are OK), significance. MC SE of a coverage ``c`` over ``r`` intervals:
``sqrt(c (1 − c) / r)``. Hostile inputs (one call each) are run by ``--hostile``.

Usage::

    python simulations/independent_combos.py [--reps 400] [--cells a,b] [--n-jobs 1] [--hostile]

Writes ``simulations/results/independent_combos.csv`` and prints the tables that
``simulations/results/independent_combos.md`` holds.
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

K = 8
Q = np.linspace(-1.2, 1.2, K)
LONG = (np.arange(K) % 2 == 1).astype(float)
LOGLEN = np.where(LONG == 1, 5.6, 4.6)
BETA = 1.0
_GH_X, _GH_W = np.polynomial.hermite_e.hermegauss(64)
_GH_W = _GH_W / _GH_W.sum()


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


M = np.array([float(_GH_W @ _sig(1.2 * q - 0.8 * _GH_X)) for q in Q])  # E[Y | type]


def _norm(v):
    return v / v.sum()


def twin_probs(p: np.ndarray) -> np.ndarray:
    """Another type distribution with the same value ``Σ p_k m_k`` as ``p``: mass moved from
    type 6 to types 5 and 7 in the proportion that keeps the mean quality's label value."""
    t = p.copy()
    move = 0.5 * t[6]
    # m6 = a m5 + (1-a) m7 solves for a
    a = (M[7] - M[6]) / (M[7] - M[5])
    t[6] -= move
    t[5] += a * move
    t[7] += (1 - a) * move
    return t


P = {"base": np.full(K, 1.0 / K), "long": _norm(np.exp(1.2 * LONG)), "good": _norm(np.exp(0.9 * Q))}
P["twin"] = twin_probs(P["good"])
TRUTH = {k: float(v @ M) for k, v in P.items()}


def responses(rng, d: np.ndarray, pol: str, judge_shift: float = 0.0) -> dict[str, np.ndarray]:
    """One response per entry of ``d`` from policy ``pol``: type, words, judge score, label."""
    n = d.size
    k = rng.choice(K, size=n, p=P[pol])
    logw = LOGLEN[k] + 0.15 * rng.standard_normal(n)
    words = np.maximum(np.round(np.exp(logw)), 1.0)
    lin = 1.2 * Q[k] - 0.8 * d
    s = np.clip(np.round(10 * _sig(lin + 0.8 * rng.standard_normal(n) + BETA * (np.log(words) - 5.1))
                         - judge_shift), 0, 10)
    y = (rng.random(n) < _sig(lin)).astype(float)
    return {"type": k, "response_length": words, "judge_score": s, "label": y}


def _frame(pids, pol, r, draw=None, labelled=None):
    f = pd.DataFrame({"prompt_id": pids, "policy": pol, "judge_score": r["judge_score"],
                      "oracle_label": np.where(labelled, r["label"], np.nan) if labelled is not None
                      else r["label"], "response_length": r["response_length"]})
    if draw is not None:
        f["draw_idx"] = draw
    return f


# ---------------------------------------------------------------------------------------------
# data per cell
# ---------------------------------------------------------------------------------------------
def make_offpol(rng, n=2000, fresh_per=1, chars=False, unit=6.0):
    d = rng.standard_normal(n)
    r = responses(rng, d, "base")
    lab = rng.random(n) < 0.25
    pids = np.array([f"p{i}" for i in range(n)], dtype=object)
    logged = _frame(pids, "base", r, labelled=lab)
    off = rng.normal(0, 3, n)
    logged["logprob_base"] = np.log(P["base"][r["type"]]) - 40 + off
    for t in ("long", "good"):
        logged[f"logprob[{t}]"] = np.log(P[t][r["type"]]) - 40 + off
    fr = []
    for t in ("long", "good"):
        dd = np.repeat(d, fresh_per)
        rt = responses(rng, dd, t)
        f = pd.DataFrame({"prompt_id": np.repeat(pids, fresh_per), "policy": t,
                          "judge_score": rt["judge_score"],
                          "response_length": rt["response_length"] * (unit if chars else 1.0)})
        if fresh_per > 1:
            f["draw_idx"] = np.tile(np.arange(fresh_per), n)
        fr.append(f)
    return logged, pd.concat(fr, ignore_index=True)


def make_cluster_probe(rng, n=500, per=3, probe_prompts=30, probe_per=2):
    d = rng.standard_normal(n)
    pids = np.repeat(np.array([f"p{i}" for i in range(n)], dtype=object), per)
    dd = np.repeat(d, per)
    draw = np.tile(np.arange(per), n)
    frames, probes = [], {}
    for pol in ("base", "long", "good"):
        r = responses(rng, dd, pol)
        lab = (rng.random(dd.size) < 0.15) if pol == "base" else np.zeros(dd.size, bool)
        frames.append(_frame(pids, pol, r, draw, lab))
        if pol != "base":
            dp = np.repeat(rng.standard_normal(probe_prompts), probe_per)
            rp = responses(rng, dp, pol)
            ppid = np.repeat(np.array([f"probe-{pol}-{i}" for i in range(probe_prompts)], dtype=object),
                             probe_per)
            probes[pol] = _frame(ppid, pol, rp, np.tile(np.arange(probe_per), probe_prompts))
    return pd.concat(frames, ignore_index=True), probes


def make_lprob(rng, n=600, per=2, by_prompt=False):
    d = rng.standard_normal(n)
    pids = np.repeat(np.array([f"p{i}" for i in range(n)], dtype=object), per)
    dd = np.repeat(d, per)
    draw = np.tile(np.arange(per), n)
    if by_prompt:
        pi_p = np.where(d > 0.5, 0.25, 0.05)
        lab_p = rng.random(n) < pi_p
    frames = []
    for pol in ("good", "twin", "base"):
        r = responses(rng, dd, pol)
        if by_prompt:
            pi = np.repeat(pi_p, per)
            lab = np.repeat(lab_p, per)
        else:
            pi = np.where(r["judge_score"] <= 5, 0.06, 0.30)
            lab = rng.random(dd.size) < pi
        f = _frame(pids, pol, r, draw, lab)
        f["label_probability"] = pi
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def make_calib_probe(rng, n=800, n_cal=600, n_probe=80):
    d = rng.standard_normal(n)
    pids = np.array([f"p{i}" for i in range(n)], dtype=object)
    frames, probes = [], {}
    for pol in ("long", "good"):
        r = responses(rng, d, pol)
        frames.append(_frame(pids, pol, r, labelled=np.zeros(n, bool)))
        dp = rng.standard_normal(n_probe)
        probes[pol] = _frame(np.array([f"probe-{pol}-{i}" for i in range(n_probe)], dtype=object),
                             pol, responses(rng, dp, pol))
    dc = rng.standard_normal(n_cal)
    cal = _frame(np.array([f"cal-{i}" for i in range(n_cal)], dtype=object), "base",
                 responses(rng, dc, "base", judge_shift=1.0)).drop(columns=["policy"])
    return pd.concat(frames, ignore_index=True), probes, cal


def make_drop(rng, n=800):
    d = rng.standard_normal(n)
    pids = np.array([f"p{i}" for i in range(n)], dtype=object)
    frames = []
    for pol in ("good", "twin", "base"):
        r = responses(rng, d, pol)
        f = _frame(pids, pol, r, labelled=rng.random(n) < 0.15)
        if pol == "twin":
            fail = rng.random(n) < _sig(-2.5 + 1.8 * d)
            f.loc[fail, "judge_score"] = np.nan
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# one replicate
# ---------------------------------------------------------------------------------------------
def _rows(rep, cell, variant, seed):
    out = []
    for e in rep.estimates:
        t = TRUTH[e.policy]
        out.append({"cell": cell, "variant": variant, "seed": seed, "kind": "level",
                    "name": e.policy, "truth": t, "estimate": e.estimate, "ci_low": e.ci_low,
                    "ci_high": e.ci_high, "status": e.status, "significant": np.nan,
                    "n_labels": e.n_labels})
    st = {e.policy: e.status for e in rep.estimates}
    for c in rep.pairs:
        t = TRUTH[c.policy_a] - TRUTH[c.policy_b]
        both = "OK" if st.get(c.policy_a) == "OK" and st.get(c.policy_b) == "OK" else "not OK"
        out.append({"cell": cell, "variant": variant, "seed": seed, "kind": "contrast",
                    "name": f"{c.policy_a}-{c.policy_b}", "truth": t, "estimate": c.estimate,
                    "ci_low": c.ci_low, "ci_high": c.ci_high, "status": both,
                    "significant": bool(c.significant), "n_labels": np.nan})
    return out


JS, LS = (0, 10), (0, 1)


def run_one(cell: str, seed: int) -> list[dict]:
    """All variants of ``cell`` on the data set of ``seed``."""
    rng = np.random.default_rng([seed, CELLS.index(cell)])
    kw = dict(judge_scale=JS, label_scale=LS)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cell == "offpol_cov":
            logged, fresh = make_offpol(rng)
            for est in ("calibrated-ips", "stacked-dr"):
                for mode in ("monotone", "auto", "two_stage"):
                    cov = [] if mode == "monotone" else ["response_length"]
                    rep = cje.analyze(logged, fresh_draws=fresh if est != "calibrated-ips" else None,
                                      estimator=est, mode=mode, covariates=cov, **kw)
                    out += _rows(rep, cell, f"{est}/{mode}", seed)
        elif cell == "offpol_cov_units":
            logged, fresh = make_offpol(rng, chars=True)
            rep = cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr", mode="two_stage",
                              covariates=["response_length"], **kw)
            out += _rows(rep, cell, "stacked-dr/two_stage/chars", seed)
        elif cell == "offpol_cov_tokens":
            logged, fresh = make_offpol(rng, chars=True, unit=1.3)
            rep = cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr", mode="two_stage",
                              covariates=["response_length"], **kw)
            out += _rows(rep, cell, "stacked-dr/two_stage/tokens", seed)
        elif cell == "offpol_cov_fresh2":
            logged, fresh = make_offpol(rng, fresh_per=3)
            rep = cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr", mode="two_stage",
                              covariates=["response_length"], **kw)
            out += _rows(rep, cell, "stacked-dr/two_stage/3 draws", seed)
        elif cell == "offpol_cov_probe":
            logged, fresh = make_offpol(rng)
            probes = {}
            for t in ("long", "good"):
                dp = rng.standard_normal(100)
                probes[t] = _frame(np.array([f"probe-{t}-{i}" for i in range(100)], dtype=object), t,
                                   responses(rng, dp, t))
            for est in ("calibrated-ips", "stacked-dr"):
                for mode in ("monotone", "two_stage"):
                    cov = [] if mode == "monotone" else ["response_length"]
                    rep = cje.analyze(logged, fresh_draws=fresh if est != "calibrated-ips" else None,
                                      probes=probes, estimator=est, mode=mode, covariates=cov, **kw)
                    out += _rows(rep, cell, f"{est}/{mode}/probes", seed)
        elif cell == "direct_cluster_cov_probe":
            data, probes = make_cluster_probe(rng)
            for mode in ("auto", "two_stage"):
                rep = cje.analyze(data, probes=probes, mode=mode, covariates=["response_length"], **kw)
                out += _rows(rep, cell, mode, seed)
        elif cell in ("lprob_cluster", "lprob_prompt"):
            data = make_lprob(rng, by_prompt=cell == "lprob_prompt")
            rep = cje.analyze(data, **kw)
            out += _rows(rep, cell, "weighted", seed)
            rep = cje.analyze(data, policies=["good", "twin"], **kw)
            out += _rows(rep, cell, "weighted, policies=[good, twin]", seed)
        elif cell == "calib_probe":
            data, probes, cal = make_calib_probe(rng)
            rep = cje.analyze(data, probes=probes, calibration=cal, **kw)
            out += _rows(rep, cell, "probe-corrected", seed)
            rep = cje.analyze(data, probes=probes, calibration=cal, transport_margin=0.05, **kw)
            out += _rows(rep, cell, "probe-corrected, margin 0.05", seed)
        elif cell == "drop_contrast":
            data = make_drop(rng)
            rep = cje.analyze(data, on_invalid="drop", **kw)
            out += _rows(rep, cell, "drop", seed)
            rep = cje.analyze(data, on_invalid="drop", policies=["good", "twin"], **kw)
            out += _rows(rep, cell, "drop, policies=[good, twin]", seed)
        else:
            raise ValueError(cell)
    return out


CELLS = ("offpol_cov", "offpol_cov_units", "offpol_cov_fresh2", "direct_cluster_cov_probe",
         "lprob_cluster", "lprob_prompt", "calib_probe", "drop_contrast", "offpol_cov_probe",
         "offpol_cov_tokens")


# ---------------------------------------------------------------------------------------------
# summary
# ---------------------------------------------------------------------------------------------
def _cov(x: pd.Series) -> str:
    r = int(x.size)
    if r == 0:
        return "— (0)"
    c = float(x.mean())
    return f"{c:.3f} ± {np.sqrt(c * (1 - c) / r):.3f} ({r})"


def summarise(df: pd.DataFrame) -> str:
    """Markdown tables of levels and contrasts per cell and variant."""
    df = df.copy()
    df["cover"] = (df.ci_low <= df.truth) & (df.truth <= df.ci_high)
    lines = ["## Levels", "",
             "| cell | variant | policy | truth | coverage ± MC SE (r) | bias | OK | CAUTION | REFUSED "
             "| coverage of OK ± MC SE (r) | bias of OK |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lev = df[df.kind == "level"]
    for (c, v, p), g in lev.groupby(["cell", "variant", "name"], sort=False):
        ok = g[g.status == "OK"]
        lines.append(
            f"| {c} | {v} | {p} | {g.truth.iloc[0]:.4f} | {_cov(g.cover)} | "
            f"{(g.estimate - g.truth).mean():+.4f} | {(g.status == 'OK').mean():.2f} | "
            f"{(g.status == 'CAUTION').mean():.2f} | {g.status.str.startswith('REF').mean():.2f} | "
            f"{_cov(ok.cover)} | {(ok.estimate - ok.truth).mean() if len(ok) else float('nan'):+.4f} |")
    lines += ["", "## Contrasts", "",
              "| cell | variant | contrast | truth | coverage ± MC SE (r) | bias | significant | "
              "false 'Better' (null or wrong sign) | both OK | coverage when both OK (r) | "
              "false 'Better' when both OK |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    con = df[df.kind == "contrast"]
    for (c, v, p), g in con.groupby(["cell", "variant", "name"], sort=False):
        t = g.truth.iloc[0]
        sig = g.significant.astype(bool)
        wrong = sig & ((abs(t) < 1e-12) | (np.sign(g.estimate) != np.sign(t)))
        ok = g.status == "OK"
        lines.append(
            f"| {c} | {v} | {p} | {t:+.4f} | {_cov(g.cover)} | {(g.estimate - t).mean():+.4f} | "
            f"{sig.mean():.2f} | {_cov(wrong)} | {ok.mean():.2f} | {_cov(g.cover[ok])} | "
            f"{_cov(wrong[ok])} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# hostile inputs
# ---------------------------------------------------------------------------------------------
def hostile() -> str:
    """One call per hostile-but-plausible input; what the package did, as a markdown list."""
    rng = np.random.default_rng(7)
    kw = dict(judge_scale=JS, label_scale=LS)
    logged, fresh = make_offpol(rng, n=600)
    data, probes = make_cluster_probe(rng, n=200)
    lp = make_lprob(rng, n=300)
    d2, pr2, cal = make_calib_probe(rng, n=300)
    drop = make_drop(rng, n=300)
    cases = {
        "fresh draws without the covariate column": lambda: cje.analyze(
            logged, fresh_draws=fresh.drop(columns=["response_length"]), estimator="stacked-dr",
            covariates=["response_length"], **kw),
        "fresh draws with the covariate empty on 5 rows": lambda: cje.analyze(
            logged, fresh_draws=fresh.assign(response_length=fresh.response_length.where(
                fresh.index >= 5)), estimator="stacked-dr", covariates=["response_length"], **kw),
        "fresh draws' covariate in characters, logged in words (two_stage)": lambda: cje.analyze(
            logged, fresh_draws=fresh.assign(response_length=fresh.response_length * 6),
            estimator="stacked-dr", mode="two_stage", covariates=["response_length"], **kw),
        "probe frame without the covariate column": lambda: cje.analyze(
            data, probes={**probes, "long": probes["long"].drop(columns=["response_length"])},
            covariates=["response_length"], **kw),
        "probe frame's covariate in characters": lambda: cje.analyze(
            data, probes={**probes, "long": probes["long"].assign(
                response_length=probes["long"].response_length * 6)},
            mode="two_stage", covariates=["response_length"], **kw),
        "probe for a policy not in the data": lambda: cje.analyze(
            data, probes={"longer": probes["long"]}, **kw),
        "probe for a policy left out by policies=": lambda: cje.analyze(
            data, probes=probes, policies=["base", "good"], **kw),
        "probe frame with label_probability (uniform data)": lambda: cje.analyze(
            data, probes={"long": probes["long"].assign(label_probability=0.5)}, **kw),
        "NaN label_probability on a labelled row": lambda: cje.analyze(
            lp.assign(label_probability=lp.label_probability.where(
                ~(lp.oracle_label.notna() & (lp.index == lp.index[lp.oracle_label.notna()][0])))), **kw),
        "label_probability with covariates": lambda: cje.analyze(
            lp, covariates=["response_length"], **kw),
        "label_probability with probes": lambda: cje.analyze(
            lp, probes={"good": probes["good"]}, **kw),
        "label_probability with calibration=": lambda: cje.analyze(lp, calibration=cal, **kw),
        "label_probability with on_invalid='drop' dropping a labelled row": lambda: cje.analyze(
            lp.assign(judge_score=lp.judge_score.where(lp.index != lp.index[
                lp.oracle_label.notna()][0])), on_invalid="drop", **kw),
        "calibration= without the covariate": lambda: cje.analyze(
            d2, calibration=cal.drop(columns=["response_length"]), probes=pr2,
            covariates=["response_length"], **kw),
        "calibration= on a 0-1 judge scale (data 0-10)": lambda: cje.analyze(
            d2, calibration=cal.assign(judge_score=cal.judge_score / 10), probes=pr2, **kw),
        "calibration= labels on 1-5 (data 0-1)": lambda: cje.analyze(
            d2, calibration=cal.assign(oracle_label=1 + 4 * cal.oracle_label), probes=pr2, **kw),
        "calibration= with label_probability column": lambda: cje.analyze(
            d2, calibration=cal.assign(label_probability=0.2), probes=pr2, **kw),
        "policies= naming a policy with every row dropped": lambda: cje.analyze(
            drop.assign(judge_score=drop.judge_score.where(drop.policy != "base")),
            on_invalid="drop", policies=["good", "base"], **kw),
        "on_missing='drop' with fresh draws missing on 150 prompts": lambda: cje.analyze(
            logged, fresh_draws=fresh[~fresh.prompt_id.isin(logged.prompt_id[:150])],
            estimator="stacked-dr", on_missing="drop", **kw),
    }
    lines = []
    for name, fn in cases.items():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = fn()
            st = ", ".join(f"{e.policy} {e.status} {e.estimate:.3f} "
                           f"[{e.ci_low:.3f}, {e.ci_high:.3f}] (truth {TRUTH[e.policy]:.3f})"
                           for e in rep.estimates)
            extra = [n for n in (*rep.notices, *rep.warnings) if any(
                w in n.lower() for w in ("covariate", "calibration", "probe", "label_prob", "drop",
                                         "excluded", "range"))]
            lines.append(f"* **{name}**: ran — {st}. Notices/warnings on the point: "
                         + ("; ".join(x[:300] for x in extra[:3]) or "none"))
        except Exception as exc:  # noqa: BLE001 - reported
            lines.append(f"* **{name}**: {type(exc).__name__}: {str(exc)[:400]}")
    return "\n".join(lines)


def main() -> None:
    """Run the cells (and optionally the hostile inputs) and print the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--hostile", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "independent_combos.csv"))
    a = ap.parse_args()
    t0 = time.time()
    if a.hostile:
        print(hostile())
        print(f"\nHostile inputs: {time.time() - t0:.0f} s")
        return
    rows = []
    for cell in a.cells.split(","):
        t1 = time.time()
        res = Parallel(n_jobs=a.n_jobs)(delayed(run_one)(cell, s) for s in range(a.reps))
        rows += [r for x in res for r in x]
        print(f"{cell}: {time.time() - t1:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    df.to_csv(a.out, index=False)
    print(summarise(df))
    print(f"\nRuntime: {time.time() - t0:.0f} s ({a.reps} replicates per cell, n_jobs={a.n_jobs})")


if __name__ == "__main__":
    main()
