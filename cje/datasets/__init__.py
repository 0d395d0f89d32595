"""Real data shipped with ``cje``: the Arena sample, loadable without any download.

The **Arena sample** is a real LLM-evaluation sample built from Chatbot Arena prompts, published
with the open-source ``cje`` project of CIMO Labs (https://github.com/cimo-labs/cje, MIT licence)
and described in the CJE paper (Landesberg and Narayan, arXiv 2512.11150). Judge scores come from
a small LLM judge; oracle labels from a much stronger model (the paper's stand-in for human
ground truth); both are on a 0–1 scale. Its licence and credit are in
``cje/datasets/arena/LICENSE`` and ``cje/datasets/arena/README.md``.

Four policies: ``base`` (the logging policy), ``clone`` (same model and prompt as base),
``parallel_universe_prompt`` (another system prompt) and ``unhelpful`` (a deliberately unhelpful
system prompt that fools the judge; very poor overlap with base).

* fresh draws: 1000 responses per policy, 480 oracle labels on ``base``;
* logged data: the 1000 base responses with their log-probability under base and each target;
* probe slices: 50 oracle-labelled responses of each target (transport audits).

The packaged copy keeps ids (exact strings), ``draw_idx``, judge scores, oracle labels,
log-probabilities and ``response_length`` (whitespace words of each response); the prompt and
response texts are left out. Analyses give the same numbers as on the original files.
``cje/datasets/_build_arena.py`` rebuilds it from them.

Examples
--------
In memory (pandas frames):

>>> import cje
>>> from cje import datasets
>>> ds = datasets.arena()
>>> ds.fresh_draws.groupby("policy").size().to_dict()
{'base': 1000, 'clone': 1000, 'parallel_universe_prompt': 1000, 'unhelpful': 1000}
>>> [c for c in ds.logged.columns if c.startswith("logprob")]
['logprob_base', 'logprob[clone]', 'logprob[parallel_universe_prompt]', 'logprob[unhelpful]']
>>> report = cje.analyze(ds.fresh_draws, probes=ds.probes, transport_margin=0.05)
>>> report["unhelpful"].status   # its 50 probe labels correct its level ...
'OK'
>>> {a.policy: a.verdict for a in report.audits}["unhelpful"]   # ... though its audit fails
'FAIL'

As files in the formats ``cje analyze`` reads (what ``cje datasets export arena DIR`` writes):

>>> import tempfile
>>> files = datasets.export(tempfile.mkdtemp())
>>> sorted(p.name for p in files.fresh_draws.iterdir())  # doctest: +NORMALIZE_WHITESPACE
['base_responses.jsonl', 'clone_responses.jsonl', 'parallel_universe_prompt_responses.jsonl',
 'unhelpful_responses.jsonl']
>>> report = cje.analyze(files.logged, fresh_draws=files.fresh_draws, estimator="calibrated-ips")
>>> report["unhelpful"].status
'REFUSED'
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cje.errors import CJEInputError

__all__ = ["Arena", "ArenaFiles", "arena", "export", "names"]

_HERE = Path(__file__).resolve().parent
_ARENA_DIR = _HERE / "arena"
#: Policies of the Arena sample, logging policy first.
ARENA_POLICIES = ("base", "clone", "parallel_universe_prompt", "unhelpful")
ARENA_TARGETS = ARENA_POLICIES[1:]
_DATASETS = ("arena",)


def names() -> tuple[str, ...]:
    """Names of the data sets shipped with ``cje``.

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> from cje import datasets
    >>> datasets.names()
    ('arena',)
    """
    return _DATASETS


@dataclass(frozen=True)
class Arena:
    """The Arena sample as pandas frames (see :func:`arena`).

    Attributes
    ----------
    fresh_draws : DataFrame
        Long format, one row per response: ``policy, prompt_id, draw_idx, judge_score,
        oracle_label`` (NaN where unlabelled), ``response_length``; 1000 rows per policy.
    logged : DataFrame
        The logging policy's 1000 responses: ``prompt_id, policy`` (``"base"``), ``judge_score,
        oracle_label, response_length, logprob_base`` and ``logprob[<target>]`` per target.
    probes : dict of str to DataFrame
        Each target's probe slice (50 oracle-labelled responses), columns as ``fresh_draws``.
    policies, targets : tuple of str
        All four policies (``base`` first) and the three targets.
    source : str
        Where the data come from and under which licence.

    Examples
    --------
    >>> from cje import datasets
    >>> ds = datasets.arena()
    >>> ds.targets
    ('clone', 'parallel_universe_prompt', 'unhelpful')
    >>> list(ds.fresh_draws.columns)
    ['policy', 'prompt_id', 'draw_idx', 'judge_score', 'oracle_label', 'response_length']
    """

    fresh_draws: Any
    logged: Any
    probes: dict[str, Any]
    policies: tuple[str, ...] = ARENA_POLICIES
    targets: tuple[str, ...] = ARENA_TARGETS
    source: str = field(default="Arena sample of the cje project of CIMO Labs (MIT licence); "
                                "arXiv 2512.11150")


@dataclass(frozen=True)
class ArenaFiles:
    """Where :func:`export` wrote the Arena sample.

    Attributes
    ----------
    root : Path
        The directory.
    fresh_draws : Path
        ``root/fresh_draws``: a cje-eval fresh-draws directory (``<policy>_responses.jsonl``).
    logged : Path
        ``root/logged_data.jsonl``: cje-eval logged data (log-probabilities under base and each
        target).
    probes : dict of str to Path
        ``root/probe_slice/<target>_probe.jsonl`` per target.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from cje import datasets
    >>> root = Path(tempfile.mkdtemp())
    >>> files = datasets.export(root)
    >>> files.logged == root / "logged_data.jsonl", files.probes["clone"].name
    (True, 'clone_probe.jsonl')
    """

    root: Path
    fresh_draws: Path
    logged: Path
    probes: dict[str, Path]


def _read(name: str) -> Any:
    import pandas as pd

    path = _ARENA_DIR / f"{name}.parquet"
    if not path.is_file():  # pragma: no cover - an install without the package data
        raise FileNotFoundError(
            f"The packaged Arena sample is missing ({path}); reinstall cje (pip install cje) or "
            "rebuild it with python -m cje.datasets._build_arena SOURCE_DIR."
        )
    frame = pd.read_parquet(path)
    for col in ("policy", "prompt_id"):  # plain strings, not categoricals
        if col in frame.columns:
            frame[col] = frame[col].astype(object)
    return frame


def arena() -> Arena:
    """Load the Arena sample shipped with ``cje`` as pandas frames.

    Returns
    -------
    Arena
        ``fresh_draws`` (long format, all four policies), ``logged`` (base responses with
        ``logprob_base`` and ``logprob[<target>]``) and ``probes`` (one frame per target); each
        of them is a valid input of :func:`cje.analyze` (``data``, ``fresh_draws=``,
        ``probes=``).

    Examples
    --------
    >>> from cje import datasets
    >>> ds = datasets.arena()
    >>> ds.logged.shape, int(ds.logged.oracle_label.notna().sum())
    ((1000, 9), 480)
    >>> {p: len(f) for p, f in ds.probes.items()}
    {'clone': 50, 'parallel_universe_prompt': 50, 'unhelpful': 50}
    """
    fresh = _read("fresh_draws")
    logged = _read("logged_data")
    logged.insert(1, "policy", ARENA_POLICIES[0])
    probe = _read("probe_slice")
    probes = {t: probe[probe.policy == t].reset_index(drop=True) for t in ARENA_TARGETS}
    return Arena(fresh_draws=fresh, logged=logged, probes=probes)


def _line(rec: dict[str, Any]) -> str:
    # json writes the shortest text that parses back to the same float64 (repr), so the files
    # hold exactly the packaged numbers.
    return json.dumps(rec, ensure_ascii=False, allow_nan=False)


def _draw_lines(frame: Any) -> str:
    out = []
    for r in frame.itertuples(index=False):
        rec: dict[str, Any] = {"prompt_id": r.prompt_id, "judge_score": float(r.judge_score),
                               "draw_idx": int(r.draw_idx)}
        if r.oracle_label == r.oracle_label:  # not NaN: unlabelled rows carry no oracle_label
            rec["oracle_label"] = float(r.oracle_label)
        rec["response_length"] = int(r.response_length)
        out.append(_line(rec))
    return "\n".join(out) + "\n"


def _logged_lines(frame: Any) -> str:
    out = []
    for r in frame.to_dict("records"):
        rec: dict[str, Any] = {
            "base_policy_logprob": float(r["logprob_base"]),
            "target_policy_logprobs": {t: float(r[f"logprob[{t}]"]) for t in ARENA_TARGETS},
            "metadata": {"prompt_id": r["prompt_id"]},
            "judge_score": float(r["judge_score"]),
        }
        if r["oracle_label"] == r["oracle_label"]:
            rec["oracle_label"] = float(r["oracle_label"])
        rec["response_length"] = int(r["response_length"])
        out.append(_line(rec))
    return "\n".join(out) + "\n"


def export(directory: str | Path = "arena", name: str = "arena", *, overwrite: bool = False) -> ArenaFiles:
    """Write a shipped data set as files in the cje-eval formats that ``cje analyze`` reads.

    Writes ``fresh_draws/<policy>_responses.jsonl``, ``logged_data.jsonl`` and
    ``probe_slice/<target>_probe.jsonl`` under ``directory`` (created if needed). Running it
    again on the same directory is harmless: files that already hold exactly this content are
    left as they are.

    Parameters
    ----------
    directory : str or Path, default "arena"
        Where to write (relative to the current directory unless absolute).
    name : str, default "arena"
        Which data set (see :func:`names`).
    overwrite : bool, default False
        Replace files of the same names whose content differs. Without it such a file is
        refused, never silently replaced.

    Returns
    -------
    ArenaFiles
        The paths written: ``root``, ``fresh_draws`` (directory), ``logged``, ``probes``.

    Raises
    ------
    CJEInputError
        For an unknown ``name``, or an existing file of different content without
        ``overwrite=True``.

    Examples
    --------
    >>> import tempfile
    >>> from cje import datasets
    >>> files = datasets.export(tempfile.mkdtemp())
    >>> files.logged.name, sorted(files.probes)
    ('logged_data.jsonl', ['clone', 'parallel_universe_prompt', 'unhelpful'])
    """
    if name not in _DATASETS:
        raise CJEInputError(
            f"name={name!r} is not a data set shipped with cje; the data sets are "
            f"{list(_DATASETS)}."
        )
    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise CJEInputError(
            f"directory={str(directory)!r} exists and is not a directory; give a new or existing "
            "directory to write the Arena sample into."
        )
    ds = arena()
    files = ArenaFiles(
        root=root,
        fresh_draws=root / "fresh_draws",
        logged=root / "logged_data.jsonl",
        probes={t: root / "probe_slice" / f"{t}_probe.jsonl" for t in ARENA_TARGETS},
    )
    content: dict[Path, str] = {}
    for p in ARENA_POLICIES:
        content[files.fresh_draws / f"{p}_responses.jsonl"] = _draw_lines(
            ds.fresh_draws[ds.fresh_draws.policy == p])
    content[files.logged] = _logged_lines(ds.logged)
    for t in ARENA_TARGETS:
        content[files.probes[t]] = _draw_lines(ds.probes[t])
    # Check every file before writing any, so that a refusal leaves nothing half-written.
    if not overwrite:
        for path, text in content.items():
            if path.exists() and (not path.is_file() or path.read_text(encoding="utf-8") != text):
                raise CJEInputError(
                    f"'{path}' already exists with other content; export the Arena sample to a "
                    "new directory, or pass overwrite=True (cje datasets export --force) to "
                    "replace it."
                )
    for path, text in content.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not (path.is_file() and path.read_text(encoding="utf-8") == text):
            path.write_text(text, encoding="utf-8")
    return files
