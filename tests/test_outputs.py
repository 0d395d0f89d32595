"""Outputs that never mislead or inject (issue #19): the summary, JSON, markdown, HTML and CSV
say which intervals and p-values they show, give off-policy targets their own label count, count
dropped rows, list unranked policies, stay readable with many policies, parse as strict JSON and
render hostile policy names as text."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import re

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import cje  # noqa: E402
from cje.export import _report_html, md_text, report_markdown, write_report  # noqa: E402
from cje.report import CalibrationInfo, Contrast, PolicyEstimate, Report, csv_text, visible  # noqa: E402

FORMATS = ("summary", "markdown", "html", "csv")


def render(rep: Report, fmt: str, **kw) -> str:
    """The report in one output format, as text."""
    if fmt == "summary":
        return rep.summary(**kw)
    if fmt == "markdown":
        return report_markdown(rep, **kw)
    if fmt == "html":
        return _report_html(rep, [], **kw)
    if fmt == "csv":
        return rep.to_csv() + rep.to_csv(table="contrasts")
    if fmt == "json":
        return rep.to_json()
    raise AssertionError(fmt)


def fail_on_constant(name: str) -> None:
    raise AssertionError(f"non-strict JSON constant {name}")


# ---- fixtures -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def direct() -> Report:
    sim = cje.synthetic.make_direct_eval(200, rng=0)
    return cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


@pytest.fixture(scope="module")
def offsim():
    return cje.synthetic.make_offpolicy_eval(300, rng=0)


@pytest.fixture(scope="module", params=["ips", "snips"])
def offpolicy(request, offsim) -> Report:
    return cje.analyze(offsim.logged, estimator=request.param, judge_scale=(0, 1), label_scale=(0, 1))


def fake_report(n_policies: int, refused: tuple[str, ...] = (), seed: int = 0) -> Report:
    """A report with ``n_policies`` made-up policies and all their pairs (no analysis run)."""
    rng = np.random.default_rng(seed)
    names = [f"p{i:04d}" for i in range(n_policies)]
    values = np.sort(rng.normal(0.5, 0.2, n_policies))[::-1]
    ests = []
    for name, v in zip(names, values, strict=True):
        bad = name in refused
        ests.append(PolicyEstimate(
            policy=name, estimate=math.nan if bad else float(v), se=math.nan if bad else 0.05,
            ci_low=math.nan if bad else float(v) - 0.1, ci_high=math.nan if bad else float(v) + 0.1,
            alpha=0.05, df=99.0, n=100, n_prompts=100, n_labels=10, var_if=0.002, var_cal=0.0005,
            calibration_share=0.2, naive_estimate=float(v), naive_ci_low=float(v) - 0.1,
            naive_ci_high=float(v) + 0.1, method="direct", status="REFUSED" if bad else "OK",
            reasons=("transport audit FAIL: its level is not reliable",) if bad else ()))
    pairs = []
    m = n_policies * (n_policies - 1) // 2
    for i in range(n_policies):
        for j in range(i + 1, n_policies):
            d = float(values[i] - values[j])
            p = float(math.erfc(abs(d) / 0.07 / math.sqrt(2)))
            ph = min(1.0, p * m)
            pairs.append(Contrast(policy_a=names[i], policy_b=names[j], estimate=d, se=0.07,
                                  ci_low=d - 0.14, ci_high=d + 0.14, df=99.0, p_value=p, p_holm=ph,
                                  significant=ph < 0.05, var_if=0.004, var_cal=0.0009,
                                  n_shared_prompts=100))
    ranked = [n for n in names if n not in refused]
    ranking = tuple((n,) for n in ranked)
    cal = CalibrationInfo(mode="monotone", requested_mode="auto", n_folds=5, n_labels=10 * n_policies,
                          n_labelled_prompts=10 * n_policies, covariates=(), oof_rmse=0.2,
                          judge_range=(0.0, 1.0))
    return Report(estimates=tuple(ests), pairs=tuple(pairs), audits=(), calibration=cal,
                  ranking=ranking, judge_scale=(0.0, 1.0), label_scale=(0.0, 1.0), alpha=0.05)


# ---- 1. headings say which intervals and p-values are shown --------------------------------------
@pytest.mark.parametrize("fmt, must", [
    ("summary", ["Paired contrasts a − b: per-pair unadjusted 95% CIs; p_holm = Holm-adjusted "
                 "over all 10 pairs.", "(* = p_holm < 0.05; p = unadjusted.", "per-policy 95% CIs"]),
    ("markdown", ["## Paired contrasts (per-pair unadjusted 95% intervals; p-values Holm-adjusted "
                  "over all 10 pairs)", "95% CI (per pair, unadjusted)", "p (Holm, all 10 pairs)",
                  "95% CI (per policy)"]),
    ("html", ["<h2>Paired contrasts (per-pair unadjusted 95% intervals; p-values Holm-adjusted "
              "over all 10 pairs)</h2>", "<th>95% CI (per pair, unadjusted)</th>",
              "<th>p (Holm, all 10 pairs)</th>"]),
    ("csv", ["per-pair unadjusted 95%", "p_holm: Holm over all 10 pairs; p_value: unadjusted",
             "per-policy 95% (with OUA; not adjusted for multiplicity)"]),
])
def test_headings_name_the_intervals_and_the_adjustment(direct, fmt, must):
    text = render(direct, fmt)
    for phrase in must:
        assert phrase in text, phrase
    assert "Holm-adjusted over 10 pairs)" not in text  # the old, misleading heading
    assert "(a − b, Holm-adjusted" not in text


def test_a_pair_whose_interval_excludes_zero_is_not_marked_when_p_holm_is_large(direct):
    c = next(c for c in direct.pairs if (c.ci_low > 0 or c.ci_high < 0) and c.p_holm >= 0.05)
    line = next(ln for ln in direct.summary().splitlines()
                if ln.startswith(f"  {c.policy_a} − {c.policy_b}:"))
    assert line.rstrip().endswith(f"p_holm = {c.p_holm:.3g}") and "*" not in line
    md_row = next(ln for ln in report_markdown(direct).splitlines()
                  if ln.startswith(f"| {c.policy_a} | {c.policy_b} |"))
    assert md_row.endswith("| no |")
    t = pd.read_csv(io.StringIO(direct.to_csv(table="contrasts")))
    row = t[(t.policy_a == c.policy_a) & (t.policy_b == c.policy_b)].iloc[0]
    assert not row["significant"] and row["p_holm"] == pytest.approx(c.p_holm)


def test_the_significant_marker_follows_p_holm_not_the_stored_flag(direct):
    c = next(c for c in direct.pairs if c.p_holm >= 0.05)
    lying = dataclasses.replace(direct, pairs=tuple(
        dataclasses.replace(x, significant=True) if x is c else x for x in direct.pairs))
    line = next(ln for ln in lying.summary().splitlines()
                if ln.startswith(f"  {c.policy_a} − {c.policy_b}:"))
    assert "*" not in line
    t = pd.read_csv(io.StringIO(lying.to_csv(table="contrasts")))
    assert t["significant"].tolist() == [x.p_holm < 0.05 for x in direct.pairs]


# ---- 2. off-policy targets: their own labels (0) and where the calibration's come from ----------
def test_offpolicy_targets_show_zero_own_labels_in_every_output(offpolicy):
    targets = [e for e in offpolicy.estimates if "ess_raw" in offpolicy[e.policy].diagnostics]
    assert len(targets) == 3 and all(e.n_labels > 0 for e in targets)  # the logging policy's rows
    base = next(e for e in offpolicy.estimates if e.method.startswith("on-policy"))
    summary = offpolicy.summary().splitlines()
    md = report_markdown(offpolicy)
    html = _report_html(offpolicy, [])
    csv = pd.read_csv(io.StringIO(offpolicy.to_csv())).set_index("policy")
    for e in targets:
        row = next(ln for ln in summary if ln.startswith(f"{e.policy} "))
        assert row.split()[7] == "0", row  # the labels column
        md_row = next(ln for ln in md.splitlines() if ln.startswith(f"| {e.policy} |"))
        cells = [c.strip() for c in md_row.split("|")[1:-1]]
        assert cells[6] == "0" and "logging policy 'base'" in cells[7]
        assert f"<td>{e.policy}</td>" in html
        assert csv.loc[e.policy, "n_labels_own"] == 0
        assert csv.loc[e.policy, "calibration_labels_from"].startswith("logging policy 'base'")
    assert csv.loc["base", "n_labels_own"] == base.n_labels > 0
    for text in (offpolicy.summary(), md):
        assert "no oracle labels of their own" in text and "train the calibrator only" in text
    derived = json.loads(offpolicy.to_json())["derived"]
    assert derived["n_labels_own"] == {"base": base.n_labels, "mild": 0, "moderate": 0, "far": 0}
    assert derived["calibration_labels_from"]["far"].startswith("logging policy 'base'")


def test_direct_reports_keep_their_label_counts(direct):
    df = direct.to_pandas()
    assert (df["n_labels_own"] == df["n_labels"]).all() and (df["n_labels"] > 0).all()
    assert set(df["calibration_labels_from"]) == {"all policies pooled (112 labels)"}
    assert "of their own" not in direct.summary()


def test_target_labels_of_unknown_origin_are_shown_as_unknown(offpolicy):
    # more calibration labels than the logged rows hold: some came from elsewhere (fresh draws)
    cal = dataclasses.replace(offpolicy.calibration, n_labels=offpolicy.calibration.n_labels + 5)
    rep = dataclasses.replace(offpolicy, calibration=cal)
    df = rep.to_pandas().set_index("policy")
    assert df.loc["mild", "n_labels_own"] is None or pd.isna(df.loc["mild", "n_labels_own"])
    assert next(ln for ln in rep.summary().splitlines() if ln.startswith("mild ")).split()[7] == "?"


# ---- 3. rows dropped by on_invalid="drop" are counted in every output -------------------------------
@pytest.fixture(scope="module")
def dropped() -> Report:
    sim = cje.synthetic.make_direct_eval(60, rng=1)
    df = sim.data.copy()
    df.loc[3, "judge_score"] = np.nan
    df.loc[7, "judge_score"] = np.inf
    df.loc[5, "prompt_id"] = " "
    return cje.analyze(df, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                       on_invalid="drop")


@pytest.mark.parametrize("fmt, must", [
    ("summary", ["1 rows with empty prompt_id, 2 rows with non-finite judge_score. 3 row(s) in all"]),
    ("json", ['"empty prompt_id": 1', '"non-finite judge_score": 2', '"excluded_rows": 3']),
    ("markdown", ["## Excluded rows", "| empty prompt_id | 1 |", "| non-finite judge_score | 2 |",
                  "| total | 3 |"]),
    ("html", ["<h2>Excluded rows</h2>", "<td>empty prompt_id</td><td>1</td>",
              "<td>non-finite judge_score</td><td>2</td>", "<td>total</td><td>3</td>"]),
])
def test_dropped_rows_are_counted_by_reason(dropped, fmt, must):
    text = render(dropped, fmt)
    for phrase in must:
        assert phrase in text, phrase


@pytest.mark.parametrize("table", ["estimates", "contrasts"])
def test_dropped_rows_travel_with_every_csv_row(dropped, direct, table):
    t = pd.read_csv(io.StringIO(dropped.to_csv(table=table)))
    assert len(t) > 1 and (t["excluded_rows"] == 3).all()
    assert set(t["excluded_by_reason"]) == {"empty prompt_id: 1; non-finite judge_score: 2"}
    clean = pd.read_csv(io.StringIO(direct.to_csv(table=table)))
    assert (clean["excluded_rows"] == 0).all()


def test_no_drop_says_none(direct):
    assert "None: no row was dropped" in report_markdown(direct)
    assert "Excluded on request" not in direct.summary()


# ---- 4. strict JSON, exact round trip, clear errors ----------------------------------------------
def refused_nan(rep: Report) -> Report:
    e = rep.estimates[1]
    bad = dataclasses.replace(e, estimate=math.nan, se=math.nan, ci_low=math.nan, ci_high=math.nan,
                              df=math.inf, status="REFUSED", reasons=("no overlap at all",))
    return dataclasses.replace(rep, estimates=(rep.estimates[0], bad, *rep.estimates[2:]))


def test_offpolicy_json_is_strict_and_round_trips(offpolicy):
    text = offpolicy.to_json()
    d = json.loads(text, parse_constant=fail_on_constant)
    assert d["null_reasons"], "an IPS/SNIPS run has undefined stabilised-weight diagnostics"
    for info in d["null_reasons"].values():
        assert info["value"] in ("NaN", "Infinity", "-Infinity") and info["why"]
    why = d["null_reasons"]["/estimates/1/diagnostics/ess_stable"]["why"]
    assert "uses no stabilised weights" in why
    back = Report.from_json(text)
    assert back == offpolicy and math.isnan(back.estimates[1].diagnostics["ess_stable"])


def test_refused_nan_estimate_is_null_with_its_reason(direct):
    rep = refused_nan(direct)
    d = json.loads(rep.to_json(), parse_constant=fail_on_constant)
    assert d["estimates"][1]["estimate"] is None and d["estimates"][1]["df"] is None
    assert d["null_reasons"]["/estimates/1/estimate"] == {"value": "NaN",
                                                         "why": "REFUSED: no overlap at all"}
    assert d["null_reasons"]["/estimates/1/df"]["value"] == "Infinity"
    back = Report.from_json(rep.to_json())
    assert back == rep and back.estimates[1].df == math.inf
    assert "—" in rep.summary()  # NaN shown as a dash, not 'nan'


def test_null_without_a_reason_reads_as_nan(direct):
    d = json.loads(direct.to_json())
    d["estimates"][0]["se"] = None
    del d["null_reasons"]
    assert math.isnan(Report.from_dict(d).estimates[0].se)


@pytest.mark.parametrize("rep_name", ["direct", "dropped", "fake"])
def test_round_trip(rep_name, direct, dropped):
    rep = {"direct": direct, "dropped": dropped, "fake": fake_report(6, refused=("p0002",))}[rep_name]
    back = Report.from_json(rep.to_json())
    assert back == rep and back.to_json() == rep.to_json()
    assert back.estimates == rep.estimates or rep_name == "fake"  # NaN != NaN in dataclass eq


def _json_without(path: tuple, direct: Report) -> str:
    d = json.loads(direct.to_json())
    node = d
    for k in path[:-1]:
        node = node[k]
    del node[path[-1]]
    return json.dumps(d)


@pytest.mark.parametrize("make, match", [
    (lambda r: "{}", r"The report lacks the field\(s\) \['estimates', 'pairs'"),
    (lambda r: "not json", r"not valid JSON"),
    (lambda r: "[1, 2]", r"must be a JSON object \(dict\).*got list"),
    (lambda r: _json_without(("estimates", 0, "se"), r),
     r"estimates\[0\] \(PolicyEstimate\) lacks the field\(s\) \['se'\]"),
    (lambda r: _json_without(("alpha",), r), r"lacks the field\(s\) \['alpha'\]"),
    (lambda r: r.to_json().replace('"alpha": 0.05', '"alpha": "0.05"'),
     r"alpha must be a number \(or null\); got '0.05'"),
    (lambda r: r.to_json().replace('"n_prompts": 200', '"n_prompts": "x"', 1),
     r"estimates\[0\]\.n_prompts must be an integer; got 'x'"),
    (lambda r: r.to_json().replace('"estimates": [', '"estimates": 3, "x": [', 1),
     r"unknown field\(s\) \['x'\]"),
    (lambda r: r.to_json().replace('"null_reasons": {}', '"null_reasons": {"/nope/0": '
                                   '{"value": "NaN", "why": ""}}'),
     r"null_reasons names '/nope/0', which is not a value of this report"),
    (lambda r: r.to_json().replace('"pairs": [', '"pairs": [7, ', 1),
     r"pairs\[0\] must be an object with the fields of Contrast; got int 7"),
])
def test_from_json_errors_name_what_is_wrong(direct, make, match):
    with pytest.raises(cje.CJEInputError, match=match):
        Report.from_json(make(direct))


def test_from_json_needs_text():
    with pytest.raises(cje.CJEInputError, match="needs the JSON text.*got dict"):
        Report.from_json({})  # type: ignore[arg-type]


# ---- 5. hostile names ----------------------------------------------------------------------------
HOSTILE = {"base": '"><img src=x onerror=alert(2)>', "small": "a|b\nc",
           "verbose": "\x1b[31mred\x1b[0m\x07", "concise": '=HYPERLINK("http://x")',
           "improved": "[x](javascript:alert(1))"}


@pytest.fixture(scope="module")
def hostile() -> Report:
    sim = cje.synthetic.make_direct_eval(200, rng=0)
    d = sim.data.assign(policy=sim.data["policy"].map(HOSTILE))
    return cje.analyze(d, judge_scale=sim.judge_scale, label_scale=sim.label_scale)


def test_markdown_escapes_hostile_names(hostile):
    md = report_markdown(hostile)
    assert "<img" not in md and "\x1b" not in md and not re.search(r"(?<!\\)\]\(", md)
    assert "\\[x\\](javascript:alert(1))" in md
    table = md.split("## Estimates", 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("|")]
    assert len(rows) == 2 + 5  # header, rule, one row per policy: no row split by a newline
    for row in rows:  # 11 columns: 12 unescaped pipes
        assert len(re.findall(r"(?<!\\)\|", row)) == 12, row


def test_markdown_renders_hostile_names_as_text(hostile):
    markdown = pytest.importorskip("markdown")  # Python-Markdown, as mkdocs uses
    html = markdown.markdown(report_markdown(hostile), extensions=["tables", "attr_list"])
    assert "<img" not in html and "href=" not in html and "<a " not in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html  # shown, not run
    assert "[x](javascript:alert(1))" in html  # shown as typed
    assert "a|b\\nc" in html


def test_html_escapes_hostile_names(hostile):
    text = _report_html(hostile, [])
    assert "<img" not in text and "\x1b" not in text
    assert "&gt;&lt;img src=x onerror=alert(2)&gt;" in text and "\\x1b[31mred" in text


def test_terminal_summary_shows_control_characters(hostile):
    text = hostile.summary()
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f]", text)  # only \n and \t control bytes
    assert "\\x1b[31mred\\x1b[0m\\x07" in text and "a|b\\nc" in text
    rows = text.split("-" * 96, 1)[1].splitlines()[1:6]
    assert all(re.match(r"\S", r) and r.split()[-1] == "OK" for r in rows)  # one line per policy


@pytest.mark.parametrize("text, safe", [
    ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'), ("+1", "'+1"), ("-1", "'-1"),
    ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("\rx", "'\rx"), ("base", "base"),
    ("a=b", "a=b"), (-1.5, -1.5), (3, 3),
])
def test_csv_text(text, safe):
    assert csv_text(text) == safe


def test_csv_neutralises_formulas_but_keeps_numbers(hostile):
    t = pd.read_csv(io.StringIO(hostile.to_csv()))
    assert "'=HYPERLINK(\"http://x\")" in set(t["policy"])
    assert "\\x1b[31mred\\x1b[0m\\x07" in set(t["policy"]) and "a|b\\nc" in set(t["policy"])
    for col in ("estimate", "ci_low", "se", "n", "n_labels_own", "excluded_rows"):
        assert pd.api.types.is_numeric_dtype(t[col]), col
    c = pd.read_csv(io.StringIO(hostile.to_csv(table="contrasts")))
    assert (c["estimate"] < 0).any() and pd.api.types.is_numeric_dtype(c["estimate"])
    assert len(c) == 10


def test_visible():
    assert visible("a\x1b[2J\r\n\t\u202e\x00z") == "a\\x1b[2J\\r\\n\\t\\u202e\\x00z"
    assert visible("näme – ok") == "näme – ok"
    assert md_text("*x* _y_ `z` {: onclick=1}") == "\\*x\\* \\_y\\_ \\`z\\` \\{: onclick=1\\}"
    assert [md_text(t) for t in ("# h", "- a", "+ b", "12. c", "3) d", "a-b #1")] == [
        "\\# h", "\\- a", "\\+ b", "12\\. c", "3\\) d", "a-b #1"]


# ---- 6. many policies: the contrasts are capped, with a line saying so ---------------------------
@pytest.fixture(scope="module")
def many() -> Report:
    return fake_report(200)


@pytest.mark.parametrize("fmt", ["summary", "markdown", "html"])
def test_contrasts_are_capped_with_a_note(many, fmt):
    text = render(many, fmt)
    n = 200 * 199 // 2
    assert f"{n - 45} of {n} pairs not shown (max_pairs = 45)" in text
    assert "report.contrasts()" in text
    listed = text.count("p0000 − p0001") + text.count("p0000 | p0001") + text.count(
        "<td>p0000</td><td>p0001</td>")
    assert listed == 1  # the top adjacent pair is listed
    assert len(text) < 200_000  # capped; its speed is measured in benchmarks/bench_many_policies.py


def test_capped_listing_prefers_adjacent_pairs(many):
    shown, note = many._pairs_shown(45)
    assert len(shown) == 45 and note
    adj = [(c.policy_a, c.policy_b) for c in shown[:23]]
    assert adj == [(f"p{i:04d}", f"p{i + 1:04d}") for i in range(23)]
    assert all(c.p_holm <= min(x.p_holm for x in shown[23:]) or True for c in shown[23:])
    rest = sorted(c.p_holm for c in many.pairs if (c.policy_a, c.policy_b) not in set(adj))
    assert max(c.p_holm for c in shown[23:]) <= rest[21]


def test_all_pairs_stay_in_the_tables(many):
    assert len(many.contrasts()) == 19900
    assert len(pd.read_csv(io.StringIO(many.to_csv(table="contrasts")))) == 19900
    lines = many.summary(max_pairs=None).splitlines()
    assert sum(ln.startswith("  p0") and " − " in ln for ln in lines) == 19900
    small = fake_report(5)
    assert "not shown" not in small.summary()  # 10 pairs: all listed


@pytest.mark.parametrize("bad", [-1, 2.5, "10", True])
@pytest.mark.parametrize("fmt", ["summary", "markdown", "html"])
def test_max_pairs_is_checked(direct, fmt, bad):
    with pytest.raises(cje.CJEInputError, match=r"max_pairs must be an integer >= 0, or None"):
        render(direct, fmt, max_pairs=bad)


def test_max_pairs_zero_lists_no_pair(direct):
    text = direct.summary(max_pairs=0)
    assert "10 of 10 pairs not shown (max_pairs = 0)" in text and " − small:" not in text


# ---- 7. REFUSED policies left out of the ranking are listed as not ranked -------------------------
@pytest.mark.parametrize("fmt, must", [
    ("summary", "Not ranked: p0002 (REFUSED: transport audit FAIL: its level is not reliable)"),
    ("markdown", "* p0002 (REFUSED: transport audit FAIL: its level is not reliable)"),
    ("html", "<li>p0002 (REFUSED: transport audit FAIL: its level is not reliable)</li>"),
    ("csv", "no: REFUSED: transport audit FAIL: its level is not reliable"),
    ("json", '"not_ranked": [\n      {\n        "policy": "p0002",\n        "why": "REFUSED: '
             'transport audit FAIL: its level is not reliable"'),
])
def test_refused_policies_are_listed_as_not_ranked(fmt, must):
    rep = fake_report(5, refused=("p0002",))
    text = render(rep, fmt)
    assert must in text
    assert "Not ranked" not in render(fake_report(5), fmt)


# ---- figures: a plotting function that skips or fails is named, never silent ----------------------
@pytest.mark.parametrize("behaviour, note", [
    (lambda rep, ax=None: None, "Figure 'contrasts' skipped"),
    (lambda rep, ax=None: 1 / 0, "Figure 'contrasts' not drawn: ZeroDivisionError"),
])
def test_skipped_figures_are_named(direct, tmp_path, monkeypatch, behaviour, note):
    import cje.plots

    monkeypatch.setattr(cje.plots, "contrast_plot", behaviour)
    files = write_report(direct, tmp_path / "r.md")
    assert [p.name for p in files[1:]] == ["forest.png", "reliability.png"]
    assert note in files[0].read_text()
    html = write_report(direct, tmp_path / "r.html")[0].read_text()
    assert note in html and html.count("data:image/png;base64,") == 2


# ---- the outside test's findings on the real Arena sample ----------------------------------------
def test_arena_offpolicy_outputs(arena):
    snips = cje.analyze(arena / "logged_data.jsonl", estimator="snips")
    json.loads(snips.to_json(), parse_constant=fail_on_constant)  # strict JSON
    assert {e.policy: e.n_labels for e in snips.estimates} == dict.fromkeys(
        ["base", "clone", "parallel_universe_prompt", "unhelpful"], 480)
    df = snips.to_pandas().set_index("policy")
    assert df["n_labels_own"].to_dict() == {"base": 480, "clone": 0, "parallel_universe_prompt": 0,
                                            "unhelpful": 0}
    dr = cje.analyze(arena / "logged_data.jsonl", fresh_draws=arena / "fresh_draws",
                     estimator="stacked-dr")
    # clone − unhelpful: Holm does not separate. Until issue #14 its unadjusted interval excluded
    # 0; with the variance of the difference of the two targets' transport gaps (both use
    # stabilised residual weights) it reached 0 (−0.004, p 0.052), and with the tail-aware
    # residual variance (unhelpful's raw ESS is 0.8%) it is [−0.077, 0.746], p 0.089.
    c = next(c for c in dr.pairs if (c.policy_a, c.policy_b) == ("clone", "unhelpful"))
    assert c.var_transport > 0 and 0.05 < c.p_value < 0.15 and c.p_holm > 0.05
    assert (c.ci_low > 0) == (c.p_value < 0.05)  # the interval and the p-value agree
    # a pair whose unadjusted interval excludes 0 but Holm does not separate is not starred, and
    # the summary says its intervals are unadjusted
    shifted = dataclasses.replace(c, ci_low=0.01, p_value=0.04)
    rep = dataclasses.replace(dr, pairs=tuple(shifted if p is c else p for p in dr.pairs))
    # (clone and unhelpful are CAUTION, so their names carry the not-OK star; the significance star is the
    # line's last character)
    line = next(ln for ln in rep.summary().splitlines() if ln.startswith("  clone* − unhelpful*:"))
    assert not line.rstrip().endswith("*") and "per-pair unadjusted 95% CIs" in rep.summary()


# ---- issue #20: the HTML report marks REFUSED rows, keeps intervals on one line; figures clip ----
def _estimate_rows(html_text: str) -> dict[str, str]:
    """Each estimate row's opening <tr ...> tag, by policy."""
    table = html_text[html_text.index("<h2>Estimates</h2>"):]
    table = table[:table.index("</table>")]
    return {m.group(2): m.group(1) for m in re.finditer(r"(<tr[^>]*>)<td>([^<]+)</td>", table)}


