"""Graceful stop on SIGTERM and SIGINT, shared by the built-in trainer and the TRL drop-in.

Clusters preempt a job with SIGTERM and a grace period (SLURM, Kubernetes, spot instances), then
send SIGKILL. While a ``GracefulStop`` is active, the first SIGTERM or SIGINT only sets ``signum``
and starts the stop deadline (``grace`` seconds after the signal); the training loop finishes the
step in progress only when that and the checkpoint fit before the deadline (``fits``), else it
abandons the step (``StepAbandoned``), checkpoints the last finished step, closes the run as
``stopped`` (with a ``stop`` event naming the signal) and raises ``TrainingStopped``. The first
signal also puts both signals back to the operating system's default action, so a second one ends
the process at once, even while Python is inside a long native call.

The ``Recorder`` on its own installs no handler: a user's loop keeps its own signal behaviour.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Any

#: the signals a training loop stops on
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: the default stop deadline in seconds after the signal (Kubernetes' default grace is 30 s)
DEFAULT_STOP_GRACE = 25.0
#: seconds kept for closing the run and ending the process after the checkpoint (a quarter of
#: the grace when that is shorter)
CLOSE_RESERVE_S = 1.0


def close_reserve(grace: float) -> float:
    """Seconds kept after the checkpoint for closing the run and exiting."""
    return min(CLOSE_RESERVE_S, grace / 4)


class StepAbandoned(Exception):
    """Raised inside a step when a stop signal came and the step cannot finish before the stop
    deadline: the loop drops the step (its update not applied) and checkpoints the one before."""


class TrainingStopped(SystemExit):
    """Training stopped on a signal, after checkpointing and closing the run as ``stopped``.

    A ``SystemExit`` whose exit code is ``128 + signum`` (143 for SIGTERM, 130 for SIGINT, what a
    shell reports for a process killed by that signal): left uncaught it ends the program quietly
    with that code; ``except Exception`` does not swallow it. ``run_dir`` is where to
    ``--resume`` from.
    """

    def __init__(self, signum: int, run_dir: Any = None) -> None:
        super().__init__(128 + int(signum))
        self.signum = int(signum)
        self.signame = signal_name(signum)
        self.run_dir = run_dir

    def __str__(self) -> str:
        return f"training stopped on {self.signame}" + (f"; resume with --resume {self.run_dir}" if self.run_dir else "")


def signal_name(signum: int) -> str:
    """``SIGTERM`` for 15, and so on."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """A context manager: while active, SIGTERM and SIGINT request a stop (``signum``) instead of
    killing the process; a second signal takes the default action at once.

    Handlers can only be installed from the main thread: elsewhere (or with ``enabled=False``)
    nothing is installed and ``signum`` stays ``None``. Handlers that were installed before are
    restored on exit; a Python handler found there (for example transformers' JIT checkpoint on
    SIGTERM) is still called after ``signum`` is set.

    Example:
        >>> with GracefulStop() as stop:                           # doctest: +SKIP
        ...     for step in range(n):
        ...         train_one_step(step)
        ...         if stop.signum is not None:
        ...             break
    """

    def __init__(self, enabled: bool = True, grace: float = DEFAULT_STOP_GRACE) -> None:
        self.enabled = enabled
        self.grace = float(grace)
        self.signum: int | None = None
        self.received: float | None = None  # time.monotonic() of the first signal
        self.installed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> GracefulStop:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for s in STOP_SIGNALS:
                self._previous[s] = signal.signal(s, self._handle)
            self.installed = True
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.installed:
            for s, previous in self._previous.items():
                signal.signal(s, previous if previous is not None else signal.SIG_DFL)
            self.installed = False

    def left(self) -> float:
        """Seconds until the stop deadline (``grace`` after the first signal); ``inf`` before any."""
        if self.received is None:
            return float("inf")
        return self.received + self.grace - time.monotonic()

    def fits(self, seconds: float) -> bool:
        """Whether ``seconds`` more work still ends before the stop deadline (always, without a signal)."""
        return self.received is None or seconds <= self.left()

    def must_abandon(self, rest: float, checkpoint_s: float) -> bool:
        """With a signal received: whether ``rest`` more seconds of the step, a checkpoint of
        ``checkpoint_s`` and closing the run (``close_reserve``) would end after the deadline."""
        return self.received is not None and not self.fits(rest + checkpoint_s + close_reserve(self.grace))

    @staticmethod
    def room_for_checkpoint(grace: float, checkpoint_s: float) -> bool:
        """Whether a checkpoint of ``checkpoint_s`` and closing the run fit a grace of ``grace``."""
        return checkpoint_s + close_reserve(grace) <= grace

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum, self.received = signum, time.monotonic()
        for s in STOP_SIGNALS:  # the next one is not ours to soften
            signal.signal(s, signal.SIG_DFL)
        previous = self._previous.get(signum)
        if callable(previous) and previous is not signal.default_int_handler:
            previous(signum, frame)
