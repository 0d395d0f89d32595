"""Off-policy analysis of logged data too large for memory: IPS, SNIPS, calibrated IPS and the DR
family (DR-CPO, TMLE, MRDR, stacked DR; their fresh draws held in memory) on polars streaming or
Dask (docs: Large data and clusters).

Every number of these estimators is a sum over rows of a function of (judge score, label, raw
weight, fold) — the DR family's outcome models are constant per (fold, score) cell, fitted on
the cells and the labelled rows by the in-memory code — so the analysis runs in passes over
the partitions, each done by the engine
(polars' streaming batches and group-by, Dask's tasks and group-by; no scheduler of ours); only
small tables reach the driver:

1. **scan** — every row checked (the first bad row named by file and row, log-probability columns
   too), the rows per distinct judge score, the labelled rows (collected: they are few), and per
   target the largest log-ratio ``λ = logprob[target] − logprob_base`` (the log-sum-exp shift of
   its Hájek weights) and the ranges of ``λ`` and of the target's log-probability;
2. **cells** — per target and (fold, distinct score) cell: rows, ``Σ e``, ``Σ e²`` (``e = exp(λ −
   max λ)``; the Hájek weight is ``e·n/Σe``) and the smallest and largest ``e``, which is all
   SIMCal-W (:func:`~cje.calibration.weights.simcal_affine`, the in-memory fits on these sums),
   every point estimate and every jackknife replicate need; histograms of ``λ`` and of the
   target's surprisal for the exact order statistics below;
3. **per-prompt sums** — a ``group_by(prompt_id)`` of ``Σ w``, ``Σ w·R``, ``Σ w·s`` (and the
   stabilised weights' ``Σ w̃``) per target and prompt, from which the driver forms each
   prompt's total of the influence values (the labelled rows' terms added from the collected
   rows); the rows of the few histogram bins that hold the order statistics the diagnostics
   need (the Hill index's and the top 5%'s largest weights, the weight-tail quantiles, the
   TTC/CLE surprisal threshold, ordered with the global row order as tie-break) are collected;
4. **stabilised weights' order statistics** (calibrated IPS) — a histogram and then its needed
   bins, as for the raw weights.

The skeleton (:func:`cje.pipeline.core.estimate`: clustered variances, OUA jackknife, gates,
contrasts, report) is the in-memory one; a residual term on the stabilised weights
(``residual_weights="stable"``, or ``"auto"`` under poor overlap) adds a column of the
stabilised weights' per-prompt sums and the transport allowance. The DR family adds, per prompt,
``Σ w·q`` of each member (stacked DR: under every jackknife run, whose stacking weights are
refitted), and the fresh-draw means per prompt in the driver. Refused, with a message naming
``engine="memory"``: probes, covariates, calibration-only rows, ``on_invalid="drop"``, fresh
draws with the weighting family, SIMCal-W's weight floor binding (raw weights below 1e-9 of
the mean carrying a fold's mixture), and more than :data:`MAX_DISTINCT_SCORES` distinct judge
scores.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cje.calibration.reward import Mode, RewardCalibrator
from cje.calibration.weights import AffineSimcal, cell_stats, min_variance_simplex, simcal_affine
from cje.data import (
    INFERRED_LABEL_SCALE,
    _check_scale,
    _prompt_hash,
    bottom_tenth,
    check_label_variation,
    constant_logprob_notice,
    factorize_ids,
    infer_scale,
    refuse_sentinel,
)
from cje.diagnostics.gates import (
    fresh_balance,
    fresh_balance_gate,
    label_balance_gate,
    label_balance_of_counts,
    overlap_gate,
    score_gap_z,
    worse_status,
)
from cje.diagnostics.overlap import ESS_GATE, HILL_RESIDUAL, NEAR_ZERO_RATIO, _bin_counts, _hill_k, _top_k
from cje.errors import CJEInputError
from cje.estimators.offpolicy import IPS, SNIPS, TAIL_VARIANCE_ESS, CalibratedIPS, PolicyValue
from cje.inference import cluster_variance, t_interval
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
from cje.pipeline.streaming import (
    DASK_SPLIT_PER_GROUP_BY,
    _partition_source,
    check_renames,
    dask_compute,
    dask_number,
    dask_row_keys,
    judge_scale_of,
    naming_file,
    pl_check_types,
    pl_float64,
    release_arrow_memory,
    require_columns,
    shuffle_directory,
    shuffle_method,
)
from cje.pipeline.summaries import TAIL_PROBS, from_unit, naive_judge_mean, to_unit
from cje.report import Report

__all__ = ["MAX_DISTINCT_SCORES", "analyze_logged_partitioned", "has_logprobs", "input_columns"]

#: Most distinct judge scores out of core: each target's cell tables hold K × this many cells
#: (with continuous scores round them, e.g. to 3 decimals, or use ``engine="memory"``).
MAX_DISTINCT_SCORES = 20_000
#: Per-prompt numbers (prompts × columns, bounded by rows × columns) per group-by of the
#: per-prompt pass: above it the prompts are split by a hash of their id over several
#: group-bys (one pass over the data each), so the group-by's table stays under ~0.5 GB
#: (5·10^6 rows × 12 columns, direct mode's group-by before its columns were made smaller).
CELLS_PER_GROUP_BY = 60_000_000
#: Bins of the histograms that locate the order statistics (the bins that hold them are then
#: collected whole).
HIST_BINS = 4096
_OR_MEMORY = "Use engine='memory' (it needs the data in memory)."
_ROW_BITS = 40
_FLOOR_REL = 1e-12  # (the relative tolerance of cje.diagnostics.overlap's TTC prefix)


def has_logprobs(names: Sequence[Any], columns: Any = None) -> bool:
    """Whether the input's columns (after ``columns=``) are logged data's.

    Parameters
    ----------
    names : sequence
        The input's column names.
    columns : Mapping[str, str], optional
        :func:`cje.analyze`'s ``columns=`` (standard name → the input's).

    Returns
    -------
    bool

    Examples
    --------
    >>> has_logprobs(["prompt_id", "judge_score", "logprob_base", "logprob[a]"])
    True
    >>> has_logprobs(["prompt_id", "judge_score"])
    False
    """
    renamed = {v: k for k, v in (columns or {}).items()}
    return any(str(renamed.get(n, n)).startswith("logprob") for n in names)


def input_columns(data: Any) -> list[str] | None:
    """The column names of an out-of-core input (a file set's first file, a LazyFrame's or a
    Dask DataFrame's schema), read without reading rows; ``None`` when unknown.

    Parameters
    ----------
    data : Any
        :func:`cje.analyze`'s ``data``.

    Returns
    -------
    list of str or None

    Examples
    --------
    >>> import polars as pl
    >>> input_columns(pl.LazyFrame({"prompt_id": ["a"], "logprob_base": [-1.0]}))
    ['prompt_id', 'logprob_base']
    """
    from cje.pipeline.streaming import (
        SUFFIXES,
        expand_files,
        files_with_rows,
        is_partitioned,
        jsonl_probe,
    )

    if is_partitioned(data):
        if type(data).__module__.startswith("polars"):
            return list(data.collect_schema().names())
        return [str(c) for c in data.columns]
    try:
        files = expand_files(data)
        files = files_with_rows(files) if files else files  # (the first file may be empty)
    except CJEInputError:
        return None
    if not files:
        return None
    import polars as pl

    path = files[0]
    kind = SUFFIXES[path.suffix.lower()]
    lf = (pl.scan_parquet(path) if kind == "parquet" else
          pl.scan_csv(path, n_rows=0) if kind == "csv" else pl.scan_ndjson(jsonl_probe(path), n_rows=1))
    return list(lf.collect_schema().names())


# ------------------------------------------------------------------------------------------------
# Batches: a partition's rows as numpy arrays


@dataclass
class _Batch:
    pid: np.ndarray  # object (str or None)
    policy: np.ndarray | None
    s: np.ndarray
    y: np.ndarray
    lp: list[np.ndarray]  # logprob_base, then each target's
    key: np.ndarray  # file × 2^40 + row


def _to_batch(df: Any, n_lp: int) -> _Batch:
    """A polars or pandas frame of the standard columns as numpy arrays."""
    import pandas as pd

    def col(c: str, dtype: Any) -> np.ndarray:
        v = df[c].to_numpy()
        return np.asarray(v, dtype=dtype) if dtype is not object else np.asarray(v, dtype=object)

    pid = col("prompt_id", object)
    null = pd.isna(pid)
    if null.any():
        pid = pid.copy()
        pid[null] = None
    pol = col("policy", object) if "policy" in df.columns else None
    if pol is not None:
        pnull = pd.isna(pol)
        if pnull.any():
            pol = pol.copy()
            pol[pnull] = None
    key = col("__file", np.int64) * (1 << _ROW_BITS) + col("__row", np.int64)
    return _Batch(pid=pid, policy=pol, s=col("judge_score", np.float64),
                  y=col("oracle_label", np.float64),
                  lp=[col(f"__lp{j}", np.float64) for j in range(n_lp)], key=key)


# ------------------------------------------------------------------------------------------------
# Engines


class _Engine:
    """The passes on one engine: a reduction over batches, and a per-prompt group-by."""

    sources: list[str]
    lp_names: list[str]  # the input's log-probability columns: 'logprob_base' first
    notices: list[str]
    n_rows: int | None = None  # known after the scan: the progress bars' total

    def reduce(self, fn: Callable[[_Batch, Any], dict], ctx: Any, progress: bool | None,
               desc: str) -> dict:
        raise NotImplementedError

    def prompt_sums(self, fn: Callable[[_Batch, Any], dict], ctx: Any, cols: list[str],
                    progress: bool | None, buckets: int = 1) -> Iterator[dict[str, np.ndarray]]:
        """Per prompt the sums of the columns ``fn`` gives per row (``lab``, ``f``: the max),
        in ``buckets`` chunks of prompts (split by a hash of their id); no ids returned."""
        raise NotImplementedError


def _combine(acc: dict | None, part: dict) -> dict:
    """Sum two partial results: arrays and numbers add, ``min_*``/``max_*`` keep the extreme,
    lists concatenate, ``first_*`` (key, …) tuples keep the smallest key, dicts merge."""
    if acc is None:
        return part
    for k, v in part.items():
        if k not in acc:
            acc[k] = v
        elif k.startswith("first_"):
            if v is not None and (acc[k] is None or v[0] < acc[k][0]):
                acc[k] = v
        elif k.startswith("min_"):
            acc[k] = np.minimum(acc[k], v)
        elif k.startswith("max_"):
            acc[k] = np.maximum(acc[k], v)
        elif isinstance(v, list):
            acc[k] = acc[k] + v
        elif isinstance(v, dict):
            for kk, vv in v.items():
                acc[k][kk] = acc[k].get(kk, 0) + vv
        else:
            acc[k] = acc[k] + v
    return acc


class _PolarsEngine(_Engine):
    def __init__(self, frames: list[tuple[Any, str]], columns: Any):
        import polars as pl

        self.sources = [src for _, src in frames]
        # the log-probability columns of all the files, in order of first appearance (as the
        # in-memory engine concatenates them): a file without a target's column has no
        # log-probability of it (null) on its rows, as in memory
        union: dict[str, None] = {}
        for lf, src in frames:
            names = lf.collect_schema().names()
            renamed = {theirs: std for std, theirs in (columns or {}).items()}
            with naming_file(src):
                check_renames(names, columns)
                union.update(dict.fromkeys(_lp_columns([renamed.get(n, n) for n in names])))
        # among files with a policy column, a file without one has no policy on its rows
        # (refused, as in memory and on Dask); 'default' only when no file has one
        renamed = {theirs: std for std, theirs in (columns or {}).items()}
        any_policy = any("policy" in (renamed.get(n, n) for n in lf.collect_schema().names())
                         for lf, _ in frames)
        parts = []
        self.notices = []
        for lf, src in frames:
            with naming_file(src):
                q, self.lp_names, notes = _pl_standard(lf, columns, list(union), any_policy)
            self.notices = notes
            parts.append(q)
        self.lf = pl.concat(parts, how="vertical_relaxed") if len(parts) > 1 else parts[0]

    def reduce(self, fn: Callable[[_Batch, Any], dict], ctx: Any, progress: bool | None,
               desc: str) -> dict:
        from cje._progress import progress_bar

        acc = None
        # rows as the unit: their number is known after the scan (the first pass counts them)
        bar = progress_bar(progress, self.n_rows, desc=f"{desc} (polars)", unit="row")
        try:
            for df in self.lf.collect_batches(engine="streaming"):
                acc = _combine(acc, fn(_to_batch(df, len(self.lp_names)), ctx))
                bar.update(df.height)
        finally:
            bar.close()
        return acc if acc is not None else fn(_empty_batch(len(self.lp_names)), ctx)

    def prompt_sums(self, fn: Callable[[_Batch, Any], dict], ctx: Any, cols: list[str],
                    progress: bool | None, buckets: int = 1) -> Iterator[dict[str, np.ndarray]]:
        import polars as pl

        from cje._progress import progress_bar

        n_lp = len(self.lp_names)
        schema = pl.Struct({c: (pl.Int64 if c in ("lab", "f") else pl.Float64) for c in cols})

        def udf(st: Any) -> Any:
            out = fn(_to_batch(st.struct.unnest(), n_lp), ctx)
            return pl.DataFrame({c: out[c] for c in cols}).to_struct()

        names = self.lf.collect_schema().names()
        bar = progress_bar(progress, buckets, desc="per-prompt sums (polars)", unit="pass")
        try:
            for k in range(buckets):  # prompts split by a hash: each group-by holds 1/buckets
                lf = self.lf if buckets == 1 else self.lf.filter(
                    pl.col("prompt_id").hash(seed=0) % buckets == k)
                q = (lf.select(pl.col("prompt_id"), pl.struct(names).map_batches(
                    udf, return_dtype=schema, is_elementwise=True).alias("__x")).unnest("__x")
                    .group_by("prompt_id").agg(*[pl.col(c).max() if c in ("lab", "f")
                                                 else pl.col(c).sum() for c in cols]).select(cols))
                df = q.collect(engine="streaming")
                out = {c: df[c].to_numpy() for c in cols}  # column by column: no wide copy
                del df
                yield out
                bar.update(1)
        finally:
            bar.close()


def _pl_standard(lf: Any, columns: Any, lp_names: list[str] | None = None,
                 policy_elsewhere: bool = False) -> tuple[Any, list[str], list[str]]:
    """The standard columns of a LazyFrame (renamed, typed), the log-probability columns as
    ``__lp0`` (``logprob_base``), ``__lp1``… (``lp_names``, by default this frame's; one it
    lacks is null); the names of those; notices. Without a ``policy`` column the rows are the
    policy 'default', unless other files have one (``policy_elsewhere``): then their policy is
    empty (null), and refused."""
    import polars as pl

    if columns:
        check_renames(lf.collect_schema().names(), columns)
        lf = lf.rename({theirs: std for std, theirs in columns.items()})
    schema = lf.collect_schema()
    names = schema.names()
    lp_names = _lp_columns(names) if lp_names is None else lp_names
    notices = []
    pl_check_types(schema, ("judge_score", "oracle_label", *lp_names))
    cols = [pl.col("prompt_id").cast(pl.String),
            pl_float64(schema, "judge_score"),
            (pl_float64(schema, "oracle_label").fill_nan(None) if "oracle_label" in names
             else pl.lit(None, dtype=pl.Float64).alias("oracle_label")),
            pl.col("__file"), pl.col("__row").cast(pl.Int64)]
    if "policy" in names:
        cols.append(pl.col("policy").cast(pl.String))
    elif policy_elsewhere:
        cols.append(pl.lit(None, dtype=pl.String).alias("policy"))
    else:
        notices.append("No 'policy' column: all rows were taken as one policy named 'default'.")
    cols += [(pl_float64(schema, c) if c in names else pl.lit(None, dtype=pl.Float64)
              ).alias(f"__lp{j}") for j, c in enumerate(lp_names)]
    return lf.select(cols), lp_names, notices


def _lp_columns(names: Sequence[Any]) -> list[str]:
    """``logprob_base`` then the ``logprob[<target>]`` columns in input order."""
    require_columns(names, ("prompt_id", "judge_score", "logprob_base"), hints={
        "logprob_base": " Logged data needs the logging policy's log-probabilities: a "
                        "'logprob_base' column, plus 'logprob[<target>]' per target policy."})
    targets = [str(n) for n in names if str(n).startswith("logprob[") and str(n).endswith("]")]
    if not targets:
        raise CJEInputError(
            "Logged data has no target policies: add a 'logprob[<target>]' column of each "
            "target's log-probability of the logged response (cje-eval: 'target_policy_logprobs').")
    return ["logprob_base", *targets]


def _empty_batch(n_lp: int) -> _Batch:
    e = np.zeros(0)
    return _Batch(pid=np.zeros(0, dtype=object), policy=None, s=e, y=e, lp=[e] * n_lp,
                  key=np.zeros(0, dtype=np.int64))


class _DaskEngine(_Engine):
    def __init__(self, ddf: Any, sources: list[str], columns: Any, client: Any):
        self.client = client
        self.sources = sources
        names = list(ddf.columns)
        if columns:
            check_renames(names, columns)
            ddf = ddf.rename(columns={theirs: std for std, theirs in columns.items()})
            names = list(ddf.columns)
        self.lp_names = _lp_columns(names)
        self.notices = [] if "policy" in names else [
            "No 'policy' column: all rows were taken as one policy named 'default'."]
        self.ddf = ddf.map_partitions(_dask_standard, self.lp_names, sources,
                                      meta=_dask_meta(len(self.lp_names), "policy" in names))

    def _compute(self, objs: list[Any], progress: bool | None, desc: str) -> list[Any]:
        return dask_compute(self.client, objs, progress, desc)

    def reduce(self, fn: Callable[[_Batch, Any], dict], ctx: Any, progress: bool | None,
               desc: str) -> dict:
        import dask

        n_lp = len(self.lp_names)
        ctx_d = dask.delayed(ctx, pure=True, traverse=False)
        tasks = [dask.delayed(_dask_apply)(p, fn, ctx_d, n_lp) for p in self.ddf.to_delayed()]
        acc = None
        for part in self._compute(tasks, progress, f"{desc} (dask)"):
            acc = _combine(acc, part)
        release_arrow_memory()
        return acc if acc is not None else fn(_empty_batch(n_lp), ctx)

    def prompt_sums(self, fn: Callable[[_Batch, Any], dict], ctx: Any, cols: list[str],
                    progress: bool | None, buckets: int = 1) -> Iterator[dict[str, np.ndarray]]:
        import dask
        import pandas as pd

        n_lp = len(self.lp_names)
        meta = pd.DataFrame({"prompt_id": pd.Series([], dtype="string[pyarrow]"),
                             **{c: pd.Series([], dtype="float64") for c in cols}})
        ctx_d = dask.delayed(ctx, pure=True, traverse=False)
        wide = self.ddf.map_partitions(_dask_rows, fn, ctx_d, n_lp, cols, meta=meta)
        # one plain sum of every column (a dict of aggregations per column held several
        # times the memory): 'lab' and 'f' are the same on every row of a prompt, so their
        # sums divided by the prompt's rows (n0) are their values
        shuffle = shuffle_method(self.client)
        with shuffle_directory(shuffle) as graph_context:
            with graph_context():
                agg = wide.groupby("prompt_id", sort=False).sum(
                    split_out=buckets * DASK_SPLIT_PER_GROUP_BY if buckets > 1 else 1,
                    **shuffle)
                # each output partition comes back as numpy columns alone (no ids, no index)
                parts = [dask.delayed(_dask_columns, pure=True)(part, cols)
                         for part in agg.to_delayed()]
            del wide, agg
            yield from self._partitions(parts, progress)

    def _partitions(self, parts: list[Any], progress: bool | None
                    ) -> Iterator[dict[str, np.ndarray]]:
        """The output partitions one by one, each released once taken."""
        if self.client is not None:
            futures = self.client.compute(parts)
            del parts
            while futures:
                future = futures.pop(0)
                out = future.result()
                future.release()
                yield out
                del out, future
        else:
            yield from self._compute(parts, progress, "per-prompt sums (dask)")
        release_arrow_memory()


def _dask_columns(pdf: Any, cols: list[str]) -> dict[str, np.ndarray]:
    """One output partition of the per-prompt group-by as numpy columns: 'lab' and 'f' are
    the same on every row of a prompt, so their sums divided by the prompt's rows (n0) are
    their values."""
    out = {c: pdf[c].to_numpy() for c in cols}
    for c in ("lab", "f"):
        if c in out:
            out[c] = np.rint(out[c] / out["n0"]).astype(np.int64)
    return out


def _dask_apply(pdf: Any, fn: Callable[[_Batch, Any], dict], ctx: Any, n_lp: int) -> dict:
    return fn(_to_batch(pdf, n_lp), ctx)


def _dask_rows(pdf: Any, fn: Callable[[_Batch, Any], dict], ctx: Any, n_lp: int,
               cols: list[str]) -> Any:
    import pandas as pd

    out = fn(_to_batch(pdf, n_lp), ctx)
    frame = pd.DataFrame({"prompt_id": pd.array(pdf["prompt_id"].to_numpy(dtype=object),
                                                dtype="string[pyarrow]"),
                          **{c: np.asarray(out[c], dtype=np.float64) for c in cols}})
    release_arrow_memory()
    return frame


def _dask_meta(n_lp: int, policy: bool) -> Any:
    import pandas as pd

    return pd.DataFrame({"prompt_id": pd.Series([], dtype=object),
                         **({"policy": pd.Series([], dtype=object)} if policy else {}),
                         "judge_score": pd.Series([], dtype="float64"),
                         "oracle_label": pd.Series([], dtype="float64"),
                         "__file": pd.Series([], dtype="int64"),
                         "__row": pd.Series([], dtype="int64"),
                         **{f"__lp{j}": pd.Series([], dtype="float64") for j in range(n_lp)}})


def _dask_standard(pdf: Any, lp_names: list[str], sources: Sequence[str] = (),
                   partition_info: Any = None) -> Any:
    """One partition's standard columns (ids as Python strings), with its number and row
    numbers when the reader did not add them; an input error names the partition's file."""
    with naming_file(_partition_source(pdf, sources, partition_info)):
        return _dask_standard_columns(pdf, lp_names, partition_info)


def _dask_standard_columns(pdf: Any, lp_names: list[str], partition_info: Any = None) -> Any:
    import pandas as pd

    out = pd.DataFrame(index=pdf.index)
    for name in ("prompt_id", "policy"):
        if name not in pdf:
            continue
        col = pdf[name]
        if pd.api.types.is_float_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
            raise CJEInputError(
                f"Out of core the {name!r} column must hold strings or integers; it is "
                f"{col.dtype}. Write the ids as text. " + _OR_MEMORY)
        v = col.to_numpy(dtype=object)
        if pd.api.types.is_integer_dtype(col.dtype):
            v = np.array([str(x) for x in v], dtype=object)
        out[name] = pd.Series(v, index=pdf.index, dtype=object)
    for name, std in (("judge_score", "judge_score"), ("oracle_label", "oracle_label"),
                      *((c, f"__lp{j}") for j, c in enumerate(lp_names))):
        out[std] = dask_number(pdf, name)
    dask_row_keys(pdf, out, partition_info)
    order = [c for c in ("prompt_id", "policy", "judge_score", "oracle_label", "__file", "__row")
             if c in out.columns] + [f"__lp{j}" for j in range(len(lp_names))]
    return out[order].reset_index(drop=True)


def _make_engine(data: Any, engine: str, columns: Any, client: Any) -> _Engine:
    from cje.pipeline.streaming import dask_inputs, out_of_core_files, polars_inputs

    files = out_of_core_files(data, engine)
    if engine == "polars":
        return _PolarsEngine(polars_inputs(data, files, columns), columns)
    ddf, sources = dask_inputs(data, files, columns)
    return _DaskEngine(ddf, sources, columns, client)


# ------------------------------------------------------------------------------------------------
# Pass 1: checks, counts per score, labelled rows, ranges of the log-ratios


def _first(bad: np.ndarray, b: _Batch, value: np.ndarray | None) -> tuple[int, Any, Any] | None:
    if not bad.any():
        return None
    i = int(np.argmin(np.where(bad, b.key, np.iinfo(np.int64).max)))
    return (int(b.key[i]), b.pid[i], None if value is None else value[i])


def _scan(b: _Batch, ctx: dict) -> dict:
    """Pass 1 on one batch (see the module docstring)."""
    judge_scale, lp_names = ctx["judge_scale"], ctx["lp_names"]
    out: dict[str, Any] = {}
    pid_none = np.array([p is None for p in b.pid], dtype=bool)
    stripped = np.array(["" if p is None else p.strip() for p in b.pid], dtype=object)
    checks: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "policy": ((np.array([p is None or p == "" for p in b.policy], dtype=bool)
                    if b.policy is not None else np.zeros(b.s.size, bool)), b.policy),
        "pid": (pid_none | (stripped == ""), None),
        "pid_space": (~pid_none & (stripped != "") & (stripped != b.pid), b.pid),
        "score": (~np.isfinite(b.s), b.s),
        "label": (np.isinf(b.y), b.y),
    }
    if judge_scale is not None:
        with np.errstate(invalid="ignore"):
            checks["score_scale"] = ((b.s < judge_scale[0]) | (b.s > judge_scale[1]), b.s)
    for j, name in enumerate(lp_names):
        lp = b.lp[j]
        checks[f"lp_bad:{name}"] = (np.isinf(lp) | (lp > 0), lp)
        if j == 0:
            checks[f"lp_missing:{name}"] = (np.isnan(lp), lp)
    for kind, (bad, value) in checks.items():
        out[f"n_{kind}"] = int(bad.sum())
        out[f"first_{kind}"] = _first(bad, b, value)
    out["policies"] = {p: 1 for p in (set(b.policy.tolist()) if b.policy is not None
                                      else {ctx["default_policy"]}) if p is not None}
    uniq, cnt = np.unique(b.s[np.isfinite(b.s)], return_counts=True)
    out["scores"] = dict(zip(uniq.tolist(), cnt.tolist(), strict=True))
    lab = ~np.isnan(b.y)
    out["lab"] = [{"pid": b.pid[lab], "s": b.s[lab], "y": b.y[lab], "key": b.key[lab],
                   "lp": [lp[lab] for lp in b.lp]}]
    T = len(lp_names) - 1
    base = b.lp[0]
    n_ok = np.zeros(T, dtype=np.int64)
    lam_hi, lam_lo = np.full(T, -np.inf), np.full(T, np.inf)
    lp_hi, lp_lo = np.full(T, -np.inf), np.full(T, np.inf)
    # judge-score sums of each target's rows without / with its log-probability (the
    # missing-at-random check of cje.diagnostics.gates.excluded_rows_gate)
    s_fin = np.where(np.isfinite(b.s), b.s, 0.0)
    s_all = np.array([s_fin.sum(), s_fin @ s_fin])
    s_sums = np.tile(np.r_[0.0, 0.0, s_all], (T, 1))  # (missing Σs, Σs², kept Σs, Σs²)
    for j in range(T):
        lp = b.lp[j + 1]
        ok = ~np.isnan(lp)
        n_ok[j] = int(ok.sum())
        if n_ok[j] < ok.size:  # the kept rows' sums are the rest of the batch's
            sm = s_fin[~ok]
            s_sums[j, :2] = sm.sum(), sm @ sm
            s_sums[j, 2:] -= s_sums[j, :2]
        if n_ok[j]:
            lam = lp[ok] - base[ok]
            lam_hi[j], lam_lo[j] = lam.max(), lam.min()
            lp_hi[j], lp_lo[j] = lp[ok].max(), lp[ok].min()
    out.update(n_rows=b.s.size, n_ok=n_ok, max_lam=lam_hi, min_lam=lam_lo, max_lp=lp_hi,
               min_lp=lp_lo, score_sums=s_sums)
    # every log-probability column's count and range (a constant one draws a notice)
    given = [lp[~np.isnan(lp)] for lp in b.lp]
    out.update(n_lp_given=np.array([g.size for g in given], dtype=np.int64),
               min_lp_all=np.array([g.min() if g.size else np.inf for g in given]),
               max_lp_all=np.array([g.max() if g.size else -np.inf for g in given]))
    return out


