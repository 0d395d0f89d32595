"""``cje.plan`` (this module: ``cje.planning``): how many oracle labels and prompts to buy.

From a pilot (judged responses with a uniform random slice of oracle labels, or the
:class:`~cje.report.Report` of one), :func:`plan` fits a variance model per policy (and per paired
contrast, if asked) and turns it into a plan: the labels (and prompts) that reach a target
interval half-width, the half-width a budget buys, and the cheapest split when a label costs
``label_cost`` judged responses.

The variance model comes from what the direct estimator is (docs: Methods › The direct
estimator): ``ψ = mean_n R + mean_m e`` — the calibrated reward ``R = f(S)`` averaged over the
policy's ``n`` rows plus the out-of-fold residual ``e = Y − f_oof(S)`` averaged over its ``m``
labelled rows. Its influence value ``φ_i = (R_i − R̄) + (L_i n/m)(e_i − ē)`` splits in two, and
the prompt-clustered variance ``Var_IF`` splits into three sums over prompts ``g`` (with
``u_g = Σ_{i∈g}(R_i − R̄)/n`` and ``w_g = Σ_{i∈g} L_i(n/m)(e_i − ē)/n``)::

    Var_IF = G/(G−1) Σ u_g²  +  2 G/(G−1) Σ u_g w_g  +  G/(G−1) Σ w_g²
             ≈ Var(R)/n       +  2 Cov(R, e)/n       +  Var(e)/m

so the first two scale like ``1/n_prompts`` and the third like ``1/n_labels`` — except its
cross-products of two labelled rows of one prompt (several responses per prompt, whose
residuals are correlated when the judge errs by prompt): the labelled pairs grow like
``(labels/prompts)²``, so these scale like ``1/n_prompts`` and go with the first two (with
``w_g² = d_g + pairs_g``, ``d_g`` the sum of the squared row terms). The calibration variance
``Var_cal`` (OUA jackknife) is taken to scale like ``1/n_labels``. Hence::

    SE²(n, m) = a/n + b/m + c/m,   a = G·(ΣΣ first two + Σ pairs),  b = m·(Σ d),  c = m·Var_cal

which reproduces the pilot's own ``SE²`` exactly at the pilot's sizes. The half-width is
``t_{1−α/2, df} · SE`` with the Satterthwaite ``df`` of the report at the planned sizes
(``Var_cal`` has only ``K − 1`` degrees of freedom, so a plan where it dominates needs more labels
than the normal quantile would say).

Assumptions (stated in every plan): the second round draws prompts and labels the way the pilot
did — labels a uniform random sample of each policy's rows (the same share for every policy), the
same judge, policies, prompt distribution and responses per prompt; the calibration mode and the
number of folds ``K`` unchanged. Off-policy (logged) data and reports are not planned yet: they
are refused with a message.

How sure the plan is: the components are estimates. ``a`` and ``b`` are resampled with the
prompt-cluster bootstrap (multinomial weights on the prompts' ``u_g``, ``w_g``); ``c`` is drawn
as ``c·(K−1)/χ²_{K−1}`` (a jackknife variance with ``K − 1`` degrees of freedom). The labels
needed under each draw give an interval (default 80%: its 10th and 90th percentiles).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cje.errors import CJEInputError, CJEWarning, check_alpha

if TYPE_CHECKING:
    import pandas as pd

    from cje.report import Report

__all__ = ["Plan", "PlanTarget", "plan"]

#: The format tag of :meth:`Plan.to_json`.
FORMAT = "cje.Plan/1"
#: Labels at most this many times the rows are searched (labels cannot exceed the rows).
_MAX_PROMPTS = 1e9


# ------------------------------------------------------------------------------ the model
#: Why a plan may be unsure whether labels alone reach the target: the part that does not fall
#: with labels holds the residual cross-products of labelled rows sharing a prompt, which a small
#: pilot sees on a handful of prompts (``simulations/results/independent_plan.md``).
_UNSURE = ("the part that does not fall with labels is uncertain: with several rows per prompt it "
           "rests on the pilot's few prompts with two or more labelled rows")


def _t(df: Any, alpha: float) -> Any:
    from scipy.special import stdtrit

    return stdtrit(df, 1 - alpha / 2)


def _df(v_a: Any, v_b: Any, v_cal: Any, n: Any, m: Any, k: int) -> Any:
    """Satterthwaite df of broadcast inputs, at least 1: the prompt part ``v_a`` with ``n − 1``,
    the label-residual part ``v_b`` with ``m − 1`` (:func:`cje.pipeline.core.level_df`) and
    ``v_cal`` with ``k − 1`` (:func:`cje.inference.component_satterthwaite_df`)."""
    from cje.inference import component_satterthwaite_df, satterthwaite_dfs

    v_a, v_b, v_cal, n, m = np.broadcast_arrays(*(np.asarray(x, float)
                                                  for x in (v_a, v_b, v_cal, n, m)))
    v_if = v_a + v_b
    plain = satterthwaite_dfs(v_if, v_cal, n, k)
    own = np.where(v_b > 0, m, 0.0)
    return np.maximum(component_satterthwaite_df(plain, v_if, v_cal, n, k, [(v_b, own, False)]),
                      1.0)


def half_width_at(a: Any, b: Any, c: Any, k: int, n: Any, m: Any, alpha: float
                  ) -> tuple[Any, Any, Any]:
    """Predicted half-width, SE and df of a target with components ``a, b, c`` at ``n`` prompts
    and ``m`` labels: ``SE² = a/n + b/m + c/m``, half-width ``t_{1−α/2, df}·SE`` with the
    Satterthwaite ``df`` of the three parts (``n − 1``, ``m − 1`` and ``k − 1`` degrees of
    freedom), as the report computes it for a policy (for a contrast, whose labels are split
    between two policies, the label part's df is one more than the report's ``m − 2``).

    Parameters
    ----------
    a, b, c : float or numpy.ndarray
        Variance components (label units², times the sizes).
    k : int
        Jackknife folds (``Var_cal`` has ``k − 1`` degrees of freedom).
    n, m : float or numpy.ndarray
        Prompts and labels.
    alpha : float

    Returns
    -------
    (half_width, se, df)

    Examples
    --------
    >>> hw, se, df = half_width_at(1.0, 0.5, 0.0, 5, 400, 100, 0.05)
    >>> round(float(se), 4), round(float(df), 1), round(float(hw), 4)   # sqrt(1/400 + 0.5/100)
    (0.0866, 209.7, 0.1707)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        v_a = np.asarray(a, float) / n
        v_b = np.asarray(b, float) / m
        v_cal = np.asarray(c, float) / m
    se = np.sqrt(v_a + v_b + v_cal)
    df = _df(v_a, v_b, v_cal, n, m, k)
    return _t(df, alpha) * se, se, df


def _labels_for(a: Any, b: Any, c: Any, k: int, n: float, h: float, alpha: float,
                m_max: float) -> np.ndarray:
    """Fewest labels (real-valued) at ``n`` prompts with half-width ≤ ``h``; inf if even
    ``m_max`` labels do not reach it. Vectorised over the components (bisection on log m)."""
    a, b, c = np.broadcast_arrays(np.asarray(a, float), np.asarray(b, float), np.asarray(c, float))
    ok = half_width_at(a, b, c, k, n, m_max, alpha)[0] <= h
    lo = np.full(a.shape, 0.0)   # log m: half-width above h at m = 1 unless b + c = 0
    hi = np.full(a.shape, math.log(m_max))
    for _ in range(60):
        mid = (lo + hi) / 2
        good = half_width_at(a, b, c, k, n, np.exp(mid), alpha)[0] <= h
        hi = np.where(good, mid, hi)
        lo = np.where(good, lo, mid)
    first = half_width_at(a, b, c, k, n, 1.0, alpha)[0] <= h
    out = np.where(first, 1.0, np.exp(hi))
    return np.where(ok, out, np.inf)


def _prompts_for(a: float, b: float, c: float, k: int, share: Any, h: float,
                 alpha: float) -> Any:
    """Fewest prompts (real-valued) with half-width ≤ ``h`` when ``share`` labels per prompt are
    bought (``m = share·n``); inf where none (``share = 0`` with ``b + c > 0``). Vectorised over
    ``share`` (bisection on log n)."""
    share = np.asarray(share, dtype=float)
    top = half_width_at(a, b, c, k, _MAX_PROMPTS, share * _MAX_PROMPTS, alpha)[0] > h
    lo = np.zeros(share.shape)
    hi = np.full(share.shape, math.log(_MAX_PROMPTS))
    for _ in range(60):
        mid = (lo + hi) / 2
        n = np.exp(mid)
        good = half_width_at(a, b, c, k, n, share * n, alpha)[0] <= h
        hi = np.where(good, mid, hi)
        lo = np.where(good, lo, mid)
    out = np.where(top | ((share <= 0) & (b + c > 0)), np.inf, np.exp(hi))
    return float(out) if out.ndim == 0 else out


def _ceil(x: float) -> int | None:
    return None if not math.isfinite(x) else int(math.ceil(x - 1e-9))


# ------------------------------------------------------------------------------ records
@dataclass(frozen=True)
class PlanTarget:
    """The plan of one policy (or one paired contrast ``a − b``).

    Attributes
    ----------
    target : str
        Policy name, or ``"a − b"`` for a contrast.
    kind : str
        ``"policy"`` or ``"contrast"``.
    n_prompts, n_labels, n_rows : int
        The pilot's prompts, oracle labels and rows of this target (a contrast: shared prompts,
        and the labels and rows of both policies).
    a, b, c : float
        The fitted variance model ``SE² = a/n_prompts + (b + c)/n_labels`` (label units²):
        ``a`` the prompt part of ``Var_IF``, ``b`` its label-residual part, ``c`` the calibration
        part (``Var_cal``).
    k : int
        Jackknife folds (``Var_cal`` has ``k − 1`` degrees of freedom).
    se, df, half_width : float
        The pilot's own SE, Satterthwaite df and half-width ``t·SE`` (as reported).
    labels_needed : int or None
        Labels that reach the target half-width at the pilot's prompts (None: not reachable by
        labels alone — the prompt part ``a/n`` is too large; buy prompts).
    labels_needed_low, labels_needed_high : int or None
        The plan interval of ``labels_needed`` (None at the top: not reachable in that share of
        the draws).
    prompts_needed, prompts_needed_labels : int or None
        Prompts (and the labels that go with them) that reach the target when prompts and labels
        grow together at the pilot's labels per prompt.
    optimal_prompts, optimal_labels : int or None
        The cheapest design reaching the target when a label costs ``label_cost`` rows (None
        without ``label_cost``).
    optimal_cost : float
        Its cost in rows (judged responses): ``rows + label_cost·labels``; NaN without it.
    budget_half_width : float
        The half-width under the budget's design (NaN without ``budget``).
    note : str
        Why a number is missing, or ``""``.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
    >>> t = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))["base"]
    >>> t.kind, t.n_prompts, t.rows_per_prompt
    ('policy', 1000, 1.0)
    >>> bool(t.labels_needed_low <= t.labels_needed <= t.labels_needed_high)
    True
    """

    target: str
    kind: str
    n_prompts: int
    n_labels: int
    n_rows: int
    a: float
    b: float
    c: float
    k: int
    se: float
    df: float
    half_width: float
    labels_needed: int | None
    labels_needed_low: int | None
    labels_needed_high: int | None
    prompts_needed: int | None
    prompts_needed_labels: int | None
    optimal_prompts: int | None = None
    optimal_labels: int | None = None
    optimal_cost: float = float("nan")
    budget_half_width: float = float("nan")
    note: str = ""

    @property
    def rows_per_prompt(self) -> float:
        """Rows per prompt in the pilot (labels cannot exceed the rows)."""
        return self.n_rows / max(self.n_prompts, 1)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass(frozen=True)
