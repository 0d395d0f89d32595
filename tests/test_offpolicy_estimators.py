"""Independent checks of the off-policy estimators, SIMCal-W and the off-policy pipeline.

Every expected number here comes from a *different computation* than the package's: explicit
Python loops written from the formulas of METHODS §3–5 and the docstrings, scikit-learn's
``IsotonicRegression`` instead of the package's PAVA, a KKT enumeration instead of
``min_variance_simplex``, the Open Bandit Pipeline's documented IPW / SNIPW formulas. The
The ``test_regression_*`` tests at the end pin bugs found (and fixed) while writing these tests.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.isotonic import IsotonicRegression

import cje
from cje.calibration.weights import (
    hajek_weights,
    iso_by_rank,
    order_rank,
    simcal_weights,
)
from cje.data import prompt_folds
from cje.errors import CJEInputError
from cje.estimators.offpolicy import (
    LoggedTarget,
    OffPolicyRows,
    PolicyValue,
    calibrated_ips,
    doubly_robust,
    ips,
    snips,
    stack,
)
from cje.synthetic import make_offpolicy_eval, theta_for_ess

TOL = 1e-12
SCALES = {"judge_scale": (0.0, 1.0), "label_scale": (0.0, 1.0)}


# ================================================================================================
# Independent helpers
# ================================================================================================
def _simplex_qp(sigma: np.ndarray) -> np.ndarray:
    """argmin π'Σ̃π on the simplex, Σ̃ = Σ + 1e-8·tr(Σ)/m·I (METHODS §3.2 step 3), by KKT.

    Different computation from ``min_variance_simplex`` (which picks the feasible active set
    with the smallest objective): for every support A solve the KKT *linear system*
    ``[2Σ̃_AA 1; 1' 0][π_A; ν] = [0; 1]`` and accept the one that is primal feasible (π ≥ 0) and
    dual feasible (``(2Σ̃π)_j ≥ −ν`` off the support). Σ̃ is positive definite, so the KKT point
    is the unique minimiser.
    """
    m = sigma.shape[0]
    s = sigma + np.eye(m) * (1e-8 * np.trace(sigma) / m)
    for size in range(1, m + 1):
        for act in itertools.combinations(range(m), size):
            a = list(act)
            M = np.zeros((size + 1, size + 1))
            M[:size, :size] = 2.0 * s[np.ix_(a, a)]
            M[:size, size] = 1.0
            M[size, :size] = 1.0
            rhs = np.zeros(size + 1)
            rhs[size] = 1.0
            sol = np.linalg.solve(M, rhs)
            x = sol[:size]
            if x.min() < -1e-13:
                continue
            pi = np.zeros(m)
            pi[a] = x
            grad = 2.0 * s @ pi
            level = -sol[size]  # (2Σ̃π)_j = −ν on the support
            scale = max(1.0, float(np.abs(grad).max()))
            off = [j for j in range(m) if j not in act]
            if all(grad[j] >= level - 1e-10 * scale for j in off):
                return pi
    raise AssertionError("no KKT point found")


def _iso(x_tr, y_tr, x_ev, *, increasing=True, sample_weight=None) -> np.ndarray:
    """scikit-learn's isotonic regression (the contract's reference implementation)."""
    m = IsotonicRegression(increasing=increasing, out_of_bounds="clip")
    m.fit(np.asarray(x_tr, float), np.asarray(y_tr, float), sample_weight=sample_weight)
    return m.predict(np.asarray(x_ev, float))


def _cluster_var(phi, cluster) -> float:
    """Var_IF = G/(G−1) Σ_g T_g² / n² (METHODS §5.1), with a dict of cluster totals."""
    tot: dict = {}
    for c, p in zip(cluster, phi, strict=True):
        tot[c] = tot.get(c, 0.0) + p
    g, n = len(tot), len(phi)
    return g / (g - 1) * sum(t * t for t in tot.values()) / n**2


# ================================================================================================
# 1. Hand computations on a fixed 8-row example (function level)
# ================================================================================================
# 8 logged rows, 4 prompts (2 rows each), 3 labelled rows (0, 3, 6).
PID = np.array([0, 0, 1, 1, 2, 2, 3, 3])
R8 = np.array([0.20, 0.50, 0.70, 0.40, 0.90, 0.10, 0.60, 0.30])
LAB8 = np.array([True, False, False, True, False, False, True, False])
E8 = np.array([0.10, 0.0, 0.0, -0.20, 0.0, 0.0, 0.05, 0.0])  # Y − f_oof(S) on labelled rows
RHO8 = np.array([0.5, 2.0, 1.0, 0.25, 3.0, 1.5, 0.8, 1.2])  # π_p/π0 = exp(λ)
STAB8 = np.array([0.9, 1.3, 1.0, 0.6, 1.4, 1.1, 0.8, 0.9])  # some stabilised weights (mean 1)
STAB8 = STAB8 / STAB8.mean()
Q8 = np.array([0.25, 0.45, 0.60, 0.45, 0.80, 0.20, 0.55, 0.35])  # outcome model q on logged rows
GBAR8 = np.array([0.40, 0.40, 0.55, 0.55, 0.50, 0.50, 0.45, 0.45])  # mean q over fresh draws


def _rows8() -> OffPolicyRows:
    return OffPolicyRows(reward=R8, residual=E8, labelled=LAB8, weights=hajek_weights(np.log(RHO8)),
                         stable=STAB8, ratio=RHO8)


def _ytilde8() -> list[float]:
    # ỹ_i = R_i + (L_i / p_L) e_i with p_L = 3/8 (the labelled share of these rows)
    p_l = 3 / 8
    return [R8[i] + (E8[i] / p_l if LAB8[i] else 0.0) for i in range(8)]


def test_hajek_weights_by_hand() -> None:
    # w_i = n ρ_i / Σ_j ρ_j (METHODS §3.1); mean exactly one; invariant to a shift of λ
    total = sum(RHO8)
    expected = [8 * r / total for r in RHO8]
    np.testing.assert_allclose(hajek_weights(np.log(RHO8)), expected, rtol=0, atol=TOL)
    np.testing.assert_allclose(hajek_weights(np.log(RHO8) - 700.0), expected, rtol=0, atol=TOL)
    assert abs(hajek_weights(np.log(RHO8)).mean() - 1.0) < TOL


def _share8(psi_e: float) -> list[float]:
    # ψ_e (L_i/p_L − 1): the residual term's influence from the labelled share p_L = 3/8 being
    # estimated (the ratio mean(v L e)/(mean(L) mean(v)) linearised in mean(L) as well)
    return [psi_e * ((8 / 3 if LAB8[i] else 0.0) - 1.0) for i in range(8)]


def test_ips_by_hand() -> None:
    # unnormalised IPS: ψ = (1/n) Σ ρ_i ỹ_i = mean(ρR) + mean(ρLe)/mean(L),
    # φ_i = ρ_i ỹ_i − ψ − ψ_e (L_i/p_L − 1), ψ_e = (1/n) Σ ρ_i (L_i/p_L) e_i
    yt = _ytilde8()
    psi = sum(RHO8[i] * yt[i] for i in range(8)) / 8
    psi_e = sum(RHO8[i] * (yt[i] - R8[i]) for i in range(8)) / 8
    share = _share8(psi_e)
    phi = [RHO8[i] * yt[i] - psi - share[i] for i in range(8)]
    v = ips(_rows8())
    assert abs(v.value - psi) < TOL
    np.testing.assert_allclose(v.influence, phi, rtol=0, atol=TOL)
    assert abs(v.influence.mean()) < TOL


def test_snips_by_hand() -> None:
    # SNIPS: ψ = Σ w_i ỹ_i / Σ w_i with the raw ratios (the Hájek normalisation cancels),
    # φ_i = w_i (ỹ_i − ψ) − ψ_e (L_i/p_L − 1) with w the mean-one weights and ψ_e the residual
    # part of ψ, Σ w (L/p_L) e / Σ w
    yt = _ytilde8()
    psi = sum(RHO8[i] * yt[i] for i in range(8)) / sum(RHO8)
    w = [8 * r / sum(RHO8) for r in RHO8]
    psi_e = sum(RHO8[i] * (yt[i] - R8[i]) for i in range(8)) / sum(RHO8)
    share = _share8(psi_e)
    phi = [w[i] * (yt[i] - psi) - share[i] for i in range(8)]
    v = snips(_rows8())
    assert abs(v.value - psi) < TOL
    np.testing.assert_allclose(v.influence, phi, rtol=0, atol=TOL)
    assert abs(sum(v.influence)) < TOL  # mean zero


def test_calibrated_ips_by_hand() -> None:
    # calibrated IPS: stabilised weights w̃ on the reward, and on the oracle residual term the
    # raw weights v = w (default) or v = w̃ (stable_residual=True):
    # ψ = Σ w̃ R / Σ w̃ + Σ v (L/p_L) e / Σ v,
    # φ_i = [w_i (R_i − ψ_R) − mean_j w_j (R_j − ψ_R)] + v_i ((L_i/p_L) e_i − ψ_e)
    # − ψ_e (L_i/p_L − 1): the reward term's influence includes the estimation of w̃ and so
    # carries the raw weights, the residual term's the estimation of p_L
    w = [8 * r / sum(RHO8) for r in RHO8]
    sr = [(E8[i] / (3 / 8) if LAB8[i] else 0.0) for i in range(8)]
    for stable_residual, v in ((False, w), (True, list(STAB8))):
        psi_r = sum(STAB8[i] * R8[i] for i in range(8)) / sum(STAB8)
        psi_e = sum(v[i] * sr[i] for i in range(8)) / sum(v)
        raw_r = [w[i] * (R8[i] - psi_r) for i in range(8)]
        share = _share8(psi_e)
        phi = [raw_r[i] - sum(raw_r) / 8 + v[i] * (sr[i] - psi_e) - share[i] for i in range(8)]
        out = calibrated_ips(_rows8(), stable_residual=stable_residual)
        assert abs(out.value - (psi_r + psi_e)) < TOL
        np.testing.assert_allclose(out.influence, phi, rtol=0, atol=TOL)
        assert abs(sum(out.influence)) < TOL
    # without stabilised weights it is SNIPS
    raw = OffPolicyRows(R8, E8, LAB8, hajek_weights(np.log(RHO8)))
    assert calibrated_ips(raw).value == pytest.approx(snips(raw).value, abs=TOL)
    np.testing.assert_allclose(calibrated_ips(raw).influence, snips(raw).influence, atol=TOL)


def test_doubly_robust_by_hand() -> None:
    # DR: ψ = mean ḡ + Σ w̃ (R − q) / Σ w̃ + Σ v (L/p_L) e / Σ v  (v = w raw by default, w̃ with
    # stable_residual=True); φ_i = (ḡ_i − ψ_g) + [w_i (R_i − q_i − ψ_c) − its mean]
    # + v_i ((L_i/p_L) e_i − ψ_e) − ψ_e (L_i/p_L − 1)  (the correction term's influence includes
    # w̃'s estimation, the residual term's that of p_L)
    w = [8 * r / sum(RHO8) for r in RHO8]
    sr = [(E8[i] / (3 / 8) if LAB8[i] else 0.0) for i in range(8)]
    psi_g = sum(GBAR8) / 8
    psi_c = sum(STAB8[i] * (R8[i] - Q8[i]) for i in range(8)) / sum(STAB8)
    raw_c = [w[i] * (R8[i] - Q8[i] - psi_c) for i in range(8)]
    for stable_residual, v in ((False, w), (True, list(STAB8))):
        psi_e = sum(v[i] * sr[i] for i in range(8)) / sum(v)
        share = _share8(psi_e)
        phi = [(GBAR8[i] - psi_g) + raw_c[i] - sum(raw_c) / 8 + v[i] * (sr[i] - psi_e) - share[i]
               for i in range(8)]
        out = doubly_robust(_rows8(), Q8, GBAR8, stable_residual=stable_residual)
        assert abs(out.value - (psi_g + psi_c + psi_e)) < TOL
        np.testing.assert_allclose(out.influence, phi, rtol=0, atol=TOL)
        assert abs(sum(out.influence)) < TOL
    # with uniform weights and q ≡ ḡ ≡ c the outcome model cancels: DR = plain mean of ỹ
    flat = OffPolicyRows(R8, E8, LAB8, np.ones(8))
    c = np.full(8, 0.37)
    assert doubly_robust(flat, c, c).value == pytest.approx(sum(_ytilde8()) / 8, abs=TOL)


def test_stack_two_estimates_closed_form() -> None:
    # two estimates: α₁ = (Σ̃₂₂ − Σ̃₁₂) / (Σ̃₁₁ + Σ̃₂₂ − 2Σ̃₁₂) clipped to [0, 1], with Σ the
    # covariance of the prompt-cluster totals (sums, not means) and the ridge 1e-8·tr(Σ)/2.
    a, b = snips(_rows8()), doubly_robust(_rows8(), Q8, GBAR8)
    ta = [sum(a.influence[PID == g]) for g in range(4)]
    tb = [sum(b.influence[PID == g]) for g in range(4)]
    s11 = sum(x * x for x in ta)
    s22 = sum(x * x for x in tb)
    s12 = sum(x * y for x, y in zip(ta, tb, strict=True))
    ridge = 1e-8 * (s11 + s22) / 2
    alpha = (s22 + ridge - s12) / (s11 + s22 + 2 * ridge - 2 * s12)
    alpha = min(1.0, max(0.0, alpha))
    st = stack([a, b], PID)
    assert isinstance(st, PolicyValue)
    np.testing.assert_allclose(st.mixture, [alpha, 1 - alpha], rtol=0, atol=TOL)
    assert abs(st.value - (alpha * a.value + (1 - alpha) * b.value)) < TOL
    np.testing.assert_allclose(st.influence, alpha * a.influence + (1 - alpha) * b.influence,
                               rtol=0, atol=TOL)
    assert abs(st.influence.sum()) < TOL


def test_stack_three_estimates_kkt() -> None:
    # three estimates: the mixture is the KKT point of the simplex QP (independent solver), and
    # value / influence are the α-combinations; the mixture attains a variance no larger than
    # any single estimate's.
    vals = [snips(_rows8()), calibrated_ips(_rows8()), doubly_robust(_rows8(), Q8, GBAR8)]
    T = np.array([[v.influence[PID == g].sum() for g in range(4)] for v in vals])
    alpha = _simplex_qp(T @ T.T)
    st = stack(vals, PID)
    np.testing.assert_allclose(st.mixture, alpha, rtol=0, atol=1e-10)
    assert abs(st.value - sum(a * v.value for a, v in zip(alpha, vals, strict=True))) < 1e-10
    np.testing.assert_allclose(st.influence, sum(a * v.influence for a, v in zip(alpha, vals, strict=True)),
                               rtol=0, atol=1e-10)
    var = lambda phi: _cluster_var(phi, PID)  # noqa: E731
    assert var(st.influence) <= min(var(v.influence) for v in vals) * (1 + 1e-9)


# ================================================================================================
# 2. IPS / SNIPS vs the Open Bandit Pipeline's formulas
# ================================================================================================
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ips_snips_match_obp_formulas(seed: int) -> None:
    # OBP (st-tech/zr-obp, estimators.py): InverseProbabilityWeighting estimates
    # mean(r · π_e/π_b); SelfNormalizedInverseProbabilityWeighting's round rewards are
    # r · iw / mean(iw), its estimate their mean = Σ r·iw / Σ iw. Rewards given directly (no labels).
    rng = np.random.default_rng(seed)
    n = 500
    pi_b = rng.uniform(0.05, 1.0, n)
    pi_e = rng.uniform(0.0, 1.0, n) ** 2 + 1e-3
    r = rng.binomial(1, 0.4, n).astype(float) * rng.uniform(0.5, 1.0, n)
    iw = pi_e / pi_b
    ipw = float(np.mean(r * iw))
    snipw_round = r * iw / iw.mean()
    snipw = float(np.sum(r * iw) / np.sum(iw))
    lam = np.log(pi_e) - np.log(pi_b)
    rows = OffPolicyRows(reward=r, residual=np.zeros(n), labelled=np.zeros(n, bool),
                         weights=hajek_weights(lam), ratio=np.exp(lam))
    v_ips, v_sn = ips(rows), snips(rows)
    assert abs(v_ips.value - ipw) < TOL
    assert abs(v_sn.value - snipw) < TOL
    assert abs(snipw_round.mean() - v_sn.value) < TOL
    # per-row: IPS φ_i = r_i iw_i − ψ; SNIPS φ_i + ψ·w_i is OBP's SNIPW round reward
    np.testing.assert_allclose(v_ips.influence, r * iw - ipw, rtol=0, atol=TOL)
    np.testing.assert_allclose(v_sn.influence + v_sn.value * rows.weights, snipw_round,
                               rtol=0, atol=TOL)


# ================================================================================================
# 3. End-to-end hand computation of cje.analyze on 12 prompts (K = 2)
# ================================================================================================
GRID = (0.2, 0.4, 0.6, 0.8)
E2E_PID = [f"p{i:02d}" for i in range(12)]
# judge scores and labels; rows 0–7 labelled. Chosen so that (with the hash folds asserted in
# the test) every grid value occurs in each fold's logged rows: the SIMCal candidates are then
# evaluated only at fitted points (no interpolation convention enters the comparison).
E2E_S = [0.2, 0.4, 0.6, 0.2, 0.8, 0.4, 0.6, 0.8, 0.6, 0.4, 0.2, 0.8]
E2E_Y = [0.30, 0.10, 0.70, 0.20, 0.90, 0.05, 0.40, 0.95] + [np.nan] * 4
E2E_LAM = {"A": [0.3, -0.5, 0.8, 0.1, -0.2, 1.1, 0.4, -0.9, 0.6, 0.0, -0.4, 0.7],
           "B": [-0.6, 0.2, -0.1, 0.9, 0.5, -0.3, 0.0, 0.4, -0.8, 1.0, 0.3, -0.2]}
E2E_BASE = [-20.0 - 0.5 * i for i in range(12)]
E2E_FRESH = {"A": [(0.4, 0.6), (0.8, 0.6), (0.2, 0.8), (0.6, 0.6), (0.8, 0.8), (0.4, 0.2),
                   (0.6, 0.8), (0.2, 0.4), (0.8, 0.4), (0.6, 0.2), (0.4, 0.4), (0.8, 0.6)],
             "B": [(0.2, 0.2), (0.4, 0.6), (0.6, 0.2), (0.4, 0.8), (0.2, 0.4), (0.6, 0.6),
                   (0.8, 0.2), (0.4, 0.4), (0.2, 0.6), (0.8, 0.8), (0.6, 0.4), (0.2, 0.2)]}


def _e2e_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    logged = pd.DataFrame({
        "prompt_id": E2E_PID, "policy": "base", "judge_score": E2E_S, "oracle_label": E2E_Y,
        "logprob_base": E2E_BASE,
        **{f"logprob[{t}]": np.add(E2E_BASE, lam) for t, lam in E2E_LAM.items()},
    })
    fresh = pd.DataFrame([
        {"prompt_id": E2E_PID[j], "policy": t, "draw_idx": d, "judge_score": sc[d]}
        for t, pairs in E2E_FRESH.items() for j, sc in enumerate(pairs) for d in range(2)
    ])
    return logged, fresh


def _psd(m: np.ndarray) -> np.ndarray:
    """Nearest positive semi-definite matrix (negative eigenvalues set to zero)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return vecs @ np.diag(np.clip(vals, 0.0, None)) @ vecs.T


