"""The stop deadline of the built-in trainer: on SIGTERM/SIGINT, the last finished step is
checkpointed and the run closed within ``stop_grace`` seconds of the signal.

Design (the simplest one that keeps the checkpoint exact): cooperative checks, no second thread
(a watchdog thread could not write the model while the main thread changes it in place, and
Python runs a signal handler only between bytecodes of the main thread anyway).

- The signal handler (``hooks.signals.GracefulStop``) only notes the signal and its time; the
  deadline is that time plus ``stop_grace``.
- The step calls ``Trainer._check`` between its chunks of work: after each generated token (one
  process), after each micro-batch's backward (one process), between evaluation, rollout and
  update, and before each optimizer step (every rank, agreeing through an all-reduce). With a
  signal pending, a check lets the step go on only if the rest of the step (the last step's
  duration in this process minus the time this one has run; unknown, or already overrun, counts
  as too long), the checkpoint (``checkpoint_seconds``) and closing the run
  (``hooks.signals.close_reserve``: 1 s, or a quarter of a shorter grace) all end before the
  deadline (``GracefulStop.must_abandon``); else it raises ``StepAbandoned``. Each check keeps
  that much time in hand, so however wrong the estimate of the rest is, the run still closes in
  time as long as one chunk of work (a token, a micro-batch) is shorter than ``close_reserve``.
- The model must be the last finished step's when it is checkpointed. Until the step's first
  optimizer step nothing in the model or optimizer has changed (gradients are not saved), so
  abandoning there needs nothing. With ``epochs > 1`` an optimizer step is followed by more
  passes; a ``Snapshot`` of the parameters, buffers and optimizer state is copied on their
  device just before the step's first optimizer step, and an abandon after it copies it back.
  That costs a copy of the model and its optimizer state (three times the fp32 parameters with
  AdamW) in device memory and one device-to-device copy a step; with ``epochs == 1`` the
  optimizer step is the step's last change, and no snapshot is kept (nor without signal
  handlers: ``handle_signals=False`` or not the main thread).
- After the last optimizer step the step is finished: what is left (the measured entropy after
  the update, skipped when it does not fit; recording) is short, and the checkpoint follows.

The checkpoint's time is estimated at start-up (``checkpoint_time.state_bytes`` over a measured
``checkpoint_time.write_speed``; a start-up warning when it cannot fit the grace) and then measured
at each checkpoint; both go to run.json as ``checkpoint_time``.

:class:`DeadlineChecks` holds these checks and the stop itself as methods of the ``Trainer``;
:class:`Snapshot` the copy of the model and optimizer.
"""

from __future__ import annotations

import math
import sys
import time

import torch

from ..hooks.signals import GracefulStop, StepAbandoned, close_reserve, signal_name


