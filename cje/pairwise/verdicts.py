"""The pairwise-verdicts model: one row per verdict, validated in one place (docs: Judge bias).

Columns: ``prompt_id``, ``a_id``, ``b_id`` (the two compared items, e.g. policies), ``slot_a`` (1
or 2: the position in which item a was shown) and ``winner`` in {"a", "b", "tie"}; optional
``judge``, ``run`` (repeats of the same order), ``human_winner``, ``len_a``, ``len_b``,
``a_family``, ``b_family`` and ``judge_family``.

Two readings of it, one per kind of analysis:

* :func:`pairs_frame` (scores: win rates, Bradley–Terry) pools every judge and run and keeps the
  ids as given (their values and types);
* :func:`load_pairs` (bias tests) keeps one judge, compares ids as text and puts every pair in the
  canonical order ``a_id < b_id``, returning numpy codes (:class:`PairData`).

(They differ in how strictly they read winners and how they name rows; both are kept as they were
so that no message or number changes.) Both refuse, naming the two rows, an id written two ways —
two different values that read as the same text (``7`` and ``"7"``, ``"A "`` and ``"A"``), the
rule of :func:`cje.load` — rather than merge them or keep two items that print alike; and
:func:`load_pairs` refuses a verdict without its judge when there is a ``judge`` column. Both
read their input with :func:`cje.tables.as_frame`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from cje.data import _row_ref
from cje.errors import CJEInputError
from cje.pairwise._common import _check_ids, _has, _isna, _py, _show, _sorted, family_keys
from cje.tables import as_frame, require_columns

__all__ = ["PAIR_COLUMNS", "WINNERS", "PairData", "load_pairs", "pair_codes", "pairs_frame"]

#: Columns every verdict has.
PAIR_COLUMNS: tuple[str, ...] = ("prompt_id", "a_id", "b_id", "slot_a", "winner")
#: The values of ``winner`` (and ``human_winner``), in the order of their codes 0, 1, 2.
WINNERS: tuple[str, ...] = ("a", "b", "tie")


def pairs_frame(pairs: Any, what: str) -> Any:
    """Validate verdicts of every judge and run, pooled; return a clean pandas frame.

    The entry of the scores (:func:`~cje.pairwise.win_rates`, :func:`~cje.pairwise.bradley_terry`):
    ids are kept as given (``1`` and ``"2"`` stay an int and a str; ``1`` and ``"1"``, one id
    written two ways, are refused), winners must be exactly
    ``"a"``, ``"b"`` or ``"tie"``, and messages name the row's position.

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
    what : str
        The caller's name for messages, e.g. ``"win_rates"``.

    Returns
    -------
    pandas.DataFrame
        The contract columns, ``slot_a`` as int64 and ``winner`` as str.

    Examples
    --------
    >>> v = {"prompt_id": ["p1", "p1"], "a_id": ["x", "y"], "b_id": ["y", "x"],
    ...      "slot_a": [1.0, 2.0], "winner": ["a", "tie"]}
    >>> pairs_frame(v, "win_rates")["slot_a"].tolist()
    [1, 2]
    """

    df = as_frame(pairs)
    require_columns(list(df.columns), PAIR_COLUMNS, what)
    n = len(df)
    if n == 0:
        raise CJEInputError(f"{what} needs at least one verdict; the pairs frame has no rows.")
    pid = df["prompt_id"].to_numpy(dtype=object)
    for col in ("prompt_id", "a_id", "b_id"):
        bad = _isna(df[col].to_numpy(dtype=object))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = _row_ref(i, None if col == "prompt_id" else pid)
            raise CJEInputError(
                f"The '{col}' column must be non-empty on every row; {where} is missing "
                f"({int(bad.sum())} such rows). Fill it in, or drop the row."
            )
    for col in ("prompt_id", "a_id", "b_id"):  # 7 and "7" are one id written two ways: refused
        _check_ids(df[col], col)
    _check_ids(pd.concat([df["a_id"], df["b_id"]], ignore_index=True), "a_id and b_id",
               where=_ab_row(n))
    a = df["a_id"].to_numpy(dtype=object)
    b = df["b_id"].to_numpy(dtype=object)
    same = a == b
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise CJEInputError(
            f"Each verdict must compare two different items; {_row_ref(i, pid)} has a_id = b_id = "
            f"{_py(a[i])!r}. Drop self-comparisons."
        )
    win = df["winner"].to_numpy(dtype=object)
    ok = np.array([isinstance(w, str) and w in WINNERS for w in win], dtype=bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CJEInputError(
            f"The 'winner' column must be 'a', 'b' or 'tie'; {_row_ref(i, pid)} {_has(win[i])} "
            f"({int((~ok).sum())} such rows). Map each verdict to 'a' (a_id won), 'b' (b_id won) or 'tie'."
        )
    slot_raw = df["slot_a"].to_numpy(dtype=object)
    slot = pd.to_numeric(pd.Series(slot_raw), errors="coerce").to_numpy(dtype=np.float64)
    ok = (slot == 1.0) | (slot == 2.0)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CJEInputError(
            f"The 'slot_a' column must be 1 or 2 (the position in which item a was shown); "
            f"{_row_ref(i, pid)} {_has(slot_raw[i])} ({int((~ok).sum())} such rows). "
            "Record 1 if a_id was shown first, 2 if second."
        )
    out = pd.DataFrame(
        {
            "prompt_id": df["prompt_id"].to_numpy(),
            "a_id": a,
            "b_id": b,
            "slot_a": slot.astype(np.int64),
            "winner": win.astype(str),
        }
    )
    return out


def pair_codes(df: Any) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, int]:
    """Items (sorted), item codes of a and b, prompt codes and the number of prompts.

    Parameters
    ----------
    df : pandas.DataFrame
        A frame from :func:`pairs_frame`.

    Returns
    -------
    (items, a_code, b_code, prompt_code, n_prompts)
        ``items`` sorted naturally (by text when not comparable); codes index into ``items``
        and into the prompts in order of appearance.

    Examples
    --------
    >>> df = pairs_frame({"prompt_id": ["p2", "p1"], "a_id": ["y", "x"], "b_id": ["x", "z"],
    ...                   "slot_a": [1, 2], "winner": ["a", "b"]}, "win_rates")
    >>> items, ia, ib, pcode, g = pair_codes(df)
    >>> items, ia.tolist(), ib.tolist(), pcode.tolist(), g
    (['x', 'y', 'z'], [1, 0], [0, 2], [0, 1], 2)
    """
    items = _sorted(pd.unique(np.concatenate([df["a_id"].to_numpy(), df["b_id"].to_numpy()])))
    index = pd.Index(items, dtype=object)
    ia = index.get_indexer(df["a_id"].to_numpy())
    ib = index.get_indexer(df["b_id"].to_numpy())
    pcode, puniq = pd.factorize(df["prompt_id"])
    return items, ia.astype(np.int64), ib.astype(np.int64), pcode.astype(np.int64), len(puniq)


@dataclass(frozen=True, eq=False)
class PairData:
    """Validated pairwise verdicts as numpy arrays (rows of one judge, pairs in canonical order).

    ``a_id`` < ``b_id`` (as strings) on every row: rows given the other way round have their
    ids, slot, winners, lengths and families swapped. Codes: winners 0 = a, 1 = b, 2 = tie
    (−1 = missing human verdict). Arrays of columns that were not requested are ``None``.

    Examples
    --------
    >>> v = {"prompt_id": ["p1", "p1"], "a_id": ["B", "A"], "b_id": ["A", "B"],
    ...      "slot_a": [1, 1], "winner": ["a", "tie"]}
    >>> d = load_pairs(v, PAIR_COLUMNS, "position bias", None)
    >>> d.a_id.tolist(), d.b_id.tolist(), d.slot.tolist(), d.w.tolist()
    (['A', 'A'], ['B', 'B'], [2, 1], [1, 2])
    """

    row: np.ndarray  # original row labels, for messages
    prompt_id: np.ndarray  # str
    prompt: np.ndarray  # prompt code 0..G-1
    a_id: np.ndarray | None
    b_id: np.ndarray | None
    pair: np.ndarray | None  # pair code (prompt, a_id, b_id)
    slot: np.ndarray | None
    run: np.ndarray | None  # run code
    w: np.ndarray | None
    h: np.ndarray | None
    len_a: np.ndarray | None
    len_b: np.ndarray | None
    a_family: np.ndarray | None
    b_family: np.ndarray | None
    judge_family: np.ndarray | None
    judge: str | None

    def pair_txt(self, i: int) -> str:
        """``(prompt_id=…, a_id=…, b_id=…[, judge=…])`` of row ``i``, for messages.

        Parameters
        ----------
        i : int
            Row position.

        Returns
        -------
        str

        Examples
        --------
        >>> v = {"prompt_id": ["p1"], "a_id": ["A"], "b_id": ["B"], "slot_a": [1], "winner": ["a"]}
        >>> load_pairs(v, PAIR_COLUMNS, "position bias", None).pair_txt(0)
        "(prompt_id='p1', a_id='A', b_id='B')"
        """
        txt = f"prompt_id={self.prompt_id[i]!r}"
        if self.a_id is not None and self.b_id is not None:
            txt += f", a_id={self.a_id[i]!r}, b_id={self.b_id[i]!r}"
        if self.judge is not None:
            txt += f", judge={self.judge!r}"
        return f"({txt})"


def load_pairs(pairs: Any, needed: Sequence[str], what: str, judge: str | None) -> PairData:
    """Validate pairwise verdicts for one judge and put every pair in canonical order.

    The entry of the bias tests (:mod:`cje.bias.position`, :mod:`cje.bias.pairwise_tests`): ids
    are compared as text (two values that read alike, ``7`` and ``"7"``, are refused), winners
    ignore case and surrounding spaces, a missing ``judge`` is refused, and messages name the
    row's label.

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
    needed : sequence of str
        Columns the calling test needs; only these (plus ``judge`` and, with ``slot_a``, ``run``)
        are read and validated.
    what : str
        The test's name for messages, e.g. ``"position bias"``.
    judge : str or None
        Judge to keep when a ``judge`` column holds several (required then).

    Returns
    -------
    PairData

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"prompt_id": ["p1", "p1"], "a_id": ["B", "A"], "b_id": ["A", "B"],
    ...                   "slot_a": [1, 1], "winner": ["a", "B"]})
    >>> d = load_pairs(v, PAIR_COLUMNS, "position bias", None)
    >>> d.a_id.tolist(), d.slot.tolist(), d.w.tolist(), d.pair.tolist()
    (['A', 'A'], [2, 1], [1, 1], [0, 0])
    """

    frame = as_frame(pairs)
    require_columns(list(frame.columns), needed, what)
    if len(frame) == 0:
        raise CJEInputError(f"{what}: the data have no rows.")
    keep = np.ones(len(frame), dtype=bool)
    judge_name: str | None = None
    # ids are compared as text: two values that read alike (7 and "7", "A " and "A") are refused,
    # never merged; a verdict without its judge is refused, never dropped or pooled
    for name in ("prompt_id", "a_id", "b_id", "judge"):
        if name in frame.columns and (name in needed or name == "judge"):
            _check_ids(frame[name], name, allow_missing=name != "judge")
    if "a_id" in needed and "b_id" in needed:
        _check_ids(pd.concat([frame["a_id"], frame["b_id"]], ignore_index=True), "a_id and b_id",
                   allow_missing=True, where=_ab_row(len(frame)))
    if judge is not None:
        if "judge" not in frame.columns:
            raise CJEInputError(
                f"judge={judge!r} was given but the data have no 'judge' column; drop judge= or add "
                "the column."
            )
        keep = (frame["judge"].astype(str) == str(judge)).to_numpy()
        if not keep.any():
            have = ", ".join(map(str, pd.unique(frame["judge"].dropna())))
            raise CJEInputError(f"No verdicts of judge={judge!r}; the 'judge' column holds: {have}.")
        judge_name = str(judge)
    elif "judge" in frame.columns:
        judges = pd.unique(frame["judge"].dropna())
        if len(judges) > 1:
            shown = ", ".join(map(str, judges[:5])) + (" …" if len(judges) > 5 else "")
            raise CJEInputError(
                f"The 'judge' column holds {len(judges)} judges ({shown}); {what} tests one judge at "
                f"a time: pass judge={str(judges[0])!r} (or another), or run the bias audit, which "
                "tests every judge and Holm-adjusts across them."
            )
        if len(judges) == 1:
            judge_name = str(judges[0])

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy()[keep]

    row = frame.index.to_numpy()[keep]
    ids: dict[str, np.ndarray | None] = {}
    for name in ("prompt_id", "a_id", "b_id", "a_family", "b_family", "judge_family"):
        if name not in needed:
            ids[name] = None
            continue
        v = col(name)
        bad = np.asarray(pd.isna(v), dtype=bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"The '{name}' column has missing values in {int(bad.sum())} row(s), e.g. row "
                f"{_py(row[i])!r}; fill or drop them."
            )
        # families by family_key (1 and 1.0 are one family; 1 and "1" are refused by the
        # caller's _check_families, which reads the columns themselves)
        ids[name] = family_keys(v) if name.endswith("family") else v.astype(str).astype(object)
    pid = ids["prompt_id"]
    assert pid is not None  # prompt_id is needed by every test
    w = _winner_codes(col("winner"), "winner", False, row, pid) if "winner" in needed else None
    h = (
        _winner_codes(col("human_winner"), "human_winner", True, row, pid)
        if "human_winner" in needed
        else None
    )
    slot = run = None
    if "slot_a" in needed:
        raw = col("slot_a")
        s = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isin(s, (1.0, 2.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"The 'slot_a' column must be 1 or 2 (the slot in which item a was shown); row "
                f"{_py(row[i])!r} (prompt_id={pid[i]!r}) has {_show(raw[i])}."
            )
        slot = s.astype(np.int64)
        if "run" in frame.columns:
            r = col("run")
            bad = np.asarray(pd.isna(r), dtype=bool)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise CJEInputError(f"The 'run' column has missing values, e.g. row {_py(row[i])!r}.")
            run = pd.factorize(r)[0]
    len_a = len_b = None
    if "len_a" in needed:
        len_a, len_b = (_lengths(col(c), c, row, pid) for c in ("len_a", "len_b"))
    a_id, b_id = ids["a_id"], ids["b_id"]
    a_fam, b_fam = ids["a_family"], ids["b_family"]
    pair = None
    if a_id is not None and b_id is not None:
        same = np.asarray(a_id == b_id, dtype=bool)
        if same.any():
            i = int(np.flatnonzero(same)[0])
            raise CJEInputError(
                f"a_id and b_id must differ; row {_py(row[i])!r} (prompt_id={pid[i]!r}) compares "
                f"{a_id[i]!r} with itself."
            )
        swap = np.asarray(a_id > b_id, dtype=bool)
        if swap.any():
            a_id, b_id = np.where(swap, b_id, a_id), np.where(swap, a_id, b_id)
            if len_a is not None and len_b is not None:
                len_a, len_b = np.where(swap, len_b, len_a), np.where(swap, len_a, len_b)
            if a_fam is not None and b_fam is not None:
                a_fam, b_fam = np.where(swap, b_fam, a_fam), np.where(swap, a_fam, b_fam)
            if slot is not None:
                slot = np.where(swap, 3 - slot, slot)
            flip = np.array([1, 0, 2, -1])  # index -1 (missing) maps to -1
            if w is not None:
                w = np.where(swap, flip[w], w)
            if h is not None:
                h = np.where(swap, flip[h], h)
        item_code = pd.factorize(np.concatenate([a_id, b_id]))[0]
        k = int(item_code.max()) + 1
        prompt_code = pd.factorize(pid)[0].astype(np.int64)
        key = (prompt_code * k + item_code[: pid.size]) * k + item_code[pid.size :]
        pair = pd.factorize(key)[0]
    return PairData(
        row=row,
        prompt_id=pid,
        prompt=pd.factorize(pid)[0],
        a_id=a_id,
        b_id=b_id,
        pair=pair,
        slot=slot,
        run=run,
        w=w,
        h=h,
        len_a=len_a,
        len_b=len_b,
        a_family=a_fam,
        b_family=b_fam,
        judge_family=ids["judge_family"],
        judge=judge_name,
    )


def _ab_row(n: int) -> Any:
    """Names a position of ``a_id`` stacked on ``b_id`` (``n`` rows each) for messages."""
    return lambda i: f"row {i} (a_id)" if i < n else f"row {i - n} (b_id)"


def _winner_codes(
    values: np.ndarray, name: str, allow_missing: bool, row: np.ndarray, pid: np.ndarray
) -> np.ndarray:
    """Codes 0 = a, 1 = b, 2 = tie (−1 = missing); case and surrounding spaces are ignored."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array(
        [WINNERS.index(t) if (t := str(u).strip().lower()) in WINNERS else -2 for u in uniques] + [-1],
        dtype=np.int64,
    )
    out = lookup[codes]  # the sentinel -1 indexes the trailing "missing" entry
    bad = (out == -2) | ((out == -1) & (not allow_missing))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CJEInputError(
            f"The '{name}' column must be 'a', 'b' or 'tie'{' (or missing)' if allow_missing else ''}; "
            f"{int(bad.sum())} row(s) are not, e.g. row {_py(row[i])!r} (prompt_id={pid[i]!r}) has "
            f"{_show(values[i])}. Map your labels to a/b/tie (the item named a_id won, b_id won, or a tie)."
        )
    return out


def _lengths(values: np.ndarray, name: str, row: np.ndarray, pid: np.ndarray) -> np.ndarray:
    v = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    bad = ~(np.isfinite(v) & (v > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CJEInputError(
            f"The '{name}' column must hold positive response lengths (tokens); row {_py(row[i])!r} "
            f"(prompt_id={pid[i]!r}) has {_show(values[i])}."
        )
    return v
