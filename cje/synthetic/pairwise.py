"""Synthetic pairwise judge verdicts with a known truth (docs: Judge bias; Simulation results).

Every pair of items (models, prompts, agent versions …) answers every prompt; a judge compares
the two answers of each pair in **both orders** (``repeats`` times per order) and a human gives one
verdict per pair. Planted biases: a position (slot) shift, a length preference and
self-preference. Because the model is fully specified, the value each diagnostic of
:mod:`cje.bias.position` and :mod:`cje.bias.pairwise_tests` estimates is known exactly; it is
computed by Gaussian quadrature (the trapezoid rule on ``[-10, 10]`` standard deviations, which is
spectrally accurate for these smooth integrands: error far below 1e-10 for the default knobs),
never by Monte Carlo.

The generative model, with every knob explicit
----------------------------------------------
For prompt ``j`` and item ``i`` (items indexed in the order given):

* quality deviation ``u_ij ~ N(0, prompt_noise²)`` and standardised log length
  ``z_ij ~ N(length_means_i, 1)``; the length in tokens is ``round(exp(5 + 0.5 z_ij))``, nudged
  up by a few tokens where needed so that the items of one prompt never tie in length and the
  token order equals the order of ``z`` (so "longer" is the same event in data and truth);
* for the pair ``(a, b)`` (``a`` before ``b`` in ``items``), the human latent log-odds that
  ``a`` is better is ``h = θ_a − θ_b + u_ja − u_jb`` (``θ`` = ``strengths``);
* the judge latent log-odds adds the planted biases,
  ``x = h + length_effect · (z_ja − z_jb) + self_preference · (s_a − s_b)`` with
  ``s_i = 1`` when item ``i``'s family equals ``judge_family``;
* each judge verdict (every order × ``repeats`` runs, all independent given ``x``) is a tie with
  probability ``tie_rate``; otherwise ``a`` wins with probability ``σ(x + β)`` when ``a`` is shown
  in slot 1 and ``σ(x − β)`` when it is shown in slot 2, ``β = position_logodds``. The log-odds of
  the slot-1 item winning is thus shifted by exactly ``β``, so ``β`` is the conditional-logit slot
  shift (docs: Judge bias): ``P(PP) / P(RP) = e^{2β}`` for every pair whatever its ``x``;
* the human verdict (one per pair, repeated on the rows of both orders) is a tie with probability
  ``tie_rate``, otherwise ``a`` with probability ``σ(h)``: humans see neither slot nor length nor
  family.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

__all__ = ["SyntheticPairs", "make_pairwise_eval", "default_strengths"]

# Log length in tokens = _LOG_LEN_CENTER + _LOG_LEN_SCALE * z  (median ~148 tokens).
_LOG_LEN_CENTER = 5.0
_LOG_LEN_SCALE = 0.5

# Trapezoid-rule nodes for E[f(Z)], Z ~ N(0, 1): spectrally accurate for analytic f.
_Z1 = np.linspace(-10.0, 10.0, 1601)
_W1 = np.exp(-0.5 * _Z1**2) / math.sqrt(2.0 * math.pi) * (_Z1[1] - _Z1[0])
_Z2 = np.linspace(-10.0, 10.0, 401)
_W2 = np.exp(-0.5 * _Z2**2) / math.sqrt(2.0 * math.pi) * (_Z2[1] - _Z2[0])


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticPairs:
    """Synthetic pairwise verdicts together with their known truth.

    Parameters
    ----------
    pairs : pandas.DataFrame
        One row per judge verdict: ``prompt_id``, ``a_id``, ``b_id``, ``slot_a`` (1 or 2),
        ``run`` (0 … repeats−1), ``winner`` ("a", "b" or "tie"), ``human_winner`` (when
        ``human_verdicts``), ``len_a``, ``len_b`` (tokens), ``a_family``, ``b_family`` and
        ``judge_family`` (when a judge family is set).
    truth : dict[str, float]
        The planted values in the units each diagnostic estimates (see
        :func:`make_pairwise_eval`).
    description : str
        One plain-words paragraph describing what was planted.

    Notes
    -----
    Equality is identity-based (``eq=False``): data frames have no boolean equality.

    Examples
    --------
    >>> sim = make_pairwise_eval(10, rng=0)
    >>> sim.pairs.shape[0]  # 10 prompts x 6 pairs x 2 orders
    120
    """

    pairs: pd.DataFrame
    truth: dict[str, float]
    description: str


def default_strengths(n_items: int) -> np.ndarray:
    """Evenly spaced item strengths ``θ`` from +0.6 down to −0.6 (first item strongest).

    Parameters
    ----------
    n_items : int
        Number of items (>= 2).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> default_strengths(4).round(2).tolist()
    [0.6, 0.2, -0.2, -0.6]
    """
    return np.linspace(0.6, -0.6, int(n_items))


def make_pairwise_eval(
    n_prompts: int = 500,
    items: Sequence[str] = ("A", "B", "C", "D"),
    *,
    strengths: Sequence[float] | None = None,
    position_logodds: float = 0.0,
    length_effect: float = 0.0,
    self_preference: float = 0.0,
    judge_family: str | None = None,
    item_families: Sequence[str] | None = None,
    tie_rate: float = 0.0,
    repeats: int = 1,
    human_verdicts: bool = True,
    length_means: Sequence[float] | None = None,
    prompt_noise: float = 1.0,
    rng: int | np.random.Generator | None = None,
) -> SyntheticPairs:
    """Simulate pairwise judge verdicts in both orders, with human verdicts and a known truth.

    Model (module docstring): human log-odds ``h = θ_a − θ_b + u_a − u_b`` with
    ``u ~ N(0, prompt_noise²)`` per (prompt, item); judge log-odds
    ``x = h + length_effect·(z_a − z_b) + self_preference·(s_a − s_b)``, plus
    ``position_logodds`` for the item in slot 1; ties with probability ``tie_rate``.

    Parameters
    ----------
    n_prompts : int, default 500
        Prompts (>= 1). Every pair of items is compared on every prompt.
    items : sequence of str, default ("A", "B", "C", "D")
        Distinct item names (>= 2). Pairs are ``(items[i], items[k])`` with ``i < k``.
    strengths : sequence of float, optional
        ``θ_i`` per item (log-odds scale); ``None`` uses :func:`default_strengths`.
    position_logodds : float, default 0.0
        ``β``: log-odds bonus of the item shown in slot 1 (> 0: primacy, < 0: recency).
    length_effect : float, default 0.0
        Judge log-odds per unit difference of standardised log length ``z`` (the within-item
        standard deviation of ``z`` is 1). The human ignores length.
    self_preference : float, default 0.0
        ``τ``: judge log-odds bonus of an item whose family equals ``judge_family``.
    judge_family : str, optional
        The judge's model family; adds a ``judge_family`` column. Required when
        ``self_preference != 0``.
    item_families : sequence of str, optional
        Family per item; ``None`` gives each item its own name as family.
    tie_rate : float, default 0.0
        Probability in [0, 1) that a verdict (judge or human) is a tie, independent of all else.
    repeats : int, default 1
        Judge verdicts per order of each pair (``run`` column), independent given ``x``.
    human_verdicts : bool, default True
        Add the ``human_winner`` column.
    length_means : sequence of float, optional
        Mean of ``z`` per item (default all 0). Non-zero values make length differ by item
        (and, with unequal strengths, correlate with quality).
    prompt_noise : float, default 1.0
        Standard deviation of the per-(prompt, item) quality deviation ``u`` (> 0).
    rng : int, numpy.random.Generator or None
        Seed or generator (:func:`numpy.random.default_rng`); a seed gives identical data.

    Returns
    -------
    SyntheticPairs
        ``pairs`` (data contract of :func:`cje.bias.position.position`), ``truth`` and
        ``description``. ``truth`` holds, averaged over all item pairs (every pair is compared
        equally often):

        * ``position_logodds`` (β) and ``first_slot_rate`` = ``PP/(PP+RP)`` = ``σ(2β)``;
        * ``pp_rate``, ``rp_rate`` (per pair and run), ``pc`` (position consistency: same verdict
          in both orders, ties included), ``pf`` = ``rp_rate − pp_rate``;
        * ``flip_rate_cross_order``, ``flip_rate_same_order`` (two runs of one order disagree)
          and ``excess_flip_rate`` (their difference);
        * ``judge_longer_rate``, ``human_longer_rate`` (P(longer item wins), ties as ½) and
          ``excess_length_preference`` (their difference), ``length_effect``;
        * when some pair has exactly one item of ``judge_family``: ``self_own_rate`` =
          P(judge picks x | x judge-family, human picks x), ``self_other_rate`` (x other-family)
          and ``self_preference_gap`` (their difference), over such pairs; ``self_preference``.

    Raises
    ------
    ValueError
        On invalid arguments.

    Examples
    --------
    >>> sim = make_pairwise_eval(100, position_logodds=0.5, rng=0)
    >>> sorted(sim.pairs["slot_a"].unique().tolist())
    [1, 2]
    >>> round(sim.truth["first_slot_rate"], 4)  # sigmoid(2 * 0.5)
    0.7311
    """
    n_prompts = _check_count("n_prompts", n_prompts)
    repeats = _check_count("repeats", repeats)
    if isinstance(items, (str, bytes)):
        raise ValueError("items must be a sequence of item names, not a single string")
    names = [str(i) for i in items]
    k = len(names)
    if k < 2:
        raise ValueError(f"items must hold at least 2 names, got {names!r}")
    if len(set(names)) != k:
        raise ValueError(f"items must be distinct, got {names!r}")
    theta = default_strengths(k) if strengths is None else _check_vector("strengths", strengths, k)
    m_len = np.zeros(k) if length_means is None else _check_vector("length_means", length_means, k)
    families = list(names) if item_families is None else [str(f) for f in item_families]
    if len(families) != k:
        raise ValueError(f"item_families must have one entry per item ({k}), got {len(families)}")
    beta = _check_finite("position_logodds", position_logodds)
    lam = _check_finite("length_effect", length_effect)
    tau = _check_finite("self_preference", self_preference)
    t = _check_finite("tie_rate", tie_rate)
    if not 0.0 <= t < 1.0:
        raise ValueError(f"tie_rate must be in [0, 1), got {tie_rate!r}")
    sigma_u = _check_finite("prompt_noise", prompt_noise)
    if sigma_u <= 0.0:
        raise ValueError(f"prompt_noise must be > 0, got {prompt_noise!r}")
    if judge_family is None:
        if tau != 0.0:
            raise ValueError("self_preference needs judge_family (the judge's model family)")
        own = np.zeros(k)
    else:
        judge_family = str(judge_family)
        own = np.array([f == judge_family for f in families], dtype=float)
        if tau != 0.0 and not own.any():
            raise ValueError(
                f"judge_family {judge_family!r} is not among item_families {families!r}, so "
                "self_preference would have no effect"
            )
    gen = np.random.default_rng(rng)

    # ------------------------------------------------------------------ simulation
    ia, ib = (np.asarray(v) for v in zip(*[(i, j) for i in range(k) for j in range(i + 1, k)], strict=True))
    n_pairs = ia.size
    # Fixed draw order (part of the reproducibility contract).
    u = sigma_u * gen.standard_normal((n_prompts, k))
    z = m_len + gen.standard_normal((n_prompts, k))
    h_tie = gen.random((n_prompts, n_pairs)) < t
    h_unif = gen.random((n_prompts, n_pairs))
    j_tie = gen.random((n_prompts, n_pairs, 2, repeats)) < t
    j_unif = gen.random((n_prompts, n_pairs, 2, repeats))

    tokens = _distinct_tokens(z)
    h = theta[ia] - theta[ib] + u[:, ia] - u[:, ib]
    x = h + lam * (z[:, ia] - z[:, ib]) + tau * (own[ia] - own[ib])
    shift = np.array([beta, -beta])[None, None, :, None]  # slot_a = 1, 2
    a_wins = j_unif < expit(x[:, :, None, None] + shift)
    winner = np.where(j_tie, "tie", np.where(a_wins, "a", "b"))
    human = np.where(h_tie, "tie", np.where(h_unif < expit(h), "a", "b"))

    # ------------------------------------------------------------------ assemble
    width = max(5, len(str(n_prompts - 1)))
    pids = np.array([f"p{j:0{width}d}" for j in range(n_prompts)], dtype=object)
    j_idx, p_idx, o_idx, r_idx = np.indices((n_prompts, n_pairs, 2, repeats)).reshape(4, -1)
    name_arr = np.array(names, dtype=object)
    fam_arr = np.array(families, dtype=object)
    cols: dict[str, Any] = {
        "prompt_id": pids[j_idx],
        "a_id": name_arr[ia[p_idx]],
        "b_id": name_arr[ib[p_idx]],
        "slot_a": (o_idx + 1).astype(np.int64),
        "run": r_idx.astype(np.int64),
        "winner": winner.reshape(-1).astype(object),
    }
    if human_verdicts:
        cols["human_winner"] = human[j_idx, p_idx].astype(object)
    cols["len_a"] = tokens[j_idx, ia[p_idx]]
    cols["len_b"] = tokens[j_idx, ib[p_idx]]
    cols["a_family"] = fam_arr[ia[p_idx]]
    cols["b_family"] = fam_arr[ib[p_idx]]
    if judge_family is not None:
        cols["judge_family"] = np.full(j_idx.size, judge_family, dtype=object)
    frame = pd.DataFrame(cols)

    truth = dict(
        _truth(
            tuple(float(v) for v in theta[ia] - theta[ib]),
            tuple(float(v) for v in m_len[ia] - m_len[ib]),
            tuple(float(v) for v in own[ia]),
            tuple(float(v) for v in own[ib]),
            beta,
            lam,
            tau,
            t,
            sigma_u,
        )
    )
    description = _describe(
        names, theta, families, judge_family, n_prompts, repeats, beta, lam, tau, t, sigma_u, truth
    )
    return SyntheticPairs(pairs=frame, truth=truth, description=description)


# ---------------------------------------------------------------------------- truth


def _expect(values: np.ndarray) -> float:
    """``E[f(Z)]`` from ``f`` evaluated on the 1-D nodes ``_Z1``."""
    return float(values @ _W1)


@functools.lru_cache(maxsize=256)
def _truth(
    dtheta: tuple[float, ...],
    dmean: tuple[float, ...],
    own_a: tuple[float, ...],
    own_b: tuple[float, ...],
    beta: float,
    lam: float,
    tau: float,
    t: float,
    sigma_u: float,
) -> tuple[tuple[str, float], ...]:
    """Exact (quadrature) values of every diagnostic's estimand, averaged over item pairs."""
    acc: dict[str, float] = dict.fromkeys(
        ["pp", "rp", "pc", "same", "jl", "hl", "own_num", "own_den", "oth_num", "oth_den"], 0.0
    )
    q = 1.0 - t
    var_h = 2.0 * sigma_u**2
    for c_h, dm, sa, sb in zip(dtheta, dmean, own_a, own_b, strict=True):
        c_x = c_h + tau * (sa - sb)
        # x = h + lam D + tau (sa - sb), with h ~ N(c_h, var_h) and D ~ N(dm, 2) independent.
        mu_x = c_x + lam * dm
        s_x = math.sqrt(var_h + 2.0 * lam**2)
        xs = mu_x + s_x * _Z1
        p1 = expit(xs + beta)  # a wins | no tie, a in slot 1
        p2 = expit(xs - beta)  # a wins | no tie, a in slot 2
        acc["pp"] += q * q * _expect(p1 * (1.0 - p2))
        acc["rp"] += q * q * _expect((1.0 - p1) * p2)
        acc["pc"] += _expect(q * q * (p1 * p2 + (1.0 - p1) * (1.0 - p2))) + t * t
        same1 = q * q * (p1**2 + (1.0 - p1) ** 2) + t * t
        same2 = q * q * (p2**2 + (1.0 - p2) ** 2) + t * t
        acc["same"] += _expect(0.5 * (same1 + same2))
        # Judge picks the longer item: condition on x; D | x is normal.
        pja = q * 0.5 * (p1 + p2)
        pjb = q - pja
        mean_d = dm + 2.0 * lam * (xs - mu_x) / s_x**2
        sd_d = math.sqrt(2.0 * var_h / s_x**2)
        a_longer = ndtr(mean_d / sd_d)
        acc["jl"] += 0.5 * t + _expect(pja * a_longer + pjb * (1.0 - a_longer))
        hs = c_h + math.sqrt(var_h) * _Z1
        pa_h = _expect(expit(hs))
        pd_pos = float(ndtr(dm / math.sqrt(2.0)))
        acc["hl"] += 0.5 * t + q * (pd_pos * pa_h + (1.0 - pd_pos) * (1.0 - pa_h))
        if sa + sb == 1.0:  # exactly one item of the judge's family
            # 2-D: h = c_h + sqrt(var_h) Z1, D = dm + sqrt(2) Z2 (Z2 only matters when lam != 0).
            hh = (c_h + math.sqrt(var_h) * _Z2)[:, None]
            dd = (dm + math.sqrt(2.0) * _Z2)[None, :] if lam != 0.0 else np.zeros((1, 1))
            w2 = np.outer(_W2, _W2) if lam != 0.0 else _W2[:, None]
            xx = hh + lam * dd + tau * (sa - sb)
            pja2 = q * 0.5 * (expit(xx + beta) + expit(xx - beta))
            ha = q * expit(hh) * np.ones_like(xx)
            hb = q * expit(-hh) * np.ones_like(xx)
            both_a, both_b = float(np.sum(w2 * ha * pja2)), float(np.sum(w2 * hb * (q - pja2)))
            den_a, den_b = float(np.sum(w2 * ha)), float(np.sum(w2 * hb))
            if sa == 1.0:
                acc["own_num"] += both_a
                acc["own_den"] += den_a
                acc["oth_num"] += both_b
                acc["oth_den"] += den_b
            else:
                acc["own_num"] += both_b
                acc["own_den"] += den_b
                acc["oth_num"] += both_a
                acc["oth_den"] += den_a
    n = float(len(dtheta))
    pp, rp, pc = acc["pp"] / n, acc["rp"] / n, acc["pc"] / n
    same = acc["same"] / n
    out = {
        "position_logodds": beta,
        "first_slot_rate": float(expit(2.0 * beta)),
        "pp_rate": pp,
        "rp_rate": rp,
        "pc": pc,
        "pf": rp - pp,
        "flip_rate_cross_order": 1.0 - pc,
        "flip_rate_same_order": 1.0 - same,
        "excess_flip_rate": same - pc,
        "length_effect": lam,
        "judge_longer_rate": acc["jl"] / n,
        "human_longer_rate": acc["hl"] / n,
        "excess_length_preference": (acc["jl"] - acc["hl"]) / n,
        "self_preference": tau,
    }
    if acc["own_den"] > 0.0 and acc["oth_den"] > 0.0:
        own_rate = acc["own_num"] / acc["own_den"]
        oth_rate = acc["oth_num"] / acc["oth_den"]
        out.update(self_own_rate=own_rate, self_other_rate=oth_rate, self_preference_gap=own_rate - oth_rate)
    return tuple(out.items())


