"""Shared fixtures: the real Arena sample (skipped with a reason where it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

ARENA = Path(__file__).resolve().parents[2] / "shared" / "data" / "arena_sample"


@pytest.fixture(scope="session")
def arena() -> Path:
    """Path of the Arena sample (``../shared/data/arena_sample`` from the project root)."""
    if not (ARENA / "fresh_draws").is_dir():
        pytest.skip(f"Arena sample not found at {ARENA}")
    return ARENA
