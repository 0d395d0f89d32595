"""Off-policy probe slices get the score-balance check direct data have (``score_balance``): a
probe that corrects a target's level is compared with the target's fresh draws (the logging
policy's with its logged rows). Before, a probe of the top-scored responses was never cautioned
off-policy (``simulations/results/independent_probes.md``: OK intervals covering 0.931 ± 0.008
for the ESS-50% target, against 0.967 for random probes), while the same probe of direct data was.

Data: the off-policy process of ``simulations/independent_probes.py`` (1,000 logged rows, 10%
labels, fresh draws of every policy, a 50-row probe of each target: a random one, or the 50
highest-scored of 200)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import cje

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "simulations"))
import independent_probes as ip  # noqa: E402


def _report(seed: int, kind: str, base_probe: bool = False) -> cje.Report:
    rng = np.random.default_rng(seed)
    n, n_p = 1000, 50
    pid = np.array([f"x{i}" for i in range(n)])
    k, s, y = ip._draw(rng, ip.P_LOG, n)
    logged = pd.DataFrame({"prompt_id": pid, "judge_score": s,
                           "oracle_label": np.where(rng.random(n) < 0.10, y, np.nan),
                           "logprob_base": np.log(ip.P_LOG[k])})
    for t, tau in ip.TARGETS.items():
        logged[f"logprob[{t}]"] = np.log(ip._tgt(tau)[k])
    fresh = pd.concat([pd.DataFrame({"prompt_id": pid, "policy": name,
                                     "judge_score": ip._draw(rng, p, n)[1]})
                       for name, p in [("base", ip.P_LOG)]
                       + [(t, ip._tgt(tau)) for t, tau in ip.TARGETS.items()]], ignore_index=True)
    probes = {}
    for name, p in ([("default", ip.P_LOG)] if base_probe else []) + \
            [(t, ip._tgt(tau)) for t, tau in ip.TARGETS.items()]:
        m = 4 * n_p if kind == "top" else n_p
        _, s3, y3 = ip._draw(rng, p, m)
        pr = pd.DataFrame({"prompt_id": [f"{name}_r{i}" for i in range(m)], "judge_score": s3,
                           "oracle_label": y3})
        probes[name] = pr.iloc[np.argsort(-s3, kind="stable")[:n_p]] if kind == "top" else pr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cje.analyze(logged, fresh_draws=fresh, probes=probes, judge_scale=(1, 10),
                           label_scale=(0, 1), seed=seed)


def _flagged(e: cje.Estimate) -> bool:
    return any("probe slice's judge scores differ" in r for r in e.reasons)


def test_a_top_scored_probe_is_cautioned_off_policy() -> None:
    for seed in range(3):
        rep = _report(seed, "top", base_probe=True)
        for e in rep.estimates:  # the logging policy (against its logged rows) and both targets
            assert _flagged(e) and e.status != "OK", (seed, e.policy, e.status)
            assert e.diagnostics["probe_score_z"] > 3.29


def test_a_random_probe_is_not() -> None:
    """|z| > 3.29 has chance 0.001 per level under a random probe; 3 seeds x 3 levels."""
    for seed in range(3):
        rep = _report(seed, "random", base_probe=True)
        for e in rep.estimates:
            assert not _flagged(e) and abs(e.diagnostics["probe_score_z"]) < 3.29, (seed, e.policy)
