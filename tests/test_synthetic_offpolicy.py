"""Tests for the synthetic off-policy DGP (cje.synthetic.offpolicy)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.special import expit

import cje
from cje.errors import CJEInputError
from cje.synthetic import (
    DEFAULT_TARGET_ESS,
    OffPolicySim,
    default_targets,
    judge_link,
    make_offpolicy_eval,
    offpolicy_true_value,
    theta_for_ess,
)

# Tolerance convention (as in test_synthetic.py): statistical checks use 4 standard errors, so a
# correct implementation fails a single check with probability ~6e-5 (normal approximation) while
# a systematic error of a few SE is caught. All seeds are fixed, so outcomes are deterministic.
Z_TOL = 4.0
TARGETS = ("mild", "moderate", "far")


@pytest.fixture(scope="module")
def big() -> OffPolicySim:
    # Every logged row labelled, no fresh draws: for the weight and IPS checks.
    return make_offpolicy_eval(200_000, oracle_fraction=1.0, n_fresh_per_prompt=0, rng=20240)


@pytest.fixture(scope="module")
def fresh_sim() -> OffPolicySim:
    # Two fresh draws per (prompt, policy), all labelled: for the fresh-draw truth check.
    return make_offpolicy_eval(
        100_000, oracle_fraction=0.0, n_fresh_per_prompt=2, fresh_oracle_fraction=1.0, rng=777
    )


def _log_weight(sim: OffPolicySim, target: str) -> np.ndarray:
    lg = sim.logged
    return (lg[f"logprob[{target}]"] - lg["logprob_base"]).to_numpy()


# ---------------------------------------------------------------------------- schema


def test_schema_and_shapes() -> None:
    sim = make_offpolicy_eval(30, n_fresh_per_prompt=3, fresh_oracle_fraction=0.5, rng=0)
    lg, fr = sim.logged, sim.fresh
    assert list(lg.columns) == [
        "prompt_id",
        "policy",
        "judge_score",
        "oracle_label",
        "logprob_base",
        "logprob[mild]",
        "logprob[moderate]",
        "logprob[far]",
    ]
    assert "u" not in lg.columns  # the feature stays hidden from estimators
    assert list(fr.columns) == ["prompt_id", "policy", "draw_idx", "judge_score", "oracle_label"]
    assert len(lg) == 30 and lg["prompt_id"].is_unique
    assert lg["prompt_id"].iloc[0] == "p00000" and lg["prompt_id"].iloc[-1] == "p00029"
    assert lg["prompt_id"].str.fullmatch(r"p\d{5}").all()
    assert set(lg["policy"]) == {"base"}
    assert len(fr) == 30 * 3 * 4
    assert list(fr["policy"].unique()) == ["base", *TARGETS]
    assert set(fr["prompt_id"]) == set(lg["prompt_id"])
    assert set(fr["draw_idx"]) == {0, 1, 2}
    assert fr.groupby(["prompt_id", "policy", "draw_idx"]).size().eq(1).all()
    assert pd.api.types.is_integer_dtype(fr["draw_idx"])
    for col in ["judge_score", "oracle_label", "logprob_base", "logprob[far]"]:
        assert pd.api.types.is_float_dtype(lg[col])
    assert list(sim.truth) == ["base", *TARGETS]
    assert list(sim.thetas) == list(sim.raw_ess) == list(TARGETS)
    for name, ess in DEFAULT_TARGET_ESS.items():
        assert sim.thetas[name] == pytest.approx(math.sqrt(-math.log(ess)), rel=1e-12)
        assert sim.raw_ess[name] == pytest.approx(ess, rel=1e-12)
    assert sim.judge_scale == (0.0, 1.0) and sim.label_scale == (0.0, 1.0)
    assert "far" in sim.description and f"{sim.truth['far']:.4f}" in sim.description
    with pytest.raises(AttributeError):  # frozen
        sim.truth = {}  # type: ignore[misc]


def test_wider_prompt_ids_and_custom_targets() -> None:
    sim = make_offpolicy_eval(100_001, targets={"worse": -0.5, "better": 0.5},
                              n_fresh_per_prompt=0, rng=1)
    assert sim.logged["prompt_id"].iloc[-1] == "p100000"
    assert sim.logged["prompt_id"].str.len().eq(7).all()
    assert list(sim.truth) == ["base", "worse", "better"]
    assert sim.truth["worse"] < sim.truth["base"] < sim.truth["better"]
    assert sim.raw_ess["worse"] == sim.raw_ess["better"] == pytest.approx(math.exp(-0.25))
    assert sim.fresh.shape == (0, 5)
    assert list(sim.fresh.columns) == ["prompt_id", "policy", "draw_idx", "judge_score",
                                       "oracle_label"]


def test_logged_frame_loads_with_cje_load() -> None:
    sim = make_offpolicy_eval(200, missing_logprob_rate=0.1, rng=4)
    d = cje.load(sim.logged, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert d.policies == ("base",)
    assert set(d.logprobs) == {"base", *TARGETS}
    assert d.n_labels == int(sim.logged["oracle_label"].notna().sum())


# ---------------------------------------------------------------------------- overlap helpers


def test_theta_for_ess() -> None:
    got = [theta_for_ess(e) for e in (0.9, 0.6, 0.1, 0.01)]
    assert np.round(got, 2).tolist() == [0.32, 0.71, 1.52, 2.15]
    for e in (0.999, 0.5, 0.003):
        assert math.exp(-theta_for_ess(e) ** 2) == pytest.approx(e, rel=1e-12)
    assert theta_for_ess(1.0) == 0.0 and math.copysign(1.0, theta_for_ess(1.0)) == 1.0
    assert default_targets() == {k: theta_for_ess(v) for k, v in DEFAULT_TARGET_ESS.items()}


# ---------------------------------------------------------------------------- log-probabilities


def test_logprobs_negative_even_for_extreme_tilts() -> None:
    sim = make_offpolicy_eval(50_000, targets={"a": -6.0, "b": 0.0, "c": 6.0, "d": 25.0},
                              n_fresh_per_prompt=0, rng=5)
    lp = sim.logged.filter(like="logprob")
    assert lp.shape[1] == 5
    assert np.isfinite(lp.to_numpy()).all()
    assert (lp.to_numpy() <= 0).all()
    # The documented bound logprob[p] <= -40 - 0.45 theta^2.
    for name, th in sim.thetas.items():
        assert (lp[f"logprob[{name}]"] <= -40 - 0.45 * th**2 + 1e-9).all()


def test_log_weight_is_exact_tilt(big: OffPolicySim) -> None:
    # lambda_p = theta_p u - theta_p^2 / 2 with the same u for every target: recovering u from
    # each target's log-weight must give the same vector up to float error (log-probs are ~-50,
    # so their difference carries ~1e-13 absolute error), and logprob_base = -(40 + 5 u^2).
    us = {t: (_log_weight(big, t) + big.thetas[t] ** 2 / 2) / big.thetas[t] for t in TARGETS}
    np.testing.assert_allclose(us["mild"], us["far"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(us["moderate"], us["far"], rtol=0, atol=1e-9)
    u = us["far"]
    np.testing.assert_allclose(big.logged["logprob_base"], -(40 + 5 * u**2), rtol=1e-12)
    # Under the logging policy u ~ N(0, 1): SE of the mean 1/sqrt(n), of the variance sqrt(2/n).
    n = u.size
    assert abs(u.mean()) < Z_TOL / math.sqrt(n)
    assert abs(u.var(ddof=1) - 1) < Z_TOL * math.sqrt(2 / n)
    assert stats.kstest(u, "norm").pvalue > 1e-4


def test_weights_have_mean_one(big: OffPolicySim) -> None:
    # E_pi0[exp(lambda)] = 1 and Var = exp(theta^2) - 1 (lognormal), so the SE of the sample
    # mean is sqrt(exp(theta^2) - 1) / sqrt(n); for "far" (skewness of w ~36) the mean of 2e5
    # draws has skewness ~0.08, so the normal 4-SE band is still adequate.
    n = len(big.logged)
    for t in TARGETS:
        w = np.exp(_log_weight(big, t))
        se = math.sqrt(math.expm1(big.thetas[t] ** 2) / n)
        assert abs(w.mean() - 1) < Z_TOL * se, t


def test_empirical_ess_matches_population(big: OffPolicySim) -> None:
    # ESS_hat = mean(w)^2 / mean(w^2). With q = exp(theta^2) the lognormal moments are
    # E w = 1, E w^2 = q, E w^3 = q^3, E w^4 = q^6, so by the delta method
    # Var(ESS_hat) = g' Sigma g / n with g = (2/q, -1/q^2) and Sigma the covariance of (w, w^2).
    # That normal approximation is sound for mild and moderate (q <= 1.7); for "far" (q = 10,
    # E w^4 = 1e6) mean(w^2) is so skewed that no normal band is honest at any feasible n, so
    # "far" is checked through the exact law of its log-weight below.
    n = len(big.logged)
    for t in ("mild", "moderate"):
        q = math.exp(big.thetas[t] ** 2)
        sigma = np.array([[q - 1, q**3 - q], [q**3 - q, q**6 - q**2]])
        g = np.array([2 / q, -1 / q**2])
        se = math.sqrt(g @ sigma @ g / n)
        w = np.exp(_log_weight(big, t))
        ess = w.mean() ** 2 / np.mean(w**2)
        assert abs(ess - big.raw_ess[t]) < Z_TOL * se, (t, ess, se)
    # lambda ~ N(-theta^2/2, theta^2) exactly: mean SE theta/sqrt(n), variance SE theta^2 sqrt(2/n).
    for t in TARGETS:
        th = big.thetas[t]
        lam = _log_weight(big, t)
        assert abs(lam.mean() + th**2 / 2) < Z_TOL * th / math.sqrt(n), t
        assert abs(lam.var(ddof=1) - th**2) < Z_TOL * th**2 * math.sqrt(2 / n), t


# ---------------------------------------------------------------------------- truth


def test_truth_matches_monte_carlo() -> None:
    # Independent re-implementation of the DGP, 2e6 draws per policy; tolerance 5 MC standard
    # errors (SE = sample SD / sqrt(2e6), ~1.6e-4 on the [0, 1] scale), i.e. a false alarm
    # probability ~6e-7 per comparison while a wrong variance in the closed form (e.g. dropping
    # beta_u^2 from it) shifts the far target's value by > 50 SE.
    gen = np.random.default_rng(99)
    n = 2_000_000
    configs = [
        dict(quality_slope=1.0, feature_effect=0.8, quality_noise=0.5, label_scale=(0.0, 1.0),
             thetas=[0.0, *default_targets().values()]),
        dict(quality_slope=1.5, feature_effect=-0.5, quality_noise=0.2, label_scale=(1.0, 5.0),
             thetas=[-1.0, 0.5, 2.15]),
    ]
    for cfg in configs:
        a, beta, sigma = cfg["quality_slope"], cfg["feature_effect"], cfg["quality_noise"]
        lo, hi = cfg["label_scale"]
        for th in cfg["thetas"]:
            u = th + gen.standard_normal(n)
            d = gen.standard_normal(n)
            y = lo + (hi - lo) * expit(a * (beta * u - d) + sigma * gen.standard_normal(n))
            se = y.std(ddof=1) / math.sqrt(n)
            v = offpolicy_true_value(th, quality_slope=a, feature_effect=beta,
                                     quality_noise=sigma, label_scale=(lo, hi))
            assert abs(y.mean() - v) < 5 * se, (cfg, th, y.mean(), v, se)


def test_truth_exact_identities() -> None:
    # eta ~ N(a beta theta, s^2) and sigmoid(-x) = 1 - sigmoid(x): V(theta) + V(-theta) = lo + hi.
    for th in (0.3, 1.1, 2.5):
        assert offpolicy_true_value(th) + offpolicy_true_value(-th) == pytest.approx(1.0, abs=1e-11)
        v = offpolicy_true_value(th, label_scale=(1, 5)) + offpolicy_true_value(-th, label_scale=(1, 5))
        assert v == pytest.approx(6.0, abs=1e-10)
    assert offpolicy_true_value(0.0, label_scale=(1, 5)) == pytest.approx(3.0, abs=1e-11)
    # No feature effect: every policy is as good as the logging policy.
    sim = make_offpolicy_eval(10, feature_effect=0.0, rng=0)
    assert len({round(v, 12) for v in sim.truth.values()}) == 1
    # No randomness in quality: Y = sigmoid(0) = 1/2 for every response.
    assert offpolicy_true_value(1.7, quality_slope=0.0, quality_noise=0.0) == 0.5
    # More tilt, more value (beta_u > 0).
    sim = make_offpolicy_eval(10, rng=0)
    assert sim.truth["base"] < sim.truth["mild"] < sim.truth["moderate"] < sim.truth["far"]


def test_snips_with_true_weights_recovers_truth(big: OffPolicySim) -> None:
    # Self-normalised IPS with the exact weights on the (all observed) oracle labels. SE from
    # the delta-method influence values phi_i = w_i (Y_i - psi) / mean(w).
    y = big.logged["oracle_label"].to_numpy()
    assert not np.isnan(y).any()
    n = y.size
    se_base = y.std(ddof=1) / math.sqrt(n)
    assert abs(y.mean() - big.truth["base"]) < Z_TOL * se_base
    for t in TARGETS:
        lam = _log_weight(big, t)
        w = np.exp(lam - lam.max())
        w = w / w.mean()
        psi = float(np.mean(w * y))
        se = float(np.std(w * (y - psi), ddof=1) / math.sqrt(n))
        assert abs(psi - big.truth[t]) < Z_TOL * se, (t, psi, big.truth[t], se)
        # Power: ignoring the weights would fail this check by a wide margin.
        assert abs(y.mean() - big.truth[t]) > 3 * Z_TOL * max(se, se_base), t


def test_fresh_draw_means_recover_truth(fresh_sim: OffPolicySim) -> None:
    # Draws of one prompt share its difficulty, so the SE is clustered: SD of prompt means / sqrt(n).
    fr = fresh_sim.fresh
    assert fr["oracle_label"].notna().all()
    for pol, grp in fr.groupby("policy", sort=False):
        means = grp.groupby("prompt_id")["oracle_label"].mean()
        assert len(means) == 100_000
        se = means.std(ddof=1) / math.sqrt(len(means))
        assert abs(means.mean() - fresh_sim.truth[pol]) < Z_TOL * se, (pol, means.mean(), se)
    base = fr.loc[fr["policy"] == "base", "oracle_label"].mean()
    far = fr.loc[fr["policy"] == "far", "oracle_label"].mean()
    assert far - base > 0.15  # the tilt really moves the fresh draws (truth gap ~0.21)


# ---------------------------------------------------------------------------- masks


def test_oracle_fractions_realised() -> None:
    n = 50_000
    sim = make_offpolicy_eval(n, oracle_fraction=0.3, fresh_oracle_fraction=0.25, rng=11)
    for frame, p in ((sim.logged, 0.3), (sim.fresh, 0.25)):
        rate = frame["oracle_label"].notna().mean()
        assert abs(rate - p) < Z_TOL * math.sqrt(p * (1 - p) / len(frame)), (p, rate)
    # MCAR: being labelled is independent of the judge score (two-sample z on the means).
    lg = sim.logged
    has = lg["oracle_label"].notna()
    s_lab, s_unl = lg.loc[has, "judge_score"], lg.loc[~has, "judge_score"]
    se = math.sqrt(s_lab.var() / len(s_lab) + s_unl.var() / len(s_unl))
    assert abs(s_lab.mean() - s_unl.mean()) < Z_TOL * se
    # The fresh labels are spread over all policies.
    per_pol = sim.fresh.groupby("policy")["oracle_label"].apply(lambda s: s.notna().mean())
    assert per_pol.between(0.22, 0.28).all()
    lab = sim.logged["oracle_label"].dropna()
    assert lab.between(0.0, 1.0).all() and lab.nunique() > 1000  # continuous labels
    none = make_offpolicy_eval(500, oracle_fraction=0.0, rng=1)
    assert none.logged["oracle_label"].isna().all() and none.fresh["oracle_label"].isna().all()
    full = make_offpolicy_eval(500, oracle_fraction=1.0, fresh_oracle_fraction=1.0, rng=1)
    assert full.logged["oracle_label"].notna().all() and full.fresh["oracle_label"].notna().all()


def test_missing_logprob_rate_realised() -> None:
    n, rate = 50_000, 0.2
    sim = make_offpolicy_eval(n, missing_logprob_rate=rate, n_fresh_per_prompt=0, rng=12)
    ref = make_offpolicy_eval(n, missing_logprob_rate=0.0, n_fresh_per_prompt=0, rng=12)
    lg = sim.logged
    assert lg["logprob_base"].notna().all()
    miss = {t: lg[f"logprob[{t}]"].isna().to_numpy() for t in TARGETS}
    se = math.sqrt(rate * (1 - rate) / n)
    for t in TARGETS:
        assert abs(miss[t].mean() - rate) < Z_TOL * se, t
        # Only the masking changes: present entries equal the complete run's.
        col = f"logprob[{t}]"
        np.testing.assert_array_equal(lg[col][~miss[t]], ref.logged[col][~miss[t]])
    # Independence across targets: both missing at rate rate^2.
    p2 = rate**2
    both = (miss["mild"] & miss["far"]).mean()
    assert abs(both - p2) < Z_TOL * math.sqrt(p2 * (1 - p2) / n)
    pd.testing.assert_frame_equal(lg[["prompt_id", "judge_score", "oracle_label"]],
                                  ref.logged[["prompt_id", "judge_score", "oracle_label"]])
    assert ref.logged.filter(like="logprob[").notna().all().all()
    allmiss = make_offpolicy_eval(100, missing_logprob_rate=1.0, rng=0).logged
    assert allmiss.filter(like="logprob[").isna().all().all()
    assert allmiss["logprob_base"].notna().all()


# ---------------------------------------------------------------------------- judge


def test_judge_scores_on_grid_and_informative() -> None:
    sim = make_offpolicy_eval(20_000, oracle_fraction=1.0, fresh_oracle_fraction=1.0, rng=13)
    for frame in (sim.logged, sim.fresh):
        s = frame["judge_score"].to_numpy()
        assert ((s >= 0) & (s <= 1)).all()
        np.testing.assert_allclose(s * 20, np.rint(s * 20), atol=1e-9)  # 0.05 grid
        rho = stats.spearmanr(s, frame["oracle_label"]).statistic
        assert rho > 0.8, rho
    assert sim.logged["judge_score"].nunique() > 10
    # Other scales: judge 0-10 in integer steps, labels 1-5.
    sim = make_offpolicy_eval(2_000, oracle_fraction=1.0, judge_scale=(0, 10), judge_grid=1.0,
                              label_scale=(1, 5), rng=14)
    s = sim.logged["judge_score"]
    assert s.between(0, 10).all() and (s == np.rint(s)).all()
    assert sim.logged["oracle_label"].between(1, 5).all()
    assert sim.truth["base"] == pytest.approx(3.0, abs=1e-10)


@pytest.mark.parametrize("judge", ["miscalibrated", "calibrated"])
def test_noiseless_judge_is_monotone_in_y(judge: str) -> None:
    sim = make_offpolicy_eval(5_000, judge=judge, judge_noise=0.0, oracle_fraction=1.0,
                              fresh_oracle_fraction=1.0, rng=15)
    both = pd.concat([sim.logged[["judge_score", "oracle_label"]],
                      sim.fresh[["judge_score", "oracle_label"]]])
    s = both.sort_values("oracle_label")["judge_score"].to_numpy()
    assert (np.diff(s) >= 0).all()
    # Without a grid the score is exactly h(Y).
    cont = make_offpolicy_eval(2_000, judge=judge, judge_noise=0.0, judge_grid=None,
                               oracle_fraction=1.0, rng=16).logged
    np.testing.assert_allclose(cont["judge_score"], judge_link(cont["oracle_label"], judge),
                               rtol=0, atol=1e-12)
    if judge == "calibrated":
        np.testing.assert_allclose(cont["judge_score"], cont["oracle_label"], atol=1e-15)


def test_miscalibrated_judge_differs_from_calibrated() -> None:
    kw = dict(judge_noise=0.0, judge_grid=None, oracle_fraction=1.0, rng=3)
    mis = make_offpolicy_eval(1_000, judge="miscalibrated", **kw).logged
    cal = make_offpolicy_eval(1_000, judge="calibrated", **kw).logged
    np.testing.assert_array_equal(mis["oracle_label"], cal["oracle_label"])
    assert np.abs(mis["judge_score"] - cal["judge_score"]).max() > 0.1


# ---------------------------------------------------------------------------- reproducibility


def test_determinism_and_stream_contract() -> None:
    kw = dict(n_fresh_per_prompt=2, fresh_oracle_fraction=0.5, missing_logprob_rate=0.1)
    a = make_offpolicy_eval(3_000, rng=42, **kw)
    b = make_offpolicy_eval(3_000, rng=42, **kw)
    c = make_offpolicy_eval(3_000, rng=np.random.default_rng(42), **kw)
    for other in (b, c):
        pd.testing.assert_frame_equal(a.logged, other.logged)
        pd.testing.assert_frame_equal(a.fresh, other.fresh)
        assert a.truth == other.truth
    d = make_offpolicy_eval(3_000, rng=43, **kw)
    assert not a.logged["judge_score"].equals(d.logged["judge_score"])
    assert not np.allclose(a.logged["logprob_base"], d.logged["logprob_base"])
    # The logged block is drawn first: fresh-draw knobs do not change it.
    e = make_offpolicy_eval(3_000, rng=42, n_fresh_per_prompt=0, missing_logprob_rate=0.1)
    pd.testing.assert_frame_equal(a.logged, e.logged)
    # A passed Generator is consumed (a second call from it gives new data).
    gen = np.random.default_rng(5)
    first = make_offpolicy_eval(100, rng=gen)
    second = make_offpolicy_eval(100, rng=gen)
    assert not first.logged["logprob_base"].equals(second.logged["logprob_base"])


# ---------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(n_prompts=1), r"^n_prompts must be an integer >= 2"),
        (dict(n_prompts=100.0), r"^n_prompts"),
        (dict(n_prompts=True), r"^n_prompts"),
        (dict(targets={}), r"^targets must name at least one"),
        (dict(targets=[("x", 0.3)]), r"^targets must be a mapping"),
        (dict(targets={"base": 0.3}), r"^targets cannot contain 'base'"),
        (dict(targets={"": 0.3}), r"^targets names"),
        (dict(targets={"x": float("nan")}), r"^targets\['x'\] \(theta\) must be a finite"),
        (dict(targets={"x": np.inf}), r"^targets\['x'\]"),
        (dict(targets={"x": "0.5"}), r"^targets\['x'\]"),
        (dict(oracle_fraction=1.5), r"^oracle_fraction must be a probability in \[0, 1\]"),
        (dict(oracle_fraction=-0.1), r"^oracle_fraction"),
        (dict(oracle_fraction=float("nan")), r"^oracle_fraction"),
        (dict(fresh_oracle_fraction=2), r"^fresh_oracle_fraction"),
        (dict(missing_logprob_rate=-0.01), r"^missing_logprob_rate"),
        (dict(judge="harsh"), r"^judge must be one of"),
        (dict(judge_noise=-0.1), r"^judge_noise must be >= 0"),
        (dict(n_fresh_per_prompt=-1), r"^n_fresh_per_prompt must be an integer >= 0"),
        (dict(n_fresh_per_prompt=1.5), r"^n_fresh_per_prompt"),
        (dict(quality_slope=-1.0), r"^quality_slope"),
        (dict(quality_noise=-0.5), r"^quality_noise"),
        (dict(feature_effect=float("inf")), r"^feature_effect"),
        (dict(judge_scale=(1.0, 0.0)), r"^judge_scale must satisfy lo < hi"),
        (dict(label_scale=(0.0,)), r"^label_scale must be a pair"),
        (dict(label_scale=5), r"^label_scale must be a pair"),
        (dict(judge_grid=0.0), r"^judge_grid must be positive"),
        (dict(judge_grid=2.0), r"^judge_grid"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    kwargs = {"n_prompts": 10, **kwargs}
    with pytest.raises(CJEInputError, match=match):
        make_offpolicy_eval(**kwargs)


@pytest.mark.parametrize("ess", [0.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_theta_for_ess_rejects_bad_ess(ess: object) -> None:
    with pytest.raises(CJEInputError, match=r"^ess must be a number in \(0, 1\]"):
        theta_for_ess(ess)  # type: ignore[arg-type]


def test_true_value_rejects_bad_arguments() -> None:
    with pytest.raises(CJEInputError, match=r"^theta"):
        offpolicy_true_value(float("nan"))
    with pytest.raises(CJEInputError, match=r"^quality_noise"):
        offpolicy_true_value(0.5, quality_noise=-1.0)
    assert issubclass(CJEInputError, ValueError)
