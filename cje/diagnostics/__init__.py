"""Diagnostics that read data and results.

* :mod:`cje.diagnostics.calibration`: transport audits of the calibration on probe slices and
  the share of scores outside the labelled judge range.
* :mod:`cje.diagnostics.overlap`: overlap of importance weights (ESS, tail index, judge-space
  affinity, TTC/CLE, mean raw weight) for off-policy estimates.
* :mod:`cje.diagnostics.gates`: the support gate (targets the logged data cannot estimate) and
  the final sanity gate every estimate passes before contrasts and ranking.
"""

from cje.diagnostics import calibration, gates, overlap

__all__ = ["calibration", "gates", "overlap"]
