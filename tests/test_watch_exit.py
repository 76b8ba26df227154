"""``entrodiag watch --follow``: each way a run ends has its own exit code (0 finished, 3
interrupted, 4 failed, 5 stopped, 6 the run removed), so a script waiting on it never takes a
failed run for a finished one."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from entrodiag.cli import build_parser, main
from entrodiag.store import RunWriter
from entrodiag.watch.follow import EXIT_CODES, EXIT_FAILED, EXIT_GONE, EXIT_INTERRUPTED, EXIT_STOPPED, follow


def _run(path: Path, **meta) -> Path:
    """A closed three-step run whose run.json then says ``meta`` (e.g. its status)."""
    w = RunWriter(path, meta={"source": "custom"})
    w.append("steps", {"step": [0, 1, 2], "rank": [0, 0, 0], "n_tokens": [10, 10, 10],
                       "entropy_mean": [0.9, 0.8, 0.7], "reward_mean": [0.1, 0.2, 0.3]})
    w.close()
    data = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**data, **meta}))
    return path


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("status, code", [("finished", 0), ("failed", EXIT_FAILED), ("stopped", EXIT_STOPPED),
                                          ("interrupted", EXIT_INTERRUPTED)])
def test_follow_exits_with_the_code_of_how_the_run_ended(tmp_path, capsys, status, code):
    """Before: a failed or stopped run ended the follow with exit 0, like a finished one."""
    meta = {"status": status}
    if status == "interrupted":  # recorded as running, its writer dead (the pid on this host)
        meta = {"status": "running", "host": socket.gethostname(), "pid": _dead_pid(),
                "heartbeat": time.time()}
    run = _run(tmp_path / "run", **meta)
    assert main(["watch", str(run), "--follow", "--interval", "0.01", "--no-events"]) == code
    out = capsys.readouterr().out
    assert f"the run is {status}; stopped watching" in out
    assert (f"(exit {code}:" in out) == (code != 0)
    assert EXIT_CODES[status] == code
    assert main(["watch", str(run), "--no-events"]) == 0  # read once: it read the run


def test_follow_exits_6_when_the_run_is_removed_and_2_for_a_path_that_never_was_a_run(tmp_path, capsys):
    run = _run(tmp_path / "run", status="running", host="elsewhere.invalid", heartbeat=time.time() + 3600)

    class RemoveOnFirstStatus:  # the run's folder is deleted right after the first poll
        text = ""

        def write(self, s: str) -> None:
            if "[running]" in s and run.exists():
                shutil.rmtree(run)
            self.text += s

        def flush(self) -> None:
            pass

    out = RemoveOnFirstStatus()
    assert follow(run, keep_following=True, interval=0.01, record_events=False, out=out) == EXIT_GONE == 6
    assert "no longer a run" in out.text and "(exit 6)" in out.text
    assert main(["watch", str(tmp_path / "nothing"), "--follow", "--interval", "0.01"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


def test_watch_help_and_the_docs_list_every_exit_code():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["watch"].format_help().split())
    for code, meaning in [(0, "finished"), (1, "a flag"), (2, "not a run"), (3, "interrupted"), (4, "failed"),
                          (5, "stopped"), (6, "removed"), (130, "the watch itself was stopped")]:
        assert f"{code} {meaning}" in text, (code, meaning)
    doc = (Path(__file__).resolve().parents[1] / "docs" / "run-directory.md").read_text()
    for code, word in [(0, "finished"), (3, "interrupted"), (4, "failed"), (5, "stopped"), (6, "removed")]:
        assert f"| `{code}` |" in doc and word in doc.split(f"| `{code}` |")[1].splitlines()[0]
