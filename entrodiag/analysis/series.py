"""Step series and the helpers that read them: smoothing, the start and end of a series, late
starts, change points.

Imports polars and numpy only (never torch): ``entrodiag.analysis`` must load where no training
stack is installed (a laptop reading runs copied from a cluster).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ..store.reader import Run

#: Default trailing window (in recorded steps) over which training entropy and reward are averaged
#: before they are compared or paired with an evaluation. Per-step batch entropy is noisy (a few
#: hundred responses); 5 steps removes most of that noise without lagging a collapse by more than
#: ~2 steps. Cui et al. (2025) validated every 4 steps; a window of about that length matches.
DEFAULT_SMOOTH = 5


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


#: fewest points in a 'start' or 'end' window (a sparse log's start is never one logged point)
MIN_EDGE = 3


def edge_size(n: int, frac: float, cap: int) -> int:
    """Points in the 'start' (or 'end') window of an ``n``-point series: ``frac·n``, at least
    ``MIN_EDGE`` (a log of a few dozen points does not judge its start by one point), at most
    ``cap`` or a tenth of the series, whichever is larger (a long log's start is not judged by a
    handful of its noisiest points: 2,400 points give 72 at 3%), at most a quarter of the series;
    never below 1."""
    k = min(max(int(cap), n // 10), max(MIN_EDGE, round(frac * n)))
    return int(max(1, min(k, n // 4)))


def _edge(v: np.ndarray) -> float:
    """The value at the edge ``v[0]`` from the ``k`` points ``v`` nearest to it: their median (one
    odd point does not set it), unless they run monotonically away from the edge (a trend, as in a
    collapse within the first logged points, where the median would lag the edge): then the median
    of the third of them nearest to the edge."""
    d = np.diff(v)
    if len(v) >= 3 and (np.all(d <= 0) or np.all(d >= 0)):
        return float(np.median(v[: max(1, -(-len(v) // 3))]))
    return float(np.median(v))


def edge_values(values: np.ndarray, k: int) -> tuple[float, float]:
    """``(start, end)`` of a series from its first and last ``k`` values (see ``_edge``: their
    median, or the points nearest the edge where they trend)."""
    v = np.asarray(values, dtype=np.float64)
    return _edge(v[:k]), _edge(v[::-1][:k])


#: share of a series' points in the collapse detectors' smoothing window (``effective_smooth``)
SMOOTH_FRAC = 0.1


def effective_smooth(n: int, smooth: int, frac: float = SMOOTH_FRAC) -> int:
    """The trailing window the collapse detectors smooth an ``n``-point series over:
    ``w = max(min(smooth, ⌊n/10⌋), round(frac·n), 1)``: a fixed share of the series (a tenth by
    default: 40 points → 4, 200 → 20, 2,400 → 240), at least ``smooth`` where that is at most a
    tenth of the series. A window that grows with the series keeps the number of independent windows
    fixed, so that the chance that noise alone makes a low and a later high (an "explosion") or a
    dip below the start (an "early collapse") does not grow with the number of logged points; a
    sparse log (tens of points) is not averaged over more than a tenth of its length."""
    return int(max(1, min(int(smooth), n // 10), round(frac * n)))


def trailing_median(values: np.ndarray, window: int) -> np.ndarray:
    """Median of the last ``window`` values up to and including each position (fewer at the start):
    one outlying step (a batch of a few responses) does not move it, unlike a trailing mean."""
    v = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(v) == 0:
        return v.copy()
    return pl.Series(v).rolling_median(window_size=int(window), min_samples=1).to_numpy().astype(np.float64)


def step_noise(values: np.ndarray) -> float:
    """The per-point noise of a series, robustly: ``1.4826 · median|Δv| / √2`` (the median absolute
    step change, scaled to a normal standard deviation: differences cancel a slow trend, and the
    median ignores the steps of a jump as long as they are fewer than half). 0.0 for fewer than 3
    points."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 3:
        return 0.0
    return float(1.4826 * np.median(np.abs(np.diff(v))) / np.sqrt(2.0))


def median_noise(noise, window: int):
    """The standard deviation of a trailing median over ``window`` points of per-point noise
    ``noise`` (a number or an array): ``noise · √(π / (2·window))``, the large-sample value; one
    point: ``noise``."""
    return noise * (np.sqrt(np.pi / (2.0 * int(window))) if window > 1 else 1.0)


def late_start(steps: np.ndarray) -> dict | None:
    """A log whose first step is far from the start of training: ``{"first_step", "missing",
    "interval", "text"}``, else ``None``. Far: the first logged step lies more than two logging
    intervals (the median gap between logged steps) after step 1 (frameworks count from 0 or 1),
    as in a resumed run whose log starts at step 101."""
    s = np.unique(np.asarray(steps, dtype=np.int64))
    if len(s) == 0:
        return None
    first = int(s[0])
    interval = max(1, int(np.median(np.diff(s)))) if len(s) > 1 else 1
    missing = first - 1
    if first <= 1 or missing <= 2 * interval:
        return None
    return {"first_step": first, "missing": missing, "interval": interval,
            "text": f"log starts at step {first}: the first {missing} steps are missing (a resumed run, or a "
                    "log kept from a later point); 'start' below means step " + str(first) + ", not the start of "
                    "training"}


def change_point(x: np.ndarray, y: np.ndarray, *, max_candidates: int = 200) -> int:
    """Index where a change of ``y`` begins: the ``k`` of the best least-squares fit of
    ``y ≈ c0 + c1·max(0, x − x_k)`` (level until ``x_k``, then a linear trend), over at most
    ``max_candidates`` candidates. 0 for fewer than 4 points."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 4:
        return 0
    cands = np.arange(0, n - 2)
    if len(cands) > max_candidates:
        cands = np.unique(np.linspace(0, n - 3, max_candidates).round().astype(np.int64))
    z = np.maximum(0.0, x[None, :] - x[cands][:, None])  # [K, n]
    zc = z - z.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    szz = (zc * zc).sum(axis=1)
    szy = zc @ yc
    sse = float(yc @ yc) - np.where(szz > 0, szy * szy / np.where(szz > 0, szz, 1.0), 0.0)
    return int(cands[int(np.argmin(np.round(sse, 12)))])
