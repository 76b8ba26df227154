"""Pure tensor math for entropy dynamics (torch only; imports nothing else of the project).

Every function works on the tensors' own device and never synchronises with it unless its
docstring says so, so the Recorder can call them in a training loop's hot path.

Definitions (with their sources in docs/definitions.md):

- token entropy H_t = logsumexp(z) − Σ softmax(z)·z, in nats, fp32 (verl ``entropy_from_logits``);
- token covariance (Cui et al. 2025, arXiv 2505.22617, Eq. 10):
  cov_i = (logp_i − mean logp)·(A_i − mean A) over the valid tokens of a batch;
- entropy discriminator (Wang et al. 2026, arXiv 2602.03392): S* = p_k·(H + log p_k);
- window entropy (ARES, arXiv 2510.08457): mean entropy of tokens t..t+w−1, w = 4;
- forking tokens (Wang et al. 2025, "Beyond the 80/20 Rule", arXiv 2506.01939):
  tokens at or above the batch's 80th entropy percentile;
- zero-advantage groups (COPO, arXiv 2508.04138): groups whose rewards are all equal.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import torch

__all__ = [
    "DEFAULT_HIST_EDGES",
    "HIGH_ENTROPY_THRESHOLD",
    "entropy_and_logprobs",
    "entropy_and_logprobs_from_hidden",
    "entropy_discriminator",
    "entropy_histogram",
    "forking_mask",
    "group_advantages",
    "hwe_mask",
    "hwe_spans",
    "masked_quantiles",
    "per_token",
    "token_covariance",
    "window_entropy",
    "zero_advantage_group_frac",
]

#: Share of tokens above this entropy (nats) is the "high-entropy" share: in Qwen3-8B only 20% of
#: tokens exceed 0.672 nats (Wang et al. 2025), so it is the literature's forking-token scale.
HIGH_ENTROPY_THRESHOLD = 0.672

#: Fixed entropy-histogram bin edges in nats. Fine below 0.01 (over half of the tokens of a
#: reasoning model sit there) and around 0.672; the last bin is open-ended ([12, inf)).
DEFAULT_HIST_EDGES: tuple[float, ...] = (
    0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.672, 0.8, 1.0,
    1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, math.inf,
)

# Elements per chunk of fp32 temporaries: 16 MB per buffer on CPU (cache-friendly), 128 MB on
# a GPU (few kernel launches, little memory next to the logits). Two buffers per call.
_CHUNK_ELEMENTS = {"cpu": 1 << 22, "cuda": 1 << 25}


def _check_same_shape(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{name_b} must have the same shape as {name_a}: "
            f"{name_a} is {tuple(a.shape)}, {name_b} is {tuple(b.shape)}"
        )


@torch.no_grad()
def entropy_and_logprobs(
    logits: torch.Tensor,
    token_ids: torch.Tensor,
    *,
    chunk_rows: int | None = None,
    temperature: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token entropy (nats) and log-probability of ``token_ids``, both fp32.

    ``logits`` has shape ``[..., V]`` (any leading shape, fp32/bf16/fp16/fp64) and ``token_ids``
    the leading shape ``[...]``; ``logits[..., v]`` is the distribution ``token_ids[...]`` was drawn
    from (already shifted). Runs under ``no_grad`` over row chunks, so at most one chunk of fp32
    temporaries (``chunk_rows × V``, two of them) exists at a time whatever the input size; a
    non-contiguous input is walked along its leading dimension instead of being copied. Logits of
    ``-inf`` (masked vocabulary entries) are allowed; a row with NaN or ``+inf`` gives NaN.

    On CUDA tensors (fp32/bf16/fp16) with triton importable, a fused Triton kernel
    (:mod:`entrodiag.kernels.entropy`) computes the same values in one read of the logits and no
    temporaries (``chunk_rows`` does not apply there); a token id outside ``[0, V)`` then gives a
    NaN log-prob instead of a device-side error. If the kernel fails, one warning is given and
    this process uses the chunked path from then on. ``ENTRODIAG_DISABLE_TRITON=1`` keeps the
    chunked path.

    Args:
        logits: unnormalised scores, ``[..., V]``.
        token_ids: integer ids in ``[0, V)``, ``[...]``.
        chunk_rows: rows per chunk; default 4M elements per chunk on CPU, 32M on a GPU.
        temperature: divide the logits by this before the softmax (verl's ``actor/entropy`` uses
            the rollout temperature; Cui et al. force 1).

    Returns:
        ``(entropy, logprobs)``, each fp32 with the shape of ``token_ids``.

    Example:
        >>> z = torch.zeros(2, 3, 4)  # uniform over 4 tokens
        >>> h, lp = entropy_and_logprobs(z, torch.zeros(2, 3, dtype=torch.long))
        >>> round(h[0, 0].item(), 4), round(lp[0, 0].item(), 4)
        (1.3863, -1.3863)
    """
    if not isinstance(logits, torch.Tensor) or not isinstance(token_ids, torch.Tensor):
        raise TypeError("logits and token_ids must be torch tensors")
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have shape [..., V] with V >= 1, got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if token_ids.is_floating_point() or token_ids.is_complex() or token_ids.dtype == torch.bool:
        raise ValueError(f"token_ids must be an integer tensor, got dtype {token_ids.dtype}")
    if tuple(logits.shape[:-1]) != tuple(token_ids.shape):
        raise ValueError(
            "token_ids must have the leading shape of logits: "
            f"logits is {tuple(logits.shape)}, token_ids is {tuple(token_ids.shape)}"
        )
    if token_ids.device != logits.device:
        raise ValueError(f"token_ids is on {token_ids.device}, logits on {logits.device}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    vocab = logits.shape[-1]
    if token_ids.device.type == "cpu" and token_ids.numel():
        lo, hi = int(token_ids.min()), int(token_ids.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"token_ids must lie in [0, {vocab}), found values in [{lo}, {hi}]")
    if logits.device.type == "cuda":
        fused = _fused_entropy("logits", logits, token_ids, float(temperature))
        if fused is not None:
            return fused
    if chunk_rows is None:
        budget = _CHUNK_ELEMENTS.get(logits.device.type, _CHUNK_ELEMENTS["cuda"])
        chunk_rows = max(1, budget // vocab)
    elif chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")

    entropy = torch.empty(token_ids.shape, dtype=torch.float32, device=logits.device)
    logprobs = torch.empty_like(entropy)
    rows = min(chunk_rows, max(1, token_ids.numel()))
    # two fp32 chunk buffers, reused for every chunk (no allocator churn, a flat peak)
    bufs = torch.empty(2, rows, vocab, dtype=torch.float32, device=logits.device)
    _fill(logits, token_ids.long(), entropy, logprobs, bufs, float(temperature))
    return entropy, logprobs


_fused_failed: dict[str, bool] = {}


def _fused_entropy(kind: str, *args):
    """The fused kernel's ``(entropy, logprobs)`` (``kind`` "logits" or "hidden"), or ``None``
    for the chunked path.

    The only import of the project from this module (lazy, docs/architecture.md: ``kernels/`` sits behind
    this module's function signatures).
    """
    if _fused_failed.get(kind) or os.environ.get("ENTRODIAG_DISABLE_TRITON", "") not in ("", "0"):
        return None
    from entrodiag import kernels

    kernel = kernels.load_entropy_kernel(kind)
    if kernel is None:
        return None
    try:
        return kernel(*args)
    except Exception as exc:  # a compiler or driver problem must not take a training run down
        _fused_failed[kind] = True
        warnings.warn(
            f"entrodiag: the fused Triton entropy kernel ({kind}) failed ({type(exc).__name__}: "
            f"{exc}); using the chunked PyTorch path for the rest of this process "
            "(set ENTRODIAG_DISABLE_TRITON=1 to skip the kernel)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


@torch.no_grad()
def entropy_and_logprobs_from_hidden(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    token_ids: torch.Tensor,
    *,
    temperature: float = 1.0,
    chunk_rows: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`entropy_and_logprobs` of the logits ``hidden @ weightᵀ``, without holding them all.

    ``hidden`` is ``[..., D]`` (the last hidden states, after the final norm), ``weight`` the
    output head's ``[V, D]`` weight (no bias), in the same dtype and on the same device;
    ``token_ids`` has the leading shape of ``hidden``. On CUDA with triton, a fused kernel
    computes logit tiles (fp32 accumulation) and folds them into an online logsumexp: no logits
    exist in memory at all. Elsewhere, row chunks of logits are computed in the input dtype (as the
    model's head would) and passed to :func:`entropy_and_logprobs`, so at most one chunk of
    logits exists at a time.

    Returns ``(entropy, logprobs)``, fp32 with the shape of ``token_ids``.
    """
    if not all(isinstance(t, torch.Tensor) for t in (hidden, weight, token_ids)):
        raise TypeError("hidden, weight and token_ids must be torch tensors")
    if hidden.ndim < 1 or not hidden.is_floating_point():
        raise ValueError(f"hidden must be a floating-point [..., D] tensor, got {hidden.dtype} {tuple(hidden.shape)}")
    if weight.ndim != 2 or weight.shape[1] != hidden.shape[-1] or weight.shape[0] < 1:
        raise ValueError(
            f"weight must be [V, D] with D = hidden's last dimension {hidden.shape[-1]}, got {tuple(weight.shape)}"
        )
    if weight.dtype != hidden.dtype or weight.device != hidden.device:
        raise ValueError(
            f"weight ({weight.dtype}, {weight.device}) must match hidden ({hidden.dtype}, {hidden.device})"
        )
    if tuple(hidden.shape[:-1]) != tuple(token_ids.shape):
        raise ValueError(
            "token_ids must have the leading shape of hidden: "
            f"hidden is {tuple(hidden.shape)}, token_ids is {tuple(token_ids.shape)}"
        )
    if token_ids.is_floating_point() or token_ids.is_complex() or token_ids.dtype == torch.bool:
        raise ValueError(f"token_ids must be an integer tensor, got dtype {token_ids.dtype}")
    if token_ids.device != hidden.device:
        raise ValueError(f"token_ids is on {token_ids.device}, hidden on {hidden.device}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    vocab = weight.shape[0]
    if token_ids.device.type == "cpu" and token_ids.numel():
        lo, hi = int(token_ids.min()), int(token_ids.max())
        if lo < 0 or hi >= vocab:
            raise ValueError(f"token_ids must lie in [0, {vocab}), found values in [{lo}, {hi}]")
    if hidden.device.type == "cuda":
        fused = _fused_entropy("hidden", hidden, weight, token_ids, float(temperature))
        if fused is not None:
            return fused
    if chunk_rows is None:
        chunk_rows = max(1, _CHUNK_ELEMENTS.get(hidden.device.type, _CHUNK_ELEMENTS["cuda"]) // vocab)
    elif chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    rows = hidden.reshape(-1, hidden.shape[-1])
    ids = token_ids.reshape(-1)
    entropy = torch.empty(ids.shape, dtype=torch.float32, device=hidden.device)
    logprobs = torch.empty_like(entropy)
    for start in range(0, rows.shape[0], chunk_rows):
        stop = min(start + chunk_rows, rows.shape[0])
        entropy[start:stop], logprobs[start:stop] = entropy_and_logprobs(
            rows[start:stop] @ weight.T, ids[start:stop], temperature=temperature
        )
    return entropy.view(token_ids.shape), logprobs.view(token_ids.shape)


def _fill(logits, ids, entropy, logprobs, bufs, temperature) -> None:
    """Write entropies and log-probs of ``logits`` into the preallocated outputs."""
    vocab = logits.shape[-1]
    try:
        rows = logits.view(-1, vocab)
    except RuntimeError:  # not viewable as rows without a copy: walk the leading dimension
        for i in range(logits.shape[0]):
            _fill(logits[i], ids[i], entropy[i], logprobs[i], bufs, temperature)
        return
    flat_ids, flat_h, flat_lp = ids.reshape(-1), entropy.view(-1), logprobs.view(-1)
    chunk_rows = bufs.shape[1]
    for start in range(0, rows.shape[0], chunk_rows):
        stop = min(start + chunk_rows, rows.shape[0])
        n = stop - start
        flat_h[start:stop], flat_lp[start:stop] = _chunk_entropy(
            rows[start:stop], flat_ids[start:stop], bufs[0, :n], bufs[1, :n], temperature
        )


def _chunk_entropy(chunk, ids, s, p, temperature: float):
    # s = (z - max z) / T, with H = log Σe^s − Σ softmax(s)·s and log p_k = s_k − log Σe^s.
    # Six passes over the chunk in all (fewer passes, fewer multi-threaded regions on CPU).
    if chunk.dtype == torch.float32:
        torch.sub(chunk, chunk.amax(dim=-1, keepdim=True), out=s)  # no separate copy
    else:  # converting first is faster than reducing and subtracting in bf16/fp16
        s.copy_(chunk)
        s.sub_(s.amax(dim=-1, keepdim=True))
    if temperature != 1.0:
        s.div_(temperature)
    s_k = s.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    torch.exp(s, out=p)
    total = p.sum(dim=-1)
    p.mul_(s)
    log_total = total.log()
    # nansum: a -inf logit (masked entry) has p = 0 and p·s = 0·(-inf) = NaN, which counts as 0.
    # A NaN or +inf logit makes the row's total NaN, so its entropy stays NaN.
    return log_total - p.nansum(dim=-1) / total, s_k - log_total


def entropy_discriminator(entropy: torch.Tensor, logprobs: torch.Tensor) -> torch.Tensor:
    """S* = p_k·(H + log p_k) per token (Wang et al. 2026, arXiv 2602.03392).

    A logit step ε on the sampled token changes the distribution's entropy by −ε·S* + O(ε²):
    rewarding a token with S* > 0 lowers entropy, penalising it raises entropy.
    """
    _check_same_shape("entropy", entropy, "logprobs", logprobs)
    return logprobs.exp() * (entropy + logprobs)


def masked_quantiles(values: torch.Tensor, mask: torch.Tensor, qs: Sequence[float]) -> torch.Tensor:
    """Quantiles of ``values[mask]`` with linear interpolation (as ``torch.quantile``).

    Sorts once and gathers, without a host synchronisation and without ``torch.quantile``'s
    2^24-element limit. Returns a float tensor of ``len(qs)`` values, NaN when the mask is empty.
    """
    _check_same_shape("values", values, "mask", mask)
    q = torch.tensor(list(qs), dtype=torch.float32, device=values.device)
    if values.numel() == 0:
        return torch.full_like(q, torch.nan)
    ordered = torch.where(mask, values.float(), torch.inf).reshape(-1).sort().values
    n = mask.sum()
    pos = q * (n - 1).clamp(min=0)
    lo, hi = pos.floor().long(), pos.ceil().long()
    out = ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
    return torch.where(n > 0, out, torch.nan)


def token_covariance(
    logprobs: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Centered product of log-prob and advantage per valid token, and its mean.

    cov_i = (logp_i − mean logp)·(A_i − mean A), means over the N valid tokens (Cui et al. 2025,
    Eq. 10). ``advantages`` is per token (shape of ``logprobs``) or per response (``[B]`` for
    ``[B, T]`` log-probs). Returns ``(cov, cov_mean)``: ``cov`` is 0 at invalid positions,
    ``cov_mean`` is a 0-d tensor, NaN when no token is valid.
    """
    _check_same_shape("logprobs", logprobs, "mask", mask)
    adv = per_token(advantages, logprobs, "advantages")
    m = mask.to(torch.float32)
    n = m.sum()
    lp = torch.where(mask, logprobs.float(), 0.0)
    a = torch.where(mask, adv.float(), 0.0)
    cov = (lp - lp.sum() / n) * (a - a.sum() / n) * m
    return cov, cov.sum() / n


def per_token(values: torch.Tensor, like: torch.Tensor, name: str = "values") -> torch.Tensor:
    """Broadcast per-response values ``[B]`` to per-token ``[B, T]``, or check the shape."""
    if values.shape == like.shape:
        return values
    if like.ndim == 2 and values.shape == like.shape[:1]:
        return values.unsqueeze(-1).expand_as(like)
    raise ValueError(
        f"{name} must be per token {tuple(like.shape)} or per response {tuple(like.shape[:1])}, "
        f"got {tuple(values.shape)}"
    )


def window_entropy(entropy: torch.Tensor, mask: torch.Tensor, window: int = 4) -> torch.Tensor:
    """Mean entropy of the valid tokens among positions t..t+w−1 of each row (ARES, w = 4).

    ``entropy`` and ``mask`` are ``[B, T]``. Near the end of a response the window holds fewer
    tokens and the mean is over those; invalid positions get 0.
    """
    _check_same_shape("entropy", entropy, "mask", mask)
    if entropy.ndim != 2:
        raise ValueError(f"entropy must be [B, T], got {tuple(entropy.shape)}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    m = mask.to(torch.float64)
    h = torch.where(mask, entropy.double(), 0.0)
    zero = h.new_zeros(h.shape[0], 1)
    csum_h = torch.cat([zero, h.cumsum(-1)], dim=-1)
    csum_m = torch.cat([zero, m.cumsum(-1)], dim=-1)
    t = torch.arange(h.shape[1], device=h.device)
    end = (t + window).clamp(max=h.shape[1])
    total = csum_h[:, end] - csum_h[:, t]
    count = csum_m[:, end] - csum_m[:, t]
    out = torch.where(mask & (count > 0), total / count.clamp(min=1), 0.0)
    return out.to(torch.float32)


def hwe_mask(
    win_entropy: torch.Tensor, mask: torch.Tensor, threshold: float | torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """High-window-entropy positions: window entropy strictly above ``threshold``.

    ``threshold`` defaults to the 95th percentile of window entropy over the valid positions of
    the batch (ARES uses a P95 threshold). Returns ``(is_hwe, threshold)``.
    """
    if threshold is None:
        threshold = masked_quantiles(win_entropy, mask, [0.95])[0]
    return mask & (win_entropy > threshold), torch.as_tensor(threshold, device=win_entropy.device)


def hwe_spans(is_hwe: torch.Tensor) -> list[tuple[int, int, int]]:
    """Maximal runs of HWE positions as ``(row, start, end)`` with ``end`` exclusive (host side)."""
    flags = is_hwe.detach().to("cpu", torch.int8)
    if flags.ndim == 1:
        flags = flags.unsqueeze(0)
    pad = torch.zeros(flags.shape[0], 1, dtype=torch.int8)
    edges = torch.diff(torch.cat([pad, flags, pad], dim=1), dim=1)
    starts = (edges == 1).nonzero().tolist()
    ends = (edges == -1).nonzero().tolist()
    return [(r, s, e) for (r, s), (_, e) in zip(starts, ends)]


def forking_mask(
    entropy: torch.Tensor, mask: torch.Tensor, quantile: float = 0.8
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forking tokens: valid tokens with entropy at or above the batch's ``quantile`` (0.8).

    Returns ``(is_forking, threshold)``; the threshold is NaN (and no token forks) when the mask
    is empty.
    """
    threshold = masked_quantiles(entropy, mask, [quantile])[0]
    return mask & (entropy >= threshold), threshold


def entropy_histogram(
    entropy: torch.Tensor, mask: torch.Tensor, edges: Sequence[float] = DEFAULT_HIST_EDGES
) -> torch.Tensor:
    """Counts of valid tokens per fixed bin ``[edges[i], edges[i+1])``, int64, on the device.

    Values below the first edge count in the first bin, values at or above the last edge in the
    last bin.
    """
    _check_same_shape("entropy", entropy, "mask", mask)
    if len(edges) < 2:
        raise ValueError("edges needs at least two values")
    inner = torch.tensor(list(edges[1:-1]), dtype=torch.float32, device=entropy.device)
    bins = torch.bucketize(entropy.float().reshape(-1), inner, right=True)
    weights = mask.reshape(-1).to(torch.int64)
    return torch.zeros(len(edges) - 1, dtype=torch.int64, device=entropy.device).scatter_add_(
        0, bins, weights
    )


def _group_index(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    _, inverse = torch.unique(group_ids, return_inverse=True)
    n_groups = int(inverse.max()) + 1 if inverse.numel() else 0
    return inverse, n_groups


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, *, eps: float = 1e-6, scale: bool = True
) -> torch.Tensor:
    """GRPO advantages: (r − mean of the group) / (std of the group + eps).

    The std is the unbiased one (as TRL's GRPOTrainer); a group of one response has std 0 and
    advantage 0. ``scale=False`` gives the Dr. GRPO form (mean-centred only). Synchronises once
    (to count groups).
    """
    _check_same_shape("rewards", rewards, "group_ids", group_ids)
    inverse, n_groups = _group_index(group_ids)
    r = rewards.double()
    count = torch.zeros(n_groups, dtype=torch.float64, device=r.device).index_add_(
        0, inverse, torch.ones_like(r)
    )
    mean = torch.zeros_like(count).index_add_(0, inverse, r) / count
    centred = r - mean[inverse]
    if not scale:
        return centred.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
    sq = torch.zeros_like(count).index_add_(0, inverse, centred**2)
    std = (sq / (count - 1).clamp(min=1)).sqrt()
    adv = centred / (std[inverse] + eps)
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def zero_advantage_group_frac(
    rewards: torch.Tensor, group_ids: torch.Tensor, *, tol: float = 1e-8
) -> tuple[torch.Tensor, int]:
    """Share of groups whose rewards are all equal (no learning signal; COPO).

    Returns ``(fraction, n_groups)``; the fraction is a 0-d tensor (NaN with no groups).
    Synchronises once (to count groups).
    """
    _check_same_shape("rewards", rewards, "group_ids", group_ids)
    inverse, n_groups = _group_index(group_ids)
    r = rewards.double()
    lo = torch.full((n_groups,), torch.inf, dtype=torch.float64, device=r.device)
    hi = torch.full((n_groups,), -torch.inf, dtype=torch.float64, device=r.device)
    lo = lo.scatter_reduce(0, inverse, r, "amin")
    hi = hi.scatter_reduce(0, inverse, r, "amax")
    if n_groups == 0:
        return torch.tensor(torch.nan, device=r.device), 0
    return ((hi - lo) <= tol).double().mean(), n_groups
