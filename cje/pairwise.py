"""Pairwise verdicts, judge panels and agreement with the oracle (METHODS §8).

Three groups of tools:

* **Pairwise verdicts → scores.** :func:`win_rates` (ties count ½) and :func:`bradley_terry`
  (item strengths on the log-odds scale with an optional first-slot position effect), both with
  prompt-cluster bootstrap intervals.
* **Judge panels.** :func:`aggregate_panel` turns several judges' scores of the same item into one
  (mean, max, majority vote or Dawid–Skene), optionally leaving out judges of the policy's own
  family; :func:`dawid_skene` is the EM model behind the last method.
* **Agreement with the oracle.** :func:`cohen_kappa`, :func:`krippendorff_alpha`,
  :func:`kendall_tau`, :func:`spearman_rho`, :func:`ndcg_at_k` and :func:`ranking_agreement`.

The pairwise data contract (shared with the bias diagnostics) is one row per verdict with columns
``prompt_id``, ``a_id``, ``b_id`` (the two compared items, e.g. policies), ``slot_a`` (1 or 2: the
position in which item a was shown) and ``winner`` in {"a", "b", "tie"}; ``judge``,
``human_winner`` and ``run`` are optional. Verdicts of every judge and run are pooled; filter the
frame first to analyse one judge.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cje._progress import check_progress, progress_bar
from cje.bias._result import as_frame, require_columns
from cje.errors import CJEInputError, CJEWarning, check_alpha

__all__ = [
    "BradleyTerryResult",
    "DawidSkeneResult",
    "aggregate_panel",
    "bradley_terry",
    "cohen_kappa",
    "dawid_skene",
    "kendall_tau",
    "krippendorff_alpha",
    "ndcg_at_k",
    "ranking_agreement",
    "spearman_rho",
    "win_rates",
]

PAIR_COLUMNS = ("prompt_id", "a_id", "b_id", "slot_a", "winner")
_WINNERS = ("a", "b", "tie")
# Majority vote and Dawid–Skene are for a few categories; more distinct labels mean continuous scores.
_MAX_CATEGORIES = 50
# A Bradley–Terry coefficient beyond this many log-odds units means the MLE diverged (separation):
# a finite data set would need ~e^30 comparisons to support it.
_DIVERGED = 30.0


# ---------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------


def _py(value: Any) -> Any:
    """A numpy scalar as the plain Python value (so messages show ``3``, not ``np.int64(3)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _row_ref(i: int, pid: np.ndarray | None) -> str:
    if pid is not None:
        return f"row {i} (prompt_id={_py(pid[i])!r})"
    return f"row {i}"


def _has(value: Any) -> str:
    """``has 'x'`` for a value, ``is missing`` for None/NaN/NA."""
    import pandas as pd

    try:
        missing = bool(pd.isna(value))
    except (TypeError, ValueError):
        missing = False
    return "is missing" if missing else f"has {_py(value)!r}"


def _sorted(values: Iterable[Any]) -> list[Any]:
    """Values sorted naturally, or by their text when they are not mutually comparable."""
    vals = list(values)
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def _check_n_bootstrap(n_bootstrap: int) -> int:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise CJEInputError(
            f"n_bootstrap must be a non-negative integer; got {n_bootstrap!r}. "
            "Use e.g. n_bootstrap=1000 (0 skips the intervals)."
        )
    return int(n_bootstrap)


def _isna(values: np.ndarray) -> np.ndarray:
    import pandas as pd

    return np.asarray(pd.isna(values), dtype=bool)


def _pairs_frame(pairs: Any, what: str) -> Any:
    """Validate the pairwise data contract once; return a clean pandas frame.

    The frame has the contract columns with ``slot_a`` as int64 and ``winner`` as str.
    """
    import pandas as pd

    df = as_frame(pairs)
    require_columns(list(df.columns), PAIR_COLUMNS, what)
    n = len(df)
    if n == 0:
        raise CJEInputError(f"{what} needs at least one verdict; the pairs frame has no rows.")
    pid = df["prompt_id"].to_numpy(dtype=object)
    for col in ("prompt_id", "a_id", "b_id"):
        bad = _isna(df[col].to_numpy(dtype=object))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            where = _row_ref(i, None if col == "prompt_id" else pid)
            raise CJEInputError(
                f"The '{col}' column must be non-empty on every row; {where} is missing "
                f"({int(bad.sum())} such rows). Fill it in, or drop the row."
            )
    a = df["a_id"].to_numpy(dtype=object)
    b = df["b_id"].to_numpy(dtype=object)
    same = a == b
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise CJEInputError(
            f"Each verdict must compare two different items; {_row_ref(i, pid)} has a_id = b_id = "
            f"{_py(a[i])!r}. Drop self-comparisons."
        )
    win = df["winner"].to_numpy(dtype=object)
    ok = np.array([isinstance(w, str) and w in _WINNERS for w in win], dtype=bool)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CJEInputError(
            f"The 'winner' column must be 'a', 'b' or 'tie'; {_row_ref(i, pid)} {_has(win[i])} "
            f"({int((~ok).sum())} such rows). Map each verdict to 'a' (a_id won), 'b' (b_id won) or 'tie'."
        )
    slot_raw = df["slot_a"].to_numpy(dtype=object)
    slot = pd.to_numeric(pd.Series(slot_raw), errors="coerce").to_numpy(dtype=np.float64)
    ok = (slot == 1.0) | (slot == 2.0)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise CJEInputError(
            f"The 'slot_a' column must be 1 or 2 (the position in which item a was shown); "
            f"{_row_ref(i, pid)} {_has(slot_raw[i])} ({int((~ok).sum())} such rows). "
            "Record 1 if a_id was shown first, 2 if second."
        )
    out = pd.DataFrame(
        {
            "prompt_id": df["prompt_id"].to_numpy(),
            "a_id": a,
            "b_id": b,
            "slot_a": slot.astype(np.int64),
            "winner": win.astype(str),
        }
    )
    return out


def _pair_codes(df: Any) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, int]:
    """Items (sorted), item codes of a and b, prompt codes and the number of prompts."""
    import pandas as pd

    items = _sorted(pd.unique(np.concatenate([df["a_id"].to_numpy(), df["b_id"].to_numpy()])))
    index = pd.Index(items, dtype=object)
    ia = index.get_indexer(df["a_id"].to_numpy())
    ib = index.get_indexer(df["b_id"].to_numpy())
    pcode, puniq = pd.factorize(df["prompt_id"])
    return items, ia.astype(np.int64), ib.astype(np.int64), pcode.astype(np.int64), len(puniq)


