"""Figures of a :class:`~cje.report.Report` and a :class:`~cje.bias.BiasAudit`.

Every function takes the result, ``ax=None`` (a new figure is created when ``None``) and returns
the Axes it drew on (scikit-learn's Display idea). matplotlib is imported inside the functions,
so ``import cje`` stays light, and no global style is changed: colours and sizes are set on the
artists themselves.

* :func:`reliability_diagram` — the calibration map with its OUA band against binned labels.
* :func:`forest_plot` — each policy's calibrated estimate and the naive judge mean, with CIs.
* :func:`contrast_plot` — every paired difference with its CI, Holm-significant ones highlighted.
* :func:`bias_plot` — the effect of every judge-bias test, one panel per test.
* :func:`overlap_plot` — off-policy: each target's ESS of the raw and the stabilised weights
  against the gate, with Hill index and TTC.
* :func:`weight_tail_plot` — off-policy: the upper tail (survival curve) of the raw and the
  stabilised weights per target, on log–log axes.
* :func:`monitor` — a :class:`~cje.monitoring.MonitorReport` over time: calibrated estimates with
  their bands, the naive judge means, drift and score-shift markers.
* :func:`plan` — a :class:`~cje.planning.Plan`: the predicted half-width against the labels
  bought, per policy, with the target line and each policy's labels needed.
* :func:`save_report_figures` — the report's figures as PNG files.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from cje._text import TIER_NOTE, level_text, p_text, starred
from cje.errors import CJEInputError

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from cje.bias._report import BiasAudit
    from cje.monitoring import MonitorReport
    from cje.planning import Plan
    from cje.report import Report

__all__ = ["reliability_diagram", "forest_plot", "contrast_plot", "bias_plot", "overlap_plot",
           "weight_tail_plot", "monitor", "plan", "save_report_figures"]

#: Colours of the estimate statuses (colour-blind-safe Tableau hues).
STATUS_COLORS = {"OK": "#1f77b4", "CAUTION": "#ff7f0e", "REFUSED": "#d62728", "UNCALIBRATED": "#7f7f7f"}
NAIVE_COLOR = "#7f7f7f"
SIGNIFICANT_COLOR = "#1f77b4"
FLAG_COLOR = "#d62728"
MUTED_COLOR = "#8c8c8c"
#: Above this many policies the forest plot becomes a compact "caterpillar": one artist per
#: status instead of one per policy, a figure of bounded height, only the best and worst
#: policies named on the axis.
FOREST_MAX_ROWS = 60
#: Policies named (at evenly spaced ranks, the best and the worst included) in a caterpillar
#: forest plot.
FOREST_NAMED = 21
#: Default most pairs the contrast plot draws; beyond it, only the pairs among the best policies.
CONTRAST_MAX_PAIRS = 45
#: Characters of the ranking line above the contrast plot before it is abbreviated.
RANKING_TEXT_CHARS = 480
#: Most targets the overlap plot draws (those with the lowest raw-weight ESS beyond it).
OVERLAP_MAX_TARGETS = 40
#: Most targets the weight-tail plot draws (those with the lowest raw-weight ESS beyond it).
WEIGHT_TAIL_MAX_TARGETS = 8


# ---- shared helpers ---------------------------------------------------------------------------
def _clipped_err(est: Any, lo: Any, hi: Any, bounds: Sequence[Any]) -> list[Any]:
    """``xerr`` of an interval drawn inside ``bounds = (low, high)`` (the scale: no value can
    lie beyond it; scalars, or arrays with one bound per interval).

    The interval's ends are clipped to the scale, then the arms are measured from the estimate
    (never negative, so an estimate that itself lies off the scale keeps its marker). Only the
    drawing is clipped; the report's numbers are not.

    Examples
    --------
    >>> [round(float(a[0]), 3) for a in _clipped_err(0.9, 0.7, 1.2, (0, 1))]   # ends 0.7, 1.0
    [0.2, 0.1]
    """
    b_lo, b_hi = (np.asarray(b, dtype=float) for b in bounds)  # scalars, or one per interval
    est, lo, hi = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (est, lo, hi))
    lo_c, hi_c = np.clip(lo, b_lo, b_hi), np.clip(hi, b_lo, b_hi)
    return [np.maximum(est - lo_c, 0.0), np.maximum(hi_c - est, 0.0)]


def _new_axes(ax: Axes | None, size: tuple[float, float]) -> Axes:
    """``ax`` itself, or the Axes of a new constrained-layout figure of ``size`` inches."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, new = plt.subplots(figsize=size, layout="constrained")
    return new


def _level(alpha: float) -> str:
    """The interval level in percent without the sign, never rounded to a wrong level (``97.5``
    for ``alpha = 0.025``, which ``round`` printed as 98)."""
    return level_text(alpha)[:-1]


def _num(x: float) -> str:
    """A compact number for labels: 3 significant digits, no trailing zeros."""
    return f"{x:.3g}"


def _scale(scale: Sequence[float]) -> str:
    return f"{scale[0]:g}–{scale[1]:g}"


def _legend_below(ax: Axes, handles: list[Any], ncol: int, label_lines: int = 1,
                  align: str = "right") -> None:
    """A frameless legend just under the x-axis label (offset in inches, whatever the size).

    ``align="right"`` ends it at the Axes' right edge, so a legend wider than the Axes grows
    leftwards over the tick-label column rather than off the figure.
    """
    from matplotlib.transforms import ScaledTranslation

    drop = 0.3 + 0.19 * label_lines  # tick labels + the x-axis label's lines
    where = ax.transAxes + ScaledTranslation(0, -drop, ax.figure.dpi_scale_trans)
    x, loc = {"right": (1.0, "upper right"), "center": (0.5, "upper center")}[align]
    ax.legend(handles=handles, loc=loc, bbox_to_anchor=(x, 0.0), bbox_transform=where,  # type: ignore[call-overload]
              ncol=ncol, fontsize="small", frameon=False, handlelength=2.2, columnspacing=1.5)


