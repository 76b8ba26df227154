"""The mutual-information proxy: how much more likely each answer is under its own prompt than
under the other prompts of the batch (RAGEN-2, arXiv 2604.06268: answers that ignore their input
keep their entropy, so entropy does not see this "template collapse"; the proxy does).

Definition (docs/definitions.md). Response ``y_i`` was sampled for prompt ``x_i``; the batch's
distinct prompts are taken in order of first appearance, and the ``k`` prompts after ``x_i``'s
(cyclically) are its *others* ``x_j`` (``k`` at most the number of distinct prompts − 1). With
``ℓ_ij = log p(y_i | x_j)``, the **sequence** log-probability (the sum over the response's valid
tokens, at the sampling temperature)::

    mi_i = ℓ_ii − log( (1/(k+1)) · Σ_{j ∈ {i} ∪ others} exp(ℓ_ij) )

and the step value is the mean of ``mi_i`` over the responses. It is the InfoNCE estimate of the
mutual information I(X; Y) between prompt and response (van den Oord et al. 2018, arXiv
1807.03748): at most log(k+1) (the answer is far likelier under its own prompt), 0 when the
answer is as likely under any prompt (it ignores its input), negative when another prompt
explains it better. Per sequence, not per token: the pointwise mutual information of a prompt and
an answer is a ratio of whole-sequence likelihoods, and a per-token mean would weigh long and
short answers alike.

:func:`mi_proxy` costs ``k + 1`` extra forward passes over prompt + response per response (no
gradient); the built-in trainer computes it every ``mi_every`` steps with each distinct prompt's
KV cache computed once (``entrodiag.trainer.mutual_info``). The Recorder records it as an extra
step column: ``rec.record_batch(step, ..., mi_proxy=float(mi_proxy(model, ...).mean()))``.
"""

from __future__ import annotations

import math

import torch

from ..metrics import entropy_and_logprobs

__all__ = ["mi_from_logprobs", "mi_proxy", "other_prompts", "sequence_logprobs"]


