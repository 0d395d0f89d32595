"""Exceptions and warnings raised by :mod:`cje`."""

from __future__ import annotations


class CJEInputError(ValueError):
    """Invalid user input: the message names the field, the row and the fix.

    Examples
    --------
    >>> raise CJEInputError("The input has no rows.")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: The input has no rows.
    """


class CJEWarning(UserWarning):
    """A condition the user should know about that does not stop the analysis."""
