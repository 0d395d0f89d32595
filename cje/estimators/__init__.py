"""Estimators: each returns point estimates and per-row influence values."""

from cje.estimators.base import Estimate
from cje.estimators.direct import DirectEstimator, direct_estimate

__all__ = ["DirectEstimator", "Estimate", "direct_estimate"]
