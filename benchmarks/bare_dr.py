"""The bare-numpy DR-CPO pipeline with full OUA: the reference for the doubly robust family's cost
(issue #18); also calibrated IPS (the same SIMCal-W weights, no outcome model).

The statistics ``cje.analyze(logged, fresh_draws=fresh, estimator="dr-cpo")`` computes with its
defaults (monotone calibration, K = 5, SIMCal-W weights on the correction term, raw Hájek weights
on the oracle residual term), in plain numpy (plus scipy's PAV and pandas' factorize), with no
``cje`` import and no validation, on integer-coded arrays:

* isotonic calibration ``f`` of Y on S over the distinct scores of the logged rows and the fresh
  draws, cross-fitted over K prompt folds (:class:`bare_direct.Calibrations`' fits);
* the logging policy's value: the direct estimate on its logged rows;
* per target, raw Hájek weights ``w`` and **SIMCal-W** stabilised weights ``w̃`` (per fold k: the
  increasing and decreasing isotonic fits of ``w`` along the score order, fitted on the other
  folds, and the raw weights, stacked by the simplex weights minimising the estimated MSE of the
  three candidates' calibrated-IPS influence values on the other folds' rows, each fitted
  without fold k and the row's own fold; mean one per fold);
* the DR-CPO estimate ``ψ = mean ḡ + Σ w̃ (R − q)/Σ w̃ + Σ w (L/p_L) e / Σ w`` with the outcome
  model ``q = f^(−fold)(S)``, ``ḡ_i`` the mean of ``q`` over the target's fresh draws of row i's
  prompt, ``e = Y − f^(−fold)(S)`` on the labelled rows; influence values
  ``(ḡ − ψ_g) + [w (R − q − ψ_c) − mean] + w((L/p_L) e − ψ_e) − ψ_e (L/p_L − 1)``, the residual
  part scaled up by the design-based tail factor below 30% raw ESS;
* the prompt-clustered variance of each policy's influence values, and the K-fold OUA jackknife
  (each run deletes one fold's labels and refits the calibration, SIMCal-W's stacking and the
  estimates; values only);
* ``se = sqrt(var_if + var_cal)`` and a normal 95% interval (cje: t with Satterthwaite df).

Scope (said, not hidden): monotone calibration, no covariates, no probes, unlabelled fresh draws,
every logged row usable, and the raw-weight residual term — a target whose raw weights have an
ESS below 10% or a Hill index below 1 (where cje puts the stabilised weights on the residual and
adds the transport allowance) raises ``NotImplementedError``. SIMCal-W's isotonic candidates are
fitted along the judge-score order (cje orders by the fold's calibration with ties broken by the
score: the same order for a monotone calibration) and mixed as per-score tables plus a multiple
of the raw weight (cje mixes the three gathered row arrays: the same numbers up to rounding). The
variance cap and the fallbacks for numerically zero weights are not implemented.

:func:`codes_from_frames` is the bare minimum of reading the frames cje is given
(``pandas.factorize`` of the prompt ids over both frames and of the fresh draws' policy names,
scores and labels mapped to [0, 1]).

``estimator="calibrated-ips"`` (``--estimator``) computes cje's calibrated IPS with the same
SIMCal-W weights and residual term instead (no outcome model, no fresh-draw means); checked the
same way (10⁵ rows, seeds 0 and 1, one and two fresh draws per prompt): estimates to 1e-16, SEs
to 3e-15 relative.

``estimator="direct"``: cje's direct estimator on logged data (each target's mean calibrated
reward over its unlabelled fresh draws); checked the same way: estimates to 1e-12, SEs to 2e-10
relative.

``--check`` compares :func:`run` with ``cje.analyze(..., estimator="dr-cpo")`` on
``cje.synthetic.make_offpolicy_eval(rows, oracle_fraction=0.1)`` with cje's own folds (cje is
imported for that only). Measured (2026-12-07, 10⁵ logged rows, seeds 0 and 1, one and two fresh
draws per prompt): the targets' estimates agree to 2e-16 and their SEs to 5e-15 relative
(var_IF 3e-15, var_cal 4e-12: a jackknife variance is a sum of squared differences of nearly
equal estimates); the logging policy's estimate to 3e-13 (its means summed in another order),
its SE to 6e-12 (its var_cal to 1e-8). At 2·10⁴ rows the far target's raw ESS is 5.5%: the
script refuses (see Scope).

Usage::

    python benchmarks/bare_dr.py [--rows 1000000] [--repeats 3]
    python benchmarks/bare_dr.py --check [--rows 100000] [--seed 0] [--fresh-per-prompt 1]
    python benchmarks/bare_dr.py --estimator calibrated-ips|direct [--check]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import isotonic_regression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_direct import Z95, iso_fit, timed  # noqa: E402
from bare_offpolicy import _cluster_var  # noqa: E402
from bare_offpolicy import make_data as _logged_data  # noqa: E402

FLOOR = 1e-9  # SIMCal-W's floor on stabilised weights
ESS_RESIDUAL, HILL_RESIDUAL, TAIL_ESS = 0.10, 1.0, 0.30
REGIONS, ROWS_PER_REGION = 5, 20


def make_data(n_rows: int, thetas: tuple[float, ...] = (0.3, 0.6, 1.2), label_fraction: float = 0.10,
              seed: int = 0) -> dict[str, np.ndarray]:
    """:func:`bare_offpolicy.make_data`'s logged rows plus one unlabelled fresh draw of each
    target per prompt (feature ``u ~ N(theta, 1)``, the same score model)."""
    data = _logged_data(n_rows, thetas, label_fraction, seed)
    rng = np.random.default_rng(seed + 1)
    pr, pol, s = [], [], []
    for j, t in enumerate(thetas):
        u = rng.standard_normal(n_rows) + t
        q = 0.8 * u - rng.standard_normal(n_rows) + 0.3 * rng.standard_normal(n_rows)
        y = 1.0 / (1.0 + np.exp(-q))
        s.append(np.clip(np.round((y**1.5 + 0.1 * rng.standard_normal(n_rows)) / 0.05) * 0.05,
                         0.0, 1.0))
        pr.append(np.arange(n_rows))
        pol.append(np.full(n_rows, j))
    data.update(fresh_prompt=np.concatenate(pr), fresh_policy=np.concatenate(pol),
                fresh_s=np.concatenate(s))
    return data


def codes_from_frames(logged, fresh, judge_scale: tuple[float, float],
                      label_scale: tuple[float, float]) -> dict[str, np.ndarray]:
    """The arrays :func:`run` takes, from the logged frame and the fresh-draws frame
    ``cje.analyze`` is given: prompt ids of both coded together by ``pandas.factorize`` (the
    columns themselves: Arrow-backed strings are hashed by Arrow), the fresh draws' policy names
    coded by the targets' (``logprob[<target>]`` columns, sorted; other policies' draws, e.g. the
    logging policy's, dropped), scores and labels mapped to [0, 1]. No validation."""
    import pandas as pd

    targets = sorted(c[len("logprob["):-1] for c in logged.columns
                     if c.startswith("logprob[") and c.endswith("]"))
    n = logged.shape[0]
    pid, _ = pd.factorize(pd.concat([logged["prompt_id"], fresh["prompt_id"]], ignore_index=True),
                          sort=False)
    pol, names = pd.factorize(fresh["policy"], sort=True)
    of_name = np.array([targets.index(p) if p in targets else -1 for p in names], dtype=np.int64)
    fpol = of_name[pol]
    keep = fpol >= 0
    lo, hi = judge_scale
    out = {"prompt": pid[:n].astype(np.int64),
           "s": (logged["judge_score"].to_numpy(dtype=float) - lo) / (hi - lo),
           "y": (logged["oracle_label"].to_numpy(dtype=float) - label_scale[0])
           / (label_scale[1] - label_scale[0]),
           "lp_base": logged["logprob_base"].to_numpy(dtype=float),
           "fresh_prompt": pid[n:][keep].astype(np.int64), "fresh_policy": fpol[keep],
           "fresh_s": (fresh["judge_score"].to_numpy(dtype=float)[keep] - lo) / (hi - lo)}
    for j, t in enumerate(targets):
        out[f"lp_{j:03d}_{t}"] = logged[f"logprob[{t}]"].to_numpy(dtype=float)
    return out


