"""One streamed pass over a table's rows (``stream_pass``): several queries over the same rows,
collected together by polars' streaming engine, in memory bounded by the engine's batches rather
than by the table.

``Run.scan`` wraps the multi-file scan in a guard (``scan.GuardedScan``) that collects a query whole
before it yields a row: right for small results, but a query over 10^8 token rows would hold them
all first. A pass here runs the plain multi-file scan of the parts ``Run.parts`` lists, as the
table's schema (``scan.SCAN_OPTIONS``), with ``Run.max_step`` applied, through the streaming engine
(``pl.collect_all``; common-subplan caching off, which would hold the rows). The queries get the
raw rows: ``values.mask`` makes impossible values null, and ``bad_value_screen`` finds in the same
pass what ``read_bad_values`` needs to count them (``values.rules``; ``Run.bad_values``' shape).

A healthy run pays nothing for damaged files. When the pass fails, the table's parts are decoded
once each (``Run.check``: a damaged part is skipped and named, as by every reader) and the pass
reruns on the others; when no part was found damaged (files vanished under a compaction, a part
whose values the table's types cannot hold), the queries run on ``Run.scan``, whose guard deals
with both, as every other query does (again, if its guard skipped a part under one of them, so
that no query counts rows the others left out).
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from . import values
from .parts import DECODE_ERRORS, RERUNS
from .run import Run
from .scan import scan_parts

#: Streaming, without caching a subplan the queries share (the cache would hold the whole table).
NO_CACHE = pl.QueryOptFlags(comm_subplan_elim=False)

_SEP = values.SEP
#: ``bad_value_screen``'s count of every row it saw
_ROWS = f"rows{_SEP}all"


def stream_pass(
    run: Run, table: str, build: Callable[[pl.LazyFrame], list[pl.LazyFrame]], *, which: slice = slice(None)
) -> list[pl.DataFrame] | None:
    """The queries ``build(rows)`` over the raw rows of ``table`` (impossible values as stored),
    collected in one streamed pass; ``None`` when there is no part file to read. ``which``: the
    listed parts to read (a slice of ``Run.parts``, in its order), all by default; a run with a
    damaged part that does not show as such falls back to ``Run.scan`` over all of them."""
    for _ in range(RERUNS):
        parts = [p for p in run.parts(table)[which] if p not in run.skipped_parts]
        if not parts:
            return None
        rows = scan_parts(parts, run.scan(table, raw=True).collect_schema())
        if run.max_step is not None:
            rows = rows.filter(pl.col("step") <= run.max_step)
        try:
            return pl.collect_all(build(rows), engine="streaming", optimizations=NO_CACHE)
        except pl.exceptions.ColumnNotFoundError:
            raise  # a query for a column the table lacks, not a damaged file
        except DECODE_ERRORS:
            skipped = len(run.skipped_parts)
            run.check((table,))
            if len(run.skipped_parts) == skipped:
                break
    for _ in range(RERUNS):  # the guarded scan decides; a part it skips under one query is left
        skipped = len(run.skipped_parts)  # out of all of them: they run again without it
        if not run.parts(table):
            return None
        found = pl.collect_all(build(run.scan(table, raw=True)))
        if len(run.skipped_parts) == skipped:
            break
    return found


def bad_value_screen(rows: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """One row: for each column of ``schema`` that ``values.rules`` checks, its least and greatest
    value (NaN left out) and its NaN count, the rows without a step and all rows (``screened_rows``
    reads the rows with a step from it). Cheaper than counting each rule on every row, and enough
    (``read_bad_values``): every rule marks the values outside an interval, or NaN."""
    exprs = [pl.len().alias(_ROWS)]
    for name in values.rules(schema):
        c = pl.col(name)
        exprs += [c.min().alias(f"{name}{_SEP}min"), c.max().alias(f"{name}{_SEP}max")]
        if schema[name].is_float():
            exprs.append(c.is_nan().sum().alias(f"{name}{_SEP}nan"))
    if "step" in schema:
        exprs.append(pl.col("step").is_null().sum().alias(f"step{_SEP}missing"))
    return rows.select(exprs)


def screened_rows(screen: pl.DataFrame) -> int:
    """The rows with a step that a ``bad_value_screen`` row saw (all of them without a step column)."""
    row = screen.row(0, named=True)
    return int(row[_ROWS]) - int(row.get(f"step{_SEP}missing", 0))


def bad_value_counts(rows: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """One row: for each impossible-value rule of ``schema`` (``values.rules``) the number of raw
    ``rows`` it finds, and the rows without a step (``values.count_exprs``)."""
    return rows.select(values.count_exprs(schema) or [pl.lit(0).alias(f"none{_SEP}missing")])


def read_bad_values(run: Run, table: str, screen: pl.DataFrame) -> dict[str, dict[str, int]]:
    """``{column: {reason: count}}`` (the non-zero ones, ``Run.bad_values``' shape) from a
    ``bad_value_screen`` row of ``table``: exact at once when every column's least and greatest
    values pass its rules (then its only impossible values are its NaNs); otherwise each rule
    is counted on every row, in a second streamed pass (a run with impossible values)."""
    row = screen.row(0, named=True)
    schema = run.scan(table, raw=True).collect_schema()
    rules = values.rules(schema)
    ends = pl.DataFrame({name: [row[f"{name}{_SEP}min"], row[f"{name}{_SEP}max"]] for name in rules},
                        schema={name: schema[name] for name in rules})
    flagged = [why.fill_null(False).any().alias(f"{name}{_SEP}{reason}")
               for name, reasons in rules.items() for reason, why in reasons.items()]
    if flagged and any(ends.select(flagged).row(0)):
        found = stream_pass(run, table, lambda rows: [bad_value_counts(rows, schema)])
        return values.nonzero(found[0].row(0, named=True)) if found else {}
    nan = values.NON_FINITE
    return values.nonzero({(f"{k.split(_SEP)[0]}{_SEP}{nan}" if k.endswith(f"{_SEP}nan") else k): n
                     for k, n in row.items() if k.endswith((f"{_SEP}nan", f"{_SEP}missing"))})


__all__ = [
    "NO_CACHE", "bad_value_counts", "bad_value_screen", "read_bad_values", "screened_rows", "stream_pass",
]
