"""The one pipeline: fold plan, calibrator fit, estimates, OUA jackknife, gates, assembly.

:mod:`~cje.pipeline.core` holds the skeleton every analysis shares; the two data shapes differ
only in how rows become per-row influence values — :mod:`~cje.pipeline.direct` (fresh draws of
each policy) and :mod:`~cje.pipeline.logged` (logs with log-probabilities, any registered
estimator). :mod:`~cje.pipeline.summaries` holds the naive mean, reliability table, calibration
curve and weight tail, where internal [0, 1] numbers meet the user's scales. Call it through
:func:`cje.analyze`.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cje.pipeline.core import MIN_LABELLED_PROMPTS
    from cje.pipeline.direct import analyze_direct
    from cje.pipeline.logged import analyze_logged

# loaded on first use: a direct analysis never loads the logged shape (and its estimators' code)
_LAZY = {"MIN_LABELLED_PROMPTS": "cje.pipeline.core", "analyze_direct": "cje.pipeline.direct",
         "analyze_logged": "cje.pipeline.logged"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module 'cje.pipeline' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)


__all__ = ["MIN_LABELLED_PROMPTS", "analyze_direct", "analyze_logged"]
