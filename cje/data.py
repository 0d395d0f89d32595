"""Evaluation data: loading, validation (once, at the boundary), scales and prompt folds.

Everything :mod:`cje` computes starts from an :class:`EvalData`: one row per judged response in
long format (``prompt_id, policy, judge_score, oracle_label?, draw_idx?, covariates…``). It is built
from a pandas or polars DataFrame, a dict of arrays, a JSONL/CSV/Parquet file, or the formats of
the ``cje-eval`` package (a directory of ``<policy>_responses.jsonl`` fresh draws, or a logged-data
JSONL file with nested ``target_policy_logprobs`` and ``metadata.prompt_id``).

Validation happens here and nowhere else: the code downstream assumes finite, contiguous float64
arrays. Every error names the field, the row (0-based, in input order) or prompt, and the fix.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import math
import os
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cje._memo import remember
from cje.errors import OR_DROP as _OR_DROP
from cje.errors import CJEInputError

__all__ = [
    "EvalData",
    "load",
    "prompt_folds",
    "infer_scale",
    "COMMON_SCALES",
    "decimal_float64",
]

#: How the notice of an inferred label scale begins (read by the label-range gate,
#: :func:`cje.diagnostics.gates.label_range_gate`, to tell an inferred scale from a declared one).
INFERRED_LABEL_SCALE = "label_scale was not given; inferred"

#: Scales tried, in order, when a scale is not declared: the first that contains every value wins.
COMMON_SCALES: tuple[tuple[float, float], ...] = (
    (0.0, 1.0),
    (0.0, 5.0),
    (1.0, 5.0),
    (0.0, 7.0),
    (1.0, 7.0),
    (0.0, 10.0),
    (1.0, 10.0),
    (0.0, 100.0),
)

#: Largest scale width and bound accepted: variances (width squared) must stay finite.
MAX_SCALE_WIDTH = 1e100

_STANDARD = ("prompt_id", "policy", "judge_score", "oracle_label", "draw_idx",
             "label_probability", "label_stratum")
OnInvalid = Literal["raise", "drop"]


# --------------------------------------------------------------------------------------------
# The data model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class EvalData:
    """Validated evaluation data in long format (one row per judged response).

    Build it with :func:`cje.load` (any supported source) or :meth:`EvalData.from_frame`; do
    not call the constructor directly. Arrays are read-only views; a numeric column that needs
    no conversion (float64 scores and labels, an integer ``draw_idx``) shares the input's memory
    instead of being copied, so load again after changing the input in place.

    Attributes
    ----------
    prompt_id : numpy.ndarray
        Prompt id per row (strings), the cluster unit for every variance. Computed on each
        access as ``prompts[prompt_code]`` (a new read-only array), not stored: every
        computation uses :attr:`prompt_code` and :attr:`prompts`.
    prompt_code : numpy.ndarray
        Integer code per row into :attr:`prompts`.
    prompts : numpy.ndarray
        Distinct prompt ids.
    policy_code : numpy.ndarray
        Integer code per row into :attr:`policies` (-1 for calibration-only rows).
    policies : tuple of str
        Policy names, sorted.
    draw_idx : numpy.ndarray
        Draw index per row (repeated responses of a policy to one prompt).
    judge_score : numpy.ndarray
        Judge score per row, on :attr:`judge_scale`.
    oracle_label : numpy.ndarray
        Oracle label per row on :attr:`label_scale`, NaN where not observed.
    covariates : Mapping[str, numpy.ndarray]
        Numeric calibration covariates (e.g. ``response_length``), complete on every row.
    logprobs : Mapping[str, numpy.ndarray]
        Log-probability columns of logged data (``base`` and one per target), NaN where missing.
    judge_scale, label_scale : tuple of float
        Declared or inferred scales; see :attr:`notices` for inferred ones.
    notices : tuple of str
        Things the user should know (inferred scales, assigned draw indices…).
    excluded : Mapping[str, int]
        Rows excluded on request (``on_invalid="drop"``), by reason. Nothing else is dropped.
    excluded_by_policy : Mapping[str, int]
        The same rows by policy (those with a policy name): a level whose rows were dropped is
        cautioned when they could move it (:func:`cje.diagnostics.gates.dropped_rows_gate`).
    label_probability : numpy.ndarray or None
        The probability ``π_i ∈ (0, 1]`` with which each row was sent for an oracle label (the
        ``label_probability`` column; NaN allowed on unlabelled rows), when the labelled rows do
        not all share one value; ``None`` when the column is absent or constant over the
        labelled rows — a uniform design, analysed exactly as without the column (docs: Methods
        › Labels sampled with known probabilities).
    label_reach : Mapping[str, tuple[float, float]]
        With a ``label_probability`` column (uniform or not): per policy with labels, how much
        of its rows its labelled rows' design weights stand for, ``Σ_lab 1/π_i / n_p``, and the
        z statistic of that total against ``n_p`` (:func:`label_reach`). Empty without the column.

    Examples
    --------
    >>> import cje
    >>> d = cje.load({"prompt_id": ["a", "b", "a", "b"], "policy": ["x", "x", "y", "y"],
    ...               "judge_score": [0.2, 0.9, 0.4, 0.7],
    ...               "oracle_label": [0.0, 1.0, None, None]}, judge_scale=(0, 1))
    >>> d.n_rows, d.policies, d.n_labels
    (4, ('x', 'y'), 2)
    """

    prompt_code: np.ndarray
    prompts: np.ndarray
    policy_code: np.ndarray
    policies: tuple[str, ...]
    draw_idx: np.ndarray
    judge_score: np.ndarray
    oracle_label: np.ndarray
    covariates: Mapping[str, np.ndarray]
    logprobs: Mapping[str, np.ndarray]
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    notices: tuple[str, ...] = ()
    excluded: Mapping[str, int] = field(default_factory=dict)
    excluded_by_policy: Mapping[str, int] = field(default_factory=dict)
    label_probability: np.ndarray | None = None
    label_reach: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    # ---- derived, cheap ------------------------------------------------------------------
    @property
    def prompt_id(self) -> np.ndarray:
        """Prompt id per row, ``prompts[prompt_code]``: computed on each access, not stored.

        At 10^7 rows a stored per-row array of ids costs 80 MB of references (and the strings
        themselves when every row has its own prompt), for what :attr:`prompt_code` and
        :attr:`prompts` already hold; the package's own code reads those.

        Returns
        -------
        numpy.ndarray of str (object)
            A new read-only array, one id per row.

        Examples
        --------
        >>> import cje
        >>> d = cje.load({"prompt_id": ["a", "b", "a"], "judge_score": [1, 2, 3]}, policy="m",
        ...              judge_scale=(0, 10))
        >>> d.prompt_id.tolist(), d.prompt_code.tolist(), d.prompts.tolist()
        (['a', 'b', 'a'], [0, 1, 0], ['a', 'b'])
        """
        out = self.prompts[self.prompt_code]
        out.flags.writeable = False
        return out

    @property
    def n_rows(self) -> int:
        """Number of rows (including calibration-only rows)."""
        return int(self.judge_score.shape[0])

    @property
    def labelled(self) -> np.ndarray:
        """Boolean mask of rows with an observed oracle label."""
        return ~np.isnan(self.oracle_label)

    @property
    def n_labels(self) -> int:
        """Number of rows with an observed oracle label."""
        return int(np.count_nonzero(self.labelled))

    @property
    def calibration_only(self) -> np.ndarray:
        """Boolean mask of rows that only train the calibrator (``policy_code == -1``)."""
        return self.policy_code < 0

    def judge01(self) -> np.ndarray:
        """Judge scores mapped affinely to [0, 1].

        Returns
        -------
        numpy.ndarray
            ``(judge_score − low) / (high − low)`` with ``(low, high) = judge_scale``.

        Examples
        --------
        >>> import cje
        >>> d = cje.load({"prompt_id": ["a", "b"], "policy": ["x", "x"], "judge_score": [2, 9]},
        ...              judge_scale=(0, 10))
        >>> d.judge01().tolist()
        [0.2, 0.9]
        """
        lo, hi = self.judge_scale
        return (self.judge_score - lo) / (hi - lo)

    def label01(self) -> np.ndarray:
        """Oracle labels mapped affinely to [0, 1] (NaN where unlabelled).

        Returns
        -------
        numpy.ndarray
            ``(oracle_label − low) / (high − low)`` with ``(low, high) = label_scale``.

        Examples
        --------
        >>> import cje
        >>> d = cje.load({"prompt_id": ["a", "b", "c"], "policy": ["x"] * 3,
        ...               "judge_score": [2, 9, 5], "oracle_label": [1, 4, None]},
        ...              judge_scale=(0, 10), label_scale=(1, 5))
        >>> d.label01().tolist()
        [0.0, 0.75, nan]
        """
        lo, hi = self.label_scale
        return (self.oracle_label - lo) / (hi - lo)

    def rows_of(self, policy: str) -> np.ndarray:
        """Row indices of one policy.

        Parameters
        ----------
        policy : str
            A name in :attr:`policies`.

        Returns
        -------
        numpy.ndarray of int

        Raises
        ------
        CJEInputError
            The policy has no rows (the message lists the policies).

        Examples
        --------
        >>> import cje
        >>> d = cje.load({"prompt_id": ["a", "b", "a", "b"], "policy": ["x", "x", "y", "y"],
        ...               "judge_score": [0.2, 0.9, 0.4, 0.7]}, judge_scale=(0, 1))
        >>> d.rows_of("y").tolist()
        [2, 3]
        >>> d.judge_score[d.rows_of("y")].tolist()
        [0.4, 0.7]
        """
        try:
            code = self.policies.index(policy)
        except ValueError:
            raise CJEInputError(
                f"Policy {policy!r} has no rows; the data has policies {list(self.policies)}."
            ) from None
        return np.flatnonzero(self.policy_code == code)

    # ---- constructors --------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: Any,
        *,
        judge_scale: tuple[float, float] | None = None,
        label_scale: tuple[float, float] | None = None,
        columns: Mapping[str, str] | None = None,
        covariates: Sequence[str] = (),
        on_invalid: OnInvalid = "raise",
        policy: str | None = None,
    ) -> EvalData:
        """Build from a pandas/polars DataFrame or a mapping of column name to array-like.

        Parameters
        ----------
        frame : pandas.DataFrame, polars.DataFrame or Mapping[str, array-like]
            Long-format data. Required columns: ``prompt_id``, ``judge_score``; usually also
            ``policy`` and ``oracle_label`` (NaN/None where unlabelled); optional ``draw_idx``,
            ``response_length`` or ``response``, covariate columns, and ``label_probability``
            (the probability with which each row was sent for a label; see
            :func:`label_probabilities`) with an optional ``label_stratum``.
        judge_scale, label_scale : (low, high), optional
            The scales the judge and the labels are on. Values outside a declared scale are an
            error; an undeclared scale is inferred (the smallest common scale containing the
            data, else the observed range) and a notice says so.
        columns : Mapping[str, str], optional
            Rename your columns to the standard names, e.g. ``{"judge_score": "score"}`` (a
            mapping; a list is refused). Columns mapped to ``prompt_id`` or ``policy`` are read
            from files as the exact text written.
        covariates : sequence of str
            Numeric columns to keep as calibration covariates, as a list of names
            (``["response_length"]``; a bare string is refused, not split into characters).
            ``"response_length"`` is derived from a ``response`` column (whitespace words) when
            there is no such column.
        on_invalid : {"raise", "drop"}
            ``"drop"`` excludes rows with an invalid judge score (empty, NaN, infinite, or a
            missing-value word such as ``'NA'``; a malformed number such as ``'7,5'`` is still
            refused) or an empty prompt id instead of raising; their number is recorded in
            :attr:`excluded` and shown in the report.
        policy : str, optional
            Policy name for data with no ``policy`` column (one policy).

        Returns
        -------
        EvalData

        Examples
        --------
        >>> import pandas as pd
        >>> df = pd.DataFrame({"prompt_id": ["a", "b", "c"], "score": [0.2, 0.9, 0.5],
        ...                    "oracle_label": [0.0, 1.0, None]})
        >>> d = EvalData.from_frame(df, columns={"judge_score": "score"}, policy="model-v1",
        ...                         judge_scale=(0, 1), label_scale=(0, 1))
        >>> d.policies, d.n_rows, d.n_labels
        (('model-v1',), 3, 2)
        """
        covariates = _check_options(columns, covariates)
        cols = _columns_of(frame)
        return _build(
            cols,
            judge_scale=judge_scale,
            label_scale=label_scale,
            columns=columns,
            covariates=covariates,
            on_invalid=on_invalid,
            policy=policy,
        )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def load(
    source: Any,
    *,
    judge_scale: tuple[float, float] | None = None,
    label_scale: tuple[float, float] | None = None,
    columns: Mapping[str, str] | None = None,
    covariates: Sequence[str] = (),
    on_invalid: OnInvalid = "raise",
    policy: str | None = None,
    logging_policy: str = "base",
) -> EvalData:
    """Load evaluation data from any supported source and validate it.

    Parameters
    ----------
    source : EvalData, DataFrame, Mapping or path
        * an :class:`EvalData` (returned as is);
        * a pandas or polars DataFrame, or a dict of arrays, in long format;
        * a ``.jsonl``/``.ndjson``, ``.csv`` or ``.parquet`` file in long format (read by
          :func:`cje.readers.read_table`: ids as the exact text written; a file that does not
          parse fails naming the file and the line);
        * a ``cje-eval`` fresh-draws directory of ``<policy>_responses.jsonl`` files;
        * a ``cje-eval`` logged-data JSONL file (``metadata.prompt_id``,
          ``base_policy_logprob``, ``target_policy_logprobs``): its rows become policy
          ``logging_policy`` and the log-probabilities are kept in :attr:`EvalData.logprobs`.
        * a file of a format registered with :func:`cje.readers.register_reader`.
    judge_scale, label_scale, columns, covariates, on_invalid, policy
        As in :meth:`EvalData.from_frame`.
    logging_policy : str
        Name given to the rows of logged data.

    Returns
    -------
    EvalData

    Raises
    ------
    CJEInputError
        On invalid input; the message names the field, the row and the fix.

    Examples
    --------
    >>> import cje
    >>> d = cje.load({"prompt_id": ["a", "b"], "judge_score": [3, 8]}, policy="m",
    ...              judge_scale=(0, 10))
    >>> d.policies, d.judge_scale
    (('m',), (0.0, 10.0))
    """
    if isinstance(source, EvalData):
        return source
    kw: dict[str, Any] = dict(
        judge_scale=judge_scale,
        label_scale=label_scale,
        columns=columns,
        covariates=covariates,
        on_invalid=on_invalid,
        policy=policy,
    )
    covariates = kw["covariates"] = _check_options(columns, covariates)
    if isinstance(source, (str, os.PathLike)):
        from cje.readers import refuse_url

        refuse_url(source)  # before Path() folds its '//'
        cols = read_columns(Path(source), covariates=covariates, logging_policy=logging_policy,
                            columns=columns)
        try:
            return _build(cols, **kw)
        except CJEInputError as exc:  # a validation error names the file it came from
            if str(source) in str(exc):
                raise
            from cje.readers import row_lines

            rows = getattr(exc, "rows", ())
            lines = row_lines(source, rows) if rows else None
            raise CJEInputError(f"In '{source}'{f' ({lines})' if lines else ''}: {exc}") from None
    return EvalData.from_frame(source, **kw)


#: Bytes of input the json reader of small files may read in one process, and the bytes it has
#: read so far. Measured on the Arena fresh draws (6.4 MB): json takes ~0.016 s longer per read
#: than polars, and importing polars (with what its reader loads) ~0.24 s, so json's extra cost
#: reaches the import's after ~15 such reads, ~96 MB.
_JSON_BUDGET = 96 * 2**20
_JSON_READ = [0]


def read_columns(
    path: Path,
    *,
    covariates: Sequence[str] = (),
    logging_policy: str = "base",
    columns: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Read a supported file or directory into a dict of numpy columns (no validation).

    The file is read by :func:`cje.readers.read_table`, the one reader of every format (a small,
    plain JSON Lines input by :func:`cje.readers.read_small_columns`, to the same columns).

    Parameters
    ----------
    path : pathlib.Path
        A long-format file (JSONL, CSV, Parquet), a cje-eval fresh-draws directory, or a cje-eval
        logged-data JSONL file.
    covariates : sequence of str
        Extra columns to read besides the standard ones.
    logging_policy : str
        Policy name for the rows of a logged-data file.
    columns : Mapping[str, str], optional
        The user's rename map; the columns it maps to ``prompt_id`` and ``policy`` are read as
        the exact text written, like the standard id columns.
    """
    from cje.readers import _BUILT_IN, file_signature, reader_for

    key: tuple[Any, ...] | None = None
    try:
        if reader_for(path) in _BUILT_IN:  # a registered reader may read more than the path
            sig = file_signature(path)
            if sig is not None and sum(e[3] for e in sig) <= _MEMO_BYTES:
                key = (os.path.abspath(path), sig, tuple(covariates), logging_policy,
                       tuple((columns or {}).items()))
    except CJEInputError:  # an unknown file type: the reader says so below
        pass
    if key is not None and key in _READ_MEMO:
        return {k: v.copy() for k, v in _READ_MEMO[key].items()}
    cols = _read_columns(path, covariates=covariates, logging_policy=logging_policy,
                         columns=columns)
    if key is not None and all(isinstance(v, np.ndarray) or _is_extension_array(v)
                               for v in cols.values()):
        remember(_READ_MEMO, key, {k: v.copy() for k, v in cols.items()}, _READ_MEMO_SIZE)
    return cols


