"""Fault injection for the run writer (entrodiag/store/writer.py, the Recorder's background thread).

Three faults, each with the same three promises: training never stops because of the Recorder
(``record_batch`` never raises, whatever the disk does), no partial file is ever read as data
(every part a reader sees decodes; temporary files are never read), and every error is counted
(``rec.errors``) and logged.

- A full disk: a real 256 KiB tmpfs mounted by the test when it runs as root and ``mount`` works,
  else ``open`` in the writer patched to raise ENOSPC on write (both variants run where they can).
- A directory made read-only mid-run: as root, ``chattr +i`` (root ignores permission bits) where
  the file system supports it, else a read-only bind mount; as another user, ``chmod a-w``; and a
  variant with ``open`` patched to raise EROFS, which runs everywhere.
- The writer killed (SIGKILL) at every stage of its write-temp, fsync, rename, fsync-folder
  sequence, in a subprocess: the parts written before stay readable, the part being written is
  either whole and visible or invisible, and a writer resuming the run goes on from there.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest
from conftest import batch_kwargs

import entrodiag.store.writer as writer_mod
from entrodiag import Recorder, load_run

STEPS = 12


def _train(rec: Recorder, steps: range, on_step=None) -> list[float]:
    """A training loop's view of the Recorder: one record_batch per step, a flush every step so
    each step is written as its own parts. Returns the seconds each record_batch took."""
    took = []
    for step in steps:
        if on_step is not None:
            on_step(step)
        t0 = time.perf_counter()
        rec.record_batch(step, **batch_kwargs(step))  # must never raise
        took.append(time.perf_counter() - t0)
        rec.flush(timeout=30)
    return took


def _assert_clean(run_dir: Path, steps: set[int]) -> None:
    """Every visible part decodes, no temporary file is left, and the step rows are ``steps``."""
    run = load_run(run_dir)
    assert run.check() == [], run.skipped()
    leftovers = [p for p in run_dir.rglob("*") if p.name.endswith(".tmp") or ".tmp-" in p.name]
    assert leftovers == []
    assert set(run.steps["step"].to_list()) == steps
    assert run.steps_by_rank.group_by("step", "rank").len()["len"].max() == 1


# -------------------------------------------------------------------------------- full disk
def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def _tmpfs(path: Path, size: str):
    path.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the patched variant covers it")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


class _FailingFile:
    """A file object whose writes raise ``OSError(code)`` while ``state['fail']`` is set."""

    def __init__(self, f, state: dict, code: int) -> None:
        self._f, self._state, self._code = f, state, code

    def write(self, data):
        if self._state["fail"]:
            raise OSError(self._code, os.strerror(self._code))
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _patch_open(monkeypatch, state: dict, code: int, *, on_open: bool = False) -> None:
    """``open`` inside the writer module fails with ``code``: on write, or (``on_open``) at once."""

    def fake_open(path, mode="r", *args, **kw):
        if on_open and state["fail"] and any(c in mode for c in "wax"):
            raise OSError(code, os.strerror(code), str(path))
        return _FailingFile(open(path, mode, *args, **kw), state, code)

    monkeypatch.setattr(writer_mod, "open", fake_open, raising=False)


def _fault_run(run_dir: Path, fault_on, fault_off, caplog, message: str) -> Recorder:
    """Train through a fault: steps 0-3 fine, 4-7 under the fault, 8-11 after it is lifted."""
    caplog.set_level(logging.ERROR, logger="entrodiag")
    rec = Recorder(run_dir, token_sample="all", heartbeat_s=0.05, flush_interval_s=60)

    def on_step(step: int) -> None:
        if step == 4:
            fault_on()
        if step == 8:
            fault_off()

    took = _train(rec, range(STEPS), on_step)
    errors_during = rec.errors
    rec.close()
    assert errors_during > 0, "the fault was never hit"
    assert max(took) < 5.0  # record_batch never waited on the failing disk
    assert message in caplog.text
    meta = load_run(run_dir).meta
    assert meta["status"] == "finished" and meta["writer_errors"] >= errors_during
    return rec


def test_full_disk_patched_write(tmp_path, monkeypatch, caplog):
    state = {"fail": False}
    _patch_open(monkeypatch, state, errno.ENOSPC)
    _fault_run(tmp_path / "r", lambda: state.update(fail=True), lambda: state.update(fail=False), caplog,
               "No space left on device")
    _assert_clean(tmp_path / "r", set(range(STEPS)))  # rows kept while the disk was full, written after


@pytest.mark.skipif(not _is_root(), reason="mounting a tmpfs needs root; the patched variant covers it")
def test_full_disk_real_tmpfs(tmp_path, caplog):
    with _tmpfs(tmp_path / "mnt", "256k") as mnt:
        filler = mnt / "filler"

        def fill() -> None:  # leave about 2 KiB: a part file (~5 KiB) no longer fits
            with open(filler, "wb", buffering=0) as f, contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * 4096)
            free = shutil.disk_usage(mnt).free
            assert free < 8192, free

        _fault_run(mnt / "r", fill, lambda: filler.unlink(), caplog, "No space left on device")
        _assert_clean(mnt / "r", set(range(STEPS)))


# ------------------------------------------------------------------------ read-only directory
def _folders(run_dir: Path) -> list[Path]:
    return [run_dir, *(p for p in run_dir.iterdir() if p.is_dir())]


def _chattr_works(probe: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    probe.mkdir()
    ok = subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode == 0
    if ok:
        ok = not os.access(probe, os.W_OK) or _cannot_create(probe)
        subprocess.run(["chattr", "-i", str(probe)], check=False)
    return ok


def _cannot_create(folder: Path) -> bool:
    try:
        (folder / "x").touch()
    except OSError:
        return True
    (folder / "x").unlink()
    return False


class _ReadOnly:
    """Make a run's folders read-only and writable again, by the first means that works here."""

    def __init__(self, run_dir: Path, tmp: Path) -> None:
        self.run_dir = run_dir
        if not _is_root():
            self.how = "chmod"
        elif _chattr_works(tmp / "probe"):
            self.how = "chattr"
        else:
            self.how = "bind"
        self.mounted: list[Path] = []

    def on(self) -> None:
        for d in _folders(self.run_dir):
            if self.how == "chmod":
                d.chmod(0o555)
            elif self.how == "chattr":
                subprocess.run(["chattr", "+i", str(d)], check=True)
            else:
                for args in (["mount", "--bind", str(d), str(d)], ["mount", "-o", "remount,ro,bind", str(d)]):
                    if subprocess.run(args, capture_output=True).returncode != 0:
                        self.off()
                        pytest.skip("no way to make a folder read-only here (chattr and bind mounts fail)")
                self.mounted.append(d)
        assert _cannot_create(self.run_dir / "steps"), f"{self.how} did not make the folder read-only"

    def off(self) -> None:
        for d in _folders(self.run_dir):
            if self.how == "chmod":
                d.chmod(0o755)
            elif self.how == "chattr":
                subprocess.run(["chattr", "-i", str(d)], check=False)
        for d in reversed(self.mounted):
            subprocess.run(["umount", str(d)], check=False)
        self.mounted.clear()


