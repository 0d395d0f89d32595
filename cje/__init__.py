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

if TYPE_CHECKING:
    from cje import bias, datasets, estimators, export, montecarlo, pairwise, plots, studies, synthetic
    from cje.analysis import analyze
    from cje.calibration import RewardCalibrator, fit_isotonic
    from cje.data import EvalData, load, prompt_folds
    from cje.errors import CJEInputError, CJEWarning
    from cje.monitoring import MonitorReport, monitor
    from cje.planning import Plan, plan
    from cje.report import Report
    from cje.results import CalibrationInfo, Contrast, PolicyEstimate, TransportAudit

    __version__: str

# Every public name is loaded on first use (PEP 562): `import cje` costs no numpy, and a command
# loads only the modules its path needs (`cje analyze` never loads cje.monitoring).
_LAZY = {
    "analyze": "cje.analysis",
    "RewardCalibrator": "cje.calibration",
    "fit_isotonic": "cje.calibration",
    "EvalData": "cje.data",
    "load": "cje.data",
    "prompt_folds": "cje.data",
    "CJEInputError": "cje.errors",
    "CJEWarning": "cje.errors",
    "MonitorReport": "cje.monitoring",
    "monitor": "cje.monitoring",
    "Plan": "cje.planning",
    "plan": "cje.planning",
    "Report": "cje.report",
    "CalibrationInfo": "cje.results",
    "Contrast": "cje.results",
    "PolicyEstimate": "cje.results",
    "TransportAudit": "cje.results",
}
_SUBMODULES = ("estimators", "synthetic", "bias", "pairwise", "plots", "montecarlo", "studies",
               "export", "datasets")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cje")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "0.1.0.dev0"


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"cje.{name}")
    elif name == "__version__":
        #: The installed version (from the package metadata; ``0.1.0.dev0`` in an uninstalled tree).
        value = _version()
    else:
        raise AttributeError(f"module 'cje' has no attribute {name!r}")
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})


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
