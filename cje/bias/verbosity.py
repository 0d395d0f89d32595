"""Verbosity bias: does the judge reward length at fixed true quality? (docs: Judge bias)

The diagnostic is the judge's *direct* effect of standardised log length ``z`` at a fixed oracle
label: ``S ~ C(Y) + z + C(prompt)`` by OLS, standard errors clustered by prompt. The effect is in
judge points per standard deviation of log length, and ``β̂·(E_a[z] − E_b[z])`` is the bias it
induces on the judge's comparison of policies ``a`` and ``b``. With a second, independent label
per item (``oracle_label_2``) the headline is a 2SLS fit that instruments the first label with the
second: label noise otherwise leaves part of the true quality in the error term, and because
length correlates with quality the OLS length coefficient absorbs it.

Why not the calibrator's length coefficient? A two-stage calibrator fits ``E[Y | S, z]``: the
oracle as a function of the judge score *and* length. That is the right tool to *remove* the bias
(``cje.analyze(..., covariates=["response_length"])``), but its length coefficient is not the
diagnostic: at a fixed judge score, a longer response needed less true quality to reach that score,
so ``E[Y | S, z]`` *decreases* in ``z`` when the judge rewards length. Its size mixes the judge's
length effect with the score's noise and the label–length correlation (it is a reverse
regression, confounded by everything that moves ``S``), and its sign is the opposite of the bias.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np

from cje.bias._result import BiasResult, as_frame, require_columns
from cje.errors import CJEInputError, check_alpha
from cje.inference import cluster_ols, cluster_robust_covariance, t_interval, t_pvalue
from cje.pairwise._common import _check_ids

__all__ = ["PRACTICAL_SD_FRACTION", "cluster_2sls", "verbosity"]

#: An effect is practically relevant when ``|effect| >= PRACTICAL_SD_FRACTION · SD(judge score)``:
#: a policy whose responses are one SD longer gains a twentieth of the judge's score spread — the
#: size of the gaps that separate close policies on typical leaderboards. Below it, a significant
#: effect is real but not worth a mitigation.
PRACTICAL_SD_FRACTION: float = 0.05

#: Largest number of distinct label values modelled by indicators ``C(Y)``; above it (continuous
#: labels) the label enters as a linear spline with knots at its deciles.
MAX_LABEL_LEVELS: int = 20

_MITIGATION = (
    "calibrate with length as a covariate: cje.analyze(..., covariates=['response_length']) "
    "(two-stage AutoCal-R; add mode='two_stage' if the automatic rule keeps the monotone map)."
)
_FIXES = {
    "response_length": "Add token or word counts of each response "
                       "(e.g. df['response_length'] = df['response'].str.split().str.len()).",
    "oracle_label": "The test compares responses at equal true quality, so it needs oracle labels "
                    "on some rows (NaN elsewhere).",
    "judge_score": "Add the judge's score of each response.",
    "prompt_id": "Add the prompt id of each response (standard errors are clustered by prompt).",
}


def verbosity(
    df: Any,
    *,
    alpha: float = 0.05,
    judge: str | None = None,
    length_column: str = "response_length",
    min_effect: float | None = None,
) -> BiasResult:
    """Direct effect of response length on one judge's score at fixed oracle label.

    Fits ``S ~ C(Y) + z + C(prompt)`` by OLS on the labelled rows, where ``z`` is the log length
    standardised over all of the judge's rows (so the effect is in judge points per SD of log
    length), with prompt fixed effects absorbed and standard errors clustered by prompt
    (statsmodels; small-sample factor ``G/(G−1)·(N−1)/(N−K)`` with ``K`` the non-absorbed
    regressors, as ``reghdfe`` does for fixed effects nested in clusters) and a ``t`` reference
    with ``G − 1`` degrees of freedom. When an ``oracle_label_2`` column holds a second,
    independent label, the headline is 2SLS of ``S ~ Y + z + C(prompt)`` with ``Y`` (entered
    linearly) instrumented by the second label, which removes the attenuation that label noise
    causes (:func:`cluster_2sls`); both fits are in ``details``.

    The length coefficient of the calibrator ``E[Y | S, z]`` is *not* this diagnostic: it is a
    reverse regression, confounded by everything that moves the score, and has the opposite sign
    (at fixed ``S`` a longer response had lower true quality). See the module docstring.

    Parameters
    ----------
    df : DataFrame, dict of arrays or path
        Long format with ``prompt_id, judge_score, oracle_label`` (NaN where unlabelled) and the
        length column; optional ``judge``, ``policy`` and ``oracle_label_2``.
    alpha : float, default 0.05
        ``1 − alpha`` confidence interval; flag threshold on the (Holm-adjusted) p-value.
    judge : str, optional
        The judge to test when a ``judge`` column holds several (one test per judge).
    length_column : str, default "response_length"
        Response length in tokens or words (positive).
    min_effect : float, optional
        Smallest practically relevant effect in judge points per SD of log length (0 or more:
        0 flags any significant effect; a negative value is refused); default
        ``PRACTICAL_SD_FRACTION`` (0.05) times the SD of the judge's scores.

    Returns
    -------
    BiasResult
        ``bias="verbosity"``; ``flagged = p_holm < alpha and practically_relevant``. ``details``:
        ``coefficient, se, t, df, n_labelled, n_unlabelled_dropped, n_singleton_prompts,
        min_effect, practically_relevant, induced_contrast_bias`` (policy pair ``"a - b"`` →
        judge points, when a ``policy`` column exists), ``mean_z_by_policy``, ``ols`` and, with two
        labels, ``iv`` (including the first-stage F).

    Raises
    ------
    CJEInputError
        Missing columns (named, with the fix), several judges without ``judge=``, non-finite
        scores or non-positive lengths, too few labelled prompts.

    Examples
    --------
    >>> from cje.synthetic.panel import JudgeSpec, make_panel_eval
    >>> sim = make_panel_eval(150, judges=[JudgeSpec("j", "delta")], length_effect=0.3, rng=0)
    >>> res = verbosity(sim.data)
    >>> bool(res.ci_low < 0.3 < res.ci_high), res.flagged
    (True, True)
    """
    alpha = check_alpha(alpha)
    min_effect = _check_min_effect(min_effect)
    frame = as_frame(df)
    need = ["prompt_id", "judge_score", "oracle_label", length_column]
    _require_with_fix(frame.columns, need, "verbosity bias", _FIXES | {length_column:
                                                                      _FIXES["response_length"]})
    frame, judge_name = _one_judge(frame, judge)
    s = _finite_column(frame, "judge_score")
    length = _finite_column(frame, length_column)
    bad = np.flatnonzero(length <= 0)
    if bad.size:
        raise CJEInputError(
            f"The '{length_column}' column must be positive (a token or word count); row "
            f"{frame.index[bad[0]]} (prompt_id={frame['prompt_id'].iloc[bad[0]]!r}) has "
            f"{length[bad[0]]:g}."
        )
    y = _label_column(frame, "oracle_label")
    log_len = np.log(length)
    sd = float(log_len.std())
    if not sd > 1e-12:
        raise CJEInputError(f"Every response has the same {length_column}: the length effect is not "
                            "identified.")
    z = (log_len - log_len.mean()) / sd
    _check_ids(frame["prompt_id"], "prompt_id")  # 7 and "7": refused, not merged nor a crash
    prompt = frame["prompt_id"].to_numpy()
    if prompt.dtype == object:
        prompt = prompt.astype(str)
    sd_s = float(s.std(ddof=1)) if s.size > 1 else 0.0
    threshold = PRACTICAL_SD_FRACTION * sd_s if min_effect is None else float(min_effect)

    lab = ~np.isnan(y)
    n_unlab = int((~lab).sum())
    ols = _ols_fit(s[lab], y[lab], z[lab], prompt[lab])
    warn: list[str] = []
    iv = None
    if "oracle_label_2" in frame.columns:
        y2 = _label_column(frame, "oracle_label_2")
        both = lab & ~np.isnan(y2)
        if _n_usable_prompts(prompt[both]) >= 3:
            iv = _iv_fit(s[both], y[both], y2[both], z[both], prompt[both])
            if iv["first_stage_F"] < 10:
                warn.append(
                    f"The second label predicts the first weakly (first-stage F = "
                    f"{iv['first_stage_F']:.1f} < 10): the 2SLS interval may be unreliable."
                )
        else:
            warn.append("oracle_label_2 is present but fewer than 3 prompts have two doubly-labelled "
                        "responses; the OLS fit is reported instead of 2SLS.")
    head = iv if iv is not None else ols
    beta, se, df_t = head["coefficient"], head["se"], head["df"]
    lo, hi = t_interval(beta, se, df_t, alpha)
    p = t_pvalue(beta, se, df_t)
    relevant = bool(abs(beta) >= threshold)
    negligible = bool(-threshold < lo and hi < threshold)
    assoc = _label_association(y[lab], z[lab], prompt[lab])
    if iv is None and assoc["pvalue"] < alpha:
        negligible = False
        warn.append(_label_confounding(
            assoc, "Length goes with the oracle label within prompts",
            f"label units per SD of log length {assoc['coefficient']:+.3f}", "length",
            "Add a second, independent label (oracle_label_2) for the 2SLS fit, which removes it."))
    if head["n_prompts"] < 30:
        warn.append(f"Only {head['n_prompts']} labelled prompts with two or more responses: "
                    "clustered standard errors are rough below about 30 clusters.")

    details: dict[str, Any] = {
        "coefficient": beta,
        "se": se,
        "t": beta / se if se > 0 else float("nan"),
        "df": df_t,
        "n_labelled": int(lab.sum()),
        "n_unlabelled_dropped": n_unlab,
        "n_singleton_prompts": head["n_singleton_prompts"],
        "sd_judge_score": sd_s,
        "min_effect": threshold,
        "practically_relevant": relevant,
        "negligible": negligible,
        "length_label_association": assoc,
        "ols": ols,
    }
    if iv is not None:
        details["iv"] = iv
    if "policy" in frame.columns:
        pol = frame["policy"].astype(str).to_numpy()
        names = list(dict.fromkeys(pol))
        mean_z = {p_: float(z[pol == p_].mean()) for p_ in names}
        details["mean_z_by_policy"] = mean_z
        details["induced_contrast_bias"] = {
            f"{a} - {b}": beta * (mean_z[a] - mean_z[b]) for a, b in combinations(names, 2)
        }
    if iv is not None:
        method = ("2SLS S ~ Y + z + C(prompt), Y instrumented by oracle_label_2; prompt-clustered "
                  "SE (OLS with C(Y) in details)")
    else:
        method = f"OLS S ~ {ols['label_terms']} + z + C(prompt); prompt-clustered SE"
    return BiasResult(
        bias="verbosity",
        method=method,
        effect=beta,
        effect_name="judge points per SD of log length, at fixed oracle label",
        ci_low=lo,
        ci_high=hi,
        alpha=alpha,
        p_value=p,
        p_holm=p,
        flagged=bool(p < alpha and relevant),
        n=head["n"],
        n_prompts=head["n_prompts"],
        judge=judge_name,
        mitigation=_MITIGATION,
        details=details,
        warnings=tuple(warn),
    )


def cluster_2sls(
    y: np.ndarray, X: np.ndarray, Z: np.ndarray, groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Two-stage least squares with a cluster-robust (sandwich) covariance.

    ``β = (X̂'X)⁻¹ X̂'y`` with ``X̂ = Z (Z'Z)⁻¹ Z'X``; residuals ``u = y − Xβ`` use the actual
    ``X``; ``V = c · (X̂'X̂)⁻¹ [Σ_g X̂_g'u_g u_g'X̂_g] (X̂'X̂)⁻¹`` with
    ``c = G/(G−1) · (N−1)/(N−K)``. Exogenous regressors appear in both ``X`` and ``Z``; add a
    constant column to both, or pass data already demeaned within absorbed fixed effects.

    Parameters
    ----------
    y : numpy.ndarray, shape (n,)
    X : numpy.ndarray, shape (n, k)
        Regressors (endogenous and exogenous).
    Z : numpy.ndarray, shape (n, m), m >= k
        Instruments (excluded instruments and the exogenous regressors).
    groups : numpy.ndarray, shape (n,)
        Cluster label of each row.

    Returns
    -------
    beta : numpy.ndarray, shape (k,)
    cov : numpy.ndarray, shape (k, k)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> q = rng.normal(size=2000); x = q + rng.normal(size=2000); w = q + rng.normal(size=2000)
    >>> y = 2 * q + rng.normal(size=2000)
    >>> one = np.ones(2000)
    >>> b, V = cluster_2sls(y, np.column_stack([one, x]), np.column_stack([one, w]), np.arange(2000))
    >>> bool(abs(b[1] - 2) < 3 * np.sqrt(V[1, 1]))
    True
    """
    y = np.asarray(y, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64).reshape(y.shape[0], -1)
    Z = np.asarray(Z, dtype=np.float64).reshape(y.shape[0], -1)
    coef, *_ = np.linalg.lstsq(Z, X, rcond=None)
    Xh = Z @ coef
    A = Xh.T @ Xh
    beta = np.linalg.solve(A, Xh.T @ y)
    u = y - X @ beta
    cov = cluster_robust_covariance(Xh, u, groups, np.linalg.inv(A))
    return beta, cov


