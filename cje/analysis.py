"""``cje.analyze``: the one call from judged responses to a :class:`~cje.report.Report`.

It checks every argument, loads and validates the data, resolves the estimator from the registry
(:mod:`cje.estimators.registry`) and hands over to the one pipeline (:mod:`cje.pipeline`): fresh
draws of each policy go to the direct data shape, logged data with log-probabilities to the
logged one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from cje._progress import check_progress
from cje.calibration.reward import Mode
from cje.data import EvalData, check_label_variation, load, shares_ids, with_calibration_rows
from cje.errors import CJEInputError, check_alpha
from cje.estimators.direct import DirectEstimator
from cje.estimators.registry import Estimator, resolve
from cje.report import Report

__all__ = ["analyze"]


@shares_ids  # (the fresh draws' prompt ids are coded once with the logged data's)
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
    estimator: str | Estimator = "auto",
    var_cap: float | None = None,
    mrdr_omega: str = "w",
    on_missing: str = "raise",
    residual_weights: str = "auto",
    probe_correction: bool = True,
    progress: bool | None = None,
    engine: str = "auto",
    client: Any = None,
) -> Report:
    """Calibrated estimates of each policy's value with honest confidence intervals.

    Two data shapes (docs: Methods): **fresh draws** of each policy (on-policy; the direct method),
    or **logged data** of one logging policy with the log-probability of each logged response
    under each target policy (``logprob_base`` and ``logprob[<target>]`` columns, or cje-eval's
    logged JSONL) — then the targets are evaluated off-policy, optionally with ``fresh_draws`` of
    the targets for the doubly robust estimators.

    Parameters
    ----------
    data : DataFrame, dict of arrays, path, glob, LazyFrame, Dask DataFrame or EvalData
        Judged responses in long format (``prompt_id, policy, judge_score, oracle_label?``, …),
        a JSONL/CSV/Parquet file, or a ``cje-eval`` fresh-draws directory (see :func:`cje.load`);
        or, for data larger than memory (docs: Large data and clusters), a glob or directory of
        Parquet / CSV / JSON Lines files, a ``polars.LazyFrame`` or a
        ``dask.dataframe.DataFrame``.
    judge_scale, label_scale : (low, high), optional
        Scales of the judge scores and the oracle labels; inferred (with a notice) if omitted.
        Results are reported on the label scale.
    calibration : DataFrame, path or EvalData, optional
        Extra labelled rows (``prompt_id, judge_score, oracle_label``) that only train the
        calibrator.
    probes : Mapping[str, source], optional
        Probe slices per policy: oracle-labelled random samples of that policy's own responses
        on prompts of their own. Each is audited (does the calibration transport to the
        policy? docs: Methods › Diagnostics and gates) and, with ``probe_correction``, corrects
        the policy's level. A probe file's ``policy`` column, if it has one, must name that
        policy on every row (anything else is refused).
    transport_margin : float, optional
        Practical margin ``δ_max`` (label units, smaller than the label scale's width) that
        grades the audits PASS / FAIL / INCONCLUSIVE. Without it audits are NOT GRADED; without
        probes it has nothing to grade (a notice says so).
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
        A policy whose dropped rows could move its level by more than half its standard error
        (their share of its rows, as a share of the label range) is CAUTION: nothing says they
        were dropped at random.
    fresh_draws : DataFrame, path or EvalData, optional
        Off-policy only: fresh draws of the target policies (long format with a ``policy``
        column, or a cje-eval fresh-draws directory), used by ``direct`` and the DR estimators;
        the weighting estimators (in memory) add their labels to the calibration and compare
        their weighted logged judge scores with them (CAUTION when they differ beyond |z| 3.29).
    estimator : str or Estimator
        ``"auto"`` (direct for fresh draws; with logged data ``"stacked-dr"`` when
        ``fresh_draws`` are given, else ``"calibrated-ips"``), ``"direct"``, or, for logged data,
        ``"ips"`` (unnormalised), ``"snips"``, ``"calibrated-ips"`` (SIMCal-W weights),
        ``"dr-cpo"``, ``"mrdr"``, ``"tmle"``, ``"stacked-dr"`` — any name in
        :func:`cje.estimators.registered` — or an estimator object with its hyper-parameters,
        e.g. ``cje.estimators.StackedDR(var_cap=1.0)`` or your own subclass of
        :class:`cje.estimators.Estimator`.
    var_cap : float, optional
        SIMCal-W variance cap of an estimator given by name (blends stabilised weights toward
        one; trades bias for variance). Off by default, chosen by
        ``simulations/study_var_cap.py``. Refused with an estimator without stabilised weights
        (``ips``, ``snips``, ``direct``).
    mrdr_omega : {"w", "w2", "w1sq"}
        MRDR regression weights ``w``, ``w²`` or ``(w − 1)²`` of an estimator given by name
        (``"mrdr"`` or ``"stacked-dr"``; refused with another).
    residual_weights : {"auto", "raw", "stable"}
        Off-policy: weights on the oracle residual term of calibrated IPS and the DR family.
        ``"raw"`` needs no assumption, but under poor overlap the term rests on the few labelled
        rows that hold the weight mass (wide intervals). ``"stable"`` (SIMCal-W weights, as in the
        CJE paper) is far less variable but assumes the judge score carries everything the target
        changes about the label (the calibration transports); where it does not, the estimate is
        biased toward the logging policy's calibration. Stabilised residual weights therefore add
        ``gap² + Var(gap)`` to the variance as an allowance, the gap being the difference between
        the two corrections (:attr:`~cje.report.PolicyEstimate.var_transport`). ``"auto"``
        (default): raw weights for a target whose raw-weight ESS is at least 10% and whose
        Hill tail index is at least 1, stabilised ones otherwise (few effective rows, or the
        largest weights dominate), where the overlap gate marks the estimate CAUTION and names
        that assumption. The diagnostics' ``residual_weights`` says which was used; the evidence
        is in ``simulations/results/study_tails.md`` and ``study_residual_weights.md``. Only
        calibrated IPS and the DR family read it: ``"stable"`` with IPS or SNIPS and any value
        with the direct method are refused, ``"raw"`` with IPS or SNIPS (raw-weighted anyway)
        gets a notice.
    probe_correction : bool
        A policy's probe labels enter its residual correction (default ``True``; docs: Methods ›
        Probe slices): direct estimates pool them with the policy's own labelled rows, and the
        off-policy estimators replace their weighted logged residual term by the probe's mean
        residual. The level then no longer rests on the calibration transporting, so a failed
        transport audit no longer refuses it (the audit is still reported, and the status says
        what was used). ``False``: probes only audit, as before. Not for
        ``DirectEstimator(augment=False)``, which has no residual term. Without probes it does
        nothing (a notice says so for ``False``).
    on_missing : {"raise", "drop"}
        DR estimators: a logged prompt without fresh draws of the target is an error, or with
        ``"drop"`` its rows are excluded for that target (counted in the diagnostics). With
        another estimator ``"drop"`` does nothing (a notice says so).
    progress : bool, optional
        A progress bar (on standard error) over the OUA jackknife's re-runs of the pipeline.
        ``None`` (default) shows it only on a terminal and only once the work has lasted a
        second (large off-policy analyses); ``True`` always; ``False`` never. Out of core also
        over the passes (polars: a bar per batch of files; Dask: its progress bar, or
        ``distributed.progress`` with a ``client``).
    engine : {"auto", "memory", "polars", "dask"}
        Where the rows are processed. ``"memory"``: loaded whole (:func:`cje.load`);
        ``"polars"`` (polars' streaming engine) and ``"dask"`` (any Dask scheduler) pass over
        the partitions without holding the rows, with the same numbers (direct mode on the judge
        score alone, and logged data with IPS, SNIPS, calibrated IPS and the DR family, whose
        fresh draws are held in memory: docs › Large data and clusters). ``"auto"`` (default): a
        LazyFrame streams with polars, a Dask DataFrame (or files with a ``client``) runs on
        Dask, a file set streams with polars when the in-memory engine would need more than
        half the available memory, everything else runs in memory
        (:func:`cje.pipeline.streaming.choose_engine`).
    client : dask.distributed.Client, optional
        ``engine="dask"``: the cluster to run on (default: Dask's current scheduler, e.g. the
        last ``Client`` created). Refused with ``engine="memory"`` or ``"polars"``; with
        ``"auto"`` on data analysed in memory it does nothing (a notice says so).

    Returns
    -------
    Report

    Raises
    ------
    CJEInputError
        Bad data, or a misused argument, checked before any data is read: the message names the
        argument, the value and the fix. Strings are not taken for lists (``policies="base"``
        must be ``policies=["base"]``), and booleans, strings or fractions are not taken for
        integers or numbers (``seed=1.7`` and ``transport_margin="0.1"`` are refused). An
        option the estimator does not read, where the call clearly expects an effect
        (``var_cap``, ``mrdr_omega``, ``residual_weights`` as above), is refused; one that is
        merely irrelevant is kept, said in a notice, and recorded as not applied in the report's
        ``settings`` (its entry ``None``, the value given under ``"not_applied"``;
        :func:`no_effect`).

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
    mrdr_omega = check_choice("mrdr_omega", mrdr_omega, ("w", "w2", "w1sq"))
    residual_weights = check_choice("residual_weights", residual_weights, ("auto", "raw", "stable"))
    on_missing = check_choice("on_missing", on_missing, ("raise", "drop"))
    # an estimator option the estimator does not read: refused (var_cap, mrdr_omega,
    # residual_weights='stable') or said in a notice; a named estimator is known here, "auto"
    # once the data says logged or not (docs: Getting started, options that do nothing)
    given = {"var_cap": var_cap, "mrdr_omega": mrdr_omega, "residual_weights": residual_weights,
             "on_missing": on_missing}
    if isinstance(estimator, Estimator):
        if var_cap is not None or mrdr_omega != "w":
            raise CJEInputError(
                f"var_cap= / mrdr_omega= set the hyper-parameters of an estimator given by name; "
                f"estimator={estimator!r} is an object: set them on it instead, e.g. "
                "estimator=cje.estimators.StackedDR(var_cap=1.0, omega='w2')."
            )
        var_cap = getattr(estimator, "var_cap", None)
        mrdr_omega = getattr(estimator, "omega", mrdr_omega)
    else:  # a name, checked (and a non-estimator object refused) before any data is read
        resolve(estimator, logged=True, fresh=True)
    if not (isinstance(estimator, str) and estimator == "auto"):
        no_effect(resolve(estimator, logged=True, fresh=True), estimator, **given)
    else:  # "auto": refused here when each estimator it may resolve to refuses the option
        _auto_refusals(fresh_draws is not None, given)
    on_invalid = check_choice("on_invalid", on_invalid, ("raise", "drop"))
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
    if transport_margin is not None and label_scale is not None:  # the same check as below,
        _check_transport_margin(transport_margin, label_scale)  # before the data when it can be
    engine = check_choice("engine", engine, ("auto", "memory", "polars", "dask"))
    source = data  # as the caller gave it (the provenance's input)
    client_note = None
    if engine in ("memory", "polars") and client is not None:
        raise CJEInputError(f"client= is for engine='dask' (or 'auto'); engine={engine!r} was "
                            "given. Leave client out, or pass engine='dask'.")
    if engine != "memory" or isinstance(data, (str, os.PathLike)) or type(data).__module__.startswith(
            ("polars", "dask")):
        from cje.pipeline import streaming

        engine = streaming.choose_engine(data, engine, client)
        if engine != "memory":
            try:
                report = _analyze_out_of_core(
                    data, engine=engine, client=client, judge_scale=judge_scale,
                    label_scale=label_scale, calibration=calibration, probes=probes,
                    fresh_draws=fresh_draws, covariates=cov, on_invalid=on_invalid,
                    estimator=estimator, alpha=alpha, mode=mode, n_folds=n_folds, seed=seed,
                    policies=policies, columns=columns, probe_correction=probe_correction,
                    progress=progress, transport_margin=transport_margin, var_cap=var_cap,
                    residual_weights=residual_weights, mrdr_omega=mrdr_omega,
                    on_missing=on_missing, given=given)
            except CJEInputError:
                raise
            except Exception:
                # a file the engine's parser could not read (a truncated JSON line, a ragged
                # CSV line, a bare Infinity): named by line, as in memory, when one is found
                streaming.explain_unreadable(data, columns)
                raise
            return _probe_option_notices(report, probes, transport_margin, probe_correction)
        if client is not None:  # engine "auto" chose memory: the client would run nothing
            client_note = (f"client= has no effect: this data ({type(data).__name__}) is "
                           "analysed in memory; a client runs engine='dask' on files or a Dask "
                           "DataFrame (pass engine='dask' to send this data there).")
        # in memory: a glob or a directory of files is read whole, a lazy frame collected
        files = streaming.expand_files(data)
        if files is not None and (len(files) > 1 or files[0] != Path(data)):
            data = streaming.read_files_in_memory(files, columns)
        elif streaming.is_partitioned(data):
            data = data.collect() if hasattr(data, "collect") else data.compute()
    ev = load(data, judge_scale=judge_scale, label_scale=label_scale, columns=columns,
              covariates=cov, on_invalid=on_invalid)  # type: ignore[arg-type]
    logged = bool(ev.logprobs)
    if not logged and (fresh_draws is not None or not isinstance(
            resolve(estimator, logged=False, fresh=False), DirectEstimator)):
        raise CJEInputError(
            f"estimator={estimator!r} / fresh_draws= are for logged data, which needs the "
            "logging policy's log-probabilities ('logprob_base') and each target's "
            "('logprob[<target>]'); this data has none. For fresh draws of each policy use "
            "the default estimator ('direct')."
        )
    used = resolve(estimator, logged=logged, fresh=fresh_draws is not None)
    option_notes = no_effect(used, estimator, **given)
    if calibration is not None:
        with _naming("calibration"):
            extra = load(calibration, judge_scale=ev.judge_scale,
                         label_scale=label_scale if label_scale is not None
                         else (ev.label_scale if ev.n_labels else None),
                         columns=columns, covariates=cov, policy="(calibration)")
        ev = with_calibration_rows(ev, extra)
    check_label_variation(ev.oracle_label[ev.oracle_label == ev.oracle_label])  # (not NaN)
    probe_data = {}
    known = list(ev.policies) + [t for t in ev.logprobs if t != "base"]
    if transport_margin is not None:
        _check_transport_margin(transport_margin, ev.label_scale)
    for pol, src in (probes or {}).items():
        if pol not in known:
            near = [k for k in known if str(k).strip().casefold() == str(pol).strip().casefold()]
            raise CJEInputError(
                f"Probe slice given for policy {pol!r}, which has no rows; the data has policies "
                f"{known}." + (f" Did you mean {near[0]!r} (names are compared exactly, case and "
                               "spaces included)?" if near else "")
            )
        with _naming(f"probes[{pol!r}]"):
            pr = load(src, judge_scale=ev.judge_scale, label_scale=ev.label_scale,
                      columns=columns, covariates=cov, policy=pol)
        _no_design(pr, f"probes[{pol!r}]")
        _probe_policy_column(pol, pr)
        _probe_repeats_labels(pol, pr, ev)
        if pr.n_labels < 2:
            raise CJEInputError(
                f"The probe slice of {pol!r} needs oracle labels on at least 2 rows; it has "
                f"{pr.n_labels}."
            )
        probe_data[pol] = pr
    if policies is not None and not logged:  # logged data: analyze_logged checks targets
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
        "probe_correction": bool(probe_correction),
    }
    if logged:
        settings.update(var_cap=var_cap, mrdr_omega=mrdr_omega, on_missing=on_missing,
                        residual_weights=residual_weights)
    _record_not_applied(settings, {**_unused(used, given),
                                   **_unused_probe_options(probes, transport_margin, probe_correction)})
    inputs = {"data": source, "calibration": calibration, "fresh_draws": fresh_draws,
              **{f"probes[{p!r}]": src for p, src in (probes or {}).items()}}
    if logged:
        from cje.pipeline.logged import analyze_logged

        def load_fresh() -> EvalData:
            """The fresh draws, loaded by analyze_logged: only its frame holds them, so they
            are freed once its long table has their rows (~200 MB at 4·10^6 draws)."""
            with _naming("fresh_draws"):
                fresh = load(fresh_draws, judge_scale=ev.judge_scale, label_scale=ev.label_scale,
                             columns=columns, covariates=cov)
            _no_design(fresh, "fresh_draws")
            return fresh

        report = analyze_logged(ev, load_fresh if fresh_draws is not None else None, probe_data,
                                estimator=estimator, alpha=alpha,
                                mode=mode, covariates=cov, n_folds=n_folds, seed=seed,
                                transport_margin=transport_margin, only=policies,
                                var_cap=var_cap, mrdr_omega=mrdr_omega, on_missing=on_missing,
                                settings=settings, residual_weights=residual_weights,
                                probe_correction=bool(probe_correction), progress=progress)
    else:
        from cje.pipeline.direct import analyze_direct

        direct = resolve(estimator, logged=False, fresh=False)
        report = analyze_direct(ev, probe_data, estimator=direct,  # type: ignore[arg-type]
                                alpha=alpha, mode=mode, covariates=cov, n_folds=n_folds,
                                seed=seed, transport_margin=transport_margin, only=policies,
                                settings=settings, probe_correction=bool(probe_correction),
                                progress=progress)
    # provenance: attached here, where the inputs as the caller gave them (paths, frames) are
    # known; the pipeline sees only the loaded EvalData
    from cje.export import provenance  # (lazy: keeps `import cje` light)

    probe_notes = tuple(f"probes[{pol!r}]: {note}" for pol, pr in probe_data.items()
                        for note in pr.notices)
    if probe_notes:  # e.g. repeated (prompt_id, policy) rows taken as draws: said, not hidden
        report = replace(report, notices=(*report.notices, *probe_notes))
    if client_note:
        option_notes.append(client_note)
    if option_notes:  # options the estimator used does not read (settings: "not_applied")
        report = replace(report, notices=(*report.notices, *option_notes))
    report = _probe_option_notices(report, probes, transport_margin, probe_correction)
    return replace(report, provenance=provenance(inputs))


