"""A resume never makes a second writer of a live run (``train --resume``, ``Recorder(resume=True)``,
``truncate_run``), and a run whose writer died (kill -9) is still resumed: the liveness rule is
``run_status``'s (heartbeat, and the pid on this host)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from entrodiag import Recorder, load_run
from entrodiag.cli import main
from entrodiag.store import RunWriter
from entrodiag.store.truncate import truncate_run
from entrodiag.store.writer import RunInUseError, check_no_live_writer


@pytest.fixture
def other_process():
    """A live process that is not this one (stands for a trainer still writing the run); killed
    with SIGKILL and reaped at the end (or by the test)."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


def _claim(run: Path, pid: int, *, host: str | None = None, heartbeat_age: float = 0.0) -> None:
    """Make run.json say what a live writer's says: running, its pid and host, a fresh heartbeat."""
    meta = json.loads((run / "run.json").read_text())
    meta.update(status="running", pid=pid, host=host or socket.gethostname(),
                heartbeat=time.time() - heartbeat_age, heartbeat_interval_s=10.0)
    (run / "run.json").write_text(json.dumps(meta))


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.name != "run.json"}


def test_train_resume_is_refused_while_another_trainer_writes_then_goes_on_once_it_is_killed(
        tmp_path, capsys, other_process):
    """Before: the resume loaded the checkpoint, truncated the live run's rows after it and wrote a
    second stream of steps into the run. Now it stops before loading anything, with one line."""
    from entrodiag.trainer import load_config

    out = tmp_path / "run"
    w = RunWriter(out, meta={"source": "builtin", "config": load_config("tiny-arith-test").to_dict()})
    w.append("steps", {"step": [0, 1], "rank": [0, 0], "n_tokens": [5, 5]})
    w.close()
    _claim(out, other_process.pid)
    before = _files(out)
    assert main(["train", "--resume", str(out), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "still being written" in err and f"pid {other_process.pid}" in err
    assert _files(out) == before  # nothing truncated, nothing appended
    assert json.loads((out / "run.json").read_text())["pid"] == other_process.pid
    # the other trainer is killed (kill -9): its run is interrupted and the resume is not refused
    # (it goes on to look for a checkpoint; tests/test_resume_signals.py trains on from one)
    other_process.send_signal(signal.SIGKILL)
    other_process.wait(timeout=10)
    assert load_run(out).status == "interrupted"
    assert main(["train", "--resume", str(out), "--steps", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no complete checkpoint" in err and "still being written" not in err, err


def test_recorder_resume_refused_while_a_writer_of_this_process_or_another_is_live(tmp_path, other_process):
    run = tmp_path / "run"
    w = RunWriter(run, meta={"source": "custom"}, heartbeat_s=60)
    with pytest.raises(RunInUseError, match="still being written"):
        Recorder(run, resume=True)  # a second writer in this very process
    w.append("steps", {"step": [0], "rank": [0], "n_tokens": [1]})
    w.close()
    _claim(run, other_process.pid)  # another process's writer, alive
    with pytest.raises(RunInUseError, match=f"pid {other_process.pid}"):
        Recorder(run, resume=True)
    with pytest.raises(RunInUseError):
        truncate_run(run, -1)
    assert load_run(run).steps["step"].to_list() == [0]  # untouched
    other_process.kill()
    other_process.wait(timeout=10)
    with Recorder(run, resume=True) as rec:  # its writer died: the crash-recovery path
        rec.log_eval(1, "val/accuracy", 0.5)
    assert load_run(run).status == "finished"


def test_liveness_of_a_writer_on_another_host_is_its_heartbeat(tmp_path):
    run = tmp_path / "run"
    RunWriter(run, meta={"source": "custom"}).close()
    _claim(run, 1, host="elsewhere.invalid", heartbeat_age=5.0)  # fresh: live
    with pytest.raises(RunInUseError, match="elsewhere.invalid"):
        check_no_live_writer(run)
    _claim(run, 1, host="elsewhere.invalid", heartbeat_age=60.0)  # older than 3 intervals + 1 s: dead
    check_no_live_writer(run)
    _claim(run, 1, host="elsewhere.invalid")
    meta = json.loads((run / "run.json").read_text())
    for status in ("finished", "failed", "stopped"):  # an ended run has no writer
        check_no_live_writer(run, {**meta, "status": status})


def test_on_an_object_store_a_live_writer_refuses_the_resume_with_its_own_error(s3_env):
    """Before, on s3:// a refusal came out as "cannot write the run there ... check the bucket"."""
    from entrodiag.store.location import locate

    url = f"s3://{s3_env}/runs/live"
    RunWriter(url, meta={"source": "custom"}).close()
    target = locate(url).child("run.json")
    meta = json.loads(target.read_bytes())
    live = {**meta, "status": "running", "host": "elsewhere.invalid", "heartbeat": time.time()}
    target.write_bytes(json.dumps(live).encode())
    with pytest.raises(RunInUseError, match="still being written"):
        Recorder(url, resume=True)
    with pytest.raises(FileExistsError, match="already holds a run"):
        RunWriter(url, meta={})  # a new run there: the plain refusal, not a store error
    target.write_bytes(json.dumps({**live, "heartbeat": time.time() - 60}).encode())  # stale: its writer died
    Recorder(url, resume=True).close()
    assert json.loads(target.read_bytes())["status"] == "finished"
