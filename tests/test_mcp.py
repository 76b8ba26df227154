"""``entrodiag mcp``: the server started as a subprocess (``entrodiag mcp ROOT``) and driven by the
MCP SDK's own stdio client, one session for the whole module. Each tool is called on the sample
run, an imported real run and a damaged run, and its answer checked against ``analyze --json`` /
``query --json`` and the analysis functions; the confinement cases (``..``, a symlink out, an
absolute path elsewhere, a part file linking out, SQL that reads, writes, attaches or installs)
are refused; nothing is written into a run folder; ``tail`` follows a run that ``entrodiag
train`` is writing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("mcp")

import anyio.from_thread  # noqa: E402  (the SDK's own dependency)
from mcp import Client, StdioServerParameters  # noqa: E402

from entrodiag.analysis import compare_runs, detect_collapse  # noqa: E402
from entrodiag.cli import main  # noqa: E402
from entrodiag.store.reader import load_run  # noqa: E402
from run_damage import copy_sample_run, truncate_part  # noqa: E402
from schema_check import checked, diagnosis, query_rows  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_LOGS = (REPO / ".." / "shared" / "real-logs", Path("/work/shared/real-logs"))
REAL = next((p.resolve() / "verl-console-ppo-gsm8k" for p in _LOGS if (p / "verl-console-ppo-gsm8k").is_dir()), None)
TOOLS = {"list_runs", "diagnose", "compare", "tail", "query", "forecast"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The served root (sample run, damaged run, imported real run, a link out, a run with a part
    file linking out), a run outside it, and the cache folder of the server's index."""
    base = tmp_path_factory.mktemp("mcp")
    root, outside = base / "root", base / "outside"
    copy_sample_run(root / "sample-run")
    damaged = copy_sample_run(root / "damaged")
    truncate_part(sorted((damaged / "steps").glob("*.parquet"))[-1])
    copy_sample_run(outside / "secret")
    (root / "escape").symlink_to(outside / "secret", target_is_directory=True)
    leaky = copy_sample_run(root / "leaky")
    part = sorted((leaky / "steps").glob("*.parquet"))[0]
    part.unlink()
    part.symlink_to(sorted((outside / "secret" / "steps").glob("*.parquet"))[0])
    if REAL is not None:
        from entrodiag.importers import import_run

        import_run(next(REAL.glob("Qwen*.log")), root / "real")
    return {"root": root, "outside": outside, "cache": base / "cache"}


@pytest.fixture(scope="module")
def mcp_call(world):
    """``call(tool, **args)`` -> the tool's structured answer (or ``("error", text)``), over one
    stdio session with ``entrodiag mcp ROOT`` started by the SDK's client; ``client`` for the rest."""
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p),
           "ENTRODIAG_CACHE": str(world["cache"]), "OMP_NUM_THREADS": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "entrodiag.cli", "mcp", str(world["root"])],
                                   env=env, cwd=str(world["root"].parent))
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(Client(params, read_timeout_seconds=120)) as client:
            def call(tool: str, **args):
                res = portal.call(client.call_tool, tool, args)
                return ("error", res.content[0].text) if res.is_error else res.structured_content

            call.client, call.portal = client, portal
            yield call


def _cli_json(capsys, *argv):
    assert main([str(a) for a in argv]) == 0
    return json.loads(capsys.readouterr().out)


def _runs(world) -> list[str]:
    return ["sample-run", "damaged", *(["real"] if REAL is not None else [])]


def test_tools_are_listed_and_diagnose_is_analyze_json(world, mcp_call, capsys):
    listed = mcp_call.portal.call(mcp_call.client.list_tools)
    assert {t.name for t in listed.tools} == TOOLS
    for name in _runs(world):
        got = diagnosis(mcp_call("diagnose", run=name))
        want = diagnosis(_cli_json(capsys, "analyze", world["root"] / name, "--json"))
        assert isinstance(got.pop("summary"), str) and got["run"].pop("path") and want["run"].pop("path")
        assert got == want, name
    damaged = mcp_call("diagnose", run="damaged")
    assert [p["path"] for p in damaged["run"]["skipped_parts"]] == [
        "steps/" + sorted((world["root"] / "damaged" / "steps").glob("*.parquet"))[-1].name]


