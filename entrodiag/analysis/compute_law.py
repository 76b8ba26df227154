"""The compute-axis ceiling: ScaleRL's sigmoid of performance against cumulative compute
(Khatri et al. 2025, "The Art of Scaling Reinforcement Learning Compute for LLMs", arXiv 2510.13786),

    R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B),

fitted to a run's validation score R. A is the asymptote (the plateau the recipe reaches), B the
steepness, C_mid the compute at which half of the gain A − R0 is reached. It forecasts the plateau
independently of entropy; the entropy law (``law``) gives the other ceiling.

Axis (``compute_axis``): the first the run has, on at least ``COVERAGE`` of its step rows,
of generated tokens (``num_tokens_seen`` as logged, cumulative; else ``n_tokens`` per step; else
``resp_len_mean`` × ``n_responses`` per step), logged FLOPs (``total_flops``/``total_flos``
cumulative, ``flops`` per step), GPU-hours (``gpu_hours``, cumulative), else the step itself.
A per-step value counts for the steps since the previous logged row (so a log of every 10th step
still sums the compute of all of them); the unlogged steps before the first row cost as much as it.

Start cut (``START_FRAC``): evaluations at a compute below 10% of the largest compute fitted are
left out of the fit (ScaleRL leaves out the first ~1.5k GPU-hours of runs of 16k and more: the
noisy start). R0 is the performance before training: the first evaluation when it is at step 0
(or, for bare ``(C, R)``, at C = 0) and in the left-out start (it is then held fixed), else a free
parameter (a first evaluation after training started, as TRL's and imported runs have, is not R0;
a smoothed training series's R0 is free too: its residuals, smoothed, would understate the noise
of the one raw value that R0 is).

A series longer than ``MAX_POINTS`` (120) after the cut, a training reward logged every step, is
averaged in consecutive blocks to 120 points first (it bounds the bootstrap's cost); a smoothing
window of w points then spans 1 + ⌈(w − 1)·120/n⌉ means (at most a third of them).

Fit: A and R0 enter linearly, so for each (B, C_mid) they are a least-squares solution; (B, C_mid)
are found on a grid (log-spaced) and refined by Nelder–Mead. Intervals: a residual bootstrap
(residuals rescaled by sqrt(n/(n−p)), refitted on the grid; a fixed R0 gets a resampled residual
too, being one evaluation; a smoothed training series's residuals in moving blocks of the smoothing
window, its neighbours being correlated), percentile intervals at ``level``.

Premises (``judge_compute``, the same words as the law's ``verdicts.judge_law``; not a fit →
no number): ``not applicable`` when R fell with compute (the rise A − R0 below 0 beyond its
interval); ``poor fit`` when the sigmoid is no better than a constant (F-test, p > 0.05), the
rise is not established (its interval reaches 0), the asymptote lies outside [0, 1] for a share
(an accuracy, a pass rate), or the half-way point lies beyond ``MID_MAX`` × the compute seen (the
plateau is an extrapolation of the early rise). Fewer than ``MIN_POINTS`` points after the cut
raise ``AnalysisError``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from ..store.reader import Run
from . import stats
from .jsonable import clean
from .law import choose_metric_or_explain
from .metric import MetricChoice
from .runs import AnalysisError, RunLike, as_run
from .series import DEFAULT_SMOOTH, trailing_mean
from .verdicts import SHARE_MAX, LawVerdict

#: evaluations below this share of the largest compute fitted are left out (the noisy start)
START_FRAC = 0.1
#: points needed after the cut (four parameters at most)
MIN_POINTS = 6
#: more points than this after the cut (a training series) are averaged in consecutive blocks to this many
MAX_POINTS = 120
#: a step column names a compute axis when it has a value on this share of the step rows
COVERAGE = 0.9
#: the half-way point may lie at most this many times beyond the largest compute fitted
MID_MAX = 3.0
#: p-value above which the sigmoid is no better than a constant (F-test)
CONSTANT_P = 0.05

#: (axis, columns, how): the compute axes in order of preference
AXES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("tokens", ("num_tokens_seen",), "cumulative"),
    ("tokens", ("n_tokens",), "per step"),
    ("tokens", ("resp_len_mean", "n_responses"), "per step"),
    ("flops", ("total_flops",), "cumulative"),
    ("flops", ("total_flos",), "cumulative"),
    ("flops", ("flops",), "per step"),
    ("gpu_hours", ("gpu_hours",), "cumulative"),
)

_B_GRID = np.geomspace(0.2, 8.0, 41)


@dataclass(frozen=True)
class ComputeAxis:
    """Cumulative compute ``C`` at each step row ``step`` (sorted); ``axis`` is ``tokens``,
    ``flops``, ``gpu_hours`` or ``steps``, ``source`` says which columns and how."""

    axis: str
    source: str
    step: np.ndarray
    C: np.ndarray

    def at(self, steps: Sequence[float] | np.ndarray) -> np.ndarray:
        """Compute at ``steps`` (linear between rows; from 0 before the first)."""
        st = np.asarray(steps, dtype=np.float64)
        if self.axis == "steps":
            return st + (1.0 if self.step[0] == 0 else 0.0)
        s = np.concatenate([[self.step[0] - 1.0], self.step])
        c = np.concatenate([[0.0], self.C])
        out = np.interp(st, s, c)
        beyond = st > s[-1]
        if beyond.any():
            out[beyond] = c[-1] + (st[beyond] - s[-1]) * self.rate()
        return out

    def rate(self) -> float:
        """Compute per step over the last quarter of the rows (to place compute beyond the last)."""
        k = max(2, len(self.step) // 4)
        ds = float(self.step[-1] - self.step[-k]) if len(self.step) >= k else 0.0
        return float(self.C[-1] - self.C[-k]) / ds if ds > 0 else float(self.C[-1]) / max(float(self.step[-1]), 1.0)

    def step_of(self, c: float) -> float | None:
        """The step at which the cumulative compute reaches ``c`` (extrapolated at the last rate)."""
        if not math.isfinite(c):
            return None
        if self.axis == "steps":
            return c - (1.0 if self.step[0] == 0 else 0.0)
        if c <= self.C[-1]:
            return float(np.interp(c, self.C, self.step))
        r = self.rate()
        return float(self.step[-1] + (c - self.C[-1]) / r) if r > 0 else None


def compute_axis(run: RunLike) -> ComputeAxis:
    """The compute axis of ``run`` (see the module docstring for the order)."""
    steps = as_run(run).steps
    if steps.is_empty():
        raise AnalysisError("no step rows: the compute axis needs the run's steps")
    steps = steps.sort("step")
    st = steps["step"].cast(pl.Float64).to_numpy()
    n = len(st)
    for axis, cols, how in AXES:
        if not all(c in steps.columns for c in cols):
            continue
        vals = np.ones(n)
        for c in cols:
            vals = vals * steps[c].cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)
        ok = np.isfinite(vals) & (vals >= 0)
        if ok.sum() < COVERAGE * n or ok.sum() < 2:
            continue
        if how == "cumulative":
            c_ok = vals[ok]
            if np.any(np.diff(c_ok) < 0) or c_ok[-1] <= 0:
                continue
            C = np.interp(st, st[ok], c_ok)
        else:
            v = np.where(ok, vals, np.median(vals[ok]))
            gap = np.diff(st, prepend=st[0] - (st[0] + (1.0 if st[0] == 0 else 0.0)))
            C = np.cumsum(v * np.maximum(gap, 0.0))
            if C[-1] <= 0:
                continue
        src = " × ".join(cols) + (" (cumulative, as logged)" if how == "cumulative" else ", summed over the steps")
        return ComputeAxis(axis, src, st, C)
    return ComputeAxis("steps", "the step (no tokens, FLOPs or GPU-hours logged)", st,
                       st + (1.0 if st[0] == 0 else 0.0))


@dataclass(frozen=True)
class ComputeFit:
    """A fitted ScaleRL sigmoid R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B) (see the module docstring).

    Attributes:
        A: the asymptote (the compute ceiling); B: steepness; C_mid: compute at half the gain.
        R0: performance before training (``r0_fixed``: the first evaluation, held fixed).
        ci: ``level`` residual-bootstrap percentile intervals of ``A``, ``B``, ``C_mid``, ``R0``
            (when free) and ``mid_step``.
        mid_step: the step at which C_mid is reached (extrapolated at the last rate beyond the run).
        axis, axis_source: the compute axis and the columns it comes from.
        cut: compute below which points were left out; ``n_cut`` how many.
        r2, rmse, n: fit quality on the ``n`` fitted points; ``p_constant``: F-test p-value
            against a constant.
        c_max: the largest compute fitted; metric: R's name.
    """

    A: float
    B: float
    C_mid: float
    R0: float
    r0_fixed: bool
    ci: dict[str, tuple[float, float]]
    mid_step: float | None
    axis: str
    axis_source: str
    cut: float
    n_cut: int
    r2: float
    rmse: float
    p_constant: float
    n: int
    c_max: float
    level: float = 0.95
    metric: str | None = None
    metric_choice: MetricChoice | None = field(default=None, repr=False)
    steps: tuple[float, ...] = field(default=(), repr=False)
    C: tuple[float, ...] = field(default=(), repr=False)
    R: tuple[float, ...] = field(default=(), repr=False)
    boot: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def rise(self) -> float:
        return self.A - self.R0

    def predict(self, C: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
        """R(C) at compute ``C`` (a number or an array)."""
        out = sigmoid_value(self.A, self.B, self.C_mid, self.R0, np.asarray(C, dtype=np.float64))
        return float(out) if np.ndim(C) == 0 else out

    def to_dict(self, points: bool = False) -> dict:
        """JSON-ready dict (NaN → None); ``points=True`` adds the fitted (step, C, R) points."""
        d = {k: getattr(self, k) for k in ("A", "B", "C_mid", "R0", "r0_fixed", "mid_step", "axis", "axis_source",
                                            "cut", "n_cut", "r2", "rmse", "p_constant", "n", "c_max", "level",
                                            "metric")}
        d["ci"] = {k: list(v) for k, v in self.ci.items()}
        d["rise"] = self.rise
        d["metric_choice"] = self.metric_choice.to_dict() if self.metric_choice else None
        if points:
            d["points"] = {"step": list(self.steps), "C": list(self.C), "R": list(self.R)}
        return clean(d)


def sigmoid_value(A: float, B: float, C_mid: float, R0: float, C: np.ndarray) -> np.ndarray:
    """R0 + (A − R0) / (1 + (C_mid / C)^B), R0 at C = 0."""
    from scipy import special  # at first use: analyze reads the token rows while scipy imports

    with np.errstate(divide="ignore"):
        s = special.expit(B * (np.log(np.maximum(C, 1e-300)) - math.log(C_mid)))
    return R0 + (A - R0) * s


def _linear(S: np.ndarray, Y: np.ndarray, r0: float | np.ndarray | None):
    """For sigmoid values ``S`` [G, n] and responses ``Y`` [m, n]: A, R0 [m, G] and SSE [m, G]."""
    if r0 is not None:  # a number, or one per row of Y
        r0c = np.broadcast_to(np.asarray(r0, dtype=np.float64), (len(Y),))[:, None]
        y = Y - r0c
        ss = (S * S).sum(1)  # [G]
        sy = y @ S.T  # [m, G]
        D = sy / np.maximum(ss, 1e-300)
        sse = (y * y).sum(1, keepdims=True) - D * sy
        return r0c + D, np.broadcast_to(r0c, D.shape), sse
    U = 1.0 - S
    uu, uv, vv = (U * U).sum(1), (U * S).sum(1), (S * S).sum(1)
    uy, vy = Y @ U.T, Y @ S.T
    det = uu * vv - uv * uv
    det = np.where(np.abs(det) < 1e-12, np.nan, det)
    R0 = (vv * uy - uv * vy) / det
    A = (uu * vy - uv * uy) / det
    sse = (Y * Y).sum(1, keepdims=True) - R0 * uy - A * vy
    return A, R0, np.where(np.isfinite(sse), sse, np.inf)


def _grid(x: np.ndarray, around: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(B, ln m) grid points: log-spaced over the whole range, plus a fine grid ``around`` a point
    (B, ln m) (the bootstrap's draws lie mostly near the estimate)."""
    lo, hi = math.log(float(x.min())) - 2.0, math.log(MID_MAX * 3)
    coarse = 1 if around is None else 2  # the bootstrap: every other point, the fine grid does the rest
    Bg, Mg = np.meshgrid(_B_GRID[::coarse], np.linspace(lo, hi, 61)[::coarse], indexing="ij")
    Bs, lms = Bg.ravel(), Mg.ravel()
    if around is not None:
        lb = np.clip(math.log(around[0]) + np.linspace(-0.4, 0.4, 33), math.log(_B_GRID[0]), math.log(_B_GRID[-1]))
        fb, fm = np.meshgrid(np.exp(lb), np.clip(around[1] + np.linspace(-0.3, 0.3, 41), lo, hi), indexing="ij")
        Bs, lms = np.concatenate([Bs, fb.ravel()]), np.concatenate([lms, fm.ravel()])
    return Bs, lms


