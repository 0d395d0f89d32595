"""The result type shared by every judge-bias diagnostic (METHODS §7)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

__all__ = ["BiasResult", "BiasAudit", "require_columns"]


@dataclass(frozen=True)
class BiasResult:
    """One bias test: an effect with a confidence interval, a test, a flag and a mitigation.

    Attributes
    ----------
    bias : str
        ``"position"``, ``"verbosity"`` or ``"self_preference"``.
    method : str
        Which estimator produced it, e.g. ``"slot log-odds (conditional logit), exact McNemar"``.
    effect : float
        The effect estimate, in the units named by ``effect_name``.
    effect_name : str
        What ``effect`` measures and its units, e.g. ``"judge points per SD of log length"``.
    ci_low, ci_high : float
        ``1 − alpha`` confidence interval of ``effect``.
    alpha : float
    p_value : float
        Two-sided p-value of "no bias".
    p_holm : float
        Holm-adjusted p-value across the tests of one audit (equals ``p_value`` when run alone).
    flagged : bool
        The bias is flagged by the rule documented for this test.
    n : int
        Observations used (pairs, rows…).
    n_prompts : int
        Distinct prompts (clusters).
    judge : str or None
        The judge tested (panels: one result per judge).
    mitigation : str
        What to do about it, concretely.
    details : dict
        Extra statistics of the test (e.g. position consistency, preference fairness).
    warnings : tuple of str

    Examples
    --------
    >>> from cje.bias import position
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
    ...                          prompt_noise=0.5, rng=0)
    >>> r = position(sim.pairs, n_bootstrap=200, rng=0)
    >>> r.bias, r.flagged, r.n, r.n_prompts
    ('position', True, 1200, 200)
    >>> bool(r.ci_low < 0.5 < r.ci_high), r.p_holm == r.p_value   # planted: 0.5; run alone
    (True, True)
    >>> round(r.details["pc"], 2)   # position consistency
    0.87
    """

    bias: str
    method: str
    effect: float
    effect_name: str
    ci_low: float
    ci_high: float
    alpha: float
    p_value: float
    p_holm: float
    flagged: bool
    n: int
    n_prompts: int
    judge: str | None = None
    mitigation: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def with_holm(self, p_holm: float, flagged: bool) -> BiasResult:
        """A copy with the audit's Holm-adjusted p-value and the flag recomputed from it.

        Parameters
        ----------
        p_holm : float
            The Holm-adjusted p-value across the audit's tests.
        flagged : bool
            The test's flag, recomputed by the caller with ``p_holm``.

        Returns
        -------
        BiasResult

        Examples
        --------
        >>> r = BiasResult("position", "demo", 0.4, "slot log-odds", 0.1, 0.7, 0.05,
        ...                p_value=0.02, p_holm=0.02, flagged=True, n=100, n_prompts=50)
        >>> adj = r.with_holm(0.06, flagged=False)   # two more tests in the audit
        >>> adj.p_holm, adj.flagged, adj.p_value, r.p_holm
        (0.06, False, 0.02, 0.02)
        """
        return replace(self, p_holm=float(p_holm), flagged=bool(flagged))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready).

        Returns
        -------
        dict
            One key per field.

        Examples
        --------
        >>> r = BiasResult("position", "demo", 0.4, "slot log-odds", 0.1, 0.7, 0.05,
        ...                p_value=0.02, p_holm=0.02, flagged=True, n=100, n_prompts=50)
        >>> d = r.to_dict()
        >>> d["bias"], d["effect"], d["flagged"], d["details"]
        ('position', 0.4, True, {})
        """
        return asdict(self)


