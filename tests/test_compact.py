"""``entrodiag compact``: fewer files, the same rows, safe against a reader at the same time, damaged
parts left alone, live runs refused without --force, and writers resuming after it."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import polars as pl
import pytest
from run_damage import copy_sample_run, corrupt_page

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.store import RunWriter
from entrodiag.store.compact import CompactError, compact
from entrodiag.store.schema import TABLES, compacted_name, part_name


def _tables(run_dir: Path) -> dict[str, pl.DataFrame]:
    run = load_run(run_dir)
    return {"steps": run.steps, "evals": run.evals, "events": run.events,
            **{t: run.scan(t).collect().sort(pl.all()) for t in ("tokens", "samples", "spans")}}


def _n_parts(run_dir: Path) -> int:
    return sum(1 for t in TABLES for _ in (run_dir / t).glob("part-*.parquet"))


def test_compact_keeps_every_row_and_leaves_damaged_parts(tmp_path, capsys):
    run_dir = copy_sample_run(tmp_path / "run")
    bad = sorted((run_dir / "tokens").glob("part-*"))[10]
    corrupt_page(bad, "entropy")
    with pytest.warns(UserWarning):
        before = _tables(run_dir)
    n_before = _n_parts(run_dir)
    assert main(["compact", str(run_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"{n_before} part files -> 8" in out and str(bad) in out
    # per table one file, tokens two (split at the damaged part, which stays and is still skipped)
    assert _n_parts(run_dir) == 8 and bad.exists()
    with pytest.warns(UserWarning, match=bad.name):
        after = _tables(run_dir)
    for name, df in before.items():
        assert df.equals(after[name]), name
    assert main(["compact", str(run_dir), "--no-progress"]) == 0  # again: nothing left to merge
    assert _n_parts(run_dir) == 8


def test_reader_ignores_parts_a_compacted_file_replaces(tmp_path):
    """A crash between writing the merged file and deleting the old parts: no row is read twice,
    and the next compaction deletes the leftovers."""
    run_dir = copy_sample_run(tmp_path / "run")
    folder = run_dir / "evals"
    parts = sorted(folder.glob("part-*"))
    expected = load_run(run_dir).evals
    merged = pl.concat([pl.read_parquet(p) for p in parts[:5]])
    first, last = (int(p.name[12:18]) for p in (parts[0], parts[4]))
    merged.write_parquet(folder / compacted_name(0, first, last))
    assert load_run(run_dir).evals.equals(expected)
    assert len(load_run(run_dir).parts("evals")) == len(parts) - 4
    res = compact(run_dir)
    assert res.leftovers == 5 and load_run(run_dir).evals.equals(expected)


def test_a_reader_during_compaction_never_sees_rows_twice_or_misses_any(tmp_path):
    run_dir = tmp_path / "run"
    RunWriter(run_dir, meta={"source": "custom"}).close()
    for step in range(200):  # 200 one-row parts per table, as a writer names them
        pl.DataFrame({"step": [step], "rank": [0], "n_tokens": [1], "entropy_mean": [0.5]}).write_parquet(
            run_dir / "steps" / part_name(0, 2 * step))
        pl.DataFrame({"step": [step], "rank": [0], "name": ["acc"], "value": [step / 400], "n": [1]}).write_parquet(
            run_dir / "evals" / part_name(0, 2 * step + 1))
    seen, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            run = load_run(run_dir)
            seen.append((run.scan("steps").select(pl.len()).collect().item(),
                         run.scan("evals").select(pl.col("value").sum()).collect().item()))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        time.sleep(0.2)
        res = compact(run_dir, max_bytes=40 * 2**10)  # several merged files per table, one by one
    finally:
        time.sleep(0.2)
        stop.set()
        reader.join()
    assert len(res.written) > 2 and _n_parts(run_dir) == len(res.written)
    assert len(seen) >= 3
    total = sum(s / 400 for s in range(200))
    assert all(n == 200 and v == pytest.approx(total) for n, v in seen), seen


def test_live_run_refused_unless_forced_and_the_writer_goes_on(tmp_path, capsys):
    run_dir = tmp_path / "run"
    w = RunWriter(run_dir, meta={"source": "custom"}, heartbeat_s=60)
    for step in range(5):
        w.append("steps", {"step": [step], "rank": [0], "n_tokens": [1]})
        w.flush()
    assert main(["compact", str(run_dir), "--no-progress"]) == 2
    assert "is live" in capsys.readouterr().err
    res = compact(run_dir, force=True)
    assert [p.name for p in res.written] == [compacted_name(0, 0, 4)]
    for step in range(5, 8):  # the live writer keeps going, above the merged range
        w.append("steps", {"step": [step], "rank": [0], "n_tokens": [1]})
        w.flush()
    w.close()
    assert load_run(run_dir).steps["step"].to_list() == list(range(8))
    w = RunWriter(run_dir, meta={}, resume=True)  # a resumed writer starts after the merged range
    assert w._seq == 8
    w.close()


def test_two_compactions_never_overlap(tmp_path):
    run_dir = copy_sample_run(tmp_path / "run")
    fd = os.open(run_dir / ".compact.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(CompactError, match="another process"):
            compact(run_dir)
    finally:
        os.close(fd)
    assert compact(run_dir).parts_after == 6


def test_part_names():
    from entrodiag.store.schema import parse_part_name

    assert parse_part_name(part_name(3, 12)) == (3, 12, 12)
    assert parse_part_name(compacted_name(0, 5, 900)) == (0, 5, 900)
    assert parse_part_name(".part-r00000-000001.parquet.tmp") is None
    assert parse_part_name("part-r00000-000009-000001.parquet") is None
    assert json.dumps(parse_part_name(part_name(99999, 1700000000000000)))