@pytest.mark.parametrize(("status", "css_class"), [("REFUSED", "refused"), ("CAUTION", "caution")])
def test_html_tints_refused_and_caution_rows_only(direct, status, css_class):
    marked = direct.estimates[1].policy
    rep = dataclasses.replace(direct, estimates=tuple(
        dataclasses.replace(e, status=status) if e.policy == marked else e for e in direct.estimates))
    page = _report_html(rep, [])
    rows = _estimate_rows(page)
    assert rows[marked] == f"<tr class='{css_class}'>"
    assert all(tag == "<tr>" for p, tag in rows.items() if p != marked and
               direct[p].status == "OK")
    assert re.search(rf"tr\.{css_class} td\{{background:#[0-9a-f]{{6}}\}}", page)


def test_html_on_normal_data_tints_nothing(direct):
    assert {e.status for e in direct.estimates} == {"OK"}
    assert set(_estimate_rows(_report_html(direct, [])).values()) == {"<tr>"}


def test_html_interval_cells_do_not_wrap(direct):
    page = _report_html(direct, [])
    assert "td.ci{white-space:nowrap}" in page
    cells = re.findall(r"<td class='ci'>([^<]*)</td>", page)
    # every estimate's and every listed pair's interval, and nothing else
    assert len(cells) == len(direct.estimates) + min(len(direct.pairs), 45)
    assert all(re.fullmatch(r"\[[^,]+, [^\]]+\]", c) for c in cells)


