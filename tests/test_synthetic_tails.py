"""The bounded/unbounded weight-tail DGP of the tails study (cje.synthetic.tails)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from cje.errors import CJEInputError
from cje.synthetic.tails import _types, bounded_tilt, make_tail_eval


@pytest.mark.parametrize("ess", [0.5, 0.15, 0.03])
def test_bounded_tilt_hits_the_ess_and_is_bounded(ess):
    a, style, p0 = _types()
    p = bounded_tilt(ess)
    assert p.sum() == pytest.approx(1.0) and (p > 0).all()
    assert 1.0 / np.sum(p * p / p0) == pytest.approx(ess, abs=1e-9)
    # the target favours better and styled responses: weights increase with a + style
    z = a + style
    w = p / p0
    assert np.all(np.diff(w[np.argsort(z, kind="stable")]) >= -1e-12)


@pytest.mark.parametrize("tail", ["bounded", "unbounded"])
def test_truth_weights_and_ess_by_monte_carlo(tail):
    # Exact truth vs the importance-weighted label mean of 200,000 fully labelled logged rows;
    # tolerance 4 MC SE of that mean (SE from the sample). Sample raw-weight ESS within 15% of
    # the population value (at 200k rows its relative sampling error is a few percent).
    sim = make_tail_eval(200_000, ess=(0.5, 0.15), tail=tail, oracle_fraction=1.0,
                         n_fresh_per_prompt=0, rng=11)
    lg = sim.logged
    y = lg["oracle_label"].to_numpy()
    assert np.isfinite(y).all() and ((0 <= y) & (y <= 1)).all()
    assert lg["judge_score"].isin(np.arange(1.0, 11.0)).all()
    for t in ("ess50", "ess15"):
        w = np.exp(lg[f"logprob[{t}]"] - lg["logprob_base"]).to_numpy()
        assert w.mean() == pytest.approx(1.0, abs=4 * w.std() / math.sqrt(w.size))
        wy = w * y
        assert wy.mean() == pytest.approx(sim.truth[t], abs=4 * wy.std() / math.sqrt(wy.size))
        ess = w.mean() ** 2 / (w * w).mean()
        assert ess == pytest.approx(sim.raw_ess[t], rel=0.15)
        if tail == "bounded":
            assert w.max() <= sim.max_weight[t] + 1e-9
        else:
            assert sim.max_weight[t] == math.inf
    assert y.mean() == pytest.approx(sim.truth["base"], abs=4 * y.std() / math.sqrt(y.size))


def test_style_bonus_moves_only_the_judge():
    on = make_tail_eval(3000, ess=(0.15,), style_bonus=0.9, rng=4)
    off = make_tail_eval(3000, ess=(0.15,), style_bonus=0.0, rng=4)
    pd.testing.assert_series_equal(on.logged["oracle_label"], off.logged["oracle_label"])
    pd.testing.assert_series_equal(on.logged["logprob[ess15]"], off.logged["logprob[ess15]"])
    assert on.truth == off.truth
    diff = on.logged["judge_score"] - off.logged["judge_score"]
    assert set(np.unique(diff)) <= {0.0, 1.0} and diff.mean() > 0


def test_reproducible_and_checked():
    a = make_tail_eval(300, rng=2)
    b = make_tail_eval(300, rng=2)
    pd.testing.assert_frame_equal(a.logged, b.logged)
    pd.testing.assert_frame_equal(a.fresh, b.fresh)
    assert len(a.fresh) == 300 * 7 and set(a.fresh["policy"]) == {"base", *a.raw_ess}
    with pytest.raises(CJEInputError, match="tail must be"):
        make_tail_eval(300, tail="heavy")
    with pytest.raises(CJEInputError, match="every ess"):
        make_tail_eval(300, ess=(1.0,))
    with pytest.raises(CJEInputError, match="n_prompts"):
        make_tail_eval(1)
