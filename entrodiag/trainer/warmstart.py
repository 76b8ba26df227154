"""The tiny model's supervised warm start (docs/decisions.md), cached on disk keyed by its configuration.

A randomly initialised policy never samples a right answer, so GRPO would see only zero-advantage
groups. Cross-entropy on the answer tokens (batch 128, lr 1e-3) until greedy held-out accuracy
reaches ``warmup_target`` (~0.6, about 400 steps, seconds on a CPU) leaves a policy that is right
about a quarter of the time when sampling at T = 1: real entropy for GRPO to spend.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from .. import __version__
from .cache import cache_root
from .model import load_policy, tiny_config
from .policy_files import save_policy
from .rollout import decode_responses, encode_prompts, generate, score
from .tokenizers import CharTokenizer

WARM_START_VERSION = 1


def _key(cfg, task) -> str:
    spec = {
        "version": WARM_START_VERSION,
        "model": tiny_config(len(CharTokenizer())).to_dict(),
        "task": cfg.task, "val_size": cfg.val_size, "max_new_tokens": cfg.max_new_tokens,
        "n_train": len(task.train_prompts), "seed": cfg.seed,
        **{k: getattr(cfg, k) for k in ("warmup_target", "warmup_max_steps", "warmup_batch", "warmup_lr")},
    }
    spec["model"].pop("transformers_version", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def greedy_accuracy(model, tokenizer, task, prompts, max_new_tokens: int) -> float:
    roll = generate(model, prompts, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, greedy=True)
    return score(task, decode_responses(tokenizer, roll), task.val_answers).mean().item()


def tiny_policy(cfg, task, log=print):
    """The warm-started tiny model and its tokenizer, from the cache or trained now (and cached)."""
    folder = cache_root() / "warm-start" / f"tiny-{_key(cfg, task)}"
    if (folder / "config.json").is_file():
        try:
            return load_policy(folder)
        except Exception as e:  # a damaged cache entry is rebuilt, not fatal
            log(f"warm start cache {folder} unreadable ({e}); rebuilding it")
    tokenizer = CharTokenizer()
    model = _train(cfg, task, tokenizer, log)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
    save_policy(model, tokenizer, tmp)
    (tmp / "warm_start.json").write_text(json.dumps({"entrodiag_version": __version__, **model._warm_start}))
    try:
        os.replace(tmp, folder)
    except OSError:  # another process cached it first
        shutil.rmtree(tmp, ignore_errors=True)
    return model, tokenizer


def _train(cfg, task, tokenizer: CharTokenizer, log):
    import time

    from transformers import LlamaForCausalLM

    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(tiny_config(len(tokenizer)))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.warmup_lr)
    seqs = [tokenizer.encode(p) + tokenizer.encode(a, add_bos=False) + [tokenizer.eos_token_id]
            for p, a in zip(task.train_prompts, task.train_answers)]
    n_prompt = [len(tokenizer.encode(p)) for p in task.train_prompts]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tokenizer.pad_token_id)
    target = torch.full((len(seqs), width), -100)  # loss on answer tokens and <eos> only
    for i, (s, p) in enumerate(zip(seqs, n_prompt)):
        ids[i, : len(s)] = torch.tensor(s)
        target[i, p : len(s)] = torch.tensor(s[p:])
    val = encode_prompts(tokenizer, task.val_prompts)
    gen = torch.Generator().manual_seed(cfg.seed)
    t0, acc, step = time.time(), 0.0, 0
    log(f"warm start: supervised training of the tiny model until greedy held-out accuracy >= {cfg.warmup_target}")
    for step in range(1, cfg.warmup_max_steps + 1):
        idx = torch.randint(len(seqs), (cfg.warmup_batch,), generator=gen)
        logits = model(input_ids=ids[idx]).logits[:, :-1]
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target[idx, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0:
            model.eval()
            acc = greedy_accuracy(model, tokenizer, task, val, cfg.max_new_tokens)
            model.train()
            if acc >= cfg.warmup_target:
                break
    log(f"warm start: {step} steps, greedy held-out accuracy {acc:.2f}, {time.time() - t0:.1f} s")
    model._warm_start = {"steps": step, "greedy_accuracy": acc, "seconds": round(time.time() - t0, 2)}
    return model
