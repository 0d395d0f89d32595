"""Probe labels that correct a policy's level (cje.pipeline.probes): estimates, variances and
degrees of freedom against hand computations, the contrasts, the gates, the option."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
import cje.pipeline.direct as direct_mod
import cje.pipeline.logged as logged_mod
from cje.estimators.direct import direct_estimate
from cje.inference import cluster_variance, jackknife_variance
from cje.synthetic.direct import make_direct_eval
from cje.synthetic.offpolicy import make_offpolicy_eval, theta_for_ess

SCALES = {"judge_scale": (0, 10), "label_scale": (1, 5)}
WIDTH = 4.0


def _probe(policy: str, m: int, seed: int) -> pd.DataFrame:
    """``m`` fully labelled responses of ``policy`` on prompts of their own."""
    d = make_direct_eval(m, oracle_fraction=1.0, rng=seed).data
    return d[d["policy"] == policy].assign(prompt_id=lambda x: "probe:" + x["prompt_id"])


def _capture(monkeypatch: pytest.MonkeyPatch, module) -> dict:
    """Keep the shape and the calibrator the pipeline hands to core.estimate."""
    seen: dict = {}
    real = module.estimate

    def spy(shape, calibrator, **kw):
        seen.update(shape=shape, cal=calibrator)
        return real(shape, calibrator, **kw)

    monkeypatch.setattr(module, "estimate", spy)
    return seen


def _base_only(n: int = 300, seed: int = 0, frac: float = 0.3):
    sim = make_direct_eval(n, oracle_fraction=frac, rng=seed)
    data = sim.data.assign(oracle_label=sim.data["oracle_label"].where(sim.data["policy"] == "base"))
    return sim, data


# ---- direct ----------------------------------------------------------------------------------
def test_direct_probe_correction_by_hand(monkeypatch):
    """No own labels: ψ = mean_D f(S) + mean_P (Y − f(S)); Var_IF = Var(main) + Var(probe mean);
    Var_cal = jackknife of that whole expression over the fold-deleted calibrations; df by the
    three-component Satterthwaite formula."""
    sim, data = _base_only()
    probe = _probe("verbose", 40, seed=5)
    seen = _capture(monkeypatch, direct_mod)
    rep = cje.analyze(data, probes={"verbose": probe}, mode="monotone", **SCALES)
    e = rep["verbose"]
    cal, shape = seen["cal"], seen["shape"]
    pol = data[data["policy"] == "verbose"]
    s_d = (pol["judge_score"].to_numpy() - 0) / 10
    cl_d = pd.factorize(pol["prompt_id"])[0]
    s_p = probe["judge_score"].to_numpy() / 10
    y_p = (probe["oracle_label"].to_numpy() - 1) / WIDTH
    cl_p = np.arange(s_p.size) + 10_000

    def psi(f):
        return f(s_d).mean() + (y_p - f(s_p)).mean()

    f = cal.predictor()
    r, resid = f(s_d), y_p - f(s_p)
    assert e.estimate == pytest.approx(1 + WIDTH * psi(f), abs=1e-12)
    v_main = cluster_variance(r - r.mean(), cl_d)[0]
    v_probe = cluster_variance(resid - resid.mean(), cl_p)[0]
    assert e.var_if == pytest.approx(WIDTH**2 * (v_main + v_probe), rel=1e-10)
    reps = np.array([psi(cal.predictor(frozenset({d}))) for d in range(cal.n_folds_)])
    vc = float(jackknife_variance(reps))
    assert e.var_cal == pytest.approx(WIDTH**2 * vc, rel=1e-9)
    k, g_d, g_p = cal.n_folds_, np.unique(cl_d).size, s_p.size
    df = (v_main + v_probe + vc) ** 2 / (v_main**2 / (g_d - 1) + v_probe**2 / (g_p - 1)
                                         + vc**2 / (k - 1))
    assert e.df == pytest.approx(df, rel=1e-9)
    assert e.n == pol.shape[0] + 40 and e.n_prompts == g_d + g_p and e.n_labels == 40
    assert e.diagnostics["probe_labels"] == 40 and e.diagnostics["probe_weight"] == 1.0
    assert shape.probe_names == ["verbose"]


def test_direct_probe_pooled_with_own_labels_by_hand(monkeypatch):
    """Own labels and a probe: ψ = mean_D R + λ ē_own + (1 − λ) ē_P, λ = m/(m + n_P); the own
    term and its influence are the direct estimator's (augmented minus plug-in)."""
    sim = make_direct_eval(300, oracle_fraction=0.2, rng=1)
    probe = _probe("small", 30, seed=6)
    seen = _capture(monkeypatch, direct_mod)
    rep = cje.analyze(sim.data, probes={"small": probe}, mode="monotone", **SCALES)
    e, cal, shape = rep["small"], seen["cal"], seen["shape"]
    t = shape.table
    rows = np.arange(t.s.size)[shape._rows[shape.names.index("small")]]  # (a slice or indices)
    calib = cal.calibration()
    reward = calib.predict(t.s, t.X)
    residual = np.zeros_like(reward)
    residual[t.train] = t.y[t.train] - calib.oof
    lab = np.zeros(t.s.size, bool)
    lab[t.train] = True
    one = np.zeros(rows.size, dtype=np.int64)
    aug = direct_estimate(reward[rows], residual[rows], lab[rows], one, 1)
    plug = direct_estimate(reward[rows], residual[rows], lab[rows], one, 1, augment=False)
    m = int(lab[rows].sum())
    lam = m / (m + 30)
    e_own = aug.values[0] - plug.values[0]
    assert e_own == pytest.approx(residual[rows][lab[rows]].mean(), abs=1e-12)  # mean own residual
    prow = shape.probe_rows()[0]
    resid_p = t.y[prow] - reward[prow]
    want = plug.values[0] + lam * e_own + (1 - lam) * resid_p.mean()
    assert e.estimate == pytest.approx(1 + WIDTH * want, abs=1e-12)
    phi_main = plug.influence + lam * (aug.influence - plug.influence)
    v = (cluster_variance(phi_main, t.cluster[rows])[0]
         + cluster_variance((1 - lam) * (resid_p - resid_p.mean()), t.cluster[prow])[0])
    assert e.var_if == pytest.approx(WIDTH**2 * v, rel=1e-10)
    assert e.diagnostics["probe_weight"] == pytest.approx(1 - lam)
    assert "pooled with its" in e.reasons[0]


