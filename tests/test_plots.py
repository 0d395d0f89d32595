"""Figures: each plot draws what it claims (counts, positions, styles, labels), on ``ax=`` or alone."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402

import cje  # noqa: E402
import cje.bias  # noqa: E402
from cje.plots import (  # noqa: E402
    FLAG_COLOR,
    MUTED_COLOR,
    SIGNIFICANT_COLOR,
    STATUS_COLORS,
    bias_plot,
    contrast_plot,
    forest_plot,
    reliability_diagram,
    save_report_figures,
)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def report():
    sim = cje.synthetic.make_direct_eval(300, rng=0)
    return cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


@pytest.fixture(scope="module")
def gated(report):
    """The synthetic report with one CAUTION and one REFUSED estimate (statuses only)."""
    est = list(report.estimates)
    est[1] = replace(est[1], status="CAUTION")
    est[3] = replace(est[3], status="REFUSED")
    return replace(report, estimates=tuple(est))


@pytest.fixture(scope="module")
def uncalibrated():
    sim = cje.synthetic.make_direct_eval(100, rng=0)
    data = sim.data.copy()
    labelled = np.flatnonzero(data["oracle_label"].notna())
    data.loc[data.index[labelled[2:]], "oracle_label"] = np.nan  # 2 labels: too few
    rep = cje.analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    assert rep.calibration is None
    return rep


@pytest.fixture(scope="module")
def audit():
    sim = cje.synthetic.make_panel_eval(150, length_effect=0.3, rng=1)
    return cje.bias.audit(sim.data, rng=0)


def _lines(ax, prefix):
    """The error bars' data lines whose gid starts with ``prefix``, by the rest of the gid."""
    return {ln.get_gid().removeprefix(prefix): ln for ln in ax.get_lines()
            if (ln.get_gid() or "").startswith(prefix)}


def _same(c1, c2):
    return np.allclose(to_rgba(c1), to_rgba(c2))


