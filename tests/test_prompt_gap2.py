"""The prompt-gap gate counts each comparator's rows on each prompt exactly, in every engine.

Before: :func:`cje.pipeline.core._prompt_gap_gates` gave every prompt the comparator's MEAN rows
per prompt (the out-of-core engines did not keep the counts then). When the comparator asked the
prompts the other policy lacks more (or less) often than the others — retries on the hard
prompts — ``D`` was not "its value on the missing prompts minus its value on the shared ones"
(with 3 rows on each missing prompt and 1 on each shared one, the reported shift was 0.6 of the
true one here: −0.144 for −0.240) and the z statistic was off with it. The counts are now those
the row-weight gate uses (:attr:`cje.pipeline.core.PolicyRows.prompt_rows` out of core), and the numbers agree
with a hand computation and across engines. Study: ``simulations/results/independent_gap2.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import cje


def _route_parity() -> Any:
    """``tests/test_route_parity.py`` (its routes and comparison), loaded by path (the tests are
    imported with ``--import-mode=importlib``)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "_route_parity_for_gap2", Path(__file__).with_name("test_route_parity.py"))
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


SCALES = {"judge_scale": (0, 10), "label_scale": (0, 1)}


def _exact_judge_data(seed: int = 0, g: int = 60, lacked: int = 20, reps: int = 3) -> pd.DataFrame:
    """A judge that is the label (×10) and every row labelled, so each row's value is its label:
    A on every prompt, with ``reps`` rows on each of the first ``lacked`` prompts (the ones B
    lacks) and one elsewhere; B on the others."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(g):
        hard = p < lacked
        for pol in ("A", "B"):
            if pol == "B" and hard:
                continue
            for _ in range(reps if (pol == "A" and hard) else 1):
                y = float(rng.random() < (0.2 if hard else 0.7))
                rows.append((f"p{p:03d}", pol, 10.0 * y, y))
    return pd.DataFrame(rows, columns=["prompt_id", "policy", "judge_score", "oracle_label"])


def test_prompt_gap_shift_is_the_comparators_level_minus_its_value_on_the_shared_prompts() -> None:
    df = _exact_judge_data()
    rep = cje.analyze(df, **SCALES)
    a = df[df.policy == "A"]
    shared = a.prompt_id.isin(set(df.loc[df.policy == "B", "prompt_id"]))
    assert abs(rep["A"].estimate - a.oracle_label.mean()) < 1e-9  # each row's value is its label
    want = a.oracle_label.mean() - a.loc[shared, "oracle_label"].mean()
    d = rep["B"].diagnostics
    assert d["prompt_gap_vs"] == "A"
    # before: each prompt held A's mean rows (1.67), giving −0.144 for −0.240
    assert abs(d["prompt_gap_shift"] - want) < 1e-9, (d["prompt_gap_shift"], want)
    assert rep["B"].status == "CAUTION"


def test_prompt_gap_with_repeated_prompts_agrees_across_engines(tmp_path: Path, dask_client: Any) -> None:
    """A comparator asking the lacked prompts more often: the same status, reasons and
    diagnostics (``prompt_gap_shift``, ``prompt_gap_z``) in memory and out of core."""
    rng = np.random.default_rng(1)
    q0 = rng.normal(0, 1, 150)
    rows = []
    for pol in ("alpha", "beta"):
        for p in range(150):
            if pol == "beta" and q0[p] < -0.8:  # beta lacks alpha's lowest-rated prompts
                continue
            for _ in range(2 if (pol == "alpha" and q0[p] < -0.5) else 1):
                q = q0[p] + rng.normal(0, 0.5)
                s = float(np.clip(np.round(2 * (5 + 1.5 * q + rng.normal(0, 1))) / 2, 0, 10))
                y = float(np.clip(np.round(3 + q + rng.normal(0, 0.6)), 1, 5))
                rows.append((f"q{p:04d}", pol, s, y if rng.random() < 0.3 else np.nan))
    df = pd.DataFrame(rows, columns=["prompt_id", "policy", "judge_score", "oracle_label"])
    kw = dict(judge_scale=(0, 10), label_scale=(1, 5))
    rp = _route_parity()
    ref = rp.oracle(df, kw)
    assert isinstance(ref, dict)
    est = {e["policy"]: e for e in ref["estimates"]}
    assert est["beta"]["diagnostics"]["prompt_gap_vs"] == "alpha"
    assert abs(est["beta"]["diagnostics"]["prompt_gap_z"]) > 3.29
    assert rp.check_routes(df, rp.DIRECT_ROUTES, tmp_path, kw, dask_client) == {}
