"""Fresh draws of each policy: every policy is estimated on its own rows by the direct method."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np

from cje.calibration.reward import Mode, RewardCalibrator
from cje.data import EvalData
from cje.diagnostics.gates import (
    label_balance,
    label_balance_gate,
    label_reach_gate,
    prompt_balance,
    worse_status,
)
from cje.errors import CJEInputError
from cje.estimators.direct import DirectEstimator, direct_estimate
from cje.estimators.offpolicy import PolicyValue
from cje.inference import cluster_variance, ranking_tiers, t_interval
from cje.pipeline.core import (
    MIN_LABELLED_PROMPTS,
    PolicyRows,
    Table,
    distinct_rows,
    estimate,
    fit_calibrator,
    fold_plan,
    own_label_gate,
    own_part_cross,
    own_part_sums,
)
from cje.pipeline.probes import ProbeUse, combine, score_balance
from cje.pipeline.summaries import UnitView, naive_judge_mean, to_unit
from cje.report import Report
from cje.results import PolicyEstimate

__all__ = ["analyze_direct"]

_OWN_ESTIMATE_GROUPS = DirectEstimator.estimate_groups


def _package_estimates(estimator: DirectEstimator) -> bool:
    """Whether the estimator's influence values are the package's own (``estimate_groups`` not
    overridden): the shape may then form the estimator's sums itself (the fast paths, the
    own-label residual part, the weighted design)."""
    return type(estimator).estimate_groups is _OWN_ESTIMATE_GROUPS


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    """``numpy.concatenate``, or the one part itself (no copy)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _narrow(codes: np.ndarray | None) -> np.ndarray | None:
    """Distinct-value codes in the smallest unsigned type that holds them (they only index the
    distinct values): judges score on coarse grids, so one byte per row instead of eight (70 MB
    less at 10^7 rows).

    Examples
    --------
    >>> _narrow(np.array([0, 2, 1])).dtype, _narrow(np.array([0, 300])).dtype
    (dtype('uint8'), dtype('uint16'))
    """
    if codes is None or codes.size == 0:
        return codes
    top = int(codes.max())
    for dt in (np.uint8, np.uint16, np.uint32):
        if top <= np.iinfo(dt).max:
            return codes.astype(dt)
    return codes


#: Rows per block of :func:`_sums_by_group`.
_BLOCK = 1 << 20


def _sums_by_group(pred: np.ndarray, codes: np.ndarray, group: np.ndarray, n_groups: int,
                   block: int | None = None) -> np.ndarray:
    """``numpy.bincount(group, weights=pred[codes], minlength=n_groups)``, bit for bit, without
    the per-row array ``pred[codes]`` (80 MB at 10^7 rows, made again by every jackknife
    replicate).

    ``bincount`` adds each row's weight to its group's sum in row order. Here the rows go
    ``block`` (default :data:`_BLOCK`) at a time, each block's ``bincount`` starting with one
    leading row per group that carries the sums so far (``0.0 + sum`` is ``sum``): every sum
    takes the same additions in the same order.

    Examples
    --------
    >>> pred, codes = np.array([0.1, 0.7, 0.2]), np.array([0, 2, 1, 1, 0, 2, 2])
    >>> group = np.array([0, 0, 1, 1, 1, 0, 1])
    >>> _sums_by_group(pred, codes, group, 2, block=3).tolist() == np.bincount(
    ...     group, weights=pred[codes], minlength=2).tolist()
    True
    """
    n = group.shape[0]
    block = _BLOCK if block is None else block
    if n <= block:
        return np.bincount(group, weights=pred[codes], minlength=n_groups)
    g = np.empty(n_groups + block, dtype=np.intp)
    w = np.empty(n_groups + block)
    g[:n_groups] = np.arange(n_groups)
    sums: np.ndarray = np.zeros(n_groups)
    for a in range(0, n, block):
        b = min(a + block, n)
        m = n_groups + b - a
        w[:n_groups] = sums
        g[n_groups:m] = group[a:b]
        np.take(pred, codes[a:b], out=w[n_groups:m])
        sums = np.bincount(g[:m], weights=w[:m], minlength=n_groups)
    return sums


def _as_slice(rows: np.ndarray) -> np.ndarray | slice:
    """Increasing row indices as a slice when they are contiguous."""
    if rows.size and int(rows[-1]) - int(rows[0]) + 1 == rows.size:
        return slice(int(rows[0]), int(rows[-1]) + 1)
    return rows


