"""Sinks: entrodiag's numbers in the user's tracker, read back through each tracker's own API.

One built-in trainer run (the tests' collapsing configuration, stopped by ``--stop-on critical``
at the watch step that raised a critical flag) sends to W&B (offline), TensorBoard, MLflow (a real
``mlflow server`` on 127.0.0.1 with a SQLite store) and Trackio (its local store) at once, plus a
sink that raises on every call. Each tracker must hold the run folder's per-step entropy and
covariance (to 1e-6) and the flags the trainer's own watch raised.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch

from entrodiag import load_run
from entrodiag.sinks import SINKS, SinkError, TrackerSink, sink_names
from entrodiag.sinks.base import MAX_FAILURES_IN_A_ROW, SinkSet

pytest.importorskip("wandb")
pytest.importorskip("mlflow")
pytest.importorskip("trackio")
pytest.importorskip("tensorboard")

TRACKERS = "wandb,tensorboard,mlflow,trackio"
COMPARED = ("entropy_mean", "cov_mean")


class Boom(TrackerSink):
    """A sink that raises on every call."""

    name = "boom"
    calls = 0

    def _raise(self, *args):
        type(self).calls += 1
        raise RuntimeError("tracker down")

    start = log_metrics = log_note = close = _raise


# ------------------------------------------------------------------------ trackers' own readers
def wandb_history(wandb_file: Path, wait_s: float = 60.0) -> tuple[str, list[dict]]:
    """The display name and history rows of an offline ``.wandb`` file, once its run has ended
    (wandb's service writes the file after ``finish()`` returns: wait for its ``exit`` record)."""
    deadline = time.time() + wait_s
    while True:
        name, rows, ended = _read_wandb(wandb_file)
        if ended or time.time() > deadline:
            assert ended, f"{wandb_file}: no exit record within {wait_s} s"
            return name, rows
        time.sleep(0.2)


def _read_wandb(wandb_file: Path) -> tuple[str | None, list[dict], bool]:
    """wandb's record framing (a LevelDB-style log of 32 KiB blocks after a 7-byte header)
    decoded with wandb's own ``wandb_internal_pb2.Record`` (wandb >= 0.20 ships no Python reader
    of the file): the display name, the history rows, whether the ``exit`` record is there."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, ended = wandb_file.read_bytes(), False
    assert data[:4] == b":W&B"
    pos, block, payload, name, rows = 7, 32768, b"", None, []
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block  # the block's tail is padding
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if pos + 7 + length > len(data):
            break  # a record still being written
        payload += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST: a whole record
            rec = pb.Record()
            rec.ParseFromString(payload)
            payload = b""
            which = rec.WhichOneof("record_type")
            if which == "run":
                name = rec.run.display_name
            elif which == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
            ended = ended or which == "exit"
        elif kind == 0 and length == 0:
            break
    return name, rows, ended


def wandb_runs(wandb_dir: Path) -> dict[str, list[dict]]:
    """Every offline run under ``wandb_dir``: display name -> history rows."""
    return dict(wandb_history(f) for f in sorted(wandb_dir.glob("wandb/offline-run-*/run-*.wandb")))


def series(rows: list[dict], key: str, step_key: str = "entrodiag/step") -> dict[int, float]:
    return {int(r[step_key]): r[key] for r in rows if key in r and step_key in r}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def trackers(tmp_path_factory):
    """The trackers' stores in a temporary folder (W&B offline, Trackio's directory, a real MLflow
    server on a free port), a ``boom`` sink registered, all undone at the end."""
    root = tmp_path_factory.mktemp("trackers")
    port = free_port()
    log = open(root / "mlflow-server.log", "w")  # a file, not a pipe: a full pipe would stall the server
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
         "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "art")],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    project = f"entrodiag-test-{os.getpid()}"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"WANDB_MODE": "offline", "WANDB_DIR": str(root), "WANDB_SILENT": "true",
                     "WANDB_PROJECT": project, "TRACKIO_DIR": str(root / "trackio"), "TRACKIO_PROJECT": project,
                     "MLFLOW_TRACKING_URI": url, "MLFLOW_EXPERIMENT_NAME": project}.items():
            mp.setenv(k, v)
        import trackio.sqlite_storage
        import trackio.utils
        import wandb

        wandb.teardown()  # W&B's process-wide settings are read once: an earlier test's wandb.Api() fixed them
        for module in (trackio.utils, trackio.sqlite_storage):  # read at trackio's import: point it here
            mp.setattr(module, "TRACKIO_DIR", root / "trackio")
        mp.setitem(SINKS, "boom", (__name__, "Boom", "pytest"))
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).read()
                break
            except OSError:
                assert server.poll() is None, f"mlflow server did not start: {(root / 'mlflow-server.log').read_text()[-2000:]}"
                assert time.time() < deadline, "mlflow server did not answer within 90 s"
                time.sleep(0.3)
        try:
            yield {"root": root, "mlflow": url, "project": project}
        finally:  # the server and its job runners: one process group, started here (SIGTERM takes 5+ s)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=20)
            log.close()


@pytest.fixture(scope="module")
def trained(trackers, warm_start_val100):
    """A built-in trainer run sending to all four trackers and to the failing sink: conftest's
    collapsing configuration (the session's warm start for ``--val-size 100``), stopped by its
    in-process watch at the first critical flag."""
    import contextlib
    import io

    from conftest import COLLAPSING
    from entrodiag.cli import main

    out, printed = trackers["root"] / "run", io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["train", *COLLAPSING, "--steps", "25", "--stop-on", "critical", "--log-to", f"{TRACKERS},boom",
                     "--no-progress", "--out", str(out)])
    assert code == 0, printed.getvalue()[-3000:]
    return load_run(out)


def _flags(run) -> dict[str, str]:
    """The run folder's flags: name -> severity (the events table)."""
    flags = run.events.filter(run.events["kind"] == "flag")
    assert len(flags), "the collapsing run raised no flag"
    return dict(zip(flags["name"].to_list(), flags["severity"].to_list()))


def _expected(run, col: str) -> dict[int, float]:
    steps = run.steps.sort("step")
    return dict(zip(steps["step"].to_list(), steps[col].to_list()))


def _close(got: dict[int, float], want: dict[int, float], n: int | None = None) -> None:
    assert sorted(got) == sorted(want) and len(want) == (n or len(want)) > 0
    assert max(abs(got[s] - want[s]) for s in want) < 1e-6


# ----------------------------------------------------------------------------------------- tests
def test_wandb_offline_holds_the_run(trackers, trained):
    runs = wandb_runs(trackers["root"])
    assert "run" in runs  # a W&B run named after the entrodiag run
    for col in COMPARED:
        _close(series(runs["run"], f"entrodiag/{col}"), _expected(trained, col))


def test_tensorboard_holds_the_run(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained.path / "tensorboard"))
    acc.Reload()
    for col in COMPARED:
        _close({e.step: e.value for e in acc.Scalars(f"entrodiag/{col}")}, _expected(trained, col))


