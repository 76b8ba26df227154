"""entrodiag: see and control the entropy dynamics of RL fine-tuning runs.

Public API (imported lazily, so ``import entrodiag`` and the CLI stay instant)::

    from entrodiag import Recorder, LogitsTap, load_run
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Recorder": "entrodiag.hooks.recorder",
    "LogitsTap": "entrodiag.hooks.logits_tap",
    "load_run": "entrodiag.store.reader",
    "Run": "entrodiag.store.reader",
    "RunError": "entrodiag.store.reader",
    "fit_entropy_law": "entrodiag.analysis",
    "detect_collapse": "entrodiag.analysis",
    "LawFit": "entrodiag.analysis",
    "Flag": "entrodiag.analysis",
}

__all__ = ["__version__", *_EXPORTS]

if TYPE_CHECKING:
    from .analysis import Flag, LawFit, detect_collapse, fit_entropy_law
    from .hooks.logits_tap import LogitsTap
    from .hooks.recorder import Recorder
    from .store.reader import Run, RunError, load_run


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'entrodiag' has no attribute {name!r}")
