"""AutoCal-R against scikit-learn, mean preservation, fold invariance and mode selection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.isotonic import IsotonicRegression

import cje
from cje.calibration import RewardCalibrator, fit_isotonic


def _data(n: int, seed: int, grid: float | None = 0.05):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0, 1, n)
    if grid:
        s = np.round(s / grid) * grid  # heavy ties, like real judges
    y = np.clip(s**2 + rng.normal(0, 0.2, n), 0, 1)
    return s, y


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("grid", [None, 0.05, 0.25])
def test_isotonic_equals_sklearn(seed, grid):
    s, y = _data(300, seed, grid)
    ours = fit_isotonic(s, y)
    ref = IsotonicRegression(increasing=True, out_of_bounds="clip", y_min=0, y_max=1).fit(s, y)
    q = np.linspace(-0.5, 1.5, 2001)
    np.testing.assert_allclose(ours(q), ref.predict(q), atol=1e-12)
    np.testing.assert_allclose(ours(s), ref.predict(s), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10), st.floats(0, 1, allow_nan=False)), min_size=2, max_size=60
    )
)
def test_isotonic_equals_sklearn_property(pairs):
    s = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs])
    ref = IsotonicRegression(out_of_bounds="clip").fit(s, y)
    q = np.linspace(-1, 11, 97)
    np.testing.assert_allclose(fit_isotonic(s, y)(q), ref.predict(q), atol=1e-9)


@pytest.mark.parametrize("mode", ["monotone", "two_stage"])
def test_slice_mean_preserved_exactly(mode):
    s, y = _data(500, 3)
    cal = RewardCalibrator(mode=mode).fit(s, y)
    fitted = cal.predict(s)
    assert fitted.mean() == pytest.approx(y.mean(), abs=1e-12)
    # and in every fold-deleted fit, on the labels that fit used
    for k, c in enumerate(cal.jackknife()):
        used = cal.folds_ != k
        assert c.predict(s[used]).mean() == pytest.approx(y[used].mean(), abs=1e-12)


def test_oof_never_uses_own_fold():
    """An out-of-fold prediction must not change when the row's own label changes."""
    s, y = _data(200, 4)
    folds = np.arange(200) % 5
    a = RewardCalibrator(mode="monotone").fit(s, y, folds=folds).predict_oof()
    y2 = y.copy()
    y2[folds == 2] = 1 - y2[folds == 2]
    b = RewardCalibrator(mode="monotone").fit(s, y2, folds=folds).predict_oof()
    np.testing.assert_array_equal(a[folds == 2], b[folds == 2])
    assert not np.allclose(a[folds != 2], b[folds != 2])


def test_folds_identical_under_row_shuffling():
    sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.2, rng=5)
    df = sim.data
    shuffled = df.sample(frac=1.0, random_state=11).reset_index(drop=True)
    out = []
    for frame in (df, shuffled):
        d = cje.load(frame, judge_scale=(0, 10), label_scale=(1, 5))
        lab = np.zeros(d.prompts.size, bool)
        lab[d.prompt_code[d.labelled]] = True
        f = cje.prompt_folds(d.prompts, lab, 5)
        out.append(dict(zip(d.prompts.tolist(), f.tolist(), strict=True)))
    assert out[0] == out[1]
    counts = np.bincount([out[0][p] for p in set(df.prompt_id[df.oracle_label.notna()])])
    assert counts.max() - counts.min() <= 1
    # and the whole analysis is unchanged
    r1 = cje.analyze(df, judge_scale=(0, 10), label_scale=(1, 5))
    r2 = cje.analyze(shuffled, judge_scale=(0, 10), label_scale=(1, 5))
    for a, b in zip(r1.estimates, r2.estimates, strict=True):
        assert a.estimate == pytest.approx(b.estimate, abs=1e-12)
        assert a.se == pytest.approx(b.se, rel=1e-9)