def test_probe_correction_false_is_todays_estimate():
    """probe_correction=False: the probe only audits — the numbers are those without a probe."""
    sim, data = _base_only()
    probe = _probe("verbose", 40, seed=5)
    plain = cje.analyze(data, **SCALES)
    off = cje.analyze(data, probes={"verbose": probe}, probe_correction=False, **SCALES)
    on = cje.analyze(data, probes={"verbose": probe}, **SCALES)
    for p in ("verbose", "concise"):
        assert off[p].estimate == plain[p].estimate and off[p].se == plain[p].se
    assert on["concise"].estimate == plain["concise"].estimate  # only verbose has a probe
    assert on["verbose"].estimate != plain["verbose"].estimate
    assert off.settings["probe_correction"] is False and on.settings["probe_correction"] is True
    # the audit is the same either way: computed before the correction
    assert off.audits == on.audits


def test_plug_in_direct_estimator_is_not_corrected():
    """DirectEstimator(augment=False) has no residual term: the probe only audits."""
    sim, data = _base_only()
    probe = _probe("verbose", 40, seed=5)
    est = cje.estimators.DirectEstimator(augment=False)
    a = cje.analyze(data, probes={"verbose": probe}, estimator=est, **SCALES)
    b = cje.analyze(data, estimator=est, **SCALES)
    assert a["verbose"].estimate == b["verbose"].estimate


