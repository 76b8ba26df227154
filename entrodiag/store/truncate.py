"""Cutting a run back to a checkpoint: ``truncate_run`` removes the rows recorded after the step a
resume starts from, so no step is recorded twice."""

from __future__ import annotations

import logging
import os

import pyarrow as pa
import pyarrow.parquet as pq

from .location import locate
from .schema import TABLES, parse_part_name
from .writer import check_no_live_writer, fsync_dir, put_object

log = logging.getLogger("entrodiag")


def truncate_run(run_dir: str | os.PathLike, after_step: int) -> int:
    """Remove every row with ``step > after_step`` from a run's part files (for a resume from
    the checkpoint of ``after_step``, so no step is recorded twice). Each changed part is
    rewritten atomically (a whole-object overwrite on an object store), or deleted when nothing
    is left; unreadable parts are left alone (the reader skips them). Returns the number of rows
    removed. ``RunInUseError`` while a live writer still writes the run (``check_no_live_writer``)."""
    import pyarrow.compute as pc

    run = locate(run_dir)
    check_no_live_writer(run)
    removed = 0
    for table in TABLES:
        folder = run.child(table)
        names = sorted(i.base_name for i in folder.list() if parse_part_name(i.base_name))
        for name in names:
            part = folder.child(name)
            try:
                data = pq.read_table(pa.BufferReader(part.read_bytes()))
            except Exception:
                log.warning("entrodiag: %s is unreadable; left as it is", part)
                continue
            keep = data.filter(pc.less_equal(data["step"], after_step))
            if keep.num_rows == data.num_rows:
                continue
            removed += data.num_rows - keep.num_rows
            if keep.num_rows == 0:
                part.delete()
            else:
                put_object(part, lambda f, keep=keep: pq.write_table(keep, f, compression="zstd"))
        if run.is_local:
            fsync_dir(folder.local_path)
    return removed