def _fit(x: np.ndarray, Y: np.ndarray, r0: float | np.ndarray | None, refine: bool,
         around: tuple[float, float] | None = None):
    """Best (A, B, ln m, R0, sse) per row of Y, x = C / c_max (grid, then Nelder–Mead if ``refine``)."""
    from scipy import optimize, special

    Bs, lms = _grid(x, around)
    S = special.expit(Bs[:, None] * (np.log(x)[None, :] - lms[:, None]))
    A, R0, sse = _linear(S, Y, r0)
    best = np.argmin(sse, axis=1)
    rows = np.arange(len(Y))
    out = np.stack([A[rows, best], Bs[best], lms[best], R0[rows, best], sse[rows, best]], axis=1)
    if refine:
        bounds = [(math.log(_B_GRID[0]), math.log(_B_GRID[-1])), (float(lms.min()), float(lms.max()))]
        r0s = None if r0 is None else np.broadcast_to(np.asarray(r0, dtype=np.float64), (len(Y),))
        for i in range(len(Y)):
            r0i = None if r0s is None else float(r0s[i])

            def sse(p, y=Y[i][None, :], r0i=r0i):
                a, r, e = _linear(special.expit(math.exp(p[0]) * (np.log(x) - p[1]))[None, :], y, r0i)
                return a[0, 0], r[0, 0], float(e[0, 0]) if math.isfinite(e[0, 0]) else 1e300

            res = optimize.minimize(lambda p: sse(p)[2], [math.log(out[i, 1]), out[i, 2]], method="Nelder-Mead",
                                    bounds=bounds, options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 400})
            if res.fun <= out[i, 4]:
                a, r, e = sse(res.x)
                out[i] = [a, math.exp(res.x[0]), res.x[1], r, e]
    return out


