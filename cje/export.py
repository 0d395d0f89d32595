"""Sharing results without Python: markdown / HTML reports and flat data exports.

* :func:`write_report` — a :class:`~cje.report.Report` as a markdown file (figures as PNG files
  beside it) or a single self-contained HTML file (figures embedded), with the estimates, status
  reasons, overlap diagnostics, transport audits, contrasts, ranking, warnings and notices.
* :func:`flat_table` / :func:`convert` — any input :func:`cje.load` reads (including cje-eval's
  formats) as one flat table ``prompt_id, policy, draw_idx, judge_score, oracle_label,
  response_length?, logprob…`` written to CSV, Parquet or JSONL.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cje.errors import CJEInputError

if TYPE_CHECKING:
    import pandas as pd

    from cje.data import EvalData
    from cje.report import Report

__all__ = ["write_report", "report_markdown", "flat_table", "convert"]


def _cell(x: Any) -> str:
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.3f}"
    return str(x)


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.2f}%"


def _tables(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) of every table the report has."""
    level = int(round(100 * (1 - report.alpha)))
    out = []
    est = [[e.policy, _cell(e.estimate), f"[{_cell(e.ci_low)}, {_cell(e.ci_high)}]", _cell(e.se),
            "—" if math.isnan(e.calibration_share) else f"{100 * e.calibration_share:.0f}%",
            str(e.n), str(e.n_labels), _cell(e.naive_estimate), e.method, e.status]
           for e in report.estimates]
    out.append(("Estimates", ["policy", "estimate", f"{level}% CI", "SE", "calibration share", "n",
                              "labels", "naive judge mean", "method", "status"], est))
    overlap = [e for e in report.estimates if "ess_raw" in e.diagnostics]
    if overlap:
        rows = []
        for e in overlap:
            d = e.diagnostics
            rows.append([e.policy, _pct(d["ess_raw"]), _pct(d.get("ess_stable", math.nan)),
                         _cell(d["max_weight_raw"]), _cell(d["hill_raw"]), _cell(d["ttc"]),
                         _cell(d["affinity"]), _cell(d["cle"]), str(d.get("n_excluded", 0))])
        out.append(("Overlap (off-policy)", ["policy", "ESS raw", "ESS stabilised", "max weight",
                                             "Hill", "TTC", "affinity", "CLE", "excluded rows"],
                    rows))
    if report.audits:
        out.append(("Transport audits", ["policy", "δ", "CI", "n", "margin", "verdict"],
                    [[a.policy, f"{a.delta:+.3f}", f"[{a.ci_low:+.3f}, {a.ci_high:+.3f}]", str(a.n),
                      "—" if a.margin is None else f"±{a.margin:g}", a.verdict]
                     for a in report.audits]))
    if report.pairs:
        out.append(("Paired contrasts (a − b, Holm-adjusted)",
                    ["a", "b", "difference", "CI", "p (Holm)", "significant"],
                    [[c.policy_a, c.policy_b, f"{c.estimate:+.3f}",
                      f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]", f"{c.p_holm:.3g}",
                      "yes" if c.significant else "no"] for c in report.pairs]))
    return out


def _lists(report: Report) -> list[tuple[str, list[str]]]:
    items = [("Status reasons", [f"{e.policy}: {r}" for e in report.estimates for r in e.reasons])]
    if report.ranking and report.pairs:
        items.append(("Ranking (braces: not separable)", [" > ".join(
            "{" + ", ".join(t) + "}" if len(t) > 1 else t[0] for t in report.ranking)]))
    items += [("Warnings", list(report.warnings)), ("Notices", list(report.notices))]
    return [(t, v) for t, v in items if v]


def _intro(report: Report) -> str:
    lo, hi = report.label_scale
    cal = report.calibration
    if cal is None:
        return "UNCALIBRATED: too few oracle labels; raw judge means on the judge scale."
    return (f"Estimates on the label scale ({lo:g}–{hi:g}) with confidence intervals that include "
            f"the calibration's own uncertainty (OUA). Calibration: {cal.mode}, {cal.n_labels} "
            f"labels on {cal.n_labelled_prompts} prompts, {cal.n_folds} folds, out-of-fold RMSE "
            f"{cal.oof_rmse:.3f}. Estimator: {report.settings.get('estimator', 'direct')}.")


def report_markdown(report: Report, figures: Sequence[str] = ()) -> str:
    """The report as markdown; ``figures`` are image paths (relative to the file) to include.

    Parameters
    ----------
    report : Report
    figures : sequence of str
        Image paths, relative to where the markdown will be written, listed under "Figures".

    Returns
    -------
    str
        Markdown text: the introduction, one table per section, lists and the figures.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=1)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> print(report_markdown(rep).splitlines()[0])
    # cje report
    """
    md = ["# cje report", "", _intro(report), ""]
    for title, header, rows in _tables(report):
        md += [f"## {title}", "", "| " + " | ".join(header) + " |",
               "|" + "|".join("---" for _ in header) + "|"]
        md += ["| " + " | ".join(r.replace("|", "\\|") for r in row) + " |" for row in rows]
        md.append("")
    for title, items in _lists(report):
        md += [f"## {title}", ""] + [f"* {i}" for i in items] + [""]
    if figures:
        md += ["## Figures", ""] + [f"![{Path(f).stem}]({f})" for f in figures] + [""]
    return "\n".join(md)


