"""Off-policy evaluation: what would the metric be under target policies, from the logging
policy's logs (METHODS §3–6).

``cje.analyze(logged, fresh_draws=..., estimator=...)`` lands here. The pipeline from a fitted
calibration to the estimates is one pure function (:meth:`_Pipeline.run`); the OUA jackknife
re-runs it with each oracle fold's labels deleted from the calibrator, so everything downstream —
rewards, SIMCal-W ordering and stacking, outcome models, the TMLE fluctuation, the stacking of DR
estimators, the residual augmentation — is refitted in every replicate.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cje.analysis import (
    calibration_curve,
    level_gate,
    naive_judge_mean,
    scaled_reliability,
    worse_status,
)
from cje.calibration.reward import Mode, RewardCalibrator, effective_folds
from cje.calibration.weights import (
    SimcalWeights,
    hajek_weights,
    iso_by_rank,
    order_rank,
    simcal_weights,
)
from cje.data import EvalData, prompt_folds
from cje.diagnostics.calibration import transport_audit
from cje.diagnostics.gates import comparable, sanity_gate, support_gate
from cje.diagnostics.overlap import ESS_GATE, HILL_GATE, TTC_GATE, ess_fraction, weight_summary
from cje.errors import CJEInputError, CJEWarning
from cje.estimators.direct import direct_estimate
from cje.estimators.offpolicy import (
    ESTIMATORS,
    OffPolicyRows,
    PolicyValue,
    calibrated_ips,
    doubly_robust,
    ips,
    residual_gap,
    snips,
    stack,
)
from cje.inference import (
    cluster_variance,
    jackknife_variance,
    oua_jackknife,
    paired_contrasts,
    ranking_tiers,
    satterthwaite_df,
    t_interval,
)
from cje.report import CalibrationInfo, PolicyEstimate, Report

__all__ = ["analyze_offpolicy", "OFFPOLICY_ESTIMATORS"]

#: Every ``estimator=`` value accepted with logged data.
OFFPOLICY_ESTIMATORS: tuple[str, ...] = ("auto", "direct", *ESTIMATORS)
_DR = ("dr-cpo", "mrdr", "tmle", "stacked-dr")
_IPS = ("ips", "snips", "calibrated-ips")
#: Estimators that use SIMCal-W weights (and so may weight the oracle residual by them).
_STABILISED = ("calibrated-ips", *_DR)
_TMLE_STEPS, _TMLE_TOL, _CLIP = 50, 1e-8, 1e-7


@dataclass(eq=False)
class _Target:
    """A target policy's usable logged rows and its fresh draws (global row indices)."""

    name: str
    rows: np.ndarray  # usable logged rows
    log_w: np.ndarray  # λ on those rows
    w: np.ndarray  # Hájek weights
    fresh: np.ndarray  # its fresh-draw rows (may be empty)
    excluded: dict[str, int]
    # oracle residual weighted by the stabilised weights (residual_weights, resolved per target)
    stable_residual: bool = False
    # set by _Pipeline: the target's distinct index values, and its fresh draws per prompt
    codes_sub: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int64), np.empty(0, np.int64))
    fresh_count: np.ndarray = field(default_factory=lambda: np.empty(0))