def test_read_only_directory_mid_run(tmp_path, caplog):
    run_dir = tmp_path / "r"
    ro = None

    def on() -> None:
        nonlocal ro
        ro = _ReadOnly(run_dir, tmp_path)
        ro.on()

    try:
        _fault_run(run_dir, on, lambda: ro.off(), caplog, "could not write")
    finally:
        if ro is not None:
            ro.off()
    _assert_clean(run_dir, set(range(STEPS)))


def test_read_only_directory_patched(tmp_path, monkeypatch, caplog):
    state = {"fail": False}
    _patch_open(monkeypatch, state, errno.EROFS, on_open=True)
    _fault_run(tmp_path / "r", lambda: state.update(fail=True), lambda: state.update(fail=False), caplog,
               "Read-only file system")
    _assert_clean(tmp_path / "r", set(range(STEPS)))


def test_a_fault_that_never_ends_loses_rows_counted_not_training(tmp_path, monkeypatch, caplog):
    """The disk stays full to the end: training still finishes; what could not be written is
    dropped beyond 20 flushes' worth of rows and counted in ``dropped_rows``; nothing is half-read."""
    state = {"fail": False}
    _patch_open(monkeypatch, state, errno.ENOSPC)
    rec = Recorder(tmp_path / "r", token_sample="all", flush_rows=5, heartbeat_s=0.05)
    _train(rec, range(3))
    state["fail"] = True
    _train(rec, range(3, 10))
    assert rec.errors > 0 and rec.writer.dropped_rows > 0
    rec.close()  # run.json cannot be written either: counted, not raised
    run = load_run(tmp_path / "r")
    assert run.check() == []
    assert set(run.steps["step"].to_list()) == {0, 1, 2}
    assert run.meta["status"] == "running"  # the last run.json that reached the disk
    assert "No space left on device" in caplog.text


