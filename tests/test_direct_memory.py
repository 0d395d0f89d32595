"""The 10^7-row direct path's memory cuts (issue #18) against the computations they replace.

Each replaced computation is kept here in its plain form (the oracle) and compared bit for bit on
random inputs, including inputs split into several blocks (the block sizes are patched small).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import cje
from cje import data as D
from cje.errors import CJEInputError
from cje.estimators.direct import direct_estimate
from cje.inference import paired_contrasts
from cje.pipeline import direct as PD
from cje.pipeline.summaries import UnitView, to_unit


def _frame(rng: np.random.Generator, n_prompts: int = 40, policies: int = 3) -> pd.DataFrame:
    rows = []
    for p in range(policies):
        for g in range(n_prompts):
            lab = rng.random() < 0.3
            rows.append({"prompt_id": f"q{g:03d}", "policy": f"pol{p}",
                         "judge_score": float(rng.integers(0, 11)),
                         "oracle_label": float(rng.uniform(1, 5)) if lab else np.nan})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=int(rng.integers(1 << 30)))


# ---- EvalData.prompt_id --------------------------------------------------------------------
def test_prompt_id_is_derived_not_stored() -> None:
    df = _frame(np.random.default_rng(0))
    ev = cje.load(df, judge_scale=(0, 10), label_scale=(1, 5))
    assert "prompt_id" not in {f.name for f in dataclasses.fields(ev)}
    np.testing.assert_array_equal(ev.prompt_id, df["prompt_id"].to_numpy(dtype=object))
    assert ev.prompt_id.dtype == object and not ev.prompt_id.flags.writeable
    with pytest.raises(ValueError):
        ev.prompt_id[0] = "x"
    assert ev.prompt_id is not ev.prompt_id  # computed on each access


def test_prompt_id_after_drop_and_calibration_rows() -> None:
    df = pd.DataFrame({"prompt_id": ["a", "b", " ", "c", "d"], "policy": ["x"] * 5,
                       "judge_score": [1.0, np.nan, 2.0, 3.0, 4.0],
                       "oracle_label": [1.0, 2.0, 3.0, np.nan, 2.0]})
    ev = cje.load(df, judge_scale=(0, 10), label_scale=(1, 5), on_invalid="drop")
    assert ev.prompt_id.tolist() == ["a", "c", "d"]
    assert ev.prompts.tolist() == ["a", "c", "d"]
    extra = cje.load({"prompt_id": ["e", "a", "f"], "judge_score": [5.0, 6.0, 7.0],
                      "oracle_label": [2.0, np.nan, 4.0]}, policy="x", judge_scale=(0, 10),
                     label_scale=(1, 5))
    both = D.with_calibration_rows(ev, extra)
    assert both.prompt_id.tolist() == ["a", "c", "d", "e", "f"]
    assert both.prompts[both.prompt_code].tolist() == both.prompt_id.tolist()


def test_a_dropped_last_prompt_is_not_listed() -> None:
    # the only row of the last prompt has no finite score: dropped, its prompt not in prompts
    # (before, the shortcut for codes already dense kept it, a prompt without rows)
    ev = cje.load({"prompt_id": ["a", "b", "c", "d"], "judge_score": [0.1, 0.2, 0.3, np.nan]},
                  policy="m", judge_scale=(0, 1), on_invalid="drop")
    assert ev.prompts.tolist() == ["a", "b", "c"] and ev.prompt_code.tolist() == [0, 1, 2]


def test_load_leaves_the_callers_arrays_writeable() -> None:
    s, d = np.array([0.2, 0.4, 0.5, 0.9]), np.array([0, 0, 1, 0])
    ev = cje.load({"prompt_id": ["a", "b", "a", "c"], "judge_score": s, "draw_idx": d},
                  policy="m", judge_scale=(0, 1))
    assert s.flags.writeable and d.flags.writeable
    assert not ev.judge_score.flags.writeable and not ev.draw_idx.flags.writeable
    assert ev.draw_idx.tolist() == [0, 0, 1, 0]


# ---- row ids in messages -------------------------------------------------------------------
@pytest.mark.parametrize("draw", [[0, 0, 0, -1], [0.0, 0.0, 0.0, -1.0], [0, 0, 0, 0.5]])
def test_draw_idx_refusals_name_the_row(draw: list[float]) -> None:
    frame = {"prompt_id": ["a", "b", "c", "d"], "judge_score": [1, 2, 3, 4], "draw_idx": draw}
    want = f"draw_idx' column must hold non-negative integers; row 3 \\(prompt_id='d'\\) has {float(draw[3])}"
    with pytest.raises(CJEInputError, match=want):
        cje.load(frame, policy="m", judge_scale=(0, 10))


@pytest.mark.parametrize("kind", ["int", "float"])
def test_duplicate_draw_names_both_rows(kind: str) -> None:
    draw = np.array([0, 1, 0, 1, 1])
    frame = {"prompt_id": ["a", "a", "b", "b", "a"], "policy": ["x", "x", "x", "y", "x"],
             "judge_score": [1, 2, 3, 4, 5], "draw_idx": draw if kind == "int" else draw * 1.0}
    with pytest.raises(CJEInputError, match="Rows 1 and 4 share prompt_id='a', policy='x', "
                                            r"draw_idx=1 \(2 rows are duplicated\)"):
        cje.load(frame, judge_scale=(0, 10))


def test_cumcount_is_pandas_cumcount() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        key = rng.integers(0, int(rng.integers(1, 40)), int(rng.integers(1, 60)))
        if rng.random() < 0.3:
            key = key * 10**12  # a range a mark per value would not hold
        k = pd.Series(key)
        want = k.groupby(k).cumcount().to_numpy()
        assert D._cumcount(key).tolist() == want.tolist()


@pytest.mark.parametrize("repeat", [False, True])
def test_draws_numbered_without_a_draw_idx_column(repeat: bool, monkeypatch) -> None:
    monkeypatch.setattr(D, "_SMALL_IDS", 0)  # the path of large inputs (numpy, not a dict)
    rng = np.random.default_rng(6)
    n = 3000
    pid = rng.integers(0, 900 if repeat else n, n)
    if not repeat:
        pid = rng.permutation(n)
    frame = pd.DataFrame({"prompt_id": [f"p{i}" for i in pid], "policy": rng.choice(["a", "b"], n),
                          "judge_score": rng.integers(0, 11, n).astype(float)})
    ev = cje.load(frame, judge_scale=(0, 10))
    key = frame["prompt_id"] + "|" + frame["policy"]
    want = key.groupby(key).cumcount().to_numpy()
    assert ev.draw_idx.tolist() == want.tolist()
    assert any("taken as repeated draws" in m for m in ev.notices) == repeat


def test_row_ids_lookup() -> None:
    ids = D._RowIds(np.array([2, -1, 0, 1]), np.array(["a", "b", "c"], dtype=object))
    assert [ids[i] for i in range(4)] == ["c", "", "a", "b"]
    sub = ids[np.array([3, 0])]
    assert [sub[0], sub[1]] == ["b", "c"] and len(ids) == 4


# ---- per-row checks in blocks --------------------------------------------------------------
@pytest.mark.parametrize("block", [1, 2, 3, 7, 1 << 20])
def test_dense_in_order_in_blocks(block: int) -> None:
    rng = np.random.default_rng(block)
    for _ in range(300):
        codes = rng.integers(-1, 6, int(rng.integers(0, 15)))
        if rng.random() < 0.5:  # codes from a factorisation, sometimes with one row dropped
            codes = pd.factorize(rng.integers(0, 6, int(rng.integers(1, 15))))[0]
            if rng.random() < 0.5 and codes.size > 1:
                codes = np.delete(codes, int(rng.integers(codes.size)))
        same = np.array_equal(pd.factorize(codes, sort=False)[0], codes) and (codes >= 0).all()
        assert D._dense_in_order(codes, block=block) == bool(same)


# ---- the jackknife's per-policy sums -------------------------------------------------------
@pytest.mark.parametrize("seed", range(12))
def test_sums_by_group_is_bincount_bit_for_bit(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, P, d = int(rng.integers(1, 5000)), int(rng.integers(1, 6)), int(rng.integers(1, 300))
    pred = rng.normal(size=d) * 10.0 ** rng.integers(-8, 8, d)  # wide magnitudes: rounding shows
    codes = rng.integers(0, d, n).astype(np.uint16)
    group = rng.integers(0, P, n)
    want = np.bincount(group, weights=pred[codes], minlength=P)
    for block in (1, 7, 64, int(rng.integers(1, n + 1)), n, n + 5):
        got = PD._sums_by_group(pred, codes, group, P, block=block)
        assert got.tobytes() == want.tobytes(), block


# ---- the direct estimate with the labelled rows' residuals, written over the rewards ---------
def _direct_estimate_before(reward, residual, labelled, group, P, augment=True, weight=None):
    """direct_estimate as written before issue #18's memory work (per-row residual, new φ)."""
    if group.size and group.min() < 0:
        inside = np.flatnonzero(group >= 0)
        sub = _direct_estimate_before(reward[inside], residual[inside], labelled[inside],
                                      group[inside], P, augment,
                                      None if weight is None else weight[inside])
        phi = np.zeros(group.shape[0])
        phi[inside] = sub[1]
        return sub[0], phi
    lab = np.flatnonzero(labelled)
    g_lab = group[lab]
    n = np.bincount(group, minlength=P)
    m = np.bincount(g_lab, minlength=P).astype(np.int64)
    values = np.bincount(group, weights=reward, minlength=P) / np.maximum(n, 1)
    phi = values[group]
    np.subtract(reward, phi, out=phi)
    if augment and weight is not None:
        e, w = residual[lab], weight[lab]
        tot = np.bincount(g_lab, weights=w, minlength=P)
        mean_e = np.divide(np.bincount(g_lab, weights=w * e, minlength=P), tot,
                           out=np.zeros(P), where=m > 0)
        scale = np.divide(n, tot, out=np.zeros(P), where=m > 0)
        values = values + mean_e
        phi[lab] += scale[g_lab] * w * (e - mean_e[g_lab])
    elif augment:
        e = residual[lab]
        mean_e = np.divide(np.bincount(g_lab, weights=e, minlength=P), m, out=np.zeros(P),
                           where=m > 0)
        inv_p = np.divide(n, m, out=np.zeros(P), where=m > 0)
        values = values + mean_e
        e -= mean_e[g_lab]
        e *= inv_p[g_lab]
        phi[lab] += e
    return values, phi


