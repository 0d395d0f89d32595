"""Time the third-party ``cje-eval`` package's default analysis on the arena sample.

Run with the interpreter of a separate virtualenv that has ``cje-eval`` installed
(never the project's own environment), e.g.::

    python3 -m venv /work/venvs/cje-eval
    /work/venvs/cje-eval/bin/pip install cje-eval
    /work/venvs/cje-eval/bin/python benchmarks/cje_eval_arena.py \
        --data /work/shared/data/arena_sample --repeats 3

What is timed: cje-eval's documented one-call Direct analysis,
``cje.analyze_dataset(fresh_draws_dir=<data>/fresh_draws)``, with every option
left at its default. The base policy's file carries the oracle labels, so
calibration is fitted on them and reused for the other policies. The package is
imported once (untimed warm-up) before the timed repeats, which all run in this
process.

Output: exactly one JSON object on stdout. Logging, warnings and anything the
package prints go to stderr.

Not supported: a stacked doubly-robust mode. cje-eval removed its off-policy
estimators (IPS, DR, stacked-dr) in 0.4.0; they exist only on the frozen
``cje-eval==0.3.*`` line, which would need its own virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import platform
import resource
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS reports bytes.
    divisor = 1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0
    return peak / divisor


def _clean(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="arena sample directory (must contain fresh_draws/)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="number of timed runs (default 3)"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    fresh_dir = args.data / "fresh_draws"
    if not fresh_dir.is_dir():
        print(f"error: {fresh_dir} is not a directory", file=sys.stderr)
        return 2

    # Keep stdout clean for the single JSON object: anything the package
    # prints while importing or analysing goes to stderr instead.
    with contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        import cje  # warm-up import, not part of the timed runs

        import_seconds = time.perf_counter() - t0

        seconds: list[float] = []
        result = None
        estimate_runs: list[list[float]] = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            result = cje.analyze_dataset(fresh_draws_dir=str(fresh_dir))
            elapsed = time.perf_counter() - t0
            seconds.append(elapsed)
            estimate_runs.append([float(v) for v in result.estimates])
            print(f"[cje-eval run {i + 1}/{args.repeats}] {elapsed:.3f} s", file=sys.stderr)

    assert result is not None
    policies = list(result.metadata["target_policies"])
    ci_low, ci_high = result.confidence_interval()
    estimates = {
        p: [
            _clean(result.estimates[k]),
            _clean(ci_low[k]),
            _clean(ci_high[k]),
        ]
        for k, p in enumerate(policies)
    }
    standard_errors = {p: _clean(result.standard_errors[k]) for k, p in enumerate(policies)}

    report = {
        "package": "cje-eval",
        "version": metadata.version("cje-eval"),
        "mode": "direct fresh_draws",
        "call": "cje.analyze_dataset(fresh_draws_dir=<data>/fresh_draws)",
        "seconds": seconds,
        "median_seconds": statistics.median(seconds),
        "import_seconds": import_seconds,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "estimates": estimates,
        "estimates_format": "[estimate, ci_low, ci_high], 95% CI from result.confidence_interval()",
        "standard_errors": standard_errors,
        "estimates_identical_across_repeats": all(r == estimate_runs[0] for r in estimate_runs),
        "python": platform.python_version(),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
