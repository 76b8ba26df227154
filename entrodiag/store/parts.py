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
from collections import OrderedDict
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


#: Object-store parts up to this size are fetched whole, once (one GET: the footer and every page),
#: and kept in memory (``part_bytes``), so the footer and every later scan read them from memory.
BLOB_MAX_PART = 16 << 20
#: At most this many bytes of parts are kept (the least recently used are dropped first).
BLOB_CACHE_BYTES = 256 << 20
_BLOBS: OrderedDict[Key, bytes] = OrderedDict()
_blob_bytes = 0
_blob_lock = threading.Lock()


def part_bytes(path: RunPath) -> bytes | None:
    """The bytes of an object-store part fetched by ``prefetch_footers``, as of the folder's latest
    listing (``listed_key``); ``None`` when they are not held (a local part, a large one, dropped)."""
    if not isinstance(path, Location):
        return None
    key = _LISTED.get(str(path))
    with _blob_lock:
        data = _BLOBS.get(key) if key is not None else None
        if data is not None:
            _BLOBS.move_to_end(key)
    return data


def clear_caches() -> None:
    """Forget every verdict and every part held in memory (the next read is a cold one)."""
    global _blob_bytes
    VERDICTS.clear()
    with _blob_lock:
        _BLOBS.clear()
        _blob_bytes = 0


def _keep_blob(key: Key, data: bytes) -> None:
    global _blob_bytes
    with _blob_lock:
        if key in _BLOBS or len(data) > BLOB_CACHE_BYTES:
            return
        _BLOBS[key] = data
        _blob_bytes += len(data)
        while _blob_bytes > BLOB_CACHE_BYTES:
            _blob_bytes -= len(_BLOBS.popitem(last=False)[1])


def read_footer(path: RunPath, key: Key) -> Verdict:
    hit = VERDICTS.get(key)
    if hit is not None:
        return hit
    try:
        if isinstance(path, Location):
            data = part_bytes(path)
            meta = pq.read_metadata(pa.BufferReader(data) if data is not None else path.fs_path,
                                    filesystem=None if data is not None else path.fs)
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
    """Fetch the object-store ``parts`` on the shared ``footer_pool`` (``FOOTER_THREADS`` requests
    at a time in the process): each part up to ``BLOB_MAX_PART`` whole, into the bytes cache
    (``part_bytes``: its footer and later scans read it from memory), and the footers of larger
    ones not judged yet into the verdict cache. A part that cannot be fetched is left for
    ``read_footer`` to judge and name; local parts are read as they are met (threads gain nothing)."""
    todo = [(p, k) for p in parts if isinstance(p, Location) and (k := listed_key(p)) is not None
            and (k not in VERDICTS or (k[2] <= BLOB_MAX_PART and part_bytes(p) is None))]
    if not todo:
        return

    list(footer_pool().map(lambda item: fetch_part(*item), todo))


def fetch_part(path: Location, key: Key) -> None:
    """One object-store part fetched for ``prefetch_footers`` (on its pool): whole when it is small,
    else its footer. Errors are left for ``read_footer`` to judge again, alone, and name."""
    try:
        if key[2] <= BLOB_MAX_PART:
            data = path.read_bytes()
            if len(data) == key[2]:  # the object listed, not one written since
                _keep_blob(key, data)
        read_footer(path, key)
    except Exception:  # noqa: BLE001 - judged again, one at a time, by the caller
        pass


def decode_part(path: RunPath, key: Key) -> Verdict:
    """Decode every page of the part once (cached); the verdict says whether it can be read."""
    verdict = read_footer(path, key)
    if verdict.decoded or verdict.error:
        return verdict
    if isinstance(path, Location):
        try:
            data = part_bytes(path) or path.read_bytes()
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
    return list_tree(folder, recursive=False).get("", [])


def list_tree(folder: Location, *, recursive: bool = True) -> dict[str, list[str]]:
    """One listing of an object-store folder: the names of each folder in it by its path below
    ``folder`` (``""``: ``folder`` itself), every object's (URL, time, size) kept for ``listed_key``.
    ``recursive``: the whole tree in one paginated LIST (a run's six table folders at once).
    ``FileNotFoundError`` when the folder does not exist."""
    try:
        infos = folder.list(recursive=recursive)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise unreachable_error(folder, e) from None
    base = folder.fs_path.rstrip("/") + "/"
    out: dict[str, list[str]] = {}
    for i in infos:
        sub, _, name = i.path[len(base):].rpartition("/")
        out.setdefault(sub, []).append(name)
        if i.type == pafs.FileType.File:
            url = f"{folder.url}/{i.path[len(base):]}"
            _LISTED[url] = (url, i.mtime_ns or 0, i.size or 0)
    if len(_LISTED) > _MAX_VERDICTS:
        _LISTED.clear()
    return out


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


def list_parts(folder: RunPath, lister=None) -> list[tuple[tuple[int, int, int], RunPath]]:
    """The completed part files of a table folder that hold its rows: ``((rank, first, last),
    path)`` in order of rank and sequence, without the parts a compacted part replaces.

    The folder is listed until two listings agree, so a listing made while ``entrodiag compact``
    swaps files is never a mix that misses rows. ``folder`` is a ``Path`` or an object-store
    ``Location`` (then the paths are ``Location``s too).
    """
    previous = None
    for _ in range(20):
        try:
            names = (lister or _names)(folder)
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
