"""Logs of one logging policy with log-probabilities: the logging policy's on-policy value from
its own rows, each target's by the chosen estimator from importance-weighted logged rows
(optionally with the targets' fresh draws) (docs: Off-policy evaluation).

Under each calibration the shape builds one :class:`~cje.estimators.offpolicy.LoggedTarget` per
target and hands it to the estimator, so everything downstream of the calibrator — rewards,
SIMCal-W ordering and stacking, outcome models, the TMLE fluctuation, the stacking of DR
estimators, the residual augmentation — is refitted in every OUA jackknife replicate. The
replicates ask each estimator for its value alone (:meth:`~cje.estimators.registry.Estimator.value`:
no influence values, tail inflation or transport allowance, which only the full run reports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cje.calibration.reward import Mode, RewardCalibrator
from cje.calibration.weights import hajek_weights
from cje.data import EvalData, _dense_in_order
from cje.diagnostics.gates import (
    fresh_balance,
    fresh_balance_gate,
    fresh_covariate_gate,
    label_balance,
    label_balance_gate,
    overlap_gate,
    score_gap_z,
    worse_status,
)
from cje.diagnostics.overlap import (
    ESS_GATE,
    HILL_RESIDUAL,
    ess_fraction,
    hill_index,
    weight_summary,
)
from cje.errors import CJEInputError
from cje.estimators.direct import DirectEstimator, direct_estimate, direct_values
from cje.estimators.offpolicy import (
    IPS,
    SNIPS,
    CalibratedIPS,
    LoggedTarget,
    PolicyValue,
    residual_gap,
    residual_gap_influence,
    residual_gap_variance,
)
from cje.estimators.registry import Estimator
from cje.pipeline.core import (
    MIN_LABELLED_PROMPTS,
    PolicyRows,
    Table,
    distinct_rows,
    estimate,
    fit_calibrator,
    fold_plan,
    own_parts_summary,
)
from cje.pipeline.probes import ProbeUse, combine, score_balance
from cje.pipeline.summaries import from_unit, naive_judge_mean, to_unit, weight_tail
from cje.report import Report

__all__ = ["analyze_logged", "residual_on_stable"]


@dataclass(frozen=True, slots=True, eq=False)
class _Target:
    """A target policy's usable logged rows and its fresh draws (row indices of the table), and
    what does not change between calibrations."""

    name: str
    rows: np.ndarray  # usable logged rows
    log_w: np.ndarray  # λ on those rows
    w: np.ndarray  # Hájek weights
    fresh: np.ndarray  # its fresh-draw rows (may be empty)
    excluded: dict[str, int]
    stable_residual: bool  # oracle residual weighted by the stabilised weights
    used_codes: np.ndarray  # each logged row's position among the target's distinct values
    used: np.ndarray  # the target's distinct values
    fresh_count: np.ndarray  # fresh draws per prompt (at least 1)
    # (judge scores on [0, 1], prompt codes) of all its fresh draws, when only their labelled
    # ones are in the table (estimators of the logged rows: see analyze_logged)
    fresh_diag: tuple[np.ndarray, np.ndarray] | None = None
    # those fresh draws' prompt codes in the table (-1: a prompt without rows in the table), for
    # the fresh-balance check of a weighting level
    fresh_diag_cluster: np.ndarray | None = None
    # Welch's z of the judge scores of the rows without its log-probability against the rest
    missing_score_z: float = float("nan")
    # the same for the rows left out (on_missing="drop") for want of its fresh draws on their
    # prompt, against the rows kept
    no_fresh_score_z: float = float("nan")


def _take(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]``, as a read-only view (no copy) when the rows are one contiguous run, as they
    are for the logged rows and each target's fresh draws of the long table."""
    if rows.size and rows[-1] - rows[0] + 1 == rows.size and (np.diff(rows) == 1).all():
        v = a[rows[0]: rows[-1] + 1]
        v.flags.writeable = False
        return v
    return a[rows]


