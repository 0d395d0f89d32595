"""A DR level follows its fresh draws: when they do not score like the target's importance-weighted
logged responses (a stale sampler, another judge run), the level is CAUTION
(:func:`cje.diagnostics.gates.fresh_balance`; ``simulations/results/independent_dr.md``)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.diagnostics.gates import BALANCE_Z, fresh_balance

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_dr as study  # noqa: E402


def test_fresh_balance_by_hand() -> None:
    # rows: prompt, raw weight, judge score (0-1); fresh draws: prompt, score
    rng = np.random.default_rng(3)
    prompt = np.repeat(np.arange(8), [1, 2, 1, 3, 1, 1, 2, 1])
    w = rng.lognormal(0, 0.6, prompt.size)
    s = rng.uniform(0, 1, prompt.size)
    f_prompt = np.repeat(np.arange(8), 2)
    f_s = rng.uniform(0, 1, f_prompt.size)
    gbar = pd.Series(f_s).groupby(f_prompt).mean()
    # by hand: mean-one weights over the rows, the two means, influence per row summed per prompt
    v = w / w.mean()
    fresh = float(np.mean(gbar.loc[prompt].to_numpy()))
    logged = float(np.sum(v * s) / np.sum(v))
    phi = (gbar.loc[prompt].to_numpy() - fresh) - v * (s - logged)
    tot = pd.Series(phi).groupby(prompt).sum().to_numpy()
    g, n = tot.size, prompt.size
    z = (fresh - logged) / np.sqrt(g / (g - 1) * np.sum(tot**2) / n**2)
    got = fresh_balance(np.bincount(prompt).astype(float), np.bincount(prompt, weights=w),
                        np.bincount(prompt, weights=w * s), gbar.to_numpy())
    assert got == pytest.approx((fresh, logged, z), rel=1e-12)


def _analyze(cell: str, seed: int, **kw):
    logged, fresh = study.make_data(seed, study.CELLS[cell])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(logged, fresh_draws=fresh, estimator="stacked-dr", judge_scale=(0, 10),
                           label_scale=(0, 1), **kw)


def test_stale_fresh_draws_caution_and_clean_ones_do_not() -> None:
    # seeds of the study's cells: A is OK on clean data; its fresh draws judged 0.5 points higher
    # (judge_shift) give |z| > BALANCE_Z and a CAUTION naming the fresh draws
    clean = _analyze("baseline", 20261207)["A"]
    assert clean.status == "OK" and abs(clean.diagnostics["fresh_score_z"]) < BALANCE_Z
    shifted = _analyze("judge_shift", 20261207 + 1000 * list(study.CELLS).index("judge_shift"))["A"]
    assert abs(shifted.diagnostics["fresh_score_z"]) > BALANCE_Z
    assert shifted.diagnostics["fresh_score_shift"] > 0  # judged higher
    assert shifted.status == "CAUTION"
    assert any("fresh draws score higher" in r for r in shifted.reasons)


def test_out_of_core_gives_the_same_balance(tmp_path) -> None:
    pytest.importorskip("polars")
    logged, fresh = study.make_data(20261207 + 1000 * list(study.CELLS).index("stale"),
                                    study.CELLS["stale"])
    logged.to_parquet(tmp_path / "logged.parquet")
    kw = dict(fresh_draws=fresh, estimator="stacked-dr", judge_scale=(0, 10), label_scale=(0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = cje.analyze(logged, **kw)
        ooc = cje.analyze(str(tmp_path / "logged.parquet"), engine="polars", **kw)
    for name in ("A", "B"):
        a, b = mem[name], ooc[name]
        assert b.diagnostics["fresh_score_z"] == pytest.approx(a.diagnostics["fresh_score_z"],
                                                               rel=1e-9)
        assert b.status == a.status and b.reasons == a.reasons
