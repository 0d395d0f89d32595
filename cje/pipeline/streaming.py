"""Direct analysis over data too large for memory: polars streaming or Dask (docs: Large data).

The direct estimator is a sum over rows of a function of (judge score, label, fitted map),
clustered by prompt, and judge scores are coarse. So the analysis runs in passes over the
partitions, each done by the engine (no scheduler or shuffle of ours):

1. **scan** — validation of every row (the first bad row is named by file and row), the number
   of rows per (policy, distinct judge score), and the labelled rows (small), collected;
2. **fit** (driver) — the calibrator and its K fold-deleted refits on the labelled rows with the
   package's own code (:func:`~cje.pipeline.core.fold_plan`, :func:`~cje.pipeline.core.fit_calibrator`);
   every policy's point estimate, and every jackknife replicate, follows from the counts per
   distinct score and the labelled rows alone;
3. **per-prompt sums** — ``group_by(prompt_id)`` (one per :data:`ROWS_PER_GROUP_BY` rows, the
   prompts split between them by a hash of their id): per prompt and policy the total of the
   influence values ``Σ_{i∈g} φ_i = Σ (R_i − R̄) + b_g`` (``R = f(S)`` by a lookup of the
   distinct scores, each row centred on its policy's mean; ``b_g`` the labelled rows' centred
   residual term, entered as extra rows of the group-by), the naive judge mean's centred totals
   and whether the policy has rows on the prompt, computed in the engine (Dask: each partition
   summed per prompt first, reading only ``prompt_id``, ``policy`` and ``judge_score``; one
   group-by whose output is split into several partitions, through a disk shuffle on one
   machine); only these numbers (no ids; from Dask as numpy arrays) reach the driver, which
   keeps each policy's totals on its prompts and only the sum of squares of the naive totals;
4. **reduce** — :func:`cje.pipeline.core.estimate`, the same skeleton as in memory, on those
   per-prompt totals: clustered variances, the OUA jackknife, gates, contrasts, ranking and the
   :class:`~cje.report.Report`.

These passes take fresh draws (direct mode), with ``mode="monotone"``, ``"two_stage"`` or
``"auto"`` on the judge score alone; covariates, probe slices and calibration-only rows are
refused with a message naming ``engine="memory"``. Logged data runs on its own passes
(:mod:`cje.pipeline.streaming_logged`), which share this module's readers and engine helpers.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cje._progress import progress_bar
from cje.calibration.reward import Mode, RewardCalibrator
from cje.data import (
    INFERRED_LABEL_SCALE,
    _check_scale,
    bottom_tenth,
    check_label_variation,
    decimal_float64,
    infer_scale,
    one_response_notice,
    refuse_near_miss,
    refuse_sentinel,
    scale_mix,
    split_by_space,
)
from cje.diagnostics.gates import (
    label_balance_gate,
    label_balance_of_counts,
    prompt_balance,
    prompt_score_sums,
    worse_status,
)
from cje.errors import CJEInputError
from cje.estimators.direct import DirectEstimator
from cje.estimators.offpolicy import PolicyValue
from cje.inference import t_interval
from cje.pipeline.core import (
    MIN_LABELLED_PROMPTS,
    PolicyRows,
    Table,
    distinct_rows,
    estimate,
    fit_calibrator,
    fold_plan,
    own_label_gate,
    own_part_cross,
    own_part_sums,
)
from cje.pipeline.summaries import from_unit, to_unit
from cje.report import Report

__all__ = ["ENGINES", "analyze_partitioned", "choose_engine", "expand_files", "is_partitioned"]

#: The engines of :func:`cje.analyze`.
ENGINES = ("auto", "memory", "polars", "dask")
#: File formats read out of core, by suffix.
SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl",
            ".ndjson": "jsonl"}
#: ``engine="auto"`` streams a set of files when the in-memory engine would need more than this
#: share of the available memory. The in-memory engine holds ~165 bytes per row at 10^7 rows
#: (1.66 GB for 54 MB of Parquet in benchmarks/scale_out.py: 31×, after issue #18's memory work;
#: 48× before): 40 times the bytes of Parquet files with a string prompt id is kept as a margin
#: (streaming when in doubt), ~8 times those of CSV / JSON Lines.
AUTO_MEMORY_SHARE = 0.5
_EXPANSION = {"parquet": 40, "csv": 8, "jsonl": 8}
#: Rows per group-by of the per-prompt pass: above it the prompts are split by a hash of their
#: id into several group-bys, so the engine never holds the hash table of more prompts than
#: these rows have (polars: one pass over the data each, at most :data:`MAX_POLARS_PASSES`;
#: Dask: :data:`DASK_SPLIT_PER_GROUP_BY` output partitions each of its one group-by,
#: ``split_out``, a shuffle and not another pass). The group-by's memory grows with its prompts
#: × its columns (3 per policy: ~40 bytes per prompt for each float sum, ~7 for each UInt8
#: maximum, in polars; the third is now a UInt32 count of rows, whose squares give the
#: effective number of prompts — at 10^7 rows the whole polars analysis peaked at 0.85 GB with
#: it against 0.83 GB with the flag, Dask 0.89–0.90 against 0.89, load 1.9–2.2): measured in
#: polars alone at 10^7 rows (2.5·10^6 prompts, 4 policies) with the flag: 0.85 GB peak in one
#: group-by, 0.67 GB in 2. Whole analysis at 10^7 rows
#: (benchmarks/scale_out.py; in-memory engine 1.63–1.68 GB, 5.3–7.1 s): polars 0.78–0.82 GB in
#: 5.2–7.5 s with 8 group-bys of 1.25·10^6 rows (1.11 GB at 2.5·10^6, 1.26 GB at 5·10^6,
#: measured under a load of 2–3); Dask 0.86–0.93 GB in 7.1–11.4 s (load 2.2–4) with 32 output
#: partitions through a disk shuffle (1.23–1.28 GB in 10.7–11.0 s before issue #15's Dask
#: memory work). At 10^8 rows: polars 4.58 GB, Dask 4.90 GB (5.57 GB before).
ROWS_PER_GROUP_BY = 1_250_000
#: Polars: at most this many passes of the per-prompt group-by (above 2.5·10^7 rows each holds
#: more rows than :data:`ROWS_PER_GROUP_BY`): each pass reads all the data (~5 s each at 10^8
#: rows), and at 10^8 rows the labelled rows, the calibrator and the per-prompt totals in the
#: driver, not the group-by of 5·10^6 rows, hold most of the memory.
MAX_POLARS_PASSES = 20
#: Dask: output partitions of its one per-prompt group-by per :data:`ROWS_PER_GROUP_BY` rows
#: (32 at 10^7 rows). Measured at 10^7 rows, whole analysis, in-process cluster, load 2.5–4:
#: with a disk shuffle 8 partitions 1.08 GB, 16: 0.96–0.97 GB, 32: 0.87–0.90 GB, 64: 0.93 GB;
#: with p2p 8: 1.13 GB, 16: 1.10–1.11 GB, 32: 1.08–1.12 GB; with tasks 16: 1.04–1.06 GB, 32:
#: 1.08 GB (more partitions: each is grouped and summed on its own, fewer prompts at once).
DASK_SPLIT_PER_GROUP_BY = 4
#: Row key of the first bad row: file number × 2^40 + row in the file.
_ROW_BITS = 40
_OR_MEMORY = "Use engine='memory' (it needs the data in memory)."


# ------------------------------------------------------------------------------------------------
# Inputs and the engine choice


def _is_glob(s: str) -> bool:
    return any(c in s for c in "*?[")


def expand_files(source: Any) -> list[Path] | None:
    """The files of a path, glob or directory of Parquet / CSV / JSON Lines files.

    Parameters
    ----------
    source : str or os.PathLike
        A file, a glob (``'dir/*.parquet'``, ``'dir/**/*.parquet'``) or a directory (its files
        with a supported suffix, recursively).

    Returns
    -------
    list of pathlib.Path or None
        Sorted by path (the order rows are numbered and concatenated in); ``None`` when the
        source is none of these (e.g. a cje-eval fresh-draws directory of
        ``<policy>_responses.jsonl`` files, which only the in-memory engine reads).

    Raises
    ------
    CJEInputError
        A glob that matches nothing, or files of more than one format.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b.parquet", "a.parquet"):
    ...     _ = (d / name).write_bytes(b"")
    >>> [p.name for p in expand_files(d)]
    ['a.parquet', 'b.parquet']
    >>> [p.name for p in expand_files(str(d / "*.parquet"))]
    ['a.parquet', 'b.parquet']
    """
    if not isinstance(source, (str, os.PathLike)):
        return None
    from cje.readers import refuse_url

    refuse_url(source)
    text = os.fspath(source)
    if _is_glob(text) and not Path(text).exists():
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        if not files:
            raise CJEInputError(f"No file matches {text!r}. Check the path and the pattern.")
    elif Path(text).is_dir():
        if any(Path(text).glob("*_responses.jsonl")):
            return None  # a cje-eval fresh-draws directory: its reader names the policies
        files = sorted(p for p in Path(text).rglob("*")
                       if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            return None
    elif Path(text).is_file() and Path(text).suffix.lower() in SUFFIXES:
        files = [Path(text)]
    else:
        return None
    kinds = {SUFFIXES.get(p.suffix.lower()) for p in files}
    if None in kinds or len(kinds) > 1:
        raise CJEInputError(
            f"{text!r} holds files of several formats ({sorted(str(k) for k in kinds)}); give a "
            "glob of one format, e.g. 'dir/*.parquet'.")
    return files


def is_partitioned(data: Any) -> bool:
    """Whether ``data`` is a polars LazyFrame or a Dask DataFrame (never imports either).

    Parameters
    ----------
    data : Any

    Returns
    -------
    bool

    Examples
    --------
    >>> import polars as pl
    >>> is_partitioned(pl.LazyFrame({"a": [1]})), is_partitioned(pl.DataFrame({"a": [1]}))
    (True, False)
    """
    mod = type(data).__module__
    return (mod.startswith("polars") and type(data).__name__ == "LazyFrame") or (
        mod.startswith("dask") and type(data).__name__ == "DataFrame")


def _available_memory() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def choose_engine(data: Any, engine: str, client: Any = None) -> str:
    """The engine ``engine="auto"`` resolves to (a named engine is returned as it is).

    The rule: a polars LazyFrame streams with polars, a Dask DataFrame (or files with a
    ``client``) runs on Dask; a file set streams with polars when the in-memory engine would
    need more than half the available memory (estimated as 40 × the bytes of Parquet files,
    8 × those of CSV / JSON Lines); everything else — data frames, dicts, ``EvalData``, small
    files — is analysed in memory.

    Parameters
    ----------
    data : Any
        The ``data`` of :func:`cje.analyze`.
    engine : {"auto", "memory", "polars", "dask"}
    client : dask.distributed.Client, optional

    Returns
    -------
    str

    Examples
    --------
    >>> choose_engine({"prompt_id": ["a"]}, "auto")
    'memory'
    >>> choose_engine({"prompt_id": ["a"]}, "polars")
    'polars'
    """
    if engine != "auto":
        return engine
    if is_partitioned(data):
        return "polars" if type(data).__module__.startswith("polars") else "dask"
    try:
        files = expand_files(data)
    except CJEInputError:
        return "memory"  # the in-memory reader says what is wrong
    if not files:
        return "memory"
    if client is not None:  # files and a Dask client: run there
        return "dask"
    need = sum(p.stat().st_size * _EXPANSION[SUFFIXES[p.suffix.lower()]] for p in files)
    return "memory" if need <= AUTO_MEMORY_SHARE * _available_memory() else "polars"


def read_files_in_memory(files: Sequence[Path], columns: Any = None) -> Any:
    """A file set read whole into one polars DataFrame (``engine="memory"`` on a glob or a
    directory), in the order of :func:`expand_files`, ids (also those ``columns`` renames) as
    the exact text written, as :func:`cje.load` reads one file.

    As the out-of-core engines read the same files: a file without rows adds none (an error only
    when every file is empty), and a column that some files lack is empty (null) on their rows —
    e.g. ``oracle_label`` in files of unlabelled rows."""
    import polars as pl

    from cje.readers import ID_COLUMNS, read_table

    ids = [*ID_COLUMNS, *[v for k, v in (columns or {}).items() if k in ID_COLUMNS]]
    frames, empty = [], None
    for p in files:
        try:
            frames.append(read_table(p, id_columns=ids))
        except CJEInputError as err:
            if not str(err).startswith("The input has no rows"):
                raise
            empty = err
    if not frames:
        assert empty is not None
        raise empty
    if len(frames) == 1:
        return frames[0]
    # a float32 column is widened through its shortest decimal before the files are stacked
    # (as cje.load reads one file, cje.data.decimal_float64): stacked with a float64 file it
    # would be widened bit for bit, and 0.35 in one file would differ from 0.35 in the other
    frames = [fr.with_columns(pl_float64(fr.schema, c) for c, t in fr.schema.items() if t == pl.Float32)
              for fr in frames]
    return pl.concat(frames, how="diagonal_relaxed")


def files_with_rows(files: Sequence[Path]) -> list[Path]:
    """The files of a file set without those that are empty or blank (a JSON Lines or CSV file
    of whitespace only), which add no rows — as :func:`read_files_in_memory` skips them; the
    out-of-core readers could not infer a blank file's schema (polars: "could not infer
    data-type"). Refused, as in memory, when every file is empty.

    Parameters
    ----------
    files : sequence of pathlib.Path
        The files of :func:`expand_files`.

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    CJEInputError
        Every file is empty.
    """
    from cje.readers import blank_text_file

    kept = [p for p in files if p.stat().st_size > 0 and
            (SUFFIXES[p.suffix.lower()] == "parquet" or not blank_text_file(p))]
    if not kept:
        raise CJEInputError(f"The input has no rows: '{files[-1]}' is empty"
                            + (" (and so is every other file)." if len(files) > 1 else "."))
    return kept


def explain_unreadable(data: Any, columns: Any = None) -> None:
    """After an out-of-core engine failed with an error that is not an input error: if a file
    of ``data`` cannot be read, raise the input error the in-memory readers give for it — the
    first bad line of the first such file (a truncated or invalid JSON line, a bare
    ``Infinity``, a boolean among numbers, a CSV line with too many or too few fields), or a
    numeric column that holds text once every row is looked at (polars infers a CSV or JSON
    Lines column's type from its first rows, then fails on a later row). Returns when every
    file reads (the caller re-raises its error).

    Parameters
    ----------
    data : Any
        :func:`cje.analyze`'s ``data``; only a path, glob or directory is looked at.
    columns : Mapping[str, str], optional
        :func:`cje.analyze`'s ``columns=``.

    Raises
    ------
    CJEInputError
        Naming the file (and the line, where the readers can find it).
    """
    import polars as pl

    from cje import readers

    try:
        files = expand_files(data)
    except CJEInputError:
        return
    ids = _id_names(columns)
    for path in files_with_rows(files) if files else ():
        kind = SUFFIXES[path.suffix.lower()]
        if kind == "parquet":
            continue
        if kind == "jsonl":
            readers._diagnose_jsonl(path, ids)  # raises, naming the line, if it finds one
            try:
                lf = pl.scan_ndjson(_jsonl_source(path), infer_schema_length=None)
            except CJEInputError:  # a big file with a byte-order mark: not this check's business
                continue
        else:
            n_fields = len(readers._csv_header(path))
            readers._diagnose_csv(path, n_fields)
            readers._check_csv_field_counts(path, n_fields)
            lf = pl.scan_csv(path, infer_schema_length=None,
                             schema_overrides={c: pl.String for c in ids})
        try:
            schema = _empty_csv_numbers(lf, columns).collect_schema()  # (an empty column: Null)
        except Exception as exc:  # message depends on the polars version
            what = "JSON Lines" if kind == "jsonl" else "CSV"
            raise CJEInputError(f"Cannot parse '{path}' as {what}: {exc}") from None
        numeric = _number_columns(schema.names(), columns)
        with naming_file(str(path)):
            pl_check_types(pl.Schema({std: schema[c] for c, std in numeric}), [std for _, std in numeric])


def check_csv_lines(files: Sequence[Path] | None) -> None:
    """Every line of each CSV file holds as many fields as its header, as the in-memory reader
    requires: both engines pad a short line with nulls, so a row missing its last separator
    would otherwise be read as unlabelled, silently. The files are read in chunks (memory stays
    bounded).

    Parameters
    ----------
    files : sequence of Path or None
        The input's files (:func:`out_of_core_files`); ``None`` (a LazyFrame or Dask DataFrame)
        checks nothing.

    Raises
    ------
    CJEInputError
        Naming the file, the first bad line and the fix.
    """
    from cje import readers

    for path in files or ():
        if SUFFIXES[path.suffix.lower()] == "csv" and path.stat().st_size > 0 \
                and not readers.blank_text_file(path):
            readers._check_csv_field_counts(path, len(readers._csv_header(path)))


def out_of_core_files(data: Any, engine: str) -> list[Path] | None:
    """The files of an out-of-core input, ``None`` for a polars LazyFrame or a Dask DataFrame;
    anything else (a data frame in memory, a cje-eval fresh-draws directory) is refused with
    what the engine reads."""
    if is_partitioned(data):
        return None
    files = expand_files(data)
    if files is None:
        what = (f"'{os.fspath(data)}', which is not one (a cje-eval fresh-draws directory is read "
                "in memory only)" if isinstance(data, (str, os.PathLike))
                else f"a {type(data).__name__}")
        raise CJEInputError(
            f"engine={engine!r} reads a polars LazyFrame, a Dask DataFrame, or a file, glob or "
            f"directory of Parquet / CSV / JSON Lines files; got {what}. " + _OR_MEMORY)
    return files


def polars_inputs(data: Any, files: list[Path] | None, columns: Any) -> list[tuple[Any, str]]:
    """The LazyFrames to stream (one per file, with its number and row numbers) and their
    names for messages."""
    import polars as pl

    if files is not None:
        files = files_with_rows(files)
        _check_bom_bytes(files)
        return [_polars_scan(p, i, columns) for i, p in enumerate(files)]
    if type(data).__module__.startswith("dask"):
        raise CJEInputError("engine='polars' was given a Dask DataFrame; use engine='dask'.")
    lf = data.with_row_index("__row").with_columns(pl.lit(0, dtype=pl.Int64).alias("__file"))
    return [(lf, "the LazyFrame")]


def dask_inputs(data: Any, files: list[Path] | None, columns: Any) -> tuple[Any, list[str]]:
    """The Dask DataFrame (one partition per file) and each partition's name for messages."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise CJEInputError("engine='dask' needs dask[dataframe,distributed]: pip install 'cje[dask]'.") \
            from None
    if files is not None:
        files = files_with_rows(files)
        names = _file_columns(files)  # every file's partition gets them all (as in memory)
        args = [(i, str(p), SUFFIXES[p.suffix.lower()], _id_names(columns), names)
                for i, p in enumerate(files)]
        # Parquet: the meta from the first file's schema (else Dask reads the whole file in
        # this process to learn it: ~0.15 GB at 10^6 rows a file, kept by the allocators)
        meta = _dask_read((*args[0][:2], "parquet-schema", *args[0][3:])) \
            if args[0][2] == "parquet" else None
        ddf = dd.from_map(_dask_read, args, **({"meta": meta} if meta is not None else {}))
        return ddf, [str(p) for p in files]
    if type(data).__module__.startswith("polars"):
        raise CJEInputError("engine='dask' was given a polars LazyFrame; use engine='polars'.")
    return data, [f"partition {i} of the Dask DataFrame" for i in range(data.npartitions)]


@contextmanager
def naming_file(src: str) -> Iterator[None]:
    """An input error raised about one file's columns names the file (``src``: its path; a
    LazyFrame's or a Dask DataFrame's description is not prefixed)."""
    try:
        yield
    except CJEInputError as err:
        if src.startswith(("the ", "partition ")):
            raise
        raise CJEInputError(f"In '{src}': {err}") from None


def check_renames(names: Sequence[Any], columns: Any) -> None:
    """Every column ``columns=`` maps to must be in the input (``names``)."""
    for std, theirs in (columns or {}).items():
        if theirs not in names:
            raise CJEInputError(
                f"columns maps {std!r} to {theirs!r}, but the input has no column {theirs!r}; "
                f"its columns are {sorted(n for n in names if not str(n).startswith('__'))}.")


def require_columns(names: Sequence[Any], required: Sequence[str],
                    hints: dict[str, str] | None = None) -> None:
    """Every ``required`` column is among the input's ``names`` (after ``columns=``), else an
    input error naming it, the input's columns and how to rename one (and ``hints[column]``).
    A near miss of a standard name (``'Policy'``, ``'oracle_label '``) is refused first, as in
    memory (:func:`cje.data.refuse_near_miss`)."""
    refuse_near_miss([str(n) for n in names if not str(n).startswith("__")])
    for req in required:
        if req not in names:
            raise CJEInputError(
                f"The input has no {req!r} column. Its columns are "
                f"{sorted(str(n) for n in names if not str(n).startswith('__'))}; rename yours "
                f"with columns={{'{req}': 'your_name'}} (CLI: --column {req}=your_name)."
                + (hints or {}).get(req, ""))


def _direct_columns(names: Sequence[Any]) -> None:
    """The columns of fresh draws: the required ones, no log-probabilities (logged data has its
    own passes, :mod:`cje.pipeline.streaming_logged`, where :func:`cje.analyze` sends it), no
    label design."""
    require_columns(names, ("prompt_id", "judge_score"))
    if any(str(n).startswith("logprob") for n in names):
        raise CJEInputError(
            "The data has log-probability columns (logged data): these passes are for fresh "
            "draws; cje.analyze(..., engine='polars' or 'dask') runs logged data on its own passes.")
    _refuse_design(names)


def _text_in_numbers(name: str) -> str:
    """The fix for text in a numeric column out of core, which reads a column's type, not rows."""
    what = ("a word such as 'NA' marking unlabelled rows (leave them empty)" if name == "oracle_label"
            else "a word such as 'NA' marking a missing value (leave it empty)")
    return (f" Some row holds text: {what}, a decimal comma (7,5) or a second header line. "
            "engine='memory' names the first such row.")


def pl_check_types(schema: Any, numeric: Sequence[str]) -> None:
    """A LazyFrame's id columns hold strings or integers and its ``numeric`` columns numbers
    (each checked where present)."""
    import polars as pl

    for name in ("prompt_id", "policy"):
        if name in schema and not (schema[name] == pl.String or schema[name].is_integer()
                                   or schema[name] == pl.Categorical):
            raise CJEInputError(
                f"Out of core the {name!r} column must hold strings or integers; it is "
                f"{schema[name]}. Write the ids as text. " + _OR_MEMORY)
    for name in numeric:
        if name in schema and not (schema[name].is_numeric() or schema[name] == pl.Null):
            raise CJEInputError(f"The {name!r} column must be numeric; it is {schema[name]}."
                                + _text_in_numbers(name))


def dask_number(pdf: Any, name: str) -> Any:
    """A Dask partition's column as float64 (NaN when the column is absent); anything but
    numbers (or an all-missing column) is an input error."""
    import pandas as pd

    if name not in pdf:
        return np.nan
    col = pdf[name]
    if not (pd.api.types.is_numeric_dtype(col.dtype) or col.isna().all()):
        raise CJEInputError(f"The {name!r} column must be numeric; it is {col.dtype}."
                            + _text_in_numbers(name))
    # (widened bit for bit, unlike cje.data.decimal_float64: a file set's float32 columns were
    # read through their decimals where the partition was made, _decimal_floats; a Dask
    # DataFrame given by the user can reach one pass as float32 and another already widened,
    # dd.read_parquet fusing a mixed file set's projected partitions with pa.concat_tables,
    # so reading float32 through its decimals here would make the passes see different scores)
    return pd.to_numeric(col).astype("float64")


def pl_float64(schema: Any, name: str) -> Any:
    """``pl.col(name)`` as Float64, a Float32 column through its shortest decimal (as in
    memory: :func:`cje.data.decimal_float64`), so that a score stored as float32 in a Parquet
    file equals the same score written as text elsewhere."""
    import polars as pl

    col = pl.col(name)
    if schema[name] == pl.Float32:
        return col.cast(pl.String).cast(pl.Float64)
    return col.cast(pl.Float64)


def dask_row_keys(pdf: Any, out: Any, partition_info: Any) -> None:
    """``out``'s file number and row in the file: the reader's, else the partition's number and
    row numbers from 0."""
    if "__file" in pdf:
        out["__file"] = pdf["__file"].astype("int64")
        out["__row"] = pdf["__row"].astype("int64")
    else:
        out["__file"] = np.int64(partition_info["number"] if partition_info else 0)
        out["__row"] = np.arange(len(pdf), dtype=np.int64)


def judge_scale_of(distinct: np.ndarray, judge_scale: tuple[float, float] | None,
                   notices: list[str], n: int, counts: np.ndarray | None = None) -> tuple[float, float]:
    """The judge scale given (with :func:`cje.data.bottom_tenth`'s notice over the ``n`` scores),
    or inferred from the distinct scores with a notice (as :func:`cje.load` infers it; a marker
    value such as -1 refused as there, :func:`cje.data.refuse_sentinel`; ``counts``: rows per
    distinct score, for its message)."""
    if judge_scale is not None:
        bottom_tenth(int(n), float(distinct[0]), float(distinct[-1]), judge_scale, "judge scores",
                     "judge_scale", notices)
        return judge_scale
    refuse_sentinel(np.asarray(distinct, dtype=np.float64), "judge_score", "judge_scale", None,
                    np.zeros(len(distinct), dtype=np.int64) if counts is None else counts)
    jscale = infer_scale(distinct)
    _check_scale(jscale, "judge_scale")
    notices.append(
        f"judge_scale was not given; inferred ({jscale[0]:g}, {jscale[1]:g}) from the scores "
        f"(observed {distinct[0]:g} to {distinct[-1]:g}). Pass judge_scale=(low, high) to "
        "set it.")
    return jscale


def dask_compute(client: Any, objs: Sequence[Any], progress: bool | None, desc: str) -> list[Any]:
    """Compute on the given client (else Dask's current scheduler), with Dask's own progress
    bar when ``progress`` is true (``None``: on a terminal)."""
    import dask

    from cje._progress import stderr_is_tty

    show = progress or (progress is None and stderr_is_tty())
    if client is not None:
        futures = client.compute(list(objs))
        if show:
            from distributed import progress as dask_progress

            print(desc, file=sys.stderr)
            dask_progress(futures)
        return list(client.gather(futures))
    if show:
        from dask.diagnostics import ProgressBar

        print(desc, file=sys.stderr)
        with ProgressBar():
            return list(dask.compute(*objs))
    return list(dask.compute(*objs))


# ------------------------------------------------------------------------------------------------
# Engines: the same three queries on polars (streaming) and on Dask


def _id_names(columns: Any) -> list[str]:
    """The input's names of the id columns (``columns=`` maps standard names to the input's)."""
    return [(columns or {}).get(c, c) for c in ("prompt_id", "policy")]


def _polars_scan(path: Path, i: int, columns: Any = None) -> tuple[Any, str]:
    import polars as pl

    kind = SUFFIXES[path.suffix.lower()]
    if kind == "parquet":
        lf = pl.scan_parquet(path)
    elif kind == "csv":  # ids as the exact text written ("007" stays "007": folds hash the id)
        header = pl.scan_csv(path, n_rows=0).collect_schema().names()
        lf = pl.scan_csv(path, schema_overrides={c: pl.String for c in _id_names(columns)
                                                 if c in header})
        lf = _empty_csv_numbers(lf, columns)
    else:
        lf = pl.scan_ndjson(_jsonl_source(path))
    return lf.with_row_index("__row").with_columns(pl.lit(i, dtype=pl.Int64).alias("__file")), str(path)


def _number_columns(names: Sequence[str], columns: Any) -> list[tuple[str, str]]:
    """``(column, standard name)`` of the columns read as numbers (judge score, label, label
    probability, log-probabilities) among a file's ``names``, under ``columns=``'s renaming."""
    renamed = {theirs: std for std, theirs in (columns or {}).items()}
    out = [(c, renamed.get(c, c)) for c in names]
    return [(c, std) for c, std in out
            if std in ("judge_score", "oracle_label", "label_probability") or str(std).startswith("logprob")]


def _empty_csv_numbers(lf: Any, columns: Any) -> Any:
    """A CSV file's numeric columns (judge score, label, log-probabilities) that polars read as
    text because they are empty on every row (a file of unlabelled rows; a file with a header
    only), typed as empty (``Null``), as the in-memory and Dask readers read them; a column with
    any text stays text (refused with its fix). Only a text-typed numeric column costs a scan
    of that column."""
    import polars as pl

    schema = lf.collect_schema()
    text = [c for c, _ in _number_columns(schema.names(), columns) if schema[c] == pl.String]
    if not text:
        return lf
    counts = lf.select(pl.col(c).is_not_null().sum() for c in text).collect()
    empty = [c for c in text if counts[c][0] == 0]
    return lf.with_columns(pl.col(c).cast(pl.Null) for c in empty) if empty else lf


#: JSON Lines files that start with a byte-order mark, which polars' JSON reader rejects, are
#: streamed from their bytes without the mark (held in memory) up to this many bytes in all;
#: more are refused with the fix.
BOM_JSONL_BYTES = 256 * 2**20


def _starts_with_bom(path: Path) -> bool:
    """Whether the file starts with a UTF-8 byte-order mark."""
    from cje.readers import _BOM

    with open(path, "rb") as fh:
        return fh.read(len(_BOM)) == _BOM


def _check_bom_bytes(files: Sequence[Path]) -> None:
    """Refuse a file set whose JSON Lines files with a byte-order mark hold more than
    :data:`BOM_JSONL_BYTES` together (polars would hold them all in memory)."""
    bom = [p for p in files if SUFFIXES[p.suffix.lower()] == "jsonl" and _starts_with_bom(p)]
    total = sum(p.stat().st_size for p in bom)
    if total > BOM_JSONL_BYTES:
        raise CJEInputError(
            f"{len(bom)} JSON Lines file(s) start with a byte-order mark (the first: '{bom[0]}'), "
            f"which polars' JSON reader rejects: files with one are read without it up to "
            f"{BOM_JSONL_BYTES // 2**20} MiB in all, and these hold {total / 2**20:.0f} MiB. "
            "Remove the mark (re-save the files as UTF-8 without BOM), or use engine='dask'.")


def jsonl_probe(path: Path) -> Any:
    """What polars reads a JSON Lines file's schema from (its first rows): the path, or for a
    file that starts with a byte-order mark its first 1000 lines after the mark (whatever its
    size: every engine reads such a file, so its schema must be readable).

    Parameters
    ----------
    path : pathlib.Path
        A JSON Lines file.

    Returns
    -------
    pathlib.Path or io.BytesIO
    """
    import io
    import itertools

    if not _starts_with_bom(path):
        return path
    with open(path, "rb") as fh:
        head = b"".join(itertools.islice(fh, 1000))
    return io.BytesIO(head[3:])


def _jsonl_source(path: Path) -> Any:
    """What polars scans for a JSON Lines file: the path, or for a file that starts with a UTF-8
    byte-order mark (read in memory and by Dask) its bytes after the mark."""
    import io

    if not _starts_with_bom(path):
        return path
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > BOM_JSONL_BYTES:
            raise CJEInputError(
                f"'{path}' starts with a byte-order mark, which polars' JSON reader rejects "
                f"(files of at most {BOM_JSONL_BYTES // 2**20} MiB are read without it; this "
                f"one has {size / 2**20:.0f} MiB). Remove the mark (e.g. re-save the file as "
                "UTF-8 without BOM), or use engine='dask'.")
        fh.seek(3)  # past the mark
        return io.BytesIO(fh.read())


@dataclass
class _Checks:
    """What pass 1 found: counts and first rows (file × 2^40 + row) of each kind of bad row."""

    counts: dict[str, int]
    first: dict[str, int | None]


#: The row checks of pass 1: name, rule, fix (the texts of :mod:`cje.data`'s validators).
_RULES = {
    "pid": ("The 'prompt_id' column must be non-empty on every row",
            "Give each response the id of its prompt, or pass on_invalid='drop' to exclude such "
            "rows (they are counted in the report)."),
    "pid_space": ("Out of core, prompt ids must not start or end with whitespace (in memory "
                  "they are stripped and two ids that become equal are refused, which needs "
                  "every id at once)", "Strip the ids in the files."),
    "policy": ("The 'policy' column must name a policy on every row", "Fill it in, or drop the row."),
    "score": ("The 'judge_score' column must be finite",
              "Fix the value, or pass on_invalid='drop' to exclude such rows (they are counted in "
              "the report)."),
    "score_scale": ("", "Declare the scale the judge really uses, or fix the scores (values are "
                        "never clipped)."),
    "label": ("The 'oracle_label' column must be finite or empty",
              "Leave unlabelled rows empty (null/NaN)."),
}


class _Engine:
    """The queries of the passes, on one engine."""

    name = ""
    sources: list[str]
    notices: list[str]
    has_draw_idx: bool  # (not read out of core: repeated draws are numbered in memory only)
    dropped_by_policy: dict[str, int]  # (set by scan: rows dropped as invalid, by policy)

    def scan(self, judge_scale: tuple[float, float] | None, progress: bool | None
             ) -> tuple[_Checks, Any, Any]:
        """Pass 1: checks, rows per (policy, judge_score), labelled rows."""
        raise NotImplementedError

    def bad_row(self, key: int, column: str) -> tuple[Any, Any]:
        """The prompt id and the value of ``column`` in the row ``key``."""
        raise NotImplementedError

    same_score_rows: int = 0  # (set by prompt_totals: rows sharing a labelled row's key)

    def prompt_totals(self, lookup: dict[str, np.ndarray], policies: Sequence[str],
                      centres: np.ndarray, labelled: Any, progress: bool | None,
                      buckets: int = 1, label_keys: Any = None) -> Iterable[Any]:
        """Pass 2: per prompt, ``Σ (R − R̄) + b`` of each policy, then whether each has rows
        there (0/1) (frames of 2P columns, one per bucket of prompts), each with the sum over
        its prompts of every policy's squared ``Σ (s − s̄)`` (the naive judge means') and the
        sums of the prompt label-balance check (:func:`_prompt_sums`).
        ``labelled``: the labelled prompts' ids (a polars String Series), their ``b`` per
        policy (``b0``…) and each policy's labelled rows there (``l0``…). ``label_keys``: the
        labelled rows' (prompt, policy, judge score) keys (:meth:`label_keys`); the rows whose
        key is one of them are counted on the way, in :attr:`same_score_rows`."""
        raise NotImplementedError

    def label_keys(self, prompt_id: np.ndarray, policy: np.ndarray, score: np.ndarray,
                   policies: Sequence[str]) -> Any:
        """The distinct (prompt, policy, judge score) keys of the labelled rows, in the form the
        engine matches rows against (``policy``: codes into ``policies``)."""
        raise NotImplementedError

    # three more passes, made only when the notice of one response on several rows is given,
    # to name its example rows as the in-memory engine does
    def hit_prompts(self, keys: Any, policies: Sequence[str]) -> tuple[Any, np.ndarray]:
        """The hashes of the prompts with more than one row on some key of ``keys`` and the
        rows of each file (every row, dropped ones too)."""
        raise NotImplementedError

    def first_prompt(self, prompts: Any) -> str:
        """Of ``prompts`` (as :meth:`hit_prompts` gives them), the one whose first row (of the
        rows kept) comes first (the in-memory engine codes prompts by first appearance)."""
        raise NotImplementedError

    def prompt_key_rows(self, keys: Any, prompt: str, policies: Sequence[str]) -> Any:
        """The rows of ``prompt`` whose key is one of ``keys``: a pandas frame of ``policy``,
        ``judge_score`` and ``row`` (the row key)."""
        raise NotImplementedError


def _refuse_design(names: Sequence[Any]) -> None:
    """A ``label_probability`` column (labels sampled with known probabilities) is refused out of
    core, never ignored: the in-memory engine weights the labelled rows by it."""
    if "label_probability" in names:
        raise CJEInputError(
            "The data has a 'label_probability' column (labels sampled with known "
            "probabilities): out of core it is not supported yet, and ignoring it would give "
            "other numbers. " + _OR_MEMORY)


def _pl_columns(lf: Any, columns: Any, policy_default: str | None) -> tuple[Any, list[str]]:
    """The standard columns of a LazyFrame (renamed, typed); notices. Without a ``policy``
    column its rows' policy is ``policy_default`` (``None``: none, refused)."""
    import polars as pl

    if columns:
        check_renames(lf.collect_schema().names(), columns)
        lf = lf.rename({theirs: std for std, theirs in columns.items()})
    schema = lf.collect_schema()
    names = schema.names()
    notices: list[str] = []
    _direct_columns(names)
    pl_check_types(schema, ("judge_score", "oracle_label"))
    cols = [pl.col("prompt_id").cast(pl.String),
            pl.col("policy").cast(pl.String) if "policy" in names
            else pl.lit(policy_default, dtype=pl.String).alias("policy"),
            pl_float64(schema, "judge_score"),
            pl_float64(schema, "oracle_label") if "oracle_label" in names
            else pl.lit(None, dtype=pl.Float64).alias("oracle_label"),
            pl.col("__file"), pl.col("__row").cast(pl.Int64)]
    if "policy" not in names and policy_default is not None:
        notices.append("No 'policy' column: all rows were taken as one policy named 'default'.")
    return lf.select(cols), notices


def _pl_rowkey() -> Any:
    """A row's key (file number × 2^40 + row in the file), as ``row``."""
    import polars as pl

    return (pl.col("__file") * (1 << _ROW_BITS) + pl.col("__row")).alias("row")


def _pl_key() -> Any:
    """A 64-bit hash of a row's (prompt, policy, judge score) (the score + 0.0: -0.0 is 0.0,
    as the in-memory comparison has it). Two different keys share a hash with probability
    2^-64: over 10^7 rows and 10^6 labelled keys, one row miscounted with probability < 10^-6."""
    import polars as pl

    return pl.struct(pl.col("prompt_id"), pl.col("policy"),
                     (pl.col("judge_score") + 0.0).alias("judge_score")).hash(seed=0)


def _pl_invalid() -> tuple[Any, Any]:
    """Rows ``on_invalid="drop"`` drops: an empty prompt id; a non-finite judge score."""
    import polars as pl

    pid, s = pl.col("prompt_id"), pl.col("judge_score")
    return pid.is_null() | (pid.str.strip_chars() == ""), s.is_null() | ~s.is_finite()


def _pl_bad_exprs(judge_scale: tuple[float, float] | None, drop: bool) -> dict[str, Any]:
    """The row checks of pass 1 (with ``drop``, those :mod:`cje.data` makes after dropping the
    invalid rows look at the rows kept only, and the dropped rows are counted)."""
    import polars as pl

    pid, s, y = pl.col("prompt_id"), pl.col("judge_score"), pl.col("oracle_label")
    bad_pid, bad_s = _pl_invalid()
    kept = ~(bad_pid | bad_s) if drop else pl.lit(True)
    out = {
        "pid": bad_pid,
        "pid_space": pid.is_not_null() & (pid.str.strip_chars() != pid) & (pid.str.strip_chars() != ""),
        "policy": pl.col("policy").is_null() | (pl.col("policy") == ""),
        "score": bad_s,
        "score_only": bad_s & ~bad_pid,
        "label": y.is_infinite().fill_null(False) & kept,
    }
    if judge_scale is not None:
        out["score_scale"] = ((s < judge_scale[0]) | (s > judge_scale[1])).fill_null(False) & kept
    return out


class _PolarsEngine(_Engine):
    name = "polars"

    def __init__(self, frames: list[tuple[Any, str]], columns: Any, drop: bool = False):
        import polars as pl

        self.drop = drop
        parts: list[Any] = []
        notices: list[str] = []
        self.has_draw_idx = False
        # 'default' only when no file has a policy column: among files that have one, a
        # file without it has no policy on its rows (refused), as in memory and on Dask
        renamed = {theirs: std for std, theirs in (columns or {}).items()}
        any_policy = any("policy" in (renamed.get(c, c) for c in lf.collect_schema().names())
                         for lf, _ in frames)
        for lf, src in frames:
            with naming_file(src):
                q, notices = _pl_columns(lf, columns, None if any_policy else "default")
            parts.append(q)
            self.has_draw_idx |= "draw_idx" in lf.collect_schema().names()
        self.notices = notices
        self.sources = [src for _, src in frames]
        self.lf = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
        self._parts = parts
        if drop:  # the passes after the checks see the rows kept
            bad_pid, bad_s = _pl_invalid()
            self.lf = self.lf.filter(~(bad_pid | bad_s))

    def scan(self, judge_scale: tuple[float, float] | None, progress: bool | None
             ) -> tuple[_Checks, Any, Any]:
        import polars as pl

        bad = _pl_bad_exprs(judge_scale, self.drop)
        bad_pid, bad_s = _pl_invalid()
        self.dropped_by_policy = {}
        key = (pl.col("__file") * (1 << _ROW_BITS) + pl.col("__row"))
        checks = [e.sum().alias(f"n_{k}") for k, e in bad.items()] + [
            key.filter(e).min().alias(f"first_{k}") for k, e in bad.items()]
        lab = pl.col("oracle_label").is_not_null() & pl.col("oracle_label").is_not_nan()
        # pass 1 by batch of files: a progress bar, and each batch streamed by polars
        n = len(self._parts)
        step = max(1, n // 20)
        batches = [self._parts[i:i + step] for i in range(0, n, step)]
        counts_all: dict[str, int] = {k: 0 for k in bad}
        first_all: dict[str, int | None] = {k: None for k in bad}
        tables, labelled = [], []
        bar = progress_bar(progress, len(batches), desc="scan (polars)", unit="batch")
        try:
            for parts in batches:
                lf = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]
                kept = lf.filter(~(bad_pid | bad_s)) if self.drop else lf
                # (with drop: the rows dropped as invalid, by policy, for the dropped-rows gate)
                gone = ([lf.filter(bad_pid | bad_s).group_by("policy").agg(pl.len().alias("n"))]
                        if self.drop else [])
                c, t, lrows, *gone = pl.collect_all(
                    [lf.select(checks),
                     kept.group_by("policy", "judge_score").agg(pl.len().alias("n")),
                     kept.filter(lab).select("__file", "__row", "prompt_id", "policy",
                                             "judge_score", "oracle_label"), *gone],
                    engine="streaming")
                for g in gone:
                    for pol, m in zip(g["policy"].to_list(), g["n"].to_list(), strict=True):
                        if pol:
                            self.dropped_by_policy[pol] = self.dropped_by_policy.get(pol, 0) + int(m)
                for k in bad:
                    counts_all[k] += int(c[f"n_{k}"][0] or 0)
                    f = c[f"first_{k}"][0]
                    if f is not None and (first_all[k] is None or f < first_all[k]):
                        first_all[k] = int(f)
                tables.append(t)
                labelled.append(lrows)
                bar.update(1)
        finally:
            bar.close()
        counts = pl.concat(tables).group_by("policy", "judge_score").agg(pl.col("n").sum())
        lab_rows = pl.concat(labelled).sort("__file", "__row")  # kept in polars (Arrow strings)
        del labelled
        return _Checks(counts_all, first_all), counts.to_pandas(), lab_rows

    def bad_row(self, key: int, column: str) -> tuple[Any, Any]:
        import polars as pl

        f, r = divmod(key, 1 << _ROW_BITS)
        row = self._parts[f].filter(pl.col("__row") == r).select(
            pl.col("prompt_id").alias("__pid"), pl.col(column)).collect()
        return row["__pid"][0], row[column][0]

    def label_keys(self, prompt_id: np.ndarray, policy: np.ndarray, score: np.ndarray,
                   policies: Sequence[str]) -> Any:
        import polars as pl

        return pl.DataFrame({"prompt_id": pl.Series(prompt_id, dtype=pl.String),
                             "policy": pl.Series(np.asarray(policies, dtype=object)[policy],
                                                 dtype=pl.String),
                             "judge_score": score}).select(_pl_key().alias("k"))["k"].unique()

    def hit_prompts(self, keys: Any, policies: Sequence[str]) -> tuple[Any, np.ndarray]:
        import polars as pl

        every = pl.concat(self._parts, how="vertical_relaxed") if len(self._parts) > 1 else self._parts[0]
        hits, per_file = pl.collect_all([
            # (hashes only: a group-by of numbers, as many groups as labelled keys)
            self.lf.select(_pl_key().alias("k"), pl.col("prompt_id").hash(seed=0).alias("hp"))
            .filter(pl.col("k").is_in(keys.implode()))
            .group_by("k").agg(pl.len().alias("n"), pl.col("hp").first())
            .filter(pl.col("n") > 1).select(pl.col("hp").unique()),
            every.group_by("__file").agg(pl.len().alias("n"))], engine="streaming")
        sizes = np.zeros(len(self._parts), dtype=np.int64)
        sizes[per_file["__file"].to_numpy()] = per_file["n"].to_numpy()
        return hits["hp"], sizes

    def first_prompt(self, prompts: Any) -> str:
        import polars as pl

        first = (self.lf.filter(pl.col("prompt_id").hash(seed=0).is_in(prompts.implode()))
                 .select("prompt_id", _pl_rowkey()).bottom_k(1, by="row").collect(engine="streaming"))
        return str(first["prompt_id"][0])

    def prompt_key_rows(self, keys: Any, prompt: str, policies: Sequence[str]) -> Any:
        import polars as pl

        return (self.lf.filter(pl.col("prompt_id") == prompt).filter(_pl_key().is_in(keys.implode()))
                .select("policy", "judge_score", _pl_rowkey()).collect(engine="streaming").to_pandas())

    def prompt_totals(self, lookup: dict[str, np.ndarray], policies: Sequence[str],
                      centres: np.ndarray, labelled: Any, progress: bool | None,
                      buckets: int = 1, label_keys: Any = None) -> Iterator[Any]:
        import polars as pl

        s = pl.col("judge_score")
        keys = lookup["score"].tolist()
        r = s.replace_strict(keys, lookup["reward"].tolist(), return_dtype=pl.Float64)
        u = s.replace_strict(keys, lookup["s01"].tolist(), return_dtype=pl.Float64)
        P = len(policies)
        mine = [pl.col("policy") == name for name in policies]
        # each row centred on its policy's mean (as the in-memory influence values are): the
        # group-by sums the totals themselves, and the counts per policy are not needed for them
        cols = ([pl.when(m).then(r - centres[p, 0]).otherwise(0.0).alias(f"t{p}")
                 for p, m in enumerate(mine)]
                + [pl.when(m).then(u - centres[p, 1]).otherwise(0.0).alias(f"u{p}")
                   for p, m in enumerate(mine)]
                + [m.cast(pl.UInt32).alias(f"n{p}") for p, m in enumerate(mine)]
                + [pl.lit(0, dtype=pl.UInt32).alias(f"l{p}") for p in range(P)]
                # whether the row's (prompt, policy, score) is a labelled row's (0/1)
                + [(_pl_key().is_in(label_keys.implode()) if label_keys is not None else pl.lit(False))
                   .cast(pl.UInt32).alias("m")])
        # the labelled prompts' residual terms enter as extra rows of the group-by (no join):
        # b_p on t_p, each policy's labelled rows there on l_p, 0 elsewhere, and no presence
        # (their prompts have rows of their own)
        b = pl.DataFrame([labelled["prompt_id"].alias("prompt_id"),
                          *[pl.Series(f"t{p}", labelled[f"b{p}"], dtype=pl.Float64)
                            for p in range(P)]]).lazy().with_columns(
            *[pl.lit(0.0, dtype=pl.Float64).alias(f"u{p}") for p in range(P)],
            *[pl.lit(0, dtype=pl.UInt32).alias(f"n{p}") for p in range(P)],
            *[pl.Series(f"l{p}", labelled[f"l{p}"], dtype=pl.UInt32) for p in range(P)],
            pl.lit(0, dtype=pl.UInt32).alias("m"))
        src = pl.concat([self.lf.select(pl.col("prompt_id"), *cols), b])
        # sums of the totals, and each policy's rows per prompt (presence: more than 0; their
        # squares: the effective number of prompts, core.effective_prompts)
        agg = ([pl.col(f"t{p}").sum() for p in range(P)] + [pl.col(f"u{p}").sum() for p in range(P)]
               + [pl.col(f"n{p}").sum() for p in range(P)] + [pl.col(f"l{p}").sum() for p in range(P)]
               + [pl.col("m").sum()])
        out = [f"{c}{p}" for c in "tunl" for p in range(P)] + ["m"]
        self.same_score_rows = 0
        passes = min(buckets, MAX_POLARS_PASSES)
        bar = progress_bar(progress, passes, desc="per-prompt sums (polars)", unit="pass")
        try:
            for k in range(passes):  # prompts split by a hash: each group-by holds 1/passes
                lf = src if passes == 1 else src.filter(
                    pl.col("prompt_id").hash(seed=0) % passes == k)
                df = lf.group_by("prompt_id").agg(*agg).select(out).collect(engine="streaming")
                # u's sum of squares over the prompts (0 where a policy has no rows) and t, n
                usq = df.select([(pl.col(f"u{p}") ** 2).sum() for p in range(P)]).row(0)
                bal = _prompt_sums([df[f"u{p}"].to_numpy() for p in range(P)],
                                   [df[f"n{p}"].to_numpy() for p in range(P)],
                                   [df[f"l{p}"].to_numpy() for p in range(P)], centres[:, 1])
                self.same_score_rows += int(df["m"].sum())
                df = df.drop([f"{c}{p}" for c in "ul" for p in range(P)] + ["m"])
                # (consumed before the next group-by)
                yield df, np.array(usq, dtype=np.float64), bal
                del df
                bar.update(1)
        finally:
            bar.close()


class _DaskEngine(_Engine):
    name = "dask"

    def __init__(self, ddf: Any, sources: list[str], columns: Any, client: Any,
                 drop: bool = False):
        self.client = client
        self.drop = drop
        self.sources = sources
        names = list(ddf.columns)
        if columns:
            check_renames(names, columns)
            ddf = ddf.rename(columns={theirs: std for std, theirs in columns.items()})
            names = list(ddf.columns)
        _direct_columns(names)
        self.has_draw_idx = "draw_idx" in names
        self.notices = [] if "policy" in names else [
            "No 'policy' column: all rows were taken as one policy named 'default'."]
        self.raw = ddf  # renamed, not yet typed: the per-prompt pass reads only its columns
        self.ddf = ddf.map_partitions(_dask_standard, sources, meta=_dask_meta())
        self.kept = self.ddf.map_partitions(_dask_kept, meta=_dask_meta()) if drop else self.ddf

    def _compute(self, *objs: Any, progress: bool | None, desc: str) -> list[Any]:
        return dask_compute(self.client, objs, progress, desc)

    def scan(self, judge_scale: tuple[float, float] | None, progress: bool | None
             ) -> tuple[_Checks, Any, Any]:
        ddf = self.ddf
        flags = ddf.map_partitions(_dask_flags, judge_scale, self.drop,
                                   meta=_dask_flags_meta(judge_scale))
        kinds = [c[2:] for c in flags.columns if c.startswith("n_")]
        n_bad = flags[[f"n_{k}" for k in kinds]].sum()
        first = flags[[f"first_{k}" for k in kinds]].min()
        kept = self.kept
        counts = kept.groupby(["policy", "judge_score"]).size()
        lab = kept[kept["oracle_label"].notnull()][
            ["__file", "__row", "prompt_id", "policy", "judge_score", "oracle_label"]]
        # with drop: the rows dropped as invalid, by policy (the dropped-rows gate)
        gone = ([ddf.map_partitions(_dask_dropped, meta=_dask_meta()).groupby("policy").size()]
                if self.drop else [])
        n_bad, first, counts, lab, *gone = self._compute(n_bad, first, counts, lab, *gone,
                                                         progress=progress, desc="scan (dask)")
        self.dropped_by_policy = {str(k): int(v) for g in gone for k, v in g.items()
                                  if isinstance(k, str) and k and int(v)}
        cnt = {k: int(n_bad[f"n_{k}"]) for k in kinds}
        fst = {k: (None if not np.isfinite(first[f"first_{k}"]) else int(first[f"first_{k}"]))
               for k in kinds}
        counts = counts.rename("n").reset_index()
        lab = lab.sort_values(["__file", "__row"], kind="stable").reset_index(drop=True)
        release_arrow_memory()
        return _Checks(cnt, fst), counts, lab

    def label_keys(self, prompt_id: np.ndarray, policy: np.ndarray, score: np.ndarray,
                   policies: Sequence[str]) -> Any:
        import pandas as pd

        codes, prompts = pd.factorize(pd.Series(prompt_id, dtype=_ID_DTYPE))
        return _DaskKeys(np.unique(_key_hash(prompts, codes, policy, score)))

    def hit_prompts(self, keys: Any, policies: Sequence[str]) -> tuple[Any, np.ndarray]:
        import pandas as pd

        meta = pd.DataFrame({"h": pd.Series([], dtype="uint64"), "hp": pd.Series([], dtype="uint64")})
        found = self.kept.map_partitions(_dask_key_hashes, dask_delayed(keys.hashes, pure=True),
                                         list(policies), meta=meta)
        per_part = self.ddf["__file"].value_counts()
        found, per_file = self._compute(found, per_part, progress=False, desc="rows of one response")
        h = found["h"].to_numpy()
        uniq, counts = np.unique(h, return_counts=True)
        hit_prompts = np.unique(found["hp"].to_numpy()[_in_sorted(uniq[counts > 1], h)])
        sizes = np.zeros(max(len(self.sources), int(per_file.index.max()) + 1 if len(per_file) else 0),
                         dtype=np.int64)
        sizes[per_file.index.to_numpy(dtype=np.int64)] = per_file.to_numpy()
        return hit_prompts, sizes

    def first_prompt(self, prompts: Any) -> str:
        import pandas as pd

        meta = pd.DataFrame({"prompt_id": pd.Series([], dtype=_ID_DTYPE),
                             "row": pd.Series([], dtype="int64")})
        firsts = self.kept.map_partitions(_dask_first_row, dask_delayed(prompts, pure=True), meta=meta)
        (found,) = self._compute(firsts, progress=False, desc="first rows")
        return str(found["prompt_id"].iloc[int(np.argmin(found["row"].to_numpy()))])

    def prompt_key_rows(self, keys: Any, prompt: str, policies: Sequence[str]) -> Any:
        import pandas as pd

        meta = pd.DataFrame({"policy": pd.Series([], dtype=_ID_DTYPE),
                             "judge_score": pd.Series([], dtype="float64"),
                             "row": pd.Series([], dtype="int64")})
        mine = self.kept[self.kept["prompt_id"] == prompt]
        rows = mine.map_partitions(_dask_key_rows, dask_delayed(keys.hashes, pure=True),
                                   list(policies), meta=meta)
        (found,) = self._compute(rows, progress=False, desc="rows of one response")
        return found.reset_index(drop=True)

    def bad_row(self, key: int, column: str) -> tuple[Any, Any]:
        f, r = divmod(key, 1 << _ROW_BITS)
        part = self.ddf.get_partition(f).compute() if f < self.ddf.npartitions else None
        if part is None:  # pragma: no cover - the key comes from the partitions
            return None, None
        row = part[part["__row"] == r].iloc[0]
        return row["prompt_id"], row[column]

    def prompt_totals(self, lookup: dict[str, np.ndarray], policies: Sequence[str],
                      centres: np.ndarray, labelled: Any, progress: bool | None,
                      buckets: int = 1, label_keys: Any = None) -> Iterator[Any]:
        import dask.dataframe as dd
        import pandas as pd

        P = len(policies)
        out = [f"{c}{p}" for c in "tunl" for p in range(P)] + ["m"]
        meta = pd.DataFrame({"prompt_id": pd.Series([], dtype=_ID_DTYPE),
                             **{c: pd.Series([], dtype="float64" if c[0] not in "nlm" else "uint32")
                                for c in out}})
        # only the three columns this pass needs are read (the projection reaches the reader)
        raw = self.raw[[c for c in ("prompt_id", "policy", "judge_score") if c in self.raw.columns]]
        hashes = None if label_keys is None else dask_delayed(label_keys.hashes, pure=True)
        wide = raw.map_partitions(_dask_wide, lookup, list(policies), centres, self.drop, hashes,
                                  meta=meta)
        # the labelled prompts' residual terms enter as extra rows of the group-by (as in
        # polars: b_p on t_p, no u, no presence), in pieces: no join with a table of every
        # labelled prompt (measured: 0.14–0.27 s and ~0.29 GB at its peak per output partition
        # at 10^7 rows), and each piece goes to one worker, not the whole table to every one
        b = _b_rows(labelled, P)
        del labelled  # (the caller keeps no reference: the table above is the one copy)
        pieces = [b.iloc[i * len(b) // buckets:(i + 1) * len(b) // buckets]
                  for i in range(buckets)] if len(b) else [b]
        del b
        if self.client is not None:
            extra = dd.from_delayed(self.client.scatter(pieces, hash=False), meta=meta,
                                    verify_meta=False)
        else:
            extra = dd.from_delayed([dask_delayed(piece, pure=False) for piece in pieces], meta=meta,
                                    verify_meta=False)
        del pieces
        # split_out: the per-prompt table in several partitions, none of them whole; sums of the
        # centred values, presence as the largest 0/1 flag
        shuffle = shuffle_method(self.client)
        with shuffle_directory(shuffle) as graph_context:
            with graph_context():
                agg = dd.concat([wide, extra]).groupby("prompt_id", sort=False).agg(
                    {c: "sum" for c in out},
                    split_out=buckets * DASK_SPLIT_PER_GROUP_BY if buckets > 1 else 1, **shuffle)
                # each output partition comes back as numpy arrays alone (no ids, index or u)
                parts = [dask_delayed(_dask_arrays, pure=True)(part, P, centres[:, 1])
                         for part in agg.to_delayed()]
            del agg, wide  # (``extra`` holds the scattered pieces until the pass ends)
            self.same_score_rows = 0
            for *arrays, matched in self._partitions(parts, progress, "per-prompt sums (dask)"):
                self.same_score_rows += int(matched)
                yield tuple(arrays)
                del arrays
            del extra

    def _partitions(self, parts: list[Any], progress: bool | None, desc: str
                    ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Delayed results computed together, taken one by one, each released once taken
        (never all held at once in the driver: at 10^8 rows a copy of them all is 2.2 GB)."""
        if self.client is not None:
            futures = self.client.compute(parts)
            del parts
            if progress or (progress is None and _stderr_tty()):
                from distributed import progress as dask_progress

                print(desc, file=sys.stderr)
                dask_progress(futures)
            while futures:
                future = futures.pop(0)
                yield future.result()
                future.release()
                del future
        else:
            computed = list(self._compute(*parts, progress=progress, desc=desc))
            del parts
            while computed:
                yield computed.pop(0)
        release_arrow_memory()


def release_arrow_memory() -> None:
    """Hand back to the system the memory Arrow's allocator (mimalloc by default) keeps after
    it is freed (called at the end of each Dask task of the per-prompt pass and after the
    passes: at 10^7 rows it kept ~0.25 GB after the scan and ~0.45 GB after the per-prompt
    pass in an in-process cluster, measured; a call takes a few milliseconds). Does nothing
    when pyarrow is not imported."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


@contextmanager
def shuffle_directory(shuffle: dict[str, str]) -> Iterator[Any]:
    """For a disk shuffle, a directory of ours for its files, removed at the end (Dask removes
    its own only when the process ends: 0.3 GB at 10^7 rows of direct data, measured); yields
    the context in which to build the graph (Dask takes the directory from its configuration
    then)."""
    import dask

    if shuffle.get("shuffle_method") != "disk":
        yield nullcontext
        return
    tmp = tempfile.mkdtemp(prefix="cje-shuffle-", dir=dask.config.get("temporary_directory", None))
    try:
        yield lambda: dask.config.set({"temporary_directory": tmp})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def shuffle_method(client: Any) -> dict[str, str]:
    """The shuffle of the per-prompt group-by: the one set in Dask's configuration
    (``dataframe.shuffle.method``) when there is one; else ``"disk"`` on one machine (no
    client and no default distributed client: Dask's own default there; or a client — given,
    else the default one — of a ``LocalCluster``); else (a cluster possibly of other machines,
    where a shuffle through one machine's disk does not work) Dask's default, ``"p2p"``.
    Measured at 10^7 rows in an in-process cluster (whole analysis, peak RSS, 32
    output partitions): ``"disk"`` 0.87–0.90 GB, ``"p2p"`` 1.08–1.12 GB, ``"tasks"`` 1.08 GB
    (see :data:`DASK_SPLIT_PER_GROUP_BY`). Dask's disk shuffle writes through one machine's
    file system, so a cluster of several machines cannot use it."""
    import dask

    if dask.config.get("dataframe.shuffle.method", None):
        return {}
    if client is None:  # Dask computes on the default distributed client when there is one
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):  # none: Dask's local schedulers
            return {"shuffle_method": "disk"}
    from distributed import LocalCluster

    local = isinstance(getattr(client, "cluster", None), LocalCluster)
    return {"shuffle_method": "disk"} if local else {}


def dask_delayed(obj: Any, pure: bool = False) -> Any:
    """``dask.delayed`` (imported when used)."""
    import dask

    return dask.delayed(obj, pure=pure)


def _b_rows(labelled: dict[str, Any], n_policies: int) -> Any:
    """The labelled prompts' residual terms as rows of the per-prompt group-by: ``b_p`` on
    ``t_p``, each policy's labelled rows on the prompt on ``l_p``, 0 on ``u_p`` and on the
    presence flags ``n_p`` (their prompts have rows of their own)."""
    import pandas as pd

    ids = labelled["prompt_id"].to_arrow()
    P = n_policies
    zeros = np.zeros(len(ids))
    flags = np.zeros(len(ids), dtype=np.uint32)
    return pd.DataFrame({"prompt_id": pd.Series(pd.arrays.ArrowStringArray(ids)
                                                if len(ids) else [], dtype=_ID_DTYPE),
                         **{f"t{p}": np.asarray(labelled[f"b{p}"], dtype=np.float64)
                            for p in range(P)},
                         **{f"u{p}": zeros for p in range(P)},
                         **{f"n{p}": flags for p in range(P)},
                         **{f"l{p}": np.asarray(labelled[f"l{p}"], dtype=np.uint32)
                            for p in range(P)},
                         "m": flags})


def _prompt_sums(u: Sequence[np.ndarray], counts: Sequence[np.ndarray], lab: Sequence[np.ndarray],
                 centre: np.ndarray) -> np.ndarray:
    """:func:`~cje.diagnostics.gates.prompt_score_sums` of a chunk of the per-prompt group-by,
    from each policy's columns: every policy's judge scores on a prompt summed from the
    policies' centred totals ``u`` (``Σ s = u + c·n``), its rows, and each policy's rows and
    labelled rows there."""
    g = len(u[0]) if len(u) else 0
    score_sum, rows_all = np.zeros(g), np.zeros(g)
    for p in range(len(u)):
        n_p = np.asarray(counts[p], dtype=np.float64)
        score_sum += np.asarray(u[p], dtype=np.float64) + float(centre[p]) * n_p
        rows_all += n_p
    return prompt_score_sums(score_sum, rows_all, np.column_stack(counts) if g else np.zeros((0, len(u))),
                             np.column_stack(lab) if g else np.zeros((0, len(u))), centre)


def _dask_arrays(agg: Any, n_policies: int, centre: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """One output partition of the per-prompt group-by as ``(t, counts, usq, cross, bal)``: the
    influence totals ``t`` (prompts × policies), each policy's rows on each prompt (0: none),
    each policy's sum over these prompts of its squared naive judge-mean total ``u``,
    ``Σ_g c_a,g·c_b,g`` of the policies' rows per prompt (policies × policies), and the sums of
    the prompt label-balance check (:func:`_prompt_sums`; ``centre``: each policy's mean judge
    score, 0–1); last the rows whose (prompt, policy, judge score) is a labelled row's."""
    P = n_policies
    t = np.column_stack([agg[f"t{p}"].to_numpy(dtype=np.float64) for p in range(P)]) \
        if len(agg) else np.zeros((0, P))
    counts = np.column_stack([agg[f"n{p}"].to_numpy(dtype=np.float64) for p in range(P)]) \
        if len(agg) else np.zeros((0, P))
    u = [agg[f"u{p}"].to_numpy(dtype=np.float64) for p in range(P)]
    usq = np.array([float(np.square(x).sum()) for x in u])
    bal = _prompt_sums(u, [counts[:, p] for p in range(P)],
                       [agg[f"l{p}"].to_numpy(dtype=np.float64) for p in range(P)], centre)
    cross = counts.T @ counts
    release_arrow_memory()
    m = int(agg["m"].to_numpy(dtype=np.int64).sum()) if len(agg) else 0
    return t, counts.astype(np.uint32), usq, cross, bal, m


#: Ids in Dask partitions: Arrow strings (object arrays of Python str are 3-5 times slower to
#: hash and take more memory).
_ID_DTYPE = "string[pyarrow]"


def _stderr_tty() -> bool:
    from cje._progress import stderr_is_tty

    return stderr_is_tty()


def _dask_meta() -> Any:
    import pandas as pd

    return pd.DataFrame({"prompt_id": pd.Series([], dtype=_ID_DTYPE),
                         "policy": pd.Series([], dtype=_ID_DTYPE),
                         "judge_score": pd.Series([], dtype="float64"),
                         "oracle_label": pd.Series([], dtype="float64"),
                         "__file": pd.Series([], dtype="int64"),
                         "__row": pd.Series([], dtype="int64")})


def _dask_ids(col: Any, name: str) -> Any:
    import pandas as pd

    if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        raise CJEInputError(
            f"Out of core the {name!r} column must hold strings or integers; it is {col.dtype}. "
            "Write the ids as text. " + _OR_MEMORY)
    if pd.api.types.is_integer_dtype(col.dtype):
        return col.astype(str).astype(_ID_DTYPE)
    return col.astype(_ID_DTYPE)


def _dask_standard(pdf: Any, sources: Sequence[str] = (), partition_info: Any = None) -> Any:
    """One partition's standard columns, with its number and row numbers when the reader did
    not add them; an input error names the partition's file (``sources``)."""
    with naming_file(_partition_source(pdf, sources, partition_info)):
        return _dask_standard_columns(pdf, partition_info)


def _partition_source(pdf: Any, sources: Sequence[str], partition_info: Any) -> str:
    """The file (or description) of a Dask partition, for messages."""
    if "__file" in pdf and len(pdf):
        i = int(pdf["__file"].iloc[0])
    else:
        i = partition_info["number"] if partition_info else 0
    return sources[i] if 0 <= i < len(sources) else f"partition {i}"


def _dask_standard_columns(pdf: Any, partition_info: Any = None) -> Any:
    import pandas as pd

    out = pd.DataFrame(index=pdf.index)
    out["prompt_id"] = _dask_ids(pdf["prompt_id"], "prompt_id")
    out["policy"] = _dask_ids(pdf["policy"], "policy") if "policy" in pdf else pd.Series(
        "default", index=pdf.index, dtype=_ID_DTYPE)
    for name in ("judge_score", "oracle_label"):
        out[name] = dask_number(pdf, name)
    dask_row_keys(pdf, out, partition_info)
    return out.reset_index(drop=True)


def _dask_flags_meta(judge_scale: Any) -> Any:
    import pandas as pd

    kinds = ["pid", "pid_space", "policy", "score", "score_only", "label"] + (
        ["score_scale"] if judge_scale is not None else [])
    return pd.DataFrame({**{f"n_{k}": pd.Series([], dtype="int64") for k in kinds},
                         **{f"first_{k}": pd.Series([], dtype="float64") for k in kinds}})


def _dask_invalid(pdf: Any) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``on_invalid="drop"`` drops: an empty prompt id; a non-finite judge score."""
    empty = (pdf["prompt_id"].str.strip() == "").to_numpy(dtype=bool, na_value=True)
    return empty, ~np.isfinite(pdf["judge_score"].to_numpy())


def _dask_kept(pdf: Any) -> Any:
    """The partition's rows ``on_invalid="drop"`` keeps."""
    bad_pid, bad_s = _dask_invalid(pdf)
    return pdf[~(bad_pid | bad_s)]


def _dask_dropped(pdf: Any) -> Any:
    """The partition's rows ``on_invalid="drop"`` drops."""
    bad_pid, bad_s = _dask_invalid(pdf)
    return pdf[bad_pid | bad_s]


def _dask_flags(pdf: Any, judge_scale: Any, drop: bool = False) -> Any:
    """One partition's bad-row counts and first bad row keys (one row); see
    :func:`_pl_bad_exprs`."""
    import pandas as pd

    pid = pdf["prompt_id"]
    stripped = pid.str.strip()
    s = pdf["judge_score"].to_numpy()
    y = pdf["oracle_label"].to_numpy()
    empty, bad_s = _dask_invalid(pdf)
    kept = ~(empty | bad_s) if drop else np.ones(len(pdf), dtype=bool)
    pol = pdf["policy"]
    bad = {
        "pid": empty,
        "pid_space": (stripped != pid).to_numpy(dtype=bool, na_value=False) & ~empty,
        "policy": (pol == "").to_numpy(dtype=bool, na_value=True),
        "score": bad_s,
        "score_only": bad_s & ~empty,
        "label": np.isinf(y) & kept,
    }
    if judge_scale is not None:
        with np.errstate(invalid="ignore"):
            bad["score_scale"] = ((s < judge_scale[0]) | (s > judge_scale[1])) & kept
    key = pdf["__file"].to_numpy() * (1 << _ROW_BITS) + pdf["__row"].to_numpy()
    row: dict[str, list[Any]] = {f"n_{k}": [int(b.sum())] for k, b in bad.items()}
    row.update({f"first_{k}": [float(key[b].min()) if b.any() else np.inf] for k, b in bad.items()})
    return pd.DataFrame(row)


def _prompt_hash(prompts: Any) -> np.ndarray:
    """A 64-bit hash of each prompt id."""
    import pandas as pd

    return pd.util.hash_pandas_object(pd.Series(prompts, dtype=_ID_DTYPE), index=False).to_numpy()


def _in_sorted(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in the sorted array ``table``."""
    if not table.size or not values.size:
        return np.zeros(values.size, dtype=bool)
    at = np.minimum(np.searchsorted(table, values), table.size - 1)
    return table[at] == values


def _key_hash(prompts: Any, codes: np.ndarray, policy: np.ndarray, score: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's (prompt, policy, judge score): ``prompts`` the distinct ids,
    ``codes`` each row's among them, ``policy`` each row's policy code (the score + 0.0: -0.0 is
    0.0, as the in-memory comparison has it). Two different keys share a hash with probability
    2^-64: over 10^7 rows and 10^6 labelled keys, one row miscounted with probability < 10^-6."""
    import pandas as pd

    hp = _prompt_hash(prompts)
    return pd.util.hash_pandas_object(pd.DataFrame({
        "p": hp[np.asarray(codes, dtype=np.int64)], "c": np.asarray(policy, dtype=np.int64),
        "s": np.asarray(score, dtype=np.float64) + 0.0}), index=False).to_numpy()


def _dask_first_row(pdf: Any, prompts: np.ndarray) -> Any:
    """A partition's first row (its ``prompt_id`` and row key) among those whose prompt's hash
    is in the sorted ``prompts``; no row when there is none."""
    import pandas as pd

    codes, uniq = pd.factorize(pdf["prompt_id"])
    mine = _in_sorted(prompts, _prompt_hash(uniq))[codes] if len(pdf) else np.zeros(0, dtype=bool)
    at = np.flatnonzero(mine)[:1]  # (rows of a partition come in input order)
    row = (pdf["__file"].to_numpy(dtype=np.int64)[at] << _ROW_BITS) + pdf["__row"].to_numpy(
        dtype=np.int64)[at]
    return pd.DataFrame({"prompt_id": pdf["prompt_id"].iloc[at].reset_index(drop=True), "row": row})


def _dask_matched(pdf: Any, keys: np.ndarray, policies: list[str]) -> tuple[np.ndarray, np.ndarray, Any, Any]:
    """Which rows of a partition have a (prompt, policy, judge score) hash among the sorted
    ``keys``: that mask, the rows' hashes, and the prompts' codes and distinct ids."""
    import pandas as pd

    codes, uniq = pd.factorize(pdf["prompt_id"])
    pol_codes, pol_names = pd.factorize(pdf["policy"])
    where = {name: p for p, name in enumerate(policies)}
    pol = np.array([where.get(x, -1) for x in pol_names], dtype=np.int64)[pol_codes]
    s = pdf["judge_score"].to_numpy(dtype=np.float64)
    h = _key_hash(uniq, codes, pol, s) if len(pdf) else np.zeros(0, dtype=np.uint64)
    return _in_sorted(keys, h), h, codes, uniq


def _dask_key_hashes(pdf: Any, keys: np.ndarray, policies: list[str]) -> Any:
    """The key hash ``h`` and prompt hash ``hp`` of a partition's rows whose key is a labelled
    row's (hashes only: no ids)."""
    import pandas as pd

    hit, h, codes, uniq = _dask_matched(pdf, keys, policies)
    hp = _prompt_hash(uniq)[codes[hit]] if len(pdf) else np.zeros(0, dtype=np.uint64)
    return pd.DataFrame({"h": h[hit], "hp": hp})


def _dask_key_rows(pdf: Any, keys: np.ndarray, policies: list[str]) -> Any:
    """A partition's rows whose key is a labelled row's: ``policy``, ``judge_score``, ``row``."""
    import pandas as pd

    hit = _dask_matched(pdf, keys, policies)[0]
    row = (pdf["__file"].to_numpy(dtype=np.int64) << _ROW_BITS) + pdf["__row"].to_numpy(dtype=np.int64)
    return pd.DataFrame({"policy": pdf["policy"].to_numpy()[hit],
                         "judge_score": pdf["judge_score"].to_numpy(dtype=np.float64)[hit],
                         "row": row[hit]}).astype({"policy": _ID_DTYPE})


def _dask_wide(pdf: Any, lookup: dict[str, np.ndarray], policies: list[str],
               centres: np.ndarray, drop: bool = False, keys: np.ndarray | None = None) -> Any:
    """Per prompt of the partition: per policy the sums of the calibrated reward and of the
    [0, 1] judge score over its rows, each centred on the policy's means (``centres``), its rows
    there, and 0 labelled rows (the labelled rows' counts come as extra rows, :func:`_b_rows`) —
    the partition's share of Dask's group-by.

    ``pdf`` holds the input's ``prompt_id``, ``judge_score`` and (when it has one) ``policy``
    columns as read (typed here; the scan has checked every row, and with ``drop`` the rows it
    drops are dropped here too). Each sum is one ``bincount`` over the key prompt × policy: no
    frame of the standard columns, no copy of the rows per policy."""
    import pandas as pd

    P = len(policies)
    pid = _dask_ids(pdf["prompt_id"], "prompt_id")
    s = dask_number(pdf, "judge_score").to_numpy()
    if "policy" in pdf:
        pol_codes, pol_names = pd.factorize(_dask_ids(pdf["policy"], "policy"))
        where = {name: p for p, name in enumerate(policies)}
        pol = np.array([where.get(x, -1) for x in pol_names], dtype=np.int64)[pol_codes]
    else:
        pol = np.zeros(len(pdf), dtype=np.int64)
    if drop:  # (a policy seen only on dropped rows is not among ``policies``)
        empty = (pid.str.strip() == "").to_numpy(dtype=bool, na_value=True)
        keep = ~empty & np.isfinite(s) & (pol >= 0)
        pid, s, pol = pid[keep], s[keep], pol[keep]
    codes, prompts = pd.factorize(pid)  # (ids are never missing here)
    del pid
    g = len(prompts)
    # each row's (policy, distinct score) cell, and its centred values from a table of the cells
    # (the same subtraction as row by row, made once per cell)
    D = lookup["score"].size
    # (the distinct scores are sorted, and every row's score is among them: the scan found them)
    cell = pol * D + np.searchsorted(lookup["score"], s)
    # rows whose (prompt, policy, score) is a labelled row's (``keys``: their sorted hashes)
    m = np.zeros(g, dtype=np.uint32)
    if keys is not None and keys.size and s.size:
        m = np.bincount(codes, weights=_in_sorted(keys, _key_hash(prompts, codes, pol, s)),
                        minlength=g).astype(np.uint32)
    del s
    key = codes.astype(np.int64) * P + pol
    del codes, pol
    t = np.bincount(key, weights=(lookup["reward"][None, :] - centres[:, :1]).ravel()[cell],
                    minlength=g * P).reshape(g, P)
    u = np.bincount(key, weights=(lookup["s01"][None, :] - centres[:, 1:]).ravel()[cell],
                    minlength=g * P).reshape(g, P)
    del cell
    n = np.bincount(key, minlength=g * P).reshape(g, P)  # rows per prompt and policy
    del key
    release_arrow_memory()
    return pd.DataFrame({"prompt_id": pd.Series(prompts, dtype=_ID_DTYPE),
                         **{f"t{p}": t[:, p] for p in range(P)},
                         **{f"u{p}": u[:, p] for p in range(P)},
                         **{f"n{p}": n[:, p].astype(np.uint32) for p in range(P)},
                         **{f"l{p}": np.zeros(g, dtype=np.uint32) for p in range(P)},
                         "m": m})


def _file_columns(files: Sequence[Path]) -> list[str]:
    """The columns of all the files, in order of first appearance, read from their schemas (a
    Dask DataFrame takes its columns from its first partition: a column the first file lacks
    would be dropped from every partition, e.g. a target's log-probabilities)."""
    import polars as pl

    out: dict[str, None] = {}
    for path in files:
        kind = SUFFIXES[path.suffix.lower()]
        lf = (pl.scan_parquet(path) if kind == "parquet" else
              pl.scan_csv(path, n_rows=0) if kind == "csv" else pl.scan_ndjson(jsonl_probe(path)))
        out.update(dict.fromkeys(lf.collect_schema().names()))
    return list(out)


def _dask_read(arg: tuple[int, str, str, list[str], list[str]], columns: Any = None) -> Any:
    """One file as one Dask partition, with every file's columns (``names``; one this file lacks
    is empty on its rows), its number and row numbers; ids as the exact text written (``"007"``
    stays ``"007"``, ``"NA"`` is an id, not a missing value).

    ``columns``: only these (Dask passes the columns a query uses: a Parquet file is read for
    them alone)."""
    import pandas as pd

    i, path, kind, ids, names = arg
    if kind == "parquet":
        if columns is None:
            pdf = pd.read_parquet(path)
        else:
            import pyarrow.parquet as pq

            have = set(pq.read_schema(path).names)
            pdf = pd.read_parquet(path, columns=[c for c in columns if c in have])
    elif kind == "parquet-schema":  # no rows: the partitions' meta
        import pyarrow.parquet as pq

        pdf = pq.read_schema(path).empty_table().to_pandas()
    elif kind == "csv":
        header = pd.read_csv(path, nrows=0).columns
        pdf = pd.read_csv(path, dtype={c: str for c in ids if c in header},
                          keep_default_na=False,
                          # missing: what the in-memory reader reads as missing (a word such
                          # as 'NA' or 'null' in a number column is refused there, and here)
                          na_values={c: ["", "nan", "NaN"] for c in header if c not in ids})
        for c in ids:  # an empty id is missing (refused), as in memory
            if c in pdf:
                pdf[c] = pdf[c].replace("", None)
    else:
        # pandas reads a boolean among numbers as 1/0, where the in-memory reader refuses the
        # line: a file with a JSON boolean gets that reader's check first (a byte scan decides)
        if _has_json_boolean(path):
            from cje.readers import _diagnose_jsonl

            _diagnose_jsonl(Path(path), ids)
        # precise_float: the default parser rounds the last bit of some decimals (0.35), which
        # moves a score across a histogram edge (the judge-score affinity)
        # (utf-8-sig: a leading byte-order mark is dropped, as in memory)
        pdf = pd.read_json(path, lines=True, dtype={c: str for c in ids}, precise_float=True,
                           encoding="utf-8-sig")
    if kind.startswith("parquet"):
        _decimal_floats(pdf)
    for c in names:
        if c not in pdf:
            pdf[c] = pd.Series(None, index=pdf.index, dtype=_ID_DTYPE) if c in ids else np.nan
    if columns is not None:
        names = [c for c in names if c in columns]
    pdf = pdf[[*names, *(c for c in pdf.columns if c not in names and (
        columns is None or c in columns))]]
    if columns is None or "__file" in columns:
        pdf["__file"] = np.int64(i)
    if columns is None or "__row" in columns:
        pdf["__row"] = np.arange(len(pdf), dtype=np.int64)
    return pdf if columns is None else pdf[list(columns)]


def _decimal_floats(pdf: Any) -> None:
    """A Parquet file's partition (changed in place) with its narrow float columns (float32,
    float16) as float64 through their shortest decimals (:func:`cje.data.decimal_float64`, as
    in memory and on polars, :func:`pl_float64`), here where the partition is first made, so
    that every pass sees the same float64 scores (the scan's partition and the per-prompt
    pass's projection of it alike): a file set mixing float32 and float64 files then reads 0.35
    as one score, not two (:func:`dask_number` widens whatever reaches it bit for bit)."""
    for c in pdf.columns:
        dtype = pdf[c].dtype
        if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize < 8:
            pdf[c] = decimal_float64(pdf[c].to_numpy())


def _has_json_boolean(path: str) -> bool:
    """Whether a JSON Lines file may hold a boolean value (``: true`` / ``: false`` outside a
    string, or inside one: a false alarm only costs the line check). A byte scan."""
    import mmap

    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            return False
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            return re.search(rb":\s*(?:true|false)\b", data) is not None


def _make_engine(data: Any, engine: str, columns: Any, client: Any, drop: bool = False
                 ) -> _Engine:
    files = out_of_core_files(data, engine)
    if engine == "polars":
        return _PolarsEngine(polars_inputs(data, files, columns), columns, drop)
    ddf, sources = dask_inputs(data, files, columns)
    return _DaskEngine(ddf, sources, columns, client, drop)


# ------------------------------------------------------------------------------------------------
# The shape: per-prompt totals instead of rows


class PartitionedShape:
    """The direct data shape of :mod:`cje.pipeline.core` on sufficient statistics.

    The calibrator's table holds only the labelled rows; the policies' rows are summarised by
    the rows per (policy, distinct judge score) — every point estimate and jackknife replicate
    follows from them — and by the per-prompt totals of the full fit's influence values, which
    :meth:`run` hands to the skeleton as one value per prompt (:attr:`PolicyRows.n_rows` holds
    the policy's rows).
    """

    share_over_se2 = False

    def __init__(self, *, names: Sequence[str], table: Table, lab_policy: np.ndarray,
                 distinct: np.ndarray, counts: np.ndarray, judge_scale: tuple[float, float],
                 label_scale: tuple[float, float], labelled_scores: np.ndarray,
                 estimator: DirectEstimator):
        self.names: Sequence[str] = tuple(names)
        self.table = table
        self.judge_scale, self.label_scale = judge_scale, label_scale
        self.labelled_scores = labelled_scores
        self.estimator = estimator
        self.probe_names: Sequence[str] = []
        self.distinct = distinct  # judge scores, user's scale
        self.distinct01 = to_unit(distinct, judge_scale)
        self.counts = counts  # (P, D) rows per policy and distinct score
        self.n = counts.sum(axis=1)
        self.lab_policy = lab_policy  # policy of each labelled row (-1: none)
        P = len(self.names)
        inside = lab_policy >= 0
        self._train_inside = np.flatnonzero(inside)
        self._group_train = lab_policy[inside]
        self._m = np.bincount(self._group_train, minlength=P).astype(np.int64)
        # after the per-prompt pass: per policy, its prompts' influence totals (in chunks)
        self._totals: list[list[np.ndarray]] = []
        self.present: np.ndarray | None = None  # (G, P): the policy has rows on the prompt
        self.n_clusters = 0
        self.naive: list[tuple[float, float, float]] = []

    @property
    def policy_prompts(self) -> int:
        """Every prompt code is a policy's own (no probe slices out of core): the policies'
        prompt sets are compared over all of them (:func:`cje.pipeline.core.prompt_set_message`)."""
        return self.n_clusters

    # the numbers every pass needs ---------------------------------------------------------------
    def _residual_means(self, oof: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each labelled row's residual ``e`` and each policy's mean residual ``ē``."""
        t = self.table
        e = (t.y[t.train] - oof)[self._train_inside]
        P = len(self.names)
        mean_e = np.divide(np.bincount(self._group_train, weights=e, minlength=P), self._m,
                           out=np.zeros(P), where=self._m > 0)
        return e, mean_e

    def plug_in(self, reward: np.ndarray) -> np.ndarray:
        """Each policy's calibrated mean ``R̄``."""
        return (self.counts @ reward) / np.maximum(self.n, 1)

    def values(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        """The point estimates under the calibration without ``deleted`` (the jackknife)."""
        calib = calibrator.calibration(deleted)
        values = self.plug_in(calib.predict(self.distinct01, None))
        if self.estimator.augment:
            values = values + self._residual_means(calib.oof)[1]
        return values

    def labelled_terms(self, calibrator: RewardCalibrator) -> tuple[np.ndarray, np.ndarray]:
        """The residual term of the influence values, ``(n/m)(e_i − ē)``, per labelled row of
        some policy, and those rows' indices in the table (zeros without augmentation)."""
        calib = calibrator.calibration(frozenset())
        e, mean_e = self._residual_means(calib.oof)
        if not self.estimator.augment:
            return np.zeros(e.size), self._train_inside
        inv_p = np.divide(self.n, self._m, out=np.zeros(len(self.names)), where=self._m > 0)
        g = self._group_train
        return (e - mean_e[g]) * inv_p[g], self._train_inside

    def set_totals(self, chunks: Iterable[tuple[Any, ...]], alpha: float,
                   centres: np.ndarray) -> int:
        """The per-prompt pass's result in chunks of prompts: a polars frame of
        ``[t_p…, n_p…]`` per prompt (or, from Dask, the numpy arrays ``t`` and
        ``counts``, prompts × policies) and each policy's sum over the chunk's prompts of the
        squared naive judge-mean totals ``u`` (the engine sums them: no ``u`` reaches the
        driver), last the chunk's sums of the prompt label-balance check (:func:`_prompt_sums`,
        added up here). Keeps each policy's influence totals ``t`` on the prompts it has rows on
        and where each policy is present; returns the rows that repeat a (prompt, policy)."""
        P = len(self.names)
        parts: list[list[np.ndarray]] = [[] for _ in range(P)]
        # each policy's rows on its prompts, by chunk; for a chunk where it has one row on each
        # prompt only their number (no memory for the usual one row per prompt)
        rows_parts: list[list[np.ndarray | int]] = [[] for _ in range(P)]
        present_parts = []
        u_squares = np.zeros(P)
        sizes_cross = np.zeros((P, P))  # Σ_g c_a,g·c_b,g of the policies' rows per prompt
        self.prompt_sums = np.zeros((P, 9))  # gates.prompt_score_sums, over every chunk
        for chunk in chunks:  # each chunk to numpy blocks as it comes: the frames are not kept
            self.prompt_sums += chunk[-1]
            if len(chunk) == 3:  # polars: a frame
                c, usq, _ = chunk
                cols = list(c.columns)
                counts = np.asarray(c[cols[P:]].to_numpy(), dtype=np.float64)
                present = counts > 0
                sizes_cross += counts.T @ counts
                for p in range(P):
                    parts[p].append(np.asarray(c[cols[p]].to_numpy(), dtype=np.float64)[present[:, p]])
                del c
            else:  # Dask: numpy arrays
                t, counts, usq, cross, _ = chunk
                present = counts > 0
                sizes_cross += cross
                for p in range(P):
                    parts[p].append(t[present[:, p], p])
                del t
            for p in range(P):  # (a chunk's rows per prompt kept only where some prompt repeats)
                mine = counts[present[:, p], p]
                rows_parts[p].append(mine.astype(np.uint32) if mine.size and mine.max() > 1
                                     else int(mine.size))
            del counts
            present_parts.append(present)
            u_squares += usq
            del chunk
        self.centres = np.asarray(centres[:, 1], dtype=np.float64)  # (the prompt sums' centres)
        self.present = present_parts[0] if len(present_parts) == 1 else np.concatenate(present_parts)
        self.prompt_sizes_cross = sizes_cross  # (read by the contrasts; diagonal: the levels')
        del present_parts
        self._totals = parts
        # each policy's rows per prompt in the order of its totals (None: one row on each)
        self._prompt_rows: list[np.ndarray | None] = []
        for pieces in rows_parts:
            if all(isinstance(x, int) for x in pieces):
                self._prompt_rows.append(None)
            else:
                self._prompt_rows.append(np.concatenate(
                    [np.ones(x, dtype=np.uint32) if isinstance(x, int) else x for x in pieces]))
        del rows_parts
        self.n_clusters = self.present.shape[0]
        self.naive = []
        for p in range(P):
            mean = float(centres[p, 1])
            # cluster_variance of u over the policy's prompts, one total each: G/(G−1)·Σu²/n²
            g = int(self.present[:, p].sum())
            v = g / (g - 1) * u_squares[p] / float(self.n[p]) ** 2 if g > 1 else float("nan")
            lo, hi = t_interval(mean, float(np.sqrt(v)) if g > 1 else 0.0, max(g - 1, 1), alpha)
            self.naive.append((from_unit(mean, self.label_scale), from_unit(lo, self.label_scale),
                               from_unit(hi, self.label_scale)))
        return int(self.n.sum()) - int(self.present.sum())

    # the Shape protocol -------------------------------------------------------------------------
    def run(self, calibrator: RewardCalibrator,
            deleted: frozenset[int]) -> list[tuple[PolicyValue, float]]:
        """Every policy's estimate and its per-prompt influence totals (full calibration)."""
        assert not deleted and self.present is not None
        values = self.values(calibrator, deleted)
        self._own = self.own_cross = None
        if getattr(self.estimator, "augment", False):  # the residual part's own factor and df
            part, idx = self.labelled_terms(calibrator)
            self._own = own_part_sums(part, self._group_train, self.table.cluster[idx], self.n,
                                      len(self.names))
            # the parts of two policies prompt by prompt: they cancel in a paired contrast
            self.own_cross = own_part_cross(part, self._group_train, self.table.cluster[idx],
                                            self.n, len(self.names))
        out = []
        for p, parts in enumerate(self._totals):  # one array per policy, joined once
            if len(parts) > 1:
                parts[:] = [np.concatenate(parts)]
            out.append((PolicyValue(float(values[p]), parts[0]), 0.0))
        return out

    def gap_influence(self) -> dict[int, tuple[float, np.ndarray]]:
        """No transport gaps in direct mode."""
        return {}

    def probe_rows(self) -> list[np.ndarray]:
        """No probe slices out of core."""
        return []

    def probe_residuals(self, calibrator: RewardCalibrator) -> list[np.ndarray]:
        """No probe slices out of core."""
        return []

    def policy(self, p: int, value: PolicyValue, gap: float) -> PolicyRows:
        """Policy ``p``: its prompts (one influence total each) and rows, and the gate on its
        own residual correction (:func:`~cje.pipeline.core.own_label_gate`, as in memory)."""
        assert self.present is not None
        n_own = int(self._m[p])
        status, reasons, alone = "OK", [], False
        if getattr(self.estimator, "augment", False) and n_own:
            own = self.table.cluster[self._train_inside][self._group_train == p]
            status, reasons, alone = own_label_gate(n_own, bool(own.min() == own.max()))
        diagnostics: dict[str, Any] = {}
        if n_own >= 2 and getattr(self.estimator, "augment", False):
            # uniform labels, as the residual correction assumes? (no label_probability here)
            mine = self._train_inside[self._group_train == p]
            d, z, mean_all = label_balance_of_counts(self.labelled_scores[mine],
                                                     self.table.cluster[mine], self.distinct,
                                                     self.counts[p])
            # and their prompts' mean judge score over every policy's rows (the engine's sums)
            lo, hi = self.judge_scale
            dp, zp, mp = prompt_balance(self.prompt_sums[p], int(self.n[p]), float(self.centres[p]))
            diagnostics, why = label_balance_gate(d, z, mean_all,
                                                  prompt=((hi - lo) * dp, zp, lo + (hi - lo) * mp))
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        own = (0.0, 0.0, 0.0)
        if n_own and getattr(self, "_own", None) is not None:
            own = tuple(float(x[p]) for x in self._own)
        return PolicyRows(cluster=np.flatnonzero(self.present[:, p]), n_labels=n_own,
                          method=self.estimator.method, naive=self.naive[p],
                          scores=np.repeat(self.distinct, self.counts[p]), n_rows=int(self.n[p]),
                          status=status, reasons=reasons, diagnostics=diagnostics,
                          no_variance=alone, own_ss=own[0],
                          own_factor=own[1], own_m=own[2],
                          prompt_sizes_sq=float(self.prompt_sizes_cross[p, p]),
                          prompt_rows=self._prompt_rows[p])

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The distinct judge scores ([0, 1]) of the policies' rows."""
        return self.distinct01[self.counts.sum(axis=0) > 0], None


# ------------------------------------------------------------------------------------------------
# The analysis


def _raise_bad(eng: _Engine, checks: _Checks, judge_scale: tuple[float, float] | None,
               drop: bool = False) -> None:
    """The first kind of bad row found (in :mod:`cje.data`'s order), naming its file and row
    (with ``drop``, empty prompt ids and non-finite scores are dropped, not refused)."""
    for kind, column in (("policy", "policy"), ("pid", "prompt_id"), ("pid_space", "prompt_id"),
                         ("score", "judge_score"), ("label", "oracle_label"),
                         ("score_scale", "judge_score")):
        if not checks.counts.get(kind) or (drop and kind in ("pid", "score")):
            continue
        key = checks.first[kind]
        assert key is not None
        f, r = divmod(key, 1 << _ROW_BITS)
        pid, value = eng.bad_row(key, column)
        rule, fix = _RULES[kind]
        if kind == "score_scale":
            assert judge_scale is not None
            rule = (f"The 'judge_score' column must lie within judge_scale=({judge_scale[0]:g}, "
                    f"{judge_scale[1]:g})")
        shown = "none" if value is None else (format(float(value), "g") if kind in (
            "score", "label", "score_scale") else repr(value))
        who = "" if kind in ("pid",) else f" (prompt_id={pid!r})"
        raise CJEInputError(
            f"In '{eng.sources[f]}': {rule}; row {r}{who} has {shown} "
            f"({checks.counts[kind]} such rows in all). {fix}")


def _one_response(eng: _Engine, keys: Any, extra: int, repeated: int, names: Sequence[str]) -> str:
    """The notice of one response on several rows, its example named as in memory: the first
    group of rows sharing a labelled row's (prompt, policy, judge score), in the order of the
    prompts' first rows, then policy, then score; its rows numbered across the files as the
    in-memory engine reads them (one more pass over the data, made only for this notice)."""
    prompts, sizes = eng.hit_prompts(keys, names)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    pid = eng.first_prompt(prompts)  # the first prompt with a group of several rows
    rows = eng.prompt_key_rows(keys, pid, names)
    rows = rows.assign(judge_score=rows["judge_score"].to_numpy(dtype=np.float64) + 0.0)
    size = rows.groupby(["policy", "judge_score"], observed=True).size()
    pol, score = min((str(k[0]), float(k[1])) for k, n in size.items() if n > 1)
    mine = rows[(rows["policy"] == pol) & (rows["judge_score"] == score)]
    keys_of = np.sort(mine["row"].to_numpy(dtype=np.int64))[:3]
    where = [int(offsets[k >> _ROW_BITS] + (k & ((1 << _ROW_BITS) - 1))) for k in keys_of]
    return one_response_notice(extra, repeated, where, str(pid), str(pol), float(score))


@dataclass
class _DaskKeys:
    """The labelled rows' keys on Dask: their sorted distinct hashes (:func:`_key_hash`)."""

    hashes: np.ndarray

    def __len__(self) -> int:
        return int(self.hashes.size)


def _column(frame: Any, name: str, dtype: Any) -> np.ndarray:
    """A column of a polars or pandas frame as a numpy array of ``dtype``."""
    return np.asarray(frame[name].to_numpy(), dtype=dtype)


def _label_checks(lab: Any, label_scale: tuple[float, float] | None, sources: Sequence[str]
                  ) -> None:
    """The label checks of :mod:`cje.data` on the collected labelled rows, naming file and row."""
    y = _column(lab, "oracle_label", np.float64)
    if label_scale is not None:
        bad = (y < label_scale[0]) | (y > label_scale[1])
        if bad.any():
            i = int(np.argmax(bad))
            f, r = (int(_column(lab, c, np.int64)[i]) for c in ("__file", "__row"))
            raise CJEInputError(
                f"In '{sources[f]}': The 'oracle_label' column must lie "
                f"within label_scale=({label_scale[0]:g}, {label_scale[1]:g}); row "
                f"{r} (prompt_id={_column(lab, 'prompt_id', object)[i]!r}) has "
                f"{y[i]:g}. Declare the scale the labels really use, or fix the labels.")
    check_label_variation(y)


def analyze_partitioned(
    data: Any,
    *,
    engine: str,
    client: Any = None,
    estimator: DirectEstimator,
    judge_scale: tuple[float, float] | None,
    label_scale: tuple[float, float] | None,
    columns: Any,
    alpha: float,
    mode: Mode,
    n_folds: int,
    seed: int,
    only: Sequence[str] | None,
    settings: dict[str, Any],
    progress: bool | None = None,
    on_invalid: str = "raise",
) -> Report:
    """The report of fresh draws of each policy, computed out of core (see :func:`cje.analyze`,
    which checks the options first).

    Parameters
    ----------
    data : polars.LazyFrame, dask.dataframe.DataFrame, str or os.PathLike
        The rows, or a file, glob or directory of Parquet / CSV / JSON Lines files.
    engine : {"polars", "dask"}
    client : dask.distributed.Client, optional
        Dask: the cluster to run on (default: Dask's current scheduler).
    estimator : DirectEstimator
    judge_scale, label_scale, columns, alpha, mode, n_folds, seed, progress, on_invalid
        As in :func:`cje.analyze`.
    only : sequence of str or None
        Report only these policies.
    settings : dict
        The run's options (:attr:`Report.settings`).

    Returns
    -------
    Report
        The same numbers as the in-memory engine (to rounding: sums are taken in another
        order).

    Raises
    ------
    CJEInputError
        A bad row (named by file and row), or what is not supported out of core yet.

    Examples
    --------
    >>> import cje, polars as pl
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> lf = pl.from_pandas(sim.data).lazy()
    >>> rep = analyze_partitioned(lf, engine="polars", estimator=DirectEstimator(),
    ...                           judge_scale=(0, 10), label_scale=(1, 5), columns=None,
    ...                           alpha=0.05, mode="monotone", n_folds=5, seed=0, only=None,
    ...                           settings={})
    >>> mem = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5), mode="monotone")
    >>> bool(abs(rep.estimates[0].se - mem.estimates[0].se) < 1e-12)
    True
    """
    if engine not in ("polars", "dask"):
        raise CJEInputError(f"engine must be 'polars' or 'dask' here; got {engine!r}.")
    judge_scale = None if judge_scale is None else _check_scale(judge_scale, "judge_scale")
    label_scale = None if label_scale is None else _check_scale(label_scale, "label_scale")
    drop = on_invalid == "drop"
    eng = _make_engine(data, engine, columns, client, drop)
    notices = list(eng.notices)

    # ---- pass 1: checks, rows per (policy, score), labelled rows -------------------------------
    checks, counts_df, lab = eng.scan(judge_scale, progress)
    n_rows = int(counts_df["n"].sum()) if len(counts_df) else 0
    excluded: dict[str, int] = {}
    if drop:  # counted as cje.load counts them
        if checks.counts.get("pid"):
            excluded["empty prompt_id"] = int(checks.counts["pid"])
        if checks.counts.get("score_only"):
            excluded["non-finite judge_score"] = int(checks.counts["score_only"])
    _raise_bad(eng, checks, judge_scale, drop)
    if n_rows == 0:
        raise CJEInputError("The input has no valid rows left after on_invalid='drop'."
                            if excluded else "The input has no rows.")
    names = tuple(sorted(counts_df["policy"].unique().tolist()))
    split = split_by_space(list(names))  # as in memory (cje.load)
    if split is not None:
        raise CJEInputError(
            "The 'policy' column has two names that differ only by surrounding white space: "
            f"{split[0]!r} and {split[1]!r}. Write each policy's name the same way on every row.")
    distinct = np.sort(counts_df["judge_score"].unique().astype(np.float64))
    P, D = len(names), distinct.size
    counts = np.zeros((P, D), dtype=np.int64)
    counts[np.searchsorted(np.array(names, dtype=object), counts_df["policy"].to_numpy()),
           np.searchsorted(distinct, counts_df["judge_score"].to_numpy(dtype=np.float64))] = \
        counts_df["n"].to_numpy(dtype=np.int64)
    jscale = judge_scale_of(distinct, judge_scale, notices, n_rows, counts.sum(axis=0))
    _label_checks(lab, label_scale, eng.sources)
    y = _column(lab, "oracle_label", np.float64)
    if label_scale is None:
        if y.size == 0:
            lscale = jscale
        else:
            refuse_sentinel(y, "oracle_label", "label_scale", None)
            lscale = infer_scale(y)
            _check_scale(lscale, "label_scale")
            notices.append(
                f"{INFERRED_LABEL_SCALE} ({lscale[0]:g}, {lscale[1]:g}) from the "
                f"oracle labels (observed {y.min():g} to {y.max():g}). Pass label_scale=(low, "
                "high) to set it; results are reported on this scale.")
    else:
        lscale = label_scale
        if y.size:
            bottom_tenth(y.size, float(y.min()), float(y.max()), lscale, "oracle labels",
                         "label_scale", notices)
    cell_pol, cell_score = np.nonzero(counts)  # each policy's distinct scores, as in memory
    scale_mix(distinct[cell_score], cell_pol, names, jscale, "judge scores", "judge_scale", notices,
              n_rows=counts.sum(axis=1))
    lab_policy = np.searchsorted(np.array(names, dtype=object), _column(lab, "policy", object))
    if y.size:
        scale_mix(y, lab_policy, names, lscale, "oracle labels", "label_scale", notices)
    if only is not None:
        for p in only:
            if p not in names:
                raise CJEInputError(f"No rows for policy {p!r}; the data has policies "
                                    f"{list(names)}.")

    # ---- fit: folds and the calibrator on the labelled rows ------------------------------------
    lab_pid = _column(lab, "prompt_id", object)
    from cje.data import factorize_ids

    lab_code, lab_prompts = factorize_ids(lab_pid)
    m_prompts = int(lab_prompts.size)
    if m_prompts < MIN_LABELLED_PROMPTS:
        raise CJEInputError(
            f"Only {m_prompts} labelled prompt(s): out of core the analysis needs at least "
            f"{MIN_LABELLED_PROMPTS} to calibrate (the uncalibrated judge mean is not computed "
            "out of core). " + _OR_MEMORY)
    k, lab_folds, warns = fold_plan(lab_prompts, np.ones(m_prompts, dtype=bool), n_folds, seed)
    import polars as pl

    # the distinct labelled ids kept for the per-prompt pass as Arrow strings (16 bytes each up
    # to 12 bytes of id), not Python strings (~65 bytes each: 0.55 GB for 8.6·10^6 at 10^8 rows)
    lab_ids = pl.Series("prompt_id", lab_prompts, dtype=pl.String)
    del lab_prompts
    s_lab = _column(lab, "judge_score", np.float64)
    # the labelled rows' (prompt, policy, score) keys: the per-prompt pass counts the rows that
    # share one (the notice of one response on several rows, as cje.data._one_response_rows)
    label_keys = eng.label_keys(lab_pid, lab_policy, s_lab, names)
    s01 = to_unit(s_lab, jscale)
    codes, dist_s, _ = distinct_rows(s01, None)
    table = Table(s=s01, y=to_unit(y, lscale), X=None, cluster=lab_code.astype(np.int64),
                  train=np.arange(y.size), codes=codes, distinct_s=dist_s, distinct_X=None)
    del lab, lab_pid  # (10^7 rows at 10^8: the arrays above are all that is needed)
    calibrator, caught = fit_calibrator(table, lab_folds[table.cluster], mode=mode, k=k, seed=seed)
    warns += caught
    at_draws = len(notices)  # the loader's notice of repeated draws comes before the mode's
    if mode == "auto":
        notices.append(f"Calibration mode 'auto' chose '{calibrator.mode_}' (it keeps 'monotone' "
                       "unless 'two_stage' predicts the labels better, out of fold, by more than "
                       "one standard error).")
    shape = PartitionedShape(names=names, table=table, lab_policy=lab_policy, distinct=distinct,
                             counts=counts, judge_scale=jscale, label_scale=lscale,
                             labelled_scores=s_lab, estimator=estimator)

    # ---- pass 2: per-prompt totals of the influence values -------------------------------------
    reward = calibrator.calibration(frozenset()).predict(shape.distinct01, None)
    rbar = shape.plug_in(reward)
    sbar = (counts @ shape.distinct01) / np.maximum(shape.n, 1)
    centres = np.column_stack([rbar, sbar])
    term, rows = shape.labelled_terms(calibrator)
    # the labelled rows' residual terms summed per (prompt, policy): extra rows of the group-by
    key = lab_code[rows] * P + lab_policy[rows]
    sums = np.bincount(key, weights=term, minlength=m_prompts * P).reshape(m_prompts, P)
    # and each policy's labelled rows per prompt (the prompt label-balance check)
    n_lab = np.bincount(key, minlength=m_prompts * P).reshape(m_prompts, P).astype(np.uint32)
    b = {"prompt_id": lab_ids, **{f"b{p}": sums[:, p] for p in range(P)},
         **{f"l{p}": n_lab[:, p] for p in range(P)}}
    del term, rows, key, sums, lab_ids, n_lab
    lookup = {"score": distinct, "reward": np.asarray(reward, dtype=np.float64),
              "s01": shape.distinct01}
    # ROWS_PER_GROUP_BY rows per group-by: its hash table of prompts is the pass's memory
    buckets = max(1, -(-n_rows // ROWS_PER_GROUP_BY))
    chunks = eng.prompt_totals(lookup, names, centres, b, progress, buckets, label_keys)
    del b  # (the pass holds it while it needs it)
    repeats = shape.set_totals(chunks, alpha, centres)
    if repeats > 0 and not eng.has_draw_idx:
        notices.insert(at_draws, (
            f"{repeats} rows repeat a (prompt_id, policy) pair and there is no 'draw_idx' column: "
            "they were taken as repeated draws, numbered in input order."))
        at_draws += 1
    # rows beyond the first of each labelled (prompt, policy, score) group, as in memory
    extra = eng.same_score_rows - len(label_keys)
    if repeats > 0 and extra > 0 and 2 * extra >= repeats:
        notices.insert(at_draws, _one_response(eng, label_keys, extra, repeats, names))
    del label_keys
    settings = {**settings, "engine": engine}
    return estimate(shape, calibrator, alpha=alpha, requested_mode=mode, covariates=(),
                    transport_margin=None, only=only, notices=notices, warns=warns,
                    excluded=excluded,
                    settings=settings, progress=progress,
                    dropped=getattr(eng, "dropped_by_policy", None))
