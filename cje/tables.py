"""Data as one flat table: a row per response (the inverse of :func:`cje.load`'s columns).

Beside the data, not with the presentation: :func:`cje.export.convert` writes it to a file and
the bias tests read a directory of fresh draws through it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from cje.data import EvalData

__all__ = ["flat_table"]


def flat_table(data: EvalData) -> pd.DataFrame:
    """One flat row per response: ``prompt_id, policy, draw_idx, judge_score, oracle_label``,
    the covariates and the log-probability columns (``logprob_base``, ``logprob[<target>]``).

    Parameters
    ----------
    data : EvalData

    Returns
    -------
    pandas.DataFrame
        Calibration-only rows have policy ``"(calibration)"``.

    Examples
    --------
    >>> import cje
    >>> from cje.tables import flat_table
    >>> d = cje.load({"prompt_id": ["a", "b"], "judge_score": [3, 8], "oracle_label": [2, None]},
    ...              policy="m", judge_scale=(0, 10), label_scale=(1, 5))
    >>> flat_table(d).columns.tolist()
    ['prompt_id', 'policy', 'draw_idx', 'judge_score', 'oracle_label']
    """
    import numpy as np
    import pandas as pd

    names = np.append(np.asarray(data.policies, dtype=object), "(calibration)")
    cols: dict[str, Any] = {
        "prompt_id": data.prompt_id,
        "policy": names[data.policy_code],
        "draw_idx": data.draw_idx,
        "judge_score": data.judge_score,
        "oracle_label": data.oracle_label,
    }
    cols.update(data.covariates)
    for k, v in data.logprobs.items():
        cols["logprob_base" if k == "base" else f"logprob[{k}]"] = v
    return pd.DataFrame(cols)
