"""The ``cje`` command line: ``cje analyze`` (your data), ``cje monitor`` (over time), ``cje plan``
(a label budget) and ``cje demo`` (built-in data)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_ANALYZE_HELP = """\
Estimate each policy's value on the oracle-label scale from LLM-judge scores calibrated on a
slice of oracle labels, with 95% confidence intervals that include the calibration's own
uncertainty.

PATH is one of
  * a long-format file (.jsonl, .csv or .parquet), one row per judged response, with columns
      prompt_id     the prompt the response answers (rows of one prompt are clustered)
      policy        the model / prompt / agent version that produced the response
      judge_score   the LLM judge's score
      oracle_label  the trusted label (human rating, KPI, ...) where you have one; empty elsewhere
    and optionally draw_idx, response_length or response, covariate columns, and
      label_probability  the probability with which the row was sent for a label (a non-uniform
                         labelling design, e.g. from cje plan --next; empty on unlabelled rows)
  * a cje-eval fresh-draws directory of <policy>_responses.jsonl files;
  * logged data of one logging policy for off-policy evaluation: the columns above plus
    logprob_base and logprob[<target>] (sequence log-probabilities of each logged response),
    or cje-eval's logged JSONL (base_policy_logprob, target_policy_logprobs). Each target is
    then estimated with --estimator, using --fresh-draws of the targets for the DR family.

examples:
  cje analyze results.csv --judge-scale 0 10 --label-scale 1 5
  cje analyze fresh_draws/ --probe unhelpful=unhelpful_probe.jsonl --transport-margin 0.05
  cje analyze results.csv --format json --out report.json
  cje analyze logged_data.jsonl --fresh-draws fresh_draws/ --estimator stacked-dr
"""


_BIAS_HELP = """\
Measure judge biases on your own data, each with an effect, a confidence interval, a Holm-adjusted
p-value, a flag and the mitigation. Every test the columns allow is run (one per judge).

Pointwise scores (one row per judged response):
  verbosity        prompt_id, judge_score, oracle_label (some rows), response_length (or response)
  self-preference  prompt_id, judge, judge_score, judge_family, policy_family
                   (+ oracle_label, or a crossed panel: every judge scores every response)
Pairwise verdicts (one row per verdict; winner is a, b or tie; slot_a is 1 or 2):
  position         prompt_id, a_id, b_id, slot_a, winner  (each pair judged in both orders)
  verbosity        + human_winner, len_a, len_b
  self-preference  + human_winner, a_family, b_family, judge_family

examples:
  cje bias scores.csv
  cje bias scores.csv --pairs verdicts.jsonl --format json --out bias.json
"""


_MONITOR_HELP = """\
Continuous evaluation: cut time-stamped judged rows into windows and report, per window and
policy, the calibrated estimate with its 95% interval beside the raw judge mean, and a status:

  OK / CAUTION  calibrated on the window's own labels (at least --min-labels), or on the
                reference calibration (CAUTION: a judge drift since would go unseen)
  DRIFT         the window's labels no longer fit the reference calibration (the judge moved);
                the calibration restarts from the window where the drift starts
  SHIFT         the judge scores moved against the reference: a shift in scores, not proof of
                drift (better traffic moves scores too)
  REFUSED       no estimate (e.g. a window with one row)

Rows need not be sorted; several rows may share a time stamp; empty windows are skipped.

examples:
  cje monitor traffic.csv --window 1D --judge-scale 0 10 --label-scale 1 5
  cje monitor traffic.parquet --window 7D --reference labels.csv --format json --out monitor.json
"""


_PLAN_HELP = """\
Plan a label budget from a pilot: per policy (and per paired contrast with --contrasts), the
oracle labels (and prompts) that reach a target half-width of the 95% intervals, how sure the
plan is, the half-width a budget buys and the cheapest split when a label costs --label-cost
judged responses. The pilot is judged responses with a uniform random slice of oracle labels
(the exact variance split), or a report written by `cje analyze --format json` (.json; an
approximate split). Direct mode (fresh draws of each policy) only.