def _probe_option_notices(report: Report, probes: Any, transport_margin: float | None,
                          probe_correction: Any) -> Report:
    """The probe options given without a probe slice: said in a notice (the CLI refuses them)."""
    notes = []
    if transport_margin is not None and not probes:
        # it grades the probe slices' transport audits; without a probe it has nothing to grade
        notes.append(f"transport_margin={transport_margin:g} has no effect: it grades the "
                     "transport audits of probe slices, and none was given (probes=).")
    if not probe_correction and not probes:
        notes.append("probe_correction=False has no effect: it keeps probe slices' labels out of "
                     "their policies' levels, and no probe slice was given (probes=).")
    return replace(report, notices=(*report.notices, *notes)) if notes else report


#: The estimator options of :func:`analyze` that not every estimator reads, and what each sets.
_OPTION_USE = {
    "var_cap": "it caps the variance of SIMCal-W stabilised weights",
    "mrdr_omega": "it sets the regression weights of MRDR's outcome model (estimator 'mrdr', or "
                  "'stacked-dr' whose member it is; both need fresh draws of the targets)",
    "residual_weights": "it chooses raw or SIMCal-W stabilised weights for the oracle residual "
                        "term of calibrated-ips and the doubly robust estimators",
    "on_missing": "it drops logged rows whose prompt has no fresh draws of the target, which "
                  "only the doubly robust estimators (dr-cpo, mrdr, tmle, stacked-dr) need",
}


