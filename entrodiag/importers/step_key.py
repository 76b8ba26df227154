"""Which logged name is the step: the user's ``--map``, a known step name, else a rule on the content.

1. A column the user maps to ``step`` (``--map NAME=step``) is the step.
2. Else the first logged of ``STEP_KEYS`` (``step``, ``global_step``, ``train/global_step``, ...,
   most specific first) is the step.
3. Else a column is a *step candidate* when its name is step-like (the last part of the name,
   after the last ``/`` or ``.``, is one of ``STEP_PARTS``, case aside: ROLL's ``system/step``,
   ``trainer.global_step``) and its content counts steps: on every row that holds it, a whole
   number >= 0 (``1`` or ``1.0``), never smaller than on the row before. One candidate is the
   step; several that give every row the same step are one (the first logged is the step);
   several that disagree are refused with their names and the ``--map`` that settles it.

A name with a step-like last part whose values are not a step count (a duration ``time/step``, a
counter that restarts) is named in the refusal with why it is not a step, so that the user can
still map it.
"""

from __future__ import annotations

import re
from pathlib import Path

from .columns import STEP_KEYS, Target
from .failure import ImportFailure, listing, shown
from .values import step_of

#: last name parts (after the last ``/`` or ``.``, lower case) that make a column a step candidate
STEP_PARTS = frozenset({"step", "global_step", "globalstep", "train_step", "training_step", "update_step",
                        "rollout_step", "grpo_step", "_step", "iteration", "iter"})

_LAST_PART = re.compile(r"[/.]")


def step_like(name: str) -> bool:
    """Whether the last part of ``name`` (after its last ``/`` or ``.``) is one of ``STEP_PARTS``.

    >>> step_like("system/step"), step_like("trainer.global_step"), step_like("time/step_total")
    (True, True, False)
    """
    return _LAST_PART.split(str(name))[-1].lower() in STEP_PARTS


def step_column(path: Path | str, names: list[str], targets: dict[str, Target], rows: list[dict],
                user_map: dict[str, str]) -> str:
    """The step column of ``rows`` by the rule of the module docstring; ``ImportFailure`` when none
    or several disagreeing candidates are found."""
    mapped = [n for n in names if targets[n].kind == "key" and user_map.get(n) == "step"]
    if mapped:
        return mapped[0]
    known = [n for n in names if n in STEP_KEYS and targets[n].kind == "key"]
    if known:
        return min(known, key=STEP_KEYS.index)
    why_not = {n: not_a_count(n, rows) for n in names if step_like(n) and n not in user_map}
    found = [n for n, why in why_not.items() if why is None]
    if len(found) == 1:
        return found[0]
    if found:
        first = [step_of(r.get(found[0]))[0] for r in rows]
        if all([step_of(r.get(n))[0] for r in rows] == first for n in found[1:]):
            return found[0]
        raise ImportFailure(
            f"{path}: several columns count the steps and disagree ({listing(found)}); name the step with "
            f"--map {shown(found[0])}=step (or another of them)")
    rejected = "; ".join(f"{shown(n)} {why}" for n, why in why_not.items())
    raise ImportFailure(
        f"{path}: no step column (looked for {', '.join(STEP_KEYS)}, and for a step-like name counting "
        f"whole steps{': ' + rejected if rejected else ''}); name it with --map COLUMN=step. "
        f"Columns are: {listing(names)}")


def not_a_count(name: str, rows: list[dict]) -> str | None:
    """Why the values of ``name`` do not count steps (see the module docstring), or ``None``."""
    last: int | None = None
    for i, row in enumerate(rows, 1):
        v = row.get(name)
        if v is None:
            continue
        step, why = step_of(v)
        if step is None:
            return f"is {why} on row {i}"
        if last is not None and step < last:
            return f"decreases on row {i} ({last} -> {step})"
        last = step
    return None if last is not None else "holds no value"
