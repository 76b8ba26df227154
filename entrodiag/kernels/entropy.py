"""Fused Triton kernel: per-token entropy and log-probability of the sampled token.

One program per row of logits reads the row once, in blocks of ``BLOCK_V`` vocabulary entries,
and keeps three fp32 running values (online logsumexp): the running maximum ``m`` of ``x = z/T``,
``S = Σ exp(x − m)`` and ``W = Σ exp(x − m)·(x − m)``. When the maximum rises from ``m`` to ``m'``
both are rescaled by ``a = exp(m − m')``: ``S ← a·S`` and ``W ← a·(W + (m − m')·S)``. At the end
``H = log S − W/S`` and ``log p_k = x_k − m − log S``. Two fp32 values per row are written; no
temporary of the logits' size exists.

Non-finite logits give what :func:`entrodiag.metrics.entropy_and_logprobs` gives: ``-inf`` entries
are masked vocabulary entries (probability 0); a row with NaN or ``+inf``, or with every entry
``-inf``, gives NaN entropy and NaN log-prob. A token id outside ``[0, V)`` (e.g. a padding id of
-100) gives a NaN log-prob for that row instead of an out-of-bounds read; its entropy is computed.

Imports triton at import time: load it through :func:`entrodiag.kernels.load_entropy_kernel`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["fused_entropy_and_logprobs", "SUPPORTED_DTYPES"]

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_MAX_BLOCK_V = 4096


@triton.jit
def _entropy_logprob_kernel(
    logits_ptr,
    ids_ptr,
    entropy_ptr,
    logprob_ptr,
    inner,
    stride_outer,
    stride_inner,
    stride_v,
    vocab,
    inv_temperature,
    BLOCK_V: tl.constexpr,
    SCALE: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    base = logits_ptr + (row // inner) * stride_outer + (row % inner) * stride_inner
    neg_inf = float("-inf")
    m = tl.zeros([], dtype=tl.float32) + neg_inf  # running max of x = z / T
    s = tl.zeros([], dtype=tl.float32)  # Σ exp(x - m)
    w = tl.zeros([], dtype=tl.float32)  # Σ exp(x - m) · (x - m)
    for start in range(0, vocab, BLOCK_V):
        cols = start + tl.arange(0, BLOCK_V)
        x = tl.load(base + cols * stride_v, mask=cols < vocab, other=neg_inf).to(tl.float32)
        if SCALE:
            x = x * inv_temperature
        m_new = tl.maximum(m, tl.max(x, axis=0))
        ref = tl.where(m_new == neg_inf, 0.0, m_new)  # all -inf so far: any finite reference
        d = x - ref
        e = tl.exp(d)
        ed = tl.where(x == neg_inf, 0.0, e * d)  # masked entries add 0 (not 0·-inf); NaN stays NaN
        alpha = tl.exp(m - ref)
        shift = tl.where(s > 0, (m - ref) * s, 0.0)  # (m − m')·S, 0 while S is 0 (m may be -inf)
        w = alpha * (w + shift) + tl.sum(ed, axis=0)
        s = alpha * s + tl.sum(e, axis=0)
        m = m_new
    ref = tl.where(m == neg_inf, 0.0, m)
    log_s = tl.log(s)  # S = 0 (all -inf): -inf, and W/S = NaN below, as the chunked path gives
    entropy = log_s - w / s
    tok = tl.load(ids_ptr + row).to(tl.int64)
    in_range = (tok >= 0) & (tok < vocab)
    x_k = tl.load(base + tok * stride_v, mask=in_range, other=float("nan")).to(tl.float32)
    if SCALE:
        x_k = x_k * inv_temperature
    tl.store(entropy_ptr + row, entropy)
    tl.store(logprob_ptr + row, x_k - ref - log_s)


def _as_rows(logits: torch.Tensor):
    """``(tensor, outer, inner, stride_outer, stride_inner)`` addressing the rows of ``logits``
    without a copy, or ``None`` when its layout cannot be addressed that way."""
    if logits.ndim == 1:
        return logits, 1, 1, 0, 0
    if logits.ndim == 2:
        return logits, logits.shape[0], 1, logits.stride(0), 0
    if logits.ndim > 3:
        try:
            logits = logits.view(-1, *logits.shape[-2:])
        except RuntimeError:
            return None
    return logits, logits.shape[0], logits.shape[1], logits.stride(0), logits.stride(1)


def fused_entropy_and_logprobs(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    temperature: float = 1.0,
    *,
    block_v: int | None = None,
    num_warps: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Entropy (nats) and log-prob of ``token_ids`` under ``softmax(logits / temperature)``.

    The inputs are those :func:`entrodiag.metrics.entropy_and_logprobs` has already checked
    (shapes, dtypes, device, ``temperature > 0``). Returns ``(entropy, logprobs)``, fp32 with the
    shape of ``token_ids``, or ``None`` when this kernel does not take the input (a dtype outside
    fp32/bf16/fp16, or a layout it cannot address without a copy): the caller then uses its
    chunked path. ``block_v`` and ``num_warps`` override the launch configuration (benchmarks).
    """
    if logits.dtype not in SUPPORTED_DTYPES:
        return None
    rows = _as_rows(logits)
    if rows is None:
        return None
    tensor, outer, inner, stride_outer, stride_inner = rows
    vocab = logits.shape[-1]
    entropy = torch.empty(token_ids.shape, dtype=torch.float32, device=logits.device)
    logprobs = torch.empty_like(entropy)
    n_rows = entropy.numel()
    if n_rows == 0:
        return entropy, logprobs
    if block_v is None:
        block_v = min(_MAX_BLOCK_V, triton.next_power_of_2(vocab))
    if num_warps is None:
        num_warps = 8 if block_v >= 2048 else 4
    ids = token_ids.reshape(-1).contiguous()
    _entropy_logprob_kernel[(n_rows,)](
        tensor,
        ids,
        entropy,
        logprobs,
        inner,
        stride_outer,
        stride_inner,
        logits.stride(-1),
        vocab,
        1.0 / float(temperature),
        BLOCK_V=block_v,
        SCALE=float(temperature) != 1.0,
        num_warps=num_warps,
    )
    return entropy, logprobs
