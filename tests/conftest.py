"""Shared fixtures: the real Arena sample, from the copy shipped in the package (cje.datasets).

It is always there, so the real-data tests never skip. ``ORIGINAL_ARENA`` is the original
sample beside the project (``../shared/data/arena_sample``), used only by the test that the
packaged copy gives the same numbers (tests/test_datasets.py), which skips where it is absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ORIGINAL_ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample"


@pytest.fixture(scope="session")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged Arena sample written once per session as cje-eval files
    (``fresh_draws/``, ``logged_data.jsonl``, ``probe_slice/``) in a temporary directory."""
    from cje import datasets

    return datasets.export(tmp_path_factory.mktemp("arena")).root
