"""Refactoring guard: the JSON reports of fixed analyses, saved once and compared bit for bit.

A restructuring of the package (issue #13) must not change any number. This script runs

* the analysis of ``cje demo`` (the same data and call),
* the Arena sample, direct (fresh draws with its three probe slices, margin 0.05),
* the Arena sample, off-policy: stacked DR with fresh draws, and calibrated IPS,
* a synthetic off-policy run of every estimator (no external data needed),

and either saves each ``Report.to_json()`` (``--save DIR``) or compares against a saved set
(``--compare DIR``), printing the first differing line of any report that changed. Exit code 1
when anything differs. The Arena cases are skipped (and said so) when ``../shared`` is absent.

Usage::

    python benchmarks/identical_outputs.py --save /tmp/cje-before
    # ... restructure ...
    python benchmarks/identical_outputs.py --compare /tmp/cje-before
"""

from __future__ import annotations

import argparse
import difflib
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import cje

ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample"


def _demo() -> cje.Report:
    sim = cje.synthetic.make_direct_eval(2000, oracle_fraction=0.08, length_effect=0.15, rng=7)
    data = sim.data.assign(oracle_label=sim.data.oracle_label.where(sim.data.policy != "concise"))
    return cje.analyze(data, judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                       covariates=["response_length"], progress=False)


def _arena_direct() -> cje.Report:
    probes = {p: ARENA / "probe_slice" / f"{p}_probe.jsonl"
              for p in ("clone", "parallel_universe_prompt", "unhelpful")}
    return cje.analyze(ARENA / "fresh_draws", probes=probes, transport_margin=0.05, progress=False)


def _arena_offpolicy(estimator: str) -> Callable[[], cje.Report]:
    def run() -> cje.Report:
        fresh = ARENA / "fresh_draws" if estimator != "calibrated-ips" else None
        return cje.analyze(ARENA / "logged_data.jsonl", fresh_draws=fresh, estimator=estimator,
                           progress=False)
    return run


def _synthetic_offpolicy(estimator: str) -> Callable[[], cje.Report]:
    def run() -> cje.Report:
        sim = cje.synthetic.make_offpolicy_eval(600, n_fresh_per_prompt=1, oracle_fraction=0.2,
                                                rng=11)
        return cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=estimator,
                           judge_scale=sim.judge_scale, label_scale=sim.label_scale,
                           progress=False)
    return run


def cases() -> dict[str, Callable[[], cje.Report]]:
    out: dict[str, Callable[[], cje.Report]] = {"demo": _demo}
    for est in ("ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr", "direct"):
        out[f"synthetic_offpolicy_{est}"] = _synthetic_offpolicy(est)
    if (ARENA / "fresh_draws").is_dir():
        out["arena_direct"] = _arena_direct
        out["arena_stacked_dr"] = _arena_offpolicy("stacked-dr")
        out["arena_calibrated_ips"] = _arena_offpolicy("calibrated-ips")
    else:
        print(f"Arena sample not found at {ARENA}: its cases are skipped.")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--save", metavar="DIR", type=Path)
    mode.add_argument("--compare", metavar="DIR", type=Path)
    ns = ap.parse_args(argv)
    changed = 0
    for name, run in cases().items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            text = run().to_json()
        if ns.save:
            ns.save.mkdir(parents=True, exist_ok=True)
            (ns.save / f"{name}.json").write_text(text)
            print(f"saved    {name}")
            continue
        ref = ns.compare / f"{name}.json"
        if not ref.exists():
            print(f"MISSING  {name} (no {ref})")
            changed += 1
        elif ref.read_text() == text:
            print(f"same     {name}")
        else:
            changed += 1
            diff = difflib.unified_diff(ref.read_text().splitlines(), text.splitlines(), "before",
                                        "after", n=0, lineterm="")
            print(f"CHANGED  {name}:\n  " + "\n  ".join(list(diff)[2:8]))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
