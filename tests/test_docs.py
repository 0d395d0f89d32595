"""The documentation's code runs, and it names no command-line option the ``cje`` command lacks.

* Every ```` ```python ```` block of the executed pages runs, in order, in one namespace per page,
  in a temporary working directory with matplotlib's Agg backend. The blocks assert what they
  claim (an interval covers the known truth, an audit fails, ...), so the prose is checked too.
  A failure points at the block's line in the page.
* Then every ``cje analyze | bias | demo | simulate`` command in that page's shell blocks runs
  in-process (``cje.cli.main``) in the same directory, on the files the Python blocks wrote, and
  must exit 0. The real Arena sample comes from the package (``cje.datasets.export`` in a Python
  block, ``cje datasets export`` in a shell block), so nothing here needs ``../shared`` or skips.
* Every ``--option`` in the shell blocks and inline code of the docs (and the README) must exist
  on the ``cje`` parser: on the named subcommand when the command is spelled out, on some
  subcommand otherwise.
"""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Pages whose Python blocks are executed (index first: it is the first page a reader sees).
EXECUTED = ("index.md", "getting-started.md", "offpolicy.md", "tutorial-arena.md", "monitoring.md",
            "planning.md", "bias.md", "../README.md")
#: Pages whose options are checked: every page of the site, and the README.
CHECKED = sorted(DOCS.rglob("*.md")) + [ROOT / "README.md"]

FENCE = re.compile(r"^(?P<fence>```+)(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=fence)[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(?<!`)`(?P<code>(?:[^`\n]|\n(?![ \t]*\n))+)`(?!`)")  # may wrap a line
OPTION = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")
SHELL = {"bash", "sh", "shell", "console"}
#: Programs other than cje whose options may appear in the docs; their options are not checked.
OTHER_PROGRAMS = {"pip", "python", "pytest", "mkdocs", "git", "cd", "rm", "cp", "ls", "cat"}


# ---- reading the pages -------------------------------------------------------------------------
def code_blocks(page: Path, langs: set[str]) -> list[tuple[int, str]]:
    """``(line number of the first code line, code)`` of each fenced block in ``langs``."""
    return [(line, code) for line, code, _ in code_blocks_shown(page, langs)]


def code_blocks_shown(page: Path, langs: set[str]) -> list[tuple[int, str, str | None]]:
    """``(line, code, shown)`` of each fenced block in ``langs``: ``shown`` is the body of a
    ```` ```text ```` block that follows it with nothing but blank lines between (what the page
    says the code prints), else ``None``."""
    text = page.read_text(encoding="utf-8")
    fences = list(FENCE.finditer(text))
    blocks = []
    for i, m in enumerate(fences):
        lang = m["info"].strip().split(" ")[0].lower()
        if lang in langs:
            nxt = fences[i + 1] if i + 1 < len(fences) else None
            shown = (nxt["body"] if nxt is not None and nxt["info"].strip() == "text"
                     and not text[m.end():nxt.start()].strip() else None)
            blocks.append((text.count("\n", 0, m.start("body")) + 1, m["body"], shown))
    return blocks


def shown_lines_missing(shown: str, printed: str) -> str | None:
    """The first line of ``shown`` that does not appear, in order, among the lines ``printed``
    (trailing spaces and blank lines ignored; a page may show an excerpt), else ``None``."""
    out = iter(ln.rstrip() for ln in printed.splitlines())
    for want in (ln.rstrip() for ln in shown.splitlines()):
        if want and not any(got == want for got in out):
            return want
    return None


def shell_commands(text: str) -> Iterator[list[str]]:
    """The commands of a shell snippet, split into words (comments, ``\\`` continuations, ``&&``
    and ``;`` handled)."""
    text = text.replace("\\\n", " ")
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # not shell (e.g. prose in inline code): skip
            continue
        cmd: list[str] = []
        for w in [*words, ";"]:
            if w in ("&&", "||", ";", "|"):
                if cmd:
                    yield cmd
                cmd = []
            else:
                cmd.append(w)


