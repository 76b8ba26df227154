"""The policy's forward pass over sampled responses: the logits that chose each response token.

GRPO samples G responses per prompt, and the rollout keeps them in groups of consecutive rows
that share one prompt. The update and the after-update entropy need the logits of the response
positions only, so :func:`response_logits` runs each distinct prompt once (a forward with a KV
cache, with gradient when the caller wants one), repeats its keys and values over the rows that
share it, and runs the responses on top of that cache. The math is that of one forward over
``prompt + response`` per row (causal attention sees the same keys and values), up to float
rounding; the prompt positions cost 1/G of the rows. On tiny-arith (7 prompt tokens, 4 response
tokens, G = 8) this is about half the update's work.

``share_prompts=False`` (and gradient checkpointing, which cannot keep a cache) takes the plain
path: one forward over ``prompt + response`` per row.
"""

from __future__ import annotations

import torch

from .rollout import (Prompts, accepts_logits_to_keep, cache_kwarg, padding_kwargs, positions, prompt_runs,
                      repeat_rows, repeat_shared)


def response_logits(model, prompts: Prompts, response: torch.Tensor, response_mask: torch.Tensor,
                    temperature: float = 1.0, *, share_prompts: bool = True,
                    prompt_model=None) -> torch.Tensor:
    """Logits ``[B, T, V]`` (fp32) of the distributions that chose the ``T`` response tokens.

    Args:
        model: a causal LM (``input_ids`` in, ``.logits`` out); may be DDP-wrapped.
        prompts: left-padded prompts ``[B, P]`` (rows of a group next to each other).
        response: sampled tokens ``[B, T]``; response_mask: ``[B, T]``, true up to ``<eos>``.
        temperature: the logits are divided by it.
        share_prompts: run consecutive identical prompt rows once (see the module docstring).
        prompt_model: the module that runs the shared prompts (default ``model``); under DDP the
            bare module, so that one DDP forward pairs with one backward.
    """
    if share_prompts and response.shape[1] > 0:
        first, counts = prompt_runs(prompts)
        if first.numel() < prompts.ids.shape[0]:
            logits = _shared_prompt_logits(model, prompt_model or model, prompts, response, first, counts)
            if logits is not None:
                return _finish(logits, temperature)
    full = torch.cat([prompts.ids, response], 1)
    full_mask = torch.cat([prompts.mask, response_mask], 1)
    n_keep = response.shape[1] + 1
    keep = {"logits_to_keep": n_keep} if accepts_logits_to_keep(model) else {}
    logits = model(input_ids=full, **keep, **padding_kwargs(full_mask)).logits
    return _finish(logits[:, -n_keep:-1], temperature)


def _finish(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = logits.float() if logits.dtype != torch.float32 else logits
    return logits if temperature == 1.0 else logits / temperature


def _shared_prompt_logits(model, prompt_model, prompts: Prompts, response: torch.Tensor,
                          first: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    uniq = prompts.take(first)
    cache_kw = cache_kwarg(prompt_model)
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(prompt_model) else {}
    out = prompt_model(input_ids=uniq.ids, use_cache=True, **keep, **padding_kwargs(uniq.mask))
    cache = repeat_rows(out[cache_kw], counts)
    if cache is None:  # a cache layout this module does not know: the plain path
        return None
    last = repeat_shared(out.logits[:, -1:], counts)  # the distribution of the first response token
    if response.shape[1] == 1:
        return last
    extra = {}
    if not bool(prompts.mask[:, 0].all()):  # left padding: mask it and continue each row's positions
        n = response.shape[1] - 1
        attn = torch.cat([prompts.mask, torch.ones_like(prompts.mask[:, :1]).expand(-1, n)], 1).long()
        pos = positions(prompts.mask)[:, -1:] + torch.arange(1, n + 1, device=response.device)
        extra = {"attention_mask": attn, "position_ids": pos}
    # the last response token conditions nothing that is scored, so it is not run
    rest = model(input_ids=response[:, :-1], use_cache=True, **{cache_kwarg(model): cache}, **extra).logits
    return torch.cat([last, rest], 1)

