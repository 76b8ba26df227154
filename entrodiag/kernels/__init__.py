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
_cache: dict[str, object] = {"entropy": _UNSET}


def load_entropy_kernel() -> Callable | None:
    """The fused entropy + log-prob function of :mod:`entrodiag.kernels.entropy`, or ``None``.

    ``None`` when triton (or a piece it needs at import) is missing; the answer is cached for the
    process.
    """
    fn = _cache["entropy"]
    if fn is _UNSET:
        try:
            from entrodiag.kernels.entropy import fused_entropy_and_logprobs as fn
        except Exception:  # ImportError, or a triton that fails while importing: no kernel
            fn = None
        _cache["entropy"] = fn
    return fn  # type: ignore[return-value]