_E2E_GAP_PHI: dict = {}  # (target, estimator, residual weights) -> full-data gap, its influence
_E2E_PHI: dict = {}  # (target, estimator, residual weights) -> influence values, residual part


def _e2e_hand(target: str, estimator: str, residual_weights: str = "raw"
              ) -> tuple[float, float, float, float]:
    """The whole off-policy pipeline by hand (METHODS §2.2, §3, §4, §5.1–5.2), K = 2."""
    s = np.array(E2E_S)
    y = np.array(E2E_Y)
    lab = ~np.isnan(y)
    n = s.size
    stable_resid = residual_weights == "stable"
    fold = prompt_folds(np.array(E2E_PID, dtype=object), lab, 2, seed=0)  # one row per prompt
    assert sorted(np.bincount(fold[lab]).tolist()) == [4, 4]
    for k in (0, 1):  # precondition of the no-interpolation design (see E2E_S)
        assert set(s[fold == k]) == set(GRID), "hash folds changed: re-pick E2E_S"
    lam = np.array(E2E_LAM[target])
    w = np.array([n * np.exp(x) / sum(np.exp(lam)) for x in lam])  # Hájek, by definition
    f_s = np.array(E2E_FRESH[target])  # fresh-draw judge scores, (prompt, draw)

    def fit_without(deleted: set[int]):
        keep = lab & ~np.isin(fold, list(deleted))
        return lambda x: _iso(s[keep], y[keep], np.atleast_1d(x))

    def simcal(index) -> np.ndarray:
        """SIMCal-W for K = 2 (one other fold: in-sample candidate fits for the stacking)."""
        stable = np.empty(n)
        for k in (0, 1):
            ik = index(k)  # the calibration that never saw fold k's labels
            keys = sorted({(float(ik(g)[0]), g) for g in GRID})  # order by (index, S)
            rank = np.array([[key[1] for key in keys].index(v) for v in s], dtype=float)
            tr, ap = fold != k, fold == k
            n_tr = int(tr.sum())
            cands = (_iso(rank[tr], w[tr], rank[tr], increasing=True),
                     _iso(rank[tr], w[tr], rank[tr], increasing=False), w[tr])
            z = ik(s[tr])  # reward under that calibration
            lab_tr = lab[tr]
            e = np.where(lab_tr, np.nan_to_num(y[tr]) - z, 0.0) * (n_tr / lab_tr.sum())
            if stable_resid:
                z, common = z + e, np.zeros(n_tr)
            else:  # raw-weighted residual term, shared by every candidate
                wr = w[tr] / w[tr].mean()
                common = wr * (e - np.sum(wr * e) / n_tr)
            psis, T = [], []
            for wc in cands:
                psi_c = np.sum(wc * z) / np.sum(wc)
                psis.append(psi_c)
                T.append(wc * (z - psi_c) / wc.mean() + common)  # one row per prompt
            T, psis = np.array(T), np.array(psis)
            # MSE objective of the stacking: clustered variance G/(G−1)/n² Σ_g T_g T_g' over the
            # prompts of the other fold (one row per prompt: G = n) plus the squared bias of each
            # candidate against the raw weights, b b' minus the sampling variance of b.
            scale = n_tr / (n_tr - 1) / n_tr**2
            D = T - T[2]
            b = psis - psis[2]  # bias relative to the raw (unbiased) weights
            mse = _psd(scale * T @ T.T + np.outer(b, b) - scale * D @ D.T)
            alpha = _simplex_qp(mse)
            parts = (_iso(rank[tr], w[tr], rank[ap], increasing=True),
                     _iso(rank[tr], w[tr], rank[ap], increasing=False), w[ap])
            wk = sum(a * p / p.mean() for a, p in zip(alpha, parts, strict=True))
            stable[ap] = wk / wk.mean()
        return stable

    gaps: dict[frozenset[int], tuple[float, float]] = {}

    def run(deleted: set[int]) -> tuple[float, np.ndarray, np.ndarray]:
        f = fit_without(deleted)  # the calibration of this replicate

        def index(k: int):  # fitted without fold k's labels too (unless that leaves none)
            d = deleted | {k}
            return fit_without(d) if d != {0, 1} else fit_without(deleted)

        R = f(s)
        oof = np.array([index(fold[i])(s[i])[0] for i in range(n)])
        e = np.where(lab, np.nan_to_num(y) - oof, 0.0)
        sr = np.where(lab, e / (lab.sum() / n), 0.0)  # (L/p_L) e
        # the labelled share p_L is estimated too: − ψ_e (L/p_L − 1) centres the residual term
        centre = np.where(lab, n / lab.sum(), 0.0) - 1.0
        if estimator == "snips":
            psi = float(np.sum(w * (R + sr)) / np.sum(w))
            psi_e = float(np.sum(w * sr) / np.sum(w))
            return psi, w * (R + sr - psi) - psi_e * centre, own(w * sr)
        ws = simcal(index)
        v = ws if stable_resid else w  # weights on the residual term
        psi_e = float(np.sum(v * sr) / np.sum(v))
        phi_e = v * (sr - psi_e) - psi_e * centre
        # transport gap: the residual correction with raw minus with stabilised weights, and its
        # clustered variance (influence w(x − ψ_raw) − w̃(x − ψ_stable) − gap·centre, one row per
        # prompt)
        psi_raw_e = float(np.sum(w * sr) / np.sum(w))
        gap = psi_raw_e - psi_e
        gap_phi = w * (sr - psi_raw_e) - v * (sr - psi_e) - gap * centre
        gaps[frozenset(deleted)] = ((gap, _cluster_var(gap_phi, E2E_PID))
                                    if stable_resid else (0.0, 0.0))
        if not deleted:
            _E2E_GAP_PHI[(target, estimator, residual_weights)] = (gap, gap_phi)
        # the stabilised-weight term's influence includes w̃'s estimation: raw w, centred
        if estimator == "calibrated-ips":
            psi_r = float(np.sum(ws * R) / np.sum(ws))
            phi_r = w * (R - psi_r)
            return psi_r + psi_e, phi_r - phi_r.mean() + phi_e, own(v * sr)
        q = oof  # DR-CPO outcome model: the cross-fitted calibrator
        gbar = np.array([np.mean(index(fold[i])(f_s[i])) for i in range(n)])
        psi_c = float(np.sum(ws * (R - q)) / np.sum(ws))
        psi = float(gbar.mean()) + psi_c + psi_e
        phi_c = w * (R - q - psi_c)
        return psi, (gbar - gbar.mean()) + phi_c - phi_c.mean() + phi_e, own(v * sr)

    def own(x: np.ndarray) -> np.ndarray:
        """The residual term's part on the labelled rows, centred there: v_i (L_i/p_L) e_i
        minus its mean over the labelled rows."""
        return x[lab] - x[lab].mean()

    psi, phi, part = run(set())
    _E2E_PHI[(target, estimator, residual_weights)] = (phi, part)
    # the residual part rests on the m = 8 labelled prompts (one row each): it takes their
    # factor m/(m − 1) in place of the G/(G − 1) of the 12 prompts (docs: Methods › Off-policy)
    m, g = int(lab.sum()), len(E2E_PID)
    var_if = _cluster_var(phi, E2E_PID) + (m / (m - 1) - g / (g - 1)) * float(part @ part) / n**2
    reps = [run({k})[0] for k in (0, 1)]
    var_cal = (2 - 1) / 2 * sum((x - np.mean(reps)) ** 2 for x in reps)
    gap, gap_var = gaps.get(frozenset(), (0.0, 0.0))
    return psi, var_if, var_cal, gap**2 + gap_var  # allowance: full-data gap² + Var(gap)


