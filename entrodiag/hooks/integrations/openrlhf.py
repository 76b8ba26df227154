"""entrodiag attachment for OpenRLHF (tested on 0.11.2; written for 0.10-0.11): records every PPO
step of each actor worker.

``attach()`` wraps three of OpenRLHF's own methods in the worker process: ``Actor.forward``
(``openrlhf.models.actor``), ``ActorPPOTrainer.training_step`` and ``ActorPPOTrainer.ppo_train``
(``openrlhf.trainer.ray.ppo_actor``). OpenRLHF computes the token entropy in the actor's training
forward when ``actor.entropy_coef`` is set: start with ``--actor.entropy_coef 0`` (entropy computed,
no bonus in the loss; the attachment sets 0 itself, with a warning, when it finds it unset). The
first pass over each step's experiences is recorded (later PPO epochs go over the same samples):
token entropy and log-probs of that forward, advantages and action mask from the experience, the
reward per response (``Experience.rewards``, else ``info["reward"]``) and the prompt, whose text
also gives the group (the replay buffer drops ``Experience.index``; a prompt drawn twice in one
step counts as one group). Steps count like OpenRLHF's logged ``global_step`` (1, 2, ...).
The entropy is at ``Actor.temperature``; with several optimizer steps in one ``ppo_train``, the
micro-batches after the first step see the updated policy, as OpenRLHF's own ``entropy_loss`` does.
"""

from __future__ import annotations

import functools
import os
from importlib import metadata
from typing import Any

import torch

from .common import Attachment, StepRecorder, active_attachment, group_ids

TESTED = "0.11.2"




def attach(run_dir: str | os.PathLike | None = None, *, first_step: int | None = None,
           **recorder_kwargs: Any) -> Attachment:
    """Record OpenRLHF's actor PPO steps in this process into ``run_dir`` (default:
    ``$ENTRODIAG_RUN_DIR``). Call it once where the actor workers import your code (e.g. at the
    top of your copy of ``train_ppo_ray.py``, which Ray ships to the workers). ``first_step`` and
    ``recorder_kwargs`` as in ``entrodiag.hooks.integrations.verl.attach``.

    Raises:
        ValueError: no run directory.
    """
    if (active := active_attachment("openrlhf")) is not None:  # one recording per worker, not two
        return active
    from openrlhf.models.actor import Actor
    from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer

    version = metadata.version("openrlhf")
    rec = StepRecorder(run_dir, "openrlhf", first_step=first_step, **recorder_kwargs)
    if not version.startswith(("0.10.", "0.11.")):
        rec.warn_once("version", f"OpenRLHF {version} is not 0.10-0.11 (tested on {TESTED}); check that "
                                 "Actor.forward, ActorPPOTrainer.training_step and ppo_train are unchanged")
    forward, training_step, ppo_train = Actor.forward, ActorPPOTrainer.training_step, ActorPPOTrainer.ppo_train
    state: dict[str, Any] = {"inside": False, "last": None, "parts": [], "epoch_done": False, "temperature": 1.0}

    @functools.wraps(forward)
    def _forward(self, sequences, action_mask=None, *args, **kwargs):
        out = forward(self, sequences, action_mask, *args, **kwargs)
        if state["inside"] and kwargs.get("return_entropy") and action_mask is not None:  # the training forward
            try:
                log_probs, output = out
                state["last"] = (log_probs.detach(), output.entropy[:, -action_mask.shape[1]:].detach())
                state["temperature"] = float(getattr(self, "temperature", 1.0) or 1.0)
            except Exception:
                rec.failed("keeping the training forward's entropy")
        return out

    @functools.wraps(training_step)
    def _training_step(self, experience, kl_ctl, step, *args, **kwargs):
        try:
            if getattr(self.args.actor, "entropy_coef", 0.0) is None:
                rec.warn_once("coef", "actor.entropy_coef is unset, so OpenRLHF computes no entropy; setting it "
                                      "to 0 (entropy computed, no bonus); start with --actor.entropy_coef 0")
                self.args.actor.entropy_coef = 0.0
        except Exception:
            rec.failed("reading actor.entropy_coef")
        state.update(inside=True, last=None)
        try:
            status = training_step(self, experience, kl_ctl, step, *args, **kwargs)
        finally:
            state["inside"] = False
        try:
            if step == 0 and state["parts"]:
                state["epoch_done"] = True  # a second epoch over the same experiences: not recorded
            if not state["epoch_done"] and state["last"] is not None:
                state["parts"].append(_part(experience, *state["last"]))
        except Exception:
            rec.failed("keeping a micro-batch")
        return status

    @functools.wraps(ppo_train)
    def _ppo_train(self, *args, **kwargs):
        state.update(parts=[], epoch_done=False)
        status = ppo_train(self, *args, **kwargs)
        try:
            parts = state["parts"]
            if parts:
                rewards = [p["rewards"] for p in parts]
                prompts = [p["prompts"] for p in parts]
                prompts = None if any(x is None for x in prompts) else [x for p in prompts for x in p]
                rec.record(
                    token_ids=_pad_cat([p["ids"] for p in parts]),
                    response_mask=_pad_cat([p["mask"] for p in parts]).bool(),
                    entropy=_pad_cat([p["entropy"] for p in parts]).float(),
                    logprobs=_pad_cat([p["logprobs"] for p in parts]).float(),
                    advantages=_pad_cat([p["advantages"] for p in parts]).float(),
                    rewards=None if any(r is None for r in rewards) else torch.cat(rewards).float(),
                    group_ids=group_ids(prompts), prompts=None if prompts is None else [str(x) for x in prompts],
                    entropy_temperature=state["temperature"],
                )
        except Exception:
            rec.failed("recording the step")
        state["parts"] = []
        return status

    Actor.forward = _forward
    ActorPPOTrainer.training_step, ActorPPOTrainer.ppo_train = _training_step, _ppo_train
    return Attachment("openrlhf", rec, version, [(Actor, "forward", forward),
                                                 (ActorPPOTrainer, "training_step", training_step),
                                                 (ActorPPOTrainer, "ppo_train", ppo_train)])


def _part(experience, log_probs: torch.Tensor, entropy: torch.Tensor) -> dict:
    """One micro-batch's tensors, on the CPU (ppo_train's DataLoader batches may differ in width)."""
    mask = experience.action_mask
    rewards = getattr(experience, "rewards", None)
    if rewards is None and "reward" in getattr(experience, "info", {}):
        rewards = experience.info["reward"]
    if isinstance(rewards, list):
        rewards = torch.tensor(rewards)
    prompts = list(getattr(experience, "prompts", None) or [])
    if len(prompts) != mask.shape[0]:
        prompts = None
    return {
        "ids": experience.sequences[:, -mask.shape[1]:].detach().cpu(), "mask": mask.detach().cpu(),
        "entropy": entropy.cpu(), "logprobs": log_probs.cpu(), "advantages": experience.advantages.detach().cpu(),
        "rewards": None if rewards is None or rewards.ndim != 1 else rewards.detach().cpu(),
        "prompts": prompts,
    }


def _pad_cat(xs: list[torch.Tensor]) -> torch.Tensor:
    width = max(x.shape[1] for x in xs)
    return torch.cat([torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in xs])