# ---- reliability diagram ----------------------------------------------------------------------
def test_reliability_draws_curve_band_bins_reference_and_histogram(report):
    ax = reliability_diagram(report)
    cal = report.calibration
    x = np.array([c["judge_score"] for c in cal.curve])
    f = np.array([c["calibrated"] for c in cal.curve])
    se = np.array([c["se"] for c in cal.curve])

    (curve,) = [ln for ln in ax.get_lines() if ln.get_gid() == "calibration_curve"]
    np.testing.assert_allclose(curve.get_xdata(), x)
    np.testing.assert_allclose(curve.get_ydata(), f)

    (band,) = [c for c in ax.collections if c.get_gid() == "oua_band"]
    verts = band.get_paths()[0].vertices
    np.testing.assert_allclose(verts[:, 1].max(), (f + 1.96 * se).max(), rtol=1e-3)
    np.testing.assert_allclose(verts[:, 1].min(), (f - 1.96 * se).min(), rtol=1e-3)
    assert se.max() > 0 and band.get_alpha() > 0  # the band is visible

    (pts,) = [c for c in ax.collections if c.get_gid() == "bin_means"]
    rel = cal.reliability
    np.testing.assert_allclose(pts.get_offsets()[:, 1], [r["mean_label"] for r in rel])
    assert len(pts.get_offsets()) == len(rel)
    sizes, counts = pts.get_sizes(), np.array([r["n"] for r in rel])
    assert np.all(np.diff(sizes[np.argsort(counts)]) >= 0)  # bigger bins, bigger points

    bars = [p for p in ax.patches if p.get_gid() == "label_histogram"]
    assert len(bars) == len(rel)
    assert all(b.get_y() + b.get_height() < report.label_scale[0] for b in bars)  # below the data

    (ref,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert list(ref.get_xdata()) == list(report.judge_scale)
    assert list(ref.get_ydata()) == list(report.label_scale)

    assert "judge scale 0–10" in ax.get_xlabel()
    assert "label scale 1–5" in ax.get_ylabel()
    assert "OUA" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_reliability_honours_ax(report):
    fig, axes = plt.subplots(1, 2)
    assert reliability_diagram(report, ax=axes[1]) is axes[1]
    assert not axes[0].has_data()


def test_reliability_of_uncalibrated_report_is_a_clear_error(uncalibrated):
    with pytest.raises(cje.CJEInputError, match="needs a calibrated report.*UNCALIBRATED"):
        reliability_diagram(uncalibrated)


def test_reliability_without_curve_is_a_clear_error(report):
    old = replace(report, calibration=replace(report.calibration, curve=()))
    with pytest.raises(cje.CJEInputError, match="no calibration curve"):
        reliability_diagram(old)


# ---- forest plot ------------------------------------------------------------------------------
def test_forest_one_estimate_and_one_naive_bar_per_policy(report):
    ax = forest_plot(report)
    n = len(report.estimates)
    assert len(ax.containers) == 2 * n
    est, naive = _lines(ax, "estimate:"), _lines(ax, "naive:")
    assert set(est) == set(naive) == {e.policy for e in report.estimates}
    for e in report.estimates:
        assert est[e.policy].get_xdata()[0] == pytest.approx(e.estimate)
        assert naive[e.policy].get_xdata()[0] == pytest.approx(e.naive_estimate)
        assert est[e.policy].get_marker() != naive[e.policy].get_marker()
    # ordered by estimate, best at the top, tick labels naming the policies
    by_y = sorted(report.estimates, key=lambda e: est[e.policy].get_ydata()[0])
    assert [e.estimate for e in by_y] == sorted(e.estimate for e in report.estimates)
    assert [t.get_text() for t in ax.get_yticklabels()] == [e.policy for e in by_y]
    assert "label scale 1–5" in ax.get_xlabel()


def test_forest_styles_caution_and_refused(gated):
    ax = forest_plot(gated)
    est = _lines(ax, "estimate:")
    for e in gated.estimates:
        line = est[e.policy]
        assert _same(line.get_color(), STATUS_COLORS[e.status])
        hollow = _same(line.get_markerfacecolor(), "white")
        assert hollow == (e.status == "REFUSED")
    refused = next(e.policy for e in gated.estimates if e.status == "REFUSED")
    container = next(c for c in ax.containers if c.lines[0] is est[refused])
    [(_, dashes)] = container.lines[2][0].get_linestyle()
    assert dashes is not None  # dashed interval
    legend = " ".join(t.get_text() for t in ax.get_legend().get_texts())
    assert "CAUTION" in legend and "REFUSED" in legend
    colours = {t.get_text(): t.get_color() for t in ax.get_yticklabels()}
    assert _same(colours[refused], STATUS_COLORS["REFUSED"])


def test_forest_reliable_only_hides_refused(gated):
    ax = forest_plot(gated, reliable_only=True)
    shown = set(_lines(ax, "estimate:"))
    assert shown == {e.policy for e in gated.estimates if e.status != "REFUSED"}
    assert "hidden" in " ".join(t.get_text() for t in ax.get_legend().get_texts())


def test_forest_of_uncalibrated_report_is_on_the_judge_scale(uncalibrated):
    ax = forest_plot(uncalibrated)
    assert len(ax.containers) == len(uncalibrated.estimates)  # no naive bars: same numbers
    assert "judge scale 0–10" in ax.get_xlabel() and "UNCALIBRATED" in ax.get_xlabel()


def test_forest_honours_ax(report):
    _, ax = plt.subplots()
    assert forest_plot(report, ax=ax) is ax


# ---- contrasts --------------------------------------------------------------------------------
def test_contrasts_one_bar_per_pair_oriented_and_highlighted(report):
    ax = contrast_plot(report)
    assert len(ax.containers) == len(report.pairs)
    drawn = _lines(ax, "contrast:")
    assert len(drawn) == len(report.pairs)
    by_pair = {frozenset((c.policy_a, c.policy_b)): c for c in report.pairs}
    ranked = [p for tier in report.ranking for p in tier]
    for name, line in drawn.items():
        a, b = name.split(" − ")
        c = by_pair[frozenset((a, b))]
        assert ranked.index(a) < ranked.index(b)  # rows read "higher − lower"
        sign = 1 if (a, b) == (c.policy_a, c.policy_b) else -1
        assert line.get_xdata()[0] == pytest.approx(sign * c.estimate)
        colour = SIGNIFICANT_COLOR if c.significant else MUTED_COLOR
        assert _same(line.get_color(), colour)
        assert _same(line.get_markerfacecolor(), colour if c.significant else "white")
    assert 0 < sum(c.significant for c in report.pairs) < len(report.pairs)  # both styles shown
    assert any(list(ln.get_xdata()) == [0, 0] for ln in ax.get_lines())  # zero line
    texts = " ".join(t.get_text() for t in ax.texts)
    # the ranking above the plot is the report's (here one tier: a chain of non-separable pairs)
    assert report.ranking == (("improved", "concise", "base", "verbose", "small"),)
    assert "Ranking" in texts and "{improved, concise, base, verbose, small}" in texts
    assert "label scale 1–5" in ax.get_xlabel()


def test_contrasts_mark_refused_policies(gated):
    ax = contrast_plot(gated)
    refused = next(e.policy for e in gated.estimates if e.status == "REFUSED")
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert sum(f"{refused}†" in t for t in labels) == len(gated.estimates) - 1


def test_contrasts_of_uncalibrated_report_is_a_clear_error(uncalibrated):
    with pytest.raises(cje.CJEInputError, match="no contrasts.*UNCALIBRATED"):
        contrast_plot(uncalibrated)


def test_contrasts_honour_ax(report):
    _, ax = plt.subplots()
    assert contrast_plot(report, ax=ax) is ax


@pytest.fixture(scope="module")
def many():
    """80 policies of random quality on 20 prompts (3,160 contrasts)."""
    from cje.synthetic.direct import PolicySpec

    rng = np.random.default_rng(5)
    pols = [PolicySpec(f"pol{i:02d}", quality=float(q)) for i, q in enumerate(rng.normal(0, 0.5, 80))]
    sim = cje.synthetic.make_direct_eval(20, policies=pols, oracle_fraction=0.2, rng=5)
    return cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


def test_forest_many_policies_is_a_compact_caterpillar(many):
    from cje.plots import FOREST_MAX_ROWS, FOREST_NAMED

    n = len(many.estimates)
    assert n > FOREST_MAX_ROWS
    ax = forest_plot(many)
    assert len(ax.containers) <= 1 + len(STATUS_COLORS)  # one per status + the naive means
    drawn = _lines(ax, "estimates:")
    assert sum(len(line.get_xdata()) for line in drawn.values()) == n  # every policy is drawn
    assert len(_lines(ax, "naive")[""].get_xdata()) == n
    xs = np.concatenate([line.get_xdata() for line in drawn.values()])
    np.testing.assert_allclose(np.sort(xs), np.sort([e.estimate for e in many.estimates]))
    best_first = [e.policy for e in sorted(many.estimates, key=lambda e: -e.estimate)]
    named = [t.get_text() for t in ax.get_yticklabels()]
    assert len(named) == FOREST_NAMED
    ranks = {int(t.split(" ")[0][1:]): t.split(" ")[1] for t in named}
    assert 1 in ranks and n in ranks  # the best and the worst are always named
    for r, name in ranks.items():
        assert best_first[r - 1] == name
    assert ax.figure.get_size_inches()[1] <= 10
    assert f"{n:,} policies" in ax.get_title()


def test_forest_below_the_threshold_keeps_one_row_per_policy(report):
    from cje.plots import FOREST_MAX_ROWS

    assert len(report.estimates) <= FOREST_MAX_ROWS
    assert len(forest_plot(report).containers) == 2 * len(report.estimates)


def test_contrasts_many_pairs_draw_only_the_best_policies(many):
    ax = contrast_plot(many)
    drawn = _lines(ax, "contrast:")
    assert len(drawn) == 45 < len(many.pairs)
    # among the policies with contrasts (a level with no standard error, e.g. corrected by one
    # own label, enters none)
    paired = {p for c in many.pairs for p in (c.policy_a, c.policy_b)}
    best = {e.policy for e in sorted((e for e in many.estimates if e.policy in paired),
                                     key=lambda e: -e.estimate)[:10]}
    assert {p for name in drawn for p in name.split(" − ")} == best
    assert "showing the 45 pairs among the 10 best policies of 80" in ax.get_title()
    assert f"over {len(many.pairs):,} pairs" in ax.get_title()
    ranking = next(t.get_text() for t in ax.texts if t.get_text().startswith("Ranking"))
    assert len(ranking) < 700  # abbreviated, not 80 names
    assert ax.figure.get_size_inches()[1] < 25


@pytest.mark.parametrize("max_pairs, n_rows", [(1, 1), (3, 3), (5, 3), (6, 6), (10, 10), (100, 10)])
def test_contrasts_max_pairs(report, max_pairs, n_rows):
    ax = contrast_plot(report, max_pairs=max_pairs)
    drawn = _lines(ax, "contrast:")
    assert len(drawn) == n_rows
    top = len({p for name in drawn for p in name.split(" − ")})
    best = [e.policy for e in sorted(report.estimates, key=lambda e: -e.estimate)][:top]
    assert {p for name in drawn for p in name.split(" − ")} == set(best)
    assert ("showing the" in ax.get_title()) == (n_rows < len(report.pairs))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "10"])