def test_mlflow_server_holds_the_run(trackers, trained):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(trackers["mlflow"])
    exp = client.get_experiment_by_name(trackers["project"])
    (run,) = client.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'run'")
    assert trained.status == "stopped" and run.info.status == "KILLED"  # the sink started this run, and ended it
    for col in COMPARED:
        _close({m.step: m.value for m in client.get_metric_history(run.info.run_id, f"entrodiag/{col}")},
               _expected(trained, col))


def test_trackio_holds_the_run(trackers, trained):
    from trackio import SQLiteStorage

    logs = SQLiteStorage.get_logs(trackers["project"], run="run")
    for col in COMPARED:
        _close(series(logs, f"entrodiag/{col}", "step"), _expected(trained, col))


def test_flags_reach_every_tracker(trackers, trained):
    """The flags the trainer's watch raised (the run folder's events): a number per flag in each
    tracker (its severity: 1 info, 2 warning, 3 critical), its text (TensorBoard text, an MLflow tag)
    and a Trackio alert."""
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from trackio import SQLiteStorage

    flags = _flags(trained)
    kinds = set(flags)
    assert "critical" in flags.values() and trained.status == "stopped"  # the flag that stopped the run
    level = {"info": 1, "warning": 2, "critical": 3}
    rows = wandb_runs(trackers["root"])["run"]
    assert {k.split("/")[-1]: v for r in rows for k, v in r.items() if k.startswith("entrodiag/events/flag/")} == {
        k: level[v] for k, v in flags.items()}
    acc = EventAccumulator(str(trained.path / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    assert {t.split("/")[-1] for t in acc.Tags()["scalars"] if t.startswith("entrodiag/events/flag/")} == kinds
    for kind in kinds:
        assert [e.value for e in acc.Scalars(f"entrodiag/events/flag/{kind}")] == [level[flags[kind]]]
    texts = [t.tensor_proto.string_val[0].decode() for t in acc.Tensors("entrodiag/events/text_summary")]
    assert all(any(k in t for t in texts) for k in kinds)
    client = MlflowClient(trackers["mlflow"])
    exp = client.get_experiment_by_name(trackers["project"])
    (run,) = client.search_runs([exp.experiment_id], filter_string="attributes.run_name = 'run'")
    assert {k.split("/")[-1] for k in run.data.tags if k.startswith("entrodiag/flag/")} == kinds
    for kind in kinds:
        (m,) = client.get_metric_history(run.info.run_id, f"entrodiag/events/flag/{kind}")
        assert m.value == level[flags[kind]]
    alerts = SQLiteStorage.get_alerts(trackers["project"], run_name="run")
    assert {a["title"].split(": ")[1].split(" ")[0] for a in alerts} >= kinds


def test_outlook_reaches_the_tracker(trackers, trained):
    """The outlook: the forecast's floor (half the start entropy) of the whole run, the last value
    Trackio holds (sent at close, or at a watch step when the close's floor did not change)."""
    from entrodiag.analysis.forecast import forecast_entropy
    from trackio import SQLiteStorage

    floor = series(SQLiteStorage.get_logs(trackers["project"], run="run"), "entrodiag/outlook/forecast_floor", "step")
    assert floor and max(floor) <= trained.steps["step"].max()
    assert floor[max(floor)] == pytest.approx(forecast_entropy(trained, floor_frac=0.5).floor, abs=1e-9)


def test_trl_report_to_wandb_is_one_run(trackers, tmp_path):
    """TRL with ``report_to="wandb"``: entrodiag's series go into TRL's own W&B run (one run, not two)."""
    pytest.importorskip("trl")
    import wandb

    from test_trl_hook import _tiny_trainer  # the tests' 1-layer TRL trainer, built in code

    before = set(trackers["root"].glob("wandb/offline-run-*"))
    trainer = _tiny_trainer(run_dir=tmp_path / "trl", steps=2, config={"report_to": "wandb", "run_name": "trl-run"})
    trainer.train()
    wandb.finish()  # TRL leaves its run open; finishing it writes the offline file whole
    (new,) = set(trackers["root"].glob("wandb/offline-run-*")) - before
    name, rows = wandb_history(next(new.glob("run-*.wandb")))
    assert name == "trl-run"  # TRL's run
    keys = {k for r in rows for k in r}
    assert any("loss" in k and not k.startswith("entrodiag/") for k in keys), sorted(keys)  # TRL's own series
    # entrodiag's values join TRL's rows (commit=False), never a row of their own but the close's last
    assert all(any(not k.startswith(("entrodiag/", "_")) for k in r) for r in rows[:-1]), rows
    run = load_run(tmp_path / "trl")
    for col in COMPARED:
        _close(series(rows, f"entrodiag/{col}"), _expected(run, col), n=2)
    assert run.meta["sink_errors"] == {}


def test_a_failing_sink_leaves_training_and_the_run_whole(trained):
    assert trained.status == "stopped"  # by its watch (--stop-on critical), not by the failing sink
    n = trained.meta.get("steps_done", len(trained.steps))
    assert 5 <= n < 25 and trained.steps["step"].to_list() == list(range(n))
    assert trained.steps["entropy_mean"].null_count() == 0
    errors = trained.meta["sink_errors"]
    # switched off after its failures in a row (start, then each call); the other four never failed
    assert errors == {"boom": MAX_FAILURES_IN_A_ROW}
    assert trained.meta["recorder_errors"] == 0 and trained.meta["writer_errors"] == 0


def test_unknown_or_missing_tracker_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib.util

    from entrodiag import Recorder
    from entrodiag.cli import main
    from entrodiag.trainer import load_config

    with pytest.raises(SinkError, match="unknown tracker.*'nope'.*trackers: wandb"):
        Recorder(tmp_path / "r", sinks=["nope"])
    assert not (tmp_path / "r" / "run.json").exists()  # no run left behind
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(SinkError, match=r"pip install 'entrodiag\[mlflow\]'"):
        sink_names("tensorboard, mlflow")
    with pytest.raises(ValueError, match="log_to: the mlflow sink needs"):
        load_config("tiny-arith-test", log_to="mlflow")
    toml = tmp_path / "c.toml"
    toml.write_text('log_to = ["tensorboard", "wandb"]\n')
    assert load_config("tiny-arith-test", toml).log_to == "tensorboard,wandb"
    assert main(["train", "--preset", "tiny-arith-test", "--log-to", "mlflow", "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("pip install 'entrodiag[mlflow]'")
    assert not (tmp_path / "t").exists()


class Memory(TrackerSink):
    """A sink that keeps what it gets."""

    name = "memory"

    def __init__(self):
        self.metrics, self.notes, self.closed = [], [], []

    def log_metrics(self, step, values):
        self.metrics.append((step, values))

    def log_note(self, step, kind, name, title, text, severity):
        self.notes.append((step, kind, name, severity))

    def close(self, status):
        self.closed.append(status)


def test_attachment_sends_and_outlook_only_when_changed(tmp_path):
    """A framework attachment passes ``sinks`` through to its Recorder; the outlook goes out only
    where it changed; a second close does nothing."""
    from types import SimpleNamespace

    from conftest import batch_kwargs
    from entrodiag.hooks.integrations.common import StepRecorder

    mem = Memory()
    att = StepRecorder(tmp_path / "run", "verl", first_step=1, token_sample=0, sinks=[mem])
    for _ in range(2):
        att.record(**batch_kwargs())
    att.rec.log_event(2, "switch", "kl_cov", severity="warning", message="none -> kl_cov")
    fc = SimpleNamespace(floor=0.3, predicted_step=40, predicted_low=30, predicted_high=None, steps_left=38,
                         reached_step=None, half_life=12.0)
    att.rec.log_outlook(2, SimpleNamespace(ceiling=0.9, forecast=fc))
    att.rec.log_outlook(2, SimpleNamespace(ceiling=0.9, forecast=fc))  # unchanged: not sent again
    att.rec.log_outlook(2, SimpleNamespace(ceiling=0.8, forecast=fc))
    att.close()
    att.rec.close()  # closed already: nothing more
    run = load_run(tmp_path / "run")
    got = {s: v["entrodiag/entropy_mean"] for s, v in mem.metrics if "entrodiag/entropy_mean" in v}
    assert got == pytest.approx(dict(zip(run.steps["step"].to_list(), run.steps["entropy_mean"].to_list())), abs=1e-9)
    assert (2, {"entrodiag/events/switch/kl_cov": 2.0}) in mem.metrics
    assert mem.notes == [(2, "switch", "kl_cov", "warning")]
    ceilings = [v["entrodiag/outlook/ceiling"] for _, v in mem.metrics if "entrodiag/outlook/ceiling" in v]
    assert ceilings == [0.9, 0.8]
    assert sum("entrodiag/outlook/forecast_floor" in v for _, v in mem.metrics) == 1
    assert mem.closed == ["finished"] and run.meta["sink_errors"] == {}


class Slow(Memory):
    """A tracker that takes 0.5 s a call (a server that hangs)."""

    name = "slow"

    def log_metrics(self, step, values):
        time.sleep(0.5)
        super().log_metrics(step, values)


def test_a_slow_sink_does_not_slow_training_and_its_drops_are_counted(tmp_path, monkeypatch):
    """The sinks run on a thread of their own with a bounded queue: 40 recorded steps against a tracker of
    0.5 s a call (20 s if waited on) take far less; the oldest calls are dropped and counted, and
    close waits only its time limit."""
    import entrodiag.sinks.base as base
    from conftest import batch_kwargs
    from entrodiag import Recorder

    monkeypatch.setattr(base, "QUEUE_SIZE", 4)
    monkeypatch.setattr(base, "CLOSE_TIMEOUT_S", 0.8)
    slow = Slow()
    t0 = time.perf_counter()
    with Recorder(tmp_path / "run", sinks=[slow], token_sample=0) as rec:
        for step in range(40):
            rec.record_batch(step=step, **batch_kwargs(step))
        rec.flush()
        logged = time.perf_counter() - t0
    closed = time.perf_counter() - t0
    assert logged < 8.0, f"40 steps took {logged:.1f} s against a slow sink"
    assert closed - logged < 3.0  # close waited its limit (0.8 s) and a call in flight, not the queue
    run = load_run(tmp_path / "run")
    assert run.steps["step"].to_list() == list(range(40))
    dropped = run.meta["sink_errors"]["dropped"]
    assert len(slow.metrics) + dropped >= 40 and dropped >= 20  # every step either sent or counted


def test_a_sink_failing_in_a_row_is_switched_off_and_one_that_recovers_is_not():
    """After MAX_FAILURES_IN_A_ROW failures in a row a sink gets nothing more; failures with a
    success between them never switch it off."""

    class Flaky(Memory):
        name = "flaky"

        def __init__(self):
            super().__init__()
            self.n = 0

        def log_metrics(self, step, values):
            self.n += 1
            if self.n % 2:
                raise RuntimeError("every other call fails")
            super().log_metrics(step, values)

    boom, flaky = Boom(), Flaky()
    Boom.calls = 0
    sinks = SinkSet([boom, flaky], close_timeout_s=10)
    for step in range(3 * MAX_FAILURES_IN_A_ROW):
        sinks.step(step, {"entropy_mean": 1.0})
    sinks.close("finished")
    assert Boom.calls == MAX_FAILURES_IN_A_ROW  # the close of a switched-off sink is not called either
    assert sinks.errors == {"boom": MAX_FAILURES_IN_A_ROW, "flaky": (3 * MAX_FAILURES_IN_A_ROW + 1) // 2}
    assert sinks.switched_off == ["boom"]
    assert flaky.closed == ["finished"] and len(flaky.metrics) == 3 * MAX_FAILURES_IN_A_ROW // 2


def test_wandb_sink_defines_its_axis_in_the_users_run_and_never_commits_there():
    """Joining an open W&B run: ``entrodiag/*`` is still defined against ``entrodiag/step`` (once),
    and each log joins the user's current row (``commit=False``; with ``commit_rows=True`` the row
    holding the previous step is committed first); in its own run it commits."""
    from types import SimpleNamespace

    from entrodiag.sinks.wandb import STEP_KEY, WandbSink

    class FakeRun:
        settings = SimpleNamespace(mode="offline")

        def __init__(self):
            self.defined, self.logged, self.step = [], [], 0

        def define_metric(self, name, step_metric=None):
            self.defined.append((name, step_metric))

        def log(self, data, commit=None):
            self.logged.append((data, commit))
            self.step += commit is not False

    users, committed, own = FakeRun(), FakeRun(), FakeRun()
    for open_run, commit_rows, expected_commits, run in (
            (users, None, [False, False], users), (committed, True, [False, True, False], committed),
            (None, None, [None, None], own)):
        sink = WandbSink(commit_rows=commit_rows)
        sink.wandb = SimpleNamespace(run=open_run, init=lambda **kw: own)
        sink.start({"run_id": "r"})
        sink.log_metrics(0, {"entrodiag/entropy_mean": 1.0})
        sink.log_metrics(1, {"entrodiag/entropy_mean": 0.5})
        assert run.defined == [(STEP_KEY, None), ("entrodiag/*", STEP_KEY)]
        assert [c for _, c in run.logged] == expected_commits
        assert [d[STEP_KEY] for d, _ in run.logged if d] == [0, 1]


def test_a_sinks_failure_is_logged_without_the_password(caplog):
    """MLflow's errors repeat the tracking URI: the sink's logged failure has its password masked."""

    class Leaky(Memory):
        name = "leaky"

        def log_metrics(self, step, values):
            raise RuntimeError("API request to http://me:s3cr@t@mlflow.example.org/api failed")

    sinks = SinkSet([Leaky()], close_timeout_s=10)
    with caplog.at_level("ERROR", logger="entrodiag"):
        sinks.step(0, {"entropy_mean": 1.0})
        sinks.close("finished")
    assert sinks.errors == {"leaky": 1}
    assert "http://me:***@mlflow.example.org/api" in caplog.text and "s3cr" not in caplog.text



def test_wandb_sink_in_a_shared_run_keeps_every_step_and_every_row_of_the_user(trackers):
    """A real (offline) W&B run shared with the sink, whose thread logs entrodiag steps faster than
    the run's rows advance: TRL's run (transformers and TRL log without ``step=``) gets every
    entrodiag step, with or without a row of TRL's between two of them; in a run of the user's,
    who logs with ``step=``, every row of the user's is kept (W&B drops a ``step=`` below its
    current step, so the sink never commits there: the newer step replaces the older, counted);
    ``commit_rows=True`` keeps every step for a user who logs without ``step=``; once the user
    finishes the run, the sink's next log fails at once."""
    import wandb

    from entrodiag.sinks.wandb import WandbSink

    def logs(sink, *steps):
        for s in steps:
            sink.log_metrics(s, {"entrodiag/entropy_mean": s / 100})

    trl = WandbSink()
    trl.start({"run_id": "r", "source": "trl", "config": {"report_to": ["wandb"]}})
    # TRL opens its run at train(), after the Recorder
    run = wandb.init(name="shared-row")
    logs(trl, 1, 2, 3)  # three steps, no row of TRL's between them
    run.log({"loss": 0.1})
    logs(trl, 4)
    run.log({"loss": 0.2})
    users = WandbSink()
    users.start({"run_id": "r"})  # a run of the user's, who logs with step=
    k = run.step + 5
    run.log({"x": 1.0}, step=k)
    logs(users, 11, 12)  # 12 replaces 11
    run.log({"y": 1.0}, step=k)  # a second log at step k: dropped had the sink committed row k
    run.log({"x": 2.0}, step=k + 1)
    logs(users, 13)
    run.log({"x": 3.0}, step=k + 2)
    committing = WandbSink(commit_rows=True)
    committing.start({"run_id": "r"})
    logs(committing, 21, 22)
    run.log({"loss": 0.3})
    folder = Path(run.dir).parent
    wandb.finish()
    _, rows = wandb_history(next(folder.glob("run-*.wandb")))
    kept = (1, 2, 3, 4, 12, 13, 21, 22)
    assert series(rows, "entrodiag/entropy_mean") == pytest.approx({s: s / 100 for s in kept}), rows
    assert [r["loss"] for r in rows if "loss" in r] == [0.1, 0.2, 0.3]
    assert {r["_step"]: (r["x"], r.get("y")) for r in rows if "x" in r} == {
        k: (1.0, 1.0), k + 1: (2.0, None), k + 2: (3.0, None)}, rows
    assert (trl.replaced, users.replaced, committing.replaced) == (0, 1, 0)
    # the run finished by its owner before the Recorder closed: the next log fails at once (W&B's
    # run.step would wait 30 s on the finished run, holding up the other sinks' close)
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="W&B run was finished before entrodiag's sinks closed"):
        logs(users, 14)
    assert time.monotonic() - t0 < 1


def test_wandb_sink_in_a_disabled_run_replaces_nothing(trackers, caplog):
    """``mode="disabled"`` runs' step is always 0: no step of the sink counts as replaced."""
    import wandb

    from entrodiag.sinks.wandb import WandbSink

    run = wandb.init(mode="disabled")
    try:
        sink = WandbSink()
        sink.start({"run_id": "r"})
        with caplog.at_level("WARNING", logger="entrodiag"):
            for s in range(3):
                sink.log_metrics(s, {"entrodiag/entropy_mean": s / 10})
        assert sink.replaced == 0 and "replaces" not in caplog.text
    finally:
        run.finish()