class LoggedShape:
    """The long table (logged rows, the targets' fresh draws, calibration-only rows, probes) and
    the estimator that turns each target's rows into influence values."""

    share_over_se2 = True

    def __init__(self, table: Table, fold: np.ndarray, role: np.ndarray, logged: EvalData,
                 targets: list[_Target], estimator: Estimator, probe_names: list[str],
                 n_clusters: int, k: int, alpha: float, probe_correction: bool = True):
        self.table, self.fold, self.k = table, fold, k
        self.estimator, self.targets, self.ev = estimator, targets, logged
        self.logged_rows = np.flatnonzero(role == 0)
        self.names = [logged.policies[0], *(t.name for t in targets)]
        self.judge_scale, self.label_scale = logged.judge_scale, logged.label_scale
        self.labelled_scores = from_unit(table.s[table.train], logged.judge_scale)
        self.n_clusters = n_clusters
        self.probe_names = probe_names
        self._probe_rows = [np.flatnonzero(role == 1000 + j) for j in range(len(probe_names))]
        self._lab = ~np.isnan(table.y)
        self.alpha = alpha
        # what does not change between calibrations, gathered once (the OUA jackknife re-runs
        # everything downstream of the calibrator K + 1 times)
        self._rows_of = {"logged": self._gather(self.logged_rows)}
        # one dict shared by the targets' caches: what is computed from rows they share (the
        # scaled oracle residual of a run: cje.estimators.offpolicy._shared), emptied after
        # each run (it would outlive the run's arrays: 16 MB at 10^6 rows)
        self._shared: dict[str, Any] = {}
        # and one kept for the analysis: what SIMCal-W takes from the rows without the weights
        self._static_shared: dict[str, Any] = {}
        self._static = [self._static_parts(tg) for tg in targets]
        # policy index -> its probe slice's rows, when the probe corrects its level (not for
        # the plug-in direct estimator, which has no residual term)
        plug_in = isinstance(estimator, DirectEstimator) and not estimator.augment
        self._probe_of = {p: self._probe_rows[probe_names.index(name)]
                          for p, name in enumerate(self.names)
                          if probe_correction and not plug_in and name in probe_names}
        # the full calibration's run, read by policy(): each policy's probe use
        self._used: dict[int, ProbeUse] = {}
        self._deleted: frozenset[int] = frozenset()
        # (gap, its SE, per-prompt influence totals) under the full calibration
        self._gap_parts: dict[str, tuple[float, float, np.ndarray]] = {}
        self._pred_of: RewardCalibrator | None = None  # the calibrator _pred holds predictions of
        self._pred: dict[frozenset[int], np.ndarray] = {}
        # what the targets' overlap diagnostics share (policy(): the logged rows' scores and
        # their histogram)
        self._diag_memo: dict[str, Any] = {}
        # under the full calibration (run(), _own_parts): policy index -> (own_ss, own_factor,
        # own_m) of its residual term's part on the labelled rows, read by policy(); and those
        # parts multiplied prompt by prompt, read by the contrasts
        self._own: dict[int, tuple[float, float, float]] = {}
        self.own_cross: np.ndarray | None = None

    def _gather(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        t = self.table
        codes, fold = _take(t.codes, rows), _take(self.fold, rows)
        # each row's flat (fold, distinct value) cell of a (K, U) table (np.take on it is ~6×
        # faster than indexing with the two arrays)
        return {"codes": codes, "fold": fold, "cell": fold * t.distinct_s.size + codes,
                "lab": _take(self._lab, rows), "label": _take(t.y, rows)}

    def _static_parts(self, tg: _Target) -> dict[str, Any]:
        t = self.table
        same = tg.rows.size == self.logged_rows.size and np.array_equal(tg.rows, self.logged_rows)
        # a target that uses every logged row shares the logging policy's arrays, and with them
        # each run's rewards and residuals (computed once per run, see run())
        parts: dict[str, Any] = dict(self._rows_of["logged"]) if same else self._gather(tg.rows)
        parts.update(cluster=_take(t.cluster, tg.rows), fresh_cluster=_take(t.cluster, tg.fresh),
                     fresh_fold=_take(self.fold, tg.fresh), fresh_codes=_take(t.codes, tg.fresh),
                     fresh_label=_take(t.y, tg.fresh),
                     cache={"cells": (parts["fold"], parts["codes"], t.distinct_s.size,
                                      parts["cell"]),  # LoggedTarget.at_cells' index
                            "shared": self._shared, "static": self._static_shared})
        return parts

    # ---- one run of everything downstream of the calibrator ----------------------------------
    def run(self, calibrator: RewardCalibrator,
            deleted: frozenset[int]) -> list[tuple[PolicyValue, float]]:
        """``(value, transport allowance)`` of the logging policy and every target under the
        calibration that deletes ``deleted``. The allowance (0 unless the target's residual uses
        the stabilised weights) is ``sign(gap)·sqrt(gap² + Var(gap))`` with ``gap``
        :func:`~cje.estimators.offpolicy.residual_gap` and ``Var(gap)``
        :func:`~cje.estimators.offpolicy.residual_gap_variance`: the skeleton adds its square to
        the variance and differences of it to the contrasts'."""
        self._deleted = deleted
        full, index = self._calibrations(calibrator, deleted)
        memo: dict[int, tuple[np.ndarray, ...]] = {}  # rows -> (reward, oof, resid, lab) this run
        out = [self._logging_value(full, index, memo)]
        out += [self._target_value(tg, st, full, index, memo)
                for tg, st in zip(self.targets, self._static, strict=True)]
        self._shared.clear()
        res = []
        for p, (value, gap, use) in enumerate(out):
            if use is not None and not deleted:
                self._used[p] = use
            res.append((value, gap))
        if not deleted:
            self._own_parts([v for v, _ in res])
        return res

    def _calibrations(self, calibrator: RewardCalibrator,
                      deleted: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        """The calibration without the folds ``deleted`` and its K out-of-fold versions, at the
        table's distinct values."""
        full = self._predict(calibrator, deleted)
        index = np.vstack([
            self._predict(calibrator, deleted | {k} if len(deleted | {k}) < self.k else deleted)
            for k in range(self.k)
        ])
        return full, index

    def _predict(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        """The calibration without the folds ``deleted`` at the table's distinct values. The
        runs ask for each one up to three times (``f^(−d)`` is run d's calibration and the full
        run's out-of-fold one for fold d; ``f^(−{d,k})`` serves runs d and k): kept when the
        table has at most 2^17 distinct values (1 + K + K(K−1)/2 tables, 16 at K = 5)."""
        if self._pred_of is not calibrator:
            self._pred_of, self._pred = calibrator, {}
        if deleted in self._pred:
            return self._pred[deleted]
        t = self.table
        out = calibrator.predictor(deleted)(t.distinct_s, t.distinct_X)
        if out.size <= 1 << 17:
            out.flags.writeable = False
            self._pred[deleted] = out
        return out

    def _probe_residual(self, p: int, full: np.ndarray) -> np.ndarray:
        """``Y − f(S)`` on policy ``p``'s probe rows under the calibration ``full``."""
        rows, t = self._probe_of[p], self.table
        return t.y[rows] - full[t.codes[rows]]

    def values(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        """The point estimates only, as :meth:`run` gives them (each OUA jackknife replicate):
        each estimator's :meth:`~cje.estimators.registry.Estimator.value`, without influence
        values or transport allowances."""
        self._deleted = deleted
        full, index = self._calibrations(calibrator, deleted)
        memo: dict[int, tuple[np.ndarray, ...]] = {}
        if 0 in self._probe_of:
            out = [self._logging_value(full, index, memo)[0].value]
        else:
            reward, _, resid, lab = self._rows(self._rows_of["logged"], full, index, memo)
            out = [float(direct_values(reward, resid, lab, np.zeros(reward.size, dtype=np.int64),
                                       1)[0])]
        for tg, st in zip(self.targets, self._static, strict=True):
            if self.names.index(tg.name) in self._probe_of:
                out.append(self._target_value(tg, st, full, index, memo)[0].value)
            else:
                out.append(self.estimator.value(self._target(tg, st, full, index, memo)))
        self._shared.clear()
        return np.array(out)

    @staticmethod
    def _rows(st: Mapping[str, np.ndarray], full: np.ndarray, index: np.ndarray,
              memo: dict[int, tuple[np.ndarray, ...]] | None = None) -> tuple[np.ndarray, ...]:
        """Calibrated reward, out-of-fold calibration, oracle residual (0 unlabelled) and the
        labelled flag of the rows ``st`` under one calibration; read-only, shared (``memo``)
        by the policies of one run that use the same rows."""
        c = st["codes"]
        if memo is not None and id(c) in memo:
            return memo[id(c)]
        reward = full[c]
        oof = np.take(index, st["cell"])  # f^(-fold(i))(S_i): the out-of-fold calibration
        lab = st["lab"]
        with np.errstate(invalid="ignore"):  # unlabelled rows: NaN − oof, replaced by 0
            resid = np.where(lab, st["label"] - oof, 0.0)
        for a in (reward, oof, resid):
            a.flags.writeable = False
        if memo is not None:
            memo[id(c)] = (reward, oof, resid, lab)
        return reward, oof, resid, lab

    def _logging_value(self, full: np.ndarray, index: np.ndarray,
                       memo: dict[int, tuple[np.ndarray, ...]] | None = None
                       ) -> tuple[PolicyValue, float, ProbeUse | None]:
        rows = self.logged_rows
        reward, _, resid, lab = self._rows(self._rows_of["logged"], full, index, memo)
        zero = np.zeros(rows.size, dtype=np.int64)
        est = direct_estimate(reward, resid, lab, zero, 1)
        if 0 not in self._probe_of:
            # its residual part (n/m)(e_i − ē) on the labelled rows (direct_estimate)
            e = resid[lab]
            part = (rows.size / e.size) * (e - e.mean()) if e.size else e
            return PolicyValue(float(est.values[0]), est.influence, own_part=part), 0.0, None
        value = PolicyValue(float(est.values[0]), est.influence)
        # its probe pools with its own labelled logged rows (cje.pipeline.probes)
        plug = direct_estimate(reward, resid, lab, zero, 1, augment=False)
        prow = self._probe_of[0]
        v, _, use = combine(PolicyValue(float(plug.values[0]), plug.influence),
                            value.value - float(plug.values[0]), est.influence - plug.influence,
                            int(est.n_labels[0]), self.table.cluster[rows],
                            self._probe_residual(0, full), self.table.cluster[prow])
        return v, 0.0, use

    def _target(self, tg: _Target, st: Mapping[str, Any], full: np.ndarray, index: np.ndarray,
                memo: dict[int, tuple[np.ndarray, ...]] | None) -> LoggedTarget:
        """What the estimator reads of target ``tg`` under one calibration."""
        reward, oof, resid, lab = self._rows(st, full, index, memo)
        return LoggedTarget(reward=reward, residual=resid, labelled=lab, weights=tg.w,
                            log_w=tg.log_w, oof=oof, label=st["label"], cluster=st["cluster"],
                            fold=st["fold"], codes=st["codes"],
                            stable_residual=tg.stable_residual, index=index,
                            distinct_s=self.table.distinct_s, full=full, used=tg.used,
                            used_codes=tg.used_codes, fresh_cluster=st["fresh_cluster"],
                            fresh_fold=st["fresh_fold"], fresh_codes=st["fresh_codes"],
                            fresh_label=st["fresh_label"], fresh_count=tg.fresh_count,
                            cache=st["cache"])

    def _target_value(self, tg: _Target, st: Mapping[str, Any], full: np.ndarray,
                      index: np.ndarray, memo: dict[int, tuple[np.ndarray, ...]] | None = None
                      ) -> tuple[PolicyValue, float, ProbeUse | None]:
        x = self._target(tg, st, full, index, memo)
        p = self.names.index(tg.name)
        if p in self._probe_of:
            return self._probe_value(p, tg, x)
        value = self.estimator.estimate(x)
        gap = 0.0
        if tg.stable_residual and value.stable is not None:
            # the allowance for the transport assumption, gap² + Var(gap), passed as one signed
            # number whose square it is (the skeleton adds the square to the variance)
            xs = replace(x, stable=value.stable.weights)
            g = residual_gap(xs)
            # the estimate's own residual term on the stabilised weights, when it has one
            phi = residual_gap_influence(xs, stable_term=value.residual_influence)
            v = residual_gap_variance(xs, x.cluster, influence=phi)
            gap = math.copysign(math.sqrt(g * g + v), g)
            if not self._deleted:
                # per-prompt totals of the gap's influence, scaled so that their sum of squares
                # is v: the contrasts difference them prompt by prompt
                n_g = int(np.count_nonzero(np.bincount(x.cluster)))  # distinct prompts
                tot = np.bincount(x.cluster, weights=phi, minlength=self.n_clusters) / phi.size
                self._gap_parts[tg.name] = (g, math.sqrt(v),
                                            tot * math.sqrt(n_g / (n_g - 1)) if n_g > 1 else 0 * tot)
        return value, gap, None

    def _probe_value(self, p: int, tg: _Target, x: LoggedTarget
                     ) -> tuple[PolicyValue, float, ProbeUse]:
        """A target whose probe slice corrects its level (:mod:`cje.pipeline.probes`): the
        estimator without its residual term, plus the probe's mean residual — in place of the
        weighted logged residual term, or pooled with the labelled fresh draws of the direct
        estimator. No transport gap: the residual term no longer rests on stabilised weights."""
        t = self.table
        if self.estimator.sample == "fresh" and isinstance(self.estimator, DirectEstimator):
            plug = DirectEstimator(augment=False).estimate(x)
            own = self.estimator.estimate(x)
            main = tg.fresh
            own_value, own_phi = own.value - plug.value, own.influence - plug.influence
            n_own = int(np.count_nonzero(~np.isnan(x.fresh_label)))
        else:
            plug = self.estimator.estimate(replace(x, residual=np.zeros_like(x.residual)))
            main = tg.rows
            own_value, own_phi, n_own = 0.0, np.zeros(main.size), 0
        prow = self._probe_of[p]
        v, _, use = combine(plug, own_value, own_phi, n_own, t.cluster[main],
                            self._probe_residual(p, x.full), t.cluster[prow])
        return v, 0.0, use

    # ---- what the report needs ---------------------------------------------------------------
    def gap_influence(self) -> dict[int, tuple[float, np.ndarray]]:
        """Policy index → (transport gap, per-prompt totals of its influence) of the targets
        whose residual uses the stabilised weights, under the full calibration (the last
        :meth:`run` without deleted folds)."""
        return {self.names.index(name): (g, tot) for name, (g, _, tot) in self._gap_parts.items()}

    def probe_rows(self) -> list[np.ndarray]:
        """Each probe slice's rows."""
        return self._probe_rows

    def probe_residuals(self, calibrator: RewardCalibrator) -> list[np.ndarray]:
        """``Y − f(S)`` on each probe slice under the full calibration."""
        f, t = calibrator.predictor(), self.table
        return [t.y[rows] - f(t.s[rows], None if t.X is None else t.X[rows])
                for rows in self._probe_rows]

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """The logged rows' judge scores and covariates."""
        rows, t = self.logged_rows, self.table
        return t.s[rows], None if t.X is None else t.X[rows]

    def _own_parts(self, values: Sequence[PolicyValue]) -> None:
        """Each policy's residual term on the labelled rows (:attr:`PolicyValue.own_part`)
        summed per prompt, with its own small-sample factor and effective labelled prompts,
        for :meth:`policy`; and the parts of two policies multiplied prompt by prompt
        (``own_cross``, for the paired contrasts: the targets' residual terms rest on the same
        labelled logged rows). As a direct policy's own labels (docs: Methods › The direct
        estimator): a residual term resting on a few prompts that hold most labels gets their
        factor and degrees of freedom, not the target's prompts' (``simulations/results/
        independent_clusters.md``). None for a probe-corrected level or an estimator that gives
        no part (the direct estimator on the fresh draws, a user's estimator)."""
        parts, n = {}, np.zeros(len(self.names), dtype=np.int64)
        for p, value in enumerate(values):
            if value.own_part is None or p in self._probe_of:
                continue
            rows = self.logged_rows if p == 0 else self.targets[p - 1].rows
            lab = self._lab[rows]
            part = value.own_part
            if part.size == 0 or part.size != int(np.count_nonzero(lab)):
                continue
            parts[p] = (part, self.table.cluster[rows][lab])
            n[p] = rows.size
        self._own, self.own_cross = (own_parts_summary(parts, n, len(self.names)) if parts
                                     else ({}, None))

    def _fresh_balance(self, tg: _Target, x: np.ndarray | None = None,
                       xf: np.ndarray | None = None) -> tuple[float, float, float]:
        """:func:`~cje.diagnostics.gates.fresh_balance` of target ``tg`` for a quantity of its
        kept logged rows ``x`` and of its fresh draws ``xf`` (default: the judge scores): per
        prompt of the logged rows, their count, ``Σ w`` and ``Σ w·x``, and the fresh draws'
        mean."""
        t, g = self.table, self.n_clusters
        if x is None and tg.fresh_diag is not None and tg.fresh_diag_cluster is not None:
            # a weighting level: all its fresh draws (only the labelled ones are in the table)
            xf, fc = tg.fresh_diag[0], tg.fresh_diag_cluster
            on = fc >= 0
            if not on.all():
                xf, fc = xf[on], fc[on]
        else:
            fc = _take(t.cluster, tg.fresh)
            if x is None:
                xf = _take(t.s, tg.fresh)
        s_l, cl, n_l = self._logged_side(tg)
        if x is None:
            x = s_l
        cnt = np.bincount(fc, minlength=g)
        fbar = np.divide(np.bincount(fc, weights=xf, minlength=g), cnt, out=np.zeros(g),
                         where=cnt > 0)
        # the logged rows of the prompts with fresh draws (all of a DR level's kept rows; with
        # every prompt drawn, no copy): whether some are left out is read per prompt
        w, wx = tg.w, tg.w * x
        if n_l.size == cnt.size and not bool(((n_l > 0) & (cnt == 0)).any()):
            n_g = n_l  # every row's prompt has fresh draws: its rows per prompt as counted
        else:
            has = (cnt > 0)[cl]
            if not has.all():
                cl, w, wx = cl[has], w[has], wx[has]
            n_g = np.bincount(cl, minlength=g).astype(float)
        return fresh_balance(n_g, np.bincount(cl, weights=w, minlength=g),
                             np.bincount(cl, weights=wx, minlength=g), fbar)

    def _logged_side(self, tg: _Target) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Judge scores (0–1) and prompts of target ``tg``'s kept logged rows, and their rows
        per prompt (float), for :meth:`_fresh_balance`: one set for all the targets that keep
        every logged row (read-only views where the rows are contiguous)."""
        every = tg.rows.size == self.logged_rows.size and np.array_equal(tg.rows, self.logged_rows)
        if every and "fresh_balance_logged" in self._diag_memo:
            return self._diag_memo["fresh_balance_logged"]
        rows, t = (self.logged_rows if every else tg.rows), self.table
        cl = _take(t.cluster, rows)
        n_l = np.bincount(cl, minlength=self.n_clusters).astype(float)
        n_l.flags.writeable = False
        out = (_take(t.s, rows), cl, n_l)
        if every:
            self._diag_memo["fresh_balance_logged"] = out
        return out

    def _fresh_covariate_balance(self, tg: _Target) -> dict[str, tuple[float, float, float]]:
        """:meth:`_fresh_balance` of each covariate of target ``tg`` (its fresh draws' mean
        against its raw-weighted logged rows'), when the calibration read covariates (a
        two-stage map); empty otherwise."""
        X, Xf = self.table.covariates_of(tg.rows), self.table.covariates_of(tg.fresh)
        if X is None or Xf is None or getattr(self._pred_of, "mode_", None) != "two_stage":
            return {}
        return {name: self._fresh_balance(tg, X[:, j], Xf[:, j])
                for j, name in enumerate(list(self.ev.covariates)[:X.shape[1]])}

    def _label_balance(self) -> tuple[dict[str, float], str | None]:
        """:func:`~cje.diagnostics.gates.label_balance` of the labelled logged rows against all
        logged rows (once: every level whose residual term reads those labels shares it)."""
        if "label_balance" not in self._diag_memo:
            t, rows = self.table, self.logged_rows
            s = from_unit(t.s[rows], self.ev.judge_scale)
            lab = self._lab[rows]
            mean_all = float(s.mean())
            self._diag_memo["label_balance"] = label_balance_gate(
                *label_balance(s[lab], t.cluster[rows][lab], mean_all, int(s.size),
                               float(s.var(ddof=1))), mean_all, logged=True) \
                if lab.sum() >= 2 else ({}, None)
        return self._diag_memo["label_balance"]

    def _probe_balance(self, p: int, s: np.ndarray, cluster: np.ndarray,
                       w: np.ndarray | None = None) -> tuple[str, list[str], dict[str, float]]:
        """When policy ``p``'s probe slice corrects its level: does the probe score like a random
        sample of its responses (``s``, 0–1 scale, and their prompts: the logged rows for the
        logging policy, a target's fresh draws, or a target's kept logged rows with their
        Hájek weights ``w`` when it has no fresh draws)?
        :func:`~cje.pipeline.probes.score_balance`, as for direct data; the status, reasons and
        diagnostics to add (none without a probe)."""
        if p not in self._probe_of or self._used.get(p) is None:
            return "OK", [], {}
        prow, scale = self._probe_of[p], self.ev.judge_scale
        diff, z, why = score_balance(from_unit(self.table.s[prow], scale), self.table.cluster[prow],
                                     from_unit(s, scale), cluster, w)
        diag = {"probe_score_shift": diff, "probe_score_z": z}
        return ("CAUTION", [why], diag) if why else ("OK", [], diag)

    def policy(self, p: int, value: PolicyValue, gap: float) -> PolicyRows:
        """The logging policy (``p = 0``) or a target: rows, naive mean, overlap diagnostics and
        the overlap gates (for a DR estimate also: do its fresh draws score like its weighted
        logged rows; :func:`~cje.diagnostics.gates.fresh_balance`)."""
        t, ev, alpha = self.table, self.ev, self.alpha
        sample_fresh = self.estimator.sample == "fresh"
        use = self._used.get(p) if p in self._probe_of else None
        probe_cluster = t.cluster[self._probe_of[p]] if use is not None else None
        if p == 0:
            rows = self.logged_rows
            own = self._own.get(p, (0.0, 0.0, 0.0))
            st, why_p, d0 = self._probe_balance(p, t.s[rows], t.cluster[rows])
            if use is None:  # its residual term reads the labelled logged rows
                more, why = self._label_balance()
                d0 = {**d0, **more}
                if why:
                    st, why_p = worse_status(st, "CAUTION"), [*why_p, why]
            return PolicyRows(
                cluster=_with(t.cluster[rows], probe_cluster),
                n_labels=int(self._lab[rows].sum()), method="on-policy (logged)",
                naive=naive_judge_mean(t.s[rows], t.cluster[rows], alpha, ev.label_scale),
                scores=ev.judge_score[rows], probe=use, covariates=t.covariates_of(rows),
                status=st, reasons=why_p, diagnostics=d0,
                own_ss=own[0], own_factor=own[1], own_m=own[2])
        tg = self.targets[p - 1]
        rows = tg.fresh if sample_fresh else tg.rows
        # the raw judge mean on the target's own responses (its fresh draws), or the
        # Hájek-weighted logged mean without fresh draws
        f_s, f_cl = tg.fresh_diag or (t.s[tg.fresh], t.cluster[tg.fresh])
        if f_s.size:
            naive = naive_judge_mean(f_s, f_cl, alpha, ev.label_scale)
        else:
            naive = naive_judge_mean(t.s[tg.rows], t.cluster[tg.rows], alpha, ev.label_scale,
                                     w=tg.w)
        width = ev.label_scale[1] - ev.label_scale[0]
        stable = value.stable
        s_target = from_unit(f_s, ev.judge_scale) if f_s.size else None
        if tg.rows.size == self.logged_rows.size and np.array_equal(tg.rows, self.logged_rows):
            # every logged row: one array of their scores for all such targets (weight_summary
            # counts its histogram once), views where the rows are contiguous
            if "s_logged" not in self._diag_memo:
                self._diag_memo["s_logged"] = _take(ev.judge_score, self.logged_rows)
            s_logged = self._diag_memo["s_logged"]
            logp_target = _take(ev.logprobs[tg.name], self.logged_rows)
        else:
            s_logged, logp_target = ev.judge_score[tg.rows], ev.logprobs[tg.name][tg.rows]
        # each weight vector sorted once: the overlap diagnostics and the weight tail read it
        sorted_raw = np.sort(tg.w)
        sorted_stable = None if stable is None else np.sort(stable.weights)
        diag: dict[str, Any] = dict(weight_summary(
            tg.w, None if stable is None else stable.weights,
            logp_target=logp_target, s_logged=s_logged,
            s_target=s_target, scale=ev.judge_scale, log_w=tg.log_w, sorted_raw=sorted_raw,
            sorted_stable=sorted_stable, memo=self._diag_memo,
        ))
        diag["n_eff_raw"] = diag["ess_raw"] * tg.rows.size
        diag["n_excluded"] = int(sum(tg.excluded.values()))
        for why, cnt in tg.excluded.items():
            diag[f"excluded_{why.replace(' ', '_')}"] = cnt
        if tg.excluded.get("missing log-probability"):
            diag["missing_score_z"] = tg.missing_score_z
        if tg.excluded.get("no fresh draws for the prompt"):
            diag["no_fresh_score_z"] = tg.no_fresh_score_z
        diag["weight_tail_raw"] = weight_tail(tg.w, sorted_raw)
        # the labelled rows' Kish ESS (Σ w)² / Σ w²: how many rows a raw-weighted residual rests on
        w_lab = tg.w[self._lab[tg.rows]]
        ss = float((w_lab * w_lab).sum())
        diag["n_eff_labelled"] = float(w_lab.sum()) ** 2 / ss if ss > 0 else 0.0
        if tg.stable_residual and use is None and tg.name in self._gap_parts:
            g, g_se, _ = self._gap_parts[tg.name]
            diag["transport_gap"] = g * width
            diag["transport_gap_se"] = g_se * width
        if stable is not None:
            diag["weight_tail_stable"] = weight_tail(stable.weights, sorted_stable)
            diag["var_cap_gamma"] = stable.gamma
            if stable.fallbacks:
                diag["simcal_fallback"] = "; ".join(stable.fallbacks)
            mix = stable.mixture.mean(axis=0)
            diag.update({"simcal_increasing": float(mix[0]), "simcal_decreasing": float(mix[1]),
                         "simcal_baseline": float(mix[2]),
                         "residual_weights": "stable" if tg.stable_residual else "raw"})
        if use is not None:
            diag["residual_weights"] = "probe"  # the probe's mean residual replaced the term
        if value.mixture is not None:
            diag.update({f"stack_{n.replace('-', '_')}": float(a)
                         for n, a in zip(value.parts, value.mixture, strict=True)})
        status, reasons = overlap_gate(self.estimator.overlap, diag, tg.rows.size)
        if getattr(self.estimator, "needs_fresh", False) and not sample_fresh and tg.fresh.size:
            # the DR level follows its fresh draws: do they score like the weighted logs?
            more, why = fresh_balance_gate(*self._fresh_balance(tg), ev.judge_scale)
            diag.update(more)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
            # the two-stage map reads the fresh draws' covariates too: measured like the logs'?
            for name, (fm, lm, z) in self._fresh_covariate_balance(tg).items():
                more, why = fresh_covariate_gate(name, fm, lm, z)
                diag.update(more)
                if why:
                    status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        elif (isinstance(self.estimator, (IPS, SNIPS, CalibratedIPS)) and tg.fresh_diag is not None
              and tg.fresh_diag[0].size):
            # a weighting level with the target's fresh draws given: do its weighted logs score
            # like the target's own responses? (the weights or their log-probabilities if not)
            more, why = fresh_balance_gate(*self._fresh_balance(tg), ev.judge_scale,
                                           weighting=True)
            diag.update(more)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        if use is None and not sample_fresh:  # its residual term reads the labelled logged rows
            more, why = self._label_balance()
            diag.update(more)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        # a probe that corrects it: does it score like the target's fresh draws, or without
        # them like its importance-weighted logged rows?
        st, why_p, more = (self._probe_balance(p, f_s, f_cl) if f_s.size else
                           self._probe_balance(p, t.s[tg.rows], t.cluster[tg.rows], tg.w))
        diag.update(more)
        status, reasons = worse_status(status, st), [*reasons, *why_p]
        own = self._own.get(p, (0.0, 0.0, 0.0))
        return PolicyRows(
            cluster=_with(t.cluster[rows], probe_cluster), n_labels=int(self._lab[rows].sum()),
            method=self.estimator.method, naive=naive,
            scores=s_target if s_target is not None else ev.judge_score[tg.rows],
            status=status, reasons=reasons, diagnostics=diag, probe=use,
            covariates=t.covariates_of(rows), own_ss=own[0], own_factor=own[1], own_m=own[2])


def _cluster_codes(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Prompt code of every row of the long table and the distinct prompts, numbered in order of
    first appearance over the rows (as ``pandas.factorize`` of the concatenated ids would).

    ``parts``: per block of rows, its distinct ids and each row's code into them. Only distinct
    ids are hashed as strings (each block's in order of first appearance among its rows); the
    rows themselves are coded through integers.
    """
    import pandas as pd

    firsts, local = [], []
    for uniq, codes in parts:
        uniq = np.asarray(uniq, dtype=object)
        if _dense_in_order(codes):  # what pandas.factorize would return: the codes themselves
            lc, first = codes, uniq[: int(codes.max(initial=-1)) + 1]
        else:
            lc, used = pd.factorize(codes, sort=False)  # integer codes, in first-appearance order
            first = uniq[used]
        firsts.append(first)
        local.append(lc)
    ref = firsts[0]
    if all(f.size <= ref.size and np.array_equal(f, ref[: f.size]) for f in firsts[1:]):
        # every block's ids are the first block's, in its order (the targets' fresh draws of the
        # logged prompts): the factorisation of the concatenation would number the first block
        # 0, 1, 2, … and give the others the same numbers; no string needs hashing
        return np.concatenate(local).astype(np.int64, copy=False), ref
    gcode, prompts = pd.factorize(np.concatenate(firsts), sort=False)
    cluster = np.empty(sum(c.size for c in local), dtype=np.int64)
    at = off = 0
    for lc, first in zip(local, firsts, strict=True):
        cluster[at: at + lc.size] = gcode[off: off + first.size][lc]
        at, off = at + lc.size, off + first.size
    return cluster, np.asarray(prompts, dtype=object)


def _codes_in(prompts: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Position of each of ``ids`` among the table's ``prompts`` (-1 where absent); no string is
    hashed when ``ids`` are the first of ``prompts`` in order (the fresh draws of the logged
    prompts)."""
    if ids.size <= prompts.size and np.array_equal(ids, prompts[: ids.size]):
        return np.arange(ids.size, dtype=np.int64)
    import pandas as pd

    return pd.Index(prompts).get_indexer(ids).astype(np.int64)


def _with(cluster: np.ndarray, probe_cluster: np.ndarray | None) -> np.ndarray:
    """The prompts of a policy's rows, then its probe rows' (when the probe corrects it)."""
    return cluster if probe_cluster is None else np.concatenate([cluster, probe_cluster])


def _note_unmatched_fresh(notices: list[str], name: str, frows: np.ndarray, cluster: np.ndarray,
                          logged_rows: np.ndarray, n_prompts: int) -> None:
    """Say so when some of a target's fresh draws are on prompts without logged rows: a DR
    estimate averages the fresh draws of the logged prompts only (found by the hostile-input
    check: nothing said so, while the raw judge mean beside it used them all)."""
    on_logged = np.zeros(n_prompts, dtype=bool)
    on_logged[cluster[logged_rows]] = True
    extra = ~on_logged[cluster[frows]]
    if extra.any():
        n_prompts_extra = np.unique(cluster[frows][extra]).size
        notices.append(
            f"{int(extra.sum())} fresh draws of {name!r} are on {n_prompts_extra} prompt(s) "
            "without logged rows: the DR average uses the fresh draws of the logged prompts "
            "only; these count in its raw judge mean and judge-score affinity (and, where "
            "labelled, in the calibration).")


def residual_on_stable(w: np.ndarray, residual_weights: str = "auto") -> bool:
    """Whether a target's oracle residual term is weighted by the stabilised weights.

    ``"raw"`` / ``"stable"`` as asked. ``"auto"``: stabilised when the raw weights' ESS fraction
    is below :data:`~cje.diagnostics.overlap.ESS_GATE` (10%) **or** their Hill tail index is below
    :data:`~cje.diagnostics.overlap.HILL_RESIDUAL` (1: the largest weights dominate the sample
    mean, so a raw-weighted residual rests on a few labelled rows); raw otherwise. The estimate's
    interval then carries the allowance ``gap² + Var(gap)``
    (:func:`~cje.estimators.offpolicy.residual_gap`,
    :func:`~cje.estimators.offpolicy.residual_gap_variance`) and the overlap gate names the
    assumption. Evidence: ``simulations/results/study_tails.md``.

    Parameters
    ----------
    w : numpy.ndarray
        The target's raw (Hájek) weights.
    residual_weights : {"auto", "raw", "stable"}

    Returns
    -------
    bool

    Examples
    --------
    >>> from scipy.stats import norm
    >>> light = np.exp(0.8 * norm.ppf((np.arange(200) + 0.5) / 200))   # ESS 55%, Hill 2.89
    >>> residual_on_stable(light), residual_on_stable(light, "stable")
    (False, True)
    >>> heavy = np.r_[np.ones(189), 1.3 ** np.arange(11)]   # ESS 46%, Hill 0.69
    >>> residual_on_stable(heavy)
    True
    """
    if residual_weights != "auto":
        return residual_weights == "stable"
    hill = hill_index(w)
    return bool(ess_fraction(w) < ESS_GATE or (hill == hill and hill < HILL_RESIDUAL))


def analyze_logged(
    logged: EvalData,
    fresh: EvalData | None,
    probes: Mapping[str, EvalData],
    *,
    estimator: Any,
    alpha: float,
    mode: Mode,
    covariates: tuple[str, ...],
    n_folds: int,
    seed: int,
    transport_margin: float | None,
    only: Sequence[str] | None,
    on_missing: str,
    settings: dict[str, Any],
    residual_weights: str = "auto",
    var_cap: float | None = None,
    mrdr_omega: str = "w",
    probe_correction: bool = True,
    progress: bool | None = None,
) -> Report:
    """Estimates of every target policy's value from logged data (see :func:`cje.analyze`,
    which validates every input first).

    Parameters
    ----------
    logged : EvalData
        The logging policy's rows with ``logprobs["base"]`` and one ``logprobs[target]`` per
        target policy (calibration-only rows allowed).
    fresh : EvalData, callable or None
        Fresh draws of the target policies (needed by estimators with ``needs_fresh``), or a
        function without arguments that loads them: then nothing outside this function holds
        them, and they are freed once the long table has their rows.
    probes : Mapping[str, EvalData]
        Oracle-labelled probe slices per policy, for the transport audits and (with
        ``probe_correction``) the policies' residual terms.
    estimator : str or Estimator
        A registered name, ``"auto"``, or an estimator object.
    alpha, mode, covariates, n_folds, seed, transport_margin, on_missing, residual_weights
        As in :func:`cje.analyze`.
    only : sequence of str or None
        Report only these policies (:func:`cje.analyze`'s ``policies``).
    settings : dict
        The run's options, stored in :attr:`Report.settings`.
    var_cap, mrdr_omega
        Hyper-parameters of an estimator given by name.
    probe_correction : bool
        As in :func:`cje.analyze` (:mod:`cje.pipeline.probes`).
    progress : bool, optional
        As in :func:`cje.analyze`.

    Returns
    -------
    Report
        The logging policy's on-policy value, then each target's.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_offpolicy_eval(500, rng=0)
    >>> logged = cje.load(sim.logged, judge_scale=(0, 1), label_scale=(0, 1))
    >>> rep = analyze_logged(logged, None, {}, estimator="calibrated-ips", alpha=0.05,
    ...                      mode="monotone", covariates=(), n_folds=5, seed=0,
    ...                      transport_margin=None, only=None, on_missing="raise", settings={})
    >>> [(e.policy, e.method) for e in rep.estimates[:2]]
    [('base', 'on-policy (logged)'), ('mild', 'calibrated-ips')]
    >>> round(rep["far"].estimate, 3), rep["far"].status   # truth 0.711; poor overlap
    (0.65, 'CAUTION')
    """
    import pandas as pd

    from cje.estimators.registry import resolve

    notices = list(logged.notices)
    warns: list[str] = []
    if callable(fresh):
        fresh = fresh()
    if len(logged.policies) != 1:
        raise CJEInputError(
            f"Logged data must come from one logging policy; it has {list(logged.policies)}. "
            "Pass each target policy's log-probabilities as columns 'logprob[<policy>]' of the "
            "logging policy's rows."
        )
    base = logged.policies[0]
    if "base" not in logged.logprobs:
        raise CJEInputError(
            "Logged data needs the logging policy's log-probabilities: a 'logprob_base' column "
            "(cje-eval: 'base_policy_logprob'), plus 'logprob[<target>]' per target policy."
        )
    target_names = [t for t in logged.logprobs if t != "base"]
    if not target_names:
        raise CJEInputError(
            "Logged data has no target policies: add a 'logprob[<target>]' column of each "
            "target's log-probability of the logged response (cje-eval: 'target_policy_logprobs')."
        )
    if only is not None:
        for pol in only:
            if pol != base and pol not in target_names:
                raise CJEInputError(
                    f"Policy {pol!r} is neither the logging policy {base!r} nor a target with "
                    f"log-probabilities ({target_names})."
                )
        target_names = [t for t in target_names if t in only]
    est = resolve(estimator, logged=True, fresh=fresh is not None, var_cap=var_cap,
                  mrdr_omega=mrdr_omega)
    if estimator == "auto":
        notices.append(f"estimator 'auto' chose '{est.name}' "
                       f"({'fresh draws given' if fresh is not None else 'no fresh draws'}).")
    if est.needs_fresh and fresh is None:
        raise CJEInputError(
            f"estimator={est.name!r} needs fresh draws of each target policy (fresh_draws=, "
            "CLI --fresh-draws DIR); without them use 'calibrated-ips', 'snips' or 'ips'."
        )

    # ---- one long table: logged rows, target fresh draws (the IPS family: the labelled ones),
    # calibration rows, probes ---------------------------------------------------------------
    # prompt ids of each block of the long table, as (distinct ids, code per row)
    parts_pid = [(logged.prompts, logged.prompt_code)]
    parts_s, parts_y = [logged.judge_score], [logged.oracle_label]
    parts_X = [np.column_stack([logged.covariates[c] for c in covariates])] if covariates else []
    role = [np.where(logged.policy_code >= 0, 0, -1)]  # 0 logged, -1 calibration-only
    fresh_diag: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # role -> a target's fresh draws
    if fresh is not None:
        ignored = [p for p in fresh.policies if p not in target_names]
        if base in ignored:
            notices.append(
                f"The fresh draws of the logging policy {base!r} were not used: its logged rows "
                "are its on-policy sample (cje-eval's files repeat them)."
            )
        other = [p for p in ignored if p != base]
        if other:
            notices.append(f"Fresh draws of {other} were ignored: they have no log-probabilities "
                           "in the logged data.")
        code_of = {p: i + 1 for i, p in enumerate(target_names)}
        role_of = np.array([code_of.get(p, -2) for p in fresh.policies] + [-2], dtype=np.int64)
        fresh_role = role_of[fresh.policy_code]  # calibration-only rows (-1) map to -2 too
        sel = fresh_role > 0
        if not est.needs_fresh:
            # the IPS family reads a target's fresh draws only for its diagnostics (raw judge
            # mean, judge affinity, the level gate's scores: kept per target here) and their
            # labels, which train the calibrator: only the labelled draws enter the long table
            # the targets with fresh draws, ascending (np.unique of the roles 1..T, by counting)
            for r in np.flatnonzero(np.bincount(fresh_role[sel], minlength=1)).tolist():
                at = np.flatnonzero(fresh_role == r)
                fresh_diag[r] = (to_unit(fresh.judge_score[at], logged.judge_scale),
                                 fresh.prompt_code[at])
            sel &= ~np.isnan(fresh.oracle_label)
        parts_pid.append((fresh.prompts, fresh.prompt_code[sel]))
        parts_s.append(fresh.judge_score[sel])
        parts_y.append(fresh.oracle_label[sel])
        if covariates:
            parts_X.append(np.column_stack([fresh.covariates[c][sel] for c in covariates]))
        role.append(fresh_role[sel])
        del fresh_role, sel
    fresh_prompts = None if fresh is None else fresh.prompts
    del fresh  # its rows are in the blocks now (freed here when the caller passed a loader)
    probe_names = list(probes)
    for j, pol in enumerate(probe_names):
        pr = probes[pol]
        keep = np.flatnonzero(pr.labelled)
        parts_pid.append((np.array([f"\x00probe:{pol}:{p}" for p in pr.prompts], dtype=object),
                          pr.prompt_code[keep]))
        parts_s.append(pr.judge_score[keep])
        parts_y.append(pr.oracle_label[keep])
        if covariates:
            parts_X.append(np.column_stack([pr.covariates[c][keep] for c in covariates]))
        role.append(np.full(keep.size, 1000 + j, dtype=np.int64))
    cluster, prompts = _cluster_codes(parts_pid)
    # the fresh draws kept for a weighting level's diagnostics: their prompts' codes in the table
    fresh_table_code = (_codes_in(prompts, np.asarray(fresh_prompts, dtype=object))
                        if fresh_diag else None)
    s = to_unit(np.concatenate(parts_s), logged.judge_scale)
    y = to_unit(np.concatenate(parts_y), logged.label_scale)
    X = np.vstack(parts_X) if covariates else None
    role_all = np.concatenate(role)
    is_probe = role_all >= 1000
    train = np.flatnonzero(~np.isnan(y) & ~is_probe)
    codes, distinct_s, distinct_X = distinct_rows(s, X, always=True)
    table = Table(s=s, y=y, X=X, cluster=cluster, train=train, codes=codes,
                  distinct_s=distinct_s, distinct_X=distinct_X)
    # the blocks live on in the table; their copies would outlive the analysis
    del parts_pid, parts_s, parts_y, parts_X, role, is_probe

    lab_prompt = np.zeros(len(prompts), dtype=bool)
    lab_prompt[cluster[train]] = True
    m_prompts = int(lab_prompt.sum())
    if m_prompts < MIN_LABELLED_PROMPTS:
        raise CJEInputError(
            f"Off-policy estimates need a calibrated reward: the logged data has oracle labels on "
            f"{m_prompts} prompt(s), at least {MIN_LABELLED_PROMPTS} are needed. Label a random "
            "slice of the logged responses (5–25% is typical)."
        )
    if type(est) in (IPS, SNIPS):
        # they read a row's fold only through its oracle residual (labelled rows), and the
        # labelled prompts' folds depend on the labelled set alone (cje.data.prompt_folds): only
        # those prompts are hashed; the others get fold 0, which nothing reads
        k, lab_folds, fold_warns = fold_plan(prompts[lab_prompt], np.ones(m_prompts, dtype=bool),
                                             n_folds, seed)
        fold_of_prompt = np.zeros(len(prompts), dtype=np.int64)
        fold_of_prompt[lab_prompt] = lab_folds
    else:
        k, fold_of_prompt, fold_warns = fold_plan(prompts, lab_prompt, n_folds, seed)
    warns += fold_warns
    fold = fold_of_prompt[cluster]

    # ---- targets: weights, exclusions, fresh draws -------------------------------------------
    logged_rows = np.flatnonzero(role_all == 0)
    lp_base = logged.logprobs["base"][logged_rows]  # logged rows come first in the long table
    targets: list[_Target] = []
    all_rows: tuple[np.ndarray, Any] | None = None  # distinct values of all the logged rows
    for i, name in enumerate(target_names):
        lp_t = logged.logprobs[name][logged_rows]
        ok = ~np.isnan(lp_t)
        excluded = {}
        miss_z = fresh_z = float("nan")
        if (~ok).any():
            excluded["missing log-probability"] = int((~ok).sum())
            s_l = logged.judge_score[logged_rows]
            sm, sk = s_l[~ok], s_l[ok]
            miss_z = score_gap_z(sm.size, float(sm.sum()), float(sm @ sm), sk.size, float(sk.sum()),
                                 float(sk @ sk))
        frows = np.flatnonzero(role_all == i + 1)
        if est.needs_fresh:
            if frows.size == 0:
                raise CJEInputError(
                    f"estimator={est.name!r} needs fresh draws of target {name!r}, and there are "
                    f"none; add '{name}_responses.jsonl' (or rows with policy={name!r}) to the "
                    "fresh draws, or use 'calibrated-ips'."
                )
            has = np.zeros(len(prompts), dtype=bool)
            has[cluster[frows]] = True
            miss = ok & ~has[cluster[logged_rows]]
            if est.sample == "logged":
                _note_unmatched_fresh(notices, name, frows, cluster, logged_rows, len(prompts))
            if miss.any() and est.sample == "logged":
                if on_missing == "raise":
                    r = int(np.flatnonzero(miss)[0])
                    raise CJEInputError(
                        f"Target {name!r} has no fresh draws for prompt_id="
                        f"{logged.prompt_id[logged_rows[r]]!r} "
                        f"(logged row {r}; {int(miss.sum())} logged rows lack them). DR needs the "
                        "target's fresh draws on every logged prompt: add them, or pass "
                        "on_missing='drop' (CLI --drop-missing) to exclude those rows (counted)."
                    )
                excluded["no fresh draws for the prompt"] = int(miss.sum())
                ok &= ~miss
                s_l = logged.judge_score[logged_rows]
                sm, sk = s_l[miss], s_l[ok]
                fresh_z = score_gap_z(sm.size, float(sm.sum()), float(sm @ sm), sk.size,
                                      float(sk.sum()), float(sk @ sk))
        if not ok.any():
            raise CJEInputError(
                f"Target {name!r} has no usable logged rows (every row lacks its log-probability"
                f"{' or fresh draws' if est.needs_fresh else ''})."
            )
        lw = (lp_t - lp_base)[ok]
        rows, w = logged_rows[ok], hajek_weights(lw)
        if ok.all():  # every logged row: the same distinct values as the other such targets
            if all_rows is None:
                all_rows = pd.factorize(codes[rows], sort=True)
            sub, used = all_rows
        else:
            sub, used = pd.factorize(codes[rows], sort=True)
        targets.append(_Target(
            name=name, rows=rows, log_w=lw, w=w, fresh=frows, excluded=excluded,
            stable_residual=est.stabilised and residual_on_stable(w, residual_weights),
            used_codes=sub, used=np.asarray(used),
            fresh_count=np.maximum(np.bincount(cluster[frows], minlength=len(prompts)), 1),
            fresh_diag=fresh_diag.get(i + 1),
            fresh_diag_cluster=(fresh_table_code[fresh_diag[i + 1][1]]
                                if fresh_table_code is not None and i + 1 in fresh_diag else None),
            missing_score_z=miss_z, no_fresh_score_z=fresh_z))

    # ---- calibrate, estimate, report ---------------------------------------------------------
    calibrator, caught = fit_calibrator(table, fold[train], mode=mode, k=k, seed=seed)
    warns += caught
    shape = LoggedShape(table, fold, role_all, logged, targets, est, probe_names, len(prompts),
                        k, alpha, probe_correction)
    # what the shape does not keep, freed before the estimation's own arrays are made
    del role_all, lp_base, fold_of_prompt, lab_prompt, all_rows
    lp_t = None  # (unbound when only the logging policy is reported: policies=[base])
    # logged rows dropped as invalid (on_invalid="drop") are missing from every level, the
    # logging policy's and each target's: each is judged by their share of the logged rows
    gone = sum(int(n) for n in logged.excluded_by_policy.values())
    return estimate(shape, calibrator, alpha=alpha, requested_mode=mode, covariates=covariates,
                    transport_margin=transport_margin, only=only, notices=notices, warns=warns,
                    excluded=logged.excluded, settings={**settings, "estimator": est.name},
                    progress=progress, dropped=dict.fromkeys(shape.names, gone) if gone else None)
