"""Part files of a run: listing a table folder, and the per-process cache of verdicts on each file.

A verdict (``Verdict``) says what is known of one version of a part file, keyed on (path, mtime,
size) (``file_key``): its footer's rows and schema (``read_footer``), whether every page decoded
(``decode_part``), or why it cannot be read. ``list_parts`` lists a table folder until two listings
agree and leaves out the parts a compacted part replaces; on an object store the listing also
records each object's time and size (``listed_key``), so a read asks the store nothing more.
"""

from __future__ import annotations

import errno
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .location import Location
from .rundir import RunPath, os_reason, unreachable_error
from .schema import parse_part_name

#: How often a read lists again or a query reruns after files vanished under it (a compaction).
RERUNS = 5

try:
    from polars.exceptions import PanicException as _Panic
except ImportError:  # pragma: no cover
    _Panic = Exception
#: What a part that does not decode raises (polars may panic on a corrupt page).
DECODE_ERRORS = (Exception, _Panic)
_NOT_FOUND = pafs.FileType.NotFound


@dataclass(frozen=True)
class Verdict:
    """What is known of one version of a part file: its footer's rows and schema, whether every
    page decoded (``decoded``), and ``error`` when it cannot be read."""

    rows: int = 0
    schema: pa.Schema | None = None
    error: str | None = None
    decoded: bool = False


Key = tuple[str, int, int]
VERDICTS: dict[Key, Verdict] = {}
_MAX_VERDICTS = 200_000
#: (URL, mtime, size) of the objects in the latest listing of each object-store folder, so that a
#: read does not ask the store about each part again (one HEAD request per part).
_LISTED: dict[str, Key] = {}


def file_key(path: RunPath) -> Key | None:
    """(path, mtime, size) of the file as it is now; ``None`` when it is gone."""
    if isinstance(path, Location):
        try:
            info = path.info()
        except FileNotFoundError:
            return None
        except OSError as e:  # the store cannot be reached: not a missing file
            raise unreachable_error(path, e) from None
        if info.type == _NOT_FOUND:
            return None
        return (str(path), info.mtime_ns or 0, info.size or 0)
    try:
        s = path.stat()
    except OSError:
        return None
    return (str(path), s.st_mtime_ns, s.st_size)


def listed_key(path: RunPath) -> Key | None:
    """``file_key`` from the folder's latest listing where there is one (object stores)."""
    hit = _LISTED.get(str(path)) if isinstance(path, Location) else None
    return hit or file_key(path)


def _remember(key: Key, verdict: Verdict) -> Verdict:
    if len(VERDICTS) >= _MAX_VERDICTS:
        VERDICTS.clear()
    VERDICTS[key] = verdict
    return verdict


def read_footer(path: RunPath, key: Key) -> Verdict:
    hit = VERDICTS.get(key)
    if hit is not None:
        return hit
    try:
        if isinstance(path, Location):
            meta = pq.read_metadata(path.fs_path, filesystem=path.fs)
        else:
            meta = pq.read_metadata(path)
        verdict = Verdict(rows=meta.num_rows, schema=meta.schema.to_arrow_schema())
    except FileNotFoundError:
        raise
    except OSError as e:
        if isinstance(path, Location):  # a store that cannot be reached: the part is not judged
            raise unreachable_error(path, e) from None
        verdict = Verdict(error=f"no readable footer, the file is cut or not Parquet: {type(e).__name__}: {e}")
    except Exception as e:  # truncated, empty or not Parquet at all
        verdict = Verdict(error=f"no readable footer, the file is cut or not Parquet: {type(e).__name__}: {e}")
    return _remember(key, verdict)


#: How many footers of an object store are fetched at once, in the whole process (each read mostly
#: waits on its request): one pool shared by every caller, so the index's runs read in threads
#: (``store.index.STORE_THREADS``) do not multiply it.
FOOTER_THREADS = 16
_footer_pool = None
_footer_pool_lock = threading.Lock()


