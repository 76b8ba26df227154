"""The alert dispatcher: which collapse flags alert (once per episode, rate-limited, escalations
once more), and their delivery to the sinks on one background thread, each sink within its own
deadline.

Failures are logged on the ``entrodiag`` logger with secrets scrubbed, counted and reported to
``on_result``, never raised. The configuration is described in ``entrodiag.watch.alerts``.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .alert import Alert, severity_rank
from .sinks import Sink, redact_url

if TYPE_CHECKING:
    from ..analysis.collapse import Flag

log = logging.getLogger("entrodiag")

#: ``on_result(alert, sink_name, ok, error)``, called on the delivery thread after each send
ResultCallback = Callable[["Alert", str, bool, "str | None"], None]


@dataclass
class _Episode:
    end: int                 # the largest last_step seen in this episode
    alerted_rank: int = -1   # highest severity rank alerted in this episode (-1: none yet)


@dataclass
class _KindState:
    episode: _Episode
    last_alert_step: int | None = None
    last_alert_time: float | None = None


_STOP = object()


class AlertDispatcher:
    """Decides which flags alert and delivers them to the sinks on one background thread.

    The rule, per flag ``kind`` (``notify`` is called each time a detector raises the flag, at
    ``step``):

    1. **Episodes.** A flag continues the kind's current episode when its ``first_step`` is at most
       the episode's end + ``cooldown_steps``, the end being the largest ``last_step`` seen in the
       episode (each continuing flag extends it). Otherwise, i.e. when the kind was not raised
       for more than ``cooldown_steps`` steps, it opens a new episode.
    2. **Severity floor.** Flags below ``min_severity`` never alert (they still open and extend
       episodes).
    3. **First alert of an episode.** An episode not alerted yet alerts at the first flag for which
       the kind's cooldown since its previous alert has passed: ``step - last_alert_step >=
       cooldown_steps`` and, when ``cooldown_s`` is set, at least ``cooldown_s`` seconds
       (monotonic clock). Until then its flags are suppressed, and the episode stays pending.
    4. **Escalation.** Within an alerted episode, a flag whose severity is higher than every
       severity alerted so far in the episode (warning → critical) alerts once more, regardless
       of the cooldown. So an episode alerts at most once per severity level.

    ``notify`` returns whether an alert was queued and never blocks on delivery. Each queued alert
    goes to every sink whose own ``min_severity`` it meets; a sink that raises is logged on the
    ``entrodiag`` logger (secrets scrubbed), counted in ``failures`` and reported to
    ``on_result(alert, sink_name, ok, error)`` (called on the delivery thread; its own errors are
    logged), never raised. ``flush`` waits for the queue, ``close`` flushes and stops the thread;
    the dispatcher is a context manager.
    """

    def __init__(self, sinks: Iterable[Sink], *, cooldown_steps: int = 50,
                 cooldown_s: float | None = None, min_severity: str = "info",
                 on_result: ResultCallback | None = None, max_queue: int = 1000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sinks: list[Sink] = list(sinks)
        names = [s.name for s in self.sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique (set name = ...), got {names}")
        if isinstance(cooldown_steps, bool) or not isinstance(cooldown_steps, int) or cooldown_steps < 0:
            raise ValueError(f"cooldown_steps must be an integer >= 0, got {cooldown_steps!r}")
        if cooldown_s is not None and (isinstance(cooldown_s, bool)
                                       or not isinstance(cooldown_s, (int, float)) or cooldown_s < 0):
            raise ValueError(f"cooldown_s must be a number >= 0, got {cooldown_s!r}")
        severity_rank(min_severity, "min_severity")
        self.cooldown_steps = cooldown_steps
        self.cooldown_s = None if cooldown_s is None else float(cooldown_s)
        self.min_severity = min_severity
        self.on_result = on_result
        self.sent = 0       # successful (alert, sink) deliveries
        self.failures = 0   # failed (alert, sink) deliveries
        self.dropped = 0    # alerts not queued because the queue was full or the dispatcher closed
        self._clock = clock
        self._state: dict[str, _KindState] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._pending = 0
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._abandoned: dict[str, threading.Thread] = {}  # sink name -> a send past its deadline

    # ---------------------------------------------------------------------------- deciding
    def notify(self, flag: Flag, *, step: int, run_id: str, run_dir: str | os.PathLike[str]) -> bool:
        """Apply the episode rule to ``flag`` raised at ``step``; queue an alert if it is due.

        Returns whether an alert was queued. Never raises for delivery problems.
        """
        step = int(step)
        rank = severity_rank(flag.severity, "flag severity")
        with self._lock:
            if self._closed:
                log.warning("alert for %s not sent: the alert dispatcher is closed", flag.kind)
                self.dropped += 1
                return False
            state = self._state.get(flag.kind)
            if state is None:
                state = self._state[flag.kind] = _KindState(_Episode(end=int(flag.last_step)))
            elif int(flag.first_step) > state.episode.end + self.cooldown_steps:
                state.episode = _Episode(end=int(flag.last_step))
            else:
                state.episode.end = max(state.episode.end, int(flag.last_step))
            episode = state.episode
            if rank < severity_rank(self.min_severity):
                return False
            now = self._clock()
            if episode.alerted_rank < 0:
                if state.last_alert_step is not None and step - state.last_alert_step < self.cooldown_steps:
                    return False
                if (self.cooldown_s is not None and state.last_alert_time is not None
                        and now - state.last_alert_time < self.cooldown_s):
                    return False
                reason = "new"
            elif rank > episode.alerted_rank:
                reason = "escalation"
            else:
                return False
            alert = Alert.from_flag(flag, step=step, run_id=run_id, run_dir=run_dir, reason=reason)
            try:
                self._enqueue(alert)
            except queue.Full:
                log.warning("alert for %s not sent: the alert queue is full", flag.kind)
                self.dropped += 1
                return False
            episode.alerted_rank = max(episode.alerted_rank, rank)
            state.last_alert_step = step
            state.last_alert_time = now
            return True

    # ---------------------------------------------------------------------------- delivering
    def _enqueue(self, alert: Alert) -> None:
        with self._idle:
            self._queue.put_nowait(alert)
            self._pending += 1
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="entrodiag-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._deliver(item)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _deliver(self, alert: Alert) -> None:
        for sink in self.sinks:
            try:
                if not sink.accepts(alert):
                    continue
            except Exception:  # noqa: BLE001 - a broken sink must not stop the others
                continue
            error: str | None = None
            try:
                self._send(sink, alert)
            except Exception as e:  # noqa: BLE001 - delivery failures are logged, never raised
                error = _scrub(f"{type(e).__name__}: {e}", sink)
            if error is None:
                self.sent += 1
                log.debug("alert %s/%s sent via %s (%s)", alert.kind, alert.severity, sink.name,
                          sink.target)
            else:
                self.failures += 1
                log.warning("alert %s/%s via %s (%s) failed: %s", alert.kind, alert.severity,
                            sink.name, sink.target, error)
            if self.on_result is not None:
                try:
                    self.on_result(alert, sink.name, error is None, error)
                except Exception as e:  # noqa: BLE001
                    log.warning("alert on_result callback failed: %s: %s", type(e).__name__,
                                _scrub(str(e), sink))

    def _send(self, sink: Sink, alert: Alert) -> None:
        """``sink.send(alert)`` within the sink's deadline (``sink.timeout``): on a thread of its
        own, abandoned when it has not returned in time (``TimeoutError``). A sink whose abandoned
        send still hangs is not tried again until that one ends (one hung thread per sink)."""
        limit = getattr(sink, "timeout", None)
        if limit is None:
            sink.send(alert)
            return
        hung = self._abandoned.get(sink.name)
        if hung is not None and hung.is_alive():
            raise TimeoutError(f"not tried: its previous send timed out ({limit:g} s deadline) and still "
                               "hangs")
        outcome: list[BaseException] = []

        def send() -> None:
            try:
                sink.send(alert)
            except BaseException as e:  # noqa: BLE001 - handed to the delivery thread
                outcome.append(e)

        worker = threading.Thread(target=send, name=f"entrodiag-alert-{sink.name}", daemon=True)
        worker.start()
        worker.join(limit)
        if worker.is_alive():
            self._abandoned[sink.name] = worker
            raise TimeoutError(f"timed out: no answer within its {limit:g} s deadline (timeout); abandoned, "
                               "the next sinks are tried")
        if outcome:
            raise outcome[0]

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued alert went through every sink; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the delivery thread; later ``notify`` calls queue nothing. Waits until
        every queued alert was offered to every sink (each within its own deadline), or at most
        ``timeout`` seconds when given. Returns whether every queued alert went through."""
        with self._lock:
            self._closed = True
        done = self.flush(timeout)
        if self._thread is not None:
            try:
                self._queue.put(_STOP, timeout=0.1)
            except queue.Full:  # pragma: no cover - the daemon thread dies with the process
                pass
            if done:
                self._thread.join(timeout=1.0)
        return done

    def __enter__(self) -> AlertDispatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"AlertDispatcher(sinks={self.sinks!r}, cooldown_steps={self.cooldown_steps}, "
                f"cooldown_s={self.cooldown_s}, min_severity={self.min_severity!r})")


def _scrub(text: str, sink: Sink) -> str:
    try:
        secrets = sorted((s for s in sink.secrets if s), key=len, reverse=True)
    except Exception:  # noqa: BLE001
        secrets = []
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, redact_url(secret) if "://" in secret else "***")
    return text