class Plan:
    """A label plan from :func:`plan`: per target the fitted variance model and what it buys.

    Attributes
    ----------
    targets : tuple of PlanTarget
        Every policy, then (with ``contrasts=True``) every pair.
    half_width, alpha : float
        The target half-width (label units) of the ``1 − alpha`` intervals.
    level : float
        Level of the plan intervals (``labels_needed_low`` … ``_high``).
    label_cost, budget : float or None
        As given to :func:`plan`.
    design : dict
        One design for every target at once (the same label share for every policy):
        ``label_share`` (labels per row), ``n_prompts``, ``n_labels`` (total), ``binding``
        (the target that needs it), ``n_labels_low``/``_high`` (plan interval), ``reachable``;
        with ``label_cost`` also ``optimal``, with ``budget`` also ``budget`` (each a dict).
    source : str
        ``"data"`` (exact split of ``Var_IF``) or ``"report"`` (approximate split).
    notices : tuple of str
        The assumptions and anything the plan could not do.
    settings, provenance : dict
        The options of the run; versions, inputs and time (:func:`cje.export.provenance`).
    next_labels : dict or None
        With ``next=``: the rows to send for labels next and their design — ``rows`` (columns
        ``prompt_id, policy, draw_idx, judge_score, label_probability, label_stratum``),
        ``cells`` (per policy × judge-score region: rows, pilot labels, residual SD, expected
        new labels, round-2 probability ``q`` and overall probability ``π``), ``policies``
        (pilot labels, new labels, half-width now and predicted after), ``cuts`` (the regions'
        cut points on the judge scale). See :meth:`next_frame` and :meth:`label_design`.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
    >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
    >>> t = p["base"]
    >>> t.n_labels < t.labels_needed, round(p.predict("base", t.n_prompts, t.n_labels), 6) == round(
    ...     t.half_width, 6)
    (True, True)
    >>> Plan.from_json(p.to_json()) == p
    True
    """

    targets: tuple[PlanTarget, ...]
    half_width: float
    alpha: float
    level: float
    label_cost: float | None
    budget: float | None
    design: dict[str, Any]
    source: str
    notices: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    next_labels: dict[str, Any] | None = None

    def __getitem__(self, name: str) -> PlanTarget:
        for t in self.targets:
            if t.target == name:
                return t
        raise CJEInputError(f"The plan has no target {name!r}; it has "
                            f"{[t.target for t in self.targets]}.")

    def predict(self, target: str, n_prompts: float, n_labels: float) -> float:
        """The model's half-width of ``target`` at ``n_prompts`` prompts and ``n_labels`` labels.

        Parameters
        ----------
        target : str
        n_prompts, n_labels : float

        Returns
        -------
        float
            ``t_{1−α/2, df} · sqrt(a/n + (b + c)/m)`` with the Satterthwaite ``df`` there.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(600, oracle_fraction=0.1, rng=1)
        >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
        >>> p.predict("base", 600, 60) > p.predict("base", 600, 240)
        True
        """
        t = self[target]
        return float(half_width_at(t.a, t.b, t.c, t.k, n_prompts, n_labels, self.alpha)[0])

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-ready data (non-finite numbers as ``None``).

        Returns
        -------
        dict

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.1, rng=0)
        >>> d = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10),
        ...              label_scale=(1, 5)).to_dict()
        >>> d["format"], len(d["targets"])
        ('cje.Plan/1', 5)
        """
        doc = {"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}
        doc["targets"] = [asdict(t) for t in self.targets]
        doc["notices"] = list(self.notices)
        return _clean(doc)  # type: ignore[no-any-return]

    def to_json(self, path: str | Path | None = None) -> str:
        """The plan as JSON; also written to ``path`` if given.

        Parameters
        ----------
        path : path, optional

        Returns
        -------
        str

        Examples
        --------
        >>> import cje, json
        >>> sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.1, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
        >>> sorted(json.loads(p.to_json()))[:4]
        ['alpha', 'budget', 'design', 'format']
        """
        text = json.dumps(self.to_dict(), indent=1, default=str)
        if path is not None:
            Path(path).write_text(text, encoding="utf-8")
        return text

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        """The plan of :meth:`to_dict`.

        Parameters
        ----------
        d : dict

        Returns
        -------
        Plan

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.1, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
        >>> Plan.from_dict(p.to_dict()) == p
        True
        """
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise CJEInputError(f"This is not a cje plan (no 'format': '{FORMAT}'); write it with "
                                "Plan.to_json / Plan.to_dict.")
        nan = float("nan")
        ts = []
        for t in d["targets"]:
            kw = {}
            for f in fields(PlanTarget):
                v = t.get(f.name)
                if v is None and f.type in ("float",):
                    v = nan
                kw[f.name] = v
            ts.append(PlanTarget(**kw))
        rest = {f.name: d.get(f.name) for f in fields(cls) if f.name not in ("targets", "notices")}
        return cls(targets=tuple(ts), notices=tuple(d.get("notices") or ()), **rest)

    @classmethod
    def from_json(cls, source: str | Path) -> Plan:
        """Read a plan written by :meth:`to_json` (JSON text or a path to it).

        Parameters
        ----------
        source : str or path

        Returns
        -------
        Plan

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.1, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
        >>> Plan.from_json(p.to_json()).design == p.design
        True
        """
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise CJEInputError(f"This is not JSON ({err}); pass the text or path written by "
                                "Plan.to_json.") from None
        return cls.from_dict(doc)

    def __eq__(self, other: object) -> bool:
        """Equal content (NaN equal to NaN), ``provenance`` not compared (it holds the time)."""
        if type(other).__name__ != "Plan" or not hasattr(other, "to_dict"):  # (a module imported
            return NotImplemented                                            # twice, as doctests do)
        a, b = self.to_dict(), other.to_dict()
        a.pop("provenance"), b.pop("provenance")
        return bool(a == b)

    __hash__ = None  # type: ignore[assignment]

    def to_pandas(self) -> pd.DataFrame:
        """One row per target, the fields of :class:`PlanTarget` as columns.

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(400, oracle_fraction=0.1, rng=0)
        >>> cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10),
        ...          label_scale=(1, 5)).to_pandas().shape
        (5, 22)
        """
        import pandas as pd

        return pd.DataFrame([asdict(t) for t in self.targets],
                            columns=[f.name for f in fields(PlanTarget)])

    def summary(self) -> str:
        """The plan as a text table, with the joint design and the assumptions.

        Returns
        -------
        str

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
        >>> print(p.summary().splitlines()[0])
        Label plan: ±0.1 (95% intervals, label units), from a pilot (data)
        """
        from cje._text import level_text

        lvl = level_text(self.alpha)[:-1]  # 97.5 for alpha = 0.025, never rounded to 98
        pl = round(100 * self.level)

        def num(x: int | None) -> str:
            return "—" if x is None else f"{x:,}"

        head = ["target", "prompts", "labels", "±now", "share cal", f"labels for ±{self.half_width:g}",
                f"{pl}% plan interval", "prompts+labels (same share)"]
        if self.label_cost is not None:
            head.append(f"cheapest (label = {self.label_cost:g} rows)")
        if self.budget is not None:
            head.append("± under budget")
        rows = []
        for t in self.targets:
            share = t.c / t.n_labels / (t.se**2) if t.se > 0 and t.n_labels else 0.0
            r = [t.target, f"{t.n_prompts:,}", f"{t.n_labels:,}", f"{t.half_width:.4f}",
                 f"{share:.2f}", num(t.labels_needed),
                 f"{num(t.labels_needed_low)} – {num(t.labels_needed_high)}",
                 "—" if t.prompts_needed is None
                 else f"{t.prompts_needed:,} + {num(t.prompts_needed_labels)}"]
            if self.label_cost is not None:
                r.append("—" if t.optimal_prompts is None
                         else f"{t.optimal_prompts:,} + {num(t.optimal_labels)}")
            if self.budget is not None:
                r.append(f"{t.budget_half_width:.4f}")
            rows.append(r)
        widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=False)]
        line = "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))
        out = [f"Label plan: ±{self.half_width:g} ({lvl}% intervals, label units), from a pilot "
               f"({self.source})", "", line, "-" * len(line)]
        out += ["  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)) for r in rows]
        d = self.design
        out.append("")
        if d.get("reachable"):
            out.append(f"One design for every target (same label share for every policy, the "
                       f"pilot's {d['n_prompts']:,} prompts): {d['n_labels']:,} labels in all "
                       f"({d['label_share']:.1%} of rows; {pl}% plan interval "
                       f"{num(d.get('n_labels_low'))} – {num(d.get('n_labels_high'))}), bound by "
                       f"{d['binding']}.")
        elif d.get("n_labels_low") is not None:
            out.append(f"Labels alone at the pilot's {d['n_prompts']:,} prompts may not reach "
                       f"±{self.half_width:g} for {d['binding']}: at the estimate they cannot, but "
                       f"within the {pl}% plan interval {d['n_labels_low']:,} labels could "
                       f"({_UNSURE}). Buy prompts too, or label more rows of these prompts to "
                       "settle it.")
        else:
            out.append(f"Labels alone at the pilot's {d['n_prompts']:,} prompts cannot reach "
                       f"±{self.half_width:g} for {d['binding']}: buy prompts too.")
        if "optimal" in d and d["optimal"].get("n_prompts") is not None:
            o = d["optimal"]
            out.append(f"Cheapest design for every target: {o['n_prompts']:,} prompts, "
                       f"{o['n_labels']:,} labels ({o['label_share']:.1%} of rows), cost "
                       f"{o['cost']:,.0f} rows.")
        if "budget" in d:
            bd = d["budget"]
            out.append(f"Budget {self.budget:g}: {bd['n_prompts']:,} prompts, {bd['n_labels']:,} "
                       f"labels; the widest ± is {bd['max_half_width']:.4f} ({bd['widest']}).")
        if self.next_labels is not None:
            out += [""] + _next_summary(self.next_labels)
        out.append("")
        out += [f"* {n}" for n in self.notices]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    def _need_next(self) -> dict[str, Any]:
        if self.next_labels is None:
            raise CJEInputError("This plan has no next list; make it with cje.plan(data, ..., "
                                "next=200).")
        return self.next_labels

    def next_frame(self) -> pd.DataFrame:
        """The rows to send for labels next (``next=``): ``prompt_id, policy, draw_idx,
        judge_score, label_probability, label_stratum``.

        ``label_probability`` is the row's overall probability of being labelled in the two
        rounds (pilot and this one; after an earlier non-uniform round, in all of them); keep it
        with the label.

        Label every row of the list. The rows are sorted by policy and prompt, so its first rows
        are not a random part of it: labelling "the first 60%" starves the last policies (in
        ``simulations/results/independent_active.md`` the last policy's intervals then covered
        0.83 over all statuses). If only part can be labelled, label a random part (e.g.
        ``frame.sample(frac=0.6, random_state=0)``); the probabilities then overstate the
        chance of the rows left out a little (a small bias there, coverage kept).

        Returns
        -------
        pandas.DataFrame

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.05, judge_scale=(0, 10), label_scale=(1, 5),
        ...              next=100)
        >>> f = p.next_frame()
        >>> f.columns.tolist()[:4], bool(f.oracle_label.isna().all()) if "oracle_label" in f else True
        (['prompt_id', 'policy', 'draw_idx', 'judge_score'], True)
        >>> 60 < len(f) < 140   # Poisson sampling: about 100
        True
        """
        import pandas as pd

        return pd.DataFrame(self._need_next()["rows"],
                            columns=["prompt_id", "policy", "draw_idx", "judge_score",
                                     "label_probability", "label_stratum"])

    def label_design(self, data: Any, *, columns: Any = None) -> pd.DataFrame:
        """Every row's ``label_probability`` and ``label_stratum`` under this plan's two-round
        design: ``π = p0 + (1 − p0)·q`` of its policy and judge-score region; for a plan made
        from data with an earlier round's ``label_probability`` column, ``1 − (1 − π_before)·
        (1 − q)`` with ``π_before`` read from ``data``'s column (which must be the one the plan
        was made from: new labels may be filled in, the column not yet replaced), and the
        earlier ``label_stratum`` (or ``π_before``) joined to the new one.

        Put both columns on the second round's data (pilot labels plus the new ones, same rows)
        and analyse it with :func:`cje.analyze` (docs: Planning a label budget › Which rows to label next).

        Parameters
        ----------
        data : DataFrame or Mapping
            The rows (with ``policy`` and ``judge_score`` columns, on the pilot's judge scale),
            in any order.
        columns : Mapping[str, str], optional
            Your names of ``policy`` and ``judge_score`` (as in :func:`cje.analyze`).

        Returns
        -------
        pandas.DataFrame
            ``label_probability`` and ``label_stratum``, one row per input row (same index for a
            pandas frame). A policy left out with ``policies=[...]`` gets no round-2 labels: its
            probability is the pilot's labelled share of its rows; a policy the pilot did not
            have: NaN / empty.

        Examples
        --------
        >>> import cje
        >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
        >>> p = cje.plan(sim.data, half_width=0.05, judge_scale=(0, 10), label_scale=(1, 5),
        ...              next=100)
        >>> d = p.label_design(sim.data)
        >>> bool(d.label_probability.between(0, 1).all()), d.shape[0] == len(sim.data)
        (True, True)
        """
        import pandas as pd

        from cje.data import _columns_of

        nl = self._need_next()
        cols = dict(_columns_of(data))
        for std, theirs in (columns or {}).items():
            if theirs in cols:
                cols[std] = cols.pop(theirs)
        for req in ("policy", "judge_score"):
            if req not in cols:
                raise CJEInputError(f"label_design needs a {req!r} column; the data has "
                                    f"{sorted(cols)} (map yours with columns={{'{req}': ...}}).")
        pol = np.asarray(cols["policy"], dtype=object).astype(str)
        try:
            s = np.asarray(cols["judge_score"], dtype=np.float64)
        except (TypeError, ValueError):
            raise CJEInputError("label_design needs numeric judge scores; the 'judge_score' column "
                                "holds text. Convert it (on the pilot's judge scale).") from None
        bad = ~np.isfinite(s)
        if bad.any():  # a missing score has no region: it would take the top one's probability
            i = int(np.flatnonzero(bad)[0])
            raise CJEInputError(
                f"label_design needs a finite judge score on every row; row {i} has {float(s[i])!r} "
                f"({int(bad.sum())} such rows). Score the row, or drop it before the design.")
        region = _region_of(s, np.asarray(nl["cuts"], dtype=np.float64)) + 1
        pi = np.full(s.size, np.nan)
        stratum = np.full(s.size, "", dtype=object)
        h_all = len(nl["cuts"]) + 1
        by = {(c["policy"], c["region"]): c for c in nl["cells"]}
        pol_p0 = {x["policy"]: x for x in nl["policies"]}
        for i, (pp, h) in enumerate(zip(pol.tolist(), region.tolist(), strict=True)):
            c = by.get((pp, h))
            if c is not None:
                pi[i], stratum[i] = c["label_probability"], c["label_stratum"]
            elif pp in pol_p0:  # a region the pilot's rows of this policy did not reach
                pi[i] = pol_p0[pp]["pilot_probability"]
                stratum[i] = f"{pp} | score region {h}/{h_all}"
            elif pp in nl.get("other_policies", {}):  # not planned: the pilot's share
                pi[i] = nl["other_policies"][pp]
                stratum[i] = f"{pp} | not planned"
        if nl.get("earlier"):
            pi, stratum = _compose_earlier(nl, cols, pol, region, stratum)
        index = data.index if hasattr(data, "index") and isinstance(data, pd.DataFrame) else None
        return pd.DataFrame({"label_probability": pi, "label_stratum": stratum}, index=index)


def _compose_earlier(nl: dict[str, Any], cols: dict[str, Any], pol: np.ndarray, region: np.ndarray,
                     new_stratum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row's probability over all rounds when the plan was made after an earlier
    non-uniform round: ``1 − (1 − π_before)(1 − q)``, ``π_before`` the data's own
    ``label_probability`` column (checked against the one the plan was made from: the same rows
    per policy and the same sum) and ``q`` this round's probability of the row's cell (0 for a
    policy not planned); the stratum is the earlier one (or ``π_before`` itself) and the new one
    together, so that every stratum has one probability."""
    if "label_probability" not in cols:
        raise CJEInputError(
            "This plan was made from data with a 'label_probability' column (an earlier round), "
            "which the new design composes: pass label_design the same rows with that column as "
            "it was when you planned (before replacing it by the result).")
    try:
        before = np.asarray(cols["label_probability"], dtype=np.float64)
    except (TypeError, ValueError):
        raise CJEInputError("label_design needs a numeric 'label_probability' column.") from None
    for name, (n_rows, total) in nl["earlier"].items():
        rows = pol == name
        got = float(np.nansum(before[rows]))
        if int(rows.sum()) != n_rows or not math.isclose(got, total, rel_tol=1e-9, abs_tol=1e-9):
            raise CJEInputError(
                f"The 'label_probability' column of {name!r} is not the one this plan was made from "
                f"({int(rows.sum())} rows summing to {got:.6g}; the plan saw {n_rows} summing to "
                f"{total:.6g}). label_design composes the earlier round's column with this round: "
                "pass the data as it was when you planned (new labels may be filled in), not data "
                "whose column was already replaced.")
    q_of = {(c["policy"], c["region"]): c["round2_probability"] for c in nl["cells"]}
    q = np.array([q_of.get((pp, h), 0.0) for pp, h in zip(pol.tolist(), region.tolist(),
                                                           strict=True)])
    pi = 1.0 - (1.0 - before) * (1.0 - q)
    if "label_stratum" in cols:
        old = np.asarray(cols["label_stratum"], dtype=object).astype(str)
    else:
        old = np.array([f"π before {b!r}" for b in before.tolist()], dtype=object)
    stratum = np.array([f"{o} + {n}" if n else o for o, n in zip(old.tolist(), new_stratum.tolist(),
                                                                 strict=True)], dtype=object)
    return pi, stratum


# ------------------------------------------------------------------------------ components
@dataclass
class _Parts:
    name: str
    kind: str
    g: int
    m: int
    rows: int
    u: np.ndarray | None   # per-prompt prompt-part totals (label units)
    w: np.ndarray | None   # per-prompt label-part totals
    d: np.ndarray | None   # per-prompt sums of the label part's squared row terms (w² = d + pairs)
    a: float
    b: float
    c: float
    k: int
    se: float
    df: float


def _from_sums(name: str, kind: str, u: np.ndarray, w: np.ndarray, g: int, m: int, rows: int,
               var_cal: float, k: int, se: float, df: float, own: float = 0.0,
               d: np.ndarray | None = None, own_pairs: float = 0.0) -> _Parts:
    """The components from the per-prompt totals of the prompt part ``u`` and the label part
    ``w``: the pair's (or policy's) factor ``G/(G−1)`` throughout, plus ``own``, the change that
    gives each policy's own-label residual part its factor ``m_g/(m_g−1)`` instead
    (:func:`cje.pipeline.core.own_residual_variance`).

    Only the label part's row terms ``d`` (``Σ_{i∈g} (row term)²``) fall like 1/labels. Its
    cross-products of two labelled rows of one prompt (several responses per prompt, or the two
    policies of a contrast) are as many as the labelled pairs, ``∝ (labels/prompts)²``, each over
    ``labels²``: they scale like 1/prompts and belong to ``a`` (residuals that share a prompt are
    correlated: the judge errs on some prompts). ``d`` None: ``w²`` (no two labelled rows share a
    prompt). ``own_pairs``: a contrast's cross-products of its two sides' residual parts at their
    own factors instead of ``G/(G−1)`` (:func:`cje.inference.paired_contrasts`' ``own_cross``),
    with the cross-products in ``a``."""
    f = g / (g - 1)
    d = w * w if d is None else d
    dd = float(d.sum())
    v_a = f * float(u @ u + 2 * (u @ w) + (w @ w - dd)) + own_pairs
    v_b = f * dd + own
    return _Parts(name, kind, g, m, rows, u, w, d, g * v_a, m * v_b, m * var_cal, k, se, df)


def _split_from_data(ev: Any, rep: Report, *, alpha: float, mode: str, covariates: tuple[str, ...],
                     n_folds: int, seed: int, contrasts: bool) -> list[_Parts]:
    """The exact split of each target's ``Var_IF``: the report's calibrator refitted the way
    :func:`cje.pipeline.direct.analyze_direct` fits it, and the direct estimator's influence
    values taken apart."""
    t, k, reward, labelled, e = _pilot_fit(ev, mode=mode, covariates=covariates,
                                           n_folds=n_folds, seed=seed)
    lo, hi = ev.label_scale
    width = hi - lo
    P = len(ev.policies)
    G = int(t.cluster.max()) + 1
    return _split_parts(ev, rep, t, k, reward, labelled, e, width, P, G, contrasts)


def _pilot_fit(ev: Any, *, mode: str, covariates: tuple[str, ...], n_folds: int, seed: int
               ) -> tuple[Any, int, np.ndarray, np.ndarray, np.ndarray]:
    """The pilot's calibration refitted as :func:`cje.pipeline.direct.analyze_direct` fits it:
    the table, the folds K, every row's reward, the labelled rows and the out-of-fold
    residuals ([0, 1] scale; 0 where unlabelled)."""
    from cje.estimators.direct import DirectEstimator
    from cje.pipeline.core import fit_calibrator, fold_plan
    from cje.pipeline.direct import DirectShape

    shape = DirectShape(ev, {}, covariates, DirectEstimator(), 0.05)
    t = shape.table
    if ev.label_probability is not None and mode == "auto":  # as cje.analyze resolves it
        mode = "monotone"
    lab_prompt = np.zeros(ev.prompts.shape[0], dtype=bool)
    lab_prompt[ev.prompt_code[ev.labelled]] = True
    k, lab_folds, _ = fold_plan(ev.prompts[lab_prompt], np.ones(int(lab_prompt.sum()), dtype=bool),
                                n_folds, seed)
    fold_of_prompt = np.full(ev.prompts.shape[0], -1, dtype=np.int64)
    fold_of_prompt[lab_prompt] = lab_folds
    calibrator, _ = fit_calibrator(t, fold_of_prompt[t.cluster[t.train]], mode=mode,  # type: ignore[arg-type]
                                   k=k, seed=seed)
    calib = calibrator.calibration(frozenset())
    if t.codes is not None:
        reward = calib.predict(t.distinct_s, t.distinct_X)[t.codes]
    else:
        reward = calib.predict(t.s, t.X)
    labelled = np.zeros(t.s.shape[0], dtype=bool)
    labelled[t.train] = True
    e = np.zeros_like(reward)
    e[t.train] = t.y[t.train] - calib.oof
    return t, k, reward, labelled, e


def _split_parts(ev: Any, rep: Report, t: Any, k: int, reward: np.ndarray, labelled: np.ndarray,
                 e: np.ndarray, width: float, P: int, G: int, contrasts: bool) -> list[_Parts]:
    from cje.pipeline.core import own_part_sums

    est_of = {x.policy: x for x in rep.estimates}
    u_of: dict[str, np.ndarray] = {}
    w_of: dict[str, np.ndarray] = {}
    d_of: dict[str, np.ndarray] = {}
    meta: dict[str, tuple[int, int, np.ndarray]] = {}
    own_f: dict[str, tuple[float | None, float]] = {}
    out = []
    for p in range(P):
        name = ev.policies[p]
        if name not in est_of:
            continue
        rows = np.flatnonzero(ev.policy_code == p)
        n = rows.size
        lab = labelled[rows]
        m = int(lab.sum())
        r = reward[rows]
        ep = np.where(lab, e[rows], 0.0)
        mean_e = ep.sum() / m if m else 0.0
        phi_r = r - r.sum() / n
        phi_e = np.where(lab, (n / m) * (ep - mean_e), 0.0) if m else np.zeros(n)
        cl = t.cluster[rows]
        u = np.bincount(cl, weights=phi_r, minlength=G) / n * width
        w = np.bincount(cl, weights=phi_e, minlength=G) / n * width
        d = np.bincount(cl, weights=(phi_e / n * width) ** 2, minlength=G)
        present = np.bincount(cl, minlength=G) > 0
        g = int(present.sum())
        x = est_of[name]
        u_of[name], w_of[name], d_of[name] = u, w, d
        # the residual part's own factor (m_g/(m_g−1) for m_g labelled prompts of equal weight)
        # in place of G/(G−1), as the report gives it (own_part_sums)
        _, fac, _ = own_part_sums(phi_e[lab], np.zeros(m, dtype=np.int64), cl[lab], np.array([n]), 1)
        own_f[name] = (float(fac[0]) if fac[0] != 0 and g >= 2 else None, float(w @ w))
        meta[name] = (m, n, present)
        out.append(_from_sums(name, "policy", u[present], w[present], g, m, n, x.var_cal, k,
                              x.se, x.df, own=_own_change(own_f[name], g), d=d[present]))
    if contrasts:
        for c in rep.pairs:
            a_, b_ = c.policy_a, c.policy_b
            if a_ not in u_of or b_ not in u_of:
                continue
            present = meta[a_][2] | meta[b_][2]
            g = int(present.sum())
            u = (u_of[a_] - u_of[b_])[present]
            w = (w_of[a_] - w_of[b_])[present]
            d = (d_of[a_] + d_of[b_])[present]
            fa, fb = own_f[a_][0], own_f[b_][0]
            # both sides' own residual parts on shared prompts: their cross-product at the sides'
            # factors, as the report's contrast has it (paired_contrasts' own_cross)
            pairs = 0.0 if fa is None or fb is None else \
                2 * float(w_of[a_] @ w_of[b_]) * (g / (g - 1) - math.sqrt(fa * fb))
            out.append(_from_sums(f"{a_} − {b_}", "contrast", u, w, g, meta[a_][0] + meta[b_][0],
                                  meta[a_][1] + meta[b_][1], c.var_cal, k, c.se, c.df,
                                  own=_own_change(own_f[a_], g) + _own_change(own_f[b_], g), d=d,
                                  own_pairs=pairs))
    return out


def _own_change(own: tuple[float | None, float], g: int) -> float:
    """``(m_g/(m_g−1) − G/(G−1))·Σ w²``: the own-label residual part's factor in place of the
    ``g`` prompts' (0 where the report keeps ``G/(G−1)``: fewer than 2 labelled prompts)."""
    f_own, ww = own
    return 0.0 if f_own is None else (f_own - g / (g - 1)) * ww


def _split_from_report(rep: Report, contrasts: bool) -> list[_Parts]:
    """Approximate split: the label-residual part of ``Var_IF`` is ``σ_e²/m`` with ``σ_e`` the
    calibration's out-of-fold RMSE (pooled over policies)."""
    cal = rep.calibration
    assert cal is not None
    s2 = cal.oof_rmse**2
    k = cal.n_folds
    out = []
    for x in rep.estimates:
        v_b = min(s2 / x.n_labels, x.var_if) if x.n_labels else 0.0
        out.append(_Parts(x.policy, "policy", x.n_prompts, x.n_labels, x.n, None, None, None,
                          x.n_prompts * (x.var_if - v_b), x.n_labels * v_b, x.n_labels * x.var_cal,
                          k, x.se, x.df))
    if contrasts:
        est = {x.policy: x for x in rep.estimates}
        for c in rep.pairs:
            ea, eb = est[c.policy_a], est[c.policy_b]
            m = ea.n_labels + eb.n_labels
            v_b = min(s2 / max(ea.n_labels, 1) + s2 / max(eb.n_labels, 1), c.var_if)
            g = max(ea.n_prompts, eb.n_prompts)
            out.append(_Parts(f"{c.policy_a} − {c.policy_b}", "contrast", g, m, ea.n + eb.n, None,
                              None, None, g * (c.var_if - v_b), m * v_b, m * c.var_cal, k, c.se, c.df))
    return out


# ------------------------------------------------------------------------------ plan
def _check_positive(name: str, value: Any, example: str, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or float(value) <= 0:
        raise CJEInputError(f"{name} must be a positive number; got {value!r}. Example: {example}.")
    return float(value)


def plan(
    data_or_report: Any,
    half_width: float = 0.02,
    alpha: float = 0.05,
    label_cost: float | None = None,
    budget: float | None = None,
    *,
    contrasts: bool = False,
    policies: Any = None,
    level: float = 0.8,
    n_boot: int = 1000,
    seed: int = 0,
    judge_scale: tuple[float, float] | None = None,
    label_scale: tuple[float, float] | None = None,
    mode: str = "auto",
    covariates: Any = (),
    n_folds: int = 5,
    columns: Any = None,
    on_invalid: str = "raise",
    next: int | None = None,  # noqa: A002 (the issue's name for it)
    n_regions: int | None = None,
) -> Plan:
    """How many oracle labels (and prompts) reach a target interval half-width, from a pilot.

    See the module docstring (:mod:`cje.planning`) for the variance model, its assumptions and
    how the plan interval is made; docs: Planning a label budget.

    Parameters
    ----------
    data_or_report : DataFrame, path, EvalData or Report
        The pilot: judged responses with a uniform random slice of oracle labels (anything
        :func:`cje.analyze` reads; the exact split of ``Var_IF``), or the
        :class:`~cje.report.Report` of one (an approximate split: the label part from the
        calibration's out-of-fold RMSE). Direct mode (fresh draws of each policy) only.
    half_width : float
        Target half-width of the ``1 − alpha`` intervals, in label units.
    alpha : float
        Interval level (must match the report's when a report is given).
    label_cost : float, optional
        Cost of one label in judged responses (rows): adds the cheapest design per target and
        for every target at once (``optimal_*``, ``design["optimal"]``).
    budget : float, optional
        Without ``label_cost``: the total labels to buy (all policies, at the pilot's prompts, the
        same share of every policy's rows). With it: the total cost in rows
        (``rows + label_cost·labels``, the cheapest split). Adds ``budget_half_width``.
    contrasts : bool
        Plan the paired contrasts too.
    policies : list of str, optional
        Plan only these policies (and their contrasts).
    level : float
        Level of the plan interval on the labels needed (default 0.8: 10th–90th percentiles).
    n_boot : int
        Draws for the plan interval.
    seed : int
        Seed of those draws, and of the folds when data are given (as in :func:`cje.analyze`).
    judge_scale, label_scale, mode, covariates, n_folds, columns, on_invalid
        As in :func:`cje.analyze` (data only: with a report they would do nothing, and are
        refused).
    next : int, optional
        Active labelling (data only): choose about ``next`` currently unlabelled rows to send
        for labels next (:attr:`Plan.next_labels`, :meth:`Plan.next_frame`). Labels are
        allocated across policies to lower the largest predicted variance first (policies
        without labels of their own first), within a policy across judge-score regions where
        the calibration's residual SD is largest (Neyman-like), with
        :data:`DEFENSIVE_SHARE` spread in proportion to the rows; the rows are then drawn by
        Poisson sampling, each with a known probability. Every row's overall probability of
        being labelled in the two rounds, ``π = p0 + (1 − p0)·q`` (``p0`` the pilot's labelled
        share of its policy, ``q`` its cell's round-2 probability), is recorded: analyse the
        second round with it as the ``label_probability`` column (:meth:`Plan.label_design`).
        The number drawn is random, ``next`` on average. Policies without labels are then not
        planned by the variance model (a notice says so). A further round: pass the data of
        the earlier rounds *with* their ``label_probability`` column (``π_before``, on every row
        of the policies planned); the new design composes it, every row's probability over all
        rounds being ``1 − (1 − π_before)·(1 − q)`` (:meth:`Plan.label_design` reads
        ``π_before`` from the data's column). Without ``next=`` such data is refused.
    n_regions : int, optional
        Judge-score regions of the ``next`` design (default: one per 30 pilot labels, 1 to 5;
        equal-count quantiles of the scores).

    Returns
    -------
    Plan

    Raises
    ------
    CJEInputError
        A non-positive ``half_width``/``label_cost``/``budget``, an unknown policy, a pilot
        without oracle labels (or a policy without labels of its own), off-policy data; an
        option that would do nothing: ``n_regions`` without ``next``, or an option that reads
        the data (``judge_scale``, ``label_scale``, ``mode``, ``covariates``, ``n_folds``,
        ``columns``, ``on_invalid``) with a report.

    Examples
    --------
    >>> import cje
    >>> sim = cje.synthetic.make_direct_eval(1000, oracle_fraction=0.05, rng=0)
    >>> p = cje.plan(sim.data, half_width=0.1, judge_scale=(0, 10), label_scale=(1, 5))
    >>> t = p["improved"]
    >>> t.n_labels, t.labels_needed > t.n_labels
    (55, True)
    >>> cje.plan(sim.data, half_width=0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: half_width must be a positive number; got 0. ...
    """
    from cje._checks import check_int, check_str_list

    h = _check_positive("half_width", half_width, "half_width=0.02 (label units)", False)
    assert h is not None
    alpha = check_alpha(alpha)
    label_cost = _check_positive("label_cost", label_cost, "label_cost=20 (a label costs 20 judged "
                                 "responses)")
    budget = _check_positive("budget", budget, "budget=2000 (labels, or rows with label_cost)")
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise CJEInputError(f"level must be a number in (0, 1); got {level!r}. Example: level=0.8.")
    n_boot = check_int("n_boot", n_boot, minimum=10, example="n_boot=1000")
    if next is not None:
        next = check_int("next", next, minimum=1, example="next=200 (rows to label next)")
    if n_regions is not None:
        n_regions = check_int("n_regions", n_regions, minimum=1, example="n_regions=4")
    seed = check_int("seed", seed, example="seed=0")
    if policies is not None:
        policies = check_str_list("policies", policies, example="policies=['base', 'verbose']",
                                  allow_empty=False)
    from cje.report import Report

    notices = [
        "Assumes the second round samples like the pilot: labels a uniform random sample of each "
        "policy's rows (the same share for every policy), the same judge, policies, prompt "
        "distribution and responses per prompt, the same calibration mode and folds.",
        "Model: SE² = a/prompts + (b + c)/labels; a = prompt part of Var_IF, b = its label-"
        "residual part, c = Var_cal (taken to fall like 1/labels). Half-width = t(df)·SE with the "
        "Satterthwaite df at the planned sizes.",
    ]
    if next is not None and isinstance(data_or_report, Report):
        raise CJEInputError("next= chooses rows of the data to label: pass the pilot data (the "
                            "judged rows), not a report.")
    if n_regions is not None and next is None:
        raise CJEInputError(f"n_regions={n_regions} sets the judge-score regions of the next= "
                            "design; without next= there is none. Pass next=N too, or leave "
                            "n_regions out.")
    if isinstance(data_or_report, Report):
        # the options that read the data: the report's analysis already fixed them
        unread = [f"{k}={v!r}" for k, v, d in (
            ("judge_scale", judge_scale, None), ("label_scale", label_scale, None),
            ("mode", mode, "auto"), ("covariates", covariates, ()), ("n_folds", n_folds, 5),
            ("columns", columns, None), ("on_invalid", on_invalid, "raise"))
            if not (v is None or not len(v) if k == "covariates" else v is d or v == d)]
        if unread:
            raise CJEInputError(
                f"{', '.join(unread)} {'reads' if len(unread) == 1 else 'read'} the pilot data; a "
                "report was given, whose analysis already fixed the scales, columns and "
                f"calibration. Leave {'it' if len(unread) == 1 else 'them'} out, or pass the "
                "pilot data instead of the report.")
        rep = data_or_report
        _check_report(rep, policies)
        if abs(rep.alpha - alpha) > 1e-12:
            raise CJEInputError(f"alpha={alpha:g} differs from the report's alpha={rep.alpha:g}; "
                                f"plan with alpha={rep.alpha:g} or re-run cje.analyze.")
        parts = _split_from_report(_only(rep, policies), contrasts)
        source = "report"
        notices.append("From a report: the split of Var_IF into its prompt and label parts is "
                       "approximate (label part = out-of-fold RMSE² / labels, pooled over "
                       "policies), so a policy whose residuals are wider or narrower than the "
                       "pooled ones is planned too low or too high (by a factor of 2–3 when the "
                       "prompt part is small); the plan interval reflects Var_cal's uncertainty "
                       "only. Pass the data for the exact split.")
        prov = dict(rep.provenance)
        settings_in = dict(rep.settings)
    else:
        from cje.analysis import analyze
        from cje.data import load
        from cje.export import provenance

        cov = tuple(check_str_list("covariates", () if covariates is None else covariates,
                                   example="covariates=['response_length']"))
        ev = load(data_or_report, judge_scale=judge_scale, label_scale=label_scale,
                  columns=columns, covariates=cov, on_invalid=on_invalid)
        if ev.logprobs:
            raise CJEInputError(
                "cje.plan covers the direct mode (fresh draws of each policy) for now; this data "
                "is logged (it has log-probabilities), whose off-policy estimators have another "
                "variance. Plan on fresh draws of each policy, or use the report's calibration "
                "share as a guide.")
        if ev.label_probability is not None and next is None:
            raise CJEInputError(
                "cje.plan needs a pilot whose labels are a uniform random sample of each "
                "policy's rows; this one has a non-uniform 'label_probability' column (a second "
                "round, for example), which the variance model does not cover yet. Plan from the "
                "uniform pilot, choose a further round with next= (it keeps the column: every "
                "row's probability over all rounds), or analyse this data with cje.analyze.")
        if ev.n_labels == 0:
            raise CJEInputError(
                "The pilot has no oracle labels, so there is nothing to fit the label part of the "
                "variance on. Label a uniform random sample of the rows first (about 5% or at "
                "least 50 rows per policy), then plan.")
        if policies is not None:
            for p in policies:
                ev.rows_of(p)
        earlier = ev.label_probability is not None  # next= after an earlier non-uniform round
        if earlier:
            notices.append(
                "The data has a non-uniform 'label_probability' column (an earlier round): the "
                "table above reads its labels as a uniform sample, so its numbers are rough; the "
                "next list composes the column, every row's label_probability = 1 − (1 − π_before)"
                "·(1 − q) (Plan.label_design reads π_before from the data's column).")
        for msg in ([] if earlier else _label_selection_notices(ev, policies)):
            notices.append(msg)
            warnings.warn(msg, CJEWarning, stacklevel=2)
        rep = analyze(ev, alpha=alpha, mode=mode, covariates=cov, n_folds=n_folds,  # type: ignore[arg-type]
                      seed=seed, policies=policies)
        nxt = None
        if next is not None:
            nxt = _next_labels(ev, rep, next, mode=mode, covariates=cov, n_folds=n_folds,
                               seed=seed, alpha=alpha, n_regions=n_regions, policies=policies)
            bare = [x.policy for x in rep.estimates if x.n_labels == 0]
            if bare:
                notices.append(
                    f"No labels of their own in the pilot: {', '.join(bare)}. The variance model "
                    "cannot be fitted for them, so they are not in the table; the next list gives "
                    "them labels first.")
                rep = _only(rep, [x.policy for x in rep.estimates if x.n_labels > 0])
                if not rep.estimates:
                    raise CJEInputError("No policy of the pilot has labels of its own.")
        _check_report(rep, policies if next is None else None)
        parts = _split_from_data(ev, rep, alpha=alpha, mode=mode, covariates=cov,
                                 n_folds=n_folds, seed=seed, contrasts=contrasts)
        source = "data"
        prov = provenance({"data": data_or_report})
        settings_in = dict(rep.settings)
    settings = {"half_width": h, "alpha": alpha, "label_cost": label_cost, "budget": budget,
                "contrasts": contrasts, "level": level, "n_boot": n_boot, "seed": seed,
                "analysis": settings_in}
    if next is None:
        return _make_plan(parts, h, alpha, label_cost, budget, level, n_boot, seed, source,
                          notices, settings, prov)
    settings.update(next=next, n_regions=n_regions)
    notices.append(
        "Next labels: drawn by Poisson sampling (each row independently, with its cell's "
        "probability), so their number is random around next=. Analyse the second round with "
        "every row's label_probability = p0 + (1 − p0)·q (Plan.label_design), pilot rows included."
        if not (nxt or {}).get("earlier") else
        "Next labels: drawn by Poisson sampling (each row independently, with its cell's "
        "probability), so their number is random around next=. Analyse the data with every row's "
        "label_probability = 1 − (1 − π_before)·(1 − q) from Plan.label_design (the cells' π above "
        "are means over their rows), earlier labels included.")
    out = _make_plan(parts, h, alpha, label_cost, budget, level, n_boot, seed, source, notices,
                     settings, prov)
    from dataclasses import replace

    return replace(out, next_labels=nxt)


#: Family-wise level of the check that a pilot's labels look like a uniform random sample.
SELECTION_ALPHA: float = 0.001


def _label_selection_notices(ev: Any, policies: Any) -> list[str]:
    """A notice per policy whose labelled rows' judge scores differ from its unlabelled rows'.

    The plan assumes the pilot's labels are a uniform random sample of each policy's rows; labels
    chosen by score (the top rows, the rows a reviewer found interesting) break it, and the plan
    can be far off (labels on the top 6% of one policy's rows made it ask for 16 times the labels
    a uniform pilot of the same size asked for). Two-sample Kolmogorov–Smirnov test of the
    labelled against the unlabelled scores of each policy (5 or more of each), Bonferroni across
    policies at :data:`SELECTION_ALPHA`: a uniform sample trips it with probability at most 0.001.
    """
    from scipy.stats import ks_2samp

    found = []
    for p in (ev.policies if policies is None else policies):
        rows = ev.rows_of(p)
        s = ev.judge_score[rows]
        lab = ~np.isnan(ev.oracle_label[rows])
        if lab.sum() >= 5 and (~lab).sum() >= 5:
            r = ks_2samp(s[lab], s[~lab])
            found.append((p, float(r.statistic), float(r.pvalue), float(s[lab].mean()),
                          float(s[~lab].mean())))
    level = SELECTION_ALPHA / max(len(found), 1)
    return [
        f"The pilot's labels of {p} do not look like a uniform random sample of its rows: the "
        f"labelled rows' judge scores differ from the unlabelled rows' (KS D = {d:.2f}, p = "
        f"{pv:.1g}; mean {m1:.3g} vs {m0:.3g}). The plan assumes a uniform sample and can be far "
        "off without one: label a uniform random sample of the rows and plan from that."
        for p, d, pv, m1, m0 in found if pv < level
    ]


def _only(rep: Report, policies: Any) -> Report:
    if policies is None:
        return rep
    from dataclasses import replace

    keep = set(policies)
    return replace(rep, estimates=tuple(x for x in rep.estimates if x.policy in keep),
                   pairs=tuple(c for c in rep.pairs if c.policy_a in keep and c.policy_b in keep))


def _check_report(rep: Report, policies: Any) -> None:
    names = [x.policy for x in rep.estimates]
    for p in policies or ():
        if p not in names:
            raise CJEInputError(f"policies: no policy {p!r} in the pilot; it has {names}.")
    if rep.calibration is None or any(x.status == "UNCALIBRATED" for x in rep.estimates):
        raise CJEInputError(
            "The pilot is not calibrated (fewer than 4 labelled prompts, or no oracle labels): "
            "there is no label part of the variance to fit. Label a uniform random sample of the "
            "rows first (about 5%, at least 50 rows per policy), then plan.")
    for x in rep.estimates:
        if policies is not None and x.policy not in policies:
            continue
        if x.method != "direct":
            raise CJEInputError(
                f"cje.plan covers the direct mode (fresh draws of each policy, method 'direct') "
                f"for now; policy {x.policy!r} was estimated by {x.method!r}. Off-policy plans "
                "are not supported yet.")
        if x.n_labels == 0:
            raise CJEInputError(
                f"Policy {x.policy!r} has no oracle labels of its own, so the plan cannot fit its "
                "label part (the model assumes every policy's labels are a random sample of its "
                f"rows). Label some of its rows, or leave it out with policies=[...].")
        if x.var_transport > 0 or "probe_labels" in x.diagnostics:
            raise CJEInputError(f"Policy {x.policy!r} has a probe or transport term; cje.plan "
                                "does not model it yet. Plan without probes.")


def _make_plan(parts: list[_Parts], h: float, alpha: float, label_cost: float | None,
               budget: float | None, level: float, n_boot: int, seed: int, source: str,
               notices: list[str], settings: dict[str, Any], prov: dict[str, Any]) -> Plan:
    rng = np.random.default_rng(seed)
    q_lo, q_hi = (1 - level) / 2, 1 - (1 - level) / 2
    # draws of the components: prompt-cluster bootstrap of a and b, scaled χ² of c
    draws: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for pt in parts:
        if pt.u is not None and pt.w is not None and pt.d is not None and pt.g > 1:
            wts = rng.multinomial(pt.g, np.full(pt.g, 1 / pt.g), size=n_boot).astype(float)
            f = pt.g / (pt.g - 1)
            per = pt.u * pt.u + 2 * pt.u * pt.w + (pt.w * pt.w - pt.d)
            # (+ what the point's a holds beyond the per-prompt sums: a contrast's own_pairs)
            a_s = pt.g * f * (wts @ per) + (pt.a - pt.g * f * float(per.sum()))
            dd = float(pt.d.sum())  # b's draws: its factors kept, the label part resampled
            b_s = pt.b * (wts @ pt.d) / dd if dd > 0 else np.full(n_boot, pt.b)
        else:
            a_s, b_s = np.full(n_boot, pt.a), np.full(n_boot, pt.b)
        c_s = pt.c * (pt.k - 1) / rng.chisquare(max(pt.k - 1, 1), n_boot) if pt.c > 0 \
            else np.zeros(n_boot)
        neg = a_s < 0  # as for the estimate: a negative prompt part moves to the label part
        b_s = np.where(neg, b_s + a_s * pt.m / pt.g, b_s)
        draws.append((np.maximum(a_s, 0.0), np.maximum(b_s, 0.0), c_s))

    targets: list[PlanTarget] = []
    need_draws = []
    for pt, (a_s, b_s, c_s) in zip(parts, draws, strict=True):
        a, b = pt.a, pt.b
        note = ""
        if a < 0:
            # the cross term 2·Cov(R, e)/n is estimated on the labelled rows only and can outweigh
            # Var(R)/n where R hardly varies (paired contrasts): the whole Var_IF is then taken to
            # fall with the labels (keeps the pilot's SE; the conservative direction)
            b, a = b + a * pt.m / pt.g, 0.0
            note = ("The prompt part of Var_IF came out negative (a noisy covariance term); all "
                    "of Var_IF is taken to fall with the labels. ")
        pt.a, pt.b = a, b
        m_max = pt.rows
        need = float(_labels_for(a, b, pt.c, pt.k, pt.g, h, alpha, m_max))
        nd = _labels_for(a_s, b_s, c_s, pt.k, pt.g, h, alpha, m_max)
        need_draws.append(nd)
        lo_q, hi_q = np.quantile(nd, [q_lo, q_hi], method="inverted_cdf")  # inf-safe
        share = pt.m / pt.g
        n_more = _prompts_for(a, b, pt.c, pt.k, share, h, alpha)
        if not math.isfinite(need):
            alone = float(_t(max(pt.g - 1, 1), alpha) * math.sqrt(a / pt.g))
            if math.isfinite(lo_q):
                note += (f"Labels alone may not reach ±{h:g} at {pt.g:,} prompts: at the estimate "
                         f"they cannot (the prompt part alone gives ±{alone:.4f}), but within the "
                         f"{level:.0%} plan interval {_ceil(float(lo_q)):,} labels could ({_UNSURE}); "
                         "buy prompts too, or label more rows of these prompts to settle it.")
            else:
                note += (f"Labels alone cannot reach ±{h:g} at {pt.g:,} prompts (the prompt part "
                         f"alone gives ±{alone:.4f}); buy prompts too.")
        opt = (None, None, float("nan"))
        if label_cost is not None:
            opt = _cheapest([(a, b, pt.c, pt.k, pt.rows / pt.g)], h, alpha, label_cost)
        targets.append(PlanTarget(
            target=pt.name, kind=pt.kind, n_prompts=pt.g, n_labels=pt.m, n_rows=pt.rows,
            a=a, b=b, c=pt.c, k=pt.k, se=pt.se, df=pt.df,
            half_width=float(_t(pt.df, alpha) * pt.se),
            labels_needed=_ceil(need), labels_needed_low=_ceil(float(lo_q)),
            labels_needed_high=_ceil(float(hi_q)),
            prompts_needed=_ceil(n_more),
            prompts_needed_labels=_ceil(share * n_more) if math.isfinite(n_more) else None,
            optimal_prompts=opt[0], optimal_labels=opt[1], optimal_cost=opt[2], note=note))
    # one design for every target: the same label share of every policy's rows, pilot prompts
    rows_total = sum(t.n_rows for t in targets if t.kind == "policy")
    pol = [i for i, t in enumerate(targets) if t.kind == "policy"]
    share_need = [(_labels_for(targets[i].a, targets[i].b, targets[i].c, targets[i].k,
                               targets[i].n_prompts, h, alpha, targets[i].n_rows).item()
                   / targets[i].n_rows) for i in range(len(targets))]
    j = int(np.argmax(share_need))
    f = share_need[j]
    # the plan interval of the binding target (the maximum over every target's draws would be
    # biased upwards: the largest of several noisy estimates)
    flo, fhi = np.quantile(need_draws[j] / targets[j].n_rows, [q_lo, q_hi], method="inverted_cdf")
    n_pr = max(targets[i].n_prompts for i in pol) if pol else targets[0].n_prompts
    design: dict[str, Any] = {
        "n_prompts": n_pr, "binding": targets[j].target, "reachable": bool(math.isfinite(f)),
        "label_share": f if math.isfinite(f) else None,
        "n_labels": _ceil(f * rows_total) if math.isfinite(f) else None,
        "n_labels_low": _ceil(float(flo) * rows_total),
        "n_labels_high": _ceil(float(fhi) * rows_total),
        "predicted": {t.target: (float(half_width_at(t.a, t.b, t.c, t.k, t.n_prompts,
                                                      min(f, 1.0) * t.n_rows, alpha)[0])
                                 if math.isfinite(f) else None) for t in targets},
    }
    comps = [(t.a, t.b, t.c, t.k, t.rows_per_prompt) for t in targets]
    if label_cost is not None:
        n_o, m_o, cost, share_o = _cheapest_joint(comps, h, alpha, label_cost, rows_total / n_pr
                                                  if n_pr else 1.0)
        design["optimal"] = {"n_prompts": n_o, "n_labels": m_o, "cost": cost,
                             "label_share": share_o}
    if budget is not None:
        bd = _budget_design(comps, targets, alpha, label_cost, budget, rows_total, n_pr)
        design["budget"] = bd
        targets = [_replace(t, budget_half_width=bd["half_widths"][t.target]) for t in targets]
    return Plan(targets=tuple(targets), half_width=h, alpha=alpha, level=level,
                label_cost=label_cost, budget=budget, design=design, source=source,
                notices=tuple(notices), settings=settings, provenance=prov)


def _replace(t: PlanTarget, **kw: Any) -> PlanTarget:
    from dataclasses import replace

    return replace(t, **kw)


def _joint_prompts(comps: list[tuple[float, float, float, int, float]], share: Any, h: float,
                   alpha: float) -> Any:
    """Prompts so that every target reaches ``h`` when ``share`` of every row is labelled
    (vectorised over ``share``)."""
    return np.max([_prompts_for(a, b, c, k, np.asarray(share) * r, h, alpha)
                   for a, b, c, k, r in comps], axis=0)


def _cheapest(comps: list[tuple[float, float, float, int, float]], h: float, alpha: float,
              label_cost: float) -> tuple[int | None, int | None, float]:
    n, m, cost, _ = _cheapest_joint(comps, h, alpha, label_cost, comps[0][4])
    return n, m, cost


def _cheapest_joint(comps: list[tuple[float, float, float, int, float]], h: float, alpha: float,
                    label_cost: float, rows_per_prompt: float
                    ) -> tuple[int | None, int | None, float, float | None]:
    """Minimise ``rows + label_cost·labels`` over the label share of the rows: a log grid, then
    a finer one around its best point (the cost is flat near its minimum)."""
    def best(grid: np.ndarray) -> tuple[int, np.ndarray]:
        n = _joint_prompts(comps, grid, h, alpha)
        cost = n * rows_per_prompt * (1 + label_cost * grid)
        return int(np.argmin(cost)), cost

    grid = np.geomspace(1e-4, 1.0, 121)
    i, cost = best(grid)
    if not math.isfinite(cost[i]):
        return None, None, float("nan"), None
    fine = np.geomspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], 81)
    j, _ = best(fine)
    s = float(fine[j])
    n = float(_joint_prompts(comps, s, h, alpha))
    n_i = _ceil(n)
    assert n_i is not None
    m_i = _ceil(s * n * rows_per_prompt)
    return n_i, m_i, float(n_i * rows_per_prompt + label_cost * (m_i or 0)), s


