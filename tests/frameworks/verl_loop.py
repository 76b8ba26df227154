"""The 3 GRPO steps both verl drivers take, the way RayPPOTrainer.fit takes them: its own
_compute_old_log_prob and _update_actor on ``trainer`` (a stand-in for the Ray worker group), verl's
advantage, data metrics and file logger; then the driver closes the run."""

import json
import os

import numpy as np
import torch
from tensordict import TensorDict
from verl import DataProto
from verl.trainer.ppo.core_algos import agg_loss, compute_grpo_outcome_advantage
from verl.trainer.ppo.metric_utils import compute_data_metrics
from verl.trainer.ppo.ray_trainer import RayPPOTrainer
from verl.utils.tracking import FileLogger

import tiny
from entrodiag.hooks.integrations import finish_run


def drive(trainer, run_dir: str, out_dir: str, experiment: str, B: int) -> None:
    """Write OUT_DIR/own.json (verl's entropy, log-probs, advantages per step) and OUT_DIR/verl.jsonl."""
    os.environ["VERL_FILE_LOGGER_PATH"] = os.path.join(out_dir, "verl.jsonl")
    own, logger = [], FileLogger(project_name="entrodiag", experiment_name=experiment)
    for step in range(1, 4):  # RayPPOTrainer.fit: global_steps 1, 2, 3
        t = tiny.batch(step, B=B)
        uid = np.array([f"prompt-{step}-{g}" for g in t["group"].tolist()], dtype=object)
        scores = torch.zeros(B, t["responses"].shape[1])
        scores[torch.arange(B), t["response_mask"].sum(1) - 1] = t["reward"]  # the reward on the last token
        batch = DataProto(batch=TensorDict({k: t[k] for k in ("prompts", "responses", "input_ids", "attention_mask",
                                                             "response_mask", "position_ids")}, batch_size=[B]),
                          non_tensor_batch={"uid": uid}, meta_info={"temperature": 1.0})
        batch.meta_info["global_token_num"] = batch.batch["attention_mask"].sum(-1).tolist()  # as fit() sets it
        old, _ = RayPPOTrainer._compute_old_log_prob(trainer, batch)
        entropys = old.batch["entropys"]
        metrics = {"actor/entropy": agg_loss(loss_mat=entropys, loss_mask=batch.batch["response_mask"],
                                             loss_agg_mode="token-mean").item()}  # as RayPPOTrainer.fit logs it
        old.batch.pop("entropys")
        batch = batch.union(old)
        batch.batch["token_level_scores"] = batch.batch["token_level_rewards"] = scores
        adv, ret = compute_grpo_outcome_advantage(scores, batch.batch["response_mask"], uid)
        batch.batch["advantages"], batch.batch["returns"] = adv, ret
        out = RayPPOTrainer._update_actor(trainer, batch)
        metrics.update({k: float(np.mean(v)) for k, v in out.meta_info["metrics"].items()})
        metrics.update({k: float(v) for k, v in compute_data_metrics(batch, use_critic=False).items()})
        if step == 3:  # a validation: verl's own naming of per-data-source metrics
            metrics.update({k: float(v) for k, v in RayPPOTrainer._val_metrics_update(
                None, ["gsm8k"] * B, list(uid), {"reward": t["reward"].tolist(), "acc": t["reward"].tolist()}, []).items()})
        logger.log(metrics, step=step)
        mask = batch.batch["response_mask"].bool()
        own.append({"step": step, "actor/entropy": metrics["actor/entropy"], "entropy": entropys[mask].tolist(),
                    "logprob": batch.batch["old_log_probs"][mask].tolist(), "advantage": adv[mask].tolist(),
                    "reward_mean": scores.sum(-1).mean().item(), "n_groups": len(set(uid))})
    logger.finish()
    finish_run(run_dir, timeout=30)  # the driver closes the run
    json.dump(own, open(os.path.join(out_dir, "own.json"), "w"))
    print("driven", [o["actor/entropy"] for o in own])
