"""Rollouts as tensors end to end: left-padded prompts, a plain KV-cache sampling loop that keeps
each sampled token's log-probability and entropy (so no second forward pass is needed for the
old log-probs), and responses masked after their ``<eos>``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..metrics import entropy_and_logprobs


@dataclass
class Prompts:
    """Left-padded prompt ids ``[N, P]`` and their attention mask."""

    ids: torch.Tensor
    mask: torch.Tensor
    host: "Prompts | None" = None
    """The same on the CPU when ``ids`` and ``mask`` were moved to an accelerator: the group
    layout (:func:`prompt_runs`) and the padding (:attr:`padded`) are read from it, without a
    device sync."""

    def on_cpu(self) -> "Prompts":
        """These prompts on the CPU (``host``, or themselves)."""
        return self.host if self.host is not None else self

    def take(self, idx) -> "Prompts":
        """The rows ``idx`` (a slice, or a CPU index tensor when ``host`` is set)."""
        return Prompts(self.ids[idx], self.mask[idx], None if self.host is None else self.host.take(idx))

    def to(self, device) -> "Prompts":
        ids, mask = self.ids.to(device), self.mask.to(device)
        if ids.device == self.ids.device:
            return self
        return Prompts(ids, mask, self.on_cpu() if self.on_cpu().ids.device.type == "cpu" else None)

    @property
    def padded(self) -> bool:
        """Whether any row is left-padded (read on the CPU copy when there is one)."""
        return not bool(self.on_cpu().mask[:, 0].all())


def encode_prompts(tokenizer, texts: list[str]) -> Prompts:
    """Tokenise once (through ``tokenizer.encode_prompt`` when it has one: the chat template of
    an instruct model) and left-pad to the longest prompt."""
    encode = getattr(tokenizer, "encode_prompt", tokenizer.encode)
    rows = [encode(t) for t in texts]
    if not rows or min(map(len, rows)) == 0:
        raise ValueError("every prompt must encode to at least one token")
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        mask[i, width - len(r):] = True
    return Prompts(ids, mask)


@dataclass
class Rollout:
    """Sampled responses ``[B, T]`` with what the loss and the Recorder need, all detached."""

    response: torch.Tensor
    mask: torch.Tensor
    """True up to and including each response's ``<eos>``."""
    old_logp: torch.Tensor
    """Log-prob of each sampled token at the sampling temperature (the PPO ratio's denominator)."""
    entropy: torch.Tensor
    """Token entropy at the recording temperature (``entropy_temperature``)."""
    logp: torch.Tensor
    """Log-prob of each sampled token at the recording temperature."""
    lengths: list[int] | None = None
    """Valid tokens per response (``mask``'s row sums), read to the host once when sampling ends:
    decoding and the update's valid-token counts use it without another sync."""


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that ignore left padding."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


def padding_kwargs(mask: torch.Tensor, padded: bool | None = None) -> dict:
    """``attention_mask`` and ``position_ids`` for a forward pass over left-padded rows; none when
    nothing is left-padded (padding after ``<eos>`` is invisible to earlier positions under causal
    attention), which spares the model building a 4-D mask. ``padded``: whether the rows are
    left-padded when the caller knows it (:attr:`Prompts.padded`), else read from ``mask``."""
    if padded is None:
        padded = not bool(mask[:, 0].all())
    if not padded:
        return {}
    return {"attention_mask": mask.long(), "position_ids": positions(mask)}


def cache_kwarg(model) -> str:
    """Name of the KV-cache argument: ``cache`` in transformers >= 5.x, ``past_key_values`` before."""
    import inspect

    forward = getattr(model, "module", model).forward
    return "cache" if "cache" in inspect.signature(forward).parameters else "past_key_values"


def accepts_logits_to_keep(model) -> bool:
    """Whether the model's forward takes ``logits_to_keep`` (transformers' causal LMs do), so that
    only the positions asked for go through the output head."""
    import inspect

    forward = getattr(model, "module", model).forward
    return "logits_to_keep" in inspect.signature(forward).parameters


def prompt_runs(prompts: Prompts) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the first row of each run of identical consecutive prompt rows, and run lengths
    (on the CPU when the prompts have a CPU copy)."""
    prompts = prompts.on_cpu()
    ids = prompts.ids
    if ids.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=ids.device), torch.zeros(0, dtype=torch.long, device=ids.device)
    new = torch.ones(ids.shape[0], dtype=torch.bool, device=ids.device)
    new[1:] = (ids[1:] != ids[:-1]).any(1) | (prompts.mask[1:] != prompts.mask[:-1]).any(1)
    first = new.nonzero().squeeze(-1)
    counts = torch.diff(first, append=torch.tensor([ids.shape[0]], device=ids.device))
    return first, counts


def repeat_shared(t: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Row ``i`` of ``t`` repeated ``counts[i]`` times. With equal counts (every group complete)
    this is an expand and a reshape, whose backward is a plain sum over the copies."""
    g = int(counts[0])
    if bool((counts == g).all()):
        return t.unsqueeze(1).expand(t.shape[0], g, *t.shape[1:]).reshape(t.shape[0] * g, *t.shape[1:])
    return t.repeat_interleave(counts.to(t.device), dim=0, output_size=int(counts.sum()))


