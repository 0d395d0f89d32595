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

Judges on different scales: a judge that separates good from bad answers more steeply than the
others, and whose own family writes better (or worse) answers, scores its family higher (lower)
than the others do with no self-preference at all. Under a shared scale (``scales="shared"``, the
additive models above) this is read as self-preference: with no self-preference, 150 prompts and
the best family's judge 1.15 / 1.3 times as steep as the others, the panel design flagged 0.13 /
0.46 of data sets and the labelled design 0.37 at 1.3 (``simulations/results/independent_bias.md``).
By default (``scales="auto"``) each judge gets its own scale:

* labelled: its own label terms, ``S ~ C(Y):C(judge) + C(judge) + self`` — exact, any number of
  judges;
* panel, three or more judges: a one-factor panel ``S_jk = α_j + λ_j·μ_k + τ·self_jk``. The
  slopes ``λ_j`` come from the covariances between judges of their scores on the same responses,
  centred within (judge, generator family) — centring inside a generator family removes ``τ``,
  which is constant there, and covariances between different judges carry no judge noise — by a
  least-squares fit of ``log C_il = log λ_i + log λ_l`` over the pairs of judges (``λ`` scaled to
  geometric mean 1). ``τ`` is then the response fixed-effects fit of ``S_jk/λ_j`` on the judge
  indicators and ``self_jk/λ_j``; its standard error is a delete-one-prompt jackknife of both
  steps (blocks of prompts above :data:`MAX_JACKKNIFE_BLOCKS` prompts), ``t`` with blocks − 1
  degrees of freedom.
  With two judges the slopes are not identified and the shared scale is used, with a warning.