def _bar_extents(ax) -> list[tuple[float, float]]:
    """(min x, max x) of every error bar drawn on ``ax``."""
    out = []
    for container in ax.containers:
        for coll in container.lines[2]:
            for seg in coll.get_segments():
                out.append((float(seg[:, 0].min()), float(seg[:, 0].max())))
    return out


def _widened(rep: Report, by: float) -> Report:
    """The report with every interval and the calibration band made ``by`` wider on each side."""
    ests = tuple(dataclasses.replace(e, ci_low=e.ci_low - by, ci_high=e.ci_high + by,
                                     naive_ci_low=e.naive_ci_low - by,
                                     naive_ci_high=e.naive_ci_high + by) for e in rep.estimates)
    pairs = tuple(dataclasses.replace(c, ci_low=c.ci_low - 3 * by, ci_high=c.ci_high + 3 * by)
                  for c in rep.pairs)
    cal = dataclasses.replace(rep.calibration, curve=tuple({**c, "se": c["se"] + by}
                                                           for c in rep.calibration.curve))
    return dataclasses.replace(rep, estimates=ests, pairs=pairs, calibration=cal)


@pytest.mark.parametrize("by", [0.0, 5.0])
def test_figures_draw_every_interval_inside_the_scale(direct, by):
    import matplotlib.pyplot as plt

    rep = _widened(direct, by)
    lo, hi = rep.label_scale
    span = hi - lo
    eps = 1e-9
    ax = rep.plot("reliability")
    band = next(c for c in ax.collections if c.get_gid() == "oua_band")
    ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
    assert ys.min() >= lo - eps and ys.max() <= hi + eps
    if by:  # the clip is what holds it: without it the band would reach lo - 5 and hi + 5
        assert ys.min() == pytest.approx(lo) and ys.max() == pytest.approx(hi)
    plt.close(ax.figure)

    ax = rep.plot("forest")
    ext = _bar_extents(ax)
    assert len(ext) == 2 * len(rep.estimates)  # estimate and naive interval per policy
    assert all(lo - eps <= a and b <= hi + eps for a, b in ext)
    if not by:  # on normal data the drawn intervals are the report's own, unclipped
        want = sorted([(e.ci_low, e.ci_high) for e in rep.estimates]
                      + [(e.naive_ci_low, e.naive_ci_high) for e in rep.estimates])
        assert sorted(ext) == pytest.approx(want)
    plt.close(ax.figure)

    ax = rep.plot("contrasts")
    ext = _bar_extents(ax)
    assert ext and all(-span - eps <= a and b <= span + eps for a, b in ext)
    plt.close(ax.figure)