def all_folds(prompt: np.ndarray, lab: np.ndarray, n_prompts: int, k: int, seed: int = 0
              ) -> np.ndarray:
    """Fold of every prompt: labelled prompts dealt round-robin in a seeded random order (balanced
    oracle folds), the others at random (cje hashes the ids: the same work up to the hash)."""
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, k, n_prompts)
    has = np.zeros(n_prompts, dtype=bool)
    has[prompt[lab]] = True
    lp = np.flatnonzero(has)
    fold[lp[rng.permutation(lp.size)]] = np.arange(lp.size) % k
    return fold


class _Calibration:
    """The isotonic fits without any set of folds' labels at the U distinct scores (memoised)."""

    def __init__(self, u_lab: np.ndarray, y_lab: np.ndarray, f_lab: np.ndarray, n_u: int, k: int):
        self.u_lab, self.y_lab, self.f_lab, self.n_u, self.k = u_lab, y_lab, f_lab, n_u, k
        self._fits: dict[frozenset[int], np.ndarray] = {}

    def without(self, folds: frozenset[int]) -> np.ndarray:
        if folds not in self._fits:
            keep = ~np.isin(self.f_lab, list(folds)) if folds else slice(None)
            self._fits[folds] = iso_fit(self.u_lab[keep], self.y_lab[keep], self.n_u)
        return self._fits[folds]

    def run(self, deleted: frozenset[int]) -> tuple[np.ndarray, np.ndarray]:
        full = self.without(deleted)
        return full, np.vstack([self.without(deleted | {j}) if len(deleted | {j}) < self.k
                                else full for j in range(self.k)])


