"""Everything a report shows, gathered once from ``entrodiag.analysis`` (the report computes no
statistic of its own: pages only lay these numbers out)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np
import polars as pl

from ..analysis import AnalysisError, analyze_run, compare_runs, early_prediction, fit_entropy_law
from ..analysis.series import DEFAULT_SMOOTH, step_series, trailing_mean
from ..analysis.law import EarlyPrediction, LawFit
from ..analysis.metric import MetricChoice
from ..analysis.mechanism import AFTER_UPDATE_COLUMNS
from ..store.reader import Run, load_run

RunLike = Union[Run, str, "os.PathLike[str]"]


@dataclass
class ReportData:
    """The run, ``analyze_run``'s summary, the law fit with its points, and the runs compared."""

    run: Run
    summary: dict
    fit: LawFit | None = None
    early: list[EarlyPrediction] = field(default_factory=list)
    others: list[Run] = field(default_factory=list)
    comparison: pl.DataFrame | None = None

    @property
    def metric(self) -> str | None:
        """The evaluation used as R of the law (``None`` without a fit)."""
        law = self.summary.get("law", {})
        return law.get("metric") if law.get("status") == "ok" else None

    @property
    def law_fits(self) -> bool:
        """Whether the law's ceiling and early prediction may be shown (``verdicts.judge_law``)."""
        return bool((self.summary.get("law", {}).get("verdict") or {}).get("numbers_shown"))

    @property
    def eval_names(self) -> list[str]:
        return list(self.summary["run"].get("eval_metrics") or [])

    def section(self, name: str) -> dict:
        """A section of the summary (``{"status": "empty", "reason": ...}`` when absent)."""
        return self.summary.get(name) or {"status": "empty", "reason": f"no {name} section"}


def _as_run(run: RunLike) -> Run:
    return run if isinstance(run, Run) else load_run(run)


def collect(run: RunLike, compare: Sequence[RunLike] | None = None, metric: str | None = None) -> ReportData:
    """Load ``run`` (and the runs to compare), analyse it, and fit the law with its points
    (``metric``: R of the law, as ``entrodiag analyze --metric``; default ``choose_metric``'s).

    Raises:
        RunError: a path that is not a run (the CLI turns it into exit code 2).
    """
    run = _as_run(run)
    others = [_as_run(r) for r in (compare or [])]
    summary = analyze_run(run, metric=metric)
    data = ReportData(run=run, summary=summary, others=others)
    law = summary.get("law", {})
    if law.get("status") == "ok":
        try:  # the same fit as the summary's (same metric, smoothing, bootstrap seed), with its points
            m = summary.get("metric") or {}
            choice = (MetricChoice(m["name"], m["source"], m["label"], m["reason"])
                      if m.get("status") == "ok" else law.get("metric"))
            data.fit = fit_entropy_law(run, metric=choice, smooth=law.get("smooth") or DEFAULT_SMOOTH)
            data.early = early_prediction(data.fit) if data.law_fits else []  # none where the law fails
        except AnalysisError:
            data.fit = None
    if others:
        data.comparison = compare_runs([run, *others])
    return data


def series(run: Run, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a step column (empty arrays when the run does not have it)."""
    return step_series(run, column)


def smoothed(values: np.ndarray, window: int = DEFAULT_SMOOTH) -> np.ndarray:
    """The analysis layer's trailing mean (the smoothing its detectors use)."""
    return trailing_mean(values, window)


def mechanism_points(run: Run) -> dict[str, Any]:
    """The per-step points behind ``mechanism_check``: measured ΔH (after-update entropy of the
    same batch when logged, else the next step's) against −cov_mean and against
    entropy_pressure, paired on the same steps as the check pairs them."""
    steps, h = step_series(run, "entropy_mean")
    out: dict[str, Any] = {"cov": None, "pressure": None}
    if len(h) == 0:
        return out
    d_steps, delta = steps[:-1], np.diff(h)
    for col in AFTER_UPDATE_COLUMNS:
        a_steps, after = step_series(run, col)
        if len(after) >= 8:
            common, ia, ih = np.intersect1d(a_steps, steps, return_indices=True)
            d_steps, delta = common, after[ia] - h[ih]
            break
    for key, col, sign in (("cov", "cov_mean", -1.0), ("pressure", "entropy_pressure", 1.0)):
        c_steps, c = step_series(run, col)
        common, i_d, i_c = np.intersect1d(d_steps, c_steps, return_indices=True)
        if len(common):
            out[key] = (common, sign * c[i_c], delta[i_d])
    return out


__all__ = ["ReportData", "collect", "mechanism_points", "series", "smoothed"]