@pytest.mark.filterwarnings("ignore:entrodiag. skipping unreadable part file")
def test_list_runs_compare_forecast_and_query_match_the_cli(world, mcp_call, capsys):
    runs = _runs(world)
    listed = {r["run_id"]: r for r in mcp_call("list_runs")["runs"]}
    assert set(listed) == set(runs)  # "escape" and "leaky" link out: neither listed nor read
    for name in runs:
        steps = load_run(world["root"] / name).steps
        assert listed[name]["steps"] == steps.height and listed[name]["last_step"] == steps["step"].max()
        assert listed[name]["last_entropy"] == pytest.approx(steps["entropy_mean"][-1])
    assert [r["run_id"] for r in mcp_call("list_runs", filter="DAMAG")["runs"]] == ["damaged"]
    assert listed["sample-run"]["run_json_uri"] == "entrodiag://run/sample-run/run.json"

    got = mcp_call("compare", runs=runs)["runs"]
    want = compare_runs([world["root"] / r for r in runs]).to_dicts()
    assert [r["run_id"] for r in got] == runs
    for g, w in zip(got, want):
        assert {k: g[k] for k in w} == pytest.approx(w, nan_ok=True)

    fc = mcp_call("forecast", run="sample-run")
    summary = diagnosis(_cli_json(capsys, "analyze", world["root"] / "sample-run", "--json"))
    assert fc["forecast"] == summary["forecast"] and fc["law"]["ceiling"] == summary["law"]["ceiling"]
    assert fc["final_r"] == summary["early_prediction"]["rows"][-1] | {"status": "ok"}

    sql = "select run_id, count(*) as n, avg(entropy_mean) as h from steps group by run_id order by run_id"
    got = checked("query", mcp_call("query", sql=sql))
    want = query_rows(_cli_json(capsys, "query", world["root"], sql, "--json", "--index", world["cache"] / "cli"))
    # the command line follows the links out of the root ("escape", "leaky"); the server does not
    assert got["rows"] == [r for r in want if r["run_id"] in runs] and {r["run_id"] for r in got["rows"]} == set(runs)


def test_tail_resources_and_prompts(world, mcp_call):
    got = mcp_call("tail", run="sample-run", since_step=115)
    steps = load_run(world["root"] / "sample-run").steps
    assert [r["step"] for r in got["steps"]] == [116, 117, 118, 119] and got["next_since"]["steps"] == 119
    assert got["steps"][-1]["entropy_mean"] == pytest.approx(steps["entropy_mean"][-1])
    assert all(e["step"] > 115 for e in got["evals"]) and got["evals"]
    c, p = mcp_call.client, mcp_call.portal
    text = p.call(c.read_resource, "entrodiag://run/sample-run/run.json").contents[0].text
    assert json.loads(text) == json.loads((world["root"] / "sample-run" / "run.json").read_text())
    run_id = json.loads(text)["run_id"]
    (world["root"] / "reports").mkdir(exist_ok=True)
    (world["root"] / "reports" / f"{run_id}.pdf").write_bytes(b"%PDF-1.4 a report\n")
    blob = p.call(c.read_resource, "entrodiag://run/sample-run/report.pdf").contents[0]
    import base64

    assert base64.b64decode(blob.blob) == b"%PDF-1.4 a report\n"
    prompts = {x.name for x in p.call(c.list_prompts).prompts}
    assert prompts == {"why_is_my_run_collapsing", "compare_these_runs"}
    msg = p.call(c.get_prompt, "compare_these_runs", {"runs": "sample-run, damaged"}).messages[0].content.text
    assert "['sample-run', 'damaged']" in msg and "compare" in msg


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "linked part"])
def test_a_run_outside_the_root_is_refused(world, mcp_call, how):
    run = {"dotdot": "../outside/secret", "absolute": str(world["outside"] / "secret"), "symlink": "escape",
           "linked part": "leaky"}[how]
    for tool, args in (("diagnose", {}), ("tail", {}), ("forecast", {}), ("compare", None)):
        got = mcp_call(tool, runs=[run]) if args is None else mcp_call(tool, run=run)
        assert got[0] == "error" and ("outside the server's root" in got[1] or "a link out" in got[1]), (tool, got)
    with pytest.raises(Exception, match="outside the server's root|a link out"):
        mcp_call.portal.call(mcp_call.client.read_resource, f"entrodiag://run/{run}/run.json"
                             if how not in ("dotdot", "absolute") else "entrodiag://run/escape/run.json")


