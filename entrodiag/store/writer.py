"""Crash-safe writer of a run directory (a local folder or an object-store URL).

Rows are buffered per table and written as whole Parquet part files by one background thread,
so a reader never sees half a file and a crash loses at most the rows not yet flushed. Rank 0
owns ``run.json`` and refreshes its heartbeat; other ranks only write their own part files.

Local folders: each part goes to a hidden temporary name in its table folder, is fsynced, then
renamed into place with ``os.replace`` (and the folder fsynced); run.json likewise.

Object stores (``s3://``, ``gs://``; see ``entrodiag.store.location``): there is no rename, so
each part is serialised to bytes in memory and written once under its final name
(``put_object``); the store makes an object visible only when its upload completes, whole.
What differs from a local folder:

- no fsync and no temporary files: an object is durable once its PUT returns, and absent
  (nothing to clean up) if the writer dies before that;
- run.json and its heartbeat are whole-object overwrites: a reader sees the previous version or
  the new one; only rank 0 writes it, so the last writer wins only against a second process
  wrongly writing the same run (``resume`` while the first still runs);
- listing is what the store's listing returns: S3 and GCS list a new object as soon as its PUT
  has returned (strong read-after-write), S3-compatible stores may list it a moment later; a
  reader then simply sees the part on its next read;
- part names never collide across ranks (each rank writes only ``part-r<rank>-*``), and one
  rank's sequence numbers continue after its existing parts (listed at start);
- an unreachable store mid-run (network, credentials expiring, a deleted bucket) makes writes
  fail: each failure is logged and counted in ``errors`` and the rows kept for the next flush,
  as for a full disk; the run goes on.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import logging
import os
import queue
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from .location import Location, LocationError, check_store, is_url, locate
from .meta import STALE_HEARTBEATS, run_status
from .rows import Batch, Rows, event_row, to_arrow, warm_up  # noqa: F401  (event_row: imported from here)
from .schema import OUTSIDE_RANK, PART_GLOB, RUN_JSON, SCHEMA, TABLES, parse_part_name, part_name

log = logging.getLogger("entrodiag")

_MAX_LOGGED_ERRORS = 10


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunExistsError(FileExistsError):
    """The run directory already holds a run (its run.json exists), e.g. claimed a moment ago by
    another process writing the same directory."""


class RunInUseError(RunExistsError):
    """The run is still being written: its run.json says ``running`` and its writer is alive (a
    fresh heartbeat, and on this host a live pid; in this process, an open ``RunWriter``). A
    resume must wait for it to end: two writers on one run would interleave their rows."""


#: rank-0 writers open in this process (a writer whose run.json names this process's pid is live
#: only while one of them writes that run)
_OPEN_WRITERS: weakref.WeakSet = weakref.WeakSet()


def _run_key(location: Location) -> tuple[str, str]:
    path = str(Path(location.fs_path).resolve()) if location.is_local else location.fs_path.rstrip("/")
    return type(location.fs).__name__, path


def check_no_live_writer(run_dir: str | os.PathLike | Location, meta: dict | None = None) -> None:
    """Raise ``RunInUseError`` (one line: who writes it, how to go on) when the run at ``run_dir``
    is still being written by a live writer; return quietly for a run that ended, one whose
    writer died (killed, out of memory: ``run_status`` says ``interrupted``) and a folder
    without run.json. ``meta``: its run.json when already read. The rule a resume obeys (the
    trainer's ``--resume``, ``Recorder(resume=True)``, ``truncate_run``); a new run is kept
    apart from a live one by creating run.json exclusively."""
    location = run_dir if isinstance(run_dir, Location) else locate(run_dir)
    if meta is None:
        target = location.child(RUN_JSON)
        try:
            meta = json.loads(target.read_bytes())
        except (OSError, ValueError):
            return  # no run.json (nothing to take over) or an unreadable one (the reader says so)
    if not isinstance(meta, dict) or run_status(meta) != "running":
        return
    if meta.get("host") == socket.gethostname() and meta.get("pid") == os.getpid():
        key = _run_key(location)
        if not any(not w._closed and _run_key(w.location) == key for w in list(_OPEN_WRITERS)):
            return  # this process wrote it and no longer does
    try:
        age = f"{max(0.0, time.time() - float(meta.get('heartbeat'))):.0f} s ago"
        stale = STALE_HEARTBEATS * float(meta.get("heartbeat_interval_s") or 10.0) + 1.0
    except (TypeError, ValueError):
        age, stale = "at an unknown time", STALE_HEARTBEATS * 10.0 + 1.0
    raise RunInUseError(
        f"{location.url} is still being written (status running; writer pid {meta.get('pid')} on "
        f"{meta.get('host')}, last heartbeat {age}): wait for it to end or stop it, then resume (a writer "
        f"that died is seen at once on its host, elsewhere once its heartbeat is {stale:.0f} s old)")


def write_json_atomic(path: Path, data: dict, *, exclusive: bool = False) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file, fsync and ``os.replace``.
    ``exclusive``: only if ``path`` does not exist yet, decided atomically (a hard link of the
    temporary file; ``FileExistsError`` when another process got there first)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links: checked, then replaced
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
            else:
                tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # no half-written file left behind (a full disk)
        raise
    fsync_dir(path.parent)


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write the file ``path`` whole or not at all: ``write(f)`` fills a temporary file in the same
    folder (``.NAME.tmp``), which is fsynced and renamed into place, then the folder is fsynced.
    On any failure the temporary file is removed and the error raised; ``path`` is untouched."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return path


def put_object(location: Location, write: Callable[[BinaryIO], object]) -> None:
    """Write the file or object ``location`` whole or not at all. Local: ``write_atomic``
    (temporary file, fsync, rename). Object store: ``write(f)`` fills an in-memory buffer, which
    is then written in one upload under the final name (an object appears only once complete)."""
    if location.is_local:
        write_atomic(location.local_path, write)
        return
    buf = io.BytesIO()
    write(buf)
    location.write_bytes(buf.getvalue())


def put_json(location: Location, data: dict) -> None:
    """Write ``data`` as JSON to ``location`` whole (``write_json_atomic`` on a local folder)."""
    if location.is_local:
        write_json_atomic(location.local_path, data)
    else:
        location.write_bytes(json.dumps(data, indent=2, sort_keys=True, default=str).encode("utf-8"))


def one_line(e: BaseException) -> str:
    """An exception's message on one line (pyarrow's store errors can span several)."""
    return " ".join(str(e).split()) or type(e).__name__


def fsync_dir(path: Path) -> None:
    """fsync the folder ``path`` (so a rename inside it is durable); silent where a folder cannot be."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_events(run_dir: str | os.PathLike, rows: list[Rows], *, rank: int = OUTSIDE_RANK) -> Path | str | None:
    """Write ``rows`` (each from ``event_row``) as one whole part file of ``<run>/events/``, for a
    process that does not own the run's writer (``entrodiag watch``). Atomic like every part file
    (one whole object on an object store); the sequence number is the time in microseconds, so
    two watchers never collide. Returns the part's path (its URL on an object store)."""
    if not rows:
        return None
    data = pa.concat_tables([to_arrow("events", r) for r in rows])
    if not is_url(run_dir):
        folder = Path(run_dir) / "events"
        folder.mkdir(exist_ok=True)
        seq = time.time_ns() // 1000
        while (folder / part_name(rank, seq)).exists():
            seq += 1
        return write_atomic(folder / part_name(rank, seq), lambda f: pq.write_table(data, f, compression="zstd"))
    folder = locate(run_dir).child("events")
    seq = time.time_ns() // 1000
    while folder.child(part_name(rank, seq)).exists():
        seq += 1
    target = folder.child(part_name(rank, seq))
    put_object(target, lambda f: pq.write_table(data, f, compression="zstd"))
    return target.local_path if target.is_local else target.url


