"""Reproduction: a weighted label design whose low-probability stratum drew no label.

``π = 0.005`` on the 80% of rows without a hidden flaw the judge cannot see, ``π = 0.3`` on the
20% with it; 300 prompts, two policies, binary labels (``simulations/independent_lprob.py``, cell
'a: extreme by flaw, binary, 300'). In about 30% of data sets a policy has no label from the
``π = 0.005`` rows: every labelled row then has ``π = 0.3``, the analysis is the uniform one, the
labels all carry the flaw, and the level is about 0.16 too low while its status was OK (Σ 1/π over
the labelled rows is about 0.2 of the policy's rows, where the design expects 1). The label-reach
gate (``cje.diagnostics.gates.label_reach_gate``) now makes it CAUTION.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

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


def test_a_probability_stratum_without_labels_is_never_ok() -> None:
    """Before the label-reach gate, a policy whose π = 0.005 rows drew no label was OK in most
    such data sets and those OK intervals covered ~0.77 (a wrong OK); now it is CAUTION every
    time, and the data sets where the stratum is represented are unaffected by the gate."""
    truth = {"A": _truth(0.0), "B": _truth(0.3)}
    rng = np.random.default_rng(20261207)
    missed, missed_ok, other_reach = 0, 0, 0
    cover_missed = []
    for _ in range(R):
        d = _data(rng, 300)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(d, judge_scale=(1, 10), label_scale=(0, 1))
        for e in rep.estimates:
            rows = d[(d.policy == e.policy) & d.oracle_label.notna()]
            reach = any("stand for" in r for r in e.reasons)
            if (rows.label_probability < 0.01).any():  # the small-π stratum has a label
                other_reach += reach
                continue
            missed += 1
            missed_ok += e.status == "OK"
            cover_missed.append(e.ci_low <= truth[e.policy] <= e.ci_high)
    assert missed >= 100  # ~30% of 600 policy estimates
    assert missed_ok == 0
    # what the gate guards against: those intervals miss far more often than 5%
    assert np.mean(cover_missed) < 0.9
    assert other_reach <= 0.01 * (2 * R - missed)