def _iso_pair(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Increasing and decreasing weighted isotonic fits of ``num/den`` along the value order,
    linear between fitted values, flat beyond, floored."""
    keep = np.flatnonzero(den > 0)
    at = np.arange(num.size)
    r, wt = num[keep] / den[keep], den[keep]
    return tuple(np.maximum(np.interp(at, keep, isotonic_regression(r, weights=wt, increasing=inc).x),
                            FLOOR) for inc in (True, False))  # type: ignore[return-value]


def simplex_min(sig: np.ndarray) -> np.ndarray:
    """``argmin π'Σπ`` over the simplex (3 candidates): every active set's equality-constrained
    minimiser, the feasible one with the least objective; ridge ``1e-8·tr/3``."""
    m = sig.shape[0]
    tr = float(np.trace(sig))
    s = sig + np.eye(m) * (1e-8 * tr / m if tr > 0 else 1e-12)
    best, best_val = np.full(m, 1.0 / m), np.inf
    for mask in range(1, 2**m):
        a = [i for i in range(m) if mask >> i & 1]
        try:
            x = np.linalg.solve(s[np.ix_(a, a)], np.ones(len(a)))
        except np.linalg.LinAlgError:
            continue
        if not (np.isfinite(x).all() and x.sum() > 0):
            continue
        x = x / x.sum()
        if (x < -1e-12).any():
            continue
        pi = np.zeros(m)
        pi[a] = np.clip(x, 0.0, None)
        pi /= pi.sum()
        val = float(pi @ s @ pi)
        if val < best_val - 1e-15 * max(1.0, abs(val)):
            best, best_val = pi, val
    return best


class _Simcal:
    """SIMCal-W for one target: per (fold, used value) cell sums of its raw weights, computed once;
    the candidates (fitted on weights and the score order alone) once; each calibration's
    stacking from the cell sums; the stabilised weights of each fold's rows."""

    def __init__(self, w: np.ndarray, uc: np.ndarray, fold: np.ndarray, lab: np.ndarray,
                 y: np.ndarray, rows: list[np.ndarray], k: int, n_u: int):
        key = fold * n_u + uc
        kl = key[lab]
        wl, yl = w[lab], y[lab]

        def tab(v: np.ndarray | None, kk: np.ndarray = key) -> np.ndarray:
            return np.bincount(kk, weights=v, minlength=k * n_u).reshape(k, n_u).astype(float)

        self.N, self.Sw, self.Sw2 = tab(None), tab(w), tab(w * w)
        w2 = wl * wl
        self.L1 = tab(None, kl).sum(axis=1)
        self.Lw, self.Lwy = tab(wl, kl), tab(wl * yl, kl)
        self.Lw2, self.Lw2y, self.Lw2y2 = tab(w2, kl), tab(w2 * yl, kl), tab(w2 * yl * yl, kl)
        self.w, self.uc, self.rows, self.k, self.n_u = w, uc, rows, k, n_u
        # candidates: fitted without fold k (applied to fold k), without {k, j} (stacking)
        self.cand = {}
        for f in [(j,) for j in range(k)] + [(a, b) for a in range(k) for b in range(a + 1, k)]:
            keep = np.ones(k, dtype=bool)
            keep[list(f)] = False
            self.cand[frozenset(f)] = _iso_pair(self.Sw[keep].sum(axis=0), self.N[keep].sum(axis=0))
        self.memo: dict[tuple[int, bytes], tuple[np.ndarray, np.ndarray]] = {}

    def _stack(self, k: int, x: np.ndarray) -> np.ndarray:
        """Fold k's simplex weights: MSE of the candidates' calibrated-IPS influence values
        (raw weights on the residual) over the other folds' rows, reward ``x``."""
        K = self.k
        others = [j for j in range(K) if j != k]
        a_inc = np.vstack([self.cand[frozenset((k, j))][0] for j in others])
        a_dec = np.vstack([self.cand[frozenset((k, j))][1] for j in others])
        N, Sw, Sw2 = self.N[others], self.Sw[others], self.Sw2[others]
        Lw, Lwy, Lw2, Lw2y, Lw2y2 = (t[others] for t in (self.Lw, self.Lwy, self.Lw2, self.Lw2y,
                                                          self.Lw2y2))
        n_k = float(N.sum())
        ip = n_k / float(self.L1[others].sum())
        xs = x[None, :]
        vN = (a_inc * N, a_dec * N, Sw)  # Σ v per cell, candidate by candidate
        tot = np.array([float(v.sum()) for v in vN])
        mc = tot / n_k
        psi = np.array([float((v * xs).sum()) for v in vN]) / tot
        Swe = ip * (Lwy - xs * Lw)
        Sw2e = ip * (Lw2y - xs * Lw2)
        Sw2ee = ip * ip * (Lw2y2 - 2 * xs * Lw2y + xs * xs * Lw2)
        ebar = float(Swe.sum()) / (mc[2] * n_k)
        base = Swe - ebar * Sw
        vg = (a_inc * base, a_dec * base, Sw2e - ebar * Sw2)
        gg = float((Sw2ee - 2 * ebar * Sw2e + ebar * ebar * Sw2).sum()) / mc[2] ** 2
        dx = [xs - p for p in psi]
        cross = [float((dx[c] * vg[c]).sum()) / (mc[c] * mc[2]) for c in range(3)]
        a = (a_inc, a_dec)
        M = np.empty((3, 3))
        for c in range(3):
            for d in range(c, 3):
                if d < 2:
                    p0 = a[c] * a[d] * N
                elif c < 2:
                    p0 = a[c] * Sw
                else:
                    p0 = Sw2
                M[c, d] = M[d, c] = (float((dx[c] * dx[d] * p0).sum()) / (mc[c] * mc[d])
                                     + cross[c] + cross[d] + gg)
        # estimated MSE: variance + squared bias against the unbiased raw candidate
        sc = 1.0 / (n_k * max(n_k - 1.0, 1.0))
        D = M - M[:, -1:] - M[-1:, :] + M[-1, -1]
        b = psi - psi[-1]
        mse = M * sc + np.outer(b, b) - D * sc
        mse /= float(np.abs(mse).max())
        vals, vecs = np.linalg.eigh((mse + mse.T) / 2)
        return simplex_min((vecs * np.clip(vals, 0.0, None)) @ vecs.T)

    def weights(self, index_used: np.ndarray) -> np.ndarray:
        """Stabilised weights of every row under the calibration whose out-of-fold versions at
        the used values are ``index_used`` (K, U_used)."""
        out = np.empty(self.w.size)
        for k in range(self.k):
            ix = index_used[k]
            got = self.memo.get((k, ix.tobytes()))
            if got is None:  # (the jackknife run that deletes fold k repeats the full run's)
                pi = self._stack(k, ix)
                inc, dec = self.cand[frozenset((k,))]
                Nk, rows = self.N[k], self.rows[k]
                nk = float(Nk.sum())
                m = (float((inc * Nk).sum()) / nk, float((dec * Nk).sum()) / nk,
                     float(self.Sw[k].sum()) / nk)
                table = pi[0] * inc / m[0] + pi[1] * dec / m[1]
                wk = np.maximum(table[self.uc[rows]] + (pi[2] / m[2]) * self.w[rows], FLOOR)
                wk /= wk.mean()
                got = (pi, wk)
                if len(self.memo) < self.k:
                    self.memo[(k, ix.tobytes())] = got
            out[self.rows[k]] = got[1]
        return out


def _tail_factor(v: np.ndarray, reward: np.ndarray, resid: np.ndarray, lab: np.ndarray,
                 psi_e: float, phi_e: np.ndarray) -> float:
    """``sqrt(max(1, design/sample))``: the residual term's design-based variance (every row's
    weight, the residual's second moment per reward region among the labelled rows) against
    the labelled rows' sample variance."""
    n, m = lab.size, int(np.count_nonzero(lab))
    sample = float((phi_e * phi_e).sum())
    if not sample > 0.0:
        return 1.0
    e2 = resid[lab] ** 2
    regions = max(1, min(REGIONS, m // ROWS_PER_REGION))
    if regions > 1:
        edges = np.quantile(reward[lab], np.linspace(0.0, 1.0, regions + 1)[1:-1])
        region = np.searchsorted(edges, reward)
        cnt = np.bincount(region[lab], minlength=regions)
        h = np.bincount(region[lab], weights=e2, minlength=regions)
        h = np.where(cnt > 0, h / np.maximum(cnt, 1), e2.mean())[region]
    else:
        h = e2.mean()
    design = float((v * v * h).sum()) * n / m - n * psi_e * psi_e
    return float(np.sqrt(design / sample)) if design > sample else 1.0


#: What :func:`run` computes for each target.
ESTIMATORS = ("dr-cpo", "calibrated-ips", "direct")


def run(data: dict[str, np.ndarray], k: int = 5, seed: int = 0,
        fold_of_prompt: np.ndarray | None = None, estimator: str = "dr-cpo") -> dict[str, np.ndarray]:
    """The logging policy's value, then each target's DR-CPO estimate (targets in the order of
    their ``lp_*`` keys, sorted): estimates, SEs, 95% intervals (``fold_of_prompt``: each
    prompt's fold, to check the numbers against cje's with its folds). ``estimator=
    "calibrated-ips"``: calibrated IPS instead, ``ψ = Σ w̃ R / Σ w̃ + Σ w (L/p_L) e / Σ w`` with
    influence ``[w (R − ψ_R) − mean] + w((L/p_L) e − ψ_e) − ψ_e (L/p_L − 1)`` (the same SIMCal-W
    weights and residual term; the fresh draws are not read). ``estimator="direct"``: each
    target's mean calibrated reward over its (unlabelled) fresh draws, its influence values
    clustered by their prompts; no weights."""
    import pandas as pd

    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    dr = estimator == "dr-cpo"
    direct = estimator == "direct"

    prompt, s, y = data["prompt"], data["s"], data["y"]
    fprompt, fpol, fs = data["fresh_prompt"], data["fresh_policy"], data["fresh_s"]
    targets = sorted(c for c in data if c.startswith("lp_") and c != "lp_base")
    n = s.size
    n_prompts = int(max(prompt.max(), fprompt.max())) + 1
    lab = ~np.isnan(y)
    m = int(np.count_nonzero(lab))
    if fold_of_prompt is None:
        fold_of_prompt = all_folds(prompt, lab, n_prompts, k, seed)
    fold, ffold = fold_of_prompt[prompt], fold_of_prompt[fprompt]
    # distinct scores of the logged rows and the fresh draws (sorted: the score order)
    code_all, distinct = pd.factorize(np.concatenate([s, fs]), sort=True)
    n_u = len(distinct)
    code, fcode = code_all[:n], code_all[n:]
    cal = _Calibration(code[lab], y[lab], fold[lab], n_u, k)
    cell = fold * n_u + code
    y0 = np.where(lab, y, 0.0)
    scale = np.where(lab, n / m, 0.0)  # L / p_L
    # the values the logged rows use, in score order (SIMCal-W's candidates live on them)
    present = np.bincount(code, minlength=n_u) > 0
    used = np.flatnonzero(present)
    uc = (np.cumsum(present) - 1)[code]
    rows = [np.flatnonzero(fold == j) for j in range(k)]

    per_target = []
    for j, t in enumerate(targets):
        if direct:  # the target's fresh draws: their cells and prompts (no weights at all)
            sel = fpol == j
            per_target.append((fcode[sel], fprompt[sel]))
            continue
        lw = data[t] - data["lp_base"]
        e = np.exp(lw - lw.max())
        w = e * (n / e.sum())
        ess = float(w.sum()) ** 2 / float((w * w).sum()) / n
        kk = min(max(10, n // 20), n // 10, n - 1)
        top = np.sort(np.partition(w, n - kk - 1)[n - kk - 1:])[::-1]  # the kk + 1 largest
        hill = float(kk / (np.log(top[:kk]) - np.log(top[kk])).sum()) if top[0] != top[kk] else np.nan
        if ess < ESS_RESIDUAL or hill < HILL_RESIDUAL:
            raise NotImplementedError(f"target {t}: ESS {ess:.3f}, Hill {hill:.2f}: cje weights the "
                                      "residual by the stabilised weights here (not in this script)")
        sel = fpol == j
        fp, fc = fprompt[sel], ffold[sel] * n_u + fcode[sel]
        count = np.bincount(fp, minlength=n_prompts)
        if not dr:  # calibrated IPS reads no fresh draws
            g_cells = g_avg = None
        elif count.max() == 1 and (count[prompt] == 1).all():  # one draw per prompt: its cell
            at = np.empty(n_prompts, dtype=np.int64)
            at[fp] = np.arange(fp.size)
            g_cells, g_avg = fc[at[prompt]], None
        else:
            if (count[prompt] == 0).any():
                raise ValueError(f"target {t}: logged prompts without fresh draws")
            g_cells, g_avg = None, (fp, fc, count)
        per_target.append((w, ess < TAIL_ESS, g_cells, g_avg,
                           _Simcal(w, uc, fold, lab, y, rows, k, used.size)))

    def one(deleted: frozenset[int], with_phi: bool) -> tuple[list[float], list[np.ndarray]]:
        full, index = cal.run(deleted)
        reward = full[code]
        oof = np.take(index, cell)
        resid = np.where(lab, y0 - oof, 0.0)
        x = resid * scale
        vals = [float(reward.mean() + resid.sum() / m)]
        phis = [reward - reward.mean() + scale * (resid - resid.sum() / m)] if with_phi else []
        if direct:  # each target's mean calibrated reward over its fresh draws
            for fc, _ in per_target:
                r = full[fc]
                vals.append(float(r.mean()))
                if with_phi:
                    phis.append(r - r.mean())
            return vals, phis
        corr = reward - oof if dr else reward  # DR-CPO: R − q, q = f^(−fold)(S)
        index_used = index[:, used]
        for w, tail, g_cells, g_avg, sc in per_target:
            ws = sc.weights(index_used)
            if not dr:
                g = np.zeros(1)
            elif g_cells is not None:
                g = np.take(index, g_cells)
            else:
                fp, fc, count = g_avg
                g = (np.bincount(fp, weights=np.take(index, fc), minlength=count.size)
                     / np.maximum(count, 1))[prompt]
            psi_g = float(g.mean())
            psi_c = float((ws * corr).sum() / ws.sum())
            psi_e = float((w * x).sum() / w.sum())
            vals.append(psi_g + psi_c + psi_e)
            if with_phi:
                phi_c = w * (corr - psi_c)
                phi_c -= phi_c.mean()
                phi_e = w * (x - psi_e) - psi_e * (scale - 1.0)
                if tail:
                    phi_e *= _tail_factor(w, reward, resid, lab, psi_e, phi_e)
                phis.append((g - psi_g) + phi_c + phi_e)
        return vals, phis

    theta, phis = one(frozenset(), True)
    clusters = [prompt] + ([fp for _, fp in per_target] if direct else [prompt] * len(targets))
    var_if = np.array([_cluster_var(phi, cl, n_prompts) for phi, cl in zip(phis, clusters, strict=True)])
    reps = np.array([one(frozenset({d}), False)[0] for d in range(k)])
    var_cal = (k - 1) / k * ((reps - reps.mean(axis=0)) ** 2).sum(axis=0)
    theta = np.array(theta)
    se = np.sqrt(var_if + var_cal)
    return {"policies": ["base", *targets], "estimate": theta, "se": se, "var_if": var_if,
            "var_cal": var_cal, "ci_low": theta - Z95 * se, "ci_high": theta + Z95 * se}


def check(rows: int, seed: int, fresh_per_prompt: int, estimator: str = "dr-cpo") -> float:
    """Print :func:`run` beside ``cje.analyze(..., estimator=estimator)`` (cje's folds) on the
    frames of ``make_offpolicy_eval``; return the largest relative difference of the SEs."""
    import warnings

    import pandas as pd

    import cje
    from cje.data import prompt_folds

    warnings.simplefilter("ignore")
    sim = cje.synthetic.make_offpolicy_eval(rows, oracle_fraction=0.10,
                                            n_fresh_per_prompt=fresh_per_prompt, rng=seed)
    data = codes_from_frames(sim.logged, sim.fresh, sim.judge_scale, sim.label_scale)
    _, ids = pd.factorize(pd.concat([sim.logged["prompt_id"], sim.fresh["prompt_id"]],
                                    ignore_index=True))
    lab_prompt = np.zeros(len(ids), dtype=bool)
    lab_prompt[data["prompt"][~np.isnan(data["y"])]] = True
    out = run(data, fold_of_prompt=prompt_folds(np.asarray(ids, dtype=object), lab_prompt, 5, 0),
              estimator=estimator)
    rep = cje.analyze(sim.logged, fresh_draws=sim.fresh, estimator=estimator,
                      judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    worst = 0.0
    for i, key in enumerate(out["policies"]):
        e = rep["base" if key == "base" else key.split("_", 2)[2]]
        rel = abs(out["se"][i] - e.se) / e.se
        worst = max(worst, rel)
        print(f"{e.policy:9s} estimate {out['estimate'][i]:.15f} (cje {e.estimate:.15f}, "
              f"diff {out['estimate'][i] - e.estimate:.1e}); SE {out['se'][i]:.12f} (cje "
              f"{e.se:.12f}, rel. diff {rel:.1e}; var_IF {abs(out['var_if'][i] / e.var_if - 1):.1e}, "
              f"var_cal {abs(out['var_cal'][i] / e.var_cal - 1):.1e})")
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=None, help="default 10^6 (--check: 10^5)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--check", action="store_true", help="compare with cje (see check())")
    ap.add_argument("--estimator", choices=ESTIMATORS, default="dr-cpo")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh-per-prompt", type=int, default=1)
    ns = ap.parse_args()
    if ns.check:
        check(ns.rows or 100_000, ns.seed, ns.fresh_per_prompt, ns.estimator)
        return
    ns.rows = ns.rows or 1_000_000
    data = make_data(ns.rows)
    out, cpu = timed(lambda d: run(d, estimator=ns.estimator), data, ns.repeats)
    print(f"bare {ns.estimator}, {ns.rows:,} logged rows x 3 targets + {data['fresh_s'].size:,} fresh draws: "
          f"best {min(cpu):.3f} s CPU, median {statistics.median(cpu):.3f} s; estimates "
          f"{np.round(out['estimate'], 4).tolist()}")


if __name__ == "__main__":
    main()
