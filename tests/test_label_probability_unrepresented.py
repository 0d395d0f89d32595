"""Reproduction (slow): a weighted label design whose low-probability stratum drew no label.

``π = 0.005`` on the 80% of rows without a hidden flaw the judge cannot see, ``π = 0.3`` on the
20% with it; 300 prompts, two policies, binary labels (``simulations/independent_lprob.py``, cell
'a: extreme by flaw, binary, 300'). In about 30% of data sets a policy has no label from the
``π = 0.005`` rows: every labelled row then has ``π = 0.3``, the analysis is the uniform one, the
labels all carry the flaw, and the level is about 0.16 too low while its status is OK (Σ 1/π over
the labelled rows is about 0.2 of the policy's rows, where the design expects 1). Known defect:
strict xfail until a check of ``Σ_labelled 1/π_i`` against the policy's row count exists.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje

R = 300


def _data(rng: np.random.Generator, n: int) -> pd.DataFrame:
    pids = np.array([f"q{i}" for i in range(n)])
    u = 0.7 * rng.standard_normal(n)
    parts = []
    for pol, mu in (("A", 0.0), ("B", 0.3)):
        z = mu + u + 0.7 * rng.standard_normal(n)
        flaw = rng.random(n) < 0.2
        s = np.clip(np.round(5.5 + 2 * z + 0.8 * rng.standard_normal(n)), 1, 10)
        y = (rng.random(n) < 1 / (1 + np.exp(-(1.2 * z - 1.5 * flaw)))).astype(float)
        prob = np.where(flaw, 0.3, 0.005)
        lab = rng.random(n) < prob
        parts.append(pd.DataFrame({"prompt_id": pids, "policy": pol, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan),
                                   "label_probability": np.where(lab, prob, np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _truth(mu: float) -> float:
    x, w = np.polynomial.hermite_e.hermegauss(120)
    z = mu + np.sqrt(0.98) * x
    return float(sum(ph * (w * (1 / (1 + np.exp(-(1.2 * z - 1.5 * h))))).sum() / w.sum()
                     for h, ph in ((0, 0.8), (1, 0.2))))


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known: a π stratum with no label is not represented and the "
                   "uniform-looking rest is OK (OK intervals cover ~0.8 here; "
                   "simulations/results/independent_lprob.md)")
def test_ok_intervals_cover_when_a_probability_stratum_drew_no_label() -> None:
    """OK intervals must cover within 3 MC SE of 0.95 (they cover ~0.77: a wrong OK)."""
    truth = {"A": _truth(0.0), "B": _truth(0.3)}
    rng = np.random.default_rng(20261207)
    cov = []
    for _ in range(R):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(_data(rng, 300), judge_scale=(1, 10), label_scale=(0, 1))
        cov += [e.ci_low <= truth[e.policy] <= e.ci_high for e in rep.estimates if e.status == "OK"]
    assert len(cov) >= 50
    c = float(np.mean(cov))
    assert c >= 0.95 - 3 * np.sqrt(0.95 * 0.05 / len(cov)), (c, len(cov))
