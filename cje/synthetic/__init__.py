"""Synthetic evaluation data with a known truth (data-generating processes, METHODS §9).

* :mod:`cje.synthetic.direct` — fresh draws of several policies scored by one judge, with oracle
  labels on a random slice (the direct / on-policy setting).
"""

from cje.synthetic.direct import (
    JUDGE_CURVE_CENTER,
    JUDGE_CURVE_STEEPNESS,
    JUDGE_KINDS,
    QUALITY_NOISE,
    QUALITY_SLOPE,
    PolicySpec,
    SyntheticEval,
    default_policies,
    judge_link,
    make_direct_eval,
    true_value,
)

__all__ = [
    "JUDGE_CURVE_CENTER",
    "JUDGE_CURVE_STEEPNESS",
    "JUDGE_KINDS",
    "QUALITY_NOISE",
    "QUALITY_SLOPE",
    "PolicySpec",
    "SyntheticEval",
    "default_policies",
    "judge_link",
    "make_direct_eval",
    "true_value",
]
