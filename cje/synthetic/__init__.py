"""Synthetic evaluation data with a known truth (data-generating processes, METHODS §9).

* :mod:`cje.synthetic.direct` — fresh draws of several policies scored by one judge, with oracle
  labels on a random slice (the direct / on-policy setting);
* :mod:`cje.synthetic.pairwise` — pairwise verdicts in both orders with planted position,
  length and self-preference effects, and human verdicts;
* :mod:`cje.synthetic.panel` — a crossed panel of judges and generators with model families,
  Likert labels and planted verbosity and self-preference effects.
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
from cje.synthetic.pairwise import SyntheticPairs, make_pairwise_eval
from cje.synthetic.panel import JudgeSpec, SyntheticPanel, make_panel_eval

__all__ = [
    "JUDGE_CURVE_CENTER",
    "JUDGE_CURVE_STEEPNESS",
    "JUDGE_KINDS",
    "QUALITY_NOISE",
    "QUALITY_SLOPE",
    "JudgeSpec",
    "PolicySpec",
    "SyntheticEval",
    "SyntheticPairs",
    "SyntheticPanel",
    "default_policies",
    "judge_link",
    "make_direct_eval",
    "make_pairwise_eval",
    "make_panel_eval",
    "true_value",
]
