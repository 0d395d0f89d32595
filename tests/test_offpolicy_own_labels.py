"""The off-policy residual term's part on the labelled rows gets the labelled prompts' small-sample
factor and degrees of freedom, as a direct policy's own labels do (docs: Off-policy › SIMCal-W;
``simulations/results/independent_clusters.md``, Wrong OK 1).

Data: a few prompts hold many logged draws and labels are given per prompt, so the residual term
rests on the few big labelled prompts. The logging policy's on-policy level is the direct
estimator on its own rows: the off-policy analysis must give it exactly the level, standard error
and degrees of freedom that the direct analysis of the same rows gives (before the change its
residual part kept the G/(G − 1) of all 60 prompts and G − 1-based degrees of freedom)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.estimators.offpolicy import OffPolicyRows, calibrated_ips, own_residual_part, snips

SCALES = dict(judge_scale=(0, 10), label_scale=(1, 5))


def _logged(seed: int) -> pd.DataFrame:
    """60 prompts, 3 of them with 30 logged draws and the rest 1; the labels of 15 prompts (two big
    ones among them), every row of a labelled prompt; a prompt effect shared by judge and label."""
    rng = np.random.default_rng(seed)
    sizes = np.r_[np.full(3, 30), np.ones(57, dtype=int)]
    pid = np.repeat(np.arange(60), sizes)
    u = rng.normal(0, 1, 60)[pid]  # prompt effect
    q = u + rng.normal(0, 1, pid.size)
    s = np.clip(np.round(5 + 1.5 * q + rng.normal(0, 1, pid.size)), 0, 10)
    y = np.clip(np.round(3 + 0.8 * q + 0.6 * rng.normal(0, 1, 60)[pid]), 1, 5).astype(float)
    labelled_prompts = np.r_[[0, 1], np.arange(3, 16)]
    y[~np.isin(pid, labelled_prompts)] = np.nan
    lp_base = rng.normal(-20, 2, pid.size)
    return pd.DataFrame({"prompt_id": [f"p{g}" for g in pid], "judge_score": s, "oracle_label": y,
                         "logprob_base": lp_base, "logprob[T]": lp_base + 0.3 * (s - 5) / 5,
                         "policy": "base"})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logging_level_equals_the_direct_level_of_its_rows(seed: int) -> None:
    logged = _logged(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        off = cje.analyze(logged, estimator="calibrated-ips", **SCALES)["base"]
        direct = cje.analyze(logged.drop(columns=["logprob_base", "logprob[T]"]), **SCALES)["base"]
    # same rows, labels, folds and calibration: the same estimator, bit for bit up to rounding
    assert off.estimate == pytest.approx(direct.estimate, rel=1e-12)
    assert off.var_cal == pytest.approx(direct.var_cal, rel=1e-9)
    assert off.var_if == pytest.approx(direct.var_if, rel=1e-9)
    assert off.df == pytest.approx(direct.df, rel=1e-9)


def test_out_of_core_engine_gives_the_same_levels(tmp_path) -> None:
    pytest.importorskip("polars")
    logged = _logged(0)
    path = tmp_path / "logged.parquet"
    logged.to_parquet(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = cje.analyze(logged, estimator="snips", **SCALES)
        ooc = cje.analyze(str(path), engine="polars", estimator="snips", **SCALES)
    for name in ("base", "T"):
        a, b = mem[name], ooc[name]
        for field in ("estimate", "se", "df", "var_if"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-9), (name, field)
    (ca,), (cb,) = mem.pairs, ooc.pairs
    assert cb.se == pytest.approx(ca.se, rel=1e-9) and cb.df == pytest.approx(ca.df, rel=1e-9)


def test_own_part_is_the_labelled_rows_share_of_the_residual_influence() -> None:
    # On the labelled rows the residual term's influence is the part plus what the weights'
    # and the labelled share's randomness add; summed over the labelled rows the part is zero
    rng = np.random.default_rng(4)
    n = 40
    lab = rng.random(n) < 0.4
    e = np.where(lab, rng.normal(0, 0.2, n), 0.0)
    w = rng.lognormal(0, 0.5, n)
    w = w / w.mean()
    rows = OffPolicyRows(reward=rng.random(n), residual=e, labelled=lab, weights=w,
                         stable=np.full(n, 1.0))
    m = int(lab.sum())
    by_hand = (n / m) * (w[lab] * e[lab] - np.mean(w[lab] * e[lab]))
    np.testing.assert_allclose(own_residual_part(w, rows), by_hand, rtol=1e-12)
    assert abs(by_hand.sum()) < 1e-12
    np.testing.assert_allclose(snips(rows).own_part, by_hand, rtol=1e-12)
    np.testing.assert_allclose(calibrated_ips(rows).own_part, by_hand, rtol=1e-12)
    # stabilised residual weights: the part uses them
    stable = calibrated_ips(rows, stable_residual=True).own_part
    np.testing.assert_allclose(stable, (n / m) * (e[lab] - e[lab].mean()), rtol=1e-12)
