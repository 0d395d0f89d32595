"""Write a synthetic cje-eval fresh-draws directory at scale (issue #18: reading benchmark).

One ``<policy>_responses.jsonl`` per policy, each line as in the Arena sample's fresh draws
(``/work/shared/data/arena_sample/fresh_draws``)::

    {"prompt_id": "arena_17", "prompt": "...", "response": "...", "judge_score": 0.85,
     "draw_idx": 0, "oracle_label": 0.9}

with ``oracle_label`` present on about 10% of the lines (absent, not null, elsewhere, as in the
sample). Judge scores and labels come from :func:`cje.synthetic.make_direct_eval` (scores and
labels mapped to [0, 1]; exact truth is not needed here). Prompt and response texts are drawn
from a pool of generated texts with JSON escapes (quotes, newlines, non-ASCII) whose lengths
follow the sample's (median response about 1,400 characters at ``--text-scale 1``).

Usage::

    python benchmarks/fresh_draws_files.py OUT_DIR [--rows-per-policy 1000000] [--policies 4]
        [--text-scale 0.5] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

_WORDS = ("the model answer is because however which \"quoted\" café naïve data value result "
          "first second then finally example code print(x) λ → 42 3.14 — step list: item").split()


def _texts(rng: np.random.Generator, n: int, mean_chars: float) -> list[str]:
    """``n`` JSON-escaped texts (with their quotes) of about ``mean_chars`` characters."""
    out = []
    for _ in range(n):
        k = max(1, int(rng.lognormal(np.log(max(mean_chars, 8) / 6.0), 0.6)))
        words = rng.choice(_WORDS, size=k)
        text = " ".join(words.tolist())
        text = text.replace(" step", "\n\nstep")
        out.append(json.dumps(text, ensure_ascii=bool(rng.random() < 0.5)))
    return out


def write_fresh_draws(out: Path, rows_per_policy: int = 1_000_000, n_policies: int = 4,
                      text_scale: float = 0.5, seed: int = 0) -> list[Path]:
    """Write the files; returns their paths."""
    import cje

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pols = cje.synthetic.default_policies()[:n_policies]
    sim = cje.synthetic.make_direct_eval(rows_per_policy, policies=pols, oracle_fraction=0.10,
                                         rng=seed)
    d = sim.data
    jlo, jhi = sim.judge_scale
    llo, lhi = sim.label_scale
    prompts = _texts(rng, 2000, 120 * text_scale)
    responses = _texts(rng, 5000, 1400 * text_scale)
    paths = []
    for name in [p.name for p in pols]:
        part = d[d.policy == name]
        pid = part.prompt_id.to_numpy(object)
        s = ((part.judge_score.to_numpy() - jlo) / (jhi - jlo)).round(4).tolist()
        y = ((part.oracle_label.to_numpy() - llo) / (lhi - llo)).round(4).tolist()
        draw = part.draw_idx.to_numpy().tolist()
        pi = rng.integers(0, len(prompts), len(part))
        ri = rng.integers(0, len(responses), len(part))
        path = out / f"{name}_responses.jsonl"
        with open(path, "w", encoding="utf-8") as fh:
            lines = []
            for i in range(len(part)):
                lab = "" if y[i] != y[i] else f', "oracle_label": {y[i]!r}'
                lines.append(f'{{"prompt_id": "arena_{pid[i]}", "prompt": {prompts[pi[i]]}, '
                             f'"response": {responses[ri[i]]}, "judge_score": {s[i]!r}, '
                             f'"draw_idx": {draw[i]}{lab}}}\n')
                if len(lines) == 100_000:
                    fh.write("".join(lines))
                    lines.clear()
            fh.write("".join(lines))
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--rows-per-policy", type=int, default=1_000_000)
    ap.add_argument("--policies", type=int, default=4)
    ap.add_argument("--text-scale", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ns = ap.parse_args()
    for p in write_fresh_draws(ns.out, ns.rows_per_policy, ns.policies, ns.text_scale, ns.seed):
        print(p, f"{p.stat().st_size / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
