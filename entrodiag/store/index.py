"""The summary index of a runs root: every run's tables as ``load_run`` reads them, cached so that a
question over a thousand runs opens only the runs that changed.

What it holds, per run under the root (a run is a folder with run.json, at most ``MAX_DEPTH``
levels below the root; folders starting with ``.`` are skipped):

- run.json (``meta``), re-read when its size or modification time changed;
- per table (``steps``, ``evals``, ``events``, ``samples``, ``tokens``, ``spans``), one Parquet
  file with the table exactly as ``load_run(run).<table>`` returns it (steps merged across ranks,
  evaluations merged, compacted parts counted once, damaged parts skipped, impossible values
  null), plus a ``run_id`` column. A table is built the first time it is asked for;
- derived rows (``RunsIndex.rows``): one row per run computed by a caller's function from the
  opened run, e.g. the dashboard's Runs table (law fit, flag counts); cached the same way.

Staleness. Every refresh lists the root once and fingerprints each run's files:

- on a local disk, the size and modification time of run.json and the modification time of each
  table folder (one ``stat`` each: a folder's time changes whenever an entry is created, removed
  or renamed in it, which is how every part file appears, written under a temporary name and
  renamed, and how a compaction replaces parts);
- on an object store (one recursive listing: a few paginated LIST requests, whatever the number
  of runs), the name, size and modification time of run.json and of every part file.

A cached table is reused while its table's fingerprint is unchanged; a new part file, a
compaction or a deleted part makes a new fingerprint, and that run is opened again (only that
run, only the tables asked for). Runs added under the root are indexed when first asked for;
runs gone are dropped. A derived row is reused while run.json's and its tables' fingerprints and
its ``version`` are unchanged. Timestamps are coarse (milliseconds on a disk, a second on S3), so
anything changed less than ``RACY_S`` before the listing is not trusted to be unchanged next
time and is read again then (as git treats "racily clean" files): the index is not stale when
read, at the cost of the listing plus the runs that changed. Not noticed: a local part file
rewritten in place under its own name (no entrodiag writer does that; delete the index folder).

Where it lives. ``index_dir`` when given, else ``$ENTRODIAG_CACHE/index/<hash of the root>`` (default
``~/.cache/entrodiag/index/...``): a per-user cache, so a read-only root, a shared root and an
object-store root all work the same and the runs' folders are never written. Files are written to a
temporary name and renamed, so two processes refreshing the same index at once (the dashboard and
``entrodiag query``) each leave a consistent index (the last manifest written wins; a table file
is named by its content's fingerprint, so the two never disagree about one). Deleting the folder
only costs a rebuild.

How runs are read: on a local root, stale tables of many runs at once (``bulk.read_many``: one
scan per batch of runs, exactly ``load_run``'s tables), any run it cannot read that way opened by
``load_run``; on an object store, each run by ``load_run`` on its URL (nothing copied to a local
folder). Imports nothing outside ``entrodiag.store``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs

from . import bulk
from .location import Location, locate
from .meta import check_meta
from .parts import SETTLED_S
from .run import SKIP_WARNING, Run, load_run
from .rundir import RunError
from .schema import RUN_JSON, TABLES, parse_part_name

#: How deep below the root runs are looked for (root/sweep/run is depth 2), as the dashboard does.
MAX_DEPTH = 3
#: Bumped when the index's layout or the meaning of a cached table changes (old indexes rebuild).
INDEX_VERSION = 2
_MANIFEST = "manifest.json"
#: Threads that open runs at once: local disks (polars decodes outside the GIL; more threads only
#: queue on the cores) and object stores (each thread mostly waits on requests).
LOCAL_THREADS = min(4, 2 * (os.cpu_count() or 1))
STORE_THREADS = 16
#: At most this many local runs are read in one ``bulk.read_many`` (one polars scan per table).
BATCH_RUNS = 50

#: ``on_progress(what, done, total)``: called as runs are read (``what`` says what is being built).
Progress = Callable[[str, int, int], None]

Fingerprint = str


class RootError(RunError):
    """The root holds no runs or cannot be listed; the message says what to do."""


@dataclass
class RunFiles:
    """One run found by a listing: its id (path relative to the root; the run's own folder name
    when the root is the run), location, and the fingerprints of run.json and of each table."""

    run_id: str
    url: str
    meta_fp: Fingerprint
    table_fps: dict[str, Fingerprint] = field(default_factory=dict)
    #: run.json's modification time (seconds since the epoch; 0 when the store gives none)
    meta_mtime: float = 0.0


def _fp(items: Iterable) -> Fingerprint:
    return hashlib.sha1(repr(sorted(items)).encode()).hexdigest()[:20]


def default_index_dir(root: str) -> Path:
    """The per-user index folder of ``root``: ``$ENTRODIAG_CACHE/index/<hash>`` (default
    ``~/.cache/entrodiag/index/<hash>``), one per root location."""
    base = Path(os.environ.get("ENTRODIAG_CACHE") or Path.home() / ".cache" / "entrodiag")
    return base / "index" / hashlib.sha1(root.encode()).hexdigest()[:16]


def scan_root(root: Location) -> list[RunFiles]:
    """The runs under ``root``, sorted by ``run_id``: on an object store from one recursive
    listing (a few paginated requests whatever the number of runs); on a local disk by walking
    down to the run folders (``MAX_DEPTH``) and listing only their table folders."""
    info = root.info()
    if info.type == pafs.FileType.NotFound:
        raise RootError(f"{root.url}: no such folder or prefix")
    if info.type == pafs.FileType.File:
        raise RootError(f"{root.url} is a file, not a folder of runs")
    listing = _walk_local(root.local_path) if root.is_local else _list_store(root)
    runs = []
    for rel, (meta, files) in listing.items():
        fps = {t: _fp(f for f in files if f[0].startswith(t + "/")) for t in TABLES}
        url = root.child(rel).url if rel else root.url
        runs.append(RunFiles(rel or root.name, url, _fp([meta]), fps, meta[1] / 1e9))
    return sorted(runs, key=lambda r: r.run_id)


_Files = list[tuple[str, int, int]]


def _list_store(root: Location) -> dict[str, tuple[tuple[int, int], _Files]]:
    base = root.fs_path.rstrip("/")
    files: dict[str, _Files] = {}
    metas: dict[str, tuple[int, int]] = {}
    now_ns = time.time_ns()
    for i in root.list(recursive=True):
        if i.type != pafs.FileType.File:
            continue
        parts = i.path[len(base):].lstrip("/").split("/")
        if any(p.startswith(".") for p in parts):
            continue
        mtime = _settled(i.mtime_ns, now_ns) if i.mtime_ns is not None else 0  # S3: 1 s resolution
        if parts[-1] == RUN_JSON and len(parts) - 1 <= MAX_DEPTH:
            metas["/".join(parts[:-1])] = (i.size, mtime)
        elif len(parts) >= 2 and parts[-2] in TABLES and parse_part_name(parts[-1]):
            files.setdefault("/".join(parts[:-2]), []).append((f"{parts[-2]}/{parts[-1]}", i.size, mtime))
    return {rel: (meta, files.get(rel, [])) for rel, meta in metas.items()}


#: A table folder changed less than this many seconds before it was listed is not trusted to be
#: unchanged next time (see ``_walk_local``).
RACY_S = SETTLED_S


def _settled(mtime_ns: int, now_ns: int) -> int:
    """``mtime_ns``, or, for a file or folder changed less than ``RACY_S`` ago, a value that no
    later fingerprint will equal (it is read again next time)."""
    if now_ns - mtime_ns < RACY_S * 1e9:
        return -time.perf_counter_ns()
    return mtime_ns


def _walk_local(base: Path) -> dict[str, tuple[tuple[int, int], _Files]]:
    """Local runs: run.json's (size, mtime) and, per table, the folder's modification time (one
    ``stat`` per table stands for one per part file: 223,000 stats for 1,000 runs took 2-6 s; see
    the module docstring for why that is enough, and for ``RACY_S``)."""
    out: dict[str, tuple[tuple[int, int], _Files]] = {}
    now_ns = time.time_ns()

    def visit(folder: Path, rel: str, depth: int) -> None:
        try:
            s = (folder / RUN_JSON).stat()
        except OSError:
            s = None
        if s is not None:
            files: _Files = []
            for table in TABLES:
                try:
                    st = (folder / table).stat()
                except OSError:
                    continue
                files.append((f"{table}/", 0, _settled(st.st_mtime_ns, now_ns)))
            out[rel] = ((s.st_size, _settled(s.st_mtime_ns, now_ns)), files)
            return
        if depth == MAX_DEPTH:
            return
        try:
            children = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        except OSError:
            return
        for name in children:
            visit(folder / name, f"{rel}/{name}" if rel else name, depth + 1)

    visit(base, "", 0)
    return out


class RunsIndex:
    """The summary index of the runs under ``root`` (a local folder or a URL); see the module
    docstring for what it holds, where, and how it stays fresh.

    Example:
        >>> index = RunsIndex("runs")                       # doctest: +SKIP
        >>> index.table_files("steps")                      # doctest: +SKIP
    """

    def __init__(self, root: str | os.PathLike | Location, *, index_dir: str | os.PathLike | None = None,
                 progress: bool = False, on_progress: Progress | None = None, threads: int | None = None) -> None:
        self.root = locate(root)
        #: what identifies the root: its absolute path on this machine, or its URL
        self.key = self.root.fs_path if self.root.is_local else self.root.url
        self.dir = Path(index_dir) if index_dir is not None else default_index_dir(self.key)
        #: a progress bar on stderr (tqdm) when reading runs takes more than two seconds
        self.progress = progress
        self.on_progress = on_progress
        #: how many runs are read at once (1: one after another, as before)
        self.threads = threads or (LOCAL_THREADS if self.root.is_local else STORE_THREADS)
        self._runs: list[RunFiles] | None = None
        self._manifest: dict | None = None
        self._warned = False
        #: False when the manifest could not be written (a read-only cache folder): what was read
        #: lives only in this object, so a caller that wants it again keeps the object (``refresh``)
        self.saved = True

    # ------------------------------------------------------------------ listing and manifest
    def runs(self) -> list[RunFiles]:
        """The runs under the root (listed once per ``RunsIndex``; ``refresh`` lists again)."""
        if self._runs is None:
            self._runs = scan_root(self.root)
        return self._runs

    def refresh(self) -> None:
        """Forget the listing, so the next question lists the root again."""
        self._runs = None

    def _load_manifest(self) -> dict:
        if self._manifest is None:
            try:
                m = json.loads((self.dir / _MANIFEST).read_text(encoding="utf-8"))
                if m.get("version") != INDEX_VERSION or m.get("root") != self.key:
                    m = None
            except (OSError, ValueError):
                m = None
            self._manifest = m or {"version": INDEX_VERSION, "root": self.key, "runs": {}}
        return self._manifest

    def _save_manifest(self) -> None:
        m = self._load_manifest()
        live = {r.run_id for r in self.runs()}
        m["runs"] = {k: v for k, v in m["runs"].items() if k in live}
        try:
            data = json.dumps(m, default=str).encode()
            _write_atomic(self.dir / _MANIFEST, lambda tmp: tmp.write_bytes(data))
            self.saved = True
        except OSError as e:  # a cache folder that cannot be written: the index lives in memory only
            self.saved = False
            if not self._warned:
                warnings.warn(f"entrodiag: the summary index of {self.root.url} cannot be saved in {self.dir} "
                              f"({e}); set ENTRODIAG_CACHE to a writable folder", stacklevel=3)
                self._warned = True

    def _entry(self, run: RunFiles) -> dict:
        return self._load_manifest()["runs"].setdefault(run.run_id, {"tables": {}, "derived": {}})

    def _open(self, run: RunFiles) -> Run:
        """The run itself (a local folder or an object-store URL): the one place the index opens runs.
        Quiet: what it skips is recorded in the index (``skipped``), not warned from a worker thread."""
        opened = load_run(run.url)
        opened.quiet = True
        return opened

    # ------------------------------------------------------------------ what callers ask for
    def metas(self) -> dict[str, dict]:
        """run.json of every run, by ``run_id`` (read again only where run.json changed)."""
        todo = [r for r in self.runs() if self._entry(r).get("meta_fp") != r.meta_fp or "meta" not in self._entry(r)]
        if todo:
            self._each(todo, "reading run.json", self._read_meta)
            self._save_manifest()
        return {r.run_id: self._entry(r)["meta"] for r in self.runs()}

    def _read_meta(self, run: RunFiles) -> None:
        entry = self._entry(run)
        try:
            text = locate(run.url).child(RUN_JSON).read_text()
            entry["meta"], entry["error"] = json.loads(text), None
            if not isinstance(entry["meta"], dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as e:
            entry["meta"], entry["error"] = {}, f"{run.url}/{RUN_JSON} is unreadable ({e})"
        else:
            try:
                check_meta(entry["meta"], run.url)
            except RunError as e:
                entry["error"] = str(e)
        entry["meta_fp"] = run.meta_fp

    def errors(self) -> dict[str, str]:
        """Runs that could not be read, by ``run_id``: why (run.json unreadable, ``load_run`` refused)."""
        self.metas()
        return {k: v["error"] for k, v in self._load_manifest()["runs"].items() if v.get("error")}

    def table_files(self, tables: Iterable[str]) -> dict[str, list[Path]]:
        """The index's Parquet files of each of ``tables`` (one per run that has rows), each holding
        the table as ``load_run`` reads it plus ``run_id``. Stale or missing ones are built first,
        each stale run opened once for all the tables asked for."""
        tables = list(dict.fromkeys(tables))
        for table in tables:
            if table not in TABLES:
                raise ValueError(f"unknown table {table!r}; tables are {', '.join(TABLES)}")
        self.metas()
        todo = []
        for r in self.runs():
            entry = self._entry(r)
            stale = [t for t in tables if entry["tables"].get(t, {}).get("fp") != r.table_fps[t]]
            if stale and not entry.get("error"):
                todo.append((r, stale))
        if todo:
            try:
                if self.root.is_local and len(todo) > 1:  # many runs' tables read together (``bulk``)
                    self._each(_batches(todo, self.threads), "indexing runs", self._build_batch, size=len)
                else:
                    self._each(todo, "indexing runs", lambda item: self._build_tables(*item))
            finally:
                self._save_manifest()
        out: dict[str, list[Path]] = {t: [] for t in tables}
        for r in self.runs():
            for table in tables:
                t = self._entry(r)["tables"].get(table)
                if t and t.get("rows") and not self._entry(r).get("error"):
                    out[table].append(self.dir / t["file"])
        return out

    def skipped(self) -> dict[str, list[str]]:
        """Damaged part files that the indexed tables left out (as ``load_run`` does), by run."""
        out = {}
        for r in self.runs():
            names = sorted({p for t in self._entry(r)["tables"].values() for p in t.get("skipped", [])})
            if names:
                out[r.run_id] = names
        return out

    def _build_batch(self, batch: list[tuple[RunFiles, list[str]]]) -> None:
        """The stale tables of a batch of local runs: read together where ``bulk.read_many`` can
        (exactly ``load_run``'s tables), the rest opened run by run (``_build_tables``)."""
        left: dict[str, list[str]] = {}
        for table in dict.fromkeys(t for _, stale in batch for t in stale):
            want = {r.run_id: r for r, stale in batch if table in stale}
            folders = {k: locate(r.url).local_path for k, r in want.items()}
            done, _ = bulk.read_many(table, {k: f for k, f in folders.items() if (f / RUN_JSON).is_file()})
            for k, df in done.items():
                self._store_table(want[k], table, df, [])
            for k in want:  # those read_many left, and runs without run.json: opened one by one
                if k not in done:
                    left.setdefault(k, []).append(table)
        for r, _ in batch:
            if r.run_id in left:
                self._build_tables(r, left[r.run_id])

    def _build_tables(self, run: RunFiles, tables: list[str]) -> None:
        entry = self._entry(run)
        try:
            opened = self._open(run)
        except RunError as e:
            entry["error"] = str(e)
            return
        for table in tables:
            before = len(opened.skipped_parts)
            df = getattr(opened, table)
            # the parts this table left out, as the reader's warning names them (read from the run, not
            # from the warnings: those are process-wide, and runs are read in several threads)
            skipped = [m[len(SKIP_WARNING):].strip() for m in opened.skip_messages()[before:]]
            self._store_table(run, table, df, skipped)

    def _store_table(self, run: RunFiles, table: str, df: pl.DataFrame, skipped: list[str]) -> None:
        entry = self._entry(run)
        fp = run.table_fps[table]
        rec: dict = {"fp": fp, "rows": df.height, "skipped": skipped}
        if df.height:
            name = hashlib.sha1(f"{run.run_id}\0{fp}".encode()).hexdigest()[:20]
            rec["file"] = f"tables/{table}/{name}.parquet"
            df = df.select(pl.lit(run.run_id).alias("run_id"), pl.all())
            _write_atomic(self.dir / rec["file"], df.write_parquet)
            old = entry["tables"].get(table, {}).get("file")
            if old and old != rec["file"]:
                (self.dir / old).unlink(missing_ok=True)
        entry["tables"][table] = rec

    def rows(self, name: str, fn: Callable[[Run], dict], *, tables: tuple[str, ...] = ("steps", "evals"),
             version: str = "", compute: bool = True,
             on_row: Callable[[str, dict], None] | None = None) -> dict[str, dict]:
        """One row per readable run, ``fn(run)`` computed from the opened run and cached on the
        fingerprints of run.json and of ``tables`` (the tables ``fn`` reads) and on ``version``
        (say there what else ``fn`` depends on, e.g. a chosen metric). Runs whose row cannot be
        computed get ``{"error": message}``. ``compute=False``: only the rows already cached
        (nothing is opened). ``on_row(run_id, row)`` is called as each new row is computed; ``fn``
        runs in several threads at once (``threads``)."""
        metas = self.metas()
        todo = []
        for r in self.runs():
            entry = self._entry(r)
            key = _fp([version, r.meta_fp, *(r.table_fps[t] for t in tables)])
            if entry.get("error"):
                continue
            if entry["derived"].get(name, {}).get("key") != key:
                todo.append((r, key))
        if todo and compute:
            def one(item: tuple[RunFiles, str]) -> None:
                r, key = item
                entry = self._entry(r)
                try:
                    row = fn(self._open(r))
                except RunError as e:
                    entry["error"] = str(e)
                    return
                except Exception as e:  # a row that cannot be computed is shown, not fatal
                    row = {"error": f"{type(e).__name__}: {e}"}
                entry["derived"][name] = {"key": key, "row": row}
                if on_row is not None:
                    on_row(r.run_id, row)

            try:
                self._each(todo, f"indexing {name}", one)
            finally:
                self._save_manifest()
        runs = self._load_manifest()["runs"]
        stale = {r.run_id for r, _ in todo} if not compute else set()
        return {r: runs[r]["derived"][name]["row"] for r in metas if name in runs[r].get("derived", {})
                and not runs[r].get("error") and r not in stale}

    def _each(self, items: list, desc: str, work: Callable[[object], None],
              size: Callable[[object], int] = lambda item: 1) -> None:
        """``work(item)`` for each of ``items``, ``threads`` at a time, with the progress bar and
        ``on_progress`` (counting ``size(item)`` runs an item). The runs are opened quiet
        (``_open``): the index records what each run skipped (``skipped``). The first error raised
        by ``work`` is raised."""
        total, done, bar = sum(map(size, items)), 0, None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc, unit="run", delay=2.0, leave=False)

        def tick(item) -> None:
            nonlocal done
            done += size(item)
            if bar is not None:
                bar.update(size(item))
            if self.on_progress is not None:
                self.on_progress(desc, done, total)
        try:
            if self.threads <= 1 or len(items) <= 1:
                for item in items:
                    work(item)
                    tick(item)
                return
            with ThreadPoolExecutor(min(self.threads, len(items)), thread_name_prefix="entrodiag-index") as pool:
                futures = {pool.submit(work, item): item for item in items}
                try:
                    for f in as_completed(futures):
                        f.result()
                        tick(futures[f])
                except BaseException:
                    for f in futures:
                        f.cancel()
                    raise
        finally:
            if bar is not None:
                bar.close()


def _batches(todo: list, threads: int) -> list[list]:
    """``todo`` in batches for ``bulk.read_many``: a few per thread, at most ``BATCH_RUNS`` runs each."""
    n = max(1, min(BATCH_RUNS, -(-len(todo) // (4 * max(threads, 1)))))
    return [todo[i:i + n] for i in range(0, len(todo), n)]


def _tmp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this process and call (threads of one process
    write the same index: the dashboard's fill thread and its page, the agent server's tools)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")


def _write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` to a temporary file beside ``path`` (named for this write alone), then moved
    onto ``path``: a reader never sees half a file; the temporary file never stays behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)

