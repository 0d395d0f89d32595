"""Argument checks of the public functions: each misuse is a :class:`~cje.errors.CJEInputError`
naming the argument, the value received and the fix.

Strings are never taken for sequences (``policies="ab"`` is refused, not read as ``["a", "b"]``),
booleans never for numbers, and numbers are not converted silently (``seed=1.7`` is refused, not
truncated to 1).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from cje.errors import OR_DROP, CJEInputError

__all__ = ["check_vector", "check_choice", "check_int", "check_mapping", "check_number", "check_scale",
           "check_str_list", "naming"]


def _shown(value: Any) -> str:
    """``repr`` of a value, shortened to one readable line."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _kind(value: Any) -> str:
    return type(value).__name__


def check_int(name: str, value: Any, *, minimum: int | None = None, example: str = "") -> int:
    """An integer (Python or NumPy; not a bool, a float or a string), at least ``minimum``.

    Examples
    --------
    >>> check_int("seed", 3)
    3
    >>> check_int("seed", 1.7)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: seed must be an integer; got 1.7 (float). Pass a whole number, ...
    """
    bound = f" >= {minimum}" if minimum is not None else ""
    hint = f" Pass a whole number{bound}, e.g. {example or f'{name}={minimum or 0}'}."
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CJEInputError(f"{name} must be an integer{bound}; got {_shown(value)} ({_kind(value)}).{hint}")
    if minimum is not None and value < minimum:
        raise CJEInputError(f"{name} must be an integer{bound}; got {_shown(value)}.{hint}")
    return int(value)


