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

__all__ = ["fused_entropy_and_logprobs", "fused_entropy_and_logprobs_from_hidden", "SUPPORTED_DTYPES"]

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
        enable_fp_fusion=True,  # FMAs, said explicitly (triton 3.9 warns while the default is implicit)
    )
    return entropy, logprobs


@triton.jit
def _hidden_entropy_logprob_kernel(
    hidden_ptr,
    weight_ptr,
    ids_ptr,
    entropy_ptr,
    logprob_ptr,
    n_rows,
    vocab,
    dim,
    stride_hn,
    stride_hd,
    stride_wv,
    stride_wd,
    inv_temperature,
    BLOCK_N: tl.constexpr,
    BLOCK_V: tl.constexpr,
    BLOCK_D: tl.constexpr,
    IEEE: tl.constexpr,
    WIDEN: tl.constexpr,
):
    # logits of BLOCK_N rows × BLOCK_V vocabulary entries at a time (hidden @ weightᵀ, fp32
    # accumulation), folded into the same online logsumexp as _entropy_logprob_kernel, per row
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    rows64 = rows.to(tl.int64)
    tok = tl.load(ids_ptr + rows64, mask=row_ok, other=-1).to(tl.int64)
    neg_inf = float("-inf")
    m = tl.zeros([BLOCK_N], dtype=tl.float32) + neg_inf
    s = tl.zeros([BLOCK_N], dtype=tl.float32)
    w = tl.zeros([BLOCK_N], dtype=tl.float32)
    x_k = tl.zeros([BLOCK_N], dtype=tl.float32)
    for v0 in range(0, vocab, BLOCK_V):
        cols = v0 + tl.arange(0, BLOCK_V)
        col_ok = cols < vocab
        acc = tl.zeros([BLOCK_N, BLOCK_V], dtype=tl.float32)
        for d0 in range(0, dim, BLOCK_D):
            ds = d0 + tl.arange(0, BLOCK_D)
            d_ok = ds < dim
            h = tl.load(
                hidden_ptr + rows64[:, None] * stride_hn + ds[None, :] * stride_hd,
                mask=row_ok[:, None] & d_ok[None, :],
                other=0.0,
            )
            wt = tl.load(
                weight_ptr + cols.to(tl.int64)[None, :] * stride_wv + ds[:, None] * stride_wd,
                mask=col_ok[None, :] & d_ok[:, None],
                other=0.0,
            )
            if WIDEN:  # bf16 under the interpreter: numpy has no bf16 product; bf16·bf16 is exact in fp32
                acc = tl.dot(h.to(tl.float32), wt.to(tl.float32), acc, input_precision="ieee")
            elif IEEE:
                acc = tl.dot(h, wt, acc, input_precision="ieee")
            else:
                acc = tl.dot(h, wt, acc)
        x = tl.where(col_ok[None, :], acc * inv_temperature, neg_inf)
        x_k += tl.sum(tl.where(cols[None, :] == tok[:, None], x, 0.0), axis=1)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        ref = tl.where(m_new == neg_inf, 0.0, m_new)
        d = x - ref[:, None]
        e = tl.exp(d)
        ed = tl.where(x == neg_inf, 0.0, e * d)
        alpha = tl.exp(m - ref)
        shift = tl.where(s > 0, (m - ref) * s, 0.0)
        w = alpha * (w + shift) + tl.sum(ed, axis=1)
        s = alpha * s + tl.sum(e, axis=1)
        m = m_new
    ref = tl.where(m == neg_inf, 0.0, m)
    log_s = tl.log(s)
    in_range = (tok >= 0) & (tok < vocab)
    x_k = tl.where(in_range, x_k, float("nan"))
    tl.store(entropy_ptr + rows64, log_s - w / s, mask=row_ok)
    tl.store(logprob_ptr + rows64, x_k - ref - log_s, mask=row_ok)


_INTERPRETED = type(_hidden_entropy_logprob_kernel).__name__ == "InterpretedFunction"


def fused_entropy_and_logprobs_from_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    token_ids: torch.Tensor,
    temperature: float = 1.0,
    *,
    block_n: int = 32,
    block_v: int = 64,
    block_d: int = 32,
    num_warps: int = 4,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Entropy and log-prob of ``token_ids`` under ``softmax(hidden @ weightᵀ / temperature)``,
    without materialising the logits: tiles of ``block_n × block_v`` logits are computed (fp32
    accumulation; fp32 inputs use IEEE fp32 products, not TF32) and folded into the online
    logsumexp at once.

    ``hidden`` is ``[..., D]``, ``weight`` ``[V, D]`` (the output head's weight, no bias),
    ``token_ids`` the leading shape of ``hidden``; inputs already checked by
    :func:`entrodiag.metrics.entropy_and_logprobs_from_hidden`. Returns fp32 ``(entropy,
    logprobs)`` shaped like ``token_ids``, or ``None`` for dtypes the kernel does not take.
    """
    if hidden.dtype not in SUPPORTED_DTYPES or weight.dtype != hidden.dtype:
        return None
    dim = hidden.shape[-1]
    rows = hidden.reshape(-1, dim)
    ids = token_ids.reshape(-1).contiguous()
    entropy = torch.empty(token_ids.shape, dtype=torch.float32, device=hidden.device)
    logprobs = torch.empty_like(entropy)
    n_rows = rows.shape[0]
    if n_rows == 0:
        return entropy, logprobs
    grid = (triton.cdiv(n_rows, block_n),)
    _hidden_entropy_logprob_kernel[grid](
        rows,
        weight,
        ids,
        entropy,
        logprobs,
        n_rows,
        weight.shape[0],
        dim,
        rows.stride(0),
        rows.stride(1),
        weight.stride(0),
        weight.stride(1),
        1.0 / float(temperature),
        BLOCK_N=block_n,
        BLOCK_V=block_v,
        BLOCK_D=block_d,
        IEEE=hidden.dtype == torch.float32,
        WIDEN=hidden.dtype == torch.bfloat16 and _INTERPRETED,
        num_warps=num_warps,
        enable_fp_fusion=True,
    )
    return entropy, logprobs
