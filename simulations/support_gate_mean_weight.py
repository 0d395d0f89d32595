"""Support gate evidence: the sampling distribution of the mean raw importance ratio.

m = mean_i exp(log π_target − log π_logging) has expectation 1 under correct log-probabilities,
but under heavy weight tails its sample value is usually well below 1. This script samples it
under CORRECT log-probabilities on ``cje.synthetic.make_offpolicy_eval`` across population
overlap (raw-weight ESS 90% … 0.1%) and sample sizes, to set the lower thresholds of the support
gate (``cje.diagnostics.gates.support_gate``; the table is quoted in docs/offpolicy.md). It also
shows why a z-test on (m − 1)/SE is not used: it fires on correct data whenever overlap is poor.

Run: ``python simulations/support_gate_mean_weight.py`` (a few minutes on 2 cores); prints a
Markdown table. The upper thresholds need no simulation: P(m ≥ c) ≤ 1/c (Markov).
"""
import time

import numpy as np
from scipy.special import logsumexp

from cje.synthetic import make_offpolicy_eval, theta_for_ess

ESS = [0.9, 0.6, 0.1, 0.01, 0.001]  # population raw-weight ESS of the target
NS = [100, 250, 1000, 5000]
REPS = 400


def main() -> None:
    t0 = time.time()
    print("| pop. ESS | n | median m | 1% | min | share m<0.5 | share m<0.1 | share m<0.05 | max m "
          "| share z<-3 | median near-zero share (w<1e-3) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for e in ESS:
        theta = theta_for_ess(e)
        for n in NS:
            ms, zs, nz = [], [], []
            for r in range(REPS):
                sim = make_offpolicy_eval(n, targets={"t": theta}, n_fresh_per_prompt=0,
                                          rng=1000 * r + n)
                lam = (sim.logged["logprob[t]"] - sim.logged["logprob_base"]).to_numpy()
                m = float(np.exp(logsumexp(lam) - np.log(n)))  # mean raw weight, in log space
                w = np.exp(lam - lam.max())
                w *= n / w.sum()
                se = m * w.std(ddof=1) / np.sqrt(n)
                ms.append(m)
                zs.append((m - 1) / se if se > 0 else 0.0)
                nz.append(np.mean(lam < np.log(1e-3)))
            ms_a, zs_a = np.array(ms), np.array(zs)
            print(f"| {e:g} | {n} | {np.median(ms_a):.3f} | {np.quantile(ms_a, 0.01):.3f} | "
                  f"{ms_a.min():.3f} | {np.mean(ms_a < 0.5):.3f} | {np.mean(ms_a < 0.1):.3f} | "
                  f"{np.mean(ms_a < 0.05):.3f} | {ms_a.max():.2f} | {np.mean(zs_a < -3):.3f} | "
                  f"{np.median(nz):.3f} |", flush=True)
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
