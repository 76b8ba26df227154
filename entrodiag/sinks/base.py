"""What every tracker sink shares: the interface, the registry of names, and the fan-out that
the Recorder drives from its writer thread (run on a thread of the sinks' own).

A sink receives, on the run's own step axis (entrodiag's ``step``):

- each step row's numbers as ``entrodiag/<column>`` (``log_metrics``);
- each event (flag, alert, switch, stop, ...) as the number ``entrodiag/events/<kind>/<name>`` =
  its severity rank (1 info, 2 warning, 3 critical) and as a note (``log_note``: the tracker's
  text or alert where it has one);
- at close, the entropy law's ceiling and the entropy forecast as ``entrodiag/outlook/...``.

Failures of a sink are logged and counted (``SinkSet.errors``), never raised into training.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import threading
import time
import traceback
from collections import deque
from collections.abc import Sequence
from typing import Any

from ..tracker_env import missing_package, redacted
from ..watch.alert import SEVERITIES

log = logging.getLogger("entrodiag")

PREFIX = "entrodiag/"
#: the trackers a sink can be named by: name -> (module, class, pip extra)
SINKS: dict[str, tuple[str, str, str]] = {
    "wandb": ("entrodiag.sinks.wandb", "WandbSink", "wandb"),
    "tensorboard": ("entrodiag.sinks.tensorboard", "TensorBoardSink", "tensorboard"),
    "mlflow": ("entrodiag.sinks.mlflow", "MlflowSink", "mlflow"),
    "trackio": ("entrodiag.sinks.trackio", "TrackioSink", "trackio"),
}
#: an event's severity as the number a tracker plots: 1 info, 2 warning, 3 critical
SEVERITY_RANK = {s: i + 1 for i, s in enumerate(SEVERITIES)}
#: step-row columns that are not sent (identity, wall clock)
NOT_SENT = frozenset({"step", "rank", "wall_time"})
_MAX_LOGGED_ERRORS = 10
#: the calls the sinks' thread may hold; when full, the oldest is dropped (``errors[DROPPED]``)
QUEUE_SIZE = 1024
DROPPED = "dropped"
#: a sink that fails this many times in a row is switched off for the run
MAX_FAILURES_IN_A_ROW = 5
#: how long ``SinkSet.close`` waits for the sinks to finish the queued calls
CLOSE_TIMEOUT_S = 30.0


class SinkError(ValueError):
    """A sink cannot be built: an unknown name, or its tracker's package is not installed."""


def require(package: str, extra: str) -> Any:
    """Import and return ``package``, or raise ``missing_package``'s error (a ``SinkError``)."""
    try:
        return importlib.import_module(package)
    except ImportError:
        raise missing_package(package, extra, f"the {extra} sink", SinkError) from None


class TrackerSink:
    """Base of every sink. ``start`` runs in the Recorder's constructor (the caller's thread, where
    the user's open run is visible); the other methods run on the ``SinkSet``'s thread and may
    raise (the ``SinkSet`` counts it)."""

    name = "sink"

    def start(self, meta: dict) -> None:
        """Note the run about to be recorded (``meta``: its run.json fields: ``run_id``, ``config``)
        and any run of this tracker the user already has open."""
        self.meta = meta

    def log_metrics(self, step: int, values: dict[str, float]) -> None:
        """Log ``values`` (names with the ``entrodiag/`` prefix) at entrodiag's ``step``."""
        raise NotImplementedError

    def log_note(self, step: int, kind: str, name: str, title: str, text: str, severity: str | None) -> None:
        """An event's text (``kind``: flag, alert, switch, stop, ...); an alert where the tracker
        has alerts and ``kind`` is ``flag``. Default: nothing beyond the event's number."""

    def close(self, status: str) -> None:
        """End the tracker's run if this sink started it (a run the user opened stays open)."""


def sink_names(spec: str | Sequence[str]) -> list[str]:
    """``"wandb,tensorboard"`` or ``["wandb", ...]`` -> the checked names: ``SinkError`` on an
    unknown one or one whose package is missing (found without importing it)."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n and n.strip()]
    unknown = [n for n in names if n not in SINKS]
    if unknown:
        raise SinkError(f"unknown tracker(s) {', '.join(map(repr, unknown))}; trackers: {', '.join(SINKS)}")
    for n in names:
        if importlib.util.find_spec(SINKS[n][2]) is None:
            raise missing_package(SINKS[n][2], SINKS[n][2], f"the {n} sink", SinkError)
    return names


def make_sink(spec: str | TrackerSink) -> TrackerSink:
    """A sink from its name (``wandb``, ``tensorboard``, ``mlflow``, ``trackio``) or a ready sink."""
    if isinstance(spec, TrackerSink):
        return spec
    if not isinstance(spec, str):
        raise SinkError(f"a sink is a tracker name or a TrackerSink, got {type(spec).__name__}")
    (name,) = sink_names([spec])
    module, cls, _ = SINKS[name]
    return getattr(importlib.import_module(module), cls)()


def step_metrics(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of a step row that a tracker gets, as ``entrodiag/<column>`` (finite only)."""
    out = {}
    for k, v in row.items():
        if k in NOT_SENT or isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if math.isfinite(v):
            out[PREFIX + k] = float(v)
    return out


