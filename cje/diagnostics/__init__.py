"""Diagnostics that read data and results.

* :mod:`cje.diagnostics.calibration`: transport audits of the calibration on probe slices and
  the share of scores outside the labelled judge range.
* :mod:`cje.diagnostics.overlap`: overlap of importance weights (ESS, tail index, judge-space
  affinity, TTC/CLE) for off-policy estimates.
"""

from cje.diagnostics import calibration, overlap

__all__ = ["calibration", "overlap"]
