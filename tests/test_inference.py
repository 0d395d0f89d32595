"""cje.inference: the vectorised paired contrasts against the per-pair loop they replaced."""

from __future__ import annotations

import numpy as np
import pytest

from cje.inference import (
    holm,
    jackknife_variance,
    paired_contrasts,
    satterthwaite_df,
    t_interval,
    t_pvalue,
)
from cje.report import Contrast


def _old_paired_contrasts(totals, present, values, reps, keep, names, k, alpha, width, gaps=None):
    """The per-pair loop of cje 0.1 (before issue #19), verbatim in its arithmetic except the
    prompt count of the df: the pair's effective prompts since 2026-12-07, written out here per
    pair, ``(1/G_a + 1/G_b)² / (1/G_a³ + 1/G_b³ + 2·shared/(G_a²·G_b²))``, capped at the union,
    and the df then capped at it minus one."""
    raw = []
    for i, a in enumerate(keep):
        for b in keep[i + 1:]:
            c = totals[a] - totals[b]
            g = int((present[a] | present[b]).sum())
            v_if = g / (g - 1) * float((c * c).sum()) if g > 1 else float("nan")
            v_cal = float(jackknife_variance(reps[:, a] - reps[:, b]))
            v_tr = 0.0 if gaps is None else float((gaps[a] - gaps[b]) ** 2)
            se = float(np.sqrt(v_if + v_cal + v_tr))
            ga, gb = float(present[a].sum()), float(present[b].sum())
            both = float((present[a] & present[b]).sum())
            g_eff = (1 / ga + 1 / gb) ** 2 / (1 / ga**3 + 1 / gb**3 + 2 * both / (ga**2 * gb**2))
            df = satterthwaite_df(v_if, v_cal, min(g, g_eff), k)
            if g_eff < g:  # capped at the effective prompts minus one
                df = min(max(df, 1.0), max(g_eff - 1, 1.0))
            delta = float(values[a] - values[b])
            lo, hi = t_interval(delta, se, df, alpha)
            raw.append((a, b, delta, se, lo, hi, df, t_pvalue(delta, se, df), v_if, v_cal,
                        int((present[a] & present[b]).sum()), v_tr))
    adj = holm([r[7] for r in raw])
    return tuple(
        Contrast(
            policy_a=names[a], policy_b=names[b], estimate=d * width, se=se * width,
            ci_low=lo * width, ci_high=hi * width, df=df, p_value=p, p_holm=float(ph),
            significant=bool(ph < alpha), var_if=vi * width**2, var_cal=vc * width**2,
            n_shared_prompts=shared, var_transport=vt * width**2,
        )
        for (a, b, d, se, lo, hi, df, p, vi, vc, shared, vt), ph in zip(raw, adj, strict=True)
    )


def _problem(seed, n_pol=6, n_prompts=30, k=5, missing=0.2, gaps=False, const_reps=False):
    rng = np.random.default_rng(seed)
    present = {p: rng.random(n_prompts) > missing for p in range(n_pol)}
    totals = {p: np.where(present[p], rng.normal(0, 0.004, n_prompts), 0.0) for p in range(n_pol)}
    values = list(rng.uniform(0.3, 0.7, n_pol))
    reps = np.asarray(values) + rng.normal(0, 0.01, (k, n_pol))
    if const_reps:  # a constant calibration: no jackknife variance at all
        reps = np.tile(np.asarray(values), (k, 1))
    g = list(rng.uniform(0, 0.02, n_pol)) if gaps else None
    return totals, present, values, reps, g


FIELDS = ("estimate", "se", "ci_low", "ci_high", "df", "p_value", "p_holm", "var_if", "var_cal",
          "var_transport")
