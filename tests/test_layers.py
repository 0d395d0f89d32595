"""Imports flow one way (DESIGN.md): cli → analysis → inference → estimators → calibration → data.

A module may import only from its own layer or lower ones; `report` and `diagnostics` read data
and results but never the pipeline that produces them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "cje"

# lower number = lower layer
LAYER = {
    "errors": 0,
    "_progress": 0,
    "_checks": 0,
    "synthetic": 1,
    "data": 1,
    "readers": 1,
    "calibration": 2,
    "estimators": 3,
    "inference": 4,
    "report": 4,
    "diagnostics": 4,
    "bias": 4,
    "pairwise": 4,
    "plots": 4,
    "montecarlo": 4,
    "export": 4,
    "studies": 5,
    "analysis": 5,
    "offpolicy": 5,
    "cli": 6,
    "__init__": 7,
}


def _top(module: str) -> str:
    return module.split(".")[1] if module.count(".") else "__init__"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cje"):
            found.add(node.module if node.module != "cje" else f"cje.{node.names[0].name}")
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("cje."))
    return found


@pytest.mark.parametrize("path", sorted(PKG.rglob("*.py")), ids=lambda p: str(p.relative_to(PKG)))
def test_no_upward_imports(path):
    rel = path.relative_to(PKG)
    own = rel.parts[0].removesuffix(".py")
    if own not in LAYER:
        pytest.fail(f"cje/{rel}: add its package to LAYER in tests/test_layers.py")
    for mod in _imports(path):
        other = _top(mod)
        assert other in LAYER, f"cje/{rel} imports unknown cje module {mod}"
        assert LAYER[other] <= LAYER[own], f"cje/{rel} (layer {own}) imports upward: {mod}"
