"""Self-preference bias: does a judge favour responses from its own model family? (docs: Judge bias)

``self = 1[judge family == generator family]``. Two designs estimate the judge-point bonus ``τ``
a judge gives its own family:

* **labelled** (oracle labels on some responses): ``S ~ C(Y) + C(judge) + self`` by OLS, with
  ``z`` (standardised log length) added when a length column exists so that a length preference
  is not counted twice, standard errors clustered by prompt. Conditioning on the label is what
  makes it causal: own-family responses may simply be better.
* **panel** (a crossed panel, no labels needed): response fixed effects
  ``S_jk = μ_k + α_j + τ·self_jk`` — every response is its own control, so anything about the
  response (its quality, its length) cancels, and ``τ`` is the difference in differences between
  how a judge scores its own family and how the other judges score the same responses. It needs
  at least two judges of different families.

The naive gap (mean score on own-family minus other-family responses) is reported alongside: it
mixes self-preference with genuine quality differences between families and is not the estimate.

Both designs assume the judges share one scale: judge effects are additive (``α_j``; a common
``C(Y)``), so a judge that separates good from bad answers more steeply than the others, and whose
own family writes better (or worse) answers, is read as self-preferring (or self-deprecating). With
no self-preference, 150 prompts and the best family's judge 1.15 / 1.3 times as steep as the
others, the panel design flagged 0.13 / 0.46 of data sets and the labelled design 0.37 at 1.3
(``simulations/results/independent_bias.md``; ``tests/test_bias_self_preference.py``, slow tier).
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

from cje.bias._result import BiasResult, as_frame
from cje.bias.verbosity import (
    PRACTICAL_SD_FRACTION,
    _drop_null,
    _finite_column,
    _label_association,
    _label_column,
    _label_confounding,
    _label_terms,
    _require_with_fix,
    _within,
)
from cje.errors import CJEInputError, check_alpha
from cje.inference import cluster_ols, holm, t_interval, t_pvalue
from cje.pairwise._common import _check_families, _check_ids

__all__ = ["self_preference"]

Method = Literal["auto", "labelled", "panel", "both"]

#: Fewest labelled rows for the labelled design to be chosen by ``method="auto"``.
MIN_LABELLED_ROWS: int = 30

_MITIGATION = (
    "aggregate the panel leaving each judge's own family out "
    "(cje.pairwise.aggregate_panel(..., leave_family_out=True)), use a judge from outside the "
    "compared families, or add self (judge family == generator family) as a calibrator covariate."
)
_FIXES = {
    "judge": "Add the judge's name on each row (one row per judge and response).",
    "judge_family": "Add each judge's model family (e.g. 'gpt', 'claude', 'llama').",
    "policy_family": "Add the model family of the policy that generated each response.",
    "policy": "Add the generating policy of each response (a response is a (prompt_id, policy) "
              "pair, scored by several judges).",
    "oracle_label": "Add oracle labels on some rows (NaN elsewhere), or use method='panel' with a "
                    "crossed judge panel.",
    "judge_score": "Add the judge's score of each response.",
    "prompt_id": "Add the prompt id of each response (standard errors are clustered by prompt).",
}


@overload
def self_preference(
    df: Any,
    *,
    alpha: float = ...,
    method: Literal["auto", "labelled", "panel"] = ...,
    length_column: str = ...,
    min_effect: float | None = ...,
) -> BiasResult: ...


@overload
def self_preference(
    df: Any,
    *,
    alpha: float = ...,
    method: Literal["both"],
    length_column: str = ...,
    min_effect: float | None = ...,
) -> list[BiasResult]: ...


@overload
def self_preference(
    df: Any,
    *,
    alpha: float = ...,
    method: Method = ...,
    length_column: str = ...,
    min_effect: float | None = ...,
) -> BiasResult | list[BiasResult]: ...


def self_preference(
    df: Any,
    *,
    alpha: float = 0.05,
    method: Method = "auto",
    length_column: str = "response_length",
    min_effect: float | None = None,
) -> BiasResult | list[BiasResult]:
    """Score bonus judges give responses of their own model family.

    Parameters
    ----------
    df : DataFrame, dict of arrays or path
        One row per (response, judge): ``prompt_id, judge, judge_family, policy_family,
        judge_score``; ``oracle_label`` for the labelled design, ``policy`` (and ``draw_idx`` if
        present) to identify responses for the panel design.
    alpha : float, default 0.05
        ``1 − alpha`` confidence interval; flag threshold on the (Holm-adjusted) p-value.
    method : {"auto", "labelled", "panel", "both"}, default "auto"
        ``"auto"``: labelled when at least ``MIN_LABELLED_ROWS`` (30) rows carry an oracle label,
        else panel. ``"both"`` returns ``[labelled, panel]`` with Holm-adjusted p-values.
    length_column : str, default "response_length"
        If present, the labelled design controls for standardised log length.
    min_effect : float, optional
        Smallest practically relevant bonus in judge points; default ``PRACTICAL_SD_FRACTION``
        (0.05) times the SD of the judge scores.

    Returns
    -------
    BiasResult or list of BiasResult
        ``bias="self_preference"``, ``effect = τ̂`` in judge points, ``flagged = p_holm < alpha
        and practically_relevant``. ``details``: ``tau, se, t, df, naive_gap,
        naive_gap_by_judge, practically_relevant, min_effect, judges, judge_families,
        generator_families, self_judges`` (judges whose family is among the generators) and
        counts. A structural warning names every judge whose family is among the generators
        compared, whatever the estimate.

    Raises
    ------
    CJEInputError
        Missing columns (named, with the fix); no judge sharing a family with any generator; a
        panel with fewer than two judge families or with ``τ`` otherwise not identified.

    Examples
    --------
    >>> from cje.synthetic.panel import make_panel_eval
    >>> sim = make_panel_eval(150, self_preference=0.4, confounded=True, rng=0)
    >>> res = self_preference(sim.data.drop(columns="oracle_label"))  # panel design
    >>> bool(res.ci_low < 0.4 < res.ci_high), res.flagged, res.details["naive_gap"] > 0.4
    (True, True, True)
    """
    alpha = check_alpha(alpha)
    if method not in ("auto", "labelled", "panel", "both"):
        raise CJEInputError(f"method must be 'auto', 'labelled', 'panel' or 'both'; got {method!r}.")
    frame = as_frame(df)
    base = ["prompt_id", "judge", "judge_family", "policy_family", "judge_score"]
    _require_with_fix(frame.columns, base, "self-preference bias", _FIXES)
    if method == "auto":
        n_lab = 0
        if "oracle_label" in frame.columns:
            n_lab = int((~np.isnan(_label_column(frame, "oracle_label"))).sum())
        method = "labelled" if n_lab >= MIN_LABELLED_ROWS else "panel"
    ctx = _context(frame)
    if method == "labelled":
        return _result(ctx, _labelled(frame, ctx, length_column), alpha, min_effect)
    if method == "panel":
        return _result(ctx, _panel(frame, ctx), alpha, min_effect)
    fits = [_labelled(frame, ctx, length_column), _panel(frame, ctx)]
    out = [_result(ctx, f, alpha, min_effect) for f in fits]
    adj = holm([r.p_value for r in out])
    return [r.with_holm(p, bool(p < alpha and r.details["practically_relevant"]))
            for r, p in zip(out, adj, strict=True)]


# -------------------------------------------------------------------- pieces


def _context(frame: Any) -> dict[str, Any]:
    """Columns and descriptive numbers shared by both designs."""
    for col in ("judge", "judge_family", "policy_family"):
        miss = np.flatnonzero(frame[col].isna().to_numpy())
        if miss.size:
            i = miss[0]
            raise CJEInputError(
                f"The '{col}' column must name a {col.replace('_', ' ')} on every row; row "
                f"{frame.index[i]} (prompt_id={frame['prompt_id'].iloc[i]!r}) is missing. "
                f"{_FIXES[col]}"
            )
    for col in ("prompt_id", "judge"):  # 7 and "7": one id written two ways, refused
        _check_ids(frame[col], col)
    _check_families({c: frame[c] for c in ("judge_family", "policy_family")})
    s = _finite_column(frame, "judge_score")
    judge = frame["judge"].astype(str).to_numpy()
    jfam = frame["judge_family"].astype(str).to_numpy()
    gfam = frame["policy_family"].astype(str).to_numpy()
    own = jfam == gfam
    judges = list(dict.fromkeys(judge))
    fam_of = {j: str(f) for j, f in zip(judge, jfam, strict=True)}
    gen_fams = sorted(set(gfam))
    self_judges = [j for j in judges if fam_of[j] in gen_fams]
    if not own.any():
        raise CJEInputError(
            f"No judge shares a family with any generator (judge families "
            f"{sorted(set(fam_of.values()))}, generator families {gen_fams}): self-preference "
            "cannot arise here, so there is nothing to test."
        )
    if own.all():
        raise CJEInputError(
            "Every row has judge family == generator family: self-preference needs other-family "
            "responses (or other judges) to compare with."
        )
    by_judge = {}
    for j in judges:
        m = judge == j
        if own[m].any() and (~own[m]).any():
            by_judge[j] = float(s[m & own].mean() - s[m & ~own].mean())
    return {
        "s": s, "judge": judge, "own": own, "judges": judges, "fam_of": fam_of,
        "gen_fams": gen_fams, "self_judges": self_judges,
        "naive_gap": float(s[own].mean() - s[~own].mean()), "naive_gap_by_judge": by_judge,
        "sd": float(s.std(ddof=1)) if s.size > 1 else 0.0,
    }


def _labelled(frame: Any, ctx: dict[str, Any], length_column: str) -> dict[str, Any]:
    _require_with_fix(frame.columns, ["oracle_label"], "self-preference bias with labels", _FIXES)
    y = _label_column(frame, "oracle_label")
    lab = ~np.isnan(y)
    if not lab.any():
        raise CJEInputError("self-preference bias with labels needs oracle labels on some rows; "
                            "none are labelled. Use method='panel' with a crossed judge panel.")
    own = ctx["own"][lab]
    if own.all() or not own.any():
        raise CJEInputError(
            "Among the labelled rows, self (judge family == generator family) does not vary: "
            "label responses scored by both own-family and other-family judges, or use "
            "method='panel'."
        )
    judge = ctx["judge"][lab]
    L, terms = _label_terms(y[lab])
    jd = [(judge == j).astype(np.float64) for j in dict.fromkeys(judge)][1:]
    cols = [np.ones(int(lab.sum())), L] + jd
    name = f"OLS S ~ {terms} + C(judge)"
    if length_column in frame.columns:
        length = _finite_column(frame, length_column)
        if (length > 0).all() and np.log(length).std() > 0:
            ll = np.log(length)
            cols.append(((ll - ll.mean()) / ll.std())[lab])
            name += " + z"
    name += " + self; prompt-clustered SE"
    X = np.column_stack(cols)
    X = np.column_stack([X[:, :1], _drop_null(X[:, 1:] - X[:, 1:].mean(axis=0)), own])
    prompts = _prompt_codes(frame)[lab]
    _, codes = np.unique(prompts, return_inverse=True)
    g = int(codes.max()) + 1
    if g < 3:
        raise CJEInputError(f"self-preference bias needs labelled responses on at least 3 prompts; "
                            f"found {g}.")
    tau, se = cluster_ols(ctx["s"][lab], X, codes)
    assoc = _label_association(y[lab], own.astype(np.float64), prompts)
    return {"design": "labelled", "method": name, "tau": tau, "se": se, "df": float(g - 1),
            "label_association": assoc,
            "n": int(lab.sum()), "n_prompts": g,
            "effect_name": "judge points added to own-family responses, at fixed oracle label"}


def _panel(frame: Any, ctx: dict[str, Any]) -> dict[str, Any]:
    _require_with_fix(frame.columns, ["prompt_id", "policy", "policy_family", "judge",
                                      "judge_family", "judge_score"],
                      "self-preference bias with a crossed panel", _FIXES)
    fams = {ctx["fam_of"][j] for j in ctx["judges"]}
    if len(ctx["judges"]) < 2 or len(fams) < 2:
        raise CJEInputError(
            f"self-preference with a crossed panel needs at least 2 judges of different families; "
            f"the data has {len(ctx['judges'])} judge(s) of family "
            f"{', '.join(sorted(fams))}. Add a judge from another family, or use oracle labels "
            "(method='labelled')."
        )
    key_cols = ["prompt_id", "policy"] + (["draw_idx"] if "draw_idx" in frame.columns else [])
    import pandas as pd

    resp = pd.MultiIndex.from_frame(frame[key_cols].astype(str)).factorize()[0]
    counts = np.bincount(resp)
    keep = counts[resp] >= 2
    if not keep.any():
        raise CJEInputError("No response is scored by two or more judges: the panel design needs "
                            "each response scored by several judges (a crossed panel).")
    _, rcodes = np.unique(resp[keep], return_inverse=True)
    judge = ctx["judge"][keep]
    jd = [(judge == j).astype(np.float64) for j in ctx["judges"]][1:]
    own = ctx["own"][keep].astype(np.float64)
    X = np.column_stack(jd + [own])
    Xw = _within(X, rcodes)
    if np.linalg.matrix_rank(Xw) < X.shape[1] or np.abs(Xw[:, -1]).max() < 1e-10:
        raise CJEInputError(
            "Self-preference is not identified in this panel: the own-family indicator is "
            "collinear with the judge effects within responses. It needs generators from at least "
            "two of the judges' families, or a judge from a family no generator belongs to."
        )
    prompts = _prompt_codes(frame)[keep]
    _, codes = np.unique(prompts, return_inverse=True)
    g = int(codes.max()) + 1
    if g < 3:
        raise CJEInputError(f"self-preference bias needs a panel over at least 3 prompts; found {g}.")
    tau, se = cluster_ols(_within(ctx["s"][keep], rcodes), Xw, codes)
    return {"design": "panel",
            "method": "response fixed effects S_jk = mu_k + alpha_j + tau*self_jk (difference in "
                      "differences across judges); prompt-clustered SE",
            "tau": tau, "se": se, "df": float(g - 1), "n": int(keep.sum()), "n_prompts": g,
            "n_responses": int(rcodes.max()) + 1, "n_single_judge_rows": int((~keep).sum()),
            "effect_name": "judge points added to own-family responses, vs other judges on the "
                           "same response"}


def _result(ctx: dict[str, Any], fit: dict[str, Any], alpha: float,
            min_effect: float | None) -> BiasResult:
    tau, se, df = fit["tau"], fit["se"], fit["df"]
    lo, hi = t_interval(tau, se, df, alpha)
    p = t_pvalue(tau, se, df)
    threshold = PRACTICAL_SD_FRACTION * ctx["sd"] if min_effect is None else float(min_effect)
    relevant = bool(abs(tau) >= threshold)
    negligible = bool(-threshold < lo and hi < threshold)
    warn = [
        f"Structural: judge {j!r} (family {ctx['fam_of'][j]!r}) scores responses of its own "
        "family; its comparisons of those generators are exposed to self-preference whatever this "
        "test finds."
        for j in ctx["self_judges"]
    ]
    if fit["n_prompts"] < 30:
        warn.append(f"Only {fit['n_prompts']} prompts: clustered standard errors are rough below "
                    "about 30 clusters.")
    assoc = fit.get("label_association")
    if assoc is not None and assoc["pvalue"] < alpha:  # (as length in verbosity)
        negligible = False
        warn.append(_label_confounding(
            assoc, "Own-family responses have different oracle labels than the others on the "
            "same prompts", f"{assoc['coefficient']:+.3f} label units", "self",
            "Use the crossed-panel design (method='panel'), which compares judges on the same "
            "responses."))
    details = {
        "design": fit["design"], "tau": tau, "se": se, "t": tau / se if se > 0 else float("nan"),
        "df": df, "naive_gap": ctx["naive_gap"], "naive_gap_by_judge": ctx["naive_gap_by_judge"],
        "min_effect": threshold, "practically_relevant": relevant,
        "negligible": negligible, "judges": ctx["judges"],
        "judge_families": dict(ctx["fam_of"]), "generator_families": ctx["gen_fams"],
        "self_judges": ctx["self_judges"], "n_self_rows": int(ctx["own"].sum()),
    }
    if assoc is not None:
        details["label_association"] = assoc
    for k in ("n_responses", "n_single_judge_rows"):
        if k in fit:
            details[k] = fit[k]
    return BiasResult(
        bias="self_preference", method=fit["method"], effect=tau, effect_name=fit["effect_name"],
        ci_low=lo, ci_high=hi, alpha=alpha, p_value=p, p_holm=p,
        flagged=bool(p < alpha and relevant), n=fit["n"], n_prompts=fit["n_prompts"],
        judge=ctx["judges"][0] if len(ctx["judges"]) == 1 else None, mitigation=_MITIGATION,
        details=details, warnings=tuple(warn),
    )


def _prompt_codes(frame: Any) -> np.ndarray:
    """The prompt ids, as text when they are of mixed types (``np.unique`` cannot sort those)."""
    prompt = frame["prompt_id"].to_numpy()
    return prompt.astype(str) if prompt.dtype == object else prompt
