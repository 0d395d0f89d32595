"""Gates that refuse numbers nobody should read (issue #19, "no silent wrong numbers").

The gates, all pure functions, in the order the pipeline applies them:

* :func:`level_gate` — every estimate: a failed or inconclusive transport audit, no oracle labels
  of its own, judge scores outside the labelled range (docs: Methods › Diagnostics and gates), a constant
  calibration.
* :func:`few_labels_near_bound` — a direct level near a scale bound whose own-label residual part
  rests on few labels (CAUTION).
* :func:`label_range_gate` — every estimate, when the label scale is the labels' own range (no
  common scale holds them and none was declared): its ends are not bounds (CAUTION).
* :func:`label_balance_gate` — a direct level whose own labels (no ``label_probability``) score
  unlike the policy's rows (:func:`label_balance`), or sit on prompts that score unlike its
  prompts over every policy's rows (:func:`prompt_balance`): not a uniform random sample
  (CAUTION; applied by the data shape).
* :func:`row_weight_gate` — a direct level whose prompts hold unequal numbers of rows, when the
  mean over its rows differs from the mean of its per-prompt means (CAUTION).
* :func:`overlap_gate` — off-policy only, by the estimator's overlap family: ESS, TTC and Hill
  index (CAUTION), then :func:`support_gate`.
* :func:`support_gate` — off-policy only: does the target have support on the logged responses
  at all? It reads the *level* of the unnormalised importance ratios (the mean raw weight,
  :func:`cje.diagnostics.overlap.mean_raw_weight`), which Hájek normalisation hides, the share of
  near-zero ratios, and whether the raw weights rest on effectively one logged row (then SIMCal-W
  flattens them to ≈ 1 and the "target" estimate is the logging policy's value). For the
  weighting estimators it also cautions a mean raw weight more than
  :data:`MEAN_WEIGHT_DEFICIT_Z` standard errors below 1 (a sample that missed the tail), and one
  more than :data:`MEAN_WEIGHT_EXCESS_Z` standard errors above 1 (``logprob_base`` is not the
  density the logged responses were drawn from, e.g. logs pooled from two model versions).
* :func:`sanity_gate` — every estimate of both pipelines, applied last, before the ranking and the
  contrasts: a non-finite estimate, standard error or interval, an estimate outside the label
  scale, an interval wider than the whole scale, or fewer than two prompts → ``REFUSED`` with the
  reason; an interval that merely crosses a scale bound, a standard error of exactly 0, or fewer
  than :data:`MIN_OK_PROMPTS` prompts → ``CAUTION``. :func:`comparable` says
  which estimates may enter a contrast.

Thresholds of the support gate, from the measurements in ``docs/offpolicy.md`` ("Support gate"):
with correct log-probabilities on the package's synthetic off-policy DGP the mean raw weight
never fell below 0.17 (population ESS ≥ 0.1%, n ≥ 100, 8,000 samples) and went below 0.1 only at
a population ESS of 10⁻⁴ or less, where the logs hold less than one effective row; above ``c`` it
has probability at most ``1/c`` (Markov) whatever the weights' tails.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cje.data import COMMON_SCALES
from cje.diagnostics.calibration import out_of_range_share
from cje.diagnostics.overlap import (
    DR_ESS_GATE,
    ESS_GATE,
    HILL_GATE,
    HILL_RESIDUAL,
    TTC_GATE,
    WEIGHTING_ESS_GATE,
)
from cje.inference import cluster_variance, t_interval

if TYPE_CHECKING:
    from cje.pipeline.probes import ProbeUse
    from cje.results import PolicyEstimate, TransportAudit

__all__ = [
    "OUT_OF_RANGE_GATE",
    "FAMILIES",
    "MEAN_WEIGHT_REFUSE",
    "MEAN_WEIGHT_CAUTION",
    "MEAN_WEIGHT_DATA_ERROR",
    "NEAR_ZERO_CAUTION",
    "MEAN_WEIGHT_DEFICIT_Z",
    "MEAN_WEIGHT_EXCESS_Z",
    "N_EFF_REFUSE",
    "MIN_PROBE_LABELS",
    "MIN_OK_PROMPTS",
    "worse_status",
    "level_gate",
    "covariate_range_gate",
    "label_reach_gate",
    "few_labels_near_bound",
    "label_range_gate",
    "overlap_gate",
    "BALANCE_Z",
    "fresh_balance",
    "label_balance",
    "label_balance_of_counts",
    "label_balance_gate",
    "BALANCE_Z_PAIR",
    "prompt_score_sums",
    "prompt_balance",
    "fresh_balance_gate",
    "fresh_covariate_gate",
    "PROMPT_GAP_WARNING",
    "PROMPT_GAP_ALPHA",
    "prompt_gap_shift",
    "prompt_gap_threshold",
    "prompt_gap_gate",
    "dropped_rows_gate",
    "row_weight_shift",
    "row_weight_gate",
    "support_gate",
    "sanity_gate",
    "comparable",
]

#: Share of a policy's judge scores outside the labelled range above which levels are refused.
OUT_OF_RANGE_GATE = 0.05
#: Probe labels (and probe prompts: repeated draws count once) below which a probe-corrected
#: level is CAUTION (its interval rests on the t approximation for a mean of that few
#: residuals; simulations/results/study_probes.md).
MIN_PROBE_LABELS = 30
#: Prompts below which a level is at most CAUTION (sanity gate): its interval rests on a variance
#: estimated from that few prompts, and OK intervals of off-policy targets on 3–8 logged rows
#: covered 0.78–0.91 (SNIPS, 1–5 labels), on 10–12 rows still 0.889–0.911 (± 0.02, below 0.93),
#: on 15 or more 0.94–0.98 (``simulations/results/independent_fewrows.md``). 15, not 10: the
#: selection of OK estimates (intervals that do not cross a bound) keeps working against the
#: few-row intervals up to about 12 rows.
MIN_OK_PROMPTS = 15
#: Overlap families an estimator may declare (``Estimator.overlap``): the estimate rests on the
#: logs alone, or an outcome model on the target's fresh draws carries it.
FAMILIES = ("weighting", "dr")
#: Mean raw weight outside ``(low, high)`` → REFUSED (weighting estimators; DR: see below).
MEAN_WEIGHT_REFUSE: tuple[float, float] = (0.1, 100.0)
#: Mean raw weight outside ``(low, high)`` → CAUTION.
MEAN_WEIGHT_CAUTION: tuple[float, float] = (0.5, 10.0)
#: Mean raw weight outside ``(low, high)`` → REFUSED for the DR estimators too: log-probabilities
#: this far off are a data error (per-token vs per-sequence, a wrong logging policy).
MEAN_WEIGHT_DATA_ERROR: tuple[float, float] = (1e-6, 100.0)
#: Share of logged rows with a raw ratio below 1e-3 at or above which the estimate is CAUTION.
NEAR_ZERO_CAUTION = 0.5
#: Weighting estimators: a mean raw weight more than this many of its standard errors below 1 →
#: CAUTION. A sample that missed part of the target's rare high-weight responses shows a deficit
#: of ``m`` (the one statistic whose expectation is known) while its raw ESS and Hill index look
#: *better*; its Hájek estimate leans toward the logging policy's value and its interval cannot
#: allow for the rows it never saw. Measured in ``simulations/results/independent_tails.md`` and
#: checked on other processes in ``simulations/results/independent_tails_gate_check.md``
#: (docs: Off-policy › Weight tails).
MEAN_WEIGHT_DEFICIT_Z = 1.5
#: Weighting estimators: a mean raw weight more than this many of its standard errors *above* 1
#: → CAUTION. With log-probabilities of the distribution the logged responses were drawn from,
#: ``E[exp(λ)] = 1`` (or less, where the logs miss part of the target), and right-skewed weights
#: make the sample mean fall short of it, not overshoot (a rare huge weight raises the standard
#: error with the mean): an excess this large says ``logprob_base`` is not that distribution —
#: logs pooled from two model versions scored with one version's log-probabilities, or scored
#: with another system prompt than they were sampled with — and the Hájek estimate then leans
#: the way the weights are wrong. ``simulations/results/independent_mixlog.md``: such OK
#: calibrated-IPS / SNIPS intervals covered 0.44 and 0.83 (z of 9 to 17). With correct
#: log-probabilities z stayed below 3.6 in every one of 3,600 targets of that study and 108,000
#: samples of nine weight laws (lognormal, Gaussian-shift with infinite variance, discrete). 5,
#: not 3.29: real log-probabilities that are a little off without moving the estimate much
#: (Arena's ``clone``, 1.28 ± 0.08, z = 3.5; run-to-run jitter) are left to the other gates.
MEAN_WEIGHT_EXCESS_Z = 5.0
#: Effective number of logged rows ``n · ESS_raw`` below which a weighting estimate is REFUSED.
N_EFF_REFUSE = 2.0
#: Stabilised-weight ESS at or above which SIMCal-W counts as having flattened the weights.
COLLAPSED_ESS = 0.9

_ORDER = ("OK", "CAUTION", "REFUSED")


def worse_status(status: str, new: str) -> str:
    """The more severe of two statuses (``OK`` < ``CAUTION`` < ``REFUSED``); a status outside
    that order (e.g. ``UNCALIBRATED``) is kept.

    Parameters
    ----------
    status, new : str
        The current status and the one a gate proposes.

    Returns
    -------
    str

    Examples
    --------
    >>> worse_status("CAUTION", "OK"), worse_status("CAUTION", "REFUSED")
    ('CAUTION', 'REFUSED')
    """
    if status not in _ORDER:
        return status
    return new if _ORDER.index(new) > _ORDER.index(status) else status


_CAUSES_LOW = (
    "Likely causes: log-probabilities on different footings (per-token for one policy, "
    "per-sequence for the other), log-probabilities of a different logging policy than the one "
    "that wrote the responses, or a target that writes responses the logging policy never does"
)
_CAUSES_HIGH = (
    "Likely causes: log-probabilities on different footings (per-token for one policy, "
    "per-sequence for the other), target and logging log-probabilities swapped, or "
    "log-probabilities of a different logging policy than the one that wrote the responses"
)


def support_gate(family: str, diag: Mapping[str, Any], n_rows: int) -> tuple[str, list[str]]:
    """Status and reasons of the no-support gate of one off-policy target.

    Parameters
    ----------
    family : {"weighting", "dr"}
        ``"weighting"`` for IPS, SNIPS and calibrated IPS (the estimate rests on the logs alone),
        ``"dr"`` for the doubly robust estimators (the outcome model on the target's fresh draws
        carries the level; the logs only correct it).
    diag : Mapping
        The target's overlap diagnostics: ``mean_raw_weight``, ``mean_raw_weight_se``,
        ``log_mean_raw_weight``, ``near_zero_share``, ``ess_raw`` and, for stabilised weights,
        ``ess_stable`` (missing keys skip their check).
    n_rows : int
        The target's usable logged rows.

    Returns
    -------
    tuple of (str, list of str)
        ``"OK"``, ``"CAUTION"`` or ``"REFUSED"``, and the reasons.

    Examples
    --------
    Every target log-probability 5,000 nats below the logging one: no support.

    >>> st, why = support_gate("weighting", {"mean_raw_weight": 0.0, "log_mean_raw_weight": -5000.0,
    ...                                       "mean_raw_weight_se": 0.0, "ess_raw": 1.0}, 500)
    >>> st, why[0][:40]
    ('REFUSED', 'no support: the mean raw importance rati')
    >>> support_gate("weighting", {"mean_raw_weight": 0.97, "log_mean_raw_weight": -0.03,
    ...                            "mean_raw_weight_se": 0.04, "ess_raw": 0.4}, 500)
    ('OK', [])

    The same mean with a standard error of 0.01 (3 SE below 1): the sample likely missed some of
    the target's high-weight responses, a weighted estimate is CAUTION (a DR one is not).

    >>> d = {"mean_raw_weight": 0.97, "log_mean_raw_weight": -0.03, "mean_raw_weight_se": 0.01}
    >>> support_gate("weighting", d, 500)[0], support_gate("dr", d, 500)[0]
    ('CAUTION', 'OK')

    A mean 1.22 with a standard error of 0.015 (15 SE above 1): the logging log-probabilities do
    not describe the logged responses (e.g. logs of two model versions, one version's
    log-probabilities for every row).

    >>> d = {"mean_raw_weight": 1.22, "log_mean_raw_weight": 0.2, "mean_raw_weight_se": 0.015}
    >>> st, why = support_gate("weighting", d, 3000)
    >>> st, why[0][:28], support_gate("dr", d, 3000)[0]
    ('CAUTION', 'suspect log-probabilities: t', 'OK')
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be 'weighting' or 'dr'; got {family!r}.")
    status = "OK"
    reasons: list[str] = []

    def worse(new: str, text: str) -> None:
        nonlocal status
        status = worse_status(status, new)
        reasons.append(text)

    nan = float("nan")
    m = float(diag.get("mean_raw_weight", nan))
    log_m = float(diag.get("log_mean_raw_weight", math.log(m) if m > 0 else nan))
    se = float(diag.get("mean_raw_weight_se", nan))
    nz = float(diag.get("near_zero_share", nan))
    if log_m == log_m:
        shown = f"{m:.3g}" if math.isfinite(m) and m > 0 else f"exp({log_m:.4g})"
        stat = (f"the mean raw importance ratio exp(log π_target − log π_logging) over the logged "
                f"rows is {shown} (SE {se:.2g}), where ≈ 1 is expected")
        nz_txt = (f"; {nz:.0%} of the logged rows have a ratio below 1e-3" if nz == nz else "")
        refuse_lo, refuse_hi = (MEAN_WEIGHT_REFUSE if family == "weighting"
                                else MEAN_WEIGHT_DATA_ERROR)
        low = log_m < math.log(MEAN_WEIGHT_CAUTION[0])
        high = log_m > math.log(MEAN_WEIGHT_CAUTION[1])
        if low or high:
            causes = _CAUSES_LOW if low else _CAUSES_HIGH
            if low:
                what = (f"no support: {stat}: the logged responses carry about "
                        f"{min(m, 1.0):.2%} of the target's probability{nz_txt}")
            else:
                bound = f"{math.exp(-log_m):.2g}" if log_m < 690 else f"exp(−{log_m:.4g})"
                what = (f"suspect log-probabilities: {stat}; with correct log-probabilities a "
                        f"mean this large has probability at most {bound} (Markov)")
            if log_m < math.log(refuse_lo) or log_m > math.log(refuse_hi):
                fix = ("the logs cannot estimate its value. " + causes + "; check the "
                       "log-probabilities, or estimate from fresh draws of the target "
                       "(estimator='direct').")
                worse("REFUSED", f"{what}; {fix}")
            elif family == "dr" and (log_m < math.log(MEAN_WEIGHT_REFUSE[0])
                                     or log_m > math.log(MEAN_WEIGHT_REFUSE[1])):
                worse("CAUTION", f"{what}; the logs barely reach the target, so the estimate rests "
                                 "on the outcome model fitted to its fresh draws (direct method). "
                                 + causes + ".")
            else:
                worse("CAUTION", f"{what}; its level may be off. " + causes + ".")
    # the weighting estimators: a mean raw weight too far below 1 (a missed tail) or above it
    gap = m - 1.0 if m == m else nan
    judged = family == "weighting" and status == "OK" and gap == gap and se == se
    in_se = abs(gap) / se if se > 0 else float("inf")
    if judged and -gap > max(MEAN_WEIGHT_DEFICIT_Z * se, 1e-9):
        worse("CAUTION", f"the weights may have missed the target's rarer responses: {stat}, "
                         f"{in_se:.1f} SE below. A sample "
                         "that drew few of the target's high-weight responses looks like this "
                         "(its ESS and Hill index look better, not worse), and its weighted "
                         "estimate then leans toward the logging policy's value by an amount its "
                         "interval does not allow for (or the log-probabilities are off). Fresh "
                         f"draws of the target and a DR estimator avoid it ({TAIL_DOCS}).")
    elif judged and gap > max(MEAN_WEIGHT_EXCESS_Z * se, 1e-9):
        worse("CAUTION", f"suspect log-probabilities: {stat}, "
                         f"{in_se:.1f} SE above. With log-probabilities of "
                         "the distribution the logged responses were drawn from it averages 1 "
                         "(less where the logs miss part of the target), and a sample of such "
                         "weights rarely overshoots that far (a rare large weight raises the SE "
                         "with the mean): the weights do not describe how the logged responses "
                         "were drawn, and the weighted estimate leans wherever they are wrong, by "
                         "an amount its interval does not allow for. Likely causes: logs "
                         "pooled from several logging policies (model versions) with one's "
                         "log-probabilities (use each row's mixture density log Σ share·π_v, or "
                         "its own version's log-probability), log-probabilities computed with "
                         "another system prompt or temperature than the responses were sampled "
                         "with, or base and target scored in different runs (noisy "
                         "log-probabilities). Fresh draws of the target and a DR estimator depend "
                         "far less on the weights.")
    if nz == nz and nz >= NEAR_ZERO_CAUTION and status == "OK":
        worse("CAUTION", f"{nz:.0%} of the logged rows have a raw importance ratio below 1e-3: the "
                         "target hardly ever writes what the logging policy writes.")
    ess = float(diag.get("ess_raw", nan))
    n_eff = ess * n_rows
    if n_eff == n_eff and n_eff < N_EFF_REFUSE:
        ess_st = float(diag.get("ess_stable", nan))
        collapsed = ess_st == ess_st and ess_st >= COLLAPSED_ESS
        what = (f"the raw weights rest on effectively {n_eff:.2g} logged row(s) (ESS {ess:.2%} of "
                f"{n_rows})")
        if collapsed:
            what += (f", and SIMCal-W flattened them to ≈ 1 (stabilised ESS {ess_st:.0%}): the "
                     "estimate is the logging policy's value, the target is indistinguishable "
                     "from it after stabilisation")
        if family == "weighting":
            worse("REFUSED", f"degenerate weights: {what}. One log-weight far above the rest "
                             "(hundreds of nats) points to inconsistent log-probabilities.")
        else:
            worse("CAUTION", f"degenerate weights: {what}; the estimate rests on the outcome model.")
    return status, reasons


