"""Regenerate the figures in docs/figures/ (run from anywhere: ``python docs/figures/make_figures.py``).

* ``arena_reliability.png``, ``arena_forest.png``, ``arena_contrasts.png``: the real Arena sample
  (``../shared/data/arena_sample`` from the project root) with its three probe slices and a
  transport margin of 0.05, as in the README. Skipped, with a message, when the sample is absent.
* ``arena_bias_audit.png``: the verbosity audit of the Arena sample (base's labelled fresh draws
  plus the three probe slices), as in the Arena tutorial.
* ``bias_audit.png``: the bias audit of a synthetic three-judge panel with a length effect.
* ``docs/simulations.md`` and ``studies/*.png``: the simulation results page, assembled from
  ``simulations/results/*.md`` and their figures (``tests/test_docs.py`` checks it is current).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import cje  # noqa: E402
import cje.bias  # noqa: E402
from cje.export import flat_table  # noqa: E402
from cje.studies import NAMES  # noqa: E402
from cje.plots import bias_plot, contrast_plot, forest_plot, reliability_diagram  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARENA = ROOT.parent / "shared" / "data" / "arena_sample"
PROBES = ("clone", "parallel_universe_prompt", "unhelpful")
DPI = 110


def _save(ax, name: str) -> None:
    path = HERE / name
    ax.figure.savefig(path, dpi=DPI)
    plt.close(ax.figure)
    print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size / 1024:.0f} KB)")


def arena_figures() -> None:
    if not (ARENA / "fresh_draws").is_dir():
        print(f"Arena sample not found at {ARENA}: skipping the arena_*.png figures.")
        return
    report = cje.analyze(
        ARENA / "fresh_draws",
        probes={p: ARENA / "probe_slice" / f"{p}_probe.jsonl" for p in PROBES},
        transport_margin=0.05,
    )
    _save(reliability_diagram(report), "arena_reliability.png")
    _save(forest_plot(report), "arena_forest.png")
    _save(contrast_plot(report), "arena_contrasts.png")
    logged = cje.analyze(ARENA / "logged_data.jsonl", fresh_draws=ARENA / "fresh_draws",
                         estimator="stacked-dr")
    _save(logged.plot("overlap"), "arena_overlap.png")
    _save(logged.plot("weight_tail"), "arena_weight_tail.png")
    frames = [flat_table(cje.load(ARENA / "fresh_draws", covariates=["response_length"]))]
    frames += [flat_table(cje.load(ARENA / "probe_slice" / f"{p}_probe.jsonl", policy=p,
                                   covariates=["response_length"])) for p in PROBES]
    import pandas as pd

    _save(bias_plot(cje.bias.audit(pd.concat(frames, ignore_index=True))), "arena_bias_audit.png")


def bias_figure() -> None:
    sim = cje.synthetic.make_panel_eval(150, length_effect=0.3, rng=1)
    _save(bias_plot(cje.bias.audit(sim.data, rng=0)), "bias_audit.png")


# ---- the simulation results page ------------------------------------------------------------------
RESULTS = ROOT / "simulations" / "results"
STUDY_FIGURES = HERE / "studies"
#: Results files in the order of the page: the registered studies (cje.studies), then any others
#: (e.g. ``oua_jackknife_design``) alphabetically.
STUDY_ORDER = tuple(f"study_{name}" for name in NAMES)
PAGE_INTRO = """# Simulation results

The evidence behind the package's claims and defaults: Monte Carlo studies on synthetic data
whose truth is known exactly (`cje.synthetic`). Each section below is a results file of
`simulations/results/`, written by the script named in its first lines; `cje simulate STUDY`
reruns a registered study (`cje simulate --help` lists them) into a per-user data directory
(`~/.local/share/cje/simulations`) or `--out-dir DIR`, never into the current directory. Neither
it nor the scripts replace existing results without `--force`. Coverage is that of nominal 95%
intervals, with its Monte Carlo standard error; nothing was tuned to make a cell pass, and cells
outside [0.93, 0.97] are marked.

This page is assembled from those files by `python docs/figures/make_figures.py` (do not edit it
by hand; the tests check that it is current).
"""


def _study_files() -> list[Path]:
    found = {p.stem: p for p in RESULTS.glob("*.md")}
    order = [s for s in STUDY_ORDER if s in found] + sorted(set(found) - set(STUDY_ORDER))
    return [found[s] for s in order]


def simulations_page() -> str:
    """The text of ``docs/simulations.md``: each results file with its headings one level down,
    Sphinx roles as code, and its figure (``studies/<stem>.png``) shown under its heading."""
    parts = [PAGE_INTRO]
    for md in _study_files():
        text = md.read_text(encoding="utf-8")
        text = re.sub(r":(?:func|class|mod|data|meth|attr):`~?([^`]+)`", r"`\1`", text)
        text = re.sub(r"^(#+) ", r"#\1 ", text, flags=re.M)
        png = md.with_suffix(".png")
        if png.is_file():
            head, _, rest = text.partition("\n")
            text = f"{head}\n\n![{md.stem}](figures/studies/{png.name})\n{rest}"
        parts.append(text.rstrip() + "\n")
    return "\n".join(parts)


def study_figures() -> list[Path]:
    """The study PNGs the page shows."""
    return [md.with_suffix(".png") for md in _study_files() if md.with_suffix(".png").is_file()]


def write_simulations_page() -> None:
    page = HERE.parent / "simulations.md"
    page.write_text(simulations_page(), encoding="utf-8")
    print(f"wrote {page.relative_to(ROOT)}")
    if STUDY_FIGURES.is_dir():
        shutil.rmtree(STUDY_FIGURES)
    STUDY_FIGURES.mkdir()
    for png in study_figures():
        shutil.copyfile(png, STUDY_FIGURES / png.name)
    print(f"copied {len(study_figures())} study figures to {STUDY_FIGURES.relative_to(ROOT)}")


if __name__ == "__main__":
    arena_figures()
    bias_figure()
    write_simulations_page()
