"""Optional fused GPU kernels (Triton) behind the signatures of :mod:`entrodiag.metrics`.

Nothing here imports triton at import time: :func:`load_entropy_kernel` does, on first use, and
returns ``None`` when triton cannot be imported, so ``entrodiag`` works without it. Install it with
``pip install "entrodiag[triton]"`` (Linux only; triton ships no wheels elsewhere).

:func:`entrodiag.metrics.entropy_and_logprobs` uses the kernel by itself for CUDA tensors; nothing
else needs to call it. Set ``ENTRODIAG_DISABLE_TRITON=1`` to keep the chunked PyTorch path.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["load_entropy_kernel"]

_UNSET = object()
_cache: dict[str, object] = {"module": _UNSET}
_NAMES = {"logits": "fused_entropy_and_logprobs", "hidden": "fused_entropy_and_logprobs_from_hidden"}


def load_entropy_kernel(kind: str = "logits") -> Callable | None:
    """A fused function of :mod:`entrodiag.kernels.entropy`, or ``None`` without triton.

    ``kind="logits"``: entropy and log-probs from logits; ``kind="hidden"``: from hidden states
    and the output head's weight (no logits in memory). ``None`` when triton (or a piece it needs
    at import) is missing; the answer is cached for the process.
    """
    module = _cache["module"]
    if module is _UNSET:
        try:
            from entrodiag.kernels import entropy as module
        except Exception:  # ImportError, or a triton that fails while importing: no kernel
            module = None
        _cache["module"] = module
    return None if module is None else getattr(module, _NAMES[kind])
