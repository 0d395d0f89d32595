"""Hostile inputs and outside data-generating processes for the bias diagnostics and cje.pairwise.

"Never a wrong OK": a test that is not flagged only reads "ok" when its interval rules out a
practically relevant bias; bad ids and judges are refused rather than merged or dropped.
"""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cje.bias import audit, position, verbosity
from cje.errors import CJEInputError

pytestmark = pytest.mark.filterwarnings("ignore::cje.errors.CJEWarning")


def _both_orders(n_prompts: int, beta: float, rng: np.random.Generator, ties: float = 0.0,
                 x_sd: float = 1.0) -> pd.DataFrame:
    """One pair (A, B) per prompt judged in both orders: logit P(a wins) = x_prompt ± beta."""
    rows = []
    for g in range(n_prompts):
        x = rng.normal(0.0, x_sd)
        for slot in (1, 2):
            p = 1.0 / (1.0 + np.exp(-(x + (beta if slot == 1 else -beta))))
            w = "a" if rng.random() < p else "b"
            if rng.random() < ties:
                w = "tie"
            rows.append({"prompt_id": f"p{g}", "a_id": "A", "b_id": "B", "slot_a": slot, "winner": w})
    return pd.DataFrame(rows)


def _hand(pp: int, rp: int, consistent: int) -> pd.DataFrame:
    """``pp`` pairs won by slot 1 in both orders, ``rp`` by slot 2, ``consistent`` by A twice."""
    rows = []
    kinds = [("a", "b")] * pp + [("b", "a")] * rp + [("a", "a")] * consistent
    for g, (w1, w2) in enumerate(kinds):
        rows += [{"prompt_id": f"p{g}", "a_id": "A", "b_id": "B", "slot_a": 1, "winner": w1},
                 {"prompt_id": f"p{g}", "a_id": "A", "b_id": "B", "slot_a": 2, "winner": w2}]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ verdict: ok only when ruled out


def test_unflagged_small_sample_is_inconclusive_not_ok():
    # PP = 5, RP = 0 of 15 pairs: exact McNemar p = 2 * 0.5**5 = 0.0625 (not flagged at 0.05), but
    # the first-slot rate's Clopper–Pearson interval [0.478, 1] reaches far outside [0.45, 0.55]
    d = _hand(5, 0, 10)
    r = position(d)
    assert r.p_value == pytest.approx(stats.binomtest(5, 5, 0.5).pvalue) == pytest.approx(0.0625)
    ci = stats.binomtest(5, 5, 0.5).proportion_ci(0.95, method="exact")
    assert r.details["first_slot_ci_low"] == pytest.approx(ci.low)
    assert not r.flagged and r.details["negligible"] is False
    assert r.verdict == "inconclusive"
    a = audit(pairs=d, n_bootstrap=200, rng=0)
    line = next(x for x in a.summary().splitlines() if x.startswith("position "))
    assert line.endswith("unclear") and not line.endswith(" ok")
    assert "? inconclusive" in a.summary()
    assert a.to_pandas()["verdict"].tolist() == ["inconclusive"]
    assert a.to_dict()["results"][0]["verdict"] == "inconclusive"


def test_all_ties_is_inconclusive():
    d = _both_orders(40, 0.5, np.random.default_rng(0), ties=1.0)
    r = position(d)
    assert (r.details["pp"], r.details["rp"]) == (0, 0)
    assert r.verdict == "inconclusive"


def test_no_bias_with_many_pairs_reads_ok_and_flag_reads_bias():
    # 4000 prompts, no slot effect: first-slot rate CI about ±0.03 around 0.5, inside the band
    r0 = position(_both_orders(4000, 0.0, np.random.default_rng(1)))
    assert r0.details["first_slot_ci_low"] > 0.45 and r0.details["first_slot_ci_high"] < 0.55
    assert r0.verdict == "no relevant bias"
    r1 = position(_both_orders(600, 0.5, np.random.default_rng(2)))
    assert r1.flagged and r1.verdict == "bias"
    a = audit(pairs=_both_orders(4000, 0.0, np.random.default_rng(1)), n_bootstrap=200, rng=0)
    assert next(x for x in a.summary().splitlines() if x.startswith("position ")).endswith(" ok")


def test_verbosity_verdict_band_is_the_practical_threshold():
    # 8 prompts x 4 labelled responses, judge score = label + noise: the CI of the length effect
    # is wide compared with 0.05 SD of the judge score, so not flagged reads inconclusive
    rng = np.random.default_rng(3)
    n = 32
    y = rng.integers(1, 6, n).astype(float)
    df = pd.DataFrame({"prompt_id": np.repeat([f"q{i}" for i in range(8)], 4),
                       "judge_score": y + rng.normal(0, 1, n), "oracle_label": y,
                       "response_length": rng.integers(20, 400, n)})
    r = verbosity(df)
    thr = r.details["min_effect"]
    assert not (-thr < r.ci_low and r.ci_high < thr)
    assert not r.flagged and r.verdict == "inconclusive"
