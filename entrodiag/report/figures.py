"""The report's plots, one function per plot: each draws on a given ``Axes`` and takes its numbers
from ``entrodiag.analysis`` (through ``ReportData``) or the run's own step rows. A plot whose data
is missing draws ``missing``: one line that says what is missing and what to log, never an empty
axes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
from matplotlib.axes import Axes
from matplotlib.colors import LogNorm
from matplotlib.ticker import PercentFormatter

from ..analysis.early_curve import early_curve
from ..analysis.law import EarlyPrediction, LawFit
from ..analysis.sources import log_hint
from ..entropy_control import EFFORT_LABELS, KNOB_LABELS, PIClip
from ..store.reader import Run
from .data import series, smoothed
from .style import (
    COLORS,
    EARLY_STYLES,
    PAGE,
    SIZE,
    eval_color,
    event_style,
    fmt,
    visible,
    wrap,
)

#: Above this many recorded steps a noisy series is drawn faint with its trailing mean on top.
SMOOTH_ABOVE = 40
#: At most this many step columns in the histogram heatmap (histograms of neighbouring steps are
#: summed beyond it, which keeps the PDF small for long runs).
HEATMAP_COLUMNS = 400


# ----------------------------------------------------------------------------------- helpers
def missing(ax: Axes, title: str, reason: str) -> None:
    """Replace a plot by its title and one wrapped line saying what is missing."""
    ax.set_axis_off()
    ax.set_title(title, color=COLORS["muted"])
    spec = ax.get_subplotspec()
    width = 3.0
    if spec is not None:
        ncols = spec.get_gridspec().get_geometry()[1]
        width = 0.8 * (PAGE[0] - 1.2) * (spec.colspan.stop - spec.colspan.start) / ncols
    lines = wrap(visible(f"Not shown: {reason}"), width, SIZE["small"])
    ax.text(0.0, 0.9, "\n".join(lines[:8]), transform=ax.transAxes, va="top", ha="left",
            fontsize=SIZE["small"], color=COLORS["missing"], parse_math=False, linespacing=1.4)


def _line(ax: Axes, steps: np.ndarray, values: np.ndarray, color: str, label: str | None,
          smooth: bool = True, **kw) -> None:
    """A step series: raw when short, else faint raw with its trailing mean on top."""
    if smooth and len(values) > SMOOTH_ABOVE:
        ax.plot(steps, values, color=color, alpha=0.28, linewidth=0.8)
        ax.plot(steps, smoothed(values), color=color, label=label, **kw)
    else:
        ax.plot(steps, values, color=color, label=label, **kw)


def _steps_axis(ax: Axes, xlabel: bool = True) -> None:
    if xlabel:
        ax.set_xlabel("step")
    ax.margins(x=0.01)


def _legend(ax: Axes, **kw) -> None:
    handles, _ = ax.get_legend_handles_labels()
    if handles:
        ax.legend(loc=kw.pop("loc", "best"), **kw)


def _hint(run: Run, what: str, default: str) -> str:
    """What to log to get ``what``: in the run's framework for an imported run, else ``default``."""
    return log_hint(run, what) or default


# ---------------------------------------------------------------------------------- dynamics
def plot_entropy(ax: Axes, run: Run, events: pl.DataFrame | None = None, *, xlabel: bool = True) -> bool:
    """Token-mean entropy with its p50–p90 band and p99, and the run's events as markers.
    Returns False (and draws ``missing``) when the run has no entropy."""
    steps, h = series(run, "entropy_mean")
    if len(h) == 0:
        missing(ax, "Entropy", "no entropy in the step rows: " + _hint(run, "entropy_mean", "record rollouts with Recorder.record_batch"))
        return False
    df = run.steps
    cols = [c for c in ("entropy_p50", "entropy_p90", "entropy_p99") if c in df.columns]
    if {"entropy_p50", "entropy_p90"} <= set(cols):
        band = df.select("step", *cols).drop_nulls(["entropy_p50", "entropy_p90"]).sort("step")
        if band.height:
            ax.fill_between(band["step"].to_numpy(), band["entropy_p50"].to_numpy(), band["entropy_p90"].to_numpy(),
                            color=COLORS["entropy"], alpha=0.16, linewidth=0, label="p50–p90 of tokens")
        if "entropy_p99" in cols and band["entropy_p99"].drop_nulls().len():
            ax.plot(band["step"].to_numpy(), band["entropy_p99"].to_numpy(), color=COLORS["entropy"],
                    linewidth=0.7, linestyle=":", label="p99")
    ax.plot(steps, h, color=COLORS["entropy"], label="token mean")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)  # room for the legend
    ax.set_title("Entropy")
    ax.set_ylabel("entropy (nats)")
    if events is not None and events.height:
        plot_events(ax, events)
    _legend(ax, loc="upper right")
    _steps_axis(ax, xlabel)
    return True


