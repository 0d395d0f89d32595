"""Inference from influence values: prompt-clustered variance, the prompt-cluster bootstrap, the
OUA jackknife, intervals, paired contrasts and Holm adjustment (docs: Methods › Inference).

Every function here works on numbers an estimator produced (per-row influence values, point
estimates, jackknife replicates); none knows which estimator made them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from cje._progress import progress_iter
from cje._tdist import t_ppf, t_sf
from cje.results import Contrast

if TYPE_CHECKING:
    from cje.results import PolicyEstimate

__all__ = [
    "cluster_variance",
    "cluster_totals",
    "cluster_correlation",
    "cluster_effective_size",
    "cluster_robust_covariance",
    "cluster_ols",
    "check_n_bootstrap",
    "cluster_bootstrap_weights",
    "cluster_bootstrap_totals",
    "expanded_alpha",
    "percentile_interval",
    "jackknife_variance",
    "oua_jackknife",
    "satterthwaite_df",
    "satterthwaite_dfs",
    "probe_satterthwaite_df",
    "component_satterthwaite_df",
    "cap_at_effective_prompts",
    "t_interval",
    "clip_interval",
    "holm",
    "paired_contrasts",
    "ranking_tiers",
]


def cluster_totals(phi: np.ndarray, cluster: np.ndarray, n_clusters: int) -> np.ndarray:
    """Per-cluster sums ``T_g = Σ_{i∈g} φ_i`` (length ``n_clusters``).

    Parameters
    ----------
    phi : numpy.ndarray
        Influence values of the rows.
    cluster : numpy.ndarray of int
        Cluster code per row, in ``0..n_clusters−1``.
    n_clusters : int
        Length of the result (clusters without rows get 0).

    Returns
    -------
    numpy.ndarray of shape (n_clusters,)

    Examples
    --------
    >>> cluster_totals(np.array([1.0, -1.0, 2.0]), np.array([0, 0, 2]), 3).tolist()
    [0.0, 0.0, 2.0]
    """
    return np.bincount(cluster, weights=phi, minlength=n_clusters)


def cluster_variance(phi: np.ndarray, cluster: np.ndarray, n: int | None = None, *,
                     totals: np.ndarray | None = None, counts: np.ndarray | None = None
                     ) -> tuple[float, int]:
    """Prompt-clustered variance of a mean estimator from its influence values.

    ``Var = G/(G−1) · Σ_g T_g² / n²`` with ``T_g`` the sum of ``φ`` over cluster ``g``, ``G`` the
    number of clusters present and ``n`` the number of rows. This equals statsmodels' cluster-robust
    variance of the intercept in an intercept-only OLS fit (``cov_type="cluster"``).

    Parameters
    ----------
    phi : numpy.ndarray
        Influence values (mean zero) of the rows.
    cluster : numpy.ndarray of int
        Cluster code per row (prompt).
    n : int, optional
        Number of rows behind ``phi``, when ``phi`` already holds per-cluster totals (the
        out-of-core engines: one value per prompt); by default ``phi``'s length.
    totals, counts : numpy.ndarray, optional
        ``np.bincount(cluster, weights=phi, minlength=m)`` and ``np.bincount(cluster,
        minlength=m)`` (any ``m``), when the caller has them: the same variance, bit for bit,
        without two more passes over the rows.

    Returns
    -------
    (variance, G)

    Examples
    --------
    >>> v, g = cluster_variance(np.array([1.0, -1.0, 1.0, -1.0]), np.array([0, 1, 2, 3]))
    >>> round(v, 6), g
    (0.333333, 4)
    """
    n = phi.shape[0] if n is None else n
    if totals is None or counts is None:
        t = np.bincount(cluster, weights=phi)
        g = int(np.count_nonzero(np.bincount(cluster)))
    else:
        # the first max + 1 entries are bincount's without minlength (the sum below runs over
        # exactly those, as it would); the clusters present are the non-zero counts
        t = totals[: int(cluster.max()) + 1 if cluster.size else 0]
        g = int(np.count_nonzero(counts))
    if g < 2:
        return float("nan"), g
    return g / (g - 1) * float((t * t).sum()) / n**2, g


def cluster_correlation(y1: np.ndarray, c1: np.ndarray, y2: np.ndarray, c2: np.ndarray,
                        n_clusters: int) -> float:
    """Cluster-robust correlation of two sample means computed on rows of the same clusters.

    ``ρ = Σ_g T1_g T2_g / √(Σ_g T1_g² · Σ_g T2_g²)`` with ``Tk_g`` the sum of ``yk − ȳk`` over the
    rows of sample ``k`` in cluster ``g`` (the two clustered variances share the ``1/n`` factors,
    which cancel). 0 when either variance vanishes; clipped to [−1, 1].

    Parameters
    ----------
    y1, y2 : numpy.ndarray
        The two samples' values.
    c1, c2 : numpy.ndarray of int
        Cluster code of each row, in ``0..n_clusters−1`` (one coding for both samples).
    n_clusters : int

    Returns
    -------
    float

    Examples
    --------
    >>> c = np.array([0, 1, 2, 3])
    >>> cluster_correlation(np.array([1.0, 0, 1, 0]), c, np.array([0.0, 1, 0, 1]), c, 4)
    -1.0
    """
    t1 = cluster_totals(y1 - y1.mean(), c1, n_clusters)
    t2 = cluster_totals(y2 - y2.mean(), c2, n_clusters)
    den = float(np.sqrt(float(t1 @ t1) * float(t2 @ t2)))
    return float(np.clip(float(t1 @ t2) / den, -1.0, 1.0)) if den > 0 else 0.0


def cluster_effective_size(y: np.ndarray, cluster: np.ndarray, n_clusters: int) -> float:
    """Effective sample size of a proportion under clustering: ``p̂(1 − p̂) / Var_cluster(p̂)``.

    ``Var_cluster(p̂) = Σ_g T_g² / n²`` with ``T_g`` the sum of ``y − p̂`` over cluster ``g``;
    the size is capped at the row count ``n`` and is ``n_clusters`` when ``p̂`` is 0 or 1 (or
    the variance vanishes). With one row per cluster it is ``n`` (up to rounding).

    Parameters
    ----------
    y : numpy.ndarray
        0/1 outcomes (fractions allowed).
    cluster : numpy.ndarray of int
        Cluster code of each row, in ``0..n_clusters−1``.
    n_clusters : int

    Returns
    -------
    float

    Examples
    --------
    Two prompts, each with two identical verdicts, count as two:

    >>> cluster_effective_size(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0, 0, 1, 1]), 2)
    2.0
    """
    n = y.size
    p = float(y.mean())
    t = cluster_totals(y - p, cluster, n_clusters)
    var = float(t @ t) / n**2
    if 0.0 < p < 1.0 and var > 0.0:
        return min(float(n), p * (1.0 - p) / var)
    return float(n_clusters)


def cluster_robust_covariance(xh: np.ndarray, u: np.ndarray, groups: np.ndarray,
                              bread: np.ndarray) -> np.ndarray:
    """Cluster-robust (sandwich) covariance of a linear estimator's coefficients.

    ``V = c · B [Σ_g X_g'u_g u_g'X_g] B`` with ``B`` the bread (e.g. ``(X'X)⁻¹``), ``X_g`` and
    ``u_g`` the rows of cluster ``g`` and the small-sample factor ``c = G/(G−1) · (N−1)/(N−K)``
    (Stata's and statsmodels' ``cov_type="cluster"`` default).

    Parameters
    ----------
    xh : numpy.ndarray of shape (N, K)
        The design whose scores enter the meat (the fitted first stage ``X̂`` for 2SLS).
    u : numpy.ndarray of shape (N,)
        Residuals.
    groups : numpy.ndarray of shape (N,)
        Cluster label of each row (any sortable labels).
    bread : numpy.ndarray of shape (K, K)

    Returns
    -------
    numpy.ndarray of shape (K, K)

    Examples
    --------
    The intercept-only case is :func:`cluster_variance` with the ``(N−1)/(N−K)`` factor (here 1):

    >>> x = np.ones((4, 1)); u = np.array([1.0, -1.0, 1.0, -1.0])
    >>> round(float(cluster_robust_covariance(x, u, np.arange(4), np.array([[0.25]]))[0, 0]), 6)
    0.333333
    """
    _, codes = np.unique(groups, return_inverse=True)
    n, k = xh.shape
    g = int(codes.max()) + 1
    xu = xh * u[:, None]
    scores = np.column_stack([np.bincount(codes, weights=col, minlength=g) for col in xu.T])
    meat = scores.T @ scores
    c = g / (g - 1) * (n - 1) / (n - k)
    return c * bread @ meat @ bread


def cluster_ols(y: np.ndarray, x: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """OLS coefficient of the **last** column of ``x`` and its cluster-robust standard error.

    statsmodels' ``OLS(y, x).fit(cov_type="cluster")`` (the sandwich of
    :func:`cluster_robust_covariance`, same small-sample factor).

    Parameters
    ----------
    y : numpy.ndarray of shape (N,)
    x : numpy.ndarray of shape (N, K)
        Regressors; the coefficient of interest is the last column.
    groups : numpy.ndarray of shape (N,)
        Cluster label of each row.

    Returns
    -------
    (coefficient, se)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.column_stack([np.ones(200), rng.normal(size=200)])
    >>> y = 1.0 + 2.0 * x[:, 1] + rng.normal(size=200)
    >>> b, se = cluster_ols(y, x, np.repeat(np.arange(50), 4))
    >>> round(b, 2), bool(0 < se < 0.2)
    (1.93, True)
    """
    import statsmodels.api as sm

    fit = sm.OLS(y, x).fit(cov_type="cluster", cov_kwds={"groups": groups})
    return float(fit.params[-1]), float(np.sqrt(fit.cov_params()[-1, -1]))


def check_n_bootstrap(n_bootstrap: int, *, minimum: int = 0) -> int:
    """Validate a number of bootstrap replicates: an integer ``>= minimum``.

    Parameters
    ----------
    n_bootstrap : int
        The value the user passed.
    minimum : int, default 0
        The smallest allowed value. 0 means "0 skips the intervals".

    Returns
    -------
    int

    Raises
    ------
    CJEInputError
        A bool, a non-integer or a value below ``minimum``, naming the value and a fix.

    Examples
    --------
    >>> check_n_bootstrap(np.int64(200))
    200
    >>> check_n_bootstrap(10, minimum=50)
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: n_bootstrap must be an integer >= 50; got 10. Use e.g. n_bootstrap=2000.
    """
    from cje.errors import CJEInputError

    if (isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer))
            or n_bootstrap < minimum):
        need = "a non-negative integer" if minimum == 0 else f"an integer >= {minimum}"
        skip = " (0 skips the intervals)" if minimum == 0 else ""
        raise CJEInputError(
            f"n_bootstrap must be {need}; got {n_bootstrap!r}. Use e.g. n_bootstrap=2000{skip}."
        )
    return int(n_bootstrap)


#: The two cluster-bootstrap weightings of :func:`cluster_bootstrap_weights`.
BOOTSTRAP_METHODS = ("multinomial", "exponential")


def cluster_bootstrap_weights(
    n_clusters: int,
    n_bootstrap: int,
    rng: int | np.random.Generator | None = None,
    *,
    method: str = "exponential",
    max_entries: int = 4_000_000,
    width: int = 1,
    progress: bool | None = False,
) -> Iterator[np.ndarray]:
    """Yield the cluster weights of ``n_bootstrap`` prompt-cluster bootstrap replicates, in chunks.

    The one prompt-cluster bootstrap of the package: a replicate gives each of the ``G`` clusters
    (prompts) a weight, and every statistic is recomputed with the rows of a cluster weighted
    by it, so all rows of a prompt move together.

    * ``method="multinomial"``: Efron's bootstrap, ``G`` clusters drawn with replacement; the
      weight is how often a cluster was drawn (a replicate may leave clusters out).
    * ``method="exponential"``: the Bayesian bootstrap, independent standard exponential
      weights scaled to sum to ``G`` (positive, so no replicate drops a cluster).

    The draws do not depend on the chunking: replicate ``b`` gets the same weights whatever
    ``max_entries`` is. Chunks hold at most ``max(1, max_entries // max(G, width))`` replicates,
    so the ``(chunk, G)`` weights and the caller's ``(chunk, width)`` work arrays stay small.

    Parameters
    ----------
    n_clusters : int
        ``G``, the number of clusters.
    n_bootstrap : int
        Replicates (see :func:`check_n_bootstrap`).
    rng : int, numpy.random.Generator or None
        Seed or generator (a generator passed in is advanced, not copied).
    method : {"multinomial", "exponential"}, default "exponential"
    max_entries : int, default 4,000,000
        Memory budget per chunk, in array entries.
    width : int, default 1
        Entries per replicate of the caller's own work arrays.
    progress : bool, optional
        A progress bar over the replicates: ``None`` on a terminal once the work lasts over a
        second, ``True`` always, ``False`` (default) never.

    Yields
    ------
    numpy.ndarray of shape (chunk, G)
        float64 weights; the chunks together hold ``n_bootstrap`` rows.

    Examples
    --------
    >>> w = np.vstack(list(cluster_bootstrap_weights(4, 3, rng=0, method="multinomial")))
    >>> w.shape, w.sum(axis=1).tolist()
    ((3, 4), [4.0, 4.0, 4.0])
    >>> w = np.vstack(list(cluster_bootstrap_weights(4, 3, rng=0)))
    >>> bool((w > 0).all()), w.sum(axis=1).round(12).tolist()
    (True, [4.0, 4.0, 4.0])
    """
    from cje._progress import progress_bar

    if method not in BOOTSTRAP_METHODS:
        from cje.errors import CJEInputError

        raise CJEInputError(f"method must be 'multinomial' or 'exponential'; got {method!r}.")
    gen = np.random.default_rng(rng)
    g = int(n_clusters)
    chunk = max(1, min(n_bootstrap, max_entries // max(g, width, 1)))
    done = 0
    bar = progress_bar(progress, n_bootstrap, desc="bootstrap", unit="rep")
    try:
        while done < n_bootstrap:
            b = min(chunk, n_bootstrap - done)
            if method == "multinomial":
                draws = gen.integers(0, g, size=(b, g))
                draws += (np.arange(b) * g)[:, None]  # row r counts into bins r·G … r·G + G − 1
                w = np.bincount(draws.ravel(), minlength=b * g).reshape(b, g).astype(np.float64)
            else:
                w = gen.standard_exponential((b, g))
                w *= g / w.sum(axis=1, keepdims=True)
            yield w
            done += b
            bar.update(b)
    finally:
        bar.close()


def cluster_bootstrap_totals(
    per_cluster: np.ndarray,
    n_bootstrap: int,
    rng: int | np.random.Generator | None = None,
    *,
    method: str = "exponential",
    max_entries: int = 4_000_000,
    progress: bool | None = False,
) -> np.ndarray:
    """Weighted column totals of ``per_cluster`` over ``n_bootstrap`` cluster-bootstrap replicates.

    Replicate ``b`` is ``w_b @ per_cluster`` with ``w_b`` the weights of
    :func:`cluster_bootstrap_weights` (same ``rng``, ``method``, ``max_entries`` and ``progress``).
    A ratio of two columns is a bootstrap replicate of a ratio estimator (e.g. wins / comparisons).

    Parameters
    ----------
    per_cluster : numpy.ndarray of shape (G,) or (G, m)
        Per-cluster totals of each statistic (a 1-D array is one column).
    n_bootstrap : int
    rng : int, numpy.random.Generator or None
    method : {"multinomial", "exponential"}, default "exponential"
    max_entries : int, default 4,000,000
    progress : bool, optional

    Returns
    -------
    numpy.ndarray of shape (n_bootstrap, m)

    Examples
    --------
    >>> t = cluster_bootstrap_totals(np.ones((5, 1)), 3, np.random.default_rng(0))
    >>> t.round(12).ravel().tolist()
    [5.0, 5.0, 5.0]
    """
    per = np.asarray(per_cluster, dtype=np.float64)
    if per.ndim == 1:
        per = per[:, None]
    out = np.empty((n_bootstrap, per.shape[1]))
    start = 0
    for w in cluster_bootstrap_weights(per.shape[0], n_bootstrap, rng, method=method,
                                       max_entries=max_entries, progress=progress):
        out[start:start + w.shape[0]] = w @ per
        start += w.shape[0]
    return out


def expanded_alpha(alpha: float, n_clusters: Any) -> Any:
    """The tail level ``α'`` of the expanded percentile interval over ``G`` resampled clusters.

    A percentile bootstrap interval over ``G`` independent clusters is too narrow when ``G`` is
    small: the bootstrap variance divides by ``G`` where the unbiased one divides by ``G − 1``, and
    it takes normal quantiles where the studentised statistic has ``t_{G−1}`` tails. The expanded
    percentile interval (Hesterberg 2015, *What teachers should know about the bootstrap*, §5)
    reads the replicates' quantiles at ``α'/2`` and ``1 − α'/2`` with
    ``z_{1−α'/2} = sqrt(G/(G−1)) · t_{1−α/2, G−1}``, which corrects both. For ``G → ∞``,
    ``α' → α``. ``G < 2`` gives 0 (the whole range of the replicates).

    Parameters
    ----------
    alpha : float
        Nominal two-sided level.
    n_clusters : int or array_like of int
        Independent clusters (prompts) behind each statistic.

    Returns
    -------
    float or numpy.ndarray
        ``α'`` (≤ ``alpha``), of the shape of ``n_clusters``.

    Examples
    --------
    >>> round(float(expanded_alpha(0.05, 30)), 4)
    0.0375
    >>> round(float(expanded_alpha(0.05, 10_000)), 4)
    0.05
    """
    g = np.asarray(n_clusters, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.sqrt(g / (g - 1.0)) * t_ppf(1.0 - alpha / 2.0, g - 1.0)
    upper = np.vectorize(lambda v: NormalDist().cdf(-v) if np.isfinite(v) else 0.0, otypes=[np.float64])
    out = np.where(g >= 2, 2.0 * upper(z), 0.0)
    return float(out) if out.ndim == 0 else out


def percentile_interval(replicates: np.ndarray, alpha: float, n_clusters: Any = None) -> tuple[Any, Any]:
    """Two-sided ``1 − alpha`` percentile interval of bootstrap replicates, non-finite ones ignored.

    Parameters
    ----------
    replicates : numpy.ndarray of shape (B,) or (B, m)
        Replicates of one statistic, or of ``m`` statistics (one column each).
    alpha : float
    n_clusters : int or array_like of shape (m,), optional
        Clusters (prompts) resampled behind each column. Given, the interval is the *expanded*
        percentile interval (:func:`expanded_alpha`), which keeps its coverage with few clusters
        (docs: Judge bias › Few prompts); omitted, the plain percentile interval.

    Returns
    -------
    (low, high)
        Floats for 1-D ``replicates``, arrays of length ``m`` for 2-D; NaN where a column has
        no finite replicate.

    Examples
    --------
    >>> percentile_interval(np.arange(101.0), 0.1)
    (5.0, 95.0)
    >>> lo, hi = percentile_interval(np.array([[0.0, np.nan], [1.0, np.nan], [2.0, np.nan]]), 0.5)
    >>> lo.tolist(), hi.tolist()
    ([0.5, nan], [1.5, nan])
    >>> lo, hi = percentile_interval(np.arange(1001.0), 0.05, n_clusters=30)  # alpha' = 0.0375
    >>> round(lo, 2), round(hi, 2)
    (18.75, 981.25)
    """
    r = np.asarray(replicates, dtype=np.float64)
    if r.ndim == 1:
        lo, hi = percentile_interval(r[:, None], alpha, n_clusters)
        return float(lo[0]), float(hi[0])
    a = (np.full(r.shape[1], float(alpha)) if n_clusters is None
         else np.broadcast_to(np.atleast_1d(expanded_alpha(alpha, n_clusters)), (r.shape[1],)))
    ok = np.isfinite(r)
    lo = np.full(r.shape[1], np.nan)
    hi = np.full(r.shape[1], np.nan)
    for j in range(r.shape[1]):
        col = r[ok[:, j], j]
        if col.size:
            lo[j], hi[j] = np.quantile(col, [a[j] / 2, 1 - a[j] / 2])
    return lo, hi


def jackknife_variance(replicates: np.ndarray) -> np.ndarray:
    """Delete-one-group jackknife variance ``(K−1)/K · Σ_k (ψ^(−k) − ψ̄)²`` (per column).

    Parameters
    ----------
    replicates : numpy.ndarray of shape (K,) or (K, P)
        Estimates with each of the K groups deleted.

    Returns
    -------
    numpy.float64 or numpy.ndarray of shape (P,)
        One variance per column (a scalar for 1-D ``replicates``).

    Examples
    --------
    >>> float(jackknife_variance(np.array([1.0, 2.0, 3.0])))
    1.3333333333333333
    """
    r = np.asarray(replicates, dtype=np.float64)
    k = r.shape[0]
    return (k - 1) / k * np.sum((r - r.mean(axis=0)) ** 2, axis=0)


def oua_jackknife(run: Callable[[Any], np.ndarray], calibrations: Sequence[Any], *,
                  progress: bool | None = False) -> np.ndarray:
    """Re-run a whole estimation pipeline once per delete-one-oracle-fold calibration.

    This is the one OUA mechanism for every estimator: ``run`` maps a calibration to the vector of
    estimates (everything downstream of the calibrator is refitted inside it).

    Parameters
    ----------
    run : callable
        ``run(calibration) -> numpy.ndarray`` of estimates.
    calibrations : sequence
        The K fold-deleted calibrations (or anything ``run`` takes, one per deleted fold).
    progress : bool, optional
        Show a progress bar over the K re-runs: ``None`` on a terminal once the work lasts over
        a second, ``True`` always, ``False`` (default) never.

    Returns
    -------
    numpy.ndarray of shape (K, P)

    Examples
    --------
    The calibration-uncertainty SE of a policy's mean calibrated score:

    >>> from cje.calibration import RewardCalibrator
    >>> rng = np.random.default_rng(0)
    >>> s = rng.uniform(0, 10, 300); y = (s / 10) ** 2 + rng.normal(0, 0.05, 300)
    >>> cal = RewardCalibrator(mode="monotone").fit(s, y)
    >>> scores = np.array([3.0, 6.0, 9.0])   # one policy's judge scores
    >>> reps = oua_jackknife(lambda c: c.predict(scores).mean(), cal.jackknife())
    >>> reps.shape
    (5, 1)
    >>> round(float(np.sqrt(jackknife_variance(reps)[0])), 3)
    0.011
    """
    return np.vstack([np.atleast_1d(run(c))
                      for c in progress_iter(calibrations, progress, desc="OUA jackknife",
                                             unit="fold")])


def satterthwaite_df(var_if: float, var_cal: float, g: int, k: int) -> float:
    """Satterthwaite degrees of freedom for ``Var_IF + Var_cal``.

    ``df = (V_IF + V_cal)² / (V_IF²/(G−1) + V_cal²/(K−1))``; ``G − 1`` when there is no
    calibration term.

    Parameters
    ----------
    var_if, var_cal : float
        Sampling (influence-function) and calibration (jackknife) variances.
    g : int
        Number of prompt clusters G.
    k : int
        Number of jackknife folds K.

    Returns
    -------
    float
        At least 1.

    Examples
    --------
    >>> satterthwaite_df(1.0, 0.0, 100, 5)
    99.0
    >>> round(satterthwaite_df(1.0, 1.0, 100, 5), 2)
    15.38
    """
    if var_cal <= 0 or k < 2:
        return float(max(g - 1, 1))
    den = var_if**2 / max(g - 1, 1) + var_cal**2 / (k - 1)
    if den <= 0:
        return float(max(g - 1, 1))
    return float((var_if + var_cal) ** 2 / den)


def t_interval(estimate: float, se: float, df: float, alpha: float) -> tuple[float, float]:
    """Two-sided ``1 − alpha`` t interval.

    Parameters
    ----------
    estimate, se : float
        Point estimate and its standard error.
    df : float
        Degrees of freedom of the t critical value.
    alpha : float
        ``1 − alpha`` coverage.

    Returns
    -------
    (low, high)

    Examples
    --------
    >>> lo, hi = t_interval(0.0, 1.0, 1e9, 0.05)
    >>> round(hi, 3)
    1.96
    """
    q = float(t_ppf(1 - alpha / 2, df))
    return estimate - q * se, estimate + q * se


def clip_interval(estimate: float, low: float, high: float,
                  scale: tuple[float, float]) -> tuple[float, float, bool]:
    """An interval cut to the scale its parameter lives on.

    The value of a policy lies on the label scale, so cutting an interval at the scale's bounds
    cannot lose coverage and only removes impossible values (chosen by study over a logit-scale
    interval, which covered less and was wider near the bounds:
    ``simulations/results/study_bounds.md``). An estimate that is not finite or lies outside the
    scale keeps its interval (the sanity gate refuses it).

    Parameters
    ----------
    estimate, low, high : float
        Point estimate and interval.
    scale : (float, float)
        The scale's bounds.

    Returns
    -------
    (float, float, bool)
        The interval and whether it was cut.

    Examples
    --------
    >>> clip_interval(0.02, -0.01, 0.05, (0.0, 1.0))
    (0.0, 0.05, True)
    >>> clip_interval(0.5, 0.4, 0.6, (0.0, 1.0))
    (0.4, 0.6, False)
    >>> clip_interval(1.2, 0.9, 1.5, (0.0, 1.0))   # an impossible estimate: left as it is
    (0.9, 1.5, False)
    >>> clip_interval(1.0000000000000002, 0.96, 1.04, (0.0, 1.0))   # on the bound up to rounding
    (0.96, 1.0, True)
    """
    lo_s, hi_s = scale
    # on the scale up to rounding, as the sanity gate judges it (a mean of values that are all
    # 1 can add up to 1 + 2e-16): such an estimate is on the scale and its interval is cut
    tol = 1e-9 * (hi_s - lo_s)
    if not (np.isfinite(estimate) and lo_s - tol <= estimate <= hi_s + tol):
        return low, high, False
    cut_low, cut_high = bool(np.isfinite(low) and low < lo_s), bool(np.isfinite(high) and high > hi_s)
    return (lo_s if cut_low else low), (hi_s if cut_high else high), cut_low or cut_high


def t_pvalue(estimate: float, se: float, df: float) -> float:
    """Two-sided p-value of ``estimate / se`` against a t distribution with ``df``."""
    if not se > 0:
        return 0.0 if estimate != 0 else 1.0
    return float(2 * t_sf(abs(estimate / se), df))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control).

    Parameters
    ----------
    pvalues : sequence of float
        Raw p-values of the family.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order (capped at 1).

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03]).tolist()
    [0.03, 0.06, 0.06]
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj = np.maximum.accumulate(adj)
    out = np.empty(m)
    out[order] = adj
    return out


def paired_contrasts(
    totals: Mapping[int, np.ndarray],
    present: Mapping[int, np.ndarray],
    values: Sequence[float],
    reps: np.ndarray,
    keep: list[int],
    names: Sequence[str],
    k: int,
    alpha: float,
    width: float,
    gaps: Sequence[float] | None = None,
    probes: Mapping[int, tuple[float, int]] | None = None,
    gap_influence: Mapping[int, tuple[float, np.ndarray]] | None = None,
    own: Mapping[int, tuple[float, float, float]] | None = None,
    own_cross: np.ndarray | None = None,
    prompt_sizes: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[Contrast, ...]:
    """Paired contrasts from each policy's per-prompt influence totals (``Σ_{i∈g} φ_i / n``),
    aligned by prompt — never by row — and the jackknife replicates (same deleted fold for both
    policies, so the shared calibration error cancels); Holm-adjusted p-values.

    All pairs are computed at once with numpy (one block of pairs per policy; memory
    ``O(P·G)`` besides the ``P(P−1)/2`` results), so 1,000 policies take seconds. A pair
    without a variance estimate (fewer than two prompts between the two policies: NaN SE) gets
    a NaN p-value and is never significant.

    Parameters
    ----------
    totals : Mapping[int, numpy.ndarray]
        Policy index → per-prompt influence totals divided by the policy's row count, one entry
        per prompt of the shared prompt index (0 where the policy has no rows).
    present : Mapping[int, numpy.ndarray of bool]
        Policy index → whether the policy has rows on each prompt.
    values : sequence of float
        Point estimates per policy index (internal [0, 1] scale).
    reps : numpy.ndarray of shape (K, P)
        OUA jackknife replicates of the estimates (internal scale).
    keep : list of int
        Policy indices to contrast, every pair ``a − b`` in this order.
    names : sequence of str
        Policy names by index.
    k : int
        Number of oracle folds K (for the Satterthwaite degrees of freedom).
    alpha : float
        ``1 − alpha`` intervals; a contrast is significant when its Holm p-value is below it.
    width : float
        Width of the label scale: multiplies estimates and SEs back to label units.
    gaps : sequence of float, optional
        Transport gap per policy index (internal scale; see
        :attr:`~cje.report.PolicyEstimate.var_transport`): the contrast's variance adds
        ``(gap_a − gap_b)²``. None: no gaps.
    gap_influence : Mapping[int, tuple[float, numpy.ndarray]], optional
        Policy index → (gap, per-prompt totals of the gap's influence, scaled so that their
        sum of squares is the gap's variance). For these policies ``gaps`` holds the allowance
        ``sign(gap)·sqrt(gap² + Var(gap))``; the contrast's allowance is then
        ``(gap_a − gap_b)² + Var(gap_a − gap_b)``, the variance of the difference taken prompt by
        prompt (two targets' gaps rest on the same labelled rows), instead of the difference of
        the two allowances — which is zero for two equal allowances however noisy each gap is.
    probes : Mapping[int, tuple[float, int]], optional
        Policy index → (variance of its probe part, probe prompts) for probe-corrected policies
        (see :class:`cje.pipeline.probes.ProbeUse`). Their probe parts then enter the degrees of
        freedom as components of their own, each with ``probe prompts − 1`` degrees of freedom,
        as for the policy's own interval: a contrast whose variance is mostly a 50-label probe
        gets about 49 degrees of freedom, not those of all the shared prompts. None: no probes.
    own : Mapping[int, tuple[float, float, float]], optional
        Policy index → (``Σ_g T_g²`` of the residual part of its own labels, that part's factor,
        its effective number of labelled prompts ``m``), ``T_g`` the part's per-prompt total on
        the scale of ``totals`` (see :func:`cje.pipeline.core.own_part_sums`). That part of each
        side gets its own small-sample factor (``m/(m−1)`` for equal weights) instead of the
        pair's ``G/(G−1)`` and enters the degrees of freedom as a component with ``m − 1``, as
        in the policy's own interval. A factor of 0: the side has no such part. None: none.
    own_cross : numpy.ndarray, optional
        ``(P, P)``, by policy index: ``Σ_g T_{a,g}·T_{b,g}`` of two policies' residual parts
        (:func:`cje.pipeline.core.own_part_cross`). Where both sides have such a part, the
        contrast's is ``Σ_g (√f_a·T_{a,g} − √f_b·T_{b,g})²`` (each side's factor ``f``), and the two
        components of the degrees of freedom are scaled to sum to it: labels on the same
        prompts whose residuals agree there cancel in the difference, which the sum of the two
        sides' parts (the default, None: no shared prompts) would count twice — and with it
        exceeding the contrast's whole variance its degrees of freedom fell to 1.
    prompt_sizes : (numpy.ndarray, numpy.ndarray), optional
        By policy index: its rows ``N`` and ``S[a, b] = Σ_g c_{a,g}·c_{b,g}`` (rows per prompt).
        The prompt part's degrees of freedom are the pair's effective prompts
        (:func:`_pair_effective_prompts`), capped at them minus one where fewer than the union's
        prompts (a few prompts hold the difference). None: one row per prompt where a policy is
        present (``present``).

    Returns
    -------
    tuple of Contrast

    Examples
    --------
    >>> totals = {0: np.array([0.02, -0.01, 0.03, -0.04, 0.01, -0.01]),
    ...           1: np.array([0.01, -0.02, 0.02, -0.03, 0.0, 0.02])}
    >>> present = {0: np.ones(6, bool), 1: np.ones(6, bool)}
    >>> reps = np.array([[0.70, 0.50], [0.71, 0.52], [0.69, 0.50], [0.70, 0.51], [0.72, 0.52]])
    >>> (c,) = paired_contrasts(totals, present, [0.7, 0.5], reps, [0, 1], ["a", "b"], k=5,
    ...                         alpha=0.05, width=4.0)
    >>> c.policy_a, c.policy_b, round(c.estimate, 3), round(c.ci_low, 2), round(c.ci_high, 2)
    ('a', 'b', 0.8, 0.38, 1.22)
    >>> c.significant, c.n_shared_prompts
    (True, 6)
    """
    m = len(keep)
    if m < 2:
        return ()
    rows_t = [np.asarray(totals[p], dtype=np.float64) for p in keep]
    rows_p = [np.asarray(present[p], dtype=bool) for p in keep]
    n_g = rows_t[0].shape[0]
    # the pairs (i, j) of one i go in blocks of j's: all of them, from (m, G) copies of the
    # totals, when those are small; else as many as _PAIR_BYTES holds, copied block by block
    # (at 10^7 rows, 4 policies and 2.5·10^6 prompts the (m, G) copy alone is 80 MB)
    whole = m * n_g * 8 <= _PAIR_BYTES
    step = m if whole else max(1, _PAIR_BYTES // max(8 * n_g, 1))
    T = np.vstack(rows_t) if whole else None  # (m, G)
    pres = np.vstack(rows_p) if whole else None  # (m, G)
    R = np.ascontiguousarray(np.asarray(reps, dtype=np.float64)[:, keep].T)  # (m, K)
    kr = R.shape[1]
    val = np.asarray(values, dtype=np.float64)[keep]
    gap = None if gaps is None else np.asarray(gaps, dtype=np.float64)[keep]
    gi = {j: gap_influence[q] for j, q in enumerate(keep) if gap_influence and q in gap_influence}
    if gi:  # the gap itself (not the allowance) and its influence totals per kept policy
        gap = gap if gap is not None else np.zeros(m)
        gap = np.array([gi[j][0] if j in gi else gap[j] for j in range(m)])
        GT = np.zeros((m, n_g))
        for j, (_, tot) in gi.items():
            GT[j, :tot.size] = tot
    # every pair (i, j), i < j, in the order of the old double loop over ``keep``
    ia, ib = np.triu_indices(m, 1)
    n_pairs = ia.size
    v_gap = np.zeros(n_pairs) if gi else None
    ss = np.empty(n_pairs)
    g = np.empty(n_pairs, dtype=np.int64)
    shared = np.empty(n_pairs, dtype=np.int64)
    v_cal = np.empty(n_pairs)
    at = 0
    for i in range(m - 1):  # one block of pairs (i, i+1..m-1) at a time: memory O(m·G)
        for j0 in range(i + 1, m, step):
            j1 = min(j0 + step, m)
            if T is not None and pres is not None:
                c, pc = T[i] - T[j0:j1], pres[j0:j1]
            else:
                c, pc = np.vstack(rows_t[j0:j1]), np.vstack(rows_p[j0:j1])
                np.subtract(rows_t[i], c, out=c)
            b = at + (j0 - i - 1)
            ss[b:b + j1 - j0] = np.square(c, out=c).sum(axis=1)  # in place: no second array
            g[b:b + j1 - j0] = (rows_p[i] | pc).sum(axis=1)
            shared[b:b + j1 - j0] = (rows_p[i] & pc).sum(axis=1)
            del c, pc
        stop = at + m - 1 - i
        d = R[i] - R[i + 1:]
        v_cal[at:stop] = (kr - 1) / kr * ((d - d.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
        if v_gap is not None:
            cg = GT[i] - GT[i + 1:]
            v_gap[at:stop] = np.square(cg, out=cg).sum(axis=1)
        at = stop
    with np.errstate(divide="ignore", invalid="ignore"):
        v_if = np.where(g > 1, g / np.maximum(g - 1, 1) * ss, np.nan)
        v_tr = np.zeros(n_pairs) if gap is None else (gap[ia] - gap[ib]) ** 2
        if v_gap is not None:
            v_tr = v_tr + v_gap
        parts = []
        if own:  # the own-label residual parts: their own factor (Methods › The direct estimator)
            oss, ofac, om = (np.array([own.get(q, (0.0, 0.0, 0.0))[j] for q in keep],
                                      dtype=np.float64) for j in range(3))
            on = ofac != 0
            om = np.where(on, om, 0.0)
            ov = np.where(on, ofac * oss, 0.0)
            f = g / np.maximum(g - 1, 1)
            v_if = v_if + (ov[ia] - np.where(on[ia], f * oss[ia], 0.0)) \
                + (ov[ib] - np.where(on[ib], f * oss[ib], 0.0))
            scale = np.ones(n_pairs)
            if own_cross is not None:  # the two parts on shared prompts: their difference's
                kp = np.asarray(keep)
                both = on[ia] & on[ib]
                cross = np.where(both, np.asarray(own_cross, dtype=np.float64)[kp[ia], kp[ib]], 0.0)
                mixed = np.sqrt(np.where(both, ofac[ia] * ofac[ib], 0.0))
                v_if = v_if + 2 * cross * (f - mixed)  # Σ(T_a − T_b)² at f → at the sides' factors
                sides = ov[ia] + ov[ib]
                scale = np.divide(sides - 2 * mixed * cross, sides, out=scale, where=sides > 0)
            parts = [(ov[ia] * scale, om[ia], False), (ov[ib] * scale, om[ib], False)]
        se = np.sqrt(v_if + v_cal + v_tr)
        # the prompt part's degrees of freedom: the pair's effective prompts, not the union's
        # count — a policy on a few prompts of its own carries the difference's variance on them
        if prompt_sizes is not None:  # rows per prompt: (N, S) by policy index
            kp = np.asarray(keep)
            n_rows, s_mat = (np.asarray(x, dtype=np.float64) for x in prompt_sizes)
            na, nb = n_rows[kp[ia]], n_rows[kp[ib]]
            sa, sb, sab = s_mat[kp[ia], kp[ia]], s_mat[kp[ib], kp[ib]], s_mat[kp[ia], kp[ib]]
        else:  # one row per prompt where a policy is present
            gp = np.array([float(np.count_nonzero(x)) for x in rows_p])
            na, nb, sa, sb, sab = gp[ia], gp[ib], gp[ia], gp[ib], shared.astype(np.float64)
        g_df = np.minimum(g, _pair_effective_prompts(na, nb, sa, sb, sab))
        if probes:  # a probe's prompts are counted apart (component_satterthwaite_df)
            side = np.array([q in probes for q in keep])
            g_df = np.where(side[ia] | side[ib], g, g_df)
        df = satterthwaite_dfs(v_if, v_cal, g_df, k)
        if probes:
            pv = np.array([probes.get(q, (0.0, 0))[0] for q in keep], dtype=np.float64)
            pn = np.array([probes.get(q, (0.0, 0))[1] for q in keep], dtype=np.int64)
            parts = [(pv[ia], pn[ia], True), (pv[ib], pn[ib], True)] + parts
        if parts:
            df = component_satterthwaite_df(df, v_if, v_cal, g_df, k, parts)
        df = cap_at_effective_prompts(df, g_df, g)  # a few prompts hold the difference
        delta = val[ia] - val[ib]
        lo, hi = _t_intervals(delta, se, df, alpha)
        p = _t_pvalues(delta, se, df)
    adj = holm(p)
    sig = adj < alpha  # NaN (no variance estimate) is never significant
    nm = [names[q] for q in keep]
    w2 = width**2
    cols = zip(ia.tolist(), ib.tolist(), (delta * width).tolist(), (se * width).tolist(),
               (lo * width).tolist(), (hi * width).tolist(), df.tolist(), p.tolist(), adj.tolist(),
               sig.tolist(), (v_if * w2).tolist(), (v_cal * w2).tolist(), shared.tolist(),
               (v_tr * w2).tolist(), strict=True)
    from dataclasses import fields

    if tuple(f.name for f in fields(Contrast))[:len(_CONTRAST_FIELDS)] == _CONTRAST_FIELDS:
        # positional arguments in the dataclass's own field order: ~30% faster at 500k pairs
        return tuple(Contrast(nm[a], nm[b], *rest) for a, b, *rest in cols)
    return tuple(Contrast(**dict(zip(_CONTRAST_FIELDS, (nm[a], nm[b], *rest), strict=True)))
                 for a, b, *rest in cols)


def cap_at_effective_prompts(df: Any, g_eff: Any, g: Any) -> Any:
    """Degrees of freedom capped at ``g_eff − 1`` (at least 1) where the effective prompts are
    fewer than the prompts ``g`` — a few prompts hold most rows, so every part of the variance rests
    on them — and unchanged elsewhere; elementwise (a level's and a contrast's alike).

    Parameters
    ----------
    df, g_eff, g : float or numpy.ndarray

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> cap_at_effective_prompts(np.array([40.0, 40.0]), np.array([7.7, 100.0]), 100).tolist()
    [6.7, 40.0]
    """
    df, g_eff = np.asarray(df, dtype=np.float64), np.asarray(g_eff, dtype=np.float64)
    return np.where(g_eff < g, np.clip(df, 1.0, np.maximum(g_eff - 1.0, 1.0)), df)


def _pair_effective_prompts(na: np.ndarray, nb: np.ndarray, s_aa: np.ndarray, s_bb: np.ndarray,
                            s_ab: np.ndarray) -> np.ndarray:
    """Effective number of prompts of each pair's difference ``T_a − T_b``: ``(Σλ_g)² / Σλ_g²``
    with ``λ_g = c_{a,g}/N_a² + c_{b,g}/N_b²`` (``c_g`` a policy's rows on prompt ``g``, ``N``
    its rows: a policy's per-prompt total is ``c_g/N`` of its mean), from ``N`` and the sums
    ``S_ab = Σ_g c_{a,g}·c_{b,g}``: the Satterthwaite degrees of freedom (+1) of the pair's
    prompt-clustered variance when every row's value has one variance. Two policies with one row
    on each of the same ``G`` prompts: ``G``; on disjoint sets: ``G_a + G_b`` when equal; a policy
    on 3 prompts against one on 100 that holds them: about 3.2, where the union's count says 100;
    two prompts holding most rows: about the two (:func:`cje.pipeline.core.effective_prompts`).

    Parameters
    ----------
    na, nb : numpy.ndarray
        Rows of each pair's two policies.
    s_aa, s_bb, s_ab : numpy.ndarray
        ``Σ_g c_a²``, ``Σ_g c_b²`` and ``Σ_g c_a·c_b`` per pair.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> one = np.array([100.0, 100.0])
    >>> _pair_effective_prompts(one, np.array([100.0, 3.0]), one, np.array([100.0, 3.0]),
    ...                         np.array([100.0, 3.0])).round(1)
    array([100. ,   3.2])
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (1 / na + 1 / nb) ** 2 / (s_aa / na**4 + s_bb / nb**4 + 2 * s_ab / (na**2 * nb**2))
    return np.where(np.isfinite(out), out, np.inf)


#: Bytes of the (pairs, prompts) blocks :func:`paired_contrasts` works on at a time.
_PAIR_BYTES = 2**25

#: The fields :func:`paired_contrasts` fills, in the order it computes them.
_CONTRAST_FIELDS = ("policy_a", "policy_b", "estimate", "se", "ci_low", "ci_high", "df", "p_value",
                    "p_holm", "significant", "var_if", "var_cal", "n_shared_prompts",
                    "var_transport")


def satterthwaite_dfs(var_if: np.ndarray, var_cal: np.ndarray, g: np.ndarray,
                            k: int) -> np.ndarray:
    """:func:`satterthwaite_df` elementwise (same arithmetic, same fallbacks).

    Parameters
    ----------
    var_if, var_cal : numpy.ndarray
        Sampling and calibration variances.
    g : numpy.ndarray
        Prompts.
    k : int
        Jackknife folds.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> satterthwaite_dfs(np.array([1.0, 1.0]), np.array([0.0, 1.0]), np.array([100, 100]), 5).round(2)
    array([99.  , 15.38])
    """
    base = np.maximum(g - 1, 1).astype(np.float64)
    if k < 2:
        return base
    with np.errstate(divide="ignore", invalid="ignore"):
        den = var_if**2 / base + var_cal**2 / (k - 1)
        sat = (var_if + var_cal) ** 2 / den
    return np.where((var_cal <= 0) | (den <= 0), base, sat)


def probe_satterthwaite_df(df: np.ndarray, var_if: np.ndarray, var_cal: np.ndarray,
                           g: np.ndarray, k: int, var_a: np.ndarray, n_a: np.ndarray,
                           var_b: np.ndarray, n_b: np.ndarray) -> np.ndarray:
    """Satterthwaite degrees of freedom with probe parts as components of their own, elementwise:
    ``(V + V_cal)² / (V_D²/(G_D−1) + V_Pa²/(G_Pa−1) + V_Pb²/(G_Pb−1) + V_cal²/(K−1))``, the
    sampling variance ``V`` split into the shared prompts' part ``V_D = V − V_Pa − V_Pb`` and the
    probe parts of up to two probe-corrected policies (a policy's own interval: ``n_b = 0``; a
    contrast: both). A 50-label probe that carries most of the variance gets about 49 degrees of
    freedom, not those of the policy's many prompts. Where neither has a probe (``n = 0``), or
    the denominator vanishes, ``df`` (the plain Satterthwaite value) is kept. The probe's prompts
    are outside the shared ones: :func:`component_satterthwaite_df` with ``outside=True``.

    Parameters
    ----------
    df : numpy.ndarray
        Plain Satterthwaite degrees of freedom (:func:`satterthwaite_dfs`).
    var_if, var_cal : numpy.ndarray
        Sampling variance (shared prompts + probe parts) and calibration variance.
    g : numpy.ndarray
        Prompts (shared + probe).
    k : int
        Jackknife folds.
    var_a, n_a, var_b, n_b : numpy.ndarray
        Each side's probe-part variance and probe prompts (0 prompts: no probe).

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> out = probe_satterthwaite_df(np.array([1049.0]), np.array([0.001]), np.array([0.0]),
    ...                              np.array([1050]), 5, np.array([0.0009]), np.array([50]),
    ...                              np.zeros(1), np.zeros(1, int))
    >>> round(float(out[0]), 1)
    60.5
    """
    return component_satterthwaite_df(df, var_if, var_cal, g, k,
                                      [(var_a, n_a, True), (var_b, n_b, True)])


def component_satterthwaite_df(df: np.ndarray, var_if: np.ndarray, var_cal: np.ndarray,
                               g: np.ndarray, k: int,
                               parts: Sequence[tuple[np.ndarray, np.ndarray, bool]]) -> np.ndarray:
    """Satterthwaite degrees of freedom with parts of the sampling variance that rest on fewer
    prompts as components of their own, elementwise:
    ``(V + V_cal)² / (V_R²/(G_R−1) + Σ_j V_j²/(n_j−1) + V_cal²/(K−1))`` with the rest
    ``V_R = V − Σ_j V_j`` on ``G_R`` prompts.

    Two kinds of part: a probe slice's (``outside=True``: its ``n_j`` prompts are added to the
    policy's, so ``G_R = G − n_j``) and the residual part of a policy's own labels
    (``outside=False``: its ``n_j`` labelled prompts are among the policy's ``G``). A part with
    ``n_j = 0`` is absent; where every part is absent, or the denominator vanishes, ``df`` (the
    plain Satterthwaite value) is kept. Where every present part lies among the ``G`` prompts
    (own labels only), the result is at most the larger of ``G − 1`` and ``df``: the clustered
    variance of the prompts' totals has at most ``G − 1`` degrees of freedom however its parts are
    split (as two components of one sum they could reach ``(G−1) + (n_j−1)``).

    Parameters
    ----------
    df : numpy.ndarray
        Plain Satterthwaite degrees of freedom (:func:`satterthwaite_dfs`).
    var_if, var_cal : numpy.ndarray
        Sampling variance (all parts) and calibration variance.
    g : numpy.ndarray
        Prompts (with any probe's).
    k : int
        Jackknife folds.
    parts : sequence of (numpy.ndarray, numpy.ndarray, bool)
        Each part's variance, prompts (0: absent) and whether its prompts are outside ``g``'s
        rest.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    Ten own labels whose residuals carry most of a policy's variance (300 prompts):

    >>> out = component_satterthwaite_df(np.array([299.0]), np.array([0.0114]), np.array([0.0]),
    ...                                  np.array([300]), 5,
    ...                                  [(np.array([0.0111]), np.array([10]), False)])
    >>> round(float(out[0]), 1)
    9.5
    """
    has = np.zeros(np.shape(var_if), dtype=bool)
    beside = np.zeros(np.shape(var_if), dtype=bool)  # a probe part present (prompts of its own)
    v_r = var_if
    g_r = g
    for v, n, outside in parts:
        has = has | (n > 0)
        v_r = v_r - v
        if outside:
            g_r = g_r - n
            beside = beside | (n > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = np.maximum(v_r, 0.0) ** 2 / np.maximum(g_r - 1, 1)
        for v, n, _ in parts:
            den = den + np.where(n > 0, v**2 / np.maximum(n - 1, 1), 0.0)
        den = den + (var_cal**2 / (k - 1) if k > 1 else 0.0)
        sat = np.maximum((var_if + np.maximum(var_cal, 0.0)) ** 2 / den, 1.0)
    sat = np.where(beside, sat, np.minimum(sat, np.maximum(df, np.asarray(g) - 1.0)))
    return np.where(has & (den > 0) & np.isfinite(sat), sat, df)


def _t_intervals(estimate: np.ndarray, se: np.ndarray, df: np.ndarray,
                 alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`t_interval` elementwise."""
    q = t_ppf(1 - alpha / 2, df)
    return estimate - q * se, estimate + q * se


def _t_pvalues(estimate: np.ndarray, se: np.ndarray, df: np.ndarray) -> np.ndarray:
    """:func:`t_pvalue` elementwise, except that a NaN standard error gives a NaN p-value (no
    variance estimate: nothing can be claimed), where the scalar function returns 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = 2 * t_sf(np.abs(estimate / se), df)
    zero_se = se == 0  # a difference known exactly: 0 if it is non-zero, else 1
    p = np.where(zero_se, np.where(estimate != 0, 0.0, 1.0), p)
    return np.where(np.isnan(se), np.nan, p)


def ranking_tiers(results: Sequence[PolicyEstimate],
                  pairs: Sequence[Contrast]) -> tuple[tuple[str, ...], ...]:
    """Best-to-worst tiers such that every two policies in different tiers are separable: their
    Holm-adjusted contrast is significant.

    The policies are sorted by estimate (best first). A cut between sorted positions ``i`` and
    ``i + 1`` is allowed only if every pair ``(a, b)`` with ``a ≤ i < b`` is significant; the
    tiers are the runs between allowed cuts. This is the finest partition into runs of the
    sorted order with that property (a cut is allowed or not whatever the other cuts are), so
    the printed ranking never contradicts the printed contrasts: a chain of non-separable
    neighbours (``a ≈ b ≈ c`` with ``a − c`` significant) stays one tier.

    Parameters
    ----------
    results : sequence of PolicyEstimate
        The policies to rank. REFUSED estimates (level not reliable) are left out of the tiers.
    pairs : sequence of Contrast
        The pairwise contrasts of those policies. A missing pair counts as **not** separable:
        it never allows a cut.

    Returns
    -------
    tuple of tuple of str
        Tiers from best to worst, each ordered by estimate (best first).

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(2000, rng=0)
    >>> rep = cje.analyze(sim.data, judge_scale=sim.judge_scale, label_scale=sim.label_scale)
    >>> ranking_tiers(rep.estimates, rep.pairs)
    (('improved',), ('concise', 'base'), ('verbose', 'small'))

    Three policies where only the outer pair is separable form one tier:

    >>> from types import SimpleNamespace as NS
    >>> est = [NS(policy=p, estimate=v, status="OK") for p, v in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    >>> sig = [NS(policy_a="a", policy_b="b", significant=False),
    ...        NS(policy_a="a", policy_b="c", significant=True),
    ...        NS(policy_a="b", policy_b="c", significant=False)]
    >>> ranking_tiers(est, sig)
    (('a', 'b', 'c'),)
    """
    order = sorted((e for e in results if e.status != "REFUSED"), key=lambda e: -e.estimate)
    if not order:
        return ()
    m = len(order)
    pos = {e.policy: i for i, e in enumerate(order)}
    # sep[i, j]: the pair (i, j) of sorted positions has a significant contrast (missing: False)
    sep = np.zeros((m, m), dtype=bool)
    for c in pairs:
        i, j = pos.get(c.policy_a), pos.get(c.policy_b)
        if i is not None and j is not None and bool(c.significant):
            sep[i, j] = sep[j, i] = True
    blocked = ~sep
    np.fill_diagonal(blocked, False)
    # last[a]: the largest sorted position b > a that a cannot be separated from (a if none);
    # the cut after position i is allowed iff max(last[0..i]) <= i
    upper = np.triu(blocked, 1)
    idx = np.arange(m)
    last = np.where(upper.any(axis=1), m - 1 - np.argmax(upper[:, ::-1], axis=1), idx)
    reach = np.maximum.accumulate(last)
    cuts = np.flatnonzero(reach[:-1] <= idx[:-1]) + 1
    names = [e.policy for e in order]
    bounds = [0, *cuts.tolist(), m]
    return tuple(tuple(names[s:t]) for s, t in zip(bounds[:-1], bounds[1:], strict=True))
