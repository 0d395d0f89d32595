"""Plumbing shared by the studies: arguments, commands, tables, figures and the results files."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje.errors import CJEInputError
from cje.montecarlo import BACKENDS, run_replicates
from cje.studies import RESULTS_DIR

__all__ = ["COVERAGE_BAND", "RESULTS_DIR", "StudyRun", "check_existing", "cov_cell", "figure", "md_table",
           "pct", "log_x", "log_y", "replicate", "replicate_se", "study_entry", "study_run",
           "write_results"]

#: Coverage outside this band is called out in the tables (nominal 95% intervals).
COVERAGE_BAND: tuple[float, float] = (0.93, 0.97)


@dataclass(frozen=True)
class StudyRun:
    """The options of one study run, validated."""

    name: str
    reps: int
    n_jobs: int
    seed: int
    quick: bool
    out_dir: Path
    backend: str
    scheduler: Any
    progress: bool | None
    command: str
    resume: bool = False
    #: Replace results already in ``out_dir`` (``--force``).
    force: bool = False
    resumed: int = 0
    #: Seconds the replicates read back with ``resume`` took, from the earlier results file.
    earlier_seconds: float | None = None

    @property
    def stem(self) -> Path:
        """``out_dir / study_<name>`` (add ``.md``, ``.png`` or ``.parquet``)."""
        return self.out_dir / f"study_{self.name}"


def study_run(
    name: str,
    reps: int | None,
    *,
    full_reps: int,
    quick_reps: int,
    n_jobs: int,
    seed: int,
    quick: bool,
    out_dir: str | os.PathLike[str] | None,
    backend: str,
    scheduler: Any,
    progress: bool | None,
    command: str | None,
    resume: bool = False,
    force: bool = False,
) -> StudyRun:
    """Validate a study's arguments and fill in the defaults; refuse, before any work, to replace
    existing results without ``force`` (:func:`check_existing`)."""
    if reps is None:
        reps = quick_reps if quick else full_reps
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 2:
        raise CJEInputError(f"reps must be an integer >= 2; got {reps!r}.")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise CJEInputError(f"seed must be an integer >= 0; got {seed!r}.")
    if not isinstance(quick, bool):
        raise CJEInputError(f"quick must be True or False; got {quick!r}.")
    if backend not in BACKENDS:
        raise CJEInputError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    if not isinstance(resume, bool):
        raise CJEInputError(f"resume must be True or False; got {resume!r}.")
    if not isinstance(force, bool):
        raise CJEInputError(f"force must be True or False; got {force!r}.")
    if resume and force:  # one keeps the earlier replicates, the other starts afresh
        raise CJEInputError(
            "resume=True (--resume) keeps the replicates of an earlier run and force=True "
            "(--force) starts afresh; give one of them: --resume to continue that run, --force to "
            "replace its results.")
    if backend == "dask" and n_jobs != 1:
        raise CJEInputError(
            f"n_jobs={n_jobs!r} (--n-jobs) has no effect with backend='dask': the Dask cluster's "
            "workers set the parallelism. Leave it out.")
    if out_dir is None:
        from cje.studies import default_out_dir

        out_dir = default_out_dir()
    if isinstance(out_dir, bool) or not isinstance(out_dir, (str, os.PathLike)):
        raise CJEInputError(f"out_dir must be a directory path; got {out_dir!r}.")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CJEInputError(f"out_dir '{out}' is a file; give a directory (--out-dir DIR).")
    if not force:
        check_existing(out / f"study_{name}", resume=resume)
    if resume and not (out / f"study_{name}.parquet").is_file():  # said, not silently afresh
        import warnings

        from cje.errors import CJEWarning

        warnings.warn(f"resume=True (--resume): there are no earlier replicates to keep "
                      f"({out / f'study_{name}.parquet'} does not exist); every replicate runs.",
                      CJEWarning, stacklevel=3)
    if command is None:
        parts = ["python", f"simulations/study_{name}.py", "--reps", str(reps), "--n-jobs",
                 str(n_jobs), "--seed", str(seed)]
        if quick:
            parts.append("--quick")
        if backend != "loky":
            parts += ["--backend", backend]
        if scheduler is not None:
            parts += ["--scheduler", str(getattr(scheduler, "scheduler_address", scheduler))]
        if resume:
            parts.append("--resume")
        if force:
            parts.append("--force")
        command = shlex.join(parts)
    return StudyRun(name=name, reps=int(reps), n_jobs=n_jobs, seed=int(seed), quick=quick,
                    out_dir=out, backend=backend, scheduler=scheduler,
                    progress=progress, command=command, resume=resume, force=force)


def check_existing(stem: Path, *, resume: bool) -> None:
    """Refuse to replace a study's results (``stem`` + ``.md``, ``.png``, ``.parquet``).

    The tables and figure may be rewritten only by ``--resume`` of the run whose replicates
    ``.parquet`` holds (continuing it); the Parquet file only by ``--resume``. Everything else
    needs ``--force`` (``force=True``).

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> check_existing(d / "study_x", resume=False)  # nothing there yet
    >>> _ = (d / "study_x.md").write_text("published")
    >>> check_existing(d / "study_x", resume=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: .../study_x.md already exists; cje never overwrites results. Pass --force ...
    """
    md, png, pq = (stem.with_suffix(s) for s in (".md", ".png", ".parquet"))
    if resume and pq.is_file():
        return  # continuing the run whose replicates are there: its tables are rewritten
    for path in (md, png):
        if path.exists():
            raise CJEInputError(
                f"{path} already exists; cje never overwrites results. Pass --force (force=True) "
                "to replace them, or choose another --out-dir (out_dir=)."
            )
    if pq.exists() and not resume:
        raise CJEInputError(
            f"{pq} already exists (replicates of an earlier run). Pass --resume to continue that "
            "run, --force (force=True) to start afresh, or choose another --out-dir (out_dir=)."
        )


_RUN_DOC = """Run {title} and write ``study_{name}.{{md,png,parquet}}`` to ``out_dir``.

    Parameters
    ----------
    reps : int, optional
        Replicates (default {full_reps}, or {quick_reps} with ``quick``).
    n_jobs, backend, scheduler, progress
        Passed to :func:`cje.montecarlo.run_replicates`.
    seed : int
        Root seed of the replicates (default {seed}).
    quick : bool
        {quick_note}
    out_dir : path, optional
        Where the results go (default :func:`cje.studies.default_out_dir`, a per-user data
        directory; ``simulations/results`` holds the published ones).
    resume : bool
        Keep the replicates already in ``study_{name}.parquet`` (same seed and settings) and
        run only the missing ones (the run's tables are then rewritten).
    force : bool
        Replace results already in ``out_dir``; without it existing ``study_{name}.md``, ``.png``
        or ``.parquet`` (unless resuming) raise :class:`~cje.errors.CJEInputError` before any work.
    command : str, optional
        The command line to record (default: the equivalent ``simulations/study_{name}.py`` call).

    Returns
    -------
    pathlib.Path
        The markdown results file.

    Examples
    --------
    The quick tier with two replicates, written to a temporary folder:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     md = run(reps=2, quick=True, out_dir=tmp)
    ...     print(md.name, md.with_suffix(".png").is_file())
    ...     print(md.read_text().splitlines()[2])
    study_{name}.md True
    Command: `python simulations/study_{name}.py --reps 2 --n-jobs 1 --seed {seed} --quick`
    """


def study_entry(name: str, full: dict[str, Any], quick_grid: dict[str, Any],
                report: Callable[[StudyRun, dict[str, Any]], Path], *, title: str,
                quick_note: str) -> Callable[..., Path]:
    """A study's public ``run`` function: validates the options once (:func:`study_run`) and
    hands the run and its grid (``full`` or ``quick_grid``, each with a ``"reps"`` entry) to the
    study's own ``report``."""
    from cje.studies import DEFAULT_SEEDS

    default_seed = DEFAULT_SEEDS[name]

    def run(
        reps: int | None = None,
        *,
        n_jobs: int = 1,
        seed: int = default_seed,
        quick: bool = False,
        out_dir: str | os.PathLike[str] | None = None,
        backend: str = "loky",
        scheduler: Any = None,
        progress: bool | None = None,
        command: str | None = None,
        resume: bool = False,
        force: bool = False,
    ) -> Path:
        r = study_run(name, reps, full_reps=full["reps"], quick_reps=quick_grid["reps"],
                      n_jobs=n_jobs, seed=seed, quick=quick, out_dir=out_dir, backend=backend,
                      scheduler=scheduler, progress=progress, command=command, resume=resume,
                      force=force)
        return report(r, quick_grid if quick else full)

    run.__doc__ = _RUN_DOC.format(title=title, name=name, full_reps=full["reps"],
                                  quick_reps=quick_grid["reps"], seed=default_seed,
                                  quick_note=quick_note)
    run.__name__ = run.__qualname__ = "run"
    run.__module__ = f"cje.studies.{name}"
    return run


def replicate(run: StudyRun, task: Callable[..., Any], config: dict[str, Any]
              ) -> tuple[pd.DataFrame, float, StudyRun]:
    """Run the replicates (Parquet written as they finish).

    Returns the rows, the seconds taken and ``run`` with ``resumed`` = replicates read back
    from an earlier run (``resume=True``).
    """
    out = run.stem.with_suffix(".parquet")
    resumed = _finished(out, run.reps) if run.resume else 0
    earlier = _earlier_runtime(run.stem.with_suffix(".md")) if resumed else None
    t0 = time.perf_counter()
    df = run_replicates(task, run.reps, seed=run.seed, n_jobs=run.n_jobs, backend=run.backend,
                        scheduler=run.scheduler, out=out, resume=run.resume, progress=run.progress,
                        config={"study": run.name, "quick": run.quick, **config})
    return df, time.perf_counter() - t0, replace(run, resumed=resumed, earlier_seconds=earlier)


def _earlier_runtime(md: Path) -> float | None:
    """Seconds recorded in an earlier results file (its own run plus what it read back)."""
    import re

    if not md.is_file():
        return None
    m = re.search(r"^Runtime: (\d+) s for \d+ replicates[^\n]*?(?:that took (\d+) s)?\.?$",
                  md.read_text(), flags=re.M)
    if m is None:
        return None
    return float(m.group(1)) + (float(m.group(2)) if m.group(2) else 0.0)


def _finished(path: Path, reps: int) -> int:
    """Replicates below ``reps`` already in a run_replicates Parquet file (0 if none)."""
    if not path.is_file():
        return 0
    import json

    import pyarrow.parquet as pq

    try:
        meta = (pq.read_schema(path).metadata or {}).get(b"cje.montecarlo")
    except Exception:  # not Parquet: run_replicates reports it clearly
        return 0
    return 0 if meta is None else sum(1 for r in json.loads(meta).get("done", ()) if r < reps)


def replicate_se(df: pd.DataFrame, by: Sequence[str], value: str) -> pd.DataFrame:
    """Mean of ``value`` per group with its Monte Carlo SE, clustered by replicate.

    Rows of one replicate (policies sharing prompts and a calibrator) are correlated, so the SE
    is that of the mean of per-replicate means: ``sd(replicate means) / sqrt(R)``.
    """
    per = df.groupby([*by, "replicate"], sort=True)[value].mean().reset_index()
    g = per.groupby(list(by), sort=True)[value]
    out = pd.DataFrame({"mean": g.mean(), "se": g.std(ddof=1) / np.sqrt(g.count()),
                        "n_replicates": g.count()})
    return out.reset_index()


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> list[str]:
    """A GitHub markdown table; ``align`` has one ``l`` or ``r`` per column (default l then r)."""
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(sep) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def pct(x: float) -> str:
    """A fraction as a percentage without trailing zeros (0.05 → '5%', 0.025 → '2.5%')."""
    return f"{100 * x:g}%"


def cov_cell(mean: float, se: float, band: tuple[float, float] | None = COVERAGE_BAND) -> str:
    """Coverage ± MC SE, bold with a marker when outside ``band``."""
    text = f"{mean:.3f} ± {se:.3f}"
    if band is not None and not band[0] <= mean <= band[1]:
        return f"**{text}** ✗"
    return text


def figure(nrows: int, ncols: int, size: tuple[float, float]) -> tuple[Any, np.ndarray]:
    """A matplotlib Figure (Agg canvas, no pyplot state) and its axes as a 2-D array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def log_x(axes: Iterable[Any], x: Any, labels: Sequence[str]) -> None:
    """Log x axes with ticks at ``x`` labelled ``labels``, no minor ticks, a light grid."""
    for a in axes:
        a.set_xscale("log")
        a.set_xticks(x, labels)
        a.minorticks_off()
        a.grid(alpha=0.3)


def log_y(ax: Any, subs: Sequence[float] = (1.0, 2.0, 5.0)) -> None:
    """A log y axis with plain-number major ticks at ``subs`` × powers of ten, no minor ticks."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=subs))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_locator(NullLocator())


def write_results(run: StudyRun, *, title: str, seconds: float, design: str, body: Sequence[str],
                  fig: Any) -> Path:
    """Write ``study_<name>.md`` (command and runtime at the top) and ``study_<name>.png``, each
    under a temporary name renamed into place (an interrupted run leaves no partial file)."""
    run.out_dir.mkdir(parents=True, exist_ok=True)
    png = run.stem.with_suffix(".png")
    _atomic(png, lambda tmp: fig.savefig(tmp, dpi=130, format="png"))
    where = (f"backend {run.backend}" if run.backend != "dask"
             else "a Dask cluster")
    header = [
        f"# {title}",
        "",
        f"Command: `{run.command}`",
        "",
        f"Runtime: {seconds:.0f} s for {run.reps - run.resumed} replicates (n_jobs={run.n_jobs}, "
        f"{where}, {os.cpu_count()} CPUs)"
        + (f"; {run.resumed} more were read back from an earlier run (--resume)"
           + (f" that took {run.earlier_seconds:.0f} s" if run.earlier_seconds is not None else "")
           if run.resumed else "")
        + (" — QUICK tier: small sizes, not the evidence" if run.quick else "") + ".",
        f"Figure: `{png.name}`. Replicates: `{run.stem.with_suffix('.parquet').name}` (tidy rows, "
        f"seed {run.seed}; git-ignored, the command above rewrites it).",
        "",
        design,
        "",
    ]
    md = run.stem.with_suffix(".md")
    text = "\n".join([*header, *body]).rstrip() + "\n"
    _atomic(md, lambda tmp: tmp.write_text(text))
    return md


def _atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write`` to a temporary file beside ``path``, then rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:  # including Ctrl-C mid-write
        tmp.unlink(missing_ok=True)
        raise
