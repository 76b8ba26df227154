"""Reading runs on an object store: every read path (``load_run``, analyze, inspect, compare,
report, watch, the dashboard) on ``s3://`` URLs of a real S3-protocol server (moto, 127.0.0.1)
gives what it gives on a local copy of the same files; damaged parts, impossible values and
compacted parts behave as they do locally; bad URLs fail with one line.

Runs are built locally (``data/sample-run`` and a damaged copy of it), uploaded once per module
with ``pyarrow.fs.copy_files``, and compared with the local copies.
"""

from __future__ import annotations

import json
import math
import shutil
import socket
import threading
import time
import uuid
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
from polars.testing import assert_frame_equal
from run_damage import SAMPLE_RUN, copy_sample_run, corrupt_page, truncate_part

import entrodiag.store.reader as reader_mod
from entrodiag.analysis import analyze_run, compare_runs
from entrodiag.cli import main
from entrodiag.store import load_run
from entrodiag.store.location import Location, locate
from entrodiag.store.schema import compacted_name
from schema_check import diagnosis, inspected

FRAMES = ("steps", "steps_by_rank", "evals", "tokens", "events", "samples", "spans")


def upload(local: Path, url: str) -> None:
    """Copy a local run folder to ``url`` (what a user does with ``aws s3 cp --recursive``)."""
    dest = locate(url)
    pafs.copy_files(str(local), dest.fs_path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=dest.fs)


def damage(run: Path) -> dict:
    """Damage a copy of the sample run in every way the reader guards against: a truncated steps
    part, a tokens part with a corrupt page behind a good footer, impossible values in a steps
    and a tokens part, and a compacted evals part next to the parts it replaces (a compaction
    that crashed before deleting them). Returns what was done."""
    steps = sorted((run / "steps").glob("part-*"))
    tokens = sorted((run / "tokens").glob("part-*"))
    truncate_part(steps[3])
    assert corrupt_page(tokens[20], "entropy") == "entropy"
    df = pl.read_parquet(steps[0])
    h = df["entropy_mean"].to_list()
    h[0], h[1] = -0.5, math.inf
    df.with_columns(entropy_mean=pl.Series(h)).write_parquet(steps[0], compression="zstd")
    t = pl.read_parquet(tokens[0])
    e = t["entropy"].to_list()
    e[0] = -1.0
    t.with_columns(entropy=pl.Series(e, dtype=pl.Float32)).write_parquet(tokens[0], compression="zstd")
    evals = sorted((run / "evals").glob("part-*"))
    first, last = (int(p.name[12:18]) for p in (evals[0], evals[4]))
    pl.concat([pl.read_parquet(p) for p in evals[:5]]).write_parquet(run / "evals" / compacted_name(0, first, last))
    return {"skipped": {f"steps/{steps[3].name}", f"tokens/{tokens[20].name}"}, "replaced": 4}


@pytest.fixture(scope="module")
def store(s3_server, tmp_path_factory):
    """A bucket holding ``runs/sample`` (the sample run) and ``runs/damaged`` (see ``damage``),
    the environment pointed at the server for the whole module, and the local copies."""
    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        bucket = f"read-{uuid.uuid4().hex[:12]}"
        pafs.S3FileSystem(endpoint_override=s3_server, access_key="testing", secret_key="testing", region="us-east-1",
                          scheme="http", allow_bucket_creation=True).create_dir(bucket)
        damaged = copy_sample_run(tmp_path_factory.mktemp("local") / "damaged")
        done = damage(damaged)
        upload(SAMPLE_RUN, f"s3://{bucket}/runs/sample")
        upload(damaged, f"s3://{bucket}/runs/damaged")
        yield {"bucket": bucket, "root": f"s3://{bucket}/runs", "sample": f"s3://{bucket}/runs/sample",
               "damaged": f"s3://{bucket}/runs/damaged", "local_damaged": damaged, **done}