def other_prompts(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor | None = None,
                  k: int = 3) -> torch.Tensor:
    """Rows ``[n, k' + 1]`` of the prompts each response is scored under, each distinct prompt named
    by the first row that holds it: column 0 its own prompt, then each of the ``k' = min(k, m − 1)``
    distinct prompts that follow its own in the cyclic order of first appearance (``m`` distinct
    prompts; identical prompt rows, a GRPO group, are one prompt). ``prompt_mask`` (True on real
    tokens) decides which ids count.

    Raises:
        ValueError: ``k < 1``, or fewer than two distinct prompts (nothing to compare with).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1 (other prompts per response), got {k}")
    ids = prompt_ids if prompt_mask is None else prompt_ids.masked_fill(~prompt_mask.bool(), -1)
    _, inverse = torch.unique(ids.cpu(), dim=0, return_inverse=True)
    first: dict[int, int] = {}  # distinct prompt (unique's id) -> its first row
    for row, u in enumerate(inverse.tolist()):
        first.setdefault(u, row)
    order = sorted(first, key=first.get)  # distinct prompts in order of first appearance
    m = len(order)
    if m < 2:
        raise ValueError(f"the MI proxy needs at least two distinct prompts in the batch, got {m}")
    rank = torch.empty(len(order), dtype=torch.long)
    rank[torch.tensor(order)] = torch.arange(m)
    rows = torch.tensor([first[u] for u in order])  # the first row of each distinct prompt, by rank
    own = rank[inverse]  # [n]: each response's prompt, by rank
    shifts = torch.arange(1, min(k, m - 1) + 1)
    others = rows[(own[:, None] + shifts[None, :]) % m]
    return torch.cat([rows[own][:, None], others], 1)


def mi_from_logprobs(logp: torch.Tensor) -> torch.Tensor:
    """``mi_i`` (``[n]``, fp64) from the sequence log-probabilities ``logp[i, j] = log p(y_i | x_j)``
    (``[n, k + 1]``, column 0 the own prompt): ``logp[i, 0] − logsumexp_j logp[i, j] + log(k + 1)``."""
    if logp.ndim != 2 or logp.shape[1] < 2:
        raise ValueError(f"logp must be [n, k + 1] with k >= 1 (column 0: the own prompt), got {tuple(logp.shape)}")
    lp = logp.double()
    return lp[:, 0] - torch.logsumexp(lp, 1) + math.log(lp.shape[1])


@torch.no_grad()
def sequence_logprobs(model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, responses: torch.Tensor,
                      response_mask: torch.Tensor, *, temperature: float = 1.0, batch_size: int = 64) -> torch.Tensor:
    """``Σ_t log p(y_t | x, y_<t)`` over each row's valid response tokens (``[n]``, fp32), one plain
    forward over prompt + response per row, ``batch_size`` rows at a time. Prompts are left-padded
    (``prompt_mask`` True on real tokens), responses right-padded (``response_mask``)."""
    n, P = prompt_ids.shape
    T = responses.shape[1]
    out = torch.empty(n, dtype=torch.float32, device=responses.device)
    for lo in range(0, n, max(1, batch_size)):
        sl = slice(lo, min(lo + batch_size, n))
        ids = torch.cat([prompt_ids[sl], responses[sl]], 1)
        mask = torch.cat([prompt_mask[sl], response_mask[sl]], 1).long()
        kw = {}
        if not bool(prompt_mask[sl, 0].all()):  # left padding: mask it and count positions after it
            kw = {"attention_mask": mask, "position_ids": (mask.cumsum(-1) - 1).clamp(min=0)}
        logits = model(input_ids=ids, **kw).logits[:, P - 1:P + T - 1]
        lp = entropy_and_logprobs(logits, responses[sl], temperature=temperature)[1]
        out[sl] = (lp * response_mask[sl]).sum(1)
    return out


@torch.no_grad()
def mi_proxy(model, prompt_ids: torch.Tensor, responses: torch.Tensor, *, prompt_mask: torch.Tensor | None = None,
             response_mask: torch.Tensor | None = None, k: int = 3, temperature: float = 1.0,
             batch_size: int = 64) -> torch.Tensor:
    """The mutual-information proxy ``mi_i`` of each response (``[n]``, fp64; definition in the
    module docstring): each response scored under its own prompt and ``k`` other distinct prompts
    of the batch (:func:`other_prompts`), ``k + 1`` forward passes per response, no gradient.
    The step value to record is the mean.

    Args:
        model: a causal LM (``input_ids`` in, ``.logits`` out; ``attention_mask`` and
            ``position_ids`` are passed when prompts are left-padded), in eval mode.
        prompt_ids: ``[n, P]`` left-padded prompt ids, one row per response (a group's rows repeat it).
        responses: ``[n, T]`` response ids, right-padded.
        prompt_mask, response_mask: True on real tokens (default: all real).
        k: other prompts per response (fewer when the batch has fewer distinct prompts).
        temperature: the sampling temperature (log-probs of the policy that sampled).
        batch_size: rows per forward.

    Example:
        >>> mi = mi_proxy(model, prompt_ids, responses, prompt_mask=pm, response_mask=rm)  # doctest: +SKIP
        >>> rec.record_batch(step, ..., mi_proxy=float(mi.mean()))                         # doctest: +SKIP
    """
    if prompt_ids.ndim != 2 or responses.ndim != 2:
        raise ValueError(f"prompt_ids and responses must be [n, P] and [n, T] token ids, got shapes "
                         f"{tuple(prompt_ids.shape)} and {tuple(responses.shape)}")
    if prompt_ids.shape[0] != responses.shape[0]:
        raise ValueError(f"prompt_ids has {prompt_ids.shape[0]} rows and responses {responses.shape[0]}: "
                         "pass one prompt row per response")
    for name, mask, like in (("prompt_mask", prompt_mask, prompt_ids), ("response_mask", response_mask, responses)):
        if mask is not None and mask.shape != like.shape:
            raise ValueError(f"{name} has shape {tuple(mask.shape)}, its ids {tuple(like.shape)}")
    pm = torch.ones_like(prompt_ids, dtype=torch.bool) if prompt_mask is None else prompt_mask.bool()
    rm = torch.ones_like(responses, dtype=torch.bool) if response_mask is None else response_mask.bool()
    rows = other_prompts(prompt_ids, pm, k).to(prompt_ids.device)
    n, c = rows.shape
    resp = torch.arange(n, device=prompt_ids.device).repeat_interleave(c)
    flat = rows.reshape(-1)
    lp = sequence_logprobs(model, prompt_ids[flat], pm[flat], responses[resp], rm[resp],
                           temperature=temperature, batch_size=batch_size)
    return mi_from_logprobs(lp.reshape(n, c))