@pytest.mark.parametrize("sql", [
    "copy (select * from steps) to '{out}/stolen.csv'",
    "select * from read_csv('{secret}/run.json')",
    "select * from read_parquet('{secret}/steps/*.parquet')",
    "attach '{out}/new.duckdb' as other",
    "install httpfs",
    "set enable_external_access = true",
    # refused only by the sandbox (external access off, configuration locked), not by the tables it lists
    "set memory_limit = '64GB'",
    "set python_scan_all_frames = true",
    "select * from glob('{secret}/*')",
    "select * from read_text('{secret}/run.json')",
    "select * from read_blob('{secret}/run.json')",
    "export database '{out}/exported'",
    "load httpfs",
])
def test_sql_reads_only_the_index_tables(world, mcp_call, sql):
    out = world["root"].parent
    got = mcp_call("query", sql=sql.format(out=out, secret=world["outside"] / "secret"))
    assert got[0] == "error", got
    # refused by the guard itself (not e.g. for want of an extension that is not installed)
    assert "disabled" in got[1] or "Cannot change configuration" in got[1], got
    assert not (out / "stolen.csv").exists() and not (out / "new.duckdb").exists()
    assert not (out / "exported").exists()


def test_sql_sees_no_run_outside_the_root(world, mcp_call):
    ids = {r["run_id"] for r in mcp_call("query", sql="select run_id from runs")["rows"]}
    assert ids == set(_runs(world)) and not any("escape" in i or "leaky" in i for i in ids)
    n = mcp_call("query", sql="select count(distinct run_id) as n from steps")["rows"][0]["n"]
    assert n == len(_runs(world))


def test_nothing_is_written_into_the_run_folders(world, mcp_call):
    def snapshot():
        return {p: (p.stat().st_size, p.stat().st_mtime_ns) for name in _runs(world)
                for p in sorted((world["root"] / name).rglob("*"))}

    before = snapshot()
    for name in _runs(world):
        mcp_call("diagnose", run=name), mcp_call("forecast", run=name), mcp_call("tail", run=name)
    mcp_call("list_runs"), mcp_call("compare", runs=_runs(world)), mcp_call("query", sql="select * from events")
    assert snapshot() == before


