"""The gate thresholds and defaults the documentation quotes are the code's.

Each entry names a page, a phrase of it with the number(s) in groups (spaces match any white
space, so a re-wrapped line still matches) and the code's value. A phrase that is no longer on
the page fails too: reword the entry with the page, never drop the check silently.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _quotes() -> list[tuple[str, str, tuple[float, ...]]]:
    import cje
    from cje.bias.position import FIRST_SLOT_BAND, PC_WARN
    from cje.bias.verbosity import PRACTICAL_SD_FRACTION
    from cje.diagnostics import gates
    from cje.diagnostics.overlap import (
        DR_ESS_GATE,
        ESS_GATE,
        HILL_GATE,
        HILL_RESIDUAL,
        TTC_GATE,
        WEIGHTING_ESS_GATE,
    )
    from cje.estimators.offpolicy import TAIL_VARIANCE_ESS
    from cje.monitoring import AUDIT_FOLDS
    from cje.pipeline import probes
    from cje.pipeline.core import MIN_LABELLED_PROMPTS, MIN_OWN_LABELS
    from cje.pipeline.streaming_logged import MAX_DISTINCT_SCORES

    def default(fn, name):  # noqa: ANN001, ANN202
        return float(inspect.signature(fn).parameters[name].default)

    pct = 100.0
    return [
        # getting-started: the status table
        ("docs/getting-started.md", r"a probe of fewer than (\d+) labels", (gates.MIN_PROBE_LABELS,)),
        ("docs/getting-started.md", r"corrected by fewer than (\d+) labels of its own", (MIN_OWN_LABELS,)),
        ("docs/getting-started.md", r"fewer than (\d+) prompts; a standard error of exactly 0",
         (gates.MIN_OK_PROMPTS,)),
        ("docs/getting-started.md", r"or (\d+)% or more of the policy's judge scores outside",
         (gates.OUT_OF_RANGE_GATE * pct,)),
        ("docs/getting-started.md", r"`UNCALIBRATED` \| fewer than (\d+) labelled prompts",
         (MIN_LABELLED_PROMPTS,)),
        # methods: folds and the gates
        ("docs/methods.md", r"\*\*Folds\*\*: K = (\d+)\.", (default(cje.analyze, "n_folds"),)),
        ("docs/methods.md", r"CAUTION below (\d+)% raw-weight ESS or TTC ([\d.]+) for every estimator",
         (ESS_GATE * pct, TTC_GATE)),
        ("docs/methods.md", r"for the IPS family also below (\d+)% ESS or a Hill tail index below (\d+),",
         (WEIGHTING_ESS_GATE * pct, HILL_GATE)),
        ("docs/methods.md", r"a mean raw weight `m` more than ([\d.]+) SE below 1",
         (gates.MEAN_WEIGHT_DEFICIT_Z,)),
        ("docs/methods.md", r"\(its expectation\) or more than (\d+) SE above it",
         (gates.MEAN_WEIGHT_EXCESS_Z,)),
        ("docs/offpolicy.md", r"CAUTION when `m` is more than (\d+) SE above 1",
         (gates.MEAN_WEIGHT_EXCESS_Z,)),
        ("docs/methods.md", r"robust family below (\d+)% ESS or a Hill index below (\d+)",
         (DR_ESS_GATE * pct, HILL_RESIDUAL)),
        ("docs/methods.md", r"fewer than (\d+) prompts \(`MIN_OK_PROMPTS`\) → CAUTION",
         (gates.MIN_OK_PROMPTS,)),
        ("docs/methods.md", r"more than ([\d.]+) prompt-clustered standard errors from the policy's",
         (gates.BALANCE_Z,)),
        ("docs/methods.md", r"with 2–(\d+) own labels it is CAUTION", (MIN_OWN_LABELS - 1,)),
        ("docs/methods.md", r"for at least (\d+)% of the probe's rows \(and (\d+) rows\)",
         (probes.RUBRIC_SHARE * pct, probes.RUBRIC_MIN_ROWS)),
        ("docs/methods.md", r"with `q` the (\d+)% quantile of the data's out-of-fold residuals",
         (probes.RUBRIC_QUANTILE * pct,)),
        ("docs/methods.md", r"if (\d+)% or more of a policy's judge scores lie outside the range",
         (gates.OUT_OF_RANGE_GATE * pct,)),
        # off-policy
        ("docs/offpolicy.md", r"raw-weight ESS is at least (\d+)% and the Hill tail index of its raw "
                              r"weights is at least (\d+)", (ESS_GATE * pct, HILL_RESIDUAL)),
        ("docs/offpolicy.md", r"raw-weight ESS < (\d+)%, TTC < ([\d.]+) or Hill < (\d+) mark IPS-family",
         (WEIGHTING_ESS_GATE * pct, TTC_GATE, HILL_GATE)),
        ("docs/offpolicy.md", r"raw-weight ESS < (\d+)%, TTC < ([\d.]+), or a Hill index < (\d+) that",
         (DR_ESS_GATE * pct, TTC_GATE, HILL_RESIDUAL)),
        ("docs/offpolicy.md", r"\| in \[([\d.]+), ([\d.]+)\] \| CAUTION if more than ([\d.]+) SE below 1",
         (*gates.MEAN_WEIGHT_CAUTION, gates.MEAN_WEIGHT_DEFICIT_Z)),
        ("docs/offpolicy.md", r"\| in \[1e-6, ([\d.]+)\) \| REFUSED", (gates.MEAN_WEIGHT_REFUSE[0],)),
        ("docs/offpolicy.md", r"≥ (\d+)% of the rows with a ratio below 1e-3",
         (gates.NEAR_ZERO_CAUTION * pct,)),
        ("docs/offpolicy.md", r"\(`n_eff_raw < (\d+)`\) → REFUSED", (gates.N_EFF_REFUSE,)),
        ("docs/offpolicy.md", r"DR level is CAUTION at \|z\| > ([\d.]+)", (gates.BALANCE_Z,)),
        ("docs/offpolicy.md", r"`q` is more than half a standard error \(`EXCLUDED_SHIFT_SE`\) and "
                              r"`\|z\| > (\d+)` \(`MISSING_SCORE_Z`", (gates.MISSING_SCORE_Z,)),
        ("docs/offpolicy.md", r"Below (\d+)% raw ESS the oracle residual term's influence values",
         (TAIL_VARIANCE_ESS * pct,)),
        ("README.md", r"Below (\d+)% raw-weight ESS the oracle residual is weighted", (ESS_GATE * pct,)),
        # monitoring, bias, large data
        ("docs/monitoring.md", r"at least `min_labels` oracle labels \(default (\d+)\)",
         (default(cje.monitor, "min_labels"),)),
        ("docs/monitoring.md", r"jackknife over (\d+) folds of the reference labels", (AUDIT_FOLDS,)),
        ("docs/monitoring.md", r"\(default: the first (\d+) windows\)", (default(cje.monitor, "reference"),)),
        ("docs/bias.md", r"first-slot-rate CI lies outside \[([\d.]+), ([\d.]+)\]; warns when position "
                         r"consistency < ([\d.]+)", (*FIRST_SLOT_BAND, PC_WARN)),
        ("docs/bias.md", r"\\\|β\\\| ≥ ([\d.]+) SD of the judge score", (PRACTICAL_SD_FRACTION,)),
        ("docs/large_data.md", r"at most ([\d,]+) distinct values \(`MAX_DISTINCT_SCORES`",
         (MAX_DISTINCT_SCORES,)),
    ]


def quoted_numbers(text: str, phrase: str) -> tuple[float, ...] | None:
    """The numbers in ``phrase``'s groups where it first occurs in ``text`` (any run of white
    space in the text matches a space of the phrase), or ``None`` when it does not occur."""
    flat = re.sub(r"\s+", " ", text)
    m = re.search(phrase, flat)
    return None if m is None else tuple(float(g.replace(",", "")) for g in m.groups())


@pytest.mark.parametrize("page,phrase,expected", _quotes(), ids=lambda v: v if isinstance(v, str) else "")
def test_docs_quote_the_codes_thresholds(page: str, phrase: str, expected: tuple[float, ...]) -> None:
    found = quoted_numbers((ROOT / page).read_text(encoding="utf-8"), phrase)
    assert found is not None, f"{page} no longer says {phrase!r}: update the page or this entry"
    assert found == pytest.approx(tuple(float(v) for v in expected)), (
        f"{page} quotes {found} where the code has {expected}: {phrase!r}")


def test_a_changed_number_is_caught() -> None:
    """The matching reads numbers across line breaks and sees a number that differs."""
    text = "CAUTION below 10% raw-weight\n  ESS or TTC 0.30 for every estimator"
    phrase = r"CAUTION below (\d+)% raw-weight ESS or TTC ([\d.]+) for every estimator"
    assert quoted_numbers(text, phrase) == (10.0, 0.30)
    assert quoted_numbers(text.replace("10%", "15%"), phrase) != (10.0, 0.30)
    assert quoted_numbers("nothing here", phrase) is None