The one-factor model covers linear differences of scale, not a judge that is compressed at one
end of its scale only.
"""

from __future__ import annotations

from typing import Any, Literal, overload

import numpy as np

from cje.bias._result import BiasResult, as_frame
from cje.bias.verbosity import (
    PRACTICAL_SD_FRACTION,
    _check_min_effect,
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
from cje.pairwise._common import _check_families, _check_ids, _check_one_family, family_keys

__all__ = ["self_preference"]

Method = Literal["auto", "labelled", "panel", "both"]

#: Fewest labelled rows for the labelled design to be chosen by ``method="auto"``.
MIN_LABELLED_ROWS: int = 30

#: Most delete-a-block jackknife replicates of the per-judge-scale panel fit (one per prompt up to
#: this many prompts; above it, prompts grouped by their sorted position modulo this number, so the
#: interval's t has 49 degrees of freedom at most: 2.01 against 1.97 for infinitely many).
MAX_JACKKNIFE_BLOCKS: int = 50

Scales = Literal["auto", "per_judge", "shared"]

_MITIGATION = (
    "aggregate the panel leaving each judge's own family out "
    "(cje.pairwise.aggregate_panel(..., leave_family_out=True)), use a judge from outside the "
    "compared families, or add self (judge family == generator family) as a calibrator covariate."
)
#: ``length_column``'s default: used when present, never required.
_LENGTH = "response_length"

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
    scales: Scales = ...,
) -> BiasResult: ...


@overload
def self_preference(
    df: Any,
    *,
    alpha: float = ...,
    method: Literal["both"],
    length_column: str = ...,
    min_effect: float | None = ...,
    scales: Scales = ...,
) -> list[BiasResult]: ...


@overload
def self_preference(
    df: Any,
    *,
    alpha: float = ...,
    method: Method = ...,
    length_column: str = ...,
    min_effect: float | None = ...,
    scales: Scales = ...,
) -> BiasResult | list[BiasResult]: ...


def self_preference(
    df: Any,
    *,
    alpha: float = 0.05,
    method: Method = "auto",
    length_column: str = "response_length",
    min_effect: float | None = None,
    scales: Scales = "auto",
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
        If present, the labelled design controls for standardised log length (a warning says
        when the column is present but not usable: lengths that are not all positive or all
        alike). A name other than the default must be a column (else refused); the panel design
        compares judges on the same responses, so it reads no length (a warning says so when
        ``length_column`` is given).
    min_effect : float, optional
        Smallest practically relevant bonus in judge points (0 or more; a negative value is
        refused); default ``PRACTICAL_SD_FRACTION`` (0.05) times the SD of the judge scores.
    scales : {"auto", "per_judge", "shared"}, default "auto"
        How judges' scales relate. ``"per_judge"``: each judge its own scale (labelled: its own
        label terms; panel: the one-factor model of the module docstring, three or more judges).
        ``"shared"``: the additive models (judges differ by a shift only). ``"auto"``: per judge
        where identified, else shared with a warning (a panel of two judges). ``"per_judge"``
        with one judge among the labelled rows is the shared fit, said in a warning.

    Returns
    -------
    BiasResult or list of BiasResult
        ``bias="self_preference"``, ``effect = τ̂`` in judge points, ``flagged = p_holm < alpha
        and practically_relevant``. ``details``: ``tau, se, t, df, scales`` (the model used),
        ``judge_slopes`` (panel with per-judge scales: ``λ_j``), ``naive_gap,
        naive_gap_by_judge, practically_relevant, min_effect, judges, judge_families,
        generator_families, self_judges`` (judges whose family is among the generators) and
        counts. A structural warning names every judge whose family is among the generators
        compared, whatever the estimate.

    Raises
    ------
    CJEInputError
        Missing columns (named, with the fix); no judge sharing a family with any generator; a
        panel with fewer than two judge families or with ``τ`` otherwise not identified;
        ``scales="per_judge"`` for a panel whose judges' slopes are not identified (two judges,
        or judges whose scores do not co-vary on the same responses).

    Examples
    --------
    >>> from cje.synthetic.panel import make_panel_eval
    >>> sim = make_panel_eval(150, self_preference=0.4, confounded=True, rng=0)
    >>> res = self_preference(sim.data.drop(columns="oracle_label"))  # panel design
    >>> bool(res.ci_low < 0.4 < res.ci_high), res.flagged, res.details["naive_gap"] > 0.4
    (True, True, True)
    """
    alpha = check_alpha(alpha)
    min_effect = _check_min_effect(min_effect)
    if scales not in ("auto", "per_judge", "shared"):
        raise CJEInputError(f"scales must be 'auto', 'per_judge' or 'shared'; got {scales!r}.")
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
    if length_column != _LENGTH and length_column not in frame.columns:
        raise CJEInputError(
            f"length_column={length_column!r} is not a column; the columns are "
            f"{sorted(map(str, frame.columns))}. Name the column holding each response's length "
            f"(tokens or words), or leave length_column out (default {_LENGTH!r}, used when "
            "present)."
        )
    ctx = _context(frame)
    if method == "labelled":
        return _result(ctx, _labelled(frame, ctx, length_column, scales), alpha, min_effect)
    if method == "panel":
        fit = _panel(frame, ctx, scales)
        if length_column != _LENGTH:
            fit["length_note"] = (
                f"length_column={length_column!r} has no effect with the panel design: it "
                "compares judges on the same responses, so their length is the same for every "
                "judge. The labelled design (method='labelled') controls for length.")
        return _result(ctx, fit, alpha, min_effect)
    fits = [_labelled(frame, ctx, length_column, scales), _panel(frame, ctx, scales)]
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
    _check_one_family(frame["judge"], frame["judge_family"])
    s = _finite_column(frame, "judge_score")
    judge = frame["judge"].astype(str).to_numpy()
    jfam = family_keys(frame["judge_family"]).astype(str)
    gfam = family_keys(frame["policy_family"]).astype(str)
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
        "s": s, "judge": judge, "own": own, "judges": judges, "fam_of": fam_of, "gfam": gfam,
        "gen_fams": gen_fams, "self_judges": self_judges,
        "naive_gap": float(s[own].mean() - s[~own].mean()), "naive_gap_by_judge": by_judge,
        "sd": float(s.std(ddof=1)) if s.size > 1 else 0.0,
    }


