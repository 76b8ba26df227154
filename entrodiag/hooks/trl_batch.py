"""One TRL generation batch put back together for the Recorder: :class:`PendingBatch`.

TRL shuffles a generation batch and splits it into micro-batches before its loss sees them. The
drop-in tags each completion with its row (``ROW_KEY``) when the batch is generated, collects the
per-token tensors of each micro-batch as its loss computes them, and, once every row has been
seen, hands the rows back in their original order to ``Recorder.record_batch``. Torch only (no TRL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class PendingBatch:
    """One generation batch on its way to ``record_batch``: rows arrive micro-batch by micro-batch."""

    step: int
    size: int
    groups: Any  # [B] tensor
    rewards: Any  # [B] tensor or None
    parts: list[dict] = field(default_factory=list)
    seen: int = 0
    prompts: dict[int, str] = field(default_factory=dict)  # group id -> prompt text

    @classmethod
    def start(cls, step: int, rows: torch.Tensor, rank: int, world: int, num_generations: int,
              per_func: torch.Tensor | None, reward_weights: torch.Tensor) -> PendingBatch:
        """The batch of this process's ``rows`` (``arange(B)``): their groups and total rewards.

        ``per_func``: TRL's per-function rewards of the global batch ``[B·world, F]`` (NaN where a
        function does not apply), weighted by ``reward_weights`` as TRL sums them."""
        size = int(rows.shape[0])
        # TRL's sampler repeats each prompt num_generations times in a row across the global
        # batch, and each process holds a contiguous slice of it
        groups = torch.div(rank * size + rows, num_generations, rounding_mode="floor")
        rewards = None
        if per_func is not None and per_func.ndim == 2 and per_func.shape[0] == size * world:
            weights = reward_weights.to(per_func.device, per_func.dtype)
            total = (per_func * weights).nansum(dim=1)
            total[torch.isnan(per_func).all(dim=1)] = math.nan
            rewards = total[rank * size:(rank + 1) * size].to(rows.device)
        return cls(step=step, size=size, groups=groups, rewards=rewards)

    @property
    def complete(self) -> bool:
        """Every row of the batch has been seen."""
        return self.seen >= self.size

    def add(self, inputs: dict, rows: torch.Tensor, logps: torch.Tensor, entropy: torch.Tensor,
            tokenizer: Any = None) -> None:
        """One micro-batch: TRL's ``inputs``, its ``rows`` and the log-probs and entropy its loss
        computed; each group's prompt is decoded once with ``tokenizer`` (when it can decode)."""
        mask = inputs["completion_mask"]
        if inputs.get("tool_mask") is not None:
            mask = mask * inputs["tool_mask"]
        self.parts.append({"rows": rows, "ids": inputs["completion_ids"], "mask": mask,
                           "adv": inputs["advantages"], "logps": logps, "entropy": entropy})
        if hasattr(tokenizer, "decode"):
            self._add_prompts(rows, inputs, tokenizer)
        self.seen += int(rows.numel())

    def _add_prompts(self, rows: torch.Tensor, inputs: dict, tokenizer: Any) -> None:
        """Decode each group's prompt once (left-padded ``prompt_ids`` under ``prompt_mask``)."""
        ids, pmask = inputs.get("prompt_ids"), inputs.get("prompt_mask")
        if ids is None or pmask is None:
            return
        for i, g in enumerate(self.groups[rows].tolist()):
            if g not in self.prompts:
                self.prompts[g] = tokenizer.decode(ids[i][pmask[i].bool()].tolist(), skip_special_tokens=True)

    def record_kwargs(self) -> dict[str, Any]:
        """The rows seen so far in their original order, as ``Recorder.record_batch`` keywords."""
        rows = torch.cat([p["rows"] for p in self.parts])
        order = torch.argsort(rows)
        width = max(p["ids"].shape[1] for p in self.parts)

        def cat(key: str, dtype=None):
            xs = [p[key] for p in self.parts]
            if xs[0].ndim == 2:
                xs = [torch.nn.functional.pad(x, (0, width - x.shape[1])) for x in xs]
            x = torch.cat(xs)[order]
            return x if dtype is None else x.to(dtype)

        rows = rows[order]
        groups = self.groups[rows]
        group_list = groups.tolist()
        prompts = None
        if all(g in self.prompts for g in group_list):
            prompts = [self.prompts[g] for g in group_list]
        return dict(
            token_ids=cat("ids"), response_mask=cat("mask").bool(), entropy=cat("entropy", torch.float32),
            logprobs=cat("logps", torch.float32), advantages=cat("adv", torch.float32),
            rewards=None if self.rewards is None else self.rewards[rows].float(), group_ids=groups,
            prompts=prompts,
        )
