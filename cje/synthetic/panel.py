"""A crossed judge panel with planted verbosity and self-preference (docs: Simulation results).

Every generator (a policy with a model ``family``) answers every prompt once; every judge (with its
own ``family``) scores every response. The judge score is **linear** in the true Likert label, so
the planted biases are exactly the regression coefficients that :mod:`cje.bias.verbosity` and
:mod:`cje.bias.self_preference` estimate.

The generative model, with every knob explicit
----------------------------------------------
* prompts ``i``: difficulty ``d_i ~ N(0, 1)``;
* response ``k = (i, g)`` of generator ``g``: latent quality
  ``eta_k = a (mu_g + shift_g - d_i) + eps_k``, ``eps_k ~ N(0, sigma_eps^2)`` (``a``,
  ``sigma_eps`` as in :mod:`cje.synthetic.direct`); ``shift_g = confounding_shift`` when
  ``confounded=True`` and ``g``'s family is one of the judges' families, else 0;
* true label ``T_k in {1..L}``: ``eta_k`` cut at the ``1/L, 2/L, …`` quantiles of its marginal
  law at ``mu = 0``, so ``E[T_k]`` is an exact sum of normal CDFs (``truth["value"]``);
* ratings: ``Y_r = T_k + e_r`` with ``e_r = ±1`` each with probability ``label_noise / 2``
  when ``1 < T_k < L`` and ``e_r = 0`` at the scale ends, so ``E[Y_r | T_k] = T_k`` and two
  ratings are independent given ``T_k`` (what 2SLS needs); ``oracle_label = Y_1`` on an MCAR
  ``oracle_fraction`` of responses, ``oracle_label_2 = Y_2`` on the same responses;
* length: ``log len_k = 5 + 0.5 (m_g + N(0, 1))``, ``response_length = max(1, round(exp(·)))``
  tokens, and ``z`` = ``log(response_length)`` standardised over all responses (mean 0, SD 1 with
  ``ddof=0``): exactly the ``z`` the verbosity diagnostic recomputes from ``response_length``;
* judge ``j`` on response ``k``:
  ``S_jk = a_j + b T_k + length_effect z_k + self_preference 1[fam_j = fam_g] + bonus_g
  + judge_noise N(0, 1)``, continuous and unclipped (``b = JUDGE_SLOPE``, ``a_j`` the judge's
  ``offset``, ``bonus_g`` the generator's ``judge_bonus``, in judge points).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import ndtr, ndtri

from cje.synthetic.direct import QUALITY_NOISE, QUALITY_SLOPE, PolicySpec

__all__ = [
    "CONFOUNDING_SHIFT",
    "JUDGE_SLOPE",
    "JudgeSpec",
    "SyntheticPanel",
    "default_generators",
    "default_judges",
    "make_panel_eval",
]

#: Slope ``b`` of every judge's score in the true label (judge points per label point).
JUDGE_SLOPE: float = 1.0
#: Latent-quality shift of the judges' own families under ``confounded=True``.
CONFOUNDING_SHIFT: float = 1.0

_LOG_LENGTH_CENTER = 5.0
_LOG_LENGTH_SCALE = 0.5


@dataclass(frozen=True, slots=True)
class JudgeSpec:
    """One judge of the panel.

    Parameters
    ----------
    name : str
        Judge name (the ``judge`` column).
    family : str
        Model family (the ``judge_family`` column); the judge's own-family responses are those
        whose generator has this family.
    offset : float, default 0.0
        Additive level ``a_j`` of this judge's scores (judge points): lenient or harsh judges.

    Examples
    --------
    >>> JudgeSpec("alpha-judge", "alpha", offset=0.2).offset
    0.2
    """

    name: str
    family: str
    offset: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"JudgeSpec.name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(f"JudgeSpec.family must be a non-empty string, got {self.family!r}")
        _check_finite("JudgeSpec.offset", self.offset)


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticPanel:
    """A synthetic crossed panel together with its known truth.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per (prompt, generator, judge): ``prompt_id, policy, policy_family, judge,
        judge_family, judge_score, oracle_label`` (NaN where unlabelled), ``response_length``
        (int tokens), ``z`` (standardised log length) and, with ``two_labels=True``,
        ``oracle_label_2``.
    truth : dict
        ``length_effect`` and ``self_preference`` (the exact estimands, judge points per SD of
        log length / judge points), ``judge_slope``, ``judge_offset`` (per judge),
        ``label_noise``, ``confounding_shift`` (0 unless confounded) and ``value`` (exact
        ``E[T]`` per generator on the label scale).
    description : str
        One paragraph saying what was planted.

    Examples
    --------
    >>> panel = make_panel_eval(20, rng=0)
    >>> panel.data.shape
    (240, 9)
    """

    data: pd.DataFrame
    truth: dict[str, Any]
    description: str


def default_generators() -> tuple[PolicySpec, ...]:
    """Four generators from three families; longer generators are somewhat better.

    Returns
    -------
    tuple of PolicySpec
        ``alpha-large`` (quality +0.4, length +0.5), ``alpha-small`` (−0.3, −0.4),
        ``beta-chat`` (+0.2, +0.3) and ``gamma-open`` (−0.1, −0.4).

    Examples
    --------
    >>> [(g.name, g.family) for g in default_generators()][:2]
    [('alpha-large', 'alpha'), ('alpha-small', 'alpha')]
    """
    return (
        PolicySpec("alpha-large", quality=0.4, length_mean=0.5, family="alpha"),
        PolicySpec("alpha-small", quality=-0.3, length_mean=-0.4, family="alpha"),
        PolicySpec("beta-chat", quality=0.2, length_mean=0.3, family="beta"),
        PolicySpec("gamma-open", quality=-0.1, length_mean=-0.4, family="gamma"),
    )


def default_judges() -> tuple[JudgeSpec, ...]:
    """Three judges: two from generator families (alpha, beta) and one outsider (delta).

    Returns
    -------
    tuple of JudgeSpec

    Examples
    --------
    >>> [j.family for j in default_judges()]
    ['alpha', 'beta', 'delta']
    """
    return (
        JudgeSpec("alpha-judge", "alpha", offset=0.0),
        JudgeSpec("beta-judge", "beta", offset=0.3),
        JudgeSpec("delta-judge", "delta", offset=-0.3),
    )


def make_panel_eval(
    n_prompts: int = 400,
    generators: Sequence[PolicySpec] | None = None,
    judges: Sequence[JudgeSpec] | None = None,
    *,
    label_levels: int = 5,
    oracle_fraction: float = 1.0,
    length_effect: float = 0.0,
    self_preference: float = 0.0,
    confounded: bool = False,
    two_labels: bool = False,
    label_noise: float = 0.0,
    judge_noise: float = 0.5,
    rng: int | np.random.Generator | None = None,
) -> SyntheticPanel:
    """Simulate a crossed generator × judge panel with planted judge biases and exact truth.

    See the module docstring for the model. The judge score is continuous and linear in the true
    label ``T``, so ``truth["length_effect"]`` is exactly the coefficient of ``z`` in
    ``S ~ C(T) + z + C(prompt)`` for a judge without self-preference, and
    ``truth["self_preference"]`` the coefficient of the own-family indicator.

    Parameters
    ----------
    n_prompts : int, default 400
        Number of prompts (>= 1); each generator answers each once.
    generators : sequence of PolicySpec, optional
        Generators with unique names (``quality``, ``length_mean``, ``judge_bonus`` in judge
        points, ``family``); ``None`` uses :func:`default_generators`.
    judges : sequence of JudgeSpec, optional
        Judges with unique names; ``None`` uses :func:`default_judges`.
    label_levels : int, default 5
        ``L``: labels take the values ``1..L`` (>= 2).
    oracle_fraction : float, default 1.0
        Probability in (0, 1] that a response is labelled (MCAR, shared by all its judge rows).
    length_effect : float, default 0.0
        Judge points per SD of log length (the oracle ignores length).
    self_preference : float, default 0.0
        Judge points added when the judge's family equals the generator's family.
    confounded : bool, default False
        Shift the latent quality of generators in the judges' families by
        ``CONFOUNDING_SHIFT``: their responses are genuinely better, so the naive
        own-vs-other gap is large even at ``self_preference = 0``.
    two_labels : bool, default False
        Add ``oracle_label_2``, an independent second rating of each labelled response.
    label_noise : float, default 0.0
        Probability in [0, 1] that a rating is one step off the true label (see the module
        docstring); 0 makes ``oracle_label`` the true label.
    judge_noise : float, default 0.5
        SD of the judges' noise (judge points, >= 0).
    rng : int, numpy.random.Generator or None
        Seed or generator (:func:`numpy.random.default_rng`); the same seed gives the same frame.

    Returns
    -------
    SyntheticPanel

    Raises
    ------
    ValueError
        On invalid arguments (duplicate names, fractions outside their range, …).

    Examples
    --------
    >>> panel = make_panel_eval(100, length_effect=0.2, self_preference=0.3, rng=0)
    >>> panel.truth["length_effect"], panel.truth["self_preference"]
    (0.2, 0.3)
    >>> bool(panel.data.groupby(["prompt_id", "policy"]).size().eq(3).all())  # crossed
    True
    """
    # ---------------------------------------------------------------- validation
    n_prompts = _check_count("n_prompts", n_prompts)
    gens = _check_specs("generators", default_generators() if generators is None else generators,
                        PolicySpec)
    jdgs = _check_specs("judges", default_judges() if judges is None else judges, JudgeSpec)
    label_levels = _check_count("label_levels", label_levels)
    if label_levels < 2:
        raise ValueError(f"label_levels must be at least 2, got {label_levels}")
    _check_finite("oracle_fraction", oracle_fraction)
    if not 0.0 < float(oracle_fraction) <= 1.0:
        raise ValueError(f"oracle_fraction must be in (0, 1], got {oracle_fraction!r}")
    _check_finite("length_effect", length_effect)
    _check_finite("self_preference", self_preference)
    _check_finite("label_noise", label_noise)
    if not 0.0 <= float(label_noise) <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise!r}")
    if float(label_noise) > 0 and label_levels < 3:
        raise ValueError("label_noise > 0 needs label_levels >= 3 (noise is one step, mean zero)")
    _check_finite("judge_noise", judge_noise)
    if float(judge_noise) < 0:
        raise ValueError(f"judge_noise must be >= 0, got {judge_noise!r}")
    gen = np.random.default_rng(rng)

    # ---------------------------------------------------------------- simulation
    G, J, P = len(gens), len(jdgs), n_prompts
    judge_families = {j.family for j in jdgs}
    shift = np.array([CONFOUNDING_SHIFT if confounded and g.family in judge_families else 0.0
                      for g in gens])
    mu = np.array([float(g.quality) for g in gens]) + shift
    len_mean = np.array([float(g.length_mean) for g in gens])
    bonus = np.array([float(g.judge_bonus) for g in gens])
    offset = np.array([float(j.offset) for j in jdgs])
    is_self = np.array([[j.family == g.family for j in jdgs] for g in gens])  # (G, J)

    # Fixed draw order (part of the reproducibility contract): every draw happens whatever the
    # options, so switching an option changes only what it is about.
    difficulty = gen.standard_normal(P)
    log_len_noise = gen.standard_normal((G, P))
    eps = QUALITY_NOISE * gen.standard_normal((G, P))
    judge_eps = float(judge_noise) * gen.standard_normal((G, P, J))
    labelled = gen.random((G, P)) < float(oracle_fraction)
    u1, u2 = gen.random((G, P)), gen.random((G, P))

    eta = QUALITY_SLOPE * (mu[:, None] - difficulty[None, :]) + eps
    cuts = _cutpoints(label_levels)
    true_label = 1.0 + (eta[..., None] > cuts).sum(axis=-1)
    rating1 = true_label + _step(u1, true_label, float(label_noise), label_levels)
    rating2 = true_label + _step(u2, true_label, float(label_noise), label_levels)

    log_len = _LOG_LENGTH_CENTER + _LOG_LENGTH_SCALE * (len_mean[:, None] + log_len_noise)
    length = np.maximum(1.0, np.rint(np.exp(log_len)))
    ll = np.log(length)
    z = (ll - ll.mean()) / ll.std()

    score = (
        offset[None, None, :]
        + JUDGE_SLOPE * true_label[..., None]
        + float(length_effect) * z[..., None]
        + float(self_preference) * is_self[:, None, :]
        + bonus[:, None, None]
        + judge_eps
    )

    # ---------------------------------------------------------------- assemble
    width = max(5, len(str(P - 1)))
    prompt_ids = np.array([f"p{i:0{width}d}" for i in range(P)], dtype=object)
    g_idx, p_idx, j_idx = np.indices((G, P, J)).reshape(3, -1)
    cols: dict[str, Any] = {
        "prompt_id": prompt_ids[p_idx],
        "policy": np.array([g.name for g in gens], dtype=object)[g_idx],
        "policy_family": np.array([g.family for g in gens], dtype=object)[g_idx],
        "judge": np.array([j.name for j in jdgs], dtype=object)[j_idx],
        "judge_family": np.array([j.family for j in jdgs], dtype=object)[j_idx],
        "judge_score": score.reshape(-1),
        "oracle_label": np.where(labelled, rating1, np.nan)[g_idx, p_idx],
        "response_length": length.astype(np.int64)[g_idx, p_idx],
        "z": z[g_idx, p_idx],
    }
    if two_labels:
        cols["oracle_label_2"] = np.where(labelled, rating2, np.nan)[g_idx, p_idx]
    data = pd.DataFrame(cols)

    sd_eta = math.hypot(QUALITY_SLOPE, QUALITY_NOISE)
    value = {g.name: float(1.0 + ndtr((QUALITY_SLOPE * m - cuts) / sd_eta).sum())
             for g, m in zip(gens, mu, strict=True)}
    truth: dict[str, Any] = {
        "length_effect": float(length_effect),
        "self_preference": float(self_preference),
        "judge_slope": JUDGE_SLOPE,
        "judge_offset": {j.name: float(j.offset) for j in jdgs},
        "label_noise": float(label_noise),
        "confounding_shift": CONFOUNDING_SHIFT if confounded else 0.0,
        "value": value,
    }
    return SyntheticPanel(data=data, truth=truth,
                          description=_describe(gens, jdgs, P, label_levels, float(oracle_fraction),
                                                truth, two_labels, float(judge_noise)))


# -------------------------------------------------------------------- helpers


def _cutpoints(levels: int) -> np.ndarray:
    """Cuts of the latent quality at the k/L quantiles of its marginal law at quality 0."""
    sd_eta = math.hypot(QUALITY_SLOPE, QUALITY_NOISE)
    return sd_eta * ndtri(np.arange(1, levels) / levels)


def _step(u: np.ndarray, t: np.ndarray, noise: float, levels: int) -> np.ndarray:
    """Mean-zero one-step rating error: −1 / +1 each with probability noise/2 inside the scale."""
    inside = (t > 1) & (t < levels)
    return np.where(inside & (u < noise / 2), -1.0, 0.0) + np.where(
        inside & (u >= noise / 2) & (u < noise), 1.0, 0.0
    )


def _describe(gens: Sequence[PolicySpec], jdgs: Sequence[JudgeSpec], n_prompts: int, levels: int,
              frac: float, truth: dict[str, Any], two_labels: bool, judge_noise: float) -> str:
    gtxt = ", ".join(f"{g.name} ({g.family}, quality {g.quality:+g}, length {g.length_mean:+g})"
                     for g in gens)
    jtxt = ", ".join(f"{j.name} ({j.family}, offset {j.offset:+g})" for j in jdgs)
    planted = []
    if truth["length_effect"]:
        planted.append(f"every judge adds {truth['length_effect']:+g} points per SD of log length")
    if truth["self_preference"]:
        planted.append(f"judges add {truth['self_preference']:+g} points to their own family's "
                       "responses")
    if truth["confounding_shift"]:
        planted.append(f"generators of the judges' families are genuinely better (latent quality "
                       f"{truth['confounding_shift']:+g}), so a naive own-vs-other gap is not "
                       "self-preference")
    bonus = [f"{g.name} {g.judge_bonus:+g}" for g in gens if g.judge_bonus]
    if bonus:
        planted.append(f"generator bonuses in every judge's score ({', '.join(bonus)})")
    labels = (f"labels 1-{levels} on a random {frac:.0%} of responses"
              + (f", one-step rater disagreement with probability {truth['label_noise']:g}"
                 if truth["label_noise"] else "")
              + (", two independent ratings each" if two_labels else ""))
    return (
        f"Synthetic crossed panel: {n_prompts} prompts x {len(gens)} generators "
        f"[{gtxt}] scored by {len(jdgs)} judges [{jtxt}]; {labels}. Judge score = offset + "
        f"{truth['judge_slope']:g} x true label + biases + noise (sd {judge_noise:g}), continuous. "
        + ("Planted: " + "; ".join(planted) + "." if planted else "No bias planted.")
    )


def _check_specs(name: str, specs: Any, kind: type) -> tuple[Any, ...]:
    if isinstance(specs, (str, bytes, kind)):
        raise ValueError(f"{name} must be a sequence of {kind.__name__}")
    out = tuple(specs)
    if not out:
        raise ValueError(f"{name} must contain at least one {kind.__name__}")
    for s in out:
        if not isinstance(s, kind):
            raise ValueError(f"{name} must contain {kind.__name__} objects, got {s!r}")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ValueError(f"{name} names must be unique; duplicated: "
                         f"{sorted({n for n in names if names.count(n) > 1})}")
    return out


def _check_finite(name: str, value: object) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))
    if not ok or not math.isfinite(float(value)):  # type: ignore[arg-type]
        raise ValueError(f"{name} must be a finite real number, got {value!r}")


def _check_count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
