"""Synthetic off-policy data with bounded or unbounded weight tails and a judge style the targets
prefer, with a known truth (the DGP of ``simulations/results/study_tails.md``).

One logging policy ``base`` answers every prompt once. A response has a quality ``a ∈ [0, 1]``
and a style flag; the judge gives styled responses a bonus the labels do not (``style_bonus``
points on its 1–10 scale), and the targets write styled and better responses more often than the
logging policy. The calibration learned on the logging policy, where styled responses are rare
(:data:`STYLE_SHARE`), therefore over-rates the targets: it does not transport, and the oracle
residual term has to carry the difference. Two tail kinds of the importance weights:

* ``tail="bounded"``: :data:`N_QUALITY` quality levels ``a_k = k/(N_QUALITY − 1)`` × style, 20
  discrete types; the logging policy writes type ``(k, s)`` with probability
  ``p0 ∝ exp(−c a_k)·(π0 if s else 1 − π0)`` (``c =`` :data:`LOGGING_DECAY`, ``π0 =``
  :data:`STYLE_SHARE`: good and styled responses are rare), target ``t`` with
  ``p ∝ p0 exp(θ_t (a_k + s))``. The weights ``p / p0`` take 20 values, bounded by the styled top
  type's; ``θ_t`` is solved so the population raw-weight ESS ``1 / Σ p²/p0`` hits the target's
  ESS (largest weight 9.9 at 50%, 31 at 15%, 43 at 10%, 101 at 3%).
* ``tail="unbounded"``: a continuous feature ``u ~ N(0, 1)`` under the logging policy and
  ``N(θ_t, 1)`` under target ``t``, quality ``a = Φ(u)``, styled with probability ``π0`` resp.
  ``π0 e^{2θ} / (π0 e^{2θ} + 1 − π0)``: log-normal weights (those of
  :func:`cje.synthetic.make_offpolicy_eval`) times a bounded style ratio, ``θ_t`` solved for the
  ESS.

Labels and judge (both kinds): prompt effect ``b_j ∈ {−0.1, 0, 0.1}`` (equally likely); the label
is ``Y ~ Beta(κ m, κ (1 − m))`` with mean ``m = 0.25 + 0.5 a + b_j`` (``κ = 10``); the judge
scores ``1 + 11 (Y + 0.05 ε) + style_bonus·s`` rounded to the integers and clipped to 1–10 (a
coarse grid with ties; it saturates at 10). Truth: ``V = 0.25 + 0.5 E_target[a]`` exactly
(``Σ p a`` for the bounded kind, ``Φ(θ/√2)`` for the unbounded one).

Oracle labels on an MCAR ``oracle_fraction`` of the logged rows; ``n_fresh_per_prompt`` fresh
draws of every policy per prompt (unlabelled), for the doubly robust estimators.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import ndtr

from cje.errors import CJEInputError
from cje.synthetic.offpolicy import LOGGING_POLICY

__all__ = ["LOGGING_DECAY", "N_QUALITY", "STYLE_SHARE", "TAIL_KINDS", "TailSim", "bounded_tilt",
           "make_tail_eval"]

#: Quality levels of the bounded-tail kind (each with and without the style: 20 types).
N_QUALITY = 10
#: ``c`` in the logging policy's type probabilities ``p0 ∝ exp(−c a)``.
LOGGING_DECAY = 3.0
#: Share of styled responses of the logging policy.
STYLE_SHARE = 0.1
TAIL_KINDS = ("bounded", "unbounded")
_KAPPA = 10.0
_JUDGE_NOISE = 0.05
_PROMPT_EFFECTS = np.array([-0.1, 0.0, 0.1])


@dataclass(frozen=True, slots=True, eq=False)
class TailSim:
    """Logged data, fresh draws and the truth of :func:`make_tail_eval`.

    Attributes
    ----------
    logged, fresh : pandas.DataFrame
        As in :class:`cje.synthetic.OffPolicySim` (judge scale 1–10, label scale 0–1).
    truth : dict[str, float]
        Exact value of ``base`` and of every target.
    raw_ess, max_weight : dict[str, float]
        Population raw-weight ESS fraction and largest possible weight (``inf`` when unbounded)
        per target.
    judge_scale, label_scale : tuple of float
        ``(1, 10)`` and ``(0, 1)``.

    Examples
    --------
    >>> sim = make_tail_eval(200, ess=(0.15,), rng=1)
    >>> sim.logged.columns.tolist()[-2:], sim.fresh.policy.unique().tolist()
    (['logprob_base', 'logprob[ess15]'], ['base', 'ess15'])
    """

    logged: pd.DataFrame
    fresh: pd.DataFrame
    truth: dict[str, float]
    raw_ess: dict[str, float]
    max_weight: dict[str, float]
    judge_scale: tuple[float, float] = (1.0, 10.0)
    label_scale: tuple[float, float] = (0.0, 1.0)


def _types() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quality ``a``, style flag and logging probability of each bounded-tail type."""
    a = np.repeat(np.linspace(0.0, 1.0, N_QUALITY), 2)
    style = np.tile([0.0, 1.0], N_QUALITY)
    p0 = np.exp(-LOGGING_DECAY * a) * np.where(style == 1, STYLE_SHARE, 1.0 - STYLE_SHARE)
    return a, style, p0 / p0.sum()


