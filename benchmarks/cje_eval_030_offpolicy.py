"""Run the reference package ``cje-eval==0.3.0``'s off-policy estimators on the arena sample.

``cje-eval`` 0.3.0 is the last release that still ships the off-policy estimators
(raw / calibrated IPS, DR-CPO, MRDR, TMLE, stacked DR); later releases dropped
them. It must live in its own virtualenv, never the project's environment.
Reproduce the environment with (Python 3.11; the wheel declares
``Requires-Python >=3.9,<3.13``, checked with ``pip download --no-deps``)::

    python3 -m venv /work/venvs/cje-eval-030
    /work/venvs/cje-eval-030/bin/pip install cje-eval==0.3.0

and run::

    /work/venvs/cje-eval-030/bin/python benchmarks/cje_eval_030_offpolicy.py \
        [--data /work/shared/data/arena_sample] [--repeats 20] \
        [--estimators raw-ips,calibrated-ips,dr-cpo,mrdr,tmle,stacked-dr] \
        > benchmarks/results_cje_eval_030_arena.json

What runs: the package's one-call API ``cje.analyze_dataset(logged_data_path=...,
fresh_draws_dir=..., estimator=NAME)`` with every option at its default. The
arena files are read in place: cje-eval 0.3.0's loaders accept ``judge_score`` /
``oracle_label`` as top-level fields (they also look inside ``metadata``) and
find ``<policy>_responses.jsonl`` in the fresh-draws folder, so no conversion is
needed. Calibration is fitted on the oracle labels present in the logged file
(480 of 1000 rows); the base policy's fresh draws are never pooled in (the
package pools other sources only when a calibration file is given). Fresh draws
are passed only to the DR estimators.

Timing: the package is imported once, untimed. Stacked DR runs first: one
warm-up run (whose output is reported), then ``--repeats`` timed runs, each the
whole pipeline (reading the files, judge calibration with its cross-fitted
folds, weight stabilisation, the three DR components, stacking, and the default
oracle jackknife), timed in this process with ``time.perf_counter``. The other
estimators run once each afterwards, and their single wall time is reported.
Peak RSS (``getrusage``) is read after imports, after the stacked-DR runs and at
the end; it is a process-wide high-water mark. Process CPU time
(``time.process_time``, all threads) is reported next to each wall time, and the
load average at start and end, since the machine may be shared.

Output: exactly one JSON object on stdout. Logging, warnings and anything the
package prints go to stderr (package warnings from the reported run are also
collected into the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import enum
import json
import logging
import math
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

ALL_ESTIMATORS = ["raw-ips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr"]
DR_ESTIMATORS = {"dr-cpo", "mrdr", "tmle", "stacked-dr"}
EXPECTED_VERSION = "0.3.0"


def _peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def _jsonable(x: Any) -> Any:
    """Convert numpy scalars/arrays, enums, tuples and non-finite floats for JSON."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, enum.Enum):
        return _jsonable(x.value)
    if np is not None:
        if isinstance(x, np.ndarray):
            return [_jsonable(v) for v in x.tolist()]
        if isinstance(x, np.generic):
            x = x.item()
    if isinstance(x, bool) or x is None or isinstance(x, (int, str)):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    return str(x)


