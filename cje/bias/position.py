"""Position (slot) bias of a pairwise judge, from verdicts in both orders (docs: Judge bias).

Pairwise data contract (:mod:`cje.pairwise.verdicts`, read by its ``load_pairs``): one row per
verdict with ``prompt_id``, ``a_id``, ``b_id``, ``slot_a`` (1 or 2: the slot in which item a was
shown) and ``winner`` in {"a", "b", "tie"}; optional
``judge``, ``run`` (repeats of the same order), ``human_winner``, ``len_a``, ``len_b``,
``a_family``, ``b_family``, ``judge_family``. A *pair* is (prompt_id, a_id, b_id[, judge]); its
two orders are a row with ``slot_a=1`` and a row with ``slot_a=2``. A row written with the items
swapped (``a_id``/``b_id`` exchanged) is the same pair: it is mapped to the canonical order
(``a_id`` < ``b_id`` as strings) by swapping the slot, the winner and the a/b columns.

For a pair judged in both orders, **PP** means the slot-1 item won both times (a in order 1, b in
order 2) and **RP** means the slot-2 item won both times. Under the conditional logit model
``logit P(a wins | slot) = x_pair ± β`` (``+β`` when a is in slot 1), ``P(PP)/P(RP) = e^{2β}`` for
every pair whatever its ``x_pair``, so ``β̂ = ½ ln(PP/RP)`` is the conditional MLE and the
first-slot rate ``PP/(PP+RP)`` estimates ``σ(2β)`` exactly.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cje.bias._result import BiasResult
from cje.errors import CJEInputError, CJEWarning, check_alpha
from cje.inference import check_n_bootstrap, cluster_bootstrap_totals, percentile_interval
from cje.pairwise._common import MIN_BOOTSTRAP_PROMPTS, _few_prompts_note
from cje.pairwise.verdicts import PAIR_COLUMNS, PairData, load_pairs

__all__ = [
    "FIRST_SLOT_BAND",
    "PC_WARN",
    "POSITION_COLUMNS",
    "debias_position",
    "position",
]

#: Columns every position analysis needs (the pairwise-verdicts contract).
POSITION_COLUMNS: tuple[str, ...] = PAIR_COLUMNS
#: A first-slot rate whose CI lies entirely outside this band is practically relevant.
FIRST_SLOT_BAND: tuple[float, float] = (0.45, 0.55)
#: Position consistency below this draws a warning.
PC_WARN: float = 0.80

_MITIGATION = (
    "Judge every pair in both orders and average them: p̄_a = ½[p^AB(a) + 1 − p^BA(a)] (the "
    "probability that a wins, averaged over a shown first and a shown second), or count pairs "
    "whose two orders disagree as ties; both are done by cje.bias.position.debias_position."
)


# ----------------------------------------------------------------------------- public API


def position(
    pairs: Any,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 2000,
    rng: int | np.random.Generator | None = None,
    judge: str | None = None,
) -> BiasResult:
    """Test a pairwise judge for position bias from verdicts given in both orders.

    Each pair (and run, when a ``run`` column marks repeats) judged in both orders is one unit.
    With ``n`` units: position consistency ``PC = #(same verdict in both orders) / n`` (two ties
    count as consistent); ``PP`` / ``RP`` = units whose verdict followed slot 1 / slot 2 in both
    orders; preference fairness ``PF = (RP − PP) / n`` (< 0: the first slot is favoured). The
    effect is the conditional-logit slot shift ``β̂ = ½ ln(PP/RP)`` (log-odds of the slot-1 item
    winning; > 0 favours the first slot). When ``PP`` or ``RP`` is zero, 0.5 is added to both
    (continuity correction) and a warning is given.

    Test and interval: when every prompt contributes one unit, the exact McNemar test
    (``scipy.stats.binomtest(PP, PP + RP)`` against ½) and a Clopper–Pearson interval for the
    first-slot rate ``r = PP/(PP+RP)`` (which estimates ``σ(2β)``). When prompts repeat (several
    pairs or runs per prompt), the clustered McNemar test of Durkalski et al. (2003) —
    ``X² = (Σ_g d_g)² / Σ_g d_g²`` with ``d_g = PP_g − RP_g`` the prompt's excess of PP units,
    referred to χ²(1) — and an expanded percentile prompt-cluster bootstrap interval
    (:func:`cje.inference.expanded_alpha`). ``ci_low``/``ci_high``
    are the interval's transform ``½ logit(r)`` to the β scale. (The exact McNemar test is exact
    only under the sharp null that no prompt has a slot preference; when the slot preference
    varies by prompt and averages out, units of one prompt share it: with six pairs per prompt and
    a prompt slot preference of SD 0.5 / 1 log-odds, the exact test rejected a first-slot rate of
    exactly ½ in 0.077 / 0.165 of data sets at α = 0.05, the clustered test in 0.046 / 0.051
    (2000 replicates each, ``simulations/results/independent_bias.md``).)

    Flag rule: ``flagged = p_holm < alpha and practically_relevant``, where
    ``practically_relevant`` means the first-slot-rate CI lies entirely outside
    ``FIRST_SLOT_BAND`` = [0.45, 0.55] (standalone, ``p_holm = p_value``). A warning is added when
    ``PC < 0.80``.

    When runs repeat an order, ``details`` also holds the flip rates: ``flip_rate_cross_order``
    (verdicts of the two orders name different winners), ``flip_rate_same_order`` (two runs of the
    same order differ: the judge's own randomness) and ``excess_flip_rate`` = cross − same, the
    inconsistency due to order beyond sampling noise, with a prompt-cluster bootstrap CI
    (``excess_flip_ci_low``/``_high``). Every pair with at least two runs of some order counts,
    all runs and run combinations used.

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
        Verdicts in the pairwise data contract (module docstring).
    alpha : float, default 0.05
        ``1 − alpha`` intervals; test level of the flag.
    n_bootstrap : int, default 2000
        Prompt-cluster bootstrap resamples (used when prompts repeat, and for the flip rates).
    rng : int, numpy.random.Generator or None
        Seed for the bootstrap.
    judge : str, optional
        Which judge to test when a ``judge`` column holds several.

    Returns
    -------
    BiasResult
        ``bias="position"``; ``effect`` = β̂; ``n`` = units; ``details`` with ``pc``, ``pf``,
        ``pp``, ``rp``, ``n_pairs``, ``n_units``, ``first_slot_rate``, ``first_slot_ci_low``,
        ``first_slot_ci_high``, ``practically_relevant``, ``ci_method`` and the flip rates.

    Raises
    ------
    CJEInputError
        Missing columns, bad values, no pair with both orders, duplicated verdicts, or several
        judges without ``judge=``.

    Examples
    --------
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(300, position_logodds=0.5, rng=0)
    >>> res = position(sim.pairs, rng=0)
    >>> res.flagged, res.ci_low < 0.5 < res.ci_high
    (True, True)
    >>> round(res.details["first_slot_rate"], 2)  # planted: sigmoid(2 * 0.5) = 0.73
    0.72
    """
    alpha = check_alpha(alpha)
    n_bootstrap = check_n_bootstrap(n_bootstrap, minimum=50)
    what = "position bias (both orders of each pair)"
    d = load_pairs(pairs, POSITION_COLUMNS, what, judge)
    units = _order_units(d, what)
    notes = list(units.notes)

    v1, v2 = units.v1, units.v2
    n = int(v1.size)
    pp_mask = (v1 == 0) & (v2 == 1)
    rp_mask = (v1 == 1) & (v2 == 0)
    pp, rp = int(pp_mask.sum()), int(rp_mask.sum())
    pc = float(np.mean(v1 == v2))
    pf = (rp - pp) / n
    disc = pp + rp

    if pp == 0 or rp == 0:
        beta = 0.5 * math.log((pp + 0.5) / (rp + 0.5))
        if disc == 0:
            notes.append(
                "No pair followed one slot in both orders (PP = RP = 0): the slot shift cannot be "
                "estimated; β̂ = 0 is reported with an unbounded interval."
            )
        else:
            notes.append(
                f"PP = {pp}, RP = {rp}: a zero cell; β̂ uses a 0.5 continuity correction "
                "(½ ln((PP + 0.5)/(RP + 0.5)))."
            )
    else:
        beta = 0.5 * math.log(pp / rp)
    rate = pp / disc if disc else float("nan")

    gen = np.random.default_rng(rng)
    n_prompts = int(np.unique(units.prompt).size)
    clustered = n_prompts < n
    if not disc:
        p_value = 1.0
    elif clustered:
        p_value = _clustered_mcnemar(pp_mask, rp_mask, units.prompt)
    else:
        p_value = float(stats.binomtest(pp, disc, 0.5).pvalue)
    if disc == 0:
        r_lo, r_hi = 0.0, 1.0
        ci_method = "none (no discordant pairs)"
    elif not clustered:
        ci = stats.binomtest(pp, disc, 0.5).proportion_ci(1 - alpha, method="exact")
        r_lo, r_hi = float(ci.low), float(ci.high)
        ci_method = "Clopper–Pearson"
    elif n_prompts < 2:
        r_lo, r_hi = 0.0, 1.0
        ci_method = "none (one prompt: no prompt-cluster interval)"
        notes.append(_few_prompts_note(n_prompts, "position bias") or "")
    else:
        if n_prompts < MIN_BOOTSTRAP_PROMPTS:
            notes.append(_few_prompts_note(n_prompts, "position bias") or "")
        g = units.prompt
        per_g = np.column_stack(
            [np.bincount(g, weights=pp_mask.astype(float)), np.bincount(g, weights=(pp_mask | rp_mask))]
        )
        tot = cluster_bootstrap_totals(per_g, n_bootstrap, gen)
        with np.errstate(invalid="ignore", divide="ignore"):
            reps = tot[:, 0] / tot[:, 1]
        r_lo, r_hi = percentile_interval(reps, alpha, n_clusters=n_prompts)
        ci_method = f"prompt-cluster bootstrap (B = {n_bootstrap}, expanded percentile)"
    ci_low, ci_high = _half_logit(r_lo), _half_logit(r_hi)
    band_lo, band_hi = FIRST_SLOT_BAND
    relevant = bool(r_hi < band_lo or r_lo > band_hi)
    # the data rule out a relevant slot preference only when the whole CI sits inside the band
    # (never from a bootstrap over too few prompts to trust its interval)
    negligible = bool(disc > 0 and band_lo <= r_lo and r_hi <= band_hi
                      and (not clustered or n_prompts >= MIN_BOOTSTRAP_PROMPTS))

    if pc < PC_WARN:
        notes.append(
            f"Position consistency PC = {pc:.2f} < {PC_WARN:.2f}: the judge changes its verdict "
            f"when the order is swapped on {1 - pc:.0%} of pairs."
        )
    details: dict[str, Any] = {
        "pc": pc,
        "pf": pf,
        "pp": pp,
        "rp": rp,
        "n_pairs": units.n_pairs,
        "n_units": n,
        "first_slot_rate": rate,
        "first_slot_ci_low": r_lo,
        "first_slot_ci_high": r_hi,
        "practically_relevant": relevant,
        "negligible": negligible,
        "relevance_band": FIRST_SLOT_BAND,
        "ci_method": ci_method,
    }
    if units.has_repeats:
        details.update(_flip_rates(d, alpha, n_bootstrap, gen))

    for msg in notes:
        warnings.warn(msg, CJEWarning, stacklevel=2)
    return BiasResult(
        bias="position",
        method=(f"slot log-odds ½ln(PP/RP) (conditional logit); "
                f"{'clustered McNemar (Durkalski)' if clustered and disc else 'exact McNemar'} test; "
                f"{ci_method} CI"),
        effect=beta,
        effect_name="slot-1 log-odds shift β (conditional logit; > 0 favours the first slot)",
        ci_low=ci_low,
        ci_high=ci_high,
        alpha=alpha,
        p_value=p_value,
        p_holm=p_value,
        flagged=bool(p_value < alpha and relevant),
        n=n,
        n_prompts=n_prompts,
        judge=d.judge,
        mitigation=_MITIGATION,
        details=details,
        warnings=tuple(notes),
    )


def debias_position(pairs: Any, *, method: str = "average", judge: str | None = None) -> pd.DataFrame:
    """Order-debiased outcome of every pair judged in both orders.

    Each verdict scores a as 1 (a wins), ½ (tie) or 0 (b wins); ``m1`` and ``m2`` are the mean
    scores over the runs of the order with a in slot 1 and in slot 2.

    * ``method="average"``: ``p_a = ½(m1 + m2)``, i.e. ``p̄_a = ½[p^AB(a) + 1 − p^BA(a)]`` with
      ``p^XY`` the probability that the first-shown item wins: both orders get equal weight, so
      a constant slot advantage cancels to first order. ``winner`` is "a" / "b" / "tie" as
      ``p_a`` is above / below / at ½.
    * ``method="ties"``: each order's verdict is "a" if its mean score is above ½, "b" if below,
      else "tie"; ``winner`` is the common verdict when the orders agree and "tie" when they
      disagree; ``p_a`` is 1, 0 or ½ accordingly.

    Pairs judged in one order only are left out with a warning.

    Parameters
    ----------
    pairs : pandas.DataFrame, polars.DataFrame, dict of arrays or path
        Verdicts in the pairwise data contract (see :func:`position`).
    method : {"average", "ties"}, default "average"
    judge : str, optional
        Which judge, when a ``judge`` column holds several.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``prompt_id``, ``a_id``, ``b_id`` (canonical order, ``a_id`` <
        ``b_id``), ``judge`` (when present), ``p_a``, ``winner``, ``consistent`` (both orders
        name the same winner) and ``n_verdicts``.

    Examples
    --------
    >>> import pandas as pd
    >>> v = pd.DataFrame({"prompt_id": ["p1"] * 4, "a_id": ["A", "A", "A", "A"],
    ...                   "b_id": ["B", "B", "C", "C"], "slot_a": [1, 2, 1, 2],
    ...                   "winner": ["a", "b", "a", "a"]})
    >>> debias_position(v)[["b_id", "p_a", "winner"]].to_dict("list")
    {'b_id': ['B', 'C'], 'p_a': [0.5, 1.0], 'winner': ['tie', 'a']}
    >>> debias_position(v, method="ties")["consistent"].tolist()
    [False, True]
    """
    if method not in ("average", "ties"):
        raise CJEInputError(f"method must be 'average' or 'ties', got {method!r}.")
    what = "debias_position (both orders of each pair)"
    d = load_pairs(pairs, POSITION_COLUMNS, what, judge)
    assert d.pair is not None and d.slot is not None and d.w is not None
    n_pairs = int(d.pair.max()) + 1
    cnt = np.zeros((n_pairs, 2))
    tot = np.zeros((n_pairs, 2))
    np.add.at(cnt, (d.pair, d.slot - 1), 1.0)
    np.add.at(tot, (d.pair, d.slot - 1), np.array([1.0, 0.0, 0.5])[d.w])
    both = (cnt > 0).all(axis=1)
    for msg in _check_both_orders(d, np.flatnonzero(~both), n_pairs, cnt, what):
        warnings.warn(msg, CJEWarning, stacklevel=2)
    m = tot[both] / cnt[both]
    verdict = np.sign(m - 0.5)  # per order: +1 a, -1 b, 0 tie
    consistent = verdict[:, 0] == verdict[:, 1]
    if method == "average":
        p_a = 0.5 * (m[:, 0] + m[:, 1])
    else:
        p_a = np.where(consistent, 0.5 + 0.5 * verdict[:, 0], 0.5)
    first_row = np.full(n_pairs, -1, dtype=np.int64)
    first_row[d.pair[::-1]] = np.arange(d.pair.size)[::-1]
    rows = first_row[both]
    assert d.a_id is not None and d.b_id is not None
    out = pd.DataFrame({"prompt_id": d.prompt_id[rows], "a_id": d.a_id[rows], "b_id": d.b_id[rows]})
    if d.judge is not None:
        out["judge"] = d.judge
    out["p_a"] = p_a
    out["winner"] = np.where(p_a > 0.5, "a", np.where(p_a < 0.5, "b", "tie")).astype(object)
    out["consistent"] = consistent
    out["n_verdicts"] = cnt[both].sum(axis=1).astype(np.int64)
    return out


# ----------------------------------------------------------------------------- internals


@dataclass(frozen=True)
class _Units:
    v1: np.ndarray  # winner code with a in slot 1, per unit
    v2: np.ndarray  # winner code with a in slot 2, per unit
    prompt: np.ndarray  # compact prompt code per unit
    n_pairs: int
    has_repeats: bool
    notes: list[str]


def _order_units(d: PairData, what: str) -> _Units:
    """Match the two orders of every pair (and run) into units."""
    assert d.pair is not None and d.slot is not None and d.w is not None
    pair, slot = d.pair, d.slot
    n_pairs = int(pair.max()) + 1
    unit = pair if d.run is None else pd.factorize(pair * (int(d.run.max()) + 1) + d.run)[0]
    n_units = int(unit.max()) + 1
    cell = np.bincount(unit * 2 + (slot - 1), minlength=2 * n_units).reshape(n_units, 2)
    if (cell > 1).any():
        u = int(np.flatnonzero((cell > 1).any(axis=1))[0])
        i = int(np.flatnonzero(unit == u)[0])
        fix = (
            "each (pair, run, slot_a) must appear once"
            if d.run is not None
            else "mark repeats of the same order with a 'run' column (0, 1, …)"
        )
        raise CJEInputError(
            f"{what}: pair {d.pair_txt(i)}{'' if d.run is None else ' (one run)'} has "
            f"{int(cell[u].max())} verdicts with the same slot_a; {fix}."
        )
    both: np.ndarray = np.asarray((cell > 0).all(axis=1))
    pair_cnt = np.zeros((n_pairs, 2))
    np.add.at(pair_cnt, (pair, slot - 1), 1.0)
    unit_pair = np.empty(n_units, dtype=np.int64)
    unit_pair[unit] = pair
    notes = _check_both_orders(d, unit_pair[~both], n_units, pair_cnt, what, by_run=d.run is not None)
    v1 = np.full(n_units, -1, dtype=np.int64)
    v2 = np.full(n_units, -1, dtype=np.int64)
    s1 = slot == 1
    v1[unit[s1]] = d.w[s1]
    v2[unit[~s1]] = d.w[~s1]
    prompt_of_unit = np.empty(n_units, dtype=np.int64)
    prompt_of_unit[unit] = d.prompt
    keep = np.flatnonzero(both)
    return _Units(
        v1=v1[keep],
        v2=v2[keep],
        prompt=pd.factorize(prompt_of_unit[keep])[0],
        n_pairs=int(np.unique(pair[both[unit]]).size),
        has_repeats=bool((pair_cnt > 1).any()),
        notes=notes,
    )


def _check_both_orders(
    d: PairData, lacking: np.ndarray, n_all: int, pair_cnt: np.ndarray, what: str, by_run: bool = False
) -> list[str]:
    """Raise when no unit has both orders; return a note when some lack one.

    ``lacking`` holds, for every unit (pair, or (pair, run) when ``by_run``) without both orders,
    the pair code of that unit; ``n_all`` is the number of units.
    """
    if lacking.size == 0:
        return []
    assert d.pair is not None
    p = int(lacking[0])
    i = int(np.flatnonzero(d.pair == p)[0])
    has = [s for s in (1, 2) if pair_cnt[p, s - 1] > 0]
    if len(has) == 1:
        ex = f"e.g. {d.pair_txt(i)} has only slot_a={has[0]}"
    else:
        ex = f"e.g. {d.pair_txt(i)} has a run seen in one order only"
    run = ", run" if d.run is not None else ""
    units = "(pair, run) units" if by_run else "pairs"
    head = (
        f"{what} needs both orders of each pair (a row with slot_a=1 and one with slot_a=2 for the "
        f"same prompt_id, a_id, b_id{run}): columns {', '.join(POSITION_COLUMNS)}{run}."
    )
    if lacking.size == n_all:
        raise CJEInputError(
            f"{head} All {n_all} {units} lack the reverse order ({ex}). Judge each pair a second "
            "time with the two responses swapped."
        )
    return [f"{lacking.size} of {n_all} {units} lack the reverse order and were left out ({ex})."]


def _flip_rates(d: PairData, alpha: float, n_bootstrap: int, gen: np.random.Generator) -> dict[str, Any]:
    """Cross-order vs same-order flip rates over pairs with repeated runs of some order."""
    assert d.pair is not None and d.slot is not None and d.w is not None
    n_pairs = int(d.pair.max()) + 1
    c = np.zeros((n_pairs, 2, 3))
    np.add.at(c, (d.pair, d.slot - 1, d.w), 1.0)
    r = c.sum(axis=2)  # verdicts (runs) per order
    ok = (r > 0).all(axis=1) & (r > 1).any(axis=1)
    if not ok.any():
        return {}
    c, r = c[ok], r[ok]
    cross = 1.0 - np.einsum("pv,pv->p", c[:, 0], c[:, 1]) / (r[:, 0] * r[:, 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        same_o = 1.0 - np.einsum("pov,pov->po", c, c - 1.0) / (r * (r - 1.0))
    same = np.nanmean(np.where(r > 1, same_o, np.nan), axis=1)
    excess = cross - same
    prompt_of_pair = np.empty(n_pairs, dtype=np.int64)
    prompt_of_pair[d.pair] = d.prompt
    g = pd.factorize(prompt_of_pair[ok])[0]
    per_g = np.column_stack([np.bincount(g, weights=excess), np.bincount(g)])
    tot = cluster_bootstrap_totals(per_g, n_bootstrap, gen)
    lo, hi = percentile_interval(tot[:, 0] / tot[:, 1], alpha, n_clusters=per_g.shape[0])
    return {
        "flip_rate_cross_order": float(cross.mean()),
        "flip_rate_same_order": float(same.mean()),
        "excess_flip_rate": float(excess.mean()),
        "excess_flip_ci_low": lo,
        "excess_flip_ci_high": hi,
        "n_pairs_repeated": int(ok.sum()),
    }


def _clustered_mcnemar(pp_mask: np.ndarray, rp_mask: np.ndarray, prompt: np.ndarray) -> float:
    """p-value of the clustered McNemar test (Durkalski, Palesch, Lipsitz & Rust 2003).

    ``X² = (Σ_g d_g)² / Σ_g d_g²`` with ``d_g`` the number of PP minus RP units of prompt ``g``,
    referred to χ²(1): the score test of ``E[PP − RP] = 0`` with a variance that lets the units of
    one prompt be correlated. With one unit per prompt it is McNemar's χ² without continuity
    correction. 1.0 when every prompt has as many PP as RP units.
    """
    d = np.bincount(prompt, weights=pp_mask.astype(np.float64) - rp_mask.astype(np.float64))
    den = float(d @ d)
    if den <= 0.0:
        return 1.0
    return float(stats.chi2.sf(float(d.sum()) ** 2 / den, 1))


def _half_logit(r: float) -> float:
    if not math.isfinite(r):
        return float("nan")
    if r <= 0.0:
        return -math.inf
    if r >= 1.0:
        return math.inf
    return 0.5 * math.log(r / (1.0 - r))
