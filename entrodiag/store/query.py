"""SQL over every run under a root: ``query(root, sql)`` runs DuckDB on the tables of all runs at once.

Tables (each with a ``run_id`` column: the run's path relative to the root, or its folder name
when the root is the run itself):

- ``runs``: one row per run: ``run_id``, ``path`` (where it lies), ``status`` (as ``load_run``
  reports it: a running run whose writer died is ``interrupted``), ``error`` (why a run could not
  be read, else null), and every field of run.json (nested ones such as ``config`` as JSON text:
  ``config->>'$.lr'``; run.json's own ``run_id`` and ``status`` as ``run_json_run_id`` and
  ``status_recorded``);
- ``steps`` (one row per step, ranks merged), ``evals`` (one row per step and name, ranks
  merged), ``events``, ``samples``, ``tokens``, ``spans``: the tables exactly as
  ``load_run(run).<table>`` returns them (compacted parts counted once, damaged parts skipped,
  impossible values null), so a query's per-run numbers are ``load_run``'s.

The tables come from the root's summary index (``entrodiag.store.index``): only the tables a query
names are built, and only for the runs whose files changed since the last query. DuckDB reads the
index's local Parquet files, so a root on an object store needs no DuckDB extension.

DuckDB is a core dependency (one small wheel with no dependencies of its own).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import polars as pl
import pyarrow as pa

from .index import RootError, RunsIndex
from .location import LocationError
from .run import Run, empty_rows
from .rundir import RunError
from .schema import TABLES

#: The tables a query can name, in the order ``--help`` lists them.
QUERY_TABLES = ("runs", *TABLES)


class QueryError(RunError):
    """A query that cannot run (bad SQL, no runs); the one-line message says what to do."""


def _tables_named(sql: str) -> list[str]:
    words = {w.lower() for w in re.findall(r"[A-Za-z_]+", sql)}
    return [t for t in QUERY_TABLES if t in words]


def runs_table(index: RunsIndex) -> pl.DataFrame:
    """The ``runs`` table: one row per run with its run.json fields (see the module docstring)."""
    metas, errors = index.metas(), index.errors()
    rows, kinds = [], {}
    for run in index.runs():
        meta = metas.get(run.run_id, {})
        status = "unreadable" if run.run_id in errors or not meta else Run(path=Path(run.url), meta=meta).status
        row = {"run_id": run.run_id, "path": run.url, "status": status, "error": errors.get(run.run_id)}
        for k, v in meta.items():
            if k in ("run_id", "status"):
                k = f"run_json_{k}" if k == "run_id" else "status_recorded"
            if isinstance(v, (dict, list)):
                v = json.dumps(v, sort_keys=True)
            row[k] = v
            kinds.setdefault(k, set()).add(_kind(v))
        rows.append(row)
    for k, ks in kinds.items():  # a field with values of several types becomes JSON text
        ks.discard(None)
        if len(ks) > 1:
            for row in rows:
                if k in row and row[k] is not None and not isinstance(row[k], str):
                    row[k] = json.dumps(row[k])
    return pl.DataFrame(rows, infer_schema_length=None)


def _kind(v) -> str | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return "text"


def connect(root: str | os.PathLike, sql: str | None = None, *, index_dir: str | os.PathLike | None = None,
            progress: bool = False, index: RunsIndex | None = None, sandbox: bool = False):
    """A DuckDB connection with the query tables of the runs under ``root`` as views (only the
    tables ``sql`` names, when given; all of them otherwise), and the ``RunsIndex`` they came from
    (``index.skipped()``: damaged part files left out, as ``load_run`` leaves them out).

    ``index`` replaces the index of ``root`` (e.g. one that lists fewer runs). ``sandbox``: the
    connection has DuckDB's external access off from its start and its configuration locked, and
    the index's tables are handed to it as Arrow datasets, so SQL reads those tables and nothing
    else: no file, URL or extension can be read, written, attached or installed.

    Raises ``QueryError`` when the root holds no runs, or none that can be read.
    """
    import duckdb

    index = index if index is not None else RunsIndex(root, index_dir=index_dir, progress=progress)
    try:
        runs = index.runs()
    except RootError as e:
        raise QueryError(str(e)) from None
    if not runs:
        raise QueryError(f"{index.root.url} holds no entrodiag runs (no run.json in it or in the folders below "
                         "it, 3 levels deep); a run directory is written by `entrodiag train`, `entrodiag import` "
                         "or entrodiag.Recorder")
    bad = index.errors()
    if all(r.run_id in bad for r in runs):  # else every table is empty: a count of 0 that means nothing
        first = bad[runs[0].run_id]
        more = f" (and {len(runs) - 1} more unreadable run(s))" if len(runs) > 1 else ""
        raise QueryError(f"{index.root.url} holds no readable entrodiag run: {first}{more}")
    wanted = _tables_named(sql) if sql is not None else list(QUERY_TABLES)
    if sandbox:
        return _sandboxed(duckdb, index, wanted), index
    con = duckdb.connect()
    if "runs" in wanted:
        con.register("_runs", runs_table(index).to_arrow())
        con.execute("create view runs as select * from _runs")
    files = index.table_files([t for t in wanted if t != "runs"])
    names = _literal_names(con, index.dir, files)
    for table, paths in files.items():
        if paths:
            listed = ", ".join(_sql_text(p) for p in names[table])
            con.execute(f"create view {table} as select * from read_parquet([{listed}], union_by_name=true)")
        else:
            con.register(f"_{table}", empty_table(table).to_arrow())
            con.execute(f"create view {table} as select * from _{table}")
    return con, index


#: The sandboxed connection's bounds: memory before it spills to its own temporary folder, threads.
SANDBOX_MEMORY = "2GB"
SANDBOX_THREADS = 2


def _sandboxed(duckdb, index: RunsIndex, wanted: list[str]):
    """``connect(sandbox=True)``'s connection: external access off, bounded memory and threads, a
    temporary folder of its own to spill to (removed with the connection), the tables as Arrow
    datasets."""
    import shutil
    import tempfile
    import weakref

    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    spill = tempfile.mkdtemp(prefix="entrodiag-sql-")
    con = duckdb.connect(config={"enable_external_access": False, "memory_limit": SANDBOX_MEMORY,
                                 "threads": SANDBOX_THREADS, "temp_directory": spill})
    weakref.finalize(con, shutil.rmtree, spill, True)
    if "runs" in wanted:
        con.register("runs", runs_table(index).to_arrow())
    for table, paths in index.table_files([t for t in wanted if t != "runs"]).items():
        if paths:
            schema = union_schema([pq.read_schema(p) for p in paths])
            con.register(table, ds.dataset([str(p) for p in paths], schema=schema, format="parquet"))
        else:
            con.register(table, empty_table(table).to_arrow())
    con.execute("set lock_configuration = true")
    return con


def union_schema(schemas: list[pa.Schema]) -> pa.Schema:
    """One schema holding every column of ``schemas``, as DuckDB's ``read_parquet(union_by_name=true)``
    gives it (what ``entrodiag query`` reads): types widened where Arrow can, and a column that is
    text in one run and a number (or anything else) in another read as text."""
    try:
        return pa.unify_schemas(schemas, promote_options="permissive")
    except pa.ArrowException:
        pass
    fields: dict[str, pa.Field] = {}
    for schema in schemas:
        for f in schema:
            have = fields.get(f.name)
            if have is None:
                fields[f.name] = f
                continue
            try:
                fields[f.name] = pa.unify_schemas([pa.schema([have]), pa.schema([f])],
                                                  promote_options="permissive").field(0)
            except pa.ArrowException:
                fields[f.name] = pa.field(f.name, pa.string())
    return pa.schema(list(fields.values()))


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: What DuckDB's read_parquet takes for a pattern in a path.
_PATTERN = re.compile(r"[*?\[\]]")


def _literal_names(con, index_dir: Path, files: dict[str, list[Path]]) -> dict[str, list[str]]:
    """The index's table files as DuckDB is to be given them, read literally. DuckDB reads a path
    holding ``*``, ``?`` or ``[`` as a pattern (with no escape), and the index folder may hold them
    (``--index``, ``$ENTRODIAG_CACHE`` or a home folder named so), so the files are named relative
    to the index folder, which is DuckDB's ``file_search_path`` (taken literally; a comma separates
    its entries, so a folder with a comma and no pattern character is named in full instead)."""
    base = str(Path(index_dir).absolute())
    if "," not in base:
        con.execute(f"set file_search_path = {_sql_text(base)}")
        return {t: [str(Path(p).absolute().relative_to(base)) for p in paths] for t, paths in files.items()}
    if _PATTERN.search(base):
        raise QueryError(f"{base}: the index folder's path holds a comma and one of * ? [ ], which DuckDB "
                         "cannot read literally; pass --index with another folder")
    return {t: [str(p) for p in paths] for t, paths in files.items()}


def query(root: str | os.PathLike, sql: str, *, index_dir: str | os.PathLike | None = None,
          progress: bool = False, index: RunsIndex | None = None, sandbox: bool = False) -> pa.Table:
    """Run ``sql`` (DuckDB's dialect) over the runs under ``root`` (a folder or a URL) and return
    the result as an Arrow table. See the module docstring for the tables; ``index`` and
    ``sandbox`` as in ``connect``.

    Raises ``QueryError`` with a one-line message for SQL that does not run (naming the tables)
    and for a root without runs (or without a readable one).

    Example:
        >>> query("runs", "select run_id, max(step) from steps group by run_id")   # doctest: +SKIP
    """
    return query_with_index(root, sql, index_dir=index_dir, progress=progress, index=index, sandbox=sandbox)[0]


def query_with_index(root, sql: str, *, index_dir=None, progress: bool = False, index: RunsIndex | None = None,
                     sandbox: bool = False, max_rows: int | None = None) -> tuple[pa.Table, RunsIndex]:
    """``query``'s result and the ``RunsIndex`` it read (its ``errors()`` and ``skipped()`` say
    which runs and part files were left out). ``max_rows``: at most that many rows are read (DuckDB
    stops there; the rest is never materialised)."""
    import duckdb

    try:
        con, index = connect(root, sql, index_dir=index_dir, progress=progress, index=index, sandbox=sandbox)
    except LocationError as e:
        raise QueryError(str(e)) from None
    except pa.ArrowException as e:  # a table whose runs' columns Arrow cannot put in one schema
        raise QueryError(f"{root}: the runs' tables cannot be read together ({e}); `entrodiag inspect` "
                         "the runs named there") from None
    try:
        rel = con.sql(sql)
        if rel is None:
            return pa.table({}), index
        return (rel.limit(max_rows) if max_rows is not None else rel).to_arrow_table(), index
    except (duckdb.Error, pa.ArrowException) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QueryError(f"{first} (tables: {describe_tables()})") from None
    finally:
        con.close()


def connect_and_run(root: str | os.PathLike, sql: str, *, index_dir: str | os.PathLike | None = None,
                    fmt: str = "table") -> tuple[str, list[str]]:
    """``entrodiag query``: the result rendered as ``fmt`` (``render``) and notes for stderr (runs
    that could not be read, damaged part files left out)."""
    table, index = query_with_index(root, sql, index_dir=index_dir, progress=True)
    return render(table, fmt), query_notes(index)


def query_notes(index: RunsIndex) -> list[str]:
    """What a query over ``index`` left out: unreadable runs, damaged part files skipped."""
    notes = [f"run {run_id} left out: {why}" for run_id, why in index.errors().items()]
    notes += [f"run {run_id}: {len(parts)} damaged part file(s) skipped, as load_run skips them "
              f"(entrodiag inspect names them): {', '.join(parts)[:300]}" for run_id, parts in index.skipped().items()]
    return notes


def describe_tables() -> str:
    """The query tables in one line (for error messages and ``--help``)."""
    return ("runs (run.json fields, status, path), steps (one row per step, ranks merged), evals (step, name, "
            "value, n), events, samples, tokens, spans; each has run_id")


def render(table: pa.Table, fmt: str = "table", *, max_rows: int = 100) -> str:
    """The result as text: ``table`` (aligned columns, at most ``max_rows`` rows with a note of the
    rest), ``json`` (``as_json``: ``schema_version``, ``columns`` and an array of row objects; NaN and
    infinities as null) or ``csv`` (a header,
    then one line per row; lists and structs as JSON text; a text cell or column name starting
    with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'``, so that a spreadsheet shows
    it as text instead of running it as a formula)."""
    df = pl.from_arrow(table) if table.num_columns else pl.DataFrame()
    if isinstance(df, pl.Series):
        df = df.to_frame()
    if fmt == "json":
        return json.dumps(as_json(table), default=str)
    if fmt == "csv":
        import csv
        import io

        out = io.StringIO()
        w = csv.writer(out, lineterminator="\n")
        w.writerow([_inert(c) for c in df.columns])
        for row in df.iter_rows():
            w.writerow(["" if v is None else _inert(json.dumps(_plain(v), default=str)) if isinstance(v, (list, dict))
                        else _inert(v) for v in row])
        return out.getvalue().rstrip("\n")
    if df.width == 0:
        return "(no columns)"
    with pl.Config(tbl_rows=max_rows, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200,
                   tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True, float_precision=None):
        text = str(df.head(max_rows))
    rest = df.height - max_rows
    note = f"\n{df.height} rows; {rest} more not shown (--csv or --json prints every row)" if rest > 0 else \
        f"\n{df.height} row{'s' if df.height != 1 else ''}"
    return text + note


def as_json(table: pa.Table) -> dict:
    """The result as the published query document (``entrodiag/schemas/query.schema.json``):
    ``schema_version``, ``columns`` and ``rows`` (one object per row; NaN and infinities as null)."""
    from ..schemas import stamp

    df = pl.from_arrow(table) if table.num_columns else pl.DataFrame()
    if isinstance(df, pl.Series):
        df = df.to_frame()
    return stamp({"columns": list(df.columns),
                  "rows": [{k: _plain(v) for k, v in row.items()} for row in df.to_dicts()]})


#: first characters that make a spreadsheet read a cell as a formula (OWASP, "CSV Injection")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _inert(v):
    """A text cell that a spreadsheet would run as a formula (``=HYPERLINK(...)``, ``@SUM(...)``; a
    column or metric name from a logged file can be anything), behind a ``'`` that makes it text;
    numbers and other text as they are."""
    return "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v


def _plain(v):
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return v


def empty_table(table: str) -> pl.DataFrame:
    """An empty ``table`` with ``run_id`` and the core columns (for a table no run has rows in)."""
    schema = empty_rows(table).schema
    if table in ("steps", "evals"):  # merged: one row per step (per name), no rank
        schema.pop("rank", None)
    return pl.DataFrame(schema={"run_id": pl.String, **schema})
