"""``cje.bias.audit``: every bias test the columns allow, Holm-adjusted across them."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from cje._progress import check_progress, progress_iter
from cje.bias._report import BiasAudit
from cje.bias._result import BiasResult, as_frame
from cje.errors import CJEInputError, CJEWarning, check_alpha
from cje.inference import check_n_bootstrap
from cje.pairwise.verdicts import PAIR_COLUMNS

__all__ = ["audit", "PAIR_COLUMNS"]

#: Bootstrap replicates when ``n_bootstrap`` is not given (``cje bias --bootstrap``'s default).
DEFAULT_BOOTSTRAP = 2000


# test name -> (columns it needs, what to add when missing)
_NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "position": (PAIR_COLUMNS, "pairwise verdicts in both orders"),
    "verbosity (pairwise)": (PAIR_COLUMNS + ("human_winner", "len_a", "len_b"),
                             "human verdicts and both responses' lengths"),
    "self-preference (pairwise)": (PAIR_COLUMNS + ("human_winner", "a_family", "b_family",
                                                   "judge_family"),
                                   "human verdicts and the model families of items and judge"),
    "verbosity": (("prompt_id", "judge_score", "oracle_label", "response_length"),
                  "oracle labels on some rows and response lengths"),
    "self-preference": (("prompt_id", "judge", "judge_score", "judge_family", "policy_family"),
                        "a judge column with judge and generator families"),
}


def audit(
    data: Any = None,
    *,
    pairs: Any = None,
    alpha: float = 0.05,
    n_bootstrap: int | None = None,
    rng: int | np.random.Generator | None = None,
    judge_column: str = "judge",
    progress: bool | None = None,
) -> BiasAudit:
    """Run every judge-bias test the columns allow, one per judge, Holm-adjusted across them.

    Parameters
    ----------
    data : DataFrame, dict of arrays or path, optional
        Pointwise judge scores in long format (``prompt_id, policy, judge_score,
        oracle_label?, response_length?``, and for panels ``judge, judge_family,
        policy_family``), or pairwise verdicts (``prompt_id, a_id, b_id, slot_a, winner``, …),
        recognised by their columns. A directory of cje-eval fresh draws
        (``<policy>_responses.jsonl``) is read as :func:`cje.load` reads it, with
        ``response_length`` counted from the response text.
    pairs : DataFrame, dict of arrays or path, optional
        Pairwise verdicts, when ``data`` holds the pointwise scores.
    alpha : float
        Family-wise level: a bias is flagged when its Holm-adjusted p-value is below ``alpha``
        and the effect is practically relevant (each test documents its threshold).
    n_bootstrap : int, optional
        Bootstrap replicates of the tests that use one (default 2000): the pairwise verbosity
        test, and the position test when prompts hold several pairs or runs repeat an order.
    rng : int, Generator or None
        Seed of those bootstraps; each test gets its own stream (``SeedSequence.spawn``).
        ``n_bootstrap`` or ``rng`` given when no test that ran draws a bootstrap has no effect:
        a :class:`~cje.errors.CJEWarning` says so and the provenance's ``options`` record it
        under ``not_applied`` (its entry ``None``); ``cje bias`` refuses ``--bootstrap`` and
        ``--seed`` then.
    judge_column : str
        Name of the column identifying the judge, if not ``judge``. With both inputs, one
        without that column (and without a ``judge`` column) is taken as one judge's, e.g.
        pairwise verdicts of one judge beside a panel's scores; refused when no input has it.
    progress : bool, optional
        A progress bar over the tests: ``None`` (default) on a terminal once the audit has run
        for a second, ``True`` always, ``False`` never.

    Returns
    -------
    BiasAudit
        Results (effect, CI, p, Holm p, flag, mitigation per bias and judge) and the tests that
        were not run with the reason (the missing columns). ``provenance["options"]`` holds the
        options as applied.

    Examples
    --------
    >>> from cje.synthetic.pairwise import make_pairwise_eval
    >>> sim = make_pairwise_eval(200, position_logodds=0.5, rng=1)
    >>> a = audit(pairs=sim.pairs, n_bootstrap=200, rng=0)
    >>> [(r.bias, r.flagged) for r in a.results if r.bias == "position"]
    [('position', True)]
    """
    if data is None and pairs is None:
        raise CJEInputError("audit needs data: pass pointwise scores, pairs=, or both.")
    check_progress(progress)
    # checked here, before any test: inside a test a bad value only made the tests that use it
    # "not run" while the others' results came out
    alpha = check_alpha(alpha)
    if n_bootstrap is not None:
        n_bootstrap = check_n_bootstrap(n_bootstrap, minimum=50)
    given = {k: v for k, v in (("n_bootstrap", n_bootstrap), ("rng", rng)) if v is not None}
    n_bootstrap = DEFAULT_BOOTSTRAP if n_bootstrap is None else n_bootstrap
    inputs = {"data": data, "pairs": pairs}  # as given, for the provenance
    point = None if data is None else as_frame(data)
    pairs_name = "pairs="
    if point is not None and set(PAIR_COLUMNS) - {"prompt_id"} <= set(point.columns):
        if pairs is not None:
            raise CJEInputError("Both data and pairs= hold pairwise verdicts; pass one of them.")
        point, pairs, pairs_name = None, point, "data (pairwise verdicts)"
    pair = None if pairs is None else as_frame(pairs)
    point, pair = _rename_judge({"data": point, pairs_name: pair}, judge_column)
    seeds = iter(np.random.SeedSequence(_entropy(rng)).spawn(64))

    from cje.bias.pairwise_tests import excess_length_preference, self_preference_gap
    from cje.bias.position import position
    from cje.bias.self_preference import self_preference
    from cje.bias.verbosity import verbosity

    def boot(fn: Callable[..., BiasResult]) -> Callable[..., BiasResult]:
        return lambda df, judge: fn(df, alpha=alpha, n_bootstrap=n_bootstrap,
                                    rng=np.random.default_rng(next(seeds)), judge=judge)

    plan: list[tuple[str, Any, Callable[..., Any], bool]] = []
    if pair is not None:
        plan += [
            ("position", pair, boot(position), True),
            ("verbosity (pairwise)", pair, boot(excess_length_preference), True),
            ("self-preference (pairwise)", pair,
             lambda df, judge: self_preference_gap(df, alpha=alpha, judge=judge), True),
        ]
    if point is not None:
        plan += [
            ("verbosity", _with_length(point),
             lambda df, judge: verbosity(df, alpha=alpha, judge=judge), True),
            # the labelled design controls for length too: counted from the text when only
            # a response column holds it, as for verbosity
            ("self-preference", _with_length(point),
             lambda df, judge: self_preference(df, alpha=alpha), False),
        ]

    results: list[BiasResult] = []
    names: list[str] = []
    skipped: list[str] = []
    for name, frame, run, per_judge in progress_iter(plan, progress, desc="bias tests",
                                                     unit="test"):
        needs, what = _NEEDS[name]
        missing = [c for c in needs if c not in frame.columns]
        if missing:
            skipped.append(f"{name}: needs {what}; missing column(s) {', '.join(missing)}.")
            continue
        judges = (sorted(frame["judge"].dropna().astype(str).unique())
                  if per_judge and "judge" in frame.columns else [None])
        for judge in judges:
            try:
                out = run(frame, judge)
            except CJEInputError as exc:
                who = f" (judge {judge})" if judge else ""
                skipped.append(f"{name}{who}: {exc}")
                continue
            got = out if isinstance(out, list) else [out]
            results.extend(got)
            names.extend([name] * len(got))
    if not results:
        raise CJEInputError(
            "No bias test could run on these data. " + " ".join(skipped) + " Each test needs its "
            "own kind of data: position bias, pairwise verdicts (pairs=); verbosity, oracle labels "
            "on two or more responses to the same prompt; self-preference, judge and generator "
            "families. For data on which all three run: cje.synthetic.make_pairwise_eval(300, "
            "rng=0).pairs (docs: Judge bias)."
        )
    from cje.export import provenance

    prov = provenance(inputs)
    prov["options"] = {"alpha": alpha, "n_bootstrap": n_bootstrap, "judge_column": judge_column,
                       "rng": rng if rng is None or isinstance(rng, int) else type(rng).__name__}
    if given and not any(_draws_bootstrap(r) for r in results):
        # no test that ran resamples: the options changed nothing (said, and not recorded as if
        # applied)
        unused = {k: prov["options"][k] for k in given}
        prov["options"].update(dict.fromkeys(unused), not_applied=unused)
        ran = ", ".join(dict.fromkeys(names))
        warnings.warn(f"{' and '.join(f'{k}={v!r}' for k, v in unused.items())} "
                      f"{'has' if len(unused) == 1 else 'have'} no effect: no test that ran ({ran}) "
                      "draws a bootstrap (only the pairwise verbosity test does, and the position "
                      "test when prompts hold several pairs or runs repeat an order).",
                      CJEWarning, stacklevel=2)
    return dataclasses.replace(_holm(results, names, skipped, alpha), provenance=prov)


def _draws_bootstrap(result: BiasResult) -> bool:
    """Whether a test's result rests on a bootstrap (its interval, or the flip rates')."""
    return "bootstrap" in str(result.details.get("ci_method", "")) or \
        "excess_flip_ci_low" in result.details


def _holm(results: list[BiasResult], names: list[str], skipped: list[str], alpha: float
          ) -> BiasAudit:
    from cje.inference import holm

    adj = holm([r.p_value for r in results]) if results else np.array([])
    done = [
        r.with_holm(p, bool(p < alpha and r.details.get("practically_relevant", True)))
        for r, p in zip(results, adj, strict=True)
    ]
    return BiasAudit(results=tuple(done), skipped=tuple(skipped), alpha=alpha, tests=tuple(names))


def _rename_judge(frames: dict[str, Any], judge_column: str) -> list[Any]:
    """Each input's ``judge_column`` renamed ``judge``. An input without it is one judge's when it
    has no ``judge`` column either (kept as it is: pairwise verdicts of one judge beside a panel's
    scores); refused when no input has it, or when an input has a ``judge`` column instead (which
    one is meant is unclear), naming the input and its columns."""
    if judge_column == "judge":
        return list(frames.values())
    given = {what: f for what, f in frames.items() if f is not None}
    if not any(judge_column in f.columns for f in given.values()):
        raise CJEInputError(
            f"judge_column={judge_column!r} is not a column of "
            + "; nor of ".join(f"{what} (columns {sorted(map(str, f.columns))})"
                               for what, f in given.items()) + ". Name the column that holds "
            "each row's judge, or leave judge_column out (default 'judge').")
    out = []
    for what, frame in frames.items():
        if frame is not None and judge_column in frame.columns:
            frame = frame.rename(columns={judge_column: "judge"})
        elif frame is not None and "judge" in frame.columns:
            raise CJEInputError(
                f"judge_column={judge_column!r} is not a column of {what}, which has a 'judge' "
                f"column instead (columns {sorted(map(str, frame.columns))}); name the judge "
                "column alike in every input.")
        out.append(frame)
    return out


def _with_length(frame: Any) -> Any:
    """Derive ``response_length`` (whitespace words) from ``response`` when only that exists."""
    if "response_length" not in frame.columns and "response" in frame.columns:
        words = frame["response"].map(lambda r: len(r.split()) if isinstance(r, str) else np.nan)
        frame = frame.assign(response_length=words)
    return frame


def _entropy(rng: int | np.random.Generator | None) -> Any:
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**63 - 1))
    return rng
