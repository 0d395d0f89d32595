"""cje vs cje-eval 0.3.0 on the Arena sample with most oracle labels hidden.

The Arena sample's targets have no labels of their own; their only ground truth is the mean of
their 50-row probe slice (SE ≈ 0.03). This benchmark hides all but a random ``--fraction`` of the
logged rows' oracle labels (default 5% = 50 of 1,000 rows, drawn from the 480 labelled ones, one
draw per mask seed; every fresh-draw label is hidden too, so both packages calibrate on the same
50 labels), runs stacked DR of both packages on each masked copy with every option at its default
and no probe slices, and scores each target's estimate against its probe mean:

* mean |error| over the seeds, and its ratio cje / cje-eval;
* mean interval width, and how often the interval covers the probe mean (an approximate
  coverage: the probe mean is itself uncertain by about ±0.06).

Run (the cje-eval virtualenv is described in ``benchmarks/cje_eval_030_offpolicy.py``)::

    python benchmarks/arena_masked.py [--fraction 0.05] [--seeds 6] \
        [--cje-eval-python /work/venvs/cje-eval-030/bin/python] [--out FILE.json]

Without the cje-eval interpreter only cje's side is measured (and said so).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import cje
from cje import datasets

HERE = Path(__file__).resolve().parent
TARGETS = ("clone", "parallel_universe_prompt", "unhelpful")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _with_text(r: dict) -> dict:
    """cje-eval's loaders require ``prompt`` and ``response`` text, which the shipped copy does not
    have: a placeholder with the recorded number of words (no estimator here reads the text)."""
    pid = r.get("prompt_id") or r["metadata"]["prompt_id"]
    return {**r, "prompt": str(pid), "response": " ".join(["word"] * int(r.get("response_length", 1)))}


def masked_copies(root: Path, fraction: float, seeds: int) -> tuple[list[Path], dict[str, float]]:
    """Write one masked copy of the Arena files per seed; return the dirs and the probe means."""
    files = datasets.export(root / "full")
    logged = [_with_text(r) for r in _jsonl(files.logged)]
    labelled = np.flatnonzero([r.get("oracle_label") is not None for r in logged])
    n_keep = round(fraction * len(logged))
    fresh = {p.name: [_with_text(r) for r in _jsonl(p)]
             for p in sorted(files.fresh_draws.glob("*_responses.jsonl"))}
    dirs = []
    for seed in range(seeds):
        keep = set(np.random.default_rng(seed).choice(labelled, size=n_keep, replace=False).tolist())
        d = root / f"seed{seed}"
        _write(d / "logged_data.jsonl",
               [r if i in keep else {**r, "oracle_label": None} for i, r in enumerate(logged)])
        for name, rows in fresh.items():
            _write(d / "fresh_draws" / name, [{**r, "oracle_label": None} for r in rows])
        dirs.append(d)
    probe = {t: float(np.mean([r["oracle_label"] for r in _jsonl(files.probes[t])])) for t in TARGETS}
    return dirs, probe


def run_cje(d: Path) -> dict[str, dict]:
    rep = cje.analyze(str(d / "logged_data.jsonl"), fresh_draws=str(d / "fresh_draws"),
                      estimator="stacked-dr")
    return {e.policy: {"estimate": e.estimate, "ci95": [e.ci_low, e.ci_high], "se": e.se,
                       "status": e.status} for e in rep.estimates}


def summarise(runs: list[dict[str, dict]], probe: dict[str, float]) -> dict[str, dict]:
    out = {}
    for t in TARGETS:
        est = np.array([r[t]["estimate"] for r in runs], dtype=float)
        lo = np.array([r[t]["ci95"][0] for r in runs], dtype=float)
        hi = np.array([r[t]["ci95"][1] for r in runs], dtype=float)
        out[t] = {"mean_abs_error": float(np.mean(np.abs(est - probe[t]))),
                  "mean_width": float(np.mean(hi - lo)),
                  "covers_probe_mean": int(np.sum((lo <= probe[t]) & (probe[t] <= hi))),
                  "runs": len(runs),
                  "statuses": [r[t].get("status") for r in runs]}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.05, help="share of logged rows left labelled")
    ap.add_argument("--seeds", type=int, default=6, help="mask seeds 0..N-1 (default 6)")
    ap.add_argument("--cje-eval-python", default="/work/venvs/cje-eval-030/bin/python",
                    help="interpreter of a virtualenv with cje-eval==0.3.0")
    ap.add_argument("--out", default=None, help="write the JSON here too")
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        dirs, probe = masked_copies(Path(tmp), ns.fraction, ns.seeds)
        ours = [run_cje(d) for d in dirs]
        result = {"fraction": ns.fraction, "seeds": ns.seeds, "probe_means": probe,
                  "cje": {"version": cje.__version__, "per_seed": ours,
                          "summary": summarise(ours, probe)},
                  "load_average": os.getloadavg()}
        if Path(ns.cje_eval_python).exists():
            proc = subprocess.run([ns.cje_eval_python, str(HERE / "cje_eval_030_masked.py"),
                                   *map(str, dirs)], capture_output=True, text=True, check=True)
            by_dir = json.loads(proc.stdout)
            theirs = [by_dir[str(d)] for d in dirs]
            result["cje_eval"] = {"version": "0.3.0", "per_seed": theirs,
                                  "summary": summarise(theirs, probe)}
        else:
            result["cje_eval"] = f"not measured: {ns.cje_eval_python} does not exist"
    print(report(result))
    if ns.out:
        Path(ns.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
    return 0


def base_reference() -> tuple[float, float, int] | None:
    """Mean, standard error and count of the oracle labels on base's own responses (the shipped
    Arena copy's fresh draws of ``base``); None without them."""
    try:
        frame = datasets.arena().fresh_draws
    except Exception:  # noqa: BLE001 - the reference is optional in the report
        return None
    y = frame.loc[frame["policy"] == "base", "oracle_label"].dropna().to_numpy(dtype=float)
    return float(y.mean()), float(y.std(ddof=1) / np.sqrt(y.size)), int(y.size)


