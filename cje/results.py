"""The result records: frozen dataclasses every layer may build and return (the ground floor).

A record holds numbers and names, and converts itself to and from a plain dict
(``to_dict`` / ``from_dict``); it imports nothing of ``cje`` above :mod:`cje.errors`. Reading a
whole analysis (:class:`cje.report.Report`: summary, frames, JSON, figures) is the presentation
layer's job.

All numbers are on the label scale (``units == "label"``) except uncalibrated estimates, which
are raw judge means on the judge scale (``units == "judge"``) and say so.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any

from cje.errors import CJEInputError

__all__ = ["PolicyEstimate", "Contrast", "TransportAudit", "CalibrationInfo", "BiasResult"]

STATUSES = ("OK", "CAUTION", "REFUSED", "UNCALIBRATED")
#: Overlap diagnostics of an off-policy estimate (see :meth:`cje.report.Report.diagnostics`).
OVERLAP_KEYS = ("ess_raw", "ess_stable", "max_weight_raw", "max_weight_stable", "top5_mass_raw",
                "top5_mass_stable", "hill_raw", "affinity", "ttc", "cle", "var_cap_gamma",
                "residual_weights", "transport_gap", "transport_gap_se", "n_eff_labelled",
                "n_excluded", "mean_raw_weight", "mean_raw_weight_se", "log_mean_raw_weight",
                "near_zero_share", "n_eff_raw")


class _Record:
    """``to_dict`` / ``from_dict`` shared by the records below."""

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the fields (nested values copied; JSON-ready up to NaN).

        Returns
        -------
        dict
            One key per field (inverse: :meth:`from_dict`).

        Examples
        --------
        >>> from cje.results import TransportAudit
        >>> a = TransportAudit("verbose", -0.47, 0.11, -0.7, -0.25, 34.0, 35, 35, 0.25, "FAIL")
        >>> a.to_dict()["verdict"], TransportAudit.from_dict(a.to_dict()) == a
        ('FAIL', True)
        """
        return plain_value(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Any:
        """The record from :meth:`to_dict` output (or its JSON read back: lists for tuples,
        ``null`` for a float that was not finite, read as NaN).

        Parameters
        ----------
        d : dict

        Returns
        -------
        The record (an instance of the class it is called on).

        Raises
        ------
        CJEInputError
            A missing or unknown field, or a value of the wrong type, named.

        Examples
        --------
        >>> from cje.results import Contrast
        >>> Contrast.from_dict({"policy_a": "a"})   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cje.errors.CJEInputError: Contrast lacks the field(s) ['policy_b', 'estimate', ...]; it is not...
        """
        return record_from_dict(cls, d, cls.__name__, name=cls.__name__,
                                source=f"{cls.__name__}.to_dict")


@dataclass(frozen=True)
class PolicyEstimate(_Record):
    """The estimate of one policy's value.

    Attributes
    ----------
    policy : str
    estimate, se, ci_low, ci_high : float
        Point estimate, standard error and ``1 − alpha`` interval (label scale).
    alpha, df : float
        Interval level and the Satterthwaite degrees of freedom of its t critical value.
    n, n_prompts, n_labels : int
        Rows, distinct prompts and labelled rows the estimate uses. For an off-policy target
        these are logged rows of the logging policy: its labels train the calibrator, and the
        target has none of its own (the outputs show its own count, see
        :meth:`Report.to_pandas`).
    var_if, var_cal : float
        Sampling variance (prompt-clustered influence values) and calibration variance (OUA
        delete-one-oracle-fold jackknife).
    var_transport : float
        Off-policy estimates whose oracle residual used the stabilised weights: an allowance for
        the transport assumption this makes, ``gap² + Var(gap)`` with ``gap`` the residual
        correction with raw minus with stabilised weights (0 otherwise). ``se**2 == var_if +
        var_cal + var_transport``.
    calibration_share : float
        ``var_cal / se**2``: near 1, more labels help most; near 0, more prompts do. 0 when
        ``se`` is 0, NaN when ``se`` is NaN (no standard error: no share either).
    naive_estimate, naive_ci_low, naive_ci_high : float
        Raw judge mean rescaled affinely from the judge scale to the label scale, with its
        clustered t interval: what you would report without calibration.
    method : str
    status : str
        ``OK``, ``CAUTION``, ``REFUSED`` (level not reliable) or ``UNCALIBRATED``.
    reasons : tuple of str
    units : str
        ``"label"`` or ``"judge"``.
    diagnostics : dict

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> e = rep["improved"]
    >>> e.policy, e.method, e.status, e.n, e.n_labels
    ('improved', 'direct', 'OK', 300, 23)
    >>> round(e.estimate, 2), round(e.ci_low, 2), round(e.ci_high, 2)   # truth 3.24
    (3.31, 2.95, 3.67)
    >>> round(e.naive_estimate, 2)   # the raw judge mean, rescaled: biased
    3.03
    >>> bool(abs(e.se ** 2 - (e.var_if + e.var_cal + e.var_transport)) < 1e-12)
    True
    """

    policy: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    alpha: float
    df: float
    n: int
    n_prompts: int
    n_labels: int
    var_if: float
    var_cal: float
    calibration_share: float
    naive_estimate: float
    naive_ci_low: float
    naive_ci_high: float
    method: str
    status: str
    reasons: tuple[str, ...] = ()
    units: str = "label"
    diagnostics: dict[str, Any] = field(default_factory=dict)
    var_transport: float = 0.0


@dataclass(frozen=True)
class Contrast(_Record):
    """A paired difference ``policy_a − policy_b`` (influence values aligned by prompt).

    Attributes
    ----------
    policy_a, policy_b : str
    estimate, se, ci_low, ci_high, df : float
    p_value, p_holm : float
        Two-sided p-value and its Holm adjustment over all pairs.
    significant : bool
        ``p_holm < alpha``.
    var_if, var_cal : float
    n_shared_prompts : int
        Prompts both policies answered.
    var_transport : float
        The squared difference of the two policies' signed transport allowances
        ``sign(gap)·sqrt(gap² + Var(gap))`` (see :attr:`PolicyEstimate.var_transport`);
        ``se**2 == var_if + var_cal + var_transport``.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> c = next(c for c in rep.pairs if (c.policy_a, c.policy_b) == ("improved", "small"))
    >>> round(c.estimate, 2), round(c.ci_low, 2), round(c.ci_high, 2)   # truth 0.56
    (0.61, 0.21, 1.01)
    >>> c.significant, c.n_shared_prompts
    (True, 300)
    """

    policy_a: str
    policy_b: str
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    df: float
    p_value: float
    p_holm: float
    significant: bool
    var_if: float
    var_cal: float
    n_shared_prompts: int
    var_transport: float = 0.0


#: The fields of :class:`Contrast`, in order.
CONTRAST_FIELDS = tuple(f.name for f in fields(Contrast))


def plain_value(v: Any) -> Any:
    """What :func:`dataclasses.asdict` makes of a field value."""
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return asdict(v)
    if isinstance(v, (list, tuple)):
        return type(v)(plain_value(x) for x in v)
    if isinstance(v, dict):
        return {k: plain_value(x) for k, x in v.items()}
    return copy.deepcopy(v)


@dataclass(frozen=True)
class TransportAudit(_Record):
    """Does the calibration transport to a policy? ``δ = mean(Y − f(S))`` on its probe slice.

    Attributes
    ----------
    policy : str
    delta, se, ci_low, ci_high, df : float
        Mean residual on the label scale, with a prompt-clustered t interval (``df = G − 1``).
        The interval is conditional on the calibration actually used, so it has no OUA term
        (see :func:`cje.diagnostics.calibration.transport_audit`).
    n, n_prompts : int
    margin : float or None
        Practical margin ``δ_max``.
    verdict : str
        ``PASS`` (interval inside ±margin), ``FAIL`` (wholly outside), ``INCONCLUSIVE``, or
        ``NOT GRADED`` (no margin given).

    Examples
    --------
    The synthetic judge over-rates ``verbose``. Withhold its labels from the calibration and
    use them as its probe slice, for the audit only (``probe_correction=False``; by default the
    probe's labels would also correct its level):

    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(400, rng=0)
    >>> d = sim.data
    >>> probe = d[d.policy.eq("verbose") & d.oracle_label.notna()]
    >>> train = d.assign(oracle_label=d.oracle_label.mask(d.policy.eq("verbose")))
    >>> rep = cje.analyze(train, probes={"verbose": probe}, transport_margin=0.25,
    ...                   judge_scale=sim.judge_scale, label_scale=sim.label_scale,
    ...                   probe_correction=False)
    >>> a = rep.audits[0]
    >>> a.policy, a.n, round(a.delta, 2), a.verdict
    ('verbose', 35, -0.47, 'FAIL')
    >>> rep["verbose"].status
    'REFUSED'
    """

    policy: str
    delta: float
    se: float
    ci_low: float
    ci_high: float
    df: float
    n: int
    n_prompts: int
    margin: float | None
    verdict: str


@dataclass(frozen=True)
class CalibrationInfo(_Record):
    """How the judge was calibrated.

    Attributes
    ----------
    mode, requested_mode : str
    n_folds, n_labels, n_labelled_prompts : int
    covariates : tuple of str
    oof_rmse : float
        Out-of-fold RMSE of the calibrated reward against the labels (label scale).
    judge_range : tuple of float
        Range of judge scores on labelled rows (judge scale).
    selection : dict
        Mode-selection statistics (``mode="auto"``).
    reliability : tuple of dict
        Reliability table rows (label scale).
    is_constant : bool
        The map collapsed to one value while labels vary.
    curve : tuple of dict
        The map on a grid of judge scores (``judge_score``, ``calibrated``, ``se``: the jackknife
        standard error of the map, i.e. its OUA band), label scale; covariates at their medians.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> cal = cje.analyze(sim.data, judge_scale=sim.judge_scale,
    ...                   label_scale=sim.label_scale).calibration
    >>> cal.mode, cal.requested_mode, cal.n_folds, cal.n_labels, cal.n_labelled_prompts
    ('monotone', 'auto', 5, 158, 134)
    >>> round(cal.oof_rmse, 2), cal.judge_range, len(cal.curve)
    (0.67, (0.0, 10.0), 11)
    >>> [round(p["calibrated"], 2) for p in cal.curve[::5]]   # the map at judge scores 0, 5, 10
    [2.11, 2.86, 3.91]
    """

    mode: str
    requested_mode: str
    n_folds: int
    n_labels: int
    n_labelled_prompts: int
    covariates: tuple[str, ...]
    oof_rmse: float
    judge_range: tuple[float, float]
    selection: dict[str, float] = field(default_factory=dict)
    reliability: tuple[dict[str, Any], ...] = ()
    is_constant: bool = False
    curve: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True)
