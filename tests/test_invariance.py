"""Invariances: transformations of the input that carry no statistical information must leave
the report unchanged (or transform it exactly).

Isotonic calibration reads the judge score through its order (and interpolates linearly
between the labelled scores: an affine map of the score is exact, a non-linear monotone one is
not), estimates are means on the label scale, and folds come from a hash of the prompt id. So:
an affine map of the judge score (scale declared accordingly), an affine map of the labels, row
order, policy names, extra columns, a rerun and a policy nobody asked about leave every number
as it was (to 1e-9), and an affine map of the labels maps estimates and intervals exactly. The
hunt and its measurements: ``simulations/independent_invariance.py`` and
``simulations/results/independent_invariance.md`` (INVARIANCE_FINDINGS.md on the branch).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest

import cje

TOL = 1e-9


def _run(data: Any, **kw: Any) -> cje.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, progress=False, **kw)


def _numbers(rep: cje.Report, rename: dict[str, str] | None = None) -> dict[str, Any]:
    back = {v: k for k, v in (rename or {}).items()}
    out: dict[str, Any] = {}
    for e in rep.estimates:
        p = back.get(e.policy, e.policy)
        out[p] = (e.estimate, e.se, e.ci_low, e.ci_high, e.df, e.status)
    for c in rep.pairs:
        a, b = back.get(c.policy_a, c.policy_a), back.get(c.policy_b, c.policy_b)
        est, lo, hi = c.estimate, c.ci_low, c.ci_high
        if a > b:
            a, b, est, lo, hi = b, a, -est, -hi, -lo
        out[(a, b)] = (est, c.se, lo, hi, c.df, c.p_holm, c.significant)
    return out


def _same(a: dict[str, Any], b: dict[str, Any], scale: float = 1.0, shift: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(k, str):  # a level: estimate and interval move with the labels' map
            np.testing.assert_allclose([(y[0] - shift) / scale, y[1] / scale, (y[2] - shift) / scale,
                                        (y[3] - shift) / scale, y[4]], x[:5], rtol=TOL, atol=TOL,
                                       err_msg=str(k))
            assert x[5] == y[5], k
        else:  # a contrast: no shift
            np.testing.assert_allclose([y[0] / scale, y[1] / scale, y[2] / scale, y[3] / scale, y[4],
                                        y[5]], x[:6], rtol=TOL, atol=TOL, err_msg=str(k))
            assert x[6] == y[6], k


@pytest.fixture(scope="module")
def direct() -> pd.DataFrame:
    # two draws per prompt (clusters), judge on a 0–10 grid, labels on 1–5
    return cje.synthetic.make_direct_eval(150, rng=3, draws_per_prompt=2, oracle_fraction=0.15).data


@pytest.fixture(scope="module")
def offpolicy() -> Any:
    return cje.synthetic.make_offpolicy_eval(250, rng=4, oracle_fraction=0.2)


DIRECT_KW = dict(judge_scale=(0, 10), label_scale=(1, 5))
OFF_KW = dict(judge_scale=(0, 1), label_scale=(0, 1))


def _judge(df: pd.DataFrame, f: Any) -> pd.DataFrame:
    return df.assign(judge_score=f(df["judge_score"].to_numpy(float)))


@pytest.mark.parametrize("mode", ["monotone", "two_stage"])
def test_direct_judge_affine_and_labels_affine(direct: pd.DataFrame, mode: str) -> None:
    """Judge 0–10 → 0–100 (+1e6 shift) and labels Y → 10Y + 1, scales declared accordingly:
    the same numbers, the labels' map applied to levels and contrasts; two-stage (covariate)
    calibration included (its splines are placed on quantiles: affine-equivariant)."""
    kw = dict(DIRECT_KW, mode=mode, covariates=["response_length"] if mode == "two_stage" else [])
    ref = _numbers(_run(direct, **kw))
    judged = _judge(direct, lambda v: 10 * v + 1e6)
    _same(ref, _numbers(_run(judged, **{**kw, "judge_scale": (1e6, 1e6 + 100)})))
    labelled = direct.assign(oracle_label=10 * direct["oracle_label"] + 1)
    _same(ref, _numbers(_run(labelled, **{**kw, "label_scale": (11, 51)})), scale=10, shift=1)


def test_direct_order_names_ids_columns(direct: pd.DataFrame) -> None:
    """Rows shuffled, policies renamed (order reversed, one name sorting before the others),
    extra columns, a rerun: identical numbers and verdicts."""
    ref = _numbers(_run(direct, **DIRECT_KW))
    rng = np.random.default_rng(0)
    shuffled = direct.iloc[rng.permutation(len(direct))].assign(junk=1.5, note="x")
    names = {"base": "zz_base", "small": "AAA", "improved": "b", "verbose": "a", "concise": "c"}
    shuffled["policy"] = shuffled["policy"].map(names)
    _same(ref, _numbers(_run(shuffled, **DIRECT_KW), names))
    _same(ref, _numbers(_run(direct, **DIRECT_KW)))  # a rerun: bit for bit in practice


def test_direct_unasked_policy_leaves_others(direct: pd.DataFrame) -> None:
    """A policy without labels that nobody asked about, excluded with ``policies=``: the others'
    levels and contrasts are unchanged (it adds no labels to the calibration)."""
    ref = _numbers(_run(direct, **DIRECT_KW))
    extra = direct[direct.policy == "base"].assign(policy="aaa_extra", oracle_label=np.nan,
                                                   judge_score=lambda d: 10 - d["judge_score"])
    both = pd.concat([direct, extra], ignore_index=True)
    _same(ref, _numbers(_run(both, **DIRECT_KW, policies=sorted(set(direct.policy)))))


@pytest.mark.parametrize("estimator", ["ips", "calibrated-ips", "stacked-dr"])
def test_offpolicy_judge_and_label_affine(offpolicy: Any, estimator: str) -> None:
    """Off-policy: judge 0–1 → 0–10 and labels Y → 10Y + 1 (scales declared), rows shuffled and
    targets renamed (one sorting before 'base'): the same numbers."""
    kw = dict(OFF_KW, estimator=estimator)
    fresh = offpolicy.fresh if "dr" in estimator else None
    if fresh is not None:
        kw["fresh_draws"] = fresh
    ref = _numbers(_run(offpolicy.logged, **kw))
    k2 = dict(kw, judge_scale=(0, 10))
    if fresh is not None:
        k2["fresh_draws"] = _judge(fresh, lambda v: 10 * v)
    _same(ref, _numbers(_run(_judge(offpolicy.logged, lambda v: 10 * v), **k2)))
    k3 = dict(kw, label_scale=(1, 11))
    logged = offpolicy.logged.assign(oracle_label=10 * offpolicy.logged["oracle_label"] + 1)
    _same(ref, _numbers(_run(logged, **k3)), scale=10, shift=1)
    names = {"mild": "AAA", "moderate": "zz", "far": "b"}
    rng = np.random.default_rng(1)
    lg = offpolicy.logged.rename(columns={f"logprob[{k}]": f"logprob[{v}]" for k, v in names.items()})
    lg = lg.iloc[rng.permutation(len(lg))]
    k4 = dict(kw)
    if fresh is not None:
        k4["fresh_draws"] = fresh.assign(policy=fresh["policy"].replace(names)).iloc[
            rng.permutation(len(fresh))]
    _same(ref, _numbers(_run(lg, **k4), names))


def _extra_target(sim: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The logged data and fresh draws with one more target: its log-probabilities and fresh
    draws (scores off the 0.05 grid the others use) are new rows and columns only."""
    rng = np.random.default_rng(9)
    logged = sim.logged.assign(**{"logprob[aaa_extra]": sim.logged["logprob_base"]
                                  + rng.normal(0, 0.3, len(sim.logged)) - 0.05})
    ext = sim.fresh[sim.fresh.policy == "base"].assign(policy="aaa_extra")
    ext["judge_score"] = rng.uniform(0, 1, len(ext))
    return logged, pd.concat([sim.fresh, ext], ignore_index=True)


