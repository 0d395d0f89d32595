"""The seeded replicate runner: reproducibility across backends, resume, summaries, errors."""

from __future__ import annotations

import io
import math
import sys

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from cje.errors import CJEInputError
from cje.montecarlo import run_replicates, summarise


def _normal_ci_task(rng: np.random.Generator, replicate: int) -> list[dict]:
    """Two rows per replicate: a t-ish interval for a normal mean, and a deliberately wrong one."""
    x = rng.normal(1.0, 2.0, 40)
    m, se = float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))
    return [
        {"method": "good", "estimate": m, "ci_low": m - 1.96 * se, "ci_high": m + 1.96 * se,
         "truth": 1.0, "first_draw": float(x[0])},
        {"method": "too narrow", "estimate": m, "ci_low": m - 0.5 * se, "ci_high": m + 0.5 * se,
         "truth": 1.0, "first_draw": float(x[0])},
    ]


# Worker processes cannot import this test module by name (pytest imports it from a path): ship
# its functions by value (cloudpickle, which joblib requires), as from a user's __main__ script.
cloudpickle.register_pickle_by_value(sys.modules[__name__])
normal_ci_task = _normal_ci_task


def _expected_first_draws(seed: int, n: int) -> list[float]:
    kids = np.random.SeedSequence(seed).spawn(n)
    return [float(np.random.default_rng(k).normal(1.0, 2.0, 40)[0]) for k in kids]


