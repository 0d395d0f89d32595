"""Synthetic evaluation data with a known truth (data-generating processes, docs: Simulation results).

* :mod:`cje.synthetic.direct` — fresh draws of several policies scored by one judge, with oracle
  labels on a random slice (the direct / on-policy setting);
* :mod:`cje.synthetic.offpolicy` — logs of a logging policy with exact importance weights for
  target policies (exponential tilts with known overlap), plus fresh draws of every policy (the
  off-policy setting);
* :mod:`cje.synthetic.monitor` — time-stamped production traffic over windows with a known judge
  change (a shift or a slope of the judge→label map) or a pure shift of the traffic;
* :mod:`cje.synthetic.tails` — off-policy logs with bounded (discrete response types) or unbounded
  importance-weight tails and a judge style the targets prefer (the calibration does not
  transport);
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
from cje.synthetic.monitor import (
    MONITOR_KINDS,
    SyntheticMonitor,
    default_monitor_policies,
    make_monitor_eval,
    monitor_true_value,
)
from cje.synthetic.offpolicy import (
    DEFAULT_TARGET_ESS,
    FEATURE_EFFECT,
    LOGGING_POLICY,
    OffPolicySim,
    default_targets,
    make_offpolicy_eval,
    offpolicy_true_value,
    theta_for_ess,
)
from cje.synthetic.pairwise import SyntheticPairs, make_pairwise_eval
from cje.synthetic.panel import JudgeSpec, SyntheticPanel, make_panel_eval
from cje.synthetic.tails import TailSim, make_tail_eval

__all__ = [
    "DEFAULT_TARGET_ESS",
    "FEATURE_EFFECT",
    "JUDGE_CURVE_CENTER",
    "JUDGE_CURVE_STEEPNESS",
    "JUDGE_KINDS",
    "QUALITY_NOISE",
    "QUALITY_SLOPE",
    "JudgeSpec",
    "LOGGING_POLICY",
    "MONITOR_KINDS",
    "OffPolicySim",
    "PolicySpec",
    "SyntheticEval",
    "SyntheticMonitor",
    "SyntheticPairs",
    "SyntheticPanel",
    "TailSim",
    "default_monitor_policies",
    "default_policies",
    "default_targets",
    "judge_link",
    "make_direct_eval",
    "make_monitor_eval",
    "make_offpolicy_eval",
    "make_pairwise_eval",
    "make_tail_eval",
    "make_panel_eval",
    "monitor_true_value",
    "offpolicy_true_value",
    "theta_for_ess",
    "true_value",
]
