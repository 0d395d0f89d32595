"""A defect and its gate: a level resting on very few prompts was OK with an interval that did not
cover (``simulations/results/independent_fewrows.md``).

Logged data of 93 rows where one target's log-probability is present on only ``k`` rows (the
others NaN, so those rows are excluded for it): calibrated SNIPS reported that target OK from
3–8 rows, and those OK intervals covered 0.78–0.91 on 1–5 labels. Two things select and narrow
them: the t interval's degrees of freedom come from Satterthwaite's formula, which, when the
calibration's jackknife variance (K − 1 = 4 degrees of freedom) is a large share, exceeds the
``k − 1`` the rows' own variance estimate has; and with so few rows the out-of-range and
crossing-the-bound gates pick which samples stay OK. The sanity gate now cautions every level
resting on fewer than :data:`cje.diagnostics.gates.MIN_OK_PROMPTS` prompts.

The process (numpy only, as in the simulation): judge scores ``S ~ Binomial(10, 0.5)`` on the
logged rows, labels ``clip(round(0.7 + 0.45 S + N(0, 0.8²)), 1, 5)`` on 35% of them, and the
target's log-ratio ``0.5 z(S) + 0.3 ε − c`` (exact normaliser ``c``, ``ε`` independent of the
label given ``S``), so its value is exact.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.diagnostics.gates import MIN_OK_PROMPTS, sanity_gate
from cje.results import PolicyEstimate

_S = np.arange(11)
_PMF = np.array([math.comb(10, s) for s in _S]) / 2.0**10
_Z = (_S - 5.0) / math.sqrt(2.5)
_THETA, _TAU = 0.5, 0.3
_LOGC = math.log(float(np.sum(_PMF * np.exp(_THETA * _Z))))


def _truth() -> float:
    mu = 0.7 + 0.45 * _S
    cut = np.array([[0.5 * (1 + math.erf((j + 0.5 - m) / 0.8 / math.sqrt(2))) for m in mu]
                    for j in (1, 2, 3, 4)])
    probs = np.diff(np.vstack([np.zeros(11), cut, np.ones(11)]), axis=0)
    g = (np.arange(1, 6)[:, None] * probs).sum(axis=0)
    return float(np.sum(_PMF * np.exp(_THETA * _Z - _LOGC) * g))


def _logged(seed: int, k: int, n: int = 93) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.binomial(10, 0.5, n)
    y = np.clip(np.round(0.7 + 0.45 * s + rng.normal(0, 0.8, n)), 1, 5)
    lp0 = -40.0 + rng.normal(0, 1, n)
    lam = _THETA * (s - 5.0) / math.sqrt(2.5) + _TAU * rng.normal(0, 1, n) - _LOGC - _TAU**2 / 2
    lp = lp0 + lam
    keep = np.zeros(n, bool)
    keep[rng.choice(n, k, replace=False)] = True
    return pd.DataFrame({"prompt_id": [f"p{i:03d}" for i in range(n)], "policy": "base",
                         "judge_score": s.astype(float),
                         "oracle_label": np.where(rng.random(n) < 0.35, y, np.nan),
                         "logprob_base": lp0, "logprob[far]": np.where(keep, lp, np.nan)})


def _ok_estimate(n_prompts: int) -> PolicyEstimate:
    return PolicyEstimate("p", 3.0, 0.3, 2.3, 3.7, 0.05, 6.0, n_prompts, n_prompts, 0,
                          0.05, 0.04, 0.5, 3.1, 2.5, 3.7, "snips", "OK")


def test_sanity_gate_cautions_a_level_on_few_prompts() -> None:
    """Below the minimum number of prompts an otherwise clean OK estimate is CAUTION, with a
    reason naming the count; at the minimum it stays OK."""
    few = sanity_gate(_ok_estimate(MIN_OK_PROMPTS - 1), (1.0, 5.0))
    assert few.status == "CAUTION"
    assert any(f"{MIN_OK_PROMPTS - 1} prompts" in r for r in few.reasons), few.reasons
    assert sanity_gate(_ok_estimate(MIN_OK_PROMPTS), (1.0, 5.0)).status == "OK"
    # a worse status is kept
    ref = dataclasses.replace(_ok_estimate(3), status="REFUSED")
    assert sanity_gate(ref, (1.0, 5.0)).status == "REFUSED"


def test_logged_target_on_five_rows_is_not_ok() -> None:
    """The observation: ``logprob[far]`` on 5 of 93 rows. SNIPS reported ``far`` OK (seed 3);
    now CAUTION with the few-prompts reason, and ``base`` (93 rows) is unaffected."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(_logged(3, 5), estimator="snips", judge_scale=(0, 10), label_scale=(1, 5))
    far = rep["far"]
    assert far.n_prompts == 5
    assert far.status != "OK"
    assert any("prompts" in r and "5" in r for r in far.reasons), far.reasons
    assert rep["base"].status == "OK"


@pytest.mark.slow
def test_few_rows_ok_intervals_cover() -> None:
    """Before the gate, with ``k`` = 4, 6 and 8 rows and 200 replicates each, SNIPS reported
    ``far`` OK in about a third of the replicates and those intervals covered about 0.89
    (``simulations/results/independent_fewrows.md``: 0.881 ± 0.029, 0.896 ± 0.022,
    0.895 ± 0.020 with 500 replicates): 24 wrong OKs in these 600 before the gate (2026-12-07).
    With the gate none of them can be OK. With
    ``k`` = 20 the target stays OK often (0.53 of 500 replicates in the simulation, covering
    0.936 ± 0.015): at least 25% of 200 here (binomial SD of 0.53 is 0.035), and its OK
    intervals miss at most 8% of the time (expected 5.4%; SD 2.5% on ~90 OKs)."""
    truth = _truth()
    wrong = 0
    for k in (4, 6, 8):
        for seed in range(200):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                e = cje.analyze(_logged(10_000 * k + seed, k), estimator="snips",
                                judge_scale=(0, 10), label_scale=(1, 5))["far"]
            wrong += e.status == "OK" and not (e.ci_low <= truth <= e.ci_high)
    assert wrong <= 2, wrong
    ok = miss = 0
    for seed in range(200):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            e = cje.analyze(_logged(500_000 + seed, 20), estimator="snips",
                            judge_scale=(0, 10), label_scale=(1, 5))["far"]
        if e.status == "OK":
            ok += 1
            miss += not (e.ci_low <= truth <= e.ci_high)
    assert ok >= 50, ok
    assert miss <= 0.08 * ok + 2, (miss, ok)