Active labelling: --next N chooses about N unlabelled rows to label next (more for the policies
whose intervals are widest or that have no labels, more in the judge-score regions where the
calibration's residuals are widest), drawn at random with known probabilities; --out writes
them (prompt_id, policy, draw_idx, judge_score, label_probability, label_stratum) and --design
writes every row's label_probability and label_stratum for the second round's analysis
(`cje analyze` on the data with the new labels and these two columns).

examples:
  cje plan pilot.csv --half-width 0.05 --judge-scale 0 10 --label-scale 1 5
  cje plan pilot.csv --half-width 0.05 --label-cost 20 --budget 50000 --json plan.json --plot plan.png
  cje plan pilot.csv --half-width 0.02 --next 200 --out to_label.csv --design design.csv
"""


def _pair(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    a, b = text.split("=", 1)
    return a.strip(), b.strip()


def _mapping(pairs: Sequence[tuple[str, str]], flag: str) -> dict[str, str]:
    """NAME=VALUE pairs of a repeatable flag as a dict, refusing a NAME given twice with
    different values (a dict would keep the last one silently)."""
    from cje.errors import CJEInputError

    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out and out[name] != value:
            raise CJEInputError(f"{flag} gives {name!r} twice ({name}={out[name]} and "
                                f"{name}={value}); give it once.")
        out[name] = value
    return out


def _scale_args(p: argparse.ArgumentParser, label: str = "range of the oracle labels, e.g. 1 5 "
                "(default: inferred from the data)") -> None:
    """--judge-scale and --label-scale, the same on every command that reads judged rows."""
    p.add_argument("--judge-scale", nargs=2, type=float, metavar=("LOW", "HIGH"),
                   help="range of the judge scores, e.g. 0 10 (default: inferred from the data, "
                        "with a notice)")
    p.add_argument("--label-scale", nargs=2, type=float, metavar=("LOW", "HIGH"), help=label)


def _column_arg(p: argparse.ArgumentParser) -> None:
    """--column, the same on every command that reads judged rows."""
    p.add_argument("--column", action="append", type=_pair, default=[], metavar="STD=YOURS",
                   help="map a standard column name to yours, e.g. --column judge_score=score "
                        "(repeatable)")


def _parser() -> argparse.ArgumentParser:
    from cje.estimators import registered  # --estimator choices: every registered estimator

    p = argparse.ArgumentParser(
        prog="cje",
        description="Calibrated LLM-as-a-judge evaluation: honest estimates on the label scale.",
    )
    from cje import __version__

    p.add_argument("--version", action="version", version=f"cje {__version__}",
                   help="print the version of cje and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser(
        "analyze",
        help="analyse your judged responses (file or fresh-draws directory)",
        description=_ANALYZE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("path", metavar="PATH",
                   help="data file, cje-eval fresh-draws directory, or a glob / directory of "
                        "Parquet, CSV or JSON Lines files (quote the glob: 'dir/*.parquet')")
    _scale_args(a, label="scale of the oracle labels; results are reported on it")
    a.add_argument("--engine", choices=("auto", "memory", "polars", "dask"), default="auto",
                   help="where rows are processed: in memory, or out of core by polars' "
                        "streaming engine or Dask (direct mode, and logged data without probes; "
                        "default auto: out of core with "
                        "polars only when the files would not fit in half the free memory)")
    a.add_argument("--scheduler", metavar="ADDRESS",
                   help="--engine dask: address of a running Dask scheduler, e.g. "
                        "tcp://host:8786 (default: a local cluster on this machine)")
    a.add_argument("--calibration", metavar="FILE",
                   help="extra labelled rows (prompt_id, judge_score, oracle_label) used only to "
                        "fit the calibrator")
    a.add_argument("--probe", action="append", type=_pair, default=[], metavar="POLICY=FILE",
                   help="oracle-labelled probe slice of a policy's own responses: audits "
                        "whether the calibration transports to it and corrects its level "
                        "(repeatable)")
    a.add_argument("--no-probe-correction", action="store_true",
                   help="probe slices only audit the calibration; by default a policy's probe "
                        "labels also correct its level (its residual term), so a failed "
                        "transport audit no longer refuses it")
    a.add_argument("--transport-margin", type=float, metavar="D",
                   help="practical margin (label units) that grades the audits PASS/FAIL")
    a.add_argument("--alpha", type=float, default=0.05,
                   help="1 - confidence level of the intervals (default 0.05)")
    a.add_argument("--mode", choices=("auto", "monotone", "two_stage"), default="auto",
                   help="calibration map (default auto: two-stage only if it clearly wins)")
    a.add_argument("--covariate", action="append", default=[], metavar="NAME",
                   help="calibration covariate, e.g. response_length (repeatable)")
    _column_arg(a)
    a.add_argument("--policy", action="append", default=None, metavar="NAME",
                   help="report only these policies (repeatable)")
    a.add_argument("--folds", type=int, default=5, help="cross-fitting folds K (default 5)")
    a.add_argument("--seed", type=int, default=0, help="seed of the fold hash (default 0)")
    a.add_argument("--fresh-draws", metavar="PATH",
                   help="logged data: fresh draws of the target policies (file or cje-eval "
                        "directory), for 'direct' and the doubly robust estimators")
    a.add_argument("--estimator", default="auto", choices=("auto", *registered()),
                   help="logged data: the off-policy estimator (default auto: stacked-dr with "
                        "fresh draws, calibrated-ips without)")
    a.add_argument("--var-cap", type=float, metavar="RHO",
                   help="SIMCal-W variance cap of calibrated-ips and the doubly robust "
                        "estimators (off by default; blends weights toward one, trading bias for "
                        "variance)")
    a.add_argument("--residual-weights", choices=("auto", "raw", "stable"), default="auto",
                   help="logged data: weights on the oracle residual term (default auto: raw "
                        "where a target's raw-weight ESS is at least 10%% and its weights' Hill "
                        "tail index at least 1, SIMCal-W otherwise, which assumes the calibration "
                        "transports)")
    a.add_argument("--drop-missing", action="store_true",
                   help="DR: exclude logged prompts without fresh draws of the target (counted) "
                        "instead of failing")
    a.add_argument("--drop-invalid", action="store_true",
                   help="exclude rows with invalid scores or prompt ids (counted in the report) "
                        "instead of failing")
    a.add_argument("--reliable-only", action="store_true",
                   help="hide estimates whose level is REFUSED (numbers never change)")
    a.add_argument("--fail-on", choices=("refused", "caution"), default=None,
                   help="exit with code 1, after writing every output, when some policy's level is "
                        "REFUSED ('refused') or CAUTION or REFUSED ('caution'); the policies are "
                        "named on stderr (for scripts and CI jobs; default: exit 0 whatever the "
                        "statuses)")
    a.add_argument("--explain", action="store_true",
                   help="table output: print each status reason in full and explain in plain "
                        "words every term the output uses (OUA, cal%%, ESS, Hill, …)")
    a.add_argument("--no-progress", action="store_true",
                   help="never show a progress bar (default: one on a terminal for analyses "
                        "that take over a second)")
    a.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="output format (default table)")
    a.add_argument("--out", metavar="FILE", help="write the output to FILE instead of stdout")
    a.add_argument("--report", metavar="FILE",
                   help="also write a shareable report with the figures: FILE.md (figures beside "
                        "it) or FILE.html (one self-contained file)")
    a.add_argument("--plots", metavar="DIR",
                   help="also write the forest, reliability and contrast plots as PNGs to DIR")

    b = sub.add_parser(
        "bias",
        help="audit the judge for position, verbosity and self-preference bias",
        description=_BIAS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    b.add_argument("path", metavar="PATH", help="pointwise scores or pairwise verdicts (.jsonl, .csv, "
                                                ".parquet), or a cje-eval fresh-draws directory")
    b.add_argument("--pairs", metavar="FILE", help="pairwise verdicts, when PATH holds pointwise scores")
    b.add_argument("--judge-column", default="judge", metavar="NAME",
                   help="column naming the judge (default: judge); with --pairs, an input "
                        "without it (and without a judge column) is one judge's")
    b.add_argument("--alpha", type=float, default=0.05, help="family-wise level (default 0.05)")
    b.add_argument("--bootstrap", type=int, default=None, metavar="B",
                   help="bootstrap replicates of the tests that draw one: pairwise verbosity, "
                        "and position when prompts hold several pairs or runs repeat an order "
                        "(default 2000; at least 50; refused when no test that runs draws one)")
    b.add_argument("--seed", type=int, default=None,
                   help="seed of those bootstraps (default 0; refused when no test that runs "
                        "draws one)")
    b.add_argument("--no-progress", action="store_true",
                   help="never show a progress bar (default: one on a terminal for audits that "
                        "take over a second)")
    b.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (readable summary, default), json (BiasAudit.to_json, with "
                        "provenance) or csv (one row per test)")
    b.add_argument("--out", metavar="FILE", help="write the output to FILE instead of stdout")

    m = sub.add_parser(
        "monitor",
        help="calibrated estimates per time window, with judge-drift and score-shift checks",
        description=_MONITOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    m.add_argument("path", metavar="PATH",
                   help="judged rows with a time column (.jsonl, .csv, .parquet): prompt_id, "
                        "policy, judge_score, oracle_label (some rows), timestamp")
    m.add_argument("--window", default="1D", metavar="LEN|COLUMN",
                   help="window length ('1D', '12h', '7D'; windows start at midnight UTC of the "
                        "first time stamp), or the name of a column holding each row's window "
                        "(default 1D)")
    m.add_argument("--reference", default="7", metavar="N|FILE",
                   help="the first N windows are the reference calibration, or a labelled file "
                        "(judge_score, oracle_label) whose calibration is carried forward "
                        "(default 7)")
    m.add_argument("--time-column", default="timestamp", metavar="NAME",
                   help="column with the time stamps; offsets are converted to UTC, naive times "
                        "read as UTC (default timestamp)")
    _scale_args(m)
    m.add_argument("--alpha", type=float, default=0.05,
                   help="1 - alpha intervals; also the chance of any false DRIFT over the run "
                        "(default 0.05)")
    m.add_argument("--min-labels", type=int, default=50, metavar="N",
                   help="a window with at least N labels is calibrated on its own labels, "
                        "otherwise on the reference (default 50)")
    m.add_argument("--horizon", type=int, default=None, metavar="N",
                   help="windows the drift error budget is spread over (default: the windows in "
                        "PATH; fix it when the same stream is monitored again as it grows)")
    _column_arg(m)
    m.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (readable summary, default), json (MonitorReport.to_json, with "
                        "provenance) or csv (one row per window and policy)")
    m.add_argument("--out", metavar="FILE", help="write the output to FILE instead of stdout")
    m.add_argument("--report", metavar="FILE",
                   help="also write a report: .md (figures in FILE_figures/) or .html (one "
                        "shareable file with the figures)")

    pl = sub.add_parser(
        "plan",
        help="how many oracle labels (and prompts) reach a target interval half-width",
        description=_PLAN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pl.add_argument("path", metavar="PATH",
                    help="the pilot: judged rows with some oracle labels (.jsonl, .csv, .parquet, "
                         "fresh-draws directory), or a report JSON from cje analyze")
    pl.add_argument("--half-width", type=float, required=True, metavar="H",
                    help="target half-width of the intervals, in label units (e.g. 0.02)")
    pl.add_argument("--alpha", type=float, default=0.05, help="1 - alpha intervals (default 0.05)")
    pl.add_argument("--label-cost", type=float, default=None, metavar="C",
                    help="a label costs C judged responses: adds the cheapest design")
    pl.add_argument("--budget", type=float, default=None, metavar="N",
                    help="labels to buy (all policies), or with --label-cost the total cost in "
                         "judged responses: adds the half-width it buys")
    pl.add_argument("--contrasts", action="store_true", help="plan the paired contrasts too")
    pl.add_argument("--policy", action="append", default=None, metavar="NAME",
                    help="plan only this policy (repeatable)")
    _scale_args(pl)
    _column_arg(pl)
    pl.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    pl.add_argument("--json", metavar="FILE", help="also write the plan as JSON (Plan.to_json)")
    pl.add_argument("--plot", metavar="FILE",
                    help="also write the figure (half-width vs labels per policy), e.g. plan.png "
                         "(or .svg, .pdf: any type matplotlib writes)")
    pl.add_argument("--next", type=int, default=None, metavar="N",
                    help="active labelling: choose about N unlabelled rows to label next")
    pl.add_argument("--regions", type=int, default=None, metavar="H",
                    help="judge-score regions of the --next design (default: one per 30 pilot "
                         "labels, 1 to 5)")
    pl.add_argument("--out", metavar="FILE",
                    help="with --next: write the rows to label (CSV)")
    pl.add_argument("--design", metavar="FILE",
                    help="with --next: write every row's prompt_id, policy, draw_idx, "
                         "label_probability and label_stratum (CSV) for the second round")

    from cje.studies import NAMES, add_arguments

    sim = sub.add_parser(
        "simulate",
        help=f"rerun a simulation study ({', '.join(NAMES)})",
        description="Rerun one of the seeded Monte Carlo studies behind cje's claims and defaults; "
                    "writes a markdown table, a figure and the replicates (Parquet) to --out-dir "
                    "(default: a per-user data directory, never the current directory). Existing "
                    "results are never replaced without --force; --resume keeps finished "
                    "replicates on disk, including those of an interrupted run.",
    )
    sim.add_argument("study", choices=NAMES, help="which study")
    add_arguments(sim)

    d = sub.add_parser(
        "demo",
        help="run the full analysis on built-in synthetic data with a known truth",
        description="Generate a realistic synthetic evaluation (5 policies, a miscalibrated "
                    "judge, 8% oracle labels, one policy that fools the judge), analyse it and "
                    "print the calibrated estimates next to the naive judge means and the truth.",
    )
    d.add_argument("--prompts", type=int, default=2000, help="number of prompts (default 2000)")
    d.add_argument("--oracle-fraction", type=float, default=0.08,
                   help="share of responses with an oracle label (default 0.08)")
    d.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    d.add_argument("--save", metavar="DIR",
                   help="also write the data the demo analyses to DIR/results.csv and "
                        "DIR/results.jsonl (judge scale 0-10, label scale 1-5), to try "
                        "cje analyze on")
    d.add_argument("--explain", action="store_true",
                   help="print each status reason in full and explain in plain words every "
                        "term the output uses")

    ds = sub.add_parser(
        "datasets",
        help="list or export the real data sets shipped with cje (the Arena sample)",
        description="The Arena sample (real judge scores, oracle labels and log-probabilities of "
                    "four policies; MIT licence, CIMO Labs) ships inside the package. 'export' "
                    "writes it in the cje-eval formats cje analyze reads: DIR/fresh_draws/, "
                    "DIR/logged_data.jsonl and DIR/probe_slice/.",
        epilog="example: cje datasets export arena arena && cje analyze arena/fresh_draws",
    )
    ds.add_argument("action", choices=["list", "export"], help="list the data sets, or export one")
    ds.add_argument("name", nargs="?", metavar="NAME", help="data set to export: arena")
    ds.add_argument("directory", nargs="?", metavar="DIR",
                    help="directory to write into (default: ./NAME)")
    ds.add_argument("--force", action="store_true",
                    help="replace files in DIR that hold other content (refused without it)")

    c = sub.add_parser(
        "convert",
        help="write any input cje reads as one flat table (CSV, Parquet or JSONL)",
        description="Read a long-format file, a cje-eval fresh-draws directory or logged JSONL "
                    "and write one flat row per response: prompt_id, policy, draw_idx, "
                    "judge_score, oracle_label, covariates and log-probabilities.",
    )
    c.add_argument("path", metavar="PATH", help="input file or cje-eval fresh-draws directory")
    c.add_argument("output", metavar="OUTPUT", help="output file: .csv, .parquet or .jsonl")
    _scale_args(c)
    c.add_argument("--covariate", action="append", default=[], metavar="NAME",
                   help="add a covariate column, e.g. response_length (derived from 'response')")
    _column_arg(c)
    return p


def _render(report: Any, fmt: str, reliable_only: bool, explain: bool = False) -> str:
    if fmt == "json":
        return report.to_json()
    if fmt == "csv":
        return report.to_csv(reliable_only=reliable_only)
    return report.summary(reliable_only=reliable_only, explain=explain)


#: The figures :func:`cje.plots.save_report_figures` may write (a superset: some are conditional).
_FIGURES = ("forest.png", "reliability.png", "contrasts.png", "overlap.png", "weight_tail.png")


def _inputs(*pairs: tuple[str, Any]) -> list[tuple[str, Path]]:
    """``(what, path)`` of each input given (``None`` skipped)."""
    return [(what, Path(str(path))) for what, path in pairs if path is not None]


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _check_outputs(inputs: list[tuple[str, Path]],
                   outputs: list[tuple[str, Path, list[Path], list[Path]]]) -> None:
    """Refuse, before any work, an output that would overwrite an input or land in an input
    directory (a fresh-draws directory), and two outputs that are the same file.

    ``outputs`` holds ``(flag, path as given, files it writes, directories it writes into)``.
    Paths are compared resolved (symlinks, ``./x`` and ``x``) and, where both exist, by
    :func:`os.path.samefile` (hard links, case-insensitive file systems).
    """
    import os

    from cje.errors import CJEInputError

    def same(a: Path, b: Path) -> bool:
        if a.resolve() == b.resolve():
            return True
        try:
            return a.exists() and b.exists() and os.path.samefile(a, b)
        except OSError:
            return False

    for flag, given, files, dirs in outputs:  # a file where a directory must go
        for target in [*files, *dirs]:
            blocking = next((q for q in target.parents if q.exists() and not q.is_dir()), None)
            if blocking is not None:
                raise CJEInputError(f"{flag} '{given}': '{blocking}' is a file, not a directory; "
                                    "choose a path in a directory.")
    for i, (flag, given, files, _) in enumerate(outputs):  # a file where another writes a folder
        for other_flag, _, other_files, other_dirs in outputs[:i] + outputs[i + 1:]:
            for target in files:
                if any(_inside(q.resolve(), target.resolve()) and q.resolve() != target.resolve()
                       for q in [*other_files, *other_dirs]):
                    raise CJEInputError(f"{flag} '{given}' is a folder that {other_flag} writes "
                                        "into; give them different paths.")
    seen: list[tuple[str, Path]] = []
    for flag, given, files, dirs in outputs:
        for what, inp in inputs:
            if inp.is_dir():
                for target in [given, *files, *dirs]:  # the path as given first
                    if _inside(target.resolve(), inp.resolve()):
                        shown = "" if target == given else f" (it writes '{target}')"
                        raise CJEInputError(
                            f"{flag} '{given}'{shown} is inside {what} ('{inp}'), an input "
                            "directory; cje never writes into its input. Choose a path outside it."
                        )
                continue
            for target in files:
                if same(target, inp):
                    shown = "" if target == given else f" (it writes '{target}')"
                    raise CJEInputError(
                        f"{flag} '{given}'{shown} is the same file as {what} ('{inp}'); writing "
                        "it would overwrite your input. Choose another output path."
                    )
        for target in files:
            for other_flag, other in seen:
                if same(target, other):
                    raise CJEInputError(
                        f"{flag} '{given}' and {other_flag} write the same file '{target}'; give "
                        "them different paths."
                    )
            seen.append((flag, target))


def _out_file(flag: str, out: str) -> tuple[str, Path, list[Path], list[Path]]:
    """An output file (``--out``, ``cje convert``'s OUTPUT), checked to be writable as a file."""
    from cje.errors import CJEInputError

    path = Path(out)
    if path.is_dir():
        raise CJEInputError(f"{flag} '{out}' is a directory; give a file path, e.g. {path / 'out.json'}.")
    if not path.parent.is_dir():
        raise CJEInputError(f"{flag} '{out}': the directory '{path.parent}' does not exist; create it "
                            "first or choose another path.")
    return flag, path, [path], []


def _report_files(out: str, figures: Sequence[str] | None = None
                  ) -> tuple[str, Path, list[Path], list[Path]]:
    """What ``--report FILE`` writes: FILE, and for markdown its ``<stem>_figures/`` beside it
    (holding ``figures``, by default the analysis report's)."""
    from cje.export import report_suffix

    path = Path(out)
    if report_suffix(out, "--report") != ".md":
        return "--report", path, [path], []
    figs = path.parent / f"{path.stem}_figures"
    names = _FIGURES if figures is None else figures
    return "--report", path, [path, *(figs / f for f in names)], [figs]


def _relative(path: Any, base: Path) -> Path:
    try:
        return Path(path).relative_to(base)
    except ValueError:
        return Path(path).resolve().relative_to(base.resolve())


class _Outputs:
    """Output files written under temporary names beside their targets and renamed into place
    together by :meth:`commit`, so an interrupted or failed run leaves no partial file (and
    :meth:`discard` removes the temporaries and any directory this run created)."""

    def __init__(self) -> None:
        self.moves: list[tuple[Path, Path]] = []  # (temporary, final)
        self.direct: list[tuple[Path, str]] = []  # (device or pipe, text): written, not renamed
        self.stale: list[Path] = []  # an earlier run's figures this run does not write: removed
        self.tmp_dirs: list[Path] = []
        self.made_dirs: list[Path] = []

    def _mkdir(self, d: Path) -> None:
        missing = [q for q in [d, *d.parents] if not q.exists()]
        d.mkdir(parents=True, exist_ok=True)
        self.made_dirs.extend(missing)  # deepest first

    def _tmp_dir(self, parent: Path) -> Path:
        import tempfile

        self._mkdir(parent)
        d = Path(tempfile.mkdtemp(prefix=".cje-tmp-", dir=parent))
        self.tmp_dirs.append(d)
        return d

    @staticmethod
    def _final(path: Path) -> Path:
        return path.resolve() if path.is_symlink() else path  # write through a symlink, as before

    def text(self, out: str, text: str) -> None:
        text = text if text.endswith("\n") else text + "\n"
        given = Path(out)
        if given.exists() and not given.is_file() and not given.is_dir():
            # A device or a pipe (/dev/stdout, /dev/null, a FIFO): written into at commit, never
            # replaced by a renamed file (as root, a rename would replace /dev/null itself).
            self.direct.append((given, text))
            return
        final = self._final(given)
        tmp = self._tmp_dir(final.parent) / final.name
        tmp.write_text(text, encoding="utf-8")
        self.moves.append((tmp, final))

    def files(self, target: Path, write: Any) -> None:
        """``write(path_in_a_temporary_directory)`` returns the files it wrote; they are moved to
        the same place relative to ``target``'s directory."""
        final = self._final(target)
        tmp = self._tmp_dir(final.parent)
        for path in write(tmp / final.name):
            self.moves.append((Path(path), final.parent / _relative(path, tmp)))

    def directory(self, target: str, write: Any, owned: tuple[str, ...] = ()) -> None:
        """``write(temporary_directory)`` returns the files it wrote, moved into ``target``.
        Files named in ``owned`` (the names this writer may produce) that are in ``target`` but
        not written this time are an earlier run's: removed on commit, so the folder never
        shows a figure of another analysis beside this one's."""
        final = Path(target)
        self._mkdir(final)
        tmp = self._tmp_dir(final)
        names = set()
        for path in write(tmp):
            rel = _relative(path, tmp)
            names.add(rel.as_posix())
            self.moves.append((Path(path), final / rel))
        self.stale += [final / n for n in owned if n not in names and (final / n).is_file()]

    def commit(self) -> list[Path]:
        import os
        import signal
        import threading

        done = []
        # Ctrl-C during the renames is held until they are all done (the set stays consistent).
        held: list[int] = []
        previous: Any = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGINT, lambda signum, frame: held.append(signum))
        try:
            # The report's own file last: its figures are in place when it appears.
            for tmp, final in sorted(self.moves,
                                     key=lambda m: m[1].suffix in (".md", ".html", ".htm")):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                done.append(final)
            for path, text in self.direct:
                with open(path, "w", encoding="utf-8") as fh:
                    fh.write(text)
                done.append(path)
            for path in self.stale:
                path.unlink(missing_ok=True)
        finally:
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        self.moves, self.direct, self.stale = [], [], []
        self.discard()
        if held:
            raise KeyboardInterrupt
        return done

    def discard(self) -> None:
        import shutil

        for d in self.tmp_dirs:
            shutil.rmtree(d, ignore_errors=True)
        for d in self.made_dirs:  # deepest first; only if still empty
            try:
                d.rmdir()
            except OSError:
                pass
        self.tmp_dirs, self.made_dirs = [], []


def _emit(text: str, out: str | None) -> None:
    if out:
        staged = _Outputs()
        try:
            staged.text(out, text)
            staged.commit()
        finally:
            staged.discard()
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def _cmd_analyze(ns: argparse.Namespace) -> int:
    import cje

    probes = _mapping(ns.probe, "--probe")
    for flag, given in (("--transport-margin", ns.transport_margin is not None),
                        ("--no-probe-correction", ns.no_probe_correction)):
        if given and not probes:  # it would be ignored: audits come only from probe slices
            raise cje.CJEInputError(f"{flag} applies to the transport audits of probe slices; "
                                    "give --probe POLICY=FILE too, or leave it out.")
    _estimator_flags_used(ns)
    # options of the printed table that a format does not read would be ignored: refused
    if ns.format == "json" and ns.reliable_only:
        raise cje.CJEInputError("--reliable-only hides REFUSED rows of the table or CSV; the JSON "
                                "report keeps every estimate with its status. Leave it out, or "
                                "use --format table / csv.")
    if ns.format != "table" and ns.explain:
        raise cje.CJEInputError(f"--explain adds explanations to the printed table; --format "
                                f"{ns.format} has none. Leave it out, or use --format table.")
    outputs = []
    if ns.out:
        outputs.append(_out_file("--out", ns.out))
    if ns.report:
        outputs.append(_report_files(ns.report))
    if ns.plots:
        plots = Path(ns.plots)
        if plots.exists() and not plots.is_dir():
            raise cje.CJEInputError(f"--plots '{plots}' is a file; give a directory for the PNGs.")
        outputs.append(("--plots", plots, [plots / f for f in _FIGURES], [plots]))
    _check_outputs(
        _inputs(("the input data", ns.path), ("--fresh-draws", ns.fresh_draws),
                ("--calibration", ns.calibration),
                *((f"the --probe file of {pol!r}", src) for pol, src in ns.probe)),
        outputs,
    )
    client = _dask_client(ns.engine, ns.scheduler)
    try:
        report = cje.analyze(
            ns.path,
            judge_scale=tuple(ns.judge_scale) if ns.judge_scale else None,
            label_scale=tuple(ns.label_scale) if ns.label_scale else None,
            calibration=ns.calibration,
            probes=probes or None,
            transport_margin=ns.transport_margin,
            alpha=ns.alpha,
            mode=ns.mode,
            covariates=ns.covariate,
            n_folds=ns.folds,
            seed=ns.seed,
            policies=ns.policy,
            columns=_mapping(ns.column, "--column") or None,
            on_invalid="drop" if ns.drop_invalid else "raise",
            fresh_draws=ns.fresh_draws,
            estimator=ns.estimator,
            var_cap=ns.var_cap,
            residual_weights=ns.residual_weights,
            probe_correction=not ns.no_probe_correction,
            on_missing="drop" if ns.drop_missing else "raise",
            progress=False if ns.no_progress else None,
            engine=ns.engine,
            client=client,
        )
    except cje.CJEInputError as exc:  # an option the library refused: named by its flag
        flag = next((f for o, f in (("var_cap=", "--var-cap"),
                                    ("residual_weights=", "--residual-weights"),
                                    ("on_missing=", "--drop-missing")) if str(exc).startswith(o)), None)
        if flag is None:
            raise
        raise cje.CJEInputError(f"{flag}: {exc}") from None
    finally:
        if client is not None:
            client.close()
    report = dataclasses.replace(report, provenance={**report.provenance,
                                                     "command": shlex.join(["cje", *ns.argv])})
    text = _render(report, ns.format, ns.reliable_only, ns.explain)
    if not (ns.out or ns.report or ns.plots):
        print(text)
        return _fail_on(report, ns.fail_on)
    # Every output is written under a temporary name, then all are renamed into place: an
    # interruption (Ctrl-C) or a failure leaves no partial file.
    staged = _Outputs()
    try:
        if ns.out:
            staged.text(ns.out, text)
        if ns.report:
            staged.files(Path(ns.report), report.write)
        if ns.plots:
            from cje.plots import save_report_figures

            staged.directory(ns.plots, lambda d: save_report_figures(report, d), _FIGURES)
        written = staged.commit()
    finally:
        staged.discard()
    if not ns.out:
        print(text)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return _fail_on(report, ns.fail_on)


def _fail_on(report: Any, fail_on: str | None) -> int:
    """Exit code of ``cje analyze``: 1 when ``--fail-on`` is given and some policy's level has
    that status or a worse one (the policies named on stderr), else 0."""
    bad = {None: (), "refused": ("REFUSED",), "caution": ("CAUTION", "REFUSED")}[fail_on]
    hit = [f"{e.policy} ({e.status})" for e in report.estimates if e.status in bad]
    if not hit:
        return 0
    print(f"cje: --fail-on {fail_on}: {', '.join(hit)}", file=sys.stderr)
    return 1


def _estimator_flags_used(ns: argparse.Namespace) -> None:
    """``--var-cap``, ``--residual-weights`` and ``--drop-missing`` the estimator would not read
    are refused before any work (the library refuses some and notes the others: a CLI flag that
    does nothing is always refused). ``--estimator auto`` is taken as on logged data (calibrated
    IPS, or stacked DR with ``--fresh-draws``); on fresh draws of each policy it runs the direct
    method, for which the library refuses ``--var-cap`` and ``--residual-weights`` itself."""
    import cje
    from cje.analysis import _reads
    from cje.estimators.registry import resolve

    est = resolve(ns.estimator, logged=True, fresh=ns.fresh_draws is not None)
    reads = _reads(est)
    why = {"var_cap": "it caps the variance of SIMCal-W stabilised weights, which only "
                      "calibrated-ips and the doubly robust estimators use",
           "residual_weights": "it chooses raw or SIMCal-W weights for the oracle residual term "
                               "of calibrated-ips and the doubly robust estimators (ips and snips "
                               "always use the raw weights, direct none)",
           "on_missing": "it drops logged rows without fresh draws of the target, which only the "
                         "doubly robust estimators (dr-cpo, mrdr, tmle, stacked-dr, with "
                         "--fresh-draws) need"}
    for flag, option, given in (("--var-cap", "var_cap", ns.var_cap is not None),
                                ("--residual-weights", "residual_weights",
                                 ns.residual_weights != "auto"),
                                ("--drop-missing", "on_missing", ns.drop_missing)):
        if given and not reads[option]:
            # (auto reads every one of them with --fresh-draws: stacked DR)
            used = (f"--estimator {ns.estimator}" if ns.estimator != "auto" else
                    "--estimator auto without --fresh-draws (the direct method on fresh draws of "
                    f"each policy, {est.name} on logged data)")
            raise cje.CJEInputError(f"{flag} has no effect with {used}: {why[option]}. Leave it "
                                    "out, or choose an estimator that reads it.")


def _dask_client(engine: str, scheduler: str | None) -> Any:
    """``--engine dask``: a client of the scheduler at ``--scheduler``, else of a local cluster
    (Dask's default); ``None`` for the other engines."""
    import cje

    if scheduler is not None and engine != "dask":
        raise cje.CJEInputError(f"--scheduler is for --engine dask; --engine is {engine!r}.")
    if engine != "dask":
        return None
    try:
        from distributed import Client
    except ImportError:
        raise cje.CJEInputError("--engine dask needs dask[distributed]: pip install "
                                "'cje[dask]'.") from None
    if scheduler is None:
        return Client(processes=False)
    try:
        return Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise cje.CJEInputError(f"--scheduler {scheduler!r}: could not connect ({exc}). Start "
                                "one with `dask scheduler` and `dask worker ADDRESS`, or leave "
                                "--scheduler out for a local cluster.") from None


def _cmd_monitor(ns: argparse.Namespace) -> int:
    import cje

    ref: Any = ns.reference
    if ref.isdigit():
        ref = int(ref)
    elif not Path(ref).exists():
        raise cje.CJEInputError(f"--reference {ref!r} is neither a number of windows nor an "
                                "existing file; e.g. --reference 3 or --reference labels.csv.")
    outs = ([_out_file("--out", ns.out)] if ns.out else []) + \
        ([_report_files(ns.report, figures=())] if ns.report else [])
    if outs:
        _check_outputs(_inputs(("the input data", ns.path),
                               *((("--reference", ref),) if not isinstance(ref, int) else ())),
                       outs)
    rep = cje.monitor(ns.path, window=ns.window, reference=ref, time_column=ns.time_column,
                      judge_scale=tuple(ns.judge_scale) if ns.judge_scale else None,
                      label_scale=tuple(ns.label_scale) if ns.label_scale else None,
                      alpha=ns.alpha, min_labels=ns.min_labels, horizon=ns.horizon,
                      columns=_mapping(ns.column, "--column") or None)
    rep = dataclasses.replace(rep, provenance={**rep.provenance,
                                               "command": shlex.join(["cje", *ns.argv])})
    if ns.format == "json":
        text = rep.to_json()
    elif ns.format == "csv":
        from cje.report import csv_safe

        text = csv_safe(rep.to_pandas()).to_csv(index=False)
    else:
        text = rep.summary()
    if not ns.report:
        _emit(text, ns.out)
        return 0
    if not ns.out:
        print(text)
    staged = _Outputs()  # as in cje analyze: all or nothing, no partial file on Ctrl-C
    try:
        if ns.out:
            staged.text(ns.out, text)
        staged.files(Path(ns.report), rep.write_report)
        written = staged.commit()
    finally:
        staged.discard()
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _cmd_plan(ns: argparse.Namespace) -> int:
    import cje
    from cje.errors import CJEInputError
    from cje.planning import plan

    if (ns.out or ns.design or ns.regions is not None) and ns.next is None:
        raise CJEInputError("--out, --design and --regions go with --next N (the rows to label "
                            "next), e.g. cje plan pilot.csv --half-width 0.02 --next 200 --out "
                            "to_label.csv.")
    if ns.plot:
        _check_figure_suffix("--plot", ns.plot)
    outs = ([_out_file("--json", ns.json)] if ns.json else []) + \
        ([_out_file("--plot", ns.plot)] if ns.plot else []) + \
        ([_out_file("--out", ns.out)] if ns.out else []) + \
        ([_out_file("--design", ns.design)] if ns.design else [])
    if outs:
        _check_outputs(_inputs(("the input data", ns.path)), outs)
    src: Any = ns.path
    if Path(ns.path).suffix.lower() == ".json" and Path(ns.path).is_file():
        # bytes: a file that is not UTF-8 is "not valid JSON" (exit 2), not a decoding traceback
        src = cje.Report.from_json(Path(ns.path).read_bytes())
    kw: dict[str, Any] = {}
    if isinstance(src, cje.Report):
        unread = [flag for flag, given in (("--judge-scale", ns.judge_scale), ("--label-scale",
                                           ns.label_scale), ("--column", ns.column)) if given]
        if unread:  # the report's analysis fixed them: refused rather than ignored
            raise CJEInputError(f"{' and '.join(unread)} read{'s' if len(unread) == 1 else ''} "
                                "the pilot data; PATH is a report, whose analysis already fixed "
                                "the scales and columns. Leave "
                                f"{'it' if len(unread) == 1 else 'them'} out, or plan from the "
                                "pilot data.")
    else:
        kw = {"judge_scale": tuple(ns.judge_scale) if ns.judge_scale else None,
              "label_scale": tuple(ns.label_scale) if ns.label_scale else None,
              "columns": _mapping(ns.column, "--column") or None}
    if ns.next is not None:
        kw.update(next=ns.next, n_regions=ns.regions)
    p = plan(src, half_width=ns.half_width, alpha=ns.alpha, label_cost=ns.label_cost,
             budget=ns.budget, contrasts=ns.contrasts, policies=ns.policy, seed=ns.seed, **kw)
    p = dataclasses.replace(p, provenance={**p.provenance, "command": shlex.join(["cje", *ns.argv])})
    print(p.summary())
    staged = _Outputs()  # all or nothing, as in cje analyze
    try:
        if ns.json:
            staged.text(ns.json, p.to_json())
        if ns.out:
            staged.text(ns.out, p.next_frame().to_csv(index=False))
        if ns.design:
            from cje.data import load
            from cje.tables import flat_table

            ev = load(src, **_kw_load(kw))
            flat = flat_table(ev)  # (label_probability: an earlier round, which the design composes)
            rows = flat[["prompt_id", "policy", "draw_idx", "judge_score",
                         *(["label_probability"] if "label_probability" in flat else [])]]
            d = p.label_design(rows)
            staged.text(ns.design, rows.drop(columns=["judge_score", "label_probability"],
                                             errors="ignore").assign(
                label_probability=d.label_probability.to_numpy(),
                label_stratum=d.label_stratum.to_numpy()).to_csv(index=False))
        if ns.plot:
            def draw(tmp: Path) -> list[Path]:
                import matplotlib

                matplotlib.use("Agg")
                import matplotlib.pyplot as plt

                from cje.plots import plan as plan_plot

                ax = plan_plot(p)
                ax.figure.savefig(tmp, dpi=110, bbox_inches="tight")
                plt.close(ax.figure)
                return [tmp]

            staged.files(Path(ns.plot), draw)
        written = staged.commit()
    finally:
        staged.discard()
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def _check_figure_suffix(flag: str, path: str) -> None:
    """A figure path whose suffix matplotlib can write, checked before any work: matplotlib
    raises on an unknown one (a traceback after the analysis) and adds ``.png`` to a path
    without one (so the staged file was not where it was expected)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from cje.errors import CJEInputError

    kinds = sorted(Figure().canvas.get_supported_filetypes())
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise CJEInputError(f"{flag} '{path}' must end in an image type matplotlib writes, e.g. "
                            f".png, .svg or .pdf (one of {', '.join(kinds)}).")


def _kw_load(kw: dict[str, Any]) -> dict[str, Any]:
    """The options of :func:`cje.load` among ``cje.plan``'s."""
    return {k: kw[k] for k in ("judge_scale", "label_scale", "columns") if k in kw}


def _cmd_bias(ns: argparse.Namespace) -> int:
    import cje

    # Checked here, before any test: inside the audit a bad value only makes the tests that use
    # it "not run", and the others' results came out with exit code 0.
    if not 0 < ns.alpha < 1:  # NaN too
        raise cje.CJEInputError(f"--alpha must be a number in (0, 1), e.g. --alpha 0.05; got "
                                f"{ns.alpha:g}.")
    if ns.bootstrap is not None and ns.bootstrap < 50:
        raise cje.CJEInputError(f"--bootstrap must be at least 50 (the bootstrap tests' minimum), "
                                f"e.g. --bootstrap 2000; got {ns.bootstrap}.")
    if ns.out:
        _check_outputs(_inputs(("the input data", ns.path), ("--pairs", ns.pairs)),
                       [_out_file("--out", ns.out)])
    import warnings

    with warnings.catch_warnings():  # said here as a refusal, not also as a warning
        warnings.filterwarnings("ignore", message=r".* no effect: no test that ran")
        result = cje.bias.audit(ns.path, pairs=ns.pairs, alpha=ns.alpha,
                                n_bootstrap=ns.bootstrap,
                                rng=0 if ns.seed is None else ns.seed,
                                judge_column=ns.judge_column,
                                progress=False if ns.no_progress else None)
    options = result.provenance.get("options", {})
    unused = options.get("not_applied", {})
    if ns.seed is None and "rng" in unused:  # the CLI's default seed, not one given: as a default
        options["rng"] = unused.pop("rng")
        if not unused:
            del options["not_applied"]
    flags = [f for f, k in (("--bootstrap", "n_bootstrap"), ("--seed", "rng"))
             if k in unused and getattr(ns, f[2:]) is not None]
    if flags:  # checked after the tests (which ran is known only then); nothing written
        raise cje.CJEInputError(
            f"{' and '.join(flags)} {'has' if len(flags) == 1 else 'have'} no effect on this "
            f"input: no test that ran ({', '.join(dict.fromkeys(result.tests))}) draws a "
            "bootstrap (only the pairwise verbosity test does, and the position test when "
            "prompts hold several pairs or runs repeat an order). Leave "
            f"{'it' if len(flags) == 1 else 'them'} out.")
    if ns.format == "json":
        text = result.to_json()
    elif ns.format == "csv":
        from cje.report import csv_safe

        text = csv_safe(result.to_pandas()).to_csv(index=False)
    else:
        text = result.summary()
    _emit(text, ns.out)
    return 0


def _save_demo(data: Any, directory: str) -> list[Path]:
    """Write the demo's long table to ``directory/results.csv`` and ``results.jsonl`` (refusing
    to replace a file of the same name that holds other data)."""
    from cje.errors import CJEInputError

    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise CJEInputError(f"--save '{directory}' is a file; give a directory to write "
                            "results.csv and results.jsonl into.")
    texts = {root / "results.csv": data.to_csv(index=False),
             root / "results.jsonl": data.to_json(orient="records", lines=True)}
    for path, text in texts.items():
        if path.exists() and (not path.is_file() or path.read_text(encoding="utf-8") != text):
            raise CJEInputError(f"--save: '{path}' already exists with other content; remove it or "
                                "choose another directory.")
    staged = _Outputs()
    try:
        staged.directory(str(root), lambda tmp: [_write(tmp / p.name, t) for p, t in texts.items()])
        return staged.commit()
    finally:
        staged.discard()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _cmd_datasets(ns: argparse.Namespace) -> int:
    from cje import datasets
    from cje.errors import CJEInputError

    if ns.action == "list":
        extra = [what for what, given in (("NAME", ns.name), ("DIR", ns.directory),
                                          ("--force", ns.force)) if given]
        if extra:  # they go with export: refused rather than ignored
            raise CJEInputError(f"{' and '.join(extra)} go with 'cje datasets export'; 'list' takes "
                                "none. E.g. cje datasets export arena DIR.")
        for name in datasets.names():
            print(f"{name}: real judge scores, oracle labels and log-probabilities of 4 policies "
                  "(MIT licence, CIMO Labs); cje datasets export arena DIR")
        return 0
    if ns.name is None:
        raise CJEInputError(f"cje datasets export needs a NAME, one of {list(datasets.names())}: "
                            "e.g. cje datasets export arena arena")
    files = datasets.export(ns.directory or ns.name, ns.name, overwrite=ns.force)
    print(f"wrote {files.fresh_draws}/, {files.logged} and {files.probes['clone'].parent}/", file=sys.stderr)
    print(f"try: cje analyze {files.fresh_draws} --probe unhelpful={files.probes['unhelpful']} "
          "--transport-margin 0.05", file=sys.stderr)
    return 0


def _cmd_demo(ns: argparse.Namespace) -> int:
    import cje

    try:
        sim = cje.synthetic.make_direct_eval(
            ns.prompts, oracle_fraction=ns.oracle_fraction, length_effect=0.15, rng=ns.seed
        )
    except ValueError as exc:  # e.g. --prompts 0: a usage error, not a crash
        raise cje.CJEInputError(str(exc)) from None
    # A realistic twist: the newest policy ("concise") has no oracle labels yet, so its level
    # rests on the calibration transporting from the others, and the report says so.
    data = sim.data.assign(
        oracle_label=sim.data.oracle_label.where(sim.data.policy != "concise")
    )
    if ns.save is not None:
        saved = _save_demo(data, ns.save)
        print(f"wrote {' and '.join(map(str, saved))}: cje analyze {saved[0]} --judge-scale "
              f"{sim.judge_scale[0]:g} {sim.judge_scale[1]:g} --label-scale {sim.label_scale[0]:g} "
              f"{sim.label_scale[1]:g}", file=sys.stderr)
    lab_pct = f"{100 * float(data.oracle_label.notna().mean()):.0f}%"
    n_prompts = data.prompt_id.nunique()
    print(f"cje demo: {len(sim.truth)} versions of a chatbot (\"policies\") answered the same "
          f"{n_prompts} prompts (simulated data, so the true values are known).")
    print(f"  An LLM judge scored every answer {sim.judge_scale[0]:g}-{sim.judge_scale[1]:g}; a "
          f"trusted {sim.label_scale[0]:g}-{sim.label_scale[1]:g} rating exists for {lab_pct} of "
          "the answers, none yet for the newest policy, 'concise'.")
    print("  cje turns the judge scores into each policy's value on the trusted rating's scale, "
          "with 95% intervals; the truth is compared at the end.\n")
    report = cje.analyze(
        data,
        judge_scale=sim.judge_scale,
        label_scale=sim.label_scale,
        covariates=["response_length"],
    )
    print(report.summary(explain=ns.explain))
    print("\nAgainst the truth (known here because the data are simulated):")
    print(f"  {'policy':<12} {'truth':>7} {'calibrated':>11} {'covered':>8} {'naive':>7} {'covered':>8}")
    for e in report.estimates:
        t = sim.truth[e.policy]
        cov = "yes" if e.ci_low <= t <= e.ci_high else "NO"
        ncov = "yes" if e.naive_ci_low <= t <= e.naive_ci_high else "NO"
        cal = f"{e.estimate:.3f}"
        if e.units != "label":  # uncalibrated judge means are not on the truth's scale
            cal, cov = "—", "—"
        print(f"  {e.policy:<12} {t:>7.3f} {cal:>11} {cov:>8} {e.naive_estimate:>7.3f} "
              f"{ncov:>8}")
    c = report["concise"]
    if c.units == "label":
        off = c.estimate - sim.truth["concise"]
        verdict = ("and here it does not quite hold" if not c.ci_low <= sim.truth["concise"] <= c.ci_high
                   else "and here it happens to hold")
        print(f"\n'concise' has no labels of its own, so its level relies on the calibration "
              f"transporting (CAUTION above), {verdict}: it is off by {off:+.3f}. Labelling some "
              "of its responses corrects it — in its data or as a probe slice (--probe).")
    print(f"\nHow the data were made: {sim.description}")
    print("\nAnalyse your own data: cje analyze PATH   (see cje analyze --help; cje demo --save DIR "
          "writes this demo's data)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cje`` command; returns the exit code (2 on bad input).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``cje``, e.g. ``["analyze", "scores.csv"]``; ``None`` reads
        ``sys.argv``.

    Returns
    -------
    int
        0 on success, 1 when ``cje analyze --fail-on`` finds a level with that status (after
        writing every output), 2 on a usage error or bad input (the one-line message goes to stderr),
        130 when interrupted (Ctrl-C; ``cje: interrupted`` on stderr). Output files are written
        under temporary names and renamed into place at the end, so an interrupted or failed run
        leaves none half-written, and an output path that is one of the inputs (or lies in an
        input directory) is refused before any work.

    Examples
    --------
    >>> import json, os, tempfile, cje
    >>> from cje.cli import main
    >>> tmp = tempfile.mkdtemp()
    >>> path, out = os.path.join(tmp, "scores.csv"), os.path.join(tmp, "report.json")
    >>> cje.synthetic.make_direct_eval(200, rng=0).data.to_csv(path, index=False)
    >>> main(["analyze", path, "--judge-scale", "0", "10", "--label-scale", "1", "5",
    ...       "--format", "json", "--out", out])
    0
    >>> sorted(e["policy"] for e in json.load(open(out))["estimates"])
    ['base', 'concise', 'improved', 'small', 'verbose']
    >>> main(["analyze", os.path.join(tmp, "missing.csv")])   # bad input: exit code 2
    2
    """
    parser = _parser()
    ns = parser.parse_args(argv)
    ns.argv = list(sys.argv[1:] if argv is None else argv)  # recorded in the provenance
    if ns.command is None:
        parser.print_help()
        return 2
    from cje.errors import CJEInputError

    try:
        _no_repeated_options(parser, ns.command, ns.argv)
        if ns.command == "analyze":
            return _cmd_analyze(ns)
        if ns.command == "bias":
            return _cmd_bias(ns)
        if ns.command == "monitor":
            return _cmd_monitor(ns)
        if ns.command == "plan":
            return _cmd_plan(ns)
        if ns.command == "datasets":
            return _cmd_datasets(ns)
        if ns.command == "simulate":
            import shlex

            from cje.studies import run_study

            argv_used = list(sys.argv[1:]) if argv is None else list(argv)
            run_study(ns.study, ns, command=shlex.join(["cje", *argv_used]))
            return 0
        if ns.command == "convert":
            from cje.export import convert

            if Path(ns.output).suffix.lower() not in (".csv", ".parquet", ".jsonl"):
                raise CJEInputError(f"OUTPUT must end in .csv, .parquet or .jsonl; got "
                                    f"'{ns.output}'.")
            _check_outputs(_inputs(("the input", ns.path)), [_out_file("OUTPUT", ns.output)])
            staged = _Outputs()
            try:
                staged.files(Path(ns.output), lambda tmp: [convert(
                    ns.path, tmp, judge_scale=tuple(ns.judge_scale) if ns.judge_scale else None,
                    label_scale=tuple(ns.label_scale) if ns.label_scale else None,
                    covariates=ns.covariate, columns=_mapping(ns.column, "--column") or None)])
                staged.commit()
            finally:
                staged.discard()
            print(f"wrote {ns.output}", file=sys.stderr)
            return 0
        return _cmd_demo(ns)
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:  # Ctrl-C: one line, the conventional 128 + SIGINT, no partial file
        print("cje: interrupted", file=sys.stderr)
        return 130
    except (CJEInputError, OSError) as exc:  # bad input or an unreadable/unwritable path
        print(f"cje: error: {' '.join(str(exc).split())}", file=sys.stderr)  # always one line
        return 2
    except UnicodeEncodeError as exc:  # stdout in a locale that cannot show the output (ASCII)
        if not _stdout_codec(exc.encoding):
            raise
        print(f"cje: error: the output holds characters that standard output's encoding "
              f"({sys.stdout.encoding}) cannot show; use a UTF-8 locale (e.g. PYTHONUTF8=1) or "
              "write it with --out FILE (always UTF-8).", file=sys.stderr)
        return 2


def _no_repeated_options(parser: argparse.ArgumentParser, command: str,
                         argv: Sequence[str]) -> None:
    """Refuse a single-valued option given twice (``--out a.json --out b.json``): argparse keeps
    the last one silently. Repeatable options (``--probe``, ``--column``, …) and flags are not
    counted; abbreviations (``--ou``) count as the option they stand for."""
    from cje.errors import CJEInputError

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = [a for a in sub.choices[command]._actions
               if type(a).__name__ == "_StoreAction" and a.option_strings]
    counts: dict[str, list[str]] = {}
    for token in argv:
        if token == "--":
            break
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        hits = [a for a in actions if name in a.option_strings] or \
               [a for a in actions if any(o.startswith(name) for o in a.option_strings)]
        if len(hits) == 1:
            counts.setdefault(hits[0].option_strings[-1], []).append(token)
    for opt, tokens in counts.items():
        if len(tokens) > 1:
            raise CJEInputError(f"{opt} is given {len(tokens)} times; give it once (only one "
                                "value is used).")


def _stdout_codec(encoding: str) -> bool:
    """Whether ``encoding`` is standard output's (a failed print, not a failure elsewhere)."""
    import codecs

    try:
        return codecs.lookup(encoding).name == codecs.lookup(sys.stdout.encoding or "").name
    except (LookupError, TypeError):
        return False


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
