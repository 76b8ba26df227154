"""Reader of run directories: ``load_run(path) -> Run`` built on polars lazy scans.

The rules every reader of a run follows, and the names it is imported by. The code lives in
modules by job: ``rundir`` (finding a run), ``meta`` (run.json and the status), ``parts`` (listing
part files, the verdict cache), ``scan`` (the guarded scan), ``merge`` (rank merging) and ``run``
(``Run``, ``load_run``).

Only completed part files (``part-r*-*.parquet``) are read, so a run can be read while it is
written. Step rows of several ranks merge into one row per step (rules in ``schema.STEP_COLUMNS``);
rows logged twice for the same (step, rank), e.g. by a resumed run or by ``log_scalars`` after
``record_batch``, coalesce column by column, the latest non-null value winning.

Damaged part files. These modules are the one place that decide which part files are read; every
reader of a run (analyze, report, dashboard, watch, compare, inspect) goes through ``Run.scan``,
except analyze's one streamed pass over the token rows (``store.stream.stream_pass``) and the
index's bulk read of many runs (``store.bulk``), which scan plainly and, on any decode error, fall
back to ``Run.check`` and ``Run.scan`` (or ``load_run``), so the same parts are skipped and named.
A part file that cannot be decoded is skipped, named once in a warning, listed in
``Run.skipped_parts``, and the read goes on without it:

- a bad footer (a truncated file, not Parquet at all) is found when the folder is listed (the
  footer is read anyway, for the schema);
- so is schema drift: a part whose column cannot be read as the table's type (``step`` or
  ``entropy_mean`` as text) is skipped; types that widen without loss (int -> float, int32 ->
  int64, float32 -> float64) are read and cast (``schema.table_schema``);
- a symbolic link to a missing file or to itself, or a part that cannot be opened, is skipped
  when the folder is listed; a table folder that cannot be listed (no permission) leaves the
  whole table out, named by the folder;
- a corrupt data page behind a good footer shows only when the page is decoded, late, inside a
  lazy query. ``Run.scan`` therefore returns a LazyFrame whose scan is a small polars IO source:
  it runs the ordinary multi-file Parquet scan (projection, filter and row limit pushed down),
  and only when that fails does it decode each part of the table once, drop the ones that fail
  and run the query again. A healthy run pays nothing for the check.

Verdicts are cached per process on (path, mtime, size): footers are read once per file, a part
found corrupt is skipped at once by every later ``Run`` of this process, and a rewritten file is
judged again. ``Run.check()`` decodes every part eagerly (``entrodiag inspect``, ``compact``).
A ``Run`` reuses its listing of a table folder while the folder's modification time is unchanged
and older than ``parts.SETTLED_S`` (on an object store: for ``run.STORE_LISTING_S`` seconds).

Compacted parts (``entrodiag compact``): a part ``part-r<rank>-<first>-<last>.parquet`` replaces
the parts of the same rank whose sequence numbers lie in ``first..last``, which are then ignored,
so a reader never sees their rows twice; the folder is listed until two listings agree, so a
listing made while the compactor deletes the old parts cannot miss the new one, and a query whose
files vanished under it lists again and reruns.

Impossible values (negative or infinite entropies, NaN, ...) are read as null and counted
(``entrodiag.store.values``). run.json is checked once, when the run is opened (``check_meta``).

Paths are literal: parts are listed here and polars is handed the explicit list with its glob
off, so a run folder named ``run[1]`` or ``exp*`` reads exactly its own parts.

A run may live on an object store (``s3://bucket/prefix/run``, ``gs://...``; see
``entrodiag.store.location``): ``Run.path`` is then a ``Location`` (joined with ``/`` like a
``Path``) and every rule above holds there too. A run's table folders are listed in one recursive
LIST (twice, until two listings agree), the verdict cache is keyed on the object's URL,
modification time and size from that listing. Parts up to ``parts.BLOB_MAX_PART`` are fetched
whole, ``parts.FOOTER_THREADS`` at a time, and held in memory (at most ``parts.BLOB_CACHE_BYTES``
in the process, keyed like the verdicts, so a part written since is fetched again): their footers
and every later scan read them there, so an analysis that reads a table twenty times fetches each
part once. Larger parts' footers are read with pyarrow's filesystem and polars is handed their
URLs (polars reads them with the same environment: ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). A ``file://`` URL is read as the local path it names.
"""

from __future__ import annotations

import time  # noqa: F401  (``reader.time``: what tests of the heartbeat's clock patch)

from .merge import merge_ranks
from .meta import META_FIELDS, STALE_HEARTBEATS, check_meta, run_status
from .parts import VERDICTS, list_parts, stat_files
from .rundir import RunError, RunPath, find_run_dir, run_path
from .run import BAD_VALUES_WARNING, SKIP_WARNING, Run, load_run
from .scan import polars_schema
from .schema import TABLES

#: The verdict cache under its old name (tests and benchmarks clear and inspect it).
_VERDICTS = VERDICTS

__all__ = [
    "BAD_VALUES_WARNING", "META_FIELDS", "SKIP_WARNING", "STALE_HEARTBEATS", "TABLES", "Run", "RunError",
    "RunPath", "check_meta", "find_run_dir", "list_parts", "load_run", "merge_ranks", "polars_schema", "run_path",
    "run_status", "stat_files",
]