def _bootstrap_totals(
    per_prompt: np.ndarray, n_bootstrap: int, gen: np.random.Generator, width: int = 1,
    progress: bool | None = False,
) -> Iterable[np.ndarray]:
    """Yield chunks of prompt-cluster bootstrap totals.

    Each replicate draws ``G`` prompts with replacement; with ``w`` the number of times each prompt
    was drawn, its totals are ``w @ per_prompt``. Chunks keep the ``(chunk, G)`` draw matrix (and the
    caller's ``(chunk, width)`` work arrays) to a few million entries. ``progress`` counts the
    replicates on a bar (see :func:`cje._progress.progress_bar`).
    """
    g = per_prompt.shape[0]
    chunk = max(1, min(n_bootstrap, 2_000_000 // max(g, width, 1)))
    done = 0
    bar = progress_bar(progress, n_bootstrap, desc="bootstrap", unit="rep")
    try:
        while done < n_bootstrap:
            b = min(chunk, n_bootstrap - done)
            draws = gen.integers(0, g, size=(b, g))
            w = np.stack([np.bincount(row, minlength=g) for row in draws]).astype(np.float64)
            yield w @ per_prompt
            done += b
            bar.update(b)
    finally:
        bar.close()


def _percentile_ci(reps: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval per column, ignoring NaN replicates (NaN when a column has none)."""
    ok = ~np.isnan(reps)
    lo = np.full(reps.shape[1], np.nan)
    hi = np.full(reps.shape[1], np.nan)
    for j in range(reps.shape[1]):
        r = reps[ok[:, j], j]
        if r.size:
            lo[j], hi[j] = np.quantile(r, [alpha / 2, 1 - alpha / 2])
    return lo, hi


# ---------------------------------------------------------------------------------------------
# win rates
# ---------------------------------------------------------------------------------------------


def win_rates(
    pairs: Any,
    *,
    alpha: float = 0.05,
    n_bootstrap: int = 2000,
    rng: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> Any:
    """Each item's win rate over its pairwise comparisons, ties counting ½.

    ``win_rate = (wins + ties / 2) / n_comparisons`` over every verdict involving the item (all
    judges and runs pooled). The interval is a percentile prompt-cluster bootstrap: prompts are
    resampled with replacement, keeping all verdicts of a drawn prompt together. A replicate in which
    an item has no comparison is skipped for that item.

    Parameters
    ----------
    pairs : pandas or polars DataFrame, dict of arrays, or path
        One row per verdict: ``prompt_id``, ``a_id``, ``b_id``, ``slot_a``, ``winner``.
    alpha : float
        ``1 − alpha`` intervals.
    n_bootstrap : int
        Bootstrap replicates (0 skips the intervals, leaving them NaN).
    rng : int, numpy.random.Generator or None
        Seed or generator of the bootstrap.
    progress : bool, optional
        A progress bar over the bootstrap: ``None`` (default) on a terminal once it has run
        for a second, ``True`` always, ``False`` never.

    Returns
    -------
    pandas.DataFrame
        One row per item: ``item``, ``n_comparisons``, ``wins``, ``losses``, ``ties``, ``win_rate``,
        ``ci_low``, ``ci_high``; sorted by ``win_rate`` descending (then by item).

    Examples
    --------
    >>> pairs = {"prompt_id": ["p1", "p1", "p2", "p3"], "a_id": ["x", "x", "y", "x"],
    ...          "b_id": ["y", "z", "z", "y"], "slot_a": [1, 2, 1, 2],
    ...          "winner": ["a", "tie", "b", "b"]}
    >>> t = win_rates(pairs, n_bootstrap=200, rng=0)
    >>> cols = ["item", "n_comparisons", "wins", "losses", "ties", "win_rate"]
    >>> print(t[cols].round(3).to_string(index=False))
    item  n_comparisons  wins  losses  ties  win_rate
       z              2     1       0     1     0.750
       x              3     1       1     1     0.500
       y              3     1       2     0     0.333
    """
    import pandas as pd

    alpha = check_alpha(alpha)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    check_progress(progress)
    df = _pairs_frame(pairs, "win_rates")
    items, ia, ib, pcode, g = _pair_codes(df)
    k = len(items)
    win = df["winner"].to_numpy()
    score_a = np.where(win == "a", 1.0, np.where(win == "tie", 0.5, 0.0))

    wins = np.bincount(ia, weights=win == "a", minlength=k) + np.bincount(ib, weights=win == "b", minlength=k)
    losses = np.bincount(ia, weights=win == "b", minlength=k) + np.bincount(
        ib, weights=win == "a", minlength=k
    )
    ties = np.bincount(ia, weights=win == "tie", minlength=k) + np.bincount(
        ib, weights=win == "tie", minlength=k
    )
    n_comp = np.bincount(ia, minlength=k) + np.bincount(ib, minlength=k)
    rate = (wins + 0.5 * ties) / n_comp

    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    if n_bootstrap > 0:
        # per-prompt totals: [comparisons per item | score per item]
        per_prompt = np.zeros((g, 2 * k))
        np.add.at(per_prompt, (pcode, ia), 1.0)
        np.add.at(per_prompt, (pcode, ib), 1.0)
        np.add.at(per_prompt, (pcode, k + ia), score_a)
        np.add.at(per_prompt, (pcode, k + ib), 1.0 - score_a)
        gen = np.random.default_rng(rng)
        reps = []
        for tot in _bootstrap_totals(per_prompt, n_bootstrap, gen, progress=progress):
            with np.errstate(invalid="ignore", divide="ignore"):
                reps.append(tot[:, k:] / tot[:, :k])
        lo, hi = _percentile_ci(np.vstack(reps), alpha)

    out = pd.DataFrame(
        {
            "item": pd.Series(items, dtype=object),
            "n_comparisons": n_comp.astype(np.int64),
            "wins": wins.astype(np.int64),
            "losses": losses.astype(np.int64),
            "ties": ties.astype(np.int64),
            "win_rate": rate,
            "ci_low": lo,
            "ci_high": hi,
        }
    )
    out["_order"] = np.arange(k)
    out = out.sort_values(["win_rate", "_order"], ascending=[False, True], kind="stable")
    return out.drop(columns="_order").reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# Bradley–Terry
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BradleyTerryResult:
    """Bradley–Terry strengths with prompt-cluster bootstrap intervals.

    ``P(i beats j) = σ(strength_i − strength_j + position_effect · s)`` with ``s = +1`` when ``i``
    was shown in the first slot and ``−1`` when in the second.

    Attributes
    ----------
    items : tuple
        The items, sorted.
    strength, ci_low, ci_high : numpy.ndarray
        Strengths (log-odds scale, ``reference`` fixed at 0) and their ``1 − alpha`` percentile
        bootstrap intervals (``[0, 0]`` for the reference; NaN when ``n_bootstrap`` was 0).
    position_effect : float or None
        Log-odds advantage of the first slot (None when fitted without a position intercept).
    position_ci : tuple of float or None
    n_pairs : int
        Verdicts used.
    n_prompts : int
        Distinct prompts (bootstrap clusters).
    alpha : float
    reference : object
        The item whose strength is fixed at 0.
    n_bootstrap : int
        Replicates requested.
    n_bootstrap_failed : int
        Replicates whose MLE did not exist (a resample where some item never lost or never won);
        they are left out of the intervals.
    warnings : tuple of str

    Examples
    --------
    >>> import cje
    >>> pairs = cje.synthetic.make_pairwise_eval(100, rng=0).pairs   # items A > B > C > D
    >>> bt = bradley_terry(pairs, n_bootstrap=100, rng=0)
    >>> bt.items, bt.reference, bt.n_pairs, bt.n_prompts
    (('A', 'B', 'C', 'D'), 'A', 1200, 100)
    >>> bt.strength.round(2).tolist()
    [0.0, -0.12, -0.62, -0.75]
    >>> bool(bt.ci_high[3] < 0)   # D is reliably weaker than the reference A
    True
    """

    items: tuple[Any, ...]
    strength: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    position_effect: float | None
    position_ci: tuple[float, float] | None
    n_pairs: int
    n_prompts: int
    alpha: float
    reference: Any = None
    n_bootstrap: int = 0
    n_bootstrap_failed: int = 0
    warnings: tuple[str, ...] = ()

    def _index(self, item: Any) -> int:
        try:
            return self.items.index(item)
        except ValueError:
            raise CJEInputError(
                f"Unknown item {item!r}; the fitted items are {list(self.items)!r}."
            ) from None

    def win_probability(self, i: Any, j: Any, *, slot: int | None = None) -> float:
        """Model probability that item ``i`` beats item ``j``.

        Parameters
        ----------
        i, j : item ids
        slot : {None, 1, 2}
            None: position-free, ``σ(strength_i − strength_j)``. 1 or 2: ``i`` shown in that slot,
            adding ``±position_effect``.

        Returns
        -------
        float

        Examples
        --------
        >>> r = BradleyTerryResult(("x", "y"), np.array([0.0, np.log(3)]), np.zeros(2), np.zeros(2),
        ...                        0.0, (0.0, 0.0), 10, 5, 0.05, "x")
        >>> round(r.win_probability("y", "x"), 3)
        0.75
        """
        from scipy.special import expit

        d = float(self.strength[self._index(i)] - self.strength[self._index(j)])
        if slot is not None:
            if slot not in (1, 2):
                raise CJEInputError(f"slot must be None, 1 or 2; got {slot!r}.")
            d += (1.0 if slot == 1 else -1.0) * float(self.position_effect or 0.0)
        return float(expit(d))

    def to_pandas(self) -> Any:
        """Per item: ``item``, ``strength``, ``ci_low``, ``ci_high``, ``reference``; strongest first.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import cje
        >>> pairs = cje.synthetic.make_pairwise_eval(100, rng=0).pairs
        >>> t = bradley_terry(pairs, n_bootstrap=100, rng=0).to_pandas()
        >>> print(t.round(2).to_string(index=False))
        item  strength  ci_low  ci_high  reference
           A      0.00    0.00     0.00       True
           B     -0.12   -0.35     0.14      False
           C     -0.62   -0.85    -0.42      False
           D     -0.75   -1.03    -0.51      False
        """
        import pandas as pd

        df = pd.DataFrame(
            {
                "item": pd.Series(self.items, dtype=object),
                "strength": self.strength,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "reference": [it == self.reference for it in self.items],
            }
        )
        return df.sort_values("strength", ascending=False, kind="stable").reset_index(drop=True)

    def summary(self) -> str:
        """A readable table of strengths and the position effect.

        Returns
        -------
        str

        Examples
        --------
        >>> import cje
        >>> pairs = cje.synthetic.make_pairwise_eval(100, rng=0).pairs
        >>> print(bradley_terry(pairs, n_bootstrap=100, rng=0).summary())
        Bradley–Terry strengths (log-odds, 'A' = 0); 1200 verdicts on 100 prompts; 95% prompt-bootstrap CIs
        <BLANKLINE>
          A                          +0.000  [+0.000, +0.000]
          B                          -0.121  [-0.351, +0.145]
          C                          -0.622  [-0.850, -0.420]
          D                          -0.753  [-1.032, -0.511]
          (first-slot advantage)     +0.089  [-0.004, +0.183]
        """
        level = int(round(100 * (1 - self.alpha)))
        out = [
            f"Bradley–Terry strengths (log-odds, {self.reference!r} = 0); {self.n_pairs} verdicts on "
            f"{self.n_prompts} prompts; {level}% prompt-bootstrap CIs",
            "",
        ]
        for row in self.to_pandas().itertuples(index=False):
            out.append(
                f"  {str(row.item)[:24]:<24} {row.strength:+8.3f}  [{row.ci_low:+.3f}, {row.ci_high:+.3f}]"
            )
        if self.position_effect is not None and self.position_ci is not None:
            lo, hi = self.position_ci
            out.append(
                f"  {'(first-slot advantage)':<24} {self.position_effect:+8.3f}  [{lo:+.3f}, {hi:+.3f}]"
            )
        out += [f"  ! {w}" for w in self.warnings]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()


def _unbeaten_group(beats: np.ndarray) -> np.ndarray | None:
    """Indices of a group of items no outside item ever beat, or None if the graph is strongly connected.

    ``beats[i, j] > 0`` when ``i`` beat (or tied) ``j`` at least once. Ford (1957): the
    Bradley–Terry MLE exists iff this directed graph is strongly connected.
    """
    from scipy.sparse.csgraph import connected_components

    n_comp, lab = connected_components(beats > 0, directed=True, connection="strong")
    if n_comp == 1:
        return None
    for c in range(n_comp):
        inside = lab == c
        if not (beats[np.ix_(~inside, inside)] > 0).any():
            return np.flatnonzero(inside)
    return np.flatnonzero(lab == 0)  # pragma: no cover - a DAG always has a source


def _strongly_connected_batch(beats: np.ndarray) -> np.ndarray:
    """For a stack ``(B, K, K)`` of beat matrices: is each directed graph strongly connected?"""
    k = beats.shape[1]
    reach = ((beats > 0) | np.eye(k, dtype=bool)).astype(np.float64)
    steps = 1
    while steps < k:
        reach = (reach @ reach > 0).astype(np.float64)
        steps *= 2
    return np.asarray(reach.min(axis=(1, 2)) > 0)


def _newton_logit_batch(
    x: np.ndarray,
    succ: np.ndarray,
    tot: np.ndarray,
    start: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> tuple[np.ndarray, np.ndarray]:
    """Unpenalised logistic-regression MLE for many weight vectors at once (Newton–Raphson).

    Design ``x`` (M, p) is shared; ``succ`` and ``tot`` (B, M) are each replicate's successes and
    trials per design row. Returns the (B, p) coefficients and a per-replicate convergence flag. Used
    for the bootstrap, where one statsmodels refit per replicate would dominate the run time.
    """
    from scipy.special import expit

    beta = np.array(np.broadcast_to(start, (succ.shape[0], x.shape[1])), dtype=np.float64)
    converged = np.zeros(succ.shape[0], dtype=bool)
    ridge = 1e-12 * np.eye(x.shape[1])
    for _ in range(max_iter):
        mu = expit(beta @ x.T)
        grad = (succ - tot * mu) @ x
        w = tot * mu * (1.0 - mu)
        hess = np.einsum("bm,mp,mq->bpq", w, x, x) + ridge
        step = np.linalg.solve(hess, grad[..., None])[..., 0]
        size = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, 5.0 / np.maximum(size, 1e-300))[:, None]  # damp wild first steps
        beta += step
        converged = size < tol
        if converged.all():
            break
    return beta, converged


def bradley_terry(
    pairs: Any,
    *,
    position_intercept: bool = True,
    reference: Any = None,
    alpha: float = 0.05,
    n_bootstrap: int = 1000,
    rng: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> BradleyTerryResult:
    """Bradley–Terry strengths of the compared items, with an optional first-slot position effect.

    Maximum likelihood for ``logit P(a wins) = θ_a − θ_b + γ · s`` where ``s = +1`` if item a was
    shown first (``slot_a == 1``) and ``−1`` otherwise: an unpenalised logistic regression (statsmodels
    GLM, binomial family) on the ±1 design (``+1`` in a's column, ``−1`` in b's), with the slot
    column as the optional position intercept. ``γ`` is the log-odds that the first-shown of two
    equally strong items wins. A tie enters as two half-weight rows, one won by a and one by b (the
    usual "tie = half a win" convention). Strengths are identified by fixing ``reference`` at 0.

    Intervals are percentile prompt-cluster bootstraps: prompts are resampled with replacement and
    the model is refitted (a batched Newton solver warm-started at the estimate). A resample in which
    the MLE does not exist (some item never lost or never won) is left out and counted.

    Parameters
    ----------
    pairs : pandas or polars DataFrame, dict of arrays, or path
        One row per verdict: ``prompt_id``, ``a_id``, ``b_id``, ``slot_a``, ``winner``.
    position_intercept : bool
        Estimate the first-slot advantage ``γ`` (needs verdicts in both slot orders).
    reference : item id, optional
        The item fixed at strength 0; default the first item in sorted order.
    alpha : float
        ``1 − alpha`` intervals.
    n_bootstrap : int
        Bootstrap replicates (0 skips the intervals, leaving them NaN).
    rng : int, numpy.random.Generator or None
        Seed or generator of the bootstrap.
    progress : bool, optional
        A progress bar over the bootstrap: ``None`` (default) on a terminal once it has run
        for a second, ``True`` always, ``False`` never.

    Returns
    -------
    BradleyTerryResult

    Raises
    ------
    CJEInputError
        Missing columns or bad values; an unknown ``reference``; strengths that are not identified
        (some group of items never lost to the others: Ford's condition), or a position effect that
        is not identified (every verdict in one slot order, or the first slot always winning).

    Examples
    --------
    >>> pairs = {"prompt_id": [f"p{i}" for i in range(8)],
    ...          "a_id": ["x", "y", "x", "y", "x", "z", "z", "y"],
    ...          "b_id": ["y", "x", "z", "z", "z", "y", "x", "z"],
    ...          "slot_a": [1, 2, 1, 2, 2, 1, 2, 1],
    ...          "winner": ["a", "b", "a", "b", "tie", "b", "b", "a"]}
    >>> bt = bradley_terry(pairs, position_intercept=False, n_bootstrap=0)
    >>> bt.items, bt.reference, bool(bt.strength[1] < 0)
    (('x', 'y', 'z'), 'x', True)
    """
    alpha = check_alpha(alpha)
    n_bootstrap = _check_n_bootstrap(n_bootstrap)
    check_progress(progress)
    df = _pairs_frame(pairs, "bradley_terry")
    items, ia, ib, pcode, g = _pair_codes(df)
    k = len(items)
    if k < 2:  # pragma: no cover - a_id != b_id guarantees two items
        raise CJEInputError("bradley_terry needs at least two items.")
    if reference is None:
        ref = 0
    else:
        matches = [i for i, it in enumerate(items) if it == reference]
        if not matches:
            raise CJEInputError(
                f"reference={reference!r} is not among the compared items {items!r}; pass one of them "
                "(or None for the first in sorted order)."
            )
        ref = matches[0]

    # Orient every verdict by slot: "first" is the item shown first. Sufficient statistics are then
    # per ordered cell (first, second): trials and first-item wins (ties ½).
    win = df["winner"].to_numpy()
    y_a = np.where(win == "a", 1.0, np.where(win == "tie", 0.5, 0.0))
    a_first = df["slot_a"].to_numpy() == 1
    first = np.where(a_first, ia, ib)
    second = np.where(a_first, ib, ia)
    y_first = np.where(a_first, y_a, 1.0 - y_a)
    cell_id = first * k + second
    cells = np.unique(cell_id)
    m = cells.size
    cidx = np.searchsorted(cells, cell_id)

    free = [j for j in range(k) if j != ref]
    p = len(free) + (1 if position_intercept else 0)
    x = np.zeros((m, p))
    cf, cs = cells // k, cells % k
    col = {j: c for c, j in enumerate(free)}
    for r in range(m):
        if cf[r] in col:
            x[r, col[cf[r]]] += 1.0
        if cs[r] in col:
            x[r, col[cs[r]]] -= 1.0
    if position_intercept:
        x[:, -1] = 1.0  # in first/second orientation the ±1 slot column is an intercept

    tot = np.bincount(cidx, minlength=m).astype(np.float64)
    succ = np.bincount(cidx, weights=y_first, minlength=m)

    # Ford's condition: the beat graph (ties count both ways) must be strongly connected.
    beats = np.zeros((k, k))
    np.add.at(beats, (cf, cs), succ)
    np.add.at(beats, (cs, cf), tot - succ)
    group = _unbeaten_group(beats)
    if group is not None:
        inside = [items[i] for i in group]
        outside = [it for i, it in enumerate(items) if i not in set(group.tolist())]
        raise CJEInputError(
            f"Bradley–Terry strengths are not identified: items {inside!r} never lost to (nor tied with) "
            f"any of {outside!r}, so the maximum-likelihood strengths are infinite (Ford's condition). "
            "Collect more comparisons between these groups, or report win_rates() instead."
        )
    if position_intercept and np.linalg.matrix_rank(x) < p:
        raise CJEInputError(
            "The position effect is not identified: the slot order does not vary enough to separate "
            "it from the strengths (e.g. each pair is always shown in the same order; check the "
            "'slot_a' column). Show pairs in both orders, or pass position_intercept=False."
        )

    beta = _fit_glm(x, succ, tot)
    if beta is None:
        raise CJEInputError(
            "The Bradley–Terry fit did not converge to a finite MLE on these verdicts (e.g. the first "
            "slot always wins or always loses). Collect verdicts where the position does not decide, "
            "or pass position_intercept=False."
        )

    strength = np.zeros(k)
    strength[free] = beta[: len(free)]
    pos = float(beta[-1]) if position_intercept else None

    lo = np.full(k, np.nan)
    hi = np.full(k, np.nan)
    pos_ci: tuple[float, float] | None = (float("nan"), float("nan")) if position_intercept else None
    n_failed = 0
    notes: list[str] = []
    if n_bootstrap > 0:
        per_prompt = np.zeros((g, 2 * m))
        np.add.at(per_prompt, (pcode, cidx), 1.0)
        np.add.at(per_prompt, (pcode, m + cidx), y_first)
        gen = np.random.default_rng(rng)
        reps = []
        for t in _bootstrap_totals(per_prompt, n_bootstrap, gen, width=k * k,
                                       progress=progress):
            t_tot, t_succ = t[:, :m], t[:, m:]
            bb = np.zeros((t.shape[0], k, k))
            bb[:, cf, cs] += t_succ
            bb[:, cs, cf] += t_tot - t_succ
            ok = _strongly_connected_batch(bb)
            est = np.full((t.shape[0], p), np.nan)
            if ok.any():
                b_ok, conv = _newton_logit_batch(x, t_succ[ok], t_tot[ok], beta)
                bad = ~conv | ~np.isfinite(b_ok).all(axis=1) | (np.abs(b_ok) > _DIVERGED).any(axis=1)
                b_ok[bad] = np.nan
                est[ok] = b_ok
            reps.append(est)
        rep = np.vstack(reps)
        n_failed = int(np.isnan(rep).any(axis=1).sum())
        r_lo, r_hi = _percentile_ci(rep, alpha)
        lo[:] = 0.0
        hi[:] = 0.0
        lo[free], hi[free] = r_lo[: len(free)], r_hi[: len(free)]
        if position_intercept:
            pos_ci = (float(r_lo[-1]), float(r_hi[-1]))
        if n_failed:
            msg = (
                f"{n_failed} of {n_bootstrap} bootstrap resamples had no finite MLE (some item never "
                "lost or never won) and were left out; the intervals may be too narrow. Collect more "
                "comparisons per item."
            )
            notes.append(msg)
            warnings.warn(msg, CJEWarning, stacklevel=2)

    return BradleyTerryResult(
        items=tuple(items),
        strength=strength,
        ci_low=lo,
        ci_high=hi,
        position_effect=pos,
        position_ci=pos_ci,
        n_pairs=len(df),
        n_prompts=g,
        alpha=alpha,
        reference=items[ref],
        n_bootstrap=n_bootstrap,
        n_bootstrap_failed=n_failed,
        warnings=tuple(notes),
    )


def _fit_glm(x: np.ndarray, succ: np.ndarray, tot: np.ndarray) -> np.ndarray | None:
    """Binomial GLM (logit link, no penalty) on per-cell successes/trials; None if it diverged.

    Each cell becomes two rows, ``y = 1`` with weight ``succ`` and ``y = 0`` with weight
    ``tot − succ`` (so a tie is one half-weight row of each), fitted by statsmodels' IRLS.
    """
    from statsmodels.genmod.families import Binomial
    from statsmodels.genmod.generalized_linear_model import GLM
    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    y = np.concatenate([np.ones(len(succ)), np.zeros(len(succ))])
    w = np.concatenate([succ, tot - succ])
    xx = np.vstack([x, x])
    keep = w > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        try:
            res = GLM(y[keep], xx[keep], family=Binomial(), freq_weights=w[keep]).fit(tol=1e-12, maxiter=200)
        except (PerfectSeparationWarning, np.linalg.LinAlgError):
            return None
    beta = np.asarray(res.params, dtype=np.float64)
    if not res.converged or not np.isfinite(beta).all() or (np.abs(beta) > _DIVERGED).any():
        return None
    return beta


# ---------------------------------------------------------------------------------------------
# Dawid–Skene
# ---------------------------------------------------------------------------------------------


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
        Items × classes posterior probabilities (index: item ids; columns: ``classes``).
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
    until the observed-data log-likelihood changes by less than ``tol`` relative. A rater may label
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


# ---------------------------------------------------------------------------------------------
# judge panels
# ---------------------------------------------------------------------------------------------

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
    from the item's ``policy_family`` (self-preference guard); a missing family never matches.

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
        same = ~_isna(jf) & ~_isna(pf) & (jf == pf)
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
        agg = ds.labels
        extra["posterior"] = ds.posterior.max(axis=1)

    out = keys.loc[n_judges.index].copy()
    out["judge_score"] = agg.reindex(n_judges.index).to_numpy()
    out["n_judges"] = n_judges.to_numpy().astype(np.int64)
    for name, ser in extra.items():
        out[name] = ser.reindex(n_judges.index).to_numpy()
    return out.reset_index(drop=True)


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


# ---------------------------------------------------------------------------------------------
# agreement with the oracle
# ---------------------------------------------------------------------------------------------


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
    scikit-learn).

    Parameters
    ----------
    a, b : array-like
        Labels (numbers or strings) of the same units.
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
    """Kendall's τ-b between two score vectors and its two-sided p-value (scipy).

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
    return float(res.statistic), float(res.pvalue)


def spearman_rho(x: Any, y: Any) -> tuple[float, float]:
    """Spearman's ρ between two score vectors and its two-sided p-value (scipy).

    With two elements ρ is ±1 and the exact p-value is 1.

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
    p = 1.0 if a.size == 2 else float(res.pvalue)
    return float(res.statistic), p


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
