"""Data as tables: one flat row per response (the inverse of :func:`cje.load`'s columns), any
input read as a pandas frame (:func:`as_frame`, for the bias tests and :mod:`cje.pairwise`), and
the check that a table has the columns a test needs.

Beside the data, not with the presentation: :func:`cje.export.convert` writes the flat table to
a file, and the bias tests read a directory of fresh draws through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from cje.data import EvalData

__all__ = ["as_frame", "flat_table", "require_columns"]


def flat_table(data: EvalData) -> pd.DataFrame:
    """One flat row per response: ``prompt_id, policy, draw_idx, judge_score, oracle_label``,
    ``label_probability`` (only when the labelling design is not uniform), the covariates and
    the log-probability columns (``logprob_base``, ``logprob[<target>]``).

    Parameters
    ----------
    data : EvalData

    Returns
    -------
    pandas.DataFrame
        Calibration-only rows have policy ``"(calibration)"``.

    Examples
    --------
    >>> import cje
    >>> from cje.tables import flat_table
    >>> d = cje.load({"prompt_id": ["a", "b"], "judge_score": [3, 8], "oracle_label": [2, None]},
    ...              policy="m", judge_scale=(0, 10), label_scale=(1, 5))
    >>> flat_table(d).columns.tolist()
    ['prompt_id', 'policy', 'draw_idx', 'judge_score', 'oracle_label']
    """
    import numpy as np
    import pandas as pd

    names = np.append(np.asarray(data.policies, dtype=object), "(calibration)")
    cols: dict[str, Any] = {
        "prompt_id": data.prompt_id,
        "policy": names[data.policy_code],
        "draw_idx": data.draw_idx,
        "judge_score": data.judge_score,
        "oracle_label": data.oracle_label,
    }
    if data.label_probability is not None:  # a non-uniform labelling design (absent: uniform)
        cols["label_probability"] = data.label_probability
    cols.update(data.covariates)
    for k, v in data.logprobs.items():
        cols["logprob_base" if k == "base" else f"logprob[{k}]"] = v
    return pd.DataFrame(cols)


def require_columns(frame_columns: Sequence[str], needed: Sequence[str], what: str) -> None:
    """Raise a clear error naming every missing column a test needs.

    Parameters
    ----------
    frame_columns : sequence of str
        The columns the table has.
    needed : sequence of str
        The columns the test needs.
    what : str
        The test's name, for the message.

    Raises
    ------
    CJEInputError
        Some needed column is missing (all of them are named).

    Examples
    --------
    >>> require_columns(["prompt_id", "winner"], ["prompt_id", "a_id", "winner"], "position bias")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: position bias needs columns prompt_id, a_id, winner; missing: a_id.
    """
    from cje.errors import CJEInputError

    missing = [c for c in needed if c not in frame_columns]
    if missing:
        raise CJEInputError(
            f"{what} needs columns {', '.join(needed)}; missing: {', '.join(missing)}."
        )


def as_frame(data: Any) -> Any:
    """A pandas DataFrame from pandas, polars, a dict of arrays or a file path.

    Files are read by :func:`cje.readers.read_table`, the reader :func:`cje.load` uses: the same
    formats (those registered with :func:`cje.readers.register_reader` included), ids read as the
    exact text written (``1.10`` and ``1.1`` stay distinct), and the same errors, naming the file
    and the line. A cje-eval fresh-draws directory (one file per policy) is read by
    :func:`cje.load` itself: its flat table, with ``response_length`` derived when possible.

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame, dict of arrays, str or path
        The input; a pandas frame is returned as is.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "scores.csv"
    ...     _ = p.write_text("prompt_id,policy,judge,judge_score\\n007,1.10,j,0.5\\n7,1.1,j,0.2\\n")
    ...     df = as_frame(p)
    >>> df["prompt_id"].tolist(), df["policy"].tolist()
    (['007', '7'], ['1.10', '1.1'])
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    mod = type(data).__module__
    if mod.startswith("polars") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, dict):  # as cje.load reads a dict: equal lengths, mixed ids kept as given
        from cje.data import _columns_of

        return pd.DataFrame(_columns_of(data))
    import os
    from pathlib import Path

    if isinstance(data, (str, os.PathLike)):
        from cje.readers import read_table, reader_for

        p = Path(data)
        if p.is_dir() and reader_for(p).name == "fresh-draws":  # read as cje.load does
            return _flat_from_load(p)
        return read_table(p).to_pandas()
    from cje.errors import CJEInputError

    raise CJEInputError(
        f"Cannot read data of type {type(data).__name__}: pass a pandas or polars DataFrame, a "
        "dict of arrays, a .jsonl/.csv/.parquet path or a directory of fresh draws."
    )


def _flat_from_load(path: Any) -> Any:
    """The flat table (:func:`cje.export.flat_table`) of a directory :func:`cje.load` reads,
    with ``response_length`` derived from the response text when there is one."""
    from cje.data import load
    from cje.errors import CJEInputError

    try:
        data = load(path, covariates=("response_length",))
    except CJEInputError as exc:  # no response text: the tests that need a length say so
        if "response_length" not in str(exc):
            raise
        data = load(path)
    return flat_table(data)
