"""The simulation studies: a quick tier of each (default suite) and the full-size runs (slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cje.errors import CJEInputError
from cje.studies import STUDIES, main
from cje.studies.ranking import budget_for, per_replicate


def _outputs(md, name, reps):
    assert md.name == f"study_{name}.md"
    png, pq = md.with_suffix(".png"), md.with_suffix(".parquet")
    assert png.stat().st_size > 10_000  # a real figure
    text = md.read_text()
    lines = text.splitlines()
    assert lines[0].startswith("# Study")
    assert lines[2].startswith("Command: `") and "Runtime: " in lines[4]
    assert "| " in text and "## Reading" in text
    df = pd.read_parquet(pq)
    assert sorted(df["replicate"].unique()) == list(range(reps))
    assert (df["study"] == name).all()
    return df, text


def _coverage(df, **where):
    for k, v in where.items():
        df = df[df[k] == v]
    return float(df["covered"].mean())


@pytest.fixture(scope="module")
def quick_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("studies")


def test_registry():
    assert set(STUDIES) == {"coverage", "naive_ci", "ranking", "modes", "bias"}
    with pytest.raises(SystemExit, match="unknown study"):
        main("nope", [])


def test_coverage_quick(quick_dir):
    md = STUDIES["coverage"](quick=True, out_dir=quick_dir)
    df, text = _outputs(md, "coverage", 30)
    assert _coverage(df, method="naive") < 0.2
    assert _coverage(df, method="oua") > 0.85
    assert set(df["method"]) == {"oua", "no_oua", "naive"}
    assert "--quick" in text and "QUICK tier" in text


def test_naive_ci_quick(quick_dir):
    md = STUDIES["naive_ci"](quick=True, out_dir=quick_dir)
    df, _ = _outputs(md, "naive_ci", 30)
    every = df[df.design == "every policy"]
    assert _coverage(every, method="naive") < 0.2
    assert _coverage(every, method="oua") > 0.85
    # Labels on base only: OUA is what separates the unlabelled policies' intervals from naive ones.
    unl = df[(df.design == "base only") & ~df.own_labels & (df.policy != "verbose")]
    assert _coverage(unl, method="oua") > _coverage(unl, method="no_oua") + 0.2
    share = unl[unl.method == "oua"]["calibration_share"].mean()
    assert share > 0.5


def test_ranking_quick(quick_dir):
    md = STUDIES["ranking"](quick=True, out_dir=quick_dir)
    df, text = _outputs(md, "ranking", 30)
    per = per_replicate(df)
    acc = per.groupby(["method", "oracle_fraction"])["accuracy"].mean()
    assert acc[("calibrated", 0.10)] > acc[("naive", 0.10)] + 0.1
    assert acc[("naive", 0.10)] < 0.8  # the judge bonus of 'verbose' misorders three pairs
    assert acc[("calibrated", 0.10)] > acc[("calibrated", 0.02)]
    assert np.allclose(per["tau"], 2 * per["accuracy"] - 1)
    assert "Label budget to reach 99%" in text


def test_budget_interpolation():
    labels = np.array([100.0, 200.0, 500.0])
    assert budget_for(labels, np.array([0.9, 0.98, 1.0]), 0.99) == pytest.approx(np.sqrt(200 * 500))
    assert budget_for(labels, np.array([0.995, 0.999, 1.0]), 0.99) == 100.0
    assert budget_for(labels, np.array([0.9, 0.95, 0.98]), 0.99) is None


def test_modes_quick(quick_dir):
    md = STUDIES["modes"](quick=True, out_dir=quick_dir)
    df, _ = _outputs(md, "modes", 20)
    first = df[df.fit == "auto"].groupby(["replicate", "scenario", "n_prompts"]).head(1)
    rate = (first.assign(ts=first.chosen == "two_stage")
            .groupby(["scenario", "n_prompts"])["ts"].mean())
    assert rate[("monotone truth", 1200)] <= 0.3
    assert rate[("length-biased judge, β_L = 0.10", 1200)] >= 0.5
    assert (df[df.fit == "monotone"]["chosen"] == "monotone").all()


def test_bias_quick(quick_dir):
    md = STUDIES["bias"](quick=True, out_dir=quick_dir)
    df, _ = _outputs(md, "bias", 40)
    rates = df.groupby(["test", "planted"])[["rejected", "flagged"]].mean()
    for test in df["test"].unique():
        assert rates.loc[(test, 0.0), "rejected"] <= 0.2, test  # size (40 replicates)
        assert rates.loc[(test, 0.0), "flagged"] <= 0.1, test
        top = df[df.test == test]["planted"].max()
        assert rates.loc[(test, top), "rejected"] >= 0.8, test  # power at the largest bias


def test_script_entry_point_records_the_command(tmp_path):
    md = main("ranking", ["--quick", "--reps", "4", "--out-dir", str(tmp_path)],
              prog="cje simulate ranking")
    text = md.read_text()
    assert f"Command: `cje simulate ranking --quick --reps 4 --out-dir {tmp_path}`" in text
    assert pd.read_parquet(md.with_suffix(".parquet"))["replicate"].nunique() == 4


def test_resume_runs_only_the_missing_replicates(tmp_path):
    main("ranking", ["--quick", "--reps", "3", "--out-dir", str(tmp_path)])
    first = pd.read_parquet(tmp_path / "study_ranking.parquet")
    md = main("ranking", ["--quick", "--reps", "5", "--resume", "--out-dir", str(tmp_path)])
    assert "Runtime: " in md.read_text() and "for 2 replicates" in md.read_text()
    assert "3 more were read back from an earlier run" in md.read_text()
    df = pd.read_parquet(md.with_suffix(".parquet"))
    assert df["replicate"].nunique() == 5
    pd.testing.assert_frame_equal(df[df.replicate < 3].reset_index(drop=True), first)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"reps": 1}, "reps must be an integer >= 2"),
    ({"seed": -3}, "seed must be an integer >= 0"),
    ({"backend": "spark"}, "backend must be one of"),
    ({"resume": "yes"}, "resume must be True or False"),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(CJEInputError, match=match):
        STUDIES["coverage"](out_dir=tmp_path, **({"quick": True} | kwargs))


# ------------------------------------------------------------------------------ full size (slow)


@pytest.mark.slow
def test_coverage_full(tmp_path):
    df, _ = _outputs(STUDIES["coverage"](n_jobs=2, out_dir=tmp_path), "coverage", 2000)
    cov = df[df.method == "oua"].groupby(["n_prompts", "oracle_fraction"])["covered"].mean()
    assert cov.between(0.93, 0.97).all(), cov
    assert _coverage(df, method="naive") < 0.05


@pytest.mark.slow
def test_naive_ci_full(tmp_path):
    df, _ = _outputs(STUDIES["naive_ci"](n_jobs=2, out_dir=tmp_path), "naive_ci", 2000)
    every = df[df.design == "every policy"]
    assert every[every.method == "oua"].groupby("oracle_fraction")["covered"].mean().between(0.93, 0.97).all()
    unl = df[(df.design == "base only") & ~df.own_labels]
    assert _coverage(unl, method="oua") > _coverage(unl, method="no_oua") + 0.15


@pytest.mark.slow
def test_ranking_full(tmp_path):
    df, _ = _outputs(STUDIES["ranking"](n_jobs=2, out_dir=tmp_path), "ranking", 2000)
    acc = per_replicate(df).groupby(["method", "oracle_fraction"])["accuracy"].mean()
    assert acc.xs("calibrated").is_monotonic_increasing
    assert acc[("calibrated", 0.25)] > 0.95 > 0.8 > acc.xs("naive").max()


@pytest.mark.slow
def test_modes_full(tmp_path):
    df, _ = _outputs(STUDIES["modes"](n_jobs=2, out_dir=tmp_path), "modes", 1000)
    first = df[df.fit == "auto"].groupby(["replicate", "scenario", "n_prompts"]).head(1)
    rate = (first.assign(ts=first.chosen == "two_stage")
            .groupby(["scenario", "n_prompts"])["ts"].mean())
    assert rate[("length-biased judge, β_L = 0.10", 8000)] > 0.95
    assert (rate.xs("monotone truth") < 0.02).all()


@pytest.mark.slow
def test_bias_full(tmp_path):
    df, _ = _outputs(STUDIES["bias"](n_jobs=2, out_dir=tmp_path), "bias", 2000)
    size = df[df.planted == 0].groupby(["test", "n_prompts"])["rejected"].mean()
    assert (size < 0.05 + 3 * np.sqrt(0.05 * 0.95 / 2000)).all(), size
