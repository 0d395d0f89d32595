"""Result types: frozen records with readable summaries and lossless dict/JSON round-trips.

All numbers are on the label scale (``units == "label"``) except uncalibrated estimates, which
are raw judge means on the judge scale (``units == "judge"``) and say so.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["PolicyEstimate", "Contrast", "TransportAudit", "CalibrationInfo", "Report"]

STATUSES = ("OK", "CAUTION", "REFUSED", "UNCALIBRATED")
#: Overlap diagnostics of an off-policy estimate (see :meth:`Report.diagnostics`).
OVERLAP_KEYS = ("ess_raw", "ess_stable", "max_weight_raw", "max_weight_stable", "top5_mass_raw",
                "top5_mass_stable", "hill_raw", "affinity", "ttc", "cle", "var_cap_gamma",
                "residual_weights", "transport_gap", "n_excluded")


@dataclass(frozen=True)
class PolicyEstimate:
    """The estimate of one policy's value.

    Attributes
    ----------
    policy : str
    estimate, se, ci_low, ci_high : float
        Point estimate, standard error and ``1 − alpha`` interval (label scale).
    alpha, df : float
        Interval level and the Satterthwaite degrees of freedom of its t critical value.
    n, n_prompts, n_labels : int
        Rows, distinct prompts and labelled rows of this policy.
    var_if, var_cal : float
        Sampling variance (prompt-clustered influence values) and calibration variance (OUA
        delete-one-oracle-fold jackknife).
    var_transport : float
        Off-policy estimates whose oracle residual used the stabilised weights: an allowance for
        the transport assumption this makes, the squared gap between the residual correction
        with raw and with stabilised weights (0 otherwise). ``se**2 == var_if + var_cal +
        var_transport``.
    calibration_share : float
        ``var_cal / se**2``: near 1, more labels help most; near 0, more prompts do.
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
    (3.31, 2.96, 3.66)
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
class Contrast:
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
        The squared difference of the two policies' transport gaps (see
        :attr:`PolicyEstimate.var_transport`); ``se**2 == var_if + var_cal + var_transport``.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> c = next(c for c in rep.pairs if (c.policy_a, c.policy_b) == ("improved", "small"))
    >>> round(c.estimate, 2), round(c.ci_low, 2), round(c.ci_high, 2)   # truth 0.56
    (0.61, 0.22, 1.0)
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


@dataclass(frozen=True)
class TransportAudit:
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
    use them as its probe slice:

    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(400, rng=0)
    >>> d = sim.data
    >>> probe = d[d.policy.eq("verbose") & d.oracle_label.notna()]
    >>> train = d.assign(oracle_label=d.oracle_label.mask(d.policy.eq("verbose")))
    >>> rep = cje.analyze(train, probes={"verbose": probe}, transport_margin=0.25,
    ...                   judge_scale=sim.judge_scale, label_scale=sim.label_scale)
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
class CalibrationInfo:
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


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


