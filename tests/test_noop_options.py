"""Options that would do nothing on this input are refused or said, never silently dropped.

``cje.analyze`` refuses an estimator option the estimator does not read when the call clearly
expects an effect (``var_cap``, ``mrdr_omega``, ``residual_weights="stable"``, residual weights
with the direct method, ``client=`` with an in-memory or polars engine); a merely irrelevant one
is kept, said in a notice and recorded as ``None`` in ``settings``. The CLI refuses every such
flag (docs: Getting started). Each test here failed before (the option was accepted and changed
nothing, or ``settings`` recorded it as applied).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

import cje
from cje.cli import main

DIRECT_SCALES = {"judge_scale": (0, 10), "label_scale": (1, 5)}
LOGGED_SCALES = {"judge_scale": (0.0, 1.0), "label_scale": (0.0, 1.0)}


@pytest.fixture(scope="module")
def offpolicy() -> cje.synthetic.OffPolicySim:
    return cje.synthetic.make_offpolicy_eval(300, oracle_fraction=0.2, rng=1)


@pytest.fixture(scope="module")
def direct() -> cje.synthetic.SyntheticEval:
    return cje.synthetic.make_direct_eval(200, oracle_fraction=0.3, rng=0)


@pytest.fixture(scope="module")
def files(offpolicy: cje.synthetic.OffPolicySim, direct: cje.synthetic.SyntheticEval,
          tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("noop")
    offpolicy.logged.to_csv(d / "lg.csv", index=False)
    offpolicy.fresh.to_csv(d / "fresh.csv", index=False)
    direct.data.to_csv(d / "direct.csv", index=False)
    return d


def _quiet_analyze(data, **kw) -> cje.Report:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(data, **kw)


def _said(report: cje.Report, option: str) -> list[str]:
    return [n for n in report.notices if n.startswith(f"{option}=") and "has no effect" in n]


# ---- Python: refused where an effect is clearly expected --------------------------------------
@pytest.mark.parametrize("estimator", ["ips", "snips"])
def test_var_cap_with_raw_weight_estimators_is_refused(offpolicy, estimator: str) -> None:
    # Before: accepted, estimates and SEs identical to the run without it, settings var_cap=1.0.
    with pytest.raises(cje.CJEInputError, match=rf"var_cap=1.0 has no effect with estimator "
                                                 rf"'{estimator}'"):
        cje.analyze(offpolicy.logged, estimator=estimator, var_cap=1.0, **LOGGED_SCALES)


def test_var_cap_on_fresh_draws_is_refused(direct) -> None:
    # Before: silently ignored by the direct method (no importance weights).
    with pytest.raises(cje.CJEInputError, match=r"var_cap=1.0 has no effect with "
                                                 r"estimator='auto' \(here 'direct'\)"):
        cje.analyze(direct.data, var_cap=1.0, **DIRECT_SCALES)


@pytest.mark.parametrize("estimator", ["auto", "calibrated-ips", "dr-cpo", "tmle"])
def test_mrdr_omega_without_mrdr_is_refused(offpolicy, estimator: str) -> None:
    # Before: accepted and ignored (auto without fresh draws is calibrated IPS)
    with pytest.raises(cje.CJEInputError, match="mrdr_omega='w2' has no effect"):
        cje.analyze(offpolicy.logged, estimator=estimator, mrdr_omega="w2",
                    fresh_draws=offpolicy.fresh if estimator in ("dr-cpo", "tmle") else None,
                    **LOGGED_SCALES)


def test_stable_residual_weights_with_snips_are_refused(offpolicy) -> None:
    # Before: accepted; SNIPS weights the residual by the raw weights whatever the option says.
    with pytest.raises(cje.CJEInputError, match="residual_weights='stable' has no effect"):
        cje.analyze(offpolicy.logged, estimator="snips", residual_weights="stable",
                    **LOGGED_SCALES)


@pytest.mark.parametrize("value", ["raw", "stable"])
def test_residual_weights_with_the_direct_method_are_refused(offpolicy, direct, value) -> None:
    # Before: ignored in Python (the CLI refused it only after the whole analysis had run).
    with pytest.raises(cje.CJEInputError, match=f"residual_weights='{value}' has no effect"):
        cje.analyze(direct.data, residual_weights=value, **DIRECT_SCALES)
    with pytest.raises(cje.CJEInputError, match="the direct method uses no importance weights"):
        cje.analyze(offpolicy.logged, fresh_draws=offpolicy.fresh, estimator="direct",
                    residual_weights=value, **LOGGED_SCALES)


def test_client_with_the_polars_engine_is_refused(files: Path) -> None:
    # Before: engine='memory' was refused, engine='polars' ran on the file and never used the
    # client.
    pytest.importorskip("polars")
    with pytest.raises(cje.CJEInputError, match="client= is for engine='dask'.*'polars'"):
        cje.analyze(str(files / "direct.csv"), engine="polars", client=object(), **DIRECT_SCALES)


# ---- Python: merely irrelevant options are said and recorded as not applied --------------------
def test_raw_residual_weights_with_snips_get_a_notice_and_no_setting(offpolicy) -> None:
    plain = _quiet_analyze(offpolicy.logged, estimator="snips", **LOGGED_SCALES)
    raw = _quiet_analyze(offpolicy.logged, estimator="snips", residual_weights="raw",
                         **LOGGED_SCALES)
    assert [(e.estimate, e.se) for e in raw.estimates] == [(e.estimate, e.se) for e in plain.estimates]
    assert len(_said(raw, "residual_weights")) == 1 and not _said(plain, "residual_weights")
    # before: settings["residual_weights"] == "raw", as if applied
    assert raw.settings["residual_weights"] is None
    assert raw.settings["not_applied"] == {"residual_weights": "raw"}
    assert plain.settings["residual_weights"] == "auto" and "not_applied" not in plain.settings


def test_drop_missing_without_a_dr_estimator_gets_a_notice(offpolicy) -> None:
    rep = _quiet_analyze(offpolicy.logged, on_missing="drop", **LOGGED_SCALES)
    assert rep.settings["estimator"] == "calibrated-ips"
    assert len(_said(rep, "on_missing")) == 1 and rep.settings["on_missing"] is None
    assert rep.settings["not_applied"] == {"on_missing": "drop"}
    # with a DR estimator every option applies: recorded, no notice
    dr = _quiet_analyze(offpolicy.logged, fresh_draws=offpolicy.fresh, on_missing="drop",
                        mrdr_omega="w2", var_cap=2.0, **LOGGED_SCALES)
    assert dr.settings["estimator"] == "stacked-dr" and not [n for n in dr.notices if "no effect" in n]
    assert "not_applied" not in dr.settings
    assert (dr.settings["on_missing"], dr.settings["mrdr_omega"], dr.settings["var_cap"]) == \
        ("drop", "w2", 2.0)


def test_probe_options_without_probes_are_said_and_not_recorded(direct) -> None:
    rep = _quiet_analyze(direct.data, probe_correction=False, transport_margin=0.1,
                         **DIRECT_SCALES)
    # before: no word about probe_correction; settings transport_margin=0.1, probe_correction=False
    assert len(_said(rep, "probe_correction")) == 1 and len(_said(rep, "transport_margin")) == 1
    assert rep.settings["probe_correction"] is None and rep.settings["transport_margin"] is None
    assert rep.settings["not_applied"] == {"transport_margin": 0.1, "probe_correction": False}


def test_client_when_auto_runs_in_memory_gets_a_notice(direct) -> None:
    rep = _quiet_analyze(direct.data, client=object(), **DIRECT_SCALES)
    assert [n for n in rep.notices if n.startswith("client= has no effect")]


def test_out_of_core_direct_refuses_and_says(direct, tmp_path: Path) -> None:
    pytest.importorskip("polars")
    path = tmp_path / "d.csv"
    direct.data.to_csv(path, index=False)
    # before: var_cap ignored, transport_margin neither applied nor said
    with pytest.raises(cje.CJEInputError, match="var_cap=1.0 has no effect"):
        cje.analyze(str(path), engine="polars", var_cap=1.0, **DIRECT_SCALES)
    rep = _quiet_analyze(str(path), engine="polars", transport_margin=0.1, on_missing="drop",
                         **DIRECT_SCALES)
    assert _said(rep, "transport_margin") and _said(rep, "on_missing")
    assert rep.settings["transport_margin"] is None
    assert rep.settings["not_applied"] == {"on_missing": "drop", "transport_margin": 0.1}


# ---- CLI --------------------------------------------------------------------------------------
@pytest.mark.parametrize("flags", [["--estimator", "snips", "--var-cap", "1"],
                                   ["--estimator", "ips", "--residual-weights", "raw"],
                                   ["--estimator", "snips", "--residual-weights", "stable"],
                                   ["--drop-missing"],
                                   ["--estimator", "calibrated-ips", "--drop-missing"]])
def test_cli_refuses_estimator_flags_that_do_nothing(files: Path, flags: list[str],
                                                     capsys: pytest.CaptureFixture) -> None:
    # Before: exit 0 with identical estimates (the finding: --estimator snips --var-cap 1)
    code = main(["analyze", str(files / "lg.csv"), *flags, "--no-progress"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert f"{flags[-2] if flags[-1] in ('1', 'raw', 'stable') else flags[-1]} has no effect" \
        in captured.err
    assert "apply to" not in captured.err


def test_cli_plan_refuses_data_options_with_a_report(direct, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    rep = _quiet_analyze(direct.data, **DIRECT_SCALES)
    path = tmp_path / "rep.json"
    path.write_text(rep.to_json())
    # before: --judge-scale was dropped silently (the report's scales were used), exit 0
    code = main(["plan", str(path), "--half-width", "0.2", "--judge-scale", "0", "10"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "--judge-scale reads the pilot data" in captured.err


def test_plan_refuses_data_options_with_a_report_and_regions_without_next(direct) -> None:
    rep = _quiet_analyze(direct.data, **DIRECT_SCALES)
    with pytest.raises(cje.CJEInputError, match="mode='monotone' reads the pilot data"):
        cje.plan(rep, half_width=0.2, mode="monotone")
    with pytest.raises(cje.CJEInputError, match="n_regions=3 sets the judge-score regions"):
        cje.plan(direct.data, half_width=0.2, n_regions=3, **DIRECT_SCALES)


def test_monitor_refuses_a_time_column_with_a_window_column() -> None:
    from cje.synthetic.monitor import make_monitor_eval

    sim = make_monitor_eval(n_windows=4, rows_per_window=150, labels_per_window=60, kind="none",
                            rng=0)
    data = sim.data.rename(columns={"timestamp": "ts"})
    # before: time_column='ts' was not read (the window column was), without a word
    with pytest.raises(cje.CJEInputError, match="time_column='ts' has no effect"):
        cje.monitor(data, window="window", time_column="ts", reference=2, **DIRECT_SCALES)


def test_json_report_settings_say_what_was_not_applied(offpolicy) -> None:
    rep = _quiet_analyze(offpolicy.logged, estimator="ips", residual_weights="raw",
                         on_missing="drop", **LOGGED_SCALES)
    s = json.loads(rep.to_json())["settings"]
    # before: residual_weights 'raw' and on_missing 'drop' recorded as if IPS had used them
    assert (s["residual_weights"], s["on_missing"]) == (None, None)
    assert s["not_applied"] == {"residual_weights": "raw", "on_missing": "drop"}


def test_cli_datasets_list_refuses_export_arguments(capsys: pytest.CaptureFixture) -> None:
    # Before: `cje datasets list arena out --force` listed the data sets, exit 0, and exported
    # nothing.
    code = main(["datasets", "list", "arena", "out", "--force"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "go with 'cje datasets export'" in captured.err