def plot_events(ax: Axes, events: pl.DataFrame) -> None:
    """Events (flags raised live, switches, stops, alerts) as dotted lines with a marker on top
    (explained by the list of events under the plots, which uses the same markers)."""
    for row in events.iter_rows(named=True):
        step = row.get("step")
        if step is None:
            continue
        color, marker, _, _ = event_style(row.get("kind"), row.get("severity"))
        ax.axvline(step, color=color, linewidth=0.8, linestyle=(0, (2, 2)), alpha=0.8)
        ax.plot([step], [1.0], marker=marker, color=color, markersize=5.5, transform=ax.get_xaxis_transform(),
                clip_on=False, linestyle="none")


def plot_reward(ax: Axes, run: Run, *, xlabel: bool = True, column: str = "reward_mean",
                label: str = "reward") -> bool:
    """The training reward per step: ``column``, the series the analysis reads as the reward
    (``analysis.sources.reward_series``: the task score where the logged reward holds a KL penalty)."""
    steps, r = series(run, column)
    if len(r) == 0:
        missing(ax, "Reward", "no reward in the step rows: " + _hint(run, "reward_mean", "pass rewards= to record_batch"))
        return False
    smooth = " (trailing mean)" if len(r) > SMOOTH_ABOVE else ""
    _line(ax, steps, r, COLORS["reward"], f"mean {label}{smooth}")
    ax.set_title(f"Training {label}")
    ax.set_ylabel(label)
    _legend(ax, loc="lower right")
    _steps_axis(ax, xlabel)
    return True


def plot_evals(ax: Axes, run: Run, names: Sequence[str], law_metric: str | None, *, xlabel: bool = True,
               reason: str | None = None) -> bool:
    """Every evaluation metric against step (the law's metric in the accuracy colour)."""
    ev = run.evals
    if not names or ev.is_empty():
        missing(ax, "Evaluation", reason or "no evaluations: "
                + _hint(run, "evals", "log Recorder.log_eval(step, 'val/accuracy', value)"))
        return False
    for name in names:
        e = ev.filter(pl.col("name") == name).drop_nulls("value").sort("step")
        label = visible(name, limit=40) + (" (R of the law)" if name == law_metric else "")
        ax.plot(e["step"].to_numpy(), e["value"].to_numpy(), color=eval_color(name, law_metric, list(names)),
                marker="o", markersize=2.5, label=label)
    ax.set_title("Evaluation (held out)")
    ax.set_ylabel("accuracy" if all("acc" in n for n in names) else "metric value")
    _legend(ax, loc="lower right")
    _steps_axis(ax, xlabel)
    return True


def _series_or_missing(ax: Axes, run: Run, column: str, title: str, default: str) -> tuple | None:
    """``(steps, values)`` of a step column, or ``None`` after drawing ``missing`` with what to log
    (in the run's framework for an imported run, else ``default``)."""
    steps, values = series(run, column)
    if len(values) == 0:
        missing(ax, title, f"no {column} in the step rows: " + _hint(run, column, default))
        return None
    return steps, values


def plot_covariance(ax: Axes, run: Run, *, xlabel: bool = True) -> bool:
    """cov(log p, A) per step with the zero line (positive covariance drains entropy)."""
    got = _series_or_missing(ax, run, "cov_mean", "Covariance", "pass logprobs (or logits) to record_batch")
    if got is None:
        return False
    steps, c = got
    ax.axhline(0, color="#444444", linewidth=0.7)
    _line(ax, steps, c, COLORS["covariance"], "cov_mean" + (" (trailing mean)" if len(c) > SMOOTH_ABOVE else ""))
    ax.set_title("Covariance (> 0 drains entropy)")
    ax.set_ylabel("cov(log p, A)")
    _legend(ax)
    _steps_axis(ax, xlabel)
    return True


