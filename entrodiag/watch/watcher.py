"""Follow a run while it trains: re-run the collapse detectors whenever a new part file lands,
report each new flag once per episode, keep a live status with the entropy forecast, write every
flag (and alert) to the run's ``events`` table, call ``on_flag`` callbacks and send alerts.

The same ``Watcher`` serves ``entrodiag watch`` (a separate process: it reads only completed part
files and writes its events as part files of its own) and the built-in trainer's ``--stop-on`` /
``--on-collapse`` (in process: events go through the trainer's ``Recorder``).

Episodes: a flag kind is *new* the first time it is raised, again when its severity rises within
an episode, and again after it has not been raised for more than ``reset_steps`` recorded steps
(the episode ended). A kind that flickers around its threshold therefore reports once.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..analysis.ceilings import asymptote_text
from ..analysis.collapse import CollapseThresholds, Flag, at_or_above, run_detectors, severity_rank
from ..analysis.compute_law import fit_compute_law, judge_compute
from ..analysis.control import control_summary
from ..analysis.forecast import EntropyForecast, forecast_entropy
from ..analysis.law import fit_entropy_law
from ..analysis.metric import MetricChoice, choose_metric
from ..analysis.runs import AnalysisError
from ..analysis.series import trailing_mean
from ..analysis.sources import reward_series
from ..analysis.verdicts import judge_law
from ..store.parts import file_key
from ..store.reader import Run, load_run, run_status, stat_files
from ..store.schema import RUN_JSON
from ..store.writer import event_row, warm_up, write_events

log = logging.getLogger("entrodiag")

EventSink = Callable[..., None]  # (step, kind, name, *, severity, first_step, last_step, message, detail)


@dataclass(frozen=True)
class WatchStatus:
    """Where a watched run stands after the last poll (``None``: not recorded yet)."""

    run_status: str
    step: int | None = None
    entropy: float | None = None
    reward: float | None = None
    metric: str | None = None
    accuracy: float | None = None
    ceiling: float | None = None
    law_status: str | None = None  # "poor fit" or "not applicable" (verdicts.judge_law): no ceiling is shown
    forecast: EntropyForecast | None = None
    active_flags: int = 0
    metric_label: str | None = None  # "validation accuracy", "training reward", ... (choose_metric)
    metric_reason: str | None = None
    reward_label: str | None = None  # "task score" where the logged reward holds a KL penalty (reward_series)
    asymptote: float | None = None  # the compute sigmoid's A (compute_law), where it fits
    asymptote_ci: tuple[float, float] | None = None
    mid_step: float | None = None  # the step at which half the sigmoid's gain is reached
    compute_status: str | None = None  # its verdict where it does not fit; "no fit" where none was made
    control: str | None = None  # the deviation from the entropy target/schedule (analysis.control), when logged

    def line(self) -> str:
        """A compact one-line status: step, entropy, reward, accuracy, ceiling, steps to the floor."""
        if self.step is None:
            return f"{self.run_status}: no step recorded yet"
        parts = [f"step {self.step}", f"entropy {_f(self.entropy)}",
                 f"{self.reward_label or 'reward'} {_f(self.reward)}"]
        if self.metric:
            training = (self.metric_label or "").startswith("training")
            parts.append(f"{self.metric}{f' ({self.metric_label})' if training else ''} {_f(self.accuracy)}")
        parts.append(f"ceiling — ({self.law_status})" if self.law_status else f"ceiling {_f(self.ceiling)}")
        if self.asymptote is not None or self.compute_status:
            parts.append(asymptote_text(self.asymptote, self.asymptote_ci, self.mid_step, self.compute_status))
        fc = self.forecast
        if fc is not None:
            if not fc.applies:
                parts.append(f"floor {fc.floor:.3f}: no forecast (entropy not falling)")
            elif fc.reached_step is not None:
                parts.append(f"floor {fc.floor:.3f} reached at step {fc.reached_step}")
            elif fc.predicted_step is None:
                parts.append(f"floor {fc.floor:.3f}: not in sight")
            else:
                hi = "∞" if fc.predicted_high is None else fc.predicted_high
                when = (f"would have been ~{fc.steps_left} steps after the end" if fc.ended
                        else f"in ~{fc.steps_left} steps")
                parts.append(f"floor {fc.floor:.3f} {when} "
                             f"(step {fc.predicted_step}, {fc.predicted_low}–{hi})")
        if self.control:
            parts.append(self.control)
        parts.append(f"flags {self.active_flags}")
        return f"[{self.run_status}] " + " | ".join(parts)


def _f(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


@dataclass
class _Episode:
    severity: str
    last_seen: int


class Watcher:
    """Incremental collapse detection on a run directory.

    Args:
        run_dir: the run (or a folder holding exactly one run): a local path or a URL
            (``s3://...``; its heartbeat is read from run.json, new parts found by listing).
        thresholds: overrides of ``CollapseThresholds`` fields.
        min_severity: flags below it are ignored (not reported, not recorded, no callbacks).
        reset_steps: recorded steps without a kind before its episode ends (see the module doc).
        floor_frac: the forecast's floor as a share of the start entropy.
        events: where flag and alert events go: ``"file"`` (part files of this process, for a
            watcher outside the training process), ``None`` (nowhere), or a callable with the
            signature of ``Recorder.log_event``.
        alerts: an ``entrodiag.watch.alerts.AlertDispatcher`` that each new flag is sent to; its
            delivery results become ``alert`` / ``alert_failed`` events.
        source: recorded in each event's detail (``watch``, ``trainer``, ...).

    Example:
        >>> w = Watcher("runs/demo")                                       # doctest: +SKIP
        >>> w.on_flag(lambda flag, status: print(flag.kind, status.step))  # doctest: +SKIP
        >>> new_flags = w.poll()                                           # doctest: +SKIP
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        thresholds: dict[str, float] | None = None,
        min_severity: str = "info",
        reset_steps: int = 50,
        floor_frac: float = 0.5,
        events: str | EventSink | None = "file",
        alerts: Any = None,
        source: str = "watch",
        metric: str | None = None,
    ) -> None:
        self.path = load_run(run_dir).path
        self.metric = metric
        self.thresholds = CollapseThresholds.with_overrides(**(thresholds or {}))
        severity_rank(min_severity)
        self.min_severity = min_severity
        self.reset_steps = int(reset_steps)
        self.floor_frac = float(floor_frac)
        self.source = source
        if events == "file":
            warm_up()
            self._event: EventSink | None = self._write_event
        elif events is None or callable(events):
            self._event = events
        else:
            raise ValueError(f"events must be 'file', None or a callable, got {events!r}")
        self.alerts = alerts
        if alerts is not None and self._event is not None:
            alerts.on_result = self._alert_result
        self._callbacks: list[Callable[[Flag, WatchStatus], Any]] = []
        self._episodes: dict[str, _Episode] = {}
        self._signature: tuple | None = None
        self._meta: dict = {}
        self._compute: tuple[tuple, dict] | None = None  # (R's points, the compute sigmoid's fields): refit on change
        self.status = WatchStatus(run_status="unknown")
        self.flags: list[Flag] = []
        self.callback_errors = 0

    def on_flag(self, fn: Callable[[Flag, WatchStatus], Any]) -> Callable[[Flag, WatchStatus], Any]:
        """Call ``fn(flag, status)`` for each new flag (usable as a decorator). An exception in
        ``fn`` is logged and counted (``callback_errors``), never raised into the caller."""
        self._callbacks.append(fn)
        return fn

    def poll(self, *, force: bool = False, emit: bool = True) -> list[Flag]:
        """Re-read the run when a part file was added (or ``force``), re-run the detectors and
        return the flags that are new (see the module doc); updates ``status`` and ``flags``.
        ``emit=False`` only takes note of them (no events, callbacks or alerts): a resumed run's
        flags from before its checkpoint are then not new again.

        When no file changed, the run's status is still decided anew (``run_status``, the rule of
        ``inspect``): a writer killed without closing stops its heartbeat, and nothing changes
        on disk, yet the run becomes ``interrupted``."""
        signature = self._files_signature()
        if signature == self._signature and not force:
            status = run_status(self._meta)
            if status != self.status.run_status:
                self.status = replace(self.status, run_status=status)
            return []
        self._signature = signature
        run = load_run(self.path)
        self._meta = run.meta
        found, _ = run_detectors(run, self.thresholds)
        flags = at_or_above(found, self.min_severity)
        self.flags = flags
        self.status = self._status(run, len(flags), [f.kind for f in found])
        step = self.status.step if self.status.step is not None else -1
        new = self._new(flags, step)
        for flag in new if emit else ():
            self._emit(run, flag, step)
        return new

    def record_stop(self, step: int, flag: Flag, stop_on: str) -> None:
        """Record in the run's events that training stopped at ``step`` on ``flag``."""
        if self._event is not None:
            self._event(step, "stop", flag.kind, severity=flag.severity, first_step=flag.first_step,
                        last_step=flag.last_step, message=f"stopped on {flag.kind} ({flag.severity})",
                        detail={"stop_on": stop_on, "source": self.source})

    def close(self, timeout: float | None = None) -> None:
        """Deliver pending alerts: wait until each was offered to every sink, each sink within its
        own deadline (its ``timeout``), or at most ``timeout`` seconds when given."""
        if self.alerts is not None:
            self.alerts.close(timeout)

    # ------------------------------------------------------------------------------ internals
    def _files_signature(self) -> tuple:
        """The part files of steps/ and evals/ (names, sizes) and run.json's time and size: one
        listing per folder, on a local disk or an object store alike."""
        entries = []
        for table in ("steps", "evals"):
            entries += [(name, size) for name, _, size in stat_files(self.path / table)
                        if name.startswith("part-")]
        key = file_key(self.path / RUN_JSON)  # time and size: an object store's times have whole seconds
        return (tuple(entries), None if key is None else key[1:])

    def _new(self, flags: list[Flag], step: int) -> list[Flag]:
        raised = {f.kind for f in flags}
        for kind in [k for k, ep in self._episodes.items() if k not in raised]:
            if step - self._episodes[kind].last_seen > self.reset_steps:
                del self._episodes[kind]
        new = []
        for f in flags:
            ep = self._episodes.get(f.kind)
            if ep is None or severity_rank(f.severity) > severity_rank(ep.severity):
                new.append(f)
                self._episodes[f.kind] = _Episode(f.severity, step)
            else:
                ep.last_seen = step
        return new

    def _emit(self, run: Run, flag: Flag, step: int) -> None:
        if self._event is not None:
            try:
                self._event(step, "flag", flag.kind, severity=flag.severity, first_step=flag.first_step,
                            last_step=flag.last_step, message=flag.message,
                            detail={"evidence": flag.evidence, "advice": flag.advice, "source": self.source})
            except Exception:
                log.exception("entrodiag watch: could not record the %s flag in %s", flag.kind, self.path)
        if self.alerts is not None:
            self.alerts.notify(flag, step=step, run_id=run.run_id, run_dir=str(self.path))
        for fn in self._callbacks:
            try:
                fn(flag, self.status)
            except Exception:
                self.callback_errors += 1
                log.exception("entrodiag watch: on_flag callback %r failed", fn)

    def _write_event(self, step: int, kind: str, name: str, **fields: Any) -> None:
        write_events(self.path, [event_row(step, kind, name, **fields)])

    def _alert_result(self, alert, sink: str, ok: bool, error: str | None) -> None:
        try:
            self._event(alert.step, "alert" if ok else "alert_failed", sink, severity=alert.severity,
                        first_step=alert.first_step, last_step=alert.last_step,
                        message=f"{alert.kind} alert {'sent' if ok else 'failed'}",
                        detail={"flag": alert.kind, "error": error, "source": self.source})
        except Exception:
            log.exception("entrodiag watch: could not record an alert event in %s", self.path)

    def _compute_fields(self, run: Run, choice: MetricChoice, n_steps: int) -> dict:
        """The compute-axis ceiling's fields of the status (``compute_law``), refitted only when R's
        points changed (a bootstrap of 100: the premise on the rise needs its interval)."""
        key = _compute_key(run, choice, n_steps)
        if self._compute is not None and self._compute[0] == key:
            return self._compute[1]
        try:
            cfit = fit_compute_law(run, metric=choice, smooth=self.thresholds.smooth, n_boot=100)
            cv = judge_compute(cfit)
            comp = ({"asymptote": cfit.A, "asymptote_ci": cfit.ci.get("A"), "mid_step": cfit.mid_step}
                    if cv.fits else {"compute_status": cv.status})
        except (AnalysisError, ValueError):
            comp = {"compute_status": "no fit"}
        self._compute = (key, comp)
        return comp

    def _status(self, run: Run, n_flags: int, flag_kinds: list[str]) -> WatchStatus:
        steps = run.steps
        if steps.is_empty():
            return WatchStatus(run_status=run.status)

        def recent(col: str) -> float | None:
            if col not in steps.columns:
                return None
            v = steps.sort("step")[col].drop_nulls().to_numpy().astype(np.float64)
            v = v[np.isfinite(v)]
            return float(trailing_mean(v, self.thresholds.smooth)[-1]) if len(v) else None

        acc = ceiling = law_status = fc = choice = None
        reward = reward_series(run)  # the task score where the logged reward holds a KL penalty
        try:
            choice = choose_metric(run, self.metric)
        except AnalysisError:
            if self.metric is not None:
                raise
        metric = choice.name if choice else None
        if choice is not None and not choice.is_training:
            ev = run.evals.filter(run.evals["name"] == metric).drop_nulls("value").sort("step")
            acc = float(ev["value"][-1]) if ev.height else None
        elif choice is not None:
            acc = recent(metric)
        try:
            law = fit_entropy_law(run, metric=metric, smooth=self.thresholds.smooth, n_boot=0)
            verdict = judge_law(law, flag_kinds, self.thresholds.ceiling_min_r2)
            ceiling, law_status = (law.ceiling, None) if verdict.fits else (None, verdict.status)
        except (AnalysisError, ValueError):
            pass
        comp: dict = {}
        if choice is not None:
            comp = self._compute_fields(run, choice, steps.height)
        try:
            fc = forecast_entropy(run, floor_frac=self.floor_frac, smooth=self.thresholds.smooth, n_draws=1000)
        except (AnalysisError, ValueError):
            pass
        try:
            cs = control_summary(run)
            control = f"entropy {cs.deviation_line()}"
        except AnalysisError:
            control = None
        return WatchStatus(
            run_status=run.status, step=int(steps["step"].max()), entropy=recent("entropy_mean"),
            reward=recent(reward.column if reward else "reward_mean"), metric=metric, accuracy=acc,
            ceiling=ceiling, law_status=law_status,
            forecast=fc, active_flags=n_flags, metric_label=choice.label if choice else None,
            metric_reason=choice.reason if choice else None,
            reward_label=reward.label if reward and reward.column != "reward_mean" else None, control=control,
            **comp,
        )


def _compute_key(run: Run, choice: MetricChoice, n_steps: int) -> tuple:
    """What the compute sigmoid of ``choice`` depends on: its evaluations (or, for a training
    series, the step rows)."""
    if choice.is_training:
        return (choice.name, n_steps)
    ev = run.evals.filter(run.evals["name"] == choice.name)
    return (choice.name, ev.height, int(ev["step"].max()) if ev.height else None)


def describe_flag(flag: Flag, step: int | None = None) -> str:
    """A flag as a few readable lines (severity, kind, steps, message, evidence, advice)."""
    head = f"[step {step}] " if step is not None else ""
    ev = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in flag.evidence.items())
    return (f"{head}{flag.severity.upper()} {flag.kind} (steps {flag.first_step}–{flag.last_step}): "
            f"{flag.message}\n    evidence: {ev}\n    → {flag.advice}")

