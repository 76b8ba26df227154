"""The built-in trainer's entropy control: :func:`from_config` builds the
:class:`~entrodiag.entropy_control.EntropyControl` that a ``TrainConfig`` asks for.

The controllers themselves (the registry, the control laws, their knobs and constants) live in
the torch-free :mod:`entrodiag.entropy_control`, shared with the TRL drop-in and the report; the
names are re-exported here, where they were imported from before.
"""

from __future__ import annotations

from ..entropy_control import (
    BASELINE_STEPS,
    CONTROLLERS,
    AdaptiveCoef,
    Controller,
    EntropyControl,
    Knobs,
    NoControl,
    PIClip,
    PICoef,
    parse_gains,
    parse_pair,
    register_controller,
)

__all__ = [
    "BASELINE_STEPS", "CONTROLLERS", "AdaptiveCoef", "Controller", "EntropyControl", "Knobs", "NoControl",
    "PIClip", "PICoef", "from_config", "parse_gains", "parse_pair", "register_controller",
]

def from_config(cfg, mode: str | None = None) -> EntropyControl:
    """The :class:`EntropyControl` a :class:`TrainConfig` asks for (``mode`` overrides
    ``cfg.entropy_control``, as ``--on-collapse`` does when it switches a controller on)."""
    return EntropyControl(
        mode or cfg.entropy_control, target=cfg.entropy_target, target_frac=cfg.entropy_target_frac,
        band=parse_pair(cfg.entropy_band, "entropy_band"), control_from=cfg.entropy_control_from,
        clip_high=cfg.clip_higher if cfg.intervention == "clip_higher" else cfg.clip_high, clip_low=cfg.clip_low,
        coef=cfg.entropy_coef if cfg.intervention == "entropy_bonus" else 0.0,
        gains=parse_gains(cfg.control_gains), bounds=parse_pair(cfg.control_bounds, "control_bounds"),
        schedule=cfg.entropy_schedule, end_step=cfg.steps - 1, guard=cfg.entropy_guard,
    )
