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
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cje._memo import remember
from cje._text import MAX_PAIRS_SHOWN, NOT_OK_NOTE, level_text, p_text, scale_text, starred, visible
from cje.errors import CJEInputError
from cje.readers import file_signature
from cje.tables import flat_table

if TYPE_CHECKING:

    from cje.report import Report

__all__ = ["write_report", "report_suffix", "report_markdown", "md_text", "flat_table", "convert",
           "provenance", "content_hash"]

_HASH_CHUNK = 1 << 20


def content_hash(source: Any) -> dict[str, Any]:
    """Where an input came from and a SHA-256 of its content, for the provenance of an output.

    * a file: ``{"path", "sha256"}`` of its bytes;
    * a directory: ``{"path", "sha256", "n_files"}``, the hash of every file under it in sorted
      order of their relative paths (each path and each file's bytes enter the hash, so a
      renamed or moved file changes it);
    * a pandas or polars DataFrame: ``{"in_memory": "<type> <rows>x<columns>", "sha256"}``,
      a hash of the column names and the data (``sha256`` is ``None`` when the data cannot be
      hashed, e.g. list cells);
    * anything else in memory (a dict of arrays, an ``EvalData``): ``{"in_memory": "<type>"}``;
    * a path that does not exist (e.g. a built-in data set's name): ``{"path", "sha256": None}``.

    Parameters
    ----------
    source : str, Path, DataFrame or other object

    Returns
    -------
    dict

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "a.csv").write_bytes(b"x")
    >>> content_hash(d / "a.csv")["sha256"][:12]
    '2d711642b726'
    >>> content_hash(d)["n_files"]
    1
    >>> content_hash({"x": [1]})
    {'in_memory': 'dict'}
    """
    import hashlib

    if isinstance(source, (str, Path)):
        path = Path(source)
        sig = file_signature(path) if path.exists() else None
        key = (os.path.abspath(path), sig)
        if sig is not None and key in _HASH_MEMO:  # the same bytes as when hashed
            return {"path": str(source), **_HASH_MEMO[key]}
        got = _hash_path(path)
        if sig is not None and got is not None:
            remember(_HASH_MEMO, key, got, _HASH_MEMO_SIZE)
        return {"path": str(source), **(got or {"sha256": None})}
    kind = type(source).__name__
    mod = type(source).__module__.split(".")[0]
    if kind == "DataFrame" and mod in ("pandas", "polars"):
        rows, cols = source.shape
        desc = f"{mod} DataFrame {rows}x{cols}"
        try:
            h = hashlib.sha256(repr([str(c) for c in source.columns]).encode())
            if mod == "pandas":
                _hash_pandas_frame(h, source)
            else:
                h.update(source.hash_rows().to_numpy().tobytes())
            digest: str | None = h.hexdigest()
        except (TypeError, ValueError):  # unhashable cells (lists, dicts)
            digest = None
        return {"in_memory": desc, "sha256": digest}
    return {"in_memory": kind}


#: :func:`content_hash` of files and directories, by (absolute path, :func:`file_signature`): a
#: warm call on the same unchanged input does not read and hash it again (the most recent 32).
_HASH_MEMO: dict[tuple[Any, ...], dict[str, Any]] = {}
_HASH_MEMO_SIZE = 32


def _hash_path(path: Path) -> dict[str, Any] | None:
    """The ``sha256`` (and ``n_files`` of a directory) of a file's or a directory's bytes, as
    :func:`content_hash` reports them; ``None`` for a path that is neither."""
    import hashlib

    if path.is_file():
        h = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                h.update(chunk)
        return {"sha256": h.hexdigest()}
    if path.is_dir():
        h = hashlib.sha256()
        files = sorted((p for p in path.rglob("*") if p.is_file()),
                       key=lambda p: p.relative_to(path).as_posix())
        for f in files:
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            with f.open("rb") as fh:
                while chunk := fh.read(_HASH_CHUNK):
                    h.update(chunk)
            h.update(b"\0")
        return {"sha256": h.hexdigest(), "n_files": len(files)}
    return None


