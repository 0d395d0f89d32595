"""What every judge-bias diagnostic shares (docs: Judge bias): reading the input, checking columns.

The result types live elsewhere: :class:`~cje.results.BiasResult` on the ground floor
(:mod:`cje.results`, re-exported here), the audit's :class:`~cje.bias.BiasAudit` with its
presentation in ``cje/bias/_report.py``. Reading any input as a table (:func:`as_frame`) and the
column check (:func:`require_columns`) live in :mod:`cje.tables`, beside the data, so that
:mod:`cje.pairwise` uses them too without importing the bias package.
"""

from __future__ import annotations

from cje.results import BiasResult
from cje.tables import as_frame, require_columns

__all__ = ["BiasResult", "as_frame", "require_columns"]