@dataclass(frozen=True)
class BiasAudit:
    """Every bias test the data allowed, Holm-adjusted across them.

    Attributes
    ----------
    results : tuple of BiasResult
    skipped : tuple of str
        Tests not run and why (e.g. which columns were missing).
    alpha : float
    tests : tuple of str
        The test that produced each result (e.g. ``"verbosity (pairwise)"``).

    Examples
    --------
    >>> from cje.bias import audit
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
    ...                          prompt_noise=0.5, rng=0)
    >>> a = audit(pairs=sim.pairs, n_bootstrap=200, rng=0)
    >>> a.tests, [r.flagged for r in a.results]
    (('position', 'verbosity (pairwise)'), [True, False])
    >>> len(a.skipped)   # self-preference needs model families
    1
    """

    results: tuple[BiasResult, ...]
    skipped: tuple[str, ...] = ()
    alpha: float = 0.05
    tests: tuple[str, ...] = ()

    def _names(self) -> tuple[str, ...]:
        return self.tests if len(self.tests) == len(self.results) else tuple(
            r.bias for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready).

        Returns
        -------
        dict
            ``alpha``, ``results`` (each result's fields plus its ``test``) and ``skipped``.

        Examples
        --------
        >>> from cje.bias import audit
        >>> from cje.synthetic.pairwise import make_pairwise_eval
        >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
        ...                          prompt_noise=0.5, rng=0)
        >>> d = audit(pairs=sim.pairs, n_bootstrap=200, rng=0).to_dict()
        >>> list(d), [(r["test"], r["flagged"]) for r in d["results"]]
        (['alpha', 'results', 'skipped'], [('position', True), ('verbosity (pairwise)', False)])
        """
        return {"alpha": self.alpha,
                "results": [{"test": t, **r.to_dict()} for t, r in zip(self._names(), self.results,
                                                                        strict=True)],
                "skipped": list(self.skipped)}

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict`.

        Parameters
        ----------
        **kwargs
            Passed to :func:`json.dumps` (``indent`` defaults to 2).

        Returns
        -------
        str
            numpy values inside ``details`` are written as plain numbers and lists.

        Examples
        --------
        >>> import json
        >>> from cje.bias import audit
        >>> from cje.synthetic.pairwise import make_pairwise_eval
        >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
        ...                          prompt_noise=0.5, rng=0)
        >>> text = audit(pairs=sim.pairs, n_bootstrap=200, rng=0).to_json()
        >>> round(json.loads(text)["results"][0]["details"]["pc"], 2)
        0.87
        """
        import json

        kwargs.setdefault("indent", 2)
        return json.dumps(self.to_dict(), default=_plain, **kwargs)

    def to_pandas(self) -> Any:
        """One row per test.

        Returns
        -------
        pandas.DataFrame
            ``test``, the :class:`BiasResult` fields (``warnings`` joined by ``"; "``) and one
            ``detail_<name>`` column per entry of ``details``.

        Examples
        --------
        >>> from cje.bias import audit
        >>> from cje.synthetic.pairwise import make_pairwise_eval
        >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
        ...                          prompt_noise=0.5, rng=0)
        >>> t = audit(pairs=sim.pairs, n_bootstrap=200, rng=0).to_pandas()
        >>> print(t[["test", "effect", "ci_low", "ci_high", "flagged"]].round(2)
        ...       .to_string(index=False))
                        test  effect  ci_low  ci_high  flagged
                    position    0.55    0.40     0.75     True
        verbosity (pairwise)    0.00   -0.02     0.02    False
        """
        import pandas as pd

        rows = []
        for t, r in zip(self._names(), self.results, strict=True):
            d = {"test": t, **r.to_dict()}
            d["warnings"] = "; ".join(r.warnings)
            details = d.pop("details")
            d.update({f"detail_{k}": v for k, v in details.items()})
            rows.append(d)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """A readable table: effect, CI, p, flag and mitigation per bias (and per judge).

        Returns
        -------
        str
            What ``print(audit)`` shows.

        Examples
        --------
        >>> from cje.bias import audit
        >>> from cje.synthetic.pairwise import make_pairwise_eval
        >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
        ...                          prompt_noise=0.5, rng=0)
        >>> text = audit(pairs=sim.pairs, n_bootstrap=200, rng=0).summary()
        >>> print("\\n".join(text.splitlines()[:6]))
        Judge bias audit (2 tests, Holm-adjusted; 95% CIs)
        <BLANKLINE>
        test                       judge             effect                95% CI   p_holm  flag
        ----------------------------------------------------------------------------------------
        position                   —                 +0.545      [+0.396, +0.752] 5.28e-10  FLAG
        verbosity (pairwise)       —                 +0.002      [-0.016, +0.022]    0.827  ok
        """
        level = int(round(100 * (1 - self.alpha)))
        out = [f"Judge bias audit ({len(self.results)} tests, Holm-adjusted; {level}% CIs)", ""]
        head = f"{'test':<26} {'judge':<14} {'effect':>9} {f'{level}% CI':>21} {'p_holm':>8}  flag"
        out += [head, "-" * len(head)]
        for t, r in zip(self._names(), self.results, strict=True):
            ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            out.append(
                f"{t:<26} {str(r.judge or '—')[:14]:<14} {r.effect:>+9.3f} {ci:>21} "
                f"{r.p_holm:>8.3g}  {'FLAG' if r.flagged else 'ok'}"
            )
        out.append("")
        for t, r in zip(self._names(), self.results, strict=True):
            who = f" ({r.judge})" if r.judge else ""
            out.append(f"{t}{who}: {r.effect_name}; {r.method}; n = {r.n}.")
            if r.flagged:
                out.append(f"  mitigation: {r.mitigation}")
            out += [f"  ! {w}" for w in r.warnings]
        if self.skipped:
            out += ["", "Not run:"] + [f"  - {s}" for s in self.skipped]
        return "\n".join(out)

    def __str__(self) -> str:
        return self.summary()

    def plot(self, ax: Any = None) -> Any:
        """Each test's effect with its CI, one panel per test (:func:`cje.plots.bias_plot`).

        Parameters
        ----------
        ax : matplotlib Axes, optional
            Where to draw (a bounding box when there are several tests); a new figure if ``None``.

        Returns
        -------
        matplotlib.axes.Axes

        Examples
        --------
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import matplotlib.pyplot as plt
        >>> from cje.bias import audit
        >>> from cje.synthetic.panel import make_panel_eval
        >>> ax = audit(make_panel_eval(150, length_effect=0.3, rng=1).data, rng=0).plot()
        >>> ax.get_title()
        'Judge bias audit: 4 tests, 95% CIs, Holm-adjusted'
        >>> plt.close(ax.figure)
        """
        from cje.plots import bias_plot

        return bias_plot(self, ax=ax)


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays inside ``details``."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def require_columns(frame_columns: Sequence[str], needed: Sequence[str], what: str) -> None:
    """Raise a clear error naming every missing column a test needs.

    Examples
    --------
    >>> require_columns(["prompt_id", "winner"], ["prompt_id", "a_id", "winner"], "position bias")
    Traceback (most recent call last):
    ...
    cje.errors.CJEInputError: position bias needs columns prompt_id, a_id, winner; missing: a_id.
    """
    from cje.errors import CJEInputError

    missing = [c for c in needed if c not in frame_columns]
    if missing:
        raise CJEInputError(
            f"{what} needs columns {', '.join(needed)}; missing: {', '.join(missing)}."
        )