@pytest.mark.parametrize(("estimator", "residual_weights"),
                         [("snips", "raw"), ("calibrated-ips", "raw"), ("calibrated-ips", "stable"),
                          ("dr-cpo", "raw"), ("dr-cpo", "stable")])
@pytest.mark.parametrize("target", ["A", "B"])
def test_analyze_end_to_end_by_hand(estimator: str, residual_weights: str, target: str) -> None:
    # cje.analyze's estimate, Var_IF and Var_cal (OUA jackknife that re-runs everything
    # downstream of the calibrator, incl. SIMCal-W) equal a from-scratch computation with
    # sklearn's isotonic regression, the hash folds, and the formulas of METHODS §3–5.
    logged, fresh = _e2e_frames()
    rep = cje.analyze(logged, fresh_draws=fresh, estimator=estimator, n_folds=2, mode="monotone",
                      residual_weights=residual_weights, **SCALES)
    assert rep.calibration.mode == "monotone" and rep.calibration.n_folds == 2
    est = rep[target]
    psi, var_if, var_cal, var_tr = _e2e_hand(target, estimator, residual_weights)
    assert est.n == 12 and est.n_prompts == 12 and est.n_labels == 8
    assert abs(est.estimate - psi) < 1e-10
    assert abs(est.var_if - var_if) < 1e-10
    assert abs(est.var_cal - var_cal) < 1e-10
    assert var_cal > 0  # the comparison is not 0 == 0
    assert abs(est.var_transport - var_tr) < 1e-12
    assert (var_tr > 0) == (residual_weights == "stable")
    assert abs(est.se - np.sqrt(var_if + var_cal + var_tr)) < 1e-10