class DirectShape:
    """Policies' own rows (plus calibration-only and probe rows) and the direct estimator.

    Parameters
    ----------
    ev : EvalData
        Fresh draws of each policy.
    probes : Mapping[str, EvalData]
        Oracle-labelled probe slices per policy.
    covariates : tuple of str
    estimator : DirectEstimator
    alpha : float
        For the naive intervals.
    probe_correction : bool
        A policy's probe slice enters its residual term, pooled with its own labelled rows
        (:mod:`cje.pipeline.probes`); only with the augmented estimator.
    """

    share_over_se2 = False

    def __init__(self, ev: EvalData, probes: Mapping[str, EvalData], covariates: tuple[str, ...],
                 estimator: DirectEstimator, alpha: float, probe_correction: bool = True):
        parts_s = [ev.judge_score]
        parts_y = [ev.oracle_label]
        parts_g = [ev.policy_code]
        parts_c = [ev.prompt_code]
        parts_x = [np.column_stack([ev.covariates[c] for c in covariates])] if covariates else []
        n_prompts = ev.prompts.shape[0]
        P = len(ev.policies)
        for j, pr in enumerate(probes.values()):
            keep = np.flatnonzero(pr.labelled)
            parts_s.append(pr.judge_score[keep])
            parts_y.append(pr.oracle_label[keep])
            parts_g.append(np.full(keep.size, P + j, dtype=np.int64))
            parts_c.append(pr.prompt_code[keep] + n_prompts)  # probe prompts: own clusters
            n_prompts += pr.prompts.shape[0]
            if covariates:
                parts_x.append(np.column_stack([pr.covariates[c][keep] for c in covariates]))
        # without probe slices the policies' own arrays are used as they are (read-only), not
        # copied: at 10^7 rows each copy is 80 MB. Scores and labels are converted to [0, 1]
        # where they are read (UnitView): only the distinct scores are kept converted, unless
        # there are no codes of distinct (S, Z) rows to read the rewards through
        raw_s, raw_y = _concat(parts_s), _concat(parts_y)
        group = _concat(parts_g)
        X = np.vstack(parts_x) if covariates else None
        s_unit = to_unit(raw_s, ev.judge_scale)
        codes, distinct_s, distinct_X = distinct_rows(s_unit, X)
        codes = _narrow(codes)
        # (typed as the arrays they stand for: Table's readers index them)
        s = s_unit if codes is None else cast(np.ndarray, UnitView(raw_s, ev.judge_scale))
        del s_unit
        y = cast(np.ndarray, UnitView(raw_y, ev.label_scale))
        weight = None
        if ev.label_probability is not None:  # a non-uniform design (probes refused before)
            with np.errstate(divide="ignore", invalid="ignore"):
                weight = np.where(ev.labelled, 1.0 / ev.label_probability, 1.0)
        self._weight = weight
        self.table = Table(s=s, y=y, X=X, cluster=_concat(parts_c),
                           train=np.flatnonzero(~np.isnan(raw_y) & (group < P)), codes=codes,
                           distinct_s=distinct_s, distinct_X=distinct_X, weight=weight)
        self.ev, self.estimator = ev, estimator
        self.names = ev.policies
        self.judge_scale, self.label_scale = ev.judge_scale, ev.label_scale
        self.labelled_scores = ev.judge_score[ev.labelled]
        self.n_clusters = int(self.table.cluster.max()) + 1
        # the policies' prompts are the codes below this (probe slices' prompts come after):
        # :func:`cje.pipeline.core.prompt_set_message` compares the policies' prompt sets
        self.policy_prompts = int(ev.prompts.shape[0])
        self.probe_names = list(probes)
        self._group = np.where(group < P, group, -1) if probes else group
        # each policy's rows: a slice (views, not copies, of every per-row array) when they are
        # contiguous, as in files written per policy
        self._rows = [_as_slice(np.flatnonzero(group == p)) for p in range(P)]
        self._probe_rows = [np.flatnonzero(group == P + j) for j in range(len(probes))]
        self._labelled = np.zeros(s.shape[0], dtype=bool)
        self._labelled[self.table.train] = True
        # for values(): the rows of some policy (a slice when, without calibration-only rows,
        # they are the first ones), their number per policy, the policy of each training row of
        # some policy and their number per policy
        inside = np.flatnonzero(self._group >= 0)
        self._inside = slice(0, inside.size) if inside.size == 0 or inside[-1] == inside.size - 1 \
            else inside
        self._n = np.bincount(self._group[inside], minlength=P)
        g_train = self._group[self.table.train]
        self._train_inside = np.flatnonzero(g_train >= 0)
        self._group_train = g_train[self._train_inside]
        self._m = np.bincount(self._group_train, minlength=P).astype(np.int64)
        del inside, g_train
        # policy -> its probe slice, when the probe corrects its level
        self._probe_of = {ev.policies.index(name): j for j, name in enumerate(probes)
                          if probe_correction and estimator.augment and name in ev.policies}
        # the full calibration's run, read by policy(): each policy's prompts and probe use
        self._used: list[tuple[np.ndarray, ProbeUse | None]] = [
            (self.table.cluster[rows], None) for rows in self._rows]
        self._own: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # run(): _own_parts
        #: the own-label residual parts multiplied prompt by prompt, for the paired contrasts
        self.own_cross: np.ndarray | None = None
        self.naive = [naive_judge_mean(s[rows], self.table.cluster[rows], alpha, ev.label_scale)
                      for rows in self._rows]
        # (policy(): each prompt's mean judge score over every policy's rows, and whether it
        # holds more than one row; made once)
        self._prompt_scores: tuple[np.ndarray, np.ndarray] | None = None

    def _reward(self, predict: Any, rows: np.ndarray | None = None) -> np.ndarray:
        """Calibrated reward of every row (or of ``rows``), through the distinct values."""
        t = self.table
        if t.codes is not None:
            out = predict(t.distinct_s, t.distinct_X)
            return out[t.codes] if rows is None else out[t.codes[rows]]
        out = predict(t.s, t.X)
        return out if rows is None else out[rows]

    def _estimate(self, calibrator: RewardCalibrator, deleted: frozenset[int]
                  ) -> list[tuple[PolicyValue, np.ndarray, ProbeUse | None]]:
        """Each policy's estimate, the prompts of the rows its influence values are on, and how
        its probe slice entered (None: not at all)."""
        calib = calibrator.calibration(deleted)
        t = self.table
        reward = self._reward(calib.predict)
        own = _package_estimates(self.estimator)
        residual = t.y[t.train] - calib.oof  # on the training rows, those of self._labelled
        if not own:  # another estimator is given the residual on every row, as documented
            full = np.zeros_like(reward)
            full[t.train] = residual
            residual = full
        P = len(self.names)
        if own and not self._probe_of:
            # what estimate_groups computes, with the influence values written over the rewards
            # (read again only by the probe correction, absent here): one per-row array fewer
            # at the analysis' memory peak
            est = direct_estimate(reward, residual, self._labelled, self._group, P,
                                  augment=self.estimator.augment, weight=self._weight,
                                  overwrite_reward=True)
        elif self._weight is None:
            est = self.estimator.estimate_groups(reward, residual, self._labelled, self._group, P)
        else:
            est = self.estimator.estimate_groups(reward, residual, self._labelled, self._group, P,
                                                 weight=self._weight)
        plug = None
        if self._probe_of:  # the residual term apart from the rest: the probe pools with it
            plug = direct_estimate(reward, residual, self._labelled, self._group, P, augment=False)
        out: list[tuple[PolicyValue, np.ndarray, ProbeUse | None]] = []
        for p, rows in enumerate(self._rows):
            j = self._probe_of.get(p)
            if j is None or plug is None:
                out.append((PolicyValue(est.values[p], est.influence[rows]), t.cluster[rows], None))
                continue
            prow = self._probe_rows[j]
            own = est.influence[rows] - plug.influence[rows]
            out.append(combine(PolicyValue(float(plug.values[p]), plug.influence[rows]),
                               float(est.values[p] - plug.values[p]), own, int(est.n_labels[p]),
                               t.cluster[rows], t.y[prow] - reward[prow], t.cluster[prow]))
        return out

    def run(self, calibrator: RewardCalibrator,
            deleted: frozenset[int]) -> list[tuple[PolicyValue, float]]:
        """Every policy's estimate (no transport gap) under the calibration without ``deleted``."""
        res = self._estimate(calibrator, deleted)
        if not deleted:
            self._used = [(cl, use) for _, cl, use in res]
            self._own, self.own_cross = self._own_parts(calibrator)
        return [(v, 0.0) for v, _, _ in res]

    def _own_parts(self, calibrator: RewardCalibrator
                   ) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray] | None, np.ndarray | None]:
        """Per policy, the residual part of the influence values of :func:`direct_estimate`
        (``(n/m)(e_i − ē)``, or ``(n/Ŵ) w_i (e_i − ē_w)`` with weights) summed per prompt, and
        its factor and effective labelled prompts (:func:`~cje.pipeline.core.own_part_sums`;
        read by :meth:`policy` for the part's own small-sample factor and degrees of freedom);
        and those parts of two policies multiplied prompt by prompt
        (:func:`~cje.pipeline.core.own_part_cross`, for the paired contrasts).
        ``(None, None)`` for another estimator or without augmentation. Labelled rows only."""
        if not getattr(self.estimator, "augment", False) or not _package_estimates(self.estimator):
            return None, None
        t = self.table
        P = len(self.names)
        e = (t.y[t.train] - calibrator.calibration(frozenset()).oof)[self._train_inside]
        g = self._group_train
        cl = t.cluster[t.train][self._train_inside]
        n = self._n.astype(float)
        w = None
        if self._weight is None:
            mean_e = np.divide(np.bincount(g, weights=e, minlength=P), self._m,
                               out=np.zeros(P), where=self._m > 0)
            part = np.divide(n, self._m, out=np.zeros(P), where=self._m > 0)[g] * (e - mean_e[g])
        else:
            w = self._weight[t.train][self._train_inside]
            tot = np.bincount(g, weights=w, minlength=P)
            mean_e = np.divide(np.bincount(g, weights=w * e, minlength=P), tot,
                               out=np.zeros(P), where=self._m > 0)
            part = np.divide(n, tot, out=np.zeros(P), where=self._m > 0)[g] * w * (e - mean_e[g])
        return own_part_sums(part, g, cl, self._n, P, weight=w), own_part_cross(part, g, cl, self._n, P)

    def values(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        """The point estimates only.

        With the package's own direct estimator and no probe correction (the jackknife's case at
        scale) only the per-policy sums of :func:`direct_estimate` are formed, in the same order
        (so the same bits), without its influence values: one gather and one ``bincount`` over
        the rows, the residual sums over the labelled rows.
        """
        if self._probe_of or not _package_estimates(self.estimator):
            return np.array([v.value for v, _, _ in self._estimate(calibrator, deleted)])
        calib = calibrator.calibration(deleted)
        t = self.table
        inside = self._inside  # the rows of some policy: a slice when they come first
        P = len(self.names)
        if t.codes is not None:
            totals = _sums_by_group(calib.predict(t.distinct_s, t.distinct_X), t.codes[inside],
                                    self._group[inside], P)
        else:
            totals = np.bincount(self._group[inside], weights=calib.predict(t.s, t.X)[inside],
                                 minlength=P)
        values = totals / np.maximum(self._n, 1)
        if self.estimator.augment and self._weight is not None:  # the Hájek residual mean
            e = (t.y[t.train] - calib.oof)[self._train_inside]
            w = self._weight[t.train][self._train_inside]
            tot = np.bincount(self._group_train, weights=w, minlength=P)
            mean_e = np.divide(np.bincount(self._group_train, weights=w * e, minlength=P), tot,
                               out=np.zeros(P), where=self._m > 0)
            values = values + mean_e
        elif self.estimator.augment:
            e = (t.y[t.train] - calib.oof)[self._train_inside]
            mean_e = np.divide(np.bincount(self._group_train, weights=e, minlength=P), self._m,
                               out=np.zeros(P), where=self._m > 0)
            values = values + mean_e
        return values

    def gap_influence(self) -> dict[int, tuple[float, np.ndarray]]:
        """No transport gaps in direct mode."""
        return {}

    def probe_rows(self) -> list[np.ndarray]:
        """Each probe slice's rows."""
        return self._probe_rows

    def probe_residuals(self, calibrator: RewardCalibrator) -> list[np.ndarray]:
        """``Y − f(S)`` on each probe slice under the full calibration."""
        predict = calibrator.predictor()
        return [self.table.y[rows] - self._reward(predict, rows) for rows in self._probe_rows]

    def _prompt_balance(self, rows: Any, lab: np.ndarray, cl: np.ndarray) -> tuple[float, float, float]:
        """:func:`~cje.diagnostics.gates.prompt_balance` of the policy on ``rows`` (its labelled
        ones ``lab``, its prompt codes ``cl``), in judge points: its labelled rows' prompts' mean
        judge score over every policy's rows, against its rows'.

        The sums of :func:`~cje.diagnostics.gates.prompt_score_sums` (the out-of-core engines'
        form, over every prompt) taken over the policy's rows and its labelled prompts instead:
        ``Σ_g n_g x'_g`` is the sum of ``x'`` over its rows, and the labelled sums run over the
        few labelled prompts, so no temporary spans every prompt (at 10⁷ rows the per-prompt form
        raised the analysis' peak memory by 250 MB). The last sum is 1 when some prompt of the
        policy holds more than one row (all :func:`~cje.diagnostics.gates.prompt_balance` reads)."""
        t = self.table
        if self._prompt_scores is None:  # every policy's rows: each prompt's mean score, shared?
            inside = self._inside
            tot = np.bincount(t.cluster[inside], weights=t.s[inside], minlength=self.n_clusters)
            cnt = np.bincount(t.cluster[inside], minlength=self.n_clusters)
            self._prompt_scores = (np.divide(tot, cnt, out=tot, where=cnt > 0), cnt > 1)
            del cnt
        x, shared = self._prompt_scores
        centre = float(np.mean(t.s[rows], dtype=np.float64))
        xr = x[cl]
        xr -= centre
        u, l_g = np.unique(cl[lab], return_counts=True)
        xl = x[u] - centre
        l_g = l_g.astype(np.float64)
        l2 = l_g * l_g
        sums = np.array([xr.sum(), np.einsum("i,i->", xr, xr), l_g @ xl,  # (no threaded BLAS)
                         l_g.sum(), l2.sum(), l2 @ xl, l2 @ (xl * xl),
                         u.size, float(shared[cl].any())])
        del xr
        d, z, mean = prompt_balance(sums, int(cl.size), centre)
        lo, hi = self.judge_scale
        return (hi - lo) * d, z, lo + (hi - lo) * mean

    def policy(self, p: int, value: PolicyValue, gap: float) -> PolicyRows:
        """Policy ``p``'s rows, labels, naive mean and judge scores, and the gate on its own
        residual correction (:func:`own_label_gate`)."""
        rows = self._rows[p]
        cluster, use = self._used[p]
        lab = self._labelled[rows]
        n_own = int(np.count_nonzero(lab))
        status, reasons, alone = "OK", [], False
        if use is None and getattr(self.estimator, "augment", False) and n_own:
            own = self.table.cluster[rows][lab]  # their prompts: one, or more (no sort needed)
            status, reasons, alone = own_label_gate(n_own, bool(own.min() == own.max()))
        reach = self.ev.label_reach.get(self.names[p]) if use is None and n_own else None
        if reach is not None:  # a labelling design whose small-π part drew no label
            st, why = label_reach_gate(*reach, n_own)
            if why:
                status, reasons = worse_status(status, st), [*reasons, why]
        diagnostics: dict[str, Any] = {}
        if self.ev.label_probability is None and n_own >= 2 and getattr(self.estimator, "augment", False):
            # uniform labels, as the residual correction assumes?
            s_p = np.asarray(self.ev.judge_score[rows], dtype=float)
            mean_all = float(s_p.mean())
            cl_p = self.table.cluster[rows]
            more, why = label_balance_gate(*label_balance(
                s_p[lab], cl_p[lab], mean_all, s_p.size, float(s_p.var(ddof=1))), mean_all,
                prompt=self._prompt_balance(rows, lab, cl_p))
            del s_p, cl_p
            diagnostics.update(more)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        if use is not None:  # is the probe a random sample of the policy's responses?
            prow = self._probe_rows[self._probe_of[p]]
            lo, hi = self.judge_scale  # on the judge's scale, as the reason prints the means
            diff, z, why = score_balance(lo + (hi - lo) * np.asarray(self.table.s[prow], dtype=float),
                                         self.table.cluster[prow],
                                         np.asarray(self.ev.judge_score[rows], dtype=float),
                                         self.table.cluster[rows])
            diagnostics.update(probe_score_shift=diff, probe_score_z=z)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        own = (0.0, 0.0, 0.0)
        if use is None and n_own and self._own is not None:
            own = tuple(float(x[p]) for x in self._own)
        return PolicyRows(cluster=cluster, n_labels=n_own,
                          method=self.estimator.method, naive=self.naive[p],
                          scores=self.ev.judge_score[rows], probe=use, status=status,
                          reasons=reasons, diagnostics=diagnostics, no_variance=alone,
                          own_ss=own[0], own_factor=own[1], own_m=own[2],
                          covariates=self.table.covariates_of(rows))

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The policies' judge scores (covariate medians over every row).

        Without covariates only the distinct scores matter (the curve's grid): they are given
        instead of the 10^7 rows, which the grid's ``numpy.unique`` would copy and sort.
        """
        t = self.table
        if t.X is None and t.codes is not None:
            present = np.bincount(t.codes[: self.ev.n_rows], minlength=t.distinct_s.size) > 0
            return t.distinct_s[present], None
        return t.s[: self.ev.n_rows], t.X


def analyze_direct(
    ev: EvalData,
    probes: Mapping[str, EvalData],
    *,
    estimator: DirectEstimator,
    alpha: float,
    mode: Mode,
    covariates: tuple[str, ...],
    n_folds: int,
    seed: int,
    transport_margin: float | None,
    only: Sequence[str] | None,
    settings: dict[str, Any],
    probe_correction: bool = True,
    progress: bool | None = None,
) -> Report:
    """The report of fresh draws of each policy (see :func:`cje.analyze`, which validates first).

    Parameters
    ----------
    ev : EvalData
        Fresh draws of each policy (calibration-only rows allowed).
    probes : Mapping[str, EvalData]
        Oracle-labelled probe slices per policy.
    estimator : DirectEstimator
    alpha, mode, covariates, n_folds, seed, transport_margin, progress
        As in :func:`cje.analyze`.
    only : sequence of str or None
        Report only these policies.
    settings : dict
        The run's options (:attr:`Report.settings`).
    probe_correction : bool
        Probe slices enter their policies' residual terms (:mod:`cje.pipeline.probes`).

    Returns
    -------
    Report
        Fewer than 4 labelled prompts: raw judge means marked ``UNCALIBRATED``.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=0)
    >>> ev = cje.load(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    >>> rep = analyze_direct(ev, {}, estimator=DirectEstimator(), alpha=0.05, mode="monotone",
    ...                      covariates=(), n_folds=5, seed=0, transport_margin=None, only=None,
    ...                      settings={})
    >>> rep.estimates[0].policy, rep.estimates[0].method
    ('base', 'direct')
    """
    notices = list(ev.notices)
    requested = mode
    if ev.label_probability is not None:
        mode = _check_design(ev, probes, covariates, estimator, mode, notices, settings)
    if getattr(estimator, "augment", False) and not _package_estimates(estimator):
        notices.append(
            f"{type(estimator).__name__} computes its own influence values, so the residual part "
            "of each policy's own labels keeps the prompts' small-sample factor and degrees of "
            "freedom (the package's direct estimator gives it its own): with fewer than about 30 "
            "own labels its intervals are too narrow (docs: Methods › The direct estimator).")
    shape = DirectShape(ev, probes, covariates, estimator, alpha, probe_correction)
    lab_prompt = np.zeros(ev.prompts.shape[0], dtype=bool)
    lab_prompt[ev.prompt_code[ev.labelled]] = True
    m_prompts = int(lab_prompt.sum())
    if m_prompts < MIN_LABELLED_PROMPTS:
        return _uncalibrated(shape, m_prompts, alpha, notices, settings, only)
    # only the labelled prompts' folds matter here (they depend on the labelled set alone), so
    # only they are hashed
    k, lab_folds, warns = fold_plan(ev.prompts[lab_prompt], np.ones(m_prompts, dtype=bool),
                                    n_folds, seed)
    fold_of_prompt = np.full(ev.prompts.shape[0], -1, dtype=np.int64)
    fold_of_prompt[lab_prompt] = lab_folds
    train = shape.table.train
    calibrator, caught = fit_calibrator(shape.table, fold_of_prompt[shape.table.cluster[train]],
                                        mode=mode, k=k, seed=seed)
    warns += caught
    if mode == "auto":
        notices.append(f"Calibration mode 'auto' chose '{calibrator.mode_}' (it keeps 'monotone' "
                       "unless 'two_stage' predicts the labels better, out of fold, by more than "
                       "one standard error).")
    return estimate(shape, calibrator, alpha=alpha, requested_mode=requested, covariates=covariates,
                    transport_margin=transport_margin, only=only, notices=notices, warns=warns,
                    excluded=ev.excluded, settings=settings, progress=progress,
                    dropped=ev.excluded_by_policy)


def _check_design(ev: EvalData, probes: Mapping[str, EvalData], covariates: tuple[str, ...],
                  estimator: DirectEstimator, mode: Mode, notices: list[str],
                  settings: dict[str, Any]) -> Mode:
    """What a non-uniform ``label_probability`` design supports: the monotone calibration
    (``"auto"`` becomes it, with a notice), the package's direct estimator, no probe slices.
    Anything else is refused rather than analysed as if the labels were uniform."""
    if probes:
        raise CJEInputError(
            "probes= cannot be combined with a non-uniform 'label_probability' column yet (the "
            "probe slice's labels are not part of the labelling design). Analyse the probe "
            "separately, or drop the column only if the labels are a uniform random sample.")
    if mode == "two_stage" or covariates:
        raise CJEInputError(
            "A non-uniform 'label_probability' column needs the monotone calibration (the two-"
            "stage index is not fitted with weights yet); got "
            f"mode={mode!r}{' with covariates' if covariates else ''}. Use mode='monotone' "
            "(or 'auto') without covariates.")
    if not _package_estimates(estimator):
        raise CJEInputError(
            f"A non-uniform 'label_probability' column is supported by the package's direct "
            f"estimator only; {type(estimator).__name__} does not take the weights 1/π.")
    n_lab = int(ev.n_labels)
    lp = ev.label_probability[ev.labelled]  # type: ignore[index]
    notices.append(
        f"Labels sampled with known probabilities (the 'label_probability' column, "
        f"{lp.min():.3g} to {lp.max():.3g} over the {n_lab} labelled rows): the calibration is "
        "weighted by 1/π and each policy's residual correction is the 1/π-weighted (Hájek) mean "
        "of its residuals (docs: Methods › Labels sampled with known probabilities).")
    settings["label_probability"] = True
    if mode == "auto":
        notices.append("Calibration mode 'auto' uses 'monotone' under a label_probability design "
                       "(the two-stage index is not fitted with weights yet).")
        return "monotone"
    return mode


def _uncalibrated(shape: DirectShape, m_prompts: int, alpha: float, notices: list[str],
                  settings: dict[str, Any], only: Sequence[str] | None) -> Report:
    """Fewer than 4 labelled prompts: raw judge means on the judge scale, clearly marked."""
    ev = shape.ev
    jlo, jhi = ev.judge_scale
    res = []
    reason = (
        f"UNCALIBRATED: only {m_prompts} labelled prompt(s) (at least {MIN_LABELLED_PROMPTS} are "
        f"needed); this is the raw judge mean on the judge scale ({jlo:g}, {jhi:g}), not an "
        "estimate of the label. Add oracle labels to calibrate."
    )
    for p, name in enumerate(ev.policies):
        if only is not None and name not in only:
            continue
        rows = shape._rows[p]
        s = ev.judge_score[rows]
        mean = float(s.mean())
        v, g = cluster_variance(s - mean, shape.table.cluster[rows])
        se = float(np.sqrt(v)) if g > 1 else float("nan")
        lo, hi = t_interval(mean, se, max(g - 1, 1), alpha)
        naive = shape.naive[p]
        res.append(
            PolicyEstimate(
                policy=name, estimate=mean, se=se, ci_low=lo, ci_high=hi, alpha=alpha,
                df=float(max(g - 1, 1)), n=int(s.size), n_prompts=g,
                n_labels=int(np.count_nonzero(ev.labelled[ev.policy_code == p])),
                var_if=v, var_cal=0.0, calibration_share=0.0, naive_estimate=naive[0],
                naive_ci_low=naive[1], naive_ci_high=naive[2],
                method="judge mean (uncalibrated)", status="UNCALIBRATED", reasons=(reason,),
                units="judge",
            )
        )
    return Report(
        estimates=tuple(res), pairs=(), audits=(), calibration=None,
        ranking=ranking_tiers(res, ()),  # no contrasts: nothing is shown to be separable
        judge_scale=ev.judge_scale, label_scale=ev.label_scale, alpha=alpha,
        notices=tuple(notices), warnings=(), excluded=dict(ev.excluded), settings=settings,
    )
