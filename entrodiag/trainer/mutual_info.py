"""The built-in trainer's mutual-information proxy (``mi_proxy`` step column; definition in
``entrodiag.hooks.mutual_info`` and docs/definitions.md).

Every ``mi_every`` steps, before the update (so it measures the policy that sampled the batch),
each response is scored under its own prompt and ``mi_k`` other distinct prompts of the rank's
batch. The (prompt, response) pairs are ordered by prompt, so that the shared-prompt forward of
:func:`.forward.response_logp` computes each distinct prompt's KV cache once and runs the
``(mi_k + 1) · G`` responses scored under it on top of that cache: the cost is ``mi_k + 1``
forward passes over the response tokens, no gradient (benchmarks/README.md gives it per step).
"""

from __future__ import annotations

import torch

from ..hooks.mutual_info import mi_from_logprobs, other_prompts
from .forward import response_logp
from .rollout import Prompts, Rollout


@torch.no_grad()
def batch_mi(model, prompts: Prompts, roll: Rollout, k: int, temperature: float = 1.0, *,
             head: torch.Tensor | None = None, chunk: int = 0) -> torch.Tensor:
    """``mi_i`` of each response of the batch (``[n]``, fp64), ``chunk`` pairs per forward (0: all)."""
    host = prompts.on_cpu()
    rows = other_prompts(host.ids, host.mask, k)  # [n, c] prompt rows (a distinct prompt's first row)
    n, c = rows.shape
    flat = rows.reshape(-1)
    order = torch.argsort(flat, stable=True)  # the pairs of one prompt next to each other: its cache once
    p_rows, r_rows = flat[order], order // c
    seq = torch.empty(n * c, dtype=torch.float32, device=roll.response.device)
    step = chunk or n * c
    for lo in range(0, n * c, step):
        sl = slice(lo, min(lo + step, n * c))
        r = r_rows[sl].to(roll.response.device)
        mask = roll.mask[r]
        logp, _ = response_logp(model, prompts.take(p_rows[sl]), roll.response[r], mask, temperature, head=head)
        seq[sl] = (logp * mask).sum(1)
    logp = torch.empty_like(seq)
    logp[order.to(seq.device)] = seq
    return mi_from_logprobs(logp.reshape(n, c))


def step_mi(trainer, step: int, prompts: Prompts, roll: Rollout) -> dict[str, float]:
    """``{"mi_proxy": mean mi_i}`` on the steps ``cfg.mi_every`` picks (and the last), else ``{}``;
    also ``{}`` when the rank's batch holds a single distinct prompt (nothing to compare with)."""
    cfg = trainer.cfg
    if not cfg.mi_every or (step % cfg.mi_every and step != cfg.steps - 1):
        return {}
    host = prompts.on_cpu()
    if not bool((host.ids != host.ids[:1]).any()):
        return {}
    trainer.model.eval()
    with trainer.autocast:
        mi = batch_mi(trainer.model, prompts, roll, cfg.mi_k, cfg.temperature, head=trainer.head,
                      chunk=cfg.micro_batch_size * (cfg.mi_k + 1))
    return {"mi_proxy": float(mi.mean())}