def test_contrasts_max_pairs_must_be_a_positive_integer(report, bad):
    with pytest.raises(cje.CJEInputError, match=r"max_pairs must be a positive integer; got"):
        contrast_plot(report, max_pairs=bad)


# ---- bias audit -------------------------------------------------------------------------------
def test_bias_plot_one_panel_per_test_one_bar_per_result(audit):
    ax = bias_plot(audit)
    tests = list(dict.fromkeys(audit.tests))
    panels = ax.child_axes
    assert [p.get_title(loc="left") for p in panels] == tests
    bars = {}
    for p in panels:
        bars.update(_lines(p, "bias:"))
    assert sum(len(p.containers) for p in panels) == len(audit.results)
    for t, r in zip(audit.tests, audit.results, strict=True):
        line = bars[f"{t}:{r.judge or 'all'}"]
        assert line.get_xdata()[0] == pytest.approx(r.effect)
        assert _same(line.get_color(), FLAG_COLOR if r.flagged else MUTED_COLOR)
    assert {r.flagged for r in audit.results} == {True, False}  # both styles exercised
    for p, t in zip(panels, tests, strict=True):
        r = audit.results[audit.tests.index(t)]
        assert p.get_xlabel().replace("\n", " ") == r.effect_name  # units on every panel
        assert any(list(ln.get_xdata()) == [0, 0] for ln in p.get_lines())  # zero line
        for tick in p.get_yticklabels():
            assert ("FLAGGED" in tick.get_text()) == _same(tick.get_color(), FLAG_COLOR)


