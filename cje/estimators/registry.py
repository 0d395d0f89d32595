"""One registry of estimators: each is a frozen dataclass of hyper-parameters that declares what it
needs and turns one target's rows into a point estimate with per-row influence values.

Adding an estimator is one class in one file: subclass :class:`Estimator`, declare its class
attributes, validate its hyper-parameters in ``__post_init__``, implement :meth:`Estimator.estimate`
and decorate it with :func:`register` (the name then works in ``cje.analyze(estimator=...)`` and
in the CLI's ``--estimator``). An unregistered instance works too: ``cje.analyze(logged,
estimator=MyEstimator(...))``. The pipeline (:mod:`cje.pipeline`) does the rest — calibration,
the OUA jackknife (which re-runs :meth:`~Estimator.estimate` under every fold-deleted
calibration), gates, contrasts and the report.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from cje._checks import check_choice
from cje.errors import CJEInputError

if TYPE_CHECKING:
    from cje.estimators.offpolicy import LoggedTarget, PolicyValue

__all__ = ["Estimator", "register", "registered", "resolve"]

_REGISTRY: dict[str, type[Estimator]] = {}


@dataclass(frozen=True, slots=True)
class Estimator:
    """Base of every estimator: hyper-parameters as fields, what it needs as class attributes.

    Class attributes
    ----------------
    name : str
        The name in ``cje.analyze(estimator=...)``, the CLI and the reports' ``method``.
    needs_fresh : bool
        Needs fresh draws of each target policy (``fresh_draws=``).
    stabilised : bool
        Uses SIMCal-W stabilised weights (then ``residual_weights=`` applies to it).
    overlap : {"weighting", "dr"} or None
        Which overlap and support checks grade it (:func:`cje.diagnostics.gates.overlap_gate`):
        ``"weighting"`` when the estimate rests on the logs alone, ``"dr"`` when an outcome model
        on the target's fresh draws carries it, ``None`` for none (the direct method).
    sample : {"logged", "fresh"}
        The rows its influence values belong to: the target's usable logged rows, or its fresh
        draws.

    Examples
    --------
    A clipped IPS in a few lines (``cje.analyze(logged, estimator=Clipped(clip=20))``):

    >>> import numpy as np
    >>> from dataclasses import dataclass
    >>> from cje.estimators import Estimator, PolicyValue
    >>> @dataclass(frozen=True, slots=True)
    ... class Clipped(Estimator):
    ...     clip: float = 20.0
    ...     name = "clipped-ips"
    ...     overlap = "weighting"
    ...     def estimate(self, x):
    ...         w = np.minimum(x.weights, self.clip)
    ...         y = x.reward + x.scaled_residual
    ...         psi = float((w * y).sum() / w.sum())
    ...         return PolicyValue(psi, w * (y - psi))
    >>> Clipped(clip=5).name, Clipped(clip=5).needs_fresh
    ('clipped-ips', False)
    """

    name: ClassVar[str] = ""
    needs_fresh: ClassVar[bool] = False
    stabilised: ClassVar[bool] = False
    overlap: ClassVar[str | None] = None
    sample: ClassVar[str] = "logged"

    @property
    def method(self) -> str:
        """The method name shown in reports (:attr:`name` unless a subclass says more)."""
        return self.name

    def estimate(self, x: LoggedTarget) -> PolicyValue:
        """Point estimate and per-row influence values of one target policy.

        Parameters
        ----------
        x : LoggedTarget
            The target's rows under one calibration (the full fit or a fold-deleted one):
            calibrated reward, out-of-fold residual, weights, and what outcome models need.

        Returns
        -------
        PolicyValue
            On the internal [0, 1] scale, influence values on the rows named by :attr:`sample`.

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> from cje.estimators import SNIPS
        >>> round(SNIPS().estimate(x).value, 4)
        0.8
        """
        raise NotImplementedError(f"{type(self).__name__} must implement estimate(x).")

    def value(self, x: LoggedTarget) -> float:
        """The point estimate alone, bit for bit :meth:`estimate`'s ``value``: all each OUA
        jackknife replicate needs. Override it when the value costs less than the influence
        values (the built-in estimators other than stacked DR do).

        Parameters
        ----------
        x : LoggedTarget

        Returns
        -------
        float

        Examples
        --------
        >>> from cje.estimators.offpolicy import _example_target
        >>> from cje.estimators import SNIPS
        >>> x = _example_target()   # six logged rows, two fresh draws
        >>> SNIPS().value(x) == SNIPS().estimate(x).value
        True
        """
        return self.estimate(x).value

    @classmethod
    def from_options(cls, *, var_cap: float | None = None, mrdr_omega: str = "w") -> Estimator:
        """The estimator built from :func:`cje.analyze`'s keyword options.

        ``var_cap`` sets a ``var_cap`` hyper-parameter and ``mrdr_omega`` an ``omega`` one;
        options the class does not have are ignored.

        Parameters
        ----------
        var_cap : float, optional
        mrdr_omega : {"w", "w2", "w1sq"}

        Returns
        -------
        Estimator

        Examples
        --------
        >>> from cje.estimators import MRDR
        >>> MRDR.from_options(mrdr_omega="w2")
        MRDR(var_cap=None, omega='w2')
        """
        have = {f.name for f in dataclasses.fields(cls)}
        options = {"var_cap": var_cap, "omega": mrdr_omega}
        return cls(**{k: v for k, v in options.items() if k in have})


def _check_declared(cls: type[Estimator], error: type[Exception]) -> None:
    """The class attributes the pipeline reads hold values it understands."""
    if cls.sample not in ("logged", "fresh"):
        raise error(f"{cls.__name__}.sample must be 'logged' or 'fresh'; got {cls.sample!r}.")
    if cls.overlap not in (None, "weighting", "dr"):
        raise error(f"{cls.__name__}.overlap must be 'weighting', 'dr' or None; got "
                    f"{cls.overlap!r}.")
    if cls.sample == "fresh" and not cls.needs_fresh:
        raise error(f"{cls.__name__} estimates on fresh draws (sample='fresh'), so it needs them: "
                    "set needs_fresh = True.")


def register(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make ``cls.name`` a valid ``estimator=`` (and CLI ``--estimator``) value.

    Parameters
    ----------
    cls : type
        A subclass of :class:`Estimator` with a ``name``.

    Returns
    -------
    type
        ``cls`` unchanged.

    Raises
    ------
    ValueError
        ``cls`` is not an :class:`Estimator` with a new name, or declares a ``sample`` or
        ``overlap`` the pipeline does not know.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> from cje.estimators import SNIPS
    >>> @register
    ... @dataclass(frozen=True, slots=True)
    ... class Snips2(SNIPS):
    ...     name = "snips-copy"
    >>> "snips-copy" in registered()
    True
    >>> _ = _REGISTRY.pop("snips-copy")   # (the doctest cleans up after itself)
    """
    if not (isinstance(cls, type) and issubclass(cls, Estimator)) or not cls.name:
        raise ValueError(f"register needs an Estimator subclass with a name; got {cls!r}.")
    _check_declared(cls, ValueError)
    if cls.name == "auto" or (cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls):
        raise ValueError(f"An estimator named {cls.name!r} is already registered.")
    _REGISTRY[cls.name] = cls
    return cls