# ---------------------------------------------------------------------------- helpers


def _distinct_tokens(z: np.ndarray) -> np.ndarray:
    """Token counts ``round(exp(5 + 0.5 z))``, strictly increasing in ``z`` within each prompt."""
    order = np.argsort(z, axis=1, kind="stable")
    zs = np.take_along_axis(z, order, axis=1)
    raw = np.maximum(1, np.rint(np.exp(_LOG_LEN_CENTER + _LOG_LEN_SCALE * zs))).astype(np.int64)
    steps = np.arange(z.shape[1])
    strict = np.maximum.accumulate(raw - steps, axis=1) + steps  # smallest strictly increasing lift
    out = np.empty_like(strict)
    np.put_along_axis(out, order, strict, axis=1)
    return out


def _describe(
    names: list[str],
    theta: np.ndarray,
    families: list[str],
    judge_family: str | None,
    n_prompts: int,
    repeats: int,
    beta: float,
    lam: float,
    tau: float,
    t: float,
    sigma_u: float,
    truth: dict[str, float],
) -> str:
    k = len(names)
    items = ", ".join(
        f"{n} (θ {th:+.2f}, family {f})" for n, th, f in zip(names, theta, families, strict=True)
    )
    planted = []
    if beta != 0.0:
        planted.append(
            f"a position shift of {beta:+g} log-odds for the item in slot 1 (first-slot rate "
            f"{truth['first_slot_rate']:.3f})"
        )
    if lam != 0.0:
        planted.append(
            f"a length preference of {lam:+g} log-odds per SD of log length (excess "
            f"P(longer wins) {truth['excess_length_preference']:+.3f} over the human)"
        )
    if tau != 0.0:
        planted.append(
            f"self-preference of {tau:+g} log-odds for items of the judge's family "
            f"'{judge_family}' (equal-opportunity gap {truth.get('self_preference_gap', 0.0):+.3f})"
        )
    planted_txt = "Planted: " + "; ".join(planted) + "." if planted else "No judge bias was planted."
    return (
        f"Synthetic pairwise verdicts: {n_prompts} prompts x {k * (k - 1) // 2} item pairs x 2 "
        f"orders x {repeats} run(s); items {items}. Human log-odds θ_a − θ_b plus per-prompt "
        f"quality noise (sd {sigma_u:g} per item); ties with probability {t:g}. {planted_txt} "
        f"Position consistency {truth['pc']:.3f}."
    )


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_finite(name: str, value: object) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_vector(name: str, values: Sequence[float], k: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.shape != (k,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must hold {k} finite numbers (one per item), got {values!r}")
    return arr