def test_contrast_variance_adds_the_probe(monkeypatch):
    """base (own labels) − verbose (probe-corrected): the probe prompts are verbose's own
    clusters, so the contrast's Var_IF is the paired main part's plus the probe mean's. The
    pipeline's per-prompt totals carry G/(G−1) factors of each policy's own prompts where the
    contrast applies one of the union's; at G ≈ 340 they differ by < 1/300, hence rel=0.01."""
    sim, data = _base_only()
    probe = _probe("verbose", 40, seed=5)
    seen = _capture(monkeypatch, direct_mod)
    rep = cje.analyze(data, probes={"verbose": probe}, mode="monotone", **SCALES)
    (c,) = [c for c in rep.pairs if {c.policy_a, c.policy_b} == {"base", "verbose"}]
    shape, cal = seen["shape"], seen["cal"]
    t = shape.table
    calib = cal.calibration()
    reward = calib.predict(t.s, t.X)
    residual = np.zeros_like(reward)
    residual[t.train] = t.y[t.train] - calib.oof
    lab = np.zeros(t.s.size, bool)
    lab[t.train] = True
    rb, rv = (np.arange(t.s.size)[shape._rows[p]] for p in (0, shape.names.index("verbose")))
    one = np.zeros(rb.size, dtype=np.int64)
    phi_b = direct_estimate(reward[rb], residual[rb], lab[rb], one, 1).influence
    phi_v = reward[rv] - reward[rv].mean()
    G = shape.n_clusters
    diff = (np.bincount(t.cluster[rb], phi_b, G) / rb.size
            - np.bincount(t.cluster[rv], phi_v, G) / rv.size)
    prow = shape.probe_rows()[0]
    e = t.y[prow] - reward[prow]
    v_main = float((diff**2).sum())
    v_probe = cluster_variance(e - e.mean(), t.cluster[prow])[0]
    assert c.var_if == pytest.approx(WIDTH**2 * (v_main + v_probe), rel=0.01)
    assert v_probe > 0.3 * v_main  # the probe is a real part of it, not a rounding error
    # degrees of freedom: the probe part is a component of its own with 40 − 1 df (as in the
    # policy's own interval), not part of the ~340 shared prompts'
    n_p = np.unique(t.cluster[prow]).size
    vi, vc = c.var_if / WIDTH**2, c.var_cal / WIDTH**2
    iv = shape.names.index("verbose")
    use = shape.policy(iv, *shape.run(cal, frozenset())[iv]).probe
    assert use.n_prompts == n_p
    g_pair = np.unique(np.concatenate([t.cluster[rb], t.cluster[rv], t.cluster[prow]])).size
    # base's own-label residual part is a component too, with its labelled prompts − 1 df (its
    # factor m/(m−1) in place of the pair's is inside the rel=0.01 above)
    part = phi_b - (reward[rb] - reward[rb].mean())
    m_b = np.unique(t.cluster[rb][lab[rb]]).size
    v_own = m_b / (m_b - 1) * float(((np.bincount(t.cluster[rb], part, G) / rb.size) ** 2).sum())
    v_d = max(vi - use.var - v_own, 0.0)
    df = (vi + vc) ** 2 / (v_d**2 / (g_pair - n_p - 1) + use.var**2 / (n_p - 1)
                           + v_own**2 / (m_b - 1) + vc**2 / 4)
    assert c.df == pytest.approx(df, rel=1e-9)
    assert c.df < 0.5 * (g_pair - 1)  # far from the shared prompts' count


# ---- gates -------------------------------------------------------------------------------------
def test_gates_with_and_without_probe_correction():
    """verbose's judge bonus breaks transport: its audit FAILs. Audit only: REFUSED. Corrected
    by a 50-label probe: OK, the reason naming the probe and the failed audit. A 15-label probe:
    CAUTION. No probe and no labels: CAUTION (unchanged)."""
    sim, data = _base_only(n=600, seed=2)
    big, tiny = _probe("verbose", 50, seed=9), _probe("verbose", 15, seed=8)
    kw = {"transport_margin": 0.1, **SCALES}
    audit_only = cje.analyze(data, probes={"verbose": big}, probe_correction=False, **kw)
    assert {a.policy: a.verdict for a in audit_only.audits}["verbose"] == "FAIL"
    assert audit_only["verbose"].status == "REFUSED"
    corr = cje.analyze(data, probes={"verbose": big}, **kw)
    v = corr["verbose"]
    assert {a.policy: a.verdict for a in corr.audits}["verbose"] == "FAIL"
    assert v.status == "OK"
    assert v.reasons[0].startswith("level corrected by its 50 probe labels (the judge-only "
                                   "calibration failed the transport audit, δ = ")
    assert corr["concise"].status == "CAUTION"  # no labels, no probe: as before
    assert any("no oracle labels of its own" in r for r in corr["concise"].reasons)
    small = cje.analyze(data, probes={"verbose": tiny}, **kw)["verbose"]
    assert small.status == "CAUTION"
    assert small.reasons[0].startswith("level corrected by only 15 probe labels, fewer than 30")