def registered() -> tuple[str, ...]:
    """Names of the registered estimators, in registration order.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> registered()[:3]
    ('direct', 'ips', 'snips')
    """
    return tuple(_REGISTRY)  # the built-ins registered when cje.estimators was imported


def resolve(estimator: Any, *, logged: bool, fresh: bool, var_cap: float | None = None,
            mrdr_omega: str = "w") -> Estimator:
    """The estimator object for ``cje.analyze``'s ``estimator=``: a name, ``"auto"`` or an instance.

    ``"auto"`` is the direct method for fresh draws of each policy; with logged data
    ``"stacked-dr"`` when fresh draws are given, else ``"calibrated-ips"``. A name is built with
    ``var_cap`` and ``mrdr_omega`` (see :meth:`Estimator.from_options`).

    Parameters
    ----------
    estimator : str or Estimator
    logged : bool
        The data are logs with log-probabilities (else fresh draws of each policy).
    fresh : bool
        Fresh draws of the targets were given with logged data.
    var_cap, mrdr_omega
        As in :func:`cje.analyze`.

    Returns
    -------
    Estimator

    Raises
    ------
    CJEInputError
        An unknown name, an object that is not an :class:`Estimator`, or an estimator whose
        class attributes the pipeline cannot read.

    Examples
    --------
    >>> resolve("auto", logged=True, fresh=False)
    CalibratedIPS(var_cap=None)
    >>> resolve("stacked-dr", logged=True, fresh=True, mrdr_omega="w2")
    StackedDR(var_cap=None, omega='w2')
    """
    if isinstance(estimator, Estimator):
        _check_declared(type(estimator), CJEInputError)
        return estimator
    if not isinstance(estimator, str):
        raise CJEInputError(
            f"estimator must be one of {', '.join(repr(n) for n in ('auto', *registered()))}, or "
            f"an instance of a subclass of cje.estimators.Estimator; got {estimator!r}."
        )
    check_choice("estimator", estimator, ("auto", *registered()))
    if estimator == "auto":
        estimator = "direct" if not logged else ("stacked-dr" if fresh else "calibrated-ips")
    return _REGISTRY[estimator].from_options(var_cap=var_cap, mrdr_omega=mrdr_omega)