def plot_length(ax: Axes, run: Run, *, xlabel: bool = True) -> bool:
    """Mean response length per step."""
    got = _series_or_missing(ax, run, "resp_len_mean", "Response length", "record rollouts with record_batch")
    if got is None:
        return False
    steps, length = got
    _line(ax, steps, length, COLORS["length"], None, smooth=False)
    ax.set_title("Response length")
    ax.set_ylabel("tokens (mean)")
    ax.set_ylim(bottom=0)
    _steps_axis(ax, xlabel)
    return True


SHARES: tuple[tuple[str, str, str], ...] = (
    ("high_entropy_frac", "high_entropy", "tokens > 0.672 nats"),
    ("zero_adv_group_frac", "zero_adv", "zero-advantage groups"),
    ("clip_high_frac", "clip_high", "clipped high"),
    ("clip_low_frac", "clip_low", "clipped low"),
)


def plot_shares(ax: Axes, run: Run, *, xlabel: bool = True) -> bool:
    """Shares per step: tokens above 0.672 nats, zero-advantage groups, clipped tokens."""
    drawn = False
    for col, color, label in SHARES:
        steps, v = series(run, col)
        if len(v):
            _line(ax, steps, v, COLORS[color], label)
            drawn = True
    if not drawn:
        missing(ax, "Shares", "no share columns (high_entropy_frac, zero_adv_group_frac) in the step rows")
        return False
    ax.set_title("Token and group shares")
    ax.set_ylabel("share")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylim(bottom=0)
    _legend(ax)
    _steps_axis(ax, xlabel)
    return True


# ------------------------------------------------------------------------------------- law
def plot_law(ax: Axes, fit: LawFit, early: Sequence[EarlyPrediction], ceiling: bool = True) -> object:
    """R against training entropy coloured by step, the fitted law with a ±RMSE band, the
    ceiling b − a at H = 0 (``ceiling=False``: not drawn, where the law does not describe the run),
    and the early-prediction fits. Returns the scatter (for a colorbar)."""
    H, R, steps = np.asarray(fit.H), np.asarray(fit.R), np.asarray(fit.steps)
    grid = np.linspace(0.0 if ceiling else float(H.min()) * 0.95, float(H.max()) * 1.08, 200)
    pred = np.asarray(fit.predict(grid))
    ax.fill_between(grid, pred - fit.rmse, pred + fit.rmse, color=COLORS["law"], alpha=0.1, linewidth=0,
                    label=f"fit ± RMSE ({fmt(fit.rmse, '.2g')})")
    ax.plot(grid, pred, color=COLORS["law"], linewidth=1.5, label="R = −a·e^H + b (all points)")
    for i, row in enumerate(r for r in early if r.a is not None):
        color, dash = EARLY_STYLES[i % len(EARLY_STYLES)]
        ax.plot(grid, early_curve(row, grid), color=color, linestyle=dash, linewidth=1.1,
                label=f"fit on first {row.frac:.0%} ({row.n_fit} points)")
    sc = ax.scatter(H, R, c=steps, cmap="viridis", s=18, zorder=3, edgecolors="white", linewidths=0.4)
    lo, hi = float(R.min()), float(R.max())
    span = max(hi - lo, 1e-3)
    if not ceiling:
        ax.set_ylim(lo - 0.12 * span, hi + 0.18 * span)
        ax.set_xlim(grid[0], grid[-1])
        ax.set_xlabel(f"training entropy H (nats, trailing mean of {fit.smooth or 1} steps)")
        ax.set_ylabel(visible(fit.metric or "R", limit=40))
        ax.set_title("Performance against entropy (the law does not describe this run)")
        _legend(ax, loc="lower left")
        return sc
    top = max(hi, fit.ceiling) if fit.ceiling <= hi + 1.5 * span else hi
    bottom = min(lo, fit.ceiling) if fit.ceiling >= lo - 1.5 * span else lo
    ax.set_ylim(bottom - 0.12 * span, top + 0.18 * span)
    ax.axhline(fit.ceiling, color=COLORS["ceiling"], linestyle="--", linewidth=0.9)
    label = f"ceiling b − a = {fmt(fit.ceiling)} (at H = 0)"
    if bottom <= fit.ceiling <= top:
        ax.plot([0], [fit.ceiling], marker="*", color=COLORS["ceiling"], markersize=10, zorder=4, clip_on=False)
        ax.annotate(label, (0, fit.ceiling), xytext=(10, 6), textcoords="offset points", fontsize=SIZE["small"],
                    color=COLORS["ceiling"], parse_math=False,
                    bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0})
    else:
        ax.text(0.01, 0.98, f"{label}: off the chart", transform=ax.transAxes, va="top", fontsize=SIZE["small"],
                color=COLORS["ceiling"], parse_math=False)
    ax.set_xlim(-0.01 * grid[-1], grid[-1])
    ax.set_xlabel(f"training entropy H (nats, trailing mean of {fit.smooth or 1} steps)")
    ax.set_ylabel(visible(fit.metric or "R", limit=40))
    ax.set_title("Performance against entropy")
    _legend(ax, loc="lower left")
    return sc


