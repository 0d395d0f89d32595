"""Pairwise verdicts, judge panels and agreement with the oracle (docs: Judge bias › Pairwise scores and
panels).

Three groups of tools:

* **Pairwise verdicts → scores.** :func:`win_rates` (ties count ½) and :func:`bradley_terry`
  (item strengths on the log-odds scale with an optional first-slot position effect), both with
  prompt-cluster bootstrap intervals.
* **Judge panels.** :func:`aggregate_panel` turns several judges' scores of the same item into one
  (mean, max, majority vote or Dawid–Skene), optionally leaving out judges of the policy's own
  family; :func:`dawid_skene` is the EM model behind the last method.
* **Agreement with the oracle.** :func:`cohen_kappa`, :func:`krippendorff_alpha`,
  :func:`kendall_tau`, :func:`spearman_rho`, :func:`ndcg_at_k` and :func:`ranking_agreement`.

Modules: :mod:`~cje.pairwise.scores`, :mod:`~cje.pairwise.panels`, :mod:`~cje.pairwise.agreement`
and :mod:`~cje.pairwise.verdicts` (the verdicts model shared with the bias diagnostics).

The pairwise data contract (shared with the bias diagnostics) is one row per verdict with columns
``prompt_id``, ``a_id``, ``b_id`` (the two compared items, e.g. policies), ``slot_a`` (1 or 2: the
position in which item a was shown) and ``winner`` in {"a", "b", "tie"}; ``judge``,
``human_winner`` and ``run`` are optional. Verdicts of every judge and run are pooled; filter the
frame first to analyse one judge.
"""

from cje.pairwise.agreement import (
    cohen_kappa,
    kendall_tau,
    krippendorff_alpha,
    ndcg_at_k,
    ranking_agreement,
    spearman_rho,
)
from cje.pairwise.panels import DawidSkeneResult, aggregate_panel, dawid_skene
from cje.pairwise.scores import BradleyTerryResult, bradley_terry, win_rates
from cje.pairwise.verdicts import PAIR_COLUMNS

__all__ = [
    "BradleyTerryResult",
    "DawidSkeneResult",
    "PAIR_COLUMNS",
    "aggregate_panel",
    "bradley_terry",
    "cohen_kappa",
    "dawid_skene",
    "kendall_tau",
    "krippendorff_alpha",
    "ndcg_at_k",
    "ranking_agreement",
    "spearman_rho",
    "win_rates",
]
