"""TRL's GRPOTrainer on a tiny model, recorded by entrodiag: swap the class, add one keyword.

Task, with a verifiable and dense reward: the prompt is two digits and "=", e.g. "37=", and the
answer counts on from the last digit: "8901". Reward = the fraction of the first 4 completion
characters that are right. The policy is a randomly initialised 2-layer Llama built from a
transformers config, and the tokenizer a character-level `PreTrainedTokenizerFast` built in code:
no download, CPU only. 20 of the 100 prompts are held out; TRL evaluates them every
`--eval-every` steps (`eval_reward` becomes `val/reward` in the run).

    pip install 'entrodiag[trl]'
    python training_hooks/trl_grpo.py                 # writes runs/trl-grpo
    entrodiag inspect runs/trl-grpo

TRL's own outputs (its `trainer_state.json`, with `log_history`) go to `<out>/trl/`, so that
`entrodiag import runs/trl-grpo/trl/trainer_state.json --out ...` works on it too.
"""

import argparse
import os
import time

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--out", default="runs/trl-grpo", help="run directory to create (must not hold a run)")
p.add_argument("--steps", type=int, default=20, help="optimizer steps (default: %(default)s)")
p.add_argument("--seed", type=int, default=0, help="seed of model init and sampling")
p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: %(default)s)")
p.add_argument("--prompts", type=int, default=8, help="prompts per step (default: %(default)s)")
p.add_argument("--group-size", type=int, default=8, help="completions per prompt, G (default: %(default)s)")
p.add_argument("--token-sample", type=int, default=4, help="completions per step kept as token rows")
p.add_argument("--eval-every", type=int, default=10, help="evaluate the held-out prompts every N steps")
args = p.parse_args()
if min(args.steps, args.prompts, args.eval_every) < 1 or args.group_size < 2:
    p.error("--steps, --prompts and --eval-every must be >= 1, --group-size >= 2")
if os.path.exists(os.path.join(args.out, "run.json")):
    p.error(f"{args.out} already holds a run: pass --out NEW_DIR or delete it")

# heavy imports after the arguments, so that --help and a refused --out answer at once
import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from entrodiag import load_run  # noqa: E402
from entrodiag.hooks.trl import RecordingGRPOTrainer  # noqa: E402

torch.manual_seed(args.seed)
R = 4  # answer length


def char_tokenizer() -> PreTrainedTokenizerFast:
    """One token per character of "0123456789=", plus <pad> and <eos>; built in code."""
    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", *"0123456789="])}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")  # every character alone
    tk.decoder = decoders.Fuse()  # decode without spaces between characters
    return PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>")


def count_on(completions: list[str], answer: list[str], **_) -> list[float]:
    """Reward: share of the first R characters that match the answer ("37=" -> "8901")."""
    return [sum(a == b for a, b in zip(c[:R], ans)) / R for c, ans in zip(completions, answer)]


tok = char_tokenizer()
rows = [{"prompt": f"{i:02d}=", "answer": "".join(str((i % 10 + k) % 10) for k in range(1, R + 1))}
        for i in range(100)]
perm = torch.randperm(100).tolist()
train = Dataset.from_list([rows[i] for i in perm[20:]])
held_out = Dataset.from_list([rows[i] for i in perm[:20]])

config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                     num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=16,
                     tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                     bos_token_id=None)
model = LlamaForCausalLM(config)  # random init
# TRL turns activation checkpointing on by default: slower, and useless on a tiny model
# (transformers 5 renamed gradient_checkpointing to activation_checkpointing)
renamed = "activation_checkpointing" in GRPOConfig.__dataclass_fields__
no_checkpointing = {"activation_checkpointing" if renamed else "gradient_checkpointing": False}
grpo = GRPOConfig(
    output_dir=os.path.join(args.out, "trl"), max_steps=args.steps, learning_rate=args.lr, seed=args.seed,
    per_device_train_batch_size=args.prompts * args.group_size, num_generations=args.group_size,
    max_completion_length=R + 1, temperature=1.0, beta=0.0, logging_steps=1,
    eval_strategy="steps", eval_steps=args.eval_every, per_device_eval_batch_size=len(held_out),
    num_generations_eval=1, use_cpu=True, bf16=False, report_to="none", save_strategy="no", disable_tqdm=True,
    lr_scheduler_type="constant", dataloader_num_workers=0, **no_checkpointing,
)
print(f"policy: Llama 2x64, {sum(w.numel() for w in model.parameters()) / 1e3:.0f}k parameters, random "
      f"init; task: '37=' -> '8901'; {args.steps} steps of {args.prompts}x{args.group_size} completions")

t0 = time.time()
trainer = RecordingGRPOTrainer(  # entrodiag (1/2): GRPOTrainer's arguments, plus where to record
    model=model, processing_class=tok, reward_funcs=count_on, args=grpo, train_dataset=train,
    eval_dataset=held_out, entrodiag_run_dir=args.out, entrodiag_token_sample=args.token_sample,
)
trainer.train()  # entrodiag (2/2): records every generation batch and every log, then closes the run
trainer.state.save_to_json(os.path.join(grpo.output_dir, "trainer_state.json"))  # TRL's own log
print(f"trained in {time.time() - t0:.1f} s")

# --- read the run back: per-token entropy of every completion, TRL's scalars, evaluations
run = load_run(args.out)
steps, evals = run.steps, run.evals
print(f"\nrun {run.path} ({run.status}): {steps.height} steps, {run.tokens.height} token rows, "
      f"{evals.height} evals")
for row in steps.select("step", "entropy_mean", "trl/entropy", "reward_mean", "loss").iter_rows(named=True):
    print(f"step {row['step']:3d}  entropy {row['entropy_mean']:.4f} (TRL logged {row['trl/entropy']:.4f})  "
          f"reward {row['reward_mean']:.3f}")
for row in evals.iter_rows(named=True):
    print(f"{row['name']} = {row['value']:.3f} at step {row['step']}")
print(f"next: entrodiag inspect {run.path}")
