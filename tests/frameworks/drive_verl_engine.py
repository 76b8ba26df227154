"""verl >= 0.8 on CPU: the real TrainingWorker + FSDP2 engine + ppo_loss, driven for 3 GRPO steps
the way RayPPOTrainer drives them (its own _compute_old_log_prob and _update_actor, called with a
stand-in for the Ray worker group), with the README's attachment.

    python drive_verl_engine.py SNIPPET.py RUN_DIR OUT_DIR

Writes OUT_DIR/own.json (verl's entropy, log-probs and advantages per step) and OUT_DIR/verl.jsonl
(the metrics verl logs per step, in its file logger's format).
"""

import json
import os
import sys
import tempfile
from types import SimpleNamespace

os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                  MASTER_PORT=os.environ.get("MASTER_PORT", "29533"),
                  VERL_ENGINE_DEVICE="cuda")  # the FSDP engines are registered for cuda/npu only
import verl_cpu_platform  # noqa: E402,F401  (before verl.workers.engine)

snippet, run_dir, out_dir = sys.argv[1:4]
os.environ["ENTRODIAG_RUN_DIR"] = run_dir
exec(compile(open(snippet).read(), "README:verl", "exec"), {"__name__": "entrodiag_verl"})  # the attachment

from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.config import CheckpointConfig  # noqa: E402
from verl.trainer.ppo.core_algos import agg_loss, compute_grpo_outcome_advantage  # noqa: E402
from verl.trainer.ppo.metric_utils import compute_data_metrics  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl.utils.tracking import FileLogger  # noqa: E402
from verl.workers.config import ActorConfig, FSDPEngineConfig, FSDPOptimizerConfig, HFModelConfig  # noqa: E402
from verl.workers.config.engine import TrainingWorkerConfig  # noqa: E402
from verl.workers.engine_workers import TrainingWorker  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

import tiny  # noqa: E402
from entrodiag.hooks.integrations import finish_run  # noqa: E402

dist.init_process_group("gloo", rank=0, world_size=1)
model_dir = tiny.save(tempfile.mkdtemp())
B, EPOCHS = 8, 2
model = HFModelConfig(path=model_dir, use_remove_padding=False, enable_gradient_checkpointing=False,
                      override_config={"attn_implementation": "eager"})  # default: flash_attention_2
engine = FSDPEngineConfig(strategy="fsdp2", use_dynamic_bsz=False, micro_batch_size_per_gpu=4,
                          infer_micro_batch_size_per_gpu=4, use_torch_compile=False,
                          mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"})
worker = TrainingWorker(TrainingWorkerConfig(
    model_type="language_model", model_config=model, engine_config=engine,
    optimizer_config=FSDPOptimizerConfig(lr=1e-3, total_training_steps=10), checkpoint_config=CheckpointConfig()))
worker.reset()
worker.set_loss_fn(partial(ppo_loss, config=ActorConfig(strategy="fsdp2", ppo_mini_batch_size=B, ppo_micro_batch_size_per_gpu=4,
                                                        use_dynamic_bsz=False, rollout_n=2)))
# RayPPOTrainer, reduced to what its _compute_old_log_prob / _update_actor read
trainer = SimpleNamespace(
    actor_rollout_wg=SimpleNamespace(compute_log_prob=worker.infer_batch, update_actor=worker.train_mini_batch),
    distillation_config=None,
    config=OmegaConf.create({"actor_rollout_ref": {
        "rollout": {"temperature": 1.0, "n": 1, "multi_turn": {"enable": False}},
        "actor": {"calculate_entropy": False, "entropy_coeff": 0.0, "ppo_mini_batch_size": B, "ppo_epochs": EPOCHS,
                  "data_loader_seed": 1, "shuffle": False, "calculate_sum_pi_squared": False,
                  "loss_agg_mode": "token-mean"}}}),
)
os.environ["VERL_FILE_LOGGER_PATH"] = os.path.join(out_dir, "verl.jsonl")
own, logger = [], FileLogger(project_name="entrodiag", experiment_name="verl-engine")
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
