"""The simulation studies behind cje's defaults (docs: Simulation results), as importable functions.

Each study is ``run(reps=None, *, n_jobs=1, seed=…, quick=False, out_dir=None, backend="loky",
scheduler=None, progress=None, command=None, resume=False, force=False) -> Path``: it runs
seeded replicates with :func:`cje.montecarlo.run_replicates` and writes ``study_<name>.md`` (a
markdown table, with the exact command and the measured runtime at the top), ``study_<name>.png``
(a figure) and ``study_<name>.parquet`` (the tidy replicate rows) to ``out_dir``. ``quick=True``
is a small tier for tests; ``resume=True`` keeps finished replicates from an earlier run. The
registry :data:`STUDIES` maps names to these functions; ``simulations/study_<name>.py`` and
``cje simulate NAME`` call them through :func:`main` / :func:`run_study`.

Where results go: ``cje simulate`` and ``run()`` write to :func:`default_out_dir` (a per-user
data directory, outside any source tree) unless ``--out-dir`` / ``out_dir`` says otherwise; the
``simulations/study_<name>.py`` scripts write to ``simulations/results/`` beside them, where the
published results live. Existing results are never overwritten without ``--force``
(``force=True``): a run that would replace ``study_<name>.md`` or ``.png`` stops before any work
(exit code 2 from the command line), and one that finds ``study_<name>.parquet`` asks for
``--resume`` (continue that run; it then rewrites that run's tables) or ``--force`` (start
afresh).

======================  ==================================================================
``coverage``            coverage, bias, RMSE of the direct estimator: oracle fraction × n
``naive_ci``            naive CIs vs OUA, labels on every policy or on one policy only
``overlap``             off-policy estimators (IPS family vs DR) across overlap levels: ESS
                        raw vs stabilised, coverage, bias, RMSE, gates, ranking of targets
``ranking``             ranking accuracy and Kendall τ vs label budget; budget for 99%
``modes``               how often ``mode="auto"`` picks two-stage, and what it buys
``bias``                size and power of the judge-bias diagnostics
``var_cap``             default study: SIMCal-W's variance cap (off by default)
``residual_weights``    default study: raw vs stabilised weights on the oracle residual
``mrdr_omega``          default study: MRDR's regression weights
``folds``               default study: cross-fitting / jackknife folds K
``ppi``                 cje direct intervals vs PPI++ (``ppi_py``, a dev dependency)
``bounds``              t, clipped and logit intervals for values near the scale's bounds
``probes``              probe labels that correct: policies without labels, direct and
                        off-policy, with and without their probe slices in the estimate
``tails``               DR intervals with bounded and unbounded weight tails, judge style
``monitor``             cje.monitor over 30 windows: drift detection, false alarms, coverage
``plan``                cje.plan: predicted vs achieved half-width after carrying out a plan
``active``              cje.plan(next=): pilot + active second round vs uniform labelling
``own_labels``          few own labels (5–30): a policy's interval and its paired contrasts
======================  ==================================================================

Examples
--------
>>> from cje.studies import STUDIES
>>> list(STUDIES)[:6]
['coverage', 'naive_ci', 'overlap', 'ranking', 'modes', 'bias']
>>> list(STUDIES)[6:]  # doctest: +NORMALIZE_WHITESPACE
['var_cap', 'residual_weights', 'mrdr_omega', 'folds', 'ppi', 'bounds', 'probes', 'tails',
 'monitor', 'plan', 'active', 'own_labels']
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_SEEDS", "NAMES", "RESULTS_DIR", "STUDIES", "add_arguments", "default_out_dir", "main",
           "run_study"]

#: The studies, in the order of the simulation results page (var_cap … folds are the defaults
#: studies; ppi compares with PPI++, bounds chooses the interval near the scale's bounds, tails
#: measures DR intervals under heavy weight tails, monitor checks cje.monitor's drift tests,
#: own_labels the intervals of policies with few labels of their own).
NAMES: tuple[str, ...] = ("coverage", "naive_ci", "overlap", "ranking", "modes", "bias", "var_cap",
                          "residual_weights", "mrdr_omega", "folds", "ppi",
                          "bounds", "probes", "tails", "monitor", "plan", "active", "own_labels")
#: Each study's default root seed (the three settings studies share the seed they first ran with).
DEFAULT_SEEDS: dict[str, int] = {"coverage": 101, "naive_ci": 102, "overlap": 103, "ranking": 104,
                                 "modes": 105, "bias": 106, "var_cap": 107,
                                 "residual_weights": 20261123, "mrdr_omega": 20261123,
                                 "folds": 20261123, "ppi": 20261206,
                                 "bounds": 20261206, "probes": 20261206, "tails": 111,
                                 "monitor": 20261206, "plan": 20261206, "active": 20261206,
                                 "own_labels": 20261207}
#: Where the published results live in a source checkout (relative to its root); the
#: ``simulations/study_*.py`` scripts write there (as ``simulations/results`` beside themselves).
RESULTS_DIR = Path("simulations/results")


def default_out_dir() -> Path:
    """Where ``cje simulate`` and the studies' ``run()`` write without ``--out-dir``/``out_dir``.

    A per-user data directory, never the current directory (a run from a checkout must not
    replace the published tables in ``simulations/results``): ``$CJE_SIMULATIONS_DIR`` if set,
    else ``%LOCALAPPDATA%\\cje\\simulations`` on Windows, else
    ``$XDG_DATA_HOME/cje/simulations`` (``~/.local/share/cje/simulations``).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import os
    >>> os.environ["CJE_SIMULATIONS_DIR"] = "/tmp/my-runs"
    >>> str(default_out_dir())
    '/tmp/my-runs'
    >>> del os.environ["CJE_SIMULATIONS_DIR"]
    >>> default_out_dir().parts[-2:]
    ('cje', 'simulations')
    """
    import os

    own = os.environ.get("CJE_SIMULATIONS_DIR")
    if own:
        return Path(own).expanduser()
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "cje" / "simulations"
    base = os.environ.get("XDG_DATA_HOME")
    if not base:
        try:
            base = str(Path.home() / ".local" / "share")
        except RuntimeError:  # no home directory (some containers): the temporary directory
            import tempfile

            base = tempfile.gettempdir()
    return Path(base).expanduser() / "cje" / "simulations"


def _runner(name: str) -> Callable[..., Path]:
    """``cje.studies.<name>.run``, imported on first call (keeps ``import cje.studies`` light)."""

    def run(reps: int | None = None, **kwargs: Any) -> Path:
        return import_module(f"cje.studies.{name}").run(reps, **kwargs)  # type: ignore[no-any-return]

    run.__name__ = run.__qualname__ = f"run_{name}"
    run.__doc__ = f"Run the {name!r} study: see :func:`cje.studies.{name}.run`."
    return run


#: Study name -> its ``run`` function.
STUDIES: dict[str, Callable[..., Path]] = {name: _runner(name) for name in NAMES}


def add_arguments(parser: argparse.ArgumentParser, *, out_dir: Path | None = None
                  ) -> argparse.ArgumentParser:
    """Add the options every study takes.

    ``--reps --n-jobs --seed --quick --backend --scheduler --resume --force --out-dir``
    (``out_dir`` is the default of ``--out-dir``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser (or sub-parser) to extend.
    out_dir : path, optional
        Default of ``--out-dir`` (default: :func:`default_out_dir`).

    Returns
    -------
    argparse.ArgumentParser
        ``parser``, for chaining.

    Examples
    --------
    >>> ns = add_arguments(argparse.ArgumentParser()).parse_args(["--reps", "4", "--quick"])
    >>> ns.reps, ns.quick, ns.n_jobs, ns.seed, ns.force, ns.out_dir == default_out_dir()
    (4, True, 1, None, False, True)
    """
    out_dir = default_out_dir() if out_dir is None else Path(out_dir)
    parser.add_argument("--reps", type=int, default=None,
                        help="replicates (default: the study's full size, or its quick size)")
    parser.add_argument("--n-jobs", type=int, default=1,
                        help="parallel worker processes (-1: all cores; default 1; not with "
                             "--backend dask, whose cluster sets the parallelism)")
    parser.add_argument("--seed", type=int, default=None, help="root seed (default: the study's own)")
    parser.add_argument("--quick", action="store_true", help="small, fast tier (for tests)")
    parser.add_argument("--backend", choices=("loky", "threading", "multiprocessing", "dask"),  # BACKENDS
                        default="loky", help="joblib backend (dask: run on a distributed cluster)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="Dask scheduler address, e.g. tcp://10.0.0.5:8786 (with --backend dask)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the replicates already in the study's Parquet file (same seed and "
                             "settings) and run only the missing ones (a warning when there are "
                             "none; not with --force)")
    parser.add_argument("--force", action="store_true",
                        help="replace results already in --out-dir (without it an existing "
                             "study_<name>.md, .png or .parquet stops the run before any work; not "
                             "with --resume)")
    parser.add_argument("--out-dir", type=Path, default=out_dir,
                        help=f"where results are written (default {out_dir})")
    return parser


def main(name: str, argv: Sequence[str] | None = None, *, prog: str | None = None,
         out_dir: Path | None = None) -> Path:
    """Parse ``argv`` with :func:`add_arguments` and run study ``name``; prints the results path.

    The recorded command is ``prog`` followed by ``argv`` (default: ``python`` and the running
    script, then ``sys.argv[1:]``). ``out_dir`` is the default of ``--out-dir``. Bad options or
    results that already exist (without ``--force``) exit with code 2 and a one-line message;
    Ctrl-C exits with code 130 and ``interrupted`` (finished replicates stay in the Parquet file
    for ``--resume``).

    Parameters
    ----------
    name : str
        A study of :data:`STUDIES`.
    argv : sequence of str, optional
        The options (default ``sys.argv[1:]``).
    prog : str, optional
        The command to record in front of ``argv``.
    out_dir : path, optional
        Default of ``--out-dir`` (default: :func:`default_out_dir`).

    Returns
    -------
    pathlib.Path
        The markdown results file.

    Raises
    ------
    SystemExit
        For an unknown study, bad options or existing results (code 2), or Ctrl-C (code 130).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     md = main("ranking", ["--quick", "--reps", "2", "--out-dir", tmp],
    ...               prog="cje simulate ranking")
    ...     print(md.read_text().splitlines()[2].replace(tmp, "TMP"))
    wrote .../study_ranking.md
    Command: `cje simulate ranking --quick --reps 2 --out-dir TMP`
    """
    if name not in STUDIES:
        raise SystemExit(f"unknown study {name!r}; choose one of {', '.join(STUDIES)}")
    mod_doc = import_module(f"cje.studies.{name}").__doc__ or ""
    parser = add_arguments(argparse.ArgumentParser(prog=prog, description=mod_doc.splitlines()[0]),
                           out_dir=out_dir)
    args = list(sys.argv[1:] if argv is None else argv)
    ns = parser.parse_args(args)
    command = shlex.join([*(shlex.split(prog) if prog else ["python", sys.argv[0]]), *args])
    from cje.errors import CJEInputError

    try:
        return run_study(name, ns, command=command)
    except CJEInputError as exc:
        parser.exit(2, f"{parser.prog}: error: {' '.join(str(exc).split())}\n")
    except KeyboardInterrupt:
        parser.exit(130, f"{parser.prog}: interrupted\n")


def run_study(name: str, ns: Any, *, command: str | None = None) -> Path:
    """Run study ``name`` with parsed options ``ns`` (from :func:`add_arguments`).

    Parameters
    ----------
    name : str
        A study of :data:`STUDIES`.
    ns : argparse.Namespace
        Options parsed by a parser extended with :func:`add_arguments` (``--seed`` omitted: the
        study's :data:`DEFAULT_SEEDS` entry).
    command : str, optional
        The command line to record in the results file.

    Returns
    -------
    pathlib.Path
        The markdown results file (its path is also printed).

    Examples
    --------
    >>> import tempfile
    >>> parser = add_arguments(argparse.ArgumentParser())
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     ns = parser.parse_args(["--quick", "--reps", "2", "--out-dir", tmp])
    ...     md = run_study("ranking", ns, command="my command")
    ...     print(md.read_text().splitlines()[2])
    wrote .../study_ranking.md
    Command: `my command`
    """
    seed = DEFAULT_SEEDS[name] if ns.seed is None else ns.seed
    path = STUDIES[name](ns.reps, n_jobs=ns.n_jobs, seed=seed, quick=ns.quick, out_dir=ns.out_dir,
                         backend=ns.backend, scheduler=ns.scheduler, command=command,
                         resume=bool(getattr(ns, "resume", False)),
                         force=bool(getattr(ns, "force", False)))
    print(f"wrote {path}")
    return path
