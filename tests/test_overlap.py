"""Overlap diagnostics of importance weights (METHODS §6) against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cje.diagnostics.overlap import (
    cle_factor,
    ess_fraction,
    hill_index,
    judge_affinity,
    max_weight,
    mean_raw_weight,
    near_zero_share,
    top_mass,
    ttc,
    weight_summary,
)
from cje.errors import CJEInputError

# A small fixed weight vector used by several hand computations: n = 6, Σw = 10.
W6 = np.array([5.0, 2.0, 1.0, 1.0, 0.5, 0.5])
LP6 = -np.arange(1.0, 7.0)  # log π_target: row 0 most typical (surprisal 1), row 5 least (6)


# ------------------------------------------------------------------------------------------------
# ESS, max weight, top mass
# ------------------------------------------------------------------------------------------------


def test_ess_fraction_hand():
    # Σw = 10, Σw² = 25 + 4 + 1 + 1 + 0.25 + 0.25 = 31.5, n = 6 → 100 / (6 · 31.5) = 100/189
    assert ess_fraction(W6) == pytest.approx(100 / 189, rel=1e-14)


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_ess_fraction_equal_weights_is_one(n):
    assert ess_fraction(np.full(n, 3.7)) == pytest.approx(1.0, rel=1e-14)


@pytest.mark.parametrize("n", [2, 10, 1000])
def test_ess_fraction_single_nonzero_is_one_over_n(n):
    w = np.zeros(n)
    w[n // 2] = 42.0
    assert ess_fraction(w) == pytest.approx(1 / n, rel=1e-14)


def test_ess_fraction_is_scale_free_and_survives_huge_weights():
    assert ess_fraction(W6 * 1e200) == pytest.approx(100 / 189, rel=1e-12)


def test_max_weight_hand():
    # mean = 10/6, max = 5 → 5 / (10/6) = 3
    assert max_weight(W6) == pytest.approx(3.0, rel=1e-14)
    assert max_weight(np.ones(5)) == 1.0


def test_top_mass_hand():
    # share 0.05, n = 6 → ⌈0.3⌉ = 1 weight: 5 / 10
    assert top_mass(W6) == pytest.approx(0.5)
    # share 0.5 → ⌈3⌉ = 3 weights: (5 + 2 + 1) / 10
    assert top_mass(W6, share=0.5) == pytest.approx(0.8)
    # share 0.34 → ⌈2.04⌉ = 3 weights, too
    assert top_mass(W6, share=0.34) == pytest.approx(0.8)
    assert top_mass(W6, share=1.0) == pytest.approx(1.0)


def test_top_mass_ceiling_not_fooled_by_rounding():
    # 0.07 · 100 is 7.000000000000001 in floating point; ⌈share·n⌉ must still be 7:
    # weights 1..100 sum to 5050, the top 7 are 100 + 99 + … + 94 = 679
    w = np.arange(1.0, 101.0)
    assert 0.07 * 100 > 7
    assert top_mass(w, 0.07) == pytest.approx(679 / 5050, rel=1e-14)


# ------------------------------------------------------------------------------------------------
# Hill tail index
# ------------------------------------------------------------------------------------------------


def test_hill_hand_default_k():
    # n = 40 → k = min(max(10, ⌊2⌋), ⌊4⌋, 39) = 4; top 5 = [16, 8, 4, 2, 1] (then 35 ones)
    # Σ_{i≤4} log(w_(i) / w_(5)) = log 16 + log 8 + log 4 + log 2 = 10 log 2 → α̂ = 4 / (10 log 2)
    w = np.array([1.0] * 35 + [2.0, 16.0, 4.0, 8.0, 1.0])
    assert hill_index(w) == pytest.approx(4 / (10 * math.log(2)), rel=1e-12)


def test_hill_hand_explicit_k():
    # k = 2: top 3 of the vector above = [16, 8, 4] → log 4 + log 2 = 3 log 2 → α̂ = 2 / (3 log 2)
    w = np.array([1.0] * 35 + [2.0, 16.0, 4.0, 8.0, 1.0])
    assert hill_index(w, k=2) == pytest.approx(2 / (3 * math.log(2)), rel=1e-12)


def test_hill_default_k_uses_five_percent_for_large_n():
    # n = 1000 → k = min(max(10, 50), 100, 999) = 50; weights 1000, 999, …, 1 (top 51 = 1000..950)
    w = np.arange(1.0, 1001.0)
    expected = 50 / np.sum(np.log(np.arange(1000.0, 950.0, -1)) - math.log(950.0))
    assert hill_index(w) == pytest.approx(expected, rel=1e-12)


def test_hill_nan_cases():
    assert math.isnan(hill_index(np.arange(1.0, 20.0)))  # n = 19 < 20
    assert math.isnan(hill_index(np.ones(200)))  # top k+1 all equal
    w = np.ones(200)
    w[:5] = 3.0  # default k = 10: top 11 = five 3s and six 1s → finite
    assert hill_index(w) == pytest.approx(10 / (5 * math.log(3)), rel=1e-12)


def test_hill_zero_order_statistic_gives_zero():
    # n = 100, k = 10, only 3 positive weights → w_(11) = 0 → the sum is +∞ → α̂ = 0
    w = np.zeros(100)
    w[:3] = [1.0, 2.0, 3.0]
    assert hill_index(w) == 0.0


@pytest.mark.parametrize("alpha, seed", [(1.5, 11), (3.0, 12)])
def test_hill_recovers_pareto_tail_index(alpha, seed):
    # n = 10⁵ → k = min(max(10, 5000), 10000) = 5000. For exact Pareto draws the Hill estimator is
    # consistent with asymptotic SE α/√k: 0.021 (α = 1.5) and 0.042 (α = 3). Tolerance 4 SE: a correct
    # estimator misses for a random seed with probability ≈ 6e-5 (seeded here, so deterministic), while
    # estimating 1/α instead of α, or a k off by a factor of 2 in the numerator, misses by ≥ 10 SE.
    # Exact-value details (which order statistic, default k) are pinned by the hand tests above.
    rng = np.random.default_rng(seed)
    w = rng.pareto(alpha, 100_000) + 1.0
    se = alpha / math.sqrt(5000)
    assert hill_index(w) == pytest.approx(alpha, abs=4 * se)


def test_hill_separates_the_variance_gate():
    rng = np.random.default_rng(5)
    heavy = rng.pareto(1.5, 100_000) + 1.0
    light = rng.pareto(3.0, 100_000) + 1.0
    assert hill_index(heavy) < 2 < hill_index(light)


# ------------------------------------------------------------------------------------------------
# judge-space affinity
# ------------------------------------------------------------------------------------------------


def test_affinity_hand_two_bins():
    # bins [0, 0.5), [0.5, 1]: logged p = (2/4, 2/4); target q = (1/4, 3/4)
    # A_B = sqrt(1/2 · 1/4) + sqrt(1/2 · 3/4) = sqrt(1/8) + sqrt(3/8)
    s = np.array([0.1, 0.2, 0.7, 0.9])
    expected = math.sqrt(1 / 8) + math.sqrt(3 / 8)
    assert judge_affinity(s, s_target=np.array([0.3, 0.6, 0.8, 0.95]), bins=2) == pytest.approx(expected)
    # weighted: q = (1 + 1, 3 + 3) / 8 = (1/4, 3/4), same value
    assert judge_affinity(s, w=np.array([1.0, 1.0, 3.0, 3.0]), bins=2) == pytest.approx(expected)


def test_affinity_hand_custom_scale():
    # scale (1, 5), 4 bins of width 1: logged [1, 2.5, 5] → p = (1, 0, 1, 1)/3 (5 is in the last bin)
    # target [1.5, 4.5] → q = (1, 0, 0, 1)/2 → A_B = sqrt(1/6) + sqrt(1/6)
    a = judge_affinity(np.array([1.0, 2.5, 5.0]), s_target=np.array([1.5, 4.5]), bins=4, scale=(1, 5))
    assert a == pytest.approx(2 * math.sqrt(1 / 6))


def test_affinity_identical_is_one():
    s = np.random.default_rng(0).uniform(0, 1, 500)
    assert judge_affinity(s, s_target=s) == pytest.approx(1.0, abs=1e-12)
    assert judge_affinity(s, w=np.ones(500)) == pytest.approx(1.0, abs=1e-12)


def test_affinity_disjoint_supports_is_zero():
    lo = np.array([0.0, 0.1, 0.2, 0.3])
    hi = np.array([0.6, 0.8, 1.0])
    assert judge_affinity(lo, s_target=hi) == 0.0
    # with weights q can only live where p does, so the weighted extreme is all mass on one row:
    # p = (1/4 in each of 4 bins), q = 1 in the bin of 0.3 → A_B = sqrt(1/4 · 1) = 1/2
    assert judge_affinity(lo, w=np.array([0.0, 0.0, 0.0, 1.0])) == pytest.approx(0.5)  # sqrt(1/4 · 1)


def test_affinity_upper_edge_goes_in_last_bin():
    # 1.0 and 0.97 share the last of 20 bins [0.95, 1]; 0.0 is in the first
    assert judge_affinity(np.array([1.0]), s_target=np.array([0.97])) == pytest.approx(1.0)
    assert judge_affinity(np.array([1.0]), s_target=np.array([0.0])) == 0.0


def test_affinity_same_distribution_samples_close_to_one():
    rng = np.random.default_rng(1)
    s_logged = rng.beta(2, 5, 20_000)
    # fresh target draws from the same distribution
    assert judge_affinity(s_logged, s_target=rng.beta(2, 5, 20_000)) > 0.995
    # weights unrelated to S (target = logging in judge space)
    assert judge_affinity(s_logged, w=rng.exponential(1.0, 20_000)) > 0.995


def test_affinity_weighted_and_fresh_agree_with_exact_value():
    # logging S ~ U(0, 1); target density 2s (S = sqrt(U)); density ratio w = 2s.
    # Exact binned values, 20 bins: p_b = 1/20, q_b = ((b+1)² − b²)/400 = (2b + 1)/400
    exact = sum(math.sqrt((1 / 20) * (2 * b + 1) / 400) for b in range(20))
    rng = np.random.default_rng(2)
    s_logged = rng.uniform(0, 1, 40_000)
    s_target = np.sqrt(rng.uniform(0, 1, 40_000))
    a_fresh = judge_affinity(s_logged, s_target=s_target)
    a_weighted = judge_affinity(s_logged, w=2 * s_logged)
    assert exact < 0.97  # the two distributions really differ
    assert a_fresh == pytest.approx(exact, abs=0.005)
    assert a_weighted == pytest.approx(exact, abs=0.005)


# ------------------------------------------------------------------------------------------------
# TTC and CLE
# ------------------------------------------------------------------------------------------------


def test_ttc_hand():
    # surprisal order = row order; cumulative weights 5, 7, 8, 9, … ; 90% of 10 = 9 → 4 rows of 6
    assert ttc(LP6, W6) == pytest.approx(4 / 6)
    # mass 0.5 → cumulative 5 ≥ 5 → 1 row
    assert ttc(LP6, W6, mass=0.5) == pytest.approx(1 / 6)
    # mass 1 → every row
    assert ttc(LP6, W6, mass=1.0) == 1.0


def test_ttc_orders_by_surprisal_not_row():
    # reversed typicality: row 5 is most typical → order 5, 4, 3, 2, 1, 0 with weights
    # 0.5, 0.5, 1, 1, 2, 5 → cumulative 0.5, 1, 2, 3, 5, 10 → 90% (9) needs all 6 rows
    assert ttc(LP6[::-1], W6) == 1.0


@pytest.mark.parametrize(
    "n, expected", [(10, 9 / 10), (100, 90 / 100), (30, 27 / 30), (7, 1.0), (25, 23 / 25)]
)
def test_ttc_equal_weights(n, expected):
    # equal weights: the shortest prefix holding ≥ 90% has ⌈0.9 n⌉ rows: 9/10, 90/100, 27/30,
    # ⌈6.3⌉ = 7 of 7, ⌈22.5⌉ = 23 of 25
    lp = -np.linspace(0.1, 5.0, n)
    assert ttc(lp, np.ones(n)) == pytest.approx(expected, rel=1e-14)


def test_ttc_equal_weights_with_ties_uses_stable_order():
    # all surprisals equal: the prefix is the first ⌈0.9 n⌉ rows, so the value is unchanged
    assert ttc(np.full(10, -2.0), np.ones(10)) == pytest.approx(0.9)


def test_ttc_small_when_one_typical_row_holds_most_mass():
    # row 0 is most typical and holds 991 of 1000 → prefix of 1 row out of 10
    w = np.array([991.0] + [1.0] * 9)
    assert ttc(-np.arange(1.0, 11.0), w) == pytest.approx(0.1)
    rng = np.random.default_rng(3)
    w = rng.exponential(1.0, 1000)
    w[0] = 1e5  # 99% of the mass
    assert ttc(-np.arange(1.0, 1001.0), w) == pytest.approx(0.001)


def test_cle_hand():
    # T = first 4 rows (weights 5, 2, 1, 1; cumulative 9 ≥ 9)
    # α = 9/10, β = 4/6, inside T: n_T Σw²/(Σw)² = 4 · 31 / 81 = 124/81 = 1 + χ²_T
    # CLE = α / sqrt(β) · sqrt(1 + χ²_T) = 0.9 · sqrt(3/2) · sqrt(124)/9 = sqrt(186)/10
    assert cle_factor(LP6, W6) == pytest.approx(math.sqrt(186) / 10, rel=1e-12)


def test_cle_hand_reversed_order():
    # reversed typicality: T = all 6 rows, α = 1, β = 1, 1 + χ²_T = 6 · 31.5 / 100 = 1.89
    assert cle_factor(LP6[::-1], W6) == pytest.approx(math.sqrt(1.89), rel=1e-12)


def test_cle_equal_weights():
    # n = 10 equal weights: T = 9 rows, α = 0.9, β = 0.9, χ²_T = 0 → CLE = 0.9/sqrt(0.9) = sqrt(0.9)
    assert cle_factor(-np.arange(1.0, 11.0), np.ones(10)) == pytest.approx(math.sqrt(0.9), rel=1e-12)


def test_cle_large_when_coverage_is_poor():
    # one typical row with 991/1000 of the mass: β = 0.1, α = 0.991, χ²_T = 0 → 0.991/sqrt(0.1)
    w = np.array([991.0] + [1.0] * 9)
    assert cle_factor(-np.arange(1.0, 11.0), w) == pytest.approx(0.991 / math.sqrt(0.1), rel=1e-12)


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------

KEYS = {
    "ess_raw",
    "ess_stable",
    "max_weight_raw",
    "max_weight_stable",
    "top5_mass_raw",
    "top5_mass_stable",
    "hill_raw",
    "affinity",
    "ttc",
    "cle",
    "mean_raw_weight",
    "mean_raw_weight_se",
    "log_mean_raw_weight",
    "near_zero_share",
}


def test_weight_summary_full():
    rng = np.random.default_rng(4)
    n = 400
    w_raw = rng.pareto(2.5, n) + 1.0
    w_stable = 0.5 + 0.5 * w_raw / w_raw.mean()
    lp = -rng.uniform(1, 50, n)
    s = rng.uniform(0, 1, n)
    d = weight_summary(w_raw, w_stable, logp_target=lp, s_logged=s)
    assert set(d) == KEYS
    assert all(isinstance(v, float) for v in d.values())
    assert d["ess_raw"] == ess_fraction(w_raw)
    assert d["ess_stable"] == ess_fraction(w_stable)
    assert d["max_weight_raw"] == max_weight(w_raw)
    assert d["max_weight_stable"] == max_weight(w_stable)
    assert d["top5_mass_raw"] == top_mass(w_raw, 0.05)
    assert d["top5_mass_stable"] == top_mass(w_stable, 0.05)
    assert d["hill_raw"] == hill_index(w_raw)
    assert d["affinity"] == judge_affinity(s, w=w_raw)
    assert d["ttc"] == ttc(lp, w_raw)
    assert d["cle"] == cle_factor(lp, w_raw)
    # fresh target draws take precedence over the weighted logged histogram
    t = rng.uniform(0, 1, 123) ** 3
    assert weight_summary(w_raw, s_logged=s, s_target=t)["affinity"] == judge_affinity(s, s_target=t)


def test_weight_summary_support_keys_with_log_w():
    lw = np.log(np.array([0.5, 1.5, 1.0, 1.0]))
    d = weight_summary(np.exp(lw), log_w=lw)
    assert d["mean_raw_weight"] == pytest.approx(1.0, abs=1e-12)
    # sd of (0.5, 1.5, 1, 1) with ddof=1 is sqrt(0.5/3); SE = sd / sqrt(4)
    assert d["mean_raw_weight_se"] == pytest.approx(math.sqrt(0.5 / 3) / 2, rel=1e-12)
    assert d["log_mean_raw_weight"] == pytest.approx(0.0, abs=1e-12)
    assert d["near_zero_share"] == 0.0


# ------------------------------------------------------------------------------------------------
# support: mean raw weight, near-zero share
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "log_w, m, log_m",
    [
        (np.log([1.0, 3.0]), 2.0, math.log(2.0)),  # (1 + 3) / 2
        (np.log([0.25, 0.25, 0.25, 0.25]), 0.25, math.log(0.25)),  # a constant shift of log 1/4
        (np.full(5, -5000.0), 0.0, -5000.0),  # per-token vs per-sequence: underflows, log does not
        (np.array([800.0, 0.0, 0.0, 0.0]), math.inf, 800.0 - math.log(4.0)),  # overflows
        (np.array([0.0, -np.inf]), 0.5, math.log(0.5)),  # a zero ratio is allowed
    ],
)
def test_mean_raw_weight_hand(log_w, m, log_m):
    got_m, se, got_log = mean_raw_weight(log_w)
    assert got_m == pytest.approx(m, rel=1e-12)
    assert got_log == pytest.approx(log_m, rel=1e-12, abs=1e-12)
    assert se >= 0


def test_mean_raw_weight_se_and_single_row():
    # ratios 1, 2, 3, 6: mean 3, sd (ddof=1) = sqrt(((-2)² + 1 + 0 + 9) / 3) = sqrt(14/3)
    m, se, _ = mean_raw_weight(np.log([1.0, 2.0, 3.0, 6.0]))
    assert m == pytest.approx(3.0, rel=1e-12)
    assert se == pytest.approx(math.sqrt(14 / 3) / 2, rel=1e-12)
    assert math.isnan(mean_raw_weight(np.array([0.0]))[1])


def test_mean_raw_weight_is_about_one_on_the_synthetic_dgp():
    from cje.synthetic import make_offpolicy_eval

    sim = make_offpolicy_eval(4000, n_fresh_per_prompt=0, rng=3)
    lb = sim.logged["logprob_base"].to_numpy()
    for name in ("mild", "moderate"):
        m, se, _ = mean_raw_weight(sim.logged[f"logprob[{name}]"].to_numpy() - lb)
        assert abs(m - 1.0) < 4 * se + 1e-3, (name, m, se)


def test_near_zero_share_hand():
    lw = np.log(np.array([1.0, 2e-3, 9e-4, 1e-10]))
    assert near_zero_share(lw) == 0.5
    assert near_zero_share(lw, ratio=1e-2) == 0.75
    assert near_zero_share(lw, ratio=1e-5) == 0.25
    assert near_zero_share(lw, ratio=1.0) == 0.75


def test_weight_summary_missing_inputs_are_nan():
    d = weight_summary(W6)
    assert set(d) == KEYS
    nan_keys = {k for k, v in d.items() if math.isnan(v)}
    # n = 6 < 20 → no Hill estimate
    assert nan_keys == KEYS - {"ess_raw", "max_weight_raw", "top5_mass_raw"}
    assert d["ess_raw"] == pytest.approx(100 / 189)


def test_weight_summary_scale_is_passed_to_affinity():
    # scores on a 1–10 scale: the default (0, 1) would reject them
    s = np.array([1.0, 5.0, 10.0, 7.0, 2.0, 3.0])
    d = weight_summary(W6, s_logged=s, s_target=s, scale=(1, 10))
    assert d["affinity"] == pytest.approx(1.0)
    with pytest.raises(CJEInputError, match=r"s_logged has a value outside scale"):
        weight_summary(W6, s_logged=s)


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------

GOOD = np.array([1.0, 2.0, 3.0])
LP3 = np.array([-1.0, -2.0, -3.0])
S3 = np.array([0.1, 0.5, 0.9])


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: ess_fraction(np.array([])), r"w is empty"),
        (lambda: ess_fraction(np.array([1.0, -0.5])), r"w has a negative weight at index 1"),
        (lambda: ess_fraction(np.array([1.0, np.nan])), r"w has a non-finite value .* index 1"),
        (lambda: max_weight(np.array([np.inf, 1.0])), r"w has a non-finite value .* index 0"),
        (lambda: max_weight(np.zeros(4)), r"w is all zeros"),
        (lambda: ess_fraction(np.ones((2, 2))), r"w must be a 1-D array"),
        (lambda: top_mass(GOOD, share=0.0), r"share must be a number in \(0, 1\]"),
        (lambda: top_mass(GOOD, share=1.5), r"share must be a number in \(0, 1\]"),
        (lambda: top_mass(GOOD, share=float("nan")), r"share must be a number in \(0, 1\]"),
        (lambda: hill_index(np.arange(1.0, 31.0), k=30), r"k must be in \[1, n − 1\]"),
        (lambda: hill_index(np.arange(1.0, 31.0), k=0), r"k must be in \[1, n − 1\]"),
        (lambda: hill_index(np.arange(1.0, 31.0), k=2.5), r"k must be an integer"),
        (lambda: judge_affinity(S3), r"exactly one of w .* or s_target .*; got neither"),
        (lambda: judge_affinity(S3, w=GOOD, s_target=S3), r"exactly one of w .*; got both"),
        (lambda: judge_affinity(S3, w=GOOD[:2]), r"w has 2 values but s_logged has 3"),
        (lambda: judge_affinity(S3, w=-GOOD), r"w has a negative weight"),
        (lambda: judge_affinity(S3, s_target=S3, bins=1), r"bins must be an integer ≥ 2"),
        (lambda: judge_affinity(S3, s_target=S3, bins=2.0), r"bins must be an integer ≥ 2"),
        (lambda: judge_affinity(S3 + 0.5, s_target=S3), r"s_logged has a value outside scale=\(0, 1\)"),
        (lambda: judge_affinity(S3, s_target=np.array([-0.1])), r"s_target has a value outside scale"),
        (lambda: judge_affinity(S3, s_target=np.array([])), r"s_target is empty"),
        (lambda: judge_affinity(S3, s_target=S3, scale=(1, 0)), r"scale must be a pair \(lo, hi\)"),
        (lambda: judge_affinity(S3, s_target=S3, scale=(0,)), r"scale must be a pair \(lo, hi\)"),
        (lambda: ttc(LP3, GOOD, mass=0.0), r"mass must be a number in \(0, 1\]"),
        (lambda: ttc(LP3, GOOD, mass=1.01), r"mass must be a number in \(0, 1\]"),
        (lambda: ttc(LP3[:2], GOOD), r"w has 3 values but logp_target has 2"),
        (lambda: ttc(-LP3, GOOD), r"logp_target has a positive log-probability at index 0"),
        (lambda: ttc(np.array([-1.0, np.nan, -3.0]), GOOD), r"logp_target has a non-finite value"),
        (lambda: ttc(LP3, np.zeros(3)), r"w is all zeros"),
        (lambda: cle_factor(LP3, GOOD, mass=2), r"mass must be a number in \(0, 1\]"),
        (lambda: cle_factor(LP3, np.array([1.0, -1.0, 1.0])), r"w has a negative weight"),
        (lambda: weight_summary(np.array([])), r"w_raw is empty"),
        (lambda: weight_summary(GOOD, GOOD[:2]), r"w_stable has 2 values but w_raw has 3"),
        (lambda: weight_summary(GOOD, np.zeros(3)), r"w_stable is all zeros"),
        (lambda: weight_summary(GOOD, logp_target=LP3[:2]), r"logp_target has 2 values but w_raw has 3"),
        (lambda: weight_summary(GOOD, s_logged=S3[:1]), r"s_logged has 1 values but w_raw has 3"),
        (lambda: weight_summary(GOOD, log_w=LP3[:2]), r"log_w has 2 values but w_raw has 3"),
        (lambda: mean_raw_weight(np.array([0.0, np.nan])), r"log_w has a NaN or \+inf log-weight at index 1"),
        (lambda: mean_raw_weight(np.array([np.inf])), r"log_w has a NaN or \+inf log-weight at index 0"),
        (lambda: mean_raw_weight(np.array([-np.inf, -np.inf])), r"log_w is all −inf"),
        (lambda: mean_raw_weight(np.array([])), r"log_w must be a non-empty 1-D array"),
        (lambda: near_zero_share(LP3, ratio=0.0), r"ratio must be a number in \(0, 1\]"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(CJEInputError, match=match):
        call()
