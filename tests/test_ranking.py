"""Ranking tiers agree with the Holm-adjusted contrasts: every two policies in different tiers
are significantly different, a missing contrast never separates, REFUSED policies are not ranked
(issue #19, finding 1)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cje
from cje.inference import ranking_tiers


@pytest.fixture(scope="module")
def arena_path(arena: Path) -> Path:
    """The packaged Arena sample as cje-eval files (the session fixture of conftest.py)."""
    return arena


def assert_consistent(ranking, estimates, pairs):
    """The acceptance property, checked from the outside."""
    sig = {frozenset((c.policy_a, c.policy_b)): c.significant for c in pairs}
    est = {e.policy: e for e in estimates}
    ranked = [p for t in ranking for p in t]
    assert len(ranked) == len(set(ranked))
    assert set(ranked) == {e.policy for e in estimates if e.status != "REFUSED"}
    # ordered by estimate, best first, within and across tiers
    values = [est[p].estimate for p in ranked]
    assert values == sorted(values, reverse=True)
    for t1, t2 in itertools.combinations(range(len(ranking)), 2):
        for a in ranking[t1]:
            for b in ranking[t2]:
                assert sig.get(frozenset((a, b))) is True, (a, b, ranking)


def _finest(order, sep):
    """Brute force: cut between i and i+1 iff every pair across it is separable."""
    tiers, cur = [], [order[0]]
    for i in range(1, len(order)):
        if all(sep(order[a], order[b]) for a in range(i) for b in range(i, len(order))):
            tiers.append(tuple(cur))
            cur = []
        cur.append(order[i])
    tiers.append(tuple(cur))
    return tuple(tiers)


def _est(values, statuses=None):
    statuses = statuses or ["OK"] * len(values)
    return [NS(policy=f"p{i}", estimate=v, status=s)
            for i, (v, s) in enumerate(zip(values, statuses, strict=True))]


def _pairs(n, significant):
    """Contrasts of p0..p{n-1}; ``significant`` maps (i, j), i < j, to True/False; absent = missing."""
    return [NS(policy_a=f"p{i}", policy_b=f"p{j}", significant=significant[(i, j)])
            for i, j in itertools.combinations(range(n), 2) if (i, j) in significant]


# ---- table-driven cases ----------------------------------------------------------------------
ALL = {(i, j): True for i, j in itertools.combinations(range(4), 2)}
CASES = [
    # name, estimates, statuses, significant pairs, expected tiers
    ("all separable", [4, 3, 2, 1], None, ALL, (("p0",), ("p1",), ("p2",), ("p3",))),
    ("none separable", [4, 3, 2, 1], None, {k: False for k in ALL}, (("p0", "p1", "p2", "p3"),)),
    # the demo: small (p3) vs verbose (p2) not significant, so they share a tier even
    # though verbose is not separable from the top group only through a chain
    ("chain a≈b≈c", [3, 2, 1], None, {(0, 1): False, (0, 2): True, (1, 2): False},
     (("p0", "p1", "p2"),)),
    ("old rule's contradiction", [4, 3, 2, 1], None,
     {**ALL, (1, 2): False, (2, 3): False}, (("p0",), ("p1", "p2", "p3"))),
    ("a missing contrast never separates", [4, 3, 2, 1], None,
     {k: v for k, v in ALL.items() if k != (1, 2)}, (("p0",), ("p1", "p2"), ("p3",))),
    ("no contrasts at all", [4, 3, 2, 1], None, {}, (("p0", "p1", "p2", "p3"),)),
    ("REFUSED left out", [4, 3, 2, 1], ["OK", "REFUSED", "CAUTION", "OK"], ALL,
     (("p0",), ("p2",), ("p3",))),
    ("REFUSED left out of a chain", [3, 2, 1], ["OK", "REFUSED", "OK"],
     {(0, 1): False, (0, 2): True, (1, 2): False}, (("p0",), ("p2",))),
    ("all REFUSED", [2, 1], ["REFUSED", "REFUSED"], {(0, 1): True}, ()),
    ("unsorted input", [1, 4, 2, 3], None, {**ALL, (0, 2): False}, (("p1",), ("p3",), ("p2", "p0"))),
]


@pytest.mark.parametrize("name, values, statuses, significant, expected", CASES,
                         ids=[c[0] for c in CASES])
def test_ranking_tiers_cases(name, values, statuses, significant, expected):
    est = _est(values, statuses)
    pairs = _pairs(len(values), significant)
    got = ranking_tiers(est, pairs)
    assert got == expected
    assert_consistent(got, est, pairs)


def test_the_old_rule_would_fail_the_property():
    """The case of the issue: compared only with the tier's best, p2 left p1's tier although
    p1 − p2 is not significant. The checker must catch that (it can fail)."""
    est = _est([4, 3, 2, 1])
    pairs = _pairs(4, {**ALL, (1, 2): False, (2, 3): False})
    old = (("p0",), ("p1", "p2"), ("p3",))  # best-member rule: p3 vs p1 significant → cut
    with pytest.raises(AssertionError):
        assert_consistent(old, est, pairs)


# ---- property test ---------------------------------------------------------------------------
@st.composite
def _problems(draw):
    n = draw(st.integers(1, 9))
    values = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]) | st.floats(-5, 5),
                           min_size=n, max_size=n))
    statuses = draw(st.lists(st.sampled_from(["OK", "OK", "CAUTION", "REFUSED"]), min_size=n, max_size=n))
    significant = {}
    for ij in itertools.combinations(range(n), 2):
        v = draw(st.sampled_from([True, True, False, None]))  # None: the pair is missing
        if v is not None:
            significant[ij] = v
    return values, statuses, significant


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_problems())
def test_ranking_tiers_property(problem):
    values, statuses, significant = problem
    est = _est(values, statuses)
    pairs = _pairs(len(values), significant)
    got = ranking_tiers(est, pairs)
    assert_consistent(got, est, pairs)
    # and it is the finest such ranking of the sorted order: no allowed cut is skipped
    ranked = [p for t in got for p in t]
    if ranked:
        sig = {frozenset((c.policy_a, c.policy_b)) for c in pairs if c.significant}
        assert got == _finest(ranked, lambda a, b: frozenset((a, b)) in sig)


# ---- real analyses ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize("n", [300, 2000])
def test_direct_analyses_rank_consistently(n, seed):
    sim = cje.synthetic.make_direct_eval(n, rng=seed)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)


def test_direct_analysis_separates_when_the_data_allow():
    """Not everything collapses into one tier: with 2,000 prompts the top policy stands alone."""
    sim = cje.synthetic.make_direct_eval(2000, rng=0)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert rep.ranking == (("improved",), ("concise", "base"), ("verbose", "small"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_policy_analyses_rank_consistently(seed):
    """20 policies in four quality clusters, 1,000 prompts: four tiers of five, each boundary
    backed by every cross pair; a dense random field of 30 policies chains into fewer tiers but
    keeps the property."""
    from cje.synthetic.direct import PolicySpec

    rng = np.random.default_rng(seed)
    q = np.repeat([-1.2, -0.4, 0.4, 1.2], 5) + rng.normal(0, 0.05, 20)
    pols = [PolicySpec(f"q{i:02d}", quality=float(x)) for i, x in enumerate(q)]
    sim = cje.synthetic.make_direct_eval(1000, policies=pols, rng=seed)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert len(rep.pairs) == 190
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)
    clusters = [{f"q{i:02d}" for i in range(c * 5, c * 5 + 5)} for c in (3, 2, 1, 0)]
    assert [set(t) for t in rep.ranking] == clusters

    pols = [PolicySpec(f"r{i:02d}", quality=float(x)) for i, x in enumerate(rng.normal(0, 0.6, 30))]
    sim = cje.synthetic.make_direct_eval(300, policies=pols, rng=seed)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert len(rep.pairs) == 435
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offpolicy_analyses_rank_consistently(seed):
    sim = cje.synthetic.make_offpolicy_eval(800, rng=seed)
    rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1), label_scale=(0, 1))
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)


def test_refused_policy_is_not_ranked(arena_path):
    rep = cje.analyze(arena_path / "fresh_draws",
                      probes={p: arena_path / "probe_slice" / f"{p}_probe.jsonl"
                              for p in ("clone", "parallel_universe_prompt", "unhelpful")},
                      transport_margin=0.05, probe_correction=False)  # audit-only: FAIL refuses
    assert rep["unhelpful"].status == "REFUSED"
    assert "unhelpful" not in {p for t in rep.ranking for p in t}
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)


@pytest.mark.parametrize("how", ["direct", "calibrated-ips", "stacked-dr"])
def test_arena_rankings_consistent(arena_path, how):
    if how == "direct":
        rep = cje.analyze(arena_path / "fresh_draws")
    else:
        rep = cje.analyze(arena_path / "logged_data.jsonl", fresh_draws=arena_path / "fresh_draws",
                          estimator=how)
    assert rep.pairs
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)


def test_demo_ranking_consistent(monkeypatch, capsys):
    """``cje demo`` (its own data and settings): the printed ranking agrees with the contrasts."""
    from cje.cli import main

    seen = []
    real = cje.analyze

    def spy(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(cje, "analyze", spy)
    assert main(["demo"]) == 0
    (rep,) = seen
    assert_consistent(rep.ranking, rep.estimates, rep.pairs)
    assert len(rep.ranking) >= 2  # the demo still separates something
    capsys.readouterr()


def test_many_policies_ranking_is_consistent():
    """1,000 policies (499,500 contrasts) keep the property (checked on a random sample of
    cross-tier pairs). Its speed is measured in benchmarks/bench_many_policies.py, not here."""
    rng = np.random.default_rng(3)
    m = 1000
    values = np.sort(rng.normal(size=m))[::-1]
    est = _est(list(values))
    gaps = np.abs(values[:, None] - values[None, :])
    pairs = [NS(policy_a=f"p{i}", policy_b=f"p{j}", significant=bool(gaps[i, j] > 0.05))
             for i, j in zip(*np.triu_indices(m, 1), strict=True)]
    tiers = ranking_tiers(est, pairs)
    tier_of = {p: k for k, tt in enumerate(tiers) for p in tt}
    assert len(tier_of) == m and 1 < len(tiers) < m
    for i, j in rng.integers(0, m, size=(20000, 2)):
        if tier_of[f"p{i}"] != tier_of[f"p{j}"]:
            assert gaps[i, j] > 0.05
