"""Tests for the crossed judge-panel DGP (cje.synthetic.panel)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cje.synthetic.direct import PolicySpec
from cje.synthetic.panel import (
    CONFOUNDING_SHIFT,
    JUDGE_SLOPE,
    JudgeSpec,
    SyntheticPanel,
    default_generators,
    default_judges,
    make_panel_eval,
)

# Statistical checks use 4 standard errors (false alarm ~6e-5 per check); seeds are fixed anyway.
Z_TOL = 4.0

COLUMNS = ["prompt_id", "policy", "policy_family", "judge", "judge_family", "judge_score",
           "oracle_label", "response_length", "z"]


def test_schema_and_crossed_structure() -> None:
    sim = make_panel_eval(40, two_labels=True, label_noise=0.2, oracle_fraction=0.5, rng=0)
    assert isinstance(sim, SyntheticPanel)
    d = sim.data
    assert list(d.columns) == COLUMNS + ["oracle_label_2"]
    n_g, n_j = len(default_generators()), len(default_judges())
    assert len(d) == 40 * n_g * n_j
    # every judge scores every response of every generator to every prompt, exactly once
    counts = d.groupby(["prompt_id", "policy", "judge"]).size()
    assert counts.eq(1).all() and len(counts) == 40 * n_g * n_j
    assert d["prompt_id"].nunique() == 40
    # response-level columns are shared by all judges of a response
    per_resp = d.groupby(["prompt_id", "policy"])
    for col in ("oracle_label", "oracle_label_2", "response_length", "z", "policy_family"):
        assert per_resp[col].nunique(dropna=False).eq(1).all(), col
    # labelled on the same responses for both ratings; MCAR share near oracle_fraction
    assert d["oracle_label"].isna().equals(d["oracle_label_2"].isna())
    assert set(d["oracle_label"].dropna().unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert pd.api.types.is_integer_dtype(d["response_length"]) and (d["response_length"] >= 1).all()
    fam = {g.name: g.family for g in default_generators()}
    assert (d["policy"].map(fam) == d["policy_family"]).all()
    assert set(sim.truth) == {"length_effect", "self_preference", "judge_slope", "judge_offset",
                              "label_noise", "confounding_shift", "value"}
    assert "crossed panel" in sim.description


def test_reproducible_and_options_only_add() -> None:
    a = make_panel_eval(30, length_effect=0.2, rng=7)
    b = make_panel_eval(30, length_effect=0.2, rng=7)
    pd.testing.assert_frame_equal(a.data, b.data)
    assert a.truth == b.truth
    c = make_panel_eval(30, length_effect=0.2, rng=8)
    assert not np.allclose(a.data["judge_score"], c.data["judge_score"])
    # two_labels only adds a column: every other column is unchanged (fixed draw order)
    two = make_panel_eval(30, length_effect=0.2, two_labels=True, rng=7)
    pd.testing.assert_frame_equal(two.data[COLUMNS], a.data)
    gen = np.random.default_rng(7)
    pd.testing.assert_frame_equal(make_panel_eval(30, length_effect=0.2, rng=gen).data, a.data)


def test_score_is_exactly_the_planted_linear_model() -> None:
    gens = (*default_generators()[:3], PolicySpec("bonus", 0.0, judge_bonus=0.7, family="gamma"))
    sim = make_panel_eval(60, gens, length_effect=0.3, self_preference=-0.4, judge_noise=0.0,
                          rng=1)
    d = sim.data
    # z is log length standardised over all responses (ddof=0): what the diagnostic recomputes
    resp = d.drop_duplicates(["prompt_id", "policy"])
    ll = np.log(resp["response_length"].to_numpy(float))
    np.testing.assert_allclose(resp["z"], (ll - ll.mean()) / ll.std(), atol=1e-12)
    bonus = d["policy"].map({g.name: g.judge_bonus for g in gens})
    expect = (d["judge"].map(sim.truth["judge_offset"]) + JUDGE_SLOPE * d["oracle_label"]
              + 0.3 * d["z"] - 0.4 * (d["judge_family"] == d["policy_family"]) + bonus)
    np.testing.assert_allclose(d["judge_score"], expect, atol=1e-12)
    # so a noise-free regression returns the planted coefficients exactly
    X = np.column_stack([pd.get_dummies(d["judge"], dtype=float), d["oracle_label"], d["z"],
                         (d["judge_family"] == d["policy_family"]).astype(float),
                         (d["policy"] == "bonus").astype(float)])
    coef = np.linalg.lstsq(X, d["judge_score"].to_numpy(), rcond=None)[0]
    np.testing.assert_allclose(coef[-4:], [JUDGE_SLOPE, 0.3, -0.4, 0.7], atol=1e-10)


def test_true_values_match_a_large_sample() -> None:
    sim = make_panel_eval(20_000, judges=[JudgeSpec("j", "delta")], rng=3)
    d = sim.data
    means = d.groupby("policy")["oracle_label"].mean()
    # responses to one prompt share its difficulty: a prompt-clustered SE of each mean
    for name, value in sim.truth["value"].items():
        y = d.loc[d["policy"] == name, "oracle_label"].to_numpy()
        se = y.std(ddof=1) / np.sqrt(y.size)
        assert abs(means[name] - value) < Z_TOL * se, name
    # quality order is the planted one
    order = sorted(sim.truth["value"], key=sim.truth["value"].get)
    assert order == [g.name for g in sorted(default_generators(), key=lambda g: g.quality)]


def test_label_noise_is_mean_preserving() -> None:
    sim = make_panel_eval(20_000, judges=[JudgeSpec("j", "delta")], two_labels=True,
                          label_noise=0.4, rng=4)
    d = sim.data
    diff = (d["oracle_label"] - d["oracle_label_2"]).to_numpy()
    assert abs(diff.mean()) < Z_TOL * diff.std() / np.sqrt(diff.size)
    # ratings still average the exact E[T] (E[Y | T] = T)
    for name, value in sim.truth["value"].items():
        y = d.loc[d["policy"] == name, "oracle_label"].to_numpy()
        assert abs(y.mean() - value) < Z_TOL * y.std(ddof=1) / np.sqrt(y.size), name
    assert 0.2 < (diff != 0).mean() < 0.6  # raters do disagree
    clean = make_panel_eval(200, judges=[JudgeSpec("j", "delta")], two_labels=True, rng=4)
    assert clean.data["oracle_label"].equals(clean.data["oracle_label_2"])


def test_confounded_makes_own_families_better() -> None:
    plain = make_panel_eval(50, rng=5)
    conf = make_panel_eval(50, confounded=True, rng=5)
    assert conf.truth["confounding_shift"] == CONFOUNDING_SHIFT and plain.truth["confounding_shift"] == 0
    judge_fams = {j.family for j in default_judges()}
    for g in default_generators():
        if g.family in judge_fams:
            assert conf.truth["value"][g.name] > plain.truth["value"][g.name] + 0.3
        else:
            assert conf.truth["value"][g.name] == plain.truth["value"][g.name]
    assert conf.truth["self_preference"] == 0.0


def test_oracle_fraction_masks_whole_responses() -> None:
    d = make_panel_eval(2000, judges=[JudgeSpec("j", "delta")], oracle_fraction=0.3, rng=6).data
    share = d["oracle_label"].notna().mean()
    assert abs(share - 0.3) < Z_TOL * np.sqrt(0.3 * 0.7 / len(d))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_prompts": 0}, "n_prompts must be an integer >= 1"),
        ({"label_levels": 1}, "label_levels must be at least 2"),
        ({"oracle_fraction": 0.0}, r"oracle_fraction must be in \(0, 1\]"),
        ({"label_noise": 1.5}, r"label_noise must be in \[0, 1\]"),
        ({"label_noise": 0.2, "label_levels": 2}, "label_levels >= 3"),
        ({"judge_noise": -1.0}, "judge_noise must be >= 0"),
        ({"length_effect": float("nan")}, "length_effect must be a finite real number"),
        ({"judges": []}, "judges must contain at least one JudgeSpec"),
        ({"judges": [JudgeSpec("a", "x"), JudgeSpec("a", "y")]}, "judges names must be unique"),
        ({"generators": ["gpt"]}, "generators must contain PolicySpec objects"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    args = {"n_prompts": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        make_panel_eval(**args)


def test_judge_spec_validation() -> None:
    with pytest.raises(ValueError, match="JudgeSpec.family must be a non-empty string"):
        JudgeSpec("j", "")
    with pytest.raises(ValueError, match="JudgeSpec.offset must be a finite real number"):
        JudgeSpec("j", "f", offset=float("inf"))
