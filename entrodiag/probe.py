"""Probe checkpoints without training logs: token entropy, accuracy and semantic entropy.

For each checkpoint, ``probe`` samples K answers per prompt of a suite (a JSONL file of
``{"prompt", "answer"}``), scores them with the math answer checker, and records one "step" per
checkpoint into an ordinary run (source ``probe``): token entropy and log-probs of every sampled
answer, group-normalised advantages over each prompt's K answers (so the covariance is defined),
the sampled and greedy accuracy as evaluations (``val/accuracy_sampled``, ``val/accuracy_greedy``,
so the entropy law fits across checkpoints), and the answer-level semantic entropy. Every sampled answer is kept as token and sample rows.

Semantic entropy (Kuhn et al. 2023; Farquhar et al. 2024, "discrete" variant): the K answers to a
prompt are clustered by meaning, here by their final answer (the last ``\\boxed{}`` or number,
compared numerically), and the entropy of the cluster frequencies is taken, in nats; the step
value is the mean over prompts. Answers with no final answer form one cluster of their own.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Callable

import torch

from .hooks.recorder import Recorder
from .metrics import group_advantages
from .trainer.model import load_policy
from .trainer.rollout import decode_responses, encode_prompts, generate
from .trainer.tasks import as_number, extract_answer, jsonl_task, math_match

_STEP_IN_NAME = re.compile(r"step[-_]?(\d+)$")


def answer_key(text: str) -> str:
    """The cluster of a response: its final answer, numbers compared by value."""
    ans = extract_answer(text)
    if ans is None:
        return "<no answer>"
    num = as_number(ans)
    return repr(round(num, 9)) if num is not None else " ".join(ans.split())


def semantic_entropy(answers: list[str]) -> float:
    """Entropy (nats) of the distribution of final answers among one prompt's samples."""
    counts = Counter(answer_key(a) for a in answers)
    n = sum(counts.values())
    return -sum(c / n * math.log(c / n) for c in counts.values())


def checkpoint_steps(models: list[str | Path]) -> list[int]:
    """Training steps parsed from checkpoint names (``step-0000099`` -> 99) when every name has
    a distinct one; otherwise 0, 1, 2, ... in the given order."""
    found = [_STEP_IN_NAME.search(Path(m).name) for m in models]
    steps = [int(m.group(1)) for m in found if m]
    if len(steps) == len(models) and len(set(steps)) == len(steps):
        return steps
    return list(range(len(models)))