def _scalars(d: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Keep only scalar entries (and short lists) of a dict."""
    out: dict[str, Any] = {}
    if not isinstance(d, dict):
        return out
    for k, v in d.items():
        if k in skip:
            continue
        v = _jsonable(v)
        if isinstance(v, (int, float, str, bool)) or v is None:
            out[k] = v
        elif isinstance(v, list) and len(v) <= 8 and all(
            isinstance(e, (int, float, str, bool)) or e is None for e in v
        ):
            out[k] = v
    return out


class _Collector(logging.Handler):
    """Collect warning-level log messages of one run (deduplicated, in order)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = f"{record.levelname}: {record.getMessage()}"
        if msg not in self.messages:
            self.messages.append(msg)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _data_summary(data: Path) -> dict[str, Any]:
    """Facts about the input computed directly from the files (not by cje-eval)."""
    import numpy as np

    rows = _read_jsonl(data / "logged_data.jsonl")
    n = len(rows)
    n_oracle = sum(1 for r in rows if r.get("oracle_label") is not None)
    policies = sorted(rows[0]["target_policy_logprobs"]) if rows else []
    base = np.array([r["base_policy_logprob"] for r in rows], dtype=float)
    raw_ess = {}
    for p in policies:
        lr = np.array([r["target_policy_logprobs"][p] for r in rows], dtype=float) - base
        w = np.exp(lr - lr.max())
        raw_ess[p] = float(w.sum() ** 2 / (n * (w**2).sum()))
    probe = {}
    probe_dir = data / "probe_slice"
    for p in policies:
        f = probe_dir / f"{p}_probe.jsonl"
        if f.exists():
            labels = [r["oracle_label"] for r in _read_jsonl(f) if r.get("oracle_label") is not None]
            if labels:
                probe[p] = {"n": len(labels), "mean_oracle": float(np.mean(labels)),
                            "se": float(np.std(labels, ddof=1) / math.sqrt(len(labels)))}
    return {
        "n_logged": n,
        "n_oracle_labels_logged": n_oracle,
        "oracle_coverage": n_oracle / n if n else None,
        "target_policies": policies,
        "raw_ess_fraction_unclipped": raw_ess,
        "probe_slice_reference": probe,
        "note": "computed by this script from the files; probe-slice means are the only "
        "ground truth for the targets (n=50 each)",
    }


def _run_once(name: str, data: Path, collector: _Collector | None = None):
    from cje import analyze_dataset

    kwargs: dict[str, Any] = {
        "logged_data_path": str(data / "logged_data.jsonl"),
        "estimator": name,
    }
    if name in DR_ESTIMATORS:
        kwargs["fresh_draws_dir"] = str(data / "fresh_draws")
    root = logging.getLogger()
    if collector is not None:
        root.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c0 = time.process_time()
            t0 = time.perf_counter()
            result = analyze_dataset(**kwargs)
            elapsed = time.perf_counter() - t0
            cpu = time.process_time() - c0
    finally:
        if collector is not None:
            root.removeHandler(collector)
    if collector is not None:
        for w in caught:
            msg = f"{w.category.__name__}: {w.message}"
            if msg not in collector.messages:
                collector.messages.append(msg)
    return result, elapsed, cpu


def _summarise(name: str, r: Any) -> dict[str, Any]:
    """Per-policy estimates, SEs, CIs and diagnostics of one EstimationResult."""
    md = r.metadata if isinstance(r.metadata, dict) else {}
    diag = r.diagnostics
    dd = {f.name: getattr(diag, f.name) for f in dataclasses.fields(diag)} if diag else {}
    policies = list(md.get("target_policies") or dd.get("policies") or [])
    try:
        lo, hi = r.confidence_interval(0.05)
    except Exception:  # pragma: no cover - keep the benchmark going
        lo = hi = [float("nan")] * len(policies)
    dof = md.get("degrees_of_freedom") or {}
    se_comp = md.get("se_components") or {}
    oracle_var = se_comp.get("oracle_variance_per_policy") or {}
    cal_info = md.get("calibration_info") or {}
    stack_w = md.get("stacking_weights") or {}
    stack_diag = md.get("stacking_diagnostics") or {}

    def per(key: str, p: str) -> Any:
        v = dd.get(key)
        return v.get(p) if isinstance(v, dict) else None

    out_p: dict[str, Any] = {}
    for i, p in enumerate(policies):
        entry: dict[str, Any] = {
            "estimate": r.estimates[i],
            "se": r.standard_errors[i],
            "ci95": [lo[i], hi[i]],
            "ci_df": (dof.get(p) or {}).get("df"),
            "n_samples_used": (r.n_samples_used or {}).get(p),
            "oracle_jackknife_variance": oracle_var.get(p),
            "se_before_oracle_jackknife": (dd.get("standard_errors") or {}).get(p)
            if name == "stacked-dr"
            else None,
            "ess_fraction_of_weights_used": per("ess_per_policy", p),
            "max_weight_of_weights_used": per("max_weight_per_policy", p),
            "status": per("status_per_policy", p),
            "tail_index_hill": per("tail_indices", p),
            "hellinger_affinity_raw": per("hellinger_per_policy", p),
            "ttc": per("ttc_per_policy", p),
            "judge_space_bhattacharyya": per("bc_sigmaS_per_policy", p),
            "reliability_gate": (md.get("reliability_gates") or {}).get(p),
        }
        if p in cal_info:  # calibrated-ips: SIMCal weight stabilisation, raw vs calibrated
            ci = cal_info[p]
            entry["weight_stabilization"] = {
                "ess_fraction_raw_hajek": ci.get("ess_before_frac"),
                "ess_fraction_calibrated": ci.get("ess_after_frac"),
                "var_raw_hajek": ci.get("var_before"),
                "var_calibrated": ci.get("var_after"),
                "gamma_mean_over_outer_folds": ci.get("gamma"),
                "mixture_weights": ci.get("mixture_weights"),
                "candidates": ci.get("candidates"),
                "n_outer_folds": ci.get("n_outer_folds"),
            }
        if p in stack_w:
            sd = stack_diag.get(p) or {}
            entry["stacking"] = {
                "components": sd.get("components"),
                "weights": stack_w[p],
                "max_pairwise_if_correlation": sd.get("max_pairwise_correlation"),
                "condition_pre": sd.get("condition_pre"),
                "condition_post": sd.get("condition_post"),
                "se_if": sd.get("se_if"),
            }
        drd = (dd.get("dr_diagnostics_per_policy") or {}).get(p)
        if drd:
            entry["dr_diagnostics"] = _scalars(drd)
        mc = (md.get("mc_diagnostics") or md.get("mc_variance_diagnostics") or {}).get(p)
        if isinstance(mc, dict):
            entry["fresh_draw_mc"] = _scalars(mc)
        out_p[p] = entry

    overall = {
        "method": r.method,
        "weight_ess_overall": dd.get("weight_ess"),
        "overlap_quality": dd.get("overlap_quality"),
        "calibration_rmse": dd.get("calibration_rmse"),
        "n_oracle_labels_used": dd.get("n_oracle_labels"),
        "outcome_r2_range": dd.get("outcome_r2_range"),
        "outcome_rmse_mean": dd.get("outcome_rmse_mean"),
        "var_cap": md.get("var_cap"),
        "ess_floor": md.get("ess_floor"),
        "weight_method": md.get("weight_method"),
        "omega_mode": md.get("omega_mode"),
        "link": md.get("link"),
        "n_folds": md.get("n_folds"),
        "valid_components": md.get("valid_estimators"),
        "failed_components": md.get("failed_estimators"),
        "includes_oracle_uncertainty": se_comp.get("includes_oracle_uncertainty"),
    }
    return _jsonable({"overall": overall, "policies": out_p})


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/arena_sample"),
                        help="arena sample directory (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=20,
                        help="timed stacked-DR runs after one warm-up (default 20)")
    parser.add_argument("--estimators", default=",".join(ALL_ESTIMATORS),
                        help="comma-separated subset of: " + ",".join(ALL_ESTIMATORS))
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    names = [e.strip() for e in args.estimators.split(",") if e.strip()]
    bad = [e for e in names if e not in ALL_ESTIMATORS]
    if bad or not names:
        parser.error(f"unknown estimator(s) {bad}; choose from {ALL_ESTIMATORS}")
    args.estimator_list = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    data: Path = args.data
    if not (data / "logged_data.jsonl").is_file():
        print(f"error: {data}/logged_data.jsonl not found", file=sys.stderr)
        return 2
    if DR_ESTIMATORS & set(args.estimator_list) and not (data / "fresh_draws").is_dir():
        print(f"error: {data}/fresh_draws is not a directory", file=sys.stderr)
        return 2

    # Package log records go to stderr only (never stdout).
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")

    with contextlib.redirect_stdout(sys.stderr):
        import cje  # untimed import

        version = metadata.version("cje-eval")
        if version != EXPECTED_VERSION:
            print(f"error: expected cje-eval=={EXPECTED_VERSION}, found {version}",
                  file=sys.stderr)
            return 2
        rss_after_import = _peak_rss_mb()
        load_start = os.getloadavg()
        summary = _data_summary(data)

        results: dict[str, Any] = {}
        timings: dict[str, Any] = {}
        rss_after_stacked = None
        order = sorted(args.estimator_list, key=lambda e: e != "stacked-dr")
        for name in order:
            collector = _Collector()
            try:
                res, t_first, cpu_first = _run_once(name, data, collector)
            except Exception as exc:  # report, keep going with the others
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            entry = _summarise(name, res)
            entry["package_warnings"] = collector.messages
            results[name] = entry
            if name == "stacked-dr":
                times = []
                cpus = []
                max_est_diff = 0.0
                max_se_diff = 0.0
                for _ in range(args.repeats):
                    r2, t, c = _run_once(name, data)
                    times.append(t)
                    cpus.append(c)
                    max_est_diff = max(max_est_diff, float(abs(r2.estimates - res.estimates).max()))
                    max_se_diff = max(max_se_diff, float(abs(r2.standard_errors - res.standard_errors).max()))
                rss_after_stacked = _peak_rss_mb()
                timings[name] = {
                    "warmup_s": t_first,
                    "repeats": args.repeats,
                    "median_s": statistics.median(times),
                    "min_s": min(times),
                    "max_s": max(times),
                    "times_s": times,
                    "median_cpu_s": statistics.median(cpus),
                    "cpu_times_s": cpus,
                    "max_abs_estimate_diff_vs_warmup": max_est_diff,
                    "max_abs_se_diff_vs_warmup": max_se_diff,
                }
            else:
                timings[name] = {"single_run_s": t_first, "single_run_cpu_s": cpu_first}

    out = {
        "benchmark": "cje-eval 0.3.0 off-policy estimators on the arena sample",
        "package": {"name": "cje-eval", "version": version, "module_file": cje.__file__},
        "command": " ".join([sys.executable] + sys.argv),
        "data_dir": str(data),
        "settings": "analyze_dataset(...) defaults; calibration on the logged oracle labels; "
        "fresh draws passed to DR estimators only",
        "data_summary": summary,
        "results": results,
        "timings": timings,
        "peak_rss_mb": {
            "after_import": rss_after_import,
            "after_stacked_dr_runs": rss_after_stacked,
            "end": _peak_rss_mb(),
            "children": _peak_rss_mb(resource.RUSAGE_CHILDREN),
        },
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "loadavg_1_5_15_at_start": list(load_start),
            "loadavg_1_5_15_at_end": list(os.getloadavg()),
            "note": "timings are wall times on a shared 2-core machine; a load average "
            "above the core count means other work competed for the CPUs",
            "numpy": metadata.version("numpy"),
            "scipy": metadata.version("scipy"),
            "scikit-learn": metadata.version("scikit-learn"),
            "pandas": metadata.version("pandas"),
            "thread_env": {k: os.environ.get(k) for k in
                           ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        },
    }
    json.dump(_jsonable(out), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
