"""Every file format :mod:`cje` reads, in one place: a registry of readers.

:func:`read_table` turns a path into one flat polars DataFrame. :func:`cje.load` (via
:mod:`cje.data`), the judge-bias diagnostics (:mod:`cje.bias`) and the pairwise tools
(:mod:`cje.pairwise`) all read files through it, so they accept the same formats, read ids the same
way and fail with the same messages.

Each format is a :class:`Reader` in one registry, picked by the path's suffix or by a
``matches(path)`` predicate; :func:`register_reader` adds a format from outside the package (it then
reaches ``cje analyze`` and ``cje bias`` alike) and :func:`unregister_reader` removes it.

Built-in formats: a long-format ``.jsonl``/``.ndjson``/``.json`` (JSON Lines), ``.csv`` or
``.parquet``/``.pq`` file; a cje-eval fresh-draws directory of ``<policy>_responses.jsonl`` files; a
cje-eval logged-data JSONL file (``metadata.prompt_id``, ``base_policy_logprob``,
``target_policy_logprobs``), recognised by its fields and flattened to ``prompt_id``,
``logprob_base`` and ``logprob[<target>]``.

Ids are read as the exact text written. Id columns (:data:`ID_COLUMNS`, plus the columns a user
maps to them) are never type-inferred: ``1.10`` and ``1.1``, ``2`` and ``2.0``, ``007`` and ``7``
stay distinct. A JSON number id keeps the text it was written with (``7.0`` stays ``"7.0"``); a
JSON number and a JSON string with the same text (``7`` and ``"7"``) in one id column are refused,
naming both lines, since no reading of them is safe.

A file that cannot be parsed is checked line by line in Python (only then: valid files take the
fast polars path) and the error names the file, the line and the fix. A UTF-8 byte-order mark is
accepted.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cje.errors import CJEInputError

__all__ = [
    "ID_COLUMNS", "READ_OPTIONS", "Reader", "read_table", "reader_for", "register_reader",
    "registered_readers", "unregister_reader",
]

#: Columns always read as text: the ids of the long format and of the judge-bias inputs.
ID_COLUMNS: tuple[str, ...] = (
    "prompt_id", "policy", "a_id", "b_id", "judge", "judge_family", "policy_family", "a_family",
    "b_family",
)
#: Read as text, then as integers when every value is written as a plain integer.
_INDEX_COLUMNS: tuple[str, ...] = ("draw_idx",)
_JSONL = (".jsonl", ".ndjson", ".json")
_BOM = b"\xef\xbb\xbf"
_LOGGED_KEYS = ("metadata", "target_policy_logprobs")
_CANON_INT = re.compile(r"^(?:-?[1-9][0-9]*|0)$")


#: A file modified less than this many seconds ago has no :func:`file_signature`: a second write
#: within one tick of a coarse file-system clock could leave size and times unchanged.
_SETTLED_S = 2.0


def file_signature(path: str | Path) -> tuple[Any, ...] | None:
    """What identifies the bytes of a file, or of every file under a directory, without reading
    them: per entry its relative path, device, inode, size and modification and change times in
    nanoseconds (symbolic links followed).

    A memo keyed by it (:func:`cje.data.read_columns`, :func:`cje.export.content_hash`) serves
    an input again only while none of these changed: writing a file changes its times, replacing
    it its inode, adding, removing or renaming one changes its directory's times. ``None`` (do not
    memoise) when the path cannot be read, when some entry was modified within the last
    :data:`_SETTLED_S` seconds (the "racy" case: a rewrite within one clock tick of a coarse
    file system keeps the times), or when a directory holds more than 10,000 entries.

    Examples
    --------
    >>> import os, pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "a.jsonl"
    >>> _ = f.write_text("{}")
    >>> file_signature(f) is None   # just written: not settled
    True
    >>> os.utime(f, (1e9, 1e9))      # a file last written long ago (its change time is now)
    >>> file_signature(f) is None
    True
    """
    import os
    import time

    root = Path(path)
    out: list[tuple[Any, ...]] = []
    try:
        entries = [root]
        if root.is_dir():
            entries += sorted(root.rglob("*"), key=lambda p: p.relative_to(root).as_posix())
        if len(entries) > 10_001:
            return None
        newest = 0
        for p in entries:
            st = os.stat(p)
            out.append((p.relative_to(root).as_posix(), st.st_dev, st.st_ino, st.st_size,
                        st.st_mtime_ns, st.st_ctime_ns))
            newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    except (OSError, ValueError):
        return None
    if time.time_ns() - newest < _SETTLED_S * 1e9:
        return None
    return tuple(out)


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------
#: The keyword options :func:`read_table` passes to a reader that declares them.
READ_OPTIONS: tuple[str, ...] = ("want", "id_columns", "logging_policy")


@dataclass(frozen=True)
class Reader:
    """One input format: its name, the paths it reads and the function that reads them.

    Build one with :func:`register_reader`, which also adds it to the registry.

    Attributes
    ----------
    name : str
        Unique name, e.g. ``"csv"``; shown in errors and used by :func:`unregister_reader`.
    read : callable
        ``read(path, **options) -> frame``: a polars or pandas DataFrame or a dict of columns.
        It receives those of :data:`READ_OPTIONS` it declares as parameters: ``want`` (the
        fields needed, ``None`` for all; a hint), ``id_columns`` (columns to read as the exact
        text written) and ``logging_policy`` (the policy name for logged data).
    suffixes : tuple of str
        File suffixes read, lower case with the dot (``(".tsv",)``); directories never match one.
    matches : callable, optional
        ``matches(path) -> bool``, for paths a suffix cannot tell (e.g. directories).
    options : tuple of str
        The options ``read`` declares (set by :func:`register_reader`).

    Examples
    --------
    >>> r = reader_for("runs.parquet")
    >>> r.name, r.suffixes, r.options
    ('parquet', ('.parquet', '.pq'), ())
    """

    name: str
    read: Callable[..., Any]
    suffixes: tuple[str, ...] = ()
    matches: Callable[[Path], bool] | None = None
    options: tuple[str, ...] = ()

    def handles(self, path: Path) -> bool:
        """Whether this reader reads ``path`` (by its suffix, else by :attr:`matches`).

        Parameters
        ----------
        path : pathlib.Path
            A file or directory.

        Returns
        -------
        bool

        Examples
        --------
        >>> from pathlib import Path
        >>> reader_for("a.csv").handles(Path("b.CSV")), reader_for("a.csv").handles(Path("b.tsv"))
        (True, False)
        """
        if self.suffixes and not path.is_dir() and path.suffix.lower() in self.suffixes:
            return True
        return self.matches is not None and bool(self.matches(path))


_REGISTRY: dict[str, Reader] = {}


def register_reader(
    name: str,
    read: Callable[..., Any],
    *,
    suffixes: Sequence[str] = (),
    matches: Callable[[Path], bool] | None = None,
    replace: bool = False,
) -> Reader:
    """Add a file format to the one registry every :mod:`cje` entry point reads through.

    A registered format is read by :func:`cje.load` (so by :func:`cje.analyze` and
    ``cje analyze``) and by the judge-bias and pairwise tools (``cje bias``). Readers registered
    later are tried first, so a registration can take over a built-in suffix.

    Parameters
    ----------
    name : str
        Unique name of the format.
    read : callable
        ``read(path, **options)`` returning a polars or pandas DataFrame or a dict of columns in
        the long format; see :class:`Reader` for the options it may declare. Raise
        :class:`cje.errors.CJEInputError` naming the file and line for a line that cannot be
        read; any other exception is reported as an input error naming the file and the reader.
    suffixes : sequence of str
        File suffixes it reads (``".tsv"``; matched case-insensitively).
    matches : callable, optional
        ``matches(path) -> bool`` for paths not told by a suffix.
    replace : bool
        Replace a reader registered under the same name (otherwise that is an error).

    Returns
    -------
    Reader
        The registered reader.

    Raises
    ------
    CJEInputError
        The name is taken (and ``replace`` is false), or neither ``suffixes`` nor ``matches`` is
        given, or a suffix does not start with a dot.

    Examples
    --------
    >>> import csv, tempfile, pathlib
    >>> def read_tsv(path, id_columns=()):
    ...     with open(path, newline="") as fh:
    ...         rows = list(csv.DictReader(fh, delimiter="\\t"))
    ...     return {k: [r[k] if k in id_columns else float(r[k]) for r in rows] for k in rows[0]}
    >>> _ = register_reader("tsv", read_tsv, suffixes=[".tsv"])
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "runs.tsv"
    ...     _ = p.write_text("prompt_id\\tpolicy\\tjudge_score\\n007\\tA\\t0.5\\n7\\tA\\t0.25\\n")
    ...     t = read_table(p)
    >>> t["prompt_id"].to_list(), t["judge_score"].to_list()
    (['007', '7'], [0.5, 0.25])
    >>> unregister_reader("tsv").name
    'tsv'
    """
    if not isinstance(name, str) or not name:
        raise CJEInputError(f"A reader needs a non-empty name (a string); got {name!r}.")
    if not callable(read):
        raise CJEInputError(f"read must be a function read(path, **options); got {read!r}.")
    if isinstance(suffixes, str):
        suffixes = (suffixes,)
    sfx = tuple(s.lower() for s in suffixes)
    bad = [s for s in sfx if not (isinstance(s, str) and s.startswith(".") and len(s) > 1)]
    if bad:
        raise CJEInputError(f"suffixes must look like '.tsv' (with the dot); got {bad[0]!r}.")
    if not sfx and matches is None:
        raise CJEInputError(
            f"Reader {name!r} needs suffixes=[...] or a matches(path) predicate, or it reads nothing."
        )
    if name in _REGISTRY and not replace:
        raise CJEInputError(
            f"A reader named {name!r} is already registered; pick another name, or pass "
            "replace=True to replace it."
        )
    try:
        params = list(inspect.signature(read).parameters.values())
    except (TypeError, ValueError):  # some builtins have no signature: pass no options
        params = []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        options = READ_OPTIONS
    else:
        names = {p.name for p in params if p.kind is not inspect.Parameter.POSITIONAL_ONLY}
        options = tuple(o for o in READ_OPTIONS if o in names)
    reader = Reader(name=name, read=read, suffixes=sfx, matches=matches, options=options)
    _REGISTRY.pop(name, None)
    _REGISTRY[name] = reader
    return reader


def unregister_reader(name: str) -> Reader:
    """Remove a registered reader; returns it.

    Parameters
    ----------
    name : str
        The name it was registered under.

    Returns
    -------
    Reader
        The reader removed.

    Raises
    ------
    CJEInputError
        No reader has that name (the message lists the registered ones).

    Examples
    --------
    >>> _ = register_reader("mine", lambda path: {"prompt_id": ["a"]}, suffixes=[".mine"])
    >>> unregister_reader("mine").suffixes
    ('.mine',)
    """
    try:
        return _REGISTRY.pop(name)
    except KeyError:
        raise CJEInputError(
            f"No reader named {name!r} is registered; the readers are {list(_REGISTRY)}."
        ) from None


def registered_readers() -> tuple[Reader, ...]:
    """The registered readers in the order they are tried (the latest registered first).

    Returns
    -------
    tuple of Reader

    Examples
    --------
    >>> [r.name for r in registered_readers()][-4:]
    ['fresh-draws', 'jsonl', 'parquet', 'csv']
    """
    return tuple(reversed(_REGISTRY.values()))


def reader_for(path: str | Path) -> Reader:
    """The reader of ``path``: the first registered one that handles it.

    Parameters
    ----------
    path : str or pathlib.Path
        A file or directory.

    Returns
    -------
    Reader

    Raises
    ------
    CJEInputError
        No reader handles the path (the message lists the file types read).

    Examples
    --------
    >>> reader_for("runs.CSV").name
    'csv'
    """
    path = Path(path)
    for reader in registered_readers():
        if reader.handles(path):
            return reader
    extra = [", ".join(r.suffixes) or r.name for r in registered_readers() if r not in _BUILT_IN]
    also = f", a registered format ({'; '.join(extra)})" if extra else ""
    raise CJEInputError(
        f"Cannot read '{path}': unknown file type {path.suffix.lower()!r}. Use .jsonl, .csv or "
        f".parquet{also}, or a directory of <policy>_responses.jsonl files."
    )


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def refuse_url(source: Any) -> None:
    """A URL (``s3://…``, ``gs://…``, ``https://…``) is refused with the way to read it: cje's
    readers take local paths; polars and Dask read object stores themselves.

    Examples
    --------
    >>> refuse_url("evals/part-0.parquet")
    >>> refuse_url("s3://bucket/evals/*.parquet")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: 's3://bucket/evals/*.parquet' is a URL; cje reads local paths. ...
    """
    if isinstance(source, str) and _URL.match(source):
        raise CJEInputError(
            f"{source!r} is a URL; cje reads local paths. For object storage pass a polars "
            f"LazyFrame (pl.scan_parquet({source!r}, storage_options=...)) or a Dask DataFrame "
            f"(dd.read_parquet({source!r})): engine='polars' / 'dask' stream them (docs: Large "
            "data and clusters); or copy the files to a local directory.")


def read_table(
    path: str | Path,
    *,
    want: Sequence[str] | None = None,
    id_columns: Sequence[str] = ID_COLUMNS,
    logging_policy: str = "base",
) -> Any:
    """Read a supported file or directory into one flat polars DataFrame (no validation).

    The path's :class:`Reader` comes from the registry (:func:`reader_for`).

    Parameters
    ----------
    path : str or pathlib.Path
        A long-format JSONL, CSV or Parquet file, a cje-eval logged-data JSONL file, a
        cje-eval fresh-draws directory, or a path a registered reader handles.
    want : sequence of str, optional
        The fields a JSON Lines reader needs (the rest of each line, e.g. long response texts,
        is skipped); ``None`` reads every field. CSV and Parquet files are read whole.
    id_columns : sequence of str
        Columns read as the exact text written (never as numbers).
    logging_policy : str
        Policy name for the rows of a logged-data file.

    Returns
    -------
    polars.DataFrame
        Id columns are strings; a fresh-draws directory gets a ``policy`` column from the file
        names, logged data a ``policy`` column set to ``logging_policy``.

    Raises
    ------
    CJEInputError
        The path does not exist, has an unknown type, is empty or cannot be parsed; a parse
        error names the file and the line and says how to fix it.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "runs.csv"
    ...     _ = p.write_text("prompt_id,policy,judge_score\\n007,1.10,0.5\\n7,1.1,0.25\\n")
    ...     t = read_table(p)
    >>> t["prompt_id"].to_list(), t["policy"].to_list(), t["judge_score"].to_list()
    (['007', '7'], ['1.10', '1.1'], [0.5, 0.25])
    """
    refuse_url(path)
    path = Path(path)
    ids = tuple(dict.fromkeys(id_columns))
    if not path.exists():
        raise CJEInputError(f"No such file or directory: '{path}'.")
    reader = reader_for(path)
    if not path.is_dir() and (path.stat().st_size == 0 or (
            reader.read in (_read_csv, _read_jsonl) and blank_text_file(path))):
        raise CJEInputError(f"The input has no rows: '{path}' is empty.")
    given = {"want": want, "id_columns": ids, "logging_policy": logging_policy}
    options = {k: given[k] for k in reader.options}
    if reader in _BUILT_IN:  # their failures are CJEInputErrors naming the file and line
        frame = reader.read(path, **options)
    else:
        frame = _as_polars(_read_outside(reader, path, options), reader, path)
    if frame.height == 0:
        raise CJEInputError(f"The input has no rows: '{path}' is empty.")
    return frame


def blank_text_file(path: Path) -> bool:
    """Whether a text file holds nothing but whitespace (after a byte-order mark): no header and
    no rows, like an empty file. Reads until the first other byte.

    Parameters
    ----------
    path : pathlib.Path
        A CSV or JSON Lines file.

    Returns
    -------
    bool
    """
    with open(path, "rb") as fh:
        head = True
        while block := fh.read(1 << 16):
            if head and block.startswith(_BOM):
                block = block[len(_BOM):]
            head = False
            if block.strip():
                return False
    return True


def _read_outside(reader: Reader, path: Path, options: dict[str, Any]) -> Any:
    """Call a reader registered from outside the package; its failures become input errors."""
    try:
        return reader.read(path, **options)
    except CJEInputError:
        raise
    except Exception as exc:
        raise CJEInputError(
            f"Cannot read '{path}' with the {reader.name!r} reader: {type(exc).__name__}: {exc}"
        ) from exc


def _as_polars(frame: Any, reader: Reader, path: Path) -> Any:
    """A reader's result (polars or pandas DataFrame, dict of columns) as a polars DataFrame."""
    import polars as pl

    if isinstance(frame, pl.LazyFrame):
        frame = frame.collect()
    if isinstance(frame, pl.DataFrame):
        return frame
    try:
        if type(frame).__module__.startswith("pandas") and hasattr(frame, "columns"):
            return pl.from_pandas(frame)
        if isinstance(frame, Mapping):
            return pl.DataFrame({str(k): v for k, v in frame.items()})
    except Exception as exc:  # ragged columns, mixed types in one column, ...
        raise CJEInputError(
            f"The {reader.name!r} reader returned columns polars cannot hold for '{path}': {exc}. "
            "Return one value type per column, every column the same length."
        ) from None
    raise CJEInputError(
        f"The {reader.name!r} reader returned a {type(frame).__name__} for '{path}'; a reader must "
        "return a polars or pandas DataFrame or a dict of columns."
    )


def _where(path: Path, line: int) -> str:
    return f"'{path}', line {line}"


# --------------------------------------------------------------------------------------------
# CSV and Parquet
# --------------------------------------------------------------------------------------------
def _csv_header(path: Path) -> list[str]:
    """The header fields (a UTF-8 BOM is dropped); duplicate names are refused."""
    with open(path, "rb") as fh:
        raw = fh.readline()
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    text = _decode_line(path, 1, raw)
    try:
        names = next(csv.reader([text]), [])
    except csv.Error as exc:  # e.g. a bare carriage return inside the header line
        raise CJEInputError(
            f"{_where(path, 1)}: the header line is not valid CSV ({exc}) — write the column names "
            "on the first line, separated by commas, ending with a line break."
        ) from None
    if len(names) == 1:
        sep = next((c for c in (";", "\t", "|") if c in names[0]), None)
        if sep is not None:
            shown = "tabs" if sep == "\t" else repr(sep)
            raise CJEInputError(
                f"{_where(path, 1)}: the header is one column, {names[0][:60]!r}: the file looks "
                f"separated by {shown}, and cje reads comma-separated values — re-save it with "
                "commas (and a point as the decimal separator), or read it with pandas "
                f"(sep={sep!r}) and pass the DataFrame."
            )
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CJEInputError(
                f"{_where(path, 1)}: column {name!r} appears more than once in the header — "
                "rename or remove the duplicate so each column has one meaning."
            )
        seen.add(name)
    return names


def _read_csv(path: Path, *, id_columns: Sequence[str]) -> Any:
    import polars as pl

    header = _csv_header(path)
    text_cols = [c for c in (*id_columns, *_INDEX_COLUMNS) if c in header]
    try:
        frame = pl.read_csv(path, infer_schema_length=None,
                            schema_overrides={c: pl.String for c in text_cols})
    except Exception as exc:  # message depends on the polars version
        _diagnose_csv(path, len(header))
        raise CJEInputError(f"Cannot parse '{path}' as CSV: {exc}") from None
    n_blank = _check_csv_field_counts(path, len(header))
    if n_blank:  # blank lines are not rows (polars reads each as a row of nulls)
        empty = pl.all_horizontal(pl.all().is_null())
        if frame.filter(empty).height == n_blank:
            frame = frame.filter(~empty)
    return _index_as_int(frame)


def _index_as_int(frame: Any) -> Any:
    """Text index columns become integers when every value is a plain integer."""
    import polars as pl

    for c in _INDEX_COLUMNS:
        if c in frame.columns and frame.schema[c] == pl.String:
            col = frame.get_column(c)
            if col.drop_nulls().str.contains(_CANON_INT.pattern).all():
                frame = frame.with_columns(col.cast(pl.Int64))
    return frame


#: Bytes the CSV field-count check reads at a time: memory stays bounded on files of any size.
_CSV_CHUNK = 1 << 23


def _csv_line_fields(path: Path) -> Any:
    """Yield ``(field counts, line numbers)`` of the records of a CSV file, block by block (a
    blank line counts 0 fields), reading :data:`_CSV_CHUNK` bytes at a time.

    Quote-free files (the usual case) are counted with numpy over the raw bytes; files with
    quotes (a field may then hold a comma or a line break) with the ``csv`` module, each record
    numbered by the line it starts on.
    """
    with open(path, "rb") as fh:
        quoted = any(b'"' in chunk for chunk in iter(lambda: fh.read(_CSV_CHUNK), b""))
    if quoted:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as text:
            reader = csv.reader(text)
            counts: list[int] = []
            lines: list[int] = []
            start = 1
            for fields in reader:
                counts.append(len(fields))
                lines.append(start)
                start = reader.line_num + 1
                if len(counts) == 1 << 16:
                    yield np.array(counts), np.array(lines)
                    counts, lines = [], []
            if counts:
                yield np.array(counts), np.array(lines)
        return
    line = 1
    with open(path, "rb") as fh:
        carry = fh.read(len(_BOM))
        if carry == _BOM:
            carry = b""
        while True:
            chunk = fh.read(_CSV_CHUNK)
            buf = carry + chunk
            if not chunk:  # the last line, without a line end
                if buf:
                    yield np.array([buf.count(b",") + 1 if buf not in (b"", b"\r") else 0]), \
                        np.array([line])
                return
            b = np.frombuffer(buf, dtype=np.uint8)
            ends = np.flatnonzero(b == 10)
            if not ends.size:
                carry = buf
                continue
            starts = np.concatenate([[0], ends[:-1] + 1])
            commas = np.flatnonzero(b[: ends[-1]] == 44)
            cnt = np.diff(np.searchsorted(commas, ends), prepend=0) + 1
            length = ends - starts
            cnt[(length == 0) | ((length == 1) & (b[starts] == 13))] = 0  # blank lines
            yield cnt, np.arange(line, line + cnt.size)
            line += cnt.size
            carry = buf[ends[-1] + 1:]


def _check_csv_field_counts(path: Path, n_fields: int) -> int:
    """Every line holds as many fields as the header (polars and pandas pad a short line with
    nulls, so a row missing a separator would silently lose its last values, e.g. read as
    unlabelled). Returns the number of blank lines (polars reads each as a row of nulls).

    The file is read in chunks (:func:`_csv_line_fields`), so the check also serves the
    out-of-core engines on files larger than memory.
    """
    n_blank = n_short = 0
    first: tuple[int, int] | None = None  # (fields, line) of the first bad line
    last_line = 0
    header = True
    for cnt, line_no in _csv_line_fields(path):
        if header:  # the header itself was read already
            cnt, line_no, header = cnt[1:], line_no[1:], False
        if not cnt.size:
            continue
        blank = cnt == 0
        n_blank += int(blank.sum())
        bad = ~blank & (cnt != n_fields)
        n_short += int((bad & (cnt < n_fields)).sum())
        if first is None and bad.any():
            i = int(np.argmax(bad))
            first = (int(cnt[i]), int(line_no[i]))
        last_line = int(line_no[-1])
    if first is None:
        return n_blank
    got, line = first
    if got < n_fields and line == last_line and not _ends_with_newline(path):
        raise CJEInputError(
            f"{_where(path, line)}: the last line has {got} of the header's {n_fields} "
            "fields and no line end: the file looks truncated — complete the line or remove it."
        )
    if got < n_fields:
        raise CJEInputError(
            f"{_where(path, line)}: the line has {got} of the header's {n_fields} fields "
            f"({n_short} such lines); a missing value still needs its separator (an unlabelled "
            "row ends with ',') — fix the line, or the values after the gap would be read as "
            "missing."
        )
    raise CJEInputError(
        f"{_where(path, line)}: the line has {got} fields but the header has {n_fields} — quote "
        "values that contain commas, or fix the line."
    )


def _ends_with_newline(path: Path) -> bool:
    """The file's last byte is a line end."""
    with open(path, "rb") as fh:
        fh.seek(0, 2)
        if fh.tell() == 0:
            return False
        fh.seek(-1, 2)
        return fh.read(1) == b"\n"


def _diagnose_csv(path: Path, n_fields: int) -> None:
    """Find the first line polars could not read and raise a CJEInputError naming it."""
    with open(path, "rb") as fh:
        raw_lines = fh.read().split(b"\n")
    if raw_lines and raw_lines[0].startswith(_BOM):
        raw_lines[0] = raw_lines[0][len(_BOM):]
    texts = [_decode_line(path, i + 1, raw) for i, raw in enumerate(raw_lines)]
    reader = csv.reader(io.StringIO("\n".join(texts), newline=""), strict=True)
    start = 1  # the line the current record starts on
    try:
        for fields in reader:
            if len(fields) > n_fields:
                raise CJEInputError(
                    f"{_where(path, start)}: the line has {len(fields)} fields but the header has "
                    f"{n_fields} — quote values that contain commas, or fix the line."
                )
            start = reader.line_num + 1
    except csv.Error as exc:
        if "unexpected end of data" in str(exc):
            raise CJEInputError(
                f"{_where(path, start)}: a quoted value is never closed, so the rest of the file "
                "reads as one value — close the quote, or remove the line if the file is truncated."
            ) from None
        raise CJEInputError(f"{_where(path, start)}: not valid CSV ({exc}) — fix the line.") from None


def _read_parquet(path: Path) -> Any:
    import polars as pl

    try:
        return pl.read_parquet(path)
    except Exception as exc:  # message depends on polars version
        raise CJEInputError(f"Cannot parse '{path}' as Parquet: {exc}") from None


# --------------------------------------------------------------------------------------------
# JSON Lines: line-level checks (used when the fast path fails, and on the first line)
# --------------------------------------------------------------------------------------------
def _decode_line(path: Path, line: int, raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1]
        raise CJEInputError(
            f"{_where(path, line)}: byte 0x{bad.hex()} at position {exc.start} is not valid "
            "UTF-8 — re-save the file as UTF-8."
        ) from None


class _Num(str):
    """The text of a JSON number as written (``7.0`` stays ``"7.0"``)."""


def _json_text(value: Any) -> str:
    """Short JSON text of a parsed value, numbers shown as written."""
    def plain(v: Any) -> Any:
        if isinstance(v, _Num):
            return float(v) if any(ch in v for ch in ".eE") else int(v)
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v
    text = json.dumps(plain(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_line(path: Path, line: int, raw: bytes, *, last: bool = False) -> dict[str, Any]:
    """One JSON Lines record, numbers kept as their written text; errors name the line."""
    text = _decode_line(path, line, raw)
    try:
        rec = json.loads(text, parse_int=_Num, parse_float=_Num, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        if last and not text.rstrip().endswith("}"):
            what = "the record ends early: the file looks truncated — complete the line or remove it"
        else:
            what = f"not valid JSON ({exc.msg} at column {exc.colno}) — fix the line"
        raise CJEInputError(f"{_where(path, line)}: {what}.") from None
    except ValueError as exc:  # NaN, Infinity, -Infinity
        raise CJEInputError(
            f"{_where(path, line)}: bare {exc.args[0]} is not valid JSON — write null for a missing "
            "value (or a quoted string)."
        ) from None
    except RecursionError:
        raise CJEInputError(
            f"{_where(path, line)}: the record is nested too deeply to read — flatten it (cje "
            "needs top-level fields)."
        ) from None
    if not isinstance(rec, dict):
        raise CJEInputError(
            f"{_where(path, line)}: each line must be a JSON object ({{...}}); got a "
            f"{type(rec).__name__} — write one record per line."
        )
    return rec


def _lines(path: Path) -> Any:
    """(line number, raw bytes, is last) of the non-empty lines; a leading BOM is dropped."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    raw_lines = data.split(b"\n")
    while raw_lines and not raw_lines[-1].strip():
        raw_lines.pop()
    n = len(raw_lines)
    for i, raw in enumerate(raw_lines):
        if raw.strip():
            yield i + 1, raw, i == n - 1


def _first_record(path: Path) -> dict[str, Any]:
    """The first record, read without reading the rest of the file."""
    with open(path, "rb") as fh:
        line, first = 0, b""
        for line, raw in enumerate(fh, start=1):
            if line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            if raw.strip():
                first = raw
                break
    if not first:
        raise CJEInputError(f"The input has no rows: '{path}' is empty.")
    # a first line without a line end is also the last one: it may be truncated
    return _parse_line(path, line, first.rstrip(b"\r\n"), last=not first.endswith(b"\n"))


def first_record_fields(path: Path) -> list[str] | None:
    """The field names of the first record of a JSON Lines input (each file's, for a fresh-draws
    directory, with ``policy``; a logged-data file's ``metadata`` fields too), read without
    reading the rest; ``None`` for other formats. The JSON Lines readers read only the fields
    they want, so a near miss of a standard name (``"Policy"``) is looked for here.

    Parameters
    ----------
    path : pathlib.Path
        An input path.

    Returns
    -------
    list of str or None
        The field names; ``None`` for a format that is not JSON Lines, or an input its reader
        will refuse (that reader's message says why).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "runs.jsonl"
    ...     _ = p.write_text('{"prompt_id": "a", "Policy": "x", "judge_score": 3}\\n')
    ...     first_record_fields(p), first_record_fields(pathlib.Path(d) / "runs.csv")
    (['prompt_id', 'Policy', 'judge_score'], None)
    """
    try:
        reader = reader_for(path)
        if reader.read is _read_jsonl:
            files, extra = [path], []
        elif reader.read is _read_fresh_draws_dir:
            files, extra = sorted(path.glob("*_responses.jsonl")), ["policy"]
        else:
            return None
        names: dict[str, None] = dict.fromkeys(extra)
        for f in files:
            rec = _first_record(f)
            names.update(dict.fromkeys(rec))
            if isinstance(rec.get("metadata"), dict):
                names.update(dict.fromkeys(rec["metadata"]))
    except (CJEInputError, OSError):  # the reader says what is wrong with the input
        return None
    return list(names)


def _record_lines(path: Path, csv_file: bool) -> np.ndarray:
    """The line (1-based) each row of a CSV or JSON Lines file starts on, in the readers' row
    order: the header and blank lines are not rows (in JSON Lines, white space only is blank); a
    quoted CSV value may span lines. Line ends are found with numpy, not a Python string per
    line, since this runs on error on files of any size."""
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    if csv_file and b'"' in data:
        reader = csv.reader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        starts, start = [], 1
        for fields in reader:
            if fields:
                starts.append(start)
            start = reader.line_num + 1
        return np.array(starts[1:], dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    nl = np.flatnonzero(buf == 10)
    begin = np.concatenate([[0], nl + 1])
    end = np.append(nl, buf.size)
    length = end - begin
    first = buf[np.minimum(begin, max(buf.size - 1, 0))] if buf.size else np.zeros(0, np.uint8)
    blank = (length == 0) | ((length == 1) & (first == 13))
    if not csv_file:  # a line of white space only: test the lines that start with white space
        for i in np.flatnonzero(~blank & np.isin(first, (9, 11, 12, 13, 32))).tolist():
            blank[i] = not data[begin[i]:end[i]].strip()
    full = np.flatnonzero(~blank) + 1
    return full[1:] if csv_file else full


def row_lines(path: str | Path, rows: Sequence[int]) -> str | None:
    """Where rows of a file read by a built-in reader are in it: ``"line 12"``,
    ``"lines 2 and 9"``, ``"'a_responses.jsonl', line 4"`` (a fresh-draws directory); ``None``
    for a Parquet file, a registered reader's format, or a row the file does not have. Rows are
    numbered from 0 in the order the reader returns them. Read only when a message needs it.

    Parameters
    ----------
    path : str or pathlib.Path
        The input.
    rows : sequence of int
        Row numbers (0-based).

    Returns
    -------
    str or None

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "runs.csv"
    ...     _ = p.write_text("prompt_id,judge_score\\na,1\\n\\nb,x\\n")
    ...     row_lines(p, [1])
    'line 4'
    """
    try:
        path = Path(path)
        reader = reader_for(path)
        if reader.read in (_read_csv, _read_jsonl):
            where = [("", _record_lines(path, reader.read is _read_csv))]
        elif reader.read is _read_fresh_draws_dir:
            where = [(f"'{f.name}', ", _record_lines(f, False))
                     for f in sorted(path.glob("*_responses.jsonl"))]
        else:
            return None
        found: list[tuple[str, int]] = []
        for r in rows:
            for name, starts in where:
                if r < len(starts):
                    found.append((name, starts[r]))
                    break
                r -= len(starts)
            else:
                return None
    except (CJEInputError, OSError):
        return None
    if not found:
        return None
    if len({name for name, _ in found}) == 1:
        nums = [str(line) for _, line in found]
        return f"{found[0][0]}{'line' if len(nums) == 1 else 'lines'} {' and '.join(nums)}"
    return " and ".join(f"{name}line {line}" for name, line in found)


def _value_at(rec: dict[str, Any], key: str) -> tuple[bool, Any]:
    if key in rec:
        return True, rec[key]
    meta = rec.get("metadata")
    if isinstance(meta, dict) and key in meta:
        return True, meta[key]
    return False, None


def _id_text(path: Path, line: int, key: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    kind = {bool: "a boolean", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)
    raise CJEInputError(
        f"{_where(path, line)}: {key!r} is {kind} ({_json_text(value)}) — ids must be strings "
        "or numbers."
    )


def _check_logprobs(path: Path, line: int, rec: dict[str, Any]) -> None:
    checks = [("base_policy_logprob", rec.get("base_policy_logprob"))]
    tp = rec.get("target_policy_logprobs")
    if isinstance(tp, dict):
        checks += [(f"target_policy_logprobs[{k!r}]", v) for k, v in tp.items()]
    elif tp is not None:
        raise CJEInputError(
            f"{_where(path, line)}: 'target_policy_logprobs' must be an object mapping each target "
            f"policy to a log-probability; got {_json_text(tp)}."
        )
    for name, v in checks:
        if v is not None and not isinstance(v, _Num):
            raise CJEInputError(
                f"{_where(path, line)}: {name} is {_json_text(v)}, not a number — write a "
                "number, or null where the log-probability is missing."
            )


#: Fields read as numbers: a list, an object, or a boolean among numbers is named by its line.
_NUMERIC_FIELDS: tuple[str, ...] = ("judge_score", "oracle_label", "draw_idx", "label_probability",
                                    "response_length")


def _diagnose_jsonl(path: Path, ids: Sequence[str],
                    numeric: Sequence[str] = _NUMERIC_FIELDS) -> None:
    """Raise a CJEInputError naming the first line that is not a valid record, if there is one:
    not JSON, an id that is not a string or number, a log-probability that is not a number, a
    list or object in a ``numeric`` field, or a boolean in a field other lines give numbers."""
    kinds: dict[str, dict[bool, int]] = {}  # field -> {is boolean: first line}
    for line, raw, last in _lines(path):
        rec = _parse_line(path, line, raw, last=last)
        for key in ids:
            found, value = _value_at(rec, key)
            if found:
                _id_text(path, line, key, value)
        if "target_policy_logprobs" in rec or "base_policy_logprob" in rec:
            _check_logprobs(path, line, rec)
        for key in numeric:
            found, value = _value_at(rec, key)
            if not found or value is None or (isinstance(value, str) and not isinstance(value, _Num)):
                continue
            if isinstance(value, (list, dict)):
                kind = "a list" if isinstance(value, list) else "an object"
                raise CJEInputError(
                    f"{_where(path, line)}: {key!r} is {kind} ({_json_text(value)}) — write one "
                    "number per record (or null where it is missing)."
                )
            kinds.setdefault(key, {}).setdefault(isinstance(value, bool), line)
            if len(kinds[key]) == 2:
                b_line, n_line = kinds[key][True], kinds[key][False]
                raise CJEInputError(
                    f"'{path}': {key!r} is a boolean on line {b_line} and a number on line "
                    f"{n_line} — write every {key} as a number (true as 1, false as 0)."
                )


def _exact_ids(path: Path, key: str) -> list[str | None]:
    """The ids of one field as written, line by line (numbers keep their text).

    A JSON number and a JSON string with the same text in one column are refused.
    """
    out: list[str | None] = []
    first_of: dict[str, tuple[int, bool]] = {}
    for line, raw, last in _lines(path):
        rec = _parse_line(path, line, raw, last=last)
        _, value = _value_at(rec, key)
        text = _id_text(path, line, key, value)
        if text is not None:
            is_num = isinstance(value, _Num)
            prev = first_of.setdefault(text, (line, is_num))
            if prev[1] != is_num:
                num_line, str_line = (prev[0], line) if prev[1] else (line, prev[0])
                raise CJEInputError(
                    f"'{path}': {key!r} is the number {text} on line {num_line} and the string "
                    f"\"{text}\" on line {str_line}; they cannot be told apart as ids — write every "
                    f"{key} as a string (or every one as a number)."
                )
            text = str(text)
        out.append(text)
    return out


# --------------------------------------------------------------------------------------------
# JSON Lines: reading
# --------------------------------------------------------------------------------------------
def _source(path: Path) -> Any:
    """The path, or its bytes without a UTF-8 byte-order mark (polars rejects the mark)."""
    with open(path, "rb") as fh:
        head = fh.read(len(_BOM))
    if head == _BOM:
        with open(path, "rb") as fh:
            return io.BytesIO(fh.read()[len(_BOM):])
    return path


def _scan_jsonl(paths: Sequence[Path], want: Sequence[str] | None, ids: Sequence[str]) -> list[Any]:
    """Read JSONL files with polars, in parallel; ids exact; failures explained by line.

    Fast path: an explicit schema of the wanted fields (the rest of each line, e.g. long response
    texts, is skipped), all flat files collected at once. Files whose types differ from that
    guess or that hold nested records are read with full schema inference.
    """
    import polars as pl

    firsts = [_first_record(p) for p in paths]
    sources = [_source(p) for p in paths]
    frames: list[Any] = [None] * len(paths)
    if want is not None:
        types = {"response": pl.String, "draw_idx": pl.Int64}
        schema = {c: pl.String if c in ids else types.get(c, pl.Float64) for c in want}
        flat = [i for i, rec in enumerate(firsts) if not set(_LOGGED_KEYS) & set(rec)]
        try:
            got = pl.collect_all([pl.scan_ndjson(sources[i], schema=schema) for i in flat])
            for i, fr in zip(flat, got, strict=True):
                frames[i] = fr.select([c for c in want if fr.get_column(c).null_count() < fr.height])
        except Exception:  # types differ from the fast-path guess: infer them below
            pass
    for i, p in enumerate(paths):
        if frames[i] is None:
            src = sources[i]
            if isinstance(src, io.BytesIO):
                src.seek(0)
            try:
                frames[i] = pl.read_ndjson(src, infer_schema_length=None)
            except Exception as exc:  # message depends on the polars version
                _diagnose_jsonl(p, ids, _NUMERIC_FIELDS if want is None else
                                [c for c in want if c not in ids and c != "response"])
                raise CJEInputError(f"Cannot parse '{p}' as JSON Lines: {exc}") from None
        if not set(_LOGGED_KEYS) & set(firsts[i]):  # logged data: after flattening
            frames[i] = _exact_id_columns(frames[i], p, ids)
    return frames


def _looks_non_text(col: Any) -> bool:
    """Whether some value of a string id column may have come from a JSON number, boolean,
    list or object (polars turns those into text); plain string ids answer False cheaply."""
    import polars as pl

    if col.dtype != pl.String:
        return True
    return bool(col.str.contains(r"^(?:[-0-9\[{]|true$|false$)").any())


def _exact_id_columns(frame: Any, path: Path, ids: Sequence[str]) -> Any:
    """Id columns as the exact text written (a logged file's are read from ``metadata`` too)."""
    import polars as pl

    for key in ids:
        if key not in frame.columns:
            continue
        col = frame.get_column(key)
        if not _looks_non_text(col):
            continue
        if _plain_ints_only(path, key) and col.dtype in (pl.String, pl.Int64, pl.Int32, pl.Null):
            exact = col.cast(pl.String)
        else:
            exact = pl.Series(key, _exact_ids(path, key), dtype=pl.String)
        frame = frame.with_columns(exact.alias(key))
    return frame


def _plain_ints_only(path: Path, key: str) -> bool:
    """True when every non-string value of ``key`` in the file is a plain integer of at most 18
    digits (``7``; not ``7.0``, ``1e2``, ``-0``, ``true`` or a list) and no string value is
    written like one (``"7"``): then polars' text of the column is exactly what was written and
    no number can meet a string of the same text. A byte scan over a memory map, not a parse."""
    import mmap

    name = re.escape(json.dumps(key).encode())
    other = rb'\s*:\s*(?:-?[0-9]+[.eE]|-?[0-9]{19}|-0\b|[\[{tf]|"-?[0-9]+")'
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        if re.search(name + rb"\s*:\s*[-0-9\[{tf]", data) is None:
            return True  # strings and nulls only
        return re.search(name + other, data) is None


def _read_jsonl(path: Path, *, want: Sequence[str] | None, id_columns: Sequence[str],
                logging_policy: str) -> Any:
    """A long-format JSON Lines file, or a cje-eval logged-data file (told by its fields)."""
    ids = id_columns
    frame = _scan_jsonl([path], want, ids)[0]
    if frame.height == 0:
        raise CJEInputError(f"The input has no rows: '{path}' is empty.")
    if set(_LOGGED_KEYS) & set(frame.columns):
        return _logged_frame(frame, path, logging_policy, ids)
    _check_id_types(frame, path, ids)
    return frame


def _check_id_types(frame: Any, path: Path, ids: Sequence[str]) -> None:
    import polars as pl

    for key in ids:
        if key in frame.columns and frame.schema[key] not in (pl.String, pl.Null):
            _diagnose_jsonl(path, ids)  # names the line with the list or object id
            raise CJEInputError(  # pragma: no cover - the diagnosis finds it
                f"'{path}': {key!r} must hold strings or numbers; it was read as {frame.schema[key]}."
            )


def _logged_frame(frame: Any, path: Path, logging_policy: str, ids: Sequence[str]) -> Any:
    """Flatten the cje-eval logged-data format into standard columns."""
    import polars as pl

    meta_fields: list[str] = []
    if "metadata" in frame.columns and isinstance(frame.schema["metadata"], pl.Struct):
        meta_fields = [f.name for f in frame.schema["metadata"].fields]
    cols: list[Any] = []
    names: set[str] = set()
    for name in frame.columns:
        if name in _LOGGED_KEYS or isinstance(frame.schema[name], (pl.Struct, pl.List)):
            continue
        cols.append(frame.get_column(name))
        names.add(name)
    for name in ("prompt_id", "judge_score", "oracle_label"):
        if name not in names and name in meta_fields:
            cols.append(frame.get_column("metadata").struct.field(name).alias(name))
            names.add(name)
    if "prompt_id" not in names:
        raise CJEInputError(
            f"'{path}' looks like cje-eval logged data but has no prompt id: expected "
            "'metadata.prompt_id' or a top-level 'prompt_id' field on every row."
        )
    out = _exact_id_columns(pl.DataFrame(cols), path, ids)
    _check_id_types(out, path, ids)
    try:
        if "base_policy_logprob" in names:
            out = out.with_columns(pl.col("base_policy_logprob").cast(pl.Float64)
                                   .alias("logprob_base")).drop("base_policy_logprob")
        if "target_policy_logprobs" in frame.columns:
            tp = frame.get_column("target_policy_logprobs")
            if isinstance(tp.dtype, pl.Struct):
                out = out.with_columns([tp.struct.field(f.name).cast(pl.Float64)
                                        .alias(f"logprob[{f.name}]") for f in tp.dtype.fields])
            else:
                raise TypeError("target_policy_logprobs is not an object")
    except Exception as exc:  # 'n/a' strings and the like
        _diagnose_jsonl(path, ids)
        raise CJEInputError(f"Cannot read the log-probabilities of '{path}': {exc}") from None
    if "policy" not in names:
        out = out.with_columns(pl.lit(logging_policy, dtype=pl.String).alias("policy"))
    return out


def _read_fresh_draws_dir(path: Path, *, want: Sequence[str] | None, id_columns: Sequence[str]) -> Any:
    """Read a cje-eval fresh-draws directory: one ``<policy>_responses.jsonl`` per policy."""
    import polars as pl

    ids = id_columns
    files = sorted(path.glob("*_responses.jsonl"))
    if not files:
        raise CJEInputError(
            f"'{path}' is a directory but holds no '<policy>_responses.jsonl' files. Pass a "
            "long-format file instead, or a cje-eval fresh-draws directory."
        )
    for f in files:
        with open(f, "rb") as fh:
            if not any(line.strip() and line.strip() != _BOM for line in fh):
                raise CJEInputError(
                    f"Policy {f.name[: -len('_responses.jsonl')]!r} has no rows: '{f}' is empty. "
                    "Add its responses, or remove the file."
                )
    frames = []
    for f, fr in zip(files, _scan_jsonl(files, want, ids), strict=True):
        _check_id_types(fr, f, ids)
        if "policy" in fr.columns:
            fr = fr.drop("policy")
        frames.append(fr.with_columns(pl.lit(f.name[: -len("_responses.jsonl")]).alias("policy")))
    return pl.concat(frames, how="diagonal_relaxed")


# --------------------------------------------------------------------------------------------
# Small JSON Lines inputs: the standard library instead of polars (start-up cost)
# --------------------------------------------------------------------------------------------
#: Inputs up to this size (bytes, all files together) and line count may be read with :mod:`json`:
#: importing polars (and the pandas/pyarrow it loads) costs more CPU than parsing them in Python.
_SMALL_BYTES = 16 * 2**20
_SMALL_LINES = 20_000
_SURROGATE = re.compile("[\ud800-\udfff]")


class _NotPlain(Exception):
    """A record the small-input path does not read itself (the polars path reads or refuses it)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    rec = dict(pairs)
    if len(rec) != len(pairs):  # a repeated key: polars keeps the first, json the last
        raise _NotPlain
    return rec


def _finite(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):  # 1e400: polars refuses the line
        raise _NotPlain
    return v


def _plain_lines(path: Path, budget: list[int]) -> list[dict[str, Any]]:
    """Every record of a JSON Lines file, or :class:`_NotPlain` when the file is not plain."""
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM):]
    budget[0] -= data.count(b"\n")
    if budget[0] < 0:
        raise _NotPlain
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _NotPlain from None
    decode = json.JSONDecoder(object_pairs_hook=_pairs, parse_float=_finite,
                              parse_constant=_no_constant).decode
    try:
        recs = [decode(line) for line in text.split("\n") if line and not line.isspace()]
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
        raise _NotPlain from None
    if not all(type(rec) is dict for rec in recs):
        raise _NotPlain
    if not recs:
        raise _NotPlain
    return recs


def _plain_columns(recs: list[dict[str, Any]], want: Sequence[str],
                   ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The wanted fields of plain records as numpy columns, as polars would read them with the
    wanted schema (ids and ``response`` text, ``draw_idx`` Int64, the rest Float64) and
    ``to_numpy`` would return them; fields without a value in any record are left out.

    Raises :class:`_NotPlain` for any value that is not of its column's plain type (a number id,
    a boolean or string score, a non-finite or huge number, ...): those take the polars path."""
    if set(_LOGGED_KEYS) & set(recs[0]):  # logged data (told by the first record, as polars is)
        raise _NotPlain
    out: dict[str, np.ndarray] = {}
    for c in want:
        vals = [r.get(c) for r in recs]
        present = [v for v in vals if v is not None]
        if not present:
            continue
        missing = len(present) < len(vals)
        if c in ids or c == "response":
            if not all(type(v) is str and (v.isascii() or not _SURROGATE.search(v)) for v in present):
                raise _NotPlain  # numbers keep their text on the polars path; lone surrogates
            arr = np.empty(len(vals), dtype=object)
            arr[:] = vals
        elif c == "draw_idx":
            if not all(type(v) is int and -(2**53) <= v <= 2**53 for v in present):
                raise _NotPlain
            arr = (np.array([np.nan if v is None else float(v) for v in vals]) if missing
                   else np.array(vals, dtype=np.int64))
        else:
            if not all((type(v) is float and math.isfinite(v)) or (type(v) is int and -(2**53) <= v <= 2**53)
                       for v in present):
                raise _NotPlain
            arr = np.array([np.nan if v is None else float(v) for v in vals], dtype=np.float64)
        out[c] = arr
    if not out:  # no wanted field at all: polars reads no rows
        raise _NotPlain
    return out


def read_small_columns(
    path: str | Path,
    *,
    want: Sequence[str],
    id_columns: Sequence[str] = ID_COLUMNS,
) -> dict[str, Any] | None:
    """A small, plain JSON Lines input read with :mod:`json`, as :func:`read_table` would read it.

    The start-up path of ``cje analyze`` on a few thousand rows: importing polars costs more than
    parsing them. Only the built-in long-format JSONL reader and the cje-eval fresh-draws
    directory reader are served, only for inputs of at most :data:`_SMALL_BYTES` bytes and
    :data:`_SMALL_LINES` lines, and only when every line is a JSON object whose wanted fields are
    of their plain type (id and response text as strings; numbers finite; ``draw_idx`` an
    integer) with no repeated key and no logged-data fields. Anything else returns ``None`` and
    :func:`read_table` reads (or refuses, with its messages) the input as before, so no check is
    lost. The columns equal ``read_table(...)``'s converted with ``to_numpy()``.

    Parameters
    ----------
    path : str or pathlib.Path
        A JSON Lines file or a fresh-draws directory.
    want : sequence of str
        The fields to read (as in :func:`read_table`).
    id_columns : sequence of str
        Columns read as text.

    Returns
    -------
    dict of str to numpy.ndarray, or None
        ``None`` when the input is not small and plain (then call :func:`read_table`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "runs.jsonl"
    ...     _ = p.write_text('{"prompt_id": "a", "judge_score": 3}\\n{"prompt_id": 7, "judge_score": 1}\\n')
    ...     plain = read_small_columns(p, want=["prompt_id", "judge_score"])
    ...     _ = p.write_text('{"prompt_id": "a", "judge_score": 3}\\n')
    ...     cols = read_small_columns(p, want=["prompt_id", "judge_score", "oracle_label"])
    >>> plain is None   # a number id: read_table keeps its exact text
    True
    >>> cols
    {'prompt_id': array(['a'], dtype=object), 'judge_score': array([3.])}
    """
    path = Path(path)
    try:
        reader = reader_for(path)
        if reader.read is _read_fresh_draws_dir:
            files = sorted(path.glob("*_responses.jsonl"))
        elif reader.read is _read_jsonl:
            files = [path]
        else:
            return None
        if not files or sum(f.stat().st_size for f in files) > _SMALL_BYTES:
            return None
        budget = [_SMALL_LINES]
        ids = tuple(id_columns)
        if reader.read is _read_jsonl:
            return _plain_columns(_plain_lines(path, budget), want, ids)
        parts: list[dict[str, np.ndarray]] = []
        for f in files:
            cols = _plain_columns(_plain_lines(f, budget), want, ids)
            cols.pop("policy", None)  # the file name names the policy (its ids checked above)
            if not cols:
                return None
            n = len(next(iter(cols.values())))
            name = np.empty(n, dtype=object)
            name[:] = f.name[: -len("_responses.jsonl")]
            cols["policy"] = name
            parts.append(cols)
    except (_NotPlain, CJEInputError, OSError):
        return None
    return _concat_diagonal(parts)


def _concat_diagonal(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack column dicts like ``polars.concat(how="diagonal_relaxed")`` then ``to_numpy``:
    columns in order of first appearance, a column missing from a part is null there (None in
    text, NaN in numbers; an integer column with nulls becomes float, as polars' Int64 does)."""
    names = list(dict.fromkeys(c for p in parts for c in p))
    sizes = [len(p["policy"]) for p in parts]
    out: dict[str, np.ndarray] = {}
    for c in names:
        got = [p.get(c) for p in parts]
        present = [a for a in got if a is not None]
        kinds = {a.dtype.kind for a in present}
        if len(present) == len(got) and kinds != {"i", "f"}:
            out[c] = np.concatenate(present)  # one type throughout
            continue
        text = kinds == {"O"}
        out[c] = np.concatenate([
            (np.full(n, None, dtype=object) if text else np.full(n, np.nan)) if a is None
            else (a if text else a.astype(np.float64))
            for a, n in zip(got, sizes, strict=True)])
    return out


# --------------------------------------------------------------------------------------------
# The built-in formats: registry entries like any other
# --------------------------------------------------------------------------------------------
register_reader("csv", _read_csv, suffixes=[".csv"])
register_reader("parquet", _read_parquet, suffixes=[".parquet", ".pq"])
register_reader("jsonl", _read_jsonl, suffixes=_JSONL)
register_reader("fresh-draws", _read_fresh_draws_dir, matches=Path.is_dir)
_BUILT_IN: tuple[Reader, ...] = tuple(_REGISTRY.values())