#: The checks of pass 1 in :mod:`cje.data`'s order: kind → (column, rule, fix).
def _rules(lp_names: Sequence[str], judge_scale: tuple[float, float] | None
           ) -> list[tuple[str, str, str, str]]:
    from cje.pipeline.streaming import _RULES

    out = [(k, c, *_RULES[k]) for k, c in (("policy", "policy"), ("pid", "prompt_id"),
                                           ("pid_space", "prompt_id"), ("score", "judge_score"),
                                           ("label", "oracle_label"))]
    if judge_scale is not None:
        out.append(("score_scale", "judge_score",
                    f"The 'judge_score' column must lie within judge_scale=({judge_scale[0]:g}, "
                    f"{judge_scale[1]:g})", _RULES["score_scale"][1]))
    for j, c in enumerate(lp_names):
        out.append((f"lp_bad:{c}", c,
                    f"The {c!r} column must hold log-probabilities (finite and <= 0, empty where "
                    "missing)", "A sequence log-probability is a sum of token log-probabilities; "
                    "check its sign and that it was not exponentiated or normalised."))
        if j == 0:
            out.append((f"lp_missing:{c}", c, f"The {c!r} column must be complete",
                        "Every importance weight needs the logging policy's log-probability of "
                        "the logged response: fill it in, or drop those rows."))
    return out


