"""Coverage on data-generating processes written here, not by ``cje.synthetic``: off-policy
(below) and direct mode with probe slices (at the end).

The lesson of the outside checks: a package tuned on its own generators can look right there
and be wrong elsewhere. This DGP shares no code with the package's: each prompt has six response
*types* of known quality; the logging policy picks a type with prompt-specific probabilities; two
targets tilt them toward a feature (quality plus a style the judge likes); the judge scores on an
integer 1–10 grid with noise and a bonus for styled types (so the calibration learned on the
logging policy does not transport to the targets); labels are exact quality plus noise, clipped
to [0, 1]. Log-probabilities carry a per-response term shared by every policy (the response's
tokens within its type), so the importance ratio is the ratio of the type probabilities.
Each replicate draws its own setting (prompts 400–2,500, tilt, judge bonus and noise, label share
5–25%, one or two fresh draws per prompt).

The truth is the **population** value (not the replicate's prompts): the expectation over
prompts, computed on 400,000 prompts with the label noise integrated exactly (the mean of a
clipped normal); its Monte Carlo error, ~0.0003, is small next to the estimators' SEs (≥ 0.01).
It is checked against plain sampling from the target policy in ``test_truth_is_exact``.

Question: do the estimates the report marks OK cover that truth at ≥ 95%? (Measured on 600
replicates, 2026-12-06: OK coverage 0.964–0.966 per estimator, 913–1,033 OK estimates each; no
OK estimate below 15% raw-weight ESS for the weighting family, CAUTION/REFUSED there.)
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import cje

K = 6
QUALITY = np.linspace(0.15, 0.85, K)
STYLE = np.array([0, 1, 0, 1, 0, 1], dtype=float)
FEATURE = QUALITY + 0.6 * STYLE  # what the targets tilt toward
LABEL_SD, PROMPT_SD, LOGIT_SD = 0.08, 0.1, 0.7
ESTIMATORS = ("snips", "calibrated-ips", "dr-cpo", "tmle", "stacked-dr")
NEEDS_FRESH = {"dr-cpo", "tmle", "stacked-dr"}


def _log_probs(lp0: np.ndarray, theta: float) -> np.ndarray:
    a = lp0 + theta * FEATURE
    return a - np.log(np.exp(a).sum(1, keepdims=True))


def _prompts(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    eff = rng.normal(0, PROMPT_SD, n)
    lp0 = rng.normal(0, LOGIT_SD, (n, K))
    return eff, lp0 - np.log(np.exp(lp0).sum(1, keepdims=True))


def _mean_label(m: np.ndarray) -> np.ndarray:
    """E[clip(m + N(0, LABEL_SD²), 0, 1)], exactly."""
    lo, hi = -m / LABEL_SD, (1 - m) / LABEL_SD
    return (m * (norm.cdf(hi) - norm.cdf(lo)) + LABEL_SD * (norm.pdf(lo) - norm.pdf(hi))
            + norm.sf(hi))


@cache
def population_value(theta: float) -> float:
    """The target's value over the prompt population (400,000 prompts, label noise exact)."""
    eff, lp0 = _prompts(np.random.default_rng(99), 400_000)
    p = np.exp(_log_probs(lp0, theta))
    return float(np.mean((p * _mean_label(QUALITY[None, :] + eff[:, None])).sum(1)))


def _sample(rng: np.random.Generator, lp: np.ndarray) -> np.ndarray:
    u = rng.uniform(size=(lp.shape[0], 1))
    return (np.exp(lp).cumsum(1) < u).sum(1).clip(0, K - 1)


def draw(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict, dict]:
    cfg = dict(n=int(rng.choice([400, 1000, 2500])), theta=float(rng.choice([0.5, 1.5, 3.0, 5.0, 8.0])),
               bonus=float(rng.choice([0.0, 0.9, 2.0])), frac=float(rng.choice([0.05, 0.1, 0.25])),
               noise=float(rng.choice([0.5, 1.5])), fresh=int(rng.choice([1, 2])))
    n = cfg["n"]
    eff, lp0 = _prompts(rng, n)
    targets = {"t_lo": cfg["theta"] / 3, "t_hi": cfg["theta"]}

    def label(k: np.ndarray) -> np.ndarray:
        return np.clip(QUALITY[k] + eff + rng.normal(0, LABEL_SD, k.size), 0, 1)

    def judge(k: np.ndarray, y: np.ndarray) -> np.ndarray:
        raw = 1 + 9 * y + cfg["bonus"] * STYLE[k] + rng.normal(0, cfg["noise"], k.size)
        return np.clip(np.round(raw), 1, 10)

    rows = np.arange(n)
    k0 = _sample(rng, lp0)
    y0 = label(k0)
    tokens = rng.normal(-30, 5, n)  # the response's own tokens: the same under every policy
    labelled = rng.uniform(size=n) < cfg["frac"]
    logged = pd.DataFrame({"prompt_id": [f"x{i}" for i in rows], "judge_score": judge(k0, y0),
                           "oracle_label": np.where(labelled, y0, np.nan),
                           "logprob_base": lp0[rows, k0] + tokens})
    fresh = []
    for t, theta in targets.items():
        lp = _log_probs(lp0, theta)
        logged[f"logprob[{t}]"] = lp[rows, k0] + tokens
        for d in range(cfg["fresh"]):
            k = _sample(rng, lp)
            fresh.append(pd.DataFrame({"prompt_id": logged.prompt_id, "policy": t, "draw_idx": d,
                                       "judge_score": judge(k, label(k)), "oracle_label": np.nan}))
    truth = {t: population_value(theta) for t, theta in targets.items()}
    return logged, pd.concat(fresh, ignore_index=True), truth, cfg