# -------------------------------------------------------------------- fits


def _within(M: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """Deviations from group means (the within transformation that absorbs group effects)."""
    M = np.asarray(M, dtype=np.float64)
    two_d = M.ndim == 2
    M2 = M if two_d else M[:, None]
    counts = np.maximum(np.bincount(codes), 1).astype(np.float64)
    means = np.column_stack([np.bincount(codes, weights=col) / counts for col in M2.T])
    out = M2 - means[codes]
    return out if two_d else out[:, 0]


def _keep_multi(groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of groups with two or more rows, their group codes, and the number of singletons."""
    _, codes, counts = np.unique(groups, return_inverse=True, return_counts=True)
    keep = counts[codes] >= 2
    _, sub = np.unique(codes[keep], return_inverse=True)
    return keep, sub, int((counts == 1).sum())


def _n_usable_prompts(groups: np.ndarray) -> int:
    if groups.size == 0:
        return 0
    _, counts = np.unique(groups, return_counts=True)
    return int((counts >= 2).sum())


def _label_terms(y: np.ndarray) -> tuple[np.ndarray, str]:
    """Columns that control for the label: indicators of its levels (first dropped), or a
    linear spline with knots at the deciles when it has more than ``MAX_LABEL_LEVELS`` values."""
    levels = np.unique(y)
    if levels.size <= MAX_LABEL_LEVELS:
        return (y[:, None] == levels[None, 1:]).astype(np.float64), "C(Y)"
    knots = np.unique(np.quantile(y, np.linspace(0.1, 0.9, 9)))
    return np.column_stack([y] + [np.maximum(y - k, 0.0) for k in knots]), "spline(Y)"


def _drop_null(X: np.ndarray) -> np.ndarray:
    """Drop columns that the within transformation reduced to zero (not identified)."""
    if X.shape[0] == 0 or X.shape[1] == 0:
        return X
    return X[:, np.abs(X).max(axis=0) > 1e-10]


def _ols_fit(s: np.ndarray, y: np.ndarray, z: np.ndarray, prompt: np.ndarray) -> dict[str, Any]:
    keep, codes, singletons = _keep_multi(prompt)
    g = int(codes.max()) + 1 if codes.size else 0
    if g < 3:
        raise CJEInputError(
            f"verbosity bias needs labelled responses from at least 3 prompts with two or more "
            f"labelled responses each (it compares responses to the same prompt); found {g}. "
            "Label more responses per prompt."
        )
    L, terms = _label_terms(y[keep])
    zw = _within(z[keep], codes)
    if np.abs(zw).max() < 1e-10:
        raise CJEInputError("Length does not vary within prompts among the labelled responses: "
                            "the length effect is not identified.")
    X = np.column_stack([_drop_null(_within(L, codes)), zw])
    beta, se = cluster_ols(_within(s[keep], codes), X, codes)
    return {"coefficient": beta, "se": se, "df": float(g - 1), "n": int(keep.sum()),
            "n_prompts": g, "n_singleton_prompts": singletons, "label_terms": terms}


def _label_association(y: np.ndarray, z: np.ndarray, prompt: np.ndarray) -> dict[str, Any]:
    """Within-prompt slope of the label on a regressor ``z``, prompt-clustered ``t`` test.

    Over prompts with two or more labelled rows: ``Y ~ z + C(prompt)``. Where it is not zero, a
    label that measures quality coarsely or with noise confounds the effect of ``z`` (length;
    the own-family indicator) at fixed label.
    """
    keep, codes, _ = _keep_multi(prompt)
    g = int(codes.max()) + 1 if codes.size else 0
    zw = _within(z[keep], codes)
    yw = _within(y[keep], codes)
    if g < 3 or np.abs(zw).max() < 1e-10 or np.abs(yw).max() < 1e-10:
        return {"coefficient": 0.0, "se": float("nan"), "pvalue": 1.0}
    b, se = cluster_ols(yw, zw[:, None], codes)
    return {"coefficient": b, "se": se, "pvalue": t_pvalue(b, se, g - 1) if se > 0 else 1.0}


def _label_confounding(assoc: dict[str, Any], finding: str, amount: str, regressor: str,
                       fix: str) -> str:
    """The warning when :func:`_label_association` finds the regressor going with the label.

    A coarse or noisy label leaves part of the true quality in the error term; when the regressor
    (length, the own-family indicator) goes with the label within prompts, that remainder loads
    on it and biases the effect — up when the association is positive — by an amount the
    interval does not include, so the test can never rule a relevant effect out.
    """
    way = "up" if assoc["coefficient"] > 0 else "down"
    return (f"{finding} ({amount}, p = {assoc['pvalue']:.1g}): with a coarse or noisy label the "
            f"quality it misses loads on {regressor} and biases this effect {way}ward, beyond its "
            f"interval. {fix}")


def _iv_fit(s: np.ndarray, y1: np.ndarray, y2: np.ndarray, z: np.ndarray,
            prompt: np.ndarray) -> dict[str, Any]:
    keep, codes, singletons = _keep_multi(prompt)
    g = int(codes.max()) + 1
    W = _within(np.column_stack([s[keep], y1[keep], y2[keep], z[keep]]), codes)
    sw, y1w, y2w, zw = W.T
    beta, cov = cluster_2sls(sw, np.column_stack([y1w, zw]), np.column_stack([y2w, zw]), codes)
    # first stage: Y1 on (Y2, z); cluster-robust Wald F of the excluded instrument
    fb, fse = cluster_ols(y1w, np.column_stack([zw, y2w]), codes)
    return {"coefficient": float(beta[1]), "se": float(np.sqrt(cov[1, 1])), "df": float(g - 1),
            "label_coefficient": float(beta[0]), "first_stage_coefficient": fb,
            "first_stage_F": (fb / fse) ** 2 if fse > 0 else float("inf"),
            "n": int(keep.sum()), "n_prompts": g, "n_singleton_prompts": singletons}


# -------------------------------------------------------------------- input helpers


def _check_min_effect(min_effect: float | None) -> float | None:
    """``min_effect`` of the pointwise tests: ``None`` or a finite number >= 0 (a negative one
    would make every effect "practically relevant", so the flag would rest on the p-value alone
    and "no relevant bias" could never be read)."""
    if min_effect is None:
        return None
    from cje._checks import check_number

    x = check_number("min_effect", min_effect, example="min_effect=0.1 (judge points)")
    if x < 0:
        raise CJEInputError(f"min_effect must be 0 or more (judge points; the practical threshold "
                            f"on |effect|); got {min_effect!r}. Pass e.g. min_effect=0.1, or leave "
                            "it out for 0.05 SD of the judge scores.")
    return x


def _require_with_fix(columns: Any, needed: list[str], what: str, fixes: dict[str, str]) -> None:
    """:func:`require_columns`, with the fix for each missing column appended."""
    try:
        require_columns(list(columns), needed, what)
    except CJEInputError as err:
        hints = " ".join(dict.fromkeys(fixes[c] for c in needed if c not in columns and c in fixes))
        raise CJEInputError(f"{err} {hints}".strip()) from None


def _one_judge(frame: Any, judge: str | None) -> tuple[Any, str | None]:
    if "judge" in frame.columns:  # a row without its judge is refused, not dropped or pooled
        _check_ids(frame["judge"], "judge")
    if "judge" not in frame.columns:
        if judge is not None:
            raise CJEInputError(f"judge={judge!r} was given but the data has no 'judge' column.")
        return frame, None
    names = list(dict.fromkeys(frame["judge"].astype(str)))
    if judge is None:
        if len(names) > 1:
            raise CJEInputError(
                f"The data has {len(names)} judges ({', '.join(names)}); verbosity bias is measured "
                "one judge at a time. Pass judge=<name> (the bias audit runs one test per judge)."
            )
        return frame, names[0] if names else None
    if str(judge) not in names:
        raise CJEInputError(f"judge={judge!r} has no rows; the data has judges {names}.")
    return frame[frame["judge"].astype(str) == str(judge)], str(judge)


def _finite_column(frame: Any, col: str) -> np.ndarray:
    """A numeric column as float64, with an error naming the first non-finite row."""
    import pandas as pd

    v = pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        i = bad[0]
        raw = frame[col].iloc[i]
        shown = "a missing value" if pd.isna(raw) else (
            repr(float(raw)) if isinstance(raw, (float, np.floating)) else repr(raw))
        raise CJEInputError(
            f"The '{col}' column must be finite numbers; row {frame.index[i]} "
            f"(prompt_id={frame['prompt_id'].iloc[i]!r}) has {shown}."
        )
    return v


def _label_column(frame: Any, col: str) -> np.ndarray:
    """An oracle label column as float64: NaN means unlabelled; other non-numbers are errors."""
    import pandas as pd

    raw = frame[col]
    v = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero((np.isnan(v) & raw.notna().to_numpy()) | np.isinf(v))
    if bad.size:
        i = bad[0]
        raise CJEInputError(
            f"The '{col}' column must be numbers (NaN where unlabelled); row {frame.index[i]} "
            f"(prompt_id={frame['prompt_id'].iloc[i]!r}) has {raw.iloc[i]!r}."
        )
    return v
