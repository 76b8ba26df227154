"""Checkpoints inside the run: ``<run>/checkpoints/step-<N>/`` is a policy folder (safetensors,
readable with ``--model``) plus ``trainer_state.pt`` (optimizer and scheduler state, loaded with
``weights_only=True``).

Local run: a checkpoint is written under a temporary name and renamed into place, so the newest
complete one is always usable after a crash. Object store (``s3://...``, ``gs://...``; no rename
there): each file is uploaded as one whole object, then the marker object ``COMPLETE`` last; a
checkpoint without its marker (an upload cut short) is never listed, so never resumed. An old
checkpoint loses its marker first when pruned. A resumed run takes its configuration from run.json
(:func:`resume_config`)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import torch

from ..store.location import Location, locate, run_path
from .config import TrainConfig
from .policy_files import save_policy
from .runtime import TrainingError

_NAME = re.compile(r"^step-(\d+)$")
#: The object written last into a checkpoint on an object store: the checkpoint is complete.
COMPLETE = "COMPLETE"
STATE = "trainer_state.pt"

Checkpoint = Path | Location  # a local folder, or a prefix on an object store


def checkpoint_dir(run_dir: str | os.PathLike) -> Path | Location:
    """``<run>/checkpoints``: a local folder, or a ``Location`` on an object store."""
    path = run_path(run_dir)
    return locate(path).child("checkpoints") if isinstance(path, str) else path / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Checkpoint]]:
    """Complete checkpoints as ``(step, folder)``, oldest first (on an object store the folder is
    a ``Location``, and complete means its ``COMPLETE`` marker is there)."""
    root = checkpoint_dir(run_dir)
    found = []
    if isinstance(root, Location):
        for info in root.list():
            m = _NAME.match(info.base_name)
            if m and info.type == pafs.FileType.Directory and root.child(info.base_name, COMPLETE).is_file():
                found.append((int(m.group(1)), root.child(info.base_name)))
        return sorted(found, key=lambda f: f[0])
    for p in root.iterdir() if root.is_dir() else []:
        m = _NAME.match(p.name)
        if m and (p / STATE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def save_checkpoint(run_dir: str | os.PathLike, step: int, model, tokenizer, optimizer, scheduler, keep: int,
                    intervention: str | None = None, control: dict | None = None) -> Checkpoint:
    """Save the state after the update of ``step`` (and the policy-loss mode in use, which a
    switch on collapse may have changed, and the entropy controller's state); keep the newest
    ``keep`` checkpoints. Raises what the
    save raised, leaving no partial folder (the trainer turns it into a ``checkpoint_failed``
    event); on an object store, no checkpoint without its ``COMPLETE`` marker."""
    state = {"step": step, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
             "intervention": intervention, "control": control}
    root = checkpoint_dir(run_dir)
    if isinstance(root, Location):
        final = root.child(f"step-{step:07d}")
        with tempfile.TemporaryDirectory(prefix="entrodiag-ckpt-") as tmp:
            save_policy(model, tokenizer, Path(tmp))
            torch.save(state, Path(tmp) / STATE)
            _delete(final)  # a checkpoint of this step saved before (a resume that redid it)
            files = sorted(p for p in Path(tmp).rglob("*") if p.is_file())
            for p in files:
                final.child(p.relative_to(tmp).as_posix()).write_bytes(p.read_bytes())
            final.child(COMPLETE).write_bytes(
                json.dumps({"step": step, "files": [p.relative_to(tmp).as_posix() for p in files]}).encode())
        for _, old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
            with contextlib.suppress(OSError):
                _delete(old)
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        save_policy(model, tokenizer, tmp)
        torch.save(state, tmp / STATE)
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


def _delete(folder: Location) -> None:
    """Remove a checkpoint from an object store: its marker first, so that it is never taken for
    complete while its other objects go."""
    marker = folder.child(COMPLETE)
    if marker.exists():
        marker.delete()
    if folder.exists():
        folder.fs.delete_dir(folder.fs_path)


def load_trainer_state(folder: Checkpoint) -> dict:
    """The optimizer/scheduler state of a checkpoint (tensors and plain values only)."""
    if isinstance(folder, Location):
        return torch.load(io.BytesIO(folder.child(STATE).read_bytes()), map_location="cpu", weights_only=True)
    return torch.load(folder / STATE, map_location="cpu", weights_only=True)


@contextlib.contextmanager
def local_policy(folder: Checkpoint) -> Iterator[Path]:
    """A local folder holding the checkpoint's policy files (for ``load_policy``): the folder
    itself, or a temporary copy of an object-store checkpoint, removed afterwards."""
    if not isinstance(folder, Location):
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="entrodiag-ckpt-") as tmp:
        for info in folder.list(recursive=True):
            if info.type != pafs.FileType.File or info.base_name in (COMPLETE, STATE):
                continue
            rel = info.path[len(folder.fs_path):].lstrip("/")
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_bytes(Location(info.path, folder.fs, info.path).read_bytes())
        yield Path(tmp)


def resume_config(out: str | Path, **overrides: Any) -> TrainConfig:
    """The configuration stored in a run's run.json, with ``overrides`` (e.g. more ``steps``)."""
    from ..store.reader import load_run

    path = run_path(out)
    if isinstance(path, str):  # an object store: the configuration is in run.json
        try:
            meta = json.loads(locate(path).child("run.json").read_text())
        except FileNotFoundError:
            raise TrainingError(f"{out} holds no run (no run.json there)") from None
        except OSError as e:
            raise TrainingError(f"{out}: cannot read run.json ({' '.join(str(e).split())})") from None
    else:
        meta = load_run(out).meta
    if meta.get("source") != "builtin":
        raise TrainingError(f"{out} was not written by the built-in trainer (source {meta.get('source')!r})")
    return TrainConfig(**{**meta["config"], **{k: v for k, v in overrides.items() if v is not None}})