@dataclass(frozen=True, eq=False)
class Report:
    """Everything :func:`cje.analyze` found.

    Attributes
    ----------
    estimates : tuple of PolicyEstimate
    pairs : tuple of Contrast
        All pairwise contrasts (see :meth:`contrasts` for a table).
    audits : tuple of TransportAudit
    calibration : CalibrationInfo or None
        ``None`` when there were too few labels to calibrate.
    ranking : tuple of tuple of str
        Policies from best to worst in groups that are not separable at ``alpha`` (Holm).
    judge_scale, label_scale : tuple of float
    alpha : float
    notices, warnings : tuple of str
    excluded : dict
        Rows excluded on request, by reason (nothing else is dropped).
    settings : dict
        The options of the run.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=1)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> sorted(rep.to_pandas()["policy"])
    ['base', 'concise', 'improved', 'small', 'verbose']
    >>> cje.Report.from_json(rep.to_json()) == rep
    True
    """

    estimates: tuple[PolicyEstimate, ...]
    pairs: tuple[Contrast, ...]
    audits: tuple[TransportAudit, ...]
    calibration: CalibrationInfo | None
    ranking: tuple[tuple[str, ...], ...]
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    alpha: float
    notices: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    excluded: dict[str, int] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Equal content, NaN included (a NaN diagnostic equals a NaN diagnostic), so that
        ``Report.from_json(r.to_json()) == r``."""
        if not isinstance(other, Report):
            return NotImplemented
        return json.dumps(self.to_dict(), sort_keys=True) == json.dumps(other.to_dict(),
                                                                           sort_keys=True)

    __hash__ = None  # type: ignore[assignment]  # mutable dict fields: not hashable

    # ---- access ---------------------------------------------------------------------------
    def __getitem__(self, policy: str) -> PolicyEstimate:
        """The estimate of one policy."""
        for e in self.estimates:
            if e.policy == policy:
                return e
        raise KeyError(f"No policy {policy!r}; the report has {[e.policy for e in self.estimates]}.")

    def _shown(self, reliable_only: bool) -> list[PolicyEstimate]:
        return [e for e in self.estimates if not (reliable_only and e.status == "REFUSED")]

    # ---- frames ---------------------------------------------------------------------------
    def to_pandas(self, reliable_only: bool = False) -> Any:
        """One row per policy (``reliable_only=True`` hides REFUSED estimates).

        Parameters
        ----------
        reliable_only : bool
            Leave out the policies whose status is ``REFUSED`` (no other number changes).

        Returns
        -------
        pandas.DataFrame
            The fields of :class:`PolicyEstimate` (``reasons`` joined by ``"; "``), and one
            ``diag_<name>`` column per diagnostic.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> df = rep.to_pandas()
        >>> print(df[["policy", "estimate", "ci_low", "ci_high", "status"]].round(2)
        ...       .to_string(index=False))
          policy  estimate  ci_low  ci_high status
            base      3.06    2.83     3.28     OK
         concise      3.13    2.90     3.36     OK
        improved      3.31    2.96     3.66     OK
           small      2.70    2.49     2.92     OK
         verbose      2.73    2.49     2.97     OK
        """
        import pandas as pd

        rows = []
        for e in self._shown(reliable_only):
            d = asdict(e)
            d["reasons"] = "; ".join(e.reasons)
            d.pop("diagnostics")
            d.update({f"diag_{k}": v for k, v in e.diagnostics.items()})
            rows.append(d)
        return pd.DataFrame(rows)

    def to_polars(self, reliable_only: bool = False) -> Any:
        """:meth:`to_pandas` as a polars DataFrame.

        Parameters
        ----------
        reliable_only : bool
            Leave out the policies whose status is ``REFUSED``.

        Returns
        -------
        polars.DataFrame

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> df = rep.to_polars()
        >>> df.height, df["policy"].to_list()
        (5, ['base', 'concise', 'improved', 'small', 'verbose'])
        """
        import polars as pl

        return pl.from_pandas(self.to_pandas(reliable_only))

    def contrasts(self) -> Any:
        """All pairwise contrasts ``a − b`` with Holm-adjusted p-values.

        Returns
        -------
        pandas.DataFrame
            One row per :class:`Contrast`, its fields as columns.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> t = rep.contrasts()
        >>> len(t)   # 5 policies: 10 pairs
        10
        >>> print(t.loc[t.significant, ["policy_a", "policy_b", "estimate", "p_holm"]].round(3)
        ...       .to_string(index=False))
        policy_a policy_b  estimate  p_holm
         concise    small     0.427   0.019
        improved    small     0.611   0.019
        improved  verbose     0.584   0.043
        """
        import pandas as pd

        cols = [f.name for f in fields(Contrast)]
        return pd.DataFrame([asdict(c) for c in self.pairs], columns=cols)

    def audit_table(self) -> Any:
        """Transport audits as a pandas DataFrame.

        Returns
        -------
        pandas.DataFrame
            One row per :class:`TransportAudit` (no rows without probe slices).

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(400, rng=0)
        >>> d = sim.data
        >>> probe = d[d.policy.eq("verbose") & d.oracle_label.notna()]
        >>> train = d.assign(oracle_label=d.oracle_label.mask(d.policy.eq("verbose")))
        >>> rep = cje.analyze(train, probes={"verbose": probe}, transport_margin=0.25,
        ...                   judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> print(rep.audit_table()[["policy", "delta", "ci_low", "ci_high", "verdict"]].round(2)
        ...       .to_string(index=False))
         policy  delta  ci_low  ci_high verdict
        verbose  -0.47    -0.7    -0.25    FAIL
        """
        import pandas as pd

        cols = [f.name for f in fields(TransportAudit)]
        return pd.DataFrame([asdict(a) for a in self.audits], columns=cols)

    def diagnostics(self, kind: str = "overlap") -> Any:
        """A diagnostics table.

        Parameters
        ----------
        kind : {"overlap", "calibration", "transport"}
            ``"overlap"``: per target policy of an off-policy analysis, the importance-weight
            diagnostics (ESS raw → stabilised, max weight, top-5% mass, Hill tail index, judge-space
            affinity, TTC, CLE factor, SIMCal mixture, exclusions) with the status and reasons;
            ``"calibration"``: the reliability table; ``"transport"``: the probe-slice audits.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_offpolicy_eval(500, rng=0)
        >>> rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1),
        ...                   label_scale=(0, 1))
        >>> t = rep.diagnostics("overlap")
        >>> print(t[["policy", "ess_raw", "ess_stable", "hill_raw", "status"]].round(2)
        ...       .to_string(index=False))
          policy  ess_raw  ess_stable  hill_raw  status
            mild     0.91        0.98      6.25      OK
        moderate     0.64        0.89      2.84      OK
             far     0.19        0.66      1.34 CAUTION
        >>> rep.diagnostics("calibration").columns.tolist()[:4]
        ['bin', 'judge_low', 'judge_high', 'n']
        """
        import pandas as pd

        if kind == "overlap":
            rows = [
                {"policy": e.policy, "method": e.method,
                 **{k: v for k, v in e.diagnostics.items() if k in OVERLAP_KEYS
                    or k.startswith(("excluded_", "simcal_", "stack_"))},
                 "status": e.status, "reasons": "; ".join(e.reasons)}
                for e in self.estimates if "ess_raw" in e.diagnostics
            ]
            return pd.DataFrame(rows)
        if kind == "calibration":
            return pd.DataFrame(list(self.calibration.reliability) if self.calibration else [])
        if kind == "transport":
            return self.audit_table()
        from cje.errors import CJEInputError

        raise CJEInputError(
            f"kind must be 'overlap', 'calibration' or 'transport'; got {kind!r}."
        )

    # ---- text -----------------------------------------------------------------------------
    def summary(self, reliable_only: bool = False) -> str:
        """A readable table of estimates, contrasts, audits and warnings.

        Parameters
        ----------
        reliable_only : bool
            Leave out the policies whose status is ``REFUSED`` (a line says how many).

        Returns
        -------
        str
            What ``print(report)`` shows.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> lines = [ln.rstrip() for ln in rep.summary().splitlines()]
        >>> print("\\n".join(lines[2:5]))
        policy                   estimate            95% CI      SE  cal%      n labels   naive status
        ------------------------------------------------------------------------------------------------
        base                        3.057    [2.831, 3.284]   0.115     6    300     29   2.663 OK
        >>> print(next(ln for ln in lines if "Ranking" in ln))
          Ranking (braces: not separable at alpha = 0.05): {improved, concise, base} > {verbose, small}
        """
        lo, hi = self.label_scale
        level = int(round(100 * (1 - self.alpha)))
        out: list[str] = []
        cal = self.calibration
        if cal is not None:
            out.append(
                f"Calibrated estimates on the label scale ({lo:g}–{hi:g}), {level}% CIs with "
                f"oracle uncertainty (OUA); calibration: {cal.mode} "
                f"({cal.n_labels} labels on {cal.n_labelled_prompts} prompts, {cal.n_folds} "
                f"folds, out-of-fold RMSE {_fmt(cal.oof_rmse)})."
            )
        else:
            out.append("UNCALIBRATED: too few oracle labels; raw judge means on the judge scale.")
        head = (
            f"{'policy':<24} {'estimate':>8} {f'{level}% CI':>17} {'SE':>7} {'cal%':>5} "
            f"{'n':>6} {'labels':>6} {'naive':>7} {'status':<8}"
        )
        out += ["", head, "-" * len(head)]
        shown = self._shown(reliable_only)
        for e in shown:
            ci = f"[{_fmt(e.ci_low)}, {_fmt(e.ci_high)}]"
            share = "—" if math.isnan(e.calibration_share) else f"{100 * e.calibration_share:.0f}"
            naive = _fmt(e.naive_estimate) if e.units == "label" else "—"  # same number there
            out.append(
                f"{e.policy[:24]:<24} {_fmt(e.estimate):>8} {ci:>17} {_fmt(e.se):>7} {share:>5} "
                f"{e.n:>6} {e.n_labels:>6} {naive:>7} {e.status:<8}"
            )
        hidden = len(self.estimates) - len(shown)
        if hidden:
            out.append(f"({hidden} REFUSED estimate(s) hidden by reliable_only=True)")
        out.append(
            "naive = raw judge mean rescaled to the label scale, as if the judge were the metric; "
            "cal% = calibration share of the variance."
        )
        overlap = [e for e in shown if "ess_raw" in e.diagnostics]
        if overlap:
            out += ["", "Overlap of the logged data with each target (ESS raw → stabilised, "
                        "Hill tail index and TTC on raw weights, judge-space affinity):"]
            for e in overlap:
                d = e.diagnostics
                ess = f"{100 * d['ess_raw']:.1f}%"
                if d.get("ess_stable") == d.get("ess_stable"):  # not NaN
                    ess += f" → {100 * d['ess_stable']:.1f}%"
                excl = f", {d['n_excluded']} rows excluded" if d.get("n_excluded") else ""
                if d.get("residual_weights") == "stable":
                    excl = (f", residual on stabilised weights (transport gap "
                            f"{d.get('transport_gap', float('nan')):+.3f})" + excl)
                out.append(
                    f"  {e.policy[:24]:<24} ESS {ess}, Hill {_fmt(d['hill_raw'], 2)}, "
                    f"TTC {_fmt(d['ttc'], 2)}, affinity {_fmt(d['affinity'], 2)}, "
                    f"CLE {_fmt(d['cle'], 2)}{excl}"
                )
        reasons = [(e.policy, r) for e in shown for r in e.reasons]
        if reasons:
            out += ["", "Status reasons:"]
            out += [f"  {p}: {r}" for p, r in reasons]
        if self.audits:
            out += ["", "Transport audits (δ = mean(label − calibrated judge) on the probe slice):"]
            for a in self.audits:
                margin = "no margin" if a.margin is None else f"margin ±{a.margin:g}"
                out.append(
                    f"  {a.policy:<24} δ = {_fmt(a.delta)} [{_fmt(a.ci_low)}, {_fmt(a.ci_high)}], "
                    f"n = {a.n}, {margin}: {a.verdict}"
                )
        if self.pairs:
            out += ["", f"Paired contrasts (a − b, Holm-adjusted over {len(self.pairs)} pairs):"]
            for c in self.pairs:
                mark = "*" if c.significant else " "
                out.append(
                    f"  {c.policy_a} − {c.policy_b}: {c.estimate:+.3f} "
                    f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}], p_holm = {c.p_holm:.3g} {mark}"
                )
            tiers = " > ".join("{" + ", ".join(t) + "}" if len(t) > 1 else t[0]
                               for t in self.ranking)
            out.append(f"  Ranking (braces: not separable at alpha = {self.alpha:g}): {tiers}")
        if self.warnings:
            out += ["", "Warnings:"] + [f"  ! {w}" for w in self.warnings]
        if self.excluded:
            ex = ", ".join(f"{v} rows with {k}" for k, v in self.excluded.items())
            out += ["", f"Excluded on request (on_invalid='drop'): {ex}."]
        if self.notices:
            out += ["", "Notices:"] + [f"  - {n}" for n in self.notices]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    # ---- serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A plain dict of lists, numbers and strings (JSON-ready).

        Returns
        -------
        dict
            One key per field; nested records become dicts (inverse: :meth:`from_dict`).

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> d = rep.to_dict()
        >>> list(d)[:5]
        ['estimates', 'pairs', 'audits', 'calibration', 'ranking']
        >>> d["estimates"][2]["policy"], round(d["estimates"][2]["estimate"], 2)
        ('improved', 3.31)
        """
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict` (NaN written as ``NaN``).

        Parameters
        ----------
        **kwargs
            Passed to :func:`json.dumps` (``indent`` defaults to 2).

        Returns
        -------
        str

        Examples
        --------
        >>> import json, cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> text = rep.to_json()
        >>> json.loads(text)["ranking"]
        [['improved', 'concise', 'base'], ['verbose', 'small']]
        >>> cje.Report.from_json(text) == rep   # lossless
        True
        """
        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output.

        Parameters
        ----------
        d : dict
            As :meth:`to_dict` returns it, or as read back from its JSON (lists for tuples).

        Returns
        -------
        Report

        Examples
        --------
        >>> import json, cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> stored = json.loads(json.dumps(rep.to_dict()))   # e.g. kept in a database
        >>> back = cje.Report.from_dict(stored)
        >>> back == rep, back["improved"].ci_low == rep["improved"].ci_low
        (True, True)
        """
        cal = d.get("calibration")
        return cls(
            estimates=tuple(
                PolicyEstimate(**{**e, "reasons": tuple(e["reasons"])}) for e in d["estimates"]
            ),
            pairs=tuple(Contrast(**c) for c in d["pairs"]),
            audits=tuple(TransportAudit(**a) for a in d["audits"]),
            calibration=None
            if cal is None
            else CalibrationInfo(
                **{
                    **cal,
                    "covariates": tuple(cal["covariates"]),
                    "judge_range": tuple(cal["judge_range"]),
                    "reliability": tuple(cal["reliability"]),
                    "curve": tuple(cal.get("curve", ())),
                }
            ),
            ranking=tuple(tuple(t) for t in d["ranking"]),
            judge_scale=tuple(d["judge_scale"]),  # type: ignore[arg-type]
            label_scale=tuple(d["label_scale"]),  # type: ignore[arg-type]
            alpha=d["alpha"],
            notices=tuple(d["notices"]),
            warnings=tuple(d["warnings"]),
            excluded=dict(d["excluded"]),
            settings=dict(d["settings"]),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        """Rebuild a report from :meth:`to_json` output.

        Parameters
        ----------
        text : str
            JSON text written by :meth:`to_json` (or ``cje analyze --format json``).

        Returns
        -------
        Report

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> back = cje.Report.from_json(rep.to_json())
        >>> back == rep, back.ranking[0]
        (True, ('improved', 'concise', 'base'))
        """
        return cls.from_dict(json.loads(text))

    def write(self, path: Any, *, figures: bool = True) -> list[Any]:
        """Write the report as markdown (``.md``) or self-contained HTML (``.html``) with its
        figures; see :func:`cje.export.write_report`.

        Parameters
        ----------
        path : str or pathlib.Path
            Output file ending in ``.md`` (figures written as PNGs beside it) or ``.html``
            (figures embedded).
        figures : bool
            Draw the figures (matplotlib); ``False`` writes the tables only.

        Returns
        -------
        list of pathlib.Path
            The files written, the report first.

        Examples
        --------
        >>> import os, tempfile, cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> paths = rep.write(os.path.join(tempfile.mkdtemp(), "report.md"), figures=False)
        >>> [p.name for p in paths]
        ['report.md']
        >>> paths[0].read_text().splitlines()[0]
        '# cje report'
        """
        from cje.export import write_report

        return write_report(self, path, figures=figures)

    # ---- plots ----------------------------------------------------------------------------
    def plot(self, kind: str = "forest", ax: Any = None) -> Any:
        """Draw the report: ``"forest"``, ``"reliability"``, ``"contrasts"``, ``"overlap"`` or
        ``"weight_tail"``.

        Parameters
        ----------
        kind : {"forest", "reliability", "contrasts", "overlap", "weight_tail"}
            :func:`~cje.plots.forest_plot` (estimates vs naive judge means),
            :func:`~cje.plots.reliability_diagram` (the calibration map and its OUA band),
            :func:`~cje.plots.contrast_plot` (paired differences and the ranking),
            :func:`~cje.plots.overlap_plot` (off-policy: ESS of raw and stabilised weights) or
            :func:`~cje.plots.weight_tail_plot` (off-policy: the weights' upper tails).
        ax : matplotlib Axes, optional
            Where to draw; a new figure when ``None``.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=1)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> ax = rep.plot("reliability")
        >>> ax.get_ylabel()
        'oracle label (label scale 1–5)'
        >>> plt.close(ax.figure)
        """
        from cje import plots

        draw = {"forest": plots.forest_plot, "reliability": plots.reliability_diagram,
                "contrasts": plots.contrast_plot, "overlap": plots.overlap_plot,
                "weight_tail": plots.weight_tail_plot}
        if kind not in draw:
            from cje.errors import CJEInputError

            raise CJEInputError(
                "kind must be one of 'forest', 'reliability', 'contrasts', 'overlap', "
                f"'weight_tail'; got {kind!r}."
            )
        return draw[kind](self, ax=ax)
