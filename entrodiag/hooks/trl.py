"""Record a TRL ``GRPOTrainer`` run into an entrodiag run: ``RecordingGRPOTrainer``.

    from entrodiag.hooks.trl import RecordingGRPOTrainer
    trainer = RecordingGRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...),
                                   train_dataset=..., entrodiag_run_dir="runs/my-grpo")
    trainer.train()   # the run is closed ("finished", or "failed" if train() raises)

SIGTERM or SIGINT during ``train()`` stops within ``entrodiag_stop_grace`` seconds (default 25):
when the optimizer step in progress can finish in time (the last step's duration tells), it does,
and TRL's own control flow stops (``should_save``, ``should_training_stop``) and saves its
checkpoint of that step (``<output_dir>/checkpoint-N``, for ``train(resume_from_checkpoint=True)``);
when it cannot, the step is abandoned before its optimizer step (checks before each generation
batch is used and before each micro-batch's loss; one process only, as TRL's processes would
have to agree) and the checkpoint of the last finished step is saved instead. Either way the run
is closed as ``stopped`` with a ``stop`` event naming the signal (its detail: the checkpoint, its
measured seconds, the seconds since the signal, an abandoned step), and ``train()`` raises
``entrodiag.hooks.signals.TrainingStopped`` (a ``SystemExit`` with code 128 + signum). A second
signal ends the process at once. At ``train()``'s start a checkpoint's time is estimated (model and
AdamW state bytes over a measured write speed in ``output_dir``; a warning when it cannot fit the
grace) and each checkpoint's time is measured: run.json ``checkpoint_time``.
``entrodiag_handle_signals=False`` keeps the process's own signal handling.

A drop-in subclass of ``trl.GRPOTrainer``: same arguments, same training, plus one keyword,
``entrodiag_run_dir=`` (a new run directory) or ``entrodiag_recorder=`` (a ready ``Recorder``,
which the caller then owns and closes). ``trl`` is imported only when the class is first used
(``pip install 'entrodiag[trl]'``); ``import entrodiag.hooks`` never imports it. The class lives
in :mod:`entrodiag.hooks.trl_trainer`, which imports trl at the top; this module names it lazily.

What is recorded, per generation batch (one step of the run; ``step`` is the optimizer step that
TRL logs it under, 1-based like ``trainer_state.json``):

- per token: the entropy and log-prob that TRL's own loss computed for each completion token
  (``_compute_loss``; at ``args.temperature``, under the policy before the update: the first pass
  over the batch when ``num_iterations > 1``), the advantage, and the completion mask (times the
  tool mask in multi-turn runs, as TRL's loss uses it);
- per completion: the reward (TRL's weighted sum of the reward functions), the group id (the
  ``num_generations`` completions of one prompt), the prompt and the decoded completion;
- every scalar TRL logs (``log``): under entrodiag's name where one exists and the Recorder does
  not measure it itself (``loss``, ``kl``, ``lr``, ``grad_norm``, ``clip_low_frac``,
  ``clip_high_frac``, ...), otherwise as ``trl/<name>`` (so ``trl/entropy`` sits beside the
  measured ``entropy_mean``); evaluation metrics (``eval_*``) as evals ``val/<name>``;
  the end-of-training summary in run.json (``trl_train_summary``).

``entropy_mean`` of a step equals TRL's logged ``entropy`` for that step when one generation batch
makes one optimizer step and each step is logged (TRL's defaults with ``logging_steps=1``):
TRL averages per-micro-batch token means, entrodiag takes the token mean of the whole batch.

TRL versions: ``SUPPORTED_TRL`` (>= 0.20, < 2); tested with ``TESTED_TRL``. Construction raises on
any other version, and on ``use_liger_kernel``/``use_liger_loss`` (Liger's fused loss computes no
per-token entropy). Private TRL methods used, each wrapped without changing its arguments or
result: ``_generate_and_score_completions`` (tags each completion with its row, to rebuild the
batch and its groups after TRL shuffles and splits it), ``_calculate_rewards`` (the per-function
rewards) and ``_get_per_token_logps_and_entropies`` (the per-token entropy and log-probs that
TRL already computes). Public overrides: ``compute_loss``, ``log``, ``train``. Recording never
breaks training: a failure is logged and counted (``trl_hook_errors`` in run.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .trl_support import CONTROL_FILE, ROW_KEY, SUPPORTED_TRL, TESTED_TRL, check_trl_version

if TYPE_CHECKING:
    from .trl_trainer import RecordingGRPOTrainer

__all__ = ["CONTROL_FILE", "ROW_KEY", "SUPPORTED_TRL", "TESTED_TRL", "RecordingGRPOTrainer",
           "check_trl_version"]


def __getattr__(name: str) -> Any:
    if name == "RecordingGRPOTrainer":  # imports trl (and torch, transformers) on first use
        from .trl_trainer import RecordingGRPOTrainer

        return RecordingGRPOTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
