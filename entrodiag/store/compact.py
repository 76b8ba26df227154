"""``entrodiag compact RUN``: merge a long run's part files, per table and rank, into few files.

A Recorder writes one part file per table at every flush, so a long run holds thousands of small
files, and every read of the run opens all of them. Compaction rewrites the parts of each (table,
rank) as ``part-r<rank>-<first>-<last>.parquet`` files (rows in their original order, at most
``max_bytes`` of input per file) and then deletes the parts they replace.

Safe against readers running at the same time: the merged file is written to a temporary name,
fsynced and renamed into place before any old part is deleted, and from the moment it appears
every reader ignores the parts whose sequence numbers it covers (``schema.parse_part_name``,
``reader.list_parts``). A reader therefore sees either the old parts or the merged file, never
both and never neither; a query whose files are deleted under it lists the folder again and
reruns (``reader.Run.scan``). A crash between the rename and the deletions leaves parts that
every reader already ignores; the next compaction deletes them.

A part that cannot be decoded is never merged, covered or deleted: it splits its table's parts
into groups merged separately, and the reader keeps naming it. A live run (status ``running``
and a fresh heartbeat) is refused unless ``force``: its writer keeps adding parts with higher
sequence numbers, which compaction leaves alone, so forcing is safe but usually pointless.
Two compactions of the same run never overlap (an exclusive lock on ``<run>/.compact.lock``).

A run on an object store (``s3://...``, ``gs://...``) is refused with a ``CompactError``: the
store has no lock to keep two compactions apart. Readers of a URL do honour compacted parts, so
a run can be compacted locally (download it, ``entrodiag compact``, upload the new parts, then
delete the replaced ones; ``file://`` URLs are local and compact as usual).
"""

from __future__ import annotations

import fcntl
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .location import Location
from .meta import writer_alive
from .parts import decode_part, file_key, list_parts
from .rundir import find_run_dir
from .run import load_run
from .schema import TABLES, compacted_name, parse_part_name
from .writer import fsync_dir, write_atomic

#: Input bytes merged into one file at most (compressed Parquet; about the size of the output).
MAX_BYTES = 256 * 2**20


class CompactError(RuntimeError):
    """Compaction refused (a live run, another compaction running); the message says why."""


@dataclass
class CompactResult:
    """What ``compact`` did: part files before and after, files written and removed, damaged
    parts left in place, and leftovers (parts a crashed compaction had already replaced)."""

    run_dir: Path
    parts_before: int = 0
    parts_after: int = 0
    written: list[Path] = field(default_factory=list)
    removed: int = 0
    damaged: list[Path] = field(default_factory=list)
    leftovers: int = 0


@contextmanager
def _lock(run_dir: Path) -> Iterator[None]:
    path = run_dir / ".compact.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CompactError(f"{run_dir} is being compacted by another process") from None
        yield
    finally:
        os.close(fd)


def _groups(parts: list[tuple[tuple[int, int, int], Path]], max_bytes: int, skipped: set[Path]):
    """Runs of consecutive readable parts of one rank, cut at damaged parts (``skipped``: the ones
    the reader leaves out, e.g. for schema drift) and at ``max_bytes``."""
    group: list[tuple[tuple[int, int, int], Path]] = []
    size = 0
    for ids, path in parts:
        key = file_key(path)
        if path in skipped or key is None or decode_part(path, key).error:
            if group:
                yield group, None
            yield [], path
            group, size = [], 0
            continue
        if group and size + key[2] > max_bytes:
            yield group, None
            group, size = [], 0
        group.append((ids, path))
        size += key[2]
    if group:
        yield group, None


def _merge(folder: Path, rank: int, group: list[tuple[tuple[int, int, int], Path]]) -> Path:
    """Write the rows of ``group`` (in order) as one compacted part; returns its path."""
    schema = pa.unify_schemas([pq.read_schema(path) for _, path in group], promote_options="permissive")

    def write(f) -> None:
        with pq.ParquetWriter(f, schema, compression="zstd") as writer:
            for _, path in group:  # one part in memory at a time
                writer.write_table(_conform(pq.read_table(path), schema), row_group_size=1 << 20)

    return write_atomic(folder / compacted_name(rank, group[0][0][1], group[-1][0][2]), write)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order (missing ones null, types promoted)."""
    cols = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
            for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def compact(
    run: str | os.PathLike, *, force: bool = False, max_bytes: int = MAX_BYTES, progress: bool = False,
) -> CompactResult:
    """Merge the part files of every table (per rank) of the run at ``run``; see the module doc.

    Raises:
        RunError: ``run`` is not a run.
        CompactError: the run is live (fresh heartbeat) and ``force`` is false, or another
            compaction of it is running.

    Example:
        >>> compact("runs/long-run").parts_after  # doctest: +SKIP
        6
    """
    run_dir = find_run_dir(run)
    if isinstance(run_dir, Location):
        raise CompactError(f"{run_dir} is on an object store: compaction needs a lock that object stores "
                           "do not have, so it works on local runs only; copy the run to a local folder, compact "
                           "it there and upload the compacted parts (readers of a URL skip the parts they replace)")
    run = load_run(run_dir)
    meta = run.meta
    if meta.get("status") == "running" and writer_alive(meta) and not force:
        raise CompactError(f"{run_dir} is live (status running, heartbeat fresh); compact it when it has "
                           "finished, or pass --force (its writer's new parts are left alone)")
    result = CompactResult(run_dir=run_dir)
    with _lock(run_dir):
        work = []
        for table in TABLES:
            folder = run_dir / table
            if not folder.is_dir():
                continue
            try:
                every = [(ids, folder / e.name) for e in os.scandir(folder) if (ids := parse_part_name(e.name))]
                kept = list_parts(folder)
            except OSError:  # a folder that cannot be listed is left as it is (the reader names it)
                result.damaged.append(folder)
                continue
            with warnings.catch_warnings():  # the reader's verdicts (drift, broken links) in skipped_parts
                warnings.simplefilter("ignore")
                run.parts(table)
            result.parts_before += len(kept)
            kept_paths = {p for _, p in kept}
            stale = [p for _, p in every if p not in kept_paths]  # replaced by a compacted part already
            for path in stale:
                path.unlink(missing_ok=True)
            result.leftovers += len(stale)
            for rank in sorted({ids[0] for ids, _ in kept}):
                work.append((folder, rank, [(ids, p) for ids, p in kept if ids[0] == rank]))
        bar = _progress(sum(len(parts) for *_, parts in work), progress)
        for folder, rank, parts in work:
            for group, damaged in _groups(parts, max_bytes, set(run.skipped_parts)):
                if damaged is not None:
                    result.damaged.append(damaged)
                    bar.update(1)
                    continue
                if len(group) == 1:
                    bar.update(1)
                    continue
                result.written.append(_merge(folder, rank, group))
                for _, path in group:  # only now: readers already ignore them
                    path.unlink(missing_ok=True)
                    result.removed += 1
                fsync_dir(folder)
                bar.update(len(group))
        bar.close()
        result.parts_after = sum(len(list_parts(run_dir / t)) for t in TABLES)
    return result


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, show: bool):
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="part", desc="compact", mininterval=0.5)
