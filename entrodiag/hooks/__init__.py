"""Training hooks: the framework-agnostic ``Recorder`` and the ``LogitsTap`` forward hook."""

from .logits_tap import LogitsTap
from .recorder import Recorder

__all__ = ["LogitsTap", "Recorder"]
