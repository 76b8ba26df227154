"""``analyze``, ``report``, ``query`` and ``import`` on a run that is empty, still being written,
failed, or not a run: a non-zero exit with one line where something is wrong, never a
traceback, never exit 0 over nothing."""

from __future__ import annotations

import json
import time

import pytest

from entrodiag.cli import main
from entrodiag.store import RunWriter
from schema_check import diagnosis, query_rows


def _run(path, steps: int, **meta):
    w = RunWriter(path, meta={"source": "custom"})
    if steps:
        w.append("steps", {"step": list(range(steps)), "rank": [0] * steps, "n_tokens": [10] * steps,
                           "entropy_mean": [0.9 - 0.01 * s for s in range(steps)],
                           "reward_mean": [0.1 + 0.01 * s for s in range(steps)]})
        w.append("evals", {"step": [0, steps - 1], "rank": [0, 0], "name": ["val/accuracy"] * 2,
                           "value": [0.2, 0.3], "n": [10, 10]})
    w.close()
    data = json.loads((path / "run.json").read_text())
    (path / "run.json").write_text(json.dumps({**data, **meta}))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """empty, failed, live (running, a fresh heartbeat from another host) and not-a-run folders."""
    root = tmp_path_factory.mktemp("states")
    live = {"status": "running", "host": "elsewhere.invalid", "heartbeat": time.time() + 3600}
    out = {"empty": _run(root / "empty", 0), "failed": _run(root / "failed", 12, status="failed"),
           "live": _run(root / "live", 12, **live), "live_empty": _run(root / "live_empty", 0, **live)}
    (root / "not_a_run").mkdir()
    (root / "not_a_run" / "notes.txt").write_text("hello")
    (root / "a_file").write_text("hello")
    (root / "bad_json").mkdir()
    (root / "bad_json" / "run.json").write_text("{cut")
    out.update({k: root / k for k in ("not_a_run", "a_file", "bad_json", "missing")})
    return out


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("name", ["not_a_run", "a_file", "bad_json", "missing"])
@pytest.mark.parametrize("command", ["analyze", "report", "query"])
def test_not_a_run_is_one_line_and_exit_2(runs, tmp_path, capsys, command, name):
    """Before, for query of a run whose run.json is cut: exit 0 and a count of 0 steps."""
    path, pdf, index = str(runs[name]), str(tmp_path / "r.pdf"), str(tmp_path / "i")
    args = {"analyze": ["analyze", path], "report": ["report", path, "-o", pdf],
            "query": ["query", path, "select count(*) from steps", "--index", index]}[command]
    assert main(args) == 2
    _one_line(capsys)
    assert not (tmp_path / "r.pdf").exists()


@pytest.mark.parametrize("name", ["empty", "live_empty"])
def test_report_of_a_run_without_steps_is_refused(runs, tmp_path, capsys, name):
    """Before: exit 0 and a PDF whose verdict read "No collapse detected." over no data at all."""
    pdf = tmp_path / "r.pdf"
    assert main(["report", str(runs[name]), "-o", str(pdf)]) == 2
    err = _one_line(capsys)
    assert "has no step rows" in err and "nothing to report" in err and not pdf.exists()


@pytest.mark.parametrize("name", ["empty", "failed", "live"])
def test_analyze_and_query_read_a_run_in_any_state_and_say_its_status(runs, tmp_path, capsys, name):
    status = {"empty": "finished", "failed": "failed", "live": "running"}[name]
    assert main(["analyze", str(runs[name]), "--json"]) == 0
    summary = diagnosis(capsys.readouterr().out)
    assert summary["run"]["status"] == status and summary["run"]["steps"] == (0 if name == "empty" else 12)
    sql = "select status, (select count(*) from steps) n from runs"
    assert main(["query", str(runs[name]), sql, "--json", "--index", str(tmp_path / "i")]) == 0
    assert query_rows(capsys.readouterr().out) == [{"status": status, "n": 0 if name == "empty" else 12}]


def test_import_refuses_a_run_as_its_source_and_a_file_as_its_out(runs, tmp_path, capsys):
    """Before: "is a folder without trainer_state.json ..." for a run, "[Errno 17] File exists" for a file."""
    log = tmp_path / "log.csv"
    log.write_text("step,entropy,reward\n0,0.9,0.1\n1,0.8,0.2\n")
    for source in (runs["failed"], runs["failed"] / "run.json"):
        assert main(["import", str(source), "--out", str(tmp_path / "new")]) == 2
        assert "is already an entrodiag run" in _one_line(capsys)
    assert main(["import", str(log), "--out", str(runs["a_file"])]) == 2
    assert "is a file" in _one_line(capsys)
    for taken in ("empty", "live"):  # a run there already, whatever its state
        assert main(["import", str(log), "--out", str(runs[taken])]) == 2
        assert "already holds a run" in _one_line(capsys)
    assert not (tmp_path / "new").exists()
    assert main(["import", str(log), "--out", str(tmp_path / "new")]) == 0
