"""Analysis of entrodiag runs: the entropy–performance law, early prediction of the ceiling,
collapse flags with advice, the entropy-mechanism check, token analyses and run comparison.

Reads runs through ``entrodiag.load_run`` only (polars, numpy, scipy; never torch), so it works on
runs from any source: the built-in trainer, a custom loop, TRL, probes.

    from entrodiag.analysis import fit_entropy_law, detect_collapse, analyze_run
    fit = fit_entropy_law("runs/demo")            # R = −a·e^H + b, ceiling b − a
    flags = detect_collapse("runs/demo")          # [Flag(kind, severity, ..., advice)]
"""

from .collapse import SEVERITIES, CollapseThresholds, Flag, detect_collapse, run_detectors
from .compare import compare_runs
from .compute_law import ComputeFit, fit_compute_law
from .control import ControlSummary, control_summary
from .forecast import EntropyForecast, forecast_entropy
from .law import (
    EARLY_FRACTIONS,
    EarlyPrediction,
    LawFit,
    early_prediction,
    fit_entropy_law,
    law_points,
    pick_eval_metric,
    prediction_interval,
)
from .metric import MetricChoice, choose_metric
from .mechanism import MechanismCheck, mechanism_check
from .runs import AnalysisError
from .series import DEFAULT_SMOOTH
from .summary import analyze_run, render_summary
from .tokens import entropy_distribution, forking_leaderboard, hwe_span_stats

__all__ = [
    "DEFAULT_SMOOTH",
    "EARLY_FRACTIONS",
    "SEVERITIES",
    "AnalysisError",
    "CollapseThresholds",
    "ComputeFit",
    "ControlSummary",
    "EarlyPrediction",
    "EntropyForecast",
    "Flag",
    "LawFit",
    "MechanismCheck",
    "MetricChoice",
    "analyze_run",
    "choose_metric",
    "compare_runs",
    "control_summary",
    "detect_collapse",
    "forecast_entropy",
    "early_prediction",
    "entropy_distribution",
    "fit_compute_law",
    "fit_entropy_law",
    "forking_leaderboard",
    "hwe_span_stats",
    "law_points",
    "mechanism_check",
    "pick_eval_metric",
    "prediction_interval",
    "render_summary",
    "run_detectors",
]
