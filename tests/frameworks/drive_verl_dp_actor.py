"""verl 0.7.x on CPU: the real DataParallelPPOActor (what the default legacy FSDP worker runs),
driven for 3 GRPO steps the way RayPPOTrainer drives it (its own _compute_old_log_prob and
_update_actor, called with a stand-in for the Ray worker group that does what
fsdp_workers.ActorRolloutRefWorker.compute_log_prob / update_actor do), with the README's attachment.

    python drive_verl_dp_actor.py SNIPPET.py RUN_DIR OUT_DIR

Writes OUT_DIR/own.json and OUT_DIR/verl.jsonl like drive_verl_engine.py.
"""

import os
import sys

snippet, run_dir, out_dir = sys.argv[1:4]
os.environ["ENTRODIAG_RUN_DIR"] = run_dir
exec(compile(open(snippet).read(), "README:verl", "exec"), {"__name__": "entrodiag_verl"})  # the attachment

import json  # noqa: E402
from types import SimpleNamespace  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from tensordict import TensorDict  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.core_algos import agg_loss, compute_grpo_outcome_advantage  # noqa: E402
from verl.trainer.ppo.metric_utils import compute_data_metrics  # noqa: E402
from verl.trainer.ppo.ray_trainer import RayPPOTrainer  # noqa: E402
from verl.utils.tracking import FileLogger  # noqa: E402
from verl.workers.actor.dp_actor import DataParallelPPOActor  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

import tiny  # noqa: E402
from entrodiag.hooks.integrations import finish_run  # noqa: E402

dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{os.environ.get('MASTER_PORT', '29541')}",
                        rank=0, world_size=1)  # DataParallelPPOActor.__init__ calls get_rank()
B, EPOCHS = 8, 2
model = tiny.model()
cfg = FSDPActorConfig(strategy="fsdp", ppo_mini_batch_size=B, ppo_micro_batch_size_per_gpu=4, ppo_epochs=EPOCHS,
                      rollout_n=2, use_dynamic_bsz=False, use_torch_compile=False, fsdp_config={"dtype": "float32"})
actor = DataParallelPPOActor(cfg, model, torch.optim.AdamW(model.parameters(), lr=1e-3))


def compute_log_prob(data):  # fsdp_workers.ActorRolloutRefWorker.compute_log_prob, reduced
    data.meta_info.update(micro_batch_size=4, max_token_len=1024, use_dynamic_bsz=False, temperature=1.0, pad_token_id=0)
    out = actor.compute_log_prob(data=data, calculate_entropy=True)
    return DataProto.from_dict(tensors={"old_log_probs": out["log_probs"], "entropys": out["entropys"]},
                               meta_info={"temperature": 1.0})


def update_actor(data):  # fsdp_workers.ActorRolloutRefWorker.update_actor, reduced
    data.meta_info.setdefault("pad_token_id", 0)
    return DataProto(meta_info={"metrics": actor.update_policy(data=data)})


trainer = SimpleNamespace(  # RayPPOTrainer, reduced to what its _compute_old_log_prob / _update_actor read
    use_legacy_worker_impl="auto",
    actor_rollout_wg=SimpleNamespace(compute_log_prob=compute_log_prob, update_actor=update_actor),
    config=OmegaConf.create({"actor_rollout_ref": {"rollout": {"temperature": 1.0, "n": 2, "multi_turn": {"enable": False}}}}),
)
os.environ["VERL_FILE_LOGGER_PATH"] = os.path.join(out_dir, "verl.jsonl")
own, logger = [], FileLogger(project_name="entrodiag", experiment_name="verl-dp-actor")
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
