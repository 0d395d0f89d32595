"""Independent check of the two-stage (covariate) calibration, the auto rule and the transport audit.

Every data-generating process here is written from scratch with numpy (``cje.synthetic`` is not
used). Direct mode, one response per prompt and policy, prompts shared by the policies.

Latent quality of policy ``p``'s response to prompt ``i``: ``q = a_i + mu_p + e``, with
``a_i ~ N(0, 0.6²)`` (prompt difficulty, shared by the policies) and ``e ~ N(0, 0.8²)``.
Log response length ``l`` (words) is drawn per policy, independently of quality:

* ``base``    — ``l ~ N(5.3, 0.35²)``: the labelled policy;
* ``verbose`` — ``l ~ N(6.5, 0.30²)``: most of its lengths lie beyond base's largest;
* ``longish`` — ``l ~ N(5.75, 0.30²)``: longer than base, mostly inside its range;
* ``concise`` — ``l ~ N(4.6, 0.30²)``: partly below base's smallest;
* ``heavy``   — ``l = 5.3 + 0.35·t₂``: base's centre, Student-t tails with 2 degrees of freedom.

Judge (1–10 integer grid, ties): ``S = clip(round(5 + 1.3·q + β·(l − 5.3) + N(0, 0.8²)), 1, 10)``
with ``β = 0.8``: the judge rewards length. Label (1–5 integer scale, ordinal):
``Y = 1 + Σ_k 1[q + γ·(l − 5.3) + N(0, 0.7²) > c_k]``, ``c = (−1.2, −0.3, 0.5, 1.3)``.

* process ``verb``  — ``γ = 0``: the label ignores length, the judge's length reward is a bias;
* process ``right`` — ``γ = β / 1.3``: length truly matters exactly as much as the judge says
  (the judge is right to reward it; a score-only calibration is correct up to the policies'
  different quality distributions).

Truth: ``E[Y] = 1 + Σ_k E_l Φ((mu_p + γ(l − 5.3) − c_k) / sqrt(0.36 + 0.64 + 0.49))``, the inner
expectation in closed form and the outer one over ``l`` by a 10^6-point quantile grid (midpoint
rule in ``u``; exact quantile functions of the normal and of t₂), i.e. deterministic quadrature.

Designs: ``one`` — 10% of base's rows labelled, no other policy labelled; ``all`` — 10% of every
policy's rows labelled. ``probe`` — a 50-row labelled probe slice of each unlabelled policy on
prompts of its own (``transport_margin=0.2``, 5% of the label scale); ``audit`` — the same probes
with ``probe_correction=False`` (audit-only). Each data set is analysed with ``mode`` = auto,
monotone and two_stage (``covariates=["response_length"]`` for auto and two_stage).

Usage::

    PYTHONPATH=. python simulations/independent_cov.py [--reps 500] [--cells A,B] [--n-jobs 1]

Writes ``simulations/results/independent_cov.parquet`` (per policy, mode and replicate;
git-ignored) and the tables of
``simulations/results/independent_cov.md`` (the reading above its ``# Tables`` line is kept).
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import stats

import cje

OUT = Path(__file__).resolve().parent / "results"

N_PROMPTS = 1000
N_PROBE = 50
MARGIN = 0.2
BETA = 0.8
L0 = 5.3
CUTS = np.array([-1.2, -0.3, 0.5, 1.3])
SD_A, SD_E, SD_Y, SD_S = 0.6, 0.8, 0.7, 0.8
#: policy -> (quality shift, length kind, centre, scale)
POLICIES = {
    "base": (0.0, "normal", 5.3, 0.35),
    "verbose": (-0.1, "normal", 6.5, 0.30),
    "longish": (0.0, "normal", 5.75, 0.30),
    "concise": (0.15, "normal", 4.6, 0.30),
    "heavy": (0.05, "t2", 5.3, 0.35),
}
GAMMA = {"verb": 0.0, "right": BETA / 1.3}
MODES = ("auto", "monotone", "two_stage")

_phi = stats.norm.cdf
_norm_ppf = stats.norm.ppf


def _t2_ppf(u: np.ndarray) -> np.ndarray:
    """Exact quantile of Student's t with 2 degrees of freedom."""
    return (2.0 * u - 1.0) / np.sqrt(2.0 * u * (1.0 - u))


def _log_length_grid(policy: str, n: int = 1_000_000) -> np.ndarray:
    u = (np.arange(n) + 0.5) / n
    _, kind, c, s = POLICIES[policy]
    return c + s * (_norm_ppf(u) if kind == "normal" else _t2_ppf(u))


