"""Regenerate the figures in docs/figures/ (run from anywhere: ``python docs/figures/make_figures.py``).

* ``arena_reliability.png``, ``arena_forest.png``, ``arena_contrasts.png``: the real Arena sample
  (``../shared/data/arena_sample`` from the project root) with its three probe slices and a
  transport margin of 0.05, as in the README. Skipped, with a message, when the sample is absent.
* ``bias_audit.png``: the bias audit of a synthetic three-judge panel with a length effect.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

import cje  # noqa: E402
import cje.bias  # noqa: E402
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


def bias_figure() -> None:
    sim = cje.synthetic.make_panel_eval(150, length_effect=0.3, rng=1)
    _save(bias_plot(cje.bias.audit(sim.data, rng=0)), "bias_audit.png")


if __name__ == "__main__":
    arena_figures()
    bias_figure()