SETUPS = [
    # name, problem kwargs, keep, k, alpha, width
    ("plain", {}, [0, 1, 2, 3, 4, 5], 5, 0.05, 4.0),
    ("subset of policies, out of order", {}, [4, 0, 2], 5, 0.05, 1.0),
    ("transport gaps", {"gaps": True}, [0, 1, 2, 3, 4, 5], 5, 0.10, 2.5),
    ("no jackknife variance", {"const_reps": True}, [0, 1, 2, 3, 4, 5], 5, 0.05, 4.0),
    ("K = 10, many prompts", {"k": 10, "n_prompts": 400}, list(range(6)), 10, 0.05, 4.0),
    ("many policies", {"n_pol": 40, "n_prompts": 20}, list(range(40)), 5, 0.05, 4.0),
    ("k < 2 in the df", {}, [0, 1, 2], 1, 0.05, 4.0),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, kw, keep, k, alpha, width", SETUPS, ids=[s[0] for s in SETUPS])
def test_vectorised_contrasts_equal_the_loop(name, kw, keep, k, alpha, width, seed):
    totals, present, values, reps, gaps = _problem(seed, **kw)
    names = [f"pol{p}" for p in range(len(values))]
    new = paired_contrasts(totals, present, values, reps, keep, names, k, alpha, width, gaps=gaps)
    old = _old_paired_contrasts(totals, present, values, reps, keep, names, k, alpha, width, gaps)
    assert len(new) == len(old) == len(keep) * (len(keep) - 1) // 2
    for a, b in zip(new, old, strict=True):
        assert (a.policy_a, a.policy_b) == (b.policy_a, b.policy_b)
        assert a.significant == b.significant
        assert a.n_shared_prompts == b.n_shared_prompts
        for f in FIELDS:
            x, y = getattr(a, f), getattr(b, f)
            assert type(x) is float and type(y) is float, f
            assert x == pytest.approx(y, rel=1e-12, abs=1e-15), (f, x, y)
        assert type(a.significant) is bool and type(a.n_shared_prompts) is int
    if name in ("plain", "many policies"):  # both branches of the significance are exercised
        assert any(c.significant for c in new) and not all(c.significant for c in new)


def test_vectorised_contrasts_bit_identical_on_the_docstring_case():
    totals = {0: np.array([0.02, -0.01, 0.03, -0.04, 0.01, -0.01]),
              1: np.array([0.01, -0.02, 0.02, -0.03, 0.0, 0.02]),
              2: np.array([0.0, 0.01, -0.01, 0.02, 0.0, -0.02])}
    present = {p: np.ones(6, bool) for p in totals}
    reps = np.array([[0.70, 0.50, 0.6], [0.71, 0.52, 0.61], [0.69, 0.50, 0.6],
                     [0.70, 0.51, 0.62], [0.72, 0.52, 0.6]])
    args = (totals, present, [0.7, 0.5, 0.6], reps, [0, 1, 2], ["a", "b", "c"], 5, 0.05, 4.0)
    assert paired_contrasts(*args) == _old_paired_contrasts(*args)


def test_pair_without_a_variance_estimate_is_never_significant():
    """Two policies on a single shared prompt: no prompt-clustered variance (NaN). The old loop
    gave p = 0 and 'significant'; now p is NaN and the pair is not significant."""
    totals = {0: np.array([0.05, 0.0]), 1: np.array([-0.05, 0.0]), 2: np.array([0.01, 0.02])}
    present = {0: np.array([True, False]), 1: np.array([True, False]), 2: np.array([True, True])}
    reps = np.array([[0.9, 0.1, 0.5], [0.91, 0.1, 0.5], [0.9, 0.11, 0.52]])
    out = paired_contrasts(totals, present, [0.9, 0.1, 0.5], reps, [0, 1, 2], ["a", "b", "c"], 3,
                           0.05, 1.0)
    ab = out[0]
    assert (ab.policy_a, ab.policy_b) == ("a", "b")
    assert np.isnan(ab.se) and np.isnan(ab.p_value) and np.isnan(ab.p_holm)
    assert ab.significant is False
    old = _old_paired_contrasts(totals, present, [0.9, 0.1, 0.5], reps, [0, 1, 2], ["a", "b", "c"],
                                3, 0.05, 1.0)
    assert old[0].significant is True  # the wrong OK this guards against
    # the other pairs have a variance estimate and are unaffected
    assert all(np.isfinite(c.se) for c in out[1:])


@pytest.mark.parametrize("keep", [[], [3]])
def test_fewer_than_two_policies_give_no_contrasts(keep):
    totals, present, values, reps, _ = _problem(0)
    assert paired_contrasts(totals, present, values, reps, keep, list("abcdef"), 5, 0.05, 1.0) == ()


def test_exactly_known_difference_is_significant_and_zero_is_not():
    """se = 0 (identical influence totals, identical replicates): the scalar rule, kept."""
    t = np.array([0.01, -0.01, 0.02])
    totals = {0: t, 1: t.copy(), 2: t.copy()}
    present = {p: np.ones(3, bool) for p in totals}
    reps = np.array([[0.5, 0.4, 0.5], [0.5, 0.4, 0.5]])
    out = paired_contrasts(totals, present, [0.5, 0.4, 0.5], reps, [0, 1, 2], list("abc"), 2, 0.05, 1.0)
    by = {(c.policy_a, c.policy_b): c for c in out}
    assert by[("a", "b")].se == 0 and by[("a", "b")].p_value == 0.0 and by[("a", "b")].significant
    assert by[("a", "c")].p_value == 1.0 and not by[("a", "c")].significant


def test_one_thousand_policies_match_the_loop():
    """499,500 contrasts of 1,000 policies on 20 prompts, spot-checked against the per-pair loop
    (their speed is measured in benchmarks/bench_many_policies.py, not here)."""
    totals, present, values, reps, _ = _problem(7, n_pol=1000, n_prompts=20, missing=0.0)
    names = [f"p{i}" for i in range(1000)]
    out = paired_contrasts(totals, present, values, reps, list(range(1000)), names, 5, 0.05, 4.0)
    assert len(out) == 499_500
    # spot-check against the loop on a few pairs
    sub = [0, 1, 998, 999]
    ref = _old_paired_contrasts(totals, present, values, reps, sub, names, 5, 0.05, 4.0)
    pos = {(c.policy_a, c.policy_b): c for c in out}
    for r in ref:
        c = pos[(r.policy_a, r.policy_b)]
        assert c.estimate == pytest.approx(r.estimate, rel=1e-12)
        assert c.se == pytest.approx(r.se, rel=1e-12)
        assert c.p_value == pytest.approx(r.p_value, rel=1e-12, abs=1e-300)


def test_contrasts_by_keyword_when_the_field_order_differs(monkeypatch):
    """If Contrast's fields were ever reordered, the contrasts are built by keyword: same result."""
    import dataclasses

    totals, present, values, reps, gaps = _problem(4, gaps=True)
    args = (totals, present, values, reps, list(range(6)), list("abcdef"), 5, 0.05, 4.0)
    fast = paired_contrasts(*args, gaps=gaps)
    real = dataclasses.fields
    monkeypatch.setattr(dataclasses, "fields", lambda cls: tuple(reversed(real(cls))))
    slow = paired_contrasts(*args, gaps=gaps)
    monkeypatch.setattr(dataclasses, "fields", real)
    assert slow == fast
    assert all(c.var_transport > 0 for c in slow)  # the last field, filled by keyword too
