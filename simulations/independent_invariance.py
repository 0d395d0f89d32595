"""Invariance hunt: results that change when nothing statistically relevant changed.

Property-style harness. For seeded random datasets (``cje.synthetic`` and a small generator of
our own), apply a transformation that the method implies must leave the result unchanged (or
transform it exactly), re-run :func:`cje.analyze` and compare every reported number.

Run: ``python simulations/independent_invariance.py --write`` (everything; or ``--seeds N``, ``--effects N``,
``--seed-reps N`` alone).
Results are written to ``simulations/results/independent_invariance.md`` (tables below the
hand-written reading).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import cje

EXACT = 1e-9


# --------------------------------------------------------------------------------------------
# Data generators
# --------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One analysis: data, the keyword arguments of analyze, and a name."""

    name: str
    data: pd.DataFrame
    kw: dict[str, Any]

    @property
    def judge_col(self) -> list[pd.DataFrame]:
        """Every frame whose judge_score must be transformed together."""
        return [self.data] + ([self.kw["fresh_draws"]] if "fresh_draws" in self.kw else []) \
            + list(self.kw.get("probes", {}).values())


def own_direct(seed: int, n_prompts: int = 150, draws: int = 1, grid: float | None = 0.5,
               binary: bool = False, label_rate: float = 0.25, n_pol: int = 3) -> pd.DataFrame:
    """A small direct-data generator independent of cje.synthetic.

    Prompt difficulty d, policy shift mu_p, latent q = mu_p - d + noise, label sigmoid(q) (or a
    Bernoulli of it) on 0-1, judge 0-10 = 10*sigmoid(1.5 q + 0.2 length_z + noise), rounded to
    ``grid`` (ties!). Labels MCAR at ``label_rate``.
    """
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n_prompts)
    names = ["gamma", "Alpha", "zeta", "beta", "delta"][:n_pol]
    mus = rng.normal(0, 0.4, size=n_pol)
    rows = []
    for p, mu in zip(names, mus, strict=True):
        for j in range(n_prompts):
            for k in range(draws):
                q = mu - d[j] + rng.normal(0, 0.7)
                length = rng.lognormal(5 + 0.3 * (p == "zeta"), 0.4)
                lz = (math.log(length) - 5) / 0.4
                s = 10 / (1 + math.exp(-(1.5 * q + 0.3 * lz + rng.normal(0, 0.5))))
                if grid:
                    s = round(s / grid) * grid
                y = 1 / (1 + math.exp(-q))
                if binary:
                    y = float(rng.uniform() < y)
                lab = y if rng.uniform() < label_rate else np.nan
                rows.append((f"q{j}", p, k, min(max(s, 0.0), 10.0), lab, length))
    return pd.DataFrame(rows, columns=["prompt_id", "policy", "draw_idx", "judge_score",
                                       "oracle_label", "response_length"])


