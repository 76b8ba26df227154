"""TRL's logged numbers as run columns, for the TRL drop-in (``RecordingGRPOTrainer.log``).

Every number TRL logs goes under entrodiag's name where one exists and the Recorder does not
measure it itself (``loss``, ``kl``, ``lr``, ...), otherwise as ``trl/<name>``; evaluation
metrics (``eval_*``) become evals. The name table is ``entrodiag.metric_names`` (shared with the importers).
"""

from __future__ import annotations

import math
from typing import Any

from ..metric_names import MEASURED_COLUMNS, classify


def is_num(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def jsonable(d: dict) -> dict:
    """``TrainingArguments.to_dict()`` with anything exotic turned into a string."""
    out = {}
    for k, v in d.items():
        out[k] = v if v is None or isinstance(v, (bool, int, float, str, list, dict)) else str(v)
    return out


def log_columns(entry: dict) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """One entry of TRL's ``log_history`` (without ``step``) as ``(evals, step scalars)``: evals as
    (name, value) pairs, scalars by column name; entries that are not finite numbers are left out."""
    evals: list[tuple[str, float]] = []
    scalars: dict[str, float] = {}
    for name, value in entry.items():
        if not is_num(value):
            continue
        target = classify(name)
        if target.kind == "eval":
            evals.append((target.name, float(value)))
        elif target.kind == "step" and target.known and target.name not in MEASURED_COLUMNS:
            scalars[target.name] = float(value)
        else:
            scalars[f"trl/{name}"] = float(value)
    return evals, scalars