def _hash_pandas_frame(h: Any, frame: Any) -> None:
    """Feed a pandas DataFrame's index and data into ``h``, column by column, by content (not
    memory layout): numeric columns as their bytes, Arrow-backed strings as their character data
    and relative offsets (a copy or a slice of the same rows hashes the same), anything else
    through ``pandas.util.hash_pandas_object``. Hashing the buffers runs at SHA-256's speed, ~6×
    faster than ``hash_pandas_object`` on 10⁷ rows of string ids."""
    import numpy as np
    import pandas as pd

    idx = frame.index
    if isinstance(idx, pd.RangeIndex):
        h.update(f"range({idx.start},{idx.stop},{idx.step})".encode())
    else:
        h.update(pd.util.hash_pandas_object(idx).to_numpy().tobytes())
    for j in range(frame.shape[1]):
        col = frame.iloc[:, j]
        h.update(f"\0{j}:{col.dtype}\0".encode())
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "biufcmM":
            h.update(np.ascontiguousarray(col.to_numpy()))  # the buffer itself, no copy
            continue
        if isinstance(col.array, pd.arrays.ArrowStringArray):
            import pyarrow as pa

            arr = pa.array(col.array)
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
            if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
                _, offsets, data = arr.buffers()
                off = np.frombuffer(offsets, dtype=width)[arr.offset:arr.offset + len(arr) + 1]
                h.update(np.ascontiguousarray(off - off[0], dtype=np.int64) if off[0] or width is np.int32
                         else off)
                h.update(memoryview(data)[int(off[0]):int(off[-1])] if data is not None else b"")
                if arr.null_count:
                    h.update(np.asarray(arr.is_null()).tobytes())
                continue
        h.update(pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes())


def _versions() -> dict[str, str]:
    import platform
    import sys

    import numpy as np

    out = {"cje": getattr(sys.modules.get("cje"), "__version__", "unknown"),
           "python": platform.python_version(), "numpy": np.__version__}
    for lib in ("pandas", "polars"):
        mod = sys.modules.get(lib)  # only what the run used: importing polars to ask is slow
        if mod is not None:
            out[lib] = getattr(mod, "__version__", "unknown")
    return out