@pytest.mark.parametrize("seed", range(16))
def test_direct_estimate_compact_residual_and_overwrite(seed: int, monkeypatch) -> None:
    import cje.estimators.direct as ED

    monkeypatch.setattr(ED, "_BLOCK", int(np.random.default_rng(seed).integers(1, 50)))
    rng = np.random.default_rng(seed)
    n, P = int(rng.integers(2, 400)), int(rng.integers(1, 4))
    reward = rng.uniform(0, 1, n)
    labelled = rng.random(n) < rng.uniform(0.05, 1.0)
    residual = np.where(labelled, rng.normal(0, 0.3, n), rng.normal(0, 5, n))  # junk elsewhere
    group = rng.integers(-1 if seed % 3 == 0 else 0, P, n)
    weight = rng.uniform(1, 4, n) if seed % 2 else None
    augment = seed % 5 != 4
    want_v, want_phi = _direct_estimate_before(reward, residual, labelled, group, P, augment,
                                               weight)
    for compact in (False, True):
        for overwrite in (False, True):
            r = reward.copy()
            res = residual[labelled] if compact else residual
            res_before = res.copy()
            est = direct_estimate(r, res, labelled, group, P, augment=augment, weight=weight,
                                  overwrite_reward=overwrite)
            assert est.values.tobytes() == want_v.tobytes()
            assert est.influence.tobytes() == want_phi.tobytes()
            assert res.tobytes() == res_before.tobytes()  # the residuals are not changed
            if not overwrite:
                assert r.tobytes() == reward.tobytes()


