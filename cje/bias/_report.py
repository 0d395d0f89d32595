"""The bias audit's report: every test's :class:`~cje.results.BiasResult`, read as a summary,
a frame, JSON and a figure.

The bias room's presentation, as :class:`cje.report.Report` is the analysis's: built by
:func:`cje.bias.audit`, it may call :mod:`cje.plots`; the bias tests themselves import none of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cje.results import BiasResult

__all__ = ["BiasAudit"]


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
    provenance : dict
        What made the audit (:func:`cje.export.provenance`: cje and library versions, inputs
        with their SHA-256, UTC time); empty when not recorded, in which case :meth:`to_json`
        records the versions and time of writing. Not compared by ``==`` (it holds a time).

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
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def _names(self) -> tuple[str, ...]:
        return self.tests if len(self.tests) == len(self.results) else tuple(
            r.bias for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready).

        Returns
        -------
        dict
            ``alpha``, ``results`` (each result's fields plus its ``test`` and ``verdict``:
            ``"bias"``, ``"no relevant bias"`` or ``"inconclusive"``, see
            :attr:`BiasResult.verdict`), ``skipped`` and ``provenance``.

        Examples
        --------
        >>> from cje.bias import audit
        >>> from cje.synthetic.pairwise import make_pairwise_eval
        >>> sim = make_pairwise_eval(200, strengths=[3, 1, -1, -3], position_logodds=0.5,
        ...                          prompt_noise=0.5, rng=0)
        >>> d = audit(pairs=sim.pairs, n_bootstrap=200, rng=0).to_dict()
        >>> list(d), [(r["test"], r["flagged"]) for r in d["results"]]
        (['alpha', 'results', 'skipped', 'provenance'], [('position', True), ('verbosity (pairwise)', False)])
        """
        return {"alpha": self.alpha,
                "results": [{"test": t, **r.to_dict(), "verdict": r.verdict}
                            for t, r in zip(self._names(), self.results, strict=True)],
                "skipped": list(self.skipped), "provenance": dict(self.provenance)}

    def to_json(self, **kwargs: Any) -> str:
        """JSON text of :meth:`to_dict`; an audit without recorded provenance gets one made at
        writing (versions and time; ``inputs`` empty), so the file always says what wrote it.

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
        >>> sorted(json.loads(text)["provenance"])[:2]
        ['cje_version', 'created_utc']
        """
        import json

        kwargs.setdefault("indent", 2)
        d = self.to_dict()
        if not d["provenance"]:
            from cje.export import provenance

            d["provenance"] = provenance()
        return json.dumps(d, default=_json_number, **kwargs)

    def to_pandas(self) -> Any:
        """One row per test.

        Returns
        -------
        pandas.DataFrame
            ``test``, the :class:`BiasResult` fields (``warnings`` joined by ``"; "``), its
            ``verdict`` and one ``detail_<name>`` column per entry of ``details``.

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
                    position    0.55    0.39     0.75     True
        verbosity (pairwise)    0.00   -0.02     0.02    False
        """
        import pandas as pd

        rows = []
        for t, r in zip(self._names(), self.results, strict=True):
            d = {"test": t, **r.to_dict(), "verdict": r.verdict}
            d["warnings"] = "; ".join(r.warnings)
            details = d.pop("details")
            d.update({f"detail_{k}": v for k, v in details.items()})
            rows.append(d)
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """A readable table: effect, CI, p, flag and mitigation per bias (and per judge).

        The last column reads ``FLAG`` (flagged), ``ok`` (not flagged *and* the CI lies inside the
        test's negligible band: a relevant bias is ruled out) or ``unclear`` (not flagged, but the
        CI still reaches relevant effects: too little data to say; :attr:`BiasResult.verdict`).

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
        position                   —                 +0.545      [+0.393, +0.752] 8.61e-09  FLAG
        verbosity (pairwise)       —                 +0.002      [-0.016, +0.022]    0.827  ok
        """
        from cje._text import level_text, visible

        level = level_text(self.alpha)[:-1]  # 97.5 for alpha = 0.025, never rounded to 98
        # judges' names are never cut: 'claude-3-5-sonnet-20240620' and '…-20241022' would
        # print as one judge
        jw = max([14, *(len(visible(r.judge)) for r in self.results if r.judge)])
        out = [f"Judge bias audit ({len(self.results)} tests, Holm-adjusted; {level}% CIs)", ""]
        head = f"{'test':<26} {'judge':<{jw}} {'effect':>9} {f'{level}% CI':>21} {'p_holm':>8}  flag"
        out += [head, "-" * len(head)]
        for t, r in zip(self._names(), self.results, strict=True):
            ci = f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            out.append(
                f"{t:<26} {visible(r.judge or '—'):<{jw}} {r.effect:>+9.3f} {ci:>21} "
                f"{r.p_holm:>8.3g}  {_MARK[r.verdict]}"
            )
        out.append("")
        for t, r in zip(self._names(), self.results, strict=True):
            who = f" ({r.judge})" if r.judge else ""
            out.append(f"{t}{who}: {r.effect_name}; {r.method}; n = {r.n}.")
            if r.flagged:
                out.append(f"  mitigation: {r.mitigation}")
            elif r.verdict == "inconclusive":
                out.append(f"  ? inconclusive: not flagged, but the {level}% CI still reaches effects "
                           "counted as practically relevant; this is not evidence of no bias "
                           "(more prompts, or more pairs judged in both orders, would tell).")
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


#: The summary's last column per :attr:`BiasResult.verdict`: "ok" only when the CI rules out a
#: practically relevant effect.
_MARK = {"bias": "FLAG", "no relevant bias": "ok", "inconclusive": "unclear", "not flagged": "-"}


def _json_number(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays inside ``details``."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
