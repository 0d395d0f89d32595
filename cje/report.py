"""The report: what :func:`cje.analyze` returns, read as a summary, frames, JSON, CSV, files
and figures.

The presentation layer: a :class:`Report` holds the result records of :mod:`cje.results`
(re-exported here: ``from cje.report import PolicyEstimate`` keeps working) and presents them;
it may call :mod:`cje.export` and :mod:`cje.plots`, and nothing numeric imports it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cje._text import (
    GLOSSARY,
    MAX_PAIRS_SHOWN,
    NOT_OK_NOTE,
    TIER_NOTE,
    glossary_terms,
    level_text,
    p_text,
    scale_text,
    short_reason,
    starred,
    value_digits,
    visible,
)
from cje.results import (
    CONTRAST_FIELDS,
    OVERLAP_KEYS,
    STATUSES,  # noqa: F401  (re-exported: cje.report.STATUSES)
    CalibrationInfo,
    Contrast,
    PolicyEstimate,
    TransportAudit,
    record_from_dict,
)
from cje.results import clip_repr as _clip
from cje.results import plain_value as _plain

__all__ = ["PolicyEstimate", "Contrast", "TransportAudit", "CalibrationInfo", "Report"]

#: What each calibration mode is, in the summary's calibration line.
_MODE_WORDS = {"monotone": " (label as a monotone function of the judge score)",
               "two_stage": " (a smooth index of judge score and covariates, then monotone)"}


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.{digits}f}"


def _sfmt(x: float, digits: int = 3) -> str:
    """Signed number, ``—`` for NaN/None."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:+.{digits}f}"


def _pfmt(p: float, alpha: float | None = None) -> str:
    return "—" if p is None else p_text(p, alpha)



def _name_width(names: Any) -> int:
    """Width of the summary's name column: 24, or the longest visible name. Names are never cut:
    two policies whose names share a long prefix (``model-2024-08-06-temperature-0.7`` and
    ``…-1.0``) would print as the same row name."""
    return max([24, *(len(visible(p)) for p in names)])