def _budget_design(comps: list[tuple[float, float, float, int, float]],
                   targets: list[PlanTarget], alpha: float, label_cost: float | None,
                   budget: float, rows_total: int, n_pilot: int) -> dict[str, Any]:
    """The design a budget buys and every target's half-width under it."""
    rpp = rows_total / n_pilot if n_pilot else 1.0

    def widths(n: float, share: float) -> dict[str, float]:
        return {t.target: float(half_width_at(t.a, t.b, t.c, t.k, n, share * r, alpha)[0])
                for t, (_, _, _, _, r) in zip(targets, comps, strict=True)}

    if label_cost is None:
        share = min(budget / rows_total, 1.0)
        n = float(n_pilot)
    else:  # the share whose widest half-width is smallest, at the prompts the rest buys
        grid = np.geomspace(1e-4, 1.0, 400)
        n_s = budget / (rpp * (1 + label_cost * grid))
        worst = np.max([half_width_at(t.a, t.b, t.c, t.k, n_s, grid * r * n_s, alpha)[0]
                        for t, (_, _, _, _, r) in zip(targets, comps, strict=True)], axis=0)
        share = float(grid[int(np.argmin(worst))])
        n = budget / (rpp * (1 + label_cost * share))
    hw = widths(n, share)
    widest = max(hw, key=lambda k: hw[k])
    return {"n_prompts": int(math.floor(n)), "n_labels": int(math.floor(share * n * rpp)),
            "label_share": share, "half_widths": hw, "max_half_width": hw[widest],
            "widest": widest}