class SinkSet:
    """The Recorder's sinks, driven from a daemon thread of their own, so that a slow or
    unreachable tracker never holds up the Recorder's writer (nor, through it, training).

    ``step``, ``event`` and ``outlook`` only queue the call (at most ``queue_size`` calls, default
    ``QUEUE_SIZE``; when
    full, the oldest is dropped and counted in ``errors["dropped"]``). A sink that raises is logged
    (the first few times) and counted in ``errors`` (per sink name), never raised; after
    ``MAX_FAILURES_IN_A_ROW`` failures in a row it is switched off (logged once, named in
    ``switched_off``). ``close`` waits at most ``close_timeout_s`` (default ``CLOSE_TIMEOUT_S``)
    for the queued calls.
    """

    def __init__(self, specs: str | Sequence[str | TrackerSink], queue_size: int | None = None,
                 close_timeout_s: float | None = None) -> None:
        if isinstance(specs, str):
            specs = sink_names(specs)
        self.sinks = [make_sink(s) for s in specs]  # SinkError here: before any run is created
        self.errors: dict[str, int] = {}
        self.switched_off: list[str] = []
        self.sent_outlook: dict[str, float] = {}
        self.queue_size = max(1, int(QUEUE_SIZE if queue_size is None else queue_size))
        self.close_timeout_s = CLOSE_TIMEOUT_S if close_timeout_s is None else close_timeout_s
        self._queue: deque = deque()
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False
        self._closed = False
        self._in_a_row: dict[int, int] = {}
        self._off: set[int] = set()

    def start(self, meta: dict) -> None:
        """Each sink's ``start``, in the caller's thread (see ``TrackerSink.start``)."""
        for sink in self.sinks:
            self._guard(sink, "start", sink.start, meta)

    def __bool__(self) -> bool:
        return bool(self.sinks)

    @property
    def error_count(self) -> int:
        with self._cv:
            return sum(self.errors.values())

    def step(self, step: int, row: dict[str, Any]) -> None:
        """Send a step row (or added columns of one)."""
        values = step_metrics(row) if self.sinks else None
        if values:
            self._put(self._each, "log_metrics", step, values)

    def event(self, step: int, kind: str, name: str, severity: str | None, message: str) -> None:
        """Send an event: its severity as a number, and its text (an alert for a flag)."""
        if not self.sinks:
            return
        rank = SEVERITY_RANK.get(severity or "", 1)
        title = f"entrodiag {kind}: {name}" + (f" ({severity})" if severity else "")
        self._put(self._each, "log_metrics", step, {f"{PREFIX}events/{kind}/{name}": float(rank)})
        self._put(self._each, "log_note", step, kind, name, title, message or title, severity)

    def outlook(self, step: int, values: dict[str, float]) -> None:
        """Send the outlook values (``outlook/ceiling``, ...) that changed since last sent."""
        changed = {k: v for k, v in values.items() if self.sent_outlook.get(k) != v}
        self.sent_outlook.update(changed)
        self.step(step, changed)

    def close(self, status: str) -> None:
        """Close every sink after the calls queued before, waiting at most ``close_timeout_s``
        (what is left then is dropped and counted); the set is then empty (a second close does nothing)."""
        if not self.sinks:
            return
        self._put(self._each, "close", status)
        deadline = time.monotonic() + self.close_timeout_s
        with self._cv:
            self._closed = True
            self._cv.notify_all()
            while (self._queue or self._busy) and (left := deadline - time.monotonic()) > 0:
                self._cv.wait(left)
            if self._queue or self._busy:
                n = len(self._queue) + self._busy
                self._queue.clear()
                self.errors[DROPPED] = self.errors.get(DROPPED, 0) + n
                log.error("entrodiag: the sinks did not finish within %.0f s of close; %d call(s) dropped",
                          self.close_timeout_s, n)
        self.sinks = []

    # ---------------------------------------------------------------------------- internals
    def _put(self, *job: Any) -> None:
        with self._cv:
            if self._closed:
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                n = self.errors[DROPPED] = self.errors.get(DROPPED, 0) + 1
                if n == 1:
                    log.warning("entrodiag: a tracker sink is slower than training; its oldest calls are "
                                "dropped (counted in sink_errors['%s'])", DROPPED)
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="entrodiag-sinks", daemon=True)
                self._thread.start()
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    self._cv.wait()
                if not self._queue:
                    return
                fn, *args = self._queue.popleft()
                self._busy = True
            try:
                fn(*args)
            except Exception:  # never lose the thread
                log.exception("entrodiag: the sink thread failed")
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _each(self, what: str, *args: Any) -> None:
        for sink in self.sinks:
            if id(sink) not in self._off:
                self._guard(sink, what, getattr(sink, what), *args)

    def _guard(self, sink: TrackerSink, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            with self._cv:
                n = self.errors[sink.name] = self.errors.get(sink.name, 0) + 1
                row = self._in_a_row[id(sink)] = self._in_a_row.get(id(sink), 0) + 1
            if n <= _MAX_LOGGED_ERRORS:
                log.error("entrodiag: the %s sink failed (%s): %s; training goes on", sink.name, what,
                          redacted(traceback.format_exc()))
            elif n == _MAX_LOGGED_ERRORS + 1:
                log.error("entrodiag: the %s sink keeps failing; further errors are counted, not logged",
                          sink.name)
            if row == MAX_FAILURES_IN_A_ROW:
                self._off.add(id(sink))
                self.switched_off.append(sink.name)
                log.error("entrodiag: the %s sink failed %d times in a row; it is switched off for this run",
                          sink.name, row)
        else:
            self._in_a_row[id(sink)] = 0
