"""The guarded scan behind ``Run.scan``: polars' multi-file Parquet scan of a table's listed parts,
which drops a part that turns out not to decode and lists the folder again when files vanished.

A corrupt data page behind a good footer shows only when the page is decoded, inside a lazy
query; ``GuardedScan`` is the small polars IO source that runs the ordinary scan (projection,
filter and row limit pushed down) and, only when that fails, decodes each part once
(``parts.decode_part``), drops the ones that fail and runs the query again. A healthy run pays
nothing for the check. ``polars_schema`` maps the tables' Arrow schemas to polars.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa

from .location import Location
from .parts import DECODE_ERRORS, RERUNS, decode_part, file_key, part_bytes
from .rundir import RunPath

try:  # polars' IO plugins (>= 1.16): the guarded scan
    from polars.io.plugins import register_io_source
except ImportError:  # pragma: no cover - older polars: every part is decoded once before a scan
    register_io_source = None

#: Whether this polars has IO plugins; without them a reader decodes every part before a scan.
GUARDED = register_io_source is not None

#: How every multi-file scan reads the listed parts: paths literal (a run folder named ``run[1]``
#: or ``exp*`` is not a pattern; no hive columns from ``lr=1e-6``), columns a part lacks read as
#: null, and types that widen safely (int32 -> int64, int -> float, float32 -> float64) cast to
#: the table's type (``schema.table_schema``).
SCAN_OPTIONS = dict(glob=False, hive_partitioning=False, missing_columns="insert", extra_columns="ignore",
                    cast_options=pl.ScanCastOptions(integer_cast=["upcast", "allow-float"], float_cast="upcast"))


def sources(parts: list[RunPath]) -> list[Path] | list[str] | list[bytes]:
    """What polars' Parquet scan is given: local paths; the objects' bytes when every part of an
    object store is held in memory (``parts.part_bytes``), else their URLs (taken literally)."""
    if not parts or not isinstance(parts[0], Location):
        return parts
    held = [part_bytes(p) for p in parts]
    return held if all(b is not None for b in held) else [str(p) for p in parts]


def scan_parts(parts: list[RunPath], schema: pl.Schema) -> pl.LazyFrame:
    """The plain (unguarded) multi-file scan of ``parts`` read as ``schema`` (``SCAN_OPTIONS``)."""
    return pl.scan_parquet(sources(parts), schema=schema, **SCAN_OPTIONS)


class GuardedScan:
    """The IO source behind ``Run.scan``: the multi-file Parquet scan with the pushed-down
    projection, filter and row limit; on failure, each part is decoded once and the ones that
    fail are dropped (and named), or, when files vanished (a compaction), the folder is listed
    again; then the query reruns. Rows are yielded only once the whole query succeeded, so a
    rerun never repeats a row.

    ``skipped``: the run's parts left out so far (read at each attempt); ``skip(part, reason)``
    leaves one out and names it; ``relist()`` lists the table's parts again.
    """

    def __init__(self, parts: list[RunPath], schema: pl.Schema, *, skipped: list[RunPath],
                 skip: Callable[[RunPath, str], None], relist: Callable[[], list[RunPath]]) -> None:
        self.parts, self.schema, self.skipped, self.skip, self.relist = parts, schema, skipped, skip, relist

    def __call__(self, with_columns, predicate, n_rows, batch_size):
        parts = self.parts
        for attempt in range(RERUNS + 1):
            parts = [p for p in parts if p not in self.skipped]
            if not parts:
                yield pl.DataFrame(schema=self.schema).select(with_columns or pl.all())
                return
            lf = scan_parts(parts, self.schema)
            if predicate is not None:
                lf = lf.filter(predicate)
            if with_columns is not None:
                lf = lf.select(with_columns)
            if n_rows is not None:
                lf = lf.head(n_rows)
            try:
                df = lf.collect()
            except pl.exceptions.ColumnNotFoundError:
                raise  # a query for a column the table lacks, not a damaged file
            except DECODE_ERRORS:
                if attempt == RERUNS:
                    raise
                changed = any(file_key(p) is None for p in parts)
                if not changed:
                    try:
                        changed = self._drop_damaged(parts)
                    except FileNotFoundError:
                        changed = True
                    else:
                        if not changed:
                            raise  # not a damaged file: a genuine error of the query
                if any(file_key(p) is None for p in parts):
                    parts = self.relist()
                continue
            yield df
            return

    def _drop_damaged(self, parts: list[RunPath]) -> bool:
        found = False
        for part in parts:
            key = file_key(part)
            if key is None:
                raise FileNotFoundError(part)
            verdict = decode_part(part, key)
            if verdict.error:
                self.skip(part, verdict.error)
                found = True
        if not found:  # every part decodes alone: one whose values the table's types cannot hold?
            for part in parts:
                try:
                    scan_parts([part], self.schema).collect()
                except pl.exceptions.ColumnNotFoundError:
                    raise
                except DECODE_ERRORS as e:
                    if file_key(part) is None:
                        raise FileNotFoundError(part) from None
                    self.skip(part, f"its columns cannot be read as the table's types (schema drift): "
                                    f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                    found = True
        return found


def guarded_scan(scan: GuardedScan, detail: str) -> pl.LazyFrame:
    """``scan`` as a LazyFrame (``detail`` names it in polars' ``explain``)."""
    return register_io_source(scan, schema=scan.schema, explain_name="entrodiag", explain_detail=detail)


_PL_TYPES = {
    pa.int8(): pl.Int8, pa.int16(): pl.Int16, pa.int32(): pl.Int32, pa.int64(): pl.Int64,
    pa.uint8(): pl.UInt8, pa.uint16(): pl.UInt16, pa.uint32(): pl.UInt32, pa.uint64(): pl.UInt64,
    pa.float32(): pl.Float32, pa.float64(): pl.Float64, pa.bool_(): pl.Boolean,
    pa.string(): pl.String, pa.large_string(): pl.String, pa.null(): pl.Null,
}


def _polars_dtype(t: pa.DataType) -> pl.DataType:
    if t in _PL_TYPES:
        return _PL_TYPES[t]
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pl.List(_polars_dtype(t.value_type))
    return pl.from_arrow(pa.schema([("x", t)]).empty_table()).schema["x"]  # rare types: slow path


def polars_schema(schema: pa.Schema) -> pl.Schema:
    """The polars schema of an Arrow schema, mapped type by type: building an empty Arrow table
    instead would make pyarrow import pandas (~0.5 s on every command that reads a run)."""
    return pl.Schema({f.name: _polars_dtype(f.type) for f in schema})
