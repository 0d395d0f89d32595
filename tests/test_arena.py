"""The real Arena sample (cje-eval formats), the copy shipped in cje.datasets (conftest.py)."""

from __future__ import annotations

import numpy as np
import pytest

import cje

POLICIES = ["base", "clone", "parallel_universe_prompt", "unhelpful"]
TARGETS = POLICIES[1:]


def _probes(arena):
    return {p: arena / "probe_slice" / f"{p}_probe.jsonl" for p in TARGETS}


def test_arena_direct_estimates_all_policies(arena):
    rep = cje.analyze(arena / "fresh_draws")
    assert [e.policy for e in rep.estimates] == POLICIES
    for e in rep.estimates:
        assert e.n == 1000
        assert 0 <= e.ci_low < e.estimate < e.ci_high <= 1
    assert rep["base"].n_labels == 480 and rep["clone"].n_labels == 0
    # only base has labels: the other levels rest on transport, so they carry calibration variance
    assert rep["clone"].calibration_share > 0.5
    assert rep["clone"].status == "CAUTION"
    assert rep.calibration.n_labels == 480


def test_arena_transport_audit_flags_unhelpful(arena):
    # audit only (probe_correction=False): a FAIL refuses the level
    rep = cje.analyze(arena / "fresh_draws", probes=_probes(arena), transport_margin=0.05,
                      probe_correction=False)
    audits = {a.policy: a for a in rep.audits}
    assert audits["unhelpful"].verdict == "FAIL"
    assert audits["unhelpful"].delta < -0.1  # the judge overstates its quality
    assert audits["clone"].verdict != "FAIL" and audits["parallel_universe_prompt"].verdict != "FAIL"
    assert rep["unhelpful"].status == "REFUSED"
    assert "not reliable" in " ".join(rep["unhelpful"].reasons)
    assert "FAIL" in rep.summary()
    hidden = rep.to_pandas(reliable_only=True)
    assert "unhelpful" not in set(hidden.policy)
    # reliable_only hides, never changes, a number
    full = rep.to_pandas().set_index("policy")
    np.testing.assert_array_equal(hidden.set_index("policy").estimate, full.loc[hidden.policy].estimate)


def test_arena_audit_without_margin_is_not_graded(arena):
    rep = cje.analyze(arena / "fresh_draws", probes=_probes(arena))
    assert {a.verdict for a in rep.audits} == {"NOT GRADED"}


def test_arena_audit_delta_by_hand(arena):
    """δ = mean(Y − f(S)) on the probe slice, with f the isotonic fit on all base labels."""
    import json

    from sklearn.isotonic import IsotonicRegression

    rows = [json.loads(x) for x in open(arena / "fresh_draws" / "base_responses.jsonl")]
    lab = [r for r in rows if r.get("oracle_label") is not None]
    f = IsotonicRegression(out_of_bounds="clip").fit(
        [r["judge_score"] for r in lab], [r["oracle_label"] for r in lab]
    )
    probe = [json.loads(x) for x in open(arena / "probe_slice" / "unhelpful_probe.jsonl")]
    delta = np.mean([r["oracle_label"] - f.predict([r["judge_score"]])[0] for r in probe])
    rep = cje.analyze(arena / "fresh_draws", probes=_probes(arena), mode="monotone")
    got = {a.policy: a for a in rep.audits}["unhelpful"]
    assert got.delta == pytest.approx(delta, abs=1e-12)


def test_arena_logged_data_is_analysed_off_policy(arena):
    # logged data with log-probabilities: the logging policy's on-policy value plus each target
    # off-policy (calibrated IPS without fresh draws)
    rep = cje.analyze(arena / "logged_data.jsonl")
    assert [e.policy for e in rep.estimates] == ["base", "clone", "parallel_universe_prompt",
                                                 "unhelpful"]
    assert rep["base"].n == 1000 and rep["base"].n_labels == 480
    assert rep["base"].method == "on-policy (logged)"
    assert {e.method for e in rep.estimates[1:]} == {"calibrated-ips"}


# ---- off-policy: logged data + fresh draws ------------------------------------------------------
OFFPOLICY = ["ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr", "direct"]


@pytest.fixture(scope="module")
def arena_offpolicy(arena):
    return {est: cje.analyze(arena / "logged_data.jsonl", fresh_draws=arena / "fresh_draws",
                             estimator=est) for est in OFFPOLICY}


def _probe_ci(arena, policy):
    import json

    from scipy import stats

    y = np.array([json.loads(x)["oracle_label"]
                  for x in open(arena / "probe_slice" / f"{policy}_probe.jsonl")])
    half = stats.t.ppf(0.975, y.size - 1) * y.std(ddof=1) / np.sqrt(y.size)
    return y.mean() - half, y.mean() + half


