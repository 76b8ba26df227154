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

from types import SimpleNamespace  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.workers.actor.dp_actor import DataParallelPPOActor  # noqa: E402
from verl.workers.config import FSDPActorConfig  # noqa: E402

import tiny  # noqa: E402
import verl_loop  # noqa: E402

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
verl_loop.drive(trainer, run_dir, out_dir, "verl-dp-actor", B)
