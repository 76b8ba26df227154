"""entrodiag attachment for verl: records every PPO/GRPO step of each actor worker.

``attach()`` wraps two of verl's own methods in the worker process, chosen by the installed verl:

- verl 0.8 and later (tested on 0.9.1; the engine workers, ``DataParallelPPOActor`` is gone):
  ``TrainingWorker.infer_batch`` and ``TrainingWorker.train_mini_batch``
  (``verl.workers.engine_workers``);
- verl 0.7.x (tested on 0.7.1; ``DataParallelPPOActor``, which the default
  ``use_legacy_worker_impl: auto`` runs): ``DataParallelPPOActor.compute_log_prob`` and
  ``update_policy``.

Nothing is computed twice. The old-log-prob pass (``compute_log_prob``, always with
``calculate_entropy=True``) yields the token entropy and log-probs before the update, the very
values verl aggregates into ``actor/entropy``; the attachment keeps them for the batch until the
actor update of the same batch, which brings the advantages, the response mask, the rewards and
the group ids (``uid``), and records the step there. The reward recorded is the task score
(``token_level_scores`` summed per response, verl's ``critic/score/mean``); with a KL penalty in
the reward (``algorithm.use_kl_in_reward``) verl's ``token_level_rewards`` are that score minus
β·KL per token, and their per-response sum is recorded beside it as the step column
``reward_penalised_mean`` (verl's ``critic/rewards/mean``; without the penalty the two are equal).
The entropy is at the rollout temperature (verl divides the
logits by it), which run.json records as ``entropy_temperature``. Steps count like verl's
``global_steps`` (1, 2, ...). The reference model's pass (no entropy) and the critic (no
old-log-prob pass of its own) are not recorded. When old log-probs come from the rollout instead
(``rollout_correction.bypass_mode``), verl computes no entropy and the step is skipped with a
warning.
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from typing import Any

import torch

from .common import Attachment, StepRecorder, active_attachment, group_ids

#: the verl versions each attachment was run against (tests/test_frameworks_verl.py)
TESTED = {"engine": "0.9.1", "dp_actor": "0.7.1"}


def verl_version() -> str:
    """The installed verl's version (``importlib.metadata``, so verl itself is not imported)."""
    return metadata.version("verl")


def attach(run_dir: str | os.PathLike | None = None, *, first_step: int | None = None,
           **recorder_kwargs: Any) -> Attachment:
    """Record verl's actor updates in this process into ``run_dir`` (default: ``$ENTRODIAG_RUN_DIR``).

    Call it once in every actor worker process, before training: put it in a module that verl
    imports in each worker (``actor_rollout_ref.model.external_lib=MODULE``). ``first_step``
    numbers the first recorded step (default: after the last step this rank recorded in
    ``run_dir``, else 1); ``recorder_kwargs`` go to ``Recorder`` (``token_sample``,
    ``tokenizer``, ``sinks=["wandb"]``: rank 0's worker sends to the tracker; verl's own W&B run
    lives in the driver process, so the worker's sink starts a run of its own). Returns the ``Attachment``; a second call in the same process returns
    the first one (verl may import the attachment module more than once).

    Raises:
        ValueError: no run directory.
        RuntimeError: a verl older than 0.7, which neither attachment knows.
    """
    if (active := active_attachment("verl")) is not None:  # verl imported the attachment module again
        return active
    version = verl_version()
    rec = StepRecorder(run_dir, "verl", first_step=first_step, **recorder_kwargs)
    major, minor = (int(x) for x in version.split(".")[:2])
    if (major, minor) < (0, 7):
        raise RuntimeError(f"entrodiag's verl attachment needs verl >= 0.7 (tested on 0.7.1 and 0.9.1); found {version}")
    kind = "dp_actor" if (major, minor) < (0, 8) else "engine"
    if (major, minor) > (0, 9):
        rec.warn_once("version", f"verl {version} is newer than the last tested ({TESTED['engine']}); "
                                 "check that the wrapped methods still exist and are called as before")
    patch = _patch_dp_actor if kind == "dp_actor" else _patch_engine
    return Attachment("verl", rec, version, patch(rec), kind=kind)


#: what the actor update's batch gives the recorded step
_BATCH_KEYS = ("responses", "response_mask", "advantages", "old_log_probs", "token_level_scores",
               "token_level_rewards")