def _raise_bad(scan: dict, sources: Sequence[str], lp_names: Sequence[str],
               judge_scale: tuple[float, float] | None) -> None:
    """The first kind of bad row found, naming its file and row."""
    for kind, column, rule, fix in _rules(lp_names, judge_scale):
        if not scan.get(f"n_{kind}"):
            continue
        key, pid, value = scan[f"first_{kind}"]
        f, r = divmod(key, 1 << _ROW_BITS)
        numeric = column not in ("policy", "prompt_id")
        if value is None or (numeric and isinstance(value, float) and math.isnan(value)
                             and kind.startswith(("lp_missing", "score"))):
            shown = "none"
        else:
            shown = format(float(value), "g") if numeric else repr(value)
        who = "" if kind == "pid" else f" (prompt_id={pid!r})"
        raise CJEInputError(
            f"In '{sources[f]}': {rule}; row {r}{who} has {shown} "
            f"({scan[f'n_{kind}']} such rows in all). {fix}")


# ------------------------------------------------------------------------------------------------
# Pass 2: cells and histograms


def _bins(v: np.ndarray, lo: float, hi: float, nb: int) -> np.ndarray:
    """Bin of each value among ``nb`` equal bins of ``[lo, hi]`` (the same expression in every
    pass, so a value lands in the same bin each time)."""
    if not hi > lo:
        return np.zeros(v.size, dtype=np.int64)
    b = np.floor((v - lo) * (nb / (hi - lo))).astype(np.int64)
    return np.clip(b, 0, nb - 1)


def _row_folds(b: _Batch, ctx: dict, fold: bool = True, lab: bool = True
               ) -> tuple[np.ndarray, np.ndarray]:
    """Each row's prompt fold (:func:`cje.data.prompt_folds`: the labelled prompts' from the
    small table of the driver, the others' from the hash of their id) and its labelled prompt's
    position (−1: none). A pass that reads neither (``fold``/``lab`` false, or an estimator
    that reads no fold) gets zeros: the hash is most of a pass's time."""
    fold = fold and ctx["need_fold"]
    if not (fold or lab):
        z = np.zeros(b.pid.size, dtype=np.int64)
        return z, z - 1
    idx = _lookup(ctx["lab_prompt"], b.pid)
    if not fold:
        return np.zeros(b.pid.size, dtype=np.int64), idx
    folds = _hash_folds(b, ctx)
    has = idx >= 0
    folds[has] = ctx["lab_fold"][idx[has]]
    return folds, idx


#: Hash folds of the batches seen by this process in the current analysis (the passes after the
#: first read the same batches again): batch → folds, at most _HASH_CACHE_MAX rows in all.
_HASH_CACHE: dict[tuple[Any, ...], np.ndarray] = {}
_HASH_CACHE_MAX = 1 << 27