class BiasResult(_Record):
    """One bias test: an effect with a confidence interval, a test, a flag and a mitigation.

    Attributes
    ----------
    bias : str
        ``"position"``, ``"verbosity"`` or ``"self_preference"``.
    method : str
        Which estimator produced it, e.g. ``"slot log-odds (conditional logit), exact McNemar"``.
    effect : float
        The effect estimate, in the units named by ``effect_name``.
    effect_name : str
        What ``effect`` measures and its units, e.g. ``"judge points per SD of log length"``.
    ci_low, ci_high : float
        ``1 − alpha`` confidence interval of ``effect``.
    alpha : float
    p_value : float
        Two-sided p-value of "no bias".
    p_holm : float
        Holm-adjusted p-value across the tests of one audit (equals ``p_value`` when run alone).
    flagged : bool
        The bias is flagged by the rule documented for this test.
    n : int
        Observations used (pairs, rows…).
    n_prompts : int
        Distinct prompts (clusters).
    judge : str or None
        The judge tested (panels: one result per judge).
    mitigation : str
        What to do about it, concretely.
    details : dict
        Extra statistics of the test (e.g. position consistency, preference fairness).
    warnings : tuple of str

    Examples
    --------
    >>> from cje.bias import position
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
    ...                          prompt_noise=0.5, rng=0)
    >>> r = position(sim.pairs, n_bootstrap=200, rng=0)
    >>> r.bias, r.flagged, r.n, r.n_prompts
    ('position', True, 1200, 200)
    >>> bool(r.ci_low < 0.5 < r.ci_high), r.p_holm == r.p_value   # planted: 0.5; run alone
    (True, True)
    >>> round(r.details["pc"], 2)   # position consistency
    0.87
    """

    bias: str
    method: str
    effect: float
    effect_name: str
    ci_low: float
    ci_high: float
    alpha: float
    p_value: float
    p_holm: float
    flagged: bool
    n: int
    n_prompts: int
    judge: str | None = None
    mitigation: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        """What the test concludes: ``"bias"``, ``"no relevant bias"`` or ``"inconclusive"``.

        ``"bias"`` when flagged; ``"no relevant bias"`` only when the confidence interval lies
        entirely inside the test's negligible band (``details["negligible"]``: the data rule out
        every practically relevant effect); otherwise ``"inconclusive"`` — not flagged, but the
        interval still reaches effects the flag rule counts as relevant (too few prompts or
        discordant pairs to tell), which is not evidence of no bias. A result without
        ``details["negligible"]`` (made by hand) reads ``"not flagged"`` when not flagged.

        Returns
        -------
        str

        Examples
        --------
        >>> r = BiasResult("position", "demo", 0.4, "slot log-odds", -0.1, 0.9, 0.05,
        ...                p_value=0.2, p_holm=0.2, flagged=False, n=20, n_prompts=20,
        ...                details={"negligible": False})
        >>> r.verdict
        'inconclusive'
        """
        if self.flagged:
            return "bias"
        negligible = self.details.get("negligible")
        if negligible is None:
            return "not flagged"
        return "no relevant bias" if negligible else "inconclusive"

    def with_holm(self, p_holm: float, flagged: bool) -> BiasResult:
        """A copy with the audit's Holm-adjusted p-value and the flag recomputed from it.

        Parameters
        ----------
        p_holm : float
            The Holm-adjusted p-value across the audit's tests.
        flagged : bool
            The test's flag, recomputed by the caller with ``p_holm``.

        Returns
        -------
        BiasResult

        Examples
        --------
        >>> r = BiasResult("position", "demo", 0.4, "slot log-odds", 0.1, 0.7, 0.05,
        ...                p_value=0.02, p_holm=0.02, flagged=True, n=100, n_prompts=50)
        >>> adj = r.with_holm(0.06, flagged=False)   # two more tests in the audit
        >>> adj.p_holm, adj.flagged, adj.p_value, r.p_holm
        (0.06, False, 0.02, 0.02)
        """
        return replace(self, p_holm=float(p_holm), flagged=bool(flagged))