def plot_law_steps(ax: Axes, fit: LawFit, early: Sequence[EarlyPrediction], law: bool = True) -> None:
    """R against step with the law's R̂ at each evaluation, and each early fit's prediction of
    the points it did not see (from its cut, dotted). ``law=False`` (the law does not describe the
    run, so its R̂ is withheld): the measured R alone."""
    H, R, steps = np.asarray(fit.H), np.asarray(fit.R), np.asarray(fit.steps)
    ax.plot(steps, R, color=COLORS["accuracy"], marker="o", markersize=3, linewidth=0.9,
            label=f"measured {visible(fit.metric or 'R', limit=30)}")
    ax.set_xlabel("step")
    ax.set_ylabel(visible(fit.metric or "R", limit=40))
    if not law:
        ax.set_title("Measured, by step (no law prediction)")
        _legend(ax, loc="lower right")
        return
    ax.plot(steps, np.asarray(fit.predict(H)), color=COLORS["law"], linewidth=1.3, label="law (all points)")
    for i, row in enumerate(r for r in early if r.a is not None):
        color, dash = EARLY_STYLES[i % len(EARLY_STYLES)]
        k = row.n_fit
        ax.plot(steps[k - 1:], early_curve(row, H[k - 1:]), color=color, linestyle=dash, linewidth=1.1,
                label=f"first {row.frac:.0%} → rest (RMSE {fmt(row.rmse, '.2g')})")
        ax.axvline(steps[k - 1], color=color, linewidth=0.6, linestyle=":")
    ax.set_title("Measured and predicted, by step")
    _legend(ax, loc="lower right")


# ------------------------------------------------------------------------------ distribution
def plot_entropy_heatmap(ax: Axes, run: Run, edges: Sequence[float | None]) -> object | None:
    """Share of each step's tokens per entropy bin (log colour scale), with the step's p50 and
    p90 and the 0.672-nat line. Returns the mesh (for a colorbar), or None when the run has no
    histograms (then ``missing`` is drawn)."""
    df = run.steps
    nb = len(edges) - 1 if edges else 0
    if not nb or df.is_empty() or "entropy_hist" not in df.columns:
        missing(ax, "Entropy distribution", "no entropy histograms in the step rows: " + _hint(run, "histograms", "record_batch writes them"))
        return None
    df = df.filter(pl.col("entropy_hist").is_not_null() & (pl.col("entropy_hist").list.len() == nb)).sort("step")
    if df.is_empty():
        missing(ax, "Entropy distribution", "no entropy histograms in the step rows: " + _hint(run, "histograms", "record_batch writes them"))
        return None
    hist = np.asarray(df["entropy_hist"].to_list(), dtype=np.float64)
    steps = df["step"].to_numpy()
    chunks = np.array_split(np.arange(len(steps)), min(len(steps), HEATMAP_COLUMNS))
    hist = np.stack([hist[c].sum(0) for c in chunks])
    left = np.array([steps[c[0]] for c in chunks], dtype=np.float64)
    right = np.array([steps[c[-1]] for c in chunks], dtype=np.float64) + 1
    x = np.append(left, right[-1]) - 0.5
    total = hist.sum(1, keepdims=True)
    shares = np.divide(hist, total, out=np.zeros_like(hist), where=total > 0)
    masked = np.ma.masked_less_equal(shares, 0)
    mesh = ax.pcolormesh(x, np.arange(nb + 1), masked.T, cmap="Blues", norm=LogNorm(vmin=1e-4, vmax=1.0),
                         shading="flat", antialiased=False, linewidth=0, rasterized=True)
    finite = [float(e) for e in edges if e is not None]

    def to_bin(v: np.ndarray) -> np.ndarray:  # nats -> position on the bin axis (linear inside a bin)
        return np.interp(v, finite, np.arange(len(finite)))

    ticks = [i for i, e in enumerate(finite) if e in (0.0, 0.01, 0.1, 0.5, 0.672, 1.0, 2.0, 5.0, 10.0)]
    ax.set_yticks(ticks, [f"{finite[i]:g}" for i in ticks])
    ax.axhline(to_bin(np.array([0.672]))[0], color=COLORS["high_entropy"], linestyle="--", linewidth=0.9,
               label="0.672 nats")
    for col, style, label in (("entropy_p50", "-", "step p50"), ("entropy_p90", (0, (4, 2)), "step p90")):
        if col in df.columns:
            q = df.select("step", col).drop_nulls()
            if q.height:
                ax.plot(q["step"].to_numpy(), to_bin(q[col].to_numpy()), color="#d4a017", linestyle=style,
                        linewidth=1.0, label=label)
    ax.set_ylim(0, nb)
    ax.set_xlabel("step")
    ax.set_ylabel("token entropy (nats; bins of the recorded histogram)")
    ax.set_title("Token-entropy distribution over training (all tokens)")
    ax.grid(False)
    _legend(ax, loc="upper right", frameon=True, framealpha=0.85)
    return mesh