@pytest.mark.parametrize("estimator", ["calibrated-ips", "dr-cpo"])
def test_contrast_allowance_of_two_stabilised_targets_by_hand(estimator: str) -> None:
    # Both targets' residuals use the stabilised weights: the contrast A − B carries
    # (gap_A − gap_B)² + Var(gap_A − gap_B), the variance of the difference of the two gaps'
    # influence values prompt by prompt (both rest on the same labelled logged rows) — not
    # (allowance_A − allowance_B)², which is zero for equal allowances however noisy each gap is.
    logged, fresh = _e2e_frames()
    rep = cje.analyze(logged, fresh_draws=fresh, estimator=estimator, n_folds=2, mode="monotone",
                      residual_weights="stable", **SCALES)
    for t in ("A", "B"):
        _e2e_hand(t, estimator, "stable")
    (ga, pa), (gb, pb) = (_E2E_GAP_PHI[(t, estimator, "stable")] for t in ("A", "B"))
    want = (ga - gb) ** 2 + _cluster_var(pa - pb, E2E_PID)
    (c,) = [c for c in rep.pairs if {c.policy_a, c.policy_b} == {"A", "B"}]
    assert abs(c.var_transport - want) < 1e-12
    old = (np.sign(ga) * np.sqrt(rep["A"].var_transport) - np.sign(gb) * np.sqrt(rep["B"].var_transport)) ** 2
    assert abs(want - old) > 1e-6  # the two formulas differ on this data


@pytest.mark.parametrize("estimator", ["snips", "calibrated-ips", "dr-cpo"])
def test_contrast_residual_parts_by_hand(estimator: str) -> None:
    # The paired contrast A − B: prompt-clustered variance of φ_A − φ_B with G/(G − 1), whose
    # residual parts (both on the same 8 labelled logged rows, with the two targets' weights)
    # are differenced row by row and take the labelled prompts' factor m/(m − 1) instead.
    logged, fresh = _e2e_frames()
    rep = cje.analyze(logged, fresh_draws=fresh, estimator=estimator, n_folds=2, mode="monotone",
                      residual_weights="raw", **SCALES)
    for t in ("A", "B"):
        _e2e_hand(t, estimator, "raw")
    (phi_a, part_a), (phi_b, part_b) = (_E2E_PHI[(t, estimator, "raw")] for t in ("A", "B"))
    n, g, m = len(E2E_PID), len(E2E_PID), part_a.size
    d = part_a - part_b
    want = _cluster_var(phi_a - phi_b, E2E_PID) + (m / (m - 1) - g / (g - 1)) * float(d @ d) / n**2
    (c,) = [c for c in rep.pairs if {c.policy_a, c.policy_b} == {"A", "B"}]
    assert abs(c.var_if - want) < 1e-12
    # not the sum of the two sides' own-part corrections (the parts share their rows)
    apart = (_cluster_var(phi_a - phi_b, E2E_PID)
             + (m / (m - 1) - g / (g - 1)) * float(part_a @ part_a + part_b @ part_b) / n**2)
    assert abs(want - apart) > 1e-6