def truth(process: str) -> dict[str, float]:
    """Exact population mean label of every policy (label scale 1–5).

    Parameters
    ----------
    process : {"verb", "right"}
        The data-generating process.

    Returns
    -------
    dict
        Policy -> E[Y].
    """
    g = GAMMA[process]
    sd = math.sqrt(SD_A**2 + SD_E**2 + SD_Y**2)
    out = {}
    for p, (mu, *_rest) in POLICIES.items():
        if g == 0.0:
            out[p] = 1.0 + float(_phi((mu - CUTS) / sd).sum())
            continue
        lg = _log_length_grid(p)
        out[p] = 1.0 + float(sum(_phi((mu + g * (lg - L0) - c) / sd).mean() for c in CUTS))
    return out


def _log_lengths(rng: np.random.Generator, policy: str, n: int) -> np.ndarray:
    _, kind, c, s = POLICIES[policy]
    z = rng.standard_normal(n) if kind == "normal" else rng.standard_t(2, n)
    return c + s * z


def _words(lg: np.ndarray) -> np.ndarray:
    """The reported length: the log length's word count, at least 1 and at most 10^5 words (the
    judge and the label read the unrounded log length, so the truth stays exact)."""
    return np.round(np.exp(np.clip(lg, 0.0, math.log(1e5)))).astype(np.int64)


