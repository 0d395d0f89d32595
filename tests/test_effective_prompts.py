"""The effective number of prompts (``cje.pipeline.core.effective_prompts``): when a few prompts
hold most of a policy's rows, its interval's degrees of freedom are those few prompts', not the
prompt count (``simulations/results/independent_clusters.md``: two prompts with 50 draws among
100 had OK intervals covering 0.915 with about 40 df; with the cap 0.962 ± 0.003 over the 3,000
replicates of the slow ``tests/test_clusters_unequal.py``). The tests here check the mechanism by
hand and across engines."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.pipeline.core import effective_prompts


def _unequal(seed: int, big: int = 2, size: int = 50, g: int = 100) -> pd.DataFrame:
    """One policy; ``big`` prompts with ``size`` draws, the others one; labels on 40% of rows."""
    rng = np.random.default_rng(seed)
    sizes = np.ones(g, dtype=int)
    sizes[:big] = size
    pid = np.repeat(np.arange(g), sizes)
    theta = rng.normal(0, 1, g)[pid]
    s = rng.uniform(0, 10, pid.size)
    y = s / 10 + 0.3 * theta + rng.normal(0, 0.2, pid.size)
    lab = rng.uniform(size=pid.size) < 0.4
    return pd.DataFrame({"prompt_id": pid, "policy": "A",
                         "draw_idx": np.concatenate([np.arange(k) for k in sizes]),
                         "judge_score": s, "oracle_label": np.where(lab, y, np.nan)})


def test_effective_prompts_by_hand() -> None:
    assert effective_prompts(100, 100) == 100.0
    assert effective_prompts(198, 98 + 2 * 50**2) == pytest.approx(198**2 / 5098)
    assert effective_prompts(0, 0) == float("inf")


def test_a_level_on_two_dominant_prompts_has_their_degrees_of_freedom() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = cje.analyze(_unequal(0), judge_scale=(0, 10))["A"]
    g_star = 198**2 / 5098  # 7.7
    assert e.diagnostics["effective_prompts"] == pytest.approx(g_star)
    assert 1.0 <= e.df <= g_star - 1 + 1e-9
    # every prompt with one row: no cap, no diagnostic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e1 = cje.analyze(_unequal(0, big=0), judge_scale=(0, 10))["A"]
    assert "effective_prompts" not in e1.diagnostics and e1.df > 20


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_out_of_core_counts_the_same_effective_prompts(engine: str, tmp_path) -> None:
    path = tmp_path / "d.csv"
    _unequal(1).to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mem = cje.analyze(path, judge_scale=(0, 10))["A"]
        ooc = cje.analyze(path, judge_scale=(0, 10), engine=engine)["A"]
    assert ooc.diagnostics["effective_prompts"] == pytest.approx(mem.diagnostics["effective_prompts"])
    assert ooc.df == pytest.approx(mem.df, rel=1e-9)


def _two_policies(seed: int) -> pd.DataFrame:
    a, b = _unequal(seed), _unequal(seed + 100)
    b["policy"] = "B"
    b["judge_score"] = np.clip(b["judge_score"] + 0.5, 0, 10)
    return pd.concat([a, b], ignore_index=True)


def test_a_contrast_on_two_dominant_prompts_has_their_degrees_of_freedom(tmp_path) -> None:
    # both policies hold most rows on the same two prompts: the pair's effective prompts are
    # those of either (7.7), and its df are capped there, in memory and out of core alike
    path = tmp_path / "d.csv"
    _two_policies(2).to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (mem,) = cje.analyze(path, judge_scale=(0, 10)).pairs
        (ooc,) = cje.analyze(path, judge_scale=(0, 10), engine="polars").pairs
    assert 1.0 <= mem.df <= 198**2 / 5098 - 1 + 1e-9
    assert ooc.df == pytest.approx(mem.df, rel=1e-9)
