"""Agreement with the oracle: Cohen's κ, Krippendorff's α, Kendall's τ, Spearman's ρ, NDCG@k and
the judge-vs-oracle ranking agreement of policies (docs: Judge bias › Pairwise scores and panels)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cje.errors import CJEInputError
from cje.pairwise._common import _check_ids, _isna, _sorted

__all__ = [
    "cohen_kappa",
    "kendall_tau",
    "krippendorff_alpha",
    "ndcg_at_k",
    "ranking_agreement",
    "spearman_rho",
]


def _vector(x: Any, name: str, numeric: bool = True) -> np.ndarray:
    arr = np.asarray(x.to_numpy() if hasattr(x, "to_numpy") else x, dtype=np.float64 if numeric else object)
    if arr.ndim != 1:
        raise CJEInputError(f"{name} must be one-dimensional; got shape {arr.shape}.")
    bad = ~np.isfinite(arr) if numeric else _isna(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CJEInputError(
            f"{name} must be {'finite' if numeric else 'non-missing'}; element {i} is {arr[i]!r}. "
            "Drop incomplete pairs first."
        )
    return arr


def _paired(
    x: Any, y: Any, names: tuple[str, str], numeric: bool = True, min_n: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays, element i of one paired with element i of the other. Two pandas Series
    are paired by index, as pandas would: the same labels in another order are aligned, other
    labels refused (pairing them by position would silently compare different units)."""
    import pandas as pd

    if isinstance(x, pd.Series) and isinstance(y, pd.Series) and not x.index.equals(y.index):
        same = (x.index.is_unique and y.index.is_unique and len(x) == len(y)
                and x.index.sort_values().equals(y.index.sort_values()))
        if not same:
            raise CJEInputError(
                f"{names[0]} and {names[1]} are pandas Series with different indexes, so it is "
                "not clear which elements belong to the same unit. Align them (e.g. "
                f"{names[1]}.reindex({names[0]}.index)), or pass .to_numpy() to pair by position."
            )
        y = y.reindex(x.index)
    try:
        a = _vector(x, names[0], numeric)
        b = _vector(y, names[1], numeric)
    except (TypeError, ValueError) as e:
        if isinstance(e, CJEInputError):
            raise
        raise CJEInputError(f"{names[0]} and {names[1]} must be numeric arrays: {e}") from None
    if a.shape != b.shape:
        raise CJEInputError(
            f"{names[0]} and {names[1]} must have the same length; got {a.size} and {b.size}."
        )
    if a.size < min_n:
        raise CJEInputError(f"{names[0]} and {names[1]} need at least {min_n} elements; got {a.size}.")
    return a, b


def cohen_kappa(a: Any, b: Any, *, weights: str | None = None) -> float:
    """Cohen's κ between two raters' labels of the same units (weighted for ordinal labels).

    ``κ = 1 − Σ w·O / Σ w·E`` over the confusion table ``O`` and the table ``E`` expected from the
    margins; disagreement weights ``w`` are 1 off the diagonal (``None``), ``|i − j|`` (``"linear"``)
    or ``(i − j)²`` (``"quadratic"``) with ``i, j`` the ranks of the labels in sorted order (as in
    scikit-learn). Weights need numeric labels: text labels are refused with weights, since their
    sorted order is alphabetical ("bad" < "good" < "ok"), not the scale's.

    Parameters
    ----------
    a, b : array-like
        Labels (numbers or strings) of the same units, paired by position — or by index when both
        are pandas Series (the same labels in any order; different labels are refused).
    weights : {None, "linear", "quadratic"}

    Returns
    -------
    float
        1 for perfect agreement, 0 for chance agreement.

    Examples
    --------
    >>> round(cohen_kappa([1, 2, 3, 3, 2], [1, 2, 3, 2, 2]), 4)
    0.6875
    >>> round(cohen_kappa([1, 2, 3, 3, 2], [1, 2, 3, 2, 2], weights="quadratic"), 4)
    0.8
    """
    import pandas as pd

    if weights not in (None, "linear", "quadratic"):
        raise CJEInputError(f"weights must be None, 'linear' or 'quadratic'; got {weights!r}.")
    x, y = _paired(a, b, ("a", "b"), numeric=False, min_n=1)
    for name, v in (("a", x), ("b", y)):  # ±inf is a data error, not a category
        inf = np.array([isinstance(u, (float, np.floating)) and np.isinf(u) for u in v], dtype=bool)
        if inf.any():
            i = int(np.flatnonzero(inf)[0])
            raise CJEInputError(f"{name} must hold labels; element {i} is {v[i]!r}. Drop or fix it.")
    if weights is not None:  # weights need the labels' order; text sorts "bad" < "good" < "ok"
        for name, v in (("a", x), ("b", y)):
            text = [i for i, u in enumerate(v) if not isinstance(u, (bool, int, float, np.number))]
            if text:
                raise CJEInputError(
                    f"weights={weights!r} needs ordered labels, i.e. numbers; element {text[0]} of "
                    f"{name} is {v[text[0]]!r}. Text labels would be weighted in alphabetical order "
                    "('bad' < 'good' < 'ok'). Code them as numbers in their order (e.g. bad=0, ok=1, "
                    "good=2), or use weights=None."
                )
    n = x.size  # 1 and "1" would be two categories: refused, as in cje.load
    _check_ids(np.concatenate([x, y]), "a and b", kind="label",
               where=lambda i: f"element {i} of a" if i < n else f"element {i - n} of b")
    classes = _sorted(pd.unique(np.concatenate([x, y])))
    idx = pd.Index(classes, dtype=object)
    ix, iy = idx.get_indexer(x), idx.get_indexer(y)
    k = len(classes)
    obs = np.zeros((k, k))
    np.add.at(obs, (ix, iy), 1.0)
    exp = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / obs.sum()
    d = np.abs(np.arange(k)[:, None] - np.arange(k)[None, :]).astype(np.float64)
    w = (d > 0).astype(np.float64) if weights is None else d if weights == "linear" else d**2
    den = float(np.sum(w * exp))
    if den == 0.0:
        raise CJEInputError(
            "Cohen's κ is undefined when both raters give one and the same label to every unit "
            f"(here {classes[0]!r}); there is no chance disagreement to compare with."
        )
    return float(1.0 - np.sum(w * obs) / den)


