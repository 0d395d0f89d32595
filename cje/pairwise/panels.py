"""Judge panels: one score per item from several judges (mean, max, majority vote or Dawid–Skene),
optionally leaving out judges of the policy's own family; the Dawid–Skene EM model (docs: Judge bias ›
Pairwise scores and panels)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cje.data import _row_ref
from cje.errors import CJEInputError, CJEWarning
from cje.pairwise._common import (
    _check_families,
    _check_ids,
    _check_one_family,
    _has,
    _isna,
    _py,
    _refuse_inf,
    _sorted,
    family_keys,
)
from cje.tables import as_frame, require_columns

__all__ = ["DawidSkeneResult", "aggregate_panel", "dawid_skene"]

# Majority vote and Dawid–Skene are for a few categories; more distinct labels mean continuous scores.
_MAX_CATEGORIES = 50


@dataclass(frozen=True)
class DawidSkeneResult:
    """Dawid–Skene latent-class model of categorical labels from several raters.

    Attributes
    ----------
    classes : tuple
        The label categories, sorted.
    priors : numpy.ndarray
        Estimated class prevalences (length K).
    confusion : dict
        rater → K×K array; row = true class, column = label given, rows sum to 1.
    posterior : pandas.DataFrame
        Items × classes posterior probabilities (index: item ids; columns: ``classes``), at the
        EM estimates: they ignore the estimates' uncertainty and overstate the chance that the
        chosen class is right (by 0.02–0.05 with 3–5 judges on 500–2,000 items, 0.07 with 100
        judges of 60 labels each, on average over 30 panels; 0.21 in a panel of 400 judges of 15;
        ``simulations/results/independent_panel.md``).
    labels : pandas.Series
        The most probable class per item (ties: the smaller class).
    n_iter : int
        EM iterations run.
    converged : bool
        The log-likelihood changed by less than ``tol`` (relative) before ``max_iter``.
    log_likelihood : float
        Observed-data log-likelihood at the end.

    Examples
    --------
    >>> labels = {"item": [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4],
    ...           "rater": ["r1", "r2", "r3"] * 4,
    ...           "label": ["y", "y", "n", "n", "n", "n", "y", "n", "y", "y", "y", "y"]}
    >>> ds = dawid_skene(labels)
    >>> ds.classes, ds.labels.tolist(), ds.converged
    (('n', 'y'), ['y', 'n', 'y', 'y'], True)
    >>> ds.priors.round(2).tolist()
    [0.25, 0.75]
    >>> ds.confusion["r3"].round(2).tolist()   # r3 says "n" to a third of the true "y" items
    [[1.0, 0.0], [0.33, 0.67]]
    """

    classes: tuple[Any, ...]
    priors: np.ndarray
    confusion: dict[Any, np.ndarray]
    posterior: Any
    labels: Any
    n_iter: int
    converged: bool
    log_likelihood: float = float("nan")

    def to_pandas(self) -> Any:
        """One row per item: ``item``, ``label`` and the posterior probability of each class.

        Returns
        -------
        pandas.DataFrame
            Columns ``item``, ``label`` and ``p_<class>`` per class.

        Examples
        --------
        >>> labels = {"item": [1, 1, 1, 2, 2, 2, 3, 3, 3],
        ...           "rater": ["r1", "r2", "r3"] * 3,
        ...           "label": ["y", "y", "n", "n", "n", "n", "y", "n", "y"]}
        >>> print(dawid_skene(labels).to_pandas().round(3).to_string(index=False))
         item label  p_n  p_y
            1     y  0.0  1.0
            2     n  1.0  0.0
            3     y  0.0  1.0
        """
        df = self.posterior.copy()
        df.columns = [f"p_{c}" for c in df.columns]
        df.insert(0, "label", self.labels.to_numpy())
        return df.rename_axis("item").reset_index()


def dawid_skene(
    labels: Any,
    *,
    item: str = "item",
    rater: str = "rater",
    label: str = "label",
    max_iter: int = 200,
    tol: float = 1e-8,
) -> DawidSkeneResult:
    """Dawid–Skene (1979) EM estimate of true classes and each rater's confusion matrix.

    Each rater ``j`` labels an item of true class ``k`` as ``l`` with probability ``π_j[k, l]``,
    independently given the class; classes have prevalence ``p_k``. EM starts from the vote shares
    of each item (the soft majority vote: Dawid & Skene's initialisation), then alternates the M step
    (prevalences and confusion matrices from the current posteriors) and the E step (posteriors),
    until the observed-data log-likelihood changes by less than ``tol`` relative. The classes are
    identified only up to relabelling: the fit assumes most raters do better than chance (when
    most flip the labels, it returns the flipped solution). A rater may label
    an item more than once. Zero confusion probabilities are floored at 1e-12 inside the logarithm
    (a numerical guard only). At most 50 distinct labels (it is a model for categories).

    Parameters
    ----------
    labels : pandas or polars DataFrame, dict of arrays, or path
        Long format: one row per (item, rater, label).
    item, rater, label : str
        Column names.
    max_iter : int
    tol : float

    Returns
    -------
    DawidSkeneResult

    Examples
    --------
    >>> labels = {"item": [1, 1, 1, 2, 2, 2, 3, 3, 3],
    ...           "rater": ["r1", "r2", "r3"] * 3,
    ...           "label": ["y", "y", "n", "n", "n", "n", "y", "n", "y"]}
    >>> ds = dawid_skene(labels)
    >>> ds.classes, ds.labels.tolist()
    (('n', 'y'), ['y', 'n', 'y'])
    """
    import pandas as pd
    from scipy.sparse import csr_matrix
    from scipy.special import logsumexp

    df = as_frame(labels)
    require_columns(list(df.columns), [item, rater, label], "dawid_skene")
    if len(df) == 0:
        raise CJEInputError("dawid_skene needs labels; the frame has no rows.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise CJEInputError(f"max_iter must be a positive integer; got {max_iter!r}.")
    if not tol > 0:
        raise CJEInputError(f"tol must be positive; got {tol!r}.")
    for col in (item, rater, label):
        bad = _isna(df[col].to_numpy(dtype=object))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"The '{col}' column must be non-empty on every row; row {i} is missing "
                f"({int(bad.sum())} such rows). Drop rows without a label."
            )
    for col, kind in ((item, "id"), (rater, "id"), (label, "label")):  # 1 and "1": refused
        _check_ids(df[col], col, kind=kind)
    _refuse_inf(df[label], label)
    icode, iuniq = pd.factorize(df[item], sort=True)
    rcode, runiq = pd.factorize(df[rater], sort=True)
    classes = _sorted(pd.unique(df[label].to_numpy(dtype=object)))
    lcode = pd.Index(classes, dtype=object).get_indexer(df[label].to_numpy(dtype=object))
    n_items, n_raters, k = len(iuniq), len(runiq), len(classes)
    if k > _MAX_CATEGORIES:
        raise CJEInputError(
            f"Dawid–Skene is for categorical labels; the '{label}' column has {k} distinct values "
            f"(more than {_MAX_CATEGORIES}). Bin or round the scores into categories first, or "
            "aggregate numeric scores with method='mean'."
        )
    if n_raters < 2:
        raise CJEInputError(
            f"Dawid–Skene needs at least 2 raters (judges); got {n_raters} (column '{rater}'). Add "
            "another judge, or aggregate with method='majority' or 'mean'."
        )

    # counts[i, (rater, label)]: how often each rater gave each label to item i (sparse; repeats sum)
    rl = rcode * k + lcode
    counts = csr_matrix((np.ones(rl.size), (icode, rl)), shape=(n_items, n_raters * k))
    # initial posteriors: each item's vote shares (the soft majority vote)
    post = np.asarray(counts @ np.tile(np.eye(k), (n_raters, 1)))
    post /= post.sum(axis=1, keepdims=True)
    counts_t = counts.T.tocsr()
    ll_old = -np.inf
    converged = False
    n_iter = 0
    prior = post.mean(axis=0)
    conf = np.full((n_raters, k, k), 1.0 / k)
    ll = -np.inf
    while n_iter < max_iter:
        n_iter += 1
        # M step: prevalences and confusion rows from the current posteriors
        prior = post.mean(axis=0)
        tally = np.asarray(counts_t @ post)  # [(rater, label), true class]
        conf = tally.reshape(n_raters, k, k).transpose(0, 2, 1)  # [rater, true, label]
        denom = conf.sum(axis=2, keepdims=True)
        conf = np.divide(conf, denom, out=np.full_like(conf, 1.0 / k), where=denom > 0)
        # E step: log p(class) + Σ over the item's labels of log π_rater[class, label]
        logc = np.log(np.maximum(conf, 1e-12)).transpose(0, 2, 1).reshape(n_raters * k, k)
        logp = np.asarray(counts @ logc) + np.log(np.maximum(prior, 1e-300))
        norm = logsumexp(logp, axis=1)
        post = np.exp(logp - norm[:, None])
        ll = float(norm.sum())
        if np.isfinite(ll_old) and abs(ll - ll_old) <= tol * (1.0 + abs(ll_old)):
            converged = True
            break
        ll_old = ll

    idx = pd.Index(iuniq, name=item)
    posterior = pd.DataFrame(post, index=idx, columns=pd.Index(classes, dtype=object))
    cls = np.empty(k, dtype=object)
    cls[:] = classes
    map_labels = pd.Series(cls[np.argmax(post, axis=1)], index=idx, name=label)
    return DawidSkeneResult(
        classes=tuple(classes),
        priors=prior,
        confusion={r: conf[j].copy() for j, r in enumerate(runiq)},
        posterior=posterior,
        labels=map_labels,
        n_iter=n_iter,
        converged=converged,
        log_likelihood=ll,
    )


_DEFAULT_ITEM_COLUMNS = ("prompt_id", "policy", "draw_idx")
_PANEL_METHODS = ("mean", "max", "majority", "dawid_skene")


def aggregate_panel(
    scores: Any,
    *,
    method: str = "mean",
    leave_family_out: bool = False,
    item_columns: Sequence[str] = _DEFAULT_ITEM_COLUMNS,
) -> Any:
    """One score per item from a panel of judges.

    Methods: ``"mean"`` (ordinal or numeric scores), ``"max"`` (binary correctness: correct if any
    judge says so), ``"majority"`` (the most frequent label; a tie goes to the smallest tied label)
    and ``"dawid_skene"`` (the most probable class under :func:`dawid_skene`, fitted on all items).
    The last two are for categorical labels (at most 50 distinct values).

    With ``leave_family_out=True`` each item is scored only by judges whose ``judge_family`` differs
    from the item's ``policy_family`` (self-preference guard); a missing or blank family never matches.
    When no judge shares a family with an item it scores the guard leaves nothing out: a
    :class:`~cje.errors.CJEWarning` says so (the families compared, and the rows whose family is
    missing or blank).

    Parameters
    ----------
    scores : pandas or polars DataFrame, dict of arrays, or path
        Long format, one row per (item, judge): the item columns, ``judge``, ``judge_score``;
        optional ``judge_family`` and ``policy_family``.
    method : {"mean", "max", "majority", "dawid_skene"}
    leave_family_out : bool
    item_columns : sequence of str
        Columns identifying an item. With the default ``("prompt_id", "policy", "draw_idx")`` the
        ``policy`` and ``draw_idx`` columns may be absent; columns named explicitly must exist.

    Returns
    -------
    pandas.DataFrame
        One row per item (sorted by the item columns): the item columns, ``judge_score`` (the
        aggregate) and ``n_judges`` (judges used); for ``"dawid_skene"`` also ``posterior`` (the
        probability of the chosen class).

    Examples
    --------
    >>> scores = {"prompt_id": ["p1"] * 3 + ["p2"] * 3, "policy": ["m"] * 6,
    ...           "judge": ["j1", "j2", "j3"] * 2, "judge_score": [4, 5, 3, 1, 2, 2]}
    >>> print(aggregate_panel(scores, method="mean").round(3).to_string(index=False))
    prompt_id policy  judge_score  n_judges
           p1      m        4.000         3
           p2      m        1.667         3
    >>> aggregate_panel(scores, method="majority")["judge_score"].tolist()
    [3, 2]
    """
    import pandas as pd

    if method not in _PANEL_METHODS:
        raise CJEInputError(f"method must be one of {', '.join(map(repr, _PANEL_METHODS))}; got {method!r}.")
    df = as_frame(scores)
    if isinstance(item_columns, str):
        item_columns = (item_columns,)
    item_cols = list(item_columns)
    if not item_cols:
        raise CJEInputError("item_columns must name at least one column (e.g. ('prompt_id', 'policy')).")
    if tuple(item_cols) == _DEFAULT_ITEM_COLUMNS:
        item_cols = ["prompt_id"] + [c for c in ("policy", "draw_idx") if c in df.columns]
    needed = item_cols + ["judge", "judge_score"]
    if leave_family_out:
        needed += ["judge_family", "policy_family"]
    what = "aggregate_panel(leave_family_out=True)" if leave_family_out else "aggregate_panel"
    require_columns(list(df.columns), needed, what)
    if len(df) == 0:
        raise CJEInputError("aggregate_panel needs scores; the frame has no rows.")
    pid = df["prompt_id"].to_numpy(dtype=object) if "prompt_id" in df.columns else None
    for col in item_cols + ["judge", "judge_score"]:
        bad = _isna(df[col].to_numpy(dtype=object))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"The '{col}' column must be non-empty on every row; {_row_ref(i, pid)} is missing "
                f"({int(bad.sum())} such rows). Fill it in, or drop the row."
            )
    for col in item_cols + ["judge"]:  # 7 and "7": one id written two ways, refused
        _check_ids(df[col], col)
    if method in ("mean", "max"):
        s = pd.to_numeric(df["judge_score"], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"The 'judge_score' column must be finite for method={method!r}; {_row_ref(i, pid)} "
                f"{_has(df['judge_score'].iloc[i])}. Use numeric scores, or method='majority' for labels."
            )

    if method in ("majority", "dawid_skene"):
        _check_ids(df["judge_score"], "judge_score", kind="label")
        _refuse_inf(df["judge_score"], "judge_score")
        n_labels = df["judge_score"].nunique()
        if n_labels > _MAX_CATEGORIES:
            raise CJEInputError(
                f"method={method!r} is for categorical labels; the 'judge_score' column has {n_labels} "
                f"distinct values (more than {_MAX_CATEGORIES}). Bin or round the scores into "
                "categories first, or use method='mean'."
            )
    work = df[item_cols + ["judge", "judge_score"]].copy()
    work["_item"] = df.groupby(item_cols, sort=True).ngroup().to_numpy()
    dup = work.duplicated(["_item", "judge"])
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise CJEInputError(
            f"Each judge must score an item once; {_row_ref(i, pid)} repeats judge "
            f"{_py(df['judge'].iloc[i])!r} on the same item ({', '.join(item_cols)}). Average repeated "
            "runs per judge first, or add the column that tells them apart to item_columns."
        )
    keys = work.drop_duplicates("_item").sort_values("_item")[["_item"] + item_cols].set_index("_item")

    if leave_family_out:
        pfam = df.groupby(work["_item"].to_numpy())["policy_family"].nunique(dropna=False)
        if (pfam > 1).any():
            it = int(pfam.index[np.flatnonzero(pfam.to_numpy() > 1)[0]])
            raise CJEInputError(
                f"The 'policy_family' column must be constant within an item; item "
                f"{_item_ref(keys, it)} has several values. Fix the family of that policy."
            )
        jf = df["judge_family"].to_numpy(dtype=object)
        pf = df["policy_family"].to_numpy(dtype=object)
        _check_families({"judge_family": jf, "policy_family": pf})
        _check_one_family(df["judge"], jf)
        known = ~_isna(jf) & ~_isna(pf) & ~_blank(jf) & ~_blank(pf)  # a blank family is unknown
        same = known & (family_keys(jf) == family_keys(pf))
        kept = work.loc[~same]
        lost = np.setdiff1d(work["_item"].unique(), kept["_item"].unique())
        if lost.size:
            it = int(lost[0])
            fam = pf[np.flatnonzero(work["_item"].to_numpy() == it)[0]]
            raise CJEInputError(
                f"Item {_item_ref(keys, it)} has no judge left after leave_family_out: every judge of it "
                f"is of its policy_family {_py(fam)!r} ({lost.size} such items). Add a judge from another "
                "family, or pass leave_family_out=False."
            )
        if not same.any():  # before: the guard left nothing out, without a word
            blank = int((~known).sum())
            warnings.warn(
                "leave_family_out=True has no effect on these scores: no judge shares a family "
                f"with the policy of an item it scores (judge families "
                f"{sorted(map(str, set(jf[known])))}, policy families "
                f"{sorted(map(str, set(pf[known])))})"
                + (f"; {blank} row(s) have a missing or blank family, which never matches" if blank
                   else "") + ". Every judge's score is kept.", CJEWarning, stacklevel=2)
        work = kept

    grouped = work.groupby("_item", sort=True)
    n_judges = grouped["judge"].nunique()
    extra: dict[str, Any] = {}
    if method in ("mean", "max"):
        num = pd.to_numeric(work["judge_score"]).astype(np.float64).groupby(work["_item"], sort=True)
        agg = num.mean() if method == "mean" else num.max()
    elif method == "majority":
        agg = _majority(work)
    else:
        ds = dawid_skene(work, item="_item", rater="judge", label="judge_score")
        if not ds.converged:  # the result's flag is not in the returned frame: say it
            warnings.warn(
                f"aggregate_panel: the Dawid–Skene EM stopped at its {ds.n_iter}-iteration limit "
                "before converging; the posterior column may still move (the labels seldom do). "
                "Fit cje.pairwise.dawid_skene with a larger max_iter to check.",
                CJEWarning,
                stacklevel=2,
            )
        agg = ds.labels
        extra["posterior"] = ds.posterior.max(axis=1)

    out = keys.loc[n_judges.index].copy()
    out["judge_score"] = agg.reindex(n_judges.index).to_numpy()
    out["n_judges"] = n_judges.to_numpy().astype(np.int64)
    for name, ser in extra.items():
        out[name] = ser.reindex(n_judges.index).to_numpy()
    return out.reset_index(drop=True)


def _blank(values: np.ndarray) -> np.ndarray:
    """Whether each cell is an empty or all-space string."""
    return np.array([isinstance(v, str) and not v.strip() for v in values.tolist()], dtype=bool)


def _item_ref(keys: Any, it: int) -> str:
    row = keys.loc[it]
    return "(" + ", ".join(f"{c}={_py(row[c])!r}" for c in keys.columns) + ")"


def _majority(work: Any) -> Any:
    """Most frequent label per item; ties go to the smallest tied label."""
    import pandas as pd

    classes = _sorted(pd.unique(work["judge_score"].to_numpy(dtype=object)))
    rank = pd.Index(classes, dtype=object).get_indexer(work["judge_score"].to_numpy(dtype=object))
    items = work["_item"].to_numpy()
    uniq, icode = np.unique(items, return_inverse=True)
    counts = np.zeros((uniq.size, len(classes)), dtype=np.int64)
    np.add.at(counts, (icode, rank), 1)
    best = np.argmax(counts, axis=1)  # first maximum = smallest label
    cls = np.empty(len(classes), dtype=object)
    cls[:] = classes
    return pd.Series(cls[best], index=uniq)
