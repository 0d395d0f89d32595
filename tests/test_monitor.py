"""Tests for ``cje.monitor`` (continuous evaluation), its DGP, its CLI and its study (issue #17)."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cje
from cje.cli import main
from cje.monitoring import MonitorReport
from cje.synthetic.monitor import make_monitor_eval

SCALES = {"judge_scale": (0, 10), "label_scale": (1, 5)}
REF = {"reference": 3, **SCALES}  # small data: 3 reference windows


@pytest.fixture(scope="module")
def shifted() -> cje.synthetic.SyntheticMonitor:
    # a large judge update (+2 points) at window 5 of 9: built to trip the drift test
    return make_monitor_eval(n_windows=9, rows_per_window=400, labels_per_window=120,
                             kind="shift", change_at=5, judge_shift=2.0, rng=3)


@pytest.fixture(scope="module")
def shifted_report(shifted: cje.synthetic.SyntheticMonitor) -> MonitorReport:
    return cje.monitor(shifted.data, window="1D", **REF)


# --------------------------------------------------------------------------- the DGP
def test_dgp_windows_labels_and_truth() -> None:
    sim = make_monitor_eval(n_windows=5, rows_per_window=200, labels_per_window=[0, 10, 20, 30, 40],
                            kind="distribution", change_at=3, rng=0)
    assert sim.data.groupby("window")["oracle_label"].count().tolist() == [0, 10, 20, 30, 40]
    assert sim.data["timestamp"].is_monotonic_increasing
    assert str(sim.data["timestamp"].dt.tz) == "UTC"
    # the truth moves at the change (better traffic) and only there
    t = sim.truth.pivot(index="window", columns="policy", values="truth")
    assert (t.loc[3:] > t.loc[:2].to_numpy()[0]).all().all()
    assert t.loc[:2].nunique().tolist() == [1, 1]


def test_dgp_truth_matches_a_large_sample() -> None:
    # 200,000 rows per window: the sample mean of the labels has MC SE ~ 1.0/sqrt(2e5) ≈ 0.0023;
    # 4 SE = 0.009
    sim = make_monitor_eval(n_windows=1, rows_per_window=400_000, labels_per_window=400_000,
                            kind="none", rng=5)
    got = sim.data.groupby("policy")["oracle_label"].mean()
    want = sim.truth.set_index("policy")["truth"]
    assert np.allclose(got.sort_index(), want.sort_index(), atol=0.009)


def test_dgp_judge_map_changes_only_for_shift_and_slope() -> None:
    # Residual of the changed window against an isotonic fit on the first (both 100k labels):
    # the judge changes move it by ≈ -0.2 label points; the traffic shift leaves it at 0 (SE ~ 0.002).
    out = {}
    for kind in ("shift", "slope", "distribution"):
        sim = make_monitor_eval(n_windows=2, rows_per_window=100_000, labels_per_window=100_000,
                                kind=kind, change_at=1, rng=1)
        a, b = (sim.data[sim.data.window == w] for w in (0, 1))
        f = cje.RewardCalibrator(mode="monotone").fit(a.judge_score, a.oracle_label)
        out[kind] = float(np.mean(b.oracle_label - f.predict(b.judge_score)))
    assert out["shift"] < -0.15 and out["slope"] < -0.15
    assert abs(out["distribution"]) < 0.015


# --------------------------------------------------------------------------- hand computations
def test_window_estimates_equal_analyze_on_the_window(shifted, shifted_report) -> None:
    d = shifted.data
    win = d[d.window == 6].drop(columns=["timestamp", "window"])
    rep = cje.analyze(win, mode="monotone", **SCALES)
    got = {w.policy: w for w in shifted_report.windows if w.window == 6}
    for e in rep.estimates:
        assert got[e.policy].calibration == "window"
        assert got[e.policy].estimate == pytest.approx(e.estimate, abs=1e-12)
        assert got[e.policy].ci_low == pytest.approx(e.ci_low, abs=1e-12)
        assert got[e.policy].naive_estimate == pytest.approx(e.naive_estimate, abs=1e-12)


def test_drift_audit_delta_by_hand(shifted, shifted_report) -> None:
    # δ of window 3 = mean(Y − f(S)) with f fitted on the labels of the 3 reference windows
    d = shifted.data
    ref = d[(d.window < 3) & d.oracle_label.notna()]
    f = cje.RewardCalibrator(mode="monotone", n_folds=20).fit(ref.judge_score, ref.oracle_label,
                                                              prompt_id=ref.prompt_id)
    w3 = d[(d.window == 3) & d.oracle_label.notna()]
    delta = float(np.mean(w3.oracle_label - f.predict(w3.judge_score)))
    a = next(a for a in shifted_report.audits if a.window == 3)
    assert a.delta == pytest.approx(delta, abs=1e-12)
    assert a.n_labels == len(w3)
    # its SE is at least the prompt-clustered sampling SE of the residuals (here one row per prompt)
    r = w3.oracle_label - f.predict(w3.judge_score)
    assert a.se >= r.std(ddof=1) / math.sqrt(len(r)) * 0.99


def test_reference_calibrated_window_equals_analyze_with_the_reference_rows() -> None:
    sim = make_monitor_eval(n_windows=5, rows_per_window=200, labels_per_window=[60, 60, 60, 10, 60],
                            kind="none", rng=4)
    rep = cje.monitor(sim.data, **REF)
    d = sim.data
    ref = d[(d.window < 3) & d.oracle_label.notna()][["prompt_id", "judge_score", "oracle_label"]]
    win = d[d.window == 3].drop(columns=["timestamp", "window"])
    want = cje.analyze(win, calibration=ref, mode="monotone", **SCALES)
    for w in (w for w in rep.windows if w.window == 3):
        assert w.calibration == "reference"
        assert w.labels_used == 10 + len(ref)
        assert w.estimate == pytest.approx(want[w.policy].estimate, abs=1e-12)
        # never a wrong OK: a window on the carried calibration is at best CAUTION
        assert w.status != "OK" and any("reference labels" in r for r in w.reasons)


# --------------------------------------------------------------------------- drift and shift
def test_drift_detected_at_the_change_and_calibration_restarts(shifted_report) -> None:
    ev = shifted_report.events
    assert [(e.start_window, e.confirmed_window) for e in ev] == [(5, 5)]
    st = {w.window: w.status for w in shifted_report.windows if w.policy == "prod"}
    assert st[5] == "DRIFT" and all(st[w] != "DRIFT" for w in st if w != 5)
    # later windows are audited against the calibration that restarted at window 5
    later = [a for a in shifted_report.audits if a.window > 5]
    assert later and all(a.reference.startswith("windows 2026-11-06") for a in later)
    assert not any(a.flagged for a in later)
    # earlier windows keep their estimates (on their own labels)
    assert all(w.calibration == "window" for w in shifted_report.windows if w.window < 5)


def test_drift_restarts_the_carried_calibration_for_unlabelled_windows() -> None:
    labels = [120, 120, 120, 120, 120, 120, 0, 120, 0]
    sim = make_monitor_eval(n_windows=9, rows_per_window=400, labels_per_window=labels,
                            kind="shift", change_at=5, judge_shift=2.0, rng=3)
    rep = cje.monitor(sim.data, **REF)
    assert rep.events and rep.events[0].start_window == 5
    d = sim.data
    # window 6 (no labels) is calibrated on windows 5's labels only (the restarted calibration)
    new = d[(d.window == 5) & d.oracle_label.notna()][["prompt_id", "judge_score", "oracle_label"]]
    win = d[d.window == 6].drop(columns=["timestamp", "window"])
    want = cje.analyze(win, calibration=new, mode="monotone", **SCALES)
    truth = sim.truth.set_index(["window", "policy"])["truth"]
    for w in (w for w in rep.windows if w.window == 6):
        assert w.calibration == "reference" and w.labels_used == len(new)
        assert w.estimate == pytest.approx(want[w.policy].estimate, abs=1e-12)
        assert w.ci_low <= truth[(6, w.policy)] <= w.ci_high


def test_score_distribution_shift_is_shift_not_drift() -> None:
    sim = make_monitor_eval(n_windows=8, rows_per_window=600, labels_per_window=150,
                            kind="distribution", change_at=4, quality_shift=1.0, rng=2)
    rep = cje.monitor(sim.data, **REF)
    assert rep.events == ()
    after = [w for w in rep.windows if w.window >= 4]
    assert all(w.status == "SHIFT" for w in after)
    assert all("not proof of judge drift" in " ".join(w.reasons) for w in after)


def test_traffic_move_under_a_noisy_judge_is_a_drift_not_blamed_on_the_judge() -> None:
    # the judge is fixed (S = Y + N(0, 1)); traffic moves from Y ~ N(0, 1) to N(-1, 1) on day 5,
    # so E[Y | S] moves from S/2 to (S - 1)/2: the map drifts although the judge did not
    rng = np.random.default_rng(1)
    days = []
    for day in range(10):
        y = rng.normal(0.0 if day < 5 else -1.0, 1.0, 400)
        days.append(pd.DataFrame({"window": day, "prompt_id": [f"d{day}q{i}" for i in range(400)],
                                  "policy": "prod", "judge_score": y + rng.normal(0, 1, 400),
                                  "oracle_label": np.where(rng.random(400) < 0.3, y, np.nan)}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rep = cje.monitor(pd.concat(days, ignore_index=True), window="window", reference=3)
    assert [e.start_window for e in rep.events] == [5]
    assert rep.events[0].delta == pytest.approx(-0.5, abs=0.2)  # 0.2 ≈ 3 SE (0.07 at 120 labels)
    why = " ".join(w.reasons[0] for w in rep.windows if w.window == 5)
    assert "Either the judge changed or what it judges did" in why
    assert "Drift (the judge→label map moved: the judge changed, or what it judges did" in rep.summary()


def test_no_change_no_drift_and_ok_on_own_labels() -> None:
    sim = make_monitor_eval(n_windows=8, rows_per_window=600, labels_per_window=150, kind="none",
                            rng=11)
    rep = cje.monitor(sim.data, **REF)
    assert rep.events == ()
    assert {w.status for w in rep.windows} <= {"OK", "CAUTION"}
    assert rep.settings["drift_level"] == pytest.approx(0.05 / (2 * 5))  # 5 audited windows


# --------------------------------------------------------------------------- input handling
def _small(**kw) -> pd.DataFrame:
    return make_monitor_eval(n_windows=4, rows_per_window=100, labels_per_window=60, kind="none",
                             rng=0, **kw).data


def test_unsorted_rows_and_time_zones_give_the_same_report() -> None:
    d = _small()
    a = cje.monitor(d, reference=2, **SCALES)
    shuffled = d.sample(frac=1.0, random_state=0)
    b = cje.monitor(shuffled, reference=2, **SCALES)
    assert a.to_pandas().equals(b.to_pandas())
    # the same instants written in another zone, and as naive UTC strings
    c = cje.monitor(d.assign(timestamp=d.timestamp.dt.tz_convert("America/New_York")),
                    reference=2, **SCALES)
    naive = d.assign(timestamp=d.timestamp.dt.tz_localize(None).astype(str))
    e = cje.monitor(naive, reference=2, **SCALES)
    assert a.to_pandas().equals(c.to_pandas()) and a.to_pandas().equals(e.to_pandas())
    assert a.windows[0].window_label == "2026-11-01"


def test_window_column_instead_of_time() -> None:
    d = _small().drop(columns=["timestamp"]).assign(week=lambda x: "wk" + x.window.astype(str))
    rep = cje.monitor(d, window="week", reference=2, **SCALES)
    assert [w.window_label for w in rep.windows][::2] == ["wk0", "wk1", "wk2", "wk3"]
    assert rep.settings["time_column"] is None


@pytest.mark.parametrize("kw, match", [
    ({"window": "1 fortnight"}, r"window='1 fortnight' is neither a column .* '1D', '12h'"),
    ({"window": "1M"}, r"neither a column of the data nor a duration"),
    ({"time_column": "ts"}, r"no time column 'ts' .* time_column='<your column>'"),
    ({"reference": 9}, r"reference=9 windows, but the data has 4 windows"),
    ({"reference": 1, "min_labels": 100}, r"reference \(the first 1 windows\) has 60 oracle labels"),
])
def test_input_errors_name_the_field_and_the_fix(kw, match) -> None:
    with pytest.raises(cje.CJEInputError, match=match):
        cje.monitor(_small(), **{"reference": 2, **SCALES, **kw})


def test_bad_time_values_name_the_row() -> None:
    d = _small()
    bad = d.assign(timestamp=d.timestamp.astype(str))
    bad.loc[7, "timestamp"] = "yesterday"
    with pytest.raises(cje.CJEInputError, match=r"not a time on row 7: 'yesterday'"):
        cje.monitor(bad, reference=2, **SCALES)
    nums = d.assign(timestamp=np.arange(len(d)))
    with pytest.raises(cje.CJEInputError, match=r"holds numbers, not times.*unit='s'"):
        cje.monitor(nums, reference=2, **SCALES)
    gap = d.assign(timestamp=d.timestamp.astype(object))
    gap.loc[3, "timestamp"] = None
    with pytest.raises(cje.CJEInputError, match=r"empty on row 3"):
        cje.monitor(gap, reference=2, **SCALES)


def test_a_window_with_one_row_is_refused_not_the_run() -> None:
    d = _small()
    one = d.iloc[[0]].assign(timestamp=d.timestamp.max() + pd.Timedelta("2D"))
    rep = cje.monitor(pd.concat([d, one]), reference=2, **SCALES)
    last = [w for w in rep.windows if w.window == len({w.window for w in rep.windows}) - 1]
    assert [w.status for w in last] == ["REFUSED"]
    assert "1 row(s)" in last[0].reasons[0] and "longer window" in last[0].reasons[0]
    assert math.isnan(last[0].estimate)
    assert rep.settings["empty_windows"] == ["2026-11-05"]  # the skipped empty day


def test_labelled_reference_file(tmp_path: Path) -> None:
    d = _small()
    ref = make_monitor_eval(n_windows=1, rows_per_window=400, labels_per_window=400, kind="none",
                            rng=9).data[["prompt_id", "judge_score", "oracle_label"]]
    path = tmp_path / "labels.csv"
    ref.to_csv(path, index=False)
    rep = cje.monitor(d, reference=path, **SCALES)
    assert [a.window for a in rep.audits] == [0, 1, 2, 3]  # every window is audited
    assert rep.settings["reference"] == "labelled source"
    assert "reference" in rep.provenance["inputs"]


# --------------------------------------------------------------------------- outputs
def test_outputs_round_trip(shifted_report: MonitorReport, tmp_path: Path) -> None:
    rep = shifted_report
    back = MonitorReport.from_json(rep.to_json())
    assert back == rep and back.to_json() == rep.to_json()
    assert back.events == rep.events
    assert back.to_pandas("audits").equals(rep.to_pandas("audits"))  # NaN == NaN here
    assert back.to_pandas().equals(rep.to_pandas())
    p = tmp_path / "m.json"
    rep.to_json(p)
    assert MonitorReport.from_json(p) == rep
    df = rep.to_pandas()
    assert len(df) == 18 and {"estimate", "ci_low", "status", "calibration"} <= set(df.columns)
    assert pd.read_parquet(rep.to_parquet(tmp_path / "m.parquet")).shape == df.shape
    assert pd.read_csv(rep.to_csv(tmp_path / "m.csv")).shape == df.shape
    text = rep.summary()
    assert "Drift (the judge→label map moved" in text and "DRIFT" in text and "not proof of drift" in text
    assert set(rep.to_pandas("events").columns) >= {"start_window", "confirmed_window"}
    with pytest.raises(cje.CJEInputError, match="'windows', 'audits' or 'events'"):
        rep.to_pandas("nope")
    assert {"cje_version", "created_utc", "inputs"} <= set(rep.provenance)


def test_plot_monitor(shifted_report: MonitorReport) -> None:
    ax = cje.plots.monitor(shifted_report, policy="prod")
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("calibrated" in t for t in labels) and any("naive" in t for t in labels)
    assert any("drift" in t for t in labels)
    with pytest.raises(cje.CJEInputError, match="no policy 'nope'"):
        cje.plots.monitor(shifted_report, policy="nope")


# --------------------------------------------------------------------------- CLI
def test_cli_monitor(tmp_path: Path, shifted, capsys) -> None:
    path = tmp_path / "traffic.csv"
    shifted.data.to_csv(path, index=False)
    assert main(["monitor", str(path), "--window", "1D", "--reference", "3", "--judge-scale", "0",
                 "10", "--label-scale", "1", "5"]) == 0
    out = capsys.readouterr().out
    assert "DRIFT" in out and "starts 2026-11-06" in out
    out_json = tmp_path / "m.json"
    assert main(["monitor", str(path), "--reference", "3", "--judge-scale", "0", "10",
                 "--label-scale", "1", "5", "--format", "json", "--out", str(out_json)]) == 0
    doc = json.loads(out_json.read_text())
    assert doc["events"][0]["start_window"] == 5 and doc["provenance"]["command"].startswith("cje monitor")
    assert main(["monitor", str(path), "--reference", "3", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("window,window_label,policy")


def test_markdown_and_html_reports(shifted_report: MonitorReport, tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    md, *figs = shifted_report.write_report(tmp_path / "m.md")
    text = md.read_text()
    assert text.startswith("# cje monitor report")
    for part in ("## Windows", "## Drift\n", "## Drift audits", "## Rules", "## Provenance"):
        assert part in text
    assert "starts 2026-11-06" in text and "DRIFT" in text
    assert len(figs) == len({w.policy for w in shifted_report.windows})
    assert all(f.is_file() and f.parent.name == "m_figures" for f in figs)
    assert all(f"m_figures/{f.name}" in text for f in figs)
    (html,) = shifted_report.write_report(tmp_path / "m.html")
    page = html.read_text()
    assert "<tr class='refused'>" in page and "<td class='ci'>" in page
    assert page.count("data:image/png;base64,") == len(figs)
    # a hostile policy name is text in both formats
    bad = dataclasses.replace(shifted_report, windows=tuple(
        dataclasses.replace(w, policy="<script>x</script>|*") for w in shifted_report.windows))
    assert "<script>" not in bad.write_report(tmp_path / "b.html", figures=False)[0].read_text()
    assert "\\|" in bad.write_report(tmp_path / "b.md", figures=False)[0].read_text()
    formula = dataclasses.replace(shifted_report, windows=tuple(
        dataclasses.replace(w, policy="=HYPERLINK(1)") for w in shifted_report.windows))
    cells = pd.read_csv(formula.to_csv(tmp_path / "f.csv"))["policy"]
    assert (cells == "'=HYPERLINK(1)").all()  # a spreadsheet shows it as text


def test_cli_monitor_report(tmp_path: Path, shifted, capsys) -> None:
    path = tmp_path / "traffic.csv"
    shifted.data.to_csv(path, index=False)
    report = tmp_path / "r.html"
    assert main(["monitor", str(path), "--reference", "3", "--judge-scale", "0", "10",
                 "--label-scale", "1", "5", "--report", str(report)]) == 0
    cap = capsys.readouterr()
    assert "DRIFT" in cap.out and f"wrote {report}" in cap.err
    assert "<h1>cje monitor report</h1>" in report.read_text()
    # a report path that is not .md/.html (here: the input itself) is refused before any work
    before = path.read_bytes()
    assert main(["monitor", str(path), "--reference", "3", "--report", str(tmp_path / "x.txt")]) == 2
    assert main(["monitor", str(path), "--reference", "3", "--report", str(path)]) == 2
    assert path.read_bytes() == before


@pytest.mark.parametrize("args, match", [
    (["--window", "soon"], "window='soon' is neither"),
    (["--time-column", "when"], "no time column 'when'"),
    (["--reference", "nofile.csv"], "--reference 'nofile.csv' is neither"),
])
def test_cli_monitor_refusals_exit_2(tmp_path: Path, args, match, capsys) -> None:
    path = tmp_path / "t.csv"
    _small().to_csv(path, index=False)
    reference = [] if "--reference" in args else ["--reference", "2"]  # an option given once
    assert main(["monitor", str(path), *reference, *args]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------- the study
def test_study_quick(tmp_path: Path) -> None:
    from cje.studies.monitor import run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        md = run(quick=True, reps=2, out_dir=tmp_path)
    text = md.read_text()
    assert "QUICK tier" in text and "P(any DRIFT" in text and "## Reading" in text
    df = pd.read_parquet(tmp_path / "study_monitor.parquet")
    assert set(df["cell"]) == {"none/200", "none/50", "shift/200", "shift/200, reference 3",
                               "shift/50", "slope/200", "distribution/200", "shift/sparse"}


@pytest.mark.slow
def test_study_full_acceptance(tmp_path: Path) -> None:
    """The published study's acceptance figures (simulations/results/study_monitor.md)."""
    from cje.studies.monitor import run

    run(out_dir=tmp_path)
    df = pd.read_parquet(tmp_path / "study_monitor.parquet")
    per = df.groupby(["cell", "replicate"]).first().reset_index()
    n = per.replicate.nunique()
    # false alarm: Bonferroni bound 0.05; allow 2 binomial MC SE above it
    none = per[per.cell == "none/200"]
    assert (none.n_events > 0).mean() <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / n)
    assert (per[per.cell == "distribution/200"].n_events > 0).mean() <= 0.05 + 2 * math.sqrt(
        0.05 * 0.95 / n)


def test_drift_in_an_unlabelled_window_starts_there() -> None:
    # the judge update lands on window 5, which has no labels; window 6's audit finds it: the drift
    # started after window 4 (the last that fitted), so window 5 is DRIFT too and starts the event
    labels = [120, 120, 120, 120, 120, 0, 120, 120, 120]
    sim = make_monitor_eval(n_windows=9, rows_per_window=400, labels_per_window=labels,
                            kind="shift", change_at=5, judge_shift=2.0, rng=3)
    rep = cje.monitor(sim.data, **REF)
    assert [(e.start_window, e.confirmed_window) for e in rep.events] == [(5, 6)]
    st = {w.window: w.status for w in rep.windows if w.policy == "prod"}
    assert st[6] == "DRIFT" and st[4] != "DRIFT" and st[7] != "DRIFT"
    # window 5 (+2 points, no labels) mostly scores beyond the labelled range: REFUSED outranks
    # DRIFT, and the drift is named among its reasons
    w5 = [w for w in rep.windows if w.window == 5]
    assert all(w.status in ("DRIFT", "REFUSED") for w in w5)
    assert all(any("judge→label map moved" in r for r in w.reasons) for w in w5)
