"""Check, outside the replicates it was read from, the gate read off
``simulations/results/independent_tails.md`` and adopted by the package
(:data:`cje.diagnostics.gates.MEAN_WEIGHT_DEFICIT_Z`): the weighting estimators are CAUTION when
the mean raw weight ``m`` lies more than 1.5 standard errors below 1. 'Without the gate' counts as
OK the estimates whose only reason not to be OK is that gate's.

Calibrated IPS (no fresh draws) on four processes, each printed as the share of estimates OK and
the coverage of the OK intervals (± MC SE, count), now and with the gate:

* ``independent_tails.py`` (consistent judge, n = 1,000) on seeds 20000–20399, unused there;
* the bounded-weight off-policy process of ``independent_dgps.py`` (judge bias −0.9 and 0,
  300 seeds each);
* ``cje.synthetic.make_offpolicy_eval`` (log-normal weights, its default miscalibrated judge;
  targets at population ESS 50%, 35%, 25%, 10%, 5%; n = 1,000, 600 seeds; n = 500, 300 seeds);
* ``cje.synthetic.tails.make_tail_eval`` (bounded and unbounded, n = 1,000, 300 seeds each).

Writes ``simulations/results/independent_tails_gate_check.md``.

Usage::

    python simulations/independent_tails_gate_check.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje
from cje.diagnostics.gates import MEAN_WEIGHT_DEFICIT_Z
from cje.synthetic.offpolicy import theta_for_ess
from cje.synthetic.tails import make_tail_eval

sys.path.insert(0, str(Path(__file__).resolve().parent))
import independent_dgps as idg  # noqa: E402
import independent_tails as it  # noqa: E402

Z = MEAN_WEIGHT_DEFICIT_Z
#: The start of the gate's reason (cje.diagnostics.gates.support_gate).
DEFICIT = "the weights may have missed the target's rarer responses"
OUT = Path(__file__).resolve().parent / "results" / "independent_tails_gate_check.md"



def _rows(rep, truth: dict, process: str) -> list[dict]:
    out = []
    for e in rep.estimates:
        if e.policy in truth and e.policy != "base":
            g = e.diagnostics
            out.append({"process": process, "policy": e.policy, "status": e.status,
                        "covered": bool(e.ci_low <= truth[e.policy] <= e.ci_high),
                        "m": g.get("mean_raw_weight", np.nan), "m_se": g.get("mean_raw_weight_se", np.nan),
                        "reasons": " | ".join(e.reasons)})
    return out


def _bounded_logged(seed: int, bias: float, n: int = 1000) -> pd.DataFrame:
    return idg.offpolicy_data(seed, bias, n)[0]


def run() -> pd.DataFrame:
    """All four checks' estimates (one row per replicate and target).

    Returns
    -------
    DataFrame
        ``process, policy, status, covered, m, m_se, reasons`` (joined by ``" | "``).
    """
    rows: list[dict] = []
    kw = {"estimator": "calibrated-ips"}
    for seed in range(20000, 20400):
        rows += [dict(r, process="independent_tails consistent n=1000 (fresh seeds)",
                      m=r["mean_raw_weight"], m_se=r["mean_raw_weight_se"])
                 for r in it.replicate(seed, "consistent", 1000, "calibrated-ips", fresh=False)
                 if r["policy"] != "base"]
    for bias in (-0.9, 0.0):
        for seed in range(300):
            rep = cje.analyze(_bounded_logged(seed, bias), judge_scale=(1, 10), label_scale=(0, 1), **kw)
            rows += _rows(rep, idg.OFF_TRUTH, f"independent_dgps bounded, bias {bias:+.1f}")
    targets = {f"e{round(100 * e)}": theta_for_ess(e) for e in (0.50, 0.35, 0.25, 0.10, 0.05)}
    for n, reps in ((1000, 600), (500, 300)):
        for seed in range(reps):
            sim = cje.synthetic.make_offpolicy_eval(n, targets=targets, n_fresh_per_prompt=0,
                                                     rng=30_000 + seed)
            rep = cje.analyze(sim.logged, judge_scale=sim.judge_scale, label_scale=sim.label_scale, **kw)
            rows += _rows(rep, sim.truth, f"make_offpolicy_eval n={n}")
    for tail in ("bounded", "unbounded"):
        for seed in range(300):
            sim = make_tail_eval(1000, tail=tail, n_fresh_per_prompt=0, rng=20_000 + seed)
            rep = cje.analyze(sim.logged, judge_scale=sim.judge_scale, label_scale=sim.label_scale, **kw)
            rows += _rows(rep, sim.truth, f"make_tail_eval {tail} n=1000")
    return pd.DataFrame([{k: r[k] for k in ("process", "policy", "status", "covered", "m", "m_se",
                                            "reasons")} for r in rows])


def main() -> None:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = run()
    out = ["# Weighting gate on the mean raw weight — checked outside its replicates", "",
           "Command: `python simulations/independent_tails_gate_check.py`.",
           "Design: see the module docstring of `simulations/independent_tails_gate_check.py`. "
           f"Calibrated IPS without fresh draws; the gate (the package's, "
           f"`cje.diagnostics.gates.MEAN_WEIGHT_DEFICIT_Z`): CAUTION when "
           f"`mean_raw_weight < 1 − {Z:g} · mean_raw_weight_se`. 'Without': the estimates whose only "
           "reason not to be OK is the gate's counted as OK. Coverage of the OK intervals ± MC SE "
           "(count).", "",
           "| process | target | without the gate: OK share, coverage of OK | with the gate: OK share, "
           "coverage of OK |",
           "|---|---|---|---|"]
    for (proc, pol), g in df.groupby(["process", "policy"], sort=False):
        keep = g["status"] == "OK"
        only_gate = (g["status"] == "CAUTION") & g["reasons"].map(
            lambda t: all(r.startswith(DEFICIT) for r in t.split(" | ")))
        ok = keep | only_gate
        if not ok.any():
            continue
        # the package's gate is the post-hoc rule on m and its SE
        assert (only_gate == (ok & ((g["m"] - 1.0) / g["m_se"] < -Z))).all()
        out.append(f"| {proc} | {pol} | {ok.mean():.2f}, {it._cov(g.loc[ok, 'covered'])} | "
                   f"{keep.mean():.2f}, {it._cov(g.loc[keep, 'covered'])} |")
    out += ["", "Targets never OK are left out. On `make_offpolicy_eval` (the package's own generator, "
            "log-normal weights) the OK intervals at 25% population ESS under-cover too: a sample "
            "that missed part of the tail crosses the 30% sample-ESS gate. The gate helps there but "
            "does not fully close the gap.", "",
            f"Runtime: {time.perf_counter() - t0:.0f} s on one core.", ""]
    OUT.write_text("\n".join(out) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
