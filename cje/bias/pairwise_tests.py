"""Pairwise forms of the verbosity and self-preference diagnostics (docs: Judge bias).

Both tests compare the judge with human verdicts on the same pairs (column ``human_winner``),
so they measure what the judge does *beyond* what humans see:

* :func:`excess_length_preference` — ``P_judge(longer wins) − P_human(longer wins)``;
  mitigation :func:`length_controlled_win_rates`;
* :func:`self_preference_gap` — the equal-opportunity gap
  ``P(judge picks x | x of the judge's family, human picks x) −
  P(judge picks x | x of another family, human picks x)`` with a Newcombe interval
  (:func:`newcombe_interval`, built on :func:`wilson_interval`).

The data contract is that of :func:`cje.bias.position.position`; each verdict row counts (both
orders, every run), prompts are the clusters. Each result sets ``details["practically_relevant"]``
(the CI lies entirely outside ``[−0.05, 0.05]``: a difference of less than 5 percentage points in
a win or agreement rate is treated as negligible) and
``flagged = p_holm < alpha and practically_relevant``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import expit, ndtr, ndtri

from cje.bias._result import BiasResult
from cje.errors import CJEInputError, CJEWarning, check_alpha
from cje.inference import (
    check_n_bootstrap,
    cluster_bootstrap_totals,
    cluster_bootstrap_weights,
    cluster_correlation,
    cluster_effective_size,
    cluster_variance,
    percentile_interval,
    t_pvalue,
)
from cje.pairwise._common import _check_families, _few_prompts_note, _zero_width_note, family_key, family_keys
from cje.pairwise.verdicts import load_pairs

__all__ = [
    "LENGTH_COLUMNS",
    "RELEVANCE_MARGIN",
    "SELF_COLUMNS",
    "excess_length_preference",
    "length_controlled_win_rates",
    "newcombe_interval",
    "self_preference_gap",
    "wilson_interval",
]

#: Columns :func:`excess_length_preference` needs.
LENGTH_COLUMNS: tuple[str, ...] = ("prompt_id", "winner", "human_winner", "len_a", "len_b")
#: Columns :func:`self_preference_gap` needs.
SELF_COLUMNS: tuple[str, ...] = (
    "prompt_id",
    "a_id",
    "b_id",
    "winner",
    "human_winner",
    "a_family",
    "b_family",
    "judge_family",
)
#: A rate difference whose CI lies entirely outside ``[−margin, margin]`` is practically relevant.
RELEVANCE_MARGIN: float = 0.05

_LC_COLUMNS = ("prompt_id", "a_id", "b_id", "slot_a", "winner", "len_a", "len_b")
_SCORE = np.array([1.0, 0.0, 0.5])  # a's score for winner codes a, b, tie


# ----------------------------------------------------------------------------- verbosity


def excess_length_preference(
    pairs: Any,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 2000,
    rng: int | np.random.Generator | None = None,
    judge: str | None = None,
) -> BiasResult:
    """Excess preference of a pairwise judge for the longer response, relative to humans.

    Over verdict rows with a human verdict and different lengths (``len_a != len_b``), each
    verdict scores the longer item 1 (it won), ½ (tie) or 0; the effect is
    ``P_judge(longer wins) − P_human(longer wins)``, the mean of the row-wise difference. It is
    zero when the judge favours length exactly as much as humans do. (When length goes with
    quality, any other distortion of the judge — e.g. judge verdicts averaged over a position
    bias are less extreme than the human's — also moves this difference; compare with the
    length-controlled win rates.)

    Interval: expanded percentile prompt-cluster bootstrap (Bayesian exponential prompt weights;
    :func:`cje.inference.expanded_alpha`; docs: Methods › Inference). Test: cluster-robust t test
    of the mean difference (clusters = prompts, ``G − 1`` degrees of freedom). Flag rule:
    ``flagged = p_holm < alpha and practically_relevant`` with ``practically_relevant`` = CI entirely outside
    ``[−RELEVANCE_MARGIN, RELEVANCE_MARGIN]`` = [−0.05, 0.05].

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
        Verdicts with ``prompt_id``, ``winner``, ``human_winner``, ``len_a``, ``len_b`` (tokens).
        Rows without a human verdict are left out.
    alpha : float, default 0.05
    n_bootstrap : int, default 2000
    rng : int, numpy.random.Generator or None
    judge : str, optional
        Which judge, when a ``judge`` column holds several.

    Returns
    -------
    BiasResult
        ``bias="verbosity"``; ``details`` with ``judge_longer_rate``, ``human_longer_rate``,
        ``n_equal_length`` and ``n_without_human`` (rows left out) and ``practically_relevant``.

    Examples
    --------
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(300, length_effect=1.0, rng=0)
    >>> res = excess_length_preference(sim.pairs, rng=0)
    >>> truth = sim.truth["excess_length_preference"]
    >>> round(truth, 3), bool(res.ci_low < truth < res.ci_high)
    (0.173, True)
    >>> res.flagged
    True
    """
    alpha = check_alpha(alpha)
    n_bootstrap = check_n_bootstrap(n_bootstrap, minimum=50)
    what = "excess length preference (pairwise verbosity; needs human verdicts)"
    d = load_pairs(pairs, LENGTH_COLUMNS, what, judge)
    assert d.w is not None and d.h is not None and d.len_a is not None and d.len_b is not None
    has_h = d.h >= 0
    differ = d.len_a != d.len_b
    use = has_h & differ
    if not use.any():
        raise CJEInputError(
            f"{what}: no row has both a human verdict and two responses of different length "
            f"({int((~has_h).sum())} rows lack human_winner, {int((~differ).sum())} have "
            "len_a == len_b)."
        )
    longer_a = d.len_a[use] > d.len_b[use]
    s_j = _SCORE[d.w[use]]
    s_h = _SCORE[d.h[use]]
    j = np.where(longer_a, s_j, 1.0 - s_j)
    hum = np.where(longer_a, s_h, 1.0 - s_h)
    diff = j - hum
    effect = float(diff.mean())
    g = pd.factorize(d.prompt[use])[0]
    n_prompts = int(g.max()) + 1
    if n_prompts < 2:
        raise CJEInputError(f"{what}: needs verdicts on at least 2 prompts (got 1).")
    var, _ = cluster_variance(diff - effect, g)
    p_value = t_pvalue(effect, math.sqrt(var), n_prompts - 1)
    per_g = np.column_stack([np.bincount(g, weights=diff), np.bincount(g)])
    tot = cluster_bootstrap_totals(per_g, n_bootstrap, rng)
    lo, hi = percentile_interval(tot[:, 0] / tot[:, 1], alpha, n_clusters=n_prompts)
    relevant = bool(lo > RELEVANCE_MARGIN or hi < -RELEVANCE_MARGIN)
    few = _few_prompts_note(n_prompts, what)
    if few:
        warnings.warn(few, CJEWarning, stacklevel=2)
    # never "no relevant bias" from a bootstrap over too few prompts to trust its interval
    negligible = bool(-RELEVANCE_MARGIN <= lo and hi <= RELEVANCE_MARGIN and few is None)
    details = {
        "judge_longer_rate": float(j.mean()),
        "human_longer_rate": float(hum.mean()),
        "n_rows": int(use.sum()),
        "n_equal_length": int((has_h & ~differ).sum()),
        "n_without_human": int((~has_h).sum()),
        "se": math.sqrt(var),
        "practically_relevant": relevant,
        "negligible": negligible,
        "relevance_margin": RELEVANCE_MARGIN,
        "ci_method": f"prompt-cluster bootstrap (B = {n_bootstrap}, expanded percentile)",
    }
    return BiasResult(
        bias="verbosity",
        method=(
            "excess P(longer wins), judge − human (ties ½); cluster-robust t test; "
            f"prompt-cluster bootstrap CI (B = {n_bootstrap})"
        ),
        effect=effect,
        effect_name="P_judge(longer wins) − P_human(longer wins) (probability difference)",
        ci_low=lo,
        ci_high=hi,
        alpha=alpha,
        p_value=p_value,
        p_holm=p_value,
        flagged=bool(p_value < alpha and relevant),
        n=int(use.sum()),
        n_prompts=n_prompts,
        judge=d.judge,
        mitigation=(
            "Report length-controlled win rates (cje.bias.pairwise_tests.length_controlled_win_rates: "
            "the judge's length preference regressed out); for pointwise scores, add length as a "
            "covariate of the two-stage calibrator."
        ),
        details=details,
        warnings=(few,) if few else (),
    )


def length_controlled_win_rates(
    pairs: Any,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    rng: int | np.random.Generator | None = None,
    judge: str | None = None,
) -> pd.DataFrame:
    """Win rates with the judge's length (and position) preference regressed out.

    Fits the logistic (Bradley–Terry) model of the judge verdict
    ``logit P(a wins) = θ_a − θ_b + β·(+1 if a in slot 1 else −1) + γ·Δz``, with
    ``Δz = (ln len_a − ln len_b) / sd`` the standardised log-length difference (``sd`` = standard
    deviation of the log lengths of all rows' responses) and ties counted as ½ a win
    (quasi-likelihood). Identification: ``θ`` of the first item (sorted) is 0. An item's
    **length-controlled win rate** is its predicted win probability at zero length difference and
    no slot advantage, averaged over all other items: ``mean_k σ(θ_i − θ_k)``. Intervals:
    expanded percentile prompt-cluster bootstrap (Bayesian exponential prompt weights; NaN with verdicts on
    one prompt, and a warning below 30 prompts or when an interval has zero width). A ridge
    penalty of 1e-6 keeps the fit finite when an item never loses.

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
        Verdicts with ``prompt_id``, ``a_id``, ``b_id``, ``slot_a``, ``winner``, ``len_a``,
        ``len_b``.
    alpha : float, default 0.05
    n_bootstrap : int, default 1000
    rng : int, numpy.random.Generator or None
    judge : str, optional
        Which judge, when a ``judge`` column holds several.

    Returns
    -------
    pandas.DataFrame
        One row per item: ``item``, ``n_comparisons``, ``win_rate`` (raw, ties ½),
        ``lc_win_rate``, ``lc_ci_low``, ``lc_ci_high``, ``strength`` (``θ``, log-odds vs the first
        item). ``DataFrame.attrs`` holds ``length_logodds_per_sd`` (γ) with
        ``length_ci``, ``position_logodds`` (β), ``alpha`` and ``n_bootstrap``.

    Examples
    --------
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(300, strengths=[0, 0, 0], items=("A", "B", "C"),
    ...                          length_effect=1.0, length_means=[1.0, 0, 0], rng=0)
    >>> lc = length_controlled_win_rates(sim.pairs, n_bootstrap=200, rng=0)
    >>> lc.loc[0, "item"], bool(lc.loc[0, "win_rate"] > 0.6), bool(abs(lc.loc[0, "lc_win_rate"] - 0.5) < 0.05)
    ('A', True, True)
    """
    alpha = check_alpha(alpha)
    n_bootstrap = check_n_bootstrap(n_bootstrap, minimum=50)
    what = "length-controlled win rates"
    d = load_pairs(pairs, _LC_COLUMNS, what, judge)
    assert d.a_id is not None and d.b_id is not None and d.slot is not None and d.w is not None
    assert d.len_a is not None and d.len_b is not None
    items = sorted(set(d.a_id.tolist()) | set(d.b_id.tolist()))
    k = len(items)
    code = {name: i for i, name in enumerate(items)}
    ca = np.array([code[v] for v in d.a_id])
    cb = np.array([code[v] for v in d.b_id])
    n = ca.size
    items_x = np.zeros((n, k))
    items_x[np.arange(n), ca] += 1.0
    items_x[np.arange(n), cb] -= 1.0
    slot_col = np.where(d.slot == 1, 1.0, -1.0)
    log_len = np.log(np.concatenate([d.len_a, d.len_b]))
    sd = float(log_len.std())
    has_len = sd > 0
    columns = [items_x[:, 1:], slot_col[:, None]]  # θ of the first item is 0 (reference)
    if has_len:
        columns.append(((np.log(d.len_a) - np.log(d.len_b)) / sd)[:, None])
    else:
        warnings.warn("All responses have the same length: nothing to control for.", CJEWarning, stacklevel=2)
    x = np.hstack(columns)
    y = _SCORE[d.w]
    coef = _logit_fit(x, y, np.ones((1, n)))[0]
    g = d.prompt
    n_prompts = int(g.max()) + 1
    # one batched fit per chunk of replicates, each row weighted by its prompt's weight
    rep = np.vstack([_logit_fit(x, y, wg[:, g], start=coef)
                     for wg in cluster_bootstrap_weights(n_prompts, n_bootstrap, rng, width=n * x.shape[1])])

    def lc_rates(c: np.ndarray) -> np.ndarray:
        theta = np.concatenate([np.zeros(c.shape[:-1] + (1,)), c[..., : k - 1]], axis=-1)
        pw = expit(theta[..., :, None] - theta[..., None, :])
        return (pw.sum(axis=-1) - 0.5) / (k - 1)  # drop the self-comparison σ(0) = ½

    lc = lc_rates(coef)
    lc_lo, lc_hi = percentile_interval(lc_rates(rep), alpha, n_clusters=n_prompts)
    few = _few_prompts_note(n_prompts, what)
    if few:
        warnings.warn(few, CJEWarning, stacklevel=2)
    if n_prompts < 2:  # one prompt: every resample is the data; [x, x] would claim certainty
        lc_lo, lc_hi = np.full(k, np.nan), np.full(k, np.nan)
    zero = _zero_width_note(items, lc_lo, lc_hi, what)
    if zero:
        warnings.warn(zero, CJEWarning, stacklevel=2)
    raw_num = np.bincount(ca, weights=y, minlength=k) + np.bincount(cb, weights=1.0 - y, minlength=k)
    raw_den = np.bincount(ca, minlength=k) + np.bincount(cb, minlength=k)
    out = pd.DataFrame(
        {
            "item": items,
            "n_comparisons": raw_den.astype(np.int64),
            "win_rate": raw_num / raw_den,
            "lc_win_rate": lc,
            "lc_ci_low": lc_lo,
            "lc_ci_high": lc_hi,
            "strength": np.concatenate([[0.0], coef[: k - 1]]),
        }
    )
    out.attrs.update(
        position_logodds=float(coef[k - 1]),
        length_logodds_per_sd=float(coef[k]) if has_len else 0.0,
        length_ci=percentile_interval(rep[:, k], alpha, n_clusters=n_prompts) if has_len else (0.0, 0.0),
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        judge=d.judge,
    )
    return out


def _logit_fit(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, start: np.ndarray | None = None, ridge: float = 1e-6
) -> np.ndarray:
    """Weighted logistic regression (fractional ``y`` allowed), batched over rows of ``w``.

    Newton–Raphson on ``Σ_i w_bi [y_i η_i − log(1 + e^{η_i})] − ridge/2 ‖β‖²`` for each
    weight vector ``w_b``; returns the ``(B, p)`` coefficients.
    """
    b, p = w.shape[0], x.shape[1]
    coef = np.zeros((b, p)) if start is None else np.tile(start, (b, 1))
    eye = ridge * np.eye(p)
    for _ in range(100):
        mu = expit(coef @ x.T)  # (B, n)
        grad = (w * (y - mu)) @ x - ridge * coef
        hess = np.matmul((w * mu * (1.0 - mu))[:, None, :] * x.T[None], x) + eye
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        coef = coef + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return coef


# ----------------------------------------------------------------------------- self-preference


def wilson_interval(x: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``x / n`` (``x``, ``n`` may be fractional).

    ``(p + z²/2n ± z √(p(1−p)/n + z²/4n²)) / (1 + z²/n)`` with ``z = Φ⁻¹(1 − alpha/2)``.

    Parameters
    ----------
    x, n : float
        Successes and trials (may be fractional effective counts).
    alpha : float, default 0.05
        ``1 − alpha`` interval.

    Returns
    -------
    (lower, upper)

    Examples
    --------
    >>> [round(v, 4) for v in wilson_interval(56, 70)]
    [0.6918, 0.877]
    """
    z = float(ndtri(1 - alpha / 2))
    return _wilson(x / n, n, z)


def newcombe_interval(
    x1: float, n1: float, x2: float, n2: float, alpha: float = 0.05, *, rho: float = 0.0
) -> tuple[float, float]:
    """Newcombe's hybrid score interval for ``p1 − p2`` (Newcombe 1998, method 10).

    With Wilson limits ``(l_i, u_i)`` of each proportion (:func:`wilson_interval`):
    ``L = d − √((p1 − l1)² − 2ρ(p1 − l1)(u2 − p2) + (u2 − p2)²)`` and
    ``U = d + √((u1 − p1)² − 2ρ(u1 − p1)(p2 − l2) + (p2 − l2)²)``. ``rho = 0`` (independent
    samples) is Newcombe's method 10; a correlation ``rho`` between the two estimates gives the
    MOVER form of Zou & Donner (2008), as in Newcombe's (1998b) interval for paired data.

    Parameters
    ----------
    x1, n1, x2, n2 : float
        Successes and trials of the two samples (may be fractional effective counts).
    alpha : float, default 0.05
    rho : float, default 0.0
        Correlation between the two proportion estimates, in [−1, 1].

    Returns
    -------
    (lower, upper)

    Examples
    --------
    >>> [round(v, 4) for v in newcombe_interval(56, 70, 48, 80)]  # Newcombe (1998) Table II (a)
    [0.0524, 0.3339]
    """
    z = float(ndtri(1 - alpha / 2))
    return _newcombe(x1 / n1, n1, x2 / n2, n2, z, float(np.clip(rho, -1.0, 1.0)))


def self_preference_gap(pairs: Any, *, alpha: float = 0.05, judge: str | None = None) -> BiasResult:
    """Equal-opportunity self-preference gap of a pairwise judge, against human verdicts.

    Uses the pairs where exactly one item belongs to the judge's family (``judge_family``) and
    the human picked a winner (no tie). With ``x`` the human's pick, the effect is
    ``P(judge picks x | x own-family, human picks x) − P(judge picks x | x other-family,
    human picks x)``: how much more readily the judge agrees with a human who prefers the judge's
    own family than with one who prefers the other item (judge ties count as not picking ``x``).
    It is zero for an unbiased judge only when own- and other-family items are equally good on
    average: when the own family is better, the human's "own" picks are easier calls and the gap
    is positive without any self-preference (``details`` also reports the plain own-family win
    rates of judge and human).

    Interval: Newcombe's hybrid score interval (:func:`newcombe_interval`) with each Wilson
    interval computed at the prompt-cluster **effective sample size** ``n_eff = p̂(1 − p̂) /
    Var_cluster(p̂)`` (capped at the row count; the number of prompts when ``p̂`` is 0 or 1), so
    that the rows of one prompt (both orders, runs, several pairs) are not counted as independent,
    and with the prompt-cluster correlation ``ρ̂`` of the two rates in the MOVER combination (the
    same prompts feed both groups; in simulation ``ρ̂ ≈ −0.1`` and ignoring it under-covers).
    With one verdict per prompt, ``n_eff = n`` and ``ρ̂ = 0``: exactly Newcombe's method 10.
    p-value: the ``alpha`` at which the interval's bound touches 0 (test and interval agree). Flag rule:
    ``flagged = p_holm < alpha and practically_relevant``, ``practically_relevant`` = CI entirely
    outside [−0.05, 0.05]. A structural warning is always given: the judge's family is among the
    compared items' families. Mixed pairs on one prompt are refused (one cluster has no variance);
    below 30 prompts a warning is added and the verdict is never "no relevant bias".

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
        Verdicts with ``prompt_id``, ``a_id``, ``b_id``, ``winner``, ``human_winner``,
        ``a_family``, ``b_family``, ``judge_family``.
    alpha : float, default 0.05
    judge : str, optional
        Which judge, when a ``judge`` column holds several.

    Returns
    -------
    BiasResult
        ``bias="self_preference"``; ``details`` with ``p_own``, ``p_other``, ``n_own``,
        ``n_other``, ``n_eff_own``, ``n_eff_other``, ``rho``, ``judge_family``, ``structural_risk``,
        ``judge_own_win_rate`` / ``human_own_win_rate`` (over the mixed pairs, ties ½) and
        ``practically_relevant``.

    Examples
    --------
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(300, strengths=[0, 0, 0, 0], self_preference=1.0,
    ...                          judge_family="A", rng=0)
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     res = self_preference_gap(sim.pairs)
    >>> res.ci_low < sim.truth["self_preference_gap"] < res.ci_high, res.flagged
    (True, True)
    """
    alpha = check_alpha(alpha)
    what = "self-preference gap (needs human verdicts and model families)"
    d = load_pairs(pairs, SELF_COLUMNS, what, judge)
    assert d.w is not None and d.h is not None and d.judge_family is not None
    assert d.a_family is not None and d.b_family is not None
    _check_families({"judge_family": d.judge_family, "a_family": d.a_family,
                     "b_family": d.b_family})
    fams = pd.unique(family_keys(d.judge_family))
    if len(fams) > 1:
        raise CJEInputError(
            f"{what}: the 'judge_family' column holds several families ({', '.join(map(str, fams[:5]))}) "
            "for one judge; give each judge one family (and a 'judge' column when there are several)."
        )
    jf = family_key(fams[0])
    own_a = family_keys(d.a_family) == jf
    own_b = family_keys(d.b_family) == jf
    mixed = own_a ^ own_b
    if not mixed.any():
        present = sorted(set(d.a_family.tolist()) | set(d.b_family.tolist()))
        raise CJEInputError(
            f"{what}: no pair has exactly one item of the judge's family {jf!r} (item families: "
            f"{', '.join(present)}); there is no own-vs-other comparison to test."
        )
    use = mixed & (d.h >= 0) & (d.h <= 1)
    x_own = np.where(d.h == 0, own_a, own_b)
    agree = (d.w == d.h).astype(float)
    g_own, g_oth = use & x_own, use & ~x_own
    if not g_own.any() or not g_oth.any():
        missing = "the judge's family" if not g_own.any() else "another family"
        raise CJEInputError(
            f"{what}: humans never picked an item of {missing} in the mixed pairs; both groups are "
            "needed (collect more human verdicts)."
        )
    n_prompts = int(np.unique(d.prompt[use]).size)
    if n_prompts < 2:  # one cluster: its variance is 0 and the effective sizes meaningless
        raise CJEInputError(f"{what}: needs mixed pairs with human verdicts on at least 2 prompts "
                            "(prompts are the clusters of the interval); got 1.")
    few = _few_prompts_note(n_prompts, what)
    p1, n1, ne1 = _clustered_rate(agree[g_own], d.prompt[g_own])
    p2, n2, ne2 = _clustered_rate(agree[g_oth], d.prompt[g_oth])
    rho = cluster_correlation(
        agree[g_own], d.prompt[g_own], agree[g_oth], d.prompt[g_oth], int(d.prompt.max()) + 1
    )
    z = float(ndtri(1 - alpha / 2))
    lo, hi = _newcombe(p1, ne1, p2, ne2, z, rho)
    effect = p1 - p2
    p_value = _newcombe_pvalue(p1, ne1, p2, ne2, rho)
    relevant = bool(lo > RELEVANCE_MARGIN or hi < -RELEVANCE_MARGIN)
    # never "no relevant bias" from too few prompts to trust the clustered interval
    negligible = bool(-RELEVANCE_MARGIN <= lo and hi <= RELEVANCE_MARGIN and few is None)
    if few:
        warnings.warn(few, CJEWarning, stacklevel=2)
    # Plain own-family win rates over the mixed pairs (judge vs human), for context.
    mixed_h = mixed & (d.h >= 0)
    s_own_j = np.where(own_a, _SCORE[d.w], 1.0 - _SCORE[d.w])[mixed]
    s_own_h = np.where(own_a, _SCORE[np.maximum(d.h, 0)], 1.0 - _SCORE[np.maximum(d.h, 0)])[mixed_h]
    own_items = sorted(set(np.concatenate([np.asarray(d.a_id)[own_a], np.asarray(d.b_id)[own_b]]).tolist()))
    note = (
        f"Structural self-preference risk: the judge's family {jf!r} is among the compared items' "
        f"families (its own items: {', '.join(own_items)}). Prefer a judge from another family or "
        "leave-family-out panel aggregation."
    )
    warnings.warn(note, CJEWarning, stacklevel=2)
    details = {
        "p_own": p1,
        "p_other": p2,
        "n_own": n1,
        "n_other": n2,
        "n_eff_own": ne1,
        "n_eff_other": ne2,
        "rho": rho,
        "judge_family": jf,
        "own_items": tuple(own_items),
        "structural_risk": True,
        "judge_own_win_rate": float(s_own_j.mean()),
        "human_own_win_rate": float(s_own_h.mean()),
        "practically_relevant": relevant,
        "negligible": negligible,
        "relevance_margin": RELEVANCE_MARGIN,
        "ci_method": "Newcombe hybrid score (MOVER) at prompt-cluster effective sample sizes and correlation",
    }
    return BiasResult(
        bias="self_preference",
        method="equal-opportunity gap vs human verdicts; Newcombe hybrid score CI (prompt-clustered n_eff)",
        effect=effect,
        effect_name=(
            "P(judge picks x | x own family, human picks x) − P(judge picks x | x other family, "
            "human picks x) (probability difference)"
        ),
        ci_low=lo,
        ci_high=hi,
        alpha=alpha,
        p_value=p_value,
        p_holm=p_value,
        flagged=bool(p_value < alpha and relevant),
        n=n1 + n2,
        n_prompts=n_prompts,
        judge=d.judge,
        mitigation=(
            "Use a judge from another model family, or aggregate a panel leaving out each item's own "
            "family (leave-family-out); with oracle labels, add 'self' as a calibrator covariate."
        ),
        details=details,
        warnings=(note,) + ((few,) if few else ()),
    )


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / denom
    half = z * math.sqrt(max(p * (1.0 - p), 0.0) / n + z * z / (4.0 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _newcombe(p1: float, n1: float, p2: float, n2: float, z: float, rho: float = 0.0) -> tuple[float, float]:
    l1, u1 = _wilson(p1, n1, z)
    l2, u2 = _wilson(p2, n2, z)
    d = p1 - p2
    lo_a, lo_b = p1 - l1, u2 - p2
    hi_a, hi_b = u1 - p1, p2 - l2
    lo = d - math.sqrt(max(lo_a * lo_a - 2.0 * rho * lo_a * lo_b + lo_b * lo_b, 0.0))
    hi = d + math.sqrt(max(hi_a * hi_a - 2.0 * rho * hi_a * hi_b + hi_b * hi_b, 0.0))
    return lo, hi


def _newcombe_pvalue(p1: float, n1: float, p2: float, n2: float, rho: float = 0.0) -> float:
    """Two-sided p-value: ``alpha`` at which the Newcombe interval's bound reaches 0."""
    d = p1 - p2
    if d == 0.0:
        return 1.0

    def bound(z: float) -> float:
        lo, hi = _newcombe(p1, n1, p2, n2, z, rho)
        return lo if d > 0 else -hi

    z_max = 60.0
    if bound(z_max) > 0.0:
        return float(2.0 * ndtr(-z_max))
    z_star = brentq(bound, 1e-12, z_max, xtol=1e-12)
    return float(2.0 * ndtr(-z_star))


def _clustered_rate(y: np.ndarray, prompt: np.ndarray) -> tuple[float, int, float]:
    """Rate, row count and prompt-cluster effective sample size of a 0/1 outcome."""
    g = pd.factorize(prompt)[0]
    return float(y.mean()), y.size, cluster_effective_size(y, g, int(g.max()) + 1)