def probe(
    models: list[str | Path],
    suite: str | Path,
    out: str | Path,
    *,
    samples: int = 8,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    batch_size: int = 256,
    limit: int | None = None,
    seed: int = 0,
    device: str = "auto",
    prompt_format: str = "auto",
    system_prompt: str = "",
    progress: bool = True,
    log: Callable[..., None] = print,
) -> Path:
    """Probe each checkpoint in ``models`` on ``suite``; write the run ``out`` and return it.

    A model is a checkpoint or Hugging Face folder, a ``.gguf`` file or a named model
    (``smollm2-135m``); instruct models see each prompt through their chat template
    (``prompt_format`` auto, chat or plain; ``system_prompt`` adds a system turn).

    Example:
        >>> probe(["runs/r/checkpoints/step-0000019", "runs/r/checkpoints/step-0000039"],
        ...       "probes/arith.jsonl", "runs/r-probe", samples=8)          # doctest: +SKIP
    """
    if not models:
        raise ValueError("give at least one --model")
    if samples < 2:
        raise ValueError("samples must be >= 2 (advantages and semantic entropy compare a prompt's samples)")
    from .store.location import check_store, run_path

    out = run_path(out)  # a local folder, or an object-store URL (s3://, gs://)
    if check_store(out).child("run.json").exists():
        raise ValueError(f"{out} already holds a run: pass a new --out")
    task = jsonl_task(suite, val_size=1, seed=seed)
    prompts = task.train_prompts + task.val_prompts  # a probe suite is all held out
    answers = task.train_answers + task.val_answers
    if limit:
        prompts, answers = prompts[:limit], answers[:limit]
    dev = torch.device("cuda" if device == "cuda" or (device == "auto" and torch.cuda.is_available()) else "cpu")
    steps = checkpoint_steps(models)
    config = {"models": [str(m) for m in models], "suite": str(suite), "samples": samples,
              "temperature": temperature, "max_new_tokens": max_new_tokens, "seed": seed,
              "prompt_format": prompt_format, "system_prompt": system_prompt}
    rec = Recorder(out, config=config, source="probe", token_sample="all", seed=seed, model=Path(models[-1]).name.removesuffix(".gguf"),
                   task=Path(suite).stem, checkpoints=[{"step": s, "model": str(m)} for s, m in zip(steps, models)])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(models) * len(prompts) * (samples + 1), desc="probe", unit="answer")
    status = "failed"
    try:
        for step, path in zip(steps, models):
            model, tok = load_policy(path, dtype=torch.bfloat16 if dev.type == "cuda" else torch.float32,
                                     prompt_format=prompt_format, system_prompt=system_prompt, log=log)
            model.to(dev).eval()
            rec.tokenizer = tok
            gen = torch.Generator(dev).manual_seed(seed)
            enc = encode_prompts(tok, prompts)
            idx = torch.arange(len(prompts)).repeat_interleave(samples)
            rows = _generate_all(model, tok, enc, idx, max_new_tokens, temperature, False, gen, batch_size, bar)
            texts = decode_responses(tok, rows)
            rewards = torch.tensor([math_match(t, answers[i]) for t, i in zip(texts, idx.tolist())])
            greedy = _generate_all(model, tok, enc, torch.arange(len(prompts)), max_new_tokens, 1.0, True, gen,
                                   batch_size, bar)
            greedy_acc = sum(math_match(t, a) for t, a in zip(decode_responses(tok, greedy), answers)) / len(prompts)
            sem = sum(semantic_entropy(texts[i * samples:(i + 1) * samples]) for i in range(len(prompts))) / len(prompts)
            rec.record_batch(step, token_ids=rows.response, response_mask=rows.mask, entropy=rows.entropy,
                             logprobs=rows.logp, advantages=group_advantages(rewards, idx), rewards=rewards,
                             group_ids=idx, texts=texts, prompts=[prompts[i] for i in idx.tolist()], prompt_ids=idx,
                             semantic_entropy=sem)
            rec.log_eval(step, "val/accuracy_sampled", rewards.mean().item(), n=len(rewards))
            rec.log_eval(step, "val/accuracy_greedy", greedy_acc, n=len(prompts))
            rec.flush()  # token text is decoded with this checkpoint's tokenizer before the next one
            log(f"{Path(path).name}: step {step}, entropy {_mean_entropy(rows):.3f} nats, sampled accuracy "
                f"{rewards.mean().item():.3f}, greedy {greedy_acc:.3f}, semantic entropy {sem:.3f} nats")
        status = "finished"
    finally:
        if bar is not None:
            bar.close()
        rec.close(status)
    return out


def _mean_entropy(rows) -> float:
    return ((rows.entropy * rows.mask).sum() / rows.mask.sum().clamp(min=1)).item()


def _generate_all(model, tok, enc, idx, max_new_tokens, temperature, greedy, gen, batch_size, bar):
    """Generate for ``enc.take(idx)`` in batches; responses right-padded to one width."""
    parts = []
    for lo in range(0, len(idx), batch_size):
        chunk = enc.take(idx[lo:lo + batch_size]).to(gen.device)
        parts.append(generate(model, chunk, max_new_tokens, tok.eos_token_id, tok.pad_token_id,
                              temperature=temperature, greedy=greedy, generator=gen))
        if bar is not None:
            bar.update(len(chunk.ids))
    width = max(p.response.shape[1] for p in parts)

    def cat(name, fill):
        return torch.cat([torch.nn.functional.pad(getattr(p, name), (0, width - p.response.shape[1]), value=fill)
                          for p in parts]).cpu()

    return type(parts[0])(cat("response", tok.pad_token_id), cat("mask", False), cat("old_logp", 0.0),
                          cat("entropy", 0.0), cat("logp", 0.0))
