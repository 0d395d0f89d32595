"""Study 7 — cross-fitting / jackknife folds ``K`` (``n_folds``): 2, 5 or 10.

``K`` sets the folds of the oracle labels: the calibrator is cross-fitted over them, the
SIMCal-W weights and DR outcome models are fitted out of fold, and the OUA jackknife deletes one
fold at a time. This study runs calibrated IPS and stacked DR with K = 2, 5 and 10 on the same
data (noisy judge, ``judge_noise=0.1``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cje.studies import DEFAULT_SEEDS
from cje.studies._offpolicy import ess_label, settings_study

__all__ = ["DEFAULT_SEED", "FULL", "QUICK", "SETTINGS", "run", "task"]

NAME = "folds"
DEFAULT_SEED = DEFAULT_SEEDS[NAME]
FULL: dict[str, Any] = {"reps": 300, "n_prompts": 2000}
QUICK: dict[str, Any] = {"reps": 6, "n_prompts": 400}
NOISES: tuple[float, ...] = (0.1,)
TARGETS: tuple[str, ...] = ("ess90", "ess60", "ess10")
ESTIMATORS: tuple[str, ...] = ("calibrated-ips", "stacked-dr")
FOLDS: tuple[int, ...] = (2, 5, 10)
DEFAULT_K = 5
#: Setting label -> :func:`cje.analyze` options.
SETTINGS: dict[str, dict[str, Any]] = {
    f"{est} / K={k}": {"estimator": est, "n_folds": k} for est in ESTIMATORS for k in FOLDS
}


def _reading(s: pd.DataFrame, df: pd.DataFrame) -> list[str]:
    """The Reading section, computed from the summary ``s``."""
    cells = [(n, t) for n in NOISES for t in TARGETS]
    lines = []
    ok = True
    for est in ESTIMATORS:
        parts = []
        for n, t in cells:
            x = {k: s.loc[(n, t, f"{est} / K={k}")] for k in FOLDS}
            parts.append(f"ESS {ess_label(t)}: coverage "
                         + " / ".join(f"{x[k]['coverage']:.3f}" for k in FOLDS)
                         + ", RMSE " + " / ".join(f"{x[k]['rmse']:.4f}" for k in FOLDS))
            d = x[DEFAULT_K]
            for k in FOLDS:
                if k == DEFAULT_K:
                    continue
                se = np.hypot(d["coverage_se"], x[k]["coverage_se"])
                if x[k]["coverage"] > d["coverage"] + 2 * se or x[k]["rmse"] < d["rmse"] * 0.98:
                    ok = False
        lines.append(f"- {est} (K = {' / '.join(map(str, FOLDS))}): " + "; ".join(parts) + ".")
    k2 = [s.loc[(n, t, f"{est} / K=2"), "rmse"] / s.loc[(n, t, f"{est} / K={DEFAULT_K}"), "rmse"]
          for n, t in cells for est in ESTIMATORS]
    lines.append(f"- K = 2 (the calibrator and the stabiliser learn from half the labels in each fold) "
                 f"has {min(k2):.2f}–{max(k2):.2f}× the RMSE of K = {DEFAULT_K}.")
    lines += ["", (f"Decision: K = {DEFAULT_K} kept: no other K covers better by more than 2 MC SE or "
                   "has an RMSE more than 2% lower in any cell." if ok else
                   f"Decision: some K beats K = {DEFAULT_K} in a cell (coverage by more than 2 MC SE "
                   "or RMSE by more than 2%); see the table before keeping the default.")]
    return lines


task, run = settings_study(
    NAME, noises=NOISES, targets=TARGETS, settings=SETTINGS, full=FULL, quick=QUICK,
    title="Study 7 — cross-fitting / jackknife folds K",
    what="calibrated IPS and stacked DR with K = 2, 5 and 10 folds", reading=_reading,
    quick_note="Small tier (n = 400 prompts) for tests.")
