"""Run ``cje-eval==0.3.0``'s stacked DR on label-masked copies of the Arena sample.

Run by ``benchmarks/arena_masked.py`` with the cje-eval virtualenv's interpreter (see
``benchmarks/cje_eval_030_offpolicy.py`` for how to make it)::

    /work/venvs/cje-eval-030/bin/python benchmarks/cje_eval_030_masked.py DIR [DIR ...]

Each DIR holds ``logged_data.jsonl`` and ``fresh_draws/`` (as written by ``arena_masked.py``).
Prints one JSON object on stdout: ``{DIR: {policy: {estimate, se, ci95, status}}}``, every
option of ``analyze_dataset`` at its default, as in ``cje_eval_030_offpolicy.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cje_eval_030_offpolicy import _jsonable, _run_once, _summarise  # noqa: E402


def main(argv: list[str]) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.ERROR)
    out = {}
    with contextlib.redirect_stdout(sys.stderr):
        for d in argv:
            res, elapsed, _ = _run_once("stacked-dr", Path(d))
            pol = _summarise("stacked-dr", res)["policies"]
            out[d] = {p: {k: e.get(k) for k in ("estimate", "se", "ci95", "status")} | {"seconds": elapsed}
                      for p, e in pol.items()}
    print(json.dumps(_jsonable(out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
