"""Writing runs to an object store: a real S3-protocol server (moto) on 127.0.0.1.

The Recorder, ``entrodiag train --out s3://...`` (single process, resumed from a checkpoint there,
and two ranks under torchrun), ``import --out s3://...``, a store that goes away mid-run, and the
one-line errors of a URL that cannot be used. Each run written to the store is downloaded with
``pyarrow.fs.copy_files`` and read locally, then compared with the same run written locally.
"""

import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import torch
from polars.testing import assert_frame_equal

from entrodiag import Recorder, load_run
from entrodiag.cli import main
from entrodiag.store.location import locate
from entrodiag.store.schema import TABLES, parse_part_name
from entrodiag.trainer.checkpoint import COMPLETE, list_checkpoints

from conftest import torchrun_train
from objstore import start_moto_server, stop_moto_server

ROOT = Path(__file__).resolve().parents[1]
#: columns that hold when a row was written (or how long it took), not what was measured
CLOCK = ("wall_time", "step_time", "time")
#: a short tiny-arith-test run on the warm start the other short runs share (``--val-size 100``:
#: its evaluations, at the first and the last step, cost a fifth of the preset's 500 prompts)
TRAIN = ["--preset", "tiny-arith-test", "--val-size", "100", "--steps", "4", "--prompts-per-step", "8",
         "--group-size", "4", "--epochs", "1", "--eval-every", "100", "--checkpoint-every", "2", "--no-progress"]


def download(url: str, dest: Path) -> Path:
    """A local copy of everything under ``url``."""
    loc = locate(url)
    pafs.copy_files(loc.fs_path, str(dest), source_filesystem=loc.fs, destination_filesystem=pafs.LocalFileSystem())
    return dest


def objects(url: str) -> list[str]:
    """The object keys under ``url``, relative to it."""
    loc = locate(url)
    return sorted(i.path[len(loc.fs_path) + 1:] for i in loc.list(recursive=True) if i.type == pafs.FileType.File)


def same_tables(a, b, tables=TABLES) -> None:
    """Every table of runs ``a`` and ``b`` holds the same rows (clock columns left out)."""
    for table in tables:
        x, y = getattr(a, table), getattr(b, table)
        assert x.height == y.height, table
        drop = [c for c in CLOCK if c in x.columns]
        assert_frame_equal(x.drop(drop), y.drop([c for c in drop if c in y.columns]), check_column_order=False)


# ------------------------------------------------------------------------------- Recorder
def _record(out, rank: int, world: int, steps: int = 4, **kw) -> Recorder:
    gen = torch.Generator().manual_seed(100 + rank)
    rec = Recorder(out, token_sample=3, rank=rank, world_size=world, flush_rows=40, flush_interval_s=0.05,
                   heartbeat_s=0.1, seed=1, **kw)
    B, T, V = 6, 7, 20
    for step in range(steps):
        rec.record_batch(step, token_ids=torch.randint(0, V, (B, T), generator=gen),
                         response_mask=torch.rand(B, T, generator=gen) > 0.2,
                         logits=torch.randn(B, T, V, generator=gen), advantages=torch.randn(B, generator=gen),
                         rewards=torch.rand(B, generator=gen), group_ids=torch.arange(B) // 3 + 2 * rank,
                         loss=float(step))
        if rank == 0:
            rec.log_eval(step, "val/accuracy", step / 10, n=50)
            rec.log_event(step, "flag", "test", severity="info", message=f"step {step}")
    return rec


def test_recorder_to_s3_equals_a_local_recorder_and_ranks_write_only_their_parts(s3_env, tmp_path):
    url = f"s3://{s3_env}/runs/rec"
    # rank 1 first: it writes its own parts and never run.json
    rec1 = _record(url, rank=1, world=2)
    rec1.close()
    assert rec1.errors == 0
    assert "run.json" not in objects(url)
    assert {parse_part_name(Path(k).name)[0] for k in objects(url)} == {1}
    rec0 = _record(url, rank=0, world=2)
    assert isinstance(rec0.path, str) and rec0.path == url
    beat = json.loads(locate(url).child("run.json").read_text())["heartbeat"]
    time.sleep(0.4)
    assert json.loads(locate(url).child("run.json").read_text())["heartbeat"] > beat  # overwritten whole
    rec0.close()
    assert rec0.errors == 0
    keys = objects(url)
    assert all(k == "run.json" or (k.split("/")[0] in TABLES and parse_part_name(k.split("/")[1])) for k in keys), keys
    assert {parse_part_name(Path(k).name)[0] for k in keys if k != "run.json"} == {0, 1}
    for rank in (0, 1):
        for table in ("steps", "tokens", "samples"):
            assert any(k.startswith(f"{table}/part-r{rank:05d}-") for k in keys), (rank, table)

    local = tmp_path / "rec"
    for rank in (1, 0):
        _record(local, rank=rank, world=2).close()
    copy = load_run(download(url, tmp_path / "copy" / "rec"))
    ref = load_run(local)
    assert copy.status == "finished" and copy.meta["world_size"] == 2
    same_tables(copy, ref)
    assert_frame_equal(copy.steps_by_rank.drop("wall_time"), ref.steps_by_rank.drop("wall_time"))
    assert copy.steps["step"].to_list() == [0, 1, 2, 3] and copy.steps["n_responses"].to_list() == [12] * 4


