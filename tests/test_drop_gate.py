"""Rows dropped as invalid (``on_invalid="drop"``) caution the level they could move.

Dropped rows have no judge score, so nothing tells a drop at random from one concentrated on
some responses (e.g. judge calls failing on hard prompts): the level is cautioned on the worst
case alone, their share of the label range against half its standard error
(``simulations/results/independent_drop.md``)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import cje
from cje.diagnostics.gates import EXCLUDED_SHIFT_SE

KW = dict(judge_scale=(0, 10), label_scale=(1, 5), on_invalid="drop")


def _data(share: float = 0.15, policy: str = "verbose"):
    """The synthetic direct data with ``share`` of ``policy``'s judge scores empty, the rows of
    its hardest prompts (lowest judge scores) — a judge that fails where answers are worst."""
    d = cje.synthetic.make_direct_eval(300, rng=0).data.copy()
    mine = np.flatnonzero((d["policy"] == policy).to_numpy())
    worst = mine[np.argsort(d["judge_score"].to_numpy()[mine], kind="stable")]
    d.loc[d.index[worst[: int(share * mine.size)]], "judge_score"] = np.nan
    return d


def _analyze(data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, **KW, **kw)


def test_dropped_rows_caution_their_level_and_name_count_share_and_fix() -> None:
    rep = _analyze(_data())
    e = rep["verbose"]
    assert e.status == "CAUTION"
    why = [r for r in e.reasons if "dropped as invalid" in r]
    assert len(why) == 1
    assert "45 of its 300 rows (15%)" in why[0]
    assert "Re-score the failed rows" in why[0] and "smaller population" in why[0]
    assert e.diagnostics["n_dropped_invalid"] == 45
    # the other policies lost no rows: no such reason
    for other in rep.estimates:
        if other.policy != "verbose":
            assert not any("dropped as invalid" in r for r in other.reasons)
            assert "n_dropped_invalid" not in other.diagnostics


@pytest.mark.parametrize("engine", ["polars", "dask"])
def test_same_status_and_reason_out_of_core(engine: str) -> None:
    data = _data()
    if engine == "polars":
        src = pytest.importorskip("polars").from_pandas(data).lazy()
    else:
        src = pytest.importorskip("dask.dataframe").from_pandas(data, npartitions=3)
    mem = _analyze(data)
    out = _analyze(src, engine=engine)
    assert any("dropped as invalid" in r for r in out["verbose"].reasons)
    for a, b in zip(mem.estimates, out.estimates, strict=True):
        assert a.policy == b.policy and a.status == b.status
        assert [r for r in a.reasons if "dropped" in r] == [r for r in b.reasons if "dropped" in r]
        assert a.diagnostics.get("n_dropped_invalid") == b.diagnostics.get("n_dropped_invalid")


def test_dropped_rows_gate_threshold() -> None:
    from cje.diagnostics.gates import dropped_rows_gate

    se = 0.02
    # the worst case q against EXCLUDED_SHIFT_SE standard errors, on either side of it
    n = 10_000
    k_at = int(EXCLUDED_SHIFT_SE * se * n)
    assert dropped_rows_gate(k_at, n - k_at, se) == ("OK", None)
    assert dropped_rows_gate(k_at + 2, n - k_at - 2, se)[0] == "CAUTION"
    assert dropped_rows_gate(0, n, se) == ("OK", None)
    assert dropped_rows_gate(50, n, float("nan")) == ("OK", None)


def test_no_drop_no_reason() -> None:
    rep = _analyze(cje.synthetic.make_direct_eval(300, rng=0).data)
    assert rep.excluded == {}
    assert not any("dropped as invalid" in r for e in rep.estimates for r in e.reasons)


@pytest.mark.parametrize("engine", ["memory", "polars", "dask"])
def test_a_policy_all_of_whose_rows_were_dropped_is_named(engine: str) -> None:
    """Before: 'improved' vanished from the report, which said only how many rows were dropped."""
    data = _data(share=1.0, policy="improved")
    if engine == "polars":
        data = pytest.importorskip("polars").from_pandas(data).lazy()
    elif engine == "dask":
        data = pytest.importorskip("dask.dataframe").from_pandas(data, npartitions=3)
    rep = _analyze(data, **({} if engine == "memory" else {"engine": engine}))
    assert "improved" not in [e.policy for e in rep.estimates]
    said = [w for w in rep.warnings if "'improved' (300 rows)" in w]
    assert len(said) == 1 and "every row" in said[0] and "Re-score" in said[0]
    assert "improved" in rep.summary()
    # a policy that keeps some rows is not named as missing
    assert not any("No estimate for" in w for w in _analyze(_data()).warnings)


def test_logged_rows_dropped_caution_every_level() -> None:
    """Logged data: the judge failed on the lowest-scored 15% of the logged rows. Before, the
    logging policy's level was OK at 0.569 [0.548, 0.589] against its true value 0.5 (and two
    targets OK and as far off): every level reads the same logged rows, so each is judged by
    their dropped share."""
    ev = cje.synthetic.make_offpolicy_eval(1000, oracle_fraction=0.2, rng=1)
    d = ev.logged.copy()
    worst = np.argsort(d["judge_score"].to_numpy(), kind="stable")[:150]
    d.loc[d.index[worst], "judge_score"] = np.nan
    for estimator, fresh in (("auto", ev.fresh), ("snips", None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(d, judge_scale=ev.judge_scale, label_scale=ev.label_scale,
                              on_invalid="drop", fresh_draws=fresh, estimator=estimator)
        assert rep["base"].ci_low > ev.truth["base"]  # the drop moved it: the interval misses
        for e in rep.estimates:
            assert e.status != "OK", (estimator, e.policy)
            assert any("150 of its 1000 rows (15%)" in r for r in e.reasons)
            assert e.diagnostics["n_dropped_invalid"] == 150


@pytest.mark.parametrize("argument", ["fresh_draws", "probes", "calibration"])
def test_invalid_rows_of_other_inputs_do_not_offer_on_invalid(argument: str) -> None:
    """Before: a NaN judge score in fresh_draws= (or probes=, calibration=) was refused with
    "... or pass on_invalid='drop'", and passing it changed nothing (it applies to the data only)."""
    if argument == "fresh_draws":
        ev = cje.synthetic.make_offpolicy_eval(300, oracle_fraction=0.2, rng=1)
        other = ev.fresh.copy()
        data, kw = ev.logged, dict(judge_scale=ev.judge_scale, label_scale=ev.label_scale)
    else:
        sim = cje.synthetic.make_direct_eval(200, rng=0).data
        data, kw = sim, dict(judge_scale=(0, 10), label_scale=(1, 5))
        other = sim[sim["oracle_label"].notna()].head(30).copy()
    other.loc[other.index[3], "judge_score"] = np.nan
    given = {"probes": {"verbose": other}} if argument == "probes" else {argument: other}
    for on_invalid in ("raise", "drop"):
        with pytest.raises(cje.CJEInputError) as err:
            cje.analyze(data, **kw, **given, on_invalid=on_invalid)
        msg = str(err.value)
        assert "on_invalid='drop' to exclude" not in msg
        assert "applies to the data argument only" in msg and "or remove such rows from" in msg