# ----------------------------------------------------------------- killed at every stage
STAGES = ("open", "mid-write", "written", "fsynced", "renamed", "dir-fsynced")

CHILD = textwrap.dedent('''
    import os, signal, sys
    import entrodiag.store.writer as w

    run_dir, stage = sys.argv[1], sys.argv[2]
    armed = {"on": False}

    def die(at):
        if armed["on"] and at == stage:
            os.kill(os.getpid(), signal.SIGKILL)

    real_open, real_write_table, real_fsync, real_replace, real_fsync_dir = (
        open, w.pq.write_table, os.fsync, os.replace, w.fsync_dir)

    class File:
        def __init__(self, f):
            self.f, self.n = f, 0
        def write(self, data):
            if self.n > 100:
                die("mid-write")
            self.n += len(data)
            return self.f.write(data)
        def __getattr__(self, name):
            return getattr(self.f, name)
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()

    def opened(path, mode="r", *a, **k):
        f = File(real_open(path, mode, *a, **k))
        if "w" in mode and str(path).endswith(".tmp"):
            die("open")
        return f

    def write_table(*a, **k):
        real_write_table(*a, **k)
        die("written")

    def fsync(fd):
        real_fsync(fd)
        die("fsynced")

    def replace(a, b):
        real_replace(a, b)
        if str(b).endswith(".parquet"):
            die("renamed")

    def fsync_dir(path):
        real_fsync_dir(path)
        die("dir-fsynced")

    w.open, w.pq.write_table, w.fsync_dir = opened, write_table, fsync_dir
    w.os.fsync, w.os.replace = fsync, replace

    writer = w.RunWriter(run_dir, meta={"source": "custom"}, heartbeat_s=3600, flush_interval_s=3600)
    for step in range(4):
        if step == 3:
            armed["on"] = True
        writer.append("steps", {"step": [step], "rank": [0], "n_tokens": [10], "entropy_mean": [0.5]})
        writer.append("evals", {"step": [step], "rank": [0], "name": ["acc"], "value": [0.1 * step], "n": [1]})
        writer.flush()
    sys.exit(3)  # not reached: killed at the stage
''')


@pytest.mark.parametrize("stage", STAGES)
def test_writer_killed_at_every_stage(tmp_path, stage):
    run_dir = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(run_dir), stage], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = load_run(run_dir)
    assert run.status == "interrupted"  # its pid is dead
    assert run.check() == []  # no partial file is read as data
    whole = stage in ("renamed", "dir-fsynced")  # the steps part of step 3 was in place
    expected = {0, 1, 2, 3} if whole else {0, 1, 2}
    assert set(run.steps["step"].to_list()) == expected
    assert set(run.evals["step"].to_list()) == {0, 1, 2}  # written after steps: never reached
    # a writer resuming the run goes on: the leftover temporary file is never read, nothing is doubled
    w = writer_mod.RunWriter(run_dir, meta={}, resume=True)
    w.append("steps", {"step": [3], "rank": [0], "n_tokens": [10], "entropy_mean": [0.5]})
    w.close()
    run = load_run(run_dir)
    assert run.check() == [] and run.status == "finished"
    assert run.steps["step"].to_list() == [0, 1, 2, 3]  # step 3 written twice when whole: coalesced
    assert pl.read_parquet(run.parts("steps")).height == 4 + whole
    assert not list(run_dir.rglob("*.tmp"))  # the resumed writer removed its rank's leftover temporary file