def _sanity_checks(est: PolicyEstimate,
                   label_scale: tuple[float, float]) -> list[tuple[str, str, str]]:
    """``(status, reason, kind)`` of every sanity check the estimate fails."""
    lo, hi = (float(v) for v in label_scale)
    width = hi - lo
    tol = 1e-9 * width
    out: list[tuple[str, str, str]] = []
    nums = {"estimate": est.estimate, "SE": est.se, "interval low": est.ci_low,
            "interval high": est.ci_high}
    bad = [k for k, v in nums.items() if not math.isfinite(v)]
    if bad:
        cause = ("importance ratios that overflow (a log-weight far above the rest; the "
                 "self-normalised estimators avoid the overflow)" if est.method == "ips" else
                 "a variance that cannot be estimated (e.g. a single prompt)")
        out.append(("REFUSED", (
            f"not a finite number: {', '.join(bad)} = "
            f"{', '.join(repr(float(nums[k])) for k in bad)} (estimate {est.estimate:.4g}, SE "
            f"{est.se:.3g}, interval [{est.ci_low:.4g}, {est.ci_high:.4g}]): nothing can be "
            f"reported. Likely cause: {cause}."), "non-finite"))
    if est.n_prompts < 2:
        out.append(("REFUSED", (
            f"observed on {est.n_prompts} prompt(s): its standard error needs at least two prompts "
            "(responses to one prompt are not independent). Add responses on other prompts."),
            "prompts"))
    elif est.n_prompts < MIN_OK_PROMPTS:
        out.append(("CAUTION", (
            f"its level rests on {est.n_prompts} prompts (fewer than {MIN_OK_PROMPTS}): the "
            "interval's variance is estimated from that few values and is unreliable (off-policy "
            "targets whose log-probabilities were present on 3–12 logged rows had OK intervals "
            "covering 0.78–0.91). Add rows for this policy (log-probabilities or responses on more "
            "prompts)."), "few-prompts"))
    inside = math.isfinite(est.estimate) and lo - tol <= est.estimate <= hi + tol
    if math.isfinite(est.estimate) and not inside:
        out.append(("REFUSED", (
            f"the estimate {est.estimate:.4g} lies outside the label scale [{lo:g}, {hi:g}]: it "
            "cannot be a value of the label (off-policy: the importance ratios do not average "
            "one; see the overlap diagnostics)."), "scale"))
    # an interval reported cut to the scale is judged as it was before the cut
    clipped = bool(est.diagnostics.get("interval_clipped", False))
    c_lo = float(est.diagnostics.get("ci_low_unclipped", est.ci_low))
    c_hi = float(est.diagnostics.get("ci_high_unclipped", est.ci_high))
    span = c_hi - c_lo
    if math.isfinite(span) and span > width + tol:
        out.append(("REFUSED", (
            f"the interval [{c_lo:.4g}, {c_hi:.4g}]{' (before cutting it to the scale)' if clipped else ''} "
            f"is wider ({span:.3g}) than the whole label scale [{lo:g}, {hi:g}]: the data say nothing "
            "about its level."), "width"))
    elif inside and (c_lo < lo - tol or c_hi > hi + tol):
        if clipped:
            text = (f"the interval crosses the label scale's bound ({lo:g}, {hi:g}) and is reported "
                    f"cut to it: t interval [{c_lo:.4g}, {c_hi:.4g}], reported [{est.ci_low:.4g}, "
                    f"{est.ci_high:.4g}]; the cut loses no coverage (the value lies on the scale), but "
                    "this close to the edge the interval is approximate (in simulations, intervals "
                    "that needed the cut covered 0.89–0.94 instead of 0.95).")
        else:
            text = (f"the interval [{est.ci_low:.4g}, {est.ci_high:.4g}] crosses the label scale's "
                    f"bound ({lo:g}, {hi:g}): the t interval is approximate this close to the edge.")
        out.append(("CAUTION", text, "crosses"))
    if est.se == 0.0 and math.isfinite(est.estimate):
        # every value the variance rests on is equal in these data (e.g. a policy's labels all
        # at the scale's bound and its scores all calibrated there): the variance was not
        # estimable, not zero, and the interval [x, x] claims an exactness no sample gives
        out.append(("CAUTION", (
            f"its standard error is 0 (interval [{est.ci_low:.4g}, {est.ci_high:.4g}]): every "
            "residual and calibrated score it rests on is equal in these data (e.g. all of its "
            "labels at a bound of the scale and the calibration mapping all of its scores there), "
            "so its variance could not be estimated and the interval has no width; label more of "
            "its responses."), "zero-se"))
    return out


def sanity_gate(est: PolicyEstimate, label_scale: tuple[float, float]) -> PolicyEstimate:
    """The last gate on one estimate: refuse what cannot be a value on the label scale.

    * estimate, SE or an interval end NaN or ±inf → ``REFUSED``;
    * fewer than two prompts (no prompt-level variance) → ``REFUSED``;
    * fewer than :data:`MIN_OK_PROMPTS` prompts → at least ``CAUTION`` (a variance from that few
      prompts; ``simulations/results/independent_fewrows.md``);
    * estimate outside the label scale → ``REFUSED``;
    * interval wider than the whole label scale → ``REFUSED`` (uninformative);
    * interval crossing a scale bound with the estimate inside → at least ``CAUTION`` (normal for
      a rate near 0 or 1 with a t interval). The pipelines report such an interval cut to the
      scale (:func:`cje.inference.clip_interval`; ``diagnostics["interval_clipped"]``, the uncut
      ends in ``ci_low_unclipped`` / ``ci_high_unclipped``); both checks judge the uncut
      interval, so cutting never turns a too-wide interval into an acceptable one;
    * a standard error of exactly 0 (a zero-width interval: every residual and calibrated score
      equal, e.g. binary labels all 1 on responses all calibrated to 1) → at least ``CAUTION``:
      the variance was not estimable, and such intervals miss whenever the value is not exactly
      the bound (``simulations/results/independent_small.md``).

    Estimates not on the label scale (``units != "label"``, e.g. UNCALIBRATED judge means) are
    returned unchanged. Only ``status`` and ``reasons`` change; the numbers are kept.

    Parameters
    ----------
    est : PolicyEstimate
    label_scale : (low, high)

    Returns
    -------
    PolicyEstimate

    Examples
    --------
    >>> from cje.results import PolicyEstimate
    >>> e = PolicyEstimate("p", 2.0, float("nan"), float("nan"), float("nan"), 0.05, 1.0, 3, 1, 1,
    ...                    float("nan"), 0.0, 0.0, 0.5, 0.4, 0.6, "direct", "OK")
    >>> g = sanity_gate(e, (0.0, 1.0))
    >>> g.status, len(g.reasons)
    ('REFUSED', 3)
    >>> ok = dataclasses.replace(e, estimate=0.02, se=0.01, ci_low=-0.01, ci_high=0.05,
    ...                          n_prompts=40)
    >>> sanity_gate(ok, (0.0, 1.0)).status
    'CAUTION'
    >>> cut = dataclasses.replace(ok, ci_low=0.0, ci_high=1.0, diagnostics={
    ...     "interval_clipped": True, "ci_low_unclipped": -0.4, "ci_high_unclipped": 1.3})
    >>> sanity_gate(cut, (0.0, 1.0)).status   # judged before the cut: wider than the scale
    'REFUSED'
    """
    if est.units != "label" or est.status == "UNCALIBRATED":
        return est
    checks = _sanity_checks(est, label_scale)
    if not checks:
        return est
    status = est.status
    for new, _, _ in checks:
        status = worse_status(status, new)
    return dataclasses.replace(est, status=status,
                               reasons=tuple(est.reasons) + tuple(r for _, r, _ in checks))