@pytest.mark.parametrize("estimator", ["mrdr", "tmle"])
def test_offpolicy_extra_target_leaves_others(offpolicy: Any, estimator: str) -> None:
    """A target nobody asked about (its own log-probabilities and fresh draws) must not move the
    other targets' estimates: each target's outcome model fits on its own logged rows and is read
    at its own rows and fresh draws. Before the fix MRDR's isotonic outcome model (and TMLE's
    clever covariate) interpolated in *rank* over every distinct score of the analysis, other
    targets' fresh draws included, so their scores moved the interpolation."""
    kw = dict(OFF_KW, estimator=estimator, fresh_draws=offpolicy.fresh)
    ref = _run(offpolicy.logged, **kw)
    logged, fresh = _extra_target(offpolicy)
    got = _run(logged, **dict(kw, fresh_draws=fresh))
    for p in ("mild", "moderate", "far"):
        np.testing.assert_allclose([got[p].estimate, got[p].se], [ref[p].estimate, ref[p].se],
                                   rtol=TOL, err_msg=p)


@pytest.mark.parametrize("estimator", ["mrdr", "tmle", "stacked-dr"])
def test_offpolicy_fresh_float32_is_continuous(offpolicy: Any, estimator: str) -> None:
    """Fresh draws stored as float32 (0.35 → 0.3499999940…), the logged scores float64: a
    change of 1e-8 in a score must move the estimate by about that much, not by a fifth of a
    standard error. Before the fix the float32 values became new distinct values between the
    logged ones and shifted MRDR's rank interpolation (stacked DR moved 0.1–0.2 SE)."""
    kw = dict(OFF_KW, estimator=estimator, fresh_draws=offpolicy.fresh)
    ref = _run(offpolicy.logged, **kw)
    f32 = offpolicy.fresh.astype({"judge_score": np.float32})
    got = _run(offpolicy.logged, **dict(kw, fresh_draws=f32))
    for p in ("mild", "moderate", "far"):
        assert abs(got[p].estimate - ref[p].estimate) < 1e-6, (p, got[p].estimate, ref[p].estimate)
        assert abs(got[p].se / ref[p].se - 1) < 1e-5, p


