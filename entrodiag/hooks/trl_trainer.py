"""The TRL drop-in itself: ``RecordingGRPOTrainer``, a ``trl.GRPOTrainer`` subclass that records
its entropy dynamics into an entrodiag run (what and how: the docstring of :mod:`entrodiag.hooks.trl`).
It imports trl at the top; ``entrodiag.hooks.trl`` loads it when the class is first used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from .trl_support import CONTROL_FILE, ROW_KEY, SUPPORTED_TRL, check_trl_version, tracker_sinks

try:
    import torch
    import trl
    from transformers import TrainerCallback
    from trl import GRPOTrainer
except ImportError as e:
    raise ImportError(f"entrodiag.hooks.trl needs TRL ({SUPPORTED_TRL}): pip install 'entrodiag[trl]' ({e})") from e

from ..entropy_control import EntropyControl
from ..store.location import locate, run_path
from .recorder import Recorder
from .signals import DEFAULT_STOP_GRACE, GracefulStop, StepAbandoned, TrainingStopped, signal_name
from .trl_batch import PendingBatch
from .trl_control import control_kwargs, note_control
from .trl_logs import is_num, jsonable, log_columns

log = logging.getLogger("entrodiag")
_MAX_LOGGED_ERRORS = 5


class RecordingGRPOTrainer(GRPOTrainer):
    """``trl.GRPOTrainer`` that records its entropy dynamics into an entrodiag run.

    Args:
        *args, **kwargs: exactly ``trl.GRPOTrainer``'s.
        entrodiag_run_dir: the run directory to create (must not hold a run); the trainer
            owns the Recorder and closes it when ``train()`` returns or raises.
        entrodiag_recorder: a ready ``Recorder`` instead (the caller closes it; one without a
            tokenizer gets the trainer's, for token and response text).
        entrodiag_token_sample: completions per step whose token, sample and span rows are
            kept (``Recorder(token_sample=...)``; step aggregates use every token).
        entrodiag_meta: more run.json fields (``task=...``, ``intervention=...``).
        entrodiag_entropy_control: an entropy controller (``entrodiag.entropy_control``):
            ``pi_coef`` or ``adaptive_coef`` set TRL's entropy-bonus coefficient
            (``self.entropy_coef``, bonus switched on), ``pi_clip`` sets ``self.epsilon_high``
            and ``self.epsilon_low`` (its clip bounds only: TRL's loss has no covariance clip,
            so the whole effort range moves the bounds), before each generation batch, from the token-mean entropy of the previous one
            (all processes); ``none`` only measures. Or a ready ``EntropyControl``. Its state
            is logged as ``control/*`` step columns and saved in TRL's checkpoints
            (``entrodiag_control.json``), so ``train(resume_from_checkpoint=...)`` continues it.
        entrodiag_control_args: keyword arguments of ``EntropyControl`` for a controller given by name:
            ``target``, ``target_frac`` or ``schedule`` (``linear:1.0,0.8``, ending at ``max_steps``), ``guard``,
            ``band``, ``control_from`` (an optimizer step, 1-based as TRL logs), ``gains``, ``bounds``.
        entrodiag_stop_on: ``info``, ``warning`` or ``critical``: every
            ``entrodiag_watch_every`` optimizer steps the collapse detectors run on what was
            recorded (``entrodiag.watch.Watcher``; flags go to the run's events); a new flag at
            this severity or worse sets TRL's ``should_training_stop`` and the run ends as
            ``stopped``. ``trainer.entrodiag_watcher.on_flag(fn)`` adds callbacks.
        entrodiag_handle_signals: stop gracefully on SIGTERM/SIGINT during ``train()`` (see
            the module doc; default True; only from the main thread).
        entrodiag_stop_grace: seconds after the signal by which the checkpoint is saved and
            the run closed (default 25; below the scheduler's grace before SIGKILL).
        entrodiag_log_to: trackers that get entrodiag's series (``entrodiag.sinks``); default: those
            of ``args.report_to`` (TRL's own W&B/MLflow/Trackio run, its TensorBoard folder); ``[]``: none.

    Raises:
        RuntimeError: an unsupported TRL version.
        ValueError: neither or both of ``entrodiag_run_dir``/``entrodiag_recorder``, or Liger.
        FileExistsError: ``entrodiag_run_dir`` already holds a run.
    """

    def __init__(self, *args, entrodiag_run_dir: str | Path | None = None,
                 entrodiag_recorder: Recorder | None = None,
                 entrodiag_token_sample: int | float | str = 8,
                 entrodiag_meta: dict | None = None, entrodiag_stop_on: str | None = None,
                 entrodiag_watch_every: int = 10, entrodiag_handle_signals: bool = True,
                 entrodiag_entropy_control: Any = None, entrodiag_control_args: dict | None = None,
                 entrodiag_stop_grace: float = DEFAULT_STOP_GRACE, entrodiag_log_to=None, **kwargs) -> None:
        check_trl_version(trl.__version__)
        if isinstance(entrodiag_stop_grace, bool) or not isinstance(entrodiag_stop_grace, (int, float)) \
                or not entrodiag_stop_grace > 0:
            raise ValueError(f"entrodiag_stop_grace must be > 0 seconds, got {entrodiag_stop_grace!r}")
        if entrodiag_stop_on not in (None, "info", "warning", "critical"):
            raise ValueError(f"entrodiag_stop_on must be info, warning or critical, got {entrodiag_stop_on!r}")
        if (entrodiag_run_dir is None) == (entrodiag_recorder is None):
            raise ValueError(
                "RecordingGRPOTrainer needs entrodiag_run_dir=PATH (a new run directory) or "
                "entrodiag_recorder=Recorder(...), exactly one of them"
            )
        main_process = os.environ.get("RANK", "0") == "0"  # before TRL sets up accelerate
        taken = entrodiag_run_dir is not None and locate(entrodiag_run_dir).child("run.json").exists()
        if main_process and taken:
            raise FileExistsError(
                f"{entrodiag_run_dir} already holds a run; choose a new entrodiag_run_dir"
            )
        # state read by the overridden methods, some of which TRL's __init__ may call
        self._ed_rec = None
        self._ed_batch: PendingBatch | None = None
        self._ed_capture: list | None = None
        self._ed_rewards = None
        self._ed_errors = 0
        self._ed_signal_step: int | None = None  # the signal that stopped train(), once acted on
        self._ed_grace = float(entrodiag_stop_grace)
        self._ed_step_started: float | None = None  # perf_counter() at the optimizer step's start
        self._ed_last_step_s: float | None = None  # the last optimizer step's duration
        self._ed_checkpoint_time: dict = {}  # run.json checkpoint_time
        self._ed_checkpoint_s = 0.0  # the last measured checkpoint, else the estimate
        self._ed_control = None
        super().__init__(*args, **kwargs)
        for flag in ("use_liger_kernel", "use_liger_loss"):
            if getattr(self.args, flag, False):
                raise ValueError(
                    f"RecordingGRPOTrainer cannot record with {flag}=True: the Liger loss computes no "
                    "per-token entropy. Turn it off to record this run."
                )
        if entrodiag_entropy_control is not None:
            self._ed_control = self._ed_make_control(entrodiag_entropy_control, entrodiag_control_args or {})
        pc = self.processing_class
        self._ed_tokenizer = getattr(pc, "tokenizer", None) or pc
        self._ed_owns, self._ed_log_to = entrodiag_recorder is None, entrodiag_log_to
        self._ed_recorder_kwargs = dict(
            run_dir=entrodiag_run_dir, source="trl", config=jsonable(self.args.to_dict()),
            tokenizer=self._ed_tokenizer, token_sample=entrodiag_token_sample,
            entropy_temperature=float(getattr(self, "temperature", 1.0) or 1.0),
            rank=self.accelerator.process_index, world_size=self.accelerator.num_processes,
            model=getattr(getattr(self.model, "config", None), "_name_or_path", None)
            or type(self.model).__name__,
            trl_version=trl.__version__, **(entrodiag_meta or {}),
        )
        if entrodiag_recorder is not None and entrodiag_recorder.tokenizer is None:
            entrodiag_recorder.tokenizer = self._ed_tokenizer  # token and response text
        self._ed_rec = entrodiag_recorder if entrodiag_recorder is not None else self._ed_open(False)
        note_control(self._ed_rec, self._ed_control)  # analyze labels the control section from run.json
        self._ed_stop_on, self._ed_stopped = entrodiag_stop_on, False
        self._ed_handle_signals, self._ed_signals = entrodiag_handle_signals, None
        self.add_callback(_StopOnSignal(self))
        self._ed_watcher = None
        if entrodiag_stop_on is not None:
            if self.accelerator.is_main_process:
                from ..watch import Watcher

                self._ed_watcher = Watcher(self._ed_rec.path, events=self._ed_rec.log_event, source="trl")
            self.add_callback(_StopOnFlag(self, int(entrodiag_watch_every)))

    # ------------------------------------------------------------------ public surface
    @property
    def entrodiag_recorder(self) -> Recorder | None:
        """The Recorder (``None`` once an owned one is closed)."""
        return self._ed_rec

    @property
    def entrodiag_watcher(self):
        """The ``Watcher`` behind ``entrodiag_stop_on`` (main process; ``None`` otherwise)."""
        return self._ed_watcher

    @property
    def entrodiag_run_dir(self) -> Path | str | None:
        """The run directory: a ``Path``, or the URL of a run on an object store."""
        return None if self._ed_rec is None else run_path(self._ed_rec.path)

    def train(self, *args, **kwargs):
        if self._ed_rec is None and self._ed_owns:  # train() again: append to the same run
            self._ed_rec = self._ed_open(resume=True)
        status = "failed"
        with GracefulStop(self._ed_handle_signals, self._ed_grace) as self._ed_signals:
            if self._ed_signals.installed and self.accelerator.is_main_process:
                self._ed_guard(self._ed_estimate_checkpoint)
            try:
                out = super().train(*args, **kwargs)
                status = "stopped" if self._ed_stopped else "finished"
            except StepAbandoned:
                self._ed_abandoned()
                out, status = None, "stopped"
            finally:
                self._ed_finish(status)
                signum, self._ed_signal_step = self._ed_signal_step, None
        if signum is not None:
            raise TrainingStopped(signum, self.args.output_dir)
        return out

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        batch = self._ed_batch
        rows = inputs.get(ROW_KEY) if isinstance(inputs, dict) and batch is not None else None
        if self.model.training:
            self._ed_check()
        if rows is None or not self.model.training:
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        self._ed_capture = []
        try:
            loss = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)
        finally:
            captured, self._ed_capture = self._ed_capture, None
        self._ed_guard(self._ed_add, batch, inputs, rows, captured)
        return loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        before = len(self.state.log_history)
        super().log(logs, start_time)
        if (self._ed_rec is not None and self.accelerator.is_main_process
                and len(self.state.log_history) > before):
            self._ed_guard(self._ed_log, dict(self.state.log_history[-1]))

    # ----------------------------------------------------------- wrapped private methods
    def _calculate_rewards(self, *args, **kwargs):
        out = super()._calculate_rewards(*args, **kwargs)
        self._ed_rewards = out.detach() if isinstance(out, torch.Tensor) else None
        return out

    def _generate_and_score_completions(self, *args, **kwargs):
        out = super()._generate_and_score_completions(*args, **kwargs)
        if self._ed_rec is not None and self.model.training and isinstance(out, dict):
            self._ed_guard(self._ed_start, out)
        self._ed_rewards = None
        if self.model.training:
            self._ed_check()
        return out

    def _get_per_token_logps_and_entropies(self, *args, **kwargs):
        out = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        if (self._ed_capture is not None and isinstance(out, tuple) and len(out) >= 2
                and out[1] is not None):
            self._ed_capture.append((out[0].detach(), out[1].detach()))
        return out

    def _save_checkpoint(self, model, trial):
        t0 = time.perf_counter()
        super()._save_checkpoint(model, trial)
        if self.accelerator.is_main_process:
            self._ed_guard(self._ed_measured_checkpoint, self.state.global_step, time.perf_counter() - t0)
        if self._ed_control is not None and self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            (folder / CONTROL_FILE).write_text(json.dumps(self._ed_control.state_dict()))

    def _load_optimizer_and_scheduler(self, checkpoint):
        super()._load_optimizer_and_scheduler(checkpoint)
        path = None if checkpoint is None or self._ed_control is None else Path(checkpoint) / CONTROL_FILE
        if path is not None and path.is_file():
            self._ed_control.load_state_dict(json.loads(path.read_text()))

    # ------------------------------------------------------------------------ internals
    def _ed_check(self) -> None:
        """Abandon the optimizer step in progress (``StepAbandoned``) when a stop signal came
        and it cannot finish, with its checkpoint, before the stop deadline (one process
        only: several would have to agree, and they stop at the step's end instead)."""
        stop = self._ed_signals
        if stop is None or stop.signum is None or self.accelerator.num_processes > 1:
            return
        rest = math.inf
        if self._ed_last_step_s is not None and self._ed_step_started is not None:
            rest = self._ed_last_step_s - (time.perf_counter() - self._ed_step_started)
            rest = rest if rest > 0 else math.inf  # overrun: unknown
        if stop.must_abandon(rest, self._ed_checkpoint_s):
            raise StepAbandoned()

    def _ed_estimate_checkpoint(self) -> None:
        """At ``train()``'s start: a checkpoint's expected time (model and AdamW state bytes over
        the write speed measured in ``output_dir``), in run.json; a warning when it cannot fit."""
        from .checkpoint_time import state_bytes, write_speed

        folder = Path(self.args.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        size, speed = state_bytes(self.model, getattr(self, "optimizer", None)), write_speed(folder)
        self._ed_checkpoint_s = size / speed
        self._ed_checkpoint_time.update(estimate_s=round(size / speed, 4), bytes=size, write_bytes_per_s=round(speed))
        if self._ed_rec is not None:
            self._ed_rec.update_meta(checkpoint_time=self._ed_checkpoint_time)
        if not GracefulStop.room_for_checkpoint(self._ed_grace, self._ed_checkpoint_s):
            log.warning("entrodiag: a checkpoint of this model (%.0f MB at %.0f MB/s measured) takes about %.1f s, "
                        "more than entrodiag_stop_grace=%g s leaves for it: on SIGTERM the scheduler's SIGKILL "
                        "would come before it is saved. Raise entrodiag_stop_grace and the scheduler's grace "
                        "period", size / 1e6, speed / 1e6, self._ed_checkpoint_s, self._ed_grace)

    def _ed_measured_checkpoint(self, step: int, seconds: float) -> None:
        self._ed_checkpoint_s = seconds
        self._ed_checkpoint_time.update(last_s=round(seconds, 4), last_step=step)
        if self._ed_rec is not None:
            self._ed_rec.update_meta(checkpoint_time=self._ed_checkpoint_time)
        if self._ed_signals is not None and self._ed_signals.signum is not None:
            log.warning("entrodiag: checkpoint of step %d saved in %.2f s", step, seconds)
        elif not GracefulStop.room_for_checkpoint(self._ed_grace, seconds):
            log.warning("entrodiag: the checkpoint of step %d took %.1f s, more than entrodiag_stop_grace=%g s "
                        "leaves for it", step, seconds, self._ed_grace)

    def _ed_abandoned(self) -> None:
        """A stop abandoned the optimizer step in progress: save the last finished step (TRL's
        checkpoint; none before the first), record the ``stop`` event, note the signal."""
        stop = self._ed_signals
        signum, step = stop.signum, int(self.state.global_step)
        name = signal_name(signum)
        self._ed_signal_step, self._ed_stopped = signum, True
        checkpoint, took = None, None
        if step > 0:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            checkpoint = os.path.join(str(self.args.output_dir), f"{PREFIX_CHECKPOINT_DIR}-{step}")
            if not os.path.isdir(checkpoint):  # not saved at this step's end already
                t0 = time.perf_counter()
                self._save_checkpoint(self.model, trial=None)
                took = time.perf_counter() - t0
        after = None if stop.received is None else round(time.monotonic() - stop.received, 3)
        log.warning("entrodiag: %s received: step %d abandoned (it could not finish within entrodiag_stop_grace="
                    "%g s); %s, %s s after the signal", name, step + 1, self._ed_grace,
                    f"saved {checkpoint}" if checkpoint else "no step to save", after)
        if self._ed_rec is not None and self.accelerator.is_main_process:
            self._ed_guard(lambda: self._ed_rec.log_event(
                max(step, 0), "stop", name,
                message=f"stopped on {name} after step {step}; step {step + 1} abandoned; "
                        + (f"TRL saved {checkpoint}" if checkpoint else "no checkpoint"),
                detail={"signal": name, "signum": signum, "source": "trl", "last_step": step,
                        "abandoned_step": step + 1, "checkpoint": checkpoint, "checkpoint_s": took,
                        "after_signal_s": after, "stop_grace_s": self._ed_grace}))

    def _ed_make_control(self, control, args: dict):
        if isinstance(control, str):
            fixed = sorted({"clip_high", "clip_low", "coef", "detach"} & set(args))
            if fixed:
                raise ValueError(f"entrodiag_control_args cannot set {', '.join(fixed)}: the drop-in takes the clip "
                                 "bounds and the entropy coefficient from TRL's config (epsilon_high, "
                                 "epsilon_low, entropy_coef), and TRL's loss has no covariance clip to detach")
            control = EntropyControl(control, **control_kwargs(self, args))
        elif not isinstance(control, EntropyControl):
            raise TypeError("entrodiag_entropy_control must be a controller name or an EntropyControl")
        if getattr(control.ctl, "detach", False):
            raise ValueError("pi_clip through TRL can set only the clip bounds (TRL's loss has no covariance "
                             "clip): build it as EntropyControl('pi_clip', ..., detach=False), or pass the name")
        if control.ctl.acts_on == "coef":
            if not hasattr(self, "_entropy_bonus_enabled"):
                raise ValueError(f"{control.mode} sets TRL's entropy_coef, which this TRL version lacks "
                                 "(GRPOConfig.entropy_coef came with trl 1.x); use pi_clip, or upgrade TRL")
            if getattr(self, "use_adaptive_entropy", False):
                raise ValueError(f"use_adaptive_entropy=True and entrodiag_entropy_control={control.mode!r} "
                                 "would both set the entropy coefficient: turn one of them off")
            self._entropy_bonus_enabled = True  # TRL fixes this at construction; the controller needs it
        return control

    def _ed_apply_knobs(self, step: int) -> None:
        """Set TRL's coefficient and ε_high for the generation batch of ``step``."""
        knobs = self._ed_control.knobs(step)
        if self._ed_control.ctl.acts_on == "coef":
            self.entropy_coef = knobs.coef
        elif self._ed_control.ctl.acts_on == "clip":
            self.epsilon_high, self.epsilon_low = knobs.clip_high, knobs.clip_low

    def _ed_open(self, resume: bool) -> Recorder:
        kw = dict(self._ed_recorder_kwargs)
        return Recorder(kw.pop("run_dir"), resume=resume, sinks=tracker_sinks(self.args, self._ed_log_to), **kw)

    def _ed_guard(self, fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            self._ed_errors += 1
            if self._ed_errors <= _MAX_LOGGED_ERRORS:
                log.exception("entrodiag: recording the TRL run failed here; training goes on")

    def _ed_start(self, out: dict) -> None:
        """A new training generation batch: tag its rows, note groups and rewards."""
        if self._ed_batch is not None:
            self._ed_flush()  # the last batch never completed (e.g. max_steps mid-batch)
        ids = out["completion_ids"]
        rows = torch.arange(ids.shape[0], device=ids.device)
        step = int(self.state.global_step) + 1  # the optimizer step TRL will log this batch under
        self._ed_batch = PendingBatch.start(
            step, rows, self.accelerator.process_index, self.accelerator.num_processes, self.num_generations,
            self._ed_rewards, self.reward_weights)
        out[ROW_KEY] = rows
        if self._ed_control is not None:
            self._ed_apply_knobs(step)

    def _ed_add(self, batch: PendingBatch, inputs: dict, rows, captured: list) -> None:
        if batch is not self._ed_batch or not captured:
            return  # a later pass over an already recorded batch (num_iterations > 1)
        logps, entropy = captured[0]
        batch.add(inputs, rows, logps, entropy, self._ed_tokenizer)
        if batch.complete:
            self._ed_flush()

    def _ed_flush(self) -> None:
        batch, self._ed_batch = self._ed_batch, None
        if batch is None or not batch.parts or self._ed_rec is None:
            return
        kwargs = batch.record_kwargs()
        control = {}
        if self._ed_control is not None and batch.complete:
            mask, h = kwargs["response_mask"].float(), kwargs["entropy"]
            tot = torch.stack([(h * mask).sum(), mask.sum()])
            if self.accelerator.num_processes > 1:
                tot = self.accelerator.reduce(tot, reduction="sum")
            control = self._ed_control.observe(batch.step, (tot[0] / tot[1].clamp(min=1)).item())
        self._ed_rec.record_batch(batch.step, **kwargs, **control)

    def _ed_log(self, entry: dict) -> None:
        rec = self._ed_rec
        step = int(entry.pop("step", self.state.global_step))
        if "train_runtime" in entry:  # the end-of-training summary
            rec.update_meta(trl_train_summary={k: v for k, v in entry.items() if is_num(v)})
            return
        evals, scalars = log_columns(entry)
        for name, value in evals:
            rec.log_eval(step, name, value)
        rec.log_scalars(step, **scalars)

    def _ed_watch(self, step: int) -> bool:
        """Run the detectors on what was recorded (main process decides, all processes
        follow); True when a new flag at ``entrodiag_stop_on`` or worse was raised."""
        from ..analysis.collapse import at_or_above

        stop = False
        if self._ed_watcher is not None and self._ed_rec is not None:
            self._ed_rec.flush()  # the current generation batch is recorded when the next starts
            worst = at_or_above(self._ed_watcher.poll(), self._ed_stop_on)
            if worst:
                f = worst[0]
                self._ed_watcher.record_stop(step, f, self._ed_stop_on)
                log.warning("entrodiag: stopping TRL training at step %d on %s (%s)", step, f.kind, f.severity)
                stop = True
        if self.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            stop = broadcast_object_list([stop], from_process=0)[0]
        self._ed_stopped = self._ed_stopped or stop
        return stop

    def _ed_signalled(self, step: int) -> bool:
        """At the end of optimizer step ``step``: has any process received SIGTERM/SIGINT?
        (They agree through a max over processes.) The first time, records the ``stop``
        event and notes the signal, for ``train()`` to raise once TRL has stopped."""
        signum = (self._ed_signals.signum if self._ed_signals is not None else None) or 0
        if self.accelerator.num_processes > 1 and torch.distributed.is_initialized():
            t = torch.tensor([signum], device=self.accelerator.device)
            torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
            signum = int(t.item())
        if not signum or self._ed_signal_step is not None:
            return bool(signum)
        self._ed_signal_step = signum
        self._ed_stopped = True
        name = signal_name(signum)
        log.warning("entrodiag: %s received: TRL saves the checkpoint of step %d and stops", name, step)
        if self._ed_rec is not None and self.accelerator.is_main_process:
            checkpoint = os.path.join(str(self.args.output_dir), f"checkpoint-{step}")
            self._ed_guard(lambda: self._ed_rec.log_event(
                step, "stop", name, message=f"stopped on {name} after step {step}; TRL saves {checkpoint}",
                detail={"signal": name, "signum": signum, "source": "trl", "last_step": step,
                        "checkpoint": checkpoint}))
        return True

    def _ed_finish(self, status: str) -> None:
        self._ed_guard(self._ed_flush)
        rec = self._ed_rec
        if rec is None:
            return
        if not self._ed_owns:
            rec.flush()
            return
        self._ed_rec = None
        try:
            rec.update_meta(trl_hook_errors=self._ed_errors)
        finally:
            rec.close(status)

class _StopOnFlag(TrainerCallback):
    """Every ``every`` optimizer steps, ask the trainer's watcher whether to stop."""

    def __init__(self, trainer: RecordingGRPOTrainer, every: int) -> None:
        self.trainer, self.every = trainer, max(1, every)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % self.every == 0 and self.trainer._ed_watch(state.global_step):
            control.should_training_stop = True
        return control

class _StopOnSignal(TrainerCallback):
    """After each optimizer step: on SIGTERM/SIGINT, save this step and stop (TRL's flow)."""

    def __init__(self, trainer: RecordingGRPOTrainer) -> None:
        self.trainer = trainer

    def on_step_begin(self, args, state, control, **kwargs):
        self.trainer._ed_step_started = time.perf_counter()
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer._ed_step_started is not None:
            self.trainer._ed_last_step_s = time.perf_counter() - self.trainer._ed_step_started
        if self.trainer._ed_signalled(state.global_step):
            control.should_save = True
            control.should_training_stop = True
        return control
