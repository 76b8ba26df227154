"""``LogitsTap``: per-token entropy and log-probs from a model's forward pass, via hooks.

A forward pre-hook on the model remembers ``input_ids``; a forward hook on the output head turns
the logits into entropy and next-token log-probs (chunked, under ``no_grad``) as soon as the head
produces them. The tap keeps only the two ``[B, T-1]`` fp32 results, never the logits, and does
not change the forward pass or its gradients.
"""

from __future__ import annotations

import torch

from ..metrics import entropy_and_logprobs


class LogitsTap:
    """Forward hook on the output head of a causal LM (Hugging Face or any ``nn.Module``).

    After each teacher-forced forward ``model(input_ids, ...)``:

    - ``entropy[b, t]`` is the entropy (nats) of the distribution that predicts
      ``input_ids[b, t+1]``, and ``logprobs[b, t]`` the log-prob of that token;
    - ``token_ids`` is ``input_ids[:, 1:]``, so the three are aligned as
      ``Recorder.record_batch`` expects (slice them to the response positions).

    Args:
        model: the model; its ``get_output_embeddings()`` is the head unless ``head`` is given.
        head: the module whose output is the logits ``[B, T, V]``.
        temperature: divide logits by this before the entropy (record it in the Recorder).

    Example:
        >>> tap = LogitsTap(model)                       # doctest: +SKIP
        >>> out = model(input_ids)                       # doctest: +SKIP
        >>> tap.entropy.shape == input_ids[:, 1:].shape  # doctest: +SKIP
        True
    """

    def __init__(self, model: torch.nn.Module, *, head: torch.nn.Module | None = None,
                 temperature: float = 1.0) -> None:
        if head is None:
            get = getattr(model, "get_output_embeddings", None)
            head = get() if callable(get) else None
        if not isinstance(head, torch.nn.Module):
            raise ValueError(
                "LogitsTap could not find the output head: the model has no get_output_embeddings(); "
                "pass head=model.<lm_head module>"
            )
        self.temperature = float(temperature)
        self.entropy: torch.Tensor | None = None
        self.logprobs: torch.Tensor | None = None
        self.token_ids: torch.Tensor | None = None
        self._input_ids: torch.Tensor | None = None
        self._handles = [
            model.register_forward_pre_hook(self._on_inputs, with_kwargs=True),
            head.register_forward_hook(self._on_logits),
        ]

    def _on_inputs(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self._input_ids = ids if isinstance(ids, torch.Tensor) else None

    def _on_logits(self, module, inputs, logits) -> None:
        ids = self._input_ids
        if not isinstance(logits, torch.Tensor) or ids is None or logits.shape[:-1] != ids.shape:
            self.entropy = self.logprobs = self.token_ids = None  # e.g. generation with a cache
            return
        targets = ids[:, 1:]
        self.entropy, self.logprobs = entropy_and_logprobs(
            logits[:, :-1].detach(), targets, temperature=self.temperature
        )
        self.token_ids = targets

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> LogitsTap:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