def test_two_stage_uses_covariate_and_predict_needs_it():
    rng = np.random.default_rng(0)
    n = 600
    s = rng.uniform(0, 1, n)
    z = rng.normal(size=n)
    y = np.clip(0.6 * s + 0.15 * z + 0.3 + rng.normal(0, 0.05, n), 0, 1)
    cal = RewardCalibrator(mode="auto").fit(s, y, covariates=z)
    assert cal.mode_ == "two_stage"
    assert cal.selection_["mse_two_stage"] < cal.selection_["mse_monotone"]
    hi = cal.predict(np.array([0.5]), np.array([[2.0]]))[0]
    lo = cal.predict(np.array([0.5]), np.array([[-2.0]]))[0]
    assert hi - lo > 0.3


def test_monotone_with_covariates_is_an_error():
    s, y = _data(50, 0)
    with pytest.raises(cje.CJEInputError, match="mode='monotone'"):
        RewardCalibrator(mode="monotone").fit(s, y, covariates=np.ones(50))


def test_constant_fit_warns():
    rng = np.random.default_rng(1)
    s = rng.uniform(0, 1, 200)
    y = 1 - s + rng.normal(0, 0.01, 200)  # anti-correlated judge
    with pytest.warns(cje.CJEWarning, match="collapsed"):
        cal = RewardCalibrator(mode="monotone").fit(s, y)
    assert cal.is_constant_


def test_rank_correlation_matches_scipy():
    from scipy.stats import spearmanr

    from cje.calibration.reward import rank_correlation

    rng = np.random.default_rng(4)
    for _ in range(20):  # coarse grids: many ties, which take average ranks
        x = rng.integers(0, 5, 60).astype(float)
        y = x * rng.choice([-1.0, 0.0, 1.0]) + rng.integers(0, 3, 60)
        assert rank_correlation(x, y) == pytest.approx(spearmanr(x, y).statistic, abs=1e-12)
    assert rank_correlation(np.ones(5), np.arange(5.0)) == 0.0


def _judged(kind, n=600, seed=0):
    """Binary labels Y ~ Bernoulli(q); the judge on 1–10 rises with q (good), falls with it
    (backwards) or ignores it (null); 30% of rows labelled."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    q = rng.uniform(size=n)
    base = {"backwards": 10 - 9 * q, "good": 1 + 9 * q, "null": rng.uniform(1, 10, n)}[kind]
    s = np.clip(np.round(base + rng.normal(0, 1, n)), 1, 10)
    y = (rng.uniform(size=n) < q).astype(float)
    return pd.DataFrame({"prompt_id": np.arange(n), "policy": np.repeat(["A", "B"], n // 2),
                         "judge_score": s,
                         "oracle_label": np.where(rng.uniform(size=n) < 0.3, y, np.nan)})


@pytest.mark.parametrize("mode", ["auto", "monotone"])
def test_a_judge_that_ranks_backwards_is_warned_about(mode):
    # the two-stage map can learn a decreasing score, the monotone one collapses: either way the
    # user is told the judge ranks backwards (its levels may be fine: they rest on the labels)
    rep = cje.analyze(_judged("backwards"), judge_scale=(1, 10), mode=mode)
    said = [w for w in rep.warnings if "ranks the labels backwards" in w]
    assert len(said) == 1 and "Spearman" in said[0]
    assert ("collapsed" in said[0]) == (mode == "monotone")
    assert not any(w.startswith("The calibration collapsed") for w in rep.warnings)  # said once
    for kind in ("good", "null"):
        rep = cje.analyze(_judged(kind), judge_scale=(1, 10), mode=mode)
        assert not any("backwards" in w for w in rep.warnings), kind


def test_reliability_table_counts_and_means():
    s, y = _data(400, 2)
    cal = RewardCalibrator(mode="monotone").fit(s, y)
    tab = cal.reliability_table(n_bins=5)
    assert tab["n"].sum() == 400
    # bins partition the labelled rows, so count-weighted means recover the overall mean
    assert np.average(tab["mean_label"], weights=tab["n"]) == pytest.approx(y.mean())
    assert np.average(tab["mean_calibrated"], weights=tab["n"]) == pytest.approx(y.mean())


def _length_biased(seed: int, n: int, bias: float):
    """Judge sees quality plus ``bias`` x length; oracle does not care about length."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=n)
    z = rng.normal(size=n)
    y = 1 / (1 + np.exp(-q))
    s = np.clip(np.round(10 * (1 / (1 + np.exp(-(q + bias * z + rng.normal(0, 0.3, n)))))), 0, 10)
    return s, y + rng.normal(0, 0.05, n), z


