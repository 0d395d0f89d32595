"""Benchmark: wall time and peak memory of ``cje.analyze`` on logged data (off-policy, full OUA).

Two measurements, printed as markdown and (``--write``) written to ``benchmarks/results.md``
(section "Off-policy"):

1. Scaling: ``cje.synthetic.make_offpolicy_eval(n, oracle_fraction=0.1, n_fresh_per_prompt=1)``
   with its 3 default targets (ESS 90 / 60 / 10 %), i.e. n logged rows and n fresh draws of
   ``base`` and of each target (4n fresh rows). For every (n, estimator) a fresh subprocess
   imports cje, runs one untimed warm-up analysis at n = 2,000 with the same estimator, builds
   the data at n (pandas frames, as a user holds them), and then times
   ``cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=…, judge_scale=…, label_scale=…)``
   ``--repeats`` times (``--repeats-large`` from ``--large-from`` rows on) with
   ``time.perf_counter``. The call includes loading/validating the frames, calibration, the
   estimator and the full OUA jackknife (which refits everything downstream of the calibrator).
   Peak memory is the rise of the process's peak RSS (``getrusage`` ``ru_maxrss``) over its RSS
   just before the call; before each call the kernel's high-water mark is reset to the current
   RSS (``echo 5 > /proc/self/clear_refs``) so that the transient peak of building the data is
   not counted. Process CPU time (all threads) is reported next to the wall time.
   Beside each call, in the same process and interleaved with it (one run of each before
   every timed call, best of the repeats), the bare-numpy references (issue #18):
   ``benchmarks/bare_direct.py`` on n rows of the direct pipeline (4 policies, as
   ``benchmarks/direct.py`` builds them) from coded arrays, and from the frame (ids coded by
   ``pandas.factorize``), and ``benchmarks/bare_offpolicy.py`` (SNIPS, 3 targets) on n logged
   rows, from its own coded arrays and from the logged frame cje is given (its string prompt
   ids coded by ``pandas.factorize``, timed; no fresh draws, which the bare script does not
   read); the table gives cje's best CPU time divided by the bare direct pipeline's
   (acceptance: ≤ 3× for every estimator, ≤ 1.5× for IPS/SNIPS, at 10⁶). Beside it, each
   estimator's own bare reference (:data:`IPS_FAMILY`, :data:`DR_FAMILY`) on the frames cje is
   given, and the ratio: the IPS family's floor (``bare_offpolicy.floor``: SNIPS from the logged
   frame + the fresh draws from their frame + the minimal overlap diagnostics; calibrated IPS:
   ``bare_dr.py``'s calibrated IPS from the frames + those diagnostics), the DR family's
   ``benchmarks/bare_dr.py`` (DR-CPO, from its coded arrays / from the frames; MRDR, TMLE and
   stacked DR have no bare script of their own and are set against it too); the direct
   estimator's: ``bare_dr.py``'s direct estimate from the frames + those diagnostics.
   ``--no-bare`` skips them.
2. Side by side on the real Arena sample (1,000 logged rows, 3 targets, fresh draws, 480
   labels): ``cje.analyze(logged_data.jsonl, fresh_draws=fresh_draws/, estimator="stacked-dr")``
   vs ``cje-eval==0.3.0``'s ``analyze_dataset(..., estimator="stacked-dr")`` (run by
   ``benchmarks/cje_eval_030_offpolicy.py`` with its own virtualenv's interpreter). Each package
   runs in its own process: one untimed warm-up run, then the median of ``--arena-runs`` runs;
   both read the same files with default options. cje's warm call is also split into
   reading the files (``cje.load`` of both) and the analysis of the loaded data.

Runs can be split (``--json-out`` saves the raw measurements, merged ones included; ``--merge``
folds the raw measurements of earlier runs into the tables; ``--no-scaling`` runs only the Arena
part); ``--profile EST`` instead runs one analysis at the largest size under cProfile.

Usage::

    python benchmarks/offpolicy.py [--sizes 10000 100000 1000000] [--estimators ...]
        [--repeats 3] [--repeats-large 1] [--arena-runs 20] [--no-arena]
        [--cje-eval-python /work/venvs/cje-eval-030/bin/python] [--cje-eval-json FILE]
        [--json-out FILE] [--merge FILE ...] [--no-scaling] [--write]
    python benchmarks/offpolicy.py --profile tmle --sizes 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARENA = HERE.parents[1] / "shared" / "data" / "arena_sample"
ESTIMATORS = ["ips", "snips", "calibrated-ips", "dr-cpo", "mrdr", "tmle", "stacked-dr", "direct"]
#: Targets at 10^6 logged rows, per estimator.
TARGET_SECONDS, TARGET_MB = 30.0, 3 * 1024.0
WARMUP_N = 2_000

_CHILD = r"""
import cProfile, gc, io, json, os, pstats, resource, sys, time, warnings
import cje

