"""Judge bias diagnostics: position, verbosity and self-preference (docs: Judge bias).

Each test returns a :class:`BiasResult` — effect, confidence interval, p-value, flag and the
mitigation — with prompts as clusters. :func:`audit` runs every test the columns allow (one per
judge) and Holm-adjusts across them.

* pairwise verdicts in both orders: :func:`position` (and :func:`debias_position`);
* pairwise verdicts with human verdicts: :func:`excess_length_preference`
  (and :func:`length_controlled_win_rates`), :func:`self_preference_gap`;
* pointwise scores with oracle labels: :func:`verbosity`; judge panels: :func:`self_preference`.
"""

from cje.bias._report import BiasAudit
from cje.bias._result import BiasResult
from cje.bias.audit import audit
from cje.bias.pairwise_tests import (
    excess_length_preference,
    length_controlled_win_rates,
    newcombe_interval,
    self_preference_gap,
    wilson_interval,
)
from cje.bias.position import debias_position, position
from cje.bias.self_preference import self_preference
from cje.bias.verbosity import verbosity

__all__ = [
    "BiasAudit",
    "BiasResult",
    "audit",
    "debias_position",
    "excess_length_preference",
    "length_controlled_win_rates",
    "newcombe_interval",
    "position",
    "self_preference",
    "self_preference_gap",
    "verbosity",
    "wilson_interval",
]