def repeat_rows(cache, counts: torch.Tensor):
    """The KV cache with each prompt's keys and values repeated over its rows (with gradient);
    ``None`` for a cache layout not handled here."""
    if hasattr(cache, "layers") and all(hasattr(layer, "keys") for layer in cache.layers):  # transformers >= 4.56
        for layer in cache.layers:
            if layer.keys is not None and layer.values is not None:
                layer.keys, layer.values = repeat_shared(layer.keys, counts), repeat_shared(layer.values, counts)
        return cache
    if hasattr(cache, "key_cache") and hasattr(cache, "value_cache"):  # DynamicCache before 4.56
        cache.key_cache = [repeat_shared(k, counts) for k in cache.key_cache]
        cache.value_cache = [repeat_shared(v, counts) for v in cache.value_cache]
        return cache
    if isinstance(cache, tuple) and all(isinstance(kv, tuple) and len(kv) == 2 for kv in cache):  # legacy tuples
        return tuple((repeat_shared(k, counts), repeat_shared(v, counts)) for k, v in cache)
    return None


@torch.no_grad()
def generate(
    model,
    prompts: Prompts,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    *,
    temperature: float = 1.0,
    entropy_temperature: float = 1.0,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    share_prompts: bool = True,
    between_tokens: Callable[[], None] | None = None,
) -> Rollout:
    """Sample (or pick greedily) up to ``max_new_tokens`` tokens per prompt with a KV cache.

    With ``share_prompts``, consecutive rows with the same prompt (a GRPO group) run their prompt
    once and start from copies of its KV cache (the same numbers up to float rounding).
    ``between_tokens`` is called after each token (the trainer's stop deadline check, which may
    raise to abandon the generation)."""
    ids, attn = prompts.ids, prompts.mask.long()
    first = padding_kwargs(prompts.mask, prompts.padded)
    padded = bool(first)
    pos = positions(prompts.mask)
    cache_kw = cache_kwarg(model)
    keep = {"logits_to_keep": 1} if accepts_logits_to_keep(model) else {}  # the prompt's last position only
    past = None
    runs, counts = prompt_runs(prompts)
    if share_prompts and runs.numel() < ids.shape[0]:  # a group's rows share one prompt: run it once, repeat its cache
        uniq = prompts.take(runs)
        out = model(input_ids=uniq.ids, use_cache=True, **keep, **padding_kwargs(uniq.mask, uniq.padded))
        past = repeat_rows(out[cache_kw], counts)
        logits = repeat_shared(out.logits[:, -1], counts)
    if past is None:
        out = model(input_ids=ids, use_cache=True, **keep, **first)
        past, logits = out[cache_kw], out.logits[:, -1]
    last_pos = pos[:, -1:]
    done = torch.zeros(ids.shape[0], dtype=torch.bool, device=ids.device)
    tokens, valid, old_logp, ent, logp = [], [], [], [], []
    for t in range(max_new_tokens):
        z = logits.float()
        logp_t = torch.log_softmax(z / temperature, -1)
        if greedy:
            nxt = z.argmax(-1)
        else:
            nxt = torch.multinomial(logp_t.exp(), 1, generator=generator).squeeze(-1)
        chosen = logp_t.gather(-1, nxt[:, None]).squeeze(-1)
        if entropy_temperature == temperature:
            h, lp = -(logp_t.exp() * logp_t).sum(-1), chosen
        else:
            h, lp = entropy_and_logprobs(z, nxt, temperature=entropy_temperature)
        valid.append(~done)
        nxt = torch.where(done, pad_id, nxt)
        tokens.append(nxt)
        old_logp.append(chosen)
        ent.append(h)
        logp.append(lp)
        done = done | (nxt == eos_id)
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        if between_tokens is not None:
            between_tokens()
        extra = {}
        if padded:
            attn = torch.cat([attn, torch.ones_like(attn[:, :1])], dim=1)
            last_pos = last_pos + 1
            extra = {"attention_mask": attn, "position_ids": last_pos}
        out = model(input_ids=nxt[:, None], use_cache=True, **{cache_kw: past}, **extra)
        past, logits = out[cache_kw], out.logits[:, -1]
    mask = torch.stack(valid, 1)
    return Rollout(
        torch.stack(tokens, 1), mask,
        torch.stack(old_logp, 1).masked_fill(~mask, 0.0),
        torch.stack(ent, 1).masked_fill(~mask, 0.0),
        torch.stack(logp, 1).masked_fill(~mask, 0.0),
        mask.sum(1).tolist(),
    )


def decode_responses(tokenizer, rollout: Rollout) -> list[str]:
    """Response texts without the trailing ``<eos>`` and padding."""
    ids = rollout.response.tolist()
    lens = rollout.lengths if rollout.lengths is not None else rollout.mask.sum(1).tolist()
    eos = tokenizer.eos_token_id
    return [tokenizer.decode([i for i in row[:n] if i != eos], skip_special_tokens=True) for row, n in zip(ids, lens)]


def score(task, texts: list[str], answers: list[str]) -> torch.Tensor:
    """Rewards ``[B]`` in [0, 1] from the task's checker."""
    return torch.tensor([task.score(t, a) for t, a in zip(texts, answers)], dtype=torch.float32)