def replicates(seed: int, n_replicates: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for r in range(n_replicates):
        logged, fresh, truth, cfg = draw(rng)
        for est in ESTIMATORS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rep = cje.analyze(logged, fresh_draws=fresh if est in NEEDS_FRESH else None,
                                  estimator=est, judge_scale=(1, 10), label_scale=(0, 1))
            for e in rep.estimates:
                if e.policy in truth:
                    out.append(dict(cfg, replicate=r, estimator=est, policy=e.policy,
                                    status=e.status,
                                    cover=bool(e.ci_low <= truth[e.policy] <= e.ci_high)))
    return pd.DataFrame(out)


def test_truth_is_exact() -> None:
    """The population value against plain sampling: draw prompts, a response type from the
    target and a noisy clipped label, 400,000 times (another seed); the two agree within 4 Monte
    Carlo SEs (the label's SD is < 0.3, so the SE is < 0.3/sqrt(4·10⁵) ≈ 0.0005)."""
    rng = np.random.default_rng(5)
    for theta in (0.5, 8.0):
        eff, lp0 = _prompts(rng, 400_000)
        k = _sample(rng, _log_probs(lp0, theta))
        y = np.clip(QUALITY[k] + eff + rng.normal(0, LABEL_SD, k.size), 0, 1)
        se = y.std() / np.sqrt(y.size)
        assert abs(y.mean() - population_value(theta)) < 4 * se + 4 * 0.0003, theta


def _check(df: pd.DataFrame, floor: float) -> None:
    ok = df[df.status == "OK"]
    for est in ESTIMATORS:
        got = ok[ok.estimator == est].cover
        assert len(got) >= 0.5 * len(df[df.estimator == est]), est  # most estimates are OK here
        assert got.mean() >= floor, (est, got.mean(), len(got))


def test_ok_estimates_cover_outside_dgp() -> None:
    """120 replicates (~240 estimates per estimator, ~190 of them OK). Monte Carlo SE of a
    coverage of 0.95 over 190 estimates: sqrt(0.95·0.05/190) ≈ 0.016 (less in fact: two targets
    of a replicate share data, which raises it a little); the floor 0.90 is 3 SEs below 0.95."""
    _check(replicates(seed=12, n_replicates=120), floor=0.90)


@pytest.mark.slow
def test_ok_estimates_cover_outside_dgp_slow() -> None:
    """600 replicates (900–1,050 OK estimates per estimator): MC SE ≈ 0.007; floor 0.93."""
    df = replicates(seed=13, n_replicates=600)
    _check(df, floor=0.93)
    ok = df[df.status == "OK"]
    for (est, pol), got in ok.groupby(["estimator", "policy"]).cover:  # ~450–580 each: SE ≈ 0.01
        assert got.mean() >= 0.92, (est, pol, got.mean(), len(got))


# ------------------------------------------------------------------------------------------------
# Direct mode with probe slices, on a DGP of its own
# ------------------------------------------------------------------------------------------------
# Four policies mix five response types differently; the judge (0–100, integer) over- or
# under-rates some types, so a calibration learned on one policy's mix does not transport to the
# others. Labels either on every policy (MCAR) or on `base` only; 50-label probe slices (or none)
# for the three other policies. Truth: the population value, label noise integrated exactly.
D_QUALITY = np.array([0.2, 0.35, 0.5, 0.65, 0.8])
D_BIAS = np.array([0.0, 0.15, 0.0, -0.1, 0.05])
D_MIX = {"base": [0.2, 0.2, 0.2, 0.2, 0.2], "verbose": [0.05, 0.5, 0.15, 0.1, 0.2],
         "terse": [0.2, 0.05, 0.2, 0.5, 0.05], "good": [0.05, 0.05, 0.2, 0.3, 0.4]}
D_LABEL_SD, D_PROMPT_SD = 0.1, 0.08


@cache
def direct_truth(policy: str) -> float:
    eff = np.random.default_rng(1).normal(0, D_PROMPT_SD, 200_000)
    m = D_QUALITY[None, :] + eff[:, None]
    lo, hi = -m / D_LABEL_SD, (1 - m) / D_LABEL_SD
    ey = (m * (norm.cdf(hi) - norm.cdf(lo)) + D_LABEL_SD * (norm.pdf(lo) - norm.pdf(hi))
          + norm.sf(hi)).mean(0)
    return float(np.dot(D_MIX[policy], ey))


def _responses(rng: np.random.Generator, policy: str, eff: np.ndarray, noise: float):
    k = rng.choice(len(D_QUALITY), size=eff.size, p=D_MIX[policy])
    y = np.clip(D_QUALITY[k] + eff + rng.normal(0, D_LABEL_SD, eff.size), 0, 1)
    s = np.clip(np.round(100 * (y + D_BIAS[k] + rng.normal(0, noise, eff.size))), 0, 100)
    return s, y


def direct_replicates(seed: int, n_replicates: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_replicates):
        n = int(rng.choice([300, 1000, 3000]))
        design = str(rng.choice(["one", "all"]))
        frac = float(rng.choice([0.05, 0.1, 0.25]))
        probe_n = int(rng.choice([0, 50]))
        noise = float(rng.choice([0.05, 0.15]))
        eff = rng.normal(0, D_PROMPT_SD, n)
        frames, probes = [], {}
        for pol in D_MIX:
            s, y = _responses(rng, pol, eff, noise)
            lab = (rng.uniform(size=n) < frac) & (design == "all" or pol == "base")
            frames.append(pd.DataFrame({"prompt_id": [f"q{i}" for i in range(n)], "policy": pol,
                                        "judge_score": s, "oracle_label": np.where(lab, y, np.nan)}))
            if probe_n and pol != "base":
                ps, py = _responses(rng, pol, rng.normal(0, D_PROMPT_SD, probe_n), noise)
                probes[pol] = pd.DataFrame({"prompt_id": [f"probe-{pol}-{i}" for i in range(probe_n)],
                                            "policy": pol, "judge_score": ps, "oracle_label": py})
        rep = cje.analyze(pd.concat(frames, ignore_index=True), probes=probes or None,
                          judge_scale=(0, 100), label_scale=(0, 1))
        for e in rep.estimates:
            out.append(dict(design=design, probe_n=probe_n, policy=e.policy, status=e.status,
                            cover=bool(e.ci_low <= direct_truth(e.policy) <= e.ci_high)))
    return pd.DataFrame(out)


def _check_direct(df: pd.DataFrame, floor: float) -> None:
    ok = df[df.status == "OK"]
    # a policy with no labels of its own and no probe is never OK: its level assumes transport
    blind = ok[(ok.design == "one") & (ok.probe_n == 0) & (ok.policy != "base")]
    assert blind.empty, blind
    for cell, got in ok.groupby(["design", "probe_n"]).cover:
        assert got.mean() >= floor, (cell, got.mean(), len(got))


def test_direct_ok_estimates_cover_outside_dgp() -> None:
    """400 replicates: 200–400 OK estimates per (design, probe) cell; MC SE of 0.95 over 200
    is 0.015 (a little more: a replicate's policies share prompts); floor 0.91, ~2.7 SEs below.
    Measured on 3,000 replicates (seed 4, 2026-12-06): OK coverage 0.952–0.974 per cell,
    0.943–0.961 per policy; probe-corrected policies with no labels of their own 0.956–0.961;
    without a probe those are CAUTION (covering 0.29: the judge's bias differs between the
    policies' response mixes) or REFUSED, never OK."""
    _check_direct(direct_replicates(seed=5, n_replicates=400), floor=0.91)


@pytest.mark.slow
def test_direct_ok_estimates_cover_outside_dgp_slow() -> None:
    """3,000 replicates: 600–3,100 OK estimates per cell (MC SE ≤ 0.009); floor 0.935 per cell
    and 0.92 per policy within a cell (~650–780 each, SE ≈ 0.008)."""
    df = direct_replicates(seed=6, n_replicates=3000)
    _check_direct(df, floor=0.935)
    ok = df[df.status == "OK"]
    for cell, got in ok.groupby(["design", "probe_n", "policy"]).cover:
        assert got.mean() >= 0.92, (cell, got.mean(), len(got))