def test_write_events_and_truncate_run_on_s3(s3_env, tmp_path):
    from entrodiag.store.truncate import truncate_run
    from entrodiag.store.writer import event_row, write_events

    url = f"s3://{s3_env}/runs/trunc"
    _record(url, rank=0, world=1, steps=5).close()
    written = write_events(url, [event_row(4, "alert", "console", message="outside")])
    assert written.startswith(f"{url}/events/part-r99999-")
    before = load_run(download(url, tmp_path / "before"))
    removed = truncate_run(url, 2)
    after = load_run(download(url, tmp_path / "after"))
    expected = sum(int((getattr(before, t)["step"] > 2).sum()) for t in TABLES)
    assert removed == expected > 0
    for table in TABLES:
        kept = getattr(before, table).filter(pl.col("step") <= 2)
        assert getattr(after, table).height == kept.height
    assert after.steps["step"].to_list() == [0, 1, 2]


def test_framework_attachment_records_and_the_driver_closes_a_run_on_s3(s3_env, tmp_path):
    """verl/OpenRLHF workers (``StepRecorder``) record into a URL; ``finish_run`` closes it there."""
    from entrodiag.hooks.integrations.common import StepRecorder, finish_run

    url = f"s3://{s3_env}/runs/ray"
    ok = dict(token_ids=torch.zeros(2, 3, dtype=torch.long), response_mask=torch.ones(2, 3, dtype=torch.bool),
              entropy=torch.ones(2, 3), advantages=torch.zeros(2))
    first = StepRecorder(url, "verl", poll_s=0.05)
    assert [first.record(**ok), first.record(**ok)] == [1, 2]
    first.close()
    rec = StepRecorder(url, "verl", poll_s=0.05)  # the worker restarted on another node: numbering continues
    assert rec.record(**ok) == 3
    assert finish_run(url, timeout=20) == "finished"  # the worker noticed the request, closed and acknowledged
    assert rec.closed and ".closed-r00000" in objects(url)
    run = load_run(download(url, tmp_path / "ray"))
    assert run.status == "finished" and run.steps["step"].to_list() == [1, 2, 3]
    assert "closed_by" not in run.meta  # closed by the worker itself, not written by the driver


# ------------------------------------------------------------------------------- failures
def test_store_gone_mid_run_is_logged_and_counted_not_raised(s3_server, s3_env, caplog):
    url = f"s3://{s3_env}/runs/gone"
    rec = _record(url, rank=0, world=1, steps=2)
    assert rec.flush(30) and rec.errors == 0
    assert any(k.startswith("steps/") for k in objects(url))
    # the bucket goes away mid-run (deleted, or the credentials lose access to it)
    fs = pafs.S3FileSystem(endpoint_override=s3_server, access_key="testing", secret_key="testing",
                           region="us-east-1", scheme="http", allow_bucket_deletion=True)
    for _ in range(50):  # the Recorder's heartbeat (every 0.1 s) may write run.json between the two calls
        fs.delete_dir_contents(s3_env)
        try:
            fs.delete_dir(s3_env)
            break
        except OSError as e:
            assert "BucketNotEmpty" in str(e), e
    else:
        raise AssertionError("the bucket could not be deleted")
    gen = torch.Generator().manual_seed(0)
    t0 = time.monotonic()
    for step in range(2, 4):  # the training loop goes on: record_batch only enqueues
        rec.record_batch(step, token_ids=torch.randint(0, 20, (6, 7), generator=gen),
                         response_mask=torch.ones(6, 7, dtype=torch.bool), logits=torch.randn(6, 7, 20, generator=gen),
                         advantages=torch.randn(6, generator=gen))
    assert time.monotonic() - t0 < 2.0
    rec.flush(60)
    rec.close()  # run.json cannot be written either: logged, not raised
    # at least: steps and tokens at the flush, again at close, and run.json at close; rows lost, counted
    assert rec.errors >= 5 and rec.writer.dropped_rows > 0
    assert "could not write" in caplog.text


