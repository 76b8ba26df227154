"""Checkpoints inside the run: ``<run>/checkpoints/step-<N>/`` is a policy folder (safetensors,
readable with ``--model``) plus ``trainer_state.pt`` (optimizer and scheduler state, loaded with
``weights_only=True``). A checkpoint is written under a temporary name and renamed into place, so
the newest complete one is always usable after a crash."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import torch

from .model import save_policy

_NAME = re.compile(r"^step-(\d+)$")


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints as ``(step, folder)``, oldest first."""
    root = checkpoint_dir(run_dir)
    found = []
    for p in root.iterdir() if root.is_dir() else []:
        m = _NAME.match(p.name)
        if m and (p / "trainer_state.pt").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, optimizer, scheduler, keep: int,
                    intervention: str | None = None, control: dict | None = None) -> Path:
    """Save the state after the update of ``step`` (and the policy-loss mode in use, which a
    switch on collapse may have changed, and the entropy controller's state); keep the newest
    ``keep`` checkpoints. Raises what the
    save raised, leaving no partial folder (the trainer turns it into a ``checkpoint_failed``
    event)."""
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        save_policy(model, tokenizer, tmp)
        torch.save({"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "intervention": intervention, "control": control}, tmp / "trainer_state.pt")
        final = root / f"step-{step:07d}"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:  # a failed save leaves no partial folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_trainer_state(folder: Path) -> dict:
    """The optimizer/scheduler state of a checkpoint (tensors and plain values only)."""
    return torch.load(folder / "trainer_state.pt", map_location="cpu", weights_only=True)