def _rows(rng: np.random.Generator, policy: str, a: np.ndarray, process: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Judge scores, labels and lengths of one policy's responses to prompts of difficulty a."""
    n = a.size
    mu = POLICIES[policy][0]
    q = a + mu + SD_E * rng.standard_normal(n)
    lg = _log_lengths(rng, policy, n)
    length = _words(lg)
    s = np.clip(np.round(5.0 + 1.3 * q + BETA * (lg - L0) + SD_S * rng.standard_normal(n)), 1, 10)
    lat = q + GAMMA[process] * (lg - L0) + SD_Y * rng.standard_normal(n)
    y = 1.0 + (lat[:, None] > CUTS[None, :]).sum(axis=1)
    return s, y, length


def make_data(seed: int, process: str, design: str, probes: bool, n: int = N_PROMPTS,
              n_probe: int = N_PROBE) -> tuple[pd.DataFrame, dict[str, pd.DataFrame] | None]:
    """One data set (long format) and its probe slices.

    Parameters
    ----------
    seed : int
        Replicate seed.
    process : {"verb", "right"}
        The data-generating process.
    design : {"one", "all"}
        Labels on base only, or on every policy (10% of rows).
    probes : bool
        Add a labelled probe slice of every policy without labels.
    n, n_probe : int
        Prompts of the data, and of each probe slice.

    Returns
    -------
    (pandas.DataFrame, dict or None)
    """
    rng = np.random.default_rng(seed)
    a = SD_A * rng.standard_normal(n)
    pids = np.array([f"q{i}" for i in range(n)])
    parts = []
    probe = {}
    for p in POLICIES:
        s, y, length = _rows(rng, p, a, process)
        lab = rng.random(n) < 0.10 if (design == "all" or p == "base") else np.zeros(n, bool)
        parts.append(pd.DataFrame({"prompt_id": pids, "policy": p, "judge_score": s,
                                   "oracle_label": np.where(lab, y, np.nan),
                                   "response_length": length}))
        if probes and not lab.any():
            ap = SD_A * rng.standard_normal(n_probe)
            sp, yp, lp = _rows(rng, p, ap, process)
            probe[p] = pd.DataFrame({"prompt_id": [f"{p}_r{i}" for i in range(n_probe)],
                                     "judge_score": sp, "oracle_label": yp,
                                     "response_length": lp})
    return pd.concat(parts, ignore_index=True), (probe or None)


#: name -> (process, design, probes, probe_correction, prompts, probe rows, margin)
CELLS = {
    "verb_one": ("verb", "one", False, True, N_PROMPTS, 0, None),
    "verb_one_probe": ("verb", "one", True, True, N_PROMPTS, N_PROBE, MARGIN),
    "verb_one_audit": ("verb", "one", True, False, N_PROMPTS, 200, 0.3),
    "verb_one_audit50": ("verb", "one", True, False, N_PROMPTS, N_PROBE, MARGIN),
    "verb_one_audit_4000": ("verb", "one", True, False, 4000, 200, 0.3),
    "verb_one_probe_4000": ("verb", "one", True, True, 4000, 200, 0.3),
    "verb_all": ("verb", "all", False, True, N_PROMPTS, 0, None),
    "verb_all_300": ("verb", "all", False, True, 300, 0, None),
    "verb_all_4000": ("verb", "all", False, True, 4000, 0, None),
    "right_one": ("right", "one", False, True, N_PROMPTS, 0, None),
    "right_one_probe": ("right", "one", True, True, N_PROMPTS, N_PROBE, MARGIN),
    "right_all": ("right", "all", False, True, N_PROMPTS, 0, None),
}


def replicate(cell: str, seed: int, truths: dict[str, dict[str, float]]) -> list[dict]:
    """Analyse one data set of ``cell`` in every mode; one row per policy and mode.

    Parameters
    ----------
    cell : str
        A key of ``CELLS``.
    seed : int
        Replicate seed.
    truths : dict
        Process -> policy -> truth.

    Returns
    -------
    list of dict
    """
    process, design, with_probes, correct, n, n_probe, margin = CELLS[cell]
    data, probes = make_data(seed, process, design, with_probes, n, n_probe)
    lab = data[data["oracle_label"].notna()]["response_length"]
    lo, hi = lab.min(), lab.max()
    beyond = {p: float(((g < lo) | (g > hi)).mean())
              for p, g in data.groupby("policy")["response_length"]}
    out = []
    for mode in MODES:
        cov = [] if mode == "monotone" else ["response_length"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rep = cje.analyze(data, probes=probes, judge_scale=(1, 10), label_scale=(1, 5),
                              mode=mode, covariates=cov, seed=seed,
                              transport_margin=margin,
                              probe_correction=correct)
        audits = {a.policy: a for a in rep.audits}
        for e in rep.estimates:
            t = truths[process][e.policy]
            out.append({
                "cell": cell, "seed": seed, "mode": mode, "chosen": rep.calibration.mode,
                "policy": e.policy, "truth": t, "estimate": e.estimate, "se": e.se,
                "ci_low": e.ci_low, "ci_high": e.ci_high, "status": e.status,
                "covered": bool(e.ci_low <= t <= e.ci_high),
                "audit": audits[e.policy].verdict if e.policy in audits else "",
                "audit_delta": audits[e.policy].delta if e.policy in audits else float("nan"),
                "audit_se": audits[e.policy].se if e.policy in audits else float("nan"),
                "df": e.df,
                "oor": e.diagnostics.get("out_of_range_share", float("nan")),
                "len_beyond": beyond[e.policy],
                "reason": (e.reasons[0][:60] if e.reasons else ""),
            })
    return out


def text_equivalence(seeds: range) -> list[dict]:
    """``response_length`` given as a column vs derived from a ``response`` text column.

    Parameters
    ----------
    seeds : range
        Replicate seeds.

    Returns
    -------
    list of dict
        Per seed and mode: the largest absolute difference of estimates and of CI bounds.
    """
    rows = []
    for seed in seeds:
        data, probes = make_data(seed, "verb", "one", True)
        text = data.drop(columns="response_length").assign(
            response=[" ".join(["w"] * int(k)) for k in data["response_length"]])
        ptext = {p: d.drop(columns="response_length").assign(
            response=["\tw\n" * int(k) for k in d["response_length"]]) for p, d in probes.items()}
        for mode in ("auto", "two_stage"):
            kw = dict(judge_scale=(1, 10), label_scale=(1, 5), mode=mode,
                      covariates=["response_length"], seed=seed, transport_margin=MARGIN)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                r1 = cje.analyze(data, probes=probes, **kw)
                r2 = cje.analyze(text, probes=ptext, **kw)
            d_est = max(abs(a.estimate - b.estimate) for a, b in zip(r1.estimates, r2.estimates, strict=True))
            d_ci = max(max(abs(a.ci_low - b.ci_low), abs(a.ci_high - b.ci_high))
                       for a, b in zip(r1.estimates, r2.estimates, strict=True))
            rows.append({"seed": seed, "mode": mode, "max_abs_diff_estimate": d_est,
                         "max_abs_diff_ci": d_ci, "same_choice": r1.calibration.mode
                         == r2.calibration.mode,
                         "same_status": [e.status for e in r1.estimates]
                         == [e.status for e in r2.estimates]})
    return rows


def _cov(c: float, r: int) -> str:
    return f"{c:.3f} ± {math.sqrt(max(c * (1 - c), 1e-12) / r):.3f}" if r else "—"


def tables(df: pd.DataFrame) -> list[str]:
    """Markdown tables per cell: policy × mode.

    Parameters
    ----------
    df : pandas.DataFrame
        Rows of :func:`replicate`.

    Returns
    -------
    list of str
    """
    lines = []
    for cell, dc in df.groupby("cell", sort=False):
        process, design, pr, corr, n, n_probe, margin = CELLS[cell]
        r = dc["seed"].nunique()
        lines += ["", f"## {cell} — process `{process}`, {n} prompts, labels on "
                  f"{'base only' if design == 'one' else 'every policy'} (10%)"
                  + (f", {n_probe}-row probes of the unlabelled policies (margin {margin})"
                     if pr else "")
                  + ("" if corr else ", probe_correction=False (audit only)")
                  + f"; {r} replicates", "",
                  "| policy | mode | truth | bias | SD | mean SE | coverage | share OK | coverage of OK"
                  " | share CAUTION | share REFUSED | auto chose two-stage | audit PASS/FAIL/INC"
                  " | lengths beyond labelled range |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for (pol, mode), g in dc.groupby(["policy", "mode"], sort=False):
            n = len(g)
            ok = g[g["status"] == "OK"]
            two = (g["chosen"] == "two_stage").mean() if mode == "auto" else float("nan")
            aud = g["audit"].value_counts()
            aud_txt = (f"{aud.get('PASS', 0) / n:.2f}/{aud.get('FAIL', 0) / n:.2f}/"
                       f"{aud.get('INCONCLUSIVE', 0) / n:.2f}" if g["audit"].ne("").any() else "—")
            lines.append(
                f"| {pol} | {mode} | {g['truth'].iloc[0]:.4f} | "
                f"{(g['estimate'] - g['truth']).mean():+.4f} | {g['estimate'].std():.4f} | "
                f"{g['se'].mean():.4f} | {_cov(g['covered'].mean(), n)} | "
                f"{len(ok) / n:.3f} | {_cov(ok['covered'].mean(), len(ok)) if len(ok) else '—'} | "
                f"{(g['status'] == 'CAUTION').mean():.3f} | {(g['status'] == 'REFUSED').mean():.3f} | "
                f"{'' if mode != 'auto' else f'{two:.3f}'} | {aud_txt} | "
                f"{g['len_beyond'].mean():.3f} |")
    return lines


def main() -> None:
    """Command line entry point."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=500)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--n-jobs", type=int, default=1)
    ap.add_argument("--text-seeds", type=int, default=5)
    ap.add_argument("--out", default=str(OUT / "independent_cov"))
    args = ap.parse_args()
    truths = {p: truth(p) for p in GAMMA}
    print("truth:", truths, flush=True)
    t0 = time.time()
    rows = []
    for cell in args.cells.split(","):
        t1 = time.time()
        res = Parallel(n_jobs=args.n_jobs)(delayed(replicate)(cell, 1000 * (i + 1), truths)
                                           for i in range(args.reps))
        rows += [r for rr in res for r in rr]
        print(f"{cell}: {time.time() - t1:.0f} s", flush=True)
    df = pd.DataFrame(rows)
    df.to_parquet(args.out + ".parquet", index=False)  # git-ignored (40 MB as CSV)
    eq = pd.DataFrame(text_equivalence(range(1, 1 + args.text_seeds))) if args.text_seeds else None
    lines = ["# Tables", "", f"Command: `python simulations/independent_cov.py "
             f"--reps {args.reps} --cells {args.cells}`; runtime {time.time() - t0:.0f} s "
             f"(n_jobs={args.n_jobs}).", "",
             "Truths (label scale 1–5): " + "; ".join(
                 f"`{p}`: " + ", ".join(f"{k} {v:.4f}" for k, v in t.items())
                 for p, t in truths.items()) + ".",
             "Coverage ± Monte Carlo SE sqrt(c(1−c)/r); bias and SD on the label scale."]
    lines += tables(df)
    if eq is not None:
        lines += ["", "## `response_length` column vs `response` text (word count)", "",
                  "| " + " | ".join(eq.columns) + " |", "|" + "---|" * eq.shape[1]]
        lines += ["| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row)
                  + " |" for row in eq.itertuples(index=False)]
    md = Path(args.out + ".md")
    head = md.read_text().split("# Tables")[0] if md.exists() else ""
    md.write_text(head + "\n".join(lines) + "\n")
    print(time.time() - t0, "s")


if __name__ == "__main__":
    main()