def test_out_of_range_scores_caution_a_corrected_level():
    """Judge scores beyond the labelled range refuse an uncorrected level and caution a
    corrected one (the probe's residuals correct the extrapolated calibration on average)."""
    sim, data = _base_only(n=400, seed=3)
    keep = (data["policy"] != "base") | (data["judge_score"].between(2, 8))
    data = data[keep]
    probe = _probe("improved", 50, seed=9)
    plain = cje.analyze(data, probes={"improved": probe}, probe_correction=False, **SCALES)
    assert plain["improved"].status == "REFUSED"
    corr = cje.analyze(data, probes={"improved": probe}, **SCALES)["improved"]
    assert corr.status == "CAUTION"
    assert any("its probe labels correct the level" in r for r in corr.reasons)


# ---- off-policy ----------------------------------------------------------------------------------
def _offpolicy(seed: int = 0):
    targets = {"far": theta_for_ess(0.05)}
    sim = make_offpolicy_eval(600, targets=targets, oracle_fraction=0.2, judge_noise=0.2, rng=seed)
    ps = make_offpolicy_eval(50, targets=targets, judge_noise=0.2, fresh_oracle_fraction=1.0,
                             rng=seed + 100)
    probe = ps.fresh[ps.fresh["policy"] == "far"].assign(prompt_id=lambda d: "probe:" + d["prompt_id"])
    return sim, probe


def test_offpolicy_snips_probe_correction_by_hand(monkeypatch):
    """SNIPS corrected: ψ = Σ w f(S)/Σ w + mean_P (Y − f(S)) — the weighted logged residual
    term replaced by the probe's; Var_IF = cluster_variance(w (f(S) − ψ_R)) + Var(probe mean);
    Var_cal the jackknife of the whole expression; no transport gap."""
    sim, probe = _offpolicy()
    seen = _capture(monkeypatch, logged_mod)
    rep = cje.analyze(sim.logged, estimator="snips", probes={"far": probe}, mode="monotone",
                      judge_scale=(0, 1), label_scale=(0, 1))
    e, shape, cal = rep["far"], seen["shape"], seen["cal"]
    t, tg = shape.table, shape.targets[0]
    prow = shape.probe_rows()[0]

    def parts(f):
        r = f(t.s[tg.rows])
        psi_r = float((tg.w * r).sum() / tg.w.sum())
        resid = t.y[prow] - f(t.s[prow])
        return psi_r, r, resid

    psi_r, r, resid = parts(cal.predictor())
    assert e.estimate == pytest.approx(psi_r + resid.mean(), abs=1e-12)
    v = (cluster_variance(tg.w * (r - psi_r), t.cluster[tg.rows])[0]
         + cluster_variance(resid - resid.mean(), t.cluster[prow])[0])
    assert e.var_if == pytest.approx(v, rel=1e-10)
    reps = []
    for d in range(cal.n_folds_):
        a, _, b = parts(cal.predictor(frozenset({d})))
        reps.append(a + b.mean())
    assert e.var_cal == pytest.approx(float(jackknife_variance(np.array(reps))), rel=1e-9)
    assert e.var_transport == 0.0 and e.diagnostics["residual_weights"] == "probe"