# ---- reliability diagram ----------------------------------------------------------------------
def reliability_diagram(report: Report, ax: Axes | None = None) -> Axes:
    """The judge's calibration map with its OUA band, against the mean label per judge-score bin.

    Draws, on judge score (x, judge scale) against oracle label (y, label scale):

    * the calibration map ``f`` (``report.calibration.curve``) and its ``1 − alpha`` band
      ``f ± z·se`` (``se`` is the delete-one-oracle-fold jackknife standard error of the map, the
      oracle uncertainty (OUA) that the estimates' intervals include), shaded;
    * the mean oracle label of each judge-score bin of the labelled rows
      (``report.calibration.reliability``) as points whose area grows with the bin's count, and
      a thin horizontal line over the judge scores the bin spans;
    * the dashed reference of a "perfectly calibrated" judge, whose score mapped affinely from
      the judge scale to the label scale *is* the label (what the naive estimate assumes);
    * judge scores outside the labelled range, where the map is extrapolated, greyed;
    * along the bottom, below the label scale, a histogram of the labelled judge scores (the
      bins' counts divided by their widths: where the labels are).

    Parameters
    ----------
    report : Report
        A calibrated report (:func:`cje.analyze` with enough oracle labels).
    ax : matplotlib Axes, optional
        Where to draw; a new 6.4 × 6.4 inch figure when ``None``.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    CJEInputError
        When the report is uncalibrated (too few labels) or carries no calibration curve.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> from cje.plots import reliability_diagram
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> ax = reliability_diagram(rep)
    >>> ax.get_xlabel()
    'judge score (judge scale 0–10)'
    >>> plt.close(ax.figure)
    """
    cal = report.calibration
    if cal is None:
        raise CJEInputError(
            "reliability_diagram needs a calibrated report; this one is UNCALIBRATED (too few "
            "oracle labels). Add oracle labels and re-run cje.analyze, or plot the raw judge "
            "means with forest_plot."
        )
    if not cal.curve:
        raise CJEInputError(
            "This report carries no calibration curve (it was saved by an older cje); re-run "
            "cje.analyze to draw the reliability diagram."
        )
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    ax = _new_axes(ax, (6.4, 6.4))
    jlo, jhi = report.judge_scale
    llo, lhi = report.label_scale
    jspan, lspan = jhi - jlo, lhi - llo
    z = NormalDist().inv_cdf(1 - report.alpha / 2)
    level = _level(report.alpha)

    x = np.array([c["judge_score"] for c in cal.curve])
    f = np.array([c["calibrated"] for c in cal.curve])
    se = np.nan_to_num(np.array([c["se"] for c in cal.curve]))

    # where the labels are: the strip below the label scale holds their histogram
    strip_lo = llo - 0.2 * lspan
    handles: list[Any] = []
    lab_lo, lab_hi = cal.judge_range
    x_lo, x_hi = jlo - 0.03 * jspan, jhi + 0.03 * jspan
    for a, b in ((x_lo, lab_lo), (lab_hi, x_hi)):
        if b - a > 0.035 * jspan:  # more than the plot's margin: a real unlabelled stretch
            ax.axvspan(a, b, color="0.92", zorder=0, lw=0)
            handles.append(Patch(color="0.92", label="no labels here: map extrapolated"))

    ref = ax.plot([jlo, jhi], [llo, lhi], ls="--", color="0.35", lw=1.2, zorder=1,
                  label="judge taken at face value\n(judge scale mapped onto label scale)")
    # the band clipped to the label scale: no label lies beyond it
    band = ax.fill_between(x, np.clip(f - z * se, llo, lhi), np.clip(f + z * se, llo, lhi),
                           color="#1f77b4", alpha=0.25, lw=0, zorder=2,
                           label=f"{level}% OUA band (oracle-fold jackknife)")
    band.set_gid("oua_band")
    what = "calibration map f" + (" (covariates at medians)" if cal.covariates else "")
    (curve,) = ax.plot(x, f, color="#1f77b4", lw=2, zorder=3, label=what)
    curve.set_gid("calibration_curve")

    rel = cal.reliability
    lows = np.array([r["judge_low"] for r in rel], dtype=float)
    highs = np.array([r["judge_high"] for r in rel], dtype=float)
    counts = np.array([r["n"] for r in rel], dtype=float)
    means = np.array([r["mean_label"] for r in rel], dtype=float)
    mids = (lows + highs) / 2
    if rel:
        ax.hlines(means, lows, highs, color="black", lw=1, zorder=4)
        sizes = 15 + 185 * counts / counts.max()
        pts = ax.scatter(mids, means, s=sizes, facecolor="white", edgecolor="black", lw=1.2,
                         zorder=5, label="mean label per judge-score bin\n(area ∝ labels in bin)")
        pts.set_gid("bin_means")

        # histogram of the labelled judge scores from the bins: each bin widened to the midpoints
        # between neighbouring bins (half the smallest gap at the ends), height = count / width
        gaps = lows[1:] - highs[:-1]
        pad = float(np.min(gaps[gaps > 0])) / 2 if np.any(gaps > 0) else 0.01 * jspan
        edges = np.concatenate([[lows[0] - pad], (highs[:-1] + lows[1:]) / 2, [highs[-1] + pad]])
        width = np.diff(edges)
        density = counts / width
        heights = np.maximum(0.16 * lspan * density / density.max(), 0.008 * lspan)
        bars = ax.bar(edges[:-1], heights, width=width, bottom=strip_lo + 0.01 * lspan, align="edge",
                      color="0.55", edgecolor="white", lw=0.5, zorder=2,
                      label="labelled judge scores: histogram,\nlabels per bin written above")
        for patch, k in zip(bars, counts, strict=True):
            patch.set_gid("label_histogram")
            ax.text(patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height(),
                    f"{k:.0f}", ha="center", va="bottom", fontsize="x-small", color="0.3")
    ax.axhline(llo - 0.02 * lspan, color="0.75", lw=0.6, zorder=1)
    ax.text(-0.015, strip_lo + 0.09 * lspan, "labels", transform=ax.get_yaxis_transform(), ha="right",
            va="center", fontsize="small", color="0.4")

    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(strip_lo, lhi + 0.05 * lspan)
    ticks = MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]).tick_values(llo, lhi)
    ax.set_yticks([t for t in ticks if llo - 1e-9 * lspan <= t <= lhi + 1e-9 * lspan])
    ax.set_xlabel(f"judge score (judge scale {_scale(report.judge_scale)})")
    ax.set_ylabel(f"oracle label (label scale {_scale(report.label_scale)})")
    ax.set_title(
        f"Judge calibration ({cal.mode})\n{cal.n_labels} labels on {cal.n_labelled_prompts} "
        f"prompts, out-of-fold RMSE {_num(cal.oof_rmse)}",
        fontsize="medium",
    )
    order = [curve, band, ref[0]] + ([pts] if rel else []) + handles + ([bars] if rel else [])
    _legend_below(ax, order, ncol=2, align="center")
    return ax


