"""Small helpers shared by the pairwise modules: readable values and row references in messages,
missing-value tests and a natural sort that tolerates mixed types."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so messages show ``3``, not ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: Any) -> bool:
    """Whether one cell is None/NaN/NA (False for anything pandas cannot test, e.g. a list)."""
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _has(value: Any) -> str:
    """``has 'x'`` for a value, ``is missing`` for None/NaN/NA."""
    return "is missing" if _missing(value) else f"has {_py(value)!r}"


def _show(value: Any) -> str:
    """``repr`` of a cell for messages; ``a missing value`` for None/NaN/NA."""
    return "a missing value" if _missing(value) else repr(_py(value))


def _sorted(values: Iterable[Any]) -> list[Any]:
    """Values sorted naturally, or by their text when they are not mutually comparable."""
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)