def footer_pool():
    """The process's one ``ThreadPoolExecutor`` for footer fetches (made at first use)."""
    global _footer_pool
    with _footer_pool_lock:
        if _footer_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _footer_pool = ThreadPoolExecutor(FOOTER_THREADS, thread_name_prefix="entrodiag-footers")
        return _footer_pool


def prefetch_footers(parts: list[RunPath]) -> None:
    """Read the footers of the object-store ``parts`` not judged yet into the verdict cache, on the
    shared ``footer_pool`` (``FOOTER_THREADS`` requests at a time in the process; a part whose
    footer cannot be fetched is left for ``read_footer`` to judge and name; local parts are read
    as they are met, threads gain nothing)."""
    todo = [(p, k) for p in parts if isinstance(p, Location) and (k := listed_key(p)) is not None
            and k not in VERDICTS]
    if len(todo) < 2:
        return

    def one(item: tuple[Location, Key]) -> None:
        try:
            read_footer(*item)
        except Exception:  # noqa: BLE001 - judged again, one at a time, by the caller
            pass

    list(footer_pool().map(one, todo))


def decode_part(path: RunPath, key: Key) -> Verdict:
    """Decode every page of the part once (cached); the verdict says whether it can be read."""
    verdict = read_footer(path, key)
    if verdict.decoded or verdict.error:
        return verdict
    if isinstance(path, Location):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as e:  # a store that cannot be reached: the part is not judged
            raise unreachable_error(path, e) from None
    try:
        pl.read_parquet(io.BytesIO(data) if isinstance(path, Location) else path, glob=False,
                        hive_partitioning=False)
    except FileNotFoundError:
        raise
    except DECODE_ERRORS as e:
        if not path.exists():
            raise FileNotFoundError(path) from None
        return _remember(key, Verdict(rows=verdict.rows, schema=verdict.schema,
                                       error=f"a data page does not decode: {type(e).__name__}: {e}",
                                       decoded=True))
    return _remember(key, Verdict(rows=verdict.rows, schema=verdict.schema, decoded=True))



def broken_reason(path: RunPath) -> str | None:
    """Why a listed local entry cannot be opened although it is still there (a symbolic link to a
    missing file, a link loop, no permission), or ``None`` when it is gone (listed again)."""
    if not isinstance(path, Path):
        return None
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"cannot be opened: {os_reason(e)}"
    try:
        path.stat()
    except FileNotFoundError:
        return f"a symbolic link to a file that does not exist ({os.readlink(path)})"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link that points to itself (a loop)"
        return f"cannot be opened: {os_reason(e)}"
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
        raise unreachable_error(folder, e) from None
    for i in infos:
        if i.type == pafs.FileType.File:
            url = f"{folder.url}/{i.base_name}"
            _LISTED[url] = (url, i.mtime_ns or 0, i.size or 0)
    if len(_LISTED) > _MAX_VERDICTS:
        _LISTED.clear()
    return [i.base_name for i in infos]


#: A folder changed less than this many seconds before it was looked at is listed again next time
#: (its time may not show a change made within the same tick), as ``index.RACY_S``.
SETTLED_S = 2.0


def folder_stamp(folder: RunPath) -> int | None:
    """The modification time (ns) of a local table folder, which changes whenever a part file is
    added, renamed or removed in it (every writer and ``compact`` do that), so an unchanged stamp
    means an unchanged listing; ``None`` (list it) for an object store, a folder that is missing,
    or one changed within ``SETTLED_S``. Not seen: a part rewritten in place under its own name,
    which no entrodiag writer does (the guarded scan still skips it if it no longer decodes)."""
    if not isinstance(folder, Path):
        return None
    try:
        mtime = folder.stat().st_mtime_ns
    except OSError:
        return None
    return mtime if time.time_ns() - mtime >= SETTLED_S * 1e9 else None


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
