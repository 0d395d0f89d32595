"""``cje.analyze``: the one-call pipeline from judged responses to a :class:`~cje.report.Report`.

Load and validate → fold prompts → calibrate (AutoCal-R) → direct estimates with per-row
influence values → prompt-clustered variance + OUA jackknife (the whole pipeline re-run with each
oracle fold's labels deleted from the calibrator) → paired contrasts, transport audits, gates.
Logged data with log-probabilities goes to the off-policy pipeline (:mod:`cje.offpolicy`), which
shares this module's gates, naive means, reliability table and calibration curve.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cje._progress import check_progress
from cje.calibration.reward import Calibration, Mode, RewardCalibrator, effective_folds
from cje.data import EvalData, load, prompt_folds, with_calibration_rows
from cje.diagnostics.calibration import out_of_range_share, transport_audit
from cje.diagnostics.gates import comparable, sanity_gate
from cje.diagnostics.gates import worse_status as _worse_status
from cje.errors import CJEInputError, CJEWarning, check_alpha
from cje.estimators.direct import DirectEstimator
from cje.inference import (
    cluster_variance,
    jackknife_variance,
    oua_jackknife,
    paired_contrasts,
    ranking_tiers,
    satterthwaite_df,
    t_interval,
)
from cje.report import CalibrationInfo, Contrast, PolicyEstimate, Report, TransportAudit

__all__ = ["analyze"]

#: Minimum number of labelled prompts needed to calibrate (METHODS §1).
MIN_LABELLED_PROMPTS = 4
#: Share of a policy's judge scores outside the labelled range above which levels are refused.
OUT_OF_RANGE_GATE = 0.05


@dataclass(frozen=True, slots=True, eq=False)
class _Prepared:
    """Arrays the pipeline needs, on the internal [0, 1] scales (probe rows appended)."""

    s: np.ndarray  # judge score in [0, 1]
    y: np.ndarray  # label in [0, 1], NaN if unlabelled
    X: np.ndarray | None  # covariates (n, p) or None
    group: np.ndarray  # policy code per row; -1 calibration-only; P + j for probe j
    cluster: np.ndarray  # prompt code per row
    train: np.ndarray  # rows that train the calibrator (labelled, not probe), in order
    n_policies: int
    n_probes: int
    # The reward is a function of (S, Z): compute it once per distinct row and gather.
    codes: np.ndarray | None = None
    distinct_s: np.ndarray | None = None
    distinct_X: np.ndarray | None = None

    def reward(self, calib: Calibration) -> np.ndarray:
        """Calibrated reward of every row."""
        if self.codes is not None:
            return calib.predict(self.distinct_s, self.distinct_X)[self.codes]
        return calib.predict(self.s, self.X)


def analyze(
    data: Any,
    *,
    judge_scale: tuple[float, float] | None = None,
    label_scale: tuple[float, float] | None = None,
    calibration: Any = None,
    probes: Mapping[str, Any] | None = None,
    transport_margin: float | None = None,
    alpha: float = 0.05,
    mode: Mode = "auto",
    covariates: Sequence[str] = (),
    n_folds: int = 5,
    seed: int = 0,
    policies: Sequence[str] | None = None,
    columns: Mapping[str, str] | None = None,
    on_invalid: str = "raise",
    fresh_draws: Any = None,
    estimator: str = "auto",
    var_cap: float | None = None,
    mrdr_omega: str = "w",
    on_missing: str = "raise",
    residual_weights: str = "auto",
    progress: bool | None = None,
) -> Report:
    """Calibrated estimates of each policy's value with honest confidence intervals.

    Two data shapes (METHODS §0): **fresh draws** of each policy (on-policy; the direct method),
    or **logged data** of one logging policy with the log-probability of each logged response
    under each target policy (``logprob_base`` and ``logprob[<target>]`` columns, or cje-eval's
    logged JSONL) — then the targets are evaluated off-policy, optionally with ``fresh_draws`` of
    the targets for the doubly robust estimators.

    Parameters
    ----------
    data : DataFrame, dict of arrays, path or EvalData
        Judged responses in long format (``prompt_id, policy, judge_score, oracle_label?``, …),
        a JSONL/CSV/Parquet file, or a ``cje-eval`` fresh-draws directory. See :func:`cje.load`.
    judge_scale, label_scale : (low, high), optional
        Scales of the judge scores and the oracle labels; inferred (with a notice) if omitted.
        Results are reported on the label scale.
    calibration : DataFrame, path or EvalData, optional
        Extra labelled rows (``prompt_id, judge_score, oracle_label``) that only train the
        calibrator.
    probes : Mapping[str, source], optional
        Probe slices per policy: oracle-labelled samples of that policy's own responses, used to
        audit whether the calibration transports to it (METHODS §6).
    transport_margin : float, optional
        Practical margin ``δ_max`` (label units) that grades the audits PASS / FAIL /
        INCONCLUSIVE. Without it audits are NOT GRADED.
    alpha : float
        ``1 − alpha`` intervals; contrasts are tested at ``alpha`` after Holm adjustment.
    mode : {"auto", "monotone", "two_stage"}
        Calibration map (see :class:`~cje.calibration.RewardCalibrator`).
    covariates : sequence of str
        Covariates for the two-stage map, e.g. ``["response_length"]`` (derived from a
        ``response`` column when absent).
    n_folds : int
        Cross-fitting / jackknife folds K.
    seed : int
        Seed of the prompt hash that assigns folds (results are otherwise deterministic).
    policies : sequence of str, optional
        Analyse only these policies (others are still used to fit the calibrator).
    columns : Mapping[str, str], optional
        Map standard column names to yours, e.g. ``{"judge_score": "score"}``.
    on_invalid : {"raise", "drop"}
        Drop rows with invalid judge scores or prompt ids instead of raising (they are counted).
    fresh_draws : DataFrame, path or EvalData, optional
        Off-policy only: fresh draws of the target policies (long format with a ``policy``
        column, or a cje-eval fresh-draws directory), used by ``direct`` and the DR estimators.
    estimator : str
        ``"auto"`` (direct for fresh draws; with logged data ``"stacked-dr"`` when
        ``fresh_draws`` are given, else ``"calibrated-ips"``), ``"direct"``, or, for logged data,
        ``"ips"`` (unnormalised), ``"snips"``, ``"calibrated-ips"`` (SIMCal-W weights),
        ``"dr-cpo"``, ``"mrdr"``, ``"tmle"``, ``"stacked-dr"``.
    var_cap : float, optional
        SIMCal-W variance cap (blends stabilised weights toward one; trades bias for variance).
        Off by default, chosen by ``simulations/study_var_cap.py``.
    mrdr_omega : {"w", "w2", "w1sq"}
        MRDR regression weights ``w``, ``w²`` or ``(w − 1)²``.
    residual_weights : {"auto", "raw", "stable"}
        Off-policy: weights on the oracle residual term of calibrated IPS and the DR family.
        ``"raw"`` needs no assumption, but under poor overlap the term rests on the few labelled
        rows that hold the weight mass (wide intervals). ``"stable"`` (SIMCal-W weights, as in the
        CJE paper) is far less variable but assumes the judge score carries everything the target
        changes about the label (the calibration transports); where it does not, the estimate is
        biased toward the logging policy's calibration. Stabilised residual weights therefore add
        the squared gap between the two corrections to the variance as an allowance
        (:attr:`~cje.report.PolicyEstimate.var_transport`). ``"auto"`` (default): raw weights
        for a target whose raw-weight ESS is at least 10%, stabilised ones below it, where the
        overlap gate marks the estimate CAUTION and names that assumption. The diagnostics'
        ``residual_weights`` says which was used; the evidence is in
        ``simulations/results/study_residual_weights.md``.
    on_missing : {"raise", "drop"}
        DR estimators: a logged prompt without fresh draws of the target is an error, or with
        ``"drop"`` its rows are excluded for that target (counted in the diagnostics).
    progress : bool, optional
        A progress bar (on standard error) over the OUA jackknife's re-runs of the pipeline.
        ``None`` (default) shows it only on a terminal and only once the work has lasted a
        second (large off-policy analyses); ``True`` always; ``False`` never.

    Returns
    -------
    Report

    Raises
    ------
    CJEInputError
        Bad data, or a misused argument, checked before any data is read: the message names the
        argument, the value and the fix. Strings are not taken for lists (``policies="base"``
        must be ``policies=["base"]``), and booleans, strings or fractions are not taken for
        integers or numbers (``seed=1.7`` and ``transport_margin="0.1"`` are refused).

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(400, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
    >>> est = rep["improved"]
    >>> bool(est.ci_low < sim.truth["improved"] < est.ci_high)
    True
    >>> cje.analyze(sim.data, policies="improved")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: policies must be a list of strings, ...; got the string 'improved'. ...
    """
    # Every argument is checked before any data is read (cje._checks: a misuse names the argument,
    # the value and the fix; strings are never iterated, booleans and strings never read as numbers).
    from cje._checks import (
        check_choice,
        check_int,
        check_mapping,
        check_number,
        check_scale,
        check_str_list,
    )
    from cje._checks import naming as _naming

    alpha = check_alpha(alpha)
    check_progress(progress)
    judge_scale = check_scale("judge_scale", judge_scale)
    label_scale = check_scale("label_scale", label_scale)
    n_folds = check_int("n_folds", n_folds, minimum=2, example="n_folds=5")
    seed = check_int("seed", seed, example="seed=0")
    if transport_margin is not None:
        transport_margin = check_number("transport_margin", transport_margin, positive=True,
                                        example="transport_margin=0.05 (label units)")
    if var_cap is not None:
        var_cap = check_number("var_cap", var_cap, positive=True, example="var_cap=1.0")
    mode = check_choice("mode", mode, ("auto", "monotone", "two_stage"))  # type: ignore[assignment]
    from cje.offpolicy import OFFPOLICY_ESTIMATORS

    estimator = check_choice("estimator", estimator, tuple(OFFPOLICY_ESTIMATORS))
    mrdr_omega = check_choice("mrdr_omega", mrdr_omega, ("w", "w2", "w1sq"))
    residual_weights = check_choice("residual_weights", residual_weights, ("auto", "raw", "stable"))
    on_invalid = check_choice("on_invalid", on_invalid, ("raise", "drop"))
    on_missing = check_choice("on_missing", on_missing, ("raise", "drop"))
    cov = tuple(check_str_list("covariates", () if covariates is None else covariates,
                               example="covariates=['response_length']"))
    if policies is not None:
        policies = check_str_list("policies", policies, example="policies=['base', 'verbose']",
                                  allow_empty=False)
    if columns is not None:
        columns = check_mapping("columns", columns, example="columns={'judge_score': 'score'}",
                                value_str=True)
    if probes is not None:
        probes = check_mapping("probes", probes, example="probes={'verbose': 'verbose_probe.jsonl'} "
                                                         "(policy -> its probe slice)")
    if mode == "monotone" and cov:
        raise CJEInputError(
            "covariates were given with mode='monotone', which uses the judge score alone. Use "
            "mode='auto' or 'two_stage', or drop the covariates."
        )
    ev = load(data, judge_scale=judge_scale, label_scale=label_scale, columns=columns,
              covariates=cov, on_invalid=on_invalid)  # type: ignore[arg-type]
    logged = bool(ev.logprobs)
    if not logged and (fresh_draws is not None or estimator not in ("auto", "direct")):
        raise CJEInputError(
            f"estimator={estimator!r} / fresh_draws= are for logged data, which needs the "
            "logging policy's log-probabilities ('logprob_base') and each target's "
            "('logprob[<target>]'); this data has none. For fresh draws of each policy use "
            "the default estimator ('direct')."
        )
    if calibration is not None:
        with _naming("calibration"):
            extra = load(calibration, judge_scale=ev.judge_scale,
                         label_scale=label_scale if label_scale is not None
                         else (ev.label_scale if ev.n_labels else None),
                         columns=columns, covariates=cov, policy="(calibration)")
        ev = with_calibration_rows(ev, extra)
    probe_data = {}
    known = list(ev.policies) + [t for t in ev.logprobs if t != "base"]
    for pol, src in (probes or {}).items():
        if pol not in known:
            raise CJEInputError(
                f"Probe slice given for policy {pol!r}, which has no rows; the data has policies "
                f"{known}."
            )
        with _naming(f"probes[{pol!r}]"):
            pr = load(src, judge_scale=ev.judge_scale, label_scale=ev.label_scale,
                      columns=columns, covariates=cov, policy=pol)
        if pr.n_labels < 2:
            raise CJEInputError(
                f"The probe slice of {pol!r} needs oracle labels on at least 2 rows; it has "
                f"{pr.n_labels}."
            )
        probe_data[pol] = pr
    if policies is not None and not logged:  # logged data: analyze_offpolicy checks targets
        for p in policies:
            ev.rows_of(p)  # raises a clear error for a policy with no rows
    settings = {
        "alpha": alpha,
        "mode": mode,
        "covariates": list(cov),
        "n_folds": n_folds,
        "seed": seed,
        "transport_margin": transport_margin,
        "policies": list(policies) if policies is not None else None,
        "estimator": "direct",
    }
    if logged:
        from cje.offpolicy import analyze_offpolicy

        fresh = None
        if fresh_draws is not None:
            with _naming("fresh_draws"):
                fresh = load(fresh_draws, judge_scale=ev.judge_scale, label_scale=ev.label_scale,
                             columns=columns, covariates=cov)
        settings.update(var_cap=var_cap, mrdr_omega=mrdr_omega, on_missing=on_missing,
                        residual_weights=residual_weights)
        return analyze_offpolicy(ev, fresh, probe_data, estimator=estimator, alpha=alpha,
                                 mode=mode, covariates=cov, n_folds=n_folds, seed=seed,
                                 transport_margin=transport_margin, only=policies,
                                 var_cap=var_cap, mrdr_omega=mrdr_omega, on_missing=on_missing,
                                 settings=settings, residual_weights=residual_weights,
                                 progress=progress)
    return _analyze_direct(ev, probe_data, alpha=alpha, mode=mode, covariates=cov,
                           n_folds=n_folds, seed=seed, transport_margin=transport_margin,
                           only=policies, settings=settings, progress=progress)


def _prepare(ev: EvalData, probes: Mapping[str, EvalData], cov: tuple[str, ...]) -> _Prepared:
    jlo, jhi = ev.judge_scale
    llo, lhi = ev.label_scale
    parts_s = [ev.judge_score]
    parts_y = [ev.oracle_label]
    parts_g = [ev.policy_code]
    parts_c = [ev.prompt_code]
    parts_x = [np.column_stack([ev.covariates[c] for c in cov])] if cov else []
    n_prompts = ev.prompts.shape[0]
    P = len(ev.policies)
    for j, pr in enumerate(probes.values()):
        keep = np.flatnonzero(pr.labelled)
        parts_s.append(pr.judge_score[keep])
        parts_y.append(pr.oracle_label[keep])
        parts_g.append(np.full(keep.size, P + j, dtype=np.int64))
        parts_c.append(pr.prompt_code[keep] + n_prompts)  # probe prompts: own clusters
        n_prompts += pr.prompts.shape[0]
        if cov:
            parts_x.append(np.column_stack([pr.covariates[c][keep] for c in cov]))
    s = (np.concatenate(parts_s) - jlo) / (jhi - jlo)
    y = (np.concatenate(parts_y) - llo) / (lhi - llo)
    group = np.concatenate(parts_g)
    train = np.flatnonzero(~np.isnan(y) & (group < P))
    X = np.vstack(parts_x) if cov else None
    codes, distinct_s, distinct_X = _distinct_rows(s, X)
    return _Prepared(
        s=s,
        y=y,
        X=X,
        group=group,
        cluster=np.concatenate(parts_c),
        train=train,
        n_policies=P,
        n_probes=len(probes),
        codes=codes,
        distinct_s=distinct_s,
        distinct_X=distinct_X,
    )


def _distinct_rows(s: np.ndarray, X: np.ndarray | None) -> tuple[Any, Any, Any]:
    """Codes of the distinct (S, Z) rows, when they are few enough to be worth it (judges score
    on coarse grids, so the calibrator is evaluated on a few values instead of every row)."""
    import pandas as pd

    if X is None:
        codes, uniq = pd.factorize(s)
        return codes, np.asarray(uniq, dtype=np.float64), None
    key = np.zeros(s.shape[0], dtype=np.int64)
    size = 1
    for col in (s, *X.T):
        c, u = pd.factorize(col)
        size *= len(u)
        if size > s.shape[0] or size > 2**62:  # too many combinations to gain anything
            return None, None, None
        key = key * len(u) + c
    codes, uniq = pd.factorize(key)
    first = np.empty(len(uniq), dtype=np.int64)
    first[codes] = np.arange(s.shape[0])  # a row holding each distinct (S, Z)
    return codes, s[first], X[first]


def _pipeline(prep: _Prepared, calib: Calibration, estimator: DirectEstimator) -> Any:
    """Everything downstream of the calibrator: rewards, residuals, estimates (+ probe rows)."""
    reward = prep.reward(calib)
    residual = np.zeros_like(reward)
    labelled = np.zeros(reward.shape[0], dtype=bool)
    residual[prep.train] = prep.y[prep.train] - calib.oof
    labelled[prep.train] = True
    P = prep.n_policies
    est = estimator.estimate(reward, residual, labelled, np.where(prep.group < P, prep.group, -1), P)
    probe_rows = [np.flatnonzero(prep.group == P + j) for j in range(prep.n_probes)]
    return est, probe_rows, reward


def _analyze_direct(
    ev: EvalData,
    probes: Mapping[str, EvalData],
    *,
    alpha: float,
    mode: Mode,
    covariates: tuple[str, ...],
    n_folds: int,
    seed: int,
    transport_margin: float | None,
    only: Sequence[str] | None,
    settings: dict[str, Any],
    progress: bool | None = None,
) -> Report:
    notices = list(ev.notices)
    warns: list[str] = []
    prep = _prepare(ev, probes, covariates)
    llo, lhi = ev.label_scale
    jlo, jhi = ev.judge_scale
    width = lhi - llo
    naive = _naive(prep, ev, alpha)

    lab_prompt = np.zeros(ev.prompts.shape[0], dtype=bool)
    lab_prompt[ev.prompt_code[ev.labelled]] = True
    m_prompts = int(lab_prompt.sum())
    if m_prompts < MIN_LABELLED_PROMPTS:
        return _uncalibrated(ev, prep, naive, m_prompts, alpha, notices, settings, only)

    k = effective_folds(m_prompts, n_folds)
    if k < n_folds:
        warns.append(
            f"Only {m_prompts} labelled prompts: cross-fitting and the OUA jackknife use K = {k} "
            f"folds instead of {n_folds}; intervals are less stable. Label more prompts."
        )
    # Only labelled prompts' folds matter here; they depend on the labelled set alone.
    fold_of_prompt = np.full(ev.prompts.shape[0], -1, dtype=np.int64)
    fold_of_prompt[lab_prompt] = prompt_folds(ev.prompts[lab_prompt], np.ones(m_prompts, bool), k, seed)
    row_fold = fold_of_prompt[ev.prompt_code]
    calibrator = RewardCalibrator(mode=mode, n_folds=k, seed=seed)
    X_train = None if prep.X is None else prep.X[prep.train]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", CJEWarning)
        calibrator.fit(prep.s[prep.train], prep.y[prep.train], covariates=X_train,
                       prompt_id=prep.cluster[prep.train], folds=row_fold[prep.train])
    warns += [str(w.message) for w in caught]

    estimator = DirectEstimator()
    full = calibrator.calibration()
    est, probe_rows, reward = _pipeline(prep, full, estimator)

    def run(c: Calibration) -> np.ndarray:
        return _pipeline(prep, c, estimator)[0].values

    jackknife_fits = calibrator.jackknife()
    reps = oua_jackknife(run, jackknife_fits, progress=progress)  # (K, P)
    var_cal_all = jackknife_variance(reps)

    # ---- transport audits --------------------------------------------------------------------
    audits = [transport_audit(pol, prep.y[rows] - reward[rows], prep.cluster[rows], alpha=alpha,
                              width=width, margin=transport_margin)
              for pol, rows in zip(probes, probe_rows, strict=True)]
    audit_of = {a.policy: a for a in audits}

    # ---- per-policy results ------------------------------------------------------------------
    s_lab_raw = ev.judge_score[ev.labelled]
    judge_range = (float(s_lab_raw.min()), float(s_lab_raw.max()))
    per_var: dict[int, tuple[float, float, int, float]] = {}
    results = []
    for p, name in enumerate(ev.policies):
        rows = np.flatnonzero(prep.group == p)
        v_if, g = cluster_variance(est.influence[rows], prep.cluster[rows])
        v_cal = float(var_cal_all[p])
        se = float(np.sqrt(v_if + v_cal))
        df = satterthwaite_df(v_if, v_cal, g, k)
        per_var[p] = (v_if, v_cal, g, df)
        lo, hi = t_interval(est.values[p], se, df, alpha)
        status, reasons, diag = level_gate(
            name, ev.judge_score[ev.policy_code == p], s_lab_raw, int(est.n_labels[p]),
            audit_of.get(name), calibrator.is_constant_,
        )
        share = v_cal / (v_if + v_cal) if v_if + v_cal > 0 else 0.0
        results.append(
            PolicyEstimate(
                policy=name,
                estimate=float(llo + width * est.values[p]),
                se=se * width,
                ci_low=float(llo + width * lo),
                ci_high=float(llo + width * hi),
                alpha=alpha,
                df=df,
                n=int(est.n[p]),
                n_prompts=g,
                n_labels=int(est.n_labels[p]),
                var_if=v_if * width**2,
                var_cal=v_cal * width**2,
                calibration_share=float(share),
                naive_estimate=naive[p][0],
                naive_ci_low=naive[p][1],
                naive_ci_high=naive[p][2],
                method=estimator.name,
                status=status,
                reasons=reasons,
                diagnostics=diag,
            )
        )

    # the last gate, before the ranking and the contrasts: non-finite numbers, estimates or
    # intervals beyond the label scale, a policy seen on a single prompt
    results = [sanity_gate(r, ev.label_scale) for r in results]

    # ---- contrasts (only between numbers that can be compared) -------------------------------
    keep = [p for p, name in enumerate(ev.policies) if only is None or name in only]
    can_compare = [p for p in keep if comparable(results[p], ev.label_scale)]
    pairs = _contrasts(prep, est, reps, can_compare, ev.policies, k, alpha, width)
    ranking = ranking_tiers([results[p] for p in keep], pairs)

    oof_rmse = float(np.sqrt(np.mean((prep.y[prep.train] - full.oof) ** 2))) * width
    rel = scaled_reliability(calibrator, ev.judge_scale, ev.label_scale)
    curve = calibration_curve(prep.s[: ev.n_rows], prep.X, full.predict,
                              [c.predict for c in jackknife_fits], ev.judge_scale, ev.label_scale)
    cal_info = CalibrationInfo(
        mode=calibrator.mode_,
        requested_mode=mode,
        n_folds=k,
        n_labels=int(prep.train.size),
        n_labelled_prompts=m_prompts,
        covariates=covariates,
        oof_rmse=oof_rmse,
        judge_range=judge_range,
        selection=dict(calibrator.selection_),
        reliability=tuple(rel),
        is_constant=calibrator.is_constant_,
        curve=curve,
    )
    if mode == "auto":
        notices.append(f"Calibration mode 'auto' chose '{calibrator.mode_}' (1-SE rule).")
    return Report(
        estimates=tuple(results[p] for p in keep),
        pairs=pairs,
        audits=tuple(audits),
        calibration=cal_info,
        ranking=ranking,
        judge_scale=ev.judge_scale,
        label_scale=ev.label_scale,
        alpha=alpha,
        notices=tuple(notices),
        warnings=tuple(warns),
        excluded=dict(ev.excluded),
        settings=settings,
    )


def calibration_curve(s01: np.ndarray, X: np.ndarray | None, full: Any,
                      jackknife: Sequence[Any], judge_scale: tuple[float, float],
                      label_scale: tuple[float, float]) -> tuple[dict[str, float], ...]:
    """The calibration map on a grid of judge scores, with its jackknife (OUA) standard error.

    ``full`` and ``jackknife`` are ``predict(S, X)`` callables (the full fit and the fold-deleted
    fits). The grid is the distinct judge scores ``s01`` (internal [0, 1] scale) when there are
    at most 101 of them, else 101 points over their range; covariates are held at their medians.
    Label scale.
    """
    distinct = np.unique(s01)
    grid = distinct if distinct.size <= 101 else np.linspace(distinct[0], distinct[-1], 101)
    Xg = None if X is None else np.tile(np.median(X, axis=0), (grid.size, 1))
    f = full(grid, Xg)
    reps = np.vstack([c(grid, Xg) for c in jackknife])
    se = np.sqrt(jackknife_variance(reps))
    jlo, jhi = judge_scale
    llo, lhi = label_scale
    return tuple(
        {"judge_score": float(jlo + (jhi - jlo) * g), "calibrated": float(llo + (lhi - llo) * v),
         "se": float((lhi - llo) * e)}
        for g, v, e in zip(grid, f, se, strict=True)
    )


def worse_status(status: str, new: str) -> str:
    """The more severe of two statuses (``OK`` < ``CAUTION`` < ``REFUSED``).

    One implementation, :func:`cje.diagnostics.gates.worse_status` (the gates need it without
    importing this module).

    Parameters
    ----------
    status, new : str
        Statuses to compare.

    Returns
    -------
    str

    Examples
    --------
    >>> worse_status("CAUTION", "OK"), worse_status("CAUTION", "REFUSED")
    ('CAUTION', 'REFUSED')
    """
    return _worse_status(status, new)


def level_gate(
    name: str,
    scores: np.ndarray,
    labelled_scores: np.ndarray,
    n_labels: int,
    audit: TransportAudit | None,
    is_constant: bool,
) -> tuple[str, tuple[str, ...], dict[str, Any]]:
    """Status and reasons of one policy's level estimate (METHODS §6 gates)."""
    status = "OK"
    reasons: list[str] = []
    share = out_of_range_share(scores, labelled_scores)
    diag: dict[str, Any] = {"out_of_range_share": share}

    def worse(new: str) -> None:
        nonlocal status
        status = worse_status(status, new)

    if audit is not None:
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
    if n_labels == 0 and (audit is None or audit.verdict in ("NOT GRADED",)):
        worse("CAUTION")
        reasons.append(
            "no oracle labels of its own: the calibration learned on other policies is assumed to "
            "transport; audit it with a probe slice (probes=/--probe) and a margin."
        )
    if share >= OUT_OF_RANGE_GATE:
        worse("REFUSED")
        reasons.append(
            f"{100 * share:.0f}% of its judge scores lie outside the labelled range "
            f"[{labelled_scores.min():g}, {labelled_scores.max():g}], where the calibration is "
            "extrapolated: its level is not reliable (it is left out of the ranking). Label responses "
            "with such scores."
        )
    if is_constant:
        worse("CAUTION")
        reasons.append("the calibration is constant: the judge does not rank the labels.")
    return status, tuple(reasons), diag


def scaled_reliability(calibrator: RewardCalibrator, judge_scale: tuple[float, float],
                       label_scale: tuple[float, float]) -> list[dict[str, float]]:
    """The calibrator's reliability table with judge and label columns on the user's scales."""
    (jlo, jhi), (llo, lhi) = judge_scale, label_scale
    rows = calibrator.reliability_rows()
    for row in rows:
        for col in ("mean_label", "mean_calibrated", "mean_oof"):
            row[col] = llo + (lhi - llo) * row[col]
        for col in ("judge_low", "judge_high"):
            row[col] = jlo + (jhi - jlo) * row[col]
    return rows


def naive_judge_mean(s01: np.ndarray, cluster: np.ndarray, alpha: float,
                     label_scale: tuple[float, float], w: np.ndarray | None = None
                     ) -> tuple[float, float, float]:
    """The raw judge mean (weighted by ``w`` if given, Hájek), mapped affinely from [0, 1] to
    the label scale, with its prompt-clustered t interval: what one would report without
    calibration."""
    llo, lhi = label_scale
    w = np.ones(s01.size) if w is None else w
    mean = float((w * s01).sum() / w.sum())
    v, g = cluster_variance(w * (s01 - mean), cluster)
    lo, hi = t_interval(mean, float(np.sqrt(v)) if g > 1 else 0.0, max(g - 1, 1), alpha)
    return llo + (lhi - llo) * mean, llo + (lhi - llo) * lo, llo + (lhi - llo) * hi


def _naive(prep: _Prepared, ev: EvalData, alpha: float) -> list[tuple[float, float, float]]:
    """Raw judge mean per policy on the label scale, with a clustered t CI."""
    return [naive_judge_mean(prep.s[rows], prep.cluster[rows], alpha, ev.label_scale)
            for rows in (np.flatnonzero(prep.group == p) for p in range(prep.n_policies))]


def _contrasts(
    prep: _Prepared,
    est: Any,
    reps: np.ndarray,
    keep: list[int],
    names: tuple[str, ...],
    k: int,
    alpha: float,
    width: float,
) -> tuple[Contrast, ...]:
    """All pairwise paired contrasts of the direct estimates (METHODS §5.3)."""
    n_clusters = int(prep.cluster.max()) + 1
    totals, present = {}, {}
    for p in keep:
        rows = np.flatnonzero(prep.group == p)
        totals[p] = np.bincount(prep.cluster[rows], weights=est.influence[rows],
                                minlength=n_clusters) / rows.size
        present[p] = np.bincount(prep.cluster[rows], minlength=n_clusters) > 0
    return paired_contrasts(totals, present, list(est.values), reps, keep, names, k, alpha, width)


def _uncalibrated(
    ev: EvalData,
    prep: _Prepared,
    naive: list[tuple[float, float, float]],
    m_prompts: int,
    alpha: float,
    notices: list[str],
    settings: dict[str, Any],
    only: Sequence[str] | None,
) -> Report:
    """Fewer than 4 labelled prompts: raw judge means on the judge scale, clearly marked."""
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
        rows = np.flatnonzero(prep.group == p)
        s = ev.judge_score[ev.policy_code == p]
        mean = float(s.mean())
        v, g = cluster_variance(s - mean, prep.cluster[rows])
        se = float(np.sqrt(v)) if g > 1 else float("nan")
        lo, hi = t_interval(mean, se, max(g - 1, 1), alpha)
        res.append(
            PolicyEstimate(
                policy=name, estimate=mean, se=se, ci_low=lo, ci_high=hi, alpha=alpha,
                df=float(max(g - 1, 1)), n=int(rows.size), n_prompts=g,
                n_labels=int(np.count_nonzero(ev.labelled[ev.policy_code == p])),
                var_if=v, var_cal=0.0, calibration_share=0.0, naive_estimate=naive[p][0],
                naive_ci_low=naive[p][1], naive_ci_high=naive[p][2],
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
