"""Shared fixtures: the real Arena sample, from the copy shipped in the package (cje.datasets),
and, for the out-of-core tests, a Dask cluster and a copy of partitioned files with one bad cell.

It is always there, so the real-data tests never skip. ``ORIGINAL_ARENA`` is the original
sample beside the project (``../shared/data/arena_sample``), used only by the test that the
packaged copy gives the same numbers (tests/test_datasets.py), which skips where it is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow
import pytest
from threadpoolctl import threadpool_limits

# One BLAS thread per test process (threadpoolctl comes with scikit-learn): pytest-xdist already
# runs one worker per core, and OpenBLAS threads on top of that made small least-squares fits 5-25x
# slower on a busy 2-core machine (statsmodels' cluster OLS with 17 / 30 columns: 0.002 / 0.004 s
# with one thread, 0.008 / 0.090 s with two, 2026-12-07, load 5.5).
threadpool_limits(1)

# One Arrow thread too: pandas-to-Arrow conversion inside Dask's p2p shuffle (tests/test_streaming.py)
# otherwise starts a thread pool from within each worker thread; on a loaded machine one such start
# never returned (2026-12-07, a clean-clone run stalled in Thread.start under
# pyarrow.pandas_compat.dataframe_to_arrays), stalling the whole run.
pyarrow.set_cpu_count(1)

ORIGINAL_ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow-tier studies run for up to ~20 minutes: no per-test time limit for them (the default
    run's limit, ``timeout`` in pyproject.toml, is there to name a test that hangs)."""
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(pytest.mark.timeout(0))


@pytest.fixture(scope="session")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged Arena sample written once per session as cje-eval files
    (``fresh_draws/``, ``logged_data.jsonl``, ``probe_slice/``) in a temporary directory."""
    from cje import datasets

    return datasets.export(tmp_path_factory.mktemp("arena")).root


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A Dask cluster of 2 thread workers (the same numbers as processes, and it starts in
    well under a second), one per test module."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def _broken(parts: list[Path], where: Path, part: int, row: int, column: str, value: Any
            ) -> tuple[Path, str]:
    """The Parquet ``parts`` copied to ``where`` with one cell changed; the file and the cell's
    prompt."""
    import polars as pl

    where.mkdir()
    for i, p in enumerate(parts):
        df = pl.read_parquet(p)
        if i == part:
            col = df[column].to_list()
            col[row] = value
            df = df.with_columns(pl.Series(column, col, dtype=df[column].dtype))
            pid = df["prompt_id"][row]
        df.write_parquet(where / p.name)
    return where / parts[part].name, pid


@pytest.fixture
def broken() -> Callable[..., tuple[Path, str]]:
    """``broken(parts, where, part, row, column, value)``: see :func:`_broken`."""
    return _broken
