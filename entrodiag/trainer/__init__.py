"""The built-in GRPO trainer: config and presets, tasks, the tiny model, rollouts, the registry of
policy-loss modes (entropy interventions) and the loop.

Names are imported lazily, so ``entrodiag.trainer.config`` is readable without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PRESETS": "config", "TrainConfig": "config", "load_config": "config",
    "LOSSES": "losses", "register_policy_loss": "losses",
    "Trainer": "loop", "TrainingError": "runtime", "TrainingStopped": "loop", "resume_config": "checkpoint",
    "train": "loop",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
