"""The TRL drop-in's entropy controller: the ``EntropyControl`` keyword arguments a trainer's
configuration gives (``entrodiag.hooks.trl_trainer``'s ``entrodiag_entropy_control`` by name)."""

from __future__ import annotations

from typing import Any


def control_kwargs(trainer: Any, args: dict) -> dict:
    """``EntropyControl``'s keywords for ``trainer`` (a ``trl.GRPOTrainer``), updated by the user's
    ``entrodiag_control_args``: the clip bounds and the entropy coefficient of TRL's config, no
    covariance clip (TRL's loss has none), and a schedule that ends at ``max_steps`` (TRL's last
    optimizer step, 1-based) unless ``args`` gives ``end_step`` or the schedule its ``@STEP``."""
    max_steps = int(getattr(trainer.args, "max_steps", -1) or -1)
    return {"clip_high": float(trainer.epsilon_high), "clip_low": float(trainer.epsilon_low), "detach": False,
            "coef": float(getattr(trainer, "entropy_coef", 0.0) or 0.0),
            "end_step": max_steps if max_steps > 0 else None, **args}


def note_control(rec: Any, control: Any) -> None:
    """Write ``control``'s mode, schedule, start and guard into the run's meta (run.json), where
    ``analyze``, the report and the dashboard read them (the built-in trainer has them in its
    config); nothing without a controller."""
    if control is not None:
        rec.update_meta(entropy_control=control.mode, entropy_schedule=str(control.schedule or "constant"),
                        entropy_control_from=control.control_from, entropy_guard=control.guard)


__all__ = ["control_kwargs", "note_control"]