def test_seeding_contract_and_order():
    df = run_replicates(normal_ci_task, 6, seed=7, config={"n": 40, "label": "x"})
    assert list(df.columns[:3]) == ["replicate", "n", "label"]
    assert df["replicate"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert df["method"].tolist()[:2] == ["good", "too narrow"]  # the task's own row order
    assert df["first_draw"].iloc[::2].tolist() == _expected_first_draws(7, 6)
    assert (df["n"] == 40).all() and (df["label"] == "x").all()


def test_identical_for_one_and_two_jobs():
    a = run_replicates(normal_ci_task, 30, seed=3, n_jobs=1)
    b = run_replicates(normal_ci_task, 30, seed=3, n_jobs=2)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_identical_on_a_dask_cluster(tmp_path):
    distributed = pytest.importorskip("distributed")
    ref = run_replicates(normal_ci_task, 12, seed=5)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        got = run_replicates(normal_ci_task, 12, seed=5, backend="dask", scheduler=cluster)
        by_address = run_replicates(normal_ci_task, 12, seed=5, backend="dask",
                                    scheduler=cluster.scheduler_address)
        with distributed.Client(cluster) as client:  # the default client, no scheduler given
            assert client.status == "running"
            default = run_replicates(normal_ci_task, 12, seed=5, backend="dask")
    pd.testing.assert_frame_equal(ref, got, check_exact=True)
    pd.testing.assert_frame_equal(ref, by_address, check_exact=True)
    pd.testing.assert_frame_equal(ref, default, check_exact=True)


def test_dask_without_a_scheduler_is_a_clear_error():
    distributed = pytest.importorskip("distributed")
    try:
        distributed.get_client()
        pytest.skip("a default Dask client is running")
    except ValueError:
        pass
    with pytest.raises(CJEInputError, match="needs scheduler=ADDRESS"):
        run_replicates(normal_ci_task, 2, backend="dask")


def test_resume_skips_finished_replicates(tmp_path):
    calls: list[int] = []

    def counted(rng, r):
        calls.append(r)
        return normal_ci_task(rng, r)

    out = tmp_path / "runs.parquet"
    first = run_replicates(counted, 5, seed=11, out=out, config={"n": 40})
    assert calls == [0, 1, 2, 3, 4]
    calls.clear()
    full = run_replicates(counted, 9, seed=11, out=out, config={"n": 40})
    assert calls == [5, 6, 7, 8]  # only the new replicates ran
    assert full["replicate"].max() == 8
    pd.testing.assert_frame_equal(full[full.replicate < 5].reset_index(drop=True), first)
    # Resumed or not, the rows are the same.
    fresh = run_replicates(normal_ci_task, 9, seed=11, out=tmp_path / "fresh.parquet",
                           config={"n": 40})
    pd.testing.assert_frame_equal(full, fresh, check_exact=True)
    calls.clear()
    again = run_replicates(counted, 9, seed=11, out=out, config={"n": 40})
    assert calls == []
    pd.testing.assert_frame_equal(again, full)
    # Fewer replicates than stored: the first ones are returned, nothing runs.
    assert run_replicates(counted, 3, seed=11, out=out, config={"n": 40})["replicate"].max() == 2
    assert calls == []
    # resume=False starts afresh.
    run_replicates(counted, 2, seed=11, out=out, config={"n": 40}, resume=False)
    assert calls == [0, 1]
    assert len(pd.read_parquet(out)) == 4


def test_resume_refuses_a_different_run(tmp_path):
    out = tmp_path / "runs.parquet"
    run_replicates(normal_ci_task, 2, seed=1, out=out, config={"n": 40})
    with pytest.raises(CJEInputError, match="different run.*config=\\{'n': 40\\}"):
        run_replicates(normal_ci_task, 2, seed=1, out=out, config={"n": 50})
    with pytest.raises(CJEInputError, match="different run.*seed=1"):
        run_replicates(normal_ci_task, 2, seed=2, out=out, config={"n": 40})
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    with pytest.raises(CJEInputError, match="not written by cje.montecarlo"):
        run_replicates(normal_ci_task, 2, out=foreign)


def test_interrupted_run_keeps_finished_replicates(tmp_path):
    def fails_at_3(rng, r):
        if r == 3:
            raise RuntimeError("boom")
        return normal_ci_task(rng, r)

    out = tmp_path / "runs.parquet"
    with pytest.raises(RuntimeError, match="boom"):
        run_replicates(fails_at_3, 6, seed=2, out=out)
    assert sorted(pd.read_parquet(out)["replicate"].unique()) == [0, 1, 2]
    calls: list[int] = []

    def counted(rng, r):
        calls.append(r)
        return normal_ci_task(rng, r)

    run_replicates(counted, 6, seed=2, out=out)
    assert calls == [3, 4, 5]


def test_summarise_matches_a_hand_computation():
    df = run_replicates(normal_ci_task, 200, seed=0)
    s = summarise(df, by="method").set_index("method")
    for method, g in df.groupby("method"):
        cov = np.mean((g.ci_low <= g.truth) & (g.truth <= g.ci_high))
        err = g.estimate - g.truth
        assert s.loc[method, "coverage"] == pytest.approx(cov, abs=0, rel=1e-15)
        assert s.loc[method, "coverage_se"] == pytest.approx(math.sqrt(cov * (1 - cov) / len(g)))
        assert s.loc[method, "bias"] == pytest.approx(err.mean())
        assert s.loc[method, "rmse"] == pytest.approx(math.sqrt((err**2).mean()))
        assert s.loc[method, "mean_width"] == pytest.approx((g.ci_high - g.ci_low).mean())
        assert s.loc[method, "n_rows"] == 200
    assert s.loc["good", "coverage"] > 0.9 > 0.5 > s.loc["too narrow", "coverage"]
    pooled = summarise(df)
    assert pooled.loc[0, "n_rows"] == 400


def test_summarise_uses_covered_and_counts_missing():
    df = pd.DataFrame({"g": ["a"] * 4, "estimate": [1.0, np.nan, 2.0, 3.0], "truth": 2.0,
                       "covered": [True, False, True, False]})
    s = summarise(df, by=["g"])
    assert s.loc[0, "n_rows"] == 3 and s.loc[0, "n_missing"] == 1
    assert s.loc[0, "coverage"] == pytest.approx(2 / 3)
    assert math.isnan(s.loc[0, "mean_width"])


def test_progress_bar_only_on_a_terminal(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    run_replicates(normal_ci_task, 3)
    assert err.getvalue() == ""  # not a TTY: silent
    run_replicates(normal_ci_task, 3, progress=True)
    assert "3/3" in err.getvalue()

    class FakeTTY(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    run_replicates(normal_ci_task, 3, progress=False)
    assert tty.getvalue() == ""
    run_replicates(normal_ci_task, 3)  # a terminal, but done before the bar's delay
    assert tty.getvalue() == ""
    monkeypatch.setattr("cje._progress.DELAY", 0.0)
    run_replicates(normal_ci_task, 3)
    assert "3/3" in tty.getvalue()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_replicates": 0}, "n_replicates must be an integer >= 1"),
        ({"n_replicates": 2.5}, "n_replicates must be an integer >= 1"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"n_jobs": 0}, "n_jobs must be a non-zero integer"),
        ({"backend": "spark"}, "backend must be one of loky, threading, multiprocessing, dask"),
        ({"scheduler": "tcp://x:8786"}, "only used with backend='dask'"),
        ({"progress": "yes"}, "progress must be True, False or None"),
        ({"config": {"replicate": 1}}, "reserved"),
        ({"config": {"grid": [1, 2]}}, "must be a str, int, float, bool or None"),
        ({"config": [("n", 1)]}, "config must be a dict"),
        ({"task": 3}, "task must be a callable"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"task": normal_ci_task, "n_replicates": 2} | kwargs
    with pytest.raises(CJEInputError, match=match):
        run_replicates(args.pop("task"), args.pop("n_replicates"), **args)


@pytest.mark.parametrize(
    ("task", "match"),
    [
        (lambda rng, r: {"estimate": 1.0}, "must return a list of dicts.*returned dict"),
        (lambda rng, r: [1.0], "returned a float row"),
        (lambda rng, r: [{"replicate": 1}], "runner adds itself"),
        (lambda rng, r: [{"n": 1}], "runner adds itself"),
    ],
)
def test_bad_task_output(task, match):
    with pytest.raises(CJEInputError, match=match):
        run_replicates(task, 1, config={"n": 3})


def test_summarise_errors():
    with pytest.raises(CJEInputError, match="missing: truth, covered"):
        summarise(pd.DataFrame({"estimate": [1.0]}))
    with pytest.raises(CJEInputError, match="missing: method"):
        summarise(pd.DataFrame({"estimate": [1.0], "truth": 1.0, "covered": True}), by="method")
    with pytest.raises(CJEInputError, match="pandas DataFrame"):
        summarise([1, 2])  # type: ignore[arg-type]