def test_float32_scores_meet_their_decimal_twins(direct: pd.DataFrame) -> None:
    """Calibration-only rows stored as float32 (0.1 → 0.10000000149…) beside data written as
    decimals: the same numbers as all-float64. Widened bit for bit, each float32 score became a
    value of its own next to its float64 twin, split the isotonic fit's tie there and moved the
    levels by 0.05–0.18 SE; scores are now read through their shortest decimal
    (:func:`cje.data.decimal_float64`)."""
    d = direct.assign(judge_score=direct["judge_score"] / 10)  # a 0.1 grid: inexact in float32
    labelled = d["oracle_label"].notna() & (d["policy"] == "base")
    cal = d[labelled][["prompt_id", "judge_score", "oracle_label"]].assign(
        prompt_id=lambda x: "cal_" + x["prompt_id"])
    data = d.assign(oracle_label=d["oracle_label"].where(~labelled))
    kw = dict(judge_scale=(0, 1), label_scale=(1, 5))
    ref = _numbers(_run(data, **kw, calibration=cal))
    _same(ref, _numbers(_run(data, **kw, calibration=cal.astype({"judge_score": np.float32}))))
    _same(ref, _numbers(_run(data.astype({"judge_score": np.float32}), **kw, calibration=cal)))


def test_float32_parquet_same_in_memory_and_streaming(offpolicy: Any, tmp_path: Any) -> None:
    """Logged data in a Parquet file with float32 scores, fresh draws as float64 decimals: the
    in-memory and the polars engine read the same decimals (a score of 0.35 in both), so they
    give the same numbers, and the same as the all-float64 analysis."""
    path = tmp_path / "logged.parquet"
    offpolicy.logged.astype({"judge_score": np.float32}).to_parquet(path)
    kw = dict(OFF_KW, estimator="dr-cpo", fresh_draws=offpolicy.fresh)
    ref = _numbers(_run(offpolicy.logged, **kw))
    _same(ref, _numbers(_run(str(path), **kw, engine="memory")))
    _same(ref, _numbers(_run(str(path), **kw, engine="polars")))


