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
import re
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
    spec, sep, at = raw.partition("@")
    kind, colon, nums = spec.strip().partition(":")
    kind = kind.strip()
    if kind not in KINDS:
        raise ValueError(f"entropy_schedule {raw!r}: the kind must be one of {', '.join(KINDS)} ({EXAMPLE})")
    end_step, at = None, at.strip()
    if sep:
        if re.fullmatch(r"-[0-9]+", at):
            raise ValueError(f"entropy_schedule {raw!r}: the end step must be >= 0")
        if not re.fullmatch(r"[0-9]+", at):  # ASCII digits only: not "", "3_0", "+3" or "٣", which int() takes
            raise ValueError(f"entropy_schedule {raw!r}: after @ comes the end step, an integer ({EXAMPLE})")
        end_step = int(at)
    try:
        fracs = [float(p) for p in nums.split(",")] if colon else []
    except ValueError:
        raise ValueError(f"entropy_schedule {raw!r}: the fractions must be numbers ({EXAMPLE})") from None
    want = 1 if kind == "constant" else 2
    if kind == "constant" and not colon:
        if sep:
            raise ValueError(f"entropy_schedule {raw!r}: a constant target has no end step")
        return Schedule("constant")
    if len(fracs) != want:
        raise ValueError(f"entropy_schedule {raw!r}: {kind} takes {want} fraction(s) of the initial entropy "
                         f"({EXAMPLE})")
    if not all(math.isfinite(f) and f > 0 for f in fracs):
        raise ValueError(f"entropy_schedule {raw!r}: the fractions of the initial entropy must be > 0")
    if kind == "constant":
        if sep:
            raise ValueError(f"entropy_schedule {raw!r}: a constant target has no end step")
        return Schedule("constant", fracs[0], fracs[0])
    return Schedule(kind, fracs[0], fracs[1], end_step)


def check_targets(mode: str, sched: Schedule | None, *, target: float, target_frac: float, control_from: int,
                  end_step: int | None, guard: float) -> None:
    """The entropy controller's target settings, checked together: a one-line ValueError that says
    what to change (``mode``: the controller, ``none`` only measures; ``guard``: ``entropy_guard``)."""
    if sched is not None and sched.has_fractions and (target or target_frac):
        raise ValueError(f"entropy_schedule {sched} gives the target as fractions of the initial entropy: "
                         "drop entropy_target/entropy_target_frac (or use a bare 'constant')")
    if sched is not None and sched.kind != "constant" and sched.end_step is None and end_step is None:
        raise ValueError(f"entropy_schedule {sched} needs an end step: {sched.kind}:F0,F1@STEP")
    end = sched.end_step if sched is not None and sched.end_step is not None else end_step
    if sched is not None and sched.kind != "constant" and end <= control_from:
        raise ValueError(f"entropy_schedule {sched} ends at step {end}, not after the control start "
                         f"{control_from}: give a later end (@STEP)")
    if not (isinstance(guard, (int, float)) and math.isfinite(guard) and (guard == 0 or guard > 1)):
        raise ValueError(f"entropy_guard must be 0 (off) or a multiple > 1 of the initial entropy, got {guard!r}")
    has_target = bool(target or target_frac or (sched is not None and sched.has_fractions))
    fracs = [f for f in (target_frac, sched and sched.start, sched and sched.end) if f]
    if mode != "none" and guard and fracs and max(fracs) > guard / 1.2:
        raise ValueError(f"the entropy target {max(fracs):g} × the initial entropy is above the guard's cap "
                         f"{guard:g}/1.2 = {guard / 1.2:.3g} × it, so it would be capped: lower F or raise/"
                         "disable --entropy-guard (entropy_guard; the TRL drop-in: entrodiag_control_args' "
                         "guard; 0 = off)")
    if mode != "none" and not has_target:
        raise ValueError(f"entropy_control {mode} needs a target: entropy_target NATS, entropy_target_frac F "
                         "or entropy_schedule KIND:F0,F1")


def schedule_end(sched: Schedule | None, end_step: int | None) -> int | None:
    """The step at which ``sched`` ends (its ``@END``, else the run's ``end_step``); None for a
    constant target or none."""
    if sched is None or sched.kind == "constant":
        return None
    return sched.end_step if sched.end_step is not None else end_step


def target_spec(sched: Schedule | None, nats: float = 0.0, frac: float = 0.0) -> dict:
    """The controller's target, resolved (checkpoint-safe): ``frac`` × the initial entropy, ``nats``
    or ``schedule`` (its fractions, without @END); a bare ``constant`` is no schedule and
    ``constant:F`` is ``frac`` F, so the same target written either way compares equal.

    Example:
        >>> target_spec(parse_schedule("constant:0.9")) == target_spec(None, frac=0.9)
        True
    """
    nats = float(nats) if nats and math.isfinite(nats) else 0.0
    if sched is not None and sched.kind == "constant":
        return {"frac": float(sched.start or frac or 0.0), "nats": nats, "schedule": ""}
    return {"frac": float(frac or 0.0), "nats": nats, "schedule": str(sched or "").partition("@")[0]}


def _describe(spec: dict) -> str:
    if spec["schedule"]:
        return f"schedule {spec['schedule']!r}"
    if spec["frac"]:
        return f"{spec['frac']:g} × the initial entropy"
    return f"{spec['nats']:g} nats" if spec["nats"] else "none"


def check_resume(saved: dict, sched: Schedule | None, end_step: int | None, *, nats: float = 0.0,
                 frac: float = 0.0) -> None:
    """A controller state ``saved`` (``EntropyControl.state_dict``) continued by a run with ``sched``
    (or the target ``nats`` / ``frac``) ending at ``end_step``: a one-line ValueError where the
    target would move (states without ``schedule`` are not checked; without ``target_spec``, only
    their schedule is)."""
    if "schedule" not in saved:
        return
    now = target_spec(sched, nats, frac)
    # states before target_spec: their schedule alone (a constant one's target was not saved)
    was_spec = saved.get("target_spec") or {**now, "schedule": target_spec(parse_schedule(saved["schedule"]))[
        "schedule"]}
    if was_spec != now:
        raise ValueError(f"the checkpoint's entropy target is {_describe(was_spec)}, this run's "
                         f"{_describe(now)}: resume with the same entropy_schedule / entropy_target / "
                         "entropy_target_frac (the target would move)")
    end, was = schedule_end(sched, end_step), saved.get("end_step")
    if was != end:
        old, new = saved["schedule"], str(sched or "")
        why = (f"the end step (@END) changed: resume with {new.partition('@')[0]}@{was}" if "@" in old + new else
               "the run's length changed: resume with the same steps / max_steps, or give the end in the "
               f"schedule ({new.partition('@')[0]}@{was})")
        raise ValueError(f"the checkpoint's entropy schedule {old} ends at step {was}, this run's {new} at "
                         f"{end} ({why})")


__all__ = ["KINDS", "Schedule", "check_resume", "check_targets", "parse_schedule", "schedule_end", "target_spec"]