# ---- labels and scores converted where read ------------------------------------------------
def test_unit_view_reads_as_the_converted_array() -> None:
    rng = np.random.default_rng(3)
    x = np.where(rng.random(500) < 0.3, np.nan, rng.uniform(-3, 17, 500))
    scale = (-3.0, 17.0)
    full = (x - scale[0]) / (scale[1] - scale[0])
    v = UnitView(x, scale)
    rows = rng.integers(0, 500, 200)
    for idx in (rows, slice(10, 90), x > 5, 7):
        assert np.asarray(v[idx]).tobytes() == np.asarray(full[idx]).tobytes()
    assert np.asarray(v).tobytes() == full.tobytes() and v.shape == (500,) and len(v) == 500
    assert to_unit(x, scale).tobytes() == full.tobytes()


# ---- paired contrasts, prompt totals copied pair-block by pair-block -------------------------
@pytest.mark.parametrize("seed", range(6))
def test_paired_contrasts_in_pair_blocks(seed: int, monkeypatch) -> None:
    import cje.inference as inf

    rng = np.random.default_rng(seed)
    m, G = int(rng.integers(2, 7)), int(rng.integers(1, 3000))
    totals = {p: rng.normal(0, 1e-3, G) for p in range(m)}
    present = {p: rng.random(G) < 0.8 for p in range(m)}
    reps = rng.normal(0.5, 0.01, (5, m))
    args = (totals, present, list(rng.uniform(0, 1, m)), reps, list(range(m)),
            [f"p{j}" for j in range(m)])
    want = paired_contrasts(*args, k=5, alpha=0.05, width=4.0)
    for budget in (1, 8 * G, 8 * G * 2 + 1):  # one pair per block, one, two
        monkeypatch.setattr(inf, "_PAIR_BYTES", budget)
        got = paired_contrasts(*args, k=5, alpha=0.05, width=4.0)
        assert [dataclasses.astuple(c) for c in got] == [dataclasses.astuple(c) for c in want]


# ---- the whole analysis with every block small ---------------------------------------------
def test_analysis_is_the_same_with_small_blocks(monkeypatch) -> None:
    import cje.estimators.direct as ED
    import cje.inference as inf

    sim = cje.synthetic.make_direct_eval(3000, rng=4)
    kw = dict(judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    want = cje.analyze(sim.data, **kw)
    calls = []
    sums = PD._sums_by_group
    monkeypatch.setattr(PD, "_sums_by_group", lambda *a, **k: calls.append(1) or sums(*a, **k))
    monkeypatch.setattr(PD, "_BLOCK", 97)
    monkeypatch.setattr(ED, "_BLOCK", 101)
    monkeypatch.setattr(D, "_BLOCK", 89)
    monkeypatch.setattr(inf, "_PAIR_BYTES", 1)
    got = cje.analyze(sim.data, **kw)
    assert len(calls) == want.calibration.n_folds and sim.data.shape[0] > 10 * 97
    pd.testing.assert_frame_equal(got.to_pandas(), want.to_pandas(), check_exact=True)
    assert [dataclasses.astuple(c) for c in got.pairs] == [dataclasses.astuple(c) for c in want.pairs]
    assert got.calibration == want.calibration
