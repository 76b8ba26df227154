"""Column names of other frameworks' metric logs → entrodiag step columns and evaluation names.

The table itself (``STEP_ALIASES``, ``classify``, ``normalise``, ..., with the frameworks' sources
of each name) lives in ``entrodiag.metric_names``, where the importers, the TRL drop-in and the
analysis meet, and is re-exported here. This module keeps the importers' parsing of the user's
``--map``.
"""

from __future__ import annotations

from ..metric_names import (CANONICAL, EVAL_DIAGNOSTIC, KEEP_AS_LOGGED, MEASURED_COLUMNS, RESERVED_TARGETS,
                            STEP_ALIASES, STEP_KEYS, Target, classify, eval_name, normalise)

__all__ = ["CANONICAL", "EVAL_DIAGNOSTIC", "KEEP_AS_LOGGED", "MEASURED_COLUMNS", "RESERVED_TARGETS", "STEP_ALIASES",
           "STEP_KEYS", "Target", "classify", "eval_name", "normalise", "parse_map"]


def parse_map(items: list[str] | None) -> dict[str, str]:
    """``["col=field", ...]`` (the CLI's ``--map``) → ``{col: field}``; raises ``ValueError``."""
    out: dict[str, str] = {}
    for item in items or []:
        col, sep, field = item.rpartition("=")
        col, field = col.strip(), field.strip()
        if not sep or not col or not field:
            raise ValueError(f"--map expects COLUMN=FIELD (e.g. my_entropy=entropy_mean), got {item!r}")
        if field in RESERVED_TARGETS:
            raise ValueError(f"--map {item}: {field!r} is written by entrodiag itself; map to another name")
        out[col] = field
    return out