def own_logged(seed: int, n: int = 300, label_rate: float = 0.3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A small logged-data generator: base answers once; targets t1, t2 tilt a feature u."""
    rng = np.random.default_rng(seed)
    d = rng.normal(size=n)
    thetas = {"t_up": 0.5, "a_down": -0.4}

    def draw(theta: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = rng.normal(theta, 1, size=size)
        q = 0.8 * u - np.repeat(d, size // n) + rng.normal(0, 0.5, size=size)
        y = 1 / (1 + np.exp(-q))
        s = np.clip(np.round(20 * (y ** 1.5 + rng.normal(0, 0.1, size=size))) / 20, 0, 1)
        return u, s, y

    u, s, y = draw(0.0, n)
    lab = np.where(rng.uniform(size=n) < label_rate, y, np.nan)
    lp0 = -(30 + 3 * u ** 2)
    logged = pd.DataFrame({"prompt_id": [f"x{j}" for j in range(n)], "policy": "base",
                           "judge_score": s, "oracle_label": lab, "logprob_base": lp0})
    for t, th in thetas.items():
        logged[f"logprob[{t}]"] = lp0 + th * u - th ** 2 / 2
    fresh = []
    for t, th in {"base": 0.0, **thetas}.items():
        _, s2, _ = draw(th, n)
        fresh.append(pd.DataFrame({"prompt_id": [f"x{j}" for j in range(n)], "policy": t,
                                   "judge_score": s2}))
    return logged, pd.concat(fresh, ignore_index=True)


def make_cases(seed: int, quick: bool = False) -> list[Case]:
    """The datasets of one seed: direct (synthetic and own; clusters; binary; covariates; probes)
    and off-policy (IPS, SNIPS, calibrated IPS, DR; synthetic and own)."""
    cases: list[Case] = []
    sim = cje.synthetic.make_direct_eval(200, rng=seed, draws_per_prompt=2, oracle_fraction=0.15)
    cases.append(Case("syn-direct-clusters", sim.data, dict(judge_scale=(0, 10), label_scale=(1, 5))))
    d = own_direct(seed)
    cases.append(Case("own-direct", d, dict(judge_scale=(0, 10), label_scale=(0, 1))))
    if not quick:
        db = own_direct(seed + 1000, draws=3, binary=True, n_prompts=80)
        cases.append(Case("own-direct-binary-clusters", db, dict(judge_scale=(0, 10), label_scale=(0, 1))))
        cases.append(Case("own-direct-two-stage", d, dict(judge_scale=(0, 10), label_scale=(0, 1),
                                                           mode="two_stage",
                                                           covariates=["response_length"])))
        # probes: the unlabelled policy 'zeta' gets a probe slice of its own labelled responses
        dp = d.copy()
        probe_rows = dp[(dp.policy == "zeta") & dp.oracle_label.notna()].copy()
        probe_rows["prompt_id"] = "probe_" + probe_rows["prompt_id"]
        dp.loc[dp.policy == "zeta", "oracle_label"] = np.nan
        cases.append(Case("own-direct-probe", dp, dict(judge_scale=(0, 10), label_scale=(0, 1),
                                                        probes={"zeta": probe_rows.drop(columns="policy")},
                                                        transport_margin=0.1)))
    off = cje.synthetic.make_offpolicy_eval(300, rng=seed, oracle_fraction=0.2)
    for est in (["snips", "stacked-dr"] if quick else ["ips", "snips", "calibrated-ips", "dr-cpo",
                                                       "stacked-dr"]):
        kw = dict(judge_scale=(0, 1), label_scale=(0, 1), estimator=est)
        if "dr" in est:
            kw["fresh_draws"] = off.fresh
        cases.append(Case(f"syn-off-{est}", off.logged, kw))
    if not quick:
        lg, fr = own_logged(seed)
        cases.append(Case("own-off-calibrated-ips", lg, dict(judge_scale=(0, 1), label_scale=(0, 1),
                                                             estimator="calibrated-ips")))
        cases.append(Case("own-off-tmle", lg, dict(judge_scale=(0, 1), label_scale=(0, 1),
                                                   estimator="tmle", fresh_draws=fr)))
    return cases


# --------------------------------------------------------------------------------------------
# Running and comparing
# --------------------------------------------------------------------------------------------
def run(data: pd.DataFrame, kw: dict[str, Any]) -> cje.Report:
    """analyze() with warnings silenced (they are compared through the report's fields)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, progress=False, **kw)


def canon(rep: cje.Report, pmap: Callable[[str], str] = lambda p: p) -> dict[str, Any]:
    """Numbers and verdicts of a report, keyed by (mapped-back) policy names."""
    out: dict[str, Any] = {"est": {}, "pair": {}, "rank": None}
    for e in rep.estimates:
        out["est"][pmap(e.policy)] = dict(estimate=e.estimate, se=e.se, ci_low=e.ci_low,
                                          ci_high=e.ci_high, df=e.df, var_if=e.var_if,
                                          var_cal=e.var_cal, status=e.status,
                                          reasons=tuple(e.reasons), n=e.n, n_labels=e.n_labels)
    for c in rep.pairs:
        a, b = pmap(c.policy_a), pmap(c.policy_b)
        sign = 1.0
        if a > b:
            a, b, sign = b, a, -1.0
        lo, hi = (c.ci_low, c.ci_high) if sign > 0 else (-c.ci_high, -c.ci_low)
        out["pair"][(a, b)] = dict(estimate=sign * c.estimate, se=c.se, ci_low=lo, ci_high=hi,
                                   df=c.df, p_holm=c.p_holm, significant=c.significant)
    out["rank"] = tuple(tuple(sorted(pmap(p) for p in g)) for g in rep.ranking)
    return out


def compare(a: dict[str, Any], b: dict[str, Any], scale: float = 1.0, shift: float = 0.0,
            tol: float = EXACT) -> list[str]:
    """Differences between report a and report b, where b's labels are ``scale*Y + shift``.

    Relative tolerance ``tol`` on numbers (after undoing the label transform); any difference in
    a status, reason text (numbers inside reasons excepted), significance or ranking is listed.
    """
    diffs: list[str] = []

    def num(where: str, x: float, y: float, affine: bool, is_scale: bool) -> None:
        if affine:
            y = (y - shift) / scale
        elif is_scale:
            y = y / scale
        if (isinstance(x, float) and math.isnan(x)) and (isinstance(y, float) and math.isnan(y)):
            return
        if not np.isclose(x, y, rtol=tol, atol=tol * max(1.0, abs(x))):
            diffs.append(f"{where}: {x:.12g} vs {y:.12g} (rel {abs(x - y) / max(abs(x), 1e-300):.2e})")

    if set(a["est"]) != set(b["est"]):
        diffs.append(f"policies {sorted(a['est'])} vs {sorted(b['est'])}")
    for p in sorted(set(a["est"]) & set(b["est"])):
        x, y = a["est"][p], b["est"][p]
        for k in ("estimate", "ci_low", "ci_high"):
            num(f"{p}.{k}", x[k], y[k], True, False)
        num(f"{p}.se", x["se"], y["se"], False, True)
        num(f"{p}.df", x["df"], y["df"], False, False)
        for k in ("var_if", "var_cal"):
            num(f"{p}.{k}", x[k], y[k] / scale, False, True)
        for k in ("status", "n", "n_labels"):
            if x[k] != y[k]:
                diffs.append(f"{p}.{k}: {x[k]} vs {y[k]}")
        if x["status"] == y["status"] and len(x["reasons"]) != len(y["reasons"]):
            diffs.append(f"{p}.reasons: {x['reasons']} vs {y['reasons']}")
    for pr in sorted(set(a["pair"]) & set(b["pair"])):
        x, y = a["pair"][pr], b["pair"][pr]
        for k in ("estimate", "ci_low", "ci_high"):
            num(f"{pr}.{k}", x[k], y[k], False, True)
        num(f"{pr}.se", x["se"], y["se"], False, True)
        num(f"{pr}.p_holm", x["p_holm"], y["p_holm"], False, False)
        if x["significant"] != y["significant"]:
            diffs.append(f"{pr}.significant: {x['significant']} vs {y['significant']}")
    if a["rank"] != b["rank"]:
        diffs.append(f"ranking: {a['rank']} vs {b['rank']}")
    return diffs


# --------------------------------------------------------------------------------------------
# Transformations
# --------------------------------------------------------------------------------------------
def judge_transform(case: Case, f: Callable[[np.ndarray], np.ndarray],
                    scale: tuple[float, float] | None, dtype: Any = None) -> Case:
    """Apply a strictly increasing f to judge_score in every frame; declare the new judge scale."""
    kw = dict(case.kw)

    def tf(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        v = f(df["judge_score"].to_numpy(dtype=float))
        df["judge_score"] = v.astype(dtype) if dtype is not None else v
        return df

    if "fresh_draws" in kw:
        kw["fresh_draws"] = tf(kw["fresh_draws"])
    if "probes" in kw:
        kw["probes"] = {p: tf(v) for p, v in kw["probes"].items()}
    if scale is not None:
        kw["judge_scale"] = scale
    else:
        kw.pop("judge_scale", None)
    return Case(case.name, tf(case.data), kw)


def rank_transform(case: Case) -> Case:
    """Replace judge scores by their dense rank over all frames (a strictly increasing map)."""
    vals = np.unique(np.concatenate([df["judge_score"].to_numpy(float) for df in case.judge_col]))
    hi = float(len(vals))
    return judge_transform(case, lambda v: np.searchsorted(vals, v).astype(float), (0.0, hi))


def label_transform(case: Case, a: float, b: float) -> Case:
    """Y -> a*Y + b in data and probes, label_scale changed accordingly."""
    kw = dict(case.kw)

    def tf(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        if "oracle_label" in df:
            df["oracle_label"] = a * df["oracle_label"] + b
        return df

    lo, hi = kw["label_scale"]
    kw["label_scale"] = (a * lo + b, a * hi + b)
    if "probes" in kw:
        kw["probes"] = {p: tf(v) for p, v in kw["probes"].items()}
    if "fresh_draws" in kw:
        kw["fresh_draws"] = tf(kw["fresh_draws"])
    return Case(case.name, tf(case.data), kw)


def rows_shuffled(case: Case, seed: int) -> Case:
    """Shuffle the rows of every frame."""
    rng = np.random.default_rng(seed)
    kw = dict(case.kw)
    sh = lambda df: df.iloc[rng.permutation(len(df))].reset_index(drop=True)  # noqa: E731
    if "fresh_draws" in kw:
        kw["fresh_draws"] = sh(kw["fresh_draws"])
    if "probes" in kw:
        kw["probes"] = {p: sh(v) for p, v in kw["probes"].items()}
    return Case(case.name, sh(case.data), kw)


def ids_relabelled(case: Case, how: str) -> Case:
    """Relabel prompt ids consistently across frames: 'hash' (hex digests) or 'int'."""
    def m(x: str) -> Any:
        if how == "hash":
            return hashlib.sha1(str(x).encode()).hexdigest()[:12]
        return str(int(hashlib.sha1(str(x).encode()).hexdigest()[:8], 16))

    kw = dict(case.kw)
    tf = lambda df: df.assign(prompt_id=df["prompt_id"].map(m))  # noqa: E731
    if "fresh_draws" in kw:
        kw["fresh_draws"] = tf(kw["fresh_draws"])
    if "probes" in kw:
        kw["probes"] = {p: tf(v) for p, v in kw["probes"].items()}
    return Case(case.name, tf(case.data), kw)


def policies_renamed(case: Case, names: dict[str, str]) -> Case:
    """Rename policies (including the logprob[<target>] columns and probe keys)."""
    kw = dict(case.kw)
    tf = lambda df: df.assign(policy=df["policy"].map(lambda p: names.get(p, p))) \
        if "policy" in df else df  # noqa: E731
    data = tf(case.data).rename(columns={f"logprob[{k}]": f"logprob[{v}]" for k, v in names.items()})
    if "fresh_draws" in kw:
        kw["fresh_draws"] = tf(kw["fresh_draws"])
    if "probes" in kw:
        kw["probes"] = {names.get(p, p): v for p, v in kw["probes"].items()}
    return Case(case.name, data, kw)


def rename_map(case: Case) -> dict[str, str]:
    """A renaming that reverses the alphabetical order and puts one name before 'base'."""
    pols = sorted(set(case.data["policy"]) | (set(case.kw["fresh_draws"]["policy"])
                                             if "fresh_draws" in case.kw else set()))
    pols += [c[len("logprob["):-1] for c in case.data.columns if c.startswith("logprob[")
             and c != "logprob_base" and c[len("logprob["):-1] not in pols]
    return {p: f"{'AAA' if i == len(pols) - 1 else 'z' * (i + 1)}_{p}" for i, p in enumerate(pols)}


# --------------------------------------------------------------------------------------------
# The hunt
# --------------------------------------------------------------------------------------------
def transforms(case: Case, seed: int) -> list[tuple[str, Case, float, float]]:
    """(name, transformed case, label scale, label shift) for every invariance we check."""
    lo, hi = case.kw["judge_scale"]
    w = hi - lo
    out = [
        ("judge affine 3S-7", judge_transform(case, lambda v: 3 * v - 7, (3 * lo - 7, 3 * hi - 7)), 1, 0),
        ("judge exp", judge_transform(case, np.exp, (math.exp(lo), math.exp(hi))), 1, 0),
        ("judge x**3", judge_transform(case, lambda v: (v - lo) ** 3, (0, w ** 3)), 1, 0),
        ("judge +1e6", judge_transform(case, lambda v: v + 1e6, (lo + 1e6, hi + 1e6)), 1, 0),
        ("judge 0-100", judge_transform(case, lambda v: (v - lo) / w * 100, (0, 100)), 1, 0),
        ("judge 0-1", judge_transform(case, lambda v: (v - lo) / w, (0, 1)), 1, 0),
        ("judge rank", rank_transform(case), 1, 0),
        ("judge float32", judge_transform(case, lambda v: v, (lo, hi), dtype=np.float32), 1, 0),
        ("label 10Y+1", label_transform(case, 10, 1), 10, 1),
        ("rows shuffled", rows_shuffled(case, seed), 1, 0),
        ("prompt ids hashed", ids_relabelled(case, "hash"), 1, 0),
        ("prompt ids int-strings", ids_relabelled(case, "int"), 1, 0),
        ("extra columns", Case(case.name, case.data.assign(junk=np.arange(len(case.data)) % 7,
                                                           note="x"), case.kw), 1, 0),
        ("judge affine, scales undeclared", _undeclared(judge_transform(case, lambda v: 3 * v - 7, None)),
         1, 0),
        ("label 10Y+1, scales undeclared", _undeclared(label_transform(case, 10, 1)), 10, 1),
    ]
    if "fresh_draws" in case.kw:
        out.append(("fresh draws float32", Case(case.name, case.data, {
            **case.kw, "fresh_draws": case.kw["fresh_draws"].astype({"judge_score": np.float32})}), 1, 0))
    if "probes" in case.kw:
        out.append(("probe float32", Case(case.name, case.data, {
            **case.kw, "probes": {p: v.astype({"judge_score": np.float32})
                                  for p, v in case.kw["probes"].items()}}), 1, 0))
    return out


def _undeclared(case: Case) -> Case:
    """The same case with judge_scale and label_scale left to inference (compared against the
    declared original: they differ only where the inferred scale differs)."""
    return Case(case.name, case.data, {k: v for k, v in case.kw.items()
                                       if k not in ("judge_scale", "label_scale")})


def extra_policy(case: Case, seed: int) -> Case | None:
    """Add a policy nobody asked about, with no labels: for direct data a policy 'aaa_extra'
    answering every prompt with random scores; for logged data an extra logprob column (and its
    fresh draws, for DR)."""
    rng = np.random.default_rng(seed + 77)
    lo, hi = case.kw["judge_scale"]
    kw = dict(case.kw)
    if "logprob_base" in case.data:
        data = case.data.copy()
        data["logprob[aaa_extra]"] = data["logprob_base"] + rng.normal(0, 0.3, len(data)) - 0.05
        if "fresh_draws" in kw:
            fr = kw["fresh_draws"]
            ext = fr[fr.policy == "base"].copy()
            ext["policy"] = "aaa_extra"
            ext["judge_score"] = rng.uniform(lo, hi, len(ext))
            kw["fresh_draws"] = pd.concat([fr, ext], ignore_index=True)
        return Case(case.name, data, kw)
    first = case.data[case.data.policy == case.data.policy.iloc[0]].copy()
    first["policy"] = "aaa_extra"
    first["oracle_label"] = np.nan
    first["judge_score"] = np.round(rng.uniform(lo, hi, len(first)))
    return Case(case.name, pd.concat([case.data, first], ignore_index=True), kw)


def hunt(seeds: list[int], quick: bool) -> pd.DataFrame:
    """Run every transform on every case; one row per (seed, case, transform)."""
    rows = []
    for seed in seeds:
        for case in make_cases(seed, quick):
            t0 = time.time()
            base = run(case.data, case.kw)
            ca = canon(base)
            for tname, tcase, sc, sh in transforms(case, seed):
                try:
                    rb = run(tcase.data, tcase.kw)
                    diffs = compare(ca, canon(rb), sc, sh)
                except Exception as err:  # noqa: BLE001 - record it
                    diffs = [f"ERROR {type(err).__name__}: {str(err)[:200]}"]
                rows.append(dict(seed=seed, case=case.name, transform=tname, n_diff=len(diffs),
                                 diffs=" | ".join(diffs[:4])))
            # policy renaming
            names = rename_map(case)
            inv = {v: k for k, v in names.items()}
            try:
                rb = run(*_unpack(policies_renamed(case, names)))
                diffs = compare(ca, canon(rb, lambda p, inv=inv: inv.get(p, p)))
            except Exception as err:  # noqa: BLE001
                diffs = [f"ERROR {type(err).__name__}: {str(err)[:200]}"]
            rows.append(dict(seed=seed, case=case.name, transform="policies renamed", n_diff=len(diffs),
                             diffs=" | ".join(diffs[:4])))
            # an unlabelled policy nobody asked about; then the same with policies= excluding it
            ext = extra_policy(case, seed)
            for tname, kwx in (("extra unlabelled policy", {}),
                               ("extra policy, policies= others", {"policies": sorted(ca["est"])})):
                try:
                    rb = run(ext.data, {**ext.kw, **kwx})
                    cb = canon(rb)
                    cb["est"].pop("aaa_extra", None)
                    cb["pair"] = {k: v for k, v in cb["pair"].items() if "aaa_extra" not in k}
                    cb["rank"] = tuple(tuple(p for p in g if p != "aaa_extra") for g in cb["rank"])
                    cb["rank"] = tuple(g for g in cb["rank"] if g)
                    diffs = compare(ca, cb)
                except Exception as err:  # noqa: BLE001
                    diffs = [f"ERROR {type(err).__name__}: {str(err)[:200]}"]
                rows.append(dict(seed=seed, case=case.name, transform=tname, n_diff=len(diffs),
                                 diffs=" | ".join(diffs[:4])))
            # twice in one process
            diffs = compare(ca, canon(run(case.data, case.kw)), tol=0.0)
            rows.append(dict(seed=seed, case=case.name, transform="rerun", n_diff=len(diffs),
                             diffs=" | ".join(diffs[:4])))
            print(f"seed {seed} {case.name}: {time.time() - t0:.1f}s", file=sys.stderr, flush=True)
    return pd.DataFrame(rows)


def _unpack(case: Case) -> tuple[pd.DataFrame, dict[str, Any]]:
    return case.data, case.kw


# --------------------------------------------------------------------------------------------
# Seed sensitivity
# --------------------------------------------------------------------------------------------
def seed_cases(r: int) -> list[Case]:
    """The datasets of replicate r for the seed study (smaller than the hunt's)."""
    sim = cje.synthetic.make_direct_eval(200, rng=10_000 + r, oracle_fraction=0.1)
    off = cje.synthetic.make_offpolicy_eval(400, rng=20_000 + r, oracle_fraction=0.1)
    d = own_direct(30_000 + r, n_prompts=120, draws=2, label_rate=0.15)
    return [Case("syn-direct", sim.data, dict(judge_scale=(0, 10), label_scale=(1, 5))),
            Case("own-direct-clusters", d, dict(judge_scale=(0, 10), label_scale=(0, 1))),
            Case("syn-off-calibrated-ips", off.logged, dict(judge_scale=(0, 1), label_scale=(0, 1),
                                                            estimator="calibrated-ips")),
            Case("syn-off-stacked-dr", off.logged, dict(judge_scale=(0, 1), label_scale=(0, 1),
                                                        estimator="stacked-dr", fresh_draws=off.fresh))]


def seed_study(n_rep: int, seeds: tuple[int, int] = (0, 1)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every seed case with two fold seeds; one row per (replicate, case, policy) and one per
    (replicate, case, pair)."""
    pol_rows, pair_rows = [], []
    for r in range(n_rep):
        for case in seed_cases(r):
            a = canon(run(case.data, {**case.kw, "seed": seeds[0]}))
            b = canon(run(case.data, {**case.kw, "seed": seeds[1]}))
            for p in a["est"]:
                x, y = a["est"][p], b["est"][p]
                pol_rows.append(dict(rep=r, case=case.name, policy=p, status_a=x["status"],
                                     status_b=y["status"], shift_se=(y["estimate"] - x["estimate"]) / x["se"],
                                     se_ratio=y["se"] / x["se"]))
            for pr in a["pair"]:
                x, y = a["pair"][pr], b["pair"][pr]
                pair_rows.append(dict(rep=r, case=case.name, pair=pr, sig_a=x["significant"],
                                      sig_b=y["significant"], sign_a=np.sign(x["estimate"]),
                                      sign_b=np.sign(y["estimate"]), p_a=x["p_holm"], p_b=y["p_holm"],
                                      shift_se=(y["estimate"] - x["estimate"]) / x["se"],
                                      rank_same=a["rank"] == b["rank"]))
        if r % 20 == 0:
            print(f"seed study: replicate {r}", file=sys.stderr, flush=True)
    return pd.DataFrame(pol_rows), pd.DataFrame(pair_rows)


# --------------------------------------------------------------------------------------------
# Size of the differences the method implies (non-affine monotone judge maps)
# --------------------------------------------------------------------------------------------
def effect_sizes(seeds: list[int]) -> pd.DataFrame:
    """For the transforms that legitimately change the numbers (a non-affine increasing map of
    the judge score: isotonic predictions interpolate linearly between labelled scores, and
    two-stage splines read the score's metric), how far the levels move (in SE), and how often
    a status or a "Better" claim flips. One row per (seed, case, transform, policy)."""
    rows = []
    for seed in seeds:
        for case in make_cases(seed):
            lo, hi = case.kw["judge_scale"]
            ref = canon(run(case.data, case.kw))
            for tname, tcase in (("judge exp", judge_transform(case, np.exp, (math.exp(lo), math.exp(hi)))),
                                 ("judge x**3", judge_transform(case, lambda v, lo=lo: (v - lo) ** 3,
                                                                (0, (hi - lo) ** 3))),
                                 ("prompt ids hashed", ids_relabelled(case, "hash"))):
                got = canon(run(tcase.data, tcase.kw))
                sig = sum(ref["pair"][k]["significant"] != got["pair"][k]["significant"] for k in ref["pair"])
                for p, x in ref["est"].items():
                    y = got["est"][p]
                    rows.append(dict(seed=seed, case=case.name, transform=tname, policy=p,
                                     shift_se=(y["estimate"] - x["estimate"]) / x["se"],
                                     se_ratio=y["se"] / x["se"], status_flip=x["status"] != y["status"],
                                     sig_flips=sig, n_pairs=len(ref["pair"])))
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Tables (written below the hand-written reading of the results file)
# --------------------------------------------------------------------------------------------
RESULTS = "simulations/results/independent_invariance.md"


def _md(df: pd.DataFrame, digits: int = 3) -> str:
    df = df.reset_index()
    cols = list(df.columns)
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        out.append("| " + " | ".join(f"{r[c]:.{digits}f}" if isinstance(r[c], float) else str(r[c])
                                     for c in cols) + " |")
    return "\n".join(out)


def _mc(s: pd.Series) -> str:
    c = float(s.mean())
    return f"{c:.3f} ± {math.sqrt(c * (1 - c) / len(s)):.3f}"


def tables(hunt_res: pd.DataFrame, eff: pd.DataFrame, pol: pd.DataFrame, pairs: pd.DataFrame,
           n_seeds: int) -> str:
    """The markdown tables of the results file."""
    out = []
    t = hunt_res.pivot_table(index="transform", columns="case", values="n_diff",
                             aggfunc=lambda s: int((s > 0).sum()))
    t = t.fillna(-1).astype(int).astype(str).replace("-1", "")
    out += [f"## Table 1. Datasets (of {n_seeds} seeds) where anything differed", "",
            "Exact comparison (relative 1e-9) of every level's estimate, SE, CI, df, var_if, var_cal, "
            "status, n, labels; every contrast's estimate, SE, CI, df, p_holm and significance; the "
            "ranking. Empty: the transform does not apply.", "", _md(t)]
    eff = eff.assign(a=eff.shift_se.abs())
    g = eff.groupby(["transform", "case"])
    t2 = g.agg(levels=("a", "size"), median_shift_se=("a", "median"),
               p95_shift_se=("a", lambda s: s.quantile(.95)), max_shift_se=("a", "max"),
               share_over_half_se=("a", lambda s: _mc(s > 0.5)), status_flips=("status_flip", "sum"))
    t3 = eff.drop_duplicates(["seed", "case", "transform"]).groupby(["transform", "case"]).agg(
        better_flips=("sig_flips", "sum"), pairs=("n_pairs", "sum"))
    out += ["", "## Table 2. Size of the differences the method implies", "",
            "The absolute change of each estimate, in units of its original SE; share over 0.5 SE "
            "with its MC SE; 'Better' flips = contrasts whose Holm significance changed.", "",
            _md(t2.join(t3))]
    rows = []
    for case, gg in pol.groupby("case"):
        pp = pairs[pairs.case == case]
        fl = pp.assign(f=pp.sig_a != pp.sig_b).groupby("rep").f.any()
        rk = pp.groupby("rep").rank_same.first()
        rows.append(dict(case=case, levels=len(gg), status_flip=_mc(gg.status_a != gg.status_b),
                         over_half_se=_mc(gg.shift_se.abs() > 0.5),
                         median_shift_se=gg.shift_se.abs().median(),
                         p95_shift_se=gg.shift_se.abs().quantile(.95), max_shift_se=gg.shift_se.abs().max(),
                         se_ratio_5_95=f"{gg.se_ratio.quantile(.05):.2f}–{gg.se_ratio.quantile(.95):.2f}",
                         pairs=len(pp), better_flip=_mc(pp.sig_a != pp.sig_b),
                         reps_any_better_flip=_mc(fl), ranking_changed=_mc(~rk)))
    n_rep = pol.rep.nunique()
    out += ["", f"## Table 3. Seed sensitivity: {n_rep} datasets per case, fold seed 0 vs 1", "",
            _md(pd.DataFrame(rows).set_index("case"))]
    big = pol[pol.shift_se.abs() > 0.5].assign(a=lambda d: d.shift_se.abs())
    out += ["", "## Table 4. Levels that moved by more than 0.5 SE with the seed (largest 15)", "",
            _md(big.sort_values("a", ascending=False).head(15)[
                ["rep", "case", "policy", "status_a", "status_b", "shift_se", "se_ratio"]].set_index("rep"))]
    st = pol.set_index(["rep", "case", "policy"]).status_a.to_dict()
    pr = pairs.assign(flip=pairs.sig_a != pairs.sig_b)
    pr["both_ok"] = [st[(x.rep, x.case, x.pair[0])] == "OK" and st[(x.rep, x.case, x.pair[1])] == "OK"
                     for x in pr.itertuples()]
    rows = []
    for case, gg in pr.groupby("case"):
        f = gg[gg.flip]
        rows.append(dict(case=case, ok_ok_pairs=int(gg.both_ok.sum()), ok_ok_flip=_mc(gg[gg.both_ok].flip),
                         other_pairs=int((~gg.both_ok).sum()),
                         other_flip=_mc(gg[~gg.both_ok].flip) if (~gg.both_ok).any() else "",
                         flips_p_holm_moving_over_10x=f"{int((np.abs(np.log10(f.p_a / f.p_b)) > 1).sum())} "
                                                      f"of {len(f)}"))
    out += ["", "## Table 5. 'Better' flips with the seed, by the statuses of the pair", "",
            _md(pd.DataFrame(rows).set_index("case"))]
    return "\n".join(out) + "\n"


def write_results(n_seeds: int, n_effects: int, n_rep: int) -> None:
    """Run the hunt, the effect sizes and the seed study; write the tables below '# Tables'."""
    t0 = time.time()
    res = hunt(list(range(n_seeds)), quick=False)
    eff = effect_sizes(list(range(n_effects)))
    pol, pairs = seed_study(n_rep)
    head = open(RESULTS).read().split("# Tables")[0] if os.path.exists(RESULTS) else "# Invariance hunt\n\n"
    cmd = (f"Command (from the repository root, with cje importable): "
           f"`python simulations/independent_invariance.py --write "
           f"--seeds {n_seeds} --effects {n_effects} --seed-reps {n_rep}` "
           f"({time.time() - t0:.0f} s on one core; cje {cje.__version__}).")
    with open(RESULTS, "w") as fh:
        fh.write(head + "# Tables\n\n" + cmd + "\n\n" + tables(res, eff, pol, pairs, n_seeds))


def _main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="/tmp/invariance_hunt.csv")
    ap.add_argument("--seed-reps", type=int, default=0)
    ap.add_argument("--effects", type=int, default=0)
    ap.add_argument("--write", action="store_true", help=f"run everything and write {RESULTS}")
    args = ap.parse_args()
    if args.write:
        write_results(args.seeds, args.effects or 30, args.seed_reps or 200)
        return
    if args.effects:
        effect_sizes(list(range(args.effects))).to_csv(args.out.replace(".csv", "_effects.csv"), index=False)
        return
    if args.seed_reps:
        pol, pairs = seed_study(args.seed_reps)
        pol.to_csv(args.out.replace(".csv", "_seed_pol.csv"), index=False)
        pairs.to_csv(args.out.replace(".csv", "_seed_pairs.csv"), index=False)
        return
    res = hunt(list(range(args.seeds)), args.quick)
    res.to_csv(args.out, index=False)
    bad = res[res.n_diff > 0]
    pd.set_option("display.width", 250, "display.max_colwidth", 200, "display.max_rows", 500)
    print(res.groupby(["case", "transform"]).n_diff.apply(lambda s: int((s > 0).sum())).unstack())
    print(bad[["seed", "case", "transform", "diffs"]].to_string())


if __name__ == "__main__":
    _main()