def ref_share_zero() -> float:
    """Share of the logged rows whose ``clone`` log-probability equals base's."""
    logged = datasets.arena().logged
    return float((logged["logprob[clone]"] == logged["logprob_base"]).mean())


def _err_vs(r: dict, side: str, ref: float) -> str:
    est = [s["clone"]["estimate"] for s in r[side]["per_seed"] if "clone" in s]
    return f"{np.mean(np.abs(np.array(est) - ref)):.3f} (estimates {min(est):.3f}–{max(est):.3f})"


def report(r: dict) -> str:
    """The Markdown table of one run."""
    theirs = r["cje_eval"]["summary"] if isinstance(r["cje_eval"], dict) else None
    lines = [f"Arena, {r['fraction']:.0%} of logged rows labelled, {r['seeds']} mask seeds, stacked DR, "
             "no probes; error against each target's 50-row probe mean.", "",
             "| target | probe mean | cje mean abs error | cje-eval mean abs error | ratio | "
             "cje mean width | cje-eval mean width | cje covers | cje-eval covers |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in TARGETS:
        a = r["cje"]["summary"][t]
        b = theirs[t] if theirs else None
        lines.append(
            f"| {t} | {r['probe_means'][t]:.3f} | {a['mean_abs_error']:.3f} | "
            + (f"{b['mean_abs_error']:.3f} | {a['mean_abs_error'] / b['mean_abs_error']:.2f} | "
               if b else "— | — | ")
            + f"{a['mean_width']:.3f} | " + (f"{b['mean_width']:.3f} | " if b else "— | ")
            + f"{a['covers_probe_mean']}/{a['runs']} | "
            + (f"{b['covers_probe_mean']}/{b['runs']} |" if b else "— |"))
    ref = base_reference()
    if ref is not None:
        mean, se, n = ref
        lines += ["", "`clone` against a firmer reference: `clone` is base's model and prompt "
                  f"(its log-weight is exactly 0 on {ref_share_zero():.1%} of the logged rows), "
                  "so its value is base's, "
                  f"whose {n} labelled responses average {mean:.3f} ± {se:.3f} (SE). Mean abs error "
                  "against that: cje " + _err_vs(r, "cje", mean)
                  + (", cje-eval " + _err_vs(r, "cje_eval", mean) if theirs else "") + "."]
    lines.append("")
    lines.append("cje statuses: " + "; ".join(f"{t}: {', '.join(r['cje']['summary'][t]['statuses'])}"
                                             for t in TARGETS))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
