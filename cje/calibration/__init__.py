"""Calibration: AutoCal-R (judge scores to oracle labels)."""

from cje.calibration.reward import (
    Calibration,
    IsotonicMap,
    RewardCalibrator,
    effective_folds,
    fit_isotonic,
)

__all__ = ["Calibration", "IsotonicMap", "RewardCalibrator", "effective_folds", "fit_isotonic"]