# ---- forest plot ------------------------------------------------------------------------------
def forest_plot(report: Report, ax: Axes | None = None, reliable_only: bool = False) -> Axes:
    """Each policy's estimate with its confidence interval, next to the naive judge mean.

    One row per policy, best at the top. The calibrated estimate (circle, ``1 − alpha`` CI with
    oracle uncertainty) is coloured by its status: blue OK, orange CAUTION, red and hollow with a
    dashed interval REFUSED (the level is not reliable; the reasons are in ``report.summary()``).
    Just below it, the naive estimate (grey diamond): the raw judge mean mapped affinely onto the
    label scale, with its clustered CI — what you would report without calibration. An
    uncalibrated report shows the raw judge means on the judge scale, in grey.

    Parameters
    ----------
    report : Report
    ax : matplotlib Axes, optional
        Where to draw; a new figure sized to the number of policies when ``None``.
    reliable_only : bool, default False
        Hide REFUSED estimates (as ``report.summary(reliable_only=True)`` does).

    Returns
    -------
    matplotlib.axes.Axes
        Each calibrated error bar's data line has gid ``"estimate:<policy>"``, each naive one
        ``"naive:<policy>"``.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> from cje.plots import forest_plot
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> ax = forest_plot(rep)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['small', 'verbose', 'base', 'concise', 'improved']
    >>> plt.close(ax.figure)
    """
    from matplotlib.lines import Line2D

    shown = [e for e in report.estimates if not (reliable_only and e.status == "REFUSED")]
    if not shown:
        raise CJEInputError(
            "forest_plot has nothing to draw: every estimate is REFUSED and reliable_only=True."
        )
    shown.sort(key=lambda e: e.estimate)  # bottom to top: best at the top
    if len(shown) > FOREST_MAX_ROWS:
        return _forest_many(report, shown, ax)
    ax = _new_axes(ax, (7.0, 1.6 + 0.62 * len(shown)))
    level = _level(report.alpha)
    calibrated = any(e.units == "label" for e in shown)
    off = 0.14 if calibrated else 0.0

    for y, e in enumerate(shown):
        color = STATUS_COLORS.get(e.status, STATUS_COLORS["OK"])
        refused = e.status == "REFUSED"
        if e.units == "label":  # the naive judge mean is on the label scale only then
            nv = ax.errorbar(e.naive_estimate, y - off,
                             xerr=_clipped_err(e.naive_estimate, e.naive_ci_low, e.naive_ci_high,
                                               report.label_scale),
                             fmt="D", ms=5.5, color=NAIVE_COLOR, mfc="white", mew=1.3, elinewidth=1.2,
                             capsize=3, zorder=3)
            nv.lines[0].set_gid(f"naive:{e.policy}")
        scale = report.label_scale if e.units == "label" else report.judge_scale
        eb = ax.errorbar(e.estimate, y + off, xerr=_clipped_err(e.estimate, e.ci_low, e.ci_high, scale),
                         fmt="o", ms=7.5, color=color, mfc="white" if refused else color, mew=1.8,
                         elinewidth=2, capsize=4, zorder=4)
        eb.lines[0].set_gid(f"estimate:{e.policy}")
        if refused:
            for bar in eb.lines[2]:
                bar.set_linestyle((0, (3, 2)))

    ax.set_yticks(range(len(shown)))
    ax.set_yticklabels([e.policy for e in shown])
    for tick, e in zip(ax.get_yticklabels(), shown, strict=True):
        if e.status in ("CAUTION", "REFUSED"):
            tick.set_color(STATUS_COLORS[e.status])
            tick.set_fontweight("bold")
    ax.set_ylim(-0.6, len(shown) - 0.4)
    ax.grid(axis="x", color="0.9", lw=0.8)
    ax.set_axisbelow(True)

    if calibrated:
        ax.set_xlabel(f"policy value (label scale {_scale(report.label_scale)})")
        ax.set_title(f"Policy estimates with {level}% CIs: calibrated vs naive judge mean",
                     fontsize="medium")
        handles = [
            Line2D([], [], marker="o", color=STATUS_COLORS["OK"], ms=7, lw=2,
                   label=f"calibrated estimate, {level}% CI (with OUA)"),
            Line2D([], [], marker="D", color=NAIVE_COLOR, mfc="white", ms=5.5, lw=1.2,
                   label=f"naive: judge mean on the label scale, {level}% CI"),
        ]
    else:
        ax.set_xlabel(f"raw judge mean (judge scale {_scale(report.judge_scale)}) — UNCALIBRATED")
        ax.set_title(f"UNCALIBRATED: raw judge means with {level}% CIs (too few oracle labels)",
                     fontsize="medium")
        handles = [Line2D([], [], marker="o", color=STATUS_COLORS["UNCALIBRATED"], ms=7, lw=2,
                          label=f"raw judge mean, {level}% CI (not the label)")]
    statuses = {e.status for e in shown}
    if "CAUTION" in statuses:
        handles.append(Line2D([], [], marker="o", color=STATUS_COLORS["CAUTION"], ms=7, lw=2,
                              label="CAUTION (see status reasons)"))
    if "REFUSED" in statuses:
        handles.append(Line2D([], [], marker="o", color=STATUS_COLORS["REFUSED"], mfc="white",
                              mew=1.8, ms=7, lw=2, ls=(0, (3, 2)),
                              label="REFUSED: level not reliable"))
    hidden = len(report.estimates) - len(shown)
    if hidden:
        handles.append(Line2D([], [], ls="", label=f"({hidden} REFUSED hidden: reliable_only)"))
    _legend_below(ax, handles, ncol=2 if len(handles) > 2 else 1)
    return ax