warnings.simplefilter("ignore")

def rss_mb(key="VmRSS:"):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    return float("nan")

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False

def maxrss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def synthetic(n):
    return cje.synthetic.make_offpolicy_eval(n, oracle_fraction=0.10, n_fresh_per_prompt=1, rng=0)

def call(sim, est):
    return cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=est,
                       judge_scale=sim.judge_scale, label_scale=sim.label_scale)

def bare_inputs(n):
    # the bare-numpy references' inputs at n rows: the direct pipeline's frame (4 policies, as
    # benchmarks/direct.py builds it) and its coded arrays, and a logged set of n rows x 3 targets
    sys.path.insert(0, __HERE__)
    import bare_direct, bare_offpolicy
    pols = cje.synthetic.default_policies()[:4]
    d = cje.synthetic.make_direct_eval(n // 4, policies=pols, oracle_fraction=0.10, rng=0)
    frame, scales = d.data[["prompt_id", "policy", "judge_score", "oracle_label"]], (
        d.judge_scale, d.label_scale)
    return {"direct_codes": bare_direct.codes_from_frame(frame, *scales),
            "direct_frame": (frame, scales), "offpolicy": bare_offpolicy.make_data(n)}

def bare_frame_input(sim):
    # the off-policy reference on cje's own logged frame (ids factorised from it: timed)
    return (sim.logged, (sim.judge_scale, sim.label_scale))

def own_inputs(inp, sim):
    # the estimators' own references read the frames cje is given (timed); bare DR-CPO also
    # from its coded arrays (coded once, untimed)
    import bare_dr
    scales = (sim.judge_scale, sim.label_scale)
    inp["frames"] = (sim.logged, sim.fresh, scales)
    inp["dr_codes"] = bare_dr.codes_from_frames(sim.logged, sim.fresh, *scales)

def bare_times(inp):
    # CPU seconds of one run of each bare reference
    import bare_direct, bare_offpolicy
    out = {}
    c = time.process_time(); bare_direct.run(inp["direct_codes"])
    out["bare_direct"] = time.process_time() - c
    frame, scales = inp["direct_frame"]
    c = time.process_time(); bare_direct.run(bare_direct.codes_from_frame(frame, *scales))
    out["bare_direct_frame"] = time.process_time() - c
    c = time.process_time(); bare_offpolicy.run(inp["offpolicy"])
    out["bare_offpolicy"] = time.process_time() - c
    if "offpolicy_frame" in inp:  # SNIPS from the logged frame cje reads, factorising its ids
        frame, scales = inp["offpolicy_frame"]
        c = time.process_time(); bare_offpolicy.run(bare_offpolicy.codes_from_frame(frame, *scales))
        out["bare_offpolicy_frame"] = time.process_time() - c
    if "frames" in inp:  # the estimators' own references on the frames cje is given
        import bare_dr
        logged, fresh, scales = inp["frames"]
        # the IPS family's floor: SNIPS from the logged frame + fresh draws + minimal diagnostics
        for key, v in bare_offpolicy.floor(logged, fresh, *scales).items():
            out["floor_" + key] = v
        try:  # (it refuses a target below 10% raw ESS: small n)
            c = time.process_time(); bare_dr.run(inp["dr_codes"])
            out["bare_dr"] = time.process_time() - c
            c = time.process_time(); bare_dr.run(bare_dr.codes_from_frames(logged, fresh, *scales))
            out["bare_dr_frame"] = time.process_time() - c
            # calibrated IPS (its SIMCal-W weights, no outcome model) from the frames
            c = time.process_time()
            bare_dr.run(bare_dr.codes_from_frames(logged, fresh, *scales), estimator="calibrated-ips")
            out["bare_cips_frame"] = time.process_time() - c
        except NotImplementedError:
            out["bare_dr"] = out["bare_dr_frame"] = out["bare_cips_frame"] = None
        # the direct estimator on logged data: each target's fresh draws, from the frames
        c = time.process_time()
        bare_dr.run(bare_dr.codes_from_frames(logged, fresh, *scales), estimator="direct")
        out["bare_direct_logged_frame"] = time.process_time() - c
    return out

mode = sys.argv[1]
if mode == "synthetic":
    n, est, repeats = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    with_bare = len(sys.argv) > 5 and sys.argv[5] == "bare"
    call(synthetic(__WARMUP_N__), est)  # warm-up: imports, first-call paths
    sim = synthetic(n)
    truth = sim.truth
    inp = bare_inputs(n) if with_bare else None
    if with_bare:
        inp["offpolicy_frame"] = bare_frame_input(sim)
        own_inputs(inp, sim)
        warm = bare_inputs(__WARMUP_N__)
        warm_sim = synthetic(50 * __WARMUP_N__)  # bare_dr needs the far target's ESS >= 10%
        warm["offpolicy_frame"] = bare_frame_input(warm_sim)
        own_inputs(warm, warm_sim)
        bare_times(warm)  # warm-up
    gc.collect()
    times, cpus, peaks, bases, resets, bare = [], [], [], [], [], []
    for _ in range(repeats):
        if with_bare:  # the references, interleaved with the cje call in the same process
            bare.append(bare_times(inp))
        gc.collect()
        resets.append(reset_peak())
        base = rss_mb()
        c = time.process_time()
        t = time.perf_counter()
        rep = call(sim, est)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        peaks.append(maxrss_mb() - base)
        bases.append(base)
        ests = {e.policy: [e.estimate, e.ci_low, e.ci_high] for e in rep.estimates}
        del rep
    err = max(abs(v[0] - truth[p]) for p, v in ests.items() if p != "base")
    print(json.dumps({"n": n, "estimator": est, "times": times, "cpu": cpus, "peak_mb": peaks,
                      "rss_before_mb": bases, "hwm_reset": all(resets), "estimates": ests,
                      "truth": truth, "max_abs_error": err, "bare": bare,
                      "n_fresh_rows": int(sim.fresh.shape[0])}))
elif mode == "arena":
    root, runs = sys.argv[2], int(sys.argv[3])
    args = (root + "/logged_data.jsonl",)
    kw = dict(fresh_draws=root + "/fresh_draws", estimator="stacked-dr")
    t = time.perf_counter()
    rep = cje.analyze(*args, **kw)  # warm-up
    warm = time.perf_counter() - t
    times, cpus, read_cpu, analysis_cpu = [], [], [], []
    for _ in range(runs):
        c = time.process_time()
        t = time.perf_counter()
        rep = cje.analyze(*args, **kw)
        times.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
        # the same call split: reading the files, then the analysis of the loaded data
        c = time.process_time()
        data = cje.load(args[0]), cje.load(kw["fresh_draws"])
        read_cpu.append(time.process_time() - c)
        c = time.process_time()
        cje.analyze(data[0], fresh_draws=data[1], estimator=kw["estimator"])
        analysis_cpu.append(time.process_time() - c)
    print(json.dumps({"warmup": warm, "times": times, "cpu": cpus, "peak_rss_mb": maxrss_mb(),
                      "read_cpu": read_cpu, "analysis_cpu": analysis_cpu,
                      "estimates": {e.policy: [e.estimate, e.ci_low, e.ci_high]
                                    for e in rep.estimates}}))
elif mode == "profile":
    n, est, top = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    call(synthetic(__WARMUP_N__), est)
    sim = synthetic(n)
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    call(sim, est)
    prof.disable()
    wall = time.perf_counter() - t
    out = io.StringIO()
    st = pstats.Stats(prof, stream=out)
    st.sort_stats("cumulative").print_stats(top)
    st.sort_stats("tottime").print_stats(top)
    print(f"wall time under cProfile: {wall:.2f} s", file=out)
    sys.stderr.write(out.getvalue())
""".replace("__WARMUP_N__", str(WARMUP_N)).replace("__HERE__", repr(str(HERE)))


# The children run with -P: ``python -c`` would put the working directory first on sys.path, so a
# run from inside another checkout would time that checkout's cje, not the one PYTHONPATH (or the
# installation) gives this process.
def _child(*args: str, timeout: float | None = None) -> dict:
    out = subprocess.run([sys.executable, "-P", "-c", _CHILD, *args], check=True, capture_output=True,
                         text=True, timeout=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _cje_version() -> str:
    import cje

    return cje.__version__


def measure_scaling(sizes: list[int], estimators: list[str], repeats: int, repeats_large: int,
                    large_from: int, timeout: float, bare: bool = True) -> list[dict]:
    rows = []
    for n in sizes:
        reps = repeats_large if n >= large_from else repeats
        for est in estimators:
            load0 = os.getloadavg()
            t0 = time.perf_counter()
            try:
                r = _child("synthetic", str(n), est, str(reps), *(["bare"] if bare else []),
                           timeout=timeout)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                tail = getattr(exc, "stderr", "") or ""
                r = {"n": n, "estimator": est, "error": f"{type(exc).__name__}: "
                     f"{tail.strip().splitlines()[-1] if tail.strip() else ''}"}
            r["process_seconds"] = time.perf_counter() - t0
            r["load_before"], r["load_after"] = list(load0), list(os.getloadavg())
            rows.append(r)
            print(_scaling_line(r), flush=True)
    return rows


def _scaling_line(r: dict) -> str:
    n, est = r["n"], r["estimator"]
    if "error" in r:
        return f"| {n:,} | {est} | — | — | — | — | — | — | — | — | — | — | — | — | failed: {r['error']} |"
    t_med, t_min = statistics.median(r["times"]), min(r["times"])
    cpu = statistics.median(r["cpu"])
    mem = max(r["peak_mb"])
    base = statistics.median(r["rss_before_mb"])
    verdict = "—"
    if n >= 1_000_000:
        ok_t, ok_m = t_med <= TARGET_SECONDS, mem <= TARGET_MB
        verdict = "yes" if ok_t and ok_m else "no (" + ", ".join(
            x for x, ok in (("time", ok_t), ("memory", ok_m)) if not ok) + ")"
    ref = "— | — | — |"
    own = "— | — |"
    if r.get("bare") and "floor_total" in r["bare"][0]:
        def best_of(key: str) -> float | None:
            got = [b[key] for b in r["bare"] if b.get(key) is not None]
            return min(got) if got else None
        cpu_best = min(r["cpu"])
        if est == "calibrated-ips" and best_of("bare_cips_frame") is not None:
            cips, diag = best_of("bare_cips_frame"), best_of("floor_diagnostics")
            own = (f"bare calibrated IPS from the frames {cips:.2f} + diagnostics {diag:.2f} = "
                   f"{cips + diag:.2f} | {cpu_best / (cips + diag):.1f}× |")
        elif est in IPS_FAMILY:
            parts = [best_of("floor_" + k) for k in ("snips_frame", "fresh", "diagnostics")]
            tot = best_of("floor_total")
            own = (f"floor {parts[0]:.2f} + {parts[1]:.2f} + {parts[2]:.2f} = {tot:.2f} "
                   f"| {cpu_best / tot:.1f}× |")
        elif est in DR_FAMILY:
            codes, frame = best_of("bare_dr"), best_of("bare_dr_frame")
            if frame is None:
                own = "bare DR-CPO refused (far target's ESS < 10%) | — |"
            else:
                who = "" if est == "dr-cpo" else f" (stands in for {est})"
                own = (f"bare DR-CPO{who} {codes:.2f} / {frame:.2f} | {cpu_best / codes:.1f}× / "
                       f"{cpu_best / frame:.1f}× |")
        else:
            # (cje reports the targets' overlap diagnostics with the direct estimator too)
            dl, diag = best_of("bare_direct_logged_frame"), best_of("floor_diagnostics")
            own = (f"bare direct from the frames {dl:.2f} + diagnostics {diag:.2f} = {dl + diag:.2f} "
                   f"| {cpu_best / (dl + diag):.1f}× |")
    if r.get("bare"):
        best = {k: min(b[k] for b in r["bare"]) for k in r["bare"][0]}
        cpu_best = min(r["cpu"])
        frame_op = best.get("bare_offpolicy_frame")
        ref = (f"{best['bare_direct']:.2f} / {best['bare_direct_frame']:.2f} | "
               f"{cpu_best / best['bare_direct']:.1f}× / {cpu_best / best['bare_direct_frame']:.1f}× "
               f"| {best['bare_offpolicy']:.2f} / "
               f"{'—' if frame_op is None else f'{frame_op:.2f}'} |")
    return (f"| {n:,} | {est} | {len(r['times'])} | {t_med:.3f} | {t_min:.3f} | {cpu:.2f} | "
            f"{mem:,.0f} | {base:,.0f} | {r['max_abs_error']:.4f} | {ref} {own} {verdict} |")


SCALING_HEADER = [
    "| logged rows | estimator | runs | median s | min s | CPU s | peak RSS over pre-call (MB) "
    "| RSS before call (MB) | max abs error vs truth | bare direct CPU s (codes / frame) "
    "| best CPU ÷ bare direct (codes / frame) | bare SNIPS CPU s (codes / cje's logged frame) "
    "| own bare reference, CPU s | best CPU ÷ own bare reference "
    "| ≤ 30 s and ≤ 3 GB at 10⁶ |",
    "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
]
#: The estimators' own bare references (issue #18): the IPS family's is the floor of a SNIPS call
#: with fresh draws (``bare_offpolicy.floor``: SNIPS from the logged frame + the fresh draws from
#: their frame + the minimal overlap diagnostics), calibrated IPS's ``bare_dr.py``'s calibrated
#: IPS from the frames + the same diagnostics; the DR family's is ``bare_dr.py`` (DR-CPO, from
#: its coded arrays / from the frames), the direct estimator's ``bare_dr.py``'s direct estimate
#: from the frames + the same diagnostics (cje reports them with every estimator). MRDR, TMLE
#: and stacked DR (three outcome models, a fluctuation, a stacking) have no bare script of their
#: own: bare DR-CPO is their reference, the least any of them must do.
IPS_FAMILY = ("ips", "snips", "calibrated-ips")
DR_FAMILY = ("dr-cpo", "mrdr", "tmle", "stacked-dr")


def measure_arena(runs: int, cje_eval_python: str, cje_eval_json: str | None) -> dict:
    out: dict = {"load_before": list(os.getloadavg())}
    out["cje"] = _child("arena", str(ARENA), str(runs))
    out["load_after_cje"] = list(os.getloadavg())
    theirs = None
    if cje_eval_json:
        theirs = json.loads(Path(cje_eval_json).read_text())
        out["cje_eval_source"] = f"read from {cje_eval_json}"
    elif Path(cje_eval_python).exists():
        script = HERE / "cje_eval_030_offpolicy.py"
        cmd = [cje_eval_python, str(script), "--data", str(ARENA), "--repeats", str(runs),
               "--estimators", "stacked-dr"]
        res = subprocess.run(cmd, check=True, capture_output=True, text=True)
        theirs = json.loads(res.stdout)
        out["cje_eval_source"] = "measured: " + " ".join(cmd)
    else:
        out["cje_eval_source"] = f"not measured: {cje_eval_python} does not exist"
    out["cje_eval"] = theirs
    out["load_after"] = list(os.getloadavg())
    return out


def arena_lines(a: dict) -> list[str]:
    ours = a["cje"]
    t_ours = statistics.median(ours["times"])
    lines = [
        "### Arena sample, stacked DR side by side (1,000 logged rows, 3 targets, fresh draws, "
        "480 labels)",
        "",
        "| package | call | median s | min s | median CPU s | runs (after 1 warm-up) |",
        "|---|---|---:|---:|---:|---:|",
        f"| cje {_cje_version()} | `cje.analyze(logged_data.jsonl, fresh_draws=fresh_draws/, "
        f"estimator=\"stacked-dr\")` | {t_ours:.4f} | {min(ours['times']):.4f} | "
        f"{statistics.median(ours['cpu']):.4f} | {len(ours['times'])} |",
    ]
    theirs = a.get("cje_eval")
    if theirs:
        tim = theirs["timings"]["stacked-dr"]
        cpu = tim.get("median_cpu_s")
        lines += [
            f"| cje-eval {theirs['package']['version']} | `analyze_dataset(logged_data_path=…, "
            f"fresh_draws_dir=…, estimator=\"stacked-dr\")` | {tim['median_s']:.4f} | "
            f"{tim['min_s']:.4f} | {'—' if cpu is None else f'{cpu:.4f}'} | {tim['repeats']} |",
            "",
            f"Speed-up: **{tim['median_s'] / t_ours:.0f}×** (cje-eval median / cje median; "
            f"target ≥ 20×)"
            + ("" if cpu is None else
               f"; {cpu / statistics.median(ours['cpu']):.0f}× in CPU time, which other work on "
               "the machine disturbs less")
            + f". Load average (1 min) {a['load_before'][0]:.2f} before cje, "
            f"{a['load_after_cje'][0]:.2f} after cje / before cje-eval, {a['load_after'][0]:.2f} "
            f"after cje-eval. cje-eval: {a['cje_eval_source']}.",
        ]
    else:
        lines += ["", f"cje-eval 0.3.0 {a['cje_eval_source']}: side-by-side not measured."]
    if ours.get("read_cpu"):
        lines += ["", f"cje's warm call split (CPU, median / best of {len(ours['read_cpu'])}): reading "
                  f"the files with `cje.load` {statistics.median(ours['read_cpu']):.4f} / "
                  f"{min(ours['read_cpu']):.4f} s, `cje.analyze` of the loaded data "
                  f"{statistics.median(ours['analysis_cpu']):.4f} / {min(ours['analysis_cpu']):.4f} s "
                  "(target for the whole call: ≤ 0.05 s)."]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--estimators", nargs="+", default=ESTIMATORS, choices=ESTIMATORS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--repeats-large", type=int, default=1,
                    help="repeats from --large-from rows on (default 1)")
    ap.add_argument("--large-from", type=int, default=1_000_000)
    ap.add_argument("--timeout", type=float, default=1800.0, help="per subprocess, seconds")
    ap.add_argument("--arena-runs", type=int, default=20)
    ap.add_argument("--no-arena", action="store_true")
    ap.add_argument("--no-bare", action="store_true",
                    help="do not time the bare-numpy references beside each call")
    ap.add_argument("--no-scaling", action="store_true", help="only the Arena side by side")
    ap.add_argument("--cje-eval-python", default="/work/venvs/cje-eval-030/bin/python")
    ap.add_argument("--cje-eval-json", default=None,
                    help="use this saved output of cje_eval_030_offpolicy.py instead of running it")
    ap.add_argument("--json-out", default=None, help="save the raw measurements here")
    ap.add_argument("--merge", nargs="*", default=[],
                    help="raw measurement files of earlier runs to include in the tables")
    ap.add_argument("--profile", choices=ESTIMATORS, default=None,
                    help="only profile this estimator once at max(--sizes) under cProfile")
    ap.add_argument("--profile-top", type=int, default=10)
    ap.add_argument("--write", action="store_true", help="replace the section in results.md")
    ns = ap.parse_args()

    if ns.profile:
        n = max(ns.sizes)
        res = subprocess.run([sys.executable, "-P", "-c", _CHILD, "profile", str(n), ns.profile,
                              str(ns.profile_top)], check=True, capture_output=True, text=True)
        print(f"cProfile of cje.analyze(estimator={ns.profile!r}) at {n:,} logged rows\n")
        print(res.stderr)
        return

    runs = [{"command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
             "date": time.strftime("%Y-%m-%d %H:%M"), "uptime_before": _uptime()}]
    print(runs[0]["uptime_before"])
    if not ns.no_scaling:
        print("\n".join(SCALING_HEADER), flush=True)
    rows = [] if ns.no_scaling else measure_scaling(
        ns.sizes, ns.estimators, ns.repeats, ns.repeats_large, ns.large_from, ns.timeout,
        bare=not ns.no_bare)
    arena = None
    if not ns.no_arena and ARENA.is_dir():
        arena = measure_arena(ns.arena_runs, ns.cje_eval_python, ns.cje_eval_json)
        print("\n".join(arena_lines(arena)))
    runs[0]["uptime_after"] = _uptime()
    print(runs[0]["uptime_after"])
    measured = not (ns.no_scaling and (ns.no_arena or not ARENA.is_dir()))
    raw = {"runs": runs if measured else [], "scaling": rows, "arena": arena}
    earlier: list[dict] = []
    for path in ns.merge:
        old = json.loads(Path(path).read_text())
        have = {(r["n"], r["estimator"]) for r in raw["scaling"]}
        raw["scaling"] += [r for r in old["scaling"] if (r["n"], r["estimator"]) not in have]
        earlier += [r for r in old["runs"] if r not in earlier]
        if raw["arena"] is None:
            raw["arena"] = old.get("arena")
    raw["runs"] = sorted(earlier + raw["runs"], key=lambda r: r["date"])
    raw["scaling"].sort(key=lambda r: (r["n"], ESTIMATORS.index(r["estimator"])))
    if ns.json_out:
        Path(ns.json_out).write_text(json.dumps(raw, indent=1))

    body = section(raw)
    print("\n" + body)
    if ns.write:
        sys.path.insert(0, str(HERE))
        from direct import _write_section

        _write_section(HERE / "results.md", "Off-policy", body)


def section(raw: dict) -> str:
    sizes = sorted({r["n"] for r in raw["scaling"]})
    lines = [
        "## Off-policy: `cje.analyze(logged, fresh_draws=…, estimator=…)` with full OUA "
        "(3 targets, 10% labels)",
        "",
        f"Machine: {os.cpu_count()} cores (shared with other work), Python "
        f"{platform.python_version()}, cje {_cje_version()}. Data: "
        "`cje.synthetic.make_offpolicy_eval(n, oracle_fraction=0.1, n_fresh_per_prompt=1)` with "
        "the default targets (mild / moderate / far, population raw-weight ESS 90 / 60 / 10 %): "
        "n logged rows plus n fresh draws of `base` and of each target (4n fresh rows; every "
        "estimator gets them; the IPS family reads them, unlabelled here, only for its "
        "diagnostics: the targets' raw judge means and judge-score affinity). One subprocess per "
        "(n, estimator): "
        f"warm-up analysis at n = {WARMUP_N:,}, data built, then the `cje.analyze` call timed "
        "(median and best of the runs, CPU = process CPU time of all threads). Peak memory: rise "
        "of the peak RSS over the RSS just before the call, with the high-water mark reset "
        "before the call. Error = largest |estimate − exact truth| over the 3 targets. Targets: "
        "≤ 30 s and ≤ 3 GB at 10⁶ logged rows for every estimator. A load average above the "
        "core count means other work competed for the CPUs (wall times inflated; CPU s is the "
        "steadier column). Own bare reference: the IPS family's floor (bare SNIPS from the "
        "logged frame + fresh draws from their frame + minimal overlap diagnostics; calibrated "
        "IPS: bare calibrated IPS from the frames + those diagnostics), the DR "
        "family's bare DR-CPO (`benchmarks/bare_dr.py`, coded arrays / frames; MRDR, TMLE and "
        "stacked DR against DR-CPO too; the direct estimator: bare direct from the frames + the "
        "diagnostics). Raw "
        "measurements: `benchmarks/results_offpolicy.json`.",
        "",
    ]
    for run in raw["runs"]:
        lines.append(f"- `{run['command']}`, {run['date']}. `uptime` before: "
                     f"`{run['uptime_before']}`; after: `{run.get('uptime_after', '?')}`.")
    lines += ["", *SCALING_HEADER]
    lines += [_scaling_line(r) for r in raw["scaling"]]
    ok = [r for r in raw["scaling"] if r["n"] >= 1_000_000 and "error" not in r]
    if ok:
        slow = max(ok, key=lambda r: statistics.median(r["times"]))
        big = max(ok, key=lambda r: max(r["peak_mb"]))
        lines += [
            "",
            f"At {max(sizes):,} logged rows the slowest estimator is {slow['estimator']} "
            f"({statistics.median(slow['times']):.1f} s) and the largest peak is "
            f"{big['estimator']}'s ({max(big['peak_mb']):,.0f} MB); "
            f"{sum(_meets(r) for r in ok)} of {len(ok)} estimators meet both targets.",
        ]
    if raw.get("arena"):
        lines += ["", *arena_lines(raw["arena"])]
    return "\n".join(lines)


def _meets(r: dict) -> bool:
    return statistics.median(r["times"]) <= TARGET_SECONDS and max(r["peak_mb"]) <= TARGET_MB


if __name__ == "__main__":
    main()