def _labelled(frame: Any, ctx: dict[str, Any], length_column: str, scales: Scales
              ) -> dict[str, Any]:
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
    jd = [(judge == j).astype(np.float64) for j in dict.fromkeys(judge)]
    per_judge = scales != "shared" and len(jd) > 1
    scale_note = None
    if scales == "per_judge" and len(jd) == 1:  # one judge: its scale is the only one
        scale_note = ("scales='per_judge' has no effect here: the labelled rows hold one judge "
                      f"({next(iter(dict.fromkeys(judge)))!r}), whose scale is the only one; the "
                      "fit is the same as with scales='shared'.")
    if per_judge:  # each judge its own label terms: S ~ C(Y):C(judge) + C(judge)
        L = np.column_stack([L * d[:, None] for d in jd])
        terms = f"{terms}:C(judge)"
    cols = [np.ones(int(lab.sum())), L] + jd[1:]
    name = f"OLS S ~ {terms} + C(judge)"
    length_note = None
    if length_column in frame.columns:
        length = _finite_column(frame, length_column)
        if (length > 0).all() and np.log(length).std() > 0:
            ll = np.log(length)
            cols.append(((ll - ll.mean()) / ll.std())[lab])
            name += " + z"
        else:  # before: left out without a word
            why = ("not every length is positive" if not (length > 0).all()
                   else "every response has the same length")
            length_note = (f"The '{length_column}' column is not controlled for ({why}): the "
                           "estimate is not adjusted for response length.")
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
            "label_association": assoc, "scales": "per_judge" if per_judge else "shared",
            "n": int(lab.sum()), "n_prompts": g,
            "effect_name": "judge points added to own-family responses, at fixed oracle label",
            **({"length_note": length_note} if length_note else {}),
            **({"scale_note": scale_note} if scale_note else {})}


def _panel(frame: Any, ctx: dict[str, Any], scales: Scales) -> dict[str, Any]:
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
    s = ctx["s"][keep]
    J = len(ctx["judges"])
    jc = pd.Index(ctx["judges"]).get_indexer(judge)
    fam = np.unique(ctx["gfam"][keep], return_inverse=True)[1]
    lam = None
    if scales != "shared":
        lam = _judge_slopes(s, jc, fam, rcodes, J)
        if lam is None and scales == "per_judge":
            raise CJEInputError(
                "The judges' scales are not identified in this panel (scales='per_judge'): it "
                "needs three or more judges whose scores co-vary on the same responses. Use "
                "scales='shared' to assume one scale for all judges."
            )
    fit = {"design": "panel", "df": float(g - 1), "n": int(keep.sum()), "n_prompts": g,
           "n_responses": int(rcodes.max()) + 1, "n_single_judge_rows": int((~keep).sum()),
           "effect_name": "judge points added to own-family responses, vs other judges on the "
                          "same response"}
    if lam is None:
        tau, se = cluster_ols(_within(s, rcodes), Xw, codes)
        fit.update(tau=tau, se=se, scales="shared",
                   method="response fixed effects S_jk = mu_k + alpha_j + tau*self_jk (difference "
                          "in differences across judges); prompt-clustered SE")
        if scales == "auto":
            why, fix = (("Two judges", "add a third judge") if J == 2 else
                        ("These judges (some pair shares fewer than 3 responses, or their scores "
                         "do not co-vary)", "score more responses with every judge"))
            fit["scale_warning"] = (
                f"{why}: their relative scales are not identified, so one shared scale is "
                "assumed. A judge that separates good from bad answers more steeply, and whose "
                "family is better, reads as self-preferring; compare the judges' score SDs on "
                f"the same responses, or {fix}.")
        return fit
    tau = _scaled_tau(s, jc, rcodes, own, lam, J)
    blocks = codes % MAX_JACKKNIFE_BLOCKS
    b = int(blocks.max()) + 1
    reps = np.empty(b)
    for k in range(b):
        m = blocks != k
        lam_k = _judge_slopes(s[m], jc[m], fam[m], rcodes[m], J)
        reps[k] = _scaled_tau(s[m], jc[m], rcodes[m], own[m], lam if lam_k is None else lam_k, J)
    se = float(np.sqrt((b - 1) / b * ((reps - reps.mean()) ** 2).sum()))
    fit.update(tau=tau, se=se, df=float(b - 1), scales="per_judge",
               judge_slopes={j: float(v) for j, v in zip(ctx["judges"], lam, strict=True)},
               method="one-factor panel S_jk = alpha_j + lambda_j*mu_k + tau*self_jk (judge "
                      "slopes from within-family covariances between judges; response fixed "
                      "effects on S/lambda); delete-a-prompt-block jackknife SE")
    return fit