def test_bias_plot_single_test_draws_on_ax_itself(audit):
    one = replace(audit, results=audit.results[:1], tests=audit.tests[:1])
    _, ax = plt.subplots()
    assert bias_plot(one, ax=ax) is ax
    assert not ax.child_axes and len(ax.containers) == 1


def test_bias_plot_honours_ax_as_bounding_box(audit):
    fig, axes = plt.subplots(2, 1)
    assert bias_plot(audit, ax=axes[1]) is axes[1]
    assert len(axes[1].child_axes) == len(set(audit.tests)) and not axes[0].child_axes


def test_bias_plot_of_empty_audit_is_a_clear_error():
    with pytest.raises(cje.CJEInputError, match="ran no test.*missing"):
        bias_plot(cje.bias.BiasAudit(results=(), skipped=("position: missing a_id",)))


# ---- methods and files ------------------------------------------------------------------------
@pytest.mark.parametrize("kind, gid", [("forest", "estimate:"), ("reliability", "calibration_curve"),
                                       ("contrasts", "contrast:")])
def test_report_plot_delegates(report, kind, gid):
    _, ax = plt.subplots()
    assert report.plot(kind, ax=ax) is ax
    assert any((ln.get_gid() or "").startswith(gid) for ln in ax.get_lines())


def test_report_plot_rejects_unknown_kind(report):
    with pytest.raises(cje.CJEInputError, match="kind must be one of"):
        report.plot("histogram")


def test_bias_audit_plot_delegates(audit):
    ax = audit.plot()
    assert len(ax.child_axes) == len(set(audit.tests))


