"""One table of many local runs read at once: what the summary index does when it builds a table
for a root of a thousand runs (``RunsIndex.table_files``).

Opening the runs one by one costs, per run, each part's footer through pyarrow's Python wrapper
(a schema object per part) and a polars scan of its own. Here, for a batch of runs:

- each part's footer is read raw (one ``pread``) and matched byte for byte against the footers of
  the distinct schemas met so far (``FooterShape``: the Parquet schema's bytes, which come first in
  a footer, and its ``ARROW:schema`` entry); a match gives the part's row count (the next field)
  and its Arrow schema without parsing anything; a footer of a new shape is read once with
  pyarrow (``parts.read_footer``), which decides its schema as the reader does;
- the table's schema and its drift are decided once per distinct list of part schemas
  (``schema.table_schema``, as ``Run`` decides them);
- the runs whose parts all read with one schema and leave nothing out are read in ONE polars scan
  (``scan.scan_parts``: the same options, run and part order kept), impossible values made null
  (``values.mask``) and each run's rows finished as ``Run`` finishes them (``run.finish_table``).

Every other run is left to the caller to open on its own (``load_run``), where the reader judges
and names what it skips: a footer that does not match a known shape or does not parse, schema
drift, a part that cannot be opened, a folder that cannot be listed, a batch whose scan fails (a
corrupt data page, a part gone since the listing: the whole batch is then opened run by run).
A run read here has exactly ``load_run(run).<table>`` (test: ``tests/test_query.py``).

Not seen here, as not by ``load_run``'s listing either: a part rewritten in place under its name.
Local runs only (an object store's runs are opened one by one, their requests concurrent).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from . import values
from .parts import DECODE_ERRORS, file_key, list_parts, read_footer
from .run import empty_rows, finish_table
from .scan import polars_schema, scan_parts
from .schema import table_schema

#: At most this many rows are read in one scan (runs with many token rows are read a few at a time,
#: so memory stays about what one run at a time takes).
SCAN_ROWS = 2_000_000
#: How much of a part's end one read takes (the footer, usually a few KiB, and its length).
TAIL_BYTES = 1 << 16
_ARROW_KEY = b"ARROW:schema"
#: how a key-value entry with that key starts (Thrift compact: field 1, binary, 12 bytes long)
_ARROW_ENTRY = b"\x18\x0c" + _ARROW_KEY


@dataclass(frozen=True)
class FooterShape:
    """A distinct footer shape: the footer's bytes up to the end of its Parquet schema (``prefix``),
    its ``ARROW:schema`` key-value entry as bytes (``arrow``; ``None`` when it has none), and the
    Arrow schema pyarrow read from the first part of this shape."""

    prefix: bytes
    arrow: bytes | None
    schema: pa.Schema

    def rows(self, footer: bytes) -> int | None:
        """The row count of a footer of this shape; ``None`` when ``footer`` is not of it."""
        if not footer.startswith(self.prefix):
            return None
        found = _num_rows(footer, len(self.prefix))
        if found is None:
            return None
        rows, end = found
        if self.arrow is None:
            return rows if footer.find(_ARROW_KEY, end) < 0 else None
        if footer.count(_ARROW_KEY, end) != 1 or not footer.startswith(self.arrow, footer.find(_ARROW_ENTRY, end)):
            return None
        return rows


_SHAPES: list[FooterShape] = []
_SHAPES_LOCK = threading.Lock()
#: At most this many shapes are remembered (a root of many writers' schemas: the rest are read by
#: ``load_run``).
MAX_SHAPES = 256


def read_many(table: str, runs: dict[str, Path]) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """``table`` of each of ``runs`` (``{key: local run folder}``) as ``load_run(folder).<table>``
    returns it, for the runs this module can read in one scan; the keys of the others, to be
    opened one by one (see the module docstring)."""
    done: dict[str, pl.DataFrame] = {}
    left: list[str] = []
    by_schema: dict[int, tuple[pa.Schema, list[tuple[str, list[Path], list[int]]]]] = {}
    decided: dict[tuple, tuple[pa.Schema, dict]] = {}
    for key, folder in runs.items():
        found = _parts(folder / table)
        if found is None:
            left.append(key)
            continue
        if not found:
            done[key] = finish_table(table, empty_rows(table))
            continue
        order: dict[int, int] = {}
        for shape, rows in ((s, r) for _, s, r in found):
            order[id(shape)] = order.get(id(shape), 0) + max(rows, 1)
        shapes = {id(s): s for _, s, _ in found}
        ident = tuple(order.items()) if len(order) > 1 else tuple(order)
        if ident not in decided:
            decided[ident] = table_schema(table, [shapes[i].schema for i in order], list(order.values()))
        schema, drift = decided[ident]
        if drift:
            left.append(key)
            continue
        group = by_schema.setdefault(id(decided[ident]), (schema, []))
        group[1].append((key, [p for p, _, _ in found], [r for _, _, r in found]))
    for schema, members in by_schema.values():
        for chunk in _chunks(members):
            try:
                done.update(_scan(table, schema, chunk))
            except DECODE_ERRORS:  # a corrupt page, a part gone: the reader judges each run
                left.extend(key for key, _, _ in chunk)
    return done, left


def _chunks(members: list) -> list[list]:
    """``members`` in scans of at most ``SCAN_ROWS`` rows (a run with more is a scan of its own)."""
    out, rows = [[]], 0
    for m in members:
        n = sum(m[2])
        if out[-1] and rows + n > SCAN_ROWS:
            out.append([])
            rows = 0
        out[-1].append(m)
        rows += n
    return [c for c in out if c]


def _parts(folder: Path) -> list[tuple[Path, FooterShape, int]] | None:
    """The table folder's parts with rows: (path, shape, rows) in ``list_parts``' order; ``[]`` for
    no rows; ``None`` when a part is not read here (the reader judges it)."""
    try:
        listed = list_parts(folder)
    except OSError:
        return None
    out = []
    for _, part in listed:
        footer = _footer(part)
        if footer is None:
            return None
        for shape in _SHAPES:
            rows = shape.rows(footer)
            if rows is not None:
                break
        else:
            shape = _new_shape(part, footer)
            if shape is None:
                return None
            rows = shape.rows(footer)
            if rows is None:
                return None
        if rows:
            out.append((part, shape, rows))
    return out


def _footer(part: Path) -> bytes | None:
    """The footer's bytes of a Parquet file (one read), or ``None`` when it has none."""
    try:
        fd = os.open(part, os.O_RDONLY)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < 12:
            return None
        tail = os.pread(fd, min(size, TAIL_BYTES), max(0, size - TAIL_BYTES))
        if tail[-4:] != b"PAR1":
            return None
        n = int.from_bytes(tail[-8:-4], "little")
        if n + 12 > size:
            return None
        if n + 8 > len(tail):
            tail = os.pread(fd, n + 8, size - 8 - n)
        return tail[len(tail) - 8 - n:len(tail) - 8]
    except OSError:
        return None
    finally:
        os.close(fd)


