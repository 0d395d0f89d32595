"""Seeded Monte Carlo replicates: reproducible on one core, many cores or a Dask cluster.

:func:`run_replicates` calls a *task* once per replicate with that replicate's own random
generator and collects the tidy rows it returns into a :class:`pandas.DataFrame`; :func:`summarise`
turns such rows into coverage (with its Monte Carlo standard error), bias, RMSE and mean interval
width per group.

Reproducibility contract: replicate ``r`` always receives
``numpy.random.default_rng(numpy.random.SeedSequence(seed).spawn(n_replicates)[r])``. The child
seed of ``r`` depends on ``(seed, r)`` only, so results are bit-for-bit identical whether the
replicates run in one process, in joblib worker processes or on a Dask cluster, in any order,
and whether a run is done at once or resumed from a Parquet file.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cje._progress import check_progress, progress_bar
from cje.errors import CJEInputError

__all__ = ["BACKENDS", "run_replicates", "summarise"]

#: joblib backends accepted by :func:`run_replicates` (``"dask"`` needs ``dask[distributed]``).
BACKENDS: tuple[str, ...] = ("loky", "threading", "multiprocessing", "dask")

#: Finished replicates are written to ``out`` at least this often (seconds) and at the end.
FLUSH_SECONDS: float = 30.0

_META_KEY = b"cje.montecarlo"
_TASK_CACHE: dict[bytes, Any] = {}
_RESERVED = ("replicate",)
Task = Callable[[np.random.Generator, int], Sequence[Mapping[str, Any]]]


def run_replicates(
    task: Task,
    n_replicates: int,
    *,
    seed: int = 0,
    n_jobs: int = 1,
    backend: str = "loky",
    scheduler: Any = None,
    out: str | os.PathLike[str] | None = None,
    resume: bool = True,
    progress: bool | None = None,
    config: Mapping[str, Any] | None = None,
) -> pd.DataFrame:
    """Run ``task`` once per replicate, each with its own seeded generator, and collect its rows.

    Parameters
    ----------
    task : callable ``(rng, replicate) -> list of dict``
        One Monte Carlo replicate: draws its data from ``rng`` (a
        :class:`numpy.random.Generator`; never global ``np.random``) and returns tidy rows, e.g.
        one per estimator × policy with ``estimate, ci_low, ci_high, truth, covered``. It must
        be picklable for ``n_jobs != 1``: joblib and the Dask backend ship it with cloudpickle,
        so functions of ``__main__`` (scripts, notebooks) and of modules registered with
        ``cloudpickle.register_pickle_by_value`` travel by value, others by reference.
    n_replicates : int
        Number of replicates (>= 1), numbered ``0 … n_replicates − 1``.
    seed : int, default 0
        Root entropy (>= 0). Replicate ``r`` gets
        ``default_rng(SeedSequence(seed).spawn(n_replicates)[r])``.
    n_jobs : int, default 1
        Worker processes (joblib semantics: ``-1`` = all cores). ``1`` runs in this process.
        Ignored by the Dask backend, where the cluster's workers set the parallelism.
    backend : {"loky", "threading", "multiprocessing", "dask"}, default "loky"
        joblib backend. ``"dask"`` runs the replicates on a ``distributed`` cluster through
        joblib's Dask backend (install ``dask[distributed]``).
    scheduler : str or object with ``scheduler_address``, optional
        Dask scheduler address (e.g. ``"tcp://10.0.0.5:8786"``) or a cluster object such as
        :class:`distributed.LocalCluster`; only with ``backend="dask"``. Without it the current
        default ``distributed.Client`` is used.
    out : path, optional
        Parquet file. Finished replicates are written to it as they complete (at least every
        :data:`FLUSH_SECONDS` seconds, at the end and when the run is interrupted), together
        with ``seed`` and ``config`` in the file's metadata.
    resume : bool, default True
        With ``out``: skip the replicates already in the file (their stored rows are returned).
        The stored ``seed`` and ``config`` must equal this call's, else a
        :class:`~cje.errors.CJEInputError` is raised. ``False`` starts afresh and overwrites
        the file.
    progress : bool, optional
        Show a tqdm progress bar on standard error. ``None`` (default) shows it only when
        standard error is a terminal and the run lasts over a second; ``False`` never.
    config : Mapping[str, scalar], optional
        The setting of this run (e.g. ``{"n_prompts": 500, "oracle_fraction": 0.1}``): str,
        int, float, bool or None values. Each key becomes a constant column; the whole dict
        identifies the run when resuming.

    Returns
    -------
    pandas.DataFrame
        Columns ``replicate``, the ``config`` keys, then the task's row keys; rows sorted by
        replicate, then in the order the task returned them.

    Raises
    ------
    CJEInputError
        Bad arguments, a task that does not return a list of dicts (or uses a reserved or
        ``config`` key), or an ``out`` file from a different run.

    Examples
    --------
    >>> def task(rng, replicate):
    ...     x = rng.normal(0.0, 1.0, 50)
    ...     half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    ...     return [{"estimate": x.mean(), "ci_low": x.mean() - half,
    ...              "ci_high": x.mean() + half, "truth": 0.0}]
    >>> df = run_replicates(task, 200, seed=1, config={"n": 50})
    >>> list(df.columns)
    ['replicate', 'n', 'estimate', 'ci_low', 'ci_high', 'truth']
    >>> df.equals(run_replicates(task, 200, seed=1, config={"n": 50}))  # same seed, same rows
    True
    >>> summarise(df, by="n")[["n", "n_rows", "coverage"]]
        n  n_rows  coverage
    0  50     200      0.96
    """
    if not callable(task):
        raise CJEInputError(f"task must be a callable (rng, replicate) -> list of dict; got {task!r}.")
    n_replicates = _check_int("n_replicates", n_replicates, minimum=1)
    seed = _check_int("seed", seed, minimum=0)
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs == 0:
        raise CJEInputError(
            f"n_jobs must be a non-zero integer (1: this process, -1: all cores); got {n_jobs!r}."
        )
    n_jobs = int(n_jobs)
    if backend not in BACKENDS:
        raise CJEInputError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
    if scheduler is not None and backend != "dask":
        raise CJEInputError(
            f"scheduler={scheduler!r} is only used with backend='dask'; got backend={backend!r}."
        )
    check_progress(progress)
    if not isinstance(resume, bool):
        raise CJEInputError(f"resume must be True or False; got {resume!r}.")
    cfg = _check_config(config)
    path = None if out is None else Path(out)
    if path is not None and path.exists() and path.is_dir():
        raise CJEInputError(f"out must be a Parquet file path; {str(path)!r} is a directory.")

    children = np.random.SeedSequence(seed).spawn(n_replicates)
    stored: list[pd.DataFrame] = []
    done: set[int] = set()
    if path is not None and resume and path.exists():
        frame, meta = _read(path)
        if meta.get("seed") != seed or meta.get("config") != cfg:
            raise CJEInputError(
                f"{str(path)!r} holds replicates of a different run (seed={meta.get('seed')!r}, "
                f"config={meta.get('config')!r}); this call has seed={seed!r}, config={cfg!r}. "
                "Use another out path, resume=False to overwrite it, or the stored settings."
            )
        stored.append(frame)
        done = set(meta.get("done", ()))
    todo = [r for r in range(n_replicates) if r not in done]

    new: list[tuple[int, list[dict[str, Any]]]] = []
    bar = progress_bar(progress, n_replicates, desc="replicates", unit="rep",
                       initial=n_replicates - len(todo))
    last = time.monotonic()
    try:
        for r, rows in _execute(task, todo, children, n_jobs, backend, scheduler):
            new.append((r, _tidy(rows, r, cfg)))
            bar.update(1)
            if path is not None and time.monotonic() - last >= FLUSH_SECONDS:
                _flush(path, stored, new, done, seed, cfg)
                last = time.monotonic()
    finally:
        bar.close()
        if path is not None and (new or not path.exists() or not resume):
            _flush(path, stored, new, done, seed, cfg)
    if path is not None:
        frame, _ = _read(path)
        frame = frame[frame["replicate"] < n_replicates] if len(frame) else frame
        return frame.sort_values("replicate", kind="stable").reset_index(drop=True)
    return _frame(new, cfg)


def summarise(df: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Coverage (with its Monte Carlo SE), bias, RMSE and mean interval width per group.

    Parameters
    ----------
    df : pandas.DataFrame
        Replicate rows with ``estimate`` and ``truth``, and either ``covered`` (bool) or
        ``ci_low`` and ``ci_high`` (``covered = ci_low <= truth <= ci_high``).
    by : str or sequence of str, optional
        Grouping columns (e.g. ``["method", "oracle_fraction", "n_prompts"]``); ``None`` pools
        all rows.

    Returns
    -------
    pandas.DataFrame
        One row per group: the ``by`` columns, ``n_rows``, ``n_missing`` (rows whose estimate
        is NaN; left out of every statistic), ``coverage`` and ``coverage_se`` =
        ``sqrt(c (1 − c) / n)`` (the binomial Monte Carlo SE; rows of one replicate may be
        correlated, which this ignores), ``bias`` = mean(estimate − truth), ``bias_se``,
        ``rmse`` and ``mean_width`` (NaN without interval columns).

    Raises
    ------
    CJEInputError
        Missing columns.

    Examples
    --------
    >>> df = pd.DataFrame({"method": ["a", "a", "a", "a"], "estimate": [0.1, -0.2, 0.3, 0.0],
    ...                    "truth": 0.0, "ci_low": [-0.1, -0.1, 0.1, -0.1],
    ...                    "ci_high": [0.2, 0.1, 0.5, 0.1]})
    >>> s = summarise(df, by="method")
    >>> s.loc[0, ["coverage", "coverage_se", "bias", "mean_width"]].round(4).tolist()
    [0.75, 0.2165, 0.05, 0.275]
    """
    if not isinstance(df, pd.DataFrame):
        raise CJEInputError(f"summarise needs a pandas DataFrame of replicate rows; got {type(df)}.")
    keys = [] if by is None else [by] if isinstance(by, str) else list(by)
    has_ci = "ci_low" in df.columns and "ci_high" in df.columns
    need = ["estimate", "truth", *keys]
    missing = [c for c in need if c not in df.columns]
    if not has_ci and "covered" not in df.columns:
        missing.append("covered (or ci_low and ci_high)")
    if missing:
        raise CJEInputError(
            f"summarise needs columns {', '.join(need)} and covered or ci_low/ci_high; missing: "
            f"{', '.join(missing)}."
        )
    est = df["estimate"].to_numpy(dtype=float)
    truth = df["truth"].to_numpy(dtype=float)
    ok = ~np.isnan(est)
    if "covered" in df.columns:
        covered = df["covered"].to_numpy(dtype=float)
    else:
        covered = ((df["ci_low"].to_numpy(dtype=float) <= truth)
                   & (truth <= df["ci_high"].to_numpy(dtype=float))).astype(float)
    width = (df["ci_high"].to_numpy(dtype=float) - df["ci_low"].to_numpy(dtype=float)
             if has_ci else np.full(len(df), np.nan))
    work = pd.DataFrame({
        "_ok": ok,
        "_err": np.where(ok, est - truth, np.nan),
        "_cov": np.where(ok, covered, np.nan),
        "_width": np.where(ok, width, np.nan),
    })
    for k in keys:
        work[k] = df[k].to_numpy()
    groups = work.groupby(keys, sort=True, dropna=False) if keys else [((), work)]
    rows = []
    for name, g in groups:
        name = name if isinstance(name, tuple) else (name,)
        n = int(g["_ok"].sum())
        err = g["_err"].to_numpy()[g["_ok"].to_numpy()]
        cov = float(np.mean(g["_cov"].to_numpy()[g["_ok"].to_numpy()])) if n else math.nan
        row: dict[str, Any] = dict(zip(keys, name, strict=True))
        row.update({
            "n_rows": n,
            "n_missing": int(len(g) - n),
            "coverage": cov,
            "coverage_se": math.sqrt(cov * (1 - cov) / n) if n else math.nan,
            "bias": float(err.mean()) if n else math.nan,
            "bias_se": float(err.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            "rmse": float(np.sqrt(np.mean(err**2))) if n else math.nan,
            "mean_width": float(np.nanmean(g["_width"])) if n and has_ci else math.nan,
        })
        rows.append(row)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ helpers


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CJEInputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise CJEInputError(f"config must be a dict of setting name -> value; got {config!r}.")
    out: dict[str, Any] = {}
    for key, value in config.items():
        if not isinstance(key, str) or not key:
            raise CJEInputError(f"config keys must be non-empty strings; got {key!r}.")
        if key in _RESERVED:
            raise CJEInputError(f"config key {key!r} is reserved (the runner adds it); rename it.")
        if isinstance(value, np.generic):
            value = value.item()
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise CJEInputError(
                f"config[{key!r}] must be a str, int, float, bool or None (it becomes a column); "
                f"got {value!r}."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise CJEInputError(f"config[{key!r}] must be finite; got {value!r}.")
        out[key] = value
    return out


def _one(task: Task, r: int, child: np.random.SeedSequence) -> tuple[int, Any]:
    """Run replicate ``r`` (in a worker): its generator comes from its own child seed."""
    return r, task(np.random.default_rng(child), r)


def _one_pickled(blob: bytes, r: int, child: np.random.SeedSequence) -> tuple[int, Any]:
    """:func:`_one` with the task shipped as cloudpickle bytes (Dask workers)."""
    return _one(_unpickle(blob), r, child)


def _unpickle(blob: bytes) -> Any:
    """The task of ``blob``, unpickled once per worker process and run."""
    if blob not in _TASK_CACHE:
        import cloudpickle

        _TASK_CACHE.clear()
        _TASK_CACHE[blob] = cloudpickle.loads(blob)
    return _TASK_CACHE[blob]


def _execute(task: Task, todo: list[int], children: list[np.random.SeedSequence], n_jobs: int,
             backend: str, scheduler: Any) -> Iterator[tuple[int, Any]]:
    """Yield ``(replicate, rows)`` in replicate order."""
    if not todo:
        return
    if n_jobs == 1 and backend != "dask":
        for r in todo:
            yield _one(task, r, children[r])
        return
    import joblib

    if backend != "dask":
        calls = (joblib.delayed(_one)(task, r, children[r]) for r in todo)
        yield from joblib.Parallel(n_jobs=n_jobs, backend=backend, return_as="generator")(calls)
        return
    try:
        import distributed
    except ImportError:
        raise CJEInputError(
            "backend='dask' needs the distributed scheduler: pip install 'dask[distributed]' "
            "(or the 'dask' extra of cje)."
        ) from None
    own = None
    if scheduler is None:
        try:
            client = distributed.get_client()
        except ValueError:
            raise CJEInputError(
                "backend='dask' needs scheduler=ADDRESS (e.g. 'tcp://host:8786') or a running "
                "distributed.Client in this process."
            ) from None
    else:
        address = getattr(scheduler, "scheduler_address", scheduler)
        if not isinstance(address, str):
            raise CJEInputError(
                f"scheduler must be a Dask scheduler address such as 'tcp://host:8786' or a "
                f"cluster object; got {scheduler!r}."
            )
        client = own = distributed.Client(address, set_as_default=False)
    # Dask pickles joblib's batches with the standard pickle, which ships functions by reference:
    # a task defined in a script, notebook or test module would not import on the workers. Ship
    # the task as cloudpickle bytes instead, as loky does (``cloudpickle.register_pickle_by_value``
    # is honoured).
    import cloudpickle

    blob = cloudpickle.dumps(task)
    calls = (joblib.delayed(_one_pickled)(blob, r, children[r]) for r in todo)
    try:
        with joblib.parallel_config(backend="dask", client=client):
            yield from joblib.Parallel(n_jobs=-1, return_as="generator")(calls)
    finally:
        if own is not None:
            own.close()


def _tidy(rows: Any, r: int, cfg: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(rows, Mapping) or not isinstance(rows, (list, tuple)):
        raise CJEInputError(
            f"The task must return a list of dicts (one per row); replicate {r} returned "
            f"{type(rows).__name__}."
        )
    out = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise CJEInputError(
                f"The task must return a list of dicts; replicate {r} returned a "
                f"{type(row).__name__} row."
            )
        clash = [k for k in row if k in _RESERVED or k in cfg]
        if clash:
            raise CJEInputError(
                f"Replicate {r} returned column(s) {clash} that the runner adds itself "
                "('replicate' and the config keys); rename them in the task."
            )
        out.append({"replicate": r, **cfg, **row})
    return out


def _frame(new: list[tuple[int, list[dict[str, Any]]]], cfg: dict[str, Any]) -> pd.DataFrame:
    rows = [row for _, rs in sorted(new, key=lambda t: t[0]) for row in rs]
    if not rows:
        return pd.DataFrame(columns=["replicate", *cfg])
    return pd.DataFrame(rows)


def _read(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several types for a non-Parquet file
        raise CJEInputError(f"Could not read {str(path)!r} as Parquet ({exc}).") from None
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise CJEInputError(
            f"{str(path)!r} was not written by cje.montecarlo.run_replicates (no run metadata); "
            "use another out path or resume=False to overwrite it."
        )
    return table.to_pandas(), json.loads(raw)


def _flush(path: Path, stored: list[pd.DataFrame], new: list[tuple[int, list[dict[str, Any]]]],
           done: set[int], seed: int, cfg: dict[str, Any]) -> None:
    """Write stored + new rows atomically (temporary file, then rename)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frames = [f for f in stored if len(f)]
    fresh = _frame(new, cfg)
    if len(fresh):
        frames.append(fresh)
    frame = (pd.concat(frames, ignore_index=True) if frames
             else pd.DataFrame(columns=["replicate", *cfg]))
    frame = frame.sort_values("replicate", kind="stable").reset_index(drop=True)
    finished = sorted(done | {r for r, _ in new})
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[_META_KEY] = json.dumps({"seed": seed, "config": cfg, "done": finished}).encode()
    table = table.replace_schema_metadata(meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:  # including Ctrl-C mid-write: leave no half-written temporary behind
        tmp.unlink(missing_ok=True)
        raise