def cje_commands(page: Path) -> list[list[str]]:
    """Every ``cje …`` command of the page's shell blocks, in order, without duplicates."""
    out: list[list[str]] = []
    for _, body in code_blocks(page, SHELL):
        for cmd in shell_commands(body):
            if cmd[0] == "cje" and cmd[1:] not in out:
                out.append(cmd[1:])
    return out


# ---- the parser --------------------------------------------------------------------------------
def cli_options() -> tuple[set[str], dict[str, set[str]]]:
    """Options of the ``cje`` parser itself and of each subcommand (built as ``cje.cli`` does)."""
    from cje import cli

    parser = cli._parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    top = set(parser._option_string_actions)
    return top, {name: set(p._option_string_actions) for name, p in subs.choices.items()}


# ---- the code runs -----------------------------------------------------------------------------
@pytest.mark.parametrize("page", EXECUTED)
def test_page_code_runs(page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cje.cli import main

    path = DOCS / page
    blocks = code_blocks_shown(path, {"python", "py"})
    commands = cje_commands(path)
    if not blocks and not commands:
        pytest.skip(f"docs/{page} has no Python block and no cje command")
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    try:
        for line, code, shown in blocks:
            capsys.readouterr()
            # Pad with newlines so that a traceback names the line in the page.
            exec(compile("\n" * (line - 1) + code, str(path), "exec", dont_inherit=True), namespace)  # noqa: S102
            if shown is not None:  # the output the page shows is what the code prints now
                missing = shown_lines_missing(shown, capsys.readouterr().out)
                assert missing is None, (
                    f"docs/{page}:{line}: the output shown after this block has a line the code "
                    f"no longer prints (in that order): {missing!r}")
        for argv in commands:
            cwd = tmp_path
            try:
                rc = main(argv)
            except SystemExit as exc:  # `cje analyze --help` prints and exits 0
                rc = exc.code
            err = capsys.readouterr().err
            assert rc == 0, f"`cje {shlex.join(argv)}` in docs/{page} exited {rc}: {err}"
            for i, a in enumerate(argv[:-1]):
                if a in ("--out", "--plots"):
                    assert (cwd / argv[i + 1]).exists(), f"`cje {shlex.join(argv)}` wrote nothing"
    finally:
        plt.close("all")


@pytest.mark.parametrize("page", [*EXECUTED, "../README.md"])
def test_docs_use_the_packaged_arena_sample(page: str) -> None:
    """No page points at the data beside the repository (``../shared``), which a user who
    installed the package does not have: the Arena sample comes from ``cje.datasets``."""
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "../shared" not in text, f"docs/{page} reads ../shared; use cje datasets export arena DIR"


def test_getting_started_is_executed() -> None:
    """The tutorial keeps Python blocks and shell commands that the test above runs."""
    page = DOCS / "getting-started.md"
    assert len(code_blocks(page, {"python"})) >= 5
    assert {cmd[0] for cmd in cje_commands(page)} >= {"analyze", "demo", "bias"}


# ---- the options exist -------------------------------------------------------------------------
def documented_commands(page: Path) -> Iterator[list[str]]:
    """Shell commands in the page's shell blocks and in its inline code spans."""
    for _, body in code_blocks(page, SHELL):
        yield from shell_commands(body)
    prose = FENCE.sub("", page.read_text(encoding="utf-8"))
    for m in INLINE.finditer(prose):
        if "--" in m["code"]:
            yield from shell_commands(m["code"].replace("\n", " "))


def test_documented_options_exist() -> None:
    top, subs = cli_options()
    everywhere = top.union(*subs.values())
    problems = []
    for page in CHECKED:
        where = page.relative_to(ROOT)
        for cmd in documented_commands(page):
            if cmd[0] in OTHER_PROGRAMS:
                continue
            options = {o.split("=", 1)[0] for o in cmd if OPTION.fullmatch(o.split("=", 1)[0])}
            # Inside [...] of a usage line, options are words too: `[--pairs FILE]`.
            options |= {m for w in cmd for m in OPTION.findall(w) if w.startswith("[")}
            if cmd[0] == "cje":
                sub = next((w for w in cmd[1:] if not w.startswith("-")), None)
                if sub is not None and sub.isupper():  # a placeholder: `cje COMMAND --help`
                    sub = None
                if sub is not None and sub not in subs:
                    problems.append(f"{where}: `cje {sub}` is not a cje command ({sorted(subs)})")
                    continue
                allowed = top | subs[sub] if sub else everywhere
                what = f"`cje {sub}`" if sub else "any cje command"
            else:
                allowed, what = everywhere, "any cje command"
            for opt in sorted(options - allowed):
                problems.append(f"{where}: {opt} is not an option of {what}: {shlex.join(cmd)}")
    assert not problems, "\n".join(problems)


def test_option_check_catches_a_made_up_option(tmp_path: Path) -> None:
    """The parsing above finds options in blocks, continuations and inline code."""
    page = tmp_path / "page.md"
    page.write_text(
        "Run `cje analyze data.csv --judge-scale 0 10` or `--no-such-flag`.\n\n"
        "```bash\ncje analyze x.csv \\\n  --probe a=b.jsonl --made-up 3  # comment --ignored\n```\n"
    )
    found = [o for cmd in documented_commands(page) for o in cmd if o.startswith("--")]
    assert found == ["--probe", "--made-up", "--judge-scale", "--no-such-flag"]
    _, subs = cli_options()
    assert "--made-up" not in subs["analyze"] and "--probe" in subs["analyze"]


# ---- the API pages list what the package exports ------------------------------------------------
def test_bias_api_page_lists_every_export() -> None:
    """``docs/api/bias.md`` names its members one by one (griffe sees the submodules
    ``cje.bias.audit`` … where the functions of the same name are exported), so check it keeps up
    with ``cje.bias.__all__``."""
    import cje.bias

    text = (DOCS / "api" / "bias.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^::: cje\.bias\.(\w+)", text, re.M))
    documented |= set(re.findall(r"heading: cje\.bias\.(\w+)", text))
    missing = sorted(set(cje.bias.__all__) - documented)
    assert not missing, f"docs/api/bias.md does not document cje.bias.{missing}"


