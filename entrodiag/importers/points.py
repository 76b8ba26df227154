"""Rows from a store that keeps one series per metric (TensorBoard tags, MLflow metric histories).

Such a store holds points ``(step, name, value, wall time)``; the importer reads rows (one dict of
name -> value per logged step). ``rows_by_step`` builds them: one row per step and occurrence, so
that a name logged again at a step (a resumed writer, a later event file, a second
``log_metric`` at that step) goes to the step's next row and the importer's merge counts a
changed value instead of one value silently replacing the other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def rows_by_step(points: Iterable[tuple[int, str, Any, float | None]]) -> list[dict[str, Any]]:
    """Rows ``{"step": s, name: value, ..., "wall_time": t}`` in step order from ``points``.

    ``wall_time`` (seconds since the epoch, the latest of the step's points; ``None`` when not
    known) goes on the step's first row, unless a metric of that name was logged.

    >>> rows_by_step([(1, "a", 0.5, 10.0), (0, "a", 0.1, 9.0), (1, "a", 0.6, 11.0)])
    [{'step': 0, 'a': 0.1, 'wall_time': 9.0}, {'step': 1, 'a': 0.5, 'wall_time': 11.0}, {'step': 1, 'a': 0.6}]
    """
    by_step: dict[int, list[dict[str, Any]]] = {}
    wall: dict[int, float] = {}
    for step, name, value, wall_time in points:
        group = by_step.setdefault(step, [])
        row = next((r for r in group if name not in r), None)
        if row is None:
            group.append(row := {"step": step})
        row[name] = value
        if wall_time is not None:
            wall[step] = max(wall.get(step, wall_time), wall_time)
    rows = []
    for step in sorted(by_step):
        group = by_step[step]
        if step in wall:
            group[0].setdefault("wall_time", wall[step])
        rows.extend(group)
    return rows
