"""Small bounded memos shared by the package's caches (file reads, content hashes, rank tables).

Each memo is a plain ``dict`` in insertion order; :func:`remember` keeps it at a fixed number of
entries by dropping the oldest first.
"""

from __future__ import annotations

from typing import Any

__all__ = ["remember"]


def remember(memo: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """Store ``memo[key] = value``, first dropping the oldest entry when ``memo`` holds ``size``.

    Another thread may be dropping at the same moment: a lost race leaves the memo one entry
    over, never raises.

    Parameters
    ----------
    memo : dict
        The memo (insertion-ordered).
    key, value
        The entry.
    size : int
        Most entries kept.

    Examples
    --------
    >>> m = {}
    >>> for i in range(4):
    ...     remember(m, i, i * i, size=2)
    >>> m
    {2: 4, 3: 9}
    """
    if len(memo) >= size:
        try:
            memo.pop(next(iter(memo)))
        except (KeyError, RuntimeError, StopIteration):
            pass
    memo[key] = value
