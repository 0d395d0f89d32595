"""Text helpers shared by the presentation modules (:mod:`cje.report`, :mod:`cje.export`).

Names and reasons come from users' data: every output shows them through :func:`visible`, and
states its interval level with :func:`level_text`, so the summary, markdown, HTML and CSV say the
same thing the same way.
"""

from __future__ import annotations

import math
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



def p_text(p: float, alpha: float | None = None, digits: int = 3) -> str:
    """A p-value with ``digits`` significant digits, and more when fewer would print it on the
    other side of ``alpha`` (``0.04996`` at ``alpha = 0.05`` prints ``0.04996``, not ``0.05``, so
    a printed p-value never contradicts the significance mark beside it); ``—`` for NaN.

    Parameters
    ----------
    p : float
        The p-value.
    alpha : float, optional
        The level the p-value is compared with; ``None``: plain rounding.
    digits : int, default 3
        Significant digits when the rounding does not cross ``alpha``.

    Returns
    -------
    str

    Examples
    --------
    >>> p_text(0.04996, 0.05), p_text(0.04996), p_text(0.0123, 0.05), p_text(float("nan"))
    ('0.04996', '0.05', '0.0123', '—')
    """
    if p != p:
        return "—"
    text = f"{p:.{digits}g}"
    while alpha is not None and digits < 17 and (float(text) < alpha) != (p < alpha):
        digits += 1
        text = f"{p:.{digits}g}"
    return text


def value_digits(scale: tuple[float, float]) -> int:
    """Decimals that print values on ``scale`` to three significant digits of its width: 3 on a
    scale 1 wide or wider (``1–5``, ``0–1``), 6 on ``0–0.001``, where three decimals would print
    every estimate, interval and difference as ``0.000``.

    Parameters
    ----------
    scale : (low, high)

    Returns
    -------
    int

    Examples
    --------
    >>> value_digits((1, 5)), value_digits((0, 1)), value_digits((0, 0.001)), value_digits((0, 0))
    (3, 3, 6, 3)
    """
    width = float(scale[1]) - float(scale[0])
    if not math.isfinite(width) or width <= 0:
        return 3
    return 3 + min(9, max(0, math.floor(-math.log10(width))))


def scale_text(low: float, high: float) -> tuple[str, str]:
    """The two ends of a scale in short form (``:g``), with more digits when the short forms
    would be the same (``1e+06–1e+06`` for a scale from 1,000,000 to 1,000,004).

    Parameters
    ----------
    low, high : float

    Returns
    -------
    tuple of str

    Examples
    --------
    >>> scale_text(1, 5), scale_text(1e6, 1e6 + 4)
    (('1', '5'), ('1000000', '1000004'))
    """
    digits = 6
    while f"{low:.{digits}g}" == f"{high:.{digits}g}" and low != high and digits < 17:
        digits += 1
    return f"{low:.{digits}g}", f"{high:.{digits}g}"


#: Default number of contrasts shown by :meth:`Report.summary` and the markdown/HTML reports
#: (all pairs of 10 policies); every pair stays in :meth:`Report.contrasts`, JSON and CSV.
MAX_PAIRS_SHOWN = 45

#: Legend of the braces of a printed ranking. A tier is a run of the estimates' order that the
#: Holm tests cannot cut: two policies in different tiers always differ significantly, but a chain
#: ``a ≈ b ≈ c`` stays one tier even when ``a − c`` is significant, so "not separable" would be
#: contradicted by that printed contrast.
TIER_NOTE = "a group the tests cannot split in order, though a pair inside may still differ"

#: Legend of the ``*`` after a policy's name in comparisons: its level is not OK.
NOT_OK_NOTE = "* status not OK: the comparison rests on that estimate's caveats, see its reasons"


def starred(shown: str, policy: str, not_ok: set[str] | frozenset[str]) -> str:
    """``shown`` followed by ``*`` when ``policy`` is among ``not_ok`` (see :data:`NOT_OK_NOTE`).

    Parameters
    ----------
    shown : str
        The policy's name as the output writes it (e.g. through :func:`visible`).
    policy : str
        The policy's name.
    not_ok : set of str
        Policies whose level is not OK.

    Returns
    -------
    str

    Examples
    --------
    >>> starred("V", "V", {"V"}), starred("A", "A", {"V"})
    ('V*', 'A')
    """
    return shown + "*" if policy in not_ok else shown


