"""Independent check: judge panels and agreement statistics (brief: hunt_panel).

Reproduces the figures of ``simulations/results/independent_panel.md``. Most are exact (full
enumeration of the n! equally likely pairings under independence: no Monte Carlo error); the
Dawid–Skene figures come from one seeded panel each (accuracy with its binomial SE over items).

Written with numpy / pandas / scipy and the public ``cje.pairwise`` calls only; the oracles
(brute-force permutation p-values, scikit-learn's κ) are independent of the package.

Run: ``python simulations/independent_panel.py`` (about a minute, one core).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats

from cje.errors import CJEInputError
from cje.pairwise import aggregate_panel, cohen_kappa, dawid_skene, kendall_tau, spearman_rho


def null_size(fn, x, y, level=0.05):
    """Exact P(p <= level) over all n! pairings of y with x (the test's true size)."""
    ps = np.array([fn(x, y[list(p)])[1] for p in itertools.permutations(range(len(x)))])
    return float(np.mean(ps <= level))


def scipy_rho(x, y):
    return 0.0, stats.spearmanr(x, y).pvalue


def scipy_tau(x, y):
    return 0.0, stats.kendalltau(x, y).pvalue


def rank_p_values() -> None:
    print("## Rank-correlation p-values: exact size of the level-0.05 test (all n! pairings)\n")
    print("| n | data | Spearman, scipy | Spearman, cje | Kendall, scipy | Kendall, cje |")
    print("|---|---|---|---|---|---|")
    cases = [(np.arange(n, dtype=float), np.arange(n, dtype=float), "no ties") for n in (3, 4, 5, 6, 7)]
    cases += [(np.array([0, 1, 1, 2, 2.0]), np.arange(5.0), "ties in x"),
              (np.array([0, 0, 1, 1, 2, 2.0]), np.array([0, 0, 1, 1, 2, 2.0]), "ties in both")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for x, y, what in cases:
            row = [null_size(f, x, y) for f in (scipy_rho, spearman_rho, scipy_tau, kendall_tau)]
            print(f"| {len(x)} | {what} | " + " | ".join(f"{v:.4f}" for v in row) + " |")
    print("\nPerfect ranking of 3: scipy Spearman p =", stats.spearmanr([1, 2, 3], [1, 2, 3]).pvalue,
          "; cje p =", round(spearman_rho([1, 2, 3], [1, 2, 3])[1], 4))
    print("x=(0,1,1), y=(0,1,2): scipy Kendall p =", round(stats.kendalltau([0, 1, 1], [0, 1, 2]).pvalue, 4),
          "; cje p =", round(kendall_tau([0, 1, 1], [0, 1, 2])[1], 4), "\n")


def weighted_kappa_text() -> None:
    from sklearn.metrics import cohen_kappa_score

    a = ["bad", "ok", "good", "good", "ok", "bad", "ok", "good", "bad", "ok"]
    b = ["ok", "ok", "good", "ok", "good", "bad", "bad", "good", "ok", "ok"]
    code = {"bad": 0, "ok": 1, "good": 2}
    print("## Weighted κ on text labels\n")
    for w in ("linear", "quadratic"):
        right = cohen_kappa([code[v] for v in a], [code[v] for v in b], weights=w)
        alpha = cohen_kappa_score(a, b, weights=w)  # what the package returned before (alphabetical)
        try:
            cohen_kappa(a, b, weights=w)
            now = "accepted"
        except CJEInputError:
            now = "refused"
        print(f"{w}: coded bad<ok<good {right:.4f}; alphabetical order {alpha:.4f}; cje now: {now}")
    print()


def simulate(n_items, acc, per_item, rng, extra=None):
    z = rng.choice(2, n_items, p=[0.6, 0.4])
    rows = []
    for i in range(n_items):
        judges = range(len(acc)) if per_item is None else rng.choice(len(acc), per_item, replace=False)
        for j in judges:
            rows.append((f"p{i:05d}", f"j{j:03d}", int(z[i] if rng.random() < acc[j] else 1 - z[i])))
    return pd.DataFrame(rows, columns=["prompt_id", "judge", "judge_score"]), z


def dawid_skene_checks() -> None:
    print("## Dawid–Skene\n")
    warnings.simplefilter("ignore")
    print("| judges | labels per judge | mean reported posterior | DS accuracy (SE) | majority accuracy |")
    print("|---|---|---|---|---|")
    for n_judges in (3, 10, 100, 400):
        g = np.random.default_rng(n_judges)
        acc = g.uniform(0.6, 0.85, n_judges)
        df, z = simulate(2000, acc, 3, g)
        ds = aggregate_panel(df, method="dawid_skene")
        mv = aggregate_panel(df, method="majority")
        truth = z[ds["prompt_id"].str[1:].astype(int).to_numpy()]
        a_ds = float(np.mean(ds["judge_score"].astype(int).to_numpy() == truth))
        a_mv = float(np.mean(mv["judge_score"].astype(int).to_numpy() == truth))
        print(f"| {n_judges} | {2000 * 3 / n_judges:.0f} | {ds['posterior'].mean():.3f} | "
              f"{a_ds:.3f} ({np.sqrt(a_ds * (1 - a_ds) / 2000):.3f}) | {a_mv:.3f} |")
    print("\nOver 30 seeded panels each (3 labels per item, accuracies U(0.6, 0.85)):\n")
    print("| judges | items | mean reported posterior − accuracy (SE over panels) |")
    print("|---|---|---|")
    for n_judges, n_items in [(3, 2000), (3, 500), (5, 500), (100, 2000)]:
        gaps = []
        for rep in range(30):
            g = np.random.default_rng(1000 * n_judges + rep)
            acc = g.uniform(0.6, 0.85, n_judges)
            df, z = simulate(n_items, acc, 3, g)
            ds = aggregate_panel(df, method="dawid_skene")
            truth = z[ds["prompt_id"].str[1:].astype(int).to_numpy()]
            hit = ds["judge_score"].astype(int).to_numpy() == truth
            gaps.append(ds["posterior"].mean() - hit.mean())
        gaps = np.array(gaps)
        print(f"| {n_judges} | {n_items} | {gaps.mean():.3f} ({gaps.std(ddof=1) / np.sqrt(len(gaps)):.3f}) |")
    g = np.random.default_rng(4)
    df, z = simulate(1000, [0.85, 0.85, 0.2, 0.2, 0.2], None, g)
    ds = dawid_skene(df, item="prompt_id", rater="judge", label="judge_score")
    lab = ds.labels.sort_index().astype(int).to_numpy()
    print(f"\nThree of five judges adversarial (accuracy 0.2), two at 0.85, 1000 items: DS accuracy "
          f"{np.mean(lab == z):.3f}; fitted diagonal of an honest judge "
          f"{np.diag(ds.confusion['j000']).round(2).tolist()}, of an adversarial one "
          f"{np.diag(ds.confusion['j002']).round(2).tolist()}")


if __name__ == "__main__":
    rank_p_values()
    weighted_kappa_text()
    dawid_skene_checks()
