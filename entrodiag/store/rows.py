"""Rows as the writers take them: columns of equal length per table, turned into Arrow tables.

``to_arrow`` gives every core column of a table its schema type (``entrodiag.store.schema``);
``event_row`` builds one row of the ``events`` table.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pyarrow as pa

from .schema import CORE_TYPES, EVENT_KINDS

Rows = dict[str, Any]  # column name -> sequence (list or numpy array) of equal length
Batch = list[tuple[str, Rows]]  # (table, columns) pairs


def to_arrow(table: str, columns: Rows) -> pa.Table:
    """Columns to an Arrow table with every core column of ``table`` (``None`` or absent: nulls).

    Core columns get their schema type; other numeric columns become float64, so a loop's extra
    scalars keep one type across part files. NaN becomes null.
    """
    core = CORE_TYPES[table]
    lengths = {len(v) for v in columns.values() if v is not None}
    if len(lengths) > 1:
        raise ValueError(f"{table}: columns of unequal length {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    arrays = {}
    for name, dtype in core.items():
        values = columns.get(name)
        arrays[name] = pa.nulls(n, dtype) if values is None else pa.array(values, type=dtype, from_pandas=True)
    for name, values in columns.items():
        if name in core or values is None:
            continue
        arr = pa.array(values, from_pandas=True)
        if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_null(arr.type):
            arr = arr.cast(pa.float64())
        arrays[name] = arr
    return pa.Table.from_arrays(list(arrays.values()), names=list(arrays))


def warm_up() -> None:
    """Make pyarrow's first array conversion now: it imports pandas when installed (seconds on a
    busy machine), which would otherwise delay the first part file written."""
    pa.array([0.0])


def event_row(
    step: int, kind: str, name: str, *, rank: int = 0, severity: str | None = None,
    first_step: int | None = None, last_step: int | None = None, message: str = "",
    detail: dict | None = None, time_s: float | None = None,
) -> Rows:
    """One ``events`` row as columns (see ``entrodiag.store.schema``); ``detail`` becomes JSON."""
    if kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {kind!r}; kinds are {', '.join(EVENT_KINDS)}")
    return {
        "step": [int(step)], "rank": [int(rank)], "time": [time.time() if time_s is None else float(time_s)],
        "kind": [kind], "name": [str(name)], "severity": [severity],
        "first_step": [None if first_step is None else int(first_step)],
        "last_step": [None if last_step is None else int(last_step)],
        "message": [str(message)], "detail": [json.dumps(detail or {}, default=str, sort_keys=True)],
    }