@pytest.mark.parametrize("est", ["stacked-dr", "dr-cpo", "tmle", "mrdr", "calibrated-ips"])
def test_offpolicy_probe_replaces_the_residual_term(est, monkeypatch):
    """Every DR estimator and calibrated IPS: the corrected estimate is the estimator with its
    residual term zeroed plus the probe's mean residual, under the full calibration; the
    audit still reports δ for the judge-only calibration."""
    sim, probe = _offpolicy(1)
    seen = _capture(monkeypatch, logged_mod)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=est, probes={"far": probe},
                          transport_margin=0.02, judge_scale=(0, 1), label_scale=(0, 1))
    shape, cal = seen["shape"], seen["cal"]
    t = shape.table
    full = cal.predictor()(t.distinct_s, t.distinct_X)
    index = np.vstack([cal.predictor(frozenset({k}))(t.distinct_s, t.distinct_X)
                       for k in range(cal.n_folds_)])
    tg, st = shape.targets[0], shape._static[0]
    reward, oof, resid, lab = shape._rows(st, full, index)
    x = logged_mod.LoggedTarget(
        reward=reward, residual=np.zeros_like(resid), labelled=lab, weights=tg.w, log_w=tg.log_w,
        oof=oof, label=st["label"], cluster=st["cluster"], fold=st["fold"], codes=st["codes"],
        stable_residual=tg.stable_residual, index=index, distinct_s=t.distinct_s, full=full,
        used=tg.used, used_codes=tg.used_codes, fresh_cluster=st["fresh_cluster"],
        fresh_fold=st["fresh_fold"], fresh_codes=st["fresh_codes"], fresh_label=st["fresh_label"],
        fresh_count=tg.fresh_count)
    plug = shape.estimator.estimate(x)
    prow = shape.probe_rows()[0]
    e_bar = float((t.y[prow] - full[t.codes[prow]]).mean())
    assert rep["far"].estimate == pytest.approx(plug.value + e_bar, abs=1e-12)
    audit = {a.policy: a for a in rep.audits}["far"]
    assert audit.delta == pytest.approx(e_bar, abs=1e-12)
    assert rep["far"].var_transport == 0.0
    assert any(r.startswith("level corrected by its 50 probe labels") for r in rep["far"].reasons)


def test_corrected_report_round_trips_through_json():
    sim, data = _base_only()
    rep = cje.analyze(data, probes={"verbose": _probe("verbose", 40, seed=5)}, **SCALES)
    assert cje.Report.from_json(rep.to_json()) == rep
    assert rep["verbose"].diagnostics["probe_labels"] == 40


def test_logging_policy_probe_pools_with_its_logged_labels(monkeypatch):
    """Logged data: a probe of the logging policy pools with its labelled logged rows, as in
    the direct shape (λ = m/(m + n_P) on the mean out-of-fold residual of its own labels)."""
    sim = make_offpolicy_eval(400, oracle_fraction=0.2, rng=3)
    ps = make_offpolicy_eval(40, fresh_oracle_fraction=1.0, rng=4)
    probe = ps.fresh[ps.fresh["policy"] == "base"].assign(prompt_id=lambda d: "probe:" + d["prompt_id"])
    seen = _capture(monkeypatch, logged_mod)
    rep = cje.analyze(sim.logged, estimator="snips", probes={"base": probe}, mode="monotone",
                      judge_scale=(0, 1), label_scale=(0, 1))
    shape, cal = seen["shape"], seen["cal"]
    t, rows = shape.table, shape.logged_rows
    f = cal.predictor()
    lab = ~np.isnan(t.y[rows])
    oof = cal.calibration().oof  # training rows in table order: the labelled logged rows
    assert np.array_equal(t.train, rows[lab])
    e_own = float((t.y[rows][lab] - oof).mean())
    prow = shape.probe_rows()[0]
    e_p = t.y[prow] - f(t.s[prow])
    lam = lab.sum() / (lab.sum() + prow.size)
    want = f(t.s[rows]).mean() + lam * e_own + (1 - lam) * e_p.mean()
    assert rep["base"].estimate == pytest.approx(want, abs=1e-12)
    assert rep["base"].diagnostics["probe_weight"] == pytest.approx(1 - lam)


def test_overlap_reason_of_a_probe_corrected_dr_target_names_the_probe() -> None:
    """Arena stacked DR with the shipped probes: the poor-overlap reason of a corrected target
    says where its residual comes from, not that it rests on a few labelled logged rows."""
    ds = cje.datasets.arena()
    rep = cje.analyze(ds.logged, fresh_draws=ds.fresh_draws, probes=ds.probes,
                      estimator="stacked-dr")
    (overlap,) = [r for r in rep["unhelpful"].reasons if r.startswith("poor overlap")]
    assert "comes from the probe slice" in overlap and "few labelled rows" not in overlap
    plain = cje.analyze(ds.logged, fresh_draws=ds.fresh_draws, estimator="stacked-dr",
                        residual_weights="raw")
    assert any("few labelled rows" in r for r in plain["unhelpful"].reasons)