def _report_html(report: Report, figures: Sequence[tuple[str, bytes]]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>cje report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
             "padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
             "img{max-width:100%}</style></head><body>",
             "<h1>cje report</h1>", f"<p>{e(_intro(report))}</p>"]
    for title, header, rows in _tables(report):
        parts.append(f"<h2>{e(title)}</h2><table><tr>"
                     + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for title, items in _lists(report):
        parts.append(f"<h2>{e(title)}</h2><ul>" + "".join(f"<li>{e(i)}</li>" for i in items)
                     + "</ul>")
    if figures:
        parts.append("<h2>Figures</h2>")
        for name, png in figures:
            data = base64.b64encode(png).decode()
            parts.append(f"<p><img alt='{e(name)}' src='data:image/png;base64,{data}'></p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(report: Report, path: str | Path, *, figures: bool = True) -> list[Path]:
    """Write the report as markdown (``.md``) or self-contained HTML (``.html``).

    Parameters
    ----------
    report : Report
    path : str or Path
        ``*.md`` (figures go to ``<stem>_figures/`` beside it) or ``*.html``/``*.htm`` (figures
        embedded, one file to share).
    figures : bool, default True
        Include the report's figures (:func:`cje.plots.save_report_figures`).

    Returns
    -------
    list of Path
        Every file written, the report first.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import tempfile, pathlib, cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=1)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     files = write_report(rep, pathlib.Path(d) / "report.html")
    ...     text = files[0].read_text()
    >>> "<h2>Estimates</h2>" in text and "data:image/png;base64," in text
    True
    """
    import tempfile

    from cje.plots import save_report_figures

    out = Path(path)
    suffix = out.suffix.lower()
    if suffix not in (".md", ".html", ".htm"):
        raise CJEInputError(
            f"The report path must end in .md or .html; got '{out}'. Use --format/--out for "
            "table, JSON or CSV output."
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".md":
        written = []
        if figures:
            fig_dir = out.parent / f"{out.stem}_figures"
            written = save_report_figures(report, fig_dir)
        rel = [f"{out.stem}_figures/{p.name}" for p in written]
        out.write_text(report_markdown(report, rel))
        return [out, *written]
    pngs: list[tuple[str, bytes]] = []
    if figures:
        with tempfile.TemporaryDirectory() as tmp:
            pngs = [(p.stem, p.read_bytes()) for p in save_report_figures(report, tmp)]
    out.write_text(_report_html(report, pngs))
    return [out]


def flat_table(data: EvalData) -> pd.DataFrame:
    """One flat row per response: ``prompt_id, policy, draw_idx, judge_score, oracle_label``,
    the covariates and the log-probability columns (``logprob_base``, ``logprob[<target>]``).

    Parameters
    ----------
    data : EvalData

    Returns
    -------
    pandas.DataFrame
        Calibration-only rows have policy ``"(calibration)"``.

    Examples
    --------
    >>> import cje
    >>> d = cje.load({"prompt_id": ["a", "b"], "judge_score": [3, 8], "oracle_label": [2, None]},
    ...              policy="m", judge_scale=(0, 10), label_scale=(1, 5))
    >>> flat_table(d).columns.tolist()
    ['prompt_id', 'policy', 'draw_idx', 'judge_score', 'oracle_label']
    """
    import numpy as np
    import pandas as pd

    names = np.append(np.asarray(data.policies, dtype=object), "(calibration)")
    cols: dict[str, Any] = {
        "prompt_id": data.prompt_id,
        "policy": names[data.policy_code],
        "draw_idx": data.draw_idx,
        "judge_score": data.judge_score,
        "oracle_label": data.oracle_label,
    }
    cols.update(data.covariates)
    for k, v in data.logprobs.items():
        cols["logprob_base" if k == "base" else f"logprob[{k}]"] = v
    return pd.DataFrame(cols)


def convert(source: Any, destination: str | Path, *,
            judge_scale: tuple[float, float] | None = None,
            label_scale: tuple[float, float] | None = None,
            covariates: Sequence[str] = (), columns: dict[str, str] | None = None) -> Path:
    """Read anything :func:`cje.load` reads and write it as one flat table.

    Parameters
    ----------
    source : path, DataFrame or EvalData
    destination : str or Path
        ``.csv``, ``.parquet`` or ``.jsonl``.
    judge_scale, label_scale, covariates, columns
        As in :func:`cje.load` (e.g. ``covariates=["response_length"]`` derives the length).

    Returns
    -------
    Path

    Examples
    --------
    >>> import tempfile, pathlib, pandas as pd
    >>> with tempfile.TemporaryDirectory() as d:
    ...     out = convert({"prompt_id": ["a", "b"], "policy": ["m", "m"],
    ...                    "judge_score": [0.2, 0.9]}, pathlib.Path(d) / "flat.csv",
    ...                   judge_scale=(0, 1))
    ...     pd.read_csv(out).shape
    (2, 5)
    """
    from cje.data import load

    out = Path(destination)
    suffix = out.suffix.lower()
    if suffix not in (".csv", ".parquet", ".jsonl"):
        raise CJEInputError(
            f"The output must end in .csv, .parquet or .jsonl; got '{out}'."
        )
    frame = flat_table(load(source, judge_scale=judge_scale, label_scale=label_scale,
                            covariates=covariates, columns=columns))
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        frame.to_csv(out, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_json(out, orient="records", lines=True)
    return out