def _check_transport_margin(transport_margin: float, label_scale: tuple[float, float]) -> None:
    """Refuse a transport margin at least as wide as the label scale (every audit would PASS)."""
    lo, hi = label_scale
    if transport_margin >= hi - lo:
        raise CJEInputError(
            f"transport_margin={transport_margin:g} is at least the width of the label scale "
            f"({lo:g}, {hi:g}): every transport audit would PASS, whatever the probe shows. It is "
            f"in label units: use a practical margin, e.g. transport_margin={0.05 * (hi - lo):g} "
            "(5% of the scale)."
        )


def _auto_refusals(fresh: bool, given: Mapping[str, Any]) -> None:
    """``estimator="auto"``: refuse, before any data is read, an option that every estimator
    ``"auto"`` may resolve to would refuse (:func:`no_effect`; the message names both).

    With ``fresh_draws`` it is stacked DR (logged data; it reads every option) or a refusal of
    ``fresh_draws`` itself (fresh draws of each policy); without, the direct method or
    calibrated IPS, neither of which reads ``mrdr_omega``. What depends on the data (``var_cap``
    and ``residual_weights``, read by calibrated IPS only) is checked once it is read."""
    if fresh:
        return
    for name, value in given.items():
        errors = []
        for logged in (False, True):
            try:
                no_effect(resolve("auto", logged=logged, fresh=False), "auto", **{name: value})
            except CJEInputError as exc:
                errors.append(str(exc))
        if len(errors) == 2:  # refused both ways: said for both
            raise CJEInputError(errors[0].replace(
                "estimator='auto' (here 'direct')", "estimator='auto' without fresh_draws= "
                "('direct' on fresh draws of each policy, 'calibrated-ips' on logged data)"))


