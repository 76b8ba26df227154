"""How long a checkpoint takes to write: its bytes (model and optimizer state) and the write speed
where it goes. The stop deadline (``--stop-grace``) of the built-in trainer and of the TRL drop-in
estimates from these at start-up whether a checkpoint fits the grace period."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import torch

from ..store.location import Location


def state_bytes(model, optimizer=None) -> int:
    """About the bytes a checkpoint writes: the model's parameters and buffers, plus the
    optimizer's state tensors (without an optimizer, or before its first step when it holds
    none yet, two float32 moments per trainable parameter, as AdamW keeps)."""
    total = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    state = [] if optimizer is None else [v for s in optimizer.state.values() for v in s.values()
                                          if isinstance(v, torch.Tensor)]
    if state:
        return total + sum(t.numel() * t.element_size() for t in state)
    return total + sum(2 * 4 * p.numel() for p in model.parameters() if p.requires_grad)


def write_speed(root: Path | Location, size: int = 8 << 20) -> float:
    """Bytes per second of writing ``size`` bytes into ``root`` (where checkpoints go, e.g.
    ``checkpoint_dir(run)``): a probe file ``.probe-<pid>`` (an object on an object store), timed
    and removed. Random bytes, so that a compressing file system does not flatter the speed."""
    data = os.urandom(size)
    name = f".probe-{os.getpid()}"
    t0 = time.perf_counter()
    if isinstance(root, Location):
        probe = root.child(name)
        probe.write_bytes(data)
        seconds = time.perf_counter() - t0
        with contextlib.suppress(OSError):
            probe.delete()
    else:
        root.mkdir(parents=True, exist_ok=True)
        try:
            with open(root / name, "wb") as f:
                f.write(data)
            seconds = time.perf_counter() - t0
        finally:
            with contextlib.suppress(OSError):
                (root / name).unlink()
    return size / max(seconds, 1e-6)