class RunWriter:
    """Buffered, background, atomic writer of one rank's part files (and, on rank 0, run.json).

    ``append`` and ``submit`` only enqueue: the calling thread never waits for disk (it waits
    only when more than ``max_queue`` items are pending, so memory stays bounded). Failures in
    the background are logged and counted in ``errors``, never raised into the caller.

    Raises ``RunExistsError`` (a ``FileExistsError``) when ``run_dir`` already holds a run and
    ``resume`` is false; on a local folder the check and the creation of run.json are one atomic
    step, so of two writers starting on one folder at once exactly one gets it.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        *,
        rank: int = 0,
        meta: dict | None = None,
        resume: bool = False,
        flush_rows: int = 100_000,
        flush_interval_s: float = 30.0,
        heartbeat_s: float = 10.0,
        max_queue: int = 64,
    ) -> None:
        if flush_rows < 1 or flush_interval_s <= 0 or heartbeat_s <= 0:
            raise ValueError("flush_rows, flush_interval_s and heartbeat_s must be positive")
        #: where the run lives: its filesystem (local or object store) and path
        self.location = locate(run_dir)
        #: the run directory as given: a ``Path`` for a local folder, the URL text for an object store
        self.path: Path | str = (
            (Path(run_dir) if not is_url(run_dir) else self.location.local_path) if self.location.is_local
            else self.location.url
        )
        self.rank = int(rank)
        self.flush_rows = int(flush_rows)
        self.flush_interval_s = float(flush_interval_s)
        self.heartbeat_s = float(heartbeat_s)
        self.errors = 0
        self.dropped_rows = 0
        self._closed = False
        self._meta: dict | None = None
        if self.location.is_local:
            self.path.mkdir(parents=True, exist_ok=True)
            if self.rank == 0:
                self._meta = self._open_meta(meta or {}, resume)
                _OPEN_WRITERS.add(self)
            for t in TABLES:
                (self.path / t).mkdir(exist_ok=True)
                for stale in (self.path / t).glob(f".part-r{self.rank:05d}-*.tmp"):
                    stale.unlink(missing_ok=True)  # a temporary part of this rank's writer that crashed
            self._seq = self._next_seq()
        else:  # an object store: no folders to make, no temporary files to clean up
            check_store(self.location)  # the store answers and the bucket exists, on every rank
            try:
                if self.rank == 0:
                    self._meta = self._open_meta(meta or {}, resume)
                    _OPEN_WRITERS.add(self)
                self._seq = self._next_seq()
            except RunExistsError:
                raise
            except OSError as e:
                raise LocationError(
                    f"{self.path}: cannot write the run there ({one_line(e)}); check that the bucket exists and "
                    "the credentials/endpoint in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, "
                    "AWS_ENDPOINT_URL, GOOGLE_APPLICATION_CREDENTIALS, ...)"
                ) from None
        self._buffers: dict[str, list[pa.Table]] = {t: [] for t in TABLES}
        self._buffered: dict[str, int] = {t: 0 for t in TABLES}
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name=f"entrodiag-writer-r{rank}", daemon=True)
        self._thread.start()
        ref = weakref.ref(self)
        self._atexit = lambda: (w := ref()) is not None and w._shutdown(status=None)
        atexit.register(self._atexit)

    # ----------------------------------------------------------------- public (caller's thread)
    def append(self, table: str, columns: Rows) -> None:
        """Queue rows (a dict of equal-length columns) for ``table``."""
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        self._put(("rows", [(table, columns)]))

    def submit(self, work: Callable[[], Batch]) -> None:
        """Queue a function that runs on the writer thread and returns ``[(table, columns), ...]``.

        Its exceptions are logged and counted (``errors``), never raised into the caller.
        """
        self._put(("call", work))

    def flush(self, timeout: float | None = 60.0) -> bool:
        """Write every row queued so far; returns False if that took longer than ``timeout``."""
        if self._closed:
            return True
        done = threading.Event()
        self._put(("flush", done))
        return done.wait(timeout)

    def update_meta(self, **fields: Any) -> None:
        """Merge ``fields`` into run.json (rank 0 only; a no-op elsewhere)."""
        if self._meta is not None:
            self._put(("meta", fields))

    def close(self, status: str = "finished", **fields: Any) -> None:
        """Flush everything, stop the thread and (rank 0) record ``status`` in run.json."""
        self._shutdown(status=status, **fields)

    # -------------------------------------------------------------------------- internals
    def _put(self, item: tuple) -> None:
        if self._closed:
            raise RuntimeError(f"the writer of {self.path} is closed")
        self._queue.put(item)

    def _open_meta(self, meta: dict, resume: bool) -> dict:
        path = self.location.child(RUN_JSON)
        taken = RunExistsError(f"{self.path} already holds a run (run.json exists); choose a new directory "
                               "or pass resume=True to append to it")
        if path.exists():
            if not resume:
                raise taken
            old = json.loads(path.read_text())
            check_no_live_writer(self.location, old)
            merged = {**old, **meta, "run_id": old.get("run_id"), "created": old.get("created")}
            merged["resumed"] = [*old.get("resumed", []), now_iso()]
        else:
            merged = {
                "schema": SCHEMA,
                "run_id": meta.get("run_id") or (
                    self.path.resolve().name if self.location.is_local else self.location.name),
                "created": now_iso(),
                **{k: v for k, v in meta.items() if k != "run_id"},
            }
        merged.update(
            status="running", heartbeat=time.time(), heartbeat_interval_s=self.heartbeat_s,
            pid=os.getpid(), host=socket.gethostname(),
        )
        if self.location.is_local and not resume:  # two writers starting at once: one wins, atomically
            try:
                write_json_atomic(path.local_path, merged, exclusive=True)
            except FileExistsError:
                raise taken from None
        else:  # an object store has no exclusive create: the check above is all there is
            put_json(path, merged)
        return merged

    def _next_seq(self) -> int:
        """One past the highest sequence number of this rank's parts (compacted ones included)."""
        if self.location.is_local:
            names = [p.name for t in TABLES for p in (self.path / t).glob(PART_GLOB)]
        else:
            names = [i.base_name for t in TABLES for i in self.location.child(t).list()]
        seqs = [ids[2] for name in names if (ids := parse_part_name(name)) and ids[0] == self.rank]
        return max(seqs, default=-1) + 1

    def _run(self) -> None:
        warm_up()
        next_flush = time.monotonic() + self.flush_interval_s
        next_beat = time.monotonic() + self.heartbeat_s
        while True:
            timeout = max(0.0, min(next_flush, next_beat) - time.monotonic())
            try:
                kind, payload = self._queue.get(timeout=timeout)
            except queue.Empty:
                kind, payload = "tick", None
            try:
                if kind == "rows":
                    self._buffer(payload)
                elif kind == "call":
                    self._buffer(payload())
                elif kind == "meta":
                    self._meta.update(payload)
                    self._write_meta()
                elif kind in ("flush", "stop"):
                    try:
                        self._write_all()
                    finally:  # whatever happened, the caller waiting on it is released
                        if kind == "stop":
                            self._drop_unwritten()
                            return
                        payload.set()
            except Exception:  # never let the writer thread die
                self._count_error(f"entrodiag writer ({self.path}): background work failed")
            now = time.monotonic()
            try:
                if now >= next_flush:
                    next_flush = now + self.flush_interval_s
                    self._write_all()
                if now >= next_beat:
                    next_beat = now + self.heartbeat_s
                    if self._meta is not None:
                        self._meta["heartbeat"] = time.time()
                        self._write_meta()
            except Exception:
                self._count_error(f"entrodiag writer ({self.path}): background work failed")

    def _buffer(self, batch: Iterable[tuple[str, Rows]]) -> None:
        for table, columns in batch:
            t = to_arrow(table, columns)
            if t.num_rows == 0:
                continue
            self._buffers[table].append(t)
            self._buffered[table] += t.num_rows
            if self._buffered[table] >= self.flush_rows:
                self._write(table)

    def _drop_unwritten(self) -> None:
        """At close: rows that could not be written even now are lost; count and say so."""
        lost = sum(self._buffered.values())
        if lost:
            self.dropped_rows += lost
            log.error("entrodiag writer (%s): %d rows could not be written before closing; counted in "
                      "run.json's dropped_rows", self.path, lost)

    def _write_all(self) -> None:
        for table in TABLES:
            if self._buffers[table]:
                self._write(table)

    def _write(self, table: str) -> None:
        parts = self._buffers[table]
        target = self.location.child(table, part_name(self.rank, self._seq))
        try:
            data = pa.concat_tables(parts, promote_options="permissive")
            put_object(target, lambda f: pq.write_table(data, f, compression="zstd"))
        except Exception:
            self._count_error(f"entrodiag writer: could not write {target}; will retry")
            # keep the rows for the next attempt, but never more than 20 flushes' worth
            while self._buffered[table] > 20 * self.flush_rows and len(parts) > 1:
                dropped = parts.pop(0)
                self._buffered[table] -= dropped.num_rows
                self.dropped_rows += dropped.num_rows
            return
        self._seq += 1
        self._buffers[table] = []
        self._buffered[table] = 0

    def _write_meta(self) -> None:
        target = self.location.child(RUN_JSON)
        try:
            put_json(target, self._meta)
        except Exception:
            self._count_error(f"entrodiag writer: could not update {target}")

    def _count_error(self, message: str) -> None:
        self.errors += 1
        if self.errors <= _MAX_LOGGED_ERRORS:
            log.exception(message)
        elif self.errors == _MAX_LOGGED_ERRORS + 1:
            log.error("entrodiag writer: further errors are counted, not logged")

    def _shutdown(self, status: str | None, **fields: Any) -> None:
        if self._closed:
            return
        self._queue.put(("stop", None))
        self._thread.join(timeout=300)
        self._closed = True
        atexit.unregister(self._atexit)
        if self._thread.is_alive():
            log.error("entrodiag writer (%s): background thread did not finish in time", self.path)
        if self._meta is not None and status is not None:
            self._meta.update(
                fields, status=status, heartbeat=time.time(), finished=now_iso(),
                writer_errors=self.errors, dropped_rows=self.dropped_rows,
            )
            self._write_meta()