# ---- from dicts -----------------------------------------------------------------------------
def clip_repr(x: Any, n: int = 60) -> str:
    r = repr(x)
    return r if len(r) <= n else r[: n - 1] + "…"


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _value(kind: str, v: Any, where: str) -> Any:
    """``v`` checked (and lists made tuples) for a field annotated ``kind``."""
    def bad(what: str) -> CJEInputError:
        return CJEInputError(f"{where} must be {what}; got {clip_repr(v)}.")

    if kind == "float":
        if v is None:
            return math.nan
        if not _is_num(v):
            raise bad("a number (or null)")
        return v
    if kind == "float | None":
        if v is not None and not _is_num(v):
            raise bad("a number or null")
        return v
    if kind == "int":
        if not (_is_num(v) and float(v).is_integer()):
            raise bad("an integer")
        return int(v)
    if kind == "str | None":
        if v is not None and not isinstance(v, str):
            raise bad("a string or null")
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise bad("a string")
        return v
    if kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if kind.startswith("dict"):
        if not isinstance(v, dict):
            raise bad("an object")
        return dict(v)
    if kind == "tuple[str, ...]":
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
            raise bad("a list of strings")
        return tuple(v)
    if kind == "tuple[float, float]":
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
                x is None or _is_num(x) for x in v):
            raise bad("a list of two numbers")
        return tuple(math.nan if x is None else x for x in v)
    if kind.startswith("tuple[dict"):
        if not isinstance(v, (list, tuple)) or not all(isinstance(x, dict) for x in v):
            raise bad("a list of objects")
        return tuple(v)
    if kind == "tuple[tuple[str, ...], ...]":
        if not isinstance(v, (list, tuple)):
            raise bad("a list of lists of policy names")
        return tuple(_value("tuple[str, ...]", t, f"{where}[{i}]") for i, t in enumerate(v))
    for cls in (PolicyEstimate, Contrast, TransportAudit):
        if kind == f"tuple[{cls.__name__}, ...]":
            if not isinstance(v, (list, tuple)):
                raise bad(f"a list of {cls.__name__} records")
            return tuple(record_from_dict(cls, x, f"{where}[{i}]") for i, x in enumerate(v))
    if kind == "CalibrationInfo | None":
        return None if v is None else record_from_dict(CalibrationInfo, v, where)
    return v  # pragma: no cover - every annotation above is handled