def _new_shape(part: Path, footer: bytes) -> FooterShape | None:
    """The shape of a footer none matched: its schema's bytes found by walking its Thrift fields,
    its Arrow schema read by pyarrow as the reader reads it (``None`` when it cannot be, or when
    pyarrow's row count is not the one found here)."""
    try:
        end = _schema_end(footer)
        found = _num_rows(footer, end)
        if found is None:
            return None
        rows, after = found
        arrow = None
        at = footer.find(_ARROW_ENTRY, after)
        if at >= 0:
            i = at + 2 + len(_ARROW_KEY)
            if footer[i] != 0x18:
                return None
            n, j = _varint(footer, i + 1)
            arrow = footer[at:j + n]
        elif _ARROW_KEY in footer[after:]:
            return None
        key = file_key(part)
        if key is None:
            return None
        verdict = read_footer(part, key)
        if verdict.error or verdict.rows != rows:
            return None
    except (IndexError, ValueError, OSError):  # not a footer walked here, or a part gone since
        return None
    shape = FooterShape(footer[:end], arrow, verdict.schema)
    if shape.rows(footer) != rows:
        return None
    with _SHAPES_LOCK:  # kept for good (shapes are told apart by ``id`` in ``read_many``)
        if len(_SHAPES) >= MAX_SHAPES:
            return None
        _SHAPES.append(shape)
    return shape


