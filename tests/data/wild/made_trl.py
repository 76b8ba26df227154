"""A made-here RL fine-tuning run: TRL's GRPOTrainer on CPU with entrodiag's tiny warm-started model.

The model is entrodiag's tiny Llama (2 layers, hidden 64, ~132k parameters, warm-started on the task,
seed 0) with its character vocabulary wrapped as a Hugging Face fast tokenizer; the task is
zero-padded 2-digit addition ("37+45=" -> "082", completions of at most 4 tokens).

Rewards: ``exact`` pays 1.0 for the exact sum; ``wrong`` pays 1.0 for any well-formed 3-digit answer
that is not the sum (an easy reward that saturates). TRL logs ``entropy`` and ``reward`` every
``--logging-steps`` steps.

Usage (from the folder that receives the run folder; PYTHONPATH pointing at an entrodiag checkout)::

    mkdir NAME && python make.py NAME [--lr LR] [--steps N] [--logging-steps K] [--eval-steps E]
        [--reward exact|wrong] [--prompts-per-step P] [--no-tqdm] > NAME/console.log 2>&1

stdout and stderr go to one file, as a user's batch job writes them. Writes NAME/trainer_state.json;
the last console line gives the wall time and the arguments.
"""

import argparse
import os
import time

import torch
from datasets import Dataset
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast
from trl import GRPOConfig, GRPOTrainer

from entrodiag.trainer.config import TrainConfig
from entrodiag.trainer.tasks import addition_task
from entrodiag.trainer.warmstart import tiny_policy


def exact(completions, answer, **kw):
    return [float(c.strip() == x) for c, x in zip(completions, answer)]


def wrong(completions, answer, **kw):
    return [float(len(c.strip()) == 3 and c.strip().isdigit() and c.strip() != x)
            for c, x in zip(completions, answer)]


def hf_tokenizer(char_tok):
    """The tiny model's characters (<pad>=0, <bos>=1, <eos>=2, one id each) as a fast tokenizer."""
    tk = Tokenizer(models.WordLevel(vocab={t: i for i, t in enumerate(char_tok.vocab)}, unk_token="<pad>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tk.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>",
                                  pad_token="<pad>", padding_side="left")
    assert tok("37+45=")["input_ids"] == char_tok.encode("37+45="), "tokenizers disagree on a prompt"
    assert tok.decode(char_tok.encode("082", add_bos=False)) == "082", "tokenizers disagree on an answer"
    return tok


def main():
    p = argparse.ArgumentParser()
    p.add_argument("name")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--beta", type=float, default=0.0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--logging-steps", type=int, default=1)
    p.add_argument("--eval-steps", type=int, default=0, help="0: no evaluation")
    p.add_argument("--reward", choices=("exact", "wrong"), default="exact")
    p.add_argument("--prompts-per-step", type=int, default=32)
    p.add_argument("--group", type=int, default=8, help="completions per prompt")
    p.add_argument("--loss-type", default="grpo")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-tqdm", action="store_true",
                   help="disable_tqdm=True: transformers then print()s each log dict (PrinterCallback)")
    a = p.parse_args()
    t0 = time.time()
    torch.set_num_threads(1)
    task = addition_task(val_size=500, seed=0)
    model, char_tok = tiny_policy(TrainConfig(), task, log=lambda *x: None)  # entrodiag's cached warm start
    train = Dataset.from_dict({"prompt": task.train_prompts, "answer": task.train_answers})
    held_out = Dataset.from_dict({"prompt": task.val_prompts[:32], "answer": task.val_answers[:32]})
    cfg = GRPOConfig(
        output_dir=a.name, max_steps=a.steps, learning_rate=a.lr, lr_scheduler_type="constant",
        warmup_steps=0,
        per_device_train_batch_size=a.prompts_per_step * a.group, num_generations=a.group,
        max_completion_length=4, temperature=a.temperature, beta=a.beta, loss_type=a.loss_type,
        logging_steps=a.logging_steps, save_strategy="no", report_to="none", use_cpu=True, seed=a.seed,
        disable_tqdm=a.no_tqdm, disable_dropout=True, dataloader_num_workers=0,
        eval_strategy="steps" if a.eval_steps else "no", eval_steps=a.eval_steps or None,
        per_device_eval_batch_size=32 * a.group if a.eval_steps else 8,
    )
    trainer = GRPOTrainer(model=model, reward_funcs={"exact": exact, "wrong": wrong}[a.reward], args=cfg,
                          train_dataset=train, eval_dataset=held_out if a.eval_steps else None,
                          processing_class=hf_tokenizer(char_tok))
    trainer.train()
    trainer.state.save_to_json(os.path.join(a.name, "trainer_state.json"))
    print(f"made-here: wall {time.time() - t0:.1f} s; args {vars(a)}")


if __name__ == "__main__":
    main()
