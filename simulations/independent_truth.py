"""Independent check of the truths reported by ``cje.synthetic`` (helper study, 2026-12-07).

For every synthetic generator (defaults plus a few non-default settings) draw a very large sample
and estimate the reported truth from the data alone (mean oracle label of each policy's own
responses; for off-policy targets also the importance-weighted logged label with the exact
weights read from the log-probability columns), with a Monte Carlo SE (clustered by prompt where
prompts are shared). Also check docstring claims about the data (population ESS, oracle
fraction / MCAR, label scale, maximum weight).

Run: ``PYTHONPATH=. python simulations/independent_truth.py`` (one core, about a minute); writes
the tables below the hand-written reading of ``simulations/results/independent_truth.md``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from cje.synthetic import (
    PolicySpec,
    default_policies,
    make_direct_eval,
    make_monitor_eval,
    make_offpolicy_eval,
    make_pairwise_eval,
    make_panel_eval,
    make_tail_eval,
    theta_for_ess,
)

ROWS: list[dict] = []
OUT = Path(__file__).with_name("results") / "independent_truth.md"


def record(gen: str, setting: str, quantity: str, reported: float, est: float, se: float,
           n: int) -> None:
    if se > 0:
        z = (est - reported) / se
    else:  # an exact check: equal up to floating-point rounding
        z = 0.0 if abs(est - reported) <= 1e-9 * max(1.0, abs(reported)) else math.inf
    ROWS.append(dict(generator=gen, setting=setting, quantity=quantity, reported=reported,
                     estimate=est, mc_se=se, n=n, z=z))


def mean_se(x: np.ndarray) -> tuple[float, float]:
    """Mean and SE of i.i.d. values (rows of a 2-D array = clusters: their means are used)."""
    x = np.asarray(x, dtype=float)
    if x.ndim == 2:
        x = np.nanmean(x, axis=1)
    x = x[~np.isnan(x)]
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(x.size))


def ratio_se(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """Ratio of means sum(num)/sum(den) over clusters, delta-method SE."""
    r = num.sum() / den.sum()
    lin = (num - r * den) / den.mean()
    return float(r), float(lin.std(ddof=1) / math.sqrt(num.size))


def gh_sigmoid_mean(mean: float, sd: float) -> float:
    """E[sigmoid(X)], X ~ N(mean, sd^2), by 200-node Gauss-Hermite (own code, not the package's)."""
    x, w = np.polynomial.hermite_e.hermegauss(200)
    return float(np.sum(w * expit(mean + sd * x)) / math.sqrt(2 * math.pi))


# ------------------------------------------------------------------------------------ direct
def check_direct_formula() -> None:
    """Truth from the docstring's model by my own quadrature: eta = a (mu - d) + eps is
    N(a mu, a^2 + sigma^2); V = lo + (hi - lo) E[sigmoid(eta)]."""
    for a, sig, scale, pols in ((1.0, 0.5, (1.0, 5.0), None), (2.0, 1.0, (0.0, 10.0),
                                [PolicySpec("lo", -1.5), PolicySpec("hi", 1.5)]),
                                (0.0, 0.7, (0.0, 1.0), [PolicySpec("x", 2.0)])):
        ev = make_direct_eval(5, policies=pols, quality_slope=a, quality_noise=sig,
                              label_scale=scale, rng=0)
        specs = {p.name: p for p in (pols or default_policies())}
        for name, tv in ev.truth.items():
            m = gh_sigmoid_mean(a * specs[name].quality, math.hypot(a, sig))
            record("make_direct_eval", f"own quadrature, a {a}, sigma {sig}, labels {scale}",
                   f"V({name})", tv, scale[0] + (scale[1] - scale[0]) * m, 0.0, 0)


def check_offpolicy_formula() -> None:
    """eta = a (beta_u u - d) + sigma eps with u ~ N(theta, 1): N(a beta theta, a^2 (beta^2 + 1)
    + sigma^2)."""
    for a, beta, sig, scale in ((1.0, 0.8, 0.5, (0.0, 1.0)), (1.5, 1.2, 0.3, (1.0, 5.0)),
                                (0.7, -0.5, 0.0, (0.0, 1.0))):
        tg = {"t1": -0.7, "t2": 1.1, "t3": 2.15}
        sim = make_offpolicy_eval(4, targets=tg, quality_slope=a, feature_effect=beta,
                                  quality_noise=sig, label_scale=scale, rng=0)
        for name, tv in sim.truth.items():
            th = 0.0 if name == "base" else tg[name]
            m = gh_sigmoid_mean(a * beta * th, math.sqrt(a * a * (beta * beta + 1) + sig * sig))
            record("make_offpolicy_eval", f"own quadrature, a {a}, beta_u {beta}, sigma {sig}, "
                   f"labels {scale}", f"V({name})", tv, scale[0] + (scale[1] - scale[0]) * m,
                   0.0, 0)
            if name != "base":
                record("make_offpolicy_eval", f"own quadrature, a {a}, beta_u {beta}, sigma {sig}",
                       f"raw_ess({name}) = exp(-theta^2)", sim.raw_ess[name], math.exp(-th * th),
                       0.0, 0)


def check_direct() -> None:
    settings = {
        "defaults (miscal. judge, labels 1-5), 200k prompts": dict(n_prompts=200_000),
        "calibrated judge, labels 0-1, 3 draws/prompt, 100k prompts": dict(
            n_prompts=100_000, judge="calibrated", label_scale=(0.0, 1.0), draws_per_prompt=3),
        "slope 2, noise 1, labels 0-10, qualities -1.5/0/+1.5, 200k prompts": dict(
            n_prompts=200_000, quality_slope=2.0, quality_noise=1.0, label_scale=(0.0, 10.0),
            policies=[PolicySpec("lo", -1.5), PolicySpec("mid", 0.0), PolicySpec("hi", 1.5)]),
    }
    for i, (name, kw) in enumerate(settings.items()):
        ev = make_direct_eval(oracle_fraction=1.0, rng=100 + i, **kw)
        d = ev.data
        m = kw.get("draws_per_prompt", 1)
        for pol, tv in ev.truth.items():
            y = d.loc[d.policy == pol, "oracle_label"].to_numpy().reshape(-1, m)
            est, se = mean_se(y)
            record("make_direct_eval", name, f"V({pol})", tv, est, se, y.size)
        if i == 0:  # default_policies docstring: verbose's naive judge mean ranks above improved
            sj = d.pivot_table(index="prompt_id", columns="policy", values="judge_score")
            est, se = mean_se((sj["verbose"] - sj["improved"]).to_numpy())
            record("make_direct_eval", name, "judge mean verbose - improved > 0 (z = est/SE)", 0.0,
                   est, se, len(sj))
            ROWS[-1]["flag_ok"] = est > 0
        lo, hi = ev.label_scale
        y = d["oracle_label"].to_numpy()
        record("make_direct_eval", name, "labels inside label_scale (share)", 1.0,
               float(((y >= lo) & (y <= hi)).mean()), 0.0, y.size)
    # oracle fraction and MCAR at the default 10 %: same seed with full labels vs 10 %.
    full = make_direct_eval(200_000, oracle_fraction=1.0, rng=7).data
    part = make_direct_eval(200_000, oracle_fraction=0.1, rng=7).data
    lab = part["oracle_label"].notna().to_numpy()
    n = lab.size
    record("make_direct_eval", "defaults, oracle_fraction 0.1", "labelled share", 0.1, lab.mean(),
           math.sqrt(0.09 / n), n)
    same = np.allclose(part["oracle_label"].to_numpy()[lab], full["oracle_label"].to_numpy()[lab])
    record("make_direct_eval", "defaults, oracle_fraction 0.1",
           "labels equal the full-label run (1 = yes)", 1.0, float(same), 0.0, int(lab.sum()))
    y = full["oracle_label"].to_numpy()
    diff = y[lab].mean() - y[~lab].mean()
    se = math.sqrt(y[lab].var() / lab.sum() + y[~lab].var() / (~lab).sum())
    record("make_direct_eval", "defaults, oracle_fraction 0.1",
           "MCAR: mean Y labelled - unlabelled", 0.0, diff, se, n)


# ------------------------------------------------------------------------------------ off-policy
def _offpolicy_checks(name: str, sim, m: int) -> None:
    lg, fr = sim.logged, sim.fresh
    lo, hi = sim.label_scale
    for pol, tv in sim.truth.items():
        y = fr.loc[fr.policy == pol, "oracle_label"].to_numpy().reshape(-1, m)
        est, se = mean_se(y)
        record("make_offpolicy_eval", name, f"V({pol}) fresh draws", tv, est, se, y.size)
    y = lg["oracle_label"].to_numpy()
    for pol, th in sim.thetas.items():
        w = np.exp(lg[f"logprob[{pol}]"].to_numpy() - lg["logprob_base"].to_numpy())
        ok = ~np.isnan(w)
        w, yy = w[ok], y[ok]
        n = w.size
        # Log-normal weights: sample SEs of weighted means understate the spread (the sample 4th
        # moment is far below exp(6 theta^2) for far targets), so the SEs below are exact
        # (E[w], E[w^2]) or a conservative bound (IPS: sd(w Y) <= max|Y| sqrt(E[w^2])).
        t2 = th * th
        est, _ = mean_se(w * yy)
        se = max(abs(lo), abs(hi)) * math.sqrt(math.exp(t2) / n)
        record("make_offpolicy_eval", name, f"V({pol}) IPS of logged Y, exact weights "
               "(SE: bound)", sim.truth[pol], est, se, n)
        mw, _ = mean_se(w)
        record("make_offpolicy_eval", name, f"E[w] ({pol}) (SE exact)", 1.0, mw,
               math.sqrt(math.expm1(t2) / n), n)
        w2, _ = mean_se(w * w)
        s2 = math.sqrt((math.exp(6 * t2) - math.exp(2 * t2)) / n)
        record("make_offpolicy_eval", name, f"E[w^2] = 1/raw ESS ({pol}) (SE exact)",
               1.0 / sim.raw_ess[pol], w2, s2, n)


def check_offpolicy() -> None:
    n = 500_000
    sim = make_offpolicy_eval(n, oracle_fraction=1.0, fresh_oracle_fraction=1.0, rng=200)
    _offpolicy_checks("defaults (mild/moderate/far), 500k prompts", sim, 1)
    tg = {"worse": -theta_for_ess(0.6), "better": theta_for_ess(0.3), "vfar": theta_for_ess(0.01)}
    sim = make_offpolicy_eval(250_000, targets=tg, oracle_fraction=1.0, fresh_oracle_fraction=1.0,
                              judge="calibrated", n_fresh_per_prompt=2, label_scale=(1.0, 5.0),
                              feature_effect=1.2, quality_slope=1.5, quality_noise=0.3,
                              judge_grid=None, rng=201)
    _offpolicy_checks("calibrated judge, labels 1-5, 2 fresh/prompt, beta_u 1.2, a 1.5, "
                      "sigma 0.3, targets worse/better/vfar, 250k prompts", sim, 2)
    # Fractions: oracle_fraction, fresh_oracle_fraction, missing_logprob_rate.
    sim = make_offpolicy_eval(200_000, oracle_fraction=0.25, fresh_oracle_fraction=0.4,
                              missing_logprob_rate=0.3, rng=202)
    name = "oracle 0.25, fresh oracle 0.4, missing logprob 0.3, 200k prompts"
    lab = sim.logged["oracle_label"].notna().to_numpy()
    record("make_offpolicy_eval", name, "logged labelled share", 0.25, lab.mean(),
           math.sqrt(0.25 * 0.75 / lab.size), lab.size)
    flab = sim.fresh["oracle_label"].notna().to_numpy()
    record("make_offpolicy_eval", name, "fresh labelled share", 0.4, flab.mean(),
           math.sqrt(0.24 / flab.size), flab.size)
    miss = sim.logged["logprob[far]"].isna().to_numpy()
    record("make_offpolicy_eval", name, "missing logprob[far] share", 0.3, miss.mean(),
           math.sqrt(0.21 / miss.size), miss.size)
    s = sim.logged["judge_score"].to_numpy()
    diff = s[lab].mean() - s[~lab].mean()
    se = math.sqrt(s[lab].var() / lab.sum() + s[~lab].var() / (~lab).sum())
    record("make_offpolicy_eval", name, "MCAR: mean judge score labelled - unlabelled", 0.0,
           diff, se, lab.size)


# ------------------------------------------------------------------------------------ tails
def check_tails() -> None:
    n = 1_000_000
    for tail, bonus in (("bounded", 0.9), ("unbounded", 0.9), ("bounded", 0.0)):
        sim = make_tail_eval(n, tail=tail, style_bonus=bonus, oracle_fraction=1.0, rng=300)
        name = f"{tail}, style_bonus {bonus}, default ESS grid, {n // 1000}k logged rows"
        lg, fr = sim.logged, sim.fresh
        y = lg["oracle_label"].to_numpy()
        s = lg["judge_score"].to_numpy()
        est, se = mean_se(y)
        record("make_tail_eval", name, "V(base) logged Y", sim.truth["base"], est, se, n)
        for pol in sim.raw_ess:
            w = np.exp(lg[f"logprob[{pol}]"].to_numpy() - lg["logprob_base"].to_numpy())
            w2, s2 = mean_se(w * w)
            if tail == "bounded" or sim.raw_ess[pol] >= 0.1:
                est, se = mean_se(w * y)
                record("make_tail_eval", name, f"V({pol}) IPS of logged Y, exact weights",
                       sim.truth[pol], est, se, n)
                # The fresh draws (unlabelled) must come from the law the log-probs describe:
                # the fresh judge-score mean vs the importance-weighted logged score.
                fs = fr.loc[fr.policy == pol, "judge_score"].to_numpy()
                e1, s1 = mean_se(fs)
                e2, s2b = mean_se(w * s)
                record("make_tail_eval", name, f"fresh mean score - IPS mean score ({pol})", 0.0,
                       e1 - e2, math.hypot(s1, s2b), n)
                record("make_tail_eval", name, f"raw ESS fraction 1/E[w^2] ({pol})",
                       sim.raw_ess[pol], 1.0 / w2, s2 / w2**2, n)
            if tail == "bounded":
                record("make_tail_eval", name, f"largest observed weight ({pol})",
                       sim.max_weight[pol], float(w.max()), 0.0, n)
        # Independent re-implementation of the label model from the docstring (unbounded kind):
        # u ~ N(theta, 1), a = Phi(u), b uniform on {-0.1, 0, 0.1}, Y ~ Beta(10 m, 10 (1 - m)).
        if tail == "unbounded":
            rng = np.random.default_rng(301)
            from scipy.optimize import brentq

            from cje.synthetic.tails import _unbounded_ess
            for pol, e in sim.raw_ess.items():
                th = brentq(lambda t, e=e: _unbounded_ess(t) - e, 0.0, 10.0, xtol=1e-12)
                u = th + rng.standard_normal(n)
                mm = 0.25 + 0.5 * ndtr(u) + rng.choice([-0.1, 0.0, 0.1], n)
                yy = rng.beta(10 * mm, 10 * (1 - mm))
                est, se = mean_se(yy)
                record("make_tail_eval", name, f"V({pol}) own re-implementation", sim.truth[pol],
                       est, se, n)


# ------------------------------------------------------------------------------------ pairwise
def check_pairwise() -> None:
    n, reps = 100_000, 2
    kw = dict(items=("A", "B", "C", "D"), position_logodds=0.5, length_effect=0.4,
              self_preference=0.6, judge_family="fa", item_families=("fa", "fb", "fa", "fc"),
              tie_rate=0.1, repeats=reps, length_means=(0.5, 0.0, -0.3, 0.2), prompt_noise=0.8)
    for name, extra in (("position 0.5, length 0.4, self-pref 0.6, ties 0.1, 2 runs", {}),
                        ("same, no length effect", {"length_effect": 0.0})):
        sim = make_pairwise_eval(n, rng=400, **{**kw, **extra})
        p, t = sim.pairs, sim.truth
        n_pairs = 6
        shp = (n, n_pairs, 2, reps)
        win = p["winner"].to_numpy().reshape(shp)
        la = p["len_a"].to_numpy().reshape(shp)[:, :, 0, 0]
        lb = p["len_b"].to_numpy().reshape(shp)[:, :, 0, 0]
        hum = p["human_winner"].to_numpy().reshape(shp)[:, :, 0, 0]
        fa = p["a_family"].to_numpy().reshape(shp)[:, :, 0, 0] == "fa"
        fb = p["b_family"].to_numpy().reshape(shp)[:, :, 0, 0] == "fa"
        o1, o2 = win[:, :, 0, :], win[:, :, 1, :]  # slot_a = 1, 2
        per = lambda x: x.reshape(n, -1).mean(axis=1)  # noqa: E731  per-prompt means
        pp = per((o1 == "a") & (o2 == "b"))
        rp = per((o1 == "b") & (o2 == "a"))
        pc = per(o1 == o2)
        same = per(win[..., 0] == win[..., 1])
        g = "make_pairwise_eval"
        for q, v in (("pp_rate", pp), ("rp_rate", rp), ("pc", pc),
                     ("flip_rate_same_order", 1 - same)):
            est, se = mean_se(v)
            record(g, name, q, t[q], est, se, n)
        est, se = ratio_se(pp, pp + rp)
        record(g, name, "first_slot_rate PP/(PP+RP)", t["first_slot_rate"], est, se, n)
        a_long = (la > lb)[:, :, None, None]
        score = np.where(win == "tie", 0.5, np.where((win == "a") == a_long, 1.0, 0.0))
        est, se = mean_se(per(score))
        record(g, name, "judge_longer_rate", t["judge_longer_rate"], est, se, n)
        hs = np.where(hum == "tie", 0.5, np.where((hum == "a") == (la > lb), 1.0, 0.0))
        est, se = mean_se(per(hs))
        record(g, name, "human_longer_rate", t["human_longer_rate"], est, se, n)
        # Self-preference: pairs with exactly one judge-family item x; human picks x (no tie).
        one = fa != fb
        x_is_a = fa
        hum_x = np.where(x_is_a, hum == "a", hum == "b")
        hum_o = np.where(x_is_a, hum == "b", hum == "a")
        j_x = np.where(x_is_a[:, :, None, None], win == "a", win == "b")
        j_o = np.where(x_is_a[:, :, None, None], win == "b", win == "a")
        for q, hsel, jsel in (("self_own_rate", hum_x, j_x), ("self_other_rate", hum_o, j_o)):
            sel = (one & hsel)[:, :, None, None]
            num = (sel & jsel).reshape(n, -1).sum(axis=1).astype(float)
            den = np.broadcast_to(sel, win.shape).reshape(n, -1).sum(axis=1).astype(float)
            est, se = ratio_se(num, den)
            record(g, name, q, t[q], est, se, n)
    # The self_other_rate of seed 400 sits at z = -2.3 / -3.0 (the two settings share the random
    # streams). Replicate at other seeds, 200k prompts, no length effect.
    for seed in (401, 402, 403):
        sim = make_pairwise_eval(200_000, rng=seed, **{**kw, "length_effect": 0.0})
        p, t, n2 = sim.pairs, sim.truth, 200_000
        shp = (n2, 6, 2, reps)
        win = p["winner"].to_numpy().reshape(shp)
        hum = p["human_winner"].to_numpy().reshape(shp)[:, :, 0, 0]
        fa = p["a_family"].to_numpy().reshape(shp)[:, :, 0, 0] == "fa"
        fb = p["b_family"].to_numpy().reshape(shp)[:, :, 0, 0] == "fa"
        one = fa != fb
        for q, hsel, jsel in (
            ("self_own_rate", np.where(fa, hum == "a", hum == "b"),
             np.where(fa[:, :, None, None], win == "a", win == "b")),
            ("self_other_rate", np.where(fa, hum == "b", hum == "a"),
             np.where(fa[:, :, None, None], win == "b", win == "a")),
        ):
            sel = (one & hsel)[:, :, None, None]
            num = (sel & jsel).reshape(n2, -1).sum(axis=1).astype(float)
            den = np.broadcast_to(sel, win.shape).reshape(n2, -1).sum(axis=1).astype(float)
            est, se = ratio_se(num, den)
            record("make_pairwise_eval", f"replication seed {seed}, no length effect, 200k prompts",
                   q, t[q], est, se, n2)


# ------------------------------------------------------------------------------------ panel
def _within(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    means = pd.DataFrame(x).groupby(groups).transform("mean").to_numpy()
    return x - means


def check_panel() -> None:
    for name, kw in (
        ("defaults (5 levels), 100k prompts", dict(n_prompts=100_000)),
        ("confounded, length 0.3, self-pref 0.4, 100k prompts",
         dict(n_prompts=100_000, confounded=True, length_effect=0.3, self_preference=0.4)),
        ("7 levels, label_noise 0.3, two labels, confounded, length 0.3, self-pref 0.4, "
         "100k prompts", dict(n_prompts=100_000, label_levels=7, label_noise=0.3,
                              two_labels=True, confounded=True, length_effect=0.3,
                              self_preference=0.4)),
    ):
        pan = make_panel_eval(oracle_fraction=1.0, rng=500, **kw)
        d = pan.data
        d1 = d[d.judge == d.judge.iloc[0]]
        for pol, tv in pan.truth["value"].items():
            y = d1.loc[d1.policy == pol, "oracle_label"].to_numpy()
            est, se = mean_se(y)
            record("make_panel_eval", name, f"value({pol}) oracle_label", tv, est, se, y.size)
            if "oracle_label_2" in d1:
                y2 = d1.loc[d1.policy == pol, "oracle_label_2"].to_numpy()
                est, se = mean_se(y2)
                record("make_panel_eval", name, f"value({pol}) oracle_label_2", tv, est, se,
                       y2.size)
        # Regression estimands: S ~ C(T) + z + own + C(prompt), within prompts, one judge at a
        # time, on 20k prompts (T is the label when label_noise = 0; otherwise use the truth-free
        # check only for the value).
        if kw.get("label_noise", 0.0) == 0.0:
            sub = d[d.prompt_id < "p20000"]
            for jn in sub.judge.unique():
                dj = sub[sub.judge == jn]
                T = dj["oracle_label"].to_numpy()
                levels = np.unique(T)[1:]
                own = (dj.judge_family == dj.policy_family).to_numpy(float)
                X = np.column_stack([(T[:, None] == levels[None, :]).astype(float),
                                     dj["z"].to_numpy(), own])
                keep = X.std(axis=0) > 0
                X = X[:, keep]
                gid = dj.prompt_id.to_numpy()
                Xw = _within(X, gid)
                yw = _within(dj["judge_score"].to_numpy()[:, None], gid)[:, 0]
                beta, *_ = np.linalg.lstsq(Xw, yw, rcond=None)
                res = yw - Xw @ beta
                dof = len(yw) - Xw.shape[1] - len(np.unique(gid))
                cov = np.linalg.inv(Xw.T @ Xw) * (res @ res / dof)
                iz = int(keep[: len(levels)].sum())
                record("make_panel_eval", name, f"length coefficient ({jn})",
                       pan.truth["length_effect"], beta[iz], math.sqrt(cov[iz, iz]), len(yw))
                if keep[-1]:
                    record("make_panel_eval", name, f"own-family coefficient ({jn})",
                           pan.truth["self_preference"], beta[iz + 1],
                           math.sqrt(cov[iz + 1, iz + 1]), len(yw))


# ------------------------------------------------------------------------------------ monitor
def check_monitor() -> None:
    rows = 400_000
    for kind in ("none", "distribution", "slope"):
        sim = make_monitor_eval(n_windows=2, rows_per_window=rows, labels_per_window=rows,
                                kind=kind, change_at=1, label_scale=(1.0, 5.0), rng=600)
        d = sim.data
        for _, r in sim.truth.iterrows():
            y = d.loc[(d.window == r.window) & (d.policy == r.policy), "oracle_label"].to_numpy()
            est, se = mean_se(y)
            record("make_monitor_eval", f"kind={kind}, change_at 1, {rows // 1000}k rows/window",
                   f"window {r.window} {r.policy}", r.truth, est, se, y.size)
        if kind == "distribution":  # docstring: the label given the score does not move
            for sv in (3.0, 5.0, 7.0):
                at = np.isclose(d["judge_score"].to_numpy(), sv)
                y0 = d.loc[at & (d.window == 0).to_numpy(), "oracle_label"].to_numpy()
                y1 = d.loc[at & (d.window == 1).to_numpy(), "oracle_label"].to_numpy()
                se = math.sqrt(y0.var() / y0.size + y1.var() / y1.size)
                record("make_monitor_eval", f"kind={kind}, change_at 1, {rows // 1000}k rows/window",
                       f"E[Y | S = {sv:g}] window 1 - window 0", 0.0, y1.mean() - y0.mean(), se,
                       y0.size + y1.size)


def main() -> int:
    check_direct_formula()
    check_offpolicy_formula()
    check_direct()
    check_offpolicy()
    check_tails()
    check_pairwise()
    check_panel()
    check_monitor()
    tab = pd.DataFrame(ROWS)
    tab["flag"] = np.where(tab["z"].abs() > 3, "MISMATCH", "")
    if "flag_ok" in tab:  # a one-sided claim (estimate > 0), not an equality
        claim = tab["flag_ok"].notna()
        tab.loc[claim, "flag"] = np.where(tab.loc[claim, "flag_ok"].astype(bool), "claim holds",
                                          "CLAIM FALSE")
    lines = []
    for gen, g in tab.groupby("generator", sort=False):
        lines.append(f"\n## {gen}\n")
        lines.append("| setting | quantity | reported | estimate | MC SE | n | z | |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---|")
        for r in g.itertuples():
            lines.append(f"| {r.setting} | {r.quantity} | {r.reported:.5f} | {r.estimate:.5f} | "
                         f"{r.mc_se:.5f} | {r.n} | {r.z:+.2f} | {r.flag} |")
    text = "\n".join(lines) + "\n"
    head = OUT.read_text().split("# Tables")[0] if OUT.exists() else "(reading to be written)\n\n"
    OUT.write_text(head + "# Tables\n\nz = (estimate - reported) / MC SE; |z| > 3 is flagged.\n"
                   + text)
    print(tab.to_string())
    print("flagged:", int(tab.flag.isin(["MISMATCH", "CLAIM FALSE"]).sum()), "of", len(tab))
    return 0


if __name__ == "__main__":
    sys.exit(main())
