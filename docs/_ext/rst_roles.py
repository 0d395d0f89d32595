"""Griffe extension: render the Sphinx roles of cje's numpydoc docstrings as cross-references.

The docstrings follow numpydoc and use Sphinx roles (``:func:`cje.load```, ``:class:`~cje.report.
Report```, ``:meth:`contrasts```), which Markdown would show literally. Each role becomes inline
code wrapped in an *optional* autorefs cross-reference: a link when the target is documented on
the site, plain code otherwise (numpy, pandas, private helpers). Relative names are resolved in
the scope of the object whose docstring holds them, as Sphinx does. A leading ``~`` shows only
the last component.

Loaded by ``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``); the
package's sources are not touched. Markdown links written in the pages are not affected: a broken
one still fails ``mkdocs build --strict``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|attr|data|obj|exc|const):`(?P<target>[^`]+)`")


def _identifier(target: str, obj: Any, shadowed: dict[str, str]) -> str:
    """Full dotted path of ``target`` as seen from ``obj`` (``target`` itself if unresolvable)."""
    target = target.lstrip(".")
    if not (target.startswith("cje.") or target == "cje"):
        head, _, rest = target.partition(".")
        scope = obj
        while scope is not None:
            try:
                path = scope.resolve(head)
            except (griffe.NameResolutionError, griffe.AliasResolutionError, griffe.CyclicAliasError):
                scope = scope.parent
                continue
            target = f"{path}.{rest}" if rest else path
            break
    return shadowed.get(target, target)


def _shadowed(obj: Any, found: dict[str, str]) -> dict[str, str]:
    """Functions that share their module's name (``cje.bias.audit`` is the function
    ``cje.bias.audit.audit`` re-exported over its submodule): griffe sees the submodule there,
    the reader means the function."""
    for name, member in obj.members.items():
        if member.is_alias or not member.is_module:
            continue
        if obj.imports.get(name) == f"{member.path}.{name}":
            found[member.path] = f"{member.path}.{name}"
        _shadowed(member, found)
    return found


def _convert(text: str, obj: Any, shadowed: dict[str, str]) -> str:
    def repl(match: re.Match[str]) -> str:
        target = match["target"].strip()
        short = target.startswith("~")
        target = target.lstrip("~")
        shown = target.rsplit(".", 1)[-1] if short else target
        ident = _identifier(target, obj, shadowed)
        return (
            f'<autoref identifier="{html.escape(ident, quote=True)}" optional>'
            f"<code>{html.escape(shown)}</code></autoref>"
        )

    return _ROLE.sub(repl, text)


class RstRoles(griffe.Extension):
    """Rewrite Sphinx roles once the whole package is loaded (so every name can be resolved)."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, _shadowed(pkg, {}))

    def _walk(self, obj: Any, shadowed: dict[str, str]) -> None:
        if obj.docstring is not None and ":`" in obj.docstring.value:
            obj.docstring.value = _convert(obj.docstring.value, obj, shadowed)
        for member in obj.members.values():
            if not member.is_alias:  # an alias is documented where it is defined
                self._walk(member, shadowed)
