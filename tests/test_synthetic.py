"""Tests for the synthetic direct-evaluation DGP (cje.synthetic)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

from cje.synthetic import (
    QUALITY_NOISE,
    QUALITY_SLOPE,
    PolicySpec,
    SyntheticEval,
    default_policies,
    judge_link,
    make_direct_eval,
    true_value,
)

# Tolerance convention: statistical checks use 4 standard errors. Under a correct implementation a
# single 4-SE check fails with probability ~6e-5 (normal approximation), so the suite is not flaky,
# while a systematic error of a few SE (e.g. a wrong variance in the truth formula) is caught.
# All seeds are fixed, so the outcome is deterministic anyway.
Z_TOL = 4.0


@pytest.fixture(scope="module")
def big_eval() -> SyntheticEval:
    # Every row labelled so the label means can be compared to the truth.
    return make_direct_eval(20_000, oracle_fraction=1.0, rng=12345)


def test_schema_and_shape() -> None:
    ev = make_direct_eval(30, draws_per_prompt=3, rng=0)
    d = ev.data
    assert list(d.columns) == [
        "prompt_id",
        "policy",
        "draw_idx",
        "judge_score",
        "oracle_label",
        "response_length",
    ]
    assert len(d) == 30 * 3 * len(default_policies())
    assert d["prompt_id"].iloc[0] == "p00000"
    assert d["prompt_id"].str.fullmatch(r"p\d{5}").all()
    assert d["prompt_id"].nunique() == 30
    assert set(d["draw_idx"]) == {0, 1, 2}
    assert d.groupby(["prompt_id", "policy", "draw_idx"]).size().eq(1).all()
    assert pd.api.types.is_integer_dtype(d["draw_idx"])
    assert pd.api.types.is_integer_dtype(d["response_length"])
    assert pd.api.types.is_float_dtype(d["judge_score"])
    assert pd.api.types.is_float_dtype(d["oracle_label"])
    assert (d["response_length"] >= 1).all()
    assert ev.judge_scale == (0.0, 10.0) and ev.label_scale == (1.0, 5.0)
    assert set(ev.truth) == {p.name for p in default_policies()}
    assert isinstance(ev.description, str) and "verbose" in ev.description


def test_same_seed_identical_different_seed_differs() -> None:
    a = make_direct_eval(200, draws_per_prompt=2, rng=7)
    b = make_direct_eval(200, draws_per_prompt=2, rng=7)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.truth == b.truth and a.description == b.description
    c = make_direct_eval(200, draws_per_prompt=2, rng=8)
    assert not a.data["judge_score"].equals(c.data["judge_score"])
    assert not a.data["oracle_label"].equals(c.data["oracle_label"])
    # A Generator is accepted and consumed (no global state is used).
    g = np.random.default_rng(7)
    pd.testing.assert_frame_equal(make_direct_eval(200, draws_per_prompt=2, rng=g).data, a.data)


def test_truth_matches_large_monte_carlo() -> None:
    # Y01 = sigmoid(a*(mu - d) + eps) with d ~ N(0,1), eps ~ N(0, sigma^2), simulated directly
    # (not through the 1-D reduction used by true_value); within 4 Monte Carlo SEs (see Z_TOL).
    rng = np.random.default_rng(2024)
    n = 1_000_000
    d = rng.standard_normal(n)
    eps = QUALITY_NOISE * rng.standard_normal(n)
    for mu in (-0.4, 0.0, 0.3, 1.5):
        y = 1.0 + 4.0 * expit(QUALITY_SLOPE * (mu - d) + eps)
        se = y.std(ddof=1) / math.sqrt(n)
        assert abs(y.mean() - true_value(mu)) < Z_TOL * se


def test_truth_is_exact_quadrature() -> None:
    # Symmetry: E[sigmoid(s W)] = 1/2 exactly, and V(mu) + V(-mu) = lo + hi.
    assert true_value(0.0) == pytest.approx(3.0, abs=1e-12)
    assert true_value(0.7) + true_value(-0.7) == pytest.approx(6.0, abs=1e-12)
    # Independent Gauss-Hermite reference with many nodes.
    x, w = np.polynomial.hermite_e.hermegauss(200)
    s = math.hypot(QUALITY_SLOPE, QUALITY_NOISE)
    for mu in (-2.0, -0.4, 0.3, 3.0):
        ref = (w * expit(QUALITY_SLOPE * mu + s * x)).sum() / math.sqrt(2 * math.pi)
        assert true_value(mu, label_scale=(0.0, 1.0)) == pytest.approx(ref, abs=1e-10)
    # Degenerate case: no randomness at all.
    assert true_value(0.5, quality_slope=0.0, quality_noise=0.0) == pytest.approx(3.0)


def test_label_means_match_truth(big_eval: SyntheticEval) -> None:
    # With one draw per prompt and independent prompts, rows of a policy are i.i.d.
    for policy, grp in big_eval.data.groupby("policy"):
        y = grp["oracle_label"].to_numpy()
        assert not np.isnan(y).any()
        se = y.std(ddof=1) / math.sqrt(len(y))
        assert abs(y.mean() - big_eval.truth[policy]) < Z_TOL * se, policy


def test_ranges_and_grid(big_eval: SyntheticEval) -> None:
    s = big_eval.data["judge_score"].to_numpy()
    assert s.min() >= 0.0 and s.max() <= 10.0
    assert np.allclose(s, np.round(s))
    y = big_eval.data["oracle_label"].dropna().to_numpy()
    assert y.min() >= 1.0 and y.max() <= 5.0
    # Odd scale and fine grid.
    ev = make_direct_eval(
        300, judge_scale=(0.0, 1.0), judge_grid=0.05, label_scale=(0.0, 100.0), rng=3
    )
    s = ev.data["judge_score"].to_numpy()
    assert s.min() >= 0.0 and s.max() <= 1.0
    k = s / 0.05
    assert np.allclose(k, np.round(k), atol=1e-9)
    assert ev.data["oracle_label"].dropna().between(0.0, 100.0).all()
    # Continuous judge: no grid, many distinct values.
    ev = make_direct_eval(300, judge_grid=None, rng=3)
    inside = ev.data["judge_score"].between(0.0, 10.0, inclusive="neither")
    assert ev.data.loc[inside, "judge_score"].nunique() == inside.sum()


@pytest.mark.parametrize("frac", [0.05, 0.1, 0.5])
def test_oracle_fraction(frac: float) -> None:
    ev = make_direct_eval(2000, oracle_fraction=frac, rng=11)
    n = len(ev.data)
    observed = ev.data["oracle_label"].notna().mean()
    se = math.sqrt(frac * (1 - frac) / n)  # binomial SE of the labelled share
    assert abs(observed - frac) < Z_TOL * se


def test_oracle_fraction_one_labels_everything() -> None:
    ev = make_direct_eval(50, oracle_fraction=1.0, rng=0)
    assert ev.data["oracle_label"].notna().all()


def test_verbose_fools_the_naive_judge() -> None:
    ev = make_direct_eval(2000, rng=5)
    naive = ev.data.groupby("policy")["judge_score"].mean()
    assert naive["verbose"] > naive["improved"]
    assert ev.truth["verbose"] < ev.truth["base"] < ev.truth["improved"]
    assert ev.data.groupby("policy")["response_length"].median()["verbose"] > 200


def test_judge_is_informative_but_miscalibrated(big_eval: SyntheticEval) -> None:
    d = big_eval.data
    rho = stats.spearmanr(d["judge_score"], d["oracle_label"])[0]
    assert rho > 0.5
    # Rescale the raw judge mean to the label scale: it misses the truth badly.
    rescaled = 1.0 + 4.0 * d.groupby("policy")["judge_score"].mean() / 10.0
    gaps = {p: abs(rescaled[p] - big_eval.truth[p]) for p in big_eval.truth}
    assert max(gaps.values()) > 0.1


@pytest.mark.parametrize(("judge", "nonlinear"), [("miscalibrated", True), ("calibrated", False)])
def test_judge_curve_shape(judge: str, nonlinear: bool) -> None:
    # E[S | Y] by oracle-label decile, honest policies only (so the planted bonus plays no role):
    # the S-curve judge is far from a straight line, the calibrated one is close to it.
    honest = [p for p in default_policies() if p.judge_bonus == 0.0]
    d = make_direct_eval(20_000, honest, judge=judge, oracle_fraction=1.0, rng=12345).data
    decile = pd.qcut(d["oracle_label"], 10, labels=False)
    x = d.groupby(decile)["oracle_label"].mean().to_numpy()
    y = d.groupby(decile)["judge_score"].mean().to_numpy()
    slope, intercept = np.polyfit(x, y, 1)
    max_resid = np.abs(y - (slope * x + intercept)).max()  # judge points (0-10 scale)
    assert slope > 0
    if nonlinear:
        assert max_resid > 0.75
    else:
        assert max_resid < 0.3


def test_calibrated_judge_is_roughly_unbiased() -> None:
    honest = [p for p in default_policies() if p.judge_bonus == 0.0]
    ev = make_direct_eval(20_000, honest, judge="calibrated", rng=9)
    rescaled = 1.0 + 4.0 * ev.data.groupby("policy")["judge_score"].mean() / 10.0
    for p in honest:
        # Only clipping at the scale ends and rounding separate it from the truth.
        assert abs(rescaled[p.name] - ev.truth[p.name]) < 0.1


def test_length_effect_moves_judge_not_truth() -> None:
    pols = [PolicySpec("short", 0.0, length_mean=-1.0), PolicySpec("long", 0.0, length_mean=1.0)]
    ev0 = make_direct_eval(3000, pols, rng=4)
    ev1 = make_direct_eval(3000, pols, length_effect=0.2, rng=4)
    assert ev0.truth == ev1.truth
    m1 = ev1.data.groupby("policy")["judge_score"].mean()
    assert m1["long"] - m1["short"] > 1.0
    pd.testing.assert_series_equal(ev0.data["oracle_label"], ev1.data["oracle_label"])


def test_judge_link_monotone() -> None:
    y = np.linspace(0, 1, 101)
    for kind in ("miscalibrated", "calibrated"):
        h = judge_link(y, kind)
        assert np.all(np.diff(h) > 0)
        assert h[0] == pytest.approx(0.0) and h[-1] == pytest.approx(1.0)


def test_default_policies() -> None:
    pols = default_policies()
    assert [p.name for p in pols] == ["base", "improved", "small", "verbose", "concise"]
    assert all(isinstance(p, PolicySpec) for p in pols)
    with pytest.raises(AttributeError):
        pols[0].quality = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_prompts": 0}, "n_prompts"),
        ({"n_prompts": 2.5}, "n_prompts"),
        ({"draws_per_prompt": 0}, "draws_per_prompt"),
        ({"oracle_fraction": 0.0}, "oracle_fraction"),
        ({"oracle_fraction": 1.5}, "oracle_fraction"),
        ({"oracle_fraction": float("nan")}, "oracle_fraction"),
        ({"judge": "weird"}, "judge"),
        ({"judge_noise": -1.0}, "judge_noise"),
        ({"judge_scale": (5.0, 5.0)}, "judge_scale"),
        ({"judge_scale": (0.0,)}, "judge_scale"),
        ({"label_scale": (5.0, 1.0)}, "label_scale"),
        ({"judge_grid": 0.0}, "judge_grid"),
        ({"judge_grid": 20.0}, "judge_grid"),
        ({"length_effect": float("inf")}, "length_effect"),
        ({"policies": []}, "policies"),
        ({"policies": [PolicySpec("a", 0.0), PolicySpec("a", 1.0)]}, "unique"),
        ({"policies": ["a"]}, "PolicySpec"),
    ],
)
def test_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_direct_eval(**{"n_prompts": 10, **kwargs})


def test_policy_spec_validation() -> None:
    with pytest.raises(ValueError, match="name"):
        PolicySpec("", 0.0)
    with pytest.raises(ValueError, match="quality"):
        PolicySpec("a", float("nan"))
    with pytest.raises(ValueError, match="judge_bonus"):
        PolicySpec("a", 0.0, judge_bonus="big")  # type: ignore[arg-type]
