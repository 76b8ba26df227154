"""How well an entropy controller held its target: time in band, overshoot, settling.

Reads the step columns the controllers log (``entrodiag.trainer.controllers``: ``control/target``,
``control/band_low``/``band_high``, ``control/active``, ``control/coef``, ``control/clip_high``,
``control/clip_low``, ``control/detach``, ``control/effort``, ``control/error``) next to
``entropy_mean``, the rollout entropy the controller saw. An uncontrolled run with a target
(``entropy_control = "none"``) logs the same columns, so its time in band is measured against the
same band.

Definitions (raw per-step entropy, no smoothing), from the control start s0 (the first step the
controller acted, or, for ``none``, the configured ``entropy_control_from``):

- *time in band*: share of the scored steps (s ≥ ``from_step``, default s0) with
  band_low ≤ H ≤ band_high.
- *overshoot*: how far entropy went past the target on the side opposite to where it started at
  s0, max over s ≥ s0 of max(0, −d·(H_s − target)) with d = sign(H_s0 − target); in nats and as a
  fraction of the target.
- *tracking error*: mean |H_s − target| over the scored steps, in nats.
- *settling step*: the first step s ≥ s0 from which H stays in the band to the last step;
  *settling steps* = that step − s0 (None when the last step is outside the band).

The target and the band are per step (``control/target`` follows ``entropy_schedule``), and so is
every comparison above. The deviation from the schedule, over every step s ≥ s0:

- *in schedule*: share of the steps with |H_s − T_s| ≤ 0.2·T_s (T_s the target of step s);
- *mean relative deviation*: mean of |H_s − T_s| / T_s.

The guard (``control/guard``, 1 on the steps where it acted: the target was capped at
``control/guard_bound`` / 1.2, or entropy was above ``control/guard_bound`` and the controller's
entropy-raising output was clamped): *guard steps* counts both kinds of step.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

from .jsonable import clean
from .runs import AnalysisError, RunLike, as_run

COLUMNS = ("control/target", "control/band_low", "control/band_high", "control/active", "control/coef",
           "control/clip_high", "control/clip_low", "control/detach", "control/effort", "control/error",
           "control/integral", "control/guard", "control/guard_bound")
#: The band of the deviation statistics, relative to the scheduled target (±20%).
SCHEDULE_TOL = 0.2
#: The column of each controller's output (pi_clip's effort u sets the clip bounds and the detached share).
KNOBS = {"pi_coef": "control/coef", "adaptive_coef": "control/coef", "pi_clip": "control/effort"}


def band_stats(steps: np.ndarray, entropy: np.ndarray, target, band: tuple, start: int,
               from_step: int | None = None) -> dict:
    """Time in band, overshoot, settling and the deviation from the target of ``entropy`` over
    ``steps`` (see the module doc). ``target`` and the two ends of ``band`` are numbers or arrays
    (one value per step: a schedule); ``target``/``band`` in the result are those of the last step.

    Example:
        >>> s = band_stats(np.arange(5), np.array([0.7, 0.55, 0.45, 0.5, 0.52]), 0.5, (0.4, 0.6), 0)
        >>> s["time_in_band"], round(s["overshoot"], 3), s["settling_step"]
        (0.8, 0.05, 1)
    """
    steps, h = np.asarray(steps), np.asarray(entropy, dtype=np.float64)
    t = np.broadcast_to(np.asarray(target, dtype=np.float64), h.shape)
    lo, hi = (np.broadcast_to(np.asarray(b, dtype=np.float64), h.shape) for b in band)
    from_step = start if from_step is None else from_step
    scored = steps >= from_step
    inside = (h >= lo) & (h <= hi)
    after = steps >= start
    if not after.any():
        raise AnalysisError(f"no step at or after the control start {start}")
    ta = t[after]
    d = math.copysign(1.0, h[after][0] - ta[0]) if h[after][0] != ta[0] else 1.0
    over = float(np.max(np.maximum(0.0, -d * (h[after] - ta))))
    rel = np.abs(h[after] - ta) / ta
    settle = None
    ins = inside[after]
    if ins[-1]:
        out_idx = np.flatnonzero(~ins)
        first = 0 if out_idx.size == 0 else int(out_idx[-1]) + 1
        settle = int(steps[after][first])
    target = float(t[-1])
    return {
        "target": target, "target_start": float(ta[0]), "band": [float(lo[-1]), float(hi[-1])],
        "control_from": start, "scored_from": from_step,
        "n_scored": int(scored.sum()),
        "time_in_band": float(inside[scored].mean()) if scored.any() else None,
        "overshoot": over, "overshoot_frac": over / float(ta[0]) if ta[0] else None,
        "settling_step": settle, "settling_steps": None if settle is None else settle - start,
        "entropy_mean_scored": float(h[scored].mean()) if scored.any() else None,
        "tracking_error": float(np.abs(h[scored] - t[scored]).mean()) if scored.any() else None,
        "n_after": int(after.sum()), "in_schedule": float((rel <= SCHEDULE_TOL + 1e-12).mean()),
        "mean_rel_deviation": float(rel.mean()),
    }


def control_series(run: RunLike) -> pl.DataFrame:
    """``step``, ``entropy_mean`` and the control columns of a run, one row per step (rank means)."""
    run = as_run(run)
    steps = run.steps
    if steps.is_empty() or "control/target" not in steps.columns:
        raise AnalysisError("no control columns: train with an entropy target (entropy_target or "
                            "entropy_target_frac) to log control/target, control/error, ...")
    if "entropy_mean" not in steps.columns:
        raise AnalysisError("control columns without entropy_mean: the deviation from the target needs the entropy")
    cols = [c for c in COLUMNS if c in steps.columns]
    df = steps.group_by("step").agg(pl.col("entropy_mean").mean(), *[pl.col(c).mean() for c in cols]).sort("step")
    return df.with_columns(*[(f * pl.col("control/target")).alias(c) for c, f in
                             (("control/band_low", 0.8), ("control/band_high", 1.2)) if c not in df.columns])


@dataclass
class ControlSummary:
    """What :func:`control_summary` returns; ``to_dict`` is JSON-ready."""

    mode: str
    knob: str | None
    """The step column of the controller's output (``control/coef``, or ``control/effort`` for pi_clip)."""
    target: float
    band: list[float]
    control_from: int
    scored_from: int
    n_scored: int
    time_in_band: float | None
    overshoot: float
    overshoot_frac: float | None
    settling_step: int | None
    settling_steps: int | None
    entropy_mean_scored: float | None
    tracking_error: float | None
    """Mean |H − target| over the scored steps (nats)."""
    knob_start: float | None
    knob_end: float | None
    knob_min: float | None
    knob_max: float | None
    schedule: str = "constant"
    """``entropy_schedule`` as configured (``constant``: a fixed target)."""
    target_start: float | None = None
    """The target at the control start (``target`` is the last step's)."""
    n_after: int = 0
    in_schedule: float | None = None
    """Share of the steps from the control start within ±20% of that step's target."""
    mean_rel_deviation: float | None = None
    """Mean |H − target| / target over the steps from the control start."""
    guard_steps: int = 0
    """Steps on which the guard clamped the controller (``control/guard``)."""
    guard_bound: float | None = None
    """The guard's bound in nats (None: off or not logged)."""

    def deviation_line(self) -> str:
        """The deviation from the (scheduled) target in one phrase, for watch and the summary."""
        ins = "—" if self.in_schedule is None else f"{self.in_schedule:.0%}"
        dev = "—" if self.mean_rel_deviation is None else f"{self.mean_rel_deviation:.0%}"
        what = "the schedule" if self.schedule != "constant" else "the target"
        guard = f", guard acted on {self.guard_steps} steps" if self.guard_steps else ""
        return (f"within ±{SCHEDULE_TOL:.0%} of {what} on {ins} of {self.n_after} steps from step {self.control_from} "
                f"(mean deviation {dev}){guard}")

    def to_dict(self) -> dict:
        return clean(asdict(self))

    def describe(self) -> str:
        tib = "—" if self.time_in_band is None else f"{self.time_in_band:.0%}"
        settle = ("never settled (last step outside the band)" if self.settling_steps is None
                  else f"settled {self.settling_steps} steps after the start (step {self.settling_step})")
        knob = ""
        if self.knob and self.knob_start is not None:
            knob = (f"; {self.knob.split('/')[1]} {self.knob_start:.4g} → {self.knob_end:.4g} "
                    f"(range {self.knob_min:.4g} … {self.knob_max:.4g})")
        sched = ""
        if self.schedule != "constant" and self.target_start is not None:
            sched = f" ({self.schedule}: {self.target_start:.3f} → {self.target:.3f})"
        return (f"{self.mode}: target {self.target:.3f} nats{sched}, band {self.band[0]:.3f}–{self.band[1]:.3f}; "
                f"{self.deviation_line()}; in band {tib} of {self.n_scored} steps from step {self.scored_from} (mean |H − target| "
                f"{(self.tracking_error or 0):.3f}); overshoot "
                f"{self.overshoot:.3f} nats ({(self.overshoot_frac or 0):.0%} of target); {settle}{knob}")


