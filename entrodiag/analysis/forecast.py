"""When will the entropy run out? A forecast of the step at which a run's entropy reaches a floor.

Model: over the recent past, token entropy decays exponentially, ``log H(t) = α + β·t`` (β < 0).
Cui et al. (2025) find entropy consumed fastest early and then more slowly, so the fit uses only
the most recent ``window_frac`` of the recorded steps (at least ``min_window``): the decay rate
is the current one, not the average since the start. On the demo run this predicts, from 30% of
the steps, when entropy falls below half its start within 10% (``benchmarks/README.md``).

The interval comes from the fit's uncertainty: draws of (α, β) from the least-squares estimate's
normal approximation, its covariance inflated for the lag-1 autocorrelation of the residuals
(per-step entropy is correlated across steps), each draw giving a crossing step. Draws with β ≥ 0
never cross. When the median crossing lies beyond 10 times the steps seen so far (or never), no
step is predicted ("not in sight"); when the upper bound does, it is ``None`` ("may never reach
it"): an exponential fitted to a few hundred steps says nothing about a step 10 times further.

The premise: the entropy falls toward the floor. The floor counts as reached only when the smoothed
entropy is at or below it *now* (a dip below it that the entropy climbed back from is no crossing),
and a crossing is only forecast while the entropy falls at the end (β < 0 over the recent window).
Otherwise the forecast does not apply (``applies`` false, ``reason`` says why) and gives no step,
no steps left and no accuracy at the floor, as ``verdicts.judge_law`` withholds the law's numbers
where its premise fails: an exploding entropy has no step at which it falls to half its start.

For a run that has ended (``store.meta.ENDED``) the predicted step is what would have happened had
it gone on: ``ended`` is true and ``steps_left`` counts the steps after its end, not from now.

What the entropy law then says: ``accuracy_at_floor`` is ``R = −a·e^H + b`` evaluated at the floor
with the law fitted on the evaluations so far (``None`` without enough evaluations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..store.meta import ENDED
from .jsonable import clean
from .law import fit_entropy_law, law_points
from .runs import AnalysisError, RunLike, as_run
from .series import DEFAULT_SMOOTH, edge_size, edge_values, step_series, trailing_mean
from .stats import t_ppf

_Z975 = 1.959963984540054  # the normal 97.5% quantile
#: No step is predicted beyond this many times the steps seen so far (the model is local).
_HORIZON = 10
#: Start window of H0, as in the collapse detectors (3% of the steps, 1 to 10 steps).
_EDGE_FRAC, _EDGE_MAX = 0.03, 10


@dataclass(frozen=True)
class EntropyForecast:
    """The forecast of when a run's (smoothed) entropy reaches ``floor``.

    Attributes:
        floor: the floor in nats (``floor_frac`` · ``start`` unless given in nats).
        floor_frac: the floor as a share of the start entropy (``None`` when given in nats).
        start: H0, mean token entropy over the first steps (nats).
        current, current_step: smoothed entropy at the last step used.
        reached_step: the first step at which the smoothed entropy was at or below the floor, set
            only while it is at or below it at the last step (else ``None``: the prediction
            fields are set where the forecast applies).
        predicted_step, predicted_low, predicted_high: the predicted crossing step and its
            ``level`` interval (``predicted_high`` ``None``: may never reach it; all ``None``:
            entropy is not falling fast enough to predict a crossing).
        steps_left: ``predicted_step − current_step`` (0 once reached; for an ended run, the steps
            after its end).
        rate: β, the fitted change of log entropy per step (negative = falling).
        half_life: steps for the entropy to halve at that rate (``None`` if not falling).
        accuracy_at_floor: the entropy law's R at the floor, ``metric`` its evaluation name.
        n, window: points and (first, last) step of the fit.
        applies: whether the premise holds (the entropy at or below the floor now, or falling at
            the end); if not, ``reason`` says why and no step, steps left or accuracy is given.
        ended: the run had ended (finished, failed, interrupted, stopped) when forecast.
    """

    floor: float
    floor_frac: float | None
    start: float
    current: float
    current_step: int
    reached_step: int | None
    predicted_step: int | None
    predicted_low: int | None
    predicted_high: int | None
    steps_left: int | None
    rate: float
    half_life: float | None
    accuracy_at_floor: float | None
    metric: str | None
    level: float
    n: int
    window: tuple[int, int]
    applies: bool = True
    reason: str | None = None
    ended: bool = False

    def to_dict(self) -> dict:
        """JSON-ready dict (NaN → null)."""
        return clean(asdict(self))

    def describe(self, law: bool = True) -> str:
        """One sentence for a status line, a report or an alert; ``law=False`` leaves out the law's
        accuracy at the floor (where the law does not describe the run, ``verdicts.judge_law``)."""
        what = f"entropy {self.current:.3f} nats at step {self.current_step}; floor {self.floor:.3f}"
        if self.floor_frac is not None:
            what += f" ({self.floor_frac:.0%} of the start {self.start:.3f})"
        if not self.applies:
            return f"{what}. The forecast does not apply: {self.reason}"
        if self.reached_step is not None:
            return f"{what}: reached at step {self.reached_step}"
        if self.predicted_step is None:
            return f"{what}: not falling fast enough to predict when it is reached"
        hi = "never" if self.predicted_high is None else str(self.predicted_high)
        interval = f"{self.level:.0%} interval {self.predicted_low}–{hi}"
        if self.ended:
            text = (f"{what}: the run ended at step {self.current_step}; at its final trend it would have "
                    f"reached the floor at step ~{self.predicted_step} ({interval}), {self.steps_left} steps "
                    "after its end")
        else:
            text = f"{what}: reached at step ~{self.predicted_step} ({interval})"
        if law and self.accuracy_at_floor is not None:
            text += f"; the law predicts {self.metric} {self.accuracy_at_floor:.3f} there"
        return text


def forecast_entropy(
    run: RunLike,
    *,
    floor_frac: float = 0.5,
    floor: float | None = None,
    upto_step: int | None = None,
    window_frac: float = 0.5,
    min_window: int = 10,
    smooth: int = DEFAULT_SMOOTH,
    level: float = 0.9,
    n_draws: int = 4000,
    seed: int = 0,
    metric: str | None = None,
) -> EntropyForecast:
    """Forecast the step at which the smoothed token entropy reaches a floor.

    Args:
        run: a ``Run`` or a path to one.
        floor_frac: the floor as a share of the start entropy H0 (default half).
        floor: the floor in nats instead (overrides ``floor_frac``).
        upto_step: forecast as of this step (use only the steps up to it), e.g. to check a
            forecast against what happened next.
        window_frac, min_window: fit the last ``window_frac`` of the steps used, at least
            ``min_window`` steps.
        smooth: trailing mean (steps) that defines "the entropy has reached the floor".
        level: interval level (0.9).
        n_draws, seed: draws for the interval.
        metric: evaluation used for the law's accuracy at the floor (default as in the law fit).

    Raises:
        AnalysisError: fewer than ``min_window`` steps with entropy, or a non-positive floor.

    Example:
        >>> fc = forecast_entropy("runs/demo", upto_step=135)   # doctest: +SKIP
        >>> fc.predicted_step, fc.predicted_low, fc.predicted_high   # doctest: +SKIP
    """
    if not 0 < level < 1 or not 0 < window_frac <= 1 or min_window < 3:
        raise ValueError("need 0 < level < 1, 0 < window_frac <= 1 and min_window >= 3")
    run = as_run(run)
    steps, h = step_series(run, "entropy_mean")
    # ended as of the forecast: a forecast as of an earlier step (upto_step) is one made while it ran
    ended = run.status in ENDED and (upto_step is None or not len(steps) or upto_step >= steps[-1])
    if upto_step is not None:
        keep = steps <= upto_step
        steps, h = steps[keep], h[keep]
    if len(h) < min_window:
        raise AnalysisError(
            f"run {run.run_id} has {len(h)} step(s) with entropy; the forecast needs at least {min_window} "
            "(record every step with Recorder.record_batch)"
        )
    start = edge_values(h, edge_size(len(h), _EDGE_FRAC, _EDGE_MAX))[0]
    floor_frac = None if floor is not None else float(floor_frac)
    floor = float(floor) if floor is not None else floor_frac * start
    if not floor > 0:
        raise AnalysisError(f"the entropy floor must be positive, got {floor}")
    sm = trailing_mean(h, smooth)
    below = np.flatnonzero(sm <= floor)
    # reached only if below the floor now: a dip the entropy climbed back from is no crossing
    reached = int(steps[below[0]]) if len(below) and sm[-1] <= floor else None

    # fit log H on raw per-step values (smoothing would fake precision), twice: over every step
    # so far (the average decay rate) and over the recent window (the current rate); the draws of
    # both are pooled, so the interval covers an accelerating or a slowing decay.
    m = max(min_window, int(round(window_frac * len(h))))
    t_all, y_all = steps.astype(np.float64), np.log(np.clip(h, 1e-12, None))
    fits = [_ols_with_autocorrelation(t_all, y_all), _ols_with_autocorrelation(t_all[-m:], y_all[-m:])]
    t_now = float(steps[-1])
    beta = fits[1][1]
    common = dict(
        floor=floor, floor_frac=floor_frac, start=start, current=float(sm[-1]), current_step=int(t_now),
        rate=beta, half_life=float(np.log(2) / -beta) if beta < 0 else None, level=level, n=m,
        window=(int(steps[-m]), int(t_now)), ended=bool(ended),
    )
    if reached is None and not beta < 0:
        return EntropyForecast(**common, reached_step=None, predicted_step=None, predicted_low=None,
                               predicted_high=None, steps_left=None, accuracy_at_floor=None,
                               metric=metric, applies=False,
                               reason=_not_falling(steps, sm, below, floor, start, beta, common["window"]))
    acc, metric = _law_at(run, floor, upto_step, metric, smooth)
    if reached is not None:
        return EntropyForecast(**common, reached_step=reached, predicted_step=reached, predicted_low=None,
                               predicted_high=None, steps_left=0, accuracy_at_floor=acc, metric=metric)
    rng = np.random.default_rng(seed)
    draws = np.concatenate([
        rng.multivariate_normal([a, b], cov, size=n_draws // 2, method="eigh") for a, b, cov in fits
    ])
    falling = draws[:, 1] < 0
    cross = np.full(len(draws), np.inf)
    cross[falling] = (np.log(floor) - draws[falling, 0]) / draws[falling, 1]
    cross = np.sort(np.maximum(cross, t_now + 1))  # the smoothed entropy is still above the floor now
    tail = (1 - level) / 2
    lo, mid, hi = (cross[min(int(q * len(cross)), len(cross) - 1)] for q in (tail, 0.5, 1 - tail))
    horizon = t_now + _HORIZON * (t_now - float(steps[0]) + 1)  # beyond it a forecast means nothing
    predicted = int(np.ceil(mid)) if mid <= horizon else None
    return EntropyForecast(
        **common, reached_step=None, predicted_step=predicted,
        predicted_low=int(np.floor(lo)) if predicted is not None else None,
        predicted_high=int(np.ceil(hi)) if predicted is not None and hi <= horizon else None,
        steps_left=None if predicted is None else predicted - int(t_now),
        accuracy_at_floor=acc, metric=metric,
    )


def _not_falling(steps, sm, below, floor: float, start: float, beta: float, window: tuple[int, int]) -> str:
    """Why a forecast of the floor does not apply to an entropy above it that is not falling."""
    trend = "rising" if beta > 0 else "flat"
    why = (f"the entropy is {trend} at the end, by {beta:+.2g} log-nats per step over steps "
           f"{window[0]}–{window[1]}, {sm[-1]:.3f} nats at the last step")
    if sm[-1] > start:
        why += f", above its start {start:.3f}"
    if len(below):
        why += f"; it dipped to the floor at step {int(steps[below[0]])} and climbed back"
    return why + ": no step at which it reaches the floor can be forecast"


def _ols_with_autocorrelation(t: np.ndarray, y: np.ndarray) -> tuple[float, float, np.ndarray]:
    """Least squares ``y = α + β·t`` and the covariance of (α, β), inflated by (1+ρ)/(1−ρ) for the
    residuals' lag-1 autocorrelation ρ > 0 (an AR(1) correction of the effective sample size)."""
    X = np.column_stack([np.ones_like(t), t])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    dof = max(len(y) - 2, 1)
    s2 = float(resid @ resid) / dof
    rho = 0.0
    if len(resid) > 3 and resid.std() > 0:
        rho = float(np.clip(np.corrcoef(resid[:-1], resid[1:])[0, 1], 0.0, 0.9))
    cov = s2 * np.linalg.inv(X.T @ X) * (1 + rho) / (1 - rho)
    # t quantile for the few-points case: scale the covariance so that normal draws match it
    scale = (t_ppf(0.975, dof) / _Z975) ** 2
    return float(coef[0]), float(coef[1]), cov * scale


def _law_at(run, floor: float, upto_step: int | None, metric: str | None, smooth: int):
    """The entropy law's R at ``floor`` from the evaluations up to ``upto_step`` (or None)."""
    try:
        steps, H, R, metric = law_points(run, metric=metric, smooth=smooth)
        if upto_step is not None:
            keep = steps <= upto_step
            H, R = H[keep], R[keep]
        fit = fit_entropy_law((H, R), n_boot=0)
    except (AnalysisError, ValueError):
        return None, metric
    return float(fit.predict(floor)), metric