@pytest.mark.parametrize("url, words", [
    ("http://example.com/runs/a", "unsupported URL scheme 'http'"),
    ("s3:/bucket/runs/a", "two slashes"),
    ("s3://no-such-bucket-entrodiag/runs/a", "does not exist"),
])
def test_unusable_urls_are_one_line_errors_from_the_cli(s3_env, url, words, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "log.csv"
    csv.write_text("step,entropy\n1,0.5\n2,0.4\n")
    for argv in (["import", str(csv), "--out", url], ["train", "--preset", "tiny-arith-test", "--out", url]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == [csv]


def _one_line_error(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def auth_server():
    """A moto server that checks credentials (moto's default accepts any)."""
    proc, endpoint = start_moto_server({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    yield endpoint
    stop_moto_server(proc)


def test_refused_credentials_are_a_one_line_error(auth_server, tmp_path, monkeypatch, capsys):
    for k, v in {"AWS_ENDPOINT_URL": auth_server, "AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "wrong",
                 "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "log.csv"
    csv.write_text("step,entropy\n1,0.5\n")
    for argv in (["import", str(csv), "--out", "s3://some-bucket/runs/a"],
                 ["train", "--preset", "tiny-arith-test", "--out", "s3://some-bucket/runs/a"]):
        err = _one_line_error(argv, capsys)
        assert "ACCESS_DENIED" in err and "credentials" in err


def test_no_credentials_is_a_one_line_error(auth_server, tmp_path, monkeypatch, capsys):
    """No keys anywhere: the request goes unsigned and is refused (after the SDK's retries)."""
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(k, raising=False)
    for k, v in {"AWS_ENDPOINT_URL": auth_server, "AWS_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "log.csv"
    csv.write_text("step,entropy\n1,0.5\n")
    err = _one_line_error(["import", str(csv), "--out", "s3://some-bucket/runs/a"], capsys)
    assert "refused the request" in err and "no AWS_ACCESS_KEY_ID or AWS_PROFILE is set" in err
    assert list(tmp_path.iterdir()) == [csv]


def test_unreachable_store_is_a_one_line_error(s3_env, tmp_path, monkeypatch, capsys):
    """Nothing listens at the endpoint (the AWS SDK retries for a few seconds first)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    monkeypatch.chdir(tmp_path)
    err = _one_line_error(["train", "--preset", "tiny-arith-test", "--out", "s3://some-bucket/runs/a"], capsys)
    assert "cannot be reached" in err and "AWS_ENDPOINT_URL" in err and "no AWS_ACCESS_KEY_ID" not in err
    assert list(tmp_path.iterdir()) == []


def test_no_command_makes_a_local_folder_named_s3(s3_env, tmp_path, monkeypatch, capsys):
    """The bug of issue 19: a URL taken for a local path made a folder ``s3:`` in the cwd."""
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "log.csv"
    csv.write_text("step,entropy,reward\n1,0.5,0.1\n2,0.4,0.2\n")
    run = f"s3://{s3_env}/runs/b"
    assert main(["import", str(csv), "--out", run]) == 0
    missing = f"s3://{s3_env}/runs/none"
    for argv in (
        ["analyze", run], ["inspect", run], ["report", run, "-o", f"s3://{s3_env}/r.pdf"],
        ["report", run], ["compact", run], ["watch", missing], ["import", str(csv), "--out", run],
        ["probe", "--model", str(tmp_path / "none"), "--suite", str(ROOT / "probes" / "arith.jsonl"), "--out", missing],
    ):
        try:
            main(argv)
        except SystemExit:
            pass
        capsys.readouterr()
        assert not any(p.name.startswith("s3:") for p in tmp_path.rglob("*")), argv
        assert sorted(p.name for p in tmp_path.iterdir() if p.name != "reports") == ["log.csv"], argv


# ------------------------------------------------------------------------------- import
def test_import_to_s3_equals_a_local_import(s3_env, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    csv = tmp_path / "history.csv"
    rows = ["step,entropy,reward,val_acc"] + [f"{s},{1 - s / 20:.3f},{s / 10:.2f},{'' if s % 2 else s / 20}"
                                              for s in range(1, 9)]
    csv.write_text("\n".join(rows) + "\n")
    url = f"s3://{s3_env}/runs/imported"
    assert main(["import", str(csv), "--out", url, "--map", "val_acc=val/accuracy"]) == 0
    assert f"into {url}" in capsys.readouterr().out
    assert "run.json" in objects(url) and not (tmp_path / "s3:").exists()
    assert main(["import", str(csv), "--out", str(tmp_path / "local"), "--map", "val_acc=val/accuracy"]) == 0
    copy, ref = load_run(download(url, tmp_path / "copy" / "imported")), load_run(tmp_path / "local")
    same_tables(copy, ref, ("steps", "evals"))
    assert copy.steps["entropy_mean"].to_list() == pytest.approx([1 - s / 20 for s in range(1, 9)])
    assert main(["import", str(csv), "--out", url]) == 2  # it holds a run now
    assert "already holds a run" in capsys.readouterr().err


# ------------------------------------------------------------------------------- train
@pytest.fixture(scope="module")
def local_train(warm_start_val100, tmp_path_factory):
    """The reference: the short tiny-arith-test run, written locally."""
    out = tmp_path_factory.mktemp("local-train") / "run"
    assert main(["train", *TRAIN, "--out", str(out)]) == 0
    return load_run(out)


def test_train_to_s3_equals_a_local_run(local_train, s3_env, tmp_path):
    url = f"s3://{s3_env}/runs/a"
    assert main(["train", *TRAIN, "--out", url]) == 0
    assert [step for step, _ in list_checkpoints(url)] == [1, 3]
    assert {"model.safetensors", "trainer_state.pt", COMPLETE} <= {
        Path(k).name for k in objects(url) if k.startswith("checkpoints/step-0000003/")}
    copy = load_run(download(url, tmp_path / "a"))
    assert copy.status == "finished" and copy.steps["step"].to_list() == [0, 1, 2, 3]
    same_tables(copy, local_train, ("steps", "evals", "tokens", "samples"))
    same_tables(load_run(url), copy)  # the reader on the URL itself agrees
    assert main(["train", *TRAIN, "--out", url]) == 2  # already holds a run


def test_resume_from_an_s3_checkpoint_continues_exactly(local_train, s3_env, tmp_path, capsys):
    url = f"s3://{s3_env}/runs/r"
    three = [*TRAIN]
    three[three.index("--steps") + 1] = "3"  # checkpoints after steps 1 and 2 (the last)
    assert main(["train", *three, "--out", url]) == 0
    assert [s for s, _ in list_checkpoints(url)] == [1, 2]
    # a checkpoint whose upload was cut short has no COMPLETE marker: never resumed from
    locate(url).child("checkpoints", "step-0000002", COMPLETE).delete()
    assert [s for s, _ in list_checkpoints(url)] == [1]
    capsys.readouterr()
    assert main(["train", "--resume", url, "--steps", "4", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "from step-0000001" in out and "dropped" in out  # step 2's rows, recorded after it
    local = download(url, tmp_path / "r")
    steps_in_files = np.concatenate([pq.read_table(p)["step"].to_numpy() for p in (local / "steps").glob("part-*")])
    assert sorted(steps_in_files.tolist()) == [0, 1, 2, 3]  # each step once in the files themselves
    copy = load_run(local)
    assert copy.status == "finished" and len(copy.meta["resumed"]) == 1
    assert_frame_equal(copy.steps.drop(["wall_time", "step_time"]), local_train.steps.drop(["wall_time", "step_time"]),
                       check_column_order=False)
    assert_frame_equal(copy.tokens, local_train.tokens, check_column_order=False)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_under_torchrun_write_one_run_to_s3(warm_start_val100, ddp_run, s3_env, tmp_path):
    """conftest's ``DDP_TRAIN`` under torchrun to S3, compared with the session's local twin (``ddp_run``)."""
    url = f"s3://{s3_env}/runs/ddp"
    res = torchrun_train(url, tmp_path, warm_start_val100)
    assert res.returncode == 0, res.stderr[-3000:]
    keys = objects(url)
    for rank in (0, 1):
        for table in ("steps", "tokens", "samples"):
            assert any(k.startswith(f"{table}/part-r{rank:05d}-") for k in keys), (rank, table)
    copy, ref = load_run(download(url, tmp_path / "ddp")), load_run(ddp_run)
    assert copy.status == "finished" and copy.meta["world_size"] == 2
    assert sorted(copy.steps_by_rank["rank"].unique().to_list()) == [0, 1]
    assert copy.steps["n_responses"].to_list() == [8 * 4] * 4
    same_tables(copy, ref, ("steps", "evals", "tokens", "samples"))
    assert_frame_equal(copy.steps_by_rank.drop(["wall_time", "step_time"]), ref.steps_by_rank.drop(["wall_time", "step_time"]))