def share_colorbar(page, mesh, ax: Axes) -> None:
    """The heatmap's colour bar, labelled in percent (no mathtext: 0.01% … 100%)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    cbar = page.colorbar(mesh, [ax], "share of the step's tokens (log scale)")
    cbar.ax.yaxis.set_major_locator(FixedLocator([1e-4, 1e-3, 1e-2, 1e-1, 1.0]))
    cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v * 100:g}%"))
    cbar.ax.yaxis.set_minor_formatter(NullFormatter())


# --------------------------------------------------------------------------------- mechanism
def plot_mechanism(ax: Axes, points: tuple[np.ndarray, np.ndarray, np.ndarray] | None, *, xlabel: str,
                   title: str, reason: str, color: str) -> object | None:
    """Measured ΔH (y) against a predictor (x), one point per step coloured by step; the
    quadrants where the signs agree are shaded. Returns the scatter, or None (``missing``)."""
    if points is None or len(points[0]) < 2:
        missing(ax, title, reason)
        return None
    steps, x, y = points
    ax.axhline(0, color="#444444", linewidth=0.7)
    ax.axvline(0, color="#444444", linewidth=0.7)
    def limits(v: np.ndarray) -> tuple[float, float]:  # the data and 0, with a margin
        lo, hi = min(float(v.min()), 0.0), max(float(v.max()), 0.0)
        m = 0.08 * (hi - lo) or 1.0
        return lo - m, hi + m

    (x0, x1), (y0, y1) = limits(x), limits(y)
    ax.fill_between([0, x1], 0, y1, color="#2e8b3a", alpha=0.07, linewidth=0)
    ax.fill_between([x0, 0], y0, 0, color="#2e8b3a", alpha=0.07, linewidth=0)
    sc = ax.scatter(x, y, c=steps, cmap="viridis", s=10, edgecolors="none", alpha=0.85)
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel(xlabel, color=color)
    ax.set_ylabel("measured ΔH (nats)", color=COLORS["delta"])
    ax.set_title(title)
    ax.text(0.98, 0.03, "shaded: same sign", transform=ax.transAxes, ha="right", va="bottom",
            fontsize=SIZE["tiny"], color="#2e8b3a", parse_math=False)
    return sc


# -------------------------------------------------------------------------------- comparison
def plot_compare(ax: Axes, runs: Sequence[Run], colors: Sequence[str], column: str, *, title: str, ylabel: str,
                 evals: str | None = None, legend: bool = False) -> bool:
    """One step column (or, with ``evals``, one evaluation metric) of several runs overlaid;
    long series are drawn as their trailing mean."""
    drawn = False
    for run, color in zip(runs, colors):
        label = visible(f"{run.run_id} ({run.meta.get('intervention') or 'none'})", limit=48)
        if evals is not None:
            e = run.evals
            if e.is_empty():
                continue
            e = e.filter(pl.col("name") == evals).drop_nulls("value").sort("step")
            if e.is_empty():
                continue
            ax.plot(e["step"].to_numpy(), e["value"].to_numpy(), color=color, marker="o", markersize=2.5,
                    linewidth=1.1, label=label)
        else:
            steps, v = series(run, column)
            if len(v) == 0:
                continue
            ax.plot(steps, smoothed(v) if len(v) > SMOOTH_ABOVE else v, color=color, linewidth=1.2, label=label)
        drawn = True
    if not drawn:
        missing(ax, title, f"none of the runs has {evals or column}")
        return False
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("step")
    if legend:
        _legend(ax, loc="best")
    return True


__all__ = [
    "HEATMAP_COLUMNS",
    "SHARES",
    "SMOOTH_ABOVE",
    "missing",
    "plot_compare",
    "plot_covariance",
    "plot_entropy",
    "plot_entropy_heatmap",
    "plot_evals",
    "plot_events",
    "plot_law",
    "plot_law_steps",
    "plot_length",
    "plot_mechanism",
    "plot_reward",
    "plot_shares",
    "share_colorbar",
]


# ----------------------------------------------------------------------------- entropy control
def plot_control(ax: Axes, knob_ax: Axes, control: pl.DataFrame, summary: dict) -> None:
    """Entropy against its target and band (shaded), the control start as a dotted line; and the
    controlled knob (the bonus coefficient or ε_high) per step on ``knob_ax``. ``control`` is
    ``analysis.control.control_series``; ``summary`` the ``control`` section of ``analyze_run``."""
    steps = control["step"].to_numpy()
    lo, hi = summary["band"]
    sched = summary.get("schedule", "constant") != "constant"  # the target and band per step (a schedule)
    ax.fill_between(steps, control["control/band_low"].to_numpy(), control["control/band_high"].to_numpy(),
                    color=COLORS["accuracy"], alpha=0.12, linewidth=0,
                    label="band (follows the schedule)" if sched else f"band {lo:.3g}–{hi:.3g}")
    ax.plot(steps, control["control/target"].to_numpy(), color=COLORS["accuracy"], linewidth=1.0, linestyle="--",
            label=f"target: {summary['schedule']}" if sched else f"target {summary['target']:.3g}")
    ax.plot(steps, control["entropy_mean"].to_numpy(), color=COLORS["entropy"], label="entropy (token mean)")
    for a in (ax, knob_ax):
        a.axvline(summary["control_from"], color=COLORS["muted"], linewidth=0.8, linestyle=(0, (2, 2)))
    ax.set_title(f"Entropy under {summary['mode']}")
    ax.set_ylabel("entropy (nats)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.15)
    _legend(ax, loc="upper right")
    _steps_axis(ax, False)
    knob = summary.get("knob")
    if knob and knob in control.columns:
        name = KNOB_LABELS[knob]
        knob_ax.plot(steps, control[knob].to_numpy(), color=COLORS["clip_high"], drawstyle="steps-post",
                     label=name)
        knob_ax.axhline(0, color=COLORS["grid"], linewidth=0.8)
        knob_ax.set_title(f"Controller output: {name}")
        knob_ax.set_ylabel(name.split(" ")[-1])
        if knob == "control/effort":  # pi_clip: what the effort set (clip bounds, then the detached share)
            knob_ax.axhspan(-PIClip.CLIP_SPAN, PIClip.CLIP_SPAN, color=COLORS["grid"], alpha=0.25, linewidth=0)
            for (col, label), style in zip(EFFORT_LABELS.items(), ("--", ":", "-.")):
                if col in control.columns:
                    knob_ax.plot(steps, control[col].to_numpy(), color=COLORS["muted"], linestyle=style,
                                 linewidth=0.9, drawstyle="steps-post", label=label)
            _legend(knob_ax, loc="upper left")
    elif "control/error" in control.columns:
        knob_ax.plot(steps, control["control/error"].to_numpy(), color=COLORS["muted"])
        knob_ax.axhline(0, color=COLORS["grid"], linewidth=0.8)
        knob_ax.set_title("Error: target − entropy (no controller acting)")
        knob_ax.set_ylabel("nats")
    _steps_axis(knob_ax, True)

