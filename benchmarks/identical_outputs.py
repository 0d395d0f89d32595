"""Refactoring guard: the JSON reports of fixed analyses, saved once and compared bit for bit.

A restructuring of the package (issue #13) must not change any number. This script runs

* the analysis of ``cje demo`` (the same data and call),
* the Arena sample, direct (fresh draws with its three probe slices, margin 0.05),
* the Arena sample, off-policy: stacked DR with fresh draws, and calibrated IPS,
* a synthetic off-policy run of every estimator (no external data needed),

and either saves each ``Report.to_json()`` (``--save DIR``) or compares against a saved set
(``--compare DIR``), printing the first differing line of any report that changed. Exit code 1
when anything differs. The Arena cases are skipped (and said so) when ``../shared`` is absent
(``CJE_ARENA_DIR=/path/to/arena_sample`` points elsewhere, e.g. from a git worktree).

The ``provenance`` block (cje version, input hashes, the UTC time of the run) is removed from
both sides before comparing, and only from there: it changes on every run by design, while
every number, setting and text of the report must stay bit for bit the same. Both sides are
compared as ``json.dumps(<report without provenance>, indent=2)`` of the parsed text (Python's
float repr round-trips exactly, so no number can hide a change); a saved set written before
reports carried provenance compares as it is.

Usage::

    python benchmarks/identical_outputs.py --save /tmp/cje-before
    # ... restructure ...
    python benchmarks/identical_outputs.py --compare /tmp/cje-before
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import cje

ARENA = Path(os.environ.get("CJE_ARENA_DIR")
             or Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample")


def without_provenance(text: str) -> str:
    """The report's JSON text without its ``provenance`` block, re-written with indent 2."""
    d = json.loads(text)
    d.pop("provenance", None)
    return json.dumps(d, indent=2, allow_nan=False)


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
            continue
        before, after = without_provenance(ref.read_text()), without_provenance(text)
        if before == after:
            print(f"same     {name}")
        else:
            changed += 1
            diff = difflib.unified_diff(before.splitlines(), after.splitlines(), "before",
                                        "after", n=0, lineterm="")
            print(f"CHANGED  {name}:\n  " + "\n  ".join(list(diff)[2:8]))
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