def frames_equal(a, b) -> None:
    for name in FRAMES:
        assert_frame_equal(getattr(a, name), getattr(b, name), check_row_order=True), name


# ----------------------------------------------------------------------------------- load_run
def test_load_run_on_a_url_equals_the_local_copy(store):
    run = load_run(store["sample"])
    assert isinstance(run.path, Location) and str(run.path) == store["sample"]
    local = load_run(SAMPLE_RUN)
    assert run.meta == local.meta and run.status == local.status == "finished"
    frames_equal(run, local)
    assert run.tokens.height > 1000 and run.evals.height > 0 and run.events.height > 0
    assert len(run.parts("tokens")) == len(local.parts("tokens"))
    # every part was fetched once and is held in memory: later scans hand polars its bytes, no URL
    from entrodiag.store.scan import sources

    for table in ("steps", "tokens", "evals"):
        held = sources(run.parts(table))
        assert held == [p.read_bytes() for p in local.parts(table)], table
    # the only run under a prefix is found, as for a local folder
    assert str(load_run(f"{store['root']}/sample/").path) == store["sample"]


def test_damaged_parts_bad_values_and_compacted_parts_read_as_locally(store):
    local_dir = store["local_damaged"]
    with pytest.warns(UserWarning) as caught:
        run = load_run(store["damaged"])
        run.check()
        frames = {name: getattr(run, name) for name in FRAMES}
    named = [str(w.message) for w in caught if reader_mod.SKIP_WARNING in str(w.message)]
    assert len(named) == 2 and all(store["damaged"] in m for m in named)  # named once each, by URL
    assert {p["path"] for p in run.skipped()} == store["skipped"]
    with pytest.warns(UserWarning):
        local = load_run(local_dir)
        local.check()
    frames_equal(run, local)
    assert {p["path"] for p in local.skipped()} == store["skipped"]
    # impossible values: null and counted, as locally
    assert run.bad_values() == local.bad_values() == {
        "steps": {"entropy_mean": {"negative": 1, "non-finite": 1}}, "tokens": {"entropy": {"negative": 1}}}
    assert frames["steps"]["entropy_mean"].is_null().sum() == 2
    # the compacted evals part replaces five parts: no row twice, the same evals as the intact run
    assert_frame_equal(frames["evals"], load_run(SAMPLE_RUN).evals)
    assert len(run.parts("evals")) == len(load_run(SAMPLE_RUN).parts("evals")) - store["replaced"]


def test_verdicts_are_keyed_on_the_objects_time_and_size(store):
    """A part rewritten on the store under the same name is judged again (new mtime/size)."""
    url = f"s3://{store['bucket']}/runs/rewritten"
    upload(SAMPLE_RUN / "tokens", f"{url}/tokens")
    locate(f"{url}/run.json").write_bytes((SAMPLE_RUN / "run.json").read_bytes())
    run = load_run(url)
    n = run.tokens.height
    part = run.parts("tokens")[2]
    assert any(k[0] == str(part) and k[2] == locate(str(part)).info().size for k in reader_mod._VERDICTS)
    broken = Path(str(store["local_damaged"])).parent / "broken.parquet"
    shutil.copy(SAMPLE_RUN / "tokens" / part.name, broken)
    corrupt_page(broken)
    time.sleep(1.1)  # the store's times have whole seconds
    locate(str(part)).write_bytes(broken.read_bytes())
    with pytest.warns(UserWarning, match=part.name):
        again = load_run(url)
        assert again.tokens.height == n - pl.read_parquet(SAMPLE_RUN / "tokens" / part.name).height
    assert again.skipped_parts == [part]


# ---------------------------------------------------------------------------------- commands
def _json(capsys, *argv) -> dict:
    assert main(list(argv)) == 0
    out = json.loads(capsys.readouterr().out)
    return diagnosis(out) if argv[0] == "analyze" else inspected(out) if argv[0] == "inspect" else out


