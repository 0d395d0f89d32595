"""The memos of a warm call on unchanged input files (issue #18): ``cje.data.read_columns`` and
``cje.export.content_hash`` serve an input again only while its ``cje.readers.file_signature``
is unchanged, and what they serve is bit for bit what reading or hashing it again gives."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import cje
from cje import data as cje_data
from cje import export, readers


@pytest.fixture
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files written by the test count as settled (the default waits 2 s after a write), and
    the memos start empty."""
    monkeypatch.setattr(readers, "_SETTLED_S", 0.0)
    monkeypatch.setattr(cje_data, "_READ_MEMO", {})
    monkeypatch.setattr(export, "_HASH_MEMO", {})


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> cje.datasets.ArenaFiles:
    return cje.datasets.export(tmp_path_factory.mktemp("arena"))


def _same(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for k in a:
        x, y = np.asarray(a[k]), np.asarray(b[k])
        assert type(a[k]) is type(b[k]) and x.dtype == y.dtype, k
        if x.dtype.kind == "f":
            assert x.tobytes() == y.tobytes(), k  # bit for bit, NaN included
        else:
            assert x.tolist() == y.tolist(), k


def test_read_memo_serves_what_reading_gives(arena: cje.datasets.ArenaFiles, settled: None) -> None:
    for path in (Path(arena.logged), Path(arena.fresh_draws)):
        first = cje_data.read_columns(path)
        assert len(cje_data._READ_MEMO) >= 1
        again = cje_data.read_columns(path)  # from the memo
        fresh = cje_data._read_columns(path, covariates=(), logging_policy="base", columns=None)
        _same(again, fresh)
        _same(first, fresh)
    assert len(cje_data._READ_MEMO) == 2


def test_read_memo_hands_out_copies(arena: cje.datasets.ArenaFiles, settled: None) -> None:
    path = Path(arena.fresh_draws)
    got = cje_data.read_columns(path)
    keep = got["judge_score"].copy()
    got["judge_score"][:] = -1.0
    got["prompt_id"][0] = "changed"
    again = cje_data.read_columns(path)
    assert again["judge_score"].tobytes() == keep.tobytes() and again["prompt_id"][0] != "changed"


def test_analysis_is_the_same_with_and_without_the_memos(arena: cje.datasets.ArenaFiles,
                                                         settled: None) -> None:
    kw = dict(fresh_draws=str(arena.fresh_draws), estimator="stacked-dr")
    cold = cje.analyze(str(arena.logged), **kw)
    assert cje_data._READ_MEMO and export._HASH_MEMO
    warm = cje.analyze(str(arena.logged), **kw)
    for a, b in zip(cold.estimates, warm.estimates, strict=True):
        assert (a.policy, a.estimate, a.se, a.ci_low, a.ci_high, a.status) == (
            b.policy, b.estimate, b.se, b.ci_low, b.ci_high, b.status)
    assert cold.provenance["inputs"] == warm.provenance["inputs"]


def test_a_changed_file_is_read_and_hashed_again(tmp_path: Path, settled: None) -> None:
    path = tmp_path / "runs.jsonl"
    path.write_text('{"prompt_id": "a", "policy": "m", "judge_score": 0.25}\n')
    before = os.stat(path)
    first = cje_data.read_columns(path)
    h1 = export.content_hash(path)
    assert len(cje_data._READ_MEMO) == 1 and len(export._HASH_MEMO) == 1
    # the same size, and the modification time put back: the change time still tells
    path.write_text('{"prompt_id": "a", "policy": "m", "judge_score": 0.75}\n')
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size
    second = cje_data.read_columns(path)
    assert first["judge_score"].tolist() == [0.25] and second["judge_score"].tolist() == [0.75]
    h2 = export.content_hash(path)
    assert h2 == {"path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert h1 != h2


def test_a_file_added_to_a_directory_is_seen(arena: cje.datasets.ArenaFiles, tmp_path: Path,
                                             settled: None) -> None:
    d = tmp_path / "fresh"
    d.mkdir()
    src = sorted(Path(arena.fresh_draws).glob("*_responses.jsonl"))
    (d / src[0].name).write_bytes(src[0].read_bytes())
    one = cje_data.read_columns(d)
    h1 = export.content_hash(d)
    (d / src[1].name).write_bytes(src[1].read_bytes())
    two = cje_data.read_columns(d)
    assert len(set(one["policy"])) == 1 and len(set(two["policy"])) == 2
    h2 = export.content_hash(d)
    assert h1["n_files"] == 1 and h2["n_files"] == 2
    export._HASH_MEMO.clear()
    assert export.content_hash(d) == h2  # the memo's hash is the hash of the bytes


def test_files_just_written_are_not_memoised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    # the default: a file modified within the last 2 s has no signature (a rewrite within one
    # tick of a coarse file-system clock could keep size and times)
    monkeypatch.setattr(cje_data, "_READ_MEMO", {})
    monkeypatch.setattr(export, "_HASH_MEMO", {})
    path = tmp_path / "runs.jsonl"
    path.write_text('{"prompt_id": "a", "policy": "m", "judge_score": 0.25}\n')
    assert readers.file_signature(path) is None
    cje_data.read_columns(path)
    export.content_hash(path)
    assert cje_data._READ_MEMO == {} and export._HASH_MEMO == {}
    assert readers.file_signature(tmp_path / "missing.jsonl") is None


def test_rank_memo_is_order_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    # the memoised ranks of SIMCal-W and the MRDR/TMLE outcome models are order_rank's, bit for
    # bit, read-only, and a different index or tiebreak is never served another's ranks
    from cje.calibration import weights

    monkeypatch.setattr(weights, "_RANK_MEMO", {})
    rng = np.random.default_rng(7)
    tb = rng.integers(0, 6, 40).astype(float)
    for _ in range(30):
        ix = np.round(rng.random(40), 1)  # ties in the index, broken by tb
        for t in (tb, None, tb[::-1].copy()):
            want = weights.order_rank(ix, t)
            for _ in range(2):  # computed, then from the memo
                got = weights._rank_of(ix, t)
                assert got.dtype == want.dtype and got.tobytes() == want.tobytes()
                assert not got.flags.writeable
    assert 0 < len(weights._RANK_MEMO) <= weights._RANK_MEMO_SIZE
    big = np.arange(weights._RANK_MEMO_MAX + 1, dtype=float)
    before = len(weights._RANK_MEMO)
    assert weights._rank_of(big, None).tolist() == weights.order_rank(big).tolist()
    assert len(weights._RANK_MEMO) == before  # large tables are not kept


@pytest.mark.parametrize("stable_residual", [False, True])
def test_stacking_moments_are_the_reference_bit_for_bit(stable_residual: bool) -> None:
    # _stacking_moments computes each sum once and only those the residual's weighting uses;
    # _stacking_moments_reference is the plain form it replaced (every pair's sums in full)
    from cje.calibration import weights

    rng = np.random.default_rng(11)
    for trial in range(40):
        # few distinct scores, and many (sums over blocks longer than numpy's pairwise unit)
        n_codes = int(rng.integers(1, 30) if trial % 2 else rng.integers(100, 1500))
        n, k_folds = int(rng.integers(20, 3000)), int(rng.integers(2, 6))
        w = np.exp(rng.normal(0, 1.5, n))
        w = w / w.mean()
        codes = rng.integers(0, n_codes, n)
        fold = rng.integers(0, k_folds, n)
        y = np.where(rng.random(n) < 0.4, rng.random(n), np.nan)
        st = weights._CellStats(w, codes, fold, y, n_codes, k_folds)
        a_inc, a_dec = rng.random((k_folds, n_codes)) + 0.1, rng.random((k_folds, n_codes)) + 0.1
        x = rng.random(n_codes)
        for k in range(k_folds):
            with np.errstate(all="ignore"):
                got = weights._stacking_moments(st, a_inc, a_dec, x, k, stable_residual)
                want = _stacking_moments_reference(st, a_inc, a_dec, x, k, stable_residual)
            assert got[0].tobytes() == want[0].tobytes(), (trial, k)
            assert got[1].tobytes() == want[1].tobytes() and got[2] == want[2]


def test_the_estimates_residual_term_is_the_gaps_stable_term() -> None:
    # StackedDR hands out the influence of its residual term on the stabilised weights; the
    # transport gap's influence and variance take it instead of computing it again: the same
    # numbers, bit for bit, as computing it
    from dataclasses import replace

    from cje.estimators import offpolicy as op

    x = replace(op._example_target(), stable_residual=True)
    value = op.StackedDR().estimate(x)
    assert value.residual_influence is not None
    xs = replace(x, stable=value.stable.weights)
    assert value.residual_influence.tobytes() == op._residual_term(xs.stable, xs)[1].tobytes()
    fast = op.residual_gap_influence(xs, stable_term=value.residual_influence)
    slow = op.residual_gap_influence(xs)
    assert fast.tobytes() == slow.tobytes()
    cl = x.cluster
    assert op.residual_gap_variance(xs, cl, influence=fast) == op.residual_gap_variance(xs, cl)
    # raw weights on the residual: nothing to hand out
    assert op.StackedDR().estimate(replace(x, stable_residual=False)).residual_influence is None


@pytest.mark.parametrize("budget", [None, 50])
@pytest.mark.parametrize("k_folds", [2, 5])
def test_simcal_with_a_cache_is_simcal_without(k_folds: int, budget: int | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # the jackknife's runs share one cache (fits, candidate tables and fold parts by order and
    # fold): every run's weights, mixture and reasons are those of a call without it, bit for
    # bit — for index rows that order the values alike (monotone calibrations) and ones that
    # do not, with a fold without rows, and with a memo budget too small to keep anything
    from cje.calibration import weights

    if budget is not None:
        monkeypatch.setattr(weights, "_FIT_MEMO_BUDGET", budget)
    rng = np.random.default_rng(3 + k_folds)
    n, n_codes = 300, 12
    s = rng.integers(0, n_codes, n)
    w = np.exp(0.4 * s + rng.normal(0, 1, n))
    w = w / w.mean()
    fold = rng.integers(0, k_folds, n)
    if k_folds == 5:
        fold[fold == 3] = 1  # fold 3 without rows
    y = np.where(rng.random(n) < 0.5, rng.random(n), np.nan)
    tb = np.arange(n_codes, dtype=float)
    cache: dict = {}
    for run in range(6):
        base = np.sort(rng.random(n_codes)) if run < 4 else rng.random(n_codes)  # run 4, 5: other orders
        index = np.vstack([np.clip(base + 0.01 * rng.normal(size=n_codes), 0, 1) if run % 2
                           else base for _ in range(k_folds)])
        for stable in (False, True):
            got = weights.simcal_weights(w, s, fold, index, y, tiebreak=tb, stable_residual=stable,
                                         cache=cache)
            want = weights.simcal_weights(w, s, fold, index, y, tiebreak=tb, stable_residual=stable)
            assert got.weights.tobytes() == want.weights.tobytes(), (run, stable)
            assert got.mixture.tobytes() == want.mixture.tobytes() and got.fallbacks == want.fallbacks


def _stacking_moments_reference(st, a_inc: np.ndarray, a_dec: np.ndarray, x: np.ndarray,
                      k: int, stable_residual: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """Second moments ``M = Σ_i φ_c,i φ_c',i`` of the three candidates' calibrated-IPS influence
    values over the rows outside fold ``k`` (and their point estimates), from cell sums.

    Candidate weights ``v``: the out-of-fold fits ``a_inc``/``a_dec`` (constant within a cell) and
    the raw weights. With ``e_i = (Y_i − x_u)/p_L`` on labelled rows:
    ``φ_c = (v_c/m_c)(x − ψ_c) + (w/m_w)(e − ē)`` (raw weights on the residual) or
    ``φ_c = (v_c/m_c)(x + e − ψ_c)`` (stabilised weights on the residual). Row-level moments: the
    stacking objective ignores correlation within a prompt (exact with one row per prompt).

    The plain form of ``cje.calibration.weights._stacking_moments`` (every pair's sums in full),
    the oracle of the test above.
    """
    keep = np.ones(st.N.shape[0], dtype=bool)
    keep[k] = False
    N, n_k, ip, Ly, Ly2, L1, Lw, Lwy, Lwy2, Lw2, Lw2y, Lw2y2, Sw, Sw2 = st.outside(k)
    ip2 = ip * ip
    xs = x[None, :]
    Se, See = ip * (Ly - xs * L1), ip2 * (Ly2 - 2 * xs * Ly + xs * xs * L1)
    Swe, Swee = ip * (Lwy - xs * Lw), ip2 * (Lwy2 - 2 * xs * Lwy + xs * xs * Lw)
    Sw2e, Sw2ee = ip * (Lw2y - xs * Lw2), ip2 * (Lw2y2 - 2 * xs * Lw2y + xs * xs * Lw2)
    a = (a_inc[keep], a_dec[keep])

    def pair(c: int, d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cell sums of v_c v_d, v_c v_d e and v_c v_d e²."""
        if c < 2 and d < 2:
            f = a[c] * a[d]
            return f * N, f * Se, f * See
        if c == 2 and d == 2:
            return Sw2, Sw2e, Sw2ee
        f = a[min(c, d)]
        return f * Sw, f * Swe, f * Swee

    tot_v = [float((a[0] * N).sum()), float((a[1] * N).sum()), float(Sw.sum())]
    sum_ve = [float((a[0] * Se).sum()), float((a[1] * Se).sum()), float(Swe.sum())]
    sum_vx = [float((a[0] * N * xs).sum()), float((a[1] * N * xs).sum()), float((Sw * xs).sum())]
    m = np.array(tot_v) / n_k
    if stable_residual:
        psi = (np.array(sum_vx) + np.array(sum_ve)) / np.array(tot_v)
    else:
        psi = np.array(sum_vx) / np.array(tot_v)
    M = np.empty((3, 3))
    if not stable_residual:
        m_w = m[2]
        e_bar = float(Swe.sum()) / (m_w * n_k)
        # Σ_cell v_c γ with γ = (w/m_w)(e − ē)
        vg = [a[0] * (Swe - e_bar * Sw) / m_w, a[1] * (Swe - e_bar * Sw) / m_w,
              (Sw2e - e_bar * Sw2) / m_w]
        gg = float((Sw2ee - 2 * e_bar * Sw2e + e_bar**2 * Sw2).sum()) / m_w**2
    for c in range(3):
        for d in range(c, 3):
            p0, p1, p2 = pair(c, d)
            dc, dd = xs - psi[c], xs - psi[d]
            if stable_residual:
                val = float((dc * dd * p0 + (dc + dd) * p1 + p2).sum()) / (m[c] * m[d])
            else:
                val = (float((dc * dd * p0).sum()) / (m[c] * m[d])
                       + float((dc * vg[c]).sum()) / m[c] + float((dd * vg[d]).sum()) / m[d] + gg)
            M[c, d] = M[d, c] = val
    return M, psi, n_k


def _apply_fold_reference(cands, ck, wk_raw, pi, k, mixture, msgs):
    """The plain form of ``cje.calibration.weights._apply_fold`` (the three parts gathered on the
    fold's rows, mixed by ``sum``), the oracle of the test below."""
    from cje.calibration.weights import _FLOOR, _usable_mixture

    parts = (cands[0][ck], cands[1][ck], wk_raw)
    means = np.array([float(part.mean()) for part in parts])
    pi, usable = _usable_mixture(means, pi, k, mixture, msgs)
    wk = sum(p * (part / m) for p, part, m, u in zip(pi, parts, means, usable, strict=True)
             if u and p > 0)
    wk = np.maximum(wk, _FLOOR)
    return wk / wk.mean()


@pytest.mark.parametrize("pi", [(1.0, 0.0, 0.0), (0.0, 0.3, 0.7), (0.2, 0.5, 0.3), (0.0, 0.0, 1.0),
                                (0.6, 0.4, 0.0)])
@pytest.mark.parametrize("dead", [None, 1])
def test_apply_fold_is_the_plain_mixture_bit_for_bit(pi: tuple, dead: int | None) -> None:
    # the candidates mixed on the distinct values and gathered once, the parts' means memoised:
    # the same weights, mixture and reasons as the three gathered parts mixed by sum(), in every
    # call (the first computes the means, the second reads them), with a candidate whose
    # weights are numerically zero on the fold's rows (its share moved to the others)
    from cje.calibration.weights import _apply_fold

    rng = np.random.default_rng(11)
    n, n_codes = 400, 9
    codes = rng.integers(0, n_codes, n)
    w = np.exp(rng.normal(0, 1, n))
    rows_k = np.flatnonzero(rng.random(n) < 0.3)
    cands = [np.sort(rng.random(n_codes)) + 0.1, np.sort(rng.random(n_codes))[::-1] + 0.1]
    if dead is not None:
        cands[dead] = np.full(n_codes, 1e-320)  # below the smallest normal number
    memo: dict = {}
    for _ in range(2):
        mix_a, mix_b = np.zeros((3, 3)), np.zeros((3, 3))
        msgs_a: list[str] = []
        msgs_b: list[str] = []
        got = _apply_fold(tuple(cands), codes[rows_k].astype(np.uint8), w, rows_k, np.array(pi), 2,
                          mix_a, msgs_a, memo, ("key",))
        want = _apply_fold_reference(tuple(cands), codes[rows_k], w[rows_k], np.array(pi), 2, mix_b,
                                     msgs_b)
        assert got.tobytes() == want.tobytes()
        assert mix_a.tobytes() == mix_b.tobytes() and msgs_a == msgs_b


def test_stacked_dr_value_is_its_estimates_value_bit_for_bit() -> None:
    # StackedDR.value skips the combined influence values: the same number as estimate().value,
    # over the runs of one cache (a full calibration, then fold-deleted ones)
    from dataclasses import replace

    from cje.estimators import offpolicy as op

    x = op._example_target()
    cache: dict = {"shared": {}}
    rng = np.random.default_rng(5)
    for run in range(4):
        index = np.clip(x.index + (0 if run == 0 else 0.02 * rng.normal(size=x.index.shape)), 0.01,
                        0.99)
        oof = index[x.fold, x.codes]
        xr = replace(x, index=index, oof=oof,
                     residual=np.where(x.labelled, np.nan_to_num(x.label) - oof, 0.0), cache=cache)
        xe = replace(xr, cache={"shared": {}})
        assert op.StackedDR().value(xr) == op.StackedDR().estimate(xe).value


def test_shared_scaled_residual_is_served_only_for_the_same_arrays() -> None:
    # targets sharing the pipeline's "shared" dict get one scaled residual per run, equal bit
    # for bit to the plain property; another residual array is never served the kept one
    from dataclasses import replace

    from cje.estimators import offpolicy as op

    x = op._example_target()
    shared: dict = {}
    a = replace(x, cache={"shared": shared})
    b = replace(x, cache={"shared": shared}, weights=x.weights[::-1].copy())
    got = a.scaled_residual
    assert b.scaled_residual is got and not got.flags.writeable
    assert got.tobytes() == op.OffPolicyRows.scaled_residual.fget(x).tobytes()
    c = replace(a, residual=x.residual * 2.0)
    assert c.scaled_residual.tolist() == (got * 2.0).tolist()
    assert replace(x, cache=None).scaled_residual.flags.writeable  # no cache: a fresh array


def test_simcal_with_a_shared_dict_is_simcal_without() -> None:
    # the parts without the weights (each fold's rows, the labelled cells, the weight-free cell
    # sums) computed once for two targets on the same rows: each target's weights, mixture and
    # reasons bit for bit those of a call without it, in every run; other rows are not served
    # the kept parts
    from cje.calibration import weights

    rng = np.random.default_rng(17)
    n, n_codes, k_folds = 500, 10, 5
    s = rng.integers(0, n_codes, n)
    fold = rng.integers(0, k_folds, n)
    y = np.where(rng.random(n) < 0.4, rng.random(n), np.nan)
    tb = np.arange(n_codes, dtype=float)
    ws = [np.exp(t * s / n_codes + rng.normal(0, 0.7, n)) for t in (0.5, -1.0)]
    ws = [w / w.mean() for w in ws]
    shared: dict = {}
    caches: list[dict] = [{}, {}]
    for run in range(3):
        index = np.vstack([np.sort(rng.random(n_codes)) for _ in range(k_folds)])
        for w, cache in zip(ws, caches, strict=True):
            got = weights.simcal_weights(w, s, fold, index, y, tiebreak=tb, cache=cache,
                                         shared=shared)
            want = weights.simcal_weights(w, s, fold, index, y, tiebreak=tb)
            assert got.weights.tobytes() == want.weights.tobytes(), run
            assert got.mixture.tobytes() == want.mixture.tobytes() and got.fallbacks == want.fallbacks
    kept = shared["simcal_rows"][1]
    s2 = s.copy()  # other codes (a new object): computed afresh, not served the kept parts
    s2[:50] = (s2[:50] + 1) % n_codes
    got = weights.simcal_weights(ws[0], s2, fold, index, y, tiebreak=tb, cache={}, shared=shared)
    want = weights.simcal_weights(ws[0], s2, fold, index, y, tiebreak=tb)
    assert got.weights.tobytes() == want.weights.tobytes()
    assert shared["simcal_rows"][1] is not kept
