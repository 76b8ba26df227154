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

:func:`response_hidden` gives the last hidden states at the same positions instead of the logits,
and :func:`response_logp` the log-probs and entropy the update needs, from those hidden states
and a plain linear head chunk by chunk (``chunked_head``) or from the whole logits.
"""

from __future__ import annotations

import torch

from ..metrics import entropy_and_logprobs, entropy_and_logprobs_from_hidden
from .chunked_head import compute_dtype, head_logprobs
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
    logits = _response_states(model, prompts, response, response_mask, share_prompts, prompt_model, hidden=False)
    logits = logits.float() if logits.dtype != torch.float32 else logits
    return logits if temperature == 1.0 else logits / temperature


def response_hidden(model, prompts: Prompts, response: torch.Tensor, response_mask: torch.Tensor, *,
                    share_prompts: bool = True, prompt_model=None) -> torch.Tensor:
    """The last hidden states ``[B, T, D]`` (after the final norm) whose output-head logits are
    :func:`response_logits`; the model's head runs on one position per call only. Same
    arguments as :func:`response_logits`; the model must return ``hidden_states``."""
    return _response_states(model, prompts, response, response_mask, share_prompts, prompt_model, hidden=True)


def response_logp(model, prompts: Prompts, response: torch.Tensor, response_mask: torch.Tensor,
                  temperature: float = 1.0, *, head: torch.Tensor | None = None, need_entropy: bool = False,
                  share_prompts: bool = True, prompt_model=None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probabilities ``[B, T]`` of the response tokens and (``need_entropy``) the entropy of
    each distribution, fp32, with gradient.

    With ``head`` (the output head's weight, from :func:`.chunked_head.linear_head`) they come
    from the last hidden states chunk by chunk (:func:`.chunked_head.head_logprobs`): no
    ``[B, T, V]`` tensor exists. Without it, from the whole logits (``log_softmax``; the entropy
    as −Σ p·log p), for models whose head is not a plain linear map.
    """
    kw = {"share_prompts": share_prompts, "prompt_model": prompt_model}
    if head is not None:
        hidden = response_hidden(model, prompts, response, response_mask, **kw)
        return head_logprobs(hidden, head, response, temperature, need_entropy=need_entropy)
    logp_all = torch.log_softmax(response_logits(model, prompts, response, response_mask, temperature, **kw), -1)
    logp = logp_all.gather(-1, response[..., None]).squeeze(-1)
    return logp, (-(logp_all.exp() * logp_all).sum(-1) if need_entropy else None)


@torch.no_grad()
def response_entropy(model, prompts: Prompts, response: torch.Tensor, response_mask: torch.Tensor,
                     temperature: float = 1.0, *, head: torch.Tensor | None = None) -> torch.Tensor:
    """Token entropy ``[B, T]`` (fp32, no gradient) at ``temperature``; with ``head``, chunk by
    chunk from the hidden states (:func:`entropy_and_logprobs_from_hidden`), both in the dtype the
    update's head runs in (:func:`.chunked_head.compute_dtype`: autocast's when it is on), else from
    the whole logits."""
    if head is not None:
        hidden = response_hidden(model, prompts, response, response_mask)
        cd = compute_dtype(hidden)
        return entropy_and_logprobs_from_hidden(hidden.to(cd), head.to(cd), response,
                                                temperature=temperature)[0]
    logits = response_logits(model, prompts, response, response_mask)
    return entropy_and_logprobs(logits, response, temperature=temperature)[0]


def _response_states(model, prompts: Prompts, response: torch.Tensor, response_mask: torch.Tensor,
                     share_prompts: bool, prompt_model, hidden: bool) -> torch.Tensor:
    """The logits (``hidden=False``) or the last hidden states at the response positions."""
    if share_prompts and response.shape[1] > 0:
        first, counts = prompt_runs(prompts)
        if first.numel() < prompts.ids.shape[0]:
            states = _shared_prompt_states(model, prompt_model or model, prompts, response, first, counts, hidden)
            if states is not None:
                return states
    full = torch.cat([prompts.ids, response], 1)
    full_mask = torch.cat([prompts.mask, response_mask], 1)
    n_keep = response.shape[1] + 1
    out = model(input_ids=full, **_outputs(model, 1 if hidden else n_keep, hidden), **padding_kwargs(full_mask, prompts.padded))
    return _pick(out, hidden)[:, -n_keep:-1]


def _outputs(model, keep: int, hidden: bool) -> dict:
    """Keyword arguments asking for the last ``keep`` positions' logits, and the hidden states."""
    kw = {"logits_to_keep": keep} if accepts_logits_to_keep(model) else {}
    return {**kw, "output_hidden_states": True} if hidden else kw


def _pick(out, hidden: bool) -> torch.Tensor:
    return out.hidden_states[-1] if hidden else out.logits


def _shared_prompt_states(model, prompt_model, prompts: Prompts, response: torch.Tensor,
                          first: torch.Tensor, counts: torch.Tensor, hidden: bool) -> torch.Tensor | None:
    uniq = prompts.take(first)
    cache_kw = cache_kwarg(prompt_model)
    out = prompt_model(input_ids=uniq.ids, use_cache=True, **_outputs(prompt_model, 1, hidden),
                       **padding_kwargs(uniq.mask, uniq.padded))
    cache = repeat_rows(out[cache_kw], counts)
    if cache is None:  # a cache layout this module does not know: the plain path
        return None
    last = repeat_shared(_pick(out, hidden)[:, -1:], counts)  # the distribution of the first response token
    if response.shape[1] == 1:
        return last
    extra = {}
    if prompts.padded:  # left padding: mask it and continue each row's positions
        n = response.shape[1] - 1
        attn = torch.cat([prompts.mask, torch.ones_like(prompts.mask[:, :1]).expand(-1, n)], 1).long()
        pos = positions(prompts.mask)[:, -1:] + torch.arange(1, n + 1, device=response.device)
        extra = {"attention_mask": attn, "position_ids": pos}
    # the last response token conditions nothing that is scored, so it is not run
    keep = _outputs(model, 1, True) if hidden else {}
    rest = model(input_ids=response[:, :-1], use_cache=True, **{cache_kwarg(model): cache}, **keep, **extra)
    return torch.cat([last, _pick(rest, hidden)], 1)
