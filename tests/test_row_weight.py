"""The row-weight gate (:func:`cje.diagnostics.gates.row_weight_gate`): a direct level is the mean
over the policy's rows, so a prompt asked twice weighs twice. When the prompts asked more than once
score unlike the others (hard prompts retried), the level leans toward them and a contrast with a
policy asked once per prompt compares different weightings of the same prompts; before the gate
two equal policies gave "Better" with both levels OK in 24% of reports
(``simulations/results/independent_designs.md``, ``dup_hard``). The level is then CAUTION (its
number does not change); random repeats, or as many rows on every prompt, are not cautioned.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.diagnostics.gates import BALANCE_Z, row_weight_gate, row_weight_shift

SCALES = {"judge_scale": (0, 10), "label_scale": (0, 1)}
KEY = "prompts asked more than once"


def _rows(rng: np.random.Generator, ids: np.ndarray, d: np.ndarray, policy: str) -> pd.DataFrame:
    y = (rng.random(d.size) < 1 / (1 + np.exp(1.2 * d))).astype(float)
    s = 10 / (1 + np.exp(-(1.6 * y - 0.8 - 0.5 * d + 0.8 * rng.standard_normal(d.size))))
    lab = np.where(rng.random(d.size) < 0.25, y, np.nan)
    return pd.DataFrame({"prompt_id": ids, "policy": policy, "judge_score": s, "oracle_label": lab})


def _data(seed: int, repeat: str, g: int = 500) -> pd.DataFrame:
    """Two equal policies on the same prompts of difficulty ``d``; A has some prompts more than
    once: its hardest 20% (``hard``), a random 20% (``random``) or 4 draws of every one
    (``four``)."""
    rng = np.random.default_rng(seed)
    d = rng.standard_normal(g)
    ids = np.array([f"p{i}" for i in range(g)])
    rep = {"hard": 1 + (d > np.quantile(d, 0.8)), "random": 1 + (rng.random(g) < 0.2),
           "four": np.full(g, 4)}[repeat]
    ia = np.repeat(np.arange(g), rep)
    return pd.concat([_rows(rng, ids[ia], d[ia], "A"), _rows(rng, ids, d, "B")],
                     ignore_index=True)


def _analyze(data: object) -> cje.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, **SCALES)


def test_row_weight_shift_by_hand() -> None:
    u = np.array([-0.5, -0.3, 0.2, 0.3, 0.1, 0.2])  # Σ φ per prompt
    c = np.array([2, 2, 1, 1, 1, 1])
    d, z = row_weight_shift(u, c)
    x = u / c
    psi, c_bar = u.sum() / c.sum(), c.mean()
    infl = (x - x.mean()) - c / c_bar * (x - psi)
    assert d == pytest.approx(x.mean() - psi)
    assert z == pytest.approx(d / np.sqrt((infl ** 2).sum() / (6 * 5)))
    # the centring of the influence values does not matter (a constant moves both means)
    assert row_weight_shift(u + 0.7 * c, c) == pytest.approx((d, z))
    # as many rows on every prompt: one weighting, nothing to check
    d0, z0 = row_weight_shift(u, np.full(6, 3))
    assert d0 == 0.0 and np.isnan(z0)
    assert all(np.isnan(row_weight_shift(u[:1], c[:1])))


def test_row_weight_z_is_standard_normal_for_random_repeats() -> None:
    """Repeats that do not go with the values: |z| beyond 1.96 about 5% of the time, beyond
    BALANCE_Z about 0.1%; repeats on the low values: nearly always beyond BALANCE_Z."""
    rng = np.random.default_rng(1)
    reps, g = 2000, 400
    z_null, z_alt = np.empty(reps), np.empty(reps)
    for r in range(reps):
        c = 1 + (rng.random(g) < 0.2)
        v = rng.standard_normal(g)
        u = c * v + rng.standard_normal(g) * np.sqrt(c)  # prompt mean v, row noise
        z_null[r] = row_weight_shift(u - u.sum() / c.sum() * c, c)[1]
        c_alt = 1 + (v < np.quantile(v, 0.2))
        u_alt = c_alt * v + rng.standard_normal(g) * np.sqrt(c_alt)
        z_alt[r] = row_weight_shift(u_alt, c_alt)[1]
    share = np.mean(np.abs(z_null) > 1.96)
    assert abs(share - 0.05) < 3 * np.sqrt(0.05 * 0.95 / reps)
    assert np.mean(np.abs(z_null) > BALANCE_Z) < 0.005
    assert np.mean(z_alt > BALANCE_Z) > 0.99


def test_gate_needs_z_and_half_an_se() -> None:
    diag, why = row_weight_gate(0.03, 6.0, 0.02, 4.0, 100, 500, 2)
    assert diag == {"row_weight_shift": pytest.approx(0.12), "row_weight_z": 6.0}
    assert why is not None and "100 of its 500 prompts asked more than once (twice)" in why
    assert "score lower than its others" in why and "0.12 higher" in why
    assert row_weight_gate(0.03, 3.0, 0.02, 1.0, 100, 500, 2)[1] is None  # |z| ≤ 3.29
    assert row_weight_gate(0.009, 6.0, 0.02, 1.0, 100, 500, 2)[1] is None  # under half an SE
    assert row_weight_gate(float("nan"), float("nan"), 0.02, 1.0, 100, 500, 2)[1] is None
    assert "up to 4 times" in row_weight_gate(-0.03, -6.0, 0.02, 1.0, 9, 50, 4)[1]


def test_hard_prompts_asked_twice_caution_the_level_and_star_the_contrast() -> None:
    rep = _analyze(_data(3, "hard"))
    a, b = rep["A"], rep["B"]
    assert a.status == "CAUTION" and b.status == "OK"
    (why,) = [r for r in a.reasons if KEY in r]
    assert "the mean over its rows" in why and "score lower than its others" in why
    assert a.diagnostics["row_weight_z"] > BALANCE_Z and a.diagnostics["row_weight_shift"] > 0
    assert "row_weight_z" not in b.diagnostics
    # the level is still the mean over rows (the gate moves no number): the mean of its
    # per-prompt means is higher by about the shift
    assert "A*" in rep.summary()


def test_random_repeats_and_equal_draws_stay_ok() -> None:
    rep = _analyze(_data(4, "random"))
    assert rep["A"].status == "OK" and not [r for r in rep["A"].reasons if KEY in r]
    assert abs(rep["A"].diagnostics["row_weight_z"]) < BALANCE_Z
    rep = _analyze(_data(5, "four"))  # 4 draws of every prompt: one weighting, no check
    assert rep["A"].status == "OK" and "row_weight_z" not in rep["A"].diagnostics


def test_out_of_core_gives_the_same_status_reason_and_diagnostics() -> None:
    pl = pytest.importorskip("polars")
    df = _data(3, "hard")
    mem, ooc = _analyze(df), _analyze(pl.from_pandas(df).lazy())
    assert ooc.settings.get("engine") == "polars"
    for p in "AB":
        assert ooc[p].status == mem[p].status and ooc[p].reasons == mem[p].reasons
    assert ooc["A"].diagnostics["row_weight_z"] == pytest.approx(mem["A"].diagnostics["row_weight_z"],
                                                                 rel=1e-9)
