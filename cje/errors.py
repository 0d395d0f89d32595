"""Exceptions and warnings raised by :mod:`cje`."""

from __future__ import annotations

__all__ = ["CJEInputError", "CJEWarning", "check_alpha", "OR_DROP"]

#: The end of a message refusing invalid rows of the data (an empty prompt id, a non-finite judge
#: score): the fix that drops them instead. It applies to the ``data`` argument only; in a message
#: about ``fresh_draws=``, ``probes=`` or ``calibration=`` (:func:`cje._checks.naming`) it is
#: replaced, since those inputs' invalid rows are always refused.
OR_DROP = "or pass on_invalid='drop' to exclude such rows (they are counted in the report)."


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
    """A condition the user should know about that does not stop the analysis.

    Filter on this category to collect, escalate or silence cje's warnings
    (``warnings.simplefilter("ignore", CJEWarning)``).

    Examples
    --------
    A judge that ranks the labels backwards makes the calibration collapse:

    >>> import warnings
    >>> import numpy as np
    >>> from cje.calibration import RewardCalibrator
    >>> s = np.arange(20.0)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always", CJEWarning)
    ...     cal = RewardCalibrator(mode="monotone").fit(s, -s)
    >>> [w.category.__name__ for w in caught], cal.is_constant_
    (['CJEWarning'], True)
    """


def check_alpha(alpha: object) -> float:
    """Validate a significance level: a real number in (0, 1).

    Parameters
    ----------
    alpha : object
        The value to check: a real number (booleans and strings such as ``"0.05"`` are
        rejected, not converted).

    Returns
    -------
    float

    Raises
    ------
    CJEInputError
        ``alpha`` is not a number strictly between 0 and 1.

    Examples
    --------
    >>> check_alpha(0.05)
    0.05
    >>> check_alpha(1.5)
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: alpha must be a number in (0, 1), e.g. 0.05; got 1.5.
    >>> check_alpha("0.05")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: alpha must be a number in (0, 1), e.g. 0.05; got '0.05'.
    """
    import numbers

    msg = f"alpha must be a number in (0, 1), e.g. 0.05; got {alpha!r}."
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):  # no strings, no booleans
        raise CJEInputError(msg)
    a = float(alpha)
    if not 0 < a < 1:
        raise CJEInputError(msg)
    return a