#: Plain-words explanations of the terms in a report's text output, with the docs section that
#: says more; :meth:`cje.Report.summary` with ``explain=True`` (CLI ``--explain``) prints those of
#: the terms it used. ``docs/glossary.md`` carries the same entries (a test keeps them in step).
GLOSSARY: dict[str, tuple[str, str]] = {
    "OUA": ("oracle-uncertainty-aware: the interval also counts the error of the calibration, "
            "which was learned from a limited number of oracle labels (a jackknife that refits it "
            "without each fold of labels).", "Methods › Inference"),
    "SE": ("standard error of the estimate; the 95% interval is about ±2 SE.",
           "Methods › Inference"),
    "cal%": ("the share of the estimate's variance that comes from the calibration: near 100 more "
             "oracle labels narrow the interval most, near 0 more prompts do.", "Methods › Inference"),
    "naive": ("the raw judge mean rescaled to the label scale, as if the judge score were the "
              "metric; shown only for comparison.", "Methods › The direct estimator"),
    "labels": ("oracle labels (the trusted metric) on the policy's own responses.",
               "Getting started › Data"),
    "out-of-fold RMSE": ("the typical error of one calibrated judge score against its oracle "
                         "label, measured on labels the calibration did not see.",
                         "Methods › AutoCal-R"),
    "monotone": ("calibration mode: label as a non-decreasing function of the judge score "
                 "(isotonic regression, mean-preserving).", "Methods › AutoCal-R"),
    "two_stage": ("calibration mode: a smooth index of the judge score (and covariates such as "
                  "length), then isotonic regression on that index; chosen when the judge score "
                  "alone is not enough.", "Methods › AutoCal-R"),
    "status": ("OK: no check failed. CAUTION: usable, but an assumption is untested or a check "
               "is borderline (read the reason). REFUSED: not reliable; left out of the ranking. "
               "Its contrasts are still listed when the paired difference can stand although the "
               "level cannot (an interval wider than the scale, judge scores outside the labelled "
               "range, an overlap gate); a level refused for a failed transport audit, or with no "
               "finite or in-scale estimate, enters none. UNCALIBRATED: too few labels; raw judge "
               "means.",
               "Methods › Diagnostics and gates"),
    "p_holm": ("the p-value of a pair adjusted for testing all pairs (Holm's method); a pair is "
               "called different when p_holm < alpha.", "Methods › Inference"),
    "transport audit": ("a check, on a probe slice (oracle labels on a random sample of the "
                        "policy's own responses), that the calibration learned elsewhere holds "
                        "for this policy: δ = mean(label − calibrated judge score) should be 0.",
                        "Methods › Diagnostics and gates"),
    "ESS": ("effective sample size of the importance weights, as a share of the logged rows: "
            "how many logged rows the estimate effectively rests on (100% = as good as the "
            "target's own data).", "Off-policy › Overlap diagnostics and gates"),
    "stabilised": ("SIMCal-W weights: importance weights smoothed as a monotone function of the "
                   "judge score and rescaled to mean one, which lowers variance.",
                   "Off-policy › SIMCal-W and its honest use"),
    "Hill": ("Hill tail index of the importance weights: how heavy their upper tail is; below 2 "
             "a few very large weights dominate, and an interval may be too narrow.",
             "Off-policy › Overlap diagnostics and gates"),
    "TTC": ("target-typicality coverage: the share of logged rows in the region that holds 90% "
            "of the target's weight; low means the target writes responses the logs rarely hold.",
            "Off-policy › Overlap diagnostics and gates"),
    "affinity": ("overlap of the judge-score histograms of the logged and the target's "
                 "responses (1 = identical).", "Off-policy › Overlap diagnostics and gates"),
    "CLE": ("coverage-limited efficiency factor: how much larger than on-policy the error of any "
            "estimate from these logs must be (1 = no penalty).",
            "Off-policy › Overlap diagnostics and gates"),
    "plan interval": ("in a label plan (cje plan), the range of the labels needed when the "
                      "pilot's variance components are redrawn within their own uncertainty: a "
                      "pilot with few labels gives a wide one.",
                      "Planning a label budget › How the plan is made"),
}

# (word in a reason, docs section) — the first that matches points the reader to more
_REASON_DOCS = (
    ("support", "Off-policy › Support gate"),
    ("log-probabilit", "Off-policy › Support gate"),
    ("overlap", "Off-policy › Overlap diagnostics and gates"),
    ("probe labels", "Methods › Probe slices"),
    ("labels of its own", "Getting started › Transport audits with probe slices"),
    ("audit", "Getting started › Transport audits with probe slices"),
    ("probe", "Getting started › Transport audits with probe slices"),
    ("label scale", "Off-policy › The sanity gate on every estimate"),
)


def glossary_terms(text: str) -> list[str]:
    """The :data:`GLOSSARY` terms used in ``text``, in the glossary's order.

    Examples
    --------
    >>> glossary_terms("ESS 12% → 40%, Hill 1.2, p_holm = 0.01")
    ['p_holm', 'ESS', 'Hill']
    """
    return [t for t in GLOSSARY
            if re.search(r"(?<![\w%])" + re.escape(t) + r"(?![\w])", text)]


def short_reason(reason: str) -> str:
    """A status reason in one short sentence, with the docs section that says more.

    Reasons are written ``"what: why; what to do"``. This keeps what was found (the lead and, when
    the lead is a bare label such as ``"poor overlap"``, the finding after it) and drops the
    explanation, which the full reason (``--explain``, the JSON) keeps.

    Examples
    --------
    >>> short_reason("poor overlap: raw-weight ESS 0.3% < 10%: the logged labels barely reach "
    ...              "the target's responses; the oracle residual is weighted ...")
    'poor overlap: raw-weight ESS 0.3% < 10%. [docs: Off-policy › Overlap diagnostics and gates]'
    >>> short_reason("the estimate 14.81 lies outside the label scale [0, 1]: it cannot be a "
    ...              "value of the label").split(" [docs")[0]
    'the estimate 14.81 lies outside the label scale [0, 1].'
    """
    parts = reason.split(": ")
    head = parts[0]
    if len(head) < 30 and len(parts) > 1:
        head += ": " + re.split(r"; |\. ", parts[1])[0]
    head = re.split(r"; |\. (?=[A-Z])", head)[0].rstrip(".")
    low = reason.lower()
    where = next((d for word, d in _REASON_DOCS if word in low), "Methods › Diagnostics and gates")
    return f"{head}. [docs: {where}]"
