"""Every public function, class and method has a numpydoc docstring with a runnable example.

"Public" follows ``__all__``: every module of ``cje`` whose dotted name has no ``_``-prefixed
part must define ``__all__``. Its items are the functions and classes it lists that are defined in
that module, or in a private module of ``cje`` and re-exported here (``cje.bias.BiasResult`` from
``cje.bias._result``); for a class also its public methods, class methods and static methods
(properties are documented under the class's ``Attributes``). Each needs

* an ``Examples`` section (numpydoc heading: the title underlined with dashes) holding at least
  one doctest. ``--doctest-modules`` (pyproject's pytest ``addopts``) runs them with the tests;
* for a function or method, a ``Parameters`` section when it takes arguments besides
  ``self``/``cls``, and a ``Returns`` (or ``Yields``) section when it is annotated to return
  something other than ``None``.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import pytest

import cje

#: A numpydoc section heading: a title line underlined by dashes.
HEADING = re.compile(r"^(?P<title>[A-Z][A-Za-z ]*)\n-{3,}[ \t]*$", re.M)


def _private(dotted: str) -> bool:
    return any(part.startswith("_") for part in dotted.split(".")[1:])


def _public_modules() -> list[Any]:
    names = [m.name for m in pkgutil.walk_packages(cje.__path__, "cje.") if not _private(m.name)]
    return [cje] + [importlib.import_module(n) for n in sorted(names)]


def _public_items() -> Iterator[tuple[str, Any]]:
    """(dotted name, function or class) of every public item; each object once."""
    seen: set[int] = set()
    for mod in _public_modules():
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            home = obj.__module__
            if home != mod.__name__ and not (home.startswith("cje.") and _private(home)):
                continue  # documented where it is defined
            seen.add(id(obj))
            yield f"{mod.__name__}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_"):
                        continue
                    if isinstance(member, (classmethod, staticmethod)):
                        member = member.__func__
                    if inspect.isfunction(member):
                        yield f"{mod.__name__}.{name}.{attr}", member


def _sections(doc: str) -> dict[str, str]:
    """Numpydoc sections of a cleaned docstring: title -> body."""
    heads = list(HEADING.finditer(doc))
    ends = [h.start() for h in heads[1:]] + [len(doc)] if heads else []
    return {h.group("title").strip(): doc[h.end():e] for h, e in zip(heads, ends, strict=True)}


def _report(problem: str, offenders: list[str]) -> str:
    return f"{len(offenders)} public item(s) {problem}:\n  " + "\n  ".join(offenders)


def test_every_public_module_declares_all():
    missing, broken = [], []
    for mod in _public_modules():
        names = getattr(mod, "__all__", None)
        if names is None:
            missing.append(mod.__name__)
            continue
        broken += [f"{mod.__name__}.{n}" for n in names if not hasattr(mod, n)]
    if missing:
        pytest.fail(f"{len(missing)} public module(s) without __all__ (add one listing the public "
                    "names):\n  " + "\n  ".join(missing), pytrace=False)
    if broken:
        pytest.fail(_report("named in __all__ but missing from the module", broken), pytrace=False)


def test_every_public_item_has_a_numpydoc_example():
    parser = doctest.DocTestParser()
    offenders = []
    for qual, obj in _public_items():
        doc = inspect.getdoc(obj) or ""
        body = _sections(doc).get("Examples")
        if body is None:
            offenders.append(f"{qual}: no 'Examples' section" if doc else f"{qual}: no docstring")
        elif not parser.get_examples(body):
            offenders.append(f"{qual}: 'Examples' section without a '>>>' doctest")
    if offenders:
        pytest.fail(_report("lack a numpydoc 'Examples' section with a runnable '>>>' example",
                            offenders), pytrace=False)


def test_every_public_function_documents_parameters_and_returns():
    offenders = []
    for qual, obj in _public_items():
        if not inspect.isfunction(obj):
            continue
        sections = _sections(inspect.getdoc(obj) or "")
        sig = inspect.signature(obj)
        if [p for p in sig.parameters if p not in ("self", "cls")] and "Parameters" not in sections:
            offenders.append(f"{qual}: takes arguments but has no 'Parameters' section")
        ret = sig.return_annotation
        returns = ret is not inspect.Signature.empty and ret not in ("None", None)
        if returns and not {"Returns", "Yields"} & sections.keys():
            offenders.append(f"{qual}: returns {ret} but has no 'Returns' section")
    if offenders:
        pytest.fail(_report("lack numpydoc 'Parameters'/'Returns' sections", offenders),
                    pytrace=False)


def test_the_checks_see_the_package():
    """Guard against a walk that silently finds nothing (which would make the tests vacuous)."""
    items = dict(_public_items())
    assert len(items) > 150
    for name in ("cje.analysis.analyze", "cje.report.Report.summary", "cje.bias.BiasAudit",
                 "cje.data.EvalData.from_frame", "cje.calibration.reward.RewardCalibrator.fit"):
        assert name in items, name
