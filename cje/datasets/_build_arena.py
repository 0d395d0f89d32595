"""Rebuild the packaged Arena sample (``cje/datasets/arena/*.parquet``) from the original files.

The source is the Arena sample in the cje-eval formats (``fresh_draws/<policy>_responses.jsonl``,
``logged_data.jsonl``, ``probe_slice/<policy>_probe.jsonl``), as kept beside this project in
``../shared/data/arena_sample``. Run from the project root::

    python -m cje.datasets._build_arena ../shared/data/arena_sample

What is kept: ids (exact strings), ``draw_idx``, judge scores, oracle labels, the base and target
log-probabilities, and ``response_length`` (whitespace word count of the response, the number
``cje.load(..., covariates=["response_length"])`` derives from a ``response`` column). The prompt
and response texts are dropped. Rows keep their order within each file; floats are stored as
float64, so values are bit-for-bit those the JSON text parses to.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

#: Policies in file order of the source (base is the logging policy).
POLICIES = ("base", "clone", "parallel_universe_prompt", "unhelpful")
TARGETS = POLICIES[1:]
DEST = Path(__file__).resolve().parent / "arena"


def _records(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _words(text: Any) -> int:
    if not isinstance(text, str):
        raise ValueError(f"response is {text!r}, not text")
    return len(text.split())


def _draw_rows(rec: dict[str, Any], policy: str) -> dict[str, Any]:
    return {
        "policy": policy,
        "prompt_id": rec["prompt_id"],
        "draw_idx": rec["draw_idx"],
        "judge_score": rec["judge_score"],
        "oracle_label": rec.get("oracle_label"),
        "response_length": _words(rec["response"]),
    }


def tables(source: str | Path) -> dict[str, Any]:
    """The three tables (pyarrow) built from the original cje-eval files under ``source``."""
    import pyarrow as pa

    source = Path(source)
    draw_schema = pa.schema([
        ("policy", pa.string()), ("prompt_id", pa.string()), ("draw_idx", pa.int64()),
        ("judge_score", pa.float64()), ("oracle_label", pa.float64()), ("response_length", pa.int64()),
    ])
    fresh = [_draw_rows(r, p) for p in POLICIES
             for r in _records(source / "fresh_draws" / f"{p}_responses.jsonl")]
    probes = [_draw_rows(r, p) for p in TARGETS
              for r in _records(source / "probe_slice" / f"{p}_probe.jsonl")]
    logged = []
    for r in _records(source / "logged_data.jsonl"):
        if set(r["target_policy_logprobs"]) != set(TARGETS):
            raise ValueError(f"unexpected targets {sorted(r['target_policy_logprobs'])}")
        row = {
            "prompt_id": r["metadata"]["prompt_id"],
            "judge_score": r["judge_score"],
            "oracle_label": r.get("oracle_label"),
            "response_length": _words(r["response"]),
            "logprob_base": r["base_policy_logprob"],
        }
        row.update({f"logprob[{t}]": r["target_policy_logprobs"][t] for t in TARGETS})
        logged.append(row)
    logged_schema = pa.schema(
        [("prompt_id", pa.string()), ("judge_score", pa.float64()), ("oracle_label", pa.float64()),
         ("response_length", pa.int64()), ("logprob_base", pa.float64())]
        + [(f"logprob[{t}]", pa.float64()) for t in TARGETS])
    return {
        "fresh_draws": pa.Table.from_pylist(fresh, schema=draw_schema),
        "logged_data": pa.Table.from_pylist(logged, schema=logged_schema),
        "probe_slice": pa.Table.from_pylist(probes, schema=draw_schema),
    }


def file_digests(source: str | Path) -> dict[str, str]:
    """SHA-256 of each source file the tables are built from, by path relative to ``source``."""
    root = Path(source)
    files = [root / "logged_data.jsonl",
             *(root / "fresh_draws" / f"{p}_responses.jsonl" for p in POLICIES),
             *(root / "probe_slice" / f"{t}_probe.jsonl" for t in TARGETS)]
    return {f.relative_to(root).as_posix(): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def table_digest(frame: Any) -> str:
    """SHA-256 of a table's content (column names, dtypes, every value), independent of how the
    parquet file was compressed."""
    import pandas as pd

    h = hashlib.sha256(json.dumps([[c, str(t)] for c, t in frame.dtypes.items()]).encode())
    h.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
    return h.hexdigest()


def build(source: str | Path, dest: str | Path = DEST) -> list[Path]:
    """Write ``fresh_draws.parquet``, ``logged_data.parquet`` and ``probe_slice.parquet``
    (zstd-compressed) to ``dest``, and ``MANIFEST.json`` with the digests of the source files and
    of each table built from them; return the paths."""
    import pyarrow.parquet as pq

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    digests = {}
    for name, table in tables(source).items():
        path = dest / f"{name}.parquet"
        pq.write_table(table, path, compression="zstd", compression_level=19,
                       use_dictionary=["policy", "prompt_id"], write_statistics=False)
        digests[name] = table_digest(table.to_pandas())
        out.append(path)
    manifest = dest / "MANIFEST.json"
    manifest.write_text(json.dumps({"source_files_sha256": file_digests(source),
                                    "tables_sha256": digests}, indent=1, sort_keys=True) + "\n")
    return [*out, manifest]


if __name__ == "__main__":  # pragma: no cover - a maintenance script
    src = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/arena_sample"
    for p in build(src):
        print(f"wrote {p} ({p.stat().st_size:,} bytes)")