def _judge_slopes(s: np.ndarray, jc: np.ndarray, fam: np.ndarray, rcodes: np.ndarray, J: int
                  ) -> np.ndarray | None:
    """Each judge's slope ``λ_j`` (geometric mean 1) in ``S_jk = α_j + λ_j μ_k + τ·self_jk``,
    or None when not identified.

    Scores are centred within (judge, generator family) — ``self`` is constant there, so ``τ``
    drops out — and averaged per (response, judge); for two judges ``i ≠ l`` their mean product
    over the responses both scored estimates ``λ_i λ_l Var_within(μ)`` whatever each judge's own
    noise. ``log λ`` is the least-squares fit of ``log C_il = log λ_i + log λ_l + const`` over
    the pairs, weighted by the square root of their shared responses (exact with three judges:
    ``λ_i ∝ sqrt(C_il C_ik / C_lk)``). Not identified: fewer than three judges, a pair of judges
    with fewer than 3 shared responses, or a covariance that is not positive.
    """
    if J < 3:
        return None
    cell = jc * (int(fam.max()) + 1) + fam
    sc = _within(s, cell)
    R = int(rcodes.max()) + 1
    key = rcodes * J + jc
    n = np.bincount(key, minlength=R * J).reshape(R, J)
    M = np.bincount(key, weights=sc, minlength=R * J).reshape(R, J) / np.maximum(n, 1)
    on = (n > 0).astype(np.float64)
    shared = on.T @ on
    C = (M * on).T @ (M * on) / np.maximum(shared, 1)
    off = ~np.eye(J, dtype=bool)
    if (shared[off] < 3).any() or not (C[off] > 0).all():
        return None
    i, k = np.nonzero(np.triu(off))
    P = np.zeros((i.size, J))
    P[np.arange(i.size), i] = P[np.arange(i.size), k] = 1.0
    wt = np.sqrt(shared[i, k])  # pairs weighted by the responses they share
    log_lam = np.linalg.lstsq(P * wt[:, None], np.log(C[i, k]) * wt, rcond=None)[0]
    lam = np.exp(log_lam - log_lam.mean())
    if not (np.isfinite(lam).all() and (lam > 0).all()):
        return None
    return lam


def _scaled_tau(s: np.ndarray, jc: np.ndarray, rcodes: np.ndarray, own: np.ndarray,
                lam: np.ndarray, J: int) -> float:
    """``τ`` of the response fixed-effects fit of ``S/λ_j`` on the judge indicators and
    ``self/λ_j`` (``μ_k`` absorbed)."""
    inv = 1.0 / lam[jc]
    X = np.column_stack([(jc == j).astype(np.float64) for j in range(1, J)] + [own * inv])
    beta = np.linalg.lstsq(_within(X, rcodes), _within(s * inv, rcodes), rcond=None)[0]
    return float(beta[-1])


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
    for key in ("scale_warning", "scale_note", "length_note"):
        if key in fit:
            warn.append(fit[key])
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
        "df": df, "scales": fit["scales"], "naive_gap": ctx["naive_gap"],
        "naive_gap_by_judge": ctx["naive_gap_by_judge"],
        "min_effect": threshold, "practically_relevant": relevant,
        "negligible": negligible, "judges": ctx["judges"],
        "judge_families": dict(ctx["fam_of"]), "generator_families": ctx["gen_fams"],
        "self_judges": ctx["self_judges"], "n_self_rows": int(ctx["own"].sum()),
    }
    if assoc is not None:
        details["label_association"] = assoc
    for k in ("judge_slopes", "n_responses", "n_single_judge_rows"):
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