def provenance(inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What made an output: package and library versions, the inputs with a content hash
    (:func:`content_hash`) and the UTC time.

    The options of a run are not repeated here: a :class:`~cje.report.Report` keeps them in
    ``settings`` (a :class:`~cje.bias.BiasAudit` in its provenance's ``options``).

    Parameters
    ----------
    inputs : dict, optional
        Role → source, e.g. ``{"data": "scores.csv", "probes['a']": "a_probe.jsonl"}``; a
        ``None`` source is left out.

    Returns
    -------
    dict
        ``cje_version``, ``created_utc`` (ISO 8601, seconds), ``python``, ``numpy`` (and
        ``pandas``/``polars`` when loaded) and ``inputs`` (role → :func:`content_hash`).

    Examples
    --------
    >>> p = provenance({"data": {"x": [1.0]}, "fresh_draws": None})
    >>> sorted(p)[:3], p["inputs"]
    (['cje_version', 'created_utc', 'inputs'], {'data': {'in_memory': 'dict'}})
    """
    from datetime import datetime, timezone

    v = _versions()
    out: dict[str, Any] = {"cje_version": v.pop("cje"),
                           "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           **v}
    out["inputs"] = {role: content_hash(src) for role, src in (inputs or {}).items()
                     if src is not None}
    return out


def provenance_lines(prov: dict[str, Any], options: dict[str, Any] | None = None) -> list[str]:
    """The provenance as short lines for the markdown/HTML reports (empty for none)."""
    if not prov:
        return []
    libs = ", ".join(f"{k} {prov[k]}" for k in ("python", "numpy", "pandas", "polars") if k in prov)
    out = [f"cje {prov.get('cje_version', '?')}; {libs}",
           f"created {prov.get('created_utc', '?')} (UTC)"]
    for role, src in (prov.get("inputs") or {}).items():
        where = src.get("path", src.get("in_memory", "?"))
        digest = src.get("sha256")
        files = f", {src['n_files']} files" if "n_files" in src else ""
        out.append(f"input {role}: {where} (sha256 {digest or 'not computed'}{files})")
    if options:
        out.append("options: " + ", ".join(f"{k}={v!r}" for k, v in options.items()))
    return out


class TextCell(str):
    """A cell holding text from the data or the run (a name, a reason): escaped for markdown.
    Cells built here from numbers are plain ``str`` and only have ``|`` escaped."""


#: A start that would open a heading, a nested list or a numbered list inside a list item.
_MD_LEADING = re.compile(r"^(\s*)([#+\-]|\d+[.)])")
_MD_SPECIAL = re.compile(r"([\\`*\[\]{}|])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")


def md_text(text: Any) -> str:
    r"""Text made inert in markdown: a name or reason shows as itself and cannot become HTML,
    a link, emphasis or code, or split a table row.

    Control characters and newlines are shown as escapes (:func:`cje.report.visible`); ``<``,
    ``>`` and ``&`` become HTML entities, so no tag can form (renderers that pass raw HTML,
    like Python-Markdown under mkdocs, show them as text); the markdown punctuation ``\ ` * [ ] { }
    |`` and word-boundary underscores are backslash-escaped, and so is a leading ``#``, ``-``,
    ``+`` or ``1.`` that would start a heading or a list (CommonMark and Python-Markdown).

    Parameters
    ----------
    text : object

    Returns
    -------
    str

    Examples
    --------
    >>> print(md_text('"><img src=x onerror=alert(2)>'))
    "&gt;&lt;img src=x onerror=alert(2)&gt;
    >>> print(md_text("a|b\nc [x](javascript:y) gpt_4o"))
    a\|b\\nc \[x\](javascript:y) gpt_4o
    """

    def esc(m: re.Match[str]) -> str:
        return "\\" + m.group(0)

    out = _MD_SPECIAL.sub(esc, visible(text))
    out = _MD_LEADING.sub(lambda m: m.group(1) + m.group(2)[:-1] + "\\" + m.group(2)[-1], out)
    return html.escape(out, quote=False)


def _md_cell(c: str) -> str:
    return md_text(c) if isinstance(c, TextCell) else c.replace("|", "\\|")


def _html_text(c: Any) -> str:
    """Element text (never an attribute value: those also need quotes escaped)."""
    return html.escape(visible(c), quote=False)


def _cell(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.{digits}f}"
    return str(x)


def _signed(x: float, digits: int = 3) -> str:
    return "—" if x != x else f"{x:+.{digits}f}"


def _p(x: float, alpha: float | None = None) -> str:
    return p_text(x, alpha)


def _pct(x: float) -> str:
    return "—" if math.isnan(x) else f"{100 * x:.2f}%"


#: CSS class of an estimate's row in the HTML report, by status (OK rows are plain).
STATUS_CLASS = {"REFUSED": "refused", "CAUTION": "caution"}

#: The HTML report's style: REFUSED rows tinted red, CAUTION rows amber; interval cells
#: (class ``ci``) never wrap, so "[2.83, 3.28]" stays on one line.
_CSS = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;"
        "padding:.25em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
        "td.ci{white-space:nowrap}tr.refused td{background:#fbdcdc}"
        "tr.caution td{background:#fff3cd}img{max-width:100%}")


def _is_ci(header: str) -> bool:
    """A column of intervals (its header names a CI): its cells must not wrap."""
    return re.search(r"\bCI\b", header) is not None


class Section:
    """One part of the report: a title, a caption, a table or a list, and a note after it."""

    def __init__(self, title: str, caption: str = "", header: Sequence[str] = (),
                 rows: Sequence[Sequence[str]] = (), items: Sequence[str] = (), note: str = "",
                 row_classes: Sequence[str] = ()):
        self.title, self.caption, self.note = title, caption, note
        self.header, self.rows, self.items = list(header), [list(r) for r in rows], list(items)
        # HTML only: a CSS class per row ("refused", "caution" or ""), e.g. to tint REFUSED rows
        self.row_classes = list(row_classes) or [""] * len(self.rows)


def _sections(report: Report, max_pairs: int | None) -> list[Section]:
    """Every part of the report, in order, with the same words in markdown and HTML."""
    lv = level_text(report.alpha)
    out = []
    info = report._label_info()
    dg = report._digits()
    est = [[TextCell(e.policy), _cell(e.estimate, dg), f"[{_cell(e.ci_low, dg)}, {_cell(e.ci_high, dg)}]",
            _cell(e.se, dg),
            "—" if math.isnan(e.calibration_share) else f"{100 * e.calibration_share:.0f}%",
            str(e.n), "?" if own is None else str(own), TextCell(src), _cell(e.naive_estimate, dg),
            TextCell(e.method), TextCell(e.status)]
           for e, (own, src) in zip(report.estimates, info, strict=True)]
    out.append(Section(
        "Estimates", f"Per-policy {lv} confidence intervals with the calibration's own "
        "uncertainty (OUA), not adjusted for multiplicity. own labels = oracle labels on the "
        "policy's own responses.",
        ["policy", "estimate", f"{lv} CI (per policy)", "SE", "calibration share", "n",
         "own labels", "calibration labels from", "naive judge mean (rescaled to the label scale)",
         "method", "status"], est,
        note=report._label_note() or "",
        row_classes=[STATUS_CLASS.get(e.status, "") for e in report.estimates]))
    overlap = [e for e in report.estimates if "ess_raw" in e.diagnostics]
    if overlap:
        rows = []
        for e in overlap:
            d = e.diagnostics
            rows.append([TextCell(e.policy), _pct(d["ess_raw"]), _pct(d.get("ess_stable", math.nan)),
                         _cell(d["max_weight_raw"]), _cell(d["hill_raw"]), _cell(d["ttc"]),
                         _cell(d["affinity"]), _cell(d["cle"]), str(d.get("n_excluded", 0))])
        out.append(Section("Overlap (off-policy)", "", ["policy", "ESS raw", "ESS stabilised",
                                                        "max weight", "Hill", "TTC", "affinity",
                                                        "CLE", "excluded rows"], rows))
    if report.audits:
        out.append(Section(
            "Transport audits", f"δ = mean(label − calibrated judge) on the probe slice, with its "
            f"{lv} interval.", ["policy", "δ", f"{lv} CI", "n", "margin", "verdict"],
            [[TextCell(a.policy), _signed(a.delta, dg),
              f"[{_signed(a.ci_low, dg)}, {_signed(a.ci_high, dg)}]",
              str(a.n), "—" if a.margin is None else f"±{a.margin:g}", TextCell(a.verdict)]
             for a in report.audits]))
    if report.pairs:
        shown, omitted = report._pairs_shown(max_pairs)
        n = len(report.pairs)
        bad = report._not_ok()
        marked = any(c.policy_a in bad or c.policy_b in bad for c in shown)
        note = " ".join(x for x in (omitted, f"({NOT_OK_NOTE}.)" if marked else None) if x)
        out.append(Section(
            f"Paired contrasts (per-pair unadjusted {lv} intervals; p-values Holm-adjusted over "
            f"all {n} pairs)", f"Paired contrasts: {report._contrast_caption()}",
            ["a", "b", "difference a − b", f"{lv} CI (per pair, unadjusted)", "p (unadjusted)",
             f"p (Holm, all {n} pairs)", f"significant (p Holm < {report.alpha:g})"],
            [[TextCell(starred(c.policy_a, c.policy_a, bad)), TextCell(starred(c.policy_b, c.policy_b, bad)),
              _signed(c.estimate, dg), f"[{_signed(c.ci_low, dg)}, {_signed(c.ci_high, dg)}]",
              _p(c.p_value, report.alpha), _p(c.p_holm, report.alpha),
              "yes" if c.p_holm < report.alpha else "no"] for c in shown],
            note=note))
    reasons = [TextCell(f"{e.policy}: {r}") for e in report.estimates for r in e.reasons]
    if reasons:
        out.append(Section("Status reasons", items=reasons))
    unranked = report._unranked()
    if report.ranking and (report.pairs or len(report.estimates) > 1):
        tiers, legend = report._ranking_text()
        out.append(Section(f"Ranking ({legend})", items=[TextCell(tiers)]))
    if unranked:
        out.append(Section("Not ranked", "Policies left out of the ranking, with the reason.",
                            items=[TextCell(f"{p} ({why})") for p, why in unranked]))
    total = sum(int(v) for v in report.excluded.values())
    if total:
        out.append(Section(
            "Excluded rows", "Rows dropped on request (on_invalid='drop', CLI --drop-invalid), by "
            "reason; none of them enters any estimate.", ["reason", "rows"],
            [[TextCell(k), str(v)] for k, v in report.excluded.items()] + [["total", str(total)]]))
    else:
        out.append(Section("Excluded rows", "None: no row was dropped (on_invalid='drop', CLI "
                                             "--drop-invalid, was not needed or not used)."))
    out += [Section(t, items=[TextCell(i) for i in v]) for t, v in
            (("Warnings", report.warnings), ("Notices", report.notices)) if v]
    lines = provenance_lines(report.provenance, report.settings)
    if not report.provenance:
        lines.insert(0, "Not recorded: the report was built by hand or read from JSON written "
                        "before cje recorded provenance.")
    out.append(Section("Provenance", "What made this report: versions, inputs with their "
                        "SHA-256, time and options.", items=[TextCell(i) for i in lines]))
    return out


def _intro(report: Report) -> str:
    lo, hi = scale_text(*report.label_scale)
    cal = report.calibration
    if cal is None:
        return "UNCALIBRATED: too few oracle labels; raw judge means on the judge scale."
    return (f"Estimates on the label scale ({lo}–{hi}) with confidence intervals that include "
            f"the calibration's own uncertainty (OUA). Calibration: {cal.mode}, {cal.n_labels} "
            f"labels on {cal.n_labelled_prompts} prompts, {cal.n_folds} folds, out-of-fold RMSE "
            f"{cal.oof_rmse:.{report._digits()}f}. Estimator: {report.settings.get('estimator', 'direct')}.")


def report_markdown(report: Report, figures: Sequence[str] = (), *,
                    max_pairs: int | None = MAX_PAIRS_SHOWN, figure_notes: Sequence[str] = ()) -> str:
    """The report as markdown; ``figures`` are image paths (relative to the file) to include.

    Every name, reason, warning and notice is escaped (:func:`md_text`), so a hostile policy
    name renders as text under any markdown renderer.

    Parameters
    ----------
    report : Report
    figures : sequence of str
        Image paths, relative to where the markdown will be written, listed under "Figures".
    max_pairs : int or None, default 45
        List at most this many contrasts (see :meth:`cje.report.Report.summary`); a line says
        how many were left out and where to find all of them. ``None`` lists all.
    figure_notes : sequence of str
        Figures that were skipped or failed, listed under "Figures".

    Returns
    -------
    str
        Markdown text: the introduction, one table or list per section, and the figures.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(300, rng=1)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> text = report_markdown(rep)
    >>> print(text.splitlines()[0])
    # cje report
    >>> print(next(ln for ln in text.splitlines() if ln.startswith("## Paired")))
    ## Paired contrasts (per-pair unadjusted 95% intervals; p-values Holm-adjusted over all 10 pairs)
    """
    return render_markdown("cje report", _intro(report), _sections(report, max_pairs), figures,
                           figure_notes)


def render_markdown(title: str, intro: str, sections: Sequence[Section],
                    figures: Sequence[str] = (), figure_notes: Sequence[str] = ()) -> str:
    """Markdown of a titled document of :class:`Section` parts (a table or a list each), every
    text escaped with :func:`md_text`; shared by the analysis report and the monitor report."""
    md = [f"# {md_text(title)}", "", md_text(intro), ""]
    for sec in sections:
        md += [f"## {md_text(sec.title)}", ""]
        if sec.caption:
            md += [md_text(sec.caption), ""]
        if sec.header:
            md += ["| " + " | ".join(md_text(h) for h in sec.header) + " |",
                   "|" + "|".join("---" for _ in sec.header) + "|"]
            md += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in sec.rows]
            md.append("")
        if sec.items:
            md += [f"* {md_text(i)}" for i in sec.items] + [""]
        if sec.note:
            md += [md_text(sec.note), ""]
    if figures or figure_notes:
        # Percent-encoded: a space or a parenthesis in the file name ("my report (v2).md") ends
        # a CommonMark link destination, and the figure would show as literal text.
        md += ["## Figures", ""] + [f"![{md_text(Path(f).stem)}]({quote(f, safe='/')})"
                                    for f in figures]
        md += [f"* {md_text(n)}" for n in figure_notes] + [""]
    return "\n".join(md)


def _report_html(report: Report, figures: Sequence[tuple[str, bytes]], *,
                 max_pairs: int | None = MAX_PAIRS_SHOWN, figure_notes: Sequence[str] = ()) -> str:
    return render_html("cje report", _intro(report), _sections(report, max_pairs), figures,
                       figure_notes)


def render_html(title: str, intro: str, sections: Sequence[Section],
                figures: Sequence[tuple[str, bytes]] = (), figure_notes: Sequence[str] = ()) -> str:
    """Self-contained HTML of a titled document of :class:`Section` parts (figures embedded as
    PNG, REFUSED/CAUTION rows tinted, interval cells unbroken), every text escaped."""
    e = _html_text
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{e(title)}</h1>", f"<p>{e(intro)}</p>"]
    for sec in sections:
        parts.append(f"<h2>{e(sec.title)}</h2>")
        if sec.caption:
            parts.append(f"<p>{e(sec.caption)}</p>")
        if sec.header:
            parts.append("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in sec.header) + "</tr>")
            ci = [_is_ci(h) for h in sec.header]
            for row, cls in zip(sec.rows, sec.row_classes, strict=True):
                tr = f"<tr class='{cls}'>" if cls else "<tr>"
                parts.append(tr + "".join(f"<td class='ci'>{e(c)}</td>" if is_ci else f"<td>{e(c)}</td>"
                                          for c, is_ci in zip(row, ci, strict=True)) + "</tr>")
            parts.append("</table>")
        if sec.items:
            parts.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in sec.items) + "</ul>")
        if sec.note:
            parts.append(f"<p>{e(sec.note)}</p>")
    if figures or figure_notes:
        parts.append("<h2>Figures</h2>")
        for name, png in figures:
            data = base64.b64encode(png).decode()
            alt = html.escape(visible(name), quote=True)
            parts.append(f"<p><img alt='{alt}' src='data:image/png;base64,{data}'></p>")
        if figure_notes:
            parts.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in figure_notes) + "</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _draw_figures(report: Report, directory: Path) -> tuple[list[Path], list[str]]:
    """Save the report's figures; a figure whose function returns ``None`` (it chose not to
    draw, e.g. too many policies) or fails is left out with a note, never silently."""
    from cje.plots import save_report_figures

    notes: list[str] = []
    return save_report_figures(report, directory, notes=notes), notes


def report_suffix(path: str | Path, what: str = "The report path") -> str:
    """The report's kind from its suffix (``.md``, ``.html`` or ``.htm``), or a
    :class:`~cje.errors.CJEInputError` naming ``what`` (the CLI checks ``--report`` with it
    before any analysis runs).

    Parameters
    ----------
    path : str or Path
    what : str
        How the message names the path.

    Returns
    -------
    str
        The lower-case suffix.

    Examples
    --------
    >>> report_suffix("r.HTML")
    '.html'
    """
    suffix = Path(path).suffix.lower()
    if suffix not in (".md", ".html", ".htm"):
        raise CJEInputError(
            f"{what} must end in .md or .html; got '{path}'. Use --format/--out for table, JSON "
            "or CSV output."
        )
    return suffix


def write_report(report: Report, path: str | Path, *, figures: bool = True,
                 max_pairs: int | None = MAX_PAIRS_SHOWN) -> list[Path]:
    """Write the report as markdown (``.md``) or self-contained HTML (``.html``).

    Parameters
    ----------
    report : Report
    path : str or Path
        ``*.md`` (figures go to ``<stem>_figures/`` beside it) or ``*.html``/``*.htm`` (figures
        embedded, one file to share).
    figures : bool, default True
        Include the report's figures (forest, reliability, contrasts, overlap, weight tail);
        one that its plotting function skips (returns ``None``) or that fails is named under
        "Figures" with the reason.
    max_pairs : int or None, default 45
        List at most this many contrasts; ``None`` lists all.

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
    sections = _sections(report, max_pairs)
    draw = (lambda d: _draw_figures(report, d)) if figures else None
    return write_document(path, "cje report", _intro(report), sections, draw)


def write_document(path: str | Path, title: str, intro: str, sections: Sequence[Section],
                   draw: Any = None) -> list[Path]:
    """Write a titled document of :class:`Section` parts as markdown (``.md``, figures saved to
    ``<stem>_figures/`` beside it) or self-contained HTML (``.html``/``.htm``, figures embedded);
    shared by :func:`write_report` and the monitor report.

    Parameters
    ----------
    path : str or Path
    title, intro : str
    sections : sequence of Section
    draw : callable, optional
        ``draw(directory) -> (png paths, notes)`` saves the figures into ``directory``; the
        notes name figures that were left out. ``None``: no figures.

    Returns
    -------
    list of Path
        Every file written, the document first.
    """
    import tempfile

    out = Path(path)
    suffix = report_suffix(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".md":
        written, notes = draw(out.parent / f"{out.stem}_figures") if draw else ([], [])
        rel = [f"{out.stem}_figures/{p.name}" for p in written]
        out.write_text(render_markdown(title, intro, sections, rel, notes), encoding="utf-8")
        return [out, *written]
    pngs: list[tuple[str, bytes]] = []
    notes = []
    if draw:
        with tempfile.TemporaryDirectory() as tmp:
            paths, notes = draw(Path(tmp))
            pngs = [(p.stem, p.read_bytes()) for p in paths]
    out.write_text(render_html(title, intro, sections, pngs, notes), encoding="utf-8")
    return [out]


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

    Notes
    -----
    A Parquet file carries the provenance (:func:`provenance`: cje and library versions, the
    source's path and SHA-256, the UTC time) as JSON in the schema's key-value metadata under
    ``cje_provenance`` (``pyarrow.parquet.read_schema(path).metadata[b"cje_provenance"]``).
    CSV and JSONL have no place for metadata that readers keep, and a provenance column would
    be one more column in a data file meant to be read back, so they carry none.

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
        import json

        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        meta = dict(table.schema.metadata or {})
        meta[b"cje_provenance"] = json.dumps(provenance({"source": source})).encode()
        pq.write_table(table.replace_schema_metadata(meta), out)
    else:
        frame.to_json(out, orient="records", lines=True)
    return out