# ================================================================================================
# 4. SIMCal-W properties
# ================================================================================================
def _simcal_inputs(seed: int = 11, n: int = 600, oracle_fraction: float = 0.3, y_override=None):
    """SIMCal-W inputs from the synthetic DGP, with the index built by sklearn per fold."""
    sim = make_offpolicy_eval(n, targets={"moderate": theta_for_ess(0.6)},
                              oracle_fraction=oracle_fraction, n_fresh_per_prompt=0, rng=seed)
    lg = sim.logged
    s = lg["judge_score"].to_numpy()
    y = lg["oracle_label"].to_numpy().copy() if y_override is None else y_override
    lab = ~np.isnan(y)
    K = 5
    fold = prompt_folds(lg["prompt_id"].to_numpy(object), lab, K, seed=0)
    uniq, codes = np.unique(s, return_inverse=True)
    index = np.vstack([_iso(s[lab & (fold != k)], y[lab & (fold != k)], uniq) for k in range(K)])
    w = hajek_weights((lg["logprob[moderate]"] - lg["logprob_base"]).to_numpy())
    return dict(w=w, codes=codes, fold=fold, index=index, y=y, tiebreak=uniq, s=s, lab=lab)


def test_simcal_weights_mean_one_per_fold_and_positive() -> None:
    d = _simcal_inputs()
    res = simcal_weights(d["w"], d["codes"], d["fold"], d["index"], d["y"],
                         tiebreak=d["tiebreak"])
    assert np.all(res.weights > 0) and np.all(np.isfinite(res.weights))
    for k in range(5):
        assert abs(res.weights[d["fold"] == k].mean() - 1.0) < TOL
    # mixtures on the simplex, gamma 0 without a cap
    assert np.all(res.mixture >= 0) and np.allclose(res.mixture.sum(axis=1), 1.0, atol=TOL)
    assert res.gamma == 0.0
    # stabilisation lowers the weight variance here (ESS up)
    assert np.var(res.weights) < np.var(d["w"])
    # with a cap: variance of the capped weights = ρ exactly, γ = 1 − sqrt(ρ / Var(w))
    v0 = float(np.var(res.weights))
    capped = simcal_weights(d["w"], d["codes"], d["fold"], d["index"], d["y"],
                            tiebreak=d["tiebreak"], var_cap=v0 / 4)
    assert abs(capped.gamma - 0.5) < 1e-12
    assert abs(np.var(capped.weights) - v0 / 4) < 1e-12
    for k in range(5):
        assert abs(capped.weights[d["fold"] == k].mean() - 1.0) < TOL


def test_order_rank_and_iso_by_rank_against_sklearn() -> None:
    # order_rank = position of (index, tiebreak) among the distinct pairs (sorted tuples), and
    # each candidate fit is monotone along it and equals sklearn's weighted isotonic regression
    # on the ranks of the training rows (at every rank with training mass).
    d = _simcal_inputs()
    uniq = d["tiebreak"]
    for k in range(5):
        ix = d["index"][k]
        rank = order_rank(ix, uniq)
        pairs = sorted(set(zip(ix.tolist(), uniq.tolist(), strict=True)))
        assert rank.tolist() == [pairs.index(p) for p in zip(ix.tolist(), uniq.tolist(), strict=True)]
        tr = d["fold"] != k
        num = np.bincount(d["codes"][tr], weights=d["w"][tr], minlength=uniq.size)
        den = np.bincount(d["codes"][tr], minlength=uniq.size).astype(float)
        row_rank = rank[d["codes"][tr]]
        has = np.flatnonzero(den > 0)
        for increasing in (True, False):
            fit = iso_by_rank(rank, num, den, increasing=increasing)
            along = fit[np.argsort(rank, kind="stable")]
            steps = np.diff(along)
            assert np.all(steps >= 0) if increasing else np.all(steps <= 0)
            ref = _iso(row_rank, d["w"][tr], rank[has], increasing=increasing)
            np.testing.assert_allclose(fit[has], ref, rtol=0, atol=1e-12)


def test_simcal_never_sees_the_labels_of_the_fold_it_weights() -> None:
    # Perturb the oracle labels of fold k's rows only, rebuild the index table honestly (index[k]
    # is fitted without fold k, so it does not move; index[j ≠ k] does): the stabilised weights of
    # fold k's rows stay bit-for-bit the same, while some other fold's weights move (so the
    # labels do matter and the test can fail).
    d = _simcal_inputs()
    base = simcal_weights(d["w"], d["codes"], d["fold"], d["index"], d["y"],
                          tiebreak=d["tiebreak"])
    rng = np.random.default_rng(5)
    for k in (0, 3):
        y2 = d["y"].copy()
        mine = d["lab"] & (d["fold"] == k)
        y2[mine] = 1.0 - y2[mine] * rng.uniform(0.0, 1.0, mine.sum())  # reverse their order
        d2 = _simcal_inputs(y_override=y2)
        assert np.array_equal(d2["index"][k], d["index"][k])
        assert not np.array_equal(d2["index"], d["index"])
        res = simcal_weights(d2["w"], d2["codes"], d2["fold"], d2["index"], d2["y"],
                             tiebreak=d2["tiebreak"])
        rows_k = d["fold"] == k
        assert np.array_equal(res.weights[rows_k], base.weights[rows_k])
        assert np.array_equal(res.mixture[k], base.mixture[k])
        assert not np.array_equal(res.weights[~rows_k], base.weights[~rows_k])


@pytest.mark.parametrize(("residual_weights", "pop_ess", "max_ratio"),
                         [("stable", 0.1, 0.75), ("auto", 0.01, 0.6)])
def test_calibrated_ips_beats_snips_in_monte_carlo(residual_weights: str, pop_ess: float,
                                                    max_ratio: float) -> None:
    # 40 seeds of the DGP (judge noise 0.1) with a far target, 10% labels. We compare the
    # *empirical* variance of the estimates across seeds — the sampling variance the stabiliser
    # is meant to cut — rather than the mean Var_IF. Paired samples on the same data: the
    # Pitman–Morgan test, Var(X) < Var(Y) ⇔ Cov(X + Y, X − Y) < 0.
    # * residual_weights="stable" (the CJE paper's calibrated IPS) at raw ESS 10%: measured
    #   ratio 0.47 (threshold 0.75).
    # * the default "auto" at raw ESS 1%, where it stabilises the residual in 72% of these
    #   samples (sample raw ESS < 10%): measured ratio 0.36 (threshold 0.6). At 10–25% labels the
    #   raw-weighted residual term dominates; with raw residual weights calibrated IPS has about
    #   SNIPS's variance (ratio 0.99–1.00 in simulations/results/study_residual_weights.md).
    # The F-test-like thresholds leave room for the sampling error of a variance ratio from 40
    # paired draws (the Pitman–Morgan p-value is the significance check).
    from scipy import stats

    cips, sn, ess = [], [], []
    for seed in range(40):
        sim = make_offpolicy_eval(300, targets={"far": theta_for_ess(pop_ess)}, oracle_fraction=0.1,
                                  n_fresh_per_prompt=0, rng=1000 + seed)
        c = cje.analyze(sim.logged, estimator="calibrated-ips", residual_weights=residual_weights,
                        **SCALES)["far"]
        cips.append(c.estimate)
        ess.append((c.diagnostics["ess_stable"], c.diagnostics["ess_raw"]))
        sn.append(cje.analyze(sim.logged, estimator="snips", **SCALES)["far"].estimate)
    x, yv = np.array(cips), np.array(sn)
    assert np.var(x, ddof=1) < max_ratio * np.var(yv, ddof=1)
    r, p = stats.pearsonr(x + yv, x - yv)
    assert r < 0 and p / 2 < 0.01
    # and the stabilised weights have a larger ESS than the raw ones in every replicate
    assert all(a > b for a, b in ess)