# ---- the simulation results page is assembled from simulations/results ---------------------------
def test_simulations_page_is_current() -> None:
    """``docs/simulations.md`` and its figures are what ``docs/figures/make_figures.py`` builds from
    the committed results files (rerun that script after a study)."""
    import runpy

    make = runpy.run_path(str(DOCS / "figures" / "make_figures.py"), run_name="make_figures")
    assert (DOCS / "simulations.md").read_text(encoding="utf-8") == make["simulations_page"](), (
        "docs/simulations.md is out of date: run python docs/figures/make_figures.py")
    shown = {p.name: p for p in make["study_figures"]()}
    copied = {p.name: p for p in (DOCS / "figures" / "studies").glob("*.png")}
    assert set(copied) == set(shown)
    for name, src in shown.items():
        assert copied[name].read_bytes() == src.read_bytes(), f"docs/figures/studies/{name} is stale"


def test_getting_started_shows_the_summary_as_printed(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary printed in Getting started › Analyse is what the code above it prints now
    (so a change of wording or of an interval cannot leave the page behind)."""
    import cje

    monkeypatch.chdir(tmp_path)
    cje.synthetic.make_direct_eval(1000, rng=0).data.to_csv("results.csv", index=False)
    report = cje.analyze("results.csv", judge_scale=(0, 10), label_scale=(1, 5))
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    start = page.index("print(report.summary())\n```\n\n```text\n") + len(
        "print(report.summary())\n```\n\n```text\n")
    shown = page[start:page.index("\n```", start)]
    assert shown == "\n".join(ln.rstrip() for ln in report.summary().splitlines())
