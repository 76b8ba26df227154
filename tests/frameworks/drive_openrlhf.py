"""OpenRLHF 0.10-0.11 on CPU: the real Actor, PolicyLoss, NaiveReplayBuffer and
ActorPPOTrainer.ppo_train / training_step, driven for 3 GRPO steps with the README's attachment.

    python drive_openrlhf.py SNIPPET.py RUN_DIR OUT_DIR

Shims: module stubs for flash_attn and vllm (CUDA-only, imported at module level), three torch.cuda
calls made CPU-safe, and a stand-in for DeepspeedStrategy (the real one JIT-builds two C++ ops on
first use, 1-2 minutes) that accumulates gradients over 2 micro-batches as DeepSpeed does.
Writes OUT_DIR/own.json (the actor's own entropy and log-probs of each response, before the
update, and the advantages) and OUT_DIR/tb/ (OpenRLHF's TensorboardLogger: what it logs per step).
"""

import importlib.machinery
import os
import sys
import types

os.environ["TORCHDYNAMO_DISABLE"] = "1"  # compute_entropy is @torch.compile'd (inductor: +15 s on CPU)
for name, names in {"flash_attn": [], "flash_attn.bert_padding": ["index_first_axis", "pad_input", "rearrange", "unpad_input"],
                    "flash_attn.utils": [], "flash_attn.utils.distributed": ["all_gather"], "vllm": ["SamplingParams"],
                    "vllm.inputs": ["TokensPrompt"], "vllm.utils": ["random_uuid"]}.items():
    module = sys.modules[name] = types.ModuleType(name)
    module.__dict__.update(dict.fromkeys(names))
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)  # transformers probes find_spec("flash_attn")

snippet, run_dir, out_dir = sys.argv[1:4]
os.environ["ENTRODIAG_RUN_DIR"] = run_dir
exec(compile(open(snippet).read(), "README:openrlhf", "exec"), {"__name__": "entrodiag_openrlhf"})  # the attachment

import json  # noqa: E402
from types import SimpleNamespace as NS  # noqa: E402
from unittest import mock  # noqa: E402

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
from openrlhf.models import Actor  # noqa: E402
from openrlhf.trainer.ppo_trainer import BasePPOTrainer  # noqa: E402
from openrlhf.trainer.ppo_utils.experience import Experience  # noqa: E402
from openrlhf.trainer.ray.ppo_actor import ActorPPOTrainer  # noqa: E402
from openrlhf.utils.logging_utils import TensorboardLogger  # noqa: E402

import tiny  # noqa: E402
from entrodiag.hooks.integrations import finish_run  # noqa: E402

dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{os.environ.get('MASTER_PORT', '29551')}",
                        rank=0, world_size=1)
B, N = 8, 2  # 4 prompts x 2 samples
model = tiny.model()
actor = Actor(model)
actor.packing_samples = False  # Actor(nn.Module) leaves it unset
calls = {"n": 0}


def optimizer_step(optim, model, scheduler, name=None):  # DeepSpeed: a step at each accumulation boundary
    calls["n"] += 1
    if calls["n"] % 2 == 0:
        optim.step(), optim.zero_grad(), scheduler.step()


args = NS(train=NS(max_epochs=2, dynamic_batch_enable=False, colocate_all=False, async_enable=False),
          actor=NS(eps_clip_low_high=(0.2, 0.2), dual_clip=None, loss_agg_mode="token-mean", aux_loss_coef=0.0,
                   policy_loss_type="ppo", entropy_coef=0.0),  # --actor.entropy_coef 0
          rollout=NS(n_samples_per_prompt=N, batch_size=B // N), ds=NS(packing_samples=False, tensor_parallel_size=1),
          vllm=NS(sync_backend="nccl"), logger=NS(tensorboard_dir=os.path.join(out_dir, "tb"), wandb=NS(run_name="run")),
          algo=NS(kl=NS(use_loss=False), advantage=NS(is_correction_level="off", is_correction_mode="mask",
                                                      is_correction_gating="ratio", is_correction_threshold=(0.5, 5.0))))
strategy = NS(ring_attn_group=None, accumulated_gradient=2, backward=lambda loss, m, o: loss.backward(),
              is_rank_0=lambda: True, optimizer_step=optimizer_step,
              get_grad_norm=lambda m: 0.0, all_reduce=lambda d, op="mean": d, args=args)
optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
torch.cuda.synchronize = lambda *a: None
with mock.patch("torch.cuda.current_device", return_value=0):  # NaiveReplayBuffer: torch.device(f"cuda:{current_device()}")
    trainer = ActorPPOTrainer(strategy, actor, None, optim, torch.optim.lr_scheduler.LambdaLR(optim, lambda s: 1.0),
                              micro_train_batch_size=4)
trainer.replay_buffer.target_device, torch.cuda.current_device = torch.device("cpu"), lambda: "cpu"
tb = TensorboardLogger(args)
own = []
for global_step in range(3):
    t = tiny.batch(global_step + 1, B=B)
    seq, amask, attn = t["input_ids"], t["response_mask"].bool(), t["attention_mask"]
    with torch.no_grad():  # the actor's own entropy and log-probs for this batch, before the update
        logp, output = actor(seq, amask, attention_mask=attn, return_output=True, return_entropy=True)
    entropy = output.entropy[:, -amask.shape[1]:]
    reward = t["reward"]
    adv = ((reward - reward.view(-1, N).mean(1).repeat_interleave(N)) / (reward.view(-1, N).std(1).repeat_interleave(N) + 1e-6))
    exp = Experience(sequences=seq, attention_mask=attn, action_mask=amask, action_log_probs=logp,
                     advantages=adv[:, None] * amask, rewards=reward, response_length=amask.sum(1).float(),
                     truncated=torch.zeros(B), total_length=attn.sum(1).float(), index=list(range(B)),
                     prompts=[f"prompt {global_step}-{g}" for g in t["group"].tolist()],
                     info={"reward": reward, "response_length": amask.sum(1).float()})
    rollout_stats = BasePPOTrainer._compute_rollout_stats(None, [exp])
    trainer.replay_buffer.clear()
    trainer.replay_buffer.append(exp)
    status = trainer.ppo_train(kl_ctl=0.0)  # the attachment records this step
    global_step += 1  # PPOTrainer.train_step returns global_step + 1, and logs under it
    tb.log_train(global_step, {**status, **rollout_stats})
    own.append({"step": global_step, "ids": t["responses"].tolist(), "mask": amask.tolist(), "entropy": entropy.tolist(),
                "logprob": logp.tolist(), "advantage": (adv[:, None] * amask).tolist(), "reward_mean": reward.mean().item(),
                "entropy_loss": status["entropy_loss"]})
tb.writer.close()
finish_run(run_dir, timeout=30)  # the driver closes the run
json.dump(own, open(os.path.join(out_dir, "own.json"), "w"))
print("driven", [o["entropy_loss"] for o in own])
