"""The entropy–performance law R = −a·e^H + b (Cui et al. 2025, "The Entropy Mechanism of
Reinforcement Learning for Reasoning Language Models", arXiv 2505.22617, Eq. 6) and its use for
early prediction of a run's ceiling.

R is validation performance, H the policy entropy on the training rollouts at the same step. The
law is linear in x = e^H (R = b − a·x), so ordinary least squares in x is the exact least-squares
fit (closed form); confidence intervals come from a pairs bootstrap (bootstrap standard errors,
Student-t critical value from ``scipy.special``). At H = 0 the law's ceiling is b − a.

Pairing (runs): each evaluation step is paired with the trailing mean (``smooth`` recorded steps,
default ``DEFAULT_SMOOTH`` = 5) of the training entropy up to that step; an evaluation logged
before the first training step takes the first step's entropy.

Metric (runs): ``metric=None`` lets ``metric.choose_metric`` pick R: a validation accuracy
(``val/accuracy_sampled`` first: the law ties performance to the entropy of the sampling policy,
and greedy accuracy does not pay for entropy), and only when the run has no validation metric a
training accuracy or reward, paired step by step (both as trailing means) and labelled *training*
in every output. Never a time, length, rate or count.
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
from .metric import MetricChoice, choose_metric, eval_names, rank_eval_metrics
from .runs import AnalysisError, RunLike, as_run
from .series import DEFAULT_SMOOTH, trailing_mean

#: Fractions of the evaluation points used for the early prediction (Cui et al. fit the first
#: ~15% of steps and predicted the rest with RMSE ≈ 1%).
EARLY_FRACTIONS: tuple[float, ...] = (0.15, 0.3, 0.5)

#: Evaluation names preferred for R, in order (see the module docstring for the fall-backs).
PREFERRED_METRICS: tuple[str, ...] = ("val/accuracy_sampled", "val/accuracy")

MIN_POINTS = 4

#: what to do when a run has no evaluations (the law and the ceiling need a held-out R)
LOG_EVALS = (
    "log a validation metric every few steps with Recorder.log_eval(step, 'val/accuracy', value) "
    "(the built-in trainer logs val/accuracy_sampled)"
)


def law_value(a: float, b: float, H: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
    """The law's performance R = b − a·e^H at entropy ``H``: a float for a number, an array for a
    sequence or an array (the one place the law is evaluated: ``LawFit.predict``, ``early_curve``)."""
    if np.ndim(H) == 0:
        return float(b - a * math.exp(float(H)))
    return b - a * np.exp(np.asarray(H, dtype=np.float64))


@dataclass(frozen=True)
class LawFit:
    """A fitted entropy–performance law R = −a·e^H + b (Cui et al. 2025, Eq. 6).

    Attributes:
        a, b: the coefficients; ``ceiling`` = b − a, the predicted performance at H = 0.
        r2, rmse: goodness of fit on the ``n`` fitted points.
        ci: 95% (``level``) bootstrap intervals ``{"a": (lo, hi), "b": ..., "ceiling": ...}``.
        r_last: the law's prediction at the last point's entropy.
        ceiling_frac: ``r_last / ceiling`` (the fraction of the ceiling reached at the last step;
            ``None`` when the ceiling is not positive).
        gain_frac: share of the gain the law allows from the first point to the ceiling that the
            run has realised: (R̂(H_last) − R̂(H_first)) / (ceiling − R̂(H_first)).
        headroom: ceiling − r_last (performance left if entropy went all the way to 0).
        metric, entropy, smooth: what was fitted (``None`` for (H, R) input).
        steps, H, R: the fitted points (H smoothed).
    """

    a: float
    b: float
    ceiling: float
    r2: float
    rmse: float
    n: int
    ci: dict[str, tuple[float, float]]
    r_last: float
    ceiling_frac: float | None
    gain_frac: float | None
    headroom: float
    level: float = 0.95
    metric: str | None = None
    entropy: str | None = None
    smooth: int | None = None
    metric_choice: MetricChoice | None = field(default=None, repr=False)
    steps: tuple[int, ...] = field(default=(), repr=False)
    H: tuple[float, ...] = field(default=(), repr=False)
    R: tuple[float, ...] = field(default=(), repr=False)

    def predict(self, H: float | Sequence[float] | np.ndarray) -> float | np.ndarray:
        """Predicted performance −a·e^H + b at entropy ``H`` (a number or an array): ``law_value``."""
        return law_value(self.a, self.b, H)

    def to_dict(self, points: bool = False) -> dict:
        """JSON-ready dict (NaN → None); ``points=True`` adds the fitted (step, H, R) points."""
        d = {
            "a": self.a, "b": self.b, "ceiling": self.ceiling, "r2": self.r2, "rmse": self.rmse,
            "n": self.n, "level": self.level,
            "ci": {k: list(v) for k, v in self.ci.items()},
            "r_last": self.r_last, "ceiling_frac": self.ceiling_frac, "gain_frac": self.gain_frac,
            "headroom": self.headroom, "metric": self.metric, "entropy": self.entropy,
            "smooth": self.smooth,
            "metric_choice": self.metric_choice.to_dict() if self.metric_choice else None,
        }
        if points:
            d["points"] = {"step": list(self.steps), "H": list(self.H), "R": list(self.R)}
        return clean(d)


@dataclass(frozen=True)
class EarlyPrediction:
    """Fit on the first ``frac`` of the evaluation points, predict the rest (Cui et al. 2025 §2).

    ``a``, ``b``, ``ceiling``, ``rmse`` (over the held-out points) and ``predicted_final`` come
    from the law fitted to the whole prefix. ``estimate`` and its ``level`` interval
    ``[lo, hi]`` are the prediction of the final value (see ``prediction_interval``);
    ``final_error`` = predicted_final − actual (the law on the whole prefix), ``estimate_error`` =
    estimate − actual, ``covered`` whether the interval holds the actual value.
    ``reason`` says why a row has no numbers (too few points, no entropy change in the prefix).
    """

    frac: float
    n_fit: int
    n_test: int
    a: float | None = None
    b: float | None = None
    ceiling: float | None = None
    rmse: float | None = None
    predicted_final: float | None = None
    actual_final: float | None = None
    final_error: float | None = None
    estimate: float | None = None
    lo: float | None = None
    hi: float | None = None
    level: float = 0.9
    covered: bool | None = None
    estimate_error: float | None = None
    reason: str | None = None

    def to_dict(self) -> dict:
        return clean(self.__dict__.copy())


# --------------------------------------------------------------------------------- metric choice
def pick_eval_metric(names: Sequence[str]) -> str | None:
    """The default R of the law among ``names`` (see the module docstring); ``None`` if empty."""
    ranked = rank_eval_metrics(list(names))
    return ranked[0] if ranked else None


# --------------------------------------------------------------------------------------- points
def law_points(
    run: RunLike, *, metric: str | None = None, entropy: str = "entropy_mean", smooth: int = DEFAULT_SMOOTH
) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """``(steps, H, R, metric)``: each evaluation of ``metric`` paired with the trailing mean of
    ``smooth`` steps of training ``entropy`` (Cui et al. 2025 pair validation accuracy with the
    training-rollout entropy of the same step).

    Raises:
        AnalysisError: no evaluations, an unknown metric, or no entropy column; the message says
            what to log.
    """
    run = as_run(run)
    steps, H, R, choice = _points(run, choose_metric_or_explain(run, metric), entropy, smooth)
    return steps, H, R, choice.name


def choose_metric_or_explain(run: Run, metric: str | MetricChoice | None) -> MetricChoice:
    """``choose_metric`` (a ``MetricChoice`` passes through), with the message saying what to log
    when the run has no R at all."""
    if isinstance(metric, MetricChoice):
        return metric
    try:
        return choose_metric(run, metric)
    except AnalysisError as e:
        if metric is None and not eval_names(run):
            from .sources import log_hint

            raise AnalysisError(f"run {run.run_id} has no evaluations, so R of the law is unknown: "
                                f"{log_hint(run, 'evals') or LOG_EVALS}") from None
        raise e


def _points(
    run: Run, choice: MetricChoice, entropy: str, smooth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, MetricChoice]:
    """The paired points for ``choice``: an evaluation is paired with the trailing-mean entropy up to
    its step; a training series is smoothed like the entropy and paired at each step."""
    if smooth < 1:
        raise ValueError(f"smooth must be >= 1 step, got {smooth}")
    steps = run.steps
    if steps.is_empty() or entropy not in steps.columns or steps[entropy].drop_nulls().is_empty():
        raise AnalysisError(
            f"run {run.run_id} has no training entropy ({entropy!r} in the step rows): record rollouts "
            "with Recorder.record_batch(step, ..., logits=... or entropy=...)"
        )
    h = (
        steps.select(pl.col("step").cast(pl.Int64), pl.col(entropy).cast(pl.Float64))
        .drop_nulls()
        .filter(pl.col(entropy).is_finite())
        .sort("step")
    )
    h = h.with_columns(pl.Series("H", trailing_mean(h[entropy].to_numpy(), smooth)))
    if choice.is_training:
        r = (
            steps.select(pl.col("step").cast(pl.Int64), pl.col(choice.name).cast(pl.Float64).alias("R"))
            .drop_nulls()
            .filter(pl.col("R").is_finite())
            .sort("step")
        )
        r = r.with_columns(pl.Series("R", trailing_mean(r["R"].to_numpy(), smooth)))
        paired = r.join(h.select("step", "H"), on="step", how="inner").sort("step")
        return paired["step"].to_numpy(), paired["H"].to_numpy(), paired["R"].to_numpy(), choice
    metric = choice.name
    ev = (
        run.evals.filter(pl.col("name") == metric)
        .select(pl.col("step").cast(pl.Int64), pl.col("value").cast(pl.Float64).alias("R"))
        .drop_nulls()
        .filter(pl.col("R").is_finite())
        .sort("step")
    )
    paired = ev.join_asof(h.select("step", "H"), on="step", strategy="backward")
    first_h = float(h["H"][0])
    paired = paired.with_columns(pl.col("H").fill_null(first_h))
    return paired["step"].to_numpy(), paired["H"].to_numpy(), paired["R"].to_numpy(), choice


# ------------------------------------------------------------------------------------------ fit
def _ols(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of y on x by ordinary least squares."""
    return stats.linregress(x, y)