def test_arena_every_offpolicy_estimator_reports_every_target(arena_offpolicy):
    for est, rep in arena_offpolicy.items():
        assert [e.policy for e in rep.estimates] == POLICIES, est
        for t in TARGETS:
            e = rep[t]
            assert e.method == est
            assert np.isfinite([e.estimate, e.ci_low, e.ci_high, e.var_if, e.var_cal]).all(), est
            assert e.status in ("OK", "CAUTION", "REFUSED")
        if est == "direct":
            continue
        table = rep.diagnostics("overlap")
        assert table["policy"].tolist() == TARGETS
        for col in ("ess_raw", "hill_raw", "ttc", "affinity", "cle", "status", "reasons"):
            assert table[col].notna().all(), (est, col)
        if est not in ("ips", "snips"):
            assert table["ess_stable"].notna().all()
        assert "Overlap of the logged data" in rep.summary()


def test_arena_simcal_raises_ess_in_the_papers_direction(arena_offpolicy):
    # CJE paper Table 3: SIMCal-W lifts parallel_universe_prompt's ESS from under 5% to over 50%
    d = arena_offpolicy["calibrated-ips"].diagnostics("overlap").set_index("policy")
    assert d.loc["parallel_universe_prompt", "ess_raw"] < 0.05
    assert d.loc["parallel_universe_prompt", "ess_stable"] > 0.5
    assert (d["ess_stable"] > d["ess_raw"]).all()


def test_arena_unhelpful_is_flagged_by_every_weighted_estimator(arena_offpolicy):
    for est in ("ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr"):
        e = arena_offpolicy[est]["unhelpful"]
        assert e.status != "OK", est
        assert any("poor overlap" in r for r in e.reasons), est


def test_arena_dr_estimates_agree_with_the_probe_slices(arena, arena_offpolicy):
    # The probe slices (n = 50, all labelled) are the only ground truth for the targets. With the
    # default residual_weights="auto", every DR point estimate lands inside the probe slice's 95%
    # interval and every DR interval covers the probe mean. Both targets weight their oracle
    # residual by the stabilised weights: clone because the largest raw weights dominate (raw ESS
    # 21.5% but Hill tail index 0.76 < 1; 0.759 vs [0.721, 0.838], raw weights gave 0.727),
    # parallel_universe_prompt because its raw ESS is 0.3% (0.762–0.785 vs [0.727, 0.846]); each
    # says so in its CAUTION reason, and its interval adds gap² + Var(gap) (the gap between the raw-
    # and the stabilised-weight residual corrections) as an allowance for the transport assumption.
    for t in ("clone", "parallel_universe_prompt"):
        lo, hi = _probe_ci(arena, t)
        for est in ("dr-cpo", "tmle", "mrdr", "stacked-dr"):
            e = arena_offpolicy[est][t]
            assert lo < e.estimate < hi, (est, t, lo, hi, e.estimate)
            assert e.diagnostics["residual_weights"] == "stable", (est, t)
            why = "largest weights dominate" if t == "clone" else "raw-weight ESS"
            assert any(why in r and "transports" in r for r in e.reasons), (est, t, e.reasons)
            assert e.status == "CAUTION" and e.var_transport > 0, (est, t)
            assert e.ci_low < (lo + hi) / 2 < e.ci_high, (est, t)
    # residual_weights="raw" everywhere: no transport assumption, but the residual rests on a few
    # labelled rows (parallel_universe_prompt: one holds 9% of the weight): clone moves down to
    # 0.727 and its interval ([0.682, 0.772]) misses the probe mean, parallel_universe_prompt's
    # to 0.705 with an interval that still overlaps the probe slice's.
    rep = {est: cje.analyze(arena / "logged_data.jsonl", fresh_draws=arena / "fresh_draws",
                            estimator=est, residual_weights="raw")
           for est in ("dr-cpo", "tmle", "mrdr", "stacked-dr")}
    for est, r in rep.items():
        for t in ("clone", "parallel_universe_prompt"):
            lo, hi = _probe_ci(arena, t)
            assert r[t].diagnostics["residual_weights"] == "raw" and r[t].var_transport == 0
            assert r[t].ci_low < hi and lo < r[t].ci_high, (est, t, lo, hi, r[t])
        assert r["clone"].estimate < arena_offpolicy[est]["clone"].estimate - 0.02, est


def test_arena_offpolicy_with_probes_refuses_unhelpful(arena):
    # audit only (probe_correction=False): a FAIL refuses the level
    rep = cje.analyze(arena / "logged_data.jsonl", fresh_draws=arena / "fresh_draws",
                      probes=_probes(arena), transport_margin=0.05, probe_correction=False)
    assert rep.settings["estimator"] == "stacked-dr"  # auto with fresh draws
    assert rep["unhelpful"].status == "REFUSED"
    assert {a.policy: a.verdict for a in rep.audits}["unhelpful"] == "FAIL"
    shown = rep.to_pandas(reliable_only=True)
    assert "unhelpful" not in shown["policy"].tolist()
    full = rep.to_pandas().set_index("policy")
    for _, row in shown.iterrows():
        assert row["estimate"] == full.loc[row["policy"], "estimate"]


def test_arena_offpolicy_report_round_trips_through_json(arena_offpolicy):
    # NaN diagnostics (no stabilised weights for SNIPS) must not break the round trip
    rep = arena_offpolicy["snips"]
    assert np.isnan(rep["clone"].diagnostics["ess_stable"])
    assert cje.Report.from_json(rep.to_json()) == rep
    assert cje.Report.from_json(arena_offpolicy["stacked-dr"].to_json()) != rep
