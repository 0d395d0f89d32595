"""Model families are matched the same way everywhere (self_preference, self_preference_gap,
aggregate_panel(leave_family_out=True)): a whole number written as 1 or 1.0 is one family (before,
self_preference and the pairwise gap never matched ``1.0`` with ``1``: own-family responses counted
as another family's); in a panel, a family written as a number in one column and as text in the
other is refused (before, leave_family_out left nothing out), and so is a judge given two
families. (Pairwise verdicts read
every family as text, so there ``1`` and ``"1"`` are one family.) Last, the agreement statistics
pair two pandas Series by index, not by position."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cje.bias.pairwise_tests import self_preference_gap
from cje.bias.self_preference import self_preference
from cje.errors import CJEInputError
from cje.pairwise import aggregate_panel
from cje.synthetic.pairwise import make_pairwise_eval
from cje.synthetic.panel import make_panel_eval

CODES = {"alpha": 1, "beta": 2, "gamma": 3, "delta": 4}


def _panel() -> pd.DataFrame:
    return make_panel_eval(40, self_preference=0.4, rng=5).data.drop(columns="oracle_label")


def test_self_preference_numeric_families_match_across_int_and_float() -> None:
    d = _panel()
    text = self_preference(d)
    num = d.assign(judge_family=d["judge_family"].map(CODES).astype(float),  # 1.0, 2.0, 4.0
                   policy_family=d["policy_family"].map(CODES).astype(int))  # 1, 2, 3
    r = self_preference(num)
    assert r.effect == pytest.approx(text.effect, rel=1e-12)
    assert r.details["n_self_rows"] == text.details["n_self_rows"] > 0


def test_family_written_as_number_and_as_text_is_refused() -> None:
    d = _panel()
    mixed = d.assign(judge_family=d["judge_family"].map(CODES),
                     policy_family=d["policy_family"].map(CODES).astype(str))
    with pytest.raises(CJEInputError, match="are one family written as a number and as text"):
        self_preference(mixed)
    with pytest.raises(CJEInputError, match="are one family written as a number and as text"):
        aggregate_panel(mixed, leave_family_out=True)


def test_a_judge_with_two_families_is_refused() -> None:
    d = _panel()
    d.loc[d.index[5], "judge_family"] = "gamma"  # row 5: alpha-judge... is now also gamma
    j = d.loc[d.index[5], "judge"]
    with pytest.raises(CJEInputError, match=f"Judge '{j}' has two model families"):
        self_preference(d)
    with pytest.raises(CJEInputError, match=f"Judge '{j}' has two model families"):
        aggregate_panel(d, leave_family_out=True)


def test_leave_family_out_with_numeric_families_leaves_the_own_family_out() -> None:
    d = _panel()
    text = aggregate_panel(d, leave_family_out=True)
    num = aggregate_panel(d.assign(judge_family=d["judge_family"].map(CODES).astype(float),
                                   policy_family=d["policy_family"].map(CODES)),
                          leave_family_out=True)
    assert np.array_equal(num["judge_score"].to_numpy(), text["judge_score"].to_numpy())
    assert not np.array_equal(text["judge_score"].to_numpy(),
                              aggregate_panel(d)["judge_score"].to_numpy())  # it did leave some out


def test_self_preference_gap_numeric_families() -> None:
    pairs = make_pairwise_eval(60, self_preference=0.5, judge_family="A", rng=3).pairs
    text = self_preference_gap(pairs)
    code = {"A": 1, "B": 2, "C": 3, "D": 4}
    fam_cols = [c for c in pairs.columns if c.endswith("family")]
    num = pairs.assign(**{c: pairs[c].map(code) for c in fam_cols})
    num["judge_family"] = num["judge_family"].astype(float)
    r = self_preference_gap(num)
    assert r.effect == pytest.approx(text.effect, rel=1e-12) and r.n == text.n


def test_agreement_pairs_two_series_by_index() -> None:
    """cohen_kappa (and the rank correlations) paired two Series by position whatever their
    indexes: the same units in another order gave a silently wrong κ."""
    from cje.pairwise.agreement import cohen_kappa, spearman_rho

    a = pd.Series([1, 2, 3, 3, 2, 1], index=list("abcdef"))
    b = pd.Series([1, 2, 3, 2, 2, 1], index=list("abcdef"))
    shuffled = b.iloc[::-1]
    assert cohen_kappa(a, shuffled) == pytest.approx(cohen_kappa(a, b))
    assert spearman_rho(a, shuffled) == pytest.approx(spearman_rho(a, b))
    assert cohen_kappa(a.to_numpy(), b.to_numpy()) == pytest.approx(cohen_kappa(a, b))
    with pytest.raises(CJEInputError, match="Series with different indexes"):
        cohen_kappa(a, b.set_axis(list("abcdeg")))