@pytest.mark.parametrize("estimator", ["calibrated-ips", "dr-cpo", "stacked-dr"])
def test_auto_residual_weights_follow_the_raw_ess(estimator: str) -> None:
    # residual_weights="auto" (the default) is "raw" for a target whose sample raw-weight ESS is
    # at least 10% and whose Hill tail index is at least 1, and "stable" otherwise — the same
    # numbers, bit for bit, as asking for that weighting — and says which in the diagnostics and,
    # when stabilised, in the CAUTION reason. Population raw ESS 60% and 1% (sample 0.6 and ~0.01).
    sim = make_offpolicy_eval(600, targets={"near": theta_for_ess(0.6), "far": theta_for_ess(0.01)},
                              oracle_fraction=0.2, n_fresh_per_prompt=1, rng=5)
    fresh = None if estimator == "calibrated-ips" else sim.fresh
    rep = {rw: cje.analyze(sim.logged, fresh_draws=fresh, estimator=estimator,
                           residual_weights=rw, **SCALES) for rw in ("auto", "raw", "stable")}
    near_d = rep["auto"]["near"].diagnostics
    assert near_d["ess_raw"] >= 0.10 and near_d["hill_raw"] >= 1.0
    assert rep["auto"]["far"].diagnostics["ess_raw"] < 0.10
    for target, expect in (("near", "raw"), ("far", "stable")):
        got, ref = rep["auto"][target], rep[expect][target]
        assert (got.estimate, got.var_if, got.var_cal, got.var_transport, got.se) == (
            ref.estimate, ref.var_if, ref.var_cal, ref.var_transport, ref.se)
        assert got.diagnostics["residual_weights"] == expect
        other = rep["stable" if expect == "raw" else "raw"][target]
        assert got.estimate != other.estimate  # the choice matters on this data
    # the stabilised residual's allowance: the gap between the raw- and the stabilised-weight
    # residual corrections, squared, plus the gap's sampling variance, in the SE (and in every
    # contrast with that policy)
    far = rep["auto"]["far"]
    gap, gap_se = far.diagnostics["transport_gap"], far.diagnostics["transport_gap_se"]
    assert gap != 0 and gap_se > 0 and rep["auto"]["near"].var_transport == 0
    assert "transport_gap" not in rep["auto"]["near"].diagnostics
    allowance = gap**2 + gap_se**2
    assert far.var_transport == pytest.approx(allowance, rel=1e-12)
    assert far.se == pytest.approx(np.sqrt(far.var_if + far.var_cal + allowance), rel=1e-12)
    c = next(c for c in rep["auto"].pairs if {c.policy_a, c.policy_b} == {"near", "far"})
    assert c.var_transport == pytest.approx(allowance, rel=1e-12)
    assert c.se == pytest.approx(np.sqrt(c.var_if + c.var_cal + allowance), rel=1e-12)
    assert any("stabilised weights" in r and "transports" in r and f"{gap:+.3f} ± {gap_se:.3f}" in r
               for r in far.reasons)
    assert rep["auto"]["far"].status == "CAUTION"
    assert "residual on stabilised weights" in rep["auto"].summary()
    assert rep["auto"].diagnostics("overlap").set_index("policy").loc["far", "residual_weights"] \
        == "stable"


def test_auto_residual_weights_follow_the_tail() -> None:
    # At a raw ESS of at least 10%, a Hill tail index below 1 (the largest weights dominate)
    # switches "auto" to the stabilised weights too, and the DR gate says why in one reason.
    # Built to trip it: the Gaussian-tilt logs at population ESS 60%, with the 30 largest log
    # weights (the Hill estimator's k at n = 600) respaced evenly from 0.1 to 2.5 nats above the
    # 31st: sample ESS 18%, Hill 0.77.
    sim = make_offpolicy_eval(600, targets={"near": theta_for_ess(0.6)}, oracle_fraction=0.3,
                              rng=5)
    logged = sim.logged.copy()
    lw = (logged["logprob[near]"] - logged["logprob_base"]).to_numpy(copy=True)
    order = np.argsort(lw)[::-1]
    lw[order[:30]] = lw[order[30]] + np.linspace(2.5, 0.1, 30)
    logged["logprob[near]"] = logged["logprob_base"] + lw
    rep = {rw: cje.analyze(logged, fresh_draws=sim.fresh, estimator="dr-cpo", residual_weights=rw,
                           **SCALES) for rw in ("auto", "stable")}
    e = rep["auto"]["near"]
    d = e.diagnostics
    assert d["ess_raw"] >= 0.10 and d["hill_raw"] < 1.0, (d["ess_raw"], d["hill_raw"])
    assert d["residual_weights"] == "stable"
    assert (e.estimate, e.se) == (rep["stable"]["near"].estimate, rep["stable"]["near"].se)
    tail = [r for r in e.reasons if "largest weights dominate" in r]
    assert e.status == "CAUTION" and len(tail) == 1 and "transports" in tail[0]
    assert "Weight tails" in tail[0] and "infinite" not in " ".join(e.reasons)


def test_residual_weights_option_is_checked() -> None:
    sim = make_offpolicy_eval(200, oracle_fraction=0.2, rng=0)
    with pytest.raises(cje.CJEInputError, match="residual_weights must be 'auto', 'raw' or 'stable'"):
        cje.analyze(sim.logged, estimator="calibrated-ips", residual_weights="hajek", **SCALES)


# ================================================================================================
# 5. Var_cal differs between estimators (the jackknife refits everything downstream)
# ================================================================================================
def test_var_cal_differs_between_estimators() -> None:
    sim = make_offpolicy_eval(400, oracle_fraction=0.25, n_fresh_per_prompt=1, rng=1)
    vc = {}
    for est in ("snips", "calibrated-ips", "dr-cpo", "tmle", "mrdr"):
        rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=est, **SCALES)
        vc[est] = rep["moderate"].var_cal
    assert all(np.isfinite(v) and v > 0 for v in vc.values()), vc
    vals = sorted(vc.values())
    # pairwise distinct (relative gap), not merely "not all equal"
    assert all(b - a > 1e-6 * b for a, b in itertools.pairwise(vals)), vc


# ================================================================================================
# 6. reliable_only hides REFUSED rows and never changes a number
# ================================================================================================
def test_reliable_only_never_changes_a_number() -> None:
    sim = make_offpolicy_eval(300, oracle_fraction=0.3, n_fresh_per_prompt=1,
                              fresh_oracle_fraction=1.0, rng=4)
    far = sim.fresh[sim.fresh["policy"] == "far"].head(60)
    probe = far[["prompt_id", "judge_score"]].assign(
        oracle_label=np.minimum(far["oracle_label"].to_numpy() + 0.35, 1.0))
    rep = cje.analyze(sim.logged, estimator="snips", probes={"far": probe}, transport_margin=0.05,
                      probe_correction=False, **SCALES)  # audit only: the FAIL refuses 'far'
    full = rep.to_pandas()
    shown = rep.to_pandas(reliable_only=True)
    refused = set(full.loc[full["status"] == "REFUSED", "policy"])
    assert refused == {"far"}  # the test has both kinds of rows
    assert set(shown["policy"]) == set(full["policy"]) - refused
    expected = full[full["status"] != "REFUSED"].reset_index(drop=True)
    # the shown frame is the full frame minus the refused rows: same values, same column order;
    # the only columns it may lack are diagnostics that only the hidden rows have
    assert [c for c in full.columns if c in shown.columns] == list(shown.columns)
    for c in set(full.columns) - set(shown.columns):
        assert c.startswith("diag_") and expected[c].isna().all(), c
    pd.testing.assert_frame_equal(shown.reset_index(drop=True), expected[list(shown.columns)],
                                  check_exact=True)
    # and the objects behind the frame are the very same estimates
    assert [e.policy for e in rep._shown(True)] == list(shown["policy"])


