"""Misuse of ``cje.analyze``'s arguments: a CJEInputError naming the argument, the value and the
fix, raised before any data is read; and the well-formed spellings of the same arguments (NumPy
scalars, tuples, arrays) still accepted."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cje
from cje._checks import check_choice, check_int, check_mapping, check_number, check_scale, check_str_list
from cje.calibration.reward import RewardCalibrator, fit_isotonic
from cje.errors import CJEInputError, check_alpha

SCALES = {"judge_scale": (0, 10), "label_scale": (1, 5)}


@pytest.fixture(scope="module")
def data():
    return cje.synthetic.make_direct_eval(120, rng=0).data


MISUSES = [
    # (kwargs, pattern the message must match)
    ({"seed": "abc"}, r"seed must be an integer; got 'abc' \(str\)\. Pass a whole number"),
    ({"seed": 1.7}, r"seed must be an integer; got 1\.7 \(float\)"),
    ({"seed": True}, r"seed must be an integer; got True \(bool\)"),
    ({"seed": None}, r"seed must be an integer; got None"),
    ({"transport_margin": "0.1"}, r"transport_margin must be a positive number; got '0\.1' \(str\)\. "
                                  r"Pass a number, e.g\. transport_margin=0\.05"),
    ({"transport_margin": True}, r"transport_margin must be a positive number; got True \(bool\)"),
    ({"transport_margin": 0}, r"transport_margin must be a positive number \(finite\); got 0"),
    ({"transport_margin": float("inf")}, r"transport_margin must be a positive number \(finite\); got inf"),
    ({"transport_margin": float("nan")}, r"transport_margin must be a positive number \(finite\); got nan"),
    ({"probes": ["probe.jsonl"]}, r"probes must be a mapping, e\.g\. probes=\{'verbose': "
                                  r"'verbose_probe\.jsonl'\} \(policy -> its probe slice\); got "
                                  r"\['probe\.jsonl'\] \(list\)"),
    ({"probes": "probe.jsonl"}, r"probes must be a mapping.*got 'probe\.jsonl' \(str\)"),
    ({"probes": {1: "probe.jsonl"}}, r"probes must have string keys.*its key 1 is not a string \(int\)"),
    ({"policies": "ab"}, r"policies must be a list of strings, e\.g\. policies=\['base', 'verbose'\]; "
                         r"got the string 'ab'\. Wrap a single name in a list: policies=\['ab'\]"),
    ({"policies": "base"}, r"policies must be a list of strings.*got the string 'base'"),
    ({"policies": [1, 2]}, r"policies must be a list of strings.*its entry 1 is not a string \(int\)"),
    ({"policies": []}, r"policies must name at least one entry.*got an empty list"),
    ({"policies": ["base", "base"]}, r"policies names 'base' more than once"),
    ({"policies": {"base": 1}}, r"policies must be a list of strings.*\(dict\)"),
    ({"policies": 3}, r"policies must be a list of strings.*got 3 \(int\)"),
    ({"covariates": "response_length"}, r"covariates must be a list of strings, e\.g\. "
                                        r"covariates=\['response_length'\]; got the string "
                                        r"'response_length'\. Wrap a single name in a list"),
    ({"covariates": [None]}, r"covariates must be a list of strings.*its entry None is not a string"),
    ({"alpha": "0.05"}, r"alpha must be a number in \(0, 1\), e\.g\. 0\.05; got '0\.05'"),
    ({"alpha": True}, r"alpha must be a number in \(0, 1\), e\.g\. 0\.05; got True"),
    ({"alpha": 0}, r"alpha must be a number in \(0, 1\), e\.g\. 0\.05; got 0"),
    ({"alpha": None}, r"alpha must be a number in \(0, 1\), e\.g\. 0\.05; got None"),
    ({"n_folds": 5.0}, r"n_folds must be an integer >= 2; got 5\.0 \(float\)\. Pass a whole number >= 2, "
                       r"e\.g\. n_folds=5"),
    ({"n_folds": "5"}, r"n_folds must be an integer >= 2; got '5' \(str\)"),
    ({"n_folds": True}, r"n_folds must be an integer >= 2; got True \(bool\)"),
    ({"n_folds": 1}, r"n_folds must be an integer >= 2; got 1\."),
    ({"mode": "mono"}, r"mode must be 'auto', 'monotone' or 'two_stage'; got 'mono'"),
    ({"mode": ["auto"]}, r"mode must be 'auto', 'monotone' or 'two_stage'; got \['auto'\]"),
    ({"estimator": "SNIPS"}, r"estimator must be one of 'auto', 'direct', .*'stacked-dr'; got 'SNIPS'"),
    ({"estimator": ["direct"]}, r"estimator must be one of .*; got \['direct'\]"),
    ({"var_cap": True}, r"var_cap must be a positive number; got True \(bool\)\. Pass a number, "
                        r"e\.g\. var_cap=1\.0"),
    ({"var_cap": "1"}, r"var_cap must be a positive number; got '1' \(str\)"),
    ({"var_cap": -1.0}, r"var_cap must be a positive number \(finite\); got -1\.0"),
    ({"on_invalid": "skip"}, r"on_invalid must be 'raise' or 'drop'; got 'skip'"),
    ({"on_invalid": True}, r"on_invalid must be 'raise' or 'drop'; got True"),
    ({"on_missing": None}, r"on_missing must be 'raise' or 'drop'; got None"),
    ({"mrdr_omega": 2}, r"mrdr_omega must be 'w', 'w2' or 'w1sq'; got 2"),
    ({"residual_weights": "RAW"}, r"residual_weights must be 'auto', 'raw' or 'stable'; got 'RAW'"),
    ({"progress": "yes"}, r"progress must be True, False or None; got 'yes'"),
    ({"progress": 1}, r"progress must be True, False or None; got 1"),
    ({"columns": ["judge_score"]}, r"columns must be a mapping, e\.g\. columns=\{'judge_score': "
                                   r"'score'\}; got \['judge_score'\] \(list\)"),
    ({"columns": {"judge_score": 3}}, r"columns must map strings to strings.*maps 'judge_score' to 3 "
                                      r"\(int\)"),
    ({"judge_scale": "0,10"}, r"judge_scale must be a pair of numbers \(low, high\), e\.g\. "
                              r"judge_scale=\(0, 10\); got '0,10'"),
    ({"judge_scale": (0,)}, r"judge_scale must be a pair of numbers.*got \(0,\)"),
    ({"judge_scale": (0, 5, 10)}, r"judge_scale must be a pair of numbers.*got \(0, 5, 10\)"),
    ({"judge_scale": ("0", "10")}, r"judge_scale must be a pair of numbers.*its entry '0' is not a "
                                   r"number \(str\)"),
    ({"judge_scale": 10}, r"judge_scale must be a pair of numbers.*got 10"),
    ({"label_scale": (True, 5)}, r"label_scale must be a pair of numbers.*its entry True is not a "
                                 r"number \(bool\)"),
    ({"label_scale": (5, 1)}, r"label_scale must satisfy low < high \(both finite\).*got \(5, 1\)"),
    ({"label_scale": (0, float("inf"))}, r"label_scale must satisfy low < high \(both finite\)"),
]


def _id(case):
    kwargs = case[0]
    return ",".join(f"{k}={v!r}" for k, v in kwargs.items())[:40]


@pytest.mark.parametrize(("kwargs", "pattern"), MISUSES, ids=[_id(c) for c in MISUSES])
def test_analyze_misuse_names_argument_value_and_fix(data, kwargs, pattern):
    with pytest.raises(CJEInputError, match=pattern):
        cje.analyze(data, **{**SCALES, **kwargs})


@pytest.mark.parametrize(("kwargs", "pattern"), MISUSES[:12], ids=[_id(c) for c in MISUSES[:12]])
def test_arguments_are_checked_before_the_data_is_read(tmp_path, kwargs, pattern):
    # The data path does not exist: the argument's error must come first.
    with pytest.raises(CJEInputError, match=pattern):
        cje.analyze(tmp_path / "no_such_file.csv", **{**SCALES, **kwargs})


def test_a_string_is_never_iterated_into_policy_names(data):
    # The outside finding: policies='ab' analysed policies 'a' and 'b'. A one-letter policy name
    # would make that silently "work"; it must be refused all the same.
    one_letter = data.assign(policy=data["policy"].str[0])  # b, c, i, s, v
    with pytest.raises(CJEInputError, match=r"got the string 'bc'"):
        cje.analyze(one_letter, policies="bc", **SCALES)
    rep = cje.analyze(one_letter, policies=["b", "c"], **SCALES)
    assert [e.policy for e in rep.estimates] == ["b", "c"]


@pytest.mark.parametrize("kwargs", [
    {"seed": np.int64(3), "n_folds": np.int32(4)},
    {"seed": -2},  # any integer seeds the hash
    {"alpha": np.float32(0.1), "transport_margin": np.float64(0.05), "probes": {}},
    {"judge_scale": np.array([0.0, 10.0]), "label_scale": [1, 5]},
    {"policies": ("base", "verbose"), "covariates": ("response_length",)},
    {"policies": np.array(["small"]), "covariates": None, "columns": {}},
    {"mode": "two_stage", "on_invalid": "drop", "progress": False},
], ids=["numpy-ints", "negative-seed", "numpy-floats", "array-scales", "tuples", "array-policies"
        "-none-covariates", "choices"])
def test_well_formed_spellings_are_accepted(data, kwargs):
    rep = cje.analyze(data, **{**SCALES, **kwargs})
    assert len(rep.estimates) >= 1
    assert all(np.isfinite(e.estimate) for e in rep.estimates)


def test_accepted_spellings_give_the_same_numbers(data):
    a = cje.analyze(data, seed=3, n_folds=4, policies=["base"], **SCALES)
    b = cje.analyze(data, seed=np.int64(3), n_folds=np.int8(4), policies=("base",),
                    judge_scale=np.array([0, 10]), label_scale=(1.0, 5.0))
    assert a == b  # every field but the provenance (its time stamp may differ by a second)


# ---- the helpers themselves ---------------------------------------------------------------------
@pytest.mark.parametrize(("call", "pattern"), [
    (lambda: check_int("k", 2.0, minimum=2), r"k must be an integer >= 2; got 2\.0 \(float\)"),
    (lambda: check_int("k", np.float64(3)), r"k must be an integer; got np\.float64\(3\.0\)|got 3\.0"),
    (lambda: check_number("x", None), r"x must be a number; got None \(NoneType\)"),
    (lambda: check_number("x", "nan"), r"x must be a number; got 'nan' \(str\)"),
    (lambda: check_choice("c", None, ("a",)), r"c must be 'a'; got None"),
    (lambda: check_str_list("s", {"a"}, example="s=['a']"), r"s must be a list of strings.*\(set\)"),
    (lambda: check_str_list("s", b"ab", example="s=['a']"), r"got the string b'ab'"),
    (lambda: check_mapping("m", [("a", "b")], example="m={}"), r"m must be a mapping.*\(list\)"),
    (lambda: check_scale("sc", {"low": 0, "high": 1}), r"sc must be a pair of numbers"),
    (lambda: check_alpha(np.bool_(True)), r"alpha must be a number in \(0, 1\)"),
    (lambda: check_alpha("0.05"), r"alpha must be a number in \(0, 1\), e\.g\. 0\.05; got '0\.05'"),
])
def test_check_helpers_refuse(call, pattern):
    with pytest.raises(CJEInputError, match=pattern):
        call()


def test_check_helpers_accept():
    assert check_int("k", np.int16(7), minimum=2) == 7 and type(check_int("k", np.int16(7))) is int
    assert check_number("x", np.float32(0.5), positive=True) == 0.5
    assert check_number("x", float("inf"), finite=False) == float("inf")
    assert check_str_list("s", np.array(["a", "b"]), example="") == ["a", "b"]
    assert check_mapping("m", {"a": "b"}, example="", value_str=True) == {"a": "b"}
    assert check_scale("sc", (np.int64(0), 1.5)) == (0.0, 1.5)
    assert check_alpha(np.float64(0.1)) == pytest.approx(0.1)
    assert check_choice("c", "b", ("a", "b")) == "b"


def test_messages_are_one_line(data):
    for kwargs, _ in MISUSES:
        with pytest.raises(CJEInputError) as info:
            cje.analyze(data, **{**SCALES, **kwargs})
        assert "\n" not in str(info.value) and re.search(r"\w", str(info.value))


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"calibration": 123}, r"^In calibration=: Cannot read data of type int"),
    ({"probes": {"verbose": 123}}, r"^In probes\['verbose'\]=: Cannot read data of type int"),
    ({"calibration": {"prompt_id": ["a"], "judge_score": [float("nan")], "oracle_label": [3.0]}},
     r"^In calibration=: The 'judge_score' column must be finite"),
])
def test_errors_in_the_extra_inputs_name_the_argument(data, kwargs, pattern):
    with pytest.raises(CJEInputError, match=pattern):
        cje.analyze(data, **{**SCALES, **kwargs})


def test_the_main_data_errors_are_not_prefixed(data):
    with pytest.raises(CJEInputError, match=r"^The 'judge_score' column must be finite"):
        cje.analyze(data.assign(judge_score=float("nan")), **SCALES)


@pytest.mark.parametrize(("call", "pattern"), [
    (lambda: fit_isotonic("abc", [1.0]), r"^s must be a 1-D array of numbers; got 'abc' \(str\)"),
    (lambda: fit_isotonic([1.0, 2.0], [1.0]), r"^y must have the same length as s \(2\); got 1"),
    (lambda: fit_isotonic([1.0, float("nan")], [0.0, 1.0]), r"^s must be finite; position 1 has nan"),
    (lambda: fit_isotonic([], []), r"needs at least one point"),
    (lambda: fit_isotonic([[1.0, 2.0]], [[0.0, 1.0]]), r"^s must be a 1-D array of numbers; got shape"),
    (lambda: RewardCalibrator().fit("abc", [1.0]), r"^judge_score must be a 1-D array of numbers"),
    (lambda: RewardCalibrator().fit([1.0, 2.0], {"a": 1}), r"^oracle_label must be a 1-D array"),
])
def test_functional_core_misuse(call, pattern):
    """The functional core (fit_isotonic, RewardCalibrator.fit) refuses bad arrays by name."""
    with pytest.raises(CJEInputError, match=pattern):
        call()