def _forest_many(report: Report, shown: list[Any], ax: Axes | None) -> Axes:
    """The forest plot of more than :data:`FOREST_MAX_ROWS` policies (``shown`` sorted worst
    first): every policy is drawn, but with one error-bar artist per status (gid
    ``"estimates:<status>"``) and one for the naive means (gid ``"naive"``), in a figure of
    bounded height; :data:`FOREST_NAMED` policies at evenly spaced ranks are named."""
    from matplotlib.lines import Line2D

    n = len(shown)
    ax = _new_axes(ax, (7.0, 9.0))
    level = _level(report.alpha)
    y = np.arange(n, dtype=float)
    est = np.array([e.estimate for e in shown])
    lo = np.array([e.ci_low for e in shown])
    hi = np.array([e.ci_high for e in shown])
    status = np.array([e.status for e in shown])
    label_units = np.array([e.units == "label" for e in shown])
    calibrated = bool(label_units.any())
    # each interval drawn inside its own scale (label, or judge for an uncalibrated mean)
    b_lo = np.where(label_units, report.label_scale[0], report.judge_scale[0])
    b_hi = np.where(label_units, report.label_scale[1], report.judge_scale[1])
    if calibrated:
        nv = np.array([e.naive_estimate for e in shown])
        nlo = np.array([e.naive_ci_low for e in shown])
        nhi = np.array([e.naive_ci_high for e in shown])
        m = label_units
        eb = ax.errorbar(nv[m], y[m], xerr=_clipped_err(nv[m], nlo[m], nhi[m], report.label_scale),
                         fmt="D", ms=2,
                         color=NAIVE_COLOR, mfc="white", mew=0.6, elinewidth=0.5, alpha=0.6,
                         zorder=3)
        eb.lines[0].set_gid("naive")
    for st in dict.fromkeys(status.tolist()):
        m = status == st
        color = STATUS_COLORS.get(st, STATUS_COLORS["OK"])
        eb = ax.errorbar(est[m], y[m], xerr=_clipped_err(est[m], lo[m], hi[m], (b_lo[m], b_hi[m])),
                         fmt="o", ms=2.5, color=color, mfc="white" if st == "REFUSED" else color,
                         mew=0.8,
                         elinewidth=0.8, zorder=4)
        eb.lines[0].set_gid(f"estimates:{st}")
    # names at evenly spaced ranks, always the best and the worst (rank 1 is the best)
    ticks = sorted({int(round(t)) for t in np.linspace(0, n - 1, FOREST_NAMED)})
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"#{n - i} {shown[i].policy}" for i in ticks], fontsize="x-small")
    for tick, i in zip(ax.get_yticklabels(), ticks, strict=True):
        if shown[i].status in ("CAUTION", "REFUSED"):
            tick.set_color(STATUS_COLORS[shown[i].status])
    ax.set_ylim(-1, n)
    ax.grid(axis="x", color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    what = (f"{n:,} policies, best at the top, {len(ticks)} named with their rank\n"
            "(every estimate: report.summary(), report.to_pandas())")
    if calibrated:
        ax.set_xlabel(f"policy value (label scale {_scale(report.label_scale)})")
        ax.set_title(f"Policy estimates with {level}% CIs: calibrated vs naive judge mean\n{what}",
                     fontsize="medium")
        handles = [Line2D([], [], marker="o", color=STATUS_COLORS["OK"], ms=4, lw=1,
                          label=f"calibrated estimate, {level}% CI (with OUA)"),
                   Line2D([], [], marker="D", color=NAIVE_COLOR, mfc="white", ms=3, lw=0.8,
                          label=f"naive: judge mean on the label scale, {level}% CI")]
    else:
        ax.set_xlabel(f"raw judge mean (judge scale {_scale(report.judge_scale)}) — UNCALIBRATED")
        ax.set_title(f"UNCALIBRATED: raw judge means with {level}% CIs (too few oracle labels)\n{what}",
                     fontsize="medium")
        handles = [Line2D([], [], marker="o", color=STATUS_COLORS["UNCALIBRATED"], ms=4, lw=1,
                          label=f"raw judge mean, {level}% CI (not the label)")]
    for st, text in (("CAUTION", "CAUTION (see status reasons)"),
                     ("REFUSED", "REFUSED: level not reliable")):
        if st in status:
            handles.append(Line2D([], [], marker="o", color=STATUS_COLORS[st], ms=4, lw=1,
                                  mfc="white" if st == "REFUSED" else STATUS_COLORS[st], label=text))
    hidden = len(report.estimates) - n
    if hidden:
        handles.append(Line2D([], [], ls="", label=f"({hidden} REFUSED hidden: reliable_only)"))
    _legend_below(ax, handles, ncol=2 if len(handles) > 2 else 1)
    return ax


# ---- contrasts --------------------------------------------------------------------------------
def _ranking_text(ranking: Sequence[Sequence[str]], limit: int = RANKING_TEXT_CHARS,
                  not_ok: frozenset[str] | set[str] = frozenset()) -> str:
    """``"{a, b} > c > …"``, abbreviated past ``limit`` characters with a count of what is left.

    Policies in ``not_ok`` (status not OK) are followed by ``*``.

    Examples
    --------
    >>> _ranking_text([("a", "b"), ("c",)])
    '{a, b} > c'
    >>> _ranking_text([tuple(f"p{i}" for i in range(100)), ("q",)], limit=40)
    '{p0, p1, p2, p3, p4, … 95 more} > q'
    >>> _ranking_text([(f"p{i}",) for i in range(100)], limit=40)
    'p0 > p1 > p2 > p3 > p4 > p5 > p6 > p7 > … (92 more policies in 92 more tiers)'
    >>> _ranking_text([("a",), ("b", "c")], not_ok={"a", "c"})
    'a* > {b, c*}'
    """
    parts: list[str] = []
    used = 0
    for i, t in enumerate(ranking):
        names = [starred(p, p, not_ok) for p in t]
        if len(", ".join(names)) > limit:  # one huge tier: its first names and a count
            head: list[str] = []
            for x in names:
                if len(", ".join([*head, x])) > limit // 2:
                    break
                head.append(x)
            names = [*head, f"… {len(t) - len(head)} more"]
        part = "{" + ", ".join(names) + "}" if len(t) > 1 else names[0]
        if parts and used + len(part) > limit:
            rest = ranking[i:]
            n = sum(len(r) for r in rest)
            parts.append(f"… ({n} more polic{'y' if n == 1 else 'ies'} in {len(rest)} more "
                         f"tier{'' if len(rest) == 1 else 's'})")
            break
        parts.append(part)
        used += len(part) + 3
    return " > ".join(parts)


def contrast_plot(report: Report, ax: Axes | None = None,
                  max_pairs: int = CONTRAST_MAX_PAIRS) -> Axes:
    """Every paired difference with its confidence interval, and the ranking it implies.

    One row per pair, oriented "higher − lower" by the report's ranking (so most differences
    are positive; a row reads ``"improved − small"``), with its ``1 − alpha`` CI (prompt-aligned
    influence values plus oracle uncertainty) and a zero line. Pairs whose Holm-adjusted
    p-value is below ``alpha`` are drawn in blue and filled, the others grey and hollow; the
    Holm p-value is written at the right (the CIs themselves are per pair, not adjusted). Rows
    whose two policies share a ranking tier (a run the tests cannot cut) are shaded, the ranking
    is spelled out above the plot (abbreviated when long), a REFUSED policy's name carries a
    dagger (†) and any other policy whose status is not OK a star (*).

    With more than ``max_pairs`` contrasts (P policies give P(P−1)/2) only the pairs among the
    best policies by estimate are drawn — as many policies as fit in ``max_pairs`` — and the
    title says so; every pair stays in ``report.contrasts()``.

    Parameters
    ----------
    report : Report
        A report with at least two calibrated policies.
    ax : matplotlib Axes, optional
        Where to draw; a new figure sized to the number of pairs when ``None``.
    max_pairs : int, default 45
        Most pairs to draw (45: every pair of the 10 best policies). At least 1.

    Returns
    -------
    matplotlib.axes.Axes
        Each error bar's data line has gid ``"contrast:<a> − <b>"`` (oriented as drawn).

    Raises
    ------
    CJEInputError
        When the report has no contrasts (one policy, or uncalibrated).

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> from cje.plots import contrast_plot
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> ax = contrast_plot(rep)
    >>> len(ax.containers) == len(rep.pairs)
    True
    >>> plt.close(ax.figure)
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.transforms import blended_transform_factory

    if not report.pairs:
        raise CJEInputError(
            "contrast_plot needs at least two calibrated policies; this report has no contrasts"
            + (" (it is UNCALIBRATED)." if report.calibration is None else ".")
        )
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, (int, np.integer)) or max_pairs < 1:
        raise CJEInputError(f"max_pairs must be a positive integer; got {max_pairs!r}.")
    # orientation and order: by estimate, best first (the ranking's order for ranked policies)
    by_est = sorted(report.estimates, key=lambda e: -e.estimate)
    rank = {e.policy: i for i, e in enumerate(by_est)}
    tier_of = {p: t for t, tier in enumerate(report.ranking) for p in tier}
    big = len(rank) + 1
    pairs: Sequence[Any] = report.pairs
    n_all = len(pairs)
    top = 0
    if n_all > max_pairs:  # only the pairs among the `top` best contrasted policies
        in_pairs = {p for c in pairs for p in (c.policy_a, c.policy_b)}
        ranked = [e.policy for e in by_est if e.policy in in_pairs]
        top = 2
        while (top + 1) * top // 2 <= max_pairs:
            top += 1
        best = set(ranked[:top])
        pairs = [c for c in pairs if c.policy_a in best and c.policy_b in best]
    rows = []
    for c in pairs:
        flip = rank.get(c.policy_b, big) < rank.get(c.policy_a, big)
        a, b = (c.policy_b, c.policy_a) if flip else (c.policy_a, c.policy_b)
        sign = -1.0 if flip else 1.0
        lo, hi = sorted((sign * c.ci_low, sign * c.ci_high))
        rows.append((a, b, sign * c.estimate, lo, hi, c))
    rows.sort(key=lambda r: (rank.get(r[0], big), rank.get(r[1], big)), reverse=True)  # top: first

    n = len(rows)
    ax = _new_axes(ax, (7.4, 2.0 + 0.42 * n))
    level = _level(report.alpha)
    same_tier = False
    for y, (a, b, est, lo, hi, c) in enumerate(rows):
        if a in tier_of and tier_of.get(a) == tier_of.get(b):
            ax.axhspan(y - 0.5, y + 0.5, color="0.93", lw=0, zorder=0)
            same_tier = True
        color = SIGNIFICANT_COLOR if c.significant else MUTED_COLOR
        span = report.label_scale[1] - report.label_scale[0]  # a difference lies in ±span
        eb = ax.errorbar(est, y, xerr=_clipped_err(est, lo, hi, (-span, span)), fmt="o", ms=6.5,
                         color=color,
                         mfc=color if c.significant else "white", mew=1.5,
                         elinewidth=2 if c.significant else 1.3, capsize=3, zorder=3)
        eb.lines[0].set_gid(f"contrast:{a} − {b}")
    ax.axvline(0, color="0.2", lw=1, ls="--", zorder=1)

    ax.set_yticks(range(n))
    not_ok = report._not_ok()
    refused = {e.policy for e in report.estimates if e.status == "REFUSED"}
    caution = not_ok - refused
    mark = {p: f"{p}†" if p in refused else starred(p, p, caution) for p in {x for r in rows for x in r[:2]}}
    ax.set_yticklabels([f"{mark[a]} − {mark[b]}" for a, b, *_ in rows])
    for tick, r in zip(ax.get_yticklabels(), rows, strict=True):
        if r[5].significant:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.5, n - 0.5)
    # Holm p-values in a column just right of the axes
    right = blended_transform_factory(ax.transAxes, ax.transData)
    ax.text(1.01, n - 0.5, "p (Holm)", transform=right, ha="left", va="bottom", fontsize="small",
            color="0.3")
    for y, r in enumerate(rows):
        c = r[5]
        ax.text(1.01, y, p_text(c.p_holm, report.alpha, 2), transform=right, ha="left", va="center",
                fontsize="small",
                color=SIGNIFICANT_COLOR if c.significant else "0.3",
                fontweight="bold" if c.significant else "normal")
    ax.grid(axis="x", color="0.9", lw=0.8)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"difference in policy value, a − b (label scale {_scale(report.label_scale)})")
    tiers = _ranking_text(report.ranking, not_ok=not_ok)
    legend = f"braces: {TIER_NOTE}" + ("; * status not OK" if any(
        p in not_ok for t in report.ranking for p in t) else "")
    ranking = f"Ranking, best first ({legend}):\n" + textwrap.fill(tiers, 80)
    title = f"Paired contrasts with {level}% CIs, Holm-adjusted over {n_all:,} pairs"
    if top:
        title += (f"\nshowing the {n} pairs among the {top} best policies of {len(rank):,} "
                  "(every pair: report.contrasts())")
    ax.set_title(title, fontsize="medium", pad=8 + 11 * (ranking.count("\n") + 1))
    ax.text(0.5, 1.0, ranking, transform=ax.transAxes, ha="center", va="bottom", fontsize="small",
            color="0.25", linespacing=1.3)
    handles: list[Any] = [
        Line2D([], [], marker="o", color=SIGNIFICANT_COLOR, ms=6.5, lw=2,
               label=f"significant (Holm p < {report.alpha:g})"),
        Line2D([], [], marker="o", color=MUTED_COLOR, mfc="white", ms=6.5, lw=1.3,
               label="not significant after Holm (CIs are per pair)"),
    ]
    if same_tier:
        handles.append(Patch(color="0.93", label="same ranking tier (not split by the tests)"))
    if refused & set(mark):
        handles.append(Line2D([], [], ls="", label="† REFUSED policy: its level is not reliable"))
    if caution & set(mark):
        handles.append(Line2D([], [], ls="", label="* status CAUTION: the comparison rests on its caveats"))
    _legend_below(ax, handles, ncol=2)
    return ax


# ---- bias audit -------------------------------------------------------------------------------
def bias_plot(audit: BiasAudit, ax: Axes | None = None) -> Axes:
    """Every bias test's effect with its confidence interval, one panel per test.

    The tests measure different things in different units (log-odds of the first slot, judge
    points per SD of log length, probability differences…), so they do not share an x-axis:
    each test gets its own panel, titled with the test and labelled with what its effect
    measures, and one row per judge. Flagged biases (Holm-adjusted across the audit, plus each
    test's relevance rule) are red and filled with a bold "FLAGGED" label; the others grey and
    hollow; a result without a judge (a single judge, or judges pooled) is labelled "all rows".
    The dashed line at zero is "no bias" in every panel; the Holm p-value is written at the right.

    As in scikit-learn's ``PartialDependenceDisplay``, a given ``ax`` is a bounding box: with
    one test the panel is ``ax`` itself, with several the panels are ``ax.child_axes`` (top to
    bottom) and ``ax``'s own frame is hidden.

    Parameters
    ----------
    audit : BiasAudit
        The result of :func:`cje.bias.audit`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure sized to the number of tests when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        ``ax`` (the bounding Axes). Each error bar's data line has gid
        ``"bias:<test>:<judge or all>"``.

    Raises
    ------
    CJEInputError
        When the audit ran no test.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> from cje.plots import bias_plot
    >>> sim = cje.synthetic.make_panel_eval(150, length_effect=0.3, rng=1)
    >>> audit = cje.bias.audit(sim.data, rng=0)
    >>> ax = bias_plot(audit)
    >>> [p.get_title(loc="left") for p in ax.child_axes]
    ['verbosity', 'self-preference']
    >>> plt.close(ax.figure)
    """
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    if not audit.results:
        why = "; ".join(audit.skipped) if audit.skipped else "no test was run"
        raise CJEInputError(f"bias_plot has nothing to draw: the audit ran no test ({why}).")
    names = audit.tests if len(audit.tests) == len(audit.results) else tuple(r.bias for r in audit.results)
    groups: dict[str, list[Any]] = {}
    for t, r in zip(names, audit.results, strict=True):
        groups.setdefault(t, []).append(r)

    # layout in inches: per panel a title line, one row per result, ticks and a wrapped label
    wrap = 78
    label_lines = {t: len(textwrap.wrap(rs[0].effect_name, wrap)) for t, rs in groups.items()}
    heights = {t: 0.42 * len(rs) + 0.25 for t, rs in groups.items()}
    extra = {t: 0.32 + 0.4 + 0.17 * label_lines[t] for t in groups}  # title + ticks + xlabel
    total = sum(heights.values()) + sum(extra.values())
    ax = _new_axes(ax, (7.4, total + 0.3))
    level = _level(audit.alpha)

    if len(groups) == 1:
        panels = [ax]
    else:
        ax.set_axis_off()
        panels, top = [], 1.0
        for t in groups:
            top -= 0.32 / total
            h = heights[t] / total
            panels.append(ax.inset_axes((0.0, top - h, 1.0, h)))
            top -= h + (extra[t] - 0.32) / total

    for panel, (t, rs) in zip(panels, groups.items(), strict=True):
        n = len(rs)
        for i, r in enumerate(rs):
            y = n - 1 - i
            color = FLAG_COLOR if r.flagged else MUTED_COLOR
            eb = panel.errorbar(r.effect, y, xerr=[[r.effect - r.ci_low], [r.ci_high - r.effect]],
                                fmt="o", ms=7, color=color, mfc=color if r.flagged else "white",
                                mew=1.5, elinewidth=2 if r.flagged else 1.3, capsize=3, zorder=3)
            eb.lines[0].set_gid(f"bias:{t}:{r.judge or 'all'}")
        panel.axvline(0, color="0.2", lw=1, ls="--", zorder=1)
        panel.set_yticks(range(n))
        panel.set_yticklabels([
            (r.judge or "all rows") + ("  FLAGGED" if r.flagged else "") for r in reversed(rs)
        ])
        for tick, r in zip(panel.get_yticklabels(), reversed(rs), strict=True):
            if r.flagged:
                tick.set_color(FLAG_COLOR)
                tick.set_fontweight("bold")
        panel.set_ylim(-0.6, n - 0.4)
        lo = min(min(r.ci_low for r in rs), 0.0)
        hi = max(max(r.ci_high for r in rs), 0.0)
        pad = 0.08 * (hi - lo) if hi > lo else 1.0
        panel.set_xlim(lo - pad, hi + pad)
        panel.grid(axis="x", color="0.9", lw=0.8)
        panel.set_axisbelow(True)
        panel.set_title(t, loc="left", fontsize="medium", fontweight="bold")
        panel.set_xlabel("\n".join(textwrap.wrap(rs[0].effect_name, wrap)), fontsize="small")
        right = blended_transform_factory(panel.transAxes, panel.transData)
        panel.text(1.01, n - 0.4, "p (Holm)", transform=right, ha="left", va="bottom",
                   fontsize="small", color="0.3")
        for i, r in enumerate(rs):
            panel.text(1.01, n - 1 - i, f"{r.p_holm:.2g}", transform=right, ha="left", va="center",
                       fontsize="small", color=FLAG_COLOR if r.flagged else "0.3",
                       fontweight="bold" if r.flagged else "normal")

    handles = [
        Line2D([], [], marker="o", color=FLAG_COLOR, ms=7, lw=2, label="flagged: bias found"),
        Line2D([], [], marker="o", color=MUTED_COLOR, mfc="white", ms=7, lw=1.3,
               label="not flagged (not significant, or below the test's relevance bar)"),
    ]
    k = len(audit.results)
    title = f"Judge bias audit: {k} test{'s' if k > 1 else ''}, {level}% CIs, Holm-adjusted"
    if len(groups) == 1:
        ax.set_title(f"{title}\n{panels[0].get_title(loc='left')}", loc="left", fontsize="medium",
                     fontweight="bold")
    else:
        ax.set_title(title, loc="center", fontsize="medium")
    last = panels[-1]
    _legend_below(last, handles, ncol=2, label_lines=last.get_xlabel().count("\n") + 1)
    return ax


# ---- files ------------------------------------------------------------------------------------
def _weighted_targets(report: Report, plot: str, most: int | None = None) -> tuple[list[Any], str]:
    """The target estimates of an off-policy report (those with importance-weight diagnostics),
    at most ``most`` of them (the lowest raw-weight ESS, in report order), and a note for the
    title when some were left out ("" otherwise)."""
    rows = [e for e in report.estimates if "ess_raw" in e.diagnostics]
    if not rows:
        raise CJEInputError(
            f"{plot} needs an off-policy report (cje.analyze on logged data with "
            "log-probabilities); this report has no importance weights."
        )
    if most is None or len(rows) <= most:
        return rows, ""
    worst = set(sorted(range(len(rows)), key=lambda i: rows[i].diagnostics["ess_raw"])[:most])
    note = f"\nthe {most} of {len(rows)} targets with the lowest raw-weight ESS"
    return [e for i, e in enumerate(rows) if i in worst], note


def overlap_plot(report: Report, ax: Axes | None = None) -> Axes:
    """Off-policy overlap: ESS of the raw and the stabilised weights per target (log scale).

    Each target gets two bars — the raw (Hájek) weights' ESS fraction and the SIMCal-W weights'
    — against the 10% gate (dashed); the labels give the Hill tail index and TTC of the raw
    weights and the estimate's status. A high stabilised ESS does not make the estimate more
    precise than its interval says (see ``docs/offpolicy.md``): the raw bar is the one the gates
    read. With more than 40 targets only the 40 with the lowest raw-weight ESS are drawn (the
    title says so).

    Parameters
    ----------
    report : Report
        An off-policy report (``cje.analyze`` on logged data).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> sim = cje.synthetic.make_offpolicy_eval(500, rng=0)
    >>> rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1),
    ...                   label_scale=(0, 1))
    >>> ax = cje.plots.overlap_plot(rep)
    >>> [t.get_text() for t in ax.get_yticklabels()]
    ['mild', 'moderate', 'far']
    >>> plt.close(ax.figure)
    """
    from matplotlib.patches import Patch

    from cje.diagnostics.overlap import ESS_GATE

    rows, note = _weighted_targets(report, "overlap_plot", OVERLAP_MAX_TARGETS)
    ax = _new_axes(ax, (7.0, 1.4 + 0.7 * len(rows)))
    y = np.arange(len(rows))
    raw = np.array([e.diagnostics["ess_raw"] for e in rows])
    stable = np.array([e.diagnostics.get("ess_stable", np.nan) for e in rows])
    ax.barh(y - 0.18, raw, height=0.34, color=MUTED_COLOR, label="raw weights")
    has_stable = bool(np.isfinite(stable).any())
    if has_stable:
        ax.barh(y + 0.18, np.nan_to_num(stable), height=0.34, color=SIGNIFICANT_COLOR,
                label="SIMCal-W weights")
    ax.axvline(ESS_GATE, color=FLAG_COLOR, ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xlim(min(1e-3, float(np.nanmin(raw)) / 2), 1.0)
    ax.set_yticks(y)
    ax.set_yticklabels([e.policy for e in rows])
    ax.invert_yaxis()
    for i, e in enumerate(rows):
        d = e.diagnostics
        ax.text(1.02, i, f"Hill {_num(d['hill_raw'])}, TTC {_num(d['ttc'])}\n{e.status}",
                transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                color=STATUS_COLORS.get(e.status, "black"))
    ax.set_xlabel("effective sample size (fraction of logged rows, log scale)")
    ax.set_title("Overlap of the logged data with each target" + note)
    handles: list[Any] = [Patch(color=MUTED_COLOR, label="raw weights")]
    if has_stable:
        handles.append(Patch(color=SIGNIFICANT_COLOR, label="SIMCal-W weights"))
    handles.append(ax.plot([], [], color=FLAG_COLOR, ls="--", label=f"gate ({ESS_GATE:.0%})")[0])
    _legend_below(ax, handles, ncol=len(handles))
    return ax


def weight_tail_plot(report: Report, ax: Axes | None = None) -> Axes:
    """Off-policy: the upper tail of each target's raw and stabilised (SIMCal-W) weights.

    Survival curves on log–log axes: the share of logged rows whose mean-one weight exceeds w.
    A straight tail of slope −α is a Pareto tail with index α (the Hill index in the report);
    α < 2 (steeper than the dotted guide) means the raw weights' variance is effectively
    infinite. Solid: raw weights; dashed: stabilised. With more than 8 targets only the 8 with
    the lowest raw-weight ESS are drawn (the title says so).

    Parameters
    ----------
    report : Report
        An off-policy report.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> sim = cje.synthetic.make_offpolicy_eval(500, rng=0)
    >>> rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1),
    ...                   label_scale=(0, 1))
    >>> ax = cje.plots.weight_tail_plot(rep)
    >>> len(ax.get_lines())   # raw and stabilised per target, and the α = 2 guide
    7
    >>> plt.close(ax.figure)
    """
    import matplotlib.pyplot as plt

    rows, note = _weighted_targets(report, "weight_tail_plot", WEIGHT_TAIL_MAX_TARGETS)
    ax = _new_axes(ax, (6.4, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    w_max, p_min = 1.0, 0.5
    for i, e in enumerate(rows):
        c = colors[i % len(colors)]
        for key, ls, lab in (("weight_tail_raw", "-", "raw"), ("weight_tail_stable", "--", "SIMCal-W")):
            tail = e.diagnostics.get(key)
            if not tail:
                continue
            p, w = np.array(tail).T
            ax.plot(w, p, ls=ls, color=c, lw=1.6, marker="." if ls == "-" else None,
                    label=f"{e.policy} ({lab})")
            w_max, p_min = max(w_max, float(w.max())), min(p_min, float(p.min()))
    # guide: a Pareto tail of index 2 through (1, 1/2)
    g = np.geomspace(1.0, max(w_max, 10.0), 20)
    ax.plot(g, 0.5 * g ** -2.0, ls=":", color=MUTED_COLOR, lw=1, label="tail index α = 2")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # the tail is what matters: weights below 0.1 (rows the target avoids) are cut off
    ax.set_xlim(0.1, 1.5 * max(w_max, 10.0))
    ax.set_ylim(p_min / 2, 0.7)
    ax.set_xlabel("importance weight w (mean one)")
    ax.set_ylabel("share of logged rows with weight > w")
    ax.set_title("Tail of the importance weights" + note)
    ax.legend(fontsize=7, loc="lower left")
    return ax


def monitor(report: MonitorReport, policy: str | None = None, ax: Axes | None = None) -> Axes:
    """One policy's calibrated estimate per window with its interval band, beside the naive judge
    mean, with the drift and score-shift windows marked.

    The band is the ``1 − alpha`` interval of each window (OUA); hollow markers are windows
    calibrated on the carried reference instead of their own labels (CAUTION). A red dashed line
    marks where a confirmed drift starts (the calibration restarts there), a shaded red span
    the windows it covers until confirmed; orange triangles are windows whose judge scores shifted
    against the reference (a shift in scores, not proof of drift).

    Parameters
    ----------
    report : MonitorReport
        From :func:`cje.monitor`.
    policy : str, optional
        The policy to draw (default: the first one).
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
    >>> sim = cje.synthetic.make_monitor_eval(n_windows=10, rows_per_window=400,
    ...                                       labels_per_window=100, change_at=8, rng=0)
    >>> rep = cje.monitor(sim.data, reference=4, judge_scale=(0, 10), label_scale=(1, 5))
    >>> ax = cje.plots.monitor(rep, policy="prod")
    >>> [t.get_text() for t in ax.get_legend().get_texts()][:2]
    ['calibrated estimate (95% interval)', 'naive judge mean']
    >>> plt.close(ax.figure)
    """
    from matplotlib.lines import Line2D

    pols = list(dict.fromkeys(w.policy for w in report.windows))
    if policy is None:
        if not pols:
            raise CJEInputError("The monitor report has no windows to draw.")
        policy = pols[0]
    rows = [w for w in report.windows if w.policy == policy]
    if not rows:
        raise CJEInputError(f"The monitor report has no policy {policy!r}; it has {pols}.")
    ax = _new_axes(ax, (max(7.0, 0.28 * len(rows) + 3.0), 4.2))
    x = np.array([w.window for w in rows], dtype=float)
    est = np.array([w.estimate for w in rows])
    lo = np.array([w.ci_low for w in rows])
    hi = np.array([w.ci_high for w in rows])
    color = STATUS_COLORS["OK"]
    ax.fill_between(x, lo, hi, color=color, alpha=0.18, lw=0, step=None)
    ax.plot(x, est, color=color, lw=1.5, zorder=3)
    own = np.array([w.calibration == "window" for w in rows])
    ax.plot(x[own], est[own], "o", color=color, ms=5, zorder=4)
    ax.plot(x[~own], est[~own], "o", color=color, mfc="white", mew=1.5, ms=5, zorder=4)
    naive = np.array([w.naive_estimate for w in rows])
    ax.plot(x, naive, "D--", color=NAIVE_COLOR, ms=4, lw=1.0, mfc="white", zorder=2)
    for e in report.events:
        ax.axvline(e.start_window - 0.5, color=FLAG_COLOR, ls="--", lw=1.2, zorder=1)
        ax.axvspan(e.start_window - 0.5, e.confirmed_window + 0.5, color=FLAG_COLOR, alpha=0.08,
                   lw=0, zorder=0)
    shift = np.array([w.status == "SHIFT" for w in rows])
    if shift.any():
        top = np.nanmax(np.concatenate([hi, naive]))
        ax.plot(x[shift], np.full(shift.sum(), top), "v", color=STATUS_COLORS["CAUTION"], ms=6)
    step = max(1, len(rows) // 12)
    ax.set_xticks(x[::step], [w.window_label for w in rows][::step], rotation=35, ha="right",
                  fontsize=8)
    level = _level(float(report.settings.get("alpha", 0.05)))
    ax.set_ylabel("value (label scale)")
    ax.set_title(f"{policy}: calibrated estimate per window", fontsize=10)
    ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=color, marker="o", label=f"calibrated estimate ({level}% interval)"),
        Line2D([], [], color=NAIVE_COLOR, marker="D", mfc="white", ls="--", label="naive judge mean"),
        Line2D([], [], color=color, marker="o", mfc="white", ls="",
               label="calibrated on the reference (no own labels)"),
    ]
    if report.events:
        handles.append(Line2D([], [], color=FLAG_COLOR, ls="--",
                              label="drift starts (recalibrated)"))
    if shift.any():
        handles.append(Line2D([], [], color=STATUS_COLORS["CAUTION"], marker="v", ls="",
                              label="score shift (not proof of drift)"))
    ax.legend(handles=handles, fontsize=7.5, loc="best")
    return ax


def plan(plan: Plan, ax: Axes | None = None, contrasts: bool = False) -> Axes:
    """The predicted half-width of each policy against the labels bought (at the pilot's
    prompts), with the target half-width, the pilot and each policy's labels needed.

    The curves are the plan's variance model (``t_{df}·sqrt(a/n + (b + c)/m)``, log–log axes);
    a dot marks the pilot, a cross the labels needed with its plan interval as a bar on the
    target line. A curve that flattens above the target cannot reach it by labels alone.

    Parameters
    ----------
    plan : Plan
        From :func:`cje.plan`.
    ax : matplotlib Axes, optional
        Where to draw; a new figure when ``None``.
    contrasts : bool
        Draw the paired contrasts instead of the policies.

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
    >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
    >>> ax = cje.plots.plan(p)
    >>> len(ax.get_lines()) >= 5, ax.get_xscale()
    (True, 'log')
    >>> plt.close(ax.figure)
    """
    from matplotlib.lines import Line2D

    kind = "contrast" if contrasts else "policy"
    targets = [t for t in plan.targets if t.kind == kind]
    if not targets:
        raise CJEInputError(f"The plan has no {kind} targets to draw"
                            + (" (plan with contrasts=True)." if contrasts else "."))
    ax = _new_axes(ax, (7.5, 4.6))
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    hi_m = max(max(t.n_rows, 1) for t in targets)
    lo_m = max(1.0, min(t.n_labels for t in targets) / 4)
    grid = np.geomspace(lo_m, hi_m, 200)
    for i, t in enumerate(targets):
        c = colors[i % len(colors)]
        ms = grid[grid <= t.n_rows]
        hw = [plan.predict(t.target, t.n_prompts, m) for m in ms]
        ax.plot(ms, hw, color=c, lw=1.5, label=t.target)
        ax.plot([t.n_labels], [t.half_width], "o", color=c, ms=5)
        if t.labels_needed is not None:
            ax.plot([t.labels_needed], [plan.half_width], "x", color=c, ms=8, mew=2)
            lo = t.labels_needed_low if t.labels_needed_low is not None else t.labels_needed
            hi = t.labels_needed_high if t.labels_needed_high is not None else hi_m
            y = plan.half_width * (1 + 0.025 * (i - (len(targets) - 1) / 2))  # apart, not on top
            ax.plot([lo, hi], [y, y], color=c, lw=3, alpha=0.4, solid_capstyle="butt")
    ax.axhline(plan.half_width, color="0.3", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("oracle labels (at the pilot's prompts)")
    ax.set_ylabel(f"half-width of the {_level(plan.alpha)}% interval (label units)")
    ax.set_title(f"Label plan: labels for ±{plan.half_width:g}", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    handles, _ = ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="0.3", ls="--", label=f"target ±{plan.half_width:g}"),
                Line2D([], [], color="0.3", marker="o", ls="", label="pilot"),
                Line2D([], [], color="0.3", marker="x", mew=2, ls="",
                       label=f"labels needed ({round(100 * plan.level)}% plan interval)")]
    ax.legend(handles=handles, fontsize=7.5, loc="best")
    return ax


def save_report_figures(report: Report, directory: str | Path, *, dpi: int = 110,
                        notes: list[str] | None = None) -> list[Path]:
    """Write the report's figures as PNG files (``forest.png``, ``reliability.png``,
    ``contrasts.png``, ``overlap.png``, ``weight_tail.png``).

    Figures the report cannot support are skipped: the reliability diagram of an uncalibrated
    (or off-policy) report, the contrast plot of a report with fewer than two calibrated
    policies, the two weight plots of an on-policy report.

    Parameters
    ----------
    report : Report
    directory : str or Path
        Created if missing; existing files of the same names are overwritten.
    dpi : int, default 110
    notes : list of str, optional
        Given: a figure whose function fails or draws nothing (returns ``None``) is left out
        and a line saying which and why is appended here, so the tables of a report are never
        lost to a figure. ``None`` (default): such a failure raises.

    Returns
    -------
    list of Path
        The files written, in the order above.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import tempfile, cje
    >>> from cje.plots import save_report_figures
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     [p.name for p in save_report_figures(rep, d)]
    ['forest.png', 'reliability.png', 'contrasts.png']
    """
    import matplotlib.pyplot as plt

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    jobs: list[tuple[str, Callable[[Report], Axes]]] = [("forest", forest_plot)]
    if report.calibration is not None and report.calibration.curve:
        jobs.append(("reliability", reliability_diagram))
    if report.pairs:
        jobs.append(("contrasts", contrast_plot))
    if any("ess_raw" in e.diagnostics for e in report.estimates):
        jobs.append(("overlap", overlap_plot))
        jobs.append(("weight_tail", weight_tail_plot))
    written = []
    for name, draw in jobs:
        if notes is None:
            ax = draw(report)
        else:
            try:
                ax = draw(report)
            except Exception as err:  # the note says why; the tables are still written
                notes.append(f"Figure '{name}' not drawn: {type(err).__name__}: {err}")
                continue
        if ax is None:
            msg = f"Figure '{name}' skipped: its plotting function drew nothing for this report."
            if notes is None:
                raise RuntimeError(msg)
            notes.append(msg)
            continue
        path = out / f"{name}.png"
        try:
            ax.figure.savefig(path, dpi=dpi)  # type: ignore[union-attr]
        finally:
            plt.close(ax.figure)  # type: ignore[arg-type]
        written.append(path)
    return written