def test_save_report_figures(report, uncalibrated, tmp_path):
    # figures other tests left open in this worker process (pytest-xdist runs tests in any
    # order) are not this function's: it must close the ones it opens
    before = set(plt.get_fignums())
    paths = save_report_figures(report, tmp_path / "figs")
    assert [p.name for p in paths] == ["forest.png", "reliability.png", "contrasts.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 200_000
    assert [p.name for p in save_report_figures(uncalibrated, tmp_path / "u")] == ["forest.png"]
    assert set(plt.get_fignums()) == before  # its figures closed


def test_import_cje_does_not_import_matplotlib():
    code = "import sys, cje; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_arena_refused_policy_is_red_and_hollow(arena):
    rep = cje.analyze(
        arena / "fresh_draws",
        probes={p: arena / "probe_slice" / f"{p}_probe.jsonl"
                for p in ("clone", "parallel_universe_prompt", "unhelpful")},
        transport_margin=0.05, probe_correction=False,  # audit only: the FAIL refuses unhelpful
    )
    line = _lines(forest_plot(rep), "estimate:")["unhelpful"]
    assert rep["unhelpful"].status == "REFUSED"
    assert _same(line.get_color(), STATUS_COLORS["REFUSED"])
    assert _same(line.get_markerfacecolor(), "white")
    ax = reliability_diagram(rep)
    assert "judge scale 0–1" in ax.get_xlabel() and "label scale 0–1" in ax.get_ylabel()


# ---- overlap (off-policy) ------------------------------------------------------------------------
def test_overlap_plot_draws_raw_and_stabilised_ess_per_target(tmp_path):
    sim = cje.synthetic.make_offpolicy_eval(400, rng=3)
    rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1), label_scale=(0, 1))
    ax = rep.plot("overlap")
    d = rep.diagnostics("overlap").set_index("policy")
    bars = [p for p in ax.patches if p.get_height() > 0.3]  # the two bars of each target
    widths = sorted(round(b.get_width(), 12) for b in bars)
    expected = sorted(round(v, 12) for v in [*d["ess_raw"], *d["ess_stable"]])
    assert widths == expected
    assert ax.get_xscale() == "log"
    assert any(line.get_xdata()[0] == 0.1 for line in ax.get_lines())  # the ESS gate
    texts = " ".join(t.get_text() for t in ax.texts)
    for name in ("mild", "moderate", "far"):
        assert rep[name].status in texts
    plt.close(ax.figure)
    names = [p.name for p in cje.plots.save_report_figures(rep, tmp_path)]
    assert names == ["forest.png", "reliability.png", "contrasts.png", "overlap.png",
                     "weight_tail.png"]


def test_overlap_plot_needs_an_offpolicy_report():
    sim = cje.synthetic.make_direct_eval(200, rng=0)
    rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    with pytest.raises(cje.CJEInputError, match="off-policy report"):
        cje.plots.overlap_plot(rep)


def test_weight_tail_plot_draws_the_recorded_tails():
    sim = cje.synthetic.make_offpolicy_eval(400, rng=3)
    rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1), label_scale=(0, 1))
    ax = rep.plot("weight_tail")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == 7  # raw + stabilised per target, and the α = 2 guide
    for name in ("mild", "moderate", "far"):
        tail = np.array(rep[name].diagnostics["weight_tail_raw"])
        line = lines[f"{name} (raw)"]
        np.testing.assert_allclose(line.get_xdata(), tail[:, 1])
        np.testing.assert_allclose(line.get_ydata(), tail[:, 0])
        assert tail[-1, 0] >= 1 / 400  # only exceedance shares the sample resolves
        assert np.all(np.diff(tail[:, 1]) >= 0)  # quantiles rise as the share falls
    assert ax.get_xscale() == ax.get_yscale() == "log"
    plt.close(ax.figure)
    with pytest.raises(cje.CJEInputError, match="off-policy report"):
        cje.plots.weight_tail_plot(cje.analyze(cje.synthetic.make_direct_eval(200, rng=0).data,
                                               judge_scale=(0, 10), label_scale=(1, 5)))


def _many_targets(n):
    """An off-policy report with ``n`` targets (copies of the three, with distinct raw ESS)."""
    sim = cje.synthetic.make_offpolicy_eval(400, rng=3)
    rep = cje.analyze(sim.logged, estimator="calibrated-ips", judge_scale=(0, 1), label_scale=(0, 1))
    targets = [e for e in rep.estimates if "ess_raw" in e.diagnostics]
    ess = np.linspace(0.9, 0.01, n)
    est = [replace(targets[i % 3], policy=f"t{i:02d}",
                   diagnostics={**targets[i % 3].diagnostics, "ess_raw": float(ess[i])})
           for i in range(n)]
    return replace(rep, estimates=tuple(est), pairs=(), ranking=())


@pytest.mark.parametrize("plot, most, n", [
    ("overlap", 40, 55), ("overlap", 40, 12), ("weight_tail", 8, 30), ("weight_tail", 8, 5),
])
def test_offpolicy_plots_with_many_targets_draw_the_worst_overlap(plot, most, n):
    rep = _many_targets(n)
    ax = rep.plot(plot)
    lowest = {f"t{i:02d}" for i in range(n)[-most:]}  # ESS decreases with i
    shown = min(n, most)
    if plot == "overlap":
        names = {t.get_text() for t in ax.get_yticklabels()}
        assert len(names) == shown
        if n > most:
            assert names == lowest
    else:
        labels = [ln.get_label() for ln in ax.get_lines() if "(raw)" in ln.get_label()]
        assert len(labels) == shown
        if n > most:
            assert {lab.split(" ")[0] for lab in labels} == lowest
    assert (f"the {most} of {n} targets with the lowest raw-weight ESS" in ax.get_title()) == (n > most)
