"""Reader of run directories: ``load_run(path) -> Run`` built on polars lazy scans.

Only completed part files (``part-r*-*.parquet``) are read, so a run can be read while it is
written. Step rows of several ranks merge into one row per step (rules in ``schema.STEP_COLUMNS``);
rows logged twice for the same (step, rank), e.g. by a resumed run or by ``log_scalars`` after
``record_batch``, coalesce column by column, the latest non-null value winning.

Damaged part files. This module is the one place that decides which part files are read; every
reader of a run (analyze, report, dashboard, watch, compare, inspect) goes through ``Run.scan``.
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
``Path``) and every rule above holds there too. Folders are listed with the store's LIST (twice,
until two listings agree), the verdict cache is keyed on the object's URL, modification time and
size from that listing, footers are read with pyarrow's filesystem, and the guarded scan hands
polars the parts' URLs (polars reads them with the same environment: ``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ...). A ``file://`` URL is read as the local path it names.
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from . import values
from . import location
from .location import Location, LocationError, locate
from .schema import CORE_TYPES, RUN_JSON, SCHEMA, STEP_COLUMNS, TABLES, parse_part_name, table_schema

#: A running run whose heartbeat is older than this many heartbeat intervals is interrupted.
STALE_HEARTBEATS = 3.0
#: The start of the warning that names a skipped part file.
SKIP_WARNING = "entrodiag: skipping unreadable part file"
#: The start of the warning that counts impossible values read as missing.
BAD_VALUES_WARNING = "entrodiag: impossible values read as missing"
#: How often a query reruns after files vanished under it (a compaction in progress).
_RERUNS = 5

try:  # polars' IO plugins (>= 1.16): the guarded scan
    from polars.io.plugins import register_io_source
except ImportError:  # pragma: no cover - older polars: every part is decoded once before a scan
    register_io_source = None

try:
    from polars.exceptions import PanicException as _Panic
except ImportError:  # pragma: no cover
    _Panic = Exception
_DECODE_ERRORS = (Exception, _Panic)


class RunError(ValueError):
    """A path that is not a readable entrodiag run; the message says what to do."""


#: Where a run lives: a local folder, or a folder on an object store.
RunPath = Path | Location


def run_path(path: str | os.PathLike | Location) -> RunPath:
    """``path`` as the reader holds it: ``location.run_path``'s ``Path`` for a local folder
    (``file://`` URLs included), a ``Location`` for an object-store URL. Raises ``LocationError``
    for an unusable URL."""
    held = path if isinstance(path, Location) else location.run_path(path)
    if isinstance(held, Path):
        return held
    loc = locate(held)
    return loc.local_path if loc.is_local else loc


def _unreachable(loc: Location, e: OSError) -> RunError:
    reason = " ".join(str(e).split())
    return RunError(f"{loc}: cannot read the object store ({reason[:300]}); check the URL, the endpoint "
                    "(AWS_ENDPOINT_URL) and the credentials (AWS_ACCESS_KEY_ID, ...) in the environment")


def _find_remote(loc: Location) -> Location:
    try:
        kind = loc.info().type
        if kind == _NOT_FOUND:
            bucket = loc.fs_path.split("/", 1)[0]
            if "/" in loc.fs_path and loc.fs.get_file_info(bucket).type == _NOT_FOUND:
                raise RunError(f"{loc}: the bucket {bucket!r} does not exist (or these credentials cannot "
                               "see it)")
            raise RunError(f"{loc}: no such run (nothing is stored under this prefix)")
        if kind != _DIRECTORY:
            raise RunError(f"{loc} is an object (a file); a run is a folder holding run.json")
        entries = loc.list()
        if any(e.base_name == RUN_JSON and e.type != _DIRECTORY for e in entries):
            return loc
        inside = [loc / e.base_name for e in entries
                  if e.type == _DIRECTORY and (loc / e.base_name / RUN_JSON).is_file()]
    except OSError as e:
        raise _unreachable(loc, e) from None
    return _the_only_run(loc, inside)


def find_run_dir(path: str | os.PathLike | Location) -> RunPath:
    """The run directory at ``path`` (a local path or a URL), or the only run directly inside it."""
    try:
        p = run_path(path)
    except LocationError as e:
        raise RunError(str(e)) from None
    if isinstance(p, Location):
        return _find_remote(p)
    try:
        if not p.exists():
            raise RunError(f"{p}: no such file or directory")
        if not p.is_dir():
            raise RunError(f"{p} is a file; a run is a directory holding run.json")
        if (p / RUN_JSON).is_file():
            return p
        inside = sorted(c for c in p.iterdir() if (c / RUN_JSON).is_file())
    except OSError as e:  # no permission to look inside
        raise RunError(f"{p}: cannot be read ({_why(e)})") from None
    return _the_only_run(p, inside)


def _the_only_run(folder: RunPath, inside: list) -> RunPath:
    """The one run among the runs ``inside`` a folder that is not a run itself, else why not."""
    if len(inside) == 1:
        return inside[0]
    if inside:
        names = ", ".join(c.name for c in inside[:5]) + (" ..." if len(inside) > 5 else "")
        raise RunError(f"{folder} holds {len(inside)} runs ({names}); name one of them")
    raise RunError(
        f"{folder} is not an entrodiag run: it has no run.json (a run directory is written by "
        "entrodiag.Recorder or `entrodiag train`)"
    )


def _read_meta(run_dir: RunPath) -> dict:
    try:
        meta = json.loads((run_dir / RUN_JSON).read_bytes().decode("utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RunError(f"{run_dir / RUN_JSON} is unreadable ({e}); is the disk full or the file cut?") from None
    return check_meta(meta, run_dir)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


_TEXT = (lambda v: isinstance(v, str), "text")
_OBJECT = (lambda v: isinstance(v, dict), "a JSON object")
_LIST = (lambda v: isinstance(v, list), "a list")
#: run.json fields the reader and the analyses interpret: the test each value must pass and what
#: it must be. A null or absent field is always accepted, except the heartbeat's two (numbers).
META_FIELDS: dict[str, tuple] = {
    **{k: _TEXT for k in ("run_id", "status", "created", "finished", "source", "model", "task", "intervention",
                          "host", "entrodiag_version", "entropy_control")},
    **{k: _OBJECT for k in ("config", "recorder", "imported", "entropy_semantics")},
    **{k: _LIST for k in ("resumed", "failed_checkpoints")},
    "heartbeat": (_number, "a number (unix seconds)"),
    "heartbeat_interval_s": (lambda v: _number(v) and v > 0, "a positive number of seconds"),
    "entropy_temperature": (lambda v: _number(v) and v > 0, "a positive number"),
    "pid": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "a process id (an integer)"),
    "world_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "entropy_hist_edges": (lambda v: isinstance(v, list) and all(x is None or _number(x) for x in v),
                           "a list of numbers (the last may be null)"),
}
_NOT_NULL = ("heartbeat", "heartbeat_interval_s")


def check_meta(meta, run_dir: RunPath | str) -> dict:
    """``meta`` (run.json of the run at ``run_dir``) when it is an entrodiag run.json of this
    schema whose fields (``META_FIELDS``) have the types the readers use; else ``RunError`` naming
    the file and the first bad field, e.g. ``runs/a/run.json: field 'heartbeat_interval_s' is
    "ten"; it must be a positive number of seconds``. Checked once, when run.json is read."""
    where = f"{str(run_dir).rstrip('/')}/{RUN_JSON}"
    if not isinstance(meta, dict) or not str(meta.get("schema", "")).startswith("entrodiag/"):
        raise RunError(f"{where} is not an entrodiag run.json (no 'schema' field)")
    if meta["schema"] != SCHEMA:
        raise RunError(f"{run_dir} uses schema {meta['schema']}, this entrodiag reads {SCHEMA}; upgrade entrodiag")
    for name, (ok, what) in META_FIELDS.items():
        if name in meta and (meta[name] is not None or name in _NOT_NULL) and not ok(meta[name]):
            shown = json.dumps(meta[name], default=str)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise RunError(f"{where}: field {name!r} is {shown}; it must be {what} (fix or remove the field)")
    return meta


def _writer_alive(meta: dict) -> bool:
    """False when the run's writer is known dead: stale heartbeat, or a dead pid on this host."""
    interval = float(meta.get("heartbeat_interval_s", 10.0))
    if time.time() - float(meta.get("heartbeat", 0.0)) > STALE_HEARTBEATS * interval + 1.0:
        return False
    if meta.get("host") == socket.gethostname() and meta.get("pid"):
        try:
            os.kill(int(meta["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, OSError):
            pass
    return True


def run_status(meta: dict) -> str:
    """A run's status from its run.json: the recorded one (running | finished | failed | stopped),
    except that a ``running`` run whose writer is known dead (a heartbeat older than
    ``STALE_HEARTBEATS`` intervals, or a dead pid on this host) is ``interrupted``. The one rule of
    ``inspect``, ``watch``, the dashboard and queries; it reads the clock, so a caller that holds
    an unchanged run.json asks again to learn that its writer died."""
    status = str(meta.get("status", "unknown"))
    if status == "running" and not _writer_alive(meta):
        return "interrupted"
    return status


# ------------------------------------------------------------------------- part files and verdicts
@dataclass(frozen=True)
class _Verdict:
    """What is known of one version of a part file: its footer's rows and schema, whether every
    page decoded (``decoded``), and ``error`` when it cannot be read."""

    rows: int = 0
    schema: pa.Schema | None = None
    error: str | None = None
    decoded: bool = False


_Key = tuple[str, int, int]
_VERDICTS: dict[_Key, _Verdict] = {}
_MAX_VERDICTS = 200_000
#: (URL, mtime, size) of the objects in the latest listing of each object-store folder, so that a
#: read does not ask the store about each part again (one HEAD request per part).
_LISTED: dict[str, _Key] = {}
_NOT_FOUND = pafs.FileType.NotFound
_DIRECTORY = pafs.FileType.Directory


def _key(path: RunPath) -> _Key | None:
    """(path, mtime, size) of the file as it is now; ``None`` when it is gone."""
    if isinstance(path, Location):
        try:
            info = path.info()
        except FileNotFoundError:
            return None
        except OSError as e:  # the store cannot be reached: not a missing file
            raise _unreachable(path, e) from None
        if info.type == _NOT_FOUND:
            return None
        return (str(path), info.mtime_ns or 0, info.size or 0)
    try:
        s = path.stat()
    except OSError:
        return None
    return (str(path), s.st_mtime_ns, s.st_size)


def _listed_key(path: RunPath) -> _Key | None:
    """``_key`` from the folder's latest listing where there is one (object stores)."""
    hit = _LISTED.get(str(path)) if isinstance(path, Location) else None
    return hit or _key(path)


def _remember(key: _Key, verdict: _Verdict) -> _Verdict:
    if len(_VERDICTS) >= _MAX_VERDICTS:
        _VERDICTS.clear()
    _VERDICTS[key] = verdict
    return verdict


def _footer(path: RunPath, key: _Key) -> _Verdict:
    hit = _VERDICTS.get(key)
    if hit is not None:
        return hit
    try:
        if isinstance(path, Location):
            meta = pq.read_metadata(path.fs_path, filesystem=path.fs)
        else:
            meta = pq.read_metadata(path)
        verdict = _Verdict(rows=meta.num_rows, schema=meta.schema.to_arrow_schema())
    except FileNotFoundError:
        raise
    except OSError as e:
        if isinstance(path, Location):  # a store that cannot be reached: the part is not judged
            raise _unreachable(path, e) from None
        verdict = _Verdict(error=f"no readable footer, the file is cut or not Parquet: {type(e).__name__}: {e}")
    except Exception as e:  # truncated, empty or not Parquet at all
        verdict = _Verdict(error=f"no readable footer, the file is cut or not Parquet: {type(e).__name__}: {e}")
    return _remember(key, verdict)


def _decode(path: RunPath, key: _Key) -> _Verdict:
    """Decode every page of the part once (cached); the verdict says whether it can be read."""
    verdict = _footer(path, key)
    if verdict.decoded or verdict.error:
        return verdict
    if isinstance(path, Location):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as e:  # a store that cannot be reached: the part is not judged
            raise _unreachable(path, e) from None
    try:
        pl.read_parquet(io.BytesIO(data) if isinstance(path, Location) else path, glob=False,
                        hive_partitioning=False)
    except FileNotFoundError:
        raise
    except _DECODE_ERRORS as e:
        if not path.exists():
            raise FileNotFoundError(path) from None
        return _remember(key, _Verdict(rows=verdict.rows, schema=verdict.schema,
                                       error=f"a data page does not decode: {type(e).__name__}: {e}",
                                       decoded=True))
    return _remember(key, _Verdict(rows=verdict.rows, schema=verdict.schema, decoded=True))


def _why(e: OSError) -> str:
    return f"{type(e).__name__}: {e.strerror or e}"


def _broken(path: RunPath) -> str | None:
    """Why a listed local entry cannot be opened although it is still there (a symbolic link to a
    missing file, a link loop, no permission), or ``None`` when it is gone (listed again)."""
    if not isinstance(path, Path):
        return None
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be opened: {_why(e)}"
    try:
        path.stat()
    except FileNotFoundError:
        return f"a symbolic link to a file that does not exist ({os.readlink(path)})"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link that points to itself (a loop)"
        return f"cannot be opened: {_why(e)}"
    return None


def _names(folder: RunPath) -> list[str]:
    """The names in ``folder`` (``FileNotFoundError`` when it does not exist)."""
    if isinstance(folder, Path):
        return sorted(e.name for e in os.scandir(folder))
    try:
        infos = folder.list()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise _unreachable(folder, e) from None
    for i in infos:
        if i.type == pafs.FileType.File:
            url = f"{folder.url}/{i.base_name}"
            _LISTED[url] = (url, i.mtime_ns or 0, i.size or 0)
    if len(_LISTED) > _MAX_VERDICTS:
        _LISTED.clear()
    return [i.base_name for i in infos]


def stat_files(folder: RunPath) -> list[tuple[str, int, int]]:
    """``(name, mtime_ns, size)`` of each file in ``folder`` (a ``Path`` or an object-store
    ``Location``), sorted by name; empty when the folder does not exist. One listing: what the
    watcher and the dashboard compare to see whether a run changed."""
    if isinstance(folder, Location):
        try:
            return [(i.base_name, i.mtime_ns or 0, i.size or 0) for i in folder.list()
                    if i.type == pafs.FileType.File]
        except FileNotFoundError:
            return []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for e in entries:
        try:
            s = e.stat()
        except OSError:  # removed since the listing
            continue
        if not e.is_dir():
            out.append((e.name, s.st_mtime_ns, s.st_size))
    return out


def list_parts(folder: RunPath) -> list[tuple[tuple[int, int, int], RunPath]]:
    """The completed part files of a table folder that hold its rows: ``((rank, first, last),
    path)`` in order of rank and sequence, without the parts a compacted part replaces.

    The folder is listed until two listings agree, so a listing made while ``entrodiag compact``
    swaps files is never a mix that misses rows. ``folder`` is a ``Path`` or an object-store
    ``Location`` (then the paths are ``Location``s too).
    """
    previous = None
    for _ in range(20):
        try:
            names = _names(folder)
        except FileNotFoundError:
            return []
        if names == previous:
            break
        previous = names
    found = [(ids, folder / name) for name in previous or [] if (ids := parse_part_name(name))]
    found.sort(key=lambda x: (x[0][0], x[0][1], -x[0][2]))  # rank, first, widest range first
    kept: list[tuple[tuple[int, int, int], RunPath]] = []
    reach: dict[int, int] = {}
    for (rank, first, last), path in found:
        if last <= reach.get(rank, -1):
            continue  # inside a compacted part listed before it
        kept.append(((rank, first, last), path))
        reach[rank] = last
    return kept


@dataclass
class Run:
    """A run directory, read lazily. Tables are polars DataFrames; ``scan(table)`` is lazy.

    ``skipped_parts``: the part files left out because they cannot be decoded (each named once in
    a warning). A corrupt page is found when a query first decodes it, so the list grows as the
    run is read; ``check()`` finds every one at once.
    """

    path: RunPath
    meta: dict
    skipped_parts: list[RunPath] = field(default_factory=list)
    #: Only rows with ``step <= max_step`` are read (``until``); ``None``: every row.
    max_step: int | None = None
    _skip_reasons: dict[RunPath, str] = field(default_factory=dict, repr=False)
    _bad: dict[str, dict] = field(default_factory=dict, repr=False)

    def until(self, step: int) -> Run:
        """The same run as it was after ``step``: every table without the rows of later steps
        (to replay what an analysis said at that point, e.g. when a flag was first raised)."""
        return Run(path=self.path, meta=self.meta, skipped_parts=self.skipped_parts, max_step=int(step),
                   _skip_reasons=self._skip_reasons)

    @property
    def run_id(self) -> str:
        return str(self.meta.get("run_id", self.path.name))

    @property
    def status(self) -> str:
        """running | finished | failed | stopped | interrupted (a writer that died without
        closing): ``run_status`` of run.json, decided anew at each call."""
        return run_status(self.meta)

    def parts(self, table: str) -> list[RunPath]:
        """Completed, readable part files of ``table`` (unreadable ones skipped with a warning)."""
        return self._parts(table)[0]

    def _parts(self, table: str) -> tuple[list[RunPath], pa.Schema | None]:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        for _ in range(_RERUNS):
            try:
                return self._list(table)
            except FileNotFoundError:  # a part vanished between listing and reading its footer
                continue
        return self._list(table)

    def _list(self, table: str) -> tuple[list[RunPath], pa.Schema | None]:
        folder = self.path / table
        try:
            listed = list_parts(folder)
        except OSError as e:  # a table folder that cannot be listed (permissions): the table is left out
            self._skip(folder, f"the folder cannot be listed, the whole table is left out: {_why(e)}")
            return [], None
        found: list[tuple[RunPath, _Verdict]] = []
        for _, part in listed:
            key = _listed_key(part)
            if key is None:
                broken = _broken(part)
                if broken is None:
                    raise FileNotFoundError(part)  # gone since the listing (a compaction): list again
                self._skip(part, broken)
                continue
            verdict = _footer(part, key)
            if verdict.error:
                self._skip(part, verdict.error)
            elif verdict.rows:
                found.append((part, verdict))
        if not found:
            return [], None
        schema, drift = table_schema(table, [v.schema for _, v in found], [v.rows for _, v in found])
        for i, why in drift.items():
            self._skip(found[i][0], why)
        return [part for i, (part, _) in enumerate(found) if i not in drift], schema

    def _skip(self, part: RunPath, reason: str) -> None:
        if part not in self.skipped_parts:
            self.skipped_parts.append(part)
            self._skip_reasons[part] = reason
            warnings.warn(f"{SKIP_WARNING} {part} ({reason})", stacklevel=4)

    def skipped(self) -> list[dict[str, str]]:
        """``skipped_parts`` as ``{"path": <path inside the run>, "reason": ...}`` (for summaries)."""
        out = []
        for part in self.skipped_parts:
            try:
                rel = str(part.relative_to(self.path))
            except ValueError:
                rel = str(part)
            out.append({"path": rel, "reason": self._skip_reasons.get(part, "unreadable")})
        return out

    def check(self, tables: tuple[str, ...] = TABLES, *, progress: bool = False) -> list[RunPath]:
        """Decode every page of every part of ``tables`` once (cached per file version) and return
        ``skipped_parts``: what a full read of the run leaves out. ``progress``: a progress bar
        on stderr when the check takes more than two seconds."""
        parts = [part for table in tables for part in self.parts(table)]
        if progress:
            from tqdm import tqdm

            parts = tqdm(parts, desc="checking part files", unit="part", delay=2.0, leave=False)
        for part in parts:
            key = _listed_key(part)
            if key is not None and (v := _decode(part, key)).error:
                self._skip(part, v.error)
        return list(self.skipped_parts)

    def scan(self, table: str, *, raw: bool = False) -> pl.LazyFrame:
        """All completed part files of ``table`` as one LazyFrame (raw rows, ranks unmerged).

        Impossible values are read as null and rows without a step dropped
        (``entrodiag.store.values``); ``raw=True`` reads them as stored.
        """
        parts, schema = self._parts(table)
        if not parts:
            return pl.LazyFrame()
        pschema = polars_schema(schema)
        if register_io_source is None:  # pragma: no cover - older polars
            self.check((table,))
            lf = pl.scan_parquet(_sources(self.parts(table)), schema=pschema, **_SCAN)
        else:
            lf = register_io_source(_GuardedScan(self, table, parts, pschema), schema=pschema,
                                    explain_name="entrodiag", explain_detail=f"{self.path.name}/{table}")
        if not raw:
            lf = values.mask(lf, pschema)
        return lf if self.max_step is None else lf.filter(pl.col("step") <= self.max_step)

    def bad_values(self, tables: tuple[str, ...] = TABLES) -> dict[str, dict[str, dict[str, int]]]:
        """Impossible values per table and column, by reason (``entrodiag.store.values``): what
        the reader reads as null. Counted once per table and ``Run``: from the rows when the table
        was already read whole, else in one lazy pass over its checked columns."""
        out = {}
        for table in tables:
            if table not in self._bad:
                lf = self.scan(table, raw=True) if self.parts(table) else None
                self._bad[table] = values.count(lf, lf.collect_schema()) if lf is not None else {}
            if self._bad[table]:
                out[table] = self._bad[table]
        return out

    def _collect(self, table: str, *, warn: bool = False) -> pl.DataFrame:
        """The whole table, impossible values read as null (counted from the same rows, and
        named in a warning when ``warn``)."""
        raw = self.scan(table, raw=True).collect()
        if raw.width == 0:  # no rows yet: an empty table that still has the core columns
            return pl.DataFrame(schema=polars_schema(pa.schema(CORE_TYPES[table])))
        counts = values.count(raw.lazy(), raw.schema)
        if self.max_step is None:
            self._bad[table] = counts
            if counts and warn:
                warnings.warn(f"{BAD_VALUES_WARNING} in {self.path}: {values.describe({table: counts})}",
                              stacklevel=3)
        return values.mask(raw.lazy(), raw.schema).collect() if counts else raw

    @cached_property
    def steps_by_rank(self) -> pl.DataFrame:
        """One row per (step, rank); repeated rows coalesced, the latest non-null value winning."""
        df = self._collect("steps", warn=True)
        if df.is_empty():
            return df
        return _coalesce(df, ["step", "rank"])

    @cached_property
    def steps(self) -> pl.DataFrame:
        """One row per step, ranks merged (token-weighted means, pooled stds, summed counts)."""
        return merge_ranks(self.steps_by_rank)

    @cached_property
    def tokens(self) -> pl.DataFrame:
        return self._collect("tokens")

    @cached_property
    def samples(self) -> pl.DataFrame:
        return self._collect("samples")

    @cached_property
    def spans(self) -> pl.DataFrame:
        return self._collect("spans")

    @cached_property
    def events(self) -> pl.DataFrame:
        """Flags raised live, alerts sent, intervention switches and stops, in order of step."""
        return self._collect("events").sort("step", "time")

    @cached_property
    def evals(self) -> pl.DataFrame:
        """One row per (step, name): ranks merged by ``n``-weighted mean (plain mean without n)."""
        df = self._collect("evals", warn=True)
        if df.is_empty():
            return df.select("step", "name", "value", "n")
        df = _coalesce(df, ["step", "name", "rank"])
        w = pl.col("n").fill_null(1).cast(pl.Float64)
        return (
            df.group_by("step", "name")
            .agg(
                value=(pl.col("value") * w).sum() / w.filter(pl.col("value").is_not_null()).sum(),
                n=pl.col("n").sum(),
            )
            .sort("step", "name")
        )


class _GuardedScan:
    """The IO source behind ``Run.scan``: the multi-file Parquet scan with the pushed-down
    projection, filter and row limit; on failure, each part is decoded once and the ones that
    fail are dropped (and named), or, when files vanished (a compaction), the folder is listed
    again; then the query reruns. Rows are yielded only once the whole query succeeded, so a
    rerun never repeats a row."""

    def __init__(self, run: Run, table: str, parts: list[RunPath], schema: pl.Schema) -> None:
        self.run, self.table, self.parts, self.schema = run, table, parts, schema

    def __call__(self, with_columns, predicate, n_rows, batch_size):
        parts = self.parts
        for attempt in range(_RERUNS + 1):
            parts = [p for p in parts if p not in self.run.skipped_parts]
            if not parts:
                yield pl.DataFrame(schema=self.schema).select(with_columns or pl.all())
                return
            lf = pl.scan_parquet(_sources(parts), schema=self.schema, **_SCAN)
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
            except _DECODE_ERRORS:
                if attempt == _RERUNS:
                    raise
                changed = any(_key(p) is None for p in parts)
                if not changed:
                    try:
                        changed = self._drop_damaged(parts)
                    except FileNotFoundError:
                        changed = True
                    else:
                        if not changed:
                            raise  # not a damaged file: a genuine error of the query
                if any(_key(p) is None for p in parts):
                    parts = self.run.parts(self.table)
                continue
            yield df
            return

    def _drop_damaged(self, parts: list[RunPath]) -> bool:
        found = False
        for part in parts:
            key = _key(part)
            if key is None:
                raise FileNotFoundError(part)
            verdict = _decode(part, key)
            if verdict.error:
                self.run._skip(part, verdict.error)
                found = True
        if not found:  # every part decodes alone: one whose values the table's types cannot hold?
            for part in parts:
                try:
                    pl.scan_parquet(_sources([part]), schema=self.schema, **_SCAN).collect()
                except pl.exceptions.ColumnNotFoundError:
                    raise
                except _DECODE_ERRORS as e:
                    if _key(part) is None:
                        raise FileNotFoundError(part) from None
                    self.run._skip(part, f"its columns cannot be read as the table's types (schema drift): "
                                         f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                    found = True
        return found


#: How every multi-file scan reads the listed parts: paths literal (a run folder named ``run[1]``
#: or ``exp*`` is not a pattern; no hive columns from ``lr=1e-6``), columns a part lacks read as
#: null, and types that widen safely (int32 -> int64, int -> float, float32 -> float64) cast to
#: the table's type (``schema.table_schema``).
_SCAN = dict(glob=False, hive_partitioning=False, missing_columns="insert", extra_columns="ignore",
             cast_options=pl.ScanCastOptions(integer_cast=["upcast", "allow-float"], float_cast="upcast"))


def _sources(parts: list[RunPath]) -> list[Path] | list[str]:
    """What polars' Parquet scan is given: local paths, or the objects' URLs (both taken literally)."""
    return [str(p) for p in parts] if parts and isinstance(parts[0], Location) else parts


def _coalesce(df: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    others = [c for c in df.columns if c not in keys]
    return (
        df.group_by(keys, maintain_order=True)
        .agg([pl.col(c).drop_nulls().last() for c in others])
        .sort(keys)
    )


def merge_ranks(by_rank: pl.DataFrame) -> pl.DataFrame:
    """Merge per-rank step rows into one row per step (see ``schema.STEP_COLUMNS``).

    Token means are weighted by ``n_tokens``, response means by ``n_responses``, group shares by
    ``n_groups``; stds are pooled; ``cov_mean`` is the covariance over the union of the ranks'
    tokens (from each rank's covariance and means); entropy quantiles are token-weighted means of
    the ranks' quantiles, exact for one rank and an approximation otherwise.
    """
    if by_rank.is_empty() or by_rank["rank"].n_unique() == 1:
        return by_rank.drop("rank", strict=False)
    cols = set(by_rank.columns)
    weights = {"tokens": "n_tokens", "responses": "n_responses", "groups": "n_groups"}
    aggs = []
    for name in by_rank.columns:
        kind, _, of = (STEP_COLUMNS[name][1] if name in STEP_COLUMNS else "mean").partition(":")
        if kind in ("key", "hist"):
            continue
        if kind == "sum":
            expr = pl.col(name).sum()
        elif kind == "max":
            expr = pl.col(name).max()
        elif kind in weights and weights[kind] in cols:
            expr = _wmean(pl.col(name), pl.col(name), weights[kind])
        elif kind.startswith("std_") and of in cols and weights[kind[4:]] in cols:
            w = weights[kind[4:]]
            second = _wmean(pl.col(name) ** 2 + pl.col(of) ** 2, pl.col(name), w)
            mean = _wmean(pl.col(of), pl.col(name), w)
            expr = (second - mean**2).clip(lower_bound=0).sqrt()
        elif kind == "cov" and {"logprob_mean", "advantage_mean", "n_tokens"} <= cols:
            cov, lp, adv = pl.col("cov_mean"), pl.col("logprob_mean"), pl.col("advantage_mean")
            expr = _wmean(cov + lp * adv, cov, "n_tokens") - _wmean(lp, cov, "n_tokens") * _wmean(
                adv, cov, "n_tokens"
            )
        else:
            expr = pl.col(name).mean()
        aggs.append(expr.alias(name))
    merged = by_rank.group_by("step").agg(aggs).sort("step")
    if "entropy_hist" in cols:
        merged = merged.join(_sum_hists(by_rank), on="step", how="left")
    return merged.select([c for c in by_rank.columns if c in merged.columns])


def _wmean(value: pl.Expr, present: pl.Expr, weight: str) -> pl.Expr:
    """Mean of ``value`` weighted by column ``weight`` over rows where ``present`` is not null."""
    w = pl.col(weight).cast(pl.Float64)
    ok = present.is_not_null() & w.is_not_null() & (w > 0)
    return (value * w).filter(ok).sum() / w.filter(ok).sum()


def _sum_hists(by_rank: pl.DataFrame) -> pl.DataFrame:
    rows = by_rank.select("step", "entropy_hist").drop_nulls()
    if rows.is_empty():
        return pl.DataFrame({"step": by_rank["step"].unique()}).with_columns(
            entropy_hist=pl.lit(None, dtype=by_rank.schema["entropy_hist"])
        )
    return (
        rows.with_columns(bin=pl.int_ranges(pl.col("entropy_hist").list.len()))
        .explode("entropy_hist", "bin")
        .group_by("step", "bin")
        .agg(pl.col("entropy_hist").sum())
        .sort("step", "bin")
        .group_by("step", maintain_order=True)
        .agg(pl.col("entropy_hist"))
    )


def load_run(path: str | os.PathLike | Location) -> Run:
    """Open the run at ``path`` (or the only run inside ``path``): a local folder or a URL
    (``s3://bucket/prefix/run``, ``gs://...``, ``file://...``; see ``entrodiag.store.location``).

    Raises ``RunError`` with a one-line message when ``path`` is not a run (or the object store
    cannot be read).

    Example:
        >>> run = load_run("runs/demo")            # doctest: +SKIP
        >>> run.status, run.steps["entropy_mean"][-1]  # doctest: +SKIP
    """
    run_dir = find_run_dir(path)
    return Run(path=run_dir, meta=_read_meta(run_dir))


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
