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
import independent_clusters as clu  # noqa: E402
import independent_contrasts as con  # noqa: E402
import independent_cov as cov  # noqa: E402
import independent_dgps as dgps  # noqa: E402
import independent_dr as dr  # noqa: E402
import independent_fewrows as few  # noqa: E402
import independent_judge as jdg  # noqa: E402
import independent_lprob as lp  # noqa: E402
import independent_monitor as mon  # noqa: E402
import independent_plan as pln  # noqa: E402
import independent_probes as prb  # noqa: E402
import independent_ranking as rnk  # noqa: E402
import independent_small as sml  # noqa: E402
import independent_tails as tl  # noqa: E402

N = 400_000
ROWS: list[tuple[str, str, float, float, float]] = []


def add(script: str, what: str, truth: float, y: np.ndarray) -> None:
    """Record a truth against draws ``y`` (2-D: one row per prompt, SE from the prompt means)."""
    y = np.asarray(y, dtype=float)
    c = y.mean(axis=1) if y.ndim == 2 else y
    ROWS.append((script, what, float(truth), float(c.mean()), float(c.std() / math.sqrt(c.size))))


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
        add("independent_dgps", f"direct {pol}", dgps.DIRECT_TRUTH[pol],
            y.reshape(N // 2, dgps.DIRECT_POLICIES[pol][2]))
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
    # independent_clusters: direct A/B (every row labelled) and the off-policy target T by IPS
    for resid in clu.RESID:
        for labels in ("likert", "binary"):
            dc = clu.make_data(rng, N // 2, 1, "row", labels, resid, frac=1.0)
            for pol in clu.MU:
                y = dc.loc[dc.policy == pol, "oracle_label"].to_numpy()
                add("independent_clusters", f"{labels} {resid} {pol}", clu.truth(pol, labels, resid), y)
        lg, _ = clu.make_logged(rng, N, 1, "row", resid, frac=1.0)
        y = lg["oracle_label"].to_numpy()
        add("independent_clusters", f"likert {resid} base (logged)", clu.truth("base", "likert", resid), y)
        add("independent_clusters", f"likert {resid} T (IPS, exact weights)",
            clu.truth("T", "likert", resid),
            np.exp(lg["logprob[T]"] - lg["logprob_base"]).to_numpy() * y)
    # independent_cov: length-dependent labels ("right") or not ("verb"), heavy-tailed lengths
    for process in cov.GAMMA:
        tr = cov.truth(process)
        for pol in cov.POLICIES:
            _, y, _ = cov._rows(rng, pol, cov.SD_A * rng.standard_normal(N), process)
            add("independent_cov", f"{process} {pol}", tr[pol], y)
    # independent_plan: Likert with heteroscedastic rounding, skewed binary
    for cname in ("likert/R4/p5/strong-beta", "binary-skewed/R1/p5"):
        cell = {**pln.CELLS[cname], "G": N // 4}
        dp, y = pln.draw(cell, 1.0, rng)
        for pol in cell["pols"]:
            add("independent_plan", f"{cname} {pol}",
                pln.truth(cell["kind"], pol, cell.get("offset", 0.0)),
                y[dp.policy.to_numpy() == pol].reshape(-1, cell["R"]))
    # independent_ranking: direct binary / continuous labels and the off-policy ladder
    for label in ("binary", "cont"):
        cell = rnk.Cell("check", (0.5, 0.0, -0.4), N // 2, label=label, label_share=1.0)
        dr_ = rnk._data(cell, rng)
        for k, (pol, t) in enumerate(cell.truth().items()):
            add("independent_ranking", f"{label} {pol}", t,
                dr_.loc[dr_.policy == f"p{k:02d}", "oracle_label"].to_numpy())
    cell = next(c for c in rnk.CELLS if c.name == "off8_ladder")
    dd, uu = 0.8 * rng.standard_normal(N), 0.4 * rng.standard_normal(N)
    tr = cell.truth()
    for name in ("base", "t0", "t7"):
        p = rnk.OFF_P0 if name == "base" else rnk._off_target(cell, int(name[1:]))
        _, _, y = rnk._off_responses(rng, p, np.arange(N), dd, uu)
        add("independent_ranking", f"off8_ladder {name}", tr[name], y)
    # independent_monitor: one window, every row labelled
    mcell = mon.Cell(n_windows=1, reference=1, prompts=N // 2, labels=3 * (N // 2),
                     policies=("A", "B", "C"))
    dm, tru = mon.simulate(mcell, rng)
    for pol in mcell.policies:
        add("independent_monitor", f"window 0 {pol}", tru[(0, pol)],
            dm.loc[dm.policy == pol, "oracle_label"].to_numpy())
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