class _Pipeline:
    """Arrays of one analysis on the internal [0, 1] scales, and the run(calibration) function."""

    def __init__(self, s: np.ndarray, y: np.ndarray, X: np.ndarray | None, cluster: np.ndarray,
                 fold: np.ndarray, logged: np.ndarray, targets: list[_Target], estimator: str,
                 n_folds: int, var_cap: float | None, mrdr_omega: str, residual_weights: str):
        import pandas as pd

        self.s, self.y, self.X, self.cluster, self.fold = s, y, X, cluster, fold
        self.logged, self.targets, self.estimator = logged, targets, estimator
        self.K, self.var_cap, self.mrdr_omega = n_folds, var_cap, mrdr_omega
        self.n_clusters = int(cluster.max()) + 1
        if X is None:
            codes, uniq = pd.factorize(s)
            self.codes, self.distinct_s, self.distinct_X = codes, np.asarray(uniq, float), None
        else:
            key = pd.MultiIndex.from_arrays([s, *X.T])
            codes, uniq = pd.factorize(key)
            first = np.empty(len(uniq), dtype=np.int64)
            first[codes] = np.arange(s.shape[0])
            self.codes, self.distinct_s, self.distinct_X = codes, s[first], X[first]
        self.lab = ~np.isnan(y)
        for t in targets:
            t.stable_residual = estimator in _STABILISED and (
                residual_weights == "stable"
                or (residual_weights == "auto" and ess_fraction(t.w) < ESS_GATE))
            sub, used = pd.factorize(self.codes[t.rows], sort=True)
            t.codes_sub = (sub, np.asarray(used))
            t.fresh_count = np.maximum(np.bincount(cluster[t.fresh], minlength=self.n_clusters), 1)

    # ---- one run of everything downstream of the calibrator ----------------------------------
    def run(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> list[Any]:
        """``(value, stabilised weights, transport gap)`` of the logging policy and every target
        under the calibration that deletes ``deleted``: the weights for diagnostics, the gap
        (:func:`~cje.estimators.offpolicy.residual_gap`, 0 unless the target's residual uses the
        stabilised weights) for the bias allowance."""
        d_s, d_X = self.distinct_s, self.distinct_X
        full = calibrator.predictor(deleted)(d_s, d_X)
        index = np.vstack([
            calibrator.predictor(deleted | {k} if len(deleted | {k}) < self.K else deleted)(d_s, d_X)
            for k in range(self.K)
        ])
        out: list[Any] = [self._logging_value(full, index)]
        for t in self.targets:
            out.append(self._target_value(t, full, index))
        return out

    def _rows(self, rows: np.ndarray, full: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, ...]:
        c = self.codes[rows]
        reward = full[c]
        oof = index[self.fold[rows], c]  # f^(-fold(i))(S_i): the out-of-fold calibration
        lab = self.lab[rows]
        resid = np.where(lab, np.nan_to_num(self.y[rows]) - oof, 0.0)
        return reward, oof, resid, lab

    def _logging_value(self, full: np.ndarray, index: np.ndarray) -> tuple[PolicyValue, None, float]:
        rows = self.logged
        reward, _, resid, lab = self._rows(rows, full, index)
        est = direct_estimate(reward, resid, lab, np.zeros(rows.size, dtype=np.int64), 1)
        return PolicyValue(float(est.values[0]), est.influence), None, 0.0

    def _target_value(self, t: _Target, full: np.ndarray,
                      index: np.ndarray) -> tuple[PolicyValue, Any, float]:
        if self.estimator == "direct":
            reward, _, resid, lab = self._rows(t.fresh, full, index)
            est = direct_estimate(reward, resid, lab, np.zeros(t.fresh.size, dtype=np.int64), 1)
            return PolicyValue(float(est.values[0]), est.influence), None, 0.0
        rows = t.rows
        reward, oof, resid, lab = self._rows(rows, full, index)
        stable: SimcalWeights | None = None
        if self.estimator in _STABILISED:
            # rank only the target's own logged values: other rows (fresh draws, probes) must
            # not move its weights through the interpolation grid
            sub, used = t.codes_sub
            stable = simcal_weights(t.w, sub, self.fold[rows], index[:, used], self.y[rows],
                                    tiebreak=self.distinct_s[used],
                                    var_cap=self.var_cap, stable_residual=t.stable_residual)
        with np.errstate(over="ignore"):  # an overflowing ratio gives inf, refused downstream
            ratio = np.exp(t.log_w) if self.estimator == "ips" else None
        data = OffPolicyRows(reward=reward, residual=resid, labelled=lab, weights=t.w,
                             stable=None if stable is None else stable.weights, ratio=ratio)
        if self.estimator == "ips":
            with np.errstate(over="ignore", invalid="ignore"):  # overflow → inf → REFUSED
                return ips(data), None, 0.0
        if self.estimator == "snips":
            return snips(data), None, 0.0
        gap = residual_gap(data) if t.stable_residual else 0.0
        if self.estimator == "calibrated-ips":
            return calibrated_ips(data, stable_residual=t.stable_residual), stable, gap
        fits: list[PolicyValue] = []
        kinds = ("dr-cpo", "tmle", "mrdr") if self.estimator == "stacked-dr" else (self.estimator,)
        for kind in kinds:
            q_logged, q_fresh = self._outcome(kind, t, oof, index, reward)
            fits.append(doubly_robust(data, q_logged, self._fresh_mean(t, rows, q_fresh),
                                      stable_residual=t.stable_residual))
        # every DR fit shares the residual term, so the stack has the same gap
        if len(fits) == 1:
            return fits[0], stable, gap
        return stack(fits, self.cluster[rows]), stable, gap

    # ---- outcome models ------------------------------------------------------------------------
    def _outcome(self, kind: str, t: _Target, oof: np.ndarray, index: np.ndarray,
                 reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-fitted outcome model ``q`` on the target's logged rows and on its fresh draws."""
        fc = self.codes[t.fresh]
        ff = self.fold[t.fresh]
        if kind == "dr-cpo" or kind == "tmle":
            q_logged, q_fresh = oof, index[ff, fc]
            if kind == "tmle":
                q_logged, q_fresh = self._tmle(t, q_logged, q_fresh, reward, index)
            return q_logged, q_fresh
        # MRDR: per fold, weighted isotonic regression of Y on the index over labelled rows of the
        # other folds, with weights ω (w by default): the outcome model that minimises the
        # variance of the DR correction rather than the unweighted squared error.
        table = self._mrdr_table(t, index)
        return table[self.fold[t.rows], self.codes[t.rows]], table[ff, fc]

    def _mrdr_table(self, t: _Target, index: np.ndarray) -> np.ndarray:
        rows = t.rows[self.lab[t.rows]]
        w = t.w[self.lab[t.rows]]
        omega = {"w": w, "w2": w**2, "w1sq": (w - 1.0) ** 2}[self.mrdr_omega]
        omega = np.maximum(omega, 1e-12)
        U = self.distinct_s.shape[0]
        key = self.fold[rows] * U + self.codes[rows]
        num = np.bincount(key, weights=omega * self.y[rows], minlength=self.K * U).reshape(self.K, U)
        den = np.bincount(key, weights=omega, minlength=self.K * U).reshape(self.K, U)
        table = np.empty((self.K, U))
        for k in range(self.K):
            others = [f for f in range(self.K) if f != k and den[f].sum() > 0]
            use = others if others else list(range(self.K))
            table[k] = iso_by_rank(order_rank(index[k], self.distinct_s), num[use].sum(axis=0),
                                   den[use].sum(axis=0), increasing=True, floor=0.0)
        return table

    def _tmle(self, t: _Target, q_logged: np.ndarray, q_fresh: np.ndarray, reward: np.ndarray,
              index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Logistic fluctuation ``logit Q* = logit Q0 + ε h`` with clever covariate ``h`` = mean
        raw weight at each distinct index value of the other folds (per fold), ε fit by Newton on
        the logged rows' calibrated rewards; the same ε moves the fresh draws."""
        U = self.distinct_s.shape[0]
        rows = t.rows
        key = self.fold[rows] * U + self.codes[rows]
        wsum = np.bincount(key, weights=t.w, minlength=self.K * U).reshape(self.K, U)
        cnt = np.bincount(key, minlength=self.K * U).reshape(self.K, U).astype(float)
        h_tab = np.empty((self.K, U))
        for k in range(self.K):
            ws, cs = wsum.sum(0) - wsum[k], cnt.sum(0) - cnt[k]
            if not (cs > 0).any():
                ws, cs = wsum.sum(0), cnt.sum(0)
            rank = order_rank(index[k], self.distinct_s)
            gw = np.bincount(rank, weights=ws)
            gc = np.bincount(rank, weights=cs)
            keep = np.flatnonzero(gc > 0)
            h_tab[k] = np.interp(rank, keep, gw[keep] / gc[keep])
        h_l = h_tab[self.fold[rows], self.codes[rows]]
        h_f = h_tab[self.fold[t.fresh], self.codes[t.fresh]]
        eta_l = _logit(q_logged)
        eps = 0.0
        for _ in range(_TMLE_STEPS):
            p = _expit(eta_l + eps * h_l)
            score = float((h_l * (reward - p)).sum())
            info = float((h_l * h_l * p * (1.0 - p)).sum())
            if info <= 0:
                break
            step = score / info
            eps += step
            if abs(step) < _TMLE_TOL:
                break
        return _expit(eta_l + eps * h_l), _expit(_logit(q_fresh) + eps * h_f)

    def _fresh_mean(self, t: _Target, rows: np.ndarray, q_fresh: np.ndarray) -> np.ndarray:
        """``ḡ_i``: mean outcome model over the target's fresh draws of row i's prompt."""
        tot = np.bincount(self.cluster[t.fresh], weights=q_fresh, minlength=self.n_clusters)
        return (tot / t.fresh_count)[self.cluster[rows]]


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.log(p / (1.0 - p))


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# ------------------------------------------------------------------------------------------------
# The analysis
# ------------------------------------------------------------------------------------------------
def analyze_offpolicy(
    logged: EvalData,
    fresh: EvalData | None,
    probes: Mapping[str, EvalData],
    *,
    estimator: str,
    alpha: float,
    mode: Mode,
    covariates: tuple[str, ...],
    n_folds: int,
    seed: int,
    transport_margin: float | None,
    only: Sequence[str] | None,
    var_cap: float | None,
    mrdr_omega: str,
    on_missing: str,
    settings: dict[str, Any],
    residual_weights: str = "auto",
    progress: bool | None = None,
) -> Report:
    """Estimates of every target policy's value from logged data (see :func:`cje.analyze`).

    :func:`cje.analyze` calls this for data with log-probabilities, after loading and
    validating every input; call it directly only with :class:`~cje.data.EvalData` already built.

    Parameters
    ----------
    logged : EvalData
        The logging policy's rows with ``logprobs["base"]`` and one ``logprobs[target]`` per
        target policy (calibration-only rows allowed).
    fresh : EvalData or None
        Fresh draws of the target policies (needed by ``"direct"`` and the DR estimators).
    probes : Mapping[str, EvalData]
        Oracle-labelled probe slices per policy, for the transport audits.
    estimator, alpha, mode, covariates, n_folds, seed, transport_margin
        As in :func:`cje.analyze` (required here; ``"auto"`` is resolved here).
    only : sequence of str or None
        Report only these policies (:func:`cje.analyze`'s ``policies``).
    var_cap, mrdr_omega, on_missing, residual_weights, progress
        As in :func:`cje.analyze`.
    settings : dict
        The run's options, stored in :attr:`Report.settings`.

    Returns
    -------
    Report
        The logging policy's on-policy value, then each target's.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_offpolicy_eval(500, rng=0)
    >>> logged = cje.load(sim.logged, judge_scale=(0, 1), label_scale=(0, 1))
    >>> rep = analyze_offpolicy(logged, None, {}, estimator="calibrated-ips", alpha=0.05,
    ...                         mode="monotone", covariates=(), n_folds=5, seed=0,
    ...                         transport_margin=None, only=None, var_cap=None, mrdr_omega="w",
    ...                         on_missing="raise", settings={})
    >>> [(e.policy, e.method) for e in rep.estimates[:2]]
    [('base', 'on-policy (logged)'), ('mild', 'calibrated-ips')]
    >>> round(rep["far"].estimate, 3), rep["far"].status   # truth 0.711; poor overlap
    (0.65, 'CAUTION')
    """
    import pandas as pd

    notices = list(logged.notices)
    warns: list[str] = []
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
    if estimator == "auto":
        estimator = "stacked-dr" if fresh is not None else "calibrated-ips"
        notices.append(f"estimator 'auto' chose '{estimator}' "
                       f"({'fresh draws given' if fresh is not None else 'no fresh draws'}).")
    needs_fresh = estimator in _DR or estimator == "direct"
    if needs_fresh and fresh is None:
        raise CJEInputError(
            f"estimator={estimator!r} needs fresh draws of each target policy (fresh_draws=, "
            "CLI --fresh-draws DIR); without them use 'calibrated-ips', 'snips' or 'ips'."
        )

    # ---- one long table: logged rows, target fresh draws, calibration rows, probes -----------
    parts_pid = [logged.prompt_id]
    parts_s, parts_y = [logged.judge_score], [logged.oracle_label]
    parts_X = [np.column_stack([logged.covariates[c] for c in covariates])] if covariates else []
    role = [np.where(logged.policy_code >= 0, 0, -1)]  # 0 logged, -1 calibration-only
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
        parts_pid.append(fresh.prompt_id[sel])
        parts_s.append(fresh.judge_score[sel])
        parts_y.append(fresh.oracle_label[sel])
        if covariates:
            parts_X.append(np.column_stack([fresh.covariates[c][sel] for c in covariates]))
        role.append(fresh_role[sel])
    probe_names = list(probes)
    for j, pol in enumerate(probe_names):
        pr = probes[pol]
        keep = np.flatnonzero(pr.labelled)
        parts_pid.append(np.array([f"\x00probe:{pol}:{p}" for p in pr.prompt_id[keep]], dtype=object))
        parts_s.append(pr.judge_score[keep])
        parts_y.append(pr.oracle_label[keep])
        if covariates:
            parts_X.append(np.column_stack([pr.covariates[c][keep] for c in covariates]))
        role.append(np.full(keep.size, 1000 + j, dtype=np.int64))
    jlo, jhi = logged.judge_scale
    llo, lhi = logged.label_scale
    width = lhi - llo
    pid = np.concatenate(parts_pid)
    cluster, prompts = pd.factorize(pid, sort=False)
    cluster = cluster.astype(np.int64)
    s = (np.concatenate(parts_s) - jlo) / (jhi - jlo)
    y = (np.concatenate(parts_y) - llo) / (lhi - llo)
    X = np.vstack(parts_X) if covariates else None
    role_all = np.concatenate(role)
    is_probe = role_all >= 1000
    train = np.flatnonzero(~np.isnan(y) & ~is_probe)

    lab_prompt = np.zeros(len(prompts), dtype=bool)
    lab_prompt[cluster[train]] = True
    m_prompts = int(lab_prompt.sum())
    if m_prompts < 4:
        raise CJEInputError(
            f"Off-policy estimates need a calibrated reward: the logged data has oracle labels on "
            f"{m_prompts} prompt(s), at least 4 are needed. Label a random slice of the logged "
            "responses (5–25% is typical)."
        )
    k = effective_folds(m_prompts, n_folds)
    if k < n_folds:
        warns.append(f"Only {m_prompts} labelled prompts: K = {k} folds instead of {n_folds}.")
    fold = prompt_folds(np.asarray(prompts, dtype=object), lab_prompt, k, seed)[cluster]

    # ---- targets: weights, exclusions, fresh draws -------------------------------------------
    logged_rows = np.flatnonzero(role_all == 0)
    lp_base = logged.logprobs["base"][logged_rows]  # logged rows come first in the long table
    targets: list[_Target] = []
    for i, name in enumerate(target_names):
        lp_t = logged.logprobs[name][logged_rows]
        ok = ~np.isnan(lp_t)
        excluded = {}
        if (~ok).any():
            excluded["missing log-probability"] = int((~ok).sum())
        frows = np.flatnonzero(role_all == i + 1)
        if needs_fresh:
            if frows.size == 0:
                raise CJEInputError(
                    f"estimator={estimator!r} needs fresh draws of target {name!r}, and there are "
                    f"none; add '{name}_responses.jsonl' (or rows with policy={name!r}) to the "
                    "fresh draws, or use 'calibrated-ips'."
                )
            has = np.zeros(len(prompts), dtype=bool)
            has[cluster[frows]] = True
            miss = ok & ~has[cluster[logged_rows]]
            if miss.any() and estimator != "direct":
                if on_missing == "raise":
                    r = int(np.flatnonzero(miss)[0])
                    raise CJEInputError(
                        f"Target {name!r} has no fresh draws for prompt_id={pid[logged_rows[r]]!r} "
                        f"(logged row {r}; {int(miss.sum())} logged rows lack them). DR needs the "
                        "target's fresh draws on every logged prompt: add them, or pass "
                        "on_missing='drop' (CLI --drop-missing) to exclude those rows (counted)."
                    )
                excluded["no fresh draws for the prompt"] = int(miss.sum())
                ok &= ~miss
        if not ok.any():
            raise CJEInputError(
                f"Target {name!r} has no usable logged rows (every row lacks its log-probability"
                f"{' or fresh draws' if needs_fresh else ''})."
            )
        lw = (lp_t - lp_base)[ok]
        targets.append(_Target(name=name, rows=logged_rows[ok], log_w=lw, w=hajek_weights(lw),
                               fresh=frows, excluded=excluded))

    # ---- calibrate ----------------------------------------------------------------------------
    calibrator = RewardCalibrator(mode=mode, n_folds=k, seed=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CJEWarning)
        calibrator.fit(s[train], y[train], covariates=None if X is None else X[train],
                       prompt_id=cluster[train], folds=fold[train])
    warns += [str(w.message) for w in caught]
    pipe = _Pipeline(s, y, X, cluster, fold, logged_rows, targets, estimator, k, var_cap,
                     mrdr_omega, residual_weights)
    full = pipe.run(calibrator, frozenset())

    def values_without(fold_k: int) -> np.ndarray:
        return np.array([v.value for v, _, _ in pipe.run(calibrator, frozenset({fold_k}))])

    reps = oua_jackknife(values_without, range(k), progress=progress)
    with np.errstate(invalid="ignore", over="ignore"):  # IPS may overflow: refused below
        var_cal = jackknife_variance(reps)

    # ---- per-policy results --------------------------------------------------------------------
    names = [base, *target_names]
    s_lab = (s[train] * (jhi - jlo) + jlo)
    results = []
    f_full = calibrator.predictor()
    audits = []
    for j, pol in enumerate(probe_names):
        rows_j = np.flatnonzero(role_all == 1000 + j)
        resid_j = y[rows_j] - f_full(s[rows_j], None if X is None else X[rows_j])
        audits.append(transport_audit(pol, resid_j, cluster[rows_j], alpha=alpha, width=width,
                                      margin=transport_margin))
    audit_of = {a.policy: a for a in audits}
    totals: dict[int, np.ndarray] = {}
    present: dict[int, np.ndarray] = {}
    for p, name in enumerate(names):
        value, stable, gap = full[p]
        if p == 0:
            rows, method = logged_rows, "on-policy (logged)"
        elif estimator == "direct":
            rows, method = targets[p - 1].fresh, "direct"
        else:
            rows, method = targets[p - 1].rows, estimator
        phi = value.influence
        v_if, g = cluster_variance(phi, cluster[rows])
        totals[p] = np.bincount(cluster[rows], weights=phi, minlength=len(prompts)) / rows.size
        present[p] = np.bincount(cluster[rows], minlength=len(prompts)) > 0
        vc = float(var_cal[p])
        v_tr = gap * gap
        se = float(np.sqrt(v_if + vc + v_tr))
        df = satterthwaite_df(v_if, vc, g, k)
        lo, hi = t_interval(value.value, se, df, alpha)
        # the raw judge mean on the policy's own responses (logged rows for the logging policy,
        # fresh draws for a target), or the Hájek-weighted logged mean without fresh draws
        t_ = None if p == 0 else targets[p - 1]
        if t_ is None or t_.fresh.size:
            own = rows if t_ is None or estimator == "direct" else t_.fresh
            naive = naive_judge_mean(s[own], cluster[own], alpha, logged.label_scale)
        else:
            naive = naive_judge_mean(s[t_.rows], cluster[t_.rows], alpha, logged.label_scale,
                                     w=t_.w)
        diag: dict[str, Any] = {}
        reasons: list[str] = []
        status = "OK"
        scores = logged.judge_score[logged_rows]
        if p > 0:
            t = targets[p - 1]
            s_target = (s[t.fresh] * (jhi - jlo) + jlo) if t.fresh.size else None
            diag.update(weight_summary(
                t.w, None if stable is None else stable.weights,
                logp_target=logged.logprobs[t.name][t.rows], s_logged=logged.judge_score[t.rows],
                s_target=s_target, scale=logged.judge_scale, log_w=t.log_w,
            ))
            diag["n_eff_raw"] = diag["ess_raw"] * t.rows.size
            diag["n_excluded"] = int(sum(t.excluded.values()))
            for why, cnt in t.excluded.items():
                diag[f"excluded_{why.replace(' ', '_')}"] = cnt
            diag["weight_tail_raw"] = _tail(t.w)
            if t.stable_residual:
                diag["transport_gap"] = gap * width
            if stable is not None:
                diag["weight_tail_stable"] = _tail(stable.weights)
                diag["var_cap_gamma"] = stable.gamma
                if stable.fallbacks:
                    diag["simcal_fallback"] = "; ".join(stable.fallbacks)
                mix = stable.mixture.mean(axis=0)
                diag.update({"simcal_increasing": float(mix[0]), "simcal_decreasing": float(mix[1]),
                             "simcal_baseline": float(mix[2]),
                             "residual_weights": "stable" if t.stable_residual else "raw"})
            if value.mixture is not None:
                diag.update({f"stack_{n}": float(a) for n, a in
                             zip(("dr_cpo", "tmle", "mrdr"), value.mixture, strict=True)})
            status, reasons = _overlap_gate(estimator, diag, t.rows.size)
            scores = s_target if s_target is not None else logged.judge_score[t.rows]
        # the level gates every estimate shares with the direct pipeline: transport audit, no
        # labels of its own, judge scores outside the labelled range, a constant calibration
        level, level_reasons, level_diag = level_gate(
            name, scores, s_lab, int(pipe.lab[rows].sum()), audit_of.get(name),
            calibrator.is_constant_)
        status = worse_status(status, level)
        reasons += level_reasons
        diag.update(level_diag)
        results.append(PolicyEstimate(
            policy=name, estimate=float(llo + width * value.value), se=se * width,
            ci_low=float(llo + width * lo), ci_high=float(llo + width * hi), alpha=alpha, df=df,
            n=int(rows.size), n_prompts=g, n_labels=int(pipe.lab[rows].sum()),
            var_if=v_if * width**2, var_cal=vc * width**2, var_transport=v_tr * width**2,
            calibration_share=float(vc / se**2) if se > 0 else 0.0,
            naive_estimate=naive[0], naive_ci_low=naive[1], naive_ci_high=naive[2],
            method=method, status=status, reasons=tuple(reasons), diagnostics=diag,
        ))
    # the last gate, before the ranking and the contrasts: non-finite numbers, estimates or
    # intervals beyond the label scale, a policy seen on a single prompt
    results = [sanity_gate(r, logged.label_scale) for r in results]
    shown = [i for i, n in enumerate(names) if only is None or n in only]
    # contrasts only between numbers that can be compared (finite, on the scale, ≥ 2 prompts)
    can_compare = [i for i in shown if comparable(results[i], logged.label_scale)]
    pairs = paired_contrasts(totals, present, [float(v.value) for v, _, _ in full], reps,
                             can_compare, tuple(names), k, alpha, width,
                             gaps=[g for _, _, g in full])
    ranking = ranking_tiers([results[i] for i in shown], pairs)
    oof = calibrator.predict_oof()
    cal_info = CalibrationInfo(
        mode=calibrator.mode_, requested_mode=mode, n_folds=k, n_labels=int(train.size),
        n_labelled_prompts=m_prompts, covariates=covariates,
        oof_rmse=float(np.sqrt(np.mean((y[train] - oof) ** 2))) * width,
        judge_range=(float(s_lab.min()), float(s_lab.max())),
        selection=dict(calibrator.selection_), reliability=tuple(scaled_reliability(
            calibrator, logged.judge_scale, logged.label_scale)), is_constant=calibrator.is_constant_,
        curve=calibration_curve(s[logged_rows], None if X is None else X[logged_rows],
                                calibrator.predictor(),
                                [calibrator.predictor(frozenset({d})) for d in range(k)],
                                logged.judge_scale, logged.label_scale),
    )
    settings = {**settings, "estimator": estimator}
    return Report(
        estimates=tuple(results[i] for i in shown), pairs=pairs, audits=tuple(audits),
        calibration=cal_info, ranking=ranking, judge_scale=logged.judge_scale,
        label_scale=logged.label_scale, alpha=alpha, notices=tuple(notices),
        warnings=tuple(warns), excluded=dict(logged.excluded), settings=settings,
    )


#: Exceedance probabilities at which the weights' tail is recorded (1/2 down to 1/10⁵).
TAIL_PROBS = tuple(float(p) for p in np.logspace(np.log10(0.5), -5, 23))


def _tail(w: np.ndarray) -> list[list[float]]:
    """The upper tail of mean-one weights as ``[exceedance probability, weight]`` pairs: the
    weight exceeded by a share ``p`` of the rows, for each ``p`` in :data:`TAIL_PROBS` that the
    sample can resolve (``p ≥ 1/n``); plots draw it as a survival curve."""
    probs = [p for p in TAIL_PROBS if p >= 1.0 / w.size]
    q = np.quantile(w, [1.0 - p for p in probs])
    return [[p, float(v)] for p, v in zip(probs, q, strict=True)]


def _overlap_gate(estimator: str, diag: Mapping[str, Any],
                  n_rows: int = 0) -> tuple[str, list[str]]:
    """CAUTION when the logged data barely covers the target (METHODS §6). The reason for a low
    raw ESS names what the estimate then rests on, which depends on the residual weights. Then
    the no-support gate (:func:`cje.diagnostics.gates.support_gate`): REFUSED when the target
    has no support on the logged responses (mean raw weight far from one, degenerate weights)."""
    status, reasons = _ess_gate(estimator, diag)
    if estimator in _IPS or estimator in _DR:
        sup, why = support_gate("weighting" if estimator in _IPS else "dr", diag, n_rows)
        order = ("OK", "CAUTION", "REFUSED")
        status = max(status, sup, key=order.index)
        reasons = why + reasons if sup == "REFUSED" else reasons + why
    return status, reasons


def _ess_gate(estimator: str, diag: Mapping[str, Any]) -> tuple[str, list[str]]:
    """The METHODS §6 overlap gates on ESS, TTC and the Hill index (CAUTION)."""
    reasons: list[str] = []
    stable_resid = diag.get("residual_weights") == "stable"
    resid = (
        "; the oracle residual is weighted by the stabilised weights, so the estimate rests on the "
        "calibration transporting to the target's responses, and its interval adds the gap to "
        f"the raw-weight correction ({diag.get('transport_gap', float('nan')):+.3f}) as an "
        "allowance for that (audit it with a probe slice; residual_weights='raw' drops the "
        "assumption)"
    ) if stable_resid else ""
    checks: tuple[tuple[str, float, str], ...]
    if estimator in _IPS:
        checks = (
            ("ess_raw", ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: a few logged rows carry the "
                                  "estimate" + resid),
            ("ttc", TTC_GATE, "TTC {v:.2f} < {g:.2f}: the logging policy rarely produces the "
                              "responses the target concentrates on"),
            ("hill_raw", HILL_GATE, "Hill tail index {v:.2f} < {g:g}: the weights' variance is "
                                    "effectively infinite"),
        )
    elif estimator in _DR:
        checks = (
            ("ess_raw", ESS_GATE, "raw-weight ESS {v:.1%} < {g:.0%}: the logged labels barely "
                                  "reach the target's responses" + (resid or
                                  ", so the oracle residual correction rests on a few labelled "
                                  "rows and its interval is wide")),
            ("ttc", TTC_GATE, "TTC {v:.2f} < {g:.2f}: the logging policy rarely produces the "
                              "responses the target concentrates on; the estimate rests on the "
                              "outcome model"),
        )
    else:
        return "OK", reasons
    for key, gate, text in checks:
        v = diag.get(key, float("nan"))
        if v == v and v < gate:
            reasons.append("poor overlap: " + text.format(v=v, g=gate) + ".")
    return ("CAUTION" if reasons else "OK"), reasons