def _scan(table: str, schema: pa.Schema,
          members: list[tuple[str, list[Path], list[int]]]) -> dict[str, pl.DataFrame]:
    """One polars scan of the members' parts (each run's table read with ``schema``), split by run."""
    pschema = polars_schema(schema)
    files = [p for _, parts, _ in members for p in parts]
    counts = [sum(rows) for _, _, rows in members]
    raw = scan_parts(files, pschema).collect()
    if raw.height != sum(counts):
        raise ValueError("the parts' rows are not their footers' counts")
    which = pl.Series("__run", np.repeat(np.arange(len(members), dtype=np.int64), counts))
    rows = values.mask(raw.with_columns(which).lazy(), pschema).collect()
    out = {}
    for (i,), part in rows.partition_by("__run", as_dict=True, maintain_order=True).items():
        out[members[i][0]] = finish_table(table, part.drop("__run"))
    for key, _, _ in members:  # every row of a run masked away (no step): an empty table
        if key not in out:
            out[key] = finish_table(table, rows.clear().drop("__run"))
    return out


# ----------------------------------------------------------------- Thrift (compact protocol) walk
def _varint(b: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        byte = b[i]
        i += 1
        out |= (byte & 0x7F) << shift
        if byte < 0x80:
            return out, i
        shift += 7


def _field(b: bytes, i: int, last: int) -> tuple[int, int, int]:
    """(field id, type, position after the header); type 0 is the end of a struct."""
    h = b[i]
    i += 1
    if h == 0:
        return 0, 0, i
    delta, kind = h >> 4, h & 0x0F
    if delta:
        return last + delta, kind, i
    z, i = _varint(b, i)
    return (z >> 1) ^ -(z & 1), kind, i


def _skip(b: bytes, i: int, kind: int) -> int:
    """The position after a value of Thrift compact type ``kind`` starting at ``i``."""
    if kind in (1, 2):  # a bool held in its field header
        return i
    if kind == 3:
        return i + 1
    if kind in (4, 5, 6):
        return _varint(b, i)[1]
    if kind == 7:
        return i + 8
    if kind == 8:
        n, i = _varint(b, i)
        return i + n
    if kind in (9, 10):
        h = b[i]
        i += 1
        n, elem = h >> 4, h & 0x0F
        if n == 15:
            n, i = _varint(b, i)
        for _ in range(n):
            i = i + 1 if elem in (1, 2) else _skip(b, i, elem)
        return i
    if kind == 11:
        n, i = _varint(b, i)
        if n:
            kv = b[i]
            i += 1
            for _ in range(n):
                i = _skip(b, i, kv >> 4)
                i = _skip(b, i, kv & 0x0F)
        return i
    if kind == 12:
        last = 0
        while True:
            last, t, i = _field(b, i, last)
            if t == 0:
                return i
            i = _skip(b, i, t)
    raise ValueError(f"unknown Thrift type {kind}")


def _schema_end(footer: bytes) -> int:
    """Where the footer's field 2 (the schema, a list of SchemaElement) ends: fields 1 and 2 are
    the first two written (a ``ValueError`` when they are not)."""
    fid, kind, i = _field(footer, 0, 0)
    if (fid, kind) != (1, 5):
        raise ValueError("not a Parquet footer: no version first")
    i = _skip(footer, i, kind)
    fid, kind, i = _field(footer, i, 1)
    if (fid, kind) != (2, 9):
        raise ValueError("not a Parquet footer: no schema second")
    return _skip(footer, i, kind)


def _num_rows(footer: bytes, i: int) -> tuple[int, int] | None:
    """Field 3 (``num_rows``, i64) at ``i``, right after the schema: (rows, position after it)."""
    if i >= len(footer) or footer[i] != 0x16:
        return None
    z, j = _varint(footer, i + 1)
    rows = (z >> 1) ^ -(z & 1)
    return (rows, j) if rows >= 0 else None
