"""Helpers shared by the analysis modules: run resolution, the error type, step series, smoothing.

Imports polars and numpy only (never torch): ``entrodiag.analysis`` must load where no training
stack is installed (a laptop reading runs copied from a cluster).
"""

from __future__ import annotations

import math
import os
from typing import Any, Union

import numpy as np
import polars as pl

from ..store.reader import Run, load_run

RunLike = Union[Run, str, "os.PathLike[str]"]

#: Default trailing window (in recorded steps) over which training entropy and reward are averaged
#: before they are compared or paired with an evaluation. Per-step batch entropy is noisy (a few
#: hundred responses); 5 steps removes most of that noise without lagging a collapse by more than
#: ~2 steps. Cui et al. (2025) validated every 4 steps; a window of about that length matches.
DEFAULT_SMOOTH = 5


class AnalysisError(ValueError):
    """The run (or data) cannot support this analysis; the message says what to log or change."""


def as_run(run: RunLike) -> Run:
    """A ``Run`` as is; a path through ``load_run`` (a run dir or a folder holding one run)."""
    if isinstance(run, Run):
        return run
    if isinstance(run, (str, os.PathLike)):
        return load_run(run)
    raise TypeError(f"expected a Run or a path to a run directory, got {type(run).__name__}")


def step_series(run: Run, column: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of a step column with null/NaN rows dropped, sorted by step.

    Returns two empty arrays when the run has no step rows or no such column.
    """
    steps = run.steps
    if steps.is_empty() or column not in steps.columns:
        return np.empty(0, dtype=np.int64), np.empty(0)
    df = (
        steps.select(pl.col("step").cast(pl.Int64), pl.col(column).cast(pl.Float64))
        .drop_nulls()
        .filter(pl.col(column).is_finite())
        .sort("step")
    )
    return df["step"].to_numpy(), df[column].to_numpy()


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values up to and including each position (fewer at the start)."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) == 0:
        return v.copy()
    c = np.concatenate([[0.0], np.cumsum(v)])
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


def edge_size(n: int, frac: float, cap: int) -> int:
    """Steps in the 'start' (or 'end') window of an ``n``-step run: ``frac·n``, within [1, cap]."""
    return int(max(1, min(cap, round(frac * n))))


def finite(x: Any) -> float | None:
    """``float(x)`` or ``None`` when missing or not finite (JSON has no NaN)."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def clean(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays into Python values and NaN/inf into ``None``."""
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [clean(v) for v in obj.tolist()]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return finite(obj)
    return obj
