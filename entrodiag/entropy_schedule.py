"""Entropy schedules: the control target as a function of the step, in fractions of the initial entropy.

A schedule is written ``KIND[:F0[,F1]][@END]``:

- ``constant`` — the target of ``entropy_target`` / ``entropy_target_frac`` (no fractions), or
  ``constant:F`` — F × the initial entropy at every step;
- ``linear:F0,F1`` — from F0 × the initial entropy at the control start down (or up) to F1 × it at
  the step END, a straight line (Entrocraft, arXiv 2604.26326, held entropy best on a linear anneal
  from high to a slightly lower target);
- ``cosine:F0,F1`` — the same ends, along a half cosine: F1 + (F0 − F1)·(1 + cos(π·p))/2.

The initial entropy is the mean rollout entropy of the first 10 steps, as for
``entropy_target_frac`` (AER, arXiv 2510.10959, anchors the target to it). The progress is
p = (step − control start) / (END − control start), clamped to [0, 1]: the target is F0 before the
control start and F1 from END on. Without ``@END`` the schedule ends at the run's last step.

Torch-free and free of project imports (the built-in trainer, the TRL drop-in and the analysis share it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("constant", "linear", "cosine")
EXAMPLE = "e.g. linear:1.0,0.8 or cosine:1.0,0.8@300 or constant:0.75"


@dataclass(frozen=True)
class Schedule:
    """A parsed ``--entropy-schedule``: ``start``/``end`` are fractions of the initial entropy
    (``None`` for a bare ``constant``, whose target comes from entropy_target/entropy_target_frac)."""

    kind: str
    start: float | None = None
    end: float | None = None
    end_step: int | None = None
    """The step at which the schedule reaches ``end`` (None: the run's last step)."""

    @property
    def has_fractions(self) -> bool:
        return self.start is not None

    def frac(self, step: int, from_step: int, end_step: int | None = None) -> float:
        """The target's fraction of the initial entropy at ``step``, for a schedule that starts at
        ``from_step`` and ends at ``self.end_step`` (else ``end_step``).

        Example:
            >>> s = parse_schedule("linear:1.0,0.8@100")
            >>> s.frac(0, 0), s.frac(50, 0), round(s.frac(150, 0), 12)
            (1.0, 0.9, 0.8)
        """
        if self.start is None:
            raise ValueError("a bare constant schedule has no fractions: its target is entropy_target(_frac)")
        if self.kind == "constant":
            return self.start
        end = self.end_step if self.end_step is not None else end_step
        if end is None:
            raise ValueError(f"entropy_schedule {self.kind} needs an end step: {self.kind}:F0,F1@STEP")
        p = 1.0 if end <= from_step else min(max((step - from_step) / (end - from_step), 0.0), 1.0)
        if self.kind == "linear":
            return self.start + (self.end - self.start) * p
        return self.end + (self.start - self.end) * (1.0 + math.cos(math.pi * p)) / 2.0

    def __str__(self) -> str:
        if self.start is None:
            return self.kind
        fr = f"{self.start:g}" if self.kind == "constant" else f"{self.start:g},{self.end:g}"
        return f"{self.kind}:{fr}" + (f"@{self.end_step}" if self.end_step is not None else "")


def parse_schedule(text: str | Schedule | None) -> Schedule | None:
    """``"linear:1.0,0.8@300"`` -> :class:`Schedule`; empty -> None; anything else: a one-line ValueError.

    Example:
        >>> parse_schedule("cosine:1,0.8@300")
        Schedule(kind='cosine', start=1.0, end=0.8, end_step=300)
    """
    if text is None or isinstance(text, Schedule):
        return text
    raw = str(text).strip()
    if not raw:
        return None
    spec, _, at = raw.partition("@")
    kind, colon, nums = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise ValueError(f"entropy_schedule {raw!r}: the kind must be one of {', '.join(KINDS)} ({EXAMPLE})")
    end_step = None
    if at:
        try:
            end_step = int(at)
        except ValueError:
            raise ValueError(f"entropy_schedule {raw!r}: after @ comes the end step, an integer ({EXAMPLE})") from None
        if end_step < 0:
            raise ValueError(f"entropy_schedule {raw!r}: the end step must be >= 0")
    try:
        fracs = [float(p) for p in nums.split(",")] if colon else []
    except ValueError:
        raise ValueError(f"entropy_schedule {raw!r}: the fractions must be numbers ({EXAMPLE})") from None
    want = 1 if kind == "constant" else 2
    if kind == "constant" and not colon:
        if at:
            raise ValueError(f"entropy_schedule {raw!r}: a constant target has no end step")
        return Schedule("constant")
    if len(fracs) != want:
        raise ValueError(f"entropy_schedule {raw!r}: {kind} takes {want} fraction(s) of the initial entropy "
                         f"({EXAMPLE})")
    if not all(math.isfinite(f) and f > 0 for f in fracs):
        raise ValueError(f"entropy_schedule {raw!r}: the fractions of the initial entropy must be > 0")
    if kind == "constant":
        if at:
            raise ValueError(f"entropy_schedule {raw!r}: a constant target has no end step")
        return Schedule("constant", fracs[0], fracs[0])
    return Schedule(kind, fracs[0], fracs[1], end_step)


__all__ = ["KINDS", "Schedule", "parse_schedule"]