# ================================================================================================
# 7. Bad input
# ================================================================================================
def _small() -> tuple[pd.DataFrame, pd.DataFrame]:
    sim = make_offpolicy_eval(60, targets={"A": 0.5, "B": -0.5}, oracle_fraction=0.4,
                              n_fresh_per_prompt=1, rng=7)
    return sim.logged.copy(), sim.fresh.copy()


@pytest.mark.parametrize("bad", [0.5, np.inf, -np.inf])
def test_bad_logprob_value_names_column_and_row(bad: float) -> None:
    lg, _ = _small()
    lg.loc[3, "logprob[A]"] = bad
    pid = lg.loc[3, "prompt_id"]
    with pytest.raises(CJEInputError, match=rf"logprob\[A\].*row 3 \(prompt_id='{pid}'\)"):
        cje.analyze(lg, estimator="snips", **SCALES)


def test_target_with_every_logprob_missing() -> None:
    lg, _ = _small()
    lg["logprob[B]"] = np.nan
    with pytest.raises(CJEInputError, match="Target 'B' has no usable logged rows"):
        cje.analyze(lg, estimator="snips", **SCALES)


def test_dr_needs_fresh_draws() -> None:
    lg, _ = _small()
    for est in ("dr-cpo", "mrdr", "tmle", "stacked-dr"):
        with pytest.raises(CJEInputError, match="fresh_draws"):
            cje.analyze(lg, estimator=est, **SCALES)


def test_dr_prompt_without_fresh_draws_raise_then_drop() -> None:
    lg, fr = _small()
    gone = ["p00007", "p00011"]
    fr2 = fr[~((fr["policy"] == "A") & fr["prompt_id"].isin(gone))]
    with pytest.raises(CJEInputError, match=r"Target 'A'.*prompt_id='p00007'.*on_missing='drop'"):
        cje.analyze(lg, fresh_draws=fr2, estimator="dr-cpo", **SCALES)
    rep = cje.analyze(lg, fresh_draws=fr2, estimator="dr-cpo", on_missing="drop", **SCALES)
    da = rep["A"].diagnostics
    excl = {k: v for k, v in da.items() if k.startswith("excluded_")}
    assert sum(excl.values()) == 2 and da["n_excluded"] == 2, da
    assert rep["A"].n == 58 and rep["A"].n_prompts == 58
    assert rep["B"].n == 60 and rep["B"].diagnostics["n_excluded"] == 0
    assert not any(k.startswith("excluded_") for k in rep["B"].diagnostics)


def test_dr_fresh_draws_on_prompts_without_logged_rows_are_named() -> None:
    """Fresh draws on prompts the logged data lacks do not move the DR estimate (it averages the
    logged prompts' draws), but they did move the raw judge mean beside it without a word."""
    lg, fr = _small()
    extra = fr[fr["policy"] == "A"].head(5).assign(prompt_id=[f"new{i}" for i in range(5)],
                                                   judge_score=0.0)
    a = cje.analyze(lg, fresh_draws=fr, estimator="dr-cpo", **SCALES)
    b = cje.analyze(lg, fresh_draws=pd.concat([fr, extra]), estimator="dr-cpo", **SCALES)
    assert b["A"].estimate == a["A"].estimate and b["A"].se == a["A"].se
    assert b["A"].naive_estimate != a["A"].naive_estimate
    said = [n for n in b.notices if "without logged rows" in n]
    assert said == [n for n in b.notices if n.startswith("5 fresh draws of 'A' are on 5 prompt(s)")]
    assert len(said) == 1 and not [n for n in a.notices if "without logged rows" in n]


def test_offpolicy_estimator_without_logprobs() -> None:
    lg, _ = _small()
    plain = lg[["prompt_id", "policy", "judge_score", "oracle_label"]]
    with pytest.raises(CJEInputError, match="logprob_base"):
        cje.analyze(plain, estimator="snips", **SCALES)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"estimator": "snip"}, "estimator must be one of"),
     ({"estimator": "SNIPS"}, "estimator must be one of"),
     ({"var_cap": 0}, "var_cap"),
     ({"var_cap": -0.5}, "var_cap"),
     ({"estimator": "mrdr", "mrdr_omega": "w^2"}, "mrdr_omega"),
     ({"estimator": "dr-cpo", "on_missing": "skip"}, "on_missing")],
)
def test_bad_arguments(kwargs: dict, pattern: str) -> None:
    lg, fr = _small()
    with pytest.raises(CJEInputError, match=pattern):
        cje.analyze(lg, fresh_draws=fr, **{"estimator": "snips", **kwargs}, **SCALES)


def test_missing_target_logprob_excluded_for_that_target_only() -> None:
    lg, _ = _small()
    ref = cje.analyze(lg, estimator="calibrated-ips", **SCALES)
    lg.loc[[2, 5, 9], "logprob[A]"] = np.nan
    rep = cje.analyze(lg, estimator="calibrated-ips", **SCALES)
    a, b = rep["A"], rep["B"]
    assert a.diagnostics["n_excluded"] == 3 and a.n == 57
    assert sum(v for k, v in a.diagnostics.items() if k.startswith("excluded_")) == 3
    assert b.diagnostics["n_excluded"] == 0 and b.n == 60
    # the other target, and the logging policy, are untouched (bit for bit)
    for pol in ("B", "base"):
        for f in ("estimate", "se", "var_if", "var_cal", "ci_low", "ci_high"):
            assert getattr(rep[pol], f) == getattr(ref[pol], f), (pol, f)
    assert a.estimate != ref["A"].estimate


# ================================================================================================
# Regression tests for bugs found while writing this file (fixed)
# ================================================================================================
def test_regression_policies_selects_offpolicy_targets() -> None:
    lg, _ = _small()
    full = cje.analyze(lg, estimator="snips", **SCALES)
    sub = cje.analyze(lg, estimator="snips", policies=["A"], **SCALES)
    assert [e.policy for e in sub.estimates] == ["A"]
    assert sub["A"].estimate == full["A"].estimate


def test_regression_logging_policy_out_of_range_gate() -> None:
    lg, _ = _small()
    # labels only on logged rows with judge score <= median: many scores beyond the labelled range
    lg.loc[lg["judge_score"] > lg["judge_score"].median(), "oracle_label"] = np.nan
    off = cje.analyze(lg, estimator="snips", **SCALES)
    on = cje.analyze(lg[["prompt_id", "policy", "judge_score", "oracle_label"]], **SCALES)
    assert on["base"].status == "REFUSED"
    assert off["A"].status == "REFUSED"  # the target's gate sees the very same scores
    assert off["base"].estimate == pytest.approx(on["base"].estimate, abs=1e-12)
    assert off["base"].status == "REFUSED"


def test_regression_nan_logprob_base_is_an_input_error() -> None:
    lg, _ = _small()
    lg.loc[4, "logprob_base"] = np.nan
    with pytest.raises(CJEInputError, match=r"logprob_base.*row 4"):
        cje.analyze(lg, estimator="snips", **SCALES)


def test_regression_calibrated_ips_ignores_unused_fresh_draws() -> None:
    sim = make_offpolicy_eval(300, oracle_fraction=0.3, n_fresh_per_prompt=1, judge_grid=None,
                              rng=5)
    a = cje.analyze(sim.logged, estimator="calibrated-ips", **SCALES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator="calibrated-ips", **SCALES)
    for t in ("mild", "moderate", "far"):
        assert b[t].estimate == pytest.approx(a[t].estimate, abs=1e-12), t
        assert b[t].var_cal == pytest.approx(a[t].var_cal, rel=1e-9), t