class DeadlineChecks:
    """The stop deadline's part of ``loop.Trainer`` (mixed into it).

    It uses the trainer's ``cfg``, ``rank``, ``world``, ``device``, ``rec``, ``log``,
    ``handle_signals``, ``_bar`` (the progress bar), ``checkpoint()`` and the state below, which the trainer sets up."""

    _stop: GracefulStop | None
    """The signal handler while ``run`` runs."""
    _step_started: float | None
    """``perf_counter()`` at the start of the step in progress."""
    _last_step_s: float | None
    """The last finished step's duration in this process."""
    checkpoint_seconds: float
    """The last measured checkpoint, else the start-up estimate (rank 0)."""
    checkpoint_time: dict
    """run.json's ``checkpoint_time``."""

    def _rest_of_step(self) -> float:
        """Seconds the step in progress still needs, from the last step's duration in this process
        (``inf`` when there is none yet, or when this step has already taken longer)."""
        if self._last_step_s is None or self._step_started is None:
            return math.inf
        rest = self._last_step_s - (time.perf_counter() - self._step_started)
        return rest if rest > 0 else math.inf

    def _past_deadline(self, rest: float | None = None) -> bool:
        """With a stop signal pending (on any rank): whether ``rest`` more seconds of work (by
        default the rest of the step in progress), the checkpoint and closing the run would end
        after the stop deadline. Every rank calls it at the same points (an all-reduce)."""
        stop = self._stop
        late = False
        if stop is not None and stop.signum is not None:
            late = stop.must_abandon(self._rest_of_step() if rest is None else rest, self.checkpoint_seconds)
        if self.world > 1:
            t = torch.tensor([int(late)], device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            late = bool(t.item())
        return late

    def _check(self) -> None:
        """Abandon the step (``StepAbandoned``) when it cannot finish before the stop deadline;
        every rank calls it at the same points."""
        if self._past_deadline():
            raise StepAbandoned()

    def _local_check(self) -> None:
        """``_check`` between generated tokens and micro-batches: one process only (DDP ranks
        agree at the coarser points, where each calls ``_check``)."""
        if self.world == 1 and self._stop is not None and self._stop.signum is not None:
            self._check()

    def _warn_if_too_slow(self, what: str) -> None:
        grace = self.cfg.stop_grace
        if self.handle_signals and not GracefulStop.room_for_checkpoint(grace, self.checkpoint_seconds):
            print(f"entrodiag train: warning: {what}, more than --stop-grace {grace:g} s leaves for it "
                  f"(with {close_reserve(grace):.1f} s to close the run): on SIGTERM the scheduler's SIGKILL would come "
                  "before the checkpoint is written. Raise --stop-grace and the scheduler's grace period "
                  "(Kubernetes terminationGracePeriodSeconds, SLURM --signal)", file=sys.stderr)

    def _signalled(self, stop: GracefulStop) -> int | None:
        """The stop signal received (by any rank: they agree through an all-reduce), else None."""
        signum = stop.signum or 0
        if self.world > 1:
            t = torch.tensor([signum], device=self.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            signum = int(t.item())
        return signum or None

    def _stop_on_signal(self, signum: int, done: int, saved: int, abandoned: int | None) -> None:
        """Checkpoint the last step updated (unless it has one) and record the ``stop`` event."""
        name = signal_name(signum)
        self.log(f"{name}: stopping after step {done}"
                 + (f" (step {abandoned} abandoned, its update not applied)" if abandoned is not None else ""))
        took = None
        if done > saved:
            t0 = time.perf_counter()
            if self.checkpoint(done):
                saved, took = done, time.perf_counter() - t0
        if self.rank == 0:
            where = f"checkpoint step-{saved:07d}" if saved >= 0 else "no checkpoint"
            received = self._stop.received if self._stop is not None else None
            after = None if received is None else round(time.monotonic() - received, 3)
            if took is not None:
                self.log(f"{name}: checkpoint of step {done} written in {took:.2f} s, {after} s after the signal "
                         f"(--stop-grace {self.cfg.stop_grace:g} s)")
            self.rec.log_event(max(done, 0), "stop", name, message=f"stopped on {name} after step {done}; {where}",
                               detail={"signal": name, "signum": signum, "source": "trainer",
                                       "last_step": done, "checkpoint_step": saved if saved >= 0 else None,
                                       "abandoned_step": abandoned, "checkpoint_s": took,
                                       "after_signal_s": after, "stop_grace_s": self.cfg.stop_grace})

    def _measured_checkpoint(self, step: int, seconds: float) -> None:
        """Keep a checkpoint's measured time (the stop deadline's next estimate, run.json's
        ``checkpoint_time``); shown for the first checkpoint of this process, and as a warning
        when it cannot fit the stop grace."""
        first = "last_s" not in self.checkpoint_time
        self.checkpoint_seconds = seconds
        self.checkpoint_time.update(last_s=round(seconds, 4), last_step=step)
        self.rec.update_meta(checkpoint_time=self.checkpoint_time)
        if first:
            msg = f"checkpoint of step {step}: {seconds:.2f} s (--stop-grace {self.cfg.stop_grace:g} s)"
            (self._bar.write if self._bar is not None else self.log)(msg)
            self._warn_if_too_slow(f"the checkpoint of step {step} took {seconds:.1f} s")


class Snapshot:
    """A copy of a model's parameters and buffers and of its optimizer's state, on their device,
    to put back after an abandoned multi-epoch update."""

    def __init__(self) -> None:
        self._model: list[torch.Tensor] = []
        self._opt: list[dict | None] = []

    @staticmethod
    def _tensors(model) -> list[torch.Tensor]:
        return [t.data for t in (*model.parameters(), *model.buffers())]

    @staticmethod
    def _params(optimizer) -> list[torch.Tensor]:
        return [p for group in optimizer.param_groups for p in group["params"]]

    def take(self, model, optimizer) -> None:
        """Copy the current state (into the buffers of the last copy when the shapes allow)."""
        tensors = self._tensors(model)
        if len(self._model) == len(tensors) and all(a.shape == b.shape and a.dtype == b.dtype
                                                    for a, b in zip(self._model, tensors)):
            torch._foreach_copy_(self._model, tensors)
        else:
            self._model = [t.detach().clone() for t in tensors]
        self._opt = []
        for p in self._params(optimizer):
            state = optimizer.state.get(p)
            self._opt.append(None if not state else
                             {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in state.items()})

    def restore(self, model, optimizer) -> None:
        """Put the copied state back: the model and optimizer are as they were at ``take``."""
        with torch.no_grad():
            torch._foreach_copy_(self._tensors(model), self._model)
        for p, saved in zip(self._params(optimizer), self._opt):
            if saved is None:
                optimizer.state.pop(p, None)
                continue
            state = optimizer.state[p]
            for k, v in saved.items():
                if isinstance(v, torch.Tensor) and isinstance(state.get(k), torch.Tensor):
                    state[k].copy_(v)
                else:
                    state[k] = v