def bootstrap_fits(x: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Pairs-bootstrap OLS estimates, shape ``[k, 2]`` of (slope, intercept), vectorised."""
    n = len(x)
    rng = np.random.default_rng(seed)
    w = rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    sx, sy = w @ x, w @ y
    sxx, sxy = w @ (x * x), w @ (x * y)
    den = n * sxx - sx * sx
    ok = den > 1e-12 * max(1.0, float(np.abs(den).max()))
    slope = (n * sxy[ok] - sx[ok] * sy[ok]) / den[ok]
    inter = (sy[ok] - slope * sx[ok]) / n
    return np.stack([slope, inter], axis=1)


def _check_points(H: np.ndarray, R: np.ndarray, what: str) -> None:
    if len(H) < MIN_POINTS:
        raise AnalysisError(
            f"{what}: only {len(H)} evaluation point(s) paired with training entropy; the law needs at "
            f"least {MIN_POINTS}: evaluate more often (Cui et al. evaluated every 4 steps)"
        )
    if float(np.ptp(H)) <= 1e-9 * max(1.0, float(np.abs(H).max())):
        raise AnalysisError(
            f"{what}: training entropy does not change over the evaluation steps (H = {H[0]:.4g} nats); "
            "the law relates a change of entropy to a change of performance: fit it once entropy moves"
        )


def fit_arrays(H: np.ndarray, R: np.ndarray, *, n_boot: int, level: float, seed: int, **meta) -> LawFit:
    """The law R = −a·e^H + b fitted by OLS to the points ``(H, R)`` (finite, already smoothed where the
    caller smooths), with ``n_boot`` bootstrap draws for its ``level`` intervals; ``meta`` fills
    the ``LawFit``'s other fields."""
    x = np.exp(H)
    slope, inter = _ols(x, R)
    a, b = -slope, inter
    pred = inter + slope * x
    resid = R - pred
    ss_tot = float(((R - R.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else float("nan")
    rmse = float(np.sqrt((resid**2).mean()))
    ceiling = b - a
    ci: dict[str, tuple[float, float]] = {}
    n = len(H)
    if n_boot > 0:
        boot = bootstrap_fits(x, R, n_boot, seed)
        # Bootstrap standard errors with a Student-t critical value: est ± t(n−2)·se. The pairs
        # bootstrap's spread underestimates an OLS fit's sampling spread by sqrt((n−2)/n) (divisor
        # n vs n − 2), hence the factor; plain percentile intervals covered only ~89% at n = 20.
        widen = math.sqrt(n / (n - 2)) if n > 2 else 1.0
        t = stats.t_ppf(0.5 + level / 2, max(n - 2, 1))
        for name, est, draws in (
            ("a", a, -boot[:, 0]), ("b", b, boot[:, 1]), ("ceiling", ceiling, boot[:, 1] + boot[:, 0])
        ):
            se = float(draws.std(ddof=1)) * widen if len(draws) > 1 else float("nan")
            ci[name] = (float(est - t * se), float(est + t * se))
    r_last, r_first = law_value(a, b, float(H[-1])), law_value(a, b, float(H[0]))
    gain = ceiling - r_first
    return LawFit(
        a=float(a), b=float(b), ceiling=float(ceiling), r2=r2, rmse=rmse, n=n, ci=ci, r_last=r_last,
        ceiling_frac=r_last / ceiling if ceiling > 0 else None,
        gain_frac=(r_last - r_first) / gain if abs(gain) > 1e-12 else None,
        headroom=float(ceiling - r_last), level=level,
        H=tuple(float(v) for v in H), R=tuple(float(v) for v in R), **meta,
    )


def fit_entropy_law(
    data: RunLike | tuple[Sequence[float], Sequence[float]],
    *,
    metric: str | MetricChoice | None = None,
    entropy: str = "entropy_mean",
    smooth: int = DEFAULT_SMOOTH,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> LawFit:
    """Fit R = −a·e^H + b (Cui et al. 2025, arXiv 2505.22617, Eq. 6) to a run or to (H, R).

    Args:
        data: a ``Run``, a run directory, or a pair ``(H, R)`` of equal-length sequences
            (entropy in nats, performance).
        metric: the evaluation name (or, for a run without evaluations, the step column) used as
            R; ``None`` lets ``choose_metric`` pick (a validation accuracy first; a training
            reward only when the run has no validation metric).
        entropy: the step column used as H (``entropy_mean``: token mean over the batch; Cui et al.
            log the seq-mean-token-mean, ``entropy_seq_mean``).
        smooth: trailing window (recorded steps) of the training entropy paired with an evaluation.
        n_boot: pairs-bootstrap resamples for the confidence intervals (0: no intervals).
        level: confidence level of the intervals.
        seed: seed of the bootstrap.

    Raises:
        AnalysisError: fewer than 4 points, no variance in H, or no evaluation metric; the
            message says what to log.

    Example:
        >>> import numpy as np
        >>> H = np.linspace(1.0, 0.2, 30); R = 0.9 - 0.3 * np.exp(H)
        >>> fit = fit_entropy_law((H, R))
        >>> round(fit.a, 3), round(fit.b, 3), round(fit.ceiling, 3)
        (0.3, 0.9, 0.6)
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError("give (H, R): two sequences of equal length")
        H = np.asarray(data[0], dtype=np.float64).ravel()
        R = np.asarray(data[1], dtype=np.float64).ravel()
        if len(H) != len(R):
            raise ValueError(f"H and R differ in length: {len(H)} vs {len(R)}")
        ok = np.isfinite(H) & np.isfinite(R)
        H, R = H[ok], R[ok]
        _check_points(H, R, "(H, R)")
        return fit_arrays(H, R, n_boot=n_boot, level=level, seed=seed, steps=tuple(range(len(H))))
    run = as_run(data)
    steps, H, R, choice = _points(run, choose_metric_or_explain(run, metric), entropy, smooth)
    _check_points(H, R, f"run {run.run_id}, metric {choice.name}")
    return fit_arrays(
        H, R, n_boot=n_boot, level=level, seed=seed, metric=choice.name, entropy=entropy, smooth=smooth,
        steps=tuple(int(s) for s in steps), metric_choice=choice,
    )


#: level of the early prediction's interval
PREDICTION_LEVEL = 0.9


def prediction_interval(
    H: np.ndarray, R: np.ndarray, h_new: float, level: float = PREDICTION_LEVEL
) -> tuple[float, float, float]:
    """``(estimate, lo, hi)``: the value of R at entropy ``h_new`` predicted from points (H, R).

    Chosen by backtest on real runs (benchmarks/bench_early_prediction.py, benchmarks/README.md):

    - estimate: the law refitted to the later half of the points (at least ``MIN_POINTS``). On
      real runs the law's slope drifts as entropy falls (accuracy keeps rising at low entropy), and
      the later points are closer to the regime being predicted; this halved the error at f = 50%.
    - half-width: the root sum of squares of three parts, (1) the OLS prediction interval of that
      fit (t quantile, leverage of ``e^h_new``), (2) the disagreement between the later-half fit
      and the fit to all points (the model uncertainty of a drifting slope), (3) t·σ of the
      evaluation noise, σ = sd of consecutive differences of R / √2 (one evaluation is noisy). The
      differences also count the trend's own changes as noise: a deliberate widening the backtest
      favoured (second differences, which cancel a linear trend, missed verl's gemma run at 50%).
    """
    n = len(H)
    x, xn = np.exp(H), math.exp(h_new)
    half = max(MIN_POINTS, n // 2)
    t = stats.t_ppf(0.5 + level / 2, max(n - 2, 1))

    def fit_pi(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        slope, inter = _ols(xs, ys)
        k = len(xs)
        resid = ys - (inter + slope * xs)
        s = math.sqrt(float((resid**2).sum()) / max(k - 2, 1))
        sxx = float(((xs - xs.mean()) ** 2).sum())
        tk = stats.t_ppf(0.5 + level / 2, max(k - 2, 1))
        lever = 1 + 1 / k + ((xn - xs.mean()) ** 2 / sxx if sxx > 0 else 0.0)
        return inter + slope * xn, tk * s * math.sqrt(lever)

    est_all, _ = fit_pi(x, R)
    est, pi = fit_pi(x[-half:], R[-half:])
    noise = stats.diff_noise(R)
    hw = math.sqrt(pi**2 + (est - est_all) ** 2 + (t * noise) ** 2)
    return float(est), float(est - hw), float(est + hw)


def early_prediction(
    data: LawFit | RunLike | tuple[Sequence[float], Sequence[float]],
    fracs: Sequence[float] = EARLY_FRACTIONS,
    **fit_kwargs,
) -> list[EarlyPrediction]:
    """Fit the law on the first fraction ``f`` of the evaluation points and predict the rest.

    For each ``f`` in ``fracs`` (default 0.15, 0.3, 0.5; Cui et al. 2025 fitted the first ~15% of
    steps and predicted the rest with RMSE ≈ 1%): the RMSE over the held-out points, the
    predicted final value against the actual one, and a ``PREDICTION_LEVEL`` (90%) prediction
    interval for the final value given its entropy (``prediction_interval``). ``data`` is a ``LawFit`` (its points are reused),
    a run, or ``(H, R)``; ``fit_kwargs`` go to ``fit_entropy_law`` for the latter two.
    A row whose prefix cannot support a fit carries ``reason`` instead of numbers.
    """
    fit = data if isinstance(data, LawFit) else fit_entropy_law(data, n_boot=0, **fit_kwargs)
    H, R = np.asarray(fit.H), np.asarray(fit.R)
    n = len(H)
    out = []
    for f in fracs:
        if not 0 < f < 1:
            raise ValueError(f"fractions must lie in (0, 1), got {f}")
        k = int(math.ceil(f * n))
        if k < MIN_POINTS or n - k < 1:
            reason = (
                f"the first {f:.0%} is {k} of {n} points; a fit needs {MIN_POINTS}"
                if k < MIN_POINTS else "nothing left to predict"
            )
            out.append(EarlyPrediction(frac=f, n_fit=k, n_test=n - k, reason=reason))
            continue
        try:
            _check_points(H[:k], R[:k], "prefix")
        except AnalysisError:
            out.append(EarlyPrediction(frac=f, n_fit=k, n_test=n - k,
                                       reason="entropy does not change over the prefix"))
            continue
        sub = fit_arrays(H[:k], R[:k], n_boot=0, level=fit.level, seed=0)
        pred = np.asarray(sub.predict(H[k:]))
        est, lo, hi = prediction_interval(H[:k], R[:k], float(H[-1]))
        out.append(EarlyPrediction(
            frac=f, n_fit=k, n_test=n - k, a=sub.a, b=sub.b, ceiling=sub.ceiling,
            rmse=float(np.sqrt(((pred - R[k:]) ** 2).mean())), predicted_final=float(pred[-1]),
            actual_final=float(R[-1]), final_error=float(pred[-1] - R[-1]), estimate=est, lo=lo, hi=hi,
            covered=bool(lo <= R[-1] <= hi), estimate_error=est - float(R[-1]),
        ))
    return out


__all__ = [
    "EARLY_FRACTIONS", "PREDICTION_LEVEL", "EarlyPrediction", "LawFit", "early_prediction", "eval_names",
    "fit_entropy_law", "law_points", "law_value", "pick_eval_metric", "prediction_interval",
]