# ------------------------------------------------------------------------------------------------
# the residual term's tail-aware variance (issue #14)
# ------------------------------------------------------------------------------------------------
def _tail_rows(heavy_labelled: bool) -> OffPolicyRows:
    """200 logged rows, 15 of them with 19 times the others' weight (raw ESS 20%), 40 labelled;
    the labels miss the heavy rows unless ``heavy_labelled``."""
    rng = np.random.default_rng(5)
    w = np.r_[np.full(185, 1.0), np.full(15, 19.0)]
    w = w / w.mean()
    lab = np.zeros(200, bool)
    lab[:40] = True
    if heavy_labelled:
        lab[[190, 195]] = True
    score = rng.uniform(0, 1, 200)
    e = np.where(lab, rng.normal(0, 0.2 + 0.2 * score), 0.0)
    return OffPolicyRows(reward=score, residual=e, labelled=lab, weights=w)


def test_tail_inflation_matches_hand_computation():
    from cje.estimators.offpolicy import _labelling_term, _residual_term, tail_inflation

    rows = _tail_rows(heavy_labelled=False)
    w, lab, e, r = rows.weights, rows.labelled, rows.residual, rows.reward
    n, m = 200, int(lab.sum())
    assert (w.sum() ** 2 / (w * w).sum()) / n < 0.30  # below TAIL_VARIANCE_ESS
    # by hand: Hájek residual term and its centred influence
    x = np.where(lab, e * n / m, 0.0)
    psi = (w * x).sum() / w.sum()
    phi = w * (x - psi) - psi * (np.where(lab, n / m, 0.0) - 1.0)
    # second moment of the residual per quintile of the labelled rows' rewards (m // 20 = 2
    # regions here: edges at the labelled median)
    edge = np.quantile(r[lab], 0.5)
    region = (r > edge).astype(int)
    h = np.array([np.mean(e[lab & (region == k)] ** 2) for k in (0, 1)])[region]
    design = (w * w * h).sum() * n / m - n * psi * psi
    c = np.sqrt(design / (phi * phi).sum())
    assert c > 1.5  # the labels missed every heavy row: the sample variance is far too small
    assert tail_inflation(w, rows, psi, phi) == pytest.approx(c, rel=1e-12)
    psi_e, phi_e, part = _residual_term(w, rows)
    assert psi_e == pytest.approx(psi, rel=1e-14)          # the estimate does not move
    np.testing.assert_allclose(phi_e, c * phi, rtol=1e-12)  # the influence values scale by c
    # and so does the part on the labelled rows: c (n/m)(w_i e_i − mean over the labels)
    we = w[lab] * e[lab]
    np.testing.assert_allclose(part, c * n / m * (we - we.mean()), rtol=1e-12)
    assert _labelling_term(rows, psi_e).shape == (n,)


def test_tail_inflation_never_narrows_and_stays_off_with_good_overlap():
    from cje.estimators.offpolicy import _labelling_term, _weighted, tail_inflation

    def factor(rows):
        psi, phi = _weighted(rows.weights, rows.scaled_residual)
        return tail_inflation(rows.weights, rows, psi, phi - _labelling_term(rows, psi))

    # labels on the heavy rows too: the sample variance sees them, the factor is at least 1
    assert factor(_tail_rows(heavy_labelled=True)) >= 1.0
    # flat weights (ESS 100%): exactly 1, so every number is unchanged with good overlap
    flat = _tail_rows(heavy_labelled=False)
    flat = OffPolicyRows(flat.reward, flat.residual, flat.labelled, np.ones(200))
    assert factor(flat) == 1.0
    # no labels, every row labelled: nothing to estimate, exactly 1
    heavy = _tail_rows(False).weights
    none = OffPolicyRows(flat.reward, np.zeros(200), np.zeros(200, bool), heavy)
    assert factor(none) == 1.0
    every = OffPolicyRows(flat.reward, np.full(200, 0.1), np.ones(200, bool), heavy)
    assert factor(every) == 1.0


def test_snips_residual_part_gets_the_tail_aware_variance():
    from cje.estimators.offpolicy import snips, tail_inflation

    rows = _tail_rows(heavy_labelled=False)
    w, lab, e, r = rows.weights, rows.labelled, rows.residual, rows.reward
    n, m = 200, int(lab.sum())
    x = np.where(lab, e * n / m, 0.0)
    psi = (w * (r + x)).sum() / w.sum()
    psi_e = (w * x).sum() / w.sum()
    labelling = psi_e * (np.where(lab, n / m, 0.0) - 1.0)
    phi_e = w * (x - psi_e) - labelling
    c = tail_inflation(w, rows, psi_e, phi_e)
    assert c > 1.5
    # by hand: the delta-method influence with the residual part scaled by c
    phi = w * (r - (psi - psi_e)) + c * phi_e
    v = snips(rows)
    assert v.value == pytest.approx(psi, rel=1e-14)
    np.testing.assert_allclose(v.influence, phi, rtol=1e-10, atol=1e-13)


def _random_target(seed: int, stable_residual: bool) -> LoggedTarget:
    """400 logged rows over 5 folds and 12 distinct scores, heavy-tailed weights (raw ESS well
    below TAIL_VARIANCE_ESS, so the tail inflation is active), 15% labels, one fresh draw on
    most prompts and two on some."""
    rng = np.random.default_rng(seed)
    n, k, u = 400, 5, 12
    distinct_s = np.sort(rng.uniform(0, 1, u))
    codes = rng.integers(0, u, n)
    fold = rng.integers(0, k, n)
    full = np.sort(rng.uniform(0.1, 0.9, u))
    index = np.clip(full + rng.normal(0, 0.03, (k, u)), 0, 1)
    oof = index[fold, codes]
    label = np.where(rng.random(n) < 0.15, np.clip(full[codes] + rng.normal(0, 0.2, n), 0, 1),
                     np.nan)
    lab = ~np.isnan(label)
    log_w = 1.5 * rng.standard_normal(n)
    w = np.exp(log_w) / np.exp(log_w).mean()
    fresh_cluster = np.r_[np.arange(0, n, 2), np.arange(0, 40)]
    return LoggedTarget(
        reward=full[codes], residual=np.where(lab, np.nan_to_num(label) - oof, 0.0), labelled=lab,
        weights=w, log_w=log_w, oof=oof, label=label, cluster=np.arange(n), fold=fold,
        codes=codes, stable_residual=stable_residual, index=index, distinct_s=distinct_s,
        full=full, used=np.arange(u), used_codes=codes, fresh_cluster=fresh_cluster,
        fresh_fold=fold[fresh_cluster], fresh_codes=rng.integers(0, u, fresh_cluster.size),
        fresh_label=np.where(rng.random(fresh_cluster.size) < 0.2, rng.uniform(0, 1, fresh_cluster.size),
                             np.nan),
        fresh_count=np.maximum(np.bincount(fresh_cluster, minlength=n), 1), cache={})


@pytest.mark.parametrize("stable_residual", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_value_is_the_estimates_value_bit_for_bit(seed: int, stable_residual: bool) -> None:
    """Estimator.value (what each OUA jackknife replicate asks for) equals estimate(x).value
    exactly, for every registered estimator — also under the tail inflation, which changes only
    the influence values."""
    from cje.estimators.offpolicy import TAIL_VARIANCE_ESS
    from cje.estimators.registry import _REGISTRY

    x = _random_target(seed, stable_residual)
    assert x.weights.sum() ** 2 / (x.weights ** 2).sum() < TAIL_VARIANCE_ESS * x.weights.size
    for name, cls in _REGISTRY.items():
        est = cls()
        assert est.value(x) == est.estimate(x).value, name