def check_number(name: str, value: Any, *, positive: bool = False, finite: bool = True,
                 example: str = "") -> float:
    """A real number (not a bool or a string), optionally > 0, finite unless ``finite=False``.

    Examples
    --------
    >>> check_number("transport_margin", 0.1, positive=True)
    0.1
    >>> check_number("transport_margin", "0.1", positive=True)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: transport_margin must be a positive number; got '0.1' (str). ...
    """
    what = "a positive number" if positive else "a number"
    hint = f" Pass a number, e.g. {example or f'{name}=0.1'}."
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CJEInputError(f"{name} must be {what}; got {_shown(value)} ({_kind(value)}).{hint}")
    x = float(value)
    if math.isnan(x) or (finite and math.isinf(x)) or (positive and not x > 0):
        raise CJEInputError(f"{name} must be {what}{' (finite)' if finite else ''}; got {_shown(value)}."
                            f"{hint}")
    return x


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """One of the strings ``choices``.

    Examples
    --------
    >>> check_choice("on_invalid", "skip", ("raise", "drop"))
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: on_invalid must be 'raise' or 'drop'; got 'skip'.
    """
    if not isinstance(value, str) or value not in choices:
        names = [repr(c) for c in choices]
        allowed = (f"one of {', '.join(names)}" if len(names) > 3
                   else " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0])
        raise CJEInputError(f"{name} must be {allowed}; got {_shown(value)}.")
    return value


def check_str_list(name: str, value: Any, *, example: str, allow_empty: bool = True) -> list[str]:
    """A list, tuple or array of distinct strings; a single string is refused, not iterated.

    Examples
    --------
    >>> check_str_list("policies", ("a", "b"), example="policies=['base']")
    ['a', 'b']
    >>> check_str_list("policies", "ab", example="policies=['base']")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: policies must be a list of strings, ...; got the string 'ab'. ...
    """
    if isinstance(value, (str, bytes)):
        raise CJEInputError(
            f"{name} must be a list of strings, e.g. {example}; got the string {_shown(value)}. Wrap "
            f"a single name in a list: {name}=[{_shown(value)}]."
        )
    if isinstance(value, (Mapping, set, frozenset)) or not hasattr(value, "__iter__") \
            or not hasattr(value, "__len__"):
        raise CJEInputError(
            f"{name} must be a list of strings, e.g. {example}; got {_shown(value)} ({_kind(value)})."
        )
    items = list(value)
    for item in items:
        if not isinstance(item, str):
            raise CJEInputError(
                f"{name} must be a list of strings, e.g. {example}; its entry {_shown(item)} is not "
                f"a string ({_kind(item)})."
            )
    if not items and not allow_empty:
        raise CJEInputError(f"{name} must name at least one entry, e.g. {example}; got an empty list.")
    seen = {x for x in items if items.count(x) > 1}
    if seen:
        raise CJEInputError(f"{name} names {sorted(seen)[0]!r} more than once; list each entry once.")
    return items


def check_mapping(name: str, value: Any, *, example: str, value_str: bool = False) -> dict[str, Any]:
    """A mapping with string keys (and string values with ``value_str``).

    Examples
    --------
    >>> check_mapping("probes", ["p.jsonl"], example="probes={'v': 'p.jsonl'}")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: probes must be a mapping, e.g. probes={'v': 'p.jsonl'}; got ['p.jsonl'] (list).
    """
    if not isinstance(value, Mapping):
        raise CJEInputError(f"{name} must be a mapping, e.g. {example}; got {_shown(value)} "
                            f"({_kind(value)}).")
    for k, v in value.items():
        if not isinstance(k, str):
            raise CJEInputError(f"{name} must have string keys, e.g. {example}; its key {_shown(k)} is "
                                f"not a string ({_kind(k)}).")
        if value_str and not isinstance(v, str):
            raise CJEInputError(f"{name} must map strings to strings, e.g. {example}; it maps {k!r} to "
                                f"{_shown(v)} ({_kind(v)}).")
    return dict(value)


def check_scale(name: str, value: Any) -> tuple[float, float] | None:
    """``None`` or a pair ``(low, high)`` of finite real numbers with ``low < high``.

    Examples
    --------
    >>> check_scale("judge_scale", [0, 10])
    (0.0, 10.0)
    >>> check_scale("judge_scale", ("0", "10"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: judge_scale must be a pair of numbers (low, high), ...; its entry '0' is ...
    """
    if value is None:
        return None
    example = f"{name}=(0, 10)"
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or len(value) != 2:
        raise CJEInputError(f"{name} must be a pair of numbers (low, high), e.g. {example}; got "
                            f"{_shown(value)}.")
    lo, hi = list(value)
    for v in (lo, hi):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise CJEInputError(f"{name} must be a pair of numbers (low, high), e.g. {example}; its "
                                f"entry {_shown(v)} is not a number ({_kind(v)}).")
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise CJEInputError(f"{name} must satisfy low < high (both finite), e.g. {example}; got "
                            f"{_shown(value)}.")
    return lo, hi


@contextmanager
def naming(argument: str) -> Iterator[None]:
    """Prefix the message of a :class:`~cje.errors.CJEInputError` raised inside with the argument
    whose data caused it (``calibration``, ``probes['verbose']``, ...): the same message about a
    row or a column could otherwise be about any of the inputs.

    Examples
    --------
    >>> with naming("calibration"):
    ...     raise CJEInputError("The input has no rows.")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: In calibration=: The input has no rows.
    """
    try:
        yield
    except CJEInputError as exc:
        # on_invalid="drop" applies to the data argument only: not offered as this input's fix
        msg = str(exc).replace(OR_DROP, f"or remove such rows from {argument}= (on_invalid='drop' "
                                        "applies to the data argument only).")
        raise CJEInputError(f"In {argument}=: {msg}") from None


def check_vector(name: str, value: Any, *, n: int | None = None, finite: bool = True,
                 other: str = "") -> Any:
    """A one-dimensional array of real numbers as float64 (strings are not numbers).

    ``n`` (with ``other``, the name of the array it must match) fixes the length; ``finite``
    refuses NaN and infinities, naming the first offending position.

    Examples
    --------
    >>> check_vector("s", [1, 2.5]).tolist()
    [1.0, 2.5]
    >>> check_vector("s", "abc")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: s must be a 1-D array of numbers; got 'abc' (str). ...
    """
    import numpy as np

    hint = " Pass a list or numpy array of numbers."
    if isinstance(value, (str, bytes)) or isinstance(value, Mapping):
        raise CJEInputError(f"{name} must be a 1-D array of numbers; got {_shown(value)} "
                            f"({_kind(value)}).{hint}")
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError(f"{name} must be a 1-D array of numbers; got {_shown(value)} "
                            f"({_kind(value)}).{hint}") from None
    if arr.ndim != 1:
        raise CJEInputError(f"{name} must be a 1-D array of numbers; got shape {arr.shape}.{hint}")
    if n is not None and arr.shape[0] != n:
        raise CJEInputError(f"{name} must have the same length as {other or 'the other inputs'} "
                            f"({n}); got {arr.shape[0]}.")
    if finite and not np.isfinite(arr).all():
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise CJEInputError(f"{name} must be finite; position {i} has {float(arr[i])!r}. Remove or fix "
                            "that value.")
    return arr