def _two_stage_rate(bias: float, reps: int, n: int = 1000) -> float:
    chosen = 0
    for r in range(reps):
        s, y, z = _length_biased(100 + r, n, bias)
        lab = np.random.default_rng(r).random(n) < 0.25
        cal = RewardCalibrator(mode="auto").fit(s[lab], y[lab], covariates=z[lab])
        chosen += cal.mode_ == "two_stage"
    return chosen / reps


def test_auto_mode_selection_rates_fast():
    # 40 replicates each: with a true rate of 2% on monotone data, 40 draws give <= 4 two-stage
    # picks with probability > 0.999; with a true rate of 95% under bias, >= 32 of 40 likewise.
    assert _two_stage_rate(0.0, 40) <= 0.10
    assert _two_stage_rate(1.0, 40) >= 0.80


@pytest.mark.slow
def test_auto_mode_selection_rates_slow():
    # METHODS §2.4 targets with 300 replicates (binomial SE ~0.013 at 5%, ~0.023 at 80%).
    assert _two_stage_rate(0.0, 300) <= 0.05
    assert _two_stage_rate(1.0, 300) >= 0.80


@pytest.mark.parametrize("seed", range(3))
def test_ridge_gcv_equals_sklearn_ridgecv(seed):
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import SplineTransformer

    from cje.calibration.reward import _RIDGE_ALPHAS, ridge_gcv

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(500, 2))
    y = np.sin(X[:, 0]) + 0.1 * X[:, 1] + rng.normal(0, 0.3 + seed, 500)
    B = np.hstack([SplineTransformer(n_knots=6).fit_transform(X[:, [j]]) for j in range(2)])
    ref = RidgeCV(alphas=_RIDGE_ALPHAS).fit(B, y)
    coef, b0, alpha = ridge_gcv(B, y)
    assert alpha == pytest.approx(ref.alpha_)
    np.testing.assert_allclose(coef, ref.coef_, atol=1e-8)
    assert b0 == pytest.approx(ref.intercept_, abs=1e-8)


def test_auto_without_covariates_detects_a_non_monotone_judge():
    # the label peaks at mid scores (a judge that rewards extremes wrongly): two-stage on S wins
    rng = np.random.default_rng(3)
    s = rng.uniform(0, 1, 800)
    y = np.clip(1 - 4 * (s - 0.5) ** 2 + rng.normal(0, 0.1, 800), 0, 1)
    cal = RewardCalibrator(mode="auto").fit(s, y)
    assert cal.mode_ == "two_stage"
    assert cal.selection_["mse_two_stage"] < cal.selection_["mse_monotone"]
    # and on a monotone judge the score-only index is monotone, so the comparison is skipped
    mono = RewardCalibrator(mode="auto").fit(s, np.clip(s + rng.normal(0, 0.1, 800), 0, 1))
    assert mono.mode_ == "monotone"
    assert mono.selection_ == {"index_monotone_in_score": 1.0}


def test_two_stage_basis_survives_subnormal_spacing():
    """Found by the long fuzz run: judge scores 0 and 2.2e-308 made spline breakpoints so close
    that the basis overflowed to NaN and the ridge fit raised LinAlgError. Such a column is
    constant for the spline (and breakpoints within 1e-10 of the magnitude are one)."""
    from cje.calibration.reward import _SplineBasis

    tiny = 2.2250738585072014e-308
    x = np.array([[0.0], [0.0], [tiny], [tiny]])  # quantile breakpoints 0, 5.6e-309, 2.2e-308
    assert np.isfinite(_SplineBasis(x, 5)(x)).all()
    cal = RewardCalibrator(mode="auto").fit(
        np.array([0.0, tiny, 0.0, tiny, 0.0, tiny, 0.0, tiny]),
        np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0]), prompt_id=np.arange(8))
    assert cal.mode_ in ("monotone", "two_stage")
