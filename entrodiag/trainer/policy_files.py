"""Writing a policy folder (a Hugging Face model folder plus its tokenizer's files), and keeping
transformers quiet while a small model is saved or loaded. ``model.load_policy`` reads it back.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def quiet_transformers():
    """No per-shard progress bars from transformers while saving or loading small checkpoints."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def save_policy(model, tokenizer, folder: Path) -> None:
    """Write a policy folder that :func:`entrodiag.trainer.model.load_policy` reads back."""
    folder.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save(folder)
