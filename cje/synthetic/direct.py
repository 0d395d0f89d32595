"""Synthetic evaluation data with a known truth (direct, on-policy setting).

This module implements the data-generating process (DGP) for the
*fresh-draws* data shape: every policy answers every prompt (possibly several times), a cheap
judge scores every response, and an expensive oracle label is observed on a random (MCAR)
subset of rows.  Because the DGP is fully specified, the true policy value
``V(pi_p) = E[Y]`` on the label scale is known exactly (computed by 1-D quadrature), which makes
the data suitable for coverage / bias studies of the estimators.

The generative model, with every knob explicit
----------------------------------------------
* prompts ``j = 1..n``: difficulty ``d_j ~ N(0, 1)``;
* every (prompt, policy ``p``, draw) gets an independent response with standardised log length
  ``z ~ N(length_mean_p, 1)`` and ``response_length = max(1, round(exp(5 + 0.5 z)))`` tokens;
* latent quality ``eta = a (mu_p - d_j) + eps`` with ``eps ~ N(0, sigma_eps^2)``
  (``a = quality_slope``, ``sigma_eps = quality_noise``); oracle ``Y01 = sigmoid(eta)`` and
  ``oracle_label = label_lo + (label_hi - label_lo) Y01``; length does *not* affect ``Y``;
* judge latent ``J = h(Y01) + judge_bonus_p + length_effect * z + judge_noise * N(0, 1)``,
  ``S = judge_lo + (judge_hi - judge_lo) * clip(J, 0, 1)``, rounded to ``judge_grid``;
  ``h`` is the identity for ``judge="calibrated"`` and a steep, asymmetric S-curve
  (:func:`judge_link`) for ``judge="miscalibrated"``;
* oracle mask: each row labelled independently with probability ``oracle_fraction`` (MCAR).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.special import expit

__all__ = [
    "JUDGE_CURVE_CENTER",
    "JUDGE_CURVE_STEEPNESS",
    "JUDGE_KINDS",
    "QUALITY_NOISE",
    "QUALITY_SLOPE",
    "PolicySpec",
    "SyntheticEval",
    "default_policies",
    "judge_link",
    "make_direct_eval",
    "true_value",
]

#: Slope ``a`` of latent quality in ``mu_p - d`` (prompt difficulty).
QUALITY_SLOPE: float = 1.0
#: Standard deviation ``sigma_eps`` of the response-level quality noise.
QUALITY_NOISE: float = 0.5
#: Steepness ``k`` of the miscalibrated judge's S-curve (see :func:`judge_link`).
JUDGE_CURVE_STEEPNESS: float = 10.0
#: Centre ``c`` of the miscalibrated judge's S-curve; ``c > 0.5`` makes the judge harsh.
JUDGE_CURVE_CENTER: float = 0.6
#: Allowed values of the ``judge`` argument.
JUDGE_KINDS: tuple[str, ...] = ("miscalibrated", "calibrated")

# Mean log-length and its scale per unit of z: length = exp(5 + 0.5 z) tokens (median ~148).
_LOG_LENGTH_CENTER = 5.0
_LOG_LENGTH_SCALE = 0.5


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """One policy of the synthetic DGP.

    Parameters
    ----------
    name : str
        Policy name (the ``policy`` column of the data). Must be a non-empty string.
    quality : float
        Quality shift ``mu_p`` in the latent quality ``eta = a (mu_p - d) + eps``.
    length_mean : float, default 0.0
        Mean of the standardised log length ``z`` of this policy's responses. Length does not
        change the oracle label; it moves the judge only through ``length_effect``.
    judge_bonus : float, default 0.0
        Extra judge latent (in units of the judge's [0, 1] latent scale) given to every response
        of this policy regardless of its quality: a policy that "fools the judge".
    family : str, default "other"
        Model family, kept for later self-preference studies.

    Examples
    --------
    >>> p = PolicySpec("verbose", quality=-0.2, length_mean=1.0, judge_bonus=0.25)
    >>> p.name, p.quality, p.family
    ('verbose', -0.2, 'other')
    """

    name: str
    quality: float
    length_mean: float = 0.0
    judge_bonus: float = 0.0
    family: str = "other"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"PolicySpec.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.family, str):
            raise ValueError(f"PolicySpec.family must be a string, got {self.family!r}")
        for field in ("quality", "length_mean", "judge_bonus"):
            value = getattr(self, field)
            if not _is_real(value):
                raise ValueError(f"PolicySpec.{field} must be a real number, got {value!r}")
            if not math.isfinite(float(value)):
                raise ValueError(f"PolicySpec.{field} must be finite, got {value!r}")


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticEval:
    """A synthetic evaluation data set together with its known truth.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format, one row per response, columns ``prompt_id`` (str, e.g. ``"p00012"``),
        ``policy`` (str), ``draw_idx`` (int), ``judge_score`` (float on ``judge_scale``),
        ``oracle_label`` (float on ``label_scale``, NaN where unlabelled) and
        ``response_length`` (int tokens, >= 1).
    truth : dict[str, float]
        Exact true value ``V(pi_p) = E[Y]`` per policy, on the label scale.
    judge_scale : tuple[float, float]
        ``(lo, hi)`` of the judge scores.
    label_scale : tuple[float, float]
        ``(lo, hi)`` of the oracle labels.
    description : str
        One plain-words paragraph describing what was planted.

    Notes
    -----
    Equality comparison is identity-based (``eq=False``) because data frames have no boolean
    equality; compare ``data`` with :func:`pandas.testing.assert_frame_equal` instead.

    Examples
    --------
    >>> ev = make_direct_eval(50, rng=0)
    >>> ev.data.shape
    (250, 6)
    >>> sorted(ev.truth) == sorted(ev.data["policy"].unique())
    True
    """

    data: pd.DataFrame
    truth: dict[str, float]
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    description: str


def default_policies() -> tuple[PolicySpec, ...]:
    """Return the five demo policies.

    * ``base`` (quality 0.0) and ``improved`` (+0.3): the honest comparison;
    * ``small`` (-0.4, family ``"small"``): a clearly weaker model;
    * ``verbose`` (-0.2, length_mean +1.0, judge_bonus +0.25): truly *worse* than ``base``,
      but the judge bonus makes its naive judge mean rank *above* ``improved``;
    * ``concise`` (+0.1, length_mean -0.8): slightly better than ``base`` with short answers.

    Returns
    -------
    tuple of PolicySpec
        The five policies, in the order above.

    Examples
    --------
    >>> [p.name for p in default_policies()]
    ['base', 'improved', 'small', 'verbose', 'concise']
    """
    return (
        PolicySpec("base", quality=0.0, family="main"),
        PolicySpec("improved", quality=0.3, family="main"),
        PolicySpec("small", quality=-0.4, family="small"),
        PolicySpec("verbose", quality=-0.2, length_mean=1.0, judge_bonus=0.25, family="main"),
        PolicySpec("concise", quality=0.1, length_mean=-0.8, family="main"),
    )


def judge_link(y01: np.ndarray | float, judge: str = "miscalibrated") -> np.ndarray:
    """Map the oracle quality ``Y01`` in [0, 1] to the judge's noiseless latent ``h(Y01)``.

    For ``judge="calibrated"`` this is the identity. For ``judge="miscalibrated"`` it is the
    rescaled logistic S-curve ``h(y) = (sigmoid(k (y - c)) - sigmoid(-k c)) /
    (sigmoid(k (1 - c)) - sigmoid(-k c))`` with ``k = JUDGE_CURVE_STEEPNESS`` (10) and
    ``c = JUDGE_CURVE_CENTER`` (0.6): monotone, ``h(0) = 0``, ``h(1) = 1``, flat at both ends
    and steep around ``c`` (a harsh judge that barely separates poor answers from each other).

    Parameters
    ----------
    y01 : array_like or float
        Oracle quality on [0, 1].
    judge : {"miscalibrated", "calibrated"}, default "miscalibrated"
        Which judge.

    Returns
    -------
    numpy.ndarray
        ``h(y01)`` with the same shape as ``y01``.

    Examples
    --------
    >>> judge_link([0.0, 1.0]).round(12).tolist()
    [0.0, 1.0]
    >>> float(judge_link(0.3, "calibrated"))
    0.3
    """
    _check_judge(judge)
    y = np.asarray(y01, dtype=float)
    if judge == "calibrated":
        return y.copy()
    k, c = JUDGE_CURVE_STEEPNESS, JUDGE_CURVE_CENTER
    lo, hi = expit(-k * c), expit(k * (1.0 - c))
    return (expit(k * (y - c)) - lo) / (hi - lo)


def true_value(
    quality: float,
    *,
    quality_slope: float = QUALITY_SLOPE,
    quality_noise: float = QUALITY_NOISE,
    label_scale: tuple[float, float] = (1.0, 5.0),
) -> float:
    """Exact true value of a policy with quality shift ``mu`` on the label scale.

    ``V = lo + (hi - lo) E[sigmoid(a (mu - d) + eps)]`` with ``d ~ N(0, 1)`` and
    ``eps ~ N(0, sigma^2)``. Since ``-a d + eps ~ N(0, a^2 + sigma^2)``, this is the 1-D
    integral ``E[sigmoid(a mu + s W)]``, ``W ~ N(0, 1)``, ``s = sqrt(a^2 + sigma^2)``, computed
    by adaptive quadrature (:func:`scipy.integrate.quad`) on ``|W| <= 40`` (the neglected normal
    tail mass is below 1e-300) with absolute tolerance 1e-13.

    Parameters
    ----------
    quality : float
        Quality shift ``mu_p``.
    quality_slope : float, default QUALITY_SLOPE (1.0)
        Slope ``a``.
    quality_noise : float, default QUALITY_NOISE (0.5)
        Response-level noise ``sigma_eps``.
    label_scale : tuple of float, default (1.0, 5.0)
        ``(lo, hi)`` of the label scale.

    Returns
    -------
    float
        ``V(pi)`` on the label scale.

    Examples
    --------
    >>> round(true_value(0.0), 12)
    3.0
    >>> true_value(0.3) > true_value(0.0) > true_value(-0.2)
    True
    """
    _check_finite("quality", quality)
    _check_nonneg("quality_slope", quality_slope)
    _check_nonneg("quality_noise", quality_noise)
    lo, hi = _check_scale("label_scale", label_scale)
    loc = float(quality_slope) * float(quality)
    s = math.hypot(float(quality_slope), float(quality_noise))
    if s == 0.0:
        mean01 = float(expit(loc))
    else:

        def integrand(w: float) -> float:
            return float(expit(loc + s * w)) * math.exp(-0.5 * w * w) / math.sqrt(2.0 * math.pi)

        # The sigmoid's transition sits at w = -loc / s; tell quad about it.
        kink = min(max(-loc / s, -39.0), 39.0)
        mean01, _ = integrate.quad(
            integrand, -40.0, 40.0, points=[kink], epsabs=1e-13, epsrel=1e-12, limit=500
        )
    return lo + (hi - lo) * float(mean01)


def make_direct_eval(
    n_prompts: int = 1000,
    policies: Sequence[PolicySpec] | None = None,
    *,
    draws_per_prompt: int = 1,
    oracle_fraction: float = 0.1,
    judge: str = "miscalibrated",
    length_effect: float = 0.0,
    judge_noise: float = 0.3,
    judge_scale: tuple[float, float] = (0.0, 10.0),
    judge_grid: float | None = 1.0,
    label_scale: tuple[float, float] = (1.0, 5.0),
    quality_slope: float = QUALITY_SLOPE,
    quality_noise: float = QUALITY_NOISE,
    rng: int | np.random.Generator | None = None,
) -> SyntheticEval:
    """Simulate a direct (on-policy, fresh-draws) evaluation with a known truth.

    Model (see the module docstring): prompt difficulty ``d_j ~ N(0, 1)``; for every
    (prompt, policy, draw) a standardised log length ``z ~ N(length_mean_p, 1)``
    (``response_length = max(1, round(exp(5 + 0.5 z)))``), latent quality
    ``eta = a (mu_p - d_j) + eps``, ``eps ~ N(0, sigma_eps^2)``, oracle ``Y01 = sigmoid(eta)``
    mapped affinely to ``label_scale``; judge latent
    ``J = h(Y01) + judge_bonus_p + length_effect * z + judge_noise * N(0, 1)`` clipped to
    [0, 1], mapped affinely to ``judge_scale`` and rounded to ``judge_grid``; oracle labels
    kept on an MCAR Bernoulli(``oracle_fraction``) subset of rows.

    Parameters
    ----------
    n_prompts : int, default 1000
        Number of prompts (>= 1).
    policies : sequence of PolicySpec, optional
        Policies with unique names; ``None`` uses :func:`default_policies`.
    draws_per_prompt : int, default 1
        Independent responses per (prompt, policy) (>= 1), indexed by ``draw_idx``.
    oracle_fraction : float, default 0.1
        Probability in (0, 1] that a row's oracle label is observed (independently per row).
    judge : {"miscalibrated", "calibrated"}, default "miscalibrated"
        ``h`` of the judge, see :func:`judge_link`. "calibrated": ``h(y) = y``, so the judge is
        a noisy linear function of ``Y`` up to clipping at the scale ends and rounding.
    length_effect : float, default 0.0
        ``beta_L``: direct effect of ``z`` on the judge latent (the oracle ignores length).
    judge_noise : float, default 0.3
        Standard deviation of the judge's noise, in units of its [0, 1] latent (>= 0).
    judge_scale : tuple of float, default (0.0, 10.0)
        ``(lo, hi)`` of the judge scores, ``lo < hi``.
    judge_grid : float or None, default 1.0
        Judge scores are ``lo + k * judge_grid`` for integers ``k`` (ties); ``None`` keeps
        them continuous. Must be positive and at most ``hi - lo``.
    label_scale : tuple of float, default (1.0, 5.0)
        ``(lo, hi)`` of the oracle labels, ``lo < hi``.
    quality_slope : float, default QUALITY_SLOPE (1.0)
        ``a``, slope of the latent quality in ``mu_p - d`` (>= 0).
    quality_noise : float, default QUALITY_NOISE (0.5)
        ``sigma_eps``, response-level quality noise (>= 0).
    rng : int, numpy.random.Generator or None
        Seed or generator, passed to :func:`numpy.random.default_rng`. The same integer seed
        gives an identical data frame.

    Returns
    -------
    SyntheticEval
        Data in long format, exact truths (label scale), scales and a description.

    Raises
    ------
    ValueError
        On invalid arguments (non-positive counts, ``oracle_fraction`` outside (0, 1],
        duplicate policy names, unknown ``judge``, bad scales or grid, ...).

    Examples
    --------
    >>> ev = make_direct_eval(200, rng=1)
    >>> list(ev.data.columns)
    ['prompt_id', 'policy', 'draw_idx', 'judge_score', 'oracle_label', 'response_length']
    >>> {k: round(v, 3) for k, v in ev.truth.items()}["base"]
    3.0
    >>> bool(ev.data["judge_score"].between(*ev.judge_scale).all())
    True
    """
    # ---------------------------------------------------------------- validation
    n_prompts = _check_count("n_prompts", n_prompts)
    draws_per_prompt = _check_count("draws_per_prompt", draws_per_prompt)
    if policies is None:
        specs = default_policies()
    else:
        if isinstance(policies, (str, bytes, PolicySpec)):
            raise ValueError("policies must be a sequence of PolicySpec")
        specs = tuple(policies)
        if not specs:
            raise ValueError("policies must contain at least one PolicySpec")
        for spec in specs:
            if not isinstance(spec, PolicySpec):
                raise ValueError(f"policies must contain PolicySpec objects, got {spec!r}")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"policy names must be unique; duplicated: {dupes}")
    _check_finite("oracle_fraction", oracle_fraction)
    if not 0.0 < float(oracle_fraction) <= 1.0:
        raise ValueError(f"oracle_fraction must be in (0, 1], got {oracle_fraction!r}")
    _check_judge(judge)
    _check_finite("length_effect", length_effect)
    _check_nonneg("judge_noise", judge_noise)
    _check_nonneg("quality_slope", quality_slope)
    _check_nonneg("quality_noise", quality_noise)
    j_lo, j_hi = _check_scale("judge_scale", judge_scale)
    l_lo, l_hi = _check_scale("label_scale", label_scale)
    if judge_grid is not None:
        _check_finite("judge_grid", judge_grid)
        if not 0.0 < float(judge_grid) <= j_hi - j_lo:
            raise ValueError(
                f"judge_grid must be positive and at most the judge scale width {j_hi - j_lo}, "
                f"got {judge_grid!r}"
            )
    gen = np.random.default_rng(rng)

    # ---------------------------------------------------------------- simulation
    n_pol = len(specs)
    shape = (n_pol, n_prompts, draws_per_prompt)
    mu = np.array([float(s.quality) for s in specs])[:, None, None]
    len_mean = np.array([float(s.length_mean) for s in specs])[:, None, None]
    bonus = np.array([float(s.judge_bonus) for s in specs])[:, None, None]

    # Fixed draw order (part of the reproducibility contract).
    difficulty = gen.standard_normal(n_prompts)[None, :, None]
    z = len_mean + gen.standard_normal(shape)
    eps = float(quality_noise) * gen.standard_normal(shape)
    judge_eps = float(judge_noise) * gen.standard_normal(shape)
    labelled = gen.random(shape) < float(oracle_fraction)

    eta = float(quality_slope) * (mu - difficulty) + eps
    y01 = expit(eta)
    oracle = l_lo + (l_hi - l_lo) * y01
    oracle = np.clip(oracle, l_lo, l_hi)  # guard against rounding at the ends
    length = np.maximum(1, np.rint(np.exp(_LOG_LENGTH_CENTER + _LOG_LENGTH_SCALE * z)))

    latent = judge_link(y01, judge) + bonus + float(length_effect) * z + judge_eps
    score = j_lo + (j_hi - j_lo) * np.clip(latent, 0.0, 1.0)
    if judge_grid is not None:
        step = float(judge_grid)
        k_max = math.floor((j_hi - j_lo) / step + 1e-9)
        k = np.clip(np.rint((score - j_lo) / step), 0, k_max)
        score = np.round(j_lo + k * step, 12)
        score = np.clip(score, j_lo, j_hi)

    # ---------------------------------------------------------------- assemble
    width = max(5, len(str(n_prompts - 1)))
    prompt_ids = np.array([f"p{j:0{width}d}" for j in range(n_prompts)], dtype=object)
    pol_idx, prm_idx, drw_idx = np.indices(shape).reshape(3, -1)
    data = pd.DataFrame(
        {
            "prompt_id": prompt_ids[prm_idx],
            "policy": np.array(names, dtype=object)[pol_idx],
            "draw_idx": drw_idx.astype(np.int64),
            "judge_score": score.reshape(-1).astype(float),
            "oracle_label": np.where(labelled, oracle, np.nan).reshape(-1),
            "response_length": length.reshape(-1).astype(np.int64),
        }
    )

    truth = {
        s.name: true_value(
            s.quality,
            quality_slope=quality_slope,
            quality_noise=quality_noise,
            label_scale=(l_lo, l_hi),
        )
        for s in specs
    }
    description = _describe(
        specs,
        truth,
        n_prompts=n_prompts,
        draws_per_prompt=draws_per_prompt,
        oracle_fraction=float(oracle_fraction),
        judge=judge,
        length_effect=float(length_effect),
        judge_noise=float(judge_noise),
        judge_scale=(j_lo, j_hi),
        judge_grid=judge_grid,
        label_scale=(l_lo, l_hi),
        quality_slope=float(quality_slope),
        quality_noise=float(quality_noise),
    )
    return SyntheticEval(
        data=data,
        truth=truth,
        judge_scale=(j_lo, j_hi),
        label_scale=(l_lo, l_hi),
        description=description,
    )


# -------------------------------------------------------------------- helpers


def _describe(
    specs: Sequence[PolicySpec],
    truth: dict[str, float],
    *,
    n_prompts: int,
    draws_per_prompt: int,
    oracle_fraction: float,
    judge: str,
    length_effect: float,
    judge_noise: float,
    judge_scale: tuple[float, float],
    judge_grid: float | None,
    label_scale: tuple[float, float],
    quality_slope: float,
    quality_noise: float,
) -> str:
    n_rows = n_prompts * draws_per_prompt * len(specs)
    pols = ", ".join(f"{s.name} (quality {s.quality:+g})" for s in specs)
    truths = ", ".join(f"{name} {value:.3f}" for name, value in truth.items())
    if judge == "miscalibrated":
        judge_txt = (
            "a miscalibrated judge that sees the true quality through a steep, harsh S-curve "
            f"(k={JUDGE_CURVE_STEEPNESS:g}, centre {JUDGE_CURVE_CENTER:g}), so its average is "
            "not an affine function of the true average"
        )
    else:
        judge_txt = "a calibrated judge whose score is the true quality plus noise"
    grid_txt = "continuous" if judge_grid is None else f"rounded to steps of {judge_grid:g}"
    planted = []
    for s in specs:
        if s.judge_bonus != 0.0:
            planted.append(
                f"'{s.name}' gets a judge bonus of {s.judge_bonus:+g} (judge-latent units, "
                "independent of quality, so the judge over-rates it)"
            )
    if length_effect != 0.0:
        planted.append(
            f"the judge rewards length directly ({length_effect:+g} per standard deviation of "
            "log length) while the oracle ignores length"
        )
    long_short = [f"'{s.name}' {s.length_mean:+g}" for s in specs if s.length_mean != 0.0]
    length_txt = (
        f" Mean standardised log length differs by policy ({', '.join(long_short)})."
        if long_short
        else ""
    )
    planted_txt = (
        ("Planted biases: " + "; ".join(planted) + ".")
        if planted
        else ("No judge bias was planted beyond the judge's link function.")
    )
    return (
        f"Synthetic direct (on-policy) evaluation: {n_prompts} prompts with difficulty "
        f"d ~ N(0, 1), {len(specs)} policies x {draws_per_prompt} draw(s) = {n_rows} responses; "
        f"policies: {pols}. True quality is sigmoid({quality_slope:g}*(quality - d) + noise "
        f"with sd {quality_noise:g}), reported on the label scale {label_scale[0]:g}-"
        f"{label_scale[1]:g}, and the oracle label is revealed on a random {oracle_fraction:.0%} "
        f"of rows (MCAR). Every response is scored by {judge_txt}, with judge noise sd "
        f"{judge_noise:g}, clipped to the judge scale {judge_scale[0]:g}-{judge_scale[1]:g} and "
        f"{grid_txt}.{length_txt} {planted_txt} Exact true values: {truths}."
    )


def _check_judge(judge: str) -> None:
    if judge not in JUDGE_KINDS:
        raise ValueError(f"judge must be one of {JUDGE_KINDS}, got {judge!r}")


def _is_real(value: object) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def _check_finite(name: str, value: object) -> None:
    if not _is_real(value) or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite real number, got {value!r}")


def _check_nonneg(name: str, value: object) -> None:
    _check_finite(name, value)
    if float(value) < 0.0:  # type: ignore[arg-type]
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_scale(name: str, scale: Any) -> tuple[float, float]:
    try:
        pair: tuple[Any, ...] = tuple(scale)
    except TypeError:
        raise ValueError(f"{name} must be a pair (lo, hi), got {scale!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{name} must be a pair (lo, hi), got {scale!r}")
    lo, hi = pair
    if not (_is_real(lo) and _is_real(hi)) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must contain two finite numbers, got {scale!r}")
    if not float(lo) < float(hi):
        raise ValueError(f"{name} must satisfy lo < hi, got {scale!r}")
    return float(lo), float(hi)
