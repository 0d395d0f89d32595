"""Judge bias diagnostics: position, verbosity and self-preference (METHODS §7).

Each test returns a :class:`BiasResult` (effect, CI, p-value, flag, mitigation);
:func:`audit` runs every test the columns allow and Holm-adjusts across them.
"""

from cje.bias._result import BiasAudit, BiasResult

__all__ = ["BiasAudit", "BiasResult"]
