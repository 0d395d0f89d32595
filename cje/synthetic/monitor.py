"""Synthetic production traffic over time windows with a known truth (for :func:`cje.monitor`).

Every window (one day by default) holds fresh draws of each policy on new prompts, scored by one
judge, with oracle labels on a random (MCAR) subset of a fixed size. The model is written
judge-first, so that "the judge→label map" is a fixed object that can be kept or changed on its own:

* each response has a judge signal ``U = sigmoid(mu_p - d + eps)`` in (0, 1) (prompt difficulty
  ``d ~ N(0, 1)``, ``eps ~ N(0, 0.5^2)``, policy quality ``mu_p``);
* its oracle label is ``Y = lo + (hi - lo) clip(U ** LINK_POWER + label_noise * N(0, 1), 0, 1)``:
  the distribution of the label given ``U`` never changes (a lenient judge: ``U ** 1.5 < U``);
* the judge reports ``S = judge_lo + (judge_hi - judge_lo) clip(U', 0, 1)`` rounded to
  ``judge_grid``, with ``U' = U`` before the change.

From the window ``change_at`` on, one of three things changes (``kind``):

* ``"shift"``: the judge update adds ``judge_shift`` judge points to every score
  (``U' = U + judge_shift / (judge_hi - judge_lo)``): the judge→label map moves, the labels do not;
* ``"slope"``: the judge becomes proportionally more lenient, ``U' = judge_slope * U`` (pivot at the
  bottom of the scale): the map moves, the labels do not;
* ``"distribution"``: the traffic changes — every policy's quality moves by ``quality_shift`` — so
  the scores AND the labels move while the label given the score stays the same (no drift; up to
  the rounding of ``S`` to ``judge_grid``, whose effect on the map is negligible at the default
  0.1-point grid).

``kind="none"`` changes nothing. The truth (each policy's mean label per window) is exact
(:func:`monitor_true_value`): constant over windows except under ``"distribution"``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import integrate
from scipy.special import expit, ndtr

from cje.synthetic.direct import PolicySpec

__all__ = ["LINK_POWER", "MONITOR_KINDS", "SyntheticMonitor", "default_monitor_policies",
           "make_monitor_eval", "monitor_true_value"]

#: Allowed values of ``kind``.
MONITOR_KINDS: tuple[str, ...] = ("none", "shift", "slope", "distribution")
#: Power of the label's mean in the judge signal, ``E[Y01 | U] = U ** LINK_POWER`` before clipping.
LINK_POWER: float = 1.5
_SIGNAL_SD = math.sqrt(1.0 + 0.25)  # sd of -d + eps


def _clipped_normal_mean(m: np.ndarray | float, sd: float) -> np.ndarray:
    """``E[clip(X, 0, 1)]`` for ``X ~ N(m, sd^2)``: ``sd [G(m / sd) - G((m - 1) / sd)]`` with
    ``G(z) = z Phi(z) + phi(z)`` (the integral of ``P(X > t)`` over ``t`` in [0, 1])."""
    m = np.asarray(m, dtype=float)
    if sd == 0:
        return np.clip(m, 0.0, 1.0)
    a, b = m / sd, (m - 1.0) / sd
    return sd * ((a * ndtr(a) + _phi(a)) - (b * ndtr(b) + _phi(b)))


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def monitor_true_value(quality: float, *, label_noise: float = 0.15,
                       label_scale: tuple[float, float] = (1.0, 5.0)) -> float:
    """Exact mean label of a policy with quality ``mu`` in :func:`make_monitor_eval`.

    ``E[Y] = lo + (hi - lo) E[c(sigmoid(mu + s W))]`` with ``W ~ N(0, 1)``, ``s = sqrt(1.25)`` and
    ``c(u) = E[clip(u ** LINK_POWER + label_noise Z, 0, 1)]`` in closed form; the outer integral by
    adaptive quadrature on ``|W| <= 40`` (absolute tolerance 1e-12).

    Parameters
    ----------
    quality : float
    label_noise : float, default 0.15
    label_scale : (float, float), default (1, 5)

    Returns
    -------
    float

    Examples
    --------
    >>> round(monitor_true_value(0.0), 4), round(monitor_true_value(0.5), 4)
    (2.5494, 2.9535)
    >>> rng = np.random.default_rng(0)   # a Monte Carlo check, 1e6 draws (MC SE ~ 0.001)
    >>> u = expit(0.0 + np.sqrt(1.25) * rng.standard_normal(10**6))
    >>> y = 1 + 4 * np.clip(u ** 1.5 + 0.15 * rng.standard_normal(10**6), 0, 1)
    >>> bool(abs(y.mean() - monitor_true_value(0.0)) < 0.004)
    True
    """
    lo, hi = (float(x) for x in label_scale)
    return lo + (hi - lo) * _mean01(float(quality), float(label_noise))


@functools.lru_cache(maxsize=256)
def _mean01(quality: float, label_noise: float) -> float:
    def f(w: float) -> float:
        u = expit(quality + _SIGNAL_SD * w)
        return float(_clipped_normal_mean(u**LINK_POWER, label_noise)) * float(_phi(np.float64(w)))

    val, _ = integrate.quad(f, -40, 40, epsabs=1e-12, limit=200)
    return val


def default_monitor_policies() -> tuple[PolicySpec, ...]:
    """The two policies of the monitoring DGP: ``prod`` (quality 0.0) and ``canary`` (+0.3).

    Returns
    -------
    tuple of PolicySpec

    Examples
    --------
    >>> [p.name for p in default_monitor_policies()]
    ['prod', 'canary']
    """
    return (PolicySpec("prod", quality=0.0), PolicySpec("canary", quality=0.3))


@dataclass(frozen=True, slots=True, eq=False)
class SyntheticMonitor:
    """Synthetic time-stamped traffic with the truth per window.

    Parameters
    ----------
    data : pandas.DataFrame
        Long format: ``timestamp`` (tz-aware UTC), ``window`` (int, 0-based), ``prompt_id``,
        ``policy``, ``judge_score``, ``oracle_label`` (NaN where unlabelled).
    truth : pandas.DataFrame
        One row per window × policy: ``window``, ``window_start`` (UTC), ``policy``, ``truth``
        (exact mean label).
    change_at : int or None
        First window under the change (``None`` for ``kind="none"``).
    kind : str
        What changes (see the module docstring).
    judge_scale, label_scale : (float, float)
    description : str
        One plain-words paragraph.

    Examples
    --------
    >>> sim = make_monitor_eval(n_windows=3, rows_per_window=40, labels_per_window=10, kind="none",
    ...                         rng=0)
    >>> sim.data.shape, sorted(sim.data["window"].unique().tolist())
    ((120, 6), [0, 1, 2])
    >>> sim.truth.shape
    (6, 4)
    """

    data: pd.DataFrame
    truth: pd.DataFrame
    change_at: int | None
    kind: str
    judge_scale: tuple[float, float]
    label_scale: tuple[float, float]
    description: str


def make_monitor_eval(
    n_windows: int = 30,
    rows_per_window: int = 1000,
    labels_per_window: int | Sequence[int] = 200,
    *,
    kind: str = "shift",
    change_at: int | None = 15,
    judge_shift: float = 0.5,
    judge_slope: float = 1.1,
    quality_shift: float = 0.5,
    policies: Sequence[PolicySpec] | None = None,
    label_noise: float = 0.15,
    judge_scale: tuple[float, float] = (0.0, 10.0),
    judge_grid: float | None = 0.1,
    label_scale: tuple[float, float] = (1.0, 5.0),
    start: str = "2026-11-01",
    window: str = "1D",
    rng: int | np.random.Generator | None = None,
) -> SyntheticMonitor:
    """Simulate ``n_windows`` windows of judged production traffic with a known change.

    Parameters
    ----------
    n_windows : int, default 30
        Number of windows (>= 1).
    rows_per_window : int, default 1000
        Judged rows per window, split evenly over the policies (each prompt answered by every
        policy once); must be a multiple of the number of policies.
    labels_per_window : int or sequence of int, default 200
        Oracle-labelled rows per window (a random subset of that window's rows), one number for
        every window or one per window.
    kind : {"none", "shift", "slope", "distribution"}, default "shift"
        What changes from ``change_at`` on (module docstring).
    change_at : int, optional
        First changed window (ignored for ``kind="none"``); ``0 < change_at < n_windows``.
    judge_shift : float, default 0.5
        ``kind="shift"``: judge points added to every score.
    judge_slope : float, default 1.1
        ``kind="slope"``: factor on the judge signal.
    quality_shift : float, default 0.5
        ``kind="distribution"``: shift of every policy's quality.
    policies : sequence of PolicySpec, optional
        Default :func:`default_monitor_policies` (``prod`` and ``canary``); only ``name`` and
        ``quality`` are used.
    label_noise : float, default 0.15
        Standard deviation of the label's noise around ``U ** LINK_POWER`` (on [0, 1]).
    judge_scale, label_scale : (float, float)
        Scales of scores and labels.
    judge_grid : float, optional
        Scores rounded to this grid (default 0.1 points); ``None`` keeps them continuous.
    start : str, default "2026-11-01"
        UTC start of window 0.
    window : str, default "1D"
        Window length (a pandas offset alias); timestamps are uniform inside each window.
    rng : int or numpy.random.Generator, optional
        Seed.

    Returns
    -------
    SyntheticMonitor

    Examples
    --------
    >>> sim = make_monitor_eval(n_windows=4, rows_per_window=1000, labels_per_window=50,
    ...                         kind="shift", change_at=2, rng=1)
    >>> sim.data.groupby("window")["oracle_label"].count().tolist()
    [50, 50, 50, 50]
    >>> m = sim.data.groupby("window")["judge_score"].mean()
    >>> bool(m[2:].mean() - m[:2].mean() > 0.3)      # the judge update raises the scores
    True
    >>> sim.truth.groupby("policy")["truth"].nunique().tolist()   # the labels do not move
    [1, 1]
    """
    if kind not in MONITOR_KINDS:
        raise ValueError(f"kind must be one of {MONITOR_KINDS}, got {kind!r}")
    specs = tuple(policies) if policies is not None else default_monitor_policies()
    n_pol = len(specs)
    if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)) or n_windows < 1:
        raise ValueError(f"n_windows must be an integer >= 1, got {n_windows!r}")
    if rows_per_window < n_pol or rows_per_window % n_pol:
        raise ValueError(f"rows_per_window must be a positive multiple of the {n_pol} policies, "
                         f"got {rows_per_window!r}")
    labels = (np.full(n_windows, int(labels_per_window)) if np.ndim(labels_per_window) == 0
              else np.asarray(labels_per_window, dtype=int))
    if labels.shape != (n_windows,) or labels.min() < 0 or labels.max() > rows_per_window:
        raise ValueError("labels_per_window must be one count in [0, rows_per_window] or one per "
                         f"window; got {labels_per_window!r}")
    if kind == "none":
        change_at = None
    elif change_at is None or not 0 < int(change_at) < n_windows:
        raise ValueError(f"change_at must be in 1..{n_windows - 1} for kind={kind!r}, got {change_at!r}")
    j_lo, j_hi = (float(x) for x in judge_scale)
    l_lo, l_hi = (float(x) for x in label_scale)
    gen = np.random.default_rng(rng)
    n_prompts = rows_per_window // n_pol
    t0 = pd.Timestamp(start, tz="UTC")
    step = pd.Timedelta(pd.tseries.frequencies.to_offset(window))
    mu0 = np.array([float(s.quality) for s in specs])
    truth_of = {}
    frames, truth_rows = [], []
    for w in range(n_windows):
        changed = change_at is not None and w >= int(change_at)
        mu = mu0 + (quality_shift if changed and kind == "distribution" else 0.0)
        difficulty = gen.standard_normal(n_prompts)[None, :]
        eps = 0.5 * gen.standard_normal((n_pol, n_prompts))
        u = expit(mu[:, None] - difficulty + eps).reshape(-1)
        y01 = np.clip(u**LINK_POWER + label_noise * gen.standard_normal(u.size), 0.0, 1.0)
        if changed and kind == "shift":
            u = u + judge_shift / (j_hi - j_lo)
        elif changed and kind == "slope":
            u = judge_slope * u
        score = j_lo + (j_hi - j_lo) * np.clip(u, 0.0, 1.0)
        if judge_grid is not None:
            score = np.round(np.clip(j_lo + judge_grid * np.rint((score - j_lo) / judge_grid),
                                     j_lo, j_hi), 10)
        oracle = l_lo + (l_hi - l_lo) * y01
        lab = np.zeros(u.size, dtype=bool)
        lab[gen.choice(u.size, size=int(labels[w]), replace=False)] = True
        offsets = gen.uniform(0.0, 1.0, u.size) * step
        pol_idx = np.repeat(np.arange(n_pol), n_prompts)
        frames.append(pd.DataFrame({
            "timestamp": t0 + w * step + pd.to_timedelta(offsets),
            "window": w,
            "prompt_id": [f"w{w:03d}p{j:05d}" for j in np.tile(np.arange(n_prompts), n_pol)],
            "policy": np.array([s.name for s in specs], dtype=object)[pol_idx],
            "judge_score": score,
            "oracle_label": np.where(lab, oracle, np.nan),
        }))
        for p, sp in enumerate(specs):
            key = float(mu[p])
            if key not in truth_of:
                truth_of[key] = monitor_true_value(key, label_noise=label_noise,
                                                   label_scale=(l_lo, l_hi))
            truth_rows.append({"window": w, "window_start": t0 + w * step, "policy": sp.name,
                               "truth": truth_of[key]})
    data = pd.concat(frames, ignore_index=True).sort_values("timestamp", kind="stable")
    data = data.reset_index(drop=True)
    what = {
        "none": "nothing changes",
        "shift": f"from window {change_at} the judge gives {judge_shift:+g} points to every answer",
        "slope": f"from window {change_at} the judge signal is multiplied by {judge_slope:g}",
        "distribution": f"from window {change_at} every policy's quality moves by {quality_shift:+g} "
                        "(scores and labels move together; the label given the score does not)",
    }[kind]
    desc = (f"{n_windows} windows of {window} with {rows_per_window} judged rows "
            f"({n_prompts} prompts x {n_pol} policies) and {int(labels.min())}-{int(labels.max())} "
            f"oracle labels each; {what}.")
    return SyntheticMonitor(data=data, truth=pd.DataFrame(truth_rows),
                            change_at=None if change_at is None else int(change_at), kind=kind,
                            judge_scale=(j_lo, j_hi), label_scale=(l_lo, l_hi), description=desc)