_ALPHA_LEVELS = ("nominal", "ordinal", "interval", "ratio")


def krippendorff_alpha(data: Any, *, level: str = "nominal") -> float:
    """Krippendorff's α reliability of several raters (missing values allowed).

    ``α = 1 − D_o / D_e`` computed from the coincidence matrix of pairable values (units with at
    least two values; Krippendorff 2011). Difference functions: nominal ``[c ≠ k]``; ordinal
    ``(Σ_{g=c..k} n_g − (n_c + n_k)/2)²``; interval ``(c − k)²``; ratio ``((c − k)/(c + k))²``.

    Parameters
    ----------
    data : array-like of shape (raters, units)
        Numeric values; NaN marks a missing value.
    level : {"nominal", "ordinal", "interval", "ratio"}

    Returns
    -------
    float
        1 for perfect reliability, 0 for chance-level agreement.

    Examples
    --------
    >>> data = [[1, 2, 3, 3, 2], [1, 2, 3, 2, 2], [1, np.nan, 3, 3, 2]]
    >>> round(krippendorff_alpha(data), 3)
    0.794
    """
    if level not in _ALPHA_LEVELS:
        raise CJEInputError(f"level must be one of {', '.join(map(repr, _ALPHA_LEVELS))}; got {level!r}.")
    try:
        if hasattr(data, "isna"):  # pandas: nullable columns hold pd.NA, which float() refuses
            arr = data.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            arr = np.asarray(data.to_numpy() if hasattr(data, "to_numpy") else data, dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError(
            "data must be a numeric raters × units array (NaN = missing); code labels as numbers."
        ) from None
    if arr.ndim != 2:
        raise CJEInputError(f"data must be a 2-D raters × units array; got shape {arr.shape}.")
    if np.isinf(arr).any():
        raise CJEInputError("data must be finite or NaN (missing); it contains ±inf.")
    if level == "ratio" and (arr[~np.isnan(arr)] < 0).any():
        raise CJEInputError("level='ratio' needs non-negative values (a ratio scale has a true zero).")
    vals = np.unique(arr[~np.isnan(arr)])
    if vals.size == 0:
        raise CJEInputError("data has no values (all NaN).")
    # per unit counts of each value: (units, V)
    code = np.searchsorted(vals, np.where(np.isnan(arr), vals[0], arr))
    counts = np.zeros((arr.shape[1], vals.size))
    obs = ~np.isnan(arr)
    r_idx, u_idx = np.nonzero(obs)
    np.add.at(counts, (u_idx, code[r_idx, u_idx]), 1.0)
    m = counts.sum(axis=1)
    pairable = m >= 2
    if not pairable.any():
        raise CJEInputError("Krippendorff's α needs at least one unit with two or more values; none has.")
    c = counts[pairable]
    cw = c / (m[pairable] - 1.0)[:, None]
    coinc = cw.T @ c - np.diag(cw.sum(axis=0))
    n_c = coinc.sum(axis=1)
    n = n_c.sum()
    if level == "nominal":
        delta2 = 1.0 - np.eye(vals.size)
    elif level == "interval":
        delta2 = (vals[:, None] - vals[None, :]) ** 2
    elif level == "ratio":
        s = vals[:, None] + vals[None, :]
        dd = vals[:, None] - vals[None, :]
        delta2 = np.divide(dd, s, out=np.zeros_like(dd), where=s != 0) ** 2
    else:
        mid = np.cumsum(n_c) - n_c / 2.0  # ordinal = interval on the mid-rank scale
        delta2 = (mid[:, None] - mid[None, :]) ** 2
    d_e = float(n_c @ delta2 @ n_c)
    if d_e == 0.0:
        raise CJEInputError(
            "Krippendorff's α is undefined when every pairable value is the same (no expected disagreement)."
        )
    return float(1.0 - (n - 1.0) * float(np.sum(coinc * delta2)) / d_e)


def kendall_tau(x: Any, y: Any) -> tuple[float, float]:
    """Kendall's τ-b between two score vectors and its two-sided p-value.

    τ-b is scipy's. Without ties the p-value is scipy's exact one. With ties it is exact for at
    most 8 pairs (the share of all ``n!`` pairings of ``y`` with ``x`` whose ``|τ|`` is at least
    the observed one); above, scipy's normal approximation, which is too small for a few tied
    items (it gives 0.22 to x = (0, 1, 1), y = (0, 1, 2), whose exact p-value is 2/3).

    Parameters
    ----------
    x, y : array-like
        Paired numeric scores (e.g. judge and oracle values of the same items).

    Returns
    -------
    (tau, p_value)

    Examples
    --------
    >>> tau, p = kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    >>> round(tau, 3), round(p, 3)
    (0.667, 0.333)
    """
    from scipy import stats

    a, b = _paired(x, y, ("x", "y"))
    _require_variation(a, b)
    res = stats.kendalltau(a, b)
    ties = np.unique(a).size < a.size or np.unique(b).size < b.size  # without, scipy's is exact
    p = _exact_p(a, b, "kendall") if ties and a.size <= _EXACT_MAX_N else float(res.pvalue)
    return float(res.statistic), p


def spearman_rho(x: Any, y: Any) -> tuple[float, float]:
    """Spearman's ρ between two score vectors and its two-sided p-value.

    ρ is scipy's (mid-ranks for ties). The p-value is exact for at most 8 pairs (the share of all
    ``n!`` pairings of ``y`` with ``x`` whose ``|ρ|`` is at least the observed one; with two
    elements ρ is ±1 and the p-value 1); above, scipy's t approximation. That approximation is
    far too small for few items: with 3 it gives p = 0 to a perfect ranking, which a random
    ranking matches or reverses one time in three (its level-0.05 test rejected 1/3 of null pairings at
    n = 3 and 1/12 at n = 4 and 5, counted over all pairings; 0.054–0.059 at n = 9 and 10).

    Parameters
    ----------
    x, y : array-like
        Paired numeric scores (e.g. judge and oracle values of the same items).

    Returns
    -------
    (rho, p_value)

    Examples
    --------
    >>> rho, p = spearman_rho([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    >>> round(rho, 3)
    0.8
    """
    from scipy import stats

    a, b = _paired(x, y, ("x", "y"))
    _require_variation(a, b)
    res = stats.spearmanr(a, b)
    p = _exact_p(a, b, "spearman") if a.size <= _EXACT_MAX_N else float(res.pvalue)
    return float(res.statistic), p


#: Up to this many pairs the rank-correlation p-values enumerate all n! pairings (8! = 40,320).
_EXACT_MAX_N = 8


def _exact_p(a: np.ndarray, b: np.ndarray, kind: str) -> float:
    """Exact two-sided permutation p-value of Spearman's ρ or Kendall's τ-b (``n ≤ 8``).

    Under independence every pairing of ``b`` with ``a`` is equally likely; the p-value is the
    share of the ``n!`` pairings whose statistic is at least as far from 0 as the observed one.
    The denominators of ρ (mid-rank spreads) and τ-b (tie counts) do not change under
    permutation, so the numerators are compared.
    """
    from itertools import permutations

    from scipy.stats import rankdata

    n = a.size
    perms = np.array(list(permutations(range(n))), dtype=np.intp)
    if kind == "spearman":
        ra, rb = rankdata(a) - (n + 1) / 2.0, rankdata(b) - (n + 1) / 2.0
        stat = rb[perms] @ ra
        obs = float(rb @ ra)
    else:
        i, j = np.triu_indices(n, 1)
        sa, sb = np.sign(a[i] - a[j]), np.sign(b[:, None] - b[None, :])
        stat = sb[perms[:, i], perms[:, j]] @ sa
        obs = float(sb[i, j] @ sa)
    return float(np.mean(np.abs(stat) >= abs(obs) - 1e-9 * max(1.0, abs(obs))))


def _require_variation(a: np.ndarray, b: np.ndarray) -> None:
    for name, v in (("x", a), ("y", b)):
        if np.all(v == v[0]):
            raise CJEInputError(f"{name} is constant; a rank correlation needs at least two distinct values.")


def ndcg_at_k(relevance: Any, scores: Any, k: int) -> float:
    """NDCG@k of the ranking by ``scores`` against graded ``relevance`` (one query).

    ``DCG@k = Σ_{r<k} rel_(r) / log2(r + 2)`` with linear gains; tied scores get the expected DCG
    over the orders of the tie (as scikit-learn's ``ndcg_score``). Normalised by the DCG@k of the
    ideal order.

    Parameters
    ----------
    relevance : array-like
        Non-negative true relevance (e.g. oracle values of policies).
    scores : array-like
        Predicted scores (e.g. judge values); higher ranks first.
    k : int
        Positions counted (``k`` larger than the number of items counts all).

    Returns
    -------
    float
        In [0, 1]; 1 when the top ``k`` are in the ideal order.

    Examples
    --------
    >>> round(ndcg_at_k([3, 2, 0, 1], [0.9, 0.7, 0.8, 0.1], k=3), 4)
    0.84
    """
    rel, sc = _paired(relevance, scores, ("relevance", "scores"), min_n=1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise CJEInputError(f"k must be a positive integer; got {k!r}.")
    if (rel < 0).any():
        raise CJEInputError("relevance must be non-negative (gains); shift or clip the values.")
    ideal = _dcg(rel, rel, int(k))
    if ideal == 0.0:
        raise CJEInputError("NDCG is undefined when every relevance is 0.")
    return _dcg(rel, sc, int(k)) / ideal


def _dcg(rel: np.ndarray, sc: np.ndarray, k: int) -> float:
    """Expected DCG@k of ordering by ``sc`` (descending), averaging over orders within ties."""
    n = rel.size
    disc = np.zeros(n)
    kk = min(k, n)
    disc[:kk] = 1.0 / np.log2(np.arange(kk) + 2.0)
    uniq, inv = np.unique(-sc, return_inverse=True)  # groups of tied scores, best first
    size = np.bincount(inv, minlength=uniq.size).astype(np.float64)
    gain = np.bincount(inv, weights=rel, minlength=uniq.size)
    start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    cdisc = np.concatenate([[0.0], np.cumsum(disc)])
    disc_sum = cdisc[start + size.astype(np.int64)] - cdisc[start]
    return float(np.sum(gain / size * disc_sum))


def ranking_agreement(
    judge_values: Mapping[str, float], oracle_values: Mapping[str, float]
) -> dict[str, Any]:
    """How well the judge's ranking of policies matches the oracle's.

    Parameters
    ----------
    judge_values, oracle_values : mapping
        Policy → value (e.g. mean judge score and calibrated oracle estimate), same keys.

    Returns
    -------
    dict
        ``kendall_tau``, ``kendall_p``, ``spearman_rho``, ``spearman_p``, ``top1_agree`` (some
        policy is best under both; ties at the top count), ``judge_top`` and ``oracle_top``
        (the best policies, sorted), ``n_items``.

    Examples
    --------
    >>> r = ranking_agreement({"a": 0.9, "b": 0.5, "c": 0.7}, {"a": 0.8, "b": 0.6, "c": 0.4})
    >>> round(r["kendall_tau"], 3), r["top1_agree"]
    (0.333, True)
    """
    jk, ok = set(judge_values), set(oracle_values)
    if jk != ok:
        only_j = _sorted(jk - ok)
        only_o = _sorted(ok - jk)
        raise CJEInputError(
            "judge_values and oracle_values must cover the same policies; only in judge_values: "
            f"{only_j!r}; only in oracle_values: {only_o!r}. Restrict both to the common policies."
        )
    keys = _sorted(jk)
    if len(keys) < 2:
        raise CJEInputError(f"ranking_agreement needs at least 2 policies; got {len(keys)}.")
    j = _vector([judge_values[k] for k in keys], "judge_values")
    o = _vector([oracle_values[k] for k in keys], "oracle_values")
    tau, tau_p = kendall_tau(j, o)
    rho, rho_p = spearman_rho(j, o)
    j_top = [k for k, v in zip(keys, j, strict=True) if v == j.max()]
    o_top = [k for k, v in zip(keys, o, strict=True) if v == o.max()]
    return {
        "kendall_tau": tau,
        "kendall_p": tau_p,
        "spearman_rho": rho,
        "spearman_p": rho_p,
        "top1_agree": bool(set(j_top) & set(o_top)),
        "judge_top": j_top,
        "oracle_top": o_top,
        "n_items": len(keys),
    }
