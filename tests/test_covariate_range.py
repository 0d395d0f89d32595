"""The covariate range gate: under the two-stage map, a policy whose covariates (e.g. response
length) lie beyond the labelled rows' is CAUTION and says which covariate; the judge-score range
gate cannot see it (docs: Methods › Diagnostics and gates)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

import cje
from cje.diagnostics.gates import OUT_OF_RANGE_GATE, _beyond_extremes_q99, covariate_range_gate


def _data(seed: int = 0, n: int = 600) -> pd.DataFrame:
    """Three policies, labels (10%) on 'base' only. The judge adds 0.8 points per unit of log
    length, the label ignores length. 'same' writes like 'base'; 'long' writes four times
    longer (nearly all its lengths beyond every labelled one)."""
    rng = np.random.default_rng(seed)
    parts = []
    for name, shift in (("base", 0.0), ("same", 0.0), ("long", np.log(4.0))):
        q = rng.normal(0, 1, n)
        log_len = 5.0 + shift + 0.3 * rng.normal(0, 1, n)
        y = np.clip(np.round(3 + q + rng.normal(0, 0.5, n)), 1, 5)
        s = np.clip(np.round(5 + 1.5 * q + 0.8 * (log_len - 5.0) + rng.normal(0, 0.7, n)), 1, 10)
        lab = (rng.random(n) < 0.10) if name == "base" else np.zeros(n, bool)
        parts.append(pd.DataFrame({"prompt_id": [f"p{i}" for i in range(n)], "policy": name,
                                   "judge_score": s, "oracle_label": np.where(lab, y, np.nan),
                                   "response_length": np.round(np.exp(log_len))}))
    return pd.concat(parts, ignore_index=True)


def _analyze(df: pd.DataFrame, **kw) -> cje.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(df, judge_scale=(1, 10), label_scale=(1, 5), **kw)


def test_two_stage_beyond_the_labelled_lengths_is_caution_and_names_the_covariate():
    rep = _analyze(_data(), mode="two_stage", covariates=["response_length"])
    key = "covariate_out_of_range_share[response_length]"
    long_, same = rep["long"], rep["same"]
    assert long_.diagnostics[key] > 0.9 and long_.status == "CAUTION"  # (no labels: CAUTION anyway)
    assert any("'response_length'" in r and "two-stage" in r for r in long_.reasons)
    # its judge scores are mostly inside the labelled range: the score gate alone would not see it
    assert long_.diagnostics["out_of_range_share"] < OUT_OF_RANGE_GATE
    # a policy that writes like the labelled one: only sampling puts rows outside (here 7.8%,
    # under the 99th percentile of that share for the 60 labelled rows, 10.6%)
    assert same.diagnostics[key] < _beyond_extremes_q99(rep.calibration.n_labels)
    assert not any("covariate values outside" in r for r in same.reasons)
    # the labelled policy's level has its own residual correction: not judged
    assert "covariate_out_of_range_share[response_length]" not in rep["base"].diagnostics


def test_monotone_map_reads_no_covariate_and_the_gate_stays_silent():
    rep = _analyze(_data(), mode="monotone")
    assert all("covariate_out_of_range_share[response_length]" not in e.diagnostics
               for e in rep.estimates)
    assert not any("covariate values outside" in r for e in rep.estimates for r in e.reasons)


def test_gate_allows_for_the_rows_sampling_puts_beyond_the_labelled_extremes():
    # rows drawn like m labelled ones fall outside their range with probability 2/(m + 1)
    rng = np.random.default_rng(1)
    m = 40
    lab = rng.lognormal(5, 0.5, (m, 1))
    same = rng.lognormal(5, 0.5, (20_000, 1))
    st, why, d = covariate_range_gate(same, lab, ["response_length"])
    share = d["covariate_out_of_range_share[response_length]"]
    assert abs(share - 2 / (m + 1)) < 0.03 and st == "OK" and why is None
    st, why, _ = covariate_range_gate(same * 3, lab, ["response_length"])
    assert st == "CAUTION" and "response_length" in why and "Label responses like these" in why


def test_levels_with_their_own_correction_are_not_judged():
    # labels on every policy (or a probe slice) correct the level wherever the map is read:
    # no covariate reason, no diagnostic
    df = _data()
    rng = np.random.default_rng(5)
    y = np.clip(np.round(3 + rng.normal(0, 1, len(df))), 1, 5)
    df["oracle_label"] = np.where(rng.random(len(df)) < 0.1, y, np.nan)
    rep = _analyze(df, mode="two_stage", covariates=["response_length"])
    assert not any("covariate values outside" in r for e in rep.estimates for r in e.reasons)
    assert all("covariate_out_of_range_share[response_length]" not in e.diagnostics
               for e in rep.estimates)


def test_sampling_allowance_is_the_beta_quantile():
    from scipy import stats

    for m in (2, 10, 60, 100, 480):
        assert abs(_beyond_extremes_q99(m) - stats.beta.ppf(0.99, 2, m - 1)) < 1e-12