@pytest.mark.filterwarnings("ignore:entrodiag")
@pytest.mark.parametrize("name", ["sample", "damaged"])
def test_analyze_and_inspect_json_equal_the_local_copy(store, name, capsys):
    local = str(SAMPLE_RUN if name == "sample" else store["local_damaged"])
    remote_a, local_a = _json(capsys, "analyze", store[name], "--json"), _json(capsys, "analyze", local, "--json")
    remote_i, local_i = _json(capsys, "inspect", store[name], "--json"), _json(capsys, "inspect", local, "--json")
    assert remote_a["run"].pop("path") == store[name] and local_a["run"].pop("path") == local
    assert remote_i.pop("run") == store[name] and local_i.pop("run") == local
    # the same numbers; warnings name the files by the run's URL where the local copy has its path
    assert json.loads(json.dumps(remote_a).replace(store[name], local)) == local_a
    assert json.loads(json.dumps(remote_i).replace(store[name], local)) == local_i
    assert remote_a["law"]["status"] == "ok" and remote_i["rows"]["tokens"] > 0
    if name == "damaged":
        assert {p["path"] for p in remote_i["skipped_parts"]} == store["skipped"]
        assert {p["path"] for p in remote_a["run"]["skipped_parts"]} == store["skipped"]


def test_compare_a_url_with_a_local_run(store):
    table = compare_runs([store["sample"], SAMPLE_RUN])
    assert table.height == 2
    a, b = (table.row(i, named=True) for i in range(2))
    differ = {k for k in a if a[k] != b[k] and not (isinstance(a[k], float) and math.isnan(a[k]) and math.isnan(b[k]))}
    assert differ <= {"run", "path"}, differ
    assert a["steps"] == load_run(SAMPLE_RUN).steps.height


def test_report_of_a_url(store, tmp_path):
    pdf = tmp_path / "x.pdf"
    assert main(["report", store["sample"], "-o", str(pdf)]) == 0
    assert pdf.stat().st_size > 10_000
    from test_report import pdf_text  # pdftotext, else pypdf; skips without either

    text = pdf_text(pdf)
    law = analyze_run(SAMPLE_RUN)["law"]
    assert store["sample"] in text  # the report says where the run was read from
    for number in (law["ceiling"], law["r2"]):
        assert format(number, ".3g") in text
    assert f"tokens {load_run(SAMPLE_RUN).tokens.height:,}" in text


def test_one_line_errors(store, capsys, monkeypatch):
    cases = {
        f"s3://nobucket-{uuid.uuid4().hex[:8]}/runs/a": "does not exist",
        f"{store['root']}/nothing-here": "no such run",
        f"{store['sample']}/run.json": "is an object",
        store["root"]: "runs (",  # "... holds N runs (damaged, ...); name one of them"
        f"s3://{store['bucket']}": "holds no",  # (the bucket holds runs/, which holds two runs)
        "s3:/x": "two slashes",
        "hdfs://x/y": "unsupported URL scheme",
    }
    for url, words in cases.items():
        assert main(["analyze", url]) == 2
        err = capsys.readouterr().err
        if words == "holds no":
            words = "no run.json"
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, (url, err)
    assert main(["compact", store["sample"]]) == 2
    assert "object store" in capsys.readouterr().err
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    assert main(["inspect", store["sample"]]) == 2
    err = capsys.readouterr().err
    assert "cannot read the object store" in err and "AWS_ENDPOINT_URL" in err and err.count("\n") == 1


def test_a_file_url_reads_the_local_folder(store):
    run = load_run(SAMPLE_RUN.resolve().as_uri())
    assert run.path == SAMPLE_RUN.resolve()
    assert_frame_equal(run.steps, load_run(SAMPLE_RUN).steps)


