"""Reproduction (slow): windows with a handful of labels must not confirm false judge drifts.

Found by ``simulations/independent_monitor.py`` (cell ``null/40w/trickle(2-6lab)``): with 2–6
labels per window and an unchanged judge, a window's labelled residuals can show a near-zero spread
by chance (1–5 labels, a step calibration); the audit's Satterthwaite df then came from the
calibration jackknife alone (K − 1 = 19) and two labels rejected at about 75 times the per-test
level, so nearly every run "confirmed" a drift (and then stopped: the restarted calibration had
too few labels to fit).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import cje
from cje.errors import CJEWarning


def _trickle_run(seed: int, n_windows: int = 30, n_ref: int = 7) -> pd.DataFrame:
    """One policy, 120 prompts a day, no drift; 60 labels on reference days, then 2–6 a day."""
    rng = np.random.default_rng(seed)
    frames = []
    for w in range(n_windows):
        n = 120
        u = 1.0 / (1.0 + np.exp(-rng.normal(0.2, 0.98, n)))
        y = 1.0 + rng.binomial(4, u**1.3)
        s = np.round(10.0 * u, 1)
        lab = np.full(n, np.nan)
        k = 60 if w < n_ref else int(rng.integers(2, 7))
        take = rng.choice(n, size=k, replace=False)
        lab[take] = y[take]
        t = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(w + rng.uniform(0, 1, n), unit="D")
        frames.append(pd.DataFrame({"prompt_id": [f"w{w}p{i}" for i in range(n)], "policy": "A",
                                    "judge_score": s, "oracle_label": lab, "timestamp": t}))
    return pd.concat(frames, ignore_index=True)


@pytest.mark.slow
def test_trickled_labels_do_not_confirm_false_drifts() -> None:
    runs, drifted, refused = 20, 0, 0
    for seed in range(runs):
        data = _trickle_run(1000 + seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CJEWarning)
            try:
                rep = cje.monitor(data, window="1D", reference=7, judge_scale=(0, 10),
                                  label_scale=(1, 5))
            except cje.CJEInputError:
                refused += 1
                continue
        drifted += bool(rep.events)
    # any false DRIFT over a run is promised <= alpha_drift = 0.05: 4+ of 20 has chance 0.016
    assert refused == 0 and drifted <= 3, (
        f"{drifted} of {runs} drift-free runs confirmed a drift; {refused} more stopped with an error "
        "(a false drift on a window whose few labels cannot refit the calibration)")


@pytest.mark.slow
def test_drift_confirmed_on_three_labels_does_not_stop_the_run() -> None:
    """A drift confirmed on a window with 3 labelled prompts restarts the calibration on those
    labels alone, too few to fit one: the run used to stop with CJEInputError."""
    rng = np.random.default_rng(3)
    frames = []
    for w in range(5):
        n = 150
        u = 1.0 / (1.0 + np.exp(-rng.normal(0.2, 0.98, n)))
        y = 1.0 + rng.binomial(4, u**1.3)
        s = np.round(10.0 * u, 1)
        lab = np.full(n, np.nan)
        if w < 3:
            take = rng.choice(n, size=80, replace=False)
            lab[take] = y[take]
        if w == 4:  # the judge now scores the top answers of this window's 3 labelled rows as the worst
            top = np.argsort(s)[-3:]
            s[top] = 0.5
            lab[top] = 5.0
        t = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(w + rng.uniform(0, 1, n), unit="D")
        frames.append(pd.DataFrame({"prompt_id": [f"w{w}p{i}" for i in range(n)], "policy": "A",
                                    "judge_score": s, "oracle_label": lab, "timestamp": t}))
    data = pd.concat(frames, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CJEWarning)
        rep = cje.monitor(data, window="1D", reference=3, judge_scale=(0, 10), label_scale=(1, 5))
    assert [(e.start_window, e.confirmed_window) for e in rep.events] == [(3, 4)]
    df = rep.to_pandas()
    assert df.loc[df.window == 4, "status"].tolist() in (["DRIFT"], ["REFUSED"])
    assert "too few labels to fit a calibration yet" in rep.summary() or \
        df.loc[df.window == 4, "status"].tolist() == ["REFUSED"]
