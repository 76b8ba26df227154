"""Log-probabilities and entropy of sampled tokens straight from the last hidden states and the
output head, chunk by chunk, with gradient, never holding the whole ``[N, V]`` logits.

The update needs, per response token, log π(token) and (for an entropy bonus) the entropy H of
the distribution it was drawn from, both with gradient. Building the whole logits, a
``log_softmax`` and ``exp(logp)·logp`` costs about four fp32 copies of ``[N, V]`` (400 MB each
at 2,048 tokens × 49,152 entries). :class:`HeadLogprobs` computes the logits of ``chunk_rows``
rows at a time, keeps only ``logsumexp``, log p(token) and H per row, and in the backward
recomputes each chunk's logits to form its gradient (as fused linear cross-entropy does: Liger
Kernel, verl's ``linear_cross_entropy``), so the extra memory is a few chunks plus the head's
weight gradient. The price is one more head matmul per update.

With z = h·Wᵀ/T, p = softmax(z), log p_j = z_j − lse and H = lse − Σ p_j z_j:
∂log p_k/∂z_j = δ_jk − p_j and ∂H/∂z_j = −p_j (log p_j + H).
"""

from __future__ import annotations

import torch

__all__ = ["HeadLogprobs", "chunk_rows_for", "head_logprobs", "linear_head"]

# fp32 elements per chunk of logits: 32 MB per buffer on CPU (few enough chunks that adding each
# chunk's share into the weight gradient stays cheap), 128 MB on a GPU; two buffers at a time
_CHUNK_ELEMENTS = {"cpu": 1 << 23, "cuda": 1 << 25}


def chunk_rows_for(vocab: int, device: torch.device) -> int:
    """Default rows per chunk for a vocabulary of ``vocab`` on ``device``."""
    return max(1, _CHUNK_ELEMENTS.get(device.type, _CHUNK_ELEMENTS["cuda"]) // vocab)


def compute_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype of the head's matmul: autocast's when it is on for this device (as the model's
    own head would run), else the hidden states'."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return hidden.dtype


def _acc_dtype(cd: torch.dtype) -> torch.dtype:
    """fp32 for the softmax sums (fp64 inputs keep fp64)."""
    return torch.float64 if cd == torch.float64 else torch.float32


def _chunk_logits(h: torch.Tensor, w: torch.Tensor, temperature: float) -> torch.Tensor:
    """``h @ wᵀ / T`` of one chunk in fp32 (``h`` and ``w`` already in the compute dtype)."""
    with torch.autocast(h.device.type, enabled=False):
        z = (h @ w.T).to(_acc_dtype(h.dtype))
    return z if temperature == 1.0 else z.div_(temperature)


class HeadLogprobs(torch.autograd.Function):
    """``(logp, entropy)`` of ``ids`` under softmax(hidden @ weightᵀ / T), differentiable in
    ``hidden`` and ``weight``; ``entropy`` is an empty tensor unless ``need_entropy``. Both are
    fp32 (fp64 for fp64 inputs).

    ``hidden`` is ``[N, D]``, ``weight`` ``[V, D]``, ``ids`` ``[N]``. Use :func:`head_logprobs`.
    """

    @staticmethod
    def forward(ctx, hidden, weight, ids, temperature: float, need_entropy: bool, chunk_rows: int):
        cd = compute_dtype(hidden)
        h, w = hidden.detach().to(cd), weight.detach().to(cd)
        n = h.shape[0]
        lse = torch.empty(n, dtype=_acc_dtype(cd), device=h.device)
        logp = torch.empty_like(lse)
        entropy = torch.empty(n if need_entropy else 0, dtype=lse.dtype, device=h.device)
        for lo in range(0, n, chunk_rows):
            hi = min(lo + chunk_rows, n)
            z = _chunk_logits(h[lo:hi], w, temperature)
            lse[lo:hi] = torch.logsumexp(z, -1)
            logp[lo:hi] = z.gather(-1, ids[lo:hi, None]).squeeze(-1) - lse[lo:hi]
            if need_entropy:  # H = lse − Σ p·z, with p = exp(z − lse) formed in place
                zp = (z - lse[lo:hi, None]).exp_().mul_(z)
                entropy[lo:hi] = lse[lo:hi] - zp.sum(-1)
        ctx.save_for_backward(hidden, weight, ids, lse, entropy)
        ctx.temperature, ctx.chunk_rows, ctx.cd = temperature, chunk_rows, cd
        return logp, entropy

    @staticmethod
    def backward(ctx, g_logp, g_entropy):
        hidden, weight, ids, lse, entropy = ctx.saved_tensors
        cd, T, rows = ctx.cd, ctx.temperature, ctx.chunk_rows
        h, w = hidden.detach().to(cd), weight.detach().to(cd)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=lse.dtype, device=weight.device) if need_w else None
        with_entropy = g_entropy is not None and entropy.numel() > 0
        g_logp = torch.zeros_like(lse) if g_logp is None else g_logp.to(lse.dtype)
        for lo in range(0, h.shape[0], rows):
            hi = min(lo + rows, h.shape[0])
            z = _chunk_logits(h[lo:hi], w, T).sub_(lse[lo:hi, None])  # log p, recomputed
            p = torch.exp(z)
            gl = g_logp[lo:hi, None]
            if with_entropy:  # −p·(g_logp + g_H·(log p + H))
                coef = z.add_(entropy[lo:hi, None]).mul_(g_entropy[lo:hi, None].to(lse.dtype)).add_(gl)
                grad = p.mul_(coef).neg_()
            else:
                grad = p.mul_(gl).neg_()
            grad.scatter_add_(1, ids[lo:hi, None], gl)  # + g_logp at the sampled token
            if T != 1.0:
                grad.div_(T)
            grad = grad.to(cd)
            with torch.autocast(h.device.type, enabled=False):
                if need_h:
                    grad_h[lo:hi] = grad @ w
                if need_w and cd == lse.dtype:
                    grad_w.addmm_(grad.T, h[lo:hi])
                elif need_w:  # bf16/fp16 products, summed into the fp32 gradient
                    grad_w.add_(grad.T @ h[lo:hi])
        if need_w:
            grad_w = grad_w.to(weight.dtype)
        return grad_h, grad_w, None, None, None, None


