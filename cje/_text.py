"""Text helpers shared by the presentation modules (:mod:`cje.report`, :mod:`cje.export`).

Names and reasons come from users' data: every output shows them through :func:`visible`, and
states its interval level with :func:`level_text`, so the summary, markdown, HTML and CSV say the
same thing the same way.
"""

from __future__ import annotations

import re
from typing import Any


def level_text(alpha: float) -> str:
    """``"95%"`` for ``alpha = 0.05`` (``"97.5%"`` for 0.025: never rounded to a wrong level)."""
    return f"{100 * (1 - alpha):g}%"


#: Characters shown as escapes by :func:`visible`: C0/C1 controls, DEL, line/paragraph
#: separators, and the invisible format characters that reorder or hide text (bidi overrides,
#: zero-width characters, BOM).
_INVISIBLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def visible(text: Any) -> str:
    r"""``text`` with every control or invisible character written as an escape (``\x1b``,
    ``\n``, ``\u202e``), so a name cannot move the cursor, recolour a terminal, split a line or
    reorder what is printed.

    Parameters
    ----------
    text : object
        Converted with ``str``.

    Returns
    -------
    str

    Examples
    --------
    >>> print(visible("a\x1b[31mred\nline"))
    a\x1b[31mred\nline
    >>> visible("plain name")
    'plain name'
    """

    def esc(m: re.Match[str]) -> str:
        c = m.group(0)
        if c in _NAMED:
            return _NAMED[c]
        return f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}"

    return _INVISIBLE.sub(esc, str(text))



#: Default number of contrasts shown by :meth:`Report.summary` and the markdown/HTML reports
#: (all pairs of 10 policies); every pair stays in :meth:`Report.contrasts`, JSON and CSV.
MAX_PAIRS_SHOWN = 45