#: Above this many pairs :meth:`Report.to_json` writes compact JSON by default.
_INDENT_MAX_PAIRS = 5000


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
        Policies from best to worst in groups: any two policies in different groups have a
        significant Holm-adjusted contrast at ``alpha`` (so a chain of close policies can make
        one group). REFUSED policies are left out and listed by every output as "not ranked"
        with their reason; policies with another status that is not OK (CAUTION) stay in, and
        every printed ranking stars them (``V*``): the order rests on their caveats.
    judge_scale, label_scale : tuple of float
    alpha : float
    notices, warnings : tuple of str
    excluded : dict
        Rows excluded on request, by reason (nothing else is dropped); every output counts them.
    settings : dict
        The options of the run.
    provenance : dict
        What made the report (:func:`cje.export.provenance`): ``cje_version``, ``created_utc``,
        the Python/numpy (pandas, polars) versions and ``inputs`` (each input's path, or
        "in-memory", with a SHA-256 of its content). Empty for a report built by hand or read
        from JSON written before cje recorded it. Not compared by ``==``: two runs of the same
        analysis on the same data are the same result, made at different times.

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
    provenance: dict[str, Any] = field(default_factory=dict)

    def __eq__(self, other: object) -> bool:
        """Equal content, NaN included (a NaN diagnostic equals a NaN diagnostic), so that
        ``Report.from_json(r.to_json()) == r``. ``provenance`` is not compared: it holds the
        time the report was made, so a rerun of the same analysis on the same data would
        otherwise never equal the first (compare ``a.provenance == b.provenance`` for that)."""
        if not isinstance(other, Report):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        a.pop("provenance", None)
        b.pop("provenance", None)
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)

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

    # ---- what every output shows the same way ----------------------------------------------
    def _label_info(self) -> list[tuple[int | None, str]]:
        """``(own labels, where the calibration's labels come from)`` per estimate.

        An off-policy target has no responses of its own in the logged data, so the labelled
        rows its estimate uses (``n_labels``) are the logging policy's: they train the
        calibrator only. Its own count is ``diagnostics["n_labels_own"]`` when the pipeline
        records it; otherwise 0 when every calibration label is accounted for by the logged
        rows, and ``None`` (unknown, shown ``?``) when labels also came from elsewhere (fresh
        draws), which this report cannot attribute.
        """
        cal = self.calibration
        targets = [e for e in self.estimates if "ess_raw" in e.diagnostics]
        logged = next((e for e in self.estimates if e.method.startswith("on-policy")), None)
        n_logged = logged.n_labels if logged is not None else max(
            (e.n_labels for e in targets), default=0)
        base = f"logging policy {logged.policy!r}" if logged is not None else "the logging policy"
        out: list[tuple[int | None, str]] = []
        for e in self.estimates:
            if "ess_raw" in e.diagnostics:  # an off-policy target
                own = e.diagnostics.get("n_labels_own")
                if own is None and cal is not None and cal.n_labels <= n_logged:
                    own = 0
                src = ("none (uncalibrated)" if cal is None
                       else f"{base}: {e.n_labels} labels (train the calibrator only)")
                out.append((None if own is None else int(own), src))
            elif cal is None:
                out.append((e.n_labels, "none (uncalibrated)"))
            elif logged is not None and e is logged:
                out.append((e.n_labels, f"its own logged rows ({e.n_labels} labels)"))
            else:
                out.append((e.n_labels, f"all policies pooled ({cal.n_labels} labels)"))
        return out

    def _label_note(self) -> str | None:
        """One sentence on the off-policy targets' labels, or ``None`` when there are none."""
        info = self._label_info()
        tg = [(e, own) for e, (own, _) in zip(self.estimates, info, strict=True)
              if "ess_raw" in e.diagnostics]
        if not tg or self.calibration is None:
            return None
        src = info[self.estimates.index(tg[0][0])][1].split(":")[0]
        zero = [e.policy for e, own in tg if own == 0]
        unknown = [e.policy for e, own in tg if own is None]
        some = [e.policy for e, own in tg if own]
        parts = []
        if zero:
            parts.append(f"{len(zero)} off-policy target(s) have no oracle labels of their own "
                         f"(labels = 0)")
        if some:
            parts.append(f"{len(some)} have labels of their own")
        if unknown:
            parts.append(f"for {len(unknown)} the count of their own labels is not recorded "
                         "(labels = ?: calibration labels came also from fresh draws)")
        return ("; ".join(parts) + f". Their calibration is learned on the labels of the {src}, "
                "which train the calibrator only; the targets' levels rest on it transporting.")

    def _better_text(self, max_winners: int = 8) -> str | None:
        """Which policies the Holm-adjusted contrasts show better than which, in one line."""
        if not self.pairs:
            return None
        value = {e.policy: e.estimate for e in self.estimates}
        beats: dict[str, list[str]] = {}
        for c in self.pairs:
            if c.p_holm < self.alpha:
                win, lose = (c.policy_a, c.policy_b) if c.estimate > 0 else (c.policy_b, c.policy_a)
                beats.setdefault(win, []).append(lose)
        test = (f"(Holm-adjusted tests over all {len(self.pairs)} pairs, alpha = {self.alpha:g})")
        if not beats:
            return f"No policy is shown better than another {test}."
        order = sorted(beats, key=lambda p: -value.get(p, 0.0))
        bad = self._not_ok()
        marked: set[str] = set()

        def name(p: str) -> str:
            if p in bad:
                marked.add(p)
            return starred(visible(p), p, bad)

        parts = [f"{name(w)} > " + ", ".join(name(x) for x in
                                            sorted(beats[w], key=lambda p: -value.get(p, 0.0)))
                 for w in order[:max_winners]]
        more = f"; … ({len(order) - max_winners} more: Report.contrasts())" \
            if len(order) > max_winners else ""
        note = f" ({NOT_OK_NOTE})" if marked else ""
        return f"Better {test}: " + "; ".join(parts) + more + "; no other pair is separable." + note

    def _not_ok(self) -> set[str]:
        """Policies whose level is not OK.

        A level that is not OK carries its caveat into every comparison it enters (a CAUTION
        level rests on an assumption, e.g. that the calibration transports): the contrast lines,
        the "Better" line and the ranking mark it with ``*`` (:data:`NOT_OK_NOTE`), never hide it.
        """
        return {e.policy for e in self.estimates if e.status != "OK"}

    def _digits(self) -> int:
        """Decimals of the printed values (:func:`value_digits` of the scale they are on)."""
        on_judge = bool(self.estimates) and all(e.units == "judge" for e in self.estimates)
        return value_digits(self.judge_scale if on_judge else self.label_scale)

    def _ranking_text(self, name: Callable[[str], str] = str) -> tuple[str, str]:
        """The ranking's tiers as one line and its legend, policies that are not OK starred."""
        bad = self._not_ok()
        tiers = " > ".join("{" + ", ".join(starred(name(p), p, bad) for p in t) + "}" if len(t) > 1
                           else starred(name(t[0]), t[0], bad) for t in self.ranking)
        legend = f"Holm-adjusted tests at alpha = {self.alpha:g}; braces: {TIER_NOTE}"
        if any(p in bad for t in self.ranking for p in t):
            legend += f"; {NOT_OK_NOTE}"
        return tiers, legend

    def _unranked(self) -> list[tuple[str, str]]:
        """``(policy, why)`` of every estimate left out of :attr:`ranking`."""
        ranked = {p for t in self.ranking for p in t}
        out = []
        for e in self.estimates:
            if e.policy not in ranked:
                why = e.status + (f": {e.reasons[0]}" if e.reasons else "")
                out.append((e.policy, why))
        return out

    def _pairs_shown(self, max_pairs: int | None) -> tuple[list[Contrast], str | None]:
        """The contrasts a readable output lists, and the sentence saying what was left out.

        All pairs when there are at most ``max_pairs`` (``None``: no limit); otherwise the
        pairs adjacent in the ranking from the top (half the budget), then the remaining pairs
        with the smallest Holm p-values. One pass over the pairs.
        """
        import heapq

        pairs = self.pairs
        if max_pairs is not None and (not isinstance(max_pairs, int) or isinstance(max_pairs, bool)
                                      or max_pairs < 0):
            from cje.errors import CJEInputError

            raise CJEInputError(f"max_pairs must be an integer >= 0, or None to list every pair; "
                                f"got {max_pairs!r}.")
        if max_pairs is None or len(pairs) <= max_pairs:
            return list(pairs), None
        order = [p for t in self.ranking for p in t]
        ranked = set(order)
        order += [e.policy for e in sorted(self.estimates, key=lambda e: -e.estimate
                                           if e.estimate == e.estimate else math.inf)
                  if e.policy not in ranked]
        n_adj = min(max_pairs // 2 + max_pairs % 2, max(len(order) - 1, 0))
        want = {}
        for i in range(n_adj):
            want[(order[i], order[i + 1])] = i
            want[(order[i + 1], order[i])] = i
        adjacent: dict[int, Contrast] = {}
        rest = []
        for c in pairs:
            i = want.get((c.policy_a, c.policy_b))
            if i is not None and i not in adjacent:
                adjacent[i] = c
            else:
                rest.append(c)
        chosen = [adjacent[i] for i in sorted(adjacent)]
        k = max_pairs - len(chosen)

        def key(c: Contrast) -> tuple[float, float]:
            p = c.p_holm if c.p_holm == c.p_holm else math.inf
            return (p, -abs(c.estimate) if c.estimate == c.estimate else 0.0)

        others = heapq.nsmallest(k, rest, key=key) if k > 0 else []
        shown = chosen + others
        note = (f"{len(pairs) - len(shown)} of {len(pairs)} pairs not shown (max_pairs = "
                f"{max_pairs}): listed are the {len(chosen)} pairs adjacent in the ranking from the "
                f"top and the {len(others)} other pairs with the smallest p_holm. Every pair is in "
                "report.contrasts(), report.to_csv(table='contrasts') and the JSON output "
                "(cje analyze --format json).")
        return shown, note

    def _contrast_caption(self) -> str:
        """What the contrast intervals and p-values are (the same words in every output)."""
        lv = level_text(self.alpha)
        return (f"a − b with per-pair unadjusted {lv} intervals; p = unadjusted two-sided "
                f"p-value; p_holm = Holm-adjusted over all {len(self.pairs)} pairs; significant "
                f"(*) when p_holm < {self.alpha:g}. The intervals are not adjusted for "
                "multiplicity: one may exclude 0 while p_holm ≥ alpha.")

    def _excluded_text(self) -> str | None:
        if not self.excluded:
            return None
        ex = ", ".join(f"{v} rows with {visible(k)}" for k, v in self.excluded.items())
        total = sum(int(v) for v in self.excluded.values())
        return (f"Excluded on request (on_invalid='drop'): {ex}. {total} row(s) in all, left out "
                "of every estimate.")

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
            The fields of :class:`PolicyEstimate` (``reasons`` joined by ``"; "``), one
            ``diag_<name>`` column per diagnostic, and after ``n_labels``: ``n_labels_own``, the
            oracle labels on the policy's own responses (0 for an off-policy target, whose
            ``n_labels`` counts the logging policy's labelled rows; ``None`` if not recorded),
            and ``calibration_labels_from``, where the calibration's labels come from.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> df = rep.to_pandas()
        >>> print(df[["policy", "estimate", "ci_low", "ci_high", "status"]].round(2)
        ...       .to_string(index=False))
          policy  estimate  ci_low  ci_high status
            base      3.06    2.83     3.29     OK
         concise      3.13    2.89     3.37     OK
        improved      3.31    2.95     3.67     OK
           small      2.70    2.48     2.92     OK
         verbose      2.73    2.51     2.94     OK
        """
        import pandas as pd

        rows = []
        info = dict(zip((e.policy for e in self.estimates), self._label_info(), strict=True))
        for e in self._shown(reliable_only):
            d: dict[str, Any] = {}
            for k, v in asdict(e).items():
                d[k] = v
                if k == "n_labels":  # the policy's own labels, and where the calibration's are
                    d["n_labels_own"], d["calibration_labels_from"] = info[e.policy]
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
         concise    small     0.427   0.026
         concise  verbose     0.401   0.049
        improved    small     0.611   0.031
        improved  verbose     0.584   0.041
        """
        import pandas as pd

        cols = list(CONTRAST_FIELDS)
        return pd.DataFrame({n: [getattr(c, n) for c in self.pairs] for n in cols}, columns=cols)

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
            mild     0.91        0.98      6.25 CAUTION
        moderate     0.64        0.89      2.84 CAUTION
             far     0.19        0.66      1.34 CAUTION
        >>> # mild and moderate: this sample's mean raw weight is 2.0 and 2.4 SE below 1 (it drew
        >>> # few of their high-weight responses; both estimates are low): CAUTION, not OK
        >>> t.loc[t.policy == "mild", "mean_raw_weight"].round(3).tolist()
        [0.972]
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
    def summary(self, reliable_only: bool = False, max_pairs: int | None = MAX_PAIRS_SHOWN,
                explain: bool = False) -> str:
        """A readable table of estimates, contrasts, audits and warnings.

        Names and reasons are printed with control characters made visible (see
        :func:`visible`), so a policy name cannot drive the terminal.

        Parameters
        ----------
        reliable_only : bool
            Leave out the policies whose status is ``REFUSED`` (a line says how many).
        max_pairs : int or None, default 45
            List at most this many contrasts (adjacent pairs in the ranking, then the smallest
            Holm p-values); a line says how many were left out. ``None`` lists all.
        explain : bool, default False
            Print each status reason in full (instead of one short sentence with a docs
            pointer) and end with plain-words explanations of the terms used (CLI ``--explain``).

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
        base                        3.057    [2.828, 3.287]   0.113     6    300     29   2.663 OK
        >>> print(next(ln for ln in lines if ln.startswith("Paired")))
        Paired contrasts a − b: per-pair unadjusted 95% CIs; p_holm = Holm-adjusted over all 10 pairs.
        >>> print(next(ln for ln in lines if "Ranking" in ln).split("): ")[1])
        {improved, concise, base, verbose, small}
        """
        lo, hi = scale_text(*self.label_scale)
        lv = level_text(self.alpha)
        dg = self._digits()
        out: list[str] = []
        cal = self.calibration
        if cal is not None:
            out.append(
                f"Each policy's value on the label scale ({lo}–{hi}), from judge scores "
                f"calibrated to {cal.n_labels} oracle labels; per-policy {lv} CIs that include "
                "the calibration's own uncertainty (OUA)."
            )
        else:
            out.append("UNCALIBRATED: too few oracle labels; raw judge means on the judge scale.")
        w = _name_width([e.policy for e in self.estimates] + [a.policy for a in self.audits])
        head = (
            f"{'policy':<{w}} {'estimate':>8} {f'{lv} CI':>17} {'SE':>7} {'cal%':>5} "
            f"{'n':>6} {'labels':>6} {'naive':>7} {'status':<8}"
        )
        out += ["", head, "-" * len(head)]
        shown = self._shown(reliable_only)
        own_of = {e.policy: own for e, (own, _) in zip(self.estimates, self._label_info(),
                                                         strict=True)}
        for e in shown:
            ci = f"[{_fmt(e.ci_low, dg)}, {_fmt(e.ci_high, dg)}]"
            share = "—" if math.isnan(e.calibration_share) else f"{100 * e.calibration_share:.0f}"
            naive = _fmt(e.naive_estimate, dg) if e.units == "label" else "—"  # same number there
            own = own_of[e.policy]
            out.append(
                f"{visible(e.policy):<{w}} {_fmt(e.estimate, dg):>8} {ci:>17} {_fmt(e.se, dg):>7} "
                f"{share:>5} {e.n:>6} {'?' if own is None else own:>6} {naive:>7} "
                f"{visible(e.status):<8}"
            )
        hidden = len(self.estimates) - len(shown)
        if hidden:
            out.append(f"({hidden} REFUSED estimate(s) hidden by reliable_only=True)")
        out.append(
            "SE = standard error; cal% = share of the variance due to the calibration; labels = "
            "the policy's own oracle labels; naive = raw judge mean rescaled to the label scale, "
            "as if the judge were the metric."
        )
        better = self._better_text()
        if better:
            out.append(better)
        if cal is not None:
            out.append(
                f"Calibration: {visible(cal.mode)}{_MODE_WORDS.get(cal.mode, '')}, {cal.n_labels} labels on "
                f"{cal.n_labelled_prompts} prompts, {cal.n_folds} folds; out-of-fold RMSE "
                f"{_fmt(cal.oof_rmse, dg)} (typical error of one calibrated score)."
            )
        note = self._label_note()
        if note:
            out.append(note)
        overlap = [e for e in shown if "ess_raw" in e.diagnostics]
        if overlap:
            out += ["", "Overlap of the logged data with each target (ESS raw → stabilised, "
                        "Hill tail index and TTC on raw weights, judge-space affinity):"]
            for e in overlap:
                d = e.diagnostics
                ess = _fmt(100 * d["ess_raw"], 1) + "%"
                if d.get("ess_stable") == d.get("ess_stable"):  # not NaN
                    ess += f" → {100 * d['ess_stable']:.1f}%"
                excl = f", {d['n_excluded']} rows excluded" if d.get("n_excluded") else ""
                if d.get("residual_weights") == "stable":
                    excl = (f", residual on stabilised weights (transport gap "
                            f"{_sfmt(d.get('transport_gap', float('nan')), dg)} ± "
                            f"{_fmt(d.get('transport_gap_se', float('nan')), dg)})" + excl)
                out.append(
                    f"  {visible(e.policy):<{w}} ESS {ess}, Hill {_fmt(d['hill_raw'], 2)}, "
                    f"TTC {_fmt(d['ttc'], 2)}, affinity {_fmt(d['affinity'], 2)}, "
                    f"CLE {_fmt(d['cle'], 2)}{excl}"
                )
        reasons = [(e.policy, r) for e in shown for r in e.reasons]
        if reasons:
            out += ["", "Status reasons:" if explain else "Status reasons (in full: --explain):"]
            out += [f"  {visible(p)}: {visible(r if explain else short_reason(r))}"
                    for p, r in reasons]
        if self.audits:
            out += ["", "Transport audits (δ = mean(label − calibrated judge) on the probe slice):"]
            for a in self.audits:
                margin = "no margin" if a.margin is None else f"margin ±{a.margin:g}"
                out.append(
                    f"  {visible(a.policy):<{w}} δ = {_fmt(a.delta, dg)} [{_fmt(a.ci_low, dg)}, "
                    f"{_fmt(a.ci_high, dg)}], n = {a.n}, {margin}: {visible(a.verdict)}"
                )
        if self.pairs:
            n = len(self.pairs)
            out += ["", f"Paired contrasts a − b: per-pair unadjusted {lv} CIs; p_holm = "
                        f"Holm-adjusted over all {n} pairs.",
                    f"  (* = p_holm < {self.alpha:g}; p = unadjusted. The intervals are not "
                    "adjusted for multiplicity: one may exclude 0 while p_holm ≥ alpha.)"]
            listed, omitted = self._pairs_shown(max_pairs)
            bad = self._not_ok()
            if any(c.policy_a in bad or c.policy_b in bad for c in listed):
                out.append(f"  (name{NOT_OK_NOTE})")
            for c in listed:
                mark = "*" if c.p_holm < self.alpha else " "
                out.append(
                    f"  {starred(visible(c.policy_a), c.policy_a, bad)} − "
                    f"{starred(visible(c.policy_b), c.policy_b, bad)}: {_sfmt(c.estimate, dg)} "
                    f"[{_sfmt(c.ci_low, dg)}, {_sfmt(c.ci_high, dg)}], p = {_pfmt(c.p_value, self.alpha)}, "
                    f"p_holm = {_pfmt(c.p_holm, self.alpha)} {mark}"
                )
            if omitted:
                out.append(f"  ({omitted})")
        if self.ranking and (self.pairs or len(self.estimates) > 1):
            tiers, legend = self._ranking_text(visible)
            out.append(f"  Ranking ({legend}): {tiers}")
        for p, why in self._unranked():
            out.append(f"  Not ranked: {visible(p)} ({visible(why)})")
        if self.warnings:
            out += ["", "Warnings:"] + [f"  ! {visible(w)}" for w in self.warnings]
        ex = self._excluded_text()
        if ex:
            out += ["", ex]
        if self.notices:
            out += ["", "Notices:"] + [f"  - {visible(n)}" for n in self.notices]
        terms = glossary_terms("\n".join(out))
        if explain:
            out += ["", "Terms used above:"]
            out += [f"  {t}: {GLOSSARY[t][0]} [docs: {GLOSSARY[t][1]}]" for t in terms]
        elif terms:
            out += ["", f"Terms ({', '.join(terms[:6])}{', …' if len(terms) > 6 else ''}) are "
                        "explained by --explain (Report.summary(explain=True)) and in the docs' "
                        "Glossary."]
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
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "pairs":  # flat records, possibly ~10^5 of them: no deep copy needed
                out[f.name] = tuple({n: getattr(c, n) for n in CONTRAST_FIELDS} for c in v)
            else:
                out[f.name] = _plain(v)
        return out

    def to_json(self, **kwargs: Any) -> str:
        """Strict JSON text of :meth:`to_dict`: every parser reads it (no ``NaN``/``Infinity``).

        A number that is not finite is written as ``null``, and ``null_reasons`` (a JSON
        object keyed by the JSON Pointer of each such value) records what it was (``"NaN"``,
        ``"Infinity"``, ``"-Infinity"``) and why, so :meth:`from_json` restores it exactly.
        ``derived`` spells out what the fields imply, for readers without cje: each policy's own
        label count (``n_labels_own``: 0 for an off-policy target, whose ``n_labels`` are the
        logging policy's rows) and where its calibration labels come from, the policies left
        out of the ranking with the reason, the number of rows dropped by
        ``on_invalid="drop"``, and what the intervals and ``p_holm`` are.

        Parameters
        ----------
        **kwargs
            Passed to :func:`json.dumps` (``indent`` defaults to 2, or to ``None`` (compact)
            for reports with more than 5,000 pairs, which the indenting encoder writes ~10×
            slower; ``allow_nan`` is always ``False``).

        Returns
        -------
        str

        Examples
        --------
        >>> import json, cje
        >>> sim = cje.synthetic.make_offpolicy_eval(300, rng=0)
        >>> rep = cje.analyze(sim.logged, estimator="snips", judge_scale=(0, 1), label_scale=(0, 1))
        >>> text = rep.to_json()
        >>> d = json.loads(text, parse_constant=lambda c: 1 / 0)   # no NaN anywhere
        >>> d["estimates"][1]["diagnostics"]["ess_stable"] is None
        True
        >>> d["null_reasons"]["/estimates/1/diagnostics/ess_stable"]["value"]
        'NaN'
        >>> rep.from_json(text) == rep   # lossless (from_json is a classmethod of Report)
        True
        """
        kwargs.setdefault("indent", 2 if len(self.pairs) <= _INDENT_MAX_PAIRS else None)
        kwargs["allow_nan"] = False
        reasons: dict[str, dict[str, str]] = {}
        clean = _strict(self.to_dict(), "", reasons, self)
        clean["null_reasons"] = reasons
        info = self._label_info()
        lv = level_text(self.alpha)
        clean["derived"] = {  # read-outs of the fields above; from_json ignores them
            "n_labels_own": {e.policy: own for e, (own, _) in zip(self.estimates, info,
                                                                  strict=True)},
            "calibration_labels_from": {e.policy: src for e, (_, src) in zip(self.estimates, info,
                                                                             strict=True)},
            "not_ranked": [{"policy": p, "why": why} for p, why in self._unranked()],
            "excluded_rows": sum(int(v) for v in self.excluded.values()),
            "estimate_intervals": f"per-policy {lv} (with OUA; not adjusted for multiplicity)",
            "contrast_intervals": f"per-pair unadjusted {lv}",
            "p_holm": f"Holm-adjusted over all {len(self.pairs)} pairs; significant = p_holm < "
                      f"{self.alpha:g}",
        }
        return json.dumps(clean, **kwargs)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """Rebuild a report from :meth:`to_dict` output (or the parsed :meth:`to_json` text).

        Parameters
        ----------
        d : dict
            As :meth:`to_dict` returns it, or as read back from its JSON (lists for tuples,
            ``null`` for a float that was not finite: restored from ``null_reasons``, else NaN).

        Returns
        -------
        Report

        Raises
        ------
        CJEInputError
            When ``d`` is not a report: a missing or unknown field (named with its path, e.g.
            ``estimates[2]``), or a value of the wrong type.

        Examples
        --------
        >>> import json, cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> stored = json.loads(json.dumps(rep.to_dict()))   # e.g. kept in a database
        >>> back = cje.Report.from_dict(stored)
        >>> back == rep, back["improved"].ci_low == rep["improved"].ci_low
        (True, True)
        >>> cje.Report.from_dict({"estimates": []})   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        cje.errors.CJEInputError: The report lacks the field(s) ['pairs', 'audits', ...]; it is not...
        """
        from cje.errors import CJEInputError

        if not isinstance(d, dict):
            raise CJEInputError(
                f"A report must be a JSON object (dict) as Report.to_json writes it; got "
                f"{type(d).__name__} {_clip(d)}."
            )
        d = dict(d)
        d.pop("derived", None)  # read-outs written by to_json, recomputed from the fields
        reasons = d.pop("null_reasons", None) or {}
        if not isinstance(reasons, dict):
            raise CJEInputError(f"null_reasons must be an object; got {_clip(reasons)}.")
        if reasons:
            import copy

            d = copy.deepcopy(d)
            for ptr, info in reasons.items():
                _restore(d, ptr, info)
        return record_from_dict(cls, d, "The report", name="The report")

    @classmethod
    def from_json(cls, text: str | bytes) -> Report:
        """Rebuild a report from :meth:`to_json` output.

        Parameters
        ----------
        text : str or bytes
            JSON text written by :meth:`to_json` (or ``cje analyze --format json``).

        Returns
        -------
        Report

        Raises
        ------
        CJEInputError
            Not JSON, or JSON that is not a report (see :meth:`from_dict`).

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> back = cje.Report.from_json(rep.to_json())
        >>> back == rep, back.ranking[0]
        (True, ('improved', 'concise', 'base', 'verbose', 'small'))
        """
        from cje.errors import CJEInputError

        if not isinstance(text, (str, bytes, bytearray)):
            raise CJEInputError(
                f"from_json needs the JSON text (str or bytes); got {type(text).__name__}. For a "
                "file use Report.from_json(pathlib.Path(p).read_text()); for a dict, from_dict."
            )
        try:
            d = json.loads(text)
        except ValueError as err:  # JSONDecodeError, or bad bytes
            raise CJEInputError(f"The text is not valid JSON ({err}); expected the output of "
                                "Report.to_json (cje analyze --format json).") from None
        return cls.from_dict(d)

    def to_csv(self, path: Any = None, *, table: str = "estimates",
               reliable_only: bool = False) -> str | None:
        """One table as CSV, safe to open in a spreadsheet and self-describing.

        * ``table="estimates"``: :meth:`to_pandas` plus ``interval`` (what ``ci_low``/``ci_high``
          are), ``scale`` (after ``units``: e.g. ``label scale 1 to 5``), ``ranked`` (``yes``,
          or ``no: <status>: <reason>``), ``n_labels_own`` and
          ``calibration_labels_from`` (see :meth:`to_pandas`).
        * ``table="contrasts"``: every pair of :meth:`contrasts` plus ``interval`` (per-pair,
          unadjusted) and ``p_adjustment`` (how ``p_holm`` was adjusted); ``significant`` is
          ``p_holm < alpha``.

        Both carry ``excluded_rows`` (rows dropped by ``on_invalid="drop"``) and
        ``excluded_by_reason`` on every row: a CSV has no place for a note that every reader
        keeps, and a comment line breaks parsers, so the count travels with each row (a script
        can check ``excluded_rows == 0``). The provenance travels the same way, in the last
        columns ``cje_version``, ``created_utc`` and ``inputs`` (each input as
        ``role=path sha256:<hex>``, ``; ``-separated; the options are in the JSON output's
        ``settings``); a report without provenance leaves them empty. Text cells that a
        spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, tab or
        carriage return) get a leading ``'``, and so do the words ``pandas.read_csv`` reads as missing
        (``None``, ``NA``, ``null``, … :data:`MISSING_WORDS`: a policy so named would come back as
        NaN), and control characters are shown as escapes
        (:func:`visible`); numeric columns are never changed.

        Parameters
        ----------
        path : str, Path or None
            Where to write; ``None`` returns the text.
        table : {"estimates", "contrasts"}
        reliable_only : bool
            ``table="estimates"``: leave out REFUSED policies.

        Returns
        -------
        str or None

        Examples
        --------
        >>> import io, pandas as pd, cje
        >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
        >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
        >>> t = pd.read_csv(io.StringIO(rep.to_csv(table="contrasts")))
        >>> len(t), t["interval"][0], int(t["excluded_rows"][0])
        (10, 'per-pair unadjusted 95%', 0)
        >>> t["p_adjustment"][0]
        'p_holm: Holm over all 10 pairs; p_value: unadjusted'
        """
        from cje.errors import CJEInputError

        lv = level_text(self.alpha)
        if table == "estimates":
            df = self.to_pandas(reliable_only)
            df.insert(df.columns.get_loc("ci_high") + 1, "interval",
                      f"per-policy {lv} (with OUA; not adjusted for multiplicity)")
            if "units" in df:  # the scale's numbers: a CSV row is read without the JSON's fields
                scales = {"label": self.label_scale, "judge": self.judge_scale}
                df.insert(df.columns.get_loc("units") + 1, "scale",
                          [f"{u} scale {' to '.join(scale_text(*scales[u]))}" if u in scales else ""
                           for u in df["units"]])
            unranked = dict(self._unranked())
            df["ranked"] = ["yes" if p not in unranked else f"no: {unranked[p]}"
                            for p in df.get("policy", [])]
        elif table == "contrasts":
            df = self.contrasts()
            df["significant"] = df["p_holm"] < self.alpha
            df.insert(df.columns.get_loc("ci_high") + 1, "interval", f"per-pair unadjusted {lv}")
            df.insert(df.columns.get_loc("p_holm") + 1, "p_adjustment",
                      f"p_holm: Holm over all {len(self.pairs)} pairs; p_value: unadjusted")
        else:
            raise CJEInputError(f"table must be 'estimates' or 'contrasts'; got {table!r}.")
        df["excluded_rows"] = sum(int(v) for v in self.excluded.values())
        df["excluded_by_reason"] = "; ".join(f"{k}: {v}" for k, v in self.excluded.items())
        prov = self.provenance or {}
        df["cje_version"] = prov.get("cje_version", "")
        df["created_utc"] = prov.get("created_utc", "")
        df["inputs"] = "; ".join(
            f"{role}={src.get('path', src.get('in_memory', '?'))} sha256:{src.get('sha256')}"
            for role, src in (prov.get("inputs") or {}).items())
        df = csv_safe(df)
        return df.to_csv(path, index=False)

    def write(self, path: Any, *, figures: bool = True,
              max_pairs: int | None = MAX_PAIRS_SHOWN) -> list[Any]:
        """Write the report as markdown (``.md``) or self-contained HTML (``.html``) with its
        figures; see :func:`cje.export.write_report`.

        Parameters
        ----------
        path : str or pathlib.Path
            Output file ending in ``.md`` (figures written as PNGs beside it) or ``.html``
            (figures embedded).
        figures : bool
            Draw the figures (matplotlib); ``False`` writes the tables only.
        max_pairs : int or None, default 45
            List at most this many contrasts (a line says how many were left out); ``None``
            lists all.

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

        return write_report(self, path, figures=figures, max_pairs=max_pairs)

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


# ---- strict JSON ------------------------------------------------------------------------------
def _ptr_part(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")


def _why(path: str, report: Report) -> str:
    """Why the value at ``path`` is not a finite number, in words."""
    parts = path.strip("/").split("/")
    if parts[0] == "estimates" and len(parts) > 2:
        e = report.estimates[int(parts[1])]
        name = parts[-1].replace("~1", "/").replace("~0", "~")
        if e.status == "REFUSED" and parts[2] in ("estimate", "se", "ci_low", "ci_high"):
            return "REFUSED: " + (e.reasons[0] if e.reasons else "no reliable value")
        if parts[2] == "diagnostics" and name.endswith("_stable"):
            return f"not computed: the estimator ({e.method}) uses no stabilised weights"
        if parts[2] == "diagnostics":
            return f"diagnostic {name!r} is not defined for this estimate"
        return f"{parts[2]} is not defined for policy {e.policy!r} (e.g. no variance to share)"
    if parts[0] == "pairs":
        return "not defined for this pair (e.g. zero standard error)"
    return "not defined for this run"


def _strict(obj: Any, path: str, reasons: dict[str, dict[str, str]], report: Report) -> Any:
    """``obj`` with non-finite floats as ``None`` (recorded in ``reasons``); numpy scalars as
    Python numbers."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            t = type(v)
            if (t is float and v - v == 0) or t is int or t is str or t is bool or v is None:
                out[k] = v  # the common case, without a call (reports may hold 10^5 pairs)
            else:
                out[k] = _strict(v, f"{path}/{_ptr_part(k)}", reasons, report)
        return out
    if isinstance(obj, (list, tuple)):
        return [_strict(v, f"{path}/{i}", reasons, report) for i, v in enumerate(obj)]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if hasattr(obj, "item") and not isinstance(obj, (int, float)):  # numpy scalar
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        value = "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
        reasons[path] = {"value": value, "why": _why(path, report)}
        return None
    return obj


def _restore(d: Any, ptr: Any, info: Any) -> None:
    """Put back at JSON Pointer ``ptr`` the non-finite value ``info["value"]``."""
    from cje.errors import CJEInputError

    value = info.get("value") if isinstance(info, dict) else None
    if value not in ("NaN", "Infinity", "-Infinity") or not isinstance(ptr, str):
        raise CJEInputError(
            f"null_reasons[{ptr!r}] must be an object with value 'NaN', 'Infinity' or "
            f"'-Infinity'; got {_clip(info)}."
        )
    keys = [k.replace("~1", "/").replace("~0", "~") for k in ptr.split("/")[1:]]
    node = d
    try:
        for k in keys[:-1]:
            node = node[int(k)] if isinstance(node, list) else node[k]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = float(value.lower().replace("infinity", "inf"))
        elif isinstance(node, dict) and last in node:
            node[last] = float(value.lower().replace("infinity", "inf"))
        else:
            raise KeyError(last)
    except (KeyError, IndexError, ValueError, TypeError):
        raise CJEInputError(
            f"null_reasons names {ptr!r}, which is not a value of this report; the JSON was "
            "edited or truncated."
        ) from None



# ---- CSV ---------------------------------------------------------------------------------------
#: First characters that make a spreadsheet treat a text cell as a formula.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


#: Text cells that ``pandas.read_csv`` reads as missing by default (its own list, less the empty
#: cell): a policy named ``None`` or ``NA`` would come back as NaN, and two such policies as one.
MISSING_WORDS = frozenset(("#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan",
                           "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a",
                           "nan", "null"))


def csv_text(x: Any) -> Any:
    """A text cell made inert for spreadsheets (leading ``'`` before a formula character) and
    kept by ``pandas.read_csv`` (leading ``'`` before a word it reads as missing, e.g. ``None``);
    a text that itself starts with ``'`` gets one more, so that no two names print alike (``=a``
    and ``'=a`` would both read ``'=a``): dropping one leading ``'`` always gives the name back.
    Anything that is not a string is returned unchanged.

    Examples
    --------
    >>> print(csv_text("=SUM(A1:A9)"), csv_text("-1+2"), csv_text(-1.5), csv_text("base"))
    '=SUM(A1:A9) '-1+2 -1.5 base
    >>> print(csv_text("None"), csv_text("NA"), csv_text("none"))
    'None 'NA none
    >>> print(csv_text("=a"), csv_text("'=a"), csv_text("'quoted"))
    '=a ''=a ''quoted
    """
    if isinstance(x, str) and (x.startswith(FORMULA_START) or x in MISSING_WORDS
                               or x.startswith("'")):
        return "'" + x
    return x


def csv_safe(df: Any) -> Any:
    """Every text cell made visible (:func:`visible`: the CSV may be printed to a terminal) and
    formula-safe (:func:`csv_text`); numeric columns untouched."""
    import pandas as pd
    from pandas.api.types import is_object_dtype, is_string_dtype

    df = df.copy()
    for col in df.columns:
        if is_object_dtype(df[col]) or is_string_dtype(df[col]):
            try:
                codes, uniq = pd.factorize(df[col], use_na_sentinel=True)  # each text once
            except TypeError:  # unhashable cells (lists): one by one
                df[col] = df[col].map(lambda x: csv_text(visible(x)) if isinstance(x, str) else x)
                continue
            safe = [csv_text(visible(x)) if isinstance(x, str) else x for x in uniq]
            df[col] = pd.Series([safe[c] if c >= 0 else v for c, v in zip(codes, df[col],
                                                                            strict=True)],
                                index=df.index, dtype=object)
    df.columns = [csv_text(visible(c)) for c in df.columns]
    return df