def _style_share(th: float) -> float:
    """Share of styled responses of the unbounded-tail target with tilt ``th``."""
    odds = STYLE_SHARE / (1.0 - STYLE_SHARE) * math.exp(2.0 * th)
    return odds / (1.0 + odds)


def _unbounded_ess(th: float) -> float:
    """Population raw-weight ESS of the unbounded-tail target with tilt ``th``."""
    q = _style_share(th)
    style = q * q / STYLE_SHARE + (1.0 - q) ** 2 / (1.0 - STYLE_SHARE)
    return math.exp(-th * th) / style


def bounded_tilt(ess: float) -> np.ndarray:
    """Type probabilities of the bounded-tail target whose population raw-weight ESS is ``ess``.

    Parameters
    ----------
    ess : float
        In (0, 1].

    Returns
    -------
    numpy.ndarray
        ``p`` over the 20 types (quality level × style).

    Examples
    --------
    >>> a, style, p0 = _types()
    >>> p = bounded_tilt(0.15)
    >>> round(1 / float(np.sum(p * p / p0)), 4), round(float((p / p0).max()), 1)
    (0.15, 31.4)
    """
    if not 0.0 < float(ess) <= 1.0:
        raise CJEInputError(f"ess must be in (0, 1]; got {ess!r}.")
    a, style, p0 = _types()
    z = a + style

    def tilt(th: float) -> np.ndarray:
        p = p0 * np.exp(th * (z - 2.0))
        return p / p.sum()

    if ess == 1.0:
        return p0.copy()
    th = brentq(lambda t: 1.0 / np.sum(tilt(t) ** 2 / p0) - ess, 0.0, 200.0, xtol=1e-12)
    return tilt(th)