def as_frame(data: Any) -> Any:
    """A pandas DataFrame from pandas, polars, a dict of arrays or a file path.

    Files are read by :func:`cje.readers.read_table`, the reader :func:`cje.load` uses: the same
    formats (those registered with :func:`cje.readers.register_reader` included), ids read as the
    exact text written (``1.10`` and ``1.1`` stay distinct), and the same errors, naming the file
    and the line. A cje-eval fresh-draws directory (one file per policy) is read by
    :func:`cje.load` itself: its flat table, with ``response_length`` derived when possible.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = pathlib.Path(d) / "scores.csv"
    ...     _ = p.write_text("prompt_id,policy,judge,judge_score\\n007,1.10,j,0.5\\n7,1.1,j,0.2\\n")
    ...     df = as_frame(p)
    >>> df["prompt_id"].tolist(), df["policy"].tolist()
    (['007', '7'], ['1.10', '1.1'])
    """
    import pandas as pd

    if isinstance(data, pd.DataFrame):
        return data
    mod = type(data).__module__
    if mod.startswith("polars") and hasattr(data, "to_pandas"):
        return data.to_pandas()
    if isinstance(data, dict):  # as cje.load reads a dict: equal lengths, mixed ids kept as given
        from cje.data import _columns_of

        return pd.DataFrame(_columns_of(data))
    import os
    from pathlib import Path

    if isinstance(data, (str, os.PathLike)):
        from cje.readers import read_table, reader_for

        p = Path(data)
        if p.is_dir() and reader_for(p).name == "fresh-draws":  # read as cje.load does
            return _flat_from_load(p)
        return read_table(p).to_pandas()
    from cje.errors import CJEInputError

    raise CJEInputError(
        f"Cannot read data of type {type(data).__name__}: pass a pandas or polars DataFrame, a "
        "dict of arrays, a .jsonl/.csv/.parquet path or a directory of fresh draws."
    )


def _flat_from_load(path: Any) -> Any:
    """The flat table (:func:`cje.export.flat_table`) of a directory :func:`cje.load` reads,
    with ``response_length`` derived from the response text when there is one."""
    from cje.data import load
    from cje.errors import CJEInputError
    from cje.export import flat_table

    try:
        data = load(path, covariates=("response_length",))
    except CJEInputError as exc:  # no response text: the tests that need a length say so
        if "response_length" not in str(exc):
            raise
        data = load(path)
    return flat_table(data)
