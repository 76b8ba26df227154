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

The checkpoint's time is estimated at start-up (``checkpoint.state_bytes`` over a measured
``checkpoint.write_speed``; a start-up warning when it cannot fit the grace) and then measured at
each checkpoint; both go to run.json as ``checkpoint_time``.
"""

from __future__ import annotations

import torch


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