# --------------------------------------------------------------------------------------- watch
def test_watch_follows_a_run_whose_parts_are_being_uploaded(store):
    """A run written on another node: run.json (running, fresh heartbeat, another host) and the
    steps parts appear on the store in batches; ``watch --follow`` reports each new step and
    stops when run.json says finished."""
    from entrodiag.watch.follow import follow

    url = f"s3://{store['bucket']}/runs/live"
    meta = json.loads((SAMPLE_RUN / "run.json").read_text())
    meta.update(status="running", heartbeat=time.time(), heartbeat_interval_s=3600, host="another-node", pid=1)
    locate(f"{url}/run.json").write_bytes(json.dumps(meta).encode())
    parts = sorted((SAMPLE_RUN / "steps").glob("part-*"))
    batches = [parts[: len(parts) // 3], parts[len(parts) // 3:2 * len(parts) // 3], parts[2 * len(parts) // 3:]]
    last_steps = [pl.concat([pl.read_parquet(p) for p in parts[: sum(map(len, batches[: i + 1]))]])["step"].max()
                  for i in range(3)]
    lines: list[str] = []

    class Out:
        def write(self, s):
            lines.extend(x for x in s.splitlines() if x)

        def flush(self):
            pass

    def uploader():
        for batch in batches:
            for p in batch:
                locate(f"{url}/steps/{p.name}").write_bytes(p.read_bytes())
            deadline = time.monotonic() + 30
            while not any(f"step {last_steps[batches.index(batch)]} " in x for x in lines) and time.monotonic() < deadline:
                time.sleep(0.05)
        locate(f"{url}/run.json").write_bytes(json.dumps({**meta, "status": "finished"}).encode())

    locate(f"{url}/steps/{batches[0][0].name}").write_bytes(batches[0][0].read_bytes())  # a run to open
    t = threading.Thread(target=uploader, daemon=True)
    t.start()
    rc = follow(url, keep_following=True, interval=0.1, record_events=False, out=Out())
    t.join(30)
    assert rc == 0
    status = [x for x in lines if x.startswith(("[running]", "[finished]", "[interrupted]"))]
    for step in last_steps:
        assert any(f"step {step} " in x for x in status), (step, status)
    assert all(x.startswith("[running]") for x in status[:-1]), status  # fresh heartbeat, another host
    assert lines[-1] == "the run is finished; stopped watching", lines


def test_watch_once_and_stale_heartbeat_on_a_url(store, capsys):
    assert main(["watch", store["sample"], "--no-events"]) == 0
    out = capsys.readouterr().out
    assert main(["watch", str(SAMPLE_RUN), "--no-events"]) == 0
    assert out == capsys.readouterr().out  # the same flags and status line as the local copy
    assert f"step {load_run(SAMPLE_RUN).steps['step'].max()} " in out and "ceiling" in out
    url = f"s3://{store['bucket']}/runs/stale"
    meta = json.loads((SAMPLE_RUN / "run.json").read_text())
    meta.update(status="running", heartbeat=time.time() - 100, heartbeat_interval_s=1, host=socket.gethostname(),
                pid=2**22 + 7)
    locate(f"{url}/run.json").write_bytes(json.dumps(meta).encode())
    assert load_run(url).status == "interrupted"  # the heartbeat in run.json is stale
    meta.update(heartbeat=time.time(), heartbeat_interval_s=3600, host="another-node")
    locate(f"{url}/run.json").write_bytes(json.dumps(meta).encode())
    assert load_run(url).status == "running"  # a pid on another host is not checked here


# ------------------------------------------------------------------------------------ dashboard
def test_dashboard_reads_a_runs_root_given_as_a_url(store, monkeypatch):
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    from streamlit.testing.v1 import AppTest

    app = Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"
    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", store["root"])
    at = AppTest.from_file(str(app), default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    table = at.dataframe[0].value
    names = table["run"].tolist()
    assert {"sample", "damaged"} <= set(names)
    row = compare_runs([SAMPLE_RUN]).row(0, named=True)
    i = names.index("sample")
    assert table["steps"][i] == row["steps"]
    assert table["ceiling"][i] == f"{row['ceiling']:.3f}"  # a text cell (a withheld ceiling says so)
    assert math.isclose(table["entropy_now"][i], row["entropy_end"])
    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", f"s3://nobucket-{uuid.uuid4().hex[:8]}/runs")
    at = AppTest.from_file(str(app), default_timeout=60)
    at.run()
    assert not at.exception
    shown = " ".join(str(e.value) for kind in ("info", "warning", "error", "markdown") for e in getattr(at, kind))
    assert "does not exist" in shown.replace("\\", "")


def test_dashboard_launcher_keeps_a_url_root(store, monkeypatch):
    import entrodiag.dashboard as dash

    seen = {}
    monkeypatch.setattr(dash.subprocess, "call", lambda cmd, env: seen.update(env) or 0)
    monkeypatch.setattr(dash.importlib.util, "find_spec", lambda name: object())
    assert dash.run_dashboard(store["root"] + "/", replace_process=False) == 0
    assert seen[dash.ROOT_ENV] == store["root"]
    with pytest.raises(dash.DashboardError, match="unsupported URL scheme"):
        dash.run_dashboard("ftp://host/runs", replace_process=False)


def test_dashboard_pages_of_a_run_given_as_a_url(store, monkeypatch):
    """The root is the run itself: the Dynamics page shows the local copy's numbers."""
    pytest.importorskip("streamlit")
    pytest.importorskip("plotly")
    import numpy as np
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ENTRODIAG_RUNS_ROOT", store["sample"])
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "entrodiag" / "app" / "streamlit_app.py"), default_timeout=120)
    at.run()
    assert at.dataframe[0].value["run"].tolist() == ["sample"]  # named after its last path segment
    at.switch_page("page_dynamics.py")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    rows = {r["name"]: r for r in analyze_run(SAMPLE_RUN)["dynamics"]["rows"]}
    for name in ("entropy_mean", "reward_mean", "cov_mean"):
        assert shown[rows[name]["label"]] == format(rows[name]["end"], ".4g")
    mean = next(t for c in at.get("plotly_chart") for t in json.loads(c.proto.spec)["data"] if t.get("name") == "mean")
    assert np.allclose(mean["y"], load_run(SAMPLE_RUN).steps["entropy_mean"].to_numpy())


def test_a_store_lost_mid_read_is_one_error_not_a_damaged_part(store, monkeypatch):
    """An endpoint that stops answering after the run was opened: a RunError naming the store;
    no part is judged damaged (nor cached as such), so the next read, with the store back, is whole."""
    url = f"s3://{store['bucket']}/runs/flaky"
    upload(SAMPLE_RUN / "evals", f"{url}/evals")
    locate(f"{url}/run.json").write_bytes((SAMPLE_RUN / "run.json").read_bytes())
    good = load_run(url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    lost = reader_mod.Run(path=locate(url), meta=good.meta)
    with pytest.raises(reader_mod.RunError, match="cannot read the object store"):
        lost.evals
    assert lost.skipped_parts == []
    monkeypatch.undo()
    assert_frame_equal(load_run(url).evals, load_run(SAMPLE_RUN).evals)
    assert not load_run(url).check()


def test_watch_records_its_flags_in_the_runs_events_on_the_url(store, capsys):
    """``watch URL`` (events on) writes the flags it raises as an events part on the store."""
    url = f"s3://{store['bucket']}/runs/watched"
    upload(SAMPLE_RUN, url)
    before = load_run(url).events.height
    assert main(["watch", url]) == 0
    flags = [x for x in capsys.readouterr().out.splitlines() if x.startswith("[step ")]
    events = load_run(url).events
    assert flags and events.height == before + len(flags)
    assert all(i.base_name.startswith("part-") for i in locate(f"{url}/events").list())  # whole parts only
