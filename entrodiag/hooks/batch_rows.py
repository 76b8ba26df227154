"""The Recorder's writer-thread side: from one step's tensors on the host to table rows.

``Recorder.record_batch`` computes a step's aggregates on the training device and starts their
copy to the host (:class:`HostCopy`); the writer thread then waits for the copy and builds the
``steps`` row (:func:`step_row`) and the ``tokens``, ``samples`` and ``spans`` rows of the sampled
responses (:func:`sample_rows`), decoding text there, off the training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..metrics import hwe_spans, zero_advantage_group_frac
from ..store.writer import Batch

#: the entropy quantiles of every step row (``entropy_p50`` ... ``entropy_p99``)
QUANTILES = (0.5, 0.8, 0.9, 0.99)
#: the scalars ``Recorder._compute`` stacks on the device and moves to the host in one copy (in this order)
SCALARS = (
    "n", "nonfinite", "entropy_sum", "entropy_sq_dev", "logprob_sum", "adv_sum", "cov_mean",
    "cov_pos", "high", "hwe", "hwe_threshold", "pressure_sum", "q50", "q80", "q90", "q99",
)


class HostCopy:
    """Tensors on their way to the host: on CUDA a non-blocking copy into pinned memory behind
    an event (the caller does not wait); on CPU the tensors themselves."""

    def __init__(self, tensors: dict[str, torch.Tensor]) -> None:
        self.event = None
        if any(t.is_cuda for t in tensors.values()):
            self.tensors = {}
            for k, t in tensors.items():
                host = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
                host.copy_(t, non_blocking=True)
                self.tensors[k] = host
            self.event = torch.cuda.Event()
            self.event.record()
        else:
            self.tensors = tensors

    def get(self) -> dict[str, torch.Tensor]:
        if self.event is not None:
            self.event.synchronize()
        return self.tensors


class Scalars:
    """Extra step columns (``loss=...``): numbers, and 1-element tensors on their way to the host.

    Raises ``ValueError`` at construction for anything else, so a bad value fails in the caller.
    """

    def __init__(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if isinstance(v, torch.Tensor) and v.numel() != 1:
                raise ValueError(f"scalar {name!r} must be a number or a 1-element tensor, got shape {tuple(v.shape)}")
            if not isinstance(v, (torch.Tensor, int, float)) or isinstance(v, bool):
                raise ValueError(f"scalar {name!r} must be a number, got {type(v).__name__}")
        self.plain = {k: v for k, v in values.items() if not isinstance(v, torch.Tensor)}
        self.tensors = HostCopy(
            {k: v.detach().reshape(()).clone() for k, v in values.items() if isinstance(v, torch.Tensor)}
        )

    def row(self) -> dict[str, float | None]:
        """Column values (writer thread: waits for the tensors' copies)."""
        host = {k: v.item() for k, v in self.tensors.get().items()}
        return {k: finite_or_none(v) for k, v in {**self.plain, **host}.items()}


def finite_or_none(v: Any) -> float | None:
    """``float(v)``, or ``None`` where it is not finite (stored as null)."""
    v = float(v)
    return v if math.isfinite(v) else None


def step_row(step: int, rank: int, wall: float, t: dict[str, torch.Tensor], extra: Scalars,
             has_lp: bool) -> dict[str, Any]:
    """The ``steps`` row of one step from its host tensors ``t`` (``Recorder._compute``'s), the
    wall time it was recorded at and the extra columns; ``has_lp``: log-probs were given."""
    s = dict(zip(SCALARS, t["scalars"].tolist()))
    n = int(s["n"])
    row_len = t["row_len"].double()
    row_valid = t["row_valid"]
    batch = len(row_len)

    def token_mean(value: float, needs_lp: bool = False) -> float | None:
        return None if n == 0 or (needs_lp and not has_lp) else value / n

    row: dict[str, Any] = {
        "step": step, "rank": rank, "n_tokens": n, "n_responses": batch,
        "nonfinite_tokens": int(s["nonfinite"]),
        "entropy_mean": token_mean(s["entropy_sum"]),
        "entropy_seq_mean": (
            float((t["row_hsum"] / row_valid.clamp(min=1))[row_valid > 0].mean())
            if bool((row_valid > 0).any()) else None
        ),
        "entropy_std": None if n == 0 else math.sqrt(s["entropy_sq_dev"] / n),
        **{f"entropy_p{round(q * 100)}": None if n == 0 else s[f"q{round(q * 100)}"] for q in QUANTILES},
        "entropy_hist": t["hist"].tolist(),
        "high_entropy_frac": token_mean(s["high"]),
        "logprob_mean": token_mean(s["logprob_sum"], needs_lp=True),
        "advantage_mean": token_mean(s["adv_sum"]),
        "cov_mean": None if n == 0 or not has_lp else s["cov_mean"],
        "cov_pos_frac": token_mean(s["cov_pos"], needs_lp=True),
        "resp_len_mean": float(row_len.mean()) if batch else None,
        "hwe_token_frac": token_mean(s["hwe"]),
        "hwe_threshold": None if n == 0 or not math.isfinite(s["hwe_threshold"]) else s["hwe_threshold"],
        "entropy_pressure": token_mean(s["pressure_sum"], needs_lp=True),
        "wall_time": wall,
    }
    rewards = t.get("rewards")
    if rewards is not None and batch:
        row["reward_mean"] = float(rewards.mean())
        row["reward_std"] = float(rewards.std(correction=0))
    groups = t.get("group_ids")
    signal = rewards if rewards is not None else t["row_adv"].double()
    if groups is not None and batch:
        frac, n_groups = zero_advantage_group_frac(signal, groups)
        row["zero_adv_group_frac"] = float(frac)
        row["n_groups"] = n_groups
    row.update(extra.row())
    return row


def sample_rows(step: int, rank: int, t: dict[str, torch.Tensor], pick: list[int], texts: list[str] | None,
                prompts: list[str] | None, has_lp: bool, decode: Callable[[list[int]], str | None],
                decode_each: Callable[[list[int]], list[str | None]]) -> Batch:
    """The ``tokens``, ``samples`` and ``spans`` rows of the sampled responses ``pick``; ``decode``
    turns ids into a text, ``decode_each`` each id into its token's text."""
    f = t["tok_float"].numpy()  # [6, k, T]: entropy, logprob, advantage, cov, s_star, window
    ids, mask, valid = t["tok_ids"].numpy(), t["tok_mask"].numpy(), t["tok_valid"].numpy()
    rewards, groups, prompt_ids = t.get("rewards"), t.get("group_ids"), t.get("prompt_ids")
    r_i, c_i = mask.nonzero()
    picked = np.asarray(pick)
    ok = valid[r_i, c_i]

    def col(i: int, needs_lp: bool = False):  # NaN (stored as null) at non-finite tokens
        if needs_lp and not has_lp:
            return np.full(len(r_i), np.nan, dtype=np.float32)
        return np.where(ok, f[i, r_i, c_i], np.nan).astype(np.float32)

    group_of = None if groups is None else groups.numpy()[picked]
    token_ids = ids[r_i, c_i]
    tokens = {
        "step": np.full(len(r_i), step), "rank": np.full(len(r_i), rank),
        "sample_id": picked[r_i], "group_id": None if group_of is None else group_of[r_i],
        "pos": c_i, "token_id": token_ids, "token": decode_each(token_ids.tolist()),
        "entropy": col(0), "logprob": col(1, True), "advantage": f[2, r_i, c_i],
        "cov": col(3, True), "s_star": col(4, True), "window_entropy": col(5),
        "is_hwe": t["tok_hwe"].numpy()[r_i, c_i], "is_forking": t["tok_fork"].numpy()[r_i, c_i],
    }
    lengths = mask.sum(-1)
    n_valid = valid.sum(-1)
    h_sum = np.where(valid, f[0], 0.0).sum(-1)
    samples = {
        "step": [step] * len(pick), "rank": [rank] * len(pick), "sample_id": pick,
        "group_id": None if group_of is None else group_of,
        "prompt_id": None if prompt_ids is None else prompt_ids.numpy()[picked],
        "prompt": None if prompts is None else [prompts[b] for b in pick],
        "response": [texts[b] for b in pick] if texts is not None
        else [decode(ids[r][mask[r]].tolist()) for r in range(len(pick))],
        "reward": None if rewards is None else rewards.numpy()[picked],
        "advantage": t["row_adv"].double().numpy()[picked],
        "length": lengths,
        "entropy_mean": np.where(n_valid > 0, h_sum / np.maximum(n_valid, 1), np.nan),
    }
    found = hwe_spans(t["tok_hwe"])
    spans = {
        "step": [step] * len(found), "rank": [rank] * len(found),
        "sample_id": [pick[r] for r, _, _ in found],
        "start": [s for _, s, _ in found], "end": [e for _, _, e in found],
        "mean_window_entropy": [float(f[5, r, s:e].mean()) for r, s, e in found],
        "max_entropy": [float(f[0, r, s:e].max()) for r, s, e in found],
        "text": [decode(ids[r, s:e].tolist()) for r, s, e in found],
    }
    return [("tokens", tokens), ("samples", samples), ("spans", spans)]