def test_without_the_sdk_mcp_says_which_extra(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mcp", None)  # import mcp raises ImportError
    assert main(["mcp", "data"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "entrodiag mcp: entrodiag mcp needs the MCP SDK: pip install 'entrodiag[mcp]'"


def test_tail_follows_a_run_that_train_is_writing(world, mcp_call):
    """A small run without the supervised warm start (its learning is not the point); a part file
    lands at each checkpoint (every 2 steps), while tail polls."""
    out = world["root"] / "live"
    env = {**os.environ, "ENTRODIAG_CACHE": str(world["cache"]), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "entrodiag.cli", "train", "--preset", "tiny-arith-test",
                             "--warmup-max-steps", "0", "--val-size", "20", "--prompts-per-step", "8", "--group-size",
                             "4", "--steps", "30", "--checkpoint-every", "2", "--eval-every", "4",
                             "--out", str(out), "--no-progress"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    seen: list[int] = []
    since = {"steps": -1}
    try:
        deadline = time.time() + 240
        while proc.poll() is None and time.time() < deadline and len(seen) < 2:
            if (out / "run.json").exists():
                got = mcp_call("tail", run="live", since=since)
                if isinstance(got, dict) and got["steps"]:
                    assert got["status"] == "running"
                    steps = [r["step"] for r in got["steps"]]
                    assert steps == sorted(steps) and steps[0] > since["steps"]
                    seen.append(steps[-1])
                    since = got["next_since"]
                    if len(seen) == 1:  # the diagnosis of what has landed so far, while the trainer writes
                        d = diagnosis(mcp_call("diagnose", run="live"))
                        assert d["run"]["status"] == "running" and d["run"]["last_step"] >= steps[-1]
            time.sleep(0.2)
        running = proc.poll() is None
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert len(seen) == 2 and seen[0] < seen[1], (seen, proc.stderr.read()[-2000:] if proc.stderr else "")
    assert running  # both readings came while the trainer was still writing


def test_http_listens_on_127_0_0_1_only(world, tmp_path):
    """--http: streamable HTTP that the SDK's client reaches at http://127.0.0.1:PORT/mcp, on a socket
    bound to 127.0.0.1 (not 0.0.0.0)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "ENTRODIAG_CACHE": str(world["cache"]),
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "entrodiag.cli", "mcp", str(world["root"]), "--http", "--port",
                             str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        if Path("/proc/net/tcp").is_file():  # Linux: the listening sockets, addresses in little-endian hex
            listening = [line.split()[1] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                         if line.split()[3] == "0A" and int(line.split()[1].split(":")[1], 16) == port]
            assert listening == ["0100007F:%04X" % port], listening  # 127.0.0.1 only

        async def tools():
            async with Client(f"http://127.0.0.1:{port}/mcp") as c:
                return {t.name for t in (await c.list_tools()).tools}

        assert anyio.run(tools) == TOOLS
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tail_reads_an_event_that_lands_after_its_step_row(tmp_path):
    """One cursor per table: an event written after its step's row (the trainer flushes events
    later) is returned by the next poll, and a cursor past the end is never moved back."""
    import pyarrow.parquet as pq

    from entrodiag.agents import tools

    root = tmp_path / "root"
    run = copy_sample_run(root / "r")
    first = tools.tail(root, "r")
    last = first["last_step"]
    assert first["next_since"]["steps"] == last and first["next_since"]["events"] < last
    again = tools.tail(root, "r", since=first["next_since"])
    assert again["steps"] == again["events"] == [] and again["next_since"] == first["next_since"]
    part = sorted((run / "events").glob("*.parquet"))[-1]
    late = pq.read_table(part).slice(0, 1).to_pylist()[0] | {"step": last, "message": "a late event"}
    pq.write_table(pq.read_table(part).from_pylist([late], schema=pq.read_schema(part)),
                   run / "events" / "part-r00000-999999.parquet")
    got = tools.tail(root, "r", since=again["next_since"])
    assert [e["message"] for e in got["events"]] == ["a late event"] and got["steps"] == []
    assert got["next_since"] == {**again["next_since"], "events": last}
    ahead = tools.tail(root, "r", since_step=last + 50)
    assert ahead["next_since"] == {t: last + 50 for t in tools.TAIL_TABLES} and ahead["steps"] == []


def test_a_run_that_cannot_be_checked_is_left_out_not_fatal(tmp_path, monkeypatch):
    """A run with a symlink loop is left out of list_runs and query, with the reason in the query's
    notes; the other runs are served. The agents' index has a folder of its own (the one
    ``entrodiag query`` keeps for the root is not pruned of the runs the server leaves out)."""
    from entrodiag.agents import tools
    from entrodiag.agents.confine import ConfinedIndex
    from entrodiag.store.index import RunsIndex

    monkeypatch.setenv("ENTRODIAG_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "root"
    copy_sample_run(root / "good")
    loopy = copy_sample_run(root / "loopy")
    (loopy / "spans").rename(loopy / "spans-moved")
    (loopy / "spans").symlink_to(loopy / "spans")  # a link to itself: resolving it raises RuntimeError
    listed = tools.list_runs(root)["runs"]
    assert [r["run_id"] for r in listed] == ["good"]
    flags = detect_collapse(load_run(root / "good"))  # worst first
    assert listed[0]["worst_flag"] == (flags[0].severity if flags else None)
    got = tools.query(root, "select distinct run_id from steps")
    assert got["rows"] == [{"run_id": "good"}] and any("loopy" in n and "left out" in n for n in got["notes"])
    assert ConfinedIndex(root).dir != RunsIndex(root).dir