@pytest.mark.parametrize("engine", ["memory", "polars"])
def test_float32_and_float64_files_in_one_glob(direct: pd.DataFrame, tmp_path: Any, engine: str) -> None:
    """One file set, half of it written with float32 scores and half with float64: the same
    numbers as the data in one frame, in memory as out of core. (The in-memory engine stacked the
    files before reading the scores, so the float32 half was widened bit for bit and 0.3 in one
    file differed from 0.3 in the other: levels moved by ~0.3 SE.)"""
    d = direct.assign(judge_score=direct["judge_score"] / 10)
    half = len(d) // 2
    d.iloc[:half].astype({"judge_score": np.float32}).to_parquet(tmp_path / "a.parquet")
    d.iloc[half:].to_parquet(tmp_path / "b.parquet")
    kw = dict(judge_scale=(0, 1), label_scale=(1, 5))
    _same(_numbers(_run(d, **kw)), _numbers(_run(str(tmp_path / "*.parquet"), **kw, engine=engine)))


def test_offpolicy_affinity_judge_scale_free(offpolicy: Any) -> None:
    """The judge-space affinity of each target is the same with the judge on 0–1 or on 0–100 (a
    grid judge's scores lie on the bin edges: 0.35 fell below the edge 0.35000000000000003 on 0–1
    but on the edge 35.0 on 0–100, and the affinity moved 0.984 → 0.965 before the bins took a
    tolerance, ``cje.diagnostics.overlap.BIN_EDGE_TOL``)."""
    kw = dict(OFF_KW, estimator="snips")
    a = _run(offpolicy.logged, **kw)
    b = _run(_judge(offpolicy.logged, lambda v: 100 * v), **dict(kw, judge_scale=(0, 100)))
    for p in ("mild", "moderate", "far"):
        assert a[p].diagnostics["affinity"] == pytest.approx(b[p].diagnostics["affinity"], rel=TOL), p


@pytest.mark.parametrize("narrow", ["first", "second"])
def test_float32_and_float64_files_in_one_glob_dask(direct: pd.DataFrame, tmp_path: Any, narrow: str) -> None:
    """As :func:`test_float32_and_float64_files_in_one_glob`, on the Dask engine, the float32 file
    first (the partitions' meta then comes from it) or second. (Dask widened float32 bit for bit,
    so the file set split the isotonic ties: levels ~0.3 SE off the memory and polars engines;
    now its reader widens them through their decimals where each partition is made, so the scan
    and the per-prompt pass, which reads three of the columns, see the same scores.)"""
    pytest.importorskip("dask.dataframe")
    d = direct.assign(judge_score=direct["judge_score"] / 10)
    half = len(d) // 2
    first, second = d.iloc[:half], d.iloc[half:]
    if narrow == "first":
        first = first.astype({"judge_score": np.float32})
    else:
        second = second.astype({"judge_score": np.float32})
    first.to_parquet(tmp_path / "a.parquet")
    second.to_parquet(tmp_path / "b.parquet")
    kw = dict(judge_scale=(0, 1), label_scale=(1, 5))
    _same(_numbers(_run(d, **kw)), _numbers(_run(str(tmp_path / "*.parquet"), **kw, engine="dask")))


def test_float32_and_float64_logged_files_in_one_glob_dask(offpolicy: Any, tmp_path: Any) -> None:
    """Logged data as a file set of a float32 file (scores, labels, log-probabilities) and a
    float64 one, fresh draws as float64 decimals: the Dask engine gives the in-memory engine's
    numbers (its logged passes read the partitions as the direct ones do)."""
    pytest.importorskip("dask.dataframe")
    logged = offpolicy.logged
    narrow = {c: np.float32 for c in logged.columns
              if c in ("judge_score", "oracle_label") or str(c).startswith("logprob")}
    half = len(logged) // 2
    logged.iloc[:half].astype(narrow).to_parquet(tmp_path / "a.parquet")
    logged.iloc[half:].to_parquet(tmp_path / "b.parquet")
    kw = dict(OFF_KW, estimator="dr-cpo", fresh_draws=offpolicy.fresh)
    glob = str(tmp_path / "*.parquet")
    _same(_numbers(_run(glob, **kw, engine="memory")), _numbers(_run(glob, **kw, engine="dask")))