def _next_summary(nl: dict[str, Any]) -> list[str]:
    """The text of the next list: per policy, then per cell."""
    head = ["policy", "pilot labels", "new (expected)", "new (drawn)", "±now", "± predicted"]
    rows = []
    for x in nl["policies"]:
        now = x["half_width_now"]
        rows.append([x["policy"], f"{x['pilot_labels']:,}", f"{x['expected_new']:.0f}",
                     f"{x['selected']:,}",
                     "—" if now is None or x["pilot_labels"] == 0 else f"{now:.4f}",
                     f"{x['half_width_predicted']:.4f}"])
    widths = [max(len(str(v)) for v in col) for col in zip(head, *rows, strict=False)]
    out = [f"Next labels: {nl['selected']:,} rows drawn (about {nl['requested']:,} asked; Poisson "
           f"sampling, seed {nl['seed']}), in {len(nl['cuts']) + 1} judge-score region(s) per "
           "policy:", "",
           "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    out += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    out += ["", "Design (per policy and judge-score region: rows, pilot labels, residual SD, "
            "round-2 probability q, overall label_probability π):"]
    for c in nl["cells"]:
        out.append(f"  {c['label_stratum']} [{c['score_low']:g}, {c['score_high']:g}]: "
                   f"{c['rows']:,} rows, {c['pilot_labels']:,} labels, SD {c['residual_sd']:.3f}, "
                   f"q = {c['round2_probability']:.4f}, π = {c['label_probability']:.4f}")
    return out


# ------------------------------------------------------------------------------ active labelling
#: Share of each policy's round-2 labels spread in proportion to its unlabelled rows (the rest
#: follows the variance-driven allocation): keeps every row's probability at least 0.2 of the
#: policy's uniform rate, so no weight 1/π is more than 5 times the uniform one.
DEFENSIVE_SHARE = 0.2
#: Pilot labels per judge-score region wanted when the regions are chosen (at most 5 regions).
_LABELS_PER_REGION = 30


def _regions(scores: np.ndarray, n_labels: int, n_regions: int | None) -> np.ndarray:
    """Interior cut points of the judge-score regions: equal-count quantiles of every row's score
    (ties kept together, so a coarse judge may give fewer regions)."""
    h = n_regions if n_regions is not None else int(np.clip(n_labels // _LABELS_PER_REGION, 1, 5))
    if h <= 1:
        return np.zeros(0)
    cuts = np.unique(np.quantile(scores, np.linspace(0, 1, h + 1)[1:-1], method="inverted_cdf"))
    # a cut equal to the largest score would leave an empty top region
    return cuts[cuts < scores.max()]


def _region_of(scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.searchsorted(cuts, scores, side="right")


def _predicted_var(N: np.ndarray, M: np.ndarray, sigma: np.ndarray, A: np.ndarray,
                   C: np.ndarray, L0: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Each policy's predicted variance after ``k`` new labels per (policy, region) cell.

    ``A_p + C_p·Σ_h (N_ph/n_p)·((L0_h + 1)/(L0_h + 1 + K_h))² + Σ_h N_ph² σ_h² / (M_ph + k_ph) / n_p²``:
    the prompt part; the calibration part, spread over the judge-score regions where the policy's
    rows lie and falling in each with the labels there (``L0_h`` the pilot's, ``K_h`` the new
    ones, all policies: the calibration is shared) like 1/labels²: with the policy's own residual
    correction the calibration's error enters only to second order (the pilot plan above takes
    the cautious 1/labels; ``C_p = 0`` for a policy without pilot
    labels, see :func:`_next_labels`); the residual part of the π-weighted estimator (a
    stratified mean's variance; infinite while a cell with rows has no label).
    """
    n = N.sum(axis=1)
    K = k.sum(axis=0)
    w = N / np.maximum(n, 1)[:, None]
    cal = C * (w * ((L0 + 1) / (L0 + 1 + K)) ** 2).sum(axis=1)
    m = M + k
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.where(N > 0, N**2 * sigma**2 / m, 0.0)
        res = np.where((N > 0) & (m <= 0), np.inf, res)
    return A + cal + res.sum(axis=1) / np.maximum(n, 1) ** 2


def _allocate(N: np.ndarray, M: np.ndarray, sigma: np.ndarray, A: np.ndarray, C: np.ndarray,
              L0: np.ndarray, budget: int, scale: np.ndarray | None = None) -> np.ndarray:
    """Round-2 labels per (policy, region) cell: greedy minimax of the predicted variance.

    The predicted variance is :func:`_predicted_var`. In chunks of about ``budget/400`` labels
    the policy with the largest predicted variance gets a chunk, in the region where it lowers
    that variance most (Neyman-like for the residual part: ``N_ph² σ_h² (1/m − 1/(m+Δ))``; and
    where its calibration is least certain). A cell without labels has infinite variance, so
    policies without labels of their own are served first, in every region. The design is the
    defensive mixture: :data:`DEFENSIVE_SHARE` of each policy's new labels spread over its
    regions in proportion to their unlabelled rows, the rest where the greedy put them; the
    variances are evaluated on it.

    Parameters
    ----------
    N, M : numpy.ndarray of shape (P, H)
        Rows and pilot labels per cell.
    sigma : numpy.ndarray of shape (H,)
        Residual SD per region.
    A, C : numpy.ndarray of shape (P,)
        Prompt part and calibration part of each policy's variance in the pilot.
    L0 : numpy.ndarray of shape (H,)
        Pilot labels per region (all policies).
    budget : int
        New labels to place.
    scale : numpy.ndarray of shape (P,), optional
        Per policy, the pilot's own variance over the model's at the pilot's labels (1 for a
        policy without labels): the model, fitted with residual SDs pooled over policies, is
        anchored at each policy's measured variance.

    Returns
    -------
    numpy.ndarray of shape (P, H)
        Expected new labels per cell (real-valued, at most its unlabelled rows).

    Examples
    --------
    >>> N = np.array([[500., 500.], [500., 500.]]); M = np.array([[25., 25.], [0., 0.]])
    >>> k = _allocate(N, M, np.array([0.05, 0.5]), np.zeros(2), np.zeros(2), M.sum(0), 200)
    >>> bool(k[1].sum() > k[0].sum()), bool(k[1, 1] > 4 * k[1, 0])   # the unlabelled policy
    (True, True)
    """
    P, H = N.shape
    U = N - M
    k = np.zeros((P, H))
    sc = np.ones(P) if scale is None else scale
    with np.errstate(divide="ignore", invalid="ignore"):
        prop = np.where(U.sum(axis=1, keepdims=True) > 0, U / U.sum(axis=1, keepdims=True), 0.0)

    def design(kk: np.ndarray) -> np.ndarray:  # the defensive mixture of the greedy part
        return (1 - DEFENSIVE_SHARE) * kk + DEFENSIVE_SHARE * kk.sum(axis=1, keepdims=True) * prop

    def var(kk: np.ndarray) -> np.ndarray:
        return sc * _predicted_var(N, M, sigma, A, C, L0, design(kk))

    step = max(1.0, budget / 400)
    spent = 0.0
    while spent < budget - 1e-9:
        room = U - k > 1e-9
        v = np.where(room.any(axis=1), var(k), -np.inf)
        if np.all(v == -np.inf):
            break  # no unlabelled row left anywhere
        p = int(np.argmax(v))
        d = min(step, budget - spent)
        open_ = np.flatnonzero(room[p] & (N[p] > 0))
        empty = open_[(M[p] + k[p])[open_] <= 0]
        if empty.size:  # a cell without any label yet: the largest first
            h = int(empty[np.argmax(N[p, empty])])
        else:
            after = np.full(H, np.inf)
            for h in open_:
                kk = k.copy()
                kk[p, h] += min(d, U[p, h] - k[p, h])
                after[h] = var(kk)[p]
            h = int(np.argmin(after))
        add = min(d, U[p, h] - k[p, h])
        k[p, h] += add
        spent += add
    return np.minimum(design(k), U)


def _next_labels(ev: Any, rep: Report, n_next: int, *, mode: str, covariates: tuple[str, ...],
                 n_folds: int, seed: int, alpha: float, n_regions: int | None,
                 policies: Any) -> dict[str, Any]:
    """The rows to send for labels next, drawn by Poisson sampling with recorded probabilities
    (see :func:`plan`, ``next=``)."""
    t, _, reward, labelled, e = _pilot_fit(ev, mode=mode, covariates=covariates,
                                           n_folds=n_folds, seed=seed)
    lo, hi = ev.label_scale
    width = hi - lo
    inside = ev.policy_code >= 0
    scores = ev.judge_score
    cuts = _regions(scores[inside], int(ev.n_labels), n_regions)
    H = cuts.size + 1
    region = _region_of(scores, cuts)
    lab = ev.labelled
    # residual SD per region (label units), pooled over policies; a region with fewer than 10
    # labels takes the pooled value; every region at least a tenth of the largest
    e_row = np.full(ev.n_rows, np.nan)
    e_row[t.train] = e[t.train] * width
    pooled = float(np.sqrt(np.nanmean(e_row[lab] ** 2)))
    sigma = np.full(H, pooled)
    for h in range(H):
        r = lab & (region == h)
        if r.sum() >= 10:
            sigma[h] = float(np.sqrt(np.mean(e_row[r] ** 2)))
    sigma = np.maximum(sigma, 0.1 * sigma.max()) if sigma.max() > 0 else np.full(H, 1.0)
    names = list(ev.policies)
    chosen = [i for i, nm in enumerate(names) if policies is None or nm in policies]
    P = len(chosen)
    N = np.zeros((P, H))
    M = np.zeros((P, H))
    for j, p in enumerate(chosen):
        rows = ev.policy_code == p
        N[j] = np.bincount(region[rows], minlength=H)
        M[j] = np.bincount(region[rows & lab], minlength=H)
    est = {x.policy: x for x in rep.estimates}
    G = ev.prompts.shape[0]
    A = np.zeros(P)
    C = np.zeros(P)
    for j, p in enumerate(chosen):
        rows = np.flatnonzero(ev.policy_code == p)
        r = reward[rows] * width
        u = np.bincount(t.cluster[rows], weights=r - r.mean(), minlength=G) / rows.size
        g = int(np.count_nonzero(np.bincount(t.cluster[rows], minlength=G)))
        A[j] = g / max(g - 1, 1) * float(u @ u)
        # a policy without labels: its pilot Var_cal measures the transported calibration; once
        # it has labels of its own, its residual term cancels the calibration's error to first
        # order (a labelled policy's Var_cal is small), so none is carried over
        C[j] = est[names[p]].var_cal if names[p] in est and M[j].sum() > 0 else 0.0
    unl = N - M
    prev = ev.label_probability  # an earlier non-uniform round: every row's probability so far
    planned = np.isin(ev.policy_code, chosen)
    if prev is not None and (planned & ~np.isfinite(prev)).any():
        i = int(np.flatnonzero(planned & ~np.isfinite(prev))[0])
        raise CJEInputError(
            "next= after an earlier round needs the earlier 'label_probability' on every row of "
            f"the policies planned, labelled or not (Plan.label_design gives it); row {i} "
            f"(policy {names[int(ev.policy_code[i])]!r}) has none. The new design composes it: "
            "1 − (1 − π_before)·(1 − q).")
    if n_next > unl.sum():
        raise CJEInputError(f"next={n_next} is more than the {int(unl.sum())} unlabelled rows of "
                            f"the policies planned; ask for at most {int(unl.sum())}.")
    L0 = np.bincount(region[lab & inside], minlength=H).astype(float)
    n_pol = N.sum(axis=1)
    # the model over the cells the pilot labelled (the others have no variance estimate now)
    seen = (N > 0) & (M > 0)
    wgt = N / np.maximum(n_pol, 1)[:, None]

    def part(kk: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            cal = C * (wgt * ((L0 + 1) / (L0 + 1 + kk.sum(axis=0))) ** 2).sum(axis=1)
            res = np.where(seen, N**2 * sigma**2 / (M + kk), 0.0).sum(axis=1)
        return A + cal + res / np.maximum(n_pol, 1) ** 2

    model_now = part(np.zeros((P, H)))
    scale = np.ones(P)
    for j, p in enumerate(chosen):
        x = est.get(names[p])
        if x is not None and M[j].sum() > 0 and np.isfinite(model_now[j]) and model_now[j] > 0:
            scale[j] = x.se**2 / model_now[j]
    k = _allocate(N, M, sigma, A, C, L0, n_next, scale)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.clip(np.where(unl > 0, k / unl, 0.0), 0.0, 1.0)
    p0 = np.where(n_pol > 0, M.sum(axis=1) / np.maximum(n_pol, 1), 0.0)
    pi = p0[:, None] + (1 - p0[:, None]) * q  # every row's overall inclusion probability
    # Poisson sampling of the unlabelled rows of each cell with probability q
    rng = np.random.default_rng(seed)
    code_of = {p: j for j, p in enumerate(chosen)}
    pj = np.array([code_of.get(int(c), -1) for c in range(-1, len(names))])[ev.policy_code + 1]
    cand = np.flatnonzero((pj >= 0) & ~lab)
    draw = rng.random(cand.size)
    pick = cand[draw < q[pj[cand], region[cand]]]
    # every row's overall probability: the pilot's uniform share p0 and this round's q, or, after
    # an earlier non-uniform round, 1 − (1 − π_before)(1 − q) (not labelled in any round)
    q_row = np.where(pj >= 0, q[np.maximum(pj, 0), region], 0.0)
    if prev is None:
        pi_row = np.where(pj >= 0, pi[np.maximum(pj, 0), region], np.nan)
    else:
        pi_row = 1.0 - (1.0 - prev) * (1.0 - q_row)
    # t quantile: the pilot's df for a policy with labels; a policy without labels gets its own
    # residual term, whose df are those of its many prompts (the normal quantile, nearly)
    tq = _t(np.maximum(np.array([est[names[p]].df if names[p] in est and M[j].sum() > 0 else 1e6
                                 for j, p in enumerate(chosen)]), 1.0), alpha)
    K = float(k.sum())
    after = tq * np.sqrt(_predicted_var(N, M, sigma, A, C, L0, k))
    # how much the new labels narrow the pilot's own interval (cells the pilot labelled)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(part(k) / model_now)
    now_model = tq * np.sqrt(model_now)

    def stratum(j: int, h: int) -> str:
        return f"{names[chosen[j]]} | score region {h + 1}/{H}"

    edges = [float(scores[inside].min()), *[float(c) for c in cuts], float(scores[inside].max())]
    cells = []
    for j in range(P):
        for h in range(H):
            if N[j, h] == 0:
                continue
            cells.append({"policy": names[chosen[j]], "region": h + 1,
                          "score_low": edges[h], "score_high": edges[h + 1],
                          "rows": int(N[j, h]), "pilot_labels": int(M[j, h]),
                          "residual_sd": float(sigma[h]), "expected_new": float(k[j, h]),
                          "selected": int(np.count_nonzero((pj[pick] == j) & (region[pick] == h))),
                          "round2_probability": float(q[j, h]),
                          # after an earlier round: the mean over the cell's rows
                          "label_probability": float(pi[j, h] if prev is None else np.mean(
                              pi_row[(pj == j) & (region == h)])),
                          "label_stratum": stratum(j, h)})
    pol = []
    for j, p in enumerate(chosen):
        x = est.get(names[p])
        pol.append({"policy": names[p], "pilot_labels": int(M[j].sum()),
                    "pilot_probability": float(p0[j]), "expected_new": float(k[j].sum()),
                    "selected": int(np.count_nonzero(pj[pick] == j)),
                    "half_width_now": float(_t(x.df, alpha) * x.se) if x is not None else None,
                    "half_width_model_now": float(now_model[j]),
                    # with labels: the pilot's own half-width scaled by the model's ratio (the
                    # regional model need not reproduce it); without: the model's value
                    "half_width_predicted": float(
                        _t(x.df, alpha) * x.se * ratio[j]
                        if x is not None and M[j].sum() > 0 and np.isfinite(ratio[j])
                        else after[j])})
    order = np.lexsort((ev.draw_idx[pick], ev.prompt_id[pick].astype(str), ev.policy_code[pick]))
    pick = pick[order]
    rows_out = {
        "prompt_id": [str(v) for v in ev.prompt_id[pick]],
        "policy": [names[int(c)] for c in ev.policy_code[pick]],
        "draw_idx": [int(v) for v in ev.draw_idx[pick]],
        "judge_score": [float(v) for v in scores[pick]],
        "label_probability": [float(pi_row[i]) for i in pick],
        "label_stratum": [stratum(int(pj[i]), int(region[i])) for i in pick],
    }
    # policies left out with policies=[...]: no round-2 labels, so their probability is the
    # pilot's labelled share
    others = {names[p]: float(np.mean(lab[ev.policy_code == p])) for p in range(len(names))
              if p not in code_of}
    # after an earlier round, label_design reads π_before from the data: per policy its rows and
    # their sum, to check that it is given the column the plan was made from
    earlier = None if prev is None else {
        names[p]: [int(np.count_nonzero(ev.policy_code == p)),
                   float(np.nansum(prev[ev.policy_code == p]))] for p in range(len(names))}
    return {"requested": int(n_next), "selected": int(pick.size), "expected": K, "seed": int(seed),
            "other_policies": others, "earlier": earlier,
            "cuts": [float(c) for c in cuts], "policies": pol, "cells": cells, "rows": rows_out,
            "defensive_share": DEFENSIVE_SHARE}
