"""``entrodiag import`` of the trackers' own stores: W&B (an offline run folder), MLflow (an SQLite
store, an mlruns folder), Trackio (a project's store).

Each store is written by the tracker's own API, here (W&B and Trackio in one child process, so
that their global state and Trackio's store folder, fixed when it is first imported, stay out of
this process; MLflow through ``MlflowClient``), with a known series; the import must give back
exactly what was logged: the steps, the entropy, reward and evaluation values mapped through the
name table, the config (the temperature in ``entropy_semantics``) and W&B's summary, with the
values that cannot be read counted. A tracker that is not installed gives a one-line error naming
its extra; a W&B run path without credentials one naming what to do, without any network.

MLflow's server (``http://``) is read through the same ``MlflowClient`` calls as the SQLite store;
a round trip through a real ``mlflow server`` is beyond the suite's budget (the server alone starts
in 10 s or more on two cores): ``benchmarks/check_mlflow_server_import.py`` runs it.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from entrodiag import load_run
from entrodiag.cli import main
from entrodiag.importers import ImportFailure, detect_format, import_run
from entrodiag.importers.trackers import tracker_uri
from entrodiag.tracker_env import redacted
from entrodiag.importers.wandb_store import run_files

# found, not imported: importing the three costs two seconds at collection
pytestmark = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("wandb", "mlflow", "trackio")),
    reason="needs the wandb, mlflow and trackio packages (pip install -e '.[test]')")

#: the known series: (step, entropy, reward); an evaluation every 4th step
STEPS = [2 * k for k in range(9)]
ENTROPY = [1.3 * 0.93 ** k + 0.0123456789012345 * (k % 3) for k in range(9)]
REWARD = [0.1 + 0.07 * k - 0.01 * (k % 2) for k in range(9)]
ACCURACY = {s: 0.25 + s / 100 for s in STEPS if s % 4 == 0}

#: W&B and Trackio, written by their own APIs in a child process
LOGGER = r"""
import json, sys
import trackio, wandb
out, steps, entropy, reward, accuracy = sys.argv[1], *json.loads(sys.argv[2])
accuracy = {int(k): v for k, v in accuracy.items()}
run = wandb.init(mode="offline", dir=out, project="grpo", name="tiny",
                 config={"temperature": 0.7, "model": {"name": "tiny", "layers": 2}},
                 settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
run.define_metric("train/global_step")  # as transformers' WandbCallback does
run.define_metric("*", step_metric="train/global_step", step_sync=True)
for s, e, r in zip(steps, entropy, reward):
    row = {"train/global_step": s, "train/entropy": e, "train/reward": r,
           "train/completions/mean_length": 10 + s, "train/loss": float("nan") if s == 4 else 0.5}
    if s == 6:
        row["train/logits"] = wandb.Histogram([0.1, 0.2, 0.3])
    run.log(row)
    if s in accuracy:
        run.log({"train/global_step": s, "eval/accuracy": accuracy[s]})
run.summary["best_accuracy"] = max(accuracy.values())
run.finish()
# resumed (a preempted job): W&B writes a second folder for the same run id, named by the second
import time
time.sleep(1.01 - time.time() % 1)
run = wandb.init(mode="offline", dir=out, project="grpo", id=run.id, resume="allow",
                 settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
s, e, r = steps[-1], entropy[-1], reward[-1]
run.log({"train/global_step": s, "train/entropy": e, "train/reward": r})  # logged again, the same
run.log({"train/global_step": s + 2, "train/entropy": e / 2, "train/reward": r + 0.5})
run.finish()
for name, temp, scale in (("first", 1.0, 2.0), ("second", 0.6, 1.0)):
    trackio.init(project="grpo", name=name, config={"temperature": temp})
    for s, e, r in zip(steps, entropy, reward):
        trackio.log({"train/entropy": e * scale, "train/reward": r,
                     **({"eval/accuracy": accuracy[s]} if s in accuracy else {})}, step=s)
    trackio.finish()
"""


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """A W&B offline run folder and a Trackio store, each written by the tracker's own API."""
    root = tmp_path_factory.mktemp("trackers")
    env = {**os.environ, "TRACKIO_DIR": str(root / "trackio"), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_ERROR_REPORTING": "false", "HF_HUB_OFFLINE": "1"}
    series = json.dumps([STEPS, ENTROPY, REWARD, ACCURACY])
    done = subprocess.run([sys.executable, "-c", LOGGER, str(root), series], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    first, _resumed = sorted((root / "wandb").glob("offline-run-*"))
    return {"wandb": first, "trackio": root / "trackio" / "grpo.db"}


def _check_series(run, entropy_scale: float = 1.0, more: tuple = ()):
    """The run holds the known series (entropy times ``entropy_scale``), then the ``more`` rows
    ``(step, entropy, reward)``."""
    steps = run.steps.sort("step")
    assert steps["step"].to_list() == [*STEPS, *(m[0] for m in more)]
    assert steps["entropy_mean"].to_list() == pytest.approx(
        [*(e * entropy_scale for e in ENTROPY), *(m[1] for m in more)], abs=1e-12)
    assert steps["reward_mean"].to_list() == pytest.approx([*REWARD, *(m[2] for m in more)], abs=1e-12)
    ev = run.evals.sort("step")
    assert ev["name"].unique().to_list() == ["val/accuracy"]
    assert dict(zip(ev["step"].to_list(), ev["value"].to_list())) == pytest.approx(ACCURACY, abs=1e-12)


def test_wandb_offline_run_folder(logged, tmp_path, capsys):
    folder = logged["wandb"]  # the run's first folder; its resumed part is the second one
    (file,) = folder.glob("run-*.wandb")
    run_id = file.stem.removeprefix("run-")
    for source in (folder, file, folder.parent):
        assert detect_format(source)[0] == "wandb"
    assert run_files(folder) == run_files(file) == [file]
    assert run_files(folder.parent, run=run_id)[0] == file and len(run_files(folder.parent, run=run_id)) == 2
    # the wandb/ folder: the run named by its id, with its resumed part
    code, out, err = _cli(capsys, "import", str(folder.parent), "--run", run_id, "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "format wandb" in out and "step column 'train/global_step'" in out
    run = load_run(tmp_path / "a")
    _check_series(run, more=[(STEPS[-1] + 2, ENTROPY[-1] / 2, REWARD[-1] + 0.5)])
    assert run.steps.sort("step")["resp_len_mean"].to_list() == [10 + s for s in STEPS] + [None]
    imported = run.meta["imported"]
    assert imported["summary"]["best_accuracy"] == max(ACCURACY.values())
    assert imported["run"]["project"] == "grpo" and imported["run"]["display_name"] == "tiny"
    assert run.meta["config"]["model"] == {"name": "tiny", "layers": 2}
    sem = run.meta["entropy_semantics"]
    assert imported["framework"] == "trl" and sem["temperature"] == 0.7 and sem["kind"] == "token_entropy"
    # the NaN counted; the last step logged again after the resumption, with the same values: not counted
    assert imported["bad_values"] == {"train/loss: not a number or infinite (left out)": 1}
    assert any("media values left out" in n and "train/logits" in n for n in imported["notes"])
    assert any("2 folders of run" in n and "resumed" in n for n in imported["notes"])
    # a .wandb file cut short (a run still writing, or killed): read to its last whole record, said
    cut = tmp_path / "cut" / file.name
    cut.parent.mkdir()
    cut.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    part = load_run(import_run(cut, tmp_path / "d").run_dir).steps.sort("step")
    assert 0 < part.height < len(STEPS) and part["step"].to_list() == STEPS[: part.height]
    assert part["entropy_mean"].to_list() == pytest.approx(ENTROPY[: part.height], abs=1e-12)
    assert any("incomplete record" in n for n in load_run(tmp_path / "d").meta["imported"]["notes"])
    with pytest.raises(ImportFailure, match="holds 2 W&B run folders; name the run with --run ID"):
        import_run(folder.parent, tmp_path / "c")
    with pytest.raises(ImportFailure, match="no W&B run of that id"):
        import_run(folder.parent, tmp_path / "c", run="nosuchid")


def test_wandb_run_path_without_credentials(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for var in ("HOME", "WANDB_CONFIG_DIR", "NETRC"):
        monkeypatch.setenv(var, str(tmp_path / "nobody"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: no request leaves
    for source in ("wandb:someone/grpo/abc123", "https://wandb.ai/someone/grpo/runs/abc123"):
        assert detect_format(source)[0] == "wandb"
        code, _, err = _cli(capsys, "import", source, "--out", str(tmp_path / "x"))
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "credentials" in err and "WANDB_API_KEY" in err and "someone/grpo/abc123" in err
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def mlflow_stores(tmp_path_factory):
    """An MLflow SQLite store and an mlruns folder, each with two runs of experiment 'grpo' (the
    second one newer), written with ``MlflowClient``. The SQLite file lies in memory-backed
    /dev/shm where there is one: MLflow builds its schema in some 40 commits, each synced to disk."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    shm = Path("/dev/shm")
    db_dir = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() and os.access(shm, os.W_OK) else \
        tmp_path_factory.mktemp("mlflow-db")
    folder = tmp_path_factory.mktemp("mlflow") / "mlruns"
    stores = {"sqlite": db_dir / "mlflow.db", "mlruns": folder}
    ids = {}
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3 writes a file store only when told to
    try:
        for kind, uri in (("sqlite", f"sqlite:///{stores['sqlite']}"), ("mlruns", str(folder))):
            client = MlflowClient(tracking_uri=uri)
            exp = client.create_experiment("grpo")
            for name, scale, t0 in (("old", 3.0, 1_000_000), ("new", 1.0, 2_000_000)):
                run = client.create_run(exp, run_name=name, start_time=t0)
                metrics = [Metric("actor/entropy", e * scale, t0 + 1000 * s, s) for s, e in zip(STEPS, ENTROPY)]
                metrics += [Metric("critic/score/mean", r, t0 + 1000 * s, s) for s, r in zip(STEPS, REWARD)]
                # verl's MLflow logger writes mean@1 as mean_at_1 (MLflow refuses '@' in a name)
                metrics += [Metric("val-core/gsm8k/acc/mean_at_1", a, t0 + 1000 * s, s) for s, a in ACCURACY.items()]
                # logged again at the last step, half a second later
                metrics.append(Metric("critic/score/mean", 0.99, t0 + 1000 * STEPS[-1] + 500, STEPS[-1]))
                client.log_batch(run.info.run_id, metrics=metrics,
                                 params=[Param("temperature", "0.9"), Param("algorithm", "grpo")])
                client.set_terminated(run.info.run_id)
                ids[(kind, name)] = run.info.run_id
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)
    yield stores, ids
    if db_dir.parent == shm:
        import shutil

        shutil.rmtree(db_dir, ignore_errors=True)


def _check_mlflow(run, run_id, scale=1.0):
    steps = run.steps.sort("step")
    assert steps["step"].to_list() == STEPS
    assert steps["entropy_mean"].to_list() == pytest.approx([e * scale for e in ENTROPY], abs=1e-12)
    # the score logged twice at the last step: the later value kept, and counted
    assert steps["score_mean"].to_list() == pytest.approx([*REWARD[:-1], 0.99], abs=1e-12)
    assert run.meta["imported"]["bad_values"] == {
        "critic/score/mean: step logged twice with different values (kept the last)": 1}
    ev = run.evals.sort("step")
    assert ev["name"].unique().to_list() == ["val/gsm8k/acc/mean_at_1"]
    assert dict(zip(ev["step"].to_list(), ev["value"].to_list())) == pytest.approx(ACCURACY, abs=1e-12)
    meta = run.meta
    assert meta["config"] == {"temperature": 0.9, "algorithm": "grpo"}
    assert meta["entropy_semantics"]["temperature"] == 0.9 and meta["imported"]["framework"] == "verl"
    assert meta["imported"]["run"]["run_id"] == run_id


def test_mlflow_sqlite_store(mlflow_stores, tmp_path, capsys):
    stores, ids = mlflow_stores
    db = stores["sqlite"]
    assert detect_format(db)[0] == "mlflow" and detect_format(f"sqlite:///{db}")[0] == "mlflow"
    # --experiment: its newest run, said
    code, out, err = _cli(capsys, "import", f"sqlite:///{db}", "--experiment", "grpo", "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "imported the newest" in out and ids[("sqlite", "old")] in out
    run = load_run(tmp_path / "a")
    _check_mlflow(run, ids[("sqlite", "new")])
    wall = run.steps.sort("step")["wall_time"].to_list()
    assert wall == pytest.approx([2_000 + s for s in STEPS[:-1]] + [2_000.5 + STEPS[-1]])  # MLflow's ms, in s
    # --run: by id (the SQLite file named as a path), or by name
    _check_mlflow(load_run(import_run(db, tmp_path / "b", run=ids[("sqlite", "old")]).run_dir),
                  ids[("sqlite", "old")], scale=3.0)
    assert import_run(db, tmp_path / "c", run="old").steps == len(STEPS)
    # no run named in a store of several; a run or experiment that is not there
    with pytest.raises(ImportFailure, match="holds several runs; name one with --run ID or --experiment"):
        import_run(db, tmp_path / "d")
    with pytest.raises(ImportFailure, match="no such experiment.*experiments: .*grpo"):
        import_run(db, tmp_path / "d", experiment="ppo")
    with pytest.raises(ImportFailure, match="no run of that id or name"):
        import_run(db, tmp_path / "d", run="nosuchrun")
    missing = tmp_path / "typo.db"
    with pytest.raises(ImportFailure, match="no such SQLite file"):
        import_run(f"sqlite:///{missing}", tmp_path / "d", run="x")
    assert not missing.exists() and not (tmp_path / "d").exists()


def test_mlflow_mlruns_folder(mlflow_stores, tmp_path):
    stores, ids = mlflow_stores
    assert detect_format(stores["mlruns"])[0] == "mlflow"
    rep = import_run(stores["mlruns"], tmp_path / "a", experiment="grpo")
    _check_mlflow(load_run(rep.run_dir), ids[("mlruns", "new")])
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ  # set for the read only
    with pytest.raises(ImportFailure, match="--experiment applies to MLflow"):
        import_run(stores["mlruns"], tmp_path / "b", format="trackio", experiment="grpo")


def test_trackio_project(logged, tmp_path, capsys, monkeypatch):
    db = logged["trackio"]
    assert detect_format(db)[0] == "trackio"
    code, out, err = _cli(capsys, "import", str(db), "--out", str(tmp_path / "a"))
    assert code == 0, err
    assert "imported the newest, second" in out
    run = load_run(tmp_path / "a")
    _check_series(run)
    assert run.meta["config"] == {"temperature": 0.6} and run.meta["entropy_semantics"]["temperature"] == 0.6
    assert all(math.isfinite(w) and w > 1.7e9 for w in run.steps["wall_time"].to_list())
    # trackio:PROJECT reads the store Trackio itself uses; --run names another run
    from trackio import sqlite_storage

    monkeypatch.setattr(sqlite_storage, "TRACKIO_DIR", db.parent)
    rep = import_run("trackio:grpo", tmp_path / "b", run="first")
    _check_series(load_run(rep.run_dir), entropy_scale=2.0)
    with pytest.raises(ImportFailure, match="no run of that name or id"):
        import_run(db, tmp_path / "c", run="third")
    with pytest.raises(ImportFailure, match="no such project"):
        import_run("trackio:nosuchproject", tmp_path / "c")


@pytest.mark.parametrize("extra, source", [
    ("wandb", "wandb:someone/grpo/abc123"), ("mlflow", "sqlite:///x.db"), ("trackio", "trackio:grpo")])
def test_missing_tracker_package(extra, source, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, extra, None)  # import fails as if not installed
    code, _, err = _cli(capsys, "import", source, "--out", str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"pip install 'entrodiag[{extra}]'" in err


def test_wandb_folder_needs_wandb_to_read(logged, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportFailure, match=r"entrodiag\[wandb\]"):
        import_run(logged["wandb"], tmp_path / "x")


def test_flags_of_a_tracker_refused_elsewhere(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "entropy": 0.5}\n')
    with pytest.raises(ImportFailure, match="--run applies to a tracker's store"):
        import_run(log, tmp_path / "a", run="x")


def test_mlflow_server_that_does_not_answer(tmp_path, monkeypatch, capsys):
    """The same reads as the SQLite store, from a URL where nothing listens: one line, at once
    (no retries here; ``benchmarks/check_mlflow_server_import.py`` reads from a real server)."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    code, _, err = _cli(capsys, "import", "http://user:secret@127.0.0.1:9", "--run", "abc", "--out",
                        str(tmp_path / "x"))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "MLflow store http://user:***@127.0.0.1:9" in err and "secret" not in err


@pytest.mark.parametrize("source, tracker", [
    ("wandb:team/grpo/abc123", "wandb"), ("https://wandb.ai/team/grpo/runs/abc123", "wandb"),
    ("https://wandb.example.org/team/grpo/runs/abc123", "wandb"), ("trackio:grpo", "trackio"),
    ("http://127.0.0.1:5000", "mlflow"), ("https://mlflow.example.org/", "mlflow"),
    ("sqlite:///mlflow.db", "mlflow"), ("postgresql+psycopg2://me:pw@db/mlflow", "mlflow"),
    ("s3://bucket/runs/a", None), ("runs/trainer_state.json", None), ("team/grpo/abc123", None),
])
def test_tracker_named_by_a_uri(source, tracker):
    assert tracker_uri(source) == tracker


def test_password_masked():
    assert redacted("postgresql://me:secret@db:5432/mlflow") == "postgresql://me:***@db:5432/mlflow"
    assert redacted("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redacted("http://u:p@ss@host/x") == "http://u:***@host/x"  # up to the last '@' before the host
    assert (redacted("see http://u:pw@h/a@b and postgresql://v:q@db/m")
            == "see http://u:***@h/a@b and postgresql://v:***@db/m")