def record_from_dict(cls: Any, obj: Any, where: str, *, name: str | None = None,
                     source: str = "Report.to_json / to_dict (cje analyze --format json)") -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, or a CJEInputError that names
    the path, the missing or unknown fields and the value.

    ``where`` is the path of ``obj`` in the enclosing JSON (``estimates[2]``); a top-level
    object is called ``name`` instead and its fields are named bare. ``source`` is what writes
    such objects.
    """
    if not isinstance(obj, dict):
        raise CJEInputError(f"{where} must be an object with the fields of {cls.__name__}; got "
                            f"{type(obj).__name__} {clip_repr(obj)}.")
    flds = {f.name: f for f in fields(cls)}
    missing = [n for n, f in flds.items() if n not in obj and f.default is MISSING
               and f.default_factory is MISSING]
    what = name if name is not None else f"{where} ({cls.__name__})"
    if missing:
        raise CJEInputError(
            f"{what} lacks the field(s) {missing}; it is not the output of {source}."
        )
    unknown = sorted(set(obj) - set(flds))
    if unknown:
        raise CJEInputError(
            f"{what} has unknown field(s) {unknown}; it was written by another version of cje "
            "or edited. Remove them, or read it with the cje version that wrote it."
        )
    sub = "" if name is not None else where
    kw = {k: _value(str(flds[k].type), v, f"{sub}.{k}" if sub else k) for k, v in obj.items()}
    return cls(**kw)

