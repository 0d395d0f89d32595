"""Monte Carlo check of the hand-written truths of other helpers' independent studies.

Companion of ``simulations/independent_truth.py`` (which checks ``cje.synthetic``). Several
``simulations/independent_*.py`` scripts build their own data-generating process and compute its
truth by quadrature; here each truth is compared with the mean oracle label of 400,000 draws from
that script's own response function (MC SE stated; |z| > 3 flagged). Read-only use of the other
scripts: nothing in them is changed.

Run: ``PYTHONPATH=. python simulations/independent_truth_others.py`` (a few seconds); writes the
table below the reading of ``simulations/results/independent_truth_others.md``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import independent_active as act  # noqa: E402
import independent_contrasts as con  # noqa: E402
import independent_dgps as dgps  # noqa: E402
import independent_dr as dr  # noqa: E402
import independent_fewrows as few  # noqa: E402
import independent_judge as jdg  # noqa: E402
import independent_lprob as lp  # noqa: E402
import independent_probes as prb  # noqa: E402
import independent_small as sml  # noqa: E402
import independent_tails as tl  # noqa: E402

N = 400_000
ROWS: list[tuple[str, str, float, float, float]] = []


def add(script: str, what: str, truth: float, y: np.ndarray) -> None:
    ROWS.append((script, what, float(truth), float(y.mean()), float(y.std() / math.sqrt(y.size))))


def main() -> int:
    rng = np.random.default_rng(20261207)
    pids = np.array([f"x{i}" for i in range(N)])
    d = rng.standard_normal(N)
    # independent_dgps: off-policy types and the direct process
    for name, p in {"base": dgps.P0, **{k: dgps._target(t) for k, t in dgps.TAUS.items()}}.items():
        _, _, y = dgps._responses(rng, p, pids, name, 0.0)
        add("independent_dgps (+contrasts)", f"off-policy {name}", con.OFF_TRUTH[name], y)
    for pol in dgps.DIRECT_POLICIES:
        _, y = dgps._direct_rows(rng, pol, np.array([f"q{i}" for i in range(N // 2)]))
        add("independent_dgps", f"direct {pol}", dgps.DIRECT_TRUTH[pol], y)
    # independent_probes: direct and off-policy
    for pol in prb.POLICIES:
        _, y = prb._respond(rng, pol, d)
        add("independent_probes", f"direct {pol}", prb.TRUTH[pol], y)
    for name, p in {"base": prb.P_LOG, **{t: prb._tgt(tau) for t, tau in prb.TARGETS.items()}}.items():
        _, _, y = prb._draw(rng, p, N)
        add("independent_probes", f"off-policy {name}", prb.OFF_TRUTH[name], y)
    # independent_contrasts: ordinal direct process
    for pol in con.POLICIES:
        _, y = con._rows(rng, pol, pids, d)
        add("independent_contrasts", f"direct {pol}", con.TRUTH[pol], y)
    # independent_dr: binary labels over response types
    for name, p in dr.POLICIES.items():
        _, y, _ = dr._respond(rng, p, d, 0.0)
        add("independent_dr", name, dr.TRUTH[name], y)
    # independent_lprob: binary and ordinal labels with a hidden flaw
    for labels in ("binary", "ordinal"):
        for pol, (mu, bias) in lp.POLICIES.items():
            u = lp.SD_U * rng.standard_normal(N)
            _, _, _, y = lp._rows(rng, pids, u, mu, bias, labels)
            add("independent_lprob", f"{labels} {pol}", lp.truth(mu, labels), y)
    # independent_tails: Gaussian-tilt policies
    for name, (delta, s) in tl.POLICIES.items():
        _, _, y = tl._responses(rng, d, delta, s, 0.0)
        add("independent_tails", name, tl.TRUTH[name], y)
    # independent_judge: discrete latent quality, binary and Likert labels
    for labels in ("bin_mid", "bin_low", "bin_high", "lik_mid", "lik_top"):
        tr = jdg.truth(labels)
        for pol in jdg.POLICIES:
            d_idx = rng.choice(jdg.D.size, size=N, p=jdg.P_D)
            q = jdg._draw_cat(jdg.q_pmf(pol)[d_idx], rng.random(N))
            add("independent_judge", f"{labels} {pol}", tr[pol], jdg.draw_labels(labels, q, rng))
    # independent_active: Beta qualities with local shifts (one response per prompt)
    _, y = act.draw(rng, N // 4, 1)
    for i, pol in enumerate(act.POLICIES):
        add("independent_active", pol, act.truth(pol), y[i * (N // 4):(i + 1) * (N // 4)])
    # independent_small: every row labelled (design "all", m = 3 n)
    for labels in ("likert", "binary"):
        d_small = sml.make_data(7, N // 4, 3 * (N // 4), labels, "grid10", "all")
        for pol in ("A", "B", "T"):
            y = d_small.loc[d_small.policy == pol, "oracle_label"].to_numpy()
            add("independent_small", f"{labels} {pol}", sml.truth(pol, labels), y)
    # independent_fewrows: direct C (S ~ Bin(10, 0.7)) and logged 'far' by IPS (Hajek) with
    # its own exact weights, on a big logged set
    for labels in few.LABELS:
        s_c = rng.binomial(10, 0.7, N)
        add("independent_fewrows", f"direct C {labels}", few.truth("direct", labels),
            few.draw_label(labels, s_c, rng))
        few_n = few.N_LOGGED
        few.N_LOGGED = N
        try:
            lg = few.logged_data(labels, N, rng)
        finally:
            few.N_LOGGED = few_n
        w = np.exp(lg["logprob[far]"] - lg["logprob_base"]).to_numpy()
        yl = lg["oracle_label"].to_numpy()
        ok = ~np.isnan(yl)
        w, yl = w[ok], yl[ok]
        hajek = float(np.sum(w * yl) / np.sum(w))
        lin = w * (yl - hajek) / w.mean()  # delta-method influence values
        ROWS.append(("independent_fewrows", f"logged far {labels} (Hajek IPS)",
                     few.truth("logged", labels), hajek, float(lin.std() / math.sqrt(w.size))))
    lines = ["| script | policy | truth | MC mean | MC SE | z | |", "|---|---|---:|---:|---:|---:|---|"]
    bad = 0
    for script, what, t, m, se in ROWS:
        z = (m - t) / se
        bad += abs(z) > 3
        lines.append(f"| {script} | {what} | {t:.5f} | {m:.5f} | {se:.5f} | {z:+.2f} | "
                     f"{'MISMATCH' if abs(z) > 3 else ''} |")
    lines.append(f"\n{len(ROWS)} truths; n = {N} draws each unless stated in the script; "
                 f"|z| > 3: {bad}.")
    text = "\n".join(lines)
    print(text)
    out = Path(__file__).with_name("results") / "independent_truth_others.md"
    head = out.read_text().split("# Tables")[0] if out.exists() else "(reading to be written)\n\n"
    out.write_text(head + "# Tables\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