def _record(rec: StepRecorder, pending: dict | None, batch: dict) -> None:
    """Record one actor update from its batch and the entropy kept from its old-log-prob pass."""
    if pending is None:
        rec.warn_once("no-entropy", "no old-log-prob pass with entropy came before this actor update "
                                    "(rollout_correction bypass mode?); the step is not recorded")
        return
    device = batch["responses"].device  # verl moves the update's batch to the CPU; the pass may be on the GPU
    pending = {k: v.to(device) for k, v in pending.items()}
    old = batch.get("old_log_probs")
    same = (old is not None and tuple(old.shape) == tuple(pending["logprobs"].shape)
            and torch.equal(old.to(device).float(), pending["logprobs"].float()))
    if not same:
        rec.warn_once("mismatch", "the actor update's old_log_probs are not those of the last "
                                  "old-log-prob pass; the step is not recorded")
        return
    scores, penalised = batch.get("token_level_scores"), batch.get("token_level_rewards")
    rewards = scores if scores is not None else penalised  # the task score; the penalised one beside it
    if scores is None and penalised is not None:
        rec.warn_once("no-scores", "the actor update's batch has no token_level_scores; the reward recorded "
                                   "is token_level_rewards, which holds the KL penalty when "
                                   "algorithm.use_kl_in_reward is on")
    extra = {}
    if scores is not None and penalised is not None:
        extra["reward_penalised_mean"] = penalised.float().sum(-1).mean()  # copied to the host off the step
    rec.record(
        token_ids=batch["responses"], response_mask=batch["response_mask"].to(device).bool(),
        entropy=pending["entropy"].float(), logprobs=pending["logprobs"].float(),
        advantages=batch["advantages"].to(device).float(),
        rewards=None if rewards is None else rewards.float().sum(-1),
        group_ids=group_ids(batch.get("uid")), entropy_temperature=batch.get("temperature", 1.0), **extra,
    )


# --------------------------------------------------------------------------- verl 0.7.x: DataParallelPPOActor

def _patch_dp_actor(rec: StepRecorder) -> list:
    from verl.workers.actor.dp_actor import DataParallelPPOActor

    compute_log_prob, update_policy = DataParallelPPOActor.compute_log_prob, DataParallelPPOActor.update_policy
    pending: dict[int, dict] = {}

    @functools.wraps(compute_log_prob)
    def _compute_log_prob(self, data, calculate_entropy=False, *args, **kwargs):
        out = compute_log_prob(self, data, calculate_entropy, *args, **kwargs)
        if calculate_entropy:  # the actor's old-log-prob pass (the reference model's has none)
            try:
                logp, entropy = (out["log_probs"], out["entropys"]) if isinstance(out, dict) else out[:2]
                pending[id(self)] = {"logprobs": logp.detach(), "entropy": entropy.detach()}
            except Exception:
                rec.failed("keeping the old-log-prob pass")
        return out

    @functools.wraps(update_policy)
    def _update_policy(self, data, *args, **kwargs):
        try:
            b = data.batch
            batch = {k: b[k] for k in _BATCH_KEYS if k in b.keys()}
            batch["uid"] = data.non_tensor_batch.get("uid")
            batch["temperature"] = data.meta_info.get("temperature", 1.0)
        except Exception:
            rec.failed("reading the actor update's batch")
            batch = None
        metrics = update_policy(self, data, *args, **kwargs)
        if batch is not None:
            try:
                _record(rec, pending.pop(id(self), None), batch)
            except Exception:
                rec.failed("recording the step")
        return metrics

    DataParallelPPOActor.compute_log_prob, DataParallelPPOActor.update_policy = _compute_log_prob, _update_policy
    return [(DataParallelPPOActor, "compute_log_prob", compute_log_prob),
            (DataParallelPPOActor, "update_policy", update_policy)]


# ------------------------------------------------------------------- verl >= 0.8: engine TrainingWorker

def _patch_engine(rec: StepRecorder) -> list:
    from verl.utils import tensordict_utils as tu
    from verl.workers.engine_workers import TrainingWorker
    from verl.workers.utils.padding import no_padding_2_padding

    infer_batch, train_mini_batch = TrainingWorker.infer_batch, TrainingWorker.train_mini_batch
    pending: dict[int, dict] = {}

    @functools.wraps(infer_batch)  # keeps verl's @register dispatch attributes
    def _infer_batch(self, data, *args, **kwargs):
        try:
            entropy_pass = bool(tu.get(data, "calculate_entropy", default=False))
        except Exception:
            entropy_pass = False
        out = infer_batch(self, data, *args, **kwargs)
        if entropy_pass and out is not None:  # the actor's old-log-prob pass
            try:
                entropy, logp = tu.get(out, "entropy"), tu.get(out, "log_probs")
                if entropy is not None and logp is not None:
                    pending[id(self)] = {"entropy": no_padding_2_padding(entropy, data).detach(),
                                         "logprobs": no_padding_2_padding(logp, data).detach()}
            except Exception:
                rec.failed("keeping the old-log-prob pass")
        return out

    @functools.wraps(train_mini_batch)
    def _train_mini_batch(self, data, *args, **kwargs):
        batch = None
        if id(self) in pending:  # the actor (the critic has no entropy pass of its own)
            try:
                batch = {k: data[k] for k in _BATCH_KEYS if k in data.keys()}
                batch["uid"] = tu.get(data, "uid")
                batch["temperature"] = tu.get(data, "temperature", default=1.0)
            except Exception:
                rec.failed("reading the actor update's batch")
        out = train_mini_batch(self, data, *args, **kwargs)
        if batch is not None:
            try:
                _record(rec, pending.pop(id(self), None), batch)
            except Exception:
                rec.failed("recording the step")
        return out

    TrainingWorker.infer_batch, TrainingWorker.train_mini_batch = _infer_batch, _train_mini_batch
    return [(TrainingWorker, "infer_batch", infer_batch), (TrainingWorker, "train_mini_batch", train_mini_batch)]
