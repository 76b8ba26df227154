"""Log-probabilities and entropy of sampled tokens straight from the last hidden states and the
output head, chunk by chunk, with gradient, never holding the whole ``[N, V]`` logits.

The update needs, per response token, log π(token) and (for an entropy bonus) the entropy H of
the distribution it was drawn from, both with gradient. Building the whole logits, a
``log_softmax`` and ``exp(logp)·logp`` costs about four fp32 copies of ``[N, V]`` (400 MB each
at 2,048 tokens × 49,152 entries). :class:`HeadLogprobs` computes the logits of ``chunk_rows``
rows at a time, keeps only log p(token) and H per row, and in the backward recomputes each
chunk's logits to form its gradient (as fused linear cross-entropy does: Liger Kernel, verl's
``linear_cross_entropy``), so the extra memory is two chunk buffers, reused from chunk to chunk,
plus the head's weight gradient. The price is one more head matmul per update; the passes over
the logits are few and in place (one fused ``log_softmax``, one ``exp``, two products), so on a
CPU the chunked update is faster than the whole-logits one (``benchmarks/README.md``, "The update
at SmolLM2 shapes").

With z = h·Wᵀ/T, p = softmax(z), log p_j = z_j − lse and H = −Σ p_j log p_j:
∂log p_k/∂z_j = δ_jk − p_j and ∂H/∂z_j = −p_j (log p_j + H).
"""

from __future__ import annotations

import torch

__all__ = ["HeadLogprobs", "chunk_rows_for", "head_logprobs", "linear_head"]

# fp32 elements per chunk buffer (128 MB; two buffers at a time): row blocks large enough for an
# efficient matmul, few enough that adding each chunk's share into the weight gradient is cheap
# (on a 2-core CPU at SmolLM2's head, 640-row chunks took less time than 320 or 1,024)
_CHUNK_ELEMENTS = 1 << 25


def chunk_rows_for(vocab: int) -> int:
    """Default rows per chunk for a vocabulary of ``vocab`` (a multiple of 64 when more than 64
    fit: whole blocks for the matmul); the same on every device."""
    rows = max(1, _CHUNK_ELEMENTS // vocab)
    return rows - rows % 64 if rows > 64 else rows


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


def _log_softmax_into(z: torch.Tensor, out: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
                      temperature: float) -> torch.Tensor:
    """log softmax(``h @ wᵀ / T``) of one chunk into ``out``, through ``z`` (both ``[rows, V]`` in
    the accumulation dtype; ``h`` and ``w`` already in the compute dtype)."""
    with torch.autocast(h.device.type, enabled=False):
        if h.dtype == z.dtype:
            torch.mm(h, w.T, out=z)
        else:  # bf16/fp16 products, then fp32
            z.copy_(h @ w.T)
    if temperature != 1.0:
        z.div_(temperature)
    return torch.log_softmax(z, -1, out=out)


class HeadLogprobs(torch.autograd.Function):
    """``(logp, entropy)`` of ``ids`` under softmax(hidden @ weightᵀ / T), differentiable in
    ``hidden`` and ``weight``; ``entropy`` is an empty tensor unless ``need_entropy``. Both are
    fp32 (fp64 for fp64 inputs).

    ``hidden`` is ``[N, D]``, ``weight`` ``[V, D]``, ``ids`` ``[N]``. Use :func:`head_logprobs`.
    """

    @staticmethod
    def forward(ctx, hidden, weight, ids, temperature: float, need_entropy: bool, chunk_rows: int):
        cd = compute_dtype(hidden)
        acc = _acc_dtype(cd)
        h, w = hidden.detach().to(cd), weight.detach().to(cd)
        n, rows = h.shape[0], max(1, min(chunk_rows, h.shape[0]))
        logp = torch.empty(n, dtype=acc, device=h.device)
        entropy = torch.empty(n if need_entropy else 0, dtype=acc, device=h.device)
        z = torch.empty(rows, w.shape[0], dtype=acc, device=h.device)
        logsm = torch.empty_like(z)
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            lp = _log_softmax_into(z[: hi - lo], logsm[: hi - lo], h[lo:hi], w, temperature)
            torch.gather(lp, 1, ids[lo:hi, None], out=logp[lo:hi, None])
            if need_entropy:  # H = −Σ p·log p, p formed in the logits' buffer
                p = torch.exp(lp, out=z[: hi - lo]).mul_(lp)
                torch.sum(p, -1, out=entropy[lo:hi]).neg_()
        ctx.save_for_backward(hidden, weight, ids, entropy)
        ctx.temperature, ctx.chunk_rows, ctx.cd = temperature, rows, cd
        return logp, entropy

    @staticmethod
    def backward(ctx, g_logp, g_entropy):
        hidden, weight, ids, entropy = ctx.saved_tensors
        cd, T, rows = ctx.cd, ctx.temperature, ctx.chunk_rows
        acc = _acc_dtype(cd)
        h, w = hidden.detach().to(cd), weight.detach().to(cd)
        n = h.shape[0]
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        with_entropy = g_entropy is not None and entropy.numel() > 0
        g_logp = torch.zeros(n, dtype=acc, device=h.device) if g_logp is None else g_logp.to(acc)
        if with_entropy:  # ∂/∂z = g·onehot − p·(g + g_H·(log p + H)) = g·onehot + p·(a + b·log p)
            g_h = g_entropy.to(acc)
            a, b = torch.addcmul(g_logp, g_h, entropy).neg_(), g_h.neg()
        else:  # ∂/∂z = g·onehot − p·g
            a = g_logp.neg()
        grad_h = torch.empty(n, h.shape[1], dtype=acc, device=h.device) if need_h else None
        grad_w = (torch.empty if n else torch.zeros)(weight.shape, dtype=acc, device=weight.device) if need_w else None
        z = torch.empty(rows, w.shape[0], dtype=acc, device=h.device)
        logsm = torch.empty_like(z)
        for lo in range(0, n, rows):
            hi = min(lo + rows, n)
            lp = _log_softmax_into(z[: hi - lo], logsm[: hi - lo], h[lo:hi], w, T)
            grad = torch.exp(lp, out=z[: hi - lo])  # p
            if with_entropy:
                grad.mul_(lp.mul_(b[lo:hi, None]).add_(a[lo:hi, None]))
            else:
                grad.mul_(a[lo:hi, None])
            grad.scatter_add_(1, ids[lo:hi, None], g_logp[lo:hi, None])  # + g at the sampled token
            grad = grad.to(cd)
            with torch.autocast(h.device.type, enabled=False):
                if need_h:
                    if cd == acc:
                        torch.mm(grad, w, out=grad_h[lo:hi])
                    else:
                        grad_h[lo:hi] = grad @ w
                if need_w and cd == acc:
                    if lo == 0:
                        torch.mm(grad.T, h[lo:hi], out=grad_w)
                    else:
                        grad_w.addmm_(grad.T, h[lo:hi])
                elif need_w:  # bf16/fp16 products, summed into the fp32 gradient
                    if lo == 0:
                        grad_w.copy_(grad.T @ h[lo:hi])
                    else:
                        grad_w.add_(grad.T @ h[lo:hi])
        if T != 1.0:  # ∂z/∂(h, W) carry 1/T: applied once to the [N, D] and [V, D] results
            for g in (grad_h, grad_w):
                if g is not None:
                    g.div_(T)
        return (grad_h.to(hidden.dtype) if need_h else None, grad_w.to(weight.dtype) if need_w else None,
                None, None, None, None)


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
    rows = chunk_rows or chunk_rows_for(weight.shape[0])
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