def metric_points(run: Run, choice: MetricChoice, smooth: int = DEFAULT_SMOOTH) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, R)`` of ``choice``: its evaluations, or the training series as a trailing mean."""
    if choice.is_training:
        s = run.steps.select(pl.col("step").cast(pl.Float64), pl.col(choice.name).cast(pl.Float64).alias("R"))
        s = s.drop_nulls().filter(pl.col("R").is_finite()).sort("step")
        return s["step"].to_numpy(), trailing_mean(s["R"].to_numpy(), smooth)
    e = (run.evals.filter(pl.col("name") == choice.name)
         .select(pl.col("step").cast(pl.Float64), pl.col("value").cast(pl.Float64).alias("R"))
         .drop_nulls().filter(pl.col("R").is_finite()).sort("step"))
    return e["step"].to_numpy(), e["R"].to_numpy()


def fit_arrays(C: np.ndarray, R: np.ndarray, *, n_boot: int = 200, level: float = 0.95, seed: int = 0,
               axis: ComputeAxis | None = None, steps: np.ndarray | None = None, block: int = 1,
               **meta) -> ComputeFit:
    """The sigmoid fitted to ``(C, R)`` (C cumulative, increasing) after the start cut; ``block``: R's smoothing."""
    C, R = np.asarray(C, dtype=np.float64), np.asarray(R, dtype=np.float64)
    ok = np.isfinite(C) & np.isfinite(R)
    C, R = C[ok], R[ok]
    steps = np.asarray(steps, dtype=np.float64)[ok] if steps is not None else C.copy()
    if len(C) == 0 or C.max() <= 0:
        raise AnalysisError("no evaluation at a positive compute: the sigmoid needs R after training started")
    cut = START_FRAC * float(C.max())
    keep = C >= cut
    n = int(keep.sum())
    if n < MIN_POINTS:
        raise AnalysisError(f"only {n} evaluation point(s) at or after {START_FRAC:.0%} of the compute (the "
                            f"noisy start is left out); the compute sigmoid needs at least {MIN_POINTS}: "
                            "evaluate more often")
    r0 = float(R[0]) if C[0] < cut and steps[0] <= 0 and block <= 1 else None  # before training, unsmoothed
    c_max = float(C.max())
    n_cut = int((~keep).sum())
    C, y, steps = C[keep], R[keep], steps[keep]
    if n > MAX_POINTS:  # a long series (a training reward): block means, to bound the bootstrap's cost
        C, y, steps = (np.array([b.mean() for b in np.array_split(v, MAX_POINTS)]) for v in (C, y, steps))
        block, n = 1 + -(-(block - 1) * MAX_POINTS // n), MAX_POINTS  # neighbours share block - 1 points
    block = max(1, min(block, n // 3))  # at least 3 block starts
    x = C / c_max
    p = 3 if r0 is not None else 4
    A, B, lm, R0, sse = _fit(x, y[None, :], r0, refine=True)[0]
    C_mid = math.exp(lm) * c_max
    pred = sigmoid_value(A, B, C_mid, R0, C)
    resid = y - pred
    ss_tot = float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - float(sse) / ss_tot if ss_tot > 0 else float("nan")
    dfd = n - p
    p_const = stats.f_test_p(float(ss_tot), float(sse), p, dfd)
    ci: dict[str, tuple[float, float]] = {}
    boot = None
    to_step = (lambda c: axis.step_of(c)) if axis is not None else (lambda c: c)
    mid_step = to_step(C_mid)
    if n_boot > 0 and dfd > 0:
        rng = np.random.default_rng(seed)
        e = (resid - resid.mean()) * math.sqrt(n / dfd)
        Y = pred[None, :] + stats.resample_residuals(e, n_boot, rng, block)
        # a fixed R0 is one evaluation: its noise is resampled too
        r0b = None if r0 is None else r0 + rng.choice(e, size=n_boot, replace=True)
        boot = _fit(x, Y, r0b, refine=False, around=(B, lm))
        q = (0.5 - level / 2, 0.5 + level / 2)
        draws = {"A": boot[:, 0], "B": boot[:, 1], "C_mid": np.exp(boot[:, 2]) * c_max}
        if r0 is None:
            draws["R0"] = boot[:, 3]
        draws["rise"] = boot[:, 0] - boot[:, 3]
        for k, v in draws.items():
            v = v[np.isfinite(v)]
            if len(v) > 1:
                ci[k] = (float(np.quantile(v, q[0])), float(np.quantile(v, q[1])))
        if "C_mid" in ci and mid_step is not None:
            lo, hi = (to_step(c) for c in ci["C_mid"])
            if lo is not None and hi is not None:
                ci["mid_step"] = (float(lo), float(hi))
    return ComputeFit(
        A=float(A), B=float(B), C_mid=float(C_mid), R0=float(R0), r0_fixed=r0 is not None, ci=ci,
        mid_step=None if mid_step is None else float(mid_step), axis=axis.axis if axis else "C",
        axis_source=axis.source if axis else "as given", cut=cut, n_cut=n_cut, r2=r2,
        rmse=float(np.sqrt((resid**2).mean())), p_constant=p_const, n=n, c_max=c_max, level=level,
        steps=tuple(float(s) for s in steps), C=tuple(float(c) for c in C),
        R=tuple(float(r) for r in y), boot=boot, **meta)


def fit_compute_law(data: RunLike | tuple[Sequence[float], Sequence[float]], *,
                    metric: str | MetricChoice | None = None, smooth: int = DEFAULT_SMOOTH, n_boot: int = 200,
                    level: float = 0.95, seed: int = 0) -> ComputeFit:
    """Fit R(C) = R0 + (A − R0) / (1 + (C_mid / C)^B) (ScaleRL, arXiv 2510.13786) to a run or to (C, R).

    Args:
        data: a ``Run``, a run directory, or ``(C, R)`` (cumulative compute, performance).
        metric: R (as ``fit_entropy_law``: ``None`` lets ``choose_metric`` pick).
        smooth: trailing window of a training series used as R (a run without evaluations).
        n_boot: residual-bootstrap resamples for the intervals (0: none).
        level, seed: the intervals' level and the bootstrap's seed.

    Raises:
        AnalysisError: no R, or fewer than ``MIN_POINTS`` points after the start cut.

    Example:
        >>> import numpy as np
        >>> C = np.linspace(0, 1000, 41); R = 0.1 + 0.5 / (1 + (300 / np.maximum(C, 1e-9)) ** 2)
        >>> f = fit_compute_law((C, R), n_boot=0)
        >>> round(f.A, 3), round(f.B, 2), round(f.C_mid), round(f.R0, 3)
        (0.6, 2.0, 300, 0.1)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if isinstance(data, tuple):
        if len(data) != 2 or len(data[0]) != len(data[1]):
            raise ValueError("give (C, R): two sequences of equal length")
        C = np.asarray(data[0], dtype=np.float64)
        order = np.argsort(C, kind="stable")
        return fit_arrays(C[order], np.asarray(data[1], dtype=np.float64)[order], n_boot=n_boot, level=level,
                          seed=seed)
    run = as_run(data)
    choice = choose_metric_or_explain(run, metric)
    steps, R = metric_points(run, choice, smooth)
    axis = compute_axis(run)
    try:
        return fit_arrays(axis.at(steps), R, n_boot=n_boot, level=level, seed=seed, axis=axis, steps=steps,
                          block=smooth if choice.is_training else 1, metric=choice.name, metric_choice=choice)
    except AnalysisError as e:
        raise AnalysisError(f"run {run.run_id}, metric {choice.name}: {e}") from None


def predict_final(fit: ComputeFit, c_new: float, level: float = 0.9) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: R at compute ``c_new`` with a ``level`` prediction interval: the
    bootstrap spread of R̂(c_new) and one evaluation's noise, added in quadrature with a Student-t
    quantile. The noise is the larger of the fit's residual sd and the sd of consecutive
    differences of R / √2 (as the law's ``prediction_interval``: it also counts the curve's own
    departures from a sigmoid as noise). Where the later half of the fitted points holds
    ``MIN_POINTS``, the disagreement between the sigmoid refitted to them and the whole fit is
    added in quadrature too (the model's own uncertainty, as in the law's interval): the backtest
    (benchmarks/README.md) covered 8 of 14 final values at f = 50% without it, 9-10 of 14 with it."""
    from scipy import special

    est = float(fit.predict(c_new))
    p = 3 if fit.r0_fixed else 4
    dfd = max(fit.n - p, 1)
    R = np.asarray(fit.R)
    diffs = stats.diff_noise(R)
    sigma = max(fit.rmse * math.sqrt(fit.n / dfd), diffs)
    spread = 0.0
    if fit.boot is not None and len(fit.boot) > 1:
        b = fit.boot
        draws = b[:, 3] + (b[:, 0] - b[:, 3]) * special.expit(b[:, 1] * (math.log(c_new / fit.c_max) - b[:, 2]))
        draws = draws[np.isfinite(draws)]
        spread = float(draws.std(ddof=1)) if len(draws) > 1 else 0.0
    hw = stats.t_ppf(0.5 + level / 2, dfd) * math.sqrt(spread**2 + sigma**2)
    C = np.asarray(fit.C)
    if len(C) // 2 >= MIN_POINTS:
        try:
            later = fit_arrays(C[len(C) // 2:], R[len(C) // 2:], n_boot=0)
            hw = math.sqrt(hw**2 + (float(later.predict(c_new)) - est) ** 2)
        except AnalysisError:
            pass
    return est, est - hw, est + hw


def judge_compute(fit: ComputeFit) -> LawVerdict:
    """The verdict on the compute sigmoid (see the module docstring): ``fits`` | ``poor fit`` |
    ``not applicable``, worded as ``verdicts.judge_law``'s."""
    R = np.asarray(fit.R)
    rise_ci = fit.ci.get("rise")
    no_number = "; no compute asymptote is given"
    if fit.rise <= 0 and (rise_ci is None or rise_ci[1] < 0):
        reason = f"R does not rise with compute (A − R0 = {fit.rise:.3g})"
        return LawVerdict("not applicable", f"not applicable: {reason}: the sigmoid describes a score rising to a "
                          f"plateau{no_number}", reason)
    if not (fit.p_constant <= CONSTANT_P):
        reason = f"no better than a constant (F-test p = {fit.p_constant:.2g} > {CONSTANT_P})"
        return LawVerdict("poor fit", f"poor fit: {reason}{no_number}", reason)
    if rise_ci is not None and rise_ci[0] <= 0:
        reason = (f"the rise A − R0 = {fit.rise:.3g} is not established (its {fit.level:.0%} interval "
                  f"{rise_ci[0]:.3g}–{rise_ci[1]:.3g} reaches 0)")
        return LawVerdict("poor fit", f"poor fit: {reason}{no_number}", reason)
    share = len(R) > 0 and R.min() >= 0.0 and R.max() <= SHARE_MAX
    if share and not 0.0 <= fit.A <= SHARE_MAX:
        reason = (f"the asymptote A = {fit.A:.3g} lies outside [0, {SHARE_MAX:g}], the range of R (a share): "
                  "the curve does not describe the plateau")
        return LawVerdict("poor fit", f"poor fit: {reason}{no_number}", reason)
    if fit.C_mid > MID_MAX * fit.c_max:
        reason = (f"the half-way point lies at {fit.C_mid / fit.c_max:.3g}× the compute seen (more than "
                  f"{MID_MAX:g}×): the plateau would be an extrapolation of the early rise")
        return LawVerdict("poor fit", f"poor fit: {reason}{no_number}", reason)
    return LawVerdict("fits", f"fits {fit.metric or 'R'} against {fit.axis} (R² = {fit.r2:.2f})")


#: the compute section's numbers that are predictions of the sigmoid (withheld unless it fits)
COMPUTE_NUMBERS = ("A", "B", "C_mid", "mid_step", "rise")


def withhold_compute(section: dict, verdict: LawVerdict) -> dict:
    """The compute section with ``verdict`` and, unless it fits, its predictions set to ``None``."""
    out = {**section, "verdict": verdict.to_dict()}
    if not verdict.fits:
        out.update({k: None for k in COMPUTE_NUMBERS if k in out})
        out["ci"] = {}
    return out


__all__ = ["AXES", "COMPUTE_NUMBERS", "MIN_POINTS", "START_FRAC", "ComputeAxis", "ComputeFit", "compute_axis",
           "fit_compute_law", "judge_compute", "metric_points", "predict_final", "withhold_compute"]