def make_tail_eval(n_prompts: int, *, ess: Sequence[float] = (0.5, 0.25, 0.15, 0.10, 0.05, 0.03),
                   tail: str = "bounded", style_bonus: float = 0.9, oracle_fraction: float = 0.1,
                   n_fresh_per_prompt: int = 1,
                   rng: int | np.random.Generator | None = None) -> TailSim:
    """Simulate logged data and fresh draws with targets at the given raw-weight ESS.

    Parameters
    ----------
    n_prompts : int
        Logged rows (one per prompt), at least 2.
    ess : sequence of float
        Population raw-weight ESS fraction of each target, in (0, 1) (targets ``"ess50"``,
        ``"ess03"``, …).
    tail : {"bounded", "unbounded"}
        Discrete types with bounded weights, or log-normal weights of a Gaussian tilt.
    style_bonus : float
        Judge points (scale 1–10) added on styled responses; 0 turns the style off.
    oracle_fraction : float
        MCAR share of logged rows with an oracle label.
    n_fresh_per_prompt : int
        Fresh draws per prompt of every policy.
    rng : int, numpy.random.Generator or None
        Seed or generator.

    Returns
    -------
    TailSim

    Raises
    ------
    CJEInputError
        On a bad ``tail``, ``n_prompts`` or ESS.

    Examples
    --------
    >>> sim = make_tail_eval(400, ess=(0.5, 0.15), rng=0)
    >>> list(sim.truth), {k: round(v, 1) for k, v in sim.max_weight.items()}
    (['base', 'ess50', 'ess15'], {'ess50': 9.9, 'ess15': 31.4})
    >>> round(sim.truth["ess15"] - sim.truth["base"], 3)
    0.107
    >>> make_tail_eval(400, ess=(0.5,), tail="unbounded", rng=0).max_weight
    {'ess50': inf}
    """
    if tail not in TAIL_KINDS:
        raise CJEInputError(f"tail must be 'bounded' or 'unbounded'; got {tail!r}.")
    n = int(n_prompts)
    if n < 2:
        raise CJEInputError(f"n_prompts must be at least 2; got {n_prompts!r}.")
    if not all(0.0 < float(e) < 1.0 for e in ess):
        raise CJEInputError(f"every ess must be in (0, 1); got {list(ess)!r}.")
    gen = np.random.default_rng(rng)
    names = [f"ess{round(100 * e):02d}" for e in ess]
    a_types, s_types, p0 = _types()
    bounded = tail == "bounded"
    truth = {LOGGING_POLICY: 0.25 + 0.5 * (float(p0 @ a_types) if bounded else 0.5)}
    raw_ess, max_w = {}, {}
    laws: dict[str, np.ndarray | float] = {LOGGING_POLICY: p0 if bounded else 0.0}
    for name, e in zip(names, ess, strict=True):
        if bounded:
            p = bounded_tilt(e)
            laws[name] = p
            truth[name] = 0.25 + 0.5 * float(p @ a_types)
            max_w[name] = float((p / p0).max())
        else:
            th = brentq(lambda t, e=e: _unbounded_ess(t) - e, 0.0, 10.0, xtol=1e-12)
            laws[name] = th
            truth[name] = 0.25 + 0.5 * float(ndtr(th / math.sqrt(2.0)))
            max_w[name] = math.inf
        raw_ess[name] = float(e)

    def draw(law: np.ndarray | float, size: tuple[int, ...]) -> tuple[np.ndarray, ...]:
        """Quality, style and the log-probability of each response under every policy."""
        if bounded:
            k = gen.choice(a_types.size, size=size, p=law)
            lp = {nm: np.log(q)[k] - 30.0 for nm, q in laws.items()}
            return a_types[k], s_types[k], lp
        th = float(law)
        u = th + gen.standard_normal(size)
        style = (gen.random(size) < _style_share(th)).astype(float)
        lp = {}
        for nm, t in laws.items():
            q = _style_share(float(t))
            lp[nm] = (-0.5 * (u - float(t)) ** 2 - 40.0 - 5.0 * u * u + 0.5 * u * u
                      + np.log(np.where(style == 1, q, 1.0 - q)))
        return ndtr(u), style, lp

    def respond(a: np.ndarray, style: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = 0.25 + 0.5 * a + b
        y = gen.beta(_KAPPA * m, _KAPPA * (1.0 - m))
        raw = 1.0 + 11.0 * (y + _JUDGE_NOISE * gen.standard_normal(y.shape))
        return np.clip(np.rint(raw + style_bonus * style), 1.0, 10.0), y

    b = _PROMPT_EFFECTS[gen.integers(0, 3, size=n)]
    a, style, lp = draw(laws[LOGGING_POLICY], (n,))
    score, y = respond(a, style, b)
    prompt = np.array([f"p{j:05d}" for j in range(n)], dtype=object)
    cols = {"prompt_id": prompt, "policy": LOGGING_POLICY, "judge_score": score,
            "oracle_label": np.where(gen.random(n) < oracle_fraction, y, np.nan),
            "logprob_base": lp[LOGGING_POLICY]}
    cols.update({f"logprob[{nm}]": lp[nm] for nm in names})
    logged = pd.DataFrame(cols)
    m = int(n_fresh_per_prompt)
    frames = []
    for name, law in laws.items():
        fa, fs, _ = draw(law, (n, m))
        score_f, _ = respond(fa, fs, b[:, None])
        frames.append(pd.DataFrame({
            "prompt_id": np.repeat(prompt, m), "policy": name,
            "draw_idx": np.tile(np.arange(m), n), "judge_score": score_f.reshape(-1),
            "oracle_label": np.nan}))
    fresh = pd.concat(frames, ignore_index=True)
    return TailSim(logged=logged, fresh=fresh, truth=truth, raw_ess=raw_ess, max_weight=max_w)
