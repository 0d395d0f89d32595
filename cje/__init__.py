"""cje — calibrated LLM-as-a-judge evaluation.

Judge scores are cheap but are not the metric you care about; a small slice of oracle labels
(human ratings, expert review, a KPI) calibrates them. ``cje.analyze`` returns each policy's
value on the label scale with confidence intervals that include the calibration's own
uncertainty, paired contrasts, and diagnostics that say when an answer should not be trusted.

Examples
--------
>>> import cje
>>> sim = cje.synthetic.make_direct_eval(300, rng=0)
>>> report = cje.analyze(sim.data, judge_scale=(0, 10), label_scale=(1, 5))
>>> [e.policy for e in report.estimates]
['base', 'concise', 'improved', 'small', 'verbose']
"""

from typing import TYPE_CHECKING

from cje import estimators
from cje.analysis import analyze
from cje.calibration import RewardCalibrator, fit_isotonic
from cje.data import EvalData, load, prompt_folds
from cje.errors import CJEInputError, CJEWarning
from cje.monitoring import MonitorReport, monitor
from cje.planning import Plan, plan
from cje.report import Report
from cje.results import CalibrationInfo, Contrast, PolicyEstimate, TransportAudit

if TYPE_CHECKING:
    from cje import bias, datasets, export, montecarlo, pairwise, plots, studies, synthetic


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cje")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.1.0.dev0"


#: The installed version (from the package metadata; ``0.1.0.dev0`` in an uninstalled tree).
__version__ = _version()


def __getattr__(name: str) -> object:
    # These pull in pandas, scipy and statsmodels: load them on first use to keep `import cje`
    # (and the CLI) fast.
    if name in ("synthetic", "bias", "pairwise", "plots", "montecarlo", "studies", "export",
                "datasets"):
        import importlib

        return importlib.import_module(f"cje.{name}")
    raise AttributeError(f"module 'cje' has no attribute {name!r}")


__all__ = [
    "CJEInputError",
    "CJEWarning",
    "CalibrationInfo",
    "Contrast",
    "EvalData",
    "MonitorReport",
    "Plan",
    "PolicyEstimate",
    "Report",
    "RewardCalibrator",
    "TransportAudit",
    "analyze",
    "bias",
    "datasets",
    "estimators",
    "export",
    "fit_isotonic",
    "load",
    "monitor",
    "montecarlo",
    "pairwise",
    "plan",
    "plots",
    "prompt_folds",
    "studies",
    "synthetic",
]