def _hash_folds(b: _Batch, ctx: dict) -> np.ndarray:
    """``hash(seed, prompt id) mod K`` of each row (:func:`cje.data.prompt_folds`' fold of an
    unlabelled prompt), kept for the batch: a batch is known by the analysis (``ctx["token"]``)
    and its first, middle and last row keys and size — the keys (file × 2^40 + row) are unique,
    and every pass reads the same ordered rows. A new analysis empties the cache."""
    n = b.pid.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    token = ctx.get("token")
    key = (token, int(b.key[0]), int(b.key[n // 2]), int(b.key[-1]), n, int(b.key.sum()))
    got = _HASH_CACHE.get(key)
    if got is not None:
        return got.astype(np.int64)
    folds = (_prompt_hash(b.pid, ctx["seed"]) % np.uint64(ctx["k"])).astype(np.int64)
    if token is not None:
        try:
            if any(k_[0] != token for k_ in list(_HASH_CACHE)[:1]):
                _HASH_CACHE.clear()  # another analysis's batches
            if sum(v.size for v in list(_HASH_CACHE.values())) + n <= _HASH_CACHE_MAX:
                _HASH_CACHE[key] = folds.astype(np.int16 if ctx["k"] < 2**15 else np.int64)
        except RuntimeError:  # (another thread changed the dict meanwhile: not kept)
            pass
    return folds


def _fresh_index(b: _Batch, ctx: dict) -> np.ndarray | None:
    """Each row's prompt among the fresh draws' prompts (−1: none); ``None`` without them."""
    fp = ctx.get("fresh_prompt")
    if fp is None:
        return None
    return _lookup(fp, b.pid)


def _lookup(index: Any, pid: np.ndarray) -> np.ndarray:
    """Each id's position in ``index`` (a :class:`pandas.Index` of distinct ids; −1: absent),
    by pandas' hash table (a Python dict per row took a third of a pass)."""
    if pid.size == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(index.get_indexer(pid), dtype=np.int64)


def _usable(b: _Batch, ctx: dict, j: int, fidx: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray | None]:
    """Target ``j``'s usable rows (its log-probability present and, for the DR family, fresh
    draws of the row's prompt) and the rows that lack only the fresh draws."""
    ok = ~np.isnan(b.lp[j + 1])
    if fidx is None:
        return ok, None
    has = ctx["targets"][j]["has"]
    with_fresh = (fidx >= 0) & has[np.maximum(fidx, 0)]
    return ok & with_fresh, ok & ~with_fresh


def _cells(b: _Batch, ctx: dict) -> dict:
    """Pass 2 on one batch."""
    D, K, nb = ctx["distinct"].size, ctx["k"], HIST_BINS
    code = np.searchsorted(ctx["distinct"], b.s)
    fold, _ = _row_folds(b, ctx, lab=False)
    fidx = _fresh_index(b, ctx)
    out: dict[str, Any] = {}
    base = b.lp[0]
    for j, t in enumerate(ctx["targets"]):
        lp = b.lp[j + 1]
        ok, miss = _usable(b, ctx, j, fidx)
        if miss is not None:
            out[f"n_miss{j}"] = int(miss.sum())
            out[f"first_miss{j}"] = _first(miss, b, None)
            out[f"nf{j}"] = np.bincount(fidx[ok], minlength=ctx["n_fresh_prompts"])
        lam = lp[ok] - base[ok]
        e = np.exp(lam - t["M"])
        key = fold[ok] * D + code[ok]
        out[f"N{j}"] = np.bincount(key, minlength=K * D).reshape(K, D)
        out[f"Se{j}"] = np.bincount(key, weights=e, minlength=K * D).reshape(K, D)
        out[f"Se2{j}"] = np.bincount(key, weights=e * e, minlength=K * D).reshape(K, D)
        lo, hi = np.full(K * D, np.inf), np.full(K * D, -np.inf)
        np.minimum.at(lo, key, e)
        np.maximum.at(hi, key, e)
        out[f"min_e{j}"], out[f"max_e{j}"] = lo.reshape(K, D), hi.reshape(K, D)
        lb = _bins(lam, t["lam_lo"], t["lam_hi"], nb)
        out[f"hl_n{j}"] = np.bincount(lb, minlength=nb)
        out[f"hl_lam{j}"] = np.bincount(lb, weights=lam, minlength=nb)
        out[f"hl_e{j}"] = np.bincount(lb, weights=e, minlength=nb)
        u = -lp[ok]
        ub = _bins(u, t["u_lo"], t["u_hi"], nb)
        out[f"hu_n{j}"] = np.bincount(ub, minlength=nb)
        out[f"hu_e{j}"] = np.bincount(ub, weights=e, minlength=nb)
        out[f"hu_e2{j}"] = np.bincount(ub, weights=e * e, minlength=nb)
        out[f"near{j}"] = int(np.count_nonzero(lam < math.log(NEAR_ZERO_RATIO)))
    out["n_code"] = np.bincount(code, minlength=D)
    if fidx is not None:  # logged rows (any) per fresh-draw prompt
        out["nf_any"] = np.bincount(fidx[fidx >= 0], minlength=ctx["n_fresh_prompts"])
    return out


# ------------------------------------------------------------------------------------------------
# Pass 3: per-prompt sums; pass 3b/4: the bins that hold the order statistics


def _prompt_rows(b: _Batch, ctx: dict) -> dict:
    """Per row: its labelled prompt's position (``lab``, max over the prompt), and per policy
    the summands of the per-prompt totals."""
    code = np.searchsorted(ctx["distinct"], b.s)
    # folds only for the stabilised weights' and the outcome models' (fold, score) tables
    fold, idx = _row_folds(b, ctx, fold=any(t.get("stable_residual") or t.get("extra")
                                            for t in ctx["targets"]))
    fidx = _fresh_index(b, ctx)
    reward, s01 = ctx["reward"][code], ctx["s01"][code]
    out: dict[str, np.ndarray] = {"lab": idx, "n0": np.ones(b.s.size), "r0": reward, "s0": s01}
    if fidx is not None:
        out["f"] = fidx
    base = b.lp[0]
    for j, t in enumerate(ctx["targets"]):
        lp = b.lp[j + 1]
        ok, _ = _usable(b, ctx, j, fidx)
        w = np.where(ok, np.exp(np.where(ok, lp - base, 0.0) - t["M"]) * t["scale"], 0.0)
        out[f"n{j + 1}"] = ok.astype(np.float64)
        out[f"w{j + 1}"] = w
        out[f"wr{j + 1}"] = w * reward
        out[f"ws{j + 1}"] = w * s01
        if t.get("stable_residual"):
            out[f"wt{j + 1}"] = np.where(ok, t["a"][fold, code] + t["b"][fold] * w, 0.0)
        # per calibration run (DR family): the reward, the outcome models, the stabilised
        # weights, each a table over (fold, score) or over the scores
        for name, tab in t.get("extra", {}).items():
            out[name] = w * (tab[code] if tab.ndim == 1 else tab[fold, code])
        for name, (a, bb) in t.get("extra_stable", {}).items():
            out[name] = np.where(ok, a[fold, code] + bb[fold] * w, 0.0)
    return out


def _collect(b: _Batch, ctx: dict) -> dict:
    """The rows of the wanted histogram bins (raw log-ratios; surprisal with row key and ``e``)
    and, with stabilised weights, their histogram."""
    code = np.searchsorted(ctx["distinct"], b.s)
    fold, _ = _row_folds(b, ctx, fold=any(t.get("a") is not None for t in ctx["targets"]),
                         lab=False)
    fidx = _fresh_index(b, ctx)
    out: dict[str, Any] = {}
    base = b.lp[0]
    nb = HIST_BINS
    for j, t in enumerate(ctx["targets"]):
        lp = b.lp[j + 1]
        ok, _ = _usable(b, ctx, j, fidx)
        lam = lp[ok] - base[ok]
        lb = _bins(lam, t["lam_lo"], t["lam_hi"], nb)
        keep = np.isin(lb, t["lam_bins"])
        out[f"lam{j}"] = [(lb[keep], lam[keep])]
        u = -lp[ok]
        ub = _bins(u, t["u_lo"], t["u_hi"], nb)
        keep = ub == t["u_bin"]
        e = np.exp(lam - t["M"])
        out[f"u{j}"] = [(u[keep], b.key[ok][keep], e[keep])]
        if t.get("a") is not None:
            ws = t["a"][fold[ok], code[ok]] + t["b"][fold[ok]] * (e * t["scale"])
            sb = _bins(ws, t["ws_lo"], t["ws_hi"], nb)
            if t.get("ws_bins") is None:
                out[f"hs_n{j}"] = np.bincount(sb, minlength=nb)
                out[f"hs_w{j}"] = np.bincount(sb, weights=ws, minlength=nb)
            else:
                keep = np.isin(sb, t["ws_bins"])
                out[f"ws{j}"] = [(sb[keep], ws[keep])]
    return out


# ------------------------------------------------------------------------------------------------
# Order statistics from a histogram and its collected bins


class _Order:
    """The values of a column in descending order, known through a histogram (count and sums
    per bin, bins ascending in value) and the collected values of some bins."""

    def __init__(self, counts: np.ndarray, sums: dict[str, np.ndarray]):
        self.counts = counts.astype(np.int64)
        self.sums = sums
        # rows in the bins above bin b: above[b]
        rev = np.cumsum(self.counts[::-1])[::-1]
        self.above = np.append(rev[1:], 0)
        self.n = int(self.counts.sum())
        self.rows: dict[int, dict[str, np.ndarray]] = {}

    def bin_of(self, rank: int) -> int:
        """The bin of the value of descending rank ``rank`` (0: the largest)."""
        return int(np.flatnonzero((self.above <= rank) & (rank < self.above + self.counts))[0])

    def put(self, bin_: int, cols: dict[str, np.ndarray], order: np.ndarray) -> None:
        self.rows[bin_] = {k: v[order] for k, v in cols.items()}

    def value(self, rank: int, col: str) -> float:
        b = self.bin_of(rank)
        return float(self.rows[b][col][rank - self.above[b]])

    def top_sum(self, j: int, col: str) -> float:
        """Sum of ``col`` over the ``j`` largest values."""
        if j <= 0:
            return 0.0
        b = self.bin_of(j - 1)
        full = float(self.sums[col][b + 1:].sum())
        return full + float(self.rows[b][col][: j - self.above[b]].sum())


def _quantile_ranks(n: int) -> list[int]:
    """Descending ranks :func:`numpy.quantile` reads for :func:`~cje.pipeline.summaries.weight_tail`."""
    out = set()
    for p in TAIL_PROBS:
        if p >= 1.0 / n:
            h = (n - 1) * (1.0 - p)
            lo = int(math.floor(h))
            out.update({n - 1 - lo, n - 1 - min(lo + 1, n - 1)})
    return sorted(out)


def _weight_tail(n: int, value: Callable[[int], float]) -> list[list[float]]:
    """:func:`~cje.pipeline.summaries.weight_tail` from the order statistics (``value(rank)``,
    descending), with :func:`numpy.quantile`'s linear interpolation."""
    probs = [p for p in TAIL_PROBS if p >= 1.0 / n]
    out = []
    for p in probs:
        q = 1.0 - p
        h = (n - 1) * q
        lo = int(math.floor(h))
        hi = min(lo + 1, n - 1)
        a, b = value(n - 1 - lo), value(n - 1 - hi)
        g = h - lo
        v = b - (b - a) * (1 - g) if g >= 0.5 else a + (b - a) * g
        out.append([p, float(v)])
    return out


# ------------------------------------------------------------------------------------------------
# The shape on sufficient statistics


@dataclass
class _TargetStats:
    name: str
    n: int  # usable rows
    M: float
    S: float  # Σ e
    scale: float  # n / S: e → Hájek weight
    N: np.ndarray  # (K, D) rows per cell
    Sw: np.ndarray
    Sw2: np.ndarray
    w_min: np.ndarray
    w_max: np.ndarray
    lab: np.ndarray  # positions among the labelled rows of the target's usable labelled rows
    w_lab: np.ndarray
    lam_lab: np.ndarray
    excluded: dict[str, int]
    cache: dict
    stable_residual: bool = False  # the oracle residual term on the stabilised weights
    # the DR family: the target's fresh draws (held in memory) and its usable logged rows per
    # fresh-draw prompt
    nf: np.ndarray | None = None  # (F,) usable logged rows per fresh prompt
    f_prompt: np.ndarray | None = None  # per fresh draw: its prompt (of the F)
    f_fold: np.ndarray | None = None
    f_code: np.ndarray | None = None
    f_s01: np.ndarray | None = None
    f_count: np.ndarray | None = None  # (F,) fresh draws per prompt, at least 1


class LoggedPartitionedShape:
    """The logged data shape of :mod:`cje.pipeline.core` on sufficient statistics (see the
    module docstring): per-cell sums per target, the labelled rows, per-prompt totals."""

    share_over_se2 = True

    def __init__(self, *, base: str, targets: list[_TargetStats], table: Table,
                 lab_fold: np.ndarray, lab_code: np.ndarray, distinct: np.ndarray,
                 n_code: np.ndarray, judge_scale: tuple[float, float],
                 label_scale: tuple[float, float], estimator: Any, k: int, alpha: float):
        self.names = [base, *(t.name for t in targets)]
        self.targets, self.table, self.k = targets, table, k
        self.estimator, self.alpha = estimator, alpha
        self.judge_scale, self.label_scale = judge_scale, label_scale
        self.labelled_scores = from_unit(table.s[table.train], judge_scale)
        self.probe_names: list[str] = []
        self.distinct = distinct
        self.distinct01 = to_unit(distinct, judge_scale)
        self.n_code = n_code  # logged rows per distinct score
        self.n_logged = int(n_code.sum())
        self.lab_fold, self.lab_code = lab_fold, lab_code  # per labelled row: fold, score code
        self.m_log = int(lab_fold.size)  # labelled logged rows (the table's first rows)
        self.run_parts: dict[frozenset[int], list[dict]] = {}
        self.run_values: dict[frozenset[int], np.ndarray] = {}
        self.mixture: dict[int, np.ndarray] = {}
        self.stable: dict[int, AffineSimcal] = {}
        self.totals: np.ndarray | None = None
        # (set_totals) policy index -> (own_ss, own_factor, own_m) of its residual term's part on
        # the labelled rows, and those parts multiplied prompt by prompt (the contrasts')
        self.own: dict[int, tuple[float, float, float]] = {}
        self.own_cross: np.ndarray | None = None
        # (set_totals) DR target index -> fresh_balance (fresh mean, weighted logged mean, z)
        self.fresh_bal: dict[int, tuple[float, float, float]] = {}
        self.present: np.ndarray | None = None
        self.n_clusters = 0
        self.naive: list[tuple[float, float, float]] = []
        self.diag: dict[int, dict[str, Any]] = {}
        # policy → (signed allowance, gap, its SE, per-prompt influence totals)
        self.gaps: dict[int, tuple[float, float, float, np.ndarray]] = {}

    # ---- one calibration ---------------------------------------------------------------------
    def _calib(self, calibrator: RewardCalibrator, deleted: frozenset[int]
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The reward at the distinct scores, the fold-deleted index (K, D), and each labelled
        row's out-of-fold residual."""
        d01 = self.distinct01
        full = calibrator.predictor(deleted)(d01, None)
        index = np.vstack([
            calibrator.predictor(deleted | {k} if len(deleted | {k}) < self.k else deleted)(d01, None)
            for k in range(self.k)])
        t = self.table
        oof = index[self.lab_fold, self.lab_code]
        return full, index, t.y[t.train][: self.m_log] - oof

    def prepare(self, calibrator: RewardCalibrator) -> None:
        """The numbers of every calibration run (the full one and each fold-deleted one)."""
        for r in [frozenset(), *(frozenset({d}) for d in range(self.k))]:
            self.run_parts[r] = self.parts(calibrator, r)

    def parts(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> list[dict]:
        """Per policy the numbers of its estimate under one calibration."""
        full, index, e = self._calib(calibrator, deleted)
        m0 = e.size
        rbar = float(self.n_code @ full) / self.n_logged
        ebar = float(e.mean()) if m0 else 0.0
        out = [{"value": rbar + ebar, "rbar": rbar, "ebar": ebar, "e": e, "full": full}]
        for j, tg in enumerate(self.targets):
            out.append(self._target(j, tg, full, index, e, deleted))
        return out

    def _target(self, j: int, tg: _TargetStats, full: np.ndarray, index: np.ndarray,
                e_all: np.ndarray, deleted: frozenset[int]) -> dict:
        est = self.estimator
        n = tg.n
        e = e_all[tg.lab]
        m = e.size
        x = e * (n / m) if m else np.zeros(0)
        w_lab = tg.w_lab
        sw_code = tg.Sw.sum(axis=0)
        sum_w = float(tg.Sw.sum())
        res: dict[str, Any] = {"n": n, "m": m, "x": x, "full": full}
        if isinstance(est, IPS):
            with np.errstate(over="ignore", invalid="ignore"):
                kappa = tg.S * math.exp(tg.M) / n if tg.M < 709 else math.inf
                rho_lab = np.exp(tg.lam_lab)
                num = float(sw_code @ full) * kappa + float((rho_lab * x).sum())
                psi = num / n
                res.update(value=psi, kappa=kappa, psi_e=float((rho_lab * x).sum()) / n,
                           rho_lab=rho_lab)
            return res
        # the residual term on the raw weights (SNIPS, calibrated IPS: stabilised refused)
        psi_e = float((w_lab * x).sum()) / sum_w
        res["psi_e"] = psi_e
        c = self._tail(tg, full, e, x, w_lab, psi_e, sum_w, tg.Sw2.sum(axis=0))
        res["c"] = c
        if isinstance(est, SNIPS):
            res["value"] = (float(sw_code @ full) + float((w_lab * x).sum())) / sum_w
            return res
        aff = self._simcal(tg, w_lab, index, est)
        sws = aff.a * tg.N + aff.b[:, None] * tg.Sw
        psi_r = float(sws.sum(axis=0) @ full) / float(sws.sum())
        res.update(value=psi_r + psi_e, psi_r=psi_r, stable=aff,
                   mu=(float(sw_code @ full) - psi_r * sum_w) / n, sws=sws)
        if tg.stable_residual:
            # the residual term on the stabilised weights (the raw one kept for the gap)
            fl, cl = self.lab_fold[tg.lab], self.lab_code[tg.lab]
            ws_lab = aff.a[fl, cl] + aff.b[fl] * w_lab
            sum_s = float(sws.sum())
            psi_s = float((ws_lab * x).sum()) / sum_s
            b2 = aff.b[:, None]
            v2 = (aff.a * aff.a * tg.N + 2 * aff.a * b2 * tg.Sw + b2 * b2 * tg.Sw2).sum(axis=0)
            res.update(value=psi_r + psi_s, psi_s=psi_s, ws_lab=ws_lab,
                       c_s=self._tail(tg, full, e, x, ws_lab, psi_s, sum_s, v2))
        if not deleted:
            self.stable[j] = aff
        if not isinstance(est, CalibratedIPS):
            self._doubly_robust(tg, res, full, index, aff, sws, sum_w)
        return res

    def _doubly_robust(self, tg: _TargetStats, res: dict, full: np.ndarray, index: np.ndarray,
                       aff: AffineSimcal, sws: np.ndarray, sum_w: float) -> None:
        """The DR family's numbers (:func:`~cje.estimators.offpolicy.doubly_robust`) of each
        member: the outcome model per (fold, score) cell and at the fresh draws, the fresh-draw
        mean per prompt, and the terms of the estimate."""
        from cje.estimators.offpolicy import StackedDR

        est = self.estimator
        members = est.members if isinstance(est, StackedDR) else (est,)
        resid = res["psi_s"] if tg.stable_residual else res["psi_e"]
        out = []
        assert tg.nf is not None and tg.f_prompt is not None and tg.f_count is not None
        for mb in members:
            Q, qf = self._outcome(mb, tg, full, index)
            assert np.array_equal(qf, Q[tg.f_fold, tg.f_code])  # (what _gbar relies on)
            psi_g = float(tg.nf @ self._gbar(tg, Q)) / tg.n
            d = full[None, :] - Q
            psi_c = float((sws * d).sum()) / float(sws.sum())
            mu_c = (float((tg.Sw * d).sum()) - psi_c * sum_w) / tg.n
            out.append({"name": mb.name, "Q": Q, "psi_g": psi_g, "psi_c": psi_c,
                        "mu_c": mu_c, "value": psi_g + psi_c + resid})
        res["members"] = out
        res["value"] = out[0]["value"] if len(out) == 1 else None  # stacked: after the pass

    @staticmethod
    def _gbar(tg: _TargetStats, Q: np.ndarray) -> np.ndarray:
        """``ḡ`` per fresh-draw prompt: the mean of the outcome model over the target's fresh
        draws of the prompt. Every member's model at a fresh draw is its cell's value
        ``Q[fold, score]`` (DR-CPO's index, MRDR's table, TMLE's fluctuated index: the same
        operations on the same numbers), so the means are recomputed from ``Q`` where needed
        rather than kept for every member and run (F numbers each)."""
        assert tg.f_prompt is not None and tg.f_count is not None and tg.nf is not None
        return np.bincount(tg.f_prompt, weights=Q[tg.f_fold, tg.f_code],
                           minlength=tg.nf.size) / tg.f_count

    def _outcome(self, mb: Any, tg: _TargetStats, full: np.ndarray, index: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """A DR member's outcome model ``q`` per (fold, score) cell (K, D) and at the target's
        fresh draws: the in-memory fits on the cells and the labelled rows."""
        from cje.estimators.offpolicy import MRDR, TMLE, LoggedTarget
        from cje.estimators.outcome import _expit, _logit, mrdr_outcome, tmle_clever, tmle_epsilon

        K, D = index.shape
        ff, fc = tg.f_fold, tg.f_code
        if isinstance(mb, TMLE):
            h = tmle_clever(tg.Sw, tg.N, index, self.distinct01, tg.cache.setdefault("tmle", {}))
            eta = _logit(index)
            eps = tmle_epsilon(eta, h, tg.N * full, tg.N)
            return _expit(eta + eps * h), _expit(_logit(index[ff, fc]) + eps * h[ff, fc])
        if isinstance(mb, MRDR):
            # the target's labelled rows, then one unlabelled row per cell: mrdr_outcome fits
            # on the first and gives the table at the others
            m = tg.lab.size
            grid_f, grid_c = np.repeat(np.arange(K), D), np.tile(np.arange(D), K)
            y_lab = self.table.y[self.table.train][: self.m_log][tg.lab]
            lab = np.r_[np.ones(m, bool), np.zeros(K * D, bool)]
            z = np.zeros(m + K * D)
            x = LoggedTarget(
                reward=z, residual=z, labelled=lab, weights=np.r_[tg.w_lab, np.ones(K * D)],
                log_w=z, oof=z, label=np.r_[y_lab, np.full(K * D, np.nan)],
                cluster=np.zeros(m + K * D, np.int64),
                fold=np.r_[self.lab_fold[tg.lab], grid_f], codes=np.r_[self.lab_code[tg.lab], grid_c],
                stable_residual=False, index=index, distinct_s=self.distinct01, full=full,
                used=np.arange(D), used_codes=np.r_[self.lab_code[tg.lab], grid_c],
                fresh_cluster=np.zeros(0, np.int64), fresh_fold=ff, fresh_codes=fc,
                fresh_label=np.full(ff.size, np.nan), fresh_count=np.ones(1), cache=None)
            q, qf = mrdr_outcome(x, mb.omega)
            return q[m:].reshape(K, D), qf
        return index, index[ff, fc]  # DR-CPO: the out-of-fold calibration

    def _simcal(self, tg: Any, w_lab: np.ndarray, index: np.ndarray, est: Any) -> AffineSimcal:
        """SIMCal-W on the distinct judge scores that the target's rows take, as in memory (its
        candidates at a cell whose rows all lie in the held-out folds are interpolated between
        neighbouring ranks, so a score without the target's rows — in other targets' rows or
        the fresh draws — would move them); the other scores get ``a = 0`` (no rows)."""
        used = np.flatnonzero(tg.N.sum(axis=0) > 0)
        n_codes = tg.N.shape[1]
        if used.size == n_codes:
            return simcal_affine(
                cell_stats(tg.N, tg.Sw, tg.Sw2, w_lab, self.lab_code[tg.lab],
                           self.lab_fold[tg.lab], self.table.y[self.table.train][tg.lab]),
                tg.w_min, index, tiebreak=self.distinct01, var_cap=est.var_cap,
                stable_residual=tg.stable_residual, cache=tg.cache)
        sub = np.full(n_codes, -1, dtype=np.int64)
        sub[used] = np.arange(used.size)
        aff = simcal_affine(
            cell_stats(tg.N[:, used], tg.Sw[:, used], tg.Sw2[:, used], w_lab,
                       sub[self.lab_code[tg.lab]], self.lab_fold[tg.lab],
                       self.table.y[self.table.train][tg.lab]),
            tg.w_min[:, used], index[:, used], tiebreak=self.distinct01[used],
            var_cap=est.var_cap, stable_residual=tg.stable_residual,
            cache=tg.cache.setdefault("simcal_used", {}))
        a = np.zeros((aff.a.shape[0], n_codes))
        a[:, used] = aff.a
        return AffineSimcal(a=a, b=aff.b, mixture=aff.mixture, gamma=aff.gamma,
                            fallbacks=aff.fallbacks)

    def _tail(self, tg: _TargetStats, full: np.ndarray, e: np.ndarray, x: np.ndarray,
              v_lab: np.ndarray, psi_e: float, sum_v: float, v2_code: np.ndarray) -> float:
        """:func:`~cje.estimators.offpolicy.tail_inflation` from the cells: the residual term's
        weights ``v`` given by their labelled rows' values, their sum and ``Σ v²`` per score."""
        from cje.estimators.offpolicy import _REGIONS, _ROWS_PER_REGION

        n, m = tg.n, e.size
        if m == 0 or m == n:
            return 1.0
        sum_w2 = float(tg.Sw2.sum())
        if float(tg.Sw.sum()) ** 2 / sum_w2 >= TAIL_VARIANCE_ESS * n:
            return 1.0
        lab_term = psi_e * (n / m - 1.0)
        phi_lab = v_lab * (x - psi_e) - lab_term
        sum_v2 = float(v2_code.sum())
        u_n = n - m
        u_v = sum_v - float(v_lab.sum())
        u_v2 = sum_v2 - float((v_lab * v_lab).sum())
        sample = float((phi_lab * phi_lab).sum()) + psi_e * psi_e * (u_n - 2 * u_v + u_v2)
        if not sample > 0.0:
            return 1.0
        e2 = e ** 2
        r_lab = full[self.lab_code[tg.lab]]
        regions = max(1, min(_REGIONS, m // _ROWS_PER_REGION))
        if regions > 1:
            edges = np.quantile(r_lab, np.linspace(0.0, 1.0, regions + 1)[1:-1])
            region = np.searchsorted(edges, r_lab)
            count = np.bincount(region, minlength=regions)
            h = np.bincount(region, weights=e2, minlength=regions)
            h = np.where(count > 0, h / np.maximum(count, 1), e2.mean())
            h_code = h[np.searchsorted(edges, full)]
            design = float((v2_code * h_code).sum()) * n / m - n * psi_e * psi_e
        else:
            design = sum_v2 * float(e2.mean()) * n / m - n * psi_e * psi_e
        return float(np.sqrt(design / sample)) if design > sample else 1.0

    def values(self, calibrator: RewardCalibrator, deleted: frozenset[int]) -> np.ndarray:
        if deleted in self.run_values:
            return self.run_values[deleted]
        return np.array([p["value"] for p in self.parts(calibrator, deleted)])

    # ---- per-prompt totals (full calibration) ------------------------------------------------
    def set_totals(self, chunks: Iterable[dict[str, np.ndarray]], lab_prompt: np.ndarray,
                   n_lab_prompts: int) -> None:
        """Each policy's per-prompt influence totals from the per-prompt sums (``chunks``: the
        group-by's results, column name → values, one chunk per bucket of prompts) and the
        labelled rows' terms (``lab_prompt``: each labelled row's prompt among the labelled
        prompts). Per chunk only the totals are kept (and, for stacked DR, each member's
        totals under the full calibration and the Gram matrices of every run)."""
        parts = self.run_parts[frozenset()]
        P = len(self.names)
        keep: dict[str, list[np.ndarray]] = {}
        grams: dict[tuple[int, int], np.ndarray] = {}  # (target, run) → Gram of members' totals

        def put(name: str, a: np.ndarray) -> None:
            keep.setdefault(name, []).append(a)

        cross = np.zeros((P, P))  # Σ_g c_a,g·c_b,g of the policies' logged rows per prompt
        for c in chunks:
            G = c["n0"].size
            lab = c["lab"].astype(np.int64)
            has = lab >= 0

            def add(per_lab_row: np.ndarray, rows: np.ndarray | slice = slice(None),
                    G: int = G, lab: np.ndarray = lab, has: np.ndarray = has) -> np.ndarray:
                """Per prompt (of the chunk) the sum of a labelled-row quantity."""
                tot = np.bincount(lab_prompt[rows], weights=per_lab_row, minlength=n_lab_prompts)
                out = np.zeros(G)
                out[has] = tot[lab[has]]
                return out

            p0 = parts[0]
            e, m0 = p0["e"], p0["e"].size
            n0 = c["n0"]
            put("t0", c["r0"] - p0["rbar"] * n0 + (add((self.n_logged / m0) * (e - p0["ebar"]))
                                                   if m0 else 0.0))
            put("on0", n0 > 0)
            sizes = [n0]
            put("u0", c["s0"] - (self.n_code @ self.distinct01 / self.n_logged) * n0)
            for j, tg in enumerate(self.targets):
                p = parts[j + 1]
                nj, w, wr = c[f"n{j + 1}"], c[f"w{j + 1}"], c[f"wr{j + 1}"]
                put(f"on{j + 1}", nj > 0)
                sizes.append(nj)
                n, m, x = p["n"], p["m"], p["x"]
                rows = tg.lab
                mg = add(np.ones(m), rows)
                lab_on = 0 < m < n
                t: Any = None
                if isinstance(self.estimator, IPS):
                    rx = add(p["rho_lab"] * x, rows)
                    t = p["kappa"] * wr + rx - p["value"] * nj
                    if lab_on:
                        t -= p["psi_e"] * ((n / m) * mg - nj)
                else:
                    wx = add(tg.w_lab * x, rows)
                    psi_e = p["psi_e"]
                    phi_e = wx - psi_e * w - (psi_e * ((n / m) * mg - nj) if lab_on else 0.0)
                    if isinstance(self.estimator, SNIPS):
                        t = wr + wx - p["value"] * w - (psi_e * ((n / m) * mg - nj) if lab_on
                                                        else 0.0)
                        if p["c"] > 1.0:
                            t = t + (p["c"] - 1.0) * phi_e
                    elif not tg.stable_residual:
                        t = wr - p["psi_r"] * w - p["mu"] * nj + p["c"] * phi_e
                    else:
                        wt = c[f"wt{j + 1}"]
                        psi_s = p["psi_s"]
                        phi_s = (add(p["ws_lab"] * x, rows) - psi_s * wt
                                 - (psi_s * ((n / m) * mg - nj) if lab_on else 0.0))
                        t = wr - p["psi_r"] * w - p["mu"] * nj + p["c_s"] * phi_s
                        # the transport allowance's influence: raw minus stabilised residual
                        put(f"g{j + 1}", p["c"] * phi_e - p["c_s"] * phi_s)
                    if "members" in p:  # the DR family (in place of the reward term above)
                        # per prompt for fresh_balance: rows, Σ w, Σ w·s, fresh mean score
                        put(f"fb{j + 1}", np.vstack([nj, w, c[f"ws{j + 1}"],
                                                     self._fresh_mean_score(tg)[
                                                         np.maximum(c["f"].astype(np.int64), 0)]]))
                        T = self._dr_totals(j, tg, c, add, mg, lab_on, grams)
                        if len(T) == 1:
                            t = T[0]
                        else:
                            put(f"T{j + 1}", np.vstack(T))
                            t = np.zeros(G)  # stacked below, once every run's Gram is known
                put(f"t{j + 1}", t)
                if tg.f_s01 is None:
                    mean = float(tg.Sw.sum(axis=0) @ self.distinct01) / float(tg.Sw.sum())
                    put(f"u{j + 1}", c[f"ws{j + 1}"] - mean * w)
            size_block = np.column_stack(sizes).astype(np.float64)
            cross += size_block.T @ size_block
            del c

        def whole(name: str) -> np.ndarray:
            parts_ = keep.pop(name)
            return parts_[0] if len(parts_) == 1 else np.concatenate(parts_, axis=-1)

        present = np.column_stack([whole(f"on{q}") for q in range(P)])
        totals = np.column_stack([whole(f"t{q}") for q in range(P)])
        naive = [self._naive(whole("u0"), present[:, 0], self.n_code @ self.distinct01
                             / self.n_logged, self.n_logged)]
        for j, tg in enumerate(self.targets):
            on = present[:, j + 1]
            if f"T{j + 1}" in keep:  # stacked DR: the stacking weights of every run
                T = whole(f"T{j + 1}")
                for ri, r in enumerate(self.run_parts):
                    pt = self.run_parts[r][j + 1]
                    alpha = min_variance_simplex(grams[(j, ri)])
                    pt["value"] = float(sum(a * mb["value"] for a, mb in zip(
                        alpha, pt["members"], strict=True)))
                    if ri == 0:
                        self.mixture[j] = alpha
                        totals[:, j + 1] = alpha @ T
            if tg.f_s01 is not None:  # the raw judge mean on its fresh draws
                naive.append(naive_judge_mean(tg.f_s01, tg.f_prompt, self.alpha,
                                              self.label_scale))
            else:
                mean = float(tg.Sw.sum(axis=0) @ self.distinct01) / float(tg.Sw.sum())
                naive.append(self._naive(whole(f"u{j + 1}"), on, mean, tg.n))
            if f"fb{j + 1}" in keep:
                self.fresh_bal[j + 1] = fresh_balance(*whole(f"fb{j + 1}"))
            if f"g{j + 1}" in keep:
                p = parts[j + 1]
                g = p["psi_e"] - p["psi_s"]
                phi_g = whole(f"g{j + 1}")
                v, g_n = cluster_variance(phi_g[on], np.arange(int(on.sum())), tg.n)
                v = float(v) if v == v else 0.0
                tot = np.where(on, phi_g, 0.0) / tg.n
                tot = tot * math.sqrt(g_n / (g_n - 1)) if g_n > 1 else 0 * tot
                self.gaps[j + 1] = (math.copysign(math.sqrt(g * g + v), g), g, math.sqrt(v), tot)
        self.totals, self.present, self.naive = totals, present, naive
        self.prompt_sizes_cross = cross  # (read by the contrasts; diagonal: the levels')
        self._own_parts(parts, lab_prompt)
        self.n_clusters = totals.shape[0]
        # every run's point estimates (stacked DR: stacked per run, above)
        for r, ps in self.run_parts.items():
            self.run_values[r] = np.array([q["value"] for q in ps])

    def _fresh_mean_score(self, tg: _TargetStats) -> np.ndarray:
        """The target's fresh draws' mean judge score (0–1) per fresh-draw prompt (of the F)."""
        got = tg.cache.get("fresh_mean_score")
        if got is None:
            assert tg.f_prompt is not None and tg.f_count is not None and tg.nf is not None
            got = tg.cache["fresh_mean_score"] = np.bincount(
                tg.f_prompt, weights=tg.f_s01, minlength=tg.nf.size) / tg.f_count
        return got

    def _own_parts(self, parts: list[dict], lab_prompt: np.ndarray) -> None:
        """Each policy's residual term on the labelled rows summed per prompt, with its own
        small-sample factor and effective labelled prompts (``self.own``, read by
        :meth:`policy`) and the policies' parts multiplied prompt by prompt (``own_cross``, read
        by the contrasts), as in memory (:meth:`cje.pipeline.logged.LoggedShape._own_parts`,
        :func:`cje.estimators.offpolicy.own_residual_part`): ``c·(v_i x_i − mean(v x))`` with
        ``x = (n/m) e`` and ``v`` the term's weights (IPS's ratios, the raw or the stabilised
        Hájek weights), ``c`` its tail inflation; the logging policy's ``(n/m)(e_i − ē)``."""
        p0 = parts[0]
        sums: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        n = np.zeros(len(self.names), dtype=np.int64)
        e = p0["e"]
        if e.size:
            sums[0] = ((self.n_logged / e.size) * (e - p0["ebar"]), lab_prompt)
            n[0] = self.n_logged
        for j, tg in enumerate(self.targets):
            p = parts[j + 1]
            if p["m"] == 0:
                continue
            if isinstance(self.estimator, IPS):
                v, c = p["rho_lab"], 1.0
            elif tg.stable_residual:
                v, c = p["ws_lab"], p["c_s"]
            else:
                v, c = tg.w_lab, p["c"]
            vx = v * p["x"]
            sums[j + 1] = (c * (vx - vx.mean()), lab_prompt[tg.lab])
            n[j + 1] = tg.n
        self.own, self.own_cross = (own_parts_summary(sums, n, len(self.names)) if sums
                                    else ({}, None))

    def _dr_totals(self, j: int, tg: _TargetStats, c: dict[str, np.ndarray], add: Any,
                   mg: np.ndarray, lab_on: bool, grams: dict[tuple[int, int], np.ndarray]
                   ) -> list[np.ndarray]:
        """A DR target's per-prompt influence totals of each member under the full calibration
        (``n_g (ḡ_g − ψ_g) + Σ_g w (R − q) − ψ_c Σ_g w − μ_c n_g`` plus the residual term); for
        stacked DR also each run's Gram matrix of its members' totals, added to ``grams`` (the
        runs' stacking weights, as :func:`~cje.estimators.offpolicy.stack` fits them)."""
        nj, w = c[f"n{j + 1}"], c[f"w{j + 1}"]
        f = np.maximum(c["f"].astype(np.int64), 0)
        n, rows = tg.n, tg.lab
        out: list[np.ndarray] = []
        for ri, r in enumerate(self.run_parts):
            p = self.run_parts[r][j + 1]
            if ri > 0 and len(p["members"]) == 1:
                break  # one member: its value needs no totals
            m, x = p["m"], p["x"]
            sfx = "" if ri == 0 else f"_{ri}"
            if tg.stable_residual:
                v, psi, cc, v_lab = c[f"wt{j + 1}{sfx}"], p["psi_s"], p["c_s"], p["ws_lab"]
            else:
                v, psi, cc, v_lab = w, p["psi_e"], p["c"], tg.w_lab
            resid = cc * (add(v_lab * x, rows) - psi * v
                          - (psi * ((n / m) * mg - nj) if lab_on else 0.0))
            wr = c[f"wr{j + 1}{sfx}"]
            T = [nj * (self._gbar(tg, mb["Q"])[f] - mb["psi_g"]) + wr - c[f"wq{j + 1}_{i}{sfx}"]
                 - mb["psi_c"] * w - mb["mu_c"] * nj + resid
                 for i, mb in enumerate(p["members"])]
            if len(T) > 1:
                Tm = np.vstack(T)
                grams[(j, ri)] = grams.get((j, ri), 0.0) + Tm @ Tm.T
            if ri == 0:
                out = T
        return out

    def _naive(self, u: np.ndarray, present: np.ndarray, mean: float, n: int
               ) -> tuple[float, float, float]:
        """The raw (or Hájek-weighted) judge mean's interval from its per-prompt centred
        totals ``u``."""
        v, g = cluster_variance(u[present], np.arange(int(present.sum())), n)
        lo, hi = t_interval(mean, float(np.sqrt(v)) if g > 1 else 0.0, max(g - 1, 1), self.alpha)
        return (from_unit(mean, self.label_scale), from_unit(lo, self.label_scale),
                from_unit(hi, self.label_scale))

    # ---- the Shape protocol -------------------------------------------------------------------
    def run(self, calibrator: RewardCalibrator,
            deleted: frozenset[int]) -> list[tuple[PolicyValue, float]]:
        assert not deleted and self.totals is not None and self.present is not None
        values = self.values(calibrator, deleted)
        return [(PolicyValue(float(values[p]), self.totals[self.present[:, p], p]),
                 self.gaps[p][0] if p in self.gaps else 0.0) for p in range(len(self.names))]

    def gap_influence(self) -> dict[int, tuple[float, np.ndarray]]:
        return {p: (g[1], g[3]) for p, g in self.gaps.items()}

    def probe_rows(self) -> list[np.ndarray]:
        return []

    def probe_residuals(self, calibrator: RewardCalibrator) -> list[np.ndarray]:
        return []

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        return self.distinct01[self.n_code > 0], None

    def _label_balance(self) -> tuple[dict[str, float], str | None]:
        """:func:`~cje.diagnostics.gates.label_balance` of the labelled logged rows (the table's
        first ``m_log`` rows) against all logged rows, once."""
        if not hasattr(self, "_lb"):
            m = self.m_log
            self._lb = label_balance_gate(*label_balance_of_counts(
                self.labelled_scores[:m], self.table.cluster[:m], self.distinct, self.n_code),
                logged=True) if m >= 2 else ({}, None)
        return self._lb

    def policy(self, p: int, value: PolicyValue, gap: float) -> PolicyRows:
        assert self.present is not None
        cl = np.flatnonzero(self.present[:, p])
        # the labelled logged rows against all logged rows (as in memory)
        lb_diag, lb_why = self._label_balance()
        if p == 0:
            own = self.own.get(0, (0.0, 0.0, 0.0))
            return PolicyRows(cluster=cl, n_labels=self.m_log,
                              method="on-policy (logged)", naive=self.naive[0],
                              scores=np.repeat(self.distinct, self.n_code), n_rows=self.n_logged,
                              prompt_sizes_sq=float(self.prompt_sizes_cross[0, 0]),
                              status="CAUTION" if lb_why else "OK",
                              reasons=[lb_why] if lb_why else [], diagnostics=dict(lb_diag),
                              own_ss=own[0], own_factor=own[1], own_m=own[2])
        tg = self.targets[p - 1]
        diag = dict(self.diag[p - 1])
        if p in self.gaps:
            width = self.label_scale[1] - self.label_scale[0]
            diag["transport_gap"] = self.gaps[p][1] * width
            diag["transport_gap_se"] = self.gaps[p][2] * width
        if tg.stable_residual and "residual_weights" in diag:
            diag["residual_weights"] = "stable"
        if p - 1 in self.mixture:
            parts = [mb.name for mb in self.estimator.members]
            diag.update({f"stack_{n.replace('-', '_')}": float(a)
                         for n, a in zip(parts, self.mixture[p - 1], strict=True)})
        status, reasons = overlap_gate(self.estimator.overlap, diag, tg.n)
        if getattr(self.estimator, "sample", None) != "fresh":
            diag.update(lb_diag)
            if lb_why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, lb_why]
        if p in self.fresh_bal:  # the DR level follows its fresh draws (as in memory)
            more, why = fresh_balance_gate(*self.fresh_bal[p], self.judge_scale)
            diag.update(more)
            if why:
                status, reasons = worse_status(status, "CAUTION"), [*reasons, why]
        scores = (from_unit(tg.f_s01, self.judge_scale) if tg.f_s01 is not None
                  else np.repeat(self.distinct, tg.N.sum(axis=0).astype(np.int64)))
        own = self.own.get(p, (0.0, 0.0, 0.0))
        return PolicyRows(cluster=cl, n_labels=int(tg.lab.size), method=self.estimator.method,
                          naive=self.naive[p], scores=scores,
                          status=status, reasons=reasons, diagnostics=diag, n_rows=tg.n,
                          prompt_sizes_sq=float(self.prompt_sizes_cross[p, p]),
                          own_ss=own[0], own_factor=own[1], own_m=own[2])


# ------------------------------------------------------------------------------------------------
# Diagnostics


def _raw_order(tg: _TargetStats, cells: dict, j: int) -> _Order:
    return _Order(cells[f"hl_n{j}"], {"lam": cells[f"hl_lam{j}"], "e": cells[f"hl_e{j}"]})


def _diagnostics(tg: _TargetStats, raw: _Order, surprisal: dict, stable: AffineSimcal | None,
                 st_order: _Order | None, near: int, s_user: np.ndarray,
                 judge_scale: tuple[float, float]) -> dict[str, Any]:
    """:func:`~cje.diagnostics.overlap.weight_summary` and the pipeline's own diagnostics of one
    target, from the order statistics and the cells."""
    from cje.diagnostics.overlap import _hill

    n, sc = tg.n, tg.scale
    nan = float("nan")
    sum_w, sum_w2 = float(tg.Sw.sum()), float(tg.Sw2.sum())
    mean_w = sum_w / n
    ess = (sum_w / mean_w) ** 2 / (n * (sum_w2 / mean_w ** 2))
    w_of = lambda lam: math.exp(lam - tg.M) * sc  # noqa: E731
    out: dict[str, Any] = {"ess_raw": ess, "ess_stable": nan,
                           "max_weight_raw": float(tg.w_max.max()) / mean_w,
                           "max_weight_stable": nan}
    k5 = _top_k(n, 0.05)
    out["top5_mass_raw"] = raw.top_sum(k5, "e") * sc / sum_w
    out["top5_mass_stable"] = nan
    if n >= 20:
        kk = _hill_k(n)
        top_kk = raw.value(kk, "lam")
        first = raw.value(0, "lam")
        excess = raw.top_sum(kk, "lam") - kk * top_kk
        # nan when the top k + 1 log-weights are equal, or differ only by rounding so that the
        # excess cancels to 0 (discrete response types with a shared log-probability offset)
        hill = nan if first == top_kk or not excess > 0.0 else float(kk / excess)
        # (the in-memory _hill on the weights themselves: the same number, logs of exp)
        _ = _hill
        out["hill_raw"] = hill
    else:
        out["hill_raw"] = nan
    # affinity: the logged scores' histogram, unweighted and weighted by the raw weights
    lo, hi = float(judge_scale[0]), float(judge_scale[1])
    pcount = _bin_counts(s_user, 20, lo, hi, weights=tg.N.sum(axis=0))
    if tg.f_s01 is not None:  # the target's own responses: its fresh draws
        q = _bin_counts(from_unit(tg.f_s01, judge_scale), 20, lo, hi).astype(float)
    else:
        q = _bin_counts(s_user, 20, lo, hi, weights=tg.Sw.sum(axis=0))
    pp, qq = pcount / pcount.sum(), q / q.sum()
    out["affinity"] = float(min(1.0, np.sum(np.sqrt(pp * qq))))
    out["ttc"], out["cle"] = surprisal["ttc"], surprisal["cle"]
    # support: the mean raw ratio in log space
    log_m = tg.M + math.log(tg.S) - math.log(n)
    m = math.exp(log_m) if log_m < 709.0 else math.inf
    if n < 2:
        se = nan
    else:
        r_sum, r2_sum = tg.S * (n / tg.S), float(tg.Sw2.sum())
        var = (r2_sum - r_sum * r_sum / n) / (n - 1)
        sd = math.sqrt(max(var, 0.0))
        se = m * sd / math.sqrt(n) if m < math.inf else math.inf
    out.update(mean_raw_weight=m, mean_raw_weight_se=se, log_mean_raw_weight=log_m,
               near_zero_share=near / n)
    if stable is not None and st_order is not None:
        s1 = float((stable.a * tg.N + stable.b[:, None] * tg.Sw).sum())
        s2 = float((stable.a ** 2 * tg.N + 2 * stable.a * stable.b[:, None] * tg.Sw
                    + (stable.b ** 2)[:, None] * tg.Sw2).sum())
        mean_s = s1 / n
        out["ess_stable"] = (s1 / mean_s) ** 2 / (n * (s2 / mean_s ** 2))
        cells = tg.N > 0
        # only cells with rows: an empty cell's w_max is -inf, and 0·(-inf) would warn
        top = float(np.max(stable.a[cells] + stable.b[np.nonzero(cells)[0]] * tg.w_max[cells]))
        out["max_weight_stable"] = top / mean_s
        out["top5_mass_stable"] = st_order.top_sum(k5, "w") / s1
    out["n_eff_raw"] = out["ess_raw"] * n
    out["n_excluded"] = int(sum(tg.excluded.values()))
    for why, cnt in tg.excluded.items():
        out[f"excluded_{why.replace(' ', '_')}"] = cnt
    if tg.excluded.get("missing log-probability"):
        out["missing_score_z"] = tg.missing_score_z
    if tg.excluded.get("no fresh draws for the prompt"):
        out["no_fresh_score_z"] = tg.no_fresh_score_z
    out["weight_tail_raw"] = _weight_tail(n, lambda r: w_of(raw.value(r, "lam")))
    ss = float((tg.w_lab * tg.w_lab).sum())
    out["n_eff_labelled"] = float(tg.w_lab.sum()) ** 2 / ss if ss > 0 else 0.0
    if stable is not None and st_order is not None:
        out["weight_tail_stable"] = _weight_tail(n, lambda r: st_order.value(r, "w"))
        out["var_cap_gamma"] = stable.gamma
        if stable.fallbacks:
            out["simcal_fallback"] = "; ".join(stable.fallbacks)
        mix = stable.mixture.mean(axis=0)
        out.update({"simcal_increasing": float(mix[0]), "simcal_decreasing": float(mix[1]),
                    "simcal_baseline": float(mix[2]), "residual_weights": "raw"})
    return out


def _surprisal(tg: _TargetStats, cells: dict, j: int, rows: list) -> dict[str, float]:
    """TTC and CLE: the surprisal-ordered prefix holding 90% of the raw weight, from the
    histogram and the collected rows of its last bin (row order breaks ties)."""
    cnt, se, se2 = cells[f"hu_n{j}"], cells[f"hu_e{j}"], cells[f"hu_e2{j}"]
    sc = tg.scale
    w_bins = se * sc
    total = float(w_bins.sum())
    need = 0.9 * total * (1.0 - _FLOOR_REL)
    cum = np.cumsum(w_bins)
    b = int(min(np.searchsorted(cum, need, side="left"), cnt.size - 1))
    u = np.concatenate([r[0] for r in rows]) if rows else np.zeros(0)
    key = np.concatenate([r[1] for r in rows]) if rows else np.zeros(0, np.int64)
    e = np.concatenate([r[2] for r in rows]) if rows else np.zeros(0)
    order = np.lexsort((key, u))
    wb = e[order] * sc
    before_w = float(w_bins[:b].sum())
    before_n = int(cnt[:b].sum())
    inner = before_w + np.cumsum(wb)
    pos = int(np.searchsorted(inner, need, side="left"))
    length = min(before_n + pos + 1, tg.n)
    take = min(pos + 1, wb.size)
    wt_sum = before_w + float(wb[:take].sum())
    wt2 = float(se2[:b].sum()) * sc * sc + float((wb[:take] ** 2).sum())
    alpha = wt_sum / total
    beta = length / tg.n
    return {"ttc": length / tg.n,
            "cle": float(alpha / math.sqrt(beta) * math.sqrt(length * wt2 / wt_sum ** 2)),
            "bin": b}


# ------------------------------------------------------------------------------------------------
# The analysis


def analyze_logged_partitioned(
    data: Any,
    *,
    engine: str,
    client: Any = None,
    estimator: Any,
    judge_scale: tuple[float, float] | None,
    label_scale: tuple[float, float] | None,
    columns: Any,
    alpha: float,
    mode: Mode,
    n_folds: int,
    seed: int,
    only: Sequence[str] | None,
    settings: dict[str, Any],
    residual_weights: str = "auto",
    var_cap: float | None = None,
    mrdr_omega: str = "w",
    fresh_loader: Callable[[tuple[float, float], tuple[float, float]], Any] | None = None,
    on_missing: str = "raise",
    progress: bool | None = None,
) -> Report:
    """The report of logged data (IPS, SNIPS, calibrated IPS) computed out of core (see
    :func:`cje.analyze`, which checks the options first).

    Parameters
    ----------
    data : polars.LazyFrame, dask.dataframe.DataFrame, str or os.PathLike
        The logged rows (``logprob_base`` and ``logprob[<target>]`` columns), or a file, glob or
        directory of Parquet / CSV / JSON Lines files.
    engine : {"polars", "dask"}
    client : dask.distributed.Client, optional
    estimator : str or Estimator
        ``"ips"``, ``"snips"``, ``"calibrated-ips"`` or ``"auto"`` (calibrated IPS), or such an
        estimator object.
    judge_scale, label_scale, columns, alpha, mode, n_folds, seed, residual_weights, var_cap
        As in :func:`cje.analyze`.
    mrdr_omega, on_missing
        As in :func:`cje.analyze`.
    fresh_loader : callable, optional
        The DR family: ``fresh_loader(judge_scale, label_scale)`` loads the fresh draws
        (:class:`~cje.data.EvalData`, held in memory) once the scales are known.
    progress : bool, optional
        As in :func:`cje.analyze`.
    only : sequence of str or None
        Report only these policies.
    settings : dict
        The run's options (:attr:`Report.settings`).

    Returns
    -------
    Report
        The in-memory engine's numbers (to rounding: sums are taken in another order).

    Raises
    ------
    CJEInputError
        A bad row (named by file and row), or what is not supported out of core yet.

    Examples
    --------
    >>> import cje, polars as pl
    >>> sim = cje.synthetic.make_offpolicy_eval(600, rng=0)
    >>> lf = pl.from_pandas(sim.logged).lazy()
    >>> rep = analyze_logged_partitioned(lf, engine="polars", estimator="calibrated-ips",
    ...                                  judge_scale=(0, 1), label_scale=(0, 1), columns=None,
    ...                                  alpha=0.05, mode="monotone", n_folds=5, seed=0,
    ...                                  only=None, settings={})
    >>> mem = cje.analyze(sim.logged, judge_scale=(0, 1), label_scale=(0, 1),
    ...                   estimator="calibrated-ips", mode="monotone")
    >>> bool(abs(rep["far"].se - mem["far"].se) < 1e-9 * mem["far"].se)
    True
    """
    import pandas as pd

    from cje.estimators.registry import resolve

    if engine not in ("polars", "dask"):
        raise CJEInputError(f"engine must be 'polars' or 'dask' here; got {engine!r}.")
    judge_scale = None if judge_scale is None else _check_scale(judge_scale, "judge_scale")
    label_scale = None if label_scale is None else _check_scale(label_scale, "label_scale")
    from cje.estimators.offpolicy import DRCPO, MRDR, TMLE, StackedDR

    given = fresh_loader is not None
    est = resolve(estimator, logged=True, fresh=given, var_cap=var_cap, mrdr_omega=mrdr_omega)
    dr = type(est) in (DRCPO, TMLE, MRDR, StackedDR)
    if type(est) not in (IPS, SNIPS, CalibratedIPS) and not dr:
        raise CJEInputError(
            f"estimator={est.name!r} out of core: the weighting family ('ips', 'snips', "
            "'calibrated-ips') and the DR family ('dr-cpo', 'tmle', 'mrdr', 'stacked-dr') run "
            "out of core. " + _OR_MEMORY)
    if est.needs_fresh and not given:
        raise CJEInputError(
            f"estimator={est.name!r} needs fresh draws of each target policy (fresh_draws=, "
            "CLI --fresh-draws DIR); without them use 'calibrated-ips', 'snips' or 'ips'.")
    if given and not dr:
        raise CJEInputError(
            f"fresh_draws= with estimator={est.name!r} is not supported out of core yet (the "
            "weighting estimators do not read them for their level; in memory they add the fresh "
            "draws' labels to the calibration and check the weighted logs against the fresh "
            "draws' judge scores). Leave out fresh_draws=, use a DR estimator, or "
            + _OR_MEMORY[0].lower() + _OR_MEMORY[1:])
    eng = _make_engine(data, engine, columns, client)
    notices = list(eng.notices)
    lp_names = eng.lp_names
    target_names = [c[len("logprob["):-1] for c in lp_names[1:]]

    # ---- pass 1 ----------------------------------------------------------------------------------
    ctx1 = {"judge_scale": judge_scale, "lp_names": lp_names, "default_policy": "default"}
    scan = eng.reduce(_scan, ctx1, progress, "scan")
    _raise_bad(scan, eng.sources, lp_names, judge_scale)
    n_rows = int(scan["n_rows"])
    if n_rows == 0:
        raise CJEInputError("The input has no rows.")
    eng.n_rows = n_rows
    policies = sorted(scan["policies"])
    if len(policies) != 1:
        raise CJEInputError(
            f"Logged data must come from one logging policy; it has {policies}. Pass each target "
            "policy's log-probabilities as columns 'logprob[<policy>]' of the logging policy's "
            "rows.")
    base = policies[0]
    if only is not None:
        for pol in only:
            if pol != base and pol not in target_names:
                raise CJEInputError(
                    f"Policy {pol!r} is neither the logging policy {base!r} nor a target with "
                    f"log-probabilities ({target_names}).")
    distinct = np.array(sorted(scan["scores"]), dtype=np.float64)
    if distinct.size > MAX_DISTINCT_SCORES:
        raise CJEInputError(
            f"The judge scores take {distinct.size} distinct values; out of core the weighting "
            f"estimators keep per-target tables of (fold, distinct score) cells and allow at most "
            f"{MAX_DISTINCT_SCORES}. Round the scores (e.g. to 2 or 3 decimals: the calibration "
            "barely changes) or " + _OR_MEMORY[0].lower() + _OR_MEMORY[1:])
    jscale = judge_scale_of(distinct, judge_scale, notices, n_rows)
    lab_parts = scan["lab"]
    lab_pid = np.concatenate([p["pid"] for p in lab_parts])
    lab_key = np.concatenate([p["key"] for p in lab_parts])
    order = np.argsort(lab_key, kind="stable")
    lab_pid = lab_pid[order]
    lab_s = np.concatenate([p["s"] for p in lab_parts])[order]
    lab_y = np.concatenate([p["y"] for p in lab_parts])[order]
    lab_lp = [np.concatenate([p["lp"][j] for p in lab_parts])[order] for j in range(len(lp_names))]
    lab_key = lab_key[order]
    _label_checks(lab_y, lab_key, lab_pid, label_scale, eng.sources)
    if label_scale is None:
        if lab_y.size == 0:
            lscale = jscale
        else:
            refuse_sentinel(lab_y, "oracle_label", "label_scale", None)
            lscale = infer_scale(lab_y)
            _check_scale(lscale, "label_scale")
            notices.append(
                f"{INFERRED_LABEL_SCALE} ({lscale[0]:g}, {lscale[1]:g}) from the "
                f"oracle labels (observed {lab_y.min():g} to {lab_y.max():g}). Pass label_scale="
                "(low, high) to set it; results are reported on this scale.")
    else:
        lscale = label_scale
        if lab_y.size:
            bottom_tenth(lab_y.size, float(lab_y.min()), float(lab_y.max()), lscale,
                         "oracle labels", "label_scale", notices)
    for j, name in enumerate(lp_names):
        if scan["n_lp_given"][j] >= 20 and scan["min_lp_all"][j] == scan["max_lp_all"][j]:
            notices.append(constant_logprob_notice(name, float(scan["min_lp_all"][j])))
    if estimator == "auto":
        notices.append(f"estimator 'auto' chose '{est.name}' "
                       f"({'fresh draws given' if given else 'no fresh draws'}).")
    kept = [t for t in target_names if only is None or t in only]

    # ---- the DR family: the fresh draws, in memory ---------------------------------------------
    f_pid = np.zeros(0, dtype=object)
    f_s, f_y, f_pol = np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    if given:
        assert fresh_loader is not None
        fresh = fresh_loader(jscale, lscale)
        ignored = [p for p in fresh.policies if p not in kept]
        if base in ignored:
            notices.append(
                f"The fresh draws of the logging policy {base!r} were not used: its logged rows "
                "are its on-policy sample (cje-eval's files repeat them).")
        other = [p for p in ignored if p != base]
        if other:
            notices.append(f"Fresh draws of {other} were ignored: they have no log-probabilities "
                           "in the logged data.")
        code_of = {p: i for i, p in enumerate(kept)}
        pol_of = np.array([code_of.get(p, -1) for p in fresh.policies] + [-1], dtype=np.int64)
        f_all = pol_of[fresh.policy_code]
        sel = f_all >= 0
        f_pid = np.asarray(fresh.prompt_id, dtype=object)[sel]
        f_s, f_y, f_pol = fresh.judge_score[sel], fresh.oracle_label[sel], f_all[sel]
        distinct = np.union1d(distinct, f_s)
        if distinct.size > MAX_DISTINCT_SCORES:
            raise CJEInputError(
                f"The judge scores (logged rows and fresh draws) take {distinct.size} distinct "
                f"values; out of core at most {MAX_DISTINCT_SCORES} are allowed. Round the scores "
                "or " + _OR_MEMORY[0].lower() + _OR_MEMORY[1:])
    f_lab = ~np.isnan(f_y)

    # ---- fit --------------------------------------------------------------------------------------
    m_log = lab_pid.size
    all_code, lab_prompts = factorize_ids(np.concatenate([lab_pid, f_pid[f_lab]]))
    lab_code_p = all_code[:m_log]
    m_prompts = int(lab_prompts.size)
    if m_prompts < MIN_LABELLED_PROMPTS:
        raise CJEInputError(
            f"Off-policy estimates need a calibrated reward: the logged data has oracle labels on "
            f"{m_prompts} prompt(s), at least {MIN_LABELLED_PROMPTS} are needed. Label a random "
            "slice of the logged responses (5–25% is typical).")
    k, lab_folds, warns = fold_plan(lab_prompts, np.ones(m_prompts, dtype=bool), n_folds, seed)
    s01 = to_unit(np.concatenate([lab_s, f_s[f_lab]]), jscale)
    codes, dist_s, _ = distinct_rows(s01, None)
    table = Table(s=s01, y=to_unit(np.concatenate([lab_y, f_y[f_lab]]), lscale), X=None,
                  cluster=all_code.astype(np.int64), train=np.arange(s01.size), codes=codes,
                  distinct_s=dist_s, distinct_X=None)
    calibrator, caught = fit_calibrator(table, lab_folds[table.cluster], mode=mode, k=k, seed=seed)
    warns += caught
    lab_prompt_index = {p: i for i, p in enumerate(lab_prompts.tolist())}
    need_fold = type(est) not in (IPS, SNIPS)
    # the fresh draws' prompts (F of them): folds, and per target its draws per prompt
    f_code_all, f_prompts = factorize_ids(f_pid) if given else (np.zeros(0, np.int64), f_pid)
    F = int(f_prompts.size)
    f_lab_idx = np.array([lab_prompt_index.get(p, -1) for p in f_prompts.tolist()], np.int64)
    f_fold_p = ((_prompt_hash(f_prompts, seed) % np.uint64(k)).astype(np.int64) if F
                else np.zeros(0, np.int64))
    f_fold_p[f_lab_idx >= 0] = lab_folds[f_lab_idx[f_lab_idx >= 0]]

    # ---- targets: normalisers, exclusions --------------------------------------------------------
    keep_t = [j for j, t in enumerate(target_names) if only is None or t in only]
    tstat: list[dict[str, Any]] = []
    for i, j in enumerate(keep_t):
        n_ok = int(scan["n_ok"][j])
        if n_ok == 0:
            raise CJEInputError(
                f"Target {target_names[j]!r} has no usable logged rows (every row lacks its "
                "log-probability).")
        tstat.append({"j": j, "M": float(scan["max_lam"][j]), "lam_lo": float(scan["min_lam"][j]),
                      "lam_hi": float(scan["max_lam"][j]), "u_lo": -float(scan["max_lp"][j]),
                      "u_hi": -float(scan["min_lp"][j]), "n": n_ok})
        if dr:
            rows_i = f_pol == i
            if not rows_i.any():
                raise CJEInputError(
                    f"estimator={est.name!r} needs fresh draws of target {target_names[j]!r}, and "
                    f"there are none; add '{target_names[j]}_responses.jsonl' (or rows with "
                    f"policy={target_names[j]!r}) to the fresh draws, or use 'calibrated-ips'.")
            count = np.bincount(f_code_all[rows_i], minlength=F)
            tstat[-1].update(has=count > 0, f_rows=rows_i, f_count=np.maximum(count, 1))
    # the engine's batches index the targets by their column: pass only those kept
    sel_lp = [0, *[j + 1 for j in keep_t]]
    import uuid

    ctx: dict[str, Any] = {"distinct": distinct, "k": k, "seed": seed, "need_fold": need_fold,
                           "token": uuid.uuid4().hex,
                           "lab_prompt": pd.Index(lab_prompts.tolist(), dtype=object),
                           "lab_fold": lab_folds,
                           "targets": [{k_: v for k_, v in t.items() if k_ not in ("f_rows", "f_count")}
                                       for t in tstat], "sel": sel_lp}
    if dr:
        ctx.update(fresh_prompt=pd.Index(f_prompts.tolist(), dtype=object), n_fresh_prompts=F)
    cells = eng.reduce(_selected(_cells), ctx, progress, "cell sums")
    targets: list[_TargetStats] = []
    lab_fold_rows = lab_folds[lab_code_p]
    dist01 = to_unit(distinct, jscale)
    lab_code = np.searchsorted(distinct, lab_s)
    lab_fidx = _lookup(ctx["fresh_prompt"], lab_pid) if dr else None
    for i, t in enumerate(tstat):
        j = t["j"]
        name = target_names[j]
        n = int(cells[f"N{i}"].sum())  # usable rows (with fresh draws, for the DR family)
        excluded = {"missing log-probability": n_rows - t["n"]} if t["n"] < n_rows else {}
        miss_z = score_gap_z(n_rows - t["n"], *scan["score_sums"][j][:2], t["n"],
                             *scan["score_sums"][j][2:]) if excluded else float("nan")
        if dr:  # fresh draws on prompts without logged rows (cje.pipeline.logged says so too)
            on_logged = cells["nf_any"] > 0
            extra = ~on_logged[f_code_all[t["f_rows"]]]
            if extra.any():
                n_extra = np.unique(f_code_all[t["f_rows"]][extra]).size
                notices.append(
                    f"{int(extra.sum())} fresh draws of {name!r} are on {n_extra} prompt(s) "
                    "without logged rows: the DR average uses the fresh draws of the logged "
                    "prompts only; these count in its raw judge mean and judge-score affinity "
                    "(and, where labelled, in the calibration).")
        miss = int(cells.get(f"n_miss{i}", 0))
        if miss:
            if on_missing == "raise":
                key = cells[f"first_miss{i}"]
                f, r = divmod(key[0], 1 << _ROW_BITS)
                raise CJEInputError(
                    f"Target {name!r} has no fresh draws for prompt_id={key[1]!r} (row {r} of "
                    f"'{eng.sources[f]}'; {miss} logged rows lack them). DR needs the target's "
                    "fresh draws on every logged prompt: add them, or pass on_missing='drop' "
                    "(CLI --drop-missing) to exclude those rows (counted).")
            excluded["no fresh draws for the prompt"] = miss
        fresh_z = float("nan")
        if miss and n:
            # the left-out rows' judge-score sums: those with the log-probability less the kept
            # ones (cells per distinct score), for the missing-at-random check
            # (cje.diagnostics.gates.excluded_rows_gate)
            nd = cells[f"N{i}"].sum(axis=0).astype(float)
            kept = np.array([nd @ distinct, nd @ (distinct * distinct)])
            with_lp = np.asarray(scan["score_sums"][j][2:], dtype=float)
            fresh_z = score_gap_z(miss, *(with_lp - kept), n, *kept)
        if n == 0:
            raise CJEInputError(
                f"Target {name!r} has no usable logged rows (every row lacks its log-probability"
                f"{' or fresh draws' if dr else ''}).")
        t["n"] = n
        S = float(cells[f"Se{i}"].sum())
        sc = n / S
        lp_t = lab_lp[j + 1]
        ok = ~np.isnan(lp_t)
        if lab_fidx is not None:
            ok &= (lab_fidx >= 0) & t["has"][np.maximum(lab_fidx, 0)]
        lam_lab = (lp_t - lab_lp[0])[ok]
        w_lab = np.exp(lam_lab - t["M"]) * sc
        tg = _TargetStats(
            name=name, n=n, M=t["M"], S=S, scale=sc, N=cells[f"N{i}"].astype(float),
            Sw=cells[f"Se{i}"] * sc, Sw2=cells[f"Se2{i}"] * sc * sc,
            w_min=np.where(cells[f"N{i}"] > 0, cells[f"min_e{i}"] * sc, np.inf),
            w_max=np.where(cells[f"N{i}"] > 0, cells[f"max_e{i}"] * sc, -np.inf),
            lab=np.flatnonzero(ok), w_lab=w_lab, lam_lab=lam_lab, excluded=excluded, cache={})
        tg.missing_score_z = miss_z
        tg.no_fresh_score_z = fresh_z
        if dr:
            rows_i = t["f_rows"]
            tg.nf = cells[f"nf{i}"].astype(float)
            tg.f_prompt = f_code_all[rows_i]
            tg.f_fold = f_fold_p[tg.f_prompt]
            tg.f_code = np.searchsorted(distinct, f_s[rows_i])
            tg.f_s01 = to_unit(f_s[rows_i], jscale)
            tg.f_count = t["f_count"]
        targets.append(tg)
        t["scale"] = sc
    shape = LoggedPartitionedShape(
        base=base, targets=targets, table=table, lab_fold=lab_fold_rows, lab_code=lab_code,
        distinct=distinct, n_code=cells["n_code"], judge_scale=jscale, label_scale=lscale,
        estimator=est, k=k, alpha=alpha)
    # residual weights (cje.pipeline.logged.residual_on_stable): by the raw weights' ESS and
    # Hill index ('auto'; the Hill index's bins collected in one pass for every target)
    raw_orders = [_raw_order(tg, cells, i) for i, tg in enumerate(targets)]
    if est.stabilised:
        hills = (_hill_of(raw_orders, [tg.n for tg in targets], eng, ctx, progress)
                 if residual_weights == "auto" else [])
        for i, tg in enumerate(targets):
            stable = residual_weights == "stable"
            if residual_weights == "auto":
                sum_w, sum_w2 = float(tg.Sw.sum()), float(tg.Sw2.sum())
                mean_w = sum_w / tg.n
                ess = (sum_w / mean_w) ** 2 / (tg.n * (sum_w2 / mean_w ** 2))
                stable = ess < ESS_GATE or (hills[i] == hills[i] and hills[i] < HILL_RESIDUAL)
            tg.stable_residual = bool(stable)
    shape.prepare(calibrator)
    full_parts = shape.run_parts[frozenset()]

    # ---- pass 3: per-prompt sums; the bins of the order statistics --------------------------------
    reward = full_parts[0]["full"]
    ctx3 = dict(ctx, reward=np.asarray(reward, dtype=np.float64), s01=dist01)
    cols = ["lab", "n0", "r0", "s0"]
    for i, t in enumerate(ctx3["targets"]):
        t["scale"] = targets[i].scale
        cols += [f"{c}{i + 1}" for c in ("n", "w", "wr", "ws")]
        if targets[i].stable_residual:
            aff = shape.stable[i]
            t.update(stable_residual=True, a=aff.a, b=aff.b)
            cols.append(f"wt{i + 1}")
        if dr:  # per member and run: Σ w·q (and per run Σ w·R, Σ w̃ for stacked DR)
            extra: dict[str, np.ndarray] = {}
            extra_stable: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for ri, ps in enumerate(shape.run_parts.values()):
                pt = ps[i + 1]
                if ri > 0 and len(pt["members"]) == 1:
                    break
                sfx = "" if ri == 0 else f"_{ri}"
                for mi, mb in enumerate(pt["members"]):
                    extra[f"wq{i + 1}_{mi}{sfx}"] = mb["Q"]
                if ri > 0:
                    extra[f"wr{i + 1}{sfx}"] = np.asarray(ps[0]["full"], dtype=np.float64)
                    if targets[i].stable_residual:
                        extra_stable[f"wt{i + 1}{sfx}"] = (pt["stable"].a, pt["stable"].b)
            t.update(extra=extra, extra_stable=extra_stable)
            cols += [*extra, *extra_stable]
    if dr:
        cols.insert(1, "f")
    # at most CELLS_PER_GROUP_BY per-prompt numbers per group-by (its table is the pass's memory)
    buckets = max(1, -(-n_rows * len(cols) // CELLS_PER_GROUP_BY))
    shape.set_totals(eng.prompt_sums(_selected(_prompt_rows), ctx3, cols, progress, buckets),
                     lab_code_p, m_prompts)
    wanted = []
    for i, tg in enumerate(targets):
        o = raw_orders[i]
        ranks = {0, _top_k(tg.n, 0.05) - 1, *(_quantile_ranks(tg.n))}
        if tg.n >= 20:
            kk = _hill_k(tg.n)
            ranks |= {kk - 1, kk}
        wanted.append(sorted({o.bin_of(r) for r in ranks if 0 <= r < tg.n}))
        t3 = ctx3["targets"][i]
        t3["lam_bins"] = np.array(wanted[-1], dtype=np.int64)
        cnt, se = cells[f"hu_n{i}"], cells[f"hu_e{i}"] * tg.scale
        need = 0.9 * float(se.sum()) * (1.0 - _FLOOR_REL)
        t3["u_bin"] = int(min(np.searchsorted(np.cumsum(se), need, side="left"), cnt.size - 1))
        aff = shape.stable.get(i)
        if aff is not None:
            cells_on = tg.N > 0
            # only cells with rows: an empty cell's w_min/w_max are ±inf (0·inf would warn)
            b_on = aff.b[np.nonzero(cells_on)[0]]
            vals_lo = aff.a[cells_on] + b_on * tg.w_min[cells_on]
            vals_hi = aff.a[cells_on] + b_on * tg.w_max[cells_on]
            t3.update(a=aff.a, b=aff.b, ws_lo=float(vals_lo.min()), ws_hi=float(vals_hi.max()),
                      ws_bins=None)
    got = eng.reduce(_selected(_collect), ctx3, progress, "order statistics")
    st_orders: list[_Order | None] = []
    for i, tg in enumerate(targets):
        o = raw_orders[i]
        b_l = np.concatenate([x[0] for x in got[f"lam{i}"]]) if got[f"lam{i}"] else np.zeros(0, int)
        v_l = np.concatenate([x[1] for x in got[f"lam{i}"]]) if got[f"lam{i}"] else np.zeros(0)
        for bb in wanted[i]:
            sel = b_l == bb
            vals = v_l[sel]
            od = np.argsort(-vals, kind="stable")
            o.put(bb, {"lam": vals, "e": np.exp(vals - tg.M)}, od)
        aff = shape.stable.get(i)
        if aff is None:
            st_orders.append(None)
            continue
        so = _Order(got[f"hs_n{i}"], {"w": got[f"hs_w{i}"]})
        ranks = {_top_k(tg.n, 0.05) - 1, *(_quantile_ranks(tg.n))}
        sb = sorted({so.bin_of(r) for r in ranks if 0 <= r < tg.n})
        ctx3["targets"][i]["ws_bins"] = np.array(sb, dtype=np.int64)
        st_orders.append(so)
    if any(s is not None for s in st_orders):
        got4 = eng.reduce(_selected(_collect), ctx3, progress, "stabilised weights' order statistics")
        for i, so in enumerate(st_orders):
            if so is None:
                continue
            b_s = np.concatenate([x[0] for x in got4[f"ws{i}"]]) if got4[f"ws{i}"] else np.zeros(0, int)
            v_s = np.concatenate([x[1] for x in got4[f"ws{i}"]]) if got4[f"ws{i}"] else np.zeros(0)
            for bb in ctx3["targets"][i]["ws_bins"].tolist():
                vals = v_s[b_s == bb]
                so.put(bb, {"w": vals}, np.argsort(-vals, kind="stable"))
    for i, tg in enumerate(targets):
        sur = _surprisal(tg, cells, i, got[f"u{i}"])
        shape.diag[i] = _diagnostics(tg, raw_orders[i], sur, shape.stable.get(i), st_orders[i],
                                     int(cells[f"near{i}"]), distinct, jscale)
    _HASH_CACHE.clear()  # (this process's; a Dask worker process empties its own next time)
    settings = {**settings, "engine": engine, "estimator": est.name}
    return estimate(shape, calibrator, alpha=alpha, requested_mode=mode, covariates=(),
                    transport_margin=None, only=only, notices=notices, warns=warns, excluded={},
                    settings=settings, progress=progress)


def _selected(fn: Callable[[_Batch, dict], dict]) -> Callable[[_Batch, dict], dict]:
    """``fn`` on the batch's log-probability columns of the targets kept (``ctx["sel"]``)."""
    return functools.partial(_apply_selected, fn)


def _apply_selected(fn: Callable[[_Batch, dict], dict], b: _Batch, ctx: dict) -> dict:
    sel = ctx["sel"]
    if len(sel) != len(b.lp):
        b = _Batch(pid=b.pid, policy=b.policy, s=b.s, y=b.y, lp=[b.lp[j] for j in sel], key=b.key)
    return fn(b, ctx)


def _hill_of(orders: list[_Order], ns: list[int], eng: _Engine, ctx: dict,
             progress: bool | None) -> list[float]:
    """Each target's raw-weight Hill index before pass 3 (residual weights 'auto'): the bins
    of its largest ``k + 1`` weights collected in one pass."""
    bins = [sorted({o.bin_of(0), o.bin_of(_hill_k(n) - 1), o.bin_of(_hill_k(n))}) if n >= 20
            else [] for o, n in zip(orders, ns, strict=True)]
    c2 = dict(ctx, targets=[dict(t, lam_bins=np.array(bins[q], dtype=np.int64), u_bin=-1,
                                 scale=1.0) for q, t in enumerate(ctx["targets"])])
    got = eng.reduce(_selected(_collect), c2, progress, "tail index")
    out = []
    for i, (order, n) in enumerate(zip(orders, ns, strict=True)):
        if n < 20:
            out.append(float("nan"))
            continue
        kk = _hill_k(n)
        b_l = np.concatenate([x[0] for x in got[f"lam{i}"]]) if got[f"lam{i}"] else np.zeros(0, int)
        v_l = np.concatenate([x[1] for x in got[f"lam{i}"]]) if got[f"lam{i}"] else np.zeros(0)
        o = _Order(order.counts, order.sums)
        for bb in bins[i]:
            vals = v_l[b_l == bb]
            o.put(bb, {"lam": vals, "e": vals}, np.argsort(-vals, kind="stable"))
        first, top_kk = o.value(0, "lam"), o.value(kk, "lam")
        # the excess sum cancels to 0 (or below) when the top k + 1 log-weights differ only by
        # rounding (discrete response types whose log-probabilities carry a shared offset): no
        # tail to measure, as when they are all equal
        excess = o.top_sum(kk, "lam") - kk * top_kk
        out.append(float("nan") if first == top_kk or not excess > 0.0 else float(kk / excess))
    return out


def _label_checks(y: np.ndarray, key: np.ndarray, pid: np.ndarray,
                  label_scale: tuple[float, float] | None, sources: Sequence[str]) -> None:
    """The label checks of :mod:`cje.data` on the collected labelled rows, naming file and row."""
    if label_scale is not None:
        bad = (y < label_scale[0]) | (y > label_scale[1])
        if bad.any():
            i = int(np.argmax(bad))
            f, r = divmod(int(key[i]), 1 << _ROW_BITS)
            raise CJEInputError(
                f"In '{sources[f]}': The 'oracle_label' column must lie within label_scale="
                f"({label_scale[0]:g}, {label_scale[1]:g}); row {r} (prompt_id={pid[i]!r}) has "
                f"{y[i]:g}. Declare the scale the labels really use, or fix the labels.")
    check_label_variation(y)