def head_logprobs(hidden: torch.Tensor, weight: torch.Tensor, ids: torch.Tensor, temperature: float = 1.0, *,
                  need_entropy: bool = False, chunk_rows: int | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-prob of ``ids`` and (``need_entropy``) the entropy under softmax(hidden @ weightᵀ / T).

    ``hidden`` is ``[..., D]`` (last hidden states after the final norm), ``weight`` the output
    head's ``[V, D]`` weight (no bias), ``ids`` the leading shape of ``hidden``. Both results are
    fp32, shaped like ``ids``, with gradient to ``hidden`` and ``weight``; the entropy is None
    unless asked for. Under autocast the head's matmul runs in autocast's dtype, as the model's
    own head would. At most ``chunk_rows`` rows of logits exist at a time (default:
    :func:`chunk_rows_for`).
    """
    if hidden.shape[:-1] != ids.shape or weight.ndim != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"head_logprobs: hidden {tuple(hidden.shape)}, weight {tuple(weight.shape)} and ids "
                         f"{tuple(ids.shape)} must be [..., D], [V, D] and [...]")
    rows = chunk_rows or chunk_rows_for(weight.shape[0], weight.device)
    flat = hidden.reshape(-1, hidden.shape[-1])
    logp, entropy = HeadLogprobs.apply(flat, weight, ids.reshape(-1).long(), float(temperature), need_entropy, rows)
    return logp.view(ids.shape), entropy.view(ids.shape) if need_entropy else None


@torch.no_grad()
def linear_head(model, input_ids: torch.Tensor) -> torch.Tensor | None:
    """The output head's weight when the model's logits are exactly ``last hidden state @ Wᵀ``
    (a bias-free linear head: Llama, Qwen, SmolLM2, the tiny model), checked once on
    ``input_ids`` ``[1, L]``; None for any other head (soft-capped or scaled logits, a bias), which
    then keeps the whole-logits path."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or head.bias is not None:
        return None
    try:
        out = model(input_ids=input_ids, output_hidden_states=True)
        hidden = out.hidden_states[-1]
    except (TypeError, AttributeError, IndexError):
        return None
    expected = (hidden.float() @ head.weight.float().T)
    return head.weight if torch.allclose(out.logits.float(), expected, rtol=1e-4, atol=1e-4) else None