def _reads(est: Estimator) -> dict[str, bool]:
    """Which of :data:`_OPTION_USE` the estimator reads: a ``var_cap`` or ``omega``
    hyper-parameter, stabilised weights (``residual_weights``), and the logged rows' fresh draws
    (``on_missing``: estimators that need fresh draws and estimate on the logged rows)."""
    import dataclasses

    fields = {f.name for f in dataclasses.fields(est)} if dataclasses.is_dataclass(est) else set()
    return {"var_cap": "var_cap" in fields, "mrdr_omega": "omega" in fields,
            "residual_weights": bool(est.stabilised),
            "on_missing": bool(est.needs_fresh) and est.sample == "logged"}


#: The defaults of the options in :data:`_OPTION_USE`.
_OPTION_DEFAULT = {"var_cap": None, "mrdr_omega": "w", "residual_weights": "auto", "on_missing": "raise"}


def _unused(est: Estimator, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options of ``given`` not at their defaults that ``est`` does not read."""
    reads = _reads(est)
    return {k: v for k, v in given.items() if v != _OPTION_DEFAULT[k] and not reads[k]}


def no_effect(est: Estimator, asked: Any, *, var_cap: float | None = None, mrdr_omega: str = "w",
              residual_weights: str = "auto", on_missing: str = "raise") -> list[str]:
    """The estimator options given (not at their defaults) that ``est`` does not read.

    Refused when the caller clearly expects an effect — a variance cap, MRDR regression weights
    or stabilised residual weights the estimator does not have, or any residual weights with
    the direct method, which uses no importance weights — and otherwise returned as notices
    (``residual_weights='raw'`` with IPS or SNIPS, whose residual term is raw-weighted anyway;
    ``on_missing='drop'`` with an estimator that needs no fresh draws on the logged prompts).

    Parameters
    ----------
    est : Estimator
        The estimator that runs (``"auto"`` resolved).
    asked : str or Estimator
        The ``estimator=`` as given, named in the messages.
    var_cap, mrdr_omega, residual_weights, on_missing
        As given to :func:`analyze`.

    Returns
    -------
    list of str
        The notices.

    Raises
    ------
    CJEInputError
        An option that ``est`` does not read and whose effect the caller expects.

    Examples
    --------
    >>> from cje.estimators import SNIPS
    >>> no_effect(SNIPS(), "snips", on_missing="drop")  # doctest: +ELLIPSIS
    ["on_missing='drop' has no effect with estimator 'snips': it drops logged rows ..."]
    >>> no_effect(SNIPS(), "snips", var_cap=1.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: var_cap=1.0 has no effect with estimator 'snips': it caps ...
    """
    weightless = est.overlap is None  # the direct method: no importance weights at all
    what = (f"estimator='auto' (here {est.name!r})" if isinstance(asked, str) and asked == "auto"
            else f"estimator {est.name!r}")
    notes = []
    unused = _unused(est, {"var_cap": var_cap, "mrdr_omega": mrdr_omega,
                           "residual_weights": residual_weights, "on_missing": on_missing})
    for name, value in unused.items():
        why = _OPTION_USE[name]
        if weightless and name != "mrdr_omega":
            why += (", and the direct method uses no importance weights" if name != "on_missing"
                    else ", and the direct method estimates on the fresh draws")
        elif name == "residual_weights":
            why += f"; {est.name!r} weights it by the raw importance weights always"
        elif name == "var_cap":
            why += f", which {est.name!r} does not use (calibrated-ips and the DR estimators do)"
        text = f"{name}={value!r} has no effect with {what}: {why}."
        refuse = name in ("var_cap", "mrdr_omega") or (
            name == "residual_weights" and (value == "stable" or weightless))
        if refuse:
            raise CJEInputError(f"{text} Leave it out, or choose an estimator that reads it.")
        notes.append(text)
    return notes


def _unused_probe_options(probes: Any, transport_margin: float | None,
                          probe_correction: Any) -> dict[str, Any]:
    """``transport_margin`` and ``probe_correction=False`` given without a probe slice."""
    if probes:
        return {}
    return {**({"transport_margin": transport_margin} if transport_margin is not None else {}),
            **({"probe_correction": False} if not probe_correction else {})}


def _record_not_applied(settings: dict[str, Any], unused: Mapping[str, Any]) -> None:
    """A report's ``settings`` do not record an option given without effect as if applied: its
    entry becomes ``None`` and ``settings["not_applied"]`` holds the value given."""
    for name in unused:
        if name in settings:
            settings[name] = None
    if unused:
        settings["not_applied"] = dict(unused)


def _analyze_out_of_core(data: Any, *, engine: str, client: Any, calibration: Any, probes: Any,
                         fresh_draws: Any, covariates: tuple[str, ...], on_invalid: str,
                         estimator: Any, probe_correction: bool, policies: Any, mode: Mode,
                         **kw: Any) -> Report:
    """``engine="polars"`` / ``"dask"``: what is not supported out of core yet is refused here,
    before any data is read (docs: Large data and clusters)."""
    memory = "Use engine='memory' (it needs the data in memory)."
    from cje.pipeline.streaming import check_csv_lines, out_of_core_files
    from cje.pipeline.streaming_logged import has_logprobs, input_columns

    # an input the engines read at all (else: what they read), with whole CSV lines
    check_csv_lines(out_of_core_files(data, engine))
    names = input_columns(data)
    if names is not None and has_logprobs(names, kw["columns"]):
        return _logged_out_of_core(data, engine=engine, client=client, calibration=calibration,
                                   probes=probes, fresh_draws=fresh_draws, covariates=covariates,
                                   on_invalid=on_invalid, estimator=estimator, mode=mode,
                                   policies=policies, probe_correction=probe_correction, **kw)
    for given, what in ((calibration is not None, "calibration="), (bool(probes), "probes="),
                        (fresh_draws is not None, "fresh_draws= (off-policy)"),
                        (bool(covariates), "covariates=")):
        if given:
            raise CJEInputError(f"{what} is not supported out of core yet (engine={engine!r}). "
                                + memory)
    direct = resolve(estimator, logged=False, fresh=False)
    if not isinstance(direct, DirectEstimator):
        raise CJEInputError(
            f"estimator={estimator!r} is for logged data, which needs the logging policy's "
            "log-probabilities ('logprob_base') and each target's ('logprob[<target>]'); this "
            "data has none. For fresh draws of each policy use the default estimator ('direct').")
    option_notes = no_effect(direct, estimator, **kw["given"])
    unused = {**_unused(direct, kw["given"]),
              **_unused_probe_options(probes, kw["transport_margin"], probe_correction)}
    from cje.pipeline.streaming import analyze_partitioned

    settings = {"alpha": kw["alpha"], "mode": mode, "covariates": [], "n_folds": kw["n_folds"],
                "seed": kw["seed"], "transport_margin": kw["transport_margin"],
                "policies": list(policies) if policies is not None else None,
                "estimator": "direct", "probe_correction": bool(probe_correction)}
    _record_not_applied(settings, unused)
    report = analyze_partitioned(data, engine=engine, client=client, estimator=direct,
                                 judge_scale=kw["judge_scale"], label_scale=kw["label_scale"],
                                 columns=kw["columns"], alpha=kw["alpha"], mode=mode,
                                 n_folds=kw["n_folds"], seed=kw["seed"], only=policies,
                                 settings=settings, progress=kw["progress"],
                                 on_invalid=on_invalid)
    from cje.export import provenance

    src = data if isinstance(data, (str, os.PathLike)) else None
    prov = provenance({"data": src} if src is not None else {})
    if src is None:
        prov["inputs"] = {"data": {"in_memory": type(data).__name__}}
    return replace(report, provenance=prov, notices=(*report.notices, *option_notes))


def _logged_out_of_core(data: Any, *, engine: str, client: Any, calibration: Any, probes: Any,
                        fresh_draws: Any, covariates: tuple[str, ...], on_invalid: str,
                        estimator: Any, mode: Mode, policies: Any, var_cap: Any = None,
                        residual_weights: str = "auto", mrdr_omega: str = "w",
                        on_missing: str = "raise", **kw: Any) -> Report:
    """Logged data with ``engine="polars"`` / ``"dask"``: IPS, SNIPS, calibrated IPS and the DR
    family out of core
    (:mod:`cje.pipeline.streaming_logged`); what is not supported yet is refused before any
    row is read."""
    memory = "Use engine='memory' (it needs the data in memory)."
    for given, what in ((calibration is not None, "calibration="), (bool(probes), "probes="),
                        (bool(covariates), "covariates="),
                        (on_invalid == "drop", "on_invalid='drop' on logged data")):
        if given:
            raise CJEInputError(f"{what} is not supported out of core yet (engine={engine!r}). "
                                + memory)
    from cje.pipeline.streaming_logged import analyze_logged_partitioned

    used = resolve(estimator, logged=True, fresh=fresh_draws is not None)
    given = kw.pop("given")
    option_notes = no_effect(used, estimator, **given)
    unused = {**_unused(used, given), **_unused_probe_options(
        probes, kw["transport_margin"], kw.get("probe_correction", True))}

    def load_fresh(judge_scale: Any, label_scale: Any) -> Any:
        """The fresh draws (the DR family holds them in memory), on the logged data's scales."""
        from cje._checks import naming

        with naming("fresh_draws"):
            fresh = load(fresh_draws, judge_scale=judge_scale, label_scale=label_scale,
                         columns=kw["columns"], covariates=())
        _no_design(fresh, "fresh_draws")
        return fresh

    settings = {"alpha": kw["alpha"], "mode": mode, "covariates": [], "n_folds": kw["n_folds"],
                "seed": kw["seed"], "transport_margin": kw["transport_margin"],
                "policies": list(policies) if policies is not None else None,
                "estimator": "auto", "probe_correction": bool(kw.get("probe_correction", True)),
                "var_cap": var_cap, "residual_weights": residual_weights}
    _record_not_applied(settings, unused)
    report = analyze_logged_partitioned(
        data, engine=engine, client=client, estimator=estimator, judge_scale=kw["judge_scale"],
        label_scale=kw["label_scale"], columns=kw["columns"], alpha=kw["alpha"], mode=mode,
        n_folds=kw["n_folds"], seed=kw["seed"], only=policies, settings=settings,
        residual_weights=residual_weights, var_cap=var_cap, mrdr_omega=mrdr_omega,
        fresh_loader=load_fresh if fresh_draws is not None else None, on_missing=on_missing,
        progress=kw["progress"])
    from cje.export import provenance

    src = data if isinstance(data, (str, os.PathLike)) else None
    prov = provenance({"data": src} if src is not None else {})
    if src is None:
        prov["inputs"] = {"data": {"in_memory": type(data).__name__}}
    return replace(report, provenance=prov, notices=(*report.notices, *option_notes))


def _no_design(ev: Any, what: str) -> None:
    """A non-uniform ``label_probability`` column where it is not used yet is refused, not
    ignored (docs: Methods › Labels sampled with known probabilities)."""
    if ev.label_probability is not None:
        raise CJEInputError(
            f"{what} has a non-uniform 'label_probability' column, which is supported only on the "
            "main data of fresh draws (direct mode) for now. Drop the column if its labels are a "
            "uniform random sample, or analyse it as the main data.")


def _probe_repeats_labels(pol: str, pr: Any, ev: Any) -> None:
    """A probe slice that repeats labelled rows of its policy in the data is refused: the same
    label would enter the residual term twice (as the policy's own label and as the probe's,
    pooled as if independent, so the interval is too narrow), and the repeated rows train the
    calibration, so the transport audit would read in-sample residuals. A repeat is a probe row
    with the ``(prompt_id, draw_idx, judge_score, oracle_label)`` of a labelled row of ``pol``.
    Labels on responses the data holds *unlabelled* are new labels and are kept."""
    import numpy as np
    import pandas as pd

    if pol not in ev.policies:
        return
    mine = np.flatnonzero((ev.policy_code == ev.policies.index(pol)) & ev.labelled)
    keep = np.flatnonzero(pr.labelled)
    if not mine.size or not keep.size:
        return

    def keys(d: Any, rows: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({"prompt_id": d.prompts[d.prompt_code[rows]], "draw": d.draw_idx[rows],
                             "s": d.judge_score[rows], "y": d.oracle_label[rows]})

    probe = keys(pr, keep)
    hit = probe.merge(keys(ev, mine).drop_duplicates(), how="left", indicator=True)["_merge"]
    n = int((hit == "both").sum())
    if not n:
        return
    first = probe.loc[(hit == "both").to_numpy()].iloc[0]
    raise CJEInputError(
        f"The probe slice of {pol!r} (probes[{pol!r}]) repeats labelled rows of {pol!r} in the "
        f"data: {n} of its {keep.size} labelled rows match one in prompt, draw, judge score and "
        f"label (e.g. prompt_id={first['prompt_id']!r}). Those labels would count twice (as the "
        f"policy's own and as the probe's) and the interval would be too narrow. Give as the "
        f"probe only labels not in the data (the policy's own labels already correct its level); "
        f"a different response to the same prompt needs its own draw_idx."
    )


def _probe_policy_column(pol: str, pr: Any) -> None:
    """A probe file whose own ``policy`` column names another policy (or several) is refused:
    its rows would otherwise correct ``pol``'s level silently (a file of the wrong policy, or
    the whole labelled data given as one policy's probe). Without the column every row is
    ``pol``'s (``load(policy=pol)``)."""
    import numpy as np

    other = [name for name in pr.policies if name != pol]
    if not other:
        return
    bad = [i for i, name in enumerate(pr.policies) if name != pol]
    row = int(np.flatnonzero(np.isin(pr.policy_code, bad))[0])
    near = [name for name in other if str(name).strip().casefold() == pol.strip().casefold()]
    hint = (f" ({near[0]!r} differs from {pol!r} only in case or spaces: fix the key or the column)"
            if near else "")
    raise CJEInputError(
        f"The probe slice given for policy {pol!r} (probes[{pol!r}]) has a 'policy' column naming "
        f"{other!r}; row {row} (prompt_id={pr.prompts[pr.prompt_code[row]]!r}) has "
        f"{pr.policies[pr.policy_code[row]]!r}{hint}. A probe slice holds labelled responses of "
        f"its policy only: keep the rows of {pol!r} (or drop the column)."
    )
