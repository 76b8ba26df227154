"""verl >= 0.8 on CPU: the real TrainingWorker + FSDP2 engine + ppo_loss, driven for 3 GRPO steps
the way RayPPOTrainer drives them (its own _compute_old_log_prob and _update_actor, called with a
stand-in for the Ray worker group), with the README's attachment.

    python drive_verl_engine.py SNIPPET.py RUN_DIR OUT_DIR

Writes OUT_DIR/own.json (verl's entropy, log-probs and advantages per step) and OUT_DIR/verl.jsonl
(the metrics verl logs per step, in its file logger's format).
"""

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

import torch.distributed as dist  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl.trainer.config import CheckpointConfig  # noqa: E402
from verl.workers.config import ActorConfig, FSDPEngineConfig, FSDPOptimizerConfig, HFModelConfig  # noqa: E402
from verl.workers.config.engine import TrainingWorkerConfig  # noqa: E402
from verl.workers.engine_workers import TrainingWorker  # noqa: E402
from verl.workers.utils.losses import ppo_loss  # noqa: E402

import tiny  # noqa: E402
import verl_loop  # noqa: E402

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
verl_loop.drive(trainer, run_dir, out_dir, "verl-engine", B)