#: Columns read by :func:`read_columns` from small inputs (at most ``_MEMO_BYTES`` on disk), by
#: (absolute path, :func:`cje.readers.file_signature`, options): a warm call on the same unchanged
#: files does not parse them again. Copies go in and out, so no caller can change what another
#: gets. The most recent ``_READ_MEMO_SIZE`` inputs.
_READ_MEMO: dict[tuple[Any, ...], dict[str, Any]] = {}
_READ_MEMO_SIZE = 8
_MEMO_BYTES = 16 * 2**20


def _is_extension_array(v: Any) -> bool:
    """A pandas extension array (e.g. Arrow-backed strings of a logged-data file): its
    ``copy()`` is a new array that changes apart from the original."""
    pd = sys.modules.get("pandas")
    return pd is not None and isinstance(v, pd.api.extensions.ExtensionArray)


def _read_columns(path: Path, *, covariates: Sequence[str], logging_policy: str,
                  columns: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """:func:`read_columns` without its memo."""
    from cje.readers import ID_COLUMNS, first_record_fields, read_small_columns, read_table

    fields = first_record_fields(Path(path))  # (JSON Lines: only the wanted fields are read)
    if fields is not None:
        std_of = {theirs: std for std, theirs in (columns or {}).items()}
        try:
            refuse_near_miss([std_of.get(f, f) for f in fields])
        except CJEInputError as exc:
            raise CJEInputError(f"In '{path}': {exc}") from None
    mapped = [*(columns or {}).values()]
    ids = [*ID_COLUMNS, *[v for k, v in (columns or {}).items() if k in ID_COLUMNS]]
    # a long-format file's log-probability columns (logged data): the JSON Lines readers read
    # only the wanted fields, and the first record names them (as it does out of core)
    logprob_fields = [f for f in fields or () if str(f).startswith("logprob")]
    want = _wanted([*covariates, *mapped, *logprob_fields])
    # a few thousand plain rows: json, to spare the polars import at start-up. Once polars is
    # loaded, or json has read _JSON_BUDGET bytes in this process, polars reads (the rent-or-buy
    # rule: switch when json's extra time so far has paid for the import)
    if "polars" not in sys.modules and _JSON_READ[0] < _JSON_BUDGET:
        small = read_small_columns(path, want=want, id_columns=ids)
        if small is not None:
            p = Path(path)
            _JSON_READ[0] += (sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
                              if p.is_dir() else p.stat().st_size)
            return small
    frame = read_table(path, want=want, id_columns=ids, logging_policy=logging_policy)
    return _columns_of(frame)


def _wanted(covariates: Sequence[str]) -> list[str]:
    want = list(_STANDARD) + ["response_length"]
    want += [c for c in covariates if c not in want]
    if "response_length" in covariates:
        want.append("response")
    return want


def _check_options(columns: Any, covariates: Any) -> tuple[str, ...]:
    """Refuse a ``columns`` that is not a mapping and a ``covariates`` that is not a list of
    names (a string is not iterated character by character); the covariates as a tuple
    (``None`` means none)."""
    if covariates is None:
        covariates = ()
    if columns is not None and not isinstance(columns, Mapping):
        raise CJEInputError(
            f"columns must be a mapping from standard name to your column name, e.g. "
            f"columns={{'judge_score': 'score'}}; got {type(columns).__name__} {columns!r}."
        )
    for std, theirs in (columns or {}).items():
        if not isinstance(std, str) or not isinstance(theirs, str):
            raise CJEInputError(
                f"columns must map column names (strings) to column names; got {std!r}: {theirs!r}."
            )
    if isinstance(covariates, (str, bytes)) or not isinstance(covariates, Sequence | set | frozenset):
        hint = f"covariates=[{covariates!r}]" if isinstance(covariates, str) else "covariates=['a', 'b']"
        raise CJEInputError(
            f"covariates must be a list of column names, e.g. {hint}; got "
            f"{type(covariates).__name__} {covariates!r}."
        )
    for c in covariates:
        if not isinstance(c, str):
            raise CJEInputError(f"covariates must be column names (strings); got {c!r}.")
    return tuple(covariates)


def pd_is_string(dtype: Any) -> bool:
    """Whether a pandas dtype is a (non-object) string dtype."""
    import pandas as pd

    return isinstance(dtype, pd.StringDtype)


def _polars_column(col: Any) -> Any:
    """A polars column as numpy, except complete string columns: those become pandas string
    arrays over the same Arrow buffers (no copy), as a pandas frame's string columns are, so
    ids are factorised natively instead of as millions of Python strings (3x faster)."""
    import polars as pl

    if col.dtype == pl.String and col.null_count() == 0 and len(col):
        import pandas as pd

        # (renamed first: Arrow's C schema cannot hold a column name with a NUL byte)
        return pd.array(col.alias("c").to_arrow(), dtype=pd.StringDtype("pyarrow", na_value=np.nan))
    return col.to_numpy()


def _columns_of(frame: Any) -> dict[str, Any]:
    """Dict of column name -> numpy array from pandas, polars or a mapping."""
    mod = type(frame).__module__
    if mod.startswith("polars"):
        if hasattr(frame, "collect") and not hasattr(frame, "height"):
            frame = frame.collect()
        return {c: _polars_column(frame.get_column(c)) for c in frame.columns}
    if mod.startswith("pandas") and not hasattr(frame, "columns"):
        raise CJEInputError(
            f"Cannot read a pandas {type(frame).__name__}: pass a DataFrame with one column per "
            "field (for a Series, series.to_frame() or a dict of columns)."
        )
    if mod.startswith("pandas"):
        in_index = [n for n in frame.index.names if n in _STANDARD and n not in frame.columns]
        if in_index:
            raise CJEInputError(
                f"The DataFrame's index holds {', '.join(map(repr, in_index))}, which cje reads "
                "from columns (the index is not read, so it would be missing): pass "
                "df.reset_index()."
            )
        dup = frame.columns[frame.columns.duplicated()]
        if len(dup):
            raise CJEInputError(
                f"The DataFrame has more than one column named {dup[0]!r}: each column needs a "
                "distinct name. Rename or drop the duplicate."
            )
        # string columns stay pandas arrays: factorizing them natively is much faster than
        # converting millions of strings to Python objects first
        return {
            str(c): frame[c].array if pd_is_string(frame[c].dtype) else frame[c].to_numpy()
            for c in frame.columns
        }
    if isinstance(frame, Mapping):
        out = {}
        for k, v in frame.items():
            try:
                arr = np.asarray(v)
            except ValueError:  # ragged, e.g. a list among the ids: keep the values as given
                arr = np.empty(len(v), dtype=object)
                arr[:] = list(v)
            if arr.dtype.kind == "U" and not isinstance(v, np.ndarray):
                arr = np.asarray(v, dtype=object)  # a missing value stays missing, not 'nan'
            if arr.ndim != 1:
                raise CJEInputError(
                    f"Column {k!r} must be one-dimensional; got shape {arr.shape}."
                )
            out[str(k)] = arr
        lengths = {k: len(v) for k, v in out.items()}
        if len(set(lengths.values())) > 1:
            (k1, n1), (k2, n2) = next(
                ((a, b) for a, b in zip(lengths.items(), list(lengths.items())[1:], strict=False)
                 if a[1] != b[1]))
            raise CJEInputError(
                f"Every column must have one value per row; column {k1!r} has {n1} values but "
                f"{k2!r} has {n2}. Pass columns of equal length."
            )
        return out
    raise CJEInputError(
        f"Cannot read data of type {type(frame).__name__}: pass a pandas or polars DataFrame, a "
        "dict of arrays, a file path or a cje-eval fresh-draws directory."
    )


# --------------------------------------------------------------------------------------------
# Validation and construction
# --------------------------------------------------------------------------------------------
def _is_missing(v: Any) -> bool:
    """None, NaN or pandas.NA: a missing value in any supported source."""
    return v is None or (isinstance(v, float) and np.isnan(v)) or type(v).__name__ == "NAType"


def _show(v: Any) -> str:
    """repr of a value as the user wrote it (``nan``, ``'x'``), not ``np.float64(nan)``."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def _clean_ids(
    raw: Any, strip: bool = True, name: str = "prompt_id"
) -> tuple[np.ndarray, np.ndarray]:
    """Factorize an id column: codes per row (-1 where missing or empty) and the cleaned ids.

    Ids become strings (an integer ``3`` or integer-valued float ``3.0`` becomes ``"3"``) and,
    with ``strip``, lose surrounding whitespace. Distinct values that would become the same id
    (``7`` and ``"7"``, ``" a"`` and ``"a"``) are refused, naming both rows: ids are never merged
    silently. Only distinct values are cleaned in Python, so this is fast on millions of rows.
    """
    plain = _factorize_small_str(raw)  # a few thousand str ids: no pandas import
    if plain is not None:
        codes, uniq = plain
        cleaned = np.array([v.strip() for v in uniq.tolist()] or [], dtype=object) if strip else uniq
        if not (cleaned == "").any() and (cleaned is uniq or (cleaned == uniq).all()):
            return codes, uniq
        return _merge_cleaned(codes, cleaned, uniq, name)
    import pandas as pd

    if raw.dtype.kind in "iu":
        raw = raw.astype(str)
    shared, key = _SHARED_IDS.get(), None
    try:
        block = _repeated_block(raw)
        if shared is not None and name == "prompt_id":  # (cje.analyze with fresh draws: shares_ids)
            key = _ids_key(raw if block is None else raw[:block], strip, name)
            if key is not None and key in shared:
                head_codes, uniq = shared[key]
                return (head_codes.copy() if block is None else
                        np.tile(head_codes, -(-len(raw) // block))[: len(raw)]), uniq
        if block is None:
            codes, uniq = pd.factorize(raw, use_na_sentinel=True)
        else:  # whole copies of its first `block` ids (then a prefix of them): factorised once
            first, uniq = pd.factorize(raw[:block], use_na_sentinel=True)
            codes = np.tile(first, -(-len(raw) // block))[: len(raw)]
    except TypeError:  # unhashable values (lists, dicts)
        _refuse_non_scalar_ids(np.asarray(raw, dtype=object), name, range(len(raw)))
        raise  # pragma: no cover - the line above raises
    edges = _space_at_edges(uniq) if strip else None
    uniq = np.asarray(uniq, dtype=object)
    # fast path: all str (Arrow strings always are: factorize leaves their nulls out)
    if edges is not None or pd.api.types.infer_dtype(uniq, skipna=False) == "string":
        cleaned = uniq
        if strip:
            # str.strip per distinct id (pandas' .str.strip does the same call with more
            # overhead); for Arrow strings only on the ids that start or end with whitespace
            todo = range(len(uniq)) if edges is None else np.flatnonzero(edges).tolist()
            if len(todo):
                cleaned = uniq.copy()
                cleaned[todo] = [uniq[j].strip() for j in todo]
        if not (cleaned == "").any() and (cleaned is uniq or (cleaned == uniq).all()):
            codes = codes.astype(np.int64, copy=False)
            if key is not None and len(shared) < 8:
                shared[key] = (codes if block is None else first.astype(np.int64, copy=False), uniq)
            return codes, uniq
        return _merge_cleaned(codes, cleaned, uniq, name)
    _refuse_non_scalar_ids(uniq, name, None, codes)
    if raw.dtype == object:  # 7 == 7.0 == True to pandas: factorize on (type, value) instead
        typed = np.empty(len(raw), dtype=object)
        typed[:] = [(type(v), v) for v in raw]
        codes, _ = pd.factorize(typed)
        _, first_row = np.unique(codes, return_index=True)  # codes are in order of appearance
        uniq = np.asarray(raw, dtype=object)[first_row]
    cleaned = np.empty(len(uniq), dtype=object)
    for j, v in enumerate(uniq):
        if _is_missing(v):
            cleaned[j] = ""
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            cleaned[j] = str(int(v))
        else:
            cleaned[j] = str(v).strip() if strip else str(v)
    return _merge_cleaned(codes, cleaned, uniq, name)


#: Within :func:`shares_ids`: the id columns already coded, by (strip, name, digest of the
#: ids) -> (codes, cleaned distinct ids). ``None`` outside.
_SHARED_IDS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("cje_shared_ids",
                                                                          default=None)


def shares_ids(fn: Any) -> Any:
    """Decorate :func:`cje.analyze`: within a call given ``fresh_draws``, an Arrow string prompt
    id column whose ids are those of a column coded before in the call (the fresh draws' prompt
    ids are usually the logged data's, in the same order) takes that column's codes and distinct ids
    instead of being hashed and converted again (~0.1 s per 10⁶ ids). The ids are compared by a
    SHA-256 of their bytes and offsets (~8 ms per 10⁶ ids); the kept arrays are the first load's
    own (its ``EvalData`` holds them)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("fresh_draws") is None or _SHARED_IDS.get() is not None:
            return fn(*args, **kwargs)
        token = _SHARED_IDS.set({})
        try:
            return fn(*args, **kwargs)
        finally:
            _SHARED_IDS.reset(token)

    return wrapper


def _ids_key(head: Any, strip: bool, name: str) -> tuple[bool, str, bytes] | None:
    """The key of an id column in :data:`_SHARED_IDS`: Arrow strings in one chunk without nulls
    (their bytes and relative offsets hashed), else ``None``."""
    data = _arrow_strings(head)
    if data is None:
        return None
    off, buf = _arrow_offsets(data)
    h = hashlib.sha256()
    # the count first: with it the offsets' bytes and the characters' cannot trade places
    h.update(np.array([len(data)], dtype=np.int64).tobytes())
    h.update(off if off.dtype == np.int64 and (not off.size or off[0] == 0)
             else np.ascontiguousarray(off - off[0], dtype=np.int64))
    if off.size and buf is not None:
        h.update(memoryview(buf)[int(off[0]):int(off[-1])])
    return strip, name, h.digest()


def _arrow_offsets(arr: Any) -> tuple[np.ndarray, Any]:
    """An Arrow string array's offsets (``len(arr) + 1`` of them, int32 or int64 as stored) and
    its character buffer, read in place."""
    import pyarrow as pa

    _, offsets, buf = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    return np.frombuffer(offsets, dtype=width)[arr.offset: arr.offset + len(arr) + 1], buf


def _arrow_strings(column: Any) -> Any:
    """The column's Arrow string array when it is one chunk without nulls (an Arrow-backed
    pandas column), else ``None``."""
    data = getattr(column, "_pa_array", None)
    if data is None:
        return None
    import pyarrow as pa

    if isinstance(data, pa.ChunkedArray):
        if data.num_chunks != 1:
            return None
        data = data.chunk(0)
    if data.null_count or not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return None
    return data


#: At most this many copies are compared one by one (:func:`_repeated_block`).
_MAX_COPIES = 64


def _repeated_block(raw: Any) -> int | None:
    """For Arrow strings without nulls that repeat their first ``P`` values whole (at least
    twice, the last copy possibly cut short; at most :data:`_MAX_COPIES` copies), ``P``;
    ``None`` otherwise.

    The fresh draws of several policies on the same prompts often come as one block per policy,
    each listing the prompts in the same order: then ``pandas.factorize`` of the column is that
    of its first block, repeated (first appearances are all in the first block, and every later
    row holds the id of the row ``P`` above it). ``P`` is where the first id appears again; the
    copies are compared by Arrow (a few ms per 10⁶ ids, against ~0.05 s per 10⁶ ids for
    hashing them)."""
    data = _arrow_strings(raw)
    n = 0 if data is None else len(data)
    if data is None or n < 2:
        return None
    import pyarrow.compute as pc

    period = pc.index(data, data[0], start=1).as_py()
    if period is None or period <= 0 or n > _MAX_COPIES * period:
        return None  # (many short copies, e.g. a column of one policy name: hashed as usual)
    head = data.slice(0, period)
    for at in range(period, n, period):
        m = min(period, n - at)
        if not data.slice(at, m).equals(head.slice(0, m)):
            return None
    return period


#: Every character ``str.strip()`` removes (``str.isspace``; a test checks the list against the
#: running Python's Unicode database), as a regular-expression class.
_PY_SPACE = "".join(f"\\x{{{c:x}}}" for c in (
    0x9, 0xA, 0xB, 0xC, 0xD, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000))


#: Bytes that may begin or end a UTF-8 string with a character ``str.strip()`` removes: the ASCII
#: ones of :data:`_PY_SPACE` and every non-ASCII byte (a lead or continuation byte of one of the
#: others, or of any other character: those strings go to the exact test).
_EDGE_BYTE = np.zeros(256, dtype=bool)
_EDGE_BYTE[[0x9, 0xA, 0xB, 0xC, 0xD, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
_EDGE_BYTE[0x80:] = True


def _space_at_edges(uniq: Any) -> np.ndarray | None:
    """For distinct ids held as Arrow strings: whether each starts or ends with a character
    ``str.strip()`` removes; ``None`` for other arrays.

    The first and last byte of every string are read from the Arrow buffers: a string whose two
    edge bytes are ASCII and not white space has no white space at its edges. The others (edge
    bytes that are white space or not ASCII: rare in ids) go through Arrow's regex engine, the
    exact test. (The regex over every id took ~0.04 s per 10^6 distinct ids.)"""
    data = getattr(uniq, "_pa_array", None)
    if data is None:
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(data.type) or pa.types.is_large_string(data.type)):
        return None
    chunks = data.chunks if isinstance(data, pa.ChunkedArray) else [data]
    out = [np.zeros(0, dtype=bool)]
    for arr in chunks:
        n = len(arr)
        cand = np.zeros(n, dtype=bool)
        off, buf = _arrow_offsets(arr) if n else (None, None)
        if n and buf is not None and buf.size:
            body = np.frombuffer(buf, dtype=np.uint8)
            full = np.flatnonzero(off[1:] > off[:-1])  # non-empty strings (or nulls, tested below)
            cand[full] = _EDGE_BYTE[body[off[full]]] | _EDGE_BYTE[body[off[full + 1] - 1]]
        hit = np.zeros(n, dtype=bool)
        at = np.flatnonzero(cand)
        if at.size:
            exact = pc.match_substring_regex(arr.take(pa.array(at)), f"^[{_PY_SPACE}]|[{_PY_SPACE}]$")
            hit[at] = np.asarray(exact.fill_null(False), dtype=bool)
        out.append(hit)
    return np.concatenate(out)


#: Up to this many ids, an object column of str is factorized in Python (as ``pandas.factorize``
#: would: codes in order of first appearance): importing pandas costs more than the loop.
_SMALL_IDS = 50_000


def _factorize_small_str(raw: Any, kinds: tuple[type, ...] = (str,)) -> tuple[np.ndarray, np.ndarray] | None:
    """``pandas.factorize`` of a small object array whose values are all of one of ``kinds``
    (exactly, not a subclass), else ``None``."""
    if not isinstance(raw, np.ndarray) or raw.dtype != object or raw.shape[0] > _SMALL_IDS:
        return None
    values = raw.tolist()
    if not values or not any(all(type(v) is k for v in values) for k in kinds):
        return None
    return _factorize_list(values)


def factorize_ids(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pandas.factorize(values)``: codes in order of first appearance and the distinct values.

    Up to :data:`_SMALL_IDS` ids that are all ``str`` or all ``int`` are factorized in Python (no
    pandas import: the start-up of a small analysis); anything else by pandas.

    Parameters
    ----------
    values : numpy.ndarray
        Ids (an object array of str, typically).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Codes per value and the distinct values.

    Examples
    --------
    >>> codes, uniq = factorize_ids(np.array(["b", "a", "b"], dtype=object))
    >>> codes.tolist(), uniq.tolist()
    ([0, 1, 0], ['b', 'a'])
    """
    plain = _factorize_small_str(values, (str, int))
    if plain is not None:
        return plain
    import pandas as pd

    return pd.factorize(values)


def _factorize_list(values: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Codes in order of first appearance and the distinct values (object array), in Python."""
    index: dict[Any, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64,
                        count=len(values))
    uniq = np.empty(len(index), dtype=object)
    uniq[:] = list(index)
    return codes, uniq


def _refuse_non_scalar_ids(values: np.ndarray, name: str, rows: Any, codes: Any = None) -> None:
    """Raise on the first list, dict, tuple, set or array among id values (naming its row)."""
    for j, v in enumerate(values):
        if isinstance(v, (list, dict, tuple, set, np.ndarray)):
            i = j if codes is None else int(np.flatnonzero(codes == j)[0])
            kind = type(v).__name__
            raise _at_rows(CJEInputError(
                f"The {name!r} column must hold one string or number per row; row {i} has a "
                f"{kind} ({_show(v)[:60]}). Give each row a single id."
            ), i)


def _merge_cleaned(
    codes: np.ndarray, cleaned: np.ndarray, uniq: np.ndarray, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """Re-code rows after cleaning their distinct ids ('' → -1); ids equal after cleaning are
    refused (both rows named)."""
    import pandas as pd

    dup = pd.Series(cleaned).duplicated(keep=False).to_numpy() & (cleaned != "")
    if dup.any():
        j1 = int(np.flatnonzero(dup)[0])
        j2 = int(np.flatnonzero(dup & (cleaned == cleaned[j1]))[1])
        r1, r2 = (int(np.flatnonzero(codes == j)[0]) for j in (j1, j2))
        r1, r2, j1, j2 = (r1, r2, j1, j2) if r1 < r2 else (r2, r1, j2, j1)
        raise _at_rows(CJEInputError(
            f"The {name!r} column has two different values that read as the same id "
            f"{cleaned[j1]!r}: row {r1} has {_show(uniq[j1])} ({type(uniq[j1]).__name__}) and row "
            f"{r2} has {_show(uniq[j2])} ({type(uniq[j2]).__name__}). Ids are compared as text: "
            "write each id the same way on every row (e.g. all as strings, without surrounding "
            "spaces)."
        ), r1, r2)
    code2, uniq2 = pd.factorize(cleaned)
    uniq2 = np.asarray(uniq2, dtype=object)
    empty = np.flatnonzero(uniq2 == "")
    remap = code2.astype(np.int64)
    if empty.size:
        remap[remap == empty[0]] = -1
        remap[remap > empty[0]] -= 1
        uniq2 = np.delete(uniq2, empty[0])
    out = np.where(codes >= 0, remap[np.maximum(codes, 0)] if remap.size else -1, -1)
    return out.astype(np.int64), uniq2


class _RowIds:
    """The id of each row, looked up one row at a time from codes and distinct ids (``-1``
    reads as ``""``): what the validators need to name a row in a message, without a per-row
    array of ids (80 MB of references at 10^7 rows, and the time to fill and free it).

    Indexing with an integer gives the row's id; with an array of rows (or a mask), the ids of
    those rows as another ``_RowIds``. ``rows`` holds each row's number in the input when rows
    were excluded (``on_invalid="drop"``), so that messages name the row the user wrote.

    Examples
    --------
    >>> ids = _RowIds(np.array([1, -1, 0]), np.array(["a", "b"], dtype=object))
    >>> ids[0], ids[1], ids[np.array([2, 0])][1], len(ids)
    ('b', '', 'b', 3)
    >>> _RowIds(np.array([0, 0]), np.array(["a"], dtype=object), rows=np.array([0, 5])).row(1)
    5
    """

    __slots__ = ("codes", "uniq", "rows")

    def __init__(self, codes: np.ndarray, uniq: np.ndarray, rows: np.ndarray | None = None) -> None:
        self.codes, self.uniq, self.rows = codes, uniq, rows

    def row(self, i: int) -> int:
        """The input row number of row ``i`` (``i`` itself unless rows were excluded)."""
        return int(i) if self.rows is None else int(self.rows[i])

    def __len__(self) -> int:
        return int(self.codes.shape[0])

    def __getitem__(self, i: Any) -> Any:
        c = self.codes[i]
        if np.ndim(c):
            return _RowIds(c, self.uniq, None if self.rows is None else self.rows[i])
        return self.uniq[c] if c >= 0 else ""


#: Ids of the rows as the validators take them: an array, or a :class:`_RowIds` lookup.
_Ids = np.ndarray | _RowIds


def _at_rows(exc: CJEInputError, *rows: int) -> CJEInputError:
    """``exc`` marked with the input rows it names (``exc.rows``), so that :func:`load` can add
    their lines in the file."""
    exc.rows = tuple(int(r) for r in rows)  # type: ignore[attr-defined]
    return exc


def _input_row(i: int, pid: _Ids | None) -> int:
    """The input row number of row ``i``: rows excluded by ``on_invalid="drop"`` still count."""
    return pid.row(i) if isinstance(pid, _RowIds) else int(i)


def _row_ref(i: int, pid: _Ids | None) -> str:
    """``row 17 (prompt_id='p9')``, or ``row 17`` without ids; the row as numbered in the input."""
    if pid is not None:
        return f"row {_input_row(i, pid)} (prompt_id={_show(pid[i])})"
    return f"row {i}"


def decimal_float64(arr: np.ndarray) -> np.ndarray:
    """A numeric array as float64, a narrower float (float32, float16) through the shortest
    decimal that reads back as it (``float32(0.35)`` → 0.35, not 0.3499999940395355).

    A score stored as float32 in one input (a Parquet file) and written as ``0.35`` in another
    (a CSV file, the calibration rows) is then one value, as the user meant: widened bit for bit
    they were two values, which split the isotonic calibration's tie at 0.35 and moved the
    estimates by up to 0.2 standard errors (``tests/test_invariance.py``). The map is strictly
    increasing on the narrow floats, so the order and the ties within one input are kept.

    Parameters
    ----------
    arr : numpy.ndarray
        Numbers (float, integer or boolean).

    Returns
    -------
    numpy.ndarray of float64

    Examples
    --------
    >>> decimal_float64(np.array([0.35, 0.1, np.nan], dtype=np.float32)).tolist()
    [0.35, 0.1, nan]
    >>> float(np.array([0.35], dtype=np.float32).astype(np.float64)[0])   # widened bit for bit
    0.3499999940395355
    """
    if arr.dtype.kind == "f" and arr.dtype.itemsize < 8:
        uniq, inv = np.unique(arr, return_inverse=True)  # few distinct scores: convert those
        return np.ascontiguousarray(uniq.astype(str).astype(np.float64)[inv.reshape(-1)])
    return np.ascontiguousarray(arr, dtype=np.float64)


def _to_float(arr: np.ndarray, name: str, pid: _Ids | None, markers: bool = False) -> np.ndarray:
    """Convert a column to float64 (:func:`decimal_float64`); None becomes NaN; a non-numeric
    value is an error (with ``markers``, a missing-value word such as ``'NA'`` or an empty text
    becomes NaN)."""
    if arr.dtype.kind in "fiub":
        return decimal_float64(arr)
    out = np.empty(arr.shape[0], dtype=np.float64)
    for i, v in enumerate(arr):
        if _is_missing(v) or (
            name == "oracle_label" and isinstance(v, str) and v.strip().lower() in ("nan", "")
        ) or (markers and isinstance(v, str) and v.strip().lower() in _MISSING_WORDS | {""}):
            out[i] = np.nan
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            fix = ("Convert it to a number, or leave it empty if the row is not labelled."
                   if name == "oracle_label" else "Convert it to a number.")
            raise _at_rows(CJEInputError(
                f"The {name!r} column must be numeric; {_row_ref(i, pid)} has {_show(v)}. "
                f"{_number_hint(v, name) or fix}"
            ), _input_row(i, pid)) from None
    return out


_MISSING_WORDS = frozenset(("na", "n/a", "null", "none", "-", "--", "?", "missing", "nil", "#n/a"))
_YES_NO = {"yes": 1, "no": 0, "y": 1, "n": 0, "true": 1, "false": 0, "pass": 1, "fail": 0,
           "correct": 1, "incorrect": 0}


def _number_hint(v: Any, name: str) -> str:
    """The fix for a text value that is not a number, when its form tells what was meant: a
    decimal comma or thousands separator, a percent sign, a yes/no word, a missing-value marker.

    Examples
    --------
    >>> _number_hint("7,5", "judge_score")[:40]
    'It has a comma: write numbers with a poi'
    >>> _number_hint("abc", "judge_score")
    ''
    """
    if not isinstance(v, str):
        return ""
    t = v.strip()
    if t == name:
        return ("The row repeats the header line (files joined with their headers?): remove it.")
    if re.fullmatch(r"[+-]?[0-9]*,[0-9][0-9,]*(\.[0-9]*)?", t):
        return ("It has a comma: write numbers with a point as the decimal separator (7.5, not "
                "7,5) and without thousands separators (1000, not 1,000), e.g. re-export the file "
                "with a point as its decimal separator.")
    if re.fullmatch(r"[+-]?[0-9.]+\s*%", t):
        return (f"Write a percentage as a number ({t.rstrip('% ')}, and declare the scale, e.g. "
                "(0, 100)), without the '%'.")
    if t.lower() in _YES_NO:
        return (f"Write it as a number ({t!r} as {_YES_NO[t.lower()]}, its opposite as "
                f"{1 - _YES_NO[t.lower()]}).")
    if t.lower() in _MISSING_WORDS:
        if name == "oracle_label":
            return "If it marks a row without a label, leave the value empty (null/NaN)."
        if name == "judge_score":
            return ("If it marks a missing score, pass on_invalid='drop' to exclude such rows "
                    "(they are counted in the report), or fill in the score.")
        return "If it marks a missing value, leave it empty (null/NaN)."
    return ""


def infer_scale(values: np.ndarray) -> tuple[float, float]:
    """The narrowest common scale containing ``values``, else their observed range.

    Parameters
    ----------
    values : numpy.ndarray
        Finite judge scores or labels.

    Returns
    -------
    (low, high)
        One of :data:`COMMON_SCALES`, else ``(min, max)`` (``(v, v + 1)`` when every value is
        ``v``).

    Examples
    --------
    >>> infer_scale(np.array([0.2, 0.85, 1.0]))
    (0.0, 1.0)
    >>> infer_scale(np.array([1, 3, 5]))
    (1.0, 5.0)
    >>> infer_scale(np.array([-3.0, 12.5]))
    (-3.0, 12.5)
    """
    lo, hi = float(np.min(values)), float(np.max(values))
    fits = [(b - a, i) for i, (a, b) in enumerate(COMMON_SCALES) if a <= lo and hi <= b]
    if fits:
        return COMMON_SCALES[min(fits)[1]]
    if hi == lo:
        return (lo, lo + 1.0)
    return (lo, hi)


def _check_scale(scale: Any, name: str) -> tuple[float, float]:
    try:
        lo, hi = (float(scale[0]), float(scale[1]))
        if len(scale) != 2:
            raise ValueError
    except (TypeError, ValueError, IndexError):
        raise CJEInputError(
            f"{name} must be a pair (low, high), e.g. {name}=(0, 10); got {scale!r}."
        ) from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise CJEInputError(f"{name} must satisfy low < high (both finite); got {scale!r}.")
    if not hi - lo <= MAX_SCALE_WIDTH or max(abs(lo), abs(hi)) > MAX_SCALE_WIDTH:
        raise CJEInputError(
            f"{name} must have a width (high - low) and bounds of at most {MAX_SCALE_WIDTH:g}, so "
            f"that variances on it stay finite; got {scale!r}. Rescale the values (e.g. to (0, 1))."
        )
    return (lo, hi)


def _check_inferred_width(scale: tuple[float, float], values: np.ndarray, field: str,
                          arg: str, pid: _Ids) -> None:
    """An inferred scale must be as usable as a declared one (finite width, finite variances)."""
    lo, hi = scale
    if hi - lo <= MAX_SCALE_WIDTH and max(abs(lo), abs(hi)) <= MAX_SCALE_WIDTH and lo < hi:
        return
    i = int(np.nanargmax(np.abs(values)))
    raise _at_rows(CJEInputError(
        f"The {field!r} column spans {np.nanmin(values):g} to {np.nanmax(values):g}, wider than the "
        f"largest usable scale ({MAX_SCALE_WIDTH:g}); {_row_ref(i, pid)} has {values[i]:g}. A value "
        f"like this is usually a sentinel for a missing value: leave such rows empty (null/NaN), "
        f"or rescale the values and pass {arg}=(low, high)."
    ), _input_row(i, pid))


def first_bad(
    bad: np.ndarray,
    rule: str,
    values: Any,
    pid: _Ids | None,
    fix: str = "",
    *,
    count: bool = False,
    fmt: str = "",
) -> None:
    """Raise a :class:`CJEInputError` naming the first row where ``bad`` holds, if there is one.

    The one home of the "first offending row" message: ``"{rule}; row {i} (prompt_id={id!r})
    has {value} ({n} such rows). {fix}"``. Rows are 0-based, in input order.

    Parameters
    ----------
    bad : numpy.ndarray of bool
        The offending rows.
    rule : str
        What the column must be, e.g. ``"The 'judge_score' column must be finite"``.
    values : array-like, str or callable
        The column: ``has {value}`` shows its value in the first bad row, as written; or a fixed
        text (``"none"`` gives ``has none``); or ``values(i) -> str``, the whole clause after the
        row (e.g. ``"is missing"``).
    pid : numpy.ndarray, optional
        Prompt id per row, to name the row by its prompt; ``None`` names the row number only.
    fix : str
        The sentence saying how to fix it (none when empty).
    count : bool
        Say how many rows are affected.
    fmt : str
        Format spec for the value (e.g. ``"g"``); by default its ``repr``.

    Raises
    ------
    CJEInputError
        When any row is bad.

    Examples
    --------
    >>> s, pid = np.array([0.5, np.nan, np.inf]), np.array(["a", "b", "c"], dtype=object)
    >>> try:
    ...     first_bad(~np.isfinite(s), "The 'judge_score' column must be finite", s, pid,
    ...               "Fix the value.", count=True)
    ... except CJEInputError as exc:
    ...     print(exc)
    The 'judge_score' column must be finite; row 1 (prompt_id='b') has nan (2 such rows). Fix the value.
    """
    if not bad.any():
        return
    i = int(np.argmax(bad))
    if callable(values):
        clause = values(i)
    elif isinstance(values, str):
        clause = f"has {values}"
    else:
        clause = f"has {format(values[i], fmt) if fmt else _show(values[i])}"
    many = f" ({int(np.count_nonzero(bad))} such rows)" if count else ""
    raise _at_rows(CJEInputError(f"{rule}; {_row_ref(i, pid)} {clause}{many}.{' ' + fix if fix else ''}"),
                   _input_row(i, pid))


def _build(
    cols: dict[str, Any],
    *,
    judge_scale: tuple[float, float] | None,
    label_scale: tuple[float, float] | None,
    columns: Mapping[str, str] | None,
    covariates: Sequence[str],
    on_invalid: OnInvalid,
    policy: str | None,
) -> EvalData:
    """Validate the columns, one validator per column, and build the :class:`EvalData`.

    The order of the checks is the order of the messages a user with several problems sees.
    """
    if on_invalid not in ("raise", "drop"):
        raise CJEInputError(f"on_invalid must be 'raise' or 'drop'; got {on_invalid!r}.")
    _rename(cols, columns)
    refuse_near_miss(list(cols))
    n = _n_rows(cols)
    notices: list[str] = []
    pid_code, pid_uniq, pid = _prompt_ids(cols)
    s = _judge_scores(cols, pid, on_invalid)
    pol_code, pol_uniq, pol = _policy_column(cols, n, pid, policy, notices)
    _release_arrow_memory()  # (after the ids are factorised)
    excluded, keep = _invalid_rows(cols["prompt_id"], pid_code < 0, s, pid, on_invalid)
    by_policy = _dropped_by_policy(pol_code, pol_uniq, keep)
    if keep is not None:
        cols = {k: np.asarray(v)[keep] for k, v in cols.items()}
        s, pid_code, pol_code = (a[keep] for a in (s, pid_code, pol_code))
        pid, pol = _RowIds(pid_code, pid_uniq, keep), _RowIds(pol_code, pol_uniq, keep)
    y = _oracle_labels(cols, s.size, pid)
    lab = ~np.isnan(y)
    jscale = _judge_scale(s, judge_scale, pid, notices)
    lscale = _label_scale(y, lab, label_scale, jscale, pid, notices)
    scale_mix(s, pol_code, pol_uniq, jscale, "judge scores", "judge_scale", notices)
    if lab.any():
        scale_mix(y[lab], pol_code[lab], pol_uniq, lscale, "oracle labels", "label_scale", notices)
    prompt_code, prompts, pol_names, policy_code = _codes(pid_code, pid_uniq, pol_code, pol_uniq)
    # the rows' ids for messages, from the final codes: the input's codes go (80 MB each at
    # 10^7 rows, before the load's last per-row temporaries)
    pid = _RowIds(prompt_code, prompts, keep)
    pol = _RowIds(policy_code, np.array(pol_names, dtype=object), keep)
    del pid_code, pid_uniq, pol_code, pol_uniq
    key_pp = prompt_code * len(pol_names)  # the (prompt, policy) pair of each row
    key_pp += policy_code
    one_response = _one_response_rows(key_pp, s, lab, pid, pol)  # (before _draw_idx reuses key_pp)
    draw = _draw_idx(cols, pid, pol, key_pp, notices)
    del key_pp
    if one_response:
        notices.append(one_response)
    cov = _covariates(cols, covariates, pid, notices)
    lps = _logprobs(cols, pid)
    for name, lp in lps.items():
        given = lp[~np.isnan(lp)]
        if given.size >= 20 and np.all(given == given[0]):
            col = "logprob_base" if name == "base" else f"logprob[{name}]"
            notices.append(constant_logprob_notice(col, float(given[0])))
    pi_all = _validated_probabilities(cols, lab, pid, policy_code)
    reach = {} if pi_all is None else label_reach(pi_all, lab, policy_code, pol_names)
    pi = _non_uniform(pi_all, lab)
    if pi is not None and lps:
        raise CJEInputError(
            "A non-uniform 'label_probability' column is supported for fresh draws of each policy "
            "(direct mode) only; this data is logged (it has log-probabilities), whose off-policy "
            "estimators do not weight their residual terms by it yet. Analyse without the column "
            "only if the labels are a uniform random sample of the logged rows.")
    return EvalData(
        prompt_code=_read_only(prompt_code),
        prompts=_read_only(prompts),
        policy_code=_read_only(policy_code),
        policies=pol_names,
        draw_idx=_read_only(draw),
        judge_score=_read_only(s),
        oracle_label=_read_only(y),
        covariates={k: _read_only(v) for k, v in cov.items()},
        logprobs={k: _read_only(v) for k, v in lps.items()},
        judge_scale=jscale,
        label_scale=lscale,
        notices=tuple(notices),
        excluded=excluded,
        excluded_by_policy=by_policy,
        label_probability=None if pi is None else _read_only(pi),
        label_reach=reach,
    )


_PI_FIX = ("label_probability is the probability (in (0, 1]) with which the row was sent for an "
           "oracle label")


def label_probabilities(cols: dict[str, Any], lab: np.ndarray, pid: _Ids,
                        policy_code: np.ndarray | None = None) -> np.ndarray | None:
    """The ``label_probability`` column, validated; ``None`` when absent or uniform.

    Rules (each refusal names the first offending row and the fix): every value lies in
    [0, 1] or is empty (NaN) on an unlabelled row; a labelled row has a value in (0, 1]; no
    unlabelled row of a policy with labelled rows has probability 0 (it could never have been
    labelled: the design does not overlap it, and no weighting of the policy's labelled rows
    can stand for it — a policy with no labelled rows at all may have 0 everywhere, it is
    analysed as without labels); with a ``label_stratum`` column, every row of a
    stratum has the same probability (the design's unit). When every labelled row has the same
    value the design is uniform: the analysis is the one without the column, bit for bit (the
    estimator only uses ratios of the labelled rows' probabilities), and ``None`` is returned.

    Parameters
    ----------
    cols : dict
        The input's columns (renamed).
    lab : numpy.ndarray of bool
        Labelled rows.
    pid : numpy.ndarray
        Prompt id per row (for the messages).
    policy_code : numpy.ndarray of int, optional
        Policy of each row (default: one policy).

    Returns
    -------
    numpy.ndarray or None

    Examples
    --------
    >>> lab = np.array([True, True, False])
    >>> pid = np.array(["a", "b", "c"], dtype=object)
    >>> label_probabilities({"label_probability": [0.5, 0.25, 0.25]}, lab, pid).tolist()
    [0.5, 0.25, 0.25]
    >>> label_probabilities({"label_probability": [0.5, 0.5, 0.1]}, lab, pid) is None
    True
    >>> label_probabilities({"label_probability": [0.5, 1.5, 0.1]}, lab, pid)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The 'label_probability' column must lie in (0, 1]; row 1 (prompt_id='b') ...
    """
    return _non_uniform(_validated_probabilities(cols, lab, pid, policy_code), lab)


def _non_uniform(pi: np.ndarray | None, lab: np.ndarray) -> np.ndarray | None:
    """``pi``, or ``None`` when absent or the same on every labelled row (a uniform design)."""
    if pi is None or not lab.any() or np.all(pi[lab] == pi[lab][0]):
        return None
    return pi


def _validated_probabilities(cols: dict[str, Any], lab: np.ndarray, pid: _Ids,
                             policy_code: np.ndarray | None = None) -> np.ndarray | None:
    """The ``label_probability`` column checked by the rules of :func:`label_probabilities`
    (same arguments), whether or not the design is uniform; ``None`` when absent."""
    if "label_probability" not in cols:
        return None
    pi = _to_float(np.asarray(cols["label_probability"]), "label_probability", pid)
    fix = f"{_PI_FIX}; fix the value (a row that could not be labelled is not part of the design)."
    with np.errstate(invalid="ignore"):
        first_bad(np.isinf(pi) | (pi < 0) | (pi > 1) | ((pi == 0) & lab),
                  "The 'label_probability' column must lie in (0, 1]", pi, pid, fix, count=True,
                  fmt="g")
        zero = pi == 0
        if zero.any():  # allowed only on policies without labelled rows
            pc = np.zeros(pi.shape[0], np.int64) if policy_code is None else policy_code
            has_lab = np.zeros(int(pc.max(initial=0)) + 2, dtype=bool)
            has_lab[pc[lab]] = True
            zero &= has_lab[pc]
        first_bad(np.isnan(pi) & lab, "The 'label_probability' column must be given on every "
                  "labelled row", "none", pid, f"{_PI_FIX}: give it for every labelled row "
                  "(unlabelled rows may leave it empty).", count=True)
        first_bad(zero, "No overlap of the labelling design: a row with label_probability 0 "
                  "could never have been labelled, so no labelled row of its policy can stand for "
                  "it", pi, pid,
                  "Give its true (positive) probability, or analyse the rows that could not be "
                  "labelled separately (drop them from this analysis).", count=True, fmt="g")
    if "label_stratum" in cols:
        _check_strata(np.asarray(cols["label_stratum"]), pi, pid)
    return pi


def label_reach(pi: np.ndarray, lab: np.ndarray, policy_code: np.ndarray,
                policies: Sequence[str]) -> dict[str, tuple[float, float]]:
    """Per policy, how much of its rows its labelled rows' design weights stand for.

    Under the design each row is labelled with probability ``π_i``, so ``T = Σ_lab 1/π_i`` has
    expectation ``n_p`` (the policy's rows) and an unbiased variance estimate
    ``Σ_lab (1 − π_i)/π_i²``. ``T`` far below ``n_p`` means part of the design drew no label —
    a stratum of small ``π`` that happens to be unlabelled (e.g. 240 rows at ``π = 0.005``
    expect 1.2 labels and get none 30% of the time) — and then no weighting of the labelled
    rows can stand for it: the residual correction misses it
    (``simulations/results/independent_lprob.md``). When ``π`` is given on every row of the
    policy it is first rescaled so that the labels drawn are the labels expected
    (``c = m / Σ π``): only the ratios of ``π`` matter to the estimator, and a constant ``π``
    then gives ``T = n_p`` exactly. With ``π`` on the labelled rows only it is read as the
    absolute probability.

    Parameters
    ----------
    pi : numpy.ndarray
        The validated ``label_probability`` column (NaN allowed on unlabelled rows).
    lab : numpy.ndarray of bool
        Labelled rows.
    policy_code : numpy.ndarray of int
        Policy of each row.
    policies : sequence of str
        Policy names by code.

    Returns
    -------
    dict
        Policy → ``(T / n_p, z)`` with ``z = (T − n_p) / sqrt(Σ_lab (1 − π_i)/π_i²)`` (0 when
        the variance estimate is 0 and ``T = n_p``), for policies with labelled rows.

    Examples
    --------
    >>> pi = np.r_[np.full(60, 0.3), np.full(240, 0.005)]   # 18 labels expected, then 1.2
    >>> lab = np.arange(300) < 18                           # 18 labels, none at π = 0.005
    >>> reach, z = label_reach(pi, lab, np.zeros(300, dtype=np.int64), ["p"])["p"]
    >>> round(reach, 3), round(z, 1)
    (0.213, -18.5)
    >>> label_reach(np.full(300, 0.37), lab, np.zeros(300, dtype=np.int64), ["p"])["p"][0]
    1.0000000000000004
    """
    out: dict[str, tuple[float, float]] = {}
    for code, name in enumerate(policies):
        rows = policy_code == code
        m = int(np.count_nonzero(lab & rows))
        if m == 0:
            continue
        p_all = pi[rows]
        p_lab = pi[lab & rows]
        scale = m / float(p_all.sum()) if not np.isnan(p_all).any() else 1.0
        q = np.minimum(scale * p_lab, 1.0)
        n = int(np.count_nonzero(rows))
        total = float((1.0 / q).sum())
        var = float(((1.0 - q) / q**2).sum())
        gap = total - n
        if var > 0:
            z = gap / math.sqrt(var)
        else:  # every labelled row certain (π = 1): T is the count, exact
            z = 0.0 if abs(gap) <= 1e-9 * n else math.copysign(math.inf, gap)
        out[name] = (total / n, z)
    return out


def _check_strata(stratum: np.ndarray, pi: np.ndarray, pid: _Ids) -> None:
    """Every row of one ``label_stratum`` shares its (given) label probability."""
    code, _ = _clean_ids(stratum, strip=False, name="label_stratum")
    given = ~np.isnan(pi)
    k = np.flatnonzero(given & (code >= 0))
    if not k.size:
        return
    first = {}
    bad = np.zeros(pi.shape[0], dtype=bool)
    ref = np.zeros(pi.shape[0], dtype=np.int64)
    for i in k.tolist():
        j = first.setdefault(int(code[i]), i)
        if pi[i] != pi[j]:
            bad[i] = True
            ref[i] = j
    first_bad(bad, "The 'label_probability' column must be the same on every row of a "
              "'label_stratum' (the design samples each stratum with one probability)",
              lambda i: (f"has {pi[i]:g} but row {_input_row(int(ref[i]), pid)} of the same stratum "
                         f"{_show(stratum[i])} has {pi[int(ref[i])]:g}"),
              pid, "Give the stratum's one probability to all its rows, or split the stratum.",
              count=True)


def _release_arrow_memory() -> None:
    """Give the pages Arrow's memory pool keeps after freeing back to the system: factorising
    Arrow string ids leaves ~90 MB of them at 10^7 rows, held through the analysis otherwise."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view of ``a`` (contiguous; a copy only when it is not): the caller's own
    array, which a column may be, keeps its flags."""
    a = np.ascontiguousarray(a).view()
    a.flags.writeable = False
    return a


def _rename(cols: dict[str, Any], columns: Mapping[str, str] | None) -> None:
    """Apply the user's ``columns`` map (standard name -> their name), in place."""
    for std, theirs in (columns or {}).items():
        if theirs not in cols:
            raise CJEInputError(
                f"columns maps {std!r} to {theirs!r}, but the input has no column {theirs!r}; "
                f"its columns are {sorted(cols)}."
            )
        cols[std] = cols.pop(theirs)


#: What ignoring a standard column would do, for the message refusing a near miss of its name.
_IGNORED = {
    "prompt_id": "the input would have no prompt ids",
    "policy": "every row would be taken as one policy",
    "judge_score": "the input would have no judge scores",
    "oracle_label": "every row would read as unlabelled",
    "draw_idx": "its draw numbers would be ignored",
    "label_probability": "the labelling design would be taken as uniform",
    "label_stratum": "its strata would be ignored",
}


def _standard_name(name: str) -> str:
    """A column name as compared with the standard names when looking for a near miss: lower
    case, without byte-order marks or zero-width spaces (a UTF-8 file read as another encoding,
    or a copy from a web page), no surrounding white space, inner white space and hyphens as
    ``_``."""
    for invisible in ("\ufeff", "\u200b", "ï»¿"):
        name = name.replace(invisible, "")
    return "_".join(name.strip().lower().replace("-", " ").split())


def refuse_near_miss(names: Sequence[str]) -> None:
    """Refuse a column named like a standard column but for case, surrounding white space or
    ``' '``/``'-'`` for ``'_'`` (``'Policy'``, ``'oracle_label '``, ``'Judge Score'``) when the
    standard column itself is absent: names are matched exactly, so the column would be ignored
    without a word (every row unlabelled, all policies pooled into one, ...).

    Parameters
    ----------
    names : sequence of str
        The input's column names (after the user's ``columns`` map).

    Raises
    ------
    CJEInputError
        Naming the column, the standard name and the two fixes (rename, or ``columns=``).

    Examples
    --------
    >>> refuse_near_miss(["prompt_id", "judge_score", "Policy_Name"])  # not a near miss
    >>> refuse_near_miss(["prompt_id", "judge_score", "Oracle_Label"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The input has a column 'Oracle_Label' but no 'oracle_label': ...
    """
    present = set(names)
    for name in names:
        std = _standard_name(str(name))
        if std in _IGNORED and std not in present and name != std:
            raise CJEInputError(
                f"The input has a column {name!r} but no {std!r}: column names are matched "
                f"exactly, so {_IGNORED[std]}. Rename it to {std!r}, or map it with "
                f"columns={{{std!r}: {name!r}}} (CLI: --column {shlex.quote(f'{std}={name}')})."
                + (" (A byte-order mark starts the name: read the file with encoding='utf-8-sig'.)"
                   if "\ufeff" in name or "ï»¿" in name else "")
            )


def _n_rows(cols: dict[str, Any]) -> int:
    """The number of rows; there must be some, with the required columns."""
    n = len(next(iter(cols.values()))) if cols else 0
    if n == 0:
        raise CJEInputError("The input has no rows.")
    for req in ("prompt_id", "judge_score"):
        if req not in cols:
            hint = " (the prompt each response answers; the cluster unit)" if req == "prompt_id" else ""
            raise CJEInputError(
                f"The input has no {req!r} column{hint}. Its columns are {sorted(cols)}; rename "
                f"yours with columns={{'{req}': 'your_name'}} (CLI: --column {req}=your_name)."
            )
    return n


def _prompt_ids(cols: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, _RowIds]:
    """Codes per row (-1 where empty), the distinct cleaned ids, and the id of each row for
    messages ("" where empty; refused or dropped by :func:`_invalid_rows`)."""
    pid_code, pid_uniq = _clean_ids(cols["prompt_id"])  # numpy array or pandas string array
    return pid_code, pid_uniq, _RowIds(pid_code, pid_uniq)


def _judge_scores(cols: dict[str, Any], pid: _Ids, on_invalid: OnInvalid = "raise") -> np.ndarray:
    """Judge scores as float64 (non-finite ones are refused or dropped by :func:`_invalid_rows`;
    with ``on_invalid="drop"`` a missing-value word such as ``'NA'`` is a missing score too)."""
    return _to_float(np.asarray(cols["judge_score"]), "judge_score", pid, markers=on_invalid == "drop")


def split_by_space(names: list[Any]) -> tuple[str, str] | None:
    """Two policy names that differ only by surrounding white space (``'A'`` and ``'A '``: one
    policy split in two, printed as two rows of the same name), else ``None``. Names are kept as
    written; such a pair is refused (in memory by :func:`_policy_column`, out of core by
    :func:`cje.pipeline.streaming.analyze_partitioned`).

    Parameters
    ----------
    names : list
        The distinct policy names.

    Returns
    -------
    (str, str) or None

    Examples
    --------
    >>> split_by_space(["A", "B", "A "]), split_by_space(["A", "a"])
    (('A', 'A '), None)
    """
    seen: dict[str, str] = {}
    for name in map(str, names):
        first = seen.setdefault(name.strip(), name)
        if first != name:
            return first, name
    return None


def _policy_column(cols: dict[str, Any], n: int, pid: _RowIds, policy: str | None,
                   notices: list[str]) -> tuple[np.ndarray, np.ndarray, _RowIds]:
    """Codes per row, distinct names and the name of each row (for messages); without a
    ``policy`` column every row is one policy (``policy``, else ``"default"`` with a notice)."""
    if "policy" in cols:
        pol_code, pol_uniq = _clean_ids(cols["policy"], strip=False, name="policy")
        if split_by_space(pol_uniq.tolist()) is not None:  # refused, naming both rows
            _merge_cleaned(pol_code, np.array([str(v).strip() for v in pol_uniq.tolist()],
                                              dtype=object), pol_uniq, "policy")
        first_bad(pol_code < 0, "The 'policy' column must name a policy on every row",
                  "an empty policy", pid, "Fill it in, or drop the row.")
        return pol_code, pol_uniq, _RowIds(pol_code, pol_uniq)
    name = policy if policy is not None else "default"
    if policy is None:
        notices.append("No 'policy' column: all rows were taken as one policy named 'default'.")
    pol_code, pol_uniq = np.zeros(n, dtype=np.int64), np.array([name], dtype=object)
    return pol_code, pol_uniq, _RowIds(pol_code, pol_uniq)


def _invalid_rows(raw_pid: Any, bad_pid: np.ndarray, s: np.ndarray, pid: _Ids,
                  on_invalid: OnInvalid) -> tuple[dict[str, int], np.ndarray | None]:
    """Rows with an empty prompt id or a non-finite judge score: refused (``"raise"``) or
    excluded and counted (``"drop"``). Returns the counts by reason and the rows kept (``None``:
    all of them)."""
    bad_s = ~np.isfinite(s)
    if not (bad_pid.any() or bad_s.any()):
        return {}, None
    if on_invalid == "raise":
        first_bad(bad_pid, "The 'prompt_id' column must be non-empty on every row", raw_pid, None,
                  f"Give each response the id of its prompt, {_OR_DROP}", count=True)
        first_bad(bad_s, "The 'judge_score' column must be finite", s, pid,
                  f"Fix the value, {_OR_DROP}", count=True)
    excluded: dict[str, int] = {}
    if bad_pid.any():
        excluded["empty prompt_id"] = int(bad_pid.sum())
    if (bad_s & ~bad_pid).any():
        excluded["non-finite judge_score"] = int((bad_s & ~bad_pid).sum())
    keep = ~(bad_pid | bad_s)
    if not keep.any():
        raise CJEInputError("The input has no valid rows left after on_invalid='drop'.")
    return excluded, np.flatnonzero(keep)


def _dropped_by_policy(pol_code: np.ndarray, pol_uniq: np.ndarray, keep: np.ndarray | None
                       ) -> dict[str, int]:
    """Rows dropped as invalid (``keep``: the rows kept; ``None``: none dropped), by policy
    name (rows without a policy name are not counted: they are refused)."""
    if keep is None:
        return {}
    dropped = np.ones(pol_code.size, dtype=bool)
    dropped[keep] = False
    codes = pol_code[dropped]
    codes = codes[codes >= 0]
    n = np.bincount(codes, minlength=len(pol_uniq))
    return {str(pol_uniq[i]): int(n[i]) for i in np.flatnonzero(n)}


def _oracle_labels(cols: dict[str, Any], n: int, pid: _Ids) -> np.ndarray:
    """Oracle labels as float64, NaN where unlabelled (all of them without the column)."""
    if "oracle_label" not in cols:
        return np.full(n, np.nan)
    y = _to_float(np.asarray(cols["oracle_label"]), "oracle_label", pid)
    first_bad(np.isinf(y), "The 'oracle_label' column must be finite or empty", y, pid,
              "Leave unlabelled rows empty (null/NaN).")
    return y


def _judge_scale(s: np.ndarray, judge_scale: tuple[float, float] | None, pid: _Ids,
                 notices: list[str]) -> tuple[float, float]:
    """The declared judge scale (every score inside it), else the inferred one, with a notice."""
    if judge_scale is not None:
        jscale = _check_scale(judge_scale, "judge_scale")
        first_bad((s < jscale[0]) | (s > jscale[1]),
                  f"The 'judge_score' column must lie within judge_scale={_fmt_scale(jscale)}", s, pid,
                  "Declare the scale the judge really uses, or fix the scores (values are never "
                  "clipped).", count=True, fmt="g")
        bottom_tenth(s.size, float(s.min()), float(s.max()), jscale, "judge scores",
                     "judge_scale", notices)
        return jscale
    refuse_sentinel(s, "judge_score", "judge_scale", pid)
    jscale = infer_scale(s)
    _check_inferred_width(jscale, s, "judge_score", "judge_scale", pid)
    notices.append(
        f"judge_scale was not given; inferred {_fmt_scale(jscale)} from the scores "
        f"(observed {s.min():g} to {s.max():g}). Pass judge_scale=(low, high) to set it."
    )
    return jscale


def constant_logprob_notice(column: str, value: float) -> str:
    """The notice for a log-probability column with one value on every row (20 or more rows).

    Parameters
    ----------
    column : str
        The column (``logprob_base`` or ``logprob[<target>]``).
    value : float
        Its one value.

    Returns
    -------
    str

    Examples
    --------
    >>> constant_logprob_notice("logprob_base", -3.0)[:40]
    "'logprob_base' is -3 on every row: right"
    """
    return (f"'{column}' is {value:g} on every row: right only if the policy gives every logged "
            "response the same probability (e.g. uniform over a fixed set of responses); a "
            "language model's sequence log-probability varies with the response — check that the "
            "column is not a placeholder.")


def refuse_sentinel(values: np.ndarray, field: str, option: str, pid: _Ids | None,
                    counts: np.ndarray | None = None) -> None:
    """Refuse a marker value read as data when no scale is declared: every value but those at
    the lowest (or highest) one lies on a common scale, and that one is a negative integer below
    it (``-1`` for "no label" or "judge failed") or 99, 999, ... above it. Read as a label or a
    score, such a marker silently moves every estimate (labels of -1 on the unlabelled rows
    turned values on (1, 5) into -0.6, status OK).

    Parameters
    ----------
    values : numpy.ndarray
        The column, NaN where there is no value (unlabelled rows); or, with ``counts``, its
        distinct values.
    field, option : str
        Column name and the scale option that declares a real value of that kind.
    pid : numpy.ndarray or None
        Prompt id per row, for the message (``None``: the message names no row, e.g. for the
        out-of-core engines, which hold distinct values or the labelled rows only).
    counts : numpy.ndarray, optional
        Rows holding each of ``values`` (distinct values; zeros when not known: the message
        then gives no count).

    Raises
    ------
    CJEInputError
        Naming the value, its rows, the scale the other values fit and the two fixes.

    Examples
    --------
    >>> refuse_sentinel(np.array([1.0, 3.0, 5.0, np.nan]), "oracle_label", "label_scale", None)
    >>> refuse_sentinel(np.array([-1.0, 3.0, 5.0, -1.0]), "oracle_label", "label_scale", None)
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The 'oracle_label' column holds -1 on 2 rows while every other value...
    """
    given = ~np.isnan(values)
    seen = values[given]
    if seen.size < (2 if counts is not None else 3):
        return
    low, high = float(seen.min()), float(seen.max())
    for v, side in ((low, "low"), (high, "high")):
        if not v.is_integer() or abs(v) > MAX_SCALE_WIDTH or (side == "low" and v >= 0) or (
                side == "high" and not (v >= 99 and set(str(int(v))) == {"9"})):
            continue  # (beyond the widest scale: _check_inferred_width says so)
        rest = seen[seen != v]
        if rest.size < 2 or rest.min() == rest.max():
            continue
        scale = infer_scale(rest)
        if scale not in COMMON_SCALES or scale[0] <= v <= scale[1]:
            continue
        where = values == v
        n = int(counts[where].sum()) if counts is not None else int(np.count_nonzero(where))
        what = ("a missing or failed judgement" if field == "judge_score" else "a row without a label")
        fix = ("leave those scores empty and pass on_invalid='drop' to exclude the rows (they are "
               "counted in the report)" if field == "judge_score" else
               "leave unlabelled rows empty (null/NaN)")
        span = (v, scale[1]) if side == "low" else (scale[0], v)
        on = f" on {n} row{'s' if n > 1 else ''}" if n else ""
        rule = (f"The {field!r} column holds {v:g}{on} while every other value lies within "
                f"{_fmt_scale(scale)}: {v:g} looks like a marker for {what}, and read as a value it "
                "moves every estimate")
        fix = f"If it is such a marker, {fix}; if it is a real value, declare {option}={_fmt_scale(span)}."
        if pid is None:
            raise CJEInputError(f"{rule}. {fix}")
        first_bad(where, rule, values, pid, fix, fmt="g")


def bottom_tenth(n: int, low: float, high: float, scale: tuple[float, float], what: str,
                 option: str, notices: list[str]) -> None:
    """A notice when ``n ≥ 20`` values (observed ``low`` to ``high``) all lie in the bottom tenth
    of a declared scale: the usual sign of a scale declared in other units (0–1 labels declared
    ``(0, 100)``, a 0–10 judge declared ``(0, 100)``). Results are still reported on the
    declared scale; the out-of-core engines give the same notice."""
    lo, hi = scale
    if n >= 20 and high <= lo + 0.1 * (hi - lo):
        seen = infer_scale(np.array([low, high]))
        notices.append(
            f"All {n} {what} lie in the bottom tenth of the declared {option}="
            f"{_fmt_scale(scale)} (observed {low:g} to {high:g}): if they are on "
            f"{_fmt_scale(seen)}, declare {option}={_fmt_scale(seen)} (results are reported on "
            "the declared scale)."
        )


def scale_mix(values: np.ndarray, pol_code: np.ndarray, pol_names: Any, scale: tuple[float, float],
              what: str, option: str, notices: list[str], n_rows: np.ndarray | None = None) -> None:
    """A notice for each policy whose values (at least 20) all lie on a common scale a fifth as
    wide as the data's, or less, below where the other policies' values reach: the usual sign of
    one policy judged (or labelled) on another scale, e.g. 0–1 scores beside others' 0–10. The
    calibration then reads its 0.9 as a bad 0.9 out of 10 and its value is wrong, with nothing
    else amiss.

    Parameters
    ----------
    values : numpy.ndarray
        Finite values (judge scores, or the labelled rows' labels).
    pol_code : numpy.ndarray of int
        Policy of each value (codes into ``pol_names``, all >= 0).
    pol_names : sequence of str
        Policy names.
    scale : (low, high)
        The declared or inferred scale of ``values``.
    what, option : str
        Their name in the notice (``"judge scores"``) and the option setting the scale.
    notices : list of str
        Appended to.
    n_rows : numpy.ndarray of int, optional
        Rows per policy, when ``values`` are each policy's distinct values (out of core), not
        one value per row.

    Examples
    --------
    >>> s = np.r_[np.linspace(0, 1, 30), np.linspace(0, 10, 30)]
    >>> notes = []
    >>> scale_mix(s, np.repeat([0, 1], 30), ["a", "b"], (0.0, 10.0), "judge scores",
    ...           "judge_scale", notes)
    >>> print(notes[0][:70])
    All 30 judge scores of policy 'a' lie within (0, 1) (observed 0 to 1),
    """
    n_pol = len(pol_names)
    count = np.bincount(pol_code, minlength=n_pol) if n_rows is None else np.asarray(n_rows)
    if n_pol < 2 or count.sum() < 40:
        return
    low, high = np.full(n_pol, np.inf), np.full(n_pol, -np.inf)
    np.minimum.at(low, pol_code, values)
    np.maximum.at(high, pol_code, values)
    width = scale[1] - scale[0]
    for p in np.flatnonzero(count >= 20).tolist():
        own = infer_scale(np.array([low[p], high[p]]))
        others = np.delete(high, p)
        if own in COMMON_SCALES and own[1] - own[0] <= 0.2 * width and others.max() > own[1]:
            notices.append(
                f"All {int(count[p])} {what} of policy {str(pol_names[p])!r} lie within "
                f"{_fmt_scale(own)} (observed {low[p]:g} to {high[p]:g}), while the other "
                f"policies' reach {others.max():g} on {option}={_fmt_scale(scale)}: if "
                f"{str(pol_names[p])!r} was scored on {_fmt_scale(own)}, its {what} are on another "
                "scale than the others' and its value is wrong — rescale them to the others' scale.")


def _label_scale(y: np.ndarray, lab: np.ndarray, label_scale: tuple[float, float] | None,
                 jscale: tuple[float, float], pid: _Ids,
                 notices: list[str]) -> tuple[float, float]:
    """The declared label scale (every label inside it), else the one inferred from the labels
    (with a notice), else the judge scale when nothing is labelled."""
    if label_scale is not None:
        lscale = _check_scale(label_scale, "label_scale")
        if lab.any():
            first_bad(lab & ((y < lscale[0]) | (y > lscale[1])),
                      f"The 'oracle_label' column must lie within label_scale={_fmt_scale(lscale)}",
                      y, pid, "Declare the scale the labels really use, or fix the labels.", fmt="g")
            ly = y[lab]
            bottom_tenth(ly.size, float(ly.min()), float(ly.max()), lscale, "oracle labels",
                         "label_scale", notices)
        return lscale
    if not lab.any():
        return jscale
    refuse_sentinel(np.where(lab, y, np.nan), "oracle_label", "label_scale", pid)
    lscale = infer_scale(y[lab])
    _check_inferred_width(lscale, np.where(lab, y, np.nan), "oracle_label", "label_scale", pid)
    notices.append(
        f"{INFERRED_LABEL_SCALE} {_fmt_scale(lscale)} from the oracle labels "
        f"(observed {np.nanmin(y):g} to {np.nanmax(y):g}). Pass label_scale=(low, high) to "
        "set it; results are reported on this scale."
    )
    return lscale


def check_label_variation(labels: np.ndarray) -> None:
    """Two or more labels that train the calibrator (``labels``: their values, no NaN) must not
    all be equal: nothing could be calibrated to them. Checked on the labels that train it —
    by :func:`cje.analyze` (the data's, with any ``calibration=`` rows), :func:`cje.monitor`
    and the out-of-core engines — not by :func:`load`: a probe slice's labels (a strong policy's
    binary labels may all be 1) or a set of calibration rows may be constant and still be
    right."""
    if labels.size >= 2 and np.all(labels == labels[0]):
        raise CJEInputError(
            f"The 'oracle_label' column has a single value ({labels[0]:g}) on all {labels.size} "
            "labelled rows, so the judge cannot be calibrated to it. Check that the right "
            "column is used and that labels were recorded correctly."
        )


def _codes(pid_code: np.ndarray, pid_uniq: np.ndarray, pol_code: np.ndarray,
           pol_uniq: np.ndarray) -> tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray]:
    """Dense prompt codes (after any drop) and distinct prompts; sorted policy names and codes."""
    if _dense_in_order(pid_code) and int(pid_code.max(initial=-1)) + 1 == len(pid_uniq):
        # already 0..G-1 in order of first appearance, every prompt present: no re-coding (a
        # drop may have left a last prompt without rows: re-coded below, so it is not listed)
        prompt_code, used = pid_code, None  # (the distinct ids as they are: no copy)
    elif pid_code.shape[0] <= _SMALL_IDS:  # as pandas.factorize, without importing pandas
        prompt_code, used_obj = _factorize_list(pid_code.tolist())
        used = used_obj.astype(pid_code.dtype)
    else:
        import pandas as pd

        prompt_code, used = pd.factorize(pid_code, sort=False)
    present = np.flatnonzero(np.bincount(pol_code, minlength=len(pol_uniq)))  # (codes >= 0)
    pol_names = tuple(sorted(pol_uniq[present].tolist()))
    remap = np.full(len(pol_uniq), -1, dtype=np.int64)
    remap[present] = [pol_names.index(p) for p in pol_uniq[present]]
    # (pol_code ≥ 0: bincount refuses negative codes) an identity remap is no gather
    policy_code = (pol_code.astype(np.int64, copy=False)
                   if np.array_equal(remap, np.arange(remap.size)) else remap[pol_code])
    return (prompt_code.astype(np.int64, copy=False), pid_uniq if used is None else pid_uniq[used],
            pol_names, policy_code)


#: Rows per block of the per-row checks that would otherwise make temporaries as long as the
#: data (at 10^7 rows, each is 80 MB at the load's memory peak).
_BLOCK = 1 << 20


def _dense_in_order(codes: np.ndarray, block: int | None = None) -> bool:
    """Whether ``codes`` are 0, 1, 2, … in order of first appearance, every value present (what
    ``pandas.factorize(codes, sort=False)`` would return unchanged).

    The running maximum may rise by at most one from row to row; it is taken ``block`` rows at
    a time (default :data:`_BLOCK`), carried over from block to block."""
    if codes.size == 0 or codes[0] != 0:
        return codes.size == 0
    block = _BLOCK if block is None else block
    top = 0  # the running maximum before the block
    for a in range(0, codes.size, block):
        part = codes[a:a + block]
        if part.min() < 0:
            return False
        run = np.maximum.accumulate(part)
        np.maximum(run, top, out=run)
        if int(run[0]) - top > 1 or (np.diff(run) > 1).any():
            return False
        top = int(run[-1])
    return True


def _has_duplicate(key: np.ndarray) -> bool:
    """Whether a non-negative integer key repeats: a mark per value (one byte each) when the
    range is at most a few times the rows, else a sort."""
    top = int(key.max(initial=0))
    if top < 8 * key.size + 1024:
        seen = np.zeros(top + 1, dtype=bool)
        seen[key] = True
        return int(np.count_nonzero(seen)) < key.size
    k = np.sort(key)
    return bool((k[1:] == k[:-1]).any())


def _cumcount(key: np.ndarray) -> np.ndarray:
    """Each row's number among the earlier rows with the same key, in row order (what pandas'
    ``Series(key).groupby(key).cumcount()`` gives), from one stable sort: no hash table of 10^7
    keys.

    Examples
    --------
    >>> _cumcount(np.array([5, 3, 5, 5, 3, 9])).tolist()
    [0, 0, 1, 2, 1, 0]
    """
    order = np.argsort(key, kind="stable")
    k = key[order]
    start = np.empty(k.shape[0], dtype=bool)  # the first row of each key in sorted order
    start[:1] = True
    np.not_equal(k[1:], k[:-1], out=start[1:])
    del k
    first = np.flatnonzero(start)
    pos = np.arange(key.shape[0], dtype=np.int64)
    pos -= np.repeat(first, np.diff(np.append(first, key.shape[0])))
    out = np.empty(key.shape[0], dtype=np.int64)
    out[order] = pos
    return out


def _draw_idx(cols: dict[str, Any], pid: _Ids, pol: _Ids, key_pp: np.ndarray,
              notices: list[str]) -> np.ndarray:
    """Draw index per row: the ``draw_idx`` column (non-negative integers, no duplicate
    (prompt, policy, draw)), else repeated (prompt, policy) rows numbered in input order.
    ``key_pp`` codes the (prompt, policy) pair of each row; it is overwritten (a key of the
    triple is built in its place)."""
    small = key_pp.shape[0] <= _SMALL_IDS  # counted in Python: no pandas import for a few rows
    if "draw_idx" not in cols:
        if small:
            seen: dict[int, int] = {}
            numbers = []
            for k in key_pp.tolist():
                numbers.append(seen.get(k, 0))
                seen[k] = numbers[-1] + 1
            draw = np.array(numbers, dtype=np.int64)
        elif not _has_duplicate(key_pp):  # one row per pair (the usual case): all draw 0
            draw = np.zeros(key_pp.shape[0], dtype=np.int64)
        else:
            draw = _cumcount(key_pp)
        if draw.max(initial=0) > 0:
            notices.append(
                f"{int((draw > 0).sum())} rows repeat a (prompt_id, policy) pair and there is no "
                "'draw_idx' column: they were taken as repeated draws, numbered in input order."
            )
        return draw
    raw = np.asarray(cols["draw_idx"])
    if (raw.dtype.kind == "i" or (raw.dtype.kind == "u" and raw.dtype.itemsize < 8)) \
            and raw.min() >= 0:  # integers, none negative: valid as they are (no float copy)
        draw = raw.astype(np.int64, copy=False)
    else:
        d = _to_float(raw, "draw_idx", pid)
        first_bad(~np.isfinite(d) | (d != np.round(d)) | (d < 0),
                  "The 'draw_idx' column must hold non-negative integers", d, pid)
        draw = d.astype(np.int64)
        del d
    top = int(draw.max())
    key = key_pp  # (prompt, policy, draw), in place: the caller's key_pp is not used again
    if top > 0:
        key *= top + 1
        key += draw
    if _has_duplicate(key):
        if small:
            _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
            dup = counts[inverse.reshape(-1)] > 1
        else:
            import pandas as pd

            dup = pd.Series(key).duplicated(keep=False).to_numpy()
        rows = np.flatnonzero(dup)
        first = rows[0]
        second = rows[1:][key[rows[1:]] == key[first]][0]
        raise _at_rows(CJEInputError(
            f"Rows {_input_row(first, pid)} and {_input_row(second, pid)} share "
            f"prompt_id={pid[first]!r}, "
            f"policy={pol[first]!r}, draw_idx={int(draw[first])} ({int(dup.sum())} rows are "
            "duplicated). Give repeated draws distinct draw_idx values, or remove the duplicate."
        ), _input_row(first, pid), _input_row(second, pid))
    return draw


def _one_response_rows(key_pp: np.ndarray, s: np.ndarray, lab: np.ndarray, pid: _Ids,
                       pol: _Ids) -> str | None:
    """A notice when the rows repeating a (prompt, policy) pair look like one response on
    several rows: most of them share their pair's judge score with a labelled row of the pair
    (several raters' labels of one response given as rows, or a labelled copy of an unlabelled
    row), which the level then counts once per row. ``None`` otherwise (no repeated pair, or
    repeated rows mostly with judge scores of their own, as repeated draws have).

    ``key_pp`` codes the (prompt, policy) pair of each row; ``s`` the judge scores, ``lab`` the
    labelled rows. Only the pairs with a label are sorted."""
    if not lab.any() or not _has_duplicate(key_pp):
        return None
    top = int(key_pp.max(initial=0))
    if top < 8 * key_pp.size + 1024:  # a mark per pair code (as _has_duplicate): no sort
        mark = np.zeros(top + 1, dtype=bool)
        mark[key_pp] = True
        repeated = key_pp.size - int(np.count_nonzero(mark))  # rows after the first of their pair
        mark[:] = False
        mark[key_pp[lab]] = True
        rows = np.flatnonzero(mark[key_pp])  # the rows of pairs with a label
        del mark
    else:
        repeated = key_pp.size - np.unique(key_pp).size
        rows = np.flatnonzero(np.isin(key_pp, key_pp[lab]))
    order = rows[np.lexsort((s[rows], key_pp[rows]))]
    k, v = key_pp[order], s[order]
    start = np.ones(order.size, dtype=bool)  # first row of each (pair, judge score) group
    start[1:] = (k[1:] != k[:-1]) | (v[1:] != v[:-1])
    group = np.cumsum(start) - 1
    size = np.bincount(group)
    labels = np.bincount(group, weights=lab[order].astype(np.float64))
    hit = (size > 1) & (labels > 0)
    extra = int((size[hit] - 1).sum())  # rows beyond the first of such groups
    if extra == 0 or 2 * extra < repeated:
        return None
    first = order[start][hit][0]
    same = [_input_row(int(i), pid) for i in order[group == np.flatnonzero(hit)[0]][:3]]
    return one_response_notice(extra, repeated, same, pid[first], pol[first], float(s[first]))


def one_response_notice(extra: int, repeated: int, rows: Sequence[int], prompt_id: Any, policy: Any,
                        judge_score: float) -> str:
    """The notice of rows that look like one response on several rows (the in-memory check
    ``_one_response_rows`` and the out-of-core engines give the same text).

    Parameters
    ----------
    extra : int
        Rows beyond the first of the (prompt, policy, judge score) groups that hold a labelled row.
    repeated : int
        Rows that repeat a (prompt_id, policy) pair (beyond the first of each pair).
    rows : sequence of int
        Input row numbers of the example group (its first three rows).
    prompt_id, policy : object
        The example group's prompt id and policy.
    judge_score : float
        The example group's judge score.

    Returns
    -------
    str

    Examples
    --------
    >>> one_response_notice(2, 2, [0, 5], "q1", "A", 7.0)[:60]
    '2 of the 2 rows that repeat a (prompt_id, policy) pair share'
    """
    same = ", ".join(str(int(i)) for i in rows)
    return (
        f"{extra} of the {repeated} rows that repeat a (prompt_id, policy) pair share the judge "
        f"score of a labelled row of their pair (e.g. rows {same}: "
        f"prompt_id={prompt_id!r}, policy={policy!r}, judge_score={judge_score:g}). If such "
        "rows are one response (labelled by several raters, or a labelled copy of an unlabelled "
        "row), it counts once per row: in the policy's level (a mean over rows) and as labels. "
        "Give one row per response (several raters: their mean label; see the docs, Getting "
        "started › Several labels per response)."
    )


def _covariates(cols: dict[str, Any], covariates: Sequence[str], pid: _Ids,
                notices: list[str]) -> dict[str, np.ndarray]:
    """The requested covariates, numeric and complete (``response_length`` may be derived from
    a ``response`` column as a whitespace word count)."""
    cov: dict[str, np.ndarray] = {}
    for c in covariates:
        if c in _STANDARD:
            raise CJEInputError(f"{c!r} cannot be a covariate (it is a standard column).")
        if c in cols:
            v = _to_float(np.asarray(cols[c]), c, pid)
        elif c == "response_length" and "response" in cols:
            v = np.array(
                [len(r.split()) if isinstance(r, str) else np.nan for r in cols["response"]],
                dtype=np.float64,
            )
            notices.append("response_length was derived from 'response' as a whitespace word count.")
            first_bad(np.isnan(v), "response_length is derived from the 'response' column (its word "
                      "count), which must be text on every row", "no response (missing, or empty: a "
                      "CSV file cannot tell the two apart)", pid,
                      "Fill in the response (an empty answer has length 0: give a "
                      "'response_length' column with 0 there), or drop the covariate.", count=True)
        elif c == "response_length":
            raise CJEInputError(
                "response_length was requested as a covariate, but the input has neither a "
                "'response_length' column nor a 'response' column to derive it from. Add one of "
                "them, or drop the covariate."
            )
        else:
            raise CJEInputError(
                f"Covariate {c!r} is not a column of the input; its columns are {sorted(cols)}."
            )
        first_bad(~np.isfinite(v), f"Covariate {c!r} must be numeric and complete", cols.get(c, v),
                  pid, "Fill it in, or drop the covariate.")
        cov[c] = v
    return cov


def _logprobs(cols: dict[str, Any], pid: _Ids) -> dict[str, np.ndarray]:
    """Log-probability columns of logged data (``logprob_base``, ``logprob[<target>]``) keyed
    ``base`` and by target: finite and <= 0 or missing; the logging policy's complete."""
    lps: dict[str, np.ndarray] = {}
    for c, v in cols.items():
        if c == "logprob_base" or (c.startswith("logprob[") and c.endswith("]")):
            lp = _to_float(np.asarray(v), c, pid)
            first_bad(np.isinf(lp) | (lp > 0),
                      f"The {c!r} column must hold log-probabilities (finite and <= 0, empty where "
                      "missing)", lp, pid,
                      "A sequence log-probability is a sum of token log-probabilities; check its "
                      "sign and that it was not exponentiated or normalised.", count=True)
            if c == "logprob_base":
                first_bad(np.isnan(lp), "The 'logprob_base' column must be complete", "none", pid,
                          "Every importance weight needs the logging policy's log-probability of "
                          "the logged response: fill it in, or drop those rows.", count=True)
            lps["base" if c == "logprob_base" else c[len("logprob[") : -1]] = lp
    return lps


def _fmt_scale(scale: tuple[float, float]) -> str:
    return f"({scale[0]:g}, {scale[1]:g})"


def with_calibration_rows(data: EvalData, extra: EvalData) -> EvalData:
    """Append labelled rows that only train the calibrator (``policy_code = -1``).

    Parameters
    ----------
    data : EvalData
        The evaluation data.
    extra : EvalData
        Calibration data (judge scores with oracle labels); must use the same scales.
    """
    if data.label_probability is not None or extra.label_probability is not None:
        raise CJEInputError(
            "calibration= data cannot be combined with a non-uniform 'label_probability' column "
            "yet (the calibration-only rows' place in the labelling design is not defined). Put "
            "the calibration rows' labels in the data with their probabilities, or drop "
            "calibration=.")
    if extra.n_labels == 0:
        raise CJEInputError(
            "The calibration data has no oracle labels: it needs an 'oracle_label' column with "
            "values on at least 4 prompts."
        )
    keep = np.flatnonzero(extra.labelled)
    pid = np.concatenate([data.prompt_id, extra.prompts[extra.prompt_code[keep]]])
    import pandas as pd

    code, prompts = pd.factorize(pid, sort=False)
    cov = {}
    for k, v in data.covariates.items():
        if k not in extra.covariates:
            raise CJEInputError(
                f"The calibration data lacks covariate {k!r}, which the evaluation data has."
            )
        cov[k] = np.concatenate([v, extra.covariates[k][keep]])
    lps = {
        k: np.concatenate([v, np.full(keep.size, np.nan)]) for k, v in data.logprobs.items()
    }
    del pid
    return EvalData(
        prompt_code=code.astype(np.int64),
        prompts=np.asarray(prompts, dtype=object),
        policy_code=np.concatenate([data.policy_code, np.full(keep.size, -1, dtype=np.int64)]),
        policies=data.policies,
        draw_idx=np.concatenate([data.draw_idx, extra.draw_idx[keep]]),
        judge_score=np.concatenate([data.judge_score, extra.judge_score[keep]]),
        oracle_label=np.concatenate([data.oracle_label, extra.oracle_label[keep]]),
        covariates=cov,
        logprobs=lps,
        judge_scale=data.judge_scale,
        label_scale=data.label_scale,
        notices=data.notices
        + (f"{keep.size} labelled calibration rows were added to train the calibrator.",),
        excluded=data.excluded,
        excluded_by_policy=data.excluded_by_policy,
    )


# --------------------------------------------------------------------------------------------
# Folds
# --------------------------------------------------------------------------------------------
def _prompt_hash(prompts: np.ndarray, seed: int) -> np.ndarray:
    # blake2b((seed, US, id)): the seed's prefix is hashed once and the state copied per id
    # (the same digest, a quarter less time than hashing the concatenation afresh)
    # (one loop without a function call per id: ~10% less time at 10^6 prompts)
    start = hashlib.blake2b(f"{int(seed)}\x1f".encode(), digest_size=8).copy
    out: list[bytes] = []
    put = out.append
    for p in prompts.tolist() if isinstance(prompts, np.ndarray) else prompts:
        h = start()
        h.update((p if type(p) is str else str(p)).encode())
        put(h.digest())
    return np.frombuffer(b"".join(out), dtype="<u8").astype(np.uint64)


def prompt_folds(
    prompts: np.ndarray, labelled_prompt: np.ndarray, n_folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Assign each prompt to a fold, independently of row and file order.

    A prompt's fold comes from a stable hash (blake2b) of ``(seed, prompt_id)``. Labelled prompts
    are sorted by hash and dealt round-robin, so the oracle folds are balanced (sizes differ by
    at most one prompt and none is empty when there are at least ``n_folds`` labelled prompts);
    other prompts take ``hash mod n_folds``.

    Parameters
    ----------
    prompts : numpy.ndarray of str
        Distinct prompt ids.
    labelled_prompt : numpy.ndarray of bool
        Whether each prompt has at least one oracle label.
    n_folds : int
        Number of folds K.
    seed : int
        Hash seed.

    Returns
    -------
    numpy.ndarray of int64
        Fold (0..K-1) per prompt.

    Examples
    --------
    >>> f = prompt_folds(np.array(["a", "b", "c", "d"], dtype=object), np.ones(4, bool), 2)
    >>> sorted(np.bincount(f).tolist())
    [2, 2]
    """
    if int(n_folds) != n_folds or n_folds < 2:
        raise CJEInputError(f"n_folds must be an integer >= 2; got {n_folds!r}.")
    h = _prompt_hash(prompts, seed)
    fold = (h % np.uint64(n_folds)).astype(np.int64)
    lab = np.flatnonzero(labelled_prompt)
    if lab.size:
        # sort by (hash, id) so even a hash collision cannot make the order depend on input order
        # (the ids are compared only when two hashes are equal)
        order = np.argsort(h[lab], kind="stable")
        hs = h[lab][order]
        if (hs[1:] == hs[:-1]).any():
            order = np.lexsort((prompts[lab].astype(str), h[lab]))
        fold[lab[order]] = np.arange(lab.size) % n_folds
    return fold