def control_summary(run: RunLike, *, from_step: int | None = None) -> ControlSummary:
    """The control section of a run: target, band, time in band (from ``from_step``, default the
    control start), overshoot, settling and the range of the controlled knob.

    Example:
        >>> control_summary("runs/pi", from_step=100).time_in_band   # doctest: +SKIP
        0.93
    """
    run = as_run(run)
    df = control_series(run).filter(pl.col("control/target").is_finite())
    if df.is_empty():
        raise AnalysisError("the target is not known yet (entropy_target_frac needs the first 10 steps)")
    cfg = run.meta.get("config") or {}
    mode = run.meta.get("entropy_control") or cfg.get("entropy_control") or "none"
    active = df.filter(pl.col("control/active") > 0) if "control/active" in df.columns else df.clear()
    configured = cfg.get("entropy_control_from") or run.meta.get("entropy_control_from") or 0  # TRL: in meta
    start = int(active["step"][0]) if active.height else max(int(configured), int(df["step"][0]))
    stats = band_stats(df["step"].to_numpy(), df["entropy_mean"].to_numpy(), df["control/target"].to_numpy(),
                       (df["control/band_low"].to_numpy(), df["control/band_high"].to_numpy()), start, from_step)
    knob = KNOBS.get(mode)
    after = df.filter(pl.col("step") >= start)
    kv = after[knob].to_numpy() if knob and knob in df.columns else np.empty(0)
    guard = after["control/guard"].fill_nan(0).fill_null(0) if "control/guard" in df.columns else None
    bound = df["control/guard_bound"].drop_nans().drop_nulls() if "control/guard_bound" in df.columns else None
    return ControlSummary(
        mode=mode, knob=knob, **{k: stats[k] for k in (
            "target", "band", "control_from", "scored_from", "n_scored", "time_in_band", "overshoot",
            "overshoot_frac", "settling_step", "settling_steps", "entropy_mean_scored", "tracking_error",
            "target_start", "n_after", "in_schedule", "mean_rel_deviation")},
        schedule=str(cfg.get("entropy_schedule") or run.meta.get("entropy_schedule") or "constant"),
        guard_steps=int((guard > 0).sum()) if guard is not None else 0,
        guard_bound=float(bound[-1]) if bound is not None and bound.len() else None,
        knob_start=float(kv[0]) if kv.size else None, knob_end=float(kv[-1]) if kv.size else None,
        knob_min=float(kv.min()) if kv.size else None, knob_max=float(kv.max()) if kv.size else None,
    )


__all__ = ["ControlSummary", "band_stats", "control_series", "control_summary"]
