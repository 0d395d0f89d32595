"""Logged rows a target leaves out for a missing log-probability caution its value when they
could move it and look unlike the kept rows (excluded_rows_gate).

Found by probing: 300 of 2,000 logged rows without ``logprob[mild]`` (the best-scored responses,
as when scoring failed on long answers) moved SNIPS' ``mild`` from the truth 0.548 to 0.487. The
rows were counted in the diagnostics only; whether the status said so depended on the mean-weight
gate happening to fire, with a reason about weight tails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.diagnostics.gates import EXCLUDED_SHIFT_SE, excluded_rows_gate, score_gap_z


@pytest.fixture(scope="module")
def sim() -> cje.synthetic.OffPolicySim:
    return cje.synthetic.make_offpolicy_eval(2000, oracle_fraction=0.2, rng=1)


def _missing(sim, k: int, informative: bool = False) -> pd.DataFrame:
    """``k`` rows without ``logprob[moderate]``: drawn among the best-scored 40% (informative), or
    every ``2000 // k``-th row (unrelated to the response: missing at random, without the luck of
    a random draw, whose z exceeds 2 in 5% of draws by design)."""
    lg = sim.logged.copy()
    if informative:
        pool = lg.index[lg["judge_score"] >= lg["judge_score"].quantile(0.6)]
        rows = np.random.default_rng(0).choice(pool, k, replace=False)
    else:
        rows = lg.index[3::len(lg) // k][:k]
    lg.loc[rows, "logprob[moderate]"] = np.nan
    return lg


def _kw(sim, est: str = "snips") -> dict:
    return {"estimator": est, "judge_scale": sim.judge_scale, "label_scale": sim.label_scale,
            **({"fresh_draws": sim.fresh} if est == "stacked-dr" else {})}


@pytest.mark.parametrize("est", ["snips", "stacked-dr"])
def test_informative_missing_log_probabilities_are_not_ok(sim, est) -> None:
    rep = cje.analyze(_missing(sim, 300, informative=True), **_kw(sim, est))
    e = rep["moderate"]
    assert e.n == 1700 and e.status != "OK" and e.diagnostics["missing_score_z"] > 10
    why = next(r for r in e.reasons if "left out" in r)
    assert why.startswith("300 of its 2000 logged rows (15%) have no log-probability under it and are "
                          "left out, and their judge scores are higher than the kept rows'")
    assert rep["mild"].status == cje.analyze(sim.logged, **_kw(sim, est))["mild"].status  # others untouched


@pytest.mark.parametrize("k", [3, 300])
def test_rows_missing_at_random_stay_ok(sim, k) -> None:
    # 3 rows cannot matter (0.15% of the range, under half the SE); 300 rows missing at random
    # (15%) leave the value unbiased and their scores like the rest
    e = cje.analyze(_missing(sim, k), **_kw(sim))["moderate"]
    assert e.n == 2000 - k and e.status == "OK" and not any("left out" in r for r in e.reasons)
    assert abs(e.diagnostics["missing_score_z"]) < 2


def test_the_gate_by_hand() -> None:
    # k of n + k rows left out: CAUTION exactly when k / (n + k) > EXCLUDED_SHIFT_SE * se and
    # |z| > MISSING_SCORE_Z
    se = 0.01
    k_max = int(EXCLUDED_SHIFT_SE * se * 10_000)  # 50 of 10,000 is exactly at the threshold
    d = {"n_excluded": k_max, "excluded_missing_log-probability": k_max, "missing_score_z": 5.0}
    assert excluded_rows_gate(d, 10_000 - k_max, se) == ("OK", None)
    d = {**d, "n_excluded": k_max + 1, "excluded_missing_log-probability": k_max + 1}
    assert excluded_rows_gate(d, 10_000 - k_max - 1, se)[0] == "CAUTION"
    assert excluded_rows_gate({**d, "missing_score_z": 2.9}, 10_000 - k_max - 1, se) == ("OK", None)
    assert excluded_rows_gate({**d, "missing_score_z": -3.1}, 10_000 - k_max - 1, se)[0] == "CAUTION"
    # under missing at random the z is calibrated: over 2,000 random masks of 300 of the 2,000
    # logged scores, P(|z| > 2) = 0.0455 within 3 MC SE (0.0047)
    s = cje.synthetic.make_offpolicy_eval(2000, oracle_fraction=0.2, rng=1).logged["judge_score"].to_numpy()
    rng = np.random.default_rng(1)
    zs = []
    for _ in range(2000):
        m = np.zeros(s.size, bool)
        m[rng.choice(s.size, 300, replace=False)] = True
        zs.append(score_gap_z(300, s[m].sum(), s[m] @ s[m], 1700, s[~m].sum(), s[~m] @ s[~m]))
    assert abs(np.mean(np.abs(zs) > 2) - 0.0455) < 3 * 0.0047
    # Welch's z from sums against scipy
    from scipy import stats

    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 1, 40), rng.normal(0, 2, 70)
    z = score_gap_z(a.size, a.sum(), a @ a, b.size, b.sum(), b @ b)
    assert z == pytest.approx(stats.ttest_ind(a, b, equal_var=False).statistic, rel=1e-12)


def test_out_of_core_says_the_same(sim, tmp_path: Path) -> None:
    lg = _missing(sim, 300, informative=True)
    lg.to_parquet(tmp_path / "logged.parquet")
    a = cje.analyze(lg, **_kw(sim))["moderate"]
    b = cje.analyze(tmp_path / "logged.parquet", engine="polars", **_kw(sim))["moderate"]
    assert a.status == b.status == "CAUTION" and a.reasons == b.reasons
    assert a.diagnostics["missing_score_z"] == pytest.approx(b.diagnostics["missing_score_z"], rel=1e-9)
