"""Estimators, one registry: each turns rows into point estimates with per-row influence values.

:mod:`cje.estimators.registry` holds the :class:`Estimator` base class and the registry of names
(``cje.analyze(estimator=...)``, the CLI's ``--estimator``); :mod:`~cje.estimators.direct` the
direct method, :mod:`~cje.estimators.offpolicy` the IPS and doubly robust families,
:mod:`~cje.estimators.outcome` the DR outcome models.
"""

from cje.estimators.base import Estimate
from cje.estimators.direct import DirectEstimator, direct_estimate
from cje.estimators.offpolicy import (
    DRCPO,
    IPS,
    MRDR,
    SNIPS,
    TMLE,
    CalibratedIPS,
    LoggedTarget,
    PolicyValue,
    StackedDR,
)
from cje.estimators.registry import Estimator, register, registered, resolve

__all__ = [
    "DRCPO",
    "IPS",
    "MRDR",
    "SNIPS",
    "TMLE",
    "CalibratedIPS",
    "DirectEstimator",
    "Estimate",
    "Estimator",
    "LoggedTarget",
    "PolicyValue",
    "StackedDR",
    "direct_estimate",
    "register",
    "registered",
    "resolve",
]