def comparable(est: PolicyEstimate, label_scale: tuple[float, float]) -> bool:
    """Whether the estimate can enter a contrast: finite numbers, an estimate on the label scale
    and at least two prompts. The pipelines build contrasts only between such policies (a
    contrast with an infinite or out-of-scale estimate would be a number nobody should read); an
    interval wider than the scale refuses the *level* but leaves the paired difference usable.

    Parameters
    ----------
    est : PolicyEstimate
    label_scale : (low, high)

    Returns
    -------
    bool

    Examples
    --------
    >>> from cje.results import PolicyEstimate
    >>> e = PolicyEstimate("p", 0.5, 0.4, -0.3, 1.3, 0.05, 30.0, 100, 100, 10, 0.16, 0.0, 0.0,
    ...                    0.5, 0.4, 0.6, "direct", "OK")
    >>> comparable(e, (0, 1)), comparable(dataclasses.replace(e, estimate=14.8), (0, 1))
    (True, False)
    """
    if est.units != "label" or est.status == "UNCALIBRATED":
        return True
    return not any(kind in ("non-finite", "prompts", "scale")
                   for _, _, kind in _sanity_checks(est, label_scale))


def level_gate(
    name: str,
    scores: np.ndarray,
    labelled_scores: np.ndarray,
    n_labels: int,
    audit: TransportAudit | None,
    is_constant: bool,
    *,
    probe: ProbeUse | None = None,
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """Status and reasons of one policy's level estimate (docs: Methods › Diagnostics and gates).

    Without a probe correction a transport audit that FAILs refuses the level and one that is
    INCONCLUSIVE cautions it; one that PASSes leaves a policy without labels of its own CAUTION
    (the level still carries a transport error of up to the margin, which its interval omits).
    When the policy's probe slice corrects its level (``probe``), the level no longer rests on the
    calibration transporting: the audit is still reported (and
    named in the reason) but does not refuse; the level is REFUSED when the probe's labels lie
    on one prompt (no variance estimate), CAUTION when the probe has fewer than
    :data:`MIN_PROBE_LABELS` labels or prompts, and judge scores outside the labelled range caution
    it instead of refusing it (the probe's residuals correct the extrapolated calibration in
    expectation).

    Parameters
    ----------
    name : str
        The policy.
    scores : numpy.ndarray
        The judge scores of its responses (user's scale).
    labelled_scores : numpy.ndarray
        The judge scores of the calibrator's labelled rows (user's scale).
    n_labels : int
        Oracle labels among its own responses (probe labels not counted).
    audit : TransportAudit or None
        Its transport audit, if it has a probe slice.
    is_constant : bool
        Whether the calibration collapsed to a constant.
    probe : ProbeUse, optional
        How its probe slice corrected its level (None: it did not).

    Returns
    -------
    (str, tuple of str, dict)
        Status, reasons, and the diagnostics the gate read.

    Examples
    --------
    >>> import numpy as np
    >>> st, why, diag = level_gate("p", np.array([1.0, 2.0, 9.0]), np.array([1.0, 5.0]), 3,
    ...                            None, False)
    >>> st, round(diag["out_of_range_share"], 3)
    ('REFUSED', 0.333)
    >>> from cje.pipeline.probes import ProbeUse
    >>> from cje.results import TransportAudit
    >>> fail = TransportAudit(policy="p", delta=-0.25, se=0.03, ci_low=-0.31, ci_high=-0.19, df=49,
    ...                       n=50, n_prompts=50, margin=0.05, verdict="FAIL")
    >>> s = np.array([2.0, 3.0])
    >>> level_gate("p", s, s, 0, fail, False)[0]
    'REFUSED'
    >>> st, why, _ = level_gate("p", s, s, 0, fail, False,
    ...                         probe=ProbeUse(50, 50, 0, 1.0, -0.25, 0.001, 400))
    >>> st, why[0][:78]
    ('OK', 'level corrected by its 50 probe labels (the judge-only calibration failed the ')
    """
    status = "OK"
    reasons: list[str] = []
    share = out_of_range_share(scores, labelled_scores)
    diag: dict[str, Any] = {"out_of_range_share": share}

    def worse(new: str) -> None:
        nonlocal status
        status = worse_status(status, new)

    if probe is not None:
        diag["probe_labels"] = probe.n_labels
        diag["probe_weight"] = probe.weight
        if audit is not None:
            diag["transport_verdict"] = audit.verdict
            diag["transport_delta"] = audit.delta
        pooled = f", pooled with its {probe.n_own} own labels" if probe.n_own else ""
        if audit is None or audit.verdict == "NOT GRADED":
            graded = ""
        elif audit.verdict == "PASS":
            graded = " (the judge-only calibration passed the transport audit)"
        else:
            verb = "failed" if audit.verdict == "FAIL" else "did not pass"
            graded = (f" (the judge-only calibration {verb} the transport audit, "
                      f"δ = {audit.delta:+.3f} [{audit.ci_low:+.3f}, {audit.ci_high:+.3f}])")
        if probe.n_prompts < 2:  # (the pipeline gives such a level no standard error)
            worse("REFUSED")
            reasons.append(
                f"its probe slice's {probe.n_labels} labels lie on a single prompt: the variance "
                "of the probe correction cannot be estimated (responses to one prompt are not "
                "independent), so its level has no standard error. Label responses to other "
                "prompts.")
        elif probe.n_labels < MIN_PROBE_LABELS:
            worse("CAUTION")
            reasons.append(
                f"level corrected by only {probe.n_labels} probe labels{pooled}, fewer than "
                f"{MIN_PROBE_LABELS}{graded}: the interval of a mean of that few residuals is "
                "approximate; label more of its responses."
            )
        elif probe.n_prompts < MIN_PROBE_LABELS:  # repeated draws of a prompt are not independent
            worse("CAUTION")
            reasons.append(
                f"level corrected by {probe.n_labels} probe labels on only {probe.n_prompts} "
                f"prompts{pooled}, fewer than {MIN_PROBE_LABELS}{graded}: responses to one prompt "
                "are not independent, so the interval of the mean residual is approximate; label "
                "responses to more prompts."
            )
        else:
            reasons.append(f"level corrected by its {probe.n_labels} probe labels{pooled}{graded}.")
    elif audit is not None:
        diag["transport_verdict"] = audit.verdict
        diag["transport_delta"] = audit.delta
        if audit.verdict == "FAIL":
            worse("REFUSED")
            reasons.append(
                f"transport audit FAIL: on its probe slice the labels differ from the calibrated "
                f"judge by δ = {audit.delta:+.3f} [{audit.ci_low:+.3f}, {audit.ci_high:+.3f}], "
                f"beyond the margin ±{audit.margin:g}; its level is not reliable. Label some of "
                "its own responses so the estimate can be corrected."
            )
        elif audit.verdict == "INCONCLUSIVE":
            worse("CAUTION")
            reasons.append(
                f"transport audit INCONCLUSIVE (δ = {audit.delta:+.3f} [{audit.ci_low:+.3f}, "
                f"{audit.ci_high:+.3f}] vs margin ±{audit.margin:g}): a larger probe slice would "
                "settle it."
            )
    if n_labels == 0 and probe is None and (audit is None or audit.verdict in ("NOT GRADED",)):
        worse("CAUTION")
        reasons.append(
            "no oracle labels of its own: the calibration learned on other policies is assumed to "
            "transport; a probe slice of its labelled responses (probes=/--probe) corrects its "
            "level."
        )
    elif n_labels == 0 and probe is None and audit is not None and audit.verdict == "PASS":
        # an audit-only PASS (probe_correction=False) bounds the transport error by the margin
        # but leaves it in the level, and the interval has no allowance for it: with a precise
        # calibration such OK intervals covered 0.33 (simulations/results/independent_cov.md)
        worse("CAUTION")
        reasons.append(
            f"no oracle labels of its own, and its probe slice only audits the calibration "
            f"(probe_correction=False): the audit passed (δ = {audit.delta:+.3f} "
            f"[{audit.ci_low:+.3f}, {audit.ci_high:+.3f}] inside ±{audit.margin:g}), which bounds "
            "the transport error by the margin but does not remove it, and the interval does not "
            "include it. probe_correction=True corrects the level with the probe's labels."
        )
    if share >= OUT_OF_RANGE_GATE:
        if probe is None:
            worse("REFUSED")
            reasons.append(
                f"{100 * share:.0f}% of its judge scores lie outside the labelled range "
                f"[{labelled_scores.min():g}, {labelled_scores.max():g}], where the calibration is "
                "extrapolated: its level is not reliable (it is left out of the ranking). Label "
                "responses with such scores."
            )
        else:
            worse("CAUTION")
            reasons.append(
                f"{100 * share:.0f}% of its judge scores lie outside the labelled range "
                f"[{labelled_scores.min():g}, {labelled_scores.max():g}], where the calibration is "
                "extrapolated; its probe labels correct the level, but only as precisely as that "
                "many labels can."
            )
    if is_constant:
        worse("CAUTION")
        reasons.append("the calibration is constant: the judge does not rank the labels.")
    return status, tuple(reasons), diag


def overlap_gate(family: str | None, diag: Mapping[str, Any],
                 n_rows: int = 0) -> tuple[str, list[str]]:
    """CAUTION when the logged data barely covers the target (docs: Methods › Diagnostics and gates), then
    the no-support gate (:func:`support_gate`): REFUSED when the target has no support on the logged
    responses.

    The reason for a low raw ESS names what the estimate then rests on, which depends on the
    residual weights (``diag["residual_weights"]``).

    Parameters
    ----------
    family : {"weighting", "dr"} or None
        The estimator's overlap family (``Estimator.overlap``); ``None`` checks nothing.
    diag : Mapping
        The target's overlap diagnostics (:func:`cje.diagnostics.overlap.weight_summary`).
    n_rows : int
        The target's usable logged rows.

    Returns
    -------
    (str, list of str)

    Examples
    --------
    >>> overlap_gate("dr", {"ess_raw": 0.05, "ttc": 0.9})[0]
    'CAUTION'
    >>> overlap_gate(None, {"ess_raw": 0.05})
    ('OK', [])
    """
    if family is None:
        return "OK", []
    if family not in FAMILIES:
        raise ValueError(f"family must be 'weighting', 'dr' or None; got {family!r}.")
    status, reasons = _ess_gate(family, diag)
    sup, why = support_gate(family, diag, n_rows)
    status = max(status, sup, key=_ORDER.index)
    reasons = why + reasons if sup == "REFUSED" else reasons + why
    return status, reasons


#: An inferred label scale ``(0, 5)``, ``(0, 7)``, ``(0, 10)`` or ``(0, 100)`` whose labels are not
#: ratings on it (see :func:`label_range_gate`) and whose largest label is at least this many times
#: their median reads as an amount (``simulations/results/independent_kpi.md``, round two).
AMOUNT_RATIO = 5.0

#: The labels are called heavy-tailed in a reason when the largest is at least this many times
#: their median, both measured from the scale's low end.
TAIL_RATIO = 10.0


def _spread_ratio(u: np.ndarray) -> float:
    """Largest over median of labels on the unit scale, both from the scale's low end (inf when
    the median sits at the low end and some label above it)."""
    top, med = float(np.max(u)), float(np.median(u))
    if med > 1e-12:
        return top / med
    return math.inf if top > 1e-12 else 1.0


def _tail_note(u: np.ndarray) -> str:
    """A sentence naming a heavy right tail of the labels (unit scale), or ``""``."""
    if u.size < 3 or len(np.unique(u)) < 3:  # two values (binary) are no tail
        return ""
    r = _spread_ratio(u)
    if r < TAIL_RATIO:
        return ""
    how = (f"the largest label is {r:.0f}× their median" if math.isfinite(r) else
           "half the labels or more sit at the scale's low end, the largest far above")
    return (f" The labels are heavy-tailed ({how}, measured from the scale's low end): intervals "
            "for a heavy-tailed outcome's mean under-cover at these sample sizes whatever their "
            "status (0.70–0.91 in simulation for lognormal and Pareto outcomes with 25–150 labels "
            "per policy); more labels, or a transformed outcome (e.g. its logarithm, or a capped "
            "amount), with a declared scale, are safer.")


def _on_grid(y: np.ndarray, k: int) -> bool:
    """Every value (label units) is a multiple of ``1/k``."""
    return bool(np.all(np.abs(k * y - np.round(k * y)) <= 1e-6 * max(1.0, k)))


def label_range_gate(label_scale: tuple[float, float], labels: np.ndarray, inferred: bool = False
                     ) -> tuple[str, str | None]:
    """CAUTION for every level when the label scale is the labels' own range, not a bound, or an
    inferred common scale holding labels that look like amounts, not ratings.

    Without a declared ``label_scale``, labels that no common scale holds (revenue, time saved,
    any unbounded amount) get the scale ``(smallest label, largest label)``
    (:func:`cje.data.infer_scale`). The gates that judge a level near a bound
    (:func:`few_labels_near_bound`, an interval crossing a bound) then read the largest label
    seen as the most a response can score. For a right-skewed outcome that selects exactly the
    wrong samples: a sample that drew a rare large label gets a wide scale, a level near its
    bottom and CAUTION; a sample that missed the tail gets a narrow scale, a level mid-scale and
    OK — with an estimate and a standard error that are both too small (OK intervals covered
    0.47–0.87 for lognormal and Pareto outcomes with 25–150 labels per policy,
    ``simulations/results/independent_kpi.md``). A range seen is not a bound, so such levels are
    CAUTION, saying so. Declared scales the labels do not fill are left to the other gates (a
    declared scale whose two ends are both labels reads as a range: the data cannot tell it from
    one).

    The same holds when such amounts happen to fit a common scale, which is then inferred:

    * ``(0, 100)`` — labels above 10, none above 100 — whose labels are not whole or half points
      (skewed amounts gave OK intervals covering 0.66–0.91);
    * ``(0, 100)`` holding whole numbers, not all 0 or 100, whose largest is at least
      :data:`AMOUNT_RATIO` (5) times their median: whole-number amounts (integer dollars; OK
      intervals covered 0.25–0.95, below 0.93 in most settings), told from 0–100 ratings by their
      skew;
    * ``(0, 5)``, ``(0, 7)`` or ``(0, 10)`` holding labels that are not points of a grid of sixths
      (whole, half or third points: ratings and means of two or three raters) and whose largest
      is at least :data:`AMOUNT_RATIO` times their median: amounts below 10 (revenue in
      thousands, time in hours; OK intervals covered 0.26–0.95, below 0.93 in most settings).

    These levels are CAUTION too, asking for the scale to be declared. Not affected: any declared
    scale; the inferred ``(0, 1)`` (binary labels, probabilities and mean ratings: skewed
    probabilities, a mean of 0.08, are as skewed as amounts by the ratio, the skewness or the top
    labels' share of the spread, and covered 0.95–0.98); the scales starting at 1; ratings on the
    grid; and continuous labels whose largest is less than 5 times their median. Measured false
    CAUTION on rating-like labels: 0 for means of three raters, integer and Beta ratings, 2% for
    a continuous 0–10 rating spread over the scale, all of a continuous 0–10 rating used mostly
    near 0 (it is as skewed as an amount). The ratio is read from the labelled rows, so a sample
    that missed the tail can pass, and amounts below 1 (an inferred ``(0, 1)``) are not caught
    (of 7,556 OK levels of skewed amounts below 10, covering 0.88, 322 stayed OK, covering 0.70:
    279 on ``(0, 1)``, 43 under the ratio): the declared scale is what settles it.

    Whenever a CAUTION here is given and the labels are heavy-tailed (the largest at least
    :data:`TAIL_RATIO` (10) times their median, from the scale's low end), the reason says so and
    that intervals for such outcomes under-cover whatever their status.

    Parameters
    ----------
    label_scale : (float, float)
        The analysis's label scale (label units).
    labels : numpy.ndarray
        The labels that train the calibrator, on the unit scale (``(y − low)/(high − low)``);
        NaN ignored.
    inferred : bool, default False
        The scale was inferred from the labels (no ``label_scale`` given).

    Returns
    -------
    (str, str or None)
        ``"CAUTION"`` and the reason, or ``"OK"`` and ``None``.

    Examples
    --------
    Labels from 0.53 to 138.5 (no common scale holds them): the scale is their range.

    >>> import numpy as np
    >>> label_range_gate((0.53, 138.5), np.array([0.0, 0.1, 0.04, 1.0]))[0]
    'CAUTION'

    A common scale, or a declared scale the labels do not fill, is a bound:

    >>> label_range_gate((0.0, 100.0), np.array([0.0, 0.1, 1.0]))[0]
    'OK'
    >>> label_range_gate((0.0, 1000.0), np.array([0.0, 0.1, 0.4]))[0]
    'OK'

    Amounts of 7.3, 12.05 and 36.5 on the inferred (0, 100): CAUTION; as ratings 7, 12 and 36, or
    on a declared (0, 100), OK.

    >>> label_range_gate((0.0, 100.0), np.array([0.073, 0.1205, 0.365]), inferred=True)[0]
    'CAUTION'
    >>> label_range_gate((0.0, 100.0), np.array([0.07, 0.12, 0.36]), inferred=True)[0]
    'OK'
    >>> label_range_gate((0.0, 100.0), np.array([0.073, 0.1205, 0.365]))[0]
    'OK'

    Amounts of 0.31, 0.52, 0.9 and 6.2 on the inferred (0, 10) (the largest 9× the median):
    CAUTION; mean ratings of 3.1, 5.2, 6.0 and 9.3 on it: OK.

    >>> label_range_gate((0.0, 10.0), np.array([0.031, 0.052, 0.09, 0.62]), inferred=True)[0]
    'CAUTION'
    >>> label_range_gate((0.0, 10.0), np.array([0.31, 0.52, 0.6, 0.93]), inferred=True)[0]
    'OK'
    """
    lo, hi = float(label_scale[0]), float(label_scale[1])
    y = np.asarray(labels, dtype=float)
    y = y[np.isfinite(y)]
    ask = "If the labels have bounds, declare them: label_scale=(low, high)."
    if (lo, hi) in COMMON_SCALES:
        if not inferred or lo != 0.0 or hi <= 1.0 or y.size == 0:
            return "OK", None
        v = hi * y  # label units (the scale starts at 0)
        ratio = _spread_ratio(y)
        tail = _tail_note(y)
        two_ends = bool(np.all((y <= 1e-12) | (y >= 1.0 - 1e-12)))
        if hi == 100.0 and not _on_grid(v, 2):
            return "CAUTION", (
                f"the label scale ({lo:g}, {hi:g}) was inferred: the labels fit it but are not "
                "ratings on it (not whole or half points). If they are amounts (revenue, time "
                "saved), the scale is not a bound and for a skewed outcome a mean of a few "
                "hundred labels or fewer can sit well below the truth with too narrow an interval "
                "(OK intervals covered 0.66–0.91 in simulation)." + tail + " " + ask)
        if hi == 100.0 and not two_ends and ratio >= AMOUNT_RATIO:
            return "CAUTION", (
                f"the label scale ({lo:g}, {hi:g}) was inferred: the labels are whole numbers but "
                f"skewed like an amount, not a 0–100 rating (the largest is "
                f"{'far above' if not math.isfinite(ratio) else f'{ratio:.0f}×'} their median). "
                "If they are amounts (integer dollars, counts), the scale is not a bound and a "
                "mean of a few hundred labels or fewer can sit well below the truth with too "
                "narrow an interval (OK intervals covered 0.25–0.95 in simulation)." + tail + " "
                + ask)
        if hi < 100.0 and not _on_grid(v, 6) and ratio >= AMOUNT_RATIO:
            return "CAUTION", (
                f"the label scale ({lo:g}, {hi:g}) was inferred: the labels fit it but look like "
                "an amount (revenue in thousands, time in hours), not a rating: they are not "
                "whole, half or third points and the largest is "
                f"{'far above' if not math.isfinite(ratio) else f'{ratio:.0f}×'} their median. "
                "An amount has no bound at the scale's top, and for a skewed outcome a mean of a "
                "few hundred labels or fewer can sit well below the truth with too narrow an "
                "interval (OK intervals covered 0.26–0.95 in simulation)." + tail + " " + ask)
        return "OK", None
    if y.size < 2 or y.min() > 1e-12 or y.max() < 1.0 - 1e-12:
        return "OK", None
    return "CAUTION", (
        f"the label scale ({lo:g}, {hi:g}) is the labels' own range (the smallest and largest "
        "label), not a bound: a response can score beyond the largest label seen. Levels near "
        "a bound cannot be judged against it, and for a skewed outcome (revenue, time, counts) "
        "a mean of a few hundred labels or fewer can sit well below the truth with too narrow "
        "an interval (OK intervals covered 0.47–0.87 in simulation)." + _tail_note(y) + " "
        + ask)


#: Where the reasons about weight tails point (docs/offpolicy.md, "Weight tails").
#: Pseudo-labels at each end of the scale that :func:`few_labels_near_bound` adds to a policy's
#: own labels (Agresti–Coull's two extra outcomes, one at each bound).
NEAR_BOUND_PSEUDO = 1


def few_labels_near_bound(psi: float, se: float, v_res: float, m: float, df: float,
                          alpha: float) -> tuple[str, str | None]:
    """CAUTION for a level near a scale bound whose own-label residual part rests on few labels.

    With few labels of its own, a policy's residual term can miss the rare responses the
    calibration mis-rates: its mean and its variance are then both near 0, the level is off and
    its interval narrow. Far from a bound nothing tells those samples apart; near one it does —
    the samples whose labels hit those responses get the wide intervals that cross the bound
    (CAUTION), so OK would select the misses (OK intervals covered 0.67 for a rate of 0.97 with
    10–15 own binary labels; ``simulations/results/independent_small.md``). Here the residual
    part's variance is floored as if :data:`NEAR_BOUND_PSEUDO` more label had fallen at each end
    of the scale (residuals ``−ψ`` and ``1 − ψ`` on the unit scale, as Agresti–Coull add two
    outcomes to a proportion): if the interval under that floor reaches past a bound, the level
    is CAUTION. The reported interval is unchanged.

    Parameters
    ----------
    psi, se : float
        The level and its standard error (unit scale).
    v_res : float
        The own-label residual part's variance (:func:`cje.pipeline.core.own_residual_variance`).
    m : float
        The policy's own labels (labelled prompts) in that part.
    df : float
        Degrees of freedom of the level's t interval.
    alpha : float

    Returns
    -------
    (str, str or None)
        ``"CAUTION"`` and the reason, or ``"OK"`` and ``None``.

    Examples
    --------
    Fifteen own labels, a level of 0.96 whose residuals were all 0 (SE 0.01): CAUTION. The same
    level on 400 own labels, or 15 labels in mid-scale, stay OK.

    >>> few_labels_near_bound(0.96, 0.01, 0.0, 15, 14, 0.05)[0]
    'CAUTION'
    >>> few_labels_near_bound(0.96, 0.01, 0.0, 400, 399, 0.05)[0]
    'OK'
    >>> few_labels_near_bound(0.5, 0.08, 0.2 / 15, 15, 14, 0.05)[0]
    'OK'
    """
    if not (m >= 1 and math.isfinite(psi) and math.isfinite(se) and math.isfinite(v_res)):
        return "OK", None
    k = NEAR_BOUND_PSEUDO
    floor = (m * m * v_res + k * (psi * psi + (1.0 - psi) ** 2)) / ((m + 2 * k) * m)
    if floor <= v_res:
        return "OK", None
    se_f = math.sqrt(se * se - v_res + floor)
    lo, hi = t_interval(psi, se_f, df, alpha)
    if lo >= 0.0 and hi <= 1.0:
        return "OK", None
    return "CAUTION", (
        f"near a bound on few labels of its own ({m:g}): had the labels missed a rare response "
        "the calibration mis-rates (as if one more label fell at each end of the scale), the "
        "interval would reach past the bound. Near a bound a level on few own labels can look "
        "precise exactly when its labels missed such responses (OK intervals covered 0.67 in "
        "simulation); label more of this policy's responses.")


#: Logged rows a target leaves out for a missing log-probability caution its value when they
#: could move it by more than this many standard errors (a bias of 0.5 SE leaves a 95% interval
#: covering 0.92) and their judge scores differ from the kept rows' (|z| > MISSING_SCORE_Z).
EXCLUDED_SHIFT_SE = 0.5
#: 3, not 2: rows missing at random (time-outs) pass |z| > 2 in 4.6% of targets and |z| > 3 in
#: 0.27%; a difference that biases the value by half an SE or more when 3% or fewer of the rows are
#: missing has |z| of about 3 or more (bias / SE ≈ |z| √q for a share q).
MISSING_SCORE_Z = 3.0


def score_gap_z(n_miss: int, s1_miss: float, s2_miss: float, n_kept: int, s1_kept: float,
                s2_kept: float) -> float:
    """Welch's z of the mean judge score of the rows left out against the rows kept, from sums.

    Parameters
    ----------
    n_miss, s1_miss, s2_miss : int, float, float
        Count, sum and sum of squares of the left-out rows' judge scores.
    n_kept, s1_kept, s2_kept : int, float, float
        The same for the kept rows.

    Returns
    -------
    float
        NaN with fewer than 2 rows on a side; ``inf`` when the means differ with no spread.

    Examples
    --------
    >>> round(score_gap_z(2, 2.0, 2.0, 3, 0.0, 2.0), 3)  # (1, 1) against (-1, 0, 1)
    1.732
    """
    if n_miss < 2 or n_kept < 2:
        return float("nan")
    m1, m0 = s1_miss / n_miss, s1_kept / n_kept
    v1 = max(s2_miss - n_miss * m1 * m1, 0.0) / (n_miss - 1)
    v0 = max(s2_kept - n_kept * m0 * m0, 0.0) / (n_kept - 1)
    se = math.sqrt(v1 / n_miss + v0 / n_kept)
    if se == 0.0:
        return 0.0 if m1 == m0 else math.copysign(math.inf, m1 - m0)
    return (m1 - m0) / se


#: The exclusions :func:`excluded_rows_gate` checks: (``excluded_*`` diagnostic, its Welch z
#: diagnostic, what the left-out rows lack, the fix).
_EXCLUSIONS = (
    ("excluded_missing_log-probability", "missing_score_z", "no log-probability under it",
     "Fill in the missing log-probabilities"),
    ("excluded_no_fresh_draws_for_the_prompt", "no_fresh_score_z",
     "no fresh draws of it on their prompt", "Add its fresh draws on those prompts"),
)


#: |z| of a mean judge score against the one it should equal beyond which the level is CAUTION:
#: a target's fresh draws' against its raw-weighted logged rows' (DR levels, and weighting levels
#: given fresh draws; :func:`fresh_balance`)
#: and a probe slice's against its policy's (:func:`cje.pipeline.probes.score_balance`). Two-sided
#: p ≈ 0.001 under a normal reference (≈ 0.003 under a t with 29 degrees of freedom, the fewest
#: prompts of a probe that is not already CAUTION); on well-formed off-policy data it fired on
#: 0–1.3% of levels (docs: Off-policy › Fresh draws that do not score like the weighted logs).
BALANCE_Z = 3.29
#: |z| beyond which either of the two label-balance checks of a direct level (its labelled rows'
#: own judge scores, and their prompts' mean judge scores over every policy's rows) cautions it:
#: :data:`BALANCE_Z`'s two-sided 0.001 split between the two (Bonferroni, 0.0005 each).
BALANCE_Z_PAIR = 3.48


def fresh_balance(n_g: np.ndarray, w_g: np.ndarray, ws_g: np.ndarray, gbar_g: np.ndarray
                  ) -> tuple[float, float, float]:
    """Do a target's fresh draws score like its importance-weighted logged rows?

    Both estimate the target's mean judge score ``E_target[S]``: the fresh draws' prompt means
    ``ḡ_g`` averaged over the kept logged rows, and the raw Hájek mean ``Σ w s / Σ w`` of the
    logged rows — when the fresh draws come from the policy the log-probabilities describe and
    were judged as the logged rows were. A DR estimate's outcome model is a function of the judge
    score, and so is the logged reward, so its weighted correction is about zero and cannot see
    fresh draws that misrepresent the target (a stale sampler, a judge run that drifted): the
    level moves with them one for one (``simulations/results/independent_dr.md``: OK intervals
    covered 0.70–0.84). The difference ``D`` has per-prompt influence totals
    ``T_g = n_g (ḡ_g − mean ḡ) − w_g (s̄_w,g − μ_w)`` and the prompt-clustered variance
    ``G/(G−1) Σ T_g² / N²``.

    Parameters
    ----------
    n_g, w_g, ws_g : numpy.ndarray
        Per prompt, over the target's kept logged rows: rows, ``Σ w`` and ``Σ w·s`` (raw
        weights, any scale; ``s`` on the 0–1 judge scale).
    gbar_g : numpy.ndarray
        Per prompt, the fresh draws' mean judge score (0–1 scale).

    Returns
    -------
    (float, float, float)
        The fresh draws' mean, the weighted logged mean (0–1 scale) and the z statistic of
        their difference ``D`` (NaN without a variance or with fewer than 2 prompts).

    Examples
    --------
    >>> import numpy as np
    >>> n = np.ones(4); w = np.array([0.5, 1.5, 0.5, 1.5]); s = np.array([0.2, 0.8, 0.3, 0.7])
    >>> fresh, logged, z = fresh_balance(n, w, w * s, np.array([0.6, 0.6, 0.6, 0.6]))
    >>> round(fresh, 3), round(logged, 3)   # (0.1 + 1.2 + 0.15 + 1.05)/4
    (0.6, 0.625)
    """
    import numpy as np

    on = n_g > 0
    if not on.all():
        n_g, w_g, ws_g, gbar_g = n_g[on], w_g[on], ws_g[on], gbar_g[on]
    big_n, g = float(n_g.sum()), int(n_g.size)
    if g < 2 or not float(w_g.sum()) > 0:
        return float("nan"), float("nan"), float("nan")
    k = big_n / float(w_g.sum())  # mean-one weights
    w_g, ws_g = w_g * k, ws_g * k
    # (einsum, not a BLAS dot: at 10⁶ prompts a threaded BLAS spins its threads for a
    # product this small, ~0.1 s of CPU per target with no gain in wall time)
    mu, gm = float(ws_g.sum()) / big_n, float(np.einsum("i,i->", n_g, gbar_g)) / big_n
    d = gm - mu
    t = n_g * (gbar_g - gm) - (ws_g - mu * w_g)  # per-prompt influence totals of D
    # one cluster per prompt: cluster_variance's G/(G−1) Σ T² / n², its sums as they are
    var = g / (g - 1) * float((t * t).sum()) / int(big_n) ** 2
    if not var > 0:
        return gm, mu, (0.0 if d == 0 else float("nan"))
    return gm, mu, d / math.sqrt(var)


def label_balance(s_lab: np.ndarray, cluster_lab: np.ndarray, mean_all: float, n_all: int,
                  var_all: float = float("nan")) -> tuple[float, float]:
    """Do a policy's labelled rows score like all its rows? (labels without ``label_probability``)

    Without a ``label_probability`` column the labels are taken for a uniform random sample of
    the policy's rows. Then the labelled rows' mean judge score estimates the policy's, and
    ``D = mean_lab − mean_all`` has, to first order, the variance of a subsample mean:
    ``(1 − m/n) · Var_clustered(mean_lab)`` (``m`` labelled of ``n`` rows; prompt-clustered,
    :func:`cje.inference.cluster_variance`). Labels chosen by topic, difficulty or score shift the
    policy's residual correction by an amount its interval does not include
    (``simulations/results/independent_designs.md``: labels on 40% of the hard prompts' rows and
    8% of the easy ones' gave OK intervals covering 0.873; ``independent_active.md``: a second
    labelling round analysed without its probabilities, 0.843); a difference in the scores shows
    such a choice whenever it goes with the score.

    Parameters
    ----------
    s_lab, cluster_lab : numpy.ndarray
        The labelled rows' judge scores (any one scale) and prompt codes.
    mean_all : float
        The mean judge score of all the policy's rows (same scale).
    n_all : int
        All its rows.
    var_all : float, optional
        The variance of all its rows' scores: when the labelled scores are all equal (a handful
        on a coarse scale, or labels on the lowest-scored rows only) their own variance is 0 and
        ``(1 − m/n) var_all / m`` is used instead.

    Returns
    -------
    (float, float)
        ``D`` and its z statistic (NaN without a variance: fewer than 2 labelled prompts, or
        every row labelled).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = rng.normal(5, 2, 2000)
    >>> d, z = label_balance(s[:200], np.arange(200), float(s.mean()), 2000)  # a random sample
    >>> abs(z) < 3.29
    True
    >>> d, z = label_balance(np.sort(s)[:200], np.arange(200), float(s.mean()), 2000)  # the lowest
    >>> round(d, 1), z < -3.29
    (-3.5, True)
    """
    m = int(s_lab.size)
    d = float(s_lab.mean()) - float(mean_all) if m else float("nan")
    if m < 2 or m >= n_all:
        return d, float("nan")
    var, g = cluster_variance(s_lab - s_lab.mean(), cluster_lab)
    if g < 2:
        return d, float("nan")
    if not var > 0:  # the labelled scores all alike: the rows' own spread, unclustered
        var = float(var_all) / m
    var *= 1.0 - m / n_all
    if not var > 0:
        return d, float("nan")
    return d, d / math.sqrt(var)


def label_balance_of_counts(s_lab: np.ndarray, cluster_lab: np.ndarray, distinct: np.ndarray,
                            counts: np.ndarray) -> tuple[float, float, float]:
    """:func:`label_balance` where all the rows are known by their rows per distinct judge score
    (the out-of-core engines).

    Parameters
    ----------
    s_lab, cluster_lab : numpy.ndarray
        The labelled rows' judge scores and prompt codes.
    distinct, counts : numpy.ndarray
        The distinct judge scores and the rows at each.

    Returns
    -------
    (float, float, float)
        ``D``, its z statistic and the rows' mean judge score.

    Examples
    --------
    >>> d, z, mean = label_balance_of_counts(np.array([1.0, 2.0]), np.array([0, 1]),
    ...                                      np.array([1.0, 2.0, 3.0]), np.array([2, 2, 2]))
    >>> round(d, 2), round(mean, 2)
    (-0.5, 2.0)
    """
    n = int(counts.sum())
    mean = float(counts @ distinct) / n
    var = float(counts @ (distinct - mean) ** 2) / max(n - 1, 1)
    return (*label_balance(s_lab, cluster_lab, mean, n, var), mean)


#: Columns of :func:`prompt_score_sums` (per policy; each a sum over prompts).
_PS_COLS = 9


def prompt_score_sums(score_sum: np.ndarray, rows_all: np.ndarray, rows: np.ndarray,
                      labelled: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """The sums over a set of prompts that :func:`prompt_balance` reads, for every policy.

    A prompt's mean judge score over every policy's rows on it, ``x_g``, measures how hard the
    prompt is with less noise than one row's score. The sums are additive over disjoint sets of
    prompts, so the out-of-core engines form them chunk by chunk from their per-prompt totals
    (the in-memory engine takes the same sums over a policy's rows and labelled prompts instead,
    :meth:`cje.pipeline.direct.DirectShape._prompt_balance`: no temporary over every prompt);
    ``x_g`` enters centred on the policy's mean score ``c_p`` (less cancellation in the sums of
    squares).

    Parameters
    ----------
    score_sum : numpy.ndarray, shape (G,)
        Per prompt, the sum of every policy's rows' judge scores (0–1 scale).
    rows_all : numpy.ndarray, shape (G,)
        Per prompt, every policy's rows on it.
    rows, labelled : numpy.ndarray, shape (G, P)
        Per prompt and policy, its rows and its labelled rows there.
    centre : numpy.ndarray, shape (P,)
        Each policy's mean judge score (0–1 scale).

    Returns
    -------
    numpy.ndarray, shape (P, 9)
        Per policy: ``Σ n x'``, ``Σ n x'²``, ``Σ l x'``, ``Σ l``, ``Σ l²``, ``Σ l² x'``,
        ``Σ l² x'²``, the prompts with a labelled row, and its prompts holding more than one row
        (``n``, ``l`` its rows and labelled rows on a prompt, ``x' = x_g − c_p``).

    Examples
    --------
    >>> s = np.array([1.0, 0.5]); n_all = np.array([2, 1])
    >>> out = prompt_score_sums(s, n_all, np.array([[1], [1]]), np.array([[1], [0]]), np.array([0.5]))
    >>> out[0, :4].tolist()   # x = (0.5, 0.5): centred 0
    [0.0, 0.0, 0.0, 1.0]
    """
    rows = np.asarray(rows)
    rows = rows[:, None] if rows.ndim == 1 else rows
    lab = np.asarray(labelled).reshape(rows.shape)
    n_all = np.asarray(rows_all)
    empty = n_all == 0
    x = np.divide(np.asarray(score_sum, dtype=np.float64), n_all, out=np.zeros(n_all.size),
                  where=~empty)
    shared = n_all > 1
    out = np.zeros((rows.shape[1], _PS_COLS))
    xc = np.empty_like(x)
    for p in range(rows.shape[1]):
        # a policy at a time, and dot products rather than products then sums: at 10^6s of
        # prompts each temporary is one column (a 10^7-row analysis peaked 250 MB higher)
        n_p = rows[:, p].astype(np.float64, copy=False)
        l_p = lab[:, p].astype(np.float64, copy=False)
        np.subtract(x, float(centre[p]), out=xc)
        xc[empty] = 0.0
        xc2 = xc * xc
        l2 = l_p * l_p
        out[p] = (n_p @ xc, n_p @ xc2, l_p @ xc, l_p.sum(), l2.sum(), l2 @ xc, l2 @ xc2,
                  np.count_nonzero(l_p), np.count_nonzero((n_p > 0) & shared))
        del xc2, l2
    return out


def prompt_balance(sums: np.ndarray, n_all: int, centre: float) -> tuple[float, float, float]:
    """Are a policy's labelled rows on prompts that score like its prompts? (no ``label_probability``)

    :func:`label_balance` on the prompt's mean judge score over every policy's rows (``x_g``)
    instead of the row's own score: labels chosen by prompt (topic, category, difficulty) move
    every policy's scores on the chosen prompts, so their mean shows the choice with less judge
    noise than the row's score alone (``simulations/results/independent_designs.md``, labels on
    40% of the hard prompts' rows and 8% of the easy ones': B's labels flagged in 68% of data sets
    by their own scores, in 96% with this check). Under uniform random labels of the policy's rows
    any function of the prompt is balanced, so the test keeps its level.

    Parameters
    ----------
    sums : numpy.ndarray, shape (9,)
        The policy's row of :func:`prompt_score_sums`, summed over all its prompts.
    n_all : int
        All its rows.
    centre : float
        The centre the sums were formed about (its mean judge score, 0–1 scale).

    Returns
    -------
    (float, float, float)
        ``D`` (labelled rows' mean ``x`` minus all rows'), its z statistic (NaN without a
        variance, with fewer than 2 labelled prompts, every row labelled, or no prompt of the
        policy holding more than one row: then ``x`` is the row's own score, which
        :func:`label_balance` checks) and the rows' mean ``x``, on the 0–1 scale.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = 300; x = rng.normal(0.5, 0.1, g)                  # two rows per prompt, both on x
    >>> lab = np.zeros((g, 1)); lab[x.argsort()[:60], 0] = 1  # labels on the 60 lowest prompts
    >>> out = prompt_score_sums(2 * x, np.full(g, 2), np.ones((g, 1)), lab, np.array([0.5]))
    >>> d, z, mean = prompt_balance(out[0], g, 0.5)
    >>> z < -3.48
    True
    """
    s = np.asarray(sums, dtype=np.float64)
    mean_c = float(s[0]) / n_all if n_all > 0 else float("nan")
    m = float(s[3])
    if m < 1:
        return float("nan"), float("nan"), centre + mean_c
    lab_c = float(s[2]) / m
    d = lab_c - mean_c
    if m < 2 or m >= n_all or s[8] < 1 or s[7] < 2:
        return d, float("nan"), centre + mean_c
    g = float(s[7])
    tt = float(s[6]) - 2.0 * lab_c * float(s[5]) + lab_c * lab_c * float(s[4])
    # (rounding of the expansion: a spread below 1e-12 of the sums' scale is none)
    if not tt > 1e-12 * (float(s[6]) + lab_c * lab_c * float(s[4])):
        tt = 0.0
    var = g / (g - 1.0) * tt / (m * m)
    if not var > 0:  # the labelled prompts all alike: the rows' own spread
        var = max(float(s[1]) - n_all * mean_c * mean_c, 0.0) / max(n_all - 1, 1) / m
    var *= 1.0 - m / n_all
    if not var > 0:
        return d, float("nan"), centre + mean_c
    return d, d / math.sqrt(var), centre + mean_c


def label_balance_gate(d: float, z: float, mean_all: float, logged: bool = False,
                       prompt: tuple[float, float, float] | None = None
                       ) -> tuple[dict[str, float], str | None]:
    """The diagnostics and the CAUTION reason of :func:`label_balance` for a level.

    Parameters
    ----------
    d, z : float
        :func:`label_balance`'s results (judge points).
    mean_all : float
        The policy's mean judge score (judge points).
    logged : bool, default False
        Off-policy: the labelled logged rows against all logged rows (every level whose residual
        term reads them).
    prompt : (float, float, float), optional
        :func:`prompt_balance`'s results in judge points (direct levels). With a z, each check
        cautions beyond :data:`BALANCE_Z_PAIR` (the two share :data:`BALANCE_Z`'s level);
        without one (None or NaN) the row check alone beyond :data:`BALANCE_Z`.

    Returns
    -------
    (dict, str or None)
        ``label_score_shift`` (labelled minus all rows, judge points) and ``label_score_z``,
        with a prompt check also ``label_prompt_shift`` and ``label_prompt_z``; the reason when
        a check exceeds its threshold (None otherwise).

    Examples
    --------
    >>> diag, why = label_balance_gate(-0.8, -5.2, 6.1)
    >>> diag["label_score_z"], why is not None
    (-5.2, True)
    >>> diag, why = label_balance_gate(-0.2, -1.5, 6.1, prompt=(-0.6, -4.1, 6.1))
    >>> diag["label_prompt_z"], "prompts" in why
    (-4.1, True)
    """
    diag = {"label_score_shift": d, "label_score_z": z}
    limit = BALANCE_Z
    by_prompt = False
    if prompt is not None and math.isfinite(prompt[1]):
        diag.update(label_prompt_shift=prompt[0], label_prompt_z=prompt[1])
        limit = BALANCE_Z_PAIR
        by_prompt = abs(prompt[1]) > limit and not abs(z) > limit
    if not (abs(z) > limit or by_prompt):  # (NaN: no variance to judge it by)
        return diag, None
    lab, rows = ("the labelled logged rows", "the logged rows") if logged else \
        ("its labelled rows", "its rows")
    fix = ("label a uniform random sample of the logged rows." if logged else
           "if a design chose them, pass its label_probability column; otherwise label a uniform "
           "random sample of the rows.")
    if by_prompt:
        assert prompt is not None
        dp, zp, mp = prompt
        what = (f"{lab} are on prompts that score {'higher' if zp > 0 else 'lower'} than its "
                f"prompts overall (mean judge score of every policy's rows on the prompt "
                f"{mp + dp:.3g} vs {mp:.3g}, z = {zp:+.1f})")
    else:
        what = (f"{lab} score {'higher' if z > 0 else 'lower'} than {rows} overall (mean judge "
                f"score {mean_all + d:.3g} vs {mean_all:.3g}, z = {z:+.1f})")
    return diag, (
        f"{what}: the labels do not look like a uniform random sample of {rows}, which the "
        "residual correction and its interval assume (labels chosen by topic, difficulty or "
        "score move the level beyond its interval). " + fix[0].upper() + fix[1:])


def fresh_balance_gate(fresh: float, logged: float, z: float, judge_scale: tuple[float, float],
                       weighting: bool = False) -> tuple[dict[str, float], str | None]:
    """The diagnostics and the CAUTION reason of :func:`fresh_balance` for a DR level, or for a
    weighting level (IPS, SNIPS, calibrated IPS) whose target's fresh draws were given.

    A weighting level is the importance-weighted logged rows' calibrated reward: when the
    weighted logs' judge scores do not reproduce the target's own responses' (its fresh draws),
    the weights — or the log-probabilities behind them — are the likely culprit, even when their
    mean is near 1 so that the mean-weight checks are silent
    (``simulations/results/independent_mixlog.md``: logging log-probabilities scored under
    another system prompt).

    Parameters
    ----------
    fresh, logged, z : float
        :func:`fresh_balance`'s results (0–1 scale).
    judge_scale : (float, float)
    weighting : bool, default False
        The level is a weighting estimator's (the reason names the weights, not the fresh draws,
        as what the level follows).

    Returns
    -------
    (dict, str or None)
        ``fresh_score_shift`` (fresh minus weighted logged, judge points) and ``fresh_score_z``;
        the reason when ``|z|`` exceeds :data:`BALANCE_Z` (None otherwise).

    Examples
    --------
    >>> diag, why = fresh_balance_gate(0.62, 0.55, 5.0, (0, 10))
    >>> round(diag["fresh_score_shift"], 2), why is not None
    (0.7, True)
    >>> "log-probabilities" in fresh_balance_gate(0.62, 0.55, 5.0, (0, 10), weighting=True)[1]
    True
    """
    lo, hi = judge_scale
    diag = {"fresh_score_shift": (fresh - logged) * (hi - lo), "fresh_score_z": z}
    if not abs(z) > BALANCE_Z:  # (NaN: no variance to judge it by)
        return diag, None
    if weighting:
        return diag, (
            f"its importance-weighted logged responses score {'lower' if z > 0 else 'higher'} "
            f"than its fresh draws (mean judge score {lo + logged * (hi - lo):.3g} vs "
            f"{lo + fresh * (hi - lo):.3g}, z = {z:+.1f}), though both stand for its responses: "
            "the weighted logs do not reproduce the target's own responses' scores, so the "
            "importance weights or the log-probabilities behind them are likely off (logs "
            "pooled from several model versions but scored with one version's log-probabilities, "
            "another system prompt or temperature than the one that sampled, base and target "
            "scored in different runs), and a weighting level follows those weights — unless "
            "the fresh draws come from another version of the policy or were judged "
            "differently. Check the log-probabilities (each logged row scored by the setup that "
            "produced it) and that the fresh draws were generated and judged like the logs; a "
            "DR estimator (e.g. 'stacked-dr', the default with fresh draws) rests on the fresh "
            "draws rather than on the weights.")
    return diag, (
        f"its fresh draws score {'higher' if z > 0 else 'lower'} than its importance-weighted "
        f"logged responses (mean judge score {lo + fresh * (hi - lo):.3g} vs "
        f"{lo + logged * (hi - lo):.3g}, z = {z:+.1f}), though both stand for its responses: the "
        "fresh draws may come from another version of the policy than the log-probabilities "
        "describe, or were judged differently (another judge run), and a DR level follows its "
        "fresh draws. Check that both were generated and judged by the same setup, or use "
        "estimator='calibrated-ips', which does not read them.")


def fresh_covariate_gate(name: str, fresh: float, logged: float, z: float
                         ) -> tuple[dict[str, float], str | None]:
    """The diagnostics and the CAUTION reason of :func:`fresh_balance` applied to a covariate of
    the two-stage calibration, for a DR level.

    With covariates (e.g. ``response_length``) a DR level's outcome model is the two-stage map
    read at the fresh draws' judge scores *and covariates*, and the weighted logged correction
    cannot see fresh draws whose covariate is not measured as the logged rows' is (another unit,
    characters for words, or tokens from another tokenizer): the level follows them, and the
    judge-score check passes. The fresh draws' mean covariate and the raw importance-weighted
    mean of the logged rows both estimate the target's mean covariate (:func:`fresh_balance`
    with the covariate in place of the judge score); beyond :data:`BALANCE_Z` the level is
    CAUTION (``simulations/results/independent_combos.md``: lengths counted in characters in the
    fresh draws and in words in the logs gave OK stacked-DR levels covering 0.87).

    Parameters
    ----------
    name : str
        The covariate.
    fresh, logged, z : float
        :func:`fresh_balance`'s results for it (the covariate's own units).

    Returns
    -------
    (dict, str or None)
        ``fresh_covariate_shift[<name>]`` (fresh minus weighted logged, its units) and
        ``fresh_covariate_z[<name>]``; the reason when ``|z|`` exceeds :data:`BALANCE_Z` (None
        otherwise).

    Examples
    --------
    >>> diag, why = fresh_covariate_gate("response_length", 3300.0, 550.0, 80.0)
    >>> diag["fresh_covariate_shift[response_length]"], why is not None
    (2750.0, True)
    >>> fresh_covariate_gate("response_length", 551.0, 550.0, 0.4)[1] is None
    True
    """
    diag = {f"fresh_covariate_shift[{name}]": fresh - logged, f"fresh_covariate_z[{name}]": z}
    if not abs(z) > BALANCE_Z:  # (NaN: no variance to judge it by)
        return diag, None
    return diag, (
        f"its fresh draws' covariate {name!r} is {'higher' if z > 0 else 'lower'} than its "
        f"importance-weighted logged responses' (mean {fresh:.4g} vs {logged:.4g}, z = {z:+.1f}), "
        "though both stand for its responses, and a DR level reads the two-stage calibration at "
        "the fresh draws' covariates: check that the covariate is measured the same way (same "
        "units) in the fresh draws and the logged data, and that both come from the policy the "
        "log-probabilities describe, or use estimator='calibrated-ips', which does not read them.")


def excluded_rows_gate(diag: Mapping[str, Any], n_rows: int, se: float) -> tuple[str, str | None]:
    """CAUTION when logged rows a target leaves out — for a missing log-probability, or (DR
    estimators, ``on_missing="drop"``) for want of its fresh draws on their prompt — could move
    its value, and look unlike the rows it keeps.

    A target's value is over the logged rows it keeps. If the others differ (e.g. scoring failed
    on the long responses, or generation timed out on the hard prompts) the value is off by as
    much as their share ``q`` of the label range. Missing at random leaves it unbiased, so the
    gate needs two things, for either kind of exclusion: the worst case ``q`` exceeds
    :data:`EXCLUDED_SHIFT_SE` standard errors, and the left-out rows' judge scores differ from
    the kept rows' (``diag["missing_score_z"]`` / ``diag["no_fresh_score_z"]``, Welch's z,
    beyond :data:`MISSING_SCORE_Z`). A difference the judge does not see goes unnoticed.

    Parameters
    ----------
    diag : Mapping
        The target's diagnostics (``excluded_missing_log-probability``, ``missing_score_z``,
        ``excluded_no_fresh_draws_for_the_prompt``, ``no_fresh_score_z``).
    n_rows : int
        The logged rows it keeps.
    se : float
        Its standard error on the unit scale (label range 1).

    Returns
    -------
    (str, str or None)
        Status and reason (None when OK; the reasons of both kinds joined when both fire).

    Examples
    --------
    >>> excluded_rows_gate({}, 1000, 0.01)
    ('OK', None)
    >>> d = {"excluded_missing_log-probability": 50, "n_excluded": 50, "missing_score_z": 3.5}
    >>> excluded_rows_gate(d, 950, 0.01)[0]
    'CAUTION'
    >>> excluded_rows_gate({**d, "missing_score_z": 2.4}, 950, 0.01)[0]
    'OK'
    >>> f = {"excluded_no_fresh_draws_for_the_prompt": 300, "n_excluded": 300,
    ...      "no_fresh_score_z": -6.0}
    >>> excluded_rows_gate(f, 700, 0.01)[0]
    'CAUTION'
    """
    if not math.isfinite(se):
        return "OK", None
    reasons = []
    for key, zkey, lack, fix in _EXCLUSIONS:
        k = int(diag.get(key) or 0)
        z = float(diag.get(zkey, float("nan")))
        if k == 0:
            continue
        n_all = n_rows + int(diag.get("n_excluded") or k)
        q = k / n_all
        if q <= EXCLUDED_SHIFT_SE * se or not abs(z) > MISSING_SCORE_Z:
            continue
        reasons.append(
            f"{k} of its {n_all} logged rows ({100 * q:.2g}%) have {lack} and are left out, and "
            f"their judge scores are {'higher' if z > 0 else 'lower'} than the kept rows' "
            f"(z = {z:.1f}): not missing at random, so its value (over the other rows) is off by "
            f"as much as the left-out responses differ, up to {100 * q:.2g}% of the label range. "
            f"{fix}, or remove those rows from the logged data to make the smaller population "
            "explicit.")
    if not reasons:
        return "OK", None
    return "CAUTION", " ".join(reasons)


def dropped_rows_gate(n_dropped: int, n_rows: int, se: float) -> tuple[str, str | None]:
    """CAUTION when a policy's rows dropped as invalid (``on_invalid="drop"``: an empty judge
    score or prompt id) could move its value by more than :data:`EXCLUDED_SHIFT_SE` standard
    errors.

    The level is the value of the rows kept. A judge call that fails more often on some
    responses (hard prompts, long answers) leaves it off by as much as the dropped rows differ,
    up to their share ``q`` of the label range. Unlike :func:`excluded_rows_gate` there is no
    judge score on the dropped rows to tell a drop at random from one that is not, so the worst
    case alone decides: CAUTION when ``q > EXCLUDED_SHIFT_SE · SE``. (Measured:
    ``simulations/results/independent_drop.md``; a drop completely at random is cautioned too.)

    Parameters
    ----------
    n_dropped : int
        The policy's rows dropped as invalid.
    n_rows : int
        The rows it keeps.
    se : float
        Its standard error on the unit scale (label range 1).

    Returns
    -------
    (str, str or None)
        Status and reason (None when OK).

    Examples
    --------
    >>> dropped_rows_gate(0, 800, 0.02)
    ('OK', None)
    >>> dropped_rows_gate(110, 690, 0.02)[0]
    'CAUTION'
    >>> dropped_rows_gate(2, 10000, 0.005)[0]
    'OK'
    """
    k = int(n_dropped)
    if k <= 0 or not math.isfinite(se):
        return "OK", None
    n_all = int(n_rows) + k
    q = k / n_all
    if q <= EXCLUDED_SHIFT_SE * se:
        return "OK", None
    return "CAUTION", (
        f"{k} of its {n_all} rows ({100 * q:.2g}%) were dropped as invalid (no judge score or "
        f"prompt id, on_invalid='drop') and could move its value by up to {100 * q:.2g}% of the "
        f"label range ({q / se:.1f} standard errors): its value is over the rows kept, off by as "
        "much as the dropped responses differ, and a dropped row has no judge score to show "
        "whether they were dropped at random (e.g. judge calls that fail on hard prompts). "
        "Re-score the failed rows, or remove them from the data to make the smaller population "
        "explicit.")


#: A policy without rows on at least this share of the prompts (direct data) makes the different
#: prompt sets a warning (:func:`cje.pipeline.core.prompt_set_message`; below it, e.g. a few
#: failed generations, a notice), and, with fewer than 2 prompts shared, a CAUTION
#: (:func:`prompt_gap_gate`).
PROMPT_GAP_WARNING = 0.10


def prompt_gap_shift(u: np.ndarray, c: np.ndarray, missing: np.ndarray
                     ) -> tuple[float, float, float]:
    """Does policy ``a`` score the prompts another policy lacks like the prompts both answered?

    ``a``'s value on the prompts the other lacks (``M``) minus its value on the shared ones
    (``S``), from ``a``'s per-prompt sums of influence values ``u_g`` (``Σ φ`` over its rows on
    prompt ``g``; ``φ`` is the row's value minus ``a``'s level, so each side's mean of ``φ`` is its
    value minus the level): ``D = Σ_M u/n_M − Σ_S u/n_S`` (``n`` the rows on each side), with the
    prompt-clustered variance of a two-sample difference, ``|M|/(|M|−1) Σ_M (u_g − c_g μ_M)²/n_M²``
    plus the same for ``S``. Where the other policy's prompts are a harder or easier part of
    ``a``'s, ``D`` is far from 0, and the difference of the two levels (each over its own prompts)
    is off from the contrast on the prompts both answered by about ``q·D``, ``q = n_M/(n_M + n_S)``
    (``a``'s level minus its level on ``S``).

    Parameters
    ----------
    u : numpy.ndarray
        ``a``'s per-prompt sums of influence values (0 where it has no row), unit label scale.
    c : numpy.ndarray
        ``a``'s rows per prompt (0 where it has none).
    missing : numpy.ndarray of bool
        The prompts the other policy lacks.

    Returns
    -------
    (float, float, float)
        ``q·D`` (the shift), ``D`` and its z statistic; NaN with fewer than 2 prompts on a side,
        or (z) without a variance.

    Examples
    --------
    >>> import numpy as np
    >>> u = np.array([0.2, 0.3, 0.1, 0.2, -0.4, -0.4]); c = np.ones(6)
    >>> shift, d, z = prompt_gap_shift(u, c, np.array([0, 0, 0, 0, 1, 1], bool))
    >>> round(shift, 3), round(d, 3), round(z, 1)
    (-0.2, -0.6, -14.7)
    """
    import numpy as np

    on = c > 0
    side_m, side_s = on & missing, on & ~missing
    g_m, g_s = int(np.count_nonzero(side_m)), int(np.count_nonzero(side_s))
    if g_m < 2 or g_s < 2:
        return float("nan"), float("nan"), float("nan")
    n_m, n_s = float(c[side_m].sum()), float(c[side_s].sum())
    mu_m, mu_s = float(u[side_m].sum()) / n_m, float(u[side_s].sum()) / n_s
    d = mu_m - mu_s
    var = (g_m / (g_m - 1) * float(np.square(u[side_m] - c[side_m] * mu_m).sum()) / n_m**2
           + g_s / (g_s - 1) * float(np.square(u[side_s] - c[side_s] * mu_s).sum()) / n_s**2)
    z = d / math.sqrt(var) if var > 0 else (0.0 if d == 0 else float("nan"))
    return n_m / (n_m + n_s) * d, d, z


#: Two-sided level of the prompt-gap test (:func:`prompt_gap_gate`), split over the policies a
#: policy lacking prompts is compared with: ``|z|`` above 2.576 with one, 2.807 with two, 3.023
#: with four (``simulations/results/independent_gap2.md``: 1.1% ± 0.2% of levels cautioned for a
#: random 20% of prompts missing, against 4.5% of reports missed on the hardest 20% at 3.29).
PROMPT_GAP_ALPHA = 0.01


def prompt_gap_threshold(comparators: int = 1) -> float:
    """The ``|z|`` beyond which :func:`prompt_gap_gate` cautions, with ``comparators`` policies
    tested: ``Φ⁻¹(1 − α/(2K))`` for :data:`PROMPT_GAP_ALPHA` ``α``, so that a policy missing
    prompts at random is cautioned in at most about ``α`` of reports however many policies
    answered them.

    Parameters
    ----------
    comparators : int
        The policies that answered prompts this policy lacks (at least 1).

    Returns
    -------
    float

    Examples
    --------
    >>> [round(prompt_gap_threshold(k), 3) for k in (1, 2, 4)]
    [2.576, 2.807, 3.023]
    """
    from statistics import NormalDist

    return NormalDist().inv_cdf(1.0 - PROMPT_GAP_ALPHA / (2.0 * max(int(comparators), 1)))


def prompt_gap_gate(name: str, other: str, lacking: int, n_prompts: int, shift: float, z: float,
                    se: float, width: float, comparators: int = 1) -> tuple[str, str | None]:
    """CAUTION for a policy judged on fewer prompts than another, when the prompts it lacks are
    not like the ones it has (direct data; docs: Getting started › Load).

    A policy's value is the mean over its own prompts, and a contrast is the difference of two
    such values. When a policy lacks prompts another answered — failed or timed-out generations,
    a different prompt mix — and the other policy scores those prompts differently
    (:func:`prompt_gap_shift`: ``|z|`` above :func:`prompt_gap_threshold` — 2.576 with one policy
    to compare with, more with several — and the shift at least :data:`EXCLUDED_SHIFT_SE` of this
    policy's standard error), its value is over an easier or harder set of prompts than the
    other's and their contrast compares different prompts, however precise: in
    ``simulations/results/independent_designs.md`` (two equal policies, one lacking the hardest
    20% of 500 prompts) 39% of reports said "Better" with both levels OK; with the gate at
    ``|z| > 3.29`` 1.7%, at 2.576 0.4% (``simulations/results/independent_gap2.md``). Lacking at
    least :data:`PROMPT_GAP_WARNING` of the other's prompts with fewer than 2 prompts shared cannot
    be checked and is cautioned too: nothing in the data separates two random samples of the same
    prompts from an easier and a harder sample (the same study).

    Parameters
    ----------
    name, other : str
        The policy lacking prompts and the policy that answered them.
    lacking : int
        Prompts ``other`` answered and ``name`` did not.
    n_prompts : int
        Prompts ``other`` answered.
    shift, z : float
        :func:`prompt_gap_shift` for ``other``'s rows (unit label scale).
    se : float
        ``name``'s standard error (unit label scale).
    width : float
        Width of the label scale (for the message).
    comparators : int
        The policies that answered prompts ``name`` lacks, each tested
        (:func:`prompt_gap_threshold`).

    Returns
    -------
    (str, str or None)
        Status and reason (None when OK).

    Examples
    --------
    >>> prompt_gap_gate("B", "A", 100, 500, -0.08, -9.0, 0.03, 1.0)[0]
    'CAUTION'
    >>> prompt_gap_gate("B", "A", 100, 500, -0.003, -1.0, 0.03, 1.0)
    ('OK', None)
    """
    share = lacking / max(n_prompts, 1)
    if lacking == 0:
        return "OK", None
    if math.isnan(z):
        if share < PROMPT_GAP_WARNING:
            return "OK", None
        return "CAUTION", (
            f"it has no row on {lacking:,} of the {n_prompts:,} prompts {other!r} answered "
            f"({share:.0%}) and shares too few prompts with it to check that those are like the "
            f"others: its value is the mean over its own prompts, and its contrast with {other!r} "
            "(the difference of the two values) compares different prompts. If the two prompt sets "
            "were drawn at random from the same prompts, the contrast estimates the difference on "
            "those prompts, but the data cannot show it (an easier set of prompts looks the same as "
            "a better policy). Judge both policies on the same prompts, or analyse only the prompts "
            "both answered.")
    if not (abs(z) > prompt_gap_threshold(comparators) and abs(shift) >= EXCLUDED_SHIFT_SE * se):
        return "OK", None
    return "CAUTION", (
        f"it has no row on {lacking:,} of the {n_prompts:,} prompts {other!r} answered "
        f"({share:.0%}), and those are not like the ones it has: {other!r} is rated "
        f"{'lower' if shift < 0 else 'higher'} on them (its value over all its prompts is "
        f"{abs(shift) * width:.3g} {'below' if shift < 0 else 'above'} its value on the prompts "
        f"both answered, z = {z:+.1f}). So this value is over {'an easier' if shift < 0 else 'a harder'} "
        f"set of prompts than {other!r}'s, and their contrast (the difference of the two values, "
        "each over its own prompts) is off by about that much; failed or timed-out generations on "
        "long or hard prompts, or another prompt mix, do this. Judge it on the missing prompts, or "
        "analyse only the prompts every policy answered.")


def covariate_range_gate(covariates: np.ndarray | None, labelled: np.ndarray | None,
                         names: Sequence[str]) -> tuple[str, str | None, dict[str, float]]:
    """CAUTION when a level that rests on the two-stage map transporting reads it at covariate
    values beyond those it was fitted on.

    The two-stage calibration (judge score and covariates, e.g. ``response_length``) learns the
    covariates' effect on the labelled rows only; beyond their range it holds the effect at the
    edge. A policy whose responses lie there (much longer answers than any labelled one) gets a
    level that rests on that extrapolation, which the out-of-range gate on judge scores does not
    see (``simulations/results/independent_cov.md``: a policy with 83% of its lengths beyond the
    labelled ones had 1.9% of its scores outside their range). The gate marks it CAUTION when the
    share of its rows with some covariate outside the labelled range is at least
    :data:`OUT_OF_RANGE_GATE` and more than sampling alone puts there: for rows drawn like the
    ``m`` labelled ones the share outside their range is ``Beta(2, m − 1)``-distributed (mean
    ``2/(m + 1)``: a continuous covariate, unlike a judge score on a grid, does not repeat its
    extremes), and the gate needs more than its 99th percentile (10% at ``m = 60``, 6.4% at
    100, under 5% from about 130 labels on). The caller applies it only to levels without a
    residual correction of their own (no own labels, no probe correction): a correction by the
    policy's own labels removes the extrapolation's bias in expectation, wherever the map is
    read.

    Parameters
    ----------
    covariates : numpy.ndarray of shape (n, p) or None
        The policy's covariates (the rows its level is computed on).
    labelled : numpy.ndarray of shape (m, p) or None
        The calibrator's labelled rows' covariates.
    names : sequence of str
        The covariates' names, in column order.

    Returns
    -------
    (str, str or None, dict)
        Status, reason (None when OK) and the share outside per covariate
        (``covariate_out_of_range_share[<name>]``).

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.linspace(100.0, 300.0, 200)[:, None]   # 200 labelled lengths
    >>> covariate_range_gate(np.array([[150.0], [250.0], [310.0]] * 5 + [[200.0]] * 5), lab,
    ...                      ["response_length"])[0]       # 25% outside
    'CAUTION'
    >>> st, why, d = covariate_range_gate(np.array([[150.0]] * 96 + [[900.0]] * 4), lab,
    ...                                   ["response_length"])
    >>> st, d                                              # 4% < 5%
    ('OK', {'covariate_out_of_range_share[response_length]': 0.04})
    """
    import numpy as np

    if covariates is None or labelled is None or not len(covariates) or not len(labelled):
        return "OK", None, {}
    lo, hi = np.nanmin(labelled, axis=0), np.nanmax(labelled, axis=0)
    outside = (covariates < lo) | (covariates > hi)
    diag = {f"covariate_out_of_range_share[{n}]": float(outside[:, j].mean()) for j, n in enumerate(names)}
    share = float(outside.any(axis=1).mean())
    if share < max(OUT_OF_RANGE_GATE, _beyond_extremes_q99(len(labelled))):
        return "OK", None, diag
    worst = max(range(len(names)), key=lambda j: outside[:, j].mean())
    return "CAUTION", (
        f"{100 * share:.0f}% of its rows have covariate values outside those of the labelled rows "
        f"(most: {names[worst]!r}, {100 * outside[:, worst].mean():.0f}% outside "
        f"[{lo[worst]:g}, {hi[worst]:g}]), where the two-stage calibration holds the covariate's "
        "effect at the edge, so its level rests on that extrapolation too. Label responses like "
        "these, or give a probe slice of them."), diag


#: z of a policy's labelled design weights ``Σ_lab 1/π`` against its row count below which part
#: of the labelling design drew no label (:func:`label_reach_gate`).
LABEL_REACH_Z = -5.0


def label_reach_gate(reach: float, z: float, n_labels: int) -> tuple[str, str | None]:
    """CAUTION when a policy's labels, weighted by the design (``label_probability``), stand for
    far fewer rows than it has (:func:`cje.data.label_reach`): a part of the design with small
    probabilities drew no label, so its rows are represented by none and the residual
    correction misses them.

    ``z < -5``: in ``simulations/independent_lprob.py`` the data sets where the ``π = 0.005``
    stratum drew no label had ``z`` near −19 (their OK intervals covered 0.51–0.83), while in
    valid designs ``z < −5`` occurred in 0.04–0.9% of label draws.

    Parameters
    ----------
    reach : float
        ``Σ_lab 1/π_i / n_p``.
    z : float
        Its z statistic against 1.
    n_labels : int
        The policy's labelled rows.

    Returns
    -------
    (str, str or None)

    Examples
    --------
    >>> label_reach_gate(0.21, -18.5, 18)[0]
    'CAUTION'
    >>> label_reach_gate(0.8, -1.2, 18)
    ('OK', None)
    """
    if not z < LABEL_REACH_Z:
        return "OK", None
    return "CAUTION", (
        f"its {n_labels} labelled rows, weighted by the labelling design (1/label_probability), "
        f"stand for {100 * reach:.0f}% of its rows (z = {z:.1f} against 100%): a part of the design "
        "with small probabilities drew no label, so those rows are represented by none and its "
        "residual correction misses them (or label_probability is not the probability each row "
        "had of being labelled). Label some of the rows with the smallest probabilities.")


def _beyond_extremes_q99(m: int) -> float:
    """The 99th percentile of the share of a continuous distribution outside the range of ``m``
    draws from it: ``Beta(2, m − 1)``, whose CDF is ``1 − (1 − x)^(m−1) (1 + (m − 1) x)``
    (solved by bisection; 1 for ``m < 2``)."""
    if m < 2:
        return 1.0
    b, lo, hi = m - 1, 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if 1.0 - (1.0 - mid) ** b * (1.0 + b * mid) < 0.99:
            lo = mid
        else:
            hi = mid
    return hi


TAIL_DOCS = "docs: Off-policy › Weight tails"


def _ess_gate(family: str, diag: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The overlap gates (docs: Methods › Diagnostics and gates) on ESS, TTC and the Hill index
    (CAUTION), one short sentence per reason.

    The Hill index says what the sample shows — the largest weights dominate — not that the
    weights' variance is infinite: importance weights of a finite set of responses are bounded,
    and a sample of them can look heavy-tailed all the same. The reason then says what the
    interval allows for.
    """
    reasons: list[str] = []
    stable_resid = diag.get("residual_weights") == "stable"
    nan = float("nan")
    resid = (
        "; the oracle residual is weighted by the stabilised weights, so the estimate assumes the "
        "calibration transports to the target's responses, and its interval adds the gap to the "
        f"raw-weight correction ({diag.get('transport_gap', nan):+.3f} ± "
        f"{diag.get('transport_gap_se', nan):.3f}) as an allowance (a probe slice audits the "
        f"assumption; residual_weights='raw' drops it; {TAIL_DOCS})"
    ) if stable_resid else ""
    ess = diag.get("ess_raw", nan)
    low_ess = ess == ess and ess < ESS_GATE
    checks: tuple[tuple[str, float, str], ...]
    if family == "weighting":
        checks = (
            ("ess_raw", ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: a few logged rows carry the "
                                  "estimate" + resid),
            ("ttc", TTC_GATE, "TTC {v:.2f} < {g:.2f}: the logging policy rarely produces the "
                              "responses the target concentrates on"),
            ("hill_raw", HILL_GATE, "the largest weights dominate (Hill tail index {v:.2f} < {g:g}): "
                                    "the estimate rests on a few logged rows, and its interval "
                                    "allows only for the spread of the rows it saw, not for rarer "
                                    f"high-weight responses it missed ({TAIL_DOCS})"),
        )
        if not low_ess:
            checks += (("ess_raw", WEIGHTING_ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: a sample "
                                                       "that missed the target's rarer high-weight "
                                                       "responses looks like this, and its interval "
                                                       "cannot allow for rows it never saw (weighted "
                                                       "intervals covered 0.28–0.96 at such sample "
                                                       f"ESS in simulation; {TAIL_DOCS})"),)
    else:
        checks = (
            ("ess_raw", ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: the logged labels barely "
                                  "reach the target's responses" + (resid or (
                                      ", so the weighted correction to the outcome model rests on "
                                      "a few logged rows (the oracle residual comes from the "
                                      "probe slice)" if diag.get("residual_weights") == "probe" else
                                      ", so the oracle residual correction rests on a few labelled "
                                      "rows and its interval is wide"))),
            ("ttc", TTC_GATE, "TTC {v:.2f} < {g:.2f}: the logging policy rarely produces the "
                              "responses the target concentrates on; the estimate rests on the "
                              "outcome model"),
        )
        if not low_ess:
            checks += (("ess_raw", DR_ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: the oracle "
                                                "residual correction rests on a few high-weight "
                                                "rows; its variance is estimated from every logged "
                                                "row's weight, which assumes the residual's spread "
                                                "does not grow with the weight (a probe slice "
                                                f"checks it; {TAIL_DOCS})" + resid),)
        if stable_resid and not low_ess:
            checks += (("hill_raw", HILL_RESIDUAL, "the largest weights dominate (Hill tail index "
                                                   "{v:.2f} < {g:g})" + resid),)
    for key, gate, text in checks:
        v = diag.get(key, nan)
        if v == v and v < gate:
            reasons.append("poor overlap: " + text.format(v=v, g=gate) + ".")
    return ("CAUTION" if reasons else "OK"), reasons


def row_weight_shift(u: np.ndarray, c: np.ndarray) -> tuple[float, float]:
    """How far is a policy's value — the mean over its rows — from the mean over its prompts of
    its per-prompt means? (direct data, prompts holding unequal numbers of rows)

    A level is the mean over the policy's rows, so a prompt asked twice weighs twice. From the
    policy's per-prompt sums of influence values ``u_g`` (``Σ φ`` over its ``c_g`` rows on prompt
    ``g``): ``D = mean_g(u_g/c_g) − Σ_g u_g / Σ_g c_g``, the prompt-weighted minus the row-weighted
    value (linearised; invariant to the centring of ``φ``). Its prompt-clustered variance is that
    of a difference of two ratio means over the same prompts: with ``x_g = u_g/c_g``,
    ``x̄ = mean_g x_g``, ``ψ = Σu/Σc`` and ``c̄ = Σc/G``, each prompt's influence on ``D`` is
    ``IF_g = (x_g − x̄) − (c_g/c̄)(x_g − ψ)``, and ``Var D = Σ IF_g² / (G(G − 1))``. With as many rows
    on every prompt the two values are the same (``D = 0``, no variance: nothing to check); when
    the prompts asked more often are no different from the others ``D`` is about 0; when they are
    the hard ones (retried on failure) or the easy ones, ``D`` is far from 0 and a contrast with a
    policy asked once per prompt compares two different weightings of the prompts.

    Parameters
    ----------
    u : numpy.ndarray
        The policy's per-prompt sums of influence values on its prompts (unit label scale).
    c : numpy.ndarray
        Its rows on each of those prompts (each at least 1).

    Returns
    -------
    (float, float)
        ``D`` and its z statistic; ``(0.0, nan)`` when every prompt holds as many rows, NaN
        with fewer than 2 prompts, and z NaN without a variance.

    Examples
    --------
    >>> import numpy as np
    >>> c = np.array([2, 2, 1, 1, 1, 1])
    >>> u = np.array([-0.6, -0.5, 0.3, 0.2, 0.3, 0.3])  # the prompts asked twice score lower
    >>> d, z = row_weight_shift(u, c)
    >>> round(d, 3), round(z, 1)
    (0.092, 6.0)
    >>> row_weight_shift(np.array([0.1, -0.1, 0.2]), np.array([3, 3, 3]))
    (0.0, nan)
    """
    import numpy as np

    c = np.asarray(c, dtype=np.float64)
    u = np.asarray(u, dtype=np.float64)
    g = int(c.size)
    if g < 2:
        return float("nan"), float("nan")
    if float(c.min()) == float(c.max()):
        return 0.0, float("nan")
    x = u / c
    x_bar, psi, c_bar = float(x.mean()), float(u.sum()) / float(c.sum()), float(c.mean())
    d = x_bar - psi
    infl = (x - x_bar) - (c / c_bar) * (x - psi)
    var = float(np.square(infl).sum()) / (g * (g - 1))
    z = d / math.sqrt(var) if var > 0 else (0.0 if d == 0 else float("nan"))
    return d, z


def row_weight_gate(d: float, z: float, se: float, width: float, repeated: int, n_prompts: int,
                    most: int) -> tuple[dict[str, float], str | None]:
    """The diagnostics and the CAUTION reason of :func:`row_weight_shift` for a direct level.

    A level is the mean over the policy's rows. When some prompts hold more rows than others —
    the same prompt asked twice, retries on failed or hard prompts, more draws where the first
    disagreed — and those prompts score unlike the others, the level leans toward them, and a
    contrast with a policy asked once per prompt compares different weightings of the same
    prompts: in ``simulations/results/independent_designs.md`` (two equal policies, one with its
    hardest 20% of 500 prompts asked twice) 24.1% of reports said "Better" with both levels OK.
    CAUTION when ``|z|`` exceeds :data:`BALANCE_Z` and ``|D|`` is at least
    :data:`EXCLUDED_SHIFT_SE` of the level's standard error (the rule of
    :func:`prompt_gap_gate`). The estimate and interval do not change: the level stays the mean
    over rows.

    Parameters
    ----------
    d, z : float
        :func:`row_weight_shift`'s results (unit label scale).
    se : float
        The level's standard error (unit label scale).
    width : float
        Width of the label scale (the diagnostics and the message are in label units).
    repeated : int
        The policy's prompts holding more than one row.
    n_prompts : int
        Its prompts.
    most : int
        The most rows on one prompt.

    Returns
    -------
    (dict, str or None)
        ``row_weight_shift`` (mean of the per-prompt means minus the level, label units) and
        ``row_weight_z``; the reason when the level is CAUTION (None otherwise).

    Examples
    --------
    >>> diag, why = row_weight_gate(0.03, 6.0, 0.02, 1.0, 100, 500, 2)
    >>> round(diag["row_weight_shift"], 3), why is not None
    (0.03, True)
    >>> row_weight_gate(0.003, 1.0, 0.02, 1.0, 100, 500, 2)[1] is None
    True
    """
    diag = {"row_weight_shift": float(d * width), "row_weight_z": float(z)}
    if not (abs(z) > BALANCE_Z and abs(d) >= EXCLUDED_SHIFT_SE * se):  # (NaN: nothing to judge)
        return diag, None
    times = "twice" if most == 2 else f"up to {most} times"
    return diag, (
        f"its value, the mean over its rows, leans toward the {repeated:,} of its {n_prompts:,} "
        f"prompts asked more than once ({times}), which score {'lower' if d > 0 else 'higher'} "
        f"than its others (the mean of its per-prompt means is {abs(d) * width:.3g} "
        f"{'higher' if d > 0 else 'lower'}, z = {z:+.1f}): a contrast with a policy asked once per "
        "prompt compares different weightings of the same prompts (retries on hard prompts make a "
        "policy look worse). Give every prompt the same number of draws, or keep one response per "
        "prompt (e.g. the first draw_idx).")
