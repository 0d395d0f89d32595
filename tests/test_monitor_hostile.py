"""Hostile inputs for cje.monitor: window columns, horizon, one window (own traffic simulator)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEInputError

KW = {"judge_scale": (0, 10), "label_scale": (1, 5)}


def _traffic(n_win: int = 12, rows: int = 200, labels: int = 60, shift_at: int | None = None,
             shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """Daily traffic of two policies; the judge scores 10·q + N(0, 1), plus ``shift`` points from
    window ``shift_at`` on (a judge update); labels round 1 + 4q + N(0, 0.3) to 1..5."""
    rng = np.random.default_rng(seed)
    out = []
    for w in range(n_win):
        for pol in ("prod", "canary"):
            q = rng.beta(2, 2, rows)
            y = np.clip(np.round(1 + 4 * q + rng.normal(0, 0.3, rows)), 1, 5)
            s = np.clip(10 * q + rng.normal(0, 1, rows)
                        + (shift if shift_at is not None and w >= shift_at else 0.0), 0, 10)
            lab = np.full(rows, np.nan)
            idx = rng.choice(rows, labels // 2, replace=False)
            lab[idx] = y[idx]
            ts = (pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=w)
                  + pd.to_timedelta(rng.uniform(0, 86399, rows), unit="s"))
            out.append(pd.DataFrame({"timestamp": ts, "prompt_id": [f"w{w}q{i}" for i in range(rows)],
                                     "policy": pol, "judge_score": s, "oracle_label": lab}))
    return pd.concat(out, ignore_index=True)


def test_window_column_of_day_numbers_is_walked_in_numeric_order():
    # before: windows "1".."12" as text were walked 1, 10, 11, 12, 2, ...: the reference of "the
    # first 3 windows" was days 1, 10 and 11, and a judge update on day 10 sat inside it
    d = _traffic(shift_at=9, shift=1.5)
    d["day"] = (d["timestamp"].dt.day).astype(str)
    rep = cje.monitor(d, window="day", reference=3, **KW)
    labels = list(dict.fromkeys(w.window_label for w in rep.windows))
    assert labels == [str(i) for i in range(1, 13)]
    by_time = cje.monitor(d, window="1D", reference=3, **KW)
    assert [(e.start_window, e.confirmed_window) for e in rep.events] == \
        [(e.start_window, e.confirmed_window) for e in by_time.events] == [(9, 9)]
    assert rep.events[0].start_label == "10"


def test_window_written_two_ways_is_refused():
    d = _traffic(n_win=6)
    d["day"] = d["timestamp"].dt.day.astype(object)
    d.loc[d.index[:5], "day"] = "1"  # day 1 as text on five rows, as a number on the rest
    with pytest.raises(CJEInputError, match=r"'day' has two different values that read as the same "
                                            r"window '1': row 0 has '1' and row 5 has 1"):
        cje.monitor(d, window="day", reference=2, **KW)


def test_horizon_below_the_audited_windows_is_refused():
    # 12 windows, reference 3: 9 audited. horizon=2 would test at 0.05 / 4 each: any false DRIFT
    # up to 9 · 2 · 0.0125 = 0.23 by Bonferroni, not 0.05
    d = _traffic()
    with pytest.raises(CJEInputError, match=r"horizon=2 is smaller than the 9 windows.*horizon >= 9"):
        cje.monitor(d, reference=3, horizon=2, **KW)
    rep = cje.monitor(d, reference=3, horizon=9, **KW)
    assert rep.settings["drift_level"] == pytest.approx(0.05 / 18)


def test_one_window_message_makes_sense():
    d = _traffic(n_win=1)
    with pytest.raises(CJEInputError, match="span one window") as err:
        cje.monitor(d, reference=1, **KW)
    assert "1..0" not in str(err.value)
