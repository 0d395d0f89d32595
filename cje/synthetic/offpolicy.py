"""Synthetic off-policy evaluation data with a known truth (logged data + fresh draws).

This module implements the off-policy data-generating process (DGP) described below.
One logging policy ``pi0`` (named ``"base"``) answers every prompt once; those *logged* responses
carry a judge score, an oracle label on a random (MCAR) slice, the logging policy's sequence
log-probability ``logprob_base`` and, for every target policy ``p``, the log-probability
``logprob[p]`` the target would have given the same response.  Separately, every policy (base and
targets) answers every prompt afresh (*fresh draws*, what the direct and doubly robust
estimators use).  Because the DGP is fully specified, the true value ``V(pi_p) = E_{pi_p}[Y]`` of
every policy is known exactly (1-D quadrature), and the population overlap of every target is
known in closed form.

The generative model, with every knob explicit
----------------------------------------------
* prompts ``j = 1..n``: difficulty ``d_j ~ N(0, 1)``, ``prompt_id`` ``"p00000"``, ``"p00001"``, …
  (zero-padded to at least five digits);
* response feature ``u``: under the logging policy ``u ~ N(0, 1)``, independent of ``d``.  Target
  ``p`` is the exponential tilt ``pi_p(u | x) ∝ pi0(u | x) exp(theta_p u)``, i.e.
  ``u ~ N(theta_p, 1)``, so the log importance weight of a logged response is *exactly*
  ``lambda_p = log pi_p - log pi0 = theta_p u - theta_p^2 / 2`` (``E_pi0[exp(lambda_p)] = 1``).
  The population raw-weight ESS fraction ``E[w]^2 / E[w^2]`` is ``exp(-theta_p^2)``
  (:func:`theta_for_ess` inverts it: ESS 90 % -> 0.32, 60 % -> 0.71, 10 % -> 1.52, 1 % -> 2.15);
* latent quality ``eta = a (beta_u u - d) + eps``, ``eps ~ N(0, sigma^2)`` (``a =
  quality_slope``, ``beta_u = feature_effect``, ``sigma = quality_noise``); oracle
  ``Y01 = sigmoid(eta)`` in [0, 1] (continuous) and
  ``oracle_label = label_lo + (label_hi - label_lo) Y01``.  With ``beta_u > 0`` the tilt towards
  large ``u`` makes a target genuinely better than the logging policy (``theta_p > 0``) or worse
  (``theta_p < 0``);
* judge: ``J = h(Y01) + judge_noise * N(0, 1)`` with ``h`` from
  :func:`cje.synthetic.direct.judge_link` (identity for ``judge="calibrated"``, a steep harsh
  S-curve for ``judge="miscalibrated"``); ``judge_score = judge_lo + (judge_hi - judge_lo)
  clip(J, 0, 1)`` rounded to ``judge_grid``.  With ``judge_noise = 0`` the score is a deterministic
  non-decreasing function of ``Y01``.  The judge does not see ``u`` or ``d`` except through ``Y``;
* log-probabilities: ``logprob_base = -(40 + 5 u^2)`` (only differences matter; the value is a
  plausible sequence log-probability) and ``logprob[p] = logprob_base + lambda_p``.  Both are
  always negative: ``logprob[p] <= -40 - 0.45 theta_p^2``;
* oracle mask on logged rows: each row labelled independently with probability
  ``oracle_fraction`` (MCAR); ``missing_logprob_rate``: each target's log-probability is NaN on an
  independent Bernoulli(``missing_logprob_rate``) subset of logged rows (``logprob_base`` is never
  missing);
* fresh draws: for ``base`` (``theta = 0``) and every target, ``n_fresh_per_prompt`` independent
  responses per prompt with ``u ~ N(theta_p, 1)`` and the *same* prompt difficulties ``d_j``,
  quality and judge as above; each labelled independently with probability
  ``fresh_oracle_fraction``.

The truth
---------
Since ``beta_u u - d + eps / a`` is Gaussian, ``eta ~ N(a beta_u theta_p,
a^2 (beta_u^2 + 1) + sigma^2)`` under ``pi_p`` and ``V(pi_p) = E[sigmoid(eta)]`` is a 1-D integral,
computed by adaptive quadrature (:func:`offpolicy_true_value`) and reported on the label scale.

Random streams
--------------
One :class:`numpy.random.Generator` (``numpy.random.default_rng(rng)``) is consumed in a fixed
order, which is part of the reproducibility contract: the logged block first (``d``, ``u``,
``eps``, judge noise, label uniforms, then one row of missing-log-probability uniforms per target,
all of length ``n_prompts`` and always drawn, even when a rate is 0 or 1), then for each fresh
policy in the order ``base``, targets (in mapping order) an ``(n_prompts, n_fresh_per_prompt)``
block of ``u``, ``eps``, judge noise and label uniforms.  Hence the logged data does not depend on
any fresh-draw knob, on ``oracle_fraction`` or on ``missing_logprob_rate`` beyond which entries are
masked, and the same seed gives identical frames.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from cje.errors import CJEInputError
from cje.synthetic.direct import (
    JUDGE_CURVE_CENTER,
    JUDGE_CURVE_STEEPNESS,
    JUDGE_KINDS,
    QUALITY_NOISE,
    QUALITY_SLOPE,
    judge_link,
    true_value,
)

__all__ = [
    "DEFAULT_TARGET_ESS",
    "FEATURE_EFFECT",
    "LOGGING_POLICY",
    "OffPolicySim",
    "default_targets",
    "make_offpolicy_eval",
    "offpolicy_true_value",
    "theta_for_ess",
]

#: Name of the logging policy (the ``policy`` of logged rows and of its fresh draws).
LOGGING_POLICY: str = "base"
#: Default effect ``beta_u`` of the response feature ``u`` on latent quality.
FEATURE_EFFECT: float = 0.8
#: Population raw-weight ESS fractions of the default targets (see :func:`default_targets`).
DEFAULT_TARGET_ESS: dict[str, float] = {"mild": 0.9, "moderate": 0.6, "far": 0.1}

# logprob_base = -(_LOGPROB_OFFSET + _LOGPROB_CURVATURE * u^2): negative for every u, and
# logprob[p] = logprob_base + theta u - theta^2/2 <= -_LOGPROB_OFFSET - 0.45 theta^2 < 0.
_LOGPROB_OFFSET = 40.0
_LOGPROB_CURVATURE = 5.0


@dataclass(frozen=True, slots=True, eq=False)
class OffPolicySim:
    """A synthetic off-policy evaluation data set together with its known truth.

    Parameters
    ----------
    logged : pandas.DataFrame
        One row per prompt (the logging policy's response), columns ``prompt_id`` (str),
        ``policy`` (always ``"base"``), ``judge_score`` (on ``judge_scale``), ``oracle_label``
        (on ``label_scale``, NaN where unlabelled), ``logprob_base`` and one column
        ``logprob[<target>]`` per target (NaN where missing).  The response feature ``u`` is
        deliberately not included: estimators must work from the log-probabilities.
    fresh : pandas.DataFrame
        Fresh draws, ``n_fresh_per_prompt`` per (prompt, policy) for ``base`` and every target,
        columns ``prompt_id``, ``policy``, ``draw_idx`` (int), ``judge_score``, ``oracle_label``
        (NaN unless labelled with probability ``fresh_oracle_fraction``).  Ordered by policy
        (base first, then targets in the order given), prompt, draw.
    truth : dict[str, float]
        Exact ``V(pi)`` on the label scale for ``"base"`` and every target.
    raw_ess : dict[str, float]
        Population raw-weight ESS fraction ``exp(-theta_p^2)`` per target.
    thetas : dict[str, float]
        Tilt ``theta_p`` per target.
    judge_scale : tuple[float, float]
        ``(lo, hi)`` of the judge scores.
    label_scale : tuple[float, float]
        ``(lo, hi)`` of the oracle labels.
    description : str
        One plain-words paragraph describing the simulation.

    Notes
    -----
    Equality comparison is identity-based (``eq=False``) because data frames have no boolean
    equality; compare the frames with :func:`pandas.testing.assert_frame_equal` instead.

    Examples
    --------
    >>> sim = make_offpolicy_eval(40, rng=0)
    >>> sim.logged.shape, sim.fresh.shape
    ((40, 8), (160, 5))
    >>> list(sim.truth)
    ['base', 'mild', 'moderate', 'far']
    """

    logged: pd.DataFrame
    fresh: pd.DataFrame
    truth: dict[str, float]
    raw_ess: dict[str, float]
    thetas: dict[str, float]
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    description: str


def theta_for_ess(ess: float) -> float:
    """Tilt ``theta >= 0`` whose population raw-weight ESS fraction is ``ess``.

    Under the exponential tilt of a standard normal feature, the importance weight is
    ``w = exp(theta u - theta^2 / 2)`` with ``E[w] = 1`` and ``E[w^2] = exp(theta^2)``, so the
    ESS fraction ``E[w]^2 / E[w^2]`` is ``exp(-theta^2)`` and ``theta = sqrt(-log(ess))``.
    ``-theta`` has the same overlap (a target worse than the logging policy when
    ``feature_effect > 0``).

    Parameters
    ----------
    ess : float
        Target ESS fraction in (0, 1].

    Returns
    -------
    float
        ``sqrt(-log(ess))``.

    Raises
    ------
    CJEInputError
        If ``ess`` is not a number in (0, 1].

    Examples
    --------
    >>> [round(theta_for_ess(e), 2) for e in (0.9, 0.6, 0.1, 0.01)]
    [0.32, 0.71, 1.52, 2.15]
    >>> theta_for_ess(1.0)
    0.0
    """
    if not _is_real(ess) or not math.isfinite(float(ess)) or not 0.0 < float(ess) <= 1.0:
        raise CJEInputError(f"ess must be a number in (0, 1], e.g. 0.6; got {ess!r}.")
    return math.sqrt(abs(math.log(float(ess))))  # abs: -log(1.0) is -0.0


def default_targets() -> dict[str, float]:
    """The three demo targets: name -> tilt ``theta`` at ESS 90 %, 60 % and 10 %.

    Returns
    -------
    dict[str, float]
        ``{"mild": theta_for_ess(0.9), "moderate": theta_for_ess(0.6),
        "far": theta_for_ess(0.1)}`` (all tilted towards better responses).

    Examples
    --------
    >>> {k: round(v, 3) for k, v in default_targets().items()}
    {'mild': 0.325, 'moderate': 0.715, 'far': 1.517}
    """
    return {name: theta_for_ess(ess) for name, ess in DEFAULT_TARGET_ESS.items()}


def offpolicy_true_value(
    theta: float,
    *,
    quality_slope: float = QUALITY_SLOPE,
    feature_effect: float = FEATURE_EFFECT,
    quality_noise: float = QUALITY_NOISE,
    label_scale: tuple[float, float] = (0.0, 1.0),
) -> float:
    """Exact value ``V(pi_theta)`` of the policy with tilt ``theta``, on the label scale.

    Under ``pi_theta``, ``u ~ N(theta, 1)``, ``d ~ N(0, 1)`` and ``eps ~ N(0, sigma^2)`` are
    independent, so ``eta = a (beta_u u - d) + eps ~ N(a beta_u theta, a^2 (beta_u^2 + 1) +
    sigma^2)`` and ``V = lo + (hi - lo) E[sigmoid(eta)]``: a 1-D integral computed by adaptive
    quadrature (via :func:`cje.synthetic.direct.true_value` with quality ``beta_u theta`` and
    noise ``sqrt(a^2 beta_u^2 + sigma^2)``; absolute tolerance 1e-13).  ``theta = 0`` is the
    logging policy.

    Parameters
    ----------
    theta : float
        Tilt ``theta_p`` (finite).
    quality_slope : float, default QUALITY_SLOPE (1.0)
        ``a`` (>= 0).
    feature_effect : float, default FEATURE_EFFECT (0.8)
        ``beta_u`` (finite).
    quality_noise : float, default QUALITY_NOISE (0.5)
        ``sigma`` (>= 0).
    label_scale : tuple of float, default (0.0, 1.0)
        ``(lo, hi)`` of the label scale.

    Returns
    -------
    float
        ``V(pi_theta)`` on the label scale.

    Raises
    ------
    CJEInputError
        On a non-finite ``theta`` or ``feature_effect``, a negative slope or noise, or a bad scale.

    Examples
    --------
    >>> round(offpolicy_true_value(0.0), 12)
    0.5
    >>> offpolicy_true_value(1.0) > offpolicy_true_value(0.5) > 0.5
    True
    """
    theta = _check_finite("theta", theta)
    a = _check_nonneg("quality_slope", quality_slope)
    beta = _check_finite("feature_effect", feature_effect)
    sigma = _check_nonneg("quality_noise", quality_noise)
    lo, hi = _check_scale("label_scale", label_scale)
    return true_value(
        beta * theta,
        quality_slope=a,
        quality_noise=math.hypot(a * beta, sigma),
        label_scale=(lo, hi),
    )


def make_offpolicy_eval(
    n_prompts: int,
    *,
    targets: Mapping[str, float] | None = None,
    oracle_fraction: float = 0.1,
    judge: str = "miscalibrated",
    judge_noise: float = 0.1,
    n_fresh_per_prompt: int = 1,
    fresh_oracle_fraction: float = 0.0,
    missing_logprob_rate: float = 0.0,
    quality_slope: float = QUALITY_SLOPE,
    feature_effect: float = FEATURE_EFFECT,
    quality_noise: float = QUALITY_NOISE,
    judge_scale: tuple[float, float] = (0.0, 1.0),
    judge_grid: float | None = 0.05,
    label_scale: tuple[float, float] = (0.0, 1.0),
    rng: int | np.random.Generator | None = None,
) -> OffPolicySim:
    """Simulate an off-policy evaluation (logged data of ``base`` + fresh draws) with known truth.

    Model (see the module docstring): ``d_j ~ N(0, 1)``; logged response feature ``u ~ N(0, 1)``;
    target ``p`` tilts it to ``N(theta_p, 1)``, so ``logprob[p] - logprob_base =
    theta_p u - theta_p^2 / 2`` exactly, with ``logprob_base = -(40 + 5 u^2)``; quality
    ``eta = a (beta_u u - d) + eps``, oracle ``Y01 = sigmoid(eta)`` on ``label_scale``; judge
    ``clip(h(Y01) + judge_noise N(0, 1), 0, 1)`` on ``judge_scale`` rounded to ``judge_grid``;
    MCAR oracle slice; fresh draws of base and each target from their own ``u`` laws.

    Parameters
    ----------
    n_prompts : int
        Number of prompts (>= 2) = number of logged rows.
    targets : Mapping[str, float], optional
        Target policy name -> tilt ``theta_p`` (finite; ``theta_for_ess(e)`` gives ESS fraction
        ``e``).  Names must be non-empty strings other than ``"base"``; at least one target.
        ``None`` uses :func:`default_targets` (ESS 90 %, 60 %, 10 %).
    oracle_fraction : float, default 0.1
        Probability in [0, 1] that a logged row's oracle label is observed (MCAR).
    judge : {"miscalibrated", "calibrated"}, default "miscalibrated"
        The judge's link ``h`` (:func:`cje.synthetic.direct.judge_link`).
    judge_noise : float, default 0.1
        SD of the judge noise in units of its [0, 1] latent (>= 0; 0 makes the score a
        deterministic non-decreasing function of ``Y``).
    n_fresh_per_prompt : int, default 1
        Fresh draws per (prompt, policy) for base and every target (>= 0; 0 gives an empty
        ``fresh`` frame, e.g. for IPS-only benchmarks).
    fresh_oracle_fraction : float, default 0.0
        Probability in [0, 1] that a fresh draw's oracle label is observed.
    missing_logprob_rate : float, default 0.0
        Probability in [0, 1] that a logged row's ``logprob[<target>]`` is NaN, independently
        per row and target.
    quality_slope : float, default QUALITY_SLOPE (1.0)
        ``a`` (>= 0).
    feature_effect : float, default FEATURE_EFFECT (0.8)
        ``beta_u``, effect of the response feature on quality (finite; 0 makes every policy
        equally good).
    quality_noise : float, default QUALITY_NOISE (0.5)
        ``sigma`` (>= 0).
    judge_scale : tuple of float, default (0.0, 1.0)
        ``(lo, hi)`` of the judge scores.
    judge_grid : float or None, default 0.05
        Judge scores are ``lo + k * judge_grid``; ``None`` keeps them continuous.
    label_scale : tuple of float, default (0.0, 1.0)
        ``(lo, hi)`` of the oracle labels.
    rng : int, numpy.random.Generator or None
        Seed or generator for :func:`numpy.random.default_rng`; the draw order is fixed (module
        docstring), so the same seed gives identical frames.

    Returns
    -------
    OffPolicySim
        Logged and fresh frames, exact truths, population ESS fractions, tilts and scales.

    Raises
    ------
    CJEInputError
        On invalid arguments; the message names the argument.

    Examples
    --------
    >>> sim = make_offpolicy_eval(500, oracle_fraction=0.2, rng=3)
    >>> list(sim.logged.columns)  # doctest: +NORMALIZE_WHITESPACE
    ['prompt_id', 'policy', 'judge_score', 'oracle_label', 'logprob_base',
     'logprob[mild]', 'logprob[moderate]', 'logprob[far]']
    >>> {k: round(v, 3) for k, v in sim.raw_ess.items()}
    {'mild': 0.9, 'moderate': 0.6, 'far': 0.1}
    >>> sim.truth["base"] < sim.truth["mild"] < sim.truth["moderate"] < sim.truth["far"]
    True
    >>> lp = sim.logged.filter(like="logprob")
    >>> bool((lp <= 0).all().all())
    True
    """
    # ---------------------------------------------------------------- validation
    n = _check_int("n_prompts", n_prompts, minimum=2)
    thetas = _check_targets(default_targets() if targets is None else targets)
    p_lab = _check_fraction("oracle_fraction", oracle_fraction)
    if judge not in JUDGE_KINDS:
        raise CJEInputError(f"judge must be one of {JUDGE_KINDS}; got {judge!r}.")
    j_noise = _check_nonneg("judge_noise", judge_noise)
    m = _check_int("n_fresh_per_prompt", n_fresh_per_prompt, minimum=0)
    p_fresh = _check_fraction("fresh_oracle_fraction", fresh_oracle_fraction)
    p_miss = _check_fraction("missing_logprob_rate", missing_logprob_rate)
    a = _check_nonneg("quality_slope", quality_slope)
    beta = _check_finite("feature_effect", feature_effect)
    sigma = _check_nonneg("quality_noise", quality_noise)
    j_scale = _check_scale("judge_scale", judge_scale)
    l_scale = _check_scale("label_scale", label_scale)
    step: float | None = None
    if judge_grid is not None:
        step = _check_finite("judge_grid", judge_grid)
        if not 0.0 < step <= j_scale[1] - j_scale[0]:
            raise CJEInputError(
                f"judge_grid must be positive and at most the judge scale width "
                f"{j_scale[1] - j_scale[0]:g}, or None; got {judge_grid!r}."
            )
    gen = np.random.default_rng(rng)
    names = list(thetas)
    theta_vec = np.array([thetas[k] for k in names])

    def respond(
        u: np.ndarray, d: np.ndarray, eps: np.ndarray, jeps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        y01 = expit(a * (beta * u - d) + sigma * eps)
        label = np.clip(l_scale[0] + (l_scale[1] - l_scale[0]) * y01, *l_scale)
        score = _judge_score(y01, judge, j_noise * jeps, j_scale, step)
        return score, label

    # ---------------------------------------------------------------- logged block
    d = gen.standard_normal(n)
    u = gen.standard_normal(n)
    eps = gen.standard_normal(n)
    jeps = gen.standard_normal(n)
    lab_u = gen.random(n)
    miss_u = gen.random((len(names), n))

    score, label = respond(u, d, eps, jeps)
    width = max(5, len(str(n - 1)))
    # String columns are converted to pandas' string type once and then gathered with ``take``
    # (converting millions of Python strings per column dominated the run time).
    prompt_ids = pd.Series(np.array([f"p{j:0{width}d}" for j in range(n)], dtype=object)).array
    policy_names = pd.Series(np.array([LOGGING_POLICY, *names], dtype=object)).array
    lp_base = -(_LOGPROB_OFFSET + _LOGPROB_CURVATURE * u * u)
    cols: dict[str, Any] = {
        "prompt_id": prompt_ids,
        "policy": policy_names.take(np.zeros(n, dtype=np.intp)),
        "judge_score": score,
        "oracle_label": np.where(lab_u < p_lab, label, np.nan),
        "logprob_base": lp_base,
    }
    for k, name in enumerate(names):
        th = theta_vec[k]
        lp = lp_base + (th * u - 0.5 * th * th)
        cols[f"logprob[{name}]"] = np.where(miss_u[k] < p_miss, np.nan, lp)
    logged = pd.DataFrame(cols)

    # ---------------------------------------------------------------- fresh draws
    fresh_pols = [(LOGGING_POLICY, 0.0), *zip(names, theta_vec.tolist(), strict=True)]
    scores, labels = [], []
    d_col = d[:, None]
    for _, th in fresh_pols:
        fu = th + gen.standard_normal((n, m))
        feps = gen.standard_normal((n, m))
        fjeps = gen.standard_normal((n, m))
        flab_u = gen.random((n, m))
        s, y = respond(fu, d_col, feps, fjeps)
        scores.append(s.reshape(-1))
        labels.append(np.where(flab_u < p_fresh, y, np.nan).reshape(-1))
    n_pol = len(fresh_pols)
    fresh = pd.DataFrame(
        {
            "prompt_id": prompt_ids.take(np.tile(np.repeat(np.arange(n), m), n_pol)),
            "policy": policy_names.take(np.repeat(np.arange(n_pol), n * m)),
            "draw_idx": np.tile(np.arange(m, dtype=np.int64), n * n_pol),
            "judge_score": np.concatenate(scores).astype(float),
            "oracle_label": np.concatenate(labels).astype(float),
        }
    )

    # ---------------------------------------------------------------- truth
    truth = {
        name: offpolicy_true_value(
            th, quality_slope=a, feature_effect=beta, quality_noise=sigma, label_scale=l_scale
        )
        for name, th in fresh_pols
    }
    raw_ess = {name: math.exp(-th * th) for name, th in thetas.items()}
    description = _describe(
        thetas, truth, raw_ess, n=n, m=m, p_lab=p_lab, p_fresh=p_fresh, p_miss=p_miss,
        judge=judge, judge_noise=j_noise, a=a, beta=beta, sigma=sigma, j_scale=j_scale,
        step=step, l_scale=l_scale,
    )
    return OffPolicySim(
        logged=logged,
        fresh=fresh,
        truth=truth,
        raw_ess=raw_ess,
        thetas=dict(thetas),
        judge_scale=j_scale,
        label_scale=l_scale,
        description=description,
    )


# -------------------------------------------------------------------- helpers


def _judge_score(
    y01: np.ndarray,
    judge: str,
    noise: np.ndarray,
    scale: tuple[float, float],
    step: float | None,
) -> np.ndarray:
    """``lo + (hi - lo) clip(h(y01) + noise, 0, 1)``, rounded to ``step`` when given."""
    lo, hi = scale
    score = lo + (hi - lo) * np.clip(judge_link(y01, judge) + noise, 0.0, 1.0)
    if step is None:
        return score
    k_max = math.floor((hi - lo) / step + 1e-9)
    k = np.clip(np.rint((score - lo) / step), 0, k_max)
    return np.clip(np.round(lo + k * step, 12), lo, hi)


def _describe(
    thetas: dict[str, float],
    truth: dict[str, float],
    raw_ess: dict[str, float],
    *,
    n: int,
    m: int,
    p_lab: float,
    p_fresh: float,
    p_miss: float,
    judge: str,
    judge_noise: float,
    a: float,
    beta: float,
    sigma: float,
    j_scale: tuple[float, float],
    step: float | None,
    l_scale: tuple[float, float],
) -> str:
    tgt = ", ".join(
        f"{k} (theta {th:+.3g}, population raw-weight ESS {raw_ess[k]:.1%})"
        for k, th in thetas.items()
    )
    truths = ", ".join(f"{k} {v:.4f}" for k, v in truth.items())
    if judge == "miscalibrated":
        judge_txt = (
            "a miscalibrated judge that sees the true quality through a steep, harsh S-curve "
            f"(k={JUDGE_CURVE_STEEPNESS:g}, centre {JUDGE_CURVE_CENTER:g})"
        )
    else:
        judge_txt = "a calibrated judge whose score is the true quality plus noise"
    grid_txt = "continuous" if step is None else f"rounded to steps of {step:g}"
    miss_txt = (
        f" Each target's log-probability is missing on a random {p_miss:.0%} of logged rows."
        if p_miss > 0
        else ""
    )
    return (
        f"Synthetic off-policy evaluation: {n} prompts with difficulty d ~ N(0, 1), each answered "
        f"once by the logging policy 'base' (response feature u ~ N(0, 1)); targets are "
        f"exponential tilts u ~ N(theta, 1) with exact log-weight theta*u - theta^2/2: {tgt}. "
        f"True quality is sigmoid({a:g}*({beta:g}*u - d) + noise with sd {sigma:g}), reported on "
        f"the label scale {l_scale[0]:g}-{l_scale[1]:g}; the oracle label is revealed on a random "
        f"{p_lab:.0%} of logged rows (MCAR).{miss_txt} Every response is scored by {judge_txt}, "
        f"judge noise sd {judge_noise:g}, clipped to the judge scale {j_scale[0]:g}-"
        f"{j_scale[1]:g} and {grid_txt}. Fresh draws: {m} per prompt for base and every target, "
        f"labelled at rate {p_fresh:.0%}. Exact true values: {truths}."
    )


def _check_targets(targets: Any) -> dict[str, float]:
    if not isinstance(targets, Mapping):
        raise CJEInputError(
            f"targets must be a mapping of target name -> tilt theta, e.g. {{'new': 0.7}}; "
            f"got {type(targets).__name__}."
        )
    if not targets:
        raise CJEInputError("targets must name at least one target policy, e.g. {'new': 0.7}.")
    out: dict[str, float] = {}
    for name, theta in targets.items():
        if not isinstance(name, str) or not name:
            raise CJEInputError(f"targets names must be non-empty strings; got {name!r}.")
        if name == LOGGING_POLICY:
            raise CJEInputError(
                f"targets cannot contain {LOGGING_POLICY!r}: that is the logging policy's name."
            )
        if not _is_real(theta) or not math.isfinite(float(theta)):
            raise CJEInputError(
                f"targets[{name!r}] (theta) must be a finite real number; got {theta!r}."
            )
        out[name] = float(theta)
    return out


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_finite(name: str, value: object) -> float:
    if not _is_real(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise CJEInputError(f"{name} must be a finite real number; got {value!r}.")
    return float(value)  # type: ignore[arg-type]


def _check_nonneg(name: str, value: object) -> float:
    v = _check_finite(name, value)
    if v < 0.0:
        raise CJEInputError(f"{name} must be >= 0; got {value!r}.")
    return v


def _check_fraction(name: str, value: object) -> float:
    v = _check_finite(name, value)
    if not 0.0 <= v <= 1.0:
        raise CJEInputError(f"{name} must be a probability in [0, 1]; got {value!r}.")
    return v


def _check_int(name: str, value: object, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise CJEInputError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def _check_scale(name: str, scale: Any) -> tuple[float, float]:
    try:
        pair: tuple[Any, ...] = tuple(scale)
    except TypeError:
        raise CJEInputError(f"{name} must be a pair (lo, hi); got {scale!r}.") from None
    if len(pair) != 2 or not all(_is_real(v) and math.isfinite(float(v)) for v in pair):
        raise CJEInputError(f"{name} must be a pair (lo, hi) of finite numbers; got {scale!r}.")
    lo, hi = float(pair[0]), float(pair[1])
    if not lo < hi:
        raise CJEInputError(f"{name} must satisfy lo < hi; got {scale!r}.")
    return lo, hi
