"""Small helpers shared by the pairwise modules: readable values and row references in messages,
missing-value tests and a natural sort that tolerates mixed types."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

#: Below this many prompts a prompt-cluster bootstrap interval is too narrow. The plain percentile
#: interval of :func:`cje.bias.position`'s first-slot rate covered 0.48 / 0.72 / 0.87 / 0.91 / 0.93
#: / 0.94 with 3 / 5 / 10 / 20 / 30 / 100 prompts, the expanded one the package now uses
#: (:func:`cje.inference.expanded_alpha`) 0.48 / 0.74 / 0.92 / 0.94 / 0.94 / 0.95 (1,500 replicates
#: each, MC SE ≤ 0.013; ``simulations/results/bootstrap_few_prompts.md``); win-rate and strength
#: intervals over 20 prompts 0.91–0.96 by item. Still short up to about 10, and single items still
#: dip below 0.93 at 20, so the warning stays at 30.
MIN_BOOTSTRAP_PROMPTS: int = 30


def _few_prompts_note(g: int, what: str) -> str | None:
    """The warning for a prompt-cluster bootstrap over ``g`` prompts (None when ``g`` is enough)."""
    if g < 2:
        return (f"{what}: all verdicts come from one prompt, so a prompt-cluster interval does not "
                "exist (resampling one prompt returns it unchanged); no interval is given. Judge "
                "more prompts.")
    if g < MIN_BOOTSTRAP_PROMPTS:
        return (f"{what}: only {g} prompts; a prompt-cluster bootstrap interval is too narrow "
                f"below about {MIN_BOOTSTRAP_PROMPTS} prompts (95% intervals covered 0.48 at 3 "
                "prompts, 0.74 at 5 and 0.92 at 10). Read it as a lower bound on the uncertainty.")
    return None


def _rare_items_note(items: Any, item_prompts: np.ndarray, g: int, what: str) -> str | None:
    """The warning for items compared on fewer than ``MIN_BOOTSTRAP_PROMPTS`` of ``g`` prompts.

    An item's interval rests on the prompts where it was compared: the prompt-cluster bootstrap
    over 200 prompts is, for an item seen on 6 of them, a bootstrap over 6 clusters (its 95%
    win-rate and strength intervals covered 0.86–0.87 as plain percentile intervals, 0.95 as the
    expanded ones over its own prompts; ``simulations/results/bootstrap_few_prompts.md``). The
    warning stays: below 30 prompts the interval rests on few clusters, however it is widened.
    None when every item has enough prompts, or when the data as a whole have too few (that
    warning is :func:`_few_prompts_note`'s).
    """
    if g < MIN_BOOTSTRAP_PROMPTS:
        return None
    rare = np.flatnonzero(np.asarray(item_prompts) < MIN_BOOTSTRAP_PROMPTS)
    if rare.size == 0:
        return None
    names = ", ".join(f"{_py(items[i])!r} ({int(item_prompts[i])})" for i in rare[:5])
    more = f" and {rare.size - 5} more" if rare.size > 5 else ""
    return (f"{what}: item(s) {names}{more} were compared on fewer than {MIN_BOOTSTRAP_PROMPTS} of "
            f"the {g} prompts (prompt counts in brackets). Their intervals rest on those prompts "
            "alone; they are widened for it, but a bootstrap over that few prompts is coarse: read them "
            "with care, or compare these items on more prompts.")


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


def _check_ids(values: Any, name: str, *, allow_missing: bool = False,
               where: Callable[[int], str] | None = None, kind: str = "id") -> None:
    """Refuse an id column in which two different values read as the same id.

    The rule of :func:`cje.load`: ids are compared as text, so ``7`` and ``"7"`` (or ``"a "`` and
    ``"a"``) are one id written two ways — refused, naming both rows, rather than merged (or kept
    apart as two ids that print alike). Unless ``allow_missing``, a missing or empty id is refused
    too, naming its row (positions counted from 0, as in :func:`cje.load`).

    Parameters
    ----------
    values : array-like
        The column.
    name : str
        Its name, for the message.
    allow_missing : bool
        Let missing values pass (the caller reports them).
    where : callable, optional
        Row position → how the message names it (default ``"row i"``).
    kind : str
        What the values are, for the message (``"id"``; ``"label"`` for categorical labels).

    Raises
    ------
    CJEInputError

    Examples
    --------
    >>> _check_ids(["p1", "p2", "p1"], "prompt_id")
    >>> _check_ids([7, "7"], "a_id")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The 'a_id' column has two different values that read as the same id '7': ...
    """
    import pandas as pd

    from cje.errors import CJEInputError

    if hasattr(values, "to_numpy"):
        arr = values.to_numpy()
    elif isinstance(values, np.ndarray):
        arr = values
    else:  # a list: np.asarray would turn [7, "7"] into two equal strings
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.dtype.kind in "iub":  # integers cannot collide
        return
    name_row = where or (lambda i: f"row {i}")
    the = f"The {name!r} column" if " " not in name else f"The {name} columns"
    codes, uniq = pd.factorize(np.asarray(arr, dtype=object), use_na_sentinel=True)
    if not allow_missing:
        missing = codes < 0
        empty = np.array([isinstance(u, str) and not u.strip() for u in uniq] + [False], dtype=bool)
        missing |= empty[codes] & (codes >= 0)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise CJEInputError(
                f"{the} must name {'an' if kind[0] in 'aeiou' else 'a'} {kind} on every row; "
                f"{name_row(i)} has "
                f"{_show(arr[i])} ({int(missing.sum())} such rows). Fill it in, or drop the row."
            )
    if pd.api.types.infer_dtype(uniq, skipna=True) == "string":  # fast path: all text
        text = pd.Series(uniq, dtype=object)
        if (text.str.strip() == text).all():  # no two distinct strings read alike
            return
    _, first = np.unique(codes, return_index=True)
    first = first[codes[first] >= 0]
    seen: dict[str, int] = {}
    for i in first.tolist():
        v = arr[i]
        text = (str(int(v)) if isinstance(v, (float, np.floating)) and float(v).is_integer()
                else str(v).strip())
        if text in seen:
            j = seen[text]
            verb = "have" if " " in name else "has"
            raise CJEInputError(
                f"{the} {verb} two different values that read as the same {kind} {text!r}: "
                f"{name_row(j)} has {_show(arr[j])} ({type(arr[j]).__name__}) and {name_row(i)} has "
                f"{_show(v)} ({type(v).__name__}). {kind.capitalize()}s are compared as text: write "
                f"each {kind} the same way on every row (e.g. all as strings, without surrounding "
                "spaces)."
            )
        seen[text] = i


def _refuse_inf(values: Any, name: str) -> None:
    """Refuse ±inf among categorical labels (a data error, not a category), naming the row.

    Examples
    --------
    >>> _refuse_inf([1, 2.0, "x"], "label")
    >>> _refuse_inf([1, float("inf")], "label")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The 'label' column must hold labels; row 1 has inf. Drop or fix it.
    """
    from cje.errors import CJEInputError

    arr = values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values, dtype=object)
    if arr.dtype.kind in "iub" or arr.dtype.kind in "OUS" and not any(
            isinstance(u, (float, np.floating)) for u in arr.tolist()):
        return
    inf = np.array([isinstance(u, (float, np.floating)) and np.isinf(u) for u in arr.tolist()],
                   dtype=bool)
    if inf.any():
        i = int(np.flatnonzero(inf)[0])
        raise CJEInputError(f"The {name!r} column must hold labels; row {i} has {_py(arr[i])!r}. "
                            "Drop or fix it.")


def _zero_width_note(items: Any, lo: np.ndarray, hi: np.ndarray, what: str) -> str | None:
    """A warning when some finite bootstrap interval has zero width (None otherwise)."""
    zero = np.isfinite(lo) & np.isfinite(hi) & (hi - lo <= 1e-6)  # (a ridge fit leaves ~1e-8)
    if not zero.any():
        return None
    names = ", ".join(repr(_py(items[i])) for i in np.flatnonzero(zero)[:5])
    return (f"{what}: the interval of {names} has zero width — every bootstrap resample gave the "
            "same value (e.g. it won, lost or tied every comparison). A percentile bootstrap "
            "cannot measure that uncertainty; it is not certainty. Collect more comparisons.")


def family_key(value: Any) -> str:
    """The text a model family is matched by: a string as written; a number as its text, a whole
    number without a decimal point (``1``, ``1.0`` and ``np.int64(1)`` are one family, ``"1"`` once
    :func:`_check_families` has ruled out its being written both ways).

    Parameters
    ----------
    value : object
        One family cell (not missing).

    Returns
    -------
    str

    Examples
    --------
    >>> family_key("gpt"), family_key(1.0), family_key(np.int64(3)), family_key(0.5)
    ('gpt', '1', '3', '0.5')
    """
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def family_keys(values: Any) -> np.ndarray:
    """:func:`family_key` of every cell (object array; missing cells stay missing).

    Parameters
    ----------
    values : array-like

    Returns
    -------
    numpy.ndarray of object

    Examples
    --------
    >>> family_keys([1, 2.0, "gpt", None]).tolist()
    ['1', '2', 'gpt', None]
    """
    arr = values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else np.asarray(values, dtype=object)
    miss = _isna(arr)
    return np.array([None if m else family_key(v) for v, m in zip(arr.tolist(), miss, strict=True)],
                    dtype=object)


def _check_one_family(judges: Any, families: Any) -> None:
    """Refuse a judge given two different model families on different rows (one would be
    silently picked, or each row matched against another family).

    Parameters
    ----------
    judges, families : array-like
        The ``judge`` and ``judge_family`` columns (missing families are the callers' business).

    Raises
    ------
    CJEInputError

    Examples
    --------
    >>> _check_one_family(["a", "a", "b"], ["gpt", "gpt", 1])
    >>> _check_one_family(["a", "a"], ["gpt", "claude"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: Judge 'a' has two model families, 'gpt' (row 0) and 'claude' (row 1)...
    """
    from cje.errors import CJEInputError

    judges = judges.to_numpy(dtype=object) if hasattr(judges, "to_numpy") else \
        np.asarray(judges, dtype=object)
    keys = family_keys(families)
    first: dict[Any, tuple[Any, int]] = {}
    for i, (j, f) in enumerate(zip(judges.tolist(), keys.tolist(), strict=True)):
        if f is None:
            continue
        if j not in first:
            first[j] = (f, i)
        elif first[j][0] != f:
            raise CJEInputError(
                f"Judge {_py(j)!r} has two model families, {first[j][0]!r} (row {first[j][1]}) and "
                f"{f!r} (row {i}). A judge is one model: give it one family on every row."
            )


def _check_families(columns: dict[str, Any]) -> None:
    """Refuse model-family names that read alike but are written differently across the family
    columns (``"GPT"`` / ``"gpt"`` / ``"GPT "``, or the number ``1`` and the text ``"1"``).

    Families are matched by :func:`family_key` (a judge's family against a generator's), so one
    family written two ways never matches itself: the judge's own-family responses would count as
    another family's and its self-preference would go unseen. Refused, naming both spellings and
    where each first appears; missing values are the callers' business.

    Parameters
    ----------
    columns : dict of str to array-like
        Column name → its values (e.g. ``judge_family`` and ``policy_family``).

    Raises
    ------
    CJEInputError

    Examples
    --------
    >>> _check_families({"judge_family": ["gpt", "claude"], "policy_family": ["gpt", "gpt"]})
    >>> _check_families({"judge_family": ["GPT"], "policy_family": ["gpt"]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The family names 'GPT' (judge_family, row 0) and 'gpt' ... differ only ...
    >>> _check_families({"judge_family": [1], "policy_family": ["1"]})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The family names 1 (judge_family, row 0) and '1' ... a number and as text...
    """
    from cje.errors import CJEInputError

    def spelling(v: Any) -> tuple[bool, str]:  # (written as text, how)
        return (True, v) if isinstance(v, str) else (False, family_key(v))

    seen: dict[str, tuple[Any, str, int]] = {}
    for col, values in columns.items():
        arr = values.to_numpy(dtype=object) if hasattr(values, "to_numpy") else \
            np.asarray(values, dtype=object)
        miss = _isna(arr)
        firsts: dict[tuple[bool, str], tuple[Any, int]] = {}
        for i, v in enumerate(arr.tolist()):
            if not miss[i]:
                firsts.setdefault(spelling(v), (v, i))
        for (text, written), (v, i) in firsts.items():
            key = written.strip().casefold()
            if key in seen and spelling(seen[key][0]) != (text, written):
                other, ocol, oi = seen[key]
                how = ("are one family written as a number and as text" if
                       isinstance(other, str) != text else "differ only in case or surrounding spaces")
                raise CJEInputError(
                    f"The family names {_py(other)!r} ({ocol}, row {oi}) and {_py(v)!r} ({col}, row "
                    f"{i}) {how}. Families are matched as written, "
                    "so one family written two ways would never match itself (its self-preference "
                    "would go unseen): write each family the same way everywhere."
                )
            seen.setdefault(key, (v, col, i))
