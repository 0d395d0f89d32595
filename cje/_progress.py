"""Progress bars for long work (tqdm on standard error), shared by the pipeline and the runners.

``progress=None`` (the default everywhere) shows a bar only when standard error is a terminal,
and only once the work has run for :data:`DELAY` seconds, so quick analyses stay silent;
``True`` always shows one (from the start), ``False`` never does.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from cje.errors import CJEInputError

T = TypeVar("T")

#: Seconds a task must run before an automatic (``progress=None``) bar appears.
DELAY = 1.0


def check_progress(progress: Any) -> bool | None:
    """Validate a ``progress`` argument (``True``, ``False`` or ``None``)."""
    if progress is not None and not isinstance(progress, bool):
        raise CJEInputError(f"progress must be True, False or None; got {progress!r}.")
    return progress


def stderr_is_tty() -> bool:
    """Whether standard error is an interactive terminal."""
    try:
        return bool(sys.stderr.isatty())
    except (AttributeError, ValueError):
        return False


class _NoBar:
    """Stands in for a tqdm bar when none is shown."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(progress: bool | None, total: int, *, desc: str, unit: str = "it",
                 initial: int = 0) -> Any:
    """A tqdm bar on standard error, or a silent stand-in (see the module docstring)."""
    show = check_progress(progress)
    if show is None:
        show = stderr_is_tty()
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr,
                delay=0.0 if progress else DELAY)


def progress_iter(items: Iterable[T], progress: bool | None, *, desc: str, unit: str = "it"
                  ) -> Iterator[T]:
    """Yield ``items``, ticking a :func:`progress_bar` as the work on each one finishes."""
    items = list(items)
    bar = progress_bar(progress, len(items), desc=desc, unit=unit)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()
