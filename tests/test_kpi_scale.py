"""Skewed KPIs, round two (``simulations/results/independent_kpi.md``, "Round two";
``simulations/independent_kpi2.py``): amounts whose labels all fit a small inferred common scale,
whole-number amounts on an inferred (0, 100), and heavy tails named in the reason.

The process is ``tests/test_kpi_independent.py``'s (three policies on shared prompts, latent
quality ``Z``, oracle ``x = (Z + ε)/τ``, judge ``S`` on 0–10 with one decimal, 10% of rows
labelled at random) with the label scaled down ("revenue in thousands") or rounded ("integer
dollars"), and rating-like labels on the same rows that must stay as they were.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import special

import cje
from cje.diagnostics.gates import AMOUNT_RATIO, TAIL_RATIO, label_range_gate

TAU = math.sqrt(1.25)
MU = {"A": 0.0, "B": 0.3, "C": 0.0}
AMOUNT = "look like an amount"
WHOLE = "whole numbers but skewed"
TAIL = "heavy-tailed"


def _data(seed: int, label, n: int = 500, pl: float = 0.10) -> pd.DataFrame:
    """Rows of three policies; ``label(rng, x)`` maps the oracle's ``x ~ N(δ_p, 1)`` to a label."""
    rng = np.random.default_rng(seed)
    d = 0.5 * rng.standard_normal(n)
    pid = [f"p{i}" for i in range(n)]
    parts = []
    for pol, mu in MU.items():
        z = mu + d + math.sqrt(0.75) * rng.standard_normal(n)
        x = (z + 0.5 * rng.standard_normal(n)) / TAU
        s = np.clip(np.round(5.0 + 1.5 * (z + 0.5 * rng.standard_normal(n)), 1), 0.0, 10.0)
        lab = rng.random(n) < pl
        parts.append(pd.DataFrame({"prompt_id": pid, "policy": pol, "judge_score": s,
                                   "oracle_label": np.where(lab, label(rng, x), np.nan)}))
    return pd.concat(parts, ignore_index=True)


def _pareto_thousands(rng, x):  # Lomax amount, tail index 2.5, in thousands (mean 0.67 for A)
    return np.expm1(-special.log_ndtr(-x) / 2.5)


def _beta_rating(rng, x):  # a mean rating / probability on (0, 1), A's mean 0.37
    p = special.ndtr(-0.3319 * math.sqrt(1.64) + 0.8 * x)
    return rng.beta(8 * p, 8 * (1 - p))


def _reasons(rep) -> list[str]:
    return [r for e in rep.estimates for r in e.reasons]


def _analyze(data: pd.DataFrame, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, judge_scale=(0, 10), **kw)


def test_amounts_below_10_on_an_inferred_scale_are_cautioned_ratings_are_not() -> None:
    """Pareto amounts in thousands fit (0, 5)–(0, 10) and were judged against its top as a bound
    (OK intervals covered 0.85 for B in simulation). Now every level is CAUTION, saying the
    labels look like an amount; the same rows as a mean rating on (0, 1), ten times that on
    (0, 10), or the amounts with a declared scale do not get the reason."""
    data = _data(11, _pareto_thousands)
    rep = _analyze(data)
    assert rep.label_scale in ((0.0, 5.0), (0.0, 7.0), (0.0, 10.0))
    for e in rep.estimates:
        assert e.status != "OK" and any(AMOUNT in r for r in e.reasons)
    declared = _analyze(data, label_scale=(0, 1000))
    rating = _data(11, _beta_rating)
    slider = rating.assign(oracle_label=10 * rating["oracle_label"])
    for r in (declared, _analyze(rating), _analyze(slider)):
        assert not any(AMOUNT in x for x in _reasons(r))
    assert _analyze(slider).label_scale == (0.0, 10.0)


def test_whole_number_amounts_on_an_inferred_0_100_are_cautioned() -> None:
    """Integer dollars (a lognormal σ = 2 amount rounded, median 1) on the inferred (0, 100):
    OK intervals covered 0.25–0.78 in simulation. Now CAUTION, naming the skew and the tail;
    0–100 whole-number ratings, and 0/100 coded outcomes, are left alone."""
    data = _data(4, lambda rng, x: np.floor(np.exp(2 * x) + 0.5))
    assert data["oracle_label"].max() <= 100
    rep = _analyze(data)
    assert rep.label_scale == (0.0, 100.0)
    for e in rep.estimates:
        assert e.status != "OK" and any(WHOLE in r and TAIL in r for r in e.reasons)
    ratings = _analyze(_data(4, lambda rng, x: np.clip(np.round(60 + 15 * x
                                                                + 10 * rng.standard_normal(x.size)),
                                                       0, 100)))
    assert not any(WHOLE in x for x in _reasons(ratings))
    u = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 1.0])  # a 0/100 coded outcome: two values, no tail
    assert label_range_gate((0.0, 100.0), u, inferred=True) == ("OK", None)


def test_heavy_tail_named_in_the_range_reason() -> None:
    """Lognormal σ = 2 revenue on its own range: the reason now says the labels are heavy-tailed
    and that such intervals under-cover whatever their status; a light range does not."""
    rep = _analyze(_data(3, lambda rng, x: 10 * np.exp(2 * x)))
    for e in rep.estimates:
        assert any("own range" in r and TAIL in r for r in e.reasons)
    light = np.array([0.0, 0.4, 0.5, 0.55, 0.6, 1.0])
    status, why = label_range_gate((2.5, 7.1), light)
    assert status == "CAUTION" and TAIL not in why


def test_label_range_gate_small_scales_by_grid_and_ratio() -> None:
    """The rule's cases on constructed labels (unit scale)."""
    amounts = np.array([0.02, 0.05, 0.08, 0.1, 0.12, 0.2, 0.9])  # on (0, 10): 0.2 … 9, 9/1 ≥ 5
    assert np.max(amounts) / np.median(amounts) >= AMOUNT_RATIO
    assert label_range_gate((0.0, 10.0), amounts, inferred=True)[0] == "CAUTION"
    assert label_range_gate((0.0, 10.0), amounts)[0] == "OK"              # declared
    assert label_range_gate((0.0, 1.0), amounts, inferred=True)[0] == "OK"  # probabilities
    thirds = np.array([1, 1, 2, 2, 4, 14, 29]) / 30.0  # means of 3 raters on (0, 10): thirds
    assert label_range_gate((0.0, 10.0), thirds, inferred=True) == ("OK", None)
    mid = np.array([0.31, 0.52, 0.6, 0.93, 0.44])  # a mean rating, 3× its median at most
    assert label_range_gate((0.0, 10.0), mid, inferred=True) == ("OK", None)
    why = label_range_gate((0.0, 5.0), np.array([0.001, 0.004, 0.01, 0.012, 0.9]), inferred=True)[1]
    assert AMOUNT in why and TAIL in why and TAIL_RATIO == 10.0
